/*
 * eval.c — pass@k, length@k and token efficiency of a model on a dataset
 * (eval.h). Every (problem, sample) pair is one sequence; sequences are
 * generated in calls of `batch`, across problem boundaries, through one KV
 * cache sized once for the longest prompt. Scoring is the verifier's
 * correctness of the decoded text (special tokens skipped, as vLLM's
 * skip_special_tokens=True).
 *
 * Under MPI (src/dist/) the problems are shared out over the ranks in
 * contiguous blocks; each rank generates and scores its own, then the
 * per-sample results are summed into every rank's full arrays (each slot is
 * written by exactly one rank, so the sum is a gather) and the metrics are
 * computed from them everywhere. Streams are keyed by problem and sample, so
 * the result is the one-process result.
 * Not here: loading, output files, printing.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/mem.h"
#include "core/status.h"
#include "dist/dist.h"
#include "eval/eval.h"
#include "io/json.h"
#include "model/generate.h"
#include "rl/prompt.h"
#include "rl/reward.h"

double iapo_pass_at_k(int n, int c, int k)
{
	if (k < 1 || k > n || c < 0 || c > n) return NAN;
	if (c == 0) return 0.0;
	if (n - c < k) return 1.0;
	/* C(n−c, k)/C(n, k) = Π_{i=n−c+1..n} (1 − k/i) */
	double miss = 1.0;
	for (int i = n - c + 1; i <= n; i++) miss *= 1.0 - (double)k / (double)i;
	return 1.0 - miss;
}

double iapo_pass_at_k_first(const unsigned char *correct, int n, int k)
{
	if (k < 1 || k > n || !correct) return NAN;
	for (int i = 0; i < k; i++)
		if (correct[i]) return 1.0;
	return 0.0;
}

void iapo_eval_opts_default(iapo_eval_opts *o)
{
	memset(o, 0, sizeof *o);
	o->n_samples = 32;
	o->ks = NULL; /* 1, 2, 4, ..., 32 */
	o->max_new_tokens = 1024;
	o->temperature = 1.0f;
	o->top_p = 1.0f;
	o->seed = 42;
	o->batch = 32;
	o->one_shot = 1;
	o->format = IAPO_DATA_AUTO;
}

void iapo_eval_result_free(iapo_eval_result *r)
{
	if (!r) return;
	iapo_free(r->correct);
	iapo_free(r->format_ok);
	iapo_free(r->length);
	iapo_free(r->n_correct);
	iapo_free(r->mean_length);
	memset(r, 0, sizeof *r);
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The ks to use: the caller's, or powers of two up to n. */
static iapo_status resolve_ks(const iapo_eval_opts *o, iapo_eval_result *r)
{
	if (o->n_samples < 1) return iapo_fail(IAPO_ERR_ARG, "eval: n_samples: expected >= 1, found %d", o->n_samples);
	if (!o->ks) {
		for (int k = 1; k <= o->n_samples && r->n_ks < IAPO_EVAL_MAX_KS; k *= 2) r->ks[r->n_ks++] = k;
		return IAPO_OK;
	}
	if (o->n_ks < 1 || o->n_ks > IAPO_EVAL_MAX_KS)
		return iapo_fail(IAPO_ERR_ARG, "eval: ks: expected 1 to %d values, found %d", IAPO_EVAL_MAX_KS, o->n_ks);
	for (int i = 0; i < o->n_ks; i++) {
		if (o->ks[i] < 1 || o->ks[i] > o->n_samples)
			return iapo_fail(IAPO_ERR_ARG, "eval: k = %d: expected 1 <= k <= n_samples = %d", o->ks[i],
					 o->n_samples);
		r->ks[r->n_ks++] = o->ks[i];
	}
	return IAPO_OK;
}

/* End-of-sequence ids: the config's, then the template's end-of-turn ids. */
static int default_eos(const iapo_weights *w, const iapo_tokenizer *tok, int *eos, int max)
{
	int n = 0, t[16];
	for (int i = 0; i < w->cfg.n_eos && n < max; i++) eos[n++] = w->cfg.eos_ids[i];
	int nt = iapo_tokenizer_eos_ids(tok, t, 16);
	for (int i = 0; i < nt && n < max; i++) {
		int dup = 0;
		for (int j = 0; j < n; j++) dup |= eos[j] == t[i];
		if (!dup) eos[n++] = t[i];
	}
	return n;
}

/* Cuts a completion to `budget` tokens, as if generation had stopped there
 * (sampling is per sequence, so the first `budget` tokens are the same). */
static iapo_status cut_to(const iapo_tokenizer *tok, iapo_gen_result *g, int budget)
{
	if (g->n_tokens <= budget) return IAPO_OK;
	g->n_tokens = budget;
	g->n_text_tokens = budget;
	g->finish = IAPO_FINISH_LENGTH;
	g->stop_index = -1;
	size_t cap = g->text ? g->text_len + 1 : 0;
	return iapo_tokenizer_decode(tok, g->tokens, (size_t)budget, 1, &g->text, &g->text_len, &cap);
}

static void metrics(iapo_eval_result *r)
{
	int P = r->n_problems, N = r->n_samples;
	long n_correct = 0, n_format = 0;
	for (int p = 0; p < P; p++) {
		const unsigned char *c = r->correct + (size_t)p * N;
		const int *len = r->length + (size_t)p * N;
		int cc = 0;
		long sum = 0;
		for (int j = 0; j < N; j++) {
			cc += c[j] != 0;
			n_format += r->format_ok[(size_t)p * N + j] != 0;
			sum += len[j];
		}
		r->n_correct[p] = cc;
		r->mean_length[p] = (double)sum / N;
		n_correct += cc;
		for (int i = 0; i < r->n_ks; i++) {
			int k = r->ks[i];
			double unb = iapo_pass_at_k(N, cc, k), first = iapo_pass_at_k_first(c, N, k);
			r->pass_at_k[i] += r->passk_first ? first : unb;
			r->pass_at_k_alt[i] += r->passk_first ? unb : first;
			long lk = 0;
			for (int j = 0; j < k; j++) lk += len[j];
			r->length_at_k[i] += (double)lk / k;
		}
	}
	for (int i = 0; i < r->n_ks; i++) {
		r->pass_at_k[i] /= P;
		r->pass_at_k_alt[i] /= P;
		r->length_at_k[i] /= P;
	}
	int imax = 0;
	for (int i = 1; i < r->n_ks; i++)
		if (r->ks[i] > r->ks[imax]) imax = i;
	r->token_efficiency = r->length_at_k[imax] > 0 ? r->pass_at_k[imax] / r->length_at_k[imax] : 0.0;
	r->accuracy = (double)n_correct / ((double)P * N);
	r->format_rate = (double)n_format / ((double)P * N);
}

/* Sums of this rank's part that the gather adds up. */
typedef struct {
	double prompt_tokens, truncated;
} local_sums;

/* This rank's problems [lo, hi) of the first P: fills their slots of r's
 * per-sample arrays (allocated for all P) and *sums. */
static iapo_status evaluate_local(const iapo_weights *w, const iapo_tokenizer *tok, const iapo_dataset *ds,
				  const iapo_eval_opts *o, iapo_eval_result *r, local_sums *sums)
{
	iapo_status st = IAPO_OK;
	if (!w || !tok || !ds || !o) return iapo_fail(IAPO_ERR_ARG, "eval: expected weights, tokenizer, dataset and options");
	IAPO_TRY(resolve_ks(o, r));
	if (o->max_new_tokens < 0 || o->max_model_len < 0)
		return iapo_fail(IAPO_ERR_ARG, "eval: max_new_tokens and max_model_len: expected >= 0");
	size_t P = ds->n;
	if (o->limit > 0 && o->limit < P) P = o->limit;
	if (P == 0) return iapo_fail(IAPO_ERR_ARG, "eval: expected at least one problem, found an empty dataset");
	const int N = o->n_samples;
	if ((double)P * N > 1e9) return iapo_fail(IAPO_ERR_ARG, "eval: too many samples (%zu problems x %d)", P, N);
	const int batch = o->batch > 0 ? o->batch : N;
	const long total = (long)P * N;
	size_t lo, hi;
	iapo_dist_share(P, &lo, &hi);

	r->n_problems = (int)P;
	r->n_samples = N;
	r->passk_first = o->passk_first;
	int eos[IAPO_MAX_EOS + 16], n_eos = 0;
	const int *eos_ids = o->eos_ids;
	if (!eos_ids) {
		n_eos = default_eos(w, tok, eos, IAPO_MAX_EOS + 16);
		if (n_eos == 0) eos[n_eos++] = -1; /* none: only the budget ends a completion */
		eos_ids = eos;
	} else {
		n_eos = o->n_eos;
	}
	iapo_data_format fmt = o->format != IAPO_DATA_AUTO ? o->format : ds->format;

	int **ids = NULL, *n_ids = NULL, *budget = NULL;
	const int **prompts = NULL;
	int *lens = NULL;
	uint64_t *keys = NULL;
	iapo_gen_result *gen = NULL;
	iapo_kv *kv = NULL;
	r->correct = iapo_calloc((size_t)total, 1);
	r->format_ok = iapo_calloc((size_t)total, 1);
	r->length = iapo_calloc((size_t)total, sizeof(int));
	r->n_correct = iapo_calloc(P, sizeof(int));
	r->mean_length = iapo_calloc(P, sizeof(double));
	ids = iapo_calloc(P, sizeof *ids);
	n_ids = iapo_calloc(P, sizeof *n_ids);
	budget = iapo_calloc(P, sizeof *budget);
	prompts = iapo_calloc((size_t)batch, sizeof *prompts);
	lens = iapo_calloc((size_t)batch, sizeof *lens);
	keys = iapo_calloc((size_t)batch, sizeof *keys);
	gen = iapo_calloc((size_t)batch, sizeof *gen);
	if (!r->correct || !r->format_ok || !r->length || !r->n_correct || !r->mean_length || !ids || !n_ids || !budget ||
	    !prompts || !lens || !keys || !gen) {
		st = iapo_fail(IAPO_ERR_NOMEM, "eval: out of memory for %ld samples", total);
		goto done;
	}

	/* Prompts, and each problem's completion budget. */
	int longest = 1;
	double prompt_tokens = 0;
	for (size_t p = lo; p < hi; p++) {
		size_t n = 0, cap = 0;
		st = iapo_prompt_tokens(tok, fmt, o->system, ds->ex[p].prompt, o->one_shot, &ids[p], &n, &cap);
		if (st != IAPO_OK) goto done;
		if (n == 0 || n > (size_t)1 << 30) {
			st = iapo_fail(IAPO_ERR_ARG, "eval: problem %zu: the prompt has %zu tokens", p, n);
			goto done;
		}
		n_ids[p] = (int)n;
		prompt_tokens += (double)n;
		budget[p] = o->max_new_tokens;
		if (o->max_model_len > 0) {
			int room = o->max_model_len - (int)n;
			if (room < 0) room = 0;
			if (room < budget[p]) budget[p] = room;
		}
		if ((int)n > longest) longest = (int)n;
	}
	sums->prompt_tokens = prompt_tokens;
	if (o->max_new_tokens > 0) {
		st = iapo_kv_new(w, batch, longest + o->max_new_tokens, &kv);
		if (st != IAPO_OK) goto done;
	}

	iapo_gen_opts g = {
		.sampler = {o->temperature, o->top_k, o->top_p},
		.seed = o->seed,
		.keys = keys,
		.eos_ids = eos_ids,
		.n_eos = n_eos,
		.tok = tok,
		/* the weights do not change during an evaluation: the batches
		 * share one bf16 copy in kv (converted by the first) and the
		 * weight packs the first batch makes (a repack is ~0.1 s a
		 * batch at qwen0.5b) */
		.keep_bf16 = 1,
		.keep_packs = 1,
	};
	long truncated = 0;
	const long s_lo = (long)lo * N, s_hi = (long)hi * N;
	for (long s0 = s_lo; s0 < s_hi; s0 += batch) {
		int B = s_hi - s0 < batch ? (int)(s_hi - s0) : batch;
		int need = 0;
		for (int b = 0; b < B; b++) {
			long s = s0 + b;
			size_t p = (size_t)(s / N);
			prompts[b] = ids[p];
			lens[b] = n_ids[p];
			keys[b] = (uint64_t)p << 32 | (uint64_t)(s % N);
			if (budget[p] > need) need = budget[p];
		}
		g.max_new_tokens = need;
		iapo_gen_stats stats;
		st = iapo_generate(w, prompts, lens, B, &g, kv, gen, &stats);
		if (st != IAPO_OK) goto done;
		r->generated_tokens += stats.generated_tokens;
		for (int b = 0; b < B && st == IAPO_OK; b++) st = cut_to(tok, &gen[b], budget[(s0 + b) / N]);
		if (st == IAPO_OK)
			for (int b = 0; b < B; b++) {
				long s = s0 + b;
				size_t p = (size_t)(s / N);
				const char *text = gen[b].text ? gen[b].text : "";
				r->correct[s] = (unsigned char)iapo_answer_is_correct(text, ds->ex[p].label);
				r->format_ok[s] = (unsigned char)iapo_format_ok(text);
				r->length[s] = gen[b].n_tokens;
				truncated += gen[b].finish == IAPO_FINISH_LENGTH;
			}
		iapo_gen_results_free(gen, B);
		if (st != IAPO_OK) goto done;
		if (o->progress) o->progress(o->progress_ctx, s0 + B - s_lo, s_hi - s_lo);
	}
	sums->truncated = (double)truncated;

done:
	for (size_t p = 0; ids && p < P; p++) iapo_free(ids[p]);
	iapo_free(ids);
	iapo_free(n_ids);
	iapo_free(budget);
	iapo_free(prompts);
	iapo_free(lens);
	iapo_free(keys);
	iapo_free(gen);
	iapo_kv_free(kv);
	return st;
}

/* Every rank's samples into every rank's arrays: each slot is non-zero on
 * at most the rank that made it, so an allreduce sum is a gather (exact:
 * small integers in doubles). */
static iapo_status gather(iapo_eval_result *r, local_sums *sums)
{
	if (iapo_dist_size() == 1) return IAPO_OK;
	const size_t total = (size_t)r->n_problems * (size_t)r->n_samples, n = 3 * total + 3;
	double *x = iapo_malloc(n * sizeof(double));
	IAPO_TRY(iapo_dist_agree(x ? IAPO_OK : iapo_fail(IAPO_ERR_NOMEM, "eval: out of memory for %zu samples", total)));
	for (size_t s = 0; s < total; s++) {
		x[s] = r->correct[s];
		x[total + s] = r->format_ok[s];
		x[2 * total + s] = r->length[s];
	}
	x[3 * total] = sums->prompt_tokens;
	x[3 * total + 1] = sums->truncated;
	x[3 * total + 2] = (double)r->generated_tokens;
	iapo_status st = iapo_dist_allreduce_double(x, n, IAPO_DIST_SUM);
	for (size_t s = 0; st == IAPO_OK && s < total; s++) {
		r->correct[s] = (unsigned char)x[s];
		r->format_ok[s] = (unsigned char)x[total + s];
		r->length[s] = (int)x[2 * total + s];
	}
	sums->prompt_tokens = x[3 * total];
	sums->truncated = x[3 * total + 1];
	r->generated_tokens = (long)x[3 * total + 2];
	iapo_free(x);
	return st;
}

/* Collective under MPI: a failure on any rank is returned on all. */
iapo_status iapo_evaluate(const iapo_weights *w, const iapo_tokenizer *tok, const iapo_dataset *ds,
			  const iapo_eval_opts *o, iapo_eval_result *out)
{
	if (!out) return iapo_fail(IAPO_ERR_ARG, "eval: expected a result to fill");
	memset(out, 0, sizeof *out);
	iapo_eval_result r = {0};
	local_sums sums = {0, 0};
	const double t0 = now();
	iapo_status st = iapo_dist_agree(evaluate_local(w, tok, ds, o, &r, &sums));
	if (st == IAPO_OK) st = gather(&r, &sums);
	if (st != IAPO_OK) {
		iapo_eval_result_free(&r);
		return st;
	}
	const double P = r.n_problems, total = P * r.n_samples;
	r.mean_prompt_tokens = sums.prompt_tokens / P;
	r.truncated_rate = sums.truncated / total;
	metrics(&r);
	/* The wall clock of the whole evaluation: the slowest rank's. */
	double secs = now() - t0;
	st = iapo_dist_allreduce_double(&secs, 1, IAPO_DIST_MAX);
	if (st != IAPO_OK) {
		iapo_eval_result_free(&r);
		return st;
	}
	r.seconds = secs;
	r.time_per_problem = r.seconds / P;
	*out = r;
	return IAPO_OK;
}

/* {"k": v, ...} for one per-k array. */
static cJSON *per_k(const iapo_eval_result *r, const double *v)
{
	cJSON *o = cJSON_CreateObject();
	for (int i = 0; o && i < r->n_ks; i++) {
		char key[16];
		snprintf(key, sizeof key, "%d", r->ks[i]);
		if (!cJSON_AddNumberToObject(o, key, v[i])) {
			cJSON_Delete(o);
			return NULL;
		}
	}
	return o;
}

cJSON *iapo_eval_result_json(const iapo_eval_result *r, int details)
{
	iapo_json_init();
	cJSON *o = cJSON_CreateObject();
	if (!o) return NULL;
	int ok = 1;
	ok &= cJSON_AddNumberToObject(o, "n_problems", r->n_problems) != NULL;
	ok &= cJSON_AddNumberToObject(o, "n_samples", r->n_samples) != NULL;
	ok &= cJSON_AddStringToObject(o, "passk", r->passk_first ? "first" : "unbiased") != NULL;
	const double *unb = r->passk_first ? r->pass_at_k_alt : r->pass_at_k;
	const double *first = r->passk_first ? r->pass_at_k : r->pass_at_k_alt;
	ok &= cJSON_AddItemToObject(o, "pass_at_k", per_k(r, r->pass_at_k));
	ok &= cJSON_AddItemToObject(o, "pass_at_k_unbiased", per_k(r, unb));
	ok &= cJSON_AddItemToObject(o, "pass_at_k_first", per_k(r, first));
	ok &= cJSON_AddItemToObject(o, "length_at_k", per_k(r, r->length_at_k));
	ok &= cJSON_AddNumberToObject(o, "token_efficiency", r->token_efficiency) != NULL;
	ok &= cJSON_AddNumberToObject(o, "accuracy", r->accuracy) != NULL;
	ok &= cJSON_AddNumberToObject(o, "format_rate", r->format_rate) != NULL;
	ok &= cJSON_AddNumberToObject(o, "truncated_rate", r->truncated_rate) != NULL;
	ok &= cJSON_AddNumberToObject(o, "mean_prompt_tokens", r->mean_prompt_tokens) != NULL;
	ok &= cJSON_AddNumberToObject(o, "generated_tokens", (double)r->generated_tokens) != NULL;
	ok &= cJSON_AddNumberToObject(o, "seconds", r->seconds) != NULL;
	ok &= cJSON_AddNumberToObject(o, "time_per_problem", r->time_per_problem) != NULL;
	if (ok && details) {
		cJSON *a = cJSON_AddArrayToObject(o, "problems");
		ok &= a != NULL;
		for (int p = 0; ok && p < r->n_problems; p++) {
			cJSON *e = cJSON_CreateObject();
			if (!e || !cJSON_AddItemToArray(a, e)) {
				cJSON_Delete(e);
				ok = 0;
				break;
			}
			ok &= cJSON_AddNumberToObject(e, "index", p) != NULL;
			ok &= cJSON_AddNumberToObject(e, "correct", r->n_correct[p]) != NULL;
			ok &= cJSON_AddNumberToObject(e, "mean_length", r->mean_length[p]) != NULL;
		}
	}
	if (!ok) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}
