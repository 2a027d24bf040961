/*
 * test_gemm_batch.c — iapo_sgemm_batch / iapo_matmul_batch (products run as
 * one parallel job, with epilogues) against a double-precision reference:
 * every transpose combination on every path (forced: portable, packed,
 * direct; and automatic), with the epilogues beta*C, an addend matrix R
 * (separate, or C itself), a bias row, both, and K = 0; mixed batches whose
 * products take different paths; and RoPE from a table (iapo_rope_table +
 * iapo_rope_apply_table) against iapo_rope_apply (bit for bit) and the
 * reference kernel.
 */
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "iapo.h"
#include "kernels/gemm.h"
#include "kernels/kernels.h"
#include "kernels/ref.h"
#include "test.h"

static iapo_rng rng;

static float *rnd(size_t n)
{
	float *p = malloc(sizeof(float) * (n ? n : 1));
	for (size_t i = 0; i < n; i++) p[i] = iapo_rng_normal(&rng);
	return p;
}

/* want = alpha*op(A)op(B) + (R ? R : beta*C0) + bias, in double */
static void reference(const iapo_gemm_op *o, const float *C0, double *want)
{
	for (int i = 0; i < o->M; i++)
		for (int j = 0; j < o->N; j++) {
			double s = 0;
			for (int k = 0; k < o->K; k++) {
				double a = o->transA ? o->A[(size_t)k * o->lda + i] : o->A[(size_t)i * o->lda + k];
				double b = o->transB ? o->B[(size_t)j * o->ldb + k] : o->B[(size_t)k * o->ldb + j];
				s += a * b;
			}
			s *= o->alpha;
			if (o->R) s += o->R[(size_t)i * o->ldr + j];
			else if (o->beta != 0.0f) s += (double)o->beta * C0[(size_t)i * o->ldc + j];
			if (o->bias) s += o->bias[j];
			want[(size_t)i * o->N + j] = s;
		}
}

static double max_err(const iapo_gemm_op *o, const double *want)
{
	double num = 0, den = 1e-30;
	for (int i = 0; i < o->M; i++)
		for (int j = 0; j < o->N; j++) {
			double w = want[(size_t)i * o->N + j], d = fabs(o->C[(size_t)i * o->ldc + j] - w);
			num = d > num || d != d ? d : num;
			den = fabs(w) > den ? fabs(w) : den;
		}
	return num / den;
}

typedef struct {
	iapo_gemm_op op;
	float *A, *B, *C, *C0, *R, *bias;
	double *want;
} case_t;

/* epi: 0 beta 0, 1 beta 1, 2 R separate, 3 R = C, 4 bias, 5 R + bias + beta 0.5 (beta unused) */
static void make_case(case_t *c, int ta, int tb, int M, int N, int K, int epi)
{
	memset(c, 0, sizeof *c);
	c->A = rnd((size_t)M * K + 1), c->B = rnd((size_t)K * N + 1);
	int ldc = N + 3; /* padded rows: columns beyond N must stay untouched */
	c->C = rnd((size_t)M * ldc), c->C0 = malloc(sizeof(float) * (size_t)M * ldc);
	memcpy(c->C0, c->C, sizeof(float) * (size_t)M * ldc);
	iapo_gemm_op o = {.transA = ta, .transB = tb, .M = M, .N = N, .K = K, .alpha = epi == 5 ? 0.5f : 1.0f,
			  .beta = epi == 1 ? 1.0f : epi == 5 ? 0.5f : 0.0f, .A = c->A, .lda = ta ? M : K, .B = c->B,
			  .ldb = tb ? K : N, .C = c->C, .ldc = ldc};
	if (epi == 2 || epi == 5) c->R = rnd((size_t)M * (N + 1)), o.R = c->R, o.ldr = N + 1;
	if (epi == 3) o.R = c->C, o.ldr = ldc;
	if (epi == 4 || epi == 5) c->bias = rnd((size_t)N), o.bias = c->bias;
	c->op = o;
	c->want = malloc(sizeof(double) * (size_t)M * N + 8);
	iapo_gemm_op r = o;
	if (epi == 3) r.R = c->C0; /* the addend is C's value before the call */
	reference(&r, c->C0, c->want);
}

static int pad_untouched(const case_t *c)
{
	for (int i = 0; i < c->op.M; i++)
		for (int j = c->op.N; j < c->op.ldc; j++)
			if (c->C[(size_t)i * c->op.ldc + j] != c->C0[(size_t)i * c->op.ldc + j]) return 0;
	return 1;
}

static void free_case(case_t *c)
{
	free(c->A); free(c->B); free(c->C); free(c->C0); free(c->R); free(c->bias); free(c->want);
}

static void every_path_and_epilogue(void)
{
	static const int shapes[][3] = {{1, 1, 1},    {3, 37, 19},  {14, 33, 70},  {29, 64, 300},
					{70, 5, 40},  {16, 129, 17}, {8, 37, 100}, {13, 9, 1024}, {16, 4, 1030}};
	static const int paths[] = {IAPO_SGEMM_AUTO, IAPO_SGEMM_PORTABLE, IAPO_SGEMM_PACKED, IAPO_SGEMM_DIRECT};
	iapo_sgemm_set_blocking(28, 32, 64); /* cross block edges on small shapes */
	for (size_t p = 0; p < sizeof paths / sizeof paths[0]; p++) {
		int old = iapo_sgemm_force_path(paths[p]);
		for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
			for (int t = 0; t < 4; t++)
				for (int epi = 0; epi < 6; epi++) {
					case_t c;
					make_case(&c, t & 1, t >> 1, shapes[s][0], shapes[s][1], shapes[s][2], epi);
					iapo_sgemm_batch(1, &c.op);
					double e = max_err(&c.op, c.want);
					CHECK(e < 1e-5 && pad_untouched(&c), "path %d %dx%dx%d ta=%d tb=%d epi %d: err %g", paths[p],
					      shapes[s][0], shapes[s][1], shapes[s][2], t & 1, t >> 1, epi, e);
					free_case(&c);
				}
		iapo_sgemm_force_path(old);
	}
	iapo_sgemm_set_blocking(0, 0, 0);
}

static void zero_depth(void)
{
	for (int epi = 0; epi < 6; epi++) {
		case_t c;
		make_case(&c, 0, 1, 5, 9, 0, epi);
		iapo_sgemm_batch(1, &c.op);
		CHECK(max_err(&c.op, c.want) < 1e-6, "K = 0, epi %d", epi);
		free_case(&c);
	}
}

static void mixed_batches(void)
{
	/* sizes that take the direct, packed and (below the threshold) single-thread paths together */
	static const int shapes[][3] = {{8, 300, 64}, {256, 200, 96}, {40, 40, 40}, {3, 17, 5}, {100, 512, 128}};
	for (int rep = 0; rep < 3; rep++) {
		case_t c[5];
		iapo_gemm_op ops[5];
		for (int i = 0; i < 5; i++) {
			make_case(&c[i], (i + rep) & 1, ((i + rep) >> 1) & 1, shapes[i][0], shapes[i][1], shapes[i][2],
				  (i + rep) % 6);
			ops[i] = c[i].op;
		}
		if (rep < 2) iapo_sgemm_batch(5, ops);
		else iapo_matmul_batch(5, ops);
		for (int i = 0; i < 5; i++) {
			double e = max_err(&c[i].op, c[i].want);
			CHECK(e < 1e-5 && pad_untouched(&c[i]), "batch %d, product %d: err %g", rep, i, e);
			free_case(&c[i]);
		}
	}
}

static void rope_from_table(void)
{
	const int N = 9, HD = 64, na = 3, nb = 2, pos[9] = {0, 1, 2, 7, 63, 64, 100, 1000, 4095};
	iapo_config cfg = {0};
	cfg.HD = HD;
	cfg.rope_theta = 1e6f;
	float inv[32], *cs = malloc(sizeof(float) * N * HD);
	iapo_rope_inv_freq(&cfg, inv);
	float *a = rnd((size_t)N * na * HD), *b = rnd((size_t)N * nb * HD);
	float *a1 = malloc(sizeof(float) * N * na * HD), *b1 = malloc(sizeof(float) * N * nb * HD);
	float *a2 = malloc(sizeof(float) * N * na * HD);
	memcpy(a1, a, sizeof(float) * N * na * HD);
	memcpy(b1, b, sizeof(float) * N * nb * HD);
	memcpy(a2, a, sizeof(float) * N * na * HD);
	iapo_rope_table(cs, pos, N, HD, inv);
	iapo_rope_apply_table(a, na, b, nb, cs, N, HD, 0);
	iapo_rope_apply(a1, pos, N, na, HD, inv, 0);
	iapo_rope_apply(b1, pos, N, nb, HD, inv, 0);
	CHECK(!memcmp(a, a1, sizeof(float) * N * na * HD) && !memcmp(b, b1, sizeof(float) * N * nb * HD),
	      "table rope equals iapo_rope_apply bit for bit");
	iapo_ref_rope_apply(a2, pos, N, na, HD, inv, 0);
	CHECK(test_max_rel_err(a, a2, (size_t)N * na * HD) < 1e-6, "table rope vs reference");
	iapo_rope_apply_table(a, na, NULL, 0, cs, N, HD, 1);
	iapo_rope_apply(a1, pos, N, na, HD, inv, 1);
	CHECK(!memcmp(a, a1, sizeof(float) * N * na * HD), "inverse, one tensor");
	free(cs); free(a); free(b); free(a1); free(b1); free(a2);
}

int main(void)
{
	iapo_rng_seed(&rng, 3, 0, 0, 0);
	iapo_set_threads(2);
	RUN(every_path_and_epilogue);
	RUN(zero_depth);
	RUN(mixed_batches);
	RUN(rope_from_table);
	TEST_END();
}
