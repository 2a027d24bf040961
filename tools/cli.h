/*
 * cli.h — shared pieces of the iapo command line: option value parsing, the
 * two ways a command ends in failure (usage error: exit 2; runtime error:
 * exit 1), and what the commands that run a model on one prompt (generate,
 * info) share: their common options, loading the model, rendering the prompt.
 * tools/ is the only code that calls exit().
 */
#ifndef IAPO_TOOLS_CLI_H
#define IAPO_TOOLS_CLI_H

#include "iapo.h"
#include "model/weights.h"
#include "tokenizer/tokenizer.h"

/* Each command: argv[0] is the command name. Returns the process exit code. */
/* one per command, defined in tools/cmd_<name>.c and listed in iapo.c */
int cmd_init(int, char **);
int cmd_tokenize(int, char **);
int cmd_generate(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_data(int argc, char **argv);
int cmd_sft(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_report(int argc, char **argv);

/* Prints "iapo CMD: message" and a pointer to --help, exits 2. */
_Noreturn void cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints "iapo CMD: <iapo_errmsg()>", exits 1. */
_Noreturn void cli_fail(const char *cmd, iapo_status s);

/* The value after option argv[*i]; advances *i. Usage error when missing. */
const char *cli_value(const char *cmd, int argc, char **argv, int *i);
int cli_int(const char *cmd, const char *opt, const char *s, long lo, long hi);
double cli_float(const char *cmd, const char *opt, const char *s, double lo, double hi);
/* True when argv[i] is -h or --help. */
int cli_is_help(const char *arg);
/* --seed's value: a non-negative integer (usage error otherwise). */
unsigned long long cli_seed(const char *cmd, const char *s);
/* Monotonic wall time in seconds. */
double cli_now(void);

/* The options of a command that runs a model on one prompt (generate, info). */
typedef struct {
	const char *model, *prompt, *system;
	int raw, max_tokens, threads;
	double temperature;
	unsigned long long seed;
} cli_prompt_opts;
/* Defaults: max_tokens 256, temperature 1, seed 0, threads 0 (all cores). */
void cli_prompt_opts_default(cli_prompt_opts *p);
/* Takes argv[*i] when it is one of --model, --prompt, --system, --raw,
 * --max-tokens, --temperature, --seed, --threads (advancing *i past its
 * value) and returns 1; 0 for any other argument. */
int cli_prompt_opt(const char *cmd, int argc, char **argv, int *i, cli_prompt_opts *p);
/* After the line: --model and --prompt given, no --system with --raw. */
void cli_prompt_check(const char *cmd, const cli_prompt_opts *p);

/* Loads the weights and the tokenizer of model directory dir (exits 1 on error). */
void cli_load_model(const char *cmd, const char *dir, iapo_weights *w, iapo_tokenizer **tok);
/* The prompt as the model sees it: with raw the text as is, else the chat
 * template (system turn if given, user turn, generation prompt), and its
 * token ids. A prompt of no tokens is a usage error. *text and *ids owned. */
void cli_prompt_tokens(const char *cmd, const iapo_tokenizer *tok, const char *system, const char *prompt, int raw,
		       char **text, int **ids, size_t *n);
/* The ids that end a completion: the config's, then the chat template's
 * end-of-turn ids not among them; {-1} when there are none (only length and
 * stop strings end it). eos holds IAPO_MAX_EOS + 16. Returns the count. */
int cli_eos_ids(const iapo_weights *w, const iapo_tokenizer *tok, int *eos);

#endif
