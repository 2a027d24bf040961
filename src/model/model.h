/*
 * model.h — the model's configuration (from Hugging Face config.json) and the
 * parameter layout: every parameter tensor of every layer lives in ONE block
 * carved by a size table (llm.c style), so gradients and AdamW moments are
 * blocks of the same layout, and one allreduce / one write covers them all.
 *
 * Dimension letters: V vocab, C hidden size, L layers, NH query heads,
 * NKV key/value heads, HD head dim, F MLP intermediate size.
 * Weights are stored as in PyTorch's nn.Linear: (out_features, in_features),
 * row-major, so y = x W^T.
 */
#ifndef IAPO_MODEL_MODEL_H
#define IAPO_MODEL_MODEL_H

#include <stddef.h>

#include "iapo.h"

typedef enum { IAPO_ARCH_LLAMA = 0, IAPO_ARCH_QWEN2 = 1, IAPO_ARCH_QWEN3 = 2 } iapo_arch;
typedef enum { IAPO_ROPE_DEFAULT = 0, IAPO_ROPE_LLAMA3 = 1 } iapo_rope_kind;

#define IAPO_MAX_EOS 8

typedef struct {
	iapo_arch arch;
	char model_type[32];       /* as written in config.json: "qwen2", "llama", "qwen3" */
	int V, C, L, NH, NKV, HD, F;
	int max_pos;               /* max_position_embeddings */
	float rope_theta;
	float rms_eps;
	int tie_embeddings;        /* tie_word_embeddings: lm_head shares embed's storage */
	int qkv_bias;              /* Qwen2: true; Llama: attention_bias */
	int qk_norm;               /* Qwen3: RMSNorm over each head of q and k */
	/* rope_scaling (Llama 3) */
	iapo_rope_kind rope_kind;
	float rope_factor, rope_low_freq_factor, rope_high_freq_factor;
	int rope_orig_max_pos;
	/* token ids (-1 when absent) */
	int bos_id;
	int eos_ids[IAPO_MAX_EOS];
	int n_eos;
	int pad_id;
	char torch_dtype[16];      /* dtype the checkpoint declared, kept for saving */
} iapo_config;

/* Parameter tensors, in block order. Absent ones (bias without qkv_bias,
 * q/k norm without qk_norm, lm_head when tied) have size 0. */
enum {
	IAPO_P_EMBED,   /* (V, C) */
	IAPO_P_LN1,     /* (L, C) input_layernorm */
	IAPO_P_WQ,      /* (L, NH*HD, C) */
	IAPO_P_BQ,      /* (L, NH*HD) */
	IAPO_P_WK,      /* (L, NKV*HD, C) */
	IAPO_P_BK,      /* (L, NKV*HD) */
	IAPO_P_WV,      /* (L, NKV*HD, C) */
	IAPO_P_BV,      /* (L, NKV*HD) */
	IAPO_P_QNORM,   /* (L, HD) */
	IAPO_P_KNORM,   /* (L, HD) */
	IAPO_P_WO,      /* (L, C, NH*HD) */
	IAPO_P_LN2,     /* (L, C) post_attention_layernorm */
	IAPO_P_WGATE,   /* (L, F, C) */
	IAPO_P_WUP,     /* (L, F, C) */
	IAPO_P_WDOWN,   /* (L, C, F) */
	IAPO_P_NORM,    /* (C) final norm */
	IAPO_P_LMHEAD,  /* (V, C); 0 when tied */
	IAPO_NUM_PARAMS
};

typedef struct {
	float *t[IAPO_NUM_PARAMS];
} iapo_params;

/* Sizes (in floats) of each tensor for the whole model (all layers). */
void iapo_param_sizes(const iapo_config *cfg, size_t sizes[IAPO_NUM_PARAMS]);
/* Total number of floats. */
size_t iapo_param_count(const iapo_config *cfg);
/* Points each tensor into block (which must hold iapo_param_count floats).
 * When tied, t[IAPO_P_LMHEAD] points at the embedding. */
void iapo_params_point(const iapo_config *cfg, float *block, iapo_params *p);
/* Per-layer tensor size (floats) for the tensors that have a layer index, and
 * the whole size for the others; used to find layer l's slice: t + l*layer_size. */
size_t iapo_param_layer_size(const iapo_config *cfg, int which);
/* Hugging Face name of tensor `which` for layer `layer` (ignored for global
 * tensors) into buf; returns 0 if this tensor is absent in the config. */
int iapo_param_hf_name(const iapo_config *cfg, int which, int layer, char *buf, size_t n);
/* Number of per-layer slices (L) or 1 for global tensors. */
int iapo_param_is_layered(int which);

/* Checks the dimensions are positive and consistent (C = NH*HD need not hold;
 * NH % NKV == 0 must). Message names `file`. */
iapo_status iapo_config_validate(const iapo_config *cfg, const char *file);

#endif
