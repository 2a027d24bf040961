/*
 * text.c — the growable text buffer of text.h. Nothing here records an error
 * message: the caller knows what it was building and says so.
 */
#include "core/text.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/mem.h"

/* Makes room for `extra` more bytes and the NUL. */
static iapo_status reserve(iapo_text *t, size_t extra, size_t first)
{
	if (t->failed) return IAPO_ERR_NOMEM;
	if (extra > (size_t)-1 / 4 - t->len) {
		t->failed = 1;
		return IAPO_ERR_NOMEM;
	}
	if (t->len + extra + 1 <= t->cap) return IAPO_OK;
	size_t cap = t->cap ? t->cap : first ? first : 256;
	while (cap < t->len + extra + 1) cap *= 2;
	char *q = iapo_realloc(t->p, cap);
	if (!q) {
		t->failed = 1;
		return IAPO_ERR_NOMEM;
	}
	t->p = q;
	t->cap = cap;
	return IAPO_OK;
}

iapo_status iapo_text_put_n(iapo_text *t, const char *s, size_t n, size_t first)
{
	if (reserve(t, n, first) != IAPO_OK) return IAPO_ERR_NOMEM;
	if (n) memcpy(t->p + t->len, s, n);
	t->len += n;
	t->p[t->len] = '\0';
	return IAPO_OK;
}

iapo_status iapo_text_put(iapo_text *t, const char *s, size_t n) { return iapo_text_put_n(t, s, n, 0); }

iapo_status iapo_text_puts(iapo_text *t, const char *s) { return iapo_text_put_n(t, s, strlen(s), 0); }

iapo_status iapo_text_vfmt(iapo_text *t, const char *fmt, va_list ap)
{
	if (t->failed) return IAPO_ERR_NOMEM;
	char small[256];
	va_list again;
	va_copy(again, ap);
	int k = vsnprintf(small, sizeof small, fmt, ap);
	iapo_status s = IAPO_OK;
	if (k < 0)
		s = IAPO_ERR_ARG;
	else if ((size_t)k < sizeof small)
		s = iapo_text_put(t, small, (size_t)k);
	else if ((s = reserve(t, (size_t)k, 0)) == IAPO_OK) {
		/* Longer than the stack buffer: format again, in place. */
		vsnprintf(t->p + t->len, (size_t)k + 1, fmt, again);
		t->len += (size_t)k;
	}
	va_end(again);
	return s;
}

iapo_status iapo_text_fmt(iapo_text *t, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	iapo_status s = iapo_text_vfmt(t, fmt, ap);
	va_end(ap);
	return s;
}

iapo_status iapo_text_json_string(iapo_text *t, const char *s)
{
	iapo_text_put(t, "\"", 1);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			char esc[2] = {'\\', (char)c};
			iapo_text_put(t, esc, 2);
		} else if (c < 0x20) {
			iapo_text_fmt(t, "\\u%04x", c);
		} else {
			iapo_text_put(t, (const char *)&c, 1);
		}
	}
	return iapo_text_put(t, "\"", 1);
}

void iapo_text_free(iapo_text *t)
{
	iapo_free(t->p);
	memset(t, 0, sizeof *t);
}
