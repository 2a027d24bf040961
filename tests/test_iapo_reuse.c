/*
 * test_iapo_reuse.c — the trainer's hand-off of its rollout cache to the IAPO
 * hook (trainer.h's kv_slot / kv_entropy / unused in iapo_rollout_view), on
 * the tiny SFT-warm-started model of tests/trainer_fixture.h with --algo
 * iapo. In every real step a checking hook runs the hook twice: as the
 * trainer offers the rollout (cache reuse, skipped groups) and on a copy of
 * the view that offers nothing (everything recomputed); the token
 * advantages must agree within ADV_TOL (float rounding: decoding's K/V come
 * from other GEMM shapes than a prefill), and the first must really have
 * taken the cache: every sequence by default; only the last rollout batch's
 * with --rollout-batch 4 (generate resets the cache per batch); none with
 * --info-recompute. With --dynamic-sampling drop, sequences of groups whose
 * rewards are all equal are skipped (advantage = the group's, never read)
 * and the others keep exactly the advantages of the full computation; with
 * --dynamic-sampling resample, a resampling round samples each sequence into
 * its own slot (generate's slot map) and leaves the others' K/V, so every
 * sequence is offered from the cache (or skipped), matched by content. With
 * --iterations 2 the estimate is made once per rollout, right after it, so
 * the cache is still the policy's (the hook is not called on the second
 * pass). With --info-bf16 (rollout and estimator in bf16) the advantages
 * stay within BF16_ADV_TOL of the fp32 ones. No allocation inside a hook
 * call after the first.
 */
#include <math.h>
#include <stdarg.h>

#include "core/mem.h"
#include "core/status.h"
#include "rl/iapo_hook.h"
#include "rl/trainer.h"
#include "test.h"
#include "trainer_fixture.h"

#define ADV_TOL 1e-4
#define BF16_ADV_TOL 0.05 /* --info-bf16: bf16 rollout K/V and postfix rows vs fp32 (w_s = w_c = 0.3) */

static fixture fx;
static int have_fx;

static iapo_hook *make_hook(iapo_trainer *tr, const int *post, int K, int bf16)
{
	iapo_hook_opts ho = fixture_hook_opts(post, K, 0.3f, 0.3f);
	ho.info.temperature = 1.0f;
	ho.info.bf16 = bf16;
	return fixture_hook(tr, &ho);
}

typedef struct {
	iapo_hook *h, *ref;
	int calls, cover, cover_bad, reused, skipped, compared;
	double worst;
	unsigned long allocs;
} check_ctx;

static iapo_status checking_hook(void *vctx, const iapo_rollout_view *r, float *adv)
{
	check_ctx *c = vctx;
	unsigned long a0 = iapo_mem_alloc_count();
	IAPO_TRY(iapo_hook_advantage(c->h, r, adv));
	if (c->calls++ > 0) c->allocs += iapo_mem_alloc_count() - a0;
	iapo_hook_metrics m;
	iapo_hook_last_metrics(c->h, &m);
	c->cover_bad += c->cover >= 0 && m.reused + m.skipped != c->cover;
	c->reused += m.reused;
	c->skipped += m.skipped;
	iapo_rollout_view plain = *r;
	plain.kv_slot = NULL;
	plain.kv_entropy = NULL;
	plain.unused = NULL;
	float *want = calloc((size_t)r->n * r->Tc, sizeof(float));
	iapo_status st = iapo_hook_advantage(c->ref, &plain, want);
	for (int i = 0; st == IAPO_OK && i < r->n; i++)
		for (int t = 0; t < r->comp_len[i]; t++) {
			const float got = adv[(size_t)i * r->Tc + t];
			if (r->unused && r->unused[i]) {
				CHECK(got == r->seq_adv[i], "skipped sequence %d: advantage %g, expected the group's %g", i,
				      got, r->seq_adv[i]);
				continue;
			}
			double d = fabs((double)got - want[(size_t)i * r->Tc + t]);
			c->worst = d > c->worst ? d : c->worst;
			c->compared++;
		}
	free(want);
	return st;
}

/* steps of --algo iapo with extra options (k, v pairs, NULL-terminated). */
/* want_cover: sequences per call that must come from the cache or be
 * skipped (-1: any number) */
static void run_case(const char *name, int steps, int want_cover, int want_skips, ...)
{
	FIXTURE_NEED(have_fx);
	int post[8], K = fixture_postfix_ids(&fx, post, 8);
	iapo_train_opts o;
	if (K < 1 || fixture_opts(&fx, name, &o)) {
		CHECK(0, "setup");
		return;
	}
	fixture_set(&o, "algo", "iapo");
	fixture_set(&o, "prompts-per-step", "4");
	fixture_set(&o, "num-generations", "4");
	fixture_set(&o, "micro-batch", "8");
	fixture_set(&o, "save-steps", "0");
	char b[16];
	snprintf(b, sizeof b, "%d", steps);
	fixture_set(&o, "max-steps", b);
	/* the exact pass: bf16 rollouts (the default) give the bf16 pass (test_bf16) */
	fixture_set(&o, "rollout-fp32", "true");
	va_list ap;
	va_start(ap, want_skips);
	for (const char *k; (k = va_arg(ap, const char *));) fixture_set(&o, k, va_arg(ap, const char *));
	va_end(ap);
	iapo_trainer *tr;
	if (iapo_trainer_new(&o, &tr) != IAPO_OK) {
		CHECK(0, "%s: trainer: %s", name, iapo_errmsg());
		iapo_train_opts_free(&o);
		return;
	}
	const int bf16 = iapo_trainer_opts(tr)->info_bf16;
	check_ctx c = {.h = make_hook(tr, post, K, bf16), .ref = make_hook(tr, post, K, 0), .cover = want_cover};
	iapo_trainer_set_advantage(tr, checking_hook, &c);
	for (int s = 0; s < steps && c.h && c.ref; s++) {
		iapo_step_metrics m;
		CHECK(iapo_trainer_step(tr, &m) == IAPO_OK, "%s step %d: %s", name, s, iapo_errmsg());
	}
	const int mu = (int)iapo_trainer_opts(tr)->iterations;
	CHECK(c.calls == (steps + mu - 1) / mu, "%s: %d hook calls", name, c.calls);
	CHECK(c.compared > 20, "%s: %d advantages compared", name, c.compared);
	const double tol = bf16 ? BF16_ADV_TOL : ADV_TOL;
	CHECK(c.worst <= tol, "%s: reused vs recomputed advantages: max abs diff %.3g", name, c.worst);
	CHECK(c.cover_bad == 0, "%s: %d calls did not take %d sequences from the cache (or skip them)", name,
	      c.cover_bad, want_cover);
	CHECK(want_skips < 0 || (want_skips ? c.skipped > 0 : c.skipped == 0), "%s: %d sequences skipped", name,
	      c.skipped);
	CHECK(c.allocs == 0, "%s: %lu allocations in later hook calls", name, c.allocs);
	fprintf(stderr, "  %s: %d calls, %d sequences reused, %d skipped, %d advantages, max abs diff %.2g\n", name,
		c.calls, c.reused, c.skipped, c.compared, c.worst);
	iapo_hook_free(c.h);
	iapo_hook_free(c.ref);
	iapo_trainer_free(tr);
	iapo_train_opts_free(&o);
}

static void test_reuse(void) { run_case("reuse", 3, 16, 0, NULL); }
static void test_rollout_batches(void) { run_case("batches", 2, 4, 0, "rollout-batch", "4", NULL); }
static void test_recompute(void) { run_case("recompute", 2, 0, 0, "info-recompute", "true", NULL); }
static void test_iterations(void) { run_case("iterations", 4, 16, 0, "iterations", "2", NULL); }

/* Dropped groups: at chance accuracy (1/10) many groups of 4 are all wrong. */
static void test_dropped_groups(void)
{
	run_case("drop", 3, 16, 1, "dynamic-sampling", "drop", NULL);
}

/* Resampled groups: a resampling round's generate call writes the
 * resampled sequences into their own slots and leaves the rest, so all 16
 * sequences come from the cache (or are skipped), and agree with the
 * recomputed advantages. (Before the slot map: 8 of 48.) */
static void test_resampled_groups(void)
{
	run_case("resample", 3, 16, -1, "dynamic-sampling", "resample", "dynamic-max-tries", "2", NULL);
}

/* --info-bf16: the rollout samples in bf16 too and the estimator reads its
 * K/V with bf16 weights: an approximation of the fp32 estimate. */
static void test_bf16(void) { run_case("bf16", 2, 16, 0, "rollout-fp32", "false", "info-bf16", "true", NULL); }

/* The first step of --algo grpo and --algo iapo from the same seed samples
 * the same completions (same rewards and lengths): every algorithm samples
 * in the same precision (bf16 by default, fp32 with --rollout-fp32), even
 * though IAPO asks generate for entropies, so a comparison of methods is
 * not a comparison of sampling precisions. */
static void first_step(const char *name, const char *algo, int bf16, iapo_step_metrics *m)
{
	iapo_train_opts o;
	memset(m, 0, sizeof *m);
	if (fixture_opts(&fx, name, &o)) {
		CHECK(0, "setup");
		return;
	}
	fixture_set(&o, "algo", algo);
	fixture_set(&o, "prompts-per-step", "4");
	fixture_set(&o, "num-generations", "4");
	fixture_set(&o, "save-steps", "0");
	fixture_set(&o, "micro-batch", "8");
	fixture_set(&o, "max-steps", "1");
	fixture_set(&o, bf16 ? "rollout-bf16" : "rollout-fp32", "true");
	iapo_trainer *tr;
	if (iapo_trainer_new(&o, &tr) != IAPO_OK) {
		CHECK(0, "%s: trainer: %s", name, iapo_errmsg());
	} else {
		CHECK(iapo_trainer_step(tr, m) == IAPO_OK, "%s: %s", name, iapo_errmsg());
		iapo_trainer_free(tr);
	}
	iapo_train_opts_free(&o);
}

static void test_same_samples(void)
{
	FIXTURE_NEED(have_fx);
	for (int bf16 = 0; bf16 < 2; bf16++) {
		iapo_step_metrics g, i;
		first_step(bf16 ? "same-grpo-bf16" : "same-grpo", "grpo", bf16, &g);
		first_step(bf16 ? "same-iapo-bf16" : "same-iapo", "iapo", bf16, &i);
		CHECK(g.tokens > 0 && g.tokens == i.tokens && g.reward_mean == i.reward_mean &&
			      g.length_min == i.length_min && g.length_max == i.length_max,
		      "%s rollouts: grpo %g tokens reward %g, iapo %g tokens reward %g", bf16 ? "bf16" : "fp32",
		      g.tokens, g.reward_mean, i.tokens, i.reward_mean);
	}
}

int main(void)
{
	have_fx = fixture_make(&fx, "iapo-reuse", 0, 40, 7) == 0;
	CHECK(have_fx, "fixture: %s", iapo_errmsg());
	RUN(test_reuse);
	RUN(test_rollout_batches);
	RUN(test_recompute);
	RUN(test_iterations);
	RUN(test_dropped_groups);
	RUN(test_resampled_groups);
	RUN(test_bf16);
	RUN(test_same_samples);
	if (have_fx) iapo_fs_remove_all(fx.root);
	TEST_END();
}
