/*
 * test_reward.c — table-driven tests of the answer verifier and the rewards
 * (src/rl/reward.h): extraction, normalisation, numeric equivalence, format,
 * the total reward, and every case of iapo-reference §10 items 9 and 10.
 * Rows where we deliberately differ from the reference say so in a comment
 * with the reference's result. Also robustness: random bytes, long inputs,
 * deep nesting and tiny output buffers must neither crash nor overflow
 * (run under make asan).
 */
#include <stdint.h>

#include "core/rng.h"
#include "rl/reward.h"
#include "test.h"

static int rows; /* table rows checked, reported at the end */

/* ---- extraction --------------------------------------------------------- */

static const struct {
	const char *text, *want;
	int found;
} EXTRACT[] = {
	{"<think>2+2=4</think>\n<answer>4</answer>", "4", 1},
	{"<answer> 42 </answer>", "42", 1},
	{"<answer>4</answer><answer>5</answer>", "5", 1}, /* §10.9: the last <answer> wins */
	{"<answer>x = 5</answer>", "5", 1},		  /* §10.9: after the last '=' */
	{"<answer>\\boxed{4</answer>", "", 0},		  /* §10.9: unbalanced box -> "" -> wrong */
	{"<answer>\\boxed{7}</answer>", "7", 1},	  /* a box inside the block is unwrapped */
	{"<answer>The result is \\boxed{\\frac{1}{2}}.</answer>", "\\frac{1}{2}", 1},
	{"<answer>12", "12", 1}, /* unclosed block: to the end of the text */
	{"<answer></answer>", "", 0},
	{"<answer>   \n </answer>", "", 0},
	{"The answer is \\boxed{4}", "4", 1}, /* §10.9 */
	{"\\boxed{1} then \\boxed{2}", "2", 1},
	{"\\boxed{\\frac{3}{\\sqrt{4}}}", "\\frac{3}{\\sqrt{4}}", 1}, /* nested braces */
	{"so \\boxed 9 is it", "9", 1},				      /* \boxed with a space */
	{"so $\\boxed 10$", "10", 1},
	{"\\fbox{8}", "8", 1},
	{"\\boxed{1} and \\fbox{3}", "3", 1},
	{"\\fbox{3} and \\boxed{1}", "1", 1},
	{"\\boxed {6}", "6", 1},
	{"\\boxed{x=3}", "3", 1},
	{"\\boxed{2} and a stray \\boxedfoo", "2", 1}, /* not a box: look further left */
	{"Natalia sold 48/2 = <<48/2=24>>24 clips.\n#### 72", "72", 1},
	{"#### 1,000\n", "1,000", 1},
	{"#### 5\nmore text\n#### 6", "6", 1},
	{"<answer>3</answer> \\boxed{9}", "3", 1}, /* the answer block beats a box */
	{"\\boxed{9} #### 3", "9", 1},		   /* a box beats #### */
	{"no answer here", "", 0},
	{"", "", 0},
	{"</answer>5</answer>", "", 0},
};

static void test_extract(void)
{
	char buf[256];
	for (size_t i = 0; i < sizeof EXTRACT / sizeof *EXTRACT; i++, rows++) {
		int f = iapo_answer_extract(EXTRACT[i].text, buf, sizeof buf);
		CHECK(f == EXTRACT[i].found && strcmp(buf, EXTRACT[i].want) == 0,
		      "extract(%s) = %d \"%s\", want %d \"%s\"", EXTRACT[i].text, f, buf, EXTRACT[i].found,
		      EXTRACT[i].want);
	}
}

/* ---- normalisation ------------------------------------------------------ */

static const struct {
	const char *in, *want;
} NORM[] = {
	/* iapo-reference §10 item 10 */
	{"\\frac12", "\\frac{1}{2}"},
	{"1,000", "1000"},
	{"-1,000", "-1000"}, /* DIFFERS: the reference keeps "-1,000" (its isdigit test fails on '-') */
	{"10 dollars", "10"},
	{"\\text{(A)}", "(A)"},
	{"$x^2$", "x^2"},
	{"\\sqrt2", "\\sqrt{2}"},
	{"90^\\circ", "90"},
	{"a b", "b"},
	{"\\dfrac{1}{2}", "\\frac{1}{2}"}, /* DIFFERS: the reference leaves \dfrac{1}{2} (so it != \frac{1}{2}) */
	/* fractions */
	{"\\tfrac{3}{4}", "\\frac{3}{4}"},
	{"\\frac 1 2", "\\frac{1}{2}"},
	{"\\frac1{22}", "\\frac{1}{22}"},
	{"\\frac{1}2", "\\frac{1}{2}"},
	{"\\frac\\pi2", "\\frac{\\pi}{2}"},
	{"\\dfrac{\\dfrac12}{3}", "\\frac{\\frac{1}{2}}{3}"},
	{"-\\dfrac{3}{4}", "-\\frac{3}{4}"},
	{"\\sqrt[3]{2}", "\\sqrt[3]{2}"},
	{"2\\sqrt 3", "2\\sqrt{3}"},
	/* text wrappers */
	{"\\textbf{17}", "17"},
	{"\\mbox{Monday}", "Monday"},
	{"\\mathrm{yes}", "yes"},
	{"\\text{ cm}", "cm"}, /* a unit alone is an answer, not removed */
	/* units */
	{"5 \\text{ cm}^2", "5"},
	{"5\\text{ square feet}", "5"},
	{"18 inches", "18"},
	{"60 km/h", "60"},
	{"12 meters per second", "12"},
	{"3 hours.", "3"},
	{"150 lbs", "150"},
	{"7 Students", "7"},
	{"2\\pi \\text{ cm}", "2\\pi"},
	{"x dollars", "xdollars"}, /* no number before it: not a unit suffix */
	{"\\frac{1}{2} inches", "\\frac{1}{2}"},
	/* percent, dollars, degrees */
	{"50\\%", "50"},
	{"50%", "50"},
	{"25 percent", "25"},
	{"\\$18.90", "18.90"},
	{"$\\$5$", "5"},
	{"45^{\\circ}", "45"},
	{"30\xc2\xb0", "30"},
	{"90 degrees", "90"},
	/* numbers */
	{"10.00", "10"},
	{"10.0", "10"},
	{"10.50", "10.50"},
	{"+7", "7"},
	{"  12.  ", "12"},
	{"1,234,567", "1234567"},
	{"1{,}000", "1000"},
	{"1,\\!000", "1000"},
	{"1\\,000", "1000"},
	{"(0,100)", "(0,100)"}, /* an interval, not a thousands separator */
	{"1,2", "1,2"},
	{"0,100", "0,100"},
	{"x = 5", "5"},
	{"\\boxed{12}", "12"},
	{"\\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\frac{\\pi}{2})"},
	{"\"12\"", "12"},
	{"the answer", "answer"},
};

static void test_normalize(void)
{
	char buf[256];
	for (size_t i = 0; i < sizeof NORM / sizeof *NORM; i++, rows++) {
		iapo_answer_normalize(NORM[i].in, buf, sizeof buf);
		CHECK(strcmp(buf, NORM[i].want) == 0, "normalize(%s) = \"%s\", want \"%s\"", NORM[i].in, buf,
		      NORM[i].want);
	}
}

/* ---- equality (normalised, exact or numeric) ---------------------------- */

static const struct {
	const char *a, *b;
	int eq;
} EQ[] = {
	{"0.5", "1/2", 1},
	{"0.5", "\\frac{1}{2}", 1},
	{"\\dfrac{1}{2}", "\\frac{1}{2}", 1}, /* DIFFERS: unequal in the reference (no \dfrac mapping) */
	{"-1,000", "-1000", 1},		      /* DIFFERS: unequal in the reference ("-1,000" kept) */
	{"-\\frac{3}{4}", "-0.75", 1},
	{"\\frac{-3}{4}", "-3/4", 1},
	{"\\frac{3}{-4}", "-0.75", 1},
	{"2\\frac{1}{4}", "9/4", 1}, /* a mixed number */
	{"-2\\frac{1}{4}", "-2.25", 1},
	{"1/3", "0.3333333", 0}, /* 1e-7 relative: beyond the tolerance */
	{"1/3", "0.33333333333333", 1},
	{"5", "5.0", 1},
	{"5", "05", 1},
	{"-0", "0", 1},
	{"0", "0.000000001", 0},
	{"72", "72", 1},
	{"72", "27", 0},
	{"100", "1e2", 0}, /* no exponent notation */
	{"12345678901234567890", "12345678901234567891", 0}, /* integers compare exactly */
	{"12345678901234567890", "12,345,678,901,234,567,890", 1},
	{"3.14", "3.140", 1},
	{"\\frac{1}{0}", "\\frac{1}{0}", 1}, /* same string, though not a number */
	{"\\frac{1}{0}", "1/0", 0},
	{"x+1", "x + 1", 1},
	{"x+1", "1+x", 0}, /* no symbolic algebra */
	{"(A)", "\\text{(A)}", 1},
	{"", "", 0},
	{"5", "", 0},
	{"1,000", "1000.00", 1},
	{"\\$1,000", "1000 dollars", 1},
	{"\\sqrt{2}", "\\sqrt2", 1},
	{"--5", "5", 0},
};

static void test_equal(void)
{
	for (size_t i = 0; i < sizeof EQ / sizeof *EQ; i++, rows++)
		CHECK(iapo_answer_equal(EQ[i].a, EQ[i].b) == EQ[i].eq, "equal(%s, %s) != %d", EQ[i].a, EQ[i].b,
		      EQ[i].eq);
}

/* ---- correctness of completions ----------------------------------------- */

static const struct {
	const char *completion, *label;
	int correct;
} CORRECT[] = {
	{"<think>2+2=4</think>\n<answer>4</answer>", "4", 1}, /* §10.9 */
	{"<think>a\nb</think>\n<answer>4</answer>", "4", 1},  /* §10.9 */
	{"The answer is \\boxed{4}", "4", 1},		      /* §10.9 */
	{"<answer>x = 5</answer>", "5", 1},		      /* §10.9 */
	{"<answer>\\boxed{4</answer>", "4", 0},		      /* §10.9: "" -> wrong */
	{"<answer>4</answer><answer>5</answer>", "5", 1},     /* §10.9: the last <answer> wins */
	{"<answer>4</answer><answer>5</answer>", "4", 0},
	{"<answer>$1,080</answer>", "1080", 1},
	{"<answer>0.5</answer>", "\\frac{1}{2}", 1},
	{"<answer>\\dfrac{1}{2}</answer>", "\\frac12", 1}, /* DIFFERS: wrong in the reference */
	{"<answer>-1,000</answer>", "-1000", 1},	   /* DIFFERS: wrong in the reference */
	{"<answer>18 inches</answer>", "18", 1},
	{"<answer>72 clips</answer>", "72", 0}, /* "clips" is no unit word we know */
	{"blah\n#### 72", "72", 1},
	{"no answer at all: 72", "72", 0},
	{"<answer>7</answer>", "", 0},
	{"<answer>7</answer>", NULL, 0},
	{NULL, "7", 0},
};

static void test_correct(void)
{
	for (size_t i = 0; i < sizeof CORRECT / sizeof *CORRECT; i++, rows++)
		CHECK(iapo_answer_is_correct(CORRECT[i].completion, CORRECT[i].label) == CORRECT[i].correct,
		      "is_correct(%s, %s) != %d", CORRECT[i].completion ? CORRECT[i].completion : "(null)",
		      CORRECT[i].label ? CORRECT[i].label : "(null)", CORRECT[i].correct);
}

/* ---- format ------------------------------------------------------------- */

static const struct {
	const char *completion;
	int ok;
} FORMAT[] = {
	{"<think>2+2=4</think>\n<answer>4</answer>", 1},  /* §10.9 */
	{"<think>a\nb</think>\n<answer>4</answer>", 1},   /* DIFFERS: §10.9 gives -0.5 (no DOTALL) */
	{"The answer is \\boxed{4}", 0},		  /* §10.9 */
	{"<think>x</think> <answer>4</answer>", 1},	  /* DIFFERS: §10.9 gives -0.5 (space, not exactly "\n") */
	{"<think>x</think>\n<answer>4</answer>\n", 1},	  /* §10.9: trailing newline */
	{"<think>x</think>\n<answer>4</answer>\n\n  ", 1}, /* trailing whitespace; the reference allows one \n */
	{"<think>x</think><answer>4</answer>", 1},	  /* DIFFERS: the reference demands exactly one \n */
	{"<think>x</think>\n\n<answer>4</answer>", 1},	  /* DIFFERS: likewise */
	{"Let me think. <think>x</think>\n<answer>4</answer>", 1}, /* a prefix without tags */
	{"line1\nline2<think>x</think>\n<answer>4</answer>", 1},  /* DIFFERS: a multi-line prefix fails there */
	{"<think>x</think>\n<answer>4\n5</answer>", 1}, /* DIFFERS: a multi-line answer fails there */
	{"<think></think>\n<answer></answer>", 1},
	{"<answer>1</answer><think>x</think>\n<answer>4</answer>", 0}, /* a tag in the prefix */
	{"<think>x<think>y</think>\n<answer>4</answer>", 0},	       /* nested think */
	{"<think>x<answer>3</answer></think>\n<answer>4</answer>", 0}, /* answer inside think */
	{"<think>x</think>\n<answer>4</answer>\n<answer>5</answer>", 0}, /* two answer blocks */
	{"<think>x</think>\n<think>y</think>\n<answer>4</answer>", 0},   /* two think blocks */
	{"<think>x</think>\n<answer>4</answer> trailing words", 0},
	{"<think>x</think>\nso <answer>4</answer>", 0},
	{"<think>x</think>\n<answer>4", 0}, /* answer not closed */
	{"<think>x\n<answer>4</answer>", 0}, /* think not closed */
	{"<answer>4</answer>", 0},
	{"<think>x</think>", 0},
	{"<think>x</think>\n<answer>4<think></answer>", 0},
	{"", 0},
	{NULL, 0},
};

static void test_format(void)
{
	for (size_t i = 0; i < sizeof FORMAT / sizeof *FORMAT; i++, rows++)
		CHECK(iapo_format_ok(FORMAT[i].completion) == FORMAT[i].ok, "format_ok(%s) != %d",
		      FORMAT[i].completion ? FORMAT[i].completion : "(null)", FORMAT[i].ok);
}

/* ---- total reward (iapo-reference §10 item 9) --------------------------- */

static const struct {
	const char *completion, *label;
	float reward;
	int correct, format;
} REWARD[] = {
	{"<think>2+2=4</think>\n<answer>4</answer>", "4", 1.5f, 1, 1},
	{"<think>a\nb</think>\n<answer>4</answer>", "4", 1.5f, 1, 1}, /* DIFFERS: the reference gives 0.5 */
	{"The answer is \\boxed{4}", "4", 0.5f, 1, 0},
	{"<think>x</think> <answer>4</answer>", "4", 1.5f, 1, 1}, /* DIFFERS: the reference's format is -0.5 -> 0.5 */
	{"<think>x</think>\n<answer>4</answer>\n", "4", 1.5f, 1, 1},
	{"<answer>x = 5</answer>", "5", 0.5f, 1, 0},
	{"<answer>\\boxed{4</answer>", "4", -1.5f, 0, 0},
	{"<answer>4</answer><answer>5</answer>", "5", 0.5f, 1, 0},
	{"<think>x</think>\n<answer>3</answer>", "4", -0.5f, 0, 1},
};

static void test_reward_total(void)
{
	for (size_t i = 0; i < sizeof REWARD / sizeof *REWARD; i++, rows++) {
		int c = -1, f = -1;
		float r = iapo_reward(REWARD[i].completion, REWARD[i].label, NULL, &c, &f);
		CHECK(r == REWARD[i].reward && c == REWARD[i].correct && f == REWARD[i].format,
		      "reward(%s) = %g (c %d f %d), want %g (c %d f %d)", REWARD[i].completion, (double)r, c, f,
		      (double)REWARD[i].reward, REWARD[i].correct, REWARD[i].format);
	}
	/* Configurable weights. */
	iapo_reward_weights w;
	iapo_reward_weights_default(&w);
	CHECK(w.correct == 1.0f && w.wrong == -1.0f && w.format_ok == 0.5f && w.format_bad == -0.5f, "defaults");
	w = (iapo_reward_weights){2.0f, 0.0f, 0.25f, -0.125f};
	CHECK(iapo_reward("<think>x</think>\n<answer>4</answer>", "4", &w, NULL, NULL) == 2.25f, "weights ok/ok");
	CHECK(iapo_reward("<answer>4</answer>", "5", &w, NULL, NULL) == -0.125f, "weights wrong/bad");
	/* Over the reference's four values, r > 0 exactly when correct. */
	CHECK(iapo_reward("junk", "4", NULL, NULL, NULL) == -1.5f, "nothing at all");
}

/* ---- robustness --------------------------------------------------------- */

static void run_all(const char *s)
{
	char buf[64];
	iapo_answer_extract(s, buf, sizeof buf);
	CHECK(strlen(buf) < sizeof buf, "extract bound");
	iapo_answer_normalize(s, buf, sizeof buf);
	CHECK(strlen(buf) < sizeof buf, "normalize bound");
	(void)iapo_answer_is_correct(s, s);
	(void)iapo_answer_equal(s, "5");
	(void)iapo_format_ok(s);
	(void)iapo_reward(s, "5", NULL, NULL, NULL);
}

static void test_random_bytes(void)
{
	/* Random strings over an alphabet rich in the characters the parsers
	 * care about, plus arbitrary bytes. */
	static const char alpha[] = "<>/answerthink\\boxedfrac{}$%^=#., -+0123456789\n";
	iapo_rng r;
	iapo_rng_seed(&r, 7, 0, 0, 0);
	char s[300];
	for (int it = 0; it < 20000; it++) {
		size_t n = (size_t)iapo_rng_below(&r, sizeof s);
		for (size_t i = 0; i < n; i++) {
			uint64_t k = iapo_rng_below(&r, 10);
			s[i] = k < 8 ? alpha[iapo_rng_below(&r, sizeof alpha - 1)] : (char)(1 + iapo_rng_below(&r, 255));
		}
		s[n] = '\0';
		run_all(s);
	}
	/* Structured fragments glued at random. */
	static const char *frag[] = {"<think>", "</think>", "<answer>", "</answer>", "\\boxed{", "\\boxed ", "\\fbox{",
				     "}", "{", "\\frac", "\\dfrac", "\\sqrt", "\\text{", "1,000", "####", "=", "\\",
				     "^\\circ", "\xc2\xb0", "\xc2", "12", "cm", "dollars", " ", "\n", "\\left", "."};
	for (int it = 0; it < 20000; it++) {
		size_t n = 0;
		int parts = (int)iapo_rng_below(&r, 12);
		for (int k = 0; k < parts; k++) {
			const char *f = frag[iapo_rng_below(&r, sizeof frag / sizeof *frag)];
			size_t m = strlen(f);
			if (n + m >= sizeof s) break;
			memcpy(s + n, f, m);
			n += m;
		}
		s[n] = '\0';
		run_all(s);
	}
}

static void test_long_inputs(void)
{
	size_t n = 1 << 20;
	char *s = malloc(n + 64);
	CHECK(s != NULL, "malloc");
	if (!s) return;
	/* A long reasoning trace then a short answer: still found. */
	memset(s, 'x', n);
	strcpy(s + n - 40, "<answer>1,234</answer>");
	CHECK(iapo_answer_is_correct(s, "1234"), "short answer after a long trace");
	/* An enormous answer: never correct, never overflows. */
	memcpy(s, "<answer>", 8);
	memset(s + 8, '7', n - 8);
	strcpy(s + n, "</answer>");
	char buf[16];
	CHECK(iapo_answer_extract(s, buf, sizeof buf) == 1 && strlen(buf) == 15, "truncated extraction");
	CHECK(!iapo_answer_is_correct(s, "7777777"), "an over-long answer is never correct");
	/* Deep nesting, balanced and not. */
	memset(s, '{', n / 2);
	memset(s + n / 2, '}', n / 2);
	s[n] = '\0';
	run_all(s);
	memcpy(s, "\\boxed", 6);
	run_all(s);
	size_t m = 0;
	for (int k = 0; k < 500; k++) m += (size_t)sprintf(s + m, "\\frac{");
	s[m] = '\0';
	run_all(s);
	for (int k = 0; k < 500; k++) m += (size_t)sprintf(s + m, "}{2}");
	s[m] = '\0';
	run_all(s);
	/* Many \frac12 grow when rewritten: the work buffer must bound it. */
	m = 0;
	for (int k = 0; k < 200; k++) m += (size_t)sprintf(s + m, "\\frac12");
	s[m] = '\0';
	char big[IAPO_ANSWER_MAX + 1];
	iapo_answer_normalize(s, big, sizeof big);
	CHECK(strlen(big) == IAPO_ANSWER_MAX, "normalize output cut at the buffer: %zu", strlen(big));
	CHECK(!iapo_answer_equal(s, s), "an answer too long to compare whole is never equal");
	/* A thousand-digit number: not numeric (overflows), no crash. */
	memset(s, '9', 1000);
	s[1000] = '\0';
	CHECK(iapo_answer_equal(s, s), "same long number");
	s[999] = '8';
	char t[1001];
	memset(t, '9', 1000);
	t[1000] = '\0';
	CHECK(!iapo_answer_equal(s, t), "long integers differing in the last digit");
	/* Texts full of the markers the extractor looks for: every scan must
	 * stay linear (a quadratic one takes minutes on 1 MiB here). */
	static const char *rep[] = {"\\boxedx", "\\boxed{", "\\fbox", "<answer>", "</answer>", "####", "\\boxed ",
				    "<think>", "\\"};
	for (size_t k = 0; k < sizeof rep / sizeof *rep; k++) {
		size_t m2 = strlen(rep[k]), w = 0;
		while (w + m2 <= n) memcpy(s + w, rep[k], m2), w += m2;
		s[w] = '\0';
		run_all(s);
	}
	free(s);
	/* Tiny buffers. */
	char one[1];
	CHECK(iapo_answer_extract("<answer>5</answer>", one, 1) == 1 && one[0] == '\0', "n = 1");
	iapo_answer_normalize("12345", one, 1);
	CHECK(one[0] == '\0', "normalize n = 1");
	CHECK(iapo_answer_extract("<answer>5</answer>", NULL, 0) == 1, "no buffer");
}

int main(void)
{
	RUN(test_extract);
	RUN(test_normalize);
	RUN(test_equal);
	RUN(test_correct);
	RUN(test_format);
	RUN(test_reward_total);
	RUN(test_random_bytes);
	RUN(test_long_inputs);
	fprintf(stderr, "%d table rows\n", rows);
	CHECK(rows >= 100, "at least 100 table rows: %d", rows);
	TEST_END();
}
