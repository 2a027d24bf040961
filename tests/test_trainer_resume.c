/*
 * test_trainer_resume.c — a resumed run is the run that never stopped:
 * N steps straight vs k steps, a checkpoint, (more steps that are lost, as
 * in a crash), --resume, the rest: identical metrics.jsonl (timing fields
 * aside), bit-identical weights (the safetensors bytes) and AdamW moments
 * (optimizer.bin bytes). Also with --iterations 2 stopped between the two
 * passes over a rollout (the rollout buffer travels in rollout.bin), with a
 * warmup + linear schedule, and through iapo_trainer_run's stop flag (what
 * SIGINT sets in the CLI).
 */
#include "core/status.h"
#include "rl/trainer.h"
#include "test.h"
#include "trainer_fixture.h"

static fixture fx;
static int have_fx;

static int opts_for(const char *run, int iterations, iapo_train_opts *o)
{
	if (fixture_opts(&fx, run, o)) return -1;
	fixture_set(o, "prompts-per-step", "4");
	fixture_set(o, "num-generations", "4");
	fixture_set(o, "micro-batch", "8");
	fixture_set(o, "save-steps", "0");
	fixture_set(o, "max-steps", "6");
	fixture_set(o, "lr-schedule", "linear");
	fixture_set(o, "warmup-steps", "2");
	fixture_set(o, "learning-rate", "3e-3");
	char b[8];
	snprintf(b, sizeof b, "%d", iterations);
	fixture_set(o, "iterations", b);
	return 0;
}

static void compare_runs(const char *a, const char *b, const char *what)
{
	int na, nb;
	char *ma = fixture_metrics(a, &na), *mb = fixture_metrics(b, &nb);
	CHECK(ma && mb && na == 6 && nb == 6, "%s: 6 metrics lines each, found %d and %d", what, na, nb);
	CHECK(ma && mb && !strcmp(ma, mb), "%s: same metrics\nstraight:\n%sresumed:\n%s", what, ma ? ma : "",
	      mb ? mb : "");
	const char *files[] = {"model.safetensors", "optimizer.bin"};
	for (int i = 0; i < 2; i++) {
		char pa[1400], pb[1400];
		snprintf(pa, sizeof pa, "%s/checkpoint-6/%s", a, files[i]);
		snprintf(pb, sizeof pb, "%s/checkpoint-6/%s", b, files[i]);
		CHECK(fixture_same_file(pa, pb), "%s: %s bit-identical", what, files[i]);
	}
	char pa[1400], pb[1400];
	snprintf(pa, sizeof pa, "%s/checkpoint-6/trainer_state.json", a);
	snprintf(pb, sizeof pb, "%s/checkpoint-6/trainer_state.json", b);
	cJSON *sa = NULL, *sb = NULL;
	if (iapo_json_load(pa, 1 << 24, &sa) == IAPO_OK && iapo_json_load(pb, 1 << 24, &sb) == IAPO_OK) {
		const cJSON *ha = cJSON_GetObjectItemCaseSensitive(sa, "log_history");
		const cJSON *hb = cJSON_GetObjectItemCaseSensitive(sb, "log_history");
		CHECK(cJSON_GetArraySize(ha) == 6 && cJSON_GetArraySize(hb) == 6, "%s: log_history of 6 entries (%d, %d)",
		      what, cJSON_GetArraySize(ha), cJSON_GetArraySize(hb));
		const cJSON *ta = cJSON_GetObjectItemCaseSensitive(sa, "adam_step");
		const cJSON *tb = cJSON_GetObjectItemCaseSensitive(sb, "adam_step");
		CHECK(cJSON_IsNumber(ta) && cJSON_IsNumber(tb) && ta->valuedouble == tb->valuedouble, "%s: adam_step", what);
	} else {
		CHECK(0, "%s: trainer_state.json: %s", what, iapo_errmsg());
	}
	cJSON_Delete(sa);
	cJSON_Delete(sb);
	free(ma);
	free(mb);
}

/* Straight run of 6; then k steps, save, `lost` more steps without a save,
 * resume, finish. */
static void resume_case(int iterations, int k, int lost, const char *tag)
{
	FIXTURE_NEED(have_fx);
	char ra[64], rb[64];
	snprintf(ra, sizeof ra, "%s-straight", tag);
	snprintf(rb, sizeof rb, "%s-resumed", tag);
	iapo_train_opts a, b;
	if (opts_for(ra, iterations, &a) || opts_for(rb, iterations, &b)) return;
	iapo_trainer *tr;
	CHECK(iapo_trainer_new(&a, &tr) == IAPO_OK, "%s", iapo_errmsg());
	if (tr) {
		CHECK(iapo_trainer_run(tr, NULL, NULL, NULL) == IAPO_OK, "%s", iapo_errmsg());
		iapo_trainer_free(tr);
	}
	tr = NULL;
	CHECK(iapo_trainer_new(&b, &tr) == IAPO_OK, "%s", iapo_errmsg());
	if (tr) {
		for (int i = 0; i < k + lost; i++) {
			CHECK(iapo_trainer_step(tr, NULL) == IAPO_OK, "step %d: %s", i + 1, iapo_errmsg());
			if (i + 1 == k) CHECK(iapo_trainer_save(tr) == IAPO_OK, "save: %s", iapo_errmsg());
		}
		iapo_trainer_free(tr); /* steps after k are lost, their metrics lines are not */
	}
	char p[1400];
	snprintf(p, sizeof p, "%s/checkpoint-%d/rollout.bin", b.out, k);
	CHECK(iapo_fs_exists(p) == (k % iterations != 0), "rollout.bin exactly when stopped between passes (%s)", p);
	fixture_set(&b, "resume", NULL);
	fixture_set(&b, "overwrite", "0");
	tr = NULL;
	CHECK(iapo_trainer_new(&b, &tr) == IAPO_OK, "resume: %s", iapo_errmsg());
	if (tr) {
		CHECK(iapo_trainer_steps_done(tr) == k, "resumed after step %ld, expected %d", iapo_trainer_steps_done(tr), k);
		CHECK(iapo_trainer_run(tr, NULL, NULL, NULL) == IAPO_OK, "%s", iapo_errmsg());
		iapo_trainer_free(tr);
	}
	compare_runs(a.out, b.out, tag);
	iapo_train_opts_free(&a);
	iapo_train_opts_free(&b);
}

static void test_resume(void) { resume_case(1, 3, 0, "plain"); }
static void test_resume_after_lost_steps(void) { resume_case(1, 2, 2, "lost"); }
static void test_resume_between_passes(void) { resume_case(2, 3, 0, "iter2-mid"); }
static void test_resume_at_rollout_boundary(void) { resume_case(2, 4, 1, "iter2-edge"); }

static void test_stop_flag(void)
{
	FIXTURE_NEED(have_fx);
	iapo_train_opts a, b;
	if (opts_for("stop-straight", 1, &a) || opts_for("stop-resumed", 1, &b)) return;
	iapo_trainer *tr = NULL;
	CHECK(iapo_trainer_new(&a, &tr) == IAPO_OK && iapo_trainer_run(tr, NULL, NULL, NULL) == IAPO_OK, "%s",
	      iapo_errmsg());
	iapo_trainer_free(tr);
	volatile sig_atomic_t stop = 1;
	tr = NULL;
	CHECK(iapo_trainer_new(&b, &tr) == IAPO_OK, "%s", iapo_errmsg());
	if (tr) {
		CHECK(iapo_trainer_run(tr, &stop, NULL, NULL) == IAPO_OK, "%s", iapo_errmsg());
		CHECK(iapo_trainer_steps_done(tr) == 1, "stop flag: one step, found %ld", iapo_trainer_steps_done(tr));
		CHECK(strstr(iapo_trainer_last_checkpoint(tr), "checkpoint-1") != NULL, "saved %s",
		      iapo_trainer_last_checkpoint(tr));
		iapo_trainer_free(tr);
	}
	fixture_set(&b, "resume", NULL);
	fixture_set(&b, "overwrite", "0");
	tr = NULL;
	CHECK(iapo_trainer_new(&b, &tr) == IAPO_OK && iapo_trainer_run(tr, NULL, NULL, NULL) == IAPO_OK, "%s",
	      iapo_errmsg());
	iapo_trainer_free(tr);
	compare_runs(a.out, b.out, "stop flag");
	/* Resuming a finished run does nothing and says so through steps_done. */
	tr = NULL;
	CHECK(iapo_trainer_new(&b, &tr) == IAPO_OK, "%s", iapo_errmsg());
	if (tr) {
		CHECK(iapo_trainer_steps_done(tr) == 6 && iapo_trainer_run(tr, NULL, NULL, NULL) == IAPO_OK, "complete run");
		CHECK(iapo_trainer_step(tr, NULL) == IAPO_ERR_ARG, "a step past the end is refused");
		iapo_trainer_free(tr);
	}
	iapo_train_opts_free(&a);
	iapo_train_opts_free(&b);
}

int main(void)
{
	have_fx = fixture_make(&fx, "trainer-resume", 1, 40, 5) == 0;
	CHECK(have_fx, "fixture: %s", iapo_errmsg());
	RUN(test_resume);
	RUN(test_resume_after_lost_steps);
	RUN(test_resume_between_passes);
	RUN(test_resume_at_rollout_boundary);
	RUN(test_stop_flag);
	if (have_fx) iapo_fs_remove_all(fx.root);
	TEST_END();
}
