/*
 * iapo_hook.h — IAPO as the trainer's per-token advantage (trainer.h's
 * iapo_advantage_fn): after each rollout, the early-exit estimator
 * (info.h) gives every completion's answer entropies E and policy entropies
 * C under the current policy, and iapo_adv.h turns them, the group advantages
 * and the rewards into A_it. `iapo train --algo iapo` installs it with
 * iapo_trainer_set_advantage(tr, iapo_hook_advantage, hook).
 *
 * Sequences the trainer marks unused (r->unused: dropped by dynamic
 * sampling) get no estimate: their advantages are the group's (never read).
 * Where the view names a cache slot holding a sequence (r->kv_slot, the
 * rollout's own K/V and sampling entropies, which the trainer vouches for),
 * the estimator runs over that cache (info.h's iapo_info_compute_cached): no
 * prefill. Others go through the estimator's own cache.
 *
 * Memory: the estimator, its cache (for `batch` sequences of up to Tmax
 * tokens) and the (n, Tmax + 1) E and C buffers are allocated in
 * iapo_hook_new; a call allocates nothing. The estimator reads the weights
 * given here on every call (the trainer's policy, updated in place).
 * Left out: option parsing and metrics.jsonl fields (the trainer's).
 */
#ifndef IAPO_RL_IAPO_HOOK_H
#define IAPO_RL_IAPO_HOOK_H

#include "iapo.h"
#include "model/weights.h"
#include "rl/iapo_adv.h"
#include "rl/info.h"
#include "rl/trainer.h"
#include "tokenizer/tokenizer.h"

typedef struct {
	iapo_info_opts info;  /* postfix (copied), predict, answer tokens, chunk; the temperature is the rollout's */
	iapo_tokadv_opts adv; /* gain, normalisation, horizon, weights */
	int batch;            /* sequences per estimator call (own cache); 0 = min(n, 16) */
	int no_reuse;         /* 1: never the rollout's cache (recompute its K/V and C; for checks) */
} iapo_hook_opts;

/* What the last call measured (for metrics.jsonl). */
typedef struct {
	double mean_gain;       /* mean of S_t = E_t − E_{t+1} over completion tokens */
	double near_zero_share; /* share of tokens with |S_t| < IAPO_NEAR_ZERO_GAIN */
	double seconds;         /* wall time of the information pass (estimator only) */
	double tokens;          /* completion tokens estimated (of sequences the loss reads) */
	int reused;             /* sequences taken from the rollout's cache */
	int skipped;            /* sequences the loss does not read (no estimate) */
} iapo_hook_metrics;

typedef struct iapo_hook iapo_hook;

/* For rollouts of up to n sequences, each prompt + completion at most Tmax
 * tokens, with the policy w (borrowed). Errors: ARG, NOMEM. */
iapo_status iapo_hook_new(const iapo_weights *w, int n, int Tmax, const iapo_hook_opts *o, iapo_hook **out);
void iapo_hook_free(iapo_hook *h);

/* The iapo_advantage_fn: ctx is the iapo_hook. Fills adv (r->n, r->Tc) for
 * t < comp_len. ARG when r->policy is not the hook's weights or the rollout
 * is larger than the hook was made for. */
iapo_status iapo_hook_advantage(void *ctx, const iapo_rollout_view *r, float *adv);

void iapo_hook_last_metrics(const iapo_hook *h, iapo_hook_metrics *m);

/* The ids of every token whose text contains a newline (for info.h's
 * at_tokens: one estimate per line). *ids is allocated (iapo_free); *n may
 * be 0. */
iapo_status iapo_newline_tokens(const iapo_tokenizer *t, int **ids, int *n);

#endif
