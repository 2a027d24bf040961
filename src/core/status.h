/*
 * status.h — internal error reporting. A failing function records a message
 * on the calling thread with iapo_fail() and returns its status; callers
 * propagate with IAPO_TRY or add context with iapo_fail_prefix().
 * Messages follow "<file>: <field or line>: expected X, found Y".
 */
#ifndef IAPO_CORE_STATUS_H
#define IAPO_CORE_STATUS_H

#include "iapo.h"

/* Records the formatted message for this thread and returns s. */
iapo_status iapo_fail(iapo_status s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Prepends "prefix: " to the current message and returns s. */
iapo_status iapo_fail_prefix(iapo_status s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Clears the message (used by code that recovers from an error). */
void iapo_clear_error(void);

#define IAPO_TRY(expr) \
	do { \
		iapo_status iapo_try_s_ = (expr); \
		if (iapo_try_s_ != IAPO_OK) return iapo_try_s_; \
	} while (0)

/* For "goto fail" cleanup: sets st and jumps when expr fails. */
#define IAPO_CHECK(st, expr) \
	do { \
		(st) = (expr); \
		if ((st) != IAPO_OK) goto fail; \
	} while (0)

#endif
