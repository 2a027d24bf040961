/*
 * test_train_algos.c — every --algo inside real training steps on the tiny
 * SFT-warm-started model of tests/trainer_fixture.h:
 *  - --algo iapo: its metrics (info_gain_mean, info_near_zero, seconds_info)
 *    are on every rollout's line; w_s = w_c = 0 gives bit-identical weights
 *    to plain GRPO (the wiring adds exactly nothing), w_s = 0.3 does not;
 *  - a resumed run is the run that never stopped (metrics.jsonl without
 *    times, weights and AdamW moments byte for byte) for iapo (also stopped
 *    between the passes of --iterations 2), dapo (dynamic sampling resamples
 *    with attempt-keyed streams, drops, overlong shaping), gfpo (G' = 6,
 *    keep 4), sgrpo, gtpo and lenpen;
 *  - dapo really resamples here (the fixture's groups are often all wrong),
 *    gfpo trains on shorter completions than it samples.
 */
#include "core/status.h"
#include "rl/trainer.h"
#include "test.h"
#include "trainer_fixture.h"

static fixture fx;
static int have_fx;

/* 4 prompts x 4 completions, `steps` steps; kv: extra name/value pairs. */
static int opts_for(const char *run, int steps, const char *const *kv, iapo_train_opts *o)
{
	if (fixture_opts(&fx, run, o)) return -1;
	fixture_set(o, "prompts-per-step", "4");
	fixture_set(o, "num-generations", "4");
	fixture_set(o, "micro-batch", "8");
	fixture_set(o, "save-steps", "0");
	char b[16];
	snprintf(b, sizeof b, "%d", steps);
	fixture_set(o, "max-steps", b);
	for (; kv && kv[0]; kv += 2) fixture_set(o, kv[0], kv[1]);
	return 0;
}

/* Runs to the end; returns a copy of the final weights (NULL on failure). */
static float *run_all(iapo_train_opts *o, size_t *np)
{
	iapo_trainer *tr = NULL;
	if (iapo_trainer_new(o, &tr) != IAPO_OK) {
		CHECK(0, "%s: %s", o->out, iapo_errmsg());
		return NULL;
	}
	float *copy = NULL;
	if (iapo_trainer_run(tr, NULL, NULL, NULL) == IAPO_OK) {
		const iapo_weights *w = iapo_trainer_weights(tr);
		*np = iapo_param_count(&w->cfg);
		copy = malloc(*np * sizeof(float));
		memcpy(copy, w->block, *np * sizeof(float));
	} else {
		CHECK(0, "%s: %s", o->out, iapo_errmsg());
	}
	iapo_trainer_free(tr);
	return copy;
}

static char *metrics_of(const char *run, int *lines)
{
	char *m = fixture_metrics(run, lines);
	CHECK(m != NULL, "metrics of %s", run);
	return m;
}

static void test_iapo_metrics_and_grpo_equivalence(void)
{
	FIXTURE_NEED(have_fx);
	iapo_train_opts g, z, w;
	const char *zero[] = {"algo", "iapo", "w-info", "0", "w-conf", "0", NULL};
	const char *some[] = {"algo", "iapo", "w-info", "0.3", "w-conf", "0.3", NULL};
	if (opts_for("grpo", 3, NULL, &g) || opts_for("iapo0", 3, zero, &z) || opts_for("iapo3", 3, some, &w)) return;
	size_t n1 = 0, n2 = 0, n3 = 0;
	float *a = run_all(&g, &n1), *b = run_all(&z, &n2), *c = run_all(&w, &n3);
	CHECK(a && b && c && n1 == n2 && n1 == n3, "runs");
	if (a && b && c) {
		CHECK(!memcmp(a, b, n1 * sizeof(float)), "--algo iapo with w_s = w_c = 0: the weights of GRPO");
		CHECK(memcmp(a, c, n1 * sizeof(float)) != 0, "w_s = w_c = 0.3 changes them");
	}
	/* metrics.jsonl with times: IAPO's three fields on each line, seconds_info included. */
	char p[1300];
	snprintf(p, sizeof p, "%s/metrics.jsonl", w.out);
	size_t len;
	char *text = fixture_read(p, &len);
	int lines = 0;
	for (size_t i = 0; text && i < len; i++) lines += text[i] == '\n';
	CHECK(lines == 3, "3 lines, found %d", lines);
	for (int i = 0; text && i < 3; i++) {
		const char *line = fixture_line(text, i);
		double gm = fixture_field(line, "info_gain_mean"), nz = fixture_field(line, "info_near_zero");
		double si = fixture_field(line, "seconds_info");
		CHECK(isfinite(gm) && nz >= 0 && nz <= 1 && si >= 0, "line %d: info_gain_mean %g, info_near_zero %g, seconds_info %g",
		      i + 1, gm, nz, si);
	}
	iapo_free(text);
	int lg;
	char *mg = metrics_of(g.out, &lg);
	CHECK(mg && !strstr(mg, "info_gain_mean"), "plain GRPO has no IAPO fields");
	free(mg);
	/* config.json records the algo's options */
	snprintf(p, sizeof p, "%s/config.json", w.out);
	cJSON *cfg = NULL;
	CHECK(iapo_json_load(p, 1 << 20, &cfg) == IAPO_OK, "%s", iapo_errmsg());
	const cJSON *al = cJSON_GetObjectItemCaseSensitive(cfg, "algo"), *wi = cJSON_GetObjectItemCaseSensitive(cfg, "w-info");
	const cJSON *pf = cJSON_GetObjectItemCaseSensitive(cfg, "postfix"), *ds = cJSON_GetObjectItemCaseSensitive(cfg, "dynamic-sampling");
	CHECK(cJSON_IsString(al) && !strcmp(al->valuestring, "iapo") && cJSON_IsNumber(wi) && wi->valuedouble == 0.3 &&
		      cJSON_IsString(pf) && !strcmp(pf->valuestring, "</think><answer>") && cJSON_IsString(ds) &&
		      !strcmp(ds->valuestring, "off"),
	      "config.json records the algo and its options");
	cJSON_Delete(cfg);
	free(a);
	free(b);
	free(c);
	iapo_train_opts_free(&g);
	iapo_train_opts_free(&z);
	iapo_train_opts_free(&w);
}

/* Straight run of `steps`; then k steps, save, one lost step, resume, rest. */
static void resume_case(const char *tag, const char *const *kv, int steps, int k, const char *must_have)
{
	FIXTURE_NEED(have_fx);
	char ra[64], rb[64];
	snprintf(ra, sizeof ra, "%s-straight", tag);
	snprintf(rb, sizeof rb, "%s-resumed", tag);
	iapo_train_opts a, b;
	if (opts_for(ra, steps, kv, &a) || opts_for(rb, steps, kv, &b)) return;
	size_t np;
	free(run_all(&a, &np));
	iapo_trainer *tr = NULL;
	CHECK(iapo_trainer_new(&b, &tr) == IAPO_OK, "%s", iapo_errmsg());
	if (tr) {
		for (int i = 0; i < k + 1; i++) {
			CHECK(iapo_trainer_step(tr, NULL) == IAPO_OK, "%s step %d: %s", tag, i + 1, iapo_errmsg());
			if (i + 1 == k) CHECK(iapo_trainer_save(tr) == IAPO_OK, "save: %s", iapo_errmsg());
		}
		iapo_trainer_free(tr);
	}
	fixture_set(&b, "resume", NULL);
	fixture_set(&b, "overwrite", "0");
	tr = NULL;
	CHECK(iapo_trainer_new(&b, &tr) == IAPO_OK, "%s resume: %s", tag, iapo_errmsg());
	if (tr) {
		CHECK(iapo_trainer_steps_done(tr) == k, "resumed after %ld", iapo_trainer_steps_done(tr));
		CHECK(iapo_trainer_run(tr, NULL, NULL, NULL) == IAPO_OK, "%s: %s", tag, iapo_errmsg());
		iapo_trainer_free(tr);
	}
	int na, nb;
	char *ma = metrics_of(a.out, &na), *mb = metrics_of(b.out, &nb);
	CHECK(ma && mb && na == steps && nb == steps && !strcmp(ma, mb), "%s: same metrics\nstraight:\n%sresumed:\n%s", tag,
	      ma ? ma : "", mb ? mb : "");
	CHECK(ma && strstr(ma, must_have), "%s: metrics hold %s:\n%s", tag, must_have, ma ? ma : "");
	const char *files[] = {"model.safetensors", "optimizer.bin"};
	for (int i = 0; i < 2; i++) {
		char pa[1400], pb[1400];
		snprintf(pa, sizeof pa, "%s/checkpoint-%d/%s", a.out, steps, files[i]);
		snprintf(pb, sizeof pb, "%s/checkpoint-%d/%s", b.out, steps, files[i]);
		CHECK(fixture_same_file(pa, pb), "%s: %s bit-identical", tag, files[i]);
	}
	free(ma);
	free(mb);
	iapo_train_opts_free(&a);
	iapo_train_opts_free(&b);
}

static void test_resume_iapo(void)
{
	const char *kv[] = {"algo", "iapo", "w-info", "0.3", "w-conf", "0.3", NULL};
	resume_case("iapo", kv, 4, 2, "\"info_gain_mean\"");
}

static void test_resume_iapo_iterations(void)
{
	const char *kv[] = {"algo", "iapo", "iterations", "2", "loss-type", "bnpo", "epsilon-high", "0.28", NULL};
	resume_case("iapo-it2", kv, 4, 1, "\"info_near_zero\"");
}

static void test_resume_dapo(void)
{
	const char *kv[] = {"algo", "dapo", "learning-rate", "2e-2", NULL};
	resume_case("dapo", kv, 4, 2, "\"dynamic_resamples\"");
	int n;
	char run[1200];
	snprintf(run, sizeof run, "%s/dapo-straight", fx.root);
	char *m = fixture_metrics(run, &n);
	double resampled = 0, dropped = 0, frac_min = 1;
	for (int i = 0; m && i < n; i++) {
		const char *line = fixture_line(m, i);
		resampled += fixture_field(line, "dynamic_groups_resampled");
		dropped += fixture_field(line, "dynamic_groups_dropped");
		double f = fixture_field(line, "loss_token_fraction");
		if (f < frac_min) frac_min = f;
		CHECK(fixture_field(line, "overlong_penalty_mean") <= 0, "overlong penalty <= 0");
	}
	fprintf(stderr, "  dapo: %g groups resampled, %g dropped in %d steps; smallest loss token share %.2f\n", resampled,
		dropped, n, frac_min);
	CHECK(resampled > 0, "dapo resampled some groups");
	CHECK(dropped == 0 || frac_min < 1, "dropped groups leave the loss");
	free(m);
}

static void test_resume_gfpo(void)
{
	const char *kv[] = {"algo", "gfpo", "gfpo-sample", "6", NULL};
	resume_case("gfpo", kv, 4, 2, "\"gfpo_length_kept\"");
	int n;
	char run[1200];
	snprintf(run, sizeof run, "%s/gfpo-straight", fx.root);
	char *m = fixture_metrics(run, &n);
	for (int i = 0; m && i < n; i++) {
		const char *line = fixture_line(m, i);
		double kept = fixture_field(line, "gfpo_length_kept"), sampled = fixture_field(line, "gfpo_length_sampled");
		CHECK(kept <= sampled && kept == fixture_field(line, "completion_length_mean"),
		      "step %d: kept length %g <= sampled %g, = the trained completions' mean", i + 1, kept, sampled);
	}
	free(m);
}

static void test_resume_sgrpo(void)
{
	const char *kv[] = {"algo", "sgrpo", "sgrpo-alpha", "3", "sgrpo-k", "8", "iterations", "2", NULL};
	resume_case("sgrpo", kv, 4, 1, "\"loss_token_fraction\"");
}

static void test_resume_gtpo_lenpen(void)
{
	const char *g[] = {"algo", "gtpo", NULL};
	resume_case("gtpo", g, 4, 2, "\"gtpo_bonus_mean\"");
	const char *l[] = {"algo", "lenpen", NULL};
	resume_case("lenpen", l, 4, 2, "\"length_reward_mean\"");
}

int main(void)
{
	have_fx = fixture_make(&fx, "train-algos", 0, 40, 7) == 0;
	CHECK(have_fx, "fixture: %s", iapo_errmsg());
	RUN(test_iapo_metrics_and_grpo_equivalence);
	RUN(test_resume_iapo);
	RUN(test_resume_iapo_iterations);
	RUN(test_resume_dapo);
	RUN(test_resume_gfpo);
	RUN(test_resume_sgrpo);
	RUN(test_resume_gtpo_lenpen);
	if (have_fx) iapo_fs_remove_all(fx.root);
	TEST_END();
}
