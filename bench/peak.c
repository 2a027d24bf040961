/*
 * peak.c — the machine's measured limits, and OpenBLAS's sgemm on the matrix
 * shapes of the models we train, as JSON lines on stdout:
 *
 *   machine         CPU, core count, thread count, OpenBLAS build and core type
 *   fp32_fma_peak   vfmadd231ps on zmm, 16 independent chains per thread,
 *                   one thread and all threads
 *   bf16_dot_peak   vdpbf16ps on zmm (AVX512_BF16), 64 FLOP per instruction
 *   amx_bf16_peak   tdpbf16ps on tiles (AMX-BF16), 16384 FLOP per instruction,
 *                   4 accumulator tiles, operands already in tiles
 *   mem_read_bw     sum over a 1 GiB buffer, all threads
 *   sgemm           cblas_sgemm for each linear layer of the tiny, small and
 *                   qwen0.5b shapes at M = 256 tokens: the forward product
 *                   y = x W^T and the two backward ones dx = dy W, dW = dy^T x
 *
 * The sgemm numbers are the baseline our own kernels will be compared with.
 * OpenBLAS is measured under the environment it is given: this machine sets
 * OPENBLAS_CORETYPE=Haswell (AVX2 kernels), which the records report rather
 * than change. Left out: anything the model benchmark (bench/model.c) covers,
 * cache bandwidths, single-thread bandwidth.
 *
 * Usage: peak [--threads N] [--quick] [--shape tiny|small|qwen0.5b|all]
 *             [--no-sgemm]
 */
#include <cblas.h>

#include "bench.h"
#if BENCH_X86
#include <sys/syscall.h>
#include <unistd.h>
#endif
#include "core/mem.h"
#include "core/rng.h"

static const char *cpu_model(char *buf, size_t n)
{
	snprintf(buf, n, "unknown");
	FILE *f = fopen("/proc/cpuinfo", "r");
	if (!f) return buf;
	char line[512];
	while (fgets(line, sizeof line, f)) {
		if (strncmp(line, "model name", 10) == 0) {
			char *p = strchr(line, ':');
			if (p) {
				p++;
				while (*p == ' ' || *p == '\t') p++;
				p[strcspn(p, "\n")] = 0;
				snprintf(buf, n, "%s", p);
			}
			break;
		}
	}
	fclose(f);
	return buf;
}

/* one: the one-thread result of the same kernel; an all-threads result under
 * 3/4 of threads x one means another process held a core ("contended"). */
static void emit_peak(const char *bench, int supported, int threads, double gflops, double one,
		      const char *instr, int flop_per_instr)
{
	bench_rec_begin(bench);
	bench_rec_bool("supported", supported);
	bench_rec_str("instruction", instr);
	bench_rec_int("flop_per_instruction", flop_per_instr);
	bench_rec_int("chains_per_thread", BENCH_CHAINS);
	bench_rec_int("threads", threads);
	if (supported) bench_rec_num("gflops", gflops);
	else bench_rec_str("gflops", NULL);
	if (supported && threads > 1) bench_rec_bool("contended", gflops < 0.75 * threads * one);
	bench_rec_end();
}

/* One sgemm of the layer (N outputs, K inputs) at M rows, as op:
 *   fwd  y(M,N)  = x(M,K) W(N,K)^T
 *   bwd_data  dx(M,K) = dy(M,N) W(N,K)
 *   bwd_weight dW(N,K) = dy(M,N)^T x(M,K) */
enum { OP_FWD, OP_BWD_DATA, OP_BWD_WEIGHT, NOPS };
static const char *OP_NAMES[NOPS] = {"fwd", "bwd_data", "bwd_weight"};

static void run_gemm(int op, int M, int N, int K, const float *x, const float *w,
		     const float *dy, float *out)
{
	switch (op) {
	case OP_FWD:
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, x, K, w, K,
			    0.0f, out, N);
		break;
	case OP_BWD_DATA:
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, K, N, 1.0f, dy, N, w, K,
			    0.0f, out, K);
		break;
	default:
		cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, N, K, M, 1.0f, dy, N, x, K,
			    0.0f, out, K);
		break;
	}
}

static void fill(float *p, size_t n, float scale)
{
	iapo_rng r;
	iapo_rng_seed(&r, 42, n, 0, 0);
	for (size_t i = 0; i < n; i++) p[i] = scale * (iapo_rng_float(&r) - 0.5f);
}

/* Times every op of one layer shape; returns 0 when out of memory. */
static int bench_layer(const char *shape, const char *layer, int M, int N, int K, int threads,
		       int quick, const char *corename)
{
	size_t big = (size_t)N * K > (size_t)M * K ? (size_t)N * K : (size_t)M * K;
	if ((size_t)M * N > big) big = (size_t)M * N;
	float *x = iapo_alloc_aligned((size_t)M * K * sizeof(float));
	float *w = iapo_alloc_aligned((size_t)N * K * sizeof(float));
	float *dy = iapo_alloc_aligned((size_t)M * N * sizeof(float));
	float *out = iapo_alloc_aligned(big * sizeof(float));
	int ok = x && w && dy && out;
	if (ok) {
		fill(x, (size_t)M * K, 1.0f);
		fill(w, (size_t)N * K, 0.1f);
		fill(dy, (size_t)M * N, 0.01f);
	}
	const double flop = 2.0 * M * N * K;
	for (int op = 0; ok && op < NOPS; op++) {
		/* ~0.5 s per op (0.1 s quick) after one warm-up call, 2..9 repeats */
		double t0 = bench_now();
		run_gemm(op, M, N, K, x, w, dy, out);
		double first = bench_now() - t0;
		int reps = (int)((quick ? 0.1 : 0.5) / (first > 1e-6 ? first : 1e-6));
		if (reps < 2) reps = 2;
		if (reps > 9) reps = 9;
		double v[9];
		for (int r = 0; r < reps; r++) {
			t0 = bench_now();
			run_gemm(op, M, N, K, x, w, dy, out);
			v[r] = bench_now() - t0;
		}
		double t = bench_median(v, reps);
		bench_rec_begin("sgemm");
		bench_rec_str("shape", shape);
		bench_rec_str("layer", layer);
		bench_rec_str("op", OP_NAMES[op]);
		bench_rec_int("M", op == OP_BWD_WEIGHT ? N : M);
		bench_rec_int("N", op == OP_FWD ? N : K);
		bench_rec_int("K", op == OP_FWD ? K : op == OP_BWD_DATA ? N : M);
		bench_rec_int("threads", threads);
		bench_rec_int("repeats", reps);
		bench_rec_num("seconds", t);
		bench_rec_num("gflops", flop / t * 1e-9);
		bench_rec_str("openblas_corename", corename);
		bench_rec_str("env_openblas_coretype", bench_env_coretype());
		bench_rec_end();
	}
	iapo_free_aligned(x);
	iapo_free_aligned(w);
	iapo_free_aligned(dy);
	iapo_free_aligned(out);
	return ok;
}

static int bench_shape(const bench_model_shape *s, int threads, int quick, const char *corename)
{
	const int M = 256, hd = s->C / s->NH;
	struct { const char *name; int N, K; } layers[] = {
		{"q", s->NH * hd, s->C},   {"k", s->NKV * hd, s->C},
		{"v", s->NKV * hd, s->C},  {"o", s->C, s->NH * hd},
		{"gate", s->F, s->C},         {"up", s->F, s->C},
		{"down", s->C, s->F},         {"lm_head", s->V, s->C},
	};
	for (size_t i = 0; i < sizeof layers / sizeof layers[0]; i++) {
		/* v has k's shape: measuring it again adds time, not information */
		if (strcmp(layers[i].name, "v") == 0 || strcmp(layers[i].name, "up") == 0) continue;
		if (!bench_layer(s->name, layers[i].name, M, layers[i].N, layers[i].K, threads, quick,
				 corename)) {
			bench_note("peak: sgemm %s %s: out of memory\n", s->name, layers[i].name);
			return 0;
		}
	}
	return 1;
}

/* ------------------------------------------------------------ AMX bf16 */

/* Linux keeps the 8 KiB tile data out of a thread's saved state until the
 * process asks for it (arch_prctl ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA;
 * kernel 5.16 on); without the grant the first tile instruction faults with
 * SIGILL. The grant is per process, but each thread asks again (it costs a
 * syscall) so a kernel that answered otherwise would be seen, not crash. */
#define PEAK_ARCH_REQ_XCOMP_PERM 0x1023
#define PEAK_XFEATURE_XTILEDATA 18

static int amx_request(void)
{
#if BENCH_X86 && defined(SYS_arch_prctl)
	return syscall(SYS_arch_prctl, PEAK_ARCH_REQ_XCOMP_PERM, PEAK_XFEATURE_XTILEDATA) == 0;
#else
	return 0;
#endif
}

/* AMX-BF16 and AMX-TILE in CPUID (leaf 7 EDX bits 22 and 24). */
static int amx_cpu(void)
{
#if BENCH_X86 && defined(__GNUC__) && (__GNUC__ >= 12 || defined(__clang__))
	__builtin_cpu_init();
	return __builtin_cpu_supports("amx-tile") && __builtin_cpu_supports("amx-bf16");
#else
	return 0;
#endif
}

#if BENCH_X86 && defined(__GNUC__) && (__GNUC__ >= 12 || defined(__clang__))
#define PEAK_HAVE_AMX_KERNEL 1
/* LDTILECFG's 64-byte operand: palette 1, then bytes per row and rows of each
 * of the 16 tile slots (8 used here). */
typedef struct {
	uint8_t palette, start_row, reserved[14];
	uint16_t colsb[16];
	uint8_t rows[16];
} __attribute__((packed, aligned(64))) peak_tilecfg;

/* iters x 4 tdpbf16ps, each C(16,16) += A(16,32 bf16) B(16 pairs,16 x 2):
 * 16*16*32*2 = 16384 FLOP, so 65536 FLOP per iteration. Four accumulators
 * (tmm0-3) over two A tiles (tmm4-5) and two B tiles (tmm6-7), the 2x2 block
 * a GEMM micro-kernel would use; the operands stay in tiles, so this is the
 * unit's rate, not what loads from L1 allow. 1.0 x 2^-10 products keep the
 * sums far from overflow for 2^40 iterations. Returns one sum to keep the
 * work alive, or NAN when the thread could not have the tile state. */
__attribute__((target("amx-tile,amx-bf16"), noinline))
static double amx_kernel(long iters)
{
	if (!amx_request()) return NAN;
	peak_tilecfg cfg;
	memset(&cfg, 0, sizeof cfg);
	cfg.palette = 1;
	for (int t = 0; t < 8; t++) {
		cfg.colsb[t] = 64;
		cfg.rows[t] = 16;
	}
	static const uint16_t one = 0x3f80, small = 0x3a80; /* bf16 1.0, 2^-10 */
	uint16_t a[16 * 32] __attribute__((aligned(64))), b[16 * 32] __attribute__((aligned(64)));
	float c[16 * 16] __attribute__((aligned(64)));
	for (int i = 0; i < 16 * 32; i++) {
		a[i] = one;
		b[i] = small;
	}
	_tile_loadconfig(&cfg);
	_tile_zero(0);
	_tile_zero(1);
	_tile_zero(2);
	_tile_zero(3);
	_tile_loadd(4, a, 64);
	_tile_loadd(5, a, 64);
	_tile_loadd(6, b, 64);
	_tile_loadd(7, b, 64);
	for (long i = 0; i < iters; i++) {
		_tile_dpbf16ps(0, 4, 6);
		_tile_dpbf16ps(1, 4, 7);
		_tile_dpbf16ps(2, 5, 6);
		_tile_dpbf16ps(3, 5, 7);
	}
	double s = 0.0;
	_tile_stored(0, c, 64);
	s += c[0];
	_tile_stored(3, c, 64);
	s += c[255];
	_tile_release(); /* gives the tile state back: the next context switch saves less */
	return s;
}
#else
#define PEAK_HAVE_AMX_KERNEL 0
#endif

/* Seconds for every one of `threads` threads to run `iters` iterations;
 * *ok = 0 when some thread was refused the tile state. */
static double amx_time(long iters, int threads, int *ok)
{
	double acc = 0.0;
	int bad = 0;
	double t0 = bench_now();
#pragma omp parallel num_threads(threads) reduction(+ : acc) reduction(| : bad)
	{
#if PEAK_HAVE_AMX_KERNEL
		double s = amx_kernel(iters);
#else
		double s = NAN;
#endif
		if (isnan(s)) bad = 1;
		else acc += s;
	}
	double t = bench_now() - t0;
	bench_sink_ += acc;
	*ok = !bad;
	return t;
}

/* Best GFLOP/s over runs of about `seconds` (bench_kernel_gflops' way:
 * calibrate, then the best of `reps`); 0 when a thread was refused. */
static double amx_gflops(int threads, double seconds, int reps)
{
	const double flop_per_iter = 4 * 16384.0;
	long iters = 1L << 10;
	int ok;
	amx_time(iters, threads, &ok); /* wake the threads, raise clocks */
	if (!ok) return 0.0;
	for (;;) {
		double t = amx_time(iters, threads, &ok);
		if (!ok) return 0.0;
		if (t >= 0.02 || iters >= (1L << 40)) {
			double scale = seconds / (t > 1e-9 ? t : 1e-9);
			if (scale > 1.0) iters = (long)((double)iters * scale);
			break;
		}
		iters *= 8;
	}
	double best = 0.0;
	for (int r = 0; r < reps; r++) {
		double t = amx_time(iters, threads, &ok);
		if (!ok) return 0.0;
		double g = flop_per_iter * (double)iters * threads / t * 1e-9;
		if (g > best) best = g;
	}
	return best;
}

/* The amx_bf16_peak records, 1 thread and all threads: emit_peak's fields
 * plus the tile count and, where unsupported, why. */
static void amx_peaks(const int *t_list, int nt, int quick)
{
	const char *reason = NULL;
	if (!amx_cpu() || !PEAK_HAVE_AMX_KERNEL) reason = "no amx";
	else if (!amx_request()) reason = "kernel refused XTILEDATA";
	double one = 0.0;
	for (int i = 0; i < nt; i++) {
		double g = reason ? 0.0 : amx_gflops(t_list[i], quick ? 0.04 : 0.1, quick ? 6 : 10);
		if (!reason && g == 0.0) reason = "kernel refused XTILEDATA"; /* in a worker thread */
		if (i == 0) one = g;
		bench_rec_begin("amx_bf16_peak");
		bench_rec_bool("supported", reason == NULL);
		if (reason) bench_rec_str("reason", reason);
		bench_rec_str("instruction", "tdpbf16ps tmm");
		bench_rec_int("flop_per_instruction", 16 * 16 * 32 * 2);
		bench_rec_int("accumulator_tiles", 4);
		bench_rec_int("threads", t_list[i]);
		if (!reason) bench_rec_num("gflops", g);
		else bench_rec_str("gflops", NULL);
		if (!reason && t_list[i] > 1) bench_rec_bool("contended", g < 0.75 * t_list[i] * one);
		bench_rec_end();
		if (reason) bench_note("peak: AMX bf16 %d thread(s): unsupported (%s)\n", t_list[i], reason);
		else bench_note("peak: AMX bf16 %d thread(s): %.1f GFLOP/s\n", t_list[i], g);
	}
}

static int usage(void)
{
	fprintf(stderr, "usage: peak [--threads N] [--quick] [--shape tiny|small|qwen0.5b|all] "
			"[--no-sgemm]\n");
	return 2;
}

int main(int argc, char **argv)
{
	int threads = omp_get_num_procs(), quick = 0, sgemm = 1;
	const char *shape = "all";
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
			if (!bench_parse_pos_int(argv[++i], &threads)) return usage();
		} else if (strcmp(argv[i], "--quick") == 0) {
			quick = 1;
		} else if (strcmp(argv[i], "--no-sgemm") == 0) {
			sgemm = 0;
		} else if (strcmp(argv[i], "--shape") == 0 && i + 1 < argc) {
			shape = argv[++i];
		} else {
			return usage();
		}
	}
	int found = strcmp(shape, "all") == 0;
	for (int s = 0; s < BENCH_NSHAPES; s++) found |= strcmp(shape, BENCH_SHAPES[s].name) == 0;
	if (!found) return usage();

	iapo_set_threads(threads);
	char cpu[256];
	const char *corename = openblas_get_corename();
	bench_rec_begin("machine");
	bench_rec_str("cpu", cpu_model(cpu, sizeof cpu));
	bench_rec_int("procs", omp_get_num_procs());
	bench_rec_int("threads", threads);
	bench_rec_bool("avx512f", bench_has_avx512f());
	bench_rec_bool("avx512bf16", bench_has_avx512bf16());
	bench_rec_str("openblas_config", openblas_get_config());
	bench_rec_str("openblas_corename", corename);
	bench_rec_str("env_openblas_coretype", bench_env_coretype());
	bench_rec_str("build", iapo_build_info());
	bench_rec_num("loadavg_1m", bench_loadavg());
	bench_rec_bf16_dot();
	bench_rec_end();
	bench_note("peak: %s, %d threads, OpenBLAS core %s (OPENBLAS_CORETYPE=%s)\n", cpu, threads,
		   corename, bench_env_coretype());

	int t_list[2] = {1, threads};
	int nt = threads > 1 ? 2 : 1;
	double one = 0.0;
	for (int i = 0; i < nt; i++) {
		int ok = bench_has_avx512f();
		double g = bench_fp32_peak(t_list[i], quick);
		if (i == 0) one = g;
		emit_peak("fp32_fma_peak", ok, t_list[i], g, one, "vfmadd231ps zmm", 32);
		bench_note("peak: fp32 FMA %d thread(s): %.1f GFLOP/s\n", t_list[i], g);
	}
	for (int i = 0; i < nt; i++) {
		int ok = bench_has_avx512bf16() && BENCH_HAVE_BF16_KERNEL;
		double g = bench_bf16_peak(t_list[i], quick);
		if (i == 0) one = g;
		emit_peak("bf16_dot_peak", ok, t_list[i], g, one, "vdpbf16ps zmm", 64);
		bench_note("peak: bf16 dot %d thread(s): %.1f GFLOP/s\n", t_list[i], g);
	}
	amx_peaks(t_list, nt, quick);

	bench_bw bw;
	size_t bytes = (size_t)1 << 30;
	if (bench_mem_read_bw(bytes, threads, quick ? 3 : 8, &bw)) {
		bench_rec_begin("mem_read_bw");
		bench_rec_int("bytes", (long long)bw.bytes);
		bench_rec_int("threads", threads);
		bench_rec_int("passes", bw.passes);
		bench_rec_str("kernel", bw.kernel);
		bench_rec_num("gb_per_s", bw.best_gbs);
		bench_rec_num("gb_per_s_median", bw.median_gbs);
		bench_rec_end();
		bench_note("peak: memory read %.1f GB/s (best), %.1f GB/s (median)\n", bw.best_gbs,
			   bw.median_gbs);
	} else {
		bench_note("peak: memory read: could not allocate %zu bytes\n", bytes);
	}

	if (sgemm) {
		for (int s = 0; s < BENCH_NSHAPES; s++) {
			if (strcmp(shape, "all") && strcmp(shape, BENCH_SHAPES[s].name)) continue;
			if (!bench_shape(&BENCH_SHAPES[s], threads, quick, corename)) return 1;
		}
	}
	return 0;
}
