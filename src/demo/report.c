/*
 * report.c — the training-curve page of one run (see report.h). The chart
 * groups below name the fields the trainer and `iapo sft` write; a field no
 * group names is still plotted (alone) when it varies, so a new metric shows
 * up without an edit here.
 */
#include "demo/report.h"

#include <math.h>
#include <string.h>

#include "core/mem.h"
#include "core/status.h"
#include "demo/html.h"
#include "io/fs.h"

typedef struct {
	const char *title, *ylabel;
	const char *fields[8];
} group;

static const group groups[] = {
	{"Reward", "reward", {"reward_mean", "reward_std", "length_reward_mean", "overlong_penalty_mean"}},
	{"Accuracy and format (training samples)", "fraction",
	 {"accuracy", "format_rate", "frac_reward_zero_std", "clipped_ratio"}},
	{"Completion length", "tokens", {"completion_length_mean", "completion_length_min", "completion_length_max",
					 "gfpo_length_sampled", "gfpo_length_kept"}},
	{"KL to the reference (k3)", "nats", {"kl"}},
	{"Policy entropy", "nats per token", {"entropy"}},
	{"Loss", "loss", {"loss", "train_loss"}},
	{"Information gain (IAPO)", "nats per token", {"info_gain_mean"}},
	{"Tokens with near-zero information gain", "fraction", {"info_near_zero", "loss_token_fraction"}},
	{"Gradient norm (before clipping)", "L2 norm", {"grad_norm"}},
	{"Learning rate", "lr", {"learning_rate", "lr"}},
	{"Ratio and clipping", "fraction / ratio", {"ratio_mean", "clip_ratio_low", "clip_ratio_high"}},
	{"Seconds per step", "seconds",
	 {"seconds_total", "seconds_rollout", "seconds_scoring", "seconds_info", "seconds_reference", "seconds_update",
	  "seconds_eval", "seconds_entropy"}},
	{"Evaluation", "fraction", {"eval_accuracy", "eval_pass@1", "eval_format_rate", "eval_truncated_rate"}},
	{"Evaluation: completion length", "tokens", {"eval_length_mean"}},
};
#define N_GROUPS ((int)(sizeof groups / sizeof groups[0]))

/* Columns that index the steps rather than measure them. */
static int is_index(const char *name)
{
	return !strcmp(name, "step") || !strcmp(name, "epoch") || !strcmp(name, "iteration") ||
	       !strcmp(name, "eval_problems") || !strcmp(name, "eval_samples");
}

static int in_group(const char *name)
{
	for (int g = 0; g < N_GROUPS; g++)
		for (int k = 0; k < 8 && groups[g].fields[k]; k++)
			if (!strcmp(groups[g].fields[k], name)) return 1;
	return 0;
}

double *iapo_metrics_steps(const iapo_metrics_table *t)
{
	double *x = iapo_malloc((size_t)(t->n_rows > 0 ? t->n_rows : 1) * sizeof(double));
	if (!x) return NULL;
	const double *s = iapo_metrics_col(t, "step");
	for (int i = 0; i < t->n_rows; i++) x[i] = s && isfinite(s[i]) ? s[i] : i + 1;
	return x;
}

/* first, last finite; min, max; returns the count of finite values */
static int col_stats(const double *c, int n, double *first, double *last, double *lo, double *hi)
{
	int k = 0;
	*first = *last = *lo = *hi = NAN;
	for (int i = 0; i < n; i++) {
		if (!isfinite(c[i])) continue;
		if (!k) *first = *lo = *hi = c[i];
		*last = c[i];
		if (c[i] < *lo) *lo = c[i];
		if (c[i] > *hi) *hi = c[i];
		k++;
	}
	return k;
}

static void stats_row(FILE *f, const char *name, const double *c, int n)
{
	double a, b, lo, hi;
	char s[4][40];
	col_stats(c, n, &a, &b, &lo, &hi);
	fputs("<tr><td>", f);
	iapo_html_escape(f, name);
	fprintf(f, "</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>\n", iapo_html_num(a, 4, s[0], 40),
		iapo_html_num(b, 4, s[1], 40), iapo_html_num(lo, 4, s[2], 40), iapo_html_num(hi, 4, s[3], 40));
}

iapo_status iapo_run_report_write(FILE *f, const char *run_dir, iapo_run_report_stats *stats)
{
	char path[4096], cfg_path[4096];
	IAPO_TRY(iapo_fs_join(path, sizeof path, run_dir, "metrics.jsonl"));
	IAPO_TRY(iapo_fs_join(cfg_path, sizeof cfg_path, run_dir, "config.json"));
	if (!iapo_fs_exists(path))
		return iapo_fail(IAPO_ERR_IO, "%s: no such file (expected the metrics of a run directory of iapo train or iapo sft)",
				 path);
	iapo_metrics_table t;
	IAPO_TRY(iapo_metrics_load(path, &t));
	if (t.n_rows == 0) {
		iapo_metrics_free(&t);
		return iapo_fail(IAPO_ERR_FORMAT, "%s: expected at least one step, found none", path);
	}
	double *x = iapo_metrics_steps(&t);
	if (!x) {
		iapo_metrics_free(&t);
		return iapo_fail(IAPO_ERR_NOMEM, "report: out of memory");
	}
	iapo_run_report_stats rs = {t.n_rows, 0, 0};
	char title[4200];
	snprintf(title, sizeof title, "Training curves: %s", run_dir);
	iapo_html_begin(f, title);

	/* the run's settings, when it has a config.json */
	char *cfg = NULL;
	size_t cfg_len = 0;
	if (iapo_fs_exists(cfg_path) && iapo_fs_read_file(cfg_path, (size_t)16 << 20, &cfg, &cfg_len) != IAPO_OK) {
		iapo_clear_error();
		cfg = NULL;
	}
	const double *steps = iapo_metrics_col(&t, "step");
	fprintf(f, "<p class=\"note\">%d logged steps", t.n_rows);
	if (steps) fprintf(f, " (step %g to %g)", steps[0], steps[t.n_rows - 1]);
	fputs(" from metrics.jsonl. Lines break where a step has no value (NaN, or a field logged only on "
	      "some steps).</p>\n<h2>Curves</h2>\n<div class=\"charts\">\n",
	      f);
	iapo_svg_series ser[8];
	iapo_status st = IAPO_OK;
	for (int g = 0; g < N_GROUPS && st == IAPO_OK; g++) {
		int n = 0;
		for (int k = 0; k < 8 && groups[g].fields[k]; k++) {
			const double *c = iapo_metrics_col(&t, groups[g].fields[k]);
			if (!c || !iapo_metrics_has(&t, groups[g].fields[k])) continue;
			ser[n] = (iapo_svg_series){groups[g].fields[k], x, c, t.n_rows, k};
			n++;
		}
		if (!n) continue;
		iapo_svg_chart ch = {groups[g].title, "step", groups[g].ylabel, 0, 0, ser, n};
		st = iapo_svg_chart_write(f, &ch);
		rs.charts++;
		rs.fields += n;
	}
	/* everything else that varies, one chart each */
	int n_const = 0;
	for (int i = 0; i < t.n_cols && st == IAPO_OK; i++) {
		const char *name = t.names[i];
		if (is_index(name) || in_group(name)) continue;
		double a, b, lo, hi;
		if (col_stats(t.values + (size_t)i * (size_t)t.n_rows, t.n_rows, &a, &b, &lo, &hi) == 0) continue;
		if (lo == hi) {
			n_const++;
			continue;
		}
		ser[0] = (iapo_svg_series){name, x, t.values + (size_t)i * (size_t)t.n_rows, t.n_rows, 0};
		iapo_svg_chart ch = {name, "step", name, 0, 0, ser, 1};
		st = iapo_svg_chart_write(f, &ch);
		rs.charts++;
		rs.fields++;
	}
	fputs("</div>\n", f);
	if (n_const) {
		fputs("<p class=\"note\">Constant over the run (not plotted):", f);
		for (int i = 0; i < t.n_cols; i++) {
			const char *name = t.names[i];
			double a, b, lo, hi;
			if (is_index(name) || in_group(name)) continue;
			if (col_stats(t.values + (size_t)i * (size_t)t.n_rows, t.n_rows, &a, &b, &lo, &hi) == 0 || lo != hi)
				continue;
			char s[40];
			fputs(" ", f);
			iapo_html_escape(f, name);
			fprintf(f, " = %s;", iapo_html_num(lo, 6, s, sizeof s));
		}
		fputs("</p>\n", f);
	}
	fputs("<h2>Summary</h2>\n<table class=\"num\"><thead><tr><th>field</th><th>first</th><th>last</th><th>min</th>"
	      "<th>max</th></tr></thead>\n<tbody>\n",
	      f);
	for (int i = 0; i < t.n_cols; i++)
		if (!is_index(t.names[i]) && iapo_metrics_has(&t, t.names[i]))
			stats_row(f, t.names[i], t.values + (size_t)i * (size_t)t.n_rows, t.n_rows);
	fputs("</tbody></table>\n", f);
	if (cfg) {
		fputs("<h2>Settings</h2>\n<details><summary>config.json of the run</summary><pre>", f);
		iapo_html_escape(f, cfg);
		fputs("</pre></details>\n", f);
	}
	iapo_free(cfg);
	iapo_free(x);
	iapo_metrics_free(&t);
	iapo_status st2 = iapo_html_end(f);
	if (st == IAPO_OK) st = st2;
	if (st == IAPO_OK && stats) *stats = rs;
	return st;
}
