/*
 * checkpoint.c — optimizer.bin and the atomic checkpoint directory (see
 * checkpoint.h). The checksum is a 4-lane multiply-xor hash over 64-bit
 * words: fast enough for gigabytes of moments, and any flipped or truncated
 * byte changes it (it is an integrity check, not a cryptographic one).
 */
#include "rl/checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/status.h"
#include "io/fs.h"

#define MAGIC "IAPOADAM"
#define VERSION 1u
#define HEADER 64

typedef struct {
	uint64_t lane[4];
	uint64_t words;
} hasher;

static void hash_init(hasher *h)
{
	h->lane[0] = 0x9e3779b97f4a7c15ull, h->lane[1] = 0xbf58476d1ce4e5b9ull;
	h->lane[2] = 0x94d049bb133111ebull, h->lane[3] = 0x2545f4914f6cdd1dull;
	h->words = 0;
}

static inline uint64_t mix(uint64_t x, uint64_t w)
{
	x ^= w;
	x *= 0x100000001b3ull * 0x9e3779b97f4a7c15ull | 1;
	return x ^ (x >> 29);
}

/* Bytes of floats; n_bytes is a multiple of 4. */
static void hash_update(hasher *h, const void *data, size_t n_bytes)
{
	const unsigned char *p = data;
	size_t nw = n_bytes / 8, i = 0;
	for (; i + 4 <= nw; i += 4) {
		uint64_t w[4];
		memcpy(w, p + 8 * i, sizeof w);
		h->lane[0] = mix(h->lane[0], w[0]);
		h->lane[1] = mix(h->lane[1], w[1]);
		h->lane[2] = mix(h->lane[2], w[2]);
		h->lane[3] = mix(h->lane[3], w[3]);
	}
	for (; i < nw; i++) {
		uint64_t w;
		memcpy(&w, p + 8 * i, 8);
		h->lane[i & 3] = mix(h->lane[i & 3], w);
	}
	if (n_bytes % 8) {
		uint32_t w;
		memcpy(&w, p + 8 * nw, 4);
		h->lane[0] = mix(h->lane[0], (uint64_t)w | 0xabcd000000000000ull);
	}
	h->words += (n_bytes + 7) / 8;
}

static uint64_t hash_final(const hasher *h)
{
	uint64_t x = h->words;
	for (int k = 0; k < 4; k++) x = mix(x * 31 + (uint64_t)k, h->lane[k]);
	return mix(x, 0x5851f42d4c957f2dull);
}

uint64_t iapo_checkpoint_checksum(const void *data, size_t n_bytes)
{
	hasher h;
	hash_init(&h);
	hash_update(&h, data, n_bytes);
	return hash_final(&h);
}

static iapo_status os_fail(const char *path, const char *what)
{
	return iapo_fail(IAPO_ERR_IO, "%s: %s: %s", path, what, strerror(errno));
}

iapo_status iapo_optimizer_save(const char *path, const float *m, const float *v, size_t n, long t)
{
	hasher h;
	hash_init(&h);
	hash_update(&h, m, n * sizeof(float));
	hash_update(&h, v, n * sizeof(float));
	unsigned char hdr[HEADER];
	memset(hdr, 0, sizeof hdr);
	uint32_t ver = VERSION, dtype = 0;
	uint64_t nn = n, tt = (uint64_t)t, sum = hash_final(&h);
	memcpy(hdr, MAGIC, 8);
	memcpy(hdr + 8, &ver, 4);
	memcpy(hdr + 12, &dtype, 4);
	memcpy(hdr + 16, &nn, 8);
	memcpy(hdr + 24, &tt, 8);
	memcpy(hdr + 32, &sum, 8);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) return os_fail(path, "cannot create");
	/* Through io/fs.h's calls, so its fault hook reaches this file too. */
	iapo_status s = iapo_fs_write_all(fd, path, hdr, sizeof hdr);
	if (s == IAPO_OK) s = iapo_fs_write_all(fd, path, m, n * sizeof(float));
	if (s == IAPO_OK) s = iapo_fs_write_all(fd, path, v, n * sizeof(float));
	if (s == IAPO_OK && iapo_fs_fsync(fd) != 0) s = os_fail(path, "fsync failed");
	if (close(fd) != 0 && s == IAPO_OK) s = os_fail(path, "close failed");
	/* The header's size and checksum would reject a partial file on load,
	 * but a file that exists looks like a saved state to anyone listing the
	 * directory: none at all is clearer. */
	if (s != IAPO_OK) unlink(path);
	return s;
}

static iapo_status read_exact(int fd, const char *path, void *buf, size_t len)
{
	unsigned char *p = buf;
	while (len > 0) {
		size_t chunk = len > ((size_t)1 << 30) ? (size_t)1 << 30 : len;
		ssize_t r = iapo_fs_read(fd, p, chunk);
		if (r < 0) {
			if (errno == EINTR) continue;
			return os_fail(path, "read failed");
		}
		if (r == 0) return iapo_fail(IAPO_ERR_FORMAT, "%s: expected more data, found the end of the file (truncated)", path);
		p += r;
		len -= (size_t)r;
	}
	return IAPO_OK;
}

iapo_status iapo_optimizer_load(const char *path, float *m, float *v, size_t n, long *t)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) return os_fail(path, "cannot open the optimizer state");
	iapo_status s = IAPO_OK;
	struct stat st;
	unsigned char hdr[HEADER];
	uint32_t ver, dtype;
	uint64_t nn, tt, sum;
	uint64_t want = (uint64_t)HEADER + 2ull * n * sizeof(float);
	if (fstat(fd, &st) != 0) {
		s = os_fail(path, "cannot stat");
		goto done;
	}
	if ((uint64_t)st.st_size < HEADER) {
		s = iapo_fail(IAPO_ERR_FORMAT, "%s: expected an iapo optimizer state of %llu bytes, found %lld bytes (truncated)",
			      path, (unsigned long long)want, (long long)st.st_size);
		goto done;
	}
	if ((s = read_exact(fd, path, hdr, sizeof hdr)) != IAPO_OK) goto done;
	memcpy(&ver, hdr + 8, 4);
	memcpy(&dtype, hdr + 12, 4);
	memcpy(&nn, hdr + 16, 8);
	memcpy(&tt, hdr + 24, 8);
	memcpy(&sum, hdr + 32, 8);
	if (memcmp(hdr, MAGIC, 8)) {
		s = iapo_fail(IAPO_ERR_FORMAT, "%s: expected the magic \"" MAGIC "\" of an iapo optimizer state, found other bytes", path);
		goto done;
	}
	if (ver != VERSION || dtype != 0) {
		s = iapo_fail(IAPO_ERR_FORMAT, "%s: version/dtype: expected %u/0 (f32), found %u/%u", path, VERSION, ver, dtype);
		goto done;
	}
	if (nn != n) {
		s = iapo_fail(IAPO_ERR_FORMAT, "%s: parameter count: expected %zu (the model's), found %llu", path, n,
			      (unsigned long long)nn);
		goto done;
	}
	if ((uint64_t)st.st_size != want) {
		s = iapo_fail(IAPO_ERR_FORMAT, "%s: size: expected %llu bytes for %zu parameters, found %lld bytes%s", path,
			      (unsigned long long)want, n, (long long)st.st_size,
			      (uint64_t)st.st_size < want ? " (truncated)" : "");
		goto done;
	}
	if ((s = read_exact(fd, path, m, n * sizeof(float))) != IAPO_OK) goto done;
	if ((s = read_exact(fd, path, v, n * sizeof(float))) != IAPO_OK) goto done;
	hasher h;
	hash_init(&h);
	hash_update(&h, m, n * sizeof(float));
	hash_update(&h, v, n * sizeof(float));
	if (hash_final(&h) != sum) {
		s = iapo_fail(IAPO_ERR_FORMAT, "%s: checksum: expected %016llx (the header's), found %016llx: the moments are corrupted",
			      path, (unsigned long long)sum, (unsigned long long)hash_final(&h));
		goto done;
	}
	if (tt > (uint64_t)1 << 62) {
		s = iapo_fail(IAPO_ERR_FORMAT, "%s: step: expected a step count, found %llu", path, (unsigned long long)tt);
		goto done;
	}
	*t = (long)tt;
done:
	close(fd);
	return s;
}

iapo_status iapo_checkpoint_dir(const char *run_dir, long step, char *buf, size_t n)
{
	char name[48];
	snprintf(name, sizeof name, "checkpoint-%ld", step);
	return iapo_fs_join(buf, n, run_dir, name);
}

iapo_status iapo_checkpoint_begin(const char *run_dir, long step, char *tmp, size_t n)
{
	char final[4096];
	IAPO_TRY(iapo_checkpoint_dir(run_dir, step, final, sizeof final));
	return iapo_fs_make_temp_dir(final, tmp, n);
}

iapo_status iapo_checkpoint_commit(const char *tmp, const char *run_dir, long step)
{
	char final[4096];
	iapo_status s = iapo_checkpoint_dir(run_dir, step, final, sizeof final);
	if (s == IAPO_OK) s = iapo_fs_sync_dir(tmp);
	if (s == IAPO_OK) s = iapo_fs_replace_dir(tmp, final);
	if (s != IAPO_OK) iapo_checkpoint_abort(tmp);
	return s;
}

void iapo_checkpoint_abort(const char *tmp)
{
	char msg[2048];
	snprintf(msg, sizeof msg, "%s", iapo_errmsg());
	iapo_fs_remove_all(tmp);
	iapo_fail(IAPO_ERR_IO, "%s", msg);
}

/* N of "checkpoint-N" exactly (digits only), else -1. */
static long parse_name(const char *name)
{
	if (strncmp(name, "checkpoint-", 11)) return -1;
	const char *p = name + 11;
	if (!*p) return -1;
	long v = 0;
	for (; *p; p++) {
		if (*p < '0' || *p > '9' || v > (1L << 50)) return -1;
		v = v * 10 + (*p - '0');
	}
	return v;
}

iapo_status iapo_checkpoint_latest(const char *run_dir, const char *marker, long *step)
{
	*step = -1;
	DIR *d = opendir(run_dir);
	if (!d) return iapo_fail(IAPO_ERR_IO, "%s: cannot open the run directory: %s", run_dir, strerror(errno));
	struct dirent *e;
	while ((e = readdir(d))) {
		long k = parse_name(e->d_name);
		if (k < 0 || k <= *step) continue;
		char path[4096], m[4096];
		if (iapo_fs_join(path, sizeof path, run_dir, e->d_name) != IAPO_OK) continue;
		if (!iapo_fs_is_dir(path)) continue;
		if (marker && (iapo_fs_join(m, sizeof m, path, marker) != IAPO_OK || !iapo_fs_exists(m))) continue;
		*step = k;
	}
	closedir(d);
	iapo_clear_error();
	return IAPO_OK;
}

/* "checkpoint-N.old-XXXXXX" (io/fs.h's replace_dir without an atomic
 * exchange moves the old directory aside under that name, then the new one
 * in): the length of its "checkpoint-N" part, else 0. */
static size_t old_aside(const char *name)
{
	const char *o = strstr(name, ".old-");
	if (!o || strstr(name, ".tmp-")) return 0;
	char head[64];
	size_t k = (size_t)(o - name);
	if (k >= sizeof head) return 0;
	memcpy(head, name, k);
	head[k] = '\0';
	return parse_name(head) >= 0 ? k : 0;
}

iapo_status iapo_checkpoint_clean(const char *run_dir)
{
	DIR *d = opendir(run_dir);
	if (!d) return IAPO_OK;
	iapo_status s = IAPO_OK;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (strncmp(e->d_name, "checkpoint-", 11)) continue;
		size_t k = old_aside(e->d_name);
		if (!k && !strstr(e->d_name, ".tmp-")) continue;
		char path[4096], final[4096];
		if (iapo_fs_join(path, sizeof path, run_dir, e->d_name) != IAPO_OK) continue;
		struct stat st;
		if (k && snprintf(final, sizeof final, "%s/%.*s", run_dir, (int)k, e->d_name) < (int)sizeof final &&
		    !iapo_fs_exists(final) && lstat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
			/* A crash between the two renames: the old checkpoint is the
			 * complete one (the new one is a .tmp- and goes below). */
			if (rename(path, final) == 0) continue;
		}
		iapo_status r = iapo_fs_remove_all(path);
		if (s == IAPO_OK) s = r;
	}
	closedir(d);
	return s;
}
