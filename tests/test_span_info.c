/*
 * test_span_info.c — src/demo/span_info.h:
 *  - token -> kind on hand-built cases with the byte-level test tokenizer:
 *    byte tokens take their span's kind; a merged token across a span
 *    boundary takes its first byte's kind and counts as straddling; an added
 *    token (<think>) maps as one token; spans with a gap, an overlap, a short
 *    cover or an unknown kind are ARG errors naming the span;
 *  - real synthetic traces with a BPE tokenizer trained on them: no token
 *    straddles (synth.h's promise about the pre-tokenizer) and the tokens are
 *    the whole-text encoding;
 *  - the estimator sums on a random Qwen2: per kind they equal sums of
 *    S_t = E_t − E_{t+1} recomputed from iapo_info_naive (the brute-force
 *    oracle) over the same tokens, all kinds together telescope to
 *    Σ (E_0 − E_L), and the file reader gives the same numbers as adding the
 *    rows one by one; a malformed row names its line; with the default
 *    postfix and with the traces' own "</think>\n<answer>"; an empty postfix
 *    is an ARG error.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/mem.h"
#include "core/status.h"
#include "data/bpe_train.h"
#include "data/synth.h"
#include "demo/span_info.h"
#include "io/fs.h"
#include "rl/dataset.h"
#include "rl/info.h"
#include "rl/prompt.h"
#include "test.h"

static char tmp_root[1024];

static iapo_tokenizer *bytelevel(const char *name, const char *const *merges, int n)
{
	char dir[1200];
	snprintf(dir, sizeof dir, "%s/%s", tmp_root, name);
	iapo_tokenizer *t = NULL;
	if (iapo_tokenizer_write_bytelevel(dir, merges, n) != IAPO_OK || iapo_tokenizer_load(dir, &t) != IAPO_OK)
		return NULL;
	return t;
}

static void test_kinds_bytes(void)
{
	iapo_tokenizer *t = bytelevel("tok_bytes", NULL, 0);
	CHECK(t != NULL, "%s", iapo_errmsg());
	if (!t) return;
	/* "ab\ncd": [0,3) step, [3,5) filler; byte tokens, so 5 tokens */
	const char *text = "ab\ncd";
	iapo_synth_span sp[] = {{0, 3, IAPO_SYNTH_STEP}, {3, 5, IAPO_SYNTH_FILLER}};
	int *ids, *kinds, cross = -1;
	size_t n;
	CHECK(iapo_span_tokens(t, text, 5, sp, 2, &ids, &kinds, &n, &cross) == IAPO_OK, "%s", iapo_errmsg());
	CHECK(n == 5 && cross == 0, "n %zu straddle %d", n, cross);
	const int want[] = {IAPO_SYNTH_STEP, IAPO_SYNTH_STEP, IAPO_SYNTH_STEP, IAPO_SYNTH_FILLER, IAPO_SYNTH_FILLER};
	for (size_t i = 0; i < n && i < 5; i++) CHECK(kinds[i] == want[i], "token %zu: kind %d, want %d", i, kinds[i], want[i]);
	iapo_free(ids);
	iapo_free(kinds);

	/* an added token: "<think>\nx" = <think>, \n, x */
	const char *t2 = "<think>\nx";
	iapo_synth_span sp2[] = {{0, 8, IAPO_SYNTH_FORMAT}, {8, 9, IAPO_SYNTH_STEP}};
	CHECK(iapo_span_tokens(t, t2, strlen(t2), sp2, 2, &ids, &kinds, &n, &cross) == IAPO_OK, "%s", iapo_errmsg());
	CHECK(n == 3 && cross == 0 && ids[0] == iapo_tokenizer_token_id(t, "<think>") && kinds[0] == IAPO_SYNTH_FORMAT &&
		      kinds[1] == IAPO_SYNTH_FORMAT && kinds[2] == IAPO_SYNTH_STEP,
	      "n %zu cross %d", n, cross);
	iapo_free(ids);
	iapo_free(kinds);

	/* bad spans */
	iapo_synth_span gap[] = {{0, 2, IAPO_SYNTH_STEP}, {3, 5, IAPO_SYNTH_FILLER}};
	iapo_synth_span overlap[] = {{0, 3, IAPO_SYNTH_STEP}, {2, 5, IAPO_SYNTH_FILLER}};
	iapo_synth_span shortc[] = {{0, 3, IAPO_SYNTH_STEP}, {3, 4, IAPO_SYNTH_FILLER}};
	iapo_synth_span badkind[] = {{0, 3, IAPO_SYNTH_STEP}, {3, 5, (iapo_synth_kind)99}};
	const iapo_synth_span *bad[] = {gap, overlap, shortc, badkind};
	for (int b = 0; b < 4; b++) {
		ids = kinds = (int *)&cross; /* must come back NULL */
		iapo_status st = iapo_span_tokens(t, text, 5, bad[b], 2, &ids, &kinds, &n, &cross);
		CHECK(st == IAPO_ERR_ARG && strstr(iapo_errmsg(), "spans") && ids == NULL && kinds == NULL,
		      "bad spans %d: status %d, %s", b, (int)st, iapo_errmsg());
		CHECK(b == 2 || strstr(iapo_errmsg(), "span 1"), "bad spans %d: %s", b, iapo_errmsg());
	}
	iapo_tokenizer_free(t);
}

static void test_kinds_straddle(void)
{
	/* merge "b c" makes "bc" one token inside the word "abcd"; a span
	 * boundary between b and c makes it straddle, and it takes b's kind */
	const char *merges[] = {"b c"};
	iapo_tokenizer *t = bytelevel("tok_merge", merges, 1);
	CHECK(t != NULL, "%s", iapo_errmsg());
	if (!t) return;
	iapo_synth_span sp[] = {{0, 2, IAPO_SYNTH_VERIFY}, {2, 4, IAPO_SYNTH_STEP}};
	int *ids, *kinds, cross = -1;
	size_t n;
	CHECK(iapo_span_tokens(t, "abcd", 4, sp, 2, &ids, &kinds, &n, &cross) == IAPO_OK, "%s", iapo_errmsg());
	CHECK(n == 3 && cross == 1, "n %zu straddle %d (want 3 tokens a|bc|d, 1 straddling)", n, cross);
	if (n == 3)
		CHECK(kinds[0] == IAPO_SYNTH_VERIFY && kinds[1] == IAPO_SYNTH_VERIFY && kinds[2] == IAPO_SYNTH_STEP,
		      "kinds %d %d %d", kinds[0], kinds[1], kinds[2]);
	iapo_free(ids);
	iapo_free(kinds);
	/* the boundary after "bc": nothing straddles */
	iapo_synth_span sp2[] = {{0, 3, IAPO_SYNTH_VERIFY}, {3, 4, IAPO_SYNTH_STEP}};
	CHECK(iapo_span_tokens(t, "abcd", 4, sp2, 2, &ids, &kinds, &n, &cross) == IAPO_OK && cross == 0,
	      "straddle %d", cross);
	iapo_free(ids);
	iapo_free(kinds);
	iapo_tokenizer_free(t);
}

/* Writes n synth rows of seed 3 and a BPE tokenizer of 600 tokens trained on
 * them into tmp_root/synth; returns the tokenizer (NULL on failure). */
static iapo_tokenizer *synth_setup(int n, char *data, size_t cap)
{
	iapo_synth_opts o;
	iapo_synth_opts_default(&o);
	o.seed = 3, o.n_train = n, o.n_test = 20;
	char dir[1200], tokdir[1300];
	snprintf(dir, sizeof dir, "%s/synth", tmp_root);
	snprintf(tokdir, sizeof tokdir, "%s/tok", dir);
	snprintf(data, cap, "%s/train.jsonl", dir);
	if (iapo_synth_generate(&o, dir, NULL, NULL) != IAPO_OK) return NULL;
	iapo_bpe *b = NULL;
	if (iapo_bpe_new(&b) != IAPO_OK) return NULL;
	for (int i = 0; i < n; i++) {
		iapo_synth_problem p;
		if (iapo_synth_problem_make(&o, 0, (uint64_t)i, &p) != IAPO_OK) break;
		iapo_bpe_add(b, p.prompt, strlen(p.prompt), 1);
		iapo_bpe_add(b, p.completion, strlen(p.completion), 1);
		iapo_synth_problem_free(&p);
	}
	iapo_tokenizer *t = NULL;
	if (iapo_bpe_learn(b, 600 - 263, 2) == IAPO_OK && iapo_bpe_write(b, tokdir) == IAPO_OK)
		if (iapo_tokenizer_load(tokdir, &t) != IAPO_OK) t = NULL;
	iapo_bpe_free(b);
	return t;
}

static void test_kinds_synth(void)
{
	char data[1300];
	iapo_tokenizer *t = synth_setup(300, data, sizeof data);
	CHECK(t != NULL, "%s", iapo_errmsg());
	if (!t) return;
	iapo_synth_opts o;
	iapo_synth_opts_default(&o);
	o.seed = 3;
	long tokens = 0, straddle = 0, redundant = 0;
	for (int i = 0; i < 300; i++) {
		iapo_synth_problem p;
		if (iapo_synth_problem_make(&o, 1, (uint64_t)i, &p) != IAPO_OK) break;
		int *ids, *kinds, cross;
		size_t n;
		size_t len = strlen(p.completion);
		iapo_status st = iapo_span_tokens(t, p.completion, len, p.spans, p.n_spans, &ids, &kinds, &n, &cross);
		CHECK(st == IAPO_OK, "row %d: %s", i, iapo_errmsg());
		if (st == IAPO_OK) {
			int *whole = NULL;
			size_t nw = 0, cw = 0;
			CHECK(iapo_tokenizer_encode(t, p.completion, len, &whole, &nw, &cw) == IAPO_OK && nw == n &&
				      !memcmp(whole, ids, n * sizeof(int)),
			      "row %d: tokens differ from the whole-text encoding", i);
			iapo_free(whole);
			tokens += (long)n, straddle += cross;
			for (size_t k = 0; k < n; k++) redundant += iapo_synth_kind_redundant((iapo_synth_kind)kinds[k]);
			iapo_free(ids);
			iapo_free(kinds);
		}
		iapo_synth_problem_free(&p);
	}
	fprintf(stderr, "  synth: %ld tokens, %ld redundant, %ld straddling\n", tokens, redundant, straddle);
	CHECK(tokens > 10000 && straddle == 0, "%ld tokens, %ld straddle", tokens, straddle);
	CHECK(redundant > tokens / 4, "redundant tokens %ld of %ld", redundant, tokens);
	iapo_tokenizer_free(t);
}

static void estimator_sums(const char *postfix)
{
	char data[1300];
	iapo_tokenizer *t = synth_setup(60, data, sizeof data);
	CHECK(t != NULL, "%s", iapo_errmsg());
	if (!t) return;
	iapo_config c;
	memset(&c, 0, sizeof c);
	c.arch = IAPO_ARCH_QWEN2;
	strcpy(c.model_type, "qwen2");
	c.V = iapo_tokenizer_vocab_size(t);
	c.C = 32, c.L = 2, c.NH = 4, c.NKV = 2, c.HD = 8, c.F = 64;
	c.max_pos = 1024, c.rope_theta = 10000.0f, c.rms_eps = 1e-6f;
	c.tie_embeddings = 1, c.qkv_bias = 1;
	c.bos_id = c.pad_id = -1;
	c.n_eos = iapo_tokenizer_eos_ids(t, c.eos_ids, IAPO_MAX_EOS);
	strcpy(c.torch_dtype, "float32");
	iapo_weights w;
	/* std 0.3: entropies that move from token to token */
	CHECK(iapo_weights_init_random(&w, &c, 5, 0.3f) == IAPO_OK, "%s", iapo_errmsg());
	iapo_span_info_opts so = iapo_span_info_defaults();
	so.answer_tokens = 2;
	so.max_tokens = 512;
	so.postfix = postfix;
	iapo_span_info *s = NULL;
	CHECK(iapo_span_info_new(&w, t, &so, &s) == IAPO_OK, "%s", iapo_errmsg());
	enum { ROWS = 6 };
	iapo_synth_opts o;
	iapo_synth_opts_default(&o);
	o.seed = 3;
	iapo_span_info_stats acc, want;
	memset(&acc, 0, sizeof acc);
	memset(&want, 0, sizeof want);
	double telescope = 0;
	iapo_info_opts io = iapo_info_defaults();
	int *post = NULL;
	size_t K = 0, pc = 0;
	const char *pf = postfix ? postfix : IAPO_INFO_POSTFIX;
	iapo_tokenizer_encode(t, pf, strlen(pf), &post, &K, &pc);
	io.postfix = post, io.n_postfix = (int)K, io.answer_tokens = 2;
	for (int i = 0; s && i < ROWS; i++) {
		/* the file's rows: train split = stream 0, in order (no repeats this early) */
		iapo_synth_problem p;
		if (iapo_synth_problem_make(&o, 0, (uint64_t)i, &p) != IAPO_OK) break;
		size_t len = strlen(p.completion);
		CHECK(iapo_span_info_add(s, p.prompt, p.completion, len, p.spans, p.n_spans, &acc) == IAPO_OK, "%s",
		      iapo_errmsg());
		/* oracle: naive E over the same tokens */
		int *pids = NULL, *ids, *kinds, cross;
		size_t np = 0, pcap = 0, n;
		CHECK(iapo_prompt_tokens(t, IAPO_DATA_GENERIC, "", p.prompt, 0, &pids, &np, &pcap) == IAPO_OK, "%s",
		      iapo_errmsg());
		CHECK(iapo_span_tokens(t, p.completion, len, p.spans, p.n_spans, &ids, &kinds, &n, &cross) == IAPO_OK,
		      "%s", iapo_errmsg());
		float *E = iapo_malloc((n + 1) * sizeof(float));
		const int *pp = pids, *cp = ids;
		int pl = (int)np, cl = (int)n;
		iapo_info_batch b = {.n = 1, .prompts = &pp, .plen = &pl, .comps = &cp, .clen = &cl};
		CHECK(E && iapo_info_naive(&w, &io, &b, E, NULL, cl + 1) == IAPO_OK, "%s", iapo_errmsg());
		for (int k = 0; E && k < cl; k++) {
			want.tokens[kinds[k]] += 1;
			want.gain_sum[kinds[k]] += (double)E[k] - (double)E[k + 1];
			want.gain_abs[kinds[k]] += fabs((double)E[k] - (double)E[k + 1]);
		}
		if (E) telescope += (double)E[0] - (double)E[cl];
		iapo_free(E);
		iapo_free(pids);
		iapo_free(ids);
		iapo_free(kinds);
		iapo_synth_problem_free(&p);
	}
	CHECK(acc.rows == ROWS && acc.straddle == 0, "rows %g straddle %g", acc.rows, acc.straddle);
	double total = 0, absn = 0;
	for (int k = 0; k < IAPO_SYNTH_N_KINDS; k++) {
		CHECK(acc.tokens[k] == want.tokens[k], "kind %d tokens %g vs %g", k, acc.tokens[k], want.tokens[k]);
		CHECK_NEAR(acc.gain_sum[k], want.gain_sum[k], 1e-4, iapo_synth_kind_name((iapo_synth_kind)k));
		CHECK_NEAR(acc.gain_abs[k], want.gain_abs[k], 1e-4, iapo_synth_kind_name((iapo_synth_kind)k));
		total += acc.gain_sum[k], absn += acc.gain_abs[k];
	}
	CHECK_NEAR(total, telescope, 1e-4, "sum of all gains = sum of E_0 - E_L");
	CHECK_NEAR(total, acc.entropy_first - acc.entropy_last, 1e-4, "entropy_first - entropy_last");
	CHECK(absn > 0.1, "random model: gains should move (sum |S| %g)", absn);
	CHECK(acc.tokens[IAPO_SYNTH_STEP] > 0, "step tokens");
	CHECK_NEAR(iapo_span_info_mean(&acc, IAPO_SYNTH_STEP), acc.gain_sum[0] / acc.tokens[0], 1e-12, "mean");

	/* the file reader: the first ROWS rows of train.jsonl are those rows */
	iapo_span_info_stats f;
	CHECK(s && iapo_span_info_file(s, data, ROWS, &f) == IAPO_OK, "%s", iapo_errmsg());
	for (int k = 0; s && k < IAPO_SYNTH_N_KINDS; k++) {
		CHECK(f.tokens[k] == acc.tokens[k], "file: kind %d tokens", k);
		CHECK_NEAR(f.gain_sum[k], acc.gain_sum[k], 1e-9, "file: gain sum");
	}
	/* a malformed row names its line */
	char bad[1300];
	snprintf(bad, sizeof bad, "%s/bad.jsonl", tmp_root);
	FILE *fp = fopen(bad, "w");
	if (fp) {
		fprintf(fp, "\n{\"prompt\": \"x\", \"completion\": \"ab\", \"spans\": [[0, 2, \"step\"]]}\n");
		fprintf(fp, "{\"prompt\": \"x\", \"completion\": \"ab\", \"spans\": [[0, 2, \"nonsense\"]]}\n");
		fclose(fp);
	}
	iapo_status st = s ? iapo_span_info_file(s, bad, 0, &f) : IAPO_OK;
	CHECK(st == IAPO_ERR_FORMAT && strstr(iapo_errmsg(), "line 3") && f.rows == 1, "status %d: %s", (int)st,
	      iapo_errmsg());
	iapo_free(post);
	iapo_span_info_free(s);
	iapo_weights_free(&w);
	iapo_tokenizer_free(t);
}

static void test_estimator_sums(void)
{
	estimator_sums(NULL); /* the trainer's default "</think><answer>" */
	estimator_sums("</think>\n<answer>"); /* the synthetic traces' own layout */
	iapo_span_info_opts o = iapo_span_info_defaults();
	o.postfix = "";
	iapo_span_info *s = NULL;
	iapo_tokenizer *t = bytelevel("tok_empty", NULL, 0);
	CHECK(t && iapo_span_info_new(NULL, t, &o, &s) == IAPO_ERR_ARG && s == NULL && strstr(iapo_errmsg(), "postfix"),
	      "empty postfix: %s", iapo_errmsg());
	iapo_tokenizer_free(t);
}

int main(void)
{
	snprintf(tmp_root, sizeof tmp_root, "%s/test_span_info", test_env("IAPO_TMP", "/tmp"));
	iapo_fs_remove_all(tmp_root);
	iapo_fs_mkdir_p(tmp_root);
	RUN(test_kinds_bytes);
	RUN(test_kinds_straddle);
	RUN(test_kinds_synth);
	RUN(test_estimator_sums);
	TEST_END();
}
