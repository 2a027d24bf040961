/*
 * test_gemm_wpack.c — weights packed ahead (iapo_gemm_wpack, iapo_gemm_op.Bp):
 * a product x W^T given the pack must equal, to the bit, the same product
 * without it (the panels it packs on every call). Covered: ragged N and K
 * at the micro-panel and depth-slice edges (N not a multiple of 32, K one
 * past a slice, a padded ldw whose gap holds NaN), fp32 W and bf16 Wh (with
 * the vdpbf16ps panels and, through iapo_sgemm_no_bf16, the widened ones),
 * the epilogues (alpha, beta, R, bias), 1 and 2 threads, row and column
 * block overrides (which keep the layout), a depth override set after
 * packing (the pack is ignored: still the same bits) and _update under it
 * (the pack is used again), _update after the weights change, few rows (the
 * direct path ignores the pack), argument errors and the byte count.
 * Speed: bench/gemm.c (gemm_wpack records), never here.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "core/rng.h"
#include "iapo.h"
#include "kernels/gemm.h"
#include "kernels/kernels.h"
#include "test.h"

static iapo_rng rng; /* seeded in main */

static float urand(void) { return 2.0f * iapo_rng_float(&rng) - 1.0f; }

struct shape {
	int M, N, K, ldw, bf16, beta_r_bias;
};

/* One product with and without the pack (same C start), compared bitwise;
 * path: the path both took must be this one (0: do not check). */
static int same_bits(const struct shape *s, const iapo_gemm_wpack *wp, const float *A, const float *W,
		     const uint16_t *Wh, const float *R, const float *bias, int want_path)
{
	size_t nc = (size_t)s->M * s->N;
	float *c1 = malloc(nc * sizeof(float)), *c2 = malloc(nc * sizeof(float));
	for (size_t i = 0; i < nc; i++) c1[i] = c2[i] = urand();
	iapo_gemm_op o = {.transB = 1, .M = s->M, .N = s->N, .K = s->K, .alpha = 0.75f, .beta = s->beta_r_bias ? 0.5f : 0.0f,
			  .A = A, .lda = s->K, .B = s->bf16 ? NULL : W, .Bh = s->bf16 ? Wh : NULL, .ldb = s->ldw,
			  .ldc = s->N};
	if (s->beta_r_bias == 2) o.R = R, o.ldr = s->N, o.bias = bias;
	o.C = c1;
	iapo_sgemm_batch(1, &o);
	int p1 = iapo_sgemm_last_path();
	o.C = c2;
	o.Bp = wp;
	iapo_sgemm_batch(1, &o);
	int p2 = iapo_sgemm_last_path();
	int ok = memcmp(c1, c2, nc * sizeof(float)) == 0 && p1 == p2 && (!want_path || p1 == want_path);
	if (!ok && want_path) {
		size_t bad = 0;
		while (bad < nc && memcmp(&c1[bad], &c2[bad], sizeof(float)) == 0) bad++;
		fprintf(stderr, "  M=%d N=%d K=%d ldw=%d bf16=%d epi=%d: paths %d %d, first difference at %zu of %zu\n", s->M,
			s->N, s->K, s->ldw, s->bf16, s->beta_r_bias, p1, p2, bad, nc);
	}
	free(c1);
	free(c2);
	return ok;
}

struct operands {
	float *A, *W, *R, *bias;
	uint16_t *Wh;
};

static struct operands make_operands(const struct shape *s)
{
	struct operands o;
	o.A = malloc((size_t)s->M * s->K * sizeof(float));
	o.W = malloc((size_t)s->N * s->ldw * sizeof(float));
	o.Wh = malloc((size_t)s->N * s->ldw * sizeof(uint16_t));
	o.R = malloc((size_t)s->M * s->N * sizeof(float));
	o.bias = malloc((size_t)s->N * sizeof(float));
	for (size_t i = 0; i < (size_t)s->M * s->K; i++) o.A[i] = urand();
	for (int n = 0; n < s->N; n++)
		for (int k = 0; k < s->ldw; k++) o.W[(size_t)n * s->ldw + k] = k < s->K ? urand() : NAN;
	iapo_f32_to_bf16(o.Wh, o.W, (size_t)s->N * s->ldw);
	for (size_t i = 0; i < (size_t)s->M * s->N; i++) o.R[i] = urand();
	for (int n = 0; n < s->N; n++) o.bias[n] = urand();
	return o;
}

static void free_operands(struct operands *o)
{
	free(o->A);
	free(o->W);
	free(o->Wh);
	free(o->R);
	free(o->bias);
}

static const struct shape shapes[] = {
	{64, 32, 16, 16, 0, 0},     {45, 33, 17, 20, 0, 1},  {100, 129, 513, 513, 0, 2}, {300, 200, 1100, 1104, 0, 0},
	{29, 95, 1025, 1031, 0, 2}, {64, 32, 16, 16, 1, 0},  {45, 33, 17, 20, 1, 1},     {100, 129, 513, 514, 1, 2},
	{300, 200, 1100, 1104, 1, 0}, {29, 95, 1025, 1031, 1, 2},
};
#define NSHAPES (int)(sizeof shapes / sizeof shapes[0])

static void test_same_bits(void)
{
	for (int nb = 0; nb <= 1; nb++) {
		int old_nb = iapo_sgemm_no_bf16(nb);
		for (int i = 0; i < NSHAPES; i++) {
			const struct shape *s = &shapes[i];
			if (nb && !s->bf16) continue;
			struct operands o = make_operands(s);
			iapo_gemm_wpack *wp = NULL;
			CHECK(iapo_gemm_wpack_create(&wp, s->N, s->K, s->bf16 ? NULL : o.W, s->bf16 ? o.Wh : NULL, s->ldw) ==
				      IAPO_OK,
			      "create %d", i);
			for (int t = 1; t <= 2; t++) {
				iapo_set_threads(t);
				CHECK(same_bits(s, wp, o.A, o.W, o.Wh, o.R, o.bias, IAPO_SGEMM_PACKED), "shape %d, %d threads, no_bf16 %d",
				      i, t, nb);
				/* row and column blocks cut anywhere: same layout */
				iapo_sgemm_set_blocking(28, 0, 64);
				CHECK(same_bits(s, wp, o.A, o.W, o.Wh, o.R, o.bias, IAPO_SGEMM_PACKED), "shape %d mc/nc override, %d threads",
				      i, t);
				iapo_sgemm_set_blocking(0, 0, 0);
			}
			iapo_gemm_wpack_free(wp);
			free_operands(&o);
		}
		iapo_sgemm_no_bf16(old_nb);
	}
	iapo_set_threads(0);
}

/* A depth slice override after packing: products ignore the pack (same
 * bits as without it); _update under the override packs it for that slice
 * (again the same bits); cleared, the pack is stale and ignored until the
 * next _update. Depth 1100 cuts into 3 slices of 367 at kc = 400 (odd:
 * bf16 rounds it up to a pair), 3 of 512/512/76 by default. */
static void test_depth_override(void)
{
	for (int bf = 0; bf <= 1; bf++) {
		struct shape s = {77, 70, 1100, 1100, bf, 2};
		struct operands o = make_operands(&s);
		iapo_gemm_wpack *wp = NULL;
		CHECK(iapo_gemm_wpack_create(&wp, s.N, s.K, bf ? NULL : o.W, bf ? o.Wh : NULL, s.ldw) == IAPO_OK, "create");
		iapo_sgemm_set_blocking(0, 400, 0);
		CHECK(same_bits(&s, wp, o.A, o.W, o.Wh, o.R, o.bias, IAPO_SGEMM_PACKED), "kc override after packing, bf16 %d", bf);
		iapo_gemm_wpack_update(wp);
		CHECK(same_bits(&s, wp, o.A, o.W, o.Wh, o.R, o.bias, IAPO_SGEMM_PACKED), "kc override, repacked, bf16 %d", bf);
		iapo_sgemm_set_blocking(0, 0, 0);
		CHECK(same_bits(&s, wp, o.A, o.W, o.Wh, o.R, o.bias, IAPO_SGEMM_PACKED), "override cleared, stale pack, bf16 %d", bf);
		iapo_gemm_wpack_update(wp);
		CHECK(same_bits(&s, wp, o.A, o.W, o.Wh, o.R, o.bias, IAPO_SGEMM_PACKED), "default, repacked, bf16 %d", bf);
		iapo_gemm_wpack_free(wp);
		free_operands(&o);
	}
}

/* The pack really is read: after W changes, a product with the stale pack
 * differs from one packing the new W, and _update brings them together. */
static void test_update(void)
{
	for (int bf = 1; bf >= 0; bf--) {
		struct shape s = {60, 64, 300, 300, bf, 0};
		struct operands o = make_operands(&s);
		iapo_gemm_wpack *wp = NULL;
		CHECK(iapo_gemm_wpack_create(&wp, s.N, s.K, bf ? NULL : o.W, bf ? o.Wh : NULL, s.ldw) == IAPO_OK, "create");
		for (size_t i = 0; i < (size_t)s.N * s.ldw; i++) o.W[i] *= 1.5f;
		iapo_f32_to_bf16(o.Wh, o.W, (size_t)s.N * s.ldw);
		CHECK(!same_bits(&s, wp, o.A, o.W, o.Wh, o.R, o.bias, 0), "a stale pack gives other numbers (it is read), bf16 %d",
		      bf);
		iapo_gemm_wpack_update(wp);
		CHECK(same_bits(&s, wp, o.A, o.W, o.Wh, o.R, o.bias, IAPO_SGEMM_PACKED), "after _update, bf16 %d", bf);
		if (bf) {
			iapo_gemm_wpack_free(wp);
			free_operands(&o);
			continue;
		}
	/* few rows: the direct path reads W itself */
	struct shape d = {8, 64, 300, 300, 0, 0};
	CHECK(same_bits(&d, wp, o.A, o.W, o.Wh, o.R, o.bias, IAPO_SGEMM_DIRECT), "M = 8 takes the direct path");
	/* another shape's pack is not used */
	struct shape other = {60, 32, 300, 300, 0, 0};
	CHECK(same_bits(&other, wp, o.A, o.W, o.Wh, o.R, o.bias, IAPO_SGEMM_PACKED), "N differs: pack ignored");
		CHECK(iapo_gemm_wpack_bytes(wp) == (size_t)2 * 32 * 300 * sizeof(float), "bytes: 2 panels of 32 x 300 floats");
		iapo_gemm_wpack_free(wp);
		free_operands(&o);
	}
	iapo_gemm_wpack_free(NULL);
}

static void test_arguments(void)
{
	float w[4] = {0};
	uint16_t wh[4] = {0};
	iapo_gemm_wpack *wp = (iapo_gemm_wpack *)w;
	CHECK(iapo_gemm_wpack_create(&wp, 0, 4, w, NULL, 4) == IAPO_ERR_ARG && wp == NULL, "N = 0");
	CHECK(iapo_gemm_wpack_create(&wp, 1, 4, w, NULL, 3) == IAPO_ERR_ARG, "ldw < K");
	CHECK(iapo_gemm_wpack_create(&wp, 1, 4, NULL, NULL, 4) == IAPO_ERR_ARG, "neither W nor Wh");
	CHECK(iapo_gemm_wpack_create(&wp, 1, 4, w, wh, 4) == IAPO_ERR_ARG, "both W and Wh");
	CHECK(iapo_gemm_wpack_create(NULL, 1, 4, w, NULL, 4) == IAPO_ERR_ARG, "no out pointer");
	for (unsigned long nth = 1; nth <= 2; nth++) {
		iapo_mem_fail_after(nth);
		CHECK(iapo_gemm_wpack_create(&wp, 1, 4, w, NULL, 4) == IAPO_ERR_NOMEM && wp == NULL,
		      "allocation %lu fails", nth);
		iapo_mem_fail_after(0);
	}
}

int main(void)
{
	iapo_rng_seed(&rng, 0x13198a2e03707344ull, 0, 0, 0);
	RUN(test_same_bits);
	RUN(test_depth_override);
	RUN(test_update);
	RUN(test_arguments);
	TEST_END();
}
