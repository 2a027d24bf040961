/*
 * mem.h — the one place memory is allocated. Every allocation in libiapo goes
 * through these so that tests can count allocations (the training step must
 * make none) and inject failures (SQLite style). Large blocks are 64-byte
 * aligned for AVX-512.
 */
#ifndef IAPO_CORE_MEM_H
#define IAPO_CORE_MEM_H

#include <stddef.h>

#include "iapo.h"

void *iapo_malloc(size_t n);            /* NULL on failure (no message) */
void *iapo_calloc(size_t count, size_t size);
void *iapo_realloc(void *p, size_t n);
char *iapo_strdup(const char *s);
void iapo_free(void *p);
/* 64-byte aligned, zero-filled; free with iapo_free_aligned. */
void *iapo_alloc_aligned(size_t n);
void iapo_free_aligned(void *p);

/* Allocates or records "out of memory: <what> (<n> bytes)" and returns NOMEM. */
iapo_status iapo_alloc_or_fail(void **out, size_t n, const char *what);

/* Test hooks: number of allocations so far; make the allocation with the given
 * ordinal (counting from now, 1 = next) fail; 0 disables. */
unsigned long iapo_mem_alloc_count(void);
void iapo_mem_fail_after(unsigned long nth);

#endif
