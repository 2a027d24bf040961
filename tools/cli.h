/*
 * cli.h — shared pieces of the iapo command line: option value parsing and the
 * two ways a command ends in failure (usage error: exit 2; runtime error: exit 1).
 * tools/ is the only code that calls exit().
 */
#ifndef IAPO_TOOLS_CLI_H
#define IAPO_TOOLS_CLI_H

#include "iapo.h"

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

#endif
