/*
 * text.h — a growable, always NUL-terminated byte buffer for building text
 * (a safetensors header, a rendered chat prompt, a JSONL file, a line read
 * from a file). It doubles its capacity so that appends cost amortised O(1),
 * and it is reused by resetting len, so a caller that keeps one buffer across
 * many lines allocates only while lines keep getting longer.
 *
 * An allocation failure is sticky: the buffer keeps the text it had, later
 * appends do nothing, and `failed` stays set, so a caller can append a whole
 * document and check once at the end (cJSON and SQLite's StrAccum work the
 * same way). Callers that check every append get IAPO_ERR_NOMEM back and
 * record their own message, naming what they were building.
 */
#ifndef IAPO_CORE_TEXT_H
#define IAPO_CORE_TEXT_H

#include <stdarg.h>
#include <stddef.h>

#include "iapo.h"

typedef struct {
	char *p;    /* NULL until the first append; then p[len] == '\0' */
	size_t len; /* bytes of text, without the terminating NUL */
	size_t cap; /* bytes allocated at p */
	int failed; /* an append ran out of memory; the text is incomplete */
} iapo_text;

/* Appends n bytes of s (which may hold NULs; s must not point into t->p). The
 * first allocation is at least `first` bytes (0 picks 256). Returns IAPO_OK,
 * or IAPO_ERR_NOMEM without recording a message. */
iapo_status iapo_text_put_n(iapo_text *t, const char *s, size_t n, size_t first);
iapo_status iapo_text_put(iapo_text *t, const char *s, size_t n);
iapo_status iapo_text_puts(iapo_text *t, const char *s);
/* printf-style append, of any length. */
iapo_status iapo_text_fmt(iapo_text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
iapo_status iapo_text_vfmt(iapo_text *t, const char *fmt, va_list ap);
/* Appends s as a JSON string literal: quotes, \" and \\, and \u00XX for
 * control bytes; other bytes (UTF-8 included) as they are. */
iapo_status iapo_text_json_string(iapo_text *t, const char *s);
/* Frees the buffer and zeroes t, so it can be reused. */
void iapo_text_free(iapo_text *t);

#endif
