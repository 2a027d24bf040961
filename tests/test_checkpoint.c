/*
 * test_checkpoint.c — what a checkpoint holds and how damage is reported:
 *  - optimizer.bin round-trips m, v and the step; a flipped byte, a cut file,
 *    another magic or parameter count are FORMAT errors naming the file;
 *  - the latest complete checkpoint-N is found (temporary and unfinished
 *    directories ignored, stale temporaries cleaned, an old checkpoint moved
 *    aside by an interrupted replace put back);
 *  - a run's checkpoint is an HF directory iapo_weights_load reads back equal
 *    to the trainer's weights, with tokenizer files, trainer_state.json
 *    (HF's fields, log history, adam step, data position), rng_state.json,
 *    and config.json in the run directory reads back as the same options;
 *  - --resume on a damaged optimizer.bin, a missing run directory, a run
 *    without checkpoints: clear errors naming what is wrong; an --out that
 *    holds another run is refused without --resume/--overwrite.
 */
#include <math.h>

#include "core/status.h"
#include "rl/checkpoint.h"
#include "rl/trainer.h"
#include "test.h"
#include "trainer_fixture.h"

static fixture fx;
static int have_fx;
static char scratch[1200];

static void set(iapo_train_opts *o, const char *k, const char *v)
{
	if (iapo_train_opts_set(o, k, v) != IAPO_OK) CHECK(0, "set %s: %s", k, iapo_errmsg());
}

static void write_bytes(const char *path, const void *d, size_t n)
{
	FILE *f = fopen(path, "wb");
	if (!f) return;
	fwrite(d, 1, n, f);
	fclose(f);
}

static void test_optimizer_file(void)
{
	enum { N = 1001 };
	float m[N], v[N], m2[N], v2[N];
	for (int i = 0; i < N; i++) m[i] = (float)sin(i) * 1e-3f, v[i] = (float)(i % 7) * 1e-6f;
	char p[1300];
	snprintf(p, sizeof p, "%s/optimizer.bin", scratch);
	long t = 0;
	CHECK(iapo_optimizer_save(p, m, v, N, 17) == IAPO_OK, "%s", iapo_errmsg());
	CHECK(iapo_optimizer_load(p, m2, v2, N, &t) == IAPO_OK, "%s", iapo_errmsg());
	CHECK(t == 17 && !memcmp(m, m2, sizeof m) && !memcmp(v, v2, sizeof v), "round trip (t %ld)", t);
	size_t len;
	char *d = fixture_read(p, &len);
	CHECK(d && len == 64 + 8 * (size_t)N, "size %zu", len);
	if (!d) return;
	char q[1300];
	snprintf(q, sizeof q, "%s/bad.bin", scratch);
	/* a flipped bit in the moments */
	d[64 + 4 * 500] ^= 0x10;
	write_bytes(q, d, len);
	CHECK(iapo_optimizer_load(q, m2, v2, N, &t) == IAPO_ERR_FORMAT && strstr(iapo_errmsg(), "bad.bin") &&
		      strstr(iapo_errmsg(), "checksum"),
	      "corrupted moments: %s", iapo_errmsg());
	d[64 + 4 * 500] ^= 0x10;
	/* cut short */
	write_bytes(q, d, len - 10);
	CHECK(iapo_optimizer_load(q, m2, v2, N, &t) == IAPO_ERR_FORMAT && strstr(iapo_errmsg(), "bad.bin") &&
		      strstr(iapo_errmsg(), "truncated"),
	      "truncated: %s", iapo_errmsg());
	write_bytes(q, d, 20);
	CHECK(iapo_optimizer_load(q, m2, v2, N, &t) == IAPO_ERR_FORMAT && strstr(iapo_errmsg(), "truncated"),
	      "truncated header: %s", iapo_errmsg());
	/* another file type */
	d[0] = 'X';
	write_bytes(q, d, len);
	CHECK(iapo_optimizer_load(q, m2, v2, N, &t) == IAPO_ERR_FORMAT && strstr(iapo_errmsg(), "magic"),
	      "magic: %s", iapo_errmsg());
	d[0] = 'I';
	/* another model */
	CHECK(iapo_optimizer_load(p, m2, v2, N - 1, &t) == IAPO_ERR_FORMAT && strstr(iapo_errmsg(), "parameter count"),
	      "parameter count: %s", iapo_errmsg());
	snprintf(q, sizeof q, "%s/none.bin", scratch);
	CHECK(iapo_optimizer_load(q, m2, v2, N, &t) == IAPO_ERR_IO && strstr(iapo_errmsg(), "none.bin"), "missing: %s",
	      iapo_errmsg());
	iapo_free(d);
}

static void test_latest(void)
{
	char run[1300], p[1400];
	snprintf(run, sizeof run, "%s/latest", scratch);
	const char *dirs[] = {"checkpoint-2", "checkpoint-10", "checkpoint-12", "checkpoint-30.tmp-abc", "checkpoint-x",
			      "checkpoint-7"};
	int marked[] = {1, 1, 0, 1, 1, 1};
	for (int i = 0; i < 6; i++) {
		snprintf(p, sizeof p, "%s/%s", run, dirs[i]);
		iapo_fs_mkdir_p(p);
		if (marked[i]) {
			snprintf(p, sizeof p, "%s/%s/trainer_state.json", run, dirs[i]);
			write_bytes(p, "{}", 2);
		}
	}
	long k = -5;
	CHECK(iapo_checkpoint_latest(run, "trainer_state.json", &k) == IAPO_OK && k == 10,
	      "latest complete: checkpoint-10, found %ld", k);
	CHECK(iapo_checkpoint_latest(run, NULL, &k) == IAPO_OK && k == 12, "any: 12, found %ld", k);
	CHECK(iapo_checkpoint_clean(run) == IAPO_OK, "%s", iapo_errmsg());
	snprintf(p, sizeof p, "%s/checkpoint-30.tmp-abc", run);
	CHECK(!iapo_fs_exists(p), "stale temporary removed");
	/* a replace without an atomic exchange moves the old checkpoint aside
	 * first: a crash before the new one is in leaves only checkpoint-N.old-* */
	snprintf(p, sizeof p, "%s/checkpoint-20.old-abc/trainer_state.json", run);
	iapo_fs_mkdir_p(p);
	snprintf(p, sizeof p, "%s/checkpoint-2.old-def", run);
	iapo_fs_mkdir_p(p);
	CHECK(iapo_checkpoint_clean(run) == IAPO_OK, "%s", iapo_errmsg());
	CHECK(iapo_checkpoint_latest(run, "trainer_state.json", &k) == IAPO_OK && k == 20,
	      "checkpoint-20 restored from checkpoint-20.old-abc, found latest %ld", k);
	CHECK(!iapo_fs_exists(p), "checkpoint-2.old-def removed (checkpoint-2 is there)");
	snprintf(p, sizeof p, "%s/checkpoint-2/trainer_state.json", run);
	CHECK(iapo_fs_exists(p), "checkpoint-2 kept");
	snprintf(p, sizeof p, "%s/none", scratch);
	CHECK(iapo_checkpoint_latest(p, NULL, &k) == IAPO_ERR_IO && strstr(iapo_errmsg(), "none"), "missing run dir: %s",
	      iapo_errmsg());
}

static int run_opts(const char *name, iapo_train_opts *o)
{
	if (fixture_opts(&fx, name, o)) return -1;
	set(o, "prompts-per-step", "4");
	set(o, "num-generations", "4");
	set(o, "micro-batch", "8");
	set(o, "max-steps", "2");
	set(o, "save-steps", "1");
	return 0;
}

static void test_run_checkpoint(void)
{
	if (!have_fx) {
		CHECK(0, "no fixture");
		return;
	}
	iapo_train_opts o;
	if (run_opts("files", &o)) return;
	iapo_trainer *tr = NULL;
	CHECK(iapo_trainer_new(&o, &tr) == IAPO_OK && iapo_trainer_run(tr, NULL, NULL, NULL) == IAPO_OK, "%s",
	      iapo_errmsg());
	if (!tr) return;
	char p[1400];
	const char *files[] = {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
			       "tokenizer_config.json", "trainer_state.json", "optimizer.bin", "rng_state.json"};
	for (int k = 1; k <= 2; k++)
		for (int i = 0; i < 8; i++) {
			snprintf(p, sizeof p, "%s/checkpoint-%d/%s", o.out, k, files[i]);
			CHECK(iapo_fs_exists(p), "%s", p);
		}
	snprintf(p, sizeof p, "%s/checkpoint-2/rollout.bin", o.out);
	CHECK(!iapo_fs_exists(p), "no rollout.bin with --iterations 1");
	/* the HF directory loads as the trainer's weights */
	snprintf(p, sizeof p, "%s/checkpoint-2", o.out);
	iapo_weights w;
	CHECK(iapo_weights_load(p, &w) == IAPO_OK, "%s", iapo_errmsg());
	const iapo_weights *tw = iapo_trainer_weights(tr);
	size_t n = iapo_param_count(&tw->cfg);
	CHECK(w.block && iapo_param_count(&w.cfg) == n && !memcmp(w.block, tw->block, n * sizeof(float)),
	      "checkpoint-2 = the trainer's weights");
	iapo_weights_free(&w);
	/* trainer_state.json */
	snprintf(p, sizeof p, "%s/checkpoint-2/trainer_state.json", o.out);
	cJSON *s = NULL;
	CHECK(iapo_json_load(p, 1 << 24, &s) == IAPO_OK, "%s", iapo_errmsg());
	if (s) {
		struct {
			const char *key;
			double want;
		} f[] = {{"global_step", 2},	{"max_steps", 2},     {"train_batch_size", 16}, {"adam_step", 2},
			 {"seed", 42},		{"rollout_step", 2},  {"data_epoch", 0},	{"data_position", 8},
			 {"num_generations", 4}, {"prompts_per_step", 4}, {"epoch", 2.0 / 7}};
		for (size_t i = 0; i < sizeof f / sizeof *f; i++) {
			const cJSON *v = cJSON_GetObjectItemCaseSensitive(s, f[i].key);
			CHECK(cJSON_IsNumber(v) && fabs(v->valuedouble - f[i].want) < 1e-12, "%s: expected %g, found %g",
			      f[i].key, f[i].want, cJSON_IsNumber(v) ? v->valuedouble : NAN);
		}
		const cJSON *h = cJSON_GetObjectItemCaseSensitive(s, "log_history");
		CHECK(cJSON_GetArraySize(h) == 2, "log_history: 2 entries");
		const cJSON *h1 = cJSON_GetArrayItem(h, 1);
		const cJSON *st = h1 ? cJSON_GetObjectItemCaseSensitive(h1, "step") : NULL;
		CHECK(cJSON_IsNumber(st) && st->valuedouble == 2, "log_history[1].step = 2");
		CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(s, "best_metric")), "no eval: best_metric null");
		cJSON_Delete(s);
	}
	snprintf(p, sizeof p, "%s/checkpoint-2/rng_state.json", o.out);
	s = NULL;
	CHECK(iapo_json_load(p, 1 << 20, &s) == IAPO_OK, "%s", iapo_errmsg());
	const cJSON *seed = s ? cJSON_GetObjectItemCaseSensitive(s, "seed") : NULL;
	CHECK(cJSON_IsNumber(seed) && seed->valuedouble == 42, "rng_state seed");
	cJSON_Delete(s);
	/* config.json of the run reads back as the same resolved options */
	snprintf(p, sizeof p, "%s/config.json", o.out);
	iapo_train_opts back;
	CHECK(iapo_train_opts_default(&back) == IAPO_OK && iapo_train_opts_load(&back, p) == IAPO_OK, "%s", iapo_errmsg());
	cJSON *j1 = iapo_train_opts_to_json(iapo_trainer_opts(tr)), *j2 = iapo_train_opts_to_json(&back);
	char *t1 = j1 ? cJSON_PrintUnformatted(j1) : NULL, *t2 = j2 ? cJSON_PrintUnformatted(j2) : NULL;
	CHECK(t1 && t2 && !strcmp(t1, t2), "config.json round trip:\n%s\n%s", t1 ? t1 : "", t2 ? t2 : "");
	CHECK(back.micro_batch == 8 && back.grad_accum == 2 && back.learning_rate == 5e-3, "resolved values written");
	iapo_free(t1);
	iapo_free(t2);
	cJSON_Delete(j1);
	cJSON_Delete(j2);
	iapo_train_opts_free(&back);
	/* no temporary directories left */
	long k;
	CHECK(iapo_checkpoint_latest(o.out, "trainer_state.json", &k) == IAPO_OK && k == 2, "latest is 2");
	snprintf(p, sizeof p, "ls -a '%s' | grep -q -e '\\.tmp-' -e '\\.old-'", o.out);
	CHECK(system(p) != 0, "no temporary directories in %s", o.out);
	iapo_trainer_free(tr);
	iapo_train_opts_free(&o);
}

static void test_resume_errors(void)
{
	if (!have_fx) {
		CHECK(0, "no fixture");
		return;
	}
	iapo_train_opts o;
	if (run_opts("damaged", &o)) return;
	iapo_trainer *tr = NULL;
	CHECK(iapo_trainer_new(&o, &tr) == IAPO_OK && iapo_trainer_run(tr, NULL, NULL, NULL) == IAPO_OK, "%s",
	      iapo_errmsg());
	iapo_trainer_free(tr);
	/* without --resume or --overwrite the run is not clobbered */
	set(&o, "overwrite", "0");
	tr = NULL;
	CHECK(iapo_trainer_new(&o, &tr) == IAPO_ERR_ARG && strstr(iapo_errmsg(), "--resume"), "refused: %s",
	      iapo_errmsg());
	iapo_trainer_free(tr);
	set(&o, "resume", NULL);
	char p[1400];
	snprintf(p, sizeof p, "%s/checkpoint-2/optimizer.bin", o.out);
	size_t len;
	char *d = fixture_read(p, &len);
	CHECK(d != NULL, "read %s", p);
	if (d) {
		d[len / 2] ^= 1;
		write_bytes(p, d, len);
		tr = NULL;
		CHECK(iapo_trainer_new(&o, &tr) == IAPO_ERR_FORMAT && strstr(iapo_errmsg(), "checkpoint-2/optimizer.bin") &&
			      strstr(iapo_errmsg(), "corrupted"),
		      "corrupted optimizer.bin: %s", iapo_errmsg());
		iapo_trainer_free(tr);
		d[len / 2] ^= 1;
		write_bytes(p, d, len - 100);
		tr = NULL;
		CHECK(iapo_trainer_new(&o, &tr) == IAPO_ERR_FORMAT && strstr(iapo_errmsg(), "checkpoint-2/optimizer.bin") &&
			      strstr(iapo_errmsg(), "truncated"),
		      "truncated optimizer.bin: %s", iapo_errmsg());
		iapo_trainer_free(tr);
		write_bytes(p, d, len);
		tr = NULL;
		CHECK(iapo_trainer_new(&o, &tr) == IAPO_OK, "repaired: %s", iapo_errmsg());
		iapo_trainer_free(tr);
		iapo_free(d);
	}
	/* trainer_state.json that disagrees with its directory */
	snprintf(p, sizeof p, "%s/checkpoint-2/trainer_state.json", o.out);
	char *text = NULL;
	if (iapo_fs_read_file(p, 1 << 24, &text, &len) == IAPO_OK) {
		char *g = strstr(text, "\"global_step\":\t2");
		CHECK(g != NULL, "global_step in %s", p);
		if (g) {
			g[strlen("\"global_step\":\t")] = '5';
			write_bytes(p, text, len);
			tr = NULL;
			CHECK(iapo_trainer_new(&o, &tr) == IAPO_ERR_FORMAT && strstr(iapo_errmsg(), "global_step"),
			      "global_step mismatch: %s", iapo_errmsg());
			iapo_trainer_free(tr);
		}
		iapo_free(text);
	}
	/* a missing run directory, and one without a checkpoint */
	iapo_train_opts m;
	if (run_opts("never-ran", &m)) return;
	set(&m, "resume", NULL);
	set(&m, "overwrite", "0");
	tr = NULL;
	CHECK(iapo_trainer_new(&m, &tr) == IAPO_ERR_IO && strstr(iapo_errmsg(), "never-ran") &&
		      strstr(iapo_errmsg(), "--resume"),
	      "missing run dir: %s", iapo_errmsg());
	iapo_trainer_free(tr);
	iapo_fs_mkdir_p(m.out);
	tr = NULL;
	CHECK(iapo_trainer_new(&m, &tr) == IAPO_ERR_IO && strstr(iapo_errmsg(), "checkpoint-N"),
	      "no checkpoint: %s", iapo_errmsg());
	iapo_trainer_free(tr);
	iapo_train_opts_free(&m);
	iapo_train_opts_free(&o);
}

int main(void)
{
	snprintf(scratch, sizeof scratch, "%s/checkpoint-test", test_env("IAPO_TMP", "/tmp"));
	iapo_fs_remove_all(scratch);
	iapo_fs_mkdir_p(scratch);
	have_fx = fixture_make(&fx, "checkpoint-fixture", 1, 40, 3) == 0;
	CHECK(have_fx, "fixture: %s", iapo_errmsg());
	RUN(test_optimizer_file);
	RUN(test_latest);
	RUN(test_run_checkpoint);
	RUN(test_resume_errors);
	iapo_fs_remove_all(scratch);
	if (have_fx) iapo_fs_remove_all(fx.root);
	TEST_END();
}
