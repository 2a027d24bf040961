/*
 * test_gradcheck_model.c — whole-model gradient check of the training
 * forward/backward (src/model/transformer.c) on tiny Qwen2, Llama and Qwen3
 * models: for a padded batch, L = sum a*logp + b*entropy at temperature 0.8,
 * and for several random coordinates of EVERY parameter tensor (both layers),
 * the analytic gradient is compared with a central finite difference of the
 * fp32 forward. fp32 differences are noisy, so the step is large and the
 * tolerance loose (1% of the tensor's gradient scale); the tight check is the
 * PyTorch oracle (test_transformer_oracle.c) and the kernel-level double
 * checks (test_gradcheck_kernels.c).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "model/transformer.h"
#include "test.h"
#include "tiny_model.h"

enum { B = 3, T = 6 };

static const int lens[B] = {6, 2, 4};
static int tokens[B * T], targets[B * T];
static float wa[B * T], wb[B * T];

static double loss(iapo_fwd *f)
{
	float lp[B * T], en[B * T];
	iapo_status st = iapo_fwd_forward(f, tokens, lens, targets, B, T, lp, en, NULL);
	CHECK(st == IAPO_OK, "forward: %s", iapo_errmsg());
	double L = 0;
	for (int i = 0; i < B * T; i++) L += (double)wa[i] * lp[i] + (double)wb[i] * en[i];
	return L;
}

static void check_arch(iapo_arch arch)
{
	iapo_config c = tiny_config(arch);
	iapo_params p;
	float *block = tiny_block(&c, 100 + arch, 0.3f, &p);
	size_t n = iapo_param_count(&c), sizes[IAPO_NUM_PARAMS];
	iapo_param_sizes(&c, sizes);
	float *grad = calloc(n, sizeof(float));
	iapo_rng r;
	iapo_rng_seed(&r, 5, arch, 0, 0);
	for (int i = 0; i < B * T; i++) {
		tokens[i] = (int)iapo_rng_below(&r, c.V);
		targets[i] = iapo_rng_below(&r, 4) == 0 ? -1 : (int)iapo_rng_below(&r, c.V);
		wa[i] = iapo_rng_normal(&r), wb[i] = 0.5f * iapo_rng_normal(&r);
	}
	iapo_fwd *f;
	iapo_status st = iapo_fwd_new_params(&c, &p, B, T, 1, &f);
	CHECK(st == IAPO_OK, "new: %s", iapo_errmsg());
	if (st) return;
	iapo_fwd_set_temperature(f, 0.8f);
	iapo_fwd_set_chunk(f, 4); /* several vocabulary chunks */
	loss(f);
	CHECK(iapo_fwd_backward(f, wa, wb, grad) == IAPO_OK, "backward: %s", iapo_errmsg());

	iapo_params g;
	iapo_params_point(&c, grad, &g);
	for (int t = 0; t < IAPO_NUM_PARAMS; t++) {
		if (!sizes[t]) continue;
		double scale = 0;
		for (size_t j = 0; j < sizes[t]; j++) scale = fmax(scale, fabs(g.t[t][j]));
		CHECK(scale > 0, "%s: gradient of %s is all zero", c.model_type, tiny_name(t));
		for (int k = 0; k < 6; k++) {
			size_t j = k == 0 ? 0 : k == 1 ? sizes[t] - 1 : iapo_rng_below(&r, sizes[t]);
			float *w = &p.t[t][j], save = *w;
			const float h = 3e-3f;
			*w = save + h;
			double lp = loss(f);
			*w = save - h;
			double lm = loss(f);
			*w = save;
			double fd = (lp - lm) / (2.0 * h);
			double an = g.t[t][j];
			CHECK(fabs(fd - an) <= 1e-2 * scale + 1e-4, "%s %s[%zu]: analytic %g, fd %g (scale %g)", c.model_type,
			      tiny_name(t), j, an, fd, scale);
		}
	}
	iapo_fwd_free(f);
	free(block);
	free(grad);
}

static void qwen2(void) { check_arch(IAPO_ARCH_QWEN2); }
static void llama(void) { check_arch(IAPO_ARCH_LLAMA); }
static void qwen3(void) { check_arch(IAPO_ARCH_QWEN3); }

int main(void)
{
	RUN(qwen2);
	RUN(llama);
	RUN(qwen3);
	TEST_END();
}
