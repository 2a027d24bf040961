/*
 * kvcache.h — inference over a key/value cache: ragged prefill and batched
 * incremental decoding of many sequences at once, for the rollout and for
 * `iapo generate`.
 *
 * The cache holds S sequence slots of up to Tmax positions, allocated once.
 * Two levels:
 *  - iapo_kv_forward appends tokens to sequences (prefill: n[b] = prompt
 *    length; decoding: n[b] = 1; n[b] = 0 leaves a sequence alone) and keeps
 *    each slot's length;
 *  - iapo_kv_forward_rows runs arbitrary rows, each saying where its own K/V
 *    go and which cached keys it attends to (a prefix of one slot plus an
 *    optional range of another). The IAPO information pass uses it to let
 *    many postfix rows attend to different-length prefixes of one sequence
 *    without copying the cache; iapo_kv_forward_rows_split runs two
 *    independent halves of such rows side by side, one per thread (on 2
 *    threads; on more, the whole chunk on all of them).
 * Either way every row of a call goes through each weight matrix in one GEMM
 * (in chunks of at most iapo_kv_max_rows rows), and only rows that ask for
 * logits are projected to the vocabulary; in the last layer a row that asks
 * for none stops once its K/V are stored (nothing reads the rest: q,
 * attention, o-proj, MLP), which spares most of a layer for every prompt row
 * but the last of a prefill and for all but one row of each IAPO postfix.
 * In layer 0 a chunk of many rows but few distinct tokens (the IAPO pass:
 * the same K postfix tokens at every position) runs the q/k/v products once
 * per distinct token and copies them (bit-identical: a row's product does
 * not depend on the other rows of the GEMM).
 *
 * Leaves out: training (src/model/transformer.c), sampling (sample.h), a
 * reduced-precision K/V cache for decoding (the IAPO pass's bf16 attention
 * keeps a bf16 copy beside the fp32 cache), paging. The cache reads the weights it was made with on
 * every call (it keeps the pointer, not a copy): they must outlive it, and
 * after the weights change, cached K/V are stale until the slots are reset.
 * Opt-in: a bf16 copy of the weight matrices (iapo_kv_use_bf16), a snapshot
 * that the caller refreshes after the weights change.
 */
#ifndef IAPO_MODEL_KVCACHE_H
#define IAPO_MODEL_KVCACHE_H

#include "iapo.h"
#include "model/weights.h"

typedef struct iapo_kv iapo_kv;

/* Cache for B sequences of up to Tmax tokens each; all memory (cache and
 * scratch) is allocated here, none per call. */
iapo_status iapo_kv_new(const iapo_weights *w, int B, int Tmax, iapo_kv **out);
void iapo_kv_free(iapo_kv *kv);
/* Forget sequence b (its length becomes 0). */
void iapo_kv_reset(iapo_kv *kv, int b);
/* Number of positions cached for sequence b. */
int iapo_kv_len(const iapo_kv *kv, int b);
int iapo_kv_slots(const iapo_kv *kv);
int iapo_kv_tmax(const iapo_kv *kv);
/* Most rows one GEMM pass handles; larger calls are split into chunks. */
int iapo_kv_max_rows(const iapo_kv *kv);

/* Appends n[b] tokens (tokens[b][0..n[b]-1]) to each sequence b (n[b] = 0:
 * untouched, tokens[b] may be NULL) in one batched pass; row j of sequence b
 * sits at position len(b)+j and attends to the sequence's cache up to and
 * including itself. Writes the logits of the last appended token of every
 * sequence with n[b] > 0 into row b of logits (B,V); other rows are left as
 * they were. Exceeding Tmax or a token outside [0, V) is IAPO_ERR_ARG and
 * changes nothing. */
iapo_status iapo_kv_forward(iapo_kv *kv, const int *const *tokens, const int *n, float *logits);

/* What one query row attends to: keys [0, len0) of slot seq0 and, when
 * len1 > 0, keys [start1, start1+len1) of slot seq1. */
typedef struct {
	int seq0, len0;
	int seq1, start1, len1;
} iapo_kv_keys;

/* One row of iapo_kv_forward_rows. */
typedef struct {
	int token;         /* input token id */
	int pos;           /* its position (RoPE angle) */
	int seq, slot;     /* where its K/V are written: slot `slot` of sequence `seq` */
	iapo_kv_keys keys; /* the keys it attends to; normally include (seq, slot) itself */
	int out;           /* >= 0: write its logits to row `out` of logits; -1: none */
} iapo_kv_row;

/* With on != 0: keeps a bf16 copy of the weight matrices (rounded to
 * nearest) and multiplies by it in every later forward of this cache, which
 * halves the bytes a decoding step reads. Each product rounds its input rows
 * to bf16 too and sums the exact products in fp32 (vdpbf16ps where the CPU
 * has it; kernels/gemm.h); norms, biases, RoPE, attention, the K/V cache and
 * the residual stream stay fp32. The copy is taken now: call again after the
 * weights change (the fp32 path reads them on every call). on == 0 returns
 * to fp32 (the copy's memory is kept for the next call and freed with the
 * cache). IAPO_ERR_NOMEM when the copy cannot be allocated.
 *
 * Agreement with fp32 (the tolerance sampling relies on: iapo_generate
 * samples in bf16 by default), measured by tests/test_decode_bf16.c:
 *  - tiny models of three families: logits within 2% of the logits' range,
 *    and a greedy token differs from fp32's only where fp32's top-two margin
 *    is under twice the largest logit difference;
 *  - a model with Qwen2-0.5B's layer shapes (C 896, 14/2 heads, F 4864,
 *    4 layers, V 4096) whose logits are peaked like a trained model's
 *    (random weights scaled so the next-token distributions have entropy
 *    1.9 nats on average): over 8 prompts x 24 greedy steps fed fp32's
 *    tokens, >= 95% of positions take fp32's greedy token (measured 97%),
 *    and the log-prob of fp32's token and the entropy of each distribution
 *    under bf16 are within 0.3 nats of fp32's, 0.06 on average (measured
 *    0.2 and 0.04). */
iapo_status iapo_kv_use_bf16(iapo_kv *kv, int on);
/* on = IAPO_KV_BF16_KEEP: multiply by the copy this cache took last, without
 * taking another (one is taken when there is none). The caller vouches that
 * the weights have not changed since that copy was taken (e.g. the batches
 * of one evaluation; at qwen0.5b a copy costs 0.1-0.3 s). */
#define IAPO_KV_BF16_KEEP 2
/* Whether forwards of this cache multiply by the bf16 copy now. */
int iapo_kv_bf16(const iapo_kv *kv);
/* Whether every one of the n slots holds K/V computed with this cache's
 * current bf16 copy alone (since its last reset). A caller that knows the
 * slots were computed with the weights as they are now (the IAPO pass over
 * a bf16 rollout's cache) learns from it that the copy is current, so
 * IAPO_KV_BF16_KEEP is safe. */
int iapo_kv_bf16_made(const iapo_kv *kv, const int *slots, int n);
/* How many bf16 copies this cache has taken (conversions of the weights). */
int iapo_kv_bf16_snapshots(const iapo_kv *kv);

/* With on != 0: packs every weight matrix a forward multiplies by (the fp32
 * weights, or the bf16 copy while that is on) into the GEMM's panels now
 * (kernels/gemm.h, iapo_gemm_wpack), and products of many rows read those
 * instead of packing the weights again on every call (decoding's few rows
 * never pack). Results are bit-identical. The packs are of the weights as
 * they are now: call again after they change (the next call repacks in
 * place); a new bf16 copy, the other precision or on == 0 stops their use
 * (the memory, one set per precision, is kept for the next call and freed
 * with the cache). *bytes (may be NULL): the packs' size, about one more copy
 * of the matrices. IAPO_ERR_NOMEM when they cannot be allocated (then none
 * are used). on == 2: as 1, and products of at most 16 rows (decoding steps)
 * read the packs too (iapo_gemm_wpack_set_direct; bf16 packs only on CPUs
 * with AVX512_BF16): the weights stream as one sequence of panels, qwen0.5b's
 * decoding of 8 rows +23% in fp32, +17-30% in bf16, of 16 rows +57% in both
 * (one process, host contended), but those rows' logits differ in rounding
 * from on = 0 or 1 (not bit-identical; rows of larger products are as with
 * 1). Each layer's gate and up are one pair of packs (their panels
 * alternating, iapo_gemm_wpack_create_pair), so that with on == 2 those rows
 * read both as one stream with the SwiGLU fused (iapo_sgemm_swiglu_pair: the
 * same bits as two products; qwen0.5b's 8-row decode step +8% in bf16, +5-9%
 * in fp32, in one process alternating step by step). A repack in place after
 * a new bf16 copy took 0.1 s at qwen0.5b, the first packing 7 s (the first
 * touch of 1 GB of fresh memory on this VM). */
iapo_status iapo_kv_pack_weights(iapo_kv *kv, int on, size_t *bytes);
/* Puts the packs of the current precision that iapo_kv_pack_weights last
 * made or updated back in use as `on` (1 or 2) would, without repacking
 * (a repack in place reads and writes about two copies of the matrices:
 * 0.1 s at qwen0.5b). The caller vouches that the fp32 weights have not
 * changed since they were packed (e.g. the rollout batches of one training
 * step); bf16 packs are used only while the bf16 copy is the snapshot they
 * were packed from. Returns 1 when it put them in use; else 0 (on == 0, no
 * complete set of packs of this precision, or a newer bf16 snapshot), and
 * nothing changes. */
int iapo_kv_pack_keep(iapo_kv *kv, int on);
/* Puts the bf16 packs that iapo_kv_pack_weights last made or updated back
 * in use, as on == 1 would (products of many rows read them; few-row
 * products read the rows), without repacking: only while the bf16 copy is on
 * and is the snapshot they were packed from (the IAPO pass over a bf16
 * rollout's cache, which packed them for its decoding and closed them).
 * Returns 1 when it put them in use; else 0, and nothing changes (packs
 * already in use are left so; no bf16 packs; the copy is off; or it is a
 * newer snapshot than theirs, whose products would then read stale panels). */
int iapo_kv_pack_reopen(iapo_kv *kv);

/* With on != 0: the attention of later forwards multiplies in bf16 (an
 * APPROXIMATION, for the IAPO pass in bf16; decoding never turns it on): q
 * and a bf16 copy of the K/V cache (kept beside the fp32 cache, which every
 * store still writes) by vdpbf16ps, the softmax in fp32, its weights rounded
 * to bf16 for P.V, every sum in fp32. Turning it on converts the K/V that
 * each of the n slots given holds (every position stored since its reset);
 * while on, every K/V store writes both copies, so a row may attend to
 * those slots and to keys stored since, never to keys of other slots stored
 * before. on == 0: fp32 attention again (the copy, half the cache's bytes,
 * is kept for the next call and freed with the cache). Without AVX512_BF16
 * at compile time, or with a head dim that is not a multiple of 16, it
 * stays off (fp32 attention; iapo_kv_attn_bf16_on says which). The error
 * bound the IAPO pass relies on: tests/test_info_bf16.c. IAPO_ERR_NOMEM when
 * the copy cannot be allocated, IAPO_ERR_ARG for a bad slot (then it is off). */
iapo_status iapo_kv_attn_bf16(iapo_kv *kv, int on, const int *slots, int n);
int iapo_kv_attn_bf16_on(const iapo_kv *kv);
/* Whether the bf16 attention, when on, multiplies by fp32 FMAs on the same
 * bf16 values instead of vdpbf16ps: where the packed products do
 * (iapo_sgemm_bf16_dot's verdict at turn-on: vdpbf16ps slower than fp32
 * FMAs), for head dims that are multiples of 64 up to 128. The same sums in
 * the same order as Intel defines vdpbf16ps (two FMAs a lane, the odd
 * element's product first), so on such a CPU the same bits (AMX aside:
 * iapo_kv_amx). */
int iapo_kv_attn_bf16_fma(const iapo_kv *kv);
/* Where the build targets AMX (AMX-BF16) and the kernel grants the process
 * its tile state (iapo_kv_amx_usable: asks once), that fp32-FMA attention
 * runs its scores (blocks of 16 query vectors) and its whole tiles' P.V as
 * tdpbf16ps products of the same bf16 operands: fp32 sums, not rounded as
 * the FMA chains are (E moves by ~1e-4). iapo_kv_amx(0) keeps it off (a
 * test hook, process-wide; 1 again allows it); returns the previous one. */
int iapo_kv_amx(int on);
int iapo_kv_amx_usable(void);

/* Runs R rows through the model. Within a layer every row's K/V is stored
 * before any row attends, and chunks run one after another, so a row may read
 * keys written by itself, by earlier rows of the call, or by earlier calls —
 * never by later rows. Slot lengths (iapo_kv_len) are not changed. logits:
 * (max out + 1, V), may be NULL when no row asks for logits. Bad indices are
 * IAPO_ERR_ARG before anything is computed. */
iapo_status iapo_kv_forward_rows(iapo_kv *kv, const iapo_kv_row *rows, int R, float *logits);

/* iapo_kv_forward_rows(kv, rows, R, logits) with rows [0, split) and
 * [split, R) side by side, each on one thread of the pool, when it has two
 * (exactly: with more, the whole chunk runs on all of them) and the halves
 * are independent: neither writes a slot that the other
 * writes or reads keys of. Otherwise (or when the second half's scratch,
 * about what iapo_kv_new allocates besides the cache, cannot be had) one
 * after the other. Every row's results are those of iapo_kv_forward_rows:
 * a row's arithmetic does not depend on the rows beside it. */
iapo_status iapo_kv_forward_rows_split(iapo_kv *kv, const iapo_kv_row *rows, int R, int split, float *logits);

/* Test hook (not thread-safe; set it between calls): on != 0 (the default)
 * lets a forward over few rows read layer l's gate and up packs (kept as
 * one pair, iapo_gemm_wpack_create_pair) as one stream with the SwiGLU
 * fused (iapo_sgemm_swiglu_pair); 0: two products and a SwiGLU pass. The
 * bits are the same. Returns the previous setting. */
int iapo_kv_pair_swiglu(int on);

/* How many iapo_kv_forward_rows_split calls on kv ran as two halves. */
long iapo_kv_splits(const iapo_kv *kv);

/* Keys per attention tile: a row's attention sums its keys in the order
 * their offsets within tiles of this many entries of the slot give, so
 * rows whose second span moves by a multiple of it keep their bits. */
#define IAPO_KV_KEY_TILE 64

/* Rows each half of iapo_kv_forward_rows_split needs (and logits rows, where
 * it asks for any) to run as two halves; fewer and the call runs as one
 * piece. The information pass sizes its chunks by it. */
#define IAPO_KV_HALF_MIN_ROWS 32

#endif
