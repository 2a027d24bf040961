/*
 * test_gemm_splitk.c — the packed path's split-K (src/kernels/gemm.c): on
 * several threads, each thread sums a share of the depth slices over all of
 * C and the partial sums are added afterwards, region by region, by
 * whichever thread finishes a region last. Checked here: which products the
 * tuned rule sends there (few columns, or an op(A) the grid would pack
 * twice) and which it does not (one thread, unequal shares); the result
 * against a double-precision loop for every transpose, ragged edges, K not
 * a multiple of the slice, alpha/beta (beta 0 over NaN), the epilogue (an
 * addend R, also R == C, and a bias) and several products in one batch;
 * the same bits on every repeat with the same thread count; x W^T split
 * only with one slice per thread, where the partial sums are added in the
 * sequential order, so that its bits are one thread's (fp32 and bf16
 * weights, weights packed ahead); no allocation in steady state. No timing: bench/gemm.c measures speed.
 */
#include <math.h>
#include <stdint.h>

#include "core/mem.h"
#include "core/rng.h"
#include "iapo.h"
#include "kernels/gemm.h"
#include "kernels/kernels.h"
#include "gemm_ref.h"
#include "test.h"

static iapo_rng rng;

/* rows x ld floats, the gap beyond cols filled with gap */
static float *mat(int rows, int cols, int ld, float gap)
{
	float *m = malloc(sizeof(float) * ((size_t)rows * ld + 1));
	for (int i = 0; i < rows; i++)
		for (int j = 0; j < ld; j++) m[(size_t)i * ld + j] = j < cols ? 2.0f * iapo_rng_float(&rng) - 1.0f : gap;
	return m;
}

struct prod {
	int ta, tb, M, N, K, pad;
	float alpha, beta;
	int with_r, r_is_c, with_bias;
};

/* Runs p through iapo_sgemm_batch (alone, or after a second, unrelated
 * product in the same batch when batch2) at `threads`, checks it against
 * the double-precision loop (bound 1e-5*sqrt(K) of |alpha| sum |a b| + the
 * addend's magnitude), and that split-K took it (want_split: the groups
 * expected, or -1 for any). Returns 1 when right. */
static int run_check(struct prod p, int threads, int want_split, int batch2)
{
	int ar = p.ta ? p.K : p.M, ac = p.ta ? p.M : p.K, br = p.tb ? p.N : p.K, bc = p.tb ? p.K : p.N;
	int lda = ac + p.pad, ldb = bc + 2 * p.pad, ldc = p.N + 3 * p.pad, ldr = p.N + p.pad;
	float *A = mat(ar, ac, lda, NAN), *B = mat(br, bc, ldb, NAN), *C = mat(p.M, p.N, ldc, -777.0f);
	float *R = p.with_r && !p.r_is_c ? mat(p.M, p.N, ldr, NAN) : NULL;
	float *bias = p.with_bias ? mat(1, p.N, p.N, 0) : NULL;
	float *C0 = malloc(sizeof(float) * ((size_t)p.M * ldc + 1));
	if (p.beta == 0.0f && !p.with_r)
		for (int i = 0; i < p.M; i++)
			for (int j = 0; j < p.N; j++) C[(size_t)i * ldc + j] = NAN;
	memcpy(C0, C, sizeof(float) * (size_t)p.M * ldc);
	iapo_gemm_op o[2] = {{.transA = p.ta, .transB = p.tb, .M = p.M, .N = p.N, .K = p.K, .alpha = p.alpha,
			      .beta = p.beta, .A = A, .lda = lda, .B = B, .ldb = ldb, .C = C, .ldc = ldc,
			      .R = p.r_is_c ? C : R, .ldr = p.r_is_c ? ldc : ldr, .bias = bias}};
	/* a second product: 40 x 50 x 60, x W^T, into its own C */
	float *A2 = mat(40, 60, 60, 0), *B2 = mat(50, 60, 60, 0), *C2 = mat(40, 50, 50, 0);
	o[1] = (iapo_gemm_op){.transB = 1, .M = 40, .N = 50, .K = 60, .alpha = 1.0f, .A = A2, .lda = 60, .B = B2,
			      .ldb = 60, .C = C2, .ldc = 50};
	iapo_set_threads(threads);
	if (batch2) {
		iapo_gemm_op sw[2] = {o[1], o[0]}; /* ours last: last_split reports it */
		iapo_sgemm_batch(2, sw);
	} else {
		iapo_sgemm_batch(1, o);
	}
	int split = iapo_sgemm_last_split(), ok = 1;
	if (want_split >= 0 && split != want_split) {
		fprintf(stderr, "  split-K groups %d, expected %d\n", split, want_split);
		ok = 0;
	}
	double tol = 1e-5 * sqrt((double)p.K);
	for (int i = 0; i < p.M && ok; i++)
		for (int j = 0; j < ldc && ok; j++) {
			float got = C[(size_t)i * ldc + j];
			if (j >= p.N) {
				if (got != -777.0f) fprintf(stderr, "  wrote outside C at (%d,%d)\n", i, j), ok = 0;
				continue;
			}
			double mag, ref = gemm_ref_dot(p.ta, p.tb, A, lda, B, ldb, i, j, p.K, &mag);
			ref *= p.alpha, mag *= fabs(p.alpha);
			double z = p.with_r ? (p.r_is_c ? C0[(size_t)i * ldc + j] : R[(size_t)i * ldr + j])
					    : p.beta != 0.0f ? (double)p.beta * C0[(size_t)i * ldc + j] : 0.0;
			if (bias) z += bias[j];
			ref += z, mag += fabs(z);
			if (!(fabs(got - ref) <= tol * mag + 1e-30))
				fprintf(stderr, "  C(%d,%d) = %.9g, expected %.9g\n", i, j, got, ref), ok = 0;
		}
	for (int i = 0; i < 40 && ok && batch2; i++)
		for (int j = 0; j < 50 && ok; j++) {
			double ref = 0;
			for (int k = 0; k < 60; k++) ref += (double)A2[i * 60 + k] * B2[j * 60 + k];
			if (!(fabs(C2[i * 50 + j] - ref) <= 1e-4)) fprintf(stderr, "  batch mate C(%d,%d) wrong\n", i, j), ok = 0;
		}
	if (!ok)
		fprintf(stderr, "  in ta=%d tb=%d M=%d N=%d K=%d pad=%d alpha=%g beta=%g R=%d%s bias=%d threads=%d\n", p.ta,
			p.tb, p.M, p.N, p.K, p.pad, p.alpha, p.beta, p.with_r, p.r_is_c ? " (C)" : "", p.with_bias,
			threads);
	free(A); free(B); free(C); free(C0); free(R); free(bias); free(A2); free(B2); free(C2);
	return ok;
}

/* The tuned rule: N <= 128 columns with two slices (k/v) when A is packed
 * (here its rows are 4 KB apart: K = 1024), the grid when A's rows are read
 * in place (K = 896), an op(A) too large to share (the lm_head's dx: many
 * slices), never on one thread nor with three slices on two threads. */
static void test_rule(void)
{
	if (!iapo_sgemm_avx512()) return;
	struct prod kv = {0, 1, 64, 128, 1024, 0, 1.0f, 0.0f, 0, 0, 0};
	CHECK(run_check(kv, 2, 2, 0), "k/v shape, 2 threads: split-K");
	CHECK(run_check(kv, 1, 0, 0), "k/v shape, 1 thread: no split");
	struct prod dx = {0, 0, 64, 256, 4608, 0, 1.0f, 0.0f, 0, 0, 0}; /* A 1.2 MB: packed per rectangle */
	CHECK(run_check(dx, 2, 2, 0), "large A, 9 slices: split-K");
	struct prod xwt = {0, 1, 64, 256, 4608, 0, 1.0f, 0.0f, 0, 0, 0};
	CHECK(run_check(xwt, 2, 0, 0), "x W^T, large A, 9 slices: no split (one slice per thread only)");
	struct prod three = {0, 1, 64, 128, 1536, 0, 1.0f, 0.0f, 0, 0, 0};
	CHECK(run_check(three, 2, 0, 0), "3 slices on 2 threads: no split");
	struct prod wide = {0, 1, 256, 512, 1024, 0, 1.0f, 0.0f, 0, 0, 0}; /* A 1 MB, shared once */
	CHECK(run_check(wide, 2, 0, 0), "wide C, shared A: the grid");
	struct prod kv_rows = {0, 1, 64, 128, 896, 0, 1.0f, 0.0f, 0, 0, 0};
	CHECK(run_check(kv_rows, 2, 0, 0), "k/v shape, A's rows in place: the grid");
	int old_rows = iapo_sgemm_a_rows(0);
	CHECK(run_check(kv_rows, 2, 2, 0), "k/v shape, A packed: split-K");
	iapo_sgemm_a_rows(old_rows);
	int old = iapo_sgemm_split_k(0);
	CHECK(run_check(kv, 2, 0, 0), "split-K off");
	iapo_sgemm_split_k(old);
}

/* Forced split-K (mode 2) over shapes, transposes and epilogues, with
 * small depth slices (blocking override) for many slices at small sizes. */
static void test_against_reference(void)
{
	if (!iapo_sgemm_avx512()) return;
	int old = iapo_sgemm_split_k(2), oldp = iapo_sgemm_force_path(IAPO_SGEMM_PACKED);
	static const int Ms[] = {1, 15, 64, 131}, Ns[] = {1, 17, 33, 128, 200};
	/* with slices of ~40: 2, 4, 8, 9 (>= 4 per thread), 10 slices, the last ragged */
	static const int Ks[] = {80, 157, 301, 333, 397};
	static const float ab[][2] = {{1, 0}, {0.5f, -2}, {-1.5f, 1}};
	iapo_sgemm_set_blocking(0, 40, 0);
	for (int t = 0; t < 4; t++)
		for (int k = 0; k < 5; k++) {
			/* x W^T splits only with one slice per thread */
			int K = t == 2 ? 79 + k % 2 : Ks[k];
			struct prod p = {t & 1, t >> 1, Ms[(t + k) % 4], Ns[(t + 2 * k) % 5], K, k % 2, ab[k % 3][0],
					 ab[k % 3][1], 0, 0, 0};
			CHECK(run_check(p, 2, 2, 0), "transposes %d K=%d", t, p.K);
		}
	/* epilogues on x W^T and dy W: addend R, R == C, bias, in a batch */
	for (int e = 0; e < 6; e++) {
		struct prod p = {0, e % 2 == 0, 70, 45 + 10 * e, e % 2 ? 301 : 80, e % 2, 1.0f, 0.0f, e < 4, e == 1 || e == 3,
				 e >= 2};
		CHECK(run_check(p, 2, 2, e >= 3), "epilogue %d", e);
	}
	iapo_sgemm_set_blocking(0, 0, 0);
	iapo_sgemm_force_path(oldp);
	/* the default slices: K not a multiple of the slice (501 + 500) and
	 * 9 slices of 456 */
	struct prod d1 = {0, 1, 60, 100, 1001, 1, 1.0f, 0.5f, 0, 0, 1};
	CHECK(run_check(d1, 2, 2, 0), "K = 1001");
	struct prod d2 = {0, 0, 33, 64, 4100, 0, 2.0f, 0.0f, 1, 0, 0};
	CHECK(run_check(d2, 2, 2, 0), "K = 4100");
	iapo_sgemm_split_k(old);
}

/* x W^T (or, nn, x W with W read as K x N), M x N x K, into C at the
 * given threads and split mode; also reports the split taken. */
static void product_t(int nn, int M, int N, int K, const float *A, const float *W, const uint16_t *Wh,
		      const iapo_gemm_wpack *wp, float *C, int threads, int mode, int *split)
{
	int old = iapo_sgemm_split_k(mode);
	iapo_set_threads(threads);
	iapo_gemm_op o = {.transB = !nn, .M = M, .N = N, .K = K, .alpha = 1.0f, .A = A, .lda = K, .B = Wh ? NULL : W,
			  .Bh = Wh, .Bp = wp, .ldb = nn ? N : K, .C = C, .ldc = N, .bias = W + 7};
	iapo_sgemm_batch(1, &o);
	*split = iapo_sgemm_last_split();
	iapo_sgemm_split_k(old);
}

static void product(int M, int N, int K, const float *A, const float *W, const uint16_t *Wh,
		    const iapo_gemm_wpack *wp, float *C, int threads, int mode, int *split)
{
	product_t(0, M, N, K, A, W, Wh, wp, C, threads, mode, split);
}

/* The same bits on every call at a thread count; with two slices the same
 * bits as without split-K (and as one thread), fp32 and bf16 W; with W
 * packed ahead the same bits as without. */
static void test_bits(void)
{
	if (!iapo_sgemm_avx512()) return;
	const int M = 50, N = 96, K = 3000; /* 6 slices of 500: partials differ from the sequential sum */
	float *A = mat(M, K, K, 0), *W = mat(N, K, K, 0);
	size_t cn = (size_t)M * N;
	float *c1 = malloc(cn * 4), *c2 = malloc(cn * 4), *c3 = malloc(cn * 4);
	int s1, s2, s3;
	product_t(1, M, N, K, A, W, NULL, NULL, c1, 2, 2, &s1);
	product_t(1, M, N, K, A, W, NULL, NULL, c3, 1, 1, &s3); /* other work in between */
	product_t(1, M, N, K, A, W, NULL, NULL, c2, 2, 2, &s2);
	CHECK(s1 == 2 && s2 == 2 && s3 == 0, "dy W splits %d %d %d", s1, s2, s3);
	CHECK(!memcmp(c1, c2, cn * 4), "dy W, 6 slices: split-K not repeatable");
	/* x W^T with 6 slices does not split, even forced: one thread's bits */
	product(M, N, K, A, W, NULL, NULL, c1, 2, 2, &s1);
	product(M, N, K, A, W, NULL, NULL, c2, 1, 1, &s2);
	CHECK(s1 == 0 && !memcmp(c1, c2, cn * 4), "x W^T, 6 slices: split %d, or other bits than 1 thread", s1);
	/* two slices (of 500, fp32 and bf16 alike): C = (epilogue + slice 0) +
	 * slice 1 either way */
	const int Kt = 1000;
	uint16_t *Wh = malloc(sizeof(uint16_t) * (size_t)N * Kt);
	float *Wt = mat(N, Kt, Kt, 0), *A2 = mat(M, Kt, Kt, 0);
	iapo_f32_to_bf16(Wh, Wt, (size_t)N * Kt);
	for (int bf = 0; bf <= 1; bf++) {
		const uint16_t *Wht = bf ? Wh : NULL;
		product(M, N, Kt, A2, Wt, Wht, NULL, c1, 2, 2, &s1);
		product(M, N, Kt, A2, Wt, Wht, NULL, c2, 2, 0, &s2);
		product(M, N, Kt, A2, Wt, Wht, NULL, c3, 1, 1, &s3);
		CHECK(s1 == 2 && s2 == 0 && s3 == 0, "%s: splits %d %d %d", bf ? "bf16" : "fp32", s1, s2, s3);
		CHECK(!memcmp(c1, c2, cn * 4) && !memcmp(c1, c3, cn * 4), "%s, two slices: split-K changed the bits",
		      bf ? "bf16" : "fp32");
		/* packed ahead: the same bits, split or not */
		iapo_gemm_wpack *wp = NULL;
		CHECK(iapo_gemm_wpack_create(&wp, N, Kt, bf ? NULL : Wt, Wht, Kt) == IAPO_OK, "wpack: %s", iapo_errmsg());
		product(M, N, Kt, A2, Wt, Wht, wp, c2, 2, 2, &s2);
		CHECK(s2 == 2 && !memcmp(c1, c2, cn * 4), "%s: packed ahead changed the bits", bf ? "bf16" : "fp32");
		iapo_gemm_wpack_free(wp);
	}
	/* steady state: no allocation */
	product(M, N, K, A, W, NULL, NULL, c1, 2, 2, &s1);
	unsigned long before = iapo_mem_alloc_count();
	for (int r = 0; r < 3; r++) product(M, N, K, A, W, NULL, NULL, c1, 2, 2, &s1);
	CHECK(iapo_mem_alloc_count() == before, "%lu allocations in steady state", iapo_mem_alloc_count() - before);
	free(A); free(W); free(c1); free(c2); free(c3); free(Wh); free(Wt); free(A2);
}

int main(void)
{
	iapo_rng_seed(&rng, 5, 0, 0, 0);
	RUN(test_rule);
	RUN(test_against_reference);
	RUN(test_bits);
	TEST_END();
}
