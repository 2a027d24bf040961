/*
 * dataset.c — JSONL prompt/label rows (GSM8K, MATH, DAPO-Math-17k, generic),
 * the seeded train/eval split, and the reference's prompt strings.
 * Lines are read in blocks so a large file (the duplicated DAPO parquet
 * exported to JSONL is ~1 GB) is never held whole; each line is parsed with
 * cJSON and checked field by field, so an error can say which line, which
 * field, what was expected and what was found. Labels of MATH solutions come
 * from the verifier's own \boxed extraction (reward.h), so a label and a
 * completion are read by the same rules.
 * Not here: tokenisation, chat templates, batching.
 */
#include "rl/dataset.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "core/rng.h"
#include "core/status.h"
#include "core/text.h"
#include "io/json.h"
#include "rl/reward.h"

/* ---- the reference's prompt --------------------------------------------- */

#define R1_PROMPT \
	"A conversation between User and Assistant. The user asks a question, and the Assistant solves it.\n" \
	"    The assistant first thinks about the reasoning process in the mind and then provides the user\n" \
	"    with the answer. The reasoning process and answer are enclosed within <think> and\n" \
	"    <answer> tags, respectively, i.e., <think> reasoning process here </think>\n" \
	"    <answer> answer here </answer>."
#define TASK_INTEGER "The answer must be a single integer."

const char IAPO_R1_SYSTEM_PROMPT[] = R1_PROMPT;
const char IAPO_ONESHOT_USER[] = "What is 2+2?";
const char IAPO_ONESHOT_ASSISTANT[] =
	"<think>To calculate 2+2, we simply add the numbers together: 2 + 2 = 4.</think>\n<answer>4</answer>";

static const char SYSTEM_INTEGER[] = R1_PROMPT "\n" TASK_INTEGER;
static const char SYSTEM_NO_TASK[] = R1_PROMPT "\n";

/* DAPO-Math-17k wraps every problem in this instruction (iapo-reference §2.1). */
static const char DAPO_PREFIX[] = "Solve the following math problem step by step. The last line of your response "
				  "should be of the form Answer: $Answer (without quotes) where $Answer is the "
				  "answer to the problem.\n\n";
static const char DAPO_SUFFIX[] = "\n\nRemember to put your answer on its own line after \"Answer:\".";

const char *iapo_prompt_task(iapo_data_format f)
{
	return f == IAPO_DATA_GSM8K || f == IAPO_DATA_DAPO ? TASK_INTEGER : "";
}

const char *iapo_prompt_system(iapo_data_format f)
{
	return f == IAPO_DATA_GSM8K || f == IAPO_DATA_DAPO ? SYSTEM_INTEGER : SYSTEM_NO_TASK;
}

int iapo_prompt_messages(iapo_data_format f, const char *system, const char *problem, int one_shot,
			 iapo_prompt_msg msgs[4])
{
	int k = 0;
	msgs[k++] = (iapo_prompt_msg){"system", system ? system : iapo_prompt_system(f)};
	if (one_shot) {
		msgs[k++] = (iapo_prompt_msg){"user", IAPO_ONESHOT_USER};
		msgs[k++] = (iapo_prompt_msg){"assistant", IAPO_ONESHOT_ASSISTANT};
	}
	msgs[k++] = (iapo_prompt_msg){"user", problem ? problem : ""};
	return k;
}

static const char *const FORMAT_NAMES[] = {"auto", "gsm8k", "math", "dapo", "generic"};

const char *iapo_data_format_name(iapo_data_format f)
{
	return (unsigned)f < sizeof FORMAT_NAMES / sizeof *FORMAT_NAMES ? FORMAT_NAMES[f] : "?";
}

iapo_status iapo_data_format_parse(const char *name, iapo_data_format *f)
{
	for (unsigned k = 0; name && k < sizeof FORMAT_NAMES / sizeof *FORMAT_NAMES; k++)
		if (strcmp(name, FORMAT_NAMES[k]) == 0) {
			*f = (iapo_data_format)k;
			return IAPO_OK;
		}
	return iapo_fail(IAPO_ERR_ARG, "dataset format: expected auto, gsm8k, math, dapo or generic, found \"%s\"",
			 name ? name : "(null)");
}

/* ---- line reader -------------------------------------------------------- */

typedef struct {
	FILE *f;
	const char *path;
	char blk[1 << 16];
	size_t pos, end;
	iapo_text line; /* the current line, without its '\n'; reused, so it grows only with longer lines */
} reader;

static iapo_status line_append(reader *r, const char *p, size_t n)
{
	if (iapo_text_put(&r->line, p, n) != IAPO_OK)
		return iapo_fail(IAPO_ERR_NOMEM, "%s: out of memory for a line of %zu bytes", r->path, r->line.len + n);
	return IAPO_OK;
}

/* Reads the next line into r->line; *got = 0 at the end of the file. */
static iapo_status read_line(reader *r, int *got)
{
	r->line.len = 0;
	*got = 0;
	IAPO_TRY(line_append(r, "", 0));
	for (;;) {
		if (r->pos == r->end) {
			r->pos = 0;
			r->end = fread(r->blk, 1, sizeof r->blk, r->f);
			if (r->end == 0) {
				if (ferror(r->f))
					return iapo_fail(IAPO_ERR_IO, "%s: read failed: %s", r->path, strerror(errno));
				*got = r->line.len > 0;
				return IAPO_OK;
			}
		}
		char *nl = memchr(r->blk + r->pos, '\n', r->end - r->pos);
		size_t n = nl ? (size_t)(nl - (r->blk + r->pos)) : r->end - r->pos;
		IAPO_TRY(line_append(r, r->blk + r->pos, n));
		r->pos += n;
		if (nl) {
			r->pos++;
			*got = 1;
			return IAPO_OK;
		}
	}
}

/* ---- row parsing -------------------------------------------------------- */

/* A short printable excerpt of s for messages: quoted, control bytes and
 * non-ASCII escaped, "..." when cut. */
static const char *excerpt(const char *s, size_t n, char *buf, size_t cap)
{
	size_t w = 0;
	buf[w++] = '"';
	size_t i = 0;
	for (; i < n && w + 8 < cap; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\n')
			w += (size_t)snprintf(buf + w, cap - w, "\\n");
		else if (c < 32 || c >= 127)
			w += (size_t)snprintf(buf + w, cap - w, "\\x%02x", c);
		else
			buf[w++] = (char)c;
	}
	if (i < n) w += (size_t)snprintf(buf + w, cap - w, "...");
	if (w + 2 <= cap) buf[w++] = '"';
	buf[w < cap ? w : cap - 1] = '\0';
	return buf;
}

static const char *json_kind(const cJSON *v)
{
	if (!v) return "nothing";
	if (cJSON_IsString(v)) return "a string";
	if (cJSON_IsNumber(v)) return "a number";
	if (cJSON_IsBool(v)) return "a boolean";
	if (cJSON_IsNull(v)) return "null";
	if (cJSON_IsArray(v)) return "an array";
	if (cJSON_IsObject(v)) return "an object";
	return "an invalid value";
}

/* "fields "a", "b"" of an object, for messages. */
static const char *field_list(const cJSON *obj, char *buf, size_t cap)
{
	size_t w = (size_t)snprintf(buf, cap, "fields");
	int k = 0;
	for (const cJSON *c = obj ? obj->child : NULL; c && w + 8 < cap; c = c->next, k++)
		w += (size_t)snprintf(buf + w, cap - w, "%s \"%s\"", k ? "," : "", c->string ? c->string : "");
	if (k == 0) snprintf(buf, cap, "no fields");
	return buf;
}

typedef struct {
	const char *path;
	size_t line;
	const cJSON *row;
} rowctx;

static iapo_status missing(const rowctx *c, const char *field, const char *what)
{
	char fl[256];
	return iapo_fail(IAPO_ERR_FORMAT, "%s: line %zu: expected field \"%s\" (%s), found %s", c->path, c->line,
			 field, what, field_list(c->row, fl, sizeof fl));
}

static iapo_status wrong_type(const rowctx *c, const char *field, const char *what, const cJSON *v)
{
	return iapo_fail(IAPO_ERR_FORMAT, "%s: line %zu: expected field \"%s\" to be %s, found %s", c->path, c->line,
			 field, what, json_kind(v));
}

static int blank(const char *s)
{
	for (; *s; s++)
		if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r') return 0;
	return 1;
}

/* Text of a string or number field, copied (caller frees). A number is
 * written in its shortest exact form: 42, 0.5. */
static iapo_status text_field(const rowctx *c, const char *field, char **out)
{
	const cJSON *v = iapo_json_get_path(c->row, field);
	if (!v) return missing(c, field, "a string");
	if (cJSON_IsString(v) && v->valuestring) {
		*out = iapo_strdup(v->valuestring);
	} else if (cJSON_IsNumber(v)) {
		char num[64];
		double d = v->valuedouble;
		if (d == floor(d) && fabs(d) < 9007199254740992.0)
			snprintf(num, sizeof num, "%.0f", d);
		else
			for (int prec = 15; prec <= 17; prec++) {
				snprintf(num, sizeof num, "%.*g", prec, d);
				if (strtod(num, NULL) == d) break;
			}
		*out = iapo_strdup(num);
	} else {
		return wrong_type(c, field, "a string", v);
	}
	if (!*out) return iapo_fail(IAPO_ERR_NOMEM, "%s: line %zu: out of memory", c->path, c->line);
	return IAPO_OK;
}

/* The prompt: a string, or a list of chat messages whose first "user" turn
 * is the problem (the first message if none has a role). */
static iapo_status prompt_field(const rowctx *c, const char *field, char **out)
{
	const cJSON *v = iapo_json_get_path(c->row, field);
	if (!v) return missing(c, field, "a string or a list of messages");
	if (cJSON_IsArray(v)) {
		const cJSON *pick = NULL;
		for (const cJSON *m = v->child; m; m = m->next) {
			const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
			if (cJSON_IsString(role) && strcmp(role->valuestring, "user") == 0) {
				pick = m;
				break;
			}
		}
		if (!pick) pick = v->child;
		const cJSON *content = cJSON_GetObjectItemCaseSensitive(pick, "content");
		if (!cJSON_IsObject(pick) || !cJSON_IsString(content) || !content->valuestring)
			return iapo_fail(IAPO_ERR_FORMAT,
					 "%s: line %zu: expected field \"%s\" to be a list of messages "
					 "{\"role\": \"user\", \"content\": string}, found %s",
					 c->path, c->line, field,
					 !pick ? "an empty list"
					 : !cJSON_IsObject(pick) ? "a list holding something else"
								  : "a message without a string \"content\"");
		*out = iapo_strdup(content->valuestring);
	} else if (cJSON_IsString(v) && v->valuestring) {
		*out = iapo_strdup(v->valuestring);
	} else {
		return wrong_type(c, field, "a string or a list of messages", v);
	}
	if (!*out) return iapo_fail(IAPO_ERR_NOMEM, "%s: line %zu: out of memory", c->path, c->line);
	return IAPO_OK;
}

static void strip_affix(char *s)
{
	size_t np = sizeof DAPO_PREFIX - 1, ns = sizeof DAPO_SUFFIX - 1, n = strlen(s);
	if (n >= np && memcmp(s, DAPO_PREFIX, np) == 0) {
		memmove(s, s + np, n - np + 1);
		n -= np;
	}
	if (n >= ns && memcmp(s + n - ns, DAPO_SUFFIX, ns) == 0) s[n - ns] = '\0';
}

/* The layout of the first row, from its fields. */
static iapo_status detect(const rowctx *c, const iapo_dataset_opts *o, iapo_data_format *f)
{
	const cJSON *r = c->row;
	if (cJSON_HasObjectItem(r, "question"))
		*f = IAPO_DATA_GSM8K;
	else if (cJSON_HasObjectItem(r, "problem"))
		*f = IAPO_DATA_MATH;
	else if (cJSON_HasObjectItem(r, "prompt") && cJSON_HasObjectItem(r, "reward_model"))
		*f = IAPO_DATA_DAPO;
	else if (cJSON_HasObjectItem(r, "prompt") || (o->prompt_field && o->answer_field))
		*f = IAPO_DATA_GENERIC;
	else {
		char fl[256];
		return iapo_fail(IAPO_ERR_FORMAT,
				 "%s: line %zu: expected the fields of a GSM8K (\"question\", \"answer\"), MATH "
				 "(\"problem\", \"answer\" or \"solution\"), DAPO (\"prompt\", \"reward_model\") or "
				 "generic (\"prompt\", \"answer\") row, found %s",
				 c->path, c->line, field_list(r, fl, sizeof fl));
	}
	return IAPO_OK;
}

/* One row into *ex (both strings allocated, or neither on failure). */
static iapo_status parse_row(const rowctx *c, iapo_data_format f, const iapo_dataset_opts *o, iapo_example *ex)
{
	static const char *const default_prompt[] = {"prompt", "question", "problem", "prompt", "prompt"};
	const char *pf = o->prompt_field ? o->prompt_field : default_prompt[f];
	char *prompt = NULL, *label = NULL;
	iapo_status st;
	char buf[96];

	IAPO_CHECK(st, prompt_field(c, pf, &prompt));
	if (f == IAPO_DATA_DAPO) strip_affix(prompt);
	if (blank(prompt)) {
		st = iapo_fail(IAPO_ERR_FORMAT, "%s: line %zu: expected field \"%s\" to be a non-empty prompt, found %s",
			       c->path, c->line, pf, *prompt ? "only whitespace" : "an empty string");
		goto fail;
	}

	if (f == IAPO_DATA_GSM8K) {
		const char *af = o->answer_field ? o->answer_field : "answer";
		IAPO_CHECK(st, text_field(c, af, &label));
		const char *h = NULL;
		for (const char *p = strstr(label, "####"); p; p = strstr(p + 1, "####")) h = p;
		if (!h) {
			size_t n = strlen(label);
			st = iapo_fail(IAPO_ERR_FORMAT, "%s: line %zu: expected field \"%s\" to end in \"#### N\", found %s",
				       c->path, c->line, af,
				       excerpt(n > 40 ? label + n - 40 : label, n > 40 ? 40 : n, buf, sizeof buf));
			goto fail;
		}
		/* The label is N with its thousands commas removed: "1,000" -> "1000". */
		size_t w = 0;
		for (const char *p = h + 4; *p; p++)
			if (*p != ',') label[w++] = *p;
		label[w] = '\0';
		size_t a = 0;
		while (label[a] == ' ' || label[a] == '\t') a++;
		while (w > a && (label[w - 1] == ' ' || label[w - 1] == '\t' || label[w - 1] == '\n' ||
				 label[w - 1] == '\r'))
			label[--w] = '\0';
		memmove(label, label + a, w - a + 1);
	} else if (f == IAPO_DATA_MATH && !o->answer_field && !cJSON_HasObjectItem(c->row, "answer")) {
		IAPO_CHECK(st, text_field(c, "solution", &label));
		if (!strstr(label, "\\boxed") && !strstr(label, "\\fbox")) {
			st = iapo_fail(IAPO_ERR_FORMAT,
				       "%s: line %zu: expected field \"answer\", or a \"solution\" with \\boxed{...}, "
				       "found a solution without \\boxed",
				       c->path, c->line);
			goto fail;
		}
		/* The verifier's own rules, so label and completion agree. The
		 * answer is never longer than the solution it came from. */
		char *solution = label;
		label = iapo_malloc(strlen(solution) + 1);
		if (label) iapo_answer_extract(solution, label, strlen(solution) + 1);
		iapo_free(solution);
		if (!label) {
			st = iapo_fail(IAPO_ERR_NOMEM, "%s: line %zu: out of memory", c->path, c->line);
			goto fail;
		}
	} else {
		const char *af = o->answer_field ? o->answer_field
			       : f == IAPO_DATA_DAPO  ? "reward_model.ground_truth"
						      : "answer";
		IAPO_CHECK(st, text_field(c, af, &label));
	}
	if (blank(label)) {
		st = iapo_fail(IAPO_ERR_FORMAT, "%s: line %zu: expected a non-empty label, found %s", c->path, c->line,
			       *label ? "only whitespace" : "an empty string");
		goto fail;
	}
	ex->prompt = prompt;
	ex->label = label;
	return IAPO_OK;
fail:
	iapo_free(prompt);
	iapo_free(label);
	return st;
}

/* ---- dedupe ------------------------------------------------------------- */

typedef struct {
	size_t *slot; /* row index + 1; 0 = empty */
	size_t cap;   /* power of two */
} prompt_set;

static uint64_t fnv1a(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
	return h;
}

/* Returns 1 if ex[i]'s prompt was seen (among ex[0..i)), else records it. */
static iapo_status set_insert(prompt_set *set, const iapo_example *ex, size_t i, size_t count, int *seen)
{
	if (2 * (count + 1) > set->cap) {
		size_t cap = set->cap ? 2 * set->cap : 1024;
		size_t *slot = iapo_calloc(cap, sizeof *slot);
		if (!slot) return iapo_fail(IAPO_ERR_NOMEM, "dataset: out of memory for the dedupe table");
		for (size_t k = 0; k < set->cap; k++) {
			if (!set->slot[k]) continue;
			size_t h = (size_t)fnv1a(ex[set->slot[k] - 1].prompt) & (cap - 1);
			while (slot[h]) h = (h + 1) & (cap - 1);
			slot[h] = set->slot[k];
		}
		iapo_free(set->slot);
		set->slot = slot;
		set->cap = cap;
	}
	size_t h = (size_t)fnv1a(ex[i].prompt) & (set->cap - 1);
	for (; set->slot[h]; h = (h + 1) & (set->cap - 1))
		if (strcmp(ex[set->slot[h] - 1].prompt, ex[i].prompt) == 0) {
			*seen = 1;
			return IAPO_OK;
		}
	set->slot[h] = i + 1;
	*seen = 0;
	return IAPO_OK;
}

/* ---- load --------------------------------------------------------------- */

void iapo_dataset_free(iapo_dataset *ds)
{
	if (!ds) return;
	for (size_t i = 0; i < ds->n; i++) {
		iapo_free(ds->ex[i].prompt);
		iapo_free(ds->ex[i].label);
	}
	iapo_free(ds->ex);
	memset(ds, 0, sizeof *ds);
}

iapo_status iapo_dataset_load(const char *path, const iapo_dataset_opts *opts, iapo_dataset *out)
{
	iapo_dataset_opts dflt = {0};
	const iapo_dataset_opts *o = opts ? opts : &dflt;
	iapo_dataset ds = {0};
	size_t cap = 0;
	prompt_set set = {0};
	cJSON *row = NULL;
	iapo_status st = IAPO_OK;
	iapo_data_format f = o->format;
	memset(out, 0, sizeof *out);
	if ((unsigned)f > IAPO_DATA_GENERIC)
		return iapo_fail(IAPO_ERR_ARG, "%s: expected a dataset format, found %d", path, (int)f);

	reader *r = iapo_calloc(1, sizeof *r);
	if (!r) return iapo_fail(IAPO_ERR_NOMEM, "%s: out of memory", path);
	r->path = path;
	r->f = fopen(path, "rb");
	if (!r->f) {
		st = iapo_fail(IAPO_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
		goto fail;
	}

	for (size_t line = 1;; line++) {
		int got;
		IAPO_CHECK(st, read_line(r, &got));
		if (!got) break;
		char *s = r->line.p;
		size_t n = r->line.len;
		if (n && s[n - 1] == '\r') s[--n] = '\0';
		if (line == 1 && n >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0) s += 3, n -= 3; /* a UTF-8 BOM */
		size_t a = 0;
		while (a < n && (s[a] == ' ' || s[a] == '\t')) a++;
		if (a == n) continue; /* blank line */
		char buf[96];
		if (memchr(s, '\0', n)) {
			st = iapo_fail(IAPO_ERR_FORMAT, "%s: line %zu: expected a JSON object, found a NUL byte", path,
				       line);
			goto fail;
		}
		const char *end = NULL;
		row = cJSON_ParseWithLengthOpts(s, n, &end, 0);
		if (!row) {
			size_t at = end && end >= s && end <= s + n ? (size_t)(end - s) : 0;
			st = iapo_fail(IAPO_ERR_FORMAT, "%s: line %zu: expected a JSON object, found invalid JSON at byte %zu: %s",
				       path, line, at + 1, excerpt(s + at, n - at, buf, 48));
			goto fail;
		}
		while (end < s + n && (*end == ' ' || *end == '\t')) end++;
		if (end < s + n) {
			st = iapo_fail(IAPO_ERR_FORMAT, "%s: line %zu: expected one JSON value per line, found more after it: %s",
				       path, line, excerpt(end, (size_t)(s + n - end), buf, 48));
			goto fail;
		}
		if (!cJSON_IsObject(row)) {
			st = iapo_fail(IAPO_ERR_FORMAT, "%s: line %zu: expected a JSON object, found %s", path, line,
				       json_kind(row));
			goto fail;
		}
		rowctx c = {path, line, row};
		if (f == IAPO_DATA_AUTO) IAPO_CHECK(st, detect(&c, o, &f));
		if (ds.n == cap) {
			size_t nc = cap ? 2 * cap : 1024;
			iapo_example *ex = iapo_realloc(ds.ex, nc * sizeof *ex);
			if (!ex) {
				st = iapo_fail(IAPO_ERR_NOMEM, "%s: out of memory at line %zu", path, line);
				goto fail;
			}
			ds.ex = ex;
			cap = nc;
		}
		IAPO_CHECK(st, parse_row(&c, f, o, &ds.ex[ds.n]));
		cJSON_Delete(row);
		row = NULL;
		ds.n++; /* counted now, so a failure below frees it */
		int seen = 0;
		if (o->dedupe) IAPO_CHECK(st, set_insert(&set, ds.ex, ds.n - 1, ds.n - 1, &seen));
		if (seen) {
			ds.n--;
			iapo_free(ds.ex[ds.n].prompt);
			iapo_free(ds.ex[ds.n].label);
			ds.duplicates++;
			continue;
		}
		if (o->max_rows && ds.n == o->max_rows) break;
	}
	if (ds.n == 0) {
		st = iapo_fail(IAPO_ERR_FORMAT, "%s: expected at least one row, found none", path);
		goto fail;
	}
	ds.format = f;
	*out = ds;
	ds = (iapo_dataset){0};
fail:
	cJSON_Delete(row);
	iapo_free(set.slot);
	if (r->f) fclose(r->f);
	iapo_text_free(&r->line);
	iapo_free(r);
	iapo_dataset_free(&ds);
	return st;
}

/* ---- subsets and the split ---------------------------------------------- */

iapo_status iapo_dataset_subset(const iapo_dataset *ds, const size_t *idx, size_t n, iapo_dataset *out)
{
	iapo_dataset r = {0};
	memset(out, 0, sizeof *out);
	for (size_t i = 0; i < n; i++)
		if (idx[i] >= ds->n)
			return iapo_fail(IAPO_ERR_ARG, "dataset subset: expected row indices below %zu, found %zu", ds->n,
					 idx[i]);
	r.format = ds->format;
	if (n) {
		r.ex = iapo_calloc(n, sizeof *r.ex);
		if (!r.ex) return iapo_fail(IAPO_ERR_NOMEM, "dataset subset: out of memory for %zu rows", n);
	}
	for (; r.n < n; r.n++) {
		const iapo_example *e = &ds->ex[idx[r.n]];
		r.ex[r.n].prompt = iapo_strdup(e->prompt);
		r.ex[r.n].label = iapo_strdup(e->label);
		if (!r.ex[r.n].prompt || !r.ex[r.n].label) {
			r.n++; /* so the partial row is freed too */
			iapo_dataset_free(&r);
			return iapo_fail(IAPO_ERR_NOMEM, "dataset subset: out of memory");
		}
	}
	*out = r;
	return IAPO_OK;
}

iapo_status iapo_dataset_split(const iapo_dataset *ds, double eval_fraction, size_t eval_count, uint64_t seed,
			       iapo_dataset *train, iapo_dataset *eval)
{
	memset(train, 0, sizeof *train);
	memset(eval, 0, sizeof *eval);
	size_t n = ds->n, n_eval;
	if (eval_count) {
		if (eval_count > n)
			return iapo_fail(IAPO_ERR_ARG, "dataset split: expected at most %zu eval rows, found %zu", n,
					 eval_count);
		n_eval = eval_count;
	} else {
		if (!(eval_fraction >= 0.0 && eval_fraction <= 1.0))
			return iapo_fail(IAPO_ERR_ARG, "dataset split: expected an eval fraction in [0, 1], found %g",
					 eval_fraction);
		n_eval = (size_t)floor(eval_fraction * (double)n + 0.5);
		if (n_eval > n) n_eval = n;
	}
	size_t *perm = iapo_malloc((n ? n : 1) * sizeof *perm);
	if (!perm) return iapo_fail(IAPO_ERR_NOMEM, "dataset split: out of memory for %zu rows", n);
	for (size_t i = 0; i < n; i++) perm[i] = i;
	/* The key's second word keeps this stream apart from other users of the
	 * same seed (sampling, init). */
	iapo_rng rng;
	iapo_rng_seed(&rng, seed, 0x73706c6974ull /* "split" */, 0, 0);
	for (size_t i = n; i > 1; i--) {
		size_t j = (size_t)iapo_rng_below(&rng, i);
		size_t t = perm[i - 1];
		perm[i - 1] = perm[j];
		perm[j] = t;
	}
	size_t n_train = n - n_eval;
	iapo_status st = iapo_dataset_subset(ds, perm, n_train, train);
	if (st == IAPO_OK) st = iapo_dataset_subset(ds, perm + n_train, n_eval, eval);
	if (st != IAPO_OK) iapo_dataset_free(train);
	iapo_free(perm);
	return st;
}
