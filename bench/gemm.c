/*
 * gemm.c — iapo_sgemm (src/kernels/gemm.h) against OpenBLAS's cblas_sgemm on
 * the transformer's matrix shapes, next to the machine's fp32 FMA peak
 * measured in the same run, as JSON lines on stdout:
 *
 *   gemm_machine   CPU caches (sysfs), OpenBLAS core in use and the
 *                  OPENBLAS_CORETYPE the environment sets (reported, never
 *                  changed: the product must be fast whatever it says)
 *   fp32_fma_peak  vfmadd231ps zmm chains, one thread and all threads
 *   gemm           one product shape at one thread count: GFLOP/s of ours and
 *                  of OpenBLAS, ours as a fraction of the peak for that many
 *                  threads, and for small M the weight bytes streamed per second
 *
 *   bf16_dot_peak  vdpbf16ps zmm chains, one thread and all threads
 *   peak_cpu       both peaks on one thread by its own CPU time (a shared
 *                  machine's descheduling left out): the denominator of the
 *                  *_cpu percentages, times the thread count
 *   gemm_bf16      one prefill product x W^T with W in bf16 (iapo_gemm_op.Bh,
 *                  the packed vdpbf16ps path) next to the same product in
 *                  fp32 (the packed FMA path), same run, same operands:
 *                  GFLOP/s by wall time (median; % of the peak measured
 *                  with the same threads) and by CPU time (the process's,
 *                  all threads, over all repeats: the steady number on a
 *                  shared machine; % of peak_cpu times the threads), for
 *                  the bf16 dot peak and the fp32 peak; bf16_kernel: the
 *                  packed kernel the start-up verdict chose (vdpbf16ps or
 *                  fp32 FMAs on the bf16 values), bf16_other_gflops the
 *                  same product with the other one, speedup_bf16_vs_other
 *                  what the choice gained (wall, median)
 *
 *   decode_stream  one decoding step's products at qwen0.5b, M = 8 rows:
 *                  every matrix of the 24 layers (q, k, v batched, o, gate
 *                  and up batched, down, as the KV cache calls them) and the
 *                  lm_head, each read once from memory (1976 MB in fp32,
 *                  988 MB in bf16), against a plain read of 1 GiB measured by
 *                  the same process (bench.h, as bench/model's bound): GB/s
 *                  of weights by wall time (median step) and by CPU time
 *                  (mean over the steps), and the % of that read. A decode
 *                  step is ~95% these products (perf, 1 thread), so this is
 *                  its streaming rate without attention and sampling.
 *   gemm_qkv       a layer's q/k/v projections at M = 256 as the model
 *                  issues them (src/model/transformer.c): the forward's one
 *                  batch of three x W^T with their biases (one parallel
 *                  job), and the backward's three batches, each an input
 *                  gradient dy W (k and v accumulating into q's) with its
 *                  weight gradient dy^T x: what the forward and backward
 *                  pay for k and v, next to the standalone kv records
 *   gemm_wpack     qwen0.5b's x W^T at M = 512 (the information pass's
 *                  chunks; lm_head also at 256), fp32 and bf16 W, packing
 *                  W's panels on every call against reading them packed
 *                  ahead (iapo_gemm_wpack): seconds by wall (median) and CPU
 *                  (mean), the saving, and what one pack costs
 *
 * Shapes: each linear layer of the tiny, small and qwen0.5b models at M = 256
 * tokens, as the forward y = x W^T (nt), the input gradient dx = dy W (nn) and
 * the weight gradient dW = dy^T x (tn); and the decoding forward at M = 1 and
 * 8 for qwen0.5b. gemm_bf16: the forward of every layer of the three models
 * at M = 256 and 1024 rows (a prefill, IAPO's information pass with
 * --info-bf16). Left out: attention's products (bench/model.c times them in
 * place).
 *
 * Usage: gemm [--threads N] [--quick] [--shape tiny|small|qwen0.5b|decode|bf16|stream|wpack|all]
 *        (--shape tiny|small|qwen0.5b also runs that model's bf16 records,
 *        qwen0.5b the gemm_wpack records too)
 */
#include <cblas.h>
#include <sched.h>

#include "bench.h"
#include "core/rng.h"
#include "iapo.h"
#include "kernels/gemm.h"
#include "kernels/kernels.h"
#include "kernels/pool.h"

/* A shape's linear layers as out x in (bench.h's BENCH_SHAPES): q, k/v (one:
 * they share a shape), o, gate (up has its shape), down, lm_head. */
typedef struct {
	const char *name;
	int out, in;
} shape_layer;
enum { NLAYERS = 6 };

static void shape_layers(const bench_model_shape *m, shape_layer *l)
{
	const int hd = m->C / m->NH, q = m->NH * hd, kv = m->NKV * hd;
	l[0] = (shape_layer){"q", q, m->C};
	l[1] = (shape_layer){"kv", kv, m->C};
	l[2] = (shape_layer){"o", m->C, q};
	l[3] = (shape_layer){"gate", m->F, m->C};
	l[4] = (shape_layer){"down", m->C, m->F};
	l[5] = (shape_layer){"lm_head", m->V, m->C};
}

static void fill(float *p, size_t n, float scale, uint64_t seed)
{
	iapo_rng r;
	iapo_rng_seed(&r, seed, n, 0, 0);
	for (size_t i = 0; i < n; i++) p[i] = scale * (iapo_rng_float(&r) - 0.5f);
}

/* Operands big enough for every product of the run, allocated once; bufBh
 * holds bufB rounded to bf16. */
static float *bufA, *bufB, *bufC;
static uint16_t *bufBh;

static void run(int lib, int ta, int tb, int M, int N, int K)
{
	int lda = ta ? M : K, ldb = tb ? K : N;
	if (lib)
		cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K,
			    1.0f, bufA, lda, bufB, ldb, 0.0f, bufC, N);
	else
		iapo_sgemm(ta, tb, M, N, K, 1.0f, bufA, lda, bufB, ldb, 0.0f, bufC, N);
}

/* Seconds of one warm-up call of fn(ctx). */
static double time_call(void (*fn)(const void *), const void *ctx)
{
	double t0 = bench_now();
	fn(ctx);
	return bench_now() - t0;
}

/* Repeats of a call that took `first` seconds that fit `budget`, least to
 * 51 of them. */
static int fit_reps(double first, double budget, int least)
{
	int reps = (int)(budget / (first > 1e-7 ? first : 1e-7));
	return reps < least ? least : reps > 51 ? 51 : reps;
}

/* Median seconds of reps <= 51 calls of fn(ctx). */
static double median_calls(void (*fn)(const void *), const void *ctx, int reps)
{
	double v[51];
	for (int r = 0; r < reps; r++) v[r] = time_call(fn, ctx);
	return bench_median(v, reps);
}

/* Median seconds of fn(ctx) after a warm-up call: as many repeats as fit
 * the budget (0.3 s, 0.05 s with --quick), 3 to 51 of them. */
static double time_median(void (*fn)(const void *), const void *ctx, int quick)
{
	const double first = time_call(fn, ctx);
	return median_calls(fn, ctx, fit_reps(first, quick ? 0.05 : 0.3, 3));
}

struct one_product {
	int lib, ta, tb, M, N, K;
};

static void run_product(const void *ctx)
{
	const struct one_product *p = ctx;
	run(p->lib, p->ta, p->tb, p->M, p->N, p->K);
}

/* Median seconds of one product. */
static double time_one(int lib, int ta, int tb, int M, int N, int K, int quick)
{
	struct one_product p = {lib, ta, tb, M, N, K};
	return time_median(run_product, &p, quick);
}

static double peak_gflops[3]; /* by thread count 1, 2 (index = threads) */

/* ---- rounds against an adjacent peak ----
 * On this host the fp32 peak moves 233-273 GFLOP/s (1 thread) between
 * runs, and a 2-thread process sometimes has both threads on one CPU for a
 * whole record: a product's GFLOP/s over a peak measured minutes earlier
 * judges the host, not the kernel. So our side of every `gemm` record (and
 * the q/k/v batches of gemm_qkv) is timed in ROUNDS rounds, and before the
 * first round and after every round a short fp32 FMA peak is measured on
 * the same pool threads the product runs on (the best of 3 bursts of about
 * 4 ms, one item per thread through iapo_pool_for: both threads on one CPU
 * shows in it as in the product). A round's percentage is its GFLOP/s
 * (median call of the round) over the higher of the two peaks around it
 * (a burst that ran on one CPU while the round did not must not flatter
 * it; a round on one CPU between two full peaks reads low, as it ran); the
 * record gives the median over the rounds, the least and the most, and
 * how many of the ROUNDS + 1 peaks read under 3/4 of threads x the
 * 1-thread peak (one_cpu_peaks: the one-CPU mode), and of those how many
 * ran all their items on one CPU (one_cpu_peaks_shared: the guest's
 * scheduler, or a worker that never started); the rest ran on distinct
 * CPUs of the guest and were slow all the same (the host). */
#define ROUNDS 5
static long adj_iters; /* one burst's iterations per thread, ~4 ms */

/* One burst's items: the sum (kept), and the CPU each item ran on. */
struct adj_burst {
	double acc[IAPO_POOL_MAX];
	int cpu[IAPO_POOL_MAX];
};

static void adj_item(void *ctx, long item, int worker)
{
	(void)worker;
	struct adj_burst *b = ctx;
	b->cpu[item] = sched_getcpu();
	b->acc[item] = bench_run_kernel(BENCH_KERNEL_FMA, adj_iters, 1.0f + 0.01f * (float)item);
}

/* fp32 FMA peak on the pool's threads now (iapo_get_threads()), GFLOP/s:
 * the best of 3 short bursts. *shared: whether the best burst's items
 * all ran on one CPU (the guest's scheduler put them there, or one thread
 * ran them all), as against distinct CPUs that were slow (the host). */
static double adj_peak(int threads, int *shared)
{
	*shared = 0;
	if (adj_iters <= 0 || threads > IAPO_POOL_MAX) return NAN;
	struct adj_burst b;
	double best = 0;
	for (int r = 0; r < 3; r++) {
		double t0 = bench_now();
		iapo_pool_for(threads, adj_item, &b);
		double g = BENCH_CHAINS * 32.0 * (double)adj_iters * threads / (bench_now() - t0) * 1e-9;
		int same = 1;
		for (int i = 0; i < threads; i++) bench_sink_ += b.acc[i], same &= b.cpu[i] == b.cpu[0];
		if (g > best) best = g, *shared = threads > 1 && same;
	}
	return best;
}

struct rounds {
	int n, one_cpu, one_cpu_shared;
	double gflops, pct_med, pct_min, pct_max, peak_med;
};

/* Times fn(ctx) (flop per call) in ROUNDS rounds between adjacent peaks
 * (see above): about `budget` seconds of calls in all, at least one call
 * a round, after one warm-up call. */
static void time_rounds(void (*fn)(const void *), const void *ctx, double flop, int threads, double budget,
			struct rounds *r)
{
	const int reps = fit_reps(time_call(fn, ctx), budget / ROUNDS, 1);
	double pk[ROUNDS + 1], g[ROUNDS], pct[ROUNDS];
	int sh[ROUNDS + 1];
	pk[0] = adj_peak(threads, &sh[0]);
	for (int i = 0; i < ROUNDS; i++) {
		g[i] = flop / median_calls(fn, ctx, reps) * 1e-9;
		pk[i + 1] = adj_peak(threads, &sh[i + 1]);
		/* the higher of the two: a burst that ran on one CPU must not
		 * flatter the round */
		pct[i] = 100.0 * g[i] / (pk[i] > pk[i + 1] ? pk[i] : pk[i + 1]);
	}
	r->n = ROUNDS;
	r->one_cpu = r->one_cpu_shared = 0;
	const double low = 0.75 * threads * peak_gflops[1];
	for (int i = 0; i <= ROUNDS; i++)
		if (threads > 1 && pk[i] < low) r->one_cpu++, r->one_cpu_shared += sh[i];
	r->gflops = bench_median(g, ROUNDS);
	r->peak_med = bench_median(pk, ROUNDS + 1);
	r->pct_min = r->pct_max = pct[0];
	for (int i = 1; i < ROUNDS; i++) {
		if (pct[i] < r->pct_min) r->pct_min = pct[i];
		if (pct[i] > r->pct_max) r->pct_max = pct[i];
	}
	r->pct_med = bench_median(pct, ROUNDS);
}

static void rec_rounds(const char *prefix, const struct rounds *r)
{
	char k[64];
#define ROUND_FIELD(name, val) (snprintf(k, sizeof k, "%s%s", prefix, name), bench_rec_num(k, (val)))
	ROUND_FIELD("pct_adj_peak", r->pct_med);
	ROUND_FIELD("pct_adj_peak_min", r->pct_min);
	ROUND_FIELD("pct_adj_peak_max", r->pct_max);
	ROUND_FIELD("adj_peak_gflops", r->peak_med);
	ROUND_FIELD("one_cpu_peaks", r->one_cpu);
	ROUND_FIELD("one_cpu_peaks_shared", r->one_cpu_shared);
#undef ROUND_FIELD
}
static double bf16_peak_gflops[3];
/* One thread's peaks by its own CPU time: what a core does while it runs,
 * the denominator for the CPU-time rates on a shared machine. */
static double fp32_peak_cpu, bf16_peak_cpu;

static double thread_cpu_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Best of 5 runs of about 0.1 s (0.03 quick) of a peak kernel on this
 * thread, GFLOP/s by thread CPU time. */
static double peak_cpu(int which, int quick)
{
	const double flop_per_iter = BENCH_CHAINS * (which == BENCH_KERNEL_FMA ? 32.0 : 64.0);
	long iters = 1L << 16;
	double t = 0;
	for (;;) {
		double c0 = thread_cpu_now();
		bench_sink_ += bench_run_kernel(which, iters, 1.0f);
		t = thread_cpu_now() - c0;
		if (t >= 0.01 || iters >= (1L << 40)) break;
		iters *= 4;
	}
	iters = (long)((double)iters * (quick ? 0.03 : 0.1) / (t > 1e-9 ? t : 1e-9)) + 1;
	double best = 0;
	for (int r = 0; r < 5; r++) {
		double c0 = thread_cpu_now();
		bench_sink_ += bench_run_kernel(which, iters, 1.0f + 0.01f * (float)r);
		double g = flop_per_iter * (double)iters / (thread_cpu_now() - c0) * 1e-9;
		if (g > best) best = g;
	}
	return best;
}

/* x W^T through iapo_sgemm_batch, W in fp32 (bf16 == 0) or bf16; with
 * its panels packed ahead when run_pack is set (gemm_wpack). */
static const iapo_gemm_wpack *run_pack;

static void run_nt(int bf16, int M, int N, int K)
{
	iapo_gemm_op o = {.transB = 1, .M = M, .N = N, .K = K, .alpha = 1.0f, .A = bufA, .lda = K,
			  .B = bf16 ? NULL : bufB, .Bh = bf16 ? bufBh : NULL, .ldb = K, .C = bufC, .ldc = N,
			  .Bp = run_pack};
	iapo_sgemm_batch(1, &o);
}

/* Median wall seconds and mean CPU seconds (all threads) of one x W^T.
 * The CPU time is the whole timed loop's over its runs, not the least of
 * one run's: the process clock sees a worker's running time only when the
 * kernel updates it (a tick or a context switch), so a short run often
 * reads as the caller's time alone (one run's least was half the true CPU
 * time at 2 threads: "cpu 1760 GFLOP/s, 168% of the peak"). Over the loop
 * the lag is one tick in ~0.6 s; the workers' spin between runs counts, as
 * it should (the process burns it). */
static void time_nt(int bf16, int M, int N, int K, int quick, double *wall, double *cpu)
{
	/* Let the threads of the previous measurement (OpenBLAS's OpenMP team,
	 * the pool's workers) finish spinning and sleep: their spin would be
	 * charged to this product's CPU time. */
	struct timespec settle = {0, 20 * 1000 * 1000};
	nanosleep(&settle, NULL);
	double t0 = bench_now();
	run_nt(bf16, M, N, K);
	double first = bench_now() - t0;
	double budget = quick ? 0.1 : 0.6;
	int reps = (int)(budget / (first > 1e-7 ? first : 1e-7));
	if (reps < 3) reps = 3;
	if (reps > 51) reps = 51;
	double v[51];
	double c0 = bench_cpu_now();
	for (int r = 0; r < reps; r++) {
		t0 = bench_now();
		run_nt(bf16, M, N, K);
		v[r] = bench_now() - t0;
	}
	*cpu = (bench_cpu_now() - c0) / reps;
	*wall = bench_median(v, reps);
}

static void bench_bf16_one(const char *shape, const char *layer, int M, int N, int K, int threads, int quick)
{
	iapo_set_threads(threads);
	double flop = 2.0 * M * N * K, w32, c32, w16, c16;
	time_nt(0, M, N, K, quick, &w32, &c32);
	int path32 = iapo_sgemm_last_path();
	time_nt(1, M, N, K, quick, &w16, &c16);
	int path16 = iapo_sgemm_last_path();
	/* the same bf16 product with the other packed kernel than the start-up
	 * verdict chose (gemm.h, iapo_sgemm_bf16_dot): what the choice gained,
	 * in the same run; CPUs with AVX512_BF16 only */
	const int pays = iapo_sgemm_bf16_dot(NULL, NULL);
	double wo = NAN, co = NAN;
	if (bench_has_avx512bf16()) {
		int old = iapo_sgemm_force_bf16_dot(!pays);
		time_nt(1, M, N, K, quick, &wo, &co);
		iapo_sgemm_force_bf16_dot(old);
	}
	double g32 = flop / w32 * 1e-9, g16 = flop / w16 * 1e-9;
	/* by CPU time: GFLOP/s per CPU-second (all threads' seconds) times the
	 * threads, against one thread's peak by CPU time times the threads;
	 * the wall rates against the peak measured with this many threads */
	double gc32 = flop / c32 * 1e-9 * threads, gc16 = flop / c16 * 1e-9 * threads;
	double pk = peak_gflops[threads < 3 ? threads : 2], pkb = bf16_peak_gflops[threads < 3 ? threads : 2];
	double pkc = fp32_peak_cpu * threads, pkbc = bf16_peak_cpu * threads;
	bench_rec_begin("gemm_bf16");
	bench_rec_str("shape", shape);
	bench_rec_str("layer", layer);
	bench_rec_str("op", "nt");
	bench_rec_int("M", M);
	bench_rec_int("N", N);
	bench_rec_int("K", K);
	bench_rec_int("threads", threads);
	bench_rec_num("bf16_gflops", g16);
	bench_rec_num("bf16_gflops_cpu", gc16);
	bench_rec_num("bf16_pct_bf16_peak", pkb > 0 ? 100.0 * g16 / pkb : NAN);
	bench_rec_num("bf16_pct_bf16_peak_cpu", pkbc > 0 ? 100.0 * gc16 / pkbc : NAN);
	bench_rec_num("fp32_gflops", g32);
	bench_rec_num("fp32_gflops_cpu", gc32);
	bench_rec_num("fp32_pct_fp32_peak", pk > 0 ? 100.0 * g32 / pk : NAN);
	bench_rec_num("fp32_pct_fp32_peak_cpu", pkc > 0 ? 100.0 * gc32 / pkc : NAN);
	bench_rec_num("speedup_bf16_vs_fp32", w32 / w16);
	bench_rec_num("speedup_bf16_vs_fp32_cpu", c32 / c16);
	bench_rec_int("bf16_path", path16);
	bench_rec_str("bf16_kernel", pays ? "vdpbf16ps" : "fp32 fma");
	bench_rec_num("bf16_other_gflops", flop / wo * 1e-9);
	bench_rec_num("speedup_bf16_vs_other", wo / w16);
	bench_rec_int("fp32_path", path32);
	bench_rec_num("loadavg_1m", bench_loadavg());
	bench_rec_end();
	bench_note("gemm_bf16 %-8s %-8s M=%-4d N=%-6d K=%-5d t=%d  bf16 %6.1f GFLOP/s (%3.0f%% of bf16 peak; cpu %6.1f, "
		   "%3.0f%%)  fp32 %6.1f (%3.0f%%; cpu %6.1f)  x%.2f (cpu x%.2f)  %s, x%.2f the other\n",
		   shape, layer, M, N, K, threads, g16, pkb > 0 ? 100.0 * g16 / pkb : 0.0, gc16,
		   pkbc > 0 ? 100.0 * gc16 / pkbc : 0.0, g32, pk > 0 ? 100.0 * g32 / pk : 0.0, gc32, w32 / w16, c32 / c16,
		   pays ? "vdpbf16ps" : "fp32 fma", wo / w16);
}

/* x W^T packed on every call against the same product reading W's panels
 * packed ahead (iapo_gemm_wpack), fp32 or bf16 W; also what one pack
 * costs (iapo_gemm_wpack_update, median of 3). */
static void bench_wpack_one(const char *layer, int M, int N, int K, int bf16, int threads, int quick)
{
	iapo_set_threads(threads);
	iapo_gemm_wpack *wp = NULL;
	if (iapo_gemm_wpack_create(&wp, N, K, bf16 ? NULL : bufB, bf16 ? bufBh : NULL, K) != IAPO_OK) {
		bench_note("gemm_wpack: %s\n", iapo_errmsg());
		return;
	}
	double pv[3];
	for (int r = 0; r < 3; r++) {
		double t0 = bench_now();
		iapo_gemm_wpack_update(wp);
		pv[r] = bench_now() - t0;
	}
	double pack_s = bench_median(pv, 3);
	double flop = 2.0 * M * N * K, w0, c0, w1, c1;
	run_pack = NULL;
	time_nt(bf16, M, N, K, quick, &w0, &c0);
	run_pack = wp;
	time_nt(bf16, M, N, K, quick, &w1, &c1);
	run_pack = NULL;
	double pk = (bf16 ? bf16_peak_gflops : peak_gflops)[threads < 3 ? threads : 2];
	bench_rec_begin("gemm_wpack");
	bench_rec_str("shape", "qwen0.5b");
	bench_rec_str("layer", layer);
	bench_rec_str("weights", bf16 ? "bf16" : "fp32");
	bench_rec_int("M", M);
	bench_rec_int("N", N);
	bench_rec_int("K", K);
	bench_rec_int("threads", threads);
	bench_rec_num("percall_seconds", w0);
	bench_rec_num("prepacked_seconds", w1);
	bench_rec_num("percall_cpu_seconds", c0);
	bench_rec_num("prepacked_cpu_seconds", c1);
	bench_rec_num("saving_pct", 100.0 * (w0 - w1) / w0);
	bench_rec_num("saving_pct_cpu", 100.0 * (c0 - c1) / c0);
	bench_rec_num("prepacked_pct_peak", pk > 0 ? 100.0 * flop / w1 * 1e-9 / pk : NAN);
	bench_rec_num("pack_seconds", pack_s);
	bench_rec_num("pack_bytes", (double)iapo_gemm_wpack_bytes(wp));
	bench_rec_num("loadavg_1m", bench_loadavg());
	bench_rec_end();
	bench_note("gemm_wpack qwen0.5b %-8s %s M=%-4d N=%-6d K=%-5d t=%d  per call %7.3f ms (cpu %7.3f), packed ahead "
		   "%7.3f ms (cpu %7.3f): %+5.1f%% (cpu %+5.1f%%), %3.0f%% of peak; one pack %.3f ms\n",
		   layer, bf16 ? "bf16" : "fp32", M, N, K, threads, w0 * 1e3, c0 * 1e3, w1 * 1e3, c1 * 1e3,
		   100.0 * (w0 - w1) / w0, 100.0 * (c0 - c1) / c0, pk > 0 ? 100.0 * flop / w1 * 1e-9 / pk : 0.0,
		   pack_s * 1e3);
	iapo_gemm_wpack_free(wp);
}

static void bench_one(const char *shape, const char *layer, const char *op, int M, int N, int K, int threads,
		      int quick)
{
	int ta = strcmp(op, "tn") == 0, tb = strcmp(op, "nt") == 0;
	iapo_set_threads(threads);
	double flop = 2.0 * M * N * K;
	struct one_product p = {0, ta, tb, M, N, K};
	struct rounds rd;
	time_rounds(run_product, &p, flop, threads, quick ? 0.05 : 0.3, &rd);
	int path = iapo_sgemm_last_path();
	double t_blas = time_one(1, ta, tb, M, N, K, quick);
	double g_ours = rd.gflops, g_blas = flop / t_blas * 1e-9, t_ours = flop / g_ours * 1e-9;
	double peak = peak_gflops[threads < 3 ? threads : 2];
	bench_rec_begin("gemm");
	bench_rec_str("shape", shape);
	bench_rec_str("layer", layer);
	bench_rec_str("op", op);
	bench_rec_int("M", M);
	bench_rec_int("N", N);
	bench_rec_int("K", K);
	bench_rec_int("threads", threads);
	bench_rec_num("iapo_gflops", g_ours);
	bench_rec_num("openblas_gflops", g_blas);
	bench_rec_num("iapo_pct_peak", peak > 0 ? 100.0 * g_ours / peak : NAN);
	rec_rounds("iapo_", &rd);
	bench_rec_int("rounds", rd.n);
	bench_rec_num("speedup_vs_openblas", t_blas / t_ours);
	if (M <= 16) bench_rec_num("iapo_weight_gb_per_s", 4.0 * N * K / t_ours * 1e-9);
	bench_rec_int("iapo_path", path);
	bench_rec_num("loadavg_1m", bench_loadavg());
	bench_rec_end();
	bench_note("gemm %-8s %-8s %s M=%-4d N=%-6d K=%-5d t=%d  iapo %6.1f GFLOP/s (%3.0f%% of adjacent peak, %.0f-%.0f; "
		   "%3.0f%% of start peak%s)  openblas %6.1f\n",
		   shape, layer, op, M, N, K, threads, g_ours, rd.pct_med, rd.pct_min, rd.pct_max,
		   peak > 0 ? 100.0 * g_ours / peak : 0.0, rd.one_cpu ? ", one-CPU peaks" : "", g_blas);
}

struct batches {
	int n;
	const iapo_gemm_op *const *ops;
	const int *cnt;
};

static void run_batches(const void *ctx)
{
	const struct batches *b = ctx;
	for (int i = 0; i < b->n; i++) iapo_sgemm_batch(b->cnt[i], b->ops[i]);
}

/* Median seconds of n batches run back to back (ops[i] has cnt[i]
 * products). */
static double time_batches(int n, const iapo_gemm_op *const *ops, const int *cnt, int quick)
{
	struct batches b = {n, ops, cnt};
	return time_median(run_batches, &b, quick);
}

/* gemm_qkv (see the header): the q/k/v projections of one layer at
 * T = 256 rows, batched as layer_forward and layer_backward batch them. */
static void bench_qkv_one(const bench_model_shape *m, int threads, int quick)
{
	const int T = 256, hd = m->C / m->NH, Q = m->NH * hd, KV = m->NKV * hd, C = m->C;
	iapo_set_threads(threads);
	/* operands carved from the run's buffers (a few MB at most) */
	float *x = bufA, *dq = x + (size_t)T * C, *dk = dq + (size_t)T * Q, *dv = dk + (size_t)T * KV;
	float *Wq = bufB, *Wk = Wq + (size_t)Q * C, *Wv = Wk + (size_t)KV * C, *bias = Wv + (size_t)KV * C;
	float *q = bufC, *k = q + (size_t)T * Q, *v = k + (size_t)T * KV, *dx = v + (size_t)T * KV;
	float *dWq = dx + (size_t)T * C, *dWk = dWq + (size_t)Q * C, *dWv = dWk + (size_t)KV * C;
#define QKV_NT(y, W, n, b) \
	((iapo_gemm_op){.transB = 1, .M = T, .N = (n), .K = C, .alpha = 1.0f, .A = x, .lda = C, .B = (W), .ldb = C, \
			.C = (y), .ldc = (n), .bias = (b)})
#define QKV_NN(dy, W, k, acc) \
	((iapo_gemm_op){.M = T, .N = C, .K = (k), .alpha = 1.0f, .beta = (acc) ? 1.0f : 0.0f, .A = (dy), .lda = (k), \
			.B = (W), .ldb = C, .C = dx, .ldc = C})
#define QKV_TN(dW, dy, n) \
	((iapo_gemm_op){.transA = 1, .M = (n), .N = C, .K = T, .alpha = 1.0f, .beta = 1.0f, .A = (dy), .lda = (n), \
			.B = x, .ldb = C, .C = (dW), .ldc = C})
	const iapo_gemm_op fwd[3] = {QKV_NT(q, Wq, Q, bias), QKV_NT(k, Wk, KV, bias + Q), QKV_NT(v, Wv, KV, bias + Q + KV)};
	const iapo_gemm_op bq[2] = {QKV_NN(dq, Wq, Q, 0), QKV_TN(dWq, dq, Q)};
	const iapo_gemm_op bk[2] = {QKV_NN(dk, Wk, KV, 1), QKV_TN(dWk, dk, KV)};
	const iapo_gemm_op bv[2] = {QKV_NN(dv, Wv, KV, 1), QKV_TN(dWv, dv, KV)};
#undef QKV_NT
#undef QKV_NN
#undef QKV_TN
	const iapo_gemm_op *f1[1] = {fwd}, *b3[3] = {bq, bk, bv}, *b1q[1] = {bq}, *b1k[1] = {bk}, *b1v[1] = {bv};
	const int c3[1] = {3}, c222[3] = {2, 2, 2}, c2[1] = {2};
	double ff = 2.0 * T * (Q + 2.0 * KV) * C, fq = 2.0 * 2.0 * T * Q * C, fkv = 2.0 * 2.0 * T * KV * C;
	struct batches bf = {1, f1, c3}, bb = {3, b3, c222};
	struct rounds rf, rb;
	time_rounds(run_batches, &bf, ff, threads, quick ? 0.05 : 0.3, &rf);
	time_rounds(run_batches, &bb, 2 * ff, threads, quick ? 0.05 : 0.3, &rb);
	double tq = time_batches(1, b1q, c2, quick), tk = time_batches(1, b1k, c2, quick),
	       tv = time_batches(1, b1v, c2, quick);
	double pk = peak_gflops[threads < 3 ? threads : 2];
	double gf = rf.gflops, gb = rb.gflops, tf = ff / gf * 1e-9, tb = 2 * ff / gb * 1e-9;
	bench_rec_begin("gemm_qkv");
	bench_rec_str("shape", m->name);
	bench_rec_int("M", T);
	bench_rec_int("q_N", Q);
	bench_rec_int("kv_N", KV);
	bench_rec_int("K", C);
	bench_rec_int("threads", threads);
	bench_rec_num("fwd_seconds", tf);
	bench_rec_num("fwd_gflops", gf);
	bench_rec_num("fwd_pct_peak", pk > 0 ? 100.0 * gf / pk : NAN);
	bench_rec_num("bwd_seconds", tb);
	bench_rec_num("bwd_gflops", gb);
	bench_rec_num("bwd_pct_peak", pk > 0 ? 100.0 * gb / pk : NAN);
	rec_rounds("fwd_", &rf);
	rec_rounds("bwd_", &rb);
	bench_rec_int("rounds", rf.n);
	bench_rec_num("bwd_q_gflops", fq / tq * 1e-9);
	bench_rec_num("bwd_k_gflops", fkv / tk * 1e-9);
	bench_rec_num("bwd_v_gflops", fkv / tv * 1e-9);
	bench_rec_num("loadavg_1m", bench_loadavg());
	bench_rec_end();
	bench_note("gemm_qkv %-8s M=%d q N=%d kv N=%d K=%d t=%d  fwd batch %6.1f GFLOP/s (%3.0f%% of adjacent peak, "
		   "%.0f-%.0f)  bwd batches %6.1f (%3.0f%%, %.0f-%.0f; q %6.1f, k %6.1f, v %6.1f)\n",
		   m->name, T, Q, KV, C, threads, gf, rf.pct_med, rf.pct_min, rf.pct_max, gb, rb.pct_med, rb.pct_min,
		   rb.pct_max, fq / tq * 1e-9, fkv / tk * 1e-9, fkv / tv * 1e-9);
}

/* One decoding step's products at qwen0.5b (decode_stream in the header):
 * weights W (fp32) or Wh (bf16) laid out matrix after matrix, A (8 x 4864),
 * C (8 x 151936). Returns the step's bytes of weights. */
static double stream_step(const float *W, const uint16_t *Wh, const float *A, float *C)
{
	const bench_model_shape *m = &BENCH_SHAPES[2];
	const int hd = m->C / m->NH, Q = m->NH * hd, KV = m->NKV * hd, Cm = m->C, F = m->F;
	size_t off = 0;
	double bytes = 0;
#define STREAM_OP(n, k, c) \
	((iapo_gemm_op){.transB = 1, .M = 8, .N = (n), .K = (k), .alpha = 1.0f, .A = A, .lda = (k), \
			.B = Wh ? NULL : W + off, .Bh = Wh ? Wh + off : NULL, .ldb = (k), .C = (c), .ldc = (n)})
#define STREAM_NEXT(n, k) (off += (size_t)(n) * (size_t)(k), bytes += (double)(n) * (k) * (Wh ? 2 : 4))
	for (int l = 0; l < m->L; l++) {
		iapo_gemm_op qkv[3], gu[2], o, d;
		qkv[0] = STREAM_OP(Q, Cm, C);
		STREAM_NEXT(Q, Cm);
		qkv[1] = STREAM_OP(KV, Cm, C + 8 * Q);
		STREAM_NEXT(KV, Cm);
		qkv[2] = STREAM_OP(KV, Cm, C + 8 * (Q + KV));
		STREAM_NEXT(KV, Cm);
		iapo_sgemm_batch(3, qkv);
		o = STREAM_OP(Cm, Q, C);
		STREAM_NEXT(Cm, Q);
		iapo_sgemm_batch(1, &o);
		gu[0] = STREAM_OP(F, Cm, C);
		STREAM_NEXT(F, Cm);
		gu[1] = STREAM_OP(F, Cm, C + 8 * F);
		STREAM_NEXT(F, Cm);
		iapo_sgemm_batch(2, gu);
		d = STREAM_OP(Cm, F, C);
		STREAM_NEXT(Cm, F);
		iapo_sgemm_batch(1, &d);
	}
	iapo_gemm_op h = STREAM_OP(m->V, Cm, C);
	STREAM_NEXT(m->V, Cm);
	iapo_sgemm_batch(1, &h);
#undef STREAM_OP
#undef STREAM_NEXT
	return bytes;
}

static void bench_stream(int threads, int quick)
{
	const bench_model_shape *m = &BENCH_SHAPES[2];
	const int hd = m->C / m->NH, Q = m->NH * hd, KV = m->NKV * hd;
	const size_t n = (size_t)m->L * ((size_t)2 * Q * m->C + (size_t)2 * KV * m->C + (size_t)3 * m->C * m->F) +
			 (size_t)m->V * m->C;
	float *W = iapo_alloc_aligned(n * sizeof(float));
	uint16_t *Wh = iapo_alloc_aligned(n * sizeof(uint16_t));
	float *A = iapo_alloc_aligned(sizeof(float) * 8 * (size_t)m->F);
	float *C = iapo_alloc_aligned(sizeof(float) * 8 * 2 * (size_t)(m->V > m->F ? m->V : m->F));
	if (!W || !Wh || !A || !C) {
		bench_note("gemm: decode_stream: out of memory\n");
		iapo_free_aligned(W);
		iapo_free_aligned(Wh);
		iapo_free_aligned(A);
		iapo_free_aligned(C);
		return;
	}
	/* values of a weight matrix's size (a cheap hash; the rate does not
	 * depend on them), and the bf16 copy */
	for (size_t i = 0; i < n; i++) W[i] = (float)((uint32_t)(i * 2654435761u) >> 22) * 1e-5f - 0.005f;
	iapo_f32_to_bf16(Wh, W, n);
	fill(A, 8 * (size_t)m->F, 1.0f, 3);
	int tl[2] = {1, threads}, ntl = threads > 1 ? 2 : 1;
	for (int ti = 0; ti < ntl; ti++) {
		iapo_set_threads(tl[ti]);
		bench_bw bw;
		double read = bench_mem_read_bw((size_t)1 << 30, tl[ti], quick ? 2 : 4, &bw) ? bw.best_gbs : NAN;
		for (int bf = 0; bf <= 1; bf++) {
			const int reps = quick ? 3 : 7;
			double v[7], bytes = stream_step(W, bf ? Wh : NULL, A, C); /* warm-up */
			/* CPU time over the whole loop (see time_nt) */
			double c0 = bench_cpu_now();
			for (int r = 0; r < reps; r++) {
				double t0 = bench_now();
				stream_step(W, bf ? Wh : NULL, A, C);
				v[r] = bench_now() - t0;
			}
			double cpu_mean = (bench_cpu_now() - c0) / reps;
			double med = bench_median(v, reps), gbs = bytes / med * 1e-9;
			double gbs_cpu = bytes / cpu_mean * 1e-9 * tl[ti];
			bench_rec_begin("decode_stream");
			bench_rec_str("shape", m->name);
			bench_rec_str("weights", bf ? "bf16" : "fp32");
			bench_rec_int("M", 8);
			bench_rec_int("threads", tl[ti]);
			bench_rec_num("weight_bytes", bytes);
			bench_rec_num("step_seconds", med);
			bench_rec_num("gb_per_s", gbs);
			bench_rec_num("gb_per_s_cpu", gbs_cpu);
			bench_rec_num("mem_read_gb_per_s", read);
			bench_rec_num("pct_mem_read", 100.0 * gbs / read);
			bench_rec_num("gemv_tokens_per_s", 8.0 / med);
			bench_rec_num("loadavg_1m", bench_loadavg());
			bench_rec_end();
			bench_note("decode_stream qwen0.5b %s t=%d: %.0f MB/step in %.1f ms: %.1f GB/s (cpu %.1f), plain read "
				   "%.1f GB/s (%.0f%%), %.0f tokens/s of products alone\n",
				   bf ? "bf16" : "fp32", tl[ti], bytes * 1e-6, med * 1e3, gbs, gbs_cpu, read,
				   100.0 * gbs / read, 8.0 / med);
		}
	}
	iapo_free_aligned(W);
	iapo_free_aligned(Wh);
	iapo_free_aligned(A);
	iapo_free_aligned(C);
}

static void read_cache(char *buf, size_t n)
{
	size_t used = 0;
	buf[0] = 0;
	for (int i = 0; i < 4; i++) {
		char path[128], level[16] = "", type[32] = "", size[32] = "";
		FILE *f;
		snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/level", i);
		if (!(f = fopen(path, "r"))) break;
		if (!fgets(level, sizeof level, f)) level[0] = 0;
		fclose(f);
		snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/type", i);
		if ((f = fopen(path, "r"))) {
			if (!fgets(type, sizeof type, f)) type[0] = 0;
			fclose(f);
		}
		snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/size", i);
		if ((f = fopen(path, "r"))) {
			if (!fgets(size, sizeof size, f)) size[0] = 0;
			fclose(f);
		}
		level[strcspn(level, "\n")] = type[strcspn(type, "\n")] = size[strcspn(size, "\n")] = 0;
		int w = snprintf(buf + used, n - used, "%sL%s %s %s", used ? ", " : "", level, type, size);
		if (w < 0 || (size_t)w >= n - used) break;
		used += (size_t)w;
	}
}

static int usage(void)
{
	fprintf(stderr, "usage: gemm [--threads N] [--quick] [--shape tiny|small|qwen0.5b|decode|bf16|stream|wpack|all]\n");
	return 2;
}

int main(int argc, char **argv)
{
	int threads = omp_get_num_procs(), quick = 0;
	const char *only = "all";
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
			if (!bench_parse_pos_int(argv[++i], &threads)) return usage();
		} else if (strcmp(argv[i], "--quick") == 0) {
			quick = 1;
		} else if (strcmp(argv[i], "--shape") == 0 && i + 1 < argc) {
			only = argv[++i];
		} else {
			return usage();
		}
	}
	int found = strcmp(only, "all") == 0 || strcmp(only, "decode") == 0 || strcmp(only, "bf16") == 0 ||
		    strcmp(only, "stream") == 0 || strcmp(only, "wpack") == 0;
	for (int s = 0; s < BENCH_NSHAPES; s++) found |= strcmp(only, BENCH_SHAPES[s].name) == 0;
	if (!found) return usage();

	char caches[256];
	read_cache(caches, sizeof caches);
	bench_rec_begin("gemm_machine");
	bench_rec_int("procs", omp_get_num_procs());
	bench_rec_str("caches", caches);
	bench_rec_str("openblas_corename", openblas_get_corename());
	bench_rec_str("env_openblas_coretype", bench_env_coretype());
	bench_rec_bf16_dot();
	bench_rec_end();
	bench_note("gemm: caches %s; OpenBLAS core %s (OPENBLAS_CORETYPE=%s)\n", caches, openblas_get_corename(),
		   bench_env_coretype());

	int tl[2] = {1, threads}, ntl = threads > 1 ? 2 : 1;
	if (bench_has_avx512f()) {
		fp32_peak_cpu = peak_cpu(BENCH_KERNEL_FMA, quick);
		if (bench_has_avx512bf16() && BENCH_HAVE_BF16_KERNEL) bf16_peak_cpu = peak_cpu(BENCH_KERNEL_BF16, quick);
		bench_rec_begin("peak_cpu");
		bench_rec_num("fp32_gflops", fp32_peak_cpu);
		bench_rec_num("bf16_gflops", bf16_peak_cpu);
		bench_rec_end();
		bench_note("gemm: one thread by its CPU time: fp32 FMA peak %.1f, bf16 dot peak %.1f GFLOP/s\n",
			   fp32_peak_cpu, bf16_peak_cpu);
	}
	for (int i = 0; i < ntl; i++)
		for (int bf = 0; bf <= bench_has_avx512bf16(); bf++) {
			double g = bf ? bench_bf16_peak(tl[i], quick) : bench_fp32_peak(tl[i], quick);
			(bf ? bf16_peak_gflops : peak_gflops)[tl[i] < 3 ? tl[i] : 2] = g;
			bench_rec_begin(bf ? "bf16_dot_peak" : "fp32_fma_peak");
			bench_rec_int("threads", tl[i]);
			bench_rec_num("gflops", g);
			bench_rec_end();
			bench_note("gemm: %s peak, %d thread(s): %.1f GFLOP/s\n", bf ? "bf16 dot" : "fp32 FMA", tl[i], g);
		}

	/* adjacent peaks: bursts of ~4 ms on one thread (the 1-thread peak's
	 * rate; 16 chains x 16 lanes x 2 FLOP an iteration) */
	if (bench_has_avx512f() && peak_gflops[1] > 0) adj_iters = (long)(0.004 * peak_gflops[1] * 1e9 / (BENCH_CHAINS * 32.0));

	/* Largest operands: qwen0.5b's lm head at 256 tokens, its output at
	 * 1024 (gemm_bf16). */
	size_t big = (size_t)151936 * 896, bigc = (size_t)151936 * 1024;
	bufA = iapo_alloc_aligned(big * sizeof(float));
	bufB = iapo_alloc_aligned(big * sizeof(float));
	bufC = iapo_alloc_aligned(bigc * sizeof(float));
	bufBh = iapo_alloc_aligned(big * sizeof(uint16_t));
	if (!bufA || !bufB || !bufC || !bufBh) {
		bench_note("gemm: out of memory\n");
		return 1;
	}
	fill(bufA, big, 1.0f, 1);
	fill(bufB, big, 0.1f, 2);
	iapo_f32_to_bf16(bufBh, bufB, big);

	shape_layer layers[NLAYERS];
	for (int s = 0; s < BENCH_NSHAPES; s++) {
		const bench_model_shape *m = &BENCH_SHAPES[s];
		if (strcmp(only, "all") && strcmp(only, m->name)) continue;
		shape_layers(m, layers);
		const int T = 256;
		for (int l = 0; l < NLAYERS; l++)
			for (int i = 0; i < ntl; i++) {
				int o = layers[l].out, in = layers[l].in;
				bench_one(m->name, layers[l].name, "nt", T, o, in, tl[i], quick);
				bench_one(m->name, layers[l].name, "nn", T, in, o, tl[i], quick);
				bench_one(m->name, layers[l].name, "tn", o, in, T, tl[i], quick);
			}
		for (int i = 0; i < ntl; i++) bench_qkv_one(m, tl[i], quick);
	}
	for (int s = 0; s < BENCH_NSHAPES; s++) {
		const bench_model_shape *m = &BENCH_SHAPES[s];
		if (strcmp(only, "all") && strcmp(only, "bf16") && strcmp(only, m->name)) continue;
		shape_layers(m, layers);
		static const int Ms[] = {256, 1024};
		for (int l = 0; l < NLAYERS; l++)
			for (int mi = 0; mi < 2; mi++)
				for (int i = 0; i < ntl; i++)
					bench_bf16_one(m->name, layers[l].name, Ms[mi], layers[l].out, layers[l].in, tl[i],
						       quick);
	}
	if (strcmp(only, "all") == 0 || strcmp(only, "wpack") == 0 || strcmp(only, "qwen0.5b") == 0) {
		/* the information pass's chunks (512 rows) and a training
		 * forward's lm_head (256) */
		shape_layers(&BENCH_SHAPES[2], layers);
		for (int bf = 0; bf <= 1; bf++)
			for (int l = 0; l < NLAYERS; l++)
				for (int i = 0; i < ntl; i++) {
					if (strcmp(layers[l].name, "o") == 0) continue; /* q's shape at qwen0.5b */
					bench_wpack_one(layers[l].name, 512, layers[l].out, layers[l].in, bf, tl[i], quick);
					if (l == NLAYERS - 1)
						bench_wpack_one(layers[l].name, 256, layers[l].out, layers[l].in, bf, tl[i],
								quick);
				}
	}
	if (strcmp(only, "all") == 0 || strcmp(only, "decode") == 0) {
		shape_layers(&BENCH_SHAPES[2], layers); /* qwen0.5b */
		static const int Ms[] = {1, 8, 16};
		for (int l = 0; l < NLAYERS; l++) {
			if (strcmp(layers[l].name, "o") == 0) continue; /* q's shape at qwen0.5b */
			for (int mi = 0; mi < 3; mi++)
				for (int i = 0; i < ntl; i++)
					bench_one("decode", layers[l].name, "nt", Ms[mi], layers[l].out, layers[l].in, tl[i],
						  quick);
		}
	}
	iapo_free_aligned(bufA);
	iapo_free_aligned(bufB);
	iapo_free_aligned(bufC);
	iapo_free_aligned(bufBh);
	/* after the others' buffers are gone: 3 GB of its own */
	if (strcmp(only, "all") == 0 || strcmp(only, "stream") == 0) bench_stream(threads, quick);
	return 0;
}
