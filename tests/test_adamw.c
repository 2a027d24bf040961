/*
 * test_adamw.c — AdamW and gradient clipping against torch.optim.AdamW and
 * torch.nn.utils.clip_grad_norm_ (fixture from tests/oracle/adamw.py), and
 * on blocks of many chunks (the pool splits them) against a plain loop and
 * across thread counts.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/mem.h"
#include "core/rng.h"
#include "iapo.h"
#include "rl/adamw.h"
#include "test.h"

static int read_floats(FILE *f, float *dst, size_t n) { return fread(dst, sizeof(float), n, f) == n; }

static void test_adamw_matches_torch(void)
{
	/* hyper-parameters are fixed in adamw.py; adamw.json records them */
	const size_t n = 1031;
	const int steps = 5;
	const iapo_adamw_opts o = {.lr = 3e-3f, .beta1 = 0.9f, .beta2 = 0.99f, .eps = 1e-8f, .weight_decay = 0.1f};
	char path[1024];
	snprintf(path, sizeof path, "%s/adamw/adamw.bin", test_fixtures());
	FILE *f = fopen(path, "rb");
	CHECK(f != NULL, "cannot open %s (fixture not generated?)", path);
	if (!f) return;
	float *p = iapo_malloc(n * 4), *g = iapo_malloc(steps * n * 4), *want = iapo_malloc(steps * n * 4);
	float *norms = iapo_malloc(steps * 4), *m = iapo_calloc(n, 4), *v = iapo_calloc(n, 4);
	int ok = read_floats(f, p, n) && read_floats(f, g, steps * n) && read_floats(f, want, steps * n) &&
		 read_floats(f, norms, steps);
	fclose(f);
	CHECK(ok, "short fixture %s", path);
	for (int s = 0; ok && s < steps; s++) {
		double norm = iapo_grad_clip(g + s * n, n, 2.0);
		CHECK_NEAR(norm, norms[s], 1e-5, "grad norm before clipping");
		iapo_adamw_step(p, g + s * n, m, v, n, &o, s + 1);
		double err = test_max_rel_err(p, want + s * n, n);
		CHECK(err <= 1e-6, "step %d: max rel err %g vs torch", s + 1, err);
		if (s == steps - 1) fprintf(stderr, "  adamw: max rel err after %d steps %.3g\n", steps, err);
	}
	iapo_free(p); iapo_free(g); iapo_free(want); iapo_free(norms); iapo_free(m); iapo_free(v);
}

static void test_clip_leaves_small_gradients(void)
{
	float g[3] = {0.3f, -0.4f, 0.0f};
	double norm = iapo_grad_clip(g, 3, 1.0);
	CHECK_NEAR(norm, 0.5, 1e-7, "norm");
	CHECK(g[0] == 0.3f && g[1] == -0.4f, "gradient below max norm must be untouched");
	norm = iapo_grad_clip(g, 3, 0.25);
	CHECK_NEAR(iapo_grad_norm(g, 3), 0.25, 1e-5, "clipped norm");
}

/* Blocks larger than the pool's chunks (16384 floats) and than the norm's
 * window of 256 chunks, with a ragged end: every element against the formula
 * written out once more, and the same bits on 1 and 2 threads. */
static void test_many_chunks(void)
{
	const size_t n = (size_t)16384 * 256 + 16384 * 3 + 77;
	const iapo_adamw_opts o = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.01f};
	float *g = iapo_malloc(n * 4), *p0 = iapo_malloc(n * 4), *want = iapo_malloc(n * 4);
	float *p[2], *m[2], *v[2];
	iapo_rng r;
	iapo_rng_seed(&r, 7, 1, 2, 3);
	for (size_t i = 0; i < n; i++) {
		g[i] = (float)(iapo_rng_double(&r) - 0.5);
		p0[i] = (float)(iapo_rng_double(&r) - 0.5);
	}
	long double ss = 0;
	for (size_t i = 0; i < n; i++) ss += (long double)g[i] * g[i];
	const double want_norm = (double)sqrtl(ss);
	/* step 1 from zero moments: m = (1-b1) g, v = (1-b2) g^2 */
	const double bc1 = 1 - 0.9, bc2 = 1 - 0.999;
	for (size_t i = 0; i < n; i++) {
		double mi = 0.1 * g[i], vi = 0.001 * (double)g[i] * g[i];
		want[i] = (float)(p0[i] * (1 - 1e-5) - 1e-3 / bc1 * mi / (sqrt(vi) / sqrt(bc2) + 1e-8));
	}
	double norm[2];
	const int saved = iapo_get_threads();
	for (int k = 0; k < 2; k++) {
		iapo_set_threads(k + 1);
		norm[k] = iapo_grad_norm(g, n);
		p[k] = iapo_malloc(n * 4), m[k] = iapo_calloc(n, 4), v[k] = iapo_calloc(n, 4);
		memcpy(p[k], p0, n * 4);
		iapo_adamw_step(p[k], g, m[k], v[k], n, &o, 1);
	}
	iapo_set_threads(saved);
	CHECK(fabs(norm[0] - want_norm) <= 1e-12 * want_norm, "norm %.17g, want %.17g", norm[0], want_norm);
	CHECK(norm[0] == norm[1], "norm on 1 and 2 threads: %.17g vs %.17g", norm[0], norm[1]);
	double err = test_max_rel_err(p[0], want, n);
	CHECK(err <= 1e-6, "step: max rel err %g over %zu floats", err, n);
	CHECK(!memcmp(p[0], p[1], n * 4) && !memcmp(m[0], m[1], n * 4) && !memcmp(v[0], v[1], n * 4),
	      "step on 1 and 2 threads differ");
	/* clipping to half the norm halves every element, the last chunk's too */
	memcpy(p[0], g, n * 4);
	iapo_grad_clip(p[0], n, want_norm / 2);
	double worst_ratio = 0;
	for (size_t i = 0; i < n; i++)
		if (g[i] != 0) {
			double d = fabs(p[0][i] / g[i] - 0.5);
			if (d > worst_ratio) worst_ratio = d;
		}
	CHECK(worst_ratio < 1e-6, "clip: some element scaled by 0.5 +- %g", worst_ratio);
	for (int k = 0; k < 2; k++) {
		iapo_free(p[k]); iapo_free(m[k]); iapo_free(v[k]);
	}
	iapo_free(g); iapo_free(p0); iapo_free(want);
}

int main(void)
{
	RUN(test_adamw_matches_torch);
	RUN(test_clip_leaves_small_gradients);
	RUN(test_many_chunks);
	TEST_END();
}
