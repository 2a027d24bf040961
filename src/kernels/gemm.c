/*
 * gemm.c — iapo_sgemm (gemm.h): single-precision C = alpha*op(A)*op(B) + beta*C,
 * row-major, written for AVX-512 CPUs (tuned on AMD Zen 5: 2 x 512-bit FMA
 * pipes, 48 KiB L1d, 1 MiB L2 per core) with a plain C fallback chosen at run
 * time for any other x86-64.
 *
 * The packed path follows BLIS (Van Zee & van de Geijn): C is cut into blocks
 * of NC columns; the depth K into slices of KC; for each slice a block of MC
 * rows of op(A) is copied ("packed") into micro-panels of MR rows laid out
 * k-major, and op(B) into micro-panels of NR columns, so that the micro-kernel
 * reads both operands contiguously whatever the transposes were. The
 * micro-kernel keeps an MR x NR tile of C in registers (MR rows of NR/16 zmm)
 * and for every k loads NR floats of B and broadcasts MR floats of A into
 * MR*NR/16 independent FMAs; MR*NR/16 is well above the 8 FMAs in flight that
 * two pipes of latency 4 need. The A block stays in L2 and each B micro-panel
 * in L1 while the MR-row micro-panels of A stream past it. B is packed lazily:
 * each micro-panel just before its first use, so that it is still in L1 when
 * the first row block reads it (and, when there is only one row block, into a
 * single L1-sized slot). Packing transposes with 16x16 in-register transposes,
 * so the forward's x W^T costs no more to pack than W's own layout.
 * The micro-kernel reads op(A) in place instead of packed panels where it
 * can: where op(A) is A as stored (x W^T, dy W) the broadcasts take one
 * float of each of MR rows per k, MR lines every 16 k, which L1 holds as
 * well as a packed panel unless the rows' stride maps them all to one L1
 * set (a multiple of 4 KB); where op(A) = A^T (dy^T x) they take MR
 * consecutive floats of one row per k. Packing A is a transpose, 8% of
 * qwen0.5b's kv x W^T (N = 128) on one thread, and at 2 threads the shared
 * panels cost more again. A very wide C and split-K (an A from L3 or
 * memory) still pack A.
 * A forward x W^T whose W is too large to stay in cache between calls
 * (M <= 256) runs the other way round, as C^T = W x^T (xt_rect): W's rows
 * are the broadcast operand, read in place and never packed, x^T is packed,
 * and the tile is stored transposed; the same sums in the same order.
 *
 * Threads (kernels/pool.h) take independent rectangles of C from a shared
 * counter, each packing its own operands: no barriers inside a product, and
 * a thread that is descheduled leaves its rectangles to the others. There are
 * about twice as many rectangles as threads when the product is large
 * enough, so that the others have something to take. The grid is chosen to
 * duplicate the smaller operand's packing (the activations, usually) rather
 * than the weights.
 * Split-K: where the grid would pack op(A) once per rectangle (an op(A)
 * too large to share in L2) or C has few columns, each thread instead
 * takes an equal share of the depth slices over all of C, packing only its
 * own slices of both operands; thread 0 sums into C with the epilogue, the
 * others into partial sums in the workspace, and whichever thread finishes
 * a region of C (row block x NR columns) last adds the partials into it,
 * in thread order. The sums are fixed for a given thread count; x W^T
 * splits only with one slice per thread, whose sums are the sequential
 * ones ((epilogue + slice 0) + slice 1 ...), so x W^T gives one thread's
 * bits whatever the thread count and the number of rows.
 *
 * The direct path serves small M (decoding): with B transposed (x W^T) it
 * computes dot products along K of a few rows of A against a few rows of W,
 * reading W once, in place; otherwise it runs the micro-kernel on unpacked
 * rows of B. Packing would cost as much as the product there. With fp32
 * weights and 8 or more rows it takes three rows of W at a time against 8
 * rows of A (dot_8x3: fewer loads of A per byte of W than pairs), each sum
 * in the same order whatever the block. With bf16
 * weights and 8 or more rows it takes one row of W at a time against 8 rows
 * of A (dotbf_8x1), so that W, whose rows follow each other, streams as one
 * sequence; rows too long for L1 are cut into k slices, two rows of W at a
 * time. A pack its creator opened to few-row products
 * (iapo_gemm_wpack_set_direct) is read instead, in fp32 (dotp_*) or bf16
 * K-pairs (dotpbf_*): W streams as one sequence of panels (9-16 rows: two
 * groups of rows over each panel while it is in cache).
 *
 * bf16 weights (iapo_gemm_op.Bh, x W^T): on the packed path with
 * AVX512_BF16, A's rows are rounded to bf16 as they are packed and both
 * operands are packed as K-pairs (two consecutive bf16 in 32 bits, the
 * operand vdpbf16ps multiplies), so the same transpose-and-pack code and the
 * same MR x NR tile serve, with a vdpbf16ps (two exact products per lane,
 * summed in fp32) where the fp32 kernel has an FMA: twice the rate, half the
 * bytes of B. Its depth slices are twice as deep (same bytes). Without
 * AVX512_BF16 both are widened to fp32 while packing. The direct path
 * (decoding) has its own bf16 dot kernels.
 *
 * Weights packed ahead (iapo_gemm_wpack, gemm.h): x W^T's B panels are
 * the same on every call with the same W, so a pack made once per weight
 * snapshot, in the very layout pack_b writes (depth slice by slice), is
 * read in place of packing; the product is the same to the bit, and a
 * product whose blocking no longer matches the pack packs as before.
 *
 * Left out: other precisions, column-major, GPUs, and runtime
 * detection of cache sizes (the constants below fit AMD Zen 4/5 and Intel
 * server cores, whose L1/L2 are at least 32 KiB / 1 MiB).
 */
#include "kernels/gemm.h"

#include <immintrin.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/mem.h"
#include "core/status.h"
#include "iapo.h"
#include "kernels/kernels.h"
#include "kernels/pool.h"
#include "kernels/simd.h"

/* Micro-tile: MR rows of C by NV zmm vectors (NR = 16*NV columns). */
#define MR 14
#define NV 2
#define NR (16 * NV)

/* Default blocking. KC*NR*4 bytes is the B micro-panel that the A
 * micro-panels stream past, MC*KC*4 (the A block) must sit in L2. NC bounds
 * the packed B panel reused across row blocks (it lives in L2/L3). KC = 512
 * makes the B micro-panel (64 KB) larger than L1, but L2 feeds it fast
 * enough, and C is read and written half as often: by CPU time on one
 * thread, M = 256, every nt product of the bench shapes +0.3-7% against 256
 * (small's lm_head +7%, qwen0.5b's +0.3-1.8%), nn -0.8..+4.5%, mean +0.9%
 * over all 54 (tn, K = 256, unchanged: +-2%, the noise of those runs). */
#ifndef KC_DEF
#define KC_DEF 512
#endif
#ifndef MC_DEF
#define MC_DEF 280
#endif
/* The same L1 and L2 budgets hold twice the depth in bf16 (K-pairs), and a
 * deeper slice halves the C traffic per multiply-add, which the bf16
 * kernel's doubled rate would otherwise feel. */
#ifndef KC_BF_DEF
#define KC_BF_DEF 512
#endif
#ifndef NC_DEF
#define NC_DEF 2048
#endif
/* C at least this wide takes one depth slice up to WIDE_C_KC deep
 * (depth_step). */
#define WIDE_C_N 32768
#define WIDE_C_KC 1024
/* x W^T with at most this many rows of C may run as C^T = W x^T
 * (xt_rect): x^T's depth slice, M x KC_DEF floats, stays in L2. */
#define XT_M_MAX 256
#define XT_N_MIN 512
#define XT_K_MIN 896
/* Chunks of W's rows per thread that xt_claim hands out (about; whole
 * lines of C). */
#ifndef XT_CLAIM_CHUNKS
#define XT_CLAIM_CHUNKS 8
#endif
/* Column chunks per thread that grid_claim hands out (about; whole
 * micro-panels). */
#ifndef GRID_CLAIM_CHUNKS
#define GRID_CLAIM_CHUNKS 4
#endif
/* Largest row block a test override may ask for (iapo_sgemm_set_blocking). */
#define MC_MAX 4096

/* Up to this many rows of C the direct path (no packing) is used: for
 * x W^T (the dot kernel), and for the other products (the micro-kernel on
 * unpacked B; at most MR). Measured crossovers on Zen 5 at N, K >= 896. */
#define DIRECT_M_DOT 16
#define DIRECT_M MR
/* Direct dot kernel: rows of A by rows of B per step (20 accumulators). */
#define DOT_MB 4
#define DOT_NB 5
/* Longest K for the 8-row dot kernel: 8 rows of A must stay in L1 (32 KB);
 * in bf16 twice as long. */
#ifndef DOT8_K_MAX
#define DOT8_K_MAX 1024
#endif
#ifndef DOT8BF_K_MAX
#define DOT8BF_K_MAX 2048
#endif
/* How far ahead (rows of B) the dot kernel prefetches. */
#ifndef DOT_PF_HINT
#define DOT_PF_HINT _MM_HINT_T0
#endif
/* How far ahead, in bytes of W: rows of W are 1.8-20 KB, and fetching
 * much more than a third of L1 ahead evicts lines before they are used
 * (qwen0.5b's down projection, 9.7 KB rows in bf16, 10 rows ahead: 17 GB/s
 * on one core; the 1.8 KB rows of the others: 31 GB/s). */
#ifndef DOT_PF_BYTES
#define DOT_PF_BYTES 16384
#endif
/* The same for the bf16 panel kernel (dotpbf_*): 8 KB, 64 K-pairs ahead,
 * against 16 KB in one process alternating the two over qwen0.5b's bf16
 * decode (2 threads): median +5.1..+13.5% in four runs, 54 of 84 rounds
 * faster; 1 thread +1.6% (12 of 16). */
#ifndef DOTPBF_PF_BYTES
#define DOTPBF_PF_BYTES 8192
#endif
/* Fewer multiply-adds than this per thread are not worth a fork/join. */
#define MIN_FMA_PER_THREAD (1L << 21)
/* Nor fewer elements of B than this (256 KB) on the direct path. */
#define MIN_B_PER_THREAD (1L << 16)
/* Rectangles per thread in the packed path, when each still gets at least
 * MIN_FMA_PER_THREAD multiply-adds. */
#ifndef OVERSUB
#define OVERSUB 2
#endif
/* Largest op(A) (bytes) for which a product is cut into OVERSUB rectangles
 * per thread: L2. */
#define OVERSUB_A_MAX (1 << 20)
/* Largest op(A) (floats, padded) whose micro-panels the rectangles of a
 * product share (32 MB). */
#define SHARE_A_MAX (1L << 23)

static int force_path;
static int split_mode = 1;
static int a_rows_mode = 1;
static int xt_mode = 1;
static int bf_rows_mode = 1;
static int claim_mode = 1;
static _Thread_local int last_split, last_xt, last_claim;
static int blk_mc, blk_kc, blk_nc;
static long min_fma_per_thread = MIN_FMA_PER_THREAD;
static _Thread_local int last_path;

int iapo_sgemm_force_path(int path)
{
	int old = force_path;
	force_path = path;
	return old;
}

void iapo_sgemm_set_blocking(int mc, int kc, int nc)
{
	blk_mc = mc > 0 ? mc : 0;
	blk_kc = kc > 0 ? kc : 0;
	blk_nc = nc > 0 ? nc : 0;
	min_fma_per_thread = blk_mc || blk_kc || blk_nc ? 1 : MIN_FMA_PER_THREAD;
}

int iapo_sgemm_last_path(void) { return last_path; }

int iapo_sgemm_split_k(int mode)
{
	int old = split_mode;
	split_mode = mode;
	return old;
}

int iapo_sgemm_last_split(void) { return last_split; }

int iapo_sgemm_xt(int mode)
{
	int old = xt_mode;
	xt_mode = mode;
	return old;
}

int iapo_sgemm_last_xt(void) { return last_xt; }

int iapo_sgemm_claim(int mode)
{
	int old = claim_mode;
	claim_mode = mode;
	return old;
}

int iapo_sgemm_last_claim(void) { return last_claim; }

int iapo_sgemm_bf_rows(int mode)
{
	int old = bf_rows_mode;
	bf_rows_mode = mode;
	return old;
}

int iapo_sgemm_a_rows(int mode)
{
	int old = a_rows_mode;
	a_rows_mode = mode;
	return old;
}

static int has_avx512(void)
{
	__builtin_cpu_init(); /* idempotent; needed when called before constructors ran */
	return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
	       __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
}

int iapo_sgemm_avx512(void) { return has_avx512(); }

/* vdpbf16ps (AVX512_BF16: Zen 4/5, Sapphire Rapids and later), unless a
 * test turned it off */
static int no_bf16;

int iapo_sgemm_no_bf16(int off)
{
	int old = no_bf16;
	no_bf16 = off;
	return old;
}

static int has_bf16(void)
{
	static int known = -1;
	if (no_bf16) return 0;
	if (known < 0) {
		__builtin_cpu_init();
		known = has_avx512() && __builtin_cpu_supports("avx512bf16");
	}
	return known;
}

static long ceil_div(long a, long b) { return (a + b - 1) / b; }
static long round_up(long a, long b) { return ceil_div(a, b) * b; }
static long min_l(long a, long b) { return a < b ? a : b; }

/* ---- per-thread workspace ------------------------------------------------- */

/* One growable aligned block per calling thread, released when the thread
 * exits; OpenMP workers of a call carve their slices out of the caller's. */
struct workspace {
	float *buf;
	size_t cap; /* floats */
};

static pthread_key_t ws_key;
static pthread_once_t ws_once = PTHREAD_ONCE_INIT;

static void ws_destroy(void *p)
{
	struct workspace *ws = p;
	if (!ws) return;
	iapo_free_aligned(ws->buf);
	iapo_free(ws);
}

static void ws_init(void) { (void)pthread_key_create(&ws_key, ws_destroy); }

/* A buffer of at least n floats for this thread, or NULL when out of memory. */
static float *ws_get(size_t n)
{
	pthread_once(&ws_once, ws_init);
	struct workspace *ws = pthread_getspecific(ws_key);
	if (!ws) {
		ws = iapo_malloc(sizeof *ws);
		if (!ws) return NULL;
		ws->buf = NULL;
		ws->cap = 0;
		if (pthread_setspecific(ws_key, ws) != 0) {
			iapo_free(ws);
			return NULL;
		}
	}
	if (ws->cap < n) {
		/* Grow straight to what any product with the default blocking can
		 * need on all threads, so a caller's first large product is its
		 * only allocation, whatever shapes come later. */
		size_t most = ((size_t)MC_DEF * KC_DEF + (size_t)NC_DEF * KC_DEF + 32) * (size_t)iapo_pool_threads();
		if (n < most) n = most;
		float *nb = iapo_alloc_aligned(n * sizeof(float));
		if (!nb) return NULL;
		iapo_free_aligned(ws->buf);
		ws->buf = nb;
		ws->cap = n;
	}
	return ws->buf;
}

/* ---- shared helpers ------------------------------------------------------- */

/* C(M,N) *= beta, with beta == 0 writing zeros without reading C. */
static void scale_c(int M, int N, float beta, float *C, int ldc)
{
	for (int i = 0; i < M; i++) {
		float *c = C + (size_t)i * ldc;
		if (beta == 0.0f)
			memset(c, 0, sizeof(float) * (size_t)N);
		else if (beta != 1.0f)
			for (int j = 0; j < N; j++) c[j] *= beta;
	}
}

/* Splits [0, total) into parts units-aligned pieces; piece p is [*lo, *hi). */
static void split_range(long total, long unit, int parts, int p, long *lo, long *hi)
{
	long units = ceil_div(total, unit);
	*lo = min_l(total, units * p / parts * unit);
	*hi = min_l(total, units * (p + 1) / parts * unit);
}

/* Threads worth using for n_fma multiply-adds, at most nmax. */
static int threads_for(double n_fma, int nmax)
{
	double t = n_fma / (double)min_fma_per_thread;
	if (t < 1) return 1;
	return t < nmax ? (int)t : nmax;
}

/* ---- portable path -------------------------------------------------------- */

/* One product's arguments, shared by the threads working on it. */
struct job {
	int transA, transB, M, N, K;
	float alpha, beta;
	const float *A, *B;
	float *C;
	long lda, ldb, ldc;
	const float *R, *bias; /* epilogue: C = alpha*AB + (R ? R : beta*C) + bias */
	long ldr;
	const uint16_t *Bh;    /* op(B) in bf16 (x W^T only), instead of B */
	uint16_t *Ah;          /* direct path with Bh: A rounded to bf16, rows of ldah (a multiple of 32) */
	long ldah;
	int path;
	/* blocking */
	long mc, kc, nc;
	int nth, tm, tn;
	size_t a_floats, b_floats; /* per-thread packing buffers */
	float *ws;
	size_t ws_stride;          /* floats per worker in ws */
	long items, first;         /* items of this product, index of its first in a batch */
	/* op(A)'s micro-panels shared by the rectangles (several rectangles,
	 * A small enough): panel (slice s, row tile t) at
	 * apack + (s*mtiles + t) * kc_step*MR, its state in astate[s*mtiles + t]:
	 * 0 not packed, 1 being packed, 2 ready. */
	float *apack;
	atomic_uchar *astate;
	size_t apack_floats, astate_floats;
	long mtiles, kc_step;
	/* packed path with Bh: vdpbf16ps on K-pair panels (tile_bf); a depth
	 * slice of kc_step elements (even) is then ku_step = kc_step/2 units of
	 * 32 bits per row or column of a panel, kc_step units otherwise */
	int bf;
	long ku_step;
	/* op(B) packed ahead (iapo_gemm_op.Bp), when it fits this product */
	const iapo_gemm_wpack *wp;
	/* a pair's one stream (iapo_sgemm_swiglu_pair): wp and wp->mate read
	 * together, the mate's product into Cu (same ldc), then act = SwiGLU
	 * of the two (rows of ldact) */
	int pair;
	float *Cu, *act;
	long ldact;
	/* the micro-kernel reads A's rows in place (tiles_rows), unpacked */
	int a_rows;
	/* another product of the same call reads the same A (q, k and v;
	 * gate and up): their bf16 A panels are shared (same_a) */
	int a_mates;
	/* x W^T as C^T = W x^T (xt_rect): W's rows in place, x^T packed */
	int xt;
	/* xt on 2 threads (xt_claim): W's rows in chunks of xt_chunk, claimed
	 * slice by slice from both ends (xtnext[s]: chunks taken from the
	 * front | from the back << 32), a chunk's next slice only after its
	 * last one (xtdone[c]: slices done) */
	long xt_chunk, xt_nchunks;
	/* the same counters claim a 1 x tn grid's columns on 2 threads
	 * (grid_claim): xt_nchunks chunks of whole micro-panels */
	int claim;
	_Atomic uint64_t *xtnext;
	atomic_int *xtdone;
	size_t xt_floats;
	/* split-K (packed path): sk > 1 groups of depth slices, one item
	 * each; group 0 sums into C with the epilogue, group g > 0 into its
	 * partial skp + (g-1)*M*ldp; the group that finishes a region of C
	 * (row block x NR columns) last adds the partials into it, in group
	 * order (skcnt: groups done per region) */
	int sk;
	float *skp;
	atomic_int *skcnt;
	long ldp, sk_regions, sk_npan;
	size_t sk_floats;
};

/* Row i of C before the product is added: R (or beta*C) plus the bias. */
static void init_row(const struct job *J, long i)
{
	float *c = J->C + (size_t)i * J->ldc;
	const int N = J->N;
	if (J->R) {
		const float *r = J->R + (size_t)i * J->ldr;
		if (r != c) memmove(c, r, sizeof(float) * (size_t)N);
	} else {
		scale_c(1, N, J->beta, c, (int)J->ldc);
	}
	if (J->bias)
		for (int j = 0; j < N; j++) c[j] += J->bias[j];
}

/* bf16 (the upper half of a float's bits) to float. */
static inline float bf16_float(uint16_t h)
{
	union {
		uint32_t u;
		float f;
	} v = {.u = (uint32_t)h << 16};
	return v.f;
}

/* x rounded to bf16 (nearest even; NaN stays NaN), as a float: with a bf16
 * B, A is rounded too, so every path multiplies the same bf16 values (the
 * products are exact in fp32; only the order of the sums differs). */
static inline uint32_t bf16_round_bits(uint32_t u)
{
	uint32_t r = (u & 0x7fffffffu) > 0x7f800000u ? (u | 0x00400000u) : u + 0x7fffu + ((u >> 16) & 1u);
	return r & 0xffff0000u;
}

static inline float bf16_round(float x)
{
	union {
		uint32_t u;
		float f;
	} v = {.f = x};
	v.u = bf16_round_bits(v.u);
	return v.f;
}

/* Row i of C. */
static void portable_row(const struct job *P, long row)
{
	const int transA = P->transA, transB = P->transB, N = P->N, K = P->K, lda = (int)P->lda, ldb = (int)P->ldb;
	const float alpha = P->alpha, *A = P->A, *B = P->B;
	const int i = (int)row;
	{
		float *c = P->C + (size_t)i * P->ldc;
		init_row(P, i);
		if (P->Bh) {
			/* bf16 B, any transposes (the AVX-512 paths take x W^T) */
			for (int p = 0; p < K; p++) {
				float a = alpha * bf16_round(transA ? A[(size_t)p * lda + i] : A[(size_t)i * lda + p]);
				for (int j = 0; j < N; j++)
					c[j] += a * bf16_float(P->Bh[transB ? (size_t)j * ldb + p : (size_t)p * ldb + j]);
			}
			return;
		}
		if (transB && !transA) {
			/* x W^T: rows of A and B are both contiguous along K */
			const float *a = A + (size_t)i * lda;
			for (int j = 0; j < N; j++) {
				const float *b = B + (size_t)j * ldb;
				float s = 0;
				for (int p = 0; p < K; p++) s += a[p] * b[p];
				c[j] += alpha * s;
			}
			return;
		}
		for (int p = 0; p < K; p++) {
			float a = alpha * (transA ? A[(size_t)p * lda + i] : A[(size_t)i * lda + p]);
			if (!transB) {
				const float *b = B + (size_t)p * ldb;
				for (int j = 0; j < N; j++) c[j] += a * b[j];
			} else {
				for (int j = 0; j < N; j++) c[j] += a * B[(size_t)j * ldb + p];
			}
		}
	}
}



/* ---- AVX-512 path --------------------------------------------------------- */

#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,prfchw")))
#define AVX512BF __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,prfchw")))
#define INLINE static inline __attribute__((always_inline))

/* Whether vdpbf16ps pays for compute-bound products (the packed path), as
 * gemm.h describes: the verdict of a probe at first use, unless
 * IAPO_BF16_DOT or the test hook says otherwise. */
#define BF16_PAYS_RATIO 1.0
/* Independent chains per instruction in the probe: enough to cover a
 * latency of 8 cycles at 2 instructions a cycle. */
#define PROBE_CHAINS 16
#define PROBE_ITERS 512
#define PROBE_ROUNDS 12

static pthread_once_t bf16_once = PTHREAD_ONCE_INIT;
static int bf16_env = IAPO_BF16_DOT_AUTO; /* IAPO_BF16_DOT, read once */
static int bf16_probe_pays;
static double bf16_probe_ratio;
static int bf16_hook = -1; /* iapo_sgemm_force_bf16_dot */

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* zmm0-15 = 0 (a VEX xmm write clears the upper lanes) */
#define ZERO_ZMM0_15 \
	"vxorps %%xmm0, %%xmm0, %%xmm0\n\t" \
	"vxorps %%xmm1, %%xmm1, %%xmm1\n\t" \
	"vxorps %%xmm2, %%xmm2, %%xmm2\n\t" \
	"vxorps %%xmm3, %%xmm3, %%xmm3\n\t" \
	"vxorps %%xmm4, %%xmm4, %%xmm4\n\t" \
	"vxorps %%xmm5, %%xmm5, %%xmm5\n\t" \
	"vxorps %%xmm6, %%xmm6, %%xmm6\n\t" \
	"vxorps %%xmm7, %%xmm7, %%xmm7\n\t" \
	"vxorps %%xmm8, %%xmm8, %%xmm8\n\t" \
	"vxorps %%xmm9, %%xmm9, %%xmm9\n\t" \
	"vxorps %%xmm10, %%xmm10, %%xmm10\n\t" \
	"vxorps %%xmm11, %%xmm11, %%xmm11\n\t" \
	"vxorps %%xmm12, %%xmm12, %%xmm12\n\t" \
	"vxorps %%xmm13, %%xmm13, %%xmm13\n\t" \
	"vxorps %%xmm14, %%xmm14, %%xmm14\n\t" \
	"vxorps %%xmm15, %%xmm15, %%xmm15\n\t"
/* Seconds for PROBE_ITERS rounds of PROBE_CHAINS independent chains of
 * vdpbf16ps (bf) or vfmadd231ps, in zmm0-15 from zero. Written in asm: a
 * compiler folds an FMA of two constants into an add, and spills arrays of
 * accumulators. The sums stay small normal numbers (n * 2^-20 or 2^-19),
 * so no denormal or overflow slows either. */
static AVX512 double probe_run(const int bf)
{
	const __m512 x = bf ? _mm512_castsi512_ps(_mm512_set1_epi32(0x3A803A80)) /* bf16 pairs of 2^-10 */
			    : _mm512_set1_ps(0x1p-10f);
	const __m512 y = x;
	long n = PROBE_ITERS;
	const double t0 = now_s();
	/* the same loop for either instruction: asm strings are literals */
#define PROBE_LOOP(ins) \
	__asm__ volatile(ZERO_ZMM0_15 "1:\n\t" \
		PROBE_INS(ins, 0) PROBE_INS(ins, 1) PROBE_INS(ins, 2) PROBE_INS(ins, 3) PROBE_INS(ins, 4) PROBE_INS(ins, 5) \
		PROBE_INS(ins, 6) PROBE_INS(ins, 7) PROBE_INS(ins, 8) PROBE_INS(ins, 9) PROBE_INS(ins, 10) PROBE_INS(ins, 11) \
		PROBE_INS(ins, 12) PROBE_INS(ins, 13) PROBE_INS(ins, 14) PROBE_INS(ins, 15) \
		"dec %[n]\n\t" \
		"jnz 1b\n\t" \
		: [n] "+r"(n) \
		: [x] "v"(x), [y] "v"(y) \
		: "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", \
		  "xmm13", "xmm14", "xmm15", "cc")
#define PROBE_INS(ins, r) ins " %g[y], %g[x], %%zmm" #r "\n\t"
	if (bf)
		PROBE_LOOP("vdpbf16ps");
	else
		PROBE_LOOP("vfmadd231ps");
#undef PROBE_INS
#undef PROBE_LOOP
	return now_s() - t0;
}

/* bf16 multiply-adds per second over fp32 ones (32 vs 16 per instruction),
 * each the best of PROBE_ROUNDS runs taken in turn, so that a slower
 * minute, a frequency change or another thread's turn on the core falls
 * on both; a first round of each warms the 512-bit units up. ~0.1-0.3 ms. */
static double probe_ratio(void)
{
	double best_bf = 1e30, best_fp = 1e30;
	(void)probe_run(0);
	(void)probe_run(1);
	for (int r = 0; r < PROBE_ROUNDS; r++) {
		double f = probe_run(0), b = probe_run(1);
		if (f < best_fp) best_fp = f;
		if (b < best_bf) best_bf = b;
	}
	return best_bf > 0 ? 2.0 * best_fp / best_bf : 0;
}

static void bf16_init(void)
{
	const char *s = getenv("IAPO_BF16_DOT");
	if (s && *s) {
		if (!strcmp(s, "auto"))
			bf16_env = IAPO_BF16_DOT_AUTO;
		else if (!strcmp(s, "on"))
			bf16_env = IAPO_BF16_DOT_ON;
		else if (!strcmp(s, "off"))
			bf16_env = IAPO_BF16_DOT_OFF;
		else
			fprintf(stderr, "iapo: IAPO_BF16_DOT=%s: expected auto, on or off; using auto\n", s);
	}
	__builtin_cpu_init();
	if (has_avx512() && __builtin_cpu_supports("avx512bf16")) {
		bf16_probe_ratio = probe_ratio();
		bf16_probe_pays = bf16_probe_ratio >= BF16_PAYS_RATIO;
	}
}

/* has_bf16(), and vdpbf16ps worth its multiply-adds: the packed path's
 * choice (memory-bound products go by has_bf16 alone). */
static int bf16_pays(void)
{
	if (!has_bf16()) return 0;
	pthread_once(&bf16_once, bf16_init);
	if (bf16_hook >= 0) return bf16_hook;
	if (bf16_env != IAPO_BF16_DOT_AUTO) return bf16_env == IAPO_BF16_DOT_ON;
	return bf16_probe_pays;
}

int iapo_sgemm_bf16_dot(double *ratio, int *mode)
{
	pthread_once(&bf16_once, bf16_init);
	if (ratio) *ratio = bf16_probe_ratio;
	if (mode) *mode = bf16_env;
	return bf16_pays();
}

int iapo_sgemm_force_bf16_dot(int pays)
{
	int old = bf16_hook;
	bf16_hook = pays < 0 ? -1 : pays != 0;
	return old;
}


/* Mask of the first n lanes (n clamped to [0,16]). */
static inline __mmask16 lanes(long n) { return n <= 0 ? 0 : n >= 16 ? 0xFFFF : (__mmask16)((1u << n) - 1); }

/* 16 bf16 values widened to floats (exact: bf16 is a float's upper half). */
INLINE AVX512 __m512 load_h(const uint16_t *p)
{
	return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p)), 16));
}

INLINE AVX512 __m512 maskz_load_h(__mmask16 m, const uint16_t *p)
{
	return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p)), 16));
}

/* 16 floats' bits rounded to bf16 (bf16_round_bits: nearest even, NaN kept
 * a NaN), the low halves cleared. */
INLINE AVX512 __m512i round_bf16_v(__m512i u)
{
	const __m512i abs = _mm512_set1_epi32(0x7fffffff), inf = _mm512_set1_epi32(0x7f800000);
	const __m512i half = _mm512_set1_epi32(0x7fff), one = _mm512_set1_epi32(1), quiet = _mm512_set1_epi32(0x00400000);
	__m512i r = _mm512_add_epi32(_mm512_add_epi32(u, half), _mm512_and_si512(_mm512_srli_epi32(u, 16), one));
	__mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, abs), inf);
	r = _mm512_mask_or_epi32(r, nan, u, quiet);
	return _mm512_and_si512(r, _mm512_set1_epi32((int)0xffff0000u));
}

/* n floats at p rounded to bf16 in place (bf16_round, 16 at a time). */
static AVX512 void round_bf16_inplace(float *p, long n)
{
	for (long i = 0; i < n; i += 16) {
		__mmask16 m = lanes(n - i);
		_mm512_mask_storeu_epi32(p + i, m, round_bf16_v(_mm512_maskz_loadu_epi32(m, p + i)));
	}
}

/* dst[r*ld16 + k] = src[r*lda + k] rounded to bf16 for k < K, zeros up to ld16. */
static AVX512 void rows_to_bf16(uint16_t *dst, long ld16, const float *src, long lda, int rows, int K)
{
	for (int r = 0; r < rows; r++)
		for (long k = 0; k < ld16; k += 16) {
			__m512i v = round_bf16_v(_mm512_maskz_loadu_epi32(lanes(K - k), src + r * lda + k));
			_mm256_storeu_si256((__m256i *)(dst + r * ld16 + k), _mm512_cvtepi32_epi16(_mm512_srli_epi32(v, 16)));
		}
}

/* Mask of the first n of 32 16-bit lanes (n clamped to [0,32]). */
static inline __mmask32 lanes32(long n) { return n <= 0 ? 0 : n >= 32 ? 0xFFFFFFFFu : (__mmask32)((1u << n) - 1); }

/* dst[k*W + c] = src[k*ld + c] for c < cols, 0 for cols <= c < W; k < kc.
 * Packs a panel whose rows are already contiguous (B as stored, or A^T). */
static AVX512 void pack_rows(float *dst, const float *src, long ld, int kc, int cols, int W)
{
	for (int k = 0; k < kc; k++) {
		const float *s = src + (size_t)k * ld;
		float *d = dst + (size_t)k * W;
		for (int v = 0; v < W; v += 16)
			_mm512_mask_storeu_ps(d + v, lanes(W - v), _mm512_maskz_loadu_ps(lanes(cols - v), s + v));
	}
}

/* How pack_cols reads a row: 16 units of 32 bits from element k0 on. */
enum {
	PK_F32 = 0,  /* fp32 elements */
	PK_H = 1,    /* bf16 elements, widened to fp32 */
	PK_H2 = 2,   /* bf16, kept as pairs of consecutive elements (vdpbf16ps's operand) */
};

/* Units 16u..16u+15 of a row at src (element type as mode), n elements long. */
INLINE AVX512 __m512 pack_load(const int mode, const void *src, long u, long n)
{
	const float *f = src;
	const uint16_t *h = src;
	if (mode == PK_F32) return _mm512_maskz_loadu_ps(lanes(n - 16 * u), f + 16 * u);
	if (mode == PK_H) return maskz_load_h(lanes(n - 16 * u), h + 16 * u);
	return _mm512_castsi512_ps(_mm512_maskz_loadu_epi16(lanes32(n - 32 * u), h + 32 * u)); /* PK_H2 */
}

/* dst[k*W + r] = src[r*ld + k] for r < rows, 0 for rows <= r < W, over the
 * units k of kc elements (an element, or a pair of elements as PK_H2 reads
 * them, padded with a zero when kc is odd); ld in elements.
 * Packs a panel that must be transposed (A as stored, or B^T = W), 16x16
 * units at a time. */
INLINE AVX512 void pack_cols_t(const int mode, float *dst, const void *src, long ld, int rows, int kc, int W)
{
	const int es = mode == PK_F32 ? 4 : 2; /* bytes per element */
	const int units = mode >= PK_H2 ? (kc + 1) / 2 : kc;
	for (int r0 = 0; r0 < W; r0 += 16) {
		int rg = rows - r0 < 0 ? 0 : rows - r0 > 16 ? 16 : rows - r0;
		__mmask16 sm = lanes(W - r0);
		if (rg == 0) {
			for (int k = 0; k < units; k++) _mm512_mask_storeu_ps(dst + (size_t)k * W + r0, sm, _mm512_setzero_ps());
			continue;
		}
		for (int k = 0; k < units; k += 16) {
			int kk = units - k < 16 ? units - k : 16;
			__m512 r[16];
			for (int i = 0; i < 16; i++)
				r[i] = i < rg ? pack_load(mode, (const char *)src + (size_t)(r0 + i) * ld * es, k / 16, kc)
					      : _mm512_setzero_ps();
			iapo_transpose16(r);
			for (int j = 0; j < kk; j++) _mm512_mask_storeu_ps(dst + (size_t)(k + j) * W + r0, sm, r[j]);
		}
	}
}

static AVX512 void pack_cols(float *dst, const float *src, long ld, int rows, int kc, int W)
{
	pack_cols_t(PK_F32, dst, src, ld, rows, kc, W);
}

/* B^T = W in bf16: the same panel, widened (CPUs without AVX512_BF16). */
static AVX512 void pack_cols_h(float *dst, const uint16_t *src, long ld, int rows, int kc, int W)
{
	pack_cols_t(PK_H, dst, src, ld, rows, kc, W);
}

/* Units 16u..16u+15 of an fp32 row, n elements long, rounded to bf16 pairs:
 * vcvtne2ps2bf16 rounds 32 floats in one instruction with bf16_round_bits's
 * rule (nearest even, a NaN stays a NaN with its quiet bit set), where two
 * round_bf16_v and a permute took ~17 operations. It flushes denormals to
 * (signed) zero, which bf16_round_bits does not; but these panels feed only
 * vdpbf16ps, which reads a denormal bf16 as zero, so the products are the
 * same to the bit. */
INLINE AVX512BF __m512 f2h2_load(const float *f, long u, long n)
{
	const __m512 lo = _mm512_maskz_loadu_ps(lanes(n - 32 * u), f + 32 * u);
	const __m512 hi = _mm512_maskz_loadu_ps(lanes(n - 32 * u - 16), f + 32 * u + 16);
	return (__m512)_mm512_cvtne2ps_pbh(hi, lo);
}

/* Rows [0, rg) of a K-pair panel's group of 16 columns (pack_cols_t's
 * PK_H2 step, or fp32 rounded by f2h2_load when f32), kc elements deep,
 * into dst (row stride W, lanes sm). Called with rg a constant for the
 * full groups (16, and MR for A's panels): with a run-time rg the 16 loads
 * became a chain of compares and the transpose's rows went through the
 * stack (session 9, perf annotate). */
INLINE AVX512BF void pair_group(const int f32, const int rg, float *dst, const void *src, long ld, int kc, int W,
				__mmask16 sm)
{
	const int units = (kc + 1) / 2;
	for (int k = 0; k < units; k += 16) {
		const int kk = units - k < 16 ? units - k : 16;
		__m512 r[16];
#pragma GCC unroll 16
		for (int i = 0; i < 16; i++)
			r[i] = i >= rg ? _mm512_setzero_ps()
			       : f32   ? f2h2_load((const float *)src + (size_t)i * ld, k / 16, kc)
				       : pack_load(PK_H2, (const uint16_t *)src + (size_t)i * ld, k / 16, kc);
		iapo_transpose16(r);
		if (kk == 16) {
#pragma GCC unroll 16
			for (int j = 0; j < 16; j++) _mm512_mask_storeu_ps(dst + (size_t)(k + j) * W, sm, r[j]);
		} else {
			for (int j = 0; j < kk; j++) _mm512_mask_storeu_ps(dst + (size_t)(k + j) * W, sm, r[j]);
		}
	}
}

/* A K-pair panel (pack_cols_t's layout, ld in elements) from bf16 (f32 = 0)
 * or fp32 rounded to bf16 (f32 = 1). */
INLINE AVX512BF void pack_pairs(const int f32, float *dst, const void *src, long ld, int rows, int kc, int W)
{
	const int es = f32 ? 4 : 2;
	for (int r0 = 0; r0 < W; r0 += 16) {
		const int rg = rows - r0 < 0 ? 0 : rows - r0 > 16 ? 16 : rows - r0;
		const __mmask16 sm = lanes(W - r0);
		const void *s0 = (const char *)src + (size_t)r0 * ld * es;
		float *d0 = dst + r0;
		if (rg == 16)
			pair_group(f32, 16, d0, s0, ld, kc, W, sm);
		else if (rg == MR)
			pair_group(f32, MR, d0, s0, ld, kc, W, sm);
		else if (rg > 0)
			pair_group(f32, rg, d0, s0, ld, kc, W, sm);
		else
			for (int k = 0; k < (kc + 1) / 2; k++) _mm512_mask_storeu_ps(d0 + (size_t)k * W, sm, _mm512_setzero_ps());
	}
}

/* W in bf16, as K-pairs: unit k of column r holds elements 2k, 2k+1
 * (CPUs with AVX512_BF16 only, as every K-pair panel). */
static AVX512BF void pack_cols_h2(float *dst, const uint16_t *src, long ld, int rows, int kc, int W)
{
	pack_pairs(0, dst, src, ld, rows, kc, W);
}

/* A's rows rounded to bf16, as K-pairs. */
static AVX512BF void pack_cols_f2h2(float *dst, const float *src, long ld, int rows, int kc, int W)
{
	pack_pairs(1, dst, src, ld, rows, kc, W);
}

/* A region of rows x bytes (stride ld bytes) whose cache lines are fetched a
 * few at a time: by the fp32 micro-kernel, spread over its k loop (tile),
 * or between the bf16 tiles. */
struct prefetch {
	const char *base;
	long ld, row_bytes, lines; /* lines: total to fetch */
	long r, off;
	int rows;
};

/* rows x cols elements of es bytes at base (row stride ld elements). */
static void prefetch_region(struct prefetch *p, const void *base, long ld, int rows, long cols, long es)
{
	uintptr_t a = (uintptr_t)base & ~(uintptr_t)63;
	p->base = (const char *)a;
	p->ld = ld * es;
	p->row_bytes = (long)((uintptr_t)base + (uintptr_t)(cols * es) - a);
	p->rows = rows;
	p->r = p->off = 0;
	p->lines = rows * ceil_div(p->row_bytes, 64);
}

static inline void prefetch_step(struct prefetch *p, int n)
{
	for (; n > 0 && p->r < p->rows; n--) {
		_mm_prefetch(p->base + p->r * p->ld + p->off, _MM_HINT_T1);
		p->off += 64;
		if (p->off >= p->row_bytes) p->off = 0, p->r++;
	}
}

/* What a tile's store adds to alpha*acc: the addend row r (row i at
 * r + i*ldr) or else beta*C, and the bias; r and bias point at the tile's
 * first column. beta == 0 and no r: C is not read. */
struct epi {
	float alpha, beta;
	const float *r, *bias;
	long ldr;
};

/* Row i, lanes m at column off of the tile: c = alpha*acc + addend + bias. */
INLINE AVX512 void store_row(float *c, __m512 acc, __mmask16 m, const struct epi *e, int i, int off)
{
	__m512 r = e->alpha == 1.0f ? acc : _mm512_mul_ps(acc, _mm512_set1_ps(e->alpha));
	if (e->bias) r = _mm512_add_ps(r, _mm512_maskz_loadu_ps(m, e->bias + off));
	if (e->r)
		r = _mm512_add_ps(r, _mm512_maskz_loadu_ps(m, e->r + (long)i * e->ldr + off));
	else if (e->beta == 1.0f)
		r = _mm512_add_ps(r, _mm512_maskz_loadu_ps(m, c));
	else if (e->beta != 0.0f)
		r = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, c), _mm512_set1_ps(e->beta), r);
	_mm512_mask_storeu_ps(c, m, r);
}

/* A tile's accumulators zeroed, and every line of its C fetched: C is
 * needed only after the k loop. own: fetched for writing (PREFETCHW), so
 * that the store finds the line already this core's. With 2 threads the
 * rectangles of C land on whichever thread takes them, so a tile's lines
 * were often last written by the other core (dx accumulated by q, k and v's
 * dy W, dW by dy^T x): a plain prefetch brings them shared, and the store
 * then waits for the other core's copy to be invalidated. tiny's q/k/v
 * backward (three batches, 2 threads, one process alternating call by call,
 * median of 150 rounds, % of the adjacent peak): 72.6 -> 77.2, 68.9 -> 72.1,
 * 69.0 -> 73.3. The same sums. */
INLINE AVX512 void tile_begin(const int mr, __m512 acc[MR][NV], const float *c, long ldc, const int own)
{
#pragma GCC unroll 16
	for (int i = 0; i < mr; i++)
#pragma GCC unroll 4
		for (int v = 0; v < NV; v++) acc[i][v] = _mm512_setzero_ps();
	for (int i = 0; i < mr; i++)
		for (int v = 0; v <= NR; v += 16) {
			const char *p = (const char *)(c + i * ldc + (v < NR ? v : NR - 1));
			if (own)
				__builtin_prefetch(p, 1, 3);
			else
				_mm_prefetch(p, _MM_HINT_T0);
		}
}

/* The tile's rows stored with the epilogue (store_row). */
INLINE AVX512 void tile_end(const int mr, __m512 acc[MR][NV], float *c, long ldc, const struct epi *e,
			    const __mmask16 *m)
{
#pragma GCC unroll 16
	for (int i = 0; i < mr; i++)
#pragma GCC unroll 4
		for (int v = 0; v < NV; v++) store_row(c + i * ldc + 16 * v, acc[i][v], m[v], e, i, 16 * v);
}

/* tile_begin for a tile stored transposed (tile's packed == 2): the tile's
 * NR columns are rows of C (tokens, those in m), its mr rows columns. */
INLINE AVX512 void tile_begin_tr(const int mr, __m512 acc[MR][NV], const float *c, long ldc, const __mmask16 *m)
{
#pragma GCC unroll 16
	for (int i = 0; i < mr; i++)
#pragma GCC unroll 4
		for (int v = 0; v < NV; v++) acc[i][v] = _mm512_setzero_ps();
	const int rows = __builtin_popcount(m[0]) + __builtin_popcount(m[1]);
	for (int t = 0; t < rows; t++) {
		_mm_prefetch((const char *)(c + t * ldc), _MM_HINT_T0);
		_mm_prefetch((const char *)(c + t * ldc + mr - 1), _MM_HINT_T0);
	}
}

/* The tile's mr x NR accumulators transposed 16 columns at a time, each
 * column stored as a row of C (mr floats) with the epilogue: store_row's
 * sums, in its order, on the transposed element (row j of the tile's
 * columns is row j of C and of the addend; bias per column of C). */
INLINE AVX512 void tile_end_tr(const int mr, __m512 acc[MR][NV], float *c, long ldc, const struct epi *e,
			       const __mmask16 *m)
{
	const __mmask16 cm = lanes(mr);
#pragma GCC unroll 4
	for (int v = 0; v < NV; v++) {
		const int rows = __builtin_popcount(m[v]);
		if (!rows) break;
		__m512 r[16];
#pragma GCC unroll 16
		for (int i = 0; i < 16; i++) r[i] = i < mr ? acc[i][v] : _mm512_setzero_ps();
		iapo_transpose16(r);
#pragma GCC unroll 16
		for (int j = 0; j < 16; j++)
			if (j < rows) store_row(c + (16 * v + j) * ldc, r[j], cm, e, 16 * v + j, 0);
	}
}

/* The micro-kernel: C(mr, NR) = alpha * sum_k a(i,k) b(k,:) + beta*C, with
 * a(i,k) = a[i*ars + k*acs] and b(k,:) = b[k*brs ...]. packed: b is a
 * 64-byte aligned, zero-padded micro-panel; otherwise B's columns beyond the
 * masks are not read. C's columns beyond the masks are never touched. mr and
 * packed are constants in every caller, so the accumulators become registers.
 * packed == 2: the tile is C^T's (x W^T as W x^T, xt_rect): stored
 * transposed, m the lanes of the NR columns that exist (rows of C).
 * pf_n lines of pf (the source of the next B micro-panel) are fetched
 * during the k loop, one every kc / pf_n k. */
INLINE AVX512 void tile(const int mr, const int packed, int kc, const float *a, long ars, long acs, const float *b, long brs,
			float *c, long ldc, const struct epi *e, const __mmask16 *m, struct prefetch *pf, int pf_n)
{
	__m512 acc[MR][NV];
	if (packed == 2)
		tile_begin_tr(mr, acc, c, ldc, m);
	else
		tile_begin(mr, acc, c, ldc, 1);
	/* One prefetch every `gap` k rather than all of them in a burst
	 * before the tile: the burst (48-95 lines for qwen0.5b's gate and
	 * lm_head panels) stalls on the miss queue, and its lines arrive
	 * later. 2 threads, M = 256, one process alternating (median of 7
	 * rounds, % of the adjacent peak): qwen0.5b lm_head / gate / down
	 * x W^T 82.7 -> 87.7 / 81.0 -> 83.8 / 80.8 -> 83.7, small's lm_head
	 * x W^T 81.4 -> 84.6; the split-K dy W 75.0 -> 79.1 (gate),
	 * 74.0 -> 80.6 (small's lm_head), 83.6 -> 85.1 (lm_head); dy^T x
	 * within the noise; 1 thread +1.5..+3.7. The same sums in the same
	 * order. */
	int pf_left = pf ? pf_n : 0;
	const int gap = pf_left ? (kc / pf_left > 0 ? kc / pf_left : 1) : kc;
	for (int k = 0; k < kc;) {
		const int k1 = kc - k > gap ? k + gap : kc;
		for (; k < k1; k++) {
			__m512 bv[NV];
#pragma GCC unroll 4
			for (int v = 0; v < NV; v++)
				bv[v] = packed ? _mm512_load_ps(b + (size_t)k * brs + 16 * v)
					       : _mm512_maskz_loadu_ps(m[v], b + (size_t)k * brs + 16 * v);
#pragma GCC unroll 16
			for (int i = 0; i < mr; i++) {
				__m512 ai = _mm512_set1_ps(a[i * ars + (size_t)k * acs]);
#pragma GCC unroll 4
				for (int v = 0; v < NV; v++) acc[i][v] = _mm512_fmadd_ps(ai, bv[v], acc[i][v]);
			}
		}
		if (pf_left > 0) prefetch_step(pf, 1), pf_left--;
	}
	if (pf_left > 0) prefetch_step(pf, pf_left);
	if (packed == 2)
		tile_end_tr(mr, acc, c, ldc, e, m);
	else
		tile_end(mr, acc, c, ldc, e, m);
}

typedef void (*tile_fn)(int kc, const float *a, long ars, long acs, const float *b, long brs, float *c, long ldc,
			const struct epi *e, const __mmask16 *m);
/* The fp32 packed path's tiles: B a packed micro-panel, and lines to
 * prefetch (tile). */
typedef void (*ptile_fn)(int kc, const float *a, long ars, long acs, const float *b, float *c, long ldc,
			 const struct epi *e, const __mmask16 *m, struct prefetch *pf, int pf_n);

/* Packed operands: A micro-panel k-major with stride MR, B with stride NR. */
#define PACKED_TILE(R) \
	static AVX512 void tile_p##R(int kc, const float *a, long ars, long acs, const float *b, float *c, long ldc, \
				     const struct epi *e, const __mmask16 *m, struct prefetch *pf, int pf_n) \
	{ \
		(void)ars; (void)acs; \
		tile(R, 1, kc, a, 1, MR, b, NR, c, ldc, e, m, pf, pf_n); \
	} \
	static AVX512 void tile_r##R(int kc, const float *a, long ars, long acs, const float *b, float *c, long ldc, \
				     const struct epi *e, const __mmask16 *m, struct prefetch *pf, int pf_n) \
	{ \
		(void)acs; \
		tile(R, 1, kc, a, ars, 1, b, NR, c, ldc, e, m, pf, pf_n); \
	} \
	static AVX512 void tile_t##R(int kc, const float *a, long ars, long acs, const float *b, float *c, long ldc, \
				     const struct epi *e, const __mmask16 *m, struct prefetch *pf, int pf_n) \
	{ \
		(void)ars; \
		tile(R, 1, kc, a, 1, acs, b, NR, c, ldc, e, m, pf, pf_n); \
	} \
	static AVX512 void tile_x##R(int kc, const float *a, long ars, long acs, const float *b, float *c, long ldc, \
				     const struct epi *e, const __mmask16 *m, struct prefetch *pf, int pf_n) \
	{ \
		(void)acs; \
		tile(R, 2, kc, a, ars, 1, b, NR, c, ldc, e, m, pf, pf_n); \
	} \
	static AVX512 void tile_d##R(int kc, const float *a, long ars, long acs, const float *b, long brs, float *c, \
				     long ldc, const struct epi *e, const __mmask16 *m) \
	{ \
		tile(R, 0, kc, a, ars, acs, b, brs, c, ldc, e, m, NULL, 0); \
	}
PACKED_TILE(1) PACKED_TILE(2) PACKED_TILE(3) PACKED_TILE(4) PACKED_TILE(5) PACKED_TILE(6) PACKED_TILE(7)
PACKED_TILE(8) PACKED_TILE(9) PACKED_TILE(10) PACKED_TILE(11) PACKED_TILE(12) PACKED_TILE(13) PACKED_TILE(14)

static const ptile_fn tiles_packed[MR + 1] = {NULL, tile_p1, tile_p2, tile_p3, tile_p4, tile_p5, tile_p6, tile_p7,
					     tile_p8, tile_p9, tile_p10, tile_p11, tile_p12, tile_p13, tile_p14};
/* A's rows in place (row stride ars), or op(A) = A^T in place (A's row
 * stride acs), B a packed micro-panel. */
static const ptile_fn tiles_rows[MR + 1] = {NULL, tile_r1, tile_r2, tile_r3, tile_r4, tile_r5, tile_r6, tile_r7,
					   tile_r8, tile_r9, tile_r10, tile_r11, tile_r12, tile_r13, tile_r14};
static const ptile_fn tiles_cols[MR + 1] = {NULL, tile_t1, tile_t2, tile_t3, tile_t4, tile_t5, tile_t6, tile_t7,
					   tile_t8, tile_t9, tile_t10, tile_t11, tile_t12, tile_t13, tile_t14};
/* C^T = W x^T: W's rows in place (row stride ars), x^T a packed
 * micro-panel, the tile stored transposed into C (xt_rect). */
static const ptile_fn tiles_xt[MR + 1] = {NULL, tile_x1, tile_x2, tile_x3, tile_x4, tile_x5, tile_x6, tile_x7,
					 tile_x8, tile_x9, tile_x10, tile_x11, tile_x12, tile_x13, tile_x14};
static const tile_fn tiles_direct[MR + 1] = {NULL, tile_d1, tile_d2, tile_d3, tile_d4, tile_d5, tile_d6, tile_d7,
					     tile_d8, tile_d9, tile_d10, tile_d11, tile_d12, tile_d13, tile_d14};

/* The bf16 micro-kernel (AVX512_BF16): as tile's packed case, with both
 * micro-panels holding K-pairs of bf16 (pack_cols_h2, pack_cols_f2h2): A's
 * unit (p, i) is the pair (2p, 2p+1) of row i, B's 32-bit lane j of unit p
 * the same pair of column j. Each vdpbf16ps adds two exact products per
 * lane in fp32, so a K-pair costs what one k costs the fp32 kernel. kc in
 * elements (an odd one's last pair is zero-padded). */
INLINE AVX512BF void tile_bf(const int mr, int kc, const float *a, const float *b, float *c, long ldc,
			     const struct epi *e, const __mmask16 *m, struct prefetch *pf, int pf_n)
{
	const int *ai32 = (const int *)a;
	__m512 acc[MR][NV];
	tile_begin(mr, acc, c, ldc, 0);
	const int kp = (kc + 1) / 2;
	/* the next B panel's source fetched one line every `gap` K-pairs, as
	 * tile does (a burst before the tile stalls on the miss queue) */
	int pf_left = pf ? pf_n : 0;
	const int gap = pf_left ? (kp / pf_left > 0 ? kp / pf_left : 1) : kp;
	for (int k = 0; k < kp;) {
		const int k1 = kp - k > gap ? k + gap : kp;
		for (; k < k1; k++) {
			__m512bh bv[NV];
#pragma GCC unroll 4
			for (int v = 0; v < NV; v++) bv[v] = (__m512bh)_mm512_load_ps(b + (size_t)k * NR + 16 * v);
#pragma GCC unroll 16
			for (int i = 0; i < mr; i++) {
				__m512bh av = (__m512bh)_mm512_set1_epi32(ai32[(size_t)k * MR + i]);
#pragma GCC unroll 4
				for (int v = 0; v < NV; v++) acc[i][v] = _mm512_dpbf16_ps(acc[i][v], av, bv[v]);
			}
		}
		if (pf_left > 0) prefetch_step(pf, 1), pf_left--;
	}
	if (pf_left > 0) prefetch_step(pf, pf_left);
	tile_end(mr, acc, c, ldc, e, m);
}

#define BF_TILE(R) \
	static AVX512BF void tile_bf##R(int kc, const float *a, long ars, long acs, const float *b, float *c, long ldc, \
					const struct epi *e, const __mmask16 *m, struct prefetch *pf, int pf_n) \
	{ \
		(void)ars; (void)acs; \
		tile_bf(R, kc, a, b, c, ldc, e, m, pf, pf_n); \
	}
BF_TILE(1) BF_TILE(2) BF_TILE(3) BF_TILE(4) BF_TILE(5) BF_TILE(6) BF_TILE(7)
BF_TILE(8) BF_TILE(9) BF_TILE(10) BF_TILE(11) BF_TILE(12) BF_TILE(13) BF_TILE(14)

static const ptile_fn tiles_bf[MR + 1] = {NULL, tile_bf1, tile_bf2, tile_bf3, tile_bf4, tile_bf5, tile_bf6, tile_bf7,
					  tile_bf8, tile_bf9, tile_bf10, tile_bf11, tile_bf12, tile_bf13, tile_bf14};

/* The bf16 product where vdpbf16ps does not pay (iapo_sgemm_bf16_dot), B a
 * weight pack's K-pair panel (tile_bf's) and A an fp32 micro-panel of
 * bf16-rounded values (tile's packed layout): each K-pair's B vector is
 * widened in registers, the even element by a shift (bits << 16), the odd
 * one by a mask (bits & 0xffff0000), one ALU operation per B vector per k
 * against mr FMAs, and multiplied as tile does, k by k in order: the same
 * sums as B's panel widened by pack_cols_h (no_bf16's bits). The decoding
 * readers keep the pack's format, half the bytes of a widened one. An odd
 * kc's last pair has no odd half to multiply (it is padding). */
INLINE AVX512 void tile_bw(const int mr, int kc, const float *a, const float *b, float *c, long ldc,
			   const struct epi *e, const __mmask16 *m, struct prefetch *pf, int pf_n)
{
	__m512 acc[MR][NV];
	tile_begin(mr, acc, c, ldc, 1);
	const __m512i hi = _mm512_set1_epi32((int)0xffff0000u);
	const int kp = (kc + 1) / 2;
	int pf_left = pf ? pf_n : 0;
	const int gap = pf_left ? (kp / pf_left > 0 ? kp / pf_left : 1) : kp;
	for (int p = 0; p < kp;) {
		const int p1 = kp - p > gap ? p + gap : kp;
		for (; p < p1; p++) {
			const float *ak = a + (size_t)(2 * p) * MR;
			__m512 bv[NV];
#pragma GCC unroll 4
			for (int v = 0; v < NV; v++)
				bv[v] = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_load_si512(b + (size_t)p * NR + 16 * v), 16));
#pragma GCC unroll 16
			for (int i = 0; i < mr; i++) {
				__m512 ai = _mm512_set1_ps(ak[i]);
#pragma GCC unroll 4
				for (int v = 0; v < NV; v++) acc[i][v] = _mm512_fmadd_ps(ai, bv[v], acc[i][v]);
			}
			if (2 * p + 1 == kc) continue; /* (the last p) */
#pragma GCC unroll 4
			for (int v = 0; v < NV; v++)
				bv[v] = _mm512_castsi512_ps(_mm512_and_si512(_mm512_load_si512(b + (size_t)p * NR + 16 * v), hi));
#pragma GCC unroll 16
			for (int i = 0; i < mr; i++) {
				__m512 ai = _mm512_set1_ps(ak[MR + i]);
#pragma GCC unroll 4
				for (int v = 0; v < NV; v++) acc[i][v] = _mm512_fmadd_ps(ai, bv[v], acc[i][v]);
			}
		}
		if (pf_left > 0) prefetch_step(pf, 1), pf_left--;
	}
	if (pf_left > 0) prefetch_step(pf, pf_left);
	tile_end(mr, acc, c, ldc, e, m);
}

#define BW_TILE(R) \
	static AVX512 void tile_bw##R(int kc, const float *a, long ars, long acs, const float *b, float *c, long ldc, \
				      const struct epi *e, const __mmask16 *m, struct prefetch *pf, int pf_n) \
	{ \
		(void)ars; (void)acs; \
		tile_bw(R, kc, a, b, c, ldc, e, m, pf, pf_n); \
	}
BW_TILE(1) BW_TILE(2) BW_TILE(3) BW_TILE(4) BW_TILE(5) BW_TILE(6) BW_TILE(7)
BW_TILE(8) BW_TILE(9) BW_TILE(10) BW_TILE(11) BW_TILE(12) BW_TILE(13) BW_TILE(14)

static const ptile_fn tiles_bw[MR + 1] = {NULL, tile_bw1, tile_bw2, tile_bw3, tile_bw4, tile_bw5, tile_bw6, tile_bw7,
					  tile_bw8, tile_bw9, tile_bw10, tile_bw11, tile_bw12, tile_bw13, tile_bw14};

/* The source of B's micro-panel at depth [pc, pc+kc), columns [j0, j0+nr). */
static void prefetch_b(struct prefetch *p, const struct job *J, long pc, long kc, long j0, long nr)
{
	if (J->Bh)
		prefetch_region(p, J->Bh + j0 * J->ldb + pc, J->ldb, (int)nr, kc, 2);
	else if (J->transB)
		prefetch_region(p, J->B + j0 * J->ldb + pc, J->ldb, (int)nr, kc, 4);
	else
		prefetch_region(p, J->B + pc * J->ldb + j0, J->ldb, (int)kc, nr, 4);
}

static AVX512 void pack_b(const struct job *J, float *dst, long pc, long kc, long j0, int nr)
{
	if (J->bf)
		pack_cols_h2(dst, J->Bh + j0 * J->ldb + pc, J->ldb, nr, (int)kc, NR);
	else if (J->Bh)
		pack_cols_h(dst, J->Bh + j0 * J->ldb + pc, J->ldb, nr, (int)kc, NR);
	else if (J->transB)
		pack_cols(dst, J->B + j0 * J->ldb + pc, J->ldb, nr, (int)kc, NR);
	else
		pack_rows(dst, J->B + pc * J->ldb + j0, J->ldb, (int)kc, nr, NR);
}

/* ---- weights packed ahead (iapo_gemm_wpack) -------------------------------- */

/* W's micro-panels exactly as pack_b lays them out in a product, all of
 * them: depth slice after depth slice (kc_step deep, the last one shorter),
 * within a slice NR-column panel after panel, each ku x NR (ku = the
 * slice's units: elements, or K-pairs when bf). A product that finds its
 * panel here multiplies the same numbers in the same order as one that
 * packed it, hence the same result to the bit. */
struct iapo_gemm_wpack {
	int N, K, ldw;
	const float *W;
	const uint16_t *Wh;
	int bf;       /* K-pair panels (vdpbf16ps); from Wh on CPUs with AVX512_BF16 */
	long kc_step; /* the depth slice the panels were cut with */
	long npan;    /* NR-column panels */
	float *buf;   /* NULL on CPUs without AVX-512 */
	size_t floats; /* this pack's own panels */
	int direct;   /* products of <= 16 rows read it too (iapo_gemm_wpack_set_direct) */
	/* one of a pair (iapo_gemm_wpack_create_pair): within each depth slice
	 * the two matrices' panels alternate, this one's panel q at 2q + half;
	 * mate: the other (same N, K, precision), owns: buf is this one's to
	 * free. A plain pack: ilv 1, half 0, no mate, owns. */
	int ilv, half, owns;
	const struct iapo_gemm_wpack *mate;
};

static long depth_step(long K, long N, int bf);

static float *wpack_panel(const iapo_gemm_wpack *p, long pc, long kc, long j0)
{
	long before = p->bf ? pc / 2 : pc, ku = p->bf ? (kc + 1) / 2 : kc;
	return p->buf + (size_t)p->npan * p->ilv * NR * (size_t)before +
	       (size_t)((j0 / NR) * p->ilv + p->half) * NR * (size_t)ku;
}

/* Whether p holds panels of product J's op(B): x W^T of its shape and
 * precision (what both paths that read a pack ask first). */
static int wpack_of(const iapo_gemm_wpack *p, const struct job *J)
{
	return p && p->buf && J->transB && !J->transA && p->N == J->N && p->K == J->K &&
	       (p->Wh != NULL) == (J->Bh != NULL);
}

/* Whether product J (packed path, planned) can read its B from p. */
static int wpack_fits(const iapo_gemm_wpack *p, const struct job *J)
{
	/* K-pair panels serve the fp32 FMAs too (tile_bw), fp32 panels never
	 * vdpbf16ps */
	return wpack_of(p, J) && (p->bf || !J->bf) && p->kc_step == J->kc_step;
}

/* Panels per item of the packing job. */
#define WPACK_CHUNK 16

static void wpack_item(void *ctx, long item, int worker)
{
	(void)worker;
	const iapo_gemm_wpack *p = ctx;
	/* pack_b reads these fields of a job */
	struct job J = {.transB = 1, .B = p->W, .Bh = p->Wh, .ldb = p->ldw, .bf = p->bf};
	for (long q = item * WPACK_CHUNK; q < p->npan && q < (item + 1) * WPACK_CHUNK; q++) {
		int nr = (int)min_l(NR, p->N - q * NR);
		for (long pc = 0; pc < p->K; pc += p->kc_step) {
			long kc = min_l(p->kc_step, p->K - pc);
			pack_b(&J, wpack_panel(p, pc, kc, q * NR), pc, kc, q * NR, nr);
		}
	}
}

static iapo_status wpack_args(int N, int K, const float *W, const uint16_t *Wh, int ldw)
{
	if (N <= 0 || K <= 0 || ldw < K)
		return iapo_fail(IAPO_ERR_ARG, "gemm.c: wpack shape: expected N, K > 0 and ldw >= K, found %d, %d, %d", N,
				 K, ldw);
	if (!W == !Wh)
		return iapo_fail(IAPO_ERR_ARG, "gemm.c: wpack weights: expected exactly one of W and Wh, found %s",
				 W ? "both" : "neither");
	return IAPO_OK;
}

static iapo_gemm_wpack wpack_init(int N, int K, const float *W, const uint16_t *Wh, int ldw)
{
	iapo_gemm_wpack p = {.N = N, .K = K, .ldw = ldw, .W = W, .Wh = Wh, .bf = Wh && has_bf16(), .ilv = 1, .owns = 1};
	p.npan = ceil_div(N, NR);
	if (has_avx512()) p.floats = (size_t)p.npan * NR * (size_t)(p.bf ? ceil_div(K, 2) : K);
	return p;
}

iapo_status iapo_gemm_wpack_create(iapo_gemm_wpack **out, int N, int K, const float *W, const uint16_t *Wh, int ldw)
{
	if (!out) return iapo_fail(IAPO_ERR_ARG, "gemm.c: wpack out: expected a pointer, found NULL");
	*out = NULL;
	IAPO_TRY(wpack_args(N, K, W, Wh, ldw));
	iapo_gemm_wpack *p = iapo_calloc(1, sizeof *p);
	if (!p) return iapo_fail(IAPO_ERR_NOMEM, "gemm.c: wpack: out of memory");
	*p = wpack_init(N, K, W, Wh, ldw);
	if (p->floats && !(p->buf = iapo_alloc_aligned(p->floats * sizeof(float)))) {
		size_t bytes = p->floats * sizeof(float);
		iapo_free(p);
		return iapo_fail(IAPO_ERR_NOMEM, "gemm.c: wpack: out of memory for %zu panel bytes", bytes);
	}
	iapo_gemm_wpack_update(p);
	*out = p;
	return IAPO_OK;
}

iapo_status iapo_gemm_wpack_create_pair(iapo_gemm_wpack *out[2], int N, int K, const float *const W[2],
					const uint16_t *const Wh[2], int ldw)
{
	if (!out) return iapo_fail(IAPO_ERR_ARG, "gemm.c: wpack pair out: expected a pointer, found NULL");
	out[0] = out[1] = NULL;
	if (!W || !Wh) return iapo_fail(IAPO_ERR_ARG, "gemm.c: wpack pair weights: expected two arrays, found NULL");
	for (int h = 0; h < 2; h++) IAPO_TRY(wpack_args(N, K, W[h], Wh[h], ldw));
	if (!W[0] != !W[1])
		return iapo_fail(IAPO_ERR_ARG, "gemm.c: wpack pair weights: expected one precision for both, found fp32 and bf16");
	iapo_gemm_wpack *p[2] = {iapo_calloc(1, sizeof *p[0]), iapo_calloc(1, sizeof *p[1])};
	if (!p[0] || !p[1]) {
		iapo_free(p[0]);
		iapo_free(p[1]);
		return iapo_fail(IAPO_ERR_NOMEM, "gemm.c: wpack pair: out of memory");
	}
	for (int h = 0; h < 2; h++) {
		*p[h] = wpack_init(N, K, W[h], Wh[h], ldw);
		p[h]->ilv = 2, p[h]->half = h, p[h]->owns = h == 0, p[h]->mate = p[1 - h];
	}
	if (p[0]->floats && !(p[0]->buf = iapo_alloc_aligned(2 * p[0]->floats * sizeof(float)))) {
		size_t bytes = 2 * p[0]->floats * sizeof(float);
		iapo_free(p[0]);
		iapo_free(p[1]);
		return iapo_fail(IAPO_ERR_NOMEM, "gemm.c: wpack pair: out of memory for %zu panel bytes", bytes);
	}
	p[1]->buf = p[0]->buf;
	for (int h = 0; h < 2; h++) {
		iapo_gemm_wpack_update(p[h]);
		out[h] = p[h];
	}
	return IAPO_OK;
}

void iapo_gemm_wpack_update(iapo_gemm_wpack *p)
{
	if (!p || !p->buf) return;
	p->kc_step = depth_step(p->K, p->N, p->Wh != NULL);
	iapo_pool_for(ceil_div(p->npan, WPACK_CHUNK), wpack_item, p);
}

void iapo_gemm_wpack_free(iapo_gemm_wpack *p)
{
	if (!p) return;
	if (p->owns) iapo_free_aligned(p->buf);
	iapo_free(p);
}

size_t iapo_gemm_wpack_bytes(const iapo_gemm_wpack *p) { return p && p->buf ? p->floats * sizeof(float) : 0; }

void iapo_gemm_wpack_set_direct(iapo_gemm_wpack *p, int on)
{
	if (p) p->direct = on != 0;
}

/* A's micro-panels for row tiles [t_lo, t_hi) of depth slice s (at pc,
 * kc deep) into ap[]: shared panels already packed; panels no one has
 * started, packed into the shared buffer by this thread; panels another
 * thread is packing right now, left for after the others and packed again
 * into this thread's own buffer only if still not ready then (never a
 * wait: a descheduled packer must not stall the others). rot rotates the
 * order so that rectangles running at once start on different tiles.
 * Packing a met panel again at once, two rectangles that met on one tile
 * went on in step, each packing the tiles the other was packing (the bf16
 * information pass, one process alternating: tiny -0.8%, small -1.4% of its
 * CPU time; fp32 x W^T with rows 4 KB apart, 256 x 1024 x 1024 on 2
 * threads: 15-22 of 19 x 2 panels packed twice a call, 2 after, +0.5..+0.8%;
 * the lm_head's within +-0.6%). */
static AVX512 void a_panels(const struct job *J, float *abuf, long s, long pc, long kc, long t_lo, long t_hi, long rot,
			    const float **ap)
{
	const long nt = t_hi - t_lo;
	long later[MC_MAX / MR + 1];
	long nl = 0;
	for (long q = 0; q < nt + nl; q++) {
		const int again = q >= nt; /* a panel left for later */
		const long t = again ? later[q - nt] : t_lo + (q + rot) % nt, i0 = t * MR;
		const int mr = (int)min_l(MR, J->M - i0);
		float *dst = abuf + (t - t_lo) * J->ku_step * MR;
		atomic_uchar *st = J->apack ? &J->astate[s * J->mtiles + t] : NULL;
		if (st) {
			float *sh = J->apack + (s * J->mtiles + t) * J->ku_step * MR;
			unsigned char v = atomic_load_explicit(st, memory_order_acquire), zero = 0;
			if (v == 2) {
				ap[t - t_lo] = sh;
				continue;
			}
			if (v == 0 && atomic_compare_exchange_strong_explicit(st, &zero, 1, memory_order_acquire,
									      memory_order_relaxed)) {
				dst = sh;
			} else if (!again) {
				later[nl++] = t; /* someone else is packing it */
				continue;
			} else {
				st = NULL; /* still being packed: pack our own copy */
			}
		}
		if (J->bf)
			pack_cols_f2h2(dst, J->A + i0 * J->lda + pc, J->lda, mr, (int)kc, MR);
		else if (J->transA)
			pack_rows(dst, J->A + pc * J->lda + i0, J->lda, (int)kc, mr, MR);
		else
			pack_cols(dst, J->A + i0 * J->lda + pc, J->lda, mr, (int)kc, MR);
		if (J->Bh && !J->bf) round_bf16_inplace(dst, kc * MR); /* bf16 B, widened: A rounded too */
		if (st) atomic_store_explicit(st, 2, memory_order_release);
		ap[t - t_lo] = dst;
	}
}

/* Region (row block rb, NR-column panel jp) of a split-K product done by
 * one more group; the last of them adds the partials of groups 1.. into C
 * (C + P1 + P2 ..., the same sums whichever thread comes last). */
static AVX512 void sk_region_done(const struct job *J, long rb, long jp, long r0, long rows, long j0, int nr)
{
	if (atomic_fetch_add_explicit(&J->skcnt[rb * J->sk_npan + jp], 1, memory_order_acq_rel) != J->sk - 1) return;
	__mmask16 msk[NV];
	for (int v = 0; v < NV; v++) msk[v] = lanes(nr - 16 * v);
	for (long i = r0; i < r0 + rows; i++) {
		float *c = J->C + i * J->ldc + j0;
		for (int v = 0; v < NV; v++) {
			__m512 x = _mm512_maskz_loadu_ps(msk[v], c + 16 * v);
			for (int g = 1; g < J->sk; g++)
				x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(msk[v], J->skp + ((size_t)(g - 1) * J->M + i) * J->ldp +
											  j0 + 16 * v));
			_mm512_mask_storeu_ps(c + 16 * v, msk[v], x);
		}
	}
}

/* Rows [m0,m1) x columns [n0,n1) of C, depth [k0,k1) (whole slices), with
 * the thread's own buffers; rot staggers the shared-panel order
 * (a_panels). group: split-K group (0 without split-K); a group > 0 sums
 * into its partial instead of C, without the epilogue. */
static AVX512 void packed_rect(const struct job *J, float *abuf, float *bbuf, long m0, long m1, long n0, long n1,
			       long rot, long k0, long k1, int group)
{
	long m = m1 - m0, n = n1 - n0, K = k1;
	if (m <= 0 || n <= 0) return;
	float *const Cd = group ? J->skp + (size_t)(group - 1) * J->M * J->ldp : J->C;
	const long ldcd = group ? J->ldp : J->ldc;
	const long kc_step = J->kc_step;
	const ptile_fn *tiles = J->a_rows ? (J->transA ? tiles_cols : tiles_rows) : tiles_packed;
	/* a weight pack's K-pair panels multiplied with fp32 FMAs (tile_bw) */
	const int bw = J->wp && J->wp->bf && !J->bf;
	long mc_step = round_up(ceil_div(m, ceil_div(m, J->mc)), MR);
	long nc_step = round_up(ceil_div(n, ceil_div(n, J->nc)), NR);
	int one_row_block = m <= mc_step;
	for (long jc = 0; jc < n; jc += nc_step) {
		long nc = min_l(nc_step, n - jc);
		for (long pc = k0; pc < K; pc += kc_step) {
			long kc = min_l(kc_step, K - pc);
			/* (a split-K group > 0 starts its partial at k0; C's
			 * epilogue goes with depth 0, also where grid_claim
			 * passes one slice at a time) */
			const int first = group ? pc == k0 : pc == 0;
			for (long ic = 0; ic < m; ic += mc_step) {
				long mc = min_l(mc_step, m - ic);
				const float *ap[MC_MAX / MR + 1];
				const long t_lo = (m0 + ic) / MR, t_hi = ceil_div(m0 + ic + mc, MR);
				if (J->a_rows)
					for (long t = t_lo; t < t_hi; t++)
						ap[t - t_lo] = J->transA ? J->A + pc * J->lda + t * MR : J->A + t * MR * J->lda + pc;
				else
					a_panels(J, abuf, pc / kc_step, pc, kc, t_lo, t_hi, rot, ap);
				for (long jr = 0; jr < nc; jr += NR) {
					long j0 = n0 + jc + jr;
					int nr = (int)min_l(NR, nc - jr);
					float *bp = J->wp ? wpack_panel(J->wp, pc, kc, j0)
						  : one_row_block ? bbuf
								  : bbuf + jr * (J->bf ? (kc + 1) / 2 : kc);
					struct prefetch pf = {0};
					if (ic == 0 && J->wp && J->wp->bf) {
						/* Pull the pack's next panel (in this depth slice,
						 * or the next slice's first) towards L2 while this
						 * one is multiplied: packing per call leaves each
						 * panel in cache, a pack's comes from memory (the
						 * bf16 pass over the rollout's packs: small -2.8%
						 * with it, none saved without). */
						const long ku = (kc + 1) / 2, nk = pc + kc < K ? min_l(kc_step, K - pc - kc) : 0;
						if (jr + NR < nc) /* (a pair's next own panel is one further) */
							prefetch_region(&pf, wpack_panel(J->wp, pc, kc, j0 + NR), 0, 1, NR * ku, 4);
						else if (nk)
							prefetch_region(&pf, wpack_panel(J->wp, pc + kc, nk, n0 + jc), 0, 1,
									NR * ((nk + 1) / 2), 4);
					}
					if (ic == 0 && !J->wp) {
						pack_b(J, bp, pc, kc, j0, nr);
						/* While this panel is multiplied, pull the source of
						 * the next one (in this depth slice or the next)
						 * towards L2, so that packing it does not wait on
						 * memory. */
						if (jr + NR < nc)
							prefetch_b(&pf, J, pc, kc, j0 + NR, min_l(NR, nc - jr - NR));
						else if (pc + kc < K)
							prefetch_b(&pf, J, pc + kc, min_l(kc_step, K - pc - kc), n0 + jc,
								   min_l(NR, nc));
					}
					int pf_per_tile = (int)ceil_div(pf.lines, ceil_div(mc, MR));
					__mmask16 msk[NV];
					for (int v = 0; v < NV; v++) msk[v] = lanes(nr - 16 * v);
					for (long ir = 0; ir < mc; ir += MR) {
						int mr = (int)min_l(MR, mc - ir);
						long row = m0 + ic + ir;
						float *c = Cd + row * ldcd + j0;
						/* the epilogue once, with the first depth slice;
						 * later slices add to C (a partial: alpha only) */
						struct epi e = {J->alpha, first ? J->beta : 1.0f,
								first && J->R ? J->R + row * J->ldr + j0 : NULL,
								first && J->bias ? J->bias + j0 : NULL, J->ldr};
						if (group && first) e = (struct epi){J->alpha, 0.0f, NULL, NULL, 0};
						if (J->bf)
							tiles_bf[mr]((int)kc, ap[ir / MR], 0, 0, bp, c, ldcd, &e, msk, &pf, pf_per_tile);
						else if (bw)
							tiles_bw[mr]((int)kc, ap[ir / MR], 0, 0, bp, c, ldcd, &e, msk, &pf, pf_per_tile);
						else
							tiles[mr]((int)kc, ap[ir / MR], J->lda, J->lda, bp, c, ldcd, &e, msk, &pf,
								  pf_per_tile);
					}
					if (J->sk > 1 && pc + kc >= K)
						sk_region_done(J, (m0 + ic) / mc_step, j0 / NR, m0 + ic, mc, j0, nr);
				}
			}
		}
	}
}

/* x W^T as C^T = W x^T for C's columns [f0, f1) (W's rows), all of its
 * rows: W's rows are the micro-kernel's broadcast operand, read in place
 * (never packed), and x^T, M columns, is packed once per depth slice into
 * the thread's buffer. Each element of C sums the same products in the
 * same order as packed_rect's (the same depth slices, k ascending within
 * each, one FMA chain per element, the epilogue with the first slice), so
 * the result is the same to the bit; only the tile is stored transposed.
 * W streams from memory once, with the next tile's rows prefetched
 * through the micro-kernel, where packed_rect packs (transposes) every
 * panel of it. */
/* x^T's depth slice [pc, pc+kc) packed into xbuf: NR-column panels. */
static AVX512 void xt_pack(const struct job *J, float *xbuf, long pc, long kc)
{
	const long M = J->M, np = ceil_div(M, NR);
	for (long p = 0; p < np; p++)
		pack_cols(xbuf + p * NR * kc, J->A + p * NR * J->lda + pc, J->lda, (int)min_l(NR, M - p * NR), (int)kc, NR);
}

/* C's columns [f0, f1) (W's rows) for the depth slice [pc, pc+kc), x^T's
 * slice packed in xbuf; [n0, n1) at depth [pc1, pc1+kc1) is what comes
 * next (its first tile's rows are prefetched during the last tile). */
static AVX512 void xt_rows(const struct job *J, const float *xbuf, long pc, long kc, long f0, long f1, long n0,
			   long n1, long pc1, long kc1)
{
	const long M = J->M, np = ceil_div(M, NR), ldw = J->ldb;
	const int first = pc == 0;
	for (long f = f0; f < f1; f += MR) {
		const int mr = (int)min_l(MR, f1 - f);
		const float *w = J->B + f * ldw + pc;
		struct prefetch pf = {0};
		if (f + MR < f1)
			prefetch_region(&pf, w + MR * ldw, ldw, (int)min_l(MR, f1 - f - MR), kc, 4);
		else if (n1 > n0)
			prefetch_region(&pf, J->B + n0 * ldw + pc1, ldw, (int)min_l(MR, n1 - n0), kc1, 4);
		const int pf_per_tile = (int)ceil_div(pf.lines, np);
		for (long p = 0; p < np; p++) {
			const long t0 = p * NR, nt = min_l(NR, M - t0);
			__mmask16 msk[NV];
			for (int v = 0; v < NV; v++) msk[v] = lanes(nt - 16 * v);
			struct epi e = {J->alpha, first ? J->beta : 1.0f, first && J->R ? J->R + t0 * J->ldr + f : NULL,
					first && J->bias ? J->bias + f : NULL, J->ldr};
			tiles_xt[mr]((int)kc, w, ldw, 1, xbuf + p * NR * kc, J->C + t0 * J->ldc + f, J->ldc, &e, msk, &pf,
				     pf_per_tile);
		}
	}
}

/* x W^T as C^T = W x^T for C's columns [f0, f1) (W's rows), all of its
 * rows: W's rows are the micro-kernel's broadcast operand, read in place
 * (never packed), and x^T, M columns, is packed once per depth slice into
 * the thread's buffer. Each element of C sums the same products in the
 * same order as packed_rect's (the same depth slices, k ascending within
 * each, one FMA chain per element, the epilogue with the first slice), so
 * the result is the same to the bit; only the tile is stored transposed.
 * W streams from memory once, with the next tile's rows prefetched
 * through the micro-kernel, where packed_rect packs (transposes) every
 * panel of it. */
static AVX512 void xt_rect(const struct job *J, float *xbuf, long f0, long f1)
{
	if (f1 <= f0) return;
	const long K = J->K, kc_step = J->kc_step;
	for (long pc = 0; pc < K; pc += kc_step) {
		const long kc = min_l(kc_step, K - pc), nk = pc + kc < K ? min_l(kc_step, K - pc - kc) : 0;
		xt_pack(J, xbuf, pc, kc);
		xt_rows(J, xbuf, pc, kc, f0, f1, nk ? f0 : 0, nk ? f1 : 0, pc + kc, nk);
	}
}

/* Until *done reaches s: a short spin, then sleeps, so that a CPU whose
 * thread waits on one that was descheduled goes idle and the scheduler can
 * move that one there (a spin would hold the CPU it needs). */
static void xt_wait(atomic_int *done, int s)
{
	for (int i = 0; atomic_load_explicit(done, memory_order_acquire) < s; i++) {
		if (i < 512) {
			_mm_pause();
		} else {
			struct timespec ts = {0, 20000};
			nanosleep(&ts, NULL);
		}
	}
}

/* xt_rect on 2 threads with W's rows claimed chunk by chunk: a thread
 * packs x^T's slice (as each does in xt_rect) and takes chunks of that
 * slice while any are left, one thread from the front and the other from
 * the back, so each keeps mostly the same rows (and their lines of C)
 * slice after slice, and one held up (another process on its CPU, a
 * slower minute for its cache) leaves its last chunks to the other instead
 * of making it wait at the end of the call. A chunk's slice s starts once
 * its slice s-1 is stored (xtdone), so every element of C sums its slices
 * in order, in the same tiles: the same bits as xt_rect's. A slice with no
 * chunk left is not packed. 2 threads, one process alternating call by
 * call with the static halves (bench/gemm's buffers, % of the adjacent
 * peak, median of 30 rounds, rounds won; three runs): qwen0.5b gate
 * x W^T (256 x 4864 x 896) 80.5 -> 83.9 (28/30), 79.1 -> 82.2 (26/30),
 * 79.0 -> 81.9 (30/30); down (256 x 896 x 4864) 78.7 -> 82.5 (30/30),
 * 76.5 -> 80.2 (29/30), 86.1 -> 86.2 (20/30); q and o (256 x 896 x 896)
 * -0.3..-0.4 (13-14/30); gate at M = 64 +5.0 / +1.8 (30/30 twice), at
 * M = 128 0.0 / +2.9 / -1.6. One shared counter instead of the two ends
 * (chunks change threads from slice to slice, and their lines of C with
 * them) read -2.2..+3.2 on down and gate, not steady. */
/* The next chunk of slice s for side `back` (0: from the front, 1: from
 * the back), or -1 when none is left: one word holds both sides' counts
 * (low: front, high: back), so the two never take the same chunk. */
static long xt_take(_Atomic uint64_t *w, long nch, int back)
{
	uint64_t v = atomic_load_explicit(w, memory_order_relaxed);
	for (;;) {
		const long f = (long)(v & 0xFFFFFFFFu), b = (long)(v >> 32);
		if (f + b >= nch) return -1;
		if (atomic_compare_exchange_weak_explicit(w, &v, v + (back ? (uint64_t)1 << 32 : 1), memory_order_relaxed,
							  memory_order_relaxed))
			return back ? nch - 1 - b : f;
	}
}

static AVX512 void xt_claim(const struct job *J, float *xbuf, int back)
{
	const long K = J->K, kc_step = J->kc_step, nch = J->xt_nchunks, ch = J->xt_chunk;
	for (long pc = 0, s = 0; pc < K; pc += kc_step, s++) {
		const long kc = min_l(kc_step, K - pc);
		_Atomic uint64_t *w = &J->xtnext[s];
		/* the next chunk is claimed before this one is multiplied, so that
		 * its first tile's rows are prefetched during this one's last */
		long c = xt_take(w, nch, back);
		if (c < 0) continue;
		xt_pack(J, xbuf, pc, kc);
		while (c >= 0) {
			const long c1 = xt_take(w, nch, back);
			if (s > 0) xt_wait(&J->xtdone[c], (int)s);
			const long f0 = c * ch, f1 = min_l(J->N, f0 + ch);
			const long n0 = c1 >= 0 ? c1 * ch : 0, n1 = c1 >= 0 ? min_l(J->N, n0 + ch) : 0;
			xt_rows(J, xbuf, pc, kc, f0, f1, n0, n1, pc, kc);
			atomic_store_explicit(&J->xtdone[c], (int)s + 1, memory_order_release);
			c = c1;
		}
	}
}

/* A 1 x tn grid on 2 threads with C's columns claimed chunk by chunk,
 * slice by slice, as xt_claim claims W's rows: one thread from the front,
 * the other from the back, a chunk's slice s only once its slice s-1 is
 * stored (xtdone). Each element of C sums the same depth slices in the
 * same tiles in the same order as in the static grid (packed_rect over one
 * slice at a time, the epilogue with the first), so the same bits. A
 * thread held up leaves its last chunks of each slice to the other instead
 * of making it wait at the end of the call: the static grid's 2 items
 * (an op(A) over L2: small's down x W^T, gate dy W) had no slack at all,
 * and its 4 (k/v, N = 128 or K = 128) one item each. */
static AVX512 void grid_claim(const struct job *J, float *abuf, float *bbuf, int back)
{
	const long K = J->K, kc_step = J->kc_step, nch = J->xt_nchunks;
	const long rot = back ? ceil_div(ceil_div(J->M, MR), 2) : 0;
	for (long pc = 0, s = 0; pc < K; pc += kc_step, s++) {
		const long kc = min_l(kc_step, K - pc);
		for (long c; (c = xt_take(&J->xtnext[s], nch, back)) >= 0;) {
			long n0, n1;
			split_range(J->N, NR, (int)nch, (int)c, &n0, &n1);
			if (s > 0) xt_wait(&J->xtdone[c], (int)s);
			packed_rect(J, abuf, bbuf, 0, J->M, n0, n1, rot, pc, pc + kc, 0);
			atomic_store_explicit(&J->xtdone[c], (int)s + 1, memory_order_release);
		}
	}
}

/* Rectangle `item` of the grid, with worker's slice of the workspace. */
static void packed_item(void *ctx, long item, int worker)
{
	const struct job *J = ctx;
	float *abuf = J->ws + (size_t)worker * J->ws_stride;
	float *bbuf = abuf + J->a_floats;
	long m0, m1, n0, n1;
	if (J->xt) {
		if (J->xtnext) {
			xt_claim(J, abuf, item & 1);
			return;
		}
		split_range(J->N, MR, J->tn, (int)item, &n0, &n1);
		xt_rect(J, abuf, n0, n1);
		return;
	}
	if (J->claim) {
		grid_claim(J, abuf, bbuf, item & 1);
		return;
	}
	if (J->sk > 1) {
		/* group `item`: its share of the depth slices, all of C */
		long ns = ceil_div(J->K, J->kc_step);
		long s0 = ns * item / J->sk, s1 = ns * (item + 1) / J->sk;
		packed_rect(J, abuf, bbuf, 0, J->M, 0, J->N, 0, s0 * J->kc_step, min_l(J->K, s1 * J->kc_step),
			    (int)item);
		return;
	}
	split_range(J->M, MR, J->tm, (int)(item / J->tn), &m0, &m1);
	split_range(J->N, NR, J->tn, (int)(item % J->tn), &n0, &n1);
	packed_rect(J, abuf, bbuf, m0, m1, n0, n1, (item % J->tn) * ceil_div(ceil_div(m1 - m0, MR), J->tn), 0, J->K, 0);
}

/* The depth slice packed_plan chooses for depth K and N columns of C (bf:
 * K-pair panels). It depends on K and N alone, never on M or the threads,
 * so that x W^T's sums do not either. */
static long depth_step(long K, long N, int bf)
{
	/* A C this wide (the lm_head's: 155 MB at qwen0.5b, M = 256) streams
	 * from memory, and each depth slice reads and writes it once more;
	 * one slice where K allows it. qwen0.5b's lm_head x W^T (K = 896, one
	 * slice instead of two of 448), one process alternating: +3.2% on one
	 * thread, +3.5% on two (80.0 -> 83.5% of the peak), and +3.8% at
	 * K = 1024. The B micro-panel then streams from L2 rather than L1,
	 * which narrower products pay for (session 4: 896 for every product
	 * cost the down projection's dy W 4.3%). */
	if (!blk_kc && !bf && N >= WIDE_C_N && K <= WIDE_C_KC) return K;
	long kc = blk_kc ? blk_kc : bf ? KC_BF_DEF : KC_DEF;
	long step = ceil_div(K, ceil_div(K, kc));
	return bf ? round_up(step, 2) : step;
}

/* Sets the grid of rectangles and buffer sizes for nth threads; returns 0
 * when the workspace could not be had. */
static int packed_plan(struct job *J, int nth)
{
	J->mc = blk_mc ? round_up(blk_mc < MC_MAX ? blk_mc : MC_MAX - MR, MR) : MC_DEF;
	J->kc = blk_kc ? blk_kc : J->bf ? KC_BF_DEF : KC_DEF;
	J->nc = blk_nc ? round_up(blk_nc, NR) : NC_DEF;
	long mt = ceil_div(J->M, MR), nt = ceil_div(J->N, NR);
	/* Rectangles: OVERSUB per thread when each keeps enough work and
	 * op(A) fits L2 (every rectangle of a row range streams all of its A:
	 * more rectangles of a larger A cost more L3 traffic than the balance
	 * they buy). */
	int items = nth;
	if (nth > 1 && (double)J->M * J->N * J->K >= (double)min_fma_per_thread * nth * OVERSUB &&
	    (double)J->M * J->K * sizeof(float) <= OVERSUB_A_MAX)
		items = nth * OVERSUB;
	/* the same slices as the weight packs, which depend on it */
	long kc_step = depth_step(J->K, J->N, J->Bh != NULL);
	long nslices = ceil_div(J->K, kc_step), ku_step = J->bf ? kc_step / 2 : kc_step;
	/* A's rows read in place where op(A) = A in fp32 (bf16 products
	 * round A as they pack it), MR rows do not share one L1 set, and
	 * C is not very wide. Measured against packing, M = 256, one
	 * process alternating (median of rounds, % of the fp32 peak):
	 * qwen0.5b kv x W^T 83 -> 88% on one thread, 78 -> 88% on two (with
	 * the grid below instead of split-K); q and o x W^T 76-78 -> 82-87%,
	 * q dy W 77 -> 87%, down x W^T 81 -> 83% on two; the rest of
	 * qwen0.5b's x W^T and dy W within +-1%, small and tiny's x W^T +1-4%
	 * on one. Rows 4 KB apart (K = 1024, 2048, 3072) lost 2.5-4% on one
	 * thread, and the lm_head (N = 151936: 4748 micro-panels of B each
	 * stream A's rows; the packed panels stream better) 1-1.5% on two:
	 * those pack A. op(A) = A^T (the weight gradients dy^T x) reads a
	 * row's MR consecutive floats per k, whatever the stride: 2 threads
	 * q / kv / o / gate dy^T x 82-84 -> 84-90%, small's and tiny's q
	 * 57-74 -> 81-87%, lm_head's 83.5 -> 86.0%; 1 thread -2..+4%; rows
	 * 4 KB apart +-1%. */
	J->a_rows = a_rows_mode && !J->Bh &&
		    (a_rows_mode == 2 ||
		     (J->N < 8192 && (J->transA || (J->lda * (long)sizeof(float)) % 4096 != 0)));
	/* With several rectangles side by side (tn > 1), op(A)'s panels are
	 * shared when they fit: packed about once instead of tn times. */
	size_t ashare = (size_t)nslices * (size_t)mt * (size_t)(ku_step * MR);
	int share = items > 1 && ashare <= (size_t)SHARE_A_MAX;
	/* Of the grids tm x tn = items that give every rectangle a tile, take
	 * the one that moves the least: every rectangle packs its columns of B
	 * and reads all of its rows of A, from its own packing (tn packings in
	 * all), or from the shared one. A shared A that fits L2 costs one
	 * packing whatever tn is: a rectangle streams it once per B
	 * micro-panel, and the micro-panels are the same however the columns
	 * are cut. Counting it tn times chose 2 x 2 over 1 x 4 for the few
	 * column blocks of k/v (N = 128), which packs B twice: 6% more CPU time
	 * for qwen0.5b's kv x W^T, 4-8% for the tiny and small shapes (same
	 * grid run on one thread). */
	const int a_once = share && (double)J->M * J->K * sizeof(float) <= OVERSUB_A_MAX;
	int best_tm = 0;
	for (; items >= 1 && !best_tm; items--) {
		double best = 0;
		for (int tm = 1; tm <= items; tm++) {
			if (items % tm) continue;
			int tn = items / tm;
			if (tm > mt || tn > nt) continue;
			double cost = (double)J->M * (a_once ? 1 : tn) + (double)J->N * tm;
			if (!best_tm || cost < best) best_tm = tm, best = cost;
		}
		if (best_tm) break;
	}
	if (!best_tm) items = best_tm = 1;
	/* bf16 B packed ahead (a weight pack: the information pass, the bf16
	 * rollouts) with C at most 256 columns (k/v, tiny's q/o, small's k/v):
	 * one row range per thread, each packing (rounding) only its own rows
	 * of A, where the grid above takes column rectangles over A's panels
	 * shared between the threads (fp32 reads A's rows in place there, bf16
	 * must round them as it packs) or split-K. Either way the same depth
	 * slices, so the same bits. 2 threads, one process alternating call by
	 * call, 16 rounds each, 16/16 faster unless noted: M = 128 / 256 / 512,
	 * tiny q/o x1.30 / 1.29 / 1.29, k/v x1.50 / 1.47 / 1.49, down x1.28 /
	 * 1.22 / 1.06 (13/16), small k/v x1.29 / 1.37 / 1.31, qwen0.5b k/v
	 * (split-K before) x1.23 / 1.17 / 1.24; small q/o (N = 512) x1.00;
	 * a later run, M = 256: x1.19, 1.36, 1.04, 1.22, 1.14 (15/16). With B
	 * unpacked (each thread then packs all of B) mixed: tiny k/v x1.14-1.37,
	 * small k/v x1.10-1.23 in one run and x0.98 (1/16) in the next, tiny's
	 * down x0.93, qwen0.5b's k/v x0.95-1.0: not taken. Not while a test
	 * hook forces split-K or A's packing. Nor where another product of
	 * the call reads the same A (same_a shares its panels): q, k and v
	 * with packs, one call, the same measure: tiny x0.975-0.979 (0-1/16),
	 * small x0.959-0.989 (0-3/16), qwen0.5b x1.02-1.08 (13-16/16). */
	const int bf_rows = bf_rows_mode && J->Bh && nth > 1 && mt >= nth && split_mode == 1 && a_rows_mode == 1 &&
			    (bf_rows_mode == 2 || (J->N <= 8 * NR && !J->a_mates && wpack_of(J->wp, J) && (J->wp->bf || !J->bf) &&
						   J->wp->kc_step == kc_step));
	if (bf_rows) {
		items = best_tm = nth;
		share = 0;
	}
	/* Split-K: each thread a share of the depth slices over all of C,
	 * partial sums added region by region (sk_region_done), when the
	 * grid would pack op(A) once per column rectangle (too large to
	 * share in L2: the lm_head's dx, the down projection, ...) or C has
	 * few columns (k/v, N <= 128: the grid's rectangles then read A's
	 * panels packed by the other core). Measured on 2 threads, M = 256,
	 * each product alternating with the grid in one process (fastest
	 * decile): qwen0.5b kv nt -1.5..-2.4%, down nt -1.4..-5%, gate nn
	 * -1.4..-2.3%, lm_head nn -1..-3%, small lm_head nn -5%. Only
	 * whole slices in equal shares (or many): 3 slices on 2 threads ran
	 * 3-4% slower, and thinner slices to even them out as much.
	 * x W^T (the forward, prefill, the information pass) splits only
	 * with one slice per thread, where the partials are added in the
	 * sequential order: its bits stay those of one thread whatever the
	 * thread count and the rows (generate.h promises a sequence's
	 * completion independent of both; several slices per thread would
	 * sum in another order, and whether a product splits depends on M).
	 * That leaves down nt's 5% on the table. With A's rows read in place
	 * (a_rows) a narrow C takes the grid: nothing of A is packed, and the
	 * rectangles balance where split-K's two halves wait for each other
	 * and add partials (qwen0.5b kv x W^T, 2 threads, two runs: 84 -> 88%,
	 * 68 -> 86%). */
	J->sk = 0;
	J->sk_floats = 0;
	int want_sk = !bf_rows && (split_mode == 2 || (split_mode == 1 && ((best_tm == 1 && items > 1 && !a_once) ||
									   (J->N <= 4 * NR && !J->a_rows))));
	int xwt = J->transB && !J->transA;
	if (nth > 1 && want_sk && nslices >= nth &&
	    (xwt ? nslices == nth : nslices % nth == 0 || nslices >= 4 * nth)) {
		J->sk = nth;
		items = nth;
		best_tm = 1;
		share = 0;
		/* Split-K packs A: each thread only its own slices, nothing
		 * shared, and an A this large comes from L3 or memory, whose
		 * latency the packing loop hides and the micro-kernel, reading
		 * rows in place, does not (2 threads: qwen0.5b lm_head dy W
		 * 78.6 -> 84.7%, gate dy W 78.0 -> 80.3%, one process
		 * alternating; bench/gemm read them 3-4 points under packing). */
		J->a_rows = 0;
	}
	J->nth = nth < items ? nth : items;
	J->tm = best_tm;
	J->tn = J->sk ? 1 : items / best_tm;
	J->apack = NULL;
	J->astate = NULL;
	J->apack_floats = J->astate_floats = 0;
	J->mtiles = mt;
	J->kc_step = kc_step;
	J->ku_step = ku_step;
	/* (the grid is chosen as if A were shared also when its rows are
	 * read in place: their reads cost what the shared panels' do) */
	if (share && items > 1 && !J->a_rows) {
		J->apack_floats = ashare;
		J->astate_floats = (size_t)ceil_div(nslices * mt, (long)sizeof(float));
	}
	/* Upper bounds of packed_rect's block sizes over the threads. */
	long m_max = ceil_div(mt, J->tm) * MR, n_max = ceil_div(nt, J->tn) * NR;
	long mc_max = min_l(m_max, J->mc);
	long nc_max = min_l(n_max, J->nc);
	J->a_floats = J->a_rows ? 0 : (size_t)round_up(mc_max * ku_step, 16);
	J->b_floats = (size_t)round_up((m_max <= J->mc ? NR : nc_max) * ku_step, 16);
	J->ws_stride = J->a_floats + J->b_floats;
	if (J->sk) {
		long mc_step = round_up(ceil_div(J->M, ceil_div(J->M, J->mc)), MR);
		J->sk_npan = nt;
		J->sk_regions = ceil_div(J->M, mc_step) * nt;
		J->ldp = round_up(J->N, 16);
		J->sk_floats = (size_t)(J->sk - 1) * (size_t)J->M * (size_t)J->ldp +
			       (size_t)ceil_div(J->sk_regions * (long)sizeof(atomic_int), (long)sizeof(float));
	}
	/* C^T = W x^T (xt_rect), each thread a range of W's rows: x W^T in
	 * fp32 with W not packed ahead, W too large to stay in cache between
	 * calls (N >= 512, K >= 896), M small enough for x^T's slice to stay
	 * in L2, C not as wide as the lm_head's (which takes one deep slice),
	 * W's rows not 4 KB apart, and no more of the tiles wasted on padding
	 * (M in NR-column panels, N in MR-row tiles) than the other way round.
	 * One process alternating per call, M = 256, % of the adjacent fp32
	 * peak (median of 100-300 pairs): 1 thread qwen0.5b gate / down / q
	 * 73.0 -> 78.1 / 82.5 -> 83.7 / 85.5 -> 88.4, 2 threads 82.8 -> 85.7 /
	 * 84.0 -> 86.8 / 82.8 -> 85.7; gate at M = 64 / 128 on 2 threads
	 * 68.2 -> 79.0 / 78.6 -> 86.1. Where W stays in cache (small's and
	 * tiny's products) packing it costs little and each thread's packing
	 * of all of x^T shows: forced, 2 threads, small q / down -2.8 / -3.2%,
	 * tiny q / down -10 / -8%, qwen0.5b k/v (N = 128) -18%; M = 200 with
	 * its ragged last panel, q -7%. Part of the tuned rule: a test hook
	 * that forces split-K or op(A)'s packing (iapo_sgemm_split_k,
	 * iapo_sgemm_a_rows) gets the formulation it asks for.
	 * And W larger than x^T over all the threads (N > nth * M): each
	 * thread packs all of x^T (nth * M * K floats a call) where the usual
	 * path packs W once (N * K); at N = nth * M xt saves no packing and
	 * loses to the grid's finer rectangles. small's down x W^T (N = 512,
	 * K = 1536, M = 256), which the other bounds let in, 2 threads, one
	 * process alternating per call, median of 40 rounds: 79.1 -> 82.7%
	 * as the usual path (40 of 40 rounds faster), where qwen0.5b's q and
	 * gate keep xt (84.3 / 83.0% against 81.4 / 81.0% without). */
	J->xt = xwt && !J->Bh && !wpack_fits(J->wp, J) && J->M <= XT_M_MAX &&
		(xt_mode == 2 || (xt_mode == 1 && split_mode == 1 && a_rows_mode == 1 && J->N >= XT_N_MIN &&
				  J->N > (long)nth * J->M &&
				  J->N < WIDE_C_N && J->K >= XT_K_MIN && (J->ldb * (long)sizeof(float)) % 4096 != 0 &&
				  (double)J->M / round_up(J->M, NR) * J->N / round_up(J->N, MR) >=
					  (double)J->M / round_up(J->M, MR) * J->N / round_up(J->N, NR)));
	if (J->xt) {
		J->sk = 0;
		J->sk_floats = 0;
		J->a_rows = 0;
		J->apack_floats = J->astate_floats = 0;
		J->tm = 1;
		J->tn = (int)min_l(nth, ceil_div(J->N, MR));
		J->nth = J->tn;
		J->a_floats = (size_t)round_up(round_up(J->M, NR) * kc_step, 16);
		J->b_floats = 0;
		J->ws_stride = J->a_floats;
		J->xt_floats = 0;
		if (J->tn == 2 && XT_CLAIM_CHUNKS > 0) {
			/* whole tiles and whole lines of C (8 tiles: 112 columns,
			 * 448 bytes): two threads' chunks never share a line of C */
			J->xt_chunk = round_up(ceil_div(J->N, (long)J->tn * XT_CLAIM_CHUNKS), 8 * MR);
			J->xt_nchunks = ceil_div(J->N, J->xt_chunk);
			/* + 16: run_jobs aligns the counters to a line */
			J->xt_floats = 16 + (size_t)ceil_div(nslices * (long)sizeof(uint64_t) +
								    J->xt_nchunks * (long)sizeof(atomic_int),
							    (long)sizeof(float));
		}
	}
	/* fp32, no split-K, one row range and one row block (M <= mc): on 2
	 * threads the columns are claimed (grid_claim) instead of cut into tn
	 * static rectangles. 2 threads, bench/gemm's products at M = 256, one
	 * process alternating call by call, % of the adjacent peak, median of
	 * 25 rounds, two runs: the 34 products it takes +0.7 / +0.8 points at
	 * the median (rounds won 16.6 / 16.4 of 25 on average; the 8 it does
	 * not take, the same code on both sides: 11.5 / 11.6), e.g. tiny gate
	 * dy W 67.7 -> 71.4 / 66.7 -> 70.3, qwen0.5b o dy W 59.5 -> 63.2 /
	 * 64.1 -> 65.4, k/v dy W 59.9 -> 60.3 / 58.2 -> 60.6. With more than
	 * one row block each chunk streams all of A's rows again: qwen0.5b's
	 * q and o dy^T x (M = 896) claimed read -3.5..+0.6 (1-6 of 10-12
	 * rounds won, three runs), so those keep the static grid. */
	J->claim = 0;
	const long nchunks = 2L * (claim_mode > 1 ? claim_mode : GRID_CLAIM_CHUNKS);
	if (claim_mode && nchunks >= J->tn && nt >= nchunks && !J->xt && !J->sk && !J->Bh && nth == 2 && J->tm == 1 &&
	    J->tn >= 2 && (claim_mode > 1 || J->M <= J->mc)) {
		/* whole micro-panels, as even as they go (split_range): the two
		 * ends meet in the middle with equal shares (equal-width chunks,
		 * 7 of them for N = 896, left one thread 4: k/v dy W -5 points) */
		J->claim = 1;
		J->xt_nchunks = nchunks;
		J->tn = 2;
		J->nth = 2;
		/* a chunk is no wider than the static grid's rectangles (nchunks
		 * >= tn), so the buffers sized for those serve; + 16: run_jobs
		 * aligns the counters to a line */
		J->xt_floats = 16 + (size_t)ceil_div(nslices * (long)sizeof(uint64_t) +
							    J->xt_nchunks * (long)sizeof(atomic_int),
						    (long)sizeof(float));
	}
	return 1;
}

/* The dot kernels' mb x nb accumulators zeroed. */
INLINE AVX512 void dots_zero(const int mb, const int nb, __m512 acc[DOT_MB][DOT_NB])
{
#pragma GCC unroll 8
	for (int i = 0; i < mb; i++)
#pragma GCC unroll 8
		for (int j = 0; j < nb; j++) acc[i][j] = _mm512_setzero_ps();
}

/* C(i, j) = alpha * (the sum of acc[i][j]'s lanes) + the epilogue's addend. */
INLINE AVX512 void dots_store(const int mb, const int nb, __m512 acc[DOT_MB][DOT_NB], float *c, long ldc,
			      const struct epi *e)
{
#pragma GCC unroll 8
	for (int i = 0; i < mb; i++)
#pragma GCC unroll 8
		for (int j = 0; j < nb; j++) {
			float s = e->alpha * _mm512_reduce_add_ps(acc[i][j]);
			float *cc = c + i * ldc + j;
			if (e->bias) s += e->bias[j];
			if (e->r) s += e->r[i * e->ldr + j];
			else if (e->beta != 0.0f) s += e->beta * *cc;
			*cc = s;
		}
}

/* Dot products of mb rows of A with nb rows of B (B transposed), K long.
 * half: A's and B's rows are bf16 at ah and bh (a and b unused), widened to
 * fp32 as they are loaded (CPUs without AVX512_BF16). pf is a byte address a
 * few rows ahead in whichever B is read. */
INLINE AVX512 void dot_block(const int mb, const int nb, const int half, int K, const float *a, const uint16_t *ah,
			     long lda, const float *b, const uint16_t *bh, long ldb, float *c, long ldc,
			     const struct epi *e, const char *pf)
{
	const long pfs = half ? 2 : 4; /* bytes per element of B */
	__m512 acc[DOT_MB][DOT_NB];
	dots_zero(mb, nb, acc);
	int k = 0;
	for (; k + 16 <= K; k += 16) {
		__m512 bv[DOT_NB];
#pragma GCC unroll 8
		for (int j = 0; j < nb; j++) {
			bv[j] = half ? load_h(bh + j * ldb + k) : _mm512_loadu_ps(b + j * ldb + k);
			/* Keep B in a register: folded into the FMAs as memory
			 * operands (GCC's choice) it is loaded mb times, and the
			 * load ports, not the FMA pipes, set the pace. */
			__asm__("" : "+v"(bv[j]));
		}
#pragma GCC unroll 8
		for (int j = 0; j < nb; j++) _mm_prefetch(pf + (j * ldb + k) * pfs, DOT_PF_HINT);
#pragma GCC unroll 8
		for (int i = 0; i < mb; i++) {
			__m512 av = half ? load_h(ah + i * lda + k) : _mm512_loadu_ps(a + i * lda + k);
#pragma GCC unroll 8
			for (int j = 0; j < nb; j++) acc[i][j] = _mm512_fmadd_ps(av, bv[j], acc[i][j]);
		}
	}
	if (k < K) {
		__mmask16 lm = lanes(K - k);
		__m512 bv[DOT_NB];
#pragma GCC unroll 8
		for (int j = 0; j < nb; j++)
			bv[j] = half ? maskz_load_h(lm, bh + j * ldb + k) : _mm512_maskz_loadu_ps(lm, b + j * ldb + k);
#pragma GCC unroll 8
		for (int i = 0; i < mb; i++) {
			__m512 av = half ? maskz_load_h(lm, ah + i * lda + k) : _mm512_maskz_loadu_ps(lm, a + i * lda + k);
#pragma GCC unroll 8
			for (int j = 0; j < nb; j++) acc[i][j] = _mm512_fmadd_ps(av, bv[j], acc[i][j]);
		}
	}
	dots_store(mb, nb, acc, c, ldc, e);
}

/* dot_block with bf16 A and B multiplied by vdpbf16ps (AVX512_BF16): 32
 * products per instruction, summed in fp32, so a decoding step's FMA work
 * halves and the weights' bytes, not the arithmetic, set the pace. A's rows
 * are zero-padded to lda (a multiple of 32); B's tail is masked. */
INLINE AVX512BF void dotbf_block(const int mb, const int nb, int K, const uint16_t *ah, long lda, const uint16_t *bh,
				 long ldb, float *c, long ldc, const struct epi *e, const char *pf)
{
	__m512 acc[DOT_MB][DOT_NB];
	dots_zero(mb, nb, acc);
	for (int k = 0; k < K; k += 32) {
		const __mmask32 lm = K - k >= 32 ? 0xFFFFFFFFu : (__mmask32)((1u << (K - k)) - 1);
		__m512i bv[DOT_NB];
#pragma GCC unroll 8
		for (int j = 0; j < nb; j++) {
			bv[j] = _mm512_maskz_loadu_epi16(lm, bh + j * ldb + k);
			__asm__("" : "+v"(bv[j]));
		}
#pragma GCC unroll 8
		for (int j = 0; j < nb; j++) _mm_prefetch(pf + (j * ldb + k) * 2, DOT_PF_HINT);
#pragma GCC unroll 8
		for (int i = 0; i < mb; i++) {
			__m512i av = _mm512_loadu_si512((const void *)(ah + i * lda + k));
#pragma GCC unroll 8
			for (int j = 0; j < nb; j++) acc[i][j] = _mm512_dpbf16_ps(acc[i][j], (__m512bh)av, (__m512bh)bv[j]);
		}
	}
	dots_store(mb, nb, acc, c, ldc, e);
}

typedef void (*dot_fn)(int K, const float *a, const uint16_t *ah, long lda, const float *b, const uint16_t *bh,
		       long ldb, float *c, long ldc, const struct epi *e, const char *pf);
#define DOT(MB, NB) \
	static AVX512 void dot_##MB##_##NB(int K, const float *a, const uint16_t *ah, long lda, const float *b, \
					   const uint16_t *bh, long ldb, float *c, long ldc, const struct epi *e, \
					   const char *pf) \
	{ \
		dot_block(MB, NB, 0, K, a, ah, lda, b, bh, ldb, c, ldc, e, pf); \
	} \
	static AVX512 void doth_##MB##_##NB(int K, const float *a, const uint16_t *ah, long lda, const float *b, \
					    const uint16_t *bh, long ldb, float *c, long ldc, const struct epi *e, \
					    const char *pf) \
	{ \
		dot_block(MB, NB, 1, K, a, ah, lda, b, bh, ldb, c, ldc, e, pf); \
	} \
	static AVX512BF void dotbf_##MB##_##NB(int K, const float *a, const uint16_t *ah, long lda, const float *b, \
					       const uint16_t *bh, long ldb, float *c, long ldc, const struct epi *e, \
					       const char *pf) \
	{ \
		(void)a; (void)b; \
		dotbf_block(MB, NB, K, ah, lda, bh, ldb, c, ldc, e, pf); \
	}
#define DOT_ROW(MB) DOT(MB, 1) DOT(MB, 2) DOT(MB, 3) DOT(MB, 4) DOT(MB, 5)
DOT_ROW(1) DOT_ROW(2) DOT_ROW(3) DOT_ROW(4)
#define DOT_PTRS(P, MB) {NULL, P##_##MB##_1, P##_##MB##_2, P##_##MB##_3, P##_##MB##_4, P##_##MB##_5}
/* [mode][mb][nb], mode as direct_cols's */
static const dot_fn dots[3][DOT_MB + 1][DOT_NB + 1] = {
	{{NULL}, DOT_PTRS(dot, 1), DOT_PTRS(dot, 2), DOT_PTRS(dot, 3), DOT_PTRS(dot, 4)},
	{{NULL}, DOT_PTRS(doth, 1), DOT_PTRS(doth, 2), DOT_PTRS(doth, 3), DOT_PTRS(doth, 4)},
	{{NULL}, DOT_PTRS(dotbf, 1), DOT_PTRS(dotbf, 2), DOT_PTRS(dotbf, 3), DOT_PTRS(dotbf, 4)},
};

/* Sums of 16 vectors: lane i of the result is the sum of a[i]'s lanes (45
 * shuffles and adds rather than 16 separate reductions). */
INLINE AVX512 __m512 reduce16_v(__m512 a0, __m512 a1, __m512 a2, __m512 a3, __m512 a4, __m512 a5, __m512 a6,
				 __m512 a7, __m512 a8, __m512 a9, __m512 a10, __m512 a11, __m512 a12, __m512 a13,
				 __m512 a14, __m512 a15)
{
	const __m512 a[16] = {a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15};
	__m512 u[8], w[4];
	for (int p = 0; p < 8; p++) /* per 128-bit lane: a[2p] and a[2p+1], 2 partials each */
		u[p] = _mm512_add_ps(_mm512_unpacklo_ps(a[2 * p], a[2 * p + 1]), _mm512_unpackhi_ps(a[2 * p], a[2 * p + 1]));
	for (int g = 0; g < 4; g++) { /* per 128-bit lane: the 4 vectors 4g..4g+3, 1 partial each */
		__m512d x = _mm512_castps_pd(u[2 * g]), y = _mm512_castps_pd(u[2 * g + 1]);
		w[g] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(x, y)), _mm512_castpd_ps(_mm512_unpackhi_pd(x, y)));
	}
	__m512 x = _mm512_add_ps(_mm512_shuffle_f32x4(w[0], w[1], 0x88), _mm512_shuffle_f32x4(w[0], w[1], 0xdd));
	__m512 y = _mm512_add_ps(_mm512_shuffle_f32x4(w[2], w[3], 0x88), _mm512_shuffle_f32x4(w[2], w[3], 0xdd));
	return _mm512_add_ps(_mm512_shuffle_f32x4(x, y, 0x88), _mm512_shuffle_f32x4(x, y, 0xdd));
}

/* The accumulator array passed by value: its address never escapes, so GCC
 * keeps it in registers (passed by pointer, it stored all 16 to the stack
 * on every iteration of the k loop). */
#define REDUCE16(a) \
	reduce16_v(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11], a[12], a[13], a[14], a[15])

/* Stores the 16 sums of an 8x2 block (lane j*8 + i of s: row i of A, row j
 * of B; the accumulators reduced by reduce16 in the kernel, so that they
 * stay in registers); with nb = 1, lanes 0-7 only, into column j0. */
INLINE AVX512 void store_8xn(const int nb, const int j0, __m512 s, float *c, long ldc, const struct epi *e)
{
	float sum[16];
	_mm512_storeu_ps(sum, _mm512_mul_ps(s, _mm512_set1_ps(e->alpha)));
	for (int jj = 0; jj < nb; jj++)
		for (int i = 0; i < 8; i++) {
			const int j = j0 + jj;
			float v = sum[jj * 8 + i], *cc = c + i * ldc + j;
			if (e->bias) v += e->bias[j];
			if (e->r) v += e->r[i * e->ldr + j];
			else if (e->beta != 0.0f) v += e->beta * *cc;
			*cc = v;
		}
}

/* Dot products of 8 rows of A with nb (1-3) rows of B (B transposed), K
 * long: the decoding shape (8 sequences), every row of B read once. Each
 * row of A is loaded once per nb rows of W: 8 + nb loads per 8 * nb FMAs
 * (at nb = 3, 11 per 24 against 10 per 16 at nb = 2). Every sum (i, j) is
 * the same whatever nb and whichever column of the block j is: 16 lanes
 * over k in steps of 16, the masked tail, then reduce16_v's tree, which adds
 * each vector's lanes the same way wherever it sits among the 16. half as
 * dot_block. */
INLINE AVX512 void dot_8xn_t(const int nb, const int half, int K, const float *a, const uint16_t *ah, long lda,
			     const float *b, const uint16_t *bh, long ldb, float *c, long ldc, const struct epi *e,
			     const char *pf)
{
	const long pfs = half ? 2 : 4;
	__m512 acc[24]; /* acc[j*8 + i]: row i of A, row j of B */
#pragma GCC unroll 24
	for (int t = 0; t < 24; t++) acc[t] = _mm512_setzero_ps();
	int k = 0;
	for (; k + 16 <= K; k += 16) {
		__m512 bv[3];
#pragma GCC unroll 3
		for (int j = 0; j < nb; j++) {
			bv[j] = half ? load_h(bh + j * ldb + k) : _mm512_loadu_ps(b + j * ldb + k);
			__asm__("" : "+v"(bv[j]));
		}
#pragma GCC unroll 3
		for (int j = 0; j < nb; j++) _mm_prefetch(pf + (j * ldb + k) * pfs, DOT_PF_HINT);
#pragma GCC unroll 8
		for (int i = 0; i < 8; i++) {
			__m512 av = half ? load_h(ah + i * lda + k) : _mm512_loadu_ps(a + i * lda + k);
			if (nb > 2) __asm__("" : "+v"(av)); /* one load for the 3 FMAs */
#pragma GCC unroll 3
			for (int j = 0; j < nb; j++) acc[j * 8 + i] = _mm512_fmadd_ps(av, bv[j], acc[j * 8 + i]);
		}
	}
	if (k < K) {
		__mmask16 lm = lanes(K - k);
		__m512 bv[3];
#pragma GCC unroll 3
		for (int j = 0; j < nb; j++)
			bv[j] = half ? maskz_load_h(lm, bh + j * ldb + k) : _mm512_maskz_loadu_ps(lm, b + j * ldb + k);
#pragma GCC unroll 8
		for (int i = 0; i < 8; i++) {
			__m512 av = half ? maskz_load_h(lm, ah + i * lda + k) : _mm512_maskz_loadu_ps(lm, a + i * lda + k);
#pragma GCC unroll 3
			for (int j = 0; j < nb; j++) acc[j * 8 + i] = _mm512_fmadd_ps(av, bv[j], acc[j * 8 + i]);
		}
	}
	const __m512 z = _mm512_setzero_ps();
	if (nb == 1)
		store_8xn(1, 0, reduce16_v(acc[0], acc[1], acc[2], acc[3], acc[4], acc[5], acc[6], acc[7], z, z, z, z, z, z,
					   z, z),
			  c, ldc, e);
	else
		store_8xn(2, 0, REDUCE16(acc), c, ldc, e);
	if (nb == 3)
		store_8xn(1, 2, reduce16_v(acc[16], acc[17], acc[18], acc[19], acc[20], acc[21], acc[22], acc[23], z, z, z, z,
					   z, z, z, z),
			  c, ldc, e);
}

static AVX512 void dot_8x2(int K, const float *a, const uint16_t *ah, long lda, const float *b, const uint16_t *bh,
			   long ldb, float *c, long ldc, const struct epi *e, const char *pf)
{
	dot_8xn_t(2, 0, K, a, ah, lda, b, bh, ldb, c, ldc, e, pf);
}

static AVX512 void dot_8x3(int K, const float *a, const uint16_t *ah, long lda, const float *b, const uint16_t *bh,
			   long ldb, float *c, long ldc, const struct epi *e, const char *pf)
{
	dot_8xn_t(3, 0, K, a, ah, lda, b, bh, ldb, c, ldc, e, pf);
}

static AVX512 void dot_8x1(int K, const float *a, const uint16_t *ah, long lda, const float *b, const uint16_t *bh,
			   long ldb, float *c, long ldc, const struct epi *e, const char *pf)
{
	dot_8xn_t(1, 0, K, a, ah, lda, b, bh, ldb, c, ldc, e, pf);
}

static AVX512 void doth_8x2(int K, const float *a, const uint16_t *ah, long lda, const float *b, const uint16_t *bh,
			    long ldb, float *c, long ldc, const struct epi *e, const char *pf)
{
	dot_8xn_t(2, 1, K, a, ah, lda, b, bh, ldb, c, ldc, e, pf);
}

/* dot_8x2 with vdpbf16ps (dotbf_block's operands). */
static AVX512BF void dotbf_8x2(int K, const float *a, const uint16_t *ah, long lda, const float *b,
			       const uint16_t *bh, long ldb, float *c, long ldc, const struct epi *e, const char *pf)
{
	(void)a; (void)b;
	__m512 acc[16];
#pragma GCC unroll 16
	for (int t = 0; t < 16; t++) acc[t] = _mm512_setzero_ps();
	const int Kf = K & ~31;
	for (int k = 0; k < K; k += 32) {
		const __mmask32 lm = k < Kf ? 0xFFFFFFFFu : lanes32(K - k);
		__m512i b0 = _mm512_maskz_loadu_epi16(lm, bh + k);
		__m512i b1 = _mm512_maskz_loadu_epi16(lm, bh + ldb + k);
		__asm__("" : "+v"(b0), "+v"(b1));
		_mm_prefetch(pf + k * 2, DOT_PF_HINT);
		_mm_prefetch(pf + (ldb + k) * 2, DOT_PF_HINT);
#pragma GCC unroll 8
		for (int i = 0; i < 8; i++) {
			__m512bh av = (__m512bh)_mm512_loadu_si512((const void *)(ah + i * lda + k));
			acc[i] = _mm512_dpbf16_ps(acc[i], av, (__m512bh)b0);
			acc[8 + i] = _mm512_dpbf16_ps(acc[8 + i], av, (__m512bh)b1);
		}
	}
	store_8xn(2, 0, REDUCE16(acc), c, ldc, e);
}

/* Dot products of 8 rows of A with one row of B by vdpbf16ps: every row of
 * W read start to end before the next, so that W, whose rows follow each
 * other, streams as one sequence; 16 accumulators (two per row of A, for
 * alternate 32-element blocks) to cover vdpbf16ps's latency. */
static AVX512BF void dotbf_8x1(int K, const float *a, const uint16_t *ah, long lda, const float *b,
			       const uint16_t *bh, long ldb, float *c, long ldc, const struct epi *e, const char *pf)
{
	(void)a; (void)b; (void)ldb;
	__m512 acc[16];
#pragma GCC unroll 16
	for (int t = 0; t < 16; t++) acc[t] = _mm512_setzero_ps();
	int k = 0;
	for (; k + 64 <= K; k += 64) {
		__m512i b0 = _mm512_loadu_si512((const void *)(bh + k));
		__m512i b1 = _mm512_loadu_si512((const void *)(bh + k + 32));
		__asm__("" : "+v"(b0), "+v"(b1));
		_mm_prefetch(pf + k * 2, DOT_PF_HINT);
		_mm_prefetch(pf + k * 2 + 64, DOT_PF_HINT);
#pragma GCC unroll 8
		for (int i = 0; i < 8; i++) {
			__m512bh a0 = (__m512bh)_mm512_loadu_si512((const void *)(ah + i * lda + k));
			__m512bh a1 = (__m512bh)_mm512_loadu_si512((const void *)(ah + i * lda + k + 32));
			acc[i] = _mm512_dpbf16_ps(acc[i], a0, (__m512bh)b0);
			acc[8 + i] = _mm512_dpbf16_ps(acc[8 + i], a1, (__m512bh)b1);
		}
	}
	if (k < K) {
		const __mmask32 lm = lanes32(K - k);
		__m512i b0 = _mm512_maskz_loadu_epi16(lm, bh + k);
		_mm_prefetch(pf + k * 2, DOT_PF_HINT);
#pragma GCC unroll 8
		for (int i = 0; i < 8; i++) {
			__m512bh a0 = (__m512bh)_mm512_loadu_si512((const void *)(ah + i * lda + k));
			acc[i] = _mm512_dpbf16_ps(acc[i], a0, (__m512bh)b0);
		}
		if (k + 32 < K) {
			__m512i b1 = _mm512_maskz_loadu_epi16(lanes32(K - k - 32), bh + k + 32);
#pragma GCC unroll 8
			for (int i = 0; i < 8; i++) {
				__m512bh a1 = (__m512bh)_mm512_loadu_si512((const void *)(ah + i * lda + k + 32));
				acc[8 + i] = _mm512_dpbf16_ps(acc[8 + i], a1, (__m512bh)b1);
			}
		}
	}
	__m512 s = REDUCE16(acc);
	__m256 r = _mm256_add_ps(_mm512_castps512_ps256(s), _mm512_extractf32x8_ps(s, 1));
	float sum[8];
	_mm256_storeu_ps(sum, _mm256_mul_ps(r, _mm256_set1_ps(e->alpha)));
	for (int i = 0; i < 8; i++) {
		float v = sum[i], *cc = c + i * ldc;
		if (e->bias) v += e->bias[0];
		if (e->r) v += e->r[i * e->ldr];
		else if (e->beta != 0.0f) v += e->beta * *cc;
		*cc = v;
	}
}

/* The pack readers' epilogue for rows i0.. of J (the first depth slice's;
 * later slices add with beta 1 and nothing else). */
INLINE struct epi dotp_epi(const struct job *J, int i0)
{
	return (struct epi){J->alpha, J->beta, J->R ? J->R + (long)i0 * J->ldr : NULL, J->bias, J->ldr};
}

/* The panel a pack reader's slot q (of a run from Bp) holds: its first
 * column *j0, and the row i0 of the C it goes to. One pack (or one of a
 * pair read alone) has its panel q there, every ilv-th; a pair's stream
 * has both: slot 2q is wp's panel q, 2q + 1 its mate's. */
INLINE float *dotp_dest(const struct job *J, long q, int i0, long *j0)
{
	if (J->pair) {
		*j0 = (q >> 1) * NR;
		return (q & 1 ? J->Cu : J->C) + (long)i0 * J->ldc;
	}
	*j0 = q * NR;
	return J->C + (long)i0 * J->ldc;
}

/* Floats from one slot of a run to the next, for ku-deep panels. */
INLINE long dotp_step(const struct job *J, long ku) { return NR * ku * (J->pair ? 1 : J->wp->ilv); }

/* Stores the pack readers' mb x NR tile acc of panel q into C (row i0 of
 * J's C), the columns under N only. */
INLINE AVX512 void dotp_store(const int mb, const struct job *J, const iapo_gemm_wpack *p, float *C,
			      const struct epi *e, long j0, __m512 acc[8][NV])
{
#pragma GCC unroll 2
	for (int v = 0; v < NV; v++) {
		const __mmask16 m = lanes(p->N - j0 - 16 * v);
		if (!m) break;
#pragma GCC unroll 8
		for (int i = 0; i < mb; i++)
			store_row(C + i * J->ldc + j0 + 16 * v, acc[i][v], m, e, i, (int)(j0 + 16 * v));
	}
}

/* The step of a panel kc steps deep (NR floats a step) from which a
 * prefetch dist bytes ahead would pass its end: the pack readers' last panel
 * of a run turns their prefetch to `next` there, the same columns' panels in
 * the next depth slice (npan panels further on: down's are 1.7 MB apart in
 * fp32), which the run goes on with. */
static inline long pf_switch(long kc, long dist)
{
	const long k = kc - dist / (NR * 4);
	return k > 0 ? k : 0;
}

/* The pack readers' prefetch, t1 (a constant in each reader) choosing the
 * hint: T0 (to L1) or T1 (to L2). */
INLINE void dotp_pf(const int t1, const char *a)
{
	if (t1) _mm_prefetch(a, _MM_HINT_T1);
	else _mm_prefetch(a, DOT_PF_HINT);
}

/* One k of dotp_rows: panel b's NR floats of step k against one float of
 * every row of A, prefetching at pf. */
INLINE AVX512 void dotp_k(const int mb, __m512 acc[8][NV], const float *b, const float *a, long lda, long k,
			  const char *pf, const int t1)
{
	__m512 w[NV];
#pragma GCC unroll 2
	for (int v = 0; v < NV; v++) {
		w[v] = _mm512_load_ps(b + k * NR + 16 * v);
		dotp_pf(t1, pf + 16 * v * 4);
	}
#pragma GCC unroll 8
	for (int i = 0; i < mb; i++) {
		const __m512 av = _mm512_set1_ps(a[i * lda + k]);
#pragma GCC unroll 2
		for (int v = 0; v < NV; v++) acc[i][v] = _mm512_fmadd_ps(av, w[v], acc[i][v]);
	}
}

/* x W^T for mb <= 8 rows of A (from row i0) from W's panels packed ahead (iapo_gemm_wpack,
 * fp32: per depth slice, NR-column panels, each kc deep with the NR floats
 * of one k together): panels [q0, q1) of depth slice pc (kc deep), into C's
 * columns q0*NR.. (those under N), the first slice with the epilogue and
 * the others summed into C. Each k broadcasts one float of every row of A
 * (from L1) against the panel's two vectors: W streams as one sequence, and
 * A costs scalar loads instead of the 8 vector loads per 128 bytes of W
 * that dot_8x2 issues. A /tmp kernel over 2 GB, 8 rows, K = 896 (08:16,
 * alternating, 5 rounds): 2 threads 43.8-46.1 GB/s against dot_8x2's
 * layout at 33.9-35.9 (a plain read 43.5-49.4); 1 thread 35.8-36.2 against
 * 26.0-26.7. */
INLINE AVX512 void dotp_rows(const int mb, const struct job *J, const iapo_gemm_wpack *p, long pc, long kc, long q0,
			     long q1, const float *Bp, int i0, const float *next, const int t1)
{
	const long lda = J->lda, step = dotp_step(J, kc);
	const float *a = J->A + i0 * lda + pc;
	const struct epi e0 = dotp_epi(J, i0), e1 = {J->alpha, 1.0f, NULL, NULL, 0};
	const struct epi *e = pc == 0 ? &e0 : &e1;
	for (long q = q0; q < q1; q++) {
		const float *b = Bp + (size_t)q * (size_t)step;
		const long ks = next && q == q1 - 1 ? pf_switch(kc, DOT_PF_BYTES) : kc;
		__m512 acc[8][NV];
#pragma GCC unroll 8
		for (int i = 0; i < mb; i++)
#pragma GCC unroll 2
			for (int v = 0; v < NV; v++) acc[i][v] = _mm512_setzero_ps();
		/* Two k per trip (the same sums in the same order): session 17 in one
		 * process, switched per decode step, qwen0.5b 8 rows: fp32 step
		 * -8 to -10% (49 -> 45 ms), bf16 -12% (26.2 -> 23.0 ms); the loop's
		 * own work (counter, prefetch switch test) per 16 FMAs kept the
		 * loads fewer in flight. Session 18 split the loop at the prefetch's
		 * turn to `next` instead of a test and a pointer of its own each k:
		 * before the turn the prefetch is an offset from the panel's loads. */
#pragma GCC unroll 2
		for (long k = 0; k < ks; k++) dotp_k(mb, acc, b, a, lda, k, (const char *)(b + k * NR) + DOT_PF_BYTES, t1);
#pragma GCC unroll 2
		for (long k = ks; k < kc; k++) dotp_k(mb, acc, b, a, lda, k, (const char *)next + (k - ks) * NR * 4, t1);
		long j0;
		float *C = dotp_dest(J, q, i0, &j0);
		dotp_store(mb, J, p, C, e, j0, acc);
	}
}

/* One unit of dotpbf_rows: panel b's NR K-pairs of unit u against one pair
 * of every row of A, prefetching at pf. */
INLINE AVX512BF void dotpbf_u(const int mb, __m512 acc[8][NV], const float *b, const uint16_t *a, long lda, long u,
			      const char *pf, const int t1)
{
	__m512 w[NV];
#pragma GCC unroll 2
	for (int v = 0; v < NV; v++) {
		w[v] = _mm512_load_ps(b + u * NR + 16 * v);
		dotp_pf(t1, pf + 16 * v * 4);
	}
#pragma GCC unroll 8
	for (int i = 0; i < mb; i++) {
		uint32_t pair;
		memcpy(&pair, a + i * lda + 2 * u, sizeof pair);
		const __m512bh av = (__m512bh)_mm512_set1_epi32((int)pair);
#pragma GCC unroll 2
		for (int v = 0; v < NV; v++) acc[i][v] = _mm512_dpbf16_ps(acc[i][v], av, (__m512bh)w[v]);
	}
}

/* dotp_rows from a bf16 pack (K-pair panels: unit u of column r holds W's
 * elements 2u, 2u+1 of row r as bf16, the operand vdpbf16ps multiplies):
 * each unit broadcasts one pair of every row of A (J->Ah, A rounded to bf16
 * with a zero pad past K) against the panel's two vectors, one vdpbf16ps
 * each. The bf16 weights stream as one sequence, as the fp32 packs do. */
INLINE AVX512BF void dotpbf_rows(const int mb, const struct job *J, const iapo_gemm_wpack *p, long pc, long kc,
				 long q0, long q1, const float *Bp, int i0, const float *next, const int t1)
{
	const long lda = J->ldah, ku = (kc + 1) / 2, step = dotp_step(J, ku);
	const uint16_t *a = J->Ah + i0 * lda + pc;
	const struct epi e0 = dotp_epi(J, i0), e1 = {J->alpha, 1.0f, NULL, NULL, 0};
	const struct epi *e = pc == 0 ? &e0 : &e1;
	for (long q = q0; q < q1; q++) {
		const float *b = Bp + (size_t)q * (size_t)step;
		const long us = next && q == q1 - 1 ? pf_switch(ku, DOTPBF_PF_BYTES) : ku;
		__m512 acc[8][NV];
#pragma GCC unroll 8
		for (int i = 0; i < mb; i++)
#pragma GCC unroll 2
			for (int v = 0; v < NV; v++) acc[i][v] = _mm512_setzero_ps();
		/* Two units per trip, the loop split at the prefetch's turn, as
		 * dotp_rows. */
#pragma GCC unroll 2
		for (long u = 0; u < us; u++)
			dotpbf_u(mb, acc, b, a, lda, u, (const char *)(b + u * NR) + DOTPBF_PF_BYTES, t1);
#pragma GCC unroll 2
		for (long u = us; u < ku; u++) dotpbf_u(mb, acc, b, a, lda, u, (const char *)next + (u - us) * NR * 4, t1);
		long j0;
		float *C = dotp_dest(J, q, i0, &j0);
		dotp_store(mb, J, p, C, e, j0, acc);
	}
}

/* One unit of dotpbw_rows: panel b's NR K-pairs of unit u widened in
 * registers (the odd element by a mask, the even one by a shift, as
 * tile_bw) against A's elements 2u + 1, then 2u, as floats (af, ldf): one
 * vdpbf16ps lane as Intel defines it, the odd product first, each rounded. */
INLINE AVX512 void dotpbw_u(const int mb, __m512 acc[8][NV], const float *b, const float *af, long ldf, long u,
			    const char *pf, const int t1)
{
	__m512i raw[NV];
	__m512 w[NV];
#pragma GCC unroll 2
	for (int v = 0; v < NV; v++) {
		raw[v] = _mm512_load_si512(b + u * NR + 16 * v);
		dotp_pf(t1, pf + 16 * v * 4);
		w[v] = _mm512_castsi512_ps(_mm512_and_si512(raw[v], _mm512_set1_epi32((int)0xffff0000u)));
	}
#pragma GCC unroll 8
	for (int i = 0; i < mb; i++) {
		const __m512 av = _mm512_set1_ps(af[i * ldf + 2 * u + 1]);
#pragma GCC unroll 2
		for (int v = 0; v < NV; v++) acc[i][v] = _mm512_fmadd_ps(av, w[v], acc[i][v]);
	}
#pragma GCC unroll 2
	for (int v = 0; v < NV; v++) w[v] = _mm512_castsi512_ps(_mm512_slli_epi32(raw[v], 16));
#pragma GCC unroll 8
	for (int i = 0; i < mb; i++) {
		const __m512 av = _mm512_set1_ps(af[i * ldf + 2 * u]);
#pragma GCC unroll 2
		for (int v = 0; v < NV; v++) acc[i][v] = _mm512_fmadd_ps(av, w[v], acc[i][v]);
	}
}

/* dotpbf_rows with fp32 FMAs, for CPUs whose vdpbf16ps does not pay
 * (bf16_pays, the start-up probe: on session 16's and 18's Xeons a
 * vdpbf16ps ran at about a quarter of an FMA's instruction rate, so the 16
 * per 128 bytes of W held a core under what memory gave it). Two FMAs per
 * pair instead of one vdpbf16ps, on A's rounded rows as floats (dotp_run's
 * af, a row of A every ldf floats from depth pc, its pad past K zero as
 * J->Ah's): each lane's odd product, then its even one, as Intel defines
 * vdpbf16ps, so where this CPU's vdpbf16ps is that (session 18's Xeon) the
 * bits are dotpbf_rows'. Session 18's 2-vCPU Xeon, qwen0.5b bf16 decode
 * switched per step in one process: with the T1 prefetch +12.0..+12.8% a
 * step against main's reader (8 of 8 rounds), the T1 prefetch alone
 * +4.9..+6.6% (4 of 4). */
INLINE AVX512 void dotpbw_rows(const int mb, const struct job *J, const iapo_gemm_wpack *p, long pc, long kc,
			       long q0, long q1, const float *Bp, int i0, const float *next, const float *af, long ldf,
			       const int t1)
{
	const long ku = (kc + 1) / 2, step = dotp_step(J, ku);
	const float *a = af + i0 * ldf;
	const struct epi e0 = dotp_epi(J, i0), e1 = {J->alpha, 1.0f, NULL, NULL, 0};
	const struct epi *e = pc == 0 ? &e0 : &e1;
	for (long q = q0; q < q1; q++) {
		const float *b = Bp + (size_t)q * (size_t)step;
		const long us = next && q == q1 - 1 ? pf_switch(ku, DOTPBF_PF_BYTES) : ku;
		__m512 acc[8][NV];
#pragma GCC unroll 8
		for (int i = 0; i < mb; i++)
#pragma GCC unroll 2
			for (int v = 0; v < NV; v++) acc[i][v] = _mm512_setzero_ps();
		/* the loop split at the prefetch's turn, as dotpbf_rows */
#pragma GCC unroll 2
		for (long u = 0; u < us; u++)
			dotpbw_u(mb, acc, b, a, ldf, u, (const char *)(b + u * NR) + DOTPBF_PF_BYTES, t1);
#pragma GCC unroll 2
		for (long u = us; u < ku; u++) dotpbw_u(mb, acc, b, a, ldf, u, (const char *)next + (u - us) * NR * 4, t1);
		long j0;
		float *C = dotp_dest(J, q, i0, &j0);
		dotp_store(mb, J, p, C, e, j0, acc);
	}
}

/* A pack reader: slots [q0, q1) of depth slice pc (kc deep) from Bp, rows
 * i0.. of A (bf16 FMAs: af, ldf, A's rounded slice as floats). */
typedef void (*dotp_fn)(const struct job *J, const iapo_gemm_wpack *p, long pc, long kc, long q0, long q1,
			const float *Bp, int i0, const float *next, const float *af, long ldf);
#define DOTP_T(MB, T1) \
	static AVX512 void dotp_##MB##_##T1(const struct job *J, const iapo_gemm_wpack *p, long pc, long kc, long q0, \
					    long q1, const float *Bp, int i0, const float *next, const float *af, long ldf) \
	{ \
		(void)af, (void)ldf; \
		dotp_rows(MB, J, p, pc, kc, q0, q1, Bp, i0, next, T1); \
	} \
	static AVX512BF void dotpbf_##MB##_##T1(const struct job *J, const iapo_gemm_wpack *p, long pc, long kc, \
						long q0, long q1, const float *Bp, int i0, const float *next, \
						const float *af, long ldf) \
	{ \
		(void)af, (void)ldf; \
		dotpbf_rows(MB, J, p, pc, kc, q0, q1, Bp, i0, next, T1); \
	} \
	static AVX512 void dotpbw_##MB##_##T1(const struct job *J, const iapo_gemm_wpack *p, long pc, long kc, \
					      long q0, long q1, const float *Bp, int i0, const float *next, \
					      const float *af, long ldf) \
	{ \
		dotpbw_rows(MB, J, p, pc, kc, q0, q1, Bp, i0, next, af, ldf, T1); \
	}
#define DOTP(MB) DOTP_T(MB, 0) DOTP_T(MB, 1)
DOTP(1)
DOTP(2)
DOTP(3)
DOTP(4)
DOTP(5)
DOTP(6)
DOTP(7)
DOTP(8)
#define DOTP_TAB(K, T1) {NULL, K##_1_##T1, K##_2_##T1, K##_3_##T1, K##_4_##T1, K##_5_##T1, K##_6_##T1, K##_7_##T1, K##_8_##T1}
/* [kind: fp32, vdpbf16ps, bf16 by FMAs][hint: T0, T1][rows] */
static const dotp_fn dotp_fns[3][2][9] = {
	{DOTP_TAB(dotp, 0), DOTP_TAB(dotp, 1)},
	{DOTP_TAB(dotpbf, 0), DOTP_TAB(dotpbf, 1)},
	{DOTP_TAB(dotpbw, 0), DOTP_TAB(dotpbw, 1)},
};

/* The pack readers' prefetch hint: T1 (to L2) on Intel CPUs, T0
 * elsewhere. Session 18, a 2-vCPU Xeon (AVX512_BF16, AMX), qwen0.5b decode
 * switched per step in one process: T1 against T0 at the same distances,
 * fp32 step +13.5..+17% (2 of 2 rounds), bf16 +3.9..+4.8% (3 of 3); T1 at
 * twice the distance no better, no software prefetch -33%, NTA -24%. On
 * Zen 5 (sessions 13-17) T0 was measured and T1 alone not, so it stays
 * there. A prefetch changes no result. */
static int dotp_t1(void)
{
	static int known = -1;
	if (known < 0) {
		__builtin_cpu_init();
		known = __builtin_cpu_is("intel") != 0;
	}
	return known;
}

/* Whether the direct path reads J's W from its pack: x W^T, at most 16 rows
 * (the direct path's; 9-16 as two groups over each panel), a pack its creator
 * opened to few-row products (iapo_gemm_wpack_set_direct: other bits than
 * reading W, so never by default), made from this very W or Wh (same address,
 * shape and stride) under the depth slice in force (as the packed path asks);
 * from Wh, only K-pair panels while the bf16 kernels are on (J->Ah is A in
 * bf16 then). */
static int dotp_fits(const struct job *J)
{
	const iapo_gemm_wpack *p = J->wp;
	if (!wpack_of(p, J) || !p->direct || J->M < 1 || J->M > 16 || p->ldw != J->ldb) return 0;
	if (J->Bh) /* K-pair panels, read by vdpbf16ps: only while this CPU's bf16 kernels are on */
		return p->bf && has_bf16() && J->Ah && p->Wh == J->Bh && p->kc_step == depth_step(p->K, p->N, 1);
	return !p->bf && p->W == J->B && p->kc_step == depth_step(p->K, p->N, 0);
}

/* Deepest slice whose rows of A dotp_run widens on its stack for the FMA
 * reader (16 rows: 32 KB); bf16 packs are KC_BF_DEF deep unless a test sets
 * the blocking, and deeper slices keep vdpbf16ps. */
#define DOTPBW_KC_MAX 512

/* Slots [q0, q1) of J's pack (dotp_dest), every depth slice, the rows of A
 * in groups of at most 8. A bf16 pack is read by vdpbf16ps where the
 * packed path's probe says it pays (bf16_pays), by FMAs on the widened
 * values elsewhere, with A's slice widened here once for all its panels. */
static AVX512 void dotp_run(const struct job *J, long q0, long q1)
{
	const iapo_gemm_wpack *p = J->wp;
	if (q0 >= q1) return;
	const int bw = J->Bh && p->kc_step <= DOTPBW_KC_MAX && !bf16_pays();
	const dotp_fn *f = dotp_fns[J->Bh ? 1 + bw : 0][dotp_t1()];
	float af[16 * DOTPBW_KC_MAX] __attribute__((aligned(64)));
	const long ldf = DOTPBW_KC_MAX;
	for (long pc = 0; pc < p->K; pc += p->kc_step) {
		const long kc = min_l(p->kc_step, p->K - pc);
		const float *Bp = wpack_panel(p, pc, kc, 0);
		/* where this run of panels goes on: slot q0 in the next slice */
		const long pn = pc + p->kc_step, kn = min_l(p->kc_step, p->K - pn);
		const float *next =
			pn < p->K ? wpack_panel(p, pn, kn, 0) + q0 * dotp_step(J, p->bf ? (kn + 1) / 2 : kn) : NULL;
		if (bw) /* the slice's pairs of A as floats (its zero pad past K included) */
			for (long i = 0; i < J->M; i++)
				for (long k = 0, k1 = 2 * ((kc + 1) / 2); k < k1; k += 16) {
					const __mmask16 m = k1 - k >= 16 ? 0xFFFF : (__mmask16)((1u << (k1 - k)) - 1);
					const __m256i h = _mm256_maskz_loadu_epi16(m, J->Ah + i * J->ldah + pc + k);
					_mm512_store_si512(af + i * ldf + k, _mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
				}
		if (J->M <= 8) {
			f[J->M](J, p, pc, kc, q0, q1, Bp, 0, next, af, ldf);
			continue;
		}
		/* 9-16 rows: both groups of rows over each panel while it is in cache */
		for (long q = q0; q < q1; q++) {
			f[8](J, p, pc, kc, q, q + 1, Bp, 0, q == q1 - 1 ? next : NULL, af, ldf);
			f[J->M - 8](J, p, pc, kc, q, q + 1, Bp, 8, NULL, af, ldf);
		}
	}
}

/* Columns [n0,n1) of J from its pack. A piece takes the panels that start
 * in it (the last may reach past n1 into the next piece's columns, which
 * then starts at its first whole panel): every column once, whatever the
 * split, and no panel read twice. */
static AVX512 void dotp_cols(const struct job *J, long n0, long n1) { dotp_run(J, ceil_div(n0, NR), ceil_div(n1, NR)); }

/* Panels [u0, u1) of a pair (J->pair) as one stream, both products, then
 * their columns' SwiGLU while they are in cache. */
static AVX512 void dotp_pair(const struct job *J, long u0, long u1)
{
	dotp_run(J, 2 * u0, 2 * u1);
	const long c0 = u0 * NR, c1 = min_l(J->N, u1 * NR);
	if (c0 >= c1) return;
	for (long i = 0; i < J->M; i++)
		iapo_swiglu_forward(J->act + i * J->ldact + c0, J->C + i * J->ldc + c0, J->Cu + i * J->ldc + c0,
				    (size_t)(c1 - c0));
}

/* Direct path, columns [n0,n1): C = alpha*op(A)*op(B) + beta*C for M <= DIRECT_M. */
static AVX512 void direct_cols(const struct job *J, long n0, long n1)
{
	if (dotp_fits(J)) {
		dotp_cols(J, n0, n1);
		return;
	}
	/* mode 0: fp32; 1: bf16 A (J->Ah) and B widened; 2: the same by vdpbf16ps */
	const int mode = J->Bh ? (has_bf16() ? 2 : 1) : 0;
	/* W's rows (float or bf16) as byte addresses, for prefetching */
	const char *wb = mode ? (const char *)J->Bh : (const char *)J->B;
	const long wrow = J->ldb * (mode ? 2 : 4);
	const float *Bf = mode ? NULL : J->B;
	const uint16_t *Bh = J->Bh, *Ah = J->Ah;
	const long lda = mode ? J->ldah : J->lda;
	/* 8 rows of A must stay in L1 (32 KB) while W streams past; with more
	 * rows, all of them, so that the next group of rows finds the slice of
	 * W just read still in L1 (16 rows x 1024 floats thrashed it: qwen0.5b's
	 * lm_head at M = 16 ran at 10.6 GB/s on one core, 12.2 with 512-float
	 * slices; M = 12: 14.1 -> 18.7-20.4) */
	const long kmax = mode ? DOT8BF_K_MAX : DOT8_K_MAX;
	const long k8 = J->M <= 8 ? kmax : (kmax * 8 / J->M >= 64 ? kmax * 8 / J->M / 32 * 32 : 32);
	const long pfr = wrow >= DOT_PF_BYTES / 2 ? 2 : DOT_PF_BYTES / wrow; /* rows ahead */
	if (J->transB && J->M >= 8) {
		/* x W^T, 8 rows of A at a time against a few rows of W (fp32:
		 * three, dot_8x3; bf16: pairs, or one in a single slice). Longer
		 * rows are cut into k slices that the 8 rows of A fit L1 in, each
		 * slice summed into C (the first with the epilogue): every element
		 * of W is still read once and the prefetches stay ahead (two
		 * 4-row passes over a block of W, as below, leave the second pass
		 * with nothing to fetch ahead: half the bandwidth on qwen0.5b's
		 * down projection). */
		const long nslice = ceil_div(J->K, k8), kc = round_up(ceil_div(J->K, nslice), 32);
		/* bf16 rows in one slice: one row of W at a time (dotbf_8x1) */
		const int one = mode == 2 && nslice == 1;
		const dot_fn d8 = one ? dotbf_8x1 : mode == 2 ? dotbf_8x2 : mode == 1 ? doth_8x2 : dot_8x2;
		const long es = mode ? 2 : 4;
		for (long k0 = 0; k0 < J->K; k0 += kc) {
			const int kk = (int)min_l(kc, J->K - k0);
			for (long j = n0; j < n1;) {
				int nb = n1 - j >= 2 && !one ? 2 : 1, d1 = 0;
				/* fp32: three rows of W at a time (dot_8x3: +21-29% in
				 * qwen0.5b's decode over pairs), then a pair or one row
				 * (dot_8x1); the matrix's last column, when N is odd,
				 * stays on dot_4_1 as with pairs only, so every column
				 * keeps the bits it had then */
				if (mode == 0) {
					const long r8 = n1 - (n1 == J->N && (J->N & 1)) - j;
					nb = r8 >= 3 ? 3 : r8 >= 1 ? (int)r8 : 1;
					d1 = r8 == 1;
				}
				const char *pf = wb + (j + pfr + nb <= J->N ? j + pfr : j) * wrow + k0 * es;
				for (int i = 0; i < J->M;) {
					int mb = J->M - i >= 8 && (nb >= 2 || one || d1) ? 8 : J->M - i < DOT_MB ? J->M - i : DOT_MB;
					const dot_fn d8n = nb == 3 ? dot_8x3 : d1 ? dot_8x1 : d8;
					struct epi e = {J->alpha, J->beta, J->R ? J->R + i * J->ldr + j : NULL,
							J->bias ? J->bias + j : NULL, J->ldr};
					if (k0 > 0) e = (struct epi){J->alpha, 1.0f, NULL, NULL, 0};
					const float *bj = Bf ? Bf + j * J->ldb + k0 : NULL;
					const uint16_t *hj = Bh ? Bh + j * J->ldb + k0 : NULL;
					const float *ai = mode ? NULL : J->A + i * J->lda + k0;
					const uint16_t *ahi = mode ? Ah + i * lda + k0 : NULL;
					(mb == 8 ? d8n : dots[mode][mb][nb])(kk, ai, ahi, lda, bj, hj, J->ldb,
									     J->C + i * J->ldc + j, J->ldc, &e, pf);
					pf = wb + j * wrow + k0 * es;
					i += mb;
				}
				j += nb;
			}
		}
	} else if (J->transB) {
		/* x W^T: every row of W is read once, against all rows of A. */
		for (long j = n0; j < n1; j += DOT_NB) {
			int nb = (int)min_l(DOT_NB, n1 - j);
			/* Rows of W a few blocks ahead are fetched during the first
			 * pass over this block: streams of a few KiB are too short
			 * for the hardware prefetcher to ramp up. */
			const char *pf = wb + (j + pfr + nb <= J->N ? j + pfr : j) * wrow;
			for (int i = 0; i < J->M; i += DOT_MB) {
				int mb = J->M - i < DOT_MB ? J->M - i : DOT_MB;
				struct epi e = {J->alpha, J->beta, J->R ? J->R + i * J->ldr + j : NULL,
						J->bias ? J->bias + j : NULL, J->ldr};
				dots[mode][mb][nb](J->K, mode ? NULL : J->A + i * J->lda, mode ? Ah + i * lda : NULL, lda,
						   Bf ? Bf + j * J->ldb : NULL, Bh ? Bh + j * J->ldb : NULL, J->ldb,
						   J->C + i * J->ldc + j, J->ldc, &e, pf);
				pf = wb + j * wrow;
			}
		}
	} else {
		long ars = J->transA ? 1 : J->lda, acs = J->transA ? J->lda : 1;
		for (long j = n0; j < n1; j += NR) {
			__mmask16 msk[NV];
			for (int v = 0; v < NV; v++) msk[v] = lanes(n1 - j - 16 * v);
			struct epi e = {J->alpha, J->beta, J->R ? J->R + j : NULL, J->bias ? J->bias + j : NULL, J->ldr};
			tiles_direct[J->M](J->K, J->A, ars, acs, J->B + j, J->ldb, J->C + j, J->ldc, &e, msk);
		}
	}
}

/* ---- entry points --------------------------------------------------------- */

/* Columns of C per unit of the direct path's pieces: whole pairs for the
 * 8-row kernel, so that every column is summed by the same kernel whatever
 * the number of pieces (threads); blocks of DOT_NB, whose columns are
 * independent of their block, or micro-tiles otherwise. */
static long direct_unit(const struct job *J)
{
	if (!J->transB) return NR;
	return J->M >= 8 ? 2 : DOT_NB;
}

/* Item `item` of product J (its own numbering), with worker's workspace. */
static void run_item(const struct job *J, long item, int worker)
{
	long n0, n1;
	switch (J->path) {
	case IAPO_SGEMM_PACKED:
		packed_item((void *)J, item, worker);
		break;
	case IAPO_SGEMM_DIRECT:
		if (J->pair) {
			split_range(J->wp->npan, 1, J->tn, (int)item, &n0, &n1);
			dotp_pair(J, n0, n1);
			break;
		}
		split_range(J->N, direct_unit(J), J->tn, (int)item, &n0, &n1);
		direct_cols(J, n0, n1);
		break;
	default:
		portable_row(J, item);
		break;
	}
}

struct batch {
	struct job *jobs;
	int n;
};

static void batch_item(void *ctx, long item, int worker)
{
	const struct batch *b = ctx;
	int j = 0;
	while (j + 1 < b->n && item >= b->jobs[j + 1].first) j++;
	run_item(&b->jobs[j], item - b->jobs[j].first, worker);
}

/* Chooses the path and the items of one product for up to nmax threads;
 * returns 0 when there is nothing to multiply (C was finished here). */
static int plan(struct job *J, int nmax)
{
	if (J->M <= 0 || J->N <= 0) return 0;
	if (J->K <= 0 || J->alpha == 0.0f) {
		for (long i = 0; i < J->M; i++) init_row(J, i);
		return 0;
	}
	const int M = J->M, transA = J->transA, transB = J->transB;
	int nth = threads_for((double)M * J->N * J->K, nmax);
	int path = force_path;
	if (!has_avx512()) path = IAPO_SGEMM_PORTABLE;
	/* bf16 B: the AVX-512 paths take x W^T only */
	if (J->Bh && !(transB && !transA)) path = IAPO_SGEMM_PORTABLE;
	/* The dot kernel (x W^T) takes any M; the broadcast one at most MR rows. */
	int dot = transB && !transA;
	if (path == IAPO_SGEMM_AUTO) path = M <= (dot ? DIRECT_M_DOT : DIRECT_M) ? IAPO_SGEMM_DIRECT : IAPO_SGEMM_PACKED;
	if (path == IAPO_SGEMM_DIRECT && !dot && (M > MR || transB)) path = IAPO_SGEMM_PACKED;
	/* The direct path streams B from memory: what is worth splitting is
	 * its bytes, not its few multiply-adds per element. */
	if (path == IAPO_SGEMM_DIRECT && min_fma_per_thread == MIN_FMA_PER_THREAD) {
		int by_bytes = threads_for((double)J->N * J->K * (MIN_FMA_PER_THREAD / MIN_B_PER_THREAD), nmax);
		nth = by_bytes > nth ? by_bytes : nth;
	}
	J->ws_stride = 0;
	J->bf = path == IAPO_SGEMM_PACKED && J->Bh && bf16_pays();
	if (path == IAPO_SGEMM_PACKED) {
		packed_plan(J, nth);
		J->items = J->sk ? J->sk : (long)J->tm * J->tn;
		if (!wpack_fits(J->wp, J)) J->wp = NULL;
	} else if (path == IAPO_SGEMM_DIRECT) {
		/* Column pieces (whole units), at least 4 per thread and about
		 * one per MB of weights: they stream from memory, and a thread
		 * that is descheduled holds up at most its current piece while
		 * the others take the rest (a piece costs ~1 us of prefetch
		 * warm-up). */
		long units = ceil_div(J->N, direct_unit(J));
		long mb = (long)((double)J->N * J->K * (J->Bh ? 2 : 4) / (1 << 20));
		J->tn = nth > 1 ? (int)min_l(units, 4L * nth > mb ? 4L * nth : mb) : 1;
		J->items = J->tn;
	} else {
		J->items = M;
	}
	J->path = path;
	return 1;
}

/* An earlier product of the batch whose shared bf16 A panels job i can read
 * as its own: the same A, rows, depth and slices (q, k and v of one normed
 * input, gate and up: each packed it again, 5 packings of h a layer where 2
 * do; A's packing was 6.8% of small's bf16 information pass). The panels'
 * states are atomic, so the products running side by side pack each panel
 * once between them. NULL when none. */
static const struct job *same_a(const struct job *jobs, int i)
{
	const struct job *J = &jobs[i];
	if (!J->bf) return NULL;
	for (int k = 0; k < i; k++) {
		const struct job *P = &jobs[k];
		if (P->path == IAPO_SGEMM_PACKED && P->bf && P->apack && P->A == J->A && P->lda == J->lda &&
		    P->M == J->M && P->K == J->K && P->transA == J->transA && P->kc_step == J->kc_step &&
		    P->mtiles == J->mtiles)
			return P;
	}
	return NULL;
}

/* Runs products that are planned; a workspace failure falls back to paths
 * that need none. */
static void run_jobs(struct job *jobs, int n, int nmax)
{
	size_t stride = 0, shared = 0, ah = 0;
	for (int i = 0; i < n; i++) {
		stride = jobs[i].ws_stride > stride ? jobs[i].ws_stride : stride;
		shared += jobs[i].apack_floats + jobs[i].astate_floats + jobs[i].sk_floats + jobs[i].xt_floats;
		if (jobs[i].path == IAPO_SGEMM_DIRECT && jobs[i].Bh) {
			jobs[i].ldah = round_up(jobs[i].K, 32);
			ah += (size_t)jobs[i].M * (size_t)jobs[i].ldah / 2; /* floats */
		}
	}
	size_t need = stride * (size_t)nmax + shared + ah;
	float *ws = need ? ws_get(need) : NULL;
	float *next = ws ? ws + stride * (size_t)nmax : NULL;
	long total = 0;
	for (int i = 0; i < n; i++) {
		struct job *J = &jobs[i];
		if (J->path == IAPO_SGEMM_DIRECT && J->Bh) {
			if (ws) {
				/* A rounded to bf16 once, before the threads start */
				J->Ah = (uint16_t *)next;
				rows_to_bf16(J->Ah, J->ldah, J->A, J->lda, J->M, J->K);
				next += (size_t)J->M * (size_t)J->ldah / 2;
			} else {
				J->path = IAPO_SGEMM_PORTABLE;
				J->items = J->M;
			}
		}
		if (J->path == IAPO_SGEMM_PACKED) {
			if (ws) {
				J->ws = ws;
				J->ws_stride = stride;
				const struct job *same = J->apack_floats ? same_a(jobs, i) : NULL;
				if (same) {
					J->apack = same->apack;
					J->astate = same->astate;
				} else if (J->apack_floats) {
					J->apack = next;
					J->astate = (atomic_uchar *)(next + J->apack_floats);
					memset(J->astate, 0, J->astate_floats * sizeof(float));
					next += J->apack_floats + J->astate_floats;
				}
				if (J->sk_floats) {
					J->skp = next;
					next += (size_t)(J->sk - 1) * (size_t)J->M * (size_t)J->ldp;
					J->skcnt = (atomic_int *)next;
					memset(J->skcnt, 0, (size_t)J->sk_regions * sizeof(atomic_int));
					next += J->sk_floats - (size_t)(J->sk - 1) * (size_t)J->M * (size_t)J->ldp;
				}
				if (J->xt_floats) {
					const long ns = ceil_div(J->K, J->kc_step);
					float *at = ws + round_up(next - ws, 16);
					J->xtnext = (_Atomic uint64_t *)at;
					J->xtdone = (atomic_int *)(J->xtnext + ns);
					memset(next, 0, J->xt_floats * sizeof(float));
					next += J->xt_floats;
				}
			} else {
				/* No workspace: finish the product without one. */
				int dot = J->transB && !J->transA;
				J->path = J->transA && J->transB ? IAPO_SGEMM_PORTABLE : IAPO_SGEMM_DIRECT;
				if (J->path == IAPO_SGEMM_DIRECT && ((!dot && (J->M > MR || J->transB)) || J->Bh))
					J->path = IAPO_SGEMM_PORTABLE;
				J->tn = 1;
				J->items = J->path == IAPO_SGEMM_DIRECT ? 1 : J->M;
			}
		}
		J->first = total;
		total += J->items;
		last_path = J->path;
		last_split = J->path == IAPO_SGEMM_PACKED ? J->sk : 0;
		last_xt = J->path == IAPO_SGEMM_PACKED && J->xt ? (J->xtnext ? 2 : 1) : 0;
		last_claim = J->path == IAPO_SGEMM_PACKED && J->claim && J->xtnext;
	}
	struct batch b = {jobs, n};
	if (nmax < 2 || total < 2) {
		for (long i = 0; i < total; i++) batch_item(&b, i, 0);
		return;
	}
	iapo_pool_for(total, batch_item, &b);
}

static struct job make_job(const iapo_gemm_op *o)
{
	struct job J = {.transA = o->transA, .transB = o->transB, .M = o->M, .N = o->N, .K = o->K,
			.alpha = o->alpha, .beta = o->beta, .A = o->A, .B = o->B, .C = o->C, .lda = o->lda,
			.ldb = o->ldb, .ldc = o->ldc, .R = o->R, .ldr = o->ldr, .bias = o->bias, .Bh = o->Bh, .wp = o->Bp};
	return J;
}

/* Whether the products of a batch run one per thread (each planned for one
 * thread, a single item): a multiple of nmax products, all on the fp32 packed
 * path without split-K, with the same number of multiply-adds each, and at
 * most BATCH_ONE_FMA_MAX each. The backward's batches pair an input gradient
 * dy W with its weight gradient dy^T x, which multiply-add the same count;
 * small ones, cut into OVERSUB rectangles per thread, have every thread
 * streaming parts of both products' operands and C (k/v at tiny: rectangles
 * of 2M multiply-adds), where one product per thread keeps each thread's
 * operands in its own L2. Without split-K a product's sums do not depend on
 * its rectangles, so the bits are those of the grid. tiny's and small's q/k/v
 * backward (three batches, 2 threads, one process alternating call by call,
 * % of the adjacent peak, median of rounds): tiny 70.8 -> 73.3 (150 rounds),
 * 71.5 -> 74.2 (30), small 76.9 -> 78.9 (40); the same rule for every batch
 * of equal products, 2 runs at tiny: 77.2 -> 78.9, 72.1 -> 74.0. Larger
 * products keep their rectangles: a thread that is descheduled then holds up
 * only one of them, not a whole product. */
#define BATCH_ONE_FMA_MAX (1L << 26)
static int one_per_thread(const struct job *jobs, int m, int nmax)
{
	if (nmax < 2 || m < nmax || m % nmax) return 0;
	const double f0 = (double)jobs[0].M * jobs[0].N * jobs[0].K;
	if (f0 > (double)BATCH_ONE_FMA_MAX) return 0;
	for (int i = 0; i < m; i++) {
		const struct job *J = &jobs[i];
		if (J->path != IAPO_SGEMM_PACKED || J->Bh || J->sk || (double)J->M * J->N * J->K != f0) return 0;
	}
	return 1;
}

void iapo_sgemm_batch(int n, const iapo_gemm_op *ops)
{
	enum { CAP = 16 };
	last_path = 0;
	last_split = 0;
	last_claim = 0;
	int nmax = iapo_pool_threads();
	for (int i0 = 0; i0 < n; i0 += CAP) {
		struct job jobs[CAP];
		int m = 0;
		for (int i = i0; i < n && i < i0 + CAP; i++) {
			jobs[m] = make_job(&ops[i]);
			for (int k = i0; k < n && k < i0 + CAP; k++)
				if (k != i && ops[k].A == ops[i].A && ops[k].lda == ops[i].lda) jobs[m].a_mates = 1;
			if (plan(&jobs[m], nmax)) m++;
		}
		if (one_per_thread(jobs, m, nmax)) {
			m = 0;
			for (int i = i0; i < n && i < i0 + CAP; i++) {
				jobs[m] = make_job(&ops[i]);
				if (plan(&jobs[m], 1)) m++;
			}
		}
		if (m) run_jobs(jobs, m, nmax);
	}
}

int iapo_sgemm_swiglu_pair(const iapo_gemm_op ops[2], float *act, int ldact)
{
	struct job g = make_job(&ops[0]), u = make_job(&ops[1]);
	const iapo_gemm_wpack *p = g.wp;
	/* the same A and rows into two C of one stride, each C = alpha A W^T */
	if (!p || p->ilv != 2 || p->half != 0 || p->mate != u.wp || !act || ldact < g.N || g.M != u.M || g.A != u.A ||
	    g.lda != u.lda || g.ldc != u.ldc || g.alpha != u.alpha || g.beta != 0.0f || u.beta != 0.0f || g.R || u.R ||
	    g.bias || u.bias || !g.Bh != !u.Bh)
		return 0;
	const int nmax = iapo_pool_threads();
	if (!plan(&g, nmax) || !plan(&u, nmax) || g.path != IAPO_SGEMM_DIRECT || u.path != IAPO_SGEMM_DIRECT) return 0;
	if (g.Bh) { /* A rounded to bf16 once (as run_jobs does) */
		g.ldah = u.ldah = round_up(g.K, 32);
		float *ws = ws_get((size_t)g.M * (size_t)g.ldah / 2);
		if (!ws) return 0;
		g.Ah = u.Ah = (uint16_t *)ws;
		rows_to_bf16(g.Ah, g.ldah, g.A, g.lda, g.M, g.K);
	}
	if (!dotp_fits(&g) || !dotp_fits(&u)) return 0;
	g.pair = 1;
	g.Cu = u.C;
	g.act = act;
	g.ldact = ldact;
	g.tn = (int)min_l(p->npan, (long)g.tn + u.tn); /* pieces of the same bytes as the two products' */
	g.items = g.tn;
	g.first = 0;
	last_path = IAPO_SGEMM_DIRECT;
	struct batch b = {&g, 1};
	if (nmax < 2 || g.items < 2) {
		for (long i = 0; i < g.items; i++) batch_item(&b, i, 0);
		return 1;
	}
	iapo_pool_for(g.items, batch_item, &b);
	return 1;
}

void iapo_sgemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
		const float *B, int ldb, float beta, float *C, int ldc)
{
	iapo_gemm_op o = {.transA = transA, .transB = transB, .M = M, .N = N, .K = K, .alpha = alpha, .beta = beta,
			  .A = A, .lda = lda, .B = B, .ldb = ldb, .C = C, .ldc = ldc};
	iapo_sgemm_batch(1, &o);
}
