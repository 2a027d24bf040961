/*
 * ref.c — the reference kernels: the most direct loops for each formula,
 * single-threaded, double accumulators. Speed does not matter here; being
 * obviously right does, since tests compare the fast kernels (cpu.c) against
 * these. Attention materialises each query's probabilities the textbook way
 * rather than the log-sum-exp recomputation the fast kernel uses.
 */
#include "kernels/ref.h"

#include <math.h>
#include <string.h>

void iapo_ref_matmul_nt(float *C, const float *A, const float *B, int M, int N, int K, int accumulate)
{
	for (int m = 0; m < M; m++)
		for (int n = 0; n < N; n++) {
			double s = accumulate ? C[(size_t)m * N + n] : 0.0;
			for (int k = 0; k < K; k++) s += (double)A[(size_t)m * K + k] * B[(size_t)n * K + k];
			C[(size_t)m * N + n] = (float)s;
		}
}

void iapo_ref_matmul_nn(float *C, const float *A, const float *B, int M, int N, int K, int accumulate)
{
	for (int m = 0; m < M; m++)
		for (int n = 0; n < N; n++) {
			double s = accumulate ? C[(size_t)m * N + n] : 0.0;
			for (int k = 0; k < K; k++) s += (double)A[(size_t)m * K + k] * B[(size_t)k * N + n];
			C[(size_t)m * N + n] = (float)s;
		}
}

void iapo_ref_matmul_tn(float *C, const float *A, const float *B, int M, int N, int K, int accumulate)
{
	for (int m = 0; m < M; m++)
		for (int n = 0; n < N; n++) {
			double s = accumulate ? C[(size_t)m * N + n] : 0.0;
			for (int k = 0; k < K; k++) s += (double)A[(size_t)k * M + m] * B[(size_t)k * N + n];
			C[(size_t)m * N + n] = (float)s;
		}
}

void iapo_ref_rmsnorm_forward(float *out, float *rstd, const float *x, const float *w, int N, int C, float eps)
{
	for (int n = 0; n < N; n++) {
		const float *xr = x + (size_t)n * C;
		double ss = 0;
		for (int c = 0; c < C; c++) ss += (double)xr[c] * xr[c];
		double r = 1.0 / sqrt(ss / C + eps);
		for (int c = 0; c < C; c++) out[(size_t)n * C + c] = (float)(xr[c] * r * w[c]);
		if (rstd) rstd[n] = (float)r;
	}
}

void iapo_ref_rmsnorm_backward(float *dx, float *dw, const float *dout, const float *x, const float *w,
			       const float *rstd, int N, int C)
{
	for (int n = 0; n < N; n++) {
		const float *xr = x + (size_t)n * C, *dy = dout + (size_t)n * C;
		double r = rstd[n], dot = 0;
		for (int c = 0; c < C; c++) dot += (double)dy[c] * w[c] * xr[c];
		for (int c = 0; c < C; c++) {
			dx[(size_t)n * C + c] += (float)(r * dy[c] * w[c] - r * r * r * dot / C * xr[c]);
			if (dw) dw[c] += (float)((double)dy[c] * xr[c] * r);
		}
	}
}

void iapo_ref_rope_apply(float *x, const int *pos, int N, int nheads, int HD, const float *inv_freq, int inverse)
{
	int half = HD / 2;
	for (int n = 0; n < N; n++)
		for (int h = 0; h < nheads; h++) {
			float *r = x + ((size_t)n * nheads + h) * HD;
			for (int i = 0; i < half; i++) {
				float ang = (float)pos[n] * inv_freq[i];
				double c = cosf(ang), s = sinf(ang);
				if (inverse) s = -s;
				double a = r[i], b = r[i + half];
				r[i] = (float)(a * c - b * s);
				r[i + half] = (float)(b * c + a * s);
			}
		}
}

void iapo_ref_swiglu_forward(float *out, const float *gate, const float *up, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		double g = gate[i];
		out[i] = (float)(g / (1.0 + exp(-g)) * up[i]);
	}
}

void iapo_ref_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up,
			      size_t n)
{
	for (size_t i = 0; i < n; i++) {
		double g = gate[i], s = 1.0 / (1.0 + exp(-g));
		dup[i] = (float)(dout[i] * g * s);
		dgate[i] = (float)(dout[i] * up[i] * (s + g * s * (1.0 - s)));
	}
}

void iapo_ref_add_inplace(float *y, const float *x, size_t n)
{
	for (size_t i = 0; i < n; i++) y[i] += x[i];
}

void iapo_ref_bias_forward(float *y, const float *b, int N, int C)
{
	for (int n = 0; n < N; n++)
		for (int c = 0; c < C; c++) y[(size_t)n * C + c] += b[c];
}

void iapo_ref_bias_backward(float *db, const float *dy, int N, int C)
{
	for (int c = 0; c < C; c++) {
		double s = db[c];
		for (int n = 0; n < N; n++) s += dy[(size_t)n * C + c];
		db[c] = (float)s;
	}
}

void iapo_ref_embedding_forward(float *out, const float *table, const int *tokens, int N, int C)
{
	for (int n = 0; n < N; n++)
		memcpy(out + (size_t)n * C, table + (size_t)tokens[n] * C, sizeof(float) * (size_t)C);
}

void iapo_ref_embedding_backward(float *dtable, const float *dout, const int *tokens, int N, int C)
{
	for (int n = 0; n < N; n++)
		for (int c = 0; c < C; c++) dtable[(size_t)tokens[n] * C + c] += dout[(size_t)n * C + c];
}

static double dot(const float *a, const float *b, int n)
{
	double s = 0;
	for (int i = 0; i < n; i++) s += (double)a[i] * b[i];
	return s;
}

void iapo_ref_attention_forward(float *out, float *lse, const float *q, const float *k, const float *v,
				const int *off, const int *len, int nseq, int NH, int NKV, int HD)
{
	double scale = 1.0 / sqrt((double)HD);
	int G = NH / NKV;
	for (int s = 0; s < nseq; s++)
		for (int h = 0; h < NH; h++)
			for (int i = 0; i < len[s]; i++) {
				size_t qi = (size_t)off[s] + i;
				const float *qr = q + (qi * NH + h) * HD;
				double mx = -INFINITY, sum = 0;
				for (int j = 0; j <= i; j++) {
					double sc = scale * dot(qr, k + (((size_t)off[s] + j) * NKV + h / G) * HD, HD);
					if (sc > mx) mx = sc;
				}
				for (int j = 0; j <= i; j++)
					sum += exp(scale * dot(qr, k + (((size_t)off[s] + j) * NKV + h / G) * HD, HD) - mx);
				float *o = out + (qi * NH + h) * HD;
				for (int d = 0; d < HD; d++) {
					double acc = 0;
					for (int j = 0; j <= i; j++) {
						size_t kj = ((size_t)off[s] + j) * NKV + h / G;
						double p = exp(scale * dot(qr, k + kj * HD, HD) - mx) / sum;
						acc += p * v[kj * HD + d];
					}
					o[d] = (float)acc;
				}
				lse[qi * NH + h] = (float)(mx + log(sum));
			}
}

void iapo_ref_attention_backward(float *dq, float *dk, float *dv, float *dk_scratch, float *dv_scratch,
				 const float *dout, const float *q, const float *k, const float *v,
				 const float *out, const float *lse,
				 const int *off, const int *len, int nseq, int NH, int NKV, int HD)
{
	(void)dk_scratch; (void)dv_scratch; (void)lse;
	double scale = 1.0 / sqrt((double)HD);
	int G = NH / NKV;
	for (int s = 0; s < nseq; s++)
		for (int i = 0; i < len[s]; i++) {
			size_t r = (size_t)off[s] + i;
			memset(dq + r * NH * HD, 0, sizeof(float) * (size_t)NH * HD);
			memset(dk + r * NKV * HD, 0, sizeof(float) * (size_t)NKV * HD);
			memset(dv + r * NKV * HD, 0, sizeof(float) * (size_t)NKV * HD);
		}
	for (int s = 0; s < nseq; s++)
		for (int h = 0; h < NH; h++)
			for (int i = 0; i < len[s]; i++) {
				size_t qi = (size_t)off[s] + i;
				const float *qr = q + (qi * NH + h) * HD, *dor = dout + (qi * NH + h) * HD;
				/* probabilities from scratch, as in the forward reference */
				double mx = -INFINITY, sum = 0;
				for (int j = 0; j <= i; j++) {
					double sc = scale * dot(qr, k + (((size_t)off[s] + j) * NKV + h / G) * HD, HD);
					if (sc > mx) mx = sc;
				}
				for (int j = 0; j <= i; j++)
					sum += exp(scale * dot(qr, k + (((size_t)off[s] + j) * NKV + h / G) * HD, HD) - mx);
				double D = dot(dor, out + (qi * NH + h) * HD, HD);
				for (int j = 0; j <= i; j++) {
					size_t kj = ((size_t)off[s] + j) * NKV + h / G;
					double p = exp(scale * dot(qr, k + kj * HD, HD) - mx) / sum;
					double dp = dot(dor, v + kj * HD, HD);
					double ds = p * (dp - D);
					for (int d = 0; d < HD; d++) {
						dq[(qi * NH + h) * HD + d] += (float)(scale * ds * k[kj * HD + d]);
						dk[kj * HD + d] += (float)(scale * ds * qr[d]);
						dv[kj * HD + d] += (float)(p * dor[d]);
					}
				}
			}
}

void iapo_ref_logprob_entropy_forward(float *logp, float *entropy, const float *logits, const int *target,
				      int N, int V, float temperature)
{
	for (int n = 0; n < N; n++) {
		const float *z = logits + (size_t)n * V;
		double mx = -INFINITY, sum = 0, pu = 0;
		for (int i = 0; i < V; i++)
			if ((double)z[i] / temperature > mx) mx = (double)z[i] / temperature;
		for (int i = 0; i < V; i++) sum += exp((double)z[i] / temperature - mx);
		double lse = mx + log(sum);
		for (int i = 0; i < V; i++) {
			double u = (double)z[i] / temperature;
			pu += exp(u - lse) * u;
		}
		if (logp) logp[n] = target[n] >= 0 ? (float)((double)z[target[n]] / temperature - lse) : 0.0f;
		if (entropy) entropy[n] = (float)(lse - pu);
	}
}

void iapo_ref_logprob_entropy_backward(float *logits, const float *dlogp, const float *dentropy,
				       const int *target, int N, int V, float temperature)
{
	for (int n = 0; n < N; n++) {
		float *z = logits + (size_t)n * V;
		double mx = -INFINITY, sum = 0, pu = 0;
		for (int i = 0; i < V; i++)
			if ((double)z[i] / temperature > mx) mx = (double)z[i] / temperature;
		for (int i = 0; i < V; i++) sum += exp((double)z[i] / temperature - mx);
		double lse = mx + log(sum);
		for (int i = 0; i < V; i++) {
			double u = (double)z[i] / temperature;
			pu += exp(u - lse) * u;
		}
		double H = lse - pu;
		double gl = dlogp && target[n] >= 0 ? dlogp[n] : 0.0, ge = dentropy ? dentropy[n] : 0.0;
		for (int i = 0; i < V; i++) {
			double lp = (double)z[i] / temperature - lse, p = exp(lp);
			double g = gl * ((i == target[n] ? 1.0 : 0.0) - p) - ge * p * (lp + H);
			z[i] = (float)(g / temperature);
		}
	}
}
