/*
 * info.c — cost of IAPO's information pass (rl/info.h) against what it is
 * added to, as JSON lines on stdout. One batch of a GRPO step: G = 8
 * sequences of a 64-token prompt + 192-token completion (T = 256), random
 * Qwen2 weights of bench/model.c's shapes (tiny, small; qwen0.5b on request),
 * a 4-token postfix (about what "</think><answer>" costs in Qwen's BPE), one
 * answer token. Per shape:
 *
 *   info        the fast estimator (iapo_info_compute, automatic chunk): total,
 *               its prefill (which the rollout's own cache could replace) and
 *               its postfix pass; rows through the model
 *   info_naive  the brute-force estimator (iapo_info_naive: a full training
 *               forward per prefix), measured on ONE sequence and multiplied
 *               by G (the record says so): the full batch takes minutes
 *   fwd_bwd     one training forward + backward of the same batch (B = 8,
 *               T = 256, log-probs of the completion tokens)
 *   rollout     iapo_generate of the same batch: 8 prompts of 64 tokens, 192
 *               new tokens each at temperature 1 (EOS ignored)
 *   info_variant the same pass with a 1-token postfix, and with --info-stride 4
 *               (an approximation): time, and how far stride 4 moves the
 *               token advantages (defaults, A_i = 0, correct) from the exact
 *               ones — on RANDOM weights, whose entropies jump from token to
 *               token, so this overstates what a trained model would show
 *   summary     info as a fraction of rollout + fwd_bwd (one GRPO step without
 *               reference log-probs), and the speed-up over the naive pass
 *
 * info, fwd_bwd and rollout warm up once, then run in turn for up to 5
 * rounds within a time budget (1 with --quick) and report medians, so a load
 * change on a shared machine hits all three alike; the variants take the
 * median of up to 3 repeats; the naive pass runs once, unwarmed (it takes
 * seconds to minutes, so a cold start is noise). Left out: the reference model's
 * forward (β > 0), the optimiser step, several micro-batches.
 *
 * Usage: info [--shape tiny|small|qwen0.5b|all] [--threads N] [--quick] [--no-naive]
 * ("all" = tiny and small).
 */
#include "bench.h"
#include "core/mem.h"
#include "core/rng.h"
#include "core/status.h"
#include "model/generate.h"
#include "model/transformer.h"
#include "model/weights.h"
#include "rl/iapo_adv.h"
#include "rl/info.h"

typedef struct {
	const char *name;
	int V, C, L, NH, NKV, F;
} model_shape;

static const model_shape SHAPES[] = {
	{"tiny", 512, 256, 4, 4, 2, 768},
	{"small", 8192, 512, 8, 8, 4, 1536},
	{"qwen0.5b", 151936, 896, 24, 14, 2, 4864},
};
#define NSHAPES ((int)(sizeof SHAPES / sizeof SHAPES[0]))

enum { G = 8, PROMPT = 64, COMP = 192, T = PROMPT + COMP, KPOST = 4, MAX_REPS = 3, ROUNDS = 5 };

static void make_config(const model_shape *s, iapo_config *c)
{
	memset(c, 0, sizeof *c);
	c->arch = IAPO_ARCH_QWEN2;
	snprintf(c->model_type, sizeof c->model_type, "qwen2");
	c->V = s->V;
	c->C = s->C;
	c->L = s->L;
	c->NH = s->NH;
	c->NKV = s->NKV;
	c->HD = s->C / s->NH;
	c->F = s->F;
	c->max_pos = 32768;
	c->rope_theta = 1e6f;
	c->rms_eps = 1e-6f;
	c->tie_embeddings = 1;
	c->qkv_bias = 1;
	c->rope_kind = IAPO_ROPE_DEFAULT;
	c->bos_id = -1;
	c->eos_ids[0] = s->V - 1;
	c->n_eos = 1;
	c->pad_id = -1;
	snprintf(c->torch_dtype, sizeof c->torch_dtype, "float32");
}

typedef struct {
	const iapo_weights *w;
	int *tokens;                 /* (G, T): prompt then completion */
	const int *prompts[G], *comps[G];
	int plen[G], clen[G];
	iapo_info_batch batch;
	iapo_info *info;
	iapo_info_opts io;
	float *E, *C;                /* (G, COMP+1) */
	iapo_info_stats stats;
	iapo_fwd *f;
	int lens[G], *targets;       /* (G, T) */
	float *logp, *dlogp, *grad;
	iapo_kv *kv;
	iapo_gen_result res[G];
	float *adv_exact; /* (G, COMP) */
	int reps;
} ctx;

typedef iapo_status (*fn)(ctx *x);

static iapo_status run_info(ctx *x) { return iapo_info_compute(x->info, &x->batch, x->E, x->C, COMP + 1, &x->stats); }

static iapo_status run_naive(ctx *x)
{
	iapo_info_batch one = x->batch;
	one.n = 1;
	return iapo_info_naive(x->w, &x->io, &one, x->E, x->C, COMP + 1);
}

static iapo_status run_fwd_bwd(ctx *x)
{
	IAPO_TRY(iapo_fwd_forward(x->f, x->tokens, x->lens, x->targets, G, T, x->logp, NULL, NULL));
	return iapo_fwd_backward(x->f, x->dlogp, NULL, x->grad);
}

static iapo_status run_rollout(ctx *x)
{
	int eos = -1;
	iapo_gen_opts o = {.max_new_tokens = COMP, .sampler = {1.0f, 0, 1.0f}, .seed = 5, .eos_ids = &eos, .n_eos = 1};
	iapo_gen_results_free(x->res, G);
	return iapo_generate(x->w, x->prompts, x->plen, G, &o, x->kv, x->res, NULL);
}

/* Warm-up (when warm), then the median of up to MAX_REPS (at least one) within budget seconds. */
static iapo_status time_it(fn f, ctx *x, int warm, double budget, int reps_max, double *median, double *extra,
			   double *extra2)
{
	if (warm) IAPO_TRY(f(x));
	double v[MAX_REPS], a[MAX_REPS], b[MAX_REPS], spent = 0;
	int r = 0;
	while (r < reps_max && (r == 0 || spent + v[r - 1] <= budget)) {
		double t0 = bench_now();
		IAPO_TRY(f(x));
		v[r] = bench_now() - t0;
		a[r] = x->stats.seconds_prefill;
		b[r] = x->stats.seconds_pass;
		spent += v[r++];
	}
	*median = bench_median(v, r);
	if (extra) *extra = bench_median(a, r);
	if (extra2) *extra2 = bench_median(b, r);
	return IAPO_OK;
}

/* Token advantages (defaults, A = 0, a correct completion) of every sequence from E and C into adv (G, COMP). */
static iapo_status token_adv(const float *E, const float *C, float *adv)
{
	iapo_tokadv_opts o = iapo_tokadv_defaults();
	for (int g = 0; g < G; g++)
		IAPO_TRY(iapo_tokadv_compute(&o, COMP, E + (size_t)g * (COMP + 1), C + (size_t)g * (COMP + 1), 0.0f, 1.0f,
					     adv + (size_t)g * COMP, NULL, NULL, NULL));
	return IAPO_OK;
}

/* The pass with other options: time, and (stride) the advantages' deviation from exact ones. */
static iapo_status variant(ctx *x, const char *name, int K, int stride, const float *adv_exact, double budget, int reps,
			   int threads, const char *shape)
{
	iapo_info_opts io = x->io;
	io.n_postfix = K;
	io.stride = stride;
	IAPO_TRY(iapo_info_new(x->w, G, T, &io, &x->info));
	double secs, pre, pass;
	iapo_status st = time_it(run_info, x, 1, budget, reps, &secs, &pre, &pass);
	iapo_info_stats is = x->stats;
	iapo_info_free(x->info);
	x->info = NULL;
	IAPO_TRY(st);
	double max_d = 0, sum_d = 0, sum_a = 0;
	if (adv_exact) {
		float *adv = iapo_malloc(sizeof(float) * G * COMP);
		if (!adv) return iapo_fail(IAPO_ERR_NOMEM, "bench: advantages");
		st = token_adv(x->E, x->C, adv);
		for (int i = 0; st == IAPO_OK && i < G * COMP; i++) {
			double d = fabs((double)adv[i] - adv_exact[i]);
			max_d = d > max_d ? d : max_d;
			sum_d += d;
			sum_a += fabs(adv_exact[i]);
		}
		iapo_free(adv);
		IAPO_TRY(st);
	}
	bench_rec_begin("info_variant");
	bench_rec_str("shape", shape);
	bench_rec_int("threads", threads);
	bench_rec_str("variant", name);
	bench_rec_int("postfix", K);
	bench_rec_int("stride", stride);
	bench_rec_num("seconds", secs);
	bench_rec_num("seconds_pass", pass);
	bench_rec_int("positions", is.positions);
	bench_rec_int("rows_pass", is.rows_pass);
	if (adv_exact) {
		bench_rec_num("adv_max_abs_diff", max_d);
		bench_rec_num("adv_mean_abs_diff", sum_d / (G * COMP));
		bench_rec_num("adv_mean_abs_exact", sum_a / (G * COMP));
		bench_rec_bool("random_weights", 1);
	}
	bench_rec_end();
	bench_note("info: %-6s %-9s %.3f s (pass %.3f s)%s", shape, name, secs, pass, adv_exact ? "" : "\n");
	if (adv_exact)
		bench_note(", token advantages moved by %.3g on average (max %.3g; exact ones average %.3g in size)\n",
			   sum_d / (G * COMP), max_d, sum_a / (G * COMP));
	return IAPO_OK;
}

static iapo_status bench_shape(const model_shape *s, int threads, int quick, int naive)
{
	iapo_config c;
	make_config(s, &c);
	IAPO_TRY(iapo_config_validate(&c, s->name));
	iapo_weights w;
	memset(&w, 0, sizeof w);
	IAPO_TRY(iapo_weights_init_random(&w, &c, 1234, 0.02f));
	ctx x;
	memset(&x, 0, sizeof x);
	x.w = &w;
	iapo_status st = IAPO_OK;
	const double budget = quick ? 2.0 : 20.0;
	const int reps = quick ? 1 : MAX_REPS, rounds = quick ? 1 : ROUNDS;
	IAPO_CHECK(st, iapo_alloc_or_fail((void **)&x.tokens, sizeof(int) * G * T, "tokens"));
	IAPO_CHECK(st, iapo_alloc_or_fail((void **)&x.targets, sizeof(int) * G * T, "targets"));
	IAPO_CHECK(st, iapo_alloc_or_fail((void **)&x.logp, sizeof(float) * G * T, "logp"));
	IAPO_CHECK(st, iapo_alloc_or_fail((void **)&x.dlogp, sizeof(float) * G * T, "dlogp"));
	IAPO_CHECK(st, iapo_alloc_or_fail((void **)&x.E, sizeof(float) * G * (COMP + 1), "E"));
	IAPO_CHECK(st, iapo_alloc_or_fail((void **)&x.C, sizeof(float) * G * (COMP + 1), "C"));
	x.grad = iapo_alloc_aligned(sizeof(float) * iapo_param_count(&c));
	if (!x.grad) {
		st = iapo_fail(IAPO_ERR_NOMEM, "bench: gradient block");
		goto fail;
	}
	iapo_rng r;
	iapo_rng_seed(&r, 3, (uint64_t)c.V, 0, 0);
	for (int i = 0; i < G * T; i++) x.tokens[i] = (int)iapo_rng_below(&r, (uint64_t)(c.V - 1));
	for (int g = 0; g < G; g++) {
		x.prompts[g] = x.tokens + (size_t)g * T;
		x.comps[g] = x.tokens + (size_t)g * T + PROMPT;
		x.plen[g] = PROMPT;
		x.clen[g] = COMP;
		x.lens[g] = T;
		for (int t = 0; t < T; t++) {
			int in = t >= PROMPT - 1 && t + 1 < T;
			x.targets[g * T + t] = in ? x.tokens[g * T + t + 1] : -1;
			x.dlogp[g * T + t] = in ? -1.0f / (G * COMP) : 0.0f;
		}
	}
	x.batch = (iapo_info_batch){.n = G, .prompts = x.prompts, .plen = x.plen, .comps = x.comps, .clen = x.clen};
	int postfix[KPOST] = {10, 20, 30, 40};
	x.io = iapo_info_defaults();
	x.io.postfix = postfix;
	x.io.n_postfix = KPOST;

	double info_s, pre_s, pass_s, naive_s, fb_s, roll_s;
	/* the three measured in turn, round after round, so that a load change on a
	 * shared machine hits them alike; medians over the rounds */
	IAPO_CHECK(st, iapo_info_new(&w, G, T, &x.io, &x.info));
	IAPO_CHECK(st, iapo_fwd_new(&w, G, T, 1, &x.f));
	IAPO_CHECK(st, iapo_kv_new(&w, G, T, &x.kv));
	IAPO_CHECK(st, run_info(&x));
	IAPO_CHECK(st, run_fwd_bwd(&x));
	IAPO_CHECK(st, run_rollout(&x));
	{
		double vi[ROUNDS], vp[ROUNDS], vq[ROUNDS], vf[ROUNDS], vr[ROUNDS], spent = 0, t0;
		int n = 0;
		while (n < rounds && (n == 0 || spent <= budget)) {
			t0 = bench_now();
			IAPO_CHECK(st, run_info(&x));
			vi[n] = bench_now() - t0;
			vp[n] = x.stats.seconds_prefill;
			vq[n] = x.stats.seconds_pass;
			t0 = bench_now();
			IAPO_CHECK(st, run_fwd_bwd(&x));
			vf[n] = bench_now() - t0;
			t0 = bench_now();
			IAPO_CHECK(st, run_rollout(&x));
			vr[n] = bench_now() - t0;
			spent += vi[n] + vf[n] + vr[n];
			n++;
		}
		info_s = bench_median(vi, n);
		pre_s = bench_median(vp, n);
		pass_s = bench_median(vq, n);
		fb_s = bench_median(vf, n);
		roll_s = bench_median(vr, n);
		x.reps = n;
	}
	iapo_info_stats is = x.stats;
	bench_rec_begin("info");
	bench_rec_str("shape", s->name);
	bench_rec_int("threads", threads);
	bench_rec_int("G", G);
	bench_rec_int("prompt", PROMPT);
	bench_rec_int("completion", COMP);
	bench_rec_int("postfix", KPOST);
	bench_rec_int("chunk", iapo_info_chunk(x.info));
	bench_rec_int("rounds", x.reps);
	bench_rec_num("mbytes", (double)iapo_info_bytes(x.info) / 1048576.0);
	bench_rec_num("seconds", info_s);
	bench_rec_num("seconds_prefill", pre_s);
	bench_rec_num("seconds_pass", pass_s);
	bench_rec_int("rows_prefill", is.rows_prefill);
	bench_rec_int("rows_pass", is.rows_pass);
	bench_rec_num("positions_per_s", (double)is.positions / info_s);
	bench_rec_end();
	bench_rec_begin("fwd_bwd");
	bench_rec_str("shape", s->name);
	bench_rec_int("threads", threads);
	bench_rec_int("B", G);
	bench_rec_int("T", T);
	bench_rec_int("rounds", x.reps);
	bench_rec_num("seconds", fb_s);
	bench_rec_end();
	bench_rec_begin("rollout");
	bench_rec_str("shape", s->name);
	bench_rec_int("threads", threads);
	bench_rec_int("B", G);
	bench_rec_int("prompt", PROMPT);
	bench_rec_int("new_tokens", COMP);
	bench_rec_int("rounds", x.reps);
	bench_rec_num("seconds", roll_s);
	bench_rec_end();
	iapo_info_free(x.info);
	x.info = NULL;
	iapo_fwd_free(x.f);
	x.f = NULL;

	/* variants: a 1-token postfix; stride 4 against the exact advantages */
	x.adv_exact = iapo_malloc(sizeof(float) * G * COMP);
	if (!x.adv_exact) {
		st = iapo_fail(IAPO_ERR_NOMEM, "bench: advantages");
		goto fail;
	}
	IAPO_CHECK(st, token_adv(x.E, x.C, x.adv_exact));
	IAPO_CHECK(st, variant(&x, "postfix1", 1, 1, NULL, budget, reps, threads, s->name));
	IAPO_CHECK(st, variant(&x, "stride4", KPOST, 4, x.adv_exact, budget, reps, threads, s->name));

	naive_s = NAN;
	if (naive) {
		x.stats = (iapo_info_stats){0};
		IAPO_CHECK(st, time_it(run_naive, &x, 0, budget, 1, &naive_s, NULL, NULL));
		bench_rec_begin("info_naive");
		bench_rec_str("shape", s->name);
		bench_rec_int("threads", threads);
		bench_rec_int("measured_sequences", 1);
		bench_rec_num("seconds_one_sequence", naive_s);
		bench_rec_num("seconds_extrapolated", naive_s * G);
		bench_rec_end();
	}

	const double step = roll_s + fb_s;
	bench_rec_begin("info_summary");
	bench_rec_str("shape", s->name);
	bench_rec_int("threads", threads);
	bench_rec_num("info_seconds", info_s);
	bench_rec_num("grpo_step_seconds", step);
	bench_rec_num("info_over_step", info_s / step);
	bench_rec_num("info_pass_only_over_step", pass_s / step);
	bench_rec_num("info_over_fwd_bwd", info_s / fb_s);
	bench_rec_num("info_over_rollout", info_s / roll_s);
	bench_rec_num("prefill_share_of_info", pre_s / info_s);
	bench_rec_num("speedup_vs_naive", naive_s * G / info_s);
	bench_rec_num("loadavg_1m", bench_loadavg());
	bench_rec_end();
	bench_note("info: %-6s info %.3f s (prefill %.3f, pass %.3f) | naive ~%.2f s | fwd+bwd %.3f s | rollout %.3f s "
		   "| info = %.1f%% of rollout+update, %.0fx faster than naive\n",
		   s->name, info_s, pre_s, pass_s, naive_s * G, fb_s, roll_s, 100 * info_s / step, naive_s * G / info_s);
fail:
	iapo_info_free(x.info);
	iapo_fwd_free(x.f);
	iapo_kv_free(x.kv);
	iapo_gen_results_free(x.res, G);
	iapo_free(x.tokens);
	iapo_free(x.targets);
	iapo_free(x.logp);
	iapo_free(x.dlogp);
	iapo_free(x.E);
	iapo_free(x.C);
	iapo_free(x.adv_exact);
	iapo_free_aligned(x.grad);
	iapo_weights_free(&w);
	return st;
}

static int usage(void)
{
	fprintf(stderr, "usage: info [--shape tiny|small|qwen0.5b|all] [--threads N] [--quick] [--no-naive]\n");
	return 2;
}

int main(int argc, char **argv)
{
	int threads = omp_get_num_procs(), quick = 0, naive = 1;
	const char *shape = "all";
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
			if (!bench_parse_pos_int(argv[++i], &threads)) return usage();
		} else if (strcmp(argv[i], "--quick") == 0) {
			quick = 1;
		} else if (strcmp(argv[i], "--no-naive") == 0) {
			naive = 0;
		} else if (strcmp(argv[i], "--shape") == 0 && i + 1 < argc) {
			shape = argv[++i];
		} else {
			return usage();
		}
	}
	int found = strcmp(shape, "all") == 0;
	for (int s = 0; s < NSHAPES; s++) found |= strcmp(shape, SHAPES[s].name) == 0;
	if (!found) return usage();
	iapo_set_threads(threads);
	for (int s = 0; s < NSHAPES; s++) {
		if (strcmp(shape, SHAPES[s].name) && (strcmp(shape, "all") || s == 2)) continue;
		iapo_status st = bench_shape(&SHAPES[s], threads, quick, naive);
		if (st != IAPO_OK) {
			bench_note("info: %s: %s\n", SHAPES[s].name, iapo_errmsg());
			return 1;
		}
	}
	return 0;
}
