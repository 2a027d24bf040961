/*
 * test_weights.c — Hugging Face model directories: config.json parsing (HF
 * defaults per model type), random init, save -> load round trips (F32 exact,
 * BF16/F16 equal to the rounded values, sharded), loading directories written
 * by PyTorch (tests/oracle/io_fixtures.py), our saved directories read by an
 * independent Python reader (tests/oracle/io_check_saved.py), logits of
 * re-saved PyTorch directories under hf_model.py (io_logits_check.py), every kind of
 * bad input with its message, and the atomic-save guarantees (including
 * injected allocation failures and a concurrent reader).
 */
#include <dirent.h>
#include <omp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/mem.h"
#include "core/rng.h"
#include "core/status.h"
#include "io/fs.h"
#include "io/half.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "model/weights.h"
#include "test.h"

static char tmpdir[512];

static void tpath(char *buf, size_t n, const char *name)
{
	int k = snprintf(buf, n, "%s/%s", tmpdir, name);
	if (k < 0 || (size_t)k >= n) buf[0] = '\0';
}

static int has(const char *msg, const char *part) { return strstr(msg, part) != NULL; }

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	if (!f) return;
	fputs(text, f);
	fclose(f);
}

/* Makes DIR (emptied) and writes DIR/config.json. */
static void make_config_dir(const char *dir, const char *json)
{
	char p[1024];
	iapo_fs_remove_all(dir);
	iapo_fs_mkdir_p(dir);
	snprintf(p, sizeof p, "%s/config.json", dir);
	write_text(p, json);
}

static const char *QWEN2_CFG =
	"{\"architectures\": [\"Qwen2ForCausalLM\"], \"model_type\": \"qwen2\", \"vocab_size\": 50,"
	" \"hidden_size\": 16, \"intermediate_size\": 24, \"num_hidden_layers\": 2,"
	" \"num_attention_heads\": 4, \"num_key_value_heads\": 2, \"max_position_embeddings\": 512,"
	" \"rope_theta\": 1000000.0, \"rms_norm_eps\": 1e-06, \"tie_word_embeddings\": true,"
	" \"rope_scaling\": null, \"use_sliding_window\": false, \"sliding_window\": 32768,"
	" \"max_window_layers\": 21, \"bos_token_id\": 40, \"eos_token_id\": 41, \"torch_dtype\": \"bfloat16\","
	" \"hidden_act\": \"silu\", \"attention_dropout\": 0.0, \"initializer_range\": 0.02}";

static const char *LLAMA_CFG =
	"{\"model_type\": \"llama\", \"vocab_size\": 64, \"hidden_size\": 16, \"intermediate_size\": 40,"
	" \"num_hidden_layers\": 3, \"num_attention_heads\": 4, \"num_key_value_heads\": 1,"
	" \"max_position_embeddings\": 1024, \"rope_theta\": 500000.0, \"rms_norm_eps\": 1e-05,"
	" \"rope_scaling\": {\"factor\": 32.0, \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0,"
	"   \"original_max_position_embeddings\": 128, \"rope_type\": \"llama3\"},"
	" \"tie_word_embeddings\": false, \"attention_bias\": false, \"mlp_bias\": false,"
	" \"bos_token_id\": 60, \"eos_token_id\": [61, 62, 63], \"pad_token_id\": 59, \"torch_dtype\": \"float32\"}";

static const char *QWEN3_CFG =
	"{\"model_type\": \"qwen3\", \"vocab_size\": 40, \"hidden_size\": 16, \"intermediate_size\": 32,"
	" \"num_hidden_layers\": 2, \"num_attention_heads\": 2, \"num_key_value_heads\": 1, \"head_dim\": 12,"
	" \"max_position_embeddings\": 256, \"rope_theta\": 1000000, \"rms_norm_eps\": 1e-06,"
	" \"tie_word_embeddings\": false, \"attention_bias\": false, \"eos_token_id\": 3, \"torch_dtype\": \"bfloat16\"}";

/* Loads a config from JSON text via a scratch dir. */
static iapo_status load_cfg_text(const char *name, const char *json, iapo_config *c)
{
	char dir[1024], p[1100];
	tpath(dir, sizeof dir, name);
	make_config_dir(dir, json);
	snprintf(p, sizeof p, "%s/config.json", dir);
	return iapo_config_load(p, c);
}

static int same_config(const iapo_config *a, const iapo_config *b)
{
	int ok = a->arch == b->arch && !strcmp(a->model_type, b->model_type) && a->V == b->V && a->C == b->C &&
		 a->L == b->L && a->NH == b->NH && a->NKV == b->NKV && a->HD == b->HD && a->F == b->F &&
		 a->max_pos == b->max_pos && a->rope_theta == b->rope_theta && a->rms_eps == b->rms_eps &&
		 a->tie_embeddings == b->tie_embeddings && a->qkv_bias == b->qkv_bias && a->qk_norm == b->qk_norm &&
		 a->rope_kind == b->rope_kind && a->rope_factor == b->rope_factor &&
		 a->rope_low_freq_factor == b->rope_low_freq_factor && a->rope_high_freq_factor == b->rope_high_freq_factor &&
		 a->rope_orig_max_pos == b->rope_orig_max_pos && a->bos_id == b->bos_id && a->n_eos == b->n_eos &&
		 a->pad_id == b->pad_id;
	for (int i = 0; ok && i < a->n_eos; i++) ok = a->eos_ids[i] == b->eos_ids[i];
	return ok;
}

/* --------------------------------------------------------------- config */

static void test_config_fields(void)
{
	iapo_config c;
	CHECK(load_cfg_text("cfg_qwen2", QWEN2_CFG, &c) == IAPO_OK, "%s", iapo_errmsg());
	CHECK(c.arch == IAPO_ARCH_QWEN2 && c.V == 50 && c.C == 16 && c.F == 24 && c.L == 2 && c.NH == 4 && c.NKV == 2 &&
		      c.HD == 4,
	      "qwen2 dims");
	CHECK(c.tie_embeddings && c.qkv_bias && !c.qk_norm && c.rope_kind == IAPO_ROPE_DEFAULT, "qwen2 flags");
	CHECK(c.rope_theta == 1e6f && c.rms_eps == 1e-6f && c.max_pos == 512, "qwen2 floats");
	CHECK(c.bos_id == 40 && c.n_eos == 1 && c.eos_ids[0] == 41 && c.pad_id == -1, "qwen2 ids");
	CHECK(!strcmp(c.torch_dtype, "bfloat16"), "torch_dtype %s", c.torch_dtype);

	CHECK(load_cfg_text("cfg_llama", LLAMA_CFG, &c) == IAPO_OK, "%s", iapo_errmsg());
	CHECK(c.arch == IAPO_ARCH_LLAMA && c.HD == 4 && c.NKV == 1 && !c.tie_embeddings && !c.qkv_bias, "llama");
	CHECK(c.rope_kind == IAPO_ROPE_LLAMA3 && c.rope_factor == 32.0f && c.rope_low_freq_factor == 1.0f &&
		      c.rope_high_freq_factor == 4.0f && c.rope_orig_max_pos == 128,
	      "llama3 rope");
	CHECK(c.n_eos == 3 && c.eos_ids[2] == 63 && c.pad_id == 59 && c.bos_id == 60, "llama ids");

	CHECK(load_cfg_text("cfg_qwen3", QWEN3_CFG, &c) == IAPO_OK, "%s", iapo_errmsg());
	CHECK(c.arch == IAPO_ARCH_QWEN3 && c.HD == 12 && c.qk_norm && !c.qkv_bias && c.rope_theta == 1e6f, "qwen3");
}

static void test_config_defaults(void)
{
	iapo_config c;
	/* Llama: kv heads = heads, head_dim = hidden/heads, bos 1 / eos 2,
	 * theta 10000, eps 1e-6, untied, 2048 positions. */
	CHECK(load_cfg_text("def_llama",
			    "{\"model_type\": \"llama\", \"vocab_size\": 10, \"hidden_size\": 8,"
			    " \"intermediate_size\": 4, \"num_hidden_layers\": 1, \"num_attention_heads\": 2}",
			    &c) == IAPO_OK,
	      "%s", iapo_errmsg());
	CHECK(c.NKV == 2 && c.HD == 4 && c.bos_id == 1 && c.n_eos == 1 && c.eos_ids[0] == 2 && c.rope_theta == 10000.0f &&
		      c.rms_eps == 1e-6f && !c.tie_embeddings && c.max_pos == 2048,
	      "llama defaults");
	/* Qwen3: head_dim 128 and 32 kv heads unless given (HF Qwen3Config). */
	CHECK(load_cfg_text("def_qwen3",
			    "{\"model_type\": \"qwen3\", \"vocab_size\": 10, \"hidden_size\": 8,"
			    " \"intermediate_size\": 4, \"num_hidden_layers\": 1, \"num_attention_heads\": 64}",
			    &c) == IAPO_OK,
	      "%s", iapo_errmsg());
	CHECK(c.HD == 128 && c.NKV == 32 && c.bos_id == -1 && c.n_eos == 0 && !c.tie_embeddings && c.max_pos == 32768,
	      "qwen3 defaults: HD %d NKV %d", c.HD, c.NKV);
	/* Newer transformers: rope_parameters and dtype. */
	CHECK(load_cfg_text("def_ropeparams",
			    "{\"model_type\": \"llama\", \"vocab_size\": 10, \"hidden_size\": 8,"
			    " \"intermediate_size\": 4, \"num_hidden_layers\": 1, \"num_attention_heads\": 2,"
			    " \"dtype\": \"bfloat16\", \"rope_parameters\": {\"rope_type\": \"llama3\", \"rope_theta\": 500000.0,"
			    " \"factor\": 8.0, \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0,"
			    " \"original_max_position_embeddings\": 8192}}",
			    &c) == IAPO_OK,
	      "%s", iapo_errmsg());
	CHECK(c.rope_theta == 500000.0f && c.rope_kind == IAPO_ROPE_LLAMA3 && c.rope_orig_max_pos == 8192 &&
		      !strcmp(c.torch_dtype, "bfloat16"),
	      "rope_parameters");
	/* rope_scaling {"type": "default"} is plain RoPE. */
	CHECK(load_cfg_text("def_ropedefault",
			    "{\"model_type\": \"qwen2\", \"vocab_size\": 10, \"hidden_size\": 8, \"num_key_value_heads\": 2,"
			    " \"intermediate_size\": 4, \"num_hidden_layers\": 1, \"num_attention_heads\": 2,"
			    " \"rope_scaling\": {\"type\": \"default\"}, \"some_future_field\": [1, {\"x\": null}]}",
			    &c) == IAPO_OK &&
		      c.rope_kind == IAPO_ROPE_DEFAULT,
	      "%s", iapo_errmsg());
}

static void test_generation_config_merge(void)
{
	char dir[1024], p[1100];
	iapo_config c;
	tpath(dir, sizeof dir, "gen");
	make_config_dir(dir, QWEN2_CFG);
	snprintf(p, sizeof p, "%s/generation_config.json", dir);
	write_text(p, "{\"bos_token_id\": 40, \"eos_token_id\": [42, 41], \"pad_token_id\": 43, \"do_sample\": true}");
	snprintf(p, sizeof p, "%s/config.json", dir);
	CHECK(iapo_config_load(p, &c) == IAPO_OK, "%s", iapo_errmsg());
	CHECK(c.n_eos == 2 && c.eos_ids[0] == 41 && c.eos_ids[1] == 42 && c.pad_id == 43, "eos %d [%d %d] pad %d", c.n_eos,
	      c.eos_ids[0], c.eos_ids[1], c.pad_id);
	snprintf(p, sizeof p, "%s/generation_config.json", dir);
	write_text(p, "{\"eos_token_id\": \"x\"}");
	snprintf(p, sizeof p, "%s/config.json", dir);
	CHECK(iapo_config_load(p, &c) == IAPO_ERR_FORMAT && has(iapo_errmsg(), "generation_config.json") &&
		      has(iapo_errmsg(), "eos_token_id"),
	      "%s", iapo_errmsg());
}

/* One bad config: status and message parts (the file is always named). */
static void bad_cfg(const char *name, const char *json, iapo_status code, const char *part1, const char *part2)
{
	iapo_config c;
	iapo_status s = load_cfg_text(name, json, &c);
	fprintf(stderr, "  message: %s\n", iapo_errmsg());
	CHECK(s == code, "%s: status %d want %d: %s", name, s, code, iapo_errmsg());
	CHECK(has(iapo_errmsg(), name) && has(iapo_errmsg(), "config.json"), "%s: file not named: %s", name, iapo_errmsg());
	CHECK(!part1 || has(iapo_errmsg(), part1), "%s: lacks '%s': %s", name, part1, iapo_errmsg());
	CHECK(!part2 || has(iapo_errmsg(), part2), "%s: lacks '%s': %s", name, part2, iapo_errmsg());
}

#define BASE "\"vocab_size\": 10, \"hidden_size\": 8, \"intermediate_size\": 4, \"num_hidden_layers\": 1, \"num_attention_heads\": 2, \"num_key_value_heads\": 2"

static void test_config_bad(void)
{
	bad_cfg("c_malformed", "{\"model_type\": \"llama\",\n \"vocab_size\": 10,,\n}", IAPO_ERR_FORMAT, "line 2", "JSON");
	bad_cfg("c_unknown_type", "{\"model_type\": \"gpt2\", " BASE "}", IAPO_ERR_UNSUPPORTED, "model_type", "gpt2");
	bad_cfg("c_no_type", "{" BASE "}", IAPO_ERR_FORMAT, "model_type", "missing");
	bad_cfg("c_missing_field",
		"{\"model_type\": \"llama\", \"vocab_size\": 10, \"intermediate_size\": 4, \"num_hidden_layers\": 1,"
		" \"num_attention_heads\": 2}",
		IAPO_ERR_FORMAT, "hidden_size", "missing");
	bad_cfg("c_string_field", "{\"model_type\": \"llama\", " BASE ", \"rms_norm_eps\": \"1e-6\"}", IAPO_ERR_FORMAT,
		"rms_norm_eps", "found a string");
	bad_cfg("c_int_string",
		"{\"model_type\": \"llama\", \"vocab_size\": \"10\", \"hidden_size\": 8, \"intermediate_size\": 4,"
		" \"num_hidden_layers\": 1, \"num_attention_heads\": 2}",
		IAPO_ERR_FORMAT, "vocab_size", "expected an integer");
	bad_cfg("c_bool_field", "{\"model_type\": \"llama\", " BASE ", \"tie_word_embeddings\": 1}", IAPO_ERR_FORMAT,
		"tie_word_embeddings", "true or false");
	bad_cfg("c_zero_dim",
		"{\"model_type\": \"llama\", \"vocab_size\": 0, \"hidden_size\": 8, \"intermediate_size\": 4,"
		" \"num_hidden_layers\": 1, \"num_attention_heads\": 2}",
		IAPO_ERR_FORMAT, "vocab_size", NULL);
	bad_cfg("c_gqa",
		"{\"model_type\": \"llama\", \"vocab_size\": 10, \"hidden_size\": 8, \"intermediate_size\": 4,"
		" \"num_hidden_layers\": 1, \"num_attention_heads\": 2, \"num_key_value_heads\": 3}",
		IAPO_ERR_FORMAT, "num_key_value_heads", NULL);
	bad_cfg("c_dup_key", "{\"model_type\": \"llama\", " BASE ", \"num_key_value_heads\": 1}", IAPO_ERR_FORMAT,
		"num_key_value_heads", "twice");
	bad_cfg("c_yarn", "{\"model_type\": \"qwen2\", " BASE ", \"rope_scaling\": {\"type\": \"yarn\", \"factor\": 4.0}}",
		IAPO_ERR_UNSUPPORTED, "rope_scaling", "yarn");
	bad_cfg("c_llama3_partial",
		"{\"model_type\": \"llama\", " BASE ", \"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8.0}}",
		IAPO_ERR_FORMAT, "rope_scaling", "low_freq_factor");
	bad_cfg("c_mlp_bias", "{\"model_type\": \"llama\", " BASE ", \"mlp_bias\": true}", IAPO_ERR_UNSUPPORTED, "mlp_bias",
		NULL);
	bad_cfg("c_attn_bias", "{\"model_type\": \"llama\", " BASE ", \"attention_bias\": true}", IAPO_ERR_UNSUPPORTED,
		"attention_bias", "o_proj");
	bad_cfg("c_sliding", "{\"model_type\": \"qwen2\", " BASE ", \"use_sliding_window\": true}", IAPO_ERR_UNSUPPORTED,
		"use_sliding_window", NULL);
	bad_cfg("c_act", "{\"model_type\": \"llama\", " BASE ", \"hidden_act\": \"gelu\"}", IAPO_ERR_UNSUPPORTED,
		"hidden_act", "gelu");
	bad_cfg("c_eos_range", "{\"model_type\": \"llama\", " BASE ", \"eos_token_id\": [2, 10]}", IAPO_ERR_FORMAT,
		"eos_token_id", "10");
	bad_cfg("c_not_object", "[1, 2]", IAPO_ERR_FORMAT, "object", NULL);
	bad_cfg("c_heads_split",
		"{\"model_type\": \"llama\", \"vocab_size\": 10, \"hidden_size\": 9, \"intermediate_size\": 4,"
		" \"num_hidden_layers\": 1, \"num_attention_heads\": 2}",
		IAPO_ERR_FORMAT, "hidden_size", "head_dim");
	char p[1024];
	iapo_config c;
	tpath(p, sizeof p, "no_such_dir/config.json");
	CHECK(iapo_config_load(p, &c) == IAPO_ERR_IO && has(iapo_errmsg(), "no_such_dir/config.json"), "%s",
	      iapo_errmsg());
}

/* ------------------------------------------------------------ init/save */

/* Random weights for a config file's text; every parameter, biases and
 * norms included, gets a distinct random value so a round trip proves
 * something about all of them. */
static int make_weights(const char *name, const char *json, iapo_weights *w, uint64_t seed)
{
	iapo_config c;
	if (load_cfg_text(name, json, &c) != IAPO_OK) {
		CHECK(0, "%s", iapo_errmsg());
		return 0;
	}
	if (iapo_weights_init_random(w, &c, seed, 0.02f) != IAPO_OK) {
		CHECK(0, "%s", iapo_errmsg());
		return 0;
	}
	iapo_rng g;
	iapo_rng_seed(&g, seed, 1, 0, 0);
	size_t n = iapo_param_count(&w->cfg);
	for (size_t i = 0; i < n; i++) w->block[i] = iapo_rng_normal(&g) * 0.7f;
	return 1;
}

static int block_equal_bits(const float *a, const float *b, size_t n, size_t *first)
{
	for (size_t i = 0; i < n; i++)
		if (iapo_f32_bits(a[i]) != iapo_f32_bits(b[i])) {
			*first = i;
			return 0;
		}
	return 1;
}

static void round_trip(const char *tag, const char *json, uint64_t seed)
{
	iapo_weights w, r;
	char dir[1024], name[64];
	if (!make_weights(tag, json, &w, seed)) return;
	size_t n = iapo_param_count(&w.cfg), first = 0;
	float *rounded = iapo_malloc(n * sizeof(float));
	const char *dtypes[] = {"F32", "BF16", "F16", "F32"};
	size_t shard[] = {0, 0, 0, 1500};
	for (int k = 0; k < 4; k++) {
		snprintf(name, sizeof name, "%s_out_%d", tag, k);
		tpath(dir, sizeof dir, name);
		CHECK(iapo_weights_save(&w, dir, NULL, dtypes[k], shard[k]) == IAPO_OK, "%s: %s", name, iapo_errmsg());
		CHECK(iapo_weights_load(dir, &r) == IAPO_OK, "%s: %s", name, iapo_errmsg());
		if (!r.block) continue;
		for (size_t i = 0; i < n; i++)
			rounded[i] = k == 1 ? iapo_bf16_to_f32(iapo_f32_to_bf16(w.block[i]))
				   : k == 2 ? iapo_f16_to_f32(iapo_f32_to_f16(w.block[i]))
					    : w.block[i];
		CHECK(same_config(&w.cfg, &r.cfg), "%s: config changed in the round trip", name);
		CHECK(iapo_param_count(&r.cfg) == n, "%s: size", name);
		CHECK(block_equal_bits(r.block, rounded, n, &first), "%s (%s): first difference at float %zu: %a vs %a", name,
		      dtypes[k], first, (double)r.block[first], (double)rounded[first]);
		if (k == 1) CHECK(!strcmp(r.cfg.torch_dtype, "bfloat16"), "torch_dtype %s", r.cfg.torch_dtype);
		if (r.cfg.tie_embeddings) CHECK(r.p.t[IAPO_P_LMHEAD] == r.p.t[IAPO_P_EMBED], "tied pointers");
		char idx[1100];
		snprintf(idx, sizeof idx, "%s/model.safetensors.index.json", dir);
		CHECK(iapo_fs_exists(idx) == (shard[k] != 0), "%s: index.json presence", name);
		if (shard[k]) {
			char s2[1100];
			snprintf(s2, sizeof s2, "%s/model-00002-of-", dir);
			DIR *dd = opendir(dir);
			int shards = 0;
			for (struct dirent *e; dd && (e = readdir(dd));) shards += strncmp(e->d_name, "model-0", 7) == 0;
			if (dd) closedir(dd);
			CHECK(shards > 2, "%s: only %d shards", name, shards);
		}
		iapo_weights_free(&r);
	}
	iapo_free(rounded);
	iapo_weights_free(&w);
}

static void test_round_trip_qwen2(void) { round_trip("rt_qwen2", QWEN2_CFG, 1); }
static void test_round_trip_llama(void) { round_trip("rt_llama", LLAMA_CFG, 2); }
static void test_round_trip_qwen3(void) { round_trip("rt_qwen3", QWEN3_CFG, 3); }

static void test_init_random(void)
{
	iapo_config c;
	iapo_weights a, b, d;
	CHECK(load_cfg_text("init", LLAMA_CFG, &c) == IAPO_OK, "%s", iapo_errmsg());
	int threads = omp_get_max_threads();
	omp_set_num_threads(1);
	CHECK(iapo_weights_init_random(&a, &c, 42, 0.02f) == IAPO_OK, "%s", iapo_errmsg());
	omp_set_num_threads(threads > 1 ? threads : 3);
	CHECK(iapo_weights_init_random(&b, &c, 42, 0.02f) == IAPO_OK, "%s", iapo_errmsg());
	omp_set_num_threads(threads);
	CHECK(iapo_weights_init_random(&d, &c, 43, 0.02f) == IAPO_OK, "%s", iapo_errmsg());
	if (!a.block || !b.block || !d.block) goto done;
	size_t n = iapo_param_count(&c);
	CHECK(!memcmp(a.block, b.block, n * 4), "same seed, different thread count: different weights");
	CHECK(memcmp(a.block, d.block, n * 4) != 0, "different seeds: same weights");
	size_t sizes[IAPO_NUM_PARAMS];
	iapo_param_sizes(&c, sizes);
	for (size_t i = 0; i < sizes[IAPO_P_LN1]; i++) CHECK(a.p.t[IAPO_P_LN1][i] == 1.0f, "norm not one");
	for (size_t i = 0; i < sizes[IAPO_P_NORM]; i++) CHECK(a.p.t[IAPO_P_NORM][i] == 1.0f, "final norm not one");
	/* pad row (59) of the embedding is zero, as nn.Embedding(padding_idx). */
	int zero = 1;
	for (int j = 0; j < c.C; j++) zero &= a.p.t[IAPO_P_EMBED][59 * c.C + j] == 0.0f;
	CHECK(zero, "pad row not zero");
	/* Matrices: mean ~0, std ~0.02. */
	double s1 = 0, s2 = 0;
	size_t m = sizes[IAPO_P_WGATE];
	for (size_t i = 0; i < m; i++) s1 += a.p.t[IAPO_P_WGATE][i], s2 += (double)a.p.t[IAPO_P_WGATE][i] * a.p.t[IAPO_P_WGATE][i];
	double mean = s1 / m, sd = sqrt(s2 / m - mean * mean);
	CHECK(fabs(mean) < 0.002 && fabs(sd - 0.02) < 0.002, "gate: mean %g std %g over %zu", mean, sd, m);
	/* Rows differ from each other (no stream reused). */
	CHECK(memcmp(a.p.t[IAPO_P_WQ], a.p.t[IAPO_P_WQ] + c.C, c.C * 4) != 0, "rows repeat");
	/* A Qwen2 config: biases zero. */
	iapo_weights q;
	CHECK(load_cfg_text("init_q", QWEN2_CFG, &c) == IAPO_OK, "%s", iapo_errmsg());
	CHECK(iapo_weights_init_random(&q, &c, 1, 0.02f) == IAPO_OK, "%s", iapo_errmsg());
	iapo_param_sizes(&c, sizes);
	for (size_t i = 0; q.block && i < sizes[IAPO_P_BQ]; i++) CHECK(q.p.t[IAPO_P_BQ][i] == 0.0f, "bias not zero");
	CHECK(q.p.t[IAPO_P_LMHEAD] == q.p.t[IAPO_P_EMBED], "tied");
	iapo_weights_free(&q);
	CHECK(iapo_weights_init_random(&q, &c, 1, -1.0f) == IAPO_ERR_ARG, "negative std accepted");
done:
	iapo_weights_free(&a);
	iapo_weights_free(&b);
	iapo_weights_free(&d);
}

/* ------------------------------------------------------ PyTorch fixtures */

static void check_fixture_dir(const char *name)
{
	char dir[1024], jp[1100], bp[1100];
	snprintf(dir, sizeof dir, "%s/io/%s", test_fixtures(), name);
	snprintf(jp, sizeof jp, "%s/expected.json", dir);
	snprintf(bp, sizeof bp, "%s/expected.bin", dir);
	iapo_weights w;
	cJSON *j = NULL;
	char *bin = NULL;
	size_t blen, total = 0;
	CHECK(iapo_weights_load(dir, &w) == IAPO_OK, "%s: %s", name, iapo_errmsg());
	CHECK(iapo_json_load(jp, 1 << 20, &j) == IAPO_OK, "%s", iapo_errmsg());
	CHECK(iapo_fs_read_file(bp, 1 << 24, &bin, &blen) == IAPO_OK, "%s", iapo_errmsg());
	if (!w.block || !j || !bin) goto done;
	/* Every (tensor, layer) the config implies, found by HF name. */
	int matched = 0, listed = cJSON_GetArraySize(cJSON_GetObjectItem(j, "tensors"));
	for (int which = 0; which < IAPO_NUM_PARAMS; which++) {
		int layers = iapo_param_is_layered(which) ? w.cfg.L : 1;
		size_t ls = iapo_param_layer_size(&w.cfg, which);
		for (int l = 0; l < layers; l++) {
			char hf[256];
			if (!iapo_param_hf_name(&w.cfg, which, l, hf, sizeof hf)) continue;
			const cJSON *e = NULL;
			for (e = cJSON_GetObjectItem(j, "tensors")->child; e; e = e->next)
				if (!strcmp(cJSON_GetObjectItem(e, "name")->valuestring, hf)) break;
			CHECK(e != NULL, "%s: %s not in expected.json", name, hf);
			if (!e) continue;
			size_t off = (size_t)cJSON_GetObjectItem(e, "offset")->valuedouble;
			CHECK((off + ls) * 4 <= blen, "expected.bin short");
			if ((off + ls) * 4 > blen) continue;
			size_t first = 0;
			CHECK(block_equal_bits(w.p.t[which] + (size_t)l * ls, (const float *)(bin + off * 4), ls, &first),
			      "%s: %s differs at %zu", name, hf, first);
			matched++;
			total += ls;
		}
	}
	CHECK(matched == listed, "%s: matched %d of %d tensors", name, matched, listed);
	CHECK(total == iapo_param_count(&w.cfg), "%s: covered %zu of %zu floats", name, total, iapo_param_count(&w.cfg));
done:
	iapo_weights_free(&w);
	cJSON_Delete(j);
	iapo_free(bin);
}

static void test_torch_qwen2_f32(void) { check_fixture_dir("model_qwen2_f32"); }
static void test_torch_qwen2_bf16(void) { check_fixture_dir("model_qwen2_bf16"); }
static void test_torch_qwen2_f16(void) { check_fixture_dir("model_qwen2_f16"); }
static void test_torch_llama_bf16_sharded(void) { check_fixture_dir("model_llama_bf16_sharded"); }
static void test_torch_qwen3_mixed_sharded(void) { check_fixture_dir("model_qwen3_f16_sharded"); }

/* ------------------------------------------- our files, read by Python */

/* Saves w, writes the values it should contain (rounded to dtype, in HF
 * module order) and runs the independent Python reader on it. */
static void python_reads(const char *tag, const char *json, const char *dtype, size_t shard)
{
	iapo_weights w;
	char dir[1024], exp[1024], name[64], cmd[3000];
	if (!make_weights(tag, json, &w, 7)) return;
	snprintf(name, sizeof name, "%s_%s_%zu", tag, dtype, shard);
	tpath(dir, sizeof dir, name);
	snprintf(name, sizeof name, "%s_%s_%zu.bin", tag, dtype, shard);
	tpath(exp, sizeof exp, name);
	CHECK(iapo_weights_save(&w, dir, NULL, dtype, shard) == IAPO_OK, "%s", iapo_errmsg());
	FILE *f = fopen(exp, "wb");
	const iapo_config *c = &w.cfg;
	/* HF module order: embed, per layer (model.h's enum order), norm, lm_head. */
	int order_first[] = {IAPO_P_EMBED}, order_last[] = {IAPO_P_NORM, IAPO_P_LMHEAD};
	for (int pass = 0; pass < 3 && f; pass++) {
		int layers = pass == 1 ? c->L : 1;
		for (int l = 0; l < layers; l++)
			for (int which = 0; which < IAPO_NUM_PARAMS; which++) {
				int in_pass = pass == 0 ? which == order_first[0]
					    : pass == 2 ? which == order_last[0] || which == order_last[1]
							: iapo_param_is_layered(which);
				size_t ls = iapo_param_layer_size(c, which);
				if (!in_pass || !ls) continue;
				const float *t = w.p.t[which] + (size_t)l * ls;
				for (size_t i = 0; i < ls; i++) {
					float v = !strcmp(dtype, "BF16") ? iapo_bf16_to_f32(iapo_f32_to_bf16(t[i]))
						: !strcmp(dtype, "F16") ? iapo_f16_to_f32(iapo_f32_to_f16(t[i]))
									: t[i];
					fwrite(&v, 4, 1, f);
				}
			}
	}
	if (f) fclose(f);
	snprintf(cmd, sizeof cmd, "/usr/bin/python3 tests/oracle/io_check_saved.py '%s' '%s' %s 1>&2", dir, exp, dtype);
	int rc = system(cmd);
	CHECK(rc == 0, "python reader rejected %s (%s): exit %d", dir, dtype, rc);
	iapo_weights_free(&w);
}

static void test_python_reads_ours(void)
{
	python_reads("py_qwen2", QWEN2_CFG, "BF16", 0);
	python_reads("py_llama", LLAMA_CFG, "F32", 2000);
	python_reads("py_qwen3", QWEN3_CFG, "F16", 0);
	python_reads("py_qwen3s", QWEN3_CFG, "BF16", 3000);
}

/* PyTorch-written directories, loaded and saved again by us (F32, and
 * sharded), give the same logits as the originals under hf_model.py. */
static void resave_logits(const char *fixture, size_t shard)
{
	char orig[1024], dir[1024], name[128], cmd[3000];
	iapo_weights w;
	snprintf(orig, sizeof orig, "%s/io/%s", test_fixtures(), fixture);
	snprintf(name, sizeof name, "resave_%s_%zu", fixture, shard);
	tpath(dir, sizeof dir, name);
	CHECK(iapo_weights_load(orig, &w) == IAPO_OK, "%s", iapo_errmsg());
	if (!w.block) return;
	CHECK(iapo_weights_save(&w, dir, NULL, "F32", shard) == IAPO_OK, "%s", iapo_errmsg());
	iapo_weights_free(&w);
	snprintf(cmd, sizeof cmd, "/usr/bin/python3 tests/oracle/io_logits_check.py '%s' '%s' 1>&2", orig, dir);
	int rc = system(cmd);
	CHECK(rc == 0, "%s re-saved gives other logits than the original (exit %d)", fixture, rc);
}

static void test_resaved_logits(void)
{
	resave_logits("model_qwen2_bf16", 0);
	resave_logits("model_llama_bf16_sharded", 0);
	resave_logits("model_qwen3_f16_sharded", 2500);
}

/* --------------------------------------------------------- bad weights */

/* A directory with QWEN3_CFG and one hand-made safetensors file holding the
 * tensors the config implies, with `edit` applied: 0 none, 1 drop
 * model.norm.weight, 2 transpose o_proj of layer 1, 3 make the embedding I32,
 * 4 drop lm_head. */
static void make_edited_dir(const char *dir, int edit)
{
	iapo_weights w;
	iapo_config c;
	char p[1100];
	make_config_dir(dir, QWEN3_CFG);
	snprintf(p, sizeof p, "%s/config.json", dir);
	if (iapo_config_load(p, &c) != IAPO_OK || iapo_weights_init_random(&w, &c, 5, 0.02f) != IAPO_OK) return;
	iapo_st_entry e[64];
	char names[64][128];
	int n = 0;
	for (int which = 0; which < IAPO_NUM_PARAMS; which++) {
		int layers = iapo_param_is_layered(which) ? c.L : 1;
		for (int l = 0; l < layers; l++) {
			int64_t sh[2];
			int nd = iapo_param_shape(&c, which, sh);
			if (!nd || !iapo_param_hf_name(&c, which, l, names[n], sizeof names[n])) continue;
			if (edit == 1 && which == IAPO_P_NORM) continue;
			if (edit == 4 && which == IAPO_P_LMHEAD) continue;
			if (edit == 2 && which == IAPO_P_WO && l == 1) {
				int64_t t = sh[0];
				sh[0] = sh[1];
				sh[1] = t;
			}
			e[n] = (iapo_st_entry){names[n], IAPO_DT_F32, nd, {sh[0], nd > 1 ? sh[1] : 0},
					       w.p.t[which] + (size_t)l * iapo_param_layer_size(&c, which)};
			n++;
		}
	}
	snprintf(p, sizeof p, "%s/model.safetensors", dir);
	iapo_safetensors_write(p, e, n);
	if (edit == 3) {
		/* Rewrite the embedding's dtype in the header: F32 -> I32 has the
		 * same size, so only the dtype check can catch it. */
		char *d;
		size_t len;
		if (iapo_fs_read_file(p, 1 << 24, &d, &len) == IAPO_OK) {
			char *h = strstr(d + 8, "\"model.embed_tokens.weight\":{\"dtype\":\"F32\"");
			if (h) memcpy(strstr(h, "F32"), "I32", 3);
			iapo_fs_write_file(p, d, len);
			iapo_free(d);
		}
	}
	iapo_weights_free(&w);
}

static void expect_load_fail(const char *dir, iapo_status code, const char *p1, const char *p2, const char *p3)
{
	iapo_weights w;
	iapo_status s = iapo_weights_load(dir, &w);
	fprintf(stderr, "  message: %s\n", iapo_errmsg());
	CHECK(s == code, "%s: status %d want %d: %s", dir, s, code, iapo_errmsg());
	CHECK(!p1 || has(iapo_errmsg(), p1), "lacks '%s': %s", p1, iapo_errmsg());
	CHECK(!p2 || has(iapo_errmsg(), p2), "lacks '%s': %s", p2, iapo_errmsg());
	CHECK(!p3 || has(iapo_errmsg(), p3), "lacks '%s': %s", p3, iapo_errmsg());
	CHECK(w.block == NULL, "weights not left empty");
	iapo_weights_free(&w);
}

static void test_bad_missing_tensor(void)
{
	char dir[1024];
	tpath(dir, sizeof dir, "bad_missing");
	make_edited_dir(dir, 1);
	expect_load_fail(dir, IAPO_ERR_FORMAT, "bad_missing/model.safetensors", "'model.norm.weight'", "no such tensor");
	tpath(dir, sizeof dir, "bad_nolmhead");
	make_edited_dir(dir, 4);
	expect_load_fail(dir, IAPO_ERR_FORMAT, "model.safetensors", "'lm_head.weight'", NULL);
	/* Sanity: the unedited directory loads. */
	iapo_weights w;
	tpath(dir, sizeof dir, "bad_none");
	make_edited_dir(dir, 0);
	CHECK(iapo_weights_load(dir, &w) == IAPO_OK, "%s", iapo_errmsg());
	iapo_weights_free(&w);
}

static void test_bad_shape(void)
{
	char dir[1024];
	tpath(dir, sizeof dir, "bad_shape");
	make_edited_dir(dir, 2);
	expect_load_fail(dir, IAPO_ERR_FORMAT, "'model.layers.1.self_attn.o_proj.weight'", "expected shape (16, 24)",
			 "found (24, 16)");
}

static void test_bad_dtype(void)
{
	char dir[1024];
	tpath(dir, sizeof dir, "bad_dtype");
	make_edited_dir(dir, 3);
	expect_load_fail(dir, IAPO_ERR_UNSUPPORTED, "model.safetensors", "'model.embed_tokens.weight'", "I32");
}

static void test_bad_shard_missing(void)
{
	char dir[1024], p[1100];
	iapo_weights w;
	tpath(dir, sizeof dir, "bad_shard");
	if (!make_weights("bad_shard_cfg", QWEN3_CFG, &w, 3)) return;
	CHECK(iapo_weights_save(&w, dir, NULL, "F32", 2000) == IAPO_OK, "%s", iapo_errmsg());
	iapo_weights_free(&w);
	char shard2[64] = "";
	DIR *dd = opendir(dir);
	for (struct dirent *e; dd && (e = readdir(dd));)
		if (!strncmp(e->d_name, "model-00002-of-", 15) && strlen(e->d_name) < sizeof shard2)
			memcpy(shard2, e->d_name, strlen(e->d_name) + 1);
	if (dd) closedir(dd);
	if (snprintf(p, sizeof p, "%s/%s", dir, shard2) >= (int)sizeof p) p[0] = '\0';
	CHECK(shard2[0] && unlink(p) == 0, "no second shard to remove");
	expect_load_fail(dir, IAPO_ERR_IO, "model.safetensors.index.json", shard2, "weight_map");
	/* A shard path leaving the directory. */
	snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
	write_text(p, "{\"metadata\": {}, \"weight_map\": {\"model.norm.weight\": \"../x.safetensors\"}}");
	expect_load_fail(dir, IAPO_ERR_FORMAT, "index.json", "../x.safetensors", NULL);
	write_text(p, "{\"metadata\": {}, \"weight_map\": {\"model.norm.weight\": 3}}");
	expect_load_fail(dir, IAPO_ERR_FORMAT, "index.json", "model.norm.weight", "found a number");
	write_text(p, "{\"metadata\": {}, \"weight_map\": {}}");
	expect_load_fail(dir, IAPO_ERR_FORMAT, "index.json", "model.embed_tokens.weight", "missing");
	write_text(p, "{\"metadata\": {}, \"weight_map\": [}");
	expect_load_fail(dir, IAPO_ERR_FORMAT, "index.json", "line 1", NULL);
}

static void test_bad_dir(void)
{
	char dir[1024];
	tpath(dir, sizeof dir, "bad_nofiles");
	make_config_dir(dir, QWEN3_CFG);
	expect_load_fail(dir, IAPO_ERR_IO, "bad_nofiles", "model.safetensors", NULL);
	tpath(dir, sizeof dir, "bad_noconfig");
	iapo_fs_mkdir_p(dir);
	expect_load_fail(dir, IAPO_ERR_IO, "bad_noconfig/config.json", NULL, NULL);
	tpath(dir, sizeof dir, "bad_cfg_in_dir");
	make_config_dir(dir, "{\"model_type\": \"mistral\"}");
	expect_load_fail(dir, IAPO_ERR_UNSUPPORTED, "bad_cfg_in_dir/config.json", "model_type", "mistral");
}

/* A corrupted safetensors file inside a model directory is reported with
 * the file's path. */
static void test_bad_corrupt_file(void)
{
	char dir[1024], p[1100];
	tpath(dir, sizeof dir, "bad_corrupt");
	make_edited_dir(dir, 0);
	snprintf(p, sizeof p, "%s/model.safetensors", dir);
	truncate(p, 100);
	expect_load_fail(dir, IAPO_ERR_FORMAT, "bad_corrupt/model.safetensors", "header length", NULL);
}

/* ------------------------------------------------------------- atomicity */

static int count_leftovers(const char *parent)
{
	int n = 0;
	DIR *d = opendir(parent);
	for (struct dirent *e; d && (e = readdir(d));) n += strstr(e->d_name, ".tmp-") != NULL || strstr(e->d_name, ".old-");
	if (d) closedir(d);
	return n;
}

static void test_save_replaces_atomically(void)
{
	char parent[1024], dir[1100], marker[1200], tok[1100], p[1200];
	iapo_weights a, b, r;
	tpath(parent, sizeof parent, "atomic");
	iapo_fs_remove_all(parent);
	snprintf(dir, sizeof dir, "%s/model", parent);
	if (!make_weights("atomic_a", QWEN2_CFG, &a, 11) || !make_weights("atomic_b", QWEN2_CFG, &b, 12)) return;
	/* A tokenizer to copy. */
	tpath(tok, sizeof tok, "atomic_tok");
	iapo_fs_mkdir_p(tok);
	snprintf(p, sizeof p, "%s/tokenizer.json", tok);
	write_text(p, "{\"model\": {}}");
	snprintf(p, sizeof p, "%s/merges.txt", tok);
	write_text(p, "#version: 0.2\n");
	CHECK(iapo_weights_save(&a, dir, tok, "F32", 0) == IAPO_OK, "%s", iapo_errmsg());
	snprintf(marker, sizeof marker, "%s/marker", dir);
	write_text(marker, "old");
	snprintf(p, sizeof p, "%s/tokenizer.json", dir);
	CHECK(iapo_fs_exists(p), "tokenizer.json not copied");
	snprintf(p, sizeof p, "%s/vocab.json", dir);
	CHECK(!iapo_fs_exists(p), "vocab.json appeared from nowhere");
	/* Replace: the new one is complete, the old one (marker) is gone. The
	 * tokenizer source may be the directory being replaced. */
	CHECK(iapo_weights_save(&b, dir, dir, "BF16", 0) == IAPO_OK, "%s", iapo_errmsg());
	CHECK(!iapo_fs_exists(marker), "old directory's file survived the replacement");
	snprintf(p, sizeof p, "%s/merges.txt", dir);
	CHECK(iapo_fs_exists(p), "tokenizer copied from the replaced dir is missing");
	CHECK(iapo_weights_load(dir, &r) == IAPO_OK, "%s", iapo_errmsg());
	if (r.block) CHECK(r.block[0] == iapo_bf16_to_f32(iapo_f32_to_bf16(b.block[0])), "not the new weights");
	iapo_weights_free(&r);
	CHECK(count_leftovers(parent) == 0, "temporary directories left in %s", parent);

	/* Failing saves leave the old directory as it was. */
	write_text(marker, "old");
	/* 1. the tokenizer source holds a directory where a file should be */
	char badtok[1100];
	tpath(badtok, sizeof badtok, "atomic_badtok");
	snprintf(p, sizeof p, "%s/tokenizer.json", badtok);
	iapo_fs_mkdir_p(p);
	CHECK(iapo_weights_save(&a, dir, badtok, "F32", 0) != IAPO_OK, "save with a bad tokenizer source succeeded");
	fprintf(stderr, "  message: %s\n", iapo_errmsg());
	CHECK(iapo_fs_exists(marker), "failed save touched the old directory");
	CHECK(count_leftovers(parent) == 0, "failed save left a temporary directory");
	/* 2. a bad dtype */
	CHECK(iapo_weights_save(&a, dir, NULL, "F8", 0) == IAPO_ERR_ARG && has(iapo_errmsg(), "F8"), "%s", iapo_errmsg());
	CHECK(iapo_fs_exists(marker), "old dir touched");
	/* 3. every allocation failure along the way */
	int succeeded = 0;
	unsigned long k;
	for (k = 1; k < 2000 && !succeeded; k++) {
		iapo_mem_fail_after(k);
		iapo_status s = iapo_weights_save(&a, dir, tok, "BF16", 1000);
		iapo_mem_fail_after(0);
		if (s == IAPO_OK) {
			succeeded = 1;
			break;
		}
		CHECK(s == IAPO_ERR_NOMEM, "allocation failure %lu gave %d: %s", k, s, iapo_errmsg());
		CHECK(iapo_fs_exists(marker), "allocation failure %lu: old directory touched", k);
		CHECK(count_leftovers(parent) == 0, "allocation failure %lu: temporary directory left", k);
		if (!iapo_fs_exists(marker)) break;
	}
	fprintf(stderr, "  save succeeded once allocation %lu was allowed\n", k);
	CHECK(succeeded && !iapo_fs_exists(marker), "save never succeeded under fault injection");
	/* 4. the output's parent is a file */
	char filep[1100], under[1200];
	tpath(filep, sizeof filep, "atomic_file");
	write_text(filep, "x");
	snprintf(under, sizeof under, "%s/model", filep);
	CHECK(iapo_weights_save(&a, under, NULL, "F32", 0) == IAPO_ERR_IO && has(iapo_errmsg(), "atomic_file"), "%s",
	      iapo_errmsg());
	/* 5. the output exists as a file */
	CHECK(iapo_weights_save(&a, filep, NULL, "F32", 0) == IAPO_ERR_IO && has(iapo_errmsg(), "not a directory"), "%s",
	      iapo_errmsg());
	char tparent[1024];
	tpath(tparent, sizeof tparent, "");
	CHECK(count_leftovers(tparent) == 0, "temporary directories left in %s", tparent);
	iapo_weights_free(&a);
	iapo_weights_free(&b);
}

/* A reader thread loads the directory over and over while this thread
 * replaces it: every load must succeed with one of the two weight sets.
 * (A thread rather than a forked process: OpenMP is not fork-safe.) */
typedef struct {
	const char *dir;
	const float *a, *b;
	size_t n;
	atomic_int stop;
	int loads, bad;
} reader_ctx;

static void *reader_main(void *arg)
{
	reader_ctx *r = arg;
	while (!atomic_load(&r->stop)) {
		iapo_weights w;
		if (iapo_weights_load(r->dir, &w) != IAPO_OK) {
			fprintf(stderr, "  reader: %s\n", iapo_errmsg());
			r->bad++;
		} else {
			if (memcmp(w.block, r->a, r->n * 4) && memcmp(w.block, r->b, r->n * 4)) r->bad++;
			iapo_weights_free(&w);
		}
		r->loads++;
	}
	return NULL;
}

static void test_concurrent_reader(void)
{
	char dir[1024];
	iapo_weights a, b;
	tpath(dir, sizeof dir, "concurrent");
	iapo_fs_remove_all(dir);
	if (!make_weights("conc_a", QWEN3_CFG, &a, 21) || !make_weights("conc_b", QWEN3_CFG, &b, 22)) return;
	CHECK(iapo_weights_save(&a, dir, NULL, "F32", 0) == IAPO_OK, "%s", iapo_errmsg());
	reader_ctx r = {.dir = dir, .a = a.block, .b = b.block, .n = iapo_param_count(&a.cfg)};
	atomic_init(&r.stop, 0);
	pthread_t th;
	CHECK(pthread_create(&th, NULL, reader_main, &r) == 0, "pthread_create");
	for (int i = 0; i < 30; i++)
		CHECK(iapo_weights_save(i % 2 ? &a : &b, dir, NULL, "F32", i % 3 ? 0 : 1500) == IAPO_OK, "%s", iapo_errmsg());
	atomic_store(&r.stop, 1);
	pthread_join(th, NULL);
	fprintf(stderr, "  reader: %d loads during 30 saves, %d bad\n", r.loads, r.bad);
	CHECK(r.bad == 0, "the reader saw a missing or mixed directory %d times", r.bad);
	CHECK(r.loads > 0, "the reader never ran");
	iapo_weights_free(&a);
	iapo_weights_free(&b);
}

static void test_load_alloc_failures(void)
{
	char dir[1024];
	tpath(dir, sizeof dir, "rt_llama_out_3"); /* sharded, from the round trip */
	int ok = 0;
	unsigned long k;
	for (k = 1; k < 2000 && !ok; k++) {
		iapo_weights w;
		iapo_mem_fail_after(k);
		iapo_status s = iapo_weights_load(dir, &w);
		iapo_mem_fail_after(0);
		if (s == IAPO_OK) ok = 1;
		else CHECK(s == IAPO_ERR_NOMEM, "allocation failure %lu gave %d: %s", k, s, iapo_errmsg());
		iapo_weights_free(&w);
	}
	CHECK(ok, "load never succeeded");
}

int main(void)
{
	snprintf(tmpdir, sizeof tmpdir, "%s/test_weights", test_env("IAPO_TMP", "/tmp"));
	iapo_fs_remove_all(tmpdir);
	if (iapo_fs_mkdir_p(tmpdir) != IAPO_OK) {
		fprintf(stderr, "%s\n", iapo_errmsg());
		return 1;
	}
	RUN(test_config_fields);
	RUN(test_config_defaults);
	RUN(test_generation_config_merge);
	RUN(test_config_bad);
	RUN(test_init_random);
	RUN(test_round_trip_qwen2);
	RUN(test_round_trip_llama);
	RUN(test_round_trip_qwen3);
	RUN(test_torch_qwen2_f32);
	RUN(test_torch_qwen2_bf16);
	RUN(test_torch_qwen2_f16);
	RUN(test_torch_llama_bf16_sharded);
	RUN(test_torch_qwen3_mixed_sharded);
	RUN(test_python_reads_ours);
	RUN(test_resaved_logits);
	RUN(test_bad_missing_tensor);
	RUN(test_bad_shape);
	RUN(test_bad_dtype);
	RUN(test_bad_shard_missing);
	RUN(test_bad_dir);
	RUN(test_bad_corrupt_file);
	RUN(test_save_replaces_atomically);
	RUN(test_concurrent_reader);
	RUN(test_load_alloc_failures);
	iapo_fs_remove_all(tmpdir);
	TEST_END();
}
