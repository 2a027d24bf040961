/*
 * sample.c — next-token choice (see sample.h for the semantics).
 *
 * Cost for V = 152k: greedy is one pass; plain temperature sampling is one
 * pass of exp plus a walk; top-p adds a pass that histograms the weights by
 * their binary exponent, which tells how far down the nucleus reaches, so only
 * tokens within a factor of two of its boundary or above are gathered and
 * sorted; top-k finds its threshold with a k-element heap (small k) or a
 * linear-time selection on a copy of the logits (large k).
 *
 * Scratch layout (2V floats): candidates are gathered as (weight, id) pairs
 * of floats at scratch[2j], scratch[2j+1]; ids are exact in a float because
 * V < 2^24. When top-p runs without top-k, the weights of the whole
 * vocabulary sit in scratch[V..2V) and the pairs are gathered in place over
 * them: pair j is written while reading token i >= j, so its two slots
 * (<= V + i) never reach a weight still to be read.
 */
#include "model/sample.h"

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
	float w;  /* unnormalised probability exp((logit - max) / T) */
	float id; /* token id, exact as a float below 2^24 */
} cand;

#if defined(__AVX512F__)
/* 16 lanes, each keeping the first index of its largest value (strictly
 * greater replaces); the lanes' winners then decide by value and, on a tie,
 * the lower index: the scalar loop's first index of the largest value. A
 * greedy step reads V logits per sequence (152k at Qwen's vocabulary), which
 * the scalar loop's compare-and-branch took ~1-2% of a qwen0.5b decoding
 * step to do (bench/README.md, decoding, session 8). */
static int argmax_lanes(const float *logits, int V, float *bv_out)
{
	__m512 bv = _mm512_set1_ps(-INFINITY);
	__m512i bi = _mm512_set1_epi32(-1), idx = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
	const __m512i sixteen = _mm512_set1_epi32(16);
	for (int i = 0; i < V; i += 16, idx = _mm512_add_epi32(idx, sixteen)) {
		const __mmask16 m = V - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (V - i)) - 1);
		const __m512 v = _mm512_maskz_loadu_ps(m, logits + i);
		if (_mm512_mask_cmp_ps_mask(m, v, v, _CMP_UNORD_Q)) return -2; /* a NaN */
		const __mmask16 gt = _mm512_mask_cmp_ps_mask(m, v, bv, _CMP_GT_OQ);
		bv = _mm512_mask_mov_ps(bv, gt, v);
		bi = _mm512_mask_mov_epi32(bi, gt, idx);
	}
	float val[16];
	int id[16];
	_mm512_storeu_ps(val, bv);
	_mm512_storeu_si512((void *)id, bi);
	int best = -1;
	float m = -INFINITY;
	for (int l = 0; l < 16; l++)
		if (id[l] >= 0 && (best < 0 || val[l] > m || (val[l] == m && id[l] < best))) {
			m = val[l];
			best = id[l];
		}
	*bv_out = m;
	return best;
}
#endif

int iapo_sample_argmax(const float *logits, int V)
{
	int best = -1;
	float bv = -INFINITY;
#if defined(__AVX512F__)
	best = argmax_lanes(logits, V, &bv);
	if (best == -2) return -1;
#else
	for (int i = 0; i < V; i++) {
		float x = logits[i];
		if (x != x) return -1;
		if (x > bv) {
			bv = x;
			best = i;
		}
	}
#endif
	if (best >= 0 && !isfinite(bv)) return -1; /* +inf: no meaningful distribution */
	return best;
}

/* Descending weight, then ascending id: the order the nucleus is cut in. */
static int cand_cmp(const void *a, const void *b)
{
	const cand *x = a, *y = b;
	if (x->w != y->w) return x->w > y->w ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

static inline void swapf(float *a, float *b)
{
	float t = *a;
	*a = *b;
	*b = t;
}

/* The k-th largest (k >= 1) of a[0..n), reordering a. Three-way partitions
 * keep runs of equal values linear. */
static float kth_largest(float *a, int n, int k)
{
	int lo = 0, hi = n - 1, want = k - 1;
	while (lo < hi) {
		int mid = lo + (hi - lo) / 2;
		/* median of three as pivot */
		float x = a[lo], y = a[mid], z = a[hi];
		float piv = (x > y) ? ((y > z) ? y : (x > z ? z : x)) : ((x > z) ? x : (y > z ? z : y));
		/* [lo, gt) > piv, [gt, i) == piv, (lt, hi] < piv */
		int gt = lo, i = lo, lt = hi;
		while (i <= lt) {
			if (a[i] > piv) swapf(&a[i++], &a[gt++]);
			else if (a[i] < piv) swapf(&a[i], &a[lt--]);
			else i++;
		}
		if (want < gt) hi = gt - 1;
		else if (want <= lt) return piv;
		else lo = lt + 1;
	}
	return a[want];
}

/* The k-th largest of a[0..n) for small k: a min-heap of the k largest seen
 * (in heap[0..k)), so most elements cost one comparison with its root. */
static float kth_largest_heap(const float *a, int n, int k, float *heap)
{
	int h = 0;
	for (int i = 0; i < n; i++) {
		float x = a[i];
		int j;
		if (h < k) {
			j = h++;
			while (j > 0 && heap[(j - 1) / 2] > x) {
				heap[j] = heap[(j - 1) / 2];
				j = (j - 1) / 2;
			}
			heap[j] = x;
		} else if (x > heap[0]) {
			j = 0;
			for (;;) {
				int c = 2 * j + 1;
				if (c >= k) break;
				if (c + 1 < k && heap[c + 1] < heap[c]) c++;
				if (heap[c] >= x) break;
				heap[j] = heap[c];
				j = c;
			}
			heap[j] = x;
		}
	}
	return heap[0];
}

/* Nucleus cut over sorted candidates: keeps the shortest prefix whose mass
 * reaches p * total (the first always). Returns the kept count and its mass. */
static int nucleus(const cand *c, int n, double total, float p, double *kept_mass)
{
	double target = (double)p * total, cum = 0;
	int j = 0;
	while (j < n && (j == 0 || cum < target)) cum += c[j++].w;
	*kept_mass = cum;
	return j;
}

/* One draw among n candidates of total weight mass. */
static int draw(const cand *c, int n, double mass, iapo_rng *rng)
{
	double u = iapo_rng_double(rng) * mass, cum = 0;
	int last = 0;
	for (int j = 0; j < n; j++) {
		if (c[j].w <= 0) continue;
		last = j;
		cum += c[j].w;
		if (u < cum) return (int)c[j].id;
	}
	return (int)c[last].id; /* u landed past the end by rounding */
}

int iapo_sample(const float *logits, int V, const iapo_sampler *s, iapo_rng *rng, float *scratch)
{
	int best = iapo_sample_argmax(logits, V);
	if (best < 0 || s->temperature <= 0) return best;
	if (V >= (1 << 24)) return -1; /* ids must be exact floats; no real vocabulary is this large */
	const float mx = logits[best], T = s->temperature;
	const int use_k = s->top_k > 0 && s->top_k < V;
	const int use_p = s->top_p > 0 && s->top_p < 1;
	cand *c = (cand *)scratch;

	if (use_k) {
		float thr;
		if (s->top_k <= 4096 && s->top_k <= V / 16) {
			thr = kth_largest_heap(logits, V, s->top_k, scratch);
		} else {
			memcpy(scratch, logits, (size_t)V * sizeof(float));
			thr = kth_largest(scratch, V, s->top_k);
		}
		int n = 0;
		double total = 0;
		for (int i = 0; i < V; i++)
			if (logits[i] >= thr) {
				float w = expf((logits[i] - mx) / T);
				c[n].w = w;
				c[n].id = (float)i;
				total += w;
				n++;
			}
		double mass = total;
		if (use_p) {
			qsort(c, (size_t)n, sizeof(cand), cand_cmp);
			n = nucleus(c, n, total, s->top_p, &mass);
		}
		return draw(c, n, mass, rng);
	}

	float *W = scratch + V; /* (V) weights */
	double total = 0;
	for (int i = 0; i < V; i++) {
		W[i] = expf((logits[i] - mx) / T);
		total += W[i];
	}
	if (!use_p) {
		double u = iapo_rng_double(rng) * total, cum = 0;
		int last = best;
		for (int i = 0; i < V; i++) {
			if (W[i] <= 0) continue;
			last = i;
			cum += W[i];
			if (u < cum) return i;
		}
		return last;
	}

	/* Mass per binary exponent (weights lie in [0, 1]; biased exponents 0..127). */
	double mass_at[256] = {0};
	for (int i = 0; i < V; i++) {
		uint32_t bits;
		memcpy(&bits, &W[i], sizeof bits);
		mass_at[(bits >> 23) & 0xff] += W[i];
	}
	/* Lowest exponent bucket the nucleus can reach: every token kept is in it or above. */
	double target = (double)s->top_p * total, cum = 0;
	int e = 255;
	while (e > 0) {
		cum += mass_at[e];
		if (cum >= target) break;
		e--;
	}
	int n = 0;
	for (int i = 0; i < V; i++) {
		float w = W[i];
		uint32_t bits;
		memcpy(&bits, &w, sizeof bits);
		if ((int)((bits >> 23) & 0xff) >= e) {
			c[n].w = w;
			c[n].id = (float)i;
			n++;
		}
	}
	qsort(c, (size_t)n, sizeof(cand), cand_cmp);
	double mass;
	n = nucleus(c, n, total, s->top_p, &mass);
	return draw(c, n, mass, rng);
}
