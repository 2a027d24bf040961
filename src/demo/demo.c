/*
 * demo.c — the stages of `iapo demo` (see demo.h): data, base model, RL per
 * method and seed, evaluation, results.json, the table and report.html.
 *
 * Caching: each stage directory holds demo-stage.json = {"fingerprint":
 * <the settings that made it>, ...what it produced}. A stage is reused when
 * the fingerprint printed as text is identical and its outputs exist. The
 * base's fingerprint leaves the thread count out (a rebuild for a thread
 * count would cost minutes; the weights would differ only by summation
 * order); an RL run's holds its whole resolved config.json (threads
 * included), the base's fingerprint and the evaluation settings.
 *
 * Time estimates: each RL run (training + its evaluation) is assumed to cost
 * what the RL runs measured so far cost on average; before the first one, a
 * guess from the step count. Good to a factor, which is what a person
 * waiting needs.
 */
#include "demo/demo.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/mem.h"
#include "core/progress.h"
#include "core/status.h"
#include "data/bpe_train.h"
#include "data/synth.h"
#include "demo/html.h"
#include "demo/metrics.h"
#include "demo/report.h"
#include "demo/span_info.h"
#include "eval/eval.h"
#include "io/fs.h"
#include "io/json.h"
#include "model/generate.h"
#include "model/weights.h"
#include "rl/dataset.h"
#include "rl/iapo_adv.h"
#include "rl/info.h"
#include "rl/info_report.h"
#include "rl/options.h"
#include "rl/prompt.h"
#include "rl/sft_run.h"
#include "rl/trainer.h"
#include "tokenizer/tokenizer.h"

#define PATHN 4096
#define STAGE_FILE "demo-stage.json"

/* ---- methods -------------------------------------------------------------- */

typedef struct {
	const char *name, *algo, *about;
	int iapo;                 /* takes the demo's IAPO settings */
	const char *sets[2][2];   /* its own options on top ({NULL} = none) */
} method;

static const method methods[] = {
	{"grpo", "grpo", "GRPO: the group advantage on every token", 0, {{NULL, NULL}}},
	{"iapo", "iapo", "IAPO with the demo's settings: + information gain - confidence per token", 1, {{NULL, NULL}}},
	{"iapo_no_info", "iapo", "IAPO without the information term (--w-info 0)", 1, {{"w-info", "0"}}},
	{"iapo_refnorm", "iapo", "IAPO with the authors' normalisation (--norm reference)", 1, {{"norm", "reference"}}},
	{"iapo_answer_span", "iapo", "IAPO reading the whole answer block (--answer-tokens N)", 1,
	 {{"answer-tokens", "$SPAN"}}},
	{"lenpen", "lenpen", "GRPO + the Kimi k1.5 length reward", 0, {{NULL, NULL}}},
};
#define N_METHODS ((int)(sizeof methods / sizeof methods[0]))

int iapo_demo_method_count(void) { return N_METHODS; }
const char *iapo_demo_method_name(int i) { return i >= 0 && i < N_METHODS ? methods[i].name : NULL; }
const char *iapo_demo_method_about(int i) { return i >= 0 && i < N_METHODS ? methods[i].about : NULL; }

static int method_index(const char *s, size_t n)
{
	for (int i = 0; i < N_METHODS; i++)
		if (strlen(methods[i].name) == n && !strncmp(methods[i].name, s, n)) return i;
	return -1;
}

/* ---- options -------------------------------------------------------------- */

void iapo_demo_opts_default(iapo_demo_opts *o)
{
	/* Measured by the demo research (notes in the closing report): max value
	 * 20 makes the arithmetic learnable by this model in CI-scale SFT; the
	 * empty system prompt and no one-shot turn keep prompts short (the SFT
	 * teaches the format). */
	memset(o, 0, sizeof *o);
	o->out = "demo-run";
	o->seeds = 1;
	o->data_seed = 1;
	o->n_train = 5000;
	o->n_test = 500;
	o->min_steps = 2;
	o->max_steps = 4;
	o->max_value = 20;
	o->redundancy = 0.5;
	o->vocab = 1024;
	o->hidden = 128;
	o->layers = 4;
	o->heads = 4;
	o->kv_heads = 2;
	o->intermediate = 384;
	o->init_std = 0.02;
	o->sft_steps = 1000;
	o->sft_batch = 32;
	o->sft_warmup = 100;
	o->sft_lr = 3e-3;
	o->sft_seed = 1;
	o->system = "";
	o->one_shot = 0;
	o->rl_steps = 30;
	o->prompts_per_step = 8;
	o->group = 8;
	o->max_completion = 200;
	o->rl_lr = 1e-4;
	o->temperature = 1.0;
	o->beta = 0;
	o->loss_type = "bnpo";
	/* the research's ablations: with w_conf 1 the confidence term cancels the shortening GRPO itself
	 * finds on this task (90.6 vs 63.6 tokens); w_info 1 vs 0.3 hardly matters */
	o->iapo_opts[o->n_iapo_opts++] = "w-conf=0";
	o->methods = "grpo,iapo,iapo_no_info,iapo_refnorm,iapo_answer_span,lenpen";
	o->eval_problems = 100;
	o->eval_samples = 4;
	o->eval_seed = 7;
}

void iapo_demo_opts_quick(iapo_demo_opts *o)
{
	iapo_demo_opts_default(o);
	o->n_train = 400;
	o->n_test = 40;
	o->min_steps = 1;
	o->max_steps = 2;
	o->vocab = 384;
	o->hidden = 32;
	o->layers = 1;
	o->intermediate = 64;
	o->sft_steps = 60;
	o->sft_batch = 8;
	o->sft_warmup = 5;
	o->rl_steps = 3;
	o->prompts_per_step = 2;
	o->group = 4;
	o->max_completion = 96;
	o->rl_lr = 5e-4;
	o->eval_problems = 12;
	o->eval_samples = 2;
	o->quick = 1;
}

static iapo_status check_methods(const char *list)
{
	if (!list || !*list) return iapo_fail(IAPO_ERR_ARG, "--methods: expected a comma-separated list, found nothing");
	for (const char *p = list; *p;) {
		const char *e = strchr(p, ',');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		if (method_index(p, n) < 0)
			return iapo_fail(IAPO_ERR_ARG,
					 "--methods: expected names among grpo, iapo, iapo_no_info, iapo_refnorm, "
					 "iapo_answer_span, lenpen, found '%.*s'",
					 (int)n, p);
		p += n + (e ? 1 : 0);
	}
	return IAPO_OK;
}

/* The data stage's generator options: checked with the demo's options,
 * used when the data is (re)built. */
static void synth_opts(const iapo_demo_opts *o, iapo_synth_opts *so)
{
	iapo_synth_opts_default(so);
	so->seed = o->data_seed;
	so->n_train = o->n_train;
	so->n_test = o->n_test;
	so->min_steps = o->min_steps;
	so->max_steps = o->max_steps;
	so->redundancy = o->redundancy;
	so->max_value = o->max_value;
}

iapo_status iapo_demo_opts_check(const iapo_demo_opts *o)
{
#define NEED(cond, opt, what, fmt, val) \
	if (!(cond)) return iapo_fail(IAPO_ERR_ARG, opt ": expected " what ", found " fmt, val)
	NEED(o->out && *o->out, "--out", "a directory", "%s", "nothing");
	NEED(o->seeds >= 1 && o->seeds <= 100, "--seeds", "1..100", "%d", o->seeds);
	NEED(o->n_train >= 8, "--train", "at least 8", "%d", o->n_train);
	NEED(o->n_test >= 1, "--test", "at least 1", "%d", o->n_test);
	NEED(o->vocab >= IAPO_BPE_MIN_VOCAB && o->vocab <= 65536, "--vocab", "263..65536", "%d", o->vocab);
	NEED(o->hidden >= 8 && o->hidden % o->heads == 0, "--hidden", "a multiple of --heads, >= 8", "%d", o->hidden);
	NEED(o->heads >= 1 && o->kv_heads >= 1 && o->heads % o->kv_heads == 0, "--kv-heads", "a divisor of --heads",
	     "%d", o->kv_heads);
	NEED((o->hidden / o->heads) % 2 == 0, "--hidden", "an even head dimension (hidden / heads)", "%d", o->hidden);
	NEED(o->layers >= 1, "--layers", "at least 1", "%d", o->layers);
	NEED(o->intermediate >= 1, "--intermediate", "at least 1", "%d", o->intermediate);
	NEED(o->sft_steps >= 1, "--sft-steps", "at least 1", "%ld", o->sft_steps);
	NEED(o->sft_batch >= 1, "--sft-batch", "at least 1", "%ld", o->sft_batch);
	NEED(o->sft_lr > 0, "--sft-lr", "a positive rate", "%g", o->sft_lr);
	NEED(o->rl_steps >= 1, "--rl-steps", "at least 1", "%ld", o->rl_steps);
	NEED(o->group >= 2, "--group", "at least 2", "%ld", o->group);
	NEED(o->prompts_per_step >= 1 && o->prompts_per_step <= o->n_train, "--prompts-per-step",
	     "1..the training rows", "%ld", o->prompts_per_step);
	NEED(o->max_completion >= 8, "--max-completion-tokens", "at least 8", "%ld", o->max_completion);
	NEED(o->eval_samples >= 1 && o->eval_samples <= 64, "--eval-samples", "1..64", "%d", o->eval_samples);
	NEED(o->eval_problems >= 0, "--eval-problems", "0 (all) or more", "%d", o->eval_problems);
	NEED(o->answer_span >= 0 && o->answer_span <= 64, "--answer-span", "0 (auto) ..64", "%d", o->answer_span);
#undef NEED
	iapo_synth_opts so;
	synth_opts(o, &so);
	IAPO_TRY(iapo_synth_opts_check(&so));
	IAPO_TRY(check_methods(o->methods));
	for (int i = 0; i < o->n_overrides; i++) {
		const char *s = o->overrides[i], *colon = strchr(s, ':'), *eq = strchr(s, '=');
		if (!eq) return iapo_fail(IAPO_ERR_ARG, "--set: expected [METHOD:]KEY=VALUE, found '%s'", s);
		if (colon && colon < eq && method_index(s, (size_t)(colon - s)) < 0)
			return iapo_fail(IAPO_ERR_ARG, "--set: '%s': unknown method '%.*s'", s, (int)(colon - s), s);
	}
	for (int i = 0; i < o->n_iapo_opts; i++)
		if (!strchr(o->iapo_opts[i], '='))
			return iapo_fail(IAPO_ERR_ARG, "--iapo: expected KEY=VALUE, found '%s'", o->iapo_opts[i]);
	/* every KEY=VALUE must be a valid `iapo train` option: try them on scratch options now, not after
	 * minutes of SFT */
	for (int i = 0; i < o->n_iapo_opts + o->n_overrides; i++) {
		const char *s = i < o->n_iapo_opts ? o->iapo_opts[i] : o->overrides[i - o->n_iapo_opts];
		const char *colon = strchr(s, ':'), *eq = strchr(s, '=');
		const char *kv = colon && colon < eq ? colon + 1 : s;
		char key[128];
		size_t kn = (size_t)(strchr(kv, '=') - kv);
		if (kn == 0 || kn >= sizeof key)
			return iapo_fail(IAPO_ERR_ARG, "%s: '%s': expected KEY=VALUE", i < o->n_iapo_opts ? "--iapo" : "--set", s);
		memcpy(key, kv, kn);
		key[kn] = 0;
		const char *val = kv + kn + 1;
		if (!strcmp(val, "$SPAN")) val = "1";
		iapo_train_opts t;
		IAPO_TRY(iapo_train_opts_default(&t));
		iapo_status st = iapo_train_opts_set(&t, key, iapo_train_opts_is_flag(key) == 1 && !*val ? NULL : val);
		iapo_train_opts_free(&t);
		if (st != IAPO_OK) return iapo_fail_prefix(IAPO_ERR_ARG, "%s %s", i < o->n_iapo_opts ? "--iapo" : "--set", s);
	}
	return IAPO_OK;
}

/* ---- the run's state ------------------------------------------------------ */

typedef struct {
	double v[4];   /* pass1, passk, mean_length, token_efficiency */
	double seconds; /* training seconds of the model */
	double eval_seconds;
	int ok;
} score;
enum { S_PASS1, S_PASSK, S_LEN, S_EFF };

typedef struct {
	const iapo_demo_opts *o;
	FILE *log, *table;
	double t0;
	char data_dir[PATHN], tok_dir[PATHN], base_run[PATHN], base_model[PATHN];
	char train_path[PATHN], test_path[PATHN];
	char data_fp_text[2048];
	char *base_fp; /* owned */
	int vocab_size, answer_span;
	int n_sel, sel[N_METHODS];
	score base;
	double base_sft_seconds;
	score runs[N_METHODS][100];
	char run_dir[N_METHODS][100][PATHN];
	char model_dir[N_METHODS][100][PATHN];
	int rl_total, rl_done;
	double rl_seconds_sum; /* over the RL runs measured in this process */
	int rl_measured;
	int stopped;
	double span_ratio_base, span_ratio_iapo, span_abs_base, span_abs_iapo;
	double sft_left; /* estimated seconds of SFT still to run (0 when done or cached) */
} demo;

static void say(demo *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static double remaining(const demo *d)
{
	int left = d->rl_total - d->rl_done;
	double per = d->rl_measured ? d->rl_seconds_sum / d->rl_measured
				    : (double)d->o->rl_steps * (double)d->o->prompts_per_step * (double)d->o->group * 0.02;
	return left * per + d->sft_left;
}

static void say(demo *d, const char *fmt, ...)
{
	char a[32], b[32];
	double el = iapo_now() - d->t0;
	fprintf(d->log, "[demo %s elapsed, ~%s left] ", iapo_progress_duration(el, a, sizeof a),
		iapo_progress_duration(remaining(d), b, sizeof b));
	va_list ap;
	va_start(ap, fmt);
	vfprintf(d->log, fmt, ap);
	va_end(ap);
	fputc('\n', d->log);
	fflush(d->log);
}

/* ---- stage bookkeeping ------------------------------------------------------ */

/* 1 when DIR/demo-stage.json holds fingerprint fp (as text); *info receives
 * the file's object (caller deletes) when it does. Otherwise *why says why not. */
static int stage_cached(const char *dir, const char *fp, cJSON **info, const char **why)
{
	char p[PATHN];
	*info = NULL;
	if (iapo_fs_join(p, sizeof p, dir, STAGE_FILE) != IAPO_OK || !iapo_fs_exists(p)) {
		*why = "not built yet";
		return 0;
	}
	cJSON *root = NULL;
	if (iapo_json_load(p, (size_t)16 << 20, &root) != IAPO_OK) {
		iapo_clear_error();
		*why = "its record is unreadable";
		return 0;
	}
	/* both through one parse + print, so numbers written as raw text (the
	 * options' floats) compare in the same spelling */
	const cJSON *f = cJSON_GetObjectItemCaseSensitive(root, "fingerprint");
	cJSON *want = cJSON_Parse(fp);
	char *txt = f ? cJSON_PrintUnformatted(f) : NULL, *wtxt = want ? cJSON_PrintUnformatted(want) : NULL;
	int same = txt && wtxt && !strcmp(txt, wtxt);
	cJSON_free(txt);
	cJSON_free(wtxt);
	cJSON_Delete(want);
	if (!same) {
		cJSON_Delete(root);
		*why = "the settings or the iapo binary changed";
		return 0;
	}
	*info = root;
	return 1;
}

/* Writes DIR/demo-stage.json = extra's members (taken) + "fingerprint": fp parsed. */
static iapo_status stage_write(const char *dir, const char *fp, cJSON *extra)
{
	char p[PATHN];
	IAPO_TRY(iapo_fs_join(p, sizeof p, dir, STAGE_FILE));
	cJSON *root = extra ? extra : cJSON_CreateObject();
	cJSON *f = cJSON_Parse(fp);
	if (!root || !f || !cJSON_AddItemToObject(root, "fingerprint", f)) {
		cJSON_Delete(root);
		cJSON_Delete(f);
		return iapo_fail(IAPO_ERR_NOMEM, "%s: out of memory", p);
	}
	char *txt = cJSON_Print(root);
	iapo_status st = txt ? iapo_fs_write_file_atomic(p, txt, strlen(txt)) : iapo_fail(IAPO_ERR_NOMEM, "%s: out of memory", p);
	cJSON_free(txt);
	cJSON_Delete(root);
	return st;
}

static double jnum(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static const char *jstr(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* ---- (a) data ------------------------------------------------------------- */

static iapo_status stage_data(demo *d)
{
	const iapo_demo_opts *o = d->o;
	IAPO_TRY(iapo_fs_join(d->data_dir, sizeof d->data_dir, o->out, "data"));
	IAPO_TRY(iapo_fs_join(d->tok_dir, sizeof d->tok_dir, d->data_dir, "tokenizer"));
	IAPO_TRY(iapo_fs_join(d->train_path, sizeof d->train_path, d->data_dir, "train.jsonl"));
	IAPO_TRY(iapo_fs_join(d->test_path, sizeof d->test_path, d->data_dir, "test.jsonl"));
	snprintf(d->data_fp_text, sizeof d->data_fp_text,
		 "{\"seed\":%llu,\"train\":%d,\"test\":%d,\"steps\":[%d,%d],\"max_value\":%d,\"redundancy\":%.17g,"
		 "\"vocab\":%d}",
		 (unsigned long long)o->data_seed, o->n_train, o->n_test, o->min_steps, o->max_steps, o->max_value,
		 o->redundancy, o->vocab);
	cJSON *info;
	const char *why;
	char tj[PATHN];
	IAPO_TRY(iapo_fs_join(tj, sizeof tj, d->tok_dir, "tokenizer.json"));
	if (stage_cached(d->data_dir, d->data_fp_text, &info, &why) && iapo_fs_exists(d->train_path) &&
	    iapo_fs_exists(d->test_path) && iapo_fs_exists(tj)) {
		cJSON_Delete(info);
		say(d, "data: reusing %s (same settings)", d->data_dir);
	} else {
		cJSON_Delete(info);
		say(d, "data: writing %d training and %d test problems + a %d-token BPE tokenizer to %s (%s)", o->n_train,
		    o->n_test, o->vocab, d->data_dir, why);
		iapo_synth_opts so;
		synth_opts(o, &so);
		iapo_synth_stats tr, te;
		IAPO_TRY(iapo_synth_generate(&so, d->data_dir, &tr, &te));
		iapo_bpe_opts bo;
		iapo_bpe_opts_default(&bo);
		bo.vocab_size = o->vocab;
		const char *paths[1] = {d->train_path};
		iapo_bpe_result br;
		IAPO_TRY(iapo_bpe_train_files(paths, 1, &bo, d->tok_dir, &br));
		say(d, "data: traces %.0f characters on average, %.0f%% redundant; tokenizer %d tokens, %.1f tokens per "
		       "trace",
		    tr.mean_chars, 100 * tr.share_mean, br.vocab_size, br.mean_completion_tokens);
		IAPO_TRY(stage_write(d->data_dir, d->data_fp_text, NULL));
	}
	iapo_tokenizer *tok = NULL;
	IAPO_TRY(iapo_tokenizer_load(d->tok_dir, &tok));
	d->vocab_size = iapo_tokenizer_vocab_size(tok);
	/* the answer block's longest tokenisation: "N</answer>" over the train answers */
	iapo_dataset ds;
	iapo_status st = iapo_dataset_load(d->train_path, NULL, &ds);
	int span = 1;
	for (size_t i = 0; st == IAPO_OK && i < ds.n; i++) {
		char buf[64];
		snprintf(buf, sizeof buf, "%s</answer>", ds.ex[i].label);
		int *ids = NULL;
		size_t n = 0, cap = 0;
		st = iapo_tokenizer_encode(tok, buf, strlen(buf), &ids, &n, &cap);
		if ((int)n > span) span = (int)n;
		iapo_free(ids);
	}
	iapo_dataset_free(&ds);
	iapo_tokenizer_free(tok);
	d->answer_span = o->answer_span > 0 ? o->answer_span : span;
	return st;
}

/* FNV-1a 64 of the running binary: the caches hold its results, so a rebuilt
 * iapo (another trainer, another sampler) must not reuse them. "unknown" when
 * it cannot be read (then only the settings decide). */
static void binary_id(char *out, size_t n)
{
	char *data = NULL;
	size_t len = 0;
	if (iapo_fs_read_file("/proc/self/exe", (size_t)1 << 30, &data, &len) != IAPO_OK) {
		iapo_clear_error();
		snprintf(out, n, "unknown");
		return;
	}
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)data[i]) * 1099511628211ull;
	iapo_free(data);
	snprintf(out, n, "%016llx", (unsigned long long)h);
}

/* ---- (b) base ------------------------------------------------------------- */

typedef struct {
	demo *d;
	long every;
} sft_ctx;

static void on_sft(void *vctx, const iapo_sft_progress *p)
{
	sft_ctx *c = vctx;
	long done = p->step - p->first_step;
	if (done > 0) c->d->sft_left = p->seconds / (double)done * (double)(p->total - p->step);
	if (p->step == p->total || p->step % c->every == 0)
		say(c->d, "base: SFT step %ld/%ld loss %.3f (%.0f tokens/s)", p->step, p->total, p->loss, p->tokens_per_s);
}

static iapo_status eval_model(demo *d, const iapo_weights *w, const char *tok_dir, score *sc);

static iapo_status stage_base(demo *d)
{
	const iapo_demo_opts *o = d->o;
	char base_dir[PATHN], cfg_path[PATHN];
	IAPO_TRY(iapo_fs_join(base_dir, sizeof base_dir, o->out, "base"));
	IAPO_TRY(iapo_fs_join(d->base_run, sizeof d->base_run, base_dir, "sft"));
	IAPO_TRY(iapo_fs_join(cfg_path, sizeof cfg_path, base_dir, "model-config.json"));
	char fp[4096], bin[32];
	binary_id(bin, sizeof bin);
	snprintf(fp, sizeof fp,
		 "{\"binary\":\"%s\",\"data\":%s,\"model\":{\"hidden\":%d,\"layers\":%d,\"heads\":%d,\"kv_heads\":%d,\"intermediate\":%d,"
		 "\"init_std\":%.17g},\"sft\":{\"steps\":%ld,\"batch\":%ld,\"warmup\":%ld,\"lr\":%.17g,\"seed\":%ld,"
		 "\"early_exit\":%.17g},"
		 "\"system\":%s%s%s,\"one_shot\":%d,\"eval\":{\"problems\":%d,\"samples\":%d,\"seed\":%llu,"
		 "\"max_tokens\":%ld,\"temperature\":%.17g}}",
		 bin, d->data_fp_text, o->hidden, o->layers, o->heads, o->kv_heads, o->intermediate, o->init_std, o->sft_steps,
		 o->sft_batch, o->sft_warmup, o->sft_lr, o->sft_seed, o->sft_early_exit, o->system ? "\"" : "",
		 o->system ? "(given)" : "null", o->system ? "\"" : "", o->one_shot, o->eval_problems, o->eval_samples,
		 (unsigned long long)o->eval_seed, o->max_completion, o->temperature);
	/* the system prompt itself, escaped, in place of "(given)" */
	cJSON *fpj = cJSON_Parse(fp);
	if (!fpj) return iapo_fail(IAPO_ERR_NOMEM, "demo: out of memory");
	if (o->system) cJSON_ReplaceItemInObjectCaseSensitive(fpj, "system", cJSON_CreateString(o->system));
	d->base_fp = cJSON_PrintUnformatted(fpj);
	cJSON_Delete(fpj);
	if (!d->base_fp) return iapo_fail(IAPO_ERR_NOMEM, "demo: out of memory");

	cJSON *info;
	const char *why;
	if (stage_cached(base_dir, d->base_fp, &info, &why)) {
		const char *m = jstr(info, "model_dir");
		if (m && iapo_fs_is_dir(m) && isfinite(jnum(info, "pass1"))) {
			snprintf(d->base_model, sizeof d->base_model, "%s", m);
			d->base.v[S_PASS1] = jnum(info, "pass1");
			d->base.v[S_PASSK] = jnum(info, "passk");
			d->base.v[S_LEN] = jnum(info, "mean_length");
			d->base.v[S_EFF] = jnum(info, "token_efficiency");
			d->base.seconds = jnum(info, "seconds");
			d->base.eval_seconds = jnum(info, "eval_seconds");
			d->base.ok = 1;
			say(d, "base: reusing the cached base model %s (same data, model and SFT settings): pass@1 %.3f, "
			       "mean length %.1f",
			    d->base_model, d->base.v[S_PASS1], d->base.v[S_LEN]);
			cJSON_Delete(info);
			return IAPO_OK;
		}
		why = "its model is missing";
		cJSON_Delete(info);
	}
	say(d, "base: training the base model (%s): a Qwen2-shaped model, %d layers x %d wide, from random weights, "
	       "SFT %ld steps of %ld traces",
	    why, o->layers, o->hidden, o->sft_steps, o->sft_batch);
	IAPO_TRY(iapo_fs_mkdir_p(base_dir));
	char cfg[1024];
	int n = snprintf(cfg, sizeof cfg,
			 "{\n  \"architectures\": [\"Qwen2ForCausalLM\"],\n  \"model_type\": \"qwen2\",\n"
			 "  \"vocab_size\": %d,\n  \"hidden_size\": %d,\n  \"intermediate_size\": %d,\n"
			 "  \"num_hidden_layers\": %d,\n  \"num_attention_heads\": %d,\n  \"num_key_value_heads\": %d,\n"
			 "  \"max_position_embeddings\": 4096,\n  \"rope_theta\": 10000.0,\n  \"rms_norm_eps\": 1e-06,\n"
			 "  \"initializer_range\": %.17g,\n  \"tie_word_embeddings\": true,\n  \"torch_dtype\": \"float32\"\n}\n",
			 d->vocab_size, o->hidden, o->intermediate, o->layers, o->heads, o->kv_heads, o->init_std);
	IAPO_TRY(iapo_fs_write_file_atomic(cfg_path, cfg, (size_t)n));

	iapo_sft_run_opts so;
	iapo_sft_run_opts_default(&so);
	so.model = cfg_path;
	so.tokenizer = d->tok_dir;
	so.init_std = o->init_std;
	so.data = d->train_path;
	so.out = d->base_run;
	so.overwrite = 1;
	so.seed = o->sft_seed;
	so.threads = o->threads;
	so.system = o->system;
	so.no_one_shot = !o->one_shot;
	so.batch_size = o->sft_batch;
	so.grad_accum = 1;
	so.max_steps = o->sft_steps;
	so.learning_rate = o->sft_lr;
	so.warmup_steps = o->sft_warmup;
	so.early_exit_fraction = o->sft_early_exit;
	so.lr_scheduler_type = "cosine";
	so.weight_decay = 0;
	so.logging_steps = o->sft_steps >= 50 ? 5 : 1;
	so.save_steps = o->sft_steps;
	so.stop = o->stop;
	sft_ctx sc = {d, o->sft_steps >= 10 ? o->sft_steps / 5 : 1};
	d->sft_left = (double)o->sft_steps * (double)o->sft_batch * 0.01; /* a guess until the first step */
	so.progress = on_sft;
	so.progress_ctx = &sc;
	iapo_sft_run_result res;
	double t = iapo_now();
	iapo_status st = iapo_sft_run(&so, &res);
	iapo_sft_run_opts_free(&so);
	IAPO_TRY(st);
	if (!res.completed) {
		d->stopped = 1;
		return IAPO_OK;
	}
	d->base_sft_seconds = iapo_now() - t;
	d->sft_left = 0;
	snprintf(d->base_model, sizeof d->base_model, "%s", res.model_dir);
	say(d, "base: SFT done in %.0f s, loss %.3f -> %.3f; evaluating it on the test split", d->base_sft_seconds,
	    res.loss_first, res.loss_last);

	iapo_weights w;
	IAPO_TRY(iapo_weights_load(d->base_model, &w));
	st = eval_model(d, &w, d->base_model, &d->base);
	iapo_weights_free(&w);
	IAPO_TRY(st);
	d->base.seconds = d->base_sft_seconds;
	say(d, "base: pass@1 %.3f, pass@%d %.3f, mean length %.1f tokens", d->base.v[S_PASS1], o->eval_samples,
	    d->base.v[S_PASSK], d->base.v[S_LEN]);
	cJSON *x = cJSON_CreateObject();
	if (!x) return iapo_fail(IAPO_ERR_NOMEM, "demo: out of memory");
	cJSON_AddStringToObject(x, "model_dir", d->base_model);
	cJSON_AddNumberToObject(x, "pass1", d->base.v[S_PASS1]);
	cJSON_AddNumberToObject(x, "passk", d->base.v[S_PASSK]);
	cJSON_AddNumberToObject(x, "mean_length", d->base.v[S_LEN]);
	cJSON_AddNumberToObject(x, "token_efficiency", d->base.v[S_EFF]);
	cJSON_AddNumberToObject(x, "seconds", d->base.seconds);
	cJSON_AddNumberToObject(x, "eval_seconds", d->base.eval_seconds);
	cJSON_AddNumberToObject(x, "sft_loss_first", res.loss_first);
	cJSON_AddNumberToObject(x, "sft_loss_last", res.loss_last);
	return stage_write(base_dir, d->base_fp, x);
}

/* ---- (d) evaluation ------------------------------------------------------- */

static iapo_status eval_model(demo *d, const iapo_weights *w, const char *tok_dir, score *sc)
{
	const iapo_demo_opts *o = d->o;
	iapo_tokenizer *tok = NULL;
	iapo_dataset ds;
	memset(&ds, 0, sizeof ds);
	IAPO_TRY(iapo_tokenizer_load(tok_dir, &tok));
	iapo_status st = iapo_dataset_load(d->test_path, NULL, &ds);
	iapo_eval_opts eo;
	iapo_eval_opts_default(&eo);
	int ks[2] = {1, o->eval_samples};
	eo.n_samples = o->eval_samples;
	eo.ks = ks;
	eo.n_ks = o->eval_samples > 1 ? 2 : 1;
	eo.max_new_tokens = (int)o->max_completion;
	eo.temperature = (float)o->temperature;
	eo.seed = o->eval_seed;
	eo.batch = o->eval_samples * (32 / o->eval_samples > 0 ? 32 / o->eval_samples : 1);
	eo.limit = (size_t)o->eval_problems;
	eo.system = o->system;
	eo.one_shot = o->one_shot;
	iapo_eval_result r;
	memset(&r, 0, sizeof r);
	if (st == IAPO_OK) st = iapo_evaluate(w, tok, &ds, &eo, &r);
	if (st == IAPO_OK) {
		int last = r.n_ks - 1;
		sc->v[S_PASS1] = r.pass_at_k[0];
		sc->v[S_PASSK] = r.pass_at_k[last];
		sc->v[S_LEN] = r.length_at_k[last];
		sc->v[S_EFF] = r.token_efficiency;
		sc->eval_seconds = r.seconds;
		sc->ok = 1;
	}
	iapo_eval_result_free(&r);
	iapo_dataset_free(&ds);
	iapo_tokenizer_free(tok);
	return st;
}

/* ---- (c) RL --------------------------------------------------------------- */

static iapo_status set_opt(iapo_train_opts *t, const char *name, const char *value)
{
	return iapo_train_opts_set(t, name, value);
}

/* "key=value" into the options; value "$SPAN" is the answer span. */
static iapo_status apply_kv(demo *d, iapo_train_opts *t, const char *kv, const char *where)
{
	const char *eq = strchr(kv, '=');
	char key[128], val[512];
	size_t kn = (size_t)(eq - kv);
	if (kn >= sizeof key) return iapo_fail(IAPO_ERR_ARG, "%s: '%s': key too long", where, kv);
	memcpy(key, kv, kn);
	key[kn] = 0;
	snprintf(val, sizeof val, "%s", eq + 1);
	if (!strcmp(val, "$SPAN")) snprintf(val, sizeof val, "%d", d->answer_span);
	iapo_status st = set_opt(t, key, iapo_train_opts_is_flag(key) == 1 && !*val ? NULL : val);
	if (st != IAPO_OK) return iapo_fail_prefix(st, "%s", where);
	return IAPO_OK;
}

static iapo_status build_train_opts(demo *d, int m, int seed, const char *out, iapo_train_opts *t)
{
	const iapo_demo_opts *o = d->o;
	const method *me = &methods[m];
	char b[64];
	IAPO_TRY(iapo_train_opts_default(t));
	iapo_status st = IAPO_OK;
#define SET(k, v) \
	if (st == IAPO_OK) st = set_opt(t, k, v)
#define SETN(k, fmt, v) \
	snprintf(b, sizeof b, fmt, v); \
	SET(k, b)
	SET("model", d->base_model);
	SET("data", d->train_path);
	SET("out", out);
	SET("algo", me->algo);
	SET("overwrite", NULL);
	SETN("seed", "%d", seed);
	SETN("threads", "%d", o->threads);
	SETN("max-steps", "%ld", o->rl_steps);
	SETN("prompts-per-step", "%ld", o->prompts_per_step);
	SETN("num-generations", "%ld", o->group);
	SETN("micro-batch", "%ld", o->group);
	SETN("grad-accum", "%ld", o->prompts_per_step);
	SETN("max-completion-tokens", "%ld", o->max_completion);
	SETN("learning-rate", "%.17g", o->rl_lr);
	SETN("temperature", "%.17g", o->temperature);
	SETN("beta", "%.17g", o->beta);
	SET("loss-type", o->loss_type);
	SETN("save-steps", "%ld", o->rl_steps);
	SET("eval-steps", "0");
	SET("lr-schedule", "constant");
	if (o->system) SET("system", o->system);
	if (!o->one_shot) SET("no-one-shot", NULL);
#undef SET
#undef SETN
	for (int i = 0; st == IAPO_OK && me->iapo && i < o->n_iapo_opts; i++) st = apply_kv(d, t, o->iapo_opts[i], "--iapo");
	for (int i = 0; st == IAPO_OK && i < 2 && me->sets[i][0]; i++) {
		char kv[256];
		snprintf(kv, sizeof kv, "%s=%s", me->sets[i][0], me->sets[i][1]);
		st = apply_kv(d, t, kv, me->name);
	}
	for (int i = 0; st == IAPO_OK && i < o->n_overrides; i++) {
		const char *s = o->overrides[i], *colon = strchr(s, ':'), *eq = strchr(s, '=');
		if (colon && colon < eq) {
			if ((size_t)(colon - s) != strlen(me->name) || strncmp(s, me->name, (size_t)(colon - s))) continue;
			st = apply_kv(d, t, colon + 1, "--set");
		} else {
			st = apply_kv(d, t, s, "--set");
		}
	}
	if (st == IAPO_OK) st = iapo_train_opts_resolve(t);
	if (st != IAPO_OK) iapo_train_opts_free(t);
	return st;
}

typedef struct {
	demo *d;
	const char *name;
	int seed;
	long every;
} rl_ctx;

static void on_rl(void *vctx, const iapo_trainer *tr, const iapo_step_metrics *m)
{
	rl_ctx *c = vctx;
	long total = iapo_trainer_total_steps(tr);
	if (m->step == total || m->step % c->every == 0)
		say(c->d, "rl %s seed %d: step %ld/%ld reward %.3f accuracy %.3f length %.1f", c->name, c->seed, m->step,
		    total, m->reward_mean, m->accuracy, m->length_mean);
}

static iapo_status run_one(demo *d, int m, int seed)
{
	const iapo_demo_opts *o = d->o;
	char dir[PATHN], rl[PATHN], sub[64];
	IAPO_TRY(iapo_fs_join(rl, sizeof rl, o->out, "rl"));
	snprintf(sub, sizeof sub, "%s/seed-%d", methods[m].name, seed);
	IAPO_TRY(iapo_fs_join(dir, sizeof dir, rl, sub));
	snprintf(d->run_dir[m][seed - 1], sizeof d->run_dir[m][seed - 1], "%s", dir);
	iapo_train_opts t;
	IAPO_TRY(build_train_opts(d, m, seed, dir, &t));
	cJSON *cfg = iapo_train_opts_to_json(&t), *fpj = cJSON_CreateObject();
	if (!cfg || !fpj) {
		cJSON_Delete(cfg);
		cJSON_Delete(fpj);
		iapo_train_opts_free(&t);
		return iapo_fail(IAPO_ERR_NOMEM, "demo: out of memory");
	}
	cJSON_AddItemToObject(fpj, "train", cfg);
	cJSON_AddItemToObject(fpj, "base", cJSON_Parse(d->base_fp));
	char *fp = cJSON_PrintUnformatted(fpj);
	cJSON_Delete(fpj);
	if (!fp) {
		iapo_train_opts_free(&t);
		return iapo_fail(IAPO_ERR_NOMEM, "demo: out of memory");
	}
	score *sc = &d->runs[m][seed - 1];
	cJSON *info;
	const char *why;
	if (stage_cached(dir, fp, &info, &why)) {
		const char *md = jstr(info, "model_dir");
		if (md && iapo_fs_is_dir(md) && isfinite(jnum(info, "pass1"))) {
			snprintf(d->model_dir[m][seed - 1], sizeof d->model_dir[m][seed - 1], "%s", md);
			sc->v[S_PASS1] = jnum(info, "pass1");
			sc->v[S_PASSK] = jnum(info, "passk");
			sc->v[S_LEN] = jnum(info, "mean_length");
			sc->v[S_EFF] = jnum(info, "token_efficiency");
			sc->seconds = jnum(info, "seconds");
			sc->eval_seconds = jnum(info, "eval_seconds");
			sc->ok = 1;
			d->rl_done++;
			say(d, "rl %s seed %d: reusing the finished run %s", methods[m].name, seed, dir);
			cJSON_Delete(info);
			cJSON_free(fp);
			iapo_train_opts_free(&t);
			return IAPO_OK;
		}
		cJSON_Delete(info);
		why = "its model is missing";
	}
	say(d, "rl %s seed %d: %ld steps of %ld prompts x %ld completions -> %s (%s)", methods[m].name, seed,
	    o->rl_steps, o->prompts_per_step, o->group, dir, why);
	double t0 = iapo_now();
	iapo_trainer *tr = NULL;
	iapo_status st = iapo_trainer_new(&t, &tr);
	iapo_train_opts_free(&t);
	rl_ctx rc = {d, methods[m].name, seed, o->rl_steps >= 5 ? (o->rl_steps + 3) / 4 : 1};
	if (st == IAPO_OK) st = iapo_trainer_run(tr, o->stop, on_rl, &rc);
	if (st == IAPO_OK && iapo_trainer_steps_done(tr) < iapo_trainer_total_steps(tr)) {
		d->stopped = 1;
		iapo_trainer_free(tr);
		cJSON_free(fp);
		return IAPO_OK;
	}
	double train_s = iapo_now() - t0;
	if (st == IAPO_OK) {
		snprintf(d->model_dir[m][seed - 1], sizeof d->model_dir[m][seed - 1], "%s", iapo_trainer_last_checkpoint(tr));
		st = eval_model(d, iapo_trainer_weights(tr), d->base_model, sc);
		sc->seconds = train_s;
	}
	iapo_trainer_free(tr);
	if (st == IAPO_OK) {
		d->rl_done++;
		d->rl_measured++;
		d->rl_seconds_sum += iapo_now() - t0;
		say(d, "rl %s seed %d: done in %.0f s (+ eval %.0f s): pass@1 %.3f, mean length %.1f", methods[m].name, seed,
		    train_s, sc->eval_seconds, sc->v[S_PASS1], sc->v[S_LEN]);
		cJSON *x = cJSON_CreateObject();
		if (!x) st = iapo_fail(IAPO_ERR_NOMEM, "demo: out of memory");
		else {
			cJSON_AddStringToObject(x, "model_dir", d->model_dir[m][seed - 1]);
			cJSON_AddNumberToObject(x, "pass1", sc->v[S_PASS1]);
			cJSON_AddNumberToObject(x, "passk", sc->v[S_PASSK]);
			cJSON_AddNumberToObject(x, "mean_length", sc->v[S_LEN]);
			cJSON_AddNumberToObject(x, "token_efficiency", sc->v[S_EFF]);
			cJSON_AddNumberToObject(x, "seconds", sc->seconds);
			cJSON_AddNumberToObject(x, "eval_seconds", sc->eval_seconds);
			st = stage_write(dir, fp, x);
		}
	}
	cJSON_free(fp);
	return st;
}

/* ---- (e) results.json and (f) the table ----------------------------------- */

static void mean_std(const double *x, int n, double *mean, double *std)
{
	double s = 0, q = 0;
	for (int i = 0; i < n; i++) s += x[i];
	*mean = n ? s / n : NAN;
	for (int i = 0; i < n; i++) q += (x[i] - *mean) * (x[i] - *mean);
	*std = n > 1 ? sqrt(q / (n - 1)) : 0;
}

/* the per-seed values of row r (0 = base, else selected method r-1), key k (0-3 metrics, 4 seconds) */
static int row_values(const demo *d, int r, int k, double *x)
{
	int S = d->o->seeds;
	for (int s = 0; s < S; s++) {
		const score *sc = r == 0 ? &d->base : &d->runs[d->sel[r - 1]][s];
		x[s] = k < 4 ? sc->v[k] : sc->seconds;
	}
	return S;
}

static const char *row_name(const demo *d, int r) { return r == 0 ? "base" : methods[d->sel[r - 1]].name; }

static cJSON *settings_json(const demo *d)
{
	const iapo_demo_opts *o = d->o;
	cJSON *s = cJSON_CreateObject();
	if (!s) return NULL;
	cJSON_AddBoolToObject(s, "quick", o->quick);
	cJSON_AddNumberToObject(s, "seeds", o->seeds);
	cJSON_AddNumberToObject(s, "threads", o->threads);
	cJSON *dj = cJSON_Parse(d->base_fp);
	if (dj) cJSON_AddItemToObject(s, "data_model_sft_eval", dj);
	cJSON *rl = cJSON_AddObjectToObject(s, "rl");
	if (rl) {
		cJSON_AddNumberToObject(rl, "steps", (double)o->rl_steps);
		cJSON_AddNumberToObject(rl, "prompts_per_step", (double)o->prompts_per_step);
		cJSON_AddNumberToObject(rl, "group", (double)o->group);
		cJSON_AddNumberToObject(rl, "max_completion_tokens", (double)o->max_completion);
		cJSON_AddNumberToObject(rl, "learning_rate", o->rl_lr);
		cJSON_AddNumberToObject(rl, "temperature", o->temperature);
		cJSON_AddNumberToObject(rl, "beta", o->beta);
		cJSON_AddStringToObject(rl, "loss_type", o->loss_type);
		cJSON_AddNumberToObject(rl, "answer_span", d->answer_span);
		cJSON *io = cJSON_AddArrayToObject(rl, "iapo_options");
		for (int i = 0; io && i < o->n_iapo_opts; i++) cJSON_AddItemToArray(io, cJSON_CreateString(o->iapo_opts[i]));
		cJSON *ov = cJSON_AddArrayToObject(rl, "overrides");
		for (int i = 0; ov && i < o->n_overrides; i++) cJSON_AddItemToArray(ov, cJSON_CreateString(o->overrides[i]));
	}
	cJSON *ms = cJSON_AddObjectToObject(s, "methods");
	for (int i = 0; ms && i < d->n_sel; i++) {
		const method *me = &methods[d->sel[i]];
		char flags[512];
		int n = snprintf(flags, sizeof flags, "--algo %s", me->algo);
		for (int k = 0; me->iapo && k < o->n_iapo_opts && n < (int)sizeof flags; k++)
			n += snprintf(flags + n, sizeof flags - (size_t)n, " --%s", o->iapo_opts[k]);
		for (int k = 0; k < 2 && me->sets[k][0] && n < (int)sizeof flags; k++) {
			if (!strcmp(me->sets[k][1], "$SPAN"))
				n += snprintf(flags + n, sizeof flags - (size_t)n, " --%s %d", me->sets[k][0], d->answer_span);
			else
				n += snprintf(flags + n, sizeof flags - (size_t)n, " --%s %s", me->sets[k][0], me->sets[k][1]);
		}
		for (char *p = flags; *p; p++)
			if (*p == '=') *p = ' ';
		cJSON_AddStringToObject(ms, me->name, flags);
	}
	return s;
}

static const char *const keys[5] = {"pass1", "passk", "mean_length", "token_efficiency", "seconds"};

static iapo_status write_results(demo *d, double wall)
{
	cJSON *root = cJSON_CreateObject();
	if (!root) return iapo_fail(IAPO_ERR_NOMEM, "results.json: out of memory");
	double x[100];
	for (int r = 0; r <= d->n_sel; r++) {
		cJSON *m = cJSON_AddObjectToObject(root, row_name(d, r));
		for (int k = 0; m && k < 5; k++) {
			int n = row_values(d, r, k, x);
			double mean, sd;
			mean_std(x, n, &mean, &sd);
			cJSON *e = cJSON_AddObjectToObject(m, keys[k]);
			if (!e) continue;
			cJSON_AddNumberToObject(e, "mean", mean);
			cJSON_AddNumberToObject(e, "std", sd);
			cJSON_AddItemToObject(e, "per_seed", cJSON_CreateDoubleArray(x, n));
		}
		if (m) {
			cJSON *k = cJSON_AddObjectToObject(m, "k");
			if (k) {
				cJSON_AddNumberToObject(k, "mean", d->o->eval_samples);
				cJSON_AddNumberToObject(k, "std", 0);
				for (int s = 0; s < d->o->seeds; s++) x[s] = d->o->eval_samples;
				cJSON_AddItemToObject(k, "per_seed", cJSON_CreateDoubleArray(x, d->o->seeds));
			}
		}
	}
	cJSON *s = settings_json(d);
	if (s) cJSON_AddItemToObject(root, "settings", s);
	cJSON_AddNumberToObject(root, "wall_seconds", wall);
	cJSON *si = cJSON_AddObjectToObject(root, "span_info");
	if (si) { /* mean gain of redundant tokens / of step tokens on the test traces (NaN: null) */
		cJSON_AddItemToObject(si, "base_redundant_over_step",
				      isfinite(d->span_ratio_base) ? cJSON_CreateNumber(d->span_ratio_base) : cJSON_CreateNull());
		cJSON_AddItemToObject(si, "iapo_redundant_over_step",
				      isfinite(d->span_ratio_iapo) ? cJSON_CreateNumber(d->span_ratio_iapo) : cJSON_CreateNull());
		cJSON_AddItemToObject(si, "base_abs_redundant_over_step",
				      isfinite(d->span_abs_base) ? cJSON_CreateNumber(d->span_abs_base) : cJSON_CreateNull());
		cJSON_AddItemToObject(si, "iapo_abs_redundant_over_step",
				      isfinite(d->span_abs_iapo) ? cJSON_CreateNumber(d->span_abs_iapo) : cJSON_CreateNull());
	}
	char p[PATHN];
	iapo_status st = iapo_fs_join(p, sizeof p, d->o->out, "results.json");
	char *txt = cJSON_Print(root);
	cJSON_Delete(root);
	if (st == IAPO_OK) st = txt ? iapo_fs_write_file_atomic(p, txt, strlen(txt)) : iapo_fail(IAPO_ERR_NOMEM, "%s: out of memory", p);
	cJSON_free(txt);
	return st;
}

/* The questions, answered from the table's numbers: one line each
 * (iapo vs grpo; iapo_no_info vs grpo; token efficiency iapo vs lenpen),
 * for the rows that ran. */
static const char *comparisons(const demo *d, char *buf, size_t n)
{
	size_t k = 0;
	double x[100];
	buf[0] = 0;
	int rg = -1, ri = -1, rn = -1, rl = -1;
	for (int r = 1; r <= d->n_sel; r++) {
		const char *nm = row_name(d, r);
		if (!strcmp(nm, "grpo")) rg = r;
		if (!strcmp(nm, "iapo")) ri = r;
		if (!strcmp(nm, "iapo_no_info")) rn = r;
		if (!strcmp(nm, "lenpen")) rl = r;
	}
	double mg[4], mi[4], mn[4], ml[4], sdx;
	for (int j = 0; j < 4; j++) {
		if (rg > 0) mean_std(x, row_values(d, rg, j, x), &mg[j], &sdx);
		if (ri > 0) mean_std(x, row_values(d, ri, j, x), &mi[j], &sdx);
		if (rn > 0) mean_std(x, row_values(d, rn, j, x), &mn[j], &sdx);
		if (rl > 0) mean_std(x, row_values(d, rl, j, x), &ml[j], &sdx);
	}
	if (rg > 0 && ri > 0 && mg[S_LEN] > 0)
		k += snprintf(buf + k, k < n ? n - k : 0, "iapo vs grpo: length %.2fx (target <= 0.75x), pass@1 %+.3f (target >= -0.02)\n",
			mi[S_LEN] / mg[S_LEN], mi[S_PASS1] - mg[S_PASS1]);
	if (rg > 0 && rn > 0 && mg[S_LEN] > 0)
		k += snprintf(buf + k, k < n ? n - k : 0, "iapo_no_info vs grpo: length %.2fx, pass@1 %+.3f (the same run without the information term)\n",
			mn[S_LEN] / mg[S_LEN], mn[S_PASS1] - mg[S_PASS1]);
	if (ri > 0 && rl > 0)
		k += snprintf(buf + k, k < n ? n - k : 0, "token efficiency: iapo %.4f, lenpen %.4f (%s)\n", mi[S_EFF], ml[S_EFF],
			mi[S_EFF] > ml[S_EFF] ? "iapo higher" : "lenpen higher or equal");
	return buf;
}

static void print_table(demo *d, FILE *f, double wall)
{
	const iapo_demo_opts *o = d->o;
	char pk[32];
	snprintf(pk, sizeof pk, "pass@%d", o->eval_samples);
	fprintf(f, "\niapo demo: %d test problems x %d samples, %d seed%s; mean%s\n", o->eval_problems ? o->eval_problems : o->n_test,
		o->eval_samples, o->seeds, o->seeds > 1 ? "s" : "", o->seeds > 1 ? " +- std over seeds" : "");
	fprintf(f, "%-18s %15s %15s %17s %17s %10s %9s\n", "method", "pass@1", pk, "mean length", "tokens/correct",
		"vs grpo", "seconds");
	double x[100], grpo_len = NAN;
	for (int r = 1; r <= d->n_sel; r++)
		if (!strcmp(row_name(d, r), "grpo")) {
			double sd;
			mean_std(x, row_values(d, r, S_LEN, x), &grpo_len, &sd);
		}
	for (int r = 0; r <= d->n_sel; r++) {
		double m[5], sd[5];
		for (int k = 0; k < 5; k++) mean_std(x, row_values(d, r, k, x), &m[k], &sd[k]);
		char c[4][40], rel[24] = "";
		snprintf(c[0], 40, "%.3f", m[S_PASS1]);
		snprintf(c[1], 40, "%.3f", m[S_PASSK]);
		snprintf(c[2], 40, "%.1f", m[S_LEN]);
		/* tokens per correct answer = 1 / token efficiency, easier to read */
		snprintf(c[3], 40, "%.1f", m[S_EFF] > 0 ? 1 / m[S_EFF] : INFINITY);
		if (o->seeds > 1 && r > 0) {
			snprintf(c[0], 40, "%.3f+-%.3f", m[S_PASS1], sd[S_PASS1]);
			snprintf(c[1], 40, "%.3f+-%.3f", m[S_PASSK], sd[S_PASSK]);
			snprintf(c[2], 40, "%.1f+-%.1f", m[S_LEN], sd[S_LEN]);
		}
		if (isfinite(grpo_len) && grpo_len > 0) snprintf(rel, sizeof rel, "%.2fx", m[S_LEN] / grpo_len);
		fprintf(f, "%-18s %15s %15s %17s %17s %10s %9.0f\n", row_name(d, r), c[0], c[1], c[2], c[3], rel, m[4]);
	}
	char cmp[1024];
	fputs(comparisons(d, cmp, sizeof cmp), f);
	char w[32];
	fprintf(f, "wall time %s; lengths in tokens (EOS included); tokens/correct = mean length / pass@%d; "
		   "seconds = training time of the row's model (SFT for base)\n",
		iapo_progress_duration(wall, w, sizeof w), o->eval_samples);
	fprintf(f, "files: %s/results.json, %s/report.html, runs under %s/rl/<method>/seed-<s>/\n", o->out, o->out, o->out);
	fflush(f);
}

/* ---- (g) report.html ------------------------------------------------------ */

/* The `iapo info` page of the greedy completion of `problem` by the model in
 * model_dir, reduced to its body (headings demoted) with its CSS. */
static iapo_status heatmap(demo *d, const char *model_dir, const char *problem, FILE *f, const char *who)
{
	iapo_weights w;
	IAPO_TRY(iapo_weights_load(model_dir, &w));
	iapo_tokenizer *tok = NULL;
	iapo_status st = iapo_tokenizer_load(model_dir, &tok);
	int *ids = NULL, *post = NULL;
	size_t P = 0, cap = 0, K = 0, pcap = 0;
	char *text = NULL;
	if (st == IAPO_OK)
		st = iapo_prompt_tokens(tok, IAPO_DATA_GENERIC, d->o->system, problem, d->o->one_shot, &ids, &P, &cap);
	if (st == IAPO_OK) st = iapo_prompt_render(tok, IAPO_DATA_GENERIC, d->o->system, problem, d->o->one_shot, &text);
	if (st == IAPO_OK) st = iapo_tokenizer_encode(tok, IAPO_INFO_POSTFIX, strlen(IAPO_INFO_POSTFIX), &post, &K, &pcap);
	iapo_gen_result res;
	memset(&res, 0, sizeof res);
	if (st == IAPO_OK) {
		int eos[IAPO_MAX_EOS + 16], n_eos = 0;
		for (int i = 0; i < w.cfg.n_eos; i++) eos[n_eos++] = w.cfg.eos_ids[i];
		int te[16], nt = iapo_tokenizer_eos_ids(tok, te, 16);
		for (int i = 0; i < nt; i++) eos[n_eos++] = te[i];
		const int *pr[1] = {ids};
		int pl[1] = {(int)P};
		iapo_gen_opts go = {.max_new_tokens = (int)d->o->max_completion,
				    /* sampled as in evaluation, one fixed stream for both models: greedy decoding
				     * shows the terse mode a verbose model rarely samples */
				    .sampler = {(float)d->o->temperature, 0, 1.0f},
				    .seed = d->o->eval_seed,
				    .eos_ids = eos,
				    .n_eos = n_eos,
				    .tok = tok};
		st = iapo_generate(&w, pr, pl, 1, &go, NULL, &res, NULL);
	}
	int L = res.n_text_tokens;
	float *E = NULL, *C = NULL, *S = NULL, *Sh = NULL, *Ch = NULL, *adv = NULL;
	char **tt = NULL;
	size_t *tl = NULL;
	iapo_info *est = NULL;
	if (st == IAPO_OK) {
		size_t n1 = (size_t)L + 1;
		E = iapo_calloc(n1, sizeof *E);
		C = iapo_calloc(n1, sizeof *C);
		S = iapo_calloc(n1, sizeof *S);
		Sh = iapo_calloc(n1, sizeof *Sh);
		Ch = iapo_calloc(n1, sizeof *Ch);
		adv = iapo_calloc(n1, sizeof *adv);
		tt = iapo_calloc(n1, sizeof *tt);
		tl = iapo_calloc(n1, sizeof *tl);
		if (!E || !C || !S || !Sh || !Ch || !adv || !tt || !tl) st = iapo_fail(IAPO_ERR_NOMEM, "heat map: out of memory");
	}
	if (st == IAPO_OK) {
		iapo_info_opts io = iapo_info_defaults();
		io.postfix = post;
		io.n_postfix = (int)K;
		io.temperature = 1.0f;
		st = iapo_info_new(&w, 1, (int)P + L + 1, &io, &est);
	}
	if (st == IAPO_OK) {
		const int *pr[1] = {ids}, *cp[1] = {res.tokens};
		int pl[1] = {(int)P}, cl[1] = {L};
		iapo_info_batch b = {.n = 1, .prompts = pr, .plen = pl, .comps = cp, .clen = cl};
		st = iapo_info_compute(est, &b, E, C, L + 1, NULL);
	}
	iapo_tokadv_opts ao = iapo_tokadv_defaults();
	if (st == IAPO_OK) st = iapo_tokadv_compute(&ao, L, E, C, 1.0f, 1.0f, adv, S, Sh, Ch);
	for (int t = 0; st == IAPO_OK && t < L; t++) {
		size_t tc = 0;
		st = iapo_tokenizer_decode(tok, res.tokens + t, 1, 0, &tt[t], &tl[t], &tc);
	}
	char *page = NULL;
	size_t plen = 0;
	if (st == IAPO_OK) {
		char settings[512];
		snprintf(settings, sizeof settings,
			 "sampled completion (temperature %g, seed %llu); E_t = entropy of the first answer token after prompt + o_<t + \"%s\"; "
			 "gain plain; entropy temperature 1",
			 d->o->temperature, (unsigned long long)d->o->eval_seed, IAPO_INFO_POSTFIX);
		iapo_info_report rep = {.model = model_dir, .prompt_text = text, .settings = settings, .L = L,
					.ids = res.tokens, .text = (const char *const *)tt, .text_len = tl, .E = E, .S = S,
					.C = C, .S_hat = Sh, .C_hat = Ch, .adv = adv, .display_A = 1.0f};
		FILE *m = open_memstream(&page, &plen);
		if (!m) st = iapo_fail(IAPO_ERR_NOMEM, "heat map: out of memory");
		else {
			st = iapo_info_html_write(m, &rep);
			if (fclose(m) != 0 && st == IAPO_OK) st = iapo_fail(IAPO_ERR_IO, "heat map: write failed");
		}
	}
	if (st == IAPO_OK && page) {
		/* its CSS (scoped by the section's class where it names body/h1/h2) and its body */
		char *s0 = strstr(page, "<style>\n"), *s1 = strstr(page, "</style>");
		char *b0 = strstr(page, "<body>\n"), *b1 = strstr(page, "</body>");
		double sum = 0;
		for (int t = 0; t < L; t++) sum += S[t];
		fprintf(f, "<section class=\"heat\" data-tokens=\"%d\">\n<h3>", L);
		iapo_html_escape(f, who);
		fprintf(f, " &mdash; %d tokens, %s, answer entropy %.3f &rarr; %.3f nats</h3>\n", L,
			res.finish == IAPO_FINISH_EOS ? "ended by EOS" : "cut at the token budget", (double)E[0],
			(double)E[L]);
		if (s0 && s1 && s1 > s0) {
			fputs("<style>\n", f);
			for (char *line = s0 + 8; line < s1;) {
				char *nl = memchr(line, '\n', (size_t)(s1 - line));
				char *end = nl ? nl + 1 : s1;
				if (strncmp(line, "body{", 5) && strncmp(line, "h1{", 3))
					fwrite(line, 1, (size_t)(end - line), f);
				line = end;
			}
			fputs("</style>\n", f);
		}
		if (b0 && b1 && b1 > b0) {
			/* the body minus its <h1> line */
			char *p = b0 + 7;
			char *h = strstr(p, "<h1>"), *he = h ? strstr(h, "</h1>\n") : NULL;
			if (h && he && he < b1) {
				fwrite(p, 1, (size_t)(h - p), f);
				p = he + 6;
			}
			for (char *q = p; q < b1;) { /* <h2> -> <h4> */
				char *n2 = strstr(q, "<h2>");
				char *c2 = strstr(q, "</h2>");
				char *nx = n2 && (!c2 || n2 < c2) ? n2 : c2;
				if (!nx || nx >= b1) {
					fwrite(q, 1, (size_t)(b1 - q), f);
					break;
				}
				fwrite(q, 1, (size_t)(nx - q), f);
				fputs(nx == n2 ? "<h4>" : "</h4>", f);
				q = nx + (nx == n2 ? 4 : 5);
			}
		}
		fputs("</section>\n", f);
		(void)sum;
	}
	free(page);
	if (tt)
		for (int t = 0; t < L; t++) iapo_free(tt[t]);
	iapo_free(tt);
	iapo_free(tl);
	iapo_free(E);
	iapo_free(C);
	iapo_free(S);
	iapo_free(Sh);
	iapo_free(Ch);
	iapo_free(adv);
	iapo_info_free(est);
	iapo_gen_results_free(&res, 1);
	iapo_free(ids);
	iapo_free(post);
	iapo_free(text);
	iapo_tokenizer_free(tok);
	iapo_weights_free(&w);
	return st;
}

/* Mean over seeds, step by step, of one metrics.jsonl field of method m.
 * x, y: (cap) filled; returns the step count (0 when no run has it). */
static int method_curve(const demo *d, int m, const char *field, double *x, double *y, int cap)
{
	int n = 0;
	double *cnt = iapo_calloc((size_t)cap, sizeof *cnt);
	if (!cnt) return 0;
	for (int i = 0; i < cap; i++) x[i] = y[i] = 0;
	for (int s = 0; s < d->o->seeds; s++) {
		char p[PATHN];
		iapo_metrics_table t;
		if (iapo_fs_join(p, sizeof p, d->run_dir[m][s], "metrics.jsonl") != IAPO_OK ||
		    iapo_metrics_load(p, &t) != IAPO_OK) {
			iapo_clear_error();
			continue;
		}
		const double *c = iapo_metrics_col(&t, field), *st = iapo_metrics_col(&t, "step");
		for (int i = 0; c && i < t.n_rows && i < cap; i++) {
			if (!isfinite(c[i])) continue;
			x[i] = st ? st[i] : i + 1;
			y[i] += c[i];
			cnt[i] += 1;
			if (i + 1 > n) n = i + 1;
		}
		iapo_metrics_free(&t);
	}
	for (int i = 0; i < n; i++) {
		if (cnt[i] > 0) y[i] /= cnt[i];
		else y[i] = x[i] = NAN;
	}
	iapo_free(cnt);
	return n;
}

/* Mean information gain per span kind of the generator's own test traces,
 * teacher-forced through the model in model_dir (demo/span_info.h). */
static iapo_status span_gain(demo *d, const char *model_dir, iapo_span_info_stats *acc)
{
	iapo_weights w;
	IAPO_TRY(iapo_weights_load(model_dir, &w));
	iapo_tokenizer *tok = NULL;
	iapo_span_info *si = NULL;
	iapo_status st = iapo_tokenizer_load(model_dir, &tok);
	iapo_span_info_opts so = iapo_span_info_defaults();
	so.system = d->o->system;
	so.one_shot = d->o->one_shot;
	so.max_tokens = 4096;
	if (st == IAPO_OK) st = iapo_span_info_new(&w, tok, &so, &si);
	if (st == IAPO_OK) st = iapo_span_info_file(si, d->test_path, d->o->quick ? 8 : 50, acc);
	iapo_span_info_free(si);
	iapo_tokenizer_free(tok);
	iapo_weights_free(&w);
	return st;
}

/* mean |S_t| of kind k, or over the redundant kinds pooled (k < 0) */
static double abs_mean(const iapo_span_info_stats *s, int k)
{
	double g = 0, n = 0;
	for (int j = 0; j < IAPO_SYNTH_N_KINDS; j++)
		if (k == j || (k < 0 && iapo_synth_kind_redundant((iapo_synth_kind)j))) {
			g += s->gain_abs[j];
			n += s->tokens[j];
		}
	return n > 0 ? g / n : NAN;
}

static void span_table(FILE *f, const iapo_span_info_stats *a, const iapo_span_info_stats *b, const char *na,
		       const char *nb)
{
	const iapo_span_info_stats *st[2] = {a, b};
	const char *nm[2] = {na, nb};
	int nmod = b ? 2 : 1;
	fputs("<table class=\"num\" id=\"span-gain\"><thead><tr><th>span kind</th><th>tokens</th>", f);
	for (int m = 0; m < nmod; m++) fprintf(f, "<th>mean S<sub>t</sub>, %s</th><th>mean |S<sub>t</sub>|, %s</th>", nm[m], nm[m]);
	fputs("</tr></thead>\n<tbody>\n", f);
	char x[40], y[40];
	for (int k = 0; k < IAPO_SYNTH_N_KINDS; k++) {
		if (a->tokens[k] <= 0) continue;
		fprintf(f, "<tr><td>%s%s</td><td>%.0f</td>", iapo_synth_kind_name((iapo_synth_kind)k),
			iapo_synth_kind_redundant((iapo_synth_kind)k) ? " (redundant)" : "", a->tokens[k]);
		for (int m = 0; m < nmod; m++)
			fprintf(f, "<td>%s</td><td>%s</td>", iapo_html_num(iapo_span_info_mean(st[m], (iapo_synth_kind)k), 3, x, sizeof x),
				iapo_html_num(abs_mean(st[m], k), 3, y, sizeof y));
		fputs("</tr>\n", f);
	}
	fputs("<tr><td>redundant / step (target &le; 0.1)</td><td></td>", f);
	for (int m = 0; m < nmod; m++) {
		double sa = abs_mean(st[m], IAPO_SYNTH_STEP), ra = abs_mean(st[m], -1);
		fprintf(f, "<td>%s</td><td>%s</td>", iapo_html_num(iapo_span_info_ratio(st[m]), 3, x, sizeof x),
			iapo_html_num(sa > 0 ? ra / sa : NAN, 3, y, sizeof y));
	}
	fputs("</tr>\n</tbody></table>\n<p class=\"note\">Signed means telescope: over a whole trace the gains sum to "
	      "E<sub>0</sub> &minus; E<sub>L</sub>, so a model that is already sure of some answer before reasoning "
	      "(small E<sub>0</sub>) has small signed means everywhere; the mean magnitude shows where the "
	      "estimate moves at all.</p>\n",
	      f);
}

static iapo_status write_report(demo *d, double wall)
{
	const iapo_demo_opts *o = d->o;
	char p[PATHN], tmp[PATHN + 32];
	IAPO_TRY(iapo_fs_join(p, sizeof p, o->out, "report.html"));
	snprintf(tmp, sizeof tmp, "%s.tmp", p);
	FILE *f = fopen(tmp, "wb");
	if (!f) return iapo_fail(IAPO_ERR_IO, "%s: cannot open for writing", tmp);
	iapo_html_begin(f, "iapo demo: GRPO and IAPO on a synthetic reasoning task");
	char w[32];
	fprintf(f, "<p>A Qwen2-shaped model (%d layers, hidden %d, vocabulary %d) was trained from random weights by "
		   "SFT on verbose chain-of-thought traces of chained arithmetic problems, then post-trained from that "
		   "same base with each method below for %ld RL steps of %ld prompts &times; %ld completions "
		   "(%d seed%s). Evaluation: the first %d held-out test problems, %d samples each at temperature %g, "
		   "at most %ld completion tokens. Wall time %s.</p>\n",
		o->layers, o->hidden, d->vocab_size, o->rl_steps, o->prompts_per_step, o->group, o->seeds,
		o->seeds > 1 ? "s" : "", o->eval_problems ? o->eval_problems : o->n_test, o->eval_samples, o->temperature,
		o->max_completion, iapo_progress_duration(wall, w, sizeof w));
	/* the table */
	fprintf(f, "<h2>Results on the test split</h2>\n<table class=\"num\" id=\"results\"><thead><tr><th>method</th>"
		   "<th>pass@1</th><th>pass@%d</th><th>mean length (tokens)</th><th>tokens per correct answer</th>"
		   "<th>length vs GRPO</th><th>training seconds</th></tr></thead>\n<tbody>\n",
		o->eval_samples);
	double x[100], grpo_len = NAN, sd;
	for (int r = 1; r <= d->n_sel; r++)
		if (!strcmp(row_name(d, r), "grpo")) mean_std(x, row_values(d, r, S_LEN, x), &grpo_len, &sd);
	for (int r = 0; r <= d->n_sel; r++) {
		fputs("<tr><td>", f);
		iapo_html_escape(f, row_name(d, r));
		fputs("</td>", f);
		for (int k = 0; k < 5; k++) {
			double m, s;
			mean_std(x, row_values(d, r, k, x), &m, &s);
			if (k == S_EFF) m = m > 0 ? 1 / m : INFINITY, s = 0;
			char a[40], b[40];
			iapo_html_num(m, k == S_LEN || k == S_EFF ? 4 : 3, a, sizeof a);
			if (o->seeds > 1 && r > 0 && k != S_EFF && k != 4)
				fprintf(f, "<td>%s &plusmn; %s</td>", a, iapo_html_num(s, 2, b, sizeof b));
			else
				fprintf(f, "<td>%s</td>", a);
			if (k == S_EFF) {
				double lm, ls;
				mean_std(x, row_values(d, r, S_LEN, x), &lm, &ls);
				fprintf(f, "<td>%s</td>", isfinite(grpo_len) && grpo_len > 0
								 ? iapo_html_num(lm / grpo_len, 3, b, sizeof b)
								 : "&ndash;");
			}
		}
		fputs("</tr>\n", f);
	}
	fputs("</tbody></table>\n<p class=\"note\">pass@k: the unbiased estimator over the samples; mean length: "
	      "completion tokens, EOS included; tokens per correct answer = mean length / pass@k (the inverse of "
	      "token efficiency); training seconds: SFT for the base, RL for the others.</p>\n<ul class=\"note\">\n",
	      f);
	for (int i = 0; i < d->n_sel; i++) {
		fputs("<li><b>", f);
		iapo_html_escape(f, methods[d->sel[i]].name);
		fputs("</b>: ", f);
		iapo_html_escape(f, methods[d->sel[i]].about);
		fputs("</li>\n", f);
	}
	fputs("</ul>\n", f);
	char cmp[1024];
	if (*comparisons(d, cmp, sizeof cmp)) {
		fputs("<pre id=\"comparisons\">", f);
		iapo_html_escape(f, cmp);
		fputs("</pre>\n", f);
	}

	/* curves */
	fputs("<h2>Training curves (mean over seeds)</h2>\n<div class=\"charts\">\n", f);
	const struct {
		const char *field, *title, *ylabel;
	} curves[] = {
		{"reward_mean", "Reward", "mean reward"},
		{"completion_length_mean", "Completion length", "tokens"},
		{"accuracy", "Accuracy of the samples", "fraction correct"},
		{"info_gain_mean", "Information gain per token (IAPO runs)", "nats"},
		{"kl", "KL to the base", "nats"},
		{"entropy", "Policy entropy", "nats per token"},
	};
	const int cap = (int)o->rl_steps + 8;
	double *xs = iapo_calloc((size_t)N_METHODS * (size_t)cap, sizeof(double));
	double *ys = iapo_calloc((size_t)N_METHODS * (size_t)cap, sizeof(double));
	iapo_status st = xs && ys ? IAPO_OK : iapo_fail(IAPO_ERR_NOMEM, "report: out of memory");
	for (size_t c = 0; st == IAPO_OK && c < sizeof curves / sizeof curves[0]; c++) {
		iapo_svg_series ser[N_METHODS];
		int ns = 0;
		for (int i = 0; i < d->n_sel; i++) {
			int m = d->sel[i];
			double *cx = xs + (size_t)i * (size_t)cap, *cy = ys + (size_t)i * (size_t)cap;
			int n = method_curve(d, m, curves[c].field, cx, cy, cap);
			if (n > 0) ser[ns++] = (iapo_svg_series){methods[m].name, cx, cy, n, m};
		}
		if (!ns) continue;
		iapo_svg_chart ch = {curves[c].title, "step", curves[c].ylabel, 0, 0, ser, ns};
		st = iapo_svg_chart_write(f, &ch);
	}
	iapo_free(xs);
	iapo_free(ys);
	/* the base's SFT loss */
	if (st == IAPO_OK) {
		char mp[PATHN];
		iapo_metrics_table t;
		if (iapo_fs_join(mp, sizeof mp, d->base_run, "metrics.jsonl") == IAPO_OK && iapo_metrics_load(mp, &t) == IAPO_OK) {
			double *sx = iapo_metrics_steps(&t);
			const double *l = iapo_metrics_col(&t, "loss");
			if (sx && l) {
				iapo_svg_series se[2] = {{"train loss", sx, l, t.n_rows, 0},
							 {"eval loss", sx, iapo_metrics_col(&t, "eval_loss"), t.n_rows, 1}};
				iapo_svg_chart ch = {"Base model: SFT loss", "step", "nats per token", 0, 0, se,
						     se[1].y ? 2 : 1};
				st = iapo_svg_chart_write(f, &ch);
			}
			iapo_free(sx);
			iapo_metrics_free(&t);
		} else {
			iapo_clear_error();
		}
	}
	fputs("</div>\n", f);

	/* heat maps of the same test problem */
	int iapo_m = method_index("iapo", 4);
	int have_iapo = 0;
	for (int i = 0; i < d->n_sel; i++) have_iapo |= d->sel[i] == iapo_m;
	if (st == IAPO_OK) {
		iapo_dataset ds;
		if (iapo_dataset_load(d->test_path, NULL, &ds) == IAPO_OK) {
			fputs("<h2>Information gain per token: the same test problem, base vs IAPO</h2>\n"
			      "<p class=\"note\">Each model answers the first test problem, sampled as in the evaluation "
			      "(same temperature, same random stream for both). Every token is "
			      "coloured by how much it reduced the model's uncertainty about the answer (blue) or increased "
			      "it (red), estimated as IAPO does: the entropy of the answer when the reasoning is cut there. "
			      "Hover a token for its numbers.</p>\n",
			      f);
			fputs("<p class=\"note\">Expected answer: ", f);
			iapo_html_escape(f, ds.ex[0].label);
			fputs("</p>\n", f);
			st = heatmap(d, d->base_model, ds.ex[0].prompt, f, "base model");
			if (st == IAPO_OK && have_iapo) st = heatmap(d, d->model_dir[iapo_m][0], ds.ex[0].prompt, f, "IAPO model (seed 1)");
			iapo_dataset_free(&ds);
		} else {
			iapo_clear_error();
		}
	}
	if (st == IAPO_OK) {
		iapo_span_info_stats sa, sb;
		memset(&sa, 0, sizeof sa);
		memset(&sb, 0, sizeof sb);
		st = span_gain(d, d->base_model, &sa);
		if (st == IAPO_OK && have_iapo) st = span_gain(d, d->model_dir[iapo_m][0], &sb);
		if (st == IAPO_OK) {
			fputs("<h2>Does the estimator see the redundancy?</h2>\n<p class=\"note\">The task generator knows "
			      "which characters of each trace determine the answer (step) and which are redundant (restate, "
			      "filler, verify, summary). Here the generator's own test traces are read by each model, "
			      "teacher-forced, and IAPO's information gain S<sub>t</sub> of every token is averaged per kind "
			      "of span.</p>\n",
			      f);
			span_table(f, &sa, have_iapo ? &sb : NULL, "base", "IAPO");
			d->span_ratio_base = iapo_span_info_ratio(&sa);
			d->span_ratio_iapo = have_iapo ? iapo_span_info_ratio(&sb) : NAN;
			double s0 = abs_mean(&sa, IAPO_SYNTH_STEP), s1 = abs_mean(&sb, IAPO_SYNTH_STEP);
			d->span_abs_base = s0 > 0 ? abs_mean(&sa, -1) / s0 : NAN;
			d->span_abs_iapo = have_iapo && s1 > 0 ? abs_mean(&sb, -1) / s1 : NAN;
		}
	}
	if (st == IAPO_OK) {
		cJSON *s = settings_json(d);
		char *txt = s ? cJSON_Print(s) : NULL;
		cJSON_Delete(s);
		fputs("<h2>Settings</h2>\n<details><summary>settings (also in results.json)</summary><pre>", f);
		iapo_html_escape(f, txt ? txt : "");
		fputs("</pre></details>\n", f);
		cJSON_free(txt);
	}
	iapo_status st2 = iapo_html_end(f);
	if (st == IAPO_OK) st = st2;
	if (fclose(f) != 0 && st == IAPO_OK) st = iapo_fail(IAPO_ERR_IO, "%s: write failed", tmp);
	if (st == IAPO_OK && rename(tmp, p) != 0) st = iapo_fail(IAPO_ERR_IO, "%s: cannot rename to %s", tmp, p);
	if (st != IAPO_OK) remove(tmp);
	return st;
}

/* ---- the whole demo ------------------------------------------------------- */

iapo_status iapo_demo_run(const iapo_demo_opts *o, FILE *table, FILE *log, int *stopped)
{
	IAPO_TRY(iapo_demo_opts_check(o));
	demo *d = iapo_calloc(1, sizeof *d);
	if (!d) return iapo_fail(IAPO_ERR_NOMEM, "demo: out of memory");
	d->o = o;
	d->table = table;
	d->log = log;
	d->t0 = iapo_now();
	for (const char *p = o->methods; *p;) {
		const char *e = strchr(p, ',');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		int m = method_index(p, n);
		int dup = 0;
		for (int i = 0; i < d->n_sel; i++) dup |= d->sel[i] == m;
		if (!dup) d->sel[d->n_sel++] = m;
		p += n + (e ? 1 : 0);
	}
	/* table order, whatever the list's */
	for (int i = 1; i < d->n_sel; i++)
		for (int j = i; j > 0 && d->sel[j] < d->sel[j - 1]; j--) {
			int t = d->sel[j];
			d->sel[j] = d->sel[j - 1];
			d->sel[j - 1] = t;
		}
	d->rl_total = d->n_sel * o->seeds;
	if (o->threads > 0) iapo_set_threads(o->threads);
	iapo_status st = iapo_fs_mkdir_p(o->out);
	if (st == IAPO_OK) st = stage_data(d);
	if (st == IAPO_OK) st = stage_base(d);
	for (int s = 1; st == IAPO_OK && !d->stopped && s <= o->seeds; s++)
		for (int i = 0; st == IAPO_OK && !d->stopped && i < d->n_sel; i++) st = run_one(d, d->sel[i], s);
	double wall = iapo_now() - d->t0;
	if (st == IAPO_OK && !d->stopped) {
		say(d, "writing %s/results.json and %s/report.html", o->out, o->out);
		st = write_report(d, wall);
		if (st == IAPO_OK) st = write_results(d, wall);
		if (st == IAPO_OK) print_table(d, table, wall);
	}
	if (d->stopped) say(d, "stopped; run the same command again to continue (finished stages are reused)");
	if (stopped) *stopped = d->stopped;
	cJSON_free(d->base_fp);
	iapo_free(d);
	return st;
}
