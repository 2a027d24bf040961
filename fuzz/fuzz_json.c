/*
 * fuzz_json.c — the JSON helpers every file parser builds on (src/io/json.h):
 * iapo_json_parse on arbitrary bytes (its line/column error messages
 * included), duplicate-key detection, and every typed getter on every member
 * of a parsed object, with narrow and with the widest integer ranges.
 * Oracles besides the sanitizers: a getter that succeeds returns a value in
 * its range; iapo_json_float of a member's value (as a float) prints text
 * that parses back to the same float.
 * Not here: the meaning of any particular file (the other targets).
 */
#include <limits.h>
#include <math.h>

#include "fuzz.h"
#include "io/json.h"

static void getters(const cJSON *obj, const char *key)
{
	long l;
	double d;
	int b;
	const char *s;
	static const long ranges[][2] = {{0, 1L << 30}, {-(1L << 53), 1L << 53}, {LONG_MIN, LONG_MAX}};
	for (size_t i = 0; i < sizeof ranges / sizeof *ranges; i++) {
		long lo = ranges[i][0], hi = ranges[i][1];
		fz_begin();
		if (fz_status(iapo_json_req_int(obj, key, "f.json", lo, hi, &l), "req_int") == IAPO_OK)
			FZ_ASSERT(l >= lo && l <= hi, "req_int %ld outside [%ld, %ld]", l, lo, hi);
		fz_begin();
		if (fz_status(iapo_json_opt_int(obj, key, "f.json", lo, hi, 7, &l), "opt_int") == IAPO_OK)
			FZ_ASSERT((l >= lo && l <= hi) || l == 7, "opt_int %ld outside [%ld, %ld]", l, lo, hi);
	}
	fz_begin();
	fz_status(iapo_json_req_num(obj, key, "f.json", &d), "req_num");
	fz_begin();
	fz_status(iapo_json_opt_num(obj, key, "f.json", 1.5, &d), "opt_num");
	fz_begin();
	fz_status(iapo_json_opt_bool(obj, key, "f.json", 0, &b), "opt_bool");
	fz_begin();
	if (fz_status(iapo_json_req_str(obj, key, "f.json", &s), "req_str") == IAPO_OK) FZ_ASSERT(s != NULL, "req_str NULL");
	fz_begin();
	fz_status(iapo_json_opt_str(obj, key, "f.json", &s), "opt_str");
}

static void float_round_trip(double v)
{
	float f = (float)v;
	if (!isfinite(f)) return;
	cJSON *n = iapo_json_float(f);
	if (!n) return;
	char *text = cJSON_PrintUnformatted(n);
	cJSON_Delete(n);
	if (!text) return;
	cJSON *back = NULL;
	fz_begin();
	iapo_status s = fz_status(iapo_json_parse(text, strlen(text), "float", &back), "parse float");
	FZ_ASSERT(s == IAPO_OK && cJSON_IsNumber(back) && (float)back->valuedouble == f,
		  "iapo_json_float(%.9g) printed '%s', which reads back differently", (double)f, text);
	cJSON_Delete(back);
	cJSON_free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	cJSON *root = NULL;
	fz_begin();
	if (fz_status(iapo_json_parse((const char *)data, size, "f.json", &root), "parse") != IAPO_OK) {
		FZ_ASSERT(root == NULL, "a failed parse returned a tree");
		return 0;
	}
	(void)iapo_json_type_name(root);
	fz_begin();
	fz_status(iapo_json_unique_keys(root, "f.json"), "unique_keys");
	int k = 0;
	for (const cJSON *c = root->child; c && k < 64; c = c->next, k++) {
		(void)iapo_json_type_name(c);
		if (cJSON_IsObject(root) && c->string) getters(root, c->string);
		if (cJSON_IsNumber(c)) float_round_trip(c->valuedouble);
		long l;
		fz_begin();
		fz_status(iapo_json_as_int(c, "f.json", "item", LONG_MIN, LONG_MAX, &l), "as_int");
	}
	if (cJSON_IsNumber(root)) float_round_trip(root->valuedouble);
	getters(root, "absent");
	cJSON_Delete(root);
	return 0;
}
