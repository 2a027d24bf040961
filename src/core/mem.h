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
/* 64-byte aligned, zero-filled; free with iapo_free_aligned.
 * With IAPO_HUGEPAGES=1 in the environment (off by default), blocks of
 * IAPO_MEM_HUGE_MIN bytes and more (a model's weights from ~70M parameters
 * up, their gradients and AdamW moments, a bf16 copy) are mapped on their
 * own at a 2 MB boundary and advised for transparent huge pages (madvise
 * MADV_HUGEPAGE). Why: a decoding step streams every weight once, and with
 * 4 KB pages the stream crosses a page (a TLB miss, and the end of what the
 * hardware prefetcher follows) every 4 KB; in one process alternating the
 * two, qwen0.5b's fp32 decoding ran 3-12% faster on 2 MB pages. Why not by
 * default: on this development VM (free memory handed back to the host)
 * the first touch of fresh 2 MB pages cost 1-6 s more system time per
 * qwen0.5b process, and whole `bench/model` runs decoded only ~3% faster at the
 * median, with a wider spread (bench/README.md, decode, session 8). Why
 * only the large blocks: where THP's defrag mode is `madvise` an advised
 * fault may compact memory first; tests and small models never pay it. */
void *iapo_alloc_aligned(size_t n);
void iapo_free_aligned(void *p);
#define IAPO_MEM_HUGE_MIN ((size_t)256 << 20)
/* Whether a block of n bytes takes the huge-page path now (its size and
 * IAPO_HUGEPAGES), for tests. */
int iapo_mem_huge_wanted(size_t n);

/* Allocates or records "out of memory: <what> (<n> bytes)" and returns NOMEM. */
iapo_status iapo_alloc_or_fail(void **out, size_t n, const char *what);

/* Test hooks: number of allocations so far; make the allocation with the given
 * ordinal (counting from now, 1 = next) fail; 0 disables. */
unsigned long iapo_mem_alloc_count(void);
void iapo_mem_fail_after(unsigned long nth);

#endif
