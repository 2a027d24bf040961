/*
 * json.c — cJSON wrappers with messages that name the file and field.
 */
#include "io/json.h"

#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "core/status.h"
#include "io/fs.h"

static pthread_once_t hooks_once = PTHREAD_ONCE_INIT;
/* Set when an allocation by cJSON failed on this thread: cJSON reports that
 * as a parse error at some position, which would blame the file. */
static _Thread_local int json_oom;

static void *json_malloc(size_t n)
{
	void *p = iapo_malloc(n);
	if (!p) json_oom = 1;
	return p;
}

static void install_hooks(void)
{
	cJSON_Hooks h = {json_malloc, iapo_free};
	cJSON_InitHooks(&h);
}

void iapo_json_init(void) { pthread_once(&hooks_once, install_hooks); }

const char *iapo_json_type_name(const cJSON *v)
{
	if (!v) return "nothing";
	if (cJSON_IsNull(v)) return "null";
	if (cJSON_IsBool(v)) return "a boolean";
	if (cJSON_IsNumber(v)) return "a number";
	if (cJSON_IsString(v)) return "a string";
	if (cJSON_IsArray(v)) return "an array";
	if (cJSON_IsObject(v)) return "an object";
	return "an invalid value";
}

iapo_status iapo_json_parse(const char *text, size_t len, const char *file, cJSON **root)
{
	iapo_json_init();
	*root = NULL;
	const char *end = NULL;
	int trailing = 0;
	json_oom = 0;
	cJSON *r = cJSON_ParseWithLengthOpts(text, len, &end, 0);
	if (json_oom) {
		cJSON_Delete(r);
		return iapo_fail(IAPO_ERR_NOMEM, "%s: out of memory while parsing JSON (%zu bytes)", file, len);
	}
	if (r) {
		/* cJSON stops after the first value; anything but whitespace after
		 * it means the file is not one JSON document. */
		size_t pos = (size_t)(end - text);
		while (pos < len && (text[pos] == ' ' || text[pos] == '\n' || text[pos] == '\r' || text[pos] == '\t'))
			pos++;
		if (pos >= len || text[pos] == '\0') {
			*root = r;
			return IAPO_OK;
		}
		cJSON_Delete(r);
		end = text + pos;
		trailing = 1;
	}
	if (len == 0) return iapo_fail(IAPO_ERR_FORMAT, "%s: expected JSON, found an empty file", file);
	if (!end || end < text || end > text + len) end = text;
	size_t line = 1, col = 1;
	for (const char *p = text; p < end; p++) {
		if (*p == '\n') {
			line++;
			col = 1;
		} else {
			col++;
		}
	}
	char near[24] = "";
	size_t k = 0;
	for (const char *p = end; p < text + len && k < 16 && *p; p++) near[k++] = (*p >= 32 && *p < 127) ? *p : ' ';
	near[k] = '\0';
	if (!k) return iapo_fail(IAPO_ERR_FORMAT, "%s: line %zu, column %zu: expected valid JSON, found the end of the file",
				 file, line, col);
	return iapo_fail(IAPO_ERR_FORMAT, "%s: line %zu, column %zu: expected %s, found '%s'", file, line, col,
			 trailing ? "the end of the JSON text" : "valid JSON", near);
}

iapo_status iapo_json_load(const char *path, size_t max_bytes, cJSON **root)
{
	return iapo_json_load_at(AT_FDCWD, path, path, max_bytes, root);
}

iapo_status iapo_json_load_at(int dirfd, const char *name, const char *shown, size_t max_bytes, cJSON **root)
{
	char *text;
	size_t len;
	*root = NULL;
	IAPO_TRY(iapo_fs_read_file_at(dirfd, name, shown, max_bytes, &text, &len));
	iapo_status s = iapo_json_parse(text, len, shown, root);
	iapo_free(text);
	return s;
}

static int cmp_key(const void *a, const void *b)
{
	return strcmp((*(const cJSON *const *)a)->string, (*(const cJSON *const *)b)->string);
}

iapo_status iapo_json_unique_keys(const cJSON *obj, const char *file)
{
	int n = 0;
	for (const cJSON *c = obj ? obj->child : NULL; c; c = c->next) n++;
	if (!cJSON_IsObject(obj) || n == 0) return IAPO_OK;
	const cJSON **keys = iapo_malloc(sizeof *keys * (size_t)n);
	if (!keys) return iapo_fail(IAPO_ERR_NOMEM, "%s: out of memory", file);
	int i = 0;
	for (const cJSON *c = obj->child; c; c = c->next) keys[i++] = c;
	qsort(keys, (size_t)n, sizeof *keys, cmp_key);
	iapo_status s = IAPO_OK;
	for (i = 1; i < n && s == IAPO_OK; i++)
		if (!strcmp(keys[i]->string, keys[i - 1]->string))
			s = iapo_fail(IAPO_ERR_FORMAT, "%s: %.200s: expected one value, found the key twice", file, keys[i]->string);
	iapo_free(keys);
	for (const cJSON *c = obj->child; c && s == IAPO_OK; c = c->next)
		if (cJSON_IsObject(c)) s = iapo_json_unique_keys(c, file);
	return s;
}

static const cJSON *field(const cJSON *obj, const char *key) { return cJSON_GetObjectItemCaseSensitive(obj, key); }

iapo_status iapo_json_as_int(const cJSON *v, const char *file, const char *what, long lo, long hi, long *out)
{
	if (!cJSON_IsNumber(v))
		return iapo_fail(IAPO_ERR_FORMAT, "%s: %s: expected an integer, found %s", file, what, iapo_json_type_name(v));
	double d = v->valuedouble;
	/* Range checked on the integer: (double)hi can round above hi (LONG_MAX
	 * becomes 2^63, which no long holds, and converting it is undefined). */
	int whole = d == floor(d) && d >= -0x1p63 && d < 0x1p63;
	long n = whole ? (long)d : 0;
	if (!whole || n < lo || n > hi)
		return iapo_fail(IAPO_ERR_FORMAT, "%s: %s: expected an integer in [%ld, %ld], found %.17g", file, what, lo, hi,
				 d);
	*out = n;
	return IAPO_OK;
}

iapo_status iapo_json_req_int(const cJSON *obj, const char *key, const char *file, long lo, long hi, long *out)
{
	const cJSON *v = field(obj, key);
	if (!v) return iapo_fail(IAPO_ERR_FORMAT, "%s: %s: expected an integer, found the field missing", file, key);
	return iapo_json_as_int(v, file, key, lo, hi, out);
}

iapo_status iapo_json_opt_int(const cJSON *obj, const char *key, const char *file, long lo, long hi, long dflt,
			      long *out)
{
	const cJSON *v = field(obj, key);
	if (!v || cJSON_IsNull(v)) {
		*out = dflt;
		return IAPO_OK;
	}
	return iapo_json_as_int(v, file, key, lo, hi, out);
}

static iapo_status as_num(const cJSON *v, const char *file, const char *key, double *out)
{
	if (!cJSON_IsNumber(v))
		return iapo_fail(IAPO_ERR_FORMAT, "%s: %s: expected a number, found %s", file, key, iapo_json_type_name(v));
	if (!isfinite(v->valuedouble))
		return iapo_fail(IAPO_ERR_FORMAT, "%s: %s: expected a finite number, found %g", file, key, v->valuedouble);
	*out = v->valuedouble;
	return IAPO_OK;
}

iapo_status iapo_json_req_num(const cJSON *obj, const char *key, const char *file, double *out)
{
	const cJSON *v = field(obj, key);
	if (!v) return iapo_fail(IAPO_ERR_FORMAT, "%s: %s: expected a number, found the field missing", file, key);
	return as_num(v, file, key, out);
}

iapo_status iapo_json_opt_num(const cJSON *obj, const char *key, const char *file, double dflt, double *out)
{
	const cJSON *v = field(obj, key);
	if (!v || cJSON_IsNull(v)) {
		*out = dflt;
		return IAPO_OK;
	}
	return as_num(v, file, key, out);
}

iapo_status iapo_json_opt_bool(const cJSON *obj, const char *key, const char *file, int dflt, int *out)
{
	const cJSON *v = field(obj, key);
	if (!v || cJSON_IsNull(v)) {
		*out = dflt;
		return IAPO_OK;
	}
	if (!cJSON_IsBool(v))
		return iapo_fail(IAPO_ERR_FORMAT, "%s: %s: expected true or false, found %s", file, key,
				 iapo_json_type_name(v));
	*out = cJSON_IsTrue(v);
	return IAPO_OK;
}

iapo_status iapo_json_req_str(const cJSON *obj, const char *key, const char *file, const char **out)
{
	const cJSON *v = field(obj, key);
	if (!v) return iapo_fail(IAPO_ERR_FORMAT, "%s: %s: expected a string, found the field missing", file, key);
	if (!cJSON_IsString(v))
		return iapo_fail(IAPO_ERR_FORMAT, "%s: %s: expected a string, found %s", file, key, iapo_json_type_name(v));
	*out = v->valuestring;
	return IAPO_OK;
}

iapo_status iapo_json_opt_str(const cJSON *obj, const char *key, const char *file, const char **out)
{
	const cJSON *v = field(obj, key);
	*out = NULL;
	if (!v || cJSON_IsNull(v)) return IAPO_OK;
	return iapo_json_req_str(obj, key, file, out);
}

cJSON *iapo_json_float(float v)
{
	char buf[48];
	if (!isfinite(v)) return cJSON_CreateNull(); /* JSON has no inf/nan */
	if (v == floorf(v) && fabsf(v) < 1e15f) {
		snprintf(buf, sizeof buf, "%.1f", (double)v);
	} else {
		for (int prec = 1; prec <= 9; prec++) {
			snprintf(buf, sizeof buf, "%.*g", prec, (double)v);
			if (strtof(buf, NULL) == v) break;
		}
	}
	if (!strpbrk(buf, ".eEn")) strcat(buf, ".0");
	iapo_json_init();
	return cJSON_CreateRaw(buf);
}

cJSON *iapo_json_double(double v)
{
	char buf[40];
	if (!isfinite(v)) return cJSON_CreateNull();
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(buf, sizeof buf, "%.*g", prec, v);
		if (strtod(buf, NULL) == v) break;
	}
	if (!strpbrk(buf, ".eEn")) strcat(buf, ".0");
	iapo_json_init();
	return cJSON_CreateRaw(buf);
}

void iapo_json_add(cJSON *obj, const char *key, cJSON *v, int *oom)
{
	if (!v || !cJSON_AddItemToObject(obj, key, v)) {
		cJSON_Delete(v);
		*oom = 1;
	}
}

cJSON *iapo_json_built(cJSON *obj, int oom)
{
	if (!oom) return obj;
	cJSON_Delete(obj);
	return NULL;
}

const cJSON *iapo_json_get_path(const cJSON *obj, const char *path)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, path);
	if (v) return v;
	const char *p = path;
	v = obj;
	while (v && *p) {
		const char *dot = strchr(p, '.');
		size_t n = dot ? (size_t)(dot - p) : strlen(p);
		char key[256];
		if (n >= sizeof key || !cJSON_IsObject(v)) return NULL;
		memcpy(key, p, n);
		key[n] = '\0';
		v = cJSON_GetObjectItemCaseSensitive(v, key);
		p += n + (dot != NULL);
	}
	return v;
}
