/*
 * baselines.h — the maths of the paper's baselines that does not touch the
 * model or the trainer (DESIGN §5, iapo-reference §8, paper.md §2), as pure
 * functions over caller-owned arrays:
 *   - DAPO's soft overlong punishment (a reward term by completion length);
 *   - the Kimi k1.5 length reward (per group, by length and correctness);
 *   - GTPO's entropy-weighted token bonus, as the authors' gtpo_trainer.py
 *     computes it (coefficient 0.1, weight L_i) or with the GTPO paper's d_t;
 *   - GFPO's selection of k of G' completions (shortest, or most reward per
 *     token);
 *   - the S-GRPO (Lee & Tong) token subsampling mask.
 * Arithmetic in double, rounded to float on output. No allocation, no global
 * state; safe to call from several threads on different data.
 *
 * Left out: where these run in a step (rl/algo.h), DAPO's clip-higher and
 * token-mean loss (options of rl/grpo.h's loss), dynamic sampling (a sampling
 * loop: rl/algo.h), IAPO's token terms (rl/iapo_adv.h).
 */
#ifndef IAPO_RL_BASELINES_H
#define IAPO_RL_BASELINES_H

#include "iapo.h"
#include "core/rng.h"

/* DAPO overlong shaping for a completion of len tokens with the maximum
 * L_max = max_len and a buffer of L_cache = cache tokens before it:
 *   0                                  len <= L_max − L_cache
 *   −(len − (L_max − L_cache)) / L_cache   up to −1 at len = L_max
 *   −1                                 len > L_max
 * cache <= 0 gives 0 (off); cache > max_len is taken as max_len. */
double iapo_overlong_penalty(int len, int max_len, int cache);

/* Kimi k1.5 length reward of one group of G completions (paper.md §2):
 * λ_i = 0.5 − (len_i − min_len)/(max_len − min_len) over the group;
 * out_i = λ_i when correct[i], min(0, λ_i) otherwise; all lengths equal →
 * every out_i = 0. */
void iapo_lenpen_rewards(int G, const int *lens, const int *correct, float *out);

/* 1 when the G rewards are all equal (exactly), i.e. the group carries no
 * GRPO signal. G < 2 → 1. */
int iapo_group_all_equal(const float *rewards, int G);

/* GTPO (iapo-reference §8.3). With P = {i : r_i >= 0}, Nn = {i : r_i < 0}
 * and, at column t, only the group members with a token there (t < clen_k):
 *   i ∈ P:  bonus = coef · H_it / (Σ_{k∈P} H_kt + 1e-8) · w_it
 *   i ∈ Nn: bonus = −coef · (1/(H_it + 1e-8)) / (Σ_{k∈Nn} 1/(H_kt + 1e-8) + 1e-8) · w_it
 * with w_it = clen_i (scale LENGTH: the authors' code) or d_t = the number of
 * group members with a token at t (scale ACTIVE: the GTPO paper's weight).
 * The authors' column sums also count the entropies of members that already
 * ended (their post-EOS pad positions); we have no such entropies, so a
 * finished member leaves the sums. */
typedef enum { IAPO_GTPO_SCALE_LENGTH = 0, IAPO_GTPO_SCALE_ACTIVE = 1 } iapo_gtpo_scale;
/* "length", "active"; parse gives IAPO_ERR_ARG otherwise. */
iapo_status iapo_gtpo_scale_parse(const char *s, iapo_gtpo_scale *out);

typedef struct {
	double coef;           /* 0.1 in the authors' code */
	iapo_gtpo_scale scale;
} iapo_gtpo_opts;

/* One group of G: rewards, A (group advantages), clen (G); H: row i's
 * entropies at H[i*ldH + t], t < clen[i]. Writes adv[i*ld + t] = A_i +
 * bonus_it for t < clen[i] (other entries untouched); *bonus_abs (may be
 * NULL) gets Σ |bonus|. Errors: ARG (G < 1, NULL arrays, clen < 0),
 * NUMERIC (a non-finite or negative entropy, naming member and t). */
iapo_status iapo_gtpo_advantages(const iapo_gtpo_opts *o, int G, const float *rewards, const float *A,
				 const int *clen, const float *H, int ldH, float *adv, int ld, double *bonus_abs);

/* GFPO (iapo-reference §8.4, paper.md §2): which k of the G completions of
 * a group survive. LENGTH: the k shortest; REWARD_PER_TOKEN: the k largest
 * reward / max(1, length) (the GFPO paper's token efficiency). Ties go to
 * the lower index (the authors' torch.topk leaves them unspecified). keep[0..k)
 * gets the chosen indices in increasing order. k >= G keeps all. */
typedef enum { IAPO_GFPO_LENGTH = 0, IAPO_GFPO_REWARD_PER_TOKEN = 1 } iapo_gfpo_metric;
/* "length", "reward_per_token". */
iapo_status iapo_gfpo_metric_parse(const char *s, iapo_gfpo_metric *out);
void iapo_gfpo_select(int G, int k, iapo_gfpo_metric m, const int *lens, const float *rewards, int *keep);

/* S-GRPO (Lee & Tong; iapo-reference §8.5) loss mask of one completion of L
 * tokens: mask[t] = 1 for t < alpha; when L < k, positions [alpha, min(L, k))
 * get independent Bernoulli(p) draws from r (in order of t); all other
 * positions 0. So completions of k tokens or more train on their first alpha
 * tokens only. (The authors draw per micro-batch column up to its padded
 * width W and keep everything when alpha > W; per completion this is the same
 * mask without the dependence on W.) Writes mask[0..L). */
void iapo_sgrpo_mask(int alpha, int k, double p, int L, iapo_rng *r, float *mask);

#endif
