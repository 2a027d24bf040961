/*
 * info.h — IAPO's early-exit estimator (DESIGN §5, iapo-reference §4.2-4.4):
 * for every completion position t = 0..L of a batch of prompt + completion
 * sequences,
 *   E_t = entropy (fp32, logits / temperature) of the policy's next-token
 *         distribution after prompt + o_<t + postfix — the answer entropy
 *         once the reasoning is cut before o_t (E_L: after the whole
 *         completion). The postfix is a few token ids, normally the
 *         tokenization of "</think><answer>" (IAPO_INFO_POSTFIX);
 *   C_t = the ordinary next-token entropy at t, i.e. of the distribution o_t
 *         was sampled from (C_L: after the whole completion).
 * predict next_token (the paper's ablation): E_t := C_t, no postfix pass.
 * answer_tokens N > 1 (our extension, DESIGN §5): E_t sums the entropies of
 * the first N answer tokens, teacher-forced on the model's own greedy answer
 * at that prefix (N − 1 greedy steps after the postfix).
 *
 * Fast path (iapo_info_compute): one pass through the KV cache fills each
 * sequence's slot with prompt + completion (its logits give C); then the
 * positions of the whole batch are taken in chunks: for each position t of a
 * chunk, K postfix rows at the TRUE positions P+t .. P+t+K−1 attend to the
 * cached prefix [0, P+t) of their own sequence (o_t excluded) plus their own
 * earlier postfix rows, kept in scratch slots (kvcache.h's two-span rows: no
 * copy of the cache). All rows of a chunk go through each weight matrix as one
 * GEMM (up to the cache's row limit), and only the last postfix row of each
 * position is projected to the vocabulary; entropies are taken per chunk, so
 * no more than (chunk, V) logits ever exist.
 * Differences from the authors' code, all deliberate (iapo-reference §9.5,
 * §9.7): true positions instead of the code's shared padded position maxlen..
 * (which puts a gap of up to chunk−1 positions before the postfix); no pad
 * tokens (sequences are ragged, so nothing attends to left-pad or post-EOS
 * tokens); fp32 entropies instead of bf16. A chunk here counts positions of
 * the whole batch (a chunk may span sequences), not positions per sequence.
 *
 * Naive path (iapo_info_naive, the oracle): for each (sequence, t) a full
 * training forward (transformer.h) of prompt + o_<t + postfix, reading the
 * last row's entropy; nothing shared with the cache code above the kernels.
 *
 * Memory: iapo_info_new allocates the (rows, V) logits and row buffers; the
 * cache for Bmax sequences of Tmax tokens and a chunk's scratch slots is
 * made by the first iapo_info_compute (so an estimator used only over the
 * rollout's cache never holds one); later calls allocate nothing. The weights are borrowed and read on every call, so
 * they may change between calls (an optimiser step), never during one.
 * Threads: one iapo_info at a time per thread; the work inside is OpenMP.
 * Shared prefixes (exact): E_t depends only on prompt + o_<t + postfix, so
 * when an earlier sequence of the batch has the same prompt and the same
 * first t completion tokens (the G samples of a group often start alike, and
 * the more so the surer the policy), its E_t is copied instead of computed.
 * Fewer positions (an APPROXIMATION, off by default): with stride s > 1, E is
 * estimated at t = 0, s, 2s, ... and at L; with at_tokens, at t = 0, L and
 * every t whose previous token o_{t−1} is one of the given ids (e.g. the
 * newline tokens: one estimate per reasoning line). Between two estimated
 * positions a < b, E is interpolated linearly, so each token of [a, b) gets
 * the gain (E_a − E_b)/(b − a): the block's gain spread evenly. C is always
 * exact. The pass costs about the share of positions estimated.
 *
 * Reuse of the rollout's cache (iapo_info_compute_cached, below): no
 * prefill; C comes from the rollout's own sampling distributions.
 *
 * Left out: gradients (the estimator is no-grad), packing
 * all postfixes into one tree-masked pass (the same rows through the same
 * GEMMs, so no fewer FLOPs on a CPU).
 */
#ifndef IAPO_RL_INFO_H
#define IAPO_RL_INFO_H

#include <stddef.h>

#include "iapo.h"
#include "model/kvcache.h"
#include "model/weights.h"

/* The default postfix text: as in the authors' code, no newline between the
 * tags (iapo-reference §4.3, §9.6). */
#define IAPO_INFO_POSTFIX "</think><answer>"

typedef enum { IAPO_PREDICT_ANSWER = 0, IAPO_PREDICT_NEXT_TOKEN = 1 } iapo_predict;
/* "answer", "next_token"; parse also takes the code's name "last_token" for answer. */
const char *iapo_predict_str(iapo_predict p);
iapo_status iapo_predict_parse(const char *s, iapo_predict *p);

typedef struct {
	iapo_predict predict;
	const int *postfix; /* (n_postfix) token ids, copied by iapo_info_new; answer mode needs >= 1 */
	int n_postfix;
	int answer_tokens;  /* N >= 1 (1 = the paper) */
	float temperature;  /* > 0; logits are divided by it before the entropy */
	int chunk;          /* positions per pass; 0 = automatic from mem_budget */
	int stride;         /* >= 1; > 1: estimate every stride-th position only (see above); 0 = 1 */
	const int *at_tokens; /* (n_at) estimate only after these token ids (copied); not with stride > 1 */
	int n_at;
	size_t mem_budget;  /* bytes for the chunk's scratch and logits when chunk == 0; 0 = 256 MiB */
	int bf16;           /* APPROXIMATION, off by default: multiply by a bf16 copy of the weight
			     * matrices (kvcache.h's iapo_kv_use_bf16, taken afresh at every call) */
	int pack_weights;   /* exact, off by default: pack the weight matrices into GEMM panels once per
			     * call (kvcache.h's iapo_kv_pack_weights) instead of once per chunk's product;
			     * costs about one more fp32 copy of the matrices (bf16: half) */
	int attn_fp32;      /* with bf16: the attention in fp32 over the fp32 K/V cache (as before
			     * session 7); 0 (default): in bf16 too (kvcache.h's iapo_kv_attn_bf16),
			     * within the tolerance tests/test_info_bf16.c states */
} iapo_info_opts;

/* answer mode, no postfix (set one), N = 1, temperature 1, automatic chunk. */
iapo_info_opts iapo_info_defaults(void);

/* A batch of n sequences: prompt i = prompts[i][0..plen[i]) (plen >= 1),
 * completion i = comps[i][0..clen[i]) (clen >= 0; comps[i] may be NULL when
 * clen[i] == 0). */
typedef struct {
	int n;
	const int *const *prompts;
	const int *plen;
	const int *const *comps;
	const int *clen;
} iapo_info_batch;

/* What one call did (wall seconds, rows through the model). */
typedef struct {
	double seconds_prefill, seconds_pass;
	long rows_prefill, rows_pass; /* rows_pass: postfix and greedy answer rows */
	long positions;               /* positions estimated: Σ (clen + 1) unless a stride or at_tokens thins
				       * them, less the shared ones */
	long shared;                  /* positions copied from another sequence of the same prompt (below) */
} iapo_info_stats;

typedef struct iapo_info iapo_info;

/* An estimator for up to Bmax sequences of up to Tmax = plen + clen tokens.
 * Errors: ARG (bad shapes or options: no postfix in answer mode, N < 1,
 * temperature <= 0, a postfix id outside the vocabulary), NOMEM,
 * UNSUPPORTED (a head dim the cache cannot hold). */
iapo_status iapo_info_new(const iapo_weights *w, int Bmax, int Tmax, const iapo_info_opts *o, iapo_info **out);
void iapo_info_free(iapo_info *e);
/* Changes the entropies' temperature (> 0; others are ignored), e.g. to the
 * rollout's sampling temperature. */
void iapo_info_set_temperature(iapo_info *e, float temperature);
/* Positions per pass (the option, or what the memory budget gave). */
int iapo_info_chunk(const iapo_info *e);
/* Bytes held once the own cache exists (cache, scratch, logits). */
size_t iapo_info_bytes(const iapo_info *e);

/* Fills E[i*ld + t] for t = 0..clen[i] and, when C != NULL, C[i*ld + t] for
 * t = 0..clen[i] (C_L included); other entries are left alone, so ld >= the
 * longest clen + 1. stats may be NULL. Allocates nothing. Errors (nothing
 * computed): ARG (n > Bmax, plen < 1, plen + clen > Tmax, a token outside
 * the vocabulary, ld too small); NUMERIC when the model gives a non-finite
 * entropy or no greedy answer token (NaN logits), naming the sequence and t. */
iapo_status iapo_info_compute(iapo_info *e, const iapo_info_batch *b, float *E, float *C, int ld,
			      iapo_info_stats *stats);

/* ---- reuse of a cache that already holds the sequences (the rollout's) ----
 * Decoding leaves prompt + completion minus its last token in a cache slot,
 * computed with the same weights; the pass then needs only that last token's
 * row and the postfix rows. The caller vouches that every slot still holds
 * exactly those tokens computed by the estimator's weights as they are now
 * (the trainer checks token by token and by its optimiser step). With fp32
 * K/V (generate.h decodes in fp32 when asked for entropies), E and C equal
 * iapo_info_compute's up to float rounding (the decode GEMMs sum in another
 * order): tests/test_info_reuse.c bounds it. A bf16 estimator switches the
 * cache to bf16 for the call and leaves it in the precision it found; the
 * trainer with --info-bf16 also samples in bf16, so all its K/V are bf16's,
 * and then the pass multiplies by the copy the rollout took (the slots show
 * it: iapo_kv_bf16_made) instead of converting the weights again. */
typedef struct {
	iapo_kv *kv;            /* made with the estimator's weights */
	const int *slot;        /* (n) slot holding sequence i's first plen + clen − 1 tokens */
	const float *const *C;  /* (n) C_0..C_{clen−1} of each sequence (the entropies of the
				 * distributions it was sampled from, generate.h); NULL: recomputed */
	int scratch0, nscratch; /* slots the pass may overwrite (none of them a sequence's) */
} iapo_info_cache;

/* Scratch entries for which iapo_info_scratch_slots makes room: a full
 * automatic chunk (about 512 postfix rows) twice over. */
#define IAPO_INFO_SCRATCH_ENTRIES 1024
/* Scratch slots a cache of Tmax positions per slot should have beyond its
 * sequences for iapo_info_compute_cached (fewer work, in smaller chunks). */
int iapo_info_scratch_slots(int Tmax);

/* iapo_info_compute over c's cache: writes the last token's K/V into each
 * sequence's slot (at position plen + clen − 1, beyond what decoding left)
 * and overwrites the scratch slots; slot lengths are not changed. Any n (no
 * Bmax limit); plen + clen <= the cache's Tmax. Errors as compute, and ARG
 * for a slot that holds fewer than plen + clen − 1 positions, a sequence
 * slot among the scratch slots, or no scratch (answer mode). stats'
 * prefill fields count the top-up rows. */
iapo_status iapo_info_compute_cached(iapo_info *e, const iapo_info_cache *c, const iapo_info_batch *b, float *E,
				     float *C, int ld, iapo_info_stats *stats);

/* The same numbers by brute force: a full training forward per (sequence,
 * t) (and per greedy answer token), several prefixes batched per forward.
 * Always every position (stride and at_tokens are ignored: this is the exact
 * estimator). Allocates per call. For tests and benchmarks. */
iapo_status iapo_info_naive(const iapo_weights *w, const iapo_info_opts *o, const iapo_info_batch *b, float *E,
			    float *C, int ld);

#endif
