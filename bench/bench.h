/*
 * bench.h — what the benchmark programs (bench/peak.c, bench/model.c) share:
 * a monotonic clock, medians, a JSON-lines writer, option parsing helpers,
 * the machine's measured limits (fp32 FMA peak, bf16 dot-product peak, memory
 * read bandwidth) so that every program can put its own numbers next to
 * limits measured in the same run, and the Qwen2 model shapes that
 * bench/model.c and bench/info.c measure.
 *
 * Header-only (static inline) because each bench program is linked as its own
 * program against libiapo; the limits are benchmark code, not library code.
 *
 * The peak kernels use AVX-512 intrinsics under
 * __attribute__((target(...))) and are only called after
 * __builtin_cpu_supports() says the CPU has the instructions, so the file
 * builds with any -march and runs on any x86-64; elsewhere the records say
 * "supported": false. Left out: AMX, AVX2-only peaks, cache bandwidths,
 * latency.
 */
#ifndef IAPO_BENCH_BENCH_H
#define IAPO_BENCH_BENCH_H

#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define BENCH_X86 1
#else
#define BENCH_X86 0
#endif

#include "core/mem.h"
#include "kernels/gemm.h"
#include "model/model.h"

/* ---------------------------------------------------------------- clock */

static inline double bench_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* CPU seconds this process has run (all its threads): on a shared machine
 * the time it was not descheduled. */
static inline double bench_cpu_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static inline int bench_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* Median of n values (sorts v in place); 0 when n == 0. */
static inline double bench_median(double *v, int n)
{
	if (n <= 0) return 0.0;
	qsort(v, (size_t)n, sizeof *v, bench_cmp_double);
	return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* ---------------------------------------------------------- JSON lines
 * One record per line on stdout, built field by field:
 *   bench_rec_begin("fp32_fma_peak"); bench_rec_int("threads", 2);
 *   bench_rec_num("gflops", 310.5); bench_rec_end();
 * Numbers that are not finite are written as null (JSON has no NaN). */

static int bench_rec_nfields_;

static inline void bench_json_str(const char *s)
{
	putchar('"');
	for (; s && *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') printf("\\%c", c);
		else if (c < 0x20) printf("\\u%04x", c);
		else putchar(c);
	}
	putchar('"');
}

static inline void bench_rec_key(const char *k)
{
	if (bench_rec_nfields_++) putchar(',');
	bench_json_str(k);
	putchar(':');
}

static inline void bench_rec_begin(const char *bench)
{
	bench_rec_nfields_ = 0;
	putchar('{');
	bench_rec_key("bench");
	bench_json_str(bench);
}

static inline void bench_rec_str(const char *k, const char *v)
{
	bench_rec_key(k);
	if (v) bench_json_str(v);
	else fputs("null", stdout);
}

static inline void bench_rec_int(const char *k, long long v)
{
	bench_rec_key(k);
	printf("%lld", v);
}

static inline void bench_rec_bool(const char *k, int v)
{
	bench_rec_key(k);
	fputs(v ? "true" : "false", stdout);
}

/* Four significant digits are plenty for timings that vary by a few %. */
static inline void bench_rec_num(const char *k, double v)
{
	bench_rec_key(k);
	if (isfinite(v)) printf("%.4g", v);
	else fputs("null", stdout);
}

static inline void bench_rec_end(void)
{
	fputs("}\n", stdout);
	fflush(stdout);
}

/* Human commentary goes to stderr so stdout stays machine-readable. */
static inline void bench_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline void bench_note(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fflush(stderr);
}

/* ------------------------------------------------------------- options */

/* Parses a positive int option value; returns 0 when it is not one. */
static inline int bench_parse_pos_int(const char *s, int *out)
{
	char *end = NULL;
	long v = s ? strtol(s, &end, 10) : 0;
	if (!s || end == s || *end || v <= 0 || v > 1 << 20) return 0;
	*out = (int)v;
	return 1;
}

/* Value of OPENBLAS_CORETYPE in the environment, or "" (reported, never set:
 * the benchmarks measure the environment as the product will see it). */
static inline const char *bench_env_coretype(void)
{
	const char *s = getenv("OPENBLAS_CORETYPE");
	return s ? s : "";
}

/* 1-minute load average before a run, or -1: on a shared machine a number
 * measured while other processes ran is lower, and the record says so. */
static inline double bench_loadavg(void)
{
	double l[1];
	return getloadavg(l, 1) == 1 ? l[0] : -1.0;
}

/* Which bf16 kernels the packed GEMM path runs (gemm.h, iapo_sgemm_bf16_dot:
 * the start-up probe's verdict and ratio, and IAPO_BF16_DOT as read), as
 * fields of the current machine record. */
static inline void bench_rec_bf16_dot(void)
{
	double ratio;
	int mode, on = iapo_sgemm_bf16_dot(&ratio, &mode);
	bench_rec_bool("bf16_dot_packed", on);
	bench_rec_num("bf16_dot_ratio", ratio);
	bench_rec_str("bf16_dot_env", mode == IAPO_BF16_DOT_ON ? "on" : mode == IAPO_BF16_DOT_OFF ? "off" : "auto");
}

/* ------------------------------------------------------- machine limits */

static inline int bench_has_avx512f(void)
{
#if BENCH_X86
	__builtin_cpu_init();
	return __builtin_cpu_supports("avx512f");
#else
	return 0;
#endif
}

static inline int bench_has_avx512bf16(void)
{
#if BENCH_X86 && defined(__GNUC__) && (__GNUC__ >= 12 || defined(__clang__))
	__builtin_cpu_init();
	return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bf16");
#else
	return 0;
#endif
}

/* The number of independent accumulator chains per thread. Two pipes each
 * start one instruction per cycle on current AVX-512 cores; an FMA has a
 * latency of 4 cycles (8 chains suffice) but vdpbf16ps has 6 (Zen 5): 8
 * chains gave 360 GFLOP/s bf16 on one core here, 12 gave 490, 16 gave 540.
 * 16 accumulators plus the two operands still fit the 32 zmm registers. The
 * `#pragma GCC unroll 16` in the kernels must match. */
#define BENCH_CHAINS 16

#if BENCH_X86
/* iters x 16 FMAs on 16 floats: 512 FLOP per iteration. c = c*a + b with
 * a < 1 converges to b/(1-a), so values stay normal (no denormal slow path). */
__attribute__((target("avx512f"), noinline))
static double bench_fma_kernel(long iters, float seed)
{
	const __m512 a = _mm512_set1_ps(0.999f), b = _mm512_set1_ps(1e-3f * seed);
	__m512 c[BENCH_CHAINS];
	for (int j = 0; j < BENCH_CHAINS; j++) c[j] = _mm512_set1_ps(seed + 0.1f * (float)j);
	for (long i = 0; i < iters; i++) {
#pragma GCC unroll 16
		for (int j = 0; j < BENCH_CHAINS; j++) c[j] = _mm512_fmadd_ps(c[j], a, b);
	}
	__m512 s = c[0];
	for (int j = 1; j < BENCH_CHAINS; j++) s = _mm512_add_ps(s, c[j]);
	return (double)_mm512_reduce_add_ps(s);
}
#endif

#if BENCH_X86 && defined(__GNUC__) && (__GNUC__ >= 12 || defined(__clang__))
#define BENCH_HAVE_BF16_KERNEL 1
/* iters x 16 vdpbf16ps on 32 bf16 pairs: each adds 2 products into each of
 * 16 fp32 lanes = 64 FLOP, so 1024 FLOP per iteration. Small products keep
 * the accumulators growing slowly and far from overflow. */
__attribute__((target("avx512f,avx512bf16"), noinline))
static double bench_bf16_kernel(long iters, float seed)
{
	const __m512 fa = _mm512_set1_ps(1e-3f * seed), fb = _mm512_set1_ps(0.5f);
	const __m512bh a = _mm512_cvtne2ps_pbh(fa, fa), b = _mm512_cvtne2ps_pbh(fb, fb);
	__m512 c[BENCH_CHAINS];
	for (int j = 0; j < BENCH_CHAINS; j++) c[j] = _mm512_set1_ps(seed + 0.1f * (float)j);
	for (long i = 0; i < iters; i++) {
#pragma GCC unroll 16
		for (int j = 0; j < BENCH_CHAINS; j++) c[j] = _mm512_dpbf16_ps(c[j], a, b);
	}
	__m512 s = c[0];
	for (int j = 1; j < BENCH_CHAINS; j++) s = _mm512_add_ps(s, c[j]);
	return (double)_mm512_reduce_add_ps(s);
}
#else
#define BENCH_HAVE_BF16_KERNEL 0
#endif

/* Keeps kernels' results alive so the compiler cannot drop the loops. */
static volatile double bench_sink_;

enum { BENCH_KERNEL_FMA = 0, BENCH_KERNEL_BF16 = 1 };

static inline double bench_run_kernel(int which, long iters, float seed)
{
#if BENCH_X86
	if (which == BENCH_KERNEL_FMA) return bench_fma_kernel(iters, seed);
#if BENCH_HAVE_BF16_KERNEL
	if (which == BENCH_KERNEL_BF16) return bench_bf16_kernel(iters, seed);
#endif
#endif
	(void)which; (void)iters; (void)seed;
	return 0.0;
}

/* Seconds for every one of `threads` threads to run `iters` iterations. */
static inline double bench_kernel_time(int which, long iters, int threads)
{
	double acc = 0.0;
	double t0 = bench_now();
#pragma omp parallel num_threads(threads) reduction(+ : acc)
	acc += bench_run_kernel(which, iters, 1.0f + 0.01f * (float)omp_get_thread_num());
	double t = bench_now() - t0;
	bench_sink_ += acc;
	return t;
}

/* Best GFLOP/s over `reps` runs of about `seconds` each, `threads` threads.
 * The best, not the median: a peak is what the hardware can do, and the
 * slow runs are the ones another process or the hypervisor interrupted;
 * many short runs give a shared machine more chances to be quiet in one. */
static inline double bench_kernel_gflops(int which, int threads, double seconds, int reps)
{
	const double flop_per_iter = BENCH_CHAINS * (which == BENCH_KERNEL_FMA ? 32.0 : 64.0);
	long iters = 1L << 16;
	bench_kernel_time(which, iters, threads); /* wake the threads, raise clocks */
	for (;;) {                                /* calibrate to ~seconds per run */
		double t = bench_kernel_time(which, iters, threads);
		if (t >= 0.02 || iters >= (1L << 40)) {
			double scale = seconds / (t > 1e-9 ? t : 1e-9);
			if (scale > 1.0) iters = (long)((double)iters * scale);
			break;
		}
		iters *= 8;
	}
	double best = 0.0;
	for (int r = 0; r < reps; r++) {
		double t = bench_kernel_time(which, iters, threads);
		double g = flop_per_iter * (double)iters * threads / t * 1e-9;
		if (g > best) best = g;
	}
	return best;
}

/* fp32 FMA peak in GFLOP/s (0 when AVX-512F is missing). */
static inline double bench_fp32_peak(int threads, int quick)
{
	if (!bench_has_avx512f()) return 0.0;
	return bench_kernel_gflops(BENCH_KERNEL_FMA, threads, quick ? 0.04 : 0.1, quick ? 6 : 10);
}

/* bf16 dot-product peak in GFLOP/s (0 when AVX512_BF16 is missing). */
static inline double bench_bf16_peak(int threads, int quick)
{
	if (!bench_has_avx512bf16() || !BENCH_HAVE_BF16_KERNEL) return 0.0;
	return bench_kernel_gflops(BENCH_KERNEL_BF16, threads, quick ? 0.04 : 0.1, quick ? 6 : 10);
}

/* Sum of n floats (n a multiple of 64), four independent vector sums so the
 * add latency never limits the load rate. */
#if BENCH_X86
__attribute__((target("avx512f")))
static double bench_sum_avx512(const float *x, size_t n)
{
	__m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
	for (size_t i = 0; i < n; i += 64) {
		s0 = _mm512_add_ps(s0, _mm512_load_ps(x + i));
		s1 = _mm512_add_ps(s1, _mm512_load_ps(x + i + 16));
		s2 = _mm512_add_ps(s2, _mm512_load_ps(x + i + 32));
		s3 = _mm512_add_ps(s3, _mm512_load_ps(x + i + 48));
	}
	return (double)_mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}
#endif

static inline double bench_sum_plain(const float *x, size_t n)
{
	float s[8] = {0};
	for (size_t i = 0; i < n; i += 8)
		for (int j = 0; j < 8; j++) s[j] += x[i + j];
	double t = 0.0;
	for (int j = 0; j < 8; j++) t += s[j];
	return t;
}

typedef struct {
	double best_gbs;   /* 1e9 bytes per second, best pass */
	double median_gbs; /* median pass */
	size_t bytes;
	int passes;
	const char *kernel; /* "avx512" or "plain" */
} bench_bw;

#define BENCH_BW_MAX_PASSES 16

/* Read bandwidth of main memory: every thread sums its own contiguous slice
 * of a `bytes` buffer (far larger than the caches), allocated and written
 * once before timing so no page fault is timed. Returns 0 (and best_gbs 0)
 * when the buffer cannot be allocated. */
static inline int bench_mem_read_bw(size_t bytes, int threads, int passes, bench_bw *out)
{
	memset(out, 0, sizeof *out);
	if (passes > BENCH_BW_MAX_PASSES) passes = BENCH_BW_MAX_PASSES;
	const size_t chunk = 64;                              /* floats per step */
	size_t n = bytes / sizeof(float) / (chunk * (size_t)threads) * (chunk * (size_t)threads);
	float *x = iapo_alloc_aligned(n * sizeof(float));
	if (!x) return 0;
	const size_t per = n / (size_t)threads;
	const int avx = bench_has_avx512f();
#pragma omp parallel num_threads(threads)
	{
		size_t lo = per * (size_t)omp_get_thread_num();
		for (size_t i = lo; i < lo + per; i++) x[i] = (float)(i & 1023) * 1e-3f;
	}
	double v[BENCH_BW_MAX_PASSES];
	double acc = 0.0;
	for (int p = 0; p < passes + 1; p++) { /* pass 0 is the warm-up */
		double t0 = bench_now();
#pragma omp parallel num_threads(threads) reduction(+ : acc)
		{
			const float *xs = x + per * (size_t)omp_get_thread_num();
#if BENCH_X86
			if (avx) acc += bench_sum_avx512(xs, per);
			else acc += bench_sum_plain(xs, per);
#else
			acc += bench_sum_plain(xs, per);
#endif
		}
		double t = bench_now() - t0;
		if (p > 0) v[p - 1] = (double)(n * sizeof(float)) / t * 1e-9;
	}
	bench_sink_ += acc;
	iapo_free_aligned(x);
	double best = 0.0;
	for (int p = 0; p < passes; p++) if (v[p] > best) best = v[p];
	out->best_gbs = best;
	out->median_gbs = bench_median(v, passes);
	out->bytes = n * sizeof(float);
	out->passes = passes;
	out->kernel = avx ? "avx512" : "plain";
	return 1;
}


/* --------------------------------------------------------- model shapes */

typedef struct {
	const char *name;
	int V, C, L, NH, NKV, F;
} bench_model_shape;

static const bench_model_shape BENCH_SHAPES[] = {
	{"tiny", 512, 256, 4, 4, 2, 768},
	{"small", 8192, 512, 8, 8, 4, 1536},
	{"qwen0.5b", 151936, 896, 24, 14, 2, 4864},
};
#define BENCH_NSHAPES ((int)(sizeof BENCH_SHAPES / sizeof BENCH_SHAPES[0]))

/* Qwen2 as Qwen2.5-0.5B configures it: tied embeddings, q/k/v bias. The
 * last vocabulary id is the EOS (random weights: never sampled in practice). */
static inline void bench_qwen2_config(const bench_model_shape *s, iapo_config *c)
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
	c->qk_norm = 0;
	c->rope_kind = IAPO_ROPE_DEFAULT;
	c->bos_id = -1;
	c->eos_ids[0] = s->V - 1;
	c->n_eos = 1;
	c->pad_id = -1;
	snprintf(c->torch_dtype, sizeof c->torch_dtype, "float32");
}

#endif
