/*
 * transformer.h — the training forward and backward of a Llama / Qwen2 / Qwen3
 * decoder over a padded batch (B,T), ending in per-token log-probs and
 * entropies instead of a (B,T,V) logits tensor.
 *
 * Inside, the valid tokens of all rows are packed into one (N,C) stream
 * (N = sum of lengths) so matmuls skip padding and a padded position can never
 * influence a valid one. Every activation the backward needs is kept in one
 * arena allocated by iapo_fwd_new; forward and backward allocate nothing.
 * The vocabulary projection runs in chunks of positions, forward and again
 * (recomputed) in the backward.
 *
 * Left out: incremental decoding with a KV cache (kv cache module), sampling,
 * the loss and optimiser (src/rl), reduced-precision activations.
 * Threads: one iapo_fwd must not be used from two threads at once; the work
 * inside is parallelised with OpenMP and OpenBLAS.
 */
#ifndef IAPO_MODEL_TRANSFORMER_H
#define IAPO_MODEL_TRANSFORMER_H

#include "model/model.h"
#include "model/weights.h"

typedef struct iapo_fwd iapo_fwd;

/* Activation arena for batches up to (B,T), allocated ONCE here (no allocation
 * later in forward/backward). with_backward=0 keeps only what inference needs.
 * The weights are borrowed: they must outlive the iapo_fwd (their values may
 * change between calls, as an optimiser does; the block must not move).
 * Fails with IAPO_ERR_ARG on a bad shape or config, IAPO_ERR_NOMEM. */
iapo_status iapo_fwd_new(const iapo_weights *w, int B, int T, int with_backward, iapo_fwd **out);
/* The same from a config and parameter pointers (tests, or weights kept elsewhere). */
iapo_status iapo_fwd_new_params(const iapo_config *cfg, const iapo_params *params, int B, int T, int with_backward,
				iapo_fwd **out);
void iapo_fwd_free(iapo_fwd *f);

/* Logits are divided by temperature before softmax (TRL does this for RL
 * log-probs); default 1. Must be > 0 (otherwise ignored). */
void iapo_fwd_set_temperature(iapo_fwd *f, float temperature);
/* Positions per vocabulary chunk, clamped to [1, the arena's chunk]; the
 * default is as many as fit about 256 MB of logits. Tests lower it. */
void iapo_fwd_set_chunk(iapo_fwd *f, int rows);
/* Bytes held by the arena (for reports and memory planning). */
size_t iapo_fwd_bytes(const iapo_fwd *f);

/* tokens (B,T): row b holds lens[b] real tokens then padding (ignored, any value); positions 0..lens[b]-1.
 * targets (B,T): the token whose log-prob is read at each position, -1 = none (padding, prompt).
 * Writes logp (B,T) = log softmax(logits/temp)[target] (0 where target -1) and entropy (B,T) of that
 * distribution (0 on padding), and, only if logits != NULL (tests, small V), the full (B,T,V) logits.
 * The vocabulary projection runs in chunks of positions so (B,T,V) is never materialised.
 * logits are the model's raw outputs (before the temperature), 0 on padding.
 * logp and entropy may be NULL. Errors: IAPO_ERR_ARG for B/T above the arena's,
 * a length outside [0,T], a token or target outside the vocabulary. */
iapo_status iapo_fwd_forward(iapo_fwd *f, const int *tokens, const int *lens, const int *targets, int B, int T,
			     float *logp, float *entropy, float *logits);

/* Backward of the last forward given dL/dlogp (B,T) and optionally dL/dentropy (B,T) (NULL = 0);
 * ACCUMULATES (+=) parameter gradients into grad_block (same layout as the weights block, iapo_params_point works on it).
 * Tied embeddings: lm_head and embedding grads both land in the embedding slice.
 * Values at padding positions, and dlogp where the target was -1, are ignored.
 * IAPO_ERR_ARG when the arena was made without backward or no forward ran. */
iapo_status iapo_fwd_backward(iapo_fwd *f, const float *dlogp, const float *dentropy, float *grad_block);

#endif
