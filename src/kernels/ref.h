/*
 * ref.h — plain-loop reference versions of every kernel in kernels.h, with the
 * same signatures and contracts (iapo_ref_<name> mirrors iapo_<name>). They
 * are single-threaded, accumulate in double and are written for obviousness,
 * not speed: the tests use them as the oracle for the fast kernels. The
 * attention reference ignores its scratch arguments.
 */
#ifndef IAPO_KERNELS_REF_H
#define IAPO_KERNELS_REF_H

#include <stddef.h>

void iapo_ref_matmul_nt(float *C, const float *A, const float *B, int M, int N, int K, int accumulate);
void iapo_ref_matmul_nn(float *C, const float *A, const float *B, int M, int N, int K, int accumulate);
void iapo_ref_matmul_tn(float *C, const float *A, const float *B, int M, int N, int K, int accumulate);
void iapo_ref_rmsnorm_forward(float *out, float *rstd, const float *x, const float *w, int N, int C, float eps);
void iapo_ref_rmsnorm_backward(float *dx, float *dw, const float *dout, const float *x, const float *w,
			       const float *rstd, int N, int C);
void iapo_ref_rope_apply(float *x, const int *pos, int N, int nheads, int HD, const float *inv_freq, int inverse);
void iapo_ref_swiglu_forward(float *out, const float *gate, const float *up, size_t n);
void iapo_ref_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up,
			      size_t n);
void iapo_ref_add_inplace(float *y, const float *x, size_t n);
void iapo_ref_bias_forward(float *y, const float *b, int N, int C);
void iapo_ref_bias_backward(float *db, const float *dy, int N, int C);
void iapo_ref_embedding_forward(float *out, const float *table, const int *tokens, int N, int C);
void iapo_ref_embedding_backward(float *dtable, const float *dout, const int *tokens, int N, int C);
void iapo_ref_attention_forward(float *out, float *lse, const float *q, const float *k, const float *v,
				const int *off, const int *len, int nseq, int NH, int NKV, int HD);
void iapo_ref_attention_backward(float *dq, float *dk, float *dv, float *dk_scratch, float *dv_scratch,
				 const float *dout, const float *q, const float *k, const float *v,
				 const float *out, const float *lse,
				 const int *off, const int *len, int nseq, int NH, int NKV, int HD);
void iapo_ref_logprob_entropy_forward(float *logp, float *entropy, const float *logits, const int *target,
				      int N, int V, float temperature);
void iapo_ref_logprob_entropy_backward(float *logits, const float *dlogp, const float *dentropy,
				       const int *target, int N, int V, float temperature);

#endif
