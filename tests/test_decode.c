/*
 * test_decode.c — batched incremental decoding through the KV cache against
 * the training forward of each whole sequence, for tiny random Qwen2, Llama
 * (GQA, untied, Llama 3 rope) and Qwen3 (q/k norm) models: ragged prefill,
 * decode steps, sequences idling (n = 0) while others advance or joining late,
 * multi-token appends mid-sequence, prefills larger than one chunk; the
 * two-span rows of the IAPO information pass (a cached prefix plus a postfix
 * stored in another slot); decoding from the weight packs
 * (iapo_kv_pack_weights(kv, 2)); the fp32 decoding products' summation
 * order, bit for bit; argument errors that must change nothing; no
 * allocation inside a forward.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "kernels/gemm.h"
#include "model/kvcache.h"
#include "test.h"
#include "test_decode_models.h"

#define TOL 1e-4

typedef struct {
	iapo_weights w;
	iapo_fwd *f;
	float *ref, *all;
	int Tmax;
} fixture;

static int fixture_open(fixture *x, int kind, int Tmax)
{
	if (tiny_weights(kind, 1000 + kind, &x->w)) return -1;
	x->Tmax = Tmax;
	if (iapo_fwd_new_params(&x->w.cfg, &x->w.p, 1, Tmax, 0, &x->f) != IAPO_OK) return -1;
	x->ref = malloc(sizeof(float) * x->w.cfg.V);
	x->all = malloc(sizeof(float) * (size_t)Tmax * x->w.cfg.V);
	return 0;
}

static void fixture_close(fixture *x)
{
	iapo_fwd_free(x->f);
	iapo_free_aligned(x->w.block);
	free(x->ref);
	free(x->all);
}

/* One step: append n[b] tokens drawn from rng to each sequence, compare. */
static double step(fixture *x, iapo_kv *kv, int **seq, int *len, const int *n, iapo_rng *r, float *logits,
		   const char *what)
{
	const int B = iapo_kv_slots(kv), V = x->w.cfg.V;
	const int *tok[8];
	for (int b = 0; b < B; b++) {
		for (int j = 0; j < n[b]; j++) seq[b][len[b] + j] = (int)iapo_rng_below(r, (uint64_t)V);
		tok[b] = seq[b] + len[b];
	}
	for (size_t i = 0; i < (size_t)B * V; i++) logits[i] = 12345.0f; /* sentinel */
	unsigned long allocs = iapo_mem_alloc_count();
	iapo_status st = iapo_kv_forward(kv, tok, n, logits);
	CHECK(st == IAPO_OK, "%s: %s", what, iapo_errmsg());
	CHECK(iapo_mem_alloc_count() == allocs, "%s: the forward allocated %lu times", what,
	      iapo_mem_alloc_count() - allocs);
	double worst = 0;
	for (int b = 0; b < B; b++) {
		len[b] += n[b];
		CHECK(iapo_kv_len(kv, b) == len[b], "%s: length of %d: %d vs %d", what, b, iapo_kv_len(kv, b), len[b]);
		if (n[b] == 0) {
			int kept = 1;
			for (int v = 0; v < V; v++) kept &= logits[(size_t)b * V + v] == 12345.0f;
			CHECK(kept, "%s: idle sequence %d's logits row was written", what, b);
			continue;
		}
		if (tiny_full_logits(&x->w, x->f, seq[b], len[b], x->ref, x->all)) {
			CHECK(0, "%s: full forward failed: %s", what, iapo_errmsg());
			continue;
		}
		double e = test_max_rel_err(logits + (size_t)b * V, x->ref, (size_t)V);
		if (e > worst) worst = e;
		CHECK(e <= TOL, "%s: sequence %d at length %d: max rel err %.3g", what, b, len[b], e);
	}
	return worst;
}

static void ragged_for(int kind)
{
	fixture x;
	const int B = 3, Tmax = 48;
	if (fixture_open(&x, kind, Tmax)) {
		CHECK(0, "%s: setup: %s", tiny_names[kind], iapo_errmsg());
		return;
	}
	iapo_kv *kv = NULL;
	CHECK(iapo_kv_new(&x.w, B, Tmax, &kv) == IAPO_OK, "kv_new: %s", iapo_errmsg());
	if (!kv) {
		fixture_close(&x);
		return;
	}
	const int V = x.w.cfg.V;
	float *logits = malloc(sizeof(float) * B * V);
	int *seq[3], len[3] = {0};
	for (int b = 0; b < B; b++) seq[b] = malloc(sizeof(int) * Tmax);
	iapo_rng r;
	iapo_rng_seed(&r, 5, (uint64_t)kind, 0, 0);
	char what[64];
	/* ragged prefill; sequence 1 waits */
	int steps[][3] = {
		{5, 0, 9},  /* prefill two */
		{1, 0, 1},  /* decode while 1 idles */
		{1, 7, 1},  /* 1 joins with its prompt while the others decode */
		{1, 1, 1},
		{0, 1, 1},  /* 0 idles */
		{3, 1, 0},  /* several tokens appended mid-sequence */
		{1, 1, 1},
		{1, 1, 1},
		{1, 0, 2},
		{1, 1, 1},
	};
	double worst = 0;
	for (size_t s = 0; s < sizeof steps / sizeof steps[0]; s++) {
		snprintf(what, sizeof what, "%s step %zu", tiny_names[kind], s);
		double e = step(&x, kv, seq, len, steps[s], &r, logits, what);
		if (e > worst) worst = e;
	}
	/* reset one sequence and start it again: same logits as a fresh one */
	iapo_kv_reset(kv, 2);
	len[2] = 0;
	CHECK(iapo_kv_len(kv, 2) == 0, "reset");
	int again[3] = {1, 0, 4};
	snprintf(what, sizeof what, "%s after reset", tiny_names[kind]);
	double e = step(&x, kv, seq, len, again, &r, logits, what);
	if (e > worst) worst = e;
	fprintf(stderr, "  %s: max rel err %.2g\n", tiny_names[kind], worst);
	for (int b = 0; b < B; b++) free(seq[b]);
	free(logits);
	iapo_kv_free(kv);
	fixture_close(&x);
}

static void test_ragged_qwen2(void) { ragged_for(TINY_QWEN2); }
static void test_ragged_llama(void) { ragged_for(TINY_LLAMA); }
static void test_ragged_qwen3(void) { ragged_for(TINY_QWEN3); }

/* Prefill of 3 x 300 rows runs in several chunks of at most 512 rows, and a
 * single chunk boundary falls inside a sequence. */
static void test_chunked_prefill(void)
{
	fixture x;
	const int B = 3, Tmax = 320;
	if (fixture_open(&x, TINY_QWEN2, Tmax)) {
		CHECK(0, "setup: %s", iapo_errmsg());
		return;
	}
	iapo_kv *kv = NULL;
	CHECK(iapo_kv_new(&x.w, B, Tmax, &kv) == IAPO_OK, "kv_new: %s", iapo_errmsg());
	if (!kv) {
		fixture_close(&x);
		return;
	}
	CHECK(iapo_kv_max_rows(kv) < 3 * 300, "the prefill must need several chunks (max rows %d)",
	      iapo_kv_max_rows(kv));
	const int V = x.w.cfg.V;
	float *logits = malloc(sizeof(float) * B * V);
	int *seq[3], len[3] = {0};
	for (int b = 0; b < B; b++) seq[b] = malloc(sizeof(int) * Tmax);
	iapo_rng r;
	iapo_rng_seed(&r, 9, 0, 0, 0);
	int pre[3] = {300, 290, 310}, dec[3] = {1, 1, 1};
	step(&x, kv, seq, len, pre, &r, logits, "chunked prefill");
	step(&x, kv, seq, len, dec, &r, logits, "decode after chunked prefill");
	for (int b = 0; b < B; b++) free(seq[b]);
	free(logits);
	iapo_kv_free(kv);
	fixture_close(&x);
}

/* Decoding from the weight packs (iapo_kv_pack_weights(kv, 2)): products
 * of at most 8 rows read the fp32 panels (gemm.c's dotp_*) instead of the
 * weights' rows. Every step against the full forward, with 8 slots and 8,
 * 7, ..., 1 rows a step (each row count its own kernel), under a depth-slice
 * override of 32 (several slices a product, every thread, so pieces that
 * start inside a panel) and under the default blocking; the vocabularies
 * (97, 111) leave a partial last panel. The rows read the packs: their
 * logits differ in rounding from a cache packed with on = 1. The 8-row step
 * reads gate's and up's packs as one pair with the SwiGLU fused
 * (iapo_sgemm_swiglu_pair): the same bits as two products and a SwiGLU
 * pass (iapo_kv_pair_swiglu(0)). */
static void packed_for(int kind, int kc)
{
	fixture x;
	enum { B = 8, Tmax = 40 };
	if (fixture_open(&x, kind, Tmax)) {
		CHECK(0, "%s: setup: %s", tiny_names[kind], iapo_errmsg());
		return;
	}
	iapo_sgemm_set_blocking(0, kc, 0);
	iapo_kv *kv = NULL, *kv1 = NULL;
	size_t bytes = 0;
	CHECK(iapo_kv_new(&x.w, B, Tmax, &kv) == IAPO_OK && iapo_kv_new(&x.w, B, Tmax, &kv1) == IAPO_OK, "kv_new: %s",
	      iapo_errmsg());
	CHECK(kv && iapo_kv_pack_weights(kv, 2, &bytes) == IAPO_OK, "pack 2: %s", iapo_errmsg());
	CHECK(kv1 && iapo_kv_pack_weights(kv1, 1, NULL) == IAPO_OK, "pack 1: %s", iapo_errmsg());
	const int V = x.w.cfg.V;
	float *logits = malloc(sizeof(float) * B * V), *l1 = malloc(sizeof(float) * B * V);
	int *seq[B], len[B] = {0};
	for (int b = 0; b < B; b++) seq[b] = malloc(sizeof(int) * Tmax);
	iapo_rng r;
	iapo_rng_seed(&r, 21, (uint64_t)kind, 0, 0);
	char what[80];
	int n[B] = {3, 5, 2, 4, 6, 1, 2, 3}; /* a ragged prefill of 26 rows: the packed path */
	snprintf(what, sizeof what, "%s kc %d prefill", tiny_names[kind], kc);
	double worst = kv ? step(&x, kv, seq, len, n, &r, logits, what) : 1;
	for (int m = 8; m >= 1 && kv; m--) { /* m rows a step */
		for (int b = 0; b < B; b++) n[b] = b < m;
		snprintf(what, sizeof what, "%s kc %d, %d rows", tiny_names[kind], kc, m);
		double e = step(&x, kv, seq, len, n, &r, logits, what);
		worst = e > worst ? e : worst;
	}
	/* the same 8 sequences through the on = 1 cache, one step at a time */
	int differ = 0;
	if (kv && kv1) {
		const int *tok[B];
		for (int b = 0; b < B; b++) {
			tok[b] = seq[b];
			n[b] = len[b] - 1;
		}
		CHECK(iapo_kv_forward(kv1, tok, n, l1) == IAPO_OK, "on = 1 prefill: %s", iapo_errmsg());
		for (int b = 0; b < B; b++) {
			iapo_kv_reset(kv, b);
			tok[b] = seq[b];
		}
		CHECK(iapo_kv_forward(kv, tok, n, logits) == IAPO_OK, "on = 2 prefill: %s", iapo_errmsg());
		for (int b = 0; b < B; b++) {
			tok[b] = seq[b] + len[b] - 1;
			n[b] = 1;
		}
		CHECK(iapo_kv_forward(kv1, tok, n, l1) == IAPO_OK && iapo_kv_forward(kv, tok, n, logits) == IAPO_OK,
		      "8-row step: %s", iapo_errmsg());
		differ = memcmp(logits, l1, sizeof(float) * B * V) != 0;
		double e = test_max_rel_err(logits, l1, (size_t)B * V);
		CHECK(e <= TOL, "%s kc %d: on = 2 vs on = 1: max rel err %.3g", tiny_names[kind], kc, e);
		/* the step again with gate and up as two products and a SwiGLU
		 * pass (not one stream): the same bits */
		const int was = iapo_kv_pair_swiglu(0);
		for (int b = 0; b < B; b++) {
			iapo_kv_reset(kv, b);
			tok[b] = seq[b];
			n[b] = len[b] - 1;
		}
		CHECK(iapo_kv_forward(kv, tok, n, l1) == IAPO_OK, "two products: prefill: %s", iapo_errmsg());
		for (int b = 0; b < B; b++) {
			tok[b] = seq[b] + len[b] - 1;
			n[b] = 1;
		}
		CHECK(iapo_kv_forward(kv, tok, n, l1) == IAPO_OK, "two products: 8-row step: %s", iapo_errmsg());
		iapo_kv_pair_swiglu(was);
		CHECK(memcmp(logits, l1, sizeof(float) * B * V) == 0, "%s kc %d: gate/up as one stream vs two products: "
		      "other bits (max rel err %.3g)", tiny_names[kind], kc, test_max_rel_err(logits, l1, (size_t)B * V));
	}
	/* the packs hold panels only on gemm.c's AVX-512 paths */
	if (iapo_sgemm_avx512())
		CHECK(differ, "%s kc %d: the 8-row step did not read the packs (same bits as on = 1)", tiny_names[kind], kc);
	fprintf(stderr, "  packed %s kc %d: %zu bytes of packs, max rel err %.2g\n", tiny_names[kind], kc, bytes, worst);
	iapo_sgemm_set_blocking(0, 0, 0);
	for (int b = 0; b < B; b++) free(seq[b]);
	free(logits);
	free(l1);
	iapo_kv_free(kv);
	iapo_kv_free(kv1);
	fixture_close(&x);
}

static void test_packed_weights(void)
{
	for (int kind = 0; kind < TINY_NUM; kind++) {
		packed_for(kind, 32);
		packed_for(kind, 0);
	}
}

/* The order in which gemm.c's direct path sums x W^T for 8 rows of A (the
 * decoding shape), modelled in scalar code: per depth slice, 16 lanes over
 * k in steps of 16 (fused multiply-adds, the tail's missing lanes as 0 * 0),
 * each lane group of 4 added (l0 + l2) + (l1 + l3), the four groups
 * (g0 + g1) + (g2 + g3), times alpha, then the epilogue (the first slice)
 * or the sum so far (the next ones). The slices are gemm.c's: at most 1024
 * deep for 8 rows, 1024 * 8 / M rounded down to 32 for more, of equal
 * length rounded up to 32. */
static float rows_order_ref(const iapo_gemm_op *op, const float *C0, int i, int j)
{
	const int K = op->K, M = op->M;
	const float *a = op->A + (long)i * op->lda, *w = op->B + (long)j * op->ldb;
	const long k8 = M <= 8 ? 1024 : (1024 * 8 / M >= 64 ? 1024 * 8 / M / 32 * 32 : 32);
	const long nslice = (K + k8 - 1) / k8, kc = ((K + nslice - 1) / nslice + 31) / 32 * 32;
	float c = 0.0f;
	for (long k0 = 0; k0 < K; k0 += kc) {
		const long kk = K - k0 < kc ? K - k0 : kc;
		float lane[16] = {0};
		for (long k = 0; k < kk; k += 16)
			for (int l = 0; l < 16; l++) {
				const int in = k + l < kk;
				lane[l] = fmaf(in ? a[k0 + k + l] : 0.0f, in ? w[k0 + k + l] : 0.0f, lane[l]);
			}
		float g[4];
		for (int q = 0; q < 4; q++) g[q] = (lane[4 * q] + lane[4 * q + 2]) + (lane[4 * q + 1] + lane[4 * q + 3]);
		float v = ((g[0] + g[1]) + (g[2] + g[3])) * op->alpha;
		if (k0 > 0) {
			v += c;
		} else {
			if (op->bias) v += op->bias[j];
			if (op->R) v += op->R[(long)i * op->ldr + j];
			else if (op->beta != 0.0f) v += op->beta * C0[(long)i * op->ldc + j];
		}
		c = v;
	}
	return c;
}

/* x W^T with 8-16 rows, the fp32 decoding products: the first 8 rows of C
 * have rows_order_ref's bits, whichever block of W's rows (dot_8x3,
 * dot_8x2, dot_8x1) took each column and however the columns were split
 * between threads (except the last column of an odd N, which the 4-row
 * kernel sums in another order, checked to a tolerance). Fails when a
 * block kernel sums another way (checked: dot_8x3 with two of its third
 * column's accumulators swapped, and with its tail dropped). */
static void test_rows_order(void)
{
	if (!iapo_sgemm_avx512()) return; /* the portable path has its own order */
	static const int Ms[] = {8, 12, 16}, Ns[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 97, 128, 301};
	static const int Ks[] = {1, 15, 16, 17, 33, 100, 896, 1025, 2049};
	const int saved = iapo_get_threads();
	iapo_rng r;
	iapo_rng_seed(&r, 5, 0, 0, 0);
	long checked = 0;
	for (int th = 1; th <= 4; th++) {
		iapo_set_threads(th);
		for (size_t mi = 0; mi < sizeof Ms / sizeof *Ms; mi++)
			for (size_t ni = 0; ni < sizeof Ns / sizeof *Ns; ni++)
				for (size_t ki = 0; ki < sizeof Ks / sizeof *Ks; ki++)
					for (int ep = 0; ep < 4; ep++) {
						const int M = Ms[mi], N = Ns[ni], K = Ks[ki], lda = K + 3, ldb = K + 5, ldc = N + 2;
						float *A = malloc(sizeof(float) * M * lda), *W = malloc(sizeof(float) * N * ldb);
						float *C = malloc(sizeof(float) * M * ldc), *C0 = malloc(sizeof(float) * M * ldc);
						float *R = malloc(sizeof(float) * M * ldc), *bias = malloc(sizeof(float) * N);
						if (!A || !W || !C || !C0 || !R || !bias) {
							CHECK(0, "out of memory");
							return;
						}
						for (long i = 0; i < (long)M * lda; i++) A[i] = iapo_rng_float(&r) * 2.0f - 1.0f;
						for (long i = 0; i < (long)N * ldb; i++) W[i] = iapo_rng_float(&r) * 2.0f - 1.0f;
						for (long i = 0; i < (long)M * ldc; i++) {
							C[i] = C0[i] = iapo_rng_float(&r) * 2.0f - 1.0f;
							R[i] = iapo_rng_float(&r) * 2.0f - 1.0f;
						}
						for (int j = 0; j < N; j++) bias[j] = iapo_rng_float(&r) * 2.0f - 1.0f;
						/* 0: alpha 1, beta 0; 1: beta 0.5; 2: R and bias; 3: alpha 0.75 and bias */
						iapo_gemm_op op = {.transB = 1, .M = M, .N = N, .K = K, .alpha = ep == 3 ? 0.75f : 1.0f,
								   .beta = ep == 1 ? 0.5f : 0.0f, .A = A, .lda = lda, .B = W, .ldb = ldb,
								   .C = C, .ldc = ldc, .R = ep == 2 ? R : NULL, .ldr = ldc,
								   .bias = ep >= 2 ? bias : NULL};
						iapo_sgemm_batch(1, &op);
						int bad = 0;
						for (int i = 0; i < 8 && !bad; i++)
							for (int j = 0; j < N && !bad; j++) {
								const float want = rows_order_ref(&op, C0, i, j);
								const float got = C[i * ldc + j];
								if (j == N - 1 && (N & 1)) {
									bad = !(fabsf(got - want) <= 1e-5f * (1.0f + fabsf(want)));
								} else {
									bad = memcmp(&got, &want, sizeof got) != 0;
								}
								if (bad)
									CHECK(0, "threads %d M %d N %d K %d epilogue %d: C[%d][%d] = %.9g, order %.9g",
									      th, M, N, K, ep, i, j, got, want);
								checked++;
							}
						free(A);
						free(W);
						free(C);
						free(C0);
						free(R);
						free(bias);
					}
	}
	iapo_set_threads(saved);
	fprintf(stderr, "  rows order: %ld sums checked\n", checked);
}

/* The information-pass pattern: slot 0 holds prompt + completion; for
 * several cut points t, K postfix tokens at positions t..t+K-1 attend to
 * slot 0's first t keys plus their own postfix (stored in slot 1 at j*K..),
 * all in one call; each last postfix row's logits equal a full forward of
 * seq[0..t) + postfix. */
static void test_two_span_rows(void)
{
	for (int kind = 0; kind < TINY_NUM; kind++) {
		fixture x;
		const int Tmax = 40, K = 3, P = 24;
		if (fixture_open(&x, kind, Tmax)) {
			CHECK(0, "setup: %s", iapo_errmsg());
			return;
		}
		iapo_kv *kv = NULL;
		CHECK(iapo_kv_new(&x.w, 2, Tmax, &kv) == IAPO_OK, "kv_new: %s", iapo_errmsg());
		if (!kv) {
			fixture_close(&x);
			return;
		}
		const int V = x.w.cfg.V;
		iapo_rng r;
		iapo_rng_seed(&r, 31, (uint64_t)kind, 0, 0);
		int seq[40], post[3];
		for (int i = 0; i < P; i++) seq[i] = (int)iapo_rng_below(&r, (uint64_t)V);
		for (int i = 0; i < K; i++) post[i] = (int)iapo_rng_below(&r, (uint64_t)V);
		const int *tok[2] = {seq, NULL};
		int n[2] = {P, 0};
		float *lg = malloc(sizeof(float) * 2 * V);
		CHECK(iapo_kv_forward(kv, tok, n, lg) == IAPO_OK, "fill: %s", iapo_errmsg());
		int cuts[] = {1, 4, 11, 17, 24};
		const int NC = 5;
		iapo_kv_row rows[5 * 3];
		for (int j = 0; j < NC; j++)
			for (int i = 0; i < K; i++) {
				iapo_kv_row *w = &rows[j * K + i];
				w->token = post[i];
				w->pos = cuts[j] + i;
				w->seq = 1;
				w->slot = j * K + i;
				w->keys = (iapo_kv_keys){.seq0 = 0, .len0 = cuts[j], .seq1 = 1, .start1 = j * K, .len1 = i + 1};
				w->out = i == K - 1 ? j : -1;
			}
		float *out = malloc(sizeof(float) * NC * V);
		CHECK(iapo_kv_forward_rows(kv, rows, NC * K, out) == IAPO_OK, "rows: %s", iapo_errmsg());
		CHECK(iapo_kv_len(kv, 0) == P && iapo_kv_len(kv, 1) == 0, "forward_rows must not change lengths");
		for (int j = 0; j < NC; j++) {
			int full[40];
			memcpy(full, seq, sizeof(int) * cuts[j]);
			memcpy(full + cuts[j], post, sizeof(int) * K);
			if (tiny_full_logits(&x.w, x.f, full, cuts[j] + K, x.ref, x.all)) {
				CHECK(0, "full forward: %s", iapo_errmsg());
				continue;
			}
			double e = test_max_rel_err(out + (size_t)j * V, x.ref, (size_t)V);
			CHECK(e <= TOL, "%s: cut %d: max rel err %.3g", tiny_names[kind], cuts[j], e);
		}
		free(out);
		free(lg);
		iapo_kv_free(kv);
		fixture_close(&x);
	}
}

/* A NaN in the weights comes out as NaN logits, not as undefined behaviour:
 * every score of a NaN row is NaN, so attention's running-max correction
 * exp(m - max) takes a NaN, whose bits once made a signed left shift
 * overflow in kvcache.c's exp_nonpos (UBSan stops the ASan build on it). */
static void test_nan_weights(void)
{
	fixture x;
	if (fixture_open(&x, TINY_QWEN2, 16)) {
		CHECK(0, "setup: %s", iapo_errmsg());
		return;
	}
	const int V = x.w.cfg.V, C = x.w.cfg.C;
	for (int j = 0; j < C; j++) x.w.p.t[IAPO_P_EMBED][(size_t)5 * C + j] = NAN;
	iapo_kv *kv = NULL;
	CHECK(iapo_kv_new(&x.w, 1, 8, &kv) == IAPO_OK, "kv_new: %s", iapo_errmsg());
	if (!kv) {
		fixture_close(&x);
		return;
	}
	float *lg = malloc(sizeof(float) * V);
	int a[4] = {1, 5, 2, 3}, n[1] = {4};
	const int *tok[1] = {a};
	CHECK(iapo_kv_forward(kv, tok, n, lg) == IAPO_OK, "%s", iapo_errmsg());
	int nan = 0;
	for (int v = 0; v < V; v++) nan += isnan(lg[v]) != 0;
	CHECK(nan == V, "a NaN embedding read by attention: %d of %d logits NaN", nan, V);
	free(lg);
	iapo_kv_free(kv);
	fixture_close(&x);
}

static void test_errors(void)
{
	fixture x;
	if (fixture_open(&x, TINY_QWEN2, 16)) {
		CHECK(0, "setup: %s", iapo_errmsg());
		return;
	}
	iapo_kv *kv = NULL;
	CHECK(iapo_kv_new(&x.w, 2, 8, &kv) == IAPO_OK, "kv_new: %s", iapo_errmsg());
	if (!kv) {
		fixture_close(&x);
		return;
	}
	const int V = x.w.cfg.V;
	float *lg = malloc(sizeof(float) * 2 * V);
	int a[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, bad[2] = {3, 97};
	const int *tok[2] = {a, a};
	int n[2] = {6, 2};
	CHECK(iapo_kv_forward(kv, tok, n, lg) == IAPO_OK, "%s", iapo_errmsg());
	int n2[2] = {1, 7};
	CHECK(iapo_kv_forward(kv, tok, n2, lg) == IAPO_ERR_ARG, "past Tmax must fail");
	CHECK(strstr(iapo_errmsg(), "Tmax") != NULL, "message names Tmax: %s", iapo_errmsg());
	CHECK(iapo_kv_len(kv, 0) == 6 && iapo_kv_len(kv, 1) == 2, "a failed call changes nothing");
	const int *tok2[2] = {a, bad};
	int n3[2] = {1, 2};
	CHECK(iapo_kv_forward(kv, tok2, n3, lg) == IAPO_ERR_ARG, "token out of range must fail");
	CHECK(iapo_kv_len(kv, 0) == 6, "a failed call changes nothing");
	iapo_kv_row row = {.token = 1, .pos = 0, .seq = 2, .slot = 0, .keys = {.seq0 = 0, .len0 = 1}, .out = -1};
	CHECK(iapo_kv_forward_rows(kv, &row, 1, NULL) == IAPO_ERR_ARG, "slot sequence out of range");
	row.seq = 0;
	row.keys.len0 = 9;
	CHECK(iapo_kv_forward_rows(kv, &row, 1, NULL) == IAPO_ERR_ARG, "keys beyond Tmax");
	row.keys.len0 = 0;
	CHECK(iapo_kv_forward_rows(kv, &row, 1, NULL) == IAPO_ERR_ARG, "no keys");
	row.keys.len0 = 1;
	row.out = 0;
	CHECK(iapo_kv_forward_rows(kv, &row, 1, NULL) == IAPO_ERR_ARG, "logits wanted without a buffer");
	iapo_kv *k2 = NULL;
	CHECK(iapo_kv_new(&x.w, 0, 8, &k2) == IAPO_ERR_ARG && !k2, "B = 0");
	/* allocation failures inside kv_new are reported and leak nothing */
	for (unsigned long i = 1; i < 30; i++) {
		iapo_mem_fail_after(i);
		iapo_status st = iapo_kv_new(&x.w, 2, 8, &k2);
		iapo_mem_fail_after(0);
		if (st == IAPO_OK) {
			iapo_kv_free(k2);
			break;
		}
		CHECK(st == IAPO_ERR_NOMEM && !k2, "allocation %lu: status %d", i, st);
	}
	free(lg);
	iapo_kv_free(kv);
	fixture_close(&x);
}

int main(void)
{
	RUN(test_ragged_qwen2);
	RUN(test_ragged_llama);
	RUN(test_ragged_qwen3);
	RUN(test_chunked_prefill);
	RUN(test_packed_weights);
	RUN(test_rows_order);
	RUN(test_two_span_rows);
	RUN(test_nan_weights);
	RUN(test_errors);
	TEST_END();
}
