/*
 * iapo_adv.h — IAPO's token advantages (DESIGN §5, iapo-reference §4.5-4.10):
 * from the answer entropies E_0..E_L of one completion (rl/info.h computes
 * them), its policy entropies C_0..C_{L-1}, its group advantage A_i and its
 * reward r_i, the per-token advantage
 *
 *     A_it = A_i + w_s * Ŝ_t − sign(r_i) * w_c * Ĉ_t
 *
 * where S_t is the information gain of token t about the answer, S' its
 * horizon-smoothed form and Ŝ, Ĉ their per-completion normalisations.
 *
 * Two settings of each step: ours (the paper's intent, the defaults) and the
 * authors' code (for reproducing published numbers; iapo-reference §10 items
 * 1-8 hold to float rounding):
 *   gain      plain      S_t = E_t − E_{t+1}, t < L (uses E_L);
 *             reference  S_t = (E_t + E_{t−1})/2 − E_{t+1} with E_{−1} := 0 and
 *                        E_L := 0: the zero fill the code applies at the padded
 *                        width, applied here at the completion's own end (we
 *                        never compute the code's post-EOS garbage entropies,
 *                        so each completion is treated as the longest of its
 *                        batch; E_L is not read).
 *   horizon   h, decay λ, with S_t := 0 for t >= L;
 *             zscore:    S'_t = Σ_{k<h} λ^k S_{t+k} (the intended kernel);
 *             reference: the code's reversed kernel Σ_{k<h} λ^{h−1−k} S_{t+k},
 *                        which REPLACES the normalised S (only the L2 scaling
 *                        follows), as §4.8 describes. h = 1: no smoothing.
 *   norm      zscore     over the L valid tokens: z = (x − mean)/std, then
 *                        z / ‖z‖. The std cancels in z/‖z‖, so this is
 *                        (x − mean)/‖x − mean‖; it is 0 when L < 2 or the
 *                        values are equal within float rounding (std <= 1e-6 ·
 *                        max(1, max|x|)). Σ_t Ŝ_t = 0 and ‖Ŝ‖ = 1 otherwise.
 *             reference  §4.7 verbatim, including the precedence bug:
 *                        x̃ = x − mean/(std + 1e-8) over the padded width W
 *                        (entries t in [L, W) are 0 before the step: the
 *                        cross-process zero padding; unbiased std, ÷(W−1)),
 *                        then x̃ / (‖x̃‖ + 1e-8) with the norm over all W
 *                        entries. W = 1 (NaN in the code) gives 0.
 *   sign(r)   +1, −1, or 0 for r = 0 (the reference's rewards are never 0).
 *
 * Default weights w_s = w_c = 1: the pair the paper's tables use for GSM8K on
 * the 0.5B and 1.5B models. The reference CLI's default 1e-6 makes both terms
 * ~1e-8 next to |A_i| ~ 1, i.e. numerically nothing (iapo-reference §4.10).
 *
 * Arithmetic in double, rounded to float on output. No allocation, no global
 * state; safe to call from several threads on different data.
 * Left out: computing E and C (rl/info.h), the loss (rl/grpo.h), the other
 * token-level baselines (GTPO, S-GRPO).
 */
#ifndef IAPO_RL_IAPO_ADV_H
#define IAPO_RL_IAPO_ADV_H

#include "iapo.h"

typedef enum { IAPO_GAIN_PLAIN = 0, IAPO_GAIN_REFERENCE = 1 } iapo_gain;
typedef enum { IAPO_NORM_ZSCORE = 0, IAPO_NORM_REFERENCE = 1 } iapo_norm;

/* "plain", "reference"; parse gives IAPO_ERR_ARG with a message otherwise. */
const char *iapo_gain_str(iapo_gain g);
iapo_status iapo_gain_parse(const char *s, iapo_gain *g);
/* "zscore", "reference". */
const char *iapo_norm_str(iapo_norm n);
iapo_status iapo_norm_parse(const char *s, iapo_norm *n);

typedef struct {
	iapo_gain gain;
	iapo_norm norm;
	int horizon;  /* h >= 1 (1 = none) */
	float decay;  /* λ */
	float w_info; /* w_s */
	float w_conf; /* w_c */
	/* norm reference only: the padded width W over which statistics run
	 * (T_max of the step in the authors' code); < L (e.g. 0) means L. */
	int width;
} iapo_tokadv_opts;

/* plain gain, zscore, horizon 1, decay 0.5, w_s = w_c = 1, width 0. */
iapo_tokadv_opts iapo_tokadv_defaults(void);

/* One completion of L >= 0 valid tokens. E: L+1 answer entropies (E[L] is
 * read only by the plain gain); C: L policy entropies, or NULL (Ĉ = 0). Writes
 * adv (L) = the token advantages; optionally (each may be NULL) S (L) = the
 * raw gain S_t, S_hat (L) = Ŝ_t, C_hat (L) = Ĉ_t. Outputs must not alias the
 * inputs. Errors: IAPO_ERR_ARG (L < 0, adv or E NULL, horizon < 1),
 * IAPO_ERR_NUMERIC (a non-finite E, C, A or reward, naming the index). */
iapo_status iapo_tokadv_compute(const iapo_tokadv_opts *o, int L, const float *E, const float *C, float A,
				float reward, float *adv, float *S, float *S_hat, float *C_hat);

/* n completions laid out as rows: completion i's E at E[i*ldE + 0..clen[i]],
 * C at C[i*ldC + ...] (C may be NULL), advantage written to adv[i*ld_adv +
 * 0..clen[i]) (other entries untouched). A, rewards (n). With norm reference
 * and o->width < 1, W = the longest clen of this call (the code's T_max). */
iapo_status iapo_tokadv_batch(const iapo_tokadv_opts *o, int n, const int *clen, const float *E, int ldE,
			      const float *C, int ldC, const float *A, const float *rewards, float *adv, int ld_adv);

/* Per-step metrics of the plain gain S_t = E_t − E_{t+1} (whatever gain the
 * advantages use): sums the caller adds up over completions. */
typedef struct {
	double tokens;    /* completion tokens seen */
	double gain_sum;  /* Σ S_t */
	double near_zero; /* tokens with |S_t| < threshold */
} iapo_gain_stats;

/* Threshold (nats) for "near-zero gain" in the trainer's metrics. */
#define IAPO_NEAR_ZERO_GAIN 1e-2

/* Adds one completion (E: L+1 values) to s. */
void iapo_gain_stats_add(iapo_gain_stats *s, const float *E, int L, double threshold);

#endif
