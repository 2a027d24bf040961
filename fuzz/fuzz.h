/*
 * fuzz.h — what every libFuzzer target in fuzz/ shares: a private scratch
 * directory per process (removed at exit) for parsers that read files,
 * splitting one input into several parts at a "\n--\n" line (never valid
 * inside JSON, so a JSON part is never cut), and the checks made on every
 * result of the library:
 *   - a failure must leave a message (iapo_errmsg) saying what went wrong;
 *   - no input may produce IAPO_ERR_INTERNAL (that status means a bug).
 * A broken check aborts, which libFuzzer reports as a crash with the input.
 * The harness itself uses libc allocation and may abort on its own OS
 * failures (a full /tmp is not a finding). Not here: the targets' oracles.
 */
#ifndef IAPO_FUZZ_H
#define IAPO_FUZZ_H

#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/mem.h"
#include "core/status.h"
#include "iapo.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FZ_FAIL(...) \
	do { \
		fprintf(stderr, "fuzz check failed at %s:%d: ", __FILE__, __LINE__); \
		fprintf(stderr, __VA_ARGS__); \
		fputc('\n', stderr); \
		abort(); \
	} while (0)

#define FZ_ASSERT(cond, fmt, ...) \
	do { \
		if (!(cond)) FZ_FAIL("%s: " fmt, #cond, ##__VA_ARGS__); \
	} while (0)

/* Call before each library call whose status is checked with fz_status. */
static inline void fz_begin(void) { iapo_clear_error(); }

/* The checks every status gets; `what` names the call. Returns s. */
static inline iapo_status fz_status(iapo_status s, const char *what)
{
	if (s == IAPO_OK) return s;
	if (s == IAPO_ERR_INTERNAL) FZ_FAIL("%s: internal error: %s", what, iapo_errmsg());
	if (!iapo_errmsg()[0]) FZ_FAIL("%s: failed (%s) without a message", what, iapo_status_str(s));
	return s;
}

/* ---- scratch files ---- */

static char fz_dir_buf[512];

static int fz_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path);
}

static void fz_rm_dir(void)
{
	if (fz_dir_buf[0]) nftw(fz_dir_buf, fz_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* The process's scratch directory, made on first use. */
static inline const char *fz_dir(void)
{
	if (fz_dir_buf[0]) return fz_dir_buf;
	const char *tmp = getenv("TMPDIR");
	snprintf(fz_dir_buf, sizeof fz_dir_buf, "%s/iapo-fuzz-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(fz_dir_buf)) {
		perror("fuzz: mkdtemp");
		abort();
	}
	atexit(fz_rm_dir);
	return fz_dir_buf;
}

/* fz_dir()/name into buf (a static buffer when buf is NULL). */
static inline const char *fz_path(const char *name, char *buf, size_t n)
{
	static char sbuf[1024];
	if (!buf) buf = sbuf, n = sizeof sbuf;
	snprintf(buf, n, "%s/%s", fz_dir(), name);
	return buf;
}

/* Writes n bytes to fz_dir()/name (created, truncated). */
static inline void fz_write(const char *name, const void *data, size_t n)
{
	char p[1024];
	fz_path(name, p, sizeof p);
	FILE *f = fopen(p, "wb");
	if (!f || (n && fwrite(data, 1, n, f) != n) || fclose(f) != 0) {
		perror(p);
		abort();
	}
}

static inline void fz_unlink(const char *name)
{
	char p[1024];
	unlink(fz_path(name, p, sizeof p));
}

/* A subdirectory of the scratch directory (made if needed). */
static inline const char *fz_subdir(const char *name, char *buf, size_t n)
{
	fz_path(name, buf, n);
	if (mkdir(buf, 0755) != 0 && access(buf, F_OK) != 0) {
		perror(buf);
		abort();
	}
	return buf;
}

/* ---- splitting inputs ---- */

typedef struct {
	const uint8_t *p;
	size_t n;
} fz_part;

#define FZ_SEP "\n--\n"

/* Splits data at each FZ_SEP into at most max parts (the last one keeps any
 * further separators); returns the count (>= 1). */
static inline int fz_split(const uint8_t *data, size_t size, fz_part *parts, int max)
{
	int k = 0;
	size_t start = 0;
	while (k < max - 1) {
		const uint8_t *s = size - start >= 4 ? memmem(data + start, size - start, FZ_SEP, 4) : NULL;
		if (!s) break;
		parts[k].p = data + start;
		parts[k].n = (size_t)(s - (data + start));
		k++;
		start = (size_t)(s - data) + 4;
	}
	parts[k].p = data + start;
	parts[k].n = size - start;
	return k + 1;
}

/* A NUL-terminated copy (free()); embedded NULs end the string early. */
static inline char *fz_str(const uint8_t *p, size_t n)
{
	char *s = malloc(n + 1);
	if (!s) abort();
	if (n) memcpy(s, p, n);
	s[n] = '\0';
	return s;
}

#endif
