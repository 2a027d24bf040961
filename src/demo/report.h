/*
 * report.h — `iapo report`: one HTML page with the training curves of a run
 * directory (RUN_DIR/metrics.jsonl of `iapo train` or `iapo sft`), drawn as
 * inline SVG (html.h). Known fields are grouped into charts (reward; accuracy
 * and format; completion length; KL; entropy; loss; information gain; grad
 * norm; learning rate; ratio and clipping; seconds per phase; evaluation);
 * every other numeric field that changes gets a chart of its own, and
 * constant ones are listed. A table gives each plotted field's first, last,
 * min and max, and RUN_DIR/config.json (when present) is shown folded.
 *
 * Not here: the demo's multi-run page (demo.h), the chart drawing (html.h).
 */
#ifndef IAPO_DEMO_REPORT_H
#define IAPO_DEMO_REPORT_H

#include <stdio.h>

#include "demo/metrics.h"
#include "iapo.h"

typedef struct {
	int steps;  /* metrics lines read */
	int charts; /* charts written */
	int fields; /* numeric fields plotted */
} iapo_run_report_stats;

/* Writes the page for run_dir to f. Errors: IO/FORMAT naming
 * RUN_DIR/metrics.jsonl (missing, a malformed line), FORMAT when it holds no
 * step at all, IO when writing fails. stats may be NULL. */
iapo_status iapo_run_report_write(FILE *f, const char *run_dir, iapo_run_report_stats *stats);

/* The x values of a table: its "step" column when it has one, else 1..n.
 * Returns an owned array (iapo_free) or NULL when out of memory. */
double *iapo_metrics_steps(const iapo_metrics_table *t);

#endif
