/*
 * weights.h — a model's configuration and fp32 parameters, loaded from and
 * saved to Hugging Face model directories (config.json, generation_config.json,
 * model.safetensors or shards + model.safetensors.index.json, tokenizer files),
 * or initialised at random the way Hugging Face initialises a fresh model.
 * Not here: the forward pass (model/), optimiser state and trainer state of a
 * checkpoint (rl/), the tokenizer (tokenizer/).
 */
#ifndef IAPO_MODEL_WEIGHTS_H
#define IAPO_MODEL_WEIGHTS_H

#include <stddef.h>
#include <stdint.h>

#include "model/model.h"

typedef struct {
	iapo_config cfg;
	float *block;  /* iapo_param_count(&cfg) floats, 64-byte aligned, owned */
	iapo_params p; /* pointers into block (iapo_params_point) */
} iapo_weights;

/* Parses a HF config.json into cfg (and generation_config.json beside it if
 * present: its eos ids are added to config.json's, its bos/pad fill absent
 * ones). Defaults follow each model type's HF config class. Unknown fields
 * are ignored; features iapo does not implement (other rope scalings, sliding
 * windows, o_proj/MLP biases, activations other than silu) are UNSUPPORTED. */
iapo_status iapo_config_load(const char *config_json_path, iapo_config *cfg);
/* Loads config.json and generation_config.json of the directory open as
 * dirfd (`dir` names it in messages). */
iapo_status iapo_config_load_at(int dirfd, const char *dir, iapo_config *cfg);
/* initializer_range of the config.json at path (the std of a fresh model's
 * weights), or HF's 0.02 when the file, the field or its value is missing or
 * bad. */
double iapo_config_init_std(const char *config_json_path);
/* Whether the config.json at path, or the generation_config.json beside it,
 * names an eos_token_id. iapo_config_load gives Llama configs that name none
 * HF's default eos 2, which a fresh model with another tokenizer should not
 * keep (iapo init). A file that cannot be read names none. */
int iapo_config_names_eos(const char *config_json_path);
/* Writes config.json for cfg (every field needed to rebuild it, plus
 * architectures, model_type and torch_dtype, e.g. "bfloat16") to path. Not
 * atomic: meant for a file inside a directory made visible atomically. */
iapo_status iapo_config_write(const iapo_config *cfg, const char *path, const char *torch_dtype);
/* Writes generation_config.json (bos/eos/pad ids) to path, likewise. */
iapo_status iapo_generation_config_write(const iapo_config *cfg, const char *path);

/* Shape of the HF tensor for parameter `which` (one layer's slice for layered
 * ones) into shape; returns the number of dimensions (1 or 2), 0 if absent. */
int iapo_param_shape(const iapo_config *cfg, int which, int64_t shape[2]);

/* Loads DIR/config.json and DIR/model.safetensors or the shards listed in
 * DIR/model.safetensors.index.json; F32/BF16/F16 (and F64) become fp32. Every
 * tensor the config implies must be present with exactly its shape; extra
 * tensors are ignored (as HF does), as is lm_head.weight of a tied model.
 * On failure *w is empty (iapo_weights_free is a no-op). */
iapo_status iapo_weights_load(const char *dir, iapo_weights *w);
/* Allocates for cfg and fills like HF's _init_weights: normal(0, std) for
 * matrices and embeddings (the pad_id row of the embedding zeroed, as
 * nn.Embedding(padding_idx) does), ones for norms, zeros for biases.
 * Deterministic from seed: each row has its own stream, so the result does
 * not depend on the thread count. */
iapo_status iapo_weights_init_random(iapo_weights *w, const iapo_config *cfg, uint64_t seed, float std);
/* Writes an HF-loadable directory atomically (temp dir beside out_dir, fsync
 * files and dir, rename; an existing out_dir is replaced only once the new one
 * is complete; on failure out_dir is untouched and no temp dir is left):
 * model.safetensors (dtype "F32", "BF16" or "F16"; sharded into
 * model-0000i-of-0000n.safetensors + model.safetensors.index.json when larger
 * than max_shard_bytes > 0), config.json, generation_config.json, and
 * tokenizer.json, tokenizer_config.json, special_tokens_map.json, vocab.json,
 * merges.txt copied from tokenizer_src_dir when they exist there
 * (tokenizer_src_dir may be NULL, and may be out_dir itself). */
iapo_status iapo_weights_save(const iapo_weights *w, const char *out_dir, const char *tokenizer_src_dir,
			      const char *dtype, size_t max_shard_bytes);
void iapo_weights_free(iapo_weights *w);

#endif
