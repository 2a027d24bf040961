/*
 * fs.c — POSIX file helpers (see fs.h). Messages: "<path>: <what failed>: <OS error>".
 */
#include "io/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/mem.h"
#include "core/status.h"

#define PATH_CAP 4096

static iapo_status os_fail(const char *path, const char *what)
{
	return iapo_fail(IAPO_ERR_IO, "%s: %s: %s", path, what, strerror(errno));
}

/* ---- the system calls, through the test hook ---- */

static iapo_fs_fault_fn fault_fn;
static void *fault_ctx;

void iapo_fs_set_fault_hook(iapo_fs_fault_fn fn, void *ctx)
{
	fault_ctx = ctx;
	fault_fn = fn;
}

/* Bytes of n the hook lets through (n without a hook), or -1 with errno. */
static ssize_t allowed(iapo_fs_op op, size_t n)
{
	if (!fault_fn) return (ssize_t)n;
	int err = EIO;
	long k = fault_fn(fault_ctx, op, n, &err);
	if (k < 0) {
		errno = err;
		return -1;
	}
	if (k < 1) k = 1;
	return (size_t)k < n ? (ssize_t)k : (ssize_t)n;
}

ssize_t iapo_fs_read(int fd, void *buf, size_t n)
{
	ssize_t k = allowed(IAPO_FS_OP_READ, n);
	return k < 0 ? -1 : read(fd, buf, (size_t)k);
}

ssize_t iapo_fs_write(int fd, const void *buf, size_t n)
{
	ssize_t k = allowed(IAPO_FS_OP_WRITE, n);
	return k < 0 ? -1 : write(fd, buf, (size_t)k);
}

int iapo_fs_fsync(int fd) { return allowed(IAPO_FS_OP_FSYNC, 0) < 0 ? -1 : fsync(fd); }

iapo_status iapo_fs_join(char *buf, size_t n, const char *dir, const char *name)
{
	int k = snprintf(buf, n, "%s/%s", dir, name);
	if (k < 0 || (size_t)k >= n)
		return iapo_fail(IAPO_ERR_ARG, "%s/%s: path longer than %zu bytes", dir, name, n - 1);
	return IAPO_OK;
}

/* Parent directory of path (without trailing slashes) into buf. */
static void parent_of(const char *path, char *buf, size_t n)
{
	size_t len = strnlen(path, n - 1);
	memcpy(buf, path, len);
	buf[len] = '\0';
	while (len > 1 && buf[len - 1] == '/') buf[--len] = '\0';
	char *slash = strrchr(buf, '/');
	if (!slash) snprintf(buf, n, ".");
	else if (slash == buf) buf[1] = '\0';
	else *slash = '\0';
}

int iapo_fs_exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

int iapo_fs_exists_at(int dirfd, const char *name)
{
	struct stat st;
	return fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

int iapo_fs_is_dir(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

iapo_status iapo_fs_read_file(const char *path, size_t max_bytes, char **data, size_t *len)
{
	return iapo_fs_read_file_at(AT_FDCWD, path, path, max_bytes, data, len);
}

iapo_status iapo_fs_read_file_at(int dirfd, const char *name, const char *path, size_t max_bytes, char **data,
				 size_t *len)
{
	*data = NULL;
	if (len) *len = 0;
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0) return os_fail(path, "cannot open");
	struct stat st;
	if (fstat(fd, &st) != 0) {
		iapo_status s = os_fail(path, "cannot stat");
		close(fd);
		return s;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return iapo_fail(IAPO_ERR_IO, "%s: expected a regular file", path);
	}
	if ((unsigned long long)st.st_size > max_bytes) {
		close(fd);
		return iapo_fail(IAPO_ERR_FORMAT, "%s: expected at most %zu bytes, found %lld", path, max_bytes,
				 (long long)st.st_size);
	}
	size_t size = (size_t)st.st_size, got = 0;
	char *buf = iapo_malloc(size + 1);
	if (!buf) {
		close(fd);
		return iapo_fail(IAPO_ERR_NOMEM, "%s: out of memory reading %zu bytes", path, size);
	}
	while (got < size) {
		ssize_t r = iapo_fs_read(fd, buf + got, size - got);
		if (r < 0 && errno == EINTR) continue;
		if (r <= 0) {
			iapo_status s = r < 0 ? os_fail(path, "read failed")
					      : iapo_fail(IAPO_ERR_IO, "%s: file shrank while reading", path);
			iapo_free(buf);
			close(fd);
			return s;
		}
		got += (size_t)r;
	}
	close(fd);
	buf[size] = '\0';
	*data = buf;
	if (len) *len = size;
	return IAPO_OK;
}

iapo_status iapo_fs_write_all(int fd, const char *path, const void *data, size_t len)
{
	const char *p = data;
	while (len > 0) {
		size_t chunk = len > ((size_t)1 << 30) ? (size_t)1 << 30 : len;
		ssize_t w = iapo_fs_write(fd, p, chunk);
		if (w < 0 && errno == EINTR) continue;
		if (w <= 0) return os_fail(path, "write failed");
		p += w;
		len -= (size_t)w;
	}
	return IAPO_OK;
}

iapo_status iapo_fs_write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) return os_fail(path, "cannot create");
	iapo_status s = iapo_fs_write_all(fd, path, data, len);
	if (s == IAPO_OK && iapo_fs_fsync(fd) != 0) s = os_fail(path, "fsync failed");
	if (close(fd) != 0 && s == IAPO_OK) s = os_fail(path, "close failed");
	/* A partial file would look like a complete one to the next reader. */
	if (s != IAPO_OK) unlink(path);
	return s;
}

iapo_status iapo_fs_sync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) return os_fail(path, "cannot open directory");
	/* Some file systems refuse fsync on directories; that is not a failure
	 * of ours to report. */
	if (iapo_fs_fsync(fd) != 0 && errno != EINVAL && errno != EROFS) {
		iapo_status s = os_fail(path, "fsync of directory failed");
		close(fd);
		return s;
	}
	close(fd);
	return IAPO_OK;
}

iapo_status iapo_fs_write_file_atomic(const char *path, const void *data, size_t len)
{
	char tmp[PATH_CAP], dir[PATH_CAP];
	int k = snprintf(tmp, sizeof tmp, "%s.tmp-XXXXXX", path);
	if (k < 0 || (size_t)k >= sizeof tmp) return iapo_fail(IAPO_ERR_ARG, "%s: path too long", path);
	int fd = mkstemp(tmp);
	if (fd < 0) return os_fail(path, "cannot create temporary file");
	/* mkstemp makes the file private; a model file is as readable as any. */
	iapo_status s = fchmod(fd, 0644) == 0 ? IAPO_OK : os_fail(tmp, "chmod failed");
	if (s == IAPO_OK) s = iapo_fs_write_all(fd, tmp, data, len);
	if (s == IAPO_OK && iapo_fs_fsync(fd) != 0) s = os_fail(tmp, "fsync failed");
	if (close(fd) != 0 && s == IAPO_OK) s = os_fail(tmp, "close failed");
	if (s == IAPO_OK && rename(tmp, path) != 0) s = os_fail(path, "cannot rename temporary file into place");
	if (s != IAPO_OK) {
		unlink(tmp);
		return s;
	}
	parent_of(path, dir, sizeof dir);
	return iapo_fs_sync_dir(dir);
}

iapo_status iapo_fs_copy_file(const char *src, const char *dst)
{
	int in = open(src, O_RDONLY | O_CLOEXEC);
	if (in < 0) return os_fail(src, "cannot open");
	int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (out < 0) {
		iapo_status s = os_fail(dst, "cannot create");
		close(in);
		return s;
	}
	iapo_status s = IAPO_OK;
	char buf[1 << 16];
	for (;;) {
		ssize_t r = iapo_fs_read(in, buf, sizeof buf);
		if (r < 0 && errno == EINTR) continue;
		if (r < 0) {
			s = os_fail(src, "read failed");
			break;
		}
		if (r == 0) break;
		s = iapo_fs_write_all(out, dst, buf, (size_t)r);
		if (s != IAPO_OK) break;
	}
	if (s == IAPO_OK && iapo_fs_fsync(out) != 0) s = os_fail(dst, "fsync failed");
	if (close(out) != 0 && s == IAPO_OK) s = os_fail(dst, "close failed");
	close(in);
	if (s != IAPO_OK) unlink(dst);
	return s;
}

iapo_status iapo_fs_mkdir_p(const char *path)
{
	char buf[PATH_CAP];
	size_t len = strlen(path);
	if (len == 0) return iapo_fail(IAPO_ERR_ARG, "mkdir: empty path");
	if (len >= sizeof buf) return iapo_fail(IAPO_ERR_ARG, "%s: path too long", path);
	memcpy(buf, path, len + 1);
	for (size_t i = 1; i <= len; i++) {
		if (buf[i] != '/' && buf[i] != '\0') continue;
		char c = buf[i];
		buf[i] = '\0';
		if (mkdir(buf, 0755) != 0 && errno != EEXIST) {
			iapo_status s = os_fail(buf, "cannot create directory");
			return s;
		}
		if (!iapo_fs_is_dir(buf)) return iapo_fail(IAPO_ERR_IO, "%s: exists and is not a directory", buf);
		buf[i] = c;
	}
	return IAPO_OK;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

iapo_status iapo_fs_remove_all(const char *path)
{
	if (!iapo_fs_exists(path)) return IAPO_OK;
	if (nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0) return os_fail(path, "cannot remove");
	return IAPO_OK;
}

iapo_status iapo_fs_make_temp_dir(const char *target, char *buf, size_t n)
{
	char parent[PATH_CAP], clean[PATH_CAP];
	size_t len = strnlen(target, sizeof clean);
	if (len == 0 || len >= sizeof clean) return iapo_fail(IAPO_ERR_ARG, "'%s': invalid directory path", target);
	memcpy(clean, target, len + 1);
	while (len > 1 && clean[len - 1] == '/') clean[--len] = '\0';
	parent_of(clean, parent, sizeof parent);
	IAPO_TRY(iapo_fs_mkdir_p(parent));
	int k = snprintf(buf, n, "%s.tmp-XXXXXX", clean);
	if (k < 0 || (size_t)k >= n) return iapo_fail(IAPO_ERR_ARG, "%s: path too long", target);
	if (!mkdtemp(buf)) return os_fail(target, "cannot create temporary directory beside it");
	/* mkdtemp makes it private; it becomes an ordinary model directory. */
	if (chmod(buf, 0755) != 0) {
		iapo_status s = os_fail(buf, "chmod failed");
		rmdir(buf);
		return s;
	}
	return IAPO_OK;
}

iapo_status iapo_fs_replace_dir(const char *tmp, const char *target)
{
	char parent[PATH_CAP], aside[PATH_CAP];
	parent_of(target, parent, sizeof parent);
	struct stat st;
	if (lstat(target, &st) != 0) {
		if (errno != ENOENT) return os_fail(target, "cannot stat");
		if (rename(tmp, target) != 0) return os_fail(target, "cannot rename the new directory into place");
		return iapo_fs_sync_dir(parent);
	}
	if (!S_ISDIR(st.st_mode)) return iapo_fail(IAPO_ERR_IO, "%s: exists and is not a directory", target);
	if (renameat2(AT_FDCWD, tmp, AT_FDCWD, target, RENAME_EXCHANGE) == 0) {
		/* tmp now holds the old directory. */
		iapo_status s = iapo_fs_sync_dir(parent);
		iapo_status r = iapo_fs_remove_all(tmp);
		return s != IAPO_OK ? s : r;
	}
	if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP)
		return os_fail(target, "cannot exchange the new directory with the old one");
	/* No atomic exchange here: move the old one aside (onto an empty
	 * directory, which rename may replace), then the new one in. */
	int k = snprintf(aside, sizeof aside, "%s.old-XXXXXX", target);
	if (k < 0 || (size_t)k >= sizeof aside) return iapo_fail(IAPO_ERR_ARG, "%s: path too long", target);
	if (!mkdtemp(aside)) return os_fail(target, "cannot create a directory beside it");
	if (rename(target, aside) != 0) {
		iapo_status s = os_fail(target, "cannot move the old directory aside");
		rmdir(aside);
		return s;
	}
	if (rename(tmp, target) != 0) {
		iapo_status s = os_fail(target, "cannot rename the new directory into place");
		if (rename(aside, target) != 0) iapo_fail_prefix(s, "%s: and restoring it from %s failed", target, aside);
		return s;
	}
	iapo_status s = iapo_fs_sync_dir(parent);
	iapo_status r = iapo_fs_remove_all(aside);
	return s != IAPO_OK ? s : r;
}

int iapo_fs_within(const char *path, const char *dir, char *rest, size_t n)
{
	char *p = realpath(path, NULL), *d = realpath(dir, NULL);
	int in = 0;
	if (p && d) {
		size_t k = strlen(d);
		if (k == 1) k = 0; /* dir is "/": everything is below it */
		in = !strncmp(p, d, k) && (p[k] == '/' || p[k] == 0);
		if (in && rest && n) snprintf(rest, n, "%s", p[k] == '/' ? p + k + 1 : "");
	}
	free(p); /* realpath's own malloc: not counted by core/mem */
	free(d);
	return in;
}
