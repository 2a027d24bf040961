/*
 * test_attention.c — the blocked (flash-style) attention of src/kernels/cpu.c
 * against the textbook reference (src/kernels/ref.c), forward and backward,
 * on the shapes the models use and on the block edges: head dims 16..128
 * (multiples of 16 take the blocked path; 40 and 160 the plain one), GQA
 * groups 1, 2, 7, ragged sequences of 1, 31, 32, 33, 63, 64, 65, 130 and 200
 * tokens (blocks are 64 queries forward, 32 backward, 64 keys) with gap rows
 * between them, results independent of the thread count, and rows outside
 * every sequence left untouched. test_kernels.c has the small cases.
 */
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "iapo.h"
#include "kernels/kernels.h"
#include "kernels/ref.h"
#include "test.h"

static iapo_rng rng;

static float *rnd(size_t n, float scale)
{
	float *p = malloc(sizeof(float) * (n ? n : 1));
	for (size_t i = 0; i < n; i++) p[i] = scale * iapo_rng_normal(&rng);
	return p;
}

static void one_case(int NH, int NKV, int HD, int nseq, const int *len, float qscale)
{
	int off[16], N = 0;
	for (int s = 0; s < nseq; s++) off[s] = N, N += len[s] + 2; /* gap rows */
	size_t qn = (size_t)N * NH * HD, kn = (size_t)N * NKV * HD;
	float *q = rnd(qn, qscale), *k = rnd(kn, 1), *v = rnd(kn, 1), *dout = rnd(qn, 1);
	float *o1 = calloc(qn, 4), *o2 = calloc(qn, 4), *l1 = calloc((size_t)N * NH, 4), *l2 = calloc((size_t)N * NH, 4);
	iapo_attention_forward(o1, l1, q, k, v, off, len, nseq, NH, NKV, HD);
	iapo_ref_attention_forward(o2, l2, q, k, v, off, len, nseq, NH, NKV, HD);
	double eo = test_max_rel_err(o1, o2, qn), el = test_max_rel_err(l1, l2, (size_t)N * NH);
	CHECK(eo < 2e-5 && el < 2e-5, "fwd NH=%d NKV=%d HD=%d: out %g, lse %g", NH, NKV, HD, eo, el);
	int untouched = 1;
	for (int s = 0; s < nseq; s++)
		for (size_t x = (size_t)(off[s] + len[s]) * NH * HD; x < (size_t)(off[s] + len[s] + 2) * NH * HD; x++)
			untouched &= o1[x] == 0;
	CHECK(untouched, "fwd HD=%d: gap rows untouched", HD);

	float *dq1 = calloc(qn, 4), *dq2 = calloc(qn, 4), *dk1 = calloc(kn, 4), *dk2 = calloc(kn, 4);
	float *dv1 = calloc(kn, 4), *dv2 = calloc(kn, 4), *s1 = calloc(qn, 4), *s2 = calloc(qn, 4);
	iapo_attention_backward(dq1, dk1, dv1, s1, s2, dout, q, k, v, o1, l1, off, len, nseq, NH, NKV, HD);
	iapo_ref_attention_backward(dq2, dk2, dv2, NULL, NULL, dout, q, k, v, o2, l2, off, len, nseq, NH, NKV, HD);
	double eq = test_max_rel_err(dq1, dq2, qn), ek = test_max_rel_err(dk1, dk2, kn), ev = test_max_rel_err(dv1, dv2, kn);
	CHECK(eq < 1e-4 && ek < 1e-4 && ev < 1e-4, "bwd NH=%d NKV=%d HD=%d: dq %g dk %g dv %g", NH, NKV, HD, eq, ek, ev);

	/* the same numbers on one thread: items never share a sum */
	iapo_set_threads(1);
	float *o3 = calloc(qn, 4), *l3 = calloc((size_t)N * NH, 4), *dq3 = calloc(qn, 4), *dk3 = calloc(kn, 4),
	      *dv3 = calloc(kn, 4);
	iapo_attention_forward(o3, l3, q, k, v, off, len, nseq, NH, NKV, HD);
	iapo_attention_backward(dq3, dk3, dv3, s1, s2, dout, q, k, v, o3, l3, off, len, nseq, NH, NKV, HD);
	iapo_set_threads(2);
	CHECK(!memcmp(o1, o3, qn * 4) && !memcmp(l1, l3, (size_t)N * NH * 4), "fwd HD=%d: thread count changes bits", HD);
	CHECK(!memcmp(dq1, dq3, qn * 4) && !memcmp(dk1, dk3, kn * 4) && !memcmp(dv1, dv3, kn * 4),
	      "bwd HD=%d: thread count changes bits", HD);
	free(q); free(k); free(v); free(dout); free(o1); free(o2); free(l1); free(l2); free(o3); free(l3);
	free(dq1); free(dq2); free(dk1); free(dk2); free(dv1); free(dv2); free(s1); free(s2);
	free(dq3); free(dk3); free(dv3);
}

static void block_edges(void)
{
	int a[] = {1, 31, 32, 33, 63, 64, 65};
	one_case(2, 1, 64, 7, a, 1.0f);
	one_case(4, 4, 64, 7, a, 1.0f);
}

static void model_shapes(void)
{
	int a[] = {130, 200};
	one_case(4, 2, 64, 2, a, 1.0f);   /* tiny / small: HD 64, groups of 2 */
	one_case(14, 2, 64, 1, a + 1, 1.0f); /* qwen0.5b: groups of 7 */
	one_case(4, 1, 128, 2, a, 1.0f);  /* Qwen3 / Llama: HD 128 */
}

static void other_head_dims(void)
{
	int a[] = {70, 5};
	one_case(3, 3, 16, 2, a, 1.0f);
	one_case(2, 2, 48, 2, a, 1.0f);
	one_case(2, 1, 80, 2, a, 1.0f);
	one_case(2, 2, 40, 2, a, 1.0f);  /* plain path */
	one_case(2, 1, 160, 2, a, 1.0f); /* plain path */
}

static void peaked_scores(void)
{
	/* large q: each query's softmax is nearly one-hot, the running max moves */
	int a[] = {150};
	one_case(2, 1, 64, 1, a, 6.0f);
}

int main(void)
{
	iapo_rng_seed(&rng, 7, 0, 0, 0);
	iapo_set_threads(2);
	RUN(block_edges);
	RUN(model_shapes);
	RUN(other_head_dims);
	RUN(peaked_scores);
	TEST_END();
}
