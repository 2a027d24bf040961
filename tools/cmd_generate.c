/*
 * cmd_generate.c — `iapo generate`: sample completions of one prompt from a
 * Hugging Face model directory. stdout carries only the completion text(s),
 * so the output can be piped; counts and speeds go to stderr.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "core/mem.h"
#include "model/generate.h"
#include "model/weights.h"
#include "rl/memory.h"
#include "tokenizer/tokenizer.h"

#define CMD "generate"
#define MAX_STOP 32

static void help(void)
{
	printf("usage: iapo generate --model DIR --prompt TEXT [options]\n"
	       "\n"
	       "Samples completions of one prompt. The prompt is wrapped in the model's chat\n"
	       "template (a system turn, if given, and a user turn, then the assistant header)\n"
	       "unless --raw is given.\n"
	       "\n"
	       "options:\n"
	       "  --model DIR         Hugging Face model directory (config.json, *.safetensors,\n"
	       "                      tokenizer.json) (required)\n"
	       "  --prompt TEXT       the user message, or with --raw the exact text to continue (required)\n"
	       "  --system TEXT       system message (default: the template's own default)\n"
	       "  --raw               tokenize the prompt as is, no chat template\n"
	       "  -n N                number of completions (default 1)\n"
	       "  --max-tokens N      new tokens per completion at most (default 256)\n"
	       "  --temperature F     0 = greedy (default 1.0)\n"
	       "  --top-p F           nucleus sampling mass in (0, 1] (default 1.0 = off)\n"
	       "  --top-k N           keep the N most likely tokens, 0 = off (default 0)\n"
	       "  --seed N            random seed; completion i uses the stream (seed, i) (default 0)\n"
	       "  --threads N         OpenMP/BLAS threads, 0 = all cores (default 0)\n"
	       "  --stop STR          stop when the completion contains STR; the text is cut\n"
	       "                      before it (repeatable, up to %d)\n"
	       "  --no-memory-check   skip the memory estimate made before loading (a run that\n"
	       "                      would not fit MemAvailable or the cgroup limit is refused)\n"
	       "  -h, --help          this help\n"
	       "\n"
	       "Generation also stops at the model's end-of-sequence tokens (config.json,\n"
	       "generation_config.json and the chat template's end-of-turn tokens).\n"
	       "\n"
	       "output: each completion's text followed by a newline on stdout; with -n N > 1\n"
	       "each completion is followed by a line holding only '---'. Special tokens are\n"
	       "not printed. Counts, finish reasons and tokens/s go to stderr.\n",
	       MAX_STOP);
}

int cmd_generate(int argc, char **argv)
{
	cli_prompt_opts po;
	cli_prompt_opts_default(&po);
	const char *stop[MAX_STOP];
	int n = 1, top_k = 0, n_stop = 0;
	double top_p = 1.0;
	const int no_mem_check = iapo_mem_take_flag(&argc, argv);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (cli_is_help(a)) {
			help();
			return 0;
		} else if (cli_prompt_opt(CMD, argc, argv, &i, &po)) {
			continue;
		} else if (!strcmp(a, "-n")) {
			n = cli_int(CMD, a, cli_value(CMD, argc, argv, &i), 1, 4096);
		} else if (!strcmp(a, "--top-p")) {
			top_p = cli_float(CMD, a, cli_value(CMD, argc, argv, &i), 1e-9, 1);
		} else if (!strcmp(a, "--top-k")) {
			top_k = cli_int(CMD, a, cli_value(CMD, argc, argv, &i), 0, 1 << 30);
		} else if (!strcmp(a, "--stop")) {
			const char *v = cli_value(CMD, argc, argv, &i);
			if (!*v) cli_usage_error(CMD, "--stop: expected a non-empty string");
			if (n_stop == MAX_STOP) cli_usage_error(CMD, "--stop: at most %d stop strings", MAX_STOP);
			stop[n_stop++] = v;
		} else {
			cli_usage_error(CMD, "unknown option '%s'", a);
		}
	}
	cli_prompt_check(CMD, &po);
	if (po.raw && !*po.prompt) cli_usage_error(CMD, "--prompt: expected text to continue with --raw, found an empty string");
	if (po.threads > 0) iapo_set_threads(po.threads);

	if (!no_mem_check) {
		/* A prompt has at most one token per byte, plus the template's. */
		double len = (double)strlen(po.prompt) + (po.system ? (double)strlen(po.system) : 0) + (po.raw ? 0 : 128) + po.max_tokens;
		iapo_mem_plan plan;
		iapo_mem_plan_init(&plan);
		iapo_status ms = iapo_mem_plan_generate(&plan, po.model, n, len > 1 << 30 ? 1 << 30 : (int)len, po.threads,
						  "-n, --max-tokens", 0);
		if ((ms = iapo_mem_guard(ms, &plan, "this generation")) != IAPO_OK) cli_fail(CMD, ms);
	}
	double t0 = cli_now();
	iapo_weights w;
	iapo_tokenizer *tok;
	cli_load_model(CMD, po.model, &w, &tok);
	char *text;
	int *ids;
	size_t n_ids;
	cli_prompt_tokens(CMD, tok, po.system, po.prompt, po.raw, &text, &ids, &n_ids);
	int eos[IAPO_MAX_EOS + 16], n_eos = cli_eos_ids(&w, tok, eos);

	const int **prompts = iapo_malloc(sizeof(int *) * (size_t)n);
	int *lens = iapo_malloc(sizeof(int) * (size_t)n);
	iapo_gen_result *res = iapo_calloc((size_t)n, sizeof *res);
	if (!prompts || !lens || !res) cli_fail(CMD, IAPO_ERR_NOMEM);
	for (int i = 0; i < n; i++) {
		prompts[i] = ids;
		lens[i] = (int)n_ids;
	}
	iapo_gen_opts o = {
		.max_new_tokens = po.max_tokens,
		.sampler = {(float)po.temperature, top_k, (float)top_p},
		.seed = po.seed,
		.eos_ids = eos,
		.n_eos = n_eos,
		.stop = stop,
		.n_stop = n_stop,
		.tok = tok,
	};
	double t1 = cli_now();
	iapo_gen_stats stats;
	iapo_status st = iapo_generate(&w, prompts, lens, n, &o, NULL, res, &stats);
	if (st != IAPO_OK) cli_fail(CMD, st);

	int finish[3] = {0};
	for (int i = 0; i < n; i++) {
		fwrite(res[i].text, 1, res[i].text_len, stdout);
		fputs(n > 1 ? "\n---\n" : "\n", stdout);
		finish[res[i].finish]++;
	}
	fflush(stdout);
	double dec_tokens = (double)(stats.generated_tokens - (stats.generated_tokens > 0 ? n : 0));
	fprintf(stderr,
		"iapo generate: %d completion%s of a %zu-token prompt (%s), %ld tokens generated "
		"(finish: %d eos, %d stop, %d length)\n"
		"iapo generate: load %.2f s; prefill %.3f s (%.1f tok/s); decode %.3f s, %d steps (%.1f tok/s)\n",
		n, n > 1 ? "s" : "", n_ids, po.raw ? "raw" : "chat template", stats.generated_tokens,
		finish[IAPO_FINISH_EOS], finish[IAPO_FINISH_STOP], finish[IAPO_FINISH_LENGTH], t1 - t0,
		stats.prefill_seconds, stats.prefill_seconds > 0 ? (double)stats.prompt_tokens / stats.prefill_seconds : 0,
		stats.decode_seconds, stats.steps, stats.decode_seconds > 0 ? dec_tokens / stats.decode_seconds : 0);

	iapo_gen_results_free(res, n);
	iapo_free(res);
	iapo_free(prompts);
	iapo_free(lens);
	iapo_free(ids);
	iapo_free(text);
	iapo_tokenizer_free(tok);
	iapo_weights_free(&w);
	return 0;
}
