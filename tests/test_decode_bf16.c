/*
 * test_decode_bf16.c — bf16 weights for inference (iapo_kv_use_bf16 and the
 * GEMM's bf16 B operand), against fp32:
 *  - the GEMM with Bh equals the fp32 GEMM on the same weights and inputs
 *    rounded to bf16 (relative 1e-5: the products are exact, only the order
 *    of the sums differs; vdpbf16ps on CPUs that have it), on every path
 *    (direct dot kernels for decoding, packed for prefill, portable for other
 *    transposes), with epilogues;
 *  - rounding: iapo_f32_to_bf16 is round-to-nearest-even, NaN stays NaN;
 *  - a model with Qwen2-0.5B's layer shapes and peaked next-token
 *    distributions (fp32 entropy ~1.9 nats): greedy tokens, log-probs and
 *    entropies of bf16 against fp32 at the tolerance kvcache.h states, and
 *    iapo_generate's precision choice (bf16 by default, fp32 when asked or
 *    when entropies are asked for, a caller's cache left as it was);
 *  - decoding the tiny models (three families) with bf16 weights: logits
 *    within 2% of the logits' range of the fp32 cache's (the stated
 *    tolerance; measured 0.3-0.5%), and the greedy token is the fp32 one at
 *    every step whose fp32 top-two margin exceeds twice the largest logit
 *    difference seen (a token can differ only at near-ties);
 *  - decoding from the bf16 copy's packs (iapo_kv_pack_weights(kv, 2)):
 *    few-row products from a bf16 pack against the fp32 GEMM on the same
 *    rounded numbers, and the pack shown to be read; a packed bf16 cache
 *    against an unpacked one on the tiny models;
 *  - gate and up packed as one pair (iapo_gemm_wpack_create_pair): each
 *    half read to a plain pack's bits, and both as one stream with the
 *    SwiGLU fused (iapo_sgemm_swiglu_pair) to the bits of two products
 *    and a SwiGLU pass;
 *  - the copy is a snapshot: stale after the weights change until taken
 *    again; turning bf16 off gives the fp32 results bit for bit.
 */
#include <immintrin.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "iapo.h"
#include "kernels/gemm.h"
#include "kernels/kernels.h"
#include "model/generate.h"
#include "model/kvcache.h"
#include "model/sample.h"
#include "bf16_probe.h"
#include "test.h"
#include "test_decode_models.h"

static iapo_rng rng;

static float round_bf16(float x)
{
	uint16_t h;
	iapo_f32_to_bf16(&h, &x, 1);
	union {
		uint32_t u;
		float f;
	} v = {.u = (uint32_t)h << 16};
	return v.f;
}

static void rounding(void)
{
	CHECK(round_bf16(1.0f) == 1.0f, "1 is exact");
	/* 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to even (1) */
	CHECK(round_bf16(1.0f + 1.0f / 256) == 1.0f, "tie to even, down: %.9g", round_bf16(1.0f + 1.0f / 256));
	CHECK(round_bf16(1.0f + 3.0f / 256) == 1.0f + 4.0f / 256, "tie to even, up: %.9g", round_bf16(1.0f + 3.0f / 256));
	CHECK(round_bf16(1.0f + 1.0f / 256 + 1.0f / 4096) == 1.0f + 2.0f / 256, "above the tie rounds up");
	CHECK(round_bf16(-2.5f) == -2.5f, "negative exact");
	float nan = NAN;
	CHECK(isnan(round_bf16(nan)), "NaN stays NaN");
	CHECK(isinf(round_bf16(INFINITY)), "inf stays inf");
}

static void gemm_bf16(void)
{
	/* M = 8 with K up to 2048: the 8-row kernels; longer K and other M: the
	 * 4x5 blocks; K not a multiple of 32 or 16: masked tails */
	static const int shapes[][3] = {{1, 37, 100}, {3, 64, 17},   {8, 130, 896}, {8, 9, 1500},   {8, 19, 2100},
					{13, 33, 64}, {16, 70, 2000}, {5, 11, 4870}, {40, 96, 300}, {300, 64, 130}};
	static const int paths[] = {IAPO_SGEMM_AUTO, IAPO_SGEMM_PORTABLE, IAPO_SGEMM_PACKED, IAPO_SGEMM_DIRECT};
	/* p = 4: the direct path as on CPUs without AVX512_BF16 (widened) */
	for (size_t p = 0; p <= sizeof paths / sizeof paths[0]; p++) {
		int old = iapo_sgemm_force_path(p < 4 ? paths[p] : IAPO_SGEMM_DIRECT);
		int oldbf = iapo_sgemm_no_bf16(p == 4);
		for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
			for (int variant = 0; variant < 3; variant++) {
				const int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
				/* variant 0: x W^T plain; 1: with bias and a residual; 2: W as stored (nn) */
				const int tb = variant < 2;
				float *A = malloc(sizeof(float) * M * K), *W = malloc(sizeof(float) * N * K);
				float *Wr = malloc(sizeof(float) * N * K), *bias = malloc(sizeof(float) * N);
				float *R = malloc(sizeof(float) * M * N), *C1 = malloc(sizeof(float) * M * N);
				float *C2 = malloc(sizeof(float) * M * N);
				uint16_t *Wh = malloc(sizeof(uint16_t) * N * K);
				for (int i = 0; i < M * K; i++) A[i] = iapo_rng_normal(&rng);
				for (int i = 0; i < N * K; i++) W[i] = iapo_rng_normal(&rng);
				for (int i = 0; i < N; i++) bias[i] = iapo_rng_normal(&rng);
				for (int i = 0; i < M * N; i++) R[i] = iapo_rng_normal(&rng);
				iapo_f32_to_bf16(Wh, W, (size_t)N * K);
				for (int i = 0; i < N * K; i++) Wr[i] = round_bf16(W[i]);
				/* the product rounds A to bf16 too */
				float *Ar = malloc(sizeof(float) * M * K);
				for (int i = 0; i < M * K; i++) Ar[i] = round_bf16(A[i]);
				/* W is (N,K) for x W^T; as stored (nn) it is read as (K,N) */
				iapo_gemm_op o = {.transB = tb, .M = M, .N = N, .K = K, .alpha = 1.0f, .A = Ar, .lda = K,
						  .B = Wr, .ldb = tb ? K : N, .C = C1, .ldc = N};
				if (variant == 1) o.bias = bias, o.R = R, o.ldr = N;
				iapo_sgemm_batch(1, &o);
				o.A = A, o.B = NULL, o.Bh = Wh, o.C = C2;
				iapo_sgemm_batch(1, &o);
				double e = test_max_rel_err(C2, C1, (size_t)M * N);
				CHECK(e < 1e-5, "path %d, %dx%dx%d variant %d: bf16 vs rounded fp32 %g", (int)p, M, N, K,
				      variant, e);
				free(A); free(Ar); free(W); free(Wr); free(bias); free(R); free(C1); free(C2); free(Wh);
			}
		iapo_sgemm_force_path(old);
		iapo_sgemm_no_bf16(oldbf);
	}
}

/* The bf16 packs' FMA reader (dotpbw_*) sums as bf16_probe.h's Intel
 * definition of vdpbf16ps, so where the CPU's vdpbf16ps does, it gives the
 * vdpbf16ps reader's bits. */
static int dot_is_two_fmas(void) { return iapo_sgemm_avx512() && dpbf16_is_two_fmas(); }

/* One case of gemm_bf16_pack: M x N x K under the threads and depth slice
 * in force; with bits, C also under the vdpbf16ps reader, which must give
 * the same bits. */
static void bf16_pack_case(int kc, int th, int M, int N, int K, int bf, int bits, int *nan_seen, int *nan_tries)
{
	const int epi = M & 1;
	float *A = malloc(sizeof(float) * M * K), *Ar = malloc(sizeof(float) * M * K);
	float *Wr = malloc(sizeof(float) * N * K), *bias = malloc(sizeof(float) * N);
	float *R = malloc(sizeof(float) * M * N), *C1 = malloc(sizeof(float) * M * N);
	float *C2 = malloc(sizeof(float) * M * N);
	uint16_t *Wh = malloc(sizeof(uint16_t) * N * K);
	if (!A || !Ar || !Wr || !bias || !R || !C1 || !C2 || !Wh) {
		CHECK(0, "out of memory");
		goto done;
	}
	for (int i = 0; i < M * K; i++) Ar[i] = round_bf16(A[i] = iapo_rng_normal(&rng));
	for (int i = 0; i < N * K; i++) Wr[i] = round_bf16(iapo_rng_normal(&rng));
	iapo_f32_to_bf16(Wh, Wr, (size_t)N * K);
	for (int i = 0; i < N; i++) bias[i] = iapo_rng_normal(&rng);
	for (int i = 0; i < M * N; i++) R[i] = iapo_rng_normal(&rng);
	iapo_gemm_op o = {.transB = 1, .M = M, .N = N, .K = K, .alpha = 0.5f, .A = Ar, .lda = K,
			  .B = Wr, .ldb = K, .C = C1, .ldc = N};
	if (epi) o.bias = bias, o.R = R, o.ldr = N;
	iapo_sgemm_batch(1, &o);
	iapo_gemm_wpack *p = NULL;
	CHECK(iapo_gemm_wpack_create(&p, N, K, NULL, Wh, K) == IAPO_OK, "wpack: %s", iapo_errmsg());
	iapo_gemm_wpack_set_direct(p, 1);
	o.A = A, o.B = NULL, o.Bh = Wh, o.Bp = p, o.C = C2;
	iapo_sgemm_batch(1, &o);
	double e = test_max_rel_err(C2, C1, (size_t)M * N);
	CHECK(e < 1e-5, "kc %d, %d threads, %dx%dx%d%s: bf16 pack vs rounded fp32 %g", kc, th, M, N, K,
	      epi ? " +epilogue" : "", e);
	if (bits) {
		const int old = iapo_sgemm_force_bf16_dot(1);
		o.C = C1; /* C1 is done with */
		iapo_sgemm_batch(1, &o);
		iapo_sgemm_force_bf16_dot(old);
		o.C = C2;
		CHECK(!memcmp(C1, C2, sizeof(float) * M * N), "kc %d, %d threads, %dx%dx%d%s: the FMA reader's bits "
		      "are not vdpbf16ps'", kc, th, M, N, K, epi ? " +epilogue" : "");
	}
	/* NaN panels (repacked from NaN weights, then Wh restored): C is all
	 * NaN only if the product read the pack */
	if (p && bf) {
		for (int i = 0; i < N * K; i++) Wh[i] = 0x7FC0; /* NaN */
		iapo_gemm_wpack_update(p);
		iapo_f32_to_bf16(Wh, Wr, (size_t)N * K);
		iapo_sgemm_batch(1, &o);
		int nan = 0;
		for (int i = 0; i < M * N; i++) nan += isnan(C2[i]);
		(*nan_tries)++;
		*nan_seen += nan == M * N;
	}
	iapo_gemm_wpack_free(p);
	/* the same rows from an fp32 pack of the same numbers (dotp_*) */
	p = NULL;
	CHECK(iapo_gemm_wpack_create(&p, N, K, Wr, NULL, K) == IAPO_OK, "wpack fp32: %s", iapo_errmsg());
	iapo_gemm_wpack_set_direct(p, 1);
	o.A = Ar, o.B = Wr, o.Bh = NULL, o.Bp = p, o.C = C2;
	iapo_sgemm_batch(1, &o);
	e = test_max_rel_err(C2, C1, (size_t)M * N);
	CHECK(e < 1e-5, "kc %d, %d threads, %dx%dx%d%s: fp32 pack vs fp32 rows %g", kc, th, M, N, K,
	      epi ? " +epilogue" : "", e);
	iapo_gemm_wpack_free(p);
done:
	free(A); free(Ar); free(Wr); free(bias); free(R); free(C1); free(C2); free(Wh);
}

/* Few-row products from a bf16 weight pack opened to them
 * (iapo_gemm_wpack_set_direct: gemm.c's dotpbf_*, K-pair panels streamed by
 * vdpbf16ps; 9-16 rows as two groups over each panel): M = 1..16 rows
 * against the fp32 GEMM on the same numbers rounded to bf16 (relative
 * 1e-5, as gemm_bf16), with and without an
 * epilogue, N leaving a partial last panel, odd K (the last pair half
 * padding), several depth slices (an override of 32) and one, 1 and 2
 * threads (pieces starting inside panels), and the same rows from an fp32
 * pack (dotp_*) against the fp32 rows. The bf16 products must read the
 * pack: a NaN written into its panels must reach C. Both bf16 readers:
 * vdpbf16ps (dotpbf_*) and fp32 FMAs on the widened pairs (dotpbw_*, where
 * the start-up probe finds vdpbf16ps slower), each forced by the hook; where
 * this CPU's vdpbf16ps is two FMAs (odd element first), the two give the
 * same bits. */
static void gemm_bf16_pack(void)
{
	static const int shapes[][2] = {{37, 17}, {97, 130}, {130, 896}, {33, 1501}};
	/* the bf16 packs are K-pair panels (read by this path) only with AVX512_BF16 */
	const int bf = iapo_sgemm_avx512() && __builtin_cpu_supports("avx512bf16");
	int nan_seen = 0, nan_tries = 0;
	/* both readers of a bf16 pack on every CPU with AVX512_BF16: vdpbf16ps
	 * (where the start-up probe says it pays) and fp32 FMAs on the widened
	 * pairs (elsewhere), by the probe's hook */
	const int two = bf && dot_is_two_fmas();
	fprintf(stderr, "  this CPU's vdpbf16ps %s two FMAs a lane: the FMA reader's bits %s\n", two ? "is" : "is not",
		two ? "checked against it" : "held to the tolerance only");
	for (int dot = 1; dot >= 0; dot--) {
		const int old = iapo_sgemm_force_bf16_dot(dot);
		for (int kc = 0; kc <= 32; kc += 32)
			for (int th = 1; th <= 2; th++)
				for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
					for (int M = 1; M <= 16; M++) {
						iapo_set_threads(th);
						iapo_sgemm_set_blocking(0, kc, 0);
						bf16_pack_case(kc, th, M, shapes[s][0], shapes[s][1], bf, two && !dot,
							       &nan_seen, &nan_tries);
					}
		iapo_sgemm_force_bf16_dot(old);
	}
	iapo_sgemm_set_blocking(0, 0, 0);
	iapo_set_threads(2);
	CHECK(nan_seen == nan_tries, "the few-row products read the pack: %d of %d", nan_seen, nan_tries);
}

/* One case of gemm_pair: gate and up (N x K each) from a pair of packs
 * against plain packs of the same weights, M rows, fp32 or bf16 (h). */
static void pair_case(int M, int N, int K, int h, int *fused, int *tries)
{
	const size_t nk = (size_t)N * K, mn = (size_t)M * N;
	float *A = malloc(sizeof(float) * M * K), *W = malloc(sizeof(float) * 2 * nk);
	float *C = malloc(sizeof(float) * 6 * mn), *act = malloc(sizeof(float) * 2 * mn);
	uint16_t *Wh = malloc(sizeof(uint16_t) * 2 * nk);
	iapo_gemm_wpack *one[2] = {NULL, NULL}, *two[2] = {NULL, NULL};
	if (!A || !W || !C || !act || !Wh) {
		CHECK(0, "out of memory");
		goto done;
	}
	for (int i = 0; i < M * K; i++) A[i] = iapo_rng_normal(&rng);
	for (size_t i = 0; i < 2 * nk; i++) W[i] = round_bf16(iapo_rng_normal(&rng));
	iapo_f32_to_bf16(Wh, W, 2 * nk);
	const float *Wf[2] = {h ? NULL : W, h ? NULL : W + nk};
	const uint16_t *Whh[2] = {h ? Wh : NULL, h ? Wh + nk : NULL};
	for (int k = 0; k < 2; k++) {
		CHECK(iapo_gemm_wpack_create(&one[k], N, K, Wf[k], Whh[k], K) == IAPO_OK, "wpack: %s", iapo_errmsg());
		iapo_gemm_wpack_set_direct(one[k], 1);
	}
	CHECK(iapo_gemm_wpack_create_pair(two, N, K, Wf, Whh, K) == IAPO_OK, "pair: %s", iapo_errmsg());
	CHECK(iapo_gemm_wpack_bytes(two[0]) + iapo_gemm_wpack_bytes(two[1]) ==
		      iapo_gemm_wpack_bytes(one[0]) + iapo_gemm_wpack_bytes(one[1]),
	      "a pair holds the bytes of two packs");
	for (int k = 0; k < 2; k++) iapo_gemm_wpack_set_direct(two[k], 1);
	/* C: [0] [1] from plain packs, [2] [3] the pair's halves as two
	 * products, [4] [5] the pair as one stream */
	iapo_gemm_op o[2];
	for (int k = 0; k < 2; k++)
		o[k] = (iapo_gemm_op){.transB = 1, .M = M, .N = N, .K = K, .alpha = 1.0f, .A = A, .lda = K,
				      .B = Wf[k] ? Wf[k] : W + k * nk, .ldb = K, .Bh = Whh[k], .C = C + k * mn, .ldc = N,
				      .Bp = one[k]};
	iapo_sgemm_batch(2, o);
	iapo_swiglu_forward(act, C, C + mn, mn);
	for (int k = 0; k < 2; k++) o[k].C = C + (2 + k) * mn, o[k].Bp = two[k];
	iapo_sgemm_batch(2, o);
	CHECK(memcmp(C, C + 2 * mn, sizeof(float) * 2 * mn) == 0, "%dx%dx%d %s: the pair's halves vs two packs", M,
	      N, K, h ? "bf16" : "fp32");
	for (int k = 0; k < 2; k++) o[k].C = C + (4 + k) * mn;
	const int done1 = iapo_sgemm_swiglu_pair(o, act + mn, N);
	if (done1) {
		CHECK(memcmp(C, C + 4 * mn, sizeof(float) * 2 * mn) == 0, "%dx%dx%d %s: one stream: products", M, N, K,
		      h ? "bf16" : "fp32");
		CHECK(memcmp(act, act + mn, sizeof(float) * mn) == 0, "%dx%dx%d %s: one stream: SwiGLU", M, N, K,
		      h ? "bf16" : "fp32");
	}
	*fused += done1;
	(*tries)++;
	/* not a pair (the same pack twice, plain packs): declined */
	o[1].Bp = one[1], o[0].Bp = one[0];
	CHECK(!iapo_sgemm_swiglu_pair(o, act + mn, N), "plain packs are no pair");
done:
	for (int k = 0; k < 2; k++) {
		iapo_gemm_wpack_free(one[k]);
		iapo_gemm_wpack_free(two[k]);
	}
	free(A); free(W); free(C); free(act); free(Wh);
}

/* Gate and up packed as one pair (iapo_gemm_wpack_create_pair: their panels
 * alternate in one allocation). Each half is a pack like any other: the
 * packed path (32 and 40 rows) and the direct path (1-16 rows) read it to
 * the same bits as a plain pack; and iapo_sgemm_swiglu_pair, both halves as
 * one stream with the SwiGLU fused, gives the bits of the two products and
 * iapo_swiglu_forward, for 1-16 rows (it declines more, or plain packs). N
 * leaves a partial last panel, K odd (a bf16 pair half padding), several
 * depth slices (an override of 32) and one, 1 and 2 threads; fp32, and bf16
 * where the CPU's bf16 kernels read K-pair panels. */
static void gemm_pair(void)
{
	static const int shapes[][2] = {{37, 17}, {97, 130}, {130, 896}, {33, 1501}};
	static const int rows[] = {1, 2, 3, 5, 7, 8, 9, 12, 16, 32, 40};
	const int bf = iapo_sgemm_avx512() && __builtin_cpu_supports("avx512bf16");
	int fused[2] = {0, 0}, tries[2] = {0, 0};
	for (int kc = 0; kc <= 32; kc += 32)
		for (int th = 1; th <= 2; th++)
			for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
				for (size_t m = 0; m < sizeof rows / sizeof rows[0]; m++)
					for (int h = 0; h < 2; h++) {
						iapo_set_threads(th);
						iapo_sgemm_set_blocking(0, kc, 0);
						pair_case(rows[m], shapes[s][0], shapes[s][1], h, &fused[h], &tries[h]);
					}
	iapo_sgemm_set_blocking(0, 0, 0);
	iapo_set_threads(2);
	/* 9 of the 11 row counts are few rows (the direct path) */
	if (iapo_sgemm_avx512())
		CHECK(fused[0] == tries[0] * 9 / 11, "fp32: one stream ran %d of %d times", fused[0], tries[0]);
	if (bf) CHECK(fused[1] == tries[1] * 9 / 11, "bf16: one stream ran %d of %d times", fused[1], tries[1]);
}

/* A bf16 cache with its packs opened to decoding (iapo_kv_use_bf16, then
 * iapo_kv_pack_weights(kv, 2)) against a bf16 cache without packs, on the
 * same tokens: a ragged prefill, then steps of 8, 7, ..., 1 rows (each row
 * count its own kernel). The products are exact in both, only their order
 * differs, but each layer rounds its inputs to bf16 again, so a last-bit
 * difference can move an input by one bf16 step: logits within 1% of the
 * largest |logit| (measured 0-0.3%), and the 8-row step must differ in
 * bits (the packs are read). */
static void decode_bf16_packed(int kind)
{
	iapo_weights w;
	if (tiny_weights(kind, 5151 + kind, &w)) {
		CHECK(0, "weights");
		return;
	}
	enum { B = 8, T = 40 };
	const int V = w.cfg.V;
	iapo_kv *kp = NULL, *k16 = NULL;
	size_t bytes = 0;
	CHECK(iapo_kv_new(&w, B, T, &kp) == IAPO_OK && iapo_kv_new(&w, B, T, &k16) == IAPO_OK, "kv_new");
	CHECK(iapo_kv_use_bf16(kp, 1) == IAPO_OK && iapo_kv_use_bf16(k16, 1) == IAPO_OK, "use_bf16: %s",
	      iapo_errmsg());
	CHECK(iapo_kv_pack_weights(kp, 2, &bytes) == IAPO_OK, "pack 2: %s", iapo_errmsg());
	float *lp = malloc(sizeof(float) * B * V), *l16 = malloc(sizeof(float) * B * V);
	int toks[B][T], n[B] = {3, 5, 2, 4, 6, 1, 2, 3}, len[B] = {0};
	const int *tp[B];
	double worst = 0, range = 0;
	int differ8 = 0;
	for (int m = 9; m >= 1; m--) { /* m = 9: the prefill */
		for (int b = 0; b < B; b++) {
			if (m < 9) n[b] = b < m;
			for (int j = 0; j < n[b]; j++) toks[b][len[b] + j] = (int)iapo_rng_below(&rng, (uint64_t)V);
			tp[b] = toks[b] + len[b];
		}
		CHECK(iapo_kv_forward(kp, tp, n, lp) == IAPO_OK && iapo_kv_forward(k16, tp, n, l16) == IAPO_OK,
		      "forward: %s", iapo_errmsg());
		for (int b = 0; b < B; b++) {
			if (!n[b]) continue;
			const float *a = lp + (size_t)b * V, *r = l16 + (size_t)b * V;
			for (int v = 0; v < V; v++) {
				double d = fabs((double)a[v] - r[v]);
				worst = d > worst ? d : worst;
				range = fabs((double)r[v]) > range ? fabs((double)r[v]) : range;
			}
			len[b] += n[b];
		}
		if (m == 8) differ8 = memcmp(lp, l16, sizeof(float) * B * V) != 0;
	}
	fprintf(stderr, "  %s bf16 packed: %zu bytes of packs, max |logit diff| %.3g (%.3f%% of max |logit|)\n",
		tiny_names[kind], bytes, worst, 100 * worst / range);
	CHECK(worst <= 0.01 * range, "%s: bf16 packed vs rows: logits differ by %.3g (max |logit| %.3g)",
	      tiny_names[kind], worst, range);
	if (iapo_sgemm_avx512() && __builtin_cpu_supports("avx512bf16"))
		CHECK(differ8, "%s: the 8-row step did not read the bf16 packs", tiny_names[kind]);
	iapo_kv_free(kp);
	iapo_kv_free(k16);
	free(lp);
	free(l16);
	iapo_free_aligned(w.block);
}

/* Both readers of the bf16 packs (vdpbf16ps; fp32 FMAs on the widened
 * pairs, where the start-up probe finds vdpbf16ps slower), by the probe's
 * hook. */
static void decode_tiny_packed(void)
{
	for (int dot = 1; dot >= 0; dot--) {
		const int old = iapo_sgemm_force_bf16_dot(dot);
		for (int kind = 0; kind < TINY_NUM; kind++) decode_bf16_packed(kind);
		iapo_sgemm_force_bf16_dot(old);
	}
}

/* fp32 and bf16 caches decode the same tokens side by side. */
static void decode_family(int kind)
{
	iapo_weights w;
	if (tiny_weights(kind, 4242 + kind, &w)) {
		CHECK(0, "weights");
		return;
	}
	const int B = 4, T = 40, P = 6, V = w.cfg.V;
	iapo_kv *k32 = NULL, *k16 = NULL;
	CHECK(iapo_kv_new(&w, B, T, &k32) == IAPO_OK && iapo_kv_new(&w, B, T, &k16) == IAPO_OK, "kv_new");
	CHECK(iapo_kv_use_bf16(k16, 1) == IAPO_OK, "use_bf16: %s", iapo_errmsg());
	float *l32 = malloc(sizeof(float) * B * V), *l16 = malloc(sizeof(float) * B * V);
	int toks[4][40], n[4];
	const int *tp[4];
	for (int b = 0; b < B; b++) {
		for (int t = 0; t < P + b; t++) toks[b][t] = (int)iapo_rng_below(&rng, (uint64_t)V);
		n[b] = P + b, tp[b] = toks[b];
	}
	double worst = 0, range = 0;
	int steps = 0, checked = 0, agree = 0, bad = 0;
	for (int step = 0; step < 24; step++) {
		CHECK(iapo_kv_forward(k32, tp, n, l32) == IAPO_OK, "fp32 forward");
		CHECK(iapo_kv_forward(k16, tp, n, l16) == IAPO_OK, "bf16 forward");
		double d = 0, lo = 1e30, hi = -1e30;
		for (int i = 0; i < B * V; i++) {
			double x = fabs((double)l16[i] - l32[i]);
			d = x > d ? x : d;
			lo = l32[i] < lo ? l32[i] : lo;
			hi = l32[i] > hi ? l32[i] : hi;
		}
		worst = d > worst ? d : worst;
		range = hi - lo > range ? hi - lo : range;
		/* greedy next token of every sequence: fp32's, checked against bf16's */
		for (int b = 0; b < B; b++) {
			const float *a = l32 + (size_t)b * V, *h = l16 + (size_t)b * V;
			int t1 = 0, t2 = -1, u = 0;
			for (int v = 1; v < V; v++) {
				if (a[v] > a[t1]) t2 = t1, t1 = v;
				else if (t2 < 0 || a[v] > a[t2]) t2 = v;
				if (h[v] > h[u]) u = v;
			}
			agree += u == t1;
			if (a[t1] - a[t2] > 2 * d) {
				checked++;
				bad += u != t1;
			}
			int len = iapo_kv_len(k32, b);
			toks[b][len] = t1; /* both caches continue with fp32's token */
			tp[b] = toks[b] + len;
			n[b] = 1;
		}
		steps++;
	}
	fprintf(stderr, "  %s: max |logit diff| %.3g over a logit range %.3g (%.2f%%); greedy tokens agree %d/%d, "
		"%d steps with a clear margin\n", tiny_names[kind], worst, range, 100 * worst / range, agree, steps * B,
		checked);
	CHECK(worst <= 0.02 * range, "%s: bf16 logits differ by %.3g (range %.3g)", tiny_names[kind], worst, range);
	CHECK(worst > 0, "%s: bf16 weights were used (logits differ)", tiny_names[kind]);
	CHECK(bad == 0, "%s: %d greedy tokens differ despite a clear fp32 margin", tiny_names[kind], bad);
	CHECK(checked >= steps * B / 2, "%s: most steps have a clear margin (%d of %d)", tiny_names[kind], checked,
	      steps * B);
	iapo_kv_free(k32);
	iapo_kv_free(k16);
	free(l32);
	free(l16);
	iapo_free_aligned(w.block);
}

static void decode_tiny_models(void)
{
	for (int kind = 0; kind < TINY_NUM; kind++) decode_family(kind);
}

/* log p(tok) and the entropy of softmax(l) (V), in double. */
static void logp_entropy(const float *l, int V, int tok, double *lp, double *ent)
{
	double mx = l[0], z = 0, s = 0;
	for (int v = 1; v < V; v++) mx = l[v] > mx ? l[v] : mx;
	for (int v = 0; v < V; v++) z += exp(l[v] - mx);
	for (int v = 0; v < V; v++) {
		double p = exp(l[v] - mx) / z;
		s -= p > 0 ? p * log(p) : 0;
	}
	*lp = l[tok] - mx - log(z);
	*ent = s;
}

/* The tolerance sampling relies on (kvcache.h states it): a model with
 * Qwen2-0.5B's layer shapes whose next-token distributions are peaked like a
 * trained model's, decoded by an fp32 and a bf16 cache fed the same (fp32's
 * greedy) tokens; then iapo_generate's precision choices. */
#if defined(__SANITIZE_ADDRESS__)
#define REAL_L 1 /* the same checks, smaller, under ASan */
#define REAL_STEPS 6
#else
#define REAL_L 4
#define REAL_STEPS 24
#endif
static void real_shaped(void)
{
	iapo_weights w;
	iapo_config cfg = tiny_config(TINY_QWEN2);
	cfg.V = 4096, cfg.C = 896, cfg.L = REAL_L, cfg.NH = 14, cfg.NKV = 2, cfg.HD = 64, cfg.F = 4864;
	cfg.eos_ids[0] = cfg.V - 1;
	const iapo_config *c = &w.cfg;
	if (iapo_weights_init_random(&w, &cfg, 2024, 0.06f) != IAPO_OK) {
		CHECK(0, "weights: %s", iapo_errmsg());
		return;
	}
	/* Larger (tied) embeddings: logits spread over several nats, as a
	 * trained model's are, instead of the near-uniform ones of std 0.02. */
	float *emb = w.p.t[IAPO_P_EMBED];
	for (size_t i = 0; i < (size_t)c->V * c->C; i++) emb[i] *= 3.0f;
	const int B = 8, P = 12, V = c->V;
	iapo_kv *k32 = NULL, *k16 = NULL;
	CHECK(iapo_kv_new(&w, B, P + REAL_STEPS, &k32) == IAPO_OK && iapo_kv_new(&w, B, P + REAL_STEPS, &k16) == IAPO_OK,
	      "kv_new");
	CHECK(iapo_kv_use_bf16(k16, 1) == IAPO_OK && iapo_kv_bf16(k16) && !iapo_kv_bf16(k32), "use_bf16");
	float *l32 = malloc(sizeof(float) * B * V), *l16 = malloc(sizeof(float) * B * V);
	int toks[8][64], n[8];
	const int *tp[8];
	iapo_rng r;
	iapo_rng_seed(&r, 99, 0, 0, 0);
	for (int b = 0; b < B; b++) {
		for (int t = 0; t < P; t++) toks[b][t] = (int)iapo_rng_below(&r, (uint64_t)V);
		n[b] = P, tp[b] = toks[b];
	}
	int agree = 0, total = 0;
	double dlp = 0, dent = 0, ent_sum = 0, lp_sum = 0, dlp_sum = 0, dent_sum = 0;
	for (int step = 0; step < REAL_STEPS; step++) {
		CHECK(iapo_kv_forward(k32, tp, n, l32) == IAPO_OK && iapo_kv_forward(k16, tp, n, l16) == IAPO_OK,
		      "forward");
		for (int b = 0; b < B; b++) {
			const float *a = l32 + (size_t)b * V, *h = l16 + (size_t)b * V;
			int t32 = iapo_sample_argmax(a, V), t16 = iapo_sample_argmax(h, V);
			double lp32, lp16, e32, e16;
			logp_entropy(a, V, t32, &lp32, &e32);
			logp_entropy(h, V, t32, &lp16, &e16);
			agree += t32 == t16;
			total++;
			dlp = fmax(dlp, fabs(lp16 - lp32));
			dent = fmax(dent, fabs(e16 - e32));
			dlp_sum += fabs(lp16 - lp32);
			dent_sum += fabs(e16 - e32);
			ent_sum += e32;
			lp_sum += lp32;
			int len = iapo_kv_len(k32, b);
			toks[b][len] = t32; /* both continue with fp32's token */
			tp[b] = toks[b] + len;
			n[b] = 1;
		}
	}
	fprintf(stderr, "  real-shaped (C 896, F 4864, %d layers, V %d): fp32 entropy mean %.2f nats, greedy log-prob "
		"mean %.2f; bf16 greedy tokens agree %d/%d, |log-prob diff| max %.4f mean %.4f, |entropy diff| max %.4f "
		"mean %.4f\n", REAL_L, V, ent_sum / total, lp_sum / total, agree, total, dlp, dlp_sum / total, dent,
		dent_sum / total);
	CHECK(ent_sum / total > 0.3 && ent_sum / total < 4, "the fixture is peaked but not one-hot: entropy %.2f",
	      ent_sum / total);
	CHECK(agree >= 0.95 * total, "bf16 greedy tokens agree with fp32's at %d of %d positions (>= 95%%)", agree,
	      total);
	/* measured: 187/192 agree, log-prob and entropy differences 0.04 nats
	 * on average, 0.19-0.20 at most */
	CHECK(dlp <= 0.3 && dlp_sum / total <= 0.06,
	      "log-prob of fp32's token: bf16 differs by %.4f nats at most (<= 0.3), %.4f on average (<= 0.06)", dlp,
	      dlp_sum / total);
	CHECK(dent <= 0.3 && dent_sum / total <= 0.06,
	      "entropy: bf16 differs by %.4f nats at most (<= 0.3), %.4f on average (<= 0.06)", dent, dent_sum / total);
	CHECK(dlp > 0, "bf16 was used (log-probs differ)");

	/* iapo_generate: bf16 by default (the same tokens as asking for bf16),
	 * fp32 when asked or when entropies are asked for; a caller's cache is
	 * left in its precision. The default decodes from weight packs in a
	 * caller's cache (generate.h's pack), so the calls through their own
	 * cache ask for packs too: the same products, the same bits (rows and
	 * packs differ in rounding, which here flips greedy tokens at near
	 * ties) */
	iapo_gen_opts o;
	memset(&o, 0, sizeof o);
	o.max_new_tokens = 6;
	o.eos_ids = c->eos_ids;
	o.n_eos = 1;
	iapo_gen_result g[4][8];
	const int *pp[8];
	int pl[8];
	for (int b = 0; b < B; b++) pp[b] = toks[b], pl[b] = P;
	iapo_kv_reset(k32, 0);
	CHECK(iapo_generate(&w, pp, pl, B, &o, k32, g[0], NULL) == IAPO_OK, "default: %s", iapo_errmsg());
	CHECK(!iapo_kv_bf16(k32), "the caller's fp32 cache is fp32 again");
	o.weights = IAPO_GEN_WEIGHTS_BF16;
	o.pack = IAPO_GEN_PACK_ON;
	CHECK(iapo_generate(&w, pp, pl, B, &o, NULL, g[1], NULL) == IAPO_OK, "bf16");
	o.pack = IAPO_GEN_PACK_AUTO;
	o.weights = IAPO_GEN_WEIGHTS_FP32;
	CHECK(iapo_generate(&w, pp, pl, B, &o, k16, g[2], NULL) == IAPO_OK, "fp32");
	CHECK(iapo_kv_bf16(k16), "the caller's bf16 cache is bf16 again");
	o.weights = IAPO_GEN_WEIGHTS_AUTO;
	o.entropy_temperature = 1.0f;
	o.pack = IAPO_GEN_PACK_ON;
	CHECK(iapo_generate(&w, pp, pl, B, &o, NULL, g[3], NULL) == IAPO_OK, "auto with entropies");
	for (int b = 0; b < B; b++) {
		CHECK(g[0][b].n_tokens == g[1][b].n_tokens &&
			      !memcmp(g[0][b].tokens, g[1][b].tokens, sizeof(int) * (size_t)g[0][b].n_tokens),
		      "seq %d: default = bf16", b);
		CHECK(g[2][b].n_tokens == g[3][b].n_tokens &&
			      !memcmp(g[2][b].tokens, g[3][b].tokens, sizeof(int) * (size_t)g[2][b].n_tokens),
		      "seq %d: with entropies = fp32", b);
		/* fp32's greedy continuation is the one teacher-forced above */
		CHECK(!memcmp(g[2][b].tokens, toks[b] + P, sizeof(int) * (size_t)g[2][b].n_tokens), "seq %d: fp32 tokens",
		      b);
	}
	for (int i = 0; i < 4; i++) iapo_gen_results_free(g[i], B);
	o.weights = 3;
	CHECK(iapo_generate(&w, pp, pl, B, &o, NULL, g[0], NULL) == IAPO_ERR_ARG, "weights 3: ARG");
	iapo_kv_free(k32);
	iapo_kv_free(k16);
	free(l32);
	free(l16);
	iapo_weights_free(&w);
}

static void snapshot_and_off(void)
{
	iapo_weights w;
	if (tiny_weights(TINY_QWEN2, 77, &w)) {
		CHECK(0, "weights");
		return;
	}
	const int V = w.cfg.V;
	iapo_kv *kv = NULL, *ref = NULL;
	CHECK(iapo_kv_new(&w, 1, 16, &kv) == IAPO_OK && iapo_kv_new(&w, 1, 16, &ref) == IAPO_OK, "kv_new");
	int toks[5] = {1, 5, 9, 2, 7}, n = 5;
	const int *tp[1] = {toks};
	float *a = malloc(sizeof(float) * V), *b = malloc(sizeof(float) * V), *c = malloc(sizeof(float) * V);
	CHECK(iapo_kv_use_bf16(kv, 1) == IAPO_OK, "on");
	/* change every weight: the snapshot keeps the old ones */
	size_t np = iapo_param_count(&w.cfg);
	for (size_t i = 0; i < np; i++) w.block[i] *= 1.1f;
	iapo_kv_forward(kv, tp, &n, a);
	iapo_kv_forward(ref, tp, &n, b); /* fp32, new weights */
	iapo_kv_reset(kv, 0);
	CHECK(iapo_kv_use_bf16(kv, 1) == IAPO_OK, "refresh");
	iapo_kv_forward(kv, tp, &n, c);
	double stale = test_max_rel_err(a, b, (size_t)V), fresh = test_max_rel_err(c, b, (size_t)V);
	CHECK(stale > 4 * fresh, "stale copy %.3g vs refreshed %.3g (relative to fp32)", stale, fresh);
	iapo_kv_reset(kv, 0);
	CHECK(iapo_kv_use_bf16(kv, 0) == IAPO_OK, "off");
	iapo_kv_forward(kv, tp, &n, a);
	CHECK(!memcmp(a, b, sizeof(float) * V), "off: fp32 bit for bit");
	iapo_kv_free(kv);
	iapo_kv_free(ref);
	free(a); free(b); free(c);
	iapo_free_aligned(w.block);
}

int main(void)
{
	iapo_rng_seed(&rng, 11, 0, 0, 0);
	iapo_set_threads(2);
	(void)tiny_full_logits; /* the shared header's oracle; this test compares two caches */
	RUN(rounding);
	RUN(real_shaped);
	RUN(gemm_bf16);
	RUN(gemm_bf16_pack);
	RUN(gemm_pair);
	RUN(decode_tiny_models);
	RUN(decode_tiny_packed);
	RUN(snapshot_and_off);
	TEST_END();
}
