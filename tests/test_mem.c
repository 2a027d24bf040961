/*
 * test_mem.c — src/core/mem.c's aligned blocks: ordinary blocks are 64-byte
 * aligned and zeroed; by default so are the largest; with IAPO_HUGEPAGES=1,
 * blocks of IAPO_MEM_HUGE_MIN bytes and more are zeroed,
 * 2 MB-aligned and advised for transparent huge pages (the VMA's "hg" flag in
 * /proc/self/smaps, which madvise(MADV_HUGEPAGE) sets whatever the system's
 * THP mode), unmapped by iapo_free_aligned (mincore then fails), each found
 * again when several are freed out of order; without IAPO_HUGEPAGES=1 (or
 * with 0) they are ordinary blocks; failure injection still fails them. Whether the kernel
 * actually backs a block with 2 MB pages depends on free memory, so it is
 * printed, not tested. No timing.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "iapo.h"
#include "core/mem.h"
#include "test.h"

/* The VmFlags line of the mapping holding p (empty when none); AnonHugePages in kB through huge_kb. */
static void vm_flags(const void *p, char *flags, size_t cap, long *huge_kb)
{
	flags[0] = 0;
	if (huge_kb) *huge_kb = -1;
	FILE *f = fopen("/proc/self/smaps", "r");
	if (!f) return;
	char line[512];
	int in = 0;
	uintptr_t a = (uintptr_t)p;
	while (fgets(line, sizeof line, f)) {
		unsigned long lo, hi;
		char c;
		if (sscanf(line, "%lx-%lx %c", &lo, &hi, &c) == 3) { /* a mapping's first line */
			in = a >= lo && a < hi;
			continue;
		}
		if (!in) continue;
		if (huge_kb && strncmp(line, "AnonHugePages:", 14) == 0) *huge_kb = atol(line + 14);
		if (strncmp(line, "VmFlags:", 8) == 0) {
			snprintf(flags, cap, "%s", line + 8);
			break;
		}
	}
	fclose(f);
}

static int has_flag(const char *flags, const char *fl)
{
	char buf[512];
	snprintf(buf, sizeof buf, " %s", flags);
	for (char *t = strtok(buf, " \n"); t; t = strtok(NULL, " \n"))
		if (strcmp(t, fl) == 0) return 1;
	return 0;
}

static int mapped(const void *p)
{
	unsigned char v;
	long pg = sysconf(_SC_PAGESIZE);
	void *a = (void *)((uintptr_t)p & ~(uintptr_t)(pg - 1));
	return mincore(a, (size_t)pg, &v) == 0;
}

/* every 1021st float (a page stride in most places) and the last are zero */
static int zeroed(const float *x, size_t n)
{
	for (size_t i = 0; i < n; i += 1021)
		if (x[i] != 0.0f) return 0;
	return x[n - 1] == 0.0f;
}

static void small_block_is_ordinary(void)
{
	size_t n = (size_t)1 << 20;
	float *x = iapo_alloc_aligned(n);
	CHECK(x != NULL, "1 MB block");
	if (!x) return;
	CHECK(((uintptr_t)x & 63) == 0, "64-byte aligned: %p", (void *)x);
	CHECK(zeroed(x, n / sizeof(float)), "zero-filled");
	CHECK(!iapo_mem_huge_wanted(n), "a 1 MB block does not want huge pages");
	char fl[512];
	vm_flags(x, fl, sizeof fl, NULL);
	CHECK(fl[0] != 0, "its mapping is in /proc/self/smaps");
	CHECK(!has_flag(fl, "hg"), "not advised for huge pages: %s", fl);
	x[n / sizeof(float) - 1] = 1.0f;
	iapo_free_aligned(x);
	iapo_free_aligned(NULL);
}

static void huge_block_is_advised_and_unmapped(void)
{
	size_t n = IAPO_MEM_HUGE_MIN + 4096 + 64; /* not a multiple of 2 MB */
	CHECK(iapo_mem_huge_wanted(n), "a %zu-byte block wants huge pages", n);
	CHECK(!iapo_mem_huge_wanted(IAPO_MEM_HUGE_MIN - 64), "just under the threshold does not");
	float *x = iapo_alloc_aligned(n);
	CHECK(x != NULL, "huge block");
	if (!x) return;
	const size_t nf = n / sizeof(float);
	CHECK(((uintptr_t)x & (((uintptr_t)2 << 20) - 1)) == 0, "2 MB-aligned: %p", (void *)x);
	CHECK(zeroed(x, nf), "zero-filled");
	for (size_t i = 0; i < nf; i += 4096) x[i] = (float)i; /* touch: faults take 2 MB pages where they can */
	x[nf - 1] = -1.0f;
	char fl[512];
	long kb;
	vm_flags(x, fl, sizeof fl, &kb);
	CHECK(has_flag(fl, "hg"), "advised for huge pages (VmFlags hg): %s", fl);
	vm_flags(x + nf - 1, fl, sizeof fl, NULL);
	CHECK(has_flag(fl, "hg"), "its last float too: %s", fl);
	fprintf(stderr, "  (AnonHugePages of the block's mapping: %ld kB of %zu)\n", kb, n >> 10);
	CHECK(x[4096] == 4096.0f && x[nf - 1] == -1.0f, "writes read back");
	CHECK(mapped(x) && mapped(x + nf - 1), "mapped while held");
	iapo_free_aligned(x);
	CHECK(!mapped(x) && errno == ENOMEM, "unmapped by iapo_free_aligned (head)");
	CHECK(!mapped(x + nf - 1), "unmapped by iapo_free_aligned (tail)");
}

static void several_freed_out_of_order(void)
{
	float *b[3];
	size_t nf = IAPO_MEM_HUGE_MIN / sizeof(float);
	for (int i = 0; i < 3; i++) {
		b[i] = iapo_alloc_aligned(IAPO_MEM_HUGE_MIN);
		CHECK(b[i] != NULL, "block %d", i);
		if (!b[i]) return;
		b[i][0] = (float)(i + 1);
		b[i][nf - 1] = (float)(i + 10);
	}
	iapo_free_aligned(b[1]);
	CHECK(!mapped(b[1]), "the middle block is gone");
	CHECK(mapped(b[0]) && mapped(b[2]), "the others stay");
	CHECK(b[0][0] == 1.0f && b[0][nf - 1] == 10.0f && b[2][0] == 3.0f && b[2][nf - 1] == 12.0f, "their contents too");
	float *c = iapo_alloc_aligned(IAPO_MEM_HUGE_MIN); /* takes the freed record */
	CHECK(c != NULL && zeroed(c, nf), "a new block, zeroed");
	iapo_free_aligned(b[2]);
	iapo_free_aligned(b[0]);
	CHECK(!mapped(b[0]) && !mapped(b[2]), "all freed");
	if (c) {
		CHECK(mapped(c), "the new one stays");
		iapo_free_aligned(c);
		CHECK(!mapped(c), "and goes");
	}
}

static void ordinary_without_the_env(const char *val)
{
	if (val) setenv("IAPO_HUGEPAGES", val, 1);
	else unsetenv("IAPO_HUGEPAGES");
	CHECK(!iapo_mem_huge_wanted(IAPO_MEM_HUGE_MIN), "IAPO_HUGEPAGES=%s: not wanted", val ? val : "(unset)");
	float *x = iapo_alloc_aligned(IAPO_MEM_HUGE_MIN);
	CHECK(x != NULL, "block");
	if (x) {
		char fl[512];
		vm_flags(x, fl, sizeof fl, NULL);
		CHECK(!has_flag(fl, "hg"), "not advised: %s", fl);
		CHECK(((uintptr_t)x & 63) == 0 && zeroed(x, IAPO_MEM_HUGE_MIN / sizeof(float)), "aligned, zeroed");
		iapo_free_aligned(x);
	}
	setenv("IAPO_HUGEPAGES", "1", 1);
	CHECK(iapo_mem_huge_wanted(IAPO_MEM_HUGE_MIN), "wanted again with IAPO_HUGEPAGES=1");
}

static void off_by_default(void) { ordinary_without_the_env(NULL); }
static void off_with_zero(void) { ordinary_without_the_env("0"); }

static void failure_injection(void)
{
	iapo_mem_fail_after(1);
	CHECK(iapo_alloc_aligned(IAPO_MEM_HUGE_MIN) == NULL, "the injected failure fails a huge block");
	void *p = NULL;
	iapo_mem_fail_after(1);
	CHECK(iapo_alloc_or_fail(&p, IAPO_MEM_HUGE_MIN, "test block") == IAPO_ERR_NOMEM && p == NULL, "NOMEM");
	iapo_mem_fail_after(0);
	CHECK(iapo_alloc_or_fail(&p, IAPO_MEM_HUGE_MIN, "test block") == IAPO_OK && p != NULL, "then it works");
	iapo_free_aligned(p);
}

int main(void)
{
	RUN(off_by_default);
	RUN(off_with_zero);
	setenv("IAPO_HUGEPAGES", "1", 1); /* the rest test the huge path */
	RUN(small_block_is_ordinary);
	RUN(huge_block_is_advised_and_unmapped);
	RUN(several_freed_out_of_order);
	RUN(failure_injection);
	TEST_END();
}
