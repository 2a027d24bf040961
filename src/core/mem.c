/*
 * mem.c — allocation wrappers with a counter and a failure-injection hook.
 */
#include "core/mem.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"

static atomic_ulong alloc_count;
static atomic_ulong fail_at; /* absolute ordinal that fails; 0 = never */

static int should_fail(void)
{
	unsigned long n = atomic_fetch_add(&alloc_count, 1) + 1;
	unsigned long f = atomic_load(&fail_at);
	return f != 0 && n == f;
}

unsigned long iapo_mem_alloc_count(void) { return atomic_load(&alloc_count); }

void iapo_mem_fail_after(unsigned long nth)
{
	atomic_store(&fail_at, nth ? atomic_load(&alloc_count) + nth : 0);
}

void *iapo_malloc(size_t n)
{
	if (should_fail()) return NULL;
	return malloc(n ? n : 1);
}

void *iapo_calloc(size_t count, size_t size)
{
	if (should_fail()) return NULL;
	return calloc(count ? count : 1, size ? size : 1);
}

void *iapo_realloc(void *p, size_t n)
{
	if (should_fail()) return NULL;
	return realloc(p, n ? n : 1);
}

char *iapo_strdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = iapo_malloc(n);
	if (d) memcpy(d, s, n);
	return d;
}

void iapo_free(void *p) { free(p); }

void *iapo_alloc_aligned(size_t n)
{
	void *p = NULL;
	if (should_fail()) return NULL;
	n = (n + 63) & ~(size_t)63;
	if (posix_memalign(&p, 64, n ? n : 64) != 0) return NULL;
	memset(p, 0, n);
	return p;
}

void iapo_free_aligned(void *p) { free(p); }

iapo_status iapo_alloc_or_fail(void **out, size_t n, const char *what)
{
	*out = iapo_alloc_aligned(n);
	if (!*out) return iapo_fail(IAPO_ERR_NOMEM, "out of memory: %s (%zu bytes)", what, n);
	return IAPO_OK;
}
