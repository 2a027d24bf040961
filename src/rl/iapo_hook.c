/*
 * iapo_hook.c — the trainer hook of iapo_hook.h: estimator calls over the
 * rollout in batches of `batch` sequences, then the token advantages of the
 * whole rollout at once (so the reference normalisation's padded width is
 * the step's longest completion, as in the authors' code).
 */
#include "rl/iapo_hook.h"

#include <string.h>

#include "core/mem.h"
#include "core/progress.h"
#include "core/status.h"

struct iapo_hook {
	const iapo_weights *w;
	iapo_info *est;
	iapo_tokadv_opts adv;
	int n, Tmax, batch, ld;
	float *E, *C;       /* (n, ld) */
	const int **comps;  /* (batch) */
	iapo_hook_metrics last;
};

void iapo_hook_free(iapo_hook *h)
{
	if (!h) return;
	iapo_info_free(h->est);
	iapo_free(h->E);
	iapo_free(h->C);
	iapo_free(h->comps);
	iapo_free(h);
}

iapo_status iapo_hook_new(const iapo_weights *w, int n, int Tmax, const iapo_hook_opts *o, iapo_hook **out)
{
	*out = NULL;
	if (!w || !o || n < 1 || Tmax < 1 || o->batch < 0)
		return iapo_fail(IAPO_ERR_ARG, "IAPO hook: expected weights, options, n >= 1 and Tmax >= 1, found n %d, Tmax %d",
				 n, Tmax);
	if (o->adv.horizon < 1)
		return iapo_fail(IAPO_ERR_ARG, "IAPO hook: horizon: expected >= 1, found %d", o->adv.horizon);
	iapo_hook *h = iapo_calloc(1, sizeof *h);
	if (!h) return iapo_fail(IAPO_ERR_NOMEM, "IAPO hook: out of memory");
	iapo_status st = IAPO_OK;
	h->w = w;
	h->adv = o->adv;
	h->n = n;
	h->Tmax = Tmax;
	h->batch = o->batch ? (o->batch < n ? o->batch : n) : (n < 16 ? n : 16);
	h->ld = Tmax + 1;
	IAPO_CHECK(st, iapo_info_new(w, h->batch, Tmax, &o->info, &h->est));
	IAPO_CHECK(st, iapo_alloc_or_fail((void **)&h->E, sizeof(float) * (size_t)n * h->ld, "IAPO answer entropies"));
	IAPO_CHECK(st, iapo_alloc_or_fail((void **)&h->C, sizeof(float) * (size_t)n * h->ld, "IAPO policy entropies"));
	IAPO_CHECK(st, iapo_alloc_or_fail((void **)&h->comps, sizeof(int *) * (size_t)h->batch, "IAPO completions"));
	*out = h;
	return IAPO_OK;
fail:
	iapo_hook_free(h);
	return st;
}

iapo_status iapo_hook_advantage(void *ctx, const iapo_rollout_view *r, float *adv)
{
	iapo_hook *h = ctx;
	if (!h || !r || !adv) return iapo_fail(IAPO_ERR_ARG, "IAPO hook: expected a hook, a rollout and an output");
	if (r->policy != h->w)
		return iapo_fail(IAPO_ERR_ARG, "IAPO hook: the rollout's policy is not the weights the hook was made for");
	if (r->n > h->n || r->Tc + 1 > h->ld)
		return iapo_fail(IAPO_ERR_ARG,
				 "IAPO hook: rollout: expected at most %d sequences of %d completion tokens, found %d of %d",
				 h->n, h->ld - 1, r->n, r->Tc);
	iapo_info_set_temperature(h->est, r->temperature > 0 ? r->temperature : 1.0f);
	double t0 = iapo_now();
	for (int i0 = 0; i0 < r->n; i0 += h->batch) {
		const int B = r->n - i0 < h->batch ? r->n - i0 : h->batch;
		for (int b = 0; b < B; b++) h->comps[b] = r->comp_tokens + (size_t)(i0 + b) * r->Tc;
		iapo_info_batch batch = {.n = B,
					 .prompts = r->prompt_tokens + i0,
					 .plen = r->prompt_len + i0,
					 .comps = h->comps,
					 .clen = r->comp_len + i0};
		iapo_status st = iapo_info_compute(h->est, &batch, h->E + (size_t)i0 * h->ld, h->C + (size_t)i0 * h->ld,
						   h->ld, NULL);
		if (st != IAPO_OK) return iapo_fail_prefix(st, "IAPO hook: sequences %d..%d", i0, i0 + B - 1);
	}
	double secs = iapo_now() - t0;
	/* The reference normalisation pads to the step's longest completion:
	 * over all MPI ranks (comp_len_max), so a rank's advantages do not
	 * depend on which completions share its part of the step. */
	iapo_tokadv_opts ao = h->adv;
	if (ao.width < 1 && r->comp_len_max > 0) ao.width = r->comp_len_max;
	IAPO_TRY(iapo_tokadv_batch(&ao, r->n, r->comp_len, h->E, h->ld, h->C, h->ld, r->seq_adv, r->rewards, adv,
				   r->Tc));
	iapo_gain_stats gs = {0};
	for (int i = 0; i < r->n; i++) iapo_gain_stats_add(&gs, h->E + (size_t)i * h->ld, r->comp_len[i], IAPO_NEAR_ZERO_GAIN);
	h->last.tokens = gs.tokens;
	h->last.mean_gain = gs.tokens > 0 ? gs.gain_sum / gs.tokens : 0;
	h->last.near_zero_share = gs.tokens > 0 ? gs.near_zero / gs.tokens : 0;
	h->last.seconds = secs;
	return IAPO_OK;
}

void iapo_hook_last_metrics(const iapo_hook *h, iapo_hook_metrics *m) { *m = h->last; }

iapo_status iapo_newline_tokens(const iapo_tokenizer *t, int **ids, int *n)
{
	*ids = NULL;
	*n = 0;
	const int V = iapo_tokenizer_vocab_size(t);
	int *out = iapo_malloc(sizeof(int) * (size_t)(V > 0 ? V : 1));
	if (!out) return iapo_fail(IAPO_ERR_NOMEM, "newline tokens: out of memory");
	char *buf = NULL;
	size_t len = 0, cap = 0;
	int k = 0;
	for (int id = 0; id < V; id++) {
		if (iapo_tokenizer_decode(t, &id, 1, 0, &buf, &len, &cap) != IAPO_OK) {
			iapo_clear_error(); /* a gap in the ids */
			continue;
		}
		if (memchr(buf, '\n', len)) out[k++] = id;
	}
	iapo_free(buf);
	*ids = out;
	*n = k;
	return IAPO_OK;
}
