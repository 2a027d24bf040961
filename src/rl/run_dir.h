/*
 * run_dir.h — the run directory that `iapo train` (rl/train_state.c) and
 * `iapo sft` (rl/sft_run.c) share: RUN_DIR/config.json, metrics.jsonl and
 * checkpoint-N/. Here is what both do alike with it: decide whether --out may
 * be used (a new run, an earlier run to --overwrite, or one to --resume),
 * write config.json and open metrics.jsonl for appending, save a checkpoint
 * (model, optimizer.bin, the state files), cut metrics.jsonl back to a
 * checkpoint's step on resume, and write a JSON file.
 *
 * Rank 0 only (the callers run these on rank 0 and share the outcome).
 * Not here: what the state files hold (each command's), the checkpoint
 * directory protocol and optimizer.bin (checkpoint.h).
 */
#ifndef IAPO_RL_RUN_DIR_H
#define IAPO_RL_RUN_DIR_H

#include <stdio.h>

#include <cjson/cJSON.h>

#include "iapo.h"
#include "model/weights.h"

#define IAPO_METRICS_FILE "metrics.jsonl"
#define IAPO_STATE_FILE "trainer_state.json" /* written last: marks a checkpoint complete */
#define IAPO_RNG_FILE "rng_state.json"

/* What a checkpoint-N/ holds besides the run's own JSON. */
typedef struct {
	const iapo_weights *w; /* the model: an HF directory with ... */
	const char *tokdir;    /* ... the tokenizer files of this directory */
	const float *m, *v;    /* AdamW moments (n floats each) and step: optimizer.bin */
	size_t n;
	long t;
	const char *extra_name; /* another file (NULL: none) and its bytes */
	const void *extra;
	size_t extra_len;
} iapo_run_checkpoint;

/* For a new run: --out must be a directory or nothing; one that holds an
 * earlier run (metrics.jsonl or a checkpoint-N/) is an ARG error unless
 * `overwrite`, which deletes that run's metrics and checkpoints; the
 * directory is then created. *ckpt_step = -1.
 * With `resume`: --out must exist and hold a checkpoint-N/ with `marker`
 * (the file its state is written in last); *ckpt_step = the latest N.
 * Both clean up the temporary directories of an interrupted save. */
iapo_status iapo_run_dir_prepare(const char *out, int resume, int overwrite, const char *marker, long *ckpt_step);

/* Writes root, pretty-printed and ending in a newline, to dir/name
 * (atomically: a temporary file renamed in; else in place, for files inside
 * a checkpoint still being assembled). */
iapo_status iapo_run_dir_write_json(const char *dir, const char *name, const cJSON *root, int atomic);

/* Writes out/config.json (atomically) from cfg and opens out/metrics.jsonl
 * for appending into *metrics (the caller closes it). */
iapo_status iapo_run_dir_open_outputs(const char *out, const cJSON *cfg, FILE **metrics);

/* The start of rng_state.json: {"generator", "seed", "data_order"} (the
 * caller adds its streams, then iapo_json_built(o, *oom)); NULL when even
 * the object cannot be made. */
cJSON *iapo_run_dir_rng_json(long seed, const char *data_order, int *oom);

/* Appends the metrics line o (NULL: an allocation failed building it) to
 * the open metrics.jsonl of run directory out, flushed, and o itself to
 * history (trainer_state.json's log_history), which takes it. */
iapo_status iapo_run_dir_log(FILE *metrics, const char *out, cJSON *history, cJSON *o);

/* Writes out/checkpoint-<step>: c's files, then rng as rng_state.json and
 * state as trainer_state.json (last), assembled in a temporary directory and
 * renamed into place in one step; on failure nothing is left. rng and state
 * are taken (deleted here); NULL for either is an out-of-memory error. */
iapo_status iapo_run_dir_save_checkpoint(const char *out, long step, const iapo_run_checkpoint *c, cJSON *rng,
					 cJSON *state);

/* A counter of a state file: an integer in [-1, 2^53] (FORMAT error naming
 * file and key). */
iapo_status iapo_run_dir_state_long(const cJSON *o, const char *key, const char *file, long *out);
/* Reads out/checkpoint-<step>/trainer_state.json into *state (the caller
 * deletes it, also on error) and checks that its global_step is step. path
 * (n bytes) gets the file's path, for the caller's messages. */
iapo_status iapo_run_dir_load_state(const char *out, long step, char *path, size_t n, cJSON **state);

/* Keeps the lines of out/metrics.jsonl up to step `step` (a resumed run
 * writes the rest again); a torn last line is dropped. A missing file is
 * created empty. FORMAT error naming the line for one without a "step". */
iapo_status iapo_run_dir_truncate_metrics(const char *out, long step);

#endif
