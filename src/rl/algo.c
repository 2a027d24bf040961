/*
 * algo.c — the stages of algo.h: --algo's option defaults, reward shaping,
 * GFPO selection and compaction, dynamic sampling, the IAPO / GTPO token
 * advantage hooks, the loss mask (dropped groups, S-GRPO) and the metrics.
 */
#include "rl/algo.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "core/progress.h"
#include "core/rng.h"
#include "core/status.h"
#include "dist/dist.h"
#include "io/json.h"
#include "rl/baselines.h"
#include "rl/iapo_hook.h"
#include "rl/info.h"

#define KEY_RETRY 0x72657472ull /* "retr" */
#define KEY_SGRPO 0x73677270ull /* "sgrp" */

enum { DYN_OFF = 0, DYN_DROP = 1, DYN_RESAMPLE = 2 };

struct iapo_algo {
	iapo_algo_kind kind;
	uint64_t seed;
	int G, Gs, Tc, n_max;
	/* shaping */
	int overlong_buffer;
	double overlong_penalty, lenpen_weight;
	/* dynamic sampling */
	int dyn, max_tries;
	/* GFPO */
	iapo_gfpo_metric gmetric;
	/* S-GRPO */
	int alpha, k;
	double p;
	/* GTPO */
	iapo_gtpo_opts gtpo;
	iapo_info *ent;
	float *H;          /* (n_max, ld) */
	const int **comps; /* (batch) */
	int batch, ld;
	/* IAPO */
	iapo_hook *hook;
	/* scratch, sized for the sampled buffer (n_cap = n_max * Gs / G) */
	int n_cap;
	float *shape_over, *shape_len; /* (n_cap) the shaping terms of each sampled completion */
	int *keep;                     /* (n_cap / Gs, G) survivors' slots within their group */
	int *tries;                    /* (groups) resampling rounds of each group */
	int *flag;                     /* (groups) */
	int *seqs;                     /* (n_cap) */
	float *kept_r, *lp;            /* (Gs) */
	float *mask;                   /* (n_max, Tc), only when a mask is used */
	/* statistics of the last rollout and mask, this rank's */
	struct {
		double info_tokens, info_gain, info_near, info_secs;
		double gtpo_tokens, gtpo_babs, gtpo_secs;
		double resampled, resamples, dropped;
		double sampled, over_sum, len_sum, len_sampled, len_kept, kept;
		double mask_sum, mask_tokens;
	} st;
};

iapo_status iapo_algo_kind_parse(const char *s, iapo_algo_kind *k)
{
	static const char *names[] = {"grpo", "iapo", "dapo", "lenpen", "gtpo", "gfpo", "sgrpo"};
	for (int i = 0; i < (int)(sizeof names / sizeof *names); i++)
		if (s && !strcmp(s, names[i])) {
			*k = (iapo_algo_kind)i;
			return IAPO_OK;
		}
	return iapo_fail(IAPO_ERR_ARG, "--algo: expected grpo, iapo, dapo, lenpen, gtpo, gfpo or sgrpo, found '%s'",
			 s ? s : "(none)");
}

/* ---- options -------------------------------------------------------------- */

static iapo_status dflt(iapo_train_opts *o, const char *name, const char *v)
{
	return iapo_train_opts_given(o, name) ? IAPO_OK : iapo_train_opts_set(o, name, v);
}

iapo_status iapo_algo_resolve_opts(iapo_train_opts *o)
{
	iapo_algo_kind k = IAPO_ALGO_GRPO;
	IAPO_TRY(iapo_algo_kind_parse(o->algo, &k));
	char buf[32];
	switch (k) {
	case IAPO_ALGO_DAPO:
		IAPO_TRY(dflt(o, "epsilon-high", "0.28"));
		IAPO_TRY(dflt(o, "loss-type", "bnpo"));
		IAPO_TRY(dflt(o, "dynamic-sampling", "resample"));
		snprintf(buf, sizeof buf, "%ld", o->max_completion_tokens / 5 > 1 ? o->max_completion_tokens / 5 : 1);
		IAPO_TRY(dflt(o, "overlong-buffer", buf));
		break;
	case IAPO_ALGO_LENPEN:
		IAPO_TRY(dflt(o, "lenpen-weight", "1"));
		break;
	case IAPO_ALGO_GTPO:
		IAPO_TRY(dflt(o, "loss-type", "bnpo"));
		break;
	case IAPO_ALGO_GFPO:
		IAPO_TRY(dflt(o, "loss-type", "grpo"));
		if (iapo_train_opts_given(o, "num-generations") && iapo_train_opts_given(o, "gfpo-keep")) {
			if (o->num_generations != o->gfpo_keep)
				return iapo_fail(IAPO_ERR_ARG,
						 "--algo gfpo: --num-generations %ld and --gfpo-keep %ld: expected the same (the kept "
						 "completions are the training group); give one of them",
						 o->num_generations, o->gfpo_keep);
		} else if (iapo_train_opts_given(o, "num-generations")) {
			snprintf(buf, sizeof buf, "%ld", o->num_generations);
			IAPO_TRY(iapo_train_opts_set(o, "gfpo-keep", buf));
		} else {
			snprintf(buf, sizeof buf, "%ld", o->gfpo_keep);
			IAPO_TRY(iapo_train_opts_set(o, "num-generations", buf));
		}
		if (o->gfpo_sample < o->gfpo_keep)
			return iapo_fail(IAPO_ERR_ARG, "--gfpo-sample %ld: expected at least --gfpo-keep %ld (G' >= k)",
					 o->gfpo_sample, o->gfpo_keep);
		break;
	case IAPO_ALGO_SGRPO:
		IAPO_TRY(dflt(o, "loss-type", "grpo"));
		break;
	default:
		break;
	}
	if (k == IAPO_ALGO_IAPO) {
		if (!strcmp(o->predict, "answer") && (!o->postfix || !*o->postfix))
			return iapo_fail(IAPO_ERR_ARG, "--postfix: expected text (--predict answer reads the answer after it), found none");
		if (o->info_stride > 1 && !strcmp(o->info_at, "newline"))
			return iapo_fail(IAPO_ERR_ARG, "--info-stride %ld and --info-at newline: expected one of them", o->info_stride);
	}
	if (o->overlong_buffer > o->max_completion_tokens)
		return iapo_fail(IAPO_ERR_ARG, "--overlong-buffer %ld: expected at most --max-completion-tokens %ld",
				 o->overlong_buffer, o->max_completion_tokens);
	return IAPO_OK;
}

int iapo_algo_sampled_group(const iapo_train_opts *o)
{
	iapo_algo_kind k = IAPO_ALGO_GRPO;
	if (iapo_algo_kind_parse(o->algo, &k) != IAPO_OK) {
		iapo_clear_error();
		k = IAPO_ALGO_GRPO;
	}
	return k == IAPO_ALGO_GFPO && o->gfpo_sample > o->num_generations ? (int)o->gfpo_sample : (int)o->num_generations;
}

static uint64_t splitmix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

uint64_t iapo_algo_sample_key(long gen, long row, int sample, int attempt)
{
	uint64_t k = iapo_trainer_sample_key(gen, row, sample);
	if (attempt == 0) return k;
	return splitmix(k ^ splitmix(KEY_RETRY ^ (uint64_t)(unsigned)attempt));
}

/* ---- setup ---------------------------------------------------------------- */

void iapo_algo_free(iapo_algo *a)
{
	if (!a) return;
	iapo_hook_free(a->hook);
	iapo_info_free(a->ent);
	void *arrays[] = {a->H, (void *)a->comps, a->shape_over, a->shape_len, a->keep, a->tries,
			  a->flag,  a->seqs,          a->kept_r,     a->lp,        a->mask};
	for (size_t i = 0; i < sizeof arrays / sizeof *arrays; i++) iapo_free(arrays[i]);
	iapo_free(a);
}

static iapo_status make_iapo_hook(iapo_algo *a, const iapo_train_opts *o, const iapo_weights *w,
				  const iapo_tokenizer *tok, int Tmax)
{
	iapo_hook_opts ho;
	memset(&ho, 0, sizeof ho);
	ho.info = iapo_info_defaults();
	IAPO_TRY(iapo_predict_parse(o->predict, &ho.info.predict));
	ho.info.answer_tokens = (int)o->answer_tokens;
	ho.info.chunk = (int)o->info_chunk;
	ho.info.stride = (int)o->info_stride;
	/* a bf16 rollout's K/V are what the estimator reuses */
	ho.info.bf16 = o->info_bf16 || (o->rollout_bf16 && !o->info_recompute);
	ho.info.temperature = (float)o->temperature;
	ho.adv = iapo_tokadv_defaults();
	IAPO_TRY(iapo_gain_parse(o->gain, &ho.adv.gain));
	IAPO_TRY(iapo_norm_parse(o->norm, &ho.adv.norm));
	ho.adv.horizon = (int)o->horizon;
	ho.adv.decay = (float)o->decay;
	ho.adv.w_info = (float)o->w_info;
	ho.adv.w_conf = (float)o->w_conf;
	int *post = NULL, *nl = NULL, n_nl = 0;
	size_t K = 0, cap = 0;
	iapo_status st = IAPO_OK;
	if (ho.info.predict == IAPO_PREDICT_ANSWER) {
		st = iapo_tokenizer_encode(tok, o->postfix, strlen(o->postfix), &post, &K, &cap);
		if (st == IAPO_OK && K == 0) st = iapo_fail(IAPO_ERR_ARG, "--postfix '%s': expected text that has tokens", o->postfix);
		ho.info.postfix = post;
		ho.info.n_postfix = (int)K;
	}
	if (st == IAPO_OK && !strcmp(o->info_at, "newline")) {
		st = iapo_newline_tokens(tok, &nl, &n_nl);
		if (n_nl > 0) {
			ho.info.at_tokens = nl;
			ho.info.n_at = n_nl;
		} else {
			ho.info.stride = 1 << 30; /* no newline token at all: E at 0 and L only */
		}
	}
	if (st == IAPO_OK) st = iapo_hook_new(w, a->n_max, Tmax, &ho, &a->hook);
	iapo_free(post);
	iapo_free(nl);
	return st;
}

iapo_status iapo_algo_new(const iapo_train_opts *o, const iapo_weights *w, const iapo_tokenizer *tok, int n_seqs,
			  int Tmax, iapo_algo **out)
{
	*out = NULL;
	iapo_algo *a = iapo_calloc(1, sizeof *a);
	if (!a) return iapo_fail(IAPO_ERR_NOMEM, "algorithm: out of memory");
	iapo_status st;
	IAPO_CHECK(st, iapo_algo_kind_parse(o->algo, &a->kind));
	a->seed = (uint64_t)o->seed;
	a->G = (int)o->num_generations;
	a->Gs = iapo_algo_sampled_group(o);
	a->Tc = (int)o->max_completion_tokens;
	a->n_max = n_seqs;
	a->n_cap = n_seqs / a->G * a->Gs;
	a->overlong_buffer = (int)o->overlong_buffer;
	a->overlong_penalty = o->overlong_penalty;
	a->lenpen_weight = o->lenpen_weight;
	a->dyn = !strcmp(o->dynamic_sampling, "drop") ? DYN_DROP : !strcmp(o->dynamic_sampling, "resample") ? DYN_RESAMPLE : DYN_OFF;
	a->max_tries = (int)o->dynamic_max_tries;
	IAPO_CHECK(st, iapo_gfpo_metric_parse(o->gfpo_metric, &a->gmetric));
	a->alpha = (int)o->sgrpo_alpha;
	a->k = (int)o->sgrpo_k;
	a->p = o->sgrpo_token_prob;
	a->gtpo.coef = o->gtpo_coef;
	IAPO_CHECK(st, iapo_gtpo_scale_parse(o->gtpo_scale, &a->gtpo.scale));
	const size_t groups = (size_t)a->n_cap / (size_t)a->Gs + 1;
	IAPO_CHECK(st, iapo_alloc_or_fail((void **)&a->shape_over, sizeof(float) * (size_t)(a->n_cap + 1), "shaping"));
	IAPO_CHECK(st, iapo_alloc_or_fail((void **)&a->shape_len, sizeof(float) * (size_t)(a->n_cap + 1), "shaping"));
	IAPO_CHECK(st, iapo_alloc_or_fail((void **)&a->keep, sizeof(int) * groups * (size_t)a->G, "GFPO"));
	IAPO_CHECK(st, iapo_alloc_or_fail((void **)&a->tries, sizeof(int) * groups, "dynamic sampling"));
	IAPO_CHECK(st, iapo_alloc_or_fail((void **)&a->flag, sizeof(int) * groups, "dynamic sampling"));
	IAPO_CHECK(st, iapo_alloc_or_fail((void **)&a->seqs, sizeof(int) * (size_t)(a->n_cap + 1), "dynamic sampling"));
	IAPO_CHECK(st, iapo_alloc_or_fail((void **)&a->kept_r, sizeof(float) * (size_t)a->Gs, "dynamic sampling"));
	IAPO_CHECK(st, iapo_alloc_or_fail((void **)&a->lp, sizeof(float) * (size_t)a->Gs, "length reward"));
	if (a->dyn != DYN_OFF || a->kind == IAPO_ALGO_SGRPO)
		IAPO_CHECK(st, iapo_alloc_or_fail((void **)&a->mask, sizeof(float) * (size_t)n_seqs * (size_t)a->Tc, "loss mask"));
	if (a->kind == IAPO_ALGO_IAPO) IAPO_CHECK(st, make_iapo_hook(a, o, w, tok, Tmax));
	if (a->kind == IAPO_ALGO_GTPO) {
		iapo_info_opts io = iapo_info_defaults();
		io.predict = IAPO_PREDICT_NEXT_TOKEN; /* E := the policy's own entropies, no postfix pass */
		io.temperature = (float)o->temperature;
		a->batch = n_seqs < 16 ? n_seqs : 16;
		a->ld = a->Tc + 1;
		IAPO_CHECK(st, iapo_info_new(w, a->batch, Tmax, &io, &a->ent));
		IAPO_CHECK(st, iapo_alloc_or_fail((void **)&a->H, sizeof(float) * (size_t)n_seqs * (size_t)a->ld, "GTPO entropies"));
		IAPO_CHECK(st, iapo_alloc_or_fail((void **)&a->comps, sizeof(int *) * (size_t)a->batch, "GTPO"));
	}
	*out = a;
	return IAPO_OK;
fail:
	iapo_algo_free(a);
	return st;
}

/* ---- token advantages ----------------------------------------------------- */

static iapo_status gtpo_advantage(iapo_algo *a, const iapo_rollout_view *r, float *adv)
{
	if (r->n > a->n_max || r->Tc + 1 > a->ld)
		return iapo_fail(IAPO_ERR_ARG, "GTPO: rollout: expected at most %d sequences of %d tokens, found %d of %d",
				 a->n_max, a->ld - 1, r->n, r->Tc);
	iapo_info_set_temperature(a->ent, r->temperature > 0 ? r->temperature : 1.0f);
	double t0 = iapo_now();
	for (int i0 = 0; i0 < r->n; i0 += a->batch) {
		const int B = r->n - i0 < a->batch ? r->n - i0 : a->batch;
		for (int b = 0; b < B; b++) a->comps[b] = r->comp_tokens + (size_t)(i0 + b) * r->Tc;
		iapo_info_batch batch = {.n = B, .prompts = r->prompt_tokens + i0, .plen = r->prompt_len + i0,
					 .comps = a->comps, .clen = r->comp_len + i0};
		iapo_status st = iapo_info_compute(a->ent, &batch, a->H + (size_t)i0 * a->ld, NULL, a->ld, NULL);
		if (st != IAPO_OK) return iapo_fail_prefix(st, "GTPO entropies: sequences %d..%d", i0, i0 + B - 1);
	}
	a->st.gtpo_secs = iapo_now() - t0;
	double babs = 0, tokens = 0;
	for (int g0 = 0; g0 < r->n; g0 += r->G) {
		double b = 0;
		IAPO_TRY(iapo_gtpo_advantages(&a->gtpo, r->G, r->rewards + g0, r->seq_adv + g0, r->comp_len + g0,
					      a->H + (size_t)g0 * a->ld, a->ld, adv + (size_t)g0 * r->Tc, r->Tc, &b));
		babs += b;
		for (int i = 0; i < r->G; i++) tokens += r->comp_len[g0 + i];
	}
	a->st.gtpo_babs = babs;
	a->st.gtpo_tokens = tokens;
	return IAPO_OK;
}

iapo_status iapo_algo_advantage(void *ctx, const iapo_rollout_view *r, float *adv)
{
	iapo_algo *a = ctx;
	if (a->kind == IAPO_ALGO_GTPO) return gtpo_advantage(a, r, adv);
	if (a->kind != IAPO_ALGO_IAPO || !a->hook) return IAPO_OK;
	IAPO_TRY(iapo_hook_advantage(a->hook, r, adv));
	iapo_hook_metrics hm;
	iapo_hook_last_metrics(a->hook, &hm);
	a->st.info_tokens = hm.tokens;
	a->st.info_gain = hm.mean_gain * hm.tokens;
	a->st.info_near = hm.near_zero_share * hm.tokens;
	a->st.info_secs = hm.seconds;
	return IAPO_OK;
}

iapo_advantage_fn iapo_algo_advantage_fn(const iapo_algo *a)
{
	return a && (a->kind == IAPO_ALGO_IAPO || a->kind == IAPO_ALGO_GTPO) ? iapo_algo_advantage : NULL;
}

/* ---- rollout -------------------------------------------------------------- */

/* Adds the shaping terms to the raw rewards of group k (sampled slots). */
static void shape_group(iapo_algo *a, iapo_algo_buffer *b, int k)
{
	const int Gs = b->group, g0 = k * Gs;
	for (int j = 0; j < Gs; j++) {
		a->shape_over[g0 + j] = (float)(a->overlong_penalty * iapo_overlong_penalty(b->clen[g0 + j], b->Tc, a->overlong_buffer));
		a->shape_len[g0 + j] = 0.0f;
	}
	if (a->lenpen_weight > 0) {
		iapo_lenpen_rewards(Gs, b->clen + g0, b->correct + g0, a->lp);
		for (int j = 0; j < Gs; j++) a->shape_len[g0 + j] = (float)(a->lenpen_weight * a->lp[j]);
	}
	if (a->overlong_buffer > 0 || a->lenpen_weight > 0)
		for (int j = 0; j < Gs; j++)
			b->reward[g0 + j] = (float)((double)b->reward[g0 + j] + a->shape_over[g0 + j] + a->shape_len[g0 + j]);
}

/* Survivors of group k (all G' when not GFPO) into keep[k*G ..]; returns
 * whether their rewards are all equal. */
static int select_group(iapo_algo *a, const iapo_algo_buffer *b, int k)
{
	const int Gs = b->group, g0 = k * Gs, G = a->G;
	int *keep = a->keep + (size_t)k * G;
	if (Gs > G)
		iapo_gfpo_select(Gs, G, a->gmetric, b->clen + g0, b->reward + g0, keep);
	else
		for (int j = 0; j < G; j++) keep[j] = j;
	for (int j = 0; j < G; j++) a->kept_r[j] = b->reward[g0 + keep[j]];
	return iapo_group_all_equal(a->kept_r, G);
}

/* Moves the survivors to slots k*G + j, in order (a survivor's new slot is
 * never after its old one, and slots are visited in increasing order, so no
 * survivor is overwritten before it moves). */
static void compact(iapo_algo *a, iapo_algo_buffer *b)
{
	const int Gs = b->group, G = a->G, groups = b->n / Gs, Tc = b->Tc;
	for (int k = 0; k < groups; k++)
		for (int j = 0; j < G; j++) {
			const int d = k * G + j, s = k * Gs + a->keep[(size_t)k * G + j];
			if (d == s) continue;
			b->row[d] = b->row[s];
			b->plen[d] = b->plen[s];
			b->clen[d] = b->clen[s];
			b->finish[d] = b->finish[s];
			b->correct[d] = b->correct[s];
			b->fmt_ok[d] = b->fmt_ok[s];
			b->reward[d] = b->reward[s];
			b->pptr[d] = b->pptr[s];
			memcpy(b->ctok + (size_t)d * Tc, b->ctok + (size_t)s * Tc, sizeof(int) * (size_t)Tc);
		}
	b->n = groups * G;
	b->group = G;
}

iapo_status iapo_algo_after_rollout(iapo_algo *a, iapo_algo_buffer *b, iapo_resample_fn resample, void *ctx)
{
	const int Gs = b->group, groups = b->n / Gs;
	if (Gs != a->Gs || b->n > a->n_cap || b->n % Gs)
		return iapo_fail(IAPO_ERR_INTERNAL, "algorithm: rollout of %d sequences in groups of %d, expected groups of %d, at most %d",
				 b->n, Gs, a->Gs, a->n_cap);
	a->st.resampled = a->st.resamples = a->st.dropped = 0;
	a->st.sampled = a->st.over_sum = a->st.len_sum = a->st.len_sampled = a->st.len_kept = a->st.kept = 0;
	const int need_select = a->dyn != DYN_OFF || Gs > a->G;
	for (int k = 0; k < groups; k++) {
		shape_group(a, b, k);
		a->flag[k] = need_select ? select_group(a, b, k) : 0;
		a->tries[k] = 0;
	}
	if (a->dyn == DYN_RESAMPLE) {
		for (int attempt = 1; attempt <= a->max_tries; attempt++) {
			int n = 0, ng = 0;
			for (int k = 0; k < groups; k++) {
				if (!a->flag[k]) continue;
				ng++;
				for (int j = 0; j < Gs; j++) a->seqs[n++] = k * Gs + j;
			}
			if (ng == 0) break;
			IAPO_TRY(resample(ctx, a->seqs, n, attempt));
			for (int k = 0; k < groups; k++) {
				if (!a->flag[k]) continue;
				a->st.resamples++;
				if (a->tries[k]++ == 0) a->st.resampled++;
				shape_group(a, b, k);
				a->flag[k] = select_group(a, b, k);
			}
		}
	}
	if (a->dyn != DYN_OFF)
		for (int k = 0; k < groups; k++) a->st.dropped += a->flag[k];
	for (int i = 0; i < b->n; i++) {
		a->st.over_sum += a->shape_over[i];
		a->st.len_sum += a->shape_len[i];
		a->st.len_sampled += b->clen[i];
	}
	a->st.sampled = b->n;
	if (Gs > a->G) compact(a, b);
	for (int i = 0; i < b->n; i++) a->st.len_kept += b->clen[i];
	a->st.kept = b->n;
	return IAPO_OK;
}

/* ---- loss mask ------------------------------------------------------------ */

const float *iapo_algo_loss_mask(iapo_algo *a, const iapo_algo_buffer *b, long step, double *kept_seqs,
				 double *kept_tokens)
{
	a->st.mask_sum = a->st.mask_tokens = 0;
	if (!a->mask) return NULL;
	const int G = b->group, Tc = b->Tc;
	double seqs = 0, sum = 0, tokens = 0;
	for (int g0 = 0; g0 < b->n; g0 += G) {
		const int drop = a->dyn != DYN_OFF && iapo_group_all_equal(b->reward + g0, G);
		for (int j = 0; j < G; j++) {
			const int i = g0 + j, L = b->clen[i];
			float *m = a->mask + (size_t)i * Tc;
			tokens += L;
			if (drop) {
				memset(m, 0, sizeof(float) * (size_t)L);
				continue;
			}
			if (a->kind == IAPO_ALGO_SGRPO) {
				iapo_rng r;
				iapo_rng_seed(&r, a->seed, KEY_SGRPO, (uint64_t)step, ((uint64_t)(unsigned)b->row[i] << 32) | (unsigned)j);
				iapo_sgrpo_mask(a->alpha, a->k, a->p, L, &r, m);
			} else {
				for (int t = 0; t < L; t++) m[t] = 1.0f;
			}
			double s = 0;
			for (int t = 0; t < L; t++) s += m[t];
			seqs += s > 0;
			sum += s;
		}
	}
	a->st.mask_sum = sum;
	a->st.mask_tokens = tokens;
	*kept_seqs = seqs;
	*kept_tokens = sum;
	return a->mask;
}

/* ---- metrics -------------------------------------------------------------- */

iapo_status iapo_algo_step_metrics(iapo_algo *a, int rollout_step, iapo_algo_metrics *m)
{
	memset(m, 0, sizeof *m);
	m->rollout = rollout_step;
	m->has_info = a->kind == IAPO_ALGO_IAPO;
	m->has_gtpo = a->kind == IAPO_ALGO_GTPO;
	m->has_dynamic = a->dyn != DYN_OFF;
	m->has_overlong = a->overlong_buffer > 0;
	m->has_lenpen = a->lenpen_weight > 0;
	m->has_gfpo = a->Gs > a->G;
	m->has_mask = a->mask != NULL;
	if (m->has_mask) {
		double s[2] = {a->st.mask_sum, a->st.mask_tokens};
		IAPO_TRY(iapo_dist_allreduce_double(s, 2, IAPO_DIST_SUM));
		m->loss_token_fraction = s[1] > 0 ? s[0] / s[1] : 0;
	}
	if (!rollout_step) return IAPO_OK;
	double s[14] = {a->st.info_tokens, a->st.info_gain, a->st.info_near, a->st.gtpo_tokens, a->st.gtpo_babs,
			a->st.resampled,   a->st.resamples, a->st.dropped,   a->st.sampled,     a->st.over_sum,
			a->st.len_sum,     a->st.len_sampled, a->st.len_kept, a->st.kept};
	double t[2] = {a->st.info_secs, a->st.gtpo_secs};
	IAPO_TRY(iapo_dist_allreduce_double(s, 14, IAPO_DIST_SUM));
	IAPO_TRY(iapo_dist_allreduce_double(t, 2, IAPO_DIST_MAX));
	m->info_gain_mean = s[0] > 0 ? s[1] / s[0] : 0;
	m->info_near_zero = s[0] > 0 ? s[2] / s[0] : 0;
	m->seconds_info = t[0];
	m->gtpo_bonus_mean = s[3] > 0 ? s[4] / s[3] : 0;
	m->seconds_entropy = t[1];
	m->dynamic_groups_resampled = s[5];
	m->dynamic_resamples = s[6];
	m->dynamic_groups_dropped = s[7];
	m->overlong_penalty_mean = s[8] > 0 ? s[9] / s[8] : 0;
	m->length_reward_mean = s[8] > 0 ? s[10] / s[8] : 0;
	m->gfpo_length_sampled = s[8] > 0 ? s[11] / s[8] : 0;
	m->gfpo_length_kept = s[13] > 0 ? s[12] / s[13] : 0;
	return IAPO_OK;
}

int iapo_algo_metrics_json(cJSON *o, const iapo_algo_metrics *m)
{
	int oom = 0;
	if (m->rollout) {
		if (m->has_info) {
			iapo_json_add(o, "info_gain_mean", iapo_json_double(m->info_gain_mean), &oom);
			iapo_json_add(o, "info_near_zero", iapo_json_double(m->info_near_zero), &oom);
			iapo_json_add(o, "seconds_info", iapo_json_double(m->seconds_info), &oom);
		}
		if (m->has_gtpo) {
			iapo_json_add(o, "gtpo_bonus_mean", iapo_json_double(m->gtpo_bonus_mean), &oom);
			iapo_json_add(o, "seconds_entropy", iapo_json_double(m->seconds_entropy), &oom);
		}
		if (m->has_dynamic) {
			iapo_json_add(o, "dynamic_groups_resampled", cJSON_CreateNumber(m->dynamic_groups_resampled), &oom);
			iapo_json_add(o, "dynamic_resamples", cJSON_CreateNumber(m->dynamic_resamples), &oom);
			iapo_json_add(o, "dynamic_groups_dropped", cJSON_CreateNumber(m->dynamic_groups_dropped), &oom);
		}
		if (m->has_overlong) iapo_json_add(o, "overlong_penalty_mean", iapo_json_double(m->overlong_penalty_mean), &oom);
		if (m->has_lenpen) iapo_json_add(o, "length_reward_mean", iapo_json_double(m->length_reward_mean), &oom);
		if (m->has_gfpo) {
			iapo_json_add(o, "gfpo_length_sampled", iapo_json_double(m->gfpo_length_sampled), &oom);
			iapo_json_add(o, "gfpo_length_kept", iapo_json_double(m->gfpo_length_kept), &oom);
		}
	}
	if (m->has_mask) iapo_json_add(o, "loss_token_fraction", iapo_json_double(m->loss_token_fraction), &oom);
	return oom ? -1 : 0;
}
