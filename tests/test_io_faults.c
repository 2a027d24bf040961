/*
 * test_io_faults.c — the I/O layer under injected faults (io/fs.h's fault
 * hook): short reads and writes and EINTR must not change what is read or
 * written; an I/O error (EIO, ENOSPC) at any read, write or fsync must give a
 * clear error naming the file and the OS error, and must leave no half-written
 * file: the target is the old complete file (or directory) or, for writers
 * that are not atomic, absent; no temporary file or directory is left.
 * Covered: iapo_fs_read_file, iapo_fs_write_file_atomic, iapo_fs_write_file,
 * iapo_fs_copy_file, iapo_json_load, iapo_safetensors_write, and
 * iapo_weights_save (a fault at each of its writes and fsyncs in turn).
 * Not here: optimizer.bin and the trainer's checkpoints (their own tests).
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <unistd.h>

#include "core/mem.h"
#include "core/status.h"
#include "io/fs.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "model/weights.h"
#include "test.h"

static char tmpdir[1024];

static void tpath(char *buf, size_t n, const char *name)
{
	int k = snprintf(buf, n, "%s/%s", tmpdir, name);
	if (k < 0 || (size_t)k >= n) buf[0] = '\0';
}

static int has(const char *msg, const char *part) { return strstr(msg, part) != NULL; }

/* ---- the hook ---- */

typedef struct {
	long calls[3];   /* per operation */
	int mask;        /* operations counted towards fail_at (1 << op) */
	long seen;       /* counted calls so far */
	long fail_at;    /* the counted call that fails (1-based; 0: none) */
	int err;         /* its errno */
	long short_max;  /* reads/writes move 1, 2, ..., short_max bytes in turn (0: all) */
	long chunk;      /* or at most this many each (0: all) */
	int eintr_every; /* every k-th read/write first fails with EINTR (0: never) */
	long eintr_n;
} faults;

static long hook(void *ctx, iapo_fs_op op, size_t n, int *err)
{
	faults *f = ctx;
	f->calls[op]++;
	if (f->mask & (1 << op)) {
		f->seen++;
		if (f->fail_at && f->seen == f->fail_at) {
			*err = f->err;
			return -1;
		}
	}
	if (op == IAPO_FS_OP_FSYNC) return 0;
	if (f->eintr_every && ++f->eintr_n % f->eintr_every == 0) {
		*err = EINTR;
		return -1;
	}
	/* Varying short lengths: 1, 2, ..., short_max, 1, ... */
	if (f->short_max) return 1 + (long)(f->calls[op] % (unsigned long)f->short_max);
	if (f->chunk) return f->chunk;
	return (long)n;
}

static void faults_on(faults *f) { iapo_fs_set_fault_hook(hook, f); }
static void faults_off(void) { iapo_fs_set_fault_hook(NULL, NULL); }

/* Number of entries of dir whose name contains ".tmp-" or ".old-". */
static int leftovers(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d) return -1;
	int n = 0;
	for (struct dirent *e; (e = readdir(d));) n += strstr(e->d_name, ".tmp-") || strstr(e->d_name, ".old-");
	closedir(d);
	return n;
}

static int file_is(const char *path, const void *want, size_t n)
{
	char *d = NULL;
	size_t len = 0;
	if (iapo_fs_read_file(path, (size_t)1 << 30, &d, &len) != IAPO_OK) return 0;
	int same = len == n && !memcmp(d, want, n);
	iapo_free(d);
	return same;
}

static char *pattern(size_t n, unsigned seed)
{
	char *p = iapo_malloc(n);
	for (size_t i = 0; i < n; i++) p[i] = (char)((i * 131 + seed * 7 + (i >> 8)) & 0xff);
	return p;
}

/* ---- short transfers and EINTR change nothing ---- */

static void test_short_and_eintr(void)
{
	char a[1024], b[1024], c[1024], s1[1024], s2[1024];
	tpath(a, sizeof a, "short/a.bin");
	tpath(b, sizeof b, "short/b.bin");
	tpath(c, sizeof c, "short/c.bin");
	tpath(s1, sizeof s1, "short/plain.safetensors");
	tpath(s2, sizeof s2, "short/faulty.safetensors");
	char dir[1024];
	tpath(dir, sizeof dir, "short");
	CHECK(iapo_fs_mkdir_p(dir) == IAPO_OK, "%s", iapo_errmsg());
	const size_t n = 100003;
	char *data = pattern(n, 1);
	faults f = {.short_max = 7, .eintr_every = 3};
	faults_on(&f);
	CHECK(iapo_fs_write_file_atomic(a, data, n) == IAPO_OK, "atomic: %s", iapo_errmsg());
	CHECK(iapo_fs_write_file(b, data, n) == IAPO_OK, "write_file: %s", iapo_errmsg());
	CHECK(iapo_fs_copy_file(a, c) == IAPO_OK, "copy: %s", iapo_errmsg());
	char *back = NULL;
	size_t len = 0;
	CHECK(iapo_fs_read_file(c, n + 1, &back, &len) == IAPO_OK && len == n && !memcmp(back, data, n),
	      "read back through short reads: %s", iapo_errmsg());
	iapo_free(back);
	long writes = f.calls[IAPO_FS_OP_WRITE], reads = f.calls[IAPO_FS_OP_READ];
	faults_off();
	/* Really short: about n / 4 bytes per call on average. */
	CHECK(writes > (long)(3 * n / 4) && reads > (long)(2 * n / 4), "%ld writes, %ld reads", writes, reads);
	CHECK(file_is(a, data, n) && file_is(b, data, n) && file_is(c, data, n), "contents differ");

	float t1[300], t2[7];
	for (int i = 0; i < 300; i++) t1[i] = (float)i * 0.25f - 3;
	for (int i = 0; i < 7; i++) t2[i] = (float)-i;
	iapo_st_entry e[3] = {{"x", IAPO_DT_F32, 2, {30, 10}, t1}, {"y", IAPO_DT_BF16, 1, {7}, t2},
			      {"z", IAPO_DT_F16, 2, {10, 30}, t1}};
	CHECK(iapo_safetensors_write(s1, e, 3) == IAPO_OK, "%s", iapo_errmsg());
	f = (faults){.short_max = 5, .eintr_every = 2};
	faults_on(&f);
	CHECK(iapo_safetensors_write(s2, e, 3) == IAPO_OK, "%s", iapo_errmsg());
	faults_off();
	char *p1 = NULL, *p2 = NULL;
	size_t l1 = 0, l2 = 0;
	iapo_fs_read_file(s1, 1 << 20, &p1, &l1);
	iapo_fs_read_file(s2, 1 << 20, &p2, &l2);
	CHECK(p1 && p2 && l1 == l2 && !memcmp(p1, p2, l1), "safetensors written through short writes differs");
	CHECK(leftovers(dir) == 0, "temporary files left");
	iapo_free(p1);
	iapo_free(p2);
	iapo_free(data);
}

/* ---- errors ---- */

/* Counts the calls of `mask` that fn makes without faults. */
#define COUNT_CALLS(mask_, expr, out) \
	do { \
		faults cf_ = {.mask = (mask_)}; \
		faults_on(&cf_); \
		(void)(expr); \
		faults_off(); \
		(out) = cf_.seen; \
	} while (0)

static void test_atomic_write_errors(void)
{
	char dir[1024], p[1024];
	tpath(dir, sizeof dir, "atomic");
	tpath(p, sizeof p, "atomic/f.txt");
	CHECK(iapo_fs_mkdir_p(dir) == IAPO_OK, "%s", iapo_errmsg());
	const size_t n = 5000;
	char *old = pattern(n, 2), *neu = pattern(n, 3);
	static const struct {
		int op, err;
		const char *text;
	} kinds[] = {{IAPO_FS_OP_WRITE, ENOSPC, "No space left on device"}, {IAPO_FS_OP_WRITE, EIO, "Input/output error"},
		     {IAPO_FS_OP_FSYNC, EIO, "Input/output error"}};
	for (size_t k = 0; k < sizeof kinds / sizeof *kinds; k++) {
		long total;
		CHECK(iapo_fs_write_file_atomic(p, old, n) == IAPO_OK, "%s", iapo_errmsg());
		faults probe = {.mask = 1 << kinds[k].op, .chunk = 700};
		faults_on(&probe);
		CHECK(iapo_fs_write_file_atomic(p, old, n) == IAPO_OK, "%s", iapo_errmsg());
		faults_off();
		total = probe.seen;
		CHECK(total >= (kinds[k].op == IAPO_FS_OP_WRITE ? 7 : 2), "only %ld calls", total);
		for (long at = 1; at <= total; at++) {
			faults f = {.mask = 1 << kinds[k].op, .fail_at = at, .err = kinds[k].err, .chunk = 700};
			faults_on(&f);
			iapo_status s = iapo_fs_write_file_atomic(p, neu, n);
			faults_off();
			/* The last fsync is the directory's, and names it. */
			const char *named = kinds[k].op == IAPO_FS_OP_FSYNC && at == total ? "atomic: fsync of directory failed"
											   : "atomic/f.txt";
			CHECK(s == IAPO_ERR_IO && has(iapo_errmsg(), named) && has(iapo_errmsg(), kinds[k].text),
			      "fault %zu at call %ld: status %d: %s", k, at, s, iapo_errmsg());
			/* The directory's fsync comes after the rename: then the new
			 * file is complete in place. */
			int is_old = file_is(p, old, n), is_new = file_is(p, neu, n);
			CHECK(is_old || (kinds[k].op == IAPO_FS_OP_FSYNC && at == total && is_new),
			      "fault %zu at call %ld: file is neither the old one nor (after the rename) the new one", k, at);
			CHECK(leftovers(dir) == 0, "fault %zu at call %ld: temporary file left", k, at);
		}
	}
	iapo_free(old);
	iapo_free(neu);
}

static void test_plain_write_and_copy_errors(void)
{
	char dir[1024], p[1024], src[1024], dst[1024];
	tpath(dir, sizeof dir, "plain");
	tpath(p, sizeof p, "plain/w.bin");
	tpath(src, sizeof src, "plain/src.bin");
	tpath(dst, sizeof dst, "plain/dst.bin");
	CHECK(iapo_fs_mkdir_p(dir) == IAPO_OK, "%s", iapo_errmsg());
	const size_t n = 200000; /* several copy buffers */
	char *data = pattern(n, 4);
	long writes, reads, fsyncs;
	COUNT_CALLS(1 << IAPO_FS_OP_WRITE, iapo_fs_write_file(p, data, n), writes);
	for (long at = 1; at <= writes + 1; at++) {
		faults f = {.mask = (1 << IAPO_FS_OP_WRITE) | (1 << IAPO_FS_OP_FSYNC), .fail_at = at, .err = ENOSPC};
		faults_on(&f);
		iapo_status s = iapo_fs_write_file(p, data, n);
		faults_off();
		CHECK(s == IAPO_ERR_IO && has(iapo_errmsg(), "plain/w.bin") && has(iapo_errmsg(), "No space left"),
		      "write_file fault at %ld: %s", at, iapo_errmsg());
		CHECK(!iapo_fs_exists(p), "write_file fault at %ld: a partial file is left", at);
	}
	CHECK(iapo_fs_write_file(src, data, n) == IAPO_OK, "%s", iapo_errmsg());
	COUNT_CALLS(1 << IAPO_FS_OP_READ, iapo_fs_copy_file(src, dst), reads);
	COUNT_CALLS(1 << IAPO_FS_OP_WRITE, iapo_fs_copy_file(src, dst), writes);
	COUNT_CALLS(1 << IAPO_FS_OP_FSYNC, iapo_fs_copy_file(src, dst), fsyncs);
	CHECK(reads >= 4 && writes >= 4 && fsyncs == 1, "copy: %ld reads, %ld writes, %ld fsyncs", reads, writes, fsyncs);
	for (int op = 0; op < 3; op++) {
		long total = op == IAPO_FS_OP_READ ? reads : op == IAPO_FS_OP_WRITE ? writes : fsyncs;
		for (long at = 1; at <= total; at++) {
			faults f = {.mask = 1 << op, .fail_at = at, .err = EIO};
			faults_on(&f);
			iapo_status s = iapo_fs_copy_file(src, dst);
			faults_off();
			const char *named = op == IAPO_FS_OP_READ ? "plain/src.bin" : "plain/dst.bin";
			CHECK(s == IAPO_ERR_IO && has(iapo_errmsg(), named) && has(iapo_errmsg(), "Input/output error"),
			      "copy, op %d fault at %ld: %s", op, at, iapo_errmsg());
			CHECK(!iapo_fs_exists(dst), "copy, op %d fault at %ld: a partial copy is left", op, at);
		}
	}
	CHECK(file_is(src, data, n), "source changed");
	iapo_free(data);
}

static void test_read_errors(void)
{
	char p[1024], j[1024];
	tpath(p, sizeof p, "read.bin");
	tpath(j, sizeof j, "read.json");
	const size_t n = 30000;
	char *data = pattern(n, 5);
	CHECK(iapo_fs_write_file(p, data, n) == IAPO_OK, "%s", iapo_errmsg());
	static const char json[] = "{\"a\": [1, 2, 3], \"b\": \"text\"}";
	CHECK(iapo_fs_write_file(j, json, sizeof json - 1) == IAPO_OK, "%s", iapo_errmsg());
	for (long at = 1; at <= 5; at++) {
		faults f = {.mask = 1 << IAPO_FS_OP_READ, .fail_at = at, .err = EIO, .chunk = 8000};
		faults_on(&f);
		char *d = (char *)1;
		size_t len = 1;
		iapo_status s = iapo_fs_read_file(p, n, &d, &len);
		faults_off();
		if (at <= 4) /* 30000 bytes in reads of at most 8000: four reads */
			CHECK(s == IAPO_ERR_IO && d == NULL && len == 0 && has(iapo_errmsg(), "read.bin: read failed: Input/output error"),
			      "fault at read %ld: status %d: %s", at, s, iapo_errmsg());
		else
			CHECK(s == IAPO_OK && len == n && !memcmp(d, data, n), "read %ld is past the end: %s", at, iapo_errmsg());
		iapo_free(s == IAPO_OK ? d : NULL);
	}
	faults f = {.mask = 1 << IAPO_FS_OP_READ, .fail_at = 1, .err = EIO};
	faults_on(&f);
	cJSON *root = NULL;
	iapo_status s = iapo_json_load(j, 1 << 20, &root);
	faults_off();
	CHECK(s == IAPO_ERR_IO && root == NULL && has(iapo_errmsg(), "read.json") && has(iapo_errmsg(), "Input/output error"),
	      "json_load: %s", iapo_errmsg());
	iapo_free(data);
}

static void test_safetensors_write_errors(void)
{
	char dir[1024], p[1024];
	tpath(dir, sizeof dir, "st");
	tpath(p, sizeof p, "st/m.safetensors");
	CHECK(iapo_fs_mkdir_p(dir) == IAPO_OK, "%s", iapo_errmsg());
	float a[64], b[64];
	for (int i = 0; i < 64; i++) a[i] = (float)i, b[i] = (float)-i;
	iapo_st_entry olde[1] = {{"old", IAPO_DT_F32, 1, {64}, a}};
	iapo_st_entry newe[3] = {{"n1", IAPO_DT_F32, 2, {8, 8}, b}, {"n2", IAPO_DT_BF16, 1, {64}, b}, {"n3", IAPO_DT_F16, 1, {64}, a}};
	long total;
	int mask = (1 << IAPO_FS_OP_WRITE) | (1 << IAPO_FS_OP_FSYNC);
	COUNT_CALLS(mask, iapo_safetensors_write(p, newe, 3), total);
	CHECK(total >= 6, "%ld writes and fsyncs", total);
	for (long at = 1; at <= total; at++) {
		CHECK(iapo_safetensors_write(p, olde, 1) == IAPO_OK, "%s", iapo_errmsg());
		faults f = {.mask = mask, .fail_at = at, .err = ENOSPC};
		faults_on(&f);
		iapo_status s = iapo_safetensors_write(p, newe, 3);
		faults_off();
		CHECK(s == IAPO_ERR_IO && has(iapo_errmsg(), "st/m.safetensors") && has(iapo_errmsg(), "No space left"),
		      "fault at %ld: status %d: %s", at, s, iapo_errmsg());
		iapo_safetensors st;
		float out[64];
		const iapo_st_tensor *t = NULL;
		CHECK(iapo_safetensors_open(p, &st) == IAPO_OK && st.n == 1 && (t = iapo_safetensors_find(&st, "old")) &&
			      iapo_safetensors_read_f32(&st, t, out) == IAPO_OK && !memcmp(out, a, sizeof a),
		      "fault at %ld: the old file is not intact: %s", at, iapo_errmsg());
		iapo_safetensors_close(&st);
		CHECK(leftovers(dir) == 0, "fault at %ld: temporary file left", at);
	}
	/* Without an old file, a failed write leaves none. */
	unlink(p);
	faults f = {.mask = mask, .fail_at = 2, .err = EIO};
	faults_on(&f);
	CHECK(iapo_safetensors_write(p, newe, 3) == IAPO_ERR_IO, "no failure");
	faults_off();
	CHECK(!iapo_fs_exists(p) && leftovers(dir) == 0, "a partial file is left");
}

/* A model directory saved with a fault at each write and fsync in turn is
 * the previous complete one, loadable with the previous values. */
static void test_weights_save_errors(void)
{
	static const char cfg_text[] =
		"{\"model_type\": \"qwen3\", \"vocab_size\": 40, \"hidden_size\": 8, \"intermediate_size\": 12,"
		" \"num_hidden_layers\": 2, \"num_attention_heads\": 2, \"num_key_value_heads\": 1, \"head_dim\": 4,"
		" \"tie_word_embeddings\": false, \"bos_token_id\": 30, \"eos_token_id\": 31}";
	char parent[1024], dir[1024], cfgp[1024];
	tpath(parent, sizeof parent, "models");
	tpath(dir, sizeof dir, "models/m");
	tpath(cfgp, sizeof cfgp, "models/config.json");
	CHECK(iapo_fs_mkdir_p(parent) == IAPO_OK, "%s", iapo_errmsg());
	CHECK(iapo_fs_write_file(cfgp, cfg_text, sizeof cfg_text - 1) == IAPO_OK, "%s", iapo_errmsg());
	iapo_config cfg;
	iapo_weights v1, v2, back;
	CHECK(iapo_config_load(cfgp, &cfg) == IAPO_OK, "%s", iapo_errmsg());
	CHECK(iapo_weights_init_random(&v1, &cfg, 1, 0.02f) == IAPO_OK && iapo_weights_init_random(&v2, &cfg, 2, 0.02f) == IAPO_OK,
	      "%s", iapo_errmsg());
	if (!v1.block || !v2.block) return;
	size_t bytes = iapo_param_count(&cfg) * sizeof(float);
	long total;
	int mask = (1 << IAPO_FS_OP_WRITE) | (1 << IAPO_FS_OP_FSYNC);
	CHECK(iapo_weights_save(&v1, dir, NULL, "F32", 1000) == IAPO_OK, "%s", iapo_errmsg());
	COUNT_CALLS(mask, iapo_weights_save(&v1, dir, NULL, "F32", 1000), total);
	CHECK(total >= 10, "%ld writes and fsyncs", total);
	int new_in_place = 0;
	for (long at = 1; at <= total; at++) {
		faults f = {.mask = mask, .fail_at = at, .err = at % 2 ? ENOSPC : EIO};
		faults_on(&f);
		iapo_status s = iapo_weights_save(&v2, dir, NULL, "F32", 1000);
		faults_off();
		CHECK(s == IAPO_ERR_IO && has(iapo_errmsg(), parent) &&
			      (has(iapo_errmsg(), "No space left") || has(iapo_errmsg(), "Input/output error")),
		      "fault at %ld of %ld: status %d: %s", at, total, s, iapo_errmsg());
		CHECK(iapo_weights_load(dir, &back) == IAPO_OK, "fault at %ld: the directory does not load: %s", at,
		      iapo_errmsg());
		int is_old = back.block && !memcmp(back.block, v1.block, bytes);
		int is_new = back.block && !memcmp(back.block, v2.block, bytes);
		iapo_weights_free(&back);
		/* Only the parent directory's fsync after the exchange comes
		 * after the new directory is in place. */
		new_in_place += is_new;
		CHECK(is_old || (is_new && at == total), "fault at %ld: neither the old nor the new model", at);
		CHECK(leftovers(parent) == 0, "fault at %ld: temporary directory left", at);
		if (is_new) CHECK(iapo_weights_save(&v1, dir, NULL, "F32", 1000) == IAPO_OK, "%s", iapo_errmsg());
	}
	CHECK(new_in_place <= 1, "%d", new_in_place);
	CHECK(iapo_weights_save(&v2, dir, NULL, "F32", 1000) == IAPO_OK, "%s", iapo_errmsg());
	CHECK(iapo_weights_load(dir, &back) == IAPO_OK && !memcmp(back.block, v2.block, bytes), "save after faults");
	iapo_weights_free(&back);
	iapo_weights_free(&v1);
	iapo_weights_free(&v2);
}

int main(void)
{
	snprintf(tmpdir, sizeof tmpdir, "%s/test_io_faults", test_env("IAPO_TMP", "/tmp"));
	iapo_fs_remove_all(tmpdir);
	if (iapo_fs_mkdir_p(tmpdir) != IAPO_OK) {
		fprintf(stderr, "%s\n", iapo_errmsg());
		return 1;
	}
	RUN(test_short_and_eintr);
	RUN(test_atomic_write_errors);
	RUN(test_plain_write_and_copy_errors);
	RUN(test_read_errors);
	RUN(test_safetensors_write_errors);
	RUN(test_weights_save_errors);
	iapo_fs_remove_all(tmpdir);
	TEST_END();
}
