/*
 * test_dataset.c — the JSONL dataset reader (src/rl/dataset.h): the real
 * GSM8K train/test files (row counts, integer labels, and every gold solution
 * scored correct by the verifier's "####" path), MATH-, DAPO- and generic-like
 * files written here, every bad-row error with its line number, the seeded
 * split, the reference's prompt strings, and allocation-failure injection.
 * The GSM8K files live at ../shared/data/gsm8k/ relative to the repository
 * root (tests run from the root; CI has them at the same place).
 */
#include <stdint.h>

#include "core/mem.h"
#include "rl/dataset.h"
#include "rl/reward.h"
#include "test.h"

#define GSM8K_DIR "../shared/data/gsm8k"

static char tmp_path[4096];

/* Writes content to IAPO_TMP/name and returns the path (static buffer). */
static const char *write_tmp(const char *name, const char *content, size_t n)
{
	snprintf(tmp_path, sizeof tmp_path, "%s/%s", test_env("IAPO_TMP", "/tmp"), name);
	FILE *f = fopen(tmp_path, "wb");
	if (!f) return tmp_path;
	fwrite(content, 1, n, f);
	fclose(f);
	return tmp_path;
}

static const char *write_str(const char *name, const char *content) { return write_tmp(name, content, strlen(content)); }

static int is_integer(const char *s)
{
	if (*s == '-') s++;
	if (!*s) return 0;
	for (; *s; s++)
		if (*s < '0' || *s > '9') return 0;
	return 1;
}

/* ---- GSM8K --------------------------------------------------------------- */

static void check_gsm8k(const char *file, size_t want_rows)
{
	char path[256];
	snprintf(path, sizeof path, GSM8K_DIR "/%s", file);
	iapo_dataset ds, gold;
	iapo_status st = iapo_dataset_load(path, NULL, &ds);
	CHECK(st == IAPO_OK, "load %s: %s", path, iapo_errmsg());
	if (st != IAPO_OK) return;
	CHECK(ds.n == want_rows, "%s: %zu rows, want %zu", file, ds.n, want_rows);
	CHECK(ds.format == IAPO_DATA_GSM8K, "%s detected as %s", file, iapo_data_format_name(ds.format));
	/* The gold solution text itself, read as a generic row whose prompt
	 * and label are both the "answer" field. */
	iapo_dataset_opts raw = {.format = IAPO_DATA_GENERIC, .prompt_field = "answer", .answer_field = "answer"};
	st = iapo_dataset_load(path, &raw, &gold);
	CHECK(st == IAPO_OK && gold.n == ds.n, "load raw %s: %s", path, iapo_errmsg());
	size_t non_int = 0, scored = 0, missed = 0, with_comma = 0;
	for (size_t i = 0; i < ds.n; i++) {
		if (!is_integer(ds.ex[i].label)) {
			if (non_int++ < 5) CHECK(0, "%s row %zu: label \"%s\" is not an integer", file, i + 1, ds.ex[i].label);
		}
		if (st == IAPO_OK && i < gold.n) {
			const char *sol = gold.ex[i].label;
			const char *h = strstr(sol, "####");
			if (h && strchr(h, ',')) with_comma++;
			int c = -1, f = -1;
			float r = iapo_reward(sol, ds.ex[i].label, NULL, &c, &f);
			if (iapo_answer_is_correct(sol, ds.ex[i].label) && c == 1 && f == 0 && r == 0.5f)
				scored++;
			else if (missed++ < 5)
				CHECK(0, "%s row %zu: gold solution not scored correct against \"%s\"", file, i + 1,
				      ds.ex[i].label);
		}
	}
	CHECK(non_int == 0, "%s: %zu non-integer labels", file, non_int);
	CHECK(scored == ds.n, "%s: %zu of %zu gold solutions scored correct", file, scored, ds.n);
	CHECK(with_comma > 0, "%s: expected some labels written with thousands commas", file);
	fprintf(stderr, "  %s: %zu rows, %zu gold solutions scored correct (%zu with a comma in \"#### N\")\n", file,
		ds.n, scored, with_comma);
	iapo_dataset_free(&gold);
	iapo_dataset_free(&ds);
}

static void test_gsm8k_train(void)
{
	check_gsm8k("train.jsonl", 7473);
	/* First row, by hand. */
	iapo_dataset ds;
	iapo_dataset_opts o = {.format = IAPO_DATA_GSM8K, .max_rows = 1};
	CHECK(iapo_dataset_load(GSM8K_DIR "/train.jsonl", &o, &ds) == IAPO_OK, "%s", iapo_errmsg());
	CHECK(ds.n == 1 && strcmp(ds.ex[0].label, "72") == 0 &&
		      strncmp(ds.ex[0].prompt, "Natalia sold clips to 48 of her friends in April", 48) == 0,
	      "first row");
	iapo_dataset_free(&ds);
}

static void test_gsm8k_test(void) { check_gsm8k("test.jsonl", 1319); }

/* ---- other layouts --------------------------------------------------------- */

static void test_math(void)
{
	const char *p = write_str("math.jsonl",
				  "{\"problem\": \"What is $\\\\frac{1}{2}+\\\\frac{1}{4}$?\", \"solution\": "
				  "\"We add: $\\\\boxed{\\\\frac{3}{4}}$.\"}\n"
				  "\n"
				  "{\"problem\": \"Compute 6*7.\", \"answer\": \"42\", \"solution\": \"\\\\boxed{41}\"}\r\n"
				  "   \n"
				  "{\"problem\": \"Solve.\", \"solution\": \"So \\\\boxed{x = 5} and also \\\\boxed{y=\\\\{1,2\\\\}}\"}\n"
				  "{\"problem\": \"Numeric label\", \"answer\": 2.5}");
	iapo_dataset ds;
	CHECK(iapo_dataset_load(p, NULL, &ds) == IAPO_OK, "%s", iapo_errmsg());
	CHECK(ds.n == 4 && ds.format == IAPO_DATA_MATH, "n %zu format %d", ds.n, ds.format);
	if (ds.n == 4) {
		CHECK(strcmp(ds.ex[0].prompt, "What is $\\frac{1}{2}+\\frac{1}{4}$?") == 0, "prompt 0: %s", ds.ex[0].prompt);
		CHECK(strcmp(ds.ex[0].label, "\\frac{3}{4}") == 0, "label from \\boxed: %s", ds.ex[0].label);
		CHECK(strcmp(ds.ex[1].label, "42") == 0, "\"answer\" beats the solution: %s", ds.ex[1].label);
		CHECK(strcmp(ds.ex[2].label, "\\{1,2\\}") == 0, "the last box, after '=': %s", ds.ex[2].label);
		CHECK(strcmp(ds.ex[3].label, "2.5") == 0, "numeric label: %s", ds.ex[3].label);
		CHECK(iapo_answer_is_correct("<answer>0.75</answer>", ds.ex[0].label), "0.75 = 3/4");
	}
	iapo_dataset_free(&ds);
	CHECK(ds.n == 0 && ds.ex == NULL, "free empties");
}

static void test_dapo(void)
{
	const char *p = write_str(
		"dapo.jsonl",
		"{\"data_source\": \"math_dapo\", \"prompt\": [{\"role\": \"user\", \"content\": \"Solve the following math "
		"problem step by step. The last line of your response should be of the form Answer: $Answer (without "
		"quotes) where $Answer is the answer to the problem.\\n\\nFind the sum of 2 and 3.\\n\\nRemember to put "
		"your answer on its own line after \\\"Answer:\\\".\"}], \"ability\": \"MATH\", \"reward_model\": "
		"{\"ground_truth\": \"5\", \"style\": \"rule-lighteval/MATH_v2\"}}\n"
		"{\"prompt\": [{\"role\": \"system\", \"content\": \"sys\"}, {\"role\": \"user\", \"content\": \"No "
		"affixes here.\"}], \"reward_model\": {\"ground_truth\": 34}}\n"
		"{\"prompt\": [{\"role\": \"user\", \"content\": \"Find the sum of 2 and 3.\"}], \"reward_model\": "
		"{\"ground_truth\": \"5\"}}\n");
	iapo_dataset ds;
	CHECK(iapo_dataset_load(p, NULL, &ds) == IAPO_OK, "%s", iapo_errmsg());
	CHECK(ds.n == 3 && ds.format == IAPO_DATA_DAPO, "n %zu format %d", ds.n, ds.format);
	if (ds.n == 3) {
		CHECK(strcmp(ds.ex[0].prompt, "Find the sum of 2 and 3.") == 0, "affixes stripped: [%s]", ds.ex[0].prompt);
		CHECK(strcmp(ds.ex[0].label, "5") == 0, "label %s", ds.ex[0].label);
		CHECK(strcmp(ds.ex[1].prompt, "No affixes here.") == 0, "the user turn: [%s]", ds.ex[1].prompt);
		CHECK(strcmp(ds.ex[1].label, "34") == 0, "numeric ground truth: %s", ds.ex[1].label);
	}
	iapo_dataset_free(&ds);
	/* Dedupe: rows 1 and 3 carry the same problem once the affixes go. */
	iapo_dataset_opts o = {.dedupe = 1};
	CHECK(iapo_dataset_load(p, &o, &ds) == IAPO_OK, "%s", iapo_errmsg());
	CHECK(ds.n == 2 && ds.duplicates == 1, "dedupe: n %zu duplicates %zu", ds.n, ds.duplicates);
	iapo_dataset_free(&ds);
	o = (iapo_dataset_opts){.max_rows = 2};
	CHECK(iapo_dataset_load(p, &o, &ds) == IAPO_OK && ds.n == 2, "max_rows");
	iapo_dataset_free(&ds);
}

static void test_generic_and_fields(void)
{
	iapo_dataset ds;
	const char *p = write_str("generic.jsonl", "\xEF\xBB\xBF{\"prompt\": \"2+2?\", \"answer\": \"4\"}\n"
						   "{\"prompt\": \"3+3?\", \"answer\": 6}\n");
	CHECK(iapo_dataset_load(p, NULL, &ds) == IAPO_OK, "%s", iapo_errmsg());
	CHECK(ds.n == 2 && ds.format == IAPO_DATA_GENERIC && strcmp(ds.ex[0].prompt, "2+2?") == 0 &&
		      strcmp(ds.ex[1].label, "6") == 0,
	      "generic rows (BOM skipped)");
	iapo_dataset_free(&ds);
	/* Overridden, dotted field names (verl-style GSM8K). */
	p = write_str("verl.jsonl", "{\"data_source\": \"gsm8k\", \"extra_info\": {\"question\": \"Q1\", \"answer\": "
				    "\"work\\n#### 1,234\"}}\n");
	iapo_dataset_opts o = {.format = IAPO_DATA_GSM8K, .prompt_field = "extra_info.question",
			       .answer_field = "extra_info.answer"};
	CHECK(iapo_dataset_load(p, &o, &ds) == IAPO_OK, "%s", iapo_errmsg());
	CHECK(ds.n == 1 && strcmp(ds.ex[0].prompt, "Q1") == 0 && strcmp(ds.ex[0].label, "1234") == 0,
	      "dotted fields, commas stripped: %s", ds.n ? ds.ex[0].label : "");
	iapo_dataset_free(&ds);
	/* Auto-detection falls back to generic when both fields are named. */
	p = write_str("custom.jsonl", "{\"instruction\": \"Say 7\", \"output\": \"7\"}\n");
	o = (iapo_dataset_opts){.prompt_field = "instruction", .answer_field = "output"};
	CHECK(iapo_dataset_load(p, &o, &ds) == IAPO_OK && ds.n == 1 && strcmp(ds.ex[0].label, "7") == 0, "%s",
	      iapo_errmsg());
	iapo_dataset_free(&ds);
	/* Names of formats. */
	iapo_data_format f;
	CHECK(iapo_data_format_parse("dapo", &f) == IAPO_OK && f == IAPO_DATA_DAPO, "parse dapo");
	CHECK(iapo_data_format_parse("gsm8k", &f) == IAPO_OK && f == IAPO_DATA_GSM8K, "parse gsm8k");
	CHECK(iapo_data_format_parse("csv", &f) == IAPO_ERR_ARG && strstr(iapo_errmsg(), "found \"csv\""), "%s",
	      iapo_errmsg());
	CHECK(strcmp(iapo_data_format_name(IAPO_DATA_MATH), "math") == 0, "name");
}

/* ---- bad rows ---------------------------------------------------------------- */

static const struct {
	const char *content;
	iapo_data_format format;
	const char *msg; /* expected after "<path>: " */
} BAD[] = {
	{"{\"question\": \"q\", \"answer\": \"#### 1\"}\n{\"question\": \"q\", \"answer\": \"#### 2\"\n", IAPO_DATA_AUTO,
	 "line 2: expected a JSON object, found invalid JSON"},
	{"\n\n[1, 2]\n", IAPO_DATA_AUTO, "line 3: expected a JSON object, found an array"},
	{"\"just a string\"\n", IAPO_DATA_AUTO, "line 1: expected a JSON object, found a string"},
	{"{\"question\": \"q\", \"answer\": \"#### 1\"} {\"x\": 1}\n", IAPO_DATA_AUTO,
	 "line 1: expected one JSON value per line, found more after it"},
	{"{\"question\": \"q\", \"answer\": \"#### 1\"}\n{\"question\": \"q\"}\n", IAPO_DATA_AUTO,
	 "line 2: expected field \"answer\" (a string), found fields \"question\""},
	{"{\"question\": 5, \"answer\": \"#### 1\"}\n", IAPO_DATA_AUTO,
	 "line 1: expected field \"question\" to be a string or a list of messages, found a number"},
	{"{\"question\": \"q\", \"answer\": [\"#### 1\"]}\n", IAPO_DATA_AUTO,
	 "line 1: expected field \"answer\" to be a string, found an array"},
	{"{\"question\": \"q\", \"answer\": null}\n", IAPO_DATA_AUTO,
	 "line 1: expected field \"answer\" to be a string, found null"},
	{"{\"question\": \"\", \"answer\": \"#### 1\"}\n", IAPO_DATA_AUTO,
	 "line 1: expected field \"question\" to be a non-empty prompt, found an empty string"},
	{"{\"question\": \" \\n \", \"answer\": \"#### 1\"}\n", IAPO_DATA_AUTO,
	 "line 1: expected field \"question\" to be a non-empty prompt, found only whitespace"},
	{"{\"question\": \"q\", \"answer\": \"so 12\"}\n", IAPO_DATA_AUTO,
	 "line 1: expected field \"answer\" to end in \"#### N\", found \"so 12\""},
	{"{\"question\": \"q\", \"answer\": \"#### \"}\n", IAPO_DATA_AUTO,
	 "line 1: expected a non-empty label, found an empty string"},
	{"{\"prompt\": \"p\", \"answer\": \"\"}\n", IAPO_DATA_AUTO,
	 "line 1: expected a non-empty label, found an empty string"},
	{"{\"problem\": \"p\", \"solution\": \"it is 3\"}\n", IAPO_DATA_AUTO,
	 "line 1: expected field \"answer\", or a \"solution\" with \\boxed{...}, found a solution without \\boxed"},
	{"{\"problem\": \"p\"}\n", IAPO_DATA_AUTO, "line 1: expected field \"solution\" (a string), found fields \"problem\""},
	{"{\"prompt\": [], \"reward_model\": {\"ground_truth\": \"1\"}}\n", IAPO_DATA_AUTO,
	 "line 1: expected field \"prompt\" to be a list of messages {\"role\": \"user\", \"content\": string}, found "
	 "an empty list"},
	{"{\"prompt\": [{\"role\": \"user\", \"content\": \"x\"}], \"reward_model\": {}}\n", IAPO_DATA_AUTO,
	 "line 1: expected field \"reward_model.ground_truth\" (a string)"},
	{"{\"text\": \"hello\"}\n", IAPO_DATA_AUTO,
	 "line 1: expected the fields of a GSM8K (\"question\", \"answer\"), MATH (\"problem\", \"answer\" or "
	 "\"solution\"), DAPO (\"prompt\", \"reward_model\") or generic (\"prompt\", \"answer\") row, found fields "
	 "\"text\""},
	{"{}\n", IAPO_DATA_GSM8K, "line 1: expected field \"question\" (a string or a list of messages), found no fields"},
	{"\n  \n", IAPO_DATA_AUTO, "expected at least one row, found none"},
	{"", IAPO_DATA_AUTO, "expected at least one row, found none"},
	{"{\"prompt\": \"p\", \"answer\": \"1\"}\n{\"prompt\": \"p\", \"answer\": tru}\n", IAPO_DATA_AUTO,
	 "line 2: expected a JSON object, found invalid JSON at byte 27: \"tru}\""},
};

static void test_bad_rows(void)
{
	for (size_t i = 0; i < sizeof BAD / sizeof *BAD; i++) {
		char name[32];
		snprintf(name, sizeof name, "bad%zu.jsonl", i);
		const char *p = write_str(name, BAD[i].content);
		char want[8192];
		snprintf(want, sizeof want, "%s: %s", p, BAD[i].msg);
		iapo_dataset ds = {(iapo_example *)1, 99, 0, 0};
		iapo_dataset_opts o = {.format = BAD[i].format};
		iapo_status st = iapo_dataset_load(p, &o, &ds);
		CHECK(st == IAPO_ERR_FORMAT, "bad row %zu: status %d (%s)", i, st, iapo_errmsg());
		CHECK(strncmp(iapo_errmsg(), want, strlen(want)) == 0, "bad row %zu:\n    got  %s\n    want %s", i,
		      iapo_errmsg(), want);
		CHECK(ds.n == 0 && ds.ex == NULL, "bad row %zu: output left empty", i);
	}
	/* A NUL byte inside a line. */
	const char *p = write_tmp("nul.jsonl", "{\"prompt\": \"a\0b\", \"answer\": \"1\"}\n", 33);
	iapo_dataset ds;
	CHECK(iapo_dataset_load(p, NULL, &ds) == IAPO_ERR_FORMAT && strstr(iapo_errmsg(), "line 1: expected a JSON "
											   "object, found a NUL byte"),
	      "%s", iapo_errmsg());
	/* A missing file and a directory. */
	CHECK(iapo_dataset_load("/nonexistent/x.jsonl", NULL, &ds) == IAPO_ERR_IO &&
		      strstr(iapo_errmsg(), "/nonexistent/x.jsonl: cannot open"),
	      "%s", iapo_errmsg());
	CHECK(iapo_dataset_load(test_env("IAPO_TMP", "/tmp"), NULL, &ds) == IAPO_ERR_IO, "directory: %s",
	      iapo_errmsg());
	/* A long line (beyond the 64 KiB read block) parses. */
	size_t n = 200000;
	char *big = malloc(n + 64);
	if (big) {
		size_t m = (size_t)sprintf(big, "{\"prompt\": \"");
		memset(big + m, 'x', n);
		m += n;
		m += (size_t)sprintf(big + m, "\", \"answer\": \"9\"}");
		p = write_tmp("long.jsonl", big, m); /* no final newline */
		CHECK(iapo_dataset_load(p, NULL, &ds) == IAPO_OK && ds.n == 1 && strlen(ds.ex[0].prompt) == n, "%s",
		      iapo_errmsg());
		iapo_dataset_free(&ds);
		free(big);
	}
}

static void test_alloc_failures(void)
{
	const char *p = write_str("alloc.jsonl", "{\"prompt\": \"a\", \"answer\": \"1\"}\n{\"prompt\": \"b\", "
						 "\"answer\": \"2\"}\n{\"prompt\": \"a\", \"answer\": \"1\"}\n");
	iapo_dataset_opts o = {.dedupe = 1};
	int failed = 0, ok = 0;
	for (unsigned long k = 1; k < 40; k++) {
		iapo_dataset ds;
		iapo_mem_fail_after(k);
		iapo_status st = iapo_dataset_load(p, &o, &ds);
		iapo_mem_fail_after(0);
		if (st == IAPO_OK) {
			ok++;
			CHECK(ds.n == 2, "n %zu", ds.n);
			iapo_dataset_free(&ds);
		} else {
			failed++;
			CHECK(st == IAPO_ERR_NOMEM && ds.n == 0, "failure %lu: %d %s", k, st, iapo_errmsg());
		}
	}
	CHECK(failed >= 5 && ok > 0, "injected failures %d, successes %d", failed, ok);
}

/* ---- split ------------------------------------------------------------------ */

static void make_rows(iapo_dataset *ds, size_t n)
{
	char buf[4096];
	size_t m = 0;
	for (size_t i = 0; i < n && m + 64 < sizeof buf; i++)
		m += (size_t)snprintf(buf + m, sizeof buf - m, "{\"prompt\": \"p%zu\", \"answer\": \"%zu\"}\n", i, i);
	const char *p = write_str("split.jsonl", buf);
	CHECK(iapo_dataset_load(p, NULL, ds) == IAPO_OK && ds->n == n, "%s", iapo_errmsg());
}

static size_t row_of(const iapo_example *e) { return (size_t)strtoul(e->prompt + 1, NULL, 10); }

static void test_split(void)
{
	iapo_dataset ds, tr, ev, tr2, ev2;
	make_rows(&ds, 50);
	CHECK(iapo_dataset_split(&ds, 0.2, 0, 42, &tr, &ev) == IAPO_OK, "%s", iapo_errmsg());
	CHECK(tr.n == 40 && ev.n == 10, "sizes %zu/%zu", tr.n, ev.n);
	/* Disjoint and complete; labels stay with their prompts. */
	int seen[50] = {0};
	for (size_t i = 0; i < tr.n; i++) seen[row_of(&tr.ex[i])]++;
	for (size_t i = 0; i < ev.n; i++) seen[row_of(&ev.ex[i])]++;
	int bad = 0;
	for (int i = 0; i < 50; i++) bad += seen[i] != 1;
	CHECK(bad == 0, "%d rows not in exactly one part", bad);
	for (size_t i = 0; i < tr.n; i++)
		CHECK((size_t)atoi(tr.ex[i].label) == row_of(&tr.ex[i]), "label follows prompt");
	/* Shuffled, not the identity. */
	size_t moved = 0;
	for (size_t i = 0; i < tr.n; i++) moved += row_of(&tr.ex[i]) != i;
	CHECK(moved > 20, "only %zu rows moved", moved);
	/* Deterministic. */
	CHECK(iapo_dataset_split(&ds, 0.2, 0, 42, &tr2, &ev2) == IAPO_OK, "again");
	int same = tr2.n == tr.n && ev2.n == ev.n;
	for (size_t i = 0; same && i < tr.n; i++) same = strcmp(tr.ex[i].prompt, tr2.ex[i].prompt) == 0;
	for (size_t i = 0; same && i < ev.n; i++) same = strcmp(ev.ex[i].prompt, ev2.ex[i].prompt) == 0;
	CHECK(same, "same seed, same split");
	iapo_dataset_free(&tr2);
	iapo_dataset_free(&ev2);
	/* A different seed differs. */
	CHECK(iapo_dataset_split(&ds, 0.2, 0, 43, &tr2, &ev2) == IAPO_OK, "seed 43");
	int differ = 0;
	for (size_t i = 0; i < ev.n; i++) differ += strcmp(ev.ex[i].prompt, ev2.ex[i].prompt) != 0;
	CHECK(differ > 0, "seeds 42 and 43 gave the same eval rows");
	iapo_dataset_free(&tr2);
	iapo_dataset_free(&ev2);
	iapo_dataset_free(&tr);
	iapo_dataset_free(&ev);
	/* Counts, edges, errors. */
	CHECK(iapo_dataset_split(&ds, 0, 7, 1, &tr, &ev) == IAPO_OK && tr.n == 43 && ev.n == 7, "eval_count");
	iapo_dataset_free(&tr);
	iapo_dataset_free(&ev);
	CHECK(iapo_dataset_split(&ds, 0.0, 0, 1, &tr, &ev) == IAPO_OK && tr.n == 50 && ev.n == 0 && !ev.ex,
	      "no eval");
	iapo_dataset_free(&tr);
	iapo_dataset_free(&ev);
	CHECK(iapo_dataset_split(&ds, 1.0, 0, 1, &tr, &ev) == IAPO_OK && tr.n == 0 && ev.n == 50, "all eval");
	iapo_dataset_free(&tr);
	iapo_dataset_free(&ev);
	CHECK(iapo_dataset_split(&ds, 0, 51, 1, &tr, &ev) == IAPO_ERR_ARG && strstr(iapo_errmsg(), "found 51"), "%s",
	      iapo_errmsg());
	CHECK(iapo_dataset_split(&ds, 1.5, 0, 1, &tr, &ev) == IAPO_ERR_ARG, "fraction 1.5");
	CHECK(iapo_dataset_split(&ds, NAN, 0, 1, &tr, &ev) == IAPO_ERR_ARG, "fraction NaN");
	size_t idx[3] = {4, 0, 4};
	CHECK(iapo_dataset_subset(&ds, idx, 3, &tr) == IAPO_OK && tr.n == 3 && strcmp(tr.ex[0].prompt, "p4") == 0 &&
		      strcmp(tr.ex[2].label, "4") == 0,
	      "subset by an index list");
	iapo_dataset_free(&tr);
	idx[1] = 50;
	CHECK(iapo_dataset_subset(&ds, idx, 3, &tr) == IAPO_ERR_ARG, "index out of range");
	iapo_dataset_free(&ds);
}

/* ---- the reference's prompt ------------------------------------------------- */

static void test_prompt(void)
{
	CHECK(strlen(IAPO_R1_SYSTEM_PROMPT) == 396, "R1 prompt is %zu chars", strlen(IAPO_R1_SYSTEM_PROMPT));
	CHECK(strncmp(IAPO_R1_SYSTEM_PROMPT, "A conversation between User and Assistant. The user asks a question, "
					     "and the Assistant solves it.\n    The assistant first thinks",
		      126) == 0,
	      "R1 prompt start, with its 4-space indentation");
	const char *tail = IAPO_R1_SYSTEM_PROMPT + 396 - 36;
	CHECK(strcmp(tail, "\n    <answer> answer here </answer>.") == 0, "R1 prompt end: [%s]", tail);
	int newlines = 0;
	for (const char *s = IAPO_R1_SYSTEM_PROMPT; *s; s++)
		if (*s == '\n') {
			newlines++;
			CHECK(strncmp(s + 1, "    ", 4) == 0 && s[5] != ' ', "4 spaces after \\n");
		}
	CHECK(newlines == 4, "%d newlines", newlines);
	const char *g = iapo_prompt_system(IAPO_DATA_GSM8K);
	CHECK(strlen(g) == 396 + 1 + 36 && strncmp(g, IAPO_R1_SYSTEM_PROMPT, 396) == 0 &&
		      strcmp(g + 396, "\nThe answer must be a single integer.") == 0,
	      "GSM8K system prompt");
	CHECK(strcmp(iapo_prompt_system(IAPO_DATA_DAPO), g) == 0, "DAPO = GSM8K");
	const char *m = iapo_prompt_system(IAPO_DATA_MATH);
	CHECK(strlen(m) == 397 && m[396] == '\n', "MATH: empty task, ends in \\n");
	CHECK(strcmp(iapo_prompt_task(IAPO_DATA_MATH), "") == 0 &&
		      strcmp(iapo_prompt_task(IAPO_DATA_GSM8K), "The answer must be a single integer.") == 0,
	      "tasks");
	CHECK(strcmp(IAPO_ONESHOT_USER, "What is 2+2?") == 0, "one-shot user");
	CHECK(strcmp(IAPO_ONESHOT_ASSISTANT, "<think>To calculate 2+2, we simply add the numbers together: 2 + 2 = "
					     "4.</think>\n<answer>4</answer>") == 0,
	      "one-shot assistant");
	/* The one-shot answer is itself well formed and correct. */
	CHECK(iapo_reward(IAPO_ONESHOT_ASSISTANT, "4", NULL, NULL, NULL) == 1.5f, "one-shot scores 1.5");
	iapo_prompt_msg msg[4];
	int k = iapo_prompt_messages(IAPO_DATA_GSM8K, NULL, "Q?", 1, msg);
	CHECK(k == 4 && strcmp(msg[0].role, "system") == 0 && msg[0].content == g && strcmp(msg[1].role, "user") == 0 &&
		      msg[1].content == IAPO_ONESHOT_USER && strcmp(msg[2].role, "assistant") == 0 &&
		      msg[2].content == IAPO_ONESHOT_ASSISTANT && strcmp(msg[3].role, "user") == 0 &&
		      strcmp(msg[3].content, "Q?") == 0,
	      "4-message conversation");
	k = iapo_prompt_messages(IAPO_DATA_MATH, "custom", "Q?", 0, msg);
	CHECK(k == 2 && strcmp(msg[0].content, "custom") == 0 && strcmp(msg[1].content, "Q?") == 0, "no one-shot");
}

int main(void)
{
	RUN(test_gsm8k_train);
	RUN(test_gsm8k_test);
	RUN(test_math);
	RUN(test_dapo);
	RUN(test_generic_and_fields);
	RUN(test_bad_rows);
	RUN(test_alloc_failures);
	RUN(test_split);
	RUN(test_prompt);
	TEST_END();
}
