/*
 * cli.c — option parsing helpers shared by the commands, and the model and
 * prompt preamble of the one-prompt commands (see cli.h).
 */
#include "cli.h"
#include "dist/dist.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/mem.h"

/* Under mpirun every rank meets a usage error of the same command line:
 * rank 0 says it, all end normally. */
void cli_usage_error(const char *cmd, const char *fmt, ...)
{
	if (iapo_dist_rank() == 0) {
		va_list ap;
		fprintf(stderr, "iapo %s: ", cmd);
		va_start(ap, fmt);
		vfprintf(stderr, fmt, ap);
		va_end(ap);
		fprintf(stderr, "\n(see 'iapo %s --help')\n", cmd);
	}
	iapo_dist_finish(2, 1);
	exit(2);
}

/* Under mpirun: an error every rank holds (src/dist: agreed) is said once,
 * by rank 0; any other ends the whole job with this rank's message. */
void cli_fail(const char *cmd, iapo_status s)
{
	const char *m = iapo_errmsg();
	int shared = iapo_dist_error_shared();
	if (shared && iapo_dist_rank() == 0) fprintf(stderr, "iapo %s: %s\n", cmd, m && *m ? m : iapo_status_str(s));
	if (!shared) {
		char msg[2304];
		snprintf(msg, sizeof msg, "iapo %s: %s", cmd, m && *m ? m : iapo_status_str(s));
		iapo_dist_abort(1, msg);
		fprintf(stderr, "%s\n", msg); /* a job of one: abort returned */
	}
	iapo_dist_finish(1, 1);
	exit(1);
}

const char *cli_value(const char *cmd, int argc, char **argv, int *i)
{
	if (*i + 1 >= argc) cli_usage_error(cmd, "option %s needs a value", argv[*i]);
	return argv[++*i];
}

int cli_int(const char *cmd, const char *opt, const char *s, long lo, long hi)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		cli_usage_error(cmd, "%s: expected an integer in [%ld, %ld], found '%s'", opt, lo, hi, s);
	return (int)v;
}

double cli_float(const char *cmd, const char *opt, const char *s, double lo, double hi)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi)
		cli_usage_error(cmd, "%s: expected a number in [%g, %g], found '%s'", opt, lo, hi, s);
	return v;
}

int cli_is_help(const char *arg) { return !strcmp(arg, "-h") || !strcmp(arg, "--help"); }

unsigned long long cli_seed(const char *cmd, const char *s)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	/* errno: past 2^64 - 1, which strtoull would silently clamp to */
	if (!*s || *end || *s == '-' || errno)
		cli_usage_error(cmd, "--seed: expected a non-negative integer, found '%s'", s);
	return v;
}

double cli_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void cli_prompt_opts_default(cli_prompt_opts *p)
{
	memset(p, 0, sizeof *p);
	p->max_tokens = 256;
	p->temperature = 1.0;
}

int cli_prompt_opt(const char *cmd, int argc, char **argv, int *i, cli_prompt_opts *p)
{
	const char *a = argv[*i];
	if (!strcmp(a, "--model"))
		p->model = cli_value(cmd, argc, argv, i);
	else if (!strcmp(a, "--prompt"))
		p->prompt = cli_value(cmd, argc, argv, i);
	else if (!strcmp(a, "--system"))
		p->system = cli_value(cmd, argc, argv, i);
	else if (!strcmp(a, "--raw"))
		p->raw = 1;
	else if (!strcmp(a, "--max-tokens"))
		p->max_tokens = cli_int(cmd, a, cli_value(cmd, argc, argv, i), 0, 1 << 20);
	else if (!strcmp(a, "--temperature"))
		p->temperature = cli_float(cmd, a, cli_value(cmd, argc, argv, i), 0, 1e6);
	else if (!strcmp(a, "--seed"))
		p->seed = cli_seed(cmd, cli_value(cmd, argc, argv, i));
	else if (!strcmp(a, "--threads"))
		p->threads = cli_int(cmd, a, cli_value(cmd, argc, argv, i), 0, 4096);
	else
		return 0;
	return 1;
}

void cli_prompt_check(const char *cmd, const cli_prompt_opts *p)
{
	if (!p->model) cli_usage_error(cmd, "--model DIR is required");
	if (!p->prompt) cli_usage_error(cmd, "--prompt TEXT is required");
	if (p->raw && p->system) cli_usage_error(cmd, "--system has no effect with --raw (the prompt is used as is)");
}

void cli_load_model(const char *cmd, const char *dir, iapo_weights *w, iapo_tokenizer **tok)
{
	*tok = NULL;
	iapo_status st = iapo_weights_load(dir, w);
	if (st != IAPO_OK) cli_fail(cmd, st);
	if ((st = iapo_tokenizer_load(dir, tok)) != IAPO_OK) cli_fail(cmd, st);
}

void cli_prompt_tokens(const char *cmd, const iapo_tokenizer *tok, const char *system, const char *prompt, int raw,
		       char **text, int **ids, size_t *n)
{
	iapo_status st;
	*text = NULL;
	if (raw) {
		*text = iapo_strdup(prompt);
		if (!*text) cli_fail(cmd, IAPO_ERR_NOMEM);
	} else if ((st = iapo_tokenizer_chat(tok, system, prompt, 1, text)) != IAPO_OK) {
		cli_fail(cmd, st);
	}
	size_t cap = 0;
	*ids = NULL;
	*n = 0;
	if ((st = iapo_tokenizer_encode(tok, *text, strlen(*text), ids, n, &cap)) != IAPO_OK) cli_fail(cmd, st);
	if (*n == 0) cli_usage_error(cmd, "--prompt: the prompt has no tokens");
}

int cli_eos_ids(const iapo_weights *w, const iapo_tokenizer *tok, int *eos)
{
	int n_eos = 0;
	for (int i = 0; i < w->cfg.n_eos; i++) eos[n_eos++] = w->cfg.eos_ids[i];
	int tok_eos[16], nt = iapo_tokenizer_eos_ids(tok, tok_eos, 16);
	for (int i = 0; i < nt; i++) {
		int dup = 0;
		for (int j = 0; j < n_eos; j++) dup |= eos[j] == tok_eos[i];
		if (!dup) eos[n_eos++] = tok_eos[i];
	}
	if (n_eos == 0) eos[n_eos++] = -1;
	return n_eos;
}
