/*
 * test_demo_html.c — the report pieces (src/demo/html.h, metrics.h,
 * report.h): HTML escaping of & < > " '; charts: a series with NaN/Inf
 * values is drawn as separate segments through its finite points only (the
 * point count and path count say so), a lone finite point becomes a circle,
 * a chart with no finite point says "no data", a series with none is left out
 * of the legend, names are escaped; number cells; metrics.jsonl: columns in
 * order of first appearance, NaN where a line lacks a field, nested objects
 * one level down, booleans/strings left out, a torn last line ignored, a
 * malformed line an error naming file and line, a missing file an error;
 * the run report: its charts and table, errors for an empty or missing file.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/mem.h"
#include "core/status.h"
#include "demo/html.h"
#include "demo/metrics.h"
#include "demo/report.h"
#include "test.h"

static int count(const char *hay, const char *needle)
{
	int n = 0;
	for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle)) n++;
	return n;
}

static void test_escape(void)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	iapo_html_escape(f, "a<b>&\"c'd\xc3\xa9");
	iapo_html_escape(f, NULL);
	fclose(f);
	CHECK(!strcmp(buf, "a&lt;b&gt;&amp;&quot;c&#39;d\xc3\xa9"), "got %s", buf);
	free(buf);
}

static char *chart(const iapo_svg_chart *c, iapo_status *st)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	*st = iapo_svg_chart_write(f, c);
	fclose(f);
	return buf;
}

static void test_chart_nan(void)
{
	const double y[7] = {1, 2, NAN, 3, 4, INFINITY, 5};
	const double y2[3] = {NAN, NAN, NAN};
	iapo_svg_series s[2] = {{"a<1>", NULL, y, 7, -1}, {"empty", NULL, y2, 3, -1}};
	iapo_svg_chart c = {"T&itle", "step", "y", 0, 0, s, 2};
	iapo_status st;
	char *h = chart(&c, &st);
	CHECK(st == IAPO_OK, "status %d", st);
	CHECK(strstr(h, "data-series=\"1\" data-points=\"5\"") != NULL, "counts: %.300s", h);
	/* segments [1,2], [3,4], and the lone 5 (a circle) */
	CHECK(count(h, "<path class=\"line\"") == 3, "paths %d", count(h, "<path class=\"line\""));
	CHECK(count(h, "<circle") == 1, "circles %d", count(h, "<circle"));
	CHECK(strstr(h, "nan") == NULL && strstr(h, "inf") == NULL, "a non-finite number leaked: %s", h);
	CHECK(strstr(h, "a&lt;1&gt;") && !strstr(h, "a<1>"), "legend escaped");
	CHECK(strstr(h, "T&amp;itle") != NULL, "title escaped");
	CHECK(strstr(h, ">empty<") == NULL, "a series without finite points is not in the legend");
	CHECK(count(h, "<svg") == 1 && count(h, "</svg>") == 1 && count(h, "<figure") == 1 &&
		      count(h, "</figure>") == 1,
	      "balanced");
	free(h);
}

static void test_chart_empty(void)
{
	iapo_status st;
	iapo_svg_chart c = {"none", NULL, NULL, 0, 0, NULL, 0};
	char *h = chart(&c, &st);
	CHECK(st == IAPO_OK && strstr(h, "no data") && strstr(h, "data-series=\"0\" data-points=\"0\""), "%s", h);
	free(h);
	const double y[2] = {NAN, NAN};
	iapo_svg_series s = {"x", NULL, y, 2, 0};
	c.series = &s;
	c.n_series = 1;
	h = chart(&c, &st);
	CHECK(st == IAPO_OK && strstr(h, "no data") && !strstr(h, "<path"), "%s", h);
	free(h);
	/* a flat series and a single x still get finite coordinates */
	const double flat[1] = {0.5}, xs[1] = {3};
	iapo_svg_series s1 = {"flat", xs, flat, 1, 0};
	c.series = &s1;
	h = chart(&c, &st);
	CHECK(st == IAPO_OK && count(h, "<circle") == 1 && !strstr(h, "nan"), "%s", h);
	free(h);
	c.n_series = -1;
	h = chart(&c, &st);
	CHECK(st == IAPO_ERR_ARG, "negative count: %d", st);
	free(h);
}

static void test_num(void)
{
	char b[40];
	CHECK(!strcmp(iapo_html_num(0.81234, 3, b, sizeof b), "0.812"), "%s", b);
	CHECK(!strcmp(iapo_html_num(143.24, 4, b, sizeof b), "143.2"), "%s", b);
	CHECK(!strcmp(iapo_html_num(12345.6, 3, b, sizeof b), "12346"), "%s", b);
	CHECK(!strcmp(iapo_html_num(0, 3, b, sizeof b), "0"), "%s", b);
	CHECK(!strcmp(iapo_html_num(1.2e-5, 2, b, sizeof b), "1.2e-05"), "%s", b);
	CHECK(!strcmp(iapo_html_num(NAN, 3, b, sizeof b), "\xe2\x80\x93"), "%s", b);
}

static char tmpdir[1024];

static void write_file(const char *path, const char *s)
{
	FILE *f = fopen(path, "wb");
	if (f) {
		fputs(s, f);
		fclose(f);
	}
}

static void test_metrics(void)
{
	char p[1200];
	snprintf(p, sizeof p, "%s/m1.jsonl", tmpdir);
	write_file(p, "{\"step\": 1, \"loss\": 2.5, \"skipped\": false, \"algo\": \"x\", \"deep\": {\"a\": {\"b\": 1}}}\n"
		      "\n"
		      "{\"step\": 2, \"loss\": null, \"eval_pass_at_k\": {\"1\": 0.5, \"2\": 0.75}}\n"
		      "{\"step\": 3, \"loss\": 1.5, \"new\": 7}\n"
		      "{\"step\": 4, \"lo"); /* torn: still being written */
	iapo_metrics_table t;
	iapo_status st = iapo_metrics_load(p, &t);
	CHECK(st == IAPO_OK, "load: %s", iapo_errmsg());
	if (st != IAPO_OK) return;
	CHECK(t.n_rows == 3 && t.n_cols == 5, "rows %d cols %d", t.n_rows, t.n_cols);
	const char *want[5] = {"step", "loss", "eval_pass_at_k/1", "eval_pass_at_k/2", "new"};
	for (int i = 0; i < 5 && i < t.n_cols; i++) CHECK(!strcmp(t.names[i], want[i]), "col %d: %s", i, t.names[i]);
	const double *loss = iapo_metrics_col(&t, "loss"), *pk = iapo_metrics_col(&t, "eval_pass_at_k/2");
	CHECK(loss && loss[0] == 2.5 && isnan(loss[1]) && loss[2] == 1.5, "loss column");
	CHECK(pk && isnan(pk[0]) && pk[1] == 0.75 && isnan(pk[2]), "nested column");
	CHECK(!iapo_metrics_col(&t, "skipped") && !iapo_metrics_col(&t, "algo"), "non-numbers left out");
	CHECK(iapo_metrics_has(&t, "new") && !iapo_metrics_has(&t, "nope"), "has");
	double *x = iapo_metrics_steps(&t);
	CHECK(x && x[0] == 1 && x[2] == 3, "steps");
	iapo_free(x);
	iapo_metrics_free(&t);

	/* a malformed line in the middle: file and line named */
	snprintf(p, sizeof p, "%s/m2.jsonl", tmpdir);
	write_file(p, "{\"step\": 1}\n{\"step\": 2}\n[1, 2]\n{\"step\": 4}\n");
	st = iapo_metrics_load(p, &t);
	CHECK(st == IAPO_ERR_FORMAT && strstr(iapo_errmsg(), "m2.jsonl: line 3: expected a JSON object"), "got %d %s", st,
	      iapo_errmsg());
	CHECK(t.n_rows == 0 && !t.names && !t.values, "empty on failure");
	write_file(p, "{\"step\": 1}\n{\"step\": 2, \n");
	st = iapo_metrics_load(p, &t);
	CHECK(st == IAPO_ERR_FORMAT && strstr(iapo_errmsg(), "line 2"), "a broken whole line: %s", iapo_errmsg());
	snprintf(p, sizeof p, "%s/none.jsonl", tmpdir);
	st = iapo_metrics_load(p, &t);
	CHECK(st == IAPO_ERR_IO && strstr(iapo_errmsg(), "none.jsonl"), "missing: %d %s", st, iapo_errmsg());
}

static char *run_report(const char *dir, iapo_status *st, iapo_run_report_stats *rs)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	*st = iapo_run_report_write(f, dir, rs);
	fclose(f);
	return buf;
}

static void test_run_report(void)
{
	char dir[1100], p[1200];
	snprintf(dir, sizeof dir, "%s/run", tmpdir);
	mkdir(dir, 0755);
	snprintf(p, sizeof p, "%s/metrics.jsonl", dir);
	write_file(p, "{\"step\":1,\"reward_mean\":-0.5,\"accuracy\":0.2,\"completion_length_mean\":90,\"kl\":0,"
		      "\"grad_norm\":1.5,\"learning_rate\":1e-3,\"custom_thing\":3,\"const_thing\":4}\n"
		      "{\"step\":2,\"reward_mean\":0.5,\"accuracy\":0.6,\"completion_length_mean\":70,\"kl\":0.01,"
		      "\"grad_norm\":1.2,\"learning_rate\":5e-4,\"custom_thing\":5,\"const_thing\":4}\n");
	snprintf(p, sizeof p, "%s/config.json", dir);
	write_file(p, "{\"algo\": \"<iapo>\"}\n");
	iapo_status st;
	iapo_run_report_stats rs;
	char *h = run_report(dir, &st, &rs);
	CHECK(st == IAPO_OK, "report: %s", iapo_errmsg());
	CHECK(rs.steps == 2, "steps %d", rs.steps);
	/* reward, accuracy, length, kl, grad norm, lr, custom_thing */
	CHECK(rs.charts == 7 && count(h, "<svg") == 7, "charts %d svgs %d", rs.charts, count(h, "<svg"));
	CHECK(strstr(h, "const_thing = 4") != NULL, "constant listed");
	CHECK(strstr(h, "&quot;&lt;iapo&gt;&quot;") != NULL, "config shown escaped");
	CHECK(strstr(h, "<table class=\"num\">") && strstr(h, "</html>"), "table and end");
	free(h);
	write_file(p, "{}");
	snprintf(p, sizeof p, "%s/metrics.jsonl", dir);
	write_file(p, "");
	h = run_report(dir, &st, NULL);
	CHECK(st == IAPO_ERR_FORMAT && strstr(iapo_errmsg(), "at least one step"), "empty: %s", iapo_errmsg());
	free(h);
	remove(p);
	h = run_report(dir, &st, NULL);
	CHECK(st == IAPO_ERR_IO && strstr(iapo_errmsg(), "metrics.jsonl"), "missing: %s", iapo_errmsg());
	free(h);
}

int main(void)
{
	snprintf(tmpdir, sizeof tmpdir, "%s/test_demo_html", test_env("IAPO_TMP", "/tmp"));
	mkdir(test_env("IAPO_TMP", "/tmp"), 0755);
	mkdir(tmpdir, 0755);
	RUN(test_escape);
	RUN(test_chart_nan);
	RUN(test_chart_empty);
	RUN(test_num);
	RUN(test_metrics);
	RUN(test_run_report);
	TEST_END();
}
