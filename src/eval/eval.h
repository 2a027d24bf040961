/*
 * eval.h — evaluation of a model on a dataset the way the reference does it
 * (iapo-reference §7, DESIGN §7): n samples per problem with the reference's
 * prompt, each completion judged by the answer verifier (correctness only;
 * the format is reported but does not count), then
 *   pass@k    the unbiased estimator 1 − C(n−c, k)/C(n, k), or the
 *             reference's empirical "any correct among the first k samples";
 *   length@k  mean tokens of the first k samples (EOS included, as vLLM's
 *             len(output.token_ids));
 *   token efficiency = pass@kmax / length@kmax (the reference's checkpoint
 *             selection metric with kmax = 32);
 *   time      wall-clock seconds, and per problem.
 *
 * Determinism: sample j of problem p draws from the stream (seed, p << 32 | j)
 * with p the problem's index in the dataset, so results do not depend on the
 * batch size, the thread count or --limit. A library function: it prints
 * nothing (progress goes through an optional callback).
 *
 * Not here: loading models and datasets, finding checkpoints, the CSV and the
 * table (tools/cmd_eval.c); the CPython shuffle of the reference's split.
 */
#ifndef IAPO_EVAL_EVAL_H
#define IAPO_EVAL_EVAL_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "iapo.h"
#include "model/weights.h"
#include "rl/dataset.h"
#include "tokenizer/tokenizer.h"

/* Unbiased pass@k of one problem with c correct among n samples:
 * 1 − C(n−c, k)/C(n, k), computed as 1 − Π_{i=n−c+1..n} (1 − k/i) (no large
 * binomials). 1 when n − c < k, 0 when c = 0. NaN when not 1 <= k <= n or c is
 * outside [0, n]. */
double iapo_pass_at_k(int n, int c, int k);
/* The reference's pass@k of one problem: 1 if any of correct[0..k) is
 * non-zero, else 0. NaN when not 1 <= k <= n. */
double iapo_pass_at_k_first(const unsigned char *correct, int n, int k);

#define IAPO_EVAL_MAX_KS 32

typedef struct {
	int n_samples;          /* samples per problem (>= 1) */
	const int *ks;          /* (n_ks) each in [1, n_samples]; NULL: 1, 2, 4, ... up to n_samples */
	int n_ks;               /* <= IAPO_EVAL_MAX_KS */
	int passk_first;        /* 1: the reference's first-k pass@k; 0: unbiased */
	int max_new_tokens;     /* completion budget (>= 0) */
	int max_model_len;      /* > 0: prompt + completion capped at this many tokens, as the
				 * reference's vLLM max_model_len = 768 did; 0: no cap */
	float temperature, top_p;
	int top_k;
	uint64_t seed;
	int batch;              /* sequences per generate call; <= 0: n_samples */
	size_t limit;           /* evaluate the first `limit` problems only; 0: all */
	/* the prompt */
	const char *system;     /* NULL: iapo_prompt_system(format) */
	int one_shot;           /* 1: the reference's "What is 2+2?" turn */
	iapo_data_format format; /* task line; IAPO_DATA_AUTO: the dataset's format */
	/* end of sequence; NULL: the model config's eos ids and the template's end-of-turn ids */
	const int *eos_ids;
	int n_eos;
	/* called after each generate call with completions done so far and the total; may be NULL */
	void (*progress)(void *ctx, long done, long total);
	void *progress_ctx;
} iapo_eval_opts;

/* The reference's settings: n 32, ks NULL (1, 2, 4, ... up to n, so a smaller
 * n_samples needs no other change), unbiased pass@k, 1024 new tokens, no
 * max_model_len, temperature 1, top-p 1, top-k off, seed 42, batch 32,
 * one-shot on, format AUTO, no progress callback. */
void iapo_eval_opts_default(iapo_eval_opts *o);

typedef struct {
	int n_problems, n_samples, n_ks;
	int ks[IAPO_EVAL_MAX_KS];
	int passk_first;                 /* which estimator pass_at_k holds */
	double pass_at_k[IAPO_EVAL_MAX_KS];   /* mean over problems, the chosen estimator */
	double pass_at_k_alt[IAPO_EVAL_MAX_KS]; /* the other estimator, for comparison */
	double length_at_k[IAPO_EVAL_MAX_KS]; /* mean tokens of the first k samples */
	double token_efficiency;         /* pass@kmax / length@kmax (0 when length@kmax is 0) */
	double accuracy;                 /* mean correctness over all samples */
	double format_rate;              /* fraction of samples in the <think>/<answer> format */
	double truncated_rate;           /* fraction that hit the token budget */
	double mean_prompt_tokens;
	long generated_tokens;
	double seconds;                  /* wall clock of the whole evaluation */
	double time_per_problem;         /* seconds / n_problems */
	/* per sample, problem-major (n_problems * n_samples) */
	unsigned char *correct, *format_ok;
	int *length;                     /* tokens of the completion, EOS included */
	/* per problem (n_problems) */
	int *n_correct;
	double *mean_length;
} iapo_eval_result;

/* Evaluates w on the first min(limit, ds->n) problems of ds. tok must have a
 * chat template (the prompt is rendered through it). On success *out owns its
 * arrays (iapo_eval_result_free); on failure it is empty. Errors: ARG (bad
 * options: a k outside [1, n_samples], n_samples < 1, too many ks, an empty
 * dataset), UNSUPPORTED (no chat template), those of iapo_generate. */
iapo_status iapo_evaluate(const iapo_weights *w, const iapo_tokenizer *tok, const iapo_dataset *ds,
			  const iapo_eval_opts *o, iapo_eval_result *out);
void iapo_eval_result_free(iapo_eval_result *r);

/* The result as JSON: {"n_problems", "n_samples", "passk": "unbiased"|"first",
 * "pass_at_k": {"k": v, ...}, "pass_at_k_unbiased", "pass_at_k_first",
 * "length_at_k", "token_efficiency", "accuracy", "format_rate",
 * "truncated_rate", "mean_prompt_tokens", "generated_tokens", "seconds",
 * "time_per_problem"} and, with details, "problems": [{"index", "correct",
 * "mean_length"}, ...]. NULL when out of memory. */
cJSON *iapo_eval_result_json(const iapo_eval_result *r, int details);

#endif
