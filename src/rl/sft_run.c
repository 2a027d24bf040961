/*
 * sft_run.c — a whole SFT run (see sft_run.h): the option table (parsed,
 * written to config.json and printed by rl/optable.c), the data (prompts
 * rendered as `iapo train` renders them, completions + end-of-turn), the
 * model (loaded or fresh), the step loop with logging, held-out loss and checkpoints, and
 * resuming. The step itself is sft.c's.
 *
 * Not here: printing (the caller's progress hook does it), signals (the
 * caller owns the stop flag), what the run directory code of `iapo train`
 * does alike (rl/run_dir.c: --out checks, config.json, metrics truncation).
 */
#include "rl/sft_run.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/mem.h"
#include "core/progress.h"
#include "core/rng.h"
#include "core/status.h"
#include "dist/dist.h"
#include "io/fs.h"
#include "io/json.h"
#include "model/weights.h"
#include "rl/checkpoint.h"
#include "rl/dataset.h"
#include "rl/info.h"
#include "rl/optable.h"
#include "rl/prompt.h"
#include "rl/run_dir.h"
#include "rl/schedule.h"
#include "rl/sft.h"
#include "tokenizer/tokenizer.h"

#define PATHN 4096
#define KEY_SFT_DATA 0x73667464ull /* "sftd": the data order's stream */

/* ---- the option table ----------------------------------------------------- */

#define F(field) offsetof(iapo_sft_run_opts, field)
#define BIG 1e15

static const iapo_opt_def OPTS[] = {
	{"model", IAPO_OPT_STR, F(model), NULL, 0, 0, NULL, "PATH", "HF model directory or checkpoint-N to start from, or a config.json FILE: a fresh random model of that shape (required)", "model"},
	{"tokenizer", IAPO_OPT_STR, F(tokenizer), NULL, 0, 0, NULL, "DIR", "tokenizer.json + tokenizer_config.json (default: --model's directory)", NULL},
	{"init-std", IAPO_OPT_NUM, F(init_std), "-1", -1, 1e3, NULL, "F", "fresh model: normal std of the weights; < 0: the config's initializer_range, else 0.02", NULL},

	{"data", IAPO_OPT_STR, F(data), NULL, 0, 0, NULL, "FILE", "training rows, JSONL in a layout iapo train reads, with a completion field (required)", "data"},
	{"eval-data", IAPO_OPT_STR, F(eval_data), NULL, 0, 0, NULL, "FILE", "held-out rows: their completion loss is logged as eval_loss", NULL},
	{"data-format", IAPO_OPT_ENUM, F(data_format), "auto", 0, 0, "auto|gsm8k|math|dapo|generic", "F", "row layout (as iapo train: it picks the system prompt's task line)", NULL},
	{"prompt-field", IAPO_OPT_STR, F(prompt_field), NULL, 0, 0, NULL, "NAME", "field holding the problem (default: the layout's)", NULL},
	{"answer-field", IAPO_OPT_STR, F(answer_field), NULL, 0, 0, NULL, "NAME", "field holding the answer (default: the layout's; read, not trained on)", NULL},
	{"completion-field", IAPO_OPT_STR, F(completion_field), "completion", 0, 0, NULL, "NAME", "field holding the target completion (dotted for nested)", NULL},
	{"max-rows", IAPO_OPT_INT, F(max_rows), "0", 0, BIG, NULL, "N", "keep the first N rows of --data, 0 = all", NULL},
	{"system", IAPO_OPT_STR, F(system), NULL, 0, 0, NULL, "TEXT", "system prompt (default: the reference's R1 prompt + the layout's task line, as iapo train)", NULL},
	{"no-one-shot", IAPO_OPT_FLAG, F(no_one_shot), "0", 0, 0, NULL, NULL, "leave out the one-shot \"What is 2+2?\" exchange (give iapo train/eval the same flag)", NULL},
	{"no-chat-template", IAPO_OPT_FLAG, F(no_chat_template), "0", 0, 0, NULL, NULL, "the prompt is the problem text as is; the completion ends with the model's EOS", NULL},
	{"max-length", IAPO_OPT_INT, F(max_length), "1024", 2, 1 << 24, NULL, "N", "prompt + completion tokens; longer completions are cut at the end", NULL},
	{"early-exit-fraction", IAPO_OPT_NUM, F(early_exit_fraction), "0", 0, 1, NULL, "F", "this share of the rows also trains an early exit: the completion cut at a random line + \"</think><answer>\", loss on the answer only (calibrates IAPO's estimator)", NULL},

	{"out", IAPO_OPT_STR, F(out), NULL, 0, 0, NULL, "DIR", "run directory: config.json, metrics.jsonl, checkpoint-N/ (required)", "run"},
	{"resume", IAPO_OPT_FLAG, F(resume), "0", 0, 0, NULL, NULL, "continue from the latest checkpoint in --out (its config.json gives the defaults)", NULL},
	{"overwrite", IAPO_OPT_FLAG, F(overwrite), "0", 0, 0, NULL, NULL, "delete the checkpoints and metrics of an earlier run in --out", NULL},
	{"seed", IAPO_OPT_INT, F(seed), "42", 0, 9007199254740992.0, NULL, "N", "random seed: data order and a fresh model's weights", NULL},
	{"threads", IAPO_OPT_INT, F(threads), "0", 0, 4096, NULL, "N", "OpenMP/BLAS threads, 0 = all cores (a run repeats exactly only with the same count)", NULL},

	{"per-device-train-batch-size", IAPO_OPT_INT, F(batch_size), "8", 1, 1 << 20, NULL, "N", "examples per forward/backward on each process (alias --batch-size)", "batch"},
	{"gradient-accumulation-steps", IAPO_OPT_INT, F(grad_accum), "1", 1, 1 << 20, NULL, "N", "micro-batches per optimizer step", NULL},
	{"num-train-epochs", IAPO_OPT_NUM, F(epochs), "3", 1e-9, 1e9, NULL, "F", "passes over --data (fractional allowed)", NULL},
	{"max-steps", IAPO_OPT_INT, F(max_steps), "0", 0, BIG, NULL, "N", "optimizer steps; > 0 overrides --num-train-epochs", NULL},

	{"learning-rate", IAPO_OPT_NUM, F(learning_rate), "2e-5", 0, 1e3, NULL, "F", "peak learning rate", "optimizer"},
	{"warmup-ratio", IAPO_OPT_NUM, F(warmup_ratio), "0", 0, 1, NULL, "F", "linear warmup over this fraction of the steps (rounded up)", NULL},
	{"warmup-steps", IAPO_OPT_INT, F(warmup_steps), "0", 0, BIG, NULL, "N", "linear warmup steps (instead of --warmup-ratio)", NULL},
	{"lr-scheduler-type", IAPO_OPT_ENUM, F(lr_scheduler_type), "linear", 0, 0, "linear|cosine|constant", "S", "decay after warmup (to 0 at the last step for linear/cosine)", NULL},
	{"adam-beta1", IAPO_OPT_NUM, F(adam_beta1), "0.9", 0, 0.999999, NULL, "F", "AdamW beta1", NULL},
	{"adam-beta2", IAPO_OPT_NUM, F(adam_beta2), "0.999", 0, 0.999999999, NULL, "F", "AdamW beta2", NULL},
	{"adam-epsilon", IAPO_OPT_NUM, F(adam_epsilon), "1e-8", 0, 1, NULL, "F", "AdamW epsilon", NULL},
	{"weight-decay", IAPO_OPT_NUM, F(weight_decay), "0", 0, 1e3, NULL, "F", "decoupled weight decay", NULL},
	{"max-grad-norm", IAPO_OPT_NUM, F(max_grad_norm), "1.0", 0, 1e30, NULL, "F", "clip the global gradient norm, 0 = off", NULL},

	{"logging-steps", IAPO_OPT_INT, F(logging_steps), "1", 1, BIG, NULL, "N", "a metrics.jsonl line every N steps (loss averaged over them) and at the end", "logging, evaluation, checkpoints"},
	{"eval-steps", IAPO_OPT_INT, F(eval_steps), "0", 0, BIG, NULL, "N", "loss on --eval-data every N steps and at the end; 0 = at the end only", NULL},
	{"save-steps", IAPO_OPT_INT, F(save_steps), "500", 0, BIG, NULL, "N", "checkpoint every N steps (and always at the end), 0 = only at the end", NULL},
	{"max-bad-steps", IAPO_OPT_INT, F(max_bad_steps), "5", 1, 1 << 20, NULL, "N", "stop after N steps in a row with NaN/Inf loss or gradients (each is skipped)", NULL},
};
#define NOPTS (sizeof OPTS / sizeof *OPTS)

_Static_assert(sizeof OPTS / sizeof *OPTS <= IAPO_SFT_MAX_OPTS, "given[] too small");

/* Other spellings: TRL's short forms and `iapo train`'s names. */
static const char *const ALIASES[][2] = {
	{"batch-size", "per-device-train-batch-size"},
	{"micro-batch", "per-device-train-batch-size"},
	{"grad-accum", "gradient-accumulation-steps"},
	{"epochs", "num-train-epochs"},
	{"lr-schedule", "lr-scheduler-type"},
	{"adam-eps", "adam-epsilon"},
};

static const iapo_optable TABLE = {
	.cmd = "sft",
	.opts = OPTS,
	.n = NOPTS,
	.aliases = ALIASES,
	.n_aliases = sizeof ALIASES / sizeof *ALIASES,
	.size = sizeof(iapo_sft_run_opts),
	.given_off = offsetof(iapo_sft_run_opts, given),
	.owned_off = offsetof(iapo_sft_run_opts, owned),
	.help_width = 36,
	.enum_as_list = 1,
	.set_names_help = 1,
	.early_conflict = 1,
};

/* Defaults are numbers, flags or the few strings the table names (borrowed
 * from it): nothing to allocate, nothing can fail. */
void iapo_sft_run_opts_default(iapo_sft_run_opts *o) { (void)iapo_optable_default(&TABLE, o); }

void iapo_sft_run_opts_free(iapo_sft_run_opts *o) { iapo_optable_free(&TABLE, o); }

iapo_status iapo_sft_run_opts_set(iapo_sft_run_opts *o, const char *name, const char *value)
{
	return iapo_optable_set(&TABLE, o, name, value);
}

iapo_status iapo_sft_run_opts_load(iapo_sft_run_opts *o, const char *path) { return iapo_optable_load(&TABLE, o, path); }

iapo_status iapo_sft_run_opts_from_args(iapo_sft_run_opts *o, int argc, char **argv, int *help)
{
	return iapo_optable_from_args(&TABLE, o, argc, argv, help);
}

void iapo_sft_run_opts_help(FILE *f) { iapo_optable_help(&TABLE, f); }

/* Requirements and options that contradict each other. */
static iapo_status check_opts(const iapo_sft_run_opts *o)
{
	if (!o->model) return iapo_fail(IAPO_ERR_ARG, "--model PATH is required (a model directory or a config.json)");
	if (!o->data) return iapo_fail(IAPO_ERR_ARG, "--data FILE is required");
	if (!o->out) return iapo_fail(IAPO_ERR_ARG, "--out RUN_DIR is required");
	if (!o->completion_field || !*o->completion_field)
		return iapo_fail(IAPO_ERR_ARG, "--completion-field: expected a field name, found none");
	if (o->resume && o->overwrite) return iapo_fail(IAPO_ERR_ARG, "--resume and --overwrite contradict each other");
	if (o->warmup_steps > 0 && o->warmup_ratio > 0)
		return iapo_fail(IAPO_ERR_ARG, "--warmup-steps %ld and --warmup-ratio %g: give one of them", o->warmup_steps,
				 o->warmup_ratio);
	if (o->no_chat_template && (o->system || o->no_one_shot))
		return iapo_fail(IAPO_ERR_ARG, "--no-chat-template: the prompt is the bare problem text; --system and "
					       "--no-one-shot do not apply");
	if (!o->eval_data && o->eval_steps > 0)
		return iapo_fail(IAPO_ERR_ARG, "--eval-steps %ld: expected --eval-data FILE to evaluate on", o->eval_steps);
	/* --overwrite deletes --out's checkpoints before the model is loaded:
	 * refuse one of them, however the path spells it (as iapo train) */
	size_t no = strlen(o->out);
	while (no > 1 && o->out[no - 1] == '/') no--;
	char rest[32];
	if (o->overwrite && ((!strncmp(o->model, o->out, no) && !strncmp(o->model + no, "/checkpoint-", 12)) ||
			     (iapo_fs_within(o->model, o->out, rest, sizeof rest) && !strncmp(rest, "checkpoint-", 11))))
		return iapo_fail(IAPO_ERR_ARG, "--model %s: --overwrite would delete it first (it is a checkpoint of --out %s)",
				 o->model, o->out);
	iapo_data_format f;
	IAPO_TRY(iapo_data_format_parse(o->data_format ? o->data_format : "auto", &f));
	iapo_lr_schedule s;
	IAPO_TRY(iapo_lr_schedule_parse(o->lr_scheduler_type ? o->lr_scheduler_type : "linear", &s));
	return IAPO_OK;
}

/* ---- data ----------------------------------------------------------------- */

void iapo_sft_examples_free(iapo_sft_examples *s)
{
	iapo_free(s->pool);
	iapo_free(s->off);
	iapo_free(s->len);
	iapo_free(s->n_prompt);
	memset(s, 0, sizeof *s);
}

/* The completion field of every non-blank line of path (the rows the
 * dataset loader reads, in order; its own pass has checked the JSON), with
 * their line numbers. *texts[i] are owned (free each, then the arrays). */
static iapo_status read_completions(const char *path, const char *field, size_t want, char ***texts, size_t **lines)
{
	char *data;
	size_t len;
	*texts = NULL;
	*lines = NULL;
	IAPO_TRY(iapo_fs_read_file(path, (size_t)1 << 34, &data, &len));
	char **t = iapo_calloc(want ? want : 1, sizeof *t);
	size_t *ln = iapo_calloc(want ? want : 1, sizeof *ln);
	iapo_status st = t && ln ? IAPO_OK : iapo_fail(IAPO_ERR_NOMEM, "%s: out of memory", path);
	size_t k = 0, pos = 0;
	for (size_t line = 1; st == IAPO_OK && pos < len && k < want; line++) {
		char *nl = memchr(data + pos, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - (data + pos)) : len - pos;
		const char *s = data + pos;
		pos += n + 1;
		if (n && s[n - 1] == '\r') n--;
		if (line == 1 && n >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0) s += 3, n -= 3;
		size_t a = 0;
		while (a < n && (s[a] == ' ' || s[a] == '\t')) a++;
		if (a == n) continue;
		cJSON *row = cJSON_ParseWithLength(s, n);
		const cJSON *v = row ? iapo_json_get_path(row, field) : NULL;
		if (!cJSON_IsString(v) || !v->valuestring[0]) {
			st = iapo_fail(IAPO_ERR_FORMAT,
				       "%s: line %zu: expected field \"%s\" (the completion to train on; --completion-field "
				       "names another) to be a non-empty string, found %s",
				       path, line, field, !v ? "no such field" : cJSON_IsString(v) ? "an empty string" : iapo_json_type_name(v));
		} else if (!(t[k] = iapo_strdup(v->valuestring))) {
			st = iapo_fail(IAPO_ERR_NOMEM, "%s: out of memory", path);
		} else {
			ln[k++] = line;
		}
		cJSON_Delete(row);
	}
	iapo_free(data);
	if (st == IAPO_OK && k != want)
		st = iapo_fail(IAPO_ERR_INTERNAL, "%s: found %zu rows with a completion, the dataset loader %zu", path, k, want);
	if (st != IAPO_OK) {
		for (size_t i = 0; t && i < want; i++) iapo_free(t[i]);
		iapo_free(t);
		iapo_free(ln);
		return st;
	}
	*texts = t;
	*lines = ln;
	return IAPO_OK;
}

static iapo_status split_push(iapo_sft_examples *s, const int *ids, size_t n)
{
	if (s->used + n > s->cap) {
		size_t nc = s->cap ? s->cap * 2 : 4096;
		while (nc < s->used + n) nc *= 2;
		int *np = iapo_realloc(s->pool, nc * sizeof(int));
		if (!np) return iapo_fail(IAPO_ERR_NOMEM, "sft: out of memory for the token pool");
		s->pool = np;
		s->cap = nc;
	}
	memcpy(s->pool + s->used, ids, n * sizeof(int));
	s->used += n;
	return IAPO_OK;
}

typedef struct {
	const iapo_sft_run_opts *o;
	const iapo_tokenizer *tok;
	int eot;
} data_ctx;

/* A row's prompt tokens as `iapo train` renders them (or the bare problem
 * text with --no-chat-template). */
static iapo_status prompt_ids(const data_ctx *c, iapo_data_format f, const char *problem, int **ids, size_t *n,
			      size_t *cap)
{
	const iapo_sft_run_opts *o = c->o;
	if (o->no_chat_template) return iapo_tokenizer_encode(c->tok, problem, strlen(problem), ids, n, cap);
	return iapo_prompt_tokens(c->tok, f, o->system, problem, !o->no_one_shot, ids, n, cap);
}

/* Where the early-exit sequence of a row cuts its completion: the start of
 * a line of the reasoning drawn from (seed, row), or -1 when the row is not
 * drawn or holds no "</think>". */
static long early_cut(const char *comp, uint64_t seed, size_t row, double frac)
{
	iapo_rng g;
	iapo_rng_seed(&g, seed, 0x6561726c79ULL /* "early" */, (uint64_t)row, 0);
	if (!(iapo_rng_double(&g) < frac)) return -1;
	const char *end = strstr(comp, "</think>");
	if (!end) return -1;
	long n = 0; /* line starts in [comp, end]: after each newline, and end itself */
	for (const char *p = comp; p < end; p++) n += *p == '\n';
	long pick = (long)iapo_rng_below(&g, (uint64_t)n + 1), k = 0;
	for (const char *p = comp; p < end; p++)
		if (*p == '\n' && k++ == pick) return (long)(p + 1 - comp);
	return (long)(end - comp);
}

/* Appends row r's early-exit sequence (see sft_run.h): prompt ids, the cut
 * completion, the postfix, then label + "</answer>" + eot as targets. A
 * sequence that does not fit max_len is left out (counted as truncated). */
static iapo_status push_early(const data_ctx *c, iapo_sft_examples *out, const int *ids, size_t nid,
			      const char *comp, long cut, const char *label, size_t max_len)
{
	int *piece[3] = {NULL, NULL, NULL};
	size_t np[3] = {0, 0, 0}, cap[3] = {0, 0, 0};
	iapo_status st = IAPO_OK;
	size_t nl = strlen(label);
	char *tail = iapo_malloc(nl + sizeof "</answer>");
	if (!tail) return iapo_fail(IAPO_ERR_NOMEM, "sft: out of memory");
	memcpy(tail, label, nl);
	memcpy(tail + nl, "</answer>", sizeof "</answer>");
	/* Each piece encoded alone, as the estimator sees them: the sampled
	 * tokens, then the postfix's own tokenisation, then the answer. */
	if (cut > 0) st = iapo_tokenizer_encode(c->tok, comp, (size_t)cut, &piece[0], &np[0], &cap[0]);
	if (st == IAPO_OK)
		st = iapo_tokenizer_encode(c->tok, IAPO_INFO_POSTFIX, strlen(IAPO_INFO_POSTFIX), &piece[1], &np[1], &cap[1]);
	if (st == IAPO_OK) st = iapo_tokenizer_encode(c->tok, tail, strlen(tail), &piece[2], &np[2], &cap[2]);
	iapo_free(tail);
	const size_t ctx = np[0] + np[1], total = nid + ctx + np[2] + 1;
	if (st == IAPO_OK && total <= max_len && np[2] > 0) {
		size_t i = out->n, off = out->used;
		st = split_push(out, ids, nid);
		for (int k = 0; k < 3 && st == IAPO_OK; k++)
			if (np[k]) st = split_push(out, piece[k], np[k]);
		if (st == IAPO_OK) st = split_push(out, &c->eot, 1);
		if (st == IAPO_OK) {
			out->off[i] = off;
			out->n_prompt[i] = (int)(nid + ctx);
			out->len[i] = (int)(out->used - off);
			out->tokens += out->len[i];
			if (out->len[i] > out->longest) out->longest = out->len[i];
			out->n = i + 1;
			out->n_early++;
		}
	} else if (st == IAPO_OK) {
		out->truncated++;
	}
	for (int k = 0; k < 3; k++) iapo_free(piece[k]);
	return st;
}

/* Loads path as `iapo train` would (layout, prompt), adds each row's
 * completion and the end-of-turn token. max_rows: 0 = all. early: also the
 * early-exit sequences of --early-exit-fraction (training data). */
static iapo_status load_split(const data_ctx *c, const char *path, size_t max_rows, int early, iapo_sft_examples *out)
{
	const iapo_sft_run_opts *o = c->o;
	memset(out, 0, sizeof *out);
	iapo_dataset_opts dopts = {0};
	IAPO_TRY(iapo_data_format_parse(o->data_format ? o->data_format : "auto", &dopts.format));
	dopts.prompt_field = o->prompt_field;
	dopts.answer_field = o->answer_field;
	iapo_dataset ds;
	IAPO_TRY(iapo_dataset_load(path, &dopts, &ds));
	char **comp = NULL;
	size_t *lines = NULL;
	iapo_status st = read_completions(path, o->completion_field, ds.n, &comp, &lines);
	if (st != IAPO_OK) {
		iapo_dataset_free(&ds);
		return st;
	}
	size_t n = max_rows > 0 && max_rows < ds.n ? max_rows : ds.n;
	int *ids = NULL, *cids = NULL;
	size_t nid = 0, cap = 0, ncid = 0, ccap = 0;
	const double frac = early ? o->early_exit_fraction : 0;
	long *cuts = NULL;
	size_t n_seq = n;
	if (frac > 0) {
		if (!(cuts = iapo_malloc((n ? n : 1) * sizeof(long)))) st = iapo_fail(IAPO_ERR_NOMEM, "sft: out of memory");
		for (size_t r = 0; cuts && r < n; r++)
			if ((cuts[r] = early_cut(comp[r], (uint64_t)o->seed, r, frac)) >= 0) n_seq++;
	}
	out->off = iapo_malloc((n_seq ? n_seq : 1) * sizeof(size_t));
	out->len = iapo_malloc((n_seq ? n_seq : 1) * sizeof(int));
	out->n_prompt = iapo_malloc((n_seq ? n_seq : 1) * sizeof(int));
	if (!out->off || !out->len || !out->n_prompt) st = iapo_fail(IAPO_ERR_NOMEM, "sft: out of memory");
	out->eot = c->eot;
	const size_t max_len = (size_t)o->max_length;
	for (size_t r = 0; r < n && st == IAPO_OK; r++) {
		st = prompt_ids(c, ds.format, ds.ex[r].prompt, &ids, &nid, &cap);
		if (st == IAPO_OK) st = iapo_tokenizer_encode(c->tok, comp[r], strlen(comp[r]), &cids, &ncid, &ccap);
		if (st != IAPO_OK) {
			iapo_fail_prefix(st, "%s: line %zu", path, lines[r]);
			break;
		}
		if (nid == 0 || nid + 1 >= max_len) {
			st = iapo_fail(IAPO_ERR_FORMAT,
				       "%s: line %zu: expected a prompt shorter than --max-length %zu - 1 tokens (room for the "
				       "completion), found %zu tokens",
				       path, lines[r], max_len, nid);
			break;
		}
		size_t room = max_len - nid, want = ncid + 1; /* + end of turn */
		out->off[r] = out->used;
		st = split_push(out, ids, nid);
		if (st == IAPO_OK) st = split_push(out, cids, want <= room ? ncid : room);
		if (st == IAPO_OK && want <= room) st = split_push(out, &c->eot, 1);
		if (want > room) out->truncated++;
		if (st != IAPO_OK) break;
		out->n_prompt[r] = (int)nid;
		out->len[r] = (int)(out->used - out->off[r]);
		out->tokens += out->len[r];
		if (out->len[r] > out->longest) out->longest = out->len[r];
		out->n = r + 1;
	}
	/* the early-exit sequences after all the rows' own, so that the first n
	 * are the rows in order whatever the fraction */
	for (size_t r = 0; cuts && r < n && st == IAPO_OK; r++) {
		if (cuts[r] < 0) continue;
		st = prompt_ids(c, ds.format, ds.ex[r].prompt, &ids, &nid, &cap);
		if (st == IAPO_OK) st = push_early(c, out, ids, nid, comp[r], cuts[r], ds.ex[r].label, max_len);
		if (st != IAPO_OK) iapo_fail_prefix(st, "%s: line %zu: early exit", path, lines[r]);
	}
	iapo_free(cuts);
	iapo_free(ids);
	iapo_free(cids);
	for (size_t i = 0; i < ds.n; i++) iapo_free(comp[i]);
	iapo_free(comp);
	iapo_free(lines);
	iapo_dataset_free(&ds);
	if (st != IAPO_OK) iapo_sft_examples_free(out);
	return st;
}

/* The token that ends an assistant turn in the tokenizer's chat template:
 * the first token after the content of a rendered assistant message (so
 * any template the renderer knows answers for itself). With
 * --no-chat-template: the model's (else the tokenizer's) first EOS. */
static iapo_status end_of_turn(const iapo_tokenizer *tok, const iapo_config *cfg, int no_chat, const char *tokdir,
			       int *eot)
{
	*eot = -1;
	if (no_chat) {
		int ids[16];
		int n = iapo_tokenizer_eos_ids(tok, ids, 16);
		*eot = cfg->n_eos > 0 ? cfg->eos_ids[0] : n > 0 ? ids[0] : -1;
		if (*eot < 0)
			return iapo_fail(IAPO_ERR_FORMAT, "%s: expected an EOS token to end completions with (eos_token_id), found none",
					 tokdir);
		return IAPO_OK;
	}
	static const char MARK[] = "IAPO_SFT_END_OF_CONTENT";
	iapo_chat_msg m[2] = {{"user", "x"}, {"assistant", MARK}};
	char *text = NULL;
	IAPO_TRY(iapo_tokenizer_chat_messages(tok, m, 2, 0, &text));
	const char *after = strstr(text, MARK);
	int *ids = NULL;
	size_t n = 0, cap = 0;
	iapo_status st = IAPO_OK;
	if (after) {
		after += strlen(MARK);
		st = iapo_tokenizer_encode(tok, after, strlen(after), &ids, &n, &cap);
	}
	int known = 0;
	if (st == IAPO_OK && after && n > 0) {
		int eos[16], ne = iapo_tokenizer_eos_ids(tok, eos, 16);
		known = iapo_tokenizer_is_special(tok, ids[0]);
		for (int i = 0; i < ne; i++) known |= eos[i] == ids[0];
	}
	if (st == IAPO_OK && !known)
		st = iapo_fail(IAPO_ERR_UNSUPPORTED,
			       "%s: chat_template: expected a special end-of-turn token after an assistant turn, found %s", tokdir,
			       !after || n == 0 ? "nothing" : "an ordinary token");
	if (st == IAPO_OK) *eot = ids[0];
	iapo_free(ids);
	iapo_free(text);
	return st;
}

iapo_status iapo_sft_examples_load(const iapo_sft_run_opts *o, const iapo_tokenizer *tok, const iapo_config *cfg,
				   const char *path, size_t max_rows, iapo_sft_examples *out)
{
	memset(out, 0, sizeof *out);
	data_ctx c = {o, tok, -1};
	IAPO_TRY(end_of_turn(tok, cfg, o->no_chat_template, "the tokenizer", &c.eot));
	return load_split(&c, path, max_rows, 1, out);
}

/* ---- the run -------------------------------------------------------------- */

typedef struct {
	const iapo_sft_run_opts *o;
	int rank, ranks;
	char tokdir[PATHN];
	iapo_tokenizer *tok;
	iapo_weights w;
	iapo_sft *sft;
	iapo_sft_examples train, eval;
	int has_eval;
	iapo_lr_schedule sched;
	long spe;       /* steps per epoch */
	long step_n;    /* examples per step (all ranks) */
	long total;     /* optimizer steps */
	long warmup;
	size_t *perm;   /* (train.n) the order of epoch perm_epoch */
	long perm_epoch;
	const int **ptr;  /* (step_n) this rank's examples of the step */
	int *lens, *nps;  /* (step_n) */
	/* progress */
	long step, adam_saved_t;
	int bad_streak;
	double acc_loss;  /* sum of the per-step losses since the last metrics line */
	long acc_steps, acc_skipped;
	double acc_tokens;
	long saved_step;
	char last_ckpt[PATHN];
	cJSON *log_history;
	FILE *metrics;
} run;

/* The directory part of a file path ("." for a bare name). */
static void dir_of(const char *path, char *buf, size_t n)
{
	const char *slash = strrchr(path, '/');
	if (!slash)
		snprintf(buf, n, ".");
	else if (slash == path)
		snprintf(buf, n, "/");
	else
		snprintf(buf, n, "%.*s", (int)(slash - path), path);
}

static void add_eos(iapo_config *cfg, int id)
{
	for (int i = 0; i < cfg->n_eos; i++)
		if (cfg->eos_ids[i] == id) return;
	if (cfg->n_eos < IAPO_MAX_EOS) cfg->eos_ids[cfg->n_eos++] = id;
}

/* Tokenizer and the starting weights (a loaded model, or a fresh one). */
static iapo_status load_model(run *r)
{
	const iapo_sft_run_opts *o = r->o;
	const int fresh = !iapo_fs_is_dir(o->model);
	if (fresh && !iapo_fs_exists(o->model))
		return iapo_fail(IAPO_ERR_IO, "%s: --model: expected a model directory or a config.json file, found nothing",
				 o->model);
	if (o->tokenizer)
		snprintf(r->tokdir, sizeof r->tokdir, "%s", o->tokenizer);
	else if (fresh)
		dir_of(o->model, r->tokdir, sizeof r->tokdir);
	else
		snprintf(r->tokdir, sizeof r->tokdir, "%s", o->model);
	char p[PATHN];
	IAPO_TRY(iapo_fs_join(p, sizeof p, r->tokdir, "tokenizer.json"));
	if (!iapo_fs_exists(p))
		return iapo_fail(IAPO_ERR_FORMAT,
				 "%s: expected a tokenizer (tokenizer.json) %s, found none: give --tokenizer DIR "
				 "(e.g. from 'iapo data tokenizer')",
				 r->tokdir, fresh ? "beside the config.json of a fresh model" : "in the model directory");
	IAPO_TRY(iapo_tokenizer_load(r->tokdir, &r->tok));
	if (fresh) {
		iapo_config cfg;
		IAPO_TRY(iapo_config_load(o->model, &cfg));
		if (cfg.n_eos == 0) cfg.n_eos = iapo_tokenizer_eos_ids(r->tok, cfg.eos_ids, IAPO_MAX_EOS);
		double std = o->init_std >= 0 ? o->init_std : iapo_config_init_std(o->model);
		IAPO_TRY(iapo_weights_init_random(&r->w, &cfg, (uint64_t)o->seed, (float)std));
	} else {
		IAPO_TRY(iapo_weights_load(o->model, &r->w));
	}
	int tv = iapo_tokenizer_vocab_size(r->tok);
	if (r->w.cfg.V < tv)
		return iapo_fail(IAPO_ERR_FORMAT, "%s: vocab_size: expected at least %d (the vocabulary of %s), found %d",
				 o->model, tv, r->tokdir, r->w.cfg.V);
	return IAPO_OK;
}

static iapo_status load_data(run *r)
{
	const iapo_sft_run_opts *o = r->o;
	data_ctx c = {o, r->tok, -1};
	IAPO_TRY(end_of_turn(r->tok, &r->w.cfg, o->no_chat_template, r->tokdir, &c.eot));
	/* A trained model stops where its completions did: the end-of-turn
	 * token is among the saved model's EOS ids. */
	add_eos(&r->w.cfg, c.eot);
	IAPO_TRY(load_split(&c, o->data, (size_t)o->max_rows, 1, &r->train));
	if (o->eval_data) {
		IAPO_TRY(load_split(&c, o->eval_data, 0, 0, &r->eval));
		r->has_eval = 1;
	}
	return IAPO_OK;
}

static iapo_status layout(run *r)
{
	const iapo_sft_run_opts *o = r->o;
	r->step_n = o->batch_size * o->grad_accum * r->ranks;
	r->spe = (long)((r->train.n + (size_t)r->step_n - 1) / (size_t)r->step_n);
	r->total = o->max_steps > 0 ? o->max_steps : (long)ceil(o->epochs * (double)r->spe - 1e-9);
	if (r->total < 1) r->total = 1;
	r->warmup = o->warmup_steps > 0 ? o->warmup_steps : (long)ceil(o->warmup_ratio * (double)r->total);
	IAPO_TRY(iapo_lr_schedule_parse(o->lr_scheduler_type, &r->sched));
	int longest = r->train.longest > r->eval.longest ? r->train.longest : r->eval.longest;
	iapo_sft_opts so = {.adam = {.beta1 = (float)o->adam_beta1,
				     .beta2 = (float)o->adam_beta2,
				     .eps = (float)o->adam_epsilon,
				     .weight_decay = (float)o->weight_decay},
			    .max_grad_norm = o->max_grad_norm,
			    .micro_batch = (int)o->batch_size,
			    .max_len = longest > 2 ? longest : 2};
	IAPO_TRY(iapo_sft_new(&r->w, &so, &r->sft));
	size_t k = (size_t)r->step_n;
	r->perm = iapo_malloc(r->train.n * sizeof *r->perm);
	r->ptr = iapo_malloc(k * sizeof *r->ptr);
	r->lens = iapo_malloc(k * sizeof *r->lens);
	r->nps = iapo_malloc(k * sizeof *r->nps);
	if (!r->perm || !r->ptr || !r->lens || !r->nps) return iapo_fail(IAPO_ERR_NOMEM, "sft: out of memory");
	r->perm_epoch = -1;
	return IAPO_OK;
}

/* ---- run directory: metrics, checkpoints, resume ---------------------------- */

static cJSON *state_json(const run *r)
{
	cJSON *s = cJSON_CreateObject();
	if (!s) return NULL;
	int oom = 0;
	long *t;
	iapo_sft_state(r->sft, NULL, NULL, &t);
	iapo_json_add(s, "global_step", cJSON_CreateNumber((double)r->step), &oom);
	iapo_json_add(s, "epoch", iapo_json_double((double)r->step / (double)r->spe), &oom);
	iapo_json_add(s, "max_steps", cJSON_CreateNumber((double)r->total), &oom);
	iapo_json_add(s, "num_train_epochs", iapo_json_double(r->o->epochs), &oom);
	iapo_json_add(s, "steps_per_epoch", cJSON_CreateNumber((double)r->spe), &oom);
	iapo_json_add(s, "train_batch_size", cJSON_CreateNumber((double)r->step_n), &oom);
	iapo_json_add(s, "train_examples", cJSON_CreateNumber((double)r->train.n), &oom);
	iapo_json_add(s, "logging_steps", cJSON_CreateNumber((double)r->o->logging_steps), &oom);
	iapo_json_add(s, "save_steps", cJSON_CreateNumber((double)r->o->save_steps), &oom);
	iapo_json_add(s, "seed", cJSON_CreateNumber((double)r->o->seed), &oom);
	iapo_json_add(s, "adam_step", cJSON_CreateNumber((double)*t), &oom);
	iapo_json_add(s, "bad_steps_in_a_row", cJSON_CreateNumber(r->bad_streak), &oom);
	/* The metrics line in progress: a resumed run logs the same mean. */
	iapo_json_add(s, "logging_loss_sum", iapo_json_double(r->acc_loss), &oom);
	iapo_json_add(s, "logging_steps_done", cJSON_CreateNumber((double)r->acc_steps), &oom);
	iapo_json_add(s, "logging_skipped", cJSON_CreateNumber((double)r->acc_skipped), &oom);
	iapo_json_add(s, "logging_tokens", iapo_json_double(r->acc_tokens), &oom);
	iapo_json_add(s, "iapo_version", cJSON_CreateString(IAPO_VERSION), &oom);
	iapo_json_add(s, "log_history", cJSON_Duplicate(r->log_history, 1), &oom);
	return iapo_json_built(s, oom);
}

static cJSON *rng_json(const run *r)
{
	int oom;
	cJSON *s = iapo_run_dir_rng_json(r->o->seed, "epoch e: Fisher-Yates over the training rows from key (seed, \"sftd\", e)", &oom);
	if (!s) return NULL;
	iapo_json_add(s, "next_step", cJSON_CreateNumber((double)r->step), &oom);
	return iapo_json_built(s, oom);
}

/* Rank 0: checkpoint-<step> assembled in a temporary directory and renamed in. */
static iapo_status save_files(run *r)
{
	float *m, *v;
	long *t;
	iapo_sft_state(r->sft, &m, &v, &t);
	iapo_run_checkpoint c = {.w = &r->w, .tokdir = r->tokdir, .m = m, .v = v, .n = iapo_param_count(&r->w.cfg), .t = *t};
	return iapo_run_dir_save_checkpoint(r->o->out, r->step, &c, rng_json(r), state_json(r));
}

/* Collective: rank 0 writes, every rank learns the outcome. */
static iapo_status save(run *r)
{
	iapo_status st = r->rank == 0 ? save_files(r) : IAPO_OK;
	IAPO_TRY(iapo_dist_agree(st));
	r->saved_step = r->step;
	return iapo_checkpoint_dir(r->o->out, r->step, r->last_ckpt, sizeof r->last_ckpt);
}

/* Rank 0: weights, optimizer and counters of checkpoint `step`. */
static iapo_status resume_from(run *r, long step)
{
	char dir[PATHN], p[PATHN];
	IAPO_TRY(iapo_checkpoint_dir(r->o->out, step, dir, sizeof dir));
	cJSON *state = NULL;
	iapo_weights w;
	memset(&w, 0, sizeof w);
	iapo_status st;
	long v, adam_t;
	IAPO_CHECK(st, iapo_run_dir_load_state(r->o->out, step, p, sizeof p, &state));
	IAPO_CHECK(st, iapo_run_dir_state_long(state, "seed", p, &v));
	if (v != r->o->seed) {
		st = iapo_fail(IAPO_ERR_ARG, "%s: seed: the run used %ld, the options give %ld", p, v, r->o->seed);
		goto fail;
	}
	IAPO_CHECK(st, iapo_run_dir_state_long(state, "train_batch_size", p, &v));
	if (v != r->step_n) {
		st = iapo_fail(IAPO_ERR_ARG, "%s: train_batch_size: the run used %ld examples per step, the options give %ld", p,
			       v, r->step_n);
		goto fail;
	}
	IAPO_CHECK(st, iapo_run_dir_state_long(state, "train_examples", p, &v));
	if (v != (long)r->train.n) {
		st = iapo_fail(IAPO_ERR_ARG, "%s: train_examples: the run used %ld rows, --data gives %zu (was it changed?)", p,
			       v, r->train.n);
		goto fail;
	}
	IAPO_CHECK(st, iapo_run_dir_state_long(state, "adam_step", p, &adam_t));
	IAPO_CHECK(st, iapo_run_dir_state_long(state, "bad_steps_in_a_row", p, &v));
	r->bad_streak = (int)v;
	IAPO_CHECK(st, iapo_run_dir_state_long(state, "logging_steps_done", p, &r->acc_steps));
	IAPO_CHECK(st, iapo_run_dir_state_long(state, "logging_skipped", p, &r->acc_skipped));
	IAPO_CHECK(st, iapo_json_req_num(state, "logging_loss_sum", p, &r->acc_loss));
	IAPO_CHECK(st, iapo_json_req_num(state, "logging_tokens", p, &r->acc_tokens));
	cJSON *hist = cJSON_DetachItemFromObjectCaseSensitive(state, "log_history");
	if (!cJSON_IsArray(hist)) {
		cJSON_Delete(hist);
		st = iapo_fail(IAPO_ERR_FORMAT, "%s: log_history: expected an array, found %s", p,
			       hist ? iapo_json_type_name(hist) : "nothing");
		goto fail;
	}
	cJSON_Delete(r->log_history);
	r->log_history = hist;

	IAPO_CHECK(st, iapo_weights_load(dir, &w));
	if (iapo_param_count(&w.cfg) != iapo_param_count(&r->w.cfg)) {
		st = iapo_fail(IAPO_ERR_FORMAT, "%s: expected the architecture of %s (the run's model), found another", dir,
			       r->o->model);
		goto fail;
	}
	memcpy(r->w.block, w.block, iapo_param_count(&w.cfg) * sizeof(float));
	float *m, *vv;
	long *t;
	iapo_sft_state(r->sft, &m, &vv, &t);
	long ft;
	IAPO_CHECK(st, iapo_fs_join(p, sizeof p, dir, IAPO_OPTIMIZER_FILE));
	IAPO_CHECK(st, iapo_optimizer_load(p, m, vv, iapo_param_count(&r->w.cfg), &ft));
	if (ft != adam_t) {
		st = iapo_fail(IAPO_ERR_FORMAT, "%s: step: expected %ld (trainer_state.json's adam_step), found %ld", p, adam_t,
			       ft);
		goto fail;
	}
	*t = adam_t;
	r->step = step;
	r->saved_step = step;
	snprintf(r->last_ckpt, sizeof r->last_ckpt, "%s", dir);
	IAPO_CHECK(st, iapo_run_dir_truncate_metrics(r->o->out, step));
fail:
	iapo_weights_free(&w);
	cJSON_Delete(state);
	return st;
}

/* Collective: every rank starts from rank 0's weights, moments and counters. */
static iapo_status dist_start(run *r, long ckpt)
{
	if (r->ranks == 1) return IAPO_OK;
	long *t;
	float *m, *v;
	iapo_sft_state(r->sft, &m, &v, &t);
	double c[7] = {(double)*t, (double)r->bad_streak, (double)r->step, (double)r->saved_step, r->acc_loss,
		       (double)r->acc_steps, r->acc_tokens};
	IAPO_TRY(iapo_dist_bcast(c, sizeof c, 0));
	*t = (long)c[0];
	r->bad_streak = (int)c[1];
	r->step = (long)c[2];
	r->saved_step = (long)c[3];
	r->acc_loss = c[4];
	r->acc_steps = (long)c[5];
	r->acc_tokens = c[6];
	size_t n = iapo_param_count(&r->w.cfg);
	IAPO_TRY(iapo_dist_bcast(r->w.block, n * sizeof(float), 0));
	if (ckpt >= 0) {
		IAPO_TRY(iapo_dist_bcast(m, n * sizeof(float), 0));
		IAPO_TRY(iapo_dist_bcast(v, n * sizeof(float), 0));
	}
	return IAPO_OK;
}

static iapo_status open_outputs(run *r)
{
	cJSON *cfg = iapo_optable_to_json(&TABLE, r->o);
	if (!cfg) return iapo_fail(IAPO_ERR_NOMEM, "config.json: out of memory");
	iapo_status st = iapo_run_dir_open_outputs(r->o->out, cfg, &r->metrics);
	cJSON_Delete(cfg);
	return st;
}

static iapo_status log_line(run *r, const iapo_sft_progress *pg, double lr, double grad_norm, double secs, double tps)
{
	cJSON *o = cJSON_CreateObject();
	int oom = !o;
	if (o) {
		iapo_json_add(o, "step", cJSON_CreateNumber((double)pg->step), &oom);
		iapo_json_add(o, "epoch", iapo_json_double(pg->epoch), &oom);
		iapo_json_add(o, "loss", iapo_json_double(pg->logged_loss), &oom);
		iapo_json_add(o, "learning_rate", iapo_json_float((float)lr), &oom);
		iapo_json_add(o, "grad_norm", iapo_json_double(grad_norm), &oom);
		iapo_json_add(o, "tokens", iapo_json_double(r->acc_tokens), &oom);
		iapo_json_add(o, "skipped", cJSON_CreateNumber((double)r->acc_skipped), &oom);
		if (pg->has_eval) iapo_json_add(o, "eval_loss", iapo_json_double(pg->eval_loss), &oom);
		iapo_json_add(o, "tokens_per_second", iapo_json_double(tps), &oom);
		iapo_json_add(o, "seconds_total", iapo_json_double(secs), &oom);
	}
	return iapo_run_dir_log(r->metrics, r->o->out, r->log_history, iapo_json_built(o, oom));
}

/* Collective: the mean completion cross-entropy of --eval-data; each rank
 * takes a contiguous share of every batch of step_n examples. */
static iapo_status eval_loss(run *r, double *loss)
{
	double sum = 0, ntok = 0;
	const size_t n = r->eval.n, chunk = (size_t)r->step_n;
	for (size_t i0 = 0; i0 < n; i0 += chunk) {
		size_t c = n - i0 < chunk ? n - i0 : chunk;
		size_t a = i0 + c * (size_t)r->rank / (size_t)r->ranks, b = i0 + c * (size_t)(r->rank + 1) / (size_t)r->ranks;
		int k = 0;
		for (size_t i = a; i < b; i++, k++) {
			r->ptr[k] = r->eval.pool + r->eval.off[i];
			r->lens[k] = r->eval.len[i];
			r->nps[k] = r->eval.n_prompt[i];
		}
		IAPO_TRY(iapo_sft_eval(r->sft, r->ptr, r->lens, r->nps, k, &sum, &ntok));
	}
	*loss = ntok > 0 ? sum / ntok : NAN;
	return IAPO_OK;
}

/* Training rows of step s: slice s % spe of epoch s / spe's permutation. */
static const size_t *step_rows(run *r, long s, size_t *count)
{
	long e = s / r->spe;
	if (e != r->perm_epoch) {
		size_t n = r->train.n;
		for (size_t i = 0; i < n; i++) r->perm[i] = i;
		iapo_rng g;
		iapo_rng_seed(&g, (uint64_t)r->o->seed, KEY_SFT_DATA, (uint64_t)e, 0);
		for (size_t i = n - 1; i > 0; i--) {
			size_t j = (size_t)iapo_rng_below(&g, i + 1), t = r->perm[i];
			r->perm[i] = r->perm[j];
			r->perm[j] = t;
		}
		r->perm_epoch = e;
	}
	size_t first = (size_t)(s % r->spe) * (size_t)r->step_n;
	*count = r->train.n - first < (size_t)r->step_n ? r->train.n - first : (size_t)r->step_n;
	return r->perm + first;
}

static void run_free(run *r)
{
	if (r->metrics) fclose(r->metrics);
	cJSON_Delete(r->log_history);
	iapo_sft_free(r->sft);
	iapo_weights_free(&r->w);
	iapo_tokenizer_free(r->tok);
	iapo_sft_examples_free(&r->train);
	iapo_sft_examples_free(&r->eval);
	iapo_free(r->perm);
	iapo_free((void *)r->ptr);
	iapo_free(r->lens);
	iapo_free(r->nps);
}

static iapo_status loop(run *r, iapo_sft_run_result *res)
{
	const iapo_sft_run_opts *o = r->o;
	const double t_start = iapo_now();
	double step_secs = 0, fwd_tokens = 0;
	const long first = r->step;
	res->first_step = first;
	while (r->step < r->total) {
		size_t cnt;
		const size_t *rows = step_rows(r, r->step, &cnt);
		size_t a = cnt * (size_t)r->rank / (size_t)r->ranks, b = cnt * (size_t)(r->rank + 1) / (size_t)r->ranks;
		int k = 0;
		double my_tokens = 0;
		for (size_t i = a; i < b; i++, k++) {
			size_t row = rows[i];
			r->ptr[k] = r->train.pool + r->train.off[row];
			r->lens[k] = r->train.len[row];
			r->nps[k] = r->train.n_prompt[row];
			my_tokens += r->lens[k];
		}
		float lr = iapo_lr_at(r->sched, (float)o->learning_rate, r->step, r->warmup, r->total);
		iapo_sft_stats ss;
		double t0 = iapo_now();
		IAPO_TRY(iapo_sft_step(r->sft, r->ptr, r->lens, r->nps, k, lr, &ss));
		step_secs += iapo_now() - t0;
		IAPO_TRY(iapo_dist_allreduce_double(&my_tokens, 1, IAPO_DIST_SUM));
		fwd_tokens += my_tokens;
		r->step++;
		r->bad_streak = ss.skipped ? r->bad_streak + 1 : 0;
		if (!ss.skipped) r->acc_loss += ss.loss;
		r->acc_steps += !ss.skipped;
		r->acc_skipped += ss.skipped;
		r->acc_tokens += ss.tokens;
		if (r->step == first + 1) res->loss_first = ss.loss;
		res->loss_last = ss.loss;

		iapo_sft_progress pg;
		memset(&pg, 0, sizeof pg);
		pg.step = r->step;
		pg.total = r->total;
		pg.first_step = first;
		pg.epoch = (double)r->step / (double)r->spe;
		pg.loss = ss.loss;
		pg.grad_norm = ss.grad_norm;
		pg.lr = lr;
		pg.tokens = ss.tokens;
		pg.skipped = ss.skipped;
		pg.seconds = iapo_now() - t_start;
		pg.tokens_per_s = step_secs > 0 ? fwd_tokens / step_secs : 0;
		const int last = r->step == r->total;
		if (r->has_eval && (last || (o->eval_steps > 0 && r->step % o->eval_steps == 0))) {
			IAPO_TRY(eval_loss(r, &pg.eval_loss));
			pg.has_eval = 1;
			res->eval_loss = pg.eval_loss;
		}
		if (last || pg.has_eval || r->step % o->logging_steps == 0) {
			pg.logged = 1;
			pg.logged_loss = r->acc_steps > 0 ? r->acc_loss / (double)r->acc_steps : NAN;
			iapo_status st = r->rank == 0 ? log_line(r, &pg, lr, ss.grad_norm, pg.seconds, pg.tokens_per_s) : IAPO_OK;
			IAPO_TRY(iapo_dist_agree(st));
			r->acc_loss = 0, r->acc_steps = 0, r->acc_skipped = 0, r->acc_tokens = 0;
		}
		if (ss.skipped && r->bad_streak >= o->max_bad_steps)
			return iapo_fail(IAPO_ERR_NUMERIC,
					 "step %ld: the loss or gradient was NaN/Inf in %d steps in a row (--max-bad-steps %ld); "
					 "try a lower --learning-rate",
					 r->step, r->bad_streak, o->max_bad_steps);
		if (last || (o->save_steps > 0 && r->step % o->save_steps == 0)) {
			IAPO_TRY(save(r));
			pg.checkpoint = r->last_ckpt;
		}
		pg.seconds = iapo_now() - t_start;
		if (o->progress && r->rank == 0) o->progress(o->progress_ctx, &pg);
		double any = o->stop && *o->stop;
		IAPO_TRY(iapo_dist_allreduce_double(&any, 1, IAPO_DIST_MAX));
		if (any != 0) {
			if (r->saved_step != r->step) IAPO_TRY(save(r));
			break;
		}
	}
	res->seconds = iapo_now() - t_start;
	res->tokens_per_s = step_secs > 0 ? fwd_tokens / step_secs : 0;
	return IAPO_OK;
}

iapo_status iapo_sft_run(const iapo_sft_run_opts *o, iapo_sft_run_result *res_out)
{
	iapo_sft_run_result res;
	memset(&res, 0, sizeof res);
	res.eval_loss = NAN;
	res.loss_first = res.loss_last = NAN;
	if (res_out) *res_out = res;
	iapo_status st = iapo_dist_agree(check_opts(o));
	IAPO_TRY(st);
	if (o->threads > 0) iapo_set_threads((int)o->threads);
	run r;
	memset(&r, 0, sizeof r);
	r.o = o;
	r.rank = iapo_dist_rank();
	r.ranks = iapo_dist_size();
	r.saved_step = -1;
	long ckpt = -1;
	st = r.rank == 0 ? iapo_run_dir_prepare(o->out, o->resume, o->overwrite, IAPO_STATE_FILE, &ckpt) : IAPO_OK;
	IAPO_CHECK(st, iapo_dist_agree(st));
	IAPO_CHECK(st, iapo_dist_bcast(&ckpt, sizeof ckpt, 0));
	st = load_model(&r);
	if (st == IAPO_OK) st = load_data(&r);
	if (st == IAPO_OK) st = layout(&r);
	if (st == IAPO_OK && !(r.log_history = cJSON_CreateArray())) st = iapo_fail(IAPO_ERR_NOMEM, "sft: out of memory");
	if (st == IAPO_OK && ckpt >= 0 && r.rank == 0) st = resume_from(&r, ckpt);
	IAPO_CHECK(st, iapo_dist_agree(st));
	IAPO_CHECK(st, dist_start(&r, ckpt));
	st = r.rank == 0 ? open_outputs(&r) : IAPO_OK;
	IAPO_CHECK(st, iapo_dist_agree(st));
	res.examples = (long)r.train.n;
	res.eval_examples = (long)r.eval.n;
	res.truncated = r.train.truncated;
	res.total_steps = r.total;
	st = loop(&r, &res);
	IAPO_CHECK(st, iapo_dist_agree(st));
	res.steps_done = r.step;
	res.completed = r.step >= r.total;
	snprintf(res.model_dir, sizeof res.model_dir, "%s", r.last_ckpt);
	if (res_out) *res_out = res;
fail:
	run_free(&r);
	return st;
}
