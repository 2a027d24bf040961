/*
 * grpo.h — the maths of a GRPO-family step that does not touch the model:
 * group advantages (DESIGN §5, iapo-reference §3) and the clipped token
 * policy loss with its k3 KL term, its three aggregations and its gradient
 * with respect to the per-token log-probs (DESIGN §6, iapo-reference §5).
 * The trainer runs the forward (per-token log-probs), calls
 * iapo_policy_loss for dL/dlogp, and hands that to the model's backward.
 *
 * Aggregation normalisers are those of the WHOLE optimizer step, given by the
 * caller in iapo_loss_opts, so a step split into micro-batches (and later
 * across MPI ranks) is the same loss and the same gradient as one big batch:
 * only the order of a sum changes. This deliberately differs from TRL 0.21,
 * whose "bnpo" divides by the token count of each LOCAL micro-batch and then
 * by the number of accumulation steps (so short micro-batches weigh their
 * tokens more); ours divides by the step's token count, which is what DAPO
 * means by a token-level mean and what stays exact under MPI. "grpo" and
 * "dr_grpo" agree with TRL whenever TRL's micro-batches are equal-sized.
 *
 * Left out: IAPO's token-level advantage terms (they arrive here as a (B,T)
 * advantage), entropy bonuses, sequence-level importance ratios (GSPO), the
 * two-sided "delta" clip TRL offers (unused by the reference).
 * Threads: pure functions over caller-owned arrays; no allocation, no global
 * state, safe to call from several threads on different data.
 */
#ifndef IAPO_RL_GRPO_H
#define IAPO_RL_GRPO_H

#include "iapo.h"

/* Group advantages over n = groups*G rewards in consecutive groups of G:
 * scale != 0 (GRPO): (r - mean_g) / (std_g + 1e-4) with the UNBIASED std (G-1; G==1 -> A=0);
 * scale == 0 (Dr. GRPO, --scale-rewards none): r - mean_g. All-equal group -> exactly 0.
 * Statistics in double. n should be a multiple of G; a trailing partial group is
 * treated as a group of its own size, and G < 1 as G = 1 (all advantages 0).
 * adv may alias rewards. */
void iapo_group_advantages(const float *rewards, int n, int G, int scale, float *adv);

typedef enum { IAPO_LOSS_GRPO = 0, IAPO_LOSS_BNPO = 1, IAPO_LOSS_DR_GRPO = 2 } iapo_loss_type;
/* "grpo", "bnpo", "dr_grpo". */
const char *iapo_loss_type_str(iapo_loss_type t);
/* "grpo"|"bnpo"|"dr_grpo" ("dapo" = bnpo alias); IAPO_ERR_ARG with a message otherwise. */
iapo_status iapo_loss_type_parse(const char *s, iapo_loss_type *t);

typedef struct {
	iapo_loss_type type;
	float eps_low, eps_high;   /* ratio clipped to [1-eps_low, 1+eps_high] */
	float beta;                /* KL (k3) weight; 0 = no reference needed */
	/* Normalisers for the WHOLE optimizer step (all micro-batches, later all MPI ranks), so that
	 * splitting a step into micro-batches only changes how the sum is computed, never its meaning:
	 *  grpo:    loss = (1/n_seqs) * sum_i [ sum_t m*l / max(1, sum_t m) ]
	 *  bnpo:    loss = sum_{i,t} m*l / max(1, n_tokens)        (token mean over the whole step)
	 *  dr_grpo: loss = sum_{i,t} m*l / (n_seqs * max_completion_len)
	 * (TRL 0.21's bnpo uses the micro-batch's own token count instead: see the file header.)
	 * Only the normalisers of the chosen type are read. */
	long n_seqs, n_tokens;
	int max_completion_len;
} iapo_loss_opts;

typedef struct {              /* sums over the masked tokens of this call; the caller adds them up */
	double loss;              /* this micro-batch's contribution to the step loss (already normalised as above) */
	double kl_sum;            /* sum of m*k3 (0 when ref_logp is NULL) */
	double tokens;            /* sum of m */
	double clipped_low, clipped_high;  /* count of tokens where the clip was active on each side
	                                    (TRL's definition: ratio < 1-eps_low with A<0, ratio > 1+eps_high with A>0) */
	double ratio_sum;         /* sum of m*ratio */
} iapo_loss_stats;

/* One micro-batch laid out as the forward's (B,T) arrays: logp (B,T) log-probs of the taken tokens
 * (the forward's output), old_logp (B,T) or NULL (= logp, i.e. ratio 1 with the gradient of logp —
 * TRL's on-policy case), ref_logp (B,T) or NULL (only allowed when beta == 0), adv (B,T) per-token
 * advantage (sequence advantage broadcast by the caller; token-level methods give different values),
 * mask (B,T) 0/1 (1 on completion tokens that count). Per token: rho = exp(logp - old);
 * l = -min(rho*A, clip(rho)*A) + beta*(exp(ref-logp) - (ref-logp) - 1). Writes dlogp (B,T) =
 * d(step loss)/d(logp) (0 where mask is 0) and adds to *stats (may be NULL).
 *
 * Each row is one whole sequence (grpo normalises by the row's own mask sum), so a step may
 * be split into micro-batches by rows only. The per-row contributions are added to stats->loss
 * row by row, so passing the same stats to consecutive calls over a step split by rows gives
 * bit-for-bit the loss of one call, and dlogp never depends on the split.
 * Where rho*A equals clip(rho)*A (inside the clip range) the gradient is the unclipped one,
 * rho*A; where the clipped branch is strictly smaller it is chosen and contributes no gradient.
 * Arithmetic per token in double. Values under mask 0 are not read (may be anything, even NaN).
 * Errors (nothing written to stats): IAPO_ERR_ARG for B or T < 0, NULL arrays, ref_logp NULL
 * with beta != 0, negative eps or beta, a normaliser < 1 that the type needs;
 * IAPO_ERR_NUMERIC for a non-finite logp/old/ref/adv under the mask, naming (row, column). */
iapo_status iapo_policy_loss(const iapo_loss_opts *o, int B, int T, const float *logp, const float *old_logp,
			     const float *ref_logp, const float *adv, const float *mask, float *dlogp,
			     iapo_loss_stats *stats);

#endif
