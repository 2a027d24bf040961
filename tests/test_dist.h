/*
 * test_dist.h — test-only: run this test program again as an MPI job.
 * A test_dist*.c program started plainly (tests/run.sh) is the parent: it
 * checks what one process can, then starts itself under
 *   mpirun --oversubscribe -np 2 SELF
 * with IAPO_DIST_CHILD=<mode> in the environment, one OpenMP thread per rank,
 * and reads the job's exit status and output. Each rank of the child prints
 * "rank R: N passed, N failed"; the parent counts the job as passed when it
 * exits 0 and both ranks report no failure.
 *
 * Sanitizer builds: OpenMPI's own start-up allocations are never freed, so
 * LeakSanitizer would fail every child at exit; the children get
 * tests/lsan-mpi.supp, which silences leaks whose stack lies in OpenMPI's
 * libraries only (ours are still reported), and keep ASan + UBSan. Run
 * from the repository root (tests/run.sh does).
 */
#ifndef IAPO_TESTS_TEST_DIST_H
#define IAPO_TESTS_TEST_DIST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"

/* The child mode of this process, or NULL in the parent. */
static inline const char *dist_child_mode(void) { return getenv("IAPO_DIST_CHILD"); }

/* 1 when an mpirun is on PATH. */
static inline int dist_have_mpirun(void) { return system("command -v mpirun >/dev/null 2>&1") == 0; }

/* Runs `self` as an MPI job of `np` ranks in mode `mode`; stdout+stderr go to
 * `log` (under IAPO_TMP). Returns mpirun's exit status (-1 if it did not run). */
static inline int dist_run_child(const char *self, int np, const char *mode, const char *log, const char *extra_env)
{
	char cmd[4096];
	/* The suppressions match OpenMPI's libraries by name: that needs whole
	 * stacks (OpenMPI has no frame pointers: the slow unwinder) and its
	 * plugins still loaded at exit (no dlclose). */
	snprintf(cmd, sizeof cmd,
		 "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 "
		 "OMPI_MCA_mca_base_component_disable_dlclose=1 LSAN_OPTIONS=suppressions=tests/lsan-mpi.supp:print_suppressions=0 "
		 "ASAN_OPTIONS=%s:fast_unwind_on_malloc=0 IAPO_DIST_CHILD=%s %s "
		 "timeout 120 mpirun --oversubscribe --bind-to none -np %d %s >%s 2>&1",
		 test_env("ASAN_OPTIONS", "detect_leaks=1"), mode, extra_env ? extra_env : "", np, self, log);
	int rc = system(cmd);
	return rc == -1 || !WIFEXITED(rc) ? -1 : WEXITSTATUS(rc);
}

/* Reads a file into a malloc'd string ("" when missing). */
static inline char *dist_slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		char *e = malloc(1);
		if (e) e[0] = 0;
		return e;
	}
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *s = malloc((size_t)(n > 0 ? n : 0) + 1);
	size_t k = s && n > 0 ? fread(s, 1, (size_t)n, f) : 0;
	if (s) s[k] = 0;
	fclose(f);
	return s;
}

/* 1 when the job's log holds "rank R: N passed, 0 failed" with N >= 1 for
 * every rank R < np. */
static inline int dist_ranks_passed(const char *log_text, int np)
{
	for (int r = 0; r < np; r++) {
		char key[32];
		snprintf(key, sizeof key, "rank %d: ", r);
		const char *p = log_text, *hit = NULL;
		while ((p = strstr(p, key))) {
			int a, b;
			if (sscanf(p + strlen(key), "%d passed, %d failed", &a, &b) == 2) hit = a >= 1 && b == 0 ? p : NULL;
			p += strlen(key);
		}
		if (!hit) return 0;
	}
	return 1;
}

/* The child's TEST_END: every rank prints its own count. */
#define DIST_CHILD_END(rank) \
	do { \
		printf("rank %d: %d passed, %d failed\n", (rank), test_cases_passed, test_cases_failed); \
		fflush(stdout); \
		return test_cases_failed ? 1 : 0; \
	} while (0)

#endif
