/*
 * sample.h — picking the next token from one row of logits: greedy, or
 * temperature softmax filtered by top-k then top-p (nucleus) and one draw from
 * an iapo_rng stream. The filters follow Hugging Face's TopKLogitsWarper then
 * TopPLogitsWarper, so a run here and there keep the same candidate set:
 *  - top-k keeps every token whose logit is >= the k-th largest (ties at the
 *    boundary are all kept, as torch.topk + "<" does in HF);
 *  - top-p renormalises over what top-k kept, orders it by probability
 *    (descending; equal probabilities by ascending id) and keeps the shortest
 *    prefix whose mass reaches p; the most likely token is always kept.
 * Nothing here sorts the whole vocabulary: top-k uses selection, top-p gathers
 * only tokens above a probability threshold that is lowered until they hold
 * mass p, and sorts just those.
 * Leaves out: repetition penalties, min-p, logit bias (not needed by the RL loop).
 */
#ifndef IAPO_MODEL_SAMPLE_H
#define IAPO_MODEL_SAMPLE_H

#include "core/rng.h"

typedef struct {
	float temperature; /* <= 0: greedy (argmax, lowest id on ties) */
	int top_k;         /* <= 0 or >= V: no top-k filter */
	float top_p;       /* >= 1 (or <= 0): no nucleus filter */
} iapo_sampler;

/* Floats of scratch iapo_sample needs for a vocabulary of V. */
#define IAPO_SAMPLE_SCRATCH(V) (2 * (size_t)(V))

/* Returns the chosen token id in [0, V), or -1 when the logits hold a NaN or
 * no finite value (the caller reports it). Draws exactly one iapo_rng_double
 * from rng when sampling (none when greedy), so a stream's k-th draw always
 * belongs to the k-th token. scratch: IAPO_SAMPLE_SCRATCH(V) floats, owned by
 * the caller (one per thread); unused when greedy. logits are not modified. */
int iapo_sample(const float *logits, int V, const iapo_sampler *s, iapo_rng *rng, float *scratch);

/* The greedy choice: argmax, lowest id on ties; -1 on NaN / no finite value. */
int iapo_sample_argmax(const float *logits, int V);

#endif
