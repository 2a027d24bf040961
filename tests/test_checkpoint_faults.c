/*
 * test_checkpoint_faults.c — optimizer.bin and the trainer's checkpoint save
 * under injected I/O faults (io/fs.h's fault hook):
 *  - short reads and writes and EINTR leave optimizer.bin's round trip exact;
 *  - an EIO/ENOSPC at each write and fsync of iapo_optimizer_save in turn is an
 *    IO error naming the file and the OS error, and leaves no file; a read
 *    error on load names the file;
 *  - an error at each write and fsync of a whole checkpoint save in turn
 *    (model files, optimizer.bin, trainer_state.json, the directory syncs):
 *    the save fails with a message naming a path of the run and the OS error,
 *    the previous checkpoint is byte for byte what it was and stays the
 *    latest, the new one is absent (or, for a fault after its rename, complete),
 *    no temporary directory is left; afterwards a save without faults works
 *    and --resume continues from it.
 * Not here: SIGKILL during saves (tests/cli_kill.sh).
 */
#include <dirent.h>
#include <errno.h>

#include "core/status.h"
#include "rl/checkpoint.h"
#include "rl/trainer.h"
#include "test.h"
#include "trainer_fixture.h"

static char scratch[1200];

typedef struct {
	long seen;     /* write/fsync calls so far (reads with count_reads) */
	long fail_at;  /* the one that fails (1-based; 0: none) */
	int err;       /* its errno */
	int shorts;    /* reads and writes move 1..7 bytes, with EINTR now and then */
	int count_reads;
	long n;
} faults;

static long hook(void *ctx, iapo_fs_op op, size_t n, int *err)
{
	faults *f = ctx;
	f->n++;
	if (op != IAPO_FS_OP_READ || f->count_reads) {
		f->seen++;
		if (f->fail_at && f->seen == f->fail_at) {
			*err = f->err;
			return -1;
		}
	}
	if (op == IAPO_FS_OP_FSYNC) return 0;
	if (f->shorts) {
		if (f->n % 13 == 0) {
			*err = EINTR;
			return -1;
		}
		return 1 + f->n % 7;
	}
	return (long)n;
}

static void faults_on(faults *f) { iapo_fs_set_fault_hook(hook, f); }
static void faults_off(void) { iapo_fs_set_fault_hook(NULL, NULL); }

/* Entries of dir whose name holds ".tmp-" or ".old-". */
static int leftovers(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d) return -1;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d))) n += strstr(e->d_name, ".tmp-") || strstr(e->d_name, ".old-");
	closedir(d);
	return n;
}

static int os_error_named(const char *msg, int err) { return strstr(msg, strerror(err)) != NULL; }

static void test_optimizer_faults(void)
{
	enum { N = 3001 };
	static float m[N], v[N], m2[N], v2[N];
	for (int i = 0; i < N; i++) m[i] = (float)i * 1e-4f, v[i] = (float)(i % 11) * 1e-7f;
	char p[1300];
	snprintf(p, sizeof p, "%s/optimizer.bin", scratch);
	long t = 0;
	/* short transfers and EINTR change nothing */
	faults f = {.shorts = 1};
	faults_on(&f);
	iapo_status s1 = iapo_optimizer_save(p, m, v, N, 9);
	iapo_status s2 = iapo_optimizer_load(p, m2, v2, N, &t);
	faults_off();
	CHECK(s1 == IAPO_OK && s2 == IAPO_OK && t == 9 && !memcmp(m, m2, sizeof m) && !memcmp(v, v2, sizeof v),
	      "round trip through short reads/writes: %s", iapo_errmsg());
	CHECK(f.n > 1000, "the hook saw optimizer.bin's I/O (%ld calls)", f.n);
	/* how many writes and fsyncs a save makes */
	faults c = {0};
	faults_on(&c);
	s1 = iapo_optimizer_save(p, m, v, N, 9);
	faults_off();
	CHECK(s1 == IAPO_OK && c.seen >= 4, "a save: %ld writes/fsyncs", c.seen);
	for (long k = 1; k <= c.seen; k++) {
		faults g = {.fail_at = k, .err = k % 2 ? EIO : ENOSPC};
		faults_on(&g);
		iapo_status s = iapo_optimizer_save(p, m, v, N, 9);
		faults_off();
		CHECK(s == IAPO_ERR_IO && strstr(iapo_errmsg(), "optimizer.bin") && os_error_named(iapo_errmsg(), g.err),
		      "fault at call %ld: %s", k, iapo_errmsg());
		CHECK(!iapo_fs_exists(p), "fault at call %ld: no half-written %s", k, p);
	}
	CHECK(iapo_optimizer_save(p, m, v, N, 9) == IAPO_OK, "%s", iapo_errmsg());
	faults r = {.fail_at = 2, .err = EIO, .count_reads = 1};
	faults_on(&r);
	iapo_status s = iapo_optimizer_load(p, m2, v2, N, &t);
	faults_off();
	CHECK(s == IAPO_ERR_IO && strstr(iapo_errmsg(), "optimizer.bin") && strstr(iapo_errmsg(), "read failed") &&
		      os_error_named(iapo_errmsg(), EIO),
	      "read error: %s", iapo_errmsg());
}

static const char *files[] = {"config.json",	       "generation_config.json", "model.safetensors", "tokenizer.json",
			      "tokenizer_config.json", "trainer_state.json",	  "optimizer.bin",     "rng_state.json"};
enum { NFILES = sizeof files / sizeof *files };

static fixture fx;

static void test_save_faults(void)
{
	iapo_train_opts o;
	if (fixture_opts(&fx, "faults", &o)) {
		CHECK(0, "options");
		return;
	}
	int bad = 0;
	bad |= iapo_train_opts_set(&o, "prompts-per-step", "2") != IAPO_OK;
	bad |= iapo_train_opts_set(&o, "num-generations", "4") != IAPO_OK;
	bad |= iapo_train_opts_set(&o, "micro-batch", "8") != IAPO_OK;
	bad |= iapo_train_opts_set(&o, "max-steps", "4") != IAPO_OK;
	bad |= iapo_train_opts_set(&o, "save-steps", "0") != IAPO_OK;
	bad |= iapo_train_opts_set(&o, "threads", "1") != IAPO_OK;
	CHECK(!bad && iapo_train_opts_resolve(&o) == IAPO_OK, "options: %s", iapo_errmsg());
	iapo_trainer *tr = NULL;
	CHECK(iapo_trainer_new(&o, &tr) == IAPO_OK, "%s", iapo_errmsg());
	if (!tr) goto out;
	CHECK(iapo_trainer_step(tr, NULL) == IAPO_OK && iapo_trainer_save(tr) == IAPO_OK, "step 1 + save: %s",
	      iapo_errmsg());
	/* checkpoint-1 as it is now */
	char *before[NFILES];
	size_t before_len[NFILES];
	char p[1400];
	for (int i = 0; i < NFILES; i++) {
		snprintf(p, sizeof p, "%s/checkpoint-1/%s", o.out, files[i]);
		before[i] = fixture_read(p, &before_len[i]);
		CHECK(before[i] != NULL, "%s", p);
	}
	CHECK(iapo_trainer_step(tr, NULL) == IAPO_OK, "step 2: %s", iapo_errmsg());
	/* the writes and fsyncs of one save of checkpoint-2, counted on a copy
	 * of the run that is thrown away */
	faults c = {0};
	faults_on(&c);
	iapo_status s = iapo_trainer_save(tr);
	faults_off();
	CHECK(s == IAPO_OK && c.seen > 10, "a checkpoint save: %ld writes/fsyncs (%s)", c.seen, iapo_errmsg());
	snprintf(p, sizeof p, "%s/checkpoint-2", o.out);
	iapo_fs_remove_all(p);
	int failed = 0, absent = 0, complete_after = 0, prev_intact = 1, named = 0, clean = 1;
	for (long k = 1; k <= c.seen; k++) {
		faults g = {.fail_at = k, .err = k % 3 ? EIO : ENOSPC};
		faults_on(&g);
		s = iapo_trainer_save(tr);
		faults_off();
		failed += s == IAPO_ERR_IO;
		const char *msg = iapo_errmsg();
		if (s == IAPO_ERR_IO && strstr(msg, o.out) && os_error_named(msg, g.err)) named++;
		else CHECK(0, "fault at call %ld of %ld: status %d: %s", k, c.seen, s, msg);
		snprintf(p, sizeof p, "%s/checkpoint-2", o.out);
		if (!iapo_fs_exists(p)) {
			absent++;
		} else {
			/* only a fault after the rename (the run directory's
			 * fsync) may leave it, and then complete */
			int all = 1;
			for (int i = 0; i < NFILES; i++) {
				snprintf(p, sizeof p, "%s/checkpoint-2/%s", o.out, files[i]);
				all &= iapo_fs_exists(p);
			}
			complete_after += all;
			CHECK(all, "fault at call %ld: checkpoint-2 exists but is incomplete", k);
			snprintf(p, sizeof p, "%s/checkpoint-2", o.out);
			iapo_fs_remove_all(p);
		}
		for (int i = 0; i < NFILES && before[i]; i++) {
			snprintf(p, sizeof p, "%s/checkpoint-1/%s", o.out, files[i]);
			size_t len;
			char *now = fixture_read(p, &len);
			if (!now || len != before_len[i] || memcmp(now, before[i], len)) {
				prev_intact = 0;
				CHECK(0, "fault at call %ld: %s changed", k, p);
			}
			iapo_free(now);
		}
		if (leftovers(o.out) != 0) {
			clean = 0;
			CHECK(0, "fault at call %ld: temporary directories left in %s", k, o.out);
			iapo_checkpoint_clean(o.out);
		}
		long latest = -1;
		iapo_checkpoint_latest(o.out, "trainer_state.json", &latest);
		CHECK(latest == 1, "fault at call %ld: latest checkpoint %ld", k, latest);
	}
	CHECK(failed == c.seen && named == c.seen, "every fault failed the save (%d of %ld) with the path and OS error (%d)",
	      failed, c.seen, named);
	CHECK(prev_intact && clean, "checkpoint-1 untouched, nothing left behind");
	printf("     %ld faults: checkpoint-2 absent after %d, complete (fault after its rename) after %d\n", c.seen,
	       absent, complete_after);
	CHECK(absent + complete_after == c.seen && absent > 0, "each fault: checkpoint-2 absent or complete");
	for (int i = 0; i < NFILES; i++) iapo_free(before[i]);
	/* without faults: saves, and --resume continues from it */
	CHECK(iapo_trainer_save(tr) == IAPO_OK, "save without faults: %s", iapo_errmsg());
	iapo_trainer_free(tr);
	CHECK(iapo_train_opts_set(&o, "overwrite", "0") == IAPO_OK && iapo_train_opts_set(&o, "resume", NULL) == IAPO_OK,
	      "resume");
	tr = NULL;
	CHECK(iapo_trainer_new(&o, &tr) == IAPO_OK && iapo_trainer_steps_done(tr) == 2, "resumes after step 2: %s",
	      iapo_errmsg());
	iapo_trainer_free(tr);
out:
	iapo_train_opts_free(&o);
}

int main(void)
{
	snprintf(scratch, sizeof scratch, "%s/checkpoint-faults", test_env("IAPO_TMP", "/tmp"));
	iapo_fs_remove_all(scratch);
	iapo_fs_mkdir_p(scratch);
	RUN(test_optimizer_faults);
	int have = fixture_make(&fx, "checkpoint-faults-fixture", 1, 2, 5) == 0;
	CHECK(have, "fixture: %s", iapo_errmsg());
	if (have) {
		RUN(test_save_faults);
		iapo_fs_remove_all(fx.root);
	}
	iapo_fs_remove_all(scratch);
	TEST_END();
}
