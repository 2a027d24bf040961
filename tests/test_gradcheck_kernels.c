/*
 * test_gradcheck_kernels.c — every backward kernel against a central finite
 * difference of an independent DOUBLE-precision forward written here. Each
 * case draws fp32-representable inputs, forms the scalar L = sum(R * f(x))
 * with a random R (or a weighted sum of log-probs and entropies for the
 * head), and compares the fp32 analytic gradient (fast kernel and reference
 * kernel) with (L(x+h) - L(x-h)) / 2h computed in double, for every input
 * coordinate. Tolerance: 1e-3 of the largest gradient magnitude.
 * Covered: linear (matmul nt/nn/tn), bias, embedding, RMSNorm (also per head,
 * as Qwen3's q/k norm uses it), RoPE, SwiGLU, attention with padding gaps and
 * GQA, and the log-prob + entropy head with temperature.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "kernels/kernels.h"
#include "kernels/ref.h"
#include "test.h"

static iapo_rng rng;

/* A tensor kept both in double (for the finite-difference forward) and in
 * float (for the kernels); the values are fp32-representable. */
typedef struct {
	double *d;
	float *f;
	size_t n;
} tens;

static tens tnew(size_t n, float scale)
{
	tens t = {calloc(n ? n : 1, sizeof(double)), calloc(n ? n : 1, sizeof(float)), n};
	for (size_t i = 0; i < n; i++) {
		t.f[i] = scale * iapo_rng_normal(&rng);
		t.d[i] = t.f[i];
	}
	return t;
}

static void tfree(tens *t)
{
	free(t->d);
	free(t->f);
}

typedef double (*loss_fn)(void *ctx);

/* Compares analytic gradient g (fp32) with central differences of L over t.d. */
static void fdcheck(const char *what, loss_fn L, void *ctx, tens *t, const float *g)
{
	const double h = 1e-5;
	double *fd = malloc(sizeof(double) * (t->n ? t->n : 1)), mx = 1e-12, err = 0;
	size_t worst = 0;
	for (size_t i = 0; i < t->n; i++) {
		double save = t->d[i];
		t->d[i] = save + h;
		double lp = L(ctx);
		t->d[i] = save - h;
		double lm = L(ctx);
		t->d[i] = save;
		fd[i] = (lp - lm) / (2 * h);
		if (fabs(fd[i]) > mx) mx = fabs(fd[i]);
	}
	for (size_t i = 0; i < t->n; i++) {
		double e = fabs(fd[i] - g[i]);
		if (e > err || e != e) err = e != e ? INFINITY : e, worst = i;
	}
	CHECK(err <= 1e-3 * mx, "%s: max |analytic - fd| = %g at %zu (analytic %g, fd %g), scale %g", what, err, worst,
	      t->n ? g[worst] : 0.0, t->n ? fd[worst] : 0.0, mx);
	free(fd);
}

/* ---- linear: L = sum R * (x W^T + b) ---- */
typedef struct { tens x, w, b, R; int M, N, K; } lin_ctx;

static double lin_loss(void *p)
{
	lin_ctx *c = p;
	double L = 0;
	for (int m = 0; m < c->M; m++)
		for (int n = 0; n < c->N; n++) {
			double y = c->b.d[n];
			for (int k = 0; k < c->K; k++) y += c->x.d[m * c->K + k] * c->w.d[n * c->K + k];
			L += c->R.d[m * c->N + n] * y;
		}
	return L;
}

static void linear(void)
{
	lin_ctx c = {.M = 5, .N = 7, .K = 9};
	c.x = tnew(45, 1), c.w = tnew(63, 1), c.b = tnew(7, 1), c.R = tnew(35, 1);
	float *dx = calloc(45, 4), *dw = calloc(63, 4), *db = calloc(7, 4);
	iapo_matmul_nn(dx, c.R.f, c.w.f, c.M, c.K, c.N, 0);      /* dx = dy W */
	iapo_matmul_tn(dw, c.R.f, c.x.f, c.N, c.K, c.M, 1);      /* dW += dy^T x */
	iapo_bias_backward(db, c.R.f, c.M, c.N);
	fdcheck("linear dx", lin_loss, &c, &c.x, dx);
	fdcheck("linear dw", lin_loss, &c, &c.w, dw);
	fdcheck("linear db", lin_loss, &c, &c.b, db);
	/* the reference versions too */
	iapo_ref_matmul_nn(dx, c.R.f, c.w.f, c.M, c.K, c.N, 0);
	memset(dw, 0, 63 * 4);
	memset(db, 0, 7 * 4);
	iapo_ref_matmul_tn(dw, c.R.f, c.x.f, c.N, c.K, c.M, 1);
	iapo_ref_bias_backward(db, c.R.f, c.M, c.N);
	fdcheck("ref linear dx", lin_loss, &c, &c.x, dx);
	fdcheck("ref linear dw", lin_loss, &c, &c.w, dw);
	fdcheck("ref linear db", lin_loss, &c, &c.b, db);
	tfree(&c.x); tfree(&c.w); tfree(&c.b); tfree(&c.R);
	free(dx); free(dw); free(db);
}

/* ---- embedding: L = sum R * E[tok] ---- */
typedef struct { tens E, R; const int *tok; int N, C; } emb_ctx;

static double emb_loss(void *p)
{
	emb_ctx *c = p;
	double L = 0;
	for (int n = 0; n < c->N; n++)
		for (int i = 0; i < c->C; i++) L += c->R.d[n * c->C + i] * c->E.d[c->tok[n] * c->C + i];
	return L;
}

static void embedding(void)
{
	int tok[6] = {3, 0, 3, 5, 3, 1};
	emb_ctx c = {.tok = tok, .N = 6, .C = 5};
	c.E = tnew(7 * 5, 1), c.R = tnew(30, 1);
	float *g = calloc(35, 4);
	iapo_embedding_backward(g, c.R.f, tok, 6, 5);
	fdcheck("embedding", emb_loss, &c, &c.E, g);
	memset(g, 0, 35 * 4);
	iapo_ref_embedding_backward(g, c.R.f, tok, 6, 5);
	fdcheck("ref embedding", emb_loss, &c, &c.E, g);
	tfree(&c.E); tfree(&c.R); free(g);
}

/* ---- RMSNorm: rows of C, weight (C) ---- */
typedef struct { tens x, w, R; int N, C; double eps; } rms_ctx;

static double rms_loss(void *p)
{
	rms_ctx *c = p;
	double L = 0;
	for (int n = 0; n < c->N; n++) {
		double ss = 0;
		for (int i = 0; i < c->C; i++) ss += c->x.d[n * c->C + i] * c->x.d[n * c->C + i];
		double r = 1 / sqrt(ss / c->C + c->eps);
		for (int i = 0; i < c->C; i++) L += c->R.d[n * c->C + i] * c->x.d[n * c->C + i] * r * c->w.d[i];
	}
	return L;
}

static void rmsnorm_case(int N, int C, const char *what)
{
	rms_ctx c = {.N = N, .C = C, .eps = 1e-6f};
	c.x = tnew((size_t)N * C, 1), c.w = tnew(C, 1), c.R = tnew((size_t)N * C, 1);
	float *out = calloc((size_t)N * C, 4), *rstd = calloc(N, 4), *dx = calloc((size_t)N * C, 4), *dw = calloc(C, 4);
	iapo_rmsnorm_forward(out, rstd, c.x.f, c.w.f, N, C, (float)c.eps);
	iapo_rmsnorm_backward(dx, dw, c.R.f, c.x.f, c.w.f, rstd, N, C);
	char buf[64];
	snprintf(buf, sizeof buf, "%s dx", what);
	fdcheck(buf, rms_loss, &c, &c.x, dx);
	snprintf(buf, sizeof buf, "%s dw", what);
	fdcheck(buf, rms_loss, &c, &c.w, dw);
	memset(dx, 0, sizeof(float) * N * C);
	memset(dw, 0, sizeof(float) * C);
	iapo_ref_rmsnorm_backward(dx, dw, c.R.f, c.x.f, c.w.f, rstd, N, C);
	snprintf(buf, sizeof buf, "ref %s dx", what);
	fdcheck(buf, rms_loss, &c, &c.x, dx);
	snprintf(buf, sizeof buf, "ref %s dw", what);
	fdcheck(buf, rms_loss, &c, &c.w, dw);
	tfree(&c.x); tfree(&c.w); tfree(&c.R);
	free(out); free(rstd); free(dx); free(dw);
}

static void rmsnorm(void)
{
	rmsnorm_case(4, 13, "rmsnorm");
	rmsnorm_case(3 * 4, 6, "per-head qk-norm (N=3, NH=4, HD=6)");
}

/* ---- RoPE ---- */
typedef struct { tens x, R; const int *pos; int N, nh, HD; const float *inv; } rope_ctx;

static double rope_loss(void *p)
{
	rope_ctx *c = p;
	int half = c->HD / 2;
	double L = 0;
	for (int n = 0; n < c->N; n++)
		for (int h = 0; h < c->nh; h++)
			for (int i = 0; i < half; i++) {
				size_t b = ((size_t)n * c->nh + h) * c->HD;
				double ang = (float)c->pos[n] * c->inv[i], cs = cos(ang), sn = sin(ang);
				double a = c->x.d[b + i], bb = c->x.d[b + i + half];
				L += c->R.d[b + i] * (a * cs - bb * sn) + c->R.d[b + i + half] * (bb * cs + a * sn);
			}
	return L;
}

static void rope(void)
{
	iapo_config cfg = {0};
	cfg.HD = 8;
	cfg.rope_theta = 100.0f;
	float inv[4];
	iapo_rope_inv_freq(&cfg, inv);
	int pos[3] = {0, 3, 11};
	rope_ctx c = {.pos = pos, .N = 3, .nh = 2, .HD = 8, .inv = inv};
	c.x = tnew(48, 1), c.R = tnew(48, 1);
	float *g = malloc(48 * 4);
	memcpy(g, c.R.f, 48 * 4);
	iapo_rope_apply(g, pos, 3, 2, 8, inv, 1); /* the backward is the inverse rotation */
	fdcheck("rope", rope_loss, &c, &c.x, g);
	memcpy(g, c.R.f, 48 * 4);
	iapo_ref_rope_apply(g, pos, 3, 2, 8, inv, 1);
	fdcheck("ref rope", rope_loss, &c, &c.x, g);
	tfree(&c.x); tfree(&c.R); free(g);
}

/* ---- SwiGLU ---- */
typedef struct { tens g, u, R; } swi_ctx;

static double swi_loss(void *p)
{
	swi_ctx *c = p;
	double L = 0;
	for (size_t i = 0; i < c->g.n; i++) L += c->R.d[i] * c->g.d[i] / (1 + exp(-c->g.d[i])) * c->u.d[i];
	return L;
}

static void swiglu(void)
{
	swi_ctx c;
	c.g = tnew(33, 3), c.u = tnew(33, 1), c.R = tnew(33, 1);
	float *dg = calloc(33, 4), *du = calloc(33, 4);
	iapo_swiglu_backward(dg, du, c.R.f, c.g.f, c.u.f, 33);
	fdcheck("swiglu dgate", swi_loss, &c, &c.g, dg);
	fdcheck("swiglu dup", swi_loss, &c, &c.u, du);
	iapo_ref_swiglu_backward(dg, du, c.R.f, c.g.f, c.u.f, 33);
	fdcheck("ref swiglu dgate", swi_loss, &c, &c.g, dg);
	fdcheck("ref swiglu dup", swi_loss, &c, &c.u, du);
	tfree(&c.g); tfree(&c.u); tfree(&c.R); free(dg); free(du);
}

/* ---- attention over packed sequences with gap (padding) rows, GQA ---- */
typedef struct { tens q, k, v, R; const int *off, *len; int nseq, NH, NKV, HD; } att_ctx;

static double att_loss(void *p)
{
	att_ctx *c = p;
	int G = c->NH / c->NKV;
	double L = 0, scale = 1 / sqrt((double)c->HD), sc[64];
	for (int s = 0; s < c->nseq; s++)
		for (int h = 0; h < c->NH; h++)
			for (int i = 0; i < c->len[s]; i++) {
				size_t qi = (size_t)c->off[s] + i;
				double mx = -INFINITY, sum = 0;
				for (int j = 0; j <= i; j++) {
					size_t kj = ((size_t)c->off[s] + j) * c->NKV + h / G;
					double d = 0;
					for (int e = 0; e < c->HD; e++) d += c->q.d[(qi * c->NH + h) * c->HD + e] * c->k.d[kj * c->HD + e];
					sc[j] = d * scale;
					mx = fmax(mx, sc[j]);
				}
				for (int j = 0; j <= i; j++) sum += exp(sc[j] - mx);
				for (int j = 0; j <= i; j++) {
					size_t kj = ((size_t)c->off[s] + j) * c->NKV + h / G;
					double pj = exp(sc[j] - mx) / sum;
					for (int e = 0; e < c->HD; e++)
						L += c->R.d[(qi * c->NH + h) * c->HD + e] * pj * c->v.d[kj * c->HD + e];
				}
			}
	return L;
}

static void attention_case(int NH, int NKV, int HD, int nseq, const int *off, const int *len, int N)
{
	att_ctx c = {.off = off, .len = len, .nseq = nseq, .NH = NH, .NKV = NKV, .HD = HD};
	size_t qn = (size_t)N * NH * HD, kn = (size_t)N * NKV * HD;
	c.q = tnew(qn, 1), c.k = tnew(kn, 1), c.v = tnew(kn, 1), c.R = tnew(qn, 1);
	/* padding rows carry garbage; their gradients must come back 0 */
	float *out = calloc(qn, 4), *lse = calloc((size_t)N * NH, 4);
	float *dq = calloc(qn, 4), *dk = calloc(kn, 4), *dv = calloc(kn, 4), *s1 = calloc(qn, 4), *s2 = calloc(qn, 4);
	iapo_attention_forward(out, lse, c.q.f, c.k.f, c.v.f, off, len, nseq, NH, NKV, HD);
	iapo_attention_backward(dq, dk, dv, s1, s2, c.R.f, c.q.f, c.k.f, c.v.f, out, lse, off, len, nseq, NH, NKV, HD);
	char buf[80];
	snprintf(buf, sizeof buf, "attention NH=%d NKV=%d dq", NH, NKV);
	fdcheck(buf, att_loss, &c, &c.q, dq);
	snprintf(buf, sizeof buf, "attention NH=%d NKV=%d dk", NH, NKV);
	fdcheck(buf, att_loss, &c, &c.k, dk);
	snprintf(buf, sizeof buf, "attention NH=%d NKV=%d dv", NH, NKV);
	fdcheck(buf, att_loss, &c, &c.v, dv);
	memset(dq, 0, qn * 4), memset(dk, 0, kn * 4), memset(dv, 0, kn * 4);
	iapo_ref_attention_backward(dq, dk, dv, NULL, NULL, c.R.f, c.q.f, c.k.f, c.v.f, out, lse, off, len, nseq, NH, NKV, HD);
	fdcheck("ref attention dq", att_loss, &c, &c.q, dq);
	fdcheck("ref attention dk", att_loss, &c, &c.k, dk);
	fdcheck("ref attention dv", att_loss, &c, &c.v, dv);
	tfree(&c.q); tfree(&c.k); tfree(&c.v); tfree(&c.R);
	free(out); free(lse); free(dq); free(dk); free(dv); free(s1); free(s2);
}

static void attention(void)
{
	/* rows 0-3 seq 0, rows 4-5 padding, rows 6-10 seq 1, row 11 padding */
	int off[2] = {0, 6}, len[2] = {4, 5};
	attention_case(4, 2, 4, 2, off, len, 12);
	attention_case(3, 3, 6, 2, off, len, 12);
	attention_case(4, 1, 2, 2, off, len, 12);
}

/* ---- log-prob + entropy head with temperature ---- */
typedef struct { tens z; const int *tgt; const double *a, *b; int N, V; double temp; } head_ctx;

static double head_loss(void *p)
{
	head_ctx *c = p;
	double L = 0;
	for (int n = 0; n < c->N; n++) {
		const double *z = c->z.d + (size_t)n * c->V;
		double mx = -INFINITY, sum = 0, H = 0;
		for (int i = 0; i < c->V; i++) mx = fmax(mx, z[i] / c->temp);
		for (int i = 0; i < c->V; i++) sum += exp(z[i] / c->temp - mx);
		double lse = mx + log(sum);
		for (int i = 0; i < c->V; i++) {
			double lp = z[i] / c->temp - lse;
			H -= exp(lp) * lp;
		}
		if (c->tgt[n] >= 0) L += c->a[n] * (z[c->tgt[n]] / c->temp - lse);
		L += c->b[n] * H;
	}
	return L;
}

static void head(void)
{
	int tgt[4] = {2, -1, 0, 10};
	double a[4], b[4];
	float af[4], bf[4];
	for (int i = 0; i < 4; i++) {
		af[i] = iapo_rng_normal(&rng), bf[i] = iapo_rng_normal(&rng);
		a[i] = af[i], b[i] = bf[i];
	}
	float temps[3] = {1.0f, 0.7f, 1.3f};
	for (int t = 0; t < 3; t++) {
		head_ctx c = {.tgt = tgt, .a = a, .b = b, .N = 4, .V = 11, .temp = temps[t]};
		c.z = tnew(44, 2);
		float *g = malloc(44 * 4);
		char buf[64];
		memcpy(g, c.z.f, 44 * 4);
		iapo_logprob_entropy_backward(g, af, bf, tgt, 4, 11, temps[t]);
		snprintf(buf, sizeof buf, "head temp=%g", temps[t]);
		fdcheck(buf, head_loss, &c, &c.z, g);
		memcpy(g, c.z.f, 44 * 4);
		iapo_ref_logprob_entropy_backward(g, af, bf, tgt, 4, 11, temps[t]);
		snprintf(buf, sizeof buf, "ref head temp=%g", temps[t]);
		fdcheck(buf, head_loss, &c, &c.z, g);
		/* and the forward values against the double forward */
		float lp[4], en[4];
		iapo_logprob_entropy_forward(lp, en, c.z.f, tgt, 4, 11, temps[t]);
		double zero[4] = {0}, one[4] = {0};
		for (int n = 0; n < 4; n++) {
			one[n] = 1;
			c.a = one, c.b = zero;
			CHECK_NEAR(lp[n], head_loss(&c), 1e-5, "logp vs double");
			c.a = zero, c.b = one;
			CHECK_NEAR(en[n], head_loss(&c), 1e-5, "entropy vs double");
			one[n] = 0;
		}
		tfree(&c.z);
		free(g);
	}
}

int main(void)
{
	iapo_rng_seed(&rng, 7, 0, 0, 0);
	RUN(linear);
	RUN(embedding);
	RUN(rmsnorm);
	RUN(rope);
	RUN(swiglu);
	RUN(attention);
	RUN(head);
	TEST_END();
}
