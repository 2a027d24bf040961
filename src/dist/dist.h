/*
 * dist.h — the few collective operations data-parallel training needs
 * (DESIGN §8 "Scale"), behind one small API with two implementations, of
 * which the Makefile compiles exactly one: dist_mpi.c (OpenMPI) when MPI is
 * found, dist_single.c (one process, every collective the identity)
 * otherwise or with `make MPI=0`.
 *
 * A process joins an MPI job only when iapo_dist_init finds it was started
 * by a launcher (mpirun/srun set PMIX_RANK, OMPI_COMM_WORLD_SIZE or
 * PMI_RANK); started plainly it is a job of one and never calls MPI, so the
 * ordinary commands and tests pay nothing for an MPI build. Before init, and
 * after finalize, rank is 0 and size 1.
 *
 * Collectives: every rank of the job must make the same calls in the same
 * order (MPI's rule). Code that can fail locally before a collective first
 * calls iapo_dist_agree with its status, so a failure on one rank becomes
 * the same error on all of them instead of a hang. Communication failures
 * (a rank that died) stop the whole job through MPI's default error handler
 * (mpirun prints which rank and why); a completed checkpoint is never
 * touched by that, since checkpoints appear by an atomic rename.
 *
 * Threads: call only from the thread that called iapo_dist_init, outside
 * OpenMP regions (MPI_THREAD_FUNNELED).
 * Not here: what is reduced (the trainer, sft, eval), the launcher.
 */
#ifndef IAPO_DIST_DIST_H
#define IAPO_DIST_DIST_H

#include <stddef.h>

#include "iapo.h"

typedef enum { IAPO_DIST_SUM = 0, IAPO_DIST_MAX = 1, IAPO_DIST_MIN = 2 } iapo_dist_op;

/* Joins the MPI job when launched by mpirun (see above); a no-op otherwise
 * and on later calls. Errors: IAPO_ERR_IO when MPI_Init fails;
 * IAPO_ERR_UNSUPPORTED, without MPI, when started as one of several. */
iapo_status iapo_dist_init(void);
/* Leaves the job (MPI_Finalize, collective); a no-op when not in one. */
void iapo_dist_finalize(void);

int iapo_dist_rank(void); /* 0 .. size-1 */
int iapo_dist_size(void); /* 1 when not in an MPI job */
/* 1 when this binary was built with MPI. */
int iapo_dist_compiled(void);
/* "MPI: no" or "MPI: <library version>", for iapo --version. */
const char *iapo_dist_build_info(void);

/* In place, element-wise over the ranks: x (n) := Σ_ranks x. Every rank gets
 * the same bits (the reduction is done once per element, then shared). */
iapo_status iapo_dist_allreduce_float(float *x, size_t n);
/* In place, element-wise sum, max or min of x (n) over the ranks. */
iapo_status iapo_dist_allreduce_double(double *x, size_t n, iapo_dist_op op);
/* Root's bytes buf[0..bytes) to every rank. */
iapo_status iapo_dist_bcast(void *buf, size_t bytes, int root);
/* Every rank gives `bytes` bytes (mine); all (size x bytes) gets them in rank
 * order on every rank. */
iapo_status iapo_dist_allgather(const void *mine, size_t bytes, void *all);
void iapo_dist_barrier(void);

/* Collective: each rank passes its status; returns IAPO_OK when all are OK,
 * else, on every rank, the status of the lowest failing rank with its
 * message (prefixed "rank R: " where R is not 0 and is not this rank).
 * The job of one returns st unchanged. */
iapo_status iapo_dist_agree(iapo_status st);
/* 1 when the current error message (iapo_errmsg) is one every rank holds,
 * i.e. it came back from iapo_dist_agree and nothing failed since; also 1 in
 * a job of one. The CLI prints such an error on rank 0 only and ends
 * normally; any other error ends the job with iapo_dist_abort. */
int iapo_dist_error_shared(void);

/* In a job of several ranks: prints "iapo: rank R of S: msg" on stderr and
 * stops the whole job with exit status `code` (MPI_Abort; does not return).
 * In a job of one it returns, and the caller ends the ordinary way. */
void iapo_dist_abort(int code, const char *msg);

/* The end of a command that may have joined a job: finalize when every rank
 * ends the same way (code 0, or `shared`: an error all ranks meet, such as
 * one from iapo_dist_agree or a usage error of the same command line), else
 * iapo_dist_abort(code, iapo_errmsg()). */
void iapo_dist_finish(int code, int shared);

/* A contiguous share of n items for this rank: [*lo, *hi), sizes differing
 * by at most one, lower ranks first. */
void iapo_dist_share(size_t n, size_t *lo, size_t *hi);

/* 64-bit hash (FNV-1a over the bytes, 8 at a time) of n floats, the same on
 * every machine for the same bits. */
unsigned long long iapo_dist_hash_floats(const float *x, size_t n);

#endif
