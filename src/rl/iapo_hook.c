/*
 * iapo_hook.c — the trainer hook of iapo_hook.h: the sequences the loss
 * reads, each either through the rollout's own cache (one estimator call for
 * all of them) or, where the trainer vouches for no slot, through the
 * estimator's cache in batches of `batch`; then the token advantages of the
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
	int n, Tmax, batch, ld, no_reuse;
	float *E, *C;       /* (n, ld) */
	float *Eg, *Cg;     /* (n, ld): a gathered subset's rows */
	const int **comps, **prompts; /* (n) gathered */
	int *plen, *clen, *slot, *idx; /* (n) gathered */
	const float **ent;  /* (n) gathered */
	iapo_hook_metrics last;
};

void iapo_hook_free(iapo_hook *h)
{
	if (!h) return;
	iapo_info_free(h->est);
	iapo_free(h->E);
	iapo_free(h->C);
	iapo_free(h->Eg);
	iapo_free(h->Cg);
	iapo_free(h->comps);
	iapo_free(h->prompts);
	iapo_free(h->plen);
	iapo_free(h->clen);
	iapo_free(h->slot);
	iapo_free(h->idx);
	iapo_free(h->ent);
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
	h->no_reuse = o->no_reuse;
	const size_t nld = sizeof(float) * (size_t)n * h->ld, ni = sizeof(int) * (size_t)n;
	IAPO_CHECK(st, iapo_info_new(w, h->batch, Tmax, &o->info, &h->est));
	IAPO_CHECK(st, iapo_alloc_or_fail((void **)&h->E, nld, "IAPO answer entropies"));
	IAPO_CHECK(st, iapo_alloc_or_fail((void **)&h->C, nld, "IAPO policy entropies"));
	IAPO_CHECK(st, iapo_alloc_or_fail((void **)&h->Eg, nld, "IAPO answer entropies"));
	IAPO_CHECK(st, iapo_alloc_or_fail((void **)&h->Cg, nld, "IAPO policy entropies"));
	IAPO_CHECK(st, iapo_alloc_or_fail((void **)&h->comps, sizeof(int *) * (size_t)n, "IAPO completions"));
	IAPO_CHECK(st, iapo_alloc_or_fail((void **)&h->prompts, sizeof(int *) * (size_t)n, "IAPO prompts"));
	IAPO_CHECK(st, iapo_alloc_or_fail((void **)&h->ent, sizeof(float *) * (size_t)n, "IAPO rollout entropies"));
	IAPO_CHECK(st, iapo_alloc_or_fail((void **)&h->plen, ni, "IAPO lengths"));
	IAPO_CHECK(st, iapo_alloc_or_fail((void **)&h->clen, ni, "IAPO lengths"));
	IAPO_CHECK(st, iapo_alloc_or_fail((void **)&h->slot, ni, "IAPO cache slots"));
	IAPO_CHECK(st, iapo_alloc_or_fail((void **)&h->idx, ni, "IAPO sequence order"));
	*out = h;
	return IAPO_OK;
fail:
	iapo_hook_free(h);
	return st;
}

/* Which path sequence i takes: 0 skipped (the loss reads none of its
 * tokens), 1 the rollout's cache, 2 the estimator's own cache. */
static int path_of(const iapo_hook *h, const iapo_rollout_view *r, int i)
{
	if (r->unused && r->unused[i]) return 0;
	if (!h->no_reuse && r->kv && r->kv_slot && r->kv_slot[i] >= 0 && r->kv_entropy && r->kv_nscratch > 0) return 1;
	return 2;
}

/* Gathers the sequences of path p, in order, from `from` on, at most max of
 * them; returns how many. */
static int gather(iapo_hook *h, const iapo_rollout_view *r, int p, int *from, int max)
{
	int m = 0;
	for (; *from < r->n && m < max; ++*from) {
		const int i = *from;
		if (path_of(h, r, i) != p) continue;
		h->idx[m] = i;
		h->prompts[m] = r->prompt_tokens[i];
		h->plen[m] = r->prompt_len[i];
		h->comps[m] = r->comp_tokens + (size_t)i * r->Tc;
		h->clen[m] = r->comp_len[i];
		h->slot[m] = p == 1 ? r->kv_slot[i] : -1;
		h->ent[m] = p == 1 ? r->kv_entropy[i] : NULL;
		m++;
	}
	return m;
}

static void scatter(iapo_hook *h, int m)
{
	for (int k = 0; k < m; k++) {
		const size_t n = sizeof(float) * (size_t)(h->clen[k] + 1);
		memcpy(h->E + (size_t)h->idx[k] * h->ld, h->Eg + (size_t)k * h->ld, n);
		memcpy(h->C + (size_t)h->idx[k] * h->ld, h->Cg + (size_t)k * h->ld, n);
	}
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
	h->last.reused = h->last.skipped = 0;
	for (int i = 0; i < r->n; i++) {
		const int p = path_of(h, r, i);
		h->last.skipped += p == 0;
		h->last.reused += p == 1;
		if (p == 0) { /* never read: E = C = 0 leave Ŝ = Ĉ = 0 */
			memset(h->E + (size_t)i * h->ld, 0, sizeof(float) * (size_t)(r->comp_len[i] + 1));
			memset(h->C + (size_t)i * h->ld, 0, sizeof(float) * (size_t)(r->comp_len[i] + 1));
		}
	}
	/* the rollout's cache: every such sequence in one call */
	int from = 0;
	const int m1 = gather(h, r, 1, &from, r->n);
	if (m1 > 0) {
		iapo_info_batch batch = {.n = m1, .prompts = h->prompts, .plen = h->plen, .comps = h->comps, .clen = h->clen};
		iapo_info_cache cache = {.kv = r->kv, .slot = h->slot, .C = h->ent, .scratch0 = r->kv_scratch0,
					 .nscratch = r->kv_nscratch};
		iapo_status st = iapo_info_compute_cached(h->est, &cache, &batch, h->Eg, h->Cg, h->ld, NULL);
		if (st != IAPO_OK) return iapo_fail_prefix(st, "IAPO hook: the rollout's cache");
		scatter(h, m1);
	}
	/* the rest through the estimator's own cache, `batch` at a time */
	from = 0;
	for (;;) {
		const int m = gather(h, r, 2, &from, h->batch);
		if (m == 0) break;
		iapo_info_batch batch = {.n = m, .prompts = h->prompts, .plen = h->plen, .comps = h->comps, .clen = h->clen};
		iapo_status st = iapo_info_compute(h->est, &batch, h->Eg, h->Cg, h->ld, NULL);
		if (st != IAPO_OK) return iapo_fail_prefix(st, "IAPO hook: sequences %d..%d", h->idx[0], h->idx[m - 1]);
		scatter(h, m);
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
	for (int i = 0; i < r->n; i++)
		if (path_of(h, r, i) != 0) iapo_gain_stats_add(&gs, h->E + (size_t)i * h->ld, r->comp_len[i], IAPO_NEAR_ZERO_GAIN);
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
