/*
 * test_tokenizer.c — the tokenizer against Hugging Face's, and its edges.
 *
 * 1. Golden files from the real Qwen3 tokenizer (transformers.js, made by
 *    tests/oracle/make_tokenizer_golden.sh): every id of every string of a
 *    12,000-string corpus, and decode(ids) equal to the oracle's decode
 *    (= the input, except where NFC normalisation legitimately changed NFD
 *    input: we count those). Three more pipelines over the same vocabulary
 *    (Llama 3's regex + ignore_merges, GPT-2's ByteLevel regex with prefix
 *    space, ByteLevel alone).
 * 2. Where that oracle is known to differ from HF's Rust/Oniguruma regexes
 *    (U+0085, U+FEFF, "'ſ") and where PCRE2 differs (U+180E), the pieces the
 *    pre-tokenizer cuts are checked against hand-derived Oniguruma results.
 * 3. Chat templates: Qwen3's real config (text and ids), hand-written
 *    expectations for Qwen2/Qwen2.5 defaults, Llama 3, Llama 3.1/3.2.
 * 4. Bad input: every unsupported or malformed field names file and field.
 * 5. iapo_tokenizer_write_bytelevel: load back, arbitrary (invalid UTF-8)
 *    bytes round-trip, the written files encode the same in transformers.js
 *    (tests/oracle/tokenizer_encode.js), allocation failures at every
 *    allocation of a load and of an encode.
 * Timings (load, corpus encode) are printed for information only.
 */
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "core/mem.h"
#include "core/rng.h"
#include "io/fs.h"
#include "test.h"
#include "tokenizer/tok_internal.h"
#include "tokenizer/tokenizer.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static const char *fixture_dir(const char *name)
{
	static char buf[4][1024];
	static int k;
	char *b = buf[k++ & 3];
	snprintf(b, sizeof buf[0], "%s/%s", test_fixtures(), name);
	return b;
}

static const char *tmp_dir(const char *name)
{
	static char buf[4][1024];
	static int k;
	char *b = buf[k++ & 3];
	snprintf(b, sizeof buf[0], "%s/tokenizer-test/%s", test_env("IAPO_TMP", "/tmp"), name);
	return b;
}

static int hexval(int c) { return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1; }

/* Decodes n hex digits at s into out (n/2 bytes). */
static int unhex(const char *s, size_t n, char *out)
{
	if (n % 2) return -1;
	for (size_t i = 0; i < n; i += 2) {
		int a = hexval(s[i]), b = hexval(s[i + 1]);
		if (a < 0 || b < 0) return -1;
		out[i / 2] = (char)(a * 16 + b);
	}
	return 0;
}

static int *encode_str(const iapo_tokenizer *t, const char *s, size_t len, size_t *n)
{
	int *ids = NULL;
	size_t cap = 0;
	iapo_status st = iapo_tokenizer_encode(t, s, len, &ids, n, &cap);
	CHECK(st == IAPO_OK, "encode: %s", iapo_errmsg());
	return ids;
}

static void print_ids(const char *what, const int *ids, size_t n)
{
	fprintf(stderr, "    %s:", what);
	for (size_t i = 0; i < n && i < 40; i++) fprintf(stderr, " %d", ids[i]);
	fprintf(stderr, n > 40 ? " ...\n" : "\n");
}

/* ---- 1. golden files ---- */

typedef struct {
	char *text, *back; /* decoded from hex */
	size_t text_len, back_len;
	int *ids;
	size_t n_ids;
} golden_row;

static golden_row *read_golden(const char *path, size_t *n_rows, char **data_out)
{
	char *data = NULL;
	size_t len = 0;
	*n_rows = 0;
	*data_out = NULL;
	if (iapo_fs_read_file(path, (size_t)1 << 30, &data, &len) != IAPO_OK) {
		CHECK(0, "%s (run tests/oracle/make_tokenizer_golden.sh %s)", iapo_errmsg(), test_fixtures());
		return NULL;
	}
	size_t lines = 0;
	for (size_t i = 0; i < len; i++) lines += data[i] == '\n';
	golden_row *rows = calloc(lines + 1, sizeof *rows);
	size_t r = 0;
	for (char *p = data; p < data + len && r < lines;) {
		char *nl = memchr(p, '\n', (size_t)(data + len - p));
		if (!nl) break;
		*nl = '\0';
		char *t1 = strchr(p, '\t'), *t2 = t1 ? strchr(t1 + 1, '\t') : NULL;
		if (!t1 || !t2) {
			CHECK(0, "%s: line %zu: expected three tab-separated fields", path, r + 1);
			break;
		}
		golden_row *g = &rows[r++];
		g->text_len = (size_t)(t1 - p) / 2;
		g->back_len = (size_t)(nl - t2 - 1) / 2;
		g->text = malloc(g->text_len + 1);
		g->back = malloc(g->back_len + 1);
		CHECK(!unhex(p, (size_t)(t1 - p), g->text) && !unhex(t2 + 1, (size_t)(nl - t2 - 1), g->back), "%s: line %zu: bad hex",
		      path, r);
		size_t cap = 16;
		g->ids = malloc(cap * sizeof *g->ids);
		for (char *q = t1 + 1; q < t2;) {
			char *end;
			long v = strtol(q, &end, 10);
			if (end == q) break;
			if (g->n_ids == cap) g->ids = realloc(g->ids, (cap *= 2) * sizeof *g->ids);
			g->ids[g->n_ids++] = (int)v;
			q = end;
		}
		p = nl + 1;
	}
	*n_rows = r;
	*data_out = data;
	return rows;
}

static void free_golden(golden_row *rows, size_t n, char *data)
{
	for (size_t i = 0; i < n; i++) {
		free(rows[i].text);
		free(rows[i].back);
		free(rows[i].ids);
	}
	free(rows);
	iapo_free(data);
}

static void golden_variant(const char *name, size_t min_rows, int parallel_check)
{
	const char *dir = fixture_dir(name);
	char path[1200];
	snprintf(path, sizeof path, "%s/golden.tsv", dir);
	size_t n_rows;
	char *data;
	golden_row *rows = read_golden(path, &n_rows, &data);
	if (!rows) return;
	CHECK(n_rows >= min_rows, "%s: expected at least %zu strings, found %zu", path, min_rows, n_rows);

	iapo_tokenizer *t = NULL;
	double t0 = now();
	iapo_status st = iapo_tokenizer_load(dir, &t);
	double t_load = now() - t0;
	CHECK(st == IAPO_OK, "load %s: %s", dir, iapo_errmsg());
	if (st != IAPO_OK) {
		free_golden(rows, n_rows, data);
		return;
	}
	size_t id_bad = 0, dec_bad = 0, nfc_changed = 0, bytes = 0, tokens = 0, shown = 0;
	int *ids = NULL;
	char *out = NULL;
	size_t n = 0, cap = 0, out_len = 0, out_cap = 0;
	double t_enc = 0;
	for (size_t i = 0; i < n_rows; i++) {
		const golden_row *g = &rows[i];
		double a = now();
		st = iapo_tokenizer_encode(t, g->text, g->text_len, &ids, &n, &cap);
		t_enc += now() - a;
		bytes += g->text_len;
		tokens += n;
		int same = st == IAPO_OK && n == g->n_ids && (n == 0 || !memcmp(ids, g->ids, n * sizeof *ids));
		if (!same) {
			id_bad++;
			if (shown++ < 5) {
				fprintf(stderr, "  %s: string %zu (%zu bytes) differs: %s\n", name, i, g->text_len,
					st == IAPO_OK ? "" : iapo_errmsg());
				print_ids("expected", g->ids, g->n_ids);
				print_ids("got     ", ids, n);
			}
			continue;
		}
		st = iapo_tokenizer_decode(t, ids, n, 0, &out, &out_len, &out_cap);
		if (st != IAPO_OK || out_len != g->back_len || memcmp(out, g->back, out_len)) {
			dec_bad++;
			if (shown++ < 5) fprintf(stderr, "  %s: string %zu: decode differs from the oracle's\n", name, i);
		}
		if (g->back_len != g->text_len || memcmp(g->back, g->text, g->text_len)) nfc_changed++;
	}
	fprintf(stderr,
		"  %s: %zu strings (%zu bytes, %zu tokens): %zu id mismatches, %zu decode mismatches; "
		"%zu strings decode (like HF's) to other than the input: NFC of NFD input, or an added prefix space\n",
		name, n_rows, bytes, tokens, id_bad, dec_bad, nfc_changed);
	fprintf(stderr, "  %s: load %.1f ms, encode %.1f ms (%.2f MB/s) [information only]\n", name, t_load * 1e3,
		t_enc * 1e3, bytes / (t_enc > 0 ? t_enc : 1e-9) / 1e6);
	printf("%s: %zu strings, %zu mismatches\n", name, n_rows, id_bad + dec_bad);
	CHECK(id_bad == 0, "%s: %zu of %zu strings encode differently from HF", name, id_bad, n_rows);
	CHECK(dec_bad == 0, "%s: %zu of %zu strings decode differently from HF", name, dec_bad, n_rows);

	if (parallel_check) {
		/* One loaded tokenizer, many threads: same ids as serially. */
		size_t par_bad = 0;
#pragma omp parallel reduction(+ : par_bad)
		{
			int *pids = NULL;
			size_t pn = 0, pcap = 0;
#pragma omp for schedule(dynamic, 64)
			for (size_t i = 0; i < n_rows; i++) {
				if (iapo_tokenizer_encode(t, rows[i].text, rows[i].text_len, &pids, &pn, &pcap) != IAPO_OK ||
				    pn != rows[i].n_ids || (pn && memcmp(pids, rows[i].ids, pn * sizeof *pids)))
					par_bad++;
			}
			iapo_free(pids);
		}
		CHECK(par_bad == 0, "%s: %zu strings differ when encoded from %d threads", name, par_bad, omp_get_max_threads());
	}
	iapo_free(ids);
	iapo_free(out);
	iapo_tokenizer_free(t);
	free_golden(rows, n_rows, data);
}

static void test_golden_qwen3(void) { golden_variant("qwen3-tokenizer", 10000, 1); }
static void test_golden_llama3_style(void) { golden_variant("llama3-style", 4000, 0); }
static void test_golden_gpt2_style(void) { golden_variant("gpt2-style", 4000, 0); }
static void test_golden_bytelevel_only(void) { golden_variant("bytelevel-only", 1000, 0); }

/* ---- 2. regex semantics by hand ---- */

/* Checks that text is cut into exactly the pieces given (NULL-terminated). */
static void expect_pieces(const iapo_tokenizer *t, const char *text, const char *const *want)
{
	char *buf = NULL;
	size_t len = 0;
	iapo_status st = tok_debug_pieces(t, text, strlen(text), &buf, &len);
	CHECK(st == IAPO_OK, "pieces: %s", iapo_errmsg());
	size_t off = 0;
	int k = 0, ok = st == IAPO_OK;
	for (; ok && want[k]; k++) {
		uint32_t n;
		if (off + 4 > len) {
			ok = 0;
			break;
		}
		memcpy(&n, buf + off, 4);
		off += 4;
		if (n != strlen(want[k]) || off + n > len || memcmp(buf + off, want[k], n)) ok = 0;
		off += n;
	}
	if (off != len) ok = 0;
	CHECK(ok, "text \"%s\" was not cut into the expected pieces (piece %d \"%s\")", text, k, want[k] ? want[k] : "end");
	iapo_free(buf);
}

static void test_regex_semantics(void)
{
	iapo_tokenizer *q = NULL, *l = NULL;
	if (iapo_tokenizer_load(fixture_dir("qwen3-tokenizer"), &q) != IAPO_OK ||
	    iapo_tokenizer_load(fixture_dir("llama3-style"), &l) != IAPO_OK) {
		CHECK(0, "load: %s", iapo_errmsg());
		iapo_tokenizer_free(q);
		return;
	}
	/* U+0085 is White_Space for Oniguruma (and PCRE2); the JS oracle would
	 * give "a", "\u0085!" here. */
	expect_pieces(q, "a\xc2\x85!", (const char *[]){"a", "\xc2\x85", "!", NULL});
	expect_pieces(q, "x\xc2\x85\xc2\x85 y", (const char *[]){"x", "\xc2\x85\xc2\x85", " y", NULL});
	/* U+FEFF is not: it joins the punctuation run (JS: "\ufeff", "!"). */
	expect_pieces(q, "x\xef\xbb\xbf!", (const char *[]){"x", "\xef\xbb\xbf!", NULL});
	/* U+180E is not (PCRE2 alone would split it off as a space). */
	expect_pieces(q, "a\xe1\xa0\x8e!", (const char *[]){"a", "\xe1\xa0\x8e!", NULL});
	expect_pieces(q, "a \xe1\xa0\x8e", (const char *[]){"a", " \xe1\xa0\x8e", NULL});
	/* Case-insensitive contractions fold s to U+017F (JS: "'ſx" whole). */
	expect_pieces(q, "'\xc5\xbfx", (const char *[]){"'\xc5\xbf", "x", NULL});
	expect_pieces(q, "HE'LL", (const char *[]){"HE", "'LL", NULL});
	/* Qwen splits every digit, Llama 3 groups by three. */
	expect_pieces(q, "12345", (const char *[]){"1", "2", "3", "4", "5", NULL});
	expect_pieces(l, "12345", (const char *[]){"123", "45", NULL});
	/* \s+(?!\S) leaves the last space to the next word; \s*[\r\n]+ takes
	 * line breaks with the spaces before them. */
	expect_pieces(q, "a   b", (const char *[]){"a", "  ", " b", NULL});
	expect_pieces(q, "a \n\n b", (const char *[]){"a", " \n\n", " b", NULL});
	/* Added tokens are cut out before the regex ever sees them. */
	expect_pieces(q, "x<think>y", (const char *[]){"x", "y", NULL});
	iapo_tokenizer_free(q);
	iapo_tokenizer_free(l);
}

/* Invalid UTF-8 through the real tokenizer (NFC normaliser, Qwen regex): no
 * error, and bytes that are not UTF-8 come back exactly. The strings mix
 * ASCII with bytes that can never start a UTF-8 character, so NFC has
 * nothing to change. */
static void test_invalid_utf8_qwen(void)
{
	iapo_tokenizer *t = NULL;
	if (iapo_tokenizer_load(fixture_dir("qwen3-tokenizer"), &t) != IAPO_OK) {
		CHECK(0, "load: %s", iapo_errmsg());
		return;
	}
	iapo_rng r;
	iapo_rng_seed(&r, 11, 0, 0, 0);
	char buf[300], *out = NULL;
	int *ids = NULL;
	size_t n = 0, cap = 0, out_len = 0, out_cap = 0, bad = 0;
	for (int i = 0; i < 2000; i++) {
		size_t len = (size_t)iapo_rng_below(&r, 300);
		for (size_t k = 0; k < len; k++) {
			uint64_t v = iapo_rng_below(&r, 3);
			buf[k] = v == 0 ? (char)(0x80 + iapo_rng_below(&r, 0x40))          /* stray continuation byte */
				 : v == 1 ? (char)(0xf8 + iapo_rng_below(&r, 8))            /* never valid */
					  : (char)(" \n\ta1<|>'"[iapo_rng_below(&r, 10)]); /* ASCII incl. regex-relevant */
		}
		if (iapo_tokenizer_encode(t, buf, len, &ids, &n, &cap) != IAPO_OK ||
		    iapo_tokenizer_decode(t, ids, n, 0, &out, &out_len, &out_cap) != IAPO_OK || out_len != len ||
		    memcmp(out, buf, len))
			bad++;
	}
	CHECK(bad == 0, "%zu of 2000 strings with invalid UTF-8 do not round-trip", bad);
	/* Valid characters next to invalid bytes are still normalised. */
	const char mixed[] = "e\xcc\x81\xff";
	CHECK(iapo_tokenizer_encode(t, mixed, 4, &ids, &n, &cap) == IAPO_OK &&
		      iapo_tokenizer_decode(t, ids, n, 0, &out, &out_len, &out_cap) == IAPO_OK && out_len == 3 &&
		      !memcmp(out, "\xc3\xa9\xff", 3),
	      "NFC beside an invalid byte");
	iapo_free(ids);
	iapo_free(out);
	iapo_tokenizer_free(t);
}

/* ---- 3. chat templates ---- */

static void check_chat(const iapo_tokenizer *t, const char *sys, const char *user, int gen, const char *want)
{
	char *out = NULL;
	iapo_status st = iapo_tokenizer_chat(t, sys, user, gen, &out);
	CHECK(st == IAPO_OK, "chat: %s", iapo_errmsg());
	CHECK(out && !strcmp(out, want), "chat: expected\n%s\nfound\n%s", want, out ? out : "(null)");
	iapo_free(out);
}

static void test_chat_qwen3(void)
{
	iapo_tokenizer *t = NULL;
	if (iapo_tokenizer_load(fixture_dir("qwen3-tokenizer"), &t) != IAPO_OK) {
		CHECK(0, "load: %s", iapo_errmsg());
		return;
	}
	const char *want = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
			   "<|im_start|>assistant\n";
	check_chat(t, "You are a helpful assistant.", "What is 2+2?", 1, want);
	/* Ids of that text from the Qwen3 tokenizer (transformers.js). */
	static const int want_ids[] = {151644, 8948, 198,    2610, 525, 264, 10950,  17847,  13,     151645, 198, 151644, 872,
				       198,    3838, 374,    220,  17,  10,  17,     30,     151645, 198,    151644, 77091, 198};
	size_t n;
	int *ids = encode_str(t, want, strlen(want), &n);
	CHECK(n == sizeof want_ids / sizeof want_ids[0] && !memcmp(ids, want_ids, sizeof want_ids), "chat ids differ");
	iapo_free(ids);
	/* Qwen3 inserts no system message of its own. */
	check_chat(t, NULL, "Hi", 1, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
	check_chat(t, NULL, "Hi", 0, "<|im_start|>user\nHi<|im_end|>\n");
	check_chat(t, "", " Hi ", 0, "<|im_start|>system\n<|im_end|>\n<|im_start|>user\n Hi <|im_end|>\n");
	int eos[8];
	int k = iapo_tokenizer_eos_ids(t, eos, 8);
	CHECK(k == 2 && eos[0] == 151645 && eos[1] == 151643, "eos ids: %d (%d %d)", k, eos[0], eos[1]);
	CHECK(iapo_tokenizer_token_id(t, "<|im_end|>") == 151645 && iapo_tokenizer_is_special(t, 151645), "im_end");
	CHECK(iapo_tokenizer_token_id(t, "<think>") == 151667 && !iapo_tokenizer_is_special(t, 151667), "<think> is not special");
	CHECK(iapo_tokenizer_token_id(t, "Ġthe") == 279 && iapo_tokenizer_token_id(t, "no such token") == -1, "token_id");
	CHECK(iapo_tokenizer_vocab_size(t) == 151669, "vocab size %d", iapo_tokenizer_vocab_size(t));
	/* skip_special drops <|im_start|>/<|im_end|> but keeps <think>. */
	const int d[] = {151644, 872, 198, 151667, 87, 151668, 151645};
	char *out = NULL;
	size_t len, cap = 0;
	CHECK(iapo_tokenizer_decode(t, d, 7, 1, &out, &len, &cap) == IAPO_OK && !strcmp(out, "user\n<think>x</think>"),
	      "skip_special decode: %s", out ? out : iapo_errmsg());
	CHECK(iapo_tokenizer_decode(t, d, 7, 0, &out, &len, &cap) == IAPO_OK &&
		      !strcmp(out, "<|im_start|>user\n<think>x</think><|im_end|>"),
	      "decode: %s", out ? out : iapo_errmsg());
	const int bad[] = {5, 151669};
	CHECK(iapo_tokenizer_decode(t, bad, 2, 0, &out, &len, &cap) == IAPO_ERR_ARG && strstr(iapo_errmsg(), "151669"),
	      "out-of-range id: %s", iapo_errmsg());
	iapo_free(out);
	iapo_tokenizer_free(t);
}

/* A tokenizer directory from write_bytelevel with its config replaced and
 * (for Llama) Llama 3's special tokens added. */
static const char *make_template_dir(const char *name, const char *tpl, const char *bos, const char *eos, int llama,
				     int as_jinja_file)
{
	const char *dir = tmp_dir(name);
	CHECK(iapo_tokenizer_write_bytelevel(dir, NULL, 0) == IAPO_OK, "write: %s", iapo_errmsg());
	char path[1200];
	if (llama) {
		snprintf(path, sizeof path, "%s/tokenizer.json", dir);
		char *text;
		size_t len;
		CHECK(iapo_fs_read_file(path, 1 << 24, &text, &len) == IAPO_OK, "read");
		cJSON *root = cJSON_Parse(text);
		iapo_free(text);
		cJSON *added = cJSON_GetObjectItem(root, "added_tokens");
		static const char *const names[] = {"<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>",
						    "<|end_header_id|>", "<|eot_id|>",      "<|eom_id|>"};
		for (int i = 0; i < 6; i++) {
			cJSON *a = cJSON_CreateObject();
			cJSON_AddNumberToObject(a, "id", 1000 + i);
			cJSON_AddStringToObject(a, "content", names[i]);
			cJSON_AddBoolToObject(a, "special", 1);
			cJSON_AddItemToArray(added, a);
		}
		char *s = cJSON_Print(root);
		CHECK(iapo_fs_write_file(path, s, strlen(s)) == IAPO_OK, "write");
		cJSON_free(s);
		cJSON_Delete(root);
	}
	cJSON *cfg = cJSON_CreateObject();
	if (tpl && !as_jinja_file) cJSON_AddStringToObject(cfg, "chat_template", tpl);
	if (bos) cJSON_AddStringToObject(cfg, "bos_token", bos);
	if (eos) {
		cJSON *e = cJSON_AddObjectToObject(cfg, "eos_token");
		cJSON_AddStringToObject(e, "__type", "AddedToken");
		cJSON_AddStringToObject(e, "content", eos);
	}
	char *s = cJSON_Print(cfg);
	snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
	CHECK(iapo_fs_write_file(path, s, strlen(s)) == IAPO_OK, "write");
	cJSON_free(s);
	cJSON_Delete(cfg);
	if (as_jinja_file) {
		snprintf(path, sizeof path, "%s/chat_template.jinja", dir);
		CHECK(iapo_fs_write_file(path, tpl, strlen(tpl)) == IAPO_OK, "write");
	}
	return dir;
}

static iapo_tokenizer *load_dir(const char *dir)
{
	iapo_tokenizer *t = NULL;
	CHECK(iapo_tokenizer_load(dir, &t) == IAPO_OK, "load %s: %s", dir, iapo_errmsg());
	return t;
}

/* Qwen2.5-Instruct's template (its tools branch shortened). */
static const char qwen25_tpl[] =
	"{%- if tools %}\n    {{- '<|im_start|>system\\n' }}\n    {%- if messages[0]['role'] == 'system' %}\n"
	"        {{- messages[0]['content'] }}\n    {%- else %}\n"
	"        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}\n    {%- endif %}\n"
	"    {{- \"\\n\\n# Tools\\n\\n...</tool_call><|im_end|>\\n\" }}\n{%- else %}\n"
	"    {%- if messages[0]['role'] == 'system' %}\n"
	"        {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}\n    {%- else %}\n"
	"        {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}\n"
	"    {%- endif %}\n{%- endif %}\n{%- for message in messages %}\n"
	"    {%- if (message.role == \"user\") or (message.role == \"system\" and not loop.first) %}\n"
	"        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}\n"
	"    {%- endif %}\n{%- endfor %}\n{%- if add_generation_prompt %}\n    {{- '<|im_start|>assistant\\n' }}\n{%- endif %}\n";

/* Qwen2-Instruct's template. */
static const char qwen2_tpl[] =
	"{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\nYou are "
	"a helpful assistant.<|im_end|>\\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
	"'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/* Meta-Llama-3-8B-Instruct's template. */
static const char llama3_tpl[] =
	"{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + "
	"message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% "
	"set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ "
	"'<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}";

/* Llama 3.1-Instruct's template (tool parts shortened). */
static const char llama31_tpl[] =
	"{{- bos_token }}\n{%- if not date_string is defined %}\n    {%- set date_string = \"26 Jul 2024\" %}\n{%- endif %}\n"
	"{%- if messages[0]['role'] == 'system' %}\n    {%- set system_message = messages[0]['content']|trim %}\n"
	"    {%- set messages = messages[1:] %}\n{%- else %}\n    {%- set system_message = \"\" %}\n{%- endif %}\n"
	"{{- \"<|start_header_id|>system<|end_header_id|>\\n\\n\" }}\n{{- \"Cutting Knowledge Date: December 2023\\n\" }}\n"
	"{{- \"Today Date: \" + date_string + \"\\n\\n\" }}\n{{- system_message }}\n{{- \"<|eot_id|>\" }}\n"
	"{%- for message in messages %}\n    {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ "
	"message['content'] | trim + '<|eot_id|>' }}\n{%- endfor %}\n{%- if add_generation_prompt %}\n"
	"    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}\n{%- endif %}\n";

/* Llama 3.2's date line: today's date in HF, its fallback here. */
static const char llama32_tpl[] =
	"{{- bos_token }}\n{%- if not date_string is defined %}\n    {%- if strftime_now is defined %}\n"
	"        {%- set date_string = strftime_now(\"%d %b %Y\") %}\n    {%- else %}\n"
	"        {%- set date_string = \"26 Jul 2024\" %}\n    {%- endif %}\n{%- endif %}\n"
	"{{- \"<|start_header_id|>system<|end_header_id|>\\n\\n\" }}\n{{- \"Cutting Knowledge Date: December 2023\\n\" }}\n"
	"{{- \"Today Date: \" + date_string + \"\\n\\n\" }}{{- \"<|eot_id|>\" }}";

static void test_chat_templates(void)
{
	iapo_tokenizer *t;
	int eos[8], k;

	t = load_dir(make_template_dir("qwen25", qwen25_tpl, NULL, "<|im_end|>", 0, 0));
	if (t) {
		check_chat(t, NULL, "Hi", 1,
			   "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
			   "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
		check_chat(t, "Be brief.", "Hi", 1,
			   "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
		iapo_tokenizer_free(t);
	}
	t = load_dir(make_template_dir("qwen2", qwen2_tpl, NULL, "<|im_end|>", 0, 1)); /* as chat_template.jinja */
	if (t) {
		check_chat(t, NULL, "Hi", 0, "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n");
		iapo_tokenizer_free(t);
	}
	t = load_dir(make_template_dir("llama3", llama3_tpl, "<|begin_of_text|>", "<|eot_id|>", 1, 0));
	if (t) {
		check_chat(t, "  You are terse.\n", " Hi there \t", 1,
			   "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are terse.<|eot_id|>"
			   "<|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>"
			   "<|start_header_id|>assistant<|end_header_id|>\n\n");
		check_chat(t, NULL, "Hi", 0, "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>");
		k = iapo_tokenizer_eos_ids(t, eos, 8);
		CHECK(k == 3 && eos[0] == 1004 && eos[1] == 1001 && eos[2] == 1005, "llama eos ids (%d)", k);
		k = iapo_tokenizer_eos_ids(t, eos, 1);
		CHECK(k == 1 && eos[0] == 1004, "eos ids capped at max");
		iapo_tokenizer_free(t);
	}
	t = load_dir(make_template_dir("llama31", llama31_tpl, "<|begin_of_text|>", "<|eot_id|>", 1, 0));
	if (t) {
		check_chat(t, NULL, "Hi", 1,
			   "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\n"
			   "Today Date: 26 Jul 2024\n\n<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
			   "<|start_header_id|>assistant<|end_header_id|>\n\n");
		check_chat(t, "\u3000Sys ", "Hi", 0,
			   "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\n"
			   "Today Date: 26 Jul 2024\n\nSys<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>");
		iapo_tokenizer_free(t);
	}
	t = load_dir(make_template_dir("llama32", llama32_tpl, "<|begin_of_text|>", "<|eot_id|>", 1, 0));
	if (t) {
		check_chat(t, "S", "U", 0,
			   "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\n"
			   "Today Date: 26 Jul 2024\n\nS<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nU<|eot_id|>");
		iapo_tokenizer_free(t);
	}
	/* Templates we do not know are refused, naming the file. */
	const char *dir = make_template_dir("mistral", "{{ bos_token }}{% for m in messages %}[INST] {{ m['content'] }} [/INST]{% endfor %}",
					    "<s>", "</s>", 0, 0);
	t = load_dir(dir);
	if (t) {
		char *out = NULL;
		CHECK(iapo_tokenizer_chat(t, NULL, "Hi", 1, &out) == IAPO_ERR_UNSUPPORTED && !out, "unknown template accepted");
		CHECK(strstr(iapo_errmsg(), "tokenizer_config.json") && strstr(iapo_errmsg(), "chat_template"), "message: %s",
		      iapo_errmsg());
		CHECK(iapo_tokenizer_eos_ids(t, eos, 8) == 0, "eos ids of unknown tokens");
		iapo_tokenizer_free(t);
	}
	t = load_dir(make_template_dir("notemplate", NULL, NULL, NULL, 0, 0));
	if (t) {
		char *out = NULL;
		CHECK(iapo_tokenizer_chat(t, NULL, "Hi", 1, &out) == IAPO_ERR_UNSUPPORTED && strstr(iapo_errmsg(), "chat_template"),
		      "missing template: %s", iapo_errmsg());
		iapo_tokenizer_free(t);
	}
}

/* ---- 4. bad input ---- */

static const char *write_case(const char *name, const char *json)
{
	const char *dir = tmp_dir(name);
	char path[1200];
	CHECK(iapo_fs_mkdir_p(dir) == IAPO_OK, "mkdir: %s", iapo_errmsg());
	snprintf(path, sizeof path, "%s/tokenizer.json", dir);
	CHECK(iapo_fs_write_file(path, json, strlen(json)) == IAPO_OK, "write: %s", iapo_errmsg());
	return dir;
}

#define MINI_HEAD "{\"added_tokens\": [], \"normalizer\": null, \"decoder\": {\"type\": \"ByteLevel\"}, "
#define MINI_PRE "\"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"use_regex\": true}, "
#define MINI_MODEL "\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, \"merges\": [\"a b\"]}}"

static void expect_load_error(const char *name, const char *json, iapo_status code, const char *field, const char *found)
{
	const char *dir = write_case(name, json);
	iapo_tokenizer *t = NULL;
	iapo_status st = iapo_tokenizer_load(dir, &t);
	const char *m = iapo_errmsg();
	CHECK(st == code && !t, "%s: expected status %d, found %d (%s)", name, code, st, m);
	CHECK(strstr(m, dir) && strstr(m, "tokenizer.json"), "%s: message does not name the file: %s", name, m);
	CHECK(!field || strstr(m, field), "%s: message does not name the field %s: %s", name, field, m);
	CHECK(!found || strstr(m, found), "%s: message does not say what was found (%s): %s", name, found, m);
	iapo_tokenizer_free(t);
}

static void test_bad_input(void)
{
	iapo_tokenizer *t = NULL;
	CHECK(iapo_tokenizer_load(tmp_dir("does-not-exist"), &t) == IAPO_ERR_IO && !t &&
		      strstr(iapo_errmsg(), "does-not-exist/tokenizer.json"),
	      "missing file: %s", iapo_errmsg());
	/* The valid baseline loads. */
	t = load_dir(write_case("mini", MINI_HEAD MINI_PRE MINI_MODEL));
	if (t) {
		size_t n;
		int *ids = encode_str(t, "ab", 2, &n);
		CHECK(n == 1 && ids[0] == 2, "mini: \"ab\" should merge");
		iapo_free(ids);
		iapo_tokenizer_free(t);
	}
	expect_load_error("malformed", "{\"model\": {\"type\": \"BPE\", ", IAPO_ERR_FORMAT, "line 1", NULL);
	expect_load_error("empty", "", IAPO_ERR_FORMAT, NULL, NULL);
	expect_load_error("not-object", "[1, 2]", IAPO_ERR_FORMAT, NULL, "array");
	expect_load_error("no-model", "{\"added_tokens\": []}", IAPO_ERR_FORMAT, "model", "missing");
	expect_load_error("wordpiece", MINI_HEAD MINI_PRE "\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": 0}}}",
			  IAPO_ERR_UNSUPPORTED, "model.type", "WordPiece");
	expect_load_error("unigram", MINI_HEAD MINI_PRE "\"model\": {\"type\": \"Unigram\", \"vocab\": [[\"a\", -1.0]]}}",
			  IAPO_ERR_UNSUPPORTED, "model.type", "Unigram");
	expect_load_error("metaspace", MINI_HEAD "\"pre_tokenizer\": {\"type\": \"Metaspace\", \"replacement\": \"_\"}, " MINI_MODEL,
			  IAPO_ERR_UNSUPPORTED, "pre_tokenizer.type", "Metaspace");
	expect_load_error("digits",
			  MINI_HEAD "\"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"ByteLevel\"}, "
				    "{\"type\": \"Digits\", \"individual_digits\": true}]}, " MINI_MODEL,
			  IAPO_ERR_UNSUPPORTED, "pre_tokenizer.pretokenizers[1].type", "Digits");
	expect_load_error("no-bytelevel", MINI_HEAD "\"pre_tokenizer\": null, " MINI_MODEL, IAPO_ERR_UNSUPPORTED, "pre_tokenizer",
			  "ByteLevel");
	expect_load_error("lowercase",
			  "{\"added_tokens\": [], \"normalizer\": {\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"NFC\"}, "
			  "{\"type\": \"Lowercase\"}]}, \"decoder\": {\"type\": \"ByteLevel\"}, " MINI_PRE MINI_MODEL,
			  IAPO_ERR_UNSUPPORTED, "normalizer.normalizers[1].type", "Lowercase");
	expect_load_error("merge-unknown",
			  MINI_HEAD MINI_PRE "\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, "
					     "\"merges\": [\"a b\", \"ab c\"]}}",
			  IAPO_ERR_FORMAT, "model.merges[1]", "\"c\"");
	expect_load_error("merge-result-missing",
			  MINI_HEAD MINI_PRE "\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [[\"a\", \"b\"]]}}",
			  IAPO_ERR_FORMAT, "model.merges[0]", "\"ab\"");
	expect_load_error("merge-bad-form", MINI_HEAD MINI_PRE "\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"a\"]}}",
			  IAPO_ERR_FORMAT, "model.merges[0]", NULL);
	expect_load_error("vocab-not-int", MINI_HEAD MINI_PRE "\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": \"x\"}, \"merges\": []}}",
			  IAPO_ERR_FORMAT, "model.vocab", NULL);
	expect_load_error("no-merges", MINI_HEAD MINI_PRE "\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}}", IAPO_ERR_FORMAT,
			  "model.merges", "nothing");
	expect_load_error("byte-fallback",
			  MINI_HEAD MINI_PRE "\"model\": {\"type\": \"BPE\", \"byte_fallback\": true, \"vocab\": {\"a\": 0}, \"merges\": []}}",
			  IAPO_ERR_UNSUPPORTED, "model.byte_fallback", NULL);
	expect_load_error("dropout",
			  MINI_HEAD MINI_PRE "\"model\": {\"type\": \"BPE\", \"dropout\": 0.1, \"vocab\": {\"a\": 0}, \"merges\": []}}",
			  IAPO_ERR_UNSUPPORTED, "model.dropout", NULL);
	expect_load_error("no-decoder", "{\"added_tokens\": [], \"normalizer\": null, " MINI_PRE MINI_MODEL, IAPO_ERR_UNSUPPORTED,
			  "decoder", NULL);
	expect_load_error("wordpiece-decoder",
			  "{\"added_tokens\": [], \"normalizer\": null, \"decoder\": {\"type\": \"WordPiece\"}, " MINI_PRE MINI_MODEL,
			  IAPO_ERR_UNSUPPORTED, "decoder.type", "WordPiece");
	expect_load_error("bad-regex",
			  MINI_HEAD "\"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": "
				    "{\"Regex\": \"(unclosed\"}, \"behavior\": \"Isolated\", \"invert\": false}, {\"type\": \"ByteLevel\"}]}, " MINI_MODEL,
			  IAPO_ERR_FORMAT, "pre_tokenizer.pretokenizers[0].pattern", "(unclosed");
	expect_load_error("split-merged",
			  MINI_HEAD "\"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": "
				    "{\"String\": \" \"}, \"behavior\": \"MergedWithPrevious\"}, {\"type\": \"ByteLevel\"}]}, " MINI_MODEL,
			  IAPO_ERR_UNSUPPORTED, "behavior", "MergedWithPrevious");
	expect_load_error("added-no-content",
			  "{\"added_tokens\": [{\"id\": 3, \"special\": true}], \"normalizer\": null, \"decoder\": {\"type\": \"ByteLevel\"}, " MINI_PRE MINI_MODEL,
			  IAPO_ERR_FORMAT, "added_tokens[0].content", NULL);
	expect_load_error("added-bad-flag",
			  "{\"added_tokens\": [{\"id\": 3, \"content\": \"<x>\", \"special\": 1}], \"normalizer\": null, \"decoder\": "
			  "{\"type\": \"ByteLevel\"}, " MINI_PRE MINI_MODEL,
			  IAPO_ERR_FORMAT, "added_tokens[0].special", "number");

	/* A malformed tokenizer_config.json is named too. */
	const char *dir = write_case("bad-config", MINI_HEAD MINI_PRE MINI_MODEL);
	char path[1200];
	snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
	CHECK(iapo_fs_write_file(path, "{\"eos_token\": 5}", 16) == IAPO_OK, "write");
	CHECK(iapo_tokenizer_load(dir, &t) == IAPO_ERR_FORMAT && strstr(iapo_errmsg(), "tokenizer_config.json") &&
		      strstr(iapo_errmsg(), "eos_token"),
	      "bad config: %s", iapo_errmsg());
	CHECK(iapo_fs_write_file(path, "{\"eos_token\": ", 14) == IAPO_OK, "write");
	CHECK(iapo_tokenizer_load(dir, &t) == IAPO_ERR_FORMAT && strstr(iapo_errmsg(), "tokenizer_config.json"),
	      "malformed config: %s", iapo_errmsg());
}

/* Split with a literal pattern, Removed behaviour, and added tokens with
 * lstrip/rstrip/single_word/normalized: a small hand-checked tokenizer. */
static void test_added_token_flags(void)
{
	const char *dir = write_case(
		"flags",
		"{\"added_tokens\": ["
		"{\"id\": 10, \"content\": \"<L>\", \"lstrip\": true, \"special\": true, \"normalized\": false},"
		"{\"id\": 11, \"content\": \"<R>\", \"rstrip\": true, \"special\": true, \"normalized\": false},"
		"{\"id\": 12, \"content\": \"cat\", \"single_word\": true, \"special\": false, \"normalized\": false},"
		"{\"id\": 13, \"content\": \"\\u00e9t\\u00e9\", \"special\": false, \"normalized\": true}],"
		"\"normalizer\": {\"type\": \"NFC\"}, \"decoder\": {\"type\": \"ByteLevel\"}, "
		"\"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": {\"String\": \"-\"}, "
		"\"behavior\": \"Removed\", \"invert\": false}, {\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"use_regex\": false}]}, "
		"\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"Ġ\": 2, \"c\": 3, \"t\": 4, \"x\": 5}, \"merges\": []}}");
	iapo_tokenizer *t = load_dir(dir);
	if (!t) return;
	size_t n;
	int *ids;
	/* lstrip eats the spaces before <L>; rstrip the spaces after <R>. */
	ids = encode_str(t, "a  <L>  b", 9, &n);
	CHECK(n == 5 && ids[0] == 0 && ids[1] == 10 && ids[2] == 2 && ids[3] == 2 && ids[4] == 1, "lstrip");
	iapo_free(ids);
	ids = encode_str(t, "a  <R>  b", 9, &n);
	CHECK(n == 5 && ids[0] == 0 && ids[1] == 2 && ids[2] == 2 && ids[3] == 11 && ids[4] == 1, "rstrip");
	iapo_free(ids);
	/* single_word: "cat" alone is the token, inside "xcat" it is not. */
	ids = encode_str(t, "a cat", 5, &n);
	CHECK(n == 3 && ids[2] == 12, "single_word alone");
	iapo_free(ids);
	ids = encode_str(t, "xcat", 4, &n);
	CHECK(n == 4 && ids[0] == 5 && ids[1] == 3, "single_word inside a word");
	iapo_free(ids);
	/* A normalized added token matches the NFC form of NFD input. */
	const char nfd[] = "e\xcc\x81te\xcc\x81";
	ids = encode_str(t, nfd, strlen(nfd), &n);
	CHECK(n == 1 && ids[0] == 13, "normalized added token (%zu ids)", n);
	iapo_free(ids);
	/* Removed: the '-' pieces disappear. */
	ids = encode_str(t, "a-b--c", 6, &n);
	CHECK(n == 3 && ids[0] == 0 && ids[1] == 1 && ids[2] == 3, "Removed split");
	iapo_free(ids);
	iapo_tokenizer_free(t);
}

/* ---- 5. write_bytelevel ---- */

static void test_write_bytelevel(void)
{
	const char *merges[] = {"Ġ t", "h e", "Ġt he", "Ġthe Ġthe"};
	const char *dir = tmp_dir("bytelevel");
	CHECK(iapo_tokenizer_write_bytelevel(dir, merges, 4) == IAPO_OK, "write: %s", iapo_errmsg());
	iapo_tokenizer *t = load_dir(dir);
	if (!t) return;
	CHECK(iapo_tokenizer_vocab_size(t) == 256 + 4 + 7, "vocab size %d", iapo_tokenizer_vocab_size(t));
	CHECK(iapo_tokenizer_token_id(t, "Ġthe") == 258 && iapo_tokenizer_token_id(t, "ĠtheĠthe") == 259, "merged ids");
	CHECK(iapo_tokenizer_token_id(t, "A") == 'A' && iapo_tokenizer_token_id(t, "Ā") == 0, "byte ids");
	int im_end = iapo_tokenizer_token_id(t, "<|im_end|>"), think = iapo_tokenizer_token_id(t, "<think>");
	CHECK(im_end == 262 && iapo_tokenizer_is_special(t, im_end), "<|im_end|>");
	CHECK(think == 263 && !iapo_tokenizer_is_special(t, think), "<think>");
	CHECK(iapo_tokenizer_token_id(t, "</answer>") == 266 && !iapo_tokenizer_is_special(t, 266), "</answer>");
	size_t n;
	const char *s = " the the<think>x";
	int *ids = encode_str(t, s, strlen(s), &n);
	/* Two regex pieces " the", each merged by rank into one token. */
	CHECK(n == 4 && ids[0] == 258 && ids[1] == 258 && ids[2] == think && ids[3] == 'x', "encode with merges (%zu)", n);
	iapo_free(ids);
	int eos[4];
	CHECK(iapo_tokenizer_eos_ids(t, eos, 4) == 2 && eos[0] == im_end && eos[1] == 256 + 4, "eos ids");
	check_chat(t, NULL, "Hi", 1, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");

	/* Arbitrary bytes, valid UTF-8 or not, round-trip exactly. */
	static const char *const invalid[] = {"\xff", "\xc0\x80", "\xed\xa0\x80", "a\xe2\x82", "\x80\x80x", "\xf4\x90\x80\x80",
					      "\xc3", "ok \xe2\x82\xac \xe2\x82 \xf0\x9f\x98", "\xf5\xfe\xfd", "<|im_end|\xff>"};
	iapo_rng r;
	iapo_rng_seed(&r, 7, 0, 0, 0);
	char buf[512];
	char *out = NULL;
	size_t out_len = 0, out_cap = 0, bad = 0;
	int *rids = NULL;
	size_t rn = 0, rcap = 0;
	for (int i = 0; i < 3000; i++) {
		size_t len;
		if (i < 10) {
			len = strlen(invalid[i]);
			memcpy(buf, invalid[i], len);
		} else {
			len = (size_t)iapo_rng_below(&r, 200);
			int mode = (int)iapo_rng_below(&r, 3);
			for (size_t k = 0; k < len; k++) {
				uint64_t v = iapo_rng_below(&r, 256);
				/* mode 1: mostly ASCII text; mode 2: spaces and high bytes */
				if (mode == 1 && v < 200) v = 32 + v % 95;
				if (mode == 2 && v < 128) v = " \n\t\r"[v % 4];
				buf[k] = (char)v;
			}
		}
		if (iapo_tokenizer_encode(t, buf, len, &rids, &rn, &rcap) != IAPO_OK ||
		    iapo_tokenizer_decode(t, rids, rn, 0, &out, &out_len, &out_cap) != IAPO_OK || out_len != len ||
		    memcmp(out, buf, len)) {
			if (bad++ < 3) fprintf(stderr, "  string %d (%zu bytes) does not round-trip\n", i, len);
		}
	}
	CHECK(bad == 0, "%zu of 3000 byte strings do not round-trip", bad);
	/* Invalid bytes go through their byte tokens. */
	CHECK(iapo_tokenizer_encode(t, "\xff\xc0", 2, &rids, &rn, &rcap) == IAPO_OK && rn == 2 &&
		      rids[0] == iapo_tokenizer_token_id(t, "ÿ") && rids[1] == iapo_tokenizer_token_id(t, "À"),
	      "invalid bytes");
	iapo_free(rids);
	iapo_free(out);
	iapo_tokenizer_free(t);

	/* Bad merges are refused. */
	const char *bad1[] = {"Ġ t", "x yz"};
	CHECK(iapo_tokenizer_write_bytelevel(tmp_dir("bad-merges"), bad1, 2) == IAPO_ERR_ARG && strstr(iapo_errmsg(), "merges[1]") &&
		      strstr(iapo_errmsg(), "yz"),
	      "unknown merge token: %s", iapo_errmsg());
	const char *bad2[] = {"nospace"};
	CHECK(iapo_tokenizer_write_bytelevel(tmp_dir("bad-merges"), bad2, 1) == IAPO_ERR_ARG && strstr(iapo_errmsg(), "merges[0]"),
	      "merge without a space: %s", iapo_errmsg());
}

/* The tokenizer we write is read by HF code (transformers.js) the way we
 * read it: the first 2000 corpus strings, encoded by both. */
static void test_written_vs_oracle(void)
{
	const char *merges[] = {"Ġ t", "h e", "Ġt he", "i n", "Ġ a", "e r", "Ġ in", "o n", "Ġ s", "ä ¸"};
	const char *dir = tmp_dir("bytelevel-oracle");
	CHECK(iapo_tokenizer_write_bytelevel(dir, merges, 10) == IAPO_OK, "write: %s", iapo_errmsg());
	iapo_tokenizer *t = load_dir(dir);
	char path[1200], in_path[1200], out_path[1200], cmd[4200];
	snprintf(path, sizeof path, "%s/golden.tsv", fixture_dir("qwen3-tokenizer"));
	size_t n_rows;
	char *data;
	golden_row *rows = read_golden(path, &n_rows, &data);
	if (!t || !rows) {
		iapo_tokenizer_free(t);
		if (rows) free_golden(rows, n_rows, data);
		return;
	}
	size_t n_all = n_rows;
	if (n_rows > 2000) n_rows = 2000;
	snprintf(in_path, sizeof in_path, "%s/in.hex", dir);
	snprintf(out_path, sizeof out_path, "%s/out.ids", dir);
	FILE *f = fopen(in_path, "w");
	for (size_t i = 0; f && i < n_rows; i++) {
		for (size_t k = 0; k < rows[i].text_len; k++) fprintf(f, "%02x", (unsigned char)rows[i].text[k]);
		fputc('\n', f);
	}
	if (f) fclose(f);
	/* Empty strings make empty hex lines, which the script skips: leave them out. */
	snprintf(cmd, sizeof cmd, "grep -v '^$' '%s' | node tests/oracle/tokenizer_encode.js '%s/npm-tokenizer' '%s' > '%s'", in_path,
		 test_fixtures(), dir, out_path);
	int rc = system(cmd);
	CHECK(rc == 0, "%s: exit %d", cmd, rc);
	FILE *g = fopen(out_path, "r");
	char *line = NULL;
	size_t line_cap = 0, checked = 0, bad = 0, n = 0, cap = 0;
	int *ids = NULL;
	for (size_t i = 0; g && rc == 0 && i < n_rows; i++) {
		if (!rows[i].text_len) continue;
		if (getline(&line, &line_cap, g) < 0) break;
		CHECK(iapo_tokenizer_encode(t, rows[i].text, rows[i].text_len, &ids, &n, &cap) == IAPO_OK, "encode");
		size_t k = 0;
		int same = 1;
		for (char *p = line, *end;; p = end) {
			long v = strtol(p, &end, 10);
			if (end == p) break;
			if (k >= n || ids[k] != v) same = 0;
			k++;
		}
		if (!same || k != n) bad++;
		checked++;
	}
	CHECK(checked + 1 >= n_rows && bad == 0, "written tokenizer: %zu of %zu strings encode differently in transformers.js", bad,
	      checked);
	fprintf(stderr, "  written byte-level tokenizer vs transformers.js: %zu strings, %zu mismatches\n", checked, bad);
	if (g) fclose(g);
	free(line);
	iapo_free(ids);
	iapo_tokenizer_free(t);
	free_golden(rows, n_all, data);
}

/* Every allocation of a load and of an encode may fail: a clean NOMEM each
 * time, never a crash or a leak (LeakSanitizer checks under make asan). */
static void test_alloc_failures(void)
{
	const char *merges[] = {"Ġ t", "h e"};
	const char *dir = tmp_dir("alloc");
	CHECK(iapo_tokenizer_write_bytelevel(dir, merges, 2) == IAPO_OK, "write: %s", iapo_errmsg());
	int loads = 0, wrong = 0;
	for (unsigned long k = 1; k < 100000; k++) {
		iapo_tokenizer *t = NULL;
		iapo_mem_fail_after(k);
		iapo_status st = iapo_tokenizer_load(dir, &t);
		iapo_mem_fail_after(0);
		if (st == IAPO_OK) {
			const char *text = "hello <think>wörld</think> \xff 123";
			int *ids = NULL;
			size_t n = 0, cap = 0;
			for (unsigned long j = 1; j < 1000; j++) {
				iapo_mem_fail_after(j);
				st = iapo_tokenizer_encode(t, text, strlen(text), &ids, &n, &cap);
				iapo_mem_fail_after(0);
				if (st == IAPO_OK) break;
				if (st != IAPO_ERR_NOMEM && wrong++ < 3) fprintf(stderr, "  encode: %s\n", iapo_errmsg());
			}
			iapo_free(ids);
			iapo_tokenizer_free(t);
			break;
		}
		loads++;
		if ((st != IAPO_ERR_NOMEM || t) && wrong++ < 3) fprintf(stderr, "  load failure %lu: %d %s\n", k, st, iapo_errmsg());
	}
	CHECK(loads > 100, "only %d allocations in a load?", loads);
	CHECK(wrong == 0, "%d injected failures were not reported as out of memory", wrong);
}

int main(void)
{
	RUN(test_golden_qwen3);
	RUN(test_golden_llama3_style);
	RUN(test_golden_gpt2_style);
	RUN(test_golden_bytelevel_only);
	RUN(test_regex_semantics);
	RUN(test_invalid_utf8_qwen);
	RUN(test_chat_qwen3);
	RUN(test_chat_templates);
	RUN(test_bad_input);
	RUN(test_added_token_flags);
	RUN(test_write_bytelevel);
	RUN(test_written_vs_oracle);
	RUN(test_alloc_failures);
	TEST_END();
}
