/*
 * test_eval.c — evaluation (src/eval/eval.h):
 *  1. the pass@k estimators against hand-computed values, exact binomials
 *     and iapo-reference §10 item 17;
 *  2. iapo_evaluate on a tiny model built here so that its greedy completion
 *     is known: a "bigram" model (attention and MLP outputs zeroed, one-hot
 *     embeddings for a few tokens, an untied head mapping each to the next)
 *     that writes "<think>x</think><answer>7</answer><|im_end|>" after the
 *     generation prompt. Greedy, the labels it produces are computed first
 *     and accuracy must be 1; sampled (the head's margin leaves ~20% to the
 *     other tokens), results must not depend on the batch size and must
 *     follow the seed; metrics are recomputed from the per-sample arrays.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/mem.h"
#include "eval/eval.h"
#include "model/generate.h"
#include "rl/prompt.h"
#include "rl/reward.h"
#include "test.h"
#include "tiny_model.h"
#include "tokenizer/tokenizer.h"

/* ---- 1. estimators ---- */

/* C(n, k) exactly (n <= 60). */
static double binom(int n, int k)
{
	if (k < 0 || k > n) return 0;
	unsigned long long r = 1;
	for (int i = 1; i <= k; i++) r = r * (unsigned long long)(n - k + i) / (unsigned long long)i;
	return (double)r;
}

static void test_pass_at_k(void)
{
	CHECK_NEAR(iapo_pass_at_k(4, 1, 2), 0.5, 1e-15, "n=4 c=1 k=2");
	CHECK_NEAR(iapo_pass_at_k(5, 2, 2), 0.7, 1e-15, "n=5 c=2 k=2");
	CHECK(iapo_pass_at_k(32, 0, 8) == 0.0, "c = 0");
	CHECK(iapo_pass_at_k(4, 3, 2) == 1.0 && iapo_pass_at_k(8, 8, 8) == 1.0, "n - c < k");
	CHECK_NEAR(iapo_pass_at_k(10, 3, 1), 0.3, 1e-15, "k = 1 is c/n");
	CHECK_NEAR(iapo_pass_at_k(32, 1, 32), 1.0, 0, "k = n with one correct");
	CHECK(isnan(iapo_pass_at_k(4, 1, 5)) && isnan(iapo_pass_at_k(4, 1, 0)) && isnan(iapo_pass_at_k(4, 5, 1)) &&
		      isnan(iapo_pass_at_k(4, -1, 1)),
	      "invalid arguments give NaN");
	/* against 1 − C(n−c, k)/C(n, k) with exact binomials */
	double worst = 0;
	for (int n = 1; n <= 40; n++)
		for (int c = 0; c <= n; c++)
			for (int k = 1; k <= n; k++) {
				double want = 1.0 - binom(n - c, k) / binom(n, k);
				double d = fabs(iapo_pass_at_k(n, c, k) - want);
				if (d > worst) worst = d;
			}
	CHECK(worst < 1e-12, "max |estimator - exact| = %g", worst);

	/* iapo-reference §10 item 17: flags [0, 0, 1, 0, ...] of 32 count for
	 * pass@4, pass@8, ... but not pass@2. */
	unsigned char f[32] = {0};
	f[2] = 1;
	CHECK(iapo_pass_at_k_first(f, 32, 1) == 0 && iapo_pass_at_k_first(f, 32, 2) == 0, "first-k: k = 1, 2");
	CHECK(iapo_pass_at_k_first(f, 32, 3) == 1 && iapo_pass_at_k_first(f, 32, 4) == 1 &&
		      iapo_pass_at_k_first(f, 32, 8) == 1 && iapo_pass_at_k_first(f, 32, 32) == 1,
	      "first-k: k >= 3");
	/* the unbiased estimator of the same problem (c = 1 of 32) is k/32 */
	CHECK_NEAR(iapo_pass_at_k(32, 1, 2), 2.0 / 32, 1e-15, "unbiased, one correct of 32");
	CHECK(isnan(iapo_pass_at_k_first(f, 32, 33)) && isnan(iapo_pass_at_k_first(f, 32, 0)) &&
		      isnan(iapo_pass_at_k_first(NULL, 32, 1)),
	      "first-k: invalid k");
}

/* ---- 2. a model whose completion we know ---- */

typedef struct {
	iapo_weights w;
	iapo_tokenizer *tok;
	int im_end;
} model;

/* margin: the chain token's logit above all others (0 would be uniform). */
static int make_model(model *m, float margin)
{
	char dir[1024];
	snprintf(dir, sizeof dir, "%s/eval-test-tok", test_env("IAPO_TMP", "/tmp"));
	memset(m, 0, sizeof *m);
	if (iapo_tokenizer_write_bytelevel(dir, NULL, 0) != IAPO_OK || iapo_tokenizer_load(dir, &m->tok) != IAPO_OK) {
		CHECK(0, "tokenizer: %s", iapo_errmsg());
		return 0;
	}
	iapo_config c = tiny_config(IAPO_ARCH_LLAMA);
	c.V = iapo_tokenizer_vocab_size(m->tok);
	c.max_pos = 4096;
	m->im_end = iapo_tokenizer_token_id(m->tok, "<|im_end|>");
	c.n_eos = 1;
	c.eos_ids[0] = m->im_end;
	if (iapo_weights_init_random(&m->w, &c, 7, 0.02f) != IAPO_OK) {
		CHECK(0, "init: %s", iapo_errmsg());
		return 0;
	}
	size_t sizes[IAPO_NUM_PARAMS];
	iapo_param_sizes(&c, sizes);
	/* the residual stream is the embedding alone: attention and MLP add nothing */
	memset(m->w.p.t[IAPO_P_WO], 0, sizes[IAPO_P_WO] * sizeof(float));
	memset(m->w.p.t[IAPO_P_WDOWN], 0, sizes[IAPO_P_WDOWN] * sizeof(float));
	memset(m->w.p.t[IAPO_P_EMBED], 0, sizes[IAPO_P_EMBED] * sizeof(float));
	memset(m->w.p.t[IAPO_P_LMHEAD], 0, sizes[IAPO_P_LMHEAD] * sizeof(float));
	for (size_t i = 0; i < sizes[IAPO_P_NORM]; i++) m->w.p.t[IAPO_P_NORM][i] = 1.0f;
	const char *chain[] = {"\n", "<think>", "x", "</think>", "<answer>", "7", "</answer>", "<|im_end|>"};
	int ids[8];
	for (int i = 0; i < 8; i++) {
		/* byte tokens are ids 0..255 in byte order */
		ids[i] = strlen(chain[i]) == 1 ? (unsigned char)chain[i][0] : iapo_tokenizer_token_id(m->tok, chain[i]);
		CHECK(ids[i] >= 0, "token %s", chain[i]);
	}
	/* token i of the chain: one-hot embedding on dim i; after RMSNorm that is
	 * sqrt(C) on dim i, and the head row of the next token reads it. */
	float scale = margin / sqrtf((float)c.C);
	for (int i = 0; i < 7; i++) {
		m->w.p.t[IAPO_P_EMBED][(size_t)ids[i] * c.C + i] = 1.0f;
		m->w.p.t[IAPO_P_LMHEAD][(size_t)ids[i + 1] * c.C + i] = scale;
	}
	return 1;
}

static void free_model(model *m)
{
	iapo_weights_free(&m->w);
	iapo_tokenizer_free(m->tok);
}

static void make_dataset(iapo_dataset *ds, int P, const char *const *labels)
{
	memset(ds, 0, sizeof *ds);
	ds->ex = iapo_calloc((size_t)P, sizeof *ds->ex);
	ds->n = (size_t)P;
	ds->format = IAPO_DATA_GENERIC;
	for (int p = 0; p < P; p++) {
		char q[128];
		/* prompts of different lengths, so batches are ragged */
		snprintf(q, sizeof q, "What is %d + %d?%.*s", p, 7 - p, 3 * p, "                              ");
		ds->ex[p].prompt = iapo_strdup(q);
		ds->ex[p].label = iapo_strdup(labels ? labels[p] : "0");
	}
}

static void short_prompt(iapo_eval_opts *o)
{
	o->system = "S";
	o->one_shot = 0;
}

/* pass@k, length@k, efficiency and accuracy recomputed from the per-sample arrays. */
static void check_consistent(const iapo_eval_result *r)
{
	int P = r->n_problems, N = r->n_samples;
	long correct = 0;
	for (int i = 0; i < r->n_ks; i++) {
		int k = r->ks[i];
		double pk = 0, pf = 0, lk = 0;
		for (int p = 0; p < P; p++) {
			const unsigned char *c = r->correct + (size_t)p * N;
			int cc = 0;
			for (int j = 0; j < N; j++) cc += c[j];
			pk += iapo_pass_at_k(N, cc, k);
			pf += iapo_pass_at_k_first(c, N, k);
			for (int j = 0; j < k; j++) lk += r->length[(size_t)p * N + j];
		}
		const double *unb = r->passk_first ? r->pass_at_k_alt : r->pass_at_k;
		const double *first = r->passk_first ? r->pass_at_k : r->pass_at_k_alt;
		CHECK_NEAR(unb[i], pk / P, 1e-12, "unbiased pass@k");
		CHECK_NEAR(first[i], pf / P, 1e-12, "first pass@k");
		CHECK_NEAR(r->length_at_k[i], lk / ((double)k * P), 1e-12, "length@k = sum lengths[:, :k] / (k P)");
	}
	for (long s = 0; s < (long)P * N; s++) correct += r->correct[s];
	CHECK_NEAR(r->accuracy, (double)correct / ((double)P * N), 1e-12, "accuracy");
	int imax = 0;
	for (int i = 1; i < r->n_ks; i++)
		if (r->ks[i] > r->ks[imax]) imax = i;
	CHECK_NEAR(r->token_efficiency, r->pass_at_k[imax] / r->length_at_k[imax], 1e-12, "efficiency = pass@kmax / length@kmax");
	for (int p = 0; p < P; p++) {
		int cc = 0;
		for (int j = 0; j < N; j++) cc += r->correct[(size_t)p * N + j];
		CHECK(r->n_correct[p] == cc, "problem %d: n_correct", p);
	}
}

static void test_greedy_labels(void)
{
	model m;
	if (!make_model(&m, 12.0f)) return;
	/* the labels: the greedy completion's answer, computed with generate */
	enum { P = 5 };
	iapo_dataset ds;
	make_dataset(&ds, P, NULL);
	char *labels[P];
	for (int p = 0; p < P; p++) {
		int *ids = NULL;
		size_t n = 0, cap = 0;
		CHECK(iapo_prompt_tokens(m.tok, IAPO_DATA_GENERIC, "S", ds.ex[p].prompt, 0, &ids, &n, &cap) == IAPO_OK, "prompt");
		const int *pr[1] = {ids};
		int len[1] = {(int)n};
		iapo_gen_opts g = {.max_new_tokens = 16, .sampler = {0, 0, 1}, .tok = m.tok};
		iapo_gen_result res[1];
		CHECK(iapo_generate(&m.w, pr, len, 1, &g, NULL, res, NULL) == IAPO_OK, "generate: %s", iapo_errmsg());
		char buf[64];
		CHECK(iapo_answer_extract(res[0].text, buf, sizeof buf), "greedy completion has an answer: %s", res[0].text);
		CHECK(!strcmp(res[0].text, "<think>x</think><answer>7</answer>") && res[0].n_tokens == 7 &&
			      res[0].finish == IAPO_FINISH_EOS,
		      "the model writes its chain: [%s] %d tokens", res[0].text, res[0].n_tokens);
		labels[p] = iapo_strdup(buf);
		iapo_gen_results_free(res, 1);
		iapo_free(ids);
	}
	for (int p = 0; p < P; p++) {
		iapo_free(ds.ex[p].label);
		ds.ex[p].label = labels[p];
	}
	iapo_eval_opts o;
	iapo_eval_opts_default(&o);
	short_prompt(&o);
	o.n_samples = 4;
	static const int ks[] = {1, 2, 4};
	o.ks = ks;
	o.n_ks = 3;
	o.temperature = 0;
	o.max_new_tokens = 16;
	iapo_eval_result r;
	CHECK(iapo_evaluate(&m.w, m.tok, &ds, &o, &r) == IAPO_OK, "evaluate: %s", iapo_errmsg());
	CHECK(r.n_problems == P && r.n_samples == 4 && r.n_ks == 3, "shape");
	CHECK(r.accuracy == 1.0, "accuracy %g at temperature 0 with the greedy labels", r.accuracy);
	for (int i = 0; i < 3; i++)
		CHECK(r.pass_at_k[i] == 1.0 && r.length_at_k[i] == 7.0, "pass@%d %g length@%d %g", ks[i], r.pass_at_k[i],
		      ks[i], r.length_at_k[i]);
	CHECK(r.token_efficiency == 1.0 / 7.0, "efficiency %g", r.token_efficiency);
	CHECK(r.format_rate == 1.0 && r.truncated_rate == 0.0, "format %g truncated %g", r.format_rate, r.truncated_rate);
	check_consistent(&r);
	iapo_eval_result_free(&r);

	/* two of five labels wrong: accuracy and every pass@k 3/5 */
	iapo_free(ds.ex[1].label);
	ds.ex[1].label = iapo_strdup("8");
	iapo_free(ds.ex[3].label);
	ds.ex[3].label = iapo_strdup("x");
	CHECK(iapo_evaluate(&m.w, m.tok, &ds, &o, &r) == IAPO_OK, "evaluate: %s", iapo_errmsg());
	CHECK(r.accuracy == 0.6 && r.pass_at_k[0] == 0.6 && r.pass_at_k[2] == 0.6, "accuracy %g", r.accuracy);
	CHECK(r.n_correct[0] == 4 && r.n_correct[1] == 0 && r.n_correct[3] == 0, "per-problem counts");
	check_consistent(&r);
	cJSON *j = iapo_eval_result_json(&r, 1);
	CHECK(j && cJSON_GetArraySize(cJSON_GetObjectItem(j, "problems")) == P &&
		      cJSON_GetObjectItem(cJSON_GetObjectItem(j, "pass_at_k"), "4")->valuedouble == 0.6 &&
		      !strcmp(cJSON_GetObjectItem(j, "passk")->valuestring, "unbiased"),
	      "json");
	cJSON_Delete(j);
	iapo_eval_result_free(&r);

	/* the token budget: 3 tokens cut every completion before its answer */
	o.max_new_tokens = 3;
	CHECK(iapo_evaluate(&m.w, m.tok, &ds, &o, &r) == IAPO_OK, "evaluate: %s", iapo_errmsg());
	CHECK(r.accuracy == 0 && r.truncated_rate == 1 && r.length_at_k[0] == 3 && r.format_rate == 0, "budget 3");
	iapo_eval_result_free(&r);
	/* max_model_len caps prompt + completion: problem p gets mml - n_p tokens */
	int n_p[P], longest = 0;
	double mean = 0;
	for (int p = 0; p < P; p++) {
		int *ids = NULL;
		size_t n = 0, cap = 0;
		CHECK(iapo_prompt_tokens(m.tok, IAPO_DATA_GENERIC, "S", ds.ex[p].prompt, 0, &ids, &n, &cap) == IAPO_OK, "prompt");
		n_p[p] = (int)n;
		mean += (double)n / P;
		if (n_p[p] > longest) longest = n_p[p];
		iapo_free(ids);
	}
	o.max_new_tokens = 16;
	o.max_model_len = longest + 3;
	CHECK(iapo_evaluate(&m.w, m.tok, &ds, &o, &r) == IAPO_OK, "evaluate: %s", iapo_errmsg());
	CHECK(r.mean_prompt_tokens == mean, "mean prompt tokens %g vs %g", r.mean_prompt_tokens, mean);
	for (int p = 0; p < P; p++) {
		int want = longest + 3 - n_p[p] < 7 ? longest + 3 - n_p[p] : 7;
		for (int i = 0; i < 4; i++) {
			CHECK(r.length[p * 4 + i] == want, "max_model_len: problem %d: length %d, expected %d", p,
			      r.length[p * 4 + i], want);
			CHECK(r.correct[p * 4 + i] == (want == 7 && p != 1 && p != 3), "max_model_len: problem %d correct", p);
		}
	}
	CHECK(n_p[0] + 7 <= longest + 3 && n_p[P - 1] == longest, "the test covers both cut and whole completions");
	iapo_eval_result_free(&r);
	o.max_model_len = 0;

	/* the reference's full prompt (R1 system prompt, one-shot turn) works the same */
	iapo_eval_opts_default(&o);
	o.n_samples = 2;
	o.temperature = 0;
	o.max_new_tokens = 16;
	o.limit = 2;
	CHECK(iapo_evaluate(&m.w, m.tok, &ds, &o, &r) == IAPO_OK, "evaluate: %s", iapo_errmsg());
	CHECK(r.n_problems == 2 && r.n_ks == 2 && r.ks[0] == 1 && r.ks[1] == 2 && r.accuracy == 0.5 &&
		      r.mean_prompt_tokens > 500,
	      "full prompt: %d problems, accuracy %g, %g prompt tokens", r.n_problems, r.accuracy, r.mean_prompt_tokens);
	iapo_eval_result_free(&r);
	iapo_dataset_free(&ds);
	free_model(&m);
}

static int same_samples(const iapo_eval_result *a, const iapo_eval_result *b)
{
	size_t n = (size_t)a->n_problems * a->n_samples;
	return a->n_problems == b->n_problems && a->n_samples == b->n_samples && !memcmp(a->correct, b->correct, n) &&
	       !memcmp(a->length, b->length, n * sizeof(int)) && !memcmp(a->format_ok, b->format_ok, n);
}

static void test_sampled(void)
{
	model m;
	if (!make_model(&m, 7.0f)) return; /* the chain token gets ~80% */
	enum { P = 5, N = 6 };
	const char *labels[P] = {"7", "7", "3", "7", "7"};
	iapo_dataset ds;
	make_dataset(&ds, P, labels);
	iapo_eval_opts o;
	iapo_eval_opts_default(&o);
	short_prompt(&o);
	o.n_samples = N;
	static const int ks[] = {1, 2, 3, 6};
	o.ks = ks;
	o.n_ks = 4;
	o.max_new_tokens = 12;
	o.seed = 1234;
	o.batch = 7;
	iapo_eval_result r[5];
	const int batches[] = {7, 1, 4, 30};
	for (int i = 0; i < 4; i++) {
		o.batch = batches[i];
		CHECK(iapo_evaluate(&m.w, m.tok, &ds, &o, &r[i]) == IAPO_OK, "evaluate: %s", iapo_errmsg());
	}
	for (int i = 1; i < 4; i++)
		CHECK(same_samples(&r[0], &r[i]) && r[0].accuracy == r[i].accuracy &&
			      r[0].token_efficiency == r[i].token_efficiency,
		      "batch %d differs from batch %d", batches[i], batches[0]);
	/* a sampled run that is neither all right nor all wrong, of varied lengths */
	int lmin = 1 << 30, lmax = 0;
	for (int s = 0; s < P * N; s++) {
		if (r[0].length[s] < lmin) lmin = r[0].length[s];
		if (r[0].length[s] > lmax) lmax = r[0].length[s];
	}
	CHECK(r[0].accuracy > 0 && r[0].accuracy < 0.8 && lmin < lmax, "accuracy %g, lengths %d..%d", r[0].accuracy, lmin,
	      lmax);
	CHECK(r[0].n_correct[2] == 0, "a problem labelled 3 is never right");
	check_consistent(&r[0]);
	/* the seed changes the samples; the same seed repeats them */
	o.seed = 1235;
	CHECK(iapo_evaluate(&m.w, m.tok, &ds, &o, &r[4]) == IAPO_OK, "evaluate: %s", iapo_errmsg());
	CHECK(!same_samples(&r[0], &r[4]), "another seed gives the same samples");
	/* --passk first: the other estimator in pass_at_k, the same samples */
	iapo_eval_result f;
	o.seed = 1234;
	o.passk_first = 1;
	CHECK(iapo_evaluate(&m.w, m.tok, &ds, &o, &f) == IAPO_OK, "evaluate: %s", iapo_errmsg());
	CHECK(same_samples(&r[0], &f), "passk_first changed the samples");
	for (int i = 0; i < 4; i++)
		CHECK(f.pass_at_k[i] == r[0].pass_at_k_alt[i] && f.pass_at_k_alt[i] == r[0].pass_at_k[i], "estimators swap");
	CHECK(f.pass_at_k[3] == r[0].pass_at_k[3], "at k = n both estimators agree");
	check_consistent(&f);
	/* limit: the first problems' samples are unchanged (keys are per problem index) */
	iapo_eval_result l;
	o.passk_first = 0;
	o.limit = 2;
	CHECK(iapo_evaluate(&m.w, m.tok, &ds, &o, &l) == IAPO_OK, "evaluate: %s", iapo_errmsg());
	CHECK(l.n_problems == 2 && !memcmp(l.length, r[0].length, sizeof(int) * 2 * N) &&
		      !memcmp(l.correct, r[0].correct, 2 * N),
	      "limit changes the first problems' samples");
	iapo_eval_result_free(&l);
	iapo_eval_result_free(&f);
	for (int i = 0; i < 5; i++) iapo_eval_result_free(&r[i]);
	iapo_dataset_free(&ds);
	free_model(&m);
}

/* A random model (attention and MLP active, weights far from uniform): the
 * ragged cross-problem batches give the same samples as one sequence at a time. */
static void test_random_model_batching(void)
{
	model m;
	if (!make_model(&m, 7.0f)) return;
	iapo_weights_free(&m.w);
	iapo_config c = tiny_config(IAPO_ARCH_QWEN2);
	c.V = iapo_tokenizer_vocab_size(m.tok);
	c.max_pos = 4096;
	c.n_eos = 1;
	c.eos_ids[0] = m.im_end;
	CHECK(iapo_weights_init_random(&m.w, &c, 99, 0.4f) == IAPO_OK, "init: %s", iapo_errmsg());
	iapo_dataset ds;
	make_dataset(&ds, 4, NULL);
	iapo_eval_opts o;
	iapo_eval_opts_default(&o);
	short_prompt(&o);
	o.n_samples = 3;
	o.ks = NULL;
	o.max_new_tokens = 10;
	iapo_eval_result a, b;
	o.batch = 1;
	CHECK(iapo_evaluate(&m.w, m.tok, &ds, &o, &a) == IAPO_OK, "evaluate: %s", iapo_errmsg());
	o.batch = 5;
	CHECK(iapo_evaluate(&m.w, m.tok, &ds, &o, &b) == IAPO_OK, "evaluate: %s", iapo_errmsg());
	CHECK(same_samples(&a, &b), "batch 5 differs from one at a time");
	CHECK(a.generated_tokens == b.generated_tokens && a.generated_tokens > 0, "generated tokens %ld vs %ld",
	      a.generated_tokens, b.generated_tokens);
	iapo_eval_result_free(&a);
	iapo_eval_result_free(&b);
	iapo_dataset_free(&ds);
	free_model(&m);
}

static void test_bad_options(void)
{
	model m;
	if (!make_model(&m, 7.0f)) return;
	iapo_dataset ds;
	make_dataset(&ds, 2, NULL);
	iapo_eval_opts o;
	iapo_eval_opts_default(&o);
	o.n_samples = 4;
	iapo_eval_result r;
	static const int big[] = {1, 8}, zero[] = {0};
	o.ks = big;
	o.n_ks = 2;
	CHECK(iapo_evaluate(&m.w, m.tok, &ds, &o, &r) == IAPO_ERR_ARG && strstr(iapo_errmsg(), "k = 8") && !r.correct,
	      "k > n: %s", iapo_errmsg());
	o.ks = zero;
	o.n_ks = 1;
	CHECK(iapo_evaluate(&m.w, m.tok, &ds, &o, &r) == IAPO_ERR_ARG, "k = 0");
	o.ks = NULL;
	o.n_samples = 0;
	CHECK(iapo_evaluate(&m.w, m.tok, &ds, &o, &r) == IAPO_ERR_ARG && strstr(iapo_errmsg(), "n_samples"), "n = 0");
	o.n_samples = 2;
	iapo_dataset empty = {0};
	CHECK(iapo_evaluate(&m.w, m.tok, &empty, &o, &r) == IAPO_ERR_ARG && strstr(iapo_errmsg(), "empty"), "empty dataset");
	iapo_dataset_free(&ds);
	free_model(&m);
}

int main(void)
{
	RUN(test_pass_at_k);
	RUN(test_greedy_labels);
	RUN(test_sampled);
	RUN(test_random_model_batching);
	RUN(test_bad_options);
	TEST_END();
}
