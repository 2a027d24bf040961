/*
 * mem.c — allocation wrappers with a counter and a failure-injection hook,
 * and, opt-in (IAPO_HUGEPAGES=1), huge pages for the few very large blocks
 * (a model's weights, its gradients and optimizer state, a bf16 copy): see
 * iapo_alloc_aligned.
 * Left out: explicit hugetlbfs pages (they need the administrator to reserve
 * them), NUMA placement.
 */
#include "core/mem.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

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

/* Huge blocks: each its own anonymous mapping, recorded here so that
 * iapo_free_aligned knows to unmap it (a process holds a handful). */
#define HUGE_ALIGN ((size_t)2 << 20)
#define HUGE_SLOTS 64
static struct {
	void *p;
	size_t len;
} huge[HUGE_SLOTS];
static pthread_mutex_t huge_lock = PTHREAD_MUTEX_INITIALIZER;

int iapo_mem_huge_wanted(size_t n)
{
	if (n < IAPO_MEM_HUGE_MIN) return 0;
	const char *e = getenv("IAPO_HUGEPAGES"); /* read per call: huge blocks are few */
	return e && strcmp(e, "1") == 0;
}

/* A zeroed block of n bytes at a 2 MB boundary, advised for transparent huge
 * pages before anything touches it; NULL when it cannot be made (the caller
 * then takes the ordinary path). */
static void *huge_alloc(size_t n)
{
	const size_t len = (n + HUGE_ALIGN - 1) & ~(HUGE_ALIGN - 1);
	char *m = mmap(NULL, len + HUGE_ALIGN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED) return NULL;
	char *p = (char *)(((uintptr_t)m + HUGE_ALIGN - 1) & ~(uintptr_t)(HUGE_ALIGN - 1));
	/* the unaligned head and tail go back at once */
	if (p > m) munmap(m, (size_t)(p - m));
	if (m + len + HUGE_ALIGN > p + len) munmap(p + len, (size_t)(m + len + HUGE_ALIGN - (p + len)));
	/* Advice only: where THP is off, or with no 2 MB pages free, faults
	 * take 4 KB pages as before. A fresh anonymous mapping reads as zeros,
	 * so it is not written here: the first writer (the loader, random init,
	 * a product) touches the pages, on as many threads as it runs. */
	(void)madvise(p, len, MADV_HUGEPAGE);
	pthread_mutex_lock(&huge_lock);
	int s = 0;
	while (s < HUGE_SLOTS && huge[s].p) s++;
	if (s < HUGE_SLOTS) {
		huge[s].p = p;
		huge[s].len = len;
	}
	pthread_mutex_unlock(&huge_lock);
	if (s == HUGE_SLOTS) {
		munmap(p, len);
		return NULL;
	}
	return p;
}

void *iapo_alloc_aligned(size_t n)
{
	void *p = NULL;
	if (should_fail()) return NULL;
	n = (n + 63) & ~(size_t)63;
	if (iapo_mem_huge_wanted(n) && (p = huge_alloc(n)) != NULL) return p;
	if (posix_memalign(&p, 64, n ? n : 64) != 0) return NULL;
	memset(p, 0, n);
	return p;
}

void iapo_free_aligned(void *p)
{
	if (!p) return;
	if (((uintptr_t)p & (HUGE_ALIGN - 1)) == 0) {
		pthread_mutex_lock(&huge_lock);
		for (int s = 0; s < HUGE_SLOTS; s++)
			if (huge[s].p == p) {
				size_t len = huge[s].len;
				huge[s].p = NULL;
				pthread_mutex_unlock(&huge_lock);
				munmap(p, len);
				return;
			}
		pthread_mutex_unlock(&huge_lock);
	}
	free(p);
}

iapo_status iapo_alloc_or_fail(void **out, size_t n, const char *what)
{
	*out = iapo_alloc_aligned(n);
	if (!*out) return iapo_fail(IAPO_ERR_NOMEM, "out of memory: %s (%zu bytes)", what, n);
	return IAPO_OK;
}
