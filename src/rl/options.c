/*
 * options.c — the option table of `iapo train` and everything driven by it:
 * command-line and JSON parsing, the resolved config.json, --help, and the
 * derivation of the batch layout.
 */
#include "rl/options.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "core/status.h"
#include "io/fs.h"
#include "io/json.h"
#include "rl/algo.h"

typedef enum { T_STR, T_INT, T_NUM, T_FLAG, T_ENUM } opt_type;

typedef struct {
	const char *name;
	opt_type type;
	size_t off;
	const char *dflt;  /* text form; NULL: unset (strings) */
	double lo, hi;     /* numbers */
	const char *choices; /* T_ENUM: "a|b|c" */
	const char *arg;   /* metavariable in --help */
	const char *help;
	const char *group; /* non-NULL on the first option of a --help section */
} opt_def;

#define F(field) offsetof(iapo_train_opts, field)
#define BIG 1e15

static const opt_def OPTS[] = {
	{"model", T_STR, F(model), NULL, 0, 0, NULL, "DIR", "Hugging Face model directory to start from (required); also the frozen reference", "run"},
	{"data", T_STR, F(data), NULL, 0, 0, NULL, "FILE", "training prompts, JSONL (required)", NULL},
	{"out", T_STR, F(out), NULL, 0, 0, NULL, "DIR", "run directory: config.json, metrics.jsonl, checkpoint-N/ (required)", NULL},
	{"algo", T_ENUM, F(algo), "grpo", 0, 0, "grpo|iapo|dapo|lenpen|gtpo|gfpo|sgrpo", "NAME", "algorithm (see above); it only changes the defaults of the options below", NULL},
	{"resume", T_FLAG, F(resume), "0", 0, 0, NULL, NULL, "continue from the latest checkpoint in --out (its config.json gives the defaults)", NULL},
	{"overwrite", T_FLAG, F(overwrite), "0", 0, 0, NULL, NULL, "delete the checkpoints and metrics of an earlier run in --out", NULL},
	{"seed", T_INT, F(seed), "42", 0, 9007199254740992.0, NULL, "N", "random seed: data order and every sample's stream", NULL},
	{"threads", T_INT, F(threads), "0", 0, 4096, NULL, "N", "OpenMP/BLAS threads, 0 = all cores (a run repeats exactly only with the same count)", NULL},

	{"data-format", T_ENUM, F(data_format), "auto", 0, 0, "auto|gsm8k|math|dapo|generic", "F", "row layout of --data and --eval-data", "data and prompt"},
	{"prompt-field", T_STR, F(prompt_field), NULL, 0, 0, NULL, "NAME", "field holding the problem (dotted for nested; default: the format's)", NULL},
	{"answer-field", T_STR, F(answer_field), NULL, 0, 0, NULL, "NAME", "field holding the answer (default: the format's)", NULL},
	{"max-rows", T_INT, F(max_rows), "0", 0, BIG, NULL, "N", "keep the first N rows of --data, 0 = all (the reference: 7000 DAPO rows)", NULL},
	{"dedupe", T_FLAG, F(dedupe), "0", 0, 0, NULL, NULL, "drop rows whose prompt repeats an earlier one", NULL},
	{"system", T_STR, F(system), NULL, 0, 0, NULL, "TEXT", "system prompt (default: the reference's R1 prompt + the format's task line)", NULL},
	{"no-one-shot", T_FLAG, F(no_one_shot), "0", 0, 0, NULL, NULL, "leave out the reference's one-shot \"What is 2+2?\" exchange", NULL},
	{"no-chat-template", T_FLAG, F(no_chat_template), "0", 0, 0, NULL, NULL, "tokenize the problem text as is (base models; --system and one-shot unused)", NULL},
	{"eval-data", T_STR, F(eval_data), NULL, 0, 0, NULL, "FILE", "evaluation prompts, JSONL (else a split of --data, see below)", NULL},
	{"eval-steps", T_INT, F(eval_steps), "50", 0, BIG, NULL, "N", "evaluate every N steps and at the end, 0 = never", NULL},
	{"eval-fraction", T_NUM, F(eval_fraction), "0", 0, 1, NULL, "F", "without --eval-data: hold out this fraction of --data (seeded split)", NULL},
	{"eval-count", T_INT, F(eval_count), "0", 0, BIG, NULL, "N", "without --eval-data: hold out N rows of --data (overrides --eval-fraction)", NULL},
	{"eval-generations", T_INT, F(eval_generations), "0", 0, 4096, NULL, "N", "samples per eval prompt, 0 = --num-generations (the reference: 8)", NULL},

	{"prompts-per-step", T_INT, F(prompts_per_step), "12", 1, 1 << 20, NULL, "N", "prompts per optimizer step (the reference: 12)", "batch"},
	{"num-generations", T_INT, F(num_generations), "8", 2, 4096, NULL, "G", "completions per prompt, the group size", NULL},
	{"micro-batch", T_INT, F(micro_batch), "4", 1, 1 << 20, NULL, "N", "completions per forward/backward (memory); derived when not given", NULL},
	{"grad-accum", T_INT, F(grad_accum), "24", 1, 1 << 20, NULL, "N", "micro-batches per step: micro-batch x grad-accum = prompts-per-step x G", NULL},
	{"rollout-batch", T_INT, F(rollout_batch), "0", 0, 1 << 20, NULL, "N", "completions sampled at once (KV-cache memory), 0 = the whole step", NULL},
	{"epochs", T_INT, F(epochs), "2", 1, 1 << 20, NULL, "N", "passes over --data (the reference: 2)", NULL},
	{"max-steps", T_INT, F(max_steps), "0", 0, BIG, NULL, "N", "optimizer steps; 0 = epochs x floor(rows / prompts-per-step) x iterations", NULL},
	{"max-prompt-tokens", T_INT, F(max_prompt_tokens), "512", 1, 1 << 24, NULL, "N", "longer prompts keep their last N tokens (left truncation)", NULL},
	{"max-completion-tokens", T_INT, F(max_completion_tokens), "2048", 1, 1 << 24, NULL, "N", "tokens sampled per completion at most", NULL},

	{"temperature", T_NUM, F(temperature), "1.0", 1e-6, 1e6, NULL, "F", "sampling temperature; log-probs use the same (as TRL)", "sampling"},
	{"top-p", T_NUM, F(top_p), "1.0", 1e-9, 1, NULL, "F", "nucleus sampling mass, 1 = off", NULL},
	{"top-k", T_INT, F(top_k), "0", 0, 1 << 30, NULL, "N", "keep the N most likely tokens, 0 = off", NULL},
	{"rollout-bf16", T_FLAG, F(rollout_bf16), "0", 0, 0, NULL, NULL, "sample with bf16 copies of the weights (faster decoding of large models; the loss and its log-prob ratios stay fp32; with --algo iapo implies --info-bf16). Off by default so every --algo samples alike and IAPO's estimator reuses exact fp32 K/V", NULL},

	{"learning-rate", T_NUM, F(learning_rate), "1e-6", 0, 1e3, NULL, "F", "peak learning rate", "optimizer"},
	{"warmup-steps", T_INT, F(warmup_steps), "0", 0, BIG, NULL, "N", "linear warmup steps", NULL},
	{"lr-schedule", T_ENUM, F(lr_schedule), "linear", 0, 0, "linear|cosine|constant", "S", "decay after warmup (to 0 at the last step for linear/cosine)", NULL},
	{"adam-beta1", T_NUM, F(adam_beta1), "0.9", 0, 0.999999, NULL, "F", "AdamW beta1", NULL},
	{"adam-beta2", T_NUM, F(adam_beta2), "0.99", 0, 0.999999999, NULL, "F", "AdamW beta2", NULL},
	{"adam-eps", T_NUM, F(adam_eps), "1e-8", 0, 1, NULL, "F", "AdamW epsilon", NULL},
	{"weight-decay", T_NUM, F(weight_decay), "0", 0, 1e3, NULL, "F", "decoupled weight decay", NULL},
	{"max-grad-norm", T_NUM, F(max_grad_norm), "1.0", 0, 1e30, NULL, "F", "clip the global gradient norm, 0 = off", NULL},

	{"beta", T_NUM, F(beta), "0.001", 0, 1e6, NULL, "F", "KL (k3) weight against the frozen initial model, 0 = no reference pass", "loss"},
	{"epsilon-low", T_NUM, F(epsilon_low), "0.2", 0, 1, NULL, "F", "ratio clip below 1 - eps", NULL},
	{"epsilon-high", T_NUM, F(epsilon_high), "0.2", 0, 1e6, NULL, "F", "ratio clip above 1 + eps (dapo: 0.28)", NULL},
	{"loss-type", T_ENUM, F(loss_type), "bnpo", 0, 0, "grpo|bnpo|dr_grpo", "T", "token aggregation: per-sequence mean / token mean / sum over G x max length (gfpo, sgrpo: grpo)", NULL},
	{"scale-rewards", T_ENUM, F(scale_rewards), "group", 0, 0, "group|none", "S", "divide advantages by the group's std (none: Dr. GRPO)", NULL},
	{"iterations", T_INT, F(iterations), "1", 1, 1024, NULL, "N", "optimizer passes per rollout (>1: old log-probs kept, the ratio is real)", NULL},

	{"reward-correct", T_NUM, F(reward_correct), "1.0", -1e6, 1e6, NULL, "F", "reward for a correct answer", "rewards"},
	{"reward-wrong", T_NUM, F(reward_wrong), "-1.0", -1e6, 1e6, NULL, "F", "reward for a wrong or missing answer", NULL},
	{"reward-format", T_NUM, F(reward_format), "0.5", -1e6, 1e6, NULL, "F", "reward for the <think>..</think><answer>..</answer> layout", NULL},
	{"reward-format-bad", T_NUM, F(reward_format_bad), "-0.5", -1e6, 1e6, NULL, "F", "reward when the layout is wrong", NULL},

	{"save-steps", T_INT, F(save_steps), "100", 0, BIG, NULL, "N", "checkpoint every N steps (and always at the end), 0 = only at the end", "checkpoints"},
	{"max-bad-steps", T_INT, F(max_bad_steps), "5", 1, 1 << 20, NULL, "N", "stop after N steps in a row with NaN/Inf loss or gradients (each is skipped)", NULL},
	{"check-weights-every", T_INT, F(check_weights_every), "0", 0, BIG, NULL, "N", "MPI debug: every N steps check that all ranks hold the same weights (a hash), 0 = off", NULL},

	{"postfix", T_STR, F(postfix), "</think><answer>", 0, 0, NULL, "TEXT", "appended after each cut prompt + o_<t; E_t = entropy of the token after it", "IAPO token terms (--algo iapo)"},
	{"predict", T_ENUM, F(predict), "answer", 0, 0, "answer|next_token", "M", "E_t after the postfix, or the policy's next-token entropy (the paper's ablation, no postfix pass)", NULL},
	{"answer-tokens", T_INT, F(answer_tokens), "1", 1, 64, NULL, "N", "E_t sums the entropies of the first N answer tokens (greedy, teacher-forced; 1 = the paper)", NULL},
	{"info-chunk", T_INT, F(info_chunk), "0", 0, 1 << 20, NULL, "N", "positions per batched estimator pass, 0 = automatic (256 MiB budget)", NULL},
	{"info-stride", T_INT, F(info_stride), "1", 1, 1 << 20, NULL, "N", "APPROXIMATION: estimate E at every N-th position only, linear in between (C stays exact)", NULL},
	{"info-at", T_ENUM, F(info_at), "all", 0, 0, "all|newline", "W", "APPROXIMATION newline: estimate E only after tokens holding a newline (one estimate per line)", NULL},
	{"info-bf16", T_FLAG, F(info_bf16), "0", 0, 0, NULL, NULL, "APPROXIMATION: the estimator multiplies by bf16 copies of the weights (training stays fp32; see bench/README.md for how far it moves the advantages)", NULL},
	{"info-recompute", T_FLAG, F(info_recompute), "0", 0, 0, NULL, NULL, "recompute the prompt+completion K/V and policy entropies for the estimator instead of taking the rollout's (equal within float rounding; for checking)", NULL},
	{"gain", T_ENUM, F(gain), "plain", 0, 0, "plain|reference", "G", "S_t = E_t - E_t+1, or the authors' (E_t + E_t-1)/2 - E_t+1", NULL},
	{"norm", T_ENUM, F(norm), "zscore", 0, 0, "zscore|reference", "N", "per completion: z-score over its tokens then unit L2 norm, or the authors' x - mean/std over the padded width", NULL},
	{"horizon", T_INT, F(horizon), "1", 1, 1 << 20, NULL, "H", "S'_t = sum over k < H of decay^k S_t+k (1 = none)", NULL},
	{"decay", T_NUM, F(decay), "0.5", 0, 1e3, NULL, "F", "decay of the horizon sum", NULL},
	{"w-info", T_NUM, F(w_info), "1.0", 0, 1e6, NULL, "F", "w_s, weight of the normalised information gain. 1 is the paper's GSM8K pair, but a normalised entry is ~1/sqrt(length): on completions of a few tokens 1 outweighs the group advantage (0.3 learns there); the authors' CLI default 1e-6 is effectively 0", NULL},
	{"w-conf", T_NUM, F(w_conf), "1.0", 0, 1e6, NULL, "F", "w_c, weight of the normalised policy entropy, signed by the reward (same scale caveat)", NULL},

	{"dynamic-sampling", T_ENUM, F(dynamic_sampling), "off", 0, 0, "off|drop|resample", "M", "groups whose rewards are all equal: drop them from the loss and its normalisers, or resample them with fresh streams (dropped if still equal) (dapo: resample)", "DAPO and reward shaping (any --algo)"},
	{"dynamic-max-tries", T_INT, F(dynamic_max_tries), "3", 0, 1000, NULL, "N", "resampling rounds per rollout for --dynamic-sampling resample", NULL},
	{"overlong-buffer", T_INT, F(overlong_buffer), "0", 0, 1 << 24, NULL, "N", "DAPO overlong shaping: the last N tokens before --max-completion-tokens cost up to --overlong-penalty, linearly; 0 = off (dapo: max-completion-tokens / 5)", NULL},
	{"overlong-penalty", T_NUM, F(overlong_penalty), "1.0", 0, 1e6, NULL, "F", "reward taken off at --max-completion-tokens", NULL},
	{"lenpen-weight", T_NUM, F(lenpen_weight), "0", 0, 1e6, NULL, "F", "Kimi k1.5 length reward x F added to the reward (per group: 0.5 - (len - min)/(max - min), wrong answers get only its negative part); 0 = off (lenpen: 1)", NULL},

	{"gtpo-coef", T_NUM, F(gtpo_coef), "0.1", 0, 1e6, NULL, "F", "GTPO: coefficient of the entropy-weighted token bonus (the authors' 0.1)", "GTPO, GFPO, S-GRPO (--algo gtpo | gfpo | sgrpo)"},
	{"gtpo-scale", T_ENUM, F(gtpo_scale), "length", 0, 0, "length|active", "S", "GTPO: bonus x the completion's length (the authors' code) or x the group members still generating at t (the paper's d_t)", NULL},
	{"gfpo-sample", T_INT, F(gfpo_sample), "8", 2, 4096, NULL, "N", "GFPO: completions sampled per prompt (G')", NULL},
	{"gfpo-keep", T_INT, F(gfpo_keep), "6", 2, 4096, NULL, "K", "GFPO: completions kept per prompt, the training group (sets --num-generations)", NULL},
	{"gfpo-metric", T_ENUM, F(gfpo_metric), "length", 0, 0, "length|reward_per_token", "M", "GFPO: keep the shortest, or the most reward per token", NULL},
	{"sgrpo-alpha", T_INT, F(sgrpo_alpha), "150", 0, 1 << 24, NULL, "N", "S-GRPO: the first N completion tokens always count in the loss", NULL},
	{"sgrpo-k", T_INT, F(sgrpo_k), "341", 0, 1 << 24, NULL, "N", "S-GRPO: completions shorter than N also count later tokens at random; longer ones only the first alpha", NULL},
	{"sgrpo-token-prob", T_NUM, F(sgrpo_token_prob), "0.5", 0, 1, NULL, "F", "S-GRPO: probability that a token after alpha counts", NULL},
};
#define NOPTS (sizeof OPTS / sizeof *OPTS)

_Static_assert(sizeof OPTS / sizeof *OPTS <= sizeof(((iapo_train_opts *)0)->given), "given[] too small");

static int find_opt(const char *name)
{
	char norm[64];
	size_t n = strlen(name);
	if (n >= sizeof norm) return -1;
	for (size_t i = 0; i <= n; i++) norm[i] = name[i] == '_' ? '-' : name[i];
	for (size_t i = 0; i < NOPTS; i++)
		if (!strcmp(OPTS[i].name, norm)) return (int)i;
	return -1;
}

static int choice_ok(const char *choices, const char *v)
{
	size_t n = strlen(v);
	for (const char *p = choices; *p;) {
		const char *e = strchr(p, '|');
		size_t k = e ? (size_t)(e - p) : strlen(p);
		if (k == n && !strncmp(p, v, n)) return 1;
		if (!e) break;
		p = e + 1;
	}
	return 0;
}

static char *choices_text(const char *choices, char *buf, size_t n)
{
	/* "a|b|c" -> "a, b or c" */
	size_t k = 0;
	int total = 1;
	for (const char *p = choices; *p; p++) total += *p == '|';
	int seen = 0;
	for (const char *p = choices; *p && k + 8 < n; p++) {
		if (*p == '|') {
			seen++;
			const char *sep = seen == total - 1 ? " or " : ", ";
			size_t l = strlen(sep);
			if (k + l + 1 >= n) break;
			memcpy(buf + k, sep, l);
			k += l;
		} else {
			buf[k++] = *p;
		}
	}
	buf[k] = 0;
	return buf;
}

/* where: "--name" or "FILE: key 'name'" */
static iapo_status set_text(iapo_train_opts *o, int i, const char *v, const char *where)
{
	const opt_def *d = &OPTS[i];
	void *field = (char *)o + d->off;
	switch (d->type) {
	case T_STR:
	case T_ENUM: {
		if (!v) return iapo_fail(IAPO_ERR_ARG, "%s: expected a value", where);
		if (d->type == T_ENUM && !choice_ok(d->choices, v)) {
			char buf[128];
			return iapo_fail(IAPO_ERR_ARG, "%s: expected %s, found '%s'", where,
					 choices_text(d->choices, buf, sizeof buf), v);
		}
		char *s = iapo_strdup(v);
		if (!s) return iapo_fail(IAPO_ERR_NOMEM, "%s: out of memory", where);
		iapo_free(*(char **)field);
		*(char **)field = s;
		break;
	}
	case T_FLAG: {
		int b;
		if (!v || !strcmp(v, "1") || !strcmp(v, "true"))
			b = 1;
		else if (!strcmp(v, "0") || !strcmp(v, "false"))
			b = 0;
		else
			return iapo_fail(IAPO_ERR_ARG, "%s: expected true or false, found '%s'", where, v);
		*(int *)field = b;
		break;
	}
	case T_INT: {
		if (!v) return iapo_fail(IAPO_ERR_ARG, "%s: expected a value", where);
		char *end;
		errno = 0;
		long long x = strtoll(v, &end, 10);
		if (errno || end == v || *end || (double)x < d->lo || (double)x > d->hi)
			return iapo_fail(IAPO_ERR_ARG, "%s: expected an integer in [%.0f, %.0f], found '%s'", where, d->lo,
					 d->hi, v);
		*(long *)field = (long)x;
		break;
	}
	case T_NUM: {
		if (!v) return iapo_fail(IAPO_ERR_ARG, "%s: expected a value", where);
		char *end;
		errno = 0;
		double x = strtod(v, &end);
		if (errno || end == v || *end || !isfinite(x) || x < d->lo || x > d->hi)
			return iapo_fail(IAPO_ERR_ARG, "%s: expected a number in [%g, %g], found '%s'", where, d->lo, d->hi,
					 v);
		*(double *)field = x;
		break;
	}
	}
	o->given[i] = 1;
	return IAPO_OK;
}

iapo_status iapo_train_opts_default(iapo_train_opts *o)
{
	memset(o, 0, sizeof *o);
	for (size_t i = 0; i < NOPTS; i++) {
		if (!OPTS[i].dflt) continue;
		iapo_status st = set_text(o, (int)i, OPTS[i].dflt, OPTS[i].name);
		if (st != IAPO_OK) {
			iapo_train_opts_free(o);
			return st;
		}
		o->given[i] = 0;
	}
	return IAPO_OK;
}

void iapo_train_opts_free(iapo_train_opts *o)
{
	if (!o) return;
	for (size_t i = 0; i < NOPTS; i++) {
		if (OPTS[i].type != T_STR && OPTS[i].type != T_ENUM) continue;
		char **f = (char **)((char *)o + OPTS[i].off);
		iapo_free(*f);
		*f = NULL;
	}
}

iapo_status iapo_train_opts_copy(iapo_train_opts *dst, const iapo_train_opts *src)
{
	*dst = *src;
	for (size_t i = 0; i < NOPTS; i++) {
		if (OPTS[i].type != T_STR && OPTS[i].type != T_ENUM) continue;
		char **f = (char **)((char *)dst + OPTS[i].off);
		if (*f && !(*f = iapo_strdup(*f))) {
			for (size_t j = i + 1; j < NOPTS; j++)
				if (OPTS[j].type == T_STR || OPTS[j].type == T_ENUM) *(char **)((char *)dst + OPTS[j].off) = NULL;
			iapo_train_opts_free(dst);
			return iapo_fail(IAPO_ERR_NOMEM, "options: out of memory");
		}
	}
	return IAPO_OK;
}

iapo_status iapo_train_opts_set(iapo_train_opts *o, const char *name, const char *value)
{
	int i = find_opt(name);
	char where[96];
	snprintf(where, sizeof where, "--%s", name);
	if (i < 0) return iapo_fail(IAPO_ERR_ARG, "unknown option '--%s'", name);
	return set_text(o, i, value, where);
}

int iapo_train_opts_is_flag(const char *name)
{
	int i = find_opt(name);
	return i < 0 ? -1 : OPTS[i].type == T_FLAG;
}

/* A number node, or a raw one holding a number (what to_json writes). */
static int raw_number(const cJSON *m, double *x)
{
	if (cJSON_IsNumber(m)) {
		*x = m->valuedouble;
		return 1;
	}
	if (!cJSON_IsRaw(m) || !m->valuestring) return 0;
	char *end;
	*x = strtod(m->valuestring, &end);
	return end != m->valuestring && !*end && isfinite(*x);
}

static iapo_status apply_json(iapo_train_opts *o, const cJSON *obj, const char *file)
{
	if (!cJSON_IsObject(obj))
		return iapo_fail(IAPO_ERR_ARG, "%s: expected a JSON object of options, found %s", file,
				 iapo_json_type_name(obj));
	IAPO_TRY(iapo_json_unique_keys(obj, file) == IAPO_OK ? IAPO_OK : IAPO_ERR_ARG);
	for (const cJSON *m = obj->child; m; m = m->next) {
		int i = find_opt(m->string ? m->string : "");
		char where[512];
		snprintf(where, sizeof where, "%s: key '%s'", file, m->string ? m->string : "");
		if (i < 0) return iapo_fail(IAPO_ERR_ARG, "%s: unknown option (see 'iapo train --help')", where);
		const opt_def *d = &OPTS[i];
		char buf[64];
		const char *text;
		if (cJSON_IsNull(m)) {
			if (d->type != T_STR) return iapo_fail(IAPO_ERR_ARG, "%s: expected a value, found null", where);
			char **f = (char **)((char *)o + d->off);
			iapo_free(*f);
			*f = NULL;
			o->given[i] = 1;
			continue;
		}
		switch (d->type) {
		case T_STR:
		case T_ENUM:
			if (!cJSON_IsString(m))
				return iapo_fail(IAPO_ERR_ARG, "%s: expected a string, found %s", where, iapo_json_type_name(m));
			text = m->valuestring;
			break;
		case T_FLAG:
			if (!cJSON_IsBool(m))
				return iapo_fail(IAPO_ERR_ARG, "%s: expected true or false, found %s", where,
						 iapo_json_type_name(m));
			text = cJSON_IsTrue(m) ? "1" : "0";
			break;
		case T_INT:
		default: {
			double x;
			if (!raw_number(m, &x))
				return iapo_fail(IAPO_ERR_ARG, "%s: expected %s, found %s", where,
						 d->type == T_INT ? "an integer" : "a number", iapo_json_type_name(m));
			if (d->type == T_INT && (x != floor(x) || fabs(x) > 9.1e15))
				return iapo_fail(IAPO_ERR_ARG, "%s: expected an integer, found %g", where, x);
			snprintf(buf, sizeof buf, d->type == T_INT ? "%.0f" : "%.17g", x);
			text = buf;
			break;
		}
		}
		IAPO_TRY(set_text(o, i, text, where));
	}
	return IAPO_OK;
}

/* All or nothing: applied to a copy that replaces *o only on success. */
iapo_status iapo_train_opts_apply_json(iapo_train_opts *o, const cJSON *obj, const char *file)
{
	iapo_train_opts c;
	IAPO_TRY(iapo_train_opts_copy(&c, o));
	iapo_status st = apply_json(&c, obj, file);
	if (st != IAPO_OK) {
		iapo_train_opts_free(&c);
		return st;
	}
	iapo_train_opts_free(o);
	*o = c;
	return IAPO_OK;
}

iapo_status iapo_train_opts_load(iapo_train_opts *o, const char *path)
{
	cJSON *root;
	IAPO_TRY(iapo_json_load(path, (size_t)16 << 20, &root));
	iapo_status st = iapo_train_opts_apply_json(o, root, path);
	cJSON_Delete(root);
	return st;
}

iapo_status iapo_train_opts_from_args(iapo_train_opts *o, int argc, char **argv, int *help)
{
	*help = 0;
	const char *config = NULL, *out = NULL;
	int resume = 0;
	/* First pass: what decides the base (help, --config, --resume, --out),
	 * and the shape of the line (every option known, values present). */
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			*help = 1;
			return IAPO_OK;
		}
		if (strncmp(a, "--", 2) || !a[2]) return iapo_fail(IAPO_ERR_ARG, "unexpected argument '%s'", a);
		const char *name = a + 2;
		if (!strcmp(name, "config")) {
			if (i + 1 >= argc) return iapo_fail(IAPO_ERR_ARG, "option --config needs a value");
			config = argv[++i];
			continue;
		}
		int flag = iapo_train_opts_is_flag(name);
		if (flag < 0) return iapo_fail(IAPO_ERR_ARG, "unknown option '%s'", a);
		if (!strcmp(name, "resume")) resume = 1;
		if (flag) continue;
		if (i + 1 >= argc) return iapo_fail(IAPO_ERR_ARG, "option %s needs a value", a);
		if (!strcmp(name, "out")) out = argv[i + 1];
		i++;
	}
	if (resume) {
		if (!out) return iapo_fail(IAPO_ERR_ARG, "--resume needs --out RUN_DIR (the run to continue)");
		if (!iapo_fs_is_dir(out))
			return iapo_fail(IAPO_ERR_IO, "%s: --resume: expected an existing run directory, found %s", out,
					 iapo_fs_exists(out) ? "a file" : "nothing");
		char path[4096];
		IAPO_TRY(iapo_fs_join(path, sizeof path, out, "config.json"));
		if (iapo_fs_exists(path)) IAPO_TRY(iapo_train_opts_load(o, path));
	}
	if (config) IAPO_TRY(iapo_train_opts_load(o, config));
	for (int i = 1; i < argc; i++) {
		const char *name = argv[i] + 2;
		if (!strcmp(name, "config")) {
			i++;
			continue;
		}
		if (iapo_train_opts_is_flag(name)) {
			IAPO_TRY(iapo_train_opts_set(o, name, NULL));
		} else {
			IAPO_TRY(iapo_train_opts_set(o, name, argv[i + 1]));
			i++;
		}
	}
	return IAPO_OK;
}

int iapo_train_opts_given(const iapo_train_opts *o, const char *name)
{
	int i = find_opt(name);
	return i >= 0 && o->given[i];
}

static int given(const iapo_train_opts *o, const char *name) { return iapo_train_opts_given(o, name); }

/* Largest divisor of n that is <= cap. */
static long divisor_below(long n, long cap)
{
	for (long d = cap < n ? cap : n; d > 1; d--)
		if (n % d == 0) return d;
	return 1;
}

static iapo_status resolve_batch(iapo_train_opts *o)
{
	const long G = o->num_generations;
	int gp = given(o, "prompts-per-step"), gm = given(o, "micro-batch"), ga = given(o, "grad-accum");
	long P = o->prompts_per_step, mb = o->micro_batch, acc = o->grad_accum;
	if (gm && ga && !gp) {
		if ((mb * acc) % G)
			return iapo_fail(IAPO_ERR_ARG,
					 "--micro-batch %ld x --grad-accum %ld = %ld completions per step: expected a multiple "
					 "of --num-generations %ld (whole groups)",
					 mb, acc, mb * acc, G);
		P = mb * acc / G;
	} else {
		long N = P * G;
		if (gm && !ga) {
			if (N % mb)
				return iapo_fail(IAPO_ERR_ARG,
						 "--micro-batch %ld: expected a divisor of prompts-per-step %ld x "
						 "num-generations %ld = %ld completions per step",
						 mb, P, G, N);
			acc = N / mb;
		} else if (ga && !gm) {
			if (N % acc)
				return iapo_fail(IAPO_ERR_ARG,
						 "--grad-accum %ld: expected a divisor of prompts-per-step %ld x "
						 "num-generations %ld = %ld completions per step",
						 acc, P, G, N);
			mb = N / acc;
		} else if (!gm && !ga) {
			mb = divisor_below(N, 4);
			acc = N / mb;
		} else if (mb * acc != N) {
			return iapo_fail(IAPO_ERR_ARG,
					 "inconsistent batch options: --micro-batch %ld x --grad-accum %ld = %ld, but "
					 "--prompts-per-step %ld x --num-generations %ld = %ld completions per step",
					 mb, acc, mb * acc, P, G, N);
		}
	}
	o->prompts_per_step = P, o->micro_batch = mb, o->grad_accum = acc;
	return IAPO_OK;
}

iapo_status iapo_train_opts_resolve(iapo_train_opts *o)
{
	if (!o->model) return iapo_fail(IAPO_ERR_ARG, "--model DIR is required");
	if (!o->data) return iapo_fail(IAPO_ERR_ARG, "--data FILE is required");
	if (!o->out) return iapo_fail(IAPO_ERR_ARG, "--out RUN_DIR is required");
	if (o->resume && o->overwrite) return iapo_fail(IAPO_ERR_ARG, "--resume and --overwrite contradict each other");
	/* --overwrite deletes --out's metrics and checkpoint-N/ before the model
	 * is loaded: refuse a model that is one of them (or --out itself, which
	 * means its latest checkpoint) */
	char rest[32];
	if (o->overwrite && iapo_fs_within(o->model, o->out, rest, sizeof rest) &&
	    (!rest[0] || !strncmp(rest, "checkpoint-", 11)))
		return iapo_fail(IAPO_ERR_ARG, "--model %s: --overwrite would delete it before loading it (it is --out %s or one of its checkpoints)",
				 o->model, o->out);
	IAPO_TRY(iapo_algo_resolve_opts(o)); /* --algo's defaults first: gfpo sets the group size */
	IAPO_TRY(resolve_batch(o));
	if (o->eval_data && (o->eval_fraction > 0 || o->eval_count > 0))
		return iapo_fail(IAPO_ERR_ARG, "--eval-fraction/--eval-count split --data; they cannot be used with --eval-data");
	if (o->epsilon_low >= 1) return iapo_fail(IAPO_ERR_ARG, "--epsilon-low: expected < 1, found %g", o->epsilon_low);
	return IAPO_OK;
}

static cJSON *number_node(double v)
{
	char buf[40];
	if (!isfinite(v)) return cJSON_CreateNull();
	/* Shortest text that reads back as the same double. */
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(buf, sizeof buf, "%.*g", prec, v);
		if (strtod(buf, NULL) == v) break;
	}
	if (!strpbrk(buf, ".eEn")) strcat(buf, ".0");
	return cJSON_CreateRaw(buf);
}

cJSON *iapo_train_opts_to_json(const iapo_train_opts *o)
{
	iapo_json_init();
	cJSON *root = cJSON_CreateObject();
	if (!root) return NULL;
	for (size_t i = 0; i < NOPTS; i++) {
		const opt_def *d = &OPTS[i];
		if (!strcmp(d->name, "resume") || !strcmp(d->name, "overwrite")) continue;
		const void *f = (const char *)o + d->off;
		cJSON *v;
		switch (d->type) {
		case T_STR:
		case T_ENUM:
			v = *(char *const *)f ? cJSON_CreateString(*(char *const *)f) : cJSON_CreateNull();
			break;
		case T_FLAG:
			v = cJSON_CreateBool(*(const int *)f);
			break;
		case T_INT:
			v = cJSON_CreateNumber((double)*(const long *)f);
			break;
		default:
			v = number_node(*(const double *)f);
			break;
		}
		if (!v || !cJSON_AddItemToObject(root, d->name, v)) {
			cJSON_Delete(v);
			cJSON_Delete(root);
			return NULL;
		}
	}
	return root;
}

void iapo_train_opts_help(FILE *f)
{
	for (size_t i = 0; i < NOPTS; i++) {
		const opt_def *d = &OPTS[i];
		if (d->group) fprintf(f, "\n%s:\n", d->group);
		char head[64];
		snprintf(head, sizeof head, "--%s%s%s", d->name, d->arg ? " " : "", d->arg ? d->arg : "");
		fprintf(f, "  %-28s %s", head, d->help);
		if (d->type == T_ENUM)
			fprintf(f, " (%s; default %s)", d->choices, d->dflt);
		else if (d->dflt && d->type != T_FLAG)
			fprintf(f, " (default %s)", d->dflt);
		fputc('\n', f);
	}
}
