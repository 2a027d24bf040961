/*
 * test_fuzz_regress.c — one test per problem the fuzz targets (fuzz/) found,
 * on the input that showed it (minimised), so that each stays fixed in the
 * ordinary suite without clang; and the in-memory safetensors entry point
 * the fuzzer uses, against the file reader on the same bytes.
 * Not here: fuzzing itself (fuzz/, tests/cli_fuzz.sh).
 */
#include <limits.h>
#include <stdint.h>
#include <unistd.h>

#include "core/mem.h"
#include "core/status.h"
#include "io/fs.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "model/weights.h"
#include "test.h"
#include "tokenizer/tokenizer.h"

static char tmpdir[1024];

static void tpath(char *buf, size_t n, const char *name)
{
	int k = snprintf(buf, n, "%s/%s", tmpdir, name);
	if (k < 0 || (size_t)k >= n) buf[0] = '\0';
}

static int has(const char *msg, const char *part) { return strstr(msg, part) != NULL; }

static int write_text(const char *path, const char *text)
{
	return iapo_fs_write_file(path, text, strlen(text)) == IAPO_OK;
}

static const char tiny_qwen3[] =
	"{\"model_type\": \"qwen3\", \"vocab_size\": 40, \"hidden_size\": 8, \"intermediate_size\": 12,"
	" \"num_hidden_layers\": 2, \"num_attention_heads\": 2, \"num_key_value_heads\": 1, \"head_dim\": 4,"
	" \"max_position_embeddings\": 64, \"rms_norm_eps\": 1e-06, \"rope_theta\": 10000.0,"
	" \"tie_word_embeddings\": false, \"bos_token_id\": 30, \"eos_token_id\": 31}";

/* ------------------------------------------------------- open_mem = open */

static void test_open_mem_matches_file(void)
{
	char path[1024];
	tpath(path, sizeof path, "m.safetensors");
	float a[6] = {1, 2, 3, 4, 5, 6}, b[2] = {-1, 0.5f};
	iapo_st_entry e[2] = {{"a", IAPO_DT_BF16, 2, {2, 3}, a}, {"b", IAPO_DT_F32, 1, {2}, b}};
	CHECK(iapo_safetensors_write(path, e, 2) == IAPO_OK, "%s", iapo_errmsg());
	char *bytes = NULL;
	size_t n = 0;
	CHECK(iapo_fs_read_file(path, 1 << 20, &bytes, &n) == IAPO_OK, "%s", iapo_errmsg());
	if (!bytes) return;
	iapo_safetensors f, m;
	CHECK(iapo_safetensors_open(path, &f) == IAPO_OK, "%s", iapo_errmsg());
	CHECK(iapo_safetensors_open_mem(bytes, n, "mem", &m) == IAPO_OK, "%s", iapo_errmsg());
	CHECK(m.map == NULL && f.n == 2 && m.n == 2, "%d / %d tensors", f.n, m.n);
	for (int i = 0; i < f.n && i < m.n; i++) {
		float x[6], y[6];
		CHECK(!strcmp(f.t[i].name, m.t[i].name) && f.t[i].begin == m.t[i].begin && f.t[i].end == m.t[i].end,
		      "tensor %d differs", i);
		CHECK(iapo_safetensors_read_f32(&f, &f.t[i], x) == IAPO_OK &&
			      iapo_safetensors_read_f32(&m, &m.t[i], y) == IAPO_OK &&
			      !memcmp(x, y, f.t[i].nelem * sizeof(float)),
		      "values of %s", f.t[i].name);
	}
	iapo_safetensors_close(&f);
	iapo_safetensors_close(&m);
	/* Errors name what the caller called the bytes, as for a file. */
	CHECK(iapo_safetensors_open_mem(bytes, 7, "mem-bytes", &m) == IAPO_ERR_FORMAT && has(iapo_errmsg(), "mem-bytes") &&
		      has(iapo_errmsg(), "truncated"),
	      "%s", iapo_errmsg());
	CHECK(m.path == NULL && m.t == NULL, "failed open left state");
	iapo_safetensors_close(&m);
	iapo_free(bytes);
}

/* ------------------------------------------------------------ findings */

/* fuzz_weights: a 2.5 KB model directory whose config.json claims vocab
 * 4000000 x hidden 8000 made iapo_weights_load allocate (and zero) a 256 GB
 * parameter block before looking at a single tensor; now the shapes are
 * compared first and the directory is refused as a mismatch. */
static void test_weights_huge_config_refused_before_allocating(void)
{
	char dir[1024], p[1200];
	iapo_config cfg;
	iapo_weights w;
	tpath(dir, sizeof dir, "huge");
	CHECK(iapo_fs_mkdir_p(dir) == IAPO_OK, "%s", iapo_errmsg());
	snprintf(p, sizeof p, "%s/config.json", dir);
	CHECK(write_text(p, tiny_qwen3), "%s", iapo_errmsg());
	CHECK(iapo_config_load(p, &cfg) == IAPO_OK, "%s", iapo_errmsg());
	CHECK(iapo_weights_init_random(&w, &cfg, 1, 0.02f) == IAPO_OK, "%s", iapo_errmsg());
	CHECK(iapo_weights_save(&w, dir, NULL, "F32", 0) == IAPO_OK, "%s", iapo_errmsg());
	iapo_weights_free(&w);
	char text[1024];
	snprintf(text, sizeof text,
		 "{\"model_type\": \"qwen3\", \"vocab_size\": 4000000, \"hidden_size\": 8000, \"intermediate_size\": 12,"
		 " \"num_hidden_layers\": 2, \"num_attention_heads\": 2, \"num_key_value_heads\": 1, \"head_dim\": 4}");
	CHECK(write_text(p, text), "%s", iapo_errmsg());
	iapo_status s = iapo_weights_load(dir, &w);
	CHECK(s == IAPO_ERR_FORMAT && has(iapo_errmsg(), "model.embed_tokens.weight") && has(iapo_errmsg(), "expected shape"),
	      "status %d: %s", s, iapo_errmsg());
	CHECK(w.block == NULL, "block kept");
}

/* fuzz_json: iapo_json_as_int compared the double with (double)hi, and
 * (double)LONG_MAX is 2^63: 9223372036854775807 in a file passed the check
 * and its conversion to long was undefined (UBSan); likewise a hi that is not
 * a double, e.g. 2^54 + 3, let 2^54 + 4 through. */
static void test_json_as_int_edges(void)
{
	static const struct {
		const char *text;
		long lo, hi;
		int ok;
		long want;
	} cases[] = {
		{"9223372036854775807", LONG_MIN, LONG_MAX, 0, 0}, /* reads as 2^63 */
		{"-9223372036854775808", LONG_MIN, LONG_MAX, 1, LONG_MIN},
		{"1e300", LONG_MIN, LONG_MAX, 0, 0},
		{"18014398509481988", 0, (1L << 54) + 3, 0, 0}, /* 2^54 + 4 */
		{"18014398509481984", 0, (1L << 54) + 3, 1, 1L << 54},
		{"4.5", LONG_MIN, LONG_MAX, 0, 0},
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		cJSON *v = NULL;
		long got = 0;
		CHECK(iapo_json_parse(cases[i].text, strlen(cases[i].text), "t", &v) == IAPO_OK, "%s", iapo_errmsg());
		iapo_status s = iapo_json_as_int(v, "t.json", "x", cases[i].lo, cases[i].hi, &got);
		if (cases[i].ok)
			CHECK(s == IAPO_OK && got == cases[i].want, "%s: status %d, %ld", cases[i].text, s, got);
		else
			CHECK(s == IAPO_ERR_FORMAT && has(iapo_errmsg(), "t.json: x: expected an integer in"), "%s: status %d: %s",
			      cases[i].text, s, iapo_errmsg());
		cJSON_Delete(v);
	}
}

/* fuzz_config: "rope_theta": 5001e304 became inf as a float, passed the
 * "positive" check, and was saved back as null (so the saved model read as
 * rope_theta 10000). Values beyond float range are now refused, in
 * rope_scaling too. */
static void test_config_float_range(void)
{
	static const struct {
		const char *field, *text;
	} cases[] = {
		{"rope_theta", "\"rope_theta\": 5001e304"},
		{"rms_norm_eps", "\"rms_norm_eps\": -1e39"},
		{"rope_scaling.factor", "\"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 1e39, \"low_freq_factor\": 1,"
					" \"high_freq_factor\": 4, \"original_max_position_embeddings\": 64}"},
		{"rope_parameters.rope_theta", "\"rope_parameters\": {\"rope_theta\": 1e300}"},
	};
	char p[1024], text[1024];
	tpath(p, sizeof p, "config.json");
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		snprintf(text, sizeof text,
			 "{\"model_type\": \"llama\", \"vocab_size\": 40, \"hidden_size\": 8, \"intermediate_size\": 12,"
			 " \"num_hidden_layers\": 2, \"num_attention_heads\": 2, %s}",
			 cases[i].text);
		CHECK(write_text(p, text), "%s", iapo_errmsg());
		iapo_config cfg;
		iapo_status s = iapo_config_load(p, &cfg);
		CHECK(s == IAPO_ERR_FORMAT && has(iapo_errmsg(), cases[i].field) && has(iapo_errmsg(), "within float range"),
		      "%s: status %d: %s", cases[i].field, s, iapo_errmsg());
	}
	/* The largest float is still a float. */
	snprintf(text, sizeof text,
		 "{\"model_type\": \"llama\", \"vocab_size\": 40, \"hidden_size\": 8, \"intermediate_size\": 12,"
		 " \"num_hidden_layers\": 2, \"num_attention_heads\": 2, \"rope_theta\": 3.4028234663852886e38}");
	CHECK(write_text(p, text), "%s", iapo_errmsg());
	iapo_config cfg;
	CHECK(iapo_config_load(p, &cfg) == IAPO_OK && cfg.rope_theta == 3.4028234663852886e38f, "%s", iapo_errmsg());
}

/* fuzz_tokenizer: a 120-byte tokenizer.json with one token of id 10^9 made
 * iapo_tokenizer_load build id tables of 10^9 entries (4 GB zeroed, 25 s;
 * libFuzzer's malloc limit caught it). Ids far beyond the token count are
 * now refused. */
static void test_tokenizer_sparse_ids_refused(void)
{
	char dir[1024], p[1100];
	tpath(dir, sizeof dir, "tok");
	CHECK(iapo_fs_mkdir_p(dir) == IAPO_OK, "%s", iapo_errmsg());
	snprintf(p, sizeof p, "%s/tokenizer.json", dir);
	CHECK(write_text(p, "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":1000000000},\"merges\":[]},"
			    "\"pre_tokenizer\":{\"type\":\"ByteLevel\"},\"decoder\":{\"type\":\"ByteLevel\"}}"),
	      "%s", iapo_errmsg());
	iapo_tokenizer *t = NULL;
	iapo_status s = iapo_tokenizer_load(dir, &t);
	CHECK(s == IAPO_ERR_FORMAT && t == NULL && has(iapo_errmsg(), "tokenizer.json") && has(iapo_errmsg(), "1000000000") &&
		      has(iapo_errmsg(), "dense"),
	      "status %d: %s", s, iapo_errmsg());
	/* Holes are fine within the bound: 256 byte tokens and id 1000. */
	CHECK(iapo_tokenizer_write_bytelevel(dir, NULL, 0) == IAPO_OK, "%s", iapo_errmsg());
	char *text = NULL;
	size_t len = 0;
	CHECK(iapo_fs_read_file(p, 1 << 20, &text, &len) == IAPO_OK, "%s", iapo_errmsg());
	char *at = text ? strstr(text, "\"<|endoftext|>\"") : NULL;
	if (at) {
		/* "<|endoftext|>" is the first added token, right after the 256 bytes. */
		char *idp = strstr(text, "\"id\":");
		if (idp) {
			idp += 5;
			while (*idp == ' ' || *idp == '\t') idp++;
			if (!strncmp(idp, "256", 3)) memcpy(idp, "999", 3);
		}
		CHECK(write_text(p, text), "%s", iapo_errmsg());
		s = iapo_tokenizer_load(dir, &t);
		CHECK(s == IAPO_OK && iapo_tokenizer_vocab_size(t) == 1000, "holes: status %d: %s", s, iapo_errmsg());
		iapo_tokenizer_free(t);
	}
	iapo_free(text);
}

/* fuzz_config: a Llama config with "eos_token_id": [] (no eos) was written
 * back without the key, which reads as Llama's default eos 2. */
static void test_config_no_eos_round_trip(void)
{
	char dir[1024], p[1100];
	tpath(dir, sizeof dir, "noeos");
	CHECK(iapo_fs_mkdir_p(dir) == IAPO_OK, "%s", iapo_errmsg());
	snprintf(p, sizeof p, "%s/config.json", dir);
	CHECK(write_text(p, "{\"model_type\": \"llama\", \"vocab_size\": 40, \"hidden_size\": 8, \"intermediate_size\": 12,"
			    " \"num_hidden_layers\": 2, \"num_attention_heads\": 2, \"eos_token_id\": []}"),
	      "%s", iapo_errmsg());
	iapo_config a, b;
	CHECK(iapo_config_load(p, &a) == IAPO_OK && a.n_eos == 0, "load: n_eos %d: %s", a.n_eos, iapo_errmsg());
	CHECK(iapo_config_write(&a, p, "float32") == IAPO_OK, "%s", iapo_errmsg());
	snprintf(p, sizeof p, "%s/generation_config.json", dir);
	CHECK(iapo_generation_config_write(&a, p) == IAPO_OK, "%s", iapo_errmsg());
	snprintf(p, sizeof p, "%s/config.json", dir);
	CHECK(iapo_config_load(p, &b) == IAPO_OK && b.n_eos == 0, "reloaded: n_eos %d (eos %d): %s", b.n_eos, b.eos_ids[0],
	      iapo_errmsg());
}

int main(void)
{
	snprintf(tmpdir, sizeof tmpdir, "%s/test_fuzz_regress", test_env("IAPO_TMP", "/tmp"));
	iapo_fs_remove_all(tmpdir);
	if (iapo_fs_mkdir_p(tmpdir) != IAPO_OK) {
		fprintf(stderr, "%s\n", iapo_errmsg());
		return 1;
	}
	RUN(test_open_mem_matches_file);
	RUN(test_weights_huge_config_refused_before_allocating);
	RUN(test_json_as_int_edges);
	RUN(test_config_float_range);
	RUN(test_tokenizer_sparse_ids_refused);
	RUN(test_config_no_eos_round_trip);
	iapo_fs_remove_all(tmpdir);
	TEST_END();
}
