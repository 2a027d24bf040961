/*
 * fs.h — file-system helpers with the durability rules checkpoints need:
 * whole-file reads with a size cap, files written to a temporary name, fsynced
 * and renamed into place, directories created with parents, files copied with
 * fsync, and a directory replaced by a complete new one in a single step.
 * Every failure records a message naming the path and the OS error.
 * Not here: locking (one writer per directory is the caller's job).
 */
#ifndef IAPO_IO_FS_H
#define IAPO_IO_FS_H

#include <stddef.h>
#include <sys/types.h>

#include "iapo.h"

/* Reads all of path into a NUL-terminated buffer (owned by the caller,
 * iapo_free). Files larger than max_bytes are a FORMAT error. */
iapo_status iapo_fs_read_file(const char *path, size_t max_bytes, char **data, size_t *len);
/* The same for name relative to the open directory dirfd (or AT_FDCWD);
 * `shown` is the path used in messages. Reading every file of a directory
 * through one descriptor sees one directory even if it is replaced meanwhile. */
iapo_status iapo_fs_read_file_at(int dirfd, const char *name, const char *shown, size_t max_bytes, char **data,
				 size_t *len);
/* Writes data to path.tmp-XXXXXX, fsyncs it, renames it over path and fsyncs
 * the directory: readers see the old file or the complete new one. */
iapo_status iapo_fs_write_file_atomic(const char *path, const void *data, size_t len);
/* Writes data to path (created or truncated) and fsyncs it; for files inside
 * a directory that is itself made visible atomically. On failure path is
 * removed: never left partly written. */
iapo_status iapo_fs_write_file(const char *path, const void *data, size_t len);
/* write(2) until all of data is written (EINTR and short writes handled);
 * `path` names fd in messages. */
iapo_status iapo_fs_write_all(int fd, const char *path, const void *data, size_t len);
/* Copies src to dst (created or truncated) and fsyncs dst; on failure dst is
 * removed. */
iapo_status iapo_fs_copy_file(const char *src, const char *dst);
/* mkdir -p (mode 0755). An existing directory is fine; an existing file is an
 * error. */
iapo_status iapo_fs_mkdir_p(const char *path);
/* fsync of a directory, so that entries created or renamed in it persist. */
iapo_status iapo_fs_sync_dir(const char *path);
/* Removes path and, for a directory, everything under it (no symlink is
 * followed). A missing path is not an error. */
iapo_status iapo_fs_remove_all(const char *path);
/* 1 if path exists (any type), 0 if not. */
int iapo_fs_exists(const char *path);
int iapo_fs_exists_at(int dirfd, const char *name);
/* 1 if path is a directory. */
int iapo_fs_is_dir(const char *path);
/* 1 when path exists and, symbolic links and "." / ".." resolved, is dir or
 * lies under it; 0 otherwise (also when either does not exist). rest (may
 * be NULL) receives the part of path below dir ("" when equal), cut to n.
 * Guards an --overwrite from deleting the very model it is asked to load. */
int iapo_fs_within(const char *path, const char *dir, char *rest, size_t n);
/* Creates a fresh empty directory beside target ("<target>.tmp-XXXXXX"),
 * creating target's parent directories first; writes its path into buf. */
iapo_status iapo_fs_make_temp_dir(const char *target, char *buf, size_t n);
/* Puts the complete directory tmp at target. If target exists (a directory),
 * the two are exchanged in one rename (Linux renameat2 RENAME_EXCHANGE) and
 * the old one is deleted; where the file system cannot exchange, the old
 * directory is first renamed aside, so target is briefly absent but never
 * partial. Syncs the parent directory. On failure target is unchanged and tmp
 * is left for the caller to remove. */
iapo_status iapo_fs_replace_dir(const char *tmp, const char *target);
/* dir + "/" + name into buf; ARG error when it does not fit. */
iapo_status iapo_fs_join(char *buf, size_t n, const char *dir, const char *name);

/* read(2), write(2) and fsync(2) as every function here makes them, through
 * the fault hook below: code elsewhere that does its own I/O loops can use
 * them to come under the same fault tests. */
ssize_t iapo_fs_read(int fd, void *buf, size_t n);
ssize_t iapo_fs_write(int fd, const void *buf, size_t n);
int iapo_fs_fsync(int fd);

/* ---- test hook: I/O faults ----
 * fn is called before each iapo_fs_read / iapo_fs_write / iapo_fs_fsync with
 * the operation and the byte count asked for (0 for fsync). It returns how
 * many bytes to let through, clamped to [1, n] (the call then moves at most
 * that many: a short read or write), or -1 with *err set to an errno value
 * (EIO, ENOSPC, EINTR, ...) to fail the call without making it. NULL removes
 * the hook. For tests: not synchronised with I/O running on other threads. */
typedef enum { IAPO_FS_OP_READ, IAPO_FS_OP_WRITE, IAPO_FS_OP_FSYNC } iapo_fs_op;
typedef long (*iapo_fs_fault_fn)(void *ctx, iapo_fs_op op, size_t n, int *err);
void iapo_fs_set_fault_hook(iapo_fs_fault_fn fn, void *ctx);

#endif
