/*
 * metrics.h — a run's metrics.jsonl (one JSON object per optimizer step, as
 * the trainer and `iapo sft` write it) read back as numeric columns, for the
 * reports. Every top-level number becomes a column named by its key; an
 * object of numbers one level down (eval_pass_at_k: {"1": …}) becomes columns
 * "key/sub"; booleans, strings and deeper values are left out. A line that
 * lacks a column holds NaN there (a step without evaluation has no eval_*).
 *
 * A last line without its newline that does not parse is a write in progress
 * (the trainer appends whole lines) and is ignored; any other line that is not
 * a JSON object is an error naming the file and line.
 * Not here: drawing (html.h), what to draw (report.h).
 */
#ifndef IAPO_DEMO_METRICS_H
#define IAPO_DEMO_METRICS_H

#include "iapo.h"

typedef struct {
	int n_rows, n_cols;
	char **names;   /* (n_cols) in order of first appearance */
	double *values; /* (n_cols, n_rows) column-major: column c is values + c * n_rows */
} iapo_metrics_table;

/* Reads path. On success *out owns its arrays (iapo_metrics_free); on failure
 * it is empty. Errors: IO (cannot read), FORMAT ("FILE: line N: expected a
 * JSON object, found ..."), NOMEM. An empty file gives 0 rows. */
iapo_status iapo_metrics_load(const char *path, iapo_metrics_table *out);
void iapo_metrics_free(iapo_metrics_table *t);
/* The column called name (n_rows values), or NULL. */
const double *iapo_metrics_col(const iapo_metrics_table *t, const char *name);
/* 1 if the column has at least one finite value. */
int iapo_metrics_has(const iapo_metrics_table *t, const char *name);

#endif
