/*
 * iapo_adv.c — IAPO's token advantages (see iapo_adv.h for the formulas and
 * which of them follow the authors' code). The smoothed gain is kept in the
 * output array while it is normalised, so nothing is allocated; statistics
 * and the combination run in double.
 */
#include "rl/iapo_adv.h"

#include <math.h>
#include <string.h>

#include "core/status.h"

const char *iapo_gain_str(iapo_gain g) { return g == IAPO_GAIN_REFERENCE ? "reference" : "plain"; }

iapo_status iapo_gain_parse(const char *s, iapo_gain *g)
{
	if (s && !strcmp(s, "plain")) *g = IAPO_GAIN_PLAIN;
	else if (s && !strcmp(s, "reference")) *g = IAPO_GAIN_REFERENCE;
	else return iapo_fail(IAPO_ERR_ARG, "gain: expected plain or reference, found \"%.64s\"", s ? s : "");
	return IAPO_OK;
}

const char *iapo_norm_str(iapo_norm n) { return n == IAPO_NORM_REFERENCE ? "reference" : "zscore"; }

iapo_status iapo_norm_parse(const char *s, iapo_norm *n)
{
	if (s && !strcmp(s, "zscore")) *n = IAPO_NORM_ZSCORE;
	else if (s && !strcmp(s, "reference")) *n = IAPO_NORM_REFERENCE;
	else return iapo_fail(IAPO_ERR_ARG, "norm: expected zscore or reference, found \"%.64s\"", s ? s : "");
	return IAPO_OK;
}

iapo_tokadv_opts iapo_tokadv_defaults(void)
{
	iapo_tokadv_opts o;
	memset(&o, 0, sizeof o);
	o.gain = IAPO_GAIN_PLAIN;
	o.norm = IAPO_NORM_ZSCORE;
	o.horizon = 1;
	o.decay = 0.5f;
	o.w_info = 1.0f;
	o.w_conf = 1.0f;
	o.width = 0;
	return o;
}

/* S_t, 0 outside [0, L). */
static double gain_at(const iapo_tokadv_opts *o, const float *E, int L, int t)
{
	if (t < 0 || t >= L) return 0.0;
	if (o->gain == IAPO_GAIN_PLAIN) return (double)E[t] - (double)E[t + 1];
	double prev = t > 0 ? (double)E[t - 1] : 0.0, next = t + 1 < L ? (double)E[t + 1] : 0.0;
	return 0.5 * ((double)E[t] + prev) - next;
}

/* The horizon kernel's weight of S_{t+k}: λ^k (ours) or λ^{h-1-k} (the code's). */
static double kernel_weight(const iapo_tokadv_opts *o, int k)
{
	int e = o->norm == IAPO_NORM_REFERENCE ? o->horizon - 1 - k : k;
	return pow((double)o->decay, (double)e);
}

/* Normalises x (L) in place as the zscore rule says. */
static void norm_zscore(float *x, int L)
{
	double sum = 0, maxabs = 0;
	for (int t = 0; t < L; t++) {
		sum += x[t];
		if (fabs(x[t]) > maxabs) maxabs = fabs(x[t]);
	}
	double mean = L > 0 ? sum / L : 0, ss = 0;
	for (int t = 0; t < L; t++) ss += ((double)x[t] - mean) * ((double)x[t] - mean);
	double std = L > 1 ? sqrt(ss / (L - 1)) : 0;
	if (L < 2 || std <= 1e-6 * (maxabs > 1 ? maxabs : 1)) {
		for (int t = 0; t < L; t++) x[t] = 0.0f;
		return;
	}
	double inv = 1.0 / sqrt(ss);
	for (int t = 0; t < L; t++) x[t] = (float)(((double)x[t] - mean) * inv);
}

/* The code's x − mean/(std + 1e-8) over width W (entries >= L are 0), then
 * ÷ (‖·‖ + 1e-8); bugged = 0 skips the first step (the horizon path). Writes
 * the first L entries of the result; the tail only enters the norm. Values
 * come from `in` (may be the same array as out). */
static void norm_reference(const float *in, float *out, int L, int W, int bugged)
{
	if (W < L) W = L;
	if (W < 2 && bugged) { /* the code's unbiased std is 0/0 here */
		for (int t = 0; t < L; t++) out[t] = 0.0f;
		return;
	}
	double c = 0;
	if (bugged) {
		double sum = 0;
		for (int t = 0; t < L; t++) sum += in[t];
		double mean = sum / W, ss = (double)(W - L) * mean * mean;
		for (int t = 0; t < L; t++) ss += ((double)in[t] - mean) * ((double)in[t] - mean);
		c = mean / (sqrt(ss / (W - 1)) + 1e-8);
	}
	double n2 = (double)(W - L) * c * c;
	for (int t = 0; t < L; t++) n2 += ((double)in[t] - c) * ((double)in[t] - c);
	double inv = 1.0 / (sqrt(n2) + 1e-8);
	for (int t = 0; t < L; t++) out[t] = (float)(((double)in[t] - c) * inv);
}

static iapo_status check_finite(const float *x, int n, const char *what)
{
	for (int i = 0; i < n; i++)
		if (!isfinite(x[i]))
			return iapo_fail(IAPO_ERR_NUMERIC, "token advantages: %s[%d]: expected a finite value, found %g", what,
					 i, (double)x[i]);
	return IAPO_OK;
}

iapo_status iapo_tokadv_compute(const iapo_tokadv_opts *o, int L, const float *E, const float *C, float A,
				float reward, float *adv, float *S, float *S_hat, float *C_hat)
{
	if (!o || L < 0 || (L > 0 && (!E || !adv)))
		return iapo_fail(IAPO_ERR_ARG, "token advantages: expected options, L >= 0, E and adv, found %s, L = %d",
				 o ? "options" : "none", L);
	if (o->horizon < 1)
		return iapo_fail(IAPO_ERR_ARG, "token advantages: horizon: expected >= 1, found %d", o->horizon);
	if (L == 0) return IAPO_OK;
	IAPO_TRY(check_finite(E, o->gain == IAPO_GAIN_PLAIN ? L + 1 : L, "E"));
	if (C) IAPO_TRY(check_finite(C, L, "C"));
	if (!isfinite(A) || !isfinite(reward))
		return iapo_fail(IAPO_ERR_NUMERIC, "token advantages: expected a finite advantage and reward, found %g, %g",
				 (double)A, (double)reward);
	const int ref = o->norm == IAPO_NORM_REFERENCE;
	const int W = o->width > L ? o->width : L;

	/* Ŝ in adv */
	for (int t = 0; t < L; t++) {
		double s = 0;
		if (o->horizon == 1) {
			s = gain_at(o, E, L, t);
		} else {
			for (int k = 0; k < o->horizon && t + k < L; k++) s += kernel_weight(o, k) * gain_at(o, E, L, t + k);
		}
		adv[t] = (float)s;
		if (S) S[t] = (float)gain_at(o, E, L, t);
	}
	if (ref) norm_reference(adv, adv, L, W, o->horizon == 1);
	else norm_zscore(adv, L);
	if (S_hat) memcpy(S_hat, adv, sizeof(float) * (size_t)L);

	/* Ĉ on the fly from C's statistics */
	double cmean = 0, cscale = 0, cshift = 0;
	int czero = !C;
	if (C) {
		double sum = 0, maxabs = 0;
		for (int t = 0; t < L; t++) {
			sum += C[t];
			if (fabs(C[t]) > maxabs) maxabs = fabs(C[t]);
		}
		if (ref) {
			if (W < 2) {
				czero = 1;
			} else {
				double mean = sum / W, ss = (double)(W - L) * mean * mean;
				for (int t = 0; t < L; t++) ss += ((double)C[t] - mean) * ((double)C[t] - mean);
				cshift = mean / (sqrt(ss / (W - 1)) + 1e-8);
				double n2 = (double)(W - L) * cshift * cshift;
				for (int t = 0; t < L; t++) n2 += ((double)C[t] - cshift) * ((double)C[t] - cshift);
				cscale = 1.0 / (sqrt(n2) + 1e-8);
			}
		} else {
			cmean = sum / L;
			double ss = 0;
			for (int t = 0; t < L; t++) ss += ((double)C[t] - cmean) * ((double)C[t] - cmean);
			double std = L > 1 ? sqrt(ss / (L - 1)) : 0;
			if (L < 2 || std <= 1e-6 * (maxabs > 1 ? maxabs : 1)) czero = 1;
			else {
				cshift = cmean;
				cscale = 1.0 / sqrt(ss);
			}
		}
	}
	const double sgn = (reward > 0) - (reward < 0);
	for (int t = 0; t < L; t++) {
		double ch = czero ? 0.0 : ((double)C[t] - cshift) * cscale;
		if (C_hat) C_hat[t] = (float)ch;
		adv[t] = (float)((double)A + (double)o->w_info * (double)adv[t] - sgn * (double)o->w_conf * ch);
	}
	return IAPO_OK;
}

iapo_status iapo_tokadv_batch(const iapo_tokadv_opts *o, int n, const int *clen, const float *E, int ldE,
			      const float *C, int ldC, const float *A, const float *rewards, float *adv, int ld_adv)
{
	if (!o || n < 0 || (n > 0 && (!clen || !E || !A || !rewards || !adv)))
		return iapo_fail(IAPO_ERR_ARG, "token advantages: batch: expected options and arrays, found NULL");
	int W = o->width;
	if (o->norm == IAPO_NORM_REFERENCE && W < 1)
		for (int i = 0; i < n; i++) W = clen[i] > W ? clen[i] : W;
	iapo_tokadv_opts oo = *o;
	oo.width = W;
	for (int i = 0; i < n; i++) {
		if (clen[i] < 0 || clen[i] >= ldE || clen[i] > ld_adv || (C && clen[i] > ldC))
			return iapo_fail(IAPO_ERR_ARG,
					 "token advantages: completion %d: length %d: expected within the row strides "
					 "(E %d, C %d, adv %d)",
					 i, clen[i], ldE, ldC, ld_adv);
		iapo_status st = iapo_tokadv_compute(&oo, clen[i], E + (size_t)i * ldE, C ? C + (size_t)i * ldC : NULL,
						     A[i], rewards[i], adv + (size_t)i * ld_adv, NULL, NULL, NULL);
		if (st != IAPO_OK) return iapo_fail_prefix(st, "completion %d", i);
	}
	return IAPO_OK;
}

void iapo_gain_stats_add(iapo_gain_stats *s, const float *E, int L, double threshold)
{
	for (int t = 0; t < L; t++) {
		double g = (double)E[t] - (double)E[t + 1];
		s->tokens += 1;
		s->gain_sum += g;
		s->near_zero += fabs(g) < threshold;
	}
}
