/*
 * gemm.h — iapo's own single-precision matrix product (BLIS style: packing,
 * cache blocking, an AVX-512 micro-kernel, OpenMP over independent blocks of
 * C), so that the transformer's products run near the machine's FMA peak
 * whatever BLAS the environment provides or however it is configured.
 *
 * One entry point, iapo_sgemm, with BLAS's meaning restricted to row-major.
 * It picks a path per call: a packed, blocked product for anything with more
 * than a handful of rows, a direct path that streams B once without packing
 * for small M (decoding), and a portable C loop on CPUs without AVX-512F.
 * The test hooks below force a path or shrink the blocking so that tests can
 * reach every branch with small matrices.
 *
 * iapo_sgemm_batch runs several products as one parallel job, each with an
 * optional epilogue (a residual addend from another matrix, a bias row), so
 * that a layer's q/k/v projections, or a backward's dx and dW, cost one wait
 * and no extra pass over memory.
 *
 * bf16: a product whose B is given in bf16 (iapo_gemm_op.Bh) rounds A to bf16
 * as well and sums the exact products in fp32: with vdpbf16ps (AVX512_BF16)
 * on the direct (decoding) and packed (prefill) paths, by widening both to
 * fp32 on CPUs without it, and on the packed path also where vdpbf16ps is
 * slower than fp32 FMAs (a start-up probe: iapo_sgemm_bf16_dot).
 *
 * Left out: complex and double precision, column-major, bf16 outputs or
 * activations kept in bf16 between calls, and GPUs.
 */
#ifndef IAPO_KERNELS_GEMM_H
#define IAPO_KERNELS_GEMM_H

#include <stddef.h>
#include <stdint.h>

#include "iapo.h"

/* A weight matrix W (N,K) packed once into the micro-panels that the packed
 * path multiplies by (see iapo_gemm_wpack_create). Opaque. */
typedef struct iapo_gemm_wpack iapo_gemm_wpack;

/* C(M,N) = alpha * op(A) * op(B) + beta * C, row-major, op = transpose when
 * transX != 0. A is (M,K) (or (K,M) when transA), B is (K,N) (or (N,K) when
 * transB), with leading dimensions lda, ldb, ldc (>= the row width).
 * beta == 0 means C is not read (it may hold NaN). M, N <= 0 does nothing;
 * K <= 0 or alpha == 0 scales C by beta. C must not overlap A or B.
 * Uses up to iapo_get_threads() OpenMP threads (one when called inside a
 * parallel region). Thread-safe: each calling thread owns a packing
 * workspace, allocated on first use and grown only when a larger shape
 * arrives, so steady-state calls allocate nothing; if that allocation fails
 * the product still completes through a path that needs no workspace. */
void iapo_sgemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
		const float *B, int ldb, float beta, float *C, int ldc);

/* One product of a batch, with an epilogue: C = alpha*op(A)*op(B) + Z + bias,
 * Z = R (leading dimension ldr) when R is not NULL (R may be C itself; beta
 * is then unused), beta*C otherwise; bias (N) is added to every row when not
 * NULL. When Bh is not NULL, op(B) is read from it in bf16 (the upper 16
 * bits of each float; same layout and ldb as B would have), B is unused, and
 * op(A) is rounded to bf16 (nearest even) before it is multiplied: half the
 * bytes for weights that are read once per call, as decoding does, and
 * vdpbf16ps's 32 products per instruction. The products are exact in fp32,
 * so every path computes the same sums up to their order.
 * The fast paths take x W^T (transB, not transA); other shapes run the
 * portable loop. Bp, when not NULL, is op(B)'s micro-panels packed ahead
 * (iapo_gemm_wpack_create from this B, or Bh, with the same N and K): the
 * packed path then reads them instead of packing B on every call, with a
 * bit-identical result. It is a hint: B (or Bh) must still be given, since
 * the direct path (few rows), the portable path and a pack that no longer
 * fits (a depth-slice override, bf16 kernels switched, another shape) read
 * B itself, as if Bp were NULL (except for a pack opened to few-row
 * products by iapo_gemm_wpack_set_direct). Zero-initialise and fill the
 * fields you need. */
typedef struct {
	int transA, transB, M, N, K;
	float alpha, beta;
	const float *A;
	int lda;
	const float *B;
	int ldb;
	float *C;
	int ldc;
	const float *R;
	int ldr;
	const float *bias;
	const uint16_t *Bh;
	const iapo_gemm_wpack *Bp;
} iapo_gemm_op;

/* Runs n independent products as one parallel job (their pieces share the
 * threads, so small products fill the gaps of large ones and there is one
 * wait, not n). The products' C must not overlap each other or any A, B, R
 * of the batch (R may be its own product's C). */
void iapo_sgemm_batch(int n, const iapo_gemm_op *ops);

/* Packs W (N rows of K, row stride ldw) for products x W^T (op(B) = W^T,
 * transB, as the forward's projections and the lm_head), from fp32 W or
 * from bf16 Wh (exactly one non-NULL; the pack's format follows it and the
 * CPU's bf16 kernels at this call). The pack owns its memory (one aligned
 * allocation of about N*K floats, or N*K/2 from bf16; iapo_gemm_wpack_bytes)
 * and remembers W/Wh: after the weights change (an optimizer step, a new
 * bf16 copy), iapo_gemm_wpack_update repacks from the same addresses.
 * Packing runs on the iapo_get_threads() pool. Returns IAPO_ERR_ARG on a
 * bad shape or pointer, IAPO_ERR_NOMEM when the allocation fails (*out
 * NULL then). On CPUs without AVX-512 the pack holds nothing and products
 * ignore it. The depth slice in force (iapo_sgemm_set_blocking's kc) is
 * built into the layout: while another one is set, products ignore the
 * pack until _update repacks it under the new one. */
iapo_status iapo_gemm_wpack_create(iapo_gemm_wpack **out, int N, int K, const float *W, const uint16_t *Wh, int ldw);
/* Two matrices of one shape and precision (W[h] or Wh[h], h = 0, 1: as in
 * iapo_gemm_wpack_create, both with stride ldw) packed as one allocation
 * in which their panels alternate within each depth slice: out[0] and
 * out[1] are packs of W[0] and W[1] that products use as any other (the
 * same panels, the same bits), and iapo_sgemm_swiglu_pair reads both as one
 * stream. Free both (out[0] holds the memory; neither is used after it is
 * freed); _update and _set_direct each one. Errors as _create (out[] NULL). */
iapo_status iapo_gemm_wpack_create_pair(iapo_gemm_wpack *out[2], int N, int K, const float *const W[2],
					const uint16_t *const Wh[2], int ldw);
/* Repacks from the W or Wh given at creation (the current depth slice). */
void iapo_gemm_wpack_update(iapo_gemm_wpack *p);
/* NULL is a no-op. Not while a product that uses it runs. */
void iapo_gemm_wpack_free(iapo_gemm_wpack *p);
/* Bytes of packed panels held. */
size_t iapo_gemm_wpack_bytes(const iapo_gemm_wpack *p);
/* on != 0: products of at most 16 rows (the direct path, x W^T) read this
 * pack too, W streaming as one sequence of panels instead of row by row
 * (decoding qwen0.5b, 8 rows: fp32 +23%, bf16 +17-30%; 16 rows: +57%). A bf16
 * pack serves them only as K-pair panels (made and read with AVX512_BF16 on).
 * Their results then differ in rounding from reading W (each column summed in
 * k order, not in lanes), so it is off at creation; the packed path stays
 * bit-identical either way. NULL is a no-op. */
void iapo_gemm_wpack_set_direct(iapo_gemm_wpack *p, int on);

/* act = SwiGLU(C0, C1) (silu(C0) * C1, iapo_swiglu_forward's bits; rows of
 * ldact floats) for the products ops[0], ops[1] (C0, C1: their C, which
 * are written too) when they are the two halves of a pair
 * (iapo_gemm_wpack_create_pair; ops[h].Bp = out[h]) opened to few-row
 * products and read on the direct path: the same A, M, lda, ldc and alpha,
 * beta 0, no R or bias. Then both products read the pair as one stream,
 * each piece both matrices' panels for its columns in turn, and its
 * columns' SwiGLU runs as they finish; the bits are those of the two
 * products and iapo_swiglu_forward. Returns 1 when done, 0 when the pair
 * cannot be read so (nothing written; run the products and the SwiGLU). */
int iapo_sgemm_swiglu_pair(const iapo_gemm_op ops[2], float *act, int ldact);

/* ---- test hooks (not thread-safe; set them before calling, from one thread) ---- */

enum {
	IAPO_SGEMM_AUTO = 0,     /* choose per call (the default) */
	IAPO_SGEMM_PORTABLE = 1, /* plain C loops, any CPU */
	IAPO_SGEMM_PACKED = 2,   /* packed + blocked AVX-512 (portable without AVX-512F) */
	IAPO_SGEMM_DIRECT = 3,   /* unpacked small-M AVX-512 path (packed where it has no variant) */
};
/* Forces a path for later calls; returns the previous setting. */
int iapo_sgemm_force_path(int path);
/* Overrides the cache blocking (rows of A per block, depth per block, columns
 * of B per block; each rounded up to the micro-tile) for later calls; zeros
 * restore the tuned defaults. Lets tests cross every block edge cheaply; while
 * an override is set, even tiny products use every thread. */
void iapo_sgemm_set_blocking(int mc, int kc, int nc);
/* off != 0: bf16 products widen both operands to fp32 and use fp32 FMAs, as
 * on CPUs without AVX512_BF16, instead of vdpbf16ps; returns the previous
 * setting. */
int iapo_sgemm_no_bf16(int off);
/* Compute-bound bf16 products (the packed path: prefill, the information
 * pass, the bf16 forward) use vdpbf16ps only where it pays: its rate is not
 * the same on every CPU with AVX512_BF16. bench/peak, multiply-adds per
 * second per thread: AMD EPYC (Zen 4, this project's host) vdpbf16ps zmm
 * 32 MACs at fp32 FMA's instruction rate (ratio 2.0: 446-452 vs 215-226
 * GFLOP/s), a 16-core Intel Xeon (family 6 model 207, KVM) at a quarter of
 * it (ratio 0.5: 82 vs 161 GFLOP/s; bench/gemm's bf16 products there ran at
 * 0.55-0.74x its fp32 ones). So the first bf16 product of a process times
 * both instructions (independent chains, taken in turn, best of 12 rounds
 * each, ~0.1-0.3 ms) and runs vdpbf16ps where bf16 MACs/s >= 1.0 x fp32
 * MACs/s: at 1.0 both tiles do the same multiply-adds per second and
 * vdpbf16ps's panels are half the bytes; the two CPUs measured sit a factor
 * 2 either side, margin for a probe taken on a busy core. Otherwise the
 * packed path multiplies the same bf16 values with fp32 FMAs (A rounded to
 * bf16, B widened, exact products summed in fp32: iapo_sgemm_no_bf16(1)'s
 * numbers, the same bits), reading a bf16 weight pack's K-pair panels as
 * they are. Memory-bound products (decoding's direct path, few rows) keep
 * vdpbf16ps wherever the CPU has it: they gain from reading half the bytes.
 * IAPO_BF16_DOT (environment, read once): auto (the probe, the default),
 * on, off; another value is warned about on stderr and read as auto. */
enum { IAPO_BF16_DOT_AUTO = 0, IAPO_BF16_DOT_ON = 1, IAPO_BF16_DOT_OFF = 2 };
/* Whether compute-bound bf16 products use vdpbf16ps now (0 also on CPUs
 * without AVX512_BF16 or under iapo_sgemm_no_bf16); *ratio (if not NULL):
 * the probe's bf16 / fp32 multiply-adds per second (0 where not measured:
 * no AVX512_BF16); *mode (if not NULL): IAPO_BF16_DOT as read. Runs the
 * probe on first use. Thread-safe. */
int iapo_sgemm_bf16_dot(double *ratio, int *mode);
/* Test hook: pays 1 or 0 forces the verdict (over IAPO_BF16_DOT), -1 goes
 * back to it; returns the previous hook. Weight packs keep their format
 * (K-pair panels wherever the CPU has AVX512_BF16). */
int iapo_sgemm_force_bf16_dot(int pays);
/* Whether this CPU runs the AVX-512 kernels (the packed and direct paths,
 * weight packs holding panels): the rule gemm.c itself goes by, for tests
 * that check a path was taken. */
int iapo_sgemm_avx512(void);
/* Which path the last call on this thread took (an IAPO_SGEMM_* value; 0 if
 * it had nothing to multiply). */
int iapo_sgemm_last_path(void);
/* Split-K on the packed path (each thread a share of the depth slices, the
 * partial sums added afterwards): 0 never, 1 where the tuned rule picks it
 * (the default), 2 wherever the slices allow (at least one per thread, in
 * equal shares or at least four per thread; x W^T only with exactly one
 * per thread, so that x W^T keeps one thread's bits at any thread count and
 * any M); returns the previous setting. Other products' bits may differ
 * between thread counts (fixed for a given one). */
int iapo_sgemm_split_k(int mode);
/* Split-K groups (threads sharing the depth) of the last call's last
 * product on this thread; 0 without split-K. */
int iapo_sgemm_last_split(void);
/* Packed path with fp32 A: 0 always packs A's panels, 1 reads op(A) in
 * place where the tuned rule picks it (the default), 2 wherever
 * it can (whatever the row stride and the width of C; split-K always packs
 * A); returns the previous setting. With the same split-K choice the
 * products are the same to the bit either way. */
int iapo_sgemm_a_rows(int mode);
/* Packed path with bf16 B (x W^T): 0 never, 1 where the tuned rule picks
 * it (the default; not while iapo_sgemm_split_k or iapo_sgemm_a_rows force
 * another choice), 2 whenever there are 2+ threads and a tile of rows for
 * each: one row range per thread, each packing its own rows of A, no
 * split-K. The same depth slices, so the same bits either way; returns the
 * previous setting. */
int iapo_sgemm_bf_rows(int mode);
/* Packed path, x W^T in fp32 without a weight pack, at most 256 rows:
 * 0 never, 1 where the tuned rule picks it (the default; not while
 * iapo_sgemm_split_k or iapo_sgemm_a_rows force another choice), 2 always:
 * C^T = W x^T, W's rows read in place and x^T packed, the tile stored
 * transposed, no split-K. The same bits either way; returns the previous
 * setting. */
int iapo_sgemm_xt(int mode);
/* Whether the last call's last product on this thread ran as C^T = W x^T:
 * 0 no, 1 yes, 2 yes with W's rows claimed chunk by chunk by the threads. */
int iapo_sgemm_last_xt(void);
/* Packed path, fp32, a grid of one row range and column rectangles, no
 * split-K, on exactly 2 threads: 0 static rectangles, 1 C's columns
 * claimed chunk by chunk from both ends, slice by slice (the default), n >= 2
 * the same with n chunks per thread (a tuning hook). The same bits either
 * way; returns the previous setting. */
int iapo_sgemm_claim(int mode);
/* Whether the last call's last product on this thread claimed its columns
 * (iapo_sgemm_claim): 0 or 1. */
int iapo_sgemm_last_claim(void);

#endif
