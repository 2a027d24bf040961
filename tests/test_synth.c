/*
 * test_synth.c — the synthetic reasoning task (src/data/synth.h): the same
 * seed writes the same files and another seed different ones; every trace is
 * scored correct with the format bonus by the real reward library (and still
 * is with every redundant sentence removed); spans tile the completion; every
 * step computes correctly and the chain of steps starts at the prompt's first
 * number and ends at the answer; the redundant share varies across rows;
 * train and test share no prompt; the dataset loader reads the files; options
 * do what they say, and bad ones are refused.
 */
#include <ctype.h>
#include <unistd.h>

#include "core/mem.h"
#include "data/synth.h"
#include "io/fs.h"
#include "io/json.h"
#include "rl/dataset.h"
#include "rl/reward.h"
#include "test.h"

static char tmp_root[4096];

static const char *tmp_dir(const char *name)
{
	static char buf[8][4200];
	static int k;
	char *b = buf[k++ % 8];
	snprintf(b, sizeof buf[0], "%s/%s", tmp_root, name);
	return b;
}

static char *read_all(const char *dir, const char *name, size_t *len)
{
	char path[4300];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	char *data = NULL;
	size_t n = 0;
	if (iapo_fs_read_file(path, (size_t)1 << 30, &data, &n) != IAPO_OK) return NULL;
	if (len) *len = n;
	return data;
}

/* 1 when the two files exist and hold the same bytes. */
static int same_file(const char *d1, const char *d2, const char *name)
{
	size_t n1, n2;
	char *a = read_all(d1, name, &n1), *b = read_all(d2, name, &n2);
	int same = a && b && n1 == n2 && !memcmp(a, b, n1);
	iapo_free(a);
	iapo_free(b);
	return same;
}

/* ---- one split's rows ---- */

typedef struct {
	char **prompts;
	size_t n;
	double share_min, share_max, share_sum, share_sq;
	size_t kind_rows[IAPO_SYNTH_N_KINDS]; /* rows holding each kind */
	int max_value_seen;
	int steps_min, steps_max;
} split_info;

static void split_free(split_info *s)
{
	for (size_t i = 0; i < s->n; i++) iapo_free(s->prompts[i]);
	iapo_free(s->prompts);
	memset(s, 0, sizeof *s);
}

/* Parses a whole step span: "a op b = c." with its separator, the newline
 * after it or (run-on traces) the space before it (none before a trace's
 * first sentence; its last one ends in a newline). */
static int parse_step(const char *s, size_t n, long *a, char *op, long *b, long *c)
{
	char buf[64];
	if (n >= sizeof buf) return 0;
	memcpy(buf, s, n);
	buf[n] = '\0';
	int used = 0, lead = buf[0] == ' ';
	if (!isdigit((unsigned char)buf[lead])) return 0;
	if (sscanf(buf + lead, "%ld %c %ld = %ld%n", a, op, b, c, &used) != 4) return 0;
	return !strcmp(buf + lead + used, ".") || !strcmp(buf + lead + used, ".\n");
}

static long first_number(const char *s)
{
	while (*s && !isdigit((unsigned char)*s)) s++;
	return *s ? strtol(s, NULL, 10) : -1;
}

/* Checks every row of DIR/name; fills info. */
static void check_rows(const char *dir, const char *name, size_t want_rows, split_info *info)
{
	memset(info, 0, sizeof *info);
	info->share_min = 1;
	info->steps_min = 1 << 30;
	size_t len;
	char *data = read_all(dir, name, &len);
	CHECK(data != NULL, "%s/%s missing", dir, name);
	if (!data) return;
	info->prompts = iapo_calloc(want_rows + 1, sizeof *info->prompts);
	size_t line = 0, bad_reward = 0, bad_stripped = 0, bad_tiling = 0, bad_step = 0, bad_chain = 0;
	for (char *p = data, *nl; p < data + len; p = nl + 1) {
		nl = memchr(p, '\n', (size_t)(data + len - p));
		if (!nl) nl = data + len;
		line++;
		cJSON *row = cJSON_ParseWithLength(p, (size_t)(nl - p));
		CHECK(row != NULL, "%s line %zu: not JSON", name, line);
		if (!row) continue;
		const cJSON *jp = cJSON_GetObjectItemCaseSensitive(row, "prompt");
		const cJSON *ja = cJSON_GetObjectItemCaseSensitive(row, "answer");
		const cJSON *jc = cJSON_GetObjectItemCaseSensitive(row, "completion");
		const cJSON *js = cJSON_GetObjectItemCaseSensitive(row, "spans");
		const cJSON *jn = cJSON_GetObjectItemCaseSensitive(row, "n_steps");
		const cJSON *jr = cJSON_GetObjectItemCaseSensitive(row, "redundancy");
		int ok = cJSON_IsString(jp) && cJSON_IsString(ja) && cJSON_IsString(jc) && cJSON_IsArray(js) &&
			 cJSON_IsNumber(jn) && cJSON_IsNumber(jr);
		CHECK(ok, "%s line %zu: missing or mistyped fields", name, line);
		if (!ok) {
			cJSON_Delete(row);
			continue;
		}
		const char *prompt = jp->valuestring, *answer = ja->valuestring, *c = jc->valuestring;
		size_t clen = strlen(c);
		if (info->n < want_rows) info->prompts[info->n] = iapo_strdup(prompt);
		info->n++;
		for (const char *q = c; *q; q++) CHECK((unsigned char)*q < 128, "%s line %zu: non-ASCII byte", name, line);

		/* The real reward: correct, format bonus, total +1.5. */
		int correct = 0, fmt = 0;
		float r = iapo_reward(c, answer, NULL, &correct, &fmt);
		if (!(correct && fmt && r == 1.5f)) bad_reward++;

		/* Spans tile [0, clen) in order. */
		int pos = 0, n_spans = cJSON_GetArraySize(js), n_steps = 0;
		long chain = first_number(prompt), redundant = 0;
		char *stripped = iapo_malloc(clen + 1);
		size_t sl = 0;
		int first_kind = -1, last_kind = -1, last_start = 0;
		int present[IAPO_SYNTH_N_KINDS] = {0};
		for (int i = 0; i < n_spans; i++) {
			const cJSON *sp = cJSON_GetArrayItem(js, i);
			const cJSON *s0 = cJSON_GetArrayItem(sp, 0), *s1 = cJSON_GetArrayItem(sp, 1), *s2 = cJSON_GetArrayItem(sp, 2);
			int kind = cJSON_IsString(s2) ? iapo_synth_kind_parse(s2->valuestring) : -1;
			if (!cJSON_IsNumber(s0) || !cJSON_IsNumber(s1) || kind < 0 || s0->valueint != pos ||
			    s1->valueint <= pos || (size_t)s1->valueint > clen) {
				bad_tiling++;
				break;
			}
			int st = s0->valueint, en = s1->valueint;
			present[kind] = 1;
			if (i == 0) first_kind = kind;
			last_kind = kind;
			last_start = st;
			if (iapo_synth_kind_redundant(kind))
				redundant += en - st;
			else {
				memcpy(stripped + sl, c + st, (size_t)(en - st));
				sl += (size_t)(en - st);
			}
			if (kind == IAPO_SYNTH_STEP) {
				long a, b, res;
				char op;
				n_steps++;
				if (!parse_step(c + st, (size_t)(en - st), &a, &op, &b, &res)) {
					bad_step++;
					CHECK(bad_step > 3, "%s line %zu: step span '%.*s' is not 'a op b = c.'", name, line,
					      en - st, c + st);
				} else {
					long want = op == '+' ? a + b : op == '-' ? a - b : op == '*' ? a * b : op == '/' && b && a % b == 0 ? a / b : -999;
					if (want != res) bad_step++;
					if (a != chain) bad_chain++;
					chain = res;
					if (a > info->max_value_seen) info->max_value_seen = (int)a;
					if (res > info->max_value_seen) info->max_value_seen = (int)res;
					if (res < 1) bad_step++;
				}
			}
			pos = en;
		}
		stripped[sl] = '\0';
		if ((size_t)pos != clen) bad_tiling++;
		CHECK(first_kind == IAPO_SYNTH_FORMAT && !strncmp(c, "<think>\n", 8), "%s line %zu: first span", name, line);
		char tail[64];
		snprintf(tail, sizeof tail, "</think>\n<answer>%s</answer>", answer);
		CHECK(last_kind == IAPO_SYNTH_ANSWER && !strcmp(c + last_start, tail), "%s line %zu: last span", name, line);
		if (chain != strtol(answer, NULL, 10)) bad_chain++;
		CHECK(n_steps == jn->valueint, "%s line %zu: %d step spans, n_steps %d", name, line, n_steps, jn->valueint);
		if (n_steps < info->steps_min) info->steps_min = n_steps;
		if (n_steps > info->steps_max) info->steps_max = n_steps;

		/* The steps alone still give the answer, in the right format. */
		r = iapo_reward(stripped, answer, NULL, &correct, &fmt);
		if (!(correct && fmt)) bad_stripped++;
		iapo_free(stripped);

		double share = clen ? (double)redundant / (double)clen : 0;
		CHECK_NEAR(jr->valuedouble, share, 1e-4, "redundancy field");
		if (share < info->share_min) info->share_min = share;
		if (share > info->share_max) info->share_max = share;
		info->share_sum += share;
		info->share_sq += share * share;
		for (int k = 0; k < IAPO_SYNTH_N_KINDS; k++) info->kind_rows[k] += (size_t)present[k];
		cJSON_Delete(row);
	}
	iapo_free(data);
	CHECK(info->n == want_rows, "%s: %zu rows, want %zu", name, info->n, want_rows);
	CHECK(bad_reward == 0, "%s: %zu traces not scored correct+format by iapo_reward", name, bad_reward);
	CHECK(bad_stripped == 0, "%s: %zu traces wrong once redundancy is removed", name, bad_stripped);
	CHECK(bad_tiling == 0, "%s: %zu rows whose spans do not tile the completion", name, bad_tiling);
	CHECK(bad_step == 0, "%s: %zu wrong step computations", name, bad_step);
	CHECK(bad_chain == 0, "%s: %zu broken chains (a step not starting from the previous result)", name, bad_chain);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Number of prompts that appear twice within s, or in both a and b. */
static size_t duplicates(split_info *a, split_info *b)
{
	size_t n = a->n + (b ? b->n : 0), dups = 0;
	char **all = iapo_malloc((n + 1) * sizeof *all);
	memcpy(all, a->prompts, a->n * sizeof *all);
	if (b) memcpy(all + a->n, b->prompts, b->n * sizeof *all);
	qsort(all, n, sizeof *all, cmp_str);
	for (size_t i = 1; i < n; i++) dups += !strcmp(all[i - 1], all[i]);
	iapo_free(all);
	return dups;
}

/* ---- cases ---- */

static iapo_synth_opts small_opts(void)
{
	iapo_synth_opts o;
	iapo_synth_opts_default(&o);
	o.n_train = 1500;
	o.n_test = 300;
	return o;
}

static void test_determinism(void)
{
	iapo_synth_opts o = small_opts();
	o.n_train = 300;
	o.n_test = 60;
	const char *d1 = tmp_dir("det1"), *d2 = tmp_dir("det2"), *d3 = tmp_dir("det3");
	CHECK(iapo_synth_generate(&o, d1, NULL, NULL) == IAPO_OK, "gen 1: %s", iapo_errmsg());
	CHECK(iapo_synth_generate(&o, d2, NULL, NULL) == IAPO_OK, "gen 2: %s", iapo_errmsg());
	o.seed = 2;
	CHECK(iapo_synth_generate(&o, d3, NULL, NULL) == IAPO_OK, "gen 3: %s", iapo_errmsg());
	CHECK(same_file(d1, d2, "train.jsonl"), "same seed, different train.jsonl");
	CHECK(same_file(d1, d2, "test.jsonl"), "same seed, different test.jsonl");
	CHECK(same_file(d1, d2, "meta.json"), "same seed, different meta.json");
	CHECK(!same_file(d1, d3, "train.jsonl"), "seeds 1 and 2 wrote the same train.jsonl");
	CHECK(!same_file(d1, d3, "test.jsonl"), "seeds 1 and 2 wrote the same test.jsonl");

	/* The test split does not depend on the train size. */
	o.seed = 1;
	o.n_train = 50;
	const char *d4 = tmp_dir("det4");
	CHECK(iapo_synth_generate(&o, d4, NULL, NULL) == IAPO_OK, "gen 4: %s", iapo_errmsg());
	CHECK(same_file(d1, d4, "test.jsonl"), "test split changed with --train");

	/* One problem: same key, same problem; other keys, other problems. */
	iapo_synth_problem a, b, c;
	CHECK(iapo_synth_problem_make(&o, 0, 7, &a) == IAPO_OK, "make a");
	CHECK(iapo_synth_problem_make(&o, 0, 7, &b) == IAPO_OK, "make b");
	CHECK(iapo_synth_problem_make(&o, 0, 8, &c) == IAPO_OK, "make c");
	CHECK(!strcmp(a.prompt, b.prompt) && !strcmp(a.completion, b.completion) && a.n_spans == b.n_spans &&
		      !memcmp(a.spans, b.spans, (size_t)a.n_spans * sizeof *a.spans),
	      "same key, different problem");
	CHECK(strcmp(a.prompt, c.prompt) != 0, "keys 7 and 8 gave the same prompt");
	iapo_synth_problem_free(&c);
	/* Row 0 of each split is candidate 0 of its stream (train 0, test 1). */
	for (int split = 0; split < 2; split++) {
		char *text = read_all(d1, split ? "test.jsonl" : "train.jsonl", NULL);
		cJSON *row = text ? cJSON_ParseWithLength(text, strcspn(text, "\n")) : NULL;
		const cJSON *jp = cJSON_GetObjectItemCaseSensitive(row, "prompt");
		iapo_synth_problem q;
		CHECK(iapo_synth_problem_make(&o, (uint64_t)split, 0, &q) == IAPO_OK && cJSON_IsString(jp) &&
			      !strcmp(jp->valuestring, q.prompt),
		      "split %d: row 0 is not candidate 0 of stream %d", split, split);
		iapo_synth_problem_free(&q);
		cJSON_Delete(row);
		iapo_free(text);
	}
	/* The counts do not matter to one problem. */
	o.n_train = o.n_test = 0;
	CHECK(iapo_synth_problem_make(&o, 0, 7, &c) == IAPO_OK && !strcmp(a.completion, c.completion),
	      "counts changed a problem: %s", iapo_errmsg());
	iapo_synth_problem_free(&a);
	iapo_synth_problem_free(&b);
	iapo_synth_problem_free(&c);
}

static void test_rows(void)
{
	iapo_synth_opts o = small_opts();
	const char *d = tmp_dir("rows");
	iapo_synth_stats st_tr, st_te;
	CHECK(iapo_synth_generate(&o, d, &st_tr, &st_te) == IAPO_OK, "gen: %s", iapo_errmsg());
	split_info tr, te;
	check_rows(d, "train.jsonl", (size_t)o.n_train, &tr);
	check_rows(d, "test.jsonl", (size_t)o.n_test, &te);

	/* Disjoint splits, no repeats inside either. */
	CHECK(duplicates(&tr, &te) == 0, "%zu prompts repeat within or across the splits", duplicates(&tr, &te));

	/* The redundant share varies: terse and very verbose rows, spread out. */
	double mean = tr.share_sum / (double)tr.n, sd = sqrt(tr.share_sq / (double)tr.n - mean * mean);
	fprintf(stderr, "  train redundant share: min %.3f mean %.3f max %.3f sd %.3f (rows %zu)\n", tr.share_min, mean,
		tr.share_max, sd, tr.n);
	CHECK(tr.share_min < 0.05, "no terse trace: min share %.3f", tr.share_min);
	CHECK(tr.share_max > 0.75, "no very verbose trace: max share %.3f", tr.share_max);
	CHECK(mean > 0.3 && mean < 0.75, "mean share %.3f", mean);
	CHECK(sd > 0.15, "shares barely vary: sd %.3f", sd);
	for (int k = 0; k < IAPO_SYNTH_N_KINDS; k++)
		CHECK(tr.kind_rows[k] > tr.n / 10, "kind %s in only %zu of %zu rows", iapo_synth_kind_name(k),
		      tr.kind_rows[k], tr.n);
	CHECK(tr.steps_min == o.min_steps && tr.steps_max == o.max_steps, "steps %d-%d", tr.steps_min, tr.steps_max);
	CHECK(tr.max_value_seen <= o.max_value, "a quantity %d over max_value %d", tr.max_value_seen, o.max_value);

	/* The returned statistics agree with the rows. */
	CHECK(st_tr.rows == tr.n && st_te.rows == te.n, "stats rows");
	CHECK_NEAR(st_tr.share_mean, mean, 1e-9, "stats mean share");
	CHECK_NEAR(st_tr.share_min, tr.share_min, 1e-9, "stats min share");
	CHECK_NEAR(st_tr.share_max, tr.share_max, 1e-9, "stats max share");
	double ksum = 0;
	for (int k = 0; k < IAPO_SYNTH_N_KINDS; k++) ksum += st_tr.kind_share[k];
	CHECK_NEAR(ksum, 1.0, 1e-9, "kind shares sum");

	/* meta.json holds the seed, counts and the statistics. */
	char path[4300];
	snprintf(path, sizeof path, "%s/meta.json", d);
	cJSON *m = NULL;
	CHECK(iapo_json_load(path, 1 << 20, &m) == IAPO_OK, "meta.json: %s", iapo_errmsg());
	if (m) {
		const cJSON *seed = cJSON_GetObjectItemCaseSensitive(m, "seed");
		const cJSON *ntr = cJSON_GetObjectItemCaseSensitive(m, "train");
		const cJSON *stats = cJSON_GetObjectItemCaseSensitive(m, "stats");
		const cJSON *smean = cJSON_GetObjectItemCaseSensitive(
			cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(stats, "train"), "redundant_share"),
			"mean");
		CHECK(cJSON_IsNumber(seed) && seed->valueint == 1, "meta seed");
		CHECK(cJSON_IsNumber(ntr) && ntr->valueint == o.n_train, "meta train");
		CHECK(cJSON_IsNumber(smean) && fabs(smean->valuedouble - mean) < 1e-4, "meta mean share");
		cJSON_Delete(m);
	}

	/* The dataset loader reads the files as generic {prompt, answer} rows. */
	iapo_dataset ds;
	snprintf(path, sizeof path, "%s/test.jsonl", d);
	iapo_status st = iapo_dataset_load(path, NULL, &ds);
	CHECK(st == IAPO_OK, "dataset load: %s", iapo_errmsg());
	if (st == IAPO_OK) {
		CHECK(ds.format == IAPO_DATA_GENERIC && ds.n == (size_t)o.n_test, "format %s, %zu rows",
		      iapo_data_format_name(ds.format), ds.n);
		for (size_t i = 0; i < ds.n && i < te.n; i++)
			CHECK(!strcmp(ds.ex[i].prompt, te.prompts[i]), "row %zu prompt differs", i);
		iapo_dataset_free(&ds);
	}
	split_free(&tr);
	split_free(&te);
}

static void test_options(void)
{
	iapo_synth_opts o = small_opts();
	o.n_train = 200;
	o.n_test = 20;
	split_info tr;

	/* redundancy 0: every trace terse. */
	o.redundancy = 0;
	const char *d = tmp_dir("terse");
	CHECK(iapo_synth_generate(&o, d, NULL, NULL) == IAPO_OK, "terse: %s", iapo_errmsg());
	check_rows(d, "train.jsonl", 200, &tr);
	CHECK(tr.share_max == 0, "redundancy 0 gave a share of %.3f", tr.share_max);
	split_free(&tr);

	/* redundancy 1: every trace restates and summarises. */
	o.redundancy = 1;
	d = tmp_dir("verbose");
	CHECK(iapo_synth_generate(&o, d, NULL, NULL) == IAPO_OK, "verbose: %s", iapo_errmsg());
	check_rows(d, "train.jsonl", 200, &tr);
	CHECK(tr.kind_rows[IAPO_SYNTH_RESTATE] == 200 && tr.kind_rows[IAPO_SYNTH_SUMMARY] == 200,
	      "redundancy 1: restate in %zu, summary in %zu of 200 rows", tr.kind_rows[IAPO_SYNTH_RESTATE],
	      tr.kind_rows[IAPO_SYNTH_SUMMARY]);
	CHECK(tr.share_min > 0.4, "redundancy 1: min share %.3f", tr.share_min);
	split_free(&tr);

	/* Steps and values stay within their bounds. */
	o.redundancy = 0.5;
	o.min_steps = o.max_steps = 6;
	o.max_value = 12;
	d = tmp_dir("bounds");
	CHECK(iapo_synth_generate(&o, d, NULL, NULL) == IAPO_OK, "bounds: %s", iapo_errmsg());
	check_rows(d, "train.jsonl", 200, &tr);
	CHECK(tr.steps_min == 6 && tr.steps_max == 6, "steps %d-%d, want 6", tr.steps_min, tr.steps_max);
	CHECK(tr.max_value_seen <= 12, "value %d over 12", tr.max_value_seen);
	split_free(&tr);

	/* Bad options are ARG errors naming the option. */
	iapo_synth_opts b;
#define BAD(field_expr, opt) \
	do { \
		b = small_opts(); \
		field_expr; \
		CHECK(iapo_synth_opts_check(&b) == IAPO_ERR_ARG && strstr(iapo_errmsg(), opt), "%s: %s", opt, iapo_errmsg()); \
		CHECK(iapo_synth_generate(&b, tmp_dir("bad"), NULL, NULL) == IAPO_ERR_ARG, "generate %s", opt); \
	} while (0)
	BAD(b.n_train = 0, "--train");
	BAD(b.n_test = -1, "--test");
	BAD(b.min_steps = 0, "--steps");
	BAD((b.min_steps = 3, b.max_steps = 2), "--steps");
	BAD(b.max_steps = IAPO_SYNTH_MAX_STEPS + 1, "--steps");
	BAD(b.redundancy = 1.5, "--redundancy");
	BAD(b.redundancy = NAN, "--redundancy");
	BAD(b.max_value = 9, "--max-value");
#undef BAD
	b = small_opts();
	CHECK(iapo_synth_opts_check(&b) == IAPO_OK, "defaults refused: %s", iapo_errmsg());
}

static void test_kinds(void)
{
	for (int k = 0; k < IAPO_SYNTH_N_KINDS; k++)
		CHECK(iapo_synth_kind_parse(iapo_synth_kind_name(k)) == k, "kind %d name round trip", k);
	CHECK(iapo_synth_kind_parse("nope") == -1, "unknown kind");
	int red = 0;
	for (int k = 0; k < IAPO_SYNTH_N_KINDS; k++) red += iapo_synth_kind_redundant(k);
	CHECK(red == 4 && !iapo_synth_kind_redundant(IAPO_SYNTH_STEP) && !iapo_synth_kind_redundant(IAPO_SYNTH_ANSWER),
	      "redundant kinds");
}

/* Every allocation of a problem and of a small generate call failing in
 * turn: NOMEM, nothing leaked (LeakSanitizer), never a crash. */
static void test_alloc_failures(void)
{
	iapo_synth_opts o = small_opts();
	o.redundancy = 1;
	int failed = 0, ok = 0;
	for (unsigned long k = 1; k < 60; k++) {
		iapo_synth_problem p;
		iapo_mem_fail_after(k);
		iapo_status st = iapo_synth_problem_make(&o, 0, 3, &p);
		iapo_mem_fail_after(0);
		if (st == IAPO_OK) {
			ok++;
			iapo_synth_problem_free(&p);
		} else {
			failed++;
			CHECK(st == IAPO_ERR_NOMEM && !p.prompt && !p.completion && !p.spans, "failure %lu: %d %s", k, st,
			      iapo_errmsg());
		}
	}
	CHECK(failed >= 2 && ok > 0, "problem: injected failures %d, successes %d", failed, ok);
	o.n_train = 2;
	o.n_test = 1;
	unsigned long before = iapo_mem_alloc_count();
	CHECK(iapo_synth_generate(&o, tmp_dir("alloc"), NULL, NULL) == IAPO_OK, "generate: %s", iapo_errmsg());
	unsigned long allocs = iapo_mem_alloc_count() - before;
	failed = ok = 0;
	for (unsigned long k = 1; k <= allocs + 1; k++) {
		iapo_mem_fail_after(k);
		iapo_status st = iapo_synth_generate(&o, tmp_dir("alloc"), NULL, NULL);
		iapo_mem_fail_after(0);
		if (st == IAPO_OK)
			ok++;
		else {
			failed++;
			CHECK(st == IAPO_ERR_NOMEM || st == IAPO_ERR_IO, "generate failure %lu: %d %s", k, st, iapo_errmsg());
		}
	}
	CHECK(failed >= (int)allocs && ok == 1, "generate: %lu allocations, injected failures %d, successes %d", allocs,
	      failed, ok);
}

/* An example of each verbosity, for people reading the test log. */
static void test_show_examples(void)
{
	iapo_synth_opts o = small_opts();
	double lo = 2, hi = -1;
	iapo_synth_problem terse = {0}, verbose = {0}, p;
	for (uint64_t i = 0; i < 200; i++) {
		CHECK(iapo_synth_problem_make(&o, 0, i, &p) == IAPO_OK, "make");
		if (p.redundant_share < lo && p.n_steps == 3) {
			lo = p.redundant_share;
			iapo_synth_problem_free(&terse);
			terse = p;
		} else if (p.redundant_share > hi && p.n_steps == 3) {
			hi = p.redundant_share;
			iapo_synth_problem_free(&verbose);
			verbose = p;
		} else {
			iapo_synth_problem_free(&p);
		}
	}
	fprintf(stderr, "  terse (share %.2f): %s\n%s\n  verbose (share %.2f): %s\n%s\n", lo, terse.prompt,
		terse.completion, hi, verbose.prompt, verbose.completion);
	CHECK(terse.prompt && verbose.prompt, "examples");
	iapo_synth_problem_free(&terse);
	iapo_synth_problem_free(&verbose);
}

int main(void)
{
	snprintf(tmp_root, sizeof tmp_root, "%s/test_synth.%d", test_env("IAPO_TMP", "/tmp"), (int)getpid());
	RUN(test_kinds);
	RUN(test_determinism);
	RUN(test_rows);
	RUN(test_options);
	RUN(test_alloc_failures);
	RUN(test_show_examples);
	iapo_fs_remove_all(tmp_root);
	TEST_END();
}
