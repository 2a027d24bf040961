/*
 * json.h — JSON files over cJSON: read a file with a size cap and parse it
 * with an error that names the file, line and column; typed getters that name
 * the field in their messages ("<file>: <field>: expected X, found Y"); a few
 * builders for writing numbers the way Python's json module does.
 * cJSON allocates through iapo_malloc (hooks installed on first use), so
 * allocation counting and failure injection cover it too.
 * Not here: streaming or JSONL (datasets read lines and parse each).
 */
#ifndef IAPO_IO_JSON_H
#define IAPO_IO_JSON_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "iapo.h"

/* Routes cJSON's allocations through core/mem.h. Idempotent, thread-safe. */
void iapo_json_init(void);
/* Parses text (len bytes, need not be NUL-terminated); `file` names the
 * source in messages. *root is owned by the caller (cJSON_Delete). */
iapo_status iapo_json_parse(const char *text, size_t len, const char *file, cJSON **root);
/* Reads and parses a file of at most max_bytes. */
iapo_status iapo_json_load(const char *path, size_t max_bytes, cJSON **root);
/* The same for name relative to dirfd (see iapo_fs_read_file_at). */
iapo_status iapo_json_load_at(int dirfd, const char *name, const char *shown, size_t max_bytes, cJSON **root);

/* Short name of a value's JSON type, e.g. "string", "number", "null". */
const char *iapo_json_type_name(const cJSON *v);

/* Getters. `obj` must be an object; keys are case-sensitive. The req_* forms
 * fail (FORMAT) when the key is missing; the opt_* forms keep *out = dflt when
 * the key is missing or null. A present value of the wrong type, a
 * non-integral or out-of-range integer is a FORMAT error naming file and key. */
iapo_status iapo_json_req_int(const cJSON *obj, const char *key, const char *file, long lo, long hi, long *out);
iapo_status iapo_json_opt_int(const cJSON *obj, const char *key, const char *file, long lo, long hi, long dflt,
			      long *out);
iapo_status iapo_json_req_num(const cJSON *obj, const char *key, const char *file, double *out);
iapo_status iapo_json_opt_num(const cJSON *obj, const char *key, const char *file, double dflt, double *out);
iapo_status iapo_json_opt_bool(const cJSON *obj, const char *key, const char *file, int dflt, int *out);
/* *out points into obj (NULL when absent and not required). */
iapo_status iapo_json_req_str(const cJSON *obj, const char *key, const char *file, const char **out);
iapo_status iapo_json_opt_str(const cJSON *obj, const char *key, const char *file, const char **out);
/* FORMAT error naming the key when an object has two members with the same
 * key (checked at this level and in nested objects). */
iapo_status iapo_json_unique_keys(const cJSON *obj, const char *file);
/* Checks that a value is an integer in [lo, hi]; `what` names it. */
iapo_status iapo_json_as_int(const cJSON *v, const char *file, const char *what, long lo, long hi, long *out);

/* A number node printed with the fewest digits that read back as the same
 * float (not double), always with a '.' or exponent, e.g. 1e-06, 10000.0:
 * what Python's json writes for the same value. NULL on allocation failure. */
cJSON *iapo_json_float(float v);
/* The same for a double: the fewest digits that read back as v (a raw
 * number node; null for inf/nan). NULL on allocation failure. */
cJSON *iapo_json_double(double v);
/* Adds v to obj under key; on a NULL v or a failed add, deletes v and sets
 * *oom (for builders that check once at the end). */
void iapo_json_add(cJSON *obj, const char *key, cJSON *v, int *oom);
/* The end of such a builder: obj, or NULL (obj deleted) when *oom was set. */
cJSON *iapo_json_built(cJSON *obj, int oom);
/* obj's member at a dotted path ("reward_model.ground_truth"); a key that
 * itself holds the dots is tried first. NULL if absent. */
const cJSON *iapo_json_get_path(const cJSON *obj, const char *path);

#endif
