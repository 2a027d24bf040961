/*
 * algo.h — what `iapo train --algo NAME` changes in a GRPO step, as stages
 * the trainer (trainer.c) calls at fixed points:
 *
 *   options   iapo_algo_resolve_opts: --algo sets the defaults of its options
 *             (only those not given) and the options are checked together:
 *               iapo    token terms on (the options under "IAPO token terms");
 *               dapo    --epsilon-high 0.28, --loss-type bnpo,
 *                       --dynamic-sampling resample, --overlong-buffer =
 *                       max-completion-tokens / 5 (DAPO's 4096 of 20480);
 *               lenpen  --lenpen-weight 1;
 *               gtpo    --loss-type bnpo (the authors' GTPO runs);
 *               gfpo    --loss-type grpo, sample --gfpo-sample, keep
 *                       --gfpo-keep = --num-generations;
 *               sgrpo   --loss-type grpo (the mask is the authors' for grpo).
 *             Dynamic sampling, overlong shaping and the length reward work
 *             with any algo (e.g. --algo iapo --dynamic-sampling drop).
 *   rollout   the trainer samples G' = iapo_algo_sampled_group completions per
 *             prompt and scores them; iapo_algo_after_rollout then, per group:
 *             adds the overlong punishment and the length reward to the
 *             rewards; (GFPO) picks the k completions that survive; (dynamic
 *             sampling) finds the groups whose surviving rewards are all
 *             equal and has the trainer sample them again — every completion
 *             of the group, the same prompt, with the streams of attempt
 *             1, 2, .. (iapo_algo_sample_key) — up to --dynamic-max-tries
 *             rounds; (GFPO) compacts the buffer to the survivors, k per
 *             group, which then are the step's groups (the authors drop the
 *             others; advantages are taken over the survivors).
 *   advantage IAPO's token terms (iapo_hook.h) or GTPO's entropy bonus, as
 *             the trainer's per-token advantage hook (iapo_algo_advantage).
 *   loss      iapo_algo_loss_mask, recomputed at every optimizer step from
 *             the rollout buffer alone (so a resumed run needs nothing more
 *             than rollout.bin): groups whose rewards are all equal leave the
 *             loss and its normalisers when dynamic sampling is on (dropped);
 *             S-GRPO keeps the first alpha tokens and, in completions shorter
 *             than k, each later token with probability p.
 *   metrics   iapo_algo_step_metrics (collective under MPI) and
 *             iapo_algo_metrics_json: the algo's fields of a metrics.jsonl line.
 *
 * Randomness (so a run and its resume are identical on any number of ranks):
 * attempt a of completion j of dataset row k at rollout g samples from the
 * stream (seed, iapo_algo_sample_key(g, k, j, a)); attempt 0 is the plain
 * GRPO key. The S-GRPO mask of the completion in slot j of its group, row k,
 * at optimizer step s draws from the stream (seed, "sgrp", s, (k, j)).
 * Everything else is a function of the rollout.
 *
 * Left out: the maths of each baseline (rl/baselines.h, rl/iapo_adv.h), the
 * estimator (rl/info.h), sampling and the loss (the trainer, rl/grpo.h).
 */
#ifndef IAPO_RL_ALGO_H
#define IAPO_RL_ALGO_H

#include <stdint.h>

#include <cjson/cJSON.h>

#include "iapo.h"
#include "model/weights.h"
#include "rl/options.h"
#include "rl/trainer.h"
#include "tokenizer/tokenizer.h"

typedef enum {
	IAPO_ALGO_GRPO = 0,
	IAPO_ALGO_IAPO,
	IAPO_ALGO_DAPO,
	IAPO_ALGO_LENPEN,
	IAPO_ALGO_GTPO,
	IAPO_ALGO_GFPO,
	IAPO_ALGO_SGRPO
} iapo_algo_kind;

/* "grpo", "iapo", "dapo", "lenpen", "gtpo", "gfpo", "sgrpo". */
iapo_status iapo_algo_kind_parse(const char *s, iapo_algo_kind *k);

/* --algo's defaults and the cross-option checks of the algorithm options
 * (called by iapo_train_opts_resolve before the batch layout). ARG errors. */
iapo_status iapo_algo_resolve_opts(iapo_train_opts *o);

/* Completions sampled per prompt: --gfpo-sample under gfpo, else
 * --num-generations. o must be resolved. */
int iapo_algo_sampled_group(const iapo_train_opts *o);

/* The stream key of attempt `attempt` (0 = first) of completion `sample` of
 * dataset row `row` at rollout `gen`; attempt 0 is iapo_trainer_sample_key. */
uint64_t iapo_algo_sample_key(long gen, long row, int sample, int attempt);

typedef struct iapo_algo iapo_algo;

/* For a trainer with the resolved options o, policy w (borrowed: read at
 * every call), tokenizer tok (used here only), at most n_seqs sequences per
 * rank after selection and prompt + completion lengths up to Tmax. */
iapo_status iapo_algo_new(const iapo_train_opts *o, const iapo_weights *w, const iapo_tokenizer *tok, int n_seqs,
			  int Tmax, iapo_algo **out);
void iapo_algo_free(iapo_algo *a);

/* The per-token advantage hook this algo needs (ctx = the algo), or NULL. */
iapo_advantage_fn iapo_algo_advantage_fn(const iapo_algo *a);
iapo_status iapo_algo_advantage(void *ctx, const iapo_rollout_view *r, float *adv);

/* The rollout buffer, as the trainer holds it: n sequences in consecutive
 * groups of `group`; ctok (n, Tc). */
typedef struct {
	int n, group, Tc;
	long gen; /* rollout index */
	int *row, *plen, *clen, *finish, *correct, *fmt_ok, *ctok;
	const int **pptr;
	float *reward;
} iapo_algo_buffer;

/* Samples and scores again the listed sequences of the buffer (prompt, row
 * and slot unchanged; raw rewards) with the streams of `attempt`. */
typedef iapo_status (*iapo_resample_fn)(void *ctx, const int *seqs, int n, int attempt);

/* After the trainer sampled the whole buffer (b->group = G' per prompt, raw
 * rewards): shaping, GFPO selection, dynamic sampling (through resample),
 * compaction. On return b->n and b->group are the training groups'. */
iapo_status iapo_algo_after_rollout(iapo_algo *a, iapo_algo_buffer *b, iapo_resample_fn resample, void *ctx);

/* The loss mask of the buffer at optimizer step `step`, (b->n, b->Tc): entry
 * [i*Tc + t] for t < clen[i] multiplies token t's loss weight; NULL when the
 * algo keeps every token (GRPO's mask). *kept_seqs / *kept_tokens: sequences
 * with any token left and the sum of the mask, this rank's (the loss
 * normalisers are their sums over ranks). */
const float *iapo_algo_loss_mask(iapo_algo *a, const iapo_algo_buffer *b, long step, double *kept_seqs,
				 double *kept_tokens);

/* The algo's fields of one step (sums over all ranks). */
typedef struct {
	int rollout; /* the step sampled its rollout (its first pass over it) */
	int has_info, has_gtpo, has_dynamic, has_overlong, has_lenpen, has_gfpo, has_mask;
	double info_gain_mean, info_near_zero, seconds_info; /* IAPO: mean S_t, share |S_t| < 0.01, estimator time */
	double gtpo_bonus_mean, seconds_entropy;             /* GTPO: mean |bonus| per token, entropy pass time */
	double dynamic_groups_resampled, dynamic_resamples, dynamic_groups_dropped;
	double overlong_penalty_mean, length_reward_mean;    /* means over the sampled completions */
	double gfpo_length_sampled, gfpo_length_kept;        /* mean completion lengths */
	double loss_token_fraction;                          /* Σ mask / completion tokens (every step) */
} iapo_algo_metrics;

/* Collective under MPI (every rank, every step). rollout_step: this step
 * sampled the rollout (its rollout-time fields are reported only then). */
iapo_status iapo_algo_step_metrics(iapo_algo *a, int rollout_step, iapo_algo_metrics *m);

/* Adds m's fields to a metrics.jsonl object; 0, or -1 on allocation failure. */
int iapo_algo_metrics_json(cJSON *obj, const iapo_algo_metrics *m);

#endif
