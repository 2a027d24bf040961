/*
 * grpo.c — group advantages and the clipped policy loss of grpo.h. Everything
 * is computed in double from float inputs and rounded once on output, so the
 * result does not depend on how the caller batches rows. No allocation.
 */
#include "rl/grpo.h"

#include <math.h>
#include <string.h>

#include "core/status.h"

void iapo_group_advantages(const float *rewards, int n, int G, int scale, float *adv)
{
	if (G < 1) G = 1;
	for (int g0 = 0; g0 < n; g0 += G) {
		int k = n - g0 < G ? n - g0 : G;
		const float *r = rewards + g0;
		int equal = 1;
		double sum = 0;
		for (int i = 0; i < k; i++) {
			sum += r[i];
			equal &= r[i] == r[0];
		}
		/* An all-equal group carries no signal; say so exactly rather than trust rounding. */
		if (equal || k == 1) {
			for (int i = 0; i < k; i++) adv[g0 + i] = 0.0f;
			continue;
		}
		double mean = sum / k, ss = 0;
		for (int i = 0; i < k; i++) ss += (r[i] - mean) * (r[i] - mean);
		double div = scale ? sqrt(ss / (k - 1)) + 1e-4 : 1.0;
		for (int i = 0; i < k; i++) adv[g0 + i] = (float)((r[i] - mean) / div);
	}
}

const char *iapo_loss_type_str(iapo_loss_type t)
{
	switch (t) {
	case IAPO_LOSS_GRPO: return "grpo";
	case IAPO_LOSS_BNPO: return "bnpo";
	case IAPO_LOSS_DR_GRPO: return "dr_grpo";
	}
	return "?";
}

iapo_status iapo_loss_type_parse(const char *s, iapo_loss_type *t)
{
	if (!s) return iapo_fail(IAPO_ERR_ARG, "loss type: expected grpo, bnpo, dapo or dr_grpo, found nothing");
	if (strcmp(s, "grpo") == 0) *t = IAPO_LOSS_GRPO;
	else if (strcmp(s, "bnpo") == 0 || strcmp(s, "dapo") == 0) *t = IAPO_LOSS_BNPO;
	else if (strcmp(s, "dr_grpo") == 0) *t = IAPO_LOSS_DR_GRPO;
	else return iapo_fail(IAPO_ERR_ARG, "loss type: expected grpo, bnpo, dapo or dr_grpo, found \"%.64s\"", s);
	return IAPO_OK;
}

static iapo_status check_opts(const iapo_loss_opts *o, int B, int T, const float *logp, const float *ref_logp,
			      const float *adv, const float *mask, const float *dlogp)
{
	if (!o) return iapo_fail(IAPO_ERR_ARG, "policy loss: opts: expected a pointer, found NULL");
	if (B < 0 || T < 0) return iapo_fail(IAPO_ERR_ARG, "policy loss: shape: expected B,T >= 0, found %d,%d", B, T);
	if ((size_t)B * T > 0 && (!logp || !adv || !mask || !dlogp))
		return iapo_fail(IAPO_ERR_ARG, "policy loss: logp/adv/mask/dlogp: expected arrays, found NULL");
	if (!(o->eps_low >= 0) || !(o->eps_high >= 0))
		return iapo_fail(IAPO_ERR_ARG, "policy loss: epsilon: expected >= 0, found low %g high %g",
				 (double)o->eps_low, (double)o->eps_high);
	if (!(o->beta >= 0) || !isfinite(o->beta))
		return iapo_fail(IAPO_ERR_ARG, "policy loss: beta: expected a finite value >= 0, found %g", (double)o->beta);
	if (o->beta != 0 && !ref_logp && (size_t)B * T > 0)
		return iapo_fail(IAPO_ERR_ARG, "policy loss: ref_logp: expected reference log-probs for beta %g, found NULL",
				 (double)o->beta);
	switch (o->type) {
	case IAPO_LOSS_GRPO:
		if (o->n_seqs < 1)
			return iapo_fail(IAPO_ERR_ARG, "policy loss: n_seqs: expected >= 1 for grpo, found %ld", o->n_seqs);
		break;
	case IAPO_LOSS_BNPO:
		if (o->n_tokens < 0)
			return iapo_fail(IAPO_ERR_ARG, "policy loss: n_tokens: expected >= 0 for bnpo, found %ld", o->n_tokens);
		break;
	case IAPO_LOSS_DR_GRPO:
		if (o->n_seqs < 1 || o->max_completion_len < 1)
			return iapo_fail(IAPO_ERR_ARG,
					 "policy loss: n_seqs, max_completion_len: expected >= 1 for dr_grpo, found %ld, %d",
					 o->n_seqs, o->max_completion_len);
		break;
	default:
		return iapo_fail(IAPO_ERR_ARG, "policy loss: type: expected grpo, bnpo or dr_grpo, found %d", (int)o->type);
	}
	return IAPO_OK;
}

iapo_status iapo_policy_loss(const iapo_loss_opts *o, int B, int T, const float *logp, const float *old_logp,
			     const float *ref_logp, const float *adv, const float *mask, float *dlogp,
			     iapo_loss_stats *stats)
{
	IAPO_TRY(check_opts(o, B, T, logp, ref_logp, adv, mask, dlogp));
	const double lo = 1.0 - (double)o->eps_low, hi = 1.0 + (double)o->eps_high, beta = o->beta;
	/* Step-level divisor of every token's m*l (grpo adds the row's own token count below). */
	double step_div = 1.0;
	if (o->type == IAPO_LOSS_GRPO) step_div = (double)o->n_seqs;
	else if (o->type == IAPO_LOSS_BNPO) step_div = o->n_tokens > 1 ? (double)o->n_tokens : 1.0;
	else step_div = (double)o->n_seqs * (double)o->max_completion_len;

	/* Validate first so that a failure leaves *stats untouched. */
	for (int b = 0; b < B; b++) {
		for (int t = 0; t < T; t++) {
			size_t i = (size_t)b * T + t;
			double m = mask[i];
			if (!(m >= 0) || !isfinite(m))
				return iapo_fail(IAPO_ERR_ARG, "policy loss: mask[%d,%d]: expected a finite weight >= 0, found %g",
						 b, t, m);
			if (m == 0) continue;
			double lp = logp[i], A = adv[i];
			double old = old_logp ? old_logp[i] : lp, ref = ref_logp ? ref_logp[i] : lp;
			if (!isfinite(lp) || !isfinite(A) || !isfinite(old) || !isfinite(ref))
				return iapo_fail(IAPO_ERR_NUMERIC,
						 "policy loss: token [%d,%d]: expected finite values, found logp %g old %g ref %g adv %g",
						 b, t, lp, old, ref, A);
		}
	}

	iapo_loss_stats sink = {0};
	if (!stats) stats = &sink;
	for (int b = 0; b < B; b++) {
		size_t row = (size_t)b * T;
		double row_m = 0;
		for (int t = 0; t < T; t++) row_m += mask[row + t];
		double div = step_div;
		if (o->type == IAPO_LOSS_GRPO) div *= row_m > 1 ? row_m : 1.0;
		iapo_loss_stats r = {0}; /* this row's sums, before division */
		for (int t = 0; t < T; t++) {
			size_t i = row + t;
			double m = mask[i];
			if (m == 0) {
				dlogp[i] = 0.0f;
				continue;
			}
			double lp = logp[i], A = adv[i];
			double rho = old_logp ? exp(lp - (double)old_logp[i]) : 1.0;
			double rc = rho < lo ? lo : rho > hi ? hi : rho;
			double u = rho * A, c = rc * A;
			/* d(-min(rho*A, rc*A))/dlogp: the unclipped branch carries rho*A (drho/dlogp = rho);
			 * a strictly smaller clipped branch is constant in logp. */
			double l, g;
			if (u <= c) {
				l = -u;
				g = -u;
			} else {
				l = -c;
				g = 0;
				if (A < 0) r.clipped_low += m;
				else r.clipped_high += m;
			}
			if (ref_logp) {
				double d = (double)ref_logp[i] - lp, e = exp(d);
				double k3 = e - d - 1.0;
				r.kl_sum += m * k3;
				l += beta * k3;
				g += beta * (1.0 - e); /* dk3/dlogp = 1 - e^d */
			}
			r.loss += m * l;
			r.tokens += m;
			r.ratio_sum += m * rho;
			dlogp[i] = (float)(m * g / div);
		}
		/* Added row by row: calls over consecutive rows that share one stats sum in exactly
		 * the order of one call over all of them. */
		stats->loss += r.loss / div;
		stats->kl_sum += r.kl_sum;
		stats->tokens += r.tokens;
		stats->clipped_low += r.clipped_low;
		stats->clipped_high += r.clipped_high;
		stats->ratio_sum += r.ratio_sum;
	}
	return IAPO_OK;
}
