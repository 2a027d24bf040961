/*
 * tiny_model.h — test-only helpers: the three tiny architectures the
 * transformer tests share (Qwen2: tied, q/k/v bias; Llama: untied, GQA,
 * Llama 3 RoPE scaling; Qwen3: q/k norm, head_dim != hidden/heads) and a
 * random parameter block for them. Not a loader: fixtures from real files go
 * through the weights module.
 */
#ifndef IAPO_TESTS_TINY_MODEL_H
#define IAPO_TESTS_TINY_MODEL_H

#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "model/model.h"

static inline iapo_config tiny_config(iapo_arch arch)
{
	iapo_config c;
	memset(&c, 0, sizeof c);
	c.arch = arch;
	c.V = 37, c.C = 16, c.L = 2, c.NH = 4, c.NKV = 2, c.HD = 4, c.F = 24;
	c.max_pos = 64, c.rope_theta = 10000.0f, c.rms_eps = 1e-6f;
	c.bos_id = c.pad_id = -1;
	switch (arch) {
	case IAPO_ARCH_QWEN2:
		strcpy(c.model_type, "qwen2");
		c.tie_embeddings = 1, c.qkv_bias = 1, c.NKV = 4;
		break;
	case IAPO_ARCH_LLAMA:
		strcpy(c.model_type, "llama");
		c.NKV = 1, c.rope_theta = 500000.0f;
		c.rope_kind = IAPO_ROPE_LLAMA3, c.rope_factor = 8, c.rope_low_freq_factor = 1;
		c.rope_high_freq_factor = 4, c.rope_orig_max_pos = 8;
		break;
	case IAPO_ARCH_QWEN3:
		strcpy(c.model_type, "qwen3");
		c.tie_embeddings = 1, c.qk_norm = 1, c.HD = 6; /* NH*HD = 24 != C */
		break;
	}
	return c;
}

/* A parameter block with N(0, std) matrices and 1 + N(0, 0.1) norm weights. */
static inline float *tiny_block(const iapo_config *c, uint64_t seed, float std, iapo_params *p)
{
	size_t n = iapo_param_count(c), sizes[IAPO_NUM_PARAMS];
	float *block = malloc(sizeof(float) * n);
	iapo_rng r;
	iapo_rng_seed(&r, seed, 0, 0, 0);
	iapo_params_point(c, block, p);
	iapo_param_sizes(c, sizes);
	for (int i = 0; i < IAPO_NUM_PARAMS; i++) {
		int is_norm = i == IAPO_P_LN1 || i == IAPO_P_LN2 || i == IAPO_P_NORM || i == IAPO_P_QNORM || i == IAPO_P_KNORM;
		for (size_t j = 0; j < sizes[i]; j++)
			p->t[i][j] = is_norm ? 1.0f + 0.1f * iapo_rng_normal(&r) : std * iapo_rng_normal(&r);
	}
	return block;
}

static inline const char *tiny_name(int which)
{
	static const char *const n[IAPO_NUM_PARAMS] = {"embed", "ln1", "wq", "bq", "wk", "bk", "wv", "bv", "q_norm",
						      "k_norm", "wo", "ln2", "w_gate", "w_up", "w_down", "norm", "lm_head"};
	return n[which];
}

#endif
