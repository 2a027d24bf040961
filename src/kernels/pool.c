/*
 * pool.c — the worker pool of pool.h.
 *
 * One job at a time (a mutex, taken with trylock: a second caller runs its
 * items itself). A job is published in one of two descriptor slots, then a
 * 64-bit word `state` = generation << 32 | next item is stored; threads claim
 * items by compare-and-swap on that word, so a worker that saw an old
 * generation can never take an item of a newer job, and the slot it reads is
 * the one of the generation it saw (the caller overwrites a slot only two
 * generations later, after that job's items are all claimed, and a stale
 * worker's claim then fails). Every participant adds the number of items it
 * ran to `done` once; the caller returns when done == n.
 *
 * Waiting: workers spin on `state` for SPIN_NS after their last job, then
 * sleep on a futex (`gen`, the low 32 bits of the generation), counted in
 * `sleepers` so the caller makes the wake-up system call only when someone
 * sleeps. The caller, once no item is left to claim, spins WAIT_NS on
 * `done`, then sleeps on it; the worker that completes the last item wakes
 * it. Each pair (store, then load of the other side's flag) is sequentially
 * consistent, so no wake-up is lost. Non-Linux systems sleep by yielding.
 */
#include "kernels/pool.h"

#include <limits.h>
#include <omp.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "iapo.h"

#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#else
#define cpu_relax() ((void)0)
#endif

/* Worker spin after a job before sleeping: long enough to bridge the serial
 * code between two kernels of a layer, short enough not to hold a core that
 * another process wants for long. */
#define SPIN_NS 200000L
/* Caller spin before sleeping while others finish their last items. */
#define WAIT_NS 20000L

typedef struct {
	_Atomic(iapo_pool_fn) fn;
	_Atomic(void *) ctx;
	atomic_long n;
	atomic_int nth;
} job_slot;

static struct {
	pthread_mutex_t lock;
	int created;               /* worker threads started (ids 1..created) */
	_Atomic uint64_t state;    /* generation << 32 | next item */
	atomic_uint gen;           /* futex word: low 32 bits of the generation */
	atomic_int sleepers;       /* workers asleep (or about to be) on gen */
	atomic_uint done;          /* items completed in the current job */
	atomic_int caller_asleep;  /* the caller sleeps on done */
	job_slot slot[2];
} P = {.lock = PTHREAD_MUTEX_INITIALIZER};

static _Thread_local int in_item; /* this thread is a worker or runs items */

/* iapo_pool_stats; the wall times in ns. Relaxed adds: nested calls count
 * from any thread at once. */
static struct {
	atomic_long calls, items, full_calls, full_items, ns, full_ns, nested_calls, nested_items, busy_calls, busy_items;
} S;

void iapo_pool_stats_get(iapo_pool_stats *s)
{
#define LD(f) atomic_load_explicit(&S.f, memory_order_relaxed)
	*s = (iapo_pool_stats){.calls = LD(calls),
			       .items = LD(items),
			       .full_calls = LD(full_calls),
			       .full_items = LD(full_items),
			       .seconds = 1e-9 * (double)LD(ns),
			       .full_seconds = 1e-9 * (double)LD(full_ns),
			       .nested_calls = LD(nested_calls),
			       .nested_items = LD(nested_items),
			       .busy_calls = LD(busy_calls),
			       .busy_items = LD(busy_items)};
#undef LD
}

iapo_pool_stats iapo_pool_stats_since(const iapo_pool_stats *then)
{
	iapo_pool_stats s;
	iapo_pool_stats_get(&s);
	s.calls -= then->calls, s.items -= then->items;
	s.full_calls -= then->full_calls, s.full_items -= then->full_items;
	s.seconds -= then->seconds, s.full_seconds -= then->full_seconds;
	s.nested_calls -= then->nested_calls, s.nested_items -= then->nested_items;
	s.busy_calls -= then->busy_calls, s.busy_items -= then->busy_items;
	return s;
}

static void count(atomic_long *calls, atomic_long *items, long n)
{
	atomic_fetch_add_explicit(calls, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(items, n, memory_order_relaxed);
}

static long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000000000L + ts.tv_nsec;
}

static void wait_on(atomic_uint *word, unsigned seen)
{
#if defined(__linux__)
	syscall(SYS_futex, (void *)word, FUTEX_WAIT_PRIVATE, seen, NULL, NULL, 0);
#else
	(void)word, (void)seen;
	sched_yield();
#endif
}

static void wake_all(atomic_uint *word)
{
#if defined(__linux__)
	syscall(SYS_futex, (void *)word, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
#else
	(void)word;
#endif
}

/* Claims and runs items of generation g; returns how many it ran. */
static unsigned run_items(uint32_t g, iapo_pool_fn fn, void *ctx, long n, int worker)
{
	unsigned ran = 0;
	uint64_t s = atomic_load_explicit(&P.state, memory_order_acquire);
	for (;;) {
		if ((uint32_t)(s >> 32) != g || (long)(uint32_t)s >= n) break;
		if (!atomic_compare_exchange_weak_explicit(&P.state, &s, s + 1, memory_order_acq_rel,
							   memory_order_acquire))
			continue; /* s now holds the current value */
		fn(ctx, (long)(uint32_t)s, worker);
		ran++;
		s = atomic_load_explicit(&P.state, memory_order_acquire);
	}
	return ran;
}

static void finish(unsigned ran, long n)
{
	if (!ran) return;
	unsigned d = atomic_fetch_add(&P.done, ran) + ran;
	if ((long)d == n && atomic_load(&P.caller_asleep)) wake_all(&P.done);
}

/* Placement, only when asked (IAPO_PIN=1) and the threads fit the CPUs
 * this process may run on: the first caller is pinned to the first of
 * those CPUs and worker i to the i-th, so that the guest's scheduler cannot
 * put two of them on one CPU. Measured on this 2-vCPU VM, 2 threads,
 * alternating processes (bench/README, GEMM section, session 7): with a
 * nice-19 neighbour, bench/gemm's adjacent peaks at the one-CPU rate with
 * both items on one CPU went from 4-15 of 108 a run to 0, and two 2-thread
 * processes side by side ran 10-25% more products each; but beside an
 * un-niced 1-thread process in another session a pinned process ran 10-29%
 * fewer (its worker waits on the busy CPU, where unpinned the scheduler
 * gives the process one CPU for both threads). So it is not the default.
 * A failing system call leaves the thread where it was. Decided once, at
 * the first call with 2+ threads. */
static int placed;          /* 0 undecided, 1 pinned, 2 not */
#if defined(__linux__)
static cpu_set_t place_set; /* the first caller's CPUs, before pinning */
#endif

/* Pins the calling thread to the k-th CPU of place_set (k mod its size). */
static void pin_self(int k)
{
#if defined(__linux__)
	int n = CPU_COUNT(&place_set);
	if (n < 1) return;
	k %= n;
	for (int c = 0; c < CPU_SETSIZE; c++)
		if (CPU_ISSET(c, &place_set) && k-- == 0) {
			cpu_set_t one;
			CPU_ZERO(&one);
			CPU_SET(c, &one);
			(void)sched_setaffinity(0, sizeof one, &one);
			return;
		}
#else
	(void)k;
#endif
}

/* Decides placement for a first job of nth threads (under P.lock). */
static void place(int nth)
{
	placed = 2;
#if defined(__linux__)
	const char *e = getenv("IAPO_PIN");
	if (!e || atoi(e) != 1 || sched_getaffinity(0, sizeof place_set, &place_set)) return;
	int n = CPU_COUNT(&place_set);
	if (n < 2 || nth > n) return;
	/* A thread inherits its creator's CPUs: let OpenMP start its team
	 * (the kernels outside the pool, OpenBLAS) before the caller is
	 * pinned, or the team would share the caller's one CPU. */
	static atomic_int team_started; /* a body, or GCC drops the region */
#pragma omp parallel num_threads(nth)
	atomic_fetch_add(&team_started, 1);
	pin_self(0);
	placed = 1;
#else
	(void)nth;
#endif
}

int iapo_pool_pinned(void) { return placed == 1; }

static void *worker_main(void *arg)
{
	const int id = (int)(intptr_t)arg;
	in_item = 1;
	if (placed == 1) pin_self(id);
	uint32_t seen = (uint32_t)(atomic_load(&P.state) >> 32);
	for (;;) {
		uint64_t s = atomic_load_explicit(&P.state, memory_order_acquire);
		if ((uint32_t)(s >> 32) == seen) {
			long t0 = now_ns();
			for (int spins = 1;; spins++) {
				cpu_relax();
				s = atomic_load_explicit(&P.state, memory_order_acquire);
				if ((uint32_t)(s >> 32) != seen) break;
				if (!(spins & 63) && now_ns() - t0 > SPIN_NS) {
					atomic_fetch_add(&P.sleepers, 1);
					while ((uint32_t)((s = atomic_load(&P.state)) >> 32) == seen) wait_on(&P.gen, seen);
					atomic_fetch_sub(&P.sleepers, 1);
					break;
				}
			}
		}
		const uint32_t g = (uint32_t)(s >> 32);
		seen = g;
		job_slot *j = &P.slot[g & 1];
		iapo_pool_fn fn = atomic_load_explicit(&j->fn, memory_order_relaxed);
		void *ctx = atomic_load_explicit(&j->ctx, memory_order_relaxed);
		long n = atomic_load_explicit(&j->n, memory_order_relaxed);
		if (id >= atomic_load_explicit(&j->nth, memory_order_relaxed)) continue;
		finish(run_items(g, fn, ctx, n, id), n);
	}
	return NULL;
}

/* Starts workers up to want (ids 1..want); returns how many exist. */
static int grow(int want)
{
	while (P.created < want) {
		pthread_t t;
		pthread_attr_t a;
		if (pthread_attr_init(&a)) break;
		pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
		int rc = pthread_create(&t, &a, worker_main, (void *)(intptr_t)(P.created + 1));
		pthread_attr_destroy(&a);
		if (rc) break;
		P.created++;
	}
	return P.created;
}

int iapo_pool_threads(void)
{
	if (in_item || omp_in_parallel()) return 1;
	int n = iapo_get_threads();
	return n < 1 ? 1 : n > IAPO_POOL_MAX ? IAPO_POOL_MAX : n;
}

void iapo_pool_for(long n, iapo_pool_fn fn, void *ctx)
{
	if (n <= 0) return;
	int nth = iapo_pool_threads();
	int busy = 0;
	if (n < 2 || nth < 2 || n > INT_MAX || (busy = pthread_mutex_trylock(&P.lock) != 0)) {
		if (busy)
			count(&S.busy_calls, &S.busy_items, n);
		else if (n >= 2 && (in_item || omp_in_parallel()))
			count(&S.nested_calls, &S.nested_items, n);
		int was = in_item;
		in_item = 1;
		for (long i = 0; i < n; i++) fn(ctx, i, 0);
		in_item = was;
		return;
	}
	const long t_in = now_ns();
	if (!placed) place(nth);
	int have = grow(nth - 1) + 1;
	if (nth > have) nth = have;
	const int full = n >= nth;
	if (nth > n) nth = (int)n;
	const uint32_t g = (uint32_t)(atomic_load(&P.state) >> 32) + 1;
	job_slot *j = &P.slot[g & 1];
	atomic_store_explicit(&j->fn, fn, memory_order_relaxed);
	atomic_store_explicit(&j->ctx, ctx, memory_order_relaxed);
	atomic_store_explicit(&j->n, n, memory_order_relaxed);
	atomic_store_explicit(&j->nth, nth, memory_order_relaxed);
	atomic_store(&P.done, 0);
	atomic_store(&P.state, (uint64_t)g << 32); /* publishes the slot */
	atomic_store(&P.gen, g);
	if (atomic_load(&P.sleepers) > 0) wake_all(&P.gen);

	in_item = 1;
	unsigned ran = run_items(g, fn, ctx, n, 0);
	in_item = 0;
	if (ran) atomic_fetch_add(&P.done, ran);
	long t0 = 0;
	for (int spins = 1;; spins++) {
		unsigned d = atomic_load_explicit(&P.done, memory_order_acquire);
		if ((long)d == n) break;
		if (spins & 63) {
			cpu_relax();
			continue;
		}
		if (!t0) t0 = now_ns();
		if (now_ns() - t0 < WAIT_NS) continue;
		/* Sleep: this core goes idle, so the scheduler can bring a
		 * preempted worker here to finish its item. */
		atomic_store(&P.caller_asleep, 1);
		if ((long)atomic_load(&P.done) != n) wait_on(&P.done, d);
		atomic_store(&P.caller_asleep, 0);
	}
	const long dt = now_ns() - t_in;
	count(&S.calls, &S.items, n);
	atomic_fetch_add_explicit(&S.ns, dt, memory_order_relaxed);
	if (full) {
		count(&S.full_calls, &S.full_items, n);
		atomic_fetch_add_explicit(&S.full_ns, dt, memory_order_relaxed);
	}
	pthread_mutex_unlock(&P.lock);
}
