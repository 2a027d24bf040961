/*
 * dist_mpi.c — dist.h over MPI (OpenMPI as Debian ships it; any MPI-3
 * library would do). Compiled instead of dist_single.c when the Makefile
 * finds MPI. The job is MPI_COMM_WORLD; MPI's default error handler
 * (MPI_ERRORS_ARE_FATAL) stays, so a failed collective — a peer that died —
 * ends the whole job with mpirun's report rather than a hang.
 *
 * Counts above INT_MAX are sent in pieces (MPI counts are int): a 7B-
 * parameter gradient is 7e9 floats.
 * Not here: the launcher, topology, anything non-blocking.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>

#include "core/status.h"
#include "dist/dist.h"
#include "dist/dist_internal.h"

static int joined; /* MPI_Init done by us, MPI_Finalize not yet */
static int rank_, size_ = 1;

#define PIECE ((size_t)1 << 30) /* elements per MPI call, below INT_MAX */

static int launched(void)
{
	static const char *vars[] = {"PMIX_RANK", "OMPI_COMM_WORLD_SIZE", "PMI_RANK", "PMI_SIZE"};
	for (size_t i = 0; i < sizeof vars / sizeof *vars; i++)
		if (getenv(vars[i])) return 1;
	return 0;
}

static iapo_status mpi_fail(int rc, const char *what)
{
	char s[MPI_MAX_ERROR_STRING];
	int n = 0;
	if (MPI_Error_string(rc, s, &n) != MPI_SUCCESS) snprintf(s, sizeof s, "error %d", rc);
	return iapo_fail(IAPO_ERR_IO, "MPI: %s: %s", what, s);
}

iapo_status iapo_dist_init(void)
{
	int inited = 0;
	MPI_Initialized(&inited);
	if (inited || !launched()) return IAPO_OK;
	int provided = 0;
	int rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
	if (rc != MPI_SUCCESS) return mpi_fail(rc, "MPI_Init_thread");
	joined = 1;
	MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
	MPI_Comm_size(MPI_COMM_WORLD, &size_);
	return IAPO_OK;
}

void iapo_dist_finalize(void)
{
	if (!joined) return;
	MPI_Finalize();
	joined = 0;
	rank_ = 0;
	size_ = 1;
}

int iapo_dist_rank(void) { return rank_; }
int iapo_dist_size(void) { return size_; }
int iapo_dist_compiled(void) { return 1; }

const char *iapo_dist_build_info(void)
{
	static char buf[MPI_MAX_LIBRARY_VERSION_STRING + 16];
	char v[MPI_MAX_LIBRARY_VERSION_STRING];
	int n = 0;
	/* MPI_Get_library_version may be called before MPI_Init. */
	if (MPI_Get_library_version(v, &n) != MPI_SUCCESS) snprintf(v, sizeof v, "unknown version");
	v[strcspn(v, ",\n")] = '\0'; /* "Open MPI v4.1.4, package: ..." -> "Open MPI v4.1.4" */
	snprintf(buf, sizeof buf, "MPI: %s", v);
	return buf;
}

iapo_status iapo_dist_allreduce_float(float *x, size_t n)
{
	if (size_ == 1) return IAPO_OK;
	for (size_t i = 0; i < n; i += PIECE) {
		int k = (int)(n - i < PIECE ? n - i : PIECE);
		int rc = MPI_Allreduce(MPI_IN_PLACE, x + i, k, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
		if (rc != MPI_SUCCESS) return mpi_fail(rc, "MPI_Allreduce");
	}
	return IAPO_OK;
}

iapo_status iapo_dist_allreduce_double(double *x, size_t n, iapo_dist_op op)
{
	if (size_ == 1) return IAPO_OK;
	MPI_Op mop = op == IAPO_DIST_MAX ? MPI_MAX : op == IAPO_DIST_MIN ? MPI_MIN : MPI_SUM;
	for (size_t i = 0; i < n; i += PIECE) {
		int k = (int)(n - i < PIECE ? n - i : PIECE);
		int rc = MPI_Allreduce(MPI_IN_PLACE, x + i, k, MPI_DOUBLE, mop, MPI_COMM_WORLD);
		if (rc != MPI_SUCCESS) return mpi_fail(rc, "MPI_Allreduce");
	}
	return IAPO_OK;
}

iapo_status iapo_dist_bcast(void *buf, size_t bytes, int root)
{
	if (size_ == 1) return IAPO_OK;
	for (size_t i = 0; i < bytes; i += PIECE) {
		int k = (int)(bytes - i < PIECE ? bytes - i : PIECE);
		int rc = MPI_Bcast((char *)buf + i, k, MPI_BYTE, root, MPI_COMM_WORLD);
		if (rc != MPI_SUCCESS) return mpi_fail(rc, "MPI_Bcast");
	}
	return IAPO_OK;
}

iapo_status iapo_dist_allgather(const void *mine, size_t bytes, void *all)
{
	if (size_ == 1) {
		if (bytes && all != mine) memmove(all, mine, bytes);
		return IAPO_OK;
	}
	if (bytes > (size_t)INT_MAX)
		return iapo_fail(IAPO_ERR_ARG, "MPI: allgather of %zu bytes per rank: expected at most %d", bytes, INT_MAX);
	int rc = MPI_Allgather(mine, (int)bytes, MPI_BYTE, all, (int)bytes, MPI_BYTE, MPI_COMM_WORLD);
	return rc == MPI_SUCCESS ? IAPO_OK : mpi_fail(rc, "MPI_Allgather");
}

void iapo_dist_barrier(void)
{
	if (size_ > 1) MPI_Barrier(MPI_COMM_WORLD);
}

iapo_status iapo_dist_agree(iapo_status st)
{
	if (size_ == 1) return st;
	int mine = st != IAPO_OK ? rank_ : size_, first = size_;
	int rc = MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
	if (rc != MPI_SUCCESS) return mpi_fail(rc, "MPI_Allreduce");
	if (first == size_) return IAPO_OK;
	/* The failing rank's status and message, to everyone. */
	struct {
		int status;
		char msg[1536];
	} e;
	memset(&e, 0, sizeof e);
	if (rank_ == first) {
		e.status = (int)st;
		snprintf(e.msg, sizeof e.msg, "%s", iapo_errmsg());
	}
	rc = MPI_Bcast(&e, (int)sizeof e, MPI_BYTE, first, MPI_COMM_WORLD);
	if (rc != MPI_SUCCESS) return mpi_fail(rc, "MPI_Bcast");
	if (rank_ != first) {
		if (first == 0)
			iapo_fail((iapo_status)e.status, "%s", e.msg);
		else
			iapo_fail((iapo_status)e.status, "rank %d: %s", first, e.msg);
	}
	dist_note_shared_error();
	return (iapo_status)e.status;
}

void iapo_dist_abort(int code, const char *msg)
{
	if (size_ == 1) return;
	fprintf(stderr, "iapo: rank %d of %d: %s\n", rank_, size_, msg && *msg ? msg : "error");
	fflush(stderr);
	MPI_Abort(MPI_COMM_WORLD, code);
}

void iapo_dist_finish(int code, int shared)
{
	if (!joined) return;
	if (code != 0 && !shared) iapo_dist_abort(code, iapo_errmsg());
	iapo_dist_finalize();
}
