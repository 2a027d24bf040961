/*
 * train_dist.c — what the trainer adds for data parallelism over MPI ranks
 * (src/dist/), beyond the reductions inside the step (trainer.c):
 *  - the start: rank 0 alone reads the run directory (a checkpoint on
 *    --resume), then every rank receives its weights, AdamW moments and
 *    progress counters, so all ranks begin from the same bits;
 *  - the debug check of --check-weights-every: a hash of the weights,
 *    compared across ranks through the min and max of its two 32-bit halves.
 * In a job of one every collective is the identity and this costs nothing.
 * Not here: the rollout buffer of a checkpoint (train_state.c).
 */
#include <string.h>

#include "core/status.h"
#include "dist/dist.h"
#include "rl/train_internal.h"

iapo_status train_dist_start(iapo_trainer *tr, long ckpt)
{
	if (tr->ranks == 1) return IAPO_OK;
	/* Counters travel as doubles: every one is an integer below 2^53 or,
	 * for best_metric, a double already. */
	double c[8] = {(double)tr->adam_t,   (double)tr->bad_streak, (double)tr->step,     (double)tr->saved_step,
		       (double)tr->has_best, tr->best_metric,        (double)tr->best_step, (double)tr->best_ckpt_step};
	IAPO_TRY(iapo_dist_bcast(c, sizeof c, 0));
	tr->adam_t = (long)c[0];
	tr->bad_streak = (int)c[1];
	tr->step = (long)c[2];
	tr->saved_step = (long)c[3];
	tr->has_best = (int)c[4];
	tr->best_metric = c[5];
	tr->best_step = (long)c[6];
	tr->best_ckpt_step = (long)c[7];
	IAPO_TRY(iapo_dist_bcast(tr->w.block, tr->n_params * sizeof(float), 0));
	if (ckpt >= 0) {
		IAPO_TRY(iapo_dist_bcast(tr->m, tr->n_params * sizeof(float), 0));
		IAPO_TRY(iapo_dist_bcast(tr->v, tr->n_params * sizeof(float), 0));
	}
	return IAPO_OK;
}

iapo_status train_dist_check_weights(iapo_trainer *tr)
{
	unsigned long long h = iapo_dist_hash_floats(tr->w.block, tr->n_params);
	/* Halves are exact in a double; equal min and max of both = one hash. */
	double lo[2] = {(double)(h >> 32), (double)(h & 0xffffffffull)}, hi[2] = {lo[0], lo[1]};
	IAPO_TRY(iapo_dist_allreduce_double(lo, 2, IAPO_DIST_MIN));
	IAPO_TRY(iapo_dist_allreduce_double(hi, 2, IAPO_DIST_MAX));
	iapo_status st = IAPO_OK;
	if (lo[0] != hi[0] || lo[1] != hi[1])
		st = iapo_fail(IAPO_ERR_INTERNAL,
			       "step %ld: --check-weights-every: expected the same weights on all %d ranks, found "
			       "different hashes (halves %.0f..%.0f, %.0f..%.0f): the ranks have diverged",
			       tr->step, tr->ranks, lo[0], hi[0], lo[1], hi[1]);
	/* Every rank saw the same numbers, so every rank fails the same way;
	 * agreeing makes that explicit for the caller (one message, on rank 0). */
	return iapo_dist_agree(st);
}
