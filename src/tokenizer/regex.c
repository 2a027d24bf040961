/*
 * regex.c — compiling the pre-tokenizer patterns of tokenizer.json with PCRE2.
 *
 * HF's tokenizers runs these patterns with Oniguruma. PCRE2 in UTF+UCP mode
 * agrees with it on everything these patterns use (\p{L}, \p{N}, (?i:...)
 * with Unicode case folding, lookahead) except \s: Oniguruma's is Unicode
 * White_Space (TAB..CR, space, U+0085, U+00A0, U+1680, U+2000..U+200A,
 * U+2028/9, U+202F, U+205F, U+3000), while PCRE2 also counts U+180E
 * (Mongolian vowel separator, a space before Unicode 6.3). So \s and \S
 * outside character classes, and \s inside them, are spelled out as that
 * explicit set. (\S inside a class cannot be spelled that way and is left to
 * PCRE2; no known tokenizer uses it.)
 *
 * Not here: running the patterns (encode.c).
 */
#include <stdio.h>
#include <string.h>

#include "core/mem.h"
#include "core/status.h"
#include "tokenizer/tok_internal.h"

#define ONIG_SPACE_ITEMS "\\t\\n\\x{0B}\\f\\r\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}"

/* Rewrites \s / \S as described above. Returns a malloc'd pattern or NULL. */
static char *rewrite_spaces(const char *pat)
{
	size_t n = strlen(pat), items = strlen(ONIG_SPACE_ITEMS);
	size_t cap = n + 1, count = 0;
	for (size_t i = 0; i + 1 < n; i++)
		if (pat[i] == '\\') {
			if (pat[i + 1] == 's' || pat[i + 1] == 'S') count++;
			i++;
		}
	cap += count * (items + 3);
	char *out = iapo_malloc(cap);
	if (!out) return NULL;
	size_t o = 0;
	int in_class = 0;
	for (size_t i = 0; i < n; i++) {
		char c = pat[i];
		if (c == '\\' && i + 1 < n) {
			char d = pat[i + 1];
			if (d == 's' && in_class) {
				memcpy(out + o, ONIG_SPACE_ITEMS, items);
				o += items;
			} else if ((d == 's' || d == 'S') && !in_class) {
				out[o++] = '[';
				if (d == 'S') out[o++] = '^';
				memcpy(out + o, ONIG_SPACE_ITEMS, items);
				o += items;
				out[o++] = ']';
			} else {
				out[o++] = c;
				out[o++] = d;
			}
			i++;
			continue;
		}
		if (!in_class && c == '[') {
			in_class = 1;
			out[o++] = c;
			/* A ']' right after '[' or '[^' is a literal member. */
			if (i + 1 < n && pat[i + 1] == '^') out[o++] = pat[++i];
			if (i + 1 < n && pat[i + 1] == ']') out[o++] = pat[++i];
			continue;
		}
		if (in_class && c == '[' && i + 1 < n && pat[i + 1] == ':') {
			/* POSIX class [:name:] inside a class. */
			const char *end = strstr(pat + i + 2, ":]");
			if (end) {
				size_t k = (size_t)(end - (pat + i)) + 2;
				memcpy(out + o, pat + i, k);
				o += k;
				i += k - 1;
				continue;
			}
		}
		if (in_class && c == ']') in_class = 0;
		out[o++] = c;
	}
	out[o] = '\0';
	return out;
}

iapo_status tok_regex_compile(iapo_tokenizer *t, const char *pattern, int literal, const char *what,
			      pcre2_code **out)
{
	*out = NULL;
	char *pat = literal ? iapo_strdup(pattern) : rewrite_spaces(pattern);
	if (!pat) return iapo_fail(IAPO_ERR_NOMEM, "%s: out of memory compiling a regex", what);
	pcre2_compile_context *cc = pcre2_compile_context_create(t->gctx);
	if (!cc) {
		iapo_free(pat);
		return iapo_fail(IAPO_ERR_NOMEM, "%s: out of memory compiling a regex", what);
	}
	int err = 0;
	PCRE2_SIZE off = 0;
	/* UCP means nothing to (and is refused with) a literal pattern. */
	uint32_t opts = PCRE2_UTF | PCRE2_MATCH_INVALID_UTF | (literal ? PCRE2_LITERAL : PCRE2_UCP);
	pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED, opts, &err, &off, cc);
	pcre2_compile_context_free(cc);
	iapo_free(pat);
	if (!re && err == PCRE2_ERROR_HEAP_FAILED)
		return iapo_fail(IAPO_ERR_NOMEM, "%s: out of memory compiling a regex", what);
	if (!re) {
		PCRE2_UCHAR msg[256];
		pcre2_get_error_message(err, msg, sizeof msg);
		return iapo_fail(IAPO_ERR_FORMAT, "%s: expected a valid regex, found an error at offset %zu: %s (%s)",
				 what, (size_t)off, (const char *)msg, pattern);
	}
	/* JIT is only a speed-up: where it is not available we match without it. */
	(void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
	*out = re;
	return IAPO_OK;
}
