/*
 * adamw.c — AdamW and gradient clipping. The arithmetic follows PyTorch's
 * single-tensor (foreach=False) AdamW step in float32 so a test can compare
 * against torch bit for bit up to rounding of the bias corrections.
 */
#include "rl/adamw.h"

#include <math.h>

void iapo_adamw_step(float *p, const float *g, float *m, float *v, size_t n, const iapo_adamw_opts *o, long t)
{
	const float b1 = o->beta1, b2 = o->beta2, lr = o->lr, eps = o->eps;
	const float decay = 1.0f - lr * o->weight_decay;
	/* torch: step_size = lr / bc1; denom = sqrt(v)/sqrt(bc2) + eps */
	const double bc1 = 1.0 - pow((double)b1, (double)t);
	const double bc2 = 1.0 - pow((double)b2, (double)t);
	const float step_size = (float)(lr / bc1);
	const float bc2_sqrt = (float)sqrt(bc2);
#pragma omp parallel for simd schedule(static)
	for (size_t i = 0; i < n; i++) {
		float gi = g[i];
		float mi = m[i] * b1 + (1.0f - b1) * gi;
		float vi = v[i] * b2 + (1.0f - b2) * gi * gi;
		m[i] = mi;
		v[i] = vi;
		float pi = p[i] * decay;
		p[i] = pi - step_size * mi / (sqrtf(vi) / bc2_sqrt + eps);
	}
}

double iapo_grad_norm(const float *g, size_t n)
{
	double s = 0;
#pragma omp parallel for reduction(+ : s) schedule(static)
	for (size_t i = 0; i < n; i++) s += (double)g[i] * g[i];
	return sqrt(s);
}

double iapo_grad_clip(float *g, size_t n, double max_norm)
{
	double norm = iapo_grad_norm(g, n);
	if (max_norm > 0 && norm > max_norm) {
		float scale = (float)(max_norm / (norm + 1e-6));
#pragma omp parallel for simd schedule(static)
		for (size_t i = 0; i < n; i++) g[i] *= scale;
	}
	return norm;
}
