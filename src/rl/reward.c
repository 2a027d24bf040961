/*
 * reward.c — answer extraction, normalisation, numeric comparison and the
 * format check (see reward.h for the rules and where they differ from the
 * reference). Everything works on bounded stack buffers: text is scanned in
 * place as (pointer, length) spans, and only an answer of at most
 * IAPO_ANSWER_MAX bytes is copied and rewritten. No locale, no ctype (its
 * behaviour on bytes >= 0x80 depends on the locale), no allocation.
 * Not here: symbolic algebra; the dataset labels (dataset.c).
 */
#include "rl/reward.h"

#include <math.h>
#include <string.h>

/* Working space for one normalised answer: rewriting can at most double an
 * answer (\frac12 -> \frac{1}{2}), so four times the input is ample. */
#define WORK (4 * (IAPO_ANSWER_MAX + 1))
/* Nesting of \frac/\sqrt/\text arguments we rewrite; deeper input is copied
 * as it is, so hostile "{{{{…" cannot exhaust the stack. */
#define MAX_DEPTH 16

typedef struct {
	const char *p;
	size_t n;
} span;

typedef struct {
	char *p;
	size_t len, cap; /* cap includes the NUL */
	int trunc;
} sbuf;

static int is_digit(int c) { return c >= '0' && c <= '9'; }
static int is_alpha(int c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static int is_space(int c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
static int to_lower(int c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

static void sb_putc(sbuf *b, char c)
{
	if (b->len + 1 < b->cap)
		b->p[b->len++] = c;
	else
		b->trunc = 1;
}

static void sb_put(sbuf *b, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) sb_putc(b, s[i]);
}

static void sb_puts(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_end(sbuf *b) { b->p[b->len] = '\0'; }

static span strip(span s)
{
	while (s.n && is_space((unsigned char)s.p[0])) s.p++, s.n--;
	while (s.n && is_space((unsigned char)s.p[s.n - 1])) s.n--;
	return s;
}

/* Last occurrence of pat in s[0, n), or NULL. */
static const char *find_last(const char *s, size_t n, const char *pat)
{
	size_t m = strlen(pat);
	const char *last = NULL, *q = s, *end = s + n;
	while ((size_t)(end - q) >= m) {
		const char *r = memmem(q, (size_t)(end - q), pat, m);
		if (!r) break;
		last = r;
		q = r + 1;
	}
	return last;
}

static int span_eq(span s, const char *lit)
{
	size_t m = strlen(lit);
	return s.n == m && memcmp(s.p, lit, m) == 0;
}

/* Content of the brace group opening at s[k] == '{' within s[0, n): sets *out
 * and returns the index just after the closing brace, or 0 if the braces do
 * not balance. Raw counting, as LaTeX's \{ pairs cancel anyway. */
static size_t brace_group(const char *s, size_t n, size_t k, span *out)
{
	int depth = 0;
	for (size_t i = k; i < n; i++) {
		if (s[i] == '{')
			depth++;
		else if (s[i] == '}' && --depth == 0) {
			out->p = s + k + 1;
			out->n = i - k - 1;
			return i + 1;
		}
	}
	return 0;
}

/* Whether the control word of `name` bytes at q opens a box: "\boxed{…}",
 * "\boxed {…}", "\boxed X" or "\fbox{…}" (not "\boxedfoo", not a bare
 * "\fbox"). With out, also sets the content: empty when the braces never
 * close (the reference's last_boxed returns "" then, and the answer counts as
 * wrong); "\boxed X" runs to a space or '$'. Only the chosen box is measured,
 * so deciding costs O(1) beyond the spaces skipped. */
static int box_form(const char *q, const char *end, size_t name, span *out)
{
	const char *k = q + name, *j = k;
	while (j < end && *j == ' ') j++;
	if (j < end && *j == '{') {
		if (out && !brace_group(j, (size_t)(end - j), 0, out)) {
			out->p = j;
			out->n = 0;
		}
		return 1;
	}
	if (name != 6 || j == k || j == end || *j == '$' || is_space((unsigned char)*j)) return 0;
	if (out) {
		const char *e = j;
		while (e < end && !is_space((unsigned char)*e) && *e != '$') e++;
		out->p = j;
		out->n = (size_t)(e - j);
	}
	return 1;
}

/* The last box in s (see box_form): 1 with its content, or 0 if none.
 * One forward pass, so a text full of "\boxedx" stays linear. */
static int boxed_last(span s, span *out)
{
	const char *end = s.p + s.n, *best = NULL;
	size_t best_name = 0;
	for (const char *q = s.p; q < end && (q = memchr(q, '\\', (size_t)(end - q))); q++) {
		size_t name = 0;
		if (end - q >= 6 && memcmp(q, "\\boxed", 6) == 0)
			name = 6;
		else if (end - q >= 5 && memcmp(q, "\\fbox", 5) == 0)
			name = 5;
		if (name && box_form(q, end, name, NULL)) {
			best = q;
			best_name = name;
		}
	}
	if (!best) return 0;
	box_form(best, end, best_name, out);
	return 1;
}

/* A final "x = 5" keeps "5". */
static span after_eq(span s)
{
	const char *e = s.n ? memrchr(s.p, '=', s.n) : NULL;
	if (e) {
		s.n -= (size_t)(e + 1 - s.p);
		s.p = e + 1;
	}
	return strip(s);
}

/* The answer span of a completion (see reward.h); 1 if one was found. */
static int extract_span(const char *text, span *out)
{
	span t = {text ? text : "", text ? strlen(text) : 0}, a;
	const char *open = find_last(t.p, t.n, "<answer>");
	if (open) {
		a.p = open + 8;
		const char *close = memmem(a.p, (size_t)(t.p + t.n - a.p), "</answer>", 9);
		a.n = close ? (size_t)(close - a.p) : (size_t)(t.p + t.n - a.p);
		a = strip(a);
		span in;
		if (boxed_last(a, &in)) a = strip(in);
	} else if (boxed_last(t, &a)) {
		a = strip(a);
	} else {
		const char *h = find_last(t.p, t.n, "####");
		if (!h) {
			out->p = t.p;
			out->n = 0;
			return 0;
		}
		a.p = h + 4;
		const char *nl = memchr(a.p, '\n', (size_t)(t.p + t.n - a.p));
		a.n = nl ? (size_t)(nl - a.p) : (size_t)(t.p + t.n - a.p);
		a = strip(a);
	}
	*out = after_eq(a);
	return out->n > 0;
}

int iapo_answer_extract(const char *text, char *buf, size_t n)
{
	span a;
	int found = extract_span(text, &a);
	if (!buf || n == 0) return found;
	size_t m = a.n < n - 1 ? a.n : n - 1;
	memcpy(buf, a.p, m);
	buf[m] = '\0';
	return found;
}

/* ---- normalisation ------------------------------------------------------ */

/* One argument of \frac or \sqrt starting at s[*i]: a brace group, a control
 * sequence (\pi), or a single (UTF-8) character. 0 if there is none. */
static int macro_arg(const char *s, size_t n, size_t *i, span *out, int *braced)
{
	size_t k = *i;
	while (k < n && s[k] == ' ') k++;
	if (k >= n || s[k] == '}') return 0;
	*braced = s[k] == '{';
	if (*braced) {
		size_t e = brace_group(s, n, k, out);
		if (!e) return 0;
		*i = e;
		return 1;
	}
	size_t e = k + 1;
	if (s[k] == '\\') {
		while (e < n && is_alpha((unsigned char)s[e])) e++;
		if (e == k + 1 && e < n) e++; /* \{ and friends */
	} else if ((unsigned char)s[k] >= 0xC0) {
		while (e < n && ((unsigned char)s[e] & 0xC0) == 0x80) e++;
	}
	out->p = s + k;
	out->n = e - k;
	*i = e;
	return 1;
}

static int name_in(span name, const char *const *list)
{
	for (; *list; list++)
		if (span_eq(name, *list)) return 1;
	return 0;
}

static const char *const FRAC_NAMES[] = {"frac", "dfrac", "tfrac", "cfrac", NULL};
static const char *const TEXT_NAMES[] = {"text", "textbf", "textit", "textrm", "textsf", "texttt", "textup",
					 "textnormal", "mbox", "hbox", "mathrm", "mathbf", "mathit", "mathsf",
					 "mathtt", "operatorname", NULL};
/* Sizing and spacing commands that carry no value. */
static const char *const DROP_NAMES[] = {"left", "right", "displaystyle", "big", "Big", "bigl", "bigr",
					 "Bigl", "Bigr", "degree", "quad", "qquad", NULL};

/* The token-level rewrite: \dfrac/\tfrac -> \frac with braced arguments,
 * \sqrt2 -> \sqrt{2}, \text{X}-like wrappers -> " X ", thin spaces -> ' ',
 * and drops $ \$ % \% " {,} ^\circ ^{\circ} ° \left \right. */
static void rewrite(const char *s, size_t n, sbuf *o, int depth)
{
	if (depth > MAX_DEPTH) {
		sb_put(o, s, n);
		return;
	}
	size_t i = 0;
	while (i < n) {
		char c = s[i];
		if (c == '^' && i + 6 <= n && memcmp(s + i, "^\\circ", 6) == 0 &&
		    (i + 6 == n || !is_alpha((unsigned char)s[i + 6]))) {
			i += 6;
			continue;
		}
		if (c == '^' && i + 8 <= n && memcmp(s + i, "^{\\circ}", 8) == 0) {
			i += 8;
			continue;
		}
		if ((unsigned char)c == 0xC2 && i + 1 < n && (unsigned char)s[i + 1] == 0xB0) { /* ° */
			i += 2;
			continue;
		}
		if (c == '$' || c == '%' || c == '"') {
			i++;
			continue;
		}
		if (c == '~') {
			sb_putc(o, ' ');
			i++;
			continue;
		}
		if (c == '{' && i + 3 <= n && memcmp(s + i, "{,}", 3) == 0) {
			i += 3;
			continue;
		}
		if (c != '\\') {
			sb_putc(o, c);
			i++;
			continue;
		}
		size_t j = i + 1;
		while (j < n && is_alpha((unsigned char)s[j])) j++;
		span name = {s + i + 1, j - i - 1};
		if (name.n == 0) { /* a control symbol */
			if (j >= n) {
				sb_putc(o, '\\');
				i++;
				continue;
			}
			char d = s[j];
			if (d == '%' || d == '$')
				; /* \% and \$ carry no value */
			else if (d == '!' || d == ',' || d == ';' || d == ':' || d == ' ')
				sb_putc(o, ' ');
			else
				sb_put(o, s + i, 2);
			i += 2;
			continue;
		}
		if (name_in(name, FRAC_NAMES)) {
			size_t k = j;
			span a, b;
			int ba, bb;
			if (macro_arg(s, n, &k, &a, &ba) && macro_arg(s, n, &k, &b, &bb)) {
				sb_puts(o, "\\frac{");
				rewrite(a.p, a.n, o, depth + 1);
				sb_puts(o, "}{");
				rewrite(b.p, b.n, o, depth + 1);
				sb_putc(o, '}');
				i = k;
			} else {
				sb_puts(o, "\\frac");
				i = j;
			}
			continue;
		}
		if (span_eq(name, "sqrt")) {
			size_t k = j;
			sb_puts(o, "\\sqrt");
			while (k < n && s[k] == ' ') k++;
			if (k < n && s[k] == '[') {
				const char *rb = memchr(s + k, ']', n - k);
				if (rb) {
					sb_putc(o, '[');
					rewrite(s + k + 1, (size_t)(rb - s - k - 1), o, depth + 1);
					sb_putc(o, ']');
					k = (size_t)(rb - s) + 1;
				}
			}
			span a;
			int ba;
			if (macro_arg(s, n, &k, &a, &ba)) {
				sb_putc(o, '{');
				rewrite(a.p, a.n, o, depth + 1);
				sb_putc(o, '}');
				i = k;
			} else {
				i = j;
			}
			continue;
		}
		if (name_in(name, TEXT_NAMES)) {
			size_t k = j;
			while (k < n && s[k] == ' ') k++;
			span a;
			size_t e = k < n && s[k] == '{' ? brace_group(s, n, k, &a) : 0;
			if (e) {
				sb_putc(o, ' ');
				rewrite(a.p, a.n, o, depth + 1);
				sb_putc(o, ' ');
				i = e;
			} else {
				sb_put(o, s + i, j - i);
				i = j;
			}
			continue;
		}
		if (name_in(name, DROP_NAMES)) {
			i = j;
			if ((span_eq(name, "left") || span_eq(name, "right")) && i < n && s[i] == '.') i++;
			continue;
		}
		sb_put(o, s + i, j - i);
		i = j;
	}
}

/* Words removed when they trail a number ("10 dollars", "5 \text{ cm}^2").
 * The reference's list, then common units; a plural 's' is also accepted. */
static const char *const UNIT_WORDS[] = {
	/* reference (iapo-reference §2.4) */
	"square", "ways", "integers", "dollars", "mph", "inches", "hours", "km", "units", "sue", "points",
	"feet", "minutes", "digits", "cents", "degrees", "cm", "gm", "pounds", "meters", "meals", "edges",
	"students", "childrentickets", "multiples",
	/* ours */
	"dollar", "cent", "usd", "inch", "foot", "ft", "yard", "yd", "mile", "mi", "kph", "meter", "metre",
	"m", "mm", "centimeter", "centimetre", "millimeter", "millimetre", "kilometer", "kilometre", "gram",
	"kg", "mg", "kilogram", "pound", "lb", "ounce", "oz", "ton", "tonne", "liter", "litre", "ml",
	"gallon", "gal", "cup", "second", "sec", "minute", "min", "hour", "hr", "day", "week", "month", "year",
	"yr", "degree", "deg", "percent", "unit", "point", "way", "integer", "digit", "student", "meal",
	"edge", "multiple", "sq", "cubic", "people", "person", NULL};
/* Units only accepted right after a '/' (km/h, m/s). */
static const char *const PER_UNIT_WORDS[] = {"h", "s", "hr", "min", "sec", NULL};

static int word_in(const char *w, size_t n, const char *const *list)
{
	for (; *list; list++) {
		size_t m = strlen(*list);
		if (m != n) continue;
		size_t k = 0;
		while (k < n && to_lower((unsigned char)w[k]) == (*list)[k]) k++;
		if (k == n) return 1;
	}
	return 0;
}

static int is_unit(const char *w, size_t n)
{
	if (word_in(w, n, UNIT_WORDS)) return 1;
	return n > 1 && to_lower((unsigned char)w[n - 1]) == 's' && word_in(w, n - 1, UNIT_WORDS);
}

/* Length of s once a trailing run of unit words (with ^2, ^{3}, '/', "per",
 * spaces and periods between them) is cut, provided a value is left before
 * it: something ending in a non-letter, or \pi. Otherwise n. */
static size_t unit_cut(const char *s, size_t n)
{
	size_t pos = n, committed = n;
	for (;;) {
		while (pos && (is_space((unsigned char)s[pos - 1]) || s[pos - 1] == '.')) pos--;
		if (!pos) break;
		if (pos >= 2 && s[pos - 2] == '^' && (s[pos - 1] == '2' || s[pos - 1] == '3')) {
			pos -= 2;
			continue;
		}
		if (pos >= 4 && s[pos - 4] == '^' && s[pos - 3] == '{' && (s[pos - 2] == '2' || s[pos - 2] == '3') &&
		    s[pos - 1] == '}') {
			pos -= 4;
			continue;
		}
		if (s[pos - 1] == '/') {
			pos--;
			continue;
		}
		if (!is_alpha((unsigned char)s[pos - 1])) break;
		size_t w = pos;
		while (w && is_alpha((unsigned char)s[w - 1])) w--;
		if (w && s[w - 1] == '\\') break; /* a command such as \pi */
		if (pos - w == 3 && memcmp(s + w, "per", 3) == 0) {
			pos = w;
			continue;
		}
		if (is_unit(s + w, pos - w)) {
			pos = committed = w;
			continue;
		}
		if (w && s[w - 1] == '/' && word_in(s + w, pos - w, PER_UNIT_WORDS)) {
			pos = w;
			continue;
		}
		break;
	}
	if (committed == n) return n;
	size_t k = committed;
	while (k && is_space((unsigned char)s[k - 1])) k--;
	if (!k) return n; /* the answer is only a word: keep it */
	if (is_alpha((unsigned char)s[k - 1]) && !(k >= 3 && memcmp(s + k - 3, "\\pi", 3) == 0)) return n;
	return k;
}

static void trim_inplace(char *s)
{
	size_t n = strlen(s), a = 0;
	while (n && is_space((unsigned char)s[n - 1])) n--;
	while (a < n && is_space((unsigned char)s[a])) a++;
	memmove(s, s + a, n - a);
	s[n - a] = '\0';
}

/* "1,000" -> "1000" and "-12,345.5" -> "-12345.5": a first group of 1-3
 * digits not starting with 0, then groups of exactly three. Skipped when the
 * answer has brackets, where a comma separates members: (0,100), [1,100]. */
static void drop_thousands(char *s)
{
	if (strpbrk(s, "()[]")) return;
	size_t r = 0, w = 0;
	char prev = '\0';
	while (s[r]) {
		if (is_digit((unsigned char)s[r]) && s[r] != '0' && !is_digit((unsigned char)prev) && prev != '.') {
			size_t g = r;
			while (is_digit((unsigned char)s[g])) g++;
			size_t end = g;
			int groups = 0;
			if (g - r <= 3)
				while (s[end] == ',' && is_digit((unsigned char)s[end + 1]) &&
				       is_digit((unsigned char)s[end + 2]) && is_digit((unsigned char)s[end + 3]) &&
				       !is_digit((unsigned char)s[end + 4])) {
					end += 4;
					groups++;
				}
			if (!groups) end = g;
			for (; r < end; r++)
				if (s[r] != ',') s[w++] = s[r];
			prev = s[r - 1];
			continue;
		}
		prev = s[r];
		s[w++] = s[r++];
	}
	s[w] = '\0';
}

/* "5.00" -> "5" wherever a number's fraction is all zeros. */
static void drop_zero_fraction(char *s)
{
	size_t r = 0, w = 0;
	char prev = '\0';
	while (s[r]) {
		if (s[r] == '.' && is_digit((unsigned char)prev) && s[r + 1] == '0') {
			size_t k = r + 1;
			while (s[k] == '0') k++;
			if (!is_digit((unsigned char)s[k])) {
				prev = '0';
				r = k;
				continue;
			}
		}
		prev = s[r];
		s[w++] = s[r++];
	}
	s[w] = '\0';
}

/* Normalises s[0, n) into out (cap bytes). Returns 0 if anything was cut. */
static int normalize_span(span in, char *out, size_t cap)
{
	int complete = 1;
	if (in.n > IAPO_ANSWER_MAX) in.n = IAPO_ANSWER_MAX, complete = 0;
	char a[WORK];
	in = strip(in);
	span box;
	if (boxed_last(in, &box)) in = strip(box);
	in = after_eq(in);

	sbuf o = {a, 0, sizeof a, 0};
	rewrite(in.p, in.n, &o, 0);
	sb_end(&o);
	if (o.trunc) complete = 0;
	trim_inplace(a);

	/* A leading article before a word ("a b" -> "b", as the reference; we
	 * only take it at the start, so "a + b" keeps its a). */
	static const char *const articles[] = {"a ", "an ", "the "};
	for (int k = 0; k < 3; k++) {
		size_t m = strlen(articles[k]);
		if (strncmp(a, articles[k], m) == 0 && is_alpha((unsigned char)a[m])) {
			memmove(a, a + m, strlen(a + m) + 1);
			break;
		}
	}
	a[unit_cut(a, strlen(a))] = '\0';

	size_t w = 0;
	for (size_t r = 0; a[r]; r++)
		if (!is_space((unsigned char)a[r])) a[w++] = a[r];
	a[w] = '\0';
	drop_thousands(a);
	drop_zero_fraction(a);
	size_t len = strlen(a);
	while (len && a[len - 1] == '.') a[--len] = '\0';
	char *p = a;
	if (*p == '+') p++, len--;

	if (cap) {
		size_t m = len < cap - 1 ? len : cap - 1;
		if (m < len) complete = 0;
		memcpy(out, p, m);
		out[m] = '\0';
	}
	return complete;
}

void iapo_answer_normalize(const char *s, char *buf, size_t n)
{
	span in = {s ? s : "", s ? strnlen(s, IAPO_ANSWER_MAX + 1) : 0};
	normalize_span(in, buf, n);
}

/* ---- numeric comparison ------------------------------------------------- */

typedef struct {
	long double v;
	int integer;		  /* a plain integer: compare digits exactly */
	int neg;		  /* sign of an integer */
	const char *digits;	  /* its digits without leading zeros */
	size_t ndigits;
} number;

/* An unsigned decimal at s[*i]: digits[.digits] or .digits. */
static int parse_decimal(const char *s, size_t *i, long double *v, int *has_point)
{
	size_t k = *i, nd = 0;
	long double x = 0, scale = 1;
	while (is_digit((unsigned char)s[k])) x = x * 10 + (s[k++] - '0'), nd++;
	*has_point = s[k] == '.';
	if (*has_point) {
		k++;
		while (is_digit((unsigned char)s[k])) x = x * 10 + (s[k++] - '0'), scale *= 10, nd++;
	}
	if (nd == 0) return 0;
	*v = x / scale;
	*i = k;
	return 1;
}

static int parse_signed(const char *s, size_t *i, long double *v)
{
	int neg = 0, pt;
	if (s[*i] == '+' || s[*i] == '-') neg = s[(*i)++] == '-';
	if (!parse_decimal(s, i, v, &pt)) return 0;
	if (neg) *v = -*v;
	return 1;
}

/* "\frac{a}{b}" at s[*i] with signed decimals a and b. */
static int parse_frac(const char *s, size_t *i, long double *v)
{
	size_t k = *i;
	long double a, b;
	if (strncmp(s + k, "\\frac{", 6)) return 0;
	k += 6;
	if (!parse_signed(s, &k, &a) || strncmp(s + k, "}{", 2)) return 0;
	k += 2;
	if (!parse_signed(s, &k, &b) || s[k] != '}') return 0;
	if (b == 0) return 0;
	*v = a / b;
	*i = k + 1;
	return 1;
}

/* A whole normalised answer as a number: [sign] decimal, a/b, \frac{a}{b}, or
 * a mixed number like 2\frac{1}{4} (= 2.25). 0 if it is anything else. */
static int parse_number(const char *s, number *out)
{
	size_t i = 0;
	int neg = 0, pt;
	if (s[i] == '+' || s[i] == '-') neg = s[i++] == '-';
	long double v, f;
	memset(out, 0, sizeof *out);
	size_t start = i;
	if (parse_frac(s, &i, &v)) {
		/* \frac{a}{b} */
	} else if (parse_decimal(s, &i, &v, &pt)) {
		if (s[i] == '/') {
			long double b;
			i++;
			if (!parse_signed(s, &i, &b) || b == 0) return 0;
			v /= b;
		} else if (!pt && s[i] == '\\') {
			if (!parse_frac(s, &i, &f) || f < 0) return 0;
			v += f;
		} else if (!pt) {
			out->integer = 1;
			size_t z = start;
			while (s[z] == '0' && z + 1 < i) z++;
			out->digits = s + z;
			out->ndigits = i - z;
		}
	} else {
		return 0;
	}
	if (s[i] != '\0' || !isfinite(v)) return 0;
	out->v = neg ? -v : v;
	out->neg = neg && !(out->ndigits == 1 && out->digits[0] == '0');
	return 1;
}

static int normalized_equal(const char *a, const char *b)
{
	if (!*a || !*b) return 0;
	if (strcmp(a, b) == 0) return 1;
	number x, y;
	if (!parse_number(a, &x) || !parse_number(b, &y)) return 0;
	if (x.integer && y.integer)
		return x.neg == y.neg && x.ndigits == y.ndigits && memcmp(x.digits, y.digits, x.ndigits) == 0;
	long double d = fabsl(x.v - y.v), m = fmaxl(fabsl(x.v), fabsl(y.v));
	return d <= 1e-9L * m;
}

int iapo_answer_equal(const char *a, const char *b)
{
	char na[IAPO_ANSWER_MAX + 1], nb[IAPO_ANSWER_MAX + 1];
	span sa = {a ? a : "", a ? strnlen(a, IAPO_ANSWER_MAX + 1) : 0};
	span sb = {b ? b : "", b ? strnlen(b, IAPO_ANSWER_MAX + 1) : 0};
	if (!normalize_span(sa, na, sizeof na) || !normalize_span(sb, nb, sizeof nb)) return 0;
	return normalized_equal(na, nb);
}

int iapo_answer_is_correct(const char *completion, const char *label)
{
	span a;
	if (!extract_span(completion, &a) || a.n > IAPO_ANSWER_MAX) return 0;
	char na[IAPO_ANSWER_MAX + 1], nb[IAPO_ANSWER_MAX + 1];
	span sb = {label ? label : "", label ? strnlen(label, IAPO_ANSWER_MAX + 1) : 0};
	if (!normalize_span(a, na, sizeof na) || !normalize_span(sb, nb, sizeof nb)) return 0;
	return normalized_equal(na, nb);
}

/* ---- format ------------------------------------------------------------- */

static int has_tag(const char *p, size_t n)
{
	static const char *const tags[] = {"<think>", "</think>", "<answer>", "</answer>"};
	for (int k = 0; k < 4; k++)
		if (memmem(p, n, tags[k], strlen(tags[k]))) return 1;
	return 0;
}

int iapo_format_ok(const char *c)
{
	if (!c) return 0;
	const char *end = c + strlen(c);
	const char *t = memmem(c, (size_t)(end - c), "<think>", 7);
	if (!t || has_tag(c, (size_t)(t - c))) return 0;
	const char *tb = t + 7;
	const char *te = memmem(tb, (size_t)(end - tb), "</think>", 8);
	if (!te || has_tag(tb, (size_t)(te - tb))) return 0;
	const char *p = te + 8;
	while (p < end && is_space((unsigned char)*p)) p++;
	if (end - p < 8 || memcmp(p, "<answer>", 8) != 0) return 0;
	const char *ab = p + 8;
	const char *ae = memmem(ab, (size_t)(end - ab), "</answer>", 9);
	if (!ae || has_tag(ab, (size_t)(ae - ab))) return 0;
	p = ae + 9;
	while (p < end && is_space((unsigned char)*p)) p++;
	return p == end;
}

void iapo_reward_weights_default(iapo_reward_weights *w)
{
	w->correct = 1.0f;
	w->wrong = -1.0f;
	w->format_ok = 0.5f;
	w->format_bad = -0.5f;
}

float iapo_reward(const char *completion, const char *label, const iapo_reward_weights *w, int *correct,
		  int *format_ok)
{
	iapo_reward_weights d;
	if (!w) {
		iapo_reward_weights_default(&d);
		w = &d;
	}
	int c = iapo_answer_is_correct(completion, label);
	int f = iapo_format_ok(completion);
	if (correct) *correct = c;
	if (format_ok) *format_ok = f;
	return (c ? w->correct : w->wrong) + (f ? w->format_ok : w->format_bad);
}
