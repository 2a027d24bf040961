/*
 * test_trainer_options.c — the option table of `iapo train`: the reference's
 * defaults (iapo-reference §6), the batch layout derived from any consistent
 * subset (and inconsistent ones refused with the numbers), JSON config files
 * (kebab or snake keys, unknown keys and wrong types named), precedence
 * (RUN_DIR/config.json < --config < command line), the resolved options as
 * JSON and back; the rollout precision (bf16 by default, --rollout-fp32)
 * and the IAPO pass that follows from it. Also the progress line the CLI
 * draws with them (src/core/progress.h): redrawn in place on a terminal,
 * plain lines otherwise.
 */
#include <math.h>

#include "core/mem.h"
#include "core/progress.h"
#include "core/status.h"
#include "io/fs.h"
#include "rl/options.h"
#include "test.h"

static char dir[1024];

static void write_text(const char *name, const char *text, char *path, size_t n)
{
	snprintf(path, n, "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	if (f) {
		fputs(text, f);
		fclose(f);
	}
}

static iapo_status with(iapo_train_opts *o, const char *const *kv)
{
	for (; *kv; kv += 2) IAPO_TRY(iapo_train_opts_set(o, kv[0], kv[1]));
	return IAPO_OK;
}

static void test_defaults(void)
{
	iapo_train_opts o;
	CHECK(iapo_train_opts_default(&o) == IAPO_OK, "%s", iapo_errmsg());
	CHECK(o.learning_rate == 1e-6 && o.beta == 0.001 && o.num_generations == 8 && o.temperature == 1.0 &&
		      o.max_completion_tokens == 2048 && o.max_prompt_tokens == 512,
	      "lr %g beta %g G %ld T %g", o.learning_rate, o.beta, o.num_generations, o.temperature);
	CHECK(o.adam_beta1 == 0.9 && o.adam_beta2 == 0.99 && o.adam_eps == 1e-8 && o.weight_decay == 0 &&
		      o.max_grad_norm == 1.0 && o.warmup_steps == 0 && !strcmp(o.lr_schedule, "linear"),
	      "optimizer defaults");
	CHECK(o.epsilon_low == 0.2 && o.epsilon_high == 0.2 && !strcmp(o.loss_type, "bnpo") &&
		      !strcmp(o.scale_rewards, "group") && o.iterations == 1 && o.seed == 42,
	      "loss defaults");
	CHECK(o.reward_correct == 1 && o.reward_wrong == -1 && o.reward_format == 0.5 && o.reward_format_bad == -0.5,
	      "reward weights");
	CHECK(iapo_train_opts_resolve(&o) == IAPO_ERR_ARG && strstr(iapo_errmsg(), "--model"), "model required: %s",
	      iapo_errmsg());
	const char *req[] = {"model", "m", "out", "r", NULL};
	CHECK(with(&o, req) == IAPO_OK && iapo_train_opts_resolve(&o) == IAPO_ERR_ARG && strstr(iapo_errmsg(), "--data"),
	      "data required: %s", iapo_errmsg());
	const char *d[] = {"data", "d.jsonl", NULL};
	CHECK(with(&o, d) == IAPO_OK && iapo_train_opts_resolve(&o) == IAPO_OK, "%s", iapo_errmsg());
	/* the reference's 12 prompts x 8 = 96 completions per step */
	CHECK(o.prompts_per_step == 12 && o.micro_batch == 4 && o.grad_accum == 24, "P %ld mb %ld ga %ld",
	      o.prompts_per_step, o.micro_batch, o.grad_accum);
	iapo_train_opts_free(&o);
}

typedef struct {
	const char *kv[10];
	long P, mb, ga; /* expected; P = 0: an error mentioning `err` */
	const char *err;
} batch_case;

static void test_batch_layout(void)
{
	static const batch_case cases[] = {
		{{"prompts-per-step", "3", "micro-batch", "6", NULL}, 3, 6, 4, NULL},
		{{"prompts-per-step", "3", "grad-accum", "2", NULL}, 3, 12, 2, NULL},
		{{"micro-batch", "8", "grad-accum", "3", NULL}, 3, 8, 3, NULL},
		{{"grad-accum", "4", NULL}, 12, 24, 4, NULL},
		{{"micro-batch", "32", NULL}, 12, 32, 3, NULL},
		{{"prompts-per-step", "5", "num-generations", "3", NULL}, 5, 3, 5, NULL},
		{{"prompts-per-step", "2", "num-generations", "16", "micro-batch", "8", "grad-accum", "4", NULL}, 2, 8, 4, NULL},
		{{"prompts-per-step", "2", "micro-batch", "8", "grad-accum", "3", NULL}, 0, 0, 0, "inconsistent"},
		{{"micro-batch", "5", "grad-accum", "3", NULL}, 0, 0, 0, "multiple of --num-generations"},
		{{"prompts-per-step", "3", "micro-batch", "5", NULL}, 0, 0, 0, "divisor"},
		{{"prompts-per-step", "3", "grad-accum", "5", NULL}, 0, 0, 0, "divisor"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		const batch_case *c = &cases[i];
		iapo_train_opts o;
		const char *req[] = {"model", "m", "data", "d", "out", "r", NULL};
		iapo_train_opts_default(&o);
		iapo_status st = with(&o, req);
		if (st == IAPO_OK) st = with(&o, c->kv);
		if (st == IAPO_OK) st = iapo_train_opts_resolve(&o);
		if (c->P) {
			CHECK(st == IAPO_OK && o.prompts_per_step == c->P && o.micro_batch == c->mb && o.grad_accum == c->ga,
			      "case %zu: P %ld mb %ld ga %ld (%s)", i, o.prompts_per_step, o.micro_batch, o.grad_accum,
			      st ? iapo_errmsg() : "ok");
			CHECK(o.micro_batch * o.grad_accum == o.prompts_per_step * o.num_generations, "case %zu: invariant", i);
		} else {
			CHECK(st == IAPO_ERR_ARG && strstr(iapo_errmsg(), c->err), "case %zu: expected an error with '%s', found %s",
			      i, c->err, st ? iapo_errmsg() : "success");
		}
		iapo_train_opts_free(&o);
	}
}

static void test_values(void)
{
	iapo_train_opts o;
	iapo_train_opts_default(&o);
	CHECK(iapo_train_opts_set(&o, "learning_rate", "3e-4") == IAPO_OK && o.learning_rate == 3e-4, "snake case name");
	CHECK(iapo_train_opts_set(&o, "loss-type", "dr_grpo") == IAPO_OK && !strcmp(o.loss_type, "dr_grpo"), "enum");
	CHECK(iapo_train_opts_set(&o, "loss-type", "ppo") == IAPO_ERR_ARG && strstr(iapo_errmsg(), "grpo, bnpo or dr_grpo"),
	      "bad enum: %s", iapo_errmsg());
	CHECK(iapo_train_opts_set(&o, "lr-schedule", "cosine") == IAPO_OK, "schedule");
	CHECK(iapo_train_opts_set(&o, "num-generations", "1") == IAPO_ERR_ARG, "G >= 2");
	CHECK(iapo_train_opts_set(&o, "temperature", "0") == IAPO_ERR_ARG, "temperature > 0");
	CHECK(iapo_train_opts_set(&o, "top-p", "1.5") == IAPO_ERR_ARG && strstr(iapo_errmsg(), "--top-p"), "top-p range");
	CHECK(iapo_train_opts_set(&o, "epochs", "2x") == IAPO_ERR_ARG && strstr(iapo_errmsg(), "'2x'"), "not an integer");
	CHECK(iapo_train_opts_set(&o, "no-such", "1") == IAPO_ERR_ARG && strstr(iapo_errmsg(), "--no-such"), "unknown");
	CHECK(iapo_train_opts_set(&o, "dedupe", NULL) == IAPO_OK && o.dedupe == 1, "flag");
	CHECK(iapo_train_opts_set(&o, "dedupe", "false") == IAPO_OK && o.dedupe == 0, "flag false");
	CHECK(iapo_train_opts_is_flag("resume") == 1 && iapo_train_opts_is_flag("beta") == 0 &&
		      iapo_train_opts_is_flag("nope") == -1,
	      "is_flag");
	iapo_train_opts_free(&o);
}

static void test_json(void)
{
	char path[1200], bad[1200];
	write_text("cfg.json",
		   "{\"model\": \"M\", \"data\": \"D\", \"out\": \"R\", \"learning_rate\": 2e-5, \"beta\": 0,\n"
		   " \"num-generations\": 4, \"no-one-shot\": true, \"system\": null, \"loss-type\": \"grpo\"}",
		   path, sizeof path);
	iapo_train_opts o;
	iapo_train_opts_default(&o);
	CHECK(iapo_train_opts_load(&o, path) == IAPO_OK, "%s", iapo_errmsg());
	CHECK(!strcmp(o.model, "M") && o.learning_rate == 2e-5 && o.beta == 0 && o.num_generations == 4 &&
		      o.no_one_shot == 1 && o.system == NULL && !strcmp(o.loss_type, "grpo"),
	      "values from the file");
	write_text("unknown.json", "{\"learning-rate\": 1e-5, \"lerning_rate\": 3}", bad, sizeof bad);
	double lr_before = o.learning_rate;
	CHECK(iapo_train_opts_load(&o, bad) == IAPO_ERR_ARG && strstr(iapo_errmsg(), "unknown.json") &&
		      strstr(iapo_errmsg(), "'lerning_rate'"),
	      "unknown key named: %s", iapo_errmsg());
	CHECK(o.learning_rate == lr_before, "a failed file changes nothing: %g", o.learning_rate);
	write_text("type.json", "{\"epochs\": \"two\"}", bad, sizeof bad);
	CHECK(iapo_train_opts_load(&o, bad) == IAPO_ERR_ARG && strstr(iapo_errmsg(), "'epochs'") &&
		      strstr(iapo_errmsg(), "integer"),
	      "wrong type: %s", iapo_errmsg());
	write_text("frac.json", "{\"epochs\": 1.5}", bad, sizeof bad);
	CHECK(iapo_train_opts_load(&o, bad) == IAPO_ERR_ARG, "non-integral integer");
	write_text("arr.json", "[1, 2]", bad, sizeof bad);
	CHECK(iapo_train_opts_load(&o, bad) == IAPO_ERR_ARG && strstr(iapo_errmsg(), "object"), "not an object: %s",
	      iapo_errmsg());
	write_text("syntax.json", "{\"beta\": }", bad, sizeof bad);
	CHECK(iapo_train_opts_load(&o, bad) == IAPO_ERR_FORMAT && strstr(iapo_errmsg(), "syntax.json"), "syntax: %s",
	      iapo_errmsg());
	/* to_json -> apply_json is the identity */
	CHECK(iapo_train_opts_resolve(&o) == IAPO_OK, "%s", iapo_errmsg());
	cJSON *j = iapo_train_opts_to_json(&o);
	iapo_train_opts b;
	iapo_train_opts_default(&b);
	CHECK(j && iapo_train_opts_apply_json(&b, j, "roundtrip") == IAPO_OK, "%s", iapo_errmsg());
	cJSON *j2 = iapo_train_opts_to_json(&b);
	char *t1 = cJSON_PrintUnformatted(j), *t2 = cJSON_PrintUnformatted(j2);
	CHECK(t1 && t2 && !strcmp(t1, t2), "round trip:\n%s\n%s", t1, t2);
	CHECK(t1 && strstr(t1, "\"learning-rate\":2e-05") && strstr(t1, "\"micro-batch\":4") && !strstr(t1, "resume"),
	      "kebab keys, resolved values, no resume: %s", t1);
	iapo_free(t1);
	iapo_free(t2);
	cJSON_Delete(j);
	cJSON_Delete(j2);
	iapo_train_opts_free(&b);
	iapo_train_opts_free(&o);
}

static void test_args(void)
{
	char cfg[1200], run[1200], runcfg[1300];
	write_text("args.json", "{\"learning-rate\": 0.5, \"beta\": 0.25, \"epochs\": 3}", cfg, sizeof cfg);
	snprintf(run, sizeof run, "%s/run", dir);
	iapo_fs_mkdir_p(run);
	snprintf(runcfg, sizeof runcfg, "%s/config.json", run);
	FILE *f = fopen(runcfg, "w");
	if (f) {
		fputs("{\"learning-rate\": 0.1, \"beta\": 0.1, \"epochs\": 9, \"seed\": 7}", f);
		fclose(f);
	}
	/* command line > --config > RUN_DIR/config.json (with --resume) > defaults */
	char *argv[] = {"train", "--beta", "0.125", "--config", cfg, "--out", run, "--resume", NULL};
	iapo_train_opts o;
	int help;
	iapo_train_opts_default(&o);
	CHECK(iapo_train_opts_from_args(&o, 8, argv, &help) == IAPO_OK && !help, "%s", iapo_errmsg());
	CHECK(o.beta == 0.125 && o.learning_rate == 0.5 && o.epochs == 3 && o.seed == 7 && o.resume,
	      "precedence: beta %g lr %g epochs %ld seed %ld", o.beta, o.learning_rate, o.epochs, o.seed);
	iapo_train_opts_free(&o);
	char *argv2[] = {"train", "--learning-rate", "0.1", "--help", NULL};
	iapo_train_opts_default(&o);
	CHECK(iapo_train_opts_from_args(&o, 4, argv2, &help) == IAPO_OK && help, "help");
	iapo_train_opts_free(&o);
	char *argv3[] = {"train", "--beta", NULL};
	iapo_train_opts_default(&o);
	CHECK(iapo_train_opts_from_args(&o, 2, argv3, &help) == IAPO_ERR_ARG && strstr(iapo_errmsg(), "--beta"),
	      "missing value: %s", iapo_errmsg());
	iapo_train_opts_free(&o);
	char *argv4[] = {"train", "stray", NULL};
	iapo_train_opts_default(&o);
	CHECK(iapo_train_opts_from_args(&o, 2, argv4, &help) == IAPO_ERR_ARG && strstr(iapo_errmsg(), "stray"),
	      "stray argument: %s", iapo_errmsg());
	iapo_train_opts_free(&o);
	char missing[1300];
	snprintf(missing, sizeof missing, "%s/absent-run", dir);
	char *argv5[] = {"train", "--out", missing, "--resume", NULL};
	iapo_train_opts_default(&o);
	CHECK(iapo_train_opts_from_args(&o, 4, argv5, &help) == IAPO_ERR_IO && strstr(iapo_errmsg(), "absent-run"),
	      "resume of a missing run: %s", iapo_errmsg());
	iapo_train_opts_free(&o);
	char *argv6[] = {"train", "--config", cfg, "--config", NULL};
	iapo_train_opts_default(&o);
	CHECK(iapo_train_opts_from_args(&o, 4, argv6, &help) == IAPO_ERR_ARG, "--config without a value");
	iapo_train_opts_free(&o);
}

/* Rollout precision: bf16 by default for every --algo, --rollout-fp32 the
 * way back; IAPO's pass follows its rollout (bf16 pass over a bf16 cache,
 * exact over an fp32 one), and contradictions are refused. --rollout-rows
 * (decoding from the weights' rows, not packs) is off unless given. */
typedef struct {
	const char *argv[8];
	int ok, bf16, info_bf16; /* expected after resolve; ok = 0: an ARG error naming `err` */
	const char *err;
} precision_case;

static void test_precision(void)
{
	char cfg[1200];
	write_text("fp32.json", "{\"rollout-bf16\": false}", cfg, sizeof cfg);
	const precision_case cases[] = {
		{{NULL}, 1, 1, 0, NULL},
		{{"--algo", "iapo", NULL}, 1, 1, 1, NULL},
		{{"--algo", "iapo", "--rollout-bf16", NULL}, 1, 1, 1, NULL},
		{{"--algo", "iapo", "--rollout-fp32", NULL}, 1, 0, 0, NULL},
		{{"--rollout-fp32", NULL}, 1, 0, 0, NULL},
		/* decoding from the rows instead of packs changes no precision */
		{{"--rollout-rows", "--algo", "iapo", NULL}, 1, 1, 1, NULL},
		{{"--algo", "iapo", "--rollout-fp32", "--info-recompute", "--info-bf16", NULL}, 1, 0, 1, NULL},
		{{"--algo", "iapo", "--info-recompute", NULL}, 1, 1, 0, NULL},
		/* a config.json from before bf16 became the default resumes in fp32 */
		{{"--algo", "iapo", "--config", cfg, NULL}, 1, 0, 0, NULL},
		{{"--rollout-bf16", "--rollout-fp32", NULL}, 0, 0, 0, "contradict"},
		{{"--algo", "iapo", "--rollout-fp32", "--info-bf16", NULL}, 0, 0, 0, "--info-recompute"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		const precision_case *c = &cases[i];
		char *argv[16] = {"train", "--model", "m", "--data", "d.jsonl", "--out", "r"};
		int argc = 7;
		for (int j = 0; c->argv[j]; j++) argv[argc++] = (char *)c->argv[j];
		iapo_train_opts o;
		int help;
		iapo_train_opts_default(&o);
		iapo_status st = iapo_train_opts_from_args(&o, argc, argv, &help);
		if (st == IAPO_OK) st = iapo_train_opts_resolve(&o);
		if (c->ok)
			CHECK(st == IAPO_OK && o.rollout_bf16 == c->bf16 && o.info_bf16 == c->info_bf16 &&
				      o.rollout_rows == (c->argv[0] && !strcmp(c->argv[0], "--rollout-rows")),
			      "case %zu: %s; rollout_bf16 %d info_bf16 %d", i, st ? iapo_errmsg() : "ok", o.rollout_bf16,
			      o.info_bf16);
		else
			CHECK(st == IAPO_ERR_ARG && strstr(iapo_errmsg(), c->err), "case %zu: %s", i,
			      st ? iapo_errmsg() : "accepted");
		iapo_train_opts_free(&o);
	}
}

static char *slurp(FILE *f)
{
	static char buf[4096];
	rewind(f);
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	buf[n] = 0;
	return buf;
}

static void test_progress(void)
{
	char b[32];
	CHECK(!strcmp(iapo_progress_duration(12.34, b, sizeof b), "12.3s"), "%s", b);
	CHECK(!strcmp(iapo_progress_duration(125, b, sizeof b), "2m05s"), "%s", b);
	CHECK(!strcmp(iapo_progress_duration(3700, b, sizeof b), "1h01m"), "%s", b);
	FILE *f = tmpfile();
	if (!f) return;
	iapo_progress p;
	iapo_progress_init(&p, f, "train", 0, 10, 1);
	iapo_progress_update(&p, 1, "reward 0.500");
	iapo_progress_note(&p, "eval: %d", 7);
	iapo_progress_update(&p, 5, "reward 0.750");
	iapo_progress_finish(&p);
	const char *t = slurp(f);
	CHECK(strstr(t, "\rtrain [##..................] 1/10 reward 0.500 | ") && strstr(t, "s/step | ETA "),
	      "terminal bar: %s", t);
	CHECK(strstr(t, "eval: 7\n") && strstr(t, "\rtrain [##########..........] 5/10 reward 0.750"), "note, redraw: %s", t);
	CHECK(t[strlen(t) - 1] == '\n' && strchr(strstr(t, "5/10"), '\n') != NULL, "finish ends the line");
	fclose(f);
	f = tmpfile();
	if (!f) return;
	iapo_progress_init(&p, f, "train", 3, 10, 0);
	iapo_progress_update(&p, 4, "acc 0.1");
	iapo_progress_update(&p, 5, "acc 0.2");
	iapo_progress_finish(&p);
	t = slurp(f);
	CHECK(!strchr(t, '\r') && strstr(t, "train step 4/10 acc 0.1 ") && strstr(t, "train step 5/10 acc 0.2 ") &&
		      strstr(t, "ETA"),
	      "plain lines: %s", t);
	fclose(f);
}

int main(void)
{
	snprintf(dir, sizeof dir, "%s/trainer-options", test_env("IAPO_TMP", "/tmp"));
	iapo_fs_remove_all(dir);
	iapo_fs_mkdir_p(dir);
	RUN(test_defaults);
	RUN(test_batch_layout);
	RUN(test_values);
	RUN(test_json);
	RUN(test_args);
	RUN(test_precision);
	RUN(test_progress);
	iapo_fs_remove_all(dir);
	TEST_END();
}
