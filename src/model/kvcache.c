/*
 * kvcache.c — the cached inference forward (see kvcache.h for the contract).
 *
 * Layout: the V cache is (L, S, NKV, Tpad, HD): for one layer, slot and kv
 * head the values are contiguous in position; the K cache holds the same
 * keys in tiles of KT positions, each stored transposed (HD, KT), so that a
 * tile's scores are lanes of FMAs without horizontal sums (Tpad: Tmax
 * rounded up to whole tiles). Scratch activations are sized for Rmax rows
 * (one chunk) and the vocabulary projection for OUTG rows at a time; both
 * are allocated in iapo_kv_new.
 *
 * A chunk of R rows runs the same layer wiring as the training forward
 * (transformer.c): RMSNorm, q/k/v projections (+ bias), per-head q/k RMSNorm
 * (Qwen3), RoPE at each row's position, K/V stored into their slots, cached
 * attention, output projection added to the residual, RMSNorm, SwiGLU MLP
 * added to the residual; then the final norm and lm_head for rows that want
 * logits. Attention is an online softmax over tiles of keys at absolute
 * positions, parallel over (block of rows, kv head); each (row, head) is
 * summed in a fixed order, so results do not depend on the thread count or
 * on which rows share a call. A block is a run of rows whose first span is
 * in the same slot (a prefill's rows, the postfix rows of many consecutive
 * IAPO positions): their query vectors are scored against each key tile
 * together, a small matrix product with the keys in registers shared by up
 * to 6 vectors, each vector masked to its own keys (see attend_span). With
 * AVX-512 and a head dim that is a multiple of 16 the scores, the softmax's
 * max, exponentials and sum and P.V run 16 lanes at a time (P.V with two
 * partial sums per 16 columns, so small head dims are not bound by the FMA
 * latency, and each value row loaded once for several vectors). The bf16
 * IAPO pass turns on bf16 attention (iapo_kv_attn_bf16): the same tiles
 * over a bf16 copy of the cache in vdpbf16ps's pair layouts, written beside
 * the fp32 cache by every store while on (by fp32 FMAs on the same bf16
 * values where vdpbf16ps is the slower: attend_span_bw); decoding always
 * attends in fp32.
 */
#include "model/kvcache.h"

#include <assert.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "core/mem.h"
#include "core/status.h"
#include "kernels/kernels.h"
#include "kernels/pool.h"

#define HD_MAX 512   /* head dims in use are 64..256; HD_MAX <= VB_FLOATS */
#define KT IAPO_KV_KEY_TILE /* keys per attention tile; the K cache stores each tile as (HD, KT) */
#define RMAX_CAP 512 /* rows per chunk: enough for GEMM efficiency, bounded scratch */
#define OUTG_CAP 64  /* rows per vocabulary GEMM */
#define UHASH (4 * RMAX_CAP) /* share_rows' table: a power of two, at least twice Rmax */
#define SHARE_MIN_M 32 /* rows of the shared q/k/v product at least (see share_rows) */
#define STORE_PAR_ROWS 64 /* store_kv runs on the pool from this many rows of a chunk */
#define STORE_PAR_SLOTS 16 /* and at most this many slots */
#define ROPE_TAB_MAX 8192 /* positions in kv->ropet at most (later ones are computed per row) */
#define SLOT_EMPTY (-2) /* kv->made: nothing computed since the slot was made or reset */
#define SLOT_MIXED (-1) /* computed with more than one set of weights */

struct iapo_kv {
	const iapo_weights *w;
	int S, Tmax, Tpad, Rmax, OUTG; /* Tpad: Tmax rounded up to whole tiles of KT */
	int *len;        /* (S) */
	float *kc;       /* (L, S, NKV, Tpad / KT, HD, KT): each tile of keys transposed */
	float *vc;       /* (L, S, NKV, Tpad, HD) */
	float *inv_freq; /* (HD/2) */
	float *cs;       /* (Rmax, HD) RoPE cos | sin of the chunk's rows */
	float *ropet;    /* (ntab, HD) the same for positions [0, ntab), computed once (the IAPO
			  * pass meets every position K times, and sincosf is ~0.6% of it) */
	int ntab;
	/* chunk scratch */
	int *tok, *pos;  /* (Rmax) */
	float *x;        /* (Rmax, C) residual stream */
	float *h;        /* (Rmax, C) normed input of a sublayer */
	float *q, *qn;   /* (Rmax, NH*HD) */
	float *k, *kn;   /* (Rmax, NKV*HD) */
	float *v;        /* (Rmax, NKV*HD) */
	float *att;      /* (Rmax, NH*HD) */
	float *gate, *up, *act; /* (Rmax, F) */
	float *hout;     /* (OUTG, C) */
	float *lbuf;     /* (OUTG, V) */
	float **dst; /* (OUTG) where each projected row's logits go */
	iapo_kv_row *rows; /* (Rmax) rows built by iapo_kv_forward */
	iapo_kv_row *lrows; /* (Rmax) the rows that go past the last layer's K/V */
	int *atask;       /* (Rmax * NH, 3) attention tasks */
	int *uidx;        /* (Rmax) layer 0: the front row of share_rows' product each row copies */
	int *uhash;       /* (UHASH) token -> first row, open addressing, for share_rows */
	/* bf16 snapshot of the weight matrices (iapo_kv_use_bf16), or NULL:
	 * wh_t[which] is tensor which's copy (NULL for norms, biases, and the
	 * embedding of an untied model, which is only looked up) */
	uint16_t *wh;
	const uint16_t *wh_t[IAPO_NUM_PARAMS];
	int bf16_on; /* multiply by wh (kept allocated while off, for the next snapshot) */
	int snap;    /* number of the snapshot in wh (1, 2, ...; 0: none taken) */
	int *made;   /* (S) what each slot's K/V were computed with: SLOT_EMPTY, SLOT_MIXED, 0 (fp32) or a
		      * snapshot number */
	/* weight panels packed ahead (iapo_kv_pack_weights), or NULL: wp[b16][NPACK l + i]
	 * for layer l's matrix PACKED[i], wp[b16][NPACK L] the lm_head; b16 = 1: packed
	 * from the bf16 copy (both kept, for callers that alternate precisions);
	 * a layer's gate and up are the two halves of one pair (one allocation,
	 * their panels alternating: decoding reads them as one stream) */
	iapo_gemm_wpack **wp[2];
	int wp_on;   /* 1 + b16: products read wp[b16] while bf16_on == b16; 0: none */
	int wp_snap; /* the bf16 snapshot (snap) wp[1] was last packed from; 0: none */
	int wp_full[2]; /* wp[b16] holds every pack, all made or updated by one call (iapo_kv_pack_keep) */
	/* bf16 attention (iapo_kv_attn_bf16): a bf16 copy of kc and vc in the
	 * layouts vdpbf16ps multiplies, allocated on first use; kb's tiles are
	 * (HD/2, KT, 2): keys t of dims 2i and 2i+1 side by side; vb is
	 * (Tpad/2, HD, 2): rows 2j and 2j+1 of each dim side by side */
	uint16_t *kb, *vb;
	int ab_on;   /* attention reads kb/vb, and every K/V store writes them too */
	int ab_fma;  /* and multiplies them by fp32 FMAs (attend_span_bw), not vdpbf16ps */
	int *hw;     /* (S) keys [0, hw) of the slot written since its reset (what turning on converts) */
	int *sidx, *slist; /* (S), (Rmax): store_kv's distinct slots (sidx -1 between calls) */
	/* iapo_kv_forward_rows_split's second half: a copy of this struct with
	 * its own chunk scratch (the fields of SCRATCH_FIELDS), made on first
	 * use; NULL when none */
	struct iapo_kv *twin;
	long nsplit; /* calls that ran as two halves (iapo_kv_splits) */
};

/* The fields a chunk writes (scratch of one run_chunk at a time); the rest
 * (the caches, weights, packs, per-slot state) a twin shares. */
#define SCRATCH_FIELDS(X)                                                                                  \
	X(sidx) X(slist) X(tok) X(pos) X(dst) X(rows) X(lrows) X(atask) X(uidx) X(uhash) X(cs) X(x) X(h) X(q) \
	X(qn) X(k) X(kn) X(v) X(att) X(gate) X(up) X(act) X(hout) X(lbuf)

#define NPACK 7
static const int PACKED[NPACK] = {IAPO_P_WQ, IAPO_P_WK, IAPO_P_WV, IAPO_P_WO, IAPO_P_WGATE, IAPO_P_WUP, IAPO_P_WDOWN};

/* The matrices a forward multiplies by (their bf16 copies when enabled). */
static int bf16_tensor(const iapo_config *c, int which)
{
	switch (which) {
	case IAPO_P_WQ: case IAPO_P_WK: case IAPO_P_WV: case IAPO_P_WO:
	case IAPO_P_WGATE: case IAPO_P_WUP: case IAPO_P_WDOWN:
		return 1;
	case IAPO_P_EMBED: /* the head when tied */
		return c->tie_embeddings;
	case IAPO_P_LMHEAD:
		return !c->tie_embeddings;
	default:
		return 0;
	}
}

iapo_status iapo_kv_use_bf16(iapo_kv *kv, int on)
{
	const iapo_config *c = &kv->w->cfg;
	if (!on) {
		kv->bf16_on = 0;
		return IAPO_OK;
	}
	if (on == IAPO_KV_BF16_KEEP && kv->snap > 0) {
		kv->bf16_on = 1;
		return IAPO_OK;
	}
	size_t sizes[IAPO_NUM_PARAMS], total = 0;
	iapo_param_sizes(c, sizes);
	for (int t = 0; t < IAPO_NUM_PARAMS; t++)
		if (bf16_tensor(c, t)) total += (sizes[t] + 31) & ~(size_t)31;
	if (!kv->wh) {
		kv->wh = iapo_alloc_aligned(total * sizeof(uint16_t));
		if (!kv->wh)
			return iapo_fail(IAPO_ERR_NOMEM, "kv cache: out of memory: bf16 weights (%zu bytes)",
					 total * sizeof(uint16_t));
	}
	size_t off = 0;
	memset(kv->wh_t, 0, sizeof kv->wh_t);
	for (int t = 0; t < IAPO_NUM_PARAMS; t++) {
		if (!bf16_tensor(c, t)) continue;
		iapo_f32_to_bf16(kv->wh + off, kv->w->p.t[t], sizes[t]);
		kv->wh_t[t] = kv->wh + off;
		off += (sizes[t] + 31) & ~(size_t)31;
	}
	if (c->tie_embeddings) kv->wh_t[IAPO_P_LMHEAD] = kv->wh_t[IAPO_P_EMBED];
	kv->wp_on = 0; /* packs of the last copy are stale now */
	kv->wh_t[IAPO_P_EMBED] = NULL; /* looked up in fp32 */
	kv->bf16_on = 1;
	kv->snap++;
	return IAPO_OK;
}

int iapo_kv_bf16_snapshots(const iapo_kv *kv) { return kv->snap; }

int iapo_kv_bf16_made(const iapo_kv *kv, const int *slots, int n)
{
	if (kv->snap == 0) return 0;
	for (int i = 0; i < n; i++)
		if (slots[i] < 0 || slots[i] >= kv->S || kv->made[slots[i]] != kv->snap) return 0;
	return 1;
}

int iapo_kv_bf16(const iapo_kv *kv) { return kv->bf16_on; }

int iapo_kv_len(const iapo_kv *kv, int b) { return b >= 0 && b < kv->S ? kv->len[b] : 0; }
int iapo_kv_slots(const iapo_kv *kv) { return kv->S; }
int iapo_kv_tmax(const iapo_kv *kv) { return kv->Tmax; }
int iapo_kv_max_rows(const iapo_kv *kv) { return kv->Rmax; }

void iapo_kv_reset(iapo_kv *kv, int b)
{
	if (b >= 0 && b < kv->S) {
		kv->len[b] = 0;
		kv->made[b] = SLOT_EMPTY;
		kv->hw[b] = 0;
	}
}

/* Frees the chunk scratch of kv (SCRATCH_FIELDS). */
static void scratch_free(iapo_kv *kv)
{
	iapo_free(kv->sidx);
	iapo_free(kv->slist);
	iapo_free_aligned(kv->cs);
	iapo_free(kv->tok);
	iapo_free(kv->pos);
	float **bufs[] = {&kv->x, &kv->h, &kv->q, &kv->qn, &kv->k, &kv->kn, &kv->v, &kv->att,
			  &kv->gate, &kv->up, &kv->act, &kv->hout, &kv->lbuf};
	for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) iapo_free_aligned(*bufs[i]);
	iapo_free(kv->dst);
	iapo_free(kv->rows);
	iapo_free(kv->lrows);
	iapo_free(kv->atask);
	iapo_free(kv->uidx);
	iapo_free(kv->uhash);
}

void iapo_kv_free(iapo_kv *kv)
{
	if (!kv) return;
	iapo_free(kv->len);
	iapo_free(kv->made);
	iapo_free(kv->hw);
	iapo_free_aligned(kv->kb);
	iapo_free_aligned(kv->vb);
	iapo_free_aligned(kv->kc);
	iapo_free_aligned(kv->vc);
	iapo_free(kv->inv_freq);
	iapo_free_aligned(kv->ropet);
	scratch_free(kv);
	if (kv->twin) scratch_free(kv->twin);
	iapo_free(kv->twin);
	iapo_free_aligned(kv->wh);
	for (int b = 0; b < 2; b++) {
		if (kv->wp[b])
			for (int i = 0; i <= NPACK * kv->w->cfg.L; i++) iapo_gemm_wpack_free(kv->wp[b][i]);
		iapo_free(kv->wp[b]);
	}
	iapo_free(kv);
}

/* iapo_kv_pair_swiglu's switch (1: gate and up read as one pair). */
static int pair_swiglu = 1;

int iapo_kv_pair_swiglu(int on)
{
	const int was = pair_swiglu;
	pair_swiglu = on != 0;
	return was;
}

/* Where layer l's matrix `which` (one of PACKED) sits in a pack table. */
static int pack_slot(int l, int which)
{
	int i = 0;
	while (i < NPACK && PACKED[i] != which) i++;
	assert(i < NPACK);
	return NPACK * l + i;
}

iapo_status iapo_kv_pack_weights(iapo_kv *kv, int on, size_t *bytes)
{
	const iapo_config *c = &kv->w->cfg;
	const int L = c->L, n = NPACK * L + 1;
	if (bytes) *bytes = 0;
	kv->wp_on = 0;
	if (!on) return IAPO_OK;
	const int b16 = kv->bf16_on;
	if (b16) kv->wp_snap = 0; /* until every pack is of this snapshot */
	kv->wp_full[b16] = 0;
	if (!kv->wp[b16] && !(kv->wp[b16] = iapo_calloc((size_t)n, sizeof *kv->wp[b16])))
		return iapo_fail(IAPO_ERR_NOMEM, "kv cache: out of memory: weight pack table");
	iapo_gemm_wpack **wp = kv->wp[b16];
	size_t total = 0;
	for (int i = 0; i < n; i++) {
		const int which = i < NPACK * L ? PACKED[i % NPACK] : IAPO_P_LMHEAD, l = i < NPACK * L ? i / NPACK : 0;
		if (wp[i]) {
			iapo_gemm_wpack_update(wp[i]);
		} else if (which == IAPO_P_WGATE && PACKED[(i + 1) % NPACK] == IAPO_P_WUP) {
			/* gate and up as one pair: decoding reads both as one stream
			 * (iapo_sgemm_swiglu_pair); wp[i + 1] is up's half */
			int64_t NK[2];
			iapo_param_shape(c, which, NK);
			const size_t off = (size_t)l * iapo_param_layer_size(c, which);
			const float *W[2] = {b16 ? NULL : kv->w->p.t[IAPO_P_WGATE] + off,
					     b16 ? NULL : kv->w->p.t[IAPO_P_WUP] + off};
			const uint16_t *Wh[2] = {b16 ? kv->wh_t[IAPO_P_WGATE] + off : NULL,
						 b16 ? kv->wh_t[IAPO_P_WUP] + off : NULL};
			iapo_status st = iapo_gemm_wpack_create_pair(wp + i, (int)NK[0], (int)NK[1], W, Wh, (int)NK[1]);
			if (st != IAPO_OK) return iapo_fail_prefix(st, "kv cache: weight packs");
		} else {
			int64_t NK[2]; /* (N, K) as x W^T multiplies by it; a tied lm_head has the embedding's */
			iapo_param_shape(c, which == IAPO_P_LMHEAD ? IAPO_P_EMBED : which, NK);
			const int N = (int)NK[0], K = (int)NK[1];
			const size_t off = (size_t)l * iapo_param_layer_size(c, which);
			const float *W = b16 ? NULL : kv->w->p.t[which] + off;
			const uint16_t *Wh = b16 ? kv->wh_t[which] + off : NULL;
			iapo_status st = iapo_gemm_wpack_create(&wp[i], N, K, W, Wh, K);
			if (st != IAPO_OK) return iapo_fail_prefix(st, "kv cache: weight packs");
		}
		iapo_gemm_wpack_set_direct(wp[i], on == 2); /* decoding's few rows read them too */
		total += iapo_gemm_wpack_bytes(wp[i]);
	}
	if (bytes) *bytes = total;
	kv->wp_on = 1 + b16;
	kv->wp_full[b16] = 1;
	if (b16) kv->wp_snap = kv->snap;
	return IAPO_OK;
}

int iapo_kv_pack_keep(iapo_kv *kv, int on)
{
	const int b16 = kv->bf16_on;
	if (!on || !kv->wp[b16] || !kv->wp_full[b16] || (b16 && kv->wp_snap != kv->snap)) return 0;
	const int n = NPACK * kv->w->cfg.L + 1;
	for (int i = 0; i < n; i++) iapo_gemm_wpack_set_direct(kv->wp[b16][i], on == 2);
	kv->wp_on = 1 + b16;
	return 1;
}

int iapo_kv_pack_reopen(iapo_kv *kv)
{
	if (kv->wp_on || !kv->bf16_on || !kv->wp[1] || kv->wp_snap != kv->snap) return 0;
	const int n = NPACK * kv->w->cfg.L + 1;
	for (int i = 0; i < n; i++) iapo_gemm_wpack_set_direct(kv->wp[1][i], 0);
	kv->wp_on = 2;
	return 1;
}

static iapo_status alloc_f(float **p, size_t n, const char *what)
{
	*p = iapo_alloc_aligned(n * sizeof(float));
	if (!*p) return iapo_fail(IAPO_ERR_NOMEM, "kv cache: out of memory: %s (%zu bytes)", what, n * sizeof(float));
	return IAPO_OK;
}

/* The chunk scratch of kv (SCRATCH_FIELDS) for its S, Rmax and OUTG. */
static iapo_status scratch_new(iapo_kv *kv)
{
	const iapo_config *c = &kv->w->cfg;
	const size_t R = (size_t)kv->Rmax, G = (size_t)kv->OUTG, C = (size_t)c->C, Q = (size_t)c->NH * c->HD;
	const size_t KV = (size_t)c->NKV * c->HD, F = (size_t)c->F, V = (size_t)c->V;
	kv->sidx = iapo_malloc(sizeof(int) * (size_t)kv->S);
	kv->slist = iapo_malloc(sizeof(int) * R);
	kv->tok = iapo_malloc(sizeof(int) * R);
	kv->pos = iapo_malloc(sizeof(int) * R);
	kv->dst = iapo_malloc(sizeof(float *) * G);
	kv->rows = iapo_malloc(sizeof(iapo_kv_row) * R);
	kv->lrows = iapo_malloc(sizeof(iapo_kv_row) * R);
	kv->atask = iapo_malloc(sizeof(int) * 3 * R * (size_t)c->NH);
	kv->uidx = iapo_malloc(sizeof(int) * R);
	kv->uhash = iapo_malloc(sizeof(int) * UHASH);
	if (!kv->sidx || !kv->slist || !kv->tok || !kv->pos || !kv->dst || !kv->rows || !kv->lrows || !kv->atask ||
	    !kv->uidx || !kv->uhash)
		return iapo_fail(IAPO_ERR_NOMEM, "kv cache: out of memory");
	for (int b = 0; b < kv->S; b++) kv->sidx[b] = -1;
	IAPO_TRY(alloc_f(&kv->cs, R * (size_t)c->HD, "rope table"));
	IAPO_TRY(alloc_f(&kv->x, R * C, "activations"));
	IAPO_TRY(alloc_f(&kv->h, R * C, "activations"));
	IAPO_TRY(alloc_f(&kv->q, R * Q, "activations"));
	IAPO_TRY(alloc_f(&kv->qn, R * Q, "activations"));
	IAPO_TRY(alloc_f(&kv->k, R * KV, "activations"));
	IAPO_TRY(alloc_f(&kv->kn, R * KV, "activations"));
	IAPO_TRY(alloc_f(&kv->v, R * KV, "activations"));
	IAPO_TRY(alloc_f(&kv->att, R * Q, "activations"));
	IAPO_TRY(alloc_f(&kv->gate, R * F, "activations"));
	IAPO_TRY(alloc_f(&kv->up, R * F, "activations"));
	IAPO_TRY(alloc_f(&kv->act, R * F, "activations"));
	IAPO_TRY(alloc_f(&kv->hout, G * C, "activations"));
	return alloc_f(&kv->lbuf, G * V, "logits");
}

iapo_status iapo_kv_new(const iapo_weights *w, int B, int Tmax, iapo_kv **out)
{
	*out = NULL;
	const iapo_config *c = &w->cfg;
	if (B <= 0 || Tmax <= 0)
		return iapo_fail(IAPO_ERR_ARG, "kv cache: sequences and length: expected > 0, found %d and %d", B, Tmax);
	if (c->HD > HD_MAX || c->HD % 2)
		return iapo_fail(IAPO_ERR_UNSUPPORTED, "kv cache: head_dim: expected an even number <= %d, found %d",
				 HD_MAX, c->HD);
	size_t L = (size_t)c->L, KV = (size_t)c->NKV * c->HD;
	iapo_kv *kv = iapo_calloc(1, sizeof *kv);
	if (!kv) return iapo_fail(IAPO_ERR_NOMEM, "kv cache: out of memory");
	kv->w = w;
	kv->S = B;
	kv->Tmax = Tmax;
	kv->Tpad = (Tmax + KT - 1) / KT * KT;
	long rows = (long)B * Tmax;
	kv->Rmax = rows < RMAX_CAP ? (int)rows : RMAX_CAP;
	kv->OUTG = kv->Rmax < OUTG_CAP ? kv->Rmax : OUTG_CAP;
	size_t cache = L * (size_t)B * (size_t)kv->Tpad * KV;
	iapo_status st = IAPO_OK;
	kv->len = iapo_calloc((size_t)B, sizeof(int));
	kv->made = iapo_malloc(sizeof(int) * (size_t)B);
	kv->hw = iapo_calloc((size_t)B, sizeof(int));
	kv->inv_freq = iapo_malloc(sizeof(float) * (size_t)(c->HD / 2));
	if (!kv->len || !kv->made || !kv->hw || !kv->inv_freq) {
		st = iapo_fail(IAPO_ERR_NOMEM, "kv cache: out of memory");
		goto fail;
	}
	IAPO_CHECK(st, scratch_new(kv));
	IAPO_CHECK(st, alloc_f(&kv->kc, cache, "key cache"));
	IAPO_CHECK(st, alloc_f(&kv->vc, cache, "value cache"));
	/* positions past Tmax too: the IAPO pass's postfix rows run to Tmax + K + N - 2 */
	kv->ntab = Tmax + 64 < ROPE_TAB_MAX ? Tmax + 64 : ROPE_TAB_MAX;
	IAPO_CHECK(st, alloc_f(&kv->ropet, (size_t)kv->ntab * c->HD, "rope table"));
	iapo_rope_inv_freq(c, kv->inv_freq);
	for (int t0 = 0; t0 < kv->ntab; t0 += kv->Rmax) {
		const int n = kv->ntab - t0 < kv->Rmax ? kv->ntab - t0 : kv->Rmax;
		for (int i = 0; i < n; i++) kv->tok[i] = t0 + i;
		iapo_rope_table(kv->ropet + (size_t)t0 * c->HD, kv->tok, n, c->HD, kv->inv_freq);
	}
	for (int b = 0; b < B; b++) kv->made[b] = SLOT_EMPTY;
	*out = kv;
	return IAPO_OK;
fail:
	iapo_kv_free(kv);
	return st;
}

/* Base of the keys (tiles of (HD, KT)) or values ((Tpad, HD)) of one layer,
 * slot and kv head. */
static inline float *cache_at(const iapo_kv *kv, float *cache, int l, int seq, int g)
{
	const iapo_config *c = &kv->w->cfg;
	return cache + ((((size_t)l * kv->S + seq) * c->NKV + g) * kv->Tpad) * c->HD;
}

/* exp(x) for x <= 0 (scores minus their running max), Cephes' polynomial
 * (about 1.5 ulp) written without branches so a tile's exponentials
 * vectorise; libm's expf does not under our flags. n = round(x / ln2) comes
 * from adding 1.5 * 2^23 (its bits then hold n), not from floorf and a
 * float-to-int conversion, which GCC does not vectorise while floating-point
 * traps are honoured (its default). Underflows to ~1e-38, not 0, which is
 * negligible next to the tile's largest term (exp(0) = 1). */
typedef union {
	int32_t i;
	float f;
} f32_bits;

static inline float exp_nonpos(float x)
{
	x = x < -87.0f ? -87.0f : x;
	f32_bits t = {.f = x * 1.44269504088896341f + 12582912.0f};
	const float fx = t.f - 12582912.0f;
	const float r = x - fx * 0.693359375f + fx * 2.12194440e-4f;
	float y = 1.9875691500e-4f;
	y = y * r + 1.3981999507e-3f;
	y = y * r + 8.3334519073e-3f;
	y = y * r + 4.1665795894e-2f;
	y = y * r + 1.6666665459e-1f;
	y = y * r + 5.0000001201e-1f;
	y = y * r * r + r + 1.0f;
	/* 2^n in unsigned arithmetic: a NaN x (the clamp passes it through)
	 * would make a signed left shift overflow, as cpu.c's exp_approx did */
	f32_bits p = {.i = (int32_t)(((uint32_t)t.i - 0x4B400000u + 127u) << 23)};
	return y * p.f;
}

/* Attention over the cache. A task attends a block of query vectors that
 * share one kv head: the query heads of that kv head for a run of rows whose
 * first span is in the same slot (consecutive positions of one sequence: a
 * prefill's rows, or the postfix rows of many IAPO positions), each vector
 * over its own key range. Keys are visited in tiles of KT at absolute
 * positions of the slot (multiples of KT), and for each tile every vector
 * whose range meets it takes, in this order: its scores for its lanes of the
 * tile, the tile's max over them (rescaling its sum and accumulator when it
 * grows), their exponentials and sum, and P.V. That sequence of operations
 * depends only on the vector and its range, never on the block's other
 * vectors, which only share the loads of each key and value: results do not
 * depend on the grouping or the thread count. The K cache holds each tile
 * transposed, (HD, KT): a score is one chain of HD FMAs down a lane (no
 * horizontal sum), and a row of the tile's keys in registers serves SB query
 * vectors at once. */
#define VB_FLOATS 4096 /* accumulator floats of one task (on the stack) */
#define VB_MAX 64      /* query vectors of one task */

typedef struct {
	const float *q; /* (HD) */
	int lo, hi;     /* keys [lo, hi) of the span's slot */
	float m, l;     /* running max and sum */
	float *acc;     /* (HD) */
	float *p;       /* (KT) the current tile's scores, then weights */
	const uint32_t *qh; /* bf16 attention: q as HD / 2 pairs of bf16 */
	const float *qf; /* bf16 attention by fp32 FMAs: q rounded to bf16, as floats */
	uint32_t *ph;   /* bf16 attention: (KT / 2) the tile's weights as pairs of bf16 */
	float *ls;      /* bf16 attention: (16) the running sum by lane (l unused) */
} qvec;

/* The union [*lo, *hi) of the vectors' key spans (empty: *lo > *hi). */
static void span_union(const qvec *v, int nv, int *lo, int *hi)
{
	*lo = INT_MAX, *hi = 0;
	for (int i = 0; i < nv; i++)
		if (v[i].hi > v[i].lo) {
			*lo = v[i].lo < *lo ? v[i].lo : *lo;
			*hi = v[i].hi > *hi ? v[i].hi : *hi;
		}
}

/* The vectors with keys in the tile at t0, into act; [*ua, *ub) the union
 * of their keys there, as tile offsets. Returns how many. */
static int tile_active(qvec *v, int nv, int t0, qvec **act, int *ua, int *ub)
{
	int na = 0;
	*ua = KT, *ub = 0;
	for (int i = 0; i < nv; i++) {
		const int a = v[i].lo - t0 > 0 ? v[i].lo - t0 : 0, b = v[i].hi - t0 < KT ? v[i].hi - t0 : KT;
		if (a >= b) continue;
		act[na++] = &v[i];
		*ua = a < *ua ? a : *ua;
		*ub = b > *ub ? b : *ub;
	}
	return na;
}

static int amx_allow = 1; /* iapo_kv_amx's test hook */

#if defined(__AVX512F__)
#define SB 6 /* query vectors per register block of scores: 6 x 4 accumulators */

/* exp_nonpos on 16 lanes (the same polynomial and exponent trick). */
static inline __m512 exp_nonpos16(__m512 x)
{
	const __m512 big = _mm512_set1_ps(12582912.0f);
	x = _mm512_max_ps(x, _mm512_set1_ps(-87.0f));
	const __m512 t = _mm512_fmadd_ps(x, _mm512_set1_ps(1.44269504088896341f), big);
	const __m512 fx = _mm512_sub_ps(t, big);
	const __m512 r = _mm512_fmadd_ps(fx, _mm512_set1_ps(2.12194440e-4f),
					 _mm512_fnmadd_ps(fx, _mm512_set1_ps(0.693359375f), x));
	__m512 y = _mm512_set1_ps(1.9875691500e-4f);
	y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.3981999507e-3f));
	y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(8.3334519073e-3f));
	y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(4.1665795894e-2f));
	y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.6666665459e-1f));
	y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(5.0000001201e-1f));
	y = _mm512_add_ps(_mm512_fmadd_ps(_mm512_mul_ps(y, r), r, r), _mm512_set1_ps(1.0f));
	const __m512i e = _mm512_slli_epi32(
		_mm512_add_epi32(_mm512_sub_epi32(_mm512_castps_si512(t), _mm512_set1_epi32(0x4B400000)),
				 _mm512_set1_epi32(127)),
		23);
	return _mm512_mul_ps(y, _mm512_castsi512_ps(e));
}

/* Step d of a score block's depth loop: a 1/HD share (pvn lines) of the pvl
 * lines of values P.V reads and row d of the next tile's keys (pkn lines,
 * rows 4 KT bytes apart; none when pk is NULL), fetched ahead of use: the
 * hardware prefetcher of this VM barely follows short streams, and a
 * decoding step reads every sequence's cache from memory (without it
 * decoding 64 sequences of the demo's model took 17% longer). */
static inline __attribute__((always_inline)) void fetch_ahead(const char *pv, int pvl, int pvn, const char *pk,
							     int pkn, int d)
{
	for (int x = pvn * d; x < pvn * d + pvn && x < pvl; x++) _mm_prefetch(pv + 64 * x, _MM_HINT_T0);
	if (pk)
		for (int x = 0; x < pkn; x++) _mm_prefetch(pk + (size_t)KT * 4 * d + 64 * x, _MM_HINT_T0);
}

/* v[i]->p[16 g0 .. 16 (g0 + NG)) = scale * q_i . keys of those lanes, for NB
 * vectors, each lane a chain over d = 0..HD-1. Kt: the tile (HD, KT). pv
 * (or NULL): the values P.V will read, pvl lines fetched along, pvn of them
 * per d; pk (or NULL): the next tile's keys, pkn lines of each of its rows. */
static inline __attribute__((always_inline)) void scores_blk(qvec *const *v, const int NB, const int NG, int g0,
							    const float *Kt, int HD, __m512 vs, const char *pv,
							    int pvl, int pvn, const char *pk, int pkn)
{
	__m512 acc[SB][4];
	const float *q[SB];
	for (int i = 0; i < NB; i++) {
		q[i] = v[i]->q;
		for (int g = 0; g < NG; g++) acc[i][g] = _mm512_setzero_ps();
	}
	const float *kt = Kt + 16 * g0;
	for (int d = 0; d < HD; d++, kt += KT) {
		if (pv) fetch_ahead(pv, pvl, pvn, pk, pkn, d);
		__m512 k[4];
		for (int g = 0; g < NG; g++) {
			k[g] = _mm512_loadu_ps(kt + 16 * g);
			/* keep the keys in registers: GCC otherwise folds the load into
			 * every vector's FMA (NB loads per key row instead of one) */
			__asm__("" : "+v"(k[g]));
		}
		for (int i = 0; i < NB; i++) {
			const __m512 qb = _mm512_set1_ps(q[i][d]);
			for (int g = 0; g < NG; g++) acc[i][g] = _mm512_fmadd_ps(qb, k[g], acc[i][g]);
		}
	}
	for (int i = 0; i < NB; i++)
		for (int g = 0; g < NG; g++) _mm512_storeu_ps(v[i]->p + 16 * (g0 + g), _mm512_mul_ps(acc[i][g], vs));
}

static void scores_any(qvec *const *v, int nb, int g0, int ng, const float *Kt, int HD, float scale, const char *pv,
		       int pvl, const char *pk, int pkn)
{
	const __m512 vs = _mm512_set1_ps(scale);
	const int pvn = (pvl + HD - 1) / HD;
	switch (nb * 8 + ng) {
#define SC(NB, NG) \
	case (NB) * 8 + (NG): scores_blk(v, NB, NG, g0, Kt, HD, vs, pv, pvl, pvn, pk, pkn); break;
#define SC4(NB) SC(NB, 1) SC(NB, 2) SC(NB, 3) SC(NB, 4)
		SC4(1) SC4(2) SC4(3) SC4(4) SC4(5) SC4(6)
#undef SC4
#undef SC
	default: break;
	}
}

/* Lanes 16 g + i of a tile with a <= 16 g + i < b. */
static inline __mmask16 lane_mask(int g, int a, int b)
{
	int x = a - 16 * g, y = b - 16 * g;
	x = x < 0 ? 0 : x > 16 ? 16 : x;
	y = y < 0 ? 0 : y > 16 ? 16 : y;
	return (__mmask16)(((1u << y) - 1) & ~((1u << x) - 1));
}

/* One vector's online softmax step over its lanes [a, b) of the tile (its
 * scores in v->p): the max (rescaling v->l and v->acc when it grows),
 * p = exp(score - max) on those lanes and 0 on the rest of groups [G0, G1)
 * (P.V runs over the block's union of lanes), the sum added to v->l. */
static void softmax_vec(qvec *v, int a, int b, int G0, int G1, int HD)
{
	const int ga = a / 16, gb = (b + 15) / 16;
	const __m512 ninf = _mm512_set1_ps(-INFINITY);
	__m512 vmx = ninf;
	for (int g = ga; g < gb; g++)
		vmx = _mm512_max_ps(vmx, _mm512_mask_mov_ps(ninf, lane_mask(g, a, b), _mm512_loadu_ps(v->p + 16 * g)));
	const float mx = _mm512_reduce_max_ps(vmx);
	if (v->m == -INFINITY) { /* the first tile: nothing to rescale */
		v->m = mx;
	} else if (mx > v->m) {
		const float corr = exp_nonpos(v->m - mx);
		v->l *= corr;
		const __m512 c = _mm512_set1_ps(corr);
		for (int d = 0; d < HD; d += 16) _mm512_storeu_ps(v->acc + d, _mm512_mul_ps(_mm512_loadu_ps(v->acc + d), c));
		v->m = mx;
	}
	const __m512 vm = _mm512_set1_ps(v->m);
	__m512 sum = _mm512_setzero_ps();
	for (int g = ga; g < gb; g++) {
		const __m512 e =
			_mm512_maskz_mov_ps(lane_mask(g, a, b), exp_nonpos16(_mm512_sub_ps(_mm512_loadu_ps(v->p + 16 * g), vm)));
		_mm512_storeu_ps(v->p + 16 * g, e);
		sum = _mm512_add_ps(sum, e);
	}
	for (int g = G0; g < ga; g++) _mm512_storeu_ps(v->p + 16 * g, _mm512_setzero_ps());
	for (int g = gb; g < G1; g++) _mm512_storeu_ps(v->p + 16 * g, _mm512_setzero_ps());
	v->l += _mm512_reduce_add_ps(sum);
}

/* Columns [c0, c0 + 16 NR) of v[i]->acc += sum_t p_i[t] V[t] over tile rows
 * t in [ta, tb), for NB vectors: per vector and 16 columns two partial sums,
 * even and odd t (a single chain per column block left head
 * dims 16-32 bound by the FMA latency), added at the end of the tile. Each
 * row of values is loaded once for the NB vectors. */
static inline __attribute__((always_inline)) void pv_blk(qvec *const *v, const int NB, const int NR, int c0,
							const float *Vt, int ta, int tb, int HD)
{
	__m512 a[SB][4], b[SB][4];
	const float *p[SB];
	for (int i = 0; i < NB; i++) {
		p[i] = v[i]->p;
		for (int c = 0; c < NR; c++) {
			a[i][c] = _mm512_loadu_ps(v[i]->acc + c0 + 16 * c);
			b[i][c] = _mm512_setzero_ps();
		}
	}
	int t = ta;
	if (t & 1) { /* odd rows go to the b sums, whatever row the pass starts at */
		const float *r1 = Vt + (size_t)t * HD + c0;
		for (int i = 0; i < NB; i++) {
			const __m512 w1 = _mm512_set1_ps(p[i][t]);
			for (int c = 0; c < NR; c++) b[i][c] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(r1 + 16 * c), b[i][c]);
		}
		t++;
	}
	for (; t + 1 < tb; t += 2) {
		const float *r0 = Vt + (size_t)t * HD + c0, *r1 = r0 + HD;
		__m512 x0[4], x1[4];
		for (int c = 0; c < NR; c++) {
			x0[c] = _mm512_loadu_ps(r0 + 16 * c);
			x1[c] = _mm512_loadu_ps(r1 + 16 * c);
		}
		for (int i = 0; i < NB; i++) {
			const __m512 w0 = _mm512_set1_ps(p[i][t]), w1 = _mm512_set1_ps(p[i][t + 1]);
			for (int c = 0; c < NR; c++) {
				a[i][c] = _mm512_fmadd_ps(w0, x0[c], a[i][c]);
				b[i][c] = _mm512_fmadd_ps(w1, x1[c], b[i][c]);
			}
		}
	}
	if (t < tb) {
		const float *r0 = Vt + (size_t)t * HD + c0;
		for (int i = 0; i < NB; i++) {
			const __m512 w0 = _mm512_set1_ps(p[i][t]);
			for (int c = 0; c < NR; c++) a[i][c] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(r0 + 16 * c), a[i][c]);
		}
	}
	for (int i = 0; i < NB; i++)
		for (int c = 0; c < NR; c++) _mm512_storeu_ps(v[i]->acc + c0 + 16 * c, _mm512_add_ps(a[i][c], b[i][c]));
}

/* P.V of a tile for na vectors: 64 columns at a time, as many vectors per
 * pass as keep the sums in registers (6, 6, 3, 2 for 1-4 column blocks). */
static void pv_any(qvec *const *v, int na, const float *Vt, int ta, int tb, int HD)
{
	for (int c0 = 0; c0 < HD; c0 += 64) {
		const int nr = (HD - c0) / 16 < 4 ? (HD - c0) / 16 : 4, per = nr == 4 ? 2 : nr == 3 ? 3 : 6;
		for (int i = 0; i < na; i += per) {
			const int nb = na - i < per ? na - i : per;
			switch (nr * 8 + nb) {
#define PV(NR, NB) \
	case (NR) * 8 + (NB): pv_blk(v + i, NB, NR, c0, Vt, ta, tb, HD); break;
				PV(1, 1) PV(1, 2) PV(1, 3) PV(1, 4) PV(1, 5) PV(1, 6)
				PV(2, 1) PV(2, 2) PV(2, 3) PV(2, 4) PV(2, 5) PV(2, 6)
				PV(3, 1) PV(3, 2) PV(3, 3)
				PV(4, 1) PV(4, 2)
#undef PV
			default: break;
			}
		}
	}
}

#if defined(__AVX512BF16__)
/* bf16 attention (iapo_kv_attn_bf16): the same steps over the bf16 copy of
 * the cache. Scores: per pair of dims one vdpbf16ps per 16 keys (the keys of
 * dims 2i and 2i+1 side by side in kb, the query's pair broadcast), summed in
 * fp32; the softmax as above in fp32; P.V: the weights rounded to bf16, per
 * pair of rows one vdpbf16ps per 16 columns, summed in fp32 into the fp32
 * accumulator. Half the instructions and half the bytes of the fp32 kernel;
 * the price is the rounding of q, K, V and the weights to 8 bits of mantissa
 * (tests/test_info_bf16.c bounds what that does to E and the advantages). */
#define AB_ON 1

/* 16 keys of rows a and b (16 floats each) as 16 pairs (a_i, b_i) of bf16. */
static inline __m512i pair16(const float *a, const float *b)
{
	const __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22,
					     6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
	const __m512i ab = (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(b), _mm512_loadu_ps(a)); /* a 0..15, b 16..31 */
	return _mm512_permutexvar_epi16(idx, ab);
}

/* Keys and values [t0, t1) of layer l, slot seq, kv head g: the fp32 cache
 * rounded into the bf16 copy, in whole groups of 16 keys and pairs of value
 * rows (the neighbours converted along are either written, and then the same
 * bits again, or unwritten, and then masked wherever they are read). */
static void shadow_put(iapo_kv *kv, int l, int seq, int g, int t0, int t1)
{
	const int HD = kv->w->cfg.HD;
	const size_t base = (size_t)(cache_at(kv, kv->kc, l, seq, g) - kv->kc);
	const float *K = kv->kc + base, *V = kv->vc + base;
	uint16_t *Kh = kv->kb + base, *Vh = kv->vb + base;
	for (int tb = t0 / KT * KT; tb < t1; tb += KT) {
		const int a = (t0 > tb ? t0 - tb : 0) / 16, b = ((t1 - tb < KT ? t1 - tb : KT) + 15) / 16;
		const float *kt = K + (size_t)tb * HD;
		uint16_t *kh = Kh + (size_t)tb * HD;
		for (int dp = 0; dp < HD / 2; dp++)
			for (int x = a; x < b; x++)
				_mm512_storeu_si512(kh + (size_t)dp * 2 * KT + 32 * x,
						    pair16(kt + (size_t)2 * dp * KT + 16 * x, kt + (size_t)(2 * dp + 1) * KT + 16 * x));
	}
	for (int t = t0 & ~1; t < t1; t += 2)
		for (int c = 0; c < HD; c += 16)
			_mm512_storeu_si512(Vh + (size_t)t * HD + 2 * c, pair16(V + (size_t)t * HD + c, V + (size_t)(t + 1) * HD + c));
}

/* scores_blk over the bf16 tile (HD/2, KT, 2): pv/pvl/pvn and pk/pkn as
 * there (pk's rows are 4 KT bytes apart). */
static inline __attribute__((always_inline)) void scores_blk_bf(qvec *const *v, const int NB, const int NG, int g0,
							       const uint16_t *Kt, int HD, __m512 vs, const char *pv,
							       int pvl, int pvn, const char *pk, int pkn)
{
	__m512 acc[SB][4];
	const uint32_t *q[SB];
	for (int i = 0; i < NB; i++) {
		q[i] = v[i]->qh;
		for (int g = 0; g < NG; g++) acc[i][g] = _mm512_setzero_ps();
	}
	const uint16_t *kt = Kt + 32 * g0;
	for (int dp = 0; dp < HD / 2; dp++, kt += 2 * KT) {
		if (pv) fetch_ahead(pv, pvl, pvn, pk, pkn, dp);
		__m512i k[4];
		for (int g = 0; g < NG; g++) {
			k[g] = _mm512_loadu_si512(kt + 32 * g);
			__asm__("" : "+v"(k[g]));
		}
		for (int i = 0; i < NB; i++) {
			const __m512i qb = _mm512_set1_epi32((int)q[i][dp]);
			for (int g = 0; g < NG; g++) acc[i][g] = _mm512_dpbf16_ps(acc[i][g], (__m512bh)qb, (__m512bh)k[g]);
		}
	}
	for (int i = 0; i < NB; i++)
		for (int g = 0; g < NG; g++) _mm512_storeu_ps(v[i]->p + 16 * (g0 + g), _mm512_mul_ps(acc[i][g], vs));
}

static void scores_any_bf(qvec *const *v, int nb, int g0, int ng, const uint16_t *Kt, int HD, float scale,
			  const char *pv, int pvl, const char *pk, int pkn)
{
	const __m512 vs = _mm512_set1_ps(scale);
	const int pvn = (pvl + HD / 2 - 1) / (HD / 2);
	switch (nb * 8 + ng) {
#define SC(NB, NG) \
	case (NB) * 8 + (NG): scores_blk_bf(v, NB, NG, g0, Kt, HD, vs, pv, pvl, pvn, pk, pkn); break;
#define SC4(NB) SC(NB, 1) SC(NB, 2) SC(NB, 3) SC(NB, 4)
		SC4(1) SC4(2) SC4(3) SC4(4) SC4(5) SC4(6)
#undef SC4
#undef SC
	default: break;
	}
}

/* e^x for the bf16 attention's weights, which are rounded to bf16 (8 bits)
 * right after: 2^n (vscalefps) times a degree-3 polynomial for 2^f, f in
 * [-1/2, 1/2] (minimax for the relative error: 7.5e-5, against bf16's
 * rounding of up to 2^-9 = 2e-3), 8 operations to exp_nonpos16's 17. The sum
 * (v->ls) takes the same values, so the weights' ratio keeps its 7.5e-5.
 * x is clamped as there (a NaN becomes -87). */
static inline __m512 exp_bf16(__m512 x)
{
	x = _mm512_max_ps(x, _mm512_set1_ps(-87.0f));
	const __m512 t = _mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f));
	const __m512 n = _mm512_roundscale_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
	const __m512 f = _mm512_sub_ps(t, n);
	__m512 y = _mm512_fmadd_ps(_mm512_set1_ps(0.0551716685295105f), f, _mm512_set1_ps(0.2426111251115799f));
	y = _mm512_fmadd_ps(y, f, _mm512_set1_ps(0.6932609677314758f));
	y = _mm512_fmadd_ps(y, f, _mm512_set1_ps(0.9999280571937561f));
	return _mm512_scalef_ps(y, n);
}

/* softmax_vec for the bf16 attention: the weights (exp_bf16) go to v->ph as
 * bf16 pairs (0 on the rest of groups [G0, G1)), the sum stays in 16 lanes
 * (v->ls, reduced once at the end, not per tile), and the running max is
 * raised only when a score exceeds it by more than LAZY_MAX: the weights,
 * up to e^8, and their sum share the same max, so the ratio is the same,
 * and fp32 and bf16 hold them easily. Most tiles then need no horizontal
 * max and no rescaling of the accumulator. */
#define LAZY_MAX 8.0f

/* A tile's scores raised the running max to mx: the sums so far (ls, acc)
 * were taken against the old one, so they scale by exp(old - mx). */
static void raise_max(qvec *v, float mx, int HD)
{
	if (v->m != -INFINITY) {
		const __m512 c = _mm512_set1_ps(exp_nonpos(v->m - mx));
		_mm512_storeu_ps(v->ls, _mm512_mul_ps(_mm512_loadu_ps(v->ls), c));
		for (int d = 0; d < HD; d += 16)
			_mm512_storeu_ps(v->acc + d, _mm512_mul_ps(_mm512_loadu_ps(v->acc + d), c));
	}
	v->m = mx;
}

/* A tile's weights (16 lanes, group g) rounded to bf16, as P.V multiplies
 * them: into v->ph for vdpbf16ps, or (W: attend_span_bw) the same values as
 * floats into v->p (over its scores, all read by then). */
static inline __attribute__((always_inline)) void put_weights(qvec *v, int g, __m512 e, const int W)
{
	const __m256i h = (__m256i)_mm512_cvtneps_pbh(e);
	if (W)
		_mm512_storeu_ps(v->p + 16 * g, _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)));
	else
		_mm256_storeu_si256((__m256i *)(v->ph + 8 * g), h);
}

/* softmax_vec_bf over a whole tile (lanes [0, KT): most tiles of a long
 * prefix): the same operations in the same order without the lane masks
 * (all ones there), and the groups' exponentials in one straight run so
 * their polynomial chains interleave. The same bits. */
static inline __attribute__((always_inline)) void softmax_full_b(qvec *v, int HD, const int W)
{
	__m512 s[KT / 16];
	for (int g = 0; g < KT / 16; g++) s[g] = _mm512_loadu_ps(v->p + 16 * g);
	__mmask16 over = 0;
	if (v->m != -INFINITY) {
		const __m512 lim = _mm512_set1_ps(v->m + LAZY_MAX);
		for (int g = 0; g < KT / 16; g++) over |= _mm512_cmp_ps_mask(s[g], lim, _CMP_GT_OQ);
	}
	if (v->m == -INFINITY || over) {
		__m512 vmx = _mm512_set1_ps(-INFINITY);
		for (int g = 0; g < KT / 16; g++) vmx = _mm512_max_ps(vmx, s[g]);
		raise_max(v, _mm512_reduce_max_ps(vmx), HD);
	}
	const __m512 vm = _mm512_set1_ps(v->m);
	__m512 e[KT / 16];
	for (int g = 0; g < KT / 16; g++) e[g] = exp_bf16(_mm512_sub_ps(s[g], vm));
	__m512 sum = _mm512_loadu_ps(v->ls);
	for (int g = 0; g < KT / 16; g++) {
		sum = _mm512_add_ps(sum, e[g]);
		put_weights(v, g, e[g], W);
	}
	_mm512_storeu_ps(v->ls, sum);
}

static inline __attribute__((always_inline)) void softmax_vec_b(qvec *v, int a, int b, int G0, int G1, int HD,
							       const int W)
{
	if (a == 0 && b == KT) {
		softmax_full_b(v, HD, W);
		return;
	}
	const int ga = a / 16, gb = (b + 15) / 16;
	__m512 s[KT / 16];
	__mmask16 mk[KT / 16];
	for (int g = ga; g < gb; g++) {
		mk[g] = lane_mask(g, a, b);
		s[g] = _mm512_loadu_ps(v->p + 16 * g);
	}
	__mmask16 over = 0;
	if (v->m != -INFINITY) {
		const __m512 lim = _mm512_set1_ps(v->m + LAZY_MAX);
		for (int g = ga; g < gb; g++) over |= _mm512_mask_cmp_ps_mask(mk[g], s[g], lim, _CMP_GT_OQ);
	}
	if (v->m == -INFINITY || over) {
		const __m512 ninf = _mm512_set1_ps(-INFINITY);
		__m512 vmx = ninf;
		for (int g = ga; g < gb; g++) vmx = _mm512_max_ps(vmx, _mm512_mask_mov_ps(ninf, mk[g], s[g]));
		raise_max(v, _mm512_reduce_max_ps(vmx), HD);
	}
	const __m512 vm = _mm512_set1_ps(v->m);
	__m512 sum = _mm512_loadu_ps(v->ls);
	for (int g = G0; g < G1; g++) {
		__m512 e = _mm512_setzero_ps();
		if (g >= ga && g < gb) {
			e = _mm512_maskz_mov_ps(mk[g], exp_bf16(_mm512_sub_ps(s[g], vm)));
			sum = _mm512_add_ps(sum, e);
		}
		put_weights(v, g, e, W);
	}
	_mm512_storeu_ps(v->ls, sum);
}

static void softmax_vec_bf(qvec *v, int a, int b, int G0, int G1, int HD) { softmax_vec_b(v, a, b, G0, G1, HD, 0); }

/* Columns [c0, c0 + 16 NR) of v[i]->acc += sum over row pairs j in [ja, jb)
 * of the bf16 weights (p[2j], p[2j+1]) . rows (2j, 2j+1) of the tile's
 * values, for NB vectors; ma / mb mask the first / last pair's lanes (a row
 * outside [ta, tb) may hold anything: its weight 0 must not meet a NaN).
 * Two partial sums per 16 columns (even and odd pairs). Head dims that are
 * not multiples of 64 (pv_blk4_bf takes the rest). */
static inline __attribute__((always_inline)) void pv_blk_bf(qvec *const *v, const int NB, const int NR, int c0,
							   const uint16_t *Vt, int ja, int jb, __mmask32 ma,
							   __mmask32 mb, int HD)
{
	__m512 a[SB][4], b[SB][4];
	const uint32_t *p[SB];
	for (int i = 0; i < NB; i++) {
		p[i] = v[i]->ph;
		for (int c = 0; c < NR; c++) {
			a[i][c] = _mm512_loadu_ps(v[i]->acc + c0 + 16 * c);
			b[i][c] = _mm512_setzero_ps();
		}
	}
	for (int j = ja; j < jb; j++) {
		const uint16_t *r = Vt + (size_t)j * 2 * HD + 2 * c0;
		const __mmask32 m = (j == ja ? ma : 0xFFFFFFFFu) & (j == jb - 1 ? mb : 0xFFFFFFFFu);
		__m512i x[4];
		for (int c = 0; c < NR; c++) x[c] = _mm512_maskz_loadu_epi16(m, r + 32 * c);
		for (int i = 0; i < NB; i++) {
			const __m512i w = _mm512_set1_epi32((int)p[i][j]);
			if ((j - ja) & 1)
				for (int c = 0; c < NR; c++) b[i][c] = _mm512_dpbf16_ps(b[i][c], (__m512bh)w, (__m512bh)x[c]);
			else
				for (int c = 0; c < NR; c++) a[i][c] = _mm512_dpbf16_ps(a[i][c], (__m512bh)w, (__m512bh)x[c]);
		}
	}
	for (int i = 0; i < NB; i++)
		for (int c = 0; c < NR; c++) _mm512_storeu_ps(v[i]->acc + c0 + 16 * c, _mm512_add_ps(a[i][c], b[i][c]));
}

/* pv_blk_bf for 64 columns (four blocks of 16) of NB <= 4 vectors with one
 * partial sum per 16 columns: 16 accumulators, each taking one FMA in 16
 * (enough for vdpbf16ps's latency), a pair's four value loads serving four
 * vectors (two there), and lane masks on the first and last pairs only.
 * Head dims that are multiples of 64 (the models in use). */
static inline __attribute__((always_inline)) void pv_blk4_bf(qvec *const *v, const int NB, int c0, const uint16_t *Vt,
							    int ja, int jb, __mmask32 ma, __mmask32 mb, int HD)
{
	__m512 a[4][4];
	const uint32_t *p[4];
	for (int i = 0; i < NB; i++) {
		p[i] = v[i]->ph;
		for (int c = 0; c < 4; c++) a[i][c] = _mm512_loadu_ps(v[i]->acc + c0 + 16 * c);
	}
#define PV4_STEP(j, LOAD)                                                                                        \
	do {                                                                                                     \
		const uint16_t *r = Vt + (size_t)(j) * 2 * HD + 2 * c0;                                          \
		__m512i x[4];                                                                                    \
		for (int c = 0; c < 4; c++) x[c] = LOAD;                                                         \
		for (int i = 0; i < NB; i++) {                                                                   \
			const __m512i w = _mm512_set1_epi32((int)p[i][j]);                                       \
			for (int c = 0; c < 4; c++) a[i][c] = _mm512_dpbf16_ps(a[i][c], (__m512bh)w, (__m512bh)x[c]); \
		}                                                                                                \
	} while (0)
	PV4_STEP(ja, _mm512_maskz_loadu_epi16(jb - ja == 1 ? ma & mb : ma, r + 32 * c));
	for (int j = ja + 1; j < jb - 1; j++) PV4_STEP(j, _mm512_loadu_si512(r + 32 * c));
	if (jb - ja > 1) PV4_STEP(jb - 1, _mm512_maskz_loadu_epi16(mb, r + 32 * c));
#undef PV4_STEP
	for (int i = 0; i < NB; i++)
		for (int c = 0; c < 4; c++) _mm512_storeu_ps(v[i]->acc + c0 + 16 * c, a[i][c]);
}

static void pv_any_bf(qvec *const *v, int na, const uint16_t *Vt, int ta, int tb, int HD)
{
	const int ja = ta / 2, jb = (tb + 1) / 2;
	const __mmask32 ma = ta & 1 ? 0xAAAAAAAAu : 0xFFFFFFFFu, mb = tb & 1 ? 0x55555555u : 0xFFFFFFFFu;
	if (HD % 64 == 0) {
		for (int c0 = 0; c0 < HD; c0 += 64)
			for (int i = 0; i < na; i += 4) switch (na - i < 4 ? na - i : 4) {
				case 1: pv_blk4_bf(v + i, 1, c0, Vt, ja, jb, ma, mb, HD); break;
				case 2: pv_blk4_bf(v + i, 2, c0, Vt, ja, jb, ma, mb, HD); break;
				case 3: pv_blk4_bf(v + i, 3, c0, Vt, ja, jb, ma, mb, HD); break;
				default: pv_blk4_bf(v + i, 4, c0, Vt, ja, jb, ma, mb, HD); break;
				}
		return;
	}
	for (int c0 = 0; c0 < HD; c0 += 64) {
		const int nr = (HD - c0) / 16 < 4 ? (HD - c0) / 16 : 4, per = nr == 4 ? 2 : nr == 3 ? 3 : 6;
		for (int i = 0; i < na; i += per) {
			const int nb = na - i < per ? na - i : per;
			switch (nr * 8 + nb) {
#define PV(NR, NB) \
	case (NR) * 8 + (NB): pv_blk_bf(v + i, NB, NR, c0, Vt, ja, jb, ma, mb, HD); break;
				PV(1, 1) PV(1, 2) PV(1, 3) PV(1, 4) PV(1, 5) PV(1, 6)
				PV(2, 1) PV(2, 2) PV(2, 3) PV(2, 4) PV(2, 5) PV(2, 6)
				PV(3, 1) PV(3, 2) PV(3, 3)
				PV(4, 1) PV(4, 2)
#undef PV
			default: break;
			}
		}
	}
}

/* attend_span over the bf16 copy (Kb tiles (HD/2, KT, 2), Vb (Tpad/2, HD,
 * 2)); each vector's qh holds its query in bf16 pairs, ph room for KT / 2
 * pairs of weights. */
static void attend_span_bf(qvec *v, int nv, const uint16_t *Kb, const uint16_t *Vb, int HD, float scale)
{
	int lo, hi;
	span_union(v, nv, &lo, &hi);
	for (int t0 = hi > lo ? lo / KT * KT : hi; t0 < hi; t0 += KT) {
		const uint16_t *Kt = Kb + (size_t)t0 * HD, *Vt = Vb + (size_t)t0 * HD;
		qvec *act[VB_MAX];
		int ua, ub;
		const int na = tile_active(v, nv, t0, act, &ua, &ub);
		if (na == 0) continue;
		const int G0 = ua / 16, G1 = (ub + 15) / 16;
		const int nn = hi - t0 - KT < KT ? hi - t0 - KT : KT;
		const char *pk = nn > 0 ? (const char *)(Kt + (size_t)KT * HD) : NULL;
		const int pa = ua & ~1, pb = (ub + 1) & ~1; /* the value rows P.V reads, in pairs */
		for (int i = 0; i < na; i += SB)
			scores_any_bf(act + i, na - i < SB ? na - i : SB, G0, G1 - G0, Kt, HD, scale,
				      i == 0 ? (const char *)(Vt + (size_t)pa * HD) : NULL, (pb - pa) * HD / 32, pk,
				      (nn + 15) / 16);
		for (int i = 0; i < na; i++) {
			qvec *x = act[i];
			const int a = x->lo - t0 > 0 ? x->lo - t0 : 0, b = x->hi - t0 < KT ? x->hi - t0 : KT;
			softmax_vec_bf(x, a, b, G0, G1, HD);
		}
		pv_any_bf(act, na, Vt, ua, ub, HD);
	}
}

/* The bf16 attention by fp32 FMAs (kv->ab_fma), for CPUs whose vdpbf16ps
 * does fewer multiply-adds per second than their fp32 FMAs: the packed
 * products' verdict (iapo_sgemm_bf16_dot; an Intel Xeon measured 0.5x, where
 * this takes 8-10% off the pass). The same bf16 values (q, K, V, the
 * weights) widened to fp32 (exact: a bf16 is a float's upper half; the even
 * element of a pair by a shift, the odd by a mask), each vdpbf16ps lane
 * taken as two FMAs, the odd element's product first: Intel's definition of
 * the instruction, so on such a CPU the results are vdpbf16ps's to the bit
 * (tests/test_info_bf16.c checks it where the CPU's vdpbf16ps rounds so),
 * unless AMX takes the products (below; then within the same tolerance).
 * Each tile's keys (groups [G0, G1)) and the value rows P.V reads are
 * widened once into kw and vw (KT x HD floats each) for all the tile's
 * vectors, not in every register block. Head dims that are multiples of 64
 * up to HD_BW. */
#define HD_BW 128

/* scores_blk over a widened tile (kw: (HD, KT)), each pair of dims odd first. */
static inline __attribute__((always_inline)) void scores_blk_bw(qvec *const *v, const int NB, const int NG, int g0,
							       const float *kw, int HD, __m512 vs)
{
	__m512 acc[SB][4];
	const float *q[SB];
	for (int i = 0; i < NB; i++) {
		q[i] = v[i]->qf;
		for (int g = 0; g < NG; g++) acc[i][g] = _mm512_setzero_ps();
	}
	const float *kt = kw + 16 * g0;
	for (int dp = 0; dp < HD / 2; dp++, kt += 2 * KT)
		for (int h = 1; h >= 0; h--) {
			__m512 k[4];
			for (int g = 0; g < NG; g++) {
				k[g] = _mm512_loadu_ps(kt + h * KT + 16 * g);
				__asm__("" : "+v"(k[g])); /* as in scores_blk */
			}
			for (int i = 0; i < NB; i++) {
				const __m512 qb = _mm512_set1_ps(q[i][2 * dp + h]);
				for (int g = 0; g < NG; g++) acc[i][g] = _mm512_fmadd_ps(qb, k[g], acc[i][g]);
			}
		}
	for (int i = 0; i < NB; i++)
		for (int g = 0; g < NG; g++) _mm512_storeu_ps(v[i]->p + 16 * (g0 + g), _mm512_mul_ps(acc[i][g], vs));
}

static void scores_any_bw(qvec *const *v, int nb, int g0, int ng, const float *kw, int HD, float scale)
{
	const __m512 vs = _mm512_set1_ps(scale);
	switch (nb * 8 + ng) {
#define SC(NB, NG) \
	case (NB) * 8 + (NG): scores_blk_bw(v, NB, NG, g0, kw, HD, vs); break;
#define SC4(NB) SC(NB, 1) SC(NB, 2) SC(NB, 3) SC(NB, 4)
		SC4(1) SC4(2) SC4(3) SC4(4) SC4(5) SC4(6)
#undef SC4
#undef SC
	default: break;
	}
}

/* pv_blk4_bf over widened value rows (vw: (KT, HD), rows [2 ja, 2 jb)):
 * columns [c0, c0 + 64) of NB <= 4 vectors, each pair of rows odd first
 * into one sum per 16 columns, as vdpbf16ps sums them. */
static inline __attribute__((always_inline)) void pv_blk4_bw(qvec *const *v, const int NB, int c0, const float *vw,
							    int ja, int jb, int HD)
{
	__m512 a[4][4];
	const float *p[4];
	for (int i = 0; i < NB; i++) {
		p[i] = v[i]->p;
		for (int c = 0; c < 4; c++) a[i][c] = _mm512_loadu_ps(v[i]->acc + c0 + 16 * c);
	}
	for (int j = ja; j < jb; j++)
		for (int h = 1; h >= 0; h--) {
			const float *r = vw + (size_t)(2 * j + h) * HD + c0;
			__m512 y[4];
			for (int c = 0; c < 4; c++) {
				y[c] = _mm512_loadu_ps(r + 16 * c);
				__asm__("" : "+v"(y[c]));
			}
			for (int i = 0; i < NB; i++) {
				const __m512 w = _mm512_set1_ps(p[i][2 * j + h]);
				for (int c = 0; c < 4; c++) a[i][c] = _mm512_fmadd_ps(w, y[c], a[i][c]);
			}
		}
	for (int i = 0; i < NB; i++)
		for (int c = 0; c < 4; c++) _mm512_storeu_ps(v[i]->acc + c0 + 16 * c, a[i][c]);
}

/* AMX (Intel's tile unit, where the build targets it and the kernel grants
 * the process its tile state): attend_span_bw's scores and whole tiles' P.V
 * as small matrix products by tdpbf16ps over the same bf16 operands, in the
 * layouts the bf16 copy already has (kb's tiles are the B operand of a
 * score product, vb's row pairs that of P.V; a block's qh, ph, p and acc
 * rows are contiguous). On the Xeon of session 18, whose vdpbf16ps does half
 * the fp32 FMAs' work, tdpbf16ps ran 3.15 TFLOP/s on one core (13.6x its
 * fp32 FMAs): the pass took 0.81x (tiny) / 0.88x (small) the CPU of the
 * FMA path. Its sums are fp32 but not rounded as the FMA chains are: E moved
 * by up to 1.1e-4 (|E| <= 8.9; tests/test_info_bf16.c checks the tolerance). */
#if defined(__AMX_TILE__) && defined(__AMX_BF16__)
#include <sys/syscall.h>
#include <unistd.h>
#define AMX_ON 1
static int amx_state; /* 0: not asked yet, 1: the process may use the tiles, -1: not */

static int amx_usable_now(void)
{
	int s = __atomic_load_n(&amx_state, __ATOMIC_ACQUIRE);
	if (s == 0) {
		/* Linux hands out the tile data state on request, per process
		 * (ARCH_REQ_XCOMP_PERM for XFEATURE_XTILEDATA); asking twice is harmless */
		s = syscall(SYS_arch_prctl, 0x1023, 18) == 0 ? 1 : -1;
		__atomic_store_n(&amx_state, s, __ATOMIC_RELEASE);
	}
	return s > 0;
}

typedef struct {
	uint8_t palette, start;
	uint8_t res[14];
	uint16_t colsb[16];
	uint8_t rows[16];
} amx_cfg;

/* Every tile 16 rows of 64 bytes (a thread's configuration: set per span). */
static void amx_config(void)
{
	amx_cfg c;
	memset(&c, 0, sizeof c);
	c.palette = 1;
	for (int i = 0; i < 8; i++) {
		c.colsb[i] = 64;
		c.rows[i] = 16;
	}
	_tile_loadconfig(&c);
}

/* Scores of vectors v[0..nv) (nv a multiple of 16, all active in the tile,
 * their rows contiguous) for groups [G0, G1): each 16 x 16 block a sum over
 * HD / 32 products of q's rows by the tile's pairs, stored into p, then
 * scaled as scores_blk_bw's. */
static void scores_amx(qvec *v, int nv, int G0, int G1, const uint16_t *Kt, int HD, float scale)
{
	/* tiles: 0-3 the sums of groups 0-3 (four independent chains: one
	 * tdpbf16ps's latency is several of its issue intervals), 4 q's rows for
	 * 32 dims, 6 and 7 the keys, alternating */
	const __m512 vs = _mm512_set1_ps(scale);
#define SC_G(g, b)                                                                                              \
	if (G0 <= (g) && (g) < G1) {                                                                             \
		_tile_loadd(b, Kt + (size_t)s0 * 16 * 2 * KT + 32 * (g), 4 * KT);                                \
		_tile_dpbf16ps(g, 4, b);                                                                         \
	}
	for (int i0 = 0; i0 < nv; i0 += 16) {
		const uint16_t *qa = (const uint16_t *)v[i0].qh;
		float *pc = v[i0].p;
		_tile_zero(0);
		_tile_zero(1);
		_tile_zero(2);
		_tile_zero(3);
		for (int s0 = 0; s0 < HD / 32; s0++) {
			_tile_loadd(4, qa + 32 * s0, HD * 2);
			SC_G(0, 6) SC_G(1, 7) SC_G(2, 6) SC_G(3, 7)
		}
		if (G0 <= 0 && 0 < G1) _tile_stored(0, pc, KT * 4);
		if (G0 <= 1 && 1 < G1) _tile_stored(1, pc + 16, KT * 4);
		if (G0 <= 2 && 2 < G1) _tile_stored(2, pc + 32, KT * 4);
		if (G0 <= 3 && 3 < G1) _tile_stored(3, pc + 48, KT * 4);
		for (int i = i0; i < i0 + 16; i++)
			for (int g = G0; g < G1; g++)
				_mm512_storeu_ps(v[i].p + 16 * g, _mm512_mul_ps(_mm512_loadu_ps(v[i].p + 16 * g), vs));
	}
#undef SC_G
}

/* P.V of a whole tile (keys [0, KT), every value row written, so finite)
 * for vectors v[0..nv) as scores_amx: acc (each 16 vectors x 16 columns a
 * tile, loaded and stored back) += the weights (ph: bf16 pairs, 0 outside
 * each vector's keys) . the value row pairs; four column blocks at a time
 * (tiles 0-3), the weights in 4, the values in 6 and 7. */
static void pv_amx(qvec *v, int nv, const uint16_t *Vt, int HD)
{
#define PV_C(c, b)                                                                                              \
	_tile_loadd(b, Vt + (size_t)s0 * 16 * 2 * HD + 32 * (c0 + (c)), HD * 4);                                 \
	_tile_dpbf16ps(c, 4, b);
	for (int i0 = 0; i0 < nv; i0 += 16) {
		const uint32_t *pa = v[i0].ph;
		for (int c0 = 0; c0 < HD / 16; c0 += 4) {
			float *ac = v[i0].acc + 16 * c0;
			_tile_loadd(0, ac, HD * 4);
			_tile_loadd(1, ac + 16, HD * 4);
			_tile_loadd(2, ac + 32, HD * 4);
			_tile_loadd(3, ac + 48, HD * 4);
			for (int s0 = 0; s0 < KT / 32; s0++) {
				_tile_loadd(4, pa + 16 * s0, KT * 2);
				PV_C(0, 6) PV_C(1, 7) PV_C(2, 6) PV_C(3, 7)
			}
			_tile_stored(0, ac, HD * 4);
			_tile_stored(1, ac + 16, HD * 4);
			_tile_stored(2, ac + 32, HD * 4);
			_tile_stored(3, ac + 48, HD * 4);
		}
	}
#undef PV_C
}
#endif

/* attend_span_bf by fp32 FMAs (scores and whole tiles' P.V by AMX where
 * usable); kw, vw: room for KT x HD floats each. */
static void attend_span_bw(qvec *v, int nv, const uint16_t *Kb, const uint16_t *Vb, int HD, float scale, float *kw,
			   float *vw)
{
	const __m512i odd = _mm512_set1_epi32((int)0xFFFF0000u);
	int lo, hi;
	span_union(v, nv, &lo, &hi);
#if defined(AMX_ON)
	/* blocks of 16 vectors: a prefix's block (64 vectors), not the second
	 * spans of one position's rows (K x grp, 8 at K = 4) */
	const int amx_any = amx_allow && nv % 16 == 0 && amx_usable_now();
	if (amx_any) amx_config();
#endif
	for (int t0 = hi > lo ? lo / KT * KT : hi; t0 < hi; t0 += KT) {
		const uint16_t *Kt = Kb + (size_t)t0 * HD, *Vt = Vb + (size_t)t0 * HD;
		qvec *act[VB_MAX];
		int ua, ub;
		const int na = tile_active(v, nv, t0, act, &ua, &ub);
		if (na == 0) continue;
		const int G0 = ua / 16, G1 = (ub + 15) / 16, ja = ua / 2, jb = (ub + 1) / 2;
		const int nn = hi - t0 - KT < KT ? hi - t0 - KT : KT, pkn = nn > 0 ? (nn + 15) / 16 : 0;
#if defined(AMX_ON)
		const int amx = amx_any && na == nv;
		if (amx) scores_amx(v, nv, G0, G1, Kt, HD, scale);
#else
		const int amx = 0;
#endif
		/* widen the keys (unless AMX took the scores), fetching the next
		 * tile's keys and (a 1 / (HD / 2) share per step) the value rows
		 * P.V reads ahead, as the first score block does in attend_span_bf */
		for (int dp = 0; dp < HD / 2; dp++) {
			const uint16_t *kt = Kt + (size_t)dp * 2 * KT;
			for (int g = G0; g < G1 && !amx; g++) {
				const __m512i x = _mm512_loadu_si512(kt + 32 * g);
				_mm512_storeu_ps(kw + (size_t)(2 * dp + 1) * KT + 16 * g, _mm512_castsi512_ps(_mm512_and_si512(x, odd)));
				_mm512_storeu_ps(kw + (size_t)(2 * dp) * KT + 16 * g, _mm512_castsi512_ps(_mm512_slli_epi32(x, 16)));
			}
			for (int x = 0; x < pkn; x++) _mm_prefetch((const char *)(kt + (size_t)KT * HD) + 64 * x, _MM_HINT_T0);
			for (int j = ja + dp; j < jb; j += HD / 2)
				for (int c = 0; c < HD; c += 32) _mm_prefetch((const char *)(Vt + (size_t)j * 2 * HD + 2 * c), _MM_HINT_T0);
		}
		for (int i = 0; i < na && !amx; i += SB) scores_any_bw(act + i, na - i < SB ? na - i : SB, G0, G1 - G0, kw, HD, scale);
		const int amxpv = amx && ua == 0 && ub == KT; /* weights to ph, for pv_amx */
		for (int i = 0; i < na; i++) {
			qvec *x = act[i];
			const int a = x->lo - t0 > 0 ? x->lo - t0 : 0, b = x->hi - t0 < KT ? x->hi - t0 : KT;
			if (amxpv) softmax_vec_b(x, a, b, G0, G1, HD, 0);
			else softmax_vec_b(x, a, b, G0, G1, HD, 1);
		}
#if defined(AMX_ON)
		if (amxpv) {
			pv_amx(v, nv, Vt, HD);
			continue;
		}
#endif
		/* the value rows; a row of the first or last pair outside [ua, ub)
		 * may hold anything, and its weight 0 must not meet a NaN: it is
		 * widened as 0 (pv_any_bf's masks) */
		const __mmask32 ma = ua & 1 ? 0xAAAAAAAAu : 0xFFFFFFFFu, mb = ub & 1 ? 0x55555555u : 0xFFFFFFFFu;
		for (int j = ja; j < jb; j++) {
			const __mmask32 m = (j == ja ? ma : 0xFFFFFFFFu) & (j == jb - 1 ? mb : 0xFFFFFFFFu);
			for (int c = 0; c < HD; c += 16) {
				const __m512i x = _mm512_maskz_loadu_epi16(m, Vt + (size_t)j * 2 * HD + 2 * c);
				_mm512_storeu_ps(vw + (size_t)(2 * j + 1) * HD + c, _mm512_castsi512_ps(_mm512_and_si512(x, odd)));
				_mm512_storeu_ps(vw + (size_t)(2 * j) * HD + c, _mm512_castsi512_ps(_mm512_slli_epi32(x, 16)));
			}
		}
		for (int c0 = 0; c0 < HD; c0 += 64)
			for (int i = 0; i < na; i += 4) switch (na - i < 4 ? na - i : 4) {
				case 1: pv_blk4_bw(act + i, 1, c0, vw, ja, jb, HD); break;
				case 2: pv_blk4_bw(act + i, 2, c0, vw, ja, jb, HD); break;
				case 3: pv_blk4_bw(act + i, 3, c0, vw, ja, jb, HD); break;
				default: pv_blk4_bw(act + i, 4, c0, vw, ja, jb, HD); break;
				}
	}
#if defined(AMX_ON)
	if (amx_any) _tile_release();
#endif
}
#endif
#endif

/* In every build (the tests call them where AMX is compiled out too). */
int iapo_kv_amx(int on)
{
	const int was = amx_allow;
	amx_allow = on != 0;
	return was;
}

int iapo_kv_amx_usable(void)
{
#if defined(AMX_ON)
	return amx_usable_now();
#else
	return 0;
#endif
}

/* The same steps for one vector and one tile in plain C (no AVX-512, or a
 * head dim that is not a multiple of 16). */
static void tile_plain(qvec *v, int a, int b, const float *Kt, const float *Vt, int HD, float scale)
{
	float mx = -INFINITY;
	for (int t = a; t < b; t++) {
		float s = 0;
		for (int d = 0; d < HD; d++) s += v->q[d] * Kt[(size_t)d * KT + t];
		v->p[t] = s * scale;
		mx = v->p[t] > mx ? v->p[t] : mx;
	}
	if (mx > v->m) {
		const float corr = expf(v->m - mx);
		v->l *= corr;
		for (int d = 0; d < HD; d++) v->acc[d] *= corr;
		v->m = mx;
	}
	float sum = 0;
	for (int t = a; t < b; t++) {
		v->p[t] = exp_nonpos(v->p[t] - v->m);
		sum += v->p[t];
	}
	v->l += sum;
	for (int t = a; t < b; t++) {
		const float *vr = Vt + (size_t)t * HD, w = v->p[t];
		for (int d = 0; d < HD; d++) v->acc[d] += w * vr[d];
	}
}

/* Each of the nv vectors attends to keys [lo, hi) of one slot and kv head:
 * Kb its keys (tiles of (HD, KT)), Vb its values (Tpad, HD). In each tile
 * P.V runs over the union of the vectors' keys there (weight 0 outside a
 * vector's own), so every key of that union must have been written (a row
 * may only attend to written keys, and the vectors of one call share a first
 * slot, or a second span's start); scores of other lanes are masked,
 * whatever the memory holds. */
static void attend_span(qvec *v, int nv, const float *Kb, const float *Vb, int HD, float scale)
{
	int lo, hi;
	span_union(v, nv, &lo, &hi);
#if defined(__AVX512F__)
	const int fast = HD % 16 == 0;
#endif
	for (int t0 = hi > lo ? lo / KT * KT : hi; t0 < hi; t0 += KT) {
		const float *Kt = Kb + (size_t)t0 * HD, *Vt = Vb + (size_t)t0 * HD;
		qvec *act[VB_MAX];
		int ua, ub;
		const int na = tile_active(v, nv, t0, act, &ua, &ub);
		if (na == 0) continue;
#if defined(__AVX512F__)
		if (fast) {
			const int G0 = ua / 16, G1 = (ub + 15) / 16;
			/* the first register block fetches the values P.V reads (rows
			 * [ua, ub) of the tile: (ub - ua) HD / 16 lines, HD a multiple
			 * of 16) and the next tile's keys ahead. Only those rows: a
			 * decoding step's last tile is partly empty, and fetching all
			 * of it (KT rows) cost decoding 3-10% (small, demo model) */
			const int nn = hi - t0 - KT < KT ? hi - t0 - KT : KT;
			const char *pk = nn > 0 ? (const char *)(Kt + (size_t)KT * HD) : NULL;
			for (int i = 0; i < na; i += SB)
				scores_any(act + i, na - i < SB ? na - i : SB, G0, G1 - G0, Kt, HD, scale,
					   i == 0 ? (const char *)(Vt + (size_t)ua * HD) : NULL, (ub - ua) * HD / 16, pk,
					   (nn + 15) / 16);
			for (int i = 0; i < na; i++) {
				const int a = act[i]->lo - t0 > 0 ? act[i]->lo - t0 : 0;
				const int b = act[i]->hi - t0 < KT ? act[i]->hi - t0 : KT;
				softmax_vec(act[i], a, b, G0, G1, HD);
			}
			pv_any(act, na, Vt, ua, ub, HD);
			continue;
		}
#endif
		for (int i = 0; i < na; i++) {
			const int a = act[i]->lo - t0 > 0 ? act[i]->lo - t0 : 0;
			const int b = act[i]->hi - t0 < KT ? act[i]->hi - t0 : KT;
			tile_plain(act[i], a, b, Kt, Vt, HD, scale);
		}
	}
}

typedef struct {
	iapo_kv *kv;
	const iapo_kv_row *rows;
	const float *q;
	float *att;
	const int *task; /* (ntask, 3): first row of a block, its rows, first query vector */
	int l, vc;
} attend_job;

/* One task: (block of rows, kv head, vc of the block's query vectors). The
 * vectors are (row, query head of the kv head) pairs, row-major. Each
 * attends to its row's first span, then to its second (its own earlier
 * postfix rows). */
static void attend_task(void *ctx, long i, int worker)
{
	(void)worker;
	const attend_job *A = ctx;
	iapo_kv *kv = A->kv;
	const iapo_kv_row *rows = A->rows;
	const iapo_config *c = &kv->w->cfg;
	const int NH = c->NH, NKV = c->NKV, HD = c->HD, grp = c->NH / c->NKV, l = A->l;
	const float scale = 1.0f / sqrtf((float)HD);
	const int *tk = A->task + 3 * (i / NKV), g = (int)(i % NKV);
	const int r0 = tk[0], v0 = tk[2], nv = tk[1] * grp - v0 < A->vc ? tk[1] * grp - v0 : A->vc;
	qvec v[VB_MAX];
	float acc[VB_FLOATS] __attribute__((aligned(64)));
	float p[VB_MAX * KT] __attribute__((aligned(64)));
	for (int k = 0; k < nv; k++) {
		const int r = r0 + (v0 + k) / grp, h = g * grp + (v0 + k) % grp;
		v[k] = (qvec){.q = A->q + ((size_t)r * NH + h) * HD, .lo = 0, .hi = rows[r].keys.len0, .m = -INFINITY,
			      .l = 0, .acc = acc + (size_t)k * HD, .p = p + (size_t)k * KT};
	}
	memset(acc, 0, sizeof(float) * (size_t)nv * HD);
#if defined(AB_ON)
	uint16_t qh[VB_FLOATS] __attribute__((aligned(64)));
	uint32_t ph[VB_MAX * KT / 2] __attribute__((aligned(64)));
	float ls[VB_MAX * 16] __attribute__((aligned(64)));
	/* attend_span_bw's: q rounded to bf16 as floats, the tile widened */
	float qf[VB_FLOATS] __attribute__((aligned(64)));
	float kw[KT * HD_BW] __attribute__((aligned(64))), vw[KT * HD_BW] __attribute__((aligned(64)));
	const int bw = kv->ab_on && kv->ab_fma;
	if (kv->ab_on)
		for (int k = 0; k < nv; k++) {
			v[k].ls = ls + 16 * k;
			_mm512_storeu_ps(v[k].ls, _mm512_setzero_ps());
			for (int d = 0; d < HD; d += 16) {
				const __m256i h = (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(v[k].q + d));
				_mm256_storeu_si256((__m256i *)(qh + (size_t)k * HD + d), h);
				if (bw)
					_mm512_storeu_ps(qf + (size_t)k * HD + d,
							 _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)));
			}
			v[k].qh = (const uint32_t *)(qh + (size_t)k * HD);
			v[k].qf = qf + (size_t)k * HD;
			v[k].ph = ph + (size_t)k * KT / 2;
		}
#define SPAN(vv, n, seq)                                                                                         \
	(bw ? attend_span_bw(vv, n, kv->kb + (cache_at(kv, kv->kc, l, seq, g) - kv->kc),                           \
			     kv->vb + (cache_at(kv, kv->kc, l, seq, g) - kv->kc), HD, scale, kw, vw)                  \
	: kv->ab_on ? attend_span_bf(vv, n, kv->kb + (cache_at(kv, kv->kc, l, seq, g) - kv->kc),                  \
				     kv->vb + (cache_at(kv, kv->kc, l, seq, g) - kv->kc), HD, scale)               \
		    : attend_span(vv, n, cache_at(kv, kv->kc, l, seq, g), cache_at(kv, kv->vc, l, seq, g), HD, scale))
#else
#define SPAN(vv, n, seq) attend_span(vv, n, cache_at(kv, kv->kc, l, seq, g), cache_at(kv, kv->vc, l, seq, g), HD, scale)
#endif
	SPAN(v, nv, rows[r0].keys.seq0);
	/* second spans, for runs of vectors whose span starts at the same entry
	 * (the rows of one position): P.V of a block runs over the union of its
	 * vectors' keys (weight 0 outside each one's own), and within one
	 * position that union holds only keys its rows wrote, never the unwritten
	 * gap before the next position's entries */
	for (int k = 0; k < nv;) {
		const iapo_kv_keys *ks = &rows[r0 + (v0 + k) / grp].keys;
		int k1 = k + 1;
		if (ks->len1 <= 0) {
			k = k1;
			continue;
		}
		for (; k1 < nv; k1++) {
			const iapo_kv_keys *x = &rows[r0 + (v0 + k1) / grp].keys;
			if (x->len1 <= 0 || x->seq1 != ks->seq1 || x->start1 != ks->start1) break;
		}
		for (int j = k; j < k1; j++) {
			const iapo_kv_keys *x = &rows[r0 + (v0 + j) / grp].keys;
			v[j].lo = x->start1;
			v[j].hi = x->start1 + x->len1;
		}
		SPAN(v + k, k1 - k, ks->seq1);
		k = k1;
	}
	for (int k = 0; k < nv; k++) {
		const int r = r0 + (v0 + k) / grp, h = g * grp + (v0 + k) % grp;
		float *o = A->att + ((size_t)r * NH + h) * HD;
#if defined(AB_ON)
		if (kv->ab_on) v[k].l = _mm512_reduce_add_ps(_mm512_loadu_ps(v[k].ls));
#endif
		const float inv = 1.0f / v[k].l;
		for (int d = 0; d < HD; d++) o[d] = v[k].acc[d] * inv;
	}
#undef SPAN
}

/* K/V of rows [0, R) (keys k, values kv->v: (R, NKV*HD)) into the layer-l
 * cache. Runs of rows with consecutive slots of one tile (a prefill, the
 * postfix rows of consecutive IAPO positions) go d by d, so each line of a
 * tile's row is written once per run rather than once per key. */
/* store_kv's runs of one kv head g, of slot seq only (seq >= 0) or of all. */
static void store_runs(iapo_kv *kv, int l, const iapo_kv_row *rows, int R, const float *k, int shared, int seq, int g)
{
	const iapo_config *c = &kv->w->cfg;
	const int HD = c->HD, KV = c->NKV * HD;
	const size_t ld = (size_t)c->NH * HD + 2 * (size_t)KV; /* share_rows' products: row r's v at uidx[r] */
	for (int r = 0; r < R;) {
		const int s = rows[r].seq, t0 = rows[r].slot;
		int n = 1;
		while (r + n < R && rows[r + n].seq == s && rows[r + n].slot == t0 + n && (t0 + n) % KT) n++;
		if (seq >= 0 && s != seq) {
			r += n;
			continue;
		}
		float *kt = cache_at(kv, kv->kc, l, s, g) + (size_t)(t0 / KT) * KT * HD + t0 % KT;
		const float *ks = k + (size_t)r * KV + (size_t)g * HD, *vs = kv->v + (size_t)r * KV + (size_t)g * HD;
		for (int d = 0; d < HD; d++)
			for (int j = 0; j < n; j++) kt[(size_t)d * KT + j] = ks[(size_t)j * KV + d];
		float *vd = cache_at(kv, kv->vc, l, s, g) + (size_t)t0 * HD;
		for (int j = 0; j < n; j++) {
			const float *src = shared ? kv->gate + (size_t)kv->uidx[r + j] * ld + (ld - KV) + (size_t)g * HD
						  : vs + (size_t)j * KV;
			memcpy(vd + (size_t)j * HD, src, sizeof(float) * (size_t)HD);
		}
#if defined(AB_ON)
		if (kv->ab_on) shadow_put(kv, l, s, g, t0, t0 + n);
#endif
		r += n;
	}
}

typedef struct {
	iapo_kv *kv;
	const iapo_kv_row *rows;
	const float *k;
	int R, l, shared;
} store_job;

static void store_item(void *ctx, long i, int worker)
{
	(void)worker;
	const store_job *J = ctx;
	const int NKV = J->kv->w->cfg.NKV;
	store_runs(J->kv, J->l, J->rows, J->R, J->k, J->shared, J->kv->slist[i / NKV], (int)(i % NKV));
}

static void store_kv(iapo_kv *kv, int l, const iapo_kv_row *rows, int R, const float *k, int shared)
{
	const int NKV = kv->w->cfg.NKV;
	int ns = 0; /* the chunk's slots, in order of appearance */
	for (int r = 0; r < R; r++) {
		const int s = rows[r].seq;
		if (kv->sidx[s] < 0) {
			kv->sidx[s] = ns;
			kv->slist[ns++] = s;
		}
		if (rows[r].slot + 1 > kv->hw[s]) kv->hw[s] = rows[r].slot + 1;
	}
	for (int i = 0; i < ns; i++) kv->sidx[kv->slist[i]] = -1;
	/* a chunk of many rows in few slots (a prefill, the IAPO pass): one
	 * item per (slot, kv head), disjoint memory (the bf16 copy's whole
	 * groups included), on the pool; decoding's rows (one per slot) serially */
	if (R >= STORE_PAR_ROWS && ns <= STORE_PAR_SLOTS && iapo_pool_threads() > 1) {
		store_job J = {kv, rows, k, R, l, shared};
		iapo_pool_for((long)ns * NKV, store_item, &J);
	} else {
		for (int g = 0; g < NKV; g++) store_runs(kv, l, rows, R, k, shared, -1, g);
	}
}

/* att (R, NH*HD) from q (R, NH*HD) and the layer-l cache, per row's keys.
 * Blocks are runs of up to VB_MAX / grp rows (VB_FLOATS / HD vectors) with
 * the same first slot. Tasks are (block, kv head, chunk of vc query vectors): whole blocks
 * when there are enough of them to keep every thread busy, single vectors
 * otherwise. */
static void attend(iapo_kv *kv, int l, const iapo_kv_row *rows, int R, const float *q, float *att)
{
	const iapo_config *c = &kv->w->cfg;
	const int NKV = c->NKV, HD = c->HD, grp = c->NH / c->NKV;
	const int vcap = VB_MAX < VB_FLOATS / HD ? VB_MAX : VB_FLOATS / HD;
	const int rcap = vcap / grp > 0 ? vcap / grp : 1;
	int nb = 0;
	for (int r0 = 0; r0 < R;) {
		int r1 = r0 + 1;
		while (r1 < R && r1 - r0 < rcap && rows[r1].keys.seq0 == rows[r0].keys.seq0) r1++;
		kv->atask[3 * nb] = r0;
		kv->atask[3 * nb + 1] = r1 - r0;
		nb++;
		r0 = r1;
	}
	const int split = (long)nb * NKV < 2L * iapo_pool_threads();
	const int vc = split ? 1 : grp <= vcap ? rcap * grp : vcap;
	/* expand blocks into tasks of vc vectors (from the back: tasks only grow) */
	int nt = 0;
	for (int b = 0; b < nb; b++) nt += (kv->atask[3 * b + 1] * grp + vc - 1) / vc;
	for (int b = nb - 1, t = nt; b >= 0; b--) {
		const int r0 = kv->atask[3 * b], n = kv->atask[3 * b + 1];
		for (int v0 = (n * grp - 1) / vc * vc; v0 >= 0; v0 -= vc) {
			t--;
			kv->atask[3 * t] = r0;
			kv->atask[3 * t + 1] = n;
			kv->atask[3 * t + 2] = v0;
		}
	}
	attend_job A = {kv, rows, q, att, kv->atask, l, vc};
	iapo_pool_for((long)nt * NKV, attend_task, &A);
}

/* Final norm and lm_head for the rows of a chunk that want logits, OUTG at a time. */
static void project(iapo_kv *kv, const iapo_kv_row *rows, int R, float *logits)
{
	const iapo_config *c = &kv->w->cfg;
	const int C = c->C, V = c->V;
	const float *norm = kv->w->p.t[IAPO_P_NORM], *lm = kv->w->p.t[IAPO_P_LMHEAD];
	const uint16_t *lmh = kv->bf16_on ? kv->wh_t[IAPO_P_LMHEAD] : NULL;
	const iapo_gemm_wpack *lmp = kv->wp_on == 1 + kv->bf16_on ? kv->wp[kv->bf16_on][NPACK * c->L] : NULL;
	int m = 0;
	for (int r = 0; r <= R; r++) {
		if (r < R && rows[r].out >= 0) {
			/* gathered now, normalised together below */
			memcpy(kv->hout + (size_t)m * C, kv->x + (size_t)r * C, sizeof(float) * (size_t)C);
			kv->dst[m++] = logits + (size_t)rows[r].out * V;
		}
		if (m == kv->OUTG || (r == R && m > 0)) {
			iapo_rmsnorm_forward(kv->hout, NULL, kv->hout, norm, m, C, c->rms_eps);
			/* Rows bound for consecutive logits rows (every sequence's last
			 * token, as decoding asks) go there directly: no copy. */
			int consecutive = 1;
			for (int j = 1; j < m && consecutive; j++) consecutive = kv->dst[j] == kv->dst[0] + (size_t)j * V;
			iapo_gemm_op head = {.transB = 1, .M = m, .N = V, .K = C, .alpha = 1.0f, .A = kv->hout, .lda = C,
					     .B = lm, .ldb = C, .C = consecutive ? kv->dst[0] : kv->lbuf, .ldc = V, .Bh = lmh, .Bp = lmp};
			iapo_matmul_batch(1, &head);
			if (!consecutive) {
				for (int j = 0; j < m; j++)
					memcpy(kv->dst[j], kv->lbuf + (size_t)j * V, sizeof(float) * (size_t)V);
			}
			m = 0;
		}
	}
}

/* Moves the rows of a chunk that ask for logits to its front for the last
 * layer: their indices in sel, the rows themselves in kv->lrows, their
 * residual stream (x), normed input (h) and RoPE table (cs) rows likewise.
 * Returns their number m; sel is increasing, so the copies never overwrite a
 * row still to be moved. */
static int compact_out_rows(iapo_kv *kv, const iapo_kv_row *rows, int R)
{
	const int C = kv->w->cfg.C, HD = kv->w->cfg.HD;
	int m = 0;
	for (int r = 0; r < R; r++) {
		if (rows[r].out < 0) continue;
		kv->lrows[m] = rows[r];
		if (r != m) {
			memcpy(kv->x + (size_t)m * C, kv->x + (size_t)r * C, sizeof(float) * (size_t)C);
			memcpy(kv->h + (size_t)m * C, kv->h + (size_t)r * C, sizeof(float) * (size_t)C);
			memcpy(kv->cs + (size_t)m * HD, kv->cs + (size_t)r * HD, sizeof(float) * (size_t)HD);
		}
		m++;
	}
	return m;
}

/* Layer 0's q/k/v before RoPE are a function of the row's token alone (its
 * embedding, normed, times W + b), so rows with the same token share them:
 * the IAPO pass feeds the same K postfix tokens at every position, K - 1 of
 * every K rows. When a chunk's R rows hold at most R / 4 distinct tokens,
 * this moves the first row of each distinct token's normed input (kv->h) to
 * the front (rows [0, U), in order of first appearance: a row never moves
 * down, so none is overwritten before it moves), pads the front to at least
 * SHARE_MIN_M rows with copies of row 0 (so the product takes the same
 * packed path as R rows would, and every row's sums are the same bits), and
 * records in kv->uidx the front row each row copies. Returns the rows of
 * the product to run, or 0 when sharing does not pay or its products do
 * not fit kv->gate (then nothing moved). */
static int share_rows(iapo_kv *kv, int R)
{
	const iapo_config *c = &kv->w->cfg;
	const int C = c->C;
	/* the products go to kv->gate (R, F), free until the MLP: R / 4 rows of
	 * q, k and v must fit */
	if (R < 4 * SHARE_MIN_M || (long)c->NH * c->HD + 2L * c->NKV * c->HD > 4L * c->F) return 0;
	int *first = kv->uhash, U = 0;
	for (int i = 0; i < UHASH; i++) first[i] = -1;
	for (int r = 0; r < R; r++) {
		const int tok = kv->tok[r];
		unsigned hsh = (unsigned)tok * 2654435761u;
		int slot = (int)(hsh >> 20) & (UHASH - 1);
		while (first[slot] >= 0 && kv->tok[first[slot]] != tok) slot = (slot + 1) & (UHASH - 1);
		if (first[slot] < 0) {
			if (++U > R / 4) return 0;
			first[slot] = r;
			kv->uidx[r] = -1; /* a new token: numbered below */
		} else {
			kv->uidx[r] = first[slot];
		}
	}
	/* number the distinct tokens in order of first appearance; move their
	 * normed rows to the front */
	int u = 0;
	for (int r = 0; r < R; r++) {
		if (kv->uidx[r] >= 0) {
			kv->uidx[r] = kv->uidx[kv->uidx[r]]; /* the first row's number (set: it came earlier) */
			continue;
		}
		if (r != u) memcpy(kv->h + (size_t)u * C, kv->h + (size_t)r * C, sizeof(float) * (size_t)C);
		kv->uidx[r] = u++;
	}
	const int M = U < SHARE_MIN_M ? SHARE_MIN_M : U;
	for (int r = U; r < M; r++) memcpy(kv->h + (size_t)r * C, kv->h, sizeof(float) * (size_t)C);
	return M;
}

/* share_rows' products (M rows each of q, k, v side by side in kv->gate,
 * row stride Q + 2 KV) copied to every row of kv->q and kv->k: row r
 * takes product row kv->uidx[r] (its v too, which store_kv reads from the
 * product itself). Rows are independent, so the copies run on
 * the pool, ROWS_PER_COPY rows an item. */
#define ROWS_PER_COPY 64
typedef struct {
	iapo_kv *kv;
	int R, Q, KV;
} unshare_job;

static void unshare_item(void *ctx, long i, int worker)
{
	(void)worker;
	const unshare_job *J = ctx;
	iapo_kv *kv = J->kv;
	const int Q = J->Q, KV = J->KV, r1 = (int)(i + 1) * ROWS_PER_COPY < J->R ? (int)(i + 1) * ROWS_PER_COPY : J->R;
	const size_t ld = (size_t)Q + 2 * (size_t)KV;
	for (int r = (int)i * ROWS_PER_COPY; r < r1; r++) {
		const float *src = kv->gate + (size_t)kv->uidx[r] * ld;
		memcpy(kv->q + (size_t)r * Q, src, sizeof(float) * (size_t)Q);
		memcpy(kv->k + (size_t)r * KV, src + Q, sizeof(float) * (size_t)KV);
		/* v: store_kv reads it from kv->gate (nothing else reads layer 0's v) */
	}
}

#if defined(AB_ON)
typedef struct {
	iapo_kv *kv;
	const int *slots;
} convert_job;

/* Turning bf16 attention on: item (slot i, layer, kv head) converted. */
static void convert_item(void *ctx, long i, int worker)
{
	(void)worker;
	const convert_job *J = ctx;
	const iapo_config *c = &J->kv->w->cfg;
	const int g = (int)(i % c->NKV), l = (int)(i / c->NKV % c->L), k = (int)(i / ((long)c->NKV * c->L));
	const int s = J->slots[k];
	if (J->kv->sidx[s] == k) shadow_put(J->kv, l, s, g, 0, J->kv->hw[s]); /* a slot given twice: once */
}
#endif

iapo_status iapo_kv_attn_bf16(iapo_kv *kv, int on, const int *slots, int n)
{
	kv->ab_on = 0;
#if defined(AB_ON)
	const iapo_config *c = &kv->w->cfg;
	if (!on || c->HD % 16) return IAPO_OK;
	for (int i = 0; i < n; i++)
		if (slots[i] < 0 || slots[i] >= kv->S)
			return iapo_fail(IAPO_ERR_ARG, "kv cache: bf16 attention: slot %d: expected one in [0, %d), found %d",
					 i, kv->S, slots[i]);
	if (!kv->kb) {
		const size_t cache = (size_t)c->L * kv->S * c->NKV * kv->Tpad * c->HD;
		kv->kb = iapo_alloc_aligned(cache * sizeof(uint16_t));
		kv->vb = iapo_alloc_aligned(cache * sizeof(uint16_t));
		if (!kv->kb || !kv->vb) {
			iapo_free_aligned(kv->kb);
			iapo_free_aligned(kv->vb);
			kv->kb = kv->vb = NULL;
			return iapo_fail(IAPO_ERR_NOMEM, "kv cache: out of memory: bf16 K/V (2 x %zu bytes)",
					 cache * sizeof(uint16_t));
		}
		/* zeros from iapo_alloc_aligned, so finite everywhere: a lane
		 * never written is masked where it is read, and zeros keep even a
		 * masked product clean */
	}
	convert_job J = {kv, slots};
	for (int i = 0; i < n; i++)
		if (kv->sidx[slots[i]] < 0) kv->sidx[slots[i]] = i;
	iapo_pool_for((long)n * c->L * c->NKV, convert_item, &J);
	for (int i = 0; i < n; i++) kv->sidx[slots[i]] = -1;
	kv->ab_on = 1;
	/* vdpbf16ps or the same products by fp32 FMAs, as the packed products
	 * choose (the probe runs once a process) */
	kv->ab_fma = c->HD % 64 == 0 && c->HD <= HD_BW && !iapo_sgemm_bf16_dot(NULL, NULL);
#else
	(void)on;
	(void)slots;
	(void)n;
#endif
	return IAPO_OK;
}

int iapo_kv_attn_bf16_on(const iapo_kv *kv) { return kv->ab_on; }
int iapo_kv_attn_bf16_fma(const iapo_kv *kv) { return kv->ab_on && kv->ab_fma; }

/* One chunk of R <= Rmax validated rows.
 * In the last layer a row that asks for no logits only has to leave its K/V
 * (later rows attend to them): nothing reads its attention output, MLP or
 * final norm. So there the K/V projections run over all R rows and the rest
 * of the layer (q, attention, o-proj, MLP, lm_head) over the m rows that ask
 * for logits only. The IAPO pass (one logits row per K postfix rows) and
 * every prefill (one per prompt) skip most of a layer this way; decoding
 * (every row asks) runs unchanged. */
static void run_chunk(iapo_kv *kv, const iapo_kv_row *rows, int R, float *logits)
{
	const iapo_config *c = &kv->w->cfg;
	const iapo_params *p = &kv->w->p;
	const int C = c->C, NH = c->NH, NKV = c->NKV, HD = c->HD, F = c->F;
	const int Q = NH * HD, KV = NKV * HD;
	for (int r = 0; r < R; r++) {
		kv->tok[r] = rows[r].token;
		kv->pos[r] = rows[r].pos;
	}
	const int made = kv->bf16_on ? kv->snap : 0;
	for (int r = 0; r < R; r++) {
		int *mk = &kv->made[rows[r].seq];
		*mk = *mk == SLOT_EMPTY || *mk == made ? made : SLOT_MIXED;
	}
	iapo_embedding_forward(kv->x, p->t[IAPO_P_EMBED], kv->tok, R, C); // (R,C)
	for (int r = 0; r < R; r++) { /* rows of the table (the same bits as computing them now) */
		if (kv->pos[r] < kv->ntab)
			memcpy(kv->cs + (size_t)r * HD, kv->ropet + (size_t)kv->pos[r] * HD, sizeof(float) * (size_t)HD);
		else
			iapo_rope_table(kv->cs + (size_t)r * HD, kv->pos + r, 1, HD, kv->inv_freq);
	}
	int m = R; /* rows past the K/V of the layer (all but in the last one) */
	iapo_gemm_wpack *const *packs = kv->wp_on == 1 + kv->bf16_on ? kv->wp[kv->bf16_on] : NULL;
	for (int l = 0; l < c->L; l++) {
#define LW(which) (p->t[which] + (size_t)l * iapo_param_layer_size(c, which))
#define LH(which) \
	(kv->bf16_on && kv->wh_t[which] ? kv->wh_t[which] + (size_t)l * iapo_param_layer_size(c, which) : NULL)
#define LP(which) (packs ? packs[pack_slot(l, which)] : NULL)
		if (l == c->L - 1) {
			m = 0;
			for (int r = 0; r < R; r++) m += rows[r].out >= 0;
		}
		iapo_rmsnorm_forward(kv->h, NULL, kv->x, LW(IAPO_P_LN1), R, C, c->rms_eps);
		/* k/v (and q unless only some rows go on) and their biases in one
		 * parallel job */
		iapo_gemm_op qkv[3] = {
			{.transB = 1, .M = R, .N = KV, .K = C, .alpha = 1.0f, .A = kv->h, .lda = C, .B = LW(IAPO_P_WK),
			 .ldb = C, .C = kv->k, .ldc = KV, .bias = c->qkv_bias ? LW(IAPO_P_BK) : NULL,
			 .Bh = LH(IAPO_P_WK), .Bp = LP(IAPO_P_WK)}, // (R,NKV*HD)
			{.transB = 1, .M = R, .N = KV, .K = C, .alpha = 1.0f, .A = kv->h, .lda = C, .B = LW(IAPO_P_WV),
			 .ldb = C, .C = kv->v, .ldc = KV, .bias = c->qkv_bias ? LW(IAPO_P_BV) : NULL,
			 .Bh = LH(IAPO_P_WV), .Bp = LP(IAPO_P_WV)},
			{.transB = 1, .M = R, .N = Q, .K = C, .alpha = 1.0f, .A = kv->h, .lda = C, .B = LW(IAPO_P_WQ),
			 .ldb = C, .C = kv->q, .ldc = Q, .bias = c->qkv_bias ? LW(IAPO_P_BQ) : NULL,
			 .Bh = LH(IAPO_P_WQ), .Bp = LP(IAPO_P_WQ)}, // (R,NH*HD)
		};
		/* layer 0 of a chunk with few distinct tokens: the products of
		 * those alone, copied to the rows that share them (not when layer
		 * 0 is also the last: its q runs later, over the rows of kv->h) */
		const int shared = l == 0 && c->L > 1 ? share_rows(kv, R) : 0;
		if (shared) {
			iapo_gemm_op sq[3] = {qkv[0], qkv[1], qkv[2]};
			const int ld = Q + 2 * KV;
			float *out[3] = {kv->gate + Q, kv->gate + Q + KV, kv->gate}; /* k, v, q */
			for (int i = 0; i < 3; i++) {
				sq[i].M = shared;
				sq[i].C = out[i];
				sq[i].ldc = ld;
			}
			iapo_matmul_batch(3, sq);
			unshare_job J = {kv, R, Q, KV};
			iapo_pool_for((R + ROWS_PER_COPY - 1) / ROWS_PER_COPY, unshare_item, &J);
		} else {
			iapo_matmul_batch(m == R ? 3 : 2, qkv);
		}
		float *q = kv->q, *k = kv->k;
		if (c->qk_norm) {
			iapo_rmsnorm_forward(kv->kn, NULL, kv->k, LW(IAPO_P_KNORM), R * NKV, HD, c->rms_eps);
			k = kv->kn;
		}
		/* k now, q once it is known which rows it has (same arithmetic) */
		iapo_rope_apply_table(k, NKV, NULL, 0, kv->cs, R, HD, 0);
		store_kv(kv, l, rows, R, k, shared > 0);
		if (m < R) { /* last layer: only the rows that ask for logits go on */
			if (m == 0) break;
			compact_out_rows(kv, rows, R);
			rows = kv->lrows;
			R = m;
			qkv[2].M = m;
			iapo_matmul_batch(1, &qkv[2]);
		}
		if (c->qk_norm) {
			iapo_rmsnorm_forward(kv->qn, NULL, kv->q, LW(IAPO_P_QNORM), R * NH, HD, c->rms_eps);
			q = kv->qn;
		}
		iapo_rope_apply_table(q, NH, NULL, 0, kv->cs, R, HD, 0);
		attend(kv, l, rows, R, q, kv->att);
		iapo_gemm_op o = {.transB = 1, .M = R, .N = C, .K = Q, .alpha = 1.0f, .beta = 1.0f, .A = kv->att, .lda = Q,
				  .B = LW(IAPO_P_WO), .ldb = Q, .C = kv->x, .ldc = C, .Bh = LH(IAPO_P_WO), .Bp = LP(IAPO_P_WO)};
		iapo_matmul_batch(1, &o); // x += (R,C)
		iapo_rmsnorm_forward(kv->h, NULL, kv->x, LW(IAPO_P_LN2), R, C, c->rms_eps);
		iapo_gemm_op gu[2] = {
			{.transB = 1, .M = R, .N = F, .K = C, .alpha = 1.0f, .A = kv->h, .lda = C, .B = LW(IAPO_P_WGATE),
			 .ldb = C, .C = kv->gate, .ldc = F, .Bh = LH(IAPO_P_WGATE), .Bp = LP(IAPO_P_WGATE)}, // (R,F)
			{.transB = 1, .M = R, .N = F, .K = C, .alpha = 1.0f, .A = kv->h, .lda = C, .B = LW(IAPO_P_WUP),
			 .ldb = C, .C = kv->up, .ldc = F, .Bh = LH(IAPO_P_WUP), .Bp = LP(IAPO_P_WUP)},
		};
		/* few rows, as decoding has: gate's and up's packs as one stream,
		 * SwiGLU as its pieces finish (same bits) */
		if (!(pair_swiglu && packs && strcmp(iapo_matmul_backend(), "openblas") &&
		      iapo_sgemm_swiglu_pair(gu, kv->act, F))) {
			iapo_matmul_batch(2, gu);
			iapo_swiglu_forward(kv->act, kv->gate, kv->up, (size_t)R * F);
		}
		iapo_gemm_op d = {.transB = 1, .M = R, .N = C, .K = F, .alpha = 1.0f, .beta = 1.0f, .A = kv->act, .lda = F,
				  .B = LW(IAPO_P_WDOWN), .ldb = F, .C = kv->x, .ldc = C, .Bh = LH(IAPO_P_WDOWN), .Bp = LP(IAPO_P_WDOWN)};
		iapo_matmul_batch(1, &d); // x += (R,C)
#undef LW
#undef LH
#undef LP
	}
	if (m > 0) project(kv, rows, R, logits);
}

static iapo_status check_range(const iapo_kv *kv, int seq, int start, int len, int r, const char *what)
{
	if (seq < 0 || seq >= kv->S || start < 0 || len < 0 || start + len > kv->Tmax)
		return iapo_fail(IAPO_ERR_ARG,
				 "kv cache: row %d: %s: expected slot in [0, %d) and positions within [0, %d), "
				 "found slot %d, positions [%d, %d)",
				 r, what, kv->S, kv->Tmax, seq, start, start + len);
	return IAPO_OK;
}

static iapo_status check_rows(const iapo_kv *kv, const iapo_kv_row *rows, int R, const float *logits)
{
	const int V = kv->w->cfg.V;
	if (R < 0) return iapo_fail(IAPO_ERR_ARG, "kv cache: rows: expected >= 0, found %d", R);
	for (int r = 0; r < R; r++) {
		const iapo_kv_row *x = &rows[r];
		if (x->token < 0 || x->token >= V)
			return iapo_fail(IAPO_ERR_ARG, "kv cache: row %d: token: expected an id in [0, %d), found %d", r,
					 V, x->token);
		if (x->pos < 0)
			return iapo_fail(IAPO_ERR_ARG, "kv cache: row %d: position: expected >= 0, found %d", r, x->pos);
		IAPO_TRY(check_range(kv, x->seq, x->slot, 1, r, "K/V slot"));
		IAPO_TRY(check_range(kv, x->keys.seq0, 0, x->keys.len0, r, "keys"));
		if (x->keys.len1 > 0) IAPO_TRY(check_range(kv, x->keys.seq1, x->keys.start1, x->keys.len1, r, "keys"));
		if (x->keys.len0 + (x->keys.len1 > 0 ? x->keys.len1 : 0) <= 0)
			return iapo_fail(IAPO_ERR_ARG, "kv cache: row %d: keys: expected at least one, found none", r);
		if (x->out >= 0 && !logits)
			return iapo_fail(IAPO_ERR_ARG, "kv cache: row %d: asks for logits but no buffer was given", r);
	}
	return IAPO_OK;
}

/* R checked rows, Rmax at a time. */
static void run_rows(iapo_kv *kv, const iapo_kv_row *rows, int R, float *logits)
{
	for (int r0 = 0; r0 < R; r0 += kv->Rmax) {
		int n = R - r0 < kv->Rmax ? R - r0 : kv->Rmax;
		run_chunk(kv, rows + r0, n, logits);
	}
}

iapo_status iapo_kv_forward_rows(iapo_kv *kv, const iapo_kv_row *rows, int R, float *logits)
{
	IAPO_TRY(check_rows(kv, rows, R, logits));
	run_rows(kv, rows, R, logits);
	return IAPO_OK;
}

/* Whether rows [0, split) and [split, R) are independent: neither half
 * writes a slot that the other writes or reads (kv->sidx, -1 between calls,
 * marks the first half's written slots 1, its read ones 2, both 3). */
static int halves_apart(iapo_kv *kv, const iapo_kv_row *rows, int R, int split)
{
	int ok = 1;
	for (int r = 0; r < split; r++) {
		const iapo_kv_row *x = &rows[r];
		kv->sidx[x->seq] = kv->sidx[x->seq] < 0 ? 1 : kv->sidx[x->seq] | 1;
		kv->sidx[x->keys.seq0] = kv->sidx[x->keys.seq0] < 0 ? 2 : kv->sidx[x->keys.seq0] | 2;
		if (x->keys.len1 > 0) kv->sidx[x->keys.seq1] = kv->sidx[x->keys.seq1] < 0 ? 2 : kv->sidx[x->keys.seq1] | 2;
	}
	for (int r = split; r < R && ok; r++) {
		const iapo_kv_row *x = &rows[r];
		const int s = kv->sidx[x->seq];
		ok = s < 0 && (kv->sidx[x->keys.seq0] < 0 || !(kv->sidx[x->keys.seq0] & 1)) &&
		     (x->keys.len1 <= 0 || kv->sidx[x->keys.seq1] < 0 || !(kv->sidx[x->keys.seq1] & 1));
	}
	for (int r = 0; r < split; r++) {
		const iapo_kv_row *x = &rows[r];
		kv->sidx[x->seq] = kv->sidx[x->keys.seq0] = -1;
		if (x->keys.len1 > 0) kv->sidx[x->keys.seq1] = -1;
	}
	return ok;
}

/* The twin of kv, its shared fields as kv's now; NULL when it cannot be
 * allocated. */
static iapo_kv *twin_of(iapo_kv *kv)
{
	if (!kv->twin) {
		iapo_kv *t = iapo_calloc(1, sizeof *t);
		if (!t) return NULL;
		t->w = kv->w, t->S = kv->S, t->Rmax = kv->Rmax, t->OUTG = kv->OUTG;
		if (scratch_new(t) != IAPO_OK) {
			scratch_free(t);
			iapo_free(t);
			iapo_clear_error();
			return NULL;
		}
		kv->twin = t;
	}
	iapo_kv *t = kv->twin, own = *t;
	*t = *kv;
	t->twin = NULL;
#define KEEP(f) t->f = own.f;
	SCRATCH_FIELDS(KEEP)
#undef KEEP
	return t;
}

typedef struct {
	iapo_kv *kv[2];
	const iapo_kv_row *rows[2];
	int n[2];
	float *logits;
} halves_job;

static void halves_item(void *ctx, long i, int worker)
{
	(void)worker;
	const halves_job *J = ctx;
	run_rows(J->kv[i], J->rows[i], J->n[i], J->logits);
}

/* Whether every product of the halves takes the path it takes for all R
 * rows in one chunk, so that every row's sums are the same bits: the
 * packed path's do not depend on the rows beside a row, the direct path's
 * (up to 16 rows) differ from them. So each half has HALF_MIN_ROWS rows at
 * least, in all layers and in the last one (rows that ask for logits), and
 * each logits row's vocabulary product (OUTG rows at a time) takes the
 * packed path in its half as in the whole, or both take the direct path
 * with the same rows: the halves' groups are the whole's (the first half's
 * logits rows a multiple of OUTG), or no group of the whole or of either
 * half is short (HALF_MIN_ROWS at least: 32 and 32 logits rows, the
 * information pass's chunk of 64 positions at 8 postfix tokens, whose
 * whole is one group of 64). */
#define HALF_MIN_ROWS IAPO_KV_HALF_MIN_ROWS
static int groups_packed(const iapo_kv *kv, int m)
{
	return m % kv->OUTG == 0 || m % kv->OUTG >= HALF_MIN_ROWS;
}

static int halves_same_paths(const iapo_kv *kv, const iapo_kv_row *rows, int R, int split)
{
	if (R > kv->Rmax || split < HALF_MIN_ROWS || R - split < HALF_MIN_ROWS) return 0;
	int m0 = 0, m1 = 0;
	for (int r = 0; r < R; r++)
		if (rows[r].out >= 0) *(r < split ? &m0 : &m1) += 1;
	if (m0 + m1 == 0) return 1;
	return m0 >= HALF_MIN_ROWS && m1 >= HALF_MIN_ROWS &&
	       (m0 % kv->OUTG == 0 || (groups_packed(kv, m0) && groups_packed(kv, m1) && groups_packed(kv, m0 + m1)));
}

/* Threads at which the halves run. They are two pool items, and a call from
 * inside an item runs on its thread alone (pool.h), so each half has one
 * thread for all its products and attention. On 2 threads that pays (no
 * barriers inside a half: session 14, -10..-19% of the pass's CPU, 0.77-0.96x
 * its wall); on more, every thread but two would idle (session 16's 16-thread
 * Xeon: ~2 cores busy), so the whole chunk runs on all of them. 3 threads
 * take the whole chunk too: a third thread should give more than the halves
 * save (not measured on 3 cores). */
#define HALVES_THREADS 2

iapo_status iapo_kv_forward_rows_split(iapo_kv *kv, const iapo_kv_row *rows, int R, int split, float *logits)
{
	IAPO_TRY(check_rows(kv, rows, R, logits));
	iapo_kv *t = NULL;
	if (iapo_pool_threads() == HALVES_THREADS && halves_same_paths(kv, rows, R, split) && halves_apart(kv, rows, R, split))
		t = twin_of(kv);
	if (!t) {
		run_rows(kv, rows, R, logits);
		return IAPO_OK;
	}
	halves_job J = {{kv, t}, {rows, rows + split}, {split, R - split}, logits};
	iapo_pool_for(2, halves_item, &J);
	kv->nsplit++;
	return IAPO_OK;
}

long iapo_kv_splits(const iapo_kv *kv) { return kv->nsplit; }

iapo_status iapo_kv_forward(iapo_kv *kv, const int *const *tokens, const int *n, float *logits)
{
	const int V = kv->w->cfg.V;
	for (int b = 0; b < kv->S; b++) {
		if (n[b] < 0) return iapo_fail(IAPO_ERR_ARG, "kv cache: sequence %d: tokens to append: expected >= 0, found %d", b, n[b]);
		if (n[b] == 0) continue;
		if (n[b] > kv->Tmax - kv->len[b])
			return iapo_fail(IAPO_ERR_ARG,
					 "kv cache: sequence %d: length: expected at most %d tokens (the cache's Tmax), "
					 "found %d cached + %d appended",
					 b, kv->Tmax, kv->len[b], n[b]);
		if (!tokens[b]) return iapo_fail(IAPO_ERR_ARG, "kv cache: sequence %d: %d tokens but no token array", b, n[b]);
		for (int j = 0; j < n[b]; j++)
			if (tokens[b][j] < 0 || tokens[b][j] >= V)
				return iapo_fail(IAPO_ERR_ARG, "kv cache: sequence %d, token %d: expected an id in [0, %d), found %d",
						 b, j, V, tokens[b][j]);
	}
	int R = 0;
	for (int b = 0; b < kv->S; b++)
		for (int j = 0; j < n[b]; j++) {
			iapo_kv_row *x = &kv->rows[R++];
			int at = kv->len[b] + j;
			x->token = tokens[b][j];
			x->pos = at;
			x->seq = b;
			x->slot = at;
			x->keys = (iapo_kv_keys){.seq0 = b, .len0 = at + 1};
			x->out = j == n[b] - 1 ? b : -1;
			if (R == kv->Rmax) {
				run_chunk(kv, kv->rows, R, logits);
				R = 0;
			}
		}
	if (R > 0) run_chunk(kv, kv->rows, R, logits);
	for (int b = 0; b < kv->S; b++) kv->len[b] += n[b];
	return IAPO_OK;
}
