/*
 * test_hf_models.c — models written by the real Hugging Face transformers
 * (5.17, save_pretrained) load in iapo and give transformers' own logits.
 * tests/oracle/hf5/<name>/ are committed fixtures (~260 KB) made on a machine
 * with transformers by tests/oracle/hf_roundtrip.py: tiny random Llama (GQA,
 * untied, llama3 RoPE in the new rope_parameters spelling, fp32; MHA, tied,
 * bf16), Qwen2 (GQA to one kv head, tied, q/k/v biases, fp32) and Qwen3
 * (explicit head_dim, q/k norms: untied bf16; tied f16 sharded in two files
 * with model.safetensors.index.json), every norm and bias random, and for
 * each the fp32 logits that transformers computed for the saved directory
 * loaded back (hf_logits.bin, one full and one right-padded row) and its
 * greedy continuation of row 0 (hf_case.json). We require: the config read
 * as transformers wrote it (dtype, rope_parameters, layer_types), logits
 * within 2e-5 of the largest, the same 6 greedy tokens (the smallest margin
 * transformers saw is 0.036), a save + reload giving the same logits, and for
 * config.json / index / safetensors edits that transformers would read as a
 * different model (or not at all) a clean error naming the field or file.
 * Not here: the iapo -> transformers direction (hf_roundtrip.py, run by hand;
 * its figures are in /work/helpers/notes/hf9.md of session 9).
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model/generate.h"
#include "model/transformer.h"
#include "model/weights.h"
#include "oracle_files.h"
#include "test.h"

static const char *hf5_root(void) { return test_env("IAPO_HF5", "tests/oracle/hf5"); }

typedef struct {
	const char *name;
	iapo_arch arch;
	int NH, NKV, HD, tie, llama3;
	float theta, eps;
	const char *dtype;
} expect;

static const expect MODELS[] = {
	{"llama_gqa_untied_f32", IAPO_ARCH_LLAMA, 4, 2, 8, 0, 1, 500000.0f, 1e-5f, "float32"},
	{"llama_mha_tied_bf16", IAPO_ARCH_LLAMA, 2, 2, 16, 1, 0, 10000.0f, 1e-6f, "bfloat16"},
	{"qwen2_gqa_tied_f32", IAPO_ARCH_QWEN2, 4, 1, 8, 1, 0, 1000000.0f, 1e-6f, "float32"},
	{"qwen3_gqa_untied_bf16", IAPO_ARCH_QWEN3, 4, 2, 16, 0, 0, 10000.0f, 1e-6f, "bfloat16"},
	{"qwen3_tied_f16_sharded", IAPO_ARCH_QWEN3, 2, 1, 8, 1, 0, 10000.0f, 1e-6f, "float16"},
};

static int *int_list(const cJSON *a, int *n)
{
	*n = cJSON_GetArraySize(a);
	int *v = calloc((size_t)*n + 1, sizeof(int));
	for (int i = 0; i < *n; i++) v[i] = cJSON_GetArrayItem(a, i)->valueint;
	return v;
}

/* Logits (B,T,V) of w for the case's tokens and lengths (0 on padding). */
static float *logits_of(const iapo_weights *w, const int *tok, const int *lens, int B, int T)
{
	size_t n = (size_t)B * T * w->cfg.V;
	float *lg = calloc(n, sizeof(float));
	int *tgt = malloc(sizeof(int) * B * T);
	for (int i = 0; i < B * T; i++) tgt[i] = -1;
	iapo_fwd *f = NULL;
	iapo_status st = iapo_fwd_new(w, B, T, 0, &f);
	if (st == IAPO_OK) st = iapo_fwd_forward(f, tok, lens, tgt, B, T, NULL, NULL, lg);
	CHECK(st == IAPO_OK, "forward: %s", iapo_errmsg());
	iapo_fwd_free(f);
	free(tgt);
	if (st != IAPO_OK) {
		free(lg);
		return NULL;
	}
	return lg;
}

static void check_config(const expect *e, const iapo_config *c)
{
	CHECK(c->arch == e->arch, "%s: arch %d", e->name, (int)c->arch);
	CHECK(c->V == 64 && c->C == 32 && c->F == 32 && c->L == 2, "%s: dims V%d C%d F%d L%d", e->name, c->V, c->C, c->F,
	      c->L);
	CHECK(c->NH == e->NH && c->NKV == e->NKV && c->HD == e->HD, "%s: heads %d/%d x %d", e->name, c->NH, c->NKV, c->HD);
	CHECK(c->tie_embeddings == e->tie, "%s: tie %d", e->name, c->tie_embeddings);
	CHECK(c->qkv_bias == (e->arch == IAPO_ARCH_QWEN2) && c->qk_norm == (e->arch == IAPO_ARCH_QWEN3),
	      "%s: bias %d qk_norm %d", e->name, c->qkv_bias, c->qk_norm);
	CHECK(c->rope_theta == e->theta && c->rms_eps == e->eps, "%s: rope_theta %g eps %g", e->name, c->rope_theta,
	      c->rms_eps);
	CHECK(c->rope_kind == (e->llama3 ? IAPO_ROPE_LLAMA3 : IAPO_ROPE_DEFAULT), "%s: rope kind %d", e->name,
	      (int)c->rope_kind);
	if (e->llama3)
		CHECK(c->rope_factor == 8.0f && c->rope_low_freq_factor == 1.0f && c->rope_high_freq_factor == 4.0f &&
			      c->rope_orig_max_pos == 16,
		      "%s: llama3 rope %g %g %g %d", e->name, c->rope_factor, c->rope_low_freq_factor,
		      c->rope_high_freq_factor, c->rope_orig_max_pos);
	CHECK(c->bos_id == 1 && c->n_eos == 1 && c->eos_ids[0] == 2 && c->pad_id == -1, "%s: bos %d eos %d(%d) pad %d",
	      e->name, c->bos_id, c->eos_ids[0], c->n_eos, c->pad_id);
	CHECK(!strcmp(c->torch_dtype, e->dtype), "%s: dtype \"%s\"", e->name, c->torch_dtype);
}

static void check_model(const expect *e)
{
	char dir[2048], path[2100];
	snprintf(dir, sizeof dir, "%s/%s", hf5_root(), e->name);
	snprintf(path, sizeof path, "%s/hf_case.json", dir);
	cJSON *c = oracle_json(path);
	CHECK(c != NULL, "cannot read %s", path);
	if (!c) return;
	int B = cJSON_GetObjectItem(c, "B")->valueint, T = cJSON_GetObjectItem(c, "T")->valueint;
	int V = cJSON_GetObjectItem(c, "V")->valueint, ntok, nlens, ngreedy;
	int *tok = int_list(cJSON_GetObjectItem(c, "tokens"), &ntok);
	int *lens = int_list(cJSON_GetObjectItem(c, "lens"), &nlens);
	int *greedy = int_list(cJSON_GetObjectItem(c, "greedy"), &ngreedy);
	cJSON_Delete(c);
	size_t n = (size_t)B * T * V;
	float *want = oracle_read_bin(dir, "hf_logits.bin", n), *got = NULL, *again = NULL;
	iapo_weights w = {0}, w2 = {0};
	iapo_gen_result r = {0};
	CHECK(ntok == B * T && nlens == B && ngreedy == 6, "%s: case sizes", e->name);
	iapo_status st = iapo_weights_load(dir, &w);
	CHECK(st == IAPO_OK, "%s: load: %s", e->name, iapo_errmsg());
	if (st != IAPO_OK || !want || ntok != B * T) goto out;
	check_config(e, &w.cfg);
	got = logits_of(&w, tok, lens, B, T);
	if (!got) goto out;
	double err = test_max_rel_err(got, want, n);
	fprintf(stderr, "  %s: logits max|iapo - transformers| / max|transformers| = %.3g\n", e->name, err);
	CHECK(err <= 2e-5, "%s: logits differ from transformers' by %g of the largest", e->name, err);

	/* Greedy continuation of row 0, fp32 weights, no end-of-sequence stop. */
	const int *prompt = tok;
	int no_eos = -1;
	iapo_gen_opts o = {.max_new_tokens = 6, .sampler = {.temperature = 0, .top_p = 1}, .eos_ids = &no_eos,
			   .n_eos = 1, .weights = IAPO_GEN_WEIGHTS_FP32};
	st = iapo_generate(&w, &prompt, &T, 1, &o, NULL, &r, NULL);
	CHECK(st == IAPO_OK && r.n_tokens == 6, "%s: generate: %s", e->name, st ? iapo_errmsg() : "short");
	if (st == IAPO_OK && r.n_tokens == 6)
		CHECK(!memcmp(r.tokens, greedy, sizeof(int) * 6), "%s: greedy %d %d %d %d %d %d, transformers %d %d %d %d %d %d",
		      e->name, r.tokens[0], r.tokens[1], r.tokens[2], r.tokens[3], r.tokens[4], r.tokens[5], greedy[0],
		      greedy[1], greedy[2], greedy[3], greedy[4], greedy[5]);
	if (st == IAPO_OK) iapo_gen_results_free(&r, 1);

	/* Saved by iapo in the dtype transformers used (exact for these
	 * values) and loaded again: the same logits. */
	char out[2100];
	snprintf(out, sizeof out, "%s/hf5-%d-%s", test_env("IAPO_TMP", "/tmp"), (int)getpid(), e->name);
	const char *dt = !strcmp(e->dtype, "bfloat16") ? "BF16" : !strcmp(e->dtype, "float16") ? "F16" : "F32";
	st = iapo_weights_save(&w, out, NULL, dt, 0);
	CHECK(st == IAPO_OK, "%s: save: %s", e->name, iapo_errmsg());
	if (st == IAPO_OK) st = iapo_weights_load(out, &w2);
	CHECK(st == IAPO_OK, "%s: reload: %s", e->name, iapo_errmsg());
	if (st == IAPO_OK) again = logits_of(&w2, tok, lens, B, T);
	if (again) CHECK(!memcmp(again, got, n * sizeof(float)), "%s: logits changed by iapo's save + load", e->name);
	char cmd[2300];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", out);
	CHECK(system(cmd) == 0, "rm %s", out);
out:
	iapo_weights_free(&w);
	iapo_weights_free(&w2);
	free(want), free(got), free(again), free(tok), free(lens), free(greedy);
}

static void test_transformers5_models(void)
{
	for (size_t i = 0; i < sizeof MODELS / sizeof MODELS[0]; i++) check_model(&MODELS[i]);
}

/* ------------------------------------------------------------- edits */

static char tmpdir[1024];

static void copy_file(const char *from, const char *to, long keep)
{
	size_t n = 0;
	char *b = oracle_slurp(from, &n);
	CHECK(b != NULL, "cannot read %s", from);
	if (!b) return;
	if (keep >= 0 && (size_t)keep < n) n = (size_t)keep;
	FILE *f = fopen(to, "wb");
	CHECK(f && fwrite(b, 1, n, f) == n, "cannot write %s", to);
	if (f) fclose(f);
	free(b);
}

/* A copy of hf5/<name> in tmpdir/<name> (the weights' first file cut to
 * `keep` bytes when keep >= 0) whose config.json has `key` set to the JSON
 * `value` (removed when value is NULL; untouched when key is NULL). */
static void edited_copy(const char *name, const char *key, const char *value, long keep, char *dir, size_t cap)
{
	static const char *files[] = {"config.json", "generation_config.json", "model.safetensors",
				      "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
				      "model.safetensors.index.json"};
	char from[2200], to[2200];
	snprintf(dir, cap, "%s/%s", tmpdir, name);
	mkdir(dir, 0755);
	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
		snprintf(from, sizeof from, "%s/%s/%s", hf5_root(), name, files[i]);
		snprintf(to, sizeof to, "%s/%s", dir, files[i]);
		unlink(to);
		if (access(from, R_OK) == 0) copy_file(from, to, strstr(files[i], "00001") || !strcmp(files[i], "model.safetensors") ? keep : -1);
	}
	if (!key) return;
	snprintf(from, sizeof from, "%s/config.json", dir);
	cJSON *c = oracle_json(from);
	CHECK(c != NULL, "cannot parse %s", from);
	if (!c) return;
	cJSON_DeleteItemFromObjectCaseSensitive(c, key);
	if (value) cJSON_AddItemToObject(c, key, cJSON_Parse(value));
	char *out = cJSON_Print(c);
	FILE *f = fopen(from, "w");
	CHECK(f && fputs(out, f) >= 0, "cannot write %s", from);
	if (f) fclose(f);
	free(out);
	cJSON_Delete(c);
}

/* Loading the edited copy fails with `code` and a message holding `needle`. */
static void expect_error(const char *name, const char *key, const char *value, long keep, iapo_status code,
			 const char *needle)
{
	char dir[1200];
	iapo_weights w;
	edited_copy(name, key, value, keep, dir, sizeof dir);
	iapo_status st = iapo_weights_load(dir, &w);
	CHECK(st == code && strstr(iapo_errmsg(), needle), "%s %s=%s: expected %d naming \"%s\", found %d: %s", name,
	      key ? key : "-", value ? value : "(removed)", (int)code, needle, (int)st, st ? iapo_errmsg() : "loaded");
	if (st == IAPO_OK) iapo_weights_free(&w);
}

static void expect_loads(const char *name, const char *key, const char *value)
{
	char dir[1200];
	iapo_weights w;
	edited_copy(name, key, value, -1, dir, sizeof dir);
	iapo_status st = iapo_weights_load(dir, &w);
	CHECK(st == IAPO_OK, "%s %s=%s: %s", name, key, value ? value : "(removed)", iapo_errmsg());
	if (st == IAPO_OK) iapo_weights_free(&w);
}

static void test_edited_configs(void)
{
	snprintf(tmpdir, sizeof tmpdir, "%s/hf5-edit-%d", test_env("IAPO_TMP", "/tmp"), (int)getpid());
	mkdir(tmpdir, 0755);
	const char *q3 = "qwen3_gqa_untied_bf16", *ll = "llama_gqa_untied_f32", *sh = "qwen3_tied_f16_sharded";
	/* transformers ignores fields it does not know; so do we */
	expect_loads(q3, "some_future_field", "{\"x\": [1, 2]}");
	expect_loads(q3, "dtype", NULL);
	/* what would be a different model */
	expect_error(q3, "rope_parameters", "{\"rope_type\": \"yarn\", \"factor\": 4.0, \"rope_theta\": 10000.0}", -1,
		     IAPO_ERR_UNSUPPORTED, "rope_type");
	expect_error(q3, "layer_types", "[\"full_attention\", \"sliding_attention\"]", -1, IAPO_ERR_UNSUPPORTED,
		     "layer_types");
	expect_error(q3, "use_sliding_window", "true", -1, IAPO_ERR_UNSUPPORTED, "use_sliding_window");
	expect_error(q3, "hidden_act", "\"gelu\"", -1, IAPO_ERR_UNSUPPORTED, "hidden_act");
	expect_error(ll, "attention_bias", "true", -1, IAPO_ERR_UNSUPPORTED, "attention_bias");
	expect_error(ll, "rope_parameters", "{\"rope_type\": \"llama3\", \"rope_theta\": 500000.0, \"factor\": 8.0}", -1,
		     IAPO_ERR_FORMAT, "low_freq_factor");
	/* malformed fields, and configs the tensors contradict */
	expect_error(q3, "rope_parameters", "\"default\"", -1, IAPO_ERR_FORMAT, "rope_parameters");
	expect_error(q3, "dtype", "7", -1, IAPO_ERR_FORMAT, "dtype");
	expect_error(q3, "num_key_value_heads", "3", -1, IAPO_ERR_FORMAT, "num_key_value_heads");
	expect_error(q3, "head_dim", "8", -1, IAPO_ERR_FORMAT, "q_proj");
	expect_error(q3, "vocab_size", "65", -1, IAPO_ERR_FORMAT, "embed_tokens");
	expect_error(q3, "tie_word_embeddings", "\"no\"", -1, IAPO_ERR_FORMAT, "tie_word_embeddings");
	expect_error(q3, "hidden_size", NULL, -1, IAPO_ERR_FORMAT, "hidden_size");
	/* tied in the file but untied in the config: lm_head.weight is missing */
	expect_error(sh, "tie_word_embeddings", "false", -1, IAPO_ERR_FORMAT, "lm_head.weight");
	/* a shard cut short, and a truncated single file */
	expect_error(sh, NULL, NULL, 100, IAPO_ERR_FORMAT, "model-00001-of-00002.safetensors");
	expect_error(q3, NULL, NULL, 4000, IAPO_ERR_FORMAT, "model.safetensors");
	char cmd[1100];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	CHECK(system(cmd) == 0, "rm %s", tmpdir);
}

int main(void)
{
	RUN(test_transformers5_models);
	RUN(test_edited_configs);
	TEST_END();
}
