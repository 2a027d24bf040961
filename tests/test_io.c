/*
 * test_io.c — the generic file pieces of src/io: bf16/f16 conversions
 * (exhaustively, and against PyTorch's rounding), JSON helpers, atomic file
 * writes, and the safetensors reader/writer, including one test per kind of
 * malformed file, each checking the message names the file and the field or
 * tensor. Fixtures: build/fixtures/io (tests/oracle/make_io_fixtures.sh).
 */
#include <errno.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/mem.h"
#include "core/status.h"
#include "io/fs.h"
#include "io/half.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "test.h"

static char tmpdir[1024];

static void tpath(char *buf, size_t n, const char *name)
{
	int k = snprintf(buf, n, "%s/%s", tmpdir, name);
	if (k < 0 || (size_t)k >= n) buf[0] = '\0';
}

static int has(const char *msg, const char *part) { return strstr(msg, part) != NULL; }

/* ------------------------------------------------------------ conversions */

static void test_f16_exhaustive(void)
{
	/* Every half survives f16 -> f32 -> f16 (NaNs become canonical). */
	int bad = 0;
	for (uint32_t h = 0; h < 65536; h++) {
		float f = iapo_f16_to_f32((uint16_t)h);
		uint16_t back = iapo_f32_to_f16(f);
		int nan = (h & 0x7c00) == 0x7c00 && (h & 0x3ff);
		if (nan ? (back & 0x7fff) != 0x7e00 || !isnan(f) : back != h) bad++;
	}
	CHECK(bad == 0, "%d halves do not round-trip", bad);
	/* Hand values: smallest subnormal, largest subnormal, max, inf. */
	CHECK(iapo_f16_to_f32(0x0001) == 0x1p-24f, "smallest subnormal");
	CHECK(iapo_f16_to_f32(0x03ff) == 1023 * 0x1p-24f, "largest subnormal");
	CHECK(iapo_f16_to_f32(0x7bff) == 65504.0f, "max half");
	CHECK(isinf(iapo_f16_to_f32(0xfc00)) && iapo_f16_to_f32(0xfc00) < 0, "-inf");
	CHECK(iapo_f32_to_f16(65519.0f) == 0x7bff && iapo_f32_to_f16(65520.0f) == 0x7c00, "overflow threshold");
	CHECK(iapo_f32_to_f16(0x1p-25f) == 0 && iapo_f32_to_f16(0x1.8p-25f) == 1, "subnormal rounding");
	int bad_ties = 0;
	for (int k = 0; k < 1024; k++) {
		uint16_t want = (uint16_t)(k % 2 == 0 ? k : k + 1);
		bad_ties += iapo_f32_to_f16(((float)k + 0.5f) * 0x1p-24f) != want;
	}
	CHECK(bad_ties == 0, "%d subnormal ties not rounded to even", bad_ties);
}

static void test_bf16_exhaustive(void)
{
	int bad = 0;
	for (uint32_t h = 0; h < 65536; h++) {
		float f = iapo_bf16_to_f32((uint16_t)h);
		uint16_t back = iapo_f32_to_bf16(f);
		if (isnan(f) ? !isnan(iapo_bf16_to_f32(back)) : back != h) bad++;
	}
	CHECK(bad == 0, "%d bf16 values do not round-trip", bad);
	CHECK(iapo_f32_to_bf16(1.0f + 0x1p-8f) == 0x3f80, "tie to even (down)");
	CHECK(iapo_f32_to_bf16(1.0f + 0x3p-8f) == 0x3f82, "tie to even (up)");
}

static void test_conversions_vs_torch(void)
{
	char path[1024];
	snprintf(path, sizeof path, "%s/io/convert.bin", test_fixtures());
	char *data;
	size_t len;
	iapo_status s = iapo_fs_read_file(path, (size_t)64 << 20, &data, &len);
	CHECK(s == IAPO_OK, "%s", iapo_errmsg());
	if (s != IAPO_OK) return;
	uint32_t n;
	memcpy(&n, data, 4);
	CHECK(len == 4 + (size_t)n * 16, "convert.bin size %zu for n=%u", len, n);
	if (len != 4 + (size_t)n * 16) {
		iapo_free(data);
		return;
	}
	const char *p = data + 4;
	float *x = iapo_malloc(n * 4), *bf_f = iapo_malloc(n * 4), *hf_f = iapo_malloc(n * 4);
	uint16_t *bf = iapo_malloc(n * 2), *hf = iapo_malloc(n * 2);
	float *our_bf_f = iapo_malloc(n * 4), *our_hf_f = iapo_malloc(n * 4);
	uint16_t *our_bf = iapo_malloc(n * 2), *our_hf = iapo_malloc(n * 2);
	memcpy(x, p, n * 4);
	memcpy(bf, p + n * 4, n * 2);
	memcpy(hf, p + n * 6, n * 2);
	memcpy(bf_f, p + n * 8, n * 4);
	memcpy(hf_f, p + n * 12, n * 4);
	/* Array forms (parallel above 64k elements; n is below, so also call
	 * them on the data repeated to cross the threshold). */
	iapo_f32_to_bf16_array(x, our_bf, n);
	iapo_f32_to_f16_array(x, our_hf, n);
	iapo_bf16_to_f32_array(bf, our_bf_f, n);
	iapo_f16_to_f32_array(hf, our_hf_f, n);
	int bad_bf = 0, bad_hf = 0, bad_bff = 0, bad_hff = 0;
	for (uint32_t i = 0; i < n; i++) {
		if (isnan(x[i])) {
			bad_bf += !isnan(iapo_bf16_to_f32(our_bf[i]));
			bad_hf += !isnan(iapo_f16_to_f32(our_hf[i]));
		} else {
			if (our_bf[i] != bf[i] && bad_bf++ < 5)
				fprintf(stderr, "  bf16(%a): ours %04x torch %04x\n", (double)x[i], our_bf[i], bf[i]);
			if (our_hf[i] != hf[i] && bad_hf++ < 5)
				fprintf(stderr, "  f16(%a): ours %04x torch %04x\n", (double)x[i], our_hf[i], hf[i]);
		}
		uint32_t a = iapo_f32_bits(our_bf_f[i]), b = iapo_f32_bits(bf_f[i]);
		bad_bff += isnan(bf_f[i]) ? !isnan(our_bf_f[i]) : a != b;
		a = iapo_f32_bits(our_hf_f[i]), b = iapo_f32_bits(hf_f[i]);
		bad_hff += isnan(hf_f[i]) ? !isnan(our_hf_f[i]) : a != b;
	}
	CHECK(bad_bf == 0, "%d of %u f32->bf16 differ from torch", bad_bf, n);
	CHECK(bad_hf == 0, "%d of %u f32->f16 differ from torch", bad_hf, n);
	CHECK(bad_bff == 0, "%d bf16->f32 differ", bad_bff);
	CHECK(bad_hff == 0, "%d f16->f32 differ", bad_hff);
	/* Large arrays go through the OpenMP path: same answers. */
	size_t big = (size_t)n * 8;
	float *xb = iapo_malloc(big * 4);
	uint16_t *hb = iapo_malloc(big * 2);
	float *back = iapo_malloc(big * 4);
	for (size_t i = 0; i < big; i++) xb[i] = x[i % n];
	iapo_f32_to_f16_array(xb, hb, big);
	iapo_f16_to_f32_array(hb, back, big);
	int bad_big = 0;
	for (size_t i = 0; i < big; i++)
		if (!isnan(xb[i]) && (hb[i] != hf[i % n] || iapo_f32_bits(back[i]) != iapo_f32_bits(hf_f[i % n]))) bad_big++;
	CHECK(bad_big == 0, "%d differ in the parallel path", bad_big);
	iapo_free(xb);
	iapo_free(hb);
	iapo_free(back);
	iapo_free(x);
	iapo_free(bf_f);
	iapo_free(hf_f);
	iapo_free(bf);
	iapo_free(hf);
	iapo_free(our_bf_f);
	iapo_free(our_hf_f);
	iapo_free(our_bf);
	iapo_free(our_hf);
	iapo_free(data);
}

/* ------------------------------------------------------------------- JSON */

static void test_json_helpers(void)
{
	const char *text = "{\"a\": 3, \"b\": 2.5, \"c\": \"x\", \"d\": true, \"e\": null, \"big\": 1e20}";
	cJSON *r;
	long v;
	double d;
	int b;
	const char *str;
	CHECK(iapo_json_parse(text, strlen(text), "t.json", &r) == IAPO_OK, "%s", iapo_errmsg());
	CHECK(iapo_json_req_int(r, "a", "t.json", 0, 10, &v) == IAPO_OK && v == 3, "a");
	CHECK(iapo_json_req_int(r, "b", "t.json", 0, 10, &v) == IAPO_ERR_FORMAT && has(iapo_errmsg(), "t.json: b:"),
	      "non-integer: %s", iapo_errmsg());
	CHECK(iapo_json_req_int(r, "c", "t.json", 0, 10, &v) == IAPO_ERR_FORMAT &&
		      has(iapo_errmsg(), "t.json: c: expected an integer, found a string"),
	      "%s", iapo_errmsg());
	CHECK(iapo_json_req_int(r, "big", "t.json", 0, 10, &v) == IAPO_ERR_FORMAT, "range");
	CHECK(iapo_json_req_int(r, "zz", "t.json", 0, 10, &v) == IAPO_ERR_FORMAT && has(iapo_errmsg(), "zz"), "missing");
	CHECK(iapo_json_opt_int(r, "e", "t.json", 0, 10, 7, &v) == IAPO_OK && v == 7, "null -> default");
	CHECK(iapo_json_opt_num(r, "b", "t.json", 0, &d) == IAPO_OK && d == 2.5, "num");
	CHECK(iapo_json_opt_bool(r, "d", "t.json", 0, &b) == IAPO_OK && b == 1, "bool");
	CHECK(iapo_json_opt_bool(r, "a", "t.json", 0, &b) == IAPO_ERR_FORMAT, "bool type");
	CHECK(iapo_json_req_str(r, "c", "t.json", &str) == IAPO_OK && !strcmp(str, "x"), "str");
	cJSON_Delete(r);
	/* Syntax error: file, line and column. */
	const char *badj = "{\n  \"a\": 1,\n  \"b\": ]\n}";
	CHECK(iapo_json_parse(badj, strlen(badj), "bad.json", &r) == IAPO_ERR_FORMAT, "bad");
	CHECK(has(iapo_errmsg(), "bad.json: line 3, column"), "%s", iapo_errmsg());
	CHECK(iapo_json_parse("{} x", 4, "trail.json", &r) == IAPO_ERR_FORMAT && has(iapo_errmsg(), "trail.json"),
	      "trailing garbage: %s", iapo_errmsg());
	CHECK(iapo_json_parse("", 0, "empty.json", &r) == IAPO_ERR_FORMAT && has(iapo_errmsg(), "empty"), "empty");
	/* Floats print like Python's json. */
	const char *want[][2] = {{"1e-06", NULL}, {"10000.0", NULL}, {"0.02", NULL}, {"1000000.0", NULL}};
	float vals[] = {1e-6f, 10000.0f, 0.02f, 1e6f};
	for (int i = 0; i < 4; i++) {
		cJSON *f = iapo_json_float(vals[i]);
		char *out = cJSON_PrintUnformatted(f);
		CHECK(out && !strcmp(out, want[i][0]), "float %g printed as %s", (double)vals[i], out ? out : "NULL");
		cJSON_free(out);
		cJSON_Delete(f);
	}
}

/* --------------------------------------------------------------------- fs */

static void test_fs(void)
{
	char p[1024], q[1024], deep[1024];
	tpath(p, sizeof p, "fs/a.txt");
	tpath(deep, sizeof deep, "fs/x/y/z");
	CHECK(iapo_fs_mkdir_p(deep) == IAPO_OK, "%s", iapo_errmsg());
	CHECK(iapo_fs_is_dir(deep), "mkdir -p");
	CHECK(iapo_fs_write_file_atomic(p, "hello", 5) == IAPO_OK, "%s", iapo_errmsg());
	CHECK(iapo_fs_write_file_atomic(p, "world!", 6) == IAPO_OK, "%s", iapo_errmsg());
	char *d;
	size_t n;
	CHECK(iapo_fs_read_file(p, 100, &d, &n) == IAPO_OK && n == 6 && !memcmp(d, "world!", 6), "read back");
	iapo_free(d);
	CHECK(iapo_fs_read_file(p, 3, &d, &n) == IAPO_ERR_FORMAT && has(iapo_errmsg(), "a.txt"), "size cap");
	tpath(q, sizeof q, "fs/b.txt");
	CHECK(iapo_fs_copy_file(p, q) == IAPO_OK, "%s", iapo_errmsg());
	CHECK(iapo_fs_read_file(q, 100, &d, &n) == IAPO_OK && n == 6, "copy");
	iapo_free(d);
	/* mkdir -p through a file fails and names it. */
	tpath(q, sizeof q, "fs/a.txt/sub");
	CHECK(iapo_fs_mkdir_p(q) != IAPO_OK && has(iapo_errmsg(), "a.txt"), "%s", iapo_errmsg());
	tpath(q, sizeof q, "fs/missing.txt");
	CHECK(iapo_fs_read_file(q, 100, &d, &n) == IAPO_ERR_IO && has(iapo_errmsg(), "missing.txt"), "missing");
	/* No temporary files left behind. */
	tpath(q, sizeof q, "fs");
	char cmd[1200];
	snprintf(cmd, sizeof cmd, "ls -a '%s' | grep -q tmp", q);
	CHECK(system(cmd) != 0, "temporary file left in %s", q);
	tpath(q, sizeof q, "fs");
	CHECK(iapo_fs_remove_all(q) == IAPO_OK && !iapo_fs_exists(q), "remove_all");
}

/* ------------------------------------------------------------ safetensors */

static void test_misc_fixture(void)
{
	char path[1024], jpath[1024], bpath[1024];
	snprintf(path, sizeof path, "%s/io/misc.safetensors", test_fixtures());
	snprintf(jpath, sizeof jpath, "%s/io/misc.json", test_fixtures());
	snprintf(bpath, sizeof bpath, "%s/io/misc.bin", test_fixtures());
	iapo_safetensors st;
	cJSON *j = NULL;
	char *bin = NULL;
	size_t blen;
	CHECK(iapo_safetensors_open(path, &st) == IAPO_OK, "%s", iapo_errmsg());
	CHECK(iapo_json_load(jpath, 1 << 20, &j) == IAPO_OK, "%s", iapo_errmsg());
	CHECK(iapo_fs_read_file(bpath, 1 << 20, &bin, &blen) == IAPO_OK, "%s", iapo_errmsg());
	if (!st.map || !j || !bin) goto done;
	const cJSON *list = cJSON_GetObjectItem(j, "tensors");
	CHECK(st.n == cJSON_GetArraySize(list), "%d tensors, listing has %d", st.n, cJSON_GetArraySize(list));
	for (const cJSON *e = list->child; e; e = e->next) {
		const char *name = cJSON_GetObjectItem(e, "name")->valuestring;
		const iapo_st_tensor *t = iapo_safetensors_find(&st, name);
		CHECK(t != NULL, "tensor %s missing", name);
		if (!t) continue;
		CHECK(!strcmp(iapo_dtype_name(t->dtype), cJSON_GetObjectItem(e, "dtype")->valuestring), "%s dtype", name);
		const cJSON *shape = cJSON_GetObjectItem(e, "shape");
		CHECK(t->ndim == cJSON_GetArraySize(shape), "%s ndim", name);
		int i = 0;
		for (const cJSON *s = shape->child; s; s = s->next, i++)
			CHECK(t->shape[i] == (int64_t)s->valuedouble, "%s shape[%d]", name, i);
		const cJSON *off = cJSON_GetObjectItem(e, "offset");
		float *out = iapo_malloc(t->nelem * 4 + 4);
		iapo_status s = iapo_safetensors_read_f32(&st, t, out);
		if (!off) {
			CHECK(s == IAPO_ERR_UNSUPPORTED && has(iapo_errmsg(), name) && has(iapo_errmsg(), "misc.safetensors"),
			      "non-float tensor: %s", iapo_errmsg());
		} else {
			CHECK(s == IAPO_OK, "%s", iapo_errmsg());
			const float *want = (const float *)(bin + 4 * (size_t)off->valuedouble);
			CHECK(t->nelem == 0 || !memcmp(out, want, t->nelem * 4), "%s values differ", name);
		}
		iapo_free(out);
	}
	CHECK(iapo_safetensors_find(&st, "nope") == NULL, "find absent");
done:
	iapo_safetensors_close(&st);
	cJSON_Delete(j);
	iapo_free(bin);
}

static void test_writer_round_trip(void)
{
	char path[1024];
	tpath(path, sizeof path, "rt.safetensors");
	float a[6] = {1, -2, 3.25f, 1e-7f, 65504, -0.0f}, b[3] = {0.1f, 0.2f, 0.3f}, c[1] = {42};
	iapo_st_entry e[4] = {
		{"w \"quoted\"", IAPO_DT_F32, 2, {2, 3}, a},
		{"h", IAPO_DT_F16, 1, {3}, b},
		{"bf", IAPO_DT_BF16, 2, {3, 2}, a},
		{"s", IAPO_DT_F32, 0, {0}, c},
	};
	CHECK(iapo_safetensors_write(path, e, 4) == IAPO_OK, "%s", iapo_errmsg());
	iapo_safetensors st;
	CHECK(iapo_safetensors_open(path, &st) == IAPO_OK, "%s", iapo_errmsg());
	if (!st.map) return;
	CHECK(st.n == 4, "n=%d", st.n);
	CHECK((size_t)((const char *)st.data - (const char *)st.map) % 8 == 0, "data area aligned");
	float out[6];
	const iapo_st_tensor *t = iapo_safetensors_find(&st, "w \"quoted\"");
	CHECK(t && iapo_safetensors_read_f32(&st, t, out) == IAPO_OK && !memcmp(out, a, sizeof a), "F32 exact");
	t = iapo_safetensors_find(&st, "h");
	CHECK(t && t->dtype == IAPO_DT_F16 && iapo_safetensors_read_f32(&st, t, out) == IAPO_OK, "F16");
	for (int i = 0; t && i < 3; i++) CHECK(out[i] == iapo_f16_to_f32(iapo_f32_to_f16(b[i])), "F16 value %d", i);
	t = iapo_safetensors_find(&st, "bf");
	CHECK(t && t->ndim == 2 && t->shape[0] == 3 && iapo_safetensors_read_f32(&st, t, out) == IAPO_OK, "BF16");
	for (int i = 0; t && i < 6; i++) CHECK(out[i] == iapo_bf16_to_f32(iapo_f32_to_bf16(a[i])), "BF16 value %d", i);
	t = iapo_safetensors_find(&st, "s");
	CHECK(t && t->ndim == 0 && t->nelem == 1 && iapo_safetensors_read_f32(&st, t, out) == IAPO_OK && out[0] == 42,
	      "scalar");
	iapo_safetensors_close(&st);
	iapo_safetensors_close(&st); /* idempotent */
}

/* Writes an 8-byte length (hdr_len, or the header's real length when
 * hdr_len < 0), the header and data bytes. */
static void write_raw(const char *path, const char *hdr, long long hdr_len, const void *data, size_t n)
{
	FILE *f = fopen(path, "wb");
	if (!f) return;
	uint64_t len = hdr_len < 0 ? strlen(hdr) : (uint64_t)hdr_len;
	unsigned char l8[8];
	for (int i = 0; i < 8; i++) l8[i] = (unsigned char)(len >> (8 * i));
	fwrite(l8, 1, 8, f);
	fwrite(hdr, 1, strlen(hdr), f);
	if (n) fwrite(data, 1, n, f);
	fclose(f);
}

/* Opens a hand-made file and expects failure with code and message parts. */
static void expect_bad(const char *name, const char *hdr, long long hdr_len, size_t data_bytes, iapo_status code,
		       const char *part1, const char *part2)
{
	char path[1024];
	static const unsigned char zeros[256];
	tpath(path, sizeof path, name);
	write_raw(path, hdr, hdr_len, zeros, data_bytes);
	iapo_safetensors st;
	iapo_status s = iapo_safetensors_open(path, &st);
	fprintf(stderr, "  message: %s\n", iapo_errmsg());
	CHECK(s == code, "%s: status %d, want %d (%s)", name, s, code, iapo_errmsg());
	CHECK(has(iapo_errmsg(), name), "%s: message does not name the file: %s", name, iapo_errmsg());
	CHECK(!part1 || has(iapo_errmsg(), part1), "%s: message lacks '%s': %s", name, part1, iapo_errmsg());
	CHECK(!part2 || has(iapo_errmsg(), part2), "%s: message lacks '%s': %s", name, part2, iapo_errmsg());
	CHECK(st.map == NULL && st.t == NULL, "%s: not left empty", name);
	iapo_safetensors_close(&st);
}

static void test_bad_truncated(void)
{
	char path[1024];
	tpath(path, sizeof path, "trunc5.safetensors");
	FILE *f = fopen(path, "wb");
	fwrite("\x10\0\0\0\0", 1, 5, f);
	fclose(f);
	iapo_safetensors st;
	CHECK(iapo_safetensors_open(path, &st) == IAPO_ERR_FORMAT && has(iapo_errmsg(), "trunc5.safetensors") &&
		      has(iapo_errmsg(), "truncated"),
	      "%s", iapo_errmsg());
	/* A valid file cut short in its data area. */
	expect_bad("cutdata.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", -1, 12,
		   IAPO_ERR_FORMAT, "'a'", "data_offsets");
}

static void test_bad_header_length(void)
{
	expect_bad("hdrlen.safetensors", "{}", 1000, 0, IAPO_ERR_FORMAT, "header length", "1000");
}

static void test_bad_not_json(void)
{
	expect_bad("notjson.safetensors", "{\"a\": [1, 2,, }", -1, 0, IAPO_ERR_FORMAT, "expected valid JSON", "column");
	expect_bad("notobj.safetensors", "[1, 2]", -1, 0, IAPO_ERR_FORMAT, "header", NULL);
	expect_bad("trailing.safetensors", "{} {}", -1, 0, IAPO_ERR_FORMAT, "end of the JSON", NULL);
}

static void test_bad_offsets_range(void)
{
	expect_bad("range.safetensors", "{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8000]}}", -1, 8,
		   IAPO_ERR_FORMAT, "'t'", "data_offsets");
	expect_bad("reversed.safetensors", "{\"t\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]}}", -1, 8,
		   IAPO_ERR_FORMAT, "'t'", "data_offsets");
	expect_bad("negoff.safetensors", "{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-8,0]}}", -1, 8,
		   IAPO_ERR_FORMAT, "'t'", "data_offsets");
}

static void test_bad_overlap(void)
{
	expect_bad("overlap.safetensors",
		   "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
		   "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
		   -1, 12, IAPO_ERR_FORMAT, "overlaps", "'b'");
	expect_bad("gap.safetensors",
		   "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
		   "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
		   -1, 12, IAPO_ERR_FORMAT, "gap", "'b'");
	expect_bad("uncovered.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", -1, 12,
		   IAPO_ERR_FORMAT, "cover", NULL);
	expect_bad("dup.safetensors",
		   "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
		   "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
		   -1, 8, IAPO_ERR_FORMAT, "'a'", "twice");
}

static void test_bad_size_mismatch(void)
{
	expect_bad("size.safetensors", "{\"w\":{\"dtype\":\"BF16\",\"shape\":[2,3],\"data_offsets\":[0,24]}}", -1, 24,
		   IAPO_ERR_FORMAT, "'w'", "expected 12 bytes");
	expect_bad("overflow.safetensors",
		   "{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,0]}}", -1, 0,
		   IAPO_ERR_FORMAT, "'w'", "overflow");
	expect_bad("negdim.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,0]}}", -1, 0,
		   IAPO_ERR_FORMAT, "'w'", "shape[0]");
	expect_bad("fracdim.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,0]}}", -1, 0,
		   IAPO_ERR_FORMAT, "'w'", "shape[0]");
	expect_bad("strdim.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":\"2\",\"data_offsets\":[0,8]}}", -1, 8,
		   IAPO_ERR_FORMAT, "'w'", "shape");
	expect_bad("offlen.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", -1, 8,
		   IAPO_ERR_FORMAT, "'w'", "data_offsets");
}

static void test_bad_dtype(void)
{
	expect_bad("dtype.safetensors", "{\"w\":{\"dtype\":\"F33\",\"shape\":[2],\"data_offsets\":[0,8]}}", -1, 8,
		   IAPO_ERR_FORMAT, "'w'", "F33");
	expect_bad("dtype2.safetensors", "{\"w\":{\"dtype\":7,\"shape\":[2],\"data_offsets\":[0,8]}}", -1, 8,
		   IAPO_ERR_FORMAT, "'w'", "dtype");
}

static void test_bad_metadata_and_names(void)
{
	expect_bad("meta.safetensors", "{\"__metadata__\":{\"format\":3}}", -1, 0, IAPO_ERR_FORMAT, "__metadata__", "format");
	char hdr[2200];
	char name[1100];
	memset(name, 'n', 1025);
	name[1025] = '\0';
	snprintf(hdr, sizeof hdr, "{\"%s\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}}", name);
	expect_bad("longname.safetensors", hdr, -1, 0, IAPO_ERR_FORMAT, "names", NULL);
	expect_bad("notobject.safetensors", "{\"w\":[1]}", -1, 0, IAPO_ERR_FORMAT, "'w'", "object");
	expect_bad("nul.safetensors", "{\"w\"\1}", -1, 0, IAPO_ERR_FORMAT, "JSON", NULL);
}

/* Random corruption of a valid file: every outcome is a clean error or a
 * clean success, never a crash (ASan/UBSan builds check it). */
static void test_fuzz_no_crash(void)
{
	char path[1024], bad[1024];
	tpath(path, sizeof path, "rt.safetensors");
	tpath(bad, sizeof bad, "fuzz.safetensors");
	char *orig;
	size_t n;
	if (iapo_fs_read_file(path, 1 << 20, &orig, &n) != IAPO_OK) {
		CHECK(0, "rt.safetensors missing: %s", iapo_errmsg());
		return;
	}
	uint64_t x = 88172645463325252ull;
	int opened = 0;
	for (int it = 0; it < 400; it++) {
		char *c = iapo_malloc(n);
		memcpy(c, orig, n);
		size_t len = n;
		for (int k = 0; k < 1 + it % 4; k++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			size_t pos = x % n;
			/* Mostly hit the header, where the structure is. */
			if (it % 3) pos = 8 + x % 200 % (n - 8);
			c[pos] = (char)(x >> 32);
		}
		if (it % 7 == 0) len = x % n;
		FILE *f = fopen(bad, "wb");
		fwrite(c, 1, len, f);
		fclose(f);
		iapo_safetensors st;
		if (iapo_safetensors_open(bad, &st) == IAPO_OK) {
			opened++;
			float *out = NULL;
			for (int i = 0; i < st.n; i++) {
				out = iapo_realloc(out, st.t[i].nelem * 4 + 4);
				iapo_safetensors_read_f32(&st, &st.t[i], out);
			}
			iapo_free(out);
		}
		iapo_safetensors_close(&st);
		iapo_free(c);
	}
	fprintf(stderr, "  fuzz: %d of 400 corrupted files still valid\n", opened);
	iapo_free(orig);
}

static void test_open_alloc_failures(void)
{
	char path[1024];
	snprintf(path, sizeof path, "%s/io/misc.safetensors", test_fixtures());
	int ok = 0;
	for (unsigned long k = 1; k < 400 && !ok; k++) {
		iapo_safetensors st;
		iapo_mem_fail_after(k);
		iapo_status s = iapo_safetensors_open(path, &st);
		iapo_mem_fail_after(0);
		if (s == IAPO_OK) ok = 1;
		else CHECK(s == IAPO_ERR_NOMEM || s == IAPO_ERR_FORMAT, "alloc failure %lu gave %d: %s", k, s, iapo_errmsg());
		iapo_safetensors_close(&st);
	}
	CHECK(ok, "never succeeded");
}

int main(void)
{
	snprintf(tmpdir, sizeof tmpdir, "%s/test_io", test_env("IAPO_TMP", "/tmp"));
	iapo_fs_remove_all(tmpdir);
	if (iapo_fs_mkdir_p(tmpdir) != IAPO_OK) {
		fprintf(stderr, "%s\n", iapo_errmsg());
		return 1;
	}
	RUN(test_f16_exhaustive);
	RUN(test_bf16_exhaustive);
	RUN(test_conversions_vs_torch);
	RUN(test_json_helpers);
	RUN(test_fs);
	RUN(test_misc_fixture);
	RUN(test_writer_round_trip);
	RUN(test_bad_truncated);
	RUN(test_bad_header_length);
	RUN(test_bad_not_json);
	RUN(test_bad_offsets_range);
	RUN(test_bad_overlap);
	RUN(test_bad_size_mismatch);
	RUN(test_bad_dtype);
	RUN(test_bad_metadata_and_names);
	RUN(test_fuzz_no_crash);
	RUN(test_open_alloc_failures);
	iapo_fs_remove_all(tmpdir);
	TEST_END();
}
