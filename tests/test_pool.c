/*
 * test_pool.c — the kernels' worker pool (src/kernels/pool.h): every item
 * runs exactly once whatever the thread count, worker indices stay within
 * iapo_pool_threads() and are never shared by two items at the same moment,
 * calls from inside an item and from inside an OpenMP region run inline on
 * the caller, two application threads may call at once (one of them runs its
 * items itself), and thousands of short jobs in a row neither lose nor
 * repeat an item (generation reuse of the job slots); IAPO_PIN=1 pins the
 * pool's threads one to a CPU without pinning OpenMP's team; iapo_pool_stats
 * counts calls, items, calls with an item for every thread, and nested
 * calls. No timing.
 */
#include <omp.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "iapo.h"
#include "kernels/pool.h"
#include "test.h"

typedef struct {
	atomic_int *count;   /* per item: times run */
	atomic_int busy[IAPO_POOL_MAX];
	atomic_int bad_worker, overlap;
	int max_worker;
} count_job;

static void count_item(void *ctx, long i, int worker)
{
	count_job *J = ctx;
	if (worker < 0 || worker >= J->max_worker) {
		atomic_fetch_add(&J->bad_worker, 1);
		return;
	}
	if (atomic_fetch_add(&J->busy[worker], 1) != 0) atomic_fetch_add(&J->overlap, 1);
	volatile double x = 0;
	for (int k = 0; k < (int)(i % 7) * 50; k++) x += k; /* uneven items */
	atomic_fetch_add(&J->count[i], 1);
	atomic_fetch_sub(&J->busy[worker], 1);
}

static int run_counted(long n, int *bad, int *overlap)
{
	count_job *J = calloc(1, sizeof *J);
	J->count = calloc((size_t)n + 1, sizeof(atomic_int));
	J->max_worker = iapo_pool_threads();
	iapo_pool_for(n, count_item, J);
	int wrong = 0;
	for (long i = 0; i < n; i++) wrong += atomic_load(&J->count[i]) != 1;
	*bad = atomic_load(&J->bad_worker);
	*overlap = atomic_load(&J->overlap);
	free(J->count);
	free(J);
	return wrong;
}

static void every_item_once(void)
{
	static const long sizes[] = {0, 1, 2, 3, 17, 1000, 100000};
	for (int t = 1; t <= 4; t++) {
		iapo_set_threads(t);
		CHECK(iapo_pool_threads() == t, "threads %d: pool reports %d", t, iapo_pool_threads());
		for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
			int bad, overlap;
			int wrong = run_counted(sizes[s], &bad, &overlap);
			CHECK(wrong == 0, "threads %d, n %ld: %d items not run exactly once", t, sizes[s], wrong);
			CHECK(bad == 0, "threads %d, n %ld: worker index out of range", t, sizes[s]);
			CHECK(overlap == 0, "threads %d, n %ld: one worker index ran two items at once", t, sizes[s]);
		}
	}
	iapo_set_threads(2);
}

static void many_short_jobs(void)
{
	iapo_set_threads(3);
	int wrong = 0, bad = 0, overlap = 0;
	for (int r = 0; r < 3000; r++) {
		int b, o;
		wrong += run_counted(1 + r % 5, &b, &o);
		bad += b, overlap += o;
	}
	CHECK(wrong == 0 && bad == 0 && overlap == 0, "3000 jobs: %d wrong, %d bad worker, %d overlaps", wrong, bad,
	      overlap);
	/* iapo_pool_stats: a call of fewer items than threads is not full;
	 * calls of 1 item and calls on 1 thread are not counted */
	iapo_pool_stats a;
	iapo_pool_stats_get(&a);
	int b1, o1;
	run_counted(2, &b1, &o1);
	run_counted(3, &b1, &o1);
	run_counted(1, &b1, &o1);
	iapo_set_threads(1);
	run_counted(5, &b1, &o1);
	const iapo_pool_stats d = iapo_pool_stats_since(&a);
	CHECK(d.calls == 2 && d.items == 5 && d.full_calls == 1 && d.full_items == 3 && d.nested_calls == 0 &&
		      d.busy_calls == 0,
	      "stats at 3 threads: %ld calls (2), %ld items (5), %ld full (1), %ld full items (3), %ld nested (0), %ld "
	      "busy (0)",
	      d.calls, d.items, d.full_calls, d.full_items, d.nested_calls, d.busy_calls);
	CHECK(d.seconds >= d.full_seconds && d.full_seconds > 0, "stats: seconds %g, full %g", d.seconds,
	      d.full_seconds);
	iapo_set_threads(2);
}

typedef struct {
	atomic_int inner_total, inner_not_inline;
} nest_job;

static void inner_item(void *ctx, long i, int worker)
{
	(void)i;
	nest_job *J = ctx;
	atomic_fetch_add(&J->inner_total, 1);
	if (worker != 0) atomic_fetch_add(&J->inner_not_inline, 1);
}

static void outer_item(void *ctx, long i, int worker)
{
	(void)i, (void)worker;
	nest_job *J = ctx;
	if (iapo_pool_threads() != 1) atomic_fetch_add(&J->inner_not_inline, 100);
	iapo_pool_for(10, inner_item, J);
}

static void nested_calls_run_inline(void)
{
	nest_job J;
	atomic_init(&J.inner_total, 0);
	atomic_init(&J.inner_not_inline, 0);
	iapo_pool_stats a;
	iapo_pool_stats_get(&a);
	iapo_pool_for(20, outer_item, &J);
	const iapo_pool_stats d = iapo_pool_stats_since(&a);
	CHECK(d.calls == 1 && d.items == 20 && d.full_calls == 1, "stats: the outer call: %ld calls, %ld items, %ld full",
	      d.calls, d.items, d.full_calls);
	CHECK(d.nested_calls == 20 && d.nested_items == 200, "stats: nested calls %ld (20 expected), items %ld (200)",
	      d.nested_calls, d.nested_items);
	CHECK(atomic_load(&J.inner_total) == 200, "inner items: %d", atomic_load(&J.inner_total));
	CHECK(atomic_load(&J.inner_not_inline) == 0, "nested call used other workers (%d)",
	      atomic_load(&J.inner_not_inline));
	int in_region = 0;
#pragma omp parallel num_threads(2) reduction(+ : in_region)
	in_region += iapo_pool_threads();
	CHECK(in_region == 2 || in_region == 1, "inside an OpenMP region the pool offers 1 thread each (%d)", in_region);
}

static void *app_thread(void *arg)
{
	int *res = arg;
	for (int r = 0; r < 200; r++) {
		int b, o;
		res[0] += run_counted(500, &b, &o);
		res[1] += b + o;
	}
	return NULL;
}

static void concurrent_callers(void)
{
	iapo_set_threads(2);
	pthread_t th;
	int a[2] = {0, 0}, b[2] = {0, 0};
	CHECK(pthread_create(&th, NULL, app_thread, a) == 0, "pthread_create");
	app_thread(b);
	pthread_join(th, NULL);
	CHECK(a[0] + b[0] == 0, "items lost or repeated with two callers: %d, %d", a[0], b[0]);
	CHECK(a[1] + b[1] == 0, "worker index misuse with two callers: %d, %d", a[1], b[1]);
}

/* IAPO_PIN=1 (set before the pool's first job with 2+ threads): with 2+
 * CPUs, every item runs on a thread pinned to one CPU, and the OpenMP team
 * was started before the caller was pinned, so its other threads keep
 * every CPU (a thread inherits its creator's CPUs). The other cases then
 * run pinned too. */
static void mask_item(void *ctx, long i, int worker)
{
	(void)worker;
	cpu_set_t set;
	((int *)ctx)[i] = sched_getaffinity(0, sizeof set, &set) ? -1 : CPU_COUNT(&set);
}

static void placement(void)
{
	cpu_set_t set;
	CHECK(sched_getaffinity(0, sizeof set, &set) == 0, "sched_getaffinity");
	const int ncpu = CPU_COUNT(&set);
	setenv("IAPO_PIN", "1", 1);
	iapo_set_threads(2);
	int masks[64] = {0};
	iapo_pool_for(64, mask_item, masks);
	if (ncpu < 2) {
		CHECK(!iapo_pool_pinned(), "pinned with %d CPU", ncpu);
		return;
	}
	CHECK(iapo_pool_pinned(), "IAPO_PIN=1, 2 threads, %d CPUs: not pinned", ncpu);
	int wide = 0;
	for (int i = 0; i < 64; i++) wide += masks[i] != 1;
	CHECK(wide == 0, "%d of 64 items ran on a thread not pinned to one CPU", wide);
	int team[2] = {0, 0};
#pragma omp parallel num_threads(2)
	{
		cpu_set_t s2;
		int t = omp_get_thread_num();
		if (t < 2) team[t] = sched_getaffinity(0, sizeof s2, &s2) ? -1 : CPU_COUNT(&s2);
	}
	CHECK(team[1] == ncpu, "OpenMP's second thread has %d CPUs, not %d: it inherited the pinned caller's", team[1],
	      ncpu);
}

int main(void)
{
	RUN(placement);
	RUN(every_item_once);
	RUN(many_short_jobs);
	RUN(nested_calls_run_inline);
	RUN(concurrent_callers);
	TEST_END();
}
