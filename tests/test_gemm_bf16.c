/*
 * test_gemm_bf16.c — bf16 products (iapo_gemm_op.Bh, x W^T) with many rows,
 * which take the packed path: with AVX512_BF16, K-pair panels multiplied by
 * vdpbf16ps; without it (or with iapo_sgemm_no_bf16), panels widened to
 * fp32. Each product is checked against a double-precision loop over the
 * same bf16 values (A rounded to nearest even, W as given), at fp32
 * summation tolerance: the products are exact, only the order of the sums
 * may differ. Covered: ragged M, N, K (odd K: the last K-pair half empty),
 * every block edge (iapo_sgemm_set_blocking, odd depths rounded to a pair),
 * padded leading dimensions whose gaps hold NaN (an odd ldb, so W's pairs sit
 * off 4-byte boundaries) and a sentinel outside C, the epilogues (alpha,
 * beta over a NaN C when 0, a residual R, R == C, a bias), 1 and 2 threads,
 * every forced path and the automatic choice (which must be the packed one).
 * Also decoding's shapes (M <= 16, the direct path's dot kernels): every K
 * tail, and the same bits whatever the thread count. And a batch of bf16
 * products of one A (q, k, v; gate, up), which pack A's panels once between
 * them, gives each product the bits it has alone, also beside a product of
 * that A with another depth (other slices: it must not read those panels)
 * and an fp32 one; and, over many rounds of the information pass's shapes,
 * whichever thread packs a shared panel and whatever a_panels leaves for
 * later.
 * The packed path's choice of kernels: the start-up probe's ratio and
 * verdict, the test hook, IAPO_BF16_DOT (on, off, auto, a bad value) read
 * by child processes; and under the "does not pay" verdict the bits of
 * iapo_sgemm_no_bf16(1)'s product, from bf16 W unpacked and from a weight
 * pack's K-pair panels (tile_bw).
 * Speed is measured by bench/gemm.c (gemm_bf16 records), never here.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "iapo.h"
#include "kernels/gemm.h"
#include "kernels/kernels.h"
#include "test.h"

static uint64_t rng_state = 0x243f6a8885a308d3ull;

/* Uniform in [-1, 1), never a bf16 denormal. */
static float urand(void)
{
	rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
	return (float)((rng_state >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}

static double bf16_value(uint16_t h)
{
	union {
		uint32_t u;
		float f;
	} v = {.u = (uint32_t)h << 16};
	return v.f;
}

static double round_value(float x)
{
	uint16_t h;
	iapo_f32_to_bf16(&h, &x, 1);
	return bf16_value(h);
}

/* Epilogue variants. */
enum { E_PLAIN, E_ALPHA_BETA, E_RESIDUAL_BIAS, E_IN_PLACE, E_BETA_ONE, E_COUNT };

struct spec {
	int M, N, K, pad, epi, threads, path, no_bf16;
};

/* Runs one product; returns 1 when every element of C is within tolerance
 * of the double loop and nothing outside C was written. */
static int check(struct spec s, double *worst)
{
	const int M = s.M, N = s.N, K = s.K;
	const int lda = K + s.pad, ldb = K + (s.pad ? 2 * s.pad - 1 : 0), ldc = N + 3 * s.pad, ldr = N + s.pad;
	float *A = malloc(sizeof(float) * ((size_t)M * lda + 1));
	uint16_t *Wh = malloc(sizeof(uint16_t) * ((size_t)N * ldb + 1));
	float *C = malloc(sizeof(float) * ((size_t)M * ldc + 1));
	float *C0 = malloc(sizeof(float) * ((size_t)M * ldc + 1));
	float *R = malloc(sizeof(float) * ((size_t)M * ldr + 1));
	float *bias = malloc(sizeof(float) * (size_t)N);
	const float nan = NAN, sentinel = -777.0f;
	uint16_t hnan;
	iapo_f32_to_bf16(&hnan, &nan, 1);
	for (int i = 0; i < M; i++)
		for (int p = 0; p < lda; p++) A[(size_t)i * lda + p] = p < K ? urand() : NAN;
	for (int j = 0; j < N; j++)
		for (int p = 0; p < ldb; p++) {
			float w = urand();
			if (p < K)
				iapo_f32_to_bf16(&Wh[(size_t)j * ldb + p], &w, 1);
			else
				Wh[(size_t)j * ldb + p] = hnan;
		}
	for (int i = 0; i < M; i++)
		for (int j = 0; j < ldc; j++) C[(size_t)i * ldc + j] = j < N ? urand() : sentinel;
	for (int i = 0; i < M; i++)
		for (int j = 0; j < ldr; j++) R[(size_t)i * ldr + j] = j < N ? urand() : NAN;
	for (int j = 0; j < N; j++) bias[j] = urand();

	iapo_gemm_op o = {.transB = 1, .M = M, .N = N, .K = K, .alpha = 1.0f, .A = A, .lda = lda, .Bh = Wh, .ldb = ldb,
			  .C = C, .ldc = ldc};
	switch (s.epi) {
	case E_PLAIN: /* beta 0: C is not read */
		for (int i = 0; i < M; i++)
			for (int j = 0; j < N; j++) C[(size_t)i * ldc + j] = NAN;
		break;
	case E_ALPHA_BETA: o.alpha = -0.75f, o.beta = 0.5f; break;
	case E_RESIDUAL_BIAS: o.alpha = 1.25f, o.R = R, o.ldr = ldr, o.bias = bias; break;
	case E_IN_PLACE: o.R = C, o.ldr = ldc, o.bias = bias; break;
	case E_BETA_ONE: o.alpha = 2.0f, o.beta = 1.0f; break;
	}
	memcpy(C0, C, sizeof(float) * (size_t)M * ldc);

	iapo_set_threads(s.threads);
	int old_path = iapo_sgemm_force_path(s.path), old_bf = iapo_sgemm_no_bf16(s.no_bf16);
	iapo_sgemm_batch(1, &o);
	int took = iapo_sgemm_last_path();
	iapo_sgemm_force_path(old_path);
	iapo_sgemm_no_bf16(old_bf);

	int ok = 1;
	/* up to 16 rows the automatic choice is the direct path (decoding) */
	int want_path = s.path == IAPO_SGEMM_AUTO ? (M <= 16 ? IAPO_SGEMM_DIRECT : IAPO_SGEMM_PACKED) : s.path;
	if (want_path != IAPO_SGEMM_PORTABLE && took != want_path) {
		fprintf(stderr, "  took path %d, not %d\n", took, want_path);
		ok = 0;
	}
	double tol = 2e-6 * sqrt((double)K) + 1e-6;
	for (int i = 0; i < M && ok; i++)
		for (int j = 0; j < ldc && ok; j++) {
			float got = C[(size_t)i * ldc + j];
			if (j >= N) {
				if (got != sentinel) fprintf(stderr, "  wrote outside C at (%d,%d)\n", i, j), ok = 0;
				continue;
			}
			double dot = 0, mag = 0;
			for (int p = 0; p < K; p++) {
				double t = round_value(A[(size_t)i * lda + p]) * bf16_value(Wh[(size_t)j * ldb + p]);
				dot += t, mag += fabs(t);
			}
			double alpha = o.alpha, want = alpha * dot, scale = fabs(alpha) * mag;
			double z = 0;
			if (s.epi == E_RESIDUAL_BIAS) z = R[(size_t)i * ldr + j];
			else if (s.epi == E_IN_PLACE) z = C0[(size_t)i * ldc + j];
			else if (o.beta != 0.0f) z = o.beta * C0[(size_t)i * ldc + j];
			if (o.bias) z += bias[j];
			want += z, scale += fabs(z) + 1e-30;
			double err = fabs(got - want) / scale;
			if (err > *worst) *worst = err;
			if (!(err <= tol)) {
				fprintf(stderr, "  C(%d,%d) = %.9g, want %.9g (error %.3g of %.3g)\n", i, j, got, want, err,
					scale);
				ok = 0;
			}
		}
	free(A); free(Wh); free(C); free(C0); free(R); free(bias);
	return ok;
}

static void report(int ok, struct spec s, const char *what)
{
	CHECK(ok, "%s: M=%d N=%d K=%d pad=%d epi=%d threads=%d path=%d no_bf16=%d", what, s.M, s.N, s.K, s.pad, s.epi,
	      s.threads, s.path, s.no_bf16);
}

/* Ragged shapes with the default blocking, every epilogue, both thread
 * counts, every path. */
static void shapes_and_epilogues(void)
{
	static const int shapes[][3] = {{17, 1, 1},   {17, 33, 2},   {20, 31, 3},   {29, 64, 31},  {45, 70, 33},
					{64, 32, 64}, {100, 97, 129}, {33, 50, 1025}, {130, 40, 257}, {300, 65, 96}};
	static const int paths[] = {IAPO_SGEMM_AUTO, IAPO_SGEMM_PACKED, IAPO_SGEMM_DIRECT, IAPO_SGEMM_PORTABLE};
	double worst = 0;
	for (size_t sh = 0; sh < sizeof shapes / sizeof shapes[0]; sh++)
		for (int epi = 0; epi < E_COUNT; epi++)
			for (int th = 1; th <= 2; th++) {
				struct spec s = {shapes[sh][0], shapes[sh][1], shapes[sh][2], (int)(sh % 3), epi, th, 0, 0};
				report(check(s, &worst), s, "auto");
				/* the other paths (and the widened packed one) on fewer cases */
				if (epi != E_RESIDUAL_BIAS && epi != E_PLAIN) continue;
				for (size_t p = 1; p < sizeof paths / sizeof paths[0]; p++) {
					s.path = paths[p];
					report(check(s, &worst), s, "forced path");
				}
				s.path = IAPO_SGEMM_PACKED, s.no_bf16 = 1;
				report(check(s, &worst), s, "packed, widened");
			}
	fprintf(stderr, "  worst relative error %.3g\n", worst);
}

/* Small blocks: every edge of row blocks, depth slices (odd requests
 * rounded up to a K-pair; odd K leaves a half pair in the last slice) and
 * column blocks, with and without the shared A panels (2 threads). */
static void block_edges(void)
{
	static const int blocks[][3] = {{14, 2, 32}, {14, 5, 32}, {28, 6, 64}, {42, 34, 96}, {14, 1, 64}, {56, 64, 32}};
	static const int shapes[][3] = {{43, 97, 37}, {29, 33, 64}, {71, 65, 130}, {15, 200, 9}};
	double worst = 0;
	for (size_t b = 0; b < sizeof blocks / sizeof blocks[0]; b++) {
		iapo_sgemm_set_blocking(blocks[b][0], blocks[b][1], blocks[b][2]);
		for (size_t sh = 0; sh < sizeof shapes / sizeof shapes[0]; sh++)
			for (int th = 1; th <= 2; th++)
				for (int nb = 0; nb <= 1; nb++) {
					struct spec s = {shapes[sh][0], shapes[sh][1], shapes[sh][2], 1,
							 (int)((b + sh) % E_COUNT), th, IAPO_SGEMM_PACKED, nb};
					report(check(s, &worst), s, "blocking");
				}
	}
	iapo_sgemm_set_blocking(0, 0, 0);
	fprintf(stderr, "  worst relative error %.3g\n", worst);
}

/* Decoding shapes (M <= 16: the direct path's dot kernels; 8 rows at a
 * time with one row of W, or two when K is cut into slices): every K tail
 * (none, under and over one 32-element block of the last 64), with the
 * epilogues; and the same bits with 1 and 2 threads. */
static void decoding_shapes(void)
{
	static const int Ms[] = {1, 7, 8, 9, 16};
	static const int Ks[] = {1, 31, 33, 64, 100, 127, 896, 2049, 4870};
	double worst = 0;
	for (size_t m = 0; m < sizeof Ms / sizeof Ms[0]; m++)
		for (size_t k = 0; k < sizeof Ks / sizeof Ks[0]; k++)
			for (int th = 1; th <= 2; th++) {
				struct spec s = {Ms[m], 37, Ks[k], (int)(k % 2), (int)((m + k) % E_COUNT), th,
						 IAPO_SGEMM_AUTO, 0};
				report(check(s, &worst), s, "decoding");
				s.no_bf16 = 1;
				report(check(s, &worst), s, "decoding, widened");
			}
	fprintf(stderr, "  worst relative error %.3g\n", worst);
	/* thread count does not change a bit */
	const int M = 8, N = 301, K = 896;
	float *A = malloc(sizeof(float) * M * K), *C1 = malloc(sizeof(float) * M * N), *C2 = malloc(sizeof(float) * M * N);
	uint16_t *Wh = malloc(sizeof(uint16_t) * N * K);
	for (int i = 0; i < M * K; i++) A[i] = urand();
	for (int i = 0; i < N * K; i++) {
		float w = urand();
		iapo_f32_to_bf16(&Wh[i], &w, 1);
	}
	iapo_gemm_op o = {.transB = 1, .M = M, .N = N, .K = K, .alpha = 1, .A = A, .lda = K, .Bh = Wh, .ldb = K, .C = C1, .ldc = N};
	iapo_set_threads(1);
	iapo_sgemm_batch(1, &o);
	iapo_set_threads(2);
	iapo_sgemm_set_blocking(1, 1, 1); /* every thread, even for this small product */
	o.C = C2;
	iapo_sgemm_batch(1, &o);
	iapo_sgemm_set_blocking(0, 0, 0);
	CHECK(memcmp(C1, C2, sizeof(float) * M * N) == 0, "1 and 2 threads give the same bits");
	free(A); free(C1); free(C2); free(Wh);
}

/* The vdpbf16ps panels and the widened ones multiply the same values: the
 * two results agree to summation order, and a batch mixing bf16 and fp32
 * products gives each its own. */
static void mixed_batch(void)
{
	const int M = 50, N = 70, K = 91;
	float *A = malloc(sizeof(float) * M * K), *W = malloc(sizeof(float) * N * K);
	float *C1 = malloc(sizeof(float) * M * N), *C2 = malloc(sizeof(float) * M * N);
	float *C3 = malloc(sizeof(float) * M * N), *C4 = malloc(sizeof(float) * M * N);
	uint16_t *Wh = malloc(sizeof(uint16_t) * N * K);
	for (int i = 0; i < M * K; i++) A[i] = urand();
	for (int i = 0; i < N * K; i++) W[i] = urand();
	iapo_f32_to_bf16(Wh, W, (size_t)N * K);
	iapo_set_threads(2);
	iapo_gemm_op ops[2] = {
		{.transB = 1, .M = M, .N = N, .K = K, .alpha = 1, .A = A, .lda = K, .Bh = Wh, .ldb = K, .C = C1, .ldc = N},
		{.transB = 1, .M = M, .N = N, .K = K, .alpha = 1, .A = A, .lda = K, .B = W, .ldb = K, .C = C2, .ldc = N},
	};
	iapo_sgemm_batch(2, ops);
	int old = iapo_sgemm_no_bf16(1);
	ops[0].C = C3;
	iapo_sgemm_batch(1, ops);
	iapo_sgemm_no_bf16(old);
	old = iapo_sgemm_force_path(IAPO_SGEMM_PORTABLE);
	ops[1].C = C4;
	iapo_sgemm_batch(1, &ops[1]);
	iapo_sgemm_force_path(old);
	double e13 = test_max_rel_err(C1, C3, (size_t)M * N), e24 = test_max_rel_err(C2, C4, (size_t)M * N);
	double e12 = test_max_rel_err(C1, C2, (size_t)M * N);
	CHECK(e13 < 1e-5, "vdpbf16ps vs widened panels: %g", e13);
	CHECK(e24 < 1e-5, "the fp32 product of the batch: %g", e24);
	CHECK(e12 > 1e-5 && e12 < 0.05, "bf16 and fp32 differ by rounding only: %g", e12);
	free(A); free(W); free(C1); free(C2); free(C3); free(C4); free(Wh);
}

/* Products of one A in a batch share its bf16 panels: the same bits as
 * each alone (which packs its own), at 2 threads (shared panels need
 * several rectangles). The third reads the same A over fewer columns of
 * depth (K = 1000: two slices of 500, not three of 368), so it must pack
 * its own; the fourth is fp32. */
static void shared_a(void)
{
	enum { M = 200, LDA = 1100, NOPS = 4 };
	static const int Ns[NOPS] = {96, 64, 160, 48}, Ks[NOPS] = {1100, 1100, 1000, 1100};
	float *A = malloc(sizeof(float) * M * LDA);
	for (int i = 0; i < M * LDA; i++) A[i] = urand();
	float *W[NOPS], *Cb[NOPS], *Cs[NOPS];
	uint16_t *Wh[NOPS];
	iapo_gemm_op ops[NOPS];
	for (int o = 0; o < NOPS; o++) {
		W[o] = malloc(sizeof(float) * Ns[o] * Ks[o]);
		Wh[o] = malloc(sizeof(uint16_t) * Ns[o] * Ks[o]);
		Cb[o] = malloc(sizeof(float) * M * Ns[o]);
		Cs[o] = malloc(sizeof(float) * M * Ns[o]);
		for (int i = 0; i < Ns[o] * Ks[o]; i++) W[o][i] = urand();
		iapo_f32_to_bf16(Wh[o], W[o], (size_t)Ns[o] * Ks[o]);
		ops[o] = (iapo_gemm_op){.transB = 1, .M = M, .N = Ns[o], .K = Ks[o], .alpha = 1, .A = A, .lda = LDA,
					.B = W[o], .Bh = o < 3 ? Wh[o] : NULL, .ldb = Ks[o], .C = Cb[o], .ldc = Ns[o]};
	}
	iapo_set_threads(2);
	iapo_sgemm_batch(NOPS, ops);
	for (int o = 0; o < NOPS; o++) {
		iapo_gemm_op one = ops[o];
		one.C = Cs[o];
		iapo_sgemm_batch(1, &one);
		CHECK(memcmp(Cb[o], Cs[o], sizeof(float) * M * Ns[o]) == 0, "product %d of the batch: its bits alone", o);
	}
	for (int o = 0; o < NOPS; o++) free(W[o]), free(Wh[o]), free(Cb[o]), free(Cs[o]);
	free(A);
}

/* The information pass's shapes (tiny: gate and up of one A, then q, k and
 * v), many times at 2 threads: rectangles that meet on a panel the other is
 * packing come back to it later (a_panels), and every round must give each
 * product its bits alone, whichever thread packed which panel and whatever
 * was left for later. */
static void shared_a_rounds(void)
{
	enum { M = 512, K = 256, NOPS = 5, ROUNDS = 30 };
	static const int Ns[NOPS] = {768, 768, 128, 128, 256};
	float *A = malloc(sizeof(float) * M * K);
	for (int i = 0; i < M * K; i++) A[i] = urand();
	float *W[NOPS], *Cb[NOPS], *Cs[NOPS];
	uint16_t *Wh[NOPS];
	iapo_gemm_op ops[NOPS];
	for (int o = 0; o < NOPS; o++) {
		W[o] = malloc(sizeof(float) * Ns[o] * K);
		Wh[o] = malloc(sizeof(uint16_t) * Ns[o] * K);
		Cb[o] = malloc(sizeof(float) * M * Ns[o]);
		Cs[o] = malloc(sizeof(float) * M * Ns[o]);
		for (int i = 0; i < Ns[o] * K; i++) W[o][i] = urand();
		iapo_f32_to_bf16(Wh[o], W[o], (size_t)Ns[o] * K);
		ops[o] = (iapo_gemm_op){.transB = 1, .M = M, .N = Ns[o], .K = K, .alpha = 1, .A = A, .lda = K,
					.B = W[o], .Bh = Wh[o], .ldb = K, .C = Cb[o], .ldc = Ns[o]};
	}
	iapo_set_threads(1);
	for (int o = 0; o < NOPS; o++) {
		iapo_gemm_op one = ops[o];
		one.C = Cs[o];
		iapo_sgemm_batch(1, &one);
	}
	iapo_set_threads(2);
	int bad = 0;
	for (int r = 0; r < ROUNDS; r++) {
		iapo_sgemm_batch(2, ops);
		iapo_sgemm_batch(3, ops + 2);
		for (int o = 0; o < NOPS; o++) bad += memcmp(Cb[o], Cs[o], sizeof(float) * M * Ns[o]) != 0;
	}
	CHECK(bad == 0, "%d of %d products in %d rounds: not the bits of one thread", bad, NOPS * ROUNDS, ROUNDS);
	for (int o = 0; o < NOPS; o++) free(W[o]), free(Wh[o]), free(Cb[o]), free(Cs[o]);
	free(A);
}

/* The packed path's choice of bf16 kernels (gemm.h, iapo_sgemm_bf16_dot):
 * the probe's ratio is a rate ratio a CPU can have, the verdict follows it
 * (auto), the test hook forces either verdict and no_bf16 wins over both;
 * IAPO_BF16_DOT, read once per process, is checked in child processes of
 * this program (--bf16-dot prints what they read), a bad value included. */
static void bf16_verdict(void)
{
	double ratio;
	int mode, pays = iapo_sgemm_bf16_dot(&ratio, &mode);
	__builtin_cpu_init();
	const int has = iapo_sgemm_avx512() && __builtin_cpu_supports("avx512bf16");
	if (has)
		CHECK(ratio > 0.05 && ratio < 8, "probe ratio %g", ratio);
	else
		CHECK(ratio == 0 && pays == 0, "no AVX512_BF16: ratio %g, verdict %d", ratio, pays);
	if (mode == IAPO_BF16_DOT_AUTO) CHECK(pays == (has && ratio >= 1.0), "auto: verdict %d at ratio %g", pays, ratio);
	fprintf(stderr, "  probe: bf16 / fp32 multiply-adds per second %.3f, verdict %d, IAPO_BF16_DOT mode %d\n", ratio,
		pays, mode);
	int old = iapo_sgemm_force_bf16_dot(0);
	CHECK(iapo_sgemm_bf16_dot(NULL, NULL) == 0, "hook 0");
	iapo_sgemm_force_bf16_dot(1);
	CHECK(iapo_sgemm_bf16_dot(NULL, NULL) == has, "hook 1");
	int old_nb = iapo_sgemm_no_bf16(1);
	CHECK(iapo_sgemm_bf16_dot(NULL, NULL) == 0, "no_bf16 over the hook");
	iapo_sgemm_no_bf16(old_nb);
	CHECK(iapo_sgemm_force_bf16_dot(-1) == 1, "the hook's previous setting");
	CHECK(iapo_sgemm_bf16_dot(NULL, NULL) == pays, "hook -1: back to the verdict");
	iapo_sgemm_force_bf16_dot(old);

	/* this process's own command line again (/proc/self/cmdline, each word
	 * single-quoted), so that a run through a carried loader (ld.so
	 * --library-path DIR prog) starts its child the same way */
	char self[4096] = "", raw[4096];
	FILE *cl = fopen("/proc/self/cmdline", "rb");
	size_t n = cl ? fread(raw, 1, sizeof raw - 1, cl) : 0;
	if (cl) fclose(cl);
	CHECK(n > 0, "read /proc/self/cmdline");
	if (n == 0) return;
	raw[n] = 0;
	for (size_t i = 0, len = 0; i < n && len + 8 < sizeof self; i += strlen(raw + i) + 1)
		len += (size_t)snprintf(self + len, sizeof self - len, "%s'%s'", len ? " " : "", raw + i);
	static const struct {
		const char *env;
		int mode, pays; /* pays -1: the probe's */
		const char *warn;
	} cases[] = {{"on", IAPO_BF16_DOT_ON, 1, NULL},
		     {"off", IAPO_BF16_DOT_OFF, 0, NULL},
		     {"auto", IAPO_BF16_DOT_AUTO, -1, NULL},
		     {"", IAPO_BF16_DOT_AUTO, -1, NULL},
		     {"fast", IAPO_BF16_DOT_AUTO, -1, "IAPO_BF16_DOT=fast: expected auto, on or off"}};
	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
		char cmd[4200], out[1024] = "";
		snprintf(cmd, sizeof cmd, "IAPO_BF16_DOT='%s' %s --bf16-dot 2>&1", cases[c].env, self);
		FILE *f = popen(cmd, "r");
		CHECK(f != NULL, "popen %s", cmd);
		if (!f) continue;
		size_t got = fread(out, 1, sizeof out - 1, f);
		out[got] = 0;
		int st = pclose(f);
		const char *line = strstr(out, "bf16_dot ");
		int cp = -2, cm = -2;
		double cr = -1;
		CHECK(st == 0 && line && sscanf(line, "bf16_dot %d mode %d ratio %lf", &cp, &cm, &cr) == 3,
		      "IAPO_BF16_DOT=%s: child said '%s'", cases[c].env, out);
		CHECK(cm == cases[c].mode, "IAPO_BF16_DOT=%s: mode %d", cases[c].env, cm);
		int want = cases[c].pays < 0 ? (has && cr >= 1.0) : has && cases[c].pays;
		CHECK(cp == want, "IAPO_BF16_DOT=%s: verdict %d, want %d (ratio %g)", cases[c].env, cp, want, cr);
		if (cases[c].warn)
			CHECK(strstr(out, cases[c].warn) != NULL, "IAPO_BF16_DOT=%s: no warning in '%s'", cases[c].env, out);
		else
			CHECK(strstr(out, "IAPO_BF16_DOT=") == NULL, "IAPO_BF16_DOT=%s: a warning: '%s'", cases[c].env, out);
	}
}

/* Random operands of a bf16 x W^T (A: M x lda, R: M x ldc, bias: N, W as
 * bf16: N x ldb), in fresh buffers the caller frees. */
static void xwt_operands(int M, int N, int lda, int ldb, int ldc, float **A, float **R, float **bias, uint16_t **Wh)
{
	*A = malloc(sizeof(float) * (size_t)M * lda);
	*R = malloc(sizeof(float) * (size_t)M * ldc);
	*bias = malloc(sizeof(float) * N);
	*Wh = malloc(sizeof(uint16_t) * (size_t)N * ldb);
	for (size_t i = 0; i < (size_t)M * lda; i++) (*A)[i] = urand();
	for (size_t i = 0; i < (size_t)M * ldc; i++) (*R)[i] = urand();
	for (int j = 0; j < N; j++) (*bias)[j] = urand();
	for (size_t i = 0; i < (size_t)N * ldb; i++) {
		float w = urand();
		iapo_f32_to_bf16(&(*Wh)[i], &w, 1);
	}
}

/* Where vdpbf16ps does not pay, the packed path multiplies the same bf16
 * values with fp32 FMAs: the bits of iapo_sgemm_no_bf16(1)'s product (same
 * panels' values, depth slices and order of sums), from bf16 W unpacked and
 * from a weight pack (K-pair panels, read as they are), over odd M, N, K,
 * the epilogues, 1 and 2 threads, with the default blocking and small
 * blocks (odd depth slices). */
static void slow_verdict_bits(void)
{
	static const int shapes[][3] = {{17, 33, 3},    {29, 64, 31},  {45, 70, 33}, {100, 97, 129}, {130, 40, 257},
					{300, 65, 1027}, {64, 96, 4870}, {33, 50, 1}, {200, 33, 896}};
	static const int blocks[][3] = {{0, 0, 0}, {14, 5, 32}, {28, 34, 64}};
	int bad = 0, cases = 0;
	for (size_t b = 0; b < sizeof blocks / sizeof blocks[0]; b++)
		for (size_t sh = 0; sh < sizeof shapes / sizeof shapes[0]; sh++)
			for (int th = 1; th <= 2; th++) {
				const int M = shapes[sh][0], N = shapes[sh][1], K = shapes[sh][2];
				const int lda = K + 3, ldb = K + (int)(sh % 2), ldc = N + 1;
				if (b && (long)M * N * K > 3000000) continue;
				float *A, *R, *bias, *C[4];
				uint16_t *Wh;
				xwt_operands(M, N, lda, ldb, ldc, &A, &R, &bias, &Wh);
				iapo_set_threads(th);
				iapo_sgemm_set_blocking(blocks[b][0], blocks[b][1], blocks[b][2]);
				iapo_gemm_wpack *wp = NULL;
				CHECK(iapo_gemm_wpack_create(&wp, N, K, NULL, Wh, ldb) == IAPO_OK, "wpack");
				iapo_gemm_op o = {.transB = 1, .M = M, .N = N, .K = K, .alpha = 0.75f, .A = A, .lda = lda,
						  .Bh = Wh, .ldb = ldb, .ldc = ldc, .R = (sh % 3) ? R : NULL, .ldr = ldc,
						  .bias = (sh % 2) ? bias : NULL};
				int old_path = iapo_sgemm_force_path(IAPO_SGEMM_PACKED);
				for (int v = 0; v < 4; v++) {
					/* 0: no_bf16; 1, 2: the slow verdict, W unpacked / packed;
					 * 3: the slow verdict through the automatic path choice */
					C[v] = malloc(sizeof(float) * (size_t)M * ldc);
					for (size_t i = 0; i < (size_t)M * ldc; i++) C[v][i] = (float)i;
					int old_nb = iapo_sgemm_no_bf16(v == 0), old_h = iapo_sgemm_force_bf16_dot(v ? 0 : -1);
					if (v == 3) iapo_sgemm_force_path(IAPO_SGEMM_AUTO);
					o.C = C[v];
					o.Bp = v >= 2 ? wp : NULL;
					iapo_sgemm_batch(1, &o);
					if (M > 16) CHECK(iapo_sgemm_last_path() == IAPO_SGEMM_PACKED, "packed path");
					iapo_sgemm_force_path(IAPO_SGEMM_PACKED);
					iapo_sgemm_no_bf16(old_nb);
					iapo_sgemm_force_bf16_dot(old_h);
				}
				iapo_sgemm_force_path(old_path);
				for (int v = 1; v < 4; v++) {
					cases++;
					if (v == 3 && M <= 16) continue;
					if (memcmp(C[0], C[v], sizeof(float) * (size_t)M * ldc) != 0) {
						bad++;
						fprintf(stderr, "  differs from no_bf16: M=%d N=%d K=%d threads=%d blocking %d,%d,%d variant %d\n",
							M, N, K, th, blocks[b][0], blocks[b][1], blocks[b][2], v);
					}
				}
				iapo_gemm_wpack_free(wp);
				for (int v = 0; v < 4; v++) free(C[v]);
				free(A); free(R); free(bias); free(Wh);
			}
	iapo_sgemm_set_blocking(0, 0, 0);
	CHECK(bad == 0, "%d of %d products differ from no_bf16's bits", bad, cases);
}

/* iapo_sgemm_bf_rows: one row range per thread for bf16 products with
 * narrow C (the tuned rule, or forced) gives the bits of the grid / split-K
 * plans (same depth slices): odd M, N, K, 1-3 threads, both packed-path
 * kernels, B unpacked and packed ahead, with R/bias epilogues, one product
 * and a q/k/v-like batch over one A (shared A panels where the plan keeps
 * them). */
static void bf_rows_bits(void)
{
	static const int shapes[][3] = {{17, 33, 3},   {29, 64, 31},  {45, 70, 33},  {100, 97, 129}, {130, 40, 257},
					{300, 65, 1027}, {200, 128, 896}, {257, 256, 513}, {64, 250, 1536}, {99, 300, 77}};
	int bad = 0, cases = 0;
	for (size_t sh = 0; sh < sizeof shapes / sizeof shapes[0]; sh++)
		for (int th = 1; th <= 3; th++)
			for (int pays = 0; pays <= 1; pays++) {
				const int M = shapes[sh][0], N = shapes[sh][1], K = shapes[sh][2];
				const int lda = K + 3, ldb = K + (int)(sh % 2), ldc = N + 1;
				float *A, *R, *bias, *C[3][3];
				uint16_t *Wh;
				xwt_operands(M, N, lda, ldb, ldc, &A, &R, &bias, &Wh);
				iapo_set_threads(th);
				iapo_gemm_wpack *wp = NULL;
				CHECK(iapo_gemm_wpack_create(&wp, N, K, NULL, Wh, ldb) == IAPO_OK, "wpack");
				int old_h = iapo_sgemm_force_bf16_dot(pays);
				for (int mode = 0; mode <= 2; mode++) {
					int old_m = iapo_sgemm_bf_rows(mode);
					for (int v = 0; v < 3; v++) {
						/* 0: W unpacked, 1: packed ahead, 2: a batch of three
						 * products of one A (the second packed ahead) */
						C[mode][v] = malloc(sizeof(float) * (size_t)M * ldc * 3);
						for (size_t i = 0; i < (size_t)M * ldc * 3; i++) C[mode][v][i] = (float)(i % ((size_t)M * ldc));
						iapo_gemm_op o[3];
						for (int q = 0; q < 3; q++)
							o[q] = (iapo_gemm_op){.transB = 1, .M = M, .N = N, .K = K, .alpha = 0.75f,
									      .A = A, .lda = lda, .Bh = Wh, .ldb = ldb,
									      .C = C[mode][v] + (size_t)q * M * ldc, .ldc = ldc,
									      .R = (sh % 3) ? R : NULL, .ldr = ldc,
									      .bias = (sh % 2) ? bias : NULL,
									      .Bp = (v == 1 || (v == 2 && q == 1)) ? wp : NULL};
						iapo_sgemm_batch(v == 2 ? 3 : 1, o);
					}
					iapo_sgemm_bf_rows(old_m);
				}
				iapo_sgemm_force_bf16_dot(old_h);
				for (int mode = 1; mode <= 2; mode++)
					for (int v = 0; v < 3; v++) {
						cases++;
						if (memcmp(C[0][v], C[mode][v], sizeof(float) * (size_t)M * ldc * (v == 2 ? 3 : 1)) != 0) {
							bad++;
							fprintf(stderr, "  bf_rows %d differs: M=%d N=%d K=%d threads=%d vdpbf16ps %d variant %d\n",
								mode, M, N, K, th, pays, v);
						}
					}
				/* and the batch's three products equal the single ones */
				for (int q = 0; q < 3; q++) {
					cases++;
					if (memcmp(C[1][2] + (size_t)q * M * ldc, C[1][q == 1 ? 1 : 0], sizeof(float) * (size_t)M * ldc) != 0) {
						bad++;
						fprintf(stderr, "  batch product %d differs: M=%d N=%d K=%d threads=%d vdpbf16ps %d\n", q,
							M, N, K, th, pays);
					}
				}
				iapo_gemm_wpack_free(wp);
				for (int mode = 0; mode <= 2; mode++)
					for (int v = 0; v < 3; v++) free(C[mode][v]);
				free(A); free(R); free(bias); free(Wh);
			}
	CHECK(bad == 0, "%d of %d products differ", bad, cases);
}

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "--bf16-dot")) {
		/* a child of bf16_verdict: what this process read */
		double r;
		int mode, pays = iapo_sgemm_bf16_dot(&r, &mode);
		printf("bf16_dot %d mode %d ratio %.4f\n", pays, mode, r);
		return 0;
	}
	RUN(bf16_verdict);
	RUN(slow_verdict_bits);
	RUN(bf_rows_bits);
	RUN(shapes_and_epilogues);
	RUN(block_edges);
	RUN(decoding_shapes);
	RUN(mixed_batch);
	RUN(shared_a);
	RUN(shared_a_rounds);
	TEST_END();
}
