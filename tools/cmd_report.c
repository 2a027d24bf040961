/*
 * cmd_report.c — `iapo report RUN_DIR`: the training curves of a run as one
 * self-contained HTML page (src/demo/report.h draws it). Written to a
 * temporary file beside the target and renamed, so a reader never sees half
 * a page.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "core/status.h"
#include "demo/report.h"
#include "io/fs.h"

#define CMD "report"

static void help(void)
{
	printf("usage: iapo report RUN_DIR [--out FILE]\n"
	       "\n"
	       "Writes an HTML page with the training curves of a run directory of `iapo train`\n"
	       "or `iapo sft`: reward, accuracy and format, completion length, KL, entropy,\n"
	       "loss, information gain (IAPO), grad norm, learning rate, clipping, seconds per\n"
	       "phase and evaluation, from RUN_DIR/metrics.jsonl; any other numeric field that\n"
	       "changes gets a chart of its own. Charts are inline SVG: no scripts, no network.\n"
	       "A table gives each field's first, last, min and max value; RUN_DIR/config.json\n"
	       "is included when present.\n"
	       "\n"
	       "options:\n"
	       "  --out FILE    where to write the page (default RUN_DIR/report.html)\n"
	       "  -h, --help    this help\n"
	       "\n"
	       "exit status: 0 written, 1 a missing or malformed metrics.jsonl (the message names\n"
	       "the file and line) or a failed write, 2 usage error.\n");
}

int cmd_report(int argc, char **argv)
{
	const char *run = NULL, *out = NULL;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (cli_is_help(a)) {
			help();
			return 0;
		} else if (!strcmp(a, "--out")) {
			out = cli_value(CMD, argc, argv, &i);
		} else if (a[0] == '-' && a[1]) {
			cli_usage_error(CMD, "unknown option '%s'", a);
		} else if (!run) {
			run = a;
		} else {
			cli_usage_error(CMD, "expected one RUN_DIR, found a second one '%s'", a);
		}
	}
	if (!run) cli_usage_error(CMD, "RUN_DIR is required");
	if (!iapo_fs_is_dir(run)) cli_fail(CMD, iapo_fail(IAPO_ERR_IO, "%s: not a directory", run));
	char def[4096], tmp[4200];
	if (!out) {
		iapo_status st = iapo_fs_join(def, sizeof def, run, "report.html");
		if (st != IAPO_OK) cli_fail(CMD, st);
		out = def;
	}
	snprintf(tmp, sizeof tmp, "%s.tmp-%ld", out, (long)getpid());
	FILE *f = fopen(tmp, "wb");
	if (!f) cli_fail(CMD, iapo_fail(IAPO_ERR_IO, "%s: cannot open for writing", tmp));
	iapo_run_report_stats rs;
	iapo_status st = iapo_run_report_write(f, run, &rs);
	if (fclose(f) != 0 && st == IAPO_OK) st = iapo_fail(IAPO_ERR_IO, "%s: write failed", tmp);
	if (st == IAPO_OK && rename(tmp, out) != 0) st = iapo_fail(IAPO_ERR_IO, "%s: cannot rename to %s", tmp, out);
	if (st != IAPO_OK) {
		remove(tmp);
		cli_fail(CMD, st);
	}
	fprintf(stderr, "iapo report: %d steps, %d charts of %d fields -> %s\n", rs.steps, rs.charts, rs.fields, out);
	return 0;
}
