/*
 * test_kernels.c — every fast kernel (src/kernels/cpu.c) against its plain
 * reference twin (src/kernels/ref.c) on odd sizes: M=1, sizes that are not
 * multiples of 16, ragged attention sequences with GQA, accumulate and
 * overwrite modes. Plus hand-computed values for RoPE's inverse frequencies
 * (default and Llama 3 scaling) so the formula itself is pinned, not only the
 * agreement of two implementations. Gradients are checked in test_gradcheck_kernels.c.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
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

static float *dup(const float *a, size_t n)
{
	float *p = malloc(sizeof(float) * (n ? n : 1));
	memcpy(p, a, sizeof(float) * n);
	return p;
}

static void matmuls(void)
{
	int sizes[][3] = {{1, 1, 1}, {1, 17, 33}, {5, 1, 7}, {13, 29, 31}, {33, 65, 17}, {64, 48, 100}};
	for (size_t t = 0; t < sizeof sizes / sizeof sizes[0]; t++) {
		int M = sizes[t][0], N = sizes[t][1], K = sizes[t][2];
		for (int acc = 0; acc < 2; acc++) {
			float *A = rnd((size_t)M * K, 1), *Bt = rnd((size_t)N * K, 1), *Bn = rnd((size_t)K * N, 1);
			float *At = rnd((size_t)K * M, 1), *C0 = rnd((size_t)M * N, 1);
			float *c1 = dup(C0, (size_t)M * N), *c2 = dup(C0, (size_t)M * N);
			char what[64];
			iapo_matmul_nt(c1, A, Bt, M, N, K, acc);
			iapo_ref_matmul_nt(c2, A, Bt, M, N, K, acc);
			snprintf(what, sizeof what, "nt %dx%dx%d acc=%d", M, N, K, acc);
			CHECK(test_max_rel_err(c1, c2, (size_t)M * N) < 1e-5, "%s: %g", what, test_max_rel_err(c1, c2, (size_t)M * N));
			memcpy(c1, C0, sizeof(float) * M * N);
			memcpy(c2, C0, sizeof(float) * M * N);
			iapo_matmul_nn(c1, A, Bn, M, N, K, acc);
			iapo_ref_matmul_nn(c2, A, Bn, M, N, K, acc);
			CHECK(test_max_rel_err(c1, c2, (size_t)M * N) < 1e-5, "nn %dx%dx%d acc=%d", M, N, K, acc);
			memcpy(c1, C0, sizeof(float) * M * N);
			memcpy(c2, C0, sizeof(float) * M * N);
			iapo_matmul_tn(c1, At, Bn, M, N, K, acc);
			iapo_ref_matmul_tn(c2, At, Bn, M, N, K, acc);
			CHECK(test_max_rel_err(c1, c2, (size_t)M * N) < 1e-5, "tn %dx%dx%d acc=%d", M, N, K, acc);
			/* a hand value: first element of nt without accumulate */
			if (!acc) {
				double s = 0;
				for (int k = 0; k < K; k++) s += (double)A[k] * Bt[k];
				iapo_matmul_nt(c1, A, Bt, M, N, K, 0);
				CHECK_NEAR(c1[0], s, 1e-5, "nt[0,0]");
			}
			free(A); free(Bt); free(Bn); free(At); free(C0); free(c1); free(c2);
		}
	}
}

static void rmsnorm(void)
{
	int shapes[][2] = {{1, 1}, {1, 17}, {7, 33}, {40, 100}};
	for (size_t t = 0; t < 4; t++) {
		int N = shapes[t][0], C = shapes[t][1];
		float *x = rnd((size_t)N * C, 2), *w = rnd(C, 1), *dy = rnd((size_t)N * C, 1);
		float *o1 = rnd((size_t)N * C, 1), *o2 = rnd((size_t)N * C, 1), r1[40], r2[40];
		iapo_rmsnorm_forward(o1, r1, x, w, N, C, 1e-6f);
		iapo_ref_rmsnorm_forward(o2, r2, x, w, N, C, 1e-6f);
		CHECK(test_max_rel_err(o1, o2, (size_t)N * C) < 1e-5, "rmsnorm fwd N=%d C=%d", N, C);
		CHECK(test_max_rel_err(r1, r2, N) < 1e-5, "rstd N=%d C=%d", N, C);
		/* hand value: row 0 */
		double ss = 0;
		for (int c = 0; c < C; c++) ss += (double)x[c] * x[c];
		CHECK_NEAR(o1[0], x[0] / sqrt(ss / C + 1e-6) * w[0], 1e-5, "rmsnorm[0]");
		float *dx1 = rnd((size_t)N * C, 1), *dx2 = dup(dx1, (size_t)N * C), *dw1 = rnd(C, 1), *dw2 = dup(dw1, C);
		iapo_rmsnorm_backward(dx1, dw1, dy, x, w, r1, N, C);
		iapo_ref_rmsnorm_backward(dx2, dw2, dy, x, w, r1, N, C);
		CHECK(test_max_rel_err(dx1, dx2, (size_t)N * C) < 1e-5, "rmsnorm dx N=%d C=%d", N, C);
		CHECK(test_max_rel_err(dw1, dw2, C) < 1e-5, "rmsnorm dw N=%d C=%d", N, C);
		iapo_rmsnorm_forward(o1, NULL, x, w, N, C, 1e-6f); /* rstd optional */
		CHECK(test_max_rel_err(o1, o2, (size_t)N * C) < 1e-5, "rmsnorm fwd without rstd");
		free(x); free(w); free(dy); free(o1); free(o2); free(dx1); free(dx2); free(dw1); free(dw2);
	}
}

static void rope(void)
{
	iapo_config cfg = {0};
	cfg.HD = 8;
	cfg.rope_theta = 10000.0f;
	float f[4];
	iapo_rope_inv_freq(&cfg, f);
	for (int i = 0; i < 4; i++) CHECK_NEAR(f[i], pow(10000.0, -2.0 * i / 8), 1e-6, "inv_freq");
	/* Llama 3 scaling, by hand: factor 8, low 1, high 4, original 8192 on HD=128, theta 500000. */
	cfg.HD = 128;
	cfg.rope_theta = 500000.0f;
	cfg.rope_kind = IAPO_ROPE_LLAMA3;
	cfg.rope_factor = 8;
	cfg.rope_low_freq_factor = 1;
	cfg.rope_high_freq_factor = 4;
	cfg.rope_orig_max_pos = 8192;
	float g[64];
	iapo_rope_inv_freq(&cfg, g);
	int n_hi = 0, n_lo = 0, n_mid = 0;
	for (int i = 0; i < 64; i++) {
		double base = pow(500000.0, -2.0 * i / 128), wl = 2 * M_PI / base, want;
		if (wl < 8192.0 / 4) want = base, n_hi++;
		else if (wl > 8192.0) want = base / 8, n_lo++;
		else {
			double sm = (8192.0 / wl - 1) / (4 - 1);
			want = (1 - sm) * base / 8 + sm * base;
			n_mid++;
		}
		CHECK(fabs(g[i] - want) <= 2e-6 * want, "llama3 inv_freq[%d] %g vs %g", i, g[i], want);
	}
	CHECK(n_hi > 0 && n_lo > 0 && n_mid > 0, "all three llama3 bands exercised (%d %d %d)", n_hi, n_lo, n_mid);

	int N = 7, NHh = 3, HD = 10, pos[7] = {0, 1, 2, 5, 17, 100, 4095};
	float inv[5];
	cfg.HD = HD;
	cfg.rope_theta = 1e4f;
	cfg.rope_kind = IAPO_ROPE_DEFAULT;
	iapo_rope_inv_freq(&cfg, inv);
	float *x = rnd((size_t)N * NHh * HD, 1), *a = dup(x, (size_t)N * NHh * HD), *b = dup(x, (size_t)N * NHh * HD);
	iapo_rope_apply(a, pos, N, NHh, HD, inv, 0);
	iapo_ref_rope_apply(b, pos, N, NHh, HD, inv, 0);
	CHECK(test_max_rel_err(a, b, (size_t)N * NHh * HD) < 1e-6, "rope fwd");
	CHECK(test_max_rel_err(a, x, NHh * HD) < 1e-7, "position 0 is the identity");
	/* hand value: row 1, head 0, pair (0,5): angle = 1 * inv[0] = 1 */
	size_t r1 = (size_t)1 * NHh * HD;
	CHECK_NEAR(a[r1], x[r1] * cos(1.0) - x[r1 + 5] * sin(1.0), 1e-6, "rope hand value");
	CHECK_NEAR(a[r1 + 5], x[r1 + 5] * cos(1.0) + x[r1] * sin(1.0), 1e-6, "rope hand value (second half)");
	iapo_rope_apply(a, pos, N, NHh, HD, inv, 1);
	CHECK(test_max_rel_err(a, x, (size_t)N * NHh * HD) < 1e-5, "inverse undoes rope");
	iapo_ref_rope_apply(b, pos, N, NHh, HD, inv, 1);
	CHECK(test_max_rel_err(b, x, (size_t)N * NHh * HD) < 1e-5, "ref inverse undoes rope");
	free(x); free(a); free(b);
}

static void elementwise(void)
{
	size_t n = 1037;
	float *g = rnd(n, 3), *u = rnd(n, 1), *d = rnd(n, 1);
	float *o1 = rnd(n, 1), *o2 = rnd(n, 1), *a1 = rnd(n, 1), *a2 = rnd(n, 1), *b1 = rnd(n, 1), *b2 = rnd(n, 1);
	iapo_swiglu_forward(o1, g, u, n);
	iapo_ref_swiglu_forward(o2, g, u, n);
	CHECK(test_max_rel_err(o1, o2, n) < 1e-6, "swiglu fwd");
	CHECK_NEAR(o1[3], g[3] / (1 + exp(-g[3])) * u[3], 1e-6, "swiglu hand value");
	iapo_swiglu_backward(a1, b1, d, g, u, n);
	iapo_ref_swiglu_backward(a2, b2, d, g, u, n);
	CHECK(test_max_rel_err(a1, a2, n) < 1e-5, "swiglu dgate");
	CHECK(test_max_rel_err(b1, b2, n) < 1e-5, "swiglu dup");
	memcpy(o2, o1, sizeof(float) * n);
	iapo_add_inplace(o1, g, n);
	iapo_ref_add_inplace(o2, g, n);
	CHECK(test_max_rel_err(o1, o2, n) < 1e-7, "add");
	CHECK_NEAR(o1[5], o2[5], 0, "add exact");

	int N = 23, C = 45;
	float *y = rnd((size_t)N * C, 1), *y2 = dup(y, (size_t)N * C), *bias = rnd(C, 1);
	iapo_bias_forward(y, bias, N, C);
	iapo_ref_bias_forward(y2, bias, N, C);
	CHECK(test_max_rel_err(y, y2, (size_t)N * C) < 1e-7, "bias fwd");
	float *db1 = rnd(C, 1), *db2 = dup(db1, C);
	iapo_bias_backward(db1, y, N, C);
	iapo_ref_bias_backward(db2, y, N, C);
	CHECK(test_max_rel_err(db1, db2, C) < 1e-5, "bias bwd");

	int V = 11, tok[23];
	for (int i = 0; i < N; i++) tok[i] = (int)iapo_rng_below(&rng, 4) * 3; /* repeats on purpose */
	float *tab = rnd((size_t)V * C, 1), *e1 = rnd((size_t)N * C, 1), *e2 = rnd((size_t)N * C, 1);
	iapo_embedding_forward(e1, tab, tok, N, C);
	iapo_ref_embedding_forward(e2, tab, tok, N, C);
	CHECK(test_max_rel_err(e1, e2, (size_t)N * C) == 0, "embedding fwd");
	CHECK(e1[(size_t)2 * C + 7] == tab[(size_t)tok[2] * C + 7], "embedding gathers rows");
	float *dt1 = rnd((size_t)V * C, 1), *dt2 = dup(dt1, (size_t)V * C);
	iapo_embedding_backward(dt1, y, tok, N, C);
	iapo_ref_embedding_backward(dt2, y, tok, N, C);
	CHECK(test_max_rel_err(dt1, dt2, (size_t)V * C) < 1e-6, "embedding bwd");
	free(g); free(u); free(d); free(o1); free(o2); free(a1); free(a2); free(b1); free(b2);
	free(y); free(y2); free(bias); free(db1); free(db2); free(tab); free(e1); free(e2); free(dt1); free(dt2);
}

static void attention_case(int NH, int NKV, int HD, int nseq, const int *len)
{
	int off[8], N = 0;
	for (int s = 0; s < nseq; s++) off[s] = N, N += len[s] + 1; /* a gap row between sequences */
	size_t qn = (size_t)N * NH * HD, kn = (size_t)N * NKV * HD;
	float *q = rnd(qn, 1), *k = rnd(kn, 1), *v = rnd(kn, 1), *dout = rnd(qn, 1);
	float *o1 = calloc(qn, sizeof(float)), *o2 = calloc(qn, sizeof(float));
	float *l1 = calloc((size_t)N * NH, sizeof(float)), *l2 = calloc((size_t)N * NH, sizeof(float));
	iapo_attention_forward(o1, l1, q, k, v, off, len, nseq, NH, NKV, HD);
	iapo_ref_attention_forward(o2, l2, q, k, v, off, len, nseq, NH, NKV, HD);
	CHECK(test_max_rel_err(o1, o2, qn) < 1e-5, "attention fwd NH=%d NKV=%d HD=%d: %g", NH, NKV, HD,
	      test_max_rel_err(o1, o2, qn));
	CHECK(test_max_rel_err(l1, l2, (size_t)N * NH) < 1e-5, "attention lse");
	/* the first query of each sequence attends only to itself: out = v */
	for (int s = 0; s < nseq; s++)
		for (int h = 0; h < NH && len[s] > 0; h++)
			CHECK_NEAR(o1[((size_t)off[s] * NH + h) * HD], v[((size_t)off[s] * NKV + h / (NH / NKV)) * HD], 1e-6,
				   "first query copies v");
	/* gap rows untouched */
	for (int s = 0; s < nseq; s++) CHECK(o1[(size_t)(off[s] + len[s]) * NH * HD] == 0, "gap row untouched");
	float *dq1 = calloc(qn, 4), *dq2 = calloc(qn, 4), *dk1 = calloc(kn, 4), *dk2 = calloc(kn, 4);
	float *dv1 = calloc(kn, 4), *dv2 = calloc(kn, 4), *s1 = calloc(qn, 4), *s2 = calloc(qn, 4);
	iapo_attention_backward(dq1, dk1, dv1, s1, s2, dout, q, k, v, o1, l1, off, len, nseq, NH, NKV, HD);
	iapo_ref_attention_backward(dq2, dk2, dv2, NULL, NULL, dout, q, k, v, o2, l2, off, len, nseq, NH, NKV, HD);
	CHECK(test_max_rel_err(dq1, dq2, qn) < 1e-4, "attention dq %g", test_max_rel_err(dq1, dq2, qn));
	CHECK(test_max_rel_err(dk1, dk2, kn) < 1e-4, "attention dk %g", test_max_rel_err(dk1, dk2, kn));
	CHECK(test_max_rel_err(dv1, dv2, kn) < 1e-4, "attention dv %g", test_max_rel_err(dv1, dv2, kn));
	free(q); free(k); free(v); free(dout); free(o1); free(o2); free(l1); free(l2);
	free(dq1); free(dq2); free(dk1); free(dk2); free(dv1); free(dv2); free(s1); free(s2);
}

static void attention(void)
{
	int a[] = {1}, b[] = {5, 1, 9}, c[] = {200, 3}, d[] = {17, 0, 300};
	attention_case(1, 1, 2, 1, a);
	attention_case(4, 2, 6, 3, b);
	attention_case(6, 2, 16, 2, c);  /* crosses a key tile */
	attention_case(3, 3, 10, 3, d);  /* an empty sequence */
	attention_case(8, 1, 8, 3, b);   /* multi-query */
}

static void head(void)
{
	int N = 9, V = 301, tgt[9] = {0, 300, -1, 5, 17, 150, -1, 2, 299};
	float temps[] = {1.0f, 0.7f, 1.6f};
	for (int t = 0; t < 3; t++) {
		float *z = rnd((size_t)N * V, 3), lp1[9], lp2[9], e1[9], e2[9];
		z[5 * V + 17] = 40; /* a peaked row */
		iapo_logprob_entropy_forward(lp1, e1, z, tgt, N, V, temps[t]);
		iapo_ref_logprob_entropy_forward(lp2, e2, z, tgt, N, V, temps[t]);
		CHECK(test_max_rel_err(lp1, lp2, N) < 1e-5, "logp");
		CHECK(test_max_rel_err(e1, e2, N) < 1e-5, "entropy");
		CHECK(lp1[2] == 0 && lp1[6] == 0, "logp 0 where no target");
		CHECK(e1[2] > 0, "entropy present where no target");
		/* hand value, row 0 */
		double mx = -1e30, s = 0, pu = 0;
		for (int i = 0; i < V; i++) mx = fmax(mx, z[i] / temps[t]);
		for (int i = 0; i < V; i++) s += exp(z[i] / temps[t] - mx);
		for (int i = 0; i < V; i++) pu += exp(z[i] / temps[t] - mx) / s * (z[i] / temps[t]);
		CHECK_NEAR(lp1[0], z[0] / temps[t] - mx - log(s), 1e-5, "logp hand");
		CHECK_NEAR(e1[0], mx + log(s) - pu, 1e-5, "entropy hand");
		float dl[9], de[9];
		for (int i = 0; i < N; i++) dl[i] = iapo_rng_normal(&rng), de[i] = iapo_rng_normal(&rng);
		float *g1 = dup(z, (size_t)N * V), *g2 = dup(z, (size_t)N * V);
		iapo_logprob_entropy_backward(g1, dl, de, tgt, N, V, temps[t]);
		iapo_ref_logprob_entropy_backward(g2, dl, de, tgt, N, V, temps[t]);
		CHECK(test_max_rel_err(g1, g2, (size_t)N * V) < 1e-5, "head grad %g", test_max_rel_err(g1, g2, (size_t)N * V));
		memcpy(g1, z, sizeof(float) * N * V);
		memcpy(g2, z, sizeof(float) * N * V);
		iapo_logprob_entropy_backward(g1, NULL, de, tgt, N, V, temps[t]);
		iapo_ref_logprob_entropy_backward(g2, NULL, de, tgt, N, V, temps[t]);
		CHECK(test_max_rel_err(g1, g2, (size_t)N * V) < 1e-5, "head grad, entropy only");
		/* gradient rows of a softmax sum to zero */
		double rs = 0;
		for (int i = 0; i < V; i++) rs += g1[i];
		CHECK(fabs(rs) < 1e-5, "row sum %g", rs);
		free(z); free(g1); free(g2);
	}
}

int main(void)
{
	iapo_rng_seed(&rng, 42, 0, 0, 0);
	RUN(matmuls);
	RUN(rmsnorm);
	RUN(rope);
	RUN(elementwise);
	RUN(attention);
	RUN(head);
	TEST_END();
}
