/*
 * sft.c — supervised fine-tuning step (see sft.h). The loss is the token mean
 * over the whole step, so d(loss)/d(logp) = -1/N_tokens on every target and
 * micro-batches only change the order of the gradient sum. Under MPI
 * (src/dist/) N_tokens, the loss and the gradient are summed over the ranks
 * before clipping, so ranks sharing a step's examples make the update one
 * process makes from all of them (up to that order).
 */
#include "rl/sft.h"

#include <math.h>
#include <string.h>

#include "core/mem.h"
#include "core/status.h"
#include "dist/dist.h"
#include "model/transformer.h"

struct iapo_sft {
	iapo_weights *w;
	iapo_sft_opts o;
	size_t n;
	float *grad, *m, *v; /* (n) each */
	long t;
	iapo_fwd *fwd;
	int *tok, *len, *tgt;  /* (mb, max_len) */
	float *logp, *dlogp;   /* (mb, max_len) */
};

iapo_status iapo_sft_new(iapo_weights *w, const iapo_sft_opts *o, iapo_sft **out)
{
	*out = NULL;
	if (!w || !w->block || !o || o->micro_batch < 1 || o->max_len < 2)
		return iapo_fail(IAPO_ERR_ARG, "sft: expected weights, micro_batch >= 1 and max_len >= 2, found %d and %d",
				 o ? o->micro_batch : 0, o ? o->max_len : 0);
	iapo_sft *s = iapo_calloc(1, sizeof *s);
	if (!s) return iapo_fail(IAPO_ERR_NOMEM, "sft: out of memory");
	s->w = w;
	s->o = *o;
	s->n = iapo_param_count(&w->cfg);
	size_t bt = (size_t)o->micro_batch * (size_t)o->max_len;
	iapo_status st = IAPO_OK;
	s->grad = iapo_alloc_aligned(s->n * sizeof(float));
	s->m = iapo_alloc_aligned(s->n * sizeof(float));
	s->v = iapo_alloc_aligned(s->n * sizeof(float));
	s->tok = iapo_malloc(bt * sizeof(int));
	s->tgt = iapo_malloc(bt * sizeof(int));
	s->len = iapo_malloc((size_t)o->micro_batch * sizeof(int));
	s->logp = iapo_malloc(bt * sizeof(float));
	s->dlogp = iapo_malloc(bt * sizeof(float));
	if (!s->grad || !s->m || !s->v || !s->tok || !s->tgt || !s->len || !s->logp || !s->dlogp) {
		st = iapo_fail(IAPO_ERR_NOMEM, "sft: out of memory for %zu parameters", s->n);
		goto fail;
	}
	IAPO_CHECK(st, iapo_fwd_new(w, o->micro_batch, o->max_len - 1, 1, &s->fwd));
	*out = s;
	return IAPO_OK;
fail:
	iapo_sft_free(s);
	return st;
}

void iapo_sft_free(iapo_sft *s)
{
	if (!s) return;
	iapo_fwd_free(s->fwd);
	iapo_free_aligned(s->grad);
	iapo_free_aligned(s->m);
	iapo_free_aligned(s->v);
	iapo_free(s->tok);
	iapo_free(s->tgt);
	iapo_free(s->len);
	iapo_free(s->logp);
	iapo_free(s->dlogp);
	iapo_free(s);
}

void iapo_sft_state(iapo_sft *s, float **m, float **v, long **t)
{
	if (m) *m = s->m;
	if (v) *v = s->v;
	if (t) *t = &s->t;
}

/* The examples' completion tokens, or an ARG error naming a bad example. */
static iapo_status check_examples(const iapo_sft *s, const int *const *tokens, const int *lens, const int *n_prompt,
				  int n, double *ntok)
{
	/* Under MPI a rank may hold none of a step's examples. */
	if (n < (iapo_dist_size() > 1 ? 0 : 1) || (n > 0 && (!tokens || !lens || !n_prompt)))
		return iapo_fail(IAPO_ERR_ARG, "sft: expected at least one example");
	const int V = s->w->cfg.V;
	*ntok = 0;
	for (int i = 0; i < n; i++) {
		if (!tokens[i] || n_prompt[i] < 1 || lens[i] <= n_prompt[i] || lens[i] > s->o.max_len)
			return iapo_fail(IAPO_ERR_ARG,
					 "sft: example %d: expected 0 < prompt tokens < length <= %d, found %d and %d", i,
					 s->o.max_len, n_prompt[i], lens[i]);
		for (int k = 0; k < lens[i]; k++)
			if (tokens[i][k] < 0 || tokens[i][k] >= V)
				return iapo_fail(IAPO_ERR_ARG, "sft: example %d, token %d: expected an id in [0, %d), found %d",
						 i, k, V, tokens[i][k]);
		*ntok += lens[i] - n_prompt[i];
	}
	return IAPO_OK;
}

/* Row b of the micro-batch [i0, i0+B): inputs are the sequence without its
 * last token; position p predicts token p+1, a target only past the prompt.
 * dl: the d(loss)/d(logp) of a target. Returns T. */
static int fill_micro(iapo_sft *s, const int *const *tokens, const int *lens, const int *n_prompt, int i0, int B,
		      float dl)
{
	int T = 1;
	for (int b = 0; b < B; b++)
		if (lens[i0 + b] - 1 > T) T = lens[i0 + b] - 1;
	for (int b = 0; b < B; b++) {
		const int *x = tokens[i0 + b];
		int L = lens[i0 + b] - 1, P = n_prompt[i0 + b];
		s->len[b] = L;
		for (int p = 0; p < T; p++) {
			s->tok[b * T + p] = p < L ? x[p] : 0;
			s->tgt[b * T + p] = p < L && p + 1 >= P ? x[p + 1] : -1;
			s->dlogp[b * T + p] = s->tgt[b * T + p] >= 0 ? dl : 0.0f;
		}
	}
	return T;
}

iapo_status iapo_sft_eval(iapo_sft *s, const int *const *tokens, const int *lens, const int *n_prompt, int n,
			  double *loss_sum, double *tokens_out)
{
	double ntok = 0, loss = 0;
	IAPO_TRY(iapo_dist_agree(check_examples(s, tokens, lens, n_prompt, n, &ntok)));
	iapo_status st = IAPO_OK;
	for (int i0 = 0; i0 < n && st == IAPO_OK; i0 += s->o.micro_batch) {
		int B = n - i0 < s->o.micro_batch ? n - i0 : s->o.micro_batch;
		int T = fill_micro(s, tokens, lens, n_prompt, i0, B, 0.0f);
		st = iapo_fwd_forward(s->fwd, s->tok, s->len, s->tgt, B, T, s->logp, NULL, NULL);
		for (int k = 0; st == IAPO_OK && k < B * T; k++)
			if (s->tgt[k] >= 0) loss -= s->logp[k];
	}
	IAPO_TRY(iapo_dist_agree(st));
	double red[2] = {loss, ntok};
	IAPO_TRY(iapo_dist_allreduce_double(red, 2, IAPO_DIST_SUM));
	*loss_sum += red[0];
	*tokens_out += red[1];
	return IAPO_OK;
}

iapo_status iapo_sft_step(iapo_sft *s, const int *const *tokens, const int *lens, const int *n_prompt, int n,
			  float lr, iapo_sft_stats *stats)
{
	if (stats) memset(stats, 0, sizeof *stats);
	double ntok = 0;
	IAPO_TRY(iapo_dist_agree(check_examples(s, tokens, lens, n_prompt, n, &ntok)));
	IAPO_TRY(iapo_dist_allreduce_double(&ntok, 1, IAPO_DIST_SUM));
	memset(s->grad, 0, s->n * sizeof(float));
	double loss = 0;
	const int mb = s->o.micro_batch;
	iapo_status st = IAPO_OK;
	for (int i0 = 0; i0 < n && st == IAPO_OK; i0 += mb) {
		int B = n - i0 < mb ? n - i0 : mb;
		int T = fill_micro(s, tokens, lens, n_prompt, i0, B, (float)(-1.0 / ntok));
		st = iapo_fwd_forward(s->fwd, s->tok, s->len, s->tgt, B, T, s->logp, NULL, NULL);
		if (st != IAPO_OK) break;
		for (int k = 0; k < B * T; k++)
			if (s->tgt[k] >= 0) loss -= s->logp[k];
		st = iapo_fwd_backward(s->fwd, s->dlogp, NULL, s->grad);
	}
	IAPO_TRY(iapo_dist_agree(st));
	IAPO_TRY(iapo_dist_allreduce_double(&loss, 1, IAPO_DIST_SUM));
	IAPO_TRY(iapo_dist_allreduce_float(s->grad, s->n));
	loss /= ntok;
	double norm = s->o.max_grad_norm > 0 ? iapo_grad_clip(s->grad, s->n, s->o.max_grad_norm)
					     : iapo_grad_norm(s->grad, s->n);
	int skip = !isfinite(loss) || !isfinite(norm);
	if (!skip) {
		iapo_adamw_opts ao = s->o.adam;
		ao.lr = lr;
		s->t++;
		iapo_adamw_step(s->w->block, s->grad, s->m, s->v, s->n, &ao, s->t);
	}
	if (stats) {
		stats->loss = loss;
		stats->tokens = ntok;
		stats->grad_norm = norm;
		stats->skipped = skip;
	}
	return IAPO_OK;
}
