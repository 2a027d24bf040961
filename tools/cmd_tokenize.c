/*
 * cmd_tokenize.c — `iapo tokenize`: a model's tokenizer as a filter. Each
 * line of standard input becomes a line of token ids (or, with --decode, a
 * line of ids becomes text). Results go to stdout only, diagnostics to stderr.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "core/mem.h"
#include "core/status.h"
#include "tokenizer/tokenizer.h"

#define CMD "tokenize"

static void help(void)
{
	printf("usage: iapo tokenize --model DIR [options] < input\n"
	       "\n"
	       "Encodes each line of standard input (without its newline) with the model's\n"
	       "tokenizer (DIR/tokenizer.json, as Hugging Face encodes with\n"
	       "add_special_tokens=False: special tokens written in the text are matched)\n"
	       "and writes its token ids, space-separated, one output line per input line.\n"
	       "With --decode, reads lines of space-separated ids and writes their text.\n"
	       "\n"
	       "options:\n"
	       "  --model DIR       model or tokenizer directory (required)\n"
	       "  --decode          ids to text instead of text to ids\n"
	       "  --skip-special    with --decode: leave special tokens out\n"
	       "  --chat            encode each line as the user message of the model's chat\n"
	       "                    template, followed by the assistant's generation prompt\n"
	       "  --system TEXT     with --chat: the system message (default: the template's)\n"
	       "  -h, --help        this help\n"
	       "\n"
	       "Exit status: 0 on success, 1 on a bad tokenizer or input line (the message\n"
	       "names the line), 2 on a usage error.\n");
}

static void write_or_fail(const void *p, size_t n)
{
	if (n && fwrite(p, 1, n, stdout) != n) {
		fprintf(stderr, "iapo %s: writing to stdout: %s\n", CMD, strerror(errno));
		exit(1);
	}
}

static int encode_lines(const iapo_tokenizer *t, int chat, const char *system)
{
	char *line = NULL, *text = NULL;
	size_t line_cap = 0, n = 0, cap = 0;
	int *ids = NULL;
	ssize_t got;
	while ((got = getline(&line, &line_cap, stdin)) >= 0) {
		size_t len = (size_t)got;
		if (len && line[len - 1] == '\n') line[--len] = '\0';
		const char *src = line;
		iapo_status st;
		if (chat) {
			/* The template sees a C string: a NUL byte ends the message. */
			iapo_free(text);
			text = NULL;
			st = iapo_tokenizer_chat(t, system, line, 1, &text);
			if (st != IAPO_OK) cli_fail(CMD, st);
			src = text;
			len = strlen(text);
		}
		st = iapo_tokenizer_encode(t, src, len, &ids, &n, &cap);
		if (st != IAPO_OK) cli_fail(CMD, st);
		for (size_t i = 0; i < n; i++) {
			char num[16];
			int k = snprintf(num, sizeof num, i ? " %d" : "%d", ids[i]);
			write_or_fail(num, (size_t)k);
		}
		write_or_fail("\n", 1);
	}
	free(line);
	iapo_free(text);
	iapo_free(ids);
	return 0;
}

static int decode_lines(const iapo_tokenizer *t, int skip_special)
{
	char *line = NULL, *out = NULL;
	size_t line_cap = 0, n = 0, cap = 0, out_len = 0, out_cap = 0;
	int *ids = NULL, vocab = iapo_tokenizer_vocab_size(t);
	long lineno = 0;
	while (getline(&line, &line_cap, stdin) >= 0) {
		lineno++;
		n = 0;
		for (char *p = line;;) {
			while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') p++;
			if (!*p) break;
			char *end;
			errno = 0;
			long v = strtol(p, &end, 10);
			if (end == p || errno || v < 0 || v >= vocab || (*end && !strchr(" \t\r\n", *end))) {
				size_t w = strcspn(p, " \t\r\n");
				fprintf(stderr, "iapo %s: stdin line %ld: expected a token id in [0, %d), found '%.*s'\n", CMD,
					lineno, vocab, (int)(w > 40 ? 40 : w), p);
				exit(1);
			}
			if (n == cap) {
				size_t c = cap ? 2 * cap : 64;
				int *q = iapo_realloc(ids, c * sizeof *ids);
				if (!q) cli_fail(CMD, iapo_fail(IAPO_ERR_NOMEM, "out of memory"));
				ids = q;
				cap = c;
			}
			ids[n++] = (int)v;
			p = end;
		}
		iapo_status st = iapo_tokenizer_decode(t, ids, n, skip_special, &out, &out_len, &out_cap);
		if (st != IAPO_OK) {
			fprintf(stderr, "iapo %s: stdin line %ld: %s\n", CMD, lineno, iapo_errmsg());
			exit(1);
		}
		write_or_fail(out, out_len);
		write_or_fail("\n", 1);
	}
	free(line);
	iapo_free(out);
	iapo_free(ids);
	return 0;
}

int cmd_tokenize(int argc, char **argv)
{
	const char *model = NULL, *system = NULL;
	int decode = 0, skip_special = 0, chat = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (cli_is_help(a)) {
			help();
			return 0;
		} else if (!strcmp(a, "--model")) {
			model = cli_value(CMD, argc, argv, &i);
		} else if (!strcmp(a, "--decode")) {
			decode = 1;
		} else if (!strcmp(a, "--skip-special")) {
			skip_special = 1;
		} else if (!strcmp(a, "--chat")) {
			chat = 1;
		} else if (!strcmp(a, "--system")) {
			system = cli_value(CMD, argc, argv, &i);
		} else {
			cli_usage_error(CMD, "unknown option '%s'", a);
		}
	}
	if (!model) cli_usage_error(CMD, "--model DIR is required");
	if (decode && chat) cli_usage_error(CMD, "--chat encodes; it cannot be combined with --decode");
	if (system && !chat) cli_usage_error(CMD, "--system only applies with --chat");
	if (skip_special && !decode) cli_usage_error(CMD, "--skip-special only applies with --decode");
	iapo_tokenizer *t = NULL;
	iapo_status st = iapo_tokenizer_load(model, &t);
	if (st != IAPO_OK) cli_fail(CMD, st);
	int rc = decode ? decode_lines(t, skip_special) : encode_lines(t, chat, system);
	iapo_tokenizer_free(t);
	if (fflush(stdout) != 0) {
		fprintf(stderr, "iapo %s: writing to stdout: %s\n", CMD, strerror(errno));
		return 1;
	}
	return rc;
}
