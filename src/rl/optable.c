/*
 * optable.c — parsing, JSON and --help driven by an option table (see
 * optable.h). The commands' tables and their cross-option checks stay in
 * rl/options.c (train) and rl/sft_run.c (sft).
 */
#include "rl/optable.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "core/status.h"
#include "io/fs.h"
#include "io/json.h"

#define PATHN 4096

static void *field_at(void *o, const iapo_opt_def *d) { return (char *)o + d->off; }
static unsigned char *given_of(const iapo_optable *t, void *o) { return (unsigned char *)o + t->given_off; }
static int is_string(const iapo_opt_def *d) { return d->type == IAPO_OPT_STR || d->type == IAPO_OPT_ENUM; }
static int dup_mode(const iapo_optable *t) { return t->owned_off == IAPO_OPT_STRDUP; }

int iapo_optable_find(const iapo_optable *t, const char *name)
{
	char norm[64];
	size_t n = strlen(name);
	if (n >= sizeof norm) return -1;
	for (size_t i = 0; i <= n; i++) norm[i] = name[i] == '_' ? '-' : name[i];
	for (size_t i = 0; i < t->n_aliases; i++)
		if (!strcmp(t->aliases[i][0], norm)) {
			snprintf(norm, sizeof norm, "%s", t->aliases[i][1]);
			break;
		}
	for (size_t i = 0; i < t->n; i++)
		if (!strcmp(t->opts[i].name, norm)) return (int)i;
	return -1;
}

int iapo_optable_is_flag(const iapo_optable *t, const char *name)
{
	int i = iapo_optable_find(t, name);
	return i < 0 ? -1 : t->opts[i].type == IAPO_OPT_FLAG;
}

int iapo_optable_given(const iapo_optable *t, const void *o, const char *name)
{
	int i = iapo_optable_find(t, name);
	return i >= 0 && given_of(t, (void *)o)[i];
}

static int choice_ok(const char *choices, const char *v)
{
	size_t n = strlen(v);
	for (const char *p = choices; *p;) {
		const char *e = strchr(p, '|');
		size_t k = e ? (size_t)(e - p) : strlen(p);
		if (k == n && !strncmp(p, v, n)) return 1;
		if (!e) break;
		p = e + 1;
	}
	return 0;
}

static char *choices_text(const char *choices, char *buf, size_t n)
{
	/* "a|b|c" -> "a, b or c" */
	size_t k = 0;
	int total = 1;
	for (const char *p = choices; *p; p++) total += *p == '|';
	int seen = 0;
	for (const char *p = choices; *p && k + 8 < n; p++) {
		if (*p == '|') {
			seen++;
			const char *sep = seen == total - 1 ? " or " : ", ";
			size_t l = strlen(sep);
			if (k + l + 1 >= n) break;
			memcpy(buf + k, sep, l);
			k += l;
		} else {
			buf[k++] = *p;
		}
	}
	buf[k] = 0;
	return buf;
}

/* Owned strings of a list-mode table: blocks freed together. */
typedef struct owned_str {
	struct owned_str *next;
	char s[];
} owned_str;

static owned_str **owned_head(const iapo_optable *t, void *o) { return (owned_str **)((char *)o + t->owned_off); }

/* Stores a copy of v in string field f: an iapo_strdup copy replacing (and
 * freeing) the old one, or a block on the options' list. */
static int store_string(const iapo_optable *t, void *o, char **f, const char *v)
{
	if (dup_mode(t)) {
		char *s = iapo_strdup(v);
		if (!s) return -1;
		iapo_free(*f);
		*f = s;
		return 0;
	}
	size_t n = strlen(v);
	owned_str *b = iapo_malloc(sizeof *b + n + 1);
	if (!b) return -1;
	memcpy(b->s, v, n + 1);
	owned_str **head = owned_head(t, o);
	b->next = *head;
	*head = b;
	*f = b->s;
	return 0;
}

/* where: "--name" or "FILE: key 'name'" */
static iapo_status set_text(const iapo_optable *t, void *o, int i, const char *v, const char *where)
{
	const iapo_opt_def *d = &t->opts[i];
	void *field = field_at(o, d);
	switch (d->type) {
	case IAPO_OPT_STR:
	case IAPO_OPT_ENUM:
		if (!v) return iapo_fail(IAPO_ERR_ARG, "%s: expected a value", where);
		if (d->type == IAPO_OPT_ENUM && !choice_ok(d->choices, v)) {
			if (t->enum_as_list)
				return iapo_fail(IAPO_ERR_ARG, "%s: expected one of %s, found '%s'", where, d->choices, v);
			char buf[128];
			return iapo_fail(IAPO_ERR_ARG, "%s: expected %s, found '%s'", where,
					 choices_text(d->choices, buf, sizeof buf), v);
		}
		if (store_string(t, o, (char **)field, v)) return iapo_fail(IAPO_ERR_NOMEM, "%s: out of memory", where);
		break;
	case IAPO_OPT_FLAG:
		if (!v || !strcmp(v, "1") || !strcmp(v, "true"))
			*(int *)field = 1;
		else if (!strcmp(v, "0") || !strcmp(v, "false"))
			*(int *)field = 0;
		else
			return iapo_fail(IAPO_ERR_ARG, "%s: expected true or false, found '%s'", where, v);
		break;
	case IAPO_OPT_INT: {
		if (!v) return iapo_fail(IAPO_ERR_ARG, "%s: expected a value", where);
		char *end;
		errno = 0;
		long long x = strtoll(v, &end, 10);
		if (errno || end == v || *end || (double)x < d->lo || (double)x > d->hi)
			return iapo_fail(IAPO_ERR_ARG, "%s: expected an integer in [%.0f, %.0f], found '%s'", where, d->lo,
					 d->hi, v);
		*(long *)field = (long)x;
		break;
	}
	case IAPO_OPT_NUM: {
		if (!v) return iapo_fail(IAPO_ERR_ARG, "%s: expected a value", where);
		char *end;
		errno = 0;
		double x = strtod(v, &end);
		if (errno || end == v || *end || !isfinite(x) || x < d->lo || x > d->hi)
			return iapo_fail(IAPO_ERR_ARG, "%s: expected a number in [%g, %g], found '%s'", where, d->lo, d->hi,
					 v);
		*(double *)field = x;
		break;
	}
	}
	given_of(t, o)[i] = 1;
	return IAPO_OK;
}

iapo_status iapo_optable_default(const iapo_optable *t, void *o)
{
	memset(o, 0, t->size);
	for (size_t i = 0; i < t->n; i++) {
		const iapo_opt_def *d = &t->opts[i];
		if (!d->dflt) continue;
		if (is_string(d) && !dup_mode(t)) {
			*(const char **)field_at(o, d) = d->dflt; /* static storage: borrowed */
			continue;
		}
		iapo_status st = set_text(t, o, (int)i, d->dflt, d->name);
		assert(st == IAPO_OK || st == IAPO_ERR_NOMEM); /* a table's default is in its range */
		if (st != IAPO_OK) {
			iapo_optable_free(t, o);
			return st;
		}
		given_of(t, o)[i] = 0;
	}
	return IAPO_OK;
}

void iapo_optable_free(const iapo_optable *t, void *o)
{
	if (!o) return;
	if (!dup_mode(t)) {
		owned_str **head = owned_head(t, o);
		for (owned_str *b = *head, *next; b; b = next) {
			next = b->next;
			iapo_free(b);
		}
		*head = NULL;
		return;
	}
	for (size_t i = 0; i < t->n; i++) {
		if (!is_string(&t->opts[i])) continue;
		char **f = field_at(o, &t->opts[i]);
		iapo_free(*f);
		*f = NULL;
	}
}

iapo_status iapo_optable_copy(const iapo_optable *t, void *dst, const void *src)
{
	assert(dup_mode(t));
	memcpy(dst, src, t->size);
	for (size_t i = 0; i < t->n; i++) {
		if (!is_string(&t->opts[i])) continue;
		char **f = field_at(dst, &t->opts[i]);
		if (*f && !(*f = iapo_strdup(*f))) {
			for (size_t j = i + 1; j < t->n; j++)
				if (is_string(&t->opts[j])) *(char **)field_at(dst, &t->opts[j]) = NULL;
			iapo_optable_free(t, dst);
			return iapo_fail(IAPO_ERR_NOMEM, "options: out of memory");
		}
	}
	return IAPO_OK;
}

iapo_status iapo_optable_set(const iapo_optable *t, void *o, const char *name, const char *value)
{
	int i = iapo_optable_find(t, name);
	char where[96];
	snprintf(where, sizeof where, "--%s", name);
	if (i < 0) {
		if (t->set_names_help)
			return iapo_fail(IAPO_ERR_ARG, "unknown option '--%s' (see 'iapo %s --help')", name, t->cmd);
		return iapo_fail(IAPO_ERR_ARG, "unknown option '--%s'", name);
	}
	return set_text(t, o, i, value, where);
}

/* A number node, or a raw one holding a number (what to_json writes). */
static int raw_number(const cJSON *m, double *x)
{
	if (cJSON_IsNumber(m)) {
		*x = m->valuedouble;
		return 1;
	}
	if (!cJSON_IsRaw(m) || !m->valuestring) return 0;
	char *end;
	*x = strtod(m->valuestring, &end);
	return end != m->valuestring && !*end && isfinite(*x);
}

static iapo_status apply_json(const iapo_optable *t, void *o, const cJSON *obj, const char *file)
{
	for (const cJSON *m = obj->child; m; m = m->next) {
		int i = iapo_optable_find(t, m->string ? m->string : "");
		char where[512];
		snprintf(where, sizeof where, "%s: key '%s'", file, m->string ? m->string : "");
		if (i < 0) return iapo_fail(IAPO_ERR_ARG, "%s: unknown option (see 'iapo %s --help')", where, t->cmd);
		const iapo_opt_def *d = &t->opts[i];
		char buf[64];
		const char *text;
		if (cJSON_IsNull(m)) {
			if (d->type != IAPO_OPT_STR) return iapo_fail(IAPO_ERR_ARG, "%s: expected a value, found null", where);
			char **f = field_at(o, d);
			if (dup_mode(t)) iapo_free(*f);
			*f = NULL;
			given_of(t, o)[i] = 1;
			continue;
		}
		switch (d->type) {
		case IAPO_OPT_STR:
		case IAPO_OPT_ENUM:
			if (!cJSON_IsString(m))
				return iapo_fail(IAPO_ERR_ARG, "%s: expected a string, found %s", where, iapo_json_type_name(m));
			text = m->valuestring;
			break;
		case IAPO_OPT_FLAG:
			if (!cJSON_IsBool(m))
				return iapo_fail(IAPO_ERR_ARG, "%s: expected true or false, found %s", where,
						 iapo_json_type_name(m));
			text = cJSON_IsTrue(m) ? "1" : "0";
			break;
		case IAPO_OPT_INT:
		default: {
			double x;
			if (!raw_number(m, &x))
				return iapo_fail(IAPO_ERR_ARG, "%s: expected %s, found %s", where,
						 d->type == IAPO_OPT_INT ? "an integer" : "a number", iapo_json_type_name(m));
			if (d->type == IAPO_OPT_INT && (x != floor(x) || fabs(x) > 9.1e15))
				return iapo_fail(IAPO_ERR_ARG, "%s: expected an integer, found %g", where, x);
			snprintf(buf, sizeof buf, d->type == IAPO_OPT_INT ? "%.0f" : "%.17g", x);
			text = buf;
			break;
		}
		}
		IAPO_TRY(set_text(t, o, i, text, where));
	}
	return IAPO_OK;
}

/* All or nothing: applied to a copy that replaces *o only on success. A
 * list-mode copy shares o's list and pushes its new strings in front of it,
 * so a failure frees just those. */
iapo_status iapo_optable_apply_json(const iapo_optable *t, void *o, const cJSON *obj, const char *file)
{
	if (!cJSON_IsObject(obj))
		return iapo_fail(IAPO_ERR_ARG, "%s: expected a JSON object of options, found %s", file,
				 iapo_json_type_name(obj));
	IAPO_TRY(iapo_json_unique_keys(obj, file) == IAPO_OK ? IAPO_OK : IAPO_ERR_ARG);
	void *c = iapo_malloc(t->size);
	if (!c) return iapo_fail(IAPO_ERR_NOMEM, "%s: out of memory", file);
	iapo_status st;
	if (dup_mode(t)) {
		st = iapo_optable_copy(t, c, o);
		if (st != IAPO_OK) {
			iapo_free(c);
			return st;
		}
	} else {
		memcpy(c, o, t->size);
	}
	st = apply_json(t, c, obj, file);
	if (st == IAPO_OK) {
		if (dup_mode(t)) iapo_optable_free(t, o);
		memcpy(o, c, t->size);
	} else if (dup_mode(t)) {
		iapo_optable_free(t, c);
	} else {
		owned_str *keep = *owned_head(t, o);
		for (owned_str *b = *owned_head(t, c), *next; b != keep; b = next) {
			next = b->next;
			iapo_free(b);
		}
	}
	iapo_free(c);
	return st;
}

iapo_status iapo_optable_load(const iapo_optable *t, void *o, const char *path)
{
	cJSON *root;
	IAPO_TRY(iapo_json_load(path, (size_t)16 << 20, &root));
	iapo_status st = iapo_optable_apply_json(t, o, root, path);
	cJSON_Delete(root);
	return st;
}

iapo_status iapo_optable_from_args(const iapo_optable *t, void *o, int argc, char **argv, int *help)
{
	*help = 0;
	const char *config = NULL, *out = NULL;
	int resume = 0, overwrite = 0;
	/* First pass: what decides the base (help, --config, --resume, --out),
	 * and the shape of the line (every option known, values present). */
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			*help = 1;
			return IAPO_OK;
		}
		if (strncmp(a, "--", 2) || !a[2]) return iapo_fail(IAPO_ERR_ARG, "unexpected argument '%s'", a);
		const char *name = a + 2;
		if (!strcmp(name, "config")) {
			if (i + 1 >= argc) return iapo_fail(IAPO_ERR_ARG, "option --config needs a value");
			config = argv[++i];
			continue;
		}
		int flag = iapo_optable_is_flag(t, name);
		if (flag < 0) return iapo_fail(IAPO_ERR_ARG, "unknown option '%s'", a);
		if (!strcmp(name, "resume")) resume = 1;
		if (!strcmp(name, "overwrite")) overwrite = 1;
		if (flag) continue;
		if (i + 1 >= argc) return iapo_fail(IAPO_ERR_ARG, "option %s needs a value", a);
		if (!strcmp(name, "out")) out = argv[i + 1];
		i++;
	}
	if (t->early_conflict && resume && overwrite)
		return iapo_fail(IAPO_ERR_ARG, "--resume and --overwrite contradict each other");
	if (resume) {
		if (!out) return iapo_fail(IAPO_ERR_ARG, "--resume needs --out RUN_DIR (the run to continue)");
		if (!iapo_fs_is_dir(out))
			return iapo_fail(IAPO_ERR_IO, "%s: --resume: expected an existing run directory, found %s", out,
					 iapo_fs_exists(out) ? "a file" : "nothing");
		char path[PATHN];
		IAPO_TRY(iapo_fs_join(path, sizeof path, out, "config.json"));
		if (iapo_fs_exists(path)) IAPO_TRY(iapo_optable_load(t, o, path));
	}
	if (config) IAPO_TRY(iapo_optable_load(t, o, config));
	for (int i = 1; i < argc; i++) {
		const char *name = argv[i] + 2;
		if (!strcmp(name, "config")) {
			i++;
			continue;
		}
		if (iapo_optable_is_flag(t, name)) {
			IAPO_TRY(iapo_optable_set(t, o, name, NULL));
		} else {
			IAPO_TRY(iapo_optable_set(t, o, name, argv[i + 1]));
			i++;
		}
	}
	return IAPO_OK;
}

cJSON *iapo_optable_to_json(const iapo_optable *t, const void *o)
{
	iapo_json_init();
	cJSON *root = cJSON_CreateObject();
	int oom = !root;
	for (size_t i = 0; i < t->n && !oom; i++) {
		const iapo_opt_def *d = &t->opts[i];
		if (!strcmp(d->name, "resume") || !strcmp(d->name, "overwrite")) continue;
		const void *f = (const char *)o + d->off;
		cJSON *v;
		switch (d->type) {
		case IAPO_OPT_STR:
		case IAPO_OPT_ENUM:
			v = *(const char *const *)f ? cJSON_CreateString(*(const char *const *)f) : cJSON_CreateNull();
			break;
		case IAPO_OPT_FLAG:
			v = cJSON_CreateBool(*(const int *)f);
			break;
		case IAPO_OPT_INT:
			v = cJSON_CreateNumber((double)*(const long *)f);
			break;
		default:
			v = iapo_json_double(*(const double *)f);
			break;
		}
		iapo_json_add(root, d->name, v, &oom);
	}
	if (oom) {
		cJSON_Delete(root);
		return NULL;
	}
	return root;
}

void iapo_optable_help(const iapo_optable *t, FILE *f)
{
	for (size_t i = 0; i < t->n; i++) {
		const iapo_opt_def *d = &t->opts[i];
		if (d->group) fprintf(f, "\n%s:\n", d->group);
		char head[64];
		snprintf(head, sizeof head, "--%s%s%s", d->name, d->arg ? " " : "", d->arg ? d->arg : "");
		fprintf(f, "  %-*s %s", t->help_width, head, d->help);
		if (d->type == IAPO_OPT_ENUM)
			fprintf(f, " (%s; default %s)", d->choices, d->dflt);
		else if (d->dflt && d->type != IAPO_OPT_FLAG)
			fprintf(f, " (default %s)", d->dflt);
		fputc('\n', f);
	}
}
