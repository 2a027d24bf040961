/*
 * test_dist_train.c — data parallelism end to end (src/rl/trainer.h, sft.h,
 * eval.h under MPI): this program makes the tiny warm-started model of
 * tests/trainer_fixture.h, runs the one-process references itself, then
 * runs itself as a 2-rank mpirun job (tests/test_dist.h) and compares.
 * The GRPO runs: 4 prompts x 4 completions per step, micro-batch 4,
 * --iterations 2 (rollout.bin in mid-rollout checkpoints), beta 0.001 (the
 * reference pass), evaluation every 3 steps, 6 steps, checkpoints at 3 and 6.
 *  1. -np 2 = -np 1 with the same global batch: the same sampled completions
 *     (rollout.bin of checkpoint-3: rows, lengths, finish, rewards, tokens,
 *     advantages byte for byte), the same rewards, accuracy, lengths and eval
 *     results in metrics.jsonl (exactly), and the other metrics and the
 *     weights after 6 steps within WEIGHT_TOL / METRIC_TOL (below: why).
 *  2. --check-weights-every 1 on in the 2-rank run (passes), and a weight
 *     changed on rank 1 only is caught at the next step on both ranks.
 *  3. A checkpoint written by 2 ranks, resumed on 1, continues the 2-rank
 *     run; one written by 1 rank, resumed on 2, continues the 1-rank run.
 *  4. SFT with each rank holding half of each step's examples = one process
 *     holding all; eval with the problems shared 3 + 2 = one process.
 *  5. Errors on one rank come back on both (no hang): --prompts-per-step not
 *     a multiple of the ranks; a missing --data on rank 1 only.
 * Built without MPI, only the one-process halves run.
 *
 * Tolerances. One process adds the micro-batch gradients into one block in
 * order; two ranks each add their half, then MPI adds the two halves: the
 * same sum in another order, so float32 gradients differ by a few ulps
 * (~1e-7 relative). AdamW's update is lr * m / (sqrt(v) + eps): a relative
 * change r of the gradient moves it by about lr * r, and r stays far below
 * 1e-3 even for tiny gradient entries, so 6 steps at lr 3e-3 move a weight
 * by much less than WEIGHT_TOL = 1e-5 (measured: see the printed maximum).
 * Losses, KL, entropy and the gradient norm are sums in another order too:
 * METRIC_TOL = 1e-4 relative. Counts, rewards and lengths must be equal.
 */
#include <math.h>

#include "core/status.h"
#include "dist/dist.h"
#include "eval/eval.h"
#include "rl/sft.h"
#include "rl/trainer.h"
#include "test_dist.h"
#include "trainer_fixture.h"

#define WEIGHT_TOL 1e-5
#define METRIC_TOL 1e-4

static const char *self;
static fixture fx;
static int have_fx, child_rc = -1;
static char child_log[1200];

static void set(iapo_train_opts *o, const char *k, const char *v)
{
	if (iapo_train_opts_set(o, k, v) != IAPO_OK) CHECK(0, "set %s: %s", k, iapo_errmsg());
}

static int run_opts(const char *run, iapo_train_opts *o)
{
	if (fixture_opts(&fx, run, o)) return -1;
	set(o, "prompts-per-step", "4");
	set(o, "num-generations", "4");
	set(o, "micro-batch", "4");
	set(o, "max-steps", "6");
	set(o, "save-steps", "3");
	set(o, "iterations", "2");
	set(o, "lr-schedule", "linear");
	set(o, "warmup-steps", "2");
	set(o, "learning-rate", "3e-3");
	set(o, "threads", "1");
	set(o, "eval-data", fx.eval);
	set(o, "eval-steps", "3");
	set(o, "eval-generations", "2");
	return 0;
}

/* Runs `run` to its end; with stop_at > 0 only that many steps (the
 * checkpoint of step 3 is written on the way), as if the job then died. */
static iapo_status train(const char *run, int stop_at, int resume, const char *check_every)
{
	iapo_train_opts o;
	if (run_opts(run, &o)) return IAPO_ERR_ARG;
	if (resume) {
		set(&o, "resume", NULL);
		set(&o, "overwrite", "0");
	}
	if (check_every) set(&o, "check-weights-every", check_every);
	iapo_trainer *tr = NULL;
	iapo_status st = iapo_trainer_new(&o, &tr);
	while (st == IAPO_OK && iapo_trainer_steps_done(tr) < (stop_at > 0 ? stop_at : iapo_trainer_total_steps(tr)))
		st = iapo_trainer_step(tr, NULL);
	iapo_trainer_free(tr);
	iapo_train_opts_free(&o);
	return st;
}

static void run_path(char *buf, size_t n, const char *run, const char *file)
{
	snprintf(buf, n, "%s/%s/%s", fx.root, run, file);
}

/* --algo iapo with the authors' normalisation (padded to the step's longest
 * completion, over all ranks) and DAPO's dynamic sampling (groups of equal
 * rewards resampled from attempt-keyed streams): 3 steps. */
static iapo_status train_iapo(const char *run)
{
	iapo_train_opts o;
	if (run_opts(run, &o)) return IAPO_ERR_ARG;
	set(&o, "algo", "iapo");
	set(&o, "norm", "reference");
	set(&o, "dynamic-sampling", "resample");
	set(&o, "iterations", "1");
	set(&o, "max-steps", "3");
	set(&o, "eval-steps", "0");
	iapo_trainer *tr = NULL;
	iapo_status st = iapo_trainer_new(&o, &tr);
	if (st == IAPO_OK) st = iapo_trainer_run(tr, NULL, NULL, NULL);
	iapo_trainer_free(tr);
	iapo_train_opts_free(&o);
	return st;
}

/* ---- the SFT and eval cases, run the same way by one process and by each rank */

enum { SFT_N = 8, SFT_LEN = 12, SFT_STEPS = 3 };

static iapo_status sft_run(const char *out_dir, double *losses)
{
	iapo_weights w;
	IAPO_TRY(iapo_weights_load(fx.base, &w));
	iapo_sft_opts so = {.adam = {.beta1 = 0.9f, .beta2 = 0.99f, .eps = 1e-8f, .weight_decay = 0.01f},
			    .max_grad_norm = 0.5, .micro_batch = 2, .max_len = SFT_LEN};
	iapo_sft *s = NULL;
	iapo_status st = iapo_dist_agree(iapo_sft_new(&w, &so, &s));
	static int seqs[SFT_N][SFT_LEN];
	const int *ptr[SFT_N];
	int lens[SFT_N], np[SFT_N];
	iapo_rng rng;
	iapo_rng_seed(&rng, 11, 0, 0, 0);
	size_t lo, hi;
	iapo_dist_share(SFT_N, &lo, &hi);
	for (int step = 0; step < SFT_STEPS && st == IAPO_OK; step++) {
		/* every rank draws every example, then keeps its share */
		for (int b = 0; b < SFT_N; b++) {
			lens[b] = 5 + (int)iapo_rng_below(&rng, SFT_LEN - 4);
			np[b] = 1 + (int)iapo_rng_below(&rng, (uint64_t)lens[b] - 1);
			for (int k = 0; k < lens[b]; k++) seqs[b][k] = (int)iapo_rng_below(&rng, (uint64_t)w.cfg.V);
			ptr[b] = seqs[b];
		}
		iapo_sft_stats ss;
		st = iapo_sft_step(s, ptr + lo, lens + lo, np + lo, (int)(hi - lo), 2e-3f, &ss);
		losses[step] = ss.loss;
	}
	if (st == IAPO_OK && iapo_dist_rank() == 0) st = iapo_weights_save(&w, out_dir, fx.base, "F32", 0);
	st = iapo_dist_agree(st);
	iapo_sft_free(s);
	iapo_weights_free(&w);
	return st;
}

/* Writes "problem correct..." and per-sample lengths of an evaluation of the
 * base model (first 5 problems: 3 + 2 under 2 ranks) into path (rank 0). */
static iapo_status eval_run(const char *path)
{
	iapo_weights w;
	iapo_tokenizer *tok = NULL;
	iapo_dataset ds;
	iapo_dataset_opts dopts = {0};
	IAPO_TRY(iapo_weights_load(fx.base, &w));
	iapo_status st = iapo_tokenizer_load(fx.base, &tok);
	if (st == IAPO_OK) st = iapo_dataset_load(fx.eval, &dopts, &ds);
	if (st != IAPO_OK) {
		iapo_tokenizer_free(tok);
		iapo_weights_free(&w);
		return st;
	}
	iapo_eval_opts eo;
	iapo_eval_opts_default(&eo);
	eo.n_samples = 4;
	eo.max_new_tokens = 10;
	eo.system = FIX_SYSTEM;
	eo.one_shot = 0;
	eo.format = IAPO_DATA_GENERIC;
	eo.seed = 7;
	eo.batch = 3;
	eo.limit = 5;
	iapo_eval_result r;
	st = iapo_evaluate(&w, tok, &ds, &eo, &r);
	const int have_r = st == IAPO_OK;
	if (st == IAPO_OK && iapo_dist_rank() == 0) {
		FILE *f = fopen(path, "w");
		if (f) {
			fprintf(f, "problems %d samples %d accuracy %.17g format %.17g truncated %.17g prompt %.17g tokens %ld\n",
				r.n_problems, r.n_samples, r.accuracy, r.format_rate, r.truncated_rate, r.mean_prompt_tokens,
				r.generated_tokens);
			for (int i = 0; i < r.n_ks; i++)
				fprintf(f, "k %d pass %.17g alt %.17g length %.17g\n", r.ks[i], r.pass_at_k[i], r.pass_at_k_alt[i],
					r.length_at_k[i]);
			for (int s = 0; s < r.n_problems * r.n_samples; s++)
				fprintf(f, "%d %d %d\n", r.correct[s], r.format_ok[s], r.length[s]);
			fclose(f);
		} else {
			st = iapo_fail(IAPO_ERR_IO, "%s: cannot write", path);
		}
	}
	if (have_r) iapo_eval_result_free(&r);
	iapo_dataset_free(&ds);
	iapo_tokenizer_free(tok);
	iapo_weights_free(&w);
	return iapo_dist_agree(st);
}

/* ---- comparisons --------------------------------------------------------- */

static const char *const EXACT[] = {"step", "epoch", "iteration", "reward_mean", "frac_reward_zero_std", "accuracy",
				    "format_rate", "completion_length_mean", "completion_length_min",
				    "completion_length_max", "clipped_ratio", "tokens", "skipped", "learning_rate",
				    "eval_accuracy", "eval_format_rate", "eval_length_mean", "eval_truncated_rate",
				    "eval_pass@1", "eval_problems", "eval_samples"};
static const char *const NEAR[] = {"reward_std", "loss", "kl", "entropy", "grad_norm", "ratio_mean"};

static void compare_metrics_n(const char *a, const char *b, const char *what, int lines)
{
	char pa[1300], pb[1300];
	snprintf(pa, sizeof pa, "%s/%s", fx.root, a);
	snprintf(pb, sizeof pb, "%s/%s", fx.root, b);
	int na = 0, nb = 0;
	char *ma = fixture_metrics(pa, &na), *mb = fixture_metrics(pb, &nb);
	CHECK(ma && mb && na == lines && nb == lines, "%s: %d metrics lines each, found %d and %d", what, lines, na, nb);
	for (int l = 0; ma && mb && l < na && l < nb; l++) {
		char la[8192];
		snprintf(la, sizeof la, "%s", fixture_line(ma, l));
		const char *lb = fixture_line(mb, l);
		for (size_t k = 0; k < sizeof EXACT / sizeof *EXACT; k++) {
			double x = fixture_field(la, EXACT[k]), y = fixture_field(lb, EXACT[k]);
			CHECK((isnan(x) && isnan(y)) || x == y, "%s: step %d %s: %.17g vs %.17g", what, l + 1, EXACT[k], x, y);
		}
		for (size_t k = 0; k < sizeof NEAR / sizeof *NEAR; k++) {
			double x = fixture_field(la, NEAR[k]), y = fixture_field(lb, NEAR[k]);
			double tol = METRIC_TOL * fmax(1e-3, fabs(y));
			CHECK((isnan(x) && isnan(y)) || fabs(x - y) <= tol, "%s: step %d %s: %.9g vs %.9g (tol %.2g)", what, l + 1, NEAR[k], x, y, tol);
		}
	}
	free(ma);
	free(mb);
}

static void compare_metrics(const char *a, const char *b, const char *what) { compare_metrics_n(a, b, what, 6); }

/* Largest |a - b| over the weights of two checkpoints; -1 when unreadable. */
static double weight_diff(const char *a, const char *b)
{
	char pa[1300], pb[1300];
	snprintf(pa, sizeof pa, "%s/%s", fx.root, a);
	snprintf(pb, sizeof pb, "%s/%s", fx.root, b);
	iapo_weights wa, wb;
	if (iapo_weights_load(pa, &wa) != IAPO_OK) return -1;
	if (iapo_weights_load(pb, &wb) != IAPO_OK) {
		iapo_weights_free(&wa);
		return -1;
	}
	size_t n = iapo_param_count(&wa.cfg);
	double d = n == iapo_param_count(&wb.cfg) ? 0 : INFINITY;
	for (size_t i = 0; isfinite(d) && i < n; i++) d = fmax(d, fabs((double)wa.block[i] - (double)wb.block[i]));
	iapo_weights_free(&wa);
	iapo_weights_free(&wb);
	return d;
}

static void check_weights(const char *a, const char *b, const char *what)
{
	double d = weight_diff(a, b);
	fprintf(stderr, "  %s: max |weight difference| %.3g\n", what, d);
	CHECK(d >= 0 && d <= WEIGHT_TOL, "%s: max |weight difference| %.3g (tol %g)", what, d, WEIGHT_TOL);
}

/* ---- the parent's cases ---------------------------------------------------- */

static void test_one_process_runs(void)
{
	if (!have_fx) {
		CHECK(0, "no fixture");
		return;
	}
	CHECK(train("np1", 0, 0, NULL) == IAPO_OK, "np1: %s", iapo_errmsg());
	CHECK(train("np1-stop", 3, 0, NULL) == IAPO_OK, "np1-stop: %s", iapo_errmsg());
	CHECK(train_iapo("iapo-np1") == IAPO_OK, "iapo-np1: %s", iapo_errmsg());
	double losses[SFT_STEPS];
	char p[1300];
	snprintf(p, sizeof p, "%s/sft1", fx.root);
	CHECK(sft_run(p, losses) == IAPO_OK, "sft: %s", iapo_errmsg());
	snprintf(p, sizeof p, "%s/sft1.loss", fx.root);
	FILE *f = fopen(p, "w");
	for (int i = 0; f && i < SFT_STEPS; i++) fprintf(f, "%.17g\n", losses[i]);
	if (f) fclose(f);
	snprintf(p, sizeof p, "%s/eval1.txt", fx.root);
	CHECK(eval_run(p) == IAPO_OK, "eval: %s", iapo_errmsg());
}

static void test_two_ranks(void)
{
	if (!have_fx) return;
	CHECK(dist_have_mpirun(), "built with MPI but no mpirun on PATH");
	snprintf(child_log, sizeof child_log, "%s/test_dist_train.log", test_env("IAPO_TMP", "/tmp"));
	char env[1400];
	snprintf(env, sizeof env, "IAPO_DIST_ROOT=%s", fx.root);
	child_rc = dist_run_child(self, 2, "train", child_log, env);
	char *out = dist_slurp(child_log);
	CHECK(child_rc == 0 && dist_ranks_passed(out, 2), "2-rank job: exit %d, output:\n%s", child_rc, out);
	free(out);
}

static void test_np2_equals_np1(void)
{
	if (child_rc != 0) return;
	compare_metrics("np1", "np2", "np1 vs np2");
	check_weights("np1/checkpoint-6", "np2/checkpoint-6", "np1 vs np2 after 6 steps");
	check_weights("np1/checkpoint-3", "np2/checkpoint-3", "np1 vs np2 after 3 steps");
	compare_metrics_n("iapo-np1", "iapo-np2", "--algo iapo (reference norm, resampling): np1 vs np2", 3);
	check_weights("iapo-np1/checkpoint-3", "iapo-np2/checkpoint-3", "--algo iapo: np1 vs np2 after 3 steps");
	int n1 = 0, n2 = 0;
	char p1[1300], p2[1300];
	snprintf(p1, sizeof p1, "%s/iapo-np1", fx.root);
	snprintf(p2, sizeof p2, "%s/iapo-np2", fx.root);
	char *m1 = fixture_metrics(p1, &n1), *m2 = fixture_metrics(p2, &n2);
	for (int l = 0; m1 && m2 && l < 3; l++) {
		char a[8192];
		snprintf(a, sizeof a, "%s", fixture_line(m1, l));
		const char *b = fixture_line(m2, l);
		const char *keys[] = {"info_gain_mean", "dynamic_groups_resampled", "dynamic_groups_dropped"};
		for (int k = 0; k < 3; k++) {
			double x = fixture_field(a, keys[k]), y = fixture_field(b, keys[k]);
			CHECK(!isnan(y), "--algo iapo step %d: %s in metrics.jsonl", l + 1, keys[k]);
			CHECK(fabs(x - y) <= METRIC_TOL * fmax(1e-3, fabs(y)),
			      "--algo iapo step %d %s: %.9g vs %.9g", l + 1, keys[k], x, y);
		}
	}
	free(m1);
	free(m2);
}

/* rollout.bin of the mid-rollout checkpoint: the step's whole buffer. */
static void test_same_completions(void)
{
	if (child_rc != 0) return;
	char pa[1300], pb[1300];
	run_path(pa, sizeof pa, "np1", "checkpoint-3/rollout.bin");
	run_path(pb, sizeof pb, "np2", "checkpoint-3/rollout.bin");
	size_t na = 0, nb = 0;
	char *a = fixture_read(pa, &na), *b = fixture_read(pb, &nb);
	const size_t N = 16, Tc = 10, H = 64, ints = H + 8 * N * 4 + 2 * N * Tc * 4; /* header .. adv */
	CHECK(a && b && na == nb && na == ints + 2 * N * Tc * 4, "rollout.bin sizes %zu and %zu", na, nb);
	if (a && b && na == nb && na > ints) {
		/* header (but the checksum, over the logp arrays too), rows,
		 * prompt and completion lengths, finish, correct, format,
		 * rewards, group advantages, completion tokens, token advantages */
		CHECK(!memcmp(a, b, 32) && !memcmp(a + 40, b + 40, ints - 40),
		      "the same completions, rewards and advantages, byte for byte");
		const float *la = (const float *)(a + ints), *lb = (const float *)(b + ints);
		double d = 0;
		for (size_t i = 0; i < 2 * N * Tc; i++) d = fmax(d, fabs((double)la[i] - (double)lb[i]));
		CHECK(d < 1e-4, "old and reference log-probs within 1e-4: %.3g", d);
		int tokens = 0;
		for (size_t i = 0; i < N; i++) tokens += ((const int *)(a + H + 2 * N * 4))[i];
		CHECK(tokens > 0, "the completions are not empty (%d tokens)", tokens);
	}
	free(a);
	free(b);
}

static void test_resume_other_rank_count(void)
{
	if (child_rc != 0) return;
	/* 2 ranks -> 1: the child stopped np2-stop after its step-3 checkpoint */
	CHECK(train("np2-stop", 0, 1, NULL) == IAPO_OK, "resume np2-stop on 1 rank: %s", iapo_errmsg());
	compare_metrics("np2", "np2-stop", "np2 vs np2-stop resumed on 1 rank");
	check_weights("np2/checkpoint-6", "np2-stop/checkpoint-6", "2-rank checkpoint resumed on 1 rank");
	/* 1 rank -> 2: the child resumed np1-stop */
	compare_metrics("np1", "np1-stop", "np1 vs np1-stop resumed on 2 ranks");
	check_weights("np1/checkpoint-6", "np1-stop/checkpoint-6", "1-rank checkpoint resumed on 2 ranks");
}

static void test_sft_and_eval(void)
{
	if (child_rc != 0) return;
	check_weights("sft1", "sft2", "SFT: half the examples on each of 2 ranks vs all on one");
	char pa[1300], pb[1300];
	snprintf(pa, sizeof pa, "%s/sft1.loss", fx.root);
	snprintf(pb, sizeof pb, "%s/sft2.loss", fx.root);
	FILE *fa = fopen(pa, "r"), *fb = fopen(pb, "r");
	for (int i = 0; fa && fb && i < SFT_STEPS; i++) {
		double x = NAN, y = NAN;
		CHECK(fscanf(fa, "%lf", &x) == 1 && fscanf(fb, "%lf", &y) == 1, "losses readable");
		CHECK(fabs(x - y) <= 1e-6 * fabs(y), "SFT step %d loss %.9g vs %.9g", i + 1, x, y);
	}
	CHECK(fa && fb, "loss files");
	if (fa) fclose(fa);
	if (fb) fclose(fb);
	snprintf(pa, sizeof pa, "%s/eval1.txt", fx.root);
	snprintf(pb, sizeof pb, "%s/eval2.txt", fx.root);
	CHECK(fixture_same_file(pa, pb), "eval over 2 ranks (3 + 2 problems) = one process: per-sample correctness, "
	      "format, length and pass@k (%s vs %s)", pa, pb);
}

/* ---- the child: one of 2 ranks -------------------------------------------- */

static void child_train(void)
{
	CHECK(train("np2", 0, 0, "1") == IAPO_OK, "np2 (weights checked every step): %s", iapo_errmsg());
	CHECK(train("np2-stop", 3, 0, NULL) == IAPO_OK, "np2-stop: %s", iapo_errmsg());
	CHECK(train("np1-stop", 0, 1, "1") == IAPO_OK, "np1-stop resumed on 2 ranks: %s", iapo_errmsg());
	CHECK(train_iapo("iapo-np2") == IAPO_OK, "iapo-np2: %s", iapo_errmsg());
}

static void child_diverged_weights(void)
{
	iapo_train_opts o;
	if (run_opts("diverge", &o)) return;
	set(&o, "check-weights-every", "1");
	iapo_trainer *tr = NULL;
	CHECK(iapo_trainer_new(&o, &tr) == IAPO_OK, "%s", iapo_errmsg());
	if (tr) {
		if (iapo_dist_rank() == 1) ((iapo_weights *)iapo_trainer_weights(tr))->block[3] += 1e-3f;
		iapo_status st = iapo_trainer_step(tr, NULL);
		CHECK(st == IAPO_ERR_INTERNAL && strstr(iapo_errmsg(), "diverged") && strstr(iapo_errmsg(), "step 1"),
		      "rank %d: a weight changed on rank 1 is caught at step 1: %d '%s'", iapo_dist_rank(), st,
		      iapo_errmsg());
		iapo_trainer_free(tr);
	}
	iapo_train_opts_free(&o);
}

static void child_errors(void)
{
	const int r = iapo_dist_rank();
	iapo_train_opts o;
	if (run_opts("err-batch", &o)) return;
	set(&o, "prompts-per-step", "3");
	iapo_trainer *tr = NULL;
	iapo_status st = iapo_trainer_new(&o, &tr);
	CHECK(st == IAPO_ERR_ARG && strstr(iapo_errmsg(), "--prompts-per-step 3: expected a multiple of the 2 MPI ranks"),
	      "rank %d: %d '%s'", r, st, iapo_errmsg());
	iapo_trainer_free(tr);
	iapo_train_opts_free(&o);

	if (run_opts("err-data", &o)) return;
	char missing[1300];
	snprintf(missing, sizeof missing, "%s/nowhere.jsonl", fx.root);
	if (r == 1) set(&o, "data", missing); /* only rank 1 meets the error */
	tr = NULL;
	st = iapo_trainer_new(&o, &tr);
	CHECK(st != IAPO_OK && tr == NULL, "rank %d: rank 1's missing data fails both ranks", r);
	CHECK(strstr(iapo_errmsg(), "nowhere.jsonl") && (r == 1 || !strncmp(iapo_errmsg(), "rank 1: ", 8)),
	      "rank %d: '%s'", r, iapo_errmsg());
	CHECK(iapo_dist_error_shared(), "rank %d: the error is shared", r);
	iapo_trainer_free(tr);
	iapo_train_opts_free(&o);
}

static void child_sft_eval(void)
{
	double losses[SFT_STEPS];
	char p[1300];
	snprintf(p, sizeof p, "%s/sft2", fx.root);
	CHECK(sft_run(p, losses) == IAPO_OK, "sft: %s", iapo_errmsg());
	if (iapo_dist_rank() == 0) {
		snprintf(p, sizeof p, "%s/sft2.loss", fx.root);
		FILE *f = fopen(p, "w");
		for (int i = 0; f && i < SFT_STEPS; i++) fprintf(f, "%.17g\n", losses[i]);
		if (f) fclose(f);
	}
	snprintf(p, sizeof p, "%s/eval2.txt", fx.root);
	CHECK(eval_run(p) == IAPO_OK, "eval: %s", iapo_errmsg());
}

static int child(void)
{
	if (iapo_dist_init() != IAPO_OK || iapo_dist_size() != 2) {
		printf("rank ?: init: %s (size %d)\n", iapo_errmsg(), iapo_dist_size());
		return 1;
	}
	/* the parent's fixture: the paths fixture_make gave it */
	memset(&fx, 0, sizeof fx);
	fx.chat = 1;
	snprintf(fx.root, sizeof fx.root, "%s", test_env("IAPO_DIST_ROOT", "/nonexistent"));
	snprintf(fx.base, sizeof fx.base, "%s/base", fx.root);
	snprintf(fx.data, sizeof fx.data, "%s/train.jsonl", fx.root);
	snprintf(fx.eval, sizeof fx.eval, "%s/eval.jsonl", fx.root);
	RUN(child_train);
	RUN(child_diverged_weights);
	RUN(child_errors);
	RUN(child_sft_eval);
	const int r = iapo_dist_rank();
	iapo_dist_finalize();
	DIST_CHILD_END(r);
}

int main(int argc, char **argv)
{
	(void)argc;
	self = argv[0];
	if (dist_child_mode()) return child();
	have_fx = fixture_make(&fx, "dist-train", 1, 40, 5) == 0;
	CHECK(have_fx, "fixture: %s", iapo_errmsg());
	RUN(test_one_process_runs);
	if (iapo_dist_compiled()) {
		RUN(test_two_ranks);
		RUN(test_np2_equals_np1);
		RUN(test_same_completions);
		RUN(test_resume_other_rank_count);
		RUN(test_sft_and_eval);
	} else {
		fprintf(stderr, "  (built without MPI: the 2-rank cases are not run)\n");
	}
	if (have_fx && test_cases_failed == 0) iapo_fs_remove_all(fx.root);
	TEST_END();
}
