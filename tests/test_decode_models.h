/*
 * test_decode_models.h — tiny random models of the three families for the
 * decoding and generation tests, filled here (not by iapo_weights_init_random)
 * with weights large enough that attention is far from uniform, so a wrong
 * mask, position or cache slot shows up in the logits. Also the full-forward
 * oracle: logits of the last position of a whole sequence through the
 * training forward (transformer.h), which shares no code with the cache path
 * above the kernels.
 */
#ifndef TEST_DECODE_MODELS_H
#define TEST_DECODE_MODELS_H

#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "core/rng.h"
#include "model/transformer.h"
#include "model/weights.h"

enum { TINY_QWEN2, TINY_LLAMA, TINY_QWEN3, TINY_NUM };
static const char *const tiny_names[TINY_NUM] = {"qwen2", "llama", "qwen3"};

static iapo_config tiny_config(int kind)
{
	iapo_config c;
	memset(&c, 0, sizeof c);
	c.V = 97;
	c.C = 64;
	c.L = 2;
	c.NH = 4;
	c.NKV = 2;
	c.HD = 16;
	c.F = 96;
	c.max_pos = 4096;
	c.rope_theta = 10000;
	c.rms_eps = 1e-6f;
	c.bos_id = -1;
	c.pad_id = -1;
	c.n_eos = 1;
	c.eos_ids[0] = 96;
	switch (kind) {
	case TINY_QWEN2:
		c.arch = IAPO_ARCH_QWEN2;
		strcpy(c.model_type, "qwen2");
		c.qkv_bias = 1;
		c.tie_embeddings = 1;
		c.rope_theta = 1000000;
		break;
	case TINY_LLAMA: /* GQA 4:1, untied, Llama 3 rope scaling */
		c.arch = IAPO_ARCH_LLAMA;
		strcpy(c.model_type, "llama");
		c.NKV = 1;
		c.V = 111;
		c.eos_ids[0] = 110;
		c.rope_theta = 500000;
		c.rope_kind = IAPO_ROPE_LLAMA3;
		c.rope_factor = 8;
		c.rope_low_freq_factor = 1;
		c.rope_high_freq_factor = 4;
		c.rope_orig_max_pos = 64;
		break;
	case TINY_QWEN3: /* q/k norm, head_dim * heads != hidden */
		c.arch = IAPO_ARCH_QWEN3;
		strcpy(c.model_type, "qwen3");
		c.qk_norm = 1;
		c.C = 48;
		c.HD = 24;
		c.tie_embeddings = 1;
		break;
	}
	return c;
}

/* Random weights for config cfg: matrices N(0, 0.15), norms 1 + N(0, 0.1),
 * biases N(0, 0.1), embeddings x4 so that logits spread widely; stream picks
 * the random stream (callers keep their own so their values stay fixed). */
static int tiny_weights_cfg(const iapo_config *cfg, uint64_t seed, uint64_t stream, iapo_weights *w)
{
	memset(w, 0, sizeof *w);
	w->cfg = *cfg;
	size_t n = iapo_param_count(&w->cfg);
	w->block = iapo_alloc_aligned(n * sizeof(float));
	if (!w->block) return -1;
	iapo_params_point(&w->cfg, w->block, &w->p);
	size_t sizes[IAPO_NUM_PARAMS];
	iapo_param_sizes(&w->cfg, sizes);
	iapo_rng r;
	iapo_rng_seed(&r, seed, stream, 0, 0);
	for (int t = 0; t < IAPO_NUM_PARAMS; t++) {
		int is_norm = t == IAPO_P_LN1 || t == IAPO_P_LN2 || t == IAPO_P_NORM || t == IAPO_P_QNORM ||
			      t == IAPO_P_KNORM;
		int is_bias = t == IAPO_P_BQ || t == IAPO_P_BK || t == IAPO_P_BV;
		for (size_t i = 0; i < sizes[t]; i++) {
			float g = iapo_rng_normal(&r);
			w->p.t[t][i] = is_norm ? 1 + 0.1f * g : (is_bias ? 0.1f * g : 0.15f * g);
		}
	}
	for (size_t i = 0; i < sizes[IAPO_P_EMBED]; i++) w->p.t[IAPO_P_EMBED][i] *= 4;
	return 0;
}

/* tiny_config(kind)'s random weights; V > 0 overrides the vocabulary size
 * (eos becomes V - 1). */
static int tiny_weights_v(int kind, uint64_t seed, int V, iapo_weights *w)
{
	iapo_config c = tiny_config(kind);
	if (V > 0) {
		c.V = V;
		c.eos_ids[0] = V - 1;
	}
	return tiny_weights_cfg(&c, seed, 77, w);
}

static int tiny_weights(int kind, uint64_t seed, iapo_weights *w) { return tiny_weights_v(kind, seed, 0, w); }

/* Logits (V) of the last of n tokens, through the training forward. */
static int tiny_full_logits(const iapo_weights *w, iapo_fwd *f, const int *tokens, int n, float *out, float *all)
{
	int *targets = malloc(sizeof(int) * (size_t)n);
	for (int i = 0; i < n; i++) targets[i] = -1;
	iapo_status st = iapo_fwd_forward(f, tokens, &n, targets, 1, n, NULL, NULL, all);
	free(targets);
	if (st != IAPO_OK) return -1;
	memcpy(out, all + (size_t)(n - 1) * w->cfg.V, sizeof(float) * (size_t)w->cfg.V);
	return 0;
}

#endif
