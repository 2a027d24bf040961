/*
 * dist_single.c — dist.h for a binary built without MPI (`make MPI=0`, or
 * no MPI found): a job of exactly one process, so every collective is the
 * identity and nothing is ever sent. Compiled instead of dist_mpi.c.
 * A launcher that starts several copies of such a binary gets an error
 * from iapo_dist_init rather than N copies of the job.
 */
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "dist/dist.h"

/* Started by a launcher as one of several processes, a binary without MPI
 * would run the whole job in each of them, all writing the same run
 * directory: refuse instead. */
iapo_status iapo_dist_init(void)
{
	static const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"};
	for (size_t i = 0; i < sizeof vars / sizeof *vars; i++) {
		const char *v = getenv(vars[i]);
		if (v && atoi(v) > 1)
			return iapo_fail(IAPO_ERR_UNSUPPORTED,
					 "%s=%s: expected one process: this iapo was built without MPI (make MPI=0, or no "
					 "mpicc/ompi-c found), so it cannot share a job; rebuild with OpenMPI installed",
					 vars[i], v);
	}
	return IAPO_OK;
}
void iapo_dist_finalize(void) {}
int iapo_dist_rank(void) { return 0; }
int iapo_dist_size(void) { return 1; }
int iapo_dist_compiled(void) { return 0; }
const char *iapo_dist_build_info(void) { return "MPI: no"; }

iapo_status iapo_dist_allreduce_float(float *x, size_t n)
{
	(void)x, (void)n;
	return IAPO_OK;
}

iapo_status iapo_dist_allreduce_double(double *x, size_t n, iapo_dist_op op)
{
	(void)x, (void)n, (void)op;
	return IAPO_OK;
}

iapo_status iapo_dist_bcast(void *buf, size_t bytes, int root)
{
	(void)buf, (void)bytes, (void)root;
	return IAPO_OK;
}

iapo_status iapo_dist_allgather(const void *mine, size_t bytes, void *all)
{
	if (bytes && all != mine) memmove(all, mine, bytes);
	return IAPO_OK;
}

void iapo_dist_barrier(void) {}
iapo_status iapo_dist_agree(iapo_status st) { return st; }

void iapo_dist_abort(int code, const char *msg)
{
	(void)code, (void)msg;
}

void iapo_dist_finish(int code, int shared) { (void)code, (void)shared; }
