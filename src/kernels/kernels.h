/*
 * kernels.h — the numeric building blocks of the transformer: matmuls (BLAS),
 * RMSNorm, RoPE, SwiGLU, attention over packed causal sequences, the
 * log-prob/entropy head, and the backward of each. All fp32, row-major,
 * CPU (OpenMP + OpenBLAS). Every function here has a plain-loop twin in
 * ref.h (iapo_ref_*) that the tests use as the oracle.
 *
 * Conventions: shapes in comments use N rows (positions), C channels, V vocab,
 * NH/NKV heads, HD head dim. "(+=)" marks outputs that accumulate, as gradients
 * do; everything else overwrites. Inputs and outputs must not alias unless a
 * comment says "in place". These functions allocate nothing and cannot fail.
 *
 * Left out: the KV cache and decoding (src/model), the layer wiring
 * (src/model/transformer.c), GPUs.
 */
#ifndef IAPO_KERNELS_KERNELS_H
#define IAPO_KERNELS_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/gemm.h"
#include "model/model.h"

/* ---- matmuls (cblas_sgemm) ---------------------------------------------- */

/* y = x W^T: C(M,N) = A(M,K) * B(N,K)^T, += when accumulate. Row-major. */
/* "iapo-avx512" or "openblas": which GEMM iapo_matmul_* use on this machine. */
const char *iapo_matmul_backend(void);
void iapo_matmul_nt(float *C, const float *A, const float *B, int M, int N, int K, int accumulate);
/* C(M,N) = A(M,K) * B(K,N) (+=)  — dx = dy W */
void iapo_matmul_nn(float *C, const float *A, const float *B, int M, int N, int K, int accumulate);
/* C(M,N) = A(K,M)^T * B(K,N) (+=) — dW += dy^T x */
void iapo_matmul_tn(float *C, const float *A, const float *B, int M, int N, int K, int accumulate);
/* Several independent products with epilogues (a residual addend, a bias
 * row) as one parallel job: see iapo_gemm_op in gemm.h. Same numbers as the
 * products one by one (OpenBLAS runs them one by one where it is the
 * backend). Tested against the iapo_ref_matmul_* twins. */
void iapo_matmul_batch(int n, const iapo_gemm_op *ops);

/* ---- bf16 ------------------------------------------------------------------ */

/* dst[i] = src[i] rounded to bf16 (nearest, ties to even; the upper 16 bits
 * of the rounded float), for weights read by iapo_gemm_op's Bh. */
void iapo_f32_to_bf16(uint16_t *dst, const float *src, size_t n);

/* ---- RMSNorm --------------------------------------------------------------- */

/* out (N,C) = x / rms(x) * w; rstd (N) saved for backward when non-NULL */
void iapo_rmsnorm_forward(float *out, float *rstd, const float *x, const float *w, int N, int C, float eps);
/* dx (N,C) (+=), dw (C) (+=, skipped when NULL) from dout (N,C), the forward's
 * input x and its saved rstd (N). */
void iapo_rmsnorm_backward(float *dx, float *dw, const float *dout, const float *x, const float *w,
			   const float *rstd, int N, int C);

/* ---- RoPE ------------------------------------------------------------------ */

/* RoPE (HF rotate_half convention: pairs (i, i+HD/2)) in place on x (N, nheads, HD) at positions pos[N]; inv_freq (HD/2) from iapo_rope_inv_freq. inverse=1 rotates by -angle (for backward). */
void iapo_rope_inv_freq(const iapo_config *cfg, float *inv_freq);
void iapo_rope_apply(float *x, const int *pos, int N, int nheads, int HD, const float *inv_freq, int inverse);
/* The same rotation from a table computed once per batch: cs (N, HD) holds
 * cos(pos[n] * inv_freq[i]) in its first HD/2 columns and the sines in the
 * rest (float arithmetic as iapo_rope_apply, so results are identical).
 * apply_table rotates a (N, na, HD) and, when b != NULL, b (N, nb, HD) in
 * place, in one pass. Tested against iapo_ref_rope_apply. */
void iapo_rope_table(float *cs, const int *pos, int N, int HD, const float *inv_freq);
void iapo_rope_apply_table(float *a, int na, float *b, int nb, const float *cs, int N, int HD, int inverse);

/* ---- MLP ------------------------------------------------------------------- */

/* out (N,F) = silu(gate) * up */
void iapo_swiglu_forward(float *out, const float *gate, const float *up, size_t n);
/* dgate, dup (n) (overwritten) from dout (n) and the forward's gate, up. */
void iapo_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up, size_t n);

/* ---- elementwise ----------------------------------------------------------- */

/* vector add: y += x */
void iapo_add_inplace(float *y, const float *x, size_t n);
/* y (N,C) += b (C) broadcast over rows */
void iapo_bias_forward(float *y, const float *b, int N, int C);
/* db (C) (+=) = column sums of dy (N,C) */
void iapo_bias_backward(float *db, const float *dy, int N, int C);

/* ---- embedding ------------------------------------------------------------- */

/* out (N,C) = table[tokens[n]] ; tokens must be in [0,V) (the caller checks). */
void iapo_embedding_forward(float *out, const float *table, const int *tokens, int N, int C);
/* dtable (V,C) (+=) rows tokens[n] += dout[n]; repeated tokens add up. */
void iapo_embedding_backward(float *dtable, const float *dout, const int *tokens, int N, int C);

/* ---- attention ------------------------------------------------------------- */

/* Causal softmax attention over nseq packed sequences: sequence s occupies rows
 * off[s] .. off[s]+len[s]-1 of q (N,NH,HD), k and v (N,NKV,HD), and a query
 * sees only keys of its own sequence at or before it. Query head h reads kv
 * head h / (NH/NKV). Scale 1/sqrt(HD). Writes out (N,NH,HD) and lse (N,NH),
 * the log-sum-exp of each query's scaled scores, which the backward uses to
 * recompute probabilities instead of storing (T,T) of them. Rows not covered
 * by any sequence are left untouched. */
void iapo_attention_forward(float *out, float *lse, const float *q, const float *k, const float *v,
			    const int *off, const int *len, int nseq, int NH, int NKV, int HD);
/* dq (N,NH,HD), dk, dv (N,NKV,HD): overwritten on covered rows. dk_scratch and
 * dv_scratch hold (N,NH,HD) each: per-query-head key/value gradients that are
 * then summed over each GQA group, so query heads run in parallel. */
void iapo_attention_backward(float *dq, float *dk, float *dv, float *dk_scratch, float *dv_scratch,
			     const float *dout, const float *q, const float *k, const float *v,
			     const float *out, const float *lse,
			     const int *off, const int *len, int nseq, int NH, int NKV, int HD);

/* ---- vocabulary head ------------------------------------------------------- */

/* For each of N rows of raw logits (N,V): with u = logits / temperature and
 * p = softmax(u), writes logp[n] = log p[target[n]] (0 when target[n] < 0) and
 * entropy[n] = -sum p log p. Either output may be NULL. */
void iapo_logprob_entropy_forward(float *logp, float *entropy, const float *logits, const int *target,
				  int N, int V, float temperature);
/* In place: turns logits (N,V) into dL/dlogits given dlogp (N) and dentropy (N)
 * (either NULL = 0): (dlogp*(onehot - p) - dentropy*p*(log p + H)) / temperature. */
void iapo_logprob_entropy_backward(float *logits, const float *dlogp, const float *dentropy, const int *target,
				   int N, int V, float temperature);

#endif
