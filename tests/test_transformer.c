/*
 * test_transformer.c — properties of the training forward/backward that the
 * oracle comparison does not pin down by itself:
 *  - padding: a row's outputs and gradients are the same alone or in a ragged
 *    batch, whatever the padding tokens hold (even ids outside the vocabulary),
 *    and a batch's gradient is the sum of its rows' gradients;
 *  - the vocabulary chunk size and the inference-only arena change nothing;
 *  - temperature: logp is log_softmax(logits / temperature) of the returned logits;
 *  - forward and backward allocate nothing; allocation failures in
 *    iapo_fwd_new are reported, not crashed on; bad arguments are errors.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "core/rng.h"
#include "model/transformer.h"
#include "test.h"
#include "tiny_model.h"

enum { B = 3, T = 7 };

static const int lens[B] = {7, 3, 5};
static int tokens[B * T], targets[B * T];
static float dlp[B * T], den[B * T];

static void make_batch(const iapo_config *c, uint64_t seed)
{
	iapo_rng r;
	iapo_rng_seed(&r, seed, 1, 0, 0);
	for (int b = 0; b < B; b++)
		for (int t = 0; t < T; t++) {
			int i = b * T + t, valid = t < lens[b];
			tokens[i] = valid ? (int)iapo_rng_below(&r, c->V) : 1000000 + i; /* garbage padding */
			targets[i] = valid && t >= 1 ? (int)iapo_rng_below(&r, c->V) : -1;
			dlp[i] = iapo_rng_normal(&r), den[i] = iapo_rng_normal(&r);
		}
}

/* Runs row b alone (B=1, T=lens[b]) and compares with the batch results. */
static void padding_arch(iapo_arch arch)
{
	iapo_config c = tiny_config(arch);
	iapo_params p;
	float *block = tiny_block(&c, 11, 0.3f, &p);
	size_t np = iapo_param_count(&c);
	make_batch(&c, arch);
	iapo_fwd *f;
	CHECK(iapo_fwd_new_params(&c, &p, B, T, 1, &f) == IAPO_OK, "new: %s", iapo_errmsg());
	float lp[B * T], en[B * T], *logits = calloc((size_t)B * T * c.V, 4);
	float *g_batch = calloc(np, 4), *g_sum = calloc(np, 4);
	CHECK(iapo_fwd_forward(f, tokens, lens, targets, B, T, lp, en, logits) == IAPO_OK, "forward: %s", iapo_errmsg());
	CHECK(iapo_fwd_backward(f, dlp, den, g_batch) == IAPO_OK, "backward: %s", iapo_errmsg());
	for (int b = 0; b < B; b++)
		for (int t = lens[b]; t < T; t++) {
			CHECK(lp[b * T + t] == 0 && en[b * T + t] == 0, "padding outputs are 0");
			CHECK(logits[((size_t)b * T + t) * c.V] == 0, "padding logits are 0");
		}
	for (int b = 0; b < B; b++) {
		float lp1[T], en1[T], *lg1 = calloc((size_t)T * c.V, 4);
		CHECK(iapo_fwd_forward(f, tokens + b * T, &lens[b], targets + b * T, 1, lens[b], lp1, en1, lg1) == IAPO_OK,
		      "row forward: %s", iapo_errmsg());
		CHECK(test_max_rel_err(lp1, lp + b * T, lens[b]) < 1e-5, "row %d logp alone vs batched", b);
		CHECK(test_max_rel_err(en1, en + b * T, lens[b]) < 1e-5, "row %d entropy alone vs batched", b);
		CHECK(test_max_rel_err(lg1, logits + (size_t)b * T * c.V, (size_t)lens[b] * c.V) < 1e-5, "row %d logits", b);
		CHECK(iapo_fwd_backward(f, dlp + b * T, den + b * T, g_sum) == IAPO_OK, "row backward");
		free(lg1);
	}
	CHECK(test_max_rel_err(g_batch, g_sum, np) < 1e-4, "%s: batch gradient vs sum of rows: %g", c.model_type,
	      test_max_rel_err(g_batch, g_sum, np));
	/* different garbage in the padding changes nothing */
	for (int b = 0; b < B; b++)
		for (int t = lens[b]; t < T; t++) tokens[b * T + t] = -5, targets[b * T + t] = 3, dlp[b * T + t] = 1e9f;
	float lp2[B * T], en2[B * T], *g2 = calloc(np, 4);
	CHECK(iapo_fwd_forward(f, tokens, lens, targets, B, T, lp2, en2, NULL) == IAPO_OK, "forward 2");
	CHECK(iapo_fwd_backward(f, dlp, den, g2) == IAPO_OK, "backward 2");
	CHECK(memcmp(lp, lp2, sizeof lp) == 0 && memcmp(en, en2, sizeof en) == 0, "padding contents do not matter");
	CHECK(memcmp(g_batch, g2, np * 4) == 0, "padding contents do not matter for gradients");
	iapo_fwd_free(f);
	free(block); free(logits); free(g_batch); free(g_sum); free(g2);
}

static void padding(void)
{
	padding_arch(IAPO_ARCH_QWEN2);
	padding_arch(IAPO_ARCH_LLAMA);
	padding_arch(IAPO_ARCH_QWEN3);
}

static void chunks_and_inference(void)
{
	iapo_config c = tiny_config(IAPO_ARCH_QWEN3);
	iapo_params p;
	float *block = tiny_block(&c, 12, 0.3f, &p);
	size_t np = iapo_param_count(&c), BTV = (size_t)B * T * c.V;
	make_batch(&c, 9);
	iapo_fwd *f, *fi;
	CHECK(iapo_fwd_new_params(&c, &p, B, T, 1, &f) == IAPO_OK, "new");
	CHECK(iapo_fwd_new_params(&c, &p, B, T, 0, &fi) == IAPO_OK, "new inference");
	CHECK(iapo_fwd_bytes(fi) < iapo_fwd_bytes(f), "inference arena is smaller (%zu vs %zu)", iapo_fwd_bytes(fi),
	      iapo_fwd_bytes(f));
	float lp0[B * T], en0[B * T], lp[B * T], en[B * T], *lg0 = calloc(BTV, 4), *lg = calloc(BTV, 4);
	float *g0 = calloc(np, 4), *g = calloc(np, 4);
	CHECK(iapo_fwd_forward(f, tokens, lens, targets, B, T, lp0, en0, lg0) == IAPO_OK, "forward");
	CHECK(iapo_fwd_backward(f, dlp, den, g0) == IAPO_OK, "backward");
	int sizes[] = {1, 2, 6, 1000};
	for (int k = 0; k < 4; k++) {
		iapo_fwd_set_chunk(f, sizes[k]);
		memset(g, 0, np * 4);
		CHECK(iapo_fwd_forward(f, tokens, lens, targets, B, T, lp, en, lg) == IAPO_OK, "forward");
		CHECK(iapo_fwd_backward(f, dlp, den, g) == IAPO_OK, "backward");
		CHECK(test_max_rel_err(lp, lp0, B * T) < 1e-6 && test_max_rel_err(en, en0, B * T) < 1e-6, "chunk %d outputs",
		      sizes[k]);
		CHECK(test_max_rel_err(lg, lg0, BTV) < 1e-6, "chunk %d logits", sizes[k]);
		CHECK(test_max_rel_err(g, g0, np) < 1e-5, "chunk %d gradients: %g", sizes[k], test_max_rel_err(g, g0, np));
	}
	CHECK(iapo_fwd_forward(fi, tokens, lens, targets, B, T, lp, en, lg) == IAPO_OK, "inference forward");
	CHECK(test_max_rel_err(lp, lp0, B * T) < 1e-6 && test_max_rel_err(lg, lg0, BTV) < 1e-6, "inference arena agrees");
	/* a smaller batch than the arena */
	int l1 = 4;
	CHECK(iapo_fwd_forward(fi, tokens, &l1, targets, 1, 5, lp, en, NULL) == IAPO_OK, "smaller batch");
	CHECK(test_max_rel_err(lp + 1, lp0 + 1, 3) < 1e-5, "smaller batch agrees");
	iapo_fwd_free(f);
	iapo_fwd_free(fi);
	free(block); free(lg0); free(lg); free(g0); free(g);
}

static void temperature(void)
{
	iapo_config c = tiny_config(IAPO_ARCH_LLAMA);
	iapo_params p;
	float *block = tiny_block(&c, 13, 0.5f, &p);
	make_batch(&c, 10);
	iapo_fwd *f;
	CHECK(iapo_fwd_new_params(&c, &p, B, T, 0, &f) == IAPO_OK, "new");
	float lp[B * T], en[B * T], *lg = calloc((size_t)B * T * c.V, 4);
	float temps[] = {1.0f, 0.6f, 1.5f};
	for (int k = 0; k < 3; k++) {
		iapo_fwd_set_temperature(f, temps[k]);
		CHECK(iapo_fwd_forward(f, tokens, lens, targets, B, T, lp, en, lg) == IAPO_OK, "forward");
		for (int i = 0; i < B * T; i++) {
			if (i % T >= lens[i / T]) continue;
			const float *z = lg + (size_t)i * c.V;
			double mx = -INFINITY, s = 0, h = 0;
			for (int v = 0; v < c.V; v++) mx = fmax(mx, z[v] / temps[k]);
			for (int v = 0; v < c.V; v++) s += exp(z[v] / temps[k] - mx);
			for (int v = 0; v < c.V; v++) {
				double l = z[v] / temps[k] - mx - log(s);
				h -= exp(l) * l;
			}
			if (targets[i] >= 0) CHECK_NEAR(lp[i], z[targets[i]] / temps[k] - mx - log(s), 1e-5, "logp at temperature");
			else CHECK(lp[i] == 0, "logp 0 without a target");
			CHECK_NEAR(en[i], h, 1e-5, "entropy at temperature");
		}
	}
	iapo_fwd_set_temperature(f, 0.0f); /* ignored */
	iapo_fwd_set_temperature(f, NAN);
	CHECK(iapo_fwd_forward(f, tokens, lens, targets, B, T, lp, en, NULL) == IAPO_OK, "forward");
	CHECK(isfinite(lp[1]) && isfinite(en[1]), "invalid temperatures are ignored");
	iapo_fwd_free(f);
	free(block); free(lg);
}

static void no_allocation(void)
{
	iapo_config c = tiny_config(IAPO_ARCH_QWEN2);
	iapo_params p;
	float *block = tiny_block(&c, 14, 0.3f, &p);
	float *g = calloc(iapo_param_count(&c), 4), lp[B * T], en[B * T];
	make_batch(&c, 11);
	iapo_fwd *f;
	CHECK(iapo_fwd_new_params(&c, &p, B, T, 1, &f) == IAPO_OK, "new");
	unsigned long before = iapo_mem_alloc_count();
	for (int k = 0; k < 2; k++) {
		CHECK(iapo_fwd_forward(f, tokens, lens, targets, B, T, lp, en, NULL) == IAPO_OK, "forward");
		CHECK(iapo_fwd_backward(f, dlp, den, g) == IAPO_OK, "backward");
	}
	CHECK(iapo_mem_alloc_count() == before, "forward/backward allocated %lu times", iapo_mem_alloc_count() - before);
	iapo_fwd_free(f);
	/* every allocation of iapo_fwd_new can fail cleanly */
	for (unsigned long k = 1; k <= 3; k++) {
		iapo_mem_fail_after(k);
		iapo_status st = iapo_fwd_new_params(&c, &p, B, T, 1, &f);
		iapo_mem_fail_after(0);
		CHECK(st == IAPO_ERR_NOMEM && f == NULL, "allocation %lu failing: status %d", k, st);
		CHECK(strstr(iapo_errmsg(), "out of memory") != NULL, "message: %s", iapo_errmsg());
	}
	free(block); free(g);
}

static void errors(void)
{
	iapo_config c = tiny_config(IAPO_ARCH_QWEN2);
	iapo_params p;
	float *block = tiny_block(&c, 15, 0.3f, &p);
	float *g = calloc(iapo_param_count(&c), 4), lp[B * T];
	make_batch(&c, 12);
	iapo_fwd *f;
	CHECK(iapo_fwd_new_params(&c, &p, 0, T, 1, &f) == IAPO_ERR_ARG && f == NULL, "B=0");
	iapo_config bad = c;
	bad.NKV = 3;
	CHECK(iapo_fwd_new_params(&bad, &p, B, T, 1, &f) != IAPO_OK && f == NULL, "invalid config");
	CHECK(iapo_fwd_new_params(&c, &p, B, T, 1, &f) == IAPO_OK, "new");
	CHECK(iapo_fwd_backward(f, dlp, NULL, g) == IAPO_ERR_ARG, "backward before forward");
	CHECK(strstr(iapo_errmsg(), "forward") != NULL, "message: %s", iapo_errmsg());
	CHECK(iapo_fwd_forward(f, tokens, lens, targets, B + 1, T, lp, NULL, NULL) == IAPO_ERR_ARG, "B too large");
	CHECK(iapo_fwd_forward(f, tokens, lens, targets, B, T + 1, lp, NULL, NULL) == IAPO_ERR_ARG, "T too large");
	int badlens[B] = {7, 8, 1};
	CHECK(iapo_fwd_forward(f, tokens, badlens, targets, B, T, lp, NULL, NULL) == IAPO_ERR_ARG, "len > T");
	CHECK(strstr(iapo_errmsg(), "lens[1]") != NULL, "message names lens[1]: %s", iapo_errmsg());
	int save = tokens[T + 1];
	tokens[T + 1] = c.V;
	CHECK(iapo_fwd_forward(f, tokens, lens, targets, B, T, lp, NULL, NULL) == IAPO_ERR_ARG, "token out of range");
	CHECK(strstr(iapo_errmsg(), "tokens[1][1]") != NULL, "message names tokens[1][1]: %s", iapo_errmsg());
	tokens[T + 1] = save;
	CHECK(iapo_fwd_backward(f, dlp, NULL, g) == IAPO_ERR_ARG, "backward after a failed forward");
	save = targets[2];
	targets[2] = -2;
	CHECK(iapo_fwd_forward(f, tokens, lens, targets, B, T, lp, NULL, NULL) == IAPO_ERR_ARG, "target out of range");
	targets[2] = save;
	int zero[B] = {0, 0, 0};
	CHECK(iapo_fwd_forward(f, tokens, zero, targets, B, T, lp, NULL, NULL) == IAPO_OK, "all rows empty");
	CHECK(iapo_fwd_backward(f, dlp, NULL, g) == IAPO_OK, "backward of an empty batch");
	double s = 0;
	for (size_t i = 0; i < iapo_param_count(&c); i++) s += fabs(g[i]);
	CHECK(s == 0, "an empty batch has zero gradient");
	iapo_fwd_free(f);
	iapo_fwd_free(NULL);
	free(block); free(g);
}

int main(void)
{
	RUN(padding);
	RUN(chunks_and_inference);
	RUN(temperature);
	RUN(no_allocation);
	RUN(errors);
	TEST_END();
}
