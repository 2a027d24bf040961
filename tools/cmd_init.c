/*
 * cmd_init.c — `iapo init`: a randomly initialised model directory in Hugging
 * Face layout from a config.json, with a tokenizer (copied from --tokenizer,
 * or the minimal byte-level one). The directory is written atomically.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "core/status.h"
#include "io/fs.h"
#include "model/weights.h"
#include "tokenizer/tokenizer.h"

#define CMD "init"

static void help(void)
{
	printf("usage: iapo init --config CONFIG.json --out DIR [options]\n"
	       "\n"
	       "Writes a randomly initialised model directory (config.json,\n"
	       "generation_config.json, model.safetensors, tokenizer files) that iapo and\n"
	       "Hugging Face transformers load. Weights follow HF's initialisation:\n"
	       "normal(0, std) for matrices and embeddings (the pad token's row zero), ones\n"
	       "for norms, zeros for biases. An existing DIR is replaced only once the new\n"
	       "one is complete.\n"
	       "\n"
	       "options:\n"
	       "  --config FILE     an HF config.json (model_type llama, qwen2 or qwen3) (required)\n"
	       "  --out DIR         the model directory to write (required)\n"
	       "  --seed N          random seed (default 0)\n"
	       "  --std F           standard deviation (default: the config's\n"
	       "                    initializer_range, else 0.02)\n"
	       "  --dtype D         F32, BF16 or F16 (default F32)\n"
	       "  --tokenizer DIR   copy tokenizer.json, tokenizer_config.json, vocab.json,\n"
	       "                    merges.txt, special_tokens_map.json from DIR (default: write\n"
	       "                    the byte-level tokenizer: 256 bytes + 7 special tokens)\n"
	       "  -h, --help        this help\n"
	       "\n"
	       "The config's vocab_size must cover the tokenizer's vocabulary. When the config\n"
	       "names no eos_token_id, the tokenizer's end-of-sequence tokens are used.\n");
}

int cmd_init(int argc, char **argv)
{
	const char *config = NULL, *out = NULL, *tok_dir = NULL, *dtype = "F32";
	unsigned long long seed = 0;
	double std = -1;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (cli_is_help(a)) {
			help();
			return 0;
		} else if (!strcmp(a, "--config")) {
			config = cli_value(CMD, argc, argv, &i);
		} else if (!strcmp(a, "--out")) {
			out = cli_value(CMD, argc, argv, &i);
		} else if (!strcmp(a, "--tokenizer")) {
			tok_dir = cli_value(CMD, argc, argv, &i);
		} else if (!strcmp(a, "--dtype")) {
			dtype = cli_value(CMD, argc, argv, &i);
			if (strcmp(dtype, "F32") && strcmp(dtype, "BF16") && strcmp(dtype, "F16"))
				cli_usage_error(CMD, "--dtype: expected F32, BF16 or F16, found '%s'", dtype);
		} else if (!strcmp(a, "--std")) {
			std = cli_float(CMD, a, cli_value(CMD, argc, argv, &i), 0, 1000);
		} else if (!strcmp(a, "--seed")) {
			const char *v = cli_value(CMD, argc, argv, &i);
			char *end;
			errno = 0;
			seed = strtoull(v, &end, 10);
			if (!*v || *end || *v == '-' || errno)
				cli_usage_error(CMD, "--seed: expected a non-negative integer, found '%s'", v);
		} else {
			cli_usage_error(CMD, "unknown option '%s'", a);
		}
	}
	if (!config) cli_usage_error(CMD, "--config CONFIG.json is required");
	if (!out) cli_usage_error(CMD, "--out DIR is required");

	iapo_config cfg;
	iapo_status st = iapo_config_load(config, &cfg);
	if (st != IAPO_OK) cli_fail(CMD, st);
	if (std < 0) std = iapo_config_init_std(config);

	/* The byte-level tokenizer is written to a scratch directory beside
	 * --out and copied by the save like any other tokenizer. */
	char scratch[4096] = "";
	if (!tok_dir) {
		st = iapo_fs_make_temp_dir(out, scratch, sizeof scratch);
		if (st == IAPO_OK) st = iapo_tokenizer_write_bytelevel(scratch, NULL, 0);
		if (st != IAPO_OK) goto fail;
		tok_dir = scratch;
	}
	iapo_tokenizer *tok = NULL;
	st = iapo_tokenizer_load(tok_dir, &tok);
	if (st != IAPO_OK) goto fail;
	int tv = iapo_tokenizer_vocab_size(tok);
	if (cfg.V < tv) {
		st = iapo_fail(IAPO_ERR_FORMAT, "%s: vocab_size: expected at least %d (the vocabulary of the %s tokenizer), found %d",
			       config, tv, scratch[0] ? "byte-level" : "--tokenizer", cfg.V);
		iapo_tokenizer_free(tok);
		goto fail;
	}
	/* A Llama config that names no eos has HF's default 2 here, which is
	 * a byte (0x02) of the byte-level tokenizer and a plain token of most
	 * others: generation would never stop. The tokenizer knows its own. */
	if (cfg.n_eos == 0 || !iapo_config_names_eos(config)) {
		int eos[IAPO_MAX_EOS];
		int n = iapo_tokenizer_eos_ids(tok, eos, IAPO_MAX_EOS);
		if (n > 0) {
			memcpy(cfg.eos_ids, eos, (size_t)n * sizeof eos[0]);
			cfg.n_eos = n;
		}
	}
	iapo_tokenizer_free(tok);

	iapo_weights w;
	st = iapo_weights_init_random(&w, &cfg, (uint64_t)seed, (float)std);
	if (st != IAPO_OK) goto fail;
	st = iapo_weights_save(&w, out, tok_dir, dtype, 0);
	size_t n = iapo_param_count(&w.cfg);
	iapo_weights_free(&w);
	if (st != IAPO_OK) goto fail;
	if (scratch[0]) iapo_fs_remove_all(scratch);
	fprintf(stderr, "iapo init: wrote %s (%s, %.3gM parameters, %s, seed %llu, std %g)\n", out, cfg.model_type,
		(double)n / 1e6, dtype, seed, std);
	return 0;
fail:
	if (scratch[0]) {
		char msg[2048];
		snprintf(msg, sizeof msg, "%s", iapo_errmsg());
		iapo_fs_remove_all(scratch);
		iapo_fail(st, "%s", msg);
	}
	cli_fail(CMD, st);
}
