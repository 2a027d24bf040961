/*
 * test_adamw.c — AdamW and gradient clipping against torch.optim.AdamW and
 * torch.nn.utils.clip_grad_norm_ (fixture from tests/oracle/adamw.py).
 */
#include <stdio.h>

#include "core/mem.h"
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

int main(void)
{
	RUN(test_adamw_matches_torch);
	RUN(test_clip_leaves_small_gradients);
	TEST_END();
}
