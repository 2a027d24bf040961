/*
 * cmd_generate.c — `iapo generate`: sample completions of one prompt from a
 * Hugging Face model directory. stdout carries only the completion text(s),
 * so the output can be piped; counts and speeds go to stderr.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int cmd_generate(int argc, char **argv)
{
	const char *model = NULL, *prompt = NULL, *system = NULL;
	const char *stop[MAX_STOP];
	int raw = 0, n = 1, max_tokens = 256, top_k = 0, threads = 0, n_stop = 0;
	double temperature = 1.0, top_p = 1.0;
	unsigned long long seed = 0;
	const int no_mem_check = iapo_mem_take_flag(&argc, argv);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (cli_is_help(a)) {
			help();
			return 0;
		} else if (!strcmp(a, "--model")) {
			model = cli_value(CMD, argc, argv, &i);
		} else if (!strcmp(a, "--prompt")) {
			prompt = cli_value(CMD, argc, argv, &i);
		} else if (!strcmp(a, "--system")) {
			system = cli_value(CMD, argc, argv, &i);
		} else if (!strcmp(a, "--raw")) {
			raw = 1;
		} else if (!strcmp(a, "-n")) {
			n = cli_int(CMD, a, cli_value(CMD, argc, argv, &i), 1, 4096);
		} else if (!strcmp(a, "--max-tokens")) {
			max_tokens = cli_int(CMD, a, cli_value(CMD, argc, argv, &i), 0, 1 << 20);
		} else if (!strcmp(a, "--temperature")) {
			temperature = cli_float(CMD, a, cli_value(CMD, argc, argv, &i), 0, 1e6);
		} else if (!strcmp(a, "--top-p")) {
			top_p = cli_float(CMD, a, cli_value(CMD, argc, argv, &i), 1e-9, 1);
		} else if (!strcmp(a, "--top-k")) {
			top_k = cli_int(CMD, a, cli_value(CMD, argc, argv, &i), 0, 1 << 30);
		} else if (!strcmp(a, "--seed")) {
			const char *v = cli_value(CMD, argc, argv, &i);
			char *end;
			seed = strtoull(v, &end, 10);
			if (!*v || *end || *v == '-') cli_usage_error(CMD, "--seed: expected a non-negative integer, found '%s'", v);
		} else if (!strcmp(a, "--threads")) {
			threads = cli_int(CMD, a, cli_value(CMD, argc, argv, &i), 0, 4096);
		} else if (!strcmp(a, "--stop")) {
			const char *v = cli_value(CMD, argc, argv, &i);
			if (!*v) cli_usage_error(CMD, "--stop: expected a non-empty string");
			if (n_stop == MAX_STOP) cli_usage_error(CMD, "--stop: at most %d stop strings", MAX_STOP);
			stop[n_stop++] = v;
		} else {
			cli_usage_error(CMD, "unknown option '%s'", a);
		}
	}
	if (!model) cli_usage_error(CMD, "--model DIR is required");
	if (!prompt) cli_usage_error(CMD, "--prompt TEXT is required");
	if (raw && system) cli_usage_error(CMD, "--system has no effect with --raw (the prompt is used as is)");
	if (raw && !*prompt) cli_usage_error(CMD, "--prompt: expected text to continue with --raw, found an empty string");
	if (threads > 0) iapo_set_threads(threads);

	if (!no_mem_check) {
		/* A prompt has at most one token per byte, plus the template's. */
		double len = (double)strlen(prompt) + (system ? (double)strlen(system) : 0) + (raw ? 0 : 128) + max_tokens;
		iapo_mem_plan plan;
		iapo_mem_plan_init(&plan);
		iapo_status ms = iapo_mem_plan_generate(&plan, model, n, len > 1 << 30 ? 1 << 30 : (int)len, threads,
						  "-n, --max-tokens");
		if ((ms = iapo_mem_guard(ms, &plan, "this generation")) != IAPO_OK) cli_fail(CMD, ms);
	}
	double t0 = now();
	iapo_weights w;
	iapo_tokenizer *tok = NULL;
	iapo_status st = iapo_weights_load(model, &w);
	if (st != IAPO_OK) cli_fail(CMD, st);
	st = iapo_tokenizer_load(model, &tok);
	if (st != IAPO_OK) cli_fail(CMD, st);
	char *text = NULL;
	if (raw) {
		text = iapo_strdup(prompt);
		if (!text) cli_fail(CMD, IAPO_ERR_NOMEM);
	} else if ((st = iapo_tokenizer_chat(tok, system, prompt, 1, &text)) != IAPO_OK) {
		cli_fail(CMD, st);
	}
	int *ids = NULL;
	size_t n_ids = 0, cap = 0;
	if ((st = iapo_tokenizer_encode(tok, text, strlen(text), &ids, &n_ids, &cap)) != IAPO_OK) cli_fail(CMD, st);
	if (n_ids == 0) cli_usage_error(CMD, "--prompt: the prompt has no tokens");

	/* End of sequence: the config's ids and the template's end-of-turn ids. */
	int eos[IAPO_MAX_EOS + 16], n_eos = 0;
	for (int i = 0; i < w.cfg.n_eos; i++) eos[n_eos++] = w.cfg.eos_ids[i];
	int tok_eos[16], nt = iapo_tokenizer_eos_ids(tok, tok_eos, 16);
	for (int i = 0; i < nt; i++) {
		int dup = 0;
		for (int j = 0; j < n_eos; j++) dup |= eos[j] == tok_eos[i];
		if (!dup) eos[n_eos++] = tok_eos[i];
	}
	if (n_eos == 0) eos[n_eos++] = -1; /* none: only length and stop strings end a completion */

	const int **prompts = iapo_malloc(sizeof(int *) * (size_t)n);
	int *lens = iapo_malloc(sizeof(int) * (size_t)n);
	iapo_gen_result *res = iapo_calloc((size_t)n, sizeof *res);
	if (!prompts || !lens || !res) cli_fail(CMD, IAPO_ERR_NOMEM);
	for (int i = 0; i < n; i++) {
		prompts[i] = ids;
		lens[i] = (int)n_ids;
	}
	iapo_gen_opts o = {
		.max_new_tokens = max_tokens,
		.sampler = {(float)temperature, top_k, (float)top_p},
		.seed = seed,
		.eos_ids = eos,
		.n_eos = n_eos,
		.stop = stop,
		.n_stop = n_stop,
		.tok = tok,
	};
	double t1 = now();
	iapo_gen_stats stats;
	st = iapo_generate(&w, prompts, lens, n, &o, NULL, res, &stats);
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
		n, n > 1 ? "s" : "", n_ids, raw ? "raw" : "chat template", stats.generated_tokens,
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
