/*
 * pool.h — iapo's own worker threads for the kernels (GEMM, attention,
 * elementwise): a parallel for over n independent items that finishes as soon
 * as every item is done, whichever threads did them.
 *
 * Why not OpenMP: an OpenMP parallel region ends in a barrier that waits for
 * every thread of the team, so when another process holds a core and one of
 * our threads is descheduled, every region waits for it to be scheduled again
 * (milliseconds; the 2-thread model ran up to 55x slower than on an idle
 * machine), and how long idle threads spin or sleep between regions is set by
 * OMP_WAIT_POLICY in the environment (a region costs ~1 us when they spin,
 * 20-120 us on this VM when they sleep). Here the caller and the workers take
 * items from a shared counter, so a thread that has not started yet costs
 * nothing: the others take its share. The caller waits only for items already
 * taken; it spins briefly, then sleeps, so its core goes idle and the kernel
 * may move a preempted worker onto it. Idle workers spin for a short while
 * (about 0.2 ms) before sleeping, whatever the environment says.
 *
 * Thread count: iapo_get_threads() of the calling thread. Calls from inside
 * a pool item, from inside an OpenMP parallel region, or while another thread
 * is using the pool run every item on the calling thread, in order.
 * Placement: IAPO_PIN=1 in the environment pins the first caller and the
 * workers one to a CPU when the threads fit the process's CPUs; off by
 * default (pool.c says why).
 * Left out: priorities, nested parallelism (a nested call's items run on
 * one thread, whatever the thread count: iapo_pool_stats counts them), task
 * graphs.
 */
#ifndef IAPO_KERNELS_POOL_H
#define IAPO_KERNELS_POOL_H

/* One item: worker is in [0, iapo_pool_threads()) and unique among the
 * threads running items of this call at the same time (0 = the caller), so
 * it may index per-thread scratch. */
typedef void (*iapo_pool_fn)(void *ctx, long item, int worker);

/* Runs fn(ctx, i, worker) for every i in [0, n) and returns when all have
 * returned. Items may run in any order and concurrently. n < 2^31. */
void iapo_pool_for(long n, iapo_pool_fn fn, void *ctx);

/* Threads a call of iapo_pool_for from this thread may use now (1 inside an
 * item or an OpenMP region); bound for per-worker scratch. */
int iapo_pool_threads(void);

/* 1 when the pool pinned its threads to CPUs (IAPO_PIN=1 and the threads
 * fit), 0 when not, or not decided yet (no call with 2+ threads). */
int iapo_pool_pinned(void);

/* What the pool's calls offered, counted since the process started (take a
 * snapshot, then iapo_pool_stats_since for what came after it). Why: on a machine with more cores than this
 * project's 2, a kernel that offers fewer items than threads, or runs inside
 * another call's item, leaves threads idle, and this shows it on any
 * machine as a property of the plan, not of a timing. Calls of fewer than 2
 * items are not counted, nor calls of a thread whose count is 1 (outside an
 * item). */
typedef struct {
	long calls, items;           /* run on the pool's threads */
	long full_calls, full_items; /* of them, calls that offered an item to every thread */
	double seconds;              /* wall time inside the pool's calls */
	double full_seconds;         /* of it, inside calls that offered an item to every thread */
	long nested_calls, nested_items; /* from inside an item or an OpenMP region: run on the caller alone */
	long busy_calls, busy_items;     /* the pool busy with another application thread's call: likewise */
} iapo_pool_stats;

void iapo_pool_stats_get(iapo_pool_stats *s);

/* The counts since an earlier snapshot of iapo_pool_stats_get: now - then,
 * field by field. */
iapo_pool_stats iapo_pool_stats_since(const iapo_pool_stats *then);

/* Upper bound of the worker index over every call (scratch sized by it is
 * always enough): the most threads any call may use. */
#define IAPO_POOL_MAX 64

#endif
