/*
 * test_dist.c — src/dist/ (dist.h): in this process, the job of one
 * (collectives are the identity, agree hands the status back, the shares of
 * n items, the weight hash); then, when built with MPI, the same program as
 * a job of 2 ranks (tests/test_dist.h):
 *  - allreduce of floats (sum) and doubles (sum, max, min), broadcast from
 *    rank 1, allgather in rank order, shares of 5 items (3 + 2);
 *  - agree: a failure on rank 1 only is returned on both ranks with its
 *    status, rank 0 holding "rank 1: <its message>", and counts as shared;
 *    a later local failure is not shared;
 *  - the weight hash is the same on both ranks for the same floats;
 *  - iapo_dist_abort on rank 1 ends the whole job with its exit code and
 *    its message (rank 0 waits in a collective that never completes: no
 *    hang);
 *  - a rank that dies (SIGKILL) while the other waits in an allreduce
 *    ends the job with mpirun's report, no hang.
 */
#include <signal.h>

#include "core/status.h"
#include "dist/dist.h"
#include "test_dist.h"

static const char *self;

static void test_single(void)
{
	CHECK(iapo_dist_init() == IAPO_OK, "init outside mpirun: %s", iapo_errmsg());
	CHECK(iapo_dist_rank() == 0 && iapo_dist_size() == 1, "a job of one: rank %d size %d", iapo_dist_rank(),
	      iapo_dist_size());
	float f[3] = {1, 2, 3};
	double d[2] = {1.5, -2};
	CHECK(iapo_dist_allreduce_float(f, 3) == IAPO_OK && f[0] == 1 && f[2] == 3, "float allreduce is the identity");
	CHECK(iapo_dist_allreduce_double(d, 2, IAPO_DIST_MAX) == IAPO_OK && d[0] == 1.5 && d[1] == -2,
	      "double allreduce is the identity");
	int x = 7, all = 0;
	CHECK(iapo_dist_bcast(&x, sizeof x, 0) == IAPO_OK && x == 7, "bcast");
	CHECK(iapo_dist_allgather(&x, sizeof x, &all) == IAPO_OK && all == 7, "allgather copies");
	iapo_dist_barrier();
	iapo_fail(IAPO_ERR_FORMAT, "local");
	CHECK(iapo_dist_agree(IAPO_ERR_FORMAT) == IAPO_ERR_FORMAT && !strcmp(iapo_errmsg(), "local"),
	      "agree hands back the status and message");
	CHECK(iapo_dist_agree(IAPO_OK) == IAPO_OK, "agree OK");
	CHECK(iapo_dist_error_shared(), "every error is shared in a job of one");
	size_t lo, hi;
	iapo_dist_share(5, &lo, &hi);
	CHECK(lo == 0 && hi == 5, "share of 5: [%zu, %zu)", lo, hi);
	iapo_dist_abort(3, "not in a job: returns");
	if (!iapo_dist_compiled()) {
		/* one of several copies under mpirun: refused, not run N times */
		setenv("OMPI_COMM_WORLD_SIZE", "2", 1);
		CHECK(iapo_dist_init() == IAPO_ERR_UNSUPPORTED && strstr(iapo_errmsg(), "built without MPI"),
		      "without MPI, a job of 2: '%s'", iapo_errmsg());
		unsetenv("OMPI_COMM_WORLD_SIZE");
	}
	CHECK(strstr(iapo_dist_build_info(), "MPI: ") == iapo_dist_build_info(), "build info '%s'", iapo_dist_build_info());
	CHECK(iapo_dist_compiled() == (strcmp(iapo_dist_build_info(), "MPI: no") != 0), "compiled() matches '%s'",
	      iapo_dist_build_info());
}

static void test_hash(void)
{
	enum { N = (1 << 20) * 3 + 17 }; /* several hash chunks and a tail */
	float *a = malloc(N * sizeof(float)), *b = malloc(N * sizeof(float));
	if (!a || !b) {
		CHECK(0, "out of memory");
		free(a);
		free(b);
		return;
	}
	for (int i = 0; i < N; i++) a[i] = b[i] = (float)i * 1e-3f;
	unsigned long long h = iapo_dist_hash_floats(a, N);
	CHECK(h == iapo_dist_hash_floats(b, N), "same floats, same hash");
	b[N - 1] = nextafterf(b[N - 1], 1e9f);
	CHECK(h != iapo_dist_hash_floats(b, N), "one bit of the last float changes it");
	b[N - 1] = a[N - 1];
	b[5] = -0.0f, a[5] = 0.0f;
	CHECK(iapo_dist_hash_floats(a, N) != iapo_dist_hash_floats(b, N), "-0 and +0 differ (bits, not values)");
	CHECK(iapo_dist_hash_floats(a, 3) != iapo_dist_hash_floats(a, 4), "the length counts");
	free(a);
	free(b);
}

static void test_mpi_job(void)
{
	CHECK(dist_have_mpirun(), "built with MPI but no mpirun on PATH (scripts/install-deps.sh installs openmpi-bin)");
	char log[1200];
	snprintf(log, sizeof log, "%s/test_dist.collectives.log", test_env("IAPO_TMP", "/tmp"));
	int rc = dist_run_child(self, 2, "collectives", log, NULL);
	char *out = dist_slurp(log);
	CHECK(rc == 0 && dist_ranks_passed(out, 2), "2-rank job: exit %d, output:\n%s", rc, out);
	free(out);
}

static void test_mpi_abort(void)
{
	char log[1200];
	snprintf(log, sizeof log, "%s/test_dist.abort.log", test_env("IAPO_TMP", "/tmp"));
	int rc = dist_run_child(self, 2, "abort", log, NULL);
	char *out = dist_slurp(log);
	CHECK(rc == 3, "iapo_dist_abort(3) on rank 1: job exit 3, found %d", rc);
	CHECK(strstr(out, "iapo: rank 1 of 2: bad row 7 on rank 1") != NULL, "its message:\n%s", out);
	free(out);
}

static void test_mpi_rank_dies(void)
{
	char log[1200];
	snprintf(log, sizeof log, "%s/test_dist.dies.log", test_env("IAPO_TMP", "/tmp"));
	int rc = dist_run_child(self, 2, "dies", log, NULL);
	char *out = dist_slurp(log);
	CHECK(rc != 0 && rc != 124, "a killed rank ends the job (exit %d; 124 = timed out, a hang)", rc);
	CHECK(strstr(out, "signal 9") != NULL || strstr(out, "Killed") != NULL, "mpirun says which rank died how:\n%s",
	      out);
	CHECK(strstr(out, "rank 0: after the allreduce") == NULL, "rank 0 did not go on:\n%s", out);
	free(out);
}

/* ---- the child: one rank of the job ---------------------------------------- */

static void child_collectives(void)
{
	const int r = iapo_dist_rank(), S = iapo_dist_size();
	CHECK(S == 2, "size %d", S);
	float f[4] = {(float)r + 1, 0.5f, -1.0f * r, 1e-8f};
	CHECK(iapo_dist_allreduce_float(f, 4) == IAPO_OK, "%s", iapo_errmsg());
	CHECK(f[0] == 3 && f[1] == 1 && f[2] == -1 && f[3] == 2e-8f, "float sums %g %g %g %g", f[0], f[1], f[2], f[3]);
	double s[2] = {r + 0.25, 10.0 * r}, mx[2] = {(double)r, -(double)r}, mn[2] = {(double)r, -(double)r};
	CHECK(iapo_dist_allreduce_double(s, 2, IAPO_DIST_SUM) == IAPO_OK && s[0] == 1.5 && s[1] == 10, "double sum");
	CHECK(iapo_dist_allreduce_double(mx, 2, IAPO_DIST_MAX) == IAPO_OK && mx[0] == 1 && mx[1] == 0, "max");
	CHECK(iapo_dist_allreduce_double(mn, 2, IAPO_DIST_MIN) == IAPO_OK && mn[0] == 0 && mn[1] == -1, "min");
	char text[16];
	snprintf(text, sizeof text, "from rank %d", r);
	CHECK(iapo_dist_bcast(text, sizeof text, 1) == IAPO_OK && !strcmp(text, "from rank 1"), "bcast: '%s'", text);
	int mine[2] = {10 * r, 10 * r + 1}, all[4] = {0};
	CHECK(iapo_dist_allgather(mine, sizeof mine, all) == IAPO_OK && all[0] == 0 && all[1] == 1 && all[2] == 10 &&
		      all[3] == 11,
	      "allgather in rank order: %d %d %d %d", all[0], all[1], all[2], all[3]);
	size_t lo, hi;
	iapo_dist_share(5, &lo, &hi);
	CHECK(r == 0 ? lo == 0 && hi == 3 : lo == 3 && hi == 5, "share of 5 on rank %d: [%zu, %zu)", r, lo, hi);
	iapo_dist_share(1, &lo, &hi);
	CHECK(r == 0 ? hi - lo == 1 : hi == lo, "share of 1 on rank %d: [%zu, %zu)", r, lo, hi);
	iapo_dist_barrier();

	/* agree: only rank 1 fails */
	iapo_clear_error();
	iapo_status st = r == 1 ? iapo_fail(IAPO_ERR_FORMAT, "data.jsonl: line 3: expected an object") : IAPO_OK;
	st = iapo_dist_agree(st);
	CHECK(st == IAPO_ERR_FORMAT, "rank %d: agreed status %d", r, st);
	CHECK(r == 0 ? !strcmp(iapo_errmsg(), "rank 1: data.jsonl: line 3: expected an object")
		     : !strcmp(iapo_errmsg(), "data.jsonl: line 3: expected an object"),
	      "rank %d: message '%s'", r, iapo_errmsg());
	CHECK(iapo_dist_error_shared(), "rank %d: an agreed error is shared", r);
	iapo_fail(IAPO_ERR_IO, "later, local");
	CHECK(!iapo_dist_error_shared(), "rank %d: a later local error is not", r);
	/* both fail: the lowest rank's message wins everywhere */
	iapo_fail(IAPO_ERR_ARG, "mine is %d", r);
	st = iapo_dist_agree(IAPO_ERR_ARG);
	CHECK(st == IAPO_ERR_ARG && !strcmp(iapo_errmsg(), "mine is 0"), "rank %d: '%s'", r, iapo_errmsg());
	CHECK(iapo_dist_agree(IAPO_OK) == IAPO_OK, "all OK");

	float w[1000];
	for (int i = 0; i < 1000; i++) w[i] = (float)i / 7;
	double h = (double)(iapo_dist_hash_floats(w, 1000) >> 12), hmin = h, hmax = h;
	iapo_dist_allreduce_double(&hmin, 1, IAPO_DIST_MIN);
	iapo_dist_allreduce_double(&hmax, 1, IAPO_DIST_MAX);
	CHECK(hmin == hmax, "the same floats hash the same on both ranks");
}

static int child(const char *mode)
{
	if (iapo_dist_init() != IAPO_OK) {
		printf("rank ?: init: %s\n", iapo_errmsg());
		return 1;
	}
	const int r = iapo_dist_rank();
	if (!strcmp(mode, "abort")) {
		if (r == 1) iapo_dist_abort(3, "bad row 7 on rank 1");
		double x = 0;
		iapo_dist_allreduce_double(&x, 1, IAPO_DIST_SUM); /* never completes: rank 1 is gone */
		printf("rank %d: after the allreduce\n", r);
		iapo_dist_finalize();
		return 0;
	}
	if (!strcmp(mode, "dies")) {
		if (r == 1) raise(SIGKILL);
		double x = 0;
		iapo_dist_allreduce_double(&x, 1, IAPO_DIST_SUM);
		printf("rank %d: after the allreduce\n", r);
		iapo_dist_finalize();
		return 0;
	}
	RUN(child_collectives);
	iapo_dist_finalize();
	DIST_CHILD_END(r);
}

int main(int argc, char **argv)
{
	(void)argc;
	self = argv[0];
	if (dist_child_mode()) return child(dist_child_mode());
	RUN(test_single);
	RUN(test_hash);
	if (iapo_dist_compiled()) {
		RUN(test_mpi_job);
		RUN(test_mpi_abort);
		RUN(test_mpi_rank_dies);
	} else {
		fprintf(stderr, "  (built without MPI: the 2-rank jobs are not run)\n");
	}
	TEST_END();
}
