/*
 * baselines.c — the baselines' per-group and per-token maths of baselines.h.
 * Pure functions, double arithmetic, no allocation.
 */
#include "rl/baselines.h"

#include <math.h>
#include <string.h>

#include "core/status.h"

double iapo_overlong_penalty(int len, int max_len, int cache)
{
	if (cache <= 0 || max_len <= 0) return 0.0;
	if (cache > max_len) cache = max_len;
	const int free_len = max_len - cache;
	if (len <= free_len) return 0.0;
	if (len > max_len) return -1.0;
	return -(double)(len - free_len) / (double)cache;
}

void iapo_lenpen_rewards(int G, const int *lens, const int *correct, float *out)
{
	if (G < 1) return;
	int lo = lens[0], hi = lens[0];
	for (int i = 1; i < G; i++) {
		if (lens[i] < lo) lo = lens[i];
		if (lens[i] > hi) hi = lens[i];
	}
	for (int i = 0; i < G; i++) {
		if (hi == lo) {
			out[i] = 0.0f;
			continue;
		}
		double lambda = 0.5 - (double)(lens[i] - lo) / (double)(hi - lo);
		out[i] = (float)(correct[i] ? lambda : (lambda < 0 ? lambda : 0.0));
	}
}

int iapo_group_all_equal(const float *rewards, int G)
{
	for (int i = 1; i < G; i++)
		if (rewards[i] != rewards[0]) return 0;
	return 1;
}

iapo_status iapo_gtpo_scale_parse(const char *s, iapo_gtpo_scale *out)
{
	if (s && !strcmp(s, "length")) *out = IAPO_GTPO_SCALE_LENGTH;
	else if (s && !strcmp(s, "active")) *out = IAPO_GTPO_SCALE_ACTIVE;
	else return iapo_fail(IAPO_ERR_ARG, "GTPO scale: expected length or active, found '%s'", s ? s : "(null)");
	return IAPO_OK;
}

iapo_status iapo_gtpo_advantages(const iapo_gtpo_opts *o, int G, const float *rewards, const float *A,
				 const int *clen, const float *H, int ldH, float *adv, int ld, double *bonus_abs)
{
	if (!o || G < 1 || !rewards || !A || !clen || !H || !adv)
		return iapo_fail(IAPO_ERR_ARG, "GTPO: expected options, a group of >= 1 and its arrays, found G %d", G);
	int Lmax = 0;
	for (int i = 0; i < G; i++) {
		if (clen[i] < 0) return iapo_fail(IAPO_ERR_ARG, "GTPO: member %d: length: expected >= 0, found %d", i, clen[i]);
		if (clen[i] > Lmax) Lmax = clen[i];
		for (int t = 0; t < clen[i]; t++) {
			float h = H[(size_t)i * ldH + t];
			if (!isfinite(h) || h < 0)
				return iapo_fail(IAPO_ERR_NUMERIC, "GTPO: member %d, token %d: expected a finite entropy >= 0, found %g",
						 i, t, (double)h);
		}
	}
	double babs = 0;
	for (int t = 0; t < Lmax; t++) {
		double pos = 0, neg = 0;
		int active = 0;
		for (int i = 0; i < G; i++) {
			if (t >= clen[i]) continue;
			double h = H[(size_t)i * ldH + t];
			active++;
			if (rewards[i] >= 0)
				pos += h;
			else
				neg += 1.0 / (h + 1e-8);
		}
		for (int i = 0; i < G; i++) {
			if (t >= clen[i]) continue;
			double h = H[(size_t)i * ldH + t];
			double w = o->scale == IAPO_GTPO_SCALE_ACTIVE ? (double)active : (double)clen[i];
			double b = rewards[i] >= 0 ? o->coef * h / (pos + 1e-8) * w
						   : -o->coef * (1.0 / (h + 1e-8)) / (neg + 1e-8) * w;
			adv[(size_t)i * ld + t] = (float)((double)A[i] + b);
			babs += fabs(b);
		}
	}
	if (bonus_abs) *bonus_abs = babs;
	return IAPO_OK;
}

iapo_status iapo_gfpo_metric_parse(const char *s, iapo_gfpo_metric *out)
{
	if (s && !strcmp(s, "length")) *out = IAPO_GFPO_LENGTH;
	else if (s && !strcmp(s, "reward_per_token")) *out = IAPO_GFPO_REWARD_PER_TOKEN;
	else
		return iapo_fail(IAPO_ERR_ARG, "GFPO metric: expected length or reward_per_token, found '%s'", s ? s : "(null)");
	return IAPO_OK;
}

/* 1 when member a ranks before member b (is kept first). */
static int ranks_before(iapo_gfpo_metric m, const int *lens, const float *rewards, int a, int b)
{
	if (m == IAPO_GFPO_LENGTH) {
		if (lens[a] != lens[b]) return lens[a] < lens[b];
	} else {
		double ea = (double)rewards[a] / (lens[a] > 1 ? lens[a] : 1);
		double eb = (double)rewards[b] / (lens[b] > 1 ? lens[b] : 1);
		if (ea != eb) return ea > eb;
	}
	return a < b;
}

void iapo_gfpo_select(int G, int k, iapo_gfpo_metric m, const int *lens, const float *rewards, int *keep)
{
	if (k > G) k = G;
	if (k < 0) k = 0;
	/* Member i is kept when fewer than k members rank before it: O(G^2), G is small. */
	int n = 0;
	for (int i = 0; i < G && n < k; i++) {
		int before = 0;
		for (int j = 0; j < G; j++)
			if (j != i && ranks_before(m, lens, rewards, j, i)) before++;
		if (before < k) keep[n++] = i;
	}
}

void iapo_sgrpo_mask(int alpha, int k, double p, int L, iapo_rng *r, float *mask)
{
	for (int t = 0; t < L; t++) {
		if (t < alpha)
			mask[t] = 1.0f;
		else if (L < k && t < k)
			mask[t] = iapo_rng_double(r) < p ? 1.0f : 0.0f;
		else
			mask[t] = 0.0f;
	}
}
