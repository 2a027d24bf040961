/*
 * test_iapo_adv.c — IAPO's token advantages (rl/iapo_adv.h) against
 * hand-computed values: iapo-reference §10 items 1-8 under the reference
 * settings (gain, normalisation, horizon kernel and padded width of the
 * authors' code), and our defaults (plain gain, masked z-score: sums to 0,
 * unit norm, guards for L = 1 and constant values, the intended horizon
 * kernel of item 4), the reward sign, the batch layout, the gain metrics and
 * argument errors.
 */
#include <math.h>
#include <string.h>

#include "core/status.h"
#include "rl/grpo.h"
#include "rl/iapo_adv.h"
#include "test.h"

#define TOL 2e-6

static void check_vec(const float *got, const double *want, int n, double tol, const char *what)
{
	for (int i = 0; i < n; i++) {
		char w[96];
		snprintf(w, sizeof w, "%s[%d]", what, i);
		CHECK_NEAR(got[i], want[i], tol, w);
	}
}

static iapo_tokadv_opts reference_opts(int width)
{
	iapo_tokadv_opts o = iapo_tokadv_defaults();
	o.gain = IAPO_GAIN_REFERENCE;
	o.norm = IAPO_NORM_REFERENCE;
	o.width = width;
	return o;
}

static const float E1[5] = {2.0f, 1.0f, 0.5f, 0.5f, 123.0f}; /* E[4] must not be read by the reference gain */
static const float C5[4] = {0.5f, 1.5f, 0.2f, 0.8f};

/* Items 1-3: the surprise, its telescoping sum, and the buggy normalisation at widths 4 and 6. */
static void test_reference_items_1_to_3(void)
{
	iapo_tokadv_opts o = reference_opts(4);
	o.w_conf = 0;
	float adv[4], S[4], Sh[4];
	CHECK(iapo_tokadv_compute(&o, 4, E1, C5, 0.0f, 1.0f, adv, S, Sh, NULL) == IAPO_OK, "%s", iapo_errmsg());
	const double s1[4] = {0.0, 1.0, 0.25, 0.5};
	check_vec(S, s1, 4, TOL, "item 1 S");
	CHECK_NEAR(S[0] + S[1] + S[2] + S[3], 2.0 - 0.5 * 0.5, TOL, "item 1: sum S = E0 - E3/2");
	const double s2[4] = {-0.7383443, -0.0177940, -0.5582067, -0.3780692};
	check_vec(Sh, s2, 4, TOL, "item 2 S_hat (W=4)");
	check_vec(adv, s2, 4, TOL, "item 2 adv = S_hat (A=0, w_c=0)");
	o.width = 6;
	CHECK(iapo_tokadv_compute(&o, 4, E1, C5, 0.0f, 1.0f, adv, NULL, Sh, NULL) == IAPO_OK, "%s", iapo_errmsg());
	const double s3[4] = {-0.5220844, 0.1948488, -0.3428511, -0.1636178};
	check_vec(Sh, s3, 4, TOL, "item 3 S_hat (W=6)");
	o.width = 2; /* narrower than L: L */
	CHECK(iapo_tokadv_compute(&o, 4, E1, C5, 0.0f, 1.0f, adv, NULL, Sh, NULL) == IAPO_OK, "%s", iapo_errmsg());
	check_vec(Sh, s2, 4, TOL, "width < L means L");
}

/* Item 4: the code's reversed horizon kernel replaces the normalised S (then
 * only the L2 scaling), and the intended kernel under our z-score. */
static void test_item_4_horizon(void)
{
	iapo_tokadv_opts o = reference_opts(4);
	o.horizon = 3;
	o.decay = 0.5f;
	o.w_conf = 0;
	float adv[4], Sh[4];
	CHECK(iapo_tokadv_compute(&o, 4, E1, NULL, 0.0f, 1.0f, adv, NULL, Sh, NULL) == IAPO_OK, "%s", iapo_errmsg());
	const double code[4] = {0.75, 0.875, 0.3125, 0.125};
	double n = sqrt(0.75 * 0.75 + 0.875 * 0.875 + 0.3125 * 0.3125 + 0.125 * 0.125) + 1e-8;
	double want[4];
	for (int i = 0; i < 4; i++) want[i] = code[i] / n;
	check_vec(Sh, want, 4, TOL, "item 4 code kernel [0.25,0.5,1], L2-scaled only");
	/* width 6: the zero tail of the convolution only enters the norm (as 0) */
	o.width = 6;
	CHECK(iapo_tokadv_compute(&o, 4, E1, NULL, 0.0f, 1.0f, adv, NULL, Sh, NULL) == IAPO_OK, "%s", iapo_errmsg());
	check_vec(Sh, want, 4, TOL, "item 4 code kernel at W=6");

	/* intended kernel: S' = [0.5625, 1.25, 0.5, 0.5], then (x - mean) / ||x - mean|| */
	o = iapo_tokadv_defaults();
	o.gain = IAPO_GAIN_REFERENCE; /* item 4's S comes from the reference gain */
	o.horizon = 3;
	o.decay = 0.5f;
	o.w_conf = 0;
	CHECK(iapo_tokadv_compute(&o, 4, E1, NULL, 0.0f, 1.0f, adv, NULL, Sh, NULL) == IAPO_OK, "%s", iapo_errmsg());
	const double intended[4] = {0.5625, 1.25, 0.5, 0.5};
	double mean = (0.5625 + 1.25 + 0.5 + 0.5) / 4, ss = 0;
	for (int i = 0; i < 4; i++) ss += (intended[i] - mean) * (intended[i] - mean);
	for (int i = 0; i < 4; i++) want[i] = (intended[i] - mean) / sqrt(ss);
	check_vec(Sh, want, 4, TOL, "item 4 intended kernel, z-scored");
	CHECK_NEAR(want[0], -0.2219686, 1e-6, "hand value of the intended kernel's first entry");
}

/* Items 5-7: the confidence normalisation, GRPO advantages of item 6, and the full token advantages. */
static void test_items_5_to_7(void)
{
	iapo_tokadv_opts o = reference_opts(4);
	float adv[4], Ch[4];
	CHECK(iapo_tokadv_compute(&o, 4, E1, C5, 0.0f, 1.0f, adv, NULL, NULL, Ch) == IAPO_OK, "%s", iapo_errmsg());
	const double c5[4] = {-0.5518642, 0.0996568, -0.7473205, -0.3564079};
	check_vec(Ch, c5, 4, TOL, "item 5 C_hat");

	float r[8] = {1.5f, -0.5f, -0.5f, -0.5f, -0.5f, -0.5f, -0.5f, -0.5f}, A[8];
	iapo_group_advantages(r, 8, 8, 1, A);
	CHECK_NEAR(A[0], 2.4745238, TOL, "item 6 A0");
	CHECK_NEAR(A[1], -0.3535034, TOL, "item 6 A1");

	CHECK(iapo_tokadv_compute(&o, 4, E1, C5, A[0], r[0], adv, NULL, NULL, NULL) == IAPO_OK, "%s", iapo_errmsg());
	const double right[4] = {2.2880436, 2.3570729, 2.6636375, 2.4528625};
	check_vec(adv, right, 4, TOL, "item 7 correct");
	CHECK(iapo_tokadv_compute(&o, 4, E1, C5, A[1], r[1], adv, NULL, NULL, NULL) == IAPO_OK, "%s", iapo_errmsg());
	const double wrong[4] = {-1.6437119, -0.2716406, -1.6590306, -1.0879804};
	check_vec(adv, wrong, 4, TOL, "item 7 wrong");
	o.w_conf = 0;
	CHECK(iapo_tokadv_compute(&o, 4, E1, C5, A[0], r[0], adv, NULL, NULL, NULL) == IAPO_OK, "%s", iapo_errmsg());
	const double ws_only[4] = {1.7361795, 2.4567298, 1.9163171, 2.0964546};
	check_vec(adv, ws_only, 4, TOL, "item 7 w_s=1 w_c=0");
	o.w_conf = 1;
	o.w_info = 0;
	CHECK(iapo_tokadv_compute(&o, 4, E1, C5, A[0], r[0], adv, NULL, NULL, NULL) == IAPO_OK, "%s", iapo_errmsg());
	const double wc_only[4] = {3.0263880, 2.3748670, 3.2218442, 2.8309317};
	check_vec(adv, wc_only, 4, TOL, "item 7 w_s=0 w_c=1");
	o.w_conf = o.w_info = 1e-6f;
	CHECK(iapo_tokadv_compute(&o, 4, E1, C5, A[0], r[0], adv, NULL, NULL, NULL) == IAPO_OK, "%s", iapo_errmsg());
	const double tiny[4] = {2.4745236, 2.4745237, 2.4745240, 2.4745238};
	check_vec(adv, tiny, 4, 3e-7, "item 7 w = 1e-6");
}

/* Item 8: next_token mode is E := C; the reference gain of that. */
static void test_item_8_next_token(void)
{
	iapo_tokadv_opts o = reference_opts(4);
	float adv[4], S[4];
	CHECK(iapo_tokadv_compute(&o, 4, C5, C5, 0.0f, 1.0f, adv, S, NULL, NULL) == IAPO_OK, "%s", iapo_errmsg());
	const double s8[4] = {-1.25, 0.8, 0.05, 0.5};
	check_vec(S, s8, 4, TOL, "item 8 S");
}

/* Our defaults by hand: E = [2, 1, 0.5, 0.5, 0.25] -> S = [1, 0.5, 0, 0.25]. */
static void test_defaults(void)
{
	iapo_tokadv_opts o = iapo_tokadv_defaults();
	CHECK(o.gain == IAPO_GAIN_PLAIN && o.norm == IAPO_NORM_ZSCORE && o.horizon == 1 && o.w_info == 1.0f &&
		      o.w_conf == 1.0f,
	      "defaults");
	const float E[5] = {2.0f, 1.0f, 0.5f, 0.5f, 0.25f};
	float adv[4], S[4], Sh[4], Ch[4];
	CHECK(iapo_tokadv_compute(&o, 4, E, C5, 0.5f, 1.0f, adv, S, Sh, Ch) == IAPO_OK, "%s", iapo_errmsg());
	const double s[4] = {1.0, 0.5, 0.0, 0.25};
	check_vec(S, s, 4, TOL, "plain S");
	/* mean 0.4375, d = [0.5625, 0.0625, -0.4375, -0.1875], ||d|| = sqrt(0.546875) */
	const double nd = sqrt(0.546875);
	const double sh[4] = {0.5625 / nd, 0.0625 / nd, -0.4375 / nd, -0.1875 / nd};
	check_vec(Sh, sh, 4, TOL, "z-scored S");
	/* C = [0.5, 1.5, 0.2, 0.8]: mean 0.75, d = [-0.25, 0.75, -0.55, 0.05], ||d||^2 = 0.93 */
	const double nc = sqrt(0.93);
	const double ch[4] = {-0.25 / nc, 0.75 / nc, -0.55 / nc, 0.05 / nc};
	check_vec(Ch, ch, 4, TOL, "z-scored C");
	double ssum = 0, snorm = 0, csum = 0, cnorm = 0;
	for (int t = 0; t < 4; t++) {
		ssum += Sh[t];
		snorm += (double)Sh[t] * Sh[t];
		csum += Ch[t];
		cnorm += (double)Ch[t] * Ch[t];
	}
	CHECK(fabs(ssum) < 1e-6 && fabs(csum) < 1e-6, "z-scores sum to 0: %g %g", ssum, csum);
	CHECK(fabs(snorm - 1) < 1e-6 && fabs(cnorm - 1) < 1e-6, "unit norms: %g %g", snorm, cnorm);
	double want[4];
	for (int t = 0; t < 4; t++) want[t] = 0.5 + sh[t] - ch[t];
	check_vec(adv, want, 4, TOL, "A + S_hat - C_hat (correct)");
	CHECK(iapo_tokadv_compute(&o, 4, E, C5, -0.5f, -1.0f, adv, NULL, NULL, NULL) == IAPO_OK, "%s", iapo_errmsg());
	for (int t = 0; t < 4; t++) want[t] = -0.5 + sh[t] + ch[t];
	check_vec(adv, want, 4, TOL, "A + S_hat + C_hat (wrong: the confidence sign flips)");
	CHECK(iapo_tokadv_compute(&o, 4, E, C5, 0.0f, 0.0f, adv, NULL, NULL, NULL) == IAPO_OK, "%s", iapo_errmsg());
	for (int t = 0; t < 4; t++) want[t] = sh[t];
	check_vec(adv, want, 4, TOL, "reward 0: no confidence term");
	o.w_info = 0.5f;
	o.w_conf = 2.0f;
	CHECK(iapo_tokadv_compute(&o, 4, E, C5, 1.0f, 2.0f, adv, NULL, NULL, NULL) == IAPO_OK, "%s", iapo_errmsg());
	for (int t = 0; t < 4; t++) want[t] = 1.0 + 0.5 * sh[t] - 2.0 * ch[t];
	check_vec(adv, want, 4, TOL, "weights");

	/* intended horizon under plain gain: S' = [1 + .25 + 0, .5 + 0 + .0625, 0 + .125, .25] */
	o = iapo_tokadv_defaults();
	o.horizon = 3;
	o.w_conf = 0;
	CHECK(iapo_tokadv_compute(&o, 4, E, NULL, 0.0f, 1.0f, adv, NULL, Sh, NULL) == IAPO_OK, "%s", iapo_errmsg());
	const double sp[4] = {1.25, 0.5625, 0.125, 0.25};
	double m = (1.25 + 0.5625 + 0.125 + 0.25) / 4, ss = 0;
	for (int t = 0; t < 4; t++) ss += (sp[t] - m) * (sp[t] - m);
	for (int t = 0; t < 4; t++) want[t] = (sp[t] - m) / sqrt(ss);
	check_vec(Sh, want, 4, TOL, "plain gain, horizon 3");
}

static void test_guards(void)
{
	iapo_tokadv_opts o = iapo_tokadv_defaults();
	float adv[4], Sh[4], Ch[4];
	const float E[2] = {1.0f, 0.2f}, C[1] = {3.0f};
	CHECK(iapo_tokadv_compute(&o, 1, E, C, 0.7f, 1.0f, adv, NULL, Sh, Ch) == IAPO_OK, "%s", iapo_errmsg());
	CHECK(Sh[0] == 0.0f && Ch[0] == 0.0f && adv[0] == 0.7f, "L = 1: no token terms (%g %g %g)", Sh[0], Ch[0],
	      adv[0]);
	const float flat[5] = {3.0f, 2.0f, 1.0f, 0.0f, -1.0f}; /* S = 1 everywhere */
	const float cflat[4] = {0.25f, 0.25f, 0.25f, 0.25f};
	CHECK(iapo_tokadv_compute(&o, 4, flat, cflat, 0.7f, 1.0f, adv, NULL, Sh, Ch) == IAPO_OK, "%s", iapo_errmsg());
	int zero = 1;
	for (int t = 0; t < 4; t++) zero &= Sh[t] == 0.0f && Ch[t] == 0.0f && adv[t] == 0.7f;
	CHECK(zero, "constant S and C: zero token terms");
	/* the reference path at W = 1 (the code's NaN) */
	iapo_tokadv_opts r = reference_opts(1);
	CHECK(iapo_tokadv_compute(&r, 1, E, C, 0.7f, 1.0f, adv, NULL, Sh, Ch) == IAPO_OK, "%s", iapo_errmsg());
	CHECK(Sh[0] == 0.0f && Ch[0] == 0.0f && isfinite(adv[0]), "W = 1: zero, not NaN");
	/* L = 0 is a no-op */
	CHECK(iapo_tokadv_compute(&o, 0, NULL, NULL, 0.0f, 0.0f, NULL, NULL, NULL, NULL) == IAPO_OK, "L = 0");
}

static void test_errors(void)
{
	iapo_tokadv_opts o = iapo_tokadv_defaults();
	float adv[4];
	const float E[5] = {1, 2, NAN, 3, 4};
	CHECK(iapo_tokadv_compute(&o, 4, E, C5, 0, 1, adv, NULL, NULL, NULL) == IAPO_ERR_NUMERIC, "NaN E");
	CHECK(strstr(iapo_errmsg(), "E[2]") != NULL, "names the index: %s", iapo_errmsg());
	const float Cn[4] = {1, INFINITY, 0, 0};
	CHECK(iapo_tokadv_compute(&o, 4, E1, Cn, 0, 1, adv, NULL, NULL, NULL) == IAPO_ERR_NUMERIC, "Inf C");
	o.horizon = 0;
	CHECK(iapo_tokadv_compute(&o, 4, E1, C5, 0, 1, adv, NULL, NULL, NULL) == IAPO_ERR_ARG, "horizon 0");
	o.horizon = 1;
	CHECK(iapo_tokadv_compute(&o, 4, E1, C5, 0, 1, NULL, NULL, NULL, NULL) == IAPO_ERR_ARG, "no output");
	CHECK(iapo_tokadv_compute(&o, -1, E1, C5, 0, 1, adv, NULL, NULL, NULL) == IAPO_ERR_ARG, "L < 0");
	iapo_gain g;
	iapo_norm n;
	CHECK(iapo_gain_parse("plain", &g) == IAPO_OK && g == IAPO_GAIN_PLAIN, "parse plain");
	CHECK(iapo_gain_parse("reference", &g) == IAPO_OK && g == IAPO_GAIN_REFERENCE, "parse reference");
	CHECK(iapo_gain_parse("smooth", &g) == IAPO_ERR_ARG && strstr(iapo_errmsg(), "smooth"), "bad gain");
	CHECK(iapo_norm_parse("zscore", &n) == IAPO_OK && n == IAPO_NORM_ZSCORE, "parse zscore");
	CHECK(iapo_norm_parse("reference", &n) == IAPO_OK && n == IAPO_NORM_REFERENCE, "parse norm reference");
	CHECK(iapo_norm_parse(NULL, &n) == IAPO_ERR_ARG, "NULL norm");
	CHECK(!strcmp(iapo_gain_str(IAPO_GAIN_REFERENCE), "reference") && !strcmp(iapo_norm_str(IAPO_NORM_ZSCORE), "zscore"),
	      "names");
}

/* The batch layout equals per-row calls; the reference width defaults to the longest row. */
static void test_batch(void)
{
	enum { N = 3, LD = 6 };
	const int clen[N] = {4, 2, 5};
	float E[N * LD], C[N * LD], A[N] = {1.0f, -0.5f, 0.0f}, r[N] = {1.5f, -0.5f, 0.5f};
	for (int i = 0; i < N * LD; i++) {
		E[i] = (float)(1.0 + 0.7 * sin(1.3 * i));
		C[i] = (float)(0.5 + 0.4 * cos(0.9 * i));
	}
	for (int pass = 0; pass < 2; pass++) {
		iapo_tokadv_opts o = pass ? reference_opts(0) : iapo_tokadv_defaults();
		float adv[N * LD], one[LD];
		for (int i = 0; i < N * LD; i++) adv[i] = -99.0f;
		CHECK(iapo_tokadv_batch(&o, N, clen, E, LD, C, LD, A, r, adv, LD) == IAPO_OK, "%s", iapo_errmsg());
		iapo_tokadv_opts oo = o;
		if (pass) oo.width = 5;
		for (int i = 0; i < N; i++) {
			CHECK(iapo_tokadv_compute(&oo, clen[i], E + i * LD, C + i * LD, A[i], r[i], one, NULL, NULL, NULL) ==
				      IAPO_OK,
			      "%s", iapo_errmsg());
			for (int t = 0; t < clen[i]; t++)
				CHECK(adv[i * LD + t] == one[t], "pass %d row %d t %d: %g vs %g", pass, i, t, adv[i * LD + t],
				      one[t]);
			for (int t = clen[i]; t < LD; t++) CHECK(adv[i * LD + t] == -99.0f, "padding untouched");
		}
	}
	iapo_tokadv_opts o = iapo_tokadv_defaults();
	float adv[N * LD];
	const int too_long[N] = {4, 6, 1};
	CHECK(iapo_tokadv_batch(&o, N, too_long, E, LD, C, LD, A, r, adv, LD) == IAPO_ERR_ARG, "E needs clen + 1");
}

static void test_gain_stats(void)
{
	iapo_gain_stats s = {0};
	const float E[5] = {2.0f, 1.0f, 0.995f, 0.5f, 0.5f}; /* S = 1, 0.005, 0.495, 0 */
	iapo_gain_stats_add(&s, E, 4, IAPO_NEAR_ZERO_GAIN);
	iapo_gain_stats_add(&s, E, 1, IAPO_NEAR_ZERO_GAIN);
	CHECK(s.tokens == 5, "tokens %g", s.tokens);
	CHECK_NEAR(s.gain_sum, 2.5, 1e-6, "gain sum (E0 - E4 + E0 - E1)");
	CHECK(s.near_zero == 2, "near zero %g", s.near_zero);
}

int main(void)
{
	RUN(test_reference_items_1_to_3);
	RUN(test_item_4_horizon);
	RUN(test_items_5_to_7);
	RUN(test_item_8_next_token);
	RUN(test_defaults);
	RUN(test_guards);
	RUN(test_errors);
	RUN(test_batch);
	RUN(test_gain_stats);
	TEST_END();
}
