/*
 * sft.h — supervised fine-tuning as a library step: cross-entropy on the
 * completion tokens only (the prompt is context, not a target), averaged over
 * every completion token of the step, then global-norm clipping and AdamW —
 * the same optimizer as the RL loop. Used to warm-start a model so that it
 * already emits the answer format before RL (the tests and `iapo demo`), and
 * by `iapo sft`.
 *
 * Memory: the activation arena (micro-batch x longest sequence), the gradient
 * and the two AdamW moment blocks are allocated once in iapo_sft_new; a step
 * allocates nothing.
 * Not here: datasets, chat templates and tokenisation (the caller hands
 * token ids), the learning-rate schedule (the caller passes each step's lr),
 * checkpoint files (the moments are exposed for a caller that saves them).
 */
#ifndef IAPO_RL_SFT_H
#define IAPO_RL_SFT_H

#include "iapo.h"
#include "model/weights.h"
#include "rl/adamw.h"

typedef struct iapo_sft iapo_sft;

typedef struct {
	iapo_adamw_opts adam; /* lr is ignored: each step passes its own */
	double max_grad_norm; /* <= 0: no clipping */
	int micro_batch;      /* sequences per forward/backward (>= 1) */
	int max_len;          /* longest sequence (prompt + completion) a step may hold */
} iapo_sft_opts;

typedef struct {
	double loss;      /* mean cross-entropy (nats) over the step's completion tokens */
	double tokens;    /* completion tokens */
	double grad_norm; /* before clipping */
	int skipped;      /* the loss or gradient was not finite: no update was made */
} iapo_sft_stats;

/* Trains w in place (borrowed: it must outlive the iapo_sft and not move). */
iapo_status iapo_sft_new(iapo_weights *w, const iapo_sft_opts *o, iapo_sft **out);
void iapo_sft_free(iapo_sft *s);

/* One optimizer step over n examples: example i is tokens[i][0..lens[i]),
 * whose first n_prompt[i] tokens are the prompt (0 < n_prompt[i] < lens[i] <=
 * max_len). Every token after the prompt is a target (its log-prob is
 * maximised given all tokens before it). lr: this step's learning rate.
 * stats may be NULL. A non-finite loss or gradient skips the update (stats->
 * skipped) and is not an error. Errors: ARG for a bad example (naming it).
 * Under MPI (src/dist/) it is collective: each rank passes its share of the
 * step's examples (n may be 0 on some ranks), and the loss, token count and
 * gradient are the whole step's on every rank, so all make the same update. */
iapo_status iapo_sft_step(iapo_sft *s, const int *const *tokens, const int *lens, const int *n_prompt, int n,
			  float lr, iapo_sft_stats *stats);

/* The loss without an update (held-out evaluation): *loss_sum += the
 * summed cross-entropy of every completion token of the n examples, *tokens
 * += their count (same example rules as iapo_sft_step). No gradient, no
 * change to the weights or the optimizer. Collective under MPI like the
 * step: the sums added are the whole job's (each rank passes its share, n
 * may be 0). */
iapo_status iapo_sft_eval(iapo_sft *s, const int *const *tokens, const int *lens, const int *n_prompt, int n,
			  double *loss_sum, double *tokens_out);

/* The AdamW state: moments (iapo_param_count floats each, same layout as the
 * weights) and the number of updates made so far (t). Writable, so a caller
 * can restore them from a checkpoint. */
void iapo_sft_state(iapo_sft *s, float **m, float **v, long **t);

#endif
