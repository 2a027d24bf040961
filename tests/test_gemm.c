/*
 * test_gemm.c — iapo_sgemm (src/kernels/gemm.h) against a plain triple loop in
 * double precision: all four transpose combinations, every path (packed,
 * direct, portable, automatic), odd sizes that leave partial micro-tiles and
 * blocks, padded leading dimensions (the padding holds NaN in A and B and a
 * sentinel in C, so reading or writing outside the matrices shows), alpha and
 * beta variants (beta 0 over a NaN-filled C), degenerate sizes, 1 and 2
 * threads, no allocation in steady state, the fallback when the
 * workspace cannot be allocated, op(A) read in place by the packed
 * path giving the same bits as A packed, and a very wide C (the lm_head's)
 * summed in one depth slice whatever M and the threads, x W^T computed as
 * C^T = W x^T giving the same bits, rectangles sharing op(A)'s packed panels
 * on 2 threads round after round giving the bits of one thread. No timing
 * here: bench/gemm.c measures speed.
 */
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdint.h>

#include "core/mem.h"
#include "iapo.h"
#include "kernels/gemm.h"
#include "gemm_ref.h"
#include "test.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static float urand(void)
{
	rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
	return (float)((rng_state >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}

/* A rows x cols matrix with leading dimension ld; the gap holds fill. */
static float *make_mat(int rows, int cols, int ld, float fill)
{
	float *m = malloc(sizeof(float) * ((size_t)rows * ld + 1));
	for (int i = 0; i < rows; i++)
		for (int j = 0; j < ld; j++) m[(size_t)i * ld + j] = j < cols ? urand() : fill;
	return m;
}

struct spec {
	int ta, tb, M, N, K, pad;
	float alpha, beta;
	int path, threads;
};

/* Runs one product and compares it with the double-precision loop; returns
 * 1 when it matches. Error bound per element: 1e-5*sqrt(K) relative to
 * |alpha| sum |a||b| + |beta c| (fp32 rounding of a K-long dot product). */
static int check_one(struct spec s)
{
	int ar = s.ta ? s.K : s.M, ac = s.ta ? s.M : s.K;
	int br = s.tb ? s.N : s.K, bc = s.tb ? s.K : s.N;
	int lda = ac + s.pad, ldb = bc + 2 * s.pad, ldc = s.N + 3 * s.pad;
	float *A = make_mat(ar, ac, lda, NAN);
	float *B = make_mat(br, bc, ldb, NAN);
	float *C = make_mat(s.M, s.N, ldc, -777.0f);
	float *C0 = malloc(sizeof(float) * ((size_t)s.M * ldc + 1));
	if (s.beta == 0.0f)
		for (int i = 0; i < s.M; i++)
			for (int j = 0; j < s.N; j++) C[(size_t)i * ldc + j] = NAN;
	memcpy(C0, C, sizeof(float) * (size_t)s.M * ldc);

	iapo_set_threads(s.threads);
	iapo_sgemm_force_path(s.path);
	iapo_sgemm(s.ta, s.tb, s.M, s.N, s.K, s.alpha, A, lda, B, ldb, s.beta, C, ldc);
	iapo_sgemm_force_path(IAPO_SGEMM_AUTO);

	int ok = 1;
	double tol = 1e-5 * sqrt((double)(s.K > 1 ? s.K : 1));
	for (int i = 0; i < s.M && ok; i++) {
		for (int j = 0; j < ldc && ok; j++) {
			float got = C[(size_t)i * ldc + j];
			if (j >= s.N) {
				if (got != -777.0f) {
					fprintf(stderr, "  wrote outside C at (%d,%d)\n", i, j);
					ok = 0;
				}
				continue;
			}
			double mag, ref = gemm_ref_dot(s.ta, s.tb, A, lda, B, ldb, i, j, s.K, &mag);
			ref *= s.alpha;
			mag *= fabs(s.alpha);
			if (s.beta != 0.0f) {
				ref += (double)s.beta * C0[(size_t)i * ldc + j];
				mag += fabs((double)s.beta * C0[(size_t)i * ldc + j]);
			}
			if (!(fabs(got - ref) <= tol * mag + 1e-30)) {
				fprintf(stderr, "  C(%d,%d) = %.9g, expected %.9g (bound %.3g)\n", i, j, got, ref, tol * mag);
				ok = 0;
			}
		}
	}
	if (!ok)
		fprintf(stderr, "  in ta=%d tb=%d M=%d N=%d K=%d pad=%d alpha=%g beta=%g path=%d threads=%d (took %d)\n",
			s.ta, s.tb, s.M, s.N, s.K, s.pad, s.alpha, s.beta, s.path, s.threads, iapo_sgemm_last_path());
	free(A);
	free(B);
	free(C);
	free(C0);
	return ok;
}

static const int sizes[] = {1, 3, 7, 15, 17, 31, 33, 63, 65, 127, 129, 257};
#define NSIZES ((int)(sizeof sizes / sizeof sizes[0]))

static int pick(void)
{
	urand();
	return sizes[(rng_state >> 33) % NSIZES];
}

/* Random shapes from the odd sizes through every path and transpose. */
static void test_paths_and_transposes(void)
{
	static const int paths[] = {IAPO_SGEMM_AUTO, IAPO_SGEMM_PACKED, IAPO_SGEMM_DIRECT, IAPO_SGEMM_PORTABLE};
	for (int pi = 0; pi < 4; pi++)
		for (int t = 0; t < 4; t++)
			for (int r = 0; r < 10; r++) {
				int M = pick(), N = pick(), K = pick();
				/* the direct path only serves small M; give it some */
				if (paths[pi] == IAPO_SGEMM_DIRECT && r % 2 == 0) M = 1 + r % 14;
				struct spec s = {t & 1, t >> 1, M, N, K, r % 3 ? 0 : 5, 1.0f, 0.0f, paths[pi], 1 + r % 2};
				/* odd blocks; also makes small products use both threads */
				if (r % 4 == 3) iapo_sgemm_set_blocking(42, 33, 96);
				CHECK(check_one(s), "path %d transposes %d", paths[pi], t);
				iapo_sgemm_set_blocking(0, 0, 0);
			}
}

/* Decoding shapes on the direct path: 8 or more rows against long rows of
 * W (x W^T), which the 8-row kernel cuts into k slices summed into C. */
static void test_direct_k_slices(void)
{
	static const int Ms[] = {8, 9, 13, 16}, Ks[] = {1024, 1025, 2100, 4870}, Ns[] = {1, 2, 7, 33};
	for (int m = 0; m < 4; m++)
		for (int k = 0; k < 4; k++) {
			struct spec s = {0, 1, Ms[m], Ns[(m + k) % 4], Ks[k], k % 2, 1.0f + 0.5f * (m % 2),
					 0.5f * (k % 2), IAPO_SGEMM_DIRECT, 1 + k % 2};
			CHECK(check_one(s), "M=%d N=%d K=%d", s.M, s.N, s.K);
		}
	/* more than 8 rows: the slices shrink so that all rows of A fit L1
	 * (8 * 1024 / M floats, a multiple of 32, at least 32: a forced direct
	 * path with hundreds of rows); K just past one slice */
	static const int Mx[] = {11, 12, 16, 300}, Kx[] = {737, 673, 513, 70};
	for (int m = 0; m < 4; m++)
		for (int t = 1; t <= 2; t++) {
			struct spec s = {0, 1, Mx[m], 37 + 2 * m, Kx[m], t - 1, 1.0f, 0.25f * (t - 1), IAPO_SGEMM_DIRECT, t};
			CHECK(check_one(s), "M=%d N=%d K=%d threads=%d", s.M, s.N, s.K, t);
		}
	/* the same bits whatever the thread count (pieces split whole column
	 * pairs of the 8-row kernel) */
	const int M = 8, N = 301, K = 2100;
	float *A = make_mat(M, K, K, 0), *B = make_mat(N, K, K, 0);
	float *C1 = malloc(sizeof(float) * M * N), *C2 = malloc(sizeof(float) * M * N);
	int old = iapo_sgemm_force_path(IAPO_SGEMM_DIRECT), th = iapo_get_threads();
	iapo_set_threads(1);
	iapo_sgemm(0, 1, M, N, K, 1.0f, A, K, B, K, 0.0f, C1, N);
	iapo_set_threads(2);
	iapo_sgemm(0, 1, M, N, K, 1.0f, A, K, B, K, 0.0f, C2, N);
	CHECK(!memcmp(C1, C2, sizeof(float) * M * N), "1 and 2 threads: the same bits");
	iapo_set_threads(th);
	iapo_sgemm_force_path(old);
	free(A); free(B); free(C1); free(C2);
}

/* The packed path's default depth slices (KC_DEF): K past one and two
 * slices, the epilogue (beta) applied once, every transpose, 1-2 threads. */
static void test_default_slices(void)
{
	static const int Ks[] = {511, 513, 1100};
	for (int t = 0; t < 4; t++)
		for (int k = 0; k < 3; k++) {
			struct spec s = {t & 1, t >> 1, 45, 70, Ks[k], k % 2, 1.0f, 0.5f * k, IAPO_SGEMM_PACKED, 1 + (t + k) % 2};
			CHECK(check_one(s), "transposes %d K=%d", t, Ks[k]);
		}
}

/* Every size on the diagonal and with each dimension alone at 1. */
static void test_sizes(void)
{
	for (int t = 0; t < 4; t++)
		for (int i = 0; i < NSIZES; i++) {
			int n = sizes[i];
			struct spec s = {t & 1, t >> 1, n, n, n, 1, 1.0f, 0.0f, IAPO_SGEMM_AUTO, 2};
			CHECK(check_one(s), "n=%d", n);
			struct spec s1 = {t & 1, t >> 1, 1, n, 2 * n + 1, 0, 1.0f, 1.0f, IAPO_SGEMM_AUTO, 2};
			CHECK(check_one(s1), "M=1 n=%d", n);
			struct spec s2 = {t & 1, t >> 1, n + 20, 1, n, 2, 1.0f, 1.0f, IAPO_SGEMM_AUTO, 2};
			CHECK(check_one(s2), "N=1 n=%d", n);
			struct spec s3 = {t & 1, t >> 1, n + 9, n, 1, 0, 1.0f, 0.0f, IAPO_SGEMM_AUTO, 2};
			CHECK(check_one(s3), "K=1 n=%d", n);
		}
}

static void test_alpha_beta(void)
{
	static const float ab[][2] = {{1, 0}, {1, 1}, {0.5f, -2}, {-1.5f, 0}, {2, 0.25f}};
	static const int paths[] = {IAPO_SGEMM_PACKED, IAPO_SGEMM_DIRECT, IAPO_SGEMM_PORTABLE};
	for (int v = 0; v < 5; v++)
		for (int pi = 0; pi < 3; pi++)
			for (int t = 0; t < 4; t++) {
				struct spec s = {t & 1, t >> 1, pi == 1 ? 9 : 37, 45, 70, 3, ab[v][0], ab[v][1], paths[pi], 2};
				CHECK(check_one(s), "alpha %g beta %g", ab[v][0], ab[v][1]);
			}
}

/* alpha == 0 or K == 0: C = beta*C, with beta == 0 overwriting NaN. */
static void test_degenerate(void)
{
	float C[6] = {NAN, NAN, NAN, 1, 2, 3}, A[1] = {NAN}, B[1] = {NAN};
	iapo_sgemm(0, 0, 1, 3, 0, 1.0f, A, 1, B, 3, 0.0f, C, 3);
	CHECK(C[0] == 0 && C[1] == 0 && C[2] == 0, "K=0 beta=0 should zero C: %g %g %g", C[0], C[1], C[2]);
	iapo_sgemm(0, 0, 1, 3, 0, 1.0f, A, 1, B, 3, 2.0f, C + 3, 3);
	CHECK(C[3] == 2 && C[4] == 4 && C[5] == 6, "K=0 beta=2: %g %g %g", C[3], C[4], C[5]);
	float A2[4] = {1, 2, 3, 4}, B2[4] = {1, 1, 1, 1}, C2[4] = {1, 1, 1, 1};
	iapo_sgemm(0, 0, 2, 2, 2, 0.0f, A2, 2, B2, 2, 3.0f, C2, 2);
	CHECK(C2[0] == 3 && C2[3] == 3, "alpha=0 beta=3: %g %g", C2[0], C2[3]);
	iapo_sgemm(0, 0, 0, 2, 2, 1.0f, A2, 2, B2, 2, 0.0f, C2, 2);
	iapo_sgemm(0, 0, 2, 0, 2, 1.0f, A2, 2, B2, 2, 0.0f, C2, 2);
	CHECK(C2[0] == 3, "M=0/N=0 must not touch C");
}

/* Tiny blocks: several row, depth and column blocks, partial at each edge,
 * and thread grids split both ways. */
static void test_small_blocking(void)
{
	iapo_sgemm_set_blocking(28, 20, 64);
	for (int t = 0; t < 4; t++) {
		struct spec a = {t & 1, t >> 1, 129, 65, 77, 2, 1.0f, 0.5f, IAPO_SGEMM_PACKED, 2};
		CHECK(check_one(a), "blocked, more rows");
		struct spec b = {t & 1, t >> 1, 31, 257, 65, 0, -1.0f, 0.0f, IAPO_SGEMM_PACKED, 2};
		CHECK(check_one(b), "blocked, more columns");
		struct spec c = {t & 1, t >> 1, 57, 100, 41, 1, 1.0f, 1.0f, IAPO_SGEMM_PACKED, 1};
		CHECK(check_one(c), "blocked, one thread");
		struct spec d = {t & 1, t >> 1, 5, 100, 300, 1, 1.0f, 1.0f, IAPO_SGEMM_DIRECT, 2};
		CHECK(check_one(d), "direct, two threads");
		struct spec e = {t & 1, t >> 1, 20, 40, 33, 1, 1.0f, 0.0f, IAPO_SGEMM_PORTABLE, 2};
		CHECK(check_one(e), "portable, two threads");
	}
	iapo_sgemm_set_blocking(0, 0, 0);
}

/* The packed path reading op(A) in place (iapo_sgemm_a_rows 1 and 2)
 * multiplies the same numbers in the same order as with A packed (0): the
 * same bits, for every transpose (A's rows, or A^T's columns), ragged
 * tiles, several depth and row blocks, padded rows (NaN in the gap), rows
 * 4 KB apart (K = 1024, packed under the tuned rule, in place under 2),
 * alpha/beta, 1 and 2 threads; and against the loop. Split-K is off for
 * the comparison: the tuned rule splits a narrow C only when A is packed,
 * and a dy W product split sums in another order (test_gemm_splitk). */
static void test_a_rows(void)
{
	static const int shapes[][3] = {{256, 128, 896}, {45, 70, 1100}, {129, 65, 77}, {31, 257, 1024}, {17, 40, 33}};
	for (int t = 0; t < 4; t++)
		for (int si = 0; si < 5; si++)
			for (int th = 1; th <= 2; th++) {
				const int M = shapes[si][0], N = shapes[si][1], K = shapes[si][2], pad = si % 2 ? 3 : 0;
				const int ta = t & 1, tb = t >> 1;
				int ar = ta ? K : M, ac = ta ? M : K, br = tb ? N : K, bc = tb ? K : N;
				int lda = ac + pad, ldb = bc + pad, ldc = N + pad;
				float *A = make_mat(ar, ac, lda, NAN), *B = make_mat(br, bc, ldb, NAN);
				float *C0 = make_mat(M, N, ldc, -777.0f);
				float *C[3];
				if (si == 2) iapo_sgemm_set_blocking(28, 20, 64);
				iapo_set_threads(th);
				iapo_sgemm_force_path(IAPO_SGEMM_PACKED);
				int old_split = iapo_sgemm_split_k(0);
				for (int mode = 0; mode < 3; mode++) {
					C[mode] = malloc(sizeof(float) * ((size_t)M * ldc + 1));
					memcpy(C[mode], C0, sizeof(float) * (size_t)M * ldc);
					int old = iapo_sgemm_a_rows(mode);
					iapo_sgemm(ta, tb, M, N, K, si == 4 ? -0.5f : 1.0f, A, lda, B, ldb, si % 2 ? 0.5f : 0.0f,
						   C[mode], ldc);
					iapo_sgemm_a_rows(old);
				}
				iapo_sgemm_split_k(old_split);
				iapo_sgemm_force_path(IAPO_SGEMM_AUTO);
				iapo_sgemm_set_blocking(0, 0, 0);
				CHECK(memcmp(C[0], C[1], sizeof(float) * (size_t)M * ldc) == 0 &&
					      memcmp(C[0], C[2], sizeof(float) * (size_t)M * ldc) == 0,
				      "A in place changed the bits: t=%d M=%d N=%d K=%d threads %d", t, M, N, K, th);
				for (int mode = 0; mode < 3; mode++) free(C[mode]);
				free(A); free(B); free(C0);
			}
	int old = iapo_sgemm_a_rows(2);
	for (int t = 0; t < 4; t++) {
		struct spec s = {t & 1, t >> 1, 40, 50, 1024, 0, 1.0f, 0.0f, IAPO_SGEMM_PACKED, 2};
		CHECK(check_one(s), "A in place, rows 4 KB apart, transposes %d", t);
		struct spec s2 = {t & 1, t >> 1, 61, 97, 600, 7, 1.5f, -1.0f, IAPO_SGEMM_PACKED, 1 + t % 2};
		CHECK(check_one(s2), "A in place, transposes %d", t);
	}
	iapo_sgemm_a_rows(old);
}

/* x W^T with a C at least 32768 columns wide and K <= 1024 (the lm_head)
 * sums in one depth slice: against the loop; the bits of a forced one-slice
 * blocking (and not those of two slices); the same bits on 1 and 2 threads,
 * for the first rows of a product with more rows, and with W packed ahead. */
static void test_wide_c_slice(void)
{
	if (!iapo_sgemm_avx512()) return;
	struct spec s = {0, 1, 20, 32800, 900, 0, 1.0f, 0.0f, IAPO_SGEMM_AUTO, 2};
	CHECK(check_one(s), "wide C, K = 900");
	const int M = 37, N = 32800, K = 900;
	float *A = make_mat(M, K, K, 0), *W = make_mat(N, K, K, 0);
	size_t cn = (size_t)M * N;
	float *c[6];
	for (int i = 0; i < 6; i++) c[i] = malloc(cn * sizeof(float));
	iapo_set_threads(2);
	iapo_sgemm(0, 1, M, N, K, 1.0f, A, K, W, K, 0.0f, c[0], N);
	iapo_set_threads(1);
	iapo_sgemm(0, 1, M, N, K, 1.0f, A, K, W, K, 0.0f, c[1], N);
	iapo_sgemm(0, 1, 20, N, K, 1.0f, A, K, W, K, 0.0f, c[2], N);
	iapo_set_threads(2);
	iapo_sgemm_set_blocking(0, K, 0);
	iapo_sgemm(0, 1, M, N, K, 1.0f, A, K, W, K, 0.0f, c[3], N);
	iapo_sgemm_set_blocking(0, K / 2, 0);
	iapo_sgemm(0, 1, M, N, K, 1.0f, A, K, W, K, 0.0f, c[4], N);
	iapo_sgemm_set_blocking(0, 0, 0);
	iapo_gemm_wpack *wp = NULL;
	CHECK(iapo_gemm_wpack_create(&wp, N, K, W, NULL, K) == IAPO_OK, "wpack: %s", iapo_errmsg());
	iapo_gemm_op o = {.transB = 1, .M = M, .N = N, .K = K, .alpha = 1.0f, .A = A, .lda = K, .B = W, .ldb = K,
			  .Bp = wp, .C = c[5], .ldc = N};
	iapo_sgemm_batch(1, &o);
	iapo_gemm_wpack_free(wp);
	CHECK(!memcmp(c[0], c[3], cn * 4), "wide C: not the bits of one depth slice");
	CHECK(memcmp(c[0], c[4], cn * 4) != 0, "wide C: the bits of two depth slices");
	CHECK(!memcmp(c[0], c[1], cn * 4), "wide C: 2 threads other bits than 1");
	CHECK(!memcmp(c[0], c[2], (size_t)20 * N * 4), "wide C: 20 rows other bits than the first 20 of 37");
	CHECK(!memcmp(c[0], c[5], cn * 4), "wide C: packed ahead other bits");
	for (int i = 0; i < 6; i++) free(c[i]);
	free(A);
	free(W);
}

/* The paths the dispatcher promises: direct for small M, packed otherwise. */
static void test_dispatch(void)
{
	float *A = make_mat(300, 300, 300, 0), *B = make_mat(300, 300, 300, 0), *C = make_mat(300, 300, 300, 0);
	iapo_sgemm(0, 1, 4, 300, 300, 1.0f, A, 300, B, 300, 0.0f, C, 300);
	int p_small = iapo_sgemm_last_path();
	iapo_sgemm(0, 1, 300, 300, 300, 1.0f, A, 300, B, 300, 0.0f, C, 300);
	int p_big = iapo_sgemm_last_path();
	if (iapo_sgemm_avx512()) {
		CHECK(p_small == IAPO_SGEMM_DIRECT, "M=4 took path %d", p_small);
		CHECK(p_big == IAPO_SGEMM_PACKED, "M=300 took path %d", p_big);
	} else {
		CHECK(p_small == IAPO_SGEMM_PORTABLE && p_big == IAPO_SGEMM_PORTABLE, "paths %d %d", p_small, p_big);
	}
	free(A);
	free(B);
	free(C);
}

/* After one call of a shape, further calls of it (and smaller ones) allocate nothing. */
static void test_no_steady_allocation(void)
{
	int M = 200, N = 300, K = 260;
	float *A = make_mat(M, K, K, 0), *B = make_mat(N, K, K, 0), *C = make_mat(M, N, N, 0);
	iapo_set_threads(2);
	iapo_sgemm(0, 1, M, N, K, 1.0f, A, K, B, K, 0.0f, C, N);
	unsigned long before = iapo_mem_alloc_count();
	for (int r = 0; r < 3; r++) {
		iapo_sgemm(0, 1, M, N, K, 1.0f, A, K, B, K, 1.0f, C, N);
		iapo_sgemm(0, 1, M / 2, N / 3, K / 2, 1.0f, A, K, B, K, 0.0f, C, N);
		iapo_sgemm(1, 0, M / 2, N / 3, K / 2, 1.0f, A, M, B, N, 0.0f, C, N);
		iapo_sgemm(0, 1, 3, N, K, 1.0f, A, K, B, K, 0.0f, C, N);
	}
	CHECK(iapo_mem_alloc_count() == before, "%lu allocations in steady state", iapo_mem_alloc_count() - before);
	free(A);
	free(B);
	free(C);
}

/* A fresh thread has no workspace: failing its allocations must still give
 * the right product. The thread's exit releases the workspace (LeakSanitizer
 * checks that under make asan). */
static void *fail_thread(void *arg)
{
	int *ok = arg;
	for (int nth = 1; nth <= 3; nth++) {
		iapo_mem_fail_after((unsigned long)nth);
		for (int t = 0; t < 4; t++) {
			struct spec s = {t & 1, t >> 1, 40, 50, 60, 1, 1.0f, 0.5f, IAPO_SGEMM_PACKED, 1};
			if (!check_one(s)) *ok = 0;
		}
		iapo_mem_fail_after(0);
	}
	return NULL;
}

static void test_allocation_failure(void)
{
	pthread_t th;
	int ok = 1;
	CHECK(pthread_create(&th, NULL, fail_thread, &ok) == 0, "pthread_create");
	pthread_join(th, NULL);
	CHECK(ok, "a product was wrong after a failed workspace allocation");
}

/* Products issued from several threads at once (each inside its own
 * parallel region) must not share packing buffers. */
static void test_concurrent_callers(void)
{
	int bad = 0;
	iapo_set_threads(2);
#pragma omp parallel num_threads(2) reduction(+ : bad)
	for (int r = 0; r < 3; r++) {
		int tid = omp_get_thread_num();
		int M = 33 + 10 * tid, N = 70 + 3 * r, K = 45 + 7 * tid;
		float *A = malloc(sizeof(float) * M * K), *B = malloc(sizeof(float) * K * N), *C = malloc(sizeof(float) * M * N);
		for (int i = 0; i < M * K; i++) A[i] = (float)((i * 7 + tid) % 13) - 6;
		for (int i = 0; i < K * N; i++) B[i] = (float)((i * 5 + r) % 11) - 5;
		iapo_sgemm(0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, C, N);
		/* small integers: the product is exact in fp32 */
		for (int i = 0; i < M; i++)
			for (int j = 0; j < N; j++) {
				double ref = 0;
				for (int p = 0; p < K; p++) ref += (double)A[i * K + p] * B[p * N + j];
				if (C[i * N + j] != (float)ref) bad++;
			}
		free(A);
		free(B);
		free(C);
	}
	CHECK(bad == 0, "%d wrong elements with concurrent callers", bad);
}

/* x W^T as C^T = W x^T (iapo_sgemm_xt: W's rows in place, x^T packed, the
 * tile stored transposed) gives the bits of the usual packed path (xt 0):
 * ragged tiles in both directions, several depth slices, padded rows (NaN
 * in the gap), rows 4 KB apart (forced), alpha, beta over C, R and bias
 * (R also C itself), 1 and 2 threads; against the loop; and the tuned rule
 * takes it for a deep, wide product (qwen0.5b's gate) and not for a
 * narrow one (k/v), nor for one whose W is no larger than x^T over the
 * threads (small's down on 2 threads; on 1 it takes it). */
static void test_xt(void)
{
	if (!iapo_sgemm_avx512()) return;
	static const int shapes[][3] = {{256, 896, 896}, {45, 70, 1100}, {129, 65, 77}, {31, 257, 1024}, {17, 40, 33},
					{200, 600, 900}};
	for (int si = 0; si < 6; si++)
		for (int ep = 0; ep < 4; ep++)
			for (int th = 1; th <= 2; th++) {
				const int M = shapes[si][0], N = shapes[si][1], K = shapes[si][2], pad = (si + ep) % 2 ? 3 : 0;
				const int lda = K + pad, ldb = K + 2 * pad, ldc = N + pad;
				float *A = make_mat(M, K, lda, NAN), *W = make_mat(N, K, ldb, NAN);
				float *R = make_mat(M, N, ldc, 0), *bias = make_mat(1, N, N, 0);
				float *C0 = make_mat(M, N, ldc, -777.0f);
				float *C[2];
				int took[2];
				if (si == 2) iapo_sgemm_set_blocking(28, 20, 64);
				iapo_set_threads(th);
				for (int mode = 0; mode < 2; mode++) {
					C[mode] = malloc(sizeof(float) * ((size_t)M * ldc + 1));
					memcpy(C[mode], C0, sizeof(float) * (size_t)M * ldc);
					/* ep: plain; alpha and beta over C; R and bias; R = C */
					iapo_gemm_op o = {.transB = 1, .M = M, .N = N, .K = K, .alpha = ep == 1 ? -0.5f : 1.0f,
							  .beta = ep == 1 ? 0.5f : 0.0f, .A = A, .lda = lda, .B = W, .ldb = ldb,
							  .C = C[mode], .ldc = ldc, .R = ep == 2 ? R : ep == 3 ? C[mode] : NULL,
							  .ldr = ldc, .bias = ep >= 2 ? bias : NULL};
					int old = iapo_sgemm_xt(mode ? 2 : 0);
					iapo_sgemm_force_path(IAPO_SGEMM_PACKED);
					iapo_sgemm_batch(1, &o);
					took[mode] = iapo_sgemm_last_xt();
					iapo_sgemm_force_path(IAPO_SGEMM_AUTO);
					iapo_sgemm_xt(old);
				}
				iapo_sgemm_set_blocking(0, 0, 0);
				CHECK(!took[0] && took[1], "xt taken %d %d: M=%d N=%d K=%d", took[0], took[1], M, N, K);
				CHECK(!memcmp(C[0], C[1], sizeof(float) * (size_t)M * ldc),
				      "C^T = W x^T changed the bits: M=%d N=%d K=%d epilogue %d threads %d", M, N, K, ep, th);
				for (int mode = 0; mode < 2; mode++) free(C[mode]);
				free(A); free(W); free(R); free(bias); free(C0);
			}
	int old = iapo_sgemm_xt(2);
	struct spec s = {0, 1, 61, 97, 600, 7, 1.5f, -1.0f, IAPO_SGEMM_PACKED, 2};
	CHECK(check_one(s), "C^T = W x^T against the loop");
	struct spec s1 = {0, 1, 256, 131, 1000, 1, 1.0f, 0.0f, IAPO_SGEMM_PACKED, 1};
	CHECK(check_one(s1), "C^T = W x^T against the loop, 1 thread");
	iapo_sgemm_xt(old);
	const int M = 256, K = 896;
	float *A = make_mat(M, K, K, 0), *W = make_mat(4864, K, K, 0), *C = malloc(sizeof(float) * (size_t)M * 4864);
	for (int th = 1; th <= 2; th++) {
		iapo_set_threads(th);
		iapo_sgemm(0, 1, M, 4864, K, 1.0f, A, K, W, K, 0.0f, C, 4864);
		CHECK(iapo_sgemm_last_xt(), "the rule: gate's x W^T on %d threads not as C^T = W x^T", th);
		iapo_sgemm(0, 1, M, 128, K, 1.0f, A, K, W, K, 0.0f, C, 128);
		CHECK(!iapo_sgemm_last_xt(), "the rule: k/v's x W^T on %d threads as C^T = W x^T", th);
		/* small's down: W (512 rows) no larger than x^T over 2 threads */
		iapo_sgemm(0, 1, M, 512, 1536, 1.0f, W, 1536, W, 1536, 0.0f, C, 512);
		CHECK(iapo_sgemm_last_xt() == (th == 1), "the rule: small's down x W^T on %d threads %s as C^T = W x^T",
		      th, th == 1 ? "not" : "");
	}
	/* 2 threads claim W's rows chunk by chunk (xt_claim), counters reset
	 * every call: qwen0.5b's gate and q in deep slices (many slices, each
	 * chunk's in order) have one thread's bits, call after call */
	static const int cl[][3] = {{4864, 896, 0}, {896, 896, 0}, {4864, 896, 40}, {896, 4864, 120}};
	float *C1 = malloc(sizeof(float) * (size_t)M * 4864);
	for (int ci = 0; ci < 4; ci++) {
		const int N = cl[ci][0], Kc = cl[ci][1];
		float *Ac = make_mat(M, Kc, Kc, 0);
		iapo_sgemm_set_blocking(0, cl[ci][2], 0);
		iapo_set_threads(1);
		iapo_sgemm(0, 1, M, N, Kc, 1.0f, Ac, Kc, W, Kc, 0.0f, C1, N);
		CHECK(iapo_sgemm_last_xt() == 1, "1 thread: xt without claiming, N=%d K=%d", N, Kc);
		iapo_set_threads(2);
		for (int r = 0; r < 8; r++) {
			for (size_t i = 0; i < (size_t)M * N; i++) C[i] = NAN;
			iapo_sgemm(0, 1, M, N, Kc, 1.0f, Ac, Kc, W, Kc, 0.0f, C, N);
			CHECK(iapo_sgemm_last_xt() == 2, "2 threads: W's rows not claimed, N=%d K=%d", N, Kc);
			CHECK(!memcmp(C, C1, sizeof(float) * (size_t)M * N),
			      "claimed chunks changed the bits: N=%d K=%d kc=%d call %d", N, Kc, cl[ci][2], r);
		}
		iapo_sgemm_set_blocking(0, 0, 0);
		free(Ac);
	}
	free(C1);
	free(A); free(W); free(C);
}

/* A 1 x tn grid on 2 threads claims C's columns chunk by chunk, slice by
 * slice, from both ends (grid_claim): every element sums the same depth
 * slices in the same tiles in order, so the bits are the static grid's and
 * one thread's. Transposes nn / nt / tn; A's rows in place and A packed
 * (rows 4 KB apart: shared panels); ragged N; one slice and many (kc 40:
 * a chunk's slice waits for its previous one); epilogues (alpha and beta
 * over C, an addend R, R = C, a bias); the counters reset every call (8
 * calls); the rule: qwen0.5b's k/v dy W claims on 2 threads, not on one,
 * nor with more rows than one block (M = 512), nor at claim 0. */
static void test_grid_claim(void)
{
	if (!iapo_sgemm_avx512()) return;
	/* ta, tb, M, N, K, kc (0: default) */
	static const int sh[][6] = {{0, 0, 256, 896, 128, 0}, {1, 0, 128, 896, 256, 0}, {0, 1, 256, 512, 1536, 0},
				    {0, 1, 200, 1024, 1024, 0}, {0, 0, 256, 333, 600, 40}, {1, 0, 70, 333, 300, 40},
				    {0, 1, 37, 520, 300, 24}};
	for (int si = 0; si < 7; si++)
		for (int ep = 0; ep < 4; ep++) {
			const int ta = sh[si][0], tb = sh[si][1], M = sh[si][2], N = sh[si][3], K = sh[si][4];
			const int pad = (si + ep) % 2 ? 3 : 0;
			const int ar = ta ? K : M, ac = ta ? M : K, br = tb ? N : K, bc = tb ? K : N;
			const int lda = ac + (si == 3 ? 0 : pad), ldb = bc + 2 * pad, ldc = N + pad;
			float *A = make_mat(ar, ac, lda, NAN), *B = make_mat(br, bc, ldb, NAN);
			float *R = make_mat(M, N, ldc, 0), *bias = make_mat(1, N, N, 0);
			float *C0 = make_mat(M, N, ldc, -777.0f), *C[3];
			int took[3];
			iapo_sgemm_set_blocking(0, sh[si][5], 0);
			/* one thread; 2 threads static; 2 threads claimed (the
			 * default chunks, then 3 a thread), 8 calls */
			for (int v = 0; v < 3; v++) {
				C[v] = malloc(sizeof(float) * ((size_t)M * ldc + 1));
				iapo_set_threads(v ? 2 : 1);
				int old = iapo_sgemm_claim(v == 2 ? 1 : 0);
				for (int r = 0; r < (v == 2 ? 8 : 1); r++) {
					memcpy(C[v], C0, sizeof(float) * (size_t)M * ldc);
					if (v == 2 && r >= 4) iapo_sgemm_claim(3);
					iapo_gemm_op o = {.transA = ta, .transB = tb, .M = M, .N = N, .K = K,
							  .alpha = ep == 1 ? -0.5f : 1.0f, .beta = ep == 1 ? 0.5f : 0.0f, .A = A,
							  .lda = lda, .B = B, .ldb = ldb, .C = C[v], .ldc = ldc,
							  .R = ep == 2 ? R : ep == 3 ? C[v] : NULL, .ldr = ldc,
							  .bias = ep >= 2 ? bias : NULL};
					iapo_sgemm_force_path(IAPO_SGEMM_PACKED);
					iapo_sgemm_batch(1, &o);
					iapo_sgemm_force_path(IAPO_SGEMM_AUTO);
					took[v] = iapo_sgemm_last_claim();
					if (v == 2)
						CHECK(!memcmp(C[0], C[2], sizeof(float) * (size_t)M * ldc),
						      "claimed columns changed the bits: ta=%d tb=%d M=%d N=%d K=%d epilogue %d "
						      "call %d", ta, tb, M, N, K, ep, r);
				}
				iapo_sgemm_claim(old);
			}
			iapo_sgemm_set_blocking(0, 0, 0);
			CHECK(!took[0] && !took[1] && took[2], "claim taken %d %d %d: ta=%d tb=%d M=%d N=%d K=%d", took[0],
			      took[1], took[2], ta, tb, M, N, K);
			CHECK(!memcmp(C[0], C[1], sizeof(float) * (size_t)M * ldc), "static grid: other bits than one thread");
			for (int v = 0; v < 3; v++) free(C[v]);
			free(A); free(B); free(R); free(bias); free(C0);
		}
	struct spec s = {0, 0, 100, 300, 700, 5, 1.5f, -1.0f, IAPO_SGEMM_PACKED, 2};
	CHECK(check_one(s), "claimed columns against the loop");
	/* the rule */
	float *A = make_mat(512, 896, 896, 0), *W = make_mat(128, 896, 896, 0), *C = malloc(sizeof(float) * 512 * 896);
	for (int th = 1; th <= 2; th++) {
		iapo_set_threads(th);
		iapo_sgemm(0, 0, 256, 896, 128, 1.0f, A, 128, W, 896, 0.0f, C, 896);
		CHECK(iapo_sgemm_last_claim() == (th == 2), "the rule: k/v dy W on %d threads claimed %d", th,
		      iapo_sgemm_last_claim());
		iapo_sgemm(0, 0, 512, 896, 128, 1.0f, A, 128, W, 896, 0.0f, C, 896);
		CHECK(!iapo_sgemm_last_claim(), "the rule: M = 512 (two row blocks) claimed on %d threads", th);
	}
	int old = iapo_sgemm_claim(0);
	iapo_sgemm(0, 0, 256, 896, 128, 1.0f, A, 128, W, 896, 0.0f, C, 896);
	CHECK(!iapo_sgemm_last_claim(), "claim 0: claimed");
	iapo_sgemm_claim(old);
	free(A); free(W); free(C);
}

/* Rectangles running side by side share op(A)'s packed panels, and a panel
 * that another thread is packing is left for after the rectangle's others
 * (a_panels): every product of many rounds on 2 threads has the bits of one
 * thread. x W^T with A's rows 4 KB apart (K = 1024: A packed, not read in
 * place, nor C^T = W x^T), alone and as a batch of two on the same A; the
 * threads meet on 15-20 panels a call (two depth slices of 19 row tiles). */
static void test_shared_a_rounds(void)
{
	if (!iapo_sgemm_avx512()) return;
	enum { M = 256, N = 1024, K = 1024, ROUNDS = 30 };
	float *A = make_mat(M, K, K, 0), *W = make_mat(2 * N, K, K, 0);
	float *C1 = malloc(sizeof(float) * 2 * M * N), *C2 = malloc(sizeof(float) * 2 * M * N);
	iapo_gemm_op ops[2];
	for (int o = 0; o < 2; o++)
		ops[o] = (iapo_gemm_op){.transB = 1, .M = M, .N = N, .K = K, .alpha = 1.0f, .A = A, .lda = K,
					.B = W + (size_t)o * N * K, .ldb = K, .C = C2 + (size_t)o * M * N, .ldc = N};
	iapo_set_threads(1);
	for (int o = 0; o < 2; o++) {
		iapo_gemm_op one = ops[o];
		one.C = C1 + (size_t)o * M * N;
		iapo_sgemm_batch(1, &one);
	}
	iapo_set_threads(2);
	int bad = 0, shape = 1;
	for (int r = 0; r < ROUNDS; r++) {
		memset(C2, 0, sizeof(float) * 2 * M * N);
		iapo_sgemm_batch(r % 2 ? 2 : 1, ops);
		shape &= iapo_sgemm_last_path() == IAPO_SGEMM_PACKED && !iapo_sgemm_last_xt() && !iapo_sgemm_last_split();
		bad += memcmp(C1, C2, sizeof(float) * (size_t)(r % 2 ? 2 : 1) * M * N) != 0;
	}
	CHECK(shape, "the product did not take the packed path with op(A) packed");
	CHECK(bad == 0, "%d of %d rounds on 2 threads: not the bits of one thread", bad, ROUNDS);
	free(A); free(W); free(C1); free(C2);
}

/* Batches of equal small products run one product per thread
 * (iapo_sgemm_batch): the attention backward's q/k/v batches at tiny's
 * shape (dy W accumulating into one dx, dy^T x into each dW) on 2 threads
 * give the bits of one thread, round after round; and a batch of products
 * that split K on 2 threads keeps split-K's bits (planned for one thread
 * they would sum in another order), which one thread's bits must differ
 * from for the check to mean anything. */
static void test_batch_one_per_thread(void)
{
	if (!iapo_sgemm_avx512()) return;
	enum { T = 256, C = 256, Q = 256, KV = 128, ROUNDS = 20 };
	float *x = make_mat(T, C, C, 0), *dy[3] = {make_mat(T, Q, Q, 0), make_mat(T, KV, KV, 0), make_mat(T, KV, KV, 0)};
	float *W[3] = {make_mat(Q, C, C, 0), make_mat(KV, C, C, 0), make_mat(KV, C, C, 0)};
	const int n[3] = {Q, KV, KV};
	float *dx[2], *dW[2][3];
	for (int v = 0; v < 2; v++) {
		dx[v] = malloc(sizeof(float) * T * C);
		for (int p = 0; p < 3; p++) dW[v][p] = malloc(sizeof(float) * (size_t)n[p] * C);
	}
	int bad = 0;
	for (int r = 0; r < ROUNDS; r++)
		for (int v = 0; v < 2; v++) {
			/* v = 0: one thread, one product at a time; v = 1: 2 threads, batches */
			iapo_set_threads(v ? 2 : 1);
			for (int p = 0; p < 3; p++) memset(dW[v][p], 0, sizeof(float) * (size_t)n[p] * C);
			for (int p = 0; p < 3; p++) {
				iapo_gemm_op b[2] = {
					{.M = T, .N = C, .K = n[p], .alpha = 1.0f, .beta = p ? 1.0f : 0.0f, .A = dy[p], .lda = n[p],
					 .B = W[p], .ldb = C, .C = dx[v], .ldc = C},
					{.transA = 1, .M = n[p], .N = C, .K = T, .alpha = 1.0f, .beta = 1.0f, .A = dy[p], .lda = n[p],
					 .B = x, .ldb = C, .C = dW[v][p], .ldc = C}};
				if (v)
					iapo_sgemm_batch(2, b);
				else
					iapo_sgemm_batch(1, &b[0]), iapo_sgemm_batch(1, &b[1]);
			}
			if (v) {
				int same = memcmp(dx[0], dx[1], sizeof(float) * T * C) == 0;
				for (int p = 0; p < 3; p++) same &= memcmp(dW[0][p], dW[1][p], sizeof(float) * (size_t)n[p] * C) == 0;
				bad += !same;
			}
		}
	CHECK(bad == 0, "q/k/v backward batches: %d of %d rounds on 2 threads not the bits of one thread", bad, ROUNDS);

	/* dy W with A's rows 4 KB apart (K = 2048: packed) and C 128 wide:
	 * split-K on 2 threads, two slices each (one each would add the
	 * partial in the sequential order); two of them in a batch */
	enum { SM = 64, SN = 128, SK = 2048 };
	float *A = make_mat(SM, SK, SK, 0), *B = make_mat(SK, SN, SN, 0);
	float *C1 = malloc(sizeof(float) * SM * SN), *C2 = malloc(sizeof(float) * SM * SN),
	      *C3 = malloc(sizeof(float) * 2 * SM * SN);
	iapo_gemm_op o[2];
	for (int i = 0; i < 2; i++)
		o[i] = (iapo_gemm_op){.M = SM, .N = SN, .K = SK, .alpha = 1.0f, .A = A, .lda = SK, .B = B, .ldb = SN,
				      .C = C3 + (size_t)i * SM * SN, .ldc = SN};
	iapo_set_threads(1);
	iapo_sgemm(0, 0, SM, SN, SK, 1.0f, A, SK, B, SN, 0.0f, C1, SN);
	iapo_set_threads(2);
	iapo_sgemm(0, 0, SM, SN, SK, 1.0f, A, SK, B, SN, 0.0f, C2, SN);
	CHECK(iapo_sgemm_last_split() == 2, "expected split-K on 2 threads, found %d", iapo_sgemm_last_split());
	CHECK(memcmp(C1, C2, sizeof(float) * SM * SN) != 0, "split-K gave one thread's bits: the check below sees nothing");
	int kept = 1;
	for (int r = 0; r < ROUNDS; r++) {
		iapo_sgemm_batch(2, o);
		kept &= memcmp(C2, C3, sizeof(float) * SM * SN) == 0 && memcmp(C2, C3 + SM * SN, sizeof(float) * SM * SN) == 0;
	}
	CHECK(kept, "a batch of split-K products lost split-K's bits");
	free(A); free(B); free(C1); free(C2); free(C3); free(x);
	for (int p = 0; p < 3; p++) free(dy[p]), free(W[p]);
	for (int v = 0; v < 2; v++) {
		free(dx[v]);
		for (int p = 0; p < 3; p++) free(dW[v][p]);
	}
}

int main(void)
{
	RUN(test_degenerate);
	RUN(test_paths_and_transposes);
	RUN(test_sizes);
	RUN(test_direct_k_slices);
	RUN(test_default_slices);
	RUN(test_alpha_beta);
	RUN(test_small_blocking);
	RUN(test_a_rows);
	RUN(test_wide_c_slice);
	RUN(test_xt);
	RUN(test_grid_claim);
	RUN(test_shared_a_rounds);
	RUN(test_batch_one_per_thread);
	RUN(test_dispatch);
	RUN(test_no_steady_allocation);
	RUN(test_allocation_failure);
	RUN(test_concurrent_callers);
	TEST_END();
}
