/*
 * iapo.c — the command-line entry point: dispatches to one function per
 * command (tools/cmd_*.c).
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "dist/dist.h"

static const struct {
	const char *name;
	int (*fn)(int, char **);
	const char *summary;
} commands[] = {
	{"demo", cmd_demo, "the embedded default: a small reasoning model trained here, post-trained with GRPO, IAPO and ablations; table + HTML report"},
	{"init", cmd_init, "write a randomly initialised model directory from a config.json"},
	{"generate", cmd_generate, "sample completions of a prompt (chat template applied)"},
	{"train", cmd_train, "RL post-training (IAPO, GRPO and baselines) of a model on a JSONL dataset"},
	{"sft", cmd_sft, "supervised training (from scratch or a model) on prompt/completion JSONL, loss on the completion"},
	{"eval", cmd_eval, "pass@k, length@k and token efficiency of a model or of every checkpoint of a run"},
	{"info", cmd_info, "per-token information gain of a completion about its answer, as HTML and TSV"},
	{"report", cmd_report, "HTML page with the training curves of a run (inline SVG, no network)"},
	{"data", cmd_data, "make the demo's data: a synthetic reasoning task (synth), a BPE tokenizer for it (tokenizer)"},
	{"tokenize", cmd_tokenize, "text lines to token ids (or ids to text with --decode)"},
	{NULL, NULL, NULL},
};

static void usage(FILE *f)
{
	fprintf(f, "usage: iapo <command> [options]\n\ncommands:\n");
	for (size_t i = 0; commands[i].name; i++)
		fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\n'iapo <command> --help' describes a command's options.\n"
		   "'iapo --version' prints the version and how this binary was built.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (cli_is_help(argv[1])) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("%s\n", iapo_build_info());
		return 0;
	}
	for (size_t i = 0; commands[i].name; i++)
		if (!strcmp(argv[1], commands[i].name)) {
			int rc = commands[i].fn(argc - 1, argv + 1);
			iapo_dist_finish(rc, 1); /* leaves an MPI job (train, eval) the ordinary way */
			return rc;
		}
	fprintf(stderr, "iapo: unknown command '%s'\n\n", argv[1]);
	usage(stderr);
	return 2;
}
