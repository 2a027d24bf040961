/*
 * test_baselines.c — the baselines' maths (rl/baselines.h) on hand-computed
 * values: iapo-reference §10 item 11 (GTPO bonus), 12 (GFPO selection), 13
 * (S-GRPO-Lee mask), DAPO's overlong punishment and the Kimi k1.5 length
 * reward from paper.md §2, worked out by hand below.
 */
#include "core/rng.h"
#include "core/status.h"
#include "rl/baselines.h"
#include "rl/grpo.h"
#include "test.h"

/* §10 item 11: r = [1.5, 0.5, −0.5, −1.5], L = [3, 2, 3, 1], H at t = 0 is
 * [1.0, 3.0, 0.5, 2.0] (every member has a token there). */
static void test_gtpo_item11(void)
{
	const float r[4] = {1.5f, 0.5f, -0.5f, -1.5f};
	const int L[4] = {3, 2, 3, 1};
	float A[4];
	iapo_group_advantages(r, 4, 4, 1, A);
	const double wantA[4] = {1.1618050, 0.3872683, -0.3872683, -1.1618050};
	for (int i = 0; i < 4; i++) CHECK_NEAR(A[i], wantA[i], 1e-6, "A");
	/* H rows of width 3; column 0 is the item's; later columns arbitrary. */
	const float H[4 * 3] = {1.0f, 0.7f, 0.2f, 3.0f, 0.1f, 0, 0.5f, 0.4f, 0.9f, 2.0f, 0, 0};
	float adv[4 * 3];
	for (int i = 0; i < 12; i++) adv[i] = -99;
	iapo_gtpo_opts o = {.coef = 0.1, .scale = IAPO_GTPO_SCALE_LENGTH};
	double babs = 0;
	CHECK(iapo_gtpo_advantages(&o, 4, r, A, L, H, 3, adv, 3, &babs) == IAPO_OK, "%s", iapo_errmsg());
	const double want0[4] = {1.2368050, 0.5372683, -0.6272683, -1.1818050};
	for (int i = 0; i < 4; i++) CHECK_NEAR(adv[i * 3], want0[i], 1e-6, "item 11: A + bonus at t = 0");
	/* t = 1: members 0, 1 (P) and 2 (Nn) are active: P sum 0.8, Nn sum 1/0.4. */
	CHECK_NEAR(adv[0 * 3 + 1], A[0] + 0.1 * 0.7 / 0.8 * 3, 1e-6, "t=1 member 0");
	CHECK_NEAR(adv[1 * 3 + 1], A[1] + 0.1 * 0.1 / 0.8 * 2, 1e-6, "t=1 member 1");
	CHECK_NEAR(adv[2 * 3 + 1], A[2] - 0.1 * 1 * 3, 1e-6, "t=1 member 2 (alone in Nn: full share)");
	/* t = 2: members 0 and 2, each alone on its side. */
	CHECK_NEAR(adv[0 * 3 + 2], A[0] + 0.1 * 3, 1e-6, "t=2 member 0");
	CHECK_NEAR(adv[2 * 3 + 2], A[2] - 0.1 * 3, 1e-6, "t=2 member 2");
	CHECK(adv[1 * 3 + 2] == -99 && adv[3 * 3 + 1] == -99, "entries past a completion untouched");
	double want_abs = 0.075 + 0.15 + 0.24 + 0.02 + 0.1 * 0.7 / 0.8 * 3 + 0.1 * 0.1 / 0.8 * 2 + 0.3 + 0.3 + 0.3;
	CHECK_NEAR(babs, want_abs, 1e-6, "sum of |bonus|");

	/* The GTPO paper's d_t: at t = 0 all 4 members are active. */
	o.scale = IAPO_GTPO_SCALE_ACTIVE;
	CHECK(iapo_gtpo_advantages(&o, 4, r, A, L, H, 3, adv, 3, NULL) == IAPO_OK, "%s", iapo_errmsg());
	CHECK_NEAR(adv[0], A[0] + 0.1 * 1.0 / 4.0 * 4, 1e-6, "active scale t=0 member 0");
	CHECK_NEAR(adv[3 * 3], A[3] - 0.1 * 0.5 / 2.5 * 4, 1e-6, "active scale t=0 member 3");
	CHECK_NEAR(adv[2 * 3 + 2], A[2] - 0.1 * 2, 1e-6, "active scale t=2: d = 2");

	float Hbad[12];
	memcpy(Hbad, H, sizeof H);
	Hbad[4] = NAN;
	CHECK(iapo_gtpo_advantages(&o, 4, r, A, L, Hbad, 3, adv, 3, NULL) == IAPO_ERR_NUMERIC &&
		      strstr(iapo_errmsg(), "member 1, token 1"),
	      "a NaN entropy is named: %s", iapo_errmsg());
	iapo_gtpo_scale sc;
	CHECK(iapo_gtpo_scale_parse("active", &sc) == IAPO_OK && sc == IAPO_GTPO_SCALE_ACTIVE, "parse");
	CHECK(iapo_gtpo_scale_parse("dt", &sc) == IAPO_ERR_ARG, "bad scale");
}

/* §10 item 12: lengths [5, 3, 9, 1, 7, 2, 8, 4], keep 6 → {0, 1, 3, 4, 5, 7}. */
static void test_gfpo_item12(void)
{
	const int lens[8] = {5, 3, 9, 1, 7, 2, 8, 4};
	const float r[8] = {1.5f, -0.5f, 0.5f, 1.5f, -1.5f, 0.5f, 1.5f, -0.5f};
	int keep[8];
	iapo_gfpo_select(8, 6, IAPO_GFPO_LENGTH, lens, r, keep);
	const int want[6] = {0, 1, 3, 4, 5, 7};
	for (int i = 0; i < 6; i++) CHECK(keep[i] == want[i], "keep[%d] = %d, expected %d", i, keep[i], want[i]);
	/* μ and σ over the 6 kept rewards: [1.5, −0.5, 1.5, −1.5, 0.5, −0.5], mean 1/6. */
	float kr[6], A[6];
	for (int i = 0; i < 6; i++) kr[i] = r[keep[i]];
	iapo_group_advantages(kr, 6, 6, 1, A);
	double mean = 1.0 / 6, ss = 0;
	for (int i = 0; i < 6; i++) ss += (kr[i] - mean) * (kr[i] - mean);
	double sd = sqrt(ss / 5);
	CHECK_NEAR(A[0], (1.5 - mean) / (sd + 1e-4), 1e-6, "advantage over the kept");

	/* Ties go to the lower index. */
	const int tied[4] = {2, 1, 2, 2};
	iapo_gfpo_select(4, 2, IAPO_GFPO_LENGTH, tied, r, keep);
	CHECK(keep[0] == 0 && keep[1] == 1, "ties: {0, 1}, found {%d, %d}", keep[0], keep[1]);
	/* Reward per token: r/len = [0.3, −0.1667, 0.0556, 1.5, −0.2143, 0.25, 0.1875, −0.125] → top 3 {3, 0, 5}. */
	iapo_gfpo_select(8, 3, IAPO_GFPO_REWARD_PER_TOKEN, lens, r, keep);
	CHECK(keep[0] == 0 && keep[1] == 3 && keep[2] == 5, "reward per token: {0, 3, 5}, found {%d, %d, %d}", keep[0],
	      keep[1], keep[2]);
	iapo_gfpo_select(8, 8, IAPO_GFPO_LENGTH, lens, r, keep);
	for (int i = 0; i < 8; i++) CHECK(keep[i] == i, "k = G keeps all in order");
	iapo_gfpo_metric m;
	CHECK(iapo_gfpo_metric_parse("reward_per_token", &m) == IAPO_OK && m == IAPO_GFPO_REWARD_PER_TOKEN, "parse");
	CHECK(iapo_gfpo_metric_parse("shortest", &m) == IAPO_ERR_ARG, "bad metric");
}

/* §10 item 13: alpha 2, k 4, width 6. */
static void test_sgrpo_item13(void)
{
	float mask[6];
	iapo_rng r;
	iapo_rng_seed(&r, 42, 0, 0, 0);
	iapo_sgrpo_mask(2, 4, 0.5, 6, &r, mask);
	const float want6[6] = {1, 1, 0, 0, 0, 0};
	CHECK(!memcmp(mask, want6, sizeof want6), "L = 6 >= k: [1 1 0 0 0 0]");
	/* L = 3 < k: [1, 1, B] (positions 3.. are outside the completion). */
	int ones = 0, n = 4000;
	for (int i = 0; i < n; i++) {
		for (int t = 0; t < 6; t++) mask[t] = -1;
		iapo_sgrpo_mask(2, 4, 0.5, 3, &r, mask);
		CHECK(mask[0] == 1 && mask[1] == 1 && (mask[2] == 0 || mask[2] == 1) && mask[3] == -1,
		      "L = 3: [1 1 B], nothing written past L");
		ones += mask[2] == 1;
	}
	CHECK(fabs((double)ones / n - 0.5) < 0.04, "B ~ Bernoulli(0.5): %d of %d", ones, n);
	/* alpha beyond the completion keeps it all; p = 0 keeps only the first alpha. */
	iapo_sgrpo_mask(150, 341, 0.5, 5, &r, mask);
	for (int t = 0; t < 5; t++) CHECK(mask[t] == 1, "alpha > L: all kept");
	iapo_sgrpo_mask(1, 10, 0.0, 5, &r, mask);
	CHECK(mask[0] == 1 && mask[1] == 0 && mask[4] == 0, "p = 0");
	/* The same stream gives the same mask. */
	float a[20], b[20];
	iapo_rng r1, r2;
	iapo_rng_seed(&r1, 7, 1, 2, 3);
	iapo_rng_seed(&r2, 7, 1, 2, 3);
	iapo_sgrpo_mask(3, 30, 0.5, 20, &r1, a);
	iapo_sgrpo_mask(3, 30, 0.5, 20, &r2, b);
	CHECK(!memcmp(a, b, sizeof a), "deterministic by stream");
}

/* DAPO: L_max 20, L_cache 5: free up to 15, then −1/5 per token down to −1 at 20. */
static void test_overlong(void)
{
	CHECK(iapo_overlong_penalty(10, 20, 5) == 0, "short");
	CHECK(iapo_overlong_penalty(15, 20, 5) == 0, "at the buffer's start");
	CHECK_NEAR(iapo_overlong_penalty(16, 20, 5), -0.2, 1e-12, "one token in");
	CHECK_NEAR(iapo_overlong_penalty(18, 20, 5), -0.6, 1e-12, "three in");
	CHECK(iapo_overlong_penalty(20, 20, 5) == -1, "at L_max");
	CHECK(iapo_overlong_penalty(25, 20, 5) == -1, "beyond");
	CHECK(iapo_overlong_penalty(20, 20, 0) == 0, "cache 0: off");
	CHECK_NEAR(iapo_overlong_penalty(4, 8, 100), -0.5, 1e-12, "cache > L_max is L_max");
}

/* Kimi k1.5: lengths [10, 20, 30, 20], correct [1, 0, 1, 1]:
 * λ = [0.5, 0, −0.5, 0] → [0.5, min(0, 0) = 0, −0.5, 0]; wrong and short: min(0, 0.5) = 0. */
static void test_lenpen(void)
{
	const int lens[4] = {10, 20, 30, 20}, correct[4] = {1, 0, 1, 1};
	float out[4];
	iapo_lenpen_rewards(4, lens, correct, out);
	const float want[4] = {0.5f, 0.0f, -0.5f, 0.0f};
	for (int i = 0; i < 4; i++) CHECK_NEAR(out[i], want[i], 1e-7, "lenpen");
	const int wrong[4] = {0, 0, 0, 1};
	iapo_lenpen_rewards(4, lens, wrong, out);
	CHECK(out[0] == 0 && out[2] == -0.5f && out[3] == 0, "wrong: min(0, λ): %g %g %g", out[0], out[2], out[3]);
	const int lens3[3] = {10, 13, 20}, c3[3] = {1, 1, 0};
	iapo_lenpen_rewards(3, lens3, c3, out);
	CHECK_NEAR(out[1], 0.5 - 0.3, 1e-7, "λ linear in length");
	CHECK_NEAR(out[2], -0.5, 1e-7, "longest wrong");
	const int same[3] = {7, 7, 7};
	iapo_lenpen_rewards(3, same, c3, out);
	CHECK(out[0] == 0 && out[1] == 0 && out[2] == 0, "all lengths equal: 0");
}

static void test_all_equal(void)
{
	const float a[3] = {1, 1, 1}, b[3] = {1, 1, 0.5f};
	CHECK(iapo_group_all_equal(a, 3) && !iapo_group_all_equal(b, 3) && iapo_group_all_equal(b, 1), "all equal");
}

int main(void)
{
	RUN(test_gtpo_item11);
	RUN(test_gfpo_item12);
	RUN(test_sgrpo_item13);
	RUN(test_overlong);
	RUN(test_lenpen);
	RUN(test_all_equal);
	TEST_END();
}
