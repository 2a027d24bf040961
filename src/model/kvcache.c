/*
 * kvcache.c — the cached inference forward (see kvcache.h for the contract).
 *
 * Layout: K and V caches are (L, S, NKV, Tmax, HD): for one layer, slot and
 * kv head the keys are contiguous in position, so a query head walks them
 * with unit stride. Scratch activations are sized for Rmax rows (one chunk)
 * and the vocabulary projection for OUTG rows at a time; both are allocated
 * in iapo_kv_new.
 *
 * A chunk of R rows runs the same layer wiring as the training forward
 * (transformer.c): RMSNorm, q/k/v projections (+ bias), per-head q/k RMSNorm
 * (Qwen3), RoPE at each row's position, K/V stored into their slots, cached
 * attention, output projection added to the residual, RMSNorm, SwiGLU MLP
 * added to the residual; then the final norm and lm_head for rows that want
 * logits. Attention is an online softmax over tiles of keys, parallel over
 * (row, query head); each (row, head) is summed in a fixed order, so results
 * do not depend on the thread count or on which rows share a call. With
 * AVX-512 (and a head dim that is a multiple of 16) a tile's scores are 16
 * dot products reduced together, its max, exponentials and sum run 16 lanes
 * at a time, and P.V keeps the head's sum in registers (two partial sums per
 * 16 columns, so small head dims are not bound by the FMA latency). Rows
 * that attend to the same first span (the postfix rows of one IAPO position)
 * are scored together, so each key/value tile is read once for all of them.
 */
#include "model/kvcache.h"

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

#define HD_MAX 512   /* head dims in use are 64..256; HD_MAX <= HC_FLOATS */
#define KTILE 64     /* keys scored per tile (on the stack) */
#define RMAX_CAP 512 /* rows per chunk: enough for GEMM efficiency, bounded scratch */
#define OUTG_CAP 64  /* rows per vocabulary GEMM */
#define SLOT_EMPTY (-2) /* kv->made: nothing computed since the slot was made or reset */
#define SLOT_MIXED (-1) /* computed with more than one set of weights */

struct iapo_kv {
	const iapo_weights *w;
	int S, Tmax, Rmax, OUTG;
	int *len;        /* (S) */
	float *kc, *vc;  /* (L, S, NKV, Tmax, HD) each */
	float *inv_freq; /* (HD/2) */
	float *cs;       /* (Rmax, HD) RoPE cos | sin of the chunk's rows */
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
	/* bf16 snapshot of the weight matrices (iapo_kv_use_bf16), or NULL:
	 * wh_t[which] is tensor which's copy (NULL for norms, biases, and the
	 * embedding of an untied model, which is only looked up) */
	uint16_t *wh;
	const uint16_t *wh_t[IAPO_NUM_PARAMS];
	int bf16_on; /* multiply by wh (kept allocated while off, for the next snapshot) */
	int snap;    /* number of the snapshot in wh (1, 2, ...; 0: none taken) */
	int *made;   /* (S) what each slot's K/V were computed with: SLOT_EMPTY, SLOT_MIXED, 0 (fp32) or a
		      * snapshot number */
};

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
	}
}

void iapo_kv_free(iapo_kv *kv)
{
	if (!kv) return;
	iapo_free(kv->len);
	iapo_free(kv->made);
	iapo_free_aligned(kv->kc);
	iapo_free_aligned(kv->vc);
	iapo_free(kv->inv_freq);
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
	iapo_free_aligned(kv->wh);
	iapo_free(kv);
}

static iapo_status alloc_f(float **p, size_t n, const char *what)
{
	*p = iapo_alloc_aligned(n * sizeof(float));
	if (!*p) return iapo_fail(IAPO_ERR_NOMEM, "kv cache: out of memory: %s (%zu bytes)", what, n * sizeof(float));
	return IAPO_OK;
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
	size_t L = (size_t)c->L, C = (size_t)c->C, Q = (size_t)c->NH * c->HD, KV = (size_t)c->NKV * c->HD;
	size_t F = (size_t)c->F, V = (size_t)c->V;
	iapo_kv *kv = iapo_calloc(1, sizeof *kv);
	if (!kv) return iapo_fail(IAPO_ERR_NOMEM, "kv cache: out of memory");
	kv->w = w;
	kv->S = B;
	kv->Tmax = Tmax;
	long rows = (long)B * Tmax;
	kv->Rmax = rows < RMAX_CAP ? (int)rows : RMAX_CAP;
	kv->OUTG = kv->Rmax < OUTG_CAP ? kv->Rmax : OUTG_CAP;
	size_t R = (size_t)kv->Rmax, G = (size_t)kv->OUTG;
	size_t cache = L * (size_t)B * (size_t)Tmax * KV;
	iapo_status st = IAPO_OK;
	kv->len = iapo_calloc((size_t)B, sizeof(int));
	kv->made = iapo_malloc(sizeof(int) * (size_t)B);
	kv->inv_freq = iapo_malloc(sizeof(float) * (size_t)(c->HD / 2));
	kv->tok = iapo_malloc(sizeof(int) * R);
	kv->pos = iapo_malloc(sizeof(int) * R);
	kv->dst = iapo_malloc(sizeof(float *) * G);
	kv->rows = iapo_malloc(sizeof(iapo_kv_row) * R);
	kv->lrows = iapo_malloc(sizeof(iapo_kv_row) * R);
	kv->atask = iapo_malloc(sizeof(int) * 3 * R * (size_t)c->NH);
	if (!kv->len || !kv->made || !kv->inv_freq || !kv->tok || !kv->pos || !kv->dst || !kv->rows || !kv->lrows || !kv->atask) {
		st = iapo_fail(IAPO_ERR_NOMEM, "kv cache: out of memory");
		goto fail;
	}
	IAPO_CHECK(st, alloc_f(&kv->kc, cache, "key cache"));
	IAPO_CHECK(st, alloc_f(&kv->vc, cache, "value cache"));
	IAPO_CHECK(st, alloc_f(&kv->cs, R * (size_t)c->HD, "rope table"));
	IAPO_CHECK(st, alloc_f(&kv->x, R * C, "activations"));
	IAPO_CHECK(st, alloc_f(&kv->h, R * C, "activations"));
	IAPO_CHECK(st, alloc_f(&kv->q, R * Q, "activations"));
	IAPO_CHECK(st, alloc_f(&kv->qn, R * Q, "activations"));
	IAPO_CHECK(st, alloc_f(&kv->k, R * KV, "activations"));
	IAPO_CHECK(st, alloc_f(&kv->kn, R * KV, "activations"));
	IAPO_CHECK(st, alloc_f(&kv->v, R * KV, "activations"));
	IAPO_CHECK(st, alloc_f(&kv->att, R * Q, "activations"));
	IAPO_CHECK(st, alloc_f(&kv->gate, R * F, "activations"));
	IAPO_CHECK(st, alloc_f(&kv->up, R * F, "activations"));
	IAPO_CHECK(st, alloc_f(&kv->act, R * F, "activations"));
	IAPO_CHECK(st, alloc_f(&kv->hout, G * C, "activations"));
	IAPO_CHECK(st, alloc_f(&kv->lbuf, G * V, "logits"));
	iapo_rope_inv_freq(c, kv->inv_freq);
	for (int b = 0; b < B; b++) kv->made[b] = SLOT_EMPTY;
	*out = kv;
	return IAPO_OK;
fail:
	iapo_kv_free(kv);
	return st;
}

/* Base of the keys (or values) of one layer, slot and kv head: (Tmax, HD). */
static inline float *cache_at(const iapo_kv *kv, float *cache, int l, int seq, int g)
{
	const iapo_config *c = &kv->w->cfg;
	return cache + ((((size_t)l * kv->S + seq) * c->NKV + g) * kv->Tmax) * c->HD;
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
	f32_bits p = {.i = (t.i - 0x4B400000 + 127) << 23};
	return y * p.f;
}

/* Query vectors attended together (they share each K/V row they read: the
 * query heads of one kv head, of one or several rows); at most HC_MAX and
 * HC_FLOATS / HD of them, so scores and accumulators fit the stack. */
#define HC_MAX 16
#define HC_FLOATS 4096

/* Online softmax of hc query vectors q[h] (HD each) that share one kv head, over n
 * keys K, values Vv (n, HD); running max m (hc), sum l (hc), acc (hc, HD).
 * Each head's arithmetic is the same whatever hc is, so grouping choices
 * (which depend on the batch and thread count) never change a result. */
#if defined(__AVX512F__)
/* Lane i: the sum of a[i]'s lanes (45 shuffles and adds, not 16 reductions). */
static inline __m512 reduce16(const __m512 a[16])
{
	__m512 u[8], w[4];
	for (int p = 0; p < 8; p++)
		u[p] = _mm512_add_ps(_mm512_unpacklo_ps(a[2 * p], a[2 * p + 1]), _mm512_unpackhi_ps(a[2 * p], a[2 * p + 1]));
	for (int g = 0; g < 4; g++) {
		__m512d x = _mm512_castps_pd(u[2 * g]), y = _mm512_castps_pd(u[2 * g + 1]);
		w[g] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(x, y)), _mm512_castpd_ps(_mm512_unpackhi_pd(x, y)));
	}
	__m512 x = _mm512_add_ps(_mm512_shuffle_f32x4(w[0], w[1], 0x88), _mm512_shuffle_f32x4(w[0], w[1], 0xdd));
	__m512 y = _mm512_add_ps(_mm512_shuffle_f32x4(w[2], w[3], 0x88), _mm512_shuffle_f32x4(w[2], w[3], 0xdd));
	return _mm512_add_ps(_mm512_shuffle_f32x4(x, y, 0x88), _mm512_shuffle_f32x4(x, y, 0xdd));
}

/* Fetches rows [t0, t0 + n) of a (n_all, HD) cache (clipped to n_all)
 * ahead of use: the hardware prefetcher of this VM barely follows short
 * streams, and each (row, kv head) task reads its own few tens of KB. */
static inline void prefetch_rows(const float *X, int t0, int n, int n_all, int HD)
{
	const int t1 = t0 + n < n_all ? t0 + n : n_all;
	const char *p = (const char *)(X + (size_t)t0 * HD), *e = (const char *)(X + (size_t)t1 * HD);
	for (; p < e; p += 64) _mm_prefetch(p, _MM_HINT_T0);
}

/* sh[t] = scale * q . K[t] for t < nt, 16 keys at a time (HD a multiple of
 * 16); keys past nt reuse row 0 and their lanes are not stored. pf: fetch
 * the keys 32 ahead (and their values) as well. */
static void scores16(const float *q, const float *K, const float *Vv, int nt, int n_all, int HD, float scale,
		     float *sh, int pf)
{
	for (int t0 = 0; t0 < nt; t0 += 16) {
		const int n = nt - t0 < 16 ? nt - t0 : 16;
		if (pf) {
			prefetch_rows(K, t0 + 32, 16, n_all, HD);
			prefetch_rows(Vv, t0 + 16, 16, n_all, HD);
		}
		__m512 acc[16];
		for (int t = 0; t < 16; t++) acc[t] = _mm512_setzero_ps();
		if (n == 16) { /* a full tile: one base and fixed strides, no pointer table */
			const float *k0 = K + (size_t)t0 * HD;
			for (int d = 0; d < HD; d += 16) {
				__m512 qv = _mm512_loadu_ps(q + d);
#pragma GCC unroll 16
				for (int t = 0; t < 16; t++)
					acc[t] = _mm512_fmadd_ps(qv, _mm512_loadu_ps(k0 + (size_t)t * HD + d), acc[t]);
			}
		} else {
			const float *kr[16];
			for (int t = 0; t < 16; t++) kr[t] = K + (size_t)(t0 + (t < n ? t : 0)) * HD;
			for (int d = 0; d < HD; d += 16) {
				__m512 qv = _mm512_loadu_ps(q + d);
#pragma GCC unroll 16
				for (int t = 0; t < 16; t++) acc[t] = _mm512_fmadd_ps(qv, _mm512_loadu_ps(kr[t] + d), acc[t]);
			}
		}
		__m512 s = _mm512_mul_ps(reduce16(acc), _mm512_set1_ps(scale));
		_mm512_mask_storeu_ps(sh + t0, (__mmask16)((1u << n) - 1), s);
	}
}

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

static inline __mmask16 tail_mask(int n) { return n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1); }

/* One tile of one query vector's online softmax, 16 lanes at a time (the
 * scalar loops below were not vectorised: max, exp and sum took as long as
 * the dot products): the tile's max into *m (rescaling *l and the
 * accumulator ah (HD) when it grows), sh[0..nt) = exp(sh − max), their sum
 * added to *l. */
static void softmax_tile16(float *sh, int nt, float *m, float *l, float *ah, int HD)
{
	__m512 vmx = _mm512_set1_ps(-INFINITY);
	for (int t = 0; t < nt; t += 16)
		vmx = _mm512_max_ps(vmx, _mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), tail_mask(nt - t), sh + t));
	float mx = _mm512_reduce_max_ps(vmx);
	if (mx > *m) {
		const float corr = expf(*m - mx); /* 0 on the first tile (m = -inf) */
		*l *= corr;
		const __m512 c = _mm512_set1_ps(corr);
		for (int d = 0; d < HD; d += 16) _mm512_storeu_ps(ah + d, _mm512_mul_ps(_mm512_loadu_ps(ah + d), c));
		*m = mx;
	}
	mx = *m;
	const __m512 vm = _mm512_set1_ps(mx);
	__m512 sum = _mm512_setzero_ps();
	for (int t = 0; t < nt; t += 16) {
		const __mmask16 k = tail_mask(nt - t);
		const __m512 e = _mm512_maskz_mov_ps(k, exp_nonpos16(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, sh + t), vm)));
		_mm512_mask_storeu_ps(sh + t, k, e);
		sum = _mm512_add_ps(sum, e);
	}
	*l += _mm512_reduce_add_ps(sum);
}

/* nr (1..4) blocks of 16 columns of ah += sum_t p[t] V[t]: two partial sums
 * (even and odd t) per block, so that up to 8 independent FMA chains hide
 * the FMA latency (one chain per block, with 1-2 blocks at head dims 16-32,
 * left it latency-bound). Inlined with a constant nr, the sums stay in
 * registers. */
static inline __attribute__((always_inline)) void pv_cols(float *ah, const float *p, const float *Vv, int nt, int HD,
							 int nr)
{
	__m512 a[4], b[4];
	for (int v = 0; v < nr; v++) {
		a[v] = _mm512_loadu_ps(ah + 16 * v);
		b[v] = _mm512_setzero_ps();
	}
	int t = 0;
	for (; t + 1 < nt; t += 2) {
		const __m512 w0 = _mm512_set1_ps(p[t]), w1 = _mm512_set1_ps(p[t + 1]);
		const float *r0 = Vv + (size_t)t * HD, *r1 = r0 + HD;
		for (int v = 0; v < nr; v++) {
			a[v] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(r0 + 16 * v), a[v]);
			b[v] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(r1 + 16 * v), b[v]);
		}
	}
	if (t < nt) {
		const __m512 w0 = _mm512_set1_ps(p[t]);
		for (int v = 0; v < nr; v++) a[v] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(Vv + (size_t)t * HD + 16 * v), a[v]);
	}
	for (int v = 0; v < nr; v++) _mm512_storeu_ps(ah + 16 * v, _mm512_add_ps(a[v], b[v]));
}

/* ah (HD) += sum_t p[t] V[t] for t < nt, the head's accumulator in registers
 * (HD a multiple of 16, at most 256): 64 columns at a time, then the rest. */
static void pv16(float *ah, const float *p, const float *Vv, int nt, int HD)
{
	int v0 = 0;
	for (; v0 + 64 <= HD; v0 += 64) pv_cols(ah + v0, p, Vv + v0, nt, HD, 4);
	switch ((HD - v0) / 16) {
	case 3: pv_cols(ah + v0, p, Vv + v0, nt, HD, 3); break;
	case 2: pv_cols(ah + v0, p, Vv + v0, nt, HD, 2); break;
	case 1: pv_cols(ah + v0, p, Vv + v0, nt, HD, 1); break;
	default: break;
	}
}
#endif

static void attend_range(const float *const *q, int hc, const float *K, const float *Vv, int n, int HD, float scale,
			 float *m, float *l, float *acc)
{
	float sc[HC_MAX * KTILE]; /* (hc, KTILE) */
#if defined(__AVX512F__)
	const int fast = HD % 16 == 0;
#else
	const int fast = 0;
#endif
#if defined(__AVX512F__)
	if (fast) { /* the first keys and values, before the first scores need them */
		prefetch_rows(K, 0, 32, n, HD);
		prefetch_rows(Vv, 0, 16, n, HD);
	}
#endif
	for (int t0 = 0; t0 < n; t0 += KTILE) {
		const int nt = n - t0 < KTILE ? n - t0 : KTILE;
#if defined(__AVX512F__)
		if (fast)
			for (int h = 0; h < hc; h++)
				scores16(q[h], K + (size_t)t0 * HD, Vv + (size_t)t0 * HD, nt, n - t0, HD, scale,
					 sc + h * KTILE, h == 0);
#endif
		for (int t = 0; t < nt && !fast; t++) {
			const float *kr = K + (size_t)(t0 + t) * HD;
			for (int h = 0; h < hc; h++) {
				const float *qh = q[h];
				float s = 0;
#pragma omp simd reduction(+ : s)
				for (int d = 0; d < HD; d++) s += qh[d] * kr[d];
				sc[h * KTILE + t] = s * scale;
			}
		}
#if defined(__AVX512F__)
		if (fast) {
			for (int h = 0; h < hc; h++) {
				softmax_tile16(sc + h * KTILE, nt, &m[h], &l[h], acc + (size_t)h * HD, HD);
				pv16(acc + (size_t)h * HD, sc + h * KTILE, Vv + (size_t)t0 * HD, nt, HD);
			}
			continue;
		}
#endif
		for (int h = 0; h < hc; h++) {
			float *sh = sc + h * KTILE, *ah = acc + (size_t)h * HD, mx = m[h];
			for (int t = 0; t < nt; t++) mx = sh[t] > mx ? sh[t] : mx;
			if (mx > m[h]) {
				float corr = expf(m[h] - mx); /* 0 on the first tile (m = -inf) */
				l[h] *= corr;
#pragma omp simd
				for (int d = 0; d < HD; d++) ah[d] *= corr;
				m[h] = mx;
			}
			float sum = 0;
#pragma omp simd reduction(+ : sum)
			for (int t = 0; t < nt; t++) {
				sh[t] = exp_nonpos(sh[t] - mx);
				sum += sh[t];
			}
			l[h] += sum;
		}
		for (int t = 0; t < nt; t++) {
			const float *vr = Vv + (size_t)(t0 + t) * HD;
			for (int h = 0; h < hc; h++) {
				const float p = sc[h * KTILE + t];
				float *ah = acc + (size_t)h * HD;
#pragma omp simd
				for (int d = 0; d < HD; d++) ah[d] += p * vr[d];
			}
		}
	}
}

typedef struct {
	iapo_kv *kv;
	const iapo_kv_row *rows;
	const float *q;
	float *att;
	const int *task; /* (ntask, 3): first row of a row group, its rows, first query vector */
	int l, vc;
} attend_job;

/* One task: (row group, kv head, vc of the group's query vectors). A row
 * group is a run of rows that attend to the same first span (keys [0, len0)
 * of one slot: the postfix rows of one IAPO position); its query vectors are
 * (row, query head of the kv head) pairs, row-major. The shared span is
 * scored for all of a task's vectors together, so each key and value tile is
 * read from memory once for them (from L1 after the first); each row's
 * second span (its own earlier postfix rows) follows for its vectors alone.
 * Every vector's arithmetic is what it would be alone, so results do not
 * depend on the grouping. */
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
	const float *qs[HC_MAX];
	float m[HC_MAX], lsum[HC_MAX], acc[HC_FLOATS];
	for (int k = 0; k < nv; k++) {
		const int r = r0 + (v0 + k) / grp, h = g * grp + (v0 + k) % grp;
		qs[k] = A->q + ((size_t)r * NH + h) * HD;
		m[k] = -INFINITY;
		lsum[k] = 0;
	}
	memset(acc, 0, sizeof(float) * (size_t)nv * HD);
	const iapo_kv_keys *ks = &rows[r0].keys;
	attend_range(qs, nv, cache_at(kv, kv->kc, l, ks->seq0, g), cache_at(kv, kv->vc, l, ks->seq0, g), ks->len0, HD,
		     scale, m, lsum, acc);
	for (int k = 0; k < nv;) { /* each row's second span, for its own vectors */
		const int r = r0 + (v0 + k) / grp;
		int k1 = k + 1;
		while (k1 < nv && r0 + (v0 + k1) / grp == r) k1++;
		ks = &rows[r].keys;
		if (ks->len1 > 0) {
			size_t off = (size_t)ks->start1 * HD;
			attend_range(qs + k, k1 - k, cache_at(kv, kv->kc, l, ks->seq1, g) + off,
				     cache_at(kv, kv->vc, l, ks->seq1, g) + off, ks->len1, HD, scale, m + k, lsum + k,
				     acc + (size_t)k * HD);
		}
		k = k1;
	}
	for (int k = 0; k < nv; k++) {
		const int r = r0 + (v0 + k) / grp, h = g * grp + (v0 + k) % grp;
		float *o = A->att + ((size_t)r * NH + h) * HD;
		const float inv = 1.0f / lsum[k];
		for (int d = 0; d < HD; d++) o[d] = acc[(size_t)k * HD + d] * inv;
	}
}

/* att (R, NH*HD) from q (R, NH*HD) and the layer-l cache, per row's keys.
 * Tasks are (row group, kv head, chunk of vc query vectors): whole rows' worth
 * of query heads when there are enough tasks to keep every thread busy,
 * single vectors otherwise. */
static void attend(iapo_kv *kv, int l, const iapo_kv_row *rows, int R, const float *q, float *att)
{
	const iapo_config *c = &kv->w->cfg;
	const int NKV = c->NKV, HD = c->HD, grp = c->NH / c->NKV;
	int hc = HC_MAX < HC_FLOATS / HD ? HC_MAX : HC_FLOATS / HD;
	int ngroups = 0;
	for (int r = 0; r < R; r++)
		ngroups += r == 0 || rows[r].keys.seq0 != rows[r - 1].keys.seq0 ||
			   rows[r].keys.len0 != rows[r - 1].keys.len0;
	if ((long)ngroups * NKV < 2L * iapo_pool_threads()) hc = 1;
	const int vc = grp <= hc ? hc / grp * grp : hc; /* whole rows when they fit */
	int nt = 0;
	for (int r0 = 0; r0 < R;) {
		int r1 = r0 + 1;
		while (r1 < R && rows[r1].keys.seq0 == rows[r0].keys.seq0 && rows[r1].keys.len0 == rows[r0].keys.len0) r1++;
		for (int v0 = 0; v0 < (r1 - r0) * grp; v0 += vc) {
			kv->atask[3 * nt] = r0;
			kv->atask[3 * nt + 1] = r1 - r0;
			kv->atask[3 * nt + 2] = v0;
			nt++;
		}
		r0 = r1;
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
					     .B = lm, .ldb = C, .C = consecutive ? kv->dst[0] : kv->lbuf, .ldc = V, .Bh = lmh};
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
	iapo_rope_table(kv->cs, kv->pos, R, HD, kv->inv_freq);
	int m = R; /* rows past the K/V of the layer (all but in the last one) */
	for (int l = 0; l < c->L; l++) {
#define LW(which) (p->t[which] + (size_t)l * iapo_param_layer_size(c, which))
#define LH(which) \
	(kv->bf16_on && kv->wh_t[which] ? kv->wh_t[which] + (size_t)l * iapo_param_layer_size(c, which) : NULL)
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
			 .Bh = LH(IAPO_P_WK)}, // (R,NKV*HD)
			{.transB = 1, .M = R, .N = KV, .K = C, .alpha = 1.0f, .A = kv->h, .lda = C, .B = LW(IAPO_P_WV),
			 .ldb = C, .C = kv->v, .ldc = KV, .bias = c->qkv_bias ? LW(IAPO_P_BV) : NULL,
			 .Bh = LH(IAPO_P_WV)},
			{.transB = 1, .M = R, .N = Q, .K = C, .alpha = 1.0f, .A = kv->h, .lda = C, .B = LW(IAPO_P_WQ),
			 .ldb = C, .C = kv->q, .ldc = Q, .bias = c->qkv_bias ? LW(IAPO_P_BQ) : NULL,
			 .Bh = LH(IAPO_P_WQ)}, // (R,NH*HD)
		};
		iapo_matmul_batch(m == R ? 3 : 2, qkv);
		float *q = kv->q, *k = kv->k;
		if (c->qk_norm) {
			iapo_rmsnorm_forward(kv->kn, NULL, kv->k, LW(IAPO_P_KNORM), R * NKV, HD, c->rms_eps);
			k = kv->kn;
		}
		/* k now, q once it is known which rows it has (same arithmetic) */
		iapo_rope_apply_table(k, NKV, NULL, 0, kv->cs, R, HD, 0);
		for (int r = 0; r < R; r++)
			for (int g = 0; g < NKV; g++) {
				size_t off = (size_t)rows[r].slot * HD, src = (size_t)r * KV + (size_t)g * HD;
				memcpy(cache_at(kv, kv->kc, l, rows[r].seq, g) + off, k + src, sizeof(float) * (size_t)HD);
				memcpy(cache_at(kv, kv->vc, l, rows[r].seq, g) + off, kv->v + src,
				       sizeof(float) * (size_t)HD);
			}
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
				  .B = LW(IAPO_P_WO), .ldb = Q, .C = kv->x, .ldc = C, .Bh = LH(IAPO_P_WO)};
		iapo_matmul_batch(1, &o); // x += (R,C)
		iapo_rmsnorm_forward(kv->h, NULL, kv->x, LW(IAPO_P_LN2), R, C, c->rms_eps);
		iapo_gemm_op gu[2] = {
			{.transB = 1, .M = R, .N = F, .K = C, .alpha = 1.0f, .A = kv->h, .lda = C, .B = LW(IAPO_P_WGATE),
			 .ldb = C, .C = kv->gate, .ldc = F, .Bh = LH(IAPO_P_WGATE)}, // (R,F)
			{.transB = 1, .M = R, .N = F, .K = C, .alpha = 1.0f, .A = kv->h, .lda = C, .B = LW(IAPO_P_WUP),
			 .ldb = C, .C = kv->up, .ldc = F, .Bh = LH(IAPO_P_WUP)},
		};
		iapo_matmul_batch(2, gu);
		iapo_swiglu_forward(kv->act, kv->gate, kv->up, (size_t)R * F);
		iapo_gemm_op d = {.transB = 1, .M = R, .N = C, .K = F, .alpha = 1.0f, .beta = 1.0f, .A = kv->act, .lda = F,
				  .B = LW(IAPO_P_WDOWN), .ldb = F, .C = kv->x, .ldc = C, .Bh = LH(IAPO_P_WDOWN)};
		iapo_matmul_batch(1, &d); // x += (R,C)
#undef LW
#undef LH
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

iapo_status iapo_kv_forward_rows(iapo_kv *kv, const iapo_kv_row *rows, int R, float *logits)
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
	for (int r0 = 0; r0 < R; r0 += kv->Rmax) {
		int n = R - r0 < kv->Rmax ? R - r0 : kv->Rmax;
		run_chunk(kv, rows + r0, n, logits);
	}
	return IAPO_OK;
}

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
