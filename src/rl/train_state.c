/*
 * train_state.c — the trainer's run directory: config.json, metrics.jsonl,
 * checkpoint-N/ (HF model dir + optimizer.bin + trainer_state.json +
 * rng_state.json, and rollout.bin when a multi-pass rollout is half used),
 * and resuming from the latest checkpoint.
 *
 * trainer_state.json follows HF's TrainerState where the fields mean the
 * same (global_step, epoch, max_steps, num_train_epochs, train_batch_size,
 * best_metric, best_global_step, best_model_checkpoint, log_history) and
 * adds what a bit-identical resume needs (adam_step, bad_steps_in_a_row,
 * rollout_step, data position). It is written last inside the temporary
 * directory, so a checkpoint-N with trainer_state.json is complete; the
 * directory itself appears by one rename.
 *
 * Under MPI only rank 0 reads and writes these files (train_dist.c hands
 * what it read to the others); rollout.bin is gathered from every rank.
 * Not here: the step (trainer.c), the optimizer.bin format (checkpoint.c).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "core/status.h"
#include "dist/dist.h"
#include "io/fs.h"
#include "io/json.h"
#include "rl/checkpoint.h"
#include "rl/run_dir.h"
#include "rl/train_internal.h"

#define ROLLOUT_FILE "rollout.bin"
#define ROLLOUT_MAGIC "IAPOROLL"
#define ROLLOUT_VERSION 1u
#define ROLLOUT_HEADER 64

/* ---- run directory -------------------------------------------------------- */

iapo_status train_run_dir_prepare(iapo_trainer *tr, long *ckpt_step)
{
	return iapo_run_dir_prepare(tr->o.out, tr->o.resume, tr->o.overwrite, IAPO_STATE_FILE, ckpt_step);
}

iapo_status train_open_outputs(iapo_trainer *tr)
{
	cJSON *cfg = iapo_train_opts_to_json(&tr->o);
	if (!cfg) return iapo_fail(IAPO_ERR_NOMEM, "config.json: out of memory");
	iapo_status st = iapo_run_dir_open_outputs(tr->o.out, cfg, &tr->metrics);
	cJSON_Delete(cfg);
	return st;
}

/* ---- metrics -------------------------------------------------------------- */

static cJSON *metrics_json(const iapo_step_metrics *m, const cJSON *eval)
{
	cJSON *o = cJSON_CreateObject();
	if (!o) return NULL;
	int oom = 0;
	iapo_json_add(o, "step", cJSON_CreateNumber((double)m->step), &oom);
	iapo_json_add(o, "epoch", iapo_json_double(m->epoch), &oom);
	iapo_json_add(o, "iteration", cJSON_CreateNumber(m->iteration), &oom);
	iapo_json_add(o, "reward_mean", iapo_json_double(m->reward_mean), &oom);
	iapo_json_add(o, "reward_std", iapo_json_double(m->reward_std), &oom);
	iapo_json_add(o, "frac_reward_zero_std", iapo_json_double(m->frac_reward_zero_std), &oom);
	iapo_json_add(o, "accuracy", iapo_json_double(m->accuracy), &oom);
	iapo_json_add(o, "format_rate", iapo_json_double(m->format_rate), &oom);
	iapo_json_add(o, "completion_length_mean", iapo_json_double(m->length_mean), &oom);
	iapo_json_add(o, "completion_length_min", cJSON_CreateNumber(m->length_min), &oom);
	iapo_json_add(o, "completion_length_max", cJSON_CreateNumber(m->length_max), &oom);
	iapo_json_add(o, "clipped_ratio", iapo_json_double(m->clipped_ratio), &oom);
	if (m->has_kl) iapo_json_add(o, "kl", iapo_json_double(m->kl), &oom);
	iapo_json_add(o, "entropy", iapo_json_double(m->entropy), &oom);
	iapo_json_add(o, "loss", iapo_json_double(m->loss), &oom);
	iapo_json_add(o, "grad_norm", iapo_json_double(m->grad_norm), &oom);
	iapo_json_add(o, "learning_rate", iapo_json_float((float)m->lr), &oom); /* a float: its shortest text */
	iapo_json_add(o, "ratio_mean", iapo_json_double(m->ratio_mean), &oom);
	iapo_json_add(o, "clip_ratio_low", iapo_json_double(m->clip_low), &oom);
	iapo_json_add(o, "clip_ratio_high", iapo_json_double(m->clip_high), &oom);
	iapo_json_add(o, "tokens", cJSON_CreateNumber(m->tokens), &oom);
	iapo_json_add(o, "skipped", cJSON_CreateBool(m->skipped), &oom);
	if (m->has_eval) {
		iapo_json_add(o, "eval_accuracy", iapo_json_double(m->eval_accuracy), &oom);
		iapo_json_add(o, "eval_format_rate", iapo_json_double(m->eval_format_rate), &oom);
		iapo_json_add(o, "eval_length_mean", iapo_json_double(m->eval_length_mean), &oom);
		iapo_json_add(o, "eval_truncated_rate", iapo_json_double(m->eval_truncated_rate), &oom);
		iapo_json_add(o, "eval_pass@1", iapo_json_double(m->eval_pass_at_1), &oom);
		iapo_json_add(o, "eval_problems", cJSON_CreateNumber((double)m->eval_problems), &oom);
		iapo_json_add(o, "eval_samples", cJSON_CreateNumber((double)m->eval_samples), &oom);
		const cJSON *pk = eval ? cJSON_GetObjectItemCaseSensitive(eval, "pass_at_k") : NULL;
		const cJSON *lk = eval ? cJSON_GetObjectItemCaseSensitive(eval, "length_at_k") : NULL;
		if (pk) iapo_json_add(o, "eval_pass_at_k", cJSON_Duplicate(pk, 1), &oom);
		if (lk) iapo_json_add(o, "eval_length_at_k", cJSON_Duplicate(lk, 1), &oom);
	}
	iapo_json_add(o, "seconds_rollout", iapo_json_double(m->seconds_rollout), &oom);
	iapo_json_add(o, "seconds_scoring", iapo_json_double(m->seconds_scoring), &oom);
	iapo_json_add(o, "seconds_reference", iapo_json_double(m->seconds_reference), &oom);
	iapo_json_add(o, "seconds_update", iapo_json_double(m->seconds_update), &oom);
	if (m->has_eval) iapo_json_add(o, "seconds_eval", iapo_json_double(m->seconds_eval), &oom);
	iapo_json_add(o, "seconds_total", iapo_json_double(m->seconds_total), &oom);
	return iapo_json_built(o, oom);
}

iapo_status train_log_metrics(iapo_trainer *tr, const iapo_step_metrics *m, const cJSON *eval)
{
	cJSON *o = metrics_json(m, eval);
	if (o && iapo_algo_metrics_json(o, &tr->algo_m)) { /* the --algo's fields */
		cJSON_Delete(o);
		o = NULL;
	}
	return iapo_run_dir_log(tr->metrics, tr->o.out, tr->log_history, o);
}

/* ---- rollout.bin: the rollout buffer between passes of --iterations ------- */

/* The file holds the whole step's buffer, array after array, each array the
 * step's sequences in order: under MPI the ranks' parts in rank order, so
 * the file is the same whatever the number of ranks that wrote or reads it. */

typedef struct {
	void *p;
	size_t bytes; /* this rank's part */
} span;

static int rollout_spans(iapo_trainer *tr, span *s)
{
	const size_t N = (size_t)tr->n_loc, NT = N * (size_t)tr->Tc;
	int k = 0;
	s[k++] = (span){tr->row, N * 4};
	s[k++] = (span){tr->plen, N * 4};
	s[k++] = (span){tr->clen, N * 4};
	s[k++] = (span){tr->finish, N * 4};
	s[k++] = (span){tr->correct, N * 4};
	s[k++] = (span){tr->fmt_ok, N * 4};
	s[k++] = (span){tr->reward, N * 4};
	s[k++] = (span){tr->seq_adv, N * 4};
	s[k++] = (span){tr->ctok, NT * 4};
	s[k++] = (span){tr->adv, NT * 4};
	s[k++] = (span){tr->old_logp, NT * 4};
	s[k++] = (span){tr->ref_logp, NT * 4};
	return k;
}

static size_t rollout_bytes(const span *s, int k, int ranks)
{
	size_t total = ROLLOUT_HEADER;
	for (int i = 0; i < k; i++) total += (size_t)ranks * s[i].bytes;
	return total;
}

/* Collective: the file's bytes, gathered from every rank (on every rank). */
static iapo_status rollout_pack(iapo_trainer *tr, unsigned char **out, size_t *len)
{
	span s[16];
	int k = rollout_spans(tr, s);
	size_t total = rollout_bytes(s, k, tr->ranks);
	unsigned char *buf = iapo_calloc(1, total);
	iapo_status st = iapo_dist_agree(buf ? IAPO_OK : iapo_fail(IAPO_ERR_NOMEM, "rollout.bin: out of memory (%zu bytes)", total));
	size_t off = ROLLOUT_HEADER;
	for (int i = 0; i < k && st == IAPO_OK; i++) {
		st = iapo_dist_allgather(s[i].p, s[i].bytes, buf + off);
		off += (size_t)tr->ranks * s[i].bytes;
	}
	if (st != IAPO_OK) {
		iapo_free(buf);
		return st;
	}
	uint32_t hdr[4] = {ROLLOUT_VERSION, (uint32_t)tr->N, (uint32_t)tr->Tc, (uint32_t)tr->G};
	int64_t gen = tr->buf_gen;
	uint64_t sum = iapo_checkpoint_checksum(buf + ROLLOUT_HEADER, total - ROLLOUT_HEADER);
	memcpy(buf, ROLLOUT_MAGIC, 8);
	memcpy(buf + 8, hdr, sizeof hdr);
	memcpy(buf + 24, &gen, 8);
	memcpy(buf + 32, &sum, 8);
	*out = buf;
	*len = total;
	return IAPO_OK;
}

/* Reads and checks rollout.bin of dir (`total` bytes expected). */
static iapo_status rollout_read(const iapo_trainer *tr, const char *p, long gen, size_t total, unsigned char **out)
{
	*out = NULL;
	if (!iapo_fs_exists(p))
		return iapo_fail(IAPO_ERR_FORMAT,
				 "%s: expected the rollout buffer (the checkpoint stops between --iterations passes), found no file", p);
	unsigned char *buf;
	size_t len;
	IAPO_TRY(iapo_fs_read_file(p, total + 1, (char **)&buf, &len));
	iapo_status st = IAPO_OK;
	uint32_t hdr[4];
	int64_t g;
	uint64_t sum;
	if (len < ROLLOUT_HEADER || memcmp(buf, ROLLOUT_MAGIC, 8)) {
		st = iapo_fail(IAPO_ERR_FORMAT, "%s: expected the magic \"" ROLLOUT_MAGIC "\", found other bytes", p);
		goto done;
	}
	memcpy(hdr, buf + 8, sizeof hdr);
	memcpy(&g, buf + 24, 8);
	memcpy(&sum, buf + 32, 8);
	if (hdr[0] != ROLLOUT_VERSION || hdr[1] != (uint32_t)tr->N || hdr[2] != (uint32_t)tr->Tc ||
	    hdr[3] != (uint32_t)tr->G || g != gen) {
		st = iapo_fail(IAPO_ERR_FORMAT,
			       "%s: expected version %u, %d sequences, %d completion tokens, group %d, rollout %ld; found "
			       "%u, %u, %u, %u, %lld",
			       p, ROLLOUT_VERSION, tr->N, tr->Tc, tr->G, gen, hdr[0], hdr[1], hdr[2], hdr[3], (long long)g);
		goto done;
	}
	if (len != total) {
		st = iapo_fail(IAPO_ERR_FORMAT, "%s: size: expected %zu bytes, found %zu%s", p, total, len,
			       len < total ? " (truncated)" : "");
		goto done;
	}
	if (iapo_checkpoint_checksum(buf + ROLLOUT_HEADER, total - ROLLOUT_HEADER) != sum)
		st = iapo_fail(IAPO_ERR_FORMAT, "%s: checksum: expected the header's, found another: the file is corrupted", p);
done:
	if (st != IAPO_OK)
		iapo_free(buf);
	else
		*out = buf;
	return st;
}

iapo_status train_resume_rollout(iapo_trainer *tr, long step)
{
	if (step % tr->mu == 0) return IAPO_OK;
	const long gen = step / tr->mu;
	char dir[TRAIN_PATH], p[TRAIN_PATH];
	IAPO_TRY(iapo_checkpoint_dir(tr->o.out, step, dir, sizeof dir));
	IAPO_TRY(iapo_fs_join(p, sizeof p, dir, ROLLOUT_FILE));
	span s[16];
	int k = rollout_spans(tr, s);
	size_t total = rollout_bytes(s, k, tr->ranks);
	unsigned char *buf = NULL;
	iapo_status st = IAPO_OK;
	if (tr->rank == 0)
		st = rollout_read(tr, p, gen, total, &buf);
	else if (!(buf = iapo_malloc(total)))
		st = iapo_fail(IAPO_ERR_NOMEM, "rollout.bin: out of memory (%zu bytes)", total);
	st = iapo_dist_agree(st);
	if (st == IAPO_OK) st = iapo_dist_bcast(buf, total, 0);
	if (st == IAPO_OK) {
		size_t off = ROLLOUT_HEADER;
		for (int i = 0; i < k; i++) {
			memcpy(s[i].p, buf + off + (size_t)tr->rank * s[i].bytes, s[i].bytes);
			off += (size_t)tr->ranks * s[i].bytes;
		}
		for (int i = 0; i < tr->n_loc; i++) {
			int r = tr->row[i];
			if (r < 0 || (size_t)r >= tr->train.n || tr->plen[i] != tr->prompt_len[r] || tr->clen[i] < 0 ||
			    tr->clen[i] > tr->Tc) {
				st = iapo_fail(IAPO_ERR_FORMAT, "%s: sequence %d: expected a row of the training data and its prompt "
					       "length, found row %d of length %d (was --data changed?)", p, tr->i_first + i, r, tr->plen[i]);
				break;
			}
			tr->pptr[i] = tr->pool + tr->prompt_off[r];
		}
	}
	iapo_free(buf);
	IAPO_TRY(iapo_dist_agree(st));
	tr->buf_gen = gen;
	return IAPO_OK;
}

/* ---- checkpoints ---------------------------------------------------------- */

static cJSON *state_json(const iapo_trainer *tr, const char *ckpt_final)
{
	cJSON *o = cJSON_CreateObject();
	if (!o) return NULL;
	int oom = 0;
	long next_gen = tr->step / tr->mu;
	iapo_json_add(o, "global_step", cJSON_CreateNumber((double)tr->step), &oom);
	iapo_json_add(o, "epoch", iapo_json_double((double)tr->step / (double)(tr->per_epoch * tr->mu)), &oom);
	iapo_json_add(o, "max_steps", cJSON_CreateNumber((double)tr->total), &oom);
	iapo_json_add(o, "num_train_epochs", cJSON_CreateNumber((double)tr->o.epochs), &oom);
	iapo_json_add(o, "steps_per_epoch", cJSON_CreateNumber((double)(tr->per_epoch * tr->mu)), &oom);
	iapo_json_add(o, "train_batch_size", cJSON_CreateNumber(tr->N), &oom);
	iapo_json_add(o, "prompts_per_step", cJSON_CreateNumber(tr->P), &oom);
	iapo_json_add(o, "num_generations", cJSON_CreateNumber(tr->G), &oom);
	iapo_json_add(o, "iterations", cJSON_CreateNumber(tr->mu), &oom);
	iapo_json_add(o, "save_steps", cJSON_CreateNumber((double)tr->o.save_steps), &oom);
	iapo_json_add(o, "eval_steps", cJSON_CreateNumber((double)tr->o.eval_steps), &oom);
	iapo_json_add(o, "data_epoch", cJSON_CreateNumber((double)(next_gen / tr->per_epoch)), &oom);
	iapo_json_add(o, "data_position", cJSON_CreateNumber((double)((next_gen % tr->per_epoch) * tr->P)), &oom);
	iapo_json_add(o, "rollout_step", cJSON_CreateNumber((double)next_gen), &oom);
	iapo_json_add(o, "adam_step", cJSON_CreateNumber((double)tr->adam_t), &oom);
	iapo_json_add(o, "bad_steps_in_a_row", cJSON_CreateNumber(tr->bad_streak), &oom);
	iapo_json_add(o, "seed", cJSON_CreateNumber((double)tr->o.seed), &oom);
	iapo_json_add(o, "metric_for_best_model", cJSON_CreateString("eval_accuracy"), &oom);
	iapo_json_add(o, "best_metric", tr->has_best ? iapo_json_double(tr->best_metric) : cJSON_CreateNull(), &oom);
	iapo_json_add(o, "best_global_step", tr->has_best ? cJSON_CreateNumber((double)tr->best_step) : cJSON_CreateNull(), &oom);
	char best[TRAIN_PATH];
	const char *bp = NULL;
	if (tr->has_best && tr->best_step == tr->step && ckpt_final)
		bp = ckpt_final;
	else if (tr->has_best && tr->best_ckpt_step == tr->best_step &&
		 iapo_checkpoint_dir(tr->o.out, tr->best_step, best, sizeof best) == IAPO_OK)
		bp = best;
	iapo_json_add(o, "best_model_checkpoint", bp ? cJSON_CreateString(bp) : cJSON_CreateNull(), &oom);
	iapo_json_add(o, "iapo_version", cJSON_CreateString(IAPO_VERSION), &oom);
	iapo_json_add(o, "log_history", cJSON_Duplicate(tr->log_history, 1), &oom);
	return iapo_json_built(o, oom);
}

static cJSON *rng_json(const iapo_trainer *tr)
{
	int oom;
	cJSON *o = iapo_run_dir_rng_json(tr->o.seed, "epoch e: Fisher-Yates over the training rows from key (seed, \"data\", e)", &oom);
	if (!o) return NULL;
	iapo_json_add(o, "sampling", cJSON_CreateString("completion j of row k in rollout g: stream (seed, key(g, k, j))"), &oom);
	iapo_json_add(o, "resampling", cJSON_CreateString("--dynamic-sampling resample, attempt a >= 1: stream (seed, key(g, k, j) mixed with a)"), &oom);
	iapo_json_add(o, "loss_mask", cJSON_CreateString("S-GRPO: slot j of row k at optimizer step s: stream (seed, \"sgrp\", s, (k, j))"), &oom);
	iapo_json_add(o, "next_rollout", cJSON_CreateNumber((double)(tr->step / tr->mu)), &oom);
	iapo_json_add(o, "rollout_in_buffer", cJSON_CreateNumber((double)tr->buf_gen), &oom);
	return iapo_json_built(o, oom);
}

/* Rank 0's part of a save: the files, into a temporary directory renamed
 * into place. roll: rollout.bin's bytes, or NULL. */
static iapo_status save_files(iapo_trainer *tr, const char *final, const unsigned char *roll, size_t roll_len)
{
	iapo_run_checkpoint c = {.w = &tr->w,
				 .tokdir = tr->o.model,
				 .m = tr->m,
				 .v = tr->v,
				 .n = tr->n_params,
				 .t = tr->adam_t,
				 .extra_name = roll ? ROLLOUT_FILE : NULL,
				 .extra = roll,
				 .extra_len = roll_len};
	return iapo_run_dir_save_checkpoint(tr->o.out, tr->step, &c, rng_json(tr), state_json(tr, final));
}

iapo_status train_save(iapo_trainer *tr)
{
	char final[TRAIN_PATH];
	IAPO_TRY(iapo_checkpoint_dir(tr->o.out, tr->step, final, sizeof final));
	unsigned char *roll = NULL;
	size_t roll_len = 0;
	if (tr->step % tr->mu != 0 && tr->buf_gen == tr->step / tr->mu) IAPO_TRY(rollout_pack(tr, &roll, &roll_len));
	iapo_status st = tr->rank == 0 ? save_files(tr, final, roll, roll_len) : IAPO_OK;
	iapo_free(roll);
	IAPO_TRY(iapo_dist_agree(st));
	tr->saved_step = tr->step;
	if (tr->has_best && tr->best_step == tr->step) tr->best_ckpt_step = tr->step;
	snprintf(tr->last_ckpt, sizeof tr->last_ckpt, "%s", final);
	return IAPO_OK;
}

iapo_status train_resume(iapo_trainer *tr, long step)
{
	char dir[TRAIN_PATH], p[TRAIN_PATH];
	IAPO_TRY(iapo_checkpoint_dir(tr->o.out, step, dir, sizeof dir));
	cJSON *state = NULL, *rng = NULL;
	iapo_status st;
	long v;
	IAPO_CHECK(st, iapo_run_dir_load_state(tr->o.out, step, p, sizeof p, &state));
	IAPO_CHECK(st, iapo_run_dir_state_long(state, "train_batch_size", p, &v));
	if (v != tr->N) {
		st = iapo_fail(IAPO_ERR_ARG, "%s: train_batch_size: the run used %ld completions per step, the options give %d",
			       p, v, tr->N);
		goto fail;
	}
	IAPO_CHECK(st, iapo_run_dir_state_long(state, "iterations", p, &v));
	if (v != tr->mu) {
		st = iapo_fail(IAPO_ERR_ARG, "%s: iterations: the run used %ld, the options give %d", p, v, tr->mu);
		goto fail;
	}
	IAPO_CHECK(st, iapo_run_dir_state_long(state, "seed", p, &v));
	if (v != tr->o.seed) {
		st = iapo_fail(IAPO_ERR_ARG, "%s: seed: the run used %ld, the options give %ld", p, v, tr->o.seed);
		goto fail;
	}
	long adam_t, bad;
	IAPO_CHECK(st, iapo_run_dir_state_long(state, "adam_step", p, &adam_t));
	IAPO_CHECK(st, iapo_run_dir_state_long(state, "bad_steps_in_a_row", p, &bad));
	const cJSON *best = cJSON_GetObjectItemCaseSensitive(state, "best_metric");
	if (cJSON_IsNumber(best)) {
		tr->has_best = 1;
		tr->best_metric = best->valuedouble;
		IAPO_CHECK(st, iapo_run_dir_state_long(state, "best_global_step", p, &tr->best_step));
		const cJSON *bc = cJSON_GetObjectItemCaseSensitive(state, "best_model_checkpoint");
		if (cJSON_IsString(bc)) tr->best_ckpt_step = tr->best_step;
	}
	cJSON *hist = cJSON_DetachItemFromObjectCaseSensitive(state, "log_history");
	if (!cJSON_IsArray(hist)) {
		cJSON_Delete(hist);
		st = iapo_fail(IAPO_ERR_FORMAT, "%s: log_history: expected an array, found %s", p,
			       hist ? iapo_json_type_name(hist) : "nothing");
		goto fail;
	}
	tr->log_history = hist;

	IAPO_CHECK(st, iapo_fs_join(p, sizeof p, dir, IAPO_RNG_FILE));
	IAPO_CHECK(st, iapo_json_load(p, (size_t)1 << 20, &rng));
	IAPO_CHECK(st, iapo_run_dir_state_long(rng, "seed", p, &v));
	if (v != tr->o.seed) {
		st = iapo_fail(IAPO_ERR_FORMAT, "%s: seed: expected %ld (trainer_state.json's), found %ld", p, tr->o.seed, v);
		goto fail;
	}

	long t;
	IAPO_CHECK(st, iapo_fs_join(p, sizeof p, dir, IAPO_OPTIMIZER_FILE));
	IAPO_CHECK(st, iapo_optimizer_load(p, tr->m, tr->v, tr->n_params, &t));
	if (t != adam_t) {
		st = iapo_fail(IAPO_ERR_FORMAT, "%s: step: expected %ld (trainer_state.json's adam_step), found %ld", p,
			       adam_t, t);
		goto fail;
	}
	tr->adam_t = adam_t;
	tr->bad_streak = (int)bad;
	tr->step = step;
	tr->saved_step = step;
	IAPO_CHECK(st, iapo_run_dir_truncate_metrics(tr->o.out, step));
	cJSON_Delete(state);
	cJSON_Delete(rng);
	return IAPO_OK;
fail:
	cJSON_Delete(state);
	cJSON_Delete(rng);
	return st;
}
