/*
 * config.c — Hugging Face config.json / generation_config.json to iapo_config
 * and back. Defaults are those of transformers' LlamaConfig, Qwen2Config and
 * Qwen3Config (e.g. Qwen3's head_dim is 128 and Qwen2/Qwen3's
 * num_key_value_heads is 32 when the file omits them; Llama's bos/eos are 1/2).
 * Both the classic fields (rope_theta, rope_scaling, torch_dtype) and the
 * newer transformers spelling (rope_parameters, dtype) are read.
 * What a config may ask for that iapo does not implement is refused here with
 * UNSUPPORTED, so that no model is silently run with different maths.
 */
#include <fcntl.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/mem.h"
#include "core/status.h"
#include "io/fs.h"
#include "io/json.h"
#include "model/weights.h"

#define JSON_CAP ((size_t)16 << 20)
#define DIM_MAX (1L << 24)
#define ID_MAX (1L << 30)

static iapo_status req_dim(const cJSON *o, const char *key, const char *file, int *out)
{
	long v;
	IAPO_TRY(iapo_json_req_int(o, key, file, 1, DIM_MAX, &v));
	*out = (int)v;
	return IAPO_OK;
}

static iapo_status opt_dim(const cJSON *o, const char *key, const char *file, int dflt, int *out)
{
	long v;
	IAPO_TRY(iapo_json_opt_int(o, key, file, 1, DIM_MAX, dflt, &v));
	*out = (int)v;
	return IAPO_OK;
}

/* v as a float; a value beyond float's range is refused, since it would
 * become inf (and be saved back as null). */
static iapo_status to_float(double v, const char *file, const char *field, float *out)
{
	if (!(fabs(v) <= FLT_MAX))
		return iapo_fail(IAPO_ERR_FORMAT, "%s: %s: expected a number within float range (|x| <= %g), found %g", file,
				 field, (double)FLT_MAX, v);
	*out = (float)v;
	return IAPO_OK;
}

static iapo_status opt_float(const cJSON *o, const char *key, const char *file, double dflt, float *out)
{
	double v;
	IAPO_TRY(iapo_json_opt_num(o, key, file, dflt, &v));
	return to_float(v, file, key, out);
}

/* A number inside a nested object (rope_scaling, rope_parameters), named
 * "<parent>.<key>" in messages. */
static iapo_status sub_num(const cJSON *o, const char *parent, const char *key, const char *file, int required,
			   double dflt, double *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	if (!v || cJSON_IsNull(v)) {
		if (required)
			return iapo_fail(IAPO_ERR_FORMAT, "%s: %s.%s: expected a number, found the field missing", file, parent,
					 key);
		*out = dflt;
		return IAPO_OK;
	}
	if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
		return iapo_fail(IAPO_ERR_FORMAT, "%s: %s.%s: expected a finite number, found %s", file, parent, key,
				 iapo_json_type_name(v));
	*out = v->valuedouble;
	return IAPO_OK;
}

/* Adds eos id(s) from v (an integer or a list of integers) to cfg, skipping
 * ids already there. */
static iapo_status add_eos(iapo_config *c, const cJSON *v, const char *file)
{
	if (!v || cJSON_IsNull(v)) return IAPO_OK;
	const cJSON *one = v;
	int is_list = cJSON_IsArray(v);
	if (is_list) one = v->child;
	if (!is_list && !cJSON_IsNumber(v))
		return iapo_fail(IAPO_ERR_FORMAT, "%s: eos_token_id: expected an integer or a list of integers, found %s",
				 file, iapo_json_type_name(v));
	for (; one; one = is_list ? one->next : NULL) {
		long id;
		IAPO_TRY(iapo_json_as_int(one, file, "eos_token_id", 0, ID_MAX, &id));
		int dup = 0;
		for (int i = 0; i < c->n_eos; i++) dup |= c->eos_ids[i] == (int)id;
		if (dup) continue;
		if (c->n_eos == IAPO_MAX_EOS)
			return iapo_fail(IAPO_ERR_FORMAT, "%s: eos_token_id: expected at most %d ids, found more", file,
					 IAPO_MAX_EOS);
		c->eos_ids[c->n_eos++] = (int)id;
	}
	return IAPO_OK;
}

/* rope_scaling (or rope_parameters) object: llama3 or default. */
static iapo_status parse_rope(iapo_config *c, const cJSON *r, const char *file, const char *field)
{
	const char *type = NULL;
	if (!r || cJSON_IsNull(r)) return IAPO_OK;
	if (!cJSON_IsObject(r))
		return iapo_fail(IAPO_ERR_FORMAT, "%s: %s: expected an object or null, found %s", file, field,
				 iapo_json_type_name(r));
	IAPO_TRY(iapo_json_opt_str(r, "rope_type", file, &type));
	if (!type) IAPO_TRY(iapo_json_opt_str(r, "type", file, &type));
	if (!type || !strcmp(type, "default")) return IAPO_OK;
	if (strcmp(type, "llama3") != 0)
		return iapo_fail(IAPO_ERR_UNSUPPORTED, "%s: %s: rope_type: expected \"llama3\" or \"default\", found \"%.40s\"",
				 file, field, type);
	c->rope_kind = IAPO_ROPE_LLAMA3;
	double f, lo, hi, omp;
	IAPO_TRY(sub_num(r, field, "factor", file, 1, 0, &f));
	IAPO_TRY(sub_num(r, field, "low_freq_factor", file, 1, 0, &lo));
	IAPO_TRY(sub_num(r, field, "high_freq_factor", file, 1, 0, &hi));
	IAPO_TRY(sub_num(r, field, "original_max_position_embeddings", file, 1, 0, &omp));
	if (omp != floor(omp) || omp < 1 || omp > DIM_MAX)
		return iapo_fail(IAPO_ERR_FORMAT, "%s: %s.original_max_position_embeddings: expected a positive integer, found %g",
				 file, field, omp);
	char what[64];
	snprintf(what, sizeof what, "%s.factor", field);
	IAPO_TRY(to_float(f, file, what, &c->rope_factor));
	snprintf(what, sizeof what, "%s.low_freq_factor", field);
	IAPO_TRY(to_float(lo, file, what, &c->rope_low_freq_factor));
	snprintf(what, sizeof what, "%s.high_freq_factor", field);
	IAPO_TRY(to_float(hi, file, what, &c->rope_high_freq_factor));
	c->rope_orig_max_pos = (int)omp;
	if (!(c->rope_factor > 0) || !(c->rope_low_freq_factor > 0) || !(c->rope_high_freq_factor > c->rope_low_freq_factor))
		return iapo_fail(IAPO_ERR_FORMAT,
				 "%s: %s: expected factor > 0 and high_freq_factor > low_freq_factor > 0, found %g, %g, %g", file,
				 field, c->rope_factor, c->rope_low_freq_factor, c->rope_high_freq_factor);
	return IAPO_OK;
}

static iapo_status unsupported_true(const cJSON *o, const char *key, const char *file, const char *why)
{
	int v;
	IAPO_TRY(iapo_json_opt_bool(o, key, file, 0, &v));
	if (v) return iapo_fail(IAPO_ERR_UNSUPPORTED, "%s: %s: expected false, found true (%s)", file, key, why);
	return IAPO_OK;
}

static iapo_status config_from_json(const cJSON *o, const char *file, iapo_config *c)
{
	const char *mt, *act, *dtype;
	long v;
	memset(c, 0, sizeof *c);
	if (!cJSON_IsObject(o))
		return iapo_fail(IAPO_ERR_FORMAT, "%s: expected a JSON object, found %s", file, iapo_json_type_name(o));
	/* Python's json keeps the last of two equal keys, cJSON the first: refuse
	 * rather than read a different model than HF would. */
	IAPO_TRY(iapo_json_unique_keys(o, file));
	IAPO_TRY(iapo_json_req_str(o, "model_type", file, &mt));
	if (!strcmp(mt, "llama")) c->arch = IAPO_ARCH_LLAMA;
	else if (!strcmp(mt, "qwen2")) c->arch = IAPO_ARCH_QWEN2;
	else if (!strcmp(mt, "qwen3")) c->arch = IAPO_ARCH_QWEN3;
	else
		return iapo_fail(IAPO_ERR_UNSUPPORTED, "%s: model_type: expected \"llama\", \"qwen2\" or \"qwen3\", found \"%.40s\"",
				 file, mt);
	snprintf(c->model_type, sizeof c->model_type, "%s", mt);
	int is_llama = c->arch == IAPO_ARCH_LLAMA;

	IAPO_TRY(req_dim(o, "vocab_size", file, &c->V));
	IAPO_TRY(req_dim(o, "hidden_size", file, &c->C));
	IAPO_TRY(req_dim(o, "intermediate_size", file, &c->F));
	IAPO_TRY(req_dim(o, "num_hidden_layers", file, &c->L));
	IAPO_TRY(req_dim(o, "num_attention_heads", file, &c->NH));
	IAPO_TRY(opt_dim(o, "num_key_value_heads", file, is_llama ? c->NH : 32, &c->NKV));
	const cJSON *hd = cJSON_GetObjectItemCaseSensitive(o, "head_dim");
	if (c->arch != IAPO_ARCH_QWEN3 && (!hd || cJSON_IsNull(hd)) && c->C % c->NH != 0)
		return iapo_fail(IAPO_ERR_FORMAT,
				 "%s: hidden_size: expected a multiple of num_attention_heads (%d) when head_dim is absent, "
				 "found %d",
				 file, c->NH, c->C);
	IAPO_TRY(opt_dim(o, "head_dim", file, c->arch == IAPO_ARCH_QWEN3 ? 128 : c->C / c->NH, &c->HD));
	IAPO_TRY(opt_dim(o, "max_position_embeddings", file, is_llama ? 2048 : 32768, &c->max_pos));
	IAPO_TRY(opt_float(o, "rms_norm_eps", file, 1e-6, &c->rms_eps));
	IAPO_TRY(iapo_json_opt_bool(o, "tie_word_embeddings", file, 0, &c->tie_embeddings));

	IAPO_TRY(iapo_json_opt_str(o, "hidden_act", file, &act));
	if (act && strcmp(act, "silu") != 0)
		return iapo_fail(IAPO_ERR_UNSUPPORTED, "%s: hidden_act: expected \"silu\", found \"%.40s\"", file, act);

	/* RoPE: newer transformers nest everything in rope_parameters. */
	const cJSON *rp = cJSON_GetObjectItemCaseSensitive(o, "rope_parameters");
	if (rp && !cJSON_IsNull(rp)) {
		if (!cJSON_IsObject(rp))
			return iapo_fail(IAPO_ERR_FORMAT, "%s: rope_parameters: expected an object, found %s", file,
					 iapo_json_type_name(rp));
		double th;
		IAPO_TRY(sub_num(rp, "rope_parameters", "rope_theta", file, 0, 10000.0, &th));
		IAPO_TRY(to_float(th, file, "rope_parameters.rope_theta", &c->rope_theta));
		IAPO_TRY(parse_rope(c, rp, file, "rope_parameters"));
	} else {
		IAPO_TRY(opt_float(o, "rope_theta", file, 10000.0, &c->rope_theta));
		IAPO_TRY(parse_rope(c, cJSON_GetObjectItemCaseSensitive(o, "rope_scaling"), file, "rope_scaling"));
	}

	/* Biases and norms per architecture. In HF's Llama and Qwen3 attention,
	 * attention_bias puts a bias on o_proj as well as q/k/v. */
	if (c->arch == IAPO_ARCH_QWEN2) {
		c->qkv_bias = 1;
	} else {
		IAPO_TRY(unsupported_true(o, "attention_bias", file,
					  "it gives q/k/v/o_proj biases and iapo has no o_proj bias"));
	}
	if (is_llama) IAPO_TRY(unsupported_true(o, "mlp_bias", file, "iapo's MLP has no biases"));
	if (c->arch == IAPO_ARCH_QWEN3) c->qk_norm = 1;
	if (!is_llama) {
		IAPO_TRY(unsupported_true(o, "use_sliding_window", file, "iapo implements full attention only"));
		const cJSON *lt = cJSON_GetObjectItemCaseSensitive(o, "layer_types");
		if (cJSON_IsArray(lt))
			for (const cJSON *e = lt->child; e; e = e->next)
				if (!cJSON_IsString(e) || strcmp(e->valuestring, "full_attention") != 0)
					return iapo_fail(IAPO_ERR_UNSUPPORTED,
							 "%s: layer_types: expected only \"full_attention\", found %s%s%s", file,
							 cJSON_IsString(e) ? "\"" : "",
							 cJSON_IsString(e) ? e->valuestring : iapo_json_type_name(e),
							 cJSON_IsString(e) ? "\"" : "");
	}

	/* Special token ids. */
	IAPO_TRY(iapo_json_opt_int(o, "bos_token_id", file, 0, ID_MAX, is_llama ? 1 : -1, &v));
	c->bos_id = (int)v;
	IAPO_TRY(iapo_json_opt_int(o, "pad_token_id", file, 0, ID_MAX, -1, &v));
	c->pad_id = (int)v;
	const cJSON *eos = cJSON_GetObjectItemCaseSensitive(o, "eos_token_id");
	if (!eos && is_llama) c->eos_ids[c->n_eos++] = 2;
	else IAPO_TRY(add_eos(c, eos, file));

	IAPO_TRY(iapo_json_opt_str(o, "torch_dtype", file, &dtype));
	if (!dtype) IAPO_TRY(iapo_json_opt_str(o, "dtype", file, &dtype));
	if (dtype) snprintf(c->torch_dtype, sizeof c->torch_dtype, "%.15s", dtype);
	return IAPO_OK;
}

static iapo_status merge_generation_config(iapo_config *c, int dirfd, const char *name, const char *path)
{
	cJSON *g;
	long v;
	IAPO_TRY(iapo_json_load_at(dirfd, name, path, JSON_CAP, &g));
	iapo_status s = IAPO_OK;
	if (!cJSON_IsObject(g)) {
		s = iapo_fail(IAPO_ERR_FORMAT, "%s: expected a JSON object, found %s", path, iapo_json_type_name(g));
		goto fail;
	}
	IAPO_CHECK(s, iapo_json_unique_keys(g, path));
	IAPO_CHECK(s, iapo_json_opt_int(g, "bos_token_id", path, 0, ID_MAX, -1, &v));
	if (c->bos_id < 0) c->bos_id = (int)v;
	IAPO_CHECK(s, iapo_json_opt_int(g, "pad_token_id", path, 0, ID_MAX, -1, &v));
	if (c->pad_id < 0) c->pad_id = (int)v;
	IAPO_CHECK(s, add_eos(c, cJSON_GetObjectItemCaseSensitive(g, "eos_token_id"), path));
fail:
	cJSON_Delete(g);
	return s;
}

static iapo_status check_ids(const iapo_config *c, const char *file)
{
	if (c->bos_id >= c->V)
		return iapo_fail(IAPO_ERR_FORMAT, "%s: bos_token_id: expected an id below vocab_size %d, found %d", file, c->V,
				 c->bos_id);
	if (c->pad_id >= c->V)
		return iapo_fail(IAPO_ERR_FORMAT, "%s: pad_token_id: expected an id below vocab_size %d, found %d", file, c->V,
				 c->pad_id);
	for (int i = 0; i < c->n_eos; i++)
		if (c->eos_ids[i] >= c->V)
			return iapo_fail(IAPO_ERR_FORMAT, "%s: eos_token_id: expected ids below vocab_size %d, found %d", file,
					 c->V, c->eos_ids[i]);
	return IAPO_OK;
}

/* Sizes the per-field bounds of iapo_config_validate let through but no
 * loader should act on: head widths whose products overflow the kernels'
 * int dimensions, and parameter counts past any real checkpoint (the
 * largest open models hold ~4e11; 2^40 floats are 4 TiB). A config.json
 * from the internet must not make us try a multi-terabyte allocation. */
static iapo_status check_sizes(const iapo_config *c, const char *file)
{
	const double q = (double)c->NH * c->HD, kv = (double)c->NKV * c->HD;
	if (q > (1 << 24) || kv > (1 << 24))
		return iapo_fail(IAPO_ERR_FORMAT,
				 "%s: num_attention_heads x head_dim: expected at most 16777216, found %d x %d = %.0f", file,
				 c->NH, c->HD, q);
	const double n = (double)iapo_param_count(c);
	if (n > 1099511627776.0)
		return iapo_fail(IAPO_ERR_FORMAT,
				 "%s: dimensions describe %.3g parameters (%d layers, hidden %d, intermediate %d, vocab %d): "
				 "expected at most 2^40",
				 file, n, c->L, c->C, c->F, c->V);
	return IAPO_OK;
}

/* config.json (cfg_name) and, when it exists, generation_config.json
 * (gen_name), both relative to dirfd; *_path name them in messages. */
static iapo_status load_both(int dirfd, const char *cfg_name, const char *cfg_path, const char *gen_name,
			     const char *gen_path, iapo_config *cfg)
{
	cJSON *root;
	IAPO_TRY(iapo_json_load_at(dirfd, cfg_name, cfg_path, JSON_CAP, &root));
	iapo_status s = config_from_json(root, cfg_path, cfg);
	cJSON_Delete(root);
	IAPO_TRY(s);
	IAPO_TRY(iapo_config_validate(cfg, cfg_path));
	IAPO_TRY(check_sizes(cfg, cfg_path));
	IAPO_TRY(check_ids(cfg, cfg_path));
	if (gen_name && iapo_fs_exists_at(dirfd, gen_name)) {
		IAPO_TRY(merge_generation_config(cfg, dirfd, gen_name, gen_path));
		IAPO_TRY(check_ids(cfg, gen_path));
	}
	return IAPO_OK;
}

/* The generation_config.json beside the config.json at path, or 0 when the
 * name does not fit in gen. */
static int beside(const char *path, char *gen, size_t size)
{
	const char *slash = strrchr(path, '/');
	int dirlen = slash ? (int)(slash - path) : 1;
	int k = snprintf(gen, size, "%.*s/generation_config.json", dirlen, slash ? path : ".");
	return k > 0 && (size_t)k < size;
}

iapo_status iapo_config_load(const char *path, iapo_config *cfg)
{
	char gen[4096];
	return load_both(AT_FDCWD, path, path, beside(path, gen, sizeof gen) ? gen : NULL, gen, cfg);
}

double iapo_config_init_std(const char *path)
{
	cJSON *root;
	double std = 0.02;
	if (iapo_json_load(path, JSON_CAP, &root) != IAPO_OK) return std;
	if (iapo_json_opt_num(root, "initializer_range", path, 0.02, &std) != IAPO_OK || !(std >= 0)) std = 0.02;
	cJSON_Delete(root);
	return std;
}

static int names_key(const char *path, const char *key)
{
	cJSON *root;
	if (iapo_json_load(path, JSON_CAP, &root) != IAPO_OK) {
		iapo_clear_error();
		return 0;
	}
	int has = cJSON_IsObject(root) && cJSON_GetObjectItemCaseSensitive(root, key) != NULL;
	cJSON_Delete(root);
	return has;
}

int iapo_config_names_eos(const char *path)
{
	char gen[4096];
	if (names_key(path, "eos_token_id")) return 1;
	return beside(path, gen, sizeof gen) && iapo_fs_exists(gen) && names_key(gen, "eos_token_id");
}

iapo_status iapo_config_load_at(int dirfd, const char *dir, iapo_config *cfg)
{
	char cp[4096], gp[4096];
	IAPO_TRY(iapo_fs_join(cp, sizeof cp, dir, "config.json"));
	IAPO_TRY(iapo_fs_join(gp, sizeof gp, dir, "generation_config.json"));
	return load_both(dirfd, "config.json", cp, "generation_config.json", gp, cfg);
}

/* ------------------------------------------------------------- writing */

static const char *architecture(iapo_arch a)
{
	switch (a) {
	case IAPO_ARCH_LLAMA: return "LlamaForCausalLM";
	case IAPO_ARCH_QWEN2: return "Qwen2ForCausalLM";
	case IAPO_ARCH_QWEN3: return "Qwen3ForCausalLM";
	}
	return "?";
}

static const char *model_type(iapo_arch a)
{
	switch (a) {
	case IAPO_ARCH_LLAMA: return "llama";
	case IAPO_ARCH_QWEN2: return "qwen2";
	case IAPO_ARCH_QWEN3: return "qwen3";
	}
	return "?";
}

/* Attaches item to obj (to an array when key is NULL); on failure frees it.
 * Returns 1 on success. */
static int add_item(cJSON *obj, const char *key, cJSON *item)
{
	if (!item) return 0;
	int ok = key ? cJSON_AddItemToObject(obj, key, item) : cJSON_AddItemToArray(obj, item);
	if (!ok) cJSON_Delete(item);
	return ok;
}

/* Adds the eos ids as HF writes them: one int, or a list; none as [] (an
 * absent key would read back as Llama's default eos 2). */
static int put_ids(cJSON *o, const iapo_config *c)
{
	int ok = 1;
	if (c->bos_id >= 0) ok &= cJSON_AddNumberToObject(o, "bos_token_id", c->bos_id) != NULL;
	if (c->n_eos == 0) ok &= add_item(o, "eos_token_id", cJSON_CreateArray());
	if (c->n_eos == 1) ok &= cJSON_AddNumberToObject(o, "eos_token_id", c->eos_ids[0]) != NULL;
	if (c->n_eos > 1) ok &= add_item(o, "eos_token_id", cJSON_CreateIntArray(c->eos_ids, c->n_eos));
	if (c->pad_id >= 0) ok &= cJSON_AddNumberToObject(o, "pad_token_id", c->pad_id) != NULL;
	return ok;
}

static iapo_status write_json(cJSON *o, int ok, const char *path)
{
	iapo_status s;
	char *text = ok ? cJSON_Print(o) : NULL;
	cJSON_Delete(o);
	if (!text) return iapo_fail(IAPO_ERR_NOMEM, "%s: out of memory building JSON", path);
	size_t n = strlen(text);
	char *withnl = iapo_malloc(n + 2);
	if (!withnl) {
		cJSON_free(text);
		return iapo_fail(IAPO_ERR_NOMEM, "%s: out of memory building JSON", path);
	}
	memcpy(withnl, text, n);
	withnl[n] = '\n';
	s = iapo_fs_write_file(path, withnl, n + 1);
	iapo_free(withnl);
	cJSON_free(text);
	return s;
}

/* cJSON_Add*ToObject return the item or NULL; these keep a running "all
 * succeeded" flag so that one check covers an allocation failure anywhere. */
#define ADD(expr) ok &= (expr) != NULL
#define ADD_ITEM(obj, key, item) ok &= add_item((obj), (key), (item))

iapo_status iapo_config_write(const iapo_config *c, const char *path, const char *torch_dtype)
{
	iapo_json_init();
	int ok = 1;
	cJSON *o = cJSON_CreateObject();
	if (!o) return iapo_fail(IAPO_ERR_NOMEM, "%s: out of memory building JSON", path);
	cJSON *arch = cJSON_AddArrayToObject(o, "architectures");
	ok &= arch != NULL;
	if (arch) ADD_ITEM(arch, NULL, cJSON_CreateString(architecture(c->arch)));
	ADD(cJSON_AddStringToObject(o, "model_type", model_type(c->arch)));
	ADD(cJSON_AddNumberToObject(o, "vocab_size", c->V));
	ADD(cJSON_AddNumberToObject(o, "hidden_size", c->C));
	ADD(cJSON_AddNumberToObject(o, "intermediate_size", c->F));
	ADD(cJSON_AddNumberToObject(o, "num_hidden_layers", c->L));
	ADD(cJSON_AddNumberToObject(o, "num_attention_heads", c->NH));
	ADD(cJSON_AddNumberToObject(o, "num_key_value_heads", c->NKV));
	ADD(cJSON_AddNumberToObject(o, "head_dim", c->HD));
	ADD(cJSON_AddStringToObject(o, "hidden_act", "silu"));
	ADD(cJSON_AddNumberToObject(o, "max_position_embeddings", c->max_pos));
	ADD_ITEM(o, "rms_norm_eps", iapo_json_float(c->rms_eps));
	ADD_ITEM(o, "rope_theta", iapo_json_float(c->rope_theta));
	if (c->rope_kind == IAPO_ROPE_LLAMA3) {
		cJSON *r = cJSON_AddObjectToObject(o, "rope_scaling");
		ok &= r != NULL;
		if (r) {
			ADD(cJSON_AddStringToObject(r, "rope_type", "llama3"));
			ADD_ITEM(r, "factor", iapo_json_float(c->rope_factor));
			ADD_ITEM(r, "low_freq_factor", iapo_json_float(c->rope_low_freq_factor));
			ADD_ITEM(r, "high_freq_factor", iapo_json_float(c->rope_high_freq_factor));
			ADD(cJSON_AddNumberToObject(r, "original_max_position_embeddings", c->rope_orig_max_pos));
		}
	} else {
		ADD(cJSON_AddNullToObject(o, "rope_scaling"));
	}
	ADD(cJSON_AddBoolToObject(o, "tie_word_embeddings", c->tie_embeddings));
	if (c->arch != IAPO_ARCH_QWEN2) ADD(cJSON_AddBoolToObject(o, "attention_bias", 0));
	if (c->arch == IAPO_ARCH_LLAMA) ADD(cJSON_AddBoolToObject(o, "mlp_bias", 0));
	if (c->arch != IAPO_ARCH_LLAMA) ADD(cJSON_AddBoolToObject(o, "use_sliding_window", 0));
	ADD_ITEM(o, "attention_dropout", iapo_json_float(0.0f));
	ADD_ITEM(o, "initializer_range", iapo_json_float(0.02f));
	ok &= put_ids(o, c);
	ADD(cJSON_AddStringToObject(o, "torch_dtype", torch_dtype));
	ADD(cJSON_AddTrueToObject(o, "use_cache"));
	return write_json(o, ok, path);
}

iapo_status iapo_generation_config_write(const iapo_config *c, const char *path)
{
	iapo_json_init();
	cJSON *o = cJSON_CreateObject();
	if (!o) return iapo_fail(IAPO_ERR_NOMEM, "%s: out of memory building JSON", path);
	int ok = put_ids(o, c);
	return write_json(o, ok, path);
}
