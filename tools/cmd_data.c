/*
 * cmd_data.c — `iapo data`: the demo's data, made locally.
 *   iapo data synth      the synthetic reasoning task (src/data/synth.c)
 *   iapo data tokenizer  a byte-level BPE tokenizer trained on it
 *                        (src/data/bpe_train.c), written as a real
 *                        tokenizer.json
 * A summary goes to stdout; errors to stderr (exit 1, usage errors exit 2).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "core/status.h"
#include "data/bpe_train.h"
#include "data/synth.h"

static void help_data(FILE *f)
{
	fprintf(f, "usage: iapo data <synth|tokenizer> [options]\n"
	       "\n"
	       "  synth      write a synthetic multi-step reasoning task (train/test JSONL with\n"
	       "             chain-of-thought traces and per-character redundancy labels)\n"
	       "  tokenizer  train a byte-level BPE tokenizer on such JSONL and write it as a\n"
	       "             Hugging Face tokenizer.json\n"
	       "\n"
	       "'iapo data <subcommand> --help' describes its options.\n");
}

static void help_synth(void)
{
	printf("usage: iapo data synth --out DIR [options]\n"
	       "\n"
	       "Writes chained arithmetic word problems (\"Tom has 7 apples. He buys 5 more, then\n"
	       "gives away 3, then doubles them. How many apples does he have now?\") with\n"
	       "chain-of-thought traces that mix the steps that determine the answer\n"
	       "(\"7 + 5 = 12.\") with redundancy: restating the question, filler, re-verifying\n"
	       "results, summarising. Each trace draws its own verbosity. Deterministic from the\n"
	       "seed and the options.\n"
	       "\n"
	       "options:\n"
	       "  --out DIR          output directory (required; created if needed)\n"
	       "  --seed N           random seed (default 1)\n"
	       "  --train N          training problems (default 5000)\n"
	       "  --test N           test problems, disjoint from train (default 500)\n"
	       "  --steps MIN-MAX    operations per problem, 1..%d; or one number (default 2-4)\n"
	       "  --redundancy F     mean verbosity in [0, 1]: 0 = terse traces only, 1 = all\n"
	       "                     maximally verbose (default 0.5: levels spread evenly)\n"
	       "  --max-value N      largest quantity in any problem, 10..999 (default 40)\n"
	       "  -h, --help         this help\n"
	       "\n"
	       "output: DIR/train.jsonl and DIR/test.jsonl, one row per problem:\n"
	       "  {\"prompt\", \"answer\", \"completion\": \"<think>\\n...</think>\\n<answer>N</answer>\",\n"
	       "   \"spans\": [[start, end, kind], ...], \"n_steps\", \"redundancy\"}\n"
	       "with byte offsets into the completion and kinds step, restate, filler, verify,\n"
	       "summary (the last four redundant), answer, format; DIR/meta.json holds the seed,\n"
	       "options and redundancy statistics. A summary is printed on stdout.\n",
	       IAPO_SYNTH_MAX_STEPS);
}

static void help_tokenizer(void)
{
	printf("usage: iapo data tokenizer --data FILE --out DIR [options]\n"
	       "\n"
	       "Trains a byte-level BPE (the 256 byte tokens, then merges of the most frequent\n"
	       "adjacent pair, ties broken by the smaller pair of ids) on the \"prompt\" and\n"
	       "\"completion\" of each JSONL row, pre-tokenised with the same regex the written\n"
	       "tokenizer uses, and writes DIR/tokenizer.json and DIR/tokenizer_config.json\n"
	       "(ChatML template; added tokens <|endoftext|> <|im_start|> <|im_end|> <think>\n"
	       "</think> <answer> </answer>). Prints the bytes per token the written tokenizer\n"
	       "achieves on the data.\n"
	       "\n"
	       "options:\n"
	       "  --data FILE        JSONL with \"prompt\" and optional \"completion\" strings (required;\n"
	       "                     may be given several times)\n"
	       "  --out DIR          output directory (required)\n"
	       "  --vocab N          vocabulary size, added tokens included, %d..65536 (default 1024);\n"
	       "                     fewer when the data has no more pairs seen --min-freq times\n"
	       "  --min-freq N       only merge pairs seen at least N times (default 2)\n"
	       "  --no-chat          train on the rows alone; by default each row also counts the\n"
	       "                     text the model sees around it (the R1 system prompt, the\n"
	       "                     one-shot turn and the ChatML role names)\n"
	       "  -h, --help         this help\n",
	       IAPO_BPE_MIN_VOCAB);
}

static int cmd_synth(int argc, char **argv)
{
	const char *cmd = "data synth", *out = NULL;
	iapo_synth_opts o;
	iapo_synth_opts_default(&o);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (cli_is_help(a)) {
			help_synth();
			return 0;
		} else if (!strcmp(a, "--out")) {
			out = cli_value(cmd, argc, argv, &i);
		} else if (!strcmp(a, "--seed")) {
			const char *v = cli_value(cmd, argc, argv, &i);
			char *end;
			errno = 0;
			unsigned long long s = strtoull(v, &end, 10);
			if (errno || end == v || *end || *v == '-')
				cli_usage_error(cmd, "--seed: expected a non-negative integer, found '%s'", v);
			o.seed = s;
		} else if (!strcmp(a, "--train")) {
			o.n_train = cli_int(cmd, a, cli_value(cmd, argc, argv, &i), 1, 10000000);
		} else if (!strcmp(a, "--test")) {
			o.n_test = cli_int(cmd, a, cli_value(cmd, argc, argv, &i), 0, 10000000);
		} else if (!strcmp(a, "--steps")) {
			const char *v = cli_value(cmd, argc, argv, &i);
			int lo, hi, n = 0;
			if (sscanf(v, "%d-%d%n", &lo, &hi, &n) == 2 && !v[n]) {
			} else if (sscanf(v, "%d%n", &lo, &n) == 1 && !v[n]) {
				hi = lo;
			} else {
				cli_usage_error(cmd, "--steps: expected MIN-MAX or N, found '%s'", v);
			}
			if (lo < 1 || hi > IAPO_SYNTH_MAX_STEPS || lo > hi)
				cli_usage_error(cmd, "--steps: expected 1 <= MIN <= MAX <= %d, found '%s'",
						IAPO_SYNTH_MAX_STEPS, v);
			o.min_steps = lo;
			o.max_steps = hi;
		} else if (!strcmp(a, "--redundancy")) {
			o.redundancy = cli_float(cmd, a, cli_value(cmd, argc, argv, &i), 0, 1);
		} else if (!strcmp(a, "--max-value")) {
			o.max_value = cli_int(cmd, a, cli_value(cmd, argc, argv, &i), 10, 999);
		} else {
			cli_usage_error(cmd, "unknown option '%s'", a);
		}
	}
	if (!out) cli_usage_error(cmd, "--out DIR is required");
	iapo_synth_stats tr, te;
	iapo_status st = iapo_synth_generate(&o, out, &tr, &te);
	if (st != IAPO_OK) cli_fail(cmd, st);
	printf("wrote %s/train.jsonl (%zu rows), %s/test.jsonl (%zu rows), %s/meta.json\n", out, tr.rows, out,
	       te.rows, out);
	printf("train: %.2f steps and %.0f characters per trace; redundant share min %.3f mean %.3f max %.3f\n",
	       tr.mean_steps, tr.mean_chars, tr.share_min, tr.share_mean, tr.share_max);
	return 0;
}

static int cmd_tokenizer(int argc, char **argv)
{
	const char *cmd = "data tokenizer", *out = NULL;
	const char **data = NULL;
	int n_data = 0;
	iapo_bpe_opts o;
	iapo_bpe_opts_default(&o);
	data = calloc((size_t)argc, sizeof *data);
	if (!data) cli_fail(cmd, iapo_fail(IAPO_ERR_NOMEM, "out of memory"));
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (cli_is_help(a)) {
			help_tokenizer();
			free(data);
			return 0;
		} else if (!strcmp(a, "--data")) {
			data[n_data++] = cli_value(cmd, argc, argv, &i);
		} else if (!strcmp(a, "--out")) {
			out = cli_value(cmd, argc, argv, &i);
		} else if (!strcmp(a, "--vocab")) {
			o.vocab_size = cli_int(cmd, a, cli_value(cmd, argc, argv, &i), IAPO_BPE_MIN_VOCAB, 65536);
		} else if (!strcmp(a, "--min-freq")) {
			o.min_freq = cli_int(cmd, a, cli_value(cmd, argc, argv, &i), 1, 1000000000);
		} else if (!strcmp(a, "--no-chat")) {
			o.chat_context = 0;
		} else {
			cli_usage_error(cmd, "unknown option '%s'", a);
		}
	}
	if (!n_data) cli_usage_error(cmd, "--data FILE is required");
	if (!out) cli_usage_error(cmd, "--out DIR is required");
	iapo_bpe_result r;
	iapo_status st = iapo_bpe_train_files(data, n_data, &o, out, &r);
	free(data);
	if (st != IAPO_OK) cli_fail(cmd, st);
	printf("wrote %s/tokenizer.json: %d merges, vocabulary %d (256 bytes + %d merged + 7 added)\n", out,
	       r.n_merges, r.vocab_size, r.vocab_size - 263);
	printf("%zu rows: prompts %.3f bytes/token, completions %.3f bytes/token (%.1f tokens per completion)\n",
	       r.rows, r.prompt_bytes_per_token, r.completion_bytes_per_token, r.mean_completion_tokens);
	return 0;
}

int cmd_data(int argc, char **argv)
{
	if (argc < 2) {
		help_data(stderr);
		return 2;
	}
	if (cli_is_help(argv[1])) {
		help_data(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "synth")) return cmd_synth(argc - 1, argv + 1);
	if (!strcmp(argv[1], "tokenizer")) return cmd_tokenizer(argc - 1, argv + 1);
	cli_usage_error("data", "unknown subcommand '%s' (expected synth or tokenizer)", argv[1]);
}
