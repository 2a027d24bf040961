/*
 * test_grpo.c — group advantages and the clipped policy loss (src/rl/grpo.h)
 * against hand-computed values: iapo-reference §10 item 6 (GRPO advantages),
 * item 14 (aggregations, k3 KL), Dr. GRPO advantages, clipping with ratio != 1
 * on both sides of both bounds with both signs of A; the gradient against
 * finite differences of the loss; micro-batch splits giving exactly one call's
 * loss and gradient; argument and numeric errors. The PyTorch comparisons are
 * in test_grpo_oracle.c.
 */
#include <math.h>
#include <string.h>

#include "rl/grpo.h"
#include "test.h"

static void test_advantages_reference_item6(void)
{
	float r[8] = {1.5f, -0.5f, -0.5f, -0.5f, -0.5f, -0.5f, -0.5f, -0.5f}, a[8];
	iapo_group_advantages(r, 8, 8, 1, a);
	CHECK_NEAR(a[0], 2.4745238, 1e-6, "A0");
	for (int i = 1; i < 8; i++) CHECK_NEAR(a[i], -0.3535034, 1e-6, "A_i");

	float r2[8] = {1.5f, 0.5f, -0.5f, -1.5f, -1.5f, -0.5f, 0.5f, 1.5f};
	const double want2[8] = {1.2548850, 0.4182950, -0.4182950, -1.2548850, -1.2548850, -0.4182950, 0.4182950, 1.2548850};
	iapo_group_advantages(r2, 8, 8, 1, a);
	for (int i = 0; i < 8; i++) CHECK_NEAR(a[i], want2[i], 1e-6, "symmetric group");

	/* two groups of 4 in one call are independent */
	float r3[8] = {1, 0, 0, 0, 5, 5, 5, 7};
	iapo_group_advantages(r3, 8, 4, 1, a);
	/* group 1: mean .25, unbiased std .5 -> .75/.5001, -.25/.5001 */
	CHECK_NEAR(a[0], 0.75 / 0.5001, 1e-6, "group 1 A0");
	CHECK_NEAR(a[1], -0.25 / 0.5001, 1e-6, "group 1 A1");
	/* group 2: mean 5.5, std 1 -> -0.5/1.0001, 1.5/1.0001 */
	CHECK_NEAR(a[4], -0.5 / 1.0001, 1e-6, "group 2 A4");
	CHECK_NEAR(a[7], 1.5 / 1.0001, 1e-6, "group 2 A7");
}

static void test_advantages_all_equal_exactly_zero(void)
{
	/* 0.1 is not representable; sums of it round, but the advantage must still be exactly 0 */
	float r[14], a[14];
	for (int i = 0; i < 7; i++) r[i] = 0.1f;
	for (int i = 7; i < 14; i++) r[i] = -1.3f;
	for (int scale = 0; scale <= 1; scale++) {
		memset(a, 0xff, sizeof a);
		iapo_group_advantages(r, 14, 7, scale, a);
		for (int i = 0; i < 14; i++) CHECK(a[i] == 0.0f, "scale %d: A[%d] = %g, expected exactly 0", scale, i, a[i]);
	}
	/* G == 1: no group statistics, A = 0 (TRL would divide by a NaN std) */
	float r1[3] = {1, 2, 3};
	iapo_group_advantages(r1, 3, 1, 1, a);
	CHECK(a[0] == 0 && a[1] == 0 && a[2] == 0, "G=1 must give 0");
}

static void test_advantages_dr_grpo(void)
{
	/* --scale-rewards none: r - mean, no division */
	float r[8] = {1.5f, -0.5f, -0.5f, -0.5f, -0.5f, -0.5f, -0.5f, -0.5f}, a[8];
	iapo_group_advantages(r, 8, 8, 0, a);
	CHECK_NEAR(a[0], 1.75, 1e-7, "A0");
	for (int i = 1; i < 8; i++) CHECK_NEAR(a[i], -0.25, 1e-7, "A_i");
	float r2[4] = {1, 0, 0, 1};
	iapo_group_advantages(r2, 4, 2, 0, r2); /* in place; groups {1,0} {0,1} */
	CHECK(r2[0] == 0.5f && r2[1] == -0.5f && r2[2] == -0.5f && r2[3] == 0.5f, "in place: %g %g %g %g", r2[0], r2[1],
	      r2[2], r2[3]);
	/* a trailing partial group is a group of its own */
	float r3[5] = {0, 2, 4, 1, 3};
	iapo_group_advantages(r3, 5, 3, 0, a);
	CHECK_NEAR(a[0], -2, 1e-7, "partial: A0");
	CHECK_NEAR(a[3], -1, 1e-7, "partial: A3");
	CHECK_NEAR(a[4], 1, 1e-7, "partial: A4");
}

/* iapo-reference §10 item 14: rho = 1, beta = 0; row 0 A = [1,2,3] all counted,
 * row 1 A = [-1, ., .] with only the first token counted. The uncounted slots hold
 * NaN: they must be neither read nor given a gradient. */
static void test_aggregations_reference_item14(void)
{
	const float nan = NAN;
	float logp[6] = {-0.5f, -1.0f, -2.0f, -0.7f, nan, nan};
	float adv[6] = {1, 2, 3, -1, nan, nan};
	float mask[6] = {1, 1, 1, 1, 0, 0};
	float d[6];
	struct {
		iapo_loss_type type;
		double loss;
		double dl[4];
	} cases[3] = {
		/* bnpo: -(1+2+3-1)/4; dl = -A/4 */
		{IAPO_LOSS_BNPO, -1.25, {-0.25, -0.5, -0.75, 0.25}},
		/* grpo: -((6/3) + (-1/1))/2; dl = -A/(len*2) */
		{IAPO_LOSS_GRPO, -0.5, {-1.0 / 6, -2.0 / 6, -3.0 / 6, 0.5}},
		/* dr_grpo with max_completion_len 3: -5/(2*3); dl = -A/6 */
		{IAPO_LOSS_DR_GRPO, -5.0 / 6, {-1.0 / 6, -2.0 / 6, -3.0 / 6, 1.0 / 6}},
	};
	for (int c = 0; c < 3; c++) {
		iapo_loss_opts o = {.type = cases[c].type, .eps_low = 0.2f, .eps_high = 0.28f, .beta = 0,
				    .n_seqs = 2, .n_tokens = 4, .max_completion_len = 3};
		iapo_loss_stats s = {0};
		iapo_status st = iapo_policy_loss(&o, 2, 3, logp, NULL, NULL, adv, mask, d, &s);
		const char *name = iapo_loss_type_str(cases[c].type);
		CHECK(st == IAPO_OK, "%s: %s", name, iapo_errmsg());
		CHECK_NEAR(s.loss, cases[c].loss, 1e-12, name);
		for (int i = 0; i < 4; i++) CHECK_NEAR(d[i], cases[c].dl[i], 1e-7, name);
		CHECK(d[4] == 0 && d[5] == 0, "%s: gradient under mask 0: %g %g", name, d[4], d[5]);
		CHECK(s.tokens == 4 && s.ratio_sum == 4 && s.kl_sum == 0, "%s: stats %g %g %g", name, s.tokens,
		      s.ratio_sum, s.kl_sum);
		CHECK(s.clipped_low == 0 && s.clipped_high == 0, "%s: clip counts with ratio 1", name);
		/* old_logp == logp is the same as NULL */
		iapo_loss_stats s2 = {0};
		float d2[6];
		CHECK(iapo_policy_loss(&o, 2, 3, logp, logp, NULL, adv, mask, d2, &s2) == IAPO_OK, "%s: old = logp", name);
		CHECK(s2.loss == s.loss && memcmp(d, d2, sizeof d) == 0, "%s: old = logp differs from NULL", name);
	}
}

/* k3 = e^d - d - 1 with d = ref - logp (item 14), and dk3/dlogp = 1 - e^d. */
static void test_k3_kl(void)
{
	float logp[2] = {-1.0f, -1.0f}, ref[2] = {-0.9f, -1.1f}, adv[2] = {0, 0}, mask[2] = {1, 1}, d[2];
	iapo_loss_opts o = {.type = IAPO_LOSS_BNPO, .eps_low = 0.2f, .eps_high = 0.2f, .beta = 1.0f, .n_tokens = 1};
	for (int t = 0; t < 2; t++) {
		iapo_loss_stats s = {0};
		CHECK(iapo_policy_loss(&o, 1, 1, logp + t, NULL, ref + t, adv + t, mask + t, d + t, &s) == IAPO_OK, "%s",
		      iapo_errmsg());
		double dd = (double)ref[t] - logp[t]; /* 0.1 and -0.1 up to float rounding of ref */
		CHECK_NEAR(s.kl_sum, t == 0 ? 0.0051709 : 0.0048374, 2e-6, "k3 (reference item 14)");
		CHECK_NEAR(s.kl_sum, exp(dd) - dd - 1, 1e-12, "k3 exact");
		CHECK_NEAR(s.loss, s.kl_sum, 1e-15, "loss = beta*k3 with A = 0");
		CHECK_NEAR(d[t], 1 - exp(dd), 1e-7, "dk3/dlogp");
	}
	CHECK_NEAR(d[0], -0.10517092, 1e-6, "dk3/dlogp at +0.1");
	CHECK_NEAR(d[1], 0.09516258, 1e-6, "dk3/dlogp at -0.1");
	/* beta scales the KL in the loss and gradient, not in kl_sum */
	o.beta = 0.25f;
	iapo_loss_stats s = {0};
	float d1;
	CHECK(iapo_policy_loss(&o, 1, 1, logp, NULL, ref, adv, mask, &d1, &s) == IAPO_OK, "%s", iapo_errmsg());
	CHECK_NEAR(s.loss, 0.25 * s.kl_sum, 1e-15, "beta 0.25 loss");
	CHECK_NEAR(d1, 0.25 * d[0], 1e-7, "beta 0.25 gradient");
}

/* Ratios on both sides of both bounds (eps_low 0.2, eps_high 0.28), both signs of A:
 *   tok  rho   A    rho*A  clip*A   chosen      l       dl/dlogp (= -rho*A if unclipped)
 *   a    1.5  +2    3.0    2.56     clipped    -2.56    0          clipped_high
 *   b    1.5  -1   -1.5   -1.28     unclipped   1.5     1.5
 *   c    0.5  +1    0.5    0.8      unclipped  -0.5    -0.5
 *   d    0.5  -2   -1.0   -1.6      clipped     1.6     0          clipped_low
 *   e    1.1  +3    3.3    3.3      (inside)   -3.3    -3.3
 *   f    0.9  -1   -0.9   -0.9      (inside)    0.9     0.9
 * sum l = -2.36; bnpo over 6 tokens: -0.393333; dlogp = dl/6; ratio sum 6. */
static void test_clipping_hand_worked(void)
{
	const double rho[6] = {1.5, 1.5, 0.5, 0.5, 1.1, 0.9};
	float old[6], logp[6], d[6], mask[6] = {1, 1, 1, 1, 1, 1};
	float adv[6] = {2, -1, 1, -2, 3, -1};
	for (int i = 0; i < 6; i++) {
		old[i] = -1.0f - 0.25f * i;
		logp[i] = (float)(old[i] + log(rho[i]));
	}
	iapo_loss_opts o = {.type = IAPO_LOSS_BNPO, .eps_low = 0.2f, .eps_high = 0.28f, .beta = 0, .n_tokens = 6};
	iapo_loss_stats s = {0};
	CHECK(iapo_policy_loss(&o, 1, 6, logp, old, NULL, adv, mask, d, &s) == IAPO_OK, "%s", iapo_errmsg());
	const double want_d[6] = {0, 1.5 / 6, -0.5 / 6, 0, -3.3 / 6, 0.9 / 6};
	CHECK_NEAR(s.loss, -2.36 / 6, 1e-6, "loss");
	for (int i = 0; i < 6; i++) CHECK_NEAR(d[i], want_d[i], 1e-6, "dlogp");
	CHECK(d[0] == 0.0f && d[3] == 0.0f, "chosen clipped branch must have exactly zero gradient: %g %g", d[0], d[3]);
	CHECK(s.clipped_low == 1 && s.clipped_high == 1, "clip counts low %g high %g", s.clipped_low, s.clipped_high);
	CHECK_NEAR(s.ratio_sum, 6.0, 1e-6, "ratio sum");
	CHECK(s.tokens == 6, "tokens %g", s.tokens);

	/* symmetric clip 0.2/0.2 moves token a's bound to 1.2: l = -2.4 */
	o.eps_high = 0.2f;
	memset(&s, 0, sizeof s);
	CHECK(iapo_policy_loss(&o, 1, 6, logp, old, NULL, adv, mask, d, &s) == IAPO_OK, "%s", iapo_errmsg());
	CHECK_NEAR(s.loss, (-2.36 + 2.56 - 2.4) / 6, 1e-6, "loss with eps_high 0.2");

	/* a clipped token still gets the KL gradient: beta 0.5, ref - logp = 0.1 on token a only */
	float ref[6];
	for (int i = 0; i < 6; i++) ref[i] = logp[i];
	ref[0] = logp[0] + 0.1f;
	o.beta = 0.5f;
	memset(&s, 0, sizeof s);
	CHECK(iapo_policy_loss(&o, 1, 6, logp, old, ref, adv, mask, d, &s) == IAPO_OK, "%s", iapo_errmsg());
	double dd = (double)ref[0] - logp[0];
	CHECK_NEAR(d[0], 0.5 * (1 - exp(dd)) / 6, 1e-7, "KL gradient through a clipped token");
	CHECK_NEAR(s.kl_sum, exp(dd) - dd - 1, 1e-9, "kl_sum");
	CHECK_NEAR(s.loss, (-2.4 + 1.5 - 0.5 + 1.6 - 3.3 + 0.9 + 0.5 * s.kl_sum) / 6, 1e-6, "loss with KL");
	CHECK(s.clipped_low == 1 && s.clipped_high == 1, "clip counts with KL");
}

/* Deterministic pseudo-random values in [-1, 1). */
static double urand(unsigned *state)
{
	*state = *state * 1664525u + 1013904223u;
	return ((*state >> 8) & 0xffffff) / (double)0x800000 - 1.0;
}

enum { RB = 7, RT = 9 };
static float r_logp[RB * RT], r_old[RB * RT], r_ref[RB * RT], r_adv[RB * RT], r_mask[RB * RT];

static void make_random_batch(void)
{
	unsigned st = 12345;
	for (int b = 0; b < RB; b++) {
		int len = b == 3 ? 0 : b == RB - 1 ? RT : 1 + b; /* ragged; one row empty, one full */
		double A = 2 * urand(&st);
		for (int t = 0; t < RT; t++) {
			int i = b * RT + t;
			r_logp[i] = (float)(-2.0 + urand(&st));
			r_old[i] = (float)(r_logp[i] + 0.6 * urand(&st)); /* ratios in [0.55, 1.82]: both bounds crossed */
			r_ref[i] = (float)(r_logp[i] + 0.3 * urand(&st));
			r_adv[i] = (float)(A + 0.2 * urand(&st));
			r_mask[i] = t < len ? 1.0f : 0.0f;
		}
	}
}

static iapo_loss_opts random_opts(iapo_loss_type type)
{
	long ntok = 0;
	for (int i = 0; i < RB * RT; i++) ntok += r_mask[i] != 0;
	return (iapo_loss_opts){.type = type, .eps_low = 0.2f, .eps_high = 0.28f, .beta = 0.04f,
				.n_seqs = RB, .n_tokens = ntok, .max_completion_len = RT};
}

/* Splitting a step into micro-batches (by rows) with the step-level normalisers gives exactly
 * one call's loss and dlogp. This is where we deliberately differ from TRL 0.21: its bnpo
 * normalises each micro-batch by its OWN token count and divides by the accumulation steps,
 * so its loss depends on how a step is split; ours is the token mean over the whole step. */
static void test_microbatch_split_is_exact(void)
{
	make_random_batch();
	const int cuts[] = {0, 3, 4, 7}; /* micro-batches of 3, 1 (the empty row) and 3 rows */
	for (int type = 0; type < 3; type++) {
		iapo_loss_opts o = random_opts((iapo_loss_type)type);
		const char *name = iapo_loss_type_str((iapo_loss_type)type);
		float d_one[RB * RT], d_split[RB * RT];
		iapo_loss_stats one = {0}, split = {0}, parts_sum = {0};
		CHECK(iapo_policy_loss(&o, RB, RT, r_logp, r_old, r_ref, r_adv, r_mask, d_one, &one) == IAPO_OK, "%s: %s",
		      name, iapo_errmsg());
		double trl_bnpo = 0; /* TRL 0.21's bnpo over the same micro-batches */
		for (int k = 0; k < 3; k++) {
			int off = cuts[k] * RT, nb = cuts[k + 1] - cuts[k];
			iapo_loss_stats part = {0};
			CHECK(iapo_policy_loss(&o, nb, RT, r_logp + off, r_old + off, r_ref + off, r_adv + off, r_mask + off,
					       d_split + off, &split) == IAPO_OK, "%s: %s", name, iapo_errmsg());
			CHECK(iapo_policy_loss(&o, nb, RT, r_logp + off, r_old + off, r_ref + off, r_adv + off, r_mask + off,
					       d_split + off, &part) == IAPO_OK, "%s: %s", name, iapo_errmsg());
			parts_sum.loss += part.loss;
			parts_sum.tokens += part.tokens;
			double mb_tokens = part.tokens > 1 ? part.tokens : 1;
			if (type == IAPO_LOSS_BNPO) trl_bnpo += part.loss * (double)o.n_tokens / mb_tokens / 3.0;
		}
		CHECK(memcmp(d_one, d_split, sizeof d_one) == 0, "%s: dlogp of a split step differs from one call", name);
		CHECK(split.loss == one.loss, "%s: loss %.17g (split, shared stats) vs %.17g (one call)", name, split.loss,
		      one.loss);
		CHECK(split.kl_sum == one.kl_sum && split.ratio_sum == one.ratio_sum && split.tokens == one.tokens &&
			      split.clipped_low == one.clipped_low && split.clipped_high == one.clipped_high,
		      "%s: stats of a split step differ", name);
		CHECK_NEAR(parts_sum.loss, one.loss, 1e-14, "separate stats added by the caller");
		CHECK(one.clipped_low > 0 && one.clipped_high > 0, "%s: the random batch should clip on both sides (%g %g)",
		      name, one.clipped_low, one.clipped_high);
		if (type == IAPO_LOSS_BNPO)
			CHECK(fabs(trl_bnpo - one.loss) > 1e-3 * fabs(one.loss),
			      "TRL's per-micro-batch bnpo (%g) should differ from the step token mean (%g) here", trl_bnpo,
			      one.loss);
	}
}

/* dlogp against central differences of the loss (in double through a float input: step 1e-3). */
static void test_gradient_finite_differences(void)
{
	make_random_batch();
	for (int type = 0; type < 3; type++) {
		iapo_loss_opts o = random_opts((iapo_loss_type)type);
		float d[RB * RT], scratch[RB * RT];
		CHECK(iapo_policy_loss(&o, RB, RT, r_logp, r_old, r_ref, r_adv, r_mask, d, NULL) == IAPO_OK, "%s",
		      iapo_errmsg());
		int checked = 0;
		for (int i = 0; i < RB * RT; i++) {
			if (r_mask[i] == 0) continue;
			double rho = exp((double)r_logp[i] - r_old[i]);
			if (fabs(rho - 0.8) < 0.01 || fabs(rho - 1.28) < 0.01) continue; /* kink of the clip */
			float saved = r_logp[i];
			double h = 1e-3, lp[2];
			for (int k = 0; k < 2; k++) {
				r_logp[i] = (float)(saved + (k ? -h : h));
				iapo_loss_stats s = {0};
				iapo_policy_loss(&o, RB, RT, r_logp, r_old, r_ref, r_adv, r_mask, scratch, &s);
				lp[k] = s.loss;
			}
			double fd = (lp[0] - lp[1]) / ((double)(float)(saved + h) - (double)(float)(saved - h));
			r_logp[i] = saved;
			CHECK(fabs(fd - d[i]) <= 1e-4 * fmax(fabs(d[i]), 0.01), "%s: token %d: fd %.9g vs %.9g",
			      iapo_loss_type_str((iapo_loss_type)type), i, fd, (double)d[i]);
			checked++;
		}
		CHECK(checked > 20, "only %d tokens checked", checked);
	}
}

static void test_errors(void)
{
	float lp[2] = {-1, -1}, adv[2] = {1, 1}, mask[2] = {1, 1}, d[2];
	iapo_loss_opts o = {.type = IAPO_LOSS_GRPO, .eps_low = 0.2f, .eps_high = 0.2f, .beta = 0.1f, .n_seqs = 1};
	iapo_loss_stats s = {0};
	CHECK(iapo_policy_loss(&o, 1, 2, lp, NULL, NULL, adv, mask, d, &s) == IAPO_ERR_ARG, "beta without reference");
	CHECK(strstr(iapo_errmsg(), "ref_logp") != NULL, "message: %s", iapo_errmsg());
	o.beta = 0;
	CHECK(iapo_policy_loss(&o, 1, 2, lp, NULL, NULL, adv, mask, d, &s) == IAPO_OK, "beta 0 needs no reference");
	o.n_seqs = 0;
	CHECK(iapo_policy_loss(&o, 1, 2, lp, NULL, NULL, adv, mask, d, &s) == IAPO_ERR_ARG, "grpo with n_seqs 0");
	o.type = IAPO_LOSS_DR_GRPO;
	o.n_seqs = 2;
	o.max_completion_len = 0;
	CHECK(iapo_policy_loss(&o, 1, 2, lp, NULL, NULL, adv, mask, d, &s) == IAPO_ERR_ARG, "dr_grpo without max len");
	o.type = IAPO_LOSS_BNPO;
	o.n_tokens = 0; /* max(1, 0) */
	CHECK(iapo_policy_loss(&o, 1, 2, lp, NULL, NULL, adv, mask, d, &s) == IAPO_OK, "bnpo with n_tokens 0");
	o.eps_low = -0.1f;
	CHECK(iapo_policy_loss(&o, 1, 2, lp, NULL, NULL, adv, mask, d, &s) == IAPO_ERR_ARG, "negative epsilon");
	o.eps_low = 0.2f;
	o.type = (iapo_loss_type)7;
	CHECK(iapo_policy_loss(&o, 1, 2, lp, NULL, NULL, adv, mask, d, &s) == IAPO_ERR_ARG, "unknown type");
	o.type = IAPO_LOSS_BNPO;
	CHECK(iapo_policy_loss(&o, 1, 2, NULL, NULL, NULL, adv, mask, d, &s) == IAPO_ERR_ARG, "NULL logp");
	CHECK(iapo_policy_loss(&o, 0, 0, NULL, NULL, NULL, NULL, NULL, NULL, &s) == IAPO_OK, "empty batch");

	/* a NaN under the mask is a numeric error and leaves stats alone; under mask 0 it is ignored */
	iapo_loss_stats before = s;
	lp[1] = NAN;
	CHECK(iapo_policy_loss(&o, 1, 2, lp, NULL, NULL, adv, mask, d, &s) == IAPO_ERR_NUMERIC, "NaN logp");
	CHECK(strstr(iapo_errmsg(), "[0,1]") != NULL, "message names the token: %s", iapo_errmsg());
	CHECK(memcmp(&before, &s, sizeof s) == 0, "stats changed by a failing call");
	mask[1] = 0;
	CHECK(iapo_policy_loss(&o, 1, 2, lp, NULL, NULL, adv, mask, d, &s) == IAPO_OK, "NaN under mask 0: %s",
	      iapo_errmsg());
	CHECK(d[1] == 0 && isfinite(s.loss), "NaN under mask 0 leaked");
	mask[1] = -1;
	CHECK(iapo_policy_loss(&o, 1, 2, lp, NULL, NULL, adv, mask, d, &s) == IAPO_ERR_ARG, "negative mask");
}

static void test_loss_type_names(void)
{
	iapo_loss_type t;
	const char *names[] = {"grpo", "bnpo", "dr_grpo"};
	for (int i = 0; i < 3; i++) {
		CHECK(iapo_loss_type_parse(names[i], &t) == IAPO_OK && (int)t == i, "%s", names[i]);
		CHECK(strcmp(iapo_loss_type_str((iapo_loss_type)i), names[i]) == 0, "str %d", i);
	}
	CHECK(iapo_loss_type_parse("dapo", &t) == IAPO_OK && t == IAPO_LOSS_BNPO, "dapo is bnpo");
	CHECK(iapo_loss_type_parse("GRPO", &t) == IAPO_ERR_ARG, "case matters");
	CHECK(strstr(iapo_errmsg(), "\"GRPO\"") != NULL, "message: %s", iapo_errmsg());
	CHECK(iapo_loss_type_parse(NULL, &t) == IAPO_ERR_ARG, "NULL");
}

int main(void)
{
	RUN(test_advantages_reference_item6);
	RUN(test_advantages_all_equal_exactly_zero);
	RUN(test_advantages_dr_grpo);
	RUN(test_aggregations_reference_item14);
	RUN(test_k3_kl);
	RUN(test_clipping_hand_worked);
	RUN(test_microbatch_split_is_exact);
	RUN(test_gradient_finite_differences);
	RUN(test_errors);
	RUN(test_loss_type_names);
	TEST_END();
}
