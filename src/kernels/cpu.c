/*
 * cpu.c — the fast CPU kernels declared in kernels.h: our AVX-512 sgemm
 * (gemm.c; OpenBLAS where the CPU lacks AVX-512) for the matmuls, OpenMP across rows (or column blocks, where rows would race on a
 * shared gradient) for everything else. Each has a plain twin in ref.c.
 *
 * Attention walks keys in tiles with an online softmax (running max and sum,
 * output rescaled when the max grows), so it needs no (T,T) buffer; the
 * backward recomputes probabilities from the saved log-sum-exp. Both are
 * parallel over (sequence, query head). Left out: a blocked, BLAS-backed
 * flash kernel (a later performance step) and GPUs.
 */
#include "kernels/kernels.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/gemm.h"

/* Below this many elements OpenMP's fork/join costs more than it saves. */
#define PAR_MIN 4096
/* Column block for reductions over rows: one cache line of floats. */
#define COLS 16
/* Keys per attention tile (scores live on the stack). */
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

void iapo_rmsnorm_forward(float *out, float *rstd, const float *x, const float *w, int N, int C, float eps)
{
#pragma omp parallel for if ((size_t)N * C > PAR_MIN) schedule(static)
	for (int n = 0; n < N; n++) {
		const float *xr = x + (size_t)n * C;
		float *o = out + (size_t)n * C;
		float ss = 0;
#pragma omp simd reduction(+ : ss)
		for (int c = 0; c < C; c++) ss += xr[c] * xr[c];
		float r = 1.0f / sqrtf(ss / (float)C + eps);
#pragma omp simd
		for (int c = 0; c < C; c++) o[c] = xr[c] * r * w[c];
		if (rstd) rstd[n] = r;
	}
}

void iapo_rmsnorm_backward(float *dx, float *dw, const float *dout, const float *x, const float *w,
			   const float *rstd, int N, int C)
{
#pragma omp parallel
	{
#pragma omp for schedule(static) nowait
		for (int n = 0; n < N; n++) {
			const float *xr = x + (size_t)n * C, *dy = dout + (size_t)n * C;
			float *d = dx + (size_t)n * C;
			float r = rstd[n], dot = 0;
#pragma omp simd reduction(+ : dot)
			for (int c = 0; c < C; c++) dot += dy[c] * w[c] * xr[c];
			float k = r * r * r * dot / (float)C;
#pragma omp simd
			for (int c = 0; c < C; c++) d[c] += r * dy[c] * w[c] - k * xr[c];
		}
		if (dw) {
#pragma omp for schedule(static)
			for (int c0 = 0; c0 < C; c0 += COLS) {
				int c1 = c0 + COLS < C ? c0 + COLS : C;
				float acc[COLS] = {0};
				for (int n = 0; n < N; n++) {
					const float *xr = x + (size_t)n * C, *dy = dout + (size_t)n * C;
					float r = rstd[n];
					for (int c = c0; c < c1; c++) acc[c - c0] += dy[c] * xr[c] * r;
				}
				for (int c = c0; c < c1; c++) dw[c] += acc[c - c0];
			}
		}
	}
}

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

void iapo_rope_apply(float *x, const int *pos, int N, int nheads, int HD, const float *inv_freq, int inverse)
{
	int half = HD / 2;
#pragma omp parallel for if ((size_t)N * nheads * HD > PAR_MIN) schedule(static)
	for (int n = 0; n < N; n++) {
		float *row = x + (size_t)n * nheads * HD;
		for (int i = 0; i < half; i++) {
			float ang = (float)pos[n] * inv_freq[i];
			float c = cosf(ang), s = sinf(ang);
			if (inverse) s = -s;
			for (int h = 0; h < nheads; h++) {
				float *r = row + (size_t)h * HD;
				float a = r[i], b = r[i + half];
				r[i] = a * c - b * s;
				r[i + half] = b * c + a * s;
			}
		}
	}
}

void iapo_swiglu_forward(float *out, const float *gate, const float *up, size_t n)
{
#pragma omp parallel for if (n > PAR_MIN) schedule(static)
	for (size_t i = 0; i < n; i++) {
		float g = gate[i];
		out[i] = g / (1.0f + expf(-g)) * up[i];
	}
}

void iapo_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up, size_t n)
{
#pragma omp parallel for if (n > PAR_MIN) schedule(static)
	for (size_t i = 0; i < n; i++) {
		float g = gate[i], s = 1.0f / (1.0f + expf(-g));
		dup[i] = dout[i] * g * s;
		dgate[i] = dout[i] * up[i] * (s + g * s * (1.0f - s));
	}
}

void iapo_add_inplace(float *y, const float *x, size_t n)
{
#pragma omp parallel for simd if (n > PAR_MIN) schedule(static)
	for (size_t i = 0; i < n; i++) y[i] += x[i];
}

void iapo_bias_forward(float *y, const float *b, int N, int C)
{
#pragma omp parallel for if ((size_t)N * C > PAR_MIN) schedule(static)
	for (int n = 0; n < N; n++) {
		float *r = y + (size_t)n * C;
#pragma omp simd
		for (int c = 0; c < C; c++) r[c] += b[c];
	}
}

void iapo_bias_backward(float *db, const float *dy, int N, int C)
{
#pragma omp parallel for if ((size_t)N * C > PAR_MIN) schedule(static)
	for (int c0 = 0; c0 < C; c0 += COLS) {
		int c1 = c0 + COLS < C ? c0 + COLS : C;
		float acc[COLS] = {0};
		for (int n = 0; n < N; n++)
			for (int c = c0; c < c1; c++) acc[c - c0] += dy[(size_t)n * C + c];
		for (int c = c0; c < c1; c++) db[c] += acc[c - c0];
	}
}

void iapo_embedding_forward(float *out, const float *table, const int *tokens, int N, int C)
{
#pragma omp parallel for if ((size_t)N * C > PAR_MIN) schedule(static)
	for (int n = 0; n < N; n++)
		memcpy(out + (size_t)n * C, table + (size_t)tokens[n] * C, sizeof(float) * (size_t)C);
}

void iapo_embedding_backward(float *dtable, const float *dout, const int *tokens, int N, int C)
{
	/* Column blocks in parallel: two rows with the same token never race. */
#pragma omp parallel for if ((size_t)N * C > PAR_MIN) schedule(static)
	for (int c0 = 0; c0 < C; c0 += COLS) {
		int c1 = c0 + COLS < C ? c0 + COLS : C;
		for (int n = 0; n < N; n++) {
			float *d = dtable + (size_t)tokens[n] * C;
			const float *g = dout + (size_t)n * C;
			for (int c = c0; c < c1; c++) d[c] += g[c];
		}
	}
}

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

void iapo_attention_forward(float *out, float *lse, const float *q, const float *k, const float *v,
			    const int *off, const int *len, int nseq, int NH, int NKV, int HD)
{
	const float scale = 1.0f / sqrtf((float)HD);
	const int G = NH / NKV;
	const size_t qs = (size_t)NH * HD, ks = (size_t)NKV * HD;
#pragma omp parallel for collapse(2) schedule(dynamic, 1)
	for (int s = 0; s < nseq; s++)
		for (int h = 0; h < NH; h++) {
			const float *kb = k + (size_t)off[s] * ks + (size_t)(h / G) * HD;
			const float *vb = v + (size_t)off[s] * ks + (size_t)(h / G) * HD;
			for (int i = 0; i < len[s]; i++) {
				size_t row = (size_t)off[s] + i;
				const float *qr = q + row * qs + (size_t)h * HD;
				float *o = out + row * qs + (size_t)h * HD;
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
				lse[row * NH + h] = m + logf(l);
			}
		}
}

void iapo_attention_backward(float *dq, float *dk, float *dv, float *dk_scratch, float *dv_scratch,
			     const float *dout, const float *q, const float *k, const float *v,
			     const float *out, const float *lse,
			     const int *off, const int *len, int nseq, int NH, int NKV, int HD)
{
	const float scale = 1.0f / sqrtf((float)HD);
	const int G = NH / NKV;
	const size_t qs = (size_t)NH * HD, ks = (size_t)NKV * HD;
#pragma omp parallel
	{
#pragma omp for collapse(2) schedule(dynamic, 1)
		for (int s = 0; s < nseq; s++)
			for (int h = 0; h < NH; h++) {
				const float *kb = k + (size_t)off[s] * ks + (size_t)(h / G) * HD;
				const float *vb = v + (size_t)off[s] * ks + (size_t)(h / G) * HD;
				float *dkb = dk_scratch + (size_t)off[s] * qs + (size_t)h * HD;
				float *dvb = dv_scratch + (size_t)off[s] * qs + (size_t)h * HD;
				for (int j = 0; j < len[s]; j++) {
					memset(dkb + (size_t)j * qs, 0, sizeof(float) * (size_t)HD);
					memset(dvb + (size_t)j * qs, 0, sizeof(float) * (size_t)HD);
				}
				for (int i = 0; i < len[s]; i++) {
					size_t row = (size_t)off[s] + i;
					const float *qr = q + row * qs + (size_t)h * HD;
					const float *dor = dout + row * qs + (size_t)h * HD;
					float *dqr = dq + row * qs + (size_t)h * HD;
					float L = lse[row * NH + h];
					float D = dotf(dor, out + row * qs + (size_t)h * HD, HD);
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
		/* Sum each GQA group's per-query-head key/value gradients. */
		for (int s = 0; s < nseq; s++) {
#pragma omp for schedule(static) nowait
			for (int i = 0; i < len[s]; i++) {
				size_t row = (size_t)off[s] + i;
				for (int g = 0; g < NKV; g++) {
					float *dkr = dk + row * ks + (size_t)g * HD, *dvr = dv + row * ks + (size_t)g * HD;
					memset(dkr, 0, sizeof(float) * (size_t)HD);
					memset(dvr, 0, sizeof(float) * (size_t)HD);
					for (int h = g * G; h < (g + 1) * G; h++) {
						axpyf(dkr, 1.0f, dk_scratch + row * qs + (size_t)h * HD, HD);
						axpyf(dvr, 1.0f, dv_scratch + row * qs + (size_t)h * HD, HD);
					}
				}
			}
		}
	}
}

/* Log-sum-exp of u = z / temperature and sum p*u (for the entropy), one row. */
static void row_stats(const float *z, int V, float temperature, double *lse_out, double *pu_out)
{
	float inv_t = 1.0f / temperature, mx = -INFINITY;
	for (int i = 0; i < V; i++) {
		float u = z[i] * inv_t;
		if (u > mx) mx = u;
	}
	double sum = 0, su = 0;
	for (int i = 0; i < V; i++) {
		float u = z[i] * inv_t;
		double e = expf(u - mx);
		sum += e;
		su += e * (u - mx);
	}
	double lse = mx + log(sum);
	*lse_out = lse;
	*pu_out = su / sum + mx; /* sum p u, computed relative to the max for accuracy */
}

void iapo_logprob_entropy_forward(float *logp, float *entropy, const float *logits, const int *target,
				  int N, int V, float temperature)
{
#pragma omp parallel for if ((size_t)N * V > PAR_MIN) schedule(static)
	for (int n = 0; n < N; n++) {
		const float *z = logits + (size_t)n * V;
		double lse, pu;
		row_stats(z, V, temperature, &lse, &pu);
		if (logp) logp[n] = target[n] >= 0 ? (float)(z[target[n]] * (1.0f / temperature) - lse) : 0.0f;
		if (entropy) entropy[n] = (float)(lse - pu);
	}
}

void iapo_logprob_entropy_backward(float *logits, const float *dlogp, const float *dentropy, const int *target,
				   int N, int V, float temperature)
{
#pragma omp parallel for if ((size_t)N * V > PAR_MIN) schedule(static)
	for (int n = 0; n < N; n++) {
		float *z = logits + (size_t)n * V;
		double lse, pu;
		row_stats(z, V, temperature, &lse, &pu);
		float H = (float)(lse - pu), L = (float)lse, inv_t = 1.0f / temperature;
		float gl = dlogp && target[n] >= 0 ? dlogp[n] : 0.0f, ge = dentropy ? dentropy[n] : 0.0f;
		for (int i = 0; i < V; i++) {
			float lp = z[i] * inv_t - L, p = expf(lp);
			z[i] = (-gl * p - ge * p * (lp + H)) * inv_t;
		}
		if (target[n] >= 0) z[target[n]] += gl * inv_t;
	}
}
