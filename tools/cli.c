/*
 * cli.c — option parsing helpers shared by the commands.
 */
#include "cli.h"
#include "dist/dist.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
