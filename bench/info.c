/*
 * info.c — cost of IAPO's information pass (rl/info.h) against what it is
 * added to, as JSON lines on stdout. One batch of a GRPO step: G = 8
 * sequences of a 64-token prompt + 192-token completion (T = 256), random
 * Qwen2 weights of bench/model.c's shapes (tiny, small; qwen0.5b on request),
 * a 4-token postfix (about what "</think><answer>" costs in Qwen's BPE), one
 * answer token. The completions are the rollout's own samples (EOS ignored).
 * Per shape:
 *
 *   rollout     iapo_generate of the batch: 8 prompts of 64 tokens, 192 new
 *               tokens each at temperature 1, with the per-token sampling
 *               entropies on (IAPO's C_t; their cost alone is measured too,
 *               rollout_entropy_seconds) into a cache with scratch slots
 *   info_cached the exact pass over the rollout's cache (what `iapo train
 *               --algo iapo` runs): one top-up row per sequence + postfix rows;
 *               also (cached_bf16_*) the bf16 pass over a bf16 rollout's
 *               cache, as `--info-bf16` trains (the rollout's bf16 copy of
 *               the weights reused)
 *   info        the exact pass with its own prefill (--info-recompute): total,
 *               its prefill and its postfix pass; rows through the model
 *   fwd_bwd     one training forward + backward of the same batch (B = 8,
 *               T = 256, log-probs of the completion tokens)
 *   info_naive  the brute-force estimator (iapo_info_naive: a full training
 *               forward per prefix), measured on ONE sequence and multiplied
 *               by G (the record says so): the full batch takes minutes
 *   info_variant the cached pass with a 1-token postfix, with --info-stride 4
 *               and in bf16 (weights and attention; and bf16 weights with
 *               fp32 attention, as before session 7): time, and how
 *               far they move the token advantages (defaults, A_i = 0,
 *               correct) from the exact ones — on RANDOM weights, whose
 *               entropies jump from token to token, so this overstates what a
 *               trained model shows (see --model below)
 *   info_summary info and info_cached as fractions of rollout + fwd_bwd (one
 *               GRPO step without reference log-probs) and of fwd_bwd; the
 *               speed-up over the naive pass
 *
 *   info_trainer the same batch at the trainer's lengths (64 + 960 tokens,
 *               T = 1024): the bf16 rollout, the bf16 pass over its cache
 *               (what `iapo train --algo iapo` runs by default) and fwd+bwd,
 *               nothing else. Why: the pass's rows attend to their whole
 *               prefix, so its cost per position grows with T faster than
 *               fwd+bwd's, and the 64 + 192 batch understates what training
 *               pays (session 14: 0.43x fwd+bwd there, 0.58x at 64 + 960).
 *               The trainer caps completions at 2048 tokens
 *               (--max-completion-tokens) after a prompt of up to 512; 960
 *               new tokens is a middle of that range that keeps the record
 *               under a minute at 2 threads (small: ~13 s a round), and K = 4
 *               is the Qwen3 tokenizer's "</think><answer>". Its rounds are
 *               taken as below, up to 3.
 *
 *   pass_bf16_pool_* (in info and info_trainer) what the bf16 pass's last
 *               round offered the pool's threads (pool.h, iapo_pool_stats):
 *               its calls and items, those with an item for every thread
 *               (full) and the share of the pass's wall inside them, calls
 *               run nested (on one thread), and pass_bf16_splits, its chunks
 *               run as two halves (2 threads only). Counts, not timings, so
 *               they read the same on any machine at the same --threads.
 *
 * rollout, info_cached, info and fwd_bwd (and the bf16 rollout and pass) warm
 * up once, then run in turn for up to 5 rounds within a time budget (1 with
 * --quick) and report medians of wall and of CPU seconds (cpu_*: at 1 thread
 * the time the work itself ran on a shared machine), so a load change hits
 * them alike; the variants take the
 * median of up to 3 repeats; the naive pass runs once, unwarmed (it takes
 * seconds to minutes, so a cold start is noise). Left out: the reference
 * model's forward (beta > 0), the optimiser step, several micro-batches.
 *
 * With --model DIR --data FILE (a trained model and its JSONL prompts; chat
 * template, empty system prompt, no one-shot turn), instead: G = 8 samples of
 * each of --prompts N prompts (up to --max-new tokens, EOS honoured), the
 * exact estimate (over the rollout's cache, checked against the own-prefill
 * pass), and how far the approximations move Ŝ (the normalised information
 * gain) and the token advantages on these REAL traces: --info-stride 2, 4, 8,
 * --info-at newline, bf16 (weights and attention, and weights only);
 * records info_real and info_approx.
 *
 * --pack: the estimators pack the weight matrices into GEMM panels once per
 * call (iapo_info_opts.pack_weights) rather than in every chunk's product.
 *
 * --length bench|trainer|both (default both): bench/info's own lengths, the
 * trainer's (info_trainer), or both, shape by shape.
 *
 * Usage: info [--shape tiny|small|qwen0.5b|all] [--length both|bench|trainer] [--threads N] [--quick]
 *        [--no-naive] [--pack]
 *        info --model DIR --data FILE [--prompts N] [--max-new N] [--threads N]
 * ("all" = tiny and small).
 */
#include "bench.h"
#include "core/mem.h"
#include "core/rng.h"
#include "core/status.h"
#include "kernels/kernels.h"
#include "kernels/pool.h"
#include "model/generate.h"
#include "model/kvcache.h"
#include "model/transformer.h"
#include "model/weights.h"
#include "rl/dataset.h"
#include "rl/iapo_adv.h"
#include "rl/iapo_hook.h"
#include "rl/info.h"
#include "rl/prompt.h"

enum { G = 8, KPOST = 4, MAX_REPS = 3, ROUNDS = 5 };

/* The batch's lengths: bench/info's own (64 + 192), or the trainer's (--length). */
enum { PROMPT = 64, COMP = 192, TRAIN_PROMPT = 64, TRAIN_COMP = 960 };
static int prompt_len = PROMPT, comp_len = COMP, seq_len = PROMPT + COMP;

typedef struct {
	const iapo_weights *w;
	int *tokens;                 /* (G, seq_len): prompt then completion */
	const int *prompts[G], *comps[G];
	int plen[G], clen[G], slot[G];
	const float *ent[G];         /* the rollout's sampling entropies */
	iapo_info_batch batch;
	iapo_info *info;
	iapo_info *info16;           /* the bf16 estimator (--info-bf16) */
	int bf16;                    /* the rollout decodes with bf16 weights (as --info-bf16 trains) */
	iapo_info_opts io;
	float *E, *C;                /* (G, comp_len+1) */
	iapo_info_stats stats;
	iapo_fwd *f;
	int lens[G], *targets;       /* (G, seq_len) */
	float *logp, *dlogp, *grad;
	iapo_kv *kv;                 /* the rollout's: G slots + scratch */
	int nscratch;
	iapo_gen_result res[G];
	float *adv_exact; /* (G, comp_len) */
	int reps;
} ctx;

typedef iapo_status (*fn)(ctx *x);

static iapo_status run_info(ctx *x)
{
	return iapo_info_compute(x->info, &x->batch, x->E, x->C, comp_len + 1, &x->stats);
}

static iapo_status run_cached(ctx *x)
{
	iapo_info_cache c = {.kv = x->kv, .slot = x->slot, .C = x->ent, .scratch0 = G, .nscratch = x->nscratch};
	return iapo_info_compute_cached(x->bf16 ? x->info16 : x->info, &c, &x->batch, x->E, x->C, comp_len + 1, &x->stats);
}

static iapo_status run_naive(ctx *x)
{
	iapo_info_batch one = x->batch;
	one.n = 1;
	return iapo_info_naive(x->w, &x->io, &one, x->E, x->C, comp_len + 1);
}

static iapo_status run_fwd_bwd(ctx *x)
{
	IAPO_TRY(iapo_fwd_forward(x->f, x->tokens, x->lens, x->targets, G, seq_len, x->logp, NULL, NULL));
	return iapo_fwd_backward(x->f, x->dlogp, NULL, x->grad);
}

/* Samples the batch's completions (the same every time: fixed seed) into the
 * cache, with the sampling entropies, and points the batch at them. */
static iapo_status run_rollout(ctx *x)
{
	int eos = -1;
	iapo_gen_opts o = {.max_new_tokens = comp_len, .sampler = {1.0f, 0, 1.0f}, .seed = 5, .eos_ids = &eos, .n_eos = 1,
			   .entropy_temperature = 1.0f, .weights = x->bf16 ? IAPO_GEN_WEIGHTS_BF16 : IAPO_GEN_WEIGHTS_FP32};
	iapo_gen_results_free(x->res, G);
	IAPO_TRY(iapo_generate(x->w, x->prompts, x->plen, G, &o, x->kv, x->res, NULL));
	for (int g = 0; g < G; g++) {
		memcpy(x->tokens + (size_t)g * seq_len + prompt_len, x->res[g].tokens, sizeof(int) * comp_len);
		x->ent[g] = x->res[g].entropy;
	}
	return IAPO_OK;
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

/* Token advantages (defaults, A = 0, a correct completion) of n sequences of
 * clen tokens from E and C (row stride ld) into adv (row stride lda); S_hat
 * (may be NULL) gets Ŝ. */
static iapo_status token_adv(int n, const int *clen, const float *E, const float *C, int ld, float *adv, float *S_hat,
			     int lda)
{
	iapo_tokadv_opts o = iapo_tokadv_defaults();
	for (int g = 0; g < n; g++)
		IAPO_TRY(iapo_tokadv_compute(&o, clen[g], E + (size_t)g * ld, C + (size_t)g * ld, 0.0f, 1.0f,
					     adv + (size_t)g * lda, NULL, S_hat ? S_hat + (size_t)g * lda : NULL, NULL));
	return IAPO_OK;
}

/* How far b is from a (exact) over the valid entries: max and mean |a − b|,
 * mean |a|, Pearson correlation. */
typedef struct {
	double max_d, mean_d, mean_a, corr;
} deviation;

static deviation deviate(const float *a, const float *b, int n, const int *len, int ld)
{
	double sa = 0, sb = 0, saa = 0, sbb = 0, sab = 0, sd = 0, sabs = 0, mx = 0, m = 0;
	for (int g = 0; g < n; g++)
		for (int t = 0; t < len[g]; t++) {
			double u = a[(size_t)g * ld + t], v = b[(size_t)g * ld + t], d = fabs(u - v);
			sa += u, sb += v, saa += u * u, sbb += v * v, sab += u * v, sd += d, sabs += fabs(u), m++;
			mx = d > mx ? d : mx;
		}
	deviation r = {mx, m > 0 ? sd / m : 0, m > 0 ? sabs / m : 0, NAN};
	if (m > 1) {
		double cov = sab - sa * sb / m, va = saa - sa * sa / m, vb = sbb - sb * sb / m;
		r.corr = va > 0 && vb > 0 ? cov / sqrt(va * vb) : NAN;
	}
	return r;
}

/* The cached pass with other options: time, and (adv_exact) the advantages' deviation from exact ones.
 * bf16: 1 bf16 weights and attention, 2 bf16 weights with fp32 attention. */
static iapo_status variant(ctx *x, const char *name, int K, int stride, int bf16, const float *adv_exact,
			   double budget, int reps, int threads, const char *shape, double step_s)
{
	iapo_info_opts io = x->io;
	io.n_postfix = K;
	io.stride = stride;
	io.bf16 = bf16 != 0;
	io.attn_fp32 = bf16 == 2;
	IAPO_TRY(iapo_info_new(x->w, G, seq_len, &io, &x->info));
	double secs, pre, pass;
	iapo_status st = time_it(run_cached, x, 1, budget, reps, &secs, &pre, &pass);
	iapo_info_stats is = x->stats;
	iapo_info_free(x->info);
	x->info = NULL;
	IAPO_TRY(st);
	deviation d = {0, 0, 0, NAN};
	if (adv_exact) {
		float *adv = iapo_malloc(sizeof(float) * G * comp_len);
		if (!adv) return iapo_fail(IAPO_ERR_NOMEM, "bench: advantages");
		st = token_adv(G, x->clen, x->E, x->C, comp_len + 1, adv, NULL, comp_len);
		if (st == IAPO_OK) d = deviate(adv_exact, adv, G, x->clen, comp_len);
		iapo_free(adv);
		IAPO_TRY(st);
	}
	bench_rec_begin("info_variant");
	bench_rec_str("shape", shape);
	bench_rec_int("threads", threads);
	bench_rec_str("variant", name);
	bench_rec_int("postfix", K);
	bench_rec_int("stride", stride);
	bench_rec_bool("bf16", bf16 != 0);
	bench_rec_bool("attn_fp32", bf16 == 2);
	bench_rec_num("seconds", secs);
	bench_rec_num("seconds_over_step", secs / step_s);
	bench_rec_int("positions", is.positions);
	bench_rec_int("rows_pass", is.rows_pass);
	if (adv_exact) {
		bench_rec_num("adv_max_abs_diff", d.max_d);
		bench_rec_num("adv_mean_abs_diff", d.mean_d);
		bench_rec_num("adv_mean_abs_exact", d.mean_a);
		bench_rec_num("adv_corr", d.corr);
		bench_rec_bool("random_weights", 1);
	}
	bench_rec_end();
	bench_note("info: %-6s %-9s %.3f s (%.1f%% of a step)%s", shape, name, secs, 100 * secs / step_s,
		   adv_exact ? "" : "\n");
	if (adv_exact)
		bench_note(", token advantages moved by %.3g on average (max %.3g; exact ones average %.3g; corr %.4f)\n",
			   d.mean_d, d.max_d, d.mean_a, d.corr);
	return IAPO_OK;
}

/* The sampling entropies' own cost inside the rollout: G rows of V logits,
 * COMP times. */
static double entropy_cost(int V)
{
	float *lg = iapo_alloc_aligned(sizeof(float) * G * (size_t)V), ent[G];
	if (!lg) return NAN;
	for (size_t i = 0; i < (size_t)G * V; i++) lg[i] = (float)((i * 2654435761u) % 1000) * 0.01f;
	double t0 = bench_now();
	for (int s = 0; s < comp_len; s++) iapo_logprob_entropy_forward(NULL, ent, lg, NULL, G, V, 1.0f);
	double t = bench_now() - t0;
	iapo_free_aligned(lg);
	return t;
}

static int pack_weights; /* --pack: every estimator packs the weight matrices once per call */

/* trainer: the trainer's lengths (prompt_len, comp_len set so): the bf16
 * rollout, the bf16 pass over its cache and fwd+bwd only, as one
 * "info_trainer" record. */
/* Opens record `what` with the batch it measured: shape, threads, G, the
 * lengths, the postfix, the estimator's chunk and the rounds taken. */
static void batch_rec(const char *what, const char *shape, int threads, const iapo_info *info, int reps)
{
	bench_rec_begin(what);
	bench_rec_str("shape", shape);
	bench_rec_int("threads", threads);
	bench_rec_int("G", G);
	bench_rec_int("prompt", prompt_len);
	bench_rec_int("completion", comp_len);
	bench_rec_int("postfix", KPOST);
	bench_rec_int("chunk", iapo_info_chunk(info));
	bench_rec_int("rounds", reps);
}

/* What the bf16 pass offered the pool's threads, in its last round: its
 * pool calls (iapo_pool_stats), the share of its wall inside them and
 * inside those that had an item for every thread, the calls that ran
 * nested (on one thread), and its chunks run as two halves (on 2 threads
 * only). A plan's property: it reads the same on any machine at the same
 * --threads, so a 2-core host shows what a 16-core one would leave idle. */
typedef struct {
	iapo_pool_stats d;
	double wall;
	long splits;
} pass_pool;

static void pass_pool_rec(const pass_pool *p)
{
	bench_rec_int("pass_bf16_pool_calls", p->d.calls);
	bench_rec_int("pass_bf16_pool_items", p->d.items);
	bench_rec_int("pass_bf16_pool_full_calls", p->d.full_calls);
	bench_rec_int("pass_bf16_pool_full_items", p->d.full_items);
	bench_rec_int("pass_bf16_pool_nested_calls", p->d.nested_calls);
	bench_rec_int("pass_bf16_pool_nested_items", p->d.nested_items);
	bench_rec_num("pass_bf16_pool_share", p->wall > 0 ? p->d.seconds / p->wall : NAN);
	bench_rec_num("pass_bf16_pool_full_share", p->wall > 0 ? p->d.full_seconds / p->wall : NAN);
	bench_rec_int("pass_bf16_splits", p->splits);
}

/* How the bf16 pass's attention multiplies on this machine (kvcache.h):
 * vdpbf16ps, fp32 FMAs on the same bf16 values where vdpbf16ps is the
 * slower (the products' verdict), and AMX's tiles for most of those where
 * usable. The pass's speed and its ratio to fwd+bwd depend on it. */
static void pass_attn_rec(const iapo_config *c)
{
	const int fma = c->HD % 64 == 0 && c->HD <= 128 && !iapo_sgemm_bf16_dot(NULL, NULL);
	bench_rec_str("pass_bf16_attention", !fma ? "vdpbf16ps" : iapo_kv_amx_usable() ? "amx" : "fp32_fma");
}

static void pass_pool_note(const char *shape, int threads, const pass_pool *p)
{
	bench_note("info: %-6s bf16 pass on %d threads: %ld pool calls (%ld items), %ld with an item for every thread "
		   "(%.0f%% of the pass's wall; all calls %.0f%%), %ld nested (%ld items), %ld chunks in halves\n",
		   shape, threads, p->d.calls, p->d.items, p->d.full_calls, 100 * p->d.full_seconds / p->wall,
		   100 * p->d.seconds / p->wall, p->d.nested_calls, p->d.nested_items, p->splits);
}

static iapo_status bench_shape(const bench_model_shape *s, int threads, int quick, int naive, int trainer)
{
	iapo_config c;
	bench_qwen2_config(s, &c);
	IAPO_TRY(iapo_config_validate(&c, s->name));
	iapo_weights w;
	memset(&w, 0, sizeof w);
	IAPO_TRY(iapo_weights_init_random(&w, &c, 1234, 0.02f));
	ctx x;
	memset(&x, 0, sizeof x);
	x.w = &w;
	iapo_status st = IAPO_OK;
	/* the trainer's lengths: 3 rounds (small's take ~13 s each at 2 threads) */
	const double budget = quick ? 2.0 : trainer ? 30.0 : 20.0;
	const int reps = quick ? 1 : MAX_REPS, rounds = quick ? 1 : trainer ? 3 : ROUNDS;
	IAPO_CHECK(st, iapo_alloc_or_fail((void **)&x.tokens, sizeof(int) * G * seq_len, "tokens"));
	IAPO_CHECK(st, iapo_alloc_or_fail((void **)&x.targets, sizeof(int) * G * seq_len, "targets"));
	IAPO_CHECK(st, iapo_alloc_or_fail((void **)&x.logp, sizeof(float) * G * seq_len, "logp"));
	IAPO_CHECK(st, iapo_alloc_or_fail((void **)&x.dlogp, sizeof(float) * G * seq_len, "dlogp"));
	IAPO_CHECK(st, iapo_alloc_or_fail((void **)&x.E, sizeof(float) * G * (comp_len + 1), "E"));
	IAPO_CHECK(st, iapo_alloc_or_fail((void **)&x.C, sizeof(float) * G * (comp_len + 1), "C"));
	x.grad = iapo_alloc_aligned(sizeof(float) * iapo_param_count(&c));
	if (!x.grad) {
		st = iapo_fail(IAPO_ERR_NOMEM, "bench: gradient block");
		goto fail;
	}
	iapo_rng r;
	iapo_rng_seed(&r, 3, (uint64_t)c.V, 0, 0);
	for (int i = 0; i < G * seq_len; i++) x.tokens[i] = (int)iapo_rng_below(&r, (uint64_t)(c.V - 1));
	for (int g = 0; g < G; g++) {
		x.prompts[g] = x.tokens + (size_t)g * seq_len;
		x.comps[g] = x.tokens + (size_t)g * seq_len + prompt_len;
		x.plen[g] = prompt_len;
		x.clen[g] = comp_len;
		x.slot[g] = g;
		x.lens[g] = seq_len;
		for (int t = 0; t < seq_len; t++)
			x.dlogp[g * seq_len + t] = t >= prompt_len - 1 && t + 1 < seq_len ? -1.0f / (G * comp_len) : 0.0f;
	}
	x.batch = (iapo_info_batch){.n = G, .prompts = x.prompts, .plen = x.plen, .comps = x.comps, .clen = x.clen};
	int postfix[KPOST] = {10, 20, 30, 40};
	x.io = iapo_info_defaults();
	x.io.postfix = postfix;
	x.io.n_postfix = KPOST;
	x.io.pack_weights = pack_weights;

	double info_s, pre_s, pass_s, cached_s, cpre_s, cpass_s, naive_s, fb_s, roll_s, ent_s, cached16_s, roll16_s;
	double cpu_info, cpu_cached, cpu_fb, cpu_roll, cpu_cached16, cpu_roll16;
	pass_pool pp;
	x.nscratch = iapo_info_scratch_slots(seq_len);
	if (!trainer) IAPO_CHECK(st, iapo_info_new(&w, G, seq_len, &x.io, &x.info));
	{
		iapo_info_opts io16 = x.io;
		io16.bf16 = 1;
		IAPO_CHECK(st, iapo_info_new(&w, G, seq_len, &io16, &x.info16));
	}
	IAPO_CHECK(st, iapo_fwd_new(&w, G, seq_len, 1, &x.f));
	IAPO_CHECK(st, iapo_kv_new(&w, G + x.nscratch, seq_len, &x.kv));
	x.bf16 = trainer; /* the trainer's lengths: bf16 only, as `iapo train` samples and estimates by default */
	IAPO_CHECK(st, run_rollout(&x)); /* the batch's completions: the rollout's samples */
	for (int g = 0; g < G; g++)
		for (int t = 0; t < seq_len; t++)
			x.targets[g * seq_len + t] = t >= prompt_len - 1 && t + 1 < seq_len ? x.tokens[g * seq_len + t + 1] : -1;
	IAPO_CHECK(st, run_cached(&x));
	if (!trainer) IAPO_CHECK(st, run_info(&x));
	IAPO_CHECK(st, run_fwd_bwd(&x));
	if (!trainer) {
		x.bf16 = 1; /* warm the bf16 pair too */
		IAPO_CHECK(st, run_rollout(&x));
		IAPO_CHECK(st, run_cached(&x));
		x.bf16 = 0;
		IAPO_CHECK(st, run_rollout(&x));
	}
	{
		/* in turn, round after round, so that a load change on a shared
		 * machine hits them alike; medians over the rounds, of wall and of
		 * CPU seconds (1 thread: the time the work ran, whatever else the
		 * machine ran meanwhile). The cached pass follows a rollout, as in
		 * training; so does the bf16 pass, after a bf16 rollout into the
		 * same cache (--info-bf16 as `iapo train` runs it; its completions
		 * differ, their lengths do not: EOS is ignored). The fp32 rollout
		 * comes last, so the cache ends with its K/V. */
		enum { ROLL, CACHED, INFO, FB, ROLL16, CACHED16, NTIMED };
		static const int order[NTIMED] = {ROLL16, CACHED16, ROLL, CACHED, INFO, FB};
		static const int order_trainer[] = {ROLL16, CACHED16, FB};
		const int *ord = trainer ? order_trainer : order;
		const int nord = trainer ? 3 : NTIMED;
		double v[NTIMED][ROUNDS], u[NTIMED][ROUNDS], vp[ROUNDS], vq[ROUNDS], vcp[ROUNDS], vcq[ROUNDS];
		double spent = 0;
		int n = 0;
		pp = (pass_pool){{0}, 0, 0};
		memset(v, 0, sizeof v);
		memset(u, 0, sizeof u);
		memset(vp, 0, sizeof vp);
		memset(vq, 0, sizeof vq);
		memset(vcp, 0, sizeof vcp);
		memset(vcq, 0, sizeof vcq);
		while (n < rounds && (n == 0 || spent <= budget)) {
			for (int k = 0; k < nord; k++) {
				const int what = ord[k];
				const fn f = what == ROLL || what == ROLL16 ? run_rollout
					     : what == CACHED || what == CACHED16 ? run_cached
					     : what == INFO ? run_info
							    : run_fwd_bwd;
				x.bf16 = what == ROLL16 || what == CACHED16;
				iapo_pool_stats p0;
				const long s0 = iapo_kv_splits(x.kv);
				iapo_pool_stats_get(&p0);
				const double t0 = bench_now(), c0 = bench_cpu_now();
				IAPO_CHECK(st, f(&x));
				v[what][n] = bench_now() - t0;
				u[what][n] = bench_cpu_now() - c0;
				if (what == CACHED16) {
					pp.d = iapo_pool_stats_since(&p0);
					pp.wall = v[what][n];
					pp.splits = iapo_kv_splits(x.kv) - s0;
				}
				spent += v[what][n];
				if (what == CACHED) {
					vcp[n] = x.stats.seconds_prefill;
					vcq[n] = x.stats.seconds_pass;
				} else if (what == INFO) {
					vp[n] = x.stats.seconds_prefill;
					vq[n] = x.stats.seconds_pass;
				}
			}
			x.bf16 = 0;
			n++;
		}
		info_s = bench_median(v[INFO], n);
		pre_s = bench_median(vp, n);
		pass_s = bench_median(vq, n);
		cached_s = bench_median(v[CACHED], n);
		cpre_s = bench_median(vcp, n);
		cpass_s = bench_median(vcq, n);
		fb_s = bench_median(v[FB], n);
		roll_s = bench_median(v[ROLL], n);
		cached16_s = bench_median(v[CACHED16], n);
		roll16_s = bench_median(v[ROLL16], n);
		cpu_info = bench_median(u[INFO], n);
		cpu_cached = bench_median(u[CACHED], n);
		cpu_fb = bench_median(u[FB], n);
		cpu_roll = bench_median(u[ROLL], n);
		cpu_cached16 = bench_median(u[CACHED16], n);
		cpu_roll16 = bench_median(u[ROLL16], n);
		x.reps = n;
	}
	if (trainer) {
		const double cpu_ratio = cpu_cached16 / cpu_fb;
		batch_rec("info_trainer", s->name, threads, x.info16, x.reps);
		bench_rec_num("cached_bf16_seconds", cached16_s);
		bench_rec_num("cached_bf16_cpu_seconds", cpu_cached16);
		bench_rec_num("fwd_bwd_seconds", fb_s);
		bench_rec_num("fwd_bwd_cpu_seconds", cpu_fb);
		bench_rec_num("rollout_bf16_seconds", roll16_s);
		bench_rec_num("rollout_bf16_cpu_seconds", cpu_roll16);
		bench_rec_num("cpu_info_cached_bf16_over_fwd_bwd", cpu_ratio);
		bench_rec_num("info_cached_bf16_over_fwd_bwd", cached16_s / fb_s);
		bench_rec_num("cpu_info_cached_bf16_over_step", cpu_cached16 / (cpu_roll16 + cpu_fb));
		bench_rec_num("loadavg_1m", bench_loadavg());
		pass_pool_rec(&pp);
		pass_attn_rec(&c);
		bench_rec_end();
		bench_note("info: %-6s %d + %d tokens: CPU s: bf16 pass %.3f = %.2fx fwd+bwd (%.3f); bf16 rollout %.3f; "
			   "wall: pass %.3f, fwd+bwd %.3f, rollout %.3f\n",
			   s->name, prompt_len, comp_len, cpu_cached16, cpu_ratio, cpu_fb, cpu_roll16, cached16_s, fb_s,
			   roll16_s);
		pass_pool_note(s->name, threads, &pp);
		goto fail;
	}
	ent_s = entropy_cost(c.V);
	iapo_info_stats is = x.stats;
	batch_rec("info", s->name, threads, x.info, x.reps);
	bench_rec_num("mbytes", (double)iapo_info_bytes(x.info) / 1048576.0);
	if (pack_weights) { /* the packs the cached pass keeps in the rollout's cache (fp32 here) */
		size_t pb = 0;
		IAPO_CHECK(st, iapo_kv_pack_weights(x.kv, 1, &pb));
		iapo_kv_pack_weights(x.kv, 0, NULL);
		bench_rec_num("pack_mbytes", (double)pb / 1048576.0);
	}
	bench_rec_num("seconds", info_s);
	bench_rec_num("seconds_prefill", pre_s);
	bench_rec_num("seconds_pass", pass_s);
	bench_rec_num("cached_seconds", cached_s);
	bench_rec_num("cached_seconds_top_up", cpre_s);
	bench_rec_num("cached_seconds_pass", cpass_s);
	bench_rec_num("cpu_seconds", cpu_info);
	bench_rec_num("cached_cpu_seconds", cpu_cached);
	bench_rec_num("cached_bf16_seconds", cached16_s);
	bench_rec_num("cached_bf16_cpu_seconds", cpu_cached16);
	bench_rec_int("rows_prefill", is.rows_prefill);
	bench_rec_int("rows_pass", is.rows_pass);
	bench_rec_num("positions_per_s", (double)is.positions / info_s);
	bench_rec_num("cached_positions_per_s", (double)is.positions / cached_s);
	pass_pool_rec(&pp);
	pass_attn_rec(&c);
	bench_rec_end();
	pass_pool_note(s->name, threads, &pp);
	bench_rec_begin("fwd_bwd");
	bench_rec_str("shape", s->name);
	bench_rec_int("threads", threads);
	bench_rec_int("B", G);
	bench_rec_int("T", seq_len);
	bench_rec_int("rounds", x.reps);
	bench_rec_num("seconds", fb_s);
	bench_rec_num("cpu_seconds", cpu_fb);
	bench_rec_end();
	bench_rec_begin("rollout");
	bench_rec_str("shape", s->name);
	bench_rec_int("threads", threads);
	bench_rec_int("B", G);
	bench_rec_int("prompt", prompt_len);
	bench_rec_int("new_tokens", comp_len);
	bench_rec_int("rounds", x.reps);
	bench_rec_num("seconds", roll_s);
	bench_rec_num("cpu_seconds", cpu_roll);
	bench_rec_num("bf16_seconds", roll16_s);
	bench_rec_num("bf16_cpu_seconds", cpu_roll16);
	bench_rec_num("entropy_seconds", ent_s);
	bench_rec_end();
	iapo_fwd_free(x.f);
	x.f = NULL;
	const double step = roll_s + fb_s;

	/* the exact advantages (from the last cached pass), then the variants */
	x.adv_exact = iapo_malloc(sizeof(float) * G * comp_len);
	if (!x.adv_exact) {
		st = iapo_fail(IAPO_ERR_NOMEM, "bench: advantages");
		goto fail;
	}
	IAPO_CHECK(st, run_cached(&x));
	IAPO_CHECK(st, token_adv(G, x.clen, x.E, x.C, comp_len + 1, x.adv_exact, NULL, comp_len));
	iapo_info_free(x.info);
	x.info = NULL;
	IAPO_CHECK(st, variant(&x, "postfix1", 1, 1, 0, NULL, budget, reps, threads, s->name, step));
	IAPO_CHECK(st, variant(&x, "stride4", KPOST, 4, 0, x.adv_exact, budget, reps, threads, s->name, step));
	IAPO_CHECK(st, variant(&x, "bf16", KPOST, 1, 1, x.adv_exact, budget, reps, threads, s->name, step));
	IAPO_CHECK(st, variant(&x, "bf16_attn_fp32", KPOST, 1, 2, x.adv_exact, budget, reps, threads, s->name, step));

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

	bench_rec_begin("info_summary");
	bench_rec_str("shape", s->name);
	bench_rec_int("threads", threads);
	bench_rec_num("info_seconds", info_s);
	bench_rec_num("info_cached_seconds", cached_s);
	bench_rec_num("grpo_step_seconds", step);
	bench_rec_num("info_over_step", info_s / step);
	bench_rec_num("info_cached_over_step", cached_s / step);
	bench_rec_num("info_pass_only_over_step", pass_s / step);
	bench_rec_num("info_over_fwd_bwd", info_s / fb_s);
	bench_rec_num("info_cached_over_fwd_bwd", cached_s / fb_s);
	bench_rec_num("cpu_info_cached_over_step", cpu_cached / (cpu_roll + cpu_fb));
	bench_rec_num("cpu_info_cached_over_fwd_bwd", cpu_cached / cpu_fb);
	bench_rec_num("cpu_info_cached_bf16_over_step", cpu_cached16 / (cpu_roll + cpu_fb));
	bench_rec_num("cpu_info_cached_bf16_over_fwd_bwd", cpu_cached16 / cpu_fb);
	bench_rec_num("cpu_info_over_fwd_bwd", cpu_info / cpu_fb);
	bench_rec_num("info_over_rollout", info_s / roll_s);
	bench_rec_num("rollout_entropy_over_step", ent_s / step);
	bench_rec_num("prefill_share_of_info", pre_s / info_s);
	bench_rec_num("speedup_vs_naive", naive_s * G / info_s);
	bench_rec_num("cached_speedup_vs_naive", naive_s * G / cached_s);
	bench_rec_num("loadavg_1m", bench_loadavg());
	bench_rec_end();
	bench_note("info: %-6s cached %.3f s (top-up %.3f, pass %.3f) | own prefill %.3f s (prefill %.3f) | naive ~%.2f s "
		   "| fwd+bwd %.3f s | rollout %.3f s (entropies %.4f s)\n"
		   "info: %-6s cached = %.1f%% of rollout+update, %.2fx fwd+bwd; own prefill = %.1f%%, %.2fx; "
		   "%.0fx faster than naive\n",
		   s->name, cached_s, cpre_s, cpass_s, info_s, pre_s, naive_s * G, fb_s, roll_s, ent_s, s->name,
		   100 * cached_s / step, cached_s / fb_s, 100 * info_s / step, info_s / fb_s, naive_s * G / cached_s);
	bench_note("info: %-6s CPU s: cached %.3f = %.1f%% of rollout+update, %.2fx fwd+bwd (%.3f); bf16 rollout %.3f + "
		   "bf16 pass %.3f = %.1f%% of an fp32 step, %.2fx fwd+bwd\n",
		   s->name, cpu_cached, 100 * cpu_cached / (cpu_roll + cpu_fb), cpu_cached / cpu_fb, cpu_fb, cpu_roll16,
		   cpu_cached16, 100 * cpu_cached16 / (cpu_roll + cpu_fb), cpu_cached16 / cpu_fb);
fail:
	iapo_info_free(x.info);
	iapo_info_free(x.info16);
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

/* ---- real traces of a trained model (--model, --data) ---------------------- */

typedef struct {
	const char *name;
	int stride, newline, bf16; /* bf16: 1 weights and attention, 2 weights only */
} approx;

static const approx APPROX[] = {
	{"stride2", 2, 0, 0}, {"stride4", 4, 0, 0}, {"stride8", 8, 0, 0}, {"newline", 1, 1, 0}, {"bf16", 1, 0, 1},
	{"bf16_attn_fp32", 1, 0, 2},
};

typedef struct {
	iapo_weights w;
	iapo_tokenizer *tok;
	iapo_dataset ds;
	iapo_kv *kv;
	int n, ld, Tmax, nscratch;
	int **prompt;  /* (n) */
	int *plen, *clen, *slot, *nl, n_nl;
	const int **comps;
	const float **ent;
	iapo_gen_result *res;
	float *E, *C, *S, *A, *E1, *C1, *S1, *A1; /* (n, ld) */
} real_ctx;

static void real_free(real_ctx *x)
{
	iapo_kv_free(x->kv);
	if (x->res) iapo_gen_results_free(x->res, x->n);
	for (int i = 0; x->prompt && i < x->n; i++) iapo_free(x->prompt[i]);
	void *a[] = {x->prompt, x->plen, x->clen, x->slot, x->nl, (void *)x->comps, (void *)x->ent, x->res,
		     x->E, x->C, x->S, x->A, x->E1, x->C1, x->S1, x->A1};
	for (size_t i = 0; i < sizeof a / sizeof *a; i++) iapo_free(a[i]);
	iapo_dataset_free(&x->ds);
	iapo_tokenizer_free(x->tok);
	iapo_weights_free(&x->w);
}

/* One estimate over the rollout's cache (cached) or with its own prefill,
 * into E, C; Ŝ and the advantages into S, A. */
static iapo_status real_estimate(real_ctx *x, const iapo_info_opts *io, int cached, float *E, float *C, float *S,
				 float *A, double *secs, double *cpu, iapo_info_stats *stats)
{
	iapo_info *e;
	IAPO_TRY(iapo_info_new(&x->w, x->n, x->Tmax, io, &e));
	iapo_info_batch b = {.n = x->n, .prompts = (const int *const *)x->prompt, .plen = x->plen, .comps = x->comps,
			     .clen = x->clen};
	iapo_info_cache c = {.kv = x->kv, .slot = x->slot, .C = x->ent, .scratch0 = x->n, .nscratch = x->nscratch};
	double t0 = bench_now(), c0 = bench_cpu_now();
	iapo_status st = cached ? iapo_info_compute_cached(e, &c, &b, E, C, x->ld, stats)
				: iapo_info_compute(e, &b, E, C, x->ld, stats);
	*secs = bench_now() - t0;
	*cpu = bench_cpu_now() - c0;
	iapo_info_free(e);
	IAPO_TRY(st);
	return token_adv(x->n, x->clen, E, C, x->ld, A, S, x->ld);
}

static iapo_status bench_real(const char *model, const char *data, int nprompts, int max_new, int threads)
{
	real_ctx x;
	memset(&x, 0, sizeof x);
	iapo_status st = IAPO_OK;
	int *post = NULL, *ids = NULL;
	size_t K = 0, kcap = 0, nid = 0, idcap = 0;
	IAPO_CHECK(st, iapo_weights_load(model, &x.w));
	IAPO_CHECK(st, iapo_tokenizer_load(model, &x.tok));
	iapo_dataset_opts dopts = {0};
	IAPO_CHECK(st, iapo_dataset_load(data, &dopts, &x.ds));
	if ((size_t)nprompts > x.ds.n) nprompts = (int)x.ds.n;
	x.n = nprompts * G;
	x.ld = max_new + 1;
	const size_t nl = (size_t)x.n * x.ld;
	IAPO_CHECK(st, iapo_alloc_or_fail((void **)&x.prompt, sizeof(int *) * (size_t)x.n, "prompts"));
	memset(x.prompt, 0, sizeof(int *) * (size_t)x.n);
	IAPO_CHECK(st, iapo_alloc_or_fail((void **)&x.plen, sizeof(int) * (size_t)x.n, "lengths"));
	IAPO_CHECK(st, iapo_alloc_or_fail((void **)&x.clen, sizeof(int) * (size_t)x.n, "lengths"));
	IAPO_CHECK(st, iapo_alloc_or_fail((void **)&x.slot, sizeof(int) * (size_t)x.n, "slots"));
	IAPO_CHECK(st, iapo_alloc_or_fail((void **)&x.comps, sizeof(int *) * (size_t)x.n, "completions"));
	IAPO_CHECK(st, iapo_alloc_or_fail((void **)&x.ent, sizeof(float *) * (size_t)x.n, "entropies"));
	x.res = iapo_calloc((size_t)x.n, sizeof *x.res);
	if (!x.res) {
		st = iapo_fail(IAPO_ERR_NOMEM, "bench: results");
		goto fail;
	}
	float **bufs[] = {&x.E, &x.C, &x.S, &x.A, &x.E1, &x.C1, &x.S1, &x.A1};
	for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) {
		IAPO_CHECK(st, iapo_alloc_or_fail((void **)bufs[i], sizeof(float) * nl, "estimates"));
		memset(*bufs[i], 0, sizeof(float) * nl);
	}
	int maxp = 0;
	for (int p = 0; p < nprompts; p++) {
		IAPO_CHECK(st, iapo_prompt_tokens(x.tok, x.ds.format, "", x.ds.ex[p].prompt, 0, &ids, &nid, &idcap));
		for (int g = 0; g < G; g++) {
			const int i = p * G + g;
			IAPO_CHECK(st, iapo_alloc_or_fail((void **)&x.prompt[i], sizeof(int) * nid, "prompt"));
			memcpy(x.prompt[i], ids, sizeof(int) * nid);
			x.plen[i] = (int)nid;
			x.slot[i] = i;
		}
		if ((int)nid > maxp) maxp = (int)nid;
	}
	x.Tmax = maxp + max_new;
	x.nscratch = iapo_info_scratch_slots(x.Tmax);
	IAPO_CHECK(st, iapo_kv_new(&x.w, x.n + x.nscratch, x.Tmax, &x.kv));
	iapo_gen_opts go;
	memset(&go, 0, sizeof go);
	go.max_new_tokens = max_new;
	go.sampler.temperature = 1.0f;
	go.sampler.top_p = 1.0f;
	go.seed = 11;
	go.entropy_temperature = 1.0f;
	go.tok = x.tok;
	double t0 = bench_now(), c0 = bench_cpu_now();
	IAPO_CHECK(st, iapo_generate(&x.w, (const int *const *)x.prompt, x.plen, x.n, &go, x.kv, x.res, NULL));
	const double roll_s = bench_now() - t0, roll_cpu = bench_cpu_now() - c0;
	long tokens = 0;
	for (int i = 0; i < x.n; i++) {
		x.comps[i] = x.res[i].tokens;
		x.clen[i] = x.res[i].n_tokens;
		x.ent[i] = x.res[i].entropy;
		tokens += x.clen[i];
	}
	IAPO_CHECK(st, iapo_tokenizer_encode(x.tok, IAPO_INFO_POSTFIX, strlen(IAPO_INFO_POSTFIX), &post, &K, &kcap));
	IAPO_CHECK(st, iapo_newline_tokens(x.tok, &x.nl, &x.n_nl));
	iapo_info_opts io = iapo_info_defaults();
	io.postfix = post;
	io.n_postfix = (int)K;
	double exact_s, own_s, s, exact_cpu, own_cpu, cpu;
	iapo_info_stats ist;
	IAPO_CHECK(st, real_estimate(&x, &io, 0, x.E1, x.C1, x.S1, x.A1, &own_s, &own_cpu, &ist));
	IAPO_CHECK(st, real_estimate(&x, &io, 1, x.E, x.C, x.S, x.A, &exact_s, &exact_cpu, &ist));
	deviation dE = deviate(x.E1, x.E, x.n, x.clen, x.ld), dA = deviate(x.A1, x.A, x.n, x.clen, x.ld);
	bench_rec_begin("info_real");
	bench_rec_str("model", model);
	bench_rec_int("threads", threads);
	bench_rec_int("sequences", x.n);
	bench_rec_int("completion_tokens", tokens);
	bench_rec_int("postfix", (int)K);
	bench_rec_num("rollout_seconds", roll_s);
	bench_rec_num("cached_seconds", exact_s);
	bench_rec_num("rollout_cpu_seconds", roll_cpu);
	bench_rec_num("cached_cpu_seconds", exact_cpu);
	bench_rec_num("own_prefill_cpu_seconds", own_cpu);
	bench_rec_int("positions_computed", ist.positions);
	bench_rec_int("positions_shared", ist.shared);
	bench_rec_num("own_prefill_seconds", own_s);
	bench_rec_num("cached_vs_own_E_max_abs_diff", dE.max_d);
	bench_rec_num("cached_vs_own_adv_max_abs_diff", dA.max_d);
	bench_rec_num("loadavg_1m", bench_loadavg());
	bench_rec_end();
	bench_note("info real: %d sequences, %ld completion tokens (mean %.1f), postfix %zu tokens; rollout %.2f s, "
		   "exact pass %.2f s over its cache (%.2f s with its own prefill; E differs by at most %.2g, "
		   "advantages by %.2g); %ld positions computed, %ld shared with an earlier sample of the prompt\n",
		   x.n, tokens, (double)tokens / x.n, K, roll_s, exact_s, own_s, dE.max_d, dA.max_d, ist.positions,
		   ist.shared);
	for (size_t a = 0; a < sizeof APPROX / sizeof *APPROX; a++) {
		iapo_info_opts ao = io;
		ao.stride = APPROX[a].stride;
		ao.bf16 = APPROX[a].bf16 != 0;
		ao.attn_fp32 = APPROX[a].bf16 == 2;
		if (APPROX[a].newline) {
			ao.at_tokens = x.nl;
			ao.n_at = x.n_nl;
			if (x.n_nl == 0) ao.stride = 1 << 30;
		}
		IAPO_CHECK(st, real_estimate(&x, &ao, 1, x.E1, x.C1, x.S1, x.A1, &s, &cpu, &ist));
		deviation dS = deviate(x.S, x.S1, x.n, x.clen, x.ld), dAd = deviate(x.A, x.A1, x.n, x.clen, x.ld);
		bench_rec_begin("info_approx");
		bench_rec_str("variant", APPROX[a].name);
		bench_rec_int("threads", threads);
		bench_rec_num("seconds", s);
		bench_rec_num("seconds_over_exact", s / exact_s);
		bench_rec_num("cpu_seconds", cpu);
		bench_rec_num("S_hat_corr", dS.corr);
		bench_rec_num("S_hat_max_abs_diff", dS.max_d);
		bench_rec_num("S_hat_mean_abs_diff", dS.mean_d);
		bench_rec_num("S_hat_mean_abs", dS.mean_a);
		bench_rec_num("adv_corr", dAd.corr);
		bench_rec_num("adv_max_abs_diff", dAd.max_d);
		bench_rec_num("adv_mean_abs_diff", dAd.mean_d);
		bench_rec_num("adv_mean_abs", dAd.mean_a);
		bench_rec_end();
		bench_note("info real: %-8s %.2f s (%.2fx exact) | S_hat corr %.4f, max |diff| %.3g, mean %.3g (mean |S_hat| "
			   "%.3g) | advantages corr %.4f, max |diff| %.3g, mean %.3g\n",
			   APPROX[a].name, s, s / exact_s, dS.corr, dS.max_d, dS.mean_d, dS.mean_a, dAd.corr, dAd.max_d,
			   dAd.mean_d);
	}
fail:
	iapo_free(post);
	iapo_free(ids);
	real_free(&x);
	return st;
}

static int usage(void)
{
	fprintf(stderr, "usage: info [--shape tiny|small|qwen0.5b|all] [--length both|bench|trainer] [--threads N] [--quick]\n"
			"            [--no-naive] [--pack]\n"
			"       info --model DIR --data FILE [--prompts N] [--max-new N] [--threads N]\n");
	return 2;
}

int main(int argc, char **argv)
{
	int threads = omp_get_num_procs(), quick = 0, naive = 1, nprompts = 8, max_new = 200;
	int lengths = 0; /* 0 both, 1 bench/info's own (64 + 192), 2 the trainer's (64 + 960) */
	const char *shape = "all", *model = NULL, *data = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
			if (!bench_parse_pos_int(argv[++i], &threads)) return usage();
		} else if (strcmp(argv[i], "--prompts") == 0 && i + 1 < argc) {
			if (!bench_parse_pos_int(argv[++i], &nprompts)) return usage();
		} else if (strcmp(argv[i], "--max-new") == 0 && i + 1 < argc) {
			if (!bench_parse_pos_int(argv[++i], &max_new)) return usage();
		} else if (strcmp(argv[i], "--quick") == 0) {
			quick = 1;
		} else if (strcmp(argv[i], "--pack") == 0) {
			pack_weights = 1;
		} else if (strcmp(argv[i], "--no-naive") == 0) {
			naive = 0;
		} else if (strcmp(argv[i], "--length") == 0 && i + 1 < argc) {
			i++;
			lengths = strcmp(argv[i], "both") == 0 ? 0 : strcmp(argv[i], "bench") == 0 ? 1
							      : strcmp(argv[i], "trainer") == 0 ? 2
												 : -1;
			if (lengths < 0) return usage();
		} else if (strcmp(argv[i], "--shape") == 0 && i + 1 < argc) {
			shape = argv[++i];
		} else if (strcmp(argv[i], "--model") == 0 && i + 1 < argc) {
			model = argv[++i];
		} else if (strcmp(argv[i], "--data") == 0 && i + 1 < argc) {
			data = argv[++i];
		} else {
			return usage();
		}
	}
	iapo_set_threads(threads);
	if (model || data) {
		if (!model || !data) return usage();
		if (bench_real(model, data, nprompts, max_new, threads) != IAPO_OK) {
			bench_note("info: %s: %s\n", model, iapo_errmsg());
			return 1;
		}
		return 0;
	}
	int found = strcmp(shape, "all") == 0;
	for (int s = 0; s < BENCH_NSHAPES; s++) found |= strcmp(shape, BENCH_SHAPES[s].name) == 0;
	if (!found) return usage();
	for (int s = 0; s < BENCH_NSHAPES; s++) {
		if (strcmp(shape, BENCH_SHAPES[s].name) && (strcmp(shape, "all") || s == 2)) continue;
		iapo_status st = IAPO_OK;
		if (lengths != 2) st = bench_shape(&BENCH_SHAPES[s], threads, quick, naive, 0);
		if (st == IAPO_OK && lengths != 1) {
			prompt_len = TRAIN_PROMPT, comp_len = TRAIN_COMP, seq_len = TRAIN_PROMPT + TRAIN_COMP;
			st = bench_shape(&BENCH_SHAPES[s], threads, quick, 0, 1);
			prompt_len = PROMPT, comp_len = COMP, seq_len = PROMPT + COMP;
		}
		if (st != IAPO_OK) {
			bench_note("info: %s: %s\n", BENCH_SHAPES[s].name, iapo_errmsg());
			return 1;
		}
	}
	return 0;
}
