/*
 * cli.c — option parsing helpers shared by the commands.
 */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cli_usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "iapo %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n(see 'iapo %s --help')\n", cmd);
	exit(2);
}

void cli_fail(const char *cmd, iapo_status s)
{
	const char *m = iapo_errmsg();
	fprintf(stderr, "iapo %s: %s\n", cmd, m && *m ? m : iapo_status_str(s));
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
