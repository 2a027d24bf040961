/*
 * mpi.c — what data parallelism (src/dist/, trainer.h) costs and gains on
 * one machine, as JSON lines on stdout:
 *
 *   mpi_step       median GRPO step time (the trainer's seconds_total, and
 *                  its rollout and update parts) of the same run as
 *                  1 process x 2 threads and as 2 MPI processes x 1 thread
 *                  (random Qwen2 weights of the shape, byte-level tokenizer,
 *                  completions run to the token budget so both do the same
 *                  work; the first step is a warm-up and not counted)
 *   mpi_allreduce  one MPI_Allreduce (sum) of a float block between 2 local
 *                  ranks: the model's gradient block for each step shape,
 *                  and the qwen0.5b block (494M floats, ~2 GB) that a
 *                  Qwen2.5-0.5B step sends once; median seconds, algorithm
 *                  bandwidth (bytes / s) and bus bandwidth (2(S-1)/S bytes / s,
 *                  what each rank's link carries in a ring)
 *
 * The program starts itself under mpirun for the 2-process parts (env
 * IAPO_BENCH_MPI says which), as tests/test_dist.h does. Built without MPI,
 * it prints one record saying so.
 *
 * Usage: mpi [--shape tiny|small|qwen0.5b|all] [--quick] [--steps N]
 *   --shape  step shapes (default small; the qwen0.5b allreduce always runs)
 *   --quick  tiny steps and a 1/8 qwen0.5b block
 * Left out: more than one machine (see bench/README.md for the estimate),
 * overlap of communication with the backward (there is none yet).
 */
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "core/mem.h"
#include "core/status.h"
#include "dist/dist.h"
#include "io/fs.h"
#include "model/weights.h"
#include "rl/trainer.h"
#include "tokenizer/tokenizer.h"

typedef struct {
	const char *name;
	int V, C, L, NH, NKV, F;
	int P, G, Tc, steps; /* the GRPO step measured */
} shape;

/* bench.h's BENCH_SHAPES; the batch keeps a qwen0.5b step within minutes. */
static const shape SHAPES[] = {
	{"tiny", 512, 256, 4, 4, 2, 768, 4, 4, 32, 4},
	{"small", 8192, 512, 8, 8, 4, 1536, 4, 4, 32, 3},
	{"qwen0.5b", 151936, 896, 24, 14, 2, 4864, 2, 2, 16, 2},
};
#define NSHAPES ((int)(sizeof SHAPES / sizeof SHAPES[0]))

static void make_config(const shape *s, iapo_config *c)
{
	bench_qwen2_config(&(bench_model_shape){s->name, s->V, s->C, s->L, s->NH, s->NKV, s->F}, c);
}

static const shape *find_shape(const char *name)
{
	for (int i = 0; i < NSHAPES; i++)
		if (!strcmp(SHAPES[i].name, name)) return &SHAPES[i];
	return NULL;
}

/* A byte-level tokenizer of exactly V tokens (random weights sample every
 * id, and each must decode): 256 bytes, V - 263 merges of letters and digits
 * ("ab", then "abc", ...), the 7 added tokens. */
static iapo_status write_tokenizer(const char *dir, int V)
{
	static const char A[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
	const int na = (int)sizeof A - 1, n = V - 263;
	if (n < 0 || n > na * na + na * na * na)
		return iapo_fail(IAPO_ERR_ARG, "bench tokenizer: %d tokens: expected 263 to %d", V, 263 + na * na * (na + 1));
	char **m = iapo_calloc((size_t)(n > 0 ? n : 1), sizeof *m);
	iapo_status st = m ? IAPO_OK : iapo_fail(IAPO_ERR_NOMEM, "bench tokenizer");
	for (int k = 0; st == IAPO_OK && k < n; k++) {
		char buf[8];
		if (k < na * na) /* "a b" -> "ab" */
			snprintf(buf, sizeof buf, "%c %c", A[k / na], A[k % na]);
		else { /* "ab c" -> "abc", the two-letter token made above */
			int j = k - na * na;
			snprintf(buf, sizeof buf, "%c%c %c", A[j / (na * na)], A[j / na % na], A[j % na]);
		}
		if (!(m[k] = iapo_strdup(buf))) st = iapo_fail(IAPO_ERR_NOMEM, "bench tokenizer");
	}
	if (st == IAPO_OK) st = iapo_tokenizer_write_bytelevel(dir, (const char *const *)m, n);
	for (int k = 0; m && k < n; k++) iapo_free(m[k]);
	iapo_free(m);
	return st;
}

/* A model directory and a dataset for shape s under dir. */
static iapo_status make_inputs(const shape *s, const char *dir)
{
	char tok[1300], model[1300], data[1300];
	snprintf(tok, sizeof tok, "%s/tok", dir);
	snprintf(model, sizeof model, "%s/model", dir);
	snprintf(data, sizeof data, "%s/data.jsonl", dir);
	IAPO_TRY(iapo_fs_mkdir_p(dir));
	IAPO_TRY(write_tokenizer(tok, s->V));
	iapo_config c;
	make_config(s, &c);
	iapo_weights w;
	IAPO_TRY(iapo_weights_init_random(&w, &c, 7, 0.02f));
	iapo_status st = iapo_weights_save(&w, model, tok, "F32", 0);
	iapo_weights_free(&w);
	IAPO_TRY(st);
	FILE *f = fopen(data, "w");
	if (!f) return iapo_fail(IAPO_ERR_IO, "%s: cannot write", data);
	for (int i = 0; i < 64; i++)
		fprintf(f, "{\"prompt\": \"What is %d plus %d? Think step by step.\", \"answer\": \"%d\"}\n", i, 2 * i, 3 * i);
	return fclose(f) == 0 ? IAPO_OK : iapo_fail(IAPO_ERR_IO, "%s: write failed", data);
}

typedef struct {
	double total, rollout, update, tokens;
	long n_params;
} step_times;

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, cmp_d);
	return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* 1 + s->steps steps of the run in dir/out-<tag>; medians of all but the first. */
static iapo_status run_steps(const shape *s, const char *dir, const char *tag, int threads, step_times *out)
{
	char model[1300], data[1300], run[1300], v[32];
	snprintf(model, sizeof model, "%s/model", dir);
	snprintf(data, sizeof data, "%s/data.jsonl", dir);
	snprintf(run, sizeof run, "%s/out-%s", dir, tag);
	iapo_train_opts o;
	IAPO_TRY(iapo_train_opts_default(&o));
	const char *kv[][2] = {{"model", model}, {"data", data}, {"out", run}, {"overwrite", "1"}, {"no-chat-template", "1"},
			       {"learning-rate", "1e-6"}, {"micro-batch", "2"}, {"save-steps", "0"}, {"eval-steps", "0"}};
	iapo_status st = IAPO_OK;
	for (size_t i = 0; i < sizeof kv / sizeof *kv && st == IAPO_OK; i++) st = iapo_train_opts_set(&o, kv[i][0], kv[i][1]);
	const struct {
		const char *k;
		int x;
	} nums[] = {{"prompts-per-step", s->P}, {"num-generations", s->G}, {"max-completion-tokens", s->Tc},
		    {"threads", threads}, {"max-steps", s->steps + 2}};
	for (size_t i = 0; i < sizeof nums / sizeof *nums && st == IAPO_OK; i++) {
		snprintf(v, sizeof v, "%d", nums[i].x);
		st = iapo_train_opts_set(&o, nums[i].k, v);
	}
	iapo_trainer *tr = NULL;
	if (st == IAPO_OK) st = iapo_trainer_new(&o, &tr);
	double t[16], r[16], u[16];
	int n = 0;
	/* the last step (max-steps) would write a checkpoint: stop before it */
	for (int k = 0; st == IAPO_OK && k <= s->steps; k++) {
		iapo_step_metrics m;
		st = iapo_trainer_step(tr, &m);
		if (st == IAPO_OK && k > 0 && n < 16) {
			t[n] = m.seconds_total, r[n] = m.seconds_rollout, u[n] = m.seconds_update;
			out->tokens = m.tokens;
			n++;
		}
	}
	if (st == IAPO_OK) {
		out->total = median(t, n), out->rollout = median(r, n), out->update = median(u, n);
		out->n_params = (long)iapo_param_count(&iapo_trainer_weights(tr)->cfg);
	}
	iapo_trainer_free(tr);
	iapo_train_opts_free(&o);
	return st;
}

static void step_record(const shape *s, int procs, int threads, const step_times *t, double allreduce)
{
	bench_rec_begin("mpi_step");
	bench_rec_str("shape", s->name);
	bench_rec_int("procs", procs);
	bench_rec_int("threads_per_proc", threads);
	bench_rec_int("prompts", s->P);
	bench_rec_int("completions", s->P * s->G);
	bench_rec_int("max_completion_tokens", s->Tc);
	bench_rec_num("completion_tokens", t->tokens);
	bench_rec_int("steps_timed", s->steps);
	bench_rec_num("step_s", t->total);
	bench_rec_num("rollout_s", t->rollout);
	bench_rec_num("update_s", t->update);
	bench_rec_int("params", t->n_params);
	if (allreduce >= 0) bench_rec_num("grad_allreduce_s", allreduce);
	bench_rec_num("loadavg", bench_loadavg());
	bench_rec_end();
}

/* Median seconds of one allreduce of n floats (collective), after a warm-up;
 * *ok = 0 when the sum is wrong. */
static double time_allreduce(size_t n, int reps, int *ok)
{
	float *x = iapo_alloc_aligned(n * sizeof(float));
	double ts[8], one = -1;
	*ok = x != NULL;
	if (iapo_dist_agree(x ? IAPO_OK : iapo_fail(IAPO_ERR_NOMEM, "allreduce: %zu floats", n)) != IAPO_OK) {
		iapo_free_aligned(x);
		*ok = 0;
		return -1;
	}
	const int r = iapo_dist_rank(), S = iapo_dist_size();
	if (reps > 8) reps = 8;
	for (int k = 0; k <= reps; k++) {
#pragma omp parallel for schedule(static)
		for (size_t i = 0; i < n; i++) x[i] = (float)(r + 1);
		iapo_dist_barrier();
		double t0 = bench_now();
		iapo_dist_allreduce_float(x, n);
		double dt = bench_now() - t0;
		iapo_dist_allreduce_double(&dt, 1, IAPO_DIST_MAX);
		if (k > 0) ts[k - 1] = dt;
		const float want = (float)S * (S + 1) / 2;
		*ok &= x[0] == want && x[n / 2] == want && x[n - 1] == want;
	}
	one = median(ts, reps);
	iapo_free_aligned(x);
	return one;
}

static void allreduce_record(const char *what, size_t n, double secs, int ok)
{
	const double bytes = 4.0 * (double)n, S = iapo_dist_size();
	bench_rec_begin("mpi_allreduce");
	bench_rec_str("block", what);
	bench_rec_int("ranks", (long long)S);
	bench_rec_int("floats", (long long)n);
	bench_rec_num("bytes", bytes);
	bench_rec_num("seconds", secs);
	bench_rec_num("algbw_gb_s", bytes / secs / 1e9);
	bench_rec_num("busbw_gb_s", 2.0 * (S - 1) / S * bytes / secs / 1e9);
	bench_rec_bool("sum_correct", ok);
	bench_rec_end();
}

/* ---- the 2-process side ---------------------------------------------------- */

static int child(const char *mode)
{
	if (iapo_dist_init() != IAPO_OK || iapo_dist_size() < 2) {
		bench_note("mpi: could not join the job: %s\n", iapo_errmsg());
		return 1;
	}
	const int talk = iapo_dist_rank() == 0;
	int rc = 0;
	if (!strcmp(mode, "steps")) {
		const shape *found = find_shape(getenv("IAPO_BENCH_SHAPE") ? getenv("IAPO_BENCH_SHAPE") : "");
		const char *dir = getenv("IAPO_BENCH_DIR"), *sv = getenv("IAPO_BENCH_STEPS");
		shape sh = found ? *found : SHAPES[0];
		const shape *s = &sh;
		if (sv) sh.steps = atoi(sv);
		step_times t = {0};
		if (!found || !dir || sh.steps < 1 || run_steps(s, dir, "np2", 1, &t) != IAPO_OK) {
			if (talk) bench_note("mpi: 2-process steps failed: %s\n", iapo_errmsg());
			rc = 1;
		} else {
			int ok;
			double ar = time_allreduce((size_t)t.n_params, 3, &ok);
			if (talk) step_record(s, iapo_dist_size(), 1, &t, ar);
		}
	} else {
		const char *nv = getenv("IAPO_BENCH_FLOATS");
		size_t n = nv ? (size_t)strtoull(nv, NULL, 10) : 0;
		int ok = 0;
		double secs = n ? time_allreduce(n, 3, &ok) : -1;
		if (talk) allreduce_record(getenv("IAPO_BENCH_BLOCK") ? getenv("IAPO_BENCH_BLOCK") : "?", n, secs, ok);
		rc = ok ? 0 : 1;
	}
	iapo_dist_finalize();
	return rc;
}

static int mpirun(const char *self, const char *env)
{
	char cmd[4096];
	snprintf(cmd, sizeof cmd,
		 "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 %s "
		 "mpirun --oversubscribe -np 2 %s",
		 env, self);
	int rc = system(cmd);
	return rc == -1 ? -1 : WEXITSTATUS(rc);
}

int main(int argc, char **argv)
{
	const char *mode = getenv("IAPO_BENCH_MPI");
	if (mode) return child(mode);
	const char *shape_name = NULL;
	int quick = 0, steps = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--shape") && i + 1 < argc)
			shape_name = argv[++i];
		else if (!strcmp(argv[i], "--quick"))
			quick = 1;
		else if (!strcmp(argv[i], "--steps") && i + 1 < argc) {
			if (!bench_parse_pos_int(argv[++i], &steps)) goto usage;
		} else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
			i++; /* the comparison fixes the threads: 2 x 1 against 1 x 2 */
		else
			goto usage;
	}
	if (!iapo_dist_compiled() || system("command -v mpirun >/dev/null 2>&1") != 0) {
		bench_rec_begin("mpi_step");
		bench_rec_bool("supported", 0);
		bench_rec_str("why", iapo_dist_compiled() ? "no mpirun on PATH" : "built without MPI (make MPI=0 or no mpicc)");
		bench_rec_end();
		return 0;
	}
	const shape *todo[NSHAPES];
	int nt = 0;
	if (!shape_name) shape_name = quick ? "tiny" : "small";
	for (int i = 0; i < NSHAPES; i++)
		if (!strcmp(shape_name, "all") || !strcmp(shape_name, SHAPES[i].name)) todo[nt++] = &SHAPES[i];
	if (nt == 0) goto usage;
	char dir[1024];
	snprintf(dir, sizeof dir, "%s/iapo-bench-mpi.%d", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (int)getpid());
	int status = 0;
	for (int k = 0; k < nt; k++) {
		shape s = *todo[k];
		if (steps > 0) s.steps = steps > 15 ? 15 : steps;
		char sdir[1100], env[1400];
		snprintf(sdir, sizeof sdir, "%s/%s", dir, s.name);
		if (make_inputs(&s, sdir) != IAPO_OK) {
			bench_note("mpi: %s: %s\n", s.name, iapo_errmsg());
			status = 1;
			continue;
		}
		bench_note("mpi: %s: 1 process x 2 threads, %d steps after a warm-up...\n", s.name, s.steps);
		step_times t = {0};
		if (run_steps(&s, sdir, "np1", 2, &t) != IAPO_OK) {
			bench_note("mpi: %s: %s\n", s.name, iapo_errmsg());
			status = 1;
		} else {
			step_record(&s, 1, 2, &t, -1);
		}
		bench_note("mpi: %s: 2 processes x 1 thread...\n", s.name);
		snprintf(env, sizeof env, "IAPO_BENCH_MPI=steps IAPO_BENCH_SHAPE=%s IAPO_BENCH_DIR=%s", s.name, sdir);
		if (steps > 0) snprintf(env + strlen(env), sizeof env - strlen(env), " IAPO_BENCH_STEPS=%d", s.steps);
		if (mpirun(argv[0], env) != 0) status = 1;
		iapo_fs_remove_all(sdir);
	}
	/* The block a Qwen2.5-0.5B step allreduces: its parameter count. */
	iapo_config c;
	make_config(find_shape("qwen0.5b"), &c);
	size_t n = iapo_param_count(&c) / (quick ? 8 : 1);
	bench_note("mpi: allreduce of %zu floats (%.2f GB) between 2 ranks...\n", n, 4e-9 * (double)n);
	char env[256];
	snprintf(env, sizeof env, "IAPO_BENCH_MPI=allreduce IAPO_BENCH_FLOATS=%zu IAPO_BENCH_BLOCK=%s", n,
		 quick ? "qwen0.5b/8" : "qwen0.5b");
	if (mpirun(argv[0], env) != 0) status = 1;
	iapo_fs_remove_all(dir);
	return status;
usage:
	fprintf(stderr, "usage: mpi [--shape tiny|small|qwen0.5b|all] [--quick] [--steps N]\n");
	return 2;
}
