/*
 * checkpoint.h — the files of a training run's checkpoint-N/ directory that
 * are not the model: optimizer.bin (AdamW moments, binary, with a header and
 * a checksum verified on load), and the directory protocol: a checkpoint is
 * assembled in a temporary directory beside its final name and renamed into
 * place in one step, so checkpoint-N either exists complete or not at all.
 * Also finding the latest complete checkpoint of a run and cleaning up the
 * temporary directories a crash left behind.
 *
 * optimizer.bin layout (little-endian, as the host):
 *   0  char[8] "IAPOADAM"
 *   8  u32     version (1)
 *  12  u32     dtype (0 = f32)
 *  16  u64     number of parameters n
 *  24  u64     AdamW step t (updates applied so far)
 *  32  u64     checksum of the payload (see checkpoint.c)
 *  40  u8[24]  zero
 *  64  f32[n]  first moments m, then f32[n] second moments v
 *
 * Not here: the model files (weights.h), trainer_state.json and
 * rng_state.json (their content belongs to the trainer).
 */
#ifndef IAPO_RL_CHECKPOINT_H
#define IAPO_RL_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "iapo.h"

#define IAPO_OPTIMIZER_FILE "optimizer.bin"

/* Writes m and v (n floats each) and step t to path (created or truncated,
 * fsynced; meant for a file inside a checkpoint being assembled). */
iapo_status iapo_optimizer_save(const char *path, const float *m, const float *v, size_t n, long t);
/* Reads path into m and v (n floats each) and *t. The magic, version, dtype,
 * parameter count, exact file size and checksum are verified; any mismatch is
 * a FORMAT error naming the file and what differs (m and v may then hold
 * partial data). */
iapo_status iapo_optimizer_load(const char *path, float *m, float *v, size_t n, long *t);

/* The integrity checksum optimizer.bin uses, for other binary files of a
 * checkpoint (n_bytes a multiple of 4). */
uint64_t iapo_checkpoint_checksum(const void *data, size_t n_bytes);

/* RUN_DIR/checkpoint-<step> into buf. */
iapo_status iapo_checkpoint_dir(const char *run_dir, long step, char *buf, size_t n);
/* Creates an empty temporary directory for checkpoint `step` beside its
 * final place (RUN_DIR/checkpoint-<step>.tmp-XXXXXX) and writes its path. */
iapo_status iapo_checkpoint_begin(const char *run_dir, long step, char *tmp, size_t n);
/* Syncs tmp and puts it at RUN_DIR/checkpoint-<step> (replacing an older one
 * of that step) in one rename. On failure tmp is removed. */
iapo_status iapo_checkpoint_commit(const char *tmp, const char *run_dir, long step);
/* Removes a temporary directory after a failure (keeps the current error message). */
void iapo_checkpoint_abort(const char *tmp);

/* The highest N of RUN_DIR/checkpoint-N directories that hold `marker` (a
 * file written last, e.g. trainer_state.json), or -1 when there is none.
 * A missing RUN_DIR is an IO error naming it. */
iapo_status iapo_checkpoint_latest(const char *run_dir, const char *marker, long *step);
/* Removes RUN_DIR/checkpoint-*.tmp-* directories left by an interrupted save;
 * a checkpoint-N.old-* (the old directory moved aside where the file system
 * cannot exchange two directories) is renamed back to checkpoint-N when that
 * is missing, else removed. */
iapo_status iapo_checkpoint_clean(const char *run_dir);

#endif
