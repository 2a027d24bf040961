/*
 * metrics.c — metrics.jsonl into numeric columns (see metrics.h). Two passes
 * over the parsed lines: the first collects column names in order of first
 * appearance, the second fills the table (NaN where a line lacks a column).
 */
#include "demo/metrics.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/mem.h"
#include "core/status.h"
#include "io/fs.h"

#define MAX_NAME 160

typedef struct {
	char **names;
	int n, cap;
} name_list;

static int find(const name_list *l, const char *s)
{
	for (int i = 0; i < l->n; i++)
		if (!strcmp(l->names[i], s)) return i;
	return -1;
}

static iapo_status add_name(name_list *l, const char *s)
{
	if (find(l, s) >= 0) return IAPO_OK;
	if (l->n == l->cap) {
		int cap = l->cap ? 2 * l->cap : 32;
		char **p = iapo_realloc(l->names, (size_t)cap * sizeof *p);
		if (!p) return iapo_fail(IAPO_ERR_NOMEM, "metrics: out of memory");
		l->names = p;
		l->cap = cap;
	}
	if (!(l->names[l->n] = iapo_strdup(s))) return iapo_fail(IAPO_ERR_NOMEM, "metrics: out of memory");
	l->n++;
	return IAPO_OK;
}

/* Calls fn for every numeric leaf this reader keeps: (name, value). */
typedef iapo_status (*leaf_fn)(void *ctx, const char *name, double v);

static iapo_status walk(const cJSON *o, leaf_fn fn, void *ctx)
{
	char name[2 * MAX_NAME + 2];
	for (const cJSON *it = o->child; it; it = it->next) {
		if (!it->string || strlen(it->string) >= MAX_NAME) continue;
		if (cJSON_IsNumber(it)) {
			IAPO_TRY(fn(ctx, it->string, it->valuedouble));
		} else if (cJSON_IsObject(it)) {
			for (const cJSON *s = it->child; s; s = s->next) {
				if (!cJSON_IsNumber(s) || !s->string || strlen(s->string) >= MAX_NAME) continue;
				snprintf(name, sizeof name, "%s/%s", it->string, s->string);
				IAPO_TRY(fn(ctx, name, s->valuedouble));
			}
		}
	}
	return IAPO_OK;
}

static iapo_status collect(void *ctx, const char *name, double v)
{
	(void)v;
	return add_name(ctx, name);
}

typedef struct {
	const name_list *l;
	double *values;
	int n_rows, row;
} fill_ctx;

static iapo_status fill(void *vctx, const char *name, double v)
{
	fill_ctx *c = vctx;
	int k = find(c->l, name);
	if (k >= 0) c->values[(size_t)k * (size_t)c->n_rows + (size_t)c->row] = v;
	return IAPO_OK;
}

iapo_status iapo_metrics_load(const char *path, iapo_metrics_table *out)
{
	memset(out, 0, sizeof *out);
	char *data = NULL;
	size_t len = 0;
	IAPO_TRY(iapo_fs_read_file(path, (size_t)1 << 30, &data, &len));
	iapo_status st = IAPO_OK;
	cJSON **rows = NULL;
	int n_rows = 0, cap = 0;
	name_list names = {0};
	long line = 0;
	for (size_t pos = 0; pos < len && st == IAPO_OK;) {
		char *nl = memchr(data + pos, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - (data + pos)) : len - pos;
		line++;
		size_t b = pos, e = pos + n;
		pos += n + 1;
		while (b < e && (data[b] == ' ' || data[b] == '\t' || data[b] == '\r')) b++;
		while (e > b && (data[e - 1] == ' ' || data[e - 1] == '\t' || data[e - 1] == '\r')) e--;
		if (b == e) continue; /* blank line */
		cJSON *o = cJSON_ParseWithLength(data + b, e - b);
		if (!cJSON_IsObject(o)) {
			cJSON_Delete(o);
			if (!nl) break; /* a line still being written */
			char shown[48];
			size_t k = e - b < 40 ? e - b : 40;
			memcpy(shown, data + b, k);
			shown[k] = 0;
			for (size_t i = 0; i < k; i++)
				if ((unsigned char)shown[i] < 32) shown[i] = ' ';
			st = iapo_fail(IAPO_ERR_FORMAT, "%s: line %ld: expected a JSON object, found '%s%s'", path, line, shown,
				       e - b > 40 ? "..." : "");
			break;
		}
		if (n_rows == cap) {
			int nc = cap ? 2 * cap : 64;
			cJSON **p = iapo_realloc(rows, (size_t)nc * sizeof *p);
			if (!p) {
				cJSON_Delete(o);
				st = iapo_fail(IAPO_ERR_NOMEM, "%s: out of memory", path);
				break;
			}
			rows = p;
			cap = nc;
		}
		rows[n_rows++] = o;
		st = walk(o, collect, &names);
	}
	if (st == IAPO_OK && names.n > 0 && n_rows > 0) {
		out->values = iapo_malloc((size_t)names.n * (size_t)n_rows * sizeof(double));
		if (!out->values) st = iapo_fail(IAPO_ERR_NOMEM, "%s: out of memory", path);
		else
			for (size_t i = 0; i < (size_t)names.n * (size_t)n_rows; i++) out->values[i] = NAN;
		fill_ctx fc = {&names, out->values, n_rows, 0};
		for (int r = 0; r < n_rows && st == IAPO_OK; r++) {
			fc.row = r;
			st = walk(rows[r], fill, &fc);
		}
	}
	for (int r = 0; r < n_rows; r++) cJSON_Delete(rows[r]);
	iapo_free(rows);
	iapo_free(data);
	if (st != IAPO_OK) {
		for (int i = 0; i < names.n; i++) iapo_free(names.names[i]);
		iapo_free(names.names);
		iapo_free(out->values);
		memset(out, 0, sizeof *out);
		return st;
	}
	out->n_rows = n_rows;
	out->n_cols = names.n;
	out->names = names.names;
	return IAPO_OK;
}

void iapo_metrics_free(iapo_metrics_table *t)
{
	if (!t) return;
	for (int i = 0; i < t->n_cols; i++) iapo_free(t->names[i]);
	iapo_free(t->names);
	iapo_free(t->values);
	memset(t, 0, sizeof *t);
}

const double *iapo_metrics_col(const iapo_metrics_table *t, const char *name)
{
	for (int i = 0; i < t->n_cols; i++)
		if (!strcmp(t->names[i], name)) return t->values + (size_t)i * (size_t)t->n_rows;
	return NULL;
}

int iapo_metrics_has(const iapo_metrics_table *t, const char *name)
{
	const double *c = iapo_metrics_col(t, name);
	for (int i = 0; c && i < t->n_rows; i++)
		if (isfinite(c[i])) return 1;
	return 0;
}
