/*
 * test_info.c — the early-exit estimator (rl/info.h): the chunked pass over
 * the KV cache equals the naive oracle (a full training forward of every
 * prompt + o_<t + postfix) within 1e-5 relative, for tiny random Qwen2, Llama
 * (GQA 4:1, untied, Llama 3 rope) and Qwen3 models, on a ragged batch (four
 * sequences of different prompt and completion lengths, one completion
 * empty), chunk sizes 1, 3, 7, automatic and larger than the batch, postfix
 * lengths 1 and 3, one and two (and three) greedy answer tokens, next_token
 * mode; a memory budget small enough to split the prefill into many pieces;
 * a postfix longer than the cache's sequences; the row counts of the stats;
 * no allocation inside a call; argument errors; estimating at every third
 * position or after given tokens only (exact there, linear in between); the
 * positions a sequence shares with an earlier one of the same prompt copied,
 * not computed, and still exact.
 * Also that E_t really is the entropy after prompt + o_<t + postfix (o_t
 * excluded) by a direct check of one position through the kv cache's own
 * prefill; and the cache's last layer, which carries only the rows that ask
 * for logits past their K/V: logits equal the training forward's whether
 * all, some or none of a call's rows ask, with two layers and with one, and
 * the estimator on one-layer models.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "core/status.h"
#include "model/kvcache.h"
#include "rl/info.h"
#include "test.h"
#include "test_decode_models.h"

#define TOL 1e-5
#define NSEQ 4

static const int PL[NSEQ] = {5, 2, 9, 3};   /* prompt lengths */
static const int CL[NSEQ] = {11, 0, 6, 14}; /* completion lengths */
#define LD 16                               /* > longest completion */

typedef struct {
	int *prompt[NSEQ], *comp[NSEQ];
	iapo_info_batch b;
	int Tmax;
} batch;

static void batch_make(batch *x, int V, uint64_t seed)
{
	iapo_rng r;
	iapo_rng_seed(&r, seed, 3, 0, 0);
	x->Tmax = 0;
	for (int i = 0; i < NSEQ; i++) {
		x->prompt[i] = malloc(sizeof(int) * (size_t)PL[i]);
		x->comp[i] = malloc(sizeof(int) * (size_t)(CL[i] + 1));
		for (int j = 0; j < PL[i]; j++) x->prompt[i][j] = (int)iapo_rng_below(&r, (uint64_t)V);
		for (int j = 0; j < CL[i]; j++) x->comp[i][j] = (int)iapo_rng_below(&r, (uint64_t)V);
		if (PL[i] + CL[i] > x->Tmax) x->Tmax = PL[i] + CL[i];
	}
	x->b = (iapo_info_batch){.n = NSEQ,
				 .prompts = (const int *const *)x->prompt,
				 .plen = PL,
				 .comps = (const int *const *)x->comp,
				 .clen = CL};
}

static void batch_free(batch *x)
{
	for (int i = 0; i < NSEQ; i++) {
		free(x->prompt[i]);
		free(x->comp[i]);
	}
}

/* Largest |a-b| / max|b| over the valid entries t = 0..CL[i]. */
static double rel_err(const float *a, const float *b)
{
	double num = 0, den = 1e-30;
	for (int i = 0; i < NSEQ; i++)
		for (int t = 0; t <= CL[i]; t++) {
			double d = fabs((double)a[i * LD + t] - (double)b[i * LD + t]);
			if (d > num || d != d) num = d != d ? INFINITY : d;
			if (fabs((double)b[i * LD + t]) > den) den = fabs((double)b[i * LD + t]);
		}
	return num / den;
}

static int valid_untouched(const float *a)
{
	for (int i = 0; i < NSEQ; i++)
		for (int t = CL[i] + 1; t < LD; t++)
			if (a[i * LD + t] != -7.0f) return 0;
	return 1;
}

/* fast vs naive for one model and one setting; returns the worst error. */
static double compare(const iapo_weights *w, batch *x, const iapo_info_opts *o, int Bmax, const char *what)
{
	float Ef[NSEQ * LD], Cf[NSEQ * LD], En[NSEQ * LD], Cn[NSEQ * LD];
	for (int i = 0; i < NSEQ * LD; i++) Ef[i] = Cf[i] = En[i] = Cn[i] = -7.0f;
	iapo_info *e = NULL;
	iapo_status st = iapo_info_new(w, Bmax, x->Tmax + 2, o, &e);
	CHECK(st == IAPO_OK, "%s: new: %s", what, iapo_errmsg());
	if (st != IAPO_OK) return INFINITY;
	iapo_info_stats s;
	st = iapo_info_compute(e, &x->b, Ef, Cf, LD, &s);
	CHECK(st == IAPO_OK, "%s: compute: %s", what, iapo_errmsg());
	/* again: the matmul workspace grows on a process's first products, never later */
	unsigned long allocs = iapo_mem_alloc_count();
	st = iapo_info_compute(e, &x->b, Ef, Cf, LD, &s);
	CHECK(st == IAPO_OK, "%s: compute: %s", what, iapo_errmsg());
	CHECK(iapo_mem_alloc_count() == allocs, "%s: compute allocated %lu times", what,
	      iapo_mem_alloc_count() - allocs);
	st = iapo_info_naive(w, o, &x->b, En, Cn, LD);
	CHECK(st == IAPO_OK, "%s: naive: %s", what, iapo_errmsg());
	double eE = rel_err(Ef, En), eC = rel_err(Cf, Cn);
	CHECK(eE <= TOL, "%s: E max rel err %.3g (chunk %d)", what, eE, iapo_info_chunk(e));
	CHECK(eC <= TOL, "%s: C max rel err %.3g", what, eC);
	CHECK(valid_untouched(Ef) && valid_untouched(Cf), "%s: entries past clen + 1 written", what);
	long positions = 0;
	for (int i = 0; i < NSEQ; i++) positions += CL[i] + 1;
	const int answer = o->predict == IAPO_PREDICT_ANSWER;
	long want_rows = answer ? positions * (o->n_postfix + o->answer_tokens - 1) : 0;
	CHECK(s.positions == positions && s.rows_pass == want_rows, "%s: stats %ld positions %ld rows (want %ld, %ld)",
	      what, s.positions, s.rows_pass, positions, want_rows);
	CHECK(s.rows_prefill == positions - NSEQ + 5 + 2 + 9 + 3, "%s: prefill rows %ld", what, s.rows_prefill);
	if (!answer) CHECK(memcmp(Ef, Cf, sizeof Ef) == 0, "%s: next_token: E must equal C", what);
	/* the entropies are real entropies: within [0, log V] */
	int in_range = 1;
	for (int i = 0; i < NSEQ; i++)
		for (int t = 0; t <= CL[i]; t++)
			in_range &= Ef[i * LD + t] >= 0 &&
				    Ef[i * LD + t] <= (answer ? o->answer_tokens : 1) * logf((float)w->cfg.V) + 1e-4f;
	CHECK(in_range, "%s: an entropy outside [0, N log V]", what);
	iapo_info_free(e);
	return eE > eC ? eE : eC;
}

static void exact_for(int kind)
{
	iapo_weights w;
	if (tiny_weights(kind, 500 + kind, &w)) {
		CHECK(0, "weights");
		return;
	}
	const int V = w.cfg.V;
	batch x;
	batch_make(&x, V, 11 + kind);
	int post3[3] = {V - 2, 7, 31}, post1[1] = {V - 3};
	const int chunks[] = {1, 3, 7, 0, 1000};
	double worst = 0;
	char what[128];
	for (int pk = 0; pk < 2; pk++)
		for (size_t c = 0; c < sizeof chunks / sizeof chunks[0]; c++)
			for (int N = 1; N <= 2; N++) {
				iapo_info_opts o = iapo_info_defaults();
				o.postfix = pk ? post3 : post1;
				o.n_postfix = pk ? 3 : 1;
				o.chunk = chunks[c];
				o.answer_tokens = N;
				o.temperature = c == 2 ? 0.7f : 1.0f;
				snprintf(what, sizeof what, "%s K=%d chunk=%d N=%d", tiny_names[kind], o.n_postfix, o.chunk,
					 N);
				double e = compare(&w, &x, &o, NSEQ + (int)c % 2, what);
				if (e > worst) worst = e;
			}
	/* three answer tokens, and next_token mode */
	iapo_info_opts o = iapo_info_defaults();
	o.postfix = post3;
	o.n_postfix = 3;
	o.answer_tokens = 3;
	o.chunk = 5;
	snprintf(what, sizeof what, "%s N=3", tiny_names[kind]);
	double e = compare(&w, &x, &o, NSEQ, what);
	if (e > worst) worst = e;
	o = iapo_info_defaults();
	o.predict = IAPO_PREDICT_NEXT_TOKEN;
	o.temperature = 1.3f;
	snprintf(what, sizeof what, "%s next_token", tiny_names[kind]);
	e = compare(&w, &x, &o, NSEQ, what);
	if (e > worst) worst = e;
	fprintf(stderr, "  %s: fast vs naive worst rel err %.2g\n", tiny_names[kind], worst);
	batch_free(&x);
	iapo_free_aligned(w.block);
}

static void test_exact_qwen2(void) { exact_for(TINY_QWEN2); }
static void test_exact_llama(void) { exact_for(TINY_LLAMA); }
static void test_exact_qwen3(void) { exact_for(TINY_QWEN3); }

/* A budget of a few logits rows: the prefill runs in many small pieces and the
 * automatic chunk is small; results unchanged. */
static void test_small_budget(void)
{
	iapo_weights w;
	if (tiny_weights(TINY_LLAMA, 77, &w)) {
		CHECK(0, "weights");
		return;
	}
	batch x;
	batch_make(&x, w.cfg.V, 5);
	int post[2] = {3, 4};
	iapo_info_opts o = iapo_info_defaults();
	o.postfix = post;
	o.n_postfix = 2;
	o.answer_tokens = 2;
	o.mem_budget = (size_t)w.cfg.V * sizeof(float) * 3;
	iapo_info *e = NULL;
	CHECK(iapo_info_new(&w, NSEQ, x.Tmax, &o, &e) == IAPO_OK, "%s", iapo_errmsg());
	if (e) {
		CHECK(iapo_info_chunk(e) >= 1 && iapo_info_chunk(e) <= 3, "chunk from a tiny budget: %d", iapo_info_chunk(e));
		CHECK(iapo_info_bytes(e) > 0, "bytes");
		iapo_info_free(e);
	}
	compare(&w, &x, &o, NSEQ, "small budget");
	/* automatic chunk under the default budget fills about one GEMM pass */
	o.mem_budget = 0;
	CHECK(iapo_info_new(&w, NSEQ, x.Tmax, &o, &e) == IAPO_OK, "%s", iapo_errmsg());
	if (e) {
		CHECK(iapo_info_chunk(e) == 256 || iapo_info_chunk(e) == NSEQ * (x.Tmax + 1),
		      "automatic chunk %d", iapo_info_chunk(e));
		iapo_info_free(e);
	}
	batch_free(&x);
	iapo_free_aligned(w.block);
}

/* Sequences shorter than the postfix + answer rows (scratch slots longer than Tmax). */
static void test_short_sequences(void)
{
	iapo_weights w;
	if (tiny_weights(TINY_QWEN3, 8, &w)) {
		CHECK(0, "weights");
		return;
	}
	int p0[1] = {5}, p1[1] = {9}, c0[1] = {12};
	const int *prompts[2] = {p0, p1}, *comps[2] = {c0, NULL};
	int plen[2] = {1, 1}, clen[2] = {1, 0};
	iapo_info_batch b = {.n = 2, .prompts = prompts, .plen = plen, .comps = comps, .clen = clen};
	int post[4] = {1, 2, 3, 4};
	iapo_info_opts o = iapo_info_defaults();
	o.postfix = post;
	o.n_postfix = 4;
	o.answer_tokens = 2;
	o.chunk = 2;
	float Ef[2 * 2], En[2 * 2], Cf[4], Cn[4];
	iapo_info *e = NULL;
	CHECK(iapo_info_new(&w, 2, 2, &o, &e) == IAPO_OK, "%s", iapo_errmsg());
	if (!e) return;
	CHECK(iapo_info_compute(e, &b, Ef, Cf, 2, NULL) == IAPO_OK, "%s", iapo_errmsg());
	CHECK(iapo_info_naive(&w, &o, &b, En, Cn, 2) == IAPO_OK, "%s", iapo_errmsg());
	float ef[3] = {Ef[0], Ef[1], Ef[2]}, en[3] = {En[0], En[1], En[2]};
	float cf[3] = {Cf[0], Cf[1], Cf[2]}, cn[3] = {Cn[0], Cn[1], Cn[2]};
	CHECK(test_max_rel_err(ef, en, 3) <= TOL && test_max_rel_err(cf, cn, 3) <= TOL, "short: %g %g",
	      test_max_rel_err(ef, en, 3), test_max_rel_err(cf, cn, 3));
	iapo_info_free(e);
	iapo_free_aligned(w.block);
}

/* E_t by hand for one position: the kv cache's own prefill of prompt + o_<t +
 * postfix, and the entropy of its last logits row. */
static void test_meaning(void)
{
	iapo_weights w;
	if (tiny_weights(TINY_QWEN2, 99, &w)) {
		CHECK(0, "weights");
		return;
	}
	const int V = w.cfg.V;
	batch x;
	batch_make(&x, V, 21);
	int post[2] = {10, 20};
	iapo_info_opts o = iapo_info_defaults();
	o.postfix = post;
	o.n_postfix = 2;
	o.temperature = 0.8f;
	float E[NSEQ * LD], C[NSEQ * LD];
	iapo_info *e = NULL;
	CHECK(iapo_info_new(&w, NSEQ, x.Tmax, &o, &e) == IAPO_OK, "%s", iapo_errmsg());
	if (!e) return;
	CHECK(iapo_info_compute(e, &x.b, E, C, LD, NULL) == IAPO_OK, "%s", iapo_errmsg());
	iapo_kv *kv = NULL;
	CHECK(iapo_kv_new(&w, 1, 64, &kv) == IAPO_OK, "%s", iapo_errmsg());
	float *lg = malloc(sizeof(float) * V);
	const int i = 0, t = 4, P = PL[0];
	int seq[64], n = 0;
	for (int j = 0; j < P; j++) seq[n++] = x.prompt[i][j];
	for (int j = 0; j < t; j++) seq[n++] = x.comp[i][j];
	seq[n++] = post[0];
	seq[n++] = post[1];
	const int *tok[1] = {seq};
	CHECK(iapo_kv_forward(kv, tok, &n, lg) == IAPO_OK, "%s", iapo_errmsg());
	double mx = -1e30, z = 0, pu = 0;
	for (int v = 0; v < V; v++) mx = lg[v] / 0.8 > mx ? lg[v] / 0.8 : mx;
	for (int v = 0; v < V; v++) z += exp(lg[v] / 0.8 - mx);
	for (int v = 0; v < V; v++) {
		double lp = lg[v] / 0.8 - mx - log(z);
		pu += exp(lp) * lp;
	}
	CHECK_NEAR(E[i * LD + t], -pu, 1e-5, "E_4 by hand");
	/* C_t: entropy of the distribution after prompt + o_<t (o_t is what it predicts) */
	iapo_kv_reset(kv, 0);
	n = P + t;
	CHECK(iapo_kv_forward(kv, tok, &n, lg) == IAPO_OK, "%s", iapo_errmsg());
	mx = -1e30, z = 0, pu = 0;
	for (int v = 0; v < V; v++) mx = lg[v] / 0.8 > mx ? lg[v] / 0.8 : mx;
	for (int v = 0; v < V; v++) z += exp(lg[v] / 0.8 - mx);
	for (int v = 0; v < V; v++) {
		double lp = lg[v] / 0.8 - mx - log(z);
		pu += exp(lp) * lp;
	}
	CHECK_NEAR(C[i * LD + t], -pu, 1e-5, "C_4 by hand");
	free(lg);
	iapo_kv_free(kv);
	iapo_info_free(e);
	batch_free(&x);
	iapo_free_aligned(w.block);
}

/* Stride 3 and "after these tokens": estimated positions equal the naive
 * (exact) values, the others lie on the straight line between their
 * neighbours, and the pass does proportionally fewer rows. */
static void test_fewer_positions(void)
{
	iapo_weights w;
	if (tiny_weights(TINY_QWEN2, 42, &w)) {
		CHECK(0, "weights");
		return;
	}
	batch x;
	batch_make(&x, w.cfg.V, 9);
	int post[2] = {5, 6};
	float En[NSEQ * LD], Cn[NSEQ * LD], Ef[NSEQ * LD], Cf[NSEQ * LD];
	iapo_info_opts o = iapo_info_defaults();
	o.postfix = post;
	o.n_postfix = 2;
	CHECK(iapo_info_naive(&w, &o, &x.b, En, Cn, LD) == IAPO_OK, "%s", iapo_errmsg());
	/* "at" tokens: the ids of completion 0's tokens 2 and 6 (wherever else they occur too) */
	int at[2] = {x.comp[0][2], x.comp[0][6]};
	for (int mode = 0; mode < 2; mode++) {
		iapo_info_opts oo = o;
		if (mode == 0) oo.stride = 3;
		else oo.at_tokens = at, oo.n_at = 2;
		oo.chunk = 2;
		iapo_info *e = NULL;
		iapo_info_stats st;
		CHECK(iapo_info_new(&w, NSEQ, x.Tmax, &oo, &e) == IAPO_OK, "%s", iapo_errmsg());
		if (!e) break;
		CHECK(iapo_info_compute(e, &x.b, Ef, Cf, LD, &st) == IAPO_OK, "%s", iapo_errmsg());
		long want = 0;
		for (int i = 0; i < NSEQ; i++) {
			int a = 0;
			for (int t = 0; t <= CL[i]; t++) {
				int sel = t == 0 || t == CL[i] ||
					  (mode == 0 ? t % 3 == 0 : (x.comp[i][t - 1] == at[0] || x.comp[i][t - 1] == at[1]));
				CHECK_NEAR(Cf[i * LD + t], Cn[i * LD + t], 1e-5, "C stays exact");
				if (!sel) continue;
				want++;
				CHECK_NEAR(Ef[i * LD + t], En[i * LD + t], 1e-5, "estimated position");
				for (int u = a + 1; u < t; u++) {
					double lin = En[i * LD + a] + (En[i * LD + t] - En[i * LD + a]) * (u - a) / (t - a);
					CHECK_NEAR(Ef[i * LD + u], lin, 1e-5, "interpolated position");
				}
				a = t;
			}
		}
		CHECK(st.positions == want && st.rows_pass == want * 2, "mode %d: %ld positions (want %ld), %ld rows", mode,
		      st.positions, want, st.rows_pass);
		iapo_info_free(e);
	}
	iapo_info_opts bad = o;
	bad.stride = 2;
	bad.at_tokens = at;
	bad.n_at = 2;
	iapo_info *e = NULL;
	CHECK(iapo_info_new(&w, NSEQ, x.Tmax, &bad, &e) == IAPO_ERR_ARG, "stride and tokens together");
	bad.n_at = 0;
	bad.stride = -1;
	CHECK(iapo_info_new(&w, NSEQ, x.Tmax, &bad, &e) == IAPO_ERR_ARG, "negative stride");
	batch_free(&x);
	iapo_free_aligned(w.block);
}


/* Sequences of one prompt that start alike (a group's samples): E_t of a
 * shared prefix is copied, not computed, and still equals the naive
 * estimator's; stride 2 on top; a prompt equal in content but another array
 * counts as the same prompt. */
static void test_shared_prefixes(void)
{
	iapo_weights w;
	if (tiny_weights(TINY_QWEN2, 77, &w)) {
		CHECK(0, "weights");
		return;
	}
	enum { N6 = 6, L6 = 9 };
	int pa[4] = {3, 14, 15, 9}, pb[4] = {3, 14, 15, 9}, pc[3] = {3, 14, 15};
	int c[N6][L6] = {
		{1, 2, 3, 4, 5, 6, 7, 8, 9},  /* 0 */
		{1, 2, 3, 4, 9, 9, 9, 9, 9},  /* 1: shares 4 with 0 */
		{1, 2, 3, 4, 9, 9, 8, 0, 0},  /* 2: shares 6 with 1 (length 7) */
		{1, 2, 3, 4, 5, 6, 7, 8, 9},  /* 3: equal to 0, prompt pb (same content) */
		{1, 2, 3, 0, 0, 0, 0, 0, 0},  /* 4: a prefix of 0 (length 3) */
		{1, 2, 3, 4, 5, 6, 7, 8, 9},  /* 5: another prompt: shares nothing */
	};
	const int *prompts[N6] = {pa, pa, pa, pb, pa, pc};
	const int plen[N6] = {4, 4, 4, 4, 4, 3}, clen[N6] = {9, 9, 7, 9, 3, 9};
	const int *comps[N6];
	for (int i = 0; i < N6; i++) comps[i] = c[i];
	iapo_info_batch b = {.n = N6, .prompts = prompts, .plen = plen, .comps = comps, .clen = clen};
	/* shared positions (t <= shared prefix): 1: 0..4, 2: 0..6, 3: 0..9, 4: 0..3 */
	const long shared = 5 + 7 + 10 + 4, all = 10 + 10 + 8 + 10 + 4 + 10;
	int post[2] = {5, 6};
	float En[N6 * LD], Cn[N6 * LD], Ef[N6 * LD], Cf[N6 * LD];
	iapo_info_opts o = iapo_info_defaults();
	o.postfix = post;
	o.n_postfix = 2;
	CHECK(iapo_info_naive(&w, &o, &b, En, Cn, LD) == IAPO_OK, "%s", iapo_errmsg());
	for (int stride = 1; stride <= 2; stride++) {
		iapo_info_opts oo = o;
		oo.stride = stride;
		oo.chunk = 3;
		iapo_info *e = NULL;
		iapo_info_stats st;
		CHECK(iapo_info_new(&w, N6, 13, &oo, &e) == IAPO_OK, "%s", iapo_errmsg());
		if (!e) break;
		CHECK(iapo_info_compute(e, &b, Ef, Cf, LD, &st) == IAPO_OK, "%s", iapo_errmsg());
		double worst = 0;
		for (int i = 0; i < N6; i++)
			for (int t = 0; t <= clen[i]; t++) {
				if (stride > 1 && t % stride && t != clen[i]) continue;
				double d = fabs((double)Ef[i * LD + t] - En[i * LD + t]);
				worst = d > worst ? d : worst;
			}
		CHECK(worst <= 1e-5, "stride %d: shared prefixes: E max abs err %.3g", stride, worst);
		if (stride == 1)
			CHECK(st.shared == shared && st.positions == all - shared, "%ld shared, %ld computed (want %ld, %ld)",
			      st.shared, st.positions, shared, all - shared);
		iapo_info_free(e);
	}
	iapo_free_aligned(w.block);
}

/* w without its layers past the first: a one-layer model, whose only layer
 * is the last. */
static int first_layer_only(const iapo_weights *w, iapo_weights *w1)
{
	memset(w1, 0, sizeof *w1);
	w1->cfg = w->cfg;
	w1->cfg.L = 1;
	w1->block = iapo_alloc_aligned(iapo_param_count(&w1->cfg) * sizeof(float));
	if (!w1->block) return -1;
	iapo_params_point(&w1->cfg, w1->block, &w1->p);
	size_t sizes[IAPO_NUM_PARAMS];
	iapo_param_sizes(&w1->cfg, sizes);
	/* per-layer tensors are (L, ...): layer 0 comes first */
	for (int t = 0; t < IAPO_NUM_PARAMS; t++)
		if (sizes[t]) memcpy(w1->p.t[t], w->p.t[t], sizes[t] * sizeof(float));
	return 0;
}

/* The cache's last layer carries only the rows that ask for logits past
 * their K/V. Two sequences' rows interleaved in one call; every row asks for
 * logits (nothing skipped), every third row asks (out of order), or a first
 * call where none asks and a second whose rows attend to the K/V the first
 * left in the last layer: the logits of the rows that ask equal the training
 * forward's, for the three families with two layers and with one. */
static void test_last_layer_rows(void)
{
	enum { N = 10, SPLIT = 6 };
	for (int kind = 0; kind < TINY_NUM; kind++)
		for (int layers = 2; layers >= 1; layers--) {
			iapo_weights w2, w1, *w = &w2;
			if (tiny_weights(kind, 40 + kind, &w2)) {
				CHECK(0, "weights");
				return;
			}
			if (layers == 1) {
				if (first_layer_only(&w2, &w1)) {
					CHECK(0, "weights");
					iapo_free_aligned(w2.block);
					return;
				}
				w = &w1;
			}
			const int V = w->cfg.V;
			int tok[2][N];
			for (int s = 0; s < 2; s++)
				for (int j = 0; j < N; j++) tok[s][j] = (7 * j + 31 * s + kind) % V;
			float *ref = malloc(sizeof(float) * 2 * N * V), *lg = malloc(sizeof(float) * 2 * N * V);
			iapo_fwd *f = NULL;
			CHECK(iapo_fwd_new(w, 1, N, 0, &f) == IAPO_OK, "%s", iapo_errmsg());
			int n = N, tgt[N];
			for (int j = 0; j < N; j++) tgt[j] = -1;
			for (int s = 0; s < 2 && f; s++)
				CHECK(iapo_fwd_forward(f, tok[s], &n, tgt, 1, N, NULL, NULL, ref + (size_t)s * N * V) == IAPO_OK,
				      "%s", iapo_errmsg());
			iapo_fwd_free(f);
			for (int pattern = 0; pattern < 3; pattern++) {
				iapo_kv *kv = NULL;
				CHECK(iapo_kv_new(w, 2, N, &kv) == IAPO_OK, "%s", iapo_errmsg());
				if (!kv) break;
				iapo_kv_row rows[2 * N];
				int asks[2 * N], R = 0;
				for (int j = 0; j < N; j++)
					for (int s = 0; s < 2; s++, R++) {
						rows[R] = (iapo_kv_row){.token = tok[s][j], .pos = j, .seq = s, .slot = j,
									.keys = {.seq0 = s, .len0 = j + 1}};
						asks[R] = pattern == 0 || (pattern == 1 && R % 3 == 2) || (pattern == 2 && j >= SPLIT);
						/* logits rows out of row order */
						rows[R].out = asks[R] ? 2 * N - 1 - R : -1;
					}
				if (pattern == 2) {
					CHECK(iapo_kv_forward_rows(kv, rows, 2 * SPLIT, NULL) == IAPO_OK, "%s", iapo_errmsg());
					CHECK(iapo_kv_forward_rows(kv, rows + 2 * SPLIT, 2 * (N - SPLIT), lg) == IAPO_OK, "%s",
					      iapo_errmsg());
				} else {
					CHECK(iapo_kv_forward_rows(kv, rows, R, lg) == IAPO_OK, "%s", iapo_errmsg());
				}
				double worst = 0, top = 1e-30;
				for (int r = 0; r < R; r++) {
					if (!asks[r]) continue;
					const float *a = lg + (size_t)rows[r].out * V;
					const float *b = ref + ((size_t)rows[r].seq * N + rows[r].pos) * V;
					for (int v = 0; v < V; v++) {
						double d = fabs((double)a[v] - b[v]);
						worst = d > worst || d != d ? (d != d ? INFINITY : d) : worst;
						top = fabs(b[v]) > top ? fabs(b[v]) : top;
					}
				}
				CHECK(worst / top <= TOL, "%s, %d layers, pattern %d: logits rel err %.3g", tiny_names[kind],
				      layers, pattern, worst / top);
				iapo_kv_free(kv);
			}
			free(ref);
			free(lg);
			if (layers == 1) iapo_free_aligned(w1.block);
			iapo_free_aligned(w2.block);
		}
}

/* The estimator on one-layer models: every postfix row but the last of a
 * position stops after its K/V in the first layer already. */
static void test_exact_one_layer(void)
{
	for (int kind = 0; kind < TINY_NUM; kind++) {
		iapo_weights w2, w1;
		if (tiny_weights(kind, 600 + kind, &w2) || first_layer_only(&w2, &w1)) {
			CHECK(0, "weights");
			return;
		}
		batch x;
		batch_make(&x, w1.cfg.V, 3 + kind);
		int post3[3] = {w1.cfg.V - 2, 7, 31};
		iapo_info_opts o = iapo_info_defaults();
		o.postfix = post3;
		o.n_postfix = 3;
		o.answer_tokens = 2;
		o.chunk = 5;
		char what[64];
		snprintf(what, sizeof what, "%s one layer", tiny_names[kind]);
		compare(&w1, &x, &o, NSEQ, what);
		batch_free(&x);
		iapo_free_aligned(w1.block);
		iapo_free_aligned(w2.block);
	}
}

static void test_errors(void)
{
	iapo_weights w;
	if (tiny_weights(TINY_QWEN2, 1, &w)) {
		CHECK(0, "weights");
		return;
	}
	const int V = w.cfg.V;
	iapo_info *e = NULL;
	iapo_info_opts o = iapo_info_defaults();
	CHECK(iapo_info_new(&w, 2, 8, &o, &e) == IAPO_ERR_ARG && !e, "answer mode without a postfix");
	int post[2] = {1, V};
	o.postfix = post;
	o.n_postfix = 2;
	CHECK(iapo_info_new(&w, 2, 8, &o, &e) == IAPO_ERR_ARG && strstr(iapo_errmsg(), "postfix token 1"),
	      "postfix id out of range: %s", iapo_errmsg());
	post[1] = 2;
	o.answer_tokens = 0;
	CHECK(iapo_info_new(&w, 2, 8, &o, &e) == IAPO_ERR_ARG, "N = 0");
	o.answer_tokens = 1;
	o.temperature = 0;
	CHECK(iapo_info_new(&w, 2, 8, &o, &e) == IAPO_ERR_ARG, "temperature 0");
	o.temperature = 1;
	CHECK(iapo_info_new(&w, 0, 8, &o, &e) == IAPO_ERR_ARG, "Bmax 0");
	iapo_predict p;
	CHECK(iapo_predict_parse("last_token", &p) == IAPO_OK && p == IAPO_PREDICT_ANSWER, "last_token alias");
	CHECK(iapo_predict_parse("next_token", &p) == IAPO_OK && p == IAPO_PREDICT_NEXT_TOKEN, "next_token");
	CHECK(iapo_predict_parse("first", &p) == IAPO_ERR_ARG, "bad predict");
	CHECK(!strcmp(iapo_predict_str(IAPO_PREDICT_ANSWER), "answer"), "name");

	CHECK(iapo_info_new(&w, 2, 8, &o, &e) == IAPO_OK, "%s", iapo_errmsg());
	if (!e) return;
	int pr[6] = {1, 2, 3, 4, 5, 6}, co[6] = {7, 8, 9, 10, 11, 12};
	const int *prompts[3] = {pr, pr, pr}, *comps[3] = {co, co, co};
	int plen[3] = {3, 2, 2}, clen[3] = {5, 2, 2};
	float E[3 * 8];
	iapo_info_batch b = {.n = 3, .prompts = prompts, .plen = plen, .comps = comps, .clen = clen};
	CHECK(iapo_info_compute(e, &b, E, NULL, 8, NULL) == IAPO_ERR_ARG, "n > Bmax");
	b.n = 2;
	plen[0] = 4;
	CHECK(iapo_info_compute(e, &b, E, NULL, 8, NULL) == IAPO_ERR_ARG, "plen + clen > Tmax");
	plen[0] = 0;
	CHECK(iapo_info_compute(e, &b, E, NULL, 8, NULL) == IAPO_ERR_ARG, "empty prompt");
	plen[0] = 3;
	CHECK(iapo_info_compute(e, &b, E, NULL, 5, NULL) == IAPO_ERR_ARG, "ld < clen + 1");
	co[4] = V;
	CHECK(iapo_info_compute(e, &b, E, NULL, 8, NULL) == IAPO_ERR_ARG && strstr(iapo_errmsg(), "completion token 4"),
	      "bad completion token: %s", iapo_errmsg());
	co[4] = 11;
	CHECK(iapo_info_compute(e, &b, NULL, NULL, 8, NULL) == IAPO_ERR_ARG, "no E");
	CHECK(iapo_info_compute(e, &b, E, NULL, 8, NULL) == IAPO_OK, "C may be NULL: %s", iapo_errmsg());
	iapo_info_free(e);
	iapo_free_aligned(w.block);
}

int main(void)
{
	(void)tiny_full_logits; /* the shared header's oracle; ours is iapo_info_naive */
	RUN(test_exact_qwen2);
	RUN(test_exact_llama);
	RUN(test_exact_qwen3);
	RUN(test_small_budget);
	RUN(test_short_sequences);
	RUN(test_meaning);
	RUN(test_fewer_positions);
	RUN(test_shared_prefixes);
	RUN(test_last_layer_rows);
	RUN(test_exact_one_layer);
	RUN(test_errors);
	TEST_END();
}
