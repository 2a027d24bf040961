/*
 * cpu.c — the fast CPU kernels declared in kernels.h: our AVX-512 sgemm
 * (gemm.c; OpenBLAS where the CPU lacks AVX-512) for the matmuls, and for
 * everything else loops split into items run by iapo's worker pool
 * (pool.h: no barrier waits for a descheduled thread, whatever
 * OMP_WAIT_POLICY says). Each has a plain twin in ref.c.
 *
 * Exponentials go through exp_approx, a branch-free polynomial the compiler
 * vectorises (libm's expf does not vectorise under our flags): within about
 * 2 ulp of expf over the whole float range, so the kernels agree with the
 * double-precision references to ~1e-6.
 *
 * Attention is flash-style: query blocks meet key blocks in small matrix
 * products (GCC vector extensions, so it builds for any target and becomes
 * AVX-512 under -march=native), with an online softmax (running max and
 * sum per query) so no (T,T) matrix is ever stored; the backward recomputes
 * the probabilities from the saved log-sum-exp. Head dims that are not a
 * multiple of 16 or exceed 128 take a plain per-query loop. Left out: GPUs,
 * reduced precision.
 */
#include "kernels/kernels.h"

#include <cblas.h>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/gemm.h"
#include "kernels/pool.h"
#include "kernels/simd.h"

/* Elements of work below which an item (or a whole kernel) is not split. */
#define GRAIN 8192
/* Column block for reductions over rows: one cache line of floats. */
#define COLS 16
/* Keys per tile of the plain attention path (scores live on the stack). */
#define KTILE 128

/* Which GEMM runs the matmuls. Ours (gemm.c) is ~1.9x OpenBLAS on AVX-512
 * machines, where OpenBLAS is often held back by OPENBLAS_CORETYPE; without
 * AVX-512 ours only has a slow portable path, so OpenBLAS runs there.
 * IAPO_GEMM=openblas|iapo overrides the choice (for benchmarks and bisecting). */
static int use_openblas(void)
{
	static int choice = -1; /* benign race: every thread computes the same value */
	if (choice < 0) {
		const char *e = getenv("IAPO_GEMM");
		if (e && !strcmp(e, "openblas")) choice = 1;
		else if (e && !strcmp(e, "iapo")) choice = 0;
		else choice = !__builtin_cpu_supports("avx512f");
	}
	return choice;
}

const char *iapo_matmul_backend(void) { return use_openblas() ? "openblas" : "iapo-avx512"; }

static void matmul(int ta, int tb, float *C, const float *A, const float *B, int M, int N, int K, int accumulate)
{
	if (M <= 0 || N <= 0) return;
	if (K <= 0) {
		if (!accumulate) memset(C, 0, sizeof(float) * (size_t)M * N);
		return;
	}
	const int lda = ta ? M : K, ldb = tb ? K : N;
	const float beta = accumulate ? 1.0f : 0.0f;
	if (use_openblas())
		cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K,
			    1.0f, A, lda, B, ldb, beta, C, N);
	else
		iapo_sgemm(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, beta, C, N);
}

void iapo_matmul_nt(float *C, const float *A, const float *B, int M, int N, int K, int accumulate)
{
	matmul(0, 1, C, A, B, M, N, K, accumulate);
}

void iapo_matmul_nn(float *C, const float *A, const float *B, int M, int N, int K, int accumulate)
{
	matmul(0, 0, C, A, B, M, N, K, accumulate);
}

void iapo_matmul_tn(float *C, const float *A, const float *B, int M, int N, int K, int accumulate)
{
	matmul(1, 0, C, A, B, M, N, K, accumulate);
}

void iapo_matmul_batch(int n, const iapo_gemm_op *ops)
{
	if (!use_openblas()) {
		iapo_sgemm_batch(n, ops);
		return;
	}
	for (int i = 0; i < n; i++) {
		const iapo_gemm_op *o = &ops[i];
		if (o->M <= 0 || o->N <= 0) continue;
		if (o->Bh) { /* BLAS has no bf16 operand: our own (portable) loop */
			iapo_sgemm_batch(1, o);
			continue;
		}
		float beta = o->beta;
		if (o->R) {
			for (int r = 0; r < o->M; r++)
				if (o->R + (size_t)r * o->ldr != o->C + (size_t)r * o->ldc)
					memmove(o->C + (size_t)r * o->ldc, o->R + (size_t)r * o->ldr, sizeof(float) * (size_t)o->N);
			beta = 1.0f;
		}
		if (o->bias) {
			for (int r = 0; r < o->M; r++) {
				float *c = o->C + (size_t)r * o->ldc;
				for (int j = 0; j < o->N; j++) c[j] = (beta == 0.0f ? 0.0f : beta * c[j]) + o->bias[j];
			}
			beta = 1.0f;
		}
		if (o->K <= 0 || o->alpha == 0.0f) {
			if (beta != 1.0f)
				for (int r = 0; r < o->M; r++)
					for (int j = 0; j < o->N; j++) {
						float *c = o->C + (size_t)r * o->ldc + j;
						*c = beta == 0.0f ? 0.0f : beta * *c;
					}
			continue;
		}
		cblas_sgemm(CblasRowMajor, o->transA ? CblasTrans : CblasNoTrans, o->transB ? CblasTrans : CblasNoTrans,
			    o->M, o->N, o->K, o->alpha, o->A, o->lda, o->B, o->ldb, beta, o->C, o->ldc);
	}
}

/* ---- parallel loops ------------------------------------------------------ */

/* body(ctx, lo, hi) over pieces of [0, n); each piece holds at least GRAIN
 * elements' worth of work (cost = elements of work per index). The pieces
 * shrink as the range is used up, each 1 / (2 nth) of what is left (a
 * quarter on 2 threads), down to that minimum: the last pieces, which decide
 * how long the first thread to finish waits for the others, are small.
 * Equal pieces, 4 per thread, left 8.5% of these jobs' thread time idle
 * (small's bf16 information pass, session 11: RMSNorm, RoPE, SwiGLU, 506
 * jobs a pass). Every body treats each index alone, so the pieces never
 * change a result. */
typedef void (*range_fn)(void *ctx, long lo, long hi);

#define RANGE_PIECES 8 /* per thread at most; the last takes whatever is left */

typedef struct {
	range_fn body;
	void *ctx;
	long cut[RANGE_PIECES * IAPO_POOL_MAX + 1]; /* piece i: [cut[i], cut[i+1]) */
} range_job;

static void range_item(void *c, long item, int worker)
{
	(void)worker;
	const range_job *r = c;
	r->body(r->ctx, r->cut[item], r->cut[item + 1]);
}

static void par_range(long n, long cost, range_fn body, void *ctx)
{
	if (n <= 0) return;
	int nth = iapo_pool_threads();
	long min_per = cost > 0 ? (GRAIN + cost - 1) / cost : 1;
	if (min_per < 1) min_per = 1;
	if (nth < 2 || n / min_per < 2) {
		body(ctx, 0, n);
		return;
	}
	range_job r = {.body = body, .ctx = ctx};
	int pieces = 0;
	for (long lo = 0; lo < n; pieces++) {
		long per = (n - lo + 2L * nth - 1) / (2L * nth);
		per = per < min_per ? min_per : per;
		if (pieces == RANGE_PIECES * nth - 1 || n - lo < per + min_per) per = n - lo;
		r.cut[pieces] = lo;
		lo += per;
	}
	r.cut[pieces] = n;
	iapo_pool_for(pieces, range_item, &r);
}

/* ---- exp ----------------------------------------------------------------- */

typedef union {
	int32_t i;
	float f;
} fbits;

/* exp(x) by Cephes' expf polynomial on x - n ln2, n = round(x / ln2), with x
 * clamped to [-87.3, 88.3] (so 2^n stays a normal float): within 1.5 ulp
 * there; below, ~1e-38 instead of 0 or a denormal; above, 2e38 instead of
 * inf. n is rounded by adding 1.5 * 2^23 (its bits then hold n as an
 * integer), not by floorf and a float-to-int conversion, which GCC does not
 * vectorise while floating-point traps are honoured (its default). */
static inline float exp_approx(float x)
{
	x = x < -87.3f ? -87.3f : x;
	x = x > 88.3f ? 88.3f : x;
	fbits t = {.f = x * 1.44269504088896341f + 12582912.0f};
	const float fx = t.f - 12582912.0f;
	const float r = x - fx * 0.693359375f + fx * 2.12194440e-4f;
	float y = 1.9875691500e-4f;
	y = y * r + 1.3981999507e-3f;
	y = y * r + 8.3334519073e-3f;
	y = y * r + 4.1665795894e-2f;
	y = y * r + 1.6666665459e-1f;
	y = y * r + 5.0000001201e-1f;
	y = y * r * r + r + 1.0f;
	/* 2^n; unsigned, so a NaN x (clamps pass it through) gives NaN, not a
	 * left shift of a negative int */
	fbits p = {.i = (int32_t)(((uint32_t)t.i - 0x4B400000u + 127u) << 23)};
	return y * p.f;
}

/* ---- bf16 ------------------------------------------------------------------ */

typedef struct {
	uint16_t *dst;
	const float *src;
} bf16_job;

static void bf16_range(void *c, long lo, long hi)
{
	const bf16_job *J = c;
	const uint32_t *src = (const uint32_t *)(const void *)(J->src + lo);
	uint16_t *dst = J->dst + lo;
	const int n = (int)(hi - lo);
#pragma omp simd
	for (int i = 0; i < n; i++) {
		uint32_t u = src[i];
		/* round to nearest even; NaN stays NaN (quiet) */
		uint32_t r = (u & 0x7fffffffu) > 0x7f800000u ? (u | 0x00400000u) : u + 0x7fffu + ((u >> 16) & 1u);
		dst[i] = (uint16_t)(r >> 16);
	}
}

void iapo_f32_to_bf16(uint16_t *dst, const float *src, size_t n)
{
	bf16_job J = {dst, src};
	par_range((long)n, 1, bf16_range, &J);
}

/* ---- RMSNorm --------------------------------------------------------------- */

typedef struct {
	float *out, *rstd, *dx, *dw;
	const float *x, *w, *dout, *rstd_in;
	int N, C;
	float eps;
	long nrow_items; /* backward: items < this are row pieces, the rest dw columns */
	long rows_per;
} norm_job;

static void rmsnorm_rows(void *c, long lo, long hi)
{
	const norm_job *J = c;
	const int C = J->C;
	for (long n = lo; n < hi; n++) {
		const float *xr = J->x + (size_t)n * C;
		float *o = J->out + (size_t)n * C;
		float ss = 0;
#pragma omp simd reduction(+ : ss)
		for (int i = 0; i < C; i++) ss += xr[i] * xr[i];
		float r = 1.0f / sqrtf(ss / (float)C + J->eps);
#pragma omp simd
		for (int i = 0; i < C; i++) o[i] = xr[i] * r * J->w[i];
		if (J->rstd) J->rstd[n] = r;
	}
}

void iapo_rmsnorm_forward(float *out, float *rstd, const float *x, const float *w, int N, int C, float eps)
{
	norm_job J = {.out = out, .rstd = rstd, .x = x, .w = w, .N = N, .C = C, .eps = eps};
	par_range(N, C, rmsnorm_rows, &J);
}

static void rmsnorm_bwd_item(void *c, long item, int worker)
{
	(void)worker;
	const norm_job *J = c;
	const int C = J->C, N = J->N;
	if (item < J->nrow_items) {
		long lo = item * J->rows_per, hi = lo + J->rows_per < N ? lo + J->rows_per : N;
		for (long n = lo; n < hi; n++) {
			const float *xr = J->x + (size_t)n * C, *dy = J->dout + (size_t)n * C, *w = J->w;
			float *d = J->dx + (size_t)n * C;
			float r = J->rstd_in[n], dot = 0;
#pragma omp simd reduction(+ : dot)
			for (int i = 0; i < C; i++) dot += dy[i] * w[i] * xr[i];
			float k = r * r * r * dot / (float)C;
#pragma omp simd
			for (int i = 0; i < C; i++) d[i] += r * dy[i] * w[i] - k * xr[i];
		}
		return;
	}
	/* dw: a block of COLS columns summed over all rows */
	int c0 = (int)(item - J->nrow_items) * COLS, c1 = c0 + COLS < C ? c0 + COLS : C;
	float acc[COLS] = {0};
	for (int n = 0; n < N; n++) {
		const float *xr = J->x + (size_t)n * C, *dy = J->dout + (size_t)n * C;
		float r = J->rstd_in[n];
		for (int i = c0; i < c1; i++) acc[i - c0] += dy[i] * xr[i] * r;
	}
	for (int i = c0; i < c1; i++) J->dw[i] += acc[i - c0];
}

void iapo_rmsnorm_backward(float *dx, float *dw, const float *dout, const float *x, const float *w,
			   const float *rstd, int N, int C)
{
	if (N <= 0 || C <= 0) return;
	norm_job J = {.dx = dx, .dw = dw, .x = x, .w = w, .dout = dout, .rstd_in = rstd, .N = N, .C = C};
	int nth = iapo_pool_threads();
	long rows_per = (GRAIN + C - 1) / C;
	long pieces = (N + rows_per - 1) / rows_per;
	if (pieces > 4L * nth) pieces = 4L * nth;
	J.rows_per = (N + pieces - 1) / pieces;
	J.nrow_items = (N + J.rows_per - 1) / J.rows_per;
	long items = J.nrow_items + (dw ? (C + COLS - 1) / COLS : 0);
	if (nth < 2 || (size_t)N * C < 2 * GRAIN) {
		for (long i = 0; i < items; i++) rmsnorm_bwd_item(&J, i, 0);
		return;
	}
	iapo_pool_for(items, rmsnorm_bwd_item, &J);
}

/* ---- RoPE ------------------------------------------------------------------ */

void iapo_rope_inv_freq(const iapo_config *cfg, float *inv_freq)
{
	/* Float arithmetic on purpose: Hugging Face keeps inv_freq as a float32
	 * buffer, computed in float32, and we want the same rounding. */
	int half = cfg->HD / 2;
	for (int i = 0; i < half; i++) {
		float e = (float)(2 * i) / (float)cfg->HD;
		inv_freq[i] = 1.0f / powf(cfg->rope_theta, e);
	}
	if (cfg->rope_kind != IAPO_ROPE_LLAMA3) return;
	float factor = cfg->rope_factor, lo = cfg->rope_low_freq_factor, hi = cfg->rope_high_freq_factor;
	float old = (float)cfg->rope_orig_max_pos;
	float lo_wavelen = old / lo, hi_wavelen = old / hi;
	for (int i = 0; i < half; i++) {
		float f = inv_freq[i];
		float wavelen = 2.0f * (float)M_PI / f;
		float g = wavelen > lo_wavelen ? f / factor : f;
		if (!(wavelen < hi_wavelen) && !(wavelen > lo_wavelen)) {
			float smooth = (old / wavelen - lo) / (hi - lo);
			g = (1.0f - smooth) * g / factor + smooth * g;
		}
		inv_freq[i] = g;
	}
}

typedef struct {
	float *x;
	const int *pos;
	const float *inv_freq;
	int nheads, HD, inverse;
} rope_job;

static void rope_rows(void *c, long lo, long hi)
{
	const rope_job *J = c;
	const int half = J->HD / 2, nheads = J->nheads;
	for (long n = lo; n < hi; n++) {
		float *row = J->x + (size_t)n * nheads * J->HD;
		for (int i = 0; i < half; i++) {
			float ang = (float)J->pos[n] * J->inv_freq[i];
			float co = cosf(ang), s = sinf(ang);
			if (J->inverse) s = -s;
			for (int h = 0; h < nheads; h++) {
				float *r = row + (size_t)h * J->HD;
				float a = r[i], b = r[i + half];
				r[i] = a * co - b * s;
				r[i + half] = b * co + a * s;
			}
		}
	}
}

void iapo_rope_apply(float *x, const int *pos, int N, int nheads, int HD, const float *inv_freq, int inverse)
{
	rope_job J = {x, pos, inv_freq, nheads, HD, inverse};
	par_range(N, (long)nheads * HD, rope_rows, &J);
}

typedef struct {
	float *cs, *a, *b;
	const int *pos;
	const float *inv_freq, *cs_in;
	int na, nb, HD, inverse;
} rope_tab_job;

static void rope_table_rows(void *c, long lo, long hi)
{
	const rope_tab_job *J = c;
	const int half = J->HD / 2;
	for (long n = lo; n < hi; n++) {
		float *row = J->cs + (size_t)n * J->HD;
		for (int i = 0; i < half; i++) {
			float ang = (float)J->pos[n] * J->inv_freq[i];
			row[i] = cosf(ang);
			row[half + i] = sinf(ang);
		}
	}
}

void iapo_rope_table(float *cs, const int *pos, int N, int HD, const float *inv_freq)
{
	rope_tab_job J = {.cs = cs, .pos = pos, .inv_freq = inv_freq, .HD = HD};
	par_range(N, 8L * HD, rope_table_rows, &J);
}

/* Rotates nh heads of one row by the table row cs. */
static inline void rope_row(float *x, int nh, const float *cs, int HD, float sgn)
{
	const int half = HD / 2;
	for (int h = 0; h < nh; h++) {
		float *r = x + (size_t)h * HD;
#pragma omp simd
		for (int i = 0; i < half; i++) {
			float co = cs[i], s = sgn * cs[half + i];
			float a = r[i], b = r[i + half];
			r[i] = a * co - b * s;
			r[i + half] = b * co + a * s;
		}
	}
}

static void rope_apply_rows(void *c, long lo, long hi)
{
	const rope_tab_job *J = c;
	const float sgn = J->inverse ? -1.0f : 1.0f;
	for (long n = lo; n < hi; n++) {
		const float *cs = J->cs_in + (size_t)n * J->HD;
		rope_row(J->a + (size_t)n * J->na * J->HD, J->na, cs, J->HD, sgn);
		if (J->b) rope_row(J->b + (size_t)n * J->nb * J->HD, J->nb, cs, J->HD, sgn);
	}
}

void iapo_rope_apply_table(float *a, int na, float *b, int nb, const float *cs, int N, int HD, int inverse)
{
	rope_tab_job J = {.a = a, .b = b, .cs_in = cs, .na = na, .nb = b ? nb : 0, .HD = HD, .inverse = inverse};
	par_range(N, (long)(na + J.nb) * HD, rope_apply_rows, &J);
}

/* ---- MLP and elementwise -------------------------------------------------- */

typedef struct {
	float *out, *out2;
	const float *a, *b, *c;
	int N, C;
} ew_job;

/* SwiGLU, out = gate / (1 + exp_approx(-gate)) * up. With AVX-512, by
 * swiglu16: exp_approx's operations (the clamps to [-87.3, 88.3], Cephes'
 * polynomial, no contraction under -std=c11) in the same order, hence the
 * same bits as the plain loop, but one division per 16 lanes: GCC's
 * vectorisation of the plain loop if-converts the two clamps into three
 * masked divisions, and the divider set the pace (perf annotate, session 9:
 * the loop was 5% of tiny's bf16 information pass, ~16 cycles per vector;
 * swiglu16 about half that). The training forward and the cached forward
 * (kvcache.c) both run it; tests/test_info_attend.c compares its bits with
 * the plain formula. */
#if defined(__AVX512F__)
static inline __m512 swiglu16(__m512 g, __m512 u)
{
	/* x = -g clamped: vmaxps/vminps return their second operand on a NaN,
	 * as the C comparisons leave x */
	__m512 x = _mm512_max_ps(_mm512_set1_ps(-87.3f), _mm512_xor_ps(g, _mm512_set1_ps(-0.0f)));
	x = _mm512_min_ps(_mm512_set1_ps(88.3f), x);
	const __m512 big = _mm512_set1_ps(12582912.0f);
	const __m512 t = _mm512_add_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)), big);
	const __m512 fx = _mm512_sub_ps(t, big);
	const __m512 r = _mm512_add_ps(_mm512_sub_ps(x, _mm512_mul_ps(fx, _mm512_set1_ps(0.693359375f))),
				       _mm512_mul_ps(fx, _mm512_set1_ps(2.12194440e-4f)));
	__m512 y = _mm512_set1_ps(1.9875691500e-4f);
	y = _mm512_add_ps(_mm512_mul_ps(y, r), _mm512_set1_ps(1.3981999507e-3f));
	y = _mm512_add_ps(_mm512_mul_ps(y, r), _mm512_set1_ps(8.3334519073e-3f));
	y = _mm512_add_ps(_mm512_mul_ps(y, r), _mm512_set1_ps(4.1665795894e-2f));
	y = _mm512_add_ps(_mm512_mul_ps(y, r), _mm512_set1_ps(1.6666665459e-1f));
	y = _mm512_add_ps(_mm512_mul_ps(y, r), _mm512_set1_ps(5.0000001201e-1f));
	y = _mm512_add_ps(_mm512_add_ps(_mm512_mul_ps(_mm512_mul_ps(y, r), r), r), _mm512_set1_ps(1.0f));
	const __m512i e = _mm512_slli_epi32(
		_mm512_add_epi32(_mm512_sub_epi32(_mm512_castps_si512(t), _mm512_set1_epi32(0x4B400000)),
				 _mm512_set1_epi32(127)),
		23);
	const __m512 den = _mm512_add_ps(_mm512_set1_ps(1.0f), _mm512_mul_ps(y, _mm512_castsi512_ps(e)));
	return _mm512_mul_ps(_mm512_div_ps(g, den), u);
}
#endif

static void swiglu_fwd_range(void *c, long lo, long hi)
{
	const ew_job *J = c;
	float *out = J->out + lo;
	const float *gate = J->a + lo, *up = J->b + lo;
	const int n = (int)(hi - lo);
#if defined(__AVX512F__)
	int i = 0;
	for (; i + 16 <= n; i += 16)
		_mm512_storeu_ps(out + i, swiglu16(_mm512_loadu_ps(gate + i), _mm512_loadu_ps(up + i)));
	if (i < n) {
		const __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
		_mm512_mask_storeu_ps(out + i, m,
				      swiglu16(_mm512_maskz_loadu_ps(m, gate + i), _mm512_maskz_loadu_ps(m, up + i)));
	}
#else
#pragma omp simd
	for (int i = 0; i < n; i++) {
		float g = gate[i];
		out[i] = g / (1.0f + exp_approx(-g)) * up[i];
	}
#endif
}

void iapo_swiglu_forward(float *out, const float *gate, const float *up, size_t n)
{
	ew_job J = {.out = out, .a = gate, .b = up};
	par_range((long)n, 1, swiglu_fwd_range, &J);
}

static void swiglu_bwd_range(void *c, long lo, long hi)
{
	const ew_job *J = c;
	float *dgate = J->out + lo, *dup = J->out2 + lo;
	const float *dout = J->a + lo, *gate = J->b + lo, *up = J->c + lo;
	const int n = (int)(hi - lo);
#pragma omp simd
	for (int i = 0; i < n; i++) {
		float g = gate[i], s = 1.0f / (1.0f + exp_approx(-g));
		dup[i] = dout[i] * g * s;
		dgate[i] = dout[i] * up[i] * (s + g * s * (1.0f - s));
	}
}

void iapo_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up, size_t n)
{
	ew_job J = {.out = dgate, .out2 = dup, .a = dout, .b = gate, .c = up};
	par_range((long)n, 1, swiglu_bwd_range, &J);
}

static void add_range(void *c, long lo, long hi)
{
	const ew_job *J = c;
	float *y = J->out + lo;
	const float *x = J->a + lo;
	const int n = (int)(hi - lo);
#pragma omp simd
	for (int i = 0; i < n; i++) y[i] += x[i];
}

void iapo_add_inplace(float *y, const float *x, size_t n)
{
	ew_job J = {.out = y, .a = x};
	par_range((long)n, 1, add_range, &J);
}

static void bias_fwd_rows(void *c, long lo, long hi)
{
	const ew_job *J = c;
	const int C = J->C;
	for (long n = lo; n < hi; n++) {
		float *r = J->out + (size_t)n * C;
#pragma omp simd
		for (int i = 0; i < C; i++) r[i] += J->a[i];
	}
}

void iapo_bias_forward(float *y, const float *b, int N, int C)
{
	ew_job J = {.out = y, .a = b, .N = N, .C = C};
	par_range(N, C, bias_fwd_rows, &J);
}

static void bias_bwd_cols(void *c, long lo, long hi)
{
	const ew_job *J = c;
	const int C = J->C, N = J->N;
	for (long b = lo; b < hi; b++) {
		int c0 = (int)b * COLS, c1 = c0 + COLS < C ? c0 + COLS : C;
		float acc[COLS] = {0};
		for (int n = 0; n < N; n++)
			for (int i = c0; i < c1; i++) acc[i - c0] += J->a[(size_t)n * C + i];
		for (int i = c0; i < c1; i++) J->out[i] += acc[i - c0];
	}
}

void iapo_bias_backward(float *db, const float *dy, int N, int C)
{
	ew_job J = {.out = db, .a = dy, .N = N, .C = C};
	par_range((C + COLS - 1) / COLS, (long)N * COLS, bias_bwd_cols, &J);
}

typedef struct {
	float *out;
	const float *in;
	const int *tokens;
	int N, C;
} emb_job;

static void emb_fwd_rows(void *c, long lo, long hi)
{
	const emb_job *J = c;
	for (long n = lo; n < hi; n++)
		memcpy(J->out + (size_t)n * J->C, J->in + (size_t)J->tokens[n] * J->C, sizeof(float) * (size_t)J->C);
}

void iapo_embedding_forward(float *out, const float *table, const int *tokens, int N, int C)
{
	emb_job J = {out, table, tokens, N, C};
	par_range(N, C, emb_fwd_rows, &J);
}

static void emb_bwd_cols(void *c, long lo, long hi)
{
	const emb_job *J = c;
	const int C = J->C;
	for (long b = lo; b < hi; b++) {
		int c0 = (int)b * COLS, c1 = c0 + COLS < C ? c0 + COLS : C;
		for (int n = 0; n < J->N; n++) {
			float *d = J->out + (size_t)J->tokens[n] * C;
			const float *g = J->in + (size_t)n * C;
			for (int i = c0; i < c1; i++) d[i] += g[i];
		}
	}
}

void iapo_embedding_backward(float *dtable, const float *dout, const int *tokens, int N, int C)
{
	/* Column blocks in parallel: two rows with the same token never race. */
	emb_job J = {dtable, dout, tokens, N, C};
	par_range((C + COLS - 1) / COLS, (long)N * COLS, emb_bwd_cols, &J);
}

/* ---- attention ------------------------------------------------------------- */

typedef struct {
	float *out, *lse;                   /* forward outputs */
	float *dq, *dk, *dv, *dks, *dvs;    /* backward outputs and per-head scratch */
	const float *q, *k, *v, *dout, *o, *lse_in;
	const int *off, *len;
	int nseq, NH, NKV, HD;
	int nqb;                            /* query blocks per sequence (forward) */
} att_job;

static inline float dotf(const float *a, const float *b, int n)
{
	float s = 0;
#pragma omp simd reduction(+ : s)
	for (int i = 0; i < n; i++) s += a[i] * b[i];
	return s;
}

static inline void axpyf(float *y, float a, const float *x, int n)
{
#pragma omp simd
	for (int i = 0; i < n; i++) y[i] += a * x[i];
}

/* Plain path: one (sequence, head) per item, one query at a time. */
static void att_fwd_plain(void *c, long item, int worker)
{
	(void)worker;
	const att_job *J = c;
	const int HD = J->HD, NH = J->NH, G = NH / J->NKV;
	const float scale = 1.0f / sqrtf((float)HD);
	const size_t qs = (size_t)NH * HD, ks = (size_t)J->NKV * HD;
	const int s = (int)(item / NH), h = (int)(item % NH);
	const float *kb = J->k + (size_t)J->off[s] * ks + (size_t)(h / G) * HD;
	const float *vb = J->v + (size_t)J->off[s] * ks + (size_t)(h / G) * HD;
	for (int i = 0; i < J->len[s]; i++) {
		size_t row = (size_t)J->off[s] + i;
		const float *qr = J->q + row * qs + (size_t)h * HD;
		float *o = J->out + row * qs + (size_t)h * HD;
		float m = -INFINITY, l = 0, sc[KTILE];
		memset(o, 0, sizeof(float) * (size_t)HD);
		for (int j0 = 0; j0 <= i; j0 += KTILE) {
			int j1 = j0 + KTILE <= i + 1 ? j0 + KTILE : i + 1;
			float tmax = -INFINITY;
			for (int j = j0; j < j1; j++) {
				float x = scale * dotf(qr, kb + (size_t)j * ks, HD);
				sc[j - j0] = x;
				if (x > tmax) tmax = x;
			}
			if (tmax > m) {
				float r = expf(m - tmax); /* 0 on the first tile */
				l *= r;
				for (int d = 0; d < HD; d++) o[d] *= r;
				m = tmax;
			}
			for (int j = j0; j < j1; j++) {
				float p = expf(sc[j - j0] - m);
				l += p;
				axpyf(o, p, vb + (size_t)j * ks, HD);
			}
		}
		float inv = 1.0f / l;
		for (int d = 0; d < HD; d++) o[d] *= inv;
		J->lse[row * NH + h] = m + logf(l);
	}
}

static void att_bwd_plain(void *c, long item, int worker)
{
	(void)worker;
	const att_job *J = c;
	const int HD = J->HD, NH = J->NH, G = NH / J->NKV;
	const float scale = 1.0f / sqrtf((float)HD);
	const size_t qs = (size_t)NH * HD, ks = (size_t)J->NKV * HD;
	const int s = (int)(item / NH), h = (int)(item % NH);
	const float *kb = J->k + (size_t)J->off[s] * ks + (size_t)(h / G) * HD;
	const float *vb = J->v + (size_t)J->off[s] * ks + (size_t)(h / G) * HD;
	float *dkb = J->dks + (size_t)J->off[s] * qs + (size_t)h * HD;
	float *dvb = J->dvs + (size_t)J->off[s] * qs + (size_t)h * HD;
	for (int j = 0; j < J->len[s]; j++) {
		memset(dkb + (size_t)j * qs, 0, sizeof(float) * (size_t)HD);
		memset(dvb + (size_t)j * qs, 0, sizeof(float) * (size_t)HD);
	}
	for (int i = 0; i < J->len[s]; i++) {
		size_t row = (size_t)J->off[s] + i;
		const float *qr = J->q + row * qs + (size_t)h * HD;
		const float *dor = J->dout + row * qs + (size_t)h * HD;
		float *dqr = J->dq + row * qs + (size_t)h * HD;
		float L = J->lse_in[row * NH + h];
		float D = dotf(dor, J->o + row * qs + (size_t)h * HD, HD);
		memset(dqr, 0, sizeof(float) * (size_t)HD);
		for (int j = 0; j <= i; j++) {
			const float *kr = kb + (size_t)j * ks, *vr = vb + (size_t)j * ks;
			float p = expf(scale * dotf(qr, kr, HD) - L);
			float dp = dotf(dor, vr, HD);
			float ds = p * (dp - D) * scale;
			axpyf(dqr, ds, kr, HD);
			axpyf(dkb + (size_t)j * qs, ds, qr, HD);
			axpyf(dvb + (size_t)j * qs, p, dor, HD);
		}
	}
}

/* Blocked path. A query block of BQ rows meets key blocks of BK keys.
 * Scores are kept transposed, S^T (keys, queries): the query block is
 * transposed once per item, every key row is used as stored (a scalar
 * broadcast against vectors of 16 queries), and the softmax over keys
 * becomes element-wise maxima and sums across rows of S^T, vectorised over
 * queries. Every product is then "scalar times a contiguous row". */
#define BQ 64
#define BK 64
#define HD_FAST 128

typedef float v16 __attribute__((vector_size(64)));


static inline v16 vld(const float *p)
{
	v16 r;
	memcpy(&r, p, sizeof r);
	return r;
}

static inline void vst(float *p, v16 x) { memcpy(p, &x, sizeof x); }

static inline v16 vbc(float x) { return (v16){0} + x; }

/* a*b + c, fused where the target has FMA: C11 mode keeps GCC from fusing
 * a*b+c itself (-ffp-contract=off), which halves the multiply-add rate. */
static inline v16 vfma(v16 a, v16 b, v16 c)
{
#if defined(__AVX512F__)
	return (v16)_mm512_fmadd_ps((__m512)a, (__m512)b, (__m512)c);
#else
	return a * b + c;
#endif
}

/* t (HD, BQ) = rows [0, n) of src (row stride ld) transposed, columns n..BQ-1 zero. */
static void transpose_rows(float *t, const float *src, size_t ld, int n, int HD)
{
#if defined(__AVX512F__)
	/* 16 x 16 tiles through registers (HD is a multiple of 16 here) */
	for (int i0 = 0; i0 < BQ; i0 += 16)
		for (int d0 = 0; d0 < HD; d0 += 16) {
			__m512 r[16];
			for (int i = 0; i < 16; i++)
				r[i] = i0 + i < n ? _mm512_loadu_ps(src + (size_t)(i0 + i) * ld + d0) : _mm512_setzero_ps();
			iapo_transpose16(r);
			for (int d = 0; d < 16; d++) _mm512_storeu_ps(t + (size_t)(d0 + d) * BQ + i0, r[d]);
		}
#else
	for (int d = 0; d < HD; d++) {
		float *r = t + (size_t)d * BQ;
		for (int i = 0; i < n; i++) r[i] = src[(size_t)i * ld + d];
		for (int i = n; i < BQ; i++) r[i] = 0.0f;
	}
#endif
}

/* st (nk, BQ) = alpha * k (nk rows, stride ks) x qt (HD, BQ): row j of st
 * holds key j against every query of the block. */
static inline __attribute__((always_inline)) void kq_rows(const int KR, float *st, const float *k, size_t ks,
							 const float *qt, int HD, float alpha)
{
	v16 acc[4][BQ / 16];
#pragma GCC unroll 4
	for (int r = 0; r < KR; r++)
#pragma GCC unroll 4
		for (int v = 0; v < BQ / 16; v++) acc[r][v] = (v16){0};
	for (int d = 0; d < HD; d++) {
		v16 q[BQ / 16];
#pragma GCC unroll 4
		for (int v = 0; v < BQ / 16; v++) q[v] = vld(qt + (size_t)d * BQ + 16 * v);
#pragma GCC unroll 4
		for (int r = 0; r < KR; r++) {
			v16 x = vbc(k[(size_t)r * ks + d]);
#pragma GCC unroll 4
			for (int v = 0; v < BQ / 16; v++) acc[r][v] = vfma(x, q[v], acc[r][v]);
		}
	}
#pragma GCC unroll 4
	for (int r = 0; r < KR; r++)
#pragma GCC unroll 4
		for (int v = 0; v < BQ / 16; v++) vst(st + (size_t)r * BQ + 16 * v, acc[r][v] * alpha);
}

static void mm_kq(float *st, const float *k, size_t ks, int nk, const float *qt, int HD, float alpha)
{
	int j = 0;
	for (; j + 4 <= nk; j += 4) kq_rows(4, st + (size_t)j * BQ, k + (size_t)j * ks, ks, qt, HD, alpha);
	for (; j < nk; j++) kq_rows(1, st + (size_t)j * BQ, k + (size_t)j * ks, ks, qt, HD, alpha);
}

/* c (rows, HD; stride HD) += pt^T x b over head-dim vectors v0..v0+NVC:
 * c[i] += sum_j pt[j][i] * b[j] for j < nk, b's rows at stride ldb; rows a
 * multiple of 4. */
static inline __attribute__((always_inline)) void qrows_chunk(const int NVC, float *c, const float *pt, const float *b,
							     size_t ldb, int rows, int nk, int HD, int v0)
{
	for (int i = 0; i < rows; i += 4) {
		v16 acc[4][4];
#pragma GCC unroll 4
		for (int r = 0; r < 4; r++)
#pragma GCC unroll 4
			for (int v = 0; v < NVC; v++) acc[r][v] = vld(c + (size_t)(i + r) * HD + 16 * (v0 + v));
		for (int j = 0; j < nk; j++) {
			v16 x[4];
#pragma GCC unroll 4
			for (int v = 0; v < NVC; v++) x[v] = vld(b + (size_t)j * ldb + 16 * (v0 + v));
#pragma GCC unroll 4
			for (int r = 0; r < 4; r++) {
				v16 w = vbc(pt[(size_t)j * BQ + i + r]);
#pragma GCC unroll 4
				for (int v = 0; v < NVC; v++) acc[r][v] = vfma(w, x[v], acc[r][v]);
			}
		}
#pragma GCC unroll 4
		for (int r = 0; r < 4; r++)
#pragma GCC unroll 4
			for (int v = 0; v < NVC; v++) vst(c + (size_t)(i + r) * HD + 16 * (v0 + v), acc[r][v]);
	}
}

static void mm_qrows(float *c, const float *pt, const float *b, size_t ldb, int rows, int nk, int HD)
{
	for (int v0 = 0; v0 < HD / 16; v0 += 4) {
		switch (HD / 16 - v0) {
		case 1: qrows_chunk(1, c, pt, b, ldb, rows, nk, HD, v0); break;
		case 2: qrows_chunk(2, c, pt, b, ldb, rows, nk, HD, v0); break;
		case 3: qrows_chunk(3, c, pt, b, ldb, rows, nk, HD, v0); break;
		default: qrows_chunk(4, c, pt, b, ldb, rows, nk, HD, v0); break;
		}
	}
}

/* c (KR keys, HD; stride ldc) += pt x b over head-dim vectors v0..v0+NVC:
 * c[j] += sum_i pt[j][i] * b[i] for i < nq, b's rows at stride ldb. */
static inline __attribute__((always_inline)) void krows_chunk(const int NVC, const int KR, float *c, size_t ldc,
							     const float *pt, const float *b, size_t ldb, int nq,
							     int v0)
{
	v16 acc[4][4];
#pragma GCC unroll 4
	for (int r = 0; r < KR; r++)
#pragma GCC unroll 4
		for (int v = 0; v < NVC; v++) acc[r][v] = vld(c + (size_t)r * ldc + 16 * (v0 + v));
	for (int i = 0; i < nq; i++) {
		v16 x[4];
#pragma GCC unroll 4
		for (int v = 0; v < NVC; v++) x[v] = vld(b + (size_t)i * ldb + 16 * (v0 + v));
#pragma GCC unroll 4
		for (int r = 0; r < KR; r++) {
			v16 w = vbc(pt[(size_t)r * BQ + i]);
#pragma GCC unroll 4
			for (int v = 0; v < NVC; v++) acc[r][v] = vfma(w, x[v], acc[r][v]);
		}
	}
#pragma GCC unroll 4
	for (int r = 0; r < KR; r++)
#pragma GCC unroll 4
		for (int v = 0; v < NVC; v++) vst(c + (size_t)r * ldc + 16 * (v0 + v), acc[r][v]);
}

#define KROWS_CASES(KR) \
	switch (HD / 16 - v0) { \
	case 1: krows_chunk(1, KR, c + (size_t)j * ldc, ldc, pt + (size_t)j * BQ, b, ldb, nq, v0); break; \
	case 2: krows_chunk(2, KR, c + (size_t)j * ldc, ldc, pt + (size_t)j * BQ, b, ldb, nq, v0); break; \
	case 3: krows_chunk(3, KR, c + (size_t)j * ldc, ldc, pt + (size_t)j * BQ, b, ldb, nq, v0); break; \
	default: krows_chunk(4, KR, c + (size_t)j * ldc, ldc, pt + (size_t)j * BQ, b, ldb, nq, v0); break; \
	}

static void mm_krows(float *c, size_t ldc, const float *pt, const float *b, size_t ldb, int nk, int nq, int HD)
{
	for (int v0 = 0; v0 < HD / 16; v0 += 4) {
		int j = 0;
		for (; j + 4 <= nk; j += 4) KROWS_CASES(4)
		for (; j < nk; j++) KROWS_CASES(1)
	}
}

/* Forward item: (sequence, head, query block), largest blocks first. */
static void att_fwd_block(void *c, long item, int worker)
{
	(void)worker;
	const att_job *J = c;
	const int HD = J->HD, NH = J->NH, G = NH / J->NKV;
	const size_t qs = (size_t)NH * HD, ks = (size_t)J->NKV * HD;
	const int per_seq = NH * J->nqb;
	const int s = (int)(item / per_seq), rest = (int)(item % per_seq);
	const int ib = J->nqb - 1 - rest / NH, h = rest % NH;
	const int T = J->len[s], i0 = ib * BQ;
	if (i0 >= T) return;
	const int nq = T - i0 < BQ ? T - i0 : BQ, nq4 = (nq + 3) & ~3;
	const float scale = 1.0f / sqrtf((float)HD);
	const float *kb = J->k + (size_t)J->off[s] * ks + (size_t)(h / G) * HD;
	const float *vb = J->v + (size_t)J->off[s] * ks + (size_t)(h / G) * HD;

	float Qt[HD_FAST * BQ], O[BQ * HD_FAST], St[BK * BQ], m[BQ], l[BQ], mx[BQ], corr[BQ];
	transpose_rows(Qt, J->q + ((size_t)J->off[s] + i0) * qs + (size_t)h * HD, qs, nq, HD);
	for (int i = 0; i < BQ; i++) m[i] = -INFINITY, l[i] = 0.0f;
	memset(O, 0, sizeof(float) * (size_t)nq4 * HD);
	for (int j0 = 0; j0 < i0 + nq; j0 += BK) {
		const int nk = i0 + nq - j0 < BK ? i0 + nq - j0 : BK;
		mm_kq(St, kb + (size_t)j0 * ks, ks, nk, Qt, HD, scale);
		/* query i sees key j when j0 + j <= i0 + i, and only real queries count */
		memcpy(mx, m, sizeof mx);
		for (int j = 0; j < nk; j++) {
			const float *sr = St + (size_t)j * BQ;
			const int t = j0 + j - i0;
#pragma omp simd
			for (int i = 0; i < BQ; i++) {
				float x = i >= t && i < nq ? sr[i] : -INFINITY;
				mx[i] = x > mx[i] ? x : mx[i];
			}
		}
		int grew = 0;
#pragma omp simd reduction(| : grew)
		for (int i = 0; i < BQ; i++) {
			/* m = -inf on the first block: exp_approx clamps to ~1e-38 */
			corr[i] = mx[i] > m[i] ? exp_approx(m[i] - mx[i]) : 1.0f;
			grew |= mx[i] > m[i];
			l[i] *= corr[i];
			m[i] = mx[i];
		}
		if (grew && j0 > 0)
			for (int i = 0; i < nq; i++)
				if (corr[i] != 1.0f) {
					float *oi = O + (size_t)i * HD;
#pragma omp simd
					for (int d = 0; d < HD; d++) oi[d] *= corr[i];
				}
		for (int j = 0; j < nk; j++) {
			float *sr = St + (size_t)j * BQ;
			const int t = j0 + j - i0;
#pragma omp simd
			for (int i = 0; i < BQ; i++) {
				float p = i >= t && i < nq ? exp_approx(sr[i] - m[i]) : 0.0f;
				sr[i] = p;
				l[i] += p;
			}
		}
		mm_qrows(O, St, vb + (size_t)j0 * ks, ks, nq4, nk, HD);
	}
	for (int i = 0; i < nq; i++) {
		size_t row = (size_t)J->off[s] + i0 + i;
		float *o = J->out + row * qs + (size_t)h * HD, inv = 1.0f / l[i];
#pragma omp simd
		for (int d = 0; d < HD; d++) o[d] = O[(size_t)i * HD + d] * inv;
		J->lse[row * NH + h] = m[i] + logf(l[i]);
	}
}

static int att_fast(int HD) { return HD % 16 == 0 && HD <= HD_FAST; }

void iapo_attention_forward(float *out, float *lse, const float *q, const float *k, const float *v,
			    const int *off, const int *len, int nseq, int NH, int NKV, int HD)
{
	att_job J = {.out = out, .lse = lse, .q = q, .k = k, .v = v, .off = off, .len = len, .nseq = nseq,
		     .NH = NH, .NKV = NKV, .HD = HD};
	if (!att_fast(HD)) {
		iapo_pool_for((long)nseq * NH, att_fwd_plain, &J);
		return;
	}
	int T = 0;
	for (int s = 0; s < nseq; s++) T = len[s] > T ? len[s] : T;
	J.nqb = (T + BQ - 1) / BQ;
	iapo_pool_for((long)nseq * NH * J.nqb, att_fwd_block, &J);
}

/* Backward item: one (sequence, query head), all its blocks. dK and dV of
 * the head go to its own rows of the scratch (or straight to dk/dv without
 * GQA); dQ is summed per query block on the stack. Per query block, Q and
 * dO are transposed once; per key block, S^T = K Q^T and dP^T = V dO^T,
 * then dS^T = P^T (dP^T - D) scaled, and dV += P^T dO, dK += dS^T Q,
 * dQ += dS K, all from rows as stored. */
static void att_bwd_block(void *c, long item, int worker)
{
	(void)worker;
	const att_job *J = c;
	const int HD = J->HD, NH = J->NH, G = NH / J->NKV;
	const size_t qs = (size_t)NH * HD, ks = (size_t)J->NKV * HD;
	const int s = (int)(item / NH), h = (int)(item % NH), T = J->len[s];
	const float scale = 1.0f / sqrtf((float)HD);
	const size_t base = (size_t)J->off[s];
	const float *kb = J->k + base * ks + (size_t)(h / G) * HD;
	const float *vb = J->v + base * ks + (size_t)(h / G) * HD;
	float *dkb, *dvb;
	size_t lds;
	if (G == 1) {
		dkb = J->dk + base * ks + (size_t)h * HD, dvb = J->dv + base * ks + (size_t)h * HD, lds = ks;
	} else {
		dkb = J->dks + base * qs + (size_t)h * HD, dvb = J->dvs + base * qs + (size_t)h * HD, lds = qs;
	}
	for (int j = 0; j < T; j++) {
		memset(dkb + (size_t)j * lds, 0, sizeof(float) * (size_t)HD);
		memset(dvb + (size_t)j * lds, 0, sizeof(float) * (size_t)HD);
	}
	float Qt[HD_FAST * BQ], dOt[HD_FAST * BQ], dQ[BQ * HD_FAST], Pt[BK * BQ], dSt[BK * BQ], L[BQ], D[BQ];
	for (int i0 = 0; i0 < T; i0 += BQ) {
		const int nq = T - i0 < BQ ? T - i0 : BQ, nq4 = (nq + 3) & ~3;
		const float *qb = J->q + (base + i0) * qs + (size_t)h * HD;
		const float *db = J->dout + (base + i0) * qs + (size_t)h * HD;
		transpose_rows(Qt, qb, qs, nq, HD);
		transpose_rows(dOt, db, qs, nq, HD);
		for (int i = 0; i < BQ; i++) {
			if (i < nq) {
				size_t row = base + i0 + i;
				L[i] = J->lse_in[row * NH + h];
				D[i] = dotf(db + (size_t)i * qs, J->o + row * qs + (size_t)h * HD, HD);
			} else {
				L[i] = 0.0f, D[i] = 0.0f;
			}
		}
		memset(dQ, 0, sizeof(float) * (size_t)nq4 * HD);
		for (int j0 = 0; j0 < i0 + nq; j0 += BK) {
			const int nk = i0 + nq - j0 < BK ? i0 + nq - j0 : BK;
			mm_kq(Pt, kb + (size_t)j0 * ks, ks, nk, Qt, HD, scale);
			mm_kq(dSt, vb + (size_t)j0 * ks, ks, nk, dOt, HD, 1.0f);
			for (int j = 0; j < nk; j++) {
				float *pr = Pt + (size_t)j * BQ, *dr = dSt + (size_t)j * BQ;
				const int t = j0 + j - i0;
#pragma omp simd
				for (int i = 0; i < BQ; i++) {
					float p = i >= t && i < nq ? exp_approx(pr[i] - L[i]) : 0.0f;
					pr[i] = p;
					dr[i] = p * (dr[i] - D[i]) * scale;
				}
			}
			mm_krows(dvb + (size_t)j0 * lds, lds, Pt, db, qs, nk, nq, HD);
			mm_krows(dkb + (size_t)j0 * lds, lds, dSt, qb, qs, nk, nq, HD);
			mm_qrows(dQ, dSt, kb + (size_t)j0 * ks, ks, nq4, nk, HD);
		}
		for (int i = 0; i < nq; i++)
			memcpy(J->dq + (base + i0 + i) * qs + (size_t)h * HD, dQ + (size_t)i * HD, sizeof(float) * (size_t)HD);
	}
}

/* Sums each GQA group's per-query-head key/value gradients, rows [lo, hi)
 * of the packed batch (rows outside every sequence are skipped). */
static void gqa_sum_rows(void *c, long lo, long hi)
{
	const att_job *J = c;
	const int HD = J->HD, NH = J->NH, NKV = J->NKV, G = NH / NKV;
	const size_t qs = (size_t)NH * HD, ks = (size_t)NKV * HD;
	for (int s = 0; s < J->nseq; s++) {
		long a = J->off[s] > lo ? J->off[s] : lo, b = J->off[s] + J->len[s] < hi ? J->off[s] + J->len[s] : hi;
		for (long row = a; row < b; row++)
			for (int g = 0; g < NKV; g++) {
				float *dkr = J->dk + row * ks + (size_t)g * HD, *dvr = J->dv + row * ks + (size_t)g * HD;
				const float *sk = J->dks + row * qs + (size_t)g * G * HD, *sv = J->dvs + row * qs + (size_t)g * G * HD;
				memcpy(dkr, sk, sizeof(float) * (size_t)HD);
				memcpy(dvr, sv, sizeof(float) * (size_t)HD);
				for (int h = 1; h < G; h++) {
					axpyf(dkr, 1.0f, sk + (size_t)h * HD, HD);
					axpyf(dvr, 1.0f, sv + (size_t)h * HD, HD);
				}
			}
	}
}

void iapo_attention_backward(float *dq, float *dk, float *dv, float *dk_scratch, float *dv_scratch,
			     const float *dout, const float *q, const float *k, const float *v,
			     const float *out, const float *lse,
			     const int *off, const int *len, int nseq, int NH, int NKV, int HD)
{
	att_job J = {.dq = dq, .dk = dk, .dv = dv, .dks = dk_scratch, .dvs = dv_scratch, .q = q, .k = k, .v = v,
		     .dout = dout, .o = out, .lse_in = lse, .off = off, .len = len, .nseq = nseq, .NH = NH,
		     .NKV = NKV, .HD = HD};
	const int fast = att_fast(HD);
	iapo_pool_for((long)nseq * NH, fast ? att_bwd_block : att_bwd_plain, &J);
	if (fast && NH == NKV) return; /* written straight into dk, dv */
	long rows = 0;
	for (int s = 0; s < nseq; s++) rows = off[s] + len[s] > rows ? off[s] + len[s] : rows;
	par_range(rows, 2L * NH * HD, gqa_sum_rows, &J);
}

/* ---- vocabulary head ------------------------------------------------------- */

/* Log-sum-exp of u = z / temperature and sum p*u (for the entropy), one row.
 * Blocks of floats summed in vector lanes, then into doubles. */
static void row_stats(const float *z, int V, float temperature, double *lse_out, double *pu_out)
{
	const float inv_t = 1.0f / temperature;
	float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
	for (int i = 0; i < V; i++) mx = z[i] * inv_t > mx ? z[i] * inv_t : mx;
	double sum = 0, su = 0;
	for (int b = 0; b < V; b += 1024) {
		const int e = b + 1024 < V ? b + 1024 : V;
		float s1 = 0, s2 = 0;
#pragma omp simd reduction(+ : s1, s2)
		for (int i = b; i < e; i++) {
			float d = z[i] * inv_t - mx, p = exp_approx(d);
			s1 += p;
			s2 += p * d;
		}
		sum += s1;
		su += s2;
	}
	*lse_out = mx + log(sum);
	*pu_out = su / sum + mx; /* sum p u, computed relative to the max for accuracy */
}

typedef struct {
	float *logp, *entropy, *z;
	const float *zin, *dlogp, *dentropy;
	const int *target;
	int V;
	float temperature;
} head_job;

static void head_fwd_rows(void *c, long lo, long hi)
{
	const head_job *J = c;
	const int V = J->V;
	for (long n = lo; n < hi; n++) {
		const float *z = J->zin + (size_t)n * V;
		double lse, pu;
		row_stats(z, V, J->temperature, &lse, &pu);
		if (J->logp)
			J->logp[n] = J->target[n] >= 0 ? (float)(z[J->target[n]] * (1.0f / J->temperature) - lse) : 0.0f;
		if (J->entropy) J->entropy[n] = (float)(lse - pu);
	}
}

void iapo_logprob_entropy_forward(float *logp, float *entropy, const float *logits, const int *target,
				  int N, int V, float temperature)
{
	head_job J = {.logp = logp, .entropy = entropy, .zin = logits, .target = target, .V = V,
		      .temperature = temperature};
	par_range(N, 3L * V, head_fwd_rows, &J);
}

static void head_bwd_rows(void *c, long lo, long hi)
{
	const head_job *J = c;
	const int V = J->V;
	for (long n = lo; n < hi; n++) {
		float *z = J->z + (size_t)n * V;
		double lse, pu;
		row_stats(z, V, J->temperature, &lse, &pu);
		const float H = (float)(lse - pu), L = (float)lse, inv_t = 1.0f / J->temperature;
		const int t = J->target[n];
		const float gl = J->dlogp && t >= 0 ? J->dlogp[n] : 0.0f, ge = J->dentropy ? J->dentropy[n] : 0.0f;
#pragma omp simd
		for (int i = 0; i < V; i++) {
			float lp = z[i] * inv_t - L, p = exp_approx(lp);
			z[i] = (-gl * p - ge * p * (lp + H)) * inv_t;
		}
		if (t >= 0) z[t] += gl * inv_t;
	}
}

void iapo_logprob_entropy_backward(float *logits, const float *dlogp, const float *dentropy, const int *target,
				   int N, int V, float temperature)
{
	head_job J = {.z = logits, .dlogp = dlogp, .dentropy = dentropy, .target = target, .V = V,
		      .temperature = temperature};
	par_range(N, 4L * V, head_bwd_rows, &J);
}
