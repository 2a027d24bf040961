/*
 * fuzz_weights.c — iapo_weights_load on a model directory whose shard index
 * (model.safetensors.index.json) and, optionally, config.json come from the
 * input: "<index>" or "<index>\n--\n<config.json>". The shards beside them
 * are real: a tiny random Qwen3 saved by iapo_weights_save in three shards at
 * start-up, so a well-formed index loads and the fuzzer can reach every
 * check between index, config and tensors (file names from the index, shard
 * names outside the directory, missing or misshapen tensors).
 * Oracle besides the sanitizers: with the original config, a load that
 * succeeds gives exactly the saved parameters.
 * Not here: the safetensors header itself (fuzz_safetensors.c).
 */
#include "fuzz.h"
#include "model/weights.h"

static const char tiny_config[] =
	"{\"model_type\": \"qwen3\", \"vocab_size\": 40, \"hidden_size\": 8, \"intermediate_size\": 12,"
	" \"num_hidden_layers\": 2, \"num_attention_heads\": 2, \"num_key_value_heads\": 1, \"head_dim\": 4,"
	" \"max_position_embeddings\": 64, \"rms_norm_eps\": 1e-06, \"rope_theta\": 10000.0,"
	" \"tie_word_embeddings\": false, \"bos_token_id\": 30, \"eos_token_id\": 31}";

static char model_dir[1024];
static iapo_weights saved;
static char *orig_config;
static size_t orig_config_len;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	char src[1024], p[1200];
	iapo_config cfg;
	fz_subdir("src", src, sizeof src);
	snprintf(p, sizeof p, "%s/config.json", src);
	FILE *f = fopen(p, "w");
	if (!f || fputs(tiny_config, f) < 0 || fclose(f) != 0) abort();
	if (iapo_config_load(p, &cfg) != IAPO_OK || iapo_weights_init_random(&saved, &cfg, 1, 0.02f) != IAPO_OK) {
		fprintf(stderr, "fuzz_weights: %s\n", iapo_errmsg());
		abort();
	}
	fz_path("model", model_dir, sizeof model_dir);
	/* 6.6 KB of parameters: three shards. */
	if (iapo_weights_save(&saved, model_dir, NULL, "F32", 2500) != IAPO_OK) {
		fprintf(stderr, "fuzz_weights: %s\n", iapo_errmsg());
		abort();
	}
	snprintf(p, sizeof p, "%s/config.json", model_dir);
	f = fopen(p, "rb");
	if (!f) abort();
	orig_config = malloc(1 << 16);
	orig_config_len = fread(orig_config, 1, 1 << 16, f);
	fclose(f);
	/* The seed corpus holds this index; print it when asked. */
	if (getenv("FUZZ_WEIGHTS_PRINT_INDEX")) {
		snprintf(p, sizeof p, "cat %s/model.safetensors.index.json", model_dir);
		if (system(p) != 0) abort();
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fz_part part[2];
	int np = fz_split(data, size, part, 2);
	fz_write("model/model.safetensors.index.json", part[0].p, part[0].n);
	if (np > 1) fz_write("model/config.json", part[1].p, part[1].n);
	else fz_write("model/config.json", orig_config, orig_config_len);

	iapo_weights w;
	fz_begin();
	if (fz_status(iapo_weights_load(model_dir, &w), "weights_load") != IAPO_OK) {
		FZ_ASSERT(w.block == NULL, "a failed load kept its block");
		return 0;
	}
	if (np == 1) {
		size_t n = iapo_param_count(&saved.cfg);
		FZ_ASSERT(iapo_param_count(&w.cfg) == n && !memcmp(w.block, saved.block, n * sizeof(float)),
			  "loaded parameters differ from the saved ones");
	}
	iapo_weights_free(&w);
	return 0;
}
