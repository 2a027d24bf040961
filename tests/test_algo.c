/*
 * test_algo.c — the --algo stages of rl/algo.h on hand-made rollout buffers
 * (no model: a fake resampler writes the "new" completions): the options
 * each algo defaults and refuses; reward shaping (DAPO overlong, Kimi length
 * reward) added to the raw rewards; dynamic sampling (which groups are
 * resampled, with which attempt, what is dropped, the loss mask and its
 * normalisers); GFPO selection and compaction of the buffer; the S-GRPO mask
 * (item 13 shapes, determinism by step); the attempt-keyed sample streams.
 */
#include "core/mem.h"
#include "core/status.h"
#include "rl/algo.h"
#include "rl/options.h"
#include "test.h"

#define TC 10
#define NMAX 32

static void set(iapo_train_opts *o, const char *k, const char *v)
{
	if (iapo_train_opts_set(o, k, v) != IAPO_OK) CHECK(0, "set %s: %s", k, iapo_errmsg());
}

/* Defaults + the required options, then name/value pairs; resolved. */
static iapo_status opts(iapo_train_opts *o, const char *const *kv)
{
	if (iapo_train_opts_default(o) != IAPO_OK) return IAPO_ERR_NOMEM;
	set(o, "model", "m");
	set(o, "data", "d");
	set(o, "out", "o");
	set(o, "max-completion-tokens", "10");
	for (; kv && kv[0]; kv += 2) set(o, kv[0], kv[1]);
	return iapo_train_opts_resolve(o);
}

typedef struct {
	int row[NMAX], plen[NMAX], clen[NMAX], finish[NMAX], correct[NMAX], fmt_ok[NMAX], ctok[NMAX * TC];
	const int *pptr[NMAX];
	float reward[NMAX];
	int prompt[4];
} buf;

static iapo_algo_buffer view(buf *b, int n, int group)
{
	iapo_algo_buffer v = {.n = n, .group = group, .Tc = TC, .gen = 3, .row = b->row, .plen = b->plen,
			      .clen = b->clen, .finish = b->finish, .correct = b->correct, .fmt_ok = b->fmt_ok,
			      .ctok = b->ctok, .pptr = b->pptr, .reward = b->reward};
	return v;
}

static void fill(buf *b, int n, int group, const float *r, const int *len)
{
	memset(b, 0, sizeof *b);
	for (int i = 0; i < n; i++) {
		b->row[i] = 100 + i / group;
		b->plen[i] = 4;
		b->pptr[i] = b->prompt;
		b->clen[i] = len ? len[i] : 5;
		b->correct[i] = r[i] > 0;
		b->reward[i] = r[i];
		for (int t = 0; t < TC; t++) b->ctok[i * TC + t] = i * 100 + t;
	}
}

/* The fake resampler: attempt a gives the listed slots the rewards of
 * script[a - 1][slot] and records what it was asked. */
typedef struct {
	buf *b;
	const float (*script)[NMAX];
	int calls, last_attempt, asked[8][NMAX], n_asked[8];
} fake;

static iapo_status fake_resample(void *ctx, const int *seqs, int n, int attempt)
{
	fake *f = ctx;
	if (f->calls < 8) {
		memcpy(f->asked[f->calls], seqs, sizeof(int) * (size_t)n);
		f->n_asked[f->calls] = n;
	}
	f->calls++;
	f->last_attempt = attempt;
	for (int k = 0; k < n; k++) {
		int i = seqs[k];
		f->b->reward[i] = f->script[attempt - 1][i];
		f->b->correct[i] = f->b->reward[i] > 0;
		f->b->ctok[i * TC] = 1000 * attempt + i;
	}
	return IAPO_OK;
}

static void test_options(void)
{
	iapo_train_opts o;
	const char *dapo[] = {"algo", "dapo", NULL};
	CHECK(opts(&o, dapo) == IAPO_OK, "%s", iapo_errmsg());
	CHECK(o.epsilon_high == 0.28 && !strcmp(o.loss_type, "bnpo") && !strcmp(o.dynamic_sampling, "resample") &&
		      o.overlong_buffer == 2,
	      "dapo defaults: eps_high %g, loss %s, dynamic %s, overlong buffer %ld", o.epsilon_high, o.loss_type,
	      o.dynamic_sampling, o.overlong_buffer);
	cJSON *j = iapo_train_opts_to_json(&o);
	char *txt = j ? cJSON_PrintUnformatted(j) : NULL;
	CHECK(txt && strstr(txt, "\"dynamic-sampling\":\"resample\"") && strstr(txt, "\"overlong-buffer\":2") &&
		      strstr(txt, "\"gfpo-keep\":6") && strstr(txt, "\"postfix\":\"</think><answer>\""),
	      "config JSON records the resolved algo options: %s", txt ? txt : "(null)");
	iapo_free(txt);
	cJSON_Delete(j);
	iapo_train_opts_free(&o);
	const char *dapo2[] = {"algo", "dapo", "epsilon-high", "0.3", "dynamic-sampling", "drop", "loss-type", "grpo", NULL};
	CHECK(opts(&o, dapo2) == IAPO_OK && o.epsilon_high == 0.3 && !strcmp(o.dynamic_sampling, "drop") &&
		      !strcmp(o.loss_type, "grpo"),
	      "given options win over dapo's defaults");
	iapo_train_opts_free(&o);
	const char *grpo[] = {"dynamic-sampling", "drop", "overlong-buffer", "3", NULL};
	CHECK(opts(&o, grpo) == IAPO_OK && o.epsilon_high == 0.2 && !strcmp(o.dynamic_sampling, "drop"),
	      "DAPO's parts alone with grpo");
	iapo_train_opts_free(&o);

	const char *gfpo[] = {"algo", "gfpo", NULL};
	CHECK(opts(&o, gfpo) == IAPO_OK && o.num_generations == 6 && o.gfpo_sample == 8 && !strcmp(o.loss_type, "grpo") &&
		      iapo_algo_sampled_group(&o) == 8,
	      "gfpo: group 6 of 8 sampled, loss grpo (G %ld)", o.num_generations);
	iapo_train_opts_free(&o);
	const char *gfpo2[] = {"algo", "gfpo", "num-generations", "4", NULL};
	CHECK(opts(&o, gfpo2) == IAPO_OK && o.gfpo_keep == 4 && o.num_generations == 4, "gfpo: --num-generations is k");
	iapo_train_opts_free(&o);
	const char *gfpo3[] = {"algo", "gfpo", "num-generations", "4", "gfpo-keep", "5", NULL};
	CHECK(opts(&o, gfpo3) == IAPO_ERR_ARG && strstr(iapo_errmsg(), "--gfpo-keep"), "gfpo: k twice: %s", iapo_errmsg());
	iapo_train_opts_free(&o);
	const char *gfpo4[] = {"algo", "gfpo", "gfpo-sample", "4", NULL};
	CHECK(opts(&o, gfpo4) == IAPO_ERR_ARG && strstr(iapo_errmsg(), "--gfpo-sample 4"), "gfpo: G' < k: %s", iapo_errmsg());
	iapo_train_opts_free(&o);
	const char *sg[] = {"algo", "sgrpo", NULL};
	CHECK(opts(&o, sg) == IAPO_OK && !strcmp(o.loss_type, "grpo") && o.sgrpo_alpha == 150 && o.sgrpo_k == 341,
	      "sgrpo defaults");
	iapo_train_opts_free(&o);
	const char *lp[] = {"algo", "lenpen", NULL};
	CHECK(opts(&o, lp) == IAPO_OK && o.lenpen_weight == 1, "lenpen: weight 1");
	iapo_train_opts_free(&o);
	const char *bad1[] = {"algo", "iapo", "info-stride", "4", "info-at", "newline", NULL};
	CHECK(opts(&o, bad1) == IAPO_ERR_ARG && strstr(iapo_errmsg(), "--info-stride"), "stride + newline: %s", iapo_errmsg());
	iapo_train_opts_free(&o);
	const char *bad2[] = {"algo", "iapo", "postfix", "", NULL};
	CHECK(opts(&o, bad2) == IAPO_ERR_ARG && strstr(iapo_errmsg(), "--postfix"), "empty postfix: %s", iapo_errmsg());
	iapo_train_opts_free(&o);
	const char *ok2[] = {"algo", "iapo", "postfix", "", "predict", "next_token", NULL};
	CHECK(opts(&o, ok2) == IAPO_OK, "next_token needs no postfix: %s", iapo_errmsg());
	iapo_train_opts_free(&o);
	const char *bad3[] = {"overlong-buffer", "11", NULL};
	CHECK(opts(&o, bad3) == IAPO_ERR_ARG && strstr(iapo_errmsg(), "--overlong-buffer 11"), "buffer > L_max: %s",
	      iapo_errmsg());
	iapo_train_opts_free(&o);
	iapo_train_opts_default(&o);
	CHECK(iapo_train_opts_set(&o, "algo", "ppo") == IAPO_ERR_ARG, "unknown algo refused");
	CHECK(iapo_train_opts_set(&o, "gfpo-metric", "shortest") == IAPO_ERR_ARG, "unknown GFPO metric refused");
	iapo_train_opts_free(&o);
}

/* An algorithm without model or tokenizer for n_seqs sequences of up to T
 * tokens; NULL after a failed CHECK. */
static iapo_algo *new_algo(const iapo_train_opts *o, int n_seqs, int T)
{
	iapo_algo *a = NULL;
	CHECK(iapo_algo_new(o, NULL, NULL, n_seqs, T, &a) == IAPO_OK, "%s", iapo_errmsg());
	return a;
}

static void test_shaping(void)
{
	iapo_train_opts o;
	const char *kv[] = {"num-generations", "4", "overlong-buffer", "4", "overlong-penalty", "0.5", "lenpen-weight", "2", NULL};
	CHECK(opts(&o, kv) == IAPO_OK, "%s", iapo_errmsg());
	iapo_algo *a = new_algo(&o, 4, 20);
	if (!a) return;
	buf b;
	const float r[4] = {1, -1, 1, -1};
	const int len[4] = {10, 7, 6, 3};
	fill(&b, 4, 4, r, len);
	iapo_algo_buffer v = view(&b, 4, 4);
	CHECK(iapo_algo_after_rollout(a, &v, NULL, NULL) == IAPO_OK, "%s", iapo_errmsg());
	/* overlong (L_max 10, buffer 4, x 0.5): free up to 6, then -(len - 6)/4 x 0.5 = [-0.5, -0.125, 0, 0];
	 * length reward over lengths 3..10: λ = 0.5 - (len - 3)/7 = [-0.5, -1/14, 1/14, 0.5], x 2;
	 * the wrong members 1 and 3 get min(0, λ) = -1/14 and 0. */
	const double lr[4] = {2 * -0.5, 2 * (-1.0 / 14), 2 * (1.0 / 14), 0};
	const double want[4] = {1 - 0.5 + lr[0], -1 - 0.125 + lr[1], 1 + lr[2], -1};
	for (int i = 0; i < 4; i++) CHECK_NEAR(b.reward[i], want[i], 1e-6, "shaped reward");
	CHECK(v.n == 4 && v.group == 4, "nothing selected");
	CHECK(iapo_algo_loss_mask(a, &v, 0, NULL, NULL) == NULL, "no mask without dynamic sampling or S-GRPO");
	iapo_algo_metrics m;
	CHECK(iapo_algo_step_metrics(a, 1, &m) == IAPO_OK, "%s", iapo_errmsg());
	CHECK(m.has_overlong && m.has_lenpen && !m.has_dynamic && !m.has_gfpo && !m.has_mask, "fields");
	CHECK_NEAR(m.overlong_penalty_mean, -(0.5 + 0.125) / 4, 1e-6, "overlong mean");
	CHECK_NEAR(m.length_reward_mean, -0.25, 1e-6, "length reward mean");
	cJSON *j = cJSON_CreateObject();
	CHECK(iapo_algo_metrics_json(j, &m) == 0, "json");
	char *txt = cJSON_PrintUnformatted(j);
	CHECK(strstr(txt, "\"overlong_penalty_mean\":-0.15625") && strstr(txt, "\"length_reward_mean\":"), "%s", txt);
	iapo_free(txt);
	cJSON_Delete(j);
	iapo_algo_free(a);
	iapo_train_opts_free(&o);
}

static void test_dynamic_resample(void)
{
	iapo_train_opts o;
	const char *kv[] = {"num-generations", "4", "dynamic-sampling", "resample", "dynamic-max-tries", "3", NULL};
	CHECK(opts(&o, kv) == IAPO_OK, "%s", iapo_errmsg());
	iapo_algo *a = new_algo(&o, 12, 20);
	if (!a) return;
	buf b;
	const float r[12] = {1, -1, 1, -1, /* informative */ -1, -1, -1, -1, /* all wrong */ 1, 1, 1, 1 /* all right */};
	const int len[12] = {3, 4, 5, 6, 2, 2, 2, 2, 7, 7, 7, 7};
	fill(&b, 12, 4, r, len);
	/* attempt 1: group 1 still all wrong, group 2 mixed; attempt 2: group 1 mixed. */
	static const float script[3][NMAX] = {
		{0, 0, 0, 0, -1, -1, -1, -1, 1, -1, 1, 1},
		{0, 0, 0, 0, 1, -1, -1, -1, 9, 9, 9, 9},
		{0},
	};
	fake f = {.b = &b, .script = script};
	iapo_algo_buffer v = view(&b, 12, 4);
	CHECK(iapo_algo_after_rollout(a, &v, fake_resample, &f) == IAPO_OK, "%s", iapo_errmsg());
	CHECK(f.calls == 2 && f.last_attempt == 2, "two rounds, found %d (last attempt %d)", f.calls, f.last_attempt);
	CHECK(f.n_asked[0] == 8 && f.asked[0][0] == 4 && f.asked[0][7] == 11, "round 1: groups 1 and 2, all 4 slots each");
	CHECK(f.n_asked[1] == 4 && f.asked[1][0] == 4 && f.asked[1][3] == 7, "round 2: group 1 only");
	CHECK(b.reward[8] == 1 && b.reward[9] == -1 && b.ctok[4 * TC] == 2004 && b.ctok[8 * TC] == 1008,
	      "the resampled completions stay in their slots");
	iapo_algo_metrics m;
	CHECK(iapo_algo_step_metrics(a, 1, &m) == IAPO_OK, "%s", iapo_errmsg());
	CHECK(m.has_dynamic && m.dynamic_groups_resampled == 2 && m.dynamic_resamples == 3 && m.dynamic_groups_dropped == 0,
	      "resampled %g, resamples %g, dropped %g", m.dynamic_groups_resampled, m.dynamic_resamples,
	      m.dynamic_groups_dropped);
	double seqs = -1, toks = -1;
	const float *mask = iapo_algo_loss_mask(a, &v, 5, &seqs, &toks);
	CHECK(mask && seqs == 12 && toks == 3 + 4 + 5 + 6 + 8 + 28, "nothing dropped: %g seqs, %g tokens", seqs, toks);
	iapo_algo_free(a);

	/* One round only: group 1 stays all wrong and is dropped from the loss. */
	set(&o, "dynamic-max-tries", "1");
	a = new_algo(&o, 12, 20);
	if (!a) return;
	fill(&b, 12, 4, r, len);
	f.calls = 0;
	v = view(&b, 12, 4);
	CHECK(iapo_algo_after_rollout(a, &v, fake_resample, &f) == IAPO_OK && f.calls == 1, "one round");
	CHECK(iapo_algo_step_metrics(a, 1, &m) == IAPO_OK && m.dynamic_groups_dropped == 1 && m.dynamic_groups_resampled == 2,
	      "dropped %g", m.dynamic_groups_dropped);
	mask = iapo_algo_loss_mask(a, &v, 5, &seqs, &toks);
	CHECK(mask && seqs == 8 && toks == 18 + 28, "group 1 dropped: %g seqs, %g tokens", seqs, toks);
	if (mask) {
		CHECK(mask[4 * TC] == 0 && mask[7 * TC + 1] == 0 && mask[0] == 1 && mask[3 * TC + 5] == 1 && mask[8 * TC + 6] == 1,
		      "mask rows");
	}
	CHECK(iapo_algo_step_metrics(a, 0, &m) == IAPO_OK && !m.rollout && m.has_mask &&
		      fabs(m.loss_token_fraction - 46.0 / 54) < 1e-12,
	      "token fraction %g (reported on every step)", m.loss_token_fraction);
	cJSON *j = cJSON_CreateObject();
	iapo_algo_metrics_json(j, &m);
	CHECK(!cJSON_GetObjectItem(j, "dynamic_groups_dropped") && cJSON_GetObjectItem(j, "loss_token_fraction"),
	      "a later pass over the rollout reports no rollout fields");
	cJSON_Delete(j);
	iapo_algo_free(a);

	/* drop: no resampling, both equal groups leave the loss. */
	set(&o, "dynamic-sampling", "drop");
	a = new_algo(&o, 12, 20);
	if (!a) return;
	fill(&b, 12, 4, r, len);
	f.calls = 0;
	v = view(&b, 12, 4);
	CHECK(iapo_algo_after_rollout(a, &v, fake_resample, &f) == IAPO_OK && f.calls == 0, "drop never resamples");
	CHECK(iapo_algo_step_metrics(a, 1, &m) == IAPO_OK && m.dynamic_groups_dropped == 2 && m.dynamic_resamples == 0, "drop");
	mask = iapo_algo_loss_mask(a, &v, 5, &seqs, &toks);
	CHECK(mask && seqs == 4 && toks == 18, "drop: %g seqs, %g tokens", seqs, toks);
	iapo_algo_free(a);
	iapo_train_opts_free(&o);
}

static void test_gfpo(void)
{
	iapo_train_opts o;
	const char *kv[] = {"algo", "gfpo", NULL};
	CHECK(opts(&o, kv) == IAPO_OK, "%s", iapo_errmsg());
	iapo_algo *a = new_algo(&o, 12, 20);
	if (!a) return;
	buf b;
	const float r[16] = {1, -1, 1, 1, -1, 1, -1, 1, 1, 1, 1, 1, -1, 1, 1, -1};
	const int len[16] = {5, 3, 9, 1, 7, 2, 8, 4, /* item 12 */ 8, 7, 6, 5, 4, 3, 2, 1};
	fill(&b, 16, 8, r, len);
	iapo_algo_buffer v = view(&b, 16, 8);
	CHECK(iapo_algo_after_rollout(a, &v, NULL, NULL) == IAPO_OK, "%s", iapo_errmsg());
	CHECK(v.n == 12 && v.group == 6, "compacted to 2 groups of 6: %d of %d", v.n, v.group);
	const int src[12] = {0, 1, 3, 4, 5, 7, 10, 11, 12, 13, 14, 15};
	for (int d = 0; d < 12; d++) {
		int s = src[d];
		CHECK(b.clen[d] == len[s] && b.reward[d] == r[s] && b.row[d] == 100 + s / 8 && b.ctok[d * TC] == s * 100 &&
			      b.ctok[d * TC + TC - 1] == s * 100 + TC - 1,
		      "slot %d holds sampled %d", d, s);
	}
	iapo_algo_metrics m;
	CHECK(iapo_algo_step_metrics(a, 1, &m) == IAPO_OK && m.has_gfpo, "%s", iapo_errmsg());
	CHECK_NEAR(m.gfpo_length_sampled, 75.0 / 16, 1e-12, "sampled length");
	CHECK_NEAR(m.gfpo_length_kept, (22.0 + 21.0) / 12, 1e-12, "kept length");
	CHECK(iapo_algo_loss_mask(a, &v, 0, NULL, NULL) == NULL, "GFPO drops by compaction, no mask");
	iapo_algo_free(a);

	/* With dynamic sampling the survivors decide, and a resample takes all G' slots. */
	set(&o, "dynamic-sampling", "resample");
	set(&o, "dynamic-max-tries", "1");
	a = new_algo(&o, 12, 20);
	if (!a) return;
	/* group 0: the 6 shortest all reward 1 (the long ones -1): resampled. */
	const float r2[16] = {1, 1, -1, 1, 1, 1, -1, 1, 1, 1, 1, 1, -1, 1, 1, -1};
	static const float script[1][NMAX] = {{1, -1, 1, 1, -1, 1, -1, 1}};
	fill(&b, 16, 8, r2, len);
	fake f = {.b = &b, .script = script};
	v = view(&b, 16, 8);
	CHECK(iapo_algo_after_rollout(a, &v, fake_resample, &f) == IAPO_OK, "%s", iapo_errmsg());
	CHECK(f.calls == 1 && f.n_asked[0] == 8 && f.asked[0][0] == 0 && f.asked[0][7] == 7, "group 0's 8 slots resampled");
	CHECK(iapo_algo_step_metrics(a, 1, &m) == IAPO_OK && m.dynamic_groups_dropped == 0, "kept");
	CHECK(v.n == 12 && b.ctok[0] == 1000 && b.reward[1] == -1, "compacted after the resample");
	iapo_algo_free(a);
	iapo_train_opts_free(&o);
}

static void test_sgrpo(void)
{
	iapo_train_opts o;
	const char *kv[] = {"algo", "sgrpo", "num-generations", "2", "sgrpo-alpha", "2", "sgrpo-k", "4", NULL};
	CHECK(opts(&o, kv) == IAPO_OK, "%s", iapo_errmsg());
	iapo_algo *a = new_algo(&o, 20, 20);
	if (!a) return;
	buf b;
	float r[20];
	int len[20];
	for (int i = 0; i < 20; i++) r[i] = i % 3 ? 1.0f : -1.0f, len[i] = i % 2 ? 3 : 6;
	fill(&b, 20, 2, r, len);
	iapo_algo_buffer v = view(&b, 20, 2);
	CHECK(iapo_algo_after_rollout(a, &v, NULL, NULL) == IAPO_OK, "%s", iapo_errmsg());
	double seqs, toks;
	const float *m = iapo_algo_loss_mask(a, &v, 7, &seqs, &toks);
	CHECK(m != NULL, "mask");
	if (!m) return;
	float first[20 * TC];
	memcpy(first, m, sizeof first);
	double want = 0;
	int b1 = 0;
	for (int i = 0; i < 20; i++) {
		const float *row = m + i * TC;
		CHECK(row[0] == 1 && row[1] == 1, "first alpha kept");
		if (len[i] == 6) {
			CHECK(row[2] == 0 && row[3] == 0 && row[4] == 0 && row[5] == 0, "L >= k: only alpha (item 13)");
			want += 2;
		} else {
			CHECK(row[2] == 0 || row[2] == 1, "L < k: B at t = 2");
			want += 2 + row[2];
			b1 += row[2] == 1;
		}
	}
	CHECK(seqs == 20 && toks == want, "normalisers: %g seqs, %g tokens (expected %g)", seqs, toks, want);
	CHECK(b1 > 0 && b1 < 10, "Bernoulli draws vary: %d of 10", b1);
	m = iapo_algo_loss_mask(a, &v, 7, &seqs, &toks);
	CHECK(!memcmp(first, m, sizeof first), "the same step draws the same mask");
	int diff = 0;
	for (long s = 8; s < 12; s++) {
		m = iapo_algo_loss_mask(a, &v, s, &seqs, &toks);
		diff |= memcmp(first, m, sizeof first) != 0;
	}
	CHECK(diff, "another step, another mask");
	iapo_algo_metrics mt;
	CHECK(iapo_algo_step_metrics(a, 0, &mt) == IAPO_OK && mt.has_mask && mt.loss_token_fraction > 0 &&
		      mt.loss_token_fraction < 1,
	      "token fraction %g", mt.loss_token_fraction);
	iapo_algo_free(a);
	iapo_train_opts_free(&o);
}

static void test_keys(void)
{
	uint64_t k0 = iapo_algo_sample_key(5, 17, 3, 0), k1 = iapo_algo_sample_key(5, 17, 3, 1);
	uint64_t k2 = iapo_algo_sample_key(5, 17, 3, 2);
	CHECK(k0 == iapo_trainer_sample_key(5, 17, 3), "attempt 0 is the GRPO key");
	CHECK(k1 != k0 && k2 != k0 && k2 != k1 && k1 != iapo_algo_sample_key(5, 17, 4, 1) &&
		      k1 == iapo_algo_sample_key(5, 17, 3, 1),
	      "attempts have their own streams");
}

int main(void)
{
	RUN(test_options);
	RUN(test_shaping);
	RUN(test_dynamic_resample);
	RUN(test_gfpo);
	RUN(test_sgrpo);
	RUN(test_keys);
	TEST_END();
}
