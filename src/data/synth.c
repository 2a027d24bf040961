/*
 * synth.c — the chained-arithmetic task family of synth.h: drawing a problem
 * (start value, operations, phrasing), writing its trace sentence by sentence
 * with each sentence's kind recorded as a span, and writing the two splits.
 *
 * A trace is "<think>\n", then sentences one per line (or, in some traces,
 * run on with spaces; the last one always ends its line), then
 * "</think>\n<answer>N</answer>". The steps are always there, one per
 * operation, in order ("a op b = c." with the previous result as a), so the
 * steps alone determine the answer; every other sentence is optional and is
 * included with a probability proportional to the trace's verbosity.
 *
 * Not here: anything about tokens.
 */
#include "data/synth.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/mem.h"
#include "core/rng.h"
#include "core/status.h"
#include "core/text.h"
#include "io/fs.h"
#include "io/json.h"

static const char *const KIND_NAMES[IAPO_SYNTH_N_KINDS] = {"step",    "restate", "filler", "verify",
							   "summary", "answer",  "format"};

const char *iapo_synth_kind_name(iapo_synth_kind k)
{
	return (unsigned)k < IAPO_SYNTH_N_KINDS ? KIND_NAMES[k] : "?";
}

int iapo_synth_kind_parse(const char *s)
{
	for (int k = 0; s && k < IAPO_SYNTH_N_KINDS; k++)
		if (!strcmp(s, KIND_NAMES[k])) return k;
	return -1;
}

int iapo_synth_kind_redundant(iapo_synth_kind k)
{
	return k == IAPO_SYNTH_RESTATE || k == IAPO_SYNTH_FILLER || k == IAPO_SYNTH_VERIFY || k == IAPO_SYNTH_SUMMARY;
}

void iapo_synth_opts_default(iapo_synth_opts *o)
{
	*o = (iapo_synth_opts){.seed = 1,
			       .n_train = 5000,
			       .n_test = 500,
			       .min_steps = 2,
			       .max_steps = 4,
			       .redundancy = 0.5,
			       .max_value = 40};
}

/* The options that shape one problem (the counts only matter to a split). */
static iapo_status check_problem_opts(const iapo_synth_opts *o)
{
	if (!o) return iapo_fail(IAPO_ERR_ARG, "synth: expected options, found NULL");
	if (o->min_steps < 1 || o->max_steps > IAPO_SYNTH_MAX_STEPS || o->min_steps > o->max_steps)
		return iapo_fail(IAPO_ERR_ARG, "--steps: expected MIN-MAX with 1 <= MIN <= MAX <= %d, found %d-%d",
				 IAPO_SYNTH_MAX_STEPS, o->min_steps, o->max_steps);
	if (!(o->redundancy >= 0 && o->redundancy <= 1))
		return iapo_fail(IAPO_ERR_ARG, "--redundancy: expected a number in [0, 1], found %g", o->redundancy);
	if (o->max_value < 10 || o->max_value > 999)
		return iapo_fail(IAPO_ERR_ARG, "--max-value: expected an integer in [10, 999], found %d", o->max_value);
	return IAPO_OK;
}

iapo_status iapo_synth_opts_check(const iapo_synth_opts *o)
{
	if (!o) return iapo_fail(IAPO_ERR_ARG, "synth: expected options, found NULL");
	if (o->n_train < 1) return iapo_fail(IAPO_ERR_ARG, "--train: expected at least 1 row, found %d", o->n_train);
	if (o->n_test < 0) return iapo_fail(IAPO_ERR_ARG, "--test: expected a count >= 0, found %d", o->n_test);
	return check_problem_opts(o);
}

/* ---- phrase banks ---- */

static const struct {
	const char *name, *pron, *Pron;
} NAMES[] = {
	{"Tom", "he", "He"},  {"Anna", "she", "She"}, {"Ben", "he", "He"},   {"Mia", "she", "She"},
	{"Sam", "he", "He"},  {"Lily", "she", "She"}, {"Max", "he", "He"},   {"Zoe", "she", "She"},
	{"Leo", "he", "He"},  {"Emma", "she", "She"}, {"Omar", "he", "He"},  {"Nina", "she", "She"},
};
static const char *const ITEMS[] = {"apples", "marbles", "coins",   "stickers", "books",
				    "cookies", "pencils", "cards", "shells",   "stamps"};

enum { OP_ADD, OP_SUB, OP_MUL, OP_HALF };
/* Present-tense phrases after a subject or "then"; %d is the operand. */
static const char *const ADD_PHRASES[] = {"buys %d more", "finds %d more", "gets %d more", "is given %d more"};
static const char *const SUB_PHRASES[] = {"gives away %d", "loses %d", "sells %d", "gives %d to a friend"};
static const char *const MUL2_PHRASES[] = {"doubles them", "doubles the pile"};
static const char *const MUL3_PHRASES[] = {"triples them", "triples the pile"};
static const char *const HALF_PHRASES[] = {"gives away half of them", "loses half of them"};
#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

static const char *const FILLERS[] = {
	"Let me think about this carefully.", "Hmm, okay.", "Let me work through this step by step.",
	"Alright, let's see.", "I need to be careful here.", "Okay, let me keep going.",
	"This should be straightforward.", "Let me take this one step at a time.", "Hmm, let me focus.",
	"Wait, let me make sure I follow.",
};
static const char *const WRAPUPS[] = {"Okay, I think that covers everything.", "That was the last change.",
				      "Good, all the steps are done."};

typedef struct {
	int op, phrase;
	int a, b, c; /* a op b = c */
} step_t;

typedef struct {
	int name, item, start, n_steps, style, question;
	step_t st[IAPO_SYNTH_MAX_STEPS];
} plan_t;

static char op_symbol(int op) { return op == OP_ADD ? '+' : op == OP_SUB ? '-' : op == OP_MUL ? '*' : '/'; }
static char op_inverse(int op) { return op == OP_ADD ? '-' : op == OP_SUB ? '+' : op == OP_MUL ? '/' : '*'; }

static int draw_int(iapo_rng *r, int lo, int hi) { return lo + (int)iapo_rng_below(r, (uint64_t)(hi - lo + 1)); }
static int imin(int a, int b) { return a < b ? a : b; }

/* Picks each operation among those that keep the quantity in [1, max_value]
 * with small operands, so that a tiny model can do every step. */
static void draw_plan(iapo_rng *r, const iapo_synth_opts *o, plan_t *p)
{
	p->name = draw_int(r, 0, COUNT(NAMES) - 1);
	p->item = draw_int(r, 0, COUNT(ITEMS) - 1);
	p->n_steps = draw_int(r, o->min_steps, o->max_steps);
	p->style = draw_int(r, 0, 2);
	p->question = draw_int(r, 0, 2);
	p->start = draw_int(r, 2, imin(20, o->max_value));
	int cur = p->start;
	for (int i = 0; i < p->n_steps; i++) {
		int w[4] = {cur + 1 <= o->max_value ? 3 : 0, cur >= 2 ? 3 : 0, 2 * cur <= o->max_value ? 2 : 0,
			    cur % 2 == 0 && cur >= 4 ? 1 : 0};
		int total = w[0] + w[1] + w[2] + w[3], pick = draw_int(r, 0, total - 1), op = 0;
		while (pick >= w[op]) pick -= w[op++];
		step_t *s = &p->st[i];
		s->op = op;
		s->a = cur;
		switch (op) {
		case OP_ADD:
			s->b = draw_int(r, 1, imin(9, o->max_value - cur));
			s->c = cur + s->b;
			s->phrase = draw_int(r, 0, COUNT(ADD_PHRASES) - 1);
			break;
		case OP_SUB:
			s->b = draw_int(r, 1, imin(9, cur - 1));
			s->c = cur - s->b;
			s->phrase = draw_int(r, 0, COUNT(SUB_PHRASES) - 1);
			break;
		case OP_MUL:
			s->b = 3 * cur <= o->max_value ? draw_int(r, 2, 3) : 2;
			s->c = cur * s->b;
			s->phrase = draw_int(r, 0, COUNT(MUL2_PHRASES) - 1);
			break;
		default:
			s->b = 2;
			s->c = cur / 2;
			s->phrase = draw_int(r, 0, COUNT(HALF_PHRASES) - 1);
			break;
		}
		cur = s->c;
	}
}

/* ---- text with spans ---- */

typedef struct {
	iapo_text s; /* s.failed: an allocation failed, everything after is dropped, the caller reports NOMEM */
	iapo_synth_span *spans;
	int n_spans, spans_cap;
	int run_on;	 /* sentences run on with spaces instead of one per line */
	int n_sentences; /* written so far */
} text_t;

static void put(text_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(text_t *t, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	(void)iapo_text_vfmt(&t->s, fmt, ap);
	va_end(ap);
}

static void add_span(text_t *t, size_t start, iapo_synth_kind kind)
{
	/* One span per sentence, even next to one of the same kind, so that each
	 * step span holds exactly one computation. */
	if (t->s.failed || t->s.len == start) return;
	if (t->n_spans == t->spans_cap) {
		int cap = t->spans_cap ? 2 * t->spans_cap : 16;
		iapo_synth_span *s = iapo_realloc(t->spans, (size_t)cap * sizeof *s);
		if (!s) {
			t->s.failed = 1;
			return;
		}
		t->spans = s;
		t->spans_cap = cap;
	}
	t->spans[t->n_spans++] = (iapo_synth_span){(int)start, (int)t->s.len, kind};
}

/* A sentence's span holds its separator where the tokenizer will put it:
 * the newline after it (".\n" is one piece of Qwen2's regex), or, in a
 * run-on trace, the space before it (" Let" is one piece), so that no token
 * straddles two spans. */
static size_t open_sentence(text_t *t)
{
	size_t start = t->s.len;
	if (t->run_on && t->n_sentences) put(t, " ");
	return start;
}

static void close_sentence(text_t *t, size_t start, iapo_synth_kind kind)
{
	if (!t->run_on) put(t, "\n");
	add_span(t, start, kind);
	t->n_sentences++;
}

/* One sentence of the given kind with its separator. */
static void sentence(text_t *t, iapo_synth_kind kind, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void sentence(text_t *t, iapo_synth_kind kind, const char *fmt, ...)
{
	size_t start = open_sentence(t);
	va_list ap;
	va_start(ap, fmt);
	(void)iapo_text_vfmt(&t->s, fmt, ap);
	va_end(ap);
	close_sentence(t, start, kind);
}

/* The operation as a present-tense phrase ("buys 5 more"). */
static void phrase(char *buf, size_t n, const step_t *s)
{
	const char *f;
	switch (s->op) {
	case OP_ADD: f = ADD_PHRASES[s->phrase]; break;
	case OP_SUB: f = SUB_PHRASES[s->phrase]; break;
	case OP_MUL: f = s->b == 2 ? MUL2_PHRASES[s->phrase] : MUL3_PHRASES[s->phrase]; break;
	default: f = HALF_PHRASES[s->phrase]; break;
	}
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
	snprintf(buf, n, f, s->b);
#pragma GCC diagnostic pop
}

/* "added 5" / "doubled" ... for the summary. */
static void verb(char *buf, size_t n, const step_t *s)
{
	switch (s->op) {
	case OP_ADD: snprintf(buf, n, "added %d", s->b); break;
	case OP_SUB: snprintf(buf, n, "subtracted %d", s->b); break;
	case OP_MUL: snprintf(buf, n, "%s", s->b == 2 ? "doubled" : "tripled"); break;
	default: snprintf(buf, n, "halved"); break;
	}
}

/* Joins the phrases (or verbs) of all steps: "a, b and c". */
static void joined(text_t *t, const plan_t *p, int verbs)
{
	for (int i = 0; i < p->n_steps; i++) {
		char w[64];
		if (verbs)
			verb(w, sizeof w, &p->st[i]);
		else
			phrase(w, sizeof w, &p->st[i]);
		put(t, "%s%s", i == 0 ? "" : i == p->n_steps - 1 ? " and " : ", ", w);
	}
}

/* The facts of the problem (the prompt without its question). */
static void facts(text_t *t, const plan_t *p)
{
	const char *name = NAMES[p->name].name, *pron = NAMES[p->name].pron, *Pron = NAMES[p->name].Pron;
	const char *items = ITEMS[p->item];
	char w[64];
	put(t, "%s %s %d %s.", name, p->style == 2 ? "starts with" : "has", p->start, items);
	for (int i = 0; i < p->n_steps; i++) {
		phrase(w, sizeof w, &p->st[i]);
		if (p->style == 1) { /* one sentence per operation */
			static const char *const next[] = {"Then", "After that", "Next"};
			if (p->n_steps == 1)
				put(t, " %s %s.", Pron, w);
			else if (i == 0)
				put(t, " First %s %s.", pron, w);
			else
				put(t, " %s %s %s.", next[(i - 1) % 3], pron, w);
		} else if (i == 0) {
			put(t, " %s %s", Pron, w);
		} else if (p->style == 2 && i == p->n_steps - 1) {
			put(t, " and finally %s", w);
		} else {
			put(t, ", then %s", w);
		}
	}
	if (p->style != 1) put(t, ".");
}

static void question(text_t *t, const plan_t *p)
{
	const char *name = NAMES[p->name].name, *pron = NAMES[p->name].pron, *items = ITEMS[p->item];
	switch (p->question) {
	case 0: put(t, "How many %s does %s have now?", items, pron); break;
	case 1: put(t, "How many %s does %s have at the end?", items, name); break;
	default: put(t, "How many %s does %s end up with?", items, pron); break;
	}
}

static int chance(iapo_rng *r, double p) { return iapo_rng_double(r) < p; }

static void restate_start(text_t *t, iapo_rng *r, const plan_t *p)
{
	size_t start = open_sentence(t);
	switch (draw_int(r, 0, 2)) {
	case 0:
		put(t, "The problem says: ");
		facts(t, p);
		break;
	case 1:
		put(t, "So %s starts with %d %s, ", NAMES[p->name].name, p->start, ITEMS[p->item]);
		joined(t, p, 0);
		put(t, ".");
		break;
	default:
		put(t, "We need to find how many %s %s has after %d change%s, starting from %d.", ITEMS[p->item],
		    NAMES[p->name].name, p->n_steps, p->n_steps == 1 ? "" : "s", p->start);
		break;
	}
	close_sentence(t, start, IAPO_SYNTH_RESTATE);
}

static void restate_mid(text_t *t, iapo_rng *r, const plan_t *p, int i)
{
	char w[64];
	switch (draw_int(r, 0, 2)) {
	case 0:
		sentence(t, IAPO_SYNTH_RESTATE, "Let me re-read the question. %s started with %d %s.",
			 NAMES[p->name].name, p->start, ITEMS[p->item]);
		break;
	case 1:
		phrase(w, sizeof w, &p->st[i]);
		sentence(t, IAPO_SYNTH_RESTATE, "Next, %s %s.", NAMES[p->name].pron, w);
		break;
	default:
		sentence(t, IAPO_SYNTH_RESTATE, "The question asks how many %s %s has at the end.", ITEMS[p->item],
			 NAMES[p->name].name);
		break;
	}
}

static void verify(text_t *t, iapo_rng *r, const step_t *s)
{
	char op = op_symbol(s->op);
	switch (draw_int(r, 0, 3)) {
	case 0: sentence(t, IAPO_SYNTH_VERIFY, "Let me double-check: %d %c %d is indeed %d.", s->a, op, s->b, s->c); break;
	case 1: sentence(t, IAPO_SYNTH_VERIFY, "Checking that again, %d %c %d gives %d. Yes.", s->a, op, s->b, s->c); break;
	case 2: sentence(t, IAPO_SYNTH_VERIFY, "Wait, is %d %c %d really %d? Yes, it is.", s->a, op, s->b, s->c); break;
	default:
		sentence(t, IAPO_SYNTH_VERIFY, "To verify: %d %c %d = %d, so that is right.", s->c, op_inverse(s->op),
			 s->b, s->a);
		break;
	}
}

static void summary(text_t *t, int form, const plan_t *p)
{
	size_t start = open_sentence(t);
	int ans = p->st[p->n_steps - 1].c;
	switch (form) {
	case 0:
		put(t, "So, to summarise, we ");
		joined(t, p, 1);
		put(t, ".");
		break;
	case 1:
		put(t, "So, to summarise: %d became %d", p->start, p->st[0].c);
		for (int i = 1; i < p->n_steps; i++) put(t, ", then %d", p->st[i].c);
		put(t, ".");
		break;
	case 2: put(t, "Putting it all together, %s has %d %s.", NAMES[p->name].name, ans, ITEMS[p->item]); break;
	default: put(t, "Therefore, the final answer is %d.", ans); break;
	}
	close_sentence(t, start, IAPO_SYNTH_SUMMARY);
}

/* Verbosity with mean F: u^((1-F)/F) for u uniform in [0, 1) has mean F and
 * spreads over the whole interval (F = 0.5 gives a uniform level). */
static double draw_verbosity(iapo_rng *r, double F)
{
	double u = iapo_rng_double(r);
	if (F <= 0) return 0;
	if (F >= 1) return 1;
	return pow(u, (1 - F) / F);
}

static void write_trace(text_t *t, iapo_rng *r, const plan_t *p, double v)
{
	/* Most traces put one sentence per line, some run them on. */
	t->run_on = chance(r, 0.25);
	put(t, "<think>\n");
	add_span(t, 0, IAPO_SYNTH_FORMAT);
	if (chance(r, v)) restate_start(t, r, p);
	if (chance(r, 0.6 * v)) sentence(t, IAPO_SYNTH_FILLER, "%s", FILLERS[draw_int(r, 0, COUNT(FILLERS) - 1)]);
	for (int i = 0; i < p->n_steps; i++) {
		const step_t *s = &p->st[i];
		if (i > 0 && chance(r, 0.3 * v)) restate_mid(t, r, p, i);
		if (i > 0 && chance(r, 0.3 * v))
			sentence(t, IAPO_SYNTH_FILLER, "%s", FILLERS[draw_int(r, 0, COUNT(FILLERS) - 1)]);
		sentence(t, IAPO_SYNTH_STEP, "%d %c %d = %d.", s->a, op_symbol(s->op), s->b, s->c);
		if (chance(r, 0.6 * v)) verify(t, r, s);
		/* Re-verifying an older result, as long traces do. */
		if (chance(r, 0.15 * v)) verify(t, r, &p->st[draw_int(r, 0, i)]);
	}
	if (chance(r, 0.3 * v)) sentence(t, IAPO_SYNTH_FILLER, "%s", WRAPUPS[draw_int(r, 0, COUNT(WRAPUPS) - 1)]);
	if (chance(r, v)) {
		int first = draw_int(r, 0, 3);
		summary(t, first, p);
		if (chance(r, 0.5 * v)) summary(t, (first + 1 + draw_int(r, 0, 2)) % 4, p);
	}
	/* The last sentence ends its line in a run-on trace too. */
	if (t->run_on && !t->s.failed) {
		put(t, "\n");
		if (!t->s.failed) t->spans[t->n_spans - 1].end = (int)t->s.len;
	}
	size_t start = t->s.len;
	put(t, "</think>\n<answer>%d</answer>", p->st[p->n_steps - 1].c);
	add_span(t, start, IAPO_SYNTH_ANSWER);
}

void iapo_synth_problem_free(iapo_synth_problem *p)
{
	if (!p) return;
	iapo_free(p->prompt);
	iapo_free(p->completion);
	iapo_free(p->spans);
	memset(p, 0, sizeof *p);
}

iapo_status iapo_synth_problem_make(const iapo_synth_opts *o, uint64_t stream, uint64_t index,
				    iapo_synth_problem *out)
{
	memset(out, 0, sizeof *out);
	IAPO_TRY(check_problem_opts(o));
	iapo_rng r;
	iapo_rng_seed(&r, o->seed, stream, index, 0x73796e7468ull /* "synth" */);
	plan_t p;
	draw_plan(&r, o, &p);
	double v = draw_verbosity(&r, o->redundancy);

	text_t q = {0}, c = {0};
	facts(&q, &p);
	put(&q, " ");
	question(&q, &p);
	write_trace(&c, &r, &p, v);
	iapo_free(q.spans);
	if (q.s.failed || c.s.failed) {
		iapo_free(q.s.p);
		iapo_free(c.s.p);
		iapo_free(c.spans);
		return iapo_fail(IAPO_ERR_NOMEM, "synth: out of memory writing a problem");
	}
	out->prompt = q.s.p;
	out->completion = c.s.p;
	out->spans = c.spans;
	out->n_spans = c.n_spans;
	out->n_steps = p.n_steps;
	out->verbosity = v;
	snprintf(out->answer, sizeof out->answer, "%d", p.st[p.n_steps - 1].c);
	size_t red = 0;
	for (int i = 0; i < c.n_spans; i++)
		if (iapo_synth_kind_redundant(c.spans[i].kind)) red += (size_t)(c.spans[i].end - c.spans[i].start);
	out->redundant_share = c.s.len ? (double)red / (double)c.s.len : 0;
	return IAPO_OK;
}

/* ---- the splits ---- */

/* Set of prompts drawn so far (open addressing, owned copies). */
typedef struct {
	char **slot;
	size_t mask, n;
} prompt_set;

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ULL;
	for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

static void set_free(prompt_set *s)
{
	for (size_t i = 0; s->slot && i <= s->mask; i++) iapo_free(s->slot[i]);
	iapo_free(s->slot);
	memset(s, 0, sizeof *s);
}

static iapo_status set_init(prompt_set *s, size_t expect)
{
	size_t cap = 64;
	while (cap < 2 * expect + 2) cap *= 2;
	s->slot = iapo_calloc(cap, sizeof *s->slot);
	if (!s->slot) return iapo_fail(IAPO_ERR_NOMEM, "synth: out of memory for the prompt set");
	s->mask = cap - 1;
	s->n = 0;
	return IAPO_OK;
}

/* 1 if s is in the set, else 0; with add, inserts it (a copy). -1 on NOMEM. */
static int set_has(prompt_set *s, const char *str, int add)
{
	size_t i = (size_t)hash_str(str) & s->mask;
	for (; s->slot[i]; i = (i + 1) & s->mask)
		if (!strcmp(s->slot[i], str)) return 1;
	if (add) {
		/* The set was sized for every row, so it never fills past half. */
		if (!(s->slot[i] = iapo_strdup(str))) return -1;
		s->n++;
	}
	return 0;
}

/* Appends to a split's JSONL text, which starts at 64 KiB: splits hold thousands of rows. */
static iapo_status bytes_put(iapo_text *b, const char *s, size_t n)
{
	if (iapo_text_put_n(b, s, n, (size_t)1 << 16) != IAPO_OK)
		return iapo_fail(IAPO_ERR_NOMEM, "synth: out of memory (%zu bytes of JSONL)", b->len + n);
	return IAPO_OK;
}

static iapo_status row_json(const iapo_synth_problem *p, iapo_text *out)
{
	cJSON *o = cJSON_CreateObject();
	int ok = o && cJSON_AddStringToObject(o, "prompt", p->prompt) && cJSON_AddStringToObject(o, "answer", p->answer) &&
		 cJSON_AddStringToObject(o, "completion", p->completion);
	cJSON *spans = ok ? cJSON_AddArrayToObject(o, "spans") : NULL;
	ok = spans != NULL;
	for (int i = 0; ok && i < p->n_spans; i++) {
		cJSON *s = cJSON_CreateArray();
		ok = s && cJSON_AddItemToArray(spans, s) && cJSON_AddItemToArray(s, cJSON_CreateNumber(p->spans[i].start)) &&
		     cJSON_AddItemToArray(s, cJSON_CreateNumber(p->spans[i].end)) &&
		     cJSON_AddItemToArray(s, cJSON_CreateString(iapo_synth_kind_name(p->spans[i].kind)));
	}
	/* Rounded so the files do not depend on the last bits of pow(). */
	ok = ok && cJSON_AddNumberToObject(o, "n_steps", p->n_steps) &&
	     cJSON_AddNumberToObject(o, "redundancy", round(p->redundant_share * 1e4) / 1e4);
	char *text = ok ? cJSON_PrintUnformatted(o) : NULL;
	cJSON_Delete(o);
	if (!text) return iapo_fail(IAPO_ERR_NOMEM, "synth: out of memory writing a row");
	iapo_status st = bytes_put(out, text, strlen(text));
	cJSON_free(text);
	return st == IAPO_OK ? bytes_put(out, "\n", 1) : st;
}

typedef struct {
	iapo_synth_stats s;
	size_t chars[IAPO_SYNTH_N_KINDS], total_chars;
	double share_sum, steps_sum;
} stats_acc;

static void stats_add(stats_acc *a, const iapo_synth_problem *p)
{
	if (a->s.rows == 0 || p->redundant_share < a->s.share_min) a->s.share_min = p->redundant_share;
	if (a->s.rows == 0 || p->redundant_share > a->s.share_max) a->s.share_max = p->redundant_share;
	a->s.rows++;
	a->share_sum += p->redundant_share;
	a->steps_sum += p->n_steps;
	for (int i = 0; i < p->n_spans; i++) a->chars[p->spans[i].kind] += (size_t)(p->spans[i].end - p->spans[i].start);
	a->total_chars += strlen(p->completion);
}

static void stats_finish(stats_acc *a)
{
	double n = a->s.rows ? (double)a->s.rows : 1;
	a->s.share_mean = a->share_sum / n;
	a->s.mean_steps = a->steps_sum / n;
	a->s.mean_chars = (double)a->total_chars / n;
	for (int k = 0; k < IAPO_SYNTH_N_KINDS; k++)
		a->s.kind_share[k] = a->total_chars ? (double)a->chars[k] / (double)a->total_chars : 0;
}

/* Draws n distinct problems from stream, none of whose prompts is in `seen`
 * (each drawn prompt is added to it), as JSONL into out. */
static iapo_status draw_split(const iapo_synth_opts *o, uint64_t stream, int n, const char *name, prompt_set *seen,
			      iapo_text *out, stats_acc *acc)
{
	/* Generous: with the default options fewer than 1 draw in 1000 repeats. */
	uint64_t limit = 50 * (uint64_t)n + 1000, index = 0;
	for (int got = 0; got < n; index++) {
		if (index >= limit)
			return iapo_fail(IAPO_ERR_ARG,
					 "synth: %s split: expected %d distinct problems, found only %d in %llu draws "
					 "(allow more steps or a larger --max-value)",
					 name, n, got, (unsigned long long)index);
		iapo_synth_problem p;
		IAPO_TRY(iapo_synth_problem_make(o, stream, index, &p));
		int dup = set_has(seen, p.prompt, 1);
		iapo_status st = IAPO_OK;
		if (dup < 0) st = iapo_fail(IAPO_ERR_NOMEM, "synth: out of memory for the prompt set");
		if (dup == 0) {
			st = row_json(&p, out);
			stats_add(acc, &p);
			got++;
		}
		iapo_synth_problem_free(&p);
		IAPO_TRY(st);
	}
	stats_finish(acc);
	return IAPO_OK;
}

/* cJSON builders that remember a failed allocation in *ok, so that a
 * document is either complete or not written at all. */
static cJSON *add_num(cJSON *o, const char *k, double v, int *ok)
{
	cJSON *c = o ? cJSON_AddNumberToObject(o, k, v) : NULL;
	*ok &= c != NULL;
	return c;
}

static cJSON *add_obj(cJSON *o, const char *k, int *ok)
{
	cJSON *c = o ? cJSON_AddObjectToObject(o, k) : NULL;
	*ok &= c != NULL;
	return c;
}

static double r4(double x) { return round(x * 1e4) / 1e4; }

static void stats_json(cJSON *parent, const char *key, const iapo_synth_stats *s, int *ok)
{
	cJSON *o = add_obj(parent, key, ok);
	add_num(o, "rows", (double)s->rows, ok);
	add_num(o, "mean_steps", r4(s->mean_steps), ok);
	add_num(o, "mean_completion_chars", round(s->mean_chars * 100) / 100, ok);
	cJSON *r = add_obj(o, "redundant_share", ok);
	add_num(r, "min", r4(s->share_min), ok);
	add_num(r, "mean", r4(s->share_mean), ok);
	add_num(r, "max", r4(s->share_max), ok);
	cJSON *k = add_obj(o, "kind_share", ok);
	for (int i = 0; i < IAPO_SYNTH_N_KINDS; i++) add_num(k, KIND_NAMES[i], r4(s->kind_share[i]), ok);
}

static iapo_status write_meta(const iapo_synth_opts *o, const char *dir, const iapo_synth_stats *train,
			      const iapo_synth_stats *test)
{
	cJSON *m = cJSON_CreateObject();
	int ok = m != NULL;
	ok &= m && cJSON_AddStringToObject(m, "generator", "iapo data synth") &&
	      cJSON_AddStringToObject(m, "task", "chained arithmetic word problems");
	add_num(m, "version", 1, &ok);
	/* A number when exact in a double, so that readers see an integer. */
	if (o->seed < (1ull << 53)) {
		add_num(m, "seed", (double)o->seed, &ok);
	} else {
		char seed[32];
		snprintf(seed, sizeof seed, "%llu", (unsigned long long)o->seed);
		ok &= m && cJSON_AddStringToObject(m, "seed", seed);
	}
	add_num(m, "train", o->n_train, &ok);
	add_num(m, "test", o->n_test, &ok);
	cJSON *opt = add_obj(m, "options", &ok);
	add_num(opt, "min_steps", o->min_steps, &ok);
	add_num(opt, "max_steps", o->max_steps, &ok);
	add_num(opt, "redundancy", o->redundancy, &ok);
	add_num(opt, "max_value", o->max_value, &ok);
	cJSON *kinds = m ? cJSON_AddArrayToObject(m, "redundant_kinds") : NULL;
	ok &= kinds != NULL;
	for (int k = 0; kinds && k < IAPO_SYNTH_N_KINDS; k++)
		if (iapo_synth_kind_redundant(k)) ok &= cJSON_AddItemToArray(kinds, cJSON_CreateString(KIND_NAMES[k]));
	cJSON *st = add_obj(m, "stats", &ok);
	stats_json(st, "train", train, &ok);
	stats_json(st, "test", test, &ok);
	char *text = ok ? cJSON_Print(m) : NULL;
	cJSON_Delete(m);
	if (!text) return iapo_fail(IAPO_ERR_NOMEM, "synth: out of memory writing meta.json");
	char path[4096];
	iapo_status s = iapo_fs_join(path, sizeof path, dir, "meta.json");
	if (s == IAPO_OK) s = iapo_fs_write_file_atomic(path, text, strlen(text));
	cJSON_free(text);
	return s;
}

static iapo_status write_split(const char *dir, const char *name, const iapo_text *b)
{
	char path[4096];
	IAPO_TRY(iapo_fs_join(path, sizeof path, dir, name));
	return iapo_fs_write_file_atomic(path, b->p ? b->p : "", b->len);
}

iapo_status iapo_synth_generate(const iapo_synth_opts *o, const char *out_dir, iapo_synth_stats *train,
				iapo_synth_stats *test)
{
	IAPO_TRY(iapo_synth_opts_check(o));
	if (!out_dir || !*out_dir) return iapo_fail(IAPO_ERR_ARG, "--out: expected a directory");
	iapo_json_init();
	prompt_set seen = {0};
	iapo_text tr = {0}, te = {0};
	stats_acc a_tr = {0}, a_te = {0};
	iapo_status st;
	IAPO_CHECK(st, set_init(&seen, (size_t)o->n_train + (size_t)o->n_test));
	IAPO_CHECK(st, draw_split(o, 1, o->n_test, "test", &seen, &te, &a_te));
	IAPO_CHECK(st, draw_split(o, 0, o->n_train, "train", &seen, &tr, &a_tr));
	IAPO_CHECK(st, iapo_fs_mkdir_p(out_dir));
	IAPO_CHECK(st, write_split(out_dir, "train.jsonl", &tr));
	IAPO_CHECK(st, write_split(out_dir, "test.jsonl", &te));
	IAPO_CHECK(st, write_meta(o, out_dir, &a_tr.s, &a_te.s));
	if (train) *train = a_tr.s;
	if (test) *test = a_te.s;
fail:
	set_free(&seen);
	iapo_text_free(&tr);
	iapo_text_free(&te);
	return st;
}
