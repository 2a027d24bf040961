/*
 * generate.h — sampling completions for a batch of prompts: ragged prefill
 * through the KV cache, then one batched decode step per token until every
 * sequence has finished by an end-of-sequence token, a stop string or the
 * token budget. Finished sequences drop out of the batch (they cost no more
 * compute).
 *
 * Randomness: sequence i draws from its own stream keyed by (seed, key_i)
 * (key_i = keys[i], or i when keys is NULL), one draw per sampled token, so a
 * sequence's completion does not depend on which others share the batch or
 * on the thread count. Replicating a prompt G times for a group is the
 * caller's job (give each copy its own key).
 *
 * Leaves out: continuous batching (refilling freed slots), beam search,
 * streaming output, log-prob outputs (the trainer recomputes those; only the
 * sampling distributions' entropies are offered, opt-in).
 */
#ifndef IAPO_MODEL_GENERATE_H
#define IAPO_MODEL_GENERATE_H

#include <stdint.h>

#include "iapo.h"
#include "model/kvcache.h"
#include "model/sample.h"
#include "model/weights.h"
#include "tokenizer/tokenizer.h"

typedef enum {
	IAPO_FINISH_LENGTH = 0, /* max_new_tokens reached */
	IAPO_FINISH_EOS = 1,    /* an end-of-sequence token was sampled */
	IAPO_FINISH_STOP = 2,   /* the completion's text came to contain a stop string */
} iapo_finish;

/* iapo_gen_opts.weights. AUTO (0, the default): a bf16 copy of the weight
 * matrices (kvcache.h's iapo_kv_use_bf16, taken afresh at every call, so it
 * follows weights that change between calls, unless keep_bf16 promises they
 * did not), which halves the bytes a
 * decoding step reads; kvcache.h states how closely its tokens, log-probs and
 * entropies follow fp32's. But fp32 when entropies are asked for: they, and
 * the K/V left in a caller's cache, are then what the fp32 model gives (the
 * IAPO information pass reuses both). FP32, BF16: always that. A caller's
 * cache is left in the precision it was in (its bf16 copy's memory is kept).
 * The training forward, and with it every log-prob and ratio the trainer
 * uses, is fp32 whatever this says. */
enum { IAPO_GEN_WEIGHTS_AUTO = 0, IAPO_GEN_WEIGHTS_FP32 = 1, IAPO_GEN_WEIGHTS_BF16 = 2 };

/* iapo_gen_opts.pack. ON: decoding reads the weight matrices it multiplies
 * by (the call's bf16 copy, or the fp32 weights) from GEMM panels packed at
 * this call (kvcache.h's iapo_kv_pack_weights(kv, 2)), streaming them as one
 * sequence instead of row by row: qwen0.5b's bf16 decoding of 8 rows through
 * a kept cache +32% (bench/README.md "Session 12, decoding"). Costs one more
 * copy of the matrices (bf16: about half the fp32 weights' bytes; fp32: as
 * many), kept in a caller's cache for its next call (their first touch once:
 * 5 s at qwen0.5b on this VM; then a repack in place after each call's copy,
 * 0.1 s, unless keep_packs reuses them), and other rounding than the rows in products of at most 16 rows
 * (tests/test_generate.c states how close; the prefill's many rows read the
 * panels to the bit). Panels that cannot be allocated leave the rows, which
 * is never wrong. AUTO (0, the default): ON for a caller's cache when there
 * are decoding steps (max_new_tokens >= 2: the trainer's rollouts, an
 * evaluation's batches), OFF without one (the cache made here would pay
 * the first touch at every call: at qwen0.5b more than 128 steps of 8 rows
 * save). A caller's cache is left with no packs in use (iapo_kv_pack_weights
 * (kv, 0); their memory stays), so its later few-row forwards (the IAPO
 * pass) read the rows as before. OFF: the rows (the ablation, and callers
 * short of memory). */
enum { IAPO_GEN_PACK_AUTO = 0, IAPO_GEN_PACK_OFF = 1, IAPO_GEN_PACK_ON = 2 };

/* "length", "eos", "stop". */
const char *iapo_finish_str(iapo_finish f);

typedef struct {
	int max_new_tokens;      /* >= 0 */
	iapo_sampler sampler;
	uint64_t seed;
	const uint64_t *keys;    /* (B) stream key per sequence; NULL: the index */
	const int *eos_ids;      /* NULL: the model config's eos ids */
	int n_eos;
	const char *const *stop; /* stop strings (non-empty), may be NULL */
	int n_stop;
	/* Needed for text and stop strings; NULL: no text is produced (and
	 * stop strings are an ARG error). */
	const iapo_tokenizer *tok;
	/* > 0: each result's `entropy` gets, per sampled token, the entropy of
	 * the distribution it was drawn from, softmax(logits / entropy_temperature)
	 * (for IAPO's policy entropies C_t, without a second forward). 0: none. */
	float entropy_temperature;
	/* Which weights the decoding multiplies by (iapo_gen_weights). */
	int weights;
	/* A promise: the weights have not changed since an earlier call took
	 * the bf16 copy that the caller's cache holds (the batches of one
	 * evaluation), so decoding in bf16 reuses it instead of converting the
	 * weights again (kvcache.h's IAPO_KV_BF16_KEEP). Ignored without a
	 * caller's cache. */
	int keep_bf16;
	/* (B) distinct slots of the caller's cache that sequences 0..B-1 go
	 * into; only these are reset, so the K/V the other slots hold survive
	 * the call (e.g. a group resampled while the rest of the batch keeps
	 * its K/V for the IAPO pass). NULL: sequence b in slot b, and every
	 * slot is reset. Needs a caller's cache. */
	const int *slots;
	/* Whether decoding reads the weights from panels (iapo_gen_pack). */
	int pack;
	/* A promise as keep_bf16's: the weights have not changed since an
	 * earlier call packed them into the caller's cache (the rollout batches
	 * of one training step), so a packed call reuses those packs when they
	 * are of this call's precision (and bf16 snapshot: with keep_bf16 too)
	 * instead of repacking (kvcache.h's iapo_kv_pack_keep; 0.1 s a call at
	 * qwen0.5b). Ignored without a caller's cache. */
	int keep_packs;
} iapo_gen_opts;

/* One completion; arrays owned by the result (iapo_gen_results_free). */
typedef struct {
	int *tokens;       /* every sampled token, the final eos or stop-completing one included */
	int n_tokens;
	/* The leading tokens that make up `text`: n_tokens minus a final eos; at
	 * a stop string, only the tokens whose text ends at or before it. */
	int n_text_tokens;
	char *text;        /* decoded completion (special tokens skipped), cut before a stop string;
			    * NUL-terminated; raw bytes (no U+FFFD replacement); NULL without a tokenizer */
	size_t text_len;
	iapo_finish finish;
	int stop_index;    /* which stop string matched, -1 otherwise */
	float *entropy;    /* (n_tokens) with o->entropy_temperature > 0, else NULL */
} iapo_gen_result;

typedef struct {
	long prompt_tokens, generated_tokens;
	double prefill_seconds, decode_seconds; /* wall clock */
	int steps;                              /* batched decode steps */
	double pack_seconds;                    /* wall clock of packing the weights (iapo_gen_pack) */
	int packed;                             /* 1: the weights were packed and opened to decoding (iapo_gen_pack;
						 * CPUs without AVX-512 read the rows all the same) */
	int packs_kept;                         /* 1: those packs were an earlier call's, reused (keep_packs) */
} iapo_gen_stats;

/* Generates a completion for each of B prompts (prompts[i], prompt_lens[i] >=
 * 1 tokens). kv: a cache with >= B slots and Tmax >= longest prompt +
 * max_new_tokens, reused across calls to avoid reallocating it (every slot
 * is reset, or only o->slots); NULL: one is made and freed here. results: (B), filled
 * on success (free with iapo_gen_results_free); on failure they are left
 * empty. stats may be NULL. Errors: ARG (bad options, empty prompt, a cache
 * too small), NUMERIC (logits with NaN), NOMEM. */
iapo_status iapo_generate(const iapo_weights *w, const int *const *prompts, const int *prompt_lens, int B,
			  const iapo_gen_opts *o, iapo_kv *kv, iapo_gen_result *results, iapo_gen_stats *stats);
void iapo_gen_results_free(iapo_gen_result *results, int B);

#endif
