/*
 * adamw.h — AdamW (Loshchilov & Hutter; decoupled weight decay) over one
 * contiguous parameter block, with the first and second moments in blocks of
 * the same layout, exactly as torch.optim.AdamW (amsgrad=False, maximize=False)
 * computes it. Also the global gradient-norm clip, done in double so the norm
 * does not depend on how the block is split across threads.
 */
#ifndef IAPO_RL_ADAMW_H
#define IAPO_RL_ADAMW_H

#include <stddef.h>

typedef struct {
	float lr;
	float beta1, beta2;
	float eps;
	float weight_decay;
} iapo_adamw_opts;

/* One step t (1-based) over n floats: p -= lr*wd*p; m,v updated from g;
 * p -= lr * m_hat / (sqrt(v_hat) + eps). m and v start zeroed. Threads: the
 * kernels' pool (iapo_get_threads()); each element is computed alone, so the
 * bits do not depend on the thread count. */
void iapo_adamw_step(float *p, const float *g, float *m, float *v, size_t n, const iapo_adamw_opts *o, long t);

/* Euclidean norm of the n floats in g: double sums of fixed chunks added in
 * order, so the same bits at every thread count. */
double iapo_grad_norm(const float *g, size_t n);
/* If the norm exceeds max_norm > 0, scales g by max_norm / (norm + 1e-6) as
 * torch.nn.utils.clip_grad_norm_ does. Returns the norm before clipping. */
double iapo_grad_clip(float *g, size_t n, double max_norm);

#endif
