/*
 * adamw.c — AdamW and gradient clipping. The arithmetic follows PyTorch's
 * single-tensor (foreach=False) AdamW step in float32 so a test can compare
 * against torch bit for bit up to rounding of the bias corrections.
 *
 * Threads: the kernels' pool, over fixed chunks of the block. Not OpenMP: a
 * training step runs its products on the pool, whose idle worker spins on the
 * second CPU for a while after each call; an OpenMP region right after needs
 * that CPU for its own thread, whose spinning then delays the next step's
 * first products (generate.c's sampling moved to the pool for the same
 * reason). The norm sums fixed chunks in chunk order, so it has the same bits
 * at every thread count.
 */
#include "rl/adamw.h"

#include <math.h>

#include "kernels/pool.h"

/* 64 KiB of floats: long enough that the pool's per-item cost (an atomic
 * increment) is noise, short enough that 2 threads balance on the smallest
 * models (tiny's block is a few hundred chunks). */
#define CHUNK ((size_t)16384)
/* Chunk sums of the norm are kept for one window at a time on the stack. */
#define WINDOW 256

typedef struct {
	float *p, *m, *v;
	float *g;
	const float *gc;
	size_t n, base;
	float b1, b2, decay, step_size, bc2_sqrt, eps, scale;
	double *part;
} job;

static void chunk_range(const job *j, long item, size_t *lo, size_t *hi)
{
	*lo = j->base + (size_t)item * CHUNK;
	*hi = *lo + CHUNK < j->n ? *lo + CHUNK : j->n;
}

static void adamw_item(void *ctx, long item, int worker)
{
	(void)worker;
	const job *j = ctx;
	size_t lo, hi;
	chunk_range(j, item, &lo, &hi);
	float *p = j->p, *m = j->m, *v = j->v;
	const float *g = j->gc;
	const float b1 = j->b1, b2 = j->b2, decay = j->decay, step_size = j->step_size, bc2_sqrt = j->bc2_sqrt,
		    eps = j->eps;
#pragma omp simd
	for (size_t i = lo; i < hi; i++) {
		float gi = g[i];
		float mi = m[i] * b1 + (1.0f - b1) * gi;
		float vi = v[i] * b2 + (1.0f - b2) * gi * gi;
		m[i] = mi;
		v[i] = vi;
		float pi = p[i] * decay;
		p[i] = pi - step_size * mi / (sqrtf(vi) / bc2_sqrt + eps);
	}
}

void iapo_adamw_step(float *p, const float *g, float *m, float *v, size_t n, const iapo_adamw_opts *o, long t)
{
	/* torch: step_size = lr / bc1; denom = sqrt(v)/sqrt(bc2) + eps */
	const double bc1 = 1.0 - pow((double)o->beta1, (double)t);
	const double bc2 = 1.0 - pow((double)o->beta2, (double)t);
	job j = {.p = p, .m = m, .v = v, .gc = g, .n = n, .b1 = o->beta1, .b2 = o->beta2,
		 .decay = 1.0f - o->lr * o->weight_decay, .step_size = (float)(o->lr / bc1),
		 .bc2_sqrt = (float)sqrt(bc2), .eps = o->eps};
	iapo_pool_for((long)((n + CHUNK - 1) / CHUNK), adamw_item, &j);
}

static void norm_item(void *ctx, long item, int worker)
{
	(void)worker;
	const job *j = ctx;
	size_t lo, hi;
	chunk_range(j, item, &lo, &hi);
	/* Eight sums side by side: one chain would wait on the adder's latency at
	 * every element (the norm then cost a fifth of a qwen0.5b step). Their
	 * order is fixed here, not left to the compiler. */
	const float *g = j->gc;
	double a[8] = {0};
	size_t i = lo;
	for (; i + 8 <= hi; i += 8)
		for (int k = 0; k < 8; k++) a[k] += (double)g[i + k] * g[i + k];
	for (int k = 0; i < hi; i++, k++) a[k] += (double)g[i] * g[i];
	j->part[item] = ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}

double iapo_grad_norm(const float *g, size_t n)
{
	double part[WINDOW], s = 0;
	job j = {.gc = g, .n = n, .part = part};
	for (j.base = 0; j.base < n; j.base += CHUNK * WINDOW) {
		const size_t left = n - j.base;
		const long items = (long)(left >= CHUNK * WINDOW ? WINDOW : (left + CHUNK - 1) / CHUNK);
		iapo_pool_for(items, norm_item, &j);
		for (long k = 0; k < items; k++) s += part[k];
	}
	return sqrt(s);
}

static void scale_item(void *ctx, long item, int worker)
{
	(void)worker;
	const job *j = ctx;
	size_t lo, hi;
	chunk_range(j, item, &lo, &hi);
	const float scale = j->scale;
	float *g = j->g;
#pragma omp simd
	for (size_t i = lo; i < hi; i++) g[i] *= scale;
}

double iapo_grad_clip(float *g, size_t n, double max_norm)
{
	double norm = iapo_grad_norm(g, n);
	if (max_norm > 0 && norm > max_norm) {
		job j = {.g = g, .n = n, .scale = (float)(max_norm / (norm + 1e-6))};
		iapo_pool_for((long)((n + CHUNK - 1) / CHUNK), scale_item, &j);
	}
	return norm;
}
