/*
 * params.c — the parameter size table and Hugging Face tensor names.
 */
#include "model/model.h"

#include <stdio.h>

#include "core/status.h"

int iapo_param_is_layered(int which)
{
	return which != IAPO_P_EMBED && which != IAPO_P_NORM && which != IAPO_P_LMHEAD;
}

size_t iapo_param_layer_size(const iapo_config *c, int which)
{
	size_t C = (size_t)c->C, V = (size_t)c->V, F = (size_t)c->F, HD = (size_t)c->HD;
	size_t Q = (size_t)c->NH * HD, KV = (size_t)c->NKV * HD;
	switch (which) {
	case IAPO_P_EMBED: return V * C;
	case IAPO_P_LN1: return C;
	case IAPO_P_WQ: return Q * C;
	case IAPO_P_BQ: return c->qkv_bias ? Q : 0;
	case IAPO_P_WK: return KV * C;
	case IAPO_P_BK: return c->qkv_bias ? KV : 0;
	case IAPO_P_WV: return KV * C;
	case IAPO_P_BV: return c->qkv_bias ? KV : 0;
	case IAPO_P_QNORM: return c->qk_norm ? HD : 0;
	case IAPO_P_KNORM: return c->qk_norm ? HD : 0;
	case IAPO_P_WO: return C * Q;
	case IAPO_P_LN2: return C;
	case IAPO_P_WGATE: return F * C;
	case IAPO_P_WUP: return F * C;
	case IAPO_P_WDOWN: return C * F;
	case IAPO_P_NORM: return C;
	case IAPO_P_LMHEAD: return c->tie_embeddings ? 0 : V * C;
	}
	return 0;
}

void iapo_param_sizes(const iapo_config *c, size_t sizes[IAPO_NUM_PARAMS])
{
	for (int i = 0; i < IAPO_NUM_PARAMS; i++)
		sizes[i] = iapo_param_layer_size(c, i) * (iapo_param_is_layered(i) ? (size_t)c->L : 1);
}

size_t iapo_param_count(const iapo_config *c)
{
	size_t sizes[IAPO_NUM_PARAMS], n = 0;
	iapo_param_sizes(c, sizes);
	for (int i = 0; i < IAPO_NUM_PARAMS; i++) n += sizes[i];
	return n;
}

void iapo_params_point(const iapo_config *c, float *block, iapo_params *p)
{
	size_t sizes[IAPO_NUM_PARAMS];
	iapo_param_sizes(c, sizes);
	float *q = block;
	for (int i = 0; i < IAPO_NUM_PARAMS; i++) {
		p->t[i] = sizes[i] ? q : NULL;
		q += sizes[i];
	}
	if (c->tie_embeddings) p->t[IAPO_P_LMHEAD] = p->t[IAPO_P_EMBED];
}

int iapo_param_hf_name(const iapo_config *c, int which, int layer, char *buf, size_t n)
{
	static const char *const layer_names[IAPO_NUM_PARAMS] = {
		[IAPO_P_LN1] = "input_layernorm.weight",
		[IAPO_P_WQ] = "self_attn.q_proj.weight",
		[IAPO_P_BQ] = "self_attn.q_proj.bias",
		[IAPO_P_WK] = "self_attn.k_proj.weight",
		[IAPO_P_BK] = "self_attn.k_proj.bias",
		[IAPO_P_WV] = "self_attn.v_proj.weight",
		[IAPO_P_BV] = "self_attn.v_proj.bias",
		[IAPO_P_QNORM] = "self_attn.q_norm.weight",
		[IAPO_P_KNORM] = "self_attn.k_norm.weight",
		[IAPO_P_WO] = "self_attn.o_proj.weight",
		[IAPO_P_LN2] = "post_attention_layernorm.weight",
		[IAPO_P_WGATE] = "mlp.gate_proj.weight",
		[IAPO_P_WUP] = "mlp.up_proj.weight",
		[IAPO_P_WDOWN] = "mlp.down_proj.weight",
	};
	if (iapo_param_layer_size(c, which) == 0) return 0;
	switch (which) {
	case IAPO_P_EMBED: snprintf(buf, n, "model.embed_tokens.weight"); break;
	case IAPO_P_NORM: snprintf(buf, n, "model.norm.weight"); break;
	case IAPO_P_LMHEAD: snprintf(buf, n, "lm_head.weight"); break;
	default: snprintf(buf, n, "model.layers.%d.%s", layer, layer_names[which]); break;
	}
	return 1;
}

iapo_status iapo_config_validate(const iapo_config *c, const char *file)
{
	struct { const char *name; int v; } dims[] = {
		{"vocab_size", c->V}, {"hidden_size", c->C}, {"num_hidden_layers", c->L},
		{"num_attention_heads", c->NH}, {"num_key_value_heads", c->NKV},
		{"head_dim", c->HD}, {"intermediate_size", c->F},
	};
	for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++)
		if (dims[i].v <= 0 || dims[i].v > (1 << 24))
			return iapo_fail(IAPO_ERR_FORMAT, "%s: %s: expected a positive integer up to 16777216, found %d",
					 file, dims[i].name, dims[i].v);
	if (c->NH % c->NKV != 0)
		return iapo_fail(IAPO_ERR_FORMAT,
				 "%s: num_key_value_heads: expected a divisor of num_attention_heads (%d), found %d",
				 file, c->NH, c->NKV);
	if (c->HD % 2 != 0)
		return iapo_fail(IAPO_ERR_FORMAT, "%s: head_dim: expected an even number for RoPE, found %d", file, c->HD);
	if (!(c->rms_eps > 0))
		return iapo_fail(IAPO_ERR_FORMAT, "%s: rms_norm_eps: expected a positive number, found %g", file, c->rms_eps);
	if (!(c->rope_theta > 0))
		return iapo_fail(IAPO_ERR_FORMAT, "%s: rope_theta: expected a positive number, found %g", file, c->rope_theta);
	if ((double)c->V * c->C > 4e10 || (double)c->L * c->F * c->C > 4e11)
		return iapo_fail(IAPO_ERR_FORMAT, "%s: dimensions describe a model too large to load (%d x %d vocab, %d layers)",
				 file, c->V, c->C, c->L);
	return IAPO_OK;
}
