/*
 * test_robust_paths.c — names, paths and sizes read from files are bounded
 * and never lead outside the directory they belong to (issue 6, item 7):
 *  - model.safetensors.index.json: shard names that are absolute, hold a
 *    '/', or are "." / ".." are FORMAT errors naming the index, and nothing
 *    outside the model directory is opened;
 *  - safetensors headers: a tensor name over IAPO_ST_MAX_NAME bytes, more than
 *    IAPO_ST_MAX_DIMS dimensions, an element count that overflows, offsets
 *    past the data: FORMAT errors;
 *  - config.json: absurd sizes (a head width whose product overflows, more
 *    than 2^40 parameters, a dimension over 2^24) are FORMAT errors, not
 *    NOMEM (the terabytes are never asked for), and
 *    `iapo generate` reports them (exit 1) instead of trying;
 *  - tokenizer.json: ids far beyond the vocabulary's size are refused before
 *    tables of that size are made;
 *  - tokenizer_config.json: a list of chat templates whose names look like
 *    paths: the names are only compared with "default", never opened;
 *  - a run directory from elsewhere: its config.json's "out" pointing to
 *    another directory, trainer_state.json's best_model_checkpoint naming a
 *    path outside the run, a checkpoint-N name too long to be a step, a
 *    global_step beyond 2^53: --resume writes nothing outside RUN_DIR, the
 *    checkpoints it writes name only paths inside it, and the bad values are
 *    errors naming the file and field.
 */
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/mem.h"
#include "core/status.h"
#include "io/fs.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "model/weights.h"
#include "test.h"
#include "tokenizer/tokenizer.h"

static char root[1024];
static const char *bin;

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	if (!f) return;
	fputs(text, f);
	fclose(f);
}

static void write_bytes(const char *path, const void *d, size_t n)
{
	FILE *f = fopen(path, "wb");
	if (!f) return;
	fwrite(d, 1, n, f);
	fclose(f);
}

/* The shell's exit status of `IAPO_BIN args`, stderr to root/cli.err. */
static int cli(const char *args)
{
	char cmd[8192];
	snprintf(cmd, sizeof cmd, "IAPO_MEMORY_LIMIT= '%s' %s >/dev/null 2>'%s/cli.err'", bin, args, root);
	int rc = system(cmd);
	return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static char *cli_err(void)
{
	char p[1100], *d = NULL;
	snprintf(p, sizeof p, "%s/cli.err", root);
	if (iapo_fs_read_file(p, 1 << 20, &d, NULL) != IAPO_OK) return NULL;
	return d;
}

static iapo_config tiny_config(void)
{
	iapo_config c;
	memset(&c, 0, sizeof c);
	c.arch = IAPO_ARCH_QWEN2;
	strcpy(c.model_type, "qwen2");
	c.V = 263, c.C = 32, c.L = 2, c.NH = 4, c.NKV = 2, c.HD = 8, c.F = 64;
	c.max_pos = 256, c.rope_theta = 10000.0f, c.rms_eps = 1e-6f;
	c.tie_embeddings = 1, c.qkv_bias = 1;
	c.bos_id = c.pad_id = -1;
	strcpy(c.torch_dtype, "float32");
	return c;
}

static void test_shard_names(void)
{
	char tok[1100], dir[1100], idx[1200], outside[1100], first[1500];
	snprintf(tok, sizeof tok, "%s/tok", root);
	snprintf(dir, sizeof dir, "%s/sharded", root);
	snprintf(idx, sizeof idx, "%s/model.safetensors.index.json", dir);
	CHECK(iapo_tokenizer_write_bytelevel(tok, NULL, 0) == IAPO_OK, "%s", iapo_errmsg());
	iapo_config c = tiny_config();
	iapo_weights w;
	CHECK(iapo_weights_init_random(&w, &c, 1, 0.02f) == IAPO_OK, "%s", iapo_errmsg());
	CHECK(iapo_weights_save(&w, dir, tok, "F32", 20000) == IAPO_OK, "%s", iapo_errmsg());
	iapo_weights_free(&w);
	CHECK(iapo_fs_exists(idx), "sharded save wrote %s", idx);
	/* a complete safetensors file outside the model directory: an index
	 * naming it must not load it */
	snprintf(outside, sizeof outside, "%s/outside.safetensors", root);
	snprintf(first, sizeof first, "%s/model-00001-of-", dir);
	DIR *d = opendir(dir);
	struct dirent *e;
	while (d && (e = readdir(d)))
		if (!strncmp(e->d_name, "model-00001-of-", 15)) snprintf(first, sizeof first, "%s/%s", dir, e->d_name);
	if (d) closedir(d);
	CHECK(iapo_fs_copy_file(first, outside) == IAPO_OK, "%s", iapo_errmsg());
	char *orig = NULL;
	CHECK(iapo_fs_read_file(idx, 1 << 20, &orig, NULL) == IAPO_OK, "%s", iapo_errmsg());
	if (!orig) return;
	char abs_outside[1300], rel_outside[64];
	snprintf(abs_outside, sizeof abs_outside, "%s", outside);
	snprintf(rel_outside, sizeof rel_outside, "../outside.safetensors");
	const char *bad[] = {abs_outside, rel_outside, "sub/model.safetensors", "..", ".", "", "/etc/passwd"};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		char text[4096];
		snprintf(text, sizeof text, "{\"metadata\": {}, \"weight_map\": {\"model.norm.weight\": \"%s\"}}", bad[i]);
		write_text(idx, text);
		iapo_weights w2;
		iapo_status s = iapo_weights_load(dir, &w2);
		CHECK(s == IAPO_ERR_FORMAT && strstr(iapo_errmsg(), "index.json") && strstr(iapo_errmsg(), "weight_map") &&
			      strstr(iapo_errmsg(), "expected a file name"),
		      "shard name \"%s\": status %d: %s", bad[i], s, iapo_errmsg());
		if (s == IAPO_OK) iapo_weights_free(&w2);
	}
	write_text(idx, orig);
	iapo_weights w3;
	CHECK(iapo_weights_load(dir, &w3) == IAPO_OK, "restored index loads: %s", iapo_errmsg());
	iapo_weights_free(&w3);
	iapo_free(orig);
}

/* A safetensors file: 8-byte header length, the header, n data bytes. */
static iapo_status open_header(const char *name, const char *header, size_t data)
{
	char p[1200];
	snprintf(p, sizeof p, "%s/%s", root, name);
	size_t h = strlen(header);
	unsigned char *b = calloc(1, 8 + h + data);
	if (!b) return IAPO_ERR_NOMEM;
	for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)h >> (8 * i));
	memcpy(b + 8, header, h);
	write_bytes(p, b, 8 + h + data);
	free(b);
	iapo_safetensors st;
	iapo_status s = iapo_safetensors_open(p, &st);
	if (s == IAPO_OK) iapo_safetensors_close(&st);
	return s;
}

static void test_safetensors_bounds(void)
{
	char *name = malloc(IAPO_ST_MAX_NAME + 2);
	char *hdr = malloc(IAPO_ST_MAX_NAME + 256);
	if (!name || !hdr) return;
	memset(name, 'a', IAPO_ST_MAX_NAME + 1);
	name[IAPO_ST_MAX_NAME + 1] = 0;
	snprintf(hdr, IAPO_ST_MAX_NAME + 256, "{\"%s\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}", name);
	CHECK(open_header("longname.safetensors", hdr, 4) == IAPO_ERR_FORMAT && strstr(iapo_errmsg(), "tensor names of 1 to"),
	      "long name: %s", iapo_errmsg());
	name[IAPO_ST_MAX_NAME] = 0;
	snprintf(hdr, IAPO_ST_MAX_NAME + 256, "{\"%s\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}", name);
	CHECK(open_header("maxname.safetensors", hdr, 4) == IAPO_OK, "a name of exactly the limit: %s", iapo_errmsg());
	CHECK(open_header("dims.safetensors",
			  "{\"t\": {\"dtype\": \"F32\", \"shape\": [1,1,1,1,1,1,1,1,1], \"data_offsets\": [0, 4]}}", 4) ==
			  IAPO_ERR_FORMAT &&
		      strstr(iapo_errmsg(), "at most 8 dimensions"),
	      "9 dims: %s", iapo_errmsg());
	CHECK(open_header("overflow.safetensors",
			  "{\"t\": {\"dtype\": \"F32\", \"shape\": [4294967296, 4294967296, 4294967296], \"data_offsets\": "
			  "[0, 4]}}",
			  4) == IAPO_ERR_FORMAT,
	      "element count overflow: %s", iapo_errmsg());
	CHECK(open_header("past.safetensors", "{\"t\": {\"dtype\": \"F32\", \"shape\": [1000], \"data_offsets\": [0, 4000]}}",
			  4) == IAPO_ERR_FORMAT,
	      "offsets past the data: %s", iapo_errmsg());
	CHECK(open_header("neg.safetensors", "{\"t\": {\"dtype\": \"F32\", \"shape\": [-1], \"data_offsets\": [0, 4]}}", 4) ==
		      IAPO_ERR_FORMAT,
	      "negative dimension: %s", iapo_errmsg());
	free(name);
	free(hdr);
}

static void test_config_sizes(void)
{
	char dir[1100], p[1200];
	snprintf(dir, sizeof dir, "%s/absurd", root);
	iapo_fs_mkdir_p(dir);
	snprintf(p, sizeof p, "%s/config.json", dir);
	struct {
		const char *json, *want;
	} cases[] = {
		{"{\"model_type\": \"qwen2\", \"vocab_size\": 1000, \"hidden_size\": 64, \"intermediate_size\": 64, "
		 "\"num_hidden_layers\": 1, \"num_attention_heads\": 8192, \"num_key_value_heads\": 8192, \"head_dim\": 8192}",
		 "num_attention_heads x head_dim: expected at most 16777216"},
		{"{\"model_type\": \"llama\", \"vocab_size\": 1000, \"hidden_size\": 40, \"intermediate_size\": 100000, "
		 "\"num_hidden_layers\": 100000, \"num_attention_heads\": 4, \"num_key_value_heads\": 4}",
		 "expected at most 2^40"},
		{"{\"model_type\": \"qwen2\", \"vocab_size\": 16777216, \"hidden_size\": 16777216, \"intermediate_size\": 64, "
		 "\"num_hidden_layers\": 1, \"num_attention_heads\": 1, \"num_key_value_heads\": 1}",
		 "too large to load"},
		{"{\"model_type\": \"qwen2\", \"vocab_size\": 1000, \"hidden_size\": 99999999999, \"intermediate_size\": 64, "
		 "\"num_hidden_layers\": 1, \"num_attention_heads\": 1, \"num_key_value_heads\": 1}",
		 "hidden_size"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		write_text(p, cases[i].json);
		iapo_config c;
		iapo_status s = iapo_config_load(p, &c);
		/* FORMAT, not NOMEM: the terabytes were never asked for */
		iapo_weights w;
		iapo_status s2 = iapo_weights_load(dir, &w);
		CHECK(s == IAPO_ERR_FORMAT && strstr(iapo_errmsg(), "config.json") && strstr(iapo_errmsg(), cases[i].want),
		      "case %zu: status %d: %s", i, s, iapo_errmsg());
		CHECK(s2 == IAPO_ERR_FORMAT, "case %zu: load: status %d: %s", i, s2, iapo_errmsg());
		if (s2 == IAPO_OK) iapo_weights_free(&w);
	}
	/* the CLI reports it (the memory estimate is not made from it) */
	char args[1400];
	snprintf(args, sizeof args, "generate --model '%s' --prompt hi", dir);
	int rc = cli(args);
	char *e = cli_err();
	CHECK(rc == 1 && e && strstr(e, "config.json") && strstr(e, "hidden_size"), "iapo generate: exit %d: %s", rc,
	      e ? e : "");
	iapo_free(e);
}

static void test_tokenizer_ids(void)
{
	char dir[1100], p[1200];
	snprintf(dir, sizeof dir, "%s/sparse-tok", root);
	iapo_fs_mkdir_p(dir);
	snprintf(p, sizeof p, "%s/tokenizer.json", dir);
	write_text(p, "{\"version\": \"1.0\", \"added_tokens\": [], \"normalizer\": null, \"pre_tokenizer\": {\"type\": "
		      "\"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": true, \"use_regex\": true}, "
		      "\"post_processor\": null, \"decoder\": {\"type\": \"ByteLevel\"}, \"model\": {\"type\": \"BPE\", "
		      "\"vocab\": {\"a\": 0, \"b\": 2000000000}, \"merges\": []}}");
	iapo_tokenizer *t = NULL;
	unsigned long before = iapo_mem_alloc_count();
	iapo_status s = iapo_tokenizer_load(dir, &t);
	unsigned long allocs = iapo_mem_alloc_count() - before;
	CHECK(s == IAPO_ERR_FORMAT && strstr(iapo_errmsg(), "tokenizer.json") && strstr(iapo_errmsg(), "2000000000"),
	      "sparse ids: status %d after %lu allocations: %s", s, allocs, iapo_errmsg());
	iapo_tokenizer_free(t);
}

static void test_chat_template_names(void)
{
	char dir[1100], p[1200], tok[1100];
	snprintf(tok, sizeof tok, "%s/tok", root);
	snprintf(dir, sizeof dir, "%s/named-templates", root);
	iapo_fs_mkdir_p(dir);
	snprintf(p, sizeof p, "%s/tokenizer.json", tok);
	char q[1200];
	snprintf(q, sizeof q, "%s/tokenizer.json", dir);
	CHECK(iapo_fs_copy_file(p, q) == IAPO_OK, "%s", iapo_errmsg());
	snprintf(p, sizeof p, "%s/tokenizer_config.json", tok);
	cJSON *cfg = NULL;
	CHECK(iapo_json_load(p, 1 << 20, &cfg) == IAPO_OK, "%s", iapo_errmsg());
	if (!cfg) return;
	const cJSON *tpl = cJSON_GetObjectItemCaseSensitive(cfg, "chat_template");
	char *chatml = cJSON_IsString(tpl) ? iapo_strdup(tpl->valuestring) : NULL;
	CHECK(chatml != NULL, "the byte-level tokenizer has a chat template");
	cJSON *list = cJSON_CreateArray();
	const char *names[] = {"../../../../etc/passwd", "/etc/shadow", "tool_use"};
	for (int i = 0; i < 3; i++) {
		cJSON *e = cJSON_CreateObject();
		cJSON_AddStringToObject(e, "name", names[i]);
		cJSON_AddStringToObject(e, "template", "{{ garbage");
		cJSON_AddItemToArray(list, e);
	}
	cJSON *def = cJSON_CreateObject();
	cJSON_AddStringToObject(def, "name", "default");
	cJSON_AddStringToObject(def, "template", chatml ? chatml : "");
	cJSON_AddItemToArray(list, def);
	cJSON_ReplaceItemInObjectCaseSensitive(cfg, "chat_template", list);
	char *text = cJSON_Print(cfg);
	snprintf(q, sizeof q, "%s/tokenizer_config.json", dir);
	if (text) write_text(q, text);
	iapo_free(text);
	cJSON_Delete(cfg);
	iapo_tokenizer *t = NULL;
	CHECK(iapo_tokenizer_load(dir, &t) == IAPO_OK, "%s", iapo_errmsg());
	char *out = NULL;
	CHECK(t && iapo_tokenizer_chat(t, NULL, "hi", 1, &out) == IAPO_OK && out && strstr(out, "hi"),
	      "the \"default\" template renders: %s", iapo_errmsg());
	iapo_free(out);
	iapo_tokenizer_free(t);
	iapo_free(chatml);
}

/* 1 if dir holds no entry at all (or does not exist). */
static int empty_or_absent(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d) return 1;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
	closedir(d);
	return n == 0;
}

/* Replaces key's value in a JSON file. */
static void json_set(const char *path, const char *key, cJSON *v)
{
	cJSON *o = NULL;
	if (iapo_json_load(path, 1 << 26, &o) != IAPO_OK) {
		CHECK(0, "%s", iapo_errmsg());
		cJSON_Delete(v);
		return;
	}
	if (cJSON_GetObjectItemCaseSensitive(o, key)) cJSON_ReplaceItemInObjectCaseSensitive(o, key, v);
	else cJSON_AddItemToObject(o, key, v);
	char *t = cJSON_Print(o);
	if (t) write_text(path, t);
	iapo_free(t);
	cJSON_Delete(o);
}

static void test_run_dir(void)
{
	char model[1100], data[1100], run[1100], elsewhere[1100], args[8192], p[1300];
	snprintf(model, sizeof model, "%s/sharded", root); /* made by test_shard_names */
	snprintf(data, sizeof data, "%s/data.jsonl", root);
	snprintf(run, sizeof run, "%s/run", root);
	snprintf(elsewhere, sizeof elsewhere, "%s/elsewhere", root);
	write_text(data, "{\"prompt\": \"1+1?\", \"answer\": \"2\"}\n{\"prompt\": \"2+2?\", \"answer\": \"4\"}\n");
	iapo_fs_mkdir_p(elsewhere);
	const char *small = "--prompts-per-step 2 --num-generations 2 --max-completion-tokens 4 --system x "
			    "--no-one-shot --threads 1 --save-steps 1";
	snprintf(args, sizeof args, "train --model '%s' --data '%s' --out '%s' --max-steps 2 %s --eval-data '%s' "
		 "--eval-steps 1 --eval-generations 1", model, data, run, small, data);
	int rc = cli(args);
	char *e = cli_err();
	CHECK(rc == 0, "train: exit %d: %s", rc, e ? e : "");
	iapo_free(e);
	/* a run directory from somewhere else: its config.json's out points away,
	 * its trainer state names a best checkpoint outside the run */
	snprintf(p, sizeof p, "%s/config.json", run);
	json_set(p, "out", cJSON_CreateString(elsewhere));
	snprintf(p, sizeof p, "%s/checkpoint-2/trainer_state.json", run);
	char evil[1300];
	snprintf(evil, sizeof evil, "%s/../elsewhere/checkpoint-1", run);
	json_set(p, "best_model_checkpoint", cJSON_CreateString(evil));
	json_set(p, "best_metric", cJSON_CreateNumber(0.5));
	json_set(p, "best_global_step", cJSON_CreateNumber(1));
	snprintf(p, sizeof p, "%s/checkpoint-99999999999999999999999", run);
	iapo_fs_mkdir_p(p);
	snprintf(args, sizeof args, "train --out '%s' --resume --max-steps 3", run);
	rc = cli(args);
	e = cli_err();
	CHECK(rc == 0 && e && strstr(e, "resuming after step 2"), "resume: exit %d: %s", rc, e ? e : "");
	iapo_free(e);
	CHECK(empty_or_absent(elsewhere), "nothing written to %s", elsewhere);
	snprintf(p, sizeof p, "%s/checkpoint-3/trainer_state.json", run);
	cJSON *st = NULL;
	CHECK(iapo_json_load(p, 1 << 26, &st) == IAPO_OK, "%s", iapo_errmsg());
	const cJSON *b = st ? cJSON_GetObjectItemCaseSensitive(st, "best_model_checkpoint") : NULL;
	printf("     best_model_checkpoint after resuming from one naming %s: %s\n", evil,
	       cJSON_IsString(b) ? b->valuestring : "null");
	CHECK(cJSON_IsNull(b) || (cJSON_IsString(b) && !strncmp(b->valuestring, run, strlen(run)) &&
				   !strstr(b->valuestring, "..")),
	      "best_model_checkpoint names a path inside the run: %s", cJSON_IsString(b) ? b->valuestring : "?");
	cJSON_Delete(st);
	/* a global_step beyond 2^53 (and the directory's name) */
	snprintf(p, sizeof p, "%s/checkpoint-3/trainer_state.json", run);
	json_set(p, "global_step", cJSON_CreateNumber(1e300));
	snprintf(args, sizeof args, "train --out '%s' --resume --max-steps 4", run);
	rc = cli(args);
	e = cli_err();
	CHECK(rc == 1 && e && strstr(e, "checkpoint-3/trainer_state.json") && strstr(e, "global_step"),
	      "huge global_step: exit %d: %s", rc, e ? e : "");
	iapo_free(e);
	CHECK(empty_or_absent(elsewhere), "still nothing written to %s", elsewhere);
}

int main(void)
{
	snprintf(root, sizeof root, "%s/robust-paths", test_env("IAPO_TMP", "/tmp"));
	bin = test_env("IAPO_BIN", "build/iapo");
	iapo_fs_remove_all(root);
	iapo_fs_mkdir_p(root);
	RUN(test_shard_names);
	RUN(test_safetensors_bounds);
	RUN(test_config_sizes);
	RUN(test_tokenizer_ids);
	RUN(test_chat_template_names);
	RUN(test_run_dir);
	iapo_fs_remove_all(root);
	TEST_END();
}
