/*
 * model.c — speed of the whole model on three shapes (random Qwen2 weights),
 * with the machine's limits measured in the same run beside each number, as
 * JSON lines on stdout:
 *
 *   fwd       training forward (log-prob and entropy of every position) of
 *             B=1 sequence of T=256 tokens: tokens/s, GFLOP/s, % fp32 peak
 *   fwd_bwd   the same forward then its backward into a gradient block
 *   train_step  a whole training step as the trainer runs it: zero the
 *             gradient block, forward, backward, AdamW over every parameter
 *             (what bench/peer.py's PyTorch step does)
 *   decode    batched greedy decoding through the KV cache: 8 sequences,
 *             64-token prompts, 128 new tokens each (EOS ignored, so every
 *             run does the same work), the way iapo_generate decodes by
 *             default (since session 12): from the weights packed for
 *             decoding too (iapo_kv_pack_weights(kv, 2): one more copy of the
 *             matrices, in panels); prefill and decode tokens/s, and the
 *             memory-bandwidth bound of a decode step (every weight read once
 *             per step at the read bandwidth measured right before and after
 *             the decode, in this process: near_read_bw; and, paired, the
 *             same read between every 16 steps, each segment of steps over
 *             the bound at the reads on its two sides), the packing's
 *             seconds and bytes (first packing, and a repack in place: what
 *             each later generate call on a kept cache pays)
 *   decode_bf16  the same with the cache's bf16 copy of the weight matrices
 *             (iapo_kv_use_bf16; iapo_generate's default), packed as K-pair
 *             panels: against the fp32 bound and its own
 *   decode_rows, decode_bf16_rows  the ablation: the same decodes reading
 *             the weights' rows (no packs; iapo_gen_opts.pack OFF, the
 *             records "decode" and "decode_bf16" of sessions 1-11)
 * Every decode record says which it read ("path": "packs" or "rows"). The
 * decodes run in --what's order (bench/run.sh alternates it by round).
 *
 * FLOPs are counted analytically (useful work of the model, not of our
 * implementation; formulas in bench/README.md). Every measurement warms up
 * once, then repeats within a time budget and reports the median (and the
 * best repeat, what the machine does when nothing else runs on it).
 * Left out: B > 1 training batches, sampling other than greedy, the tokenizer,
 * gradient clipping.
 *
 * Usage: model [--shape tiny|small|qwen0.5b|all] [--threads N] [--quick]
 *              [--what train,decode,decode_bf16,decode_rows,decode_bf16_rows]
 *              (default: train,decode,decode_bf16)
 *              [--round N]   (tags the decode records with "round": N, for
 *                             bench/run.sh's paired rounds against the peer)
 */
#include <stdatomic.h>

#include "bench.h"
#include "core/mem.h"
#include "core/status.h"
#include "core/rng.h"
#include "kernels/pool.h"
#include "model/kvcache.h"
#include "model/sample.h"
#include "model/transformer.h"
#include "model/weights.h"
#include "rl/adamw.h"

enum { TRAIN_B = 1, TRAIN_T = 256, DEC_B = 8, DEC_PROMPT = 64, DEC_NEW = 128 };

/* ------------------------------------------------------------ FLOP counts */

/* Weights that every token multiplies: the per-layer projections and the
 * vocabulary projection (the embedding lookup is a copy, not a product). */
static double matmul_params(const iapo_config *c)
{
	double q = (double)c->C * c->NH * c->HD, kv = 2.0 * c->C * c->NKV * c->HD;
	double o = (double)c->NH * c->HD * c->C, mlp = 3.0 * c->C * c->F;
	return c->L * (q + kv + o + mlp) + (double)c->V * c->C;
}

/* Attention products QK^T and PV of one causal sequence of T tokens: query t
 * meets t+1 keys, 2*HD FLOP per product, per head and layer. */
static double attn_flops(const iapo_config *c, double T)
{
	return 2.0 * 2.0 * c->HD * c->NH * c->L * (T * (T + 1) / 2);
}

/* Forward of one sequence of T tokens (norms, RoPE, softmax, SwiGLU, the
 * log-softmax head's exp/log: O(T*(C+V)) and left out). */
static double fwd_flops(const iapo_config *c, double T)
{
	return 2.0 * matmul_params(c) * T + attn_flops(c, T);
}

/* Bytes of weights a decode step reads: every matrix, bias and norm once;
 * an untied embedding only for the B rows looked up (counted as 0). */
static double weight_bytes(const iapo_config *c)
{
	double n = (double)iapo_param_count(c);
	if (!c->tie_embeddings) n -= (double)c->V * c->C;
	return 4.0 * n;
}

/* ---------------------------------------------------------------- timing */

typedef iapo_status (*bench_fn)(void *ctx);

typedef struct {
	double median, best, first; /* seconds */
	int reps;
} timing;

#define MAX_REPS 7

/* One warm-up call, then repeats until `budget` seconds have gone by (at
 * least min_reps, at most MAX_REPS); the median of the repeats. */
static iapo_status time_it(bench_fn fn, void *ctx, double budget, int min_reps, timing *out)
{
	double t0 = bench_now();
	IAPO_TRY(fn(ctx));
	out->first = bench_now() - t0;
	double v[MAX_REPS], spent = 0.0;
	int r = 0;
	while (r < MAX_REPS && (r < min_reps || spent + v[r - 1] <= budget)) {
		t0 = bench_now();
		IAPO_TRY(fn(ctx));
		v[r] = bench_now() - t0;
		spent += v[r++];
	}
	out->reps = r;
	out->best = v[0];
	for (int i = 1; i < r; i++) out->best = v[i] < out->best ? v[i] : out->best;
	out->median = bench_median(v, r);
	return IAPO_OK;
}

/* ------------------------------------------------------- training passes */

typedef struct {
	iapo_fwd *f;
	int *tokens, *targets, lens[TRAIN_B];
	float *logp, *entropy, *dlogp, *grad;
	float *block, *m, *v; /* parameters and AdamW moments */
	size_t n_params;
	long t;               /* AdamW step */
} train_ctx;

static iapo_status run_fwd(void *p)
{
	train_ctx *x = p;
	return iapo_fwd_forward(x->f, x->tokens, x->lens, x->targets, TRAIN_B, TRAIN_T, x->logp, x->entropy,
				NULL);
}

static iapo_status run_fwd_bwd(void *p)
{
	train_ctx *x = p;
	IAPO_TRY(run_fwd(p));
	return iapo_fwd_backward(x->f, x->dlogp, NULL, x->grad);
}

/* As the trainer: the backward accumulates, so the block is zeroed first. */
static iapo_status run_train_step(void *p)
{
	train_ctx *x = p;
	memset(x->grad, 0, x->n_params * sizeof(float));
	IAPO_TRY(run_fwd_bwd(p));
	const iapo_adamw_opts o = {.lr = 1e-6f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.0f};
	iapo_adamw_step(x->block, x->grad, x->m, x->v, x->n_params, &o, ++x->t);
	return IAPO_OK;
}

typedef struct {
	const char *shape;
	int threads;
	double peak, bw; /* GFLOP/s, GB/s measured in this run */
	double budget;
	int min_reps;
	const char *what; /* --what: which of train, decode, decode_bf16, decode_rows, decode_bf16_rows */
	int round;        /* --round: bench/run.sh's paired round (0: none) */
} run_env;

static void emit_train(const char *bench, const run_env *e, const iapo_config *c, const timing *t,
		       double flop)
{
	double tokens = (double)TRAIN_B * TRAIN_T, gflops = flop / t->median * 1e-9;
	bench_rec_begin(bench);
	bench_rec_str("shape", e->shape);
	bench_rec_int("B", TRAIN_B);
	bench_rec_int("T", TRAIN_T);
	bench_rec_int("threads", e->threads);
	bench_rec_int("params", (long long)iapo_param_count(c));
	bench_rec_int("repeats", t->reps);
	bench_rec_num("seconds", t->median);
	bench_rec_num("tokens_per_s", tokens / t->median);
	bench_rec_num("best_tokens_per_s", tokens / t->best);
	bench_rec_num("loadavg_1m", bench_loadavg());
	bench_rec_num("gflop", flop * 1e-9);
	bench_rec_num("gflops", gflops);
	bench_rec_num("fp32_peak_gflops", e->peak);
	bench_rec_num("pct_fp32_peak", e->peak > 0 ? 100.0 * gflops / e->peak : NAN);
	bench_rec_end();
	bench_note("model: %-8s %-7s %8.1f tokens/s  %7.1f GFLOP/s  %5.1f%% of fp32 peak  (%d reps, median %.3f s)\n",
		   e->shape, bench, tokens / t->median, gflops, e->peak > 0 ? 100.0 * gflops / e->peak : 0.0,
		   t->reps, t->median);
}

static iapo_status bench_train(iapo_weights *w, const run_env *e)
{
	const iapo_config *c = &w->cfg;
	iapo_status st = IAPO_OK;
	train_ctx x;
	memset(&x, 0, sizeof x);
	const size_t n = (size_t)TRAIN_B * TRAIN_T;
	IAPO_CHECK(st, iapo_alloc_or_fail((void **)&x.tokens, n * sizeof(int), "bench tokens"));
	IAPO_CHECK(st, iapo_alloc_or_fail((void **)&x.targets, n * sizeof(int), "bench targets"));
	IAPO_CHECK(st, iapo_alloc_or_fail((void **)&x.logp, n * sizeof(float), "bench logp"));
	IAPO_CHECK(st, iapo_alloc_or_fail((void **)&x.entropy, n * sizeof(float), "bench entropy"));
	IAPO_CHECK(st, iapo_alloc_or_fail((void **)&x.dlogp, n * sizeof(float), "bench dlogp"));
	IAPO_CHECK(st, iapo_alloc_or_fail((void **)&x.grad, iapo_param_count(c) * sizeof(float), "bench grads"));
	iapo_rng r;
	iapo_rng_seed(&r, 7, (uint64_t)c->V, 0, 0);
	for (size_t i = 0; i < n; i++) x.tokens[i] = (int)iapo_rng_below(&r, (uint64_t)c->V);
	for (int b = 0; b < TRAIN_B; b++) {
		x.lens[b] = TRAIN_T;
		for (int t = 0; t < TRAIN_T; t++) {
			size_t i = (size_t)b * TRAIN_T + t;
			x.targets[i] = t + 1 < TRAIN_T ? x.tokens[i + 1] : -1;
			x.dlogp[i] = -1.0f / (float)(TRAIN_B * (TRAIN_T - 1)); /* mean NLL */
		}
	}
	timing t;
	const double flop = TRAIN_B * fwd_flops(c, TRAIN_T);

	/* forward alone: the no-grad arena, as reference and old log-probs use */
	IAPO_CHECK(st, iapo_fwd_new(w, TRAIN_B, TRAIN_T, 0, &x.f));
	IAPO_CHECK(st, time_it(run_fwd, &x, e->budget, e->min_reps, &t));
	emit_train("fwd", e, c, &t, flop);
	iapo_fwd_free(x.f);
	x.f = NULL;

	/* forward + backward: 3x the forward's FLOPs (dx and dW per product) */
	IAPO_CHECK(st, iapo_fwd_new(w, TRAIN_B, TRAIN_T, 1, &x.f));
	IAPO_CHECK(st, time_it(run_fwd_bwd, &x, e->budget, e->min_reps, &t));
	emit_train("fwd_bwd", e, c, &t, 3.0 * flop);

	/* the training step: the same FLOPs plus AdamW's O(parameters) pass */
	x.n_params = iapo_param_count(c);
	x.block = w->block;
	IAPO_CHECK(st, iapo_alloc_or_fail((void **)&x.m, x.n_params * sizeof(float), "bench AdamW m"));
	IAPO_CHECK(st, iapo_alloc_or_fail((void **)&x.v, x.n_params * sizeof(float), "bench AdamW v"));
	memset(x.m, 0, x.n_params * sizeof(float));
	memset(x.v, 0, x.n_params * sizeof(float));
	IAPO_CHECK(st, time_it(run_train_step, &x, e->budget, e->min_reps, &t));
	emit_train("train_step", e, c, &t, 3.0 * flop);
fail:
	iapo_free_aligned(x.m);
	iapo_free_aligned(x.v);
	iapo_fwd_free(x.f);
	iapo_free_aligned(x.tokens);
	iapo_free_aligned(x.targets);
	iapo_free_aligned(x.logp);
	iapo_free_aligned(x.entropy);
	iapo_free_aligned(x.dlogp);
	iapo_free_aligned(x.grad);
	return st;
}

/* --------------------------------------------------------------- decoding */

/* Paired reads: the weight block read between segments of SEG_STEPS steps
 * of a timed decode, so that each segment has the bound's read right before
 * and right after it (within ~0.1-1 s) instead of reads before the warm-up
 * and after every repeat (10-20 s apart at qwen0.5b, while the host's read
 * moves 27-83 GB/s between minutes). */
enum { SEG_STEPS = 16, MAX_SEG = (DEC_NEW + SEG_STEPS - 1) / SEG_STEPS, SEG_PASSES = 2 };

typedef struct {
	iapo_kv *kv;
	int V;
	int *prompt;         /* (DEC_B, DEC_PROMPT) */
	int *gen;            /* (DEC_B, DEC_NEW) */
	float *logits;       /* (DEC_B, V) */
	int prompt_len, new_tokens;
	double prefill_s, decode_s, decode_cpu_s;
	/* paired reads (w set): segment k's seconds and batched steps, and the
	 * reads (GB/s, best of SEG_PASSES) before it (seg_bw[k]) and after it
	 * (seg_bw[k + 1]); their time is left out of decode_s */
	const iapo_weights *w;
	int nseg, seg_steps[MAX_SEG];
	double seg_s[MAX_SEG], seg_bw[MAX_SEG + 1];
} dec_ctx;

/* The greedy tokens of one step (iapo_sample_argmax, the library's own),
 * one sequence an item on the kernels' pool (as iapo_generate samples): a
 * serial pass over 8 x V logits (4.9 MB at qwen0.5b) left the pool's worker
 * idle long enough to fall asleep, so the next step's first product started
 * on one thread. */
typedef struct {
	const float *logits;
	int V, step;
	int *gen;
	atomic_int bad;
} argmax_job;

static void argmax_item(void *ctx, long b, int worker)
{
	(void)worker;
	argmax_job *J = ctx;
	const int g = iapo_sample_argmax(J->logits + (size_t)b * J->V, J->V);
	if (g < 0) atomic_store(&J->bad, 1);
	J->gen[(size_t)b * DEC_NEW + J->step] = g < 0 ? 0 : g;
}

static double near_read_bw(const iapo_weights *w, double startup_bw, int passes, const char **source);

/* Prefill every prompt in one call, then new_tokens greedy tokens: the first
 * from the prefill's logits, each next one after feeding the previous. With
 * x->w, the paired reads between segments (above), untimed. */
static iapo_status run_decode(void *p)
{
	dec_ctx *x = p;
	const int *toks[DEC_B];
	int n[DEC_B];
	for (int b = 0; b < DEC_B; b++) {
		iapo_kv_reset(x->kv, b);
		toks[b] = x->prompt + (size_t)b * DEC_PROMPT;
		n[b] = x->prompt_len;
	}
	double t0 = bench_now();
	IAPO_TRY(iapo_kv_forward(x->kv, toks, n, x->logits));
	double t1 = bench_now(), c1 = bench_cpu_now();
	double read_s = 0.0, read_cpu_s = 0.0, seg_t0 = t1;
	const char *src;
	x->nseg = 0;
	argmax_job J = {.logits = x->logits, .V = x->V, .gen = x->gen};
	atomic_init(&J.bad, 0);
	for (int i = 0; i < x->new_tokens; i++) {
		if (x->w && i % SEG_STEPS == 0) {
			const double r0 = bench_now(), rc0 = bench_cpu_now();
			if (i > 0) x->seg_s[x->nseg++] = r0 - seg_t0;
			x->seg_bw[x->nseg] = near_read_bw(x->w, 0.0, SEG_PASSES, &src);
			seg_t0 = bench_now();
			read_s += seg_t0 - r0;
			read_cpu_s += bench_cpu_now() - rc0;
		}
		J.step = i;
		iapo_pool_for(DEC_B, argmax_item, &J);
		for (int b = 0; b < DEC_B; b++) {
			toks[b] = x->gen + (size_t)b * DEC_NEW + i;
			n[b] = 1;
		}
		if (i + 1 < x->new_tokens) IAPO_TRY(iapo_kv_forward(x->kv, toks, n, x->logits));
	}
	if (atomic_load(&J.bad)) return iapo_fail(IAPO_ERR_NUMERIC, "bench: decode: no greedy token (NaN or infinite logits)");
	double t2 = bench_now();
	x->decode_cpu_s = bench_cpu_now() - c1 - read_cpu_s;
	x->prefill_s = t1 - t0;
	x->decode_s = t2 - t1 - read_s;
	if (x->w) {
		x->seg_s[x->nseg++] = t2 - seg_t0;
		x->seg_bw[x->nseg] = near_read_bw(x->w, 0.0, SEG_PASSES, &src);
		/* segment k ran iterations k*SEG_STEPS.. of the loop, each a batched
		 * step but the last (its token is only sampled) */
		for (int k = 0; k < x->nseg; k++) {
			const int lo = k * SEG_STEPS, hi = lo + SEG_STEPS < x->new_tokens - 1 ? lo + SEG_STEPS : x->new_tokens - 1;
			x->seg_steps[k] = hi - lo;
		}
	}
	return IAPO_OK;
}

/* Bytes of weights a decode step reads with the matrices in bf16 (the norms,
 * biases stay fp32; the untied embedding is only looked up). */
static double weight_bytes_bf16(const iapo_config *c)
{
	size_t sizes[IAPO_NUM_PARAMS];
	iapo_param_sizes(c, sizes);
	double n = 0;
	for (int t = 0; t < IAPO_NUM_PARAMS; t++) {
		int matrix = t == IAPO_P_WQ || t == IAPO_P_WK || t == IAPO_P_WV || t == IAPO_P_WO || t == IAPO_P_WGATE ||
			     t == IAPO_P_WUP || t == IAPO_P_WDOWN || (t == IAPO_P_EMBED && c->tie_embeddings) ||
			     t == IAPO_P_LMHEAD;
		if (t == IAPO_P_EMBED && !c->tie_embeddings) continue;
		n += (matrix ? 2.0 : 4.0) * (double)sizes[t];
	}
	return n;
}

/* The read bandwidth next to a decode. A model whose weights fill at least
 * NEAR_BW_MIN bytes (small, qwen0.5b: 2-4x the 32 MB L3 and more) has its own
 * weight block read: the decode's own threads (iapo's pool) sum exactly the
 * pages the decode streams, in the same process and minute, best of `passes`
 * (the host's memory "mode" moves 27-83 GB/s between processes and within
 * one, so a figure from start-up or from another program can belong to
 * another mode). Smaller weights sit in the L3 cache, where a read of them
 * says nothing about memory: those shapes keep the start-up figure (a 1 GiB
 * buffer). *source says which. */
#define NEAR_BW_MIN ((size_t)64 << 20)

typedef struct {
	const float *x;
	size_t n;     /* floats */
	double acc[IAPO_POOL_MAX];
	int avx;
} read_job;

enum { READ_ITEM = 1 << 18 }; /* floats a pool item sums: 1 MB */

static void read_item(void *ctx, long item, int worker)
{
	read_job *J = ctx;
	const size_t lo = (size_t)item * READ_ITEM, hi = lo + READ_ITEM < J->n ? lo + READ_ITEM : J->n;
#if BENCH_X86
	if (J->avx) {
		J->acc[worker] += bench_sum_avx512(J->x + lo, (hi - lo) / 64 * 64);
		return;
	}
#endif
	J->acc[worker] += bench_sum_plain(J->x + lo, (hi - lo) / 8 * 8);
}

static double near_read_bw(const iapo_weights *w, double startup_bw, int passes, const char **source)
{
	const size_t n = iapo_param_count(&w->cfg);
	if (n * sizeof(float) < NEAR_BW_MIN) {
		*source = "startup_buffer_1gib";
		return startup_bw;
	}
	*source = "weights";
	/* the decode's own threads (iapo's pool), items taken as its products take
	 * their pieces */
	read_job J = {.x = w->block, .n = n, .avx = bench_has_avx512f() && ((uintptr_t)w->block & 63) == 0};
	const long items = (long)((n + READ_ITEM - 1) / READ_ITEM);
	double best = 0.0;
	for (int p = 0; p < passes; p++) {
		double t0 = bench_now();
		iapo_pool_for(items, read_item, &J);
		double gbs = (double)(n * sizeof(float)) / (bench_now() - t0) * 1e-9;
		best = gbs > best ? gbs : best;
	}
	double acc = 0.0;
	for (int i = 0; i < IAPO_POOL_MAX; i++) acc += J.acc[i];
	bench_sink_ += acc;
	return best;
}

/* A field holding a JSON array of numbers (non-finite as null). */
static void rec_nums(const char *k, const double *v, int n)
{
	bench_rec_key(k);
	putchar('[');
	for (int i = 0; i < n; i++) {
		if (i) putchar(',');
		if (isfinite(v[i])) printf("%.4g", v[i]);
		else fputs("null", stdout);
	}
	putchar(']');
}

/* bf16: the cache multiplies by a bf16 copy of the weight matrices
 * (iapo_kv_use_bf16), records "decode_bf16*"; packs: the weights packed for
 * decoding too (iapo_kv_pack_weights(kv, 2)), as iapo_generate decodes by
 * default ("decode", "decode_bf16"); without: the rows ("*_rows"). */
static iapo_status bench_decode(const iapo_weights *w, const run_env *e, int bf16, int packs)
{
	const char *rec = bf16 ? (packs ? "decode_bf16" : "decode_bf16_rows") : (packs ? "decode" : "decode_rows");
	double pack_s = 0.0, repack_s = 0.0;
	size_t pack_bytes = 0;
	const iapo_config *c = &w->cfg;
	iapo_status st = IAPO_OK;
	dec_ctx x;
	memset(&x, 0, sizeof x);
	x.V = c->V;
	IAPO_CHECK(st, iapo_alloc_or_fail((void **)&x.prompt, sizeof(int) * DEC_B * DEC_PROMPT, "bench prompts"));
	IAPO_CHECK(st, iapo_alloc_or_fail((void **)&x.gen, sizeof(int) * DEC_B * DEC_NEW, "bench generated"));
	IAPO_CHECK(st, iapo_alloc_or_fail((void **)&x.logits, sizeof(float) * DEC_B * (size_t)c->V, "bench logits"));
	IAPO_CHECK(st, iapo_kv_new(w, DEC_B, DEC_PROMPT + DEC_NEW, &x.kv));
	if (bf16) IAPO_CHECK(st, iapo_kv_use_bf16(x.kv, 1));
	if (packs) {
		double t0 = bench_now();
		IAPO_CHECK(st, iapo_kv_pack_weights(x.kv, 2, &pack_bytes));
		double t1 = bench_now();
		IAPO_CHECK(st, iapo_kv_pack_weights(x.kv, 2, NULL)); /* in place, as generate's later calls */
		pack_s = t1 - t0;
		repack_s = bench_now() - t1;
	}
	iapo_rng r;
	iapo_rng_seed(&r, 11, (uint64_t)c->V, 0, 0);
	for (int i = 0; i < DEC_B * DEC_PROMPT; i++) x.prompt[i] = (int)iapo_rng_below(&r, (uint64_t)c->V);

	/* the bandwidth right before and right after the timed repeats */
	const char *bw_source = "";
	const double bw_before = near_read_bw(w, e->bw, 3, &bw_source);

	/* warm-up: a short run touches every weight and the whole code path */
	x.prompt_len = 8;
	x.new_tokens = 3;
	IAPO_CHECK(st, run_decode(&x));

	x.prompt_len = DEC_PROMPT;
	x.new_tokens = DEC_NEW;
	/* paired reads where the weights' own read is the bound's (not tiny's
	 * cache-resident block) */
	x.w = !strcmp(bw_source, "weights") ? w : NULL;
	double pre[MAX_REPS], dec[MAX_REPS], cpu_best = 1e30, spent = 0.0;
	double seg_s[MAX_REPS * MAX_SEG], seg_bw[MAX_REPS * MAX_SEG];
	int seg_steps[MAX_REPS * MAX_SEG], nseg = 0;
	int reps = 0;
	while (reps < MAX_REPS && (reps < 1 || spent + pre[reps - 1] + dec[reps - 1] <= e->budget)) {
		IAPO_CHECK(st, run_decode(&x));
		pre[reps] = x.prefill_s;
		dec[reps] = x.decode_s;
		cpu_best = x.decode_cpu_s < cpu_best ? x.decode_cpu_s : cpu_best;
		spent += x.prefill_s + x.decode_s;
		reps++;
		for (int k = 0; x.w && k < x.nseg; k++, nseg++) {
			seg_s[nseg] = x.seg_s[k];
			seg_steps[nseg] = x.seg_steps[k];
			/* the faster of the reads on its two sides: the stricter bound */
			seg_bw[nseg] = x.seg_bw[k] > x.seg_bw[k + 1] ? x.seg_bw[k] : x.seg_bw[k + 1];
		}
	}
	const double bw_after = near_read_bw(w, e->bw, 3, &bw_source);
	/* the bound takes the faster of the two: the stricter bound for us */
	const double bw = bw_before > bw_after ? bw_before : bw_after;
	double dec_best = dec[0];
	for (int i = 1; i < reps; i++) dec_best = dec[i] < dec_best ? dec[i] : dec_best;
	double pre_s = bench_median(pre, reps), dec_s = bench_median(dec, reps);

	/* decode: DEC_NEW-1 batched steps; step i feeds the token at position
	 * DEC_PROMPT+i, which attends to DEC_PROMPT+i+1 keys */
	const int steps = DEC_NEW - 1;
	double dec_flop = 0.0, kv_bytes = 0.0;
	for (int i = 0; i < steps; i++) {
		double ctx = DEC_PROMPT + i + 1;
		dec_flop += DEC_B * (2.0 * matmul_params(c) + 2.0 * 2.0 * c->HD * c->NH * c->L * ctx);
		kv_bytes += DEC_B * 2.0 * c->L * c->NKV * c->HD * ctx * 4.0;
	}
	const double wbytes = weight_bytes(c);
	const double dec_tps = DEC_B * steps / dec_s;
	const double bound = bw > 0 ? DEC_B * bw * 1e9 / wbytes : NAN;
	const double bound_kv = bw > 0 ? DEC_B * bw * 1e9 / (wbytes + kv_bytes / steps) : NAN;
	const double pre_flop = DEC_B * fwd_flops(c, DEC_PROMPT);
	const double gen_tps = (double)DEC_B * DEC_NEW / (pre_s + dec_s);

	const double wbytes16 = weight_bytes_bf16(c);
	const double bound16 = bw > 0 ? DEC_B * bw * 1e9 / wbytes16 : NAN;
	bench_rec_begin(rec);
	bench_rec_str("shape", e->shape);
	bench_rec_int("B", DEC_B);
	bench_rec_int("prompt", DEC_PROMPT);
	bench_rec_int("new_tokens", DEC_NEW);
	bench_rec_int("threads", e->threads);
	if (e->round > 0) bench_rec_int("round", e->round);
	bench_rec_int("repeats", reps);
	bench_rec_num("prefill_seconds", pre_s);
	bench_rec_num("prefill_tokens_per_s", DEC_B * DEC_PROMPT / pre_s);
	bench_rec_num("prefill_gflops", pre_flop / pre_s * 1e-9);
	bench_rec_num("decode_seconds", dec_s);
	bench_rec_int("decode_steps", steps);
	bench_rec_num("decode_tokens_per_s", dec_tps);
	bench_rec_num("best_decode_tokens_per_s", DEC_B * steps / dec_best);
	/* the rate by CPU time (best repeat): what 1 thread does while it runs,
	 * whatever else shares the machine (with more threads, spinning counts) */
	bench_rec_num("cpu_decode_tokens_per_s", DEC_B * steps * e->threads / cpu_best);
	bench_rec_num("decode_gflops", dec_flop / dec_s * 1e-9);
	bench_rec_num("generate_tokens_per_s", gen_tps);
	bench_rec_num("weight_bytes", wbytes);
	bench_rec_num("kv_bytes_per_step_mean", kv_bytes / steps);
	bench_rec_num("mem_bw_gb_per_s", bw);
	bench_rec_num("mem_bw_before_gb_per_s", bw_before);
	bench_rec_num("mem_bw_after_gb_per_s", bw_after);
	bench_rec_str("mem_bw_source", bw_source);
	bench_rec_num("mem_bw_startup_gb_per_s", e->bw);
	bench_rec_num("bw_bound_tokens_per_s", bound);
	bench_rec_num("bw_bound_with_kv_tokens_per_s", bound_kv);
	bench_rec_num("pct_bw_bound", 100.0 * dec_tps / bound);
	/* what the decode itself read per second (its weights in the precision
	 * it multiplies by, and the K/V): a near read below it is no bound
	 * (bench/table.py refuses such a round) */
	const double streamed = ((bf16 ? wbytes16 : wbytes) + kv_bytes / steps) * steps / dec_s * 1e-9;
	bench_rec_num("streamed_gb_per_s", streamed);
	if (nseg > 0) {
		/* The paired bound: each segment's tokens/s over the bound at the
		 * faster of the reads right before and right after it, in the
		 * precision the decode multiplies by (bf16: its own bound); a
		 * segment whose read is below what it streamed is refused. */
		const double seg_bytes = (bf16 ? wbytes16 : wbytes), step_bytes = seg_bytes + kv_bytes / steps;
		double pct[MAX_REPS * MAX_SEG], tps[MAX_REPS * MAX_SEG], kept[MAX_REPS * MAX_SEG];
		int nkept = 0, refused = 0;
		for (int k = 0; k < nseg; k++) {
			tps[k] = DEC_B * seg_steps[k] / seg_s[k];
			pct[k] = 100.0 * tps[k] / (DEC_B * seg_bw[k] * 1e9 / seg_bytes);
			if (seg_bw[k] < step_bytes * seg_steps[k] / seg_s[k] * 1e-9) refused++;
			else kept[nkept++] = pct[k];
		}
		double lo = nkept ? kept[0] : NAN, hi = lo;
		for (int k = 1; k < nkept; k++) {
			lo = kept[k] < lo ? kept[k] : lo;
			hi = kept[k] > hi ? kept[k] : hi;
		}
		bench_rec_int("paired_segment_steps", SEG_STEPS);
		bench_rec_int("paired_read_passes", SEG_PASSES);
		bench_rec_str("paired_bound", bf16 ? "bf16_weight_bytes" : "weight_bytes");
		bench_rec_int("paired_segments", nseg);
		bench_rec_int("paired_refused", refused);
		bench_rec_num("paired_pct_bound", nkept ? bench_median(kept, nkept) : NAN);
		bench_rec_num("paired_pct_bound_min", lo);
		bench_rec_num("paired_pct_bound_max", hi);
		rec_nums("paired_segment_tokens_per_s", tps, nseg);
		rec_nums("paired_segment_gb_per_s", seg_bw, nseg);
		rec_nums("paired_segment_pct_bound", pct, nseg);
		bench_note("model: %-8s %s paired bound: median %.1f%% of the %s bound over %d segments of %d steps "
			   "(%.1f-%.1f%%, %d refused)\n", e->shape, rec, nkept ? bench_median(kept, nkept) : NAN,
			   bf16 ? "bf16" : "fp32", nkept, SEG_STEPS, lo, hi, refused);
	}
	bench_rec_str("path", packs ? "packs" : "rows");
	if (packs) {
		bench_rec_num("pack_bytes", (double)pack_bytes);
		bench_rec_num("pack_seconds", pack_s);
		bench_rec_num("repack_seconds", repack_s);
	}
	if (bf16) {
		bench_rec_num("bf16_weight_bytes", wbytes16);
		bench_rec_num("bw_bound_bf16_tokens_per_s", bound16);
		bench_rec_num("pct_bw_bound_bf16", 100.0 * dec_tps / bound16);
	}
	bench_rec_num("fp32_peak_gflops", e->peak);
	bench_rec_num("pct_fp32_peak", e->peak > 0 ? 100.0 * (dec_flop / dec_s * 1e-9) / e->peak : NAN);
	bench_rec_num("loadavg_1m", bench_loadavg());
	bench_rec_end();
	bench_note("model: %-8s %s prefill %8.1f tokens/s, decode %8.1f tokens/s "
		   "(fp32 bandwidth bound %.1f at %.1f GB/s (%s, before %.1f, after %.1f), %.0f%%%s; streamed %.1f GB/s), "
		   "%.1f generated tokens/s (%d reps)\n",
		   e->shape, rec, DEC_B * DEC_PROMPT / pre_s, dec_tps, bound, bw,
		   bw_source, bw_before, bw_after, 100.0 * dec_tps / bound, bf16 ? "; bf16 weights" : "", streamed,
		   gen_tps, reps);
fail:
	iapo_kv_free(x.kv);
	iapo_free_aligned(x.prompt);
	iapo_free_aligned(x.gen);
	iapo_free_aligned(x.logits);
	return st;
}

/* ------------------------------------------------------------------- main */

static iapo_status bench_shape(const bench_model_shape *s, run_env *e)
{
	iapo_config c;
	bench_qwen2_config(s, &c);
	IAPO_TRY(iapo_config_validate(&c, s->name));
	iapo_weights w;
	memset(&w, 0, sizeof w);
	double t0 = bench_now();
	IAPO_TRY(iapo_weights_init_random(&w, &c, 1234, 0.02f));
	bench_note("model: %s: %zu parameters, random init %.1f s\n", s->name, iapo_param_count(&c),
		   bench_now() - t0);
	e->shape = s->name;
	iapo_status st = IAPO_OK;
	if (strstr(e->what, "train")) st = bench_train(&w, e);
	/* the decodes in --what's order (so that A/B runs can alternate which
	 * goes first); each at most once */
	static const char *const DEC[4] = {"decode", "decode_rows", "decode_bf16", "decode_bf16_rows"};
	int done[4] = {0, 0, 0, 0};
	for (const char *p = e->what; st == IAPO_OK && p && *p;) {
		const char *end = strchr(p, ',');
		const size_t len = end ? (size_t)(end - p) : strlen(p);
		for (int d = 0; d < 4; d++)
			if (!done[d] && len == strlen(DEC[d]) && !strncmp(p, DEC[d], len)) {
				done[d] = 1;
				st = bench_decode(&w, e, d >= 2, d % 2 == 0);
			}
		p = end ? end + 1 : NULL;
	}
	iapo_weights_free(&w);
	return st;
}

/* The fp32 peak, measured again before each shape and kept as the running
 * maximum: on a shared machine a busy second core halves one measurement,
 * and a percentage of a halved peak would flatter us. Each measurement is a
 * record of its own, flagged "contended" when all threads together reached
 * less than 3/4 of threads x the one-thread peak. */
static void measure_peak(run_env *e, int quick, const char *shape)
{
	double all = bench_fp32_peak(e->threads, quick);
	double one = e->threads > 1 ? bench_fp32_peak(1, quick) : all;
	if (all > e->peak) e->peak = all;
	int contended = all < 0.75 * e->threads * one;
	bench_rec_begin("model_limits");
	bench_rec_str("before_shape", shape);
	bench_rec_int("threads", e->threads);
	bench_rec_num("fp32_peak_1thread_gflops", one);
	bench_rec_num("fp32_peak_now_gflops", all);
	bench_rec_bool("contended", contended);
	bench_rec_num("fp32_peak_gflops", e->peak);
	bench_rec_num("mem_bw_gb_per_s", e->bw);
	bench_rec_num("loadavg_1m", bench_loadavg());
	bench_rec_end();
	bench_note("model: %d threads, fp32 peak %.1f GFLOP/s now (1 thread %.1f)%s, %.1f used\n", e->threads, all,
		   one, contended ? ", CONTENDED: another process holds a core" : "", e->peak);
}

static int usage(void)
{
	fprintf(stderr, "usage: model [--shape tiny|small|qwen0.5b|all] [--threads N] [--quick]\n"
			"             [--what train,decode,decode_bf16,decode_rows,decode_bf16_rows] [--round N]\n");
	return 2;
}

int main(int argc, char **argv)
{
	int threads = omp_get_num_procs(), quick = 0, round_no = 0;
	const char *shape = "all", *what = "train,decode,decode_bf16";
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
			if (!bench_parse_pos_int(argv[++i], &threads)) return usage();
		} else if (strcmp(argv[i], "--quick") == 0) {
			quick = 1;
		} else if (strcmp(argv[i], "--shape") == 0 && i + 1 < argc) {
			shape = argv[++i];
		} else if (strcmp(argv[i], "--what") == 0 && i + 1 < argc) {
			what = argv[++i];
		} else if (strcmp(argv[i], "--round") == 0 && i + 1 < argc) {
			if (!bench_parse_pos_int(argv[++i], &round_no)) return usage();
		} else {
			return usage();
		}
	}
	int found = strcmp(shape, "all") == 0;
	for (int s = 0; s < BENCH_NSHAPES; s++) found |= strcmp(shape, BENCH_SHAPES[s].name) == 0;
	if (!found) return usage();

	iapo_set_threads(threads);
	run_env e;
	memset(&e, 0, sizeof e);
	e.threads = threads;
	e.what = what;
	e.round = round_no;
	e.budget = quick ? 1.0 : 8.0;
	e.min_reps = quick ? 1 : 2;
	bench_bw bw;
	if (bench_mem_read_bw((size_t)1 << 30, threads, quick ? 2 : 4, &bw)) e.bw = bw.best_gbs;
	bench_note("model: memory read %.1f GB/s (measured now)\n", e.bw);

	for (int s = 0; s < BENCH_NSHAPES; s++) {
		if (strcmp(shape, "all") && strcmp(shape, BENCH_SHAPES[s].name)) continue;
		measure_peak(&e, quick, BENCH_SHAPES[s].name);
		iapo_status st = bench_shape(&BENCH_SHAPES[s], &e);
		if (st != IAPO_OK) {
			bench_note("model: %s: %s\n", BENCH_SHAPES[s].name, iapo_errmsg());
			return 1;
		}
	}
	return 0;
}
