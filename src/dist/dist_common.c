/*
 * dist_common.c — the parts of dist.h that do not talk to other processes
 * and so are the same with or without MPI: sharing n items out over the
 * ranks, the weight hash, and remembering which error message every rank
 * holds.
 */
#include <stdio.h>
#include <string.h>

#include "core/status.h"
#include "dist/dist.h"
#include "dist/dist_internal.h"

/* A copy of the last message iapo_dist_agree handed to every rank. The
 * message itself lives in status.c's thread-local buffer and may be
 * overwritten by a later, local failure: comparing tells the two apart. */
static char shared_msg[2048];
static int have_shared;

void dist_note_shared_error(void)
{
	snprintf(shared_msg, sizeof shared_msg, "%s", iapo_errmsg());
	have_shared = 1;
}

int iapo_dist_error_shared(void)
{
	if (iapo_dist_size() == 1) return 1;
	return have_shared && !strcmp(shared_msg, iapo_errmsg());
}

void iapo_dist_share(size_t n, size_t *lo, size_t *hi)
{
	size_t S = (size_t)iapo_dist_size(), r = (size_t)iapo_dist_rank();
	size_t q = n / S, extra = n % S;
	*lo = r * q + (r < extra ? r : extra);
	*hi = *lo + q + (r < extra);
}

/* FNV-1a over 64-bit words inside fixed chunks, then over the chunk hashes:
 * the chunks may run on any number of threads and the result stays the same. */
#define HASH_CHUNK ((size_t)1 << 20)
#define FNV_OFFSET 0xcbf29ce484222325ull
#define FNV_PRIME 0x100000001b3ull

static unsigned long long fnv(const unsigned char *p, size_t bytes, unsigned long long h)
{
	size_t i = 0;
	for (; i + 8 <= bytes; i += 8) {
		unsigned long long w;
		memcpy(&w, p + i, 8);
		h = (h ^ w) * FNV_PRIME;
	}
	for (; i < bytes; i++) h = (h ^ p[i]) * FNV_PRIME;
	return h;
}

unsigned long long iapo_dist_hash_floats(const float *x, size_t n)
{
	const size_t nc = (n + HASH_CHUNK - 1) / HASH_CHUNK;
	unsigned long long h = FNV_OFFSET ^ (unsigned long long)n;
	/* Chunk hashes are combined in order; computing them needs no storage
	 * beyond a small window, so the window is hashed in parallel. */
	enum { WIN = 64 };
	unsigned long long part[WIN];
	for (size_t c0 = 0; c0 < nc; c0 += WIN) {
		const long m = (long)(nc - c0 < WIN ? nc - c0 : WIN);
#pragma omp parallel for schedule(static)
		for (long k = 0; k < m; k++) {
			size_t c = c0 + (size_t)k, lo = c * HASH_CHUNK, len = n - lo < HASH_CHUNK ? n - lo : HASH_CHUNK;
			part[k] = fnv((const unsigned char *)(x + lo), len * sizeof(float), FNV_OFFSET);
		}
		h = fnv((const unsigned char *)part, (size_t)m * sizeof part[0], h);
	}
	return h;
}
