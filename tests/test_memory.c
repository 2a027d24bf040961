/*
 * test_memory.c — the memory estimate and check (src/rl/memory.h):
 *  - parsers: /proc/meminfo's MemAvailable, sizes with suffixes, memory.stat
 *    keys; IAPO_MEMORY_LIMIT replaces, "off" disables, junk is an ARG error;
 *    without it the amount read is positive and at most MemTotal;
 *  - the activation arena formula equals iapo_fwd_bytes of real arenas
 *    (Llama, Qwen2, Qwen3 with q/k norms; with and without backward);
 *  - the weight packs' formula (iapo_mem_packs: what iapo_generate decodes
 *    from by default) equals the bytes iapo_kv_pack_weights packs, fp32 and
 *    bf16, tied and untied (on CPUs whose packs hold panels), and a train
 *    plan counts them unless --rollout-rows (fp32 ones under --rollout-fp32);
 *  - a plan over the limit is refused with the estimate, the amount
 *    available and the options of its largest parts; under it, accepted;
 *  - measured: the estimate is within 25% of the peak resident size
 *    (wait4's ru_maxrss) of `iapo train` dominated by the parameters and AdamW
 *    moments, of `iapo train --algo iapo --beta 0` dominated by activations
 *    and the information estimator, and of `iapo generate` dominated by its
 *    KV cache (skipped in sanitizer builds, whose shadow memory and
 *    quarantine change every peak);
 *  - the commands refuse before loading (no run directory is made), exit 1
 *    with the message, and --no-memory-check runs anyway.
 */
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/mem.h"
#include "core/status.h"
#include "io/fs.h"
#include "kernels/gemm.h"
#include "model/kvcache.h"
#include "model/transformer.h"
#include "model/weights.h"
#include "rl/memory.h"
#include "rl/options.h"
#include "sanitizer.h"
#include "test.h"

static char root[1024];
static const char *bin;

static void test_parsers(void)
{
	const char *mi = "MemTotal:       24684084 kB\nMemFree:        20774792 kB\nMemAvailable:   23960180 kB\n";
	CHECK(iapo_mem_parse_meminfo(mi) == 23960180.0 * 1024, "MemAvailable");
	CHECK(iapo_mem_parse_meminfo("MemTotal: 5 kB\n") < 0, "no MemAvailable: unknown");
	struct {
		const char *s;
		double v;
	} sz[] = {{"123", 123}, {"4K", 4096}, {"1.5M", 1.5 * 1048576}, {"2GiB", 2.0 * (1 << 30)}, {"8G\n", 8.0 * (1 << 30)},
		  {"1T", 1099511627776.0}, {"512 MB", 512.0 * 1048576}, {"", -1}, {"abc", -1}, {"-5", -1}, {"5X", -1},
		  {"9223372036854771712\n", 9223372036854771712.0}};
	for (size_t i = 0; i < sizeof sz / sizeof *sz; i++)
		CHECK(iapo_mem_parse_size(sz[i].s) == sz[i].v, "size '%s': expected %g, found %g", sz[i].s, sz[i].v,
		      iapo_mem_parse_size(sz[i].s));
	const char *stat = "cache 100\ninactive_anon 7\ninactive_file 4096\ntotal_inactive_file 8192\n";
	CHECK(iapo_mem_parse_stat(stat, "inactive_file") == 4096, "inactive_file");
	CHECK(iapo_mem_parse_stat(stat, "total_inactive_file") == 8192, "total_inactive_file");
	CHECK(iapo_mem_parse_stat(stat, "active_file") == -1, "absent key");
}

static void test_available(void)
{
	iapo_mem_avail a;
	unsetenv("IAPO_MEMORY_LIMIT");
	CHECK(iapo_mem_available(&a) == IAPO_OK && a.bytes > 0 && !a.disabled, "read: %g bytes (%s)", a.bytes, a.source);
	FILE *f = fopen("/proc/meminfo", "r");
	char line[256];
	double total = 0;
	while (f && fgets(line, sizeof line, f))
		if (!strncmp(line, "MemTotal:", 9)) total = strtod(line + 9, NULL) * 1024;
	if (f) fclose(f);
	CHECK(total > 0 && a.bytes <= total, "available %g <= MemTotal %g", a.bytes, total);
	setenv("IAPO_MEMORY_LIMIT", "123M", 1);
	CHECK(iapo_mem_available(&a) == IAPO_OK && a.bytes == 123.0 * 1048576 && strstr(a.source, "IAPO_MEMORY_LIMIT"),
	      "override: %g", a.bytes);
	setenv("IAPO_MEMORY_LIMIT", "off", 1);
	CHECK(iapo_mem_available(&a) == IAPO_OK && a.disabled, "off");
	setenv("IAPO_MEMORY_LIMIT", "lots", 1);
	CHECK(iapo_mem_available(&a) == IAPO_ERR_ARG && strstr(iapo_errmsg(), "IAPO_MEMORY_LIMIT") &&
		      strstr(iapo_errmsg(), "lots"),
	      "junk: %s", iapo_errmsg());
	unsetenv("IAPO_MEMORY_LIMIT");
}

static void test_fwd_formula(void)
{
	iapo_config cs[3];
	memset(cs, 0, sizeof cs);
	for (int i = 0; i < 3; i++) {
		iapo_config *c = &cs[i];
		c->arch = i == 0 ? IAPO_ARCH_LLAMA : i == 1 ? IAPO_ARCH_QWEN2 : IAPO_ARCH_QWEN3;
		strcpy(c->model_type, i == 0 ? "llama" : i == 1 ? "qwen2" : "qwen3");
		c->V = 300 + 37 * i, c->C = 48, c->L = 2 + i, c->NH = 6, c->NKV = i == 0 ? 6 : 2, c->HD = i == 2 ? 16 : 8;
		c->F = 80 + 8 * i, c->max_pos = 512, c->rope_theta = 10000, c->rms_eps = 1e-6f;
		c->tie_embeddings = i != 0, c->qkv_bias = i == 1, c->qk_norm = i == 2;
		c->bos_id = c->pad_id = -1;
	}
	const int shapes[][2] = {{1, 1}, {3, 17}, {4, 100}};
	for (int i = 0; i < 3; i++) {
		iapo_weights w;
		if (iapo_weights_init_random(&w, &cs[i], 1, 0.02f) != IAPO_OK) {
			CHECK(0, "weights: %s", iapo_errmsg());
			continue;
		}
		for (int s = 0; s < 3; s++)
			for (int bw = 0; bw < 2; bw++) {
				const int B = shapes[s][0], T = shapes[s][1];
				iapo_fwd *f = NULL;
				if (iapo_fwd_new(&w, B, T, bw, &f) != IAPO_OK) {
					CHECK(0, "fwd: %s", iapo_errmsg());
					continue;
				}
				double want = (double)iapo_fwd_bytes(f) + 4.0 * (2.0 * B + 4.0 * B * T);
				CHECK(iapo_mem_fwd(&cs[i], B, T, bw) == want, "%s B %d T %d backward %d: %g vs %g",
				      cs[i].model_type, B, T, bw, iapo_mem_fwd(&cs[i], B, T, bw), want);
				iapo_fwd_free(f);
			}
		iapo_weights_free(&w);
	}
}

static void test_packs_formula(void)
{
	iapo_config cs[3];
	memset(cs, 0, sizeof cs);
	for (int i = 0; i < 3; i++) { /* odd K (bf16 K-pairs), N not a multiple of 32 */
		iapo_config *c = &cs[i];
		c->arch = i == 0 ? IAPO_ARCH_LLAMA : i == 1 ? IAPO_ARCH_QWEN2 : IAPO_ARCH_QWEN3;
		strcpy(c->model_type, i == 0 ? "llama" : i == 1 ? "qwen2" : "qwen3");
		c->V = 300 + 37 * i, c->C = 48 + i, c->L = 2 + i, c->NH = 6, c->NKV = i == 0 ? 6 : 2, c->HD = i == 2 ? 16 : 8;
		c->F = 80 + 9 * i, c->max_pos = 512, c->rope_theta = 10000, c->rms_eps = 1e-6f;
		c->tie_embeddings = i != 0, c->qkv_bias = i == 1, c->qk_norm = i == 2;
		c->bos_id = c->pad_id = -1;
	}
	for (int i = 0; i < 3; i++) {
		iapo_weights w;
		iapo_kv *kv = NULL;
		if (iapo_weights_init_random(&w, &cs[i], 1, 0.02f) != IAPO_OK || iapo_kv_new(&w, 1, 8, &kv) != IAPO_OK) {
			CHECK(0, "setup: %s", iapo_errmsg());
			continue;
		}
		for (int bf16 = 0; bf16 < 2; bf16++) {
			size_t bytes = 0;
			CHECK(iapo_kv_use_bf16(kv, bf16) == IAPO_OK && iapo_kv_pack_weights(kv, 2, &bytes) == IAPO_OK, "%s",
			      iapo_errmsg());
			/* bf16 K-pairs only with the bf16 kernels; without AVX-512 the packs hold nothing */
			const int exact = iapo_sgemm_avx512() && (!bf16 || __builtin_cpu_supports("avx512bf16"));
			if (exact)
				CHECK(iapo_mem_packs(&cs[i], bf16) == (double)bytes, "%s %s: formula %g, packed %zu bytes",
				      cs[i].model_type, bf16 ? "bf16" : "fp32", iapo_mem_packs(&cs[i], bf16), bytes);
		}
		iapo_kv_free(kv);
		iapo_weights_free(&w);
	}
}

static void test_check(void)
{
	iapo_mem_plan p;
	iapo_mem_plan_init(&p);
	iapo_mem_add(&p, "model parameters", NULL, 100e6);
	iapo_mem_add(&p, "training activations", "--micro-batch, --max-completion-tokens", 300e6);
	iapo_mem_add(&p, "rollout KV cache", "--rollout-batch", 50e6);
	iapo_mem_add(&p, "model parameters", NULL, 20e6);
	iapo_mem_add(&p, "libraries and threads", NULL, 1e6);
	CHECK(p.n == 4 && p.total == 471e6, "items %d, total %g", p.n, p.total);
	setenv("IAPO_MEMORY_LIMIT", "400M", 1);
	iapo_status s = iapo_mem_check(&p, "the run");
	const char *m = iapo_errmsg();
	CHECK(s == IAPO_ERR_NOMEM && strstr(m, "not enough memory for the run") && strstr(m, "estimated 449.2 MiB") &&
		      strstr(m, "400.0 MiB is available (IAPO_MEMORY_LIMIT)") &&
		      strstr(m, "(training activations 286.1 MiB, model parameters 114.4 MiB, rollout KV cache 47.7 MiB") &&
		      strstr(m, "lower --micro-batch, --max-completion-tokens, --rollout-batch") &&
		      strstr(m, "--no-memory-check"),
	      "refused: %s", m);
	setenv("IAPO_MEMORY_LIMIT", "500M", 1);
	CHECK(iapo_mem_check(&p, "the run") == IAPO_OK, "fits: %s", iapo_errmsg());
	setenv("IAPO_MEMORY_LIMIT", "1", 1);
	CHECK(iapo_mem_guard(IAPO_ERR_IO, &p, "x") == IAPO_OK && !*iapo_errmsg(), "no plan: no refusal");
	CHECK(iapo_mem_guard(IAPO_OK, &p, "x") == IAPO_ERR_NOMEM, "guard checks");
	setenv("IAPO_MEMORY_LIMIT", "off", 1);
	CHECK(iapo_mem_check(&p, "the run") == IAPO_OK, "off");
	p.processes = 4;
	iapo_mem_add(&p, "libraries and threads", NULL, 0);
	iapo_mem_add(&p, "more", NULL, 1);
	CHECK(p.total == 4 * (471e6 + 1), "processes multiply: %g", p.total);
	unsetenv("IAPO_MEMORY_LIMIT");
	char a0[] = "train", a1[] = "--x", a2[] = "--no-memory-check", a3[] = "1", a4[] = "--no-memory-check";
	char *argv[] = {a0, a1, a2, a3, a4, NULL};
	int argc = 5;
	CHECK(iapo_mem_take_flag(&argc, argv) == 1 && argc == 3 && argv[1] == a1 && argv[2] == a3 && !argv[3],
	      "flag removed");
	CHECK(iapo_mem_take_flag(&argc, argv) == 0 && argc == 3, "no flag");
}

/* Runs the CLI with args (NULL-terminated, argv[0] not included), stderr
 * to errfile, IAPO_MEMORY_LIMIT = limit (NULL: unset). Returns its exit
 * status (-1 if it did not exit) and its peak RSS in bytes. */
static int run(const char *const *args, const char *limit, const char *errfile, double *peak)
{
	char *argv[64];
	int n = 0;
	argv[n++] = (char *)bin;
	for (; args[n - 1] && n < 63; n++) argv[n] = (char *)args[n - 1];
	argv[n] = NULL;
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		int fd = open(errfile, O_WRONLY | O_CREAT | O_TRUNC, 0644), nul = open("/dev/null", O_WRONLY);
		if (fd >= 0) dup2(fd, 2);
		if (nul >= 0) dup2(nul, 1);
		if (limit) setenv("IAPO_MEMORY_LIMIT", limit, 1);
		else unsetenv("IAPO_MEMORY_LIMIT");
		execv(bin, argv);
		_exit(127);
	}
	int status = 0;
	struct rusage ru;
	memset(&ru, 0, sizeof ru);
	if (pid < 0 || wait4(pid, &status, 0, &ru) < 0) return -1;
	if (peak) *peak = (double)ru.ru_maxrss * 1024.0;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static char *slurp(const char *path)
{
	char *d = NULL;
	if (iapo_fs_read_file(path, 1 << 24, &d, NULL) != IAPO_OK) return NULL;
	return d;
}

static int make_model(const char *name, const char *json, char *dir, size_t n)
{
	char cfg[1200], err[1200];
	snprintf(dir, n, "%s/%s", root, name);
	snprintf(cfg, sizeof cfg, "%s/%s.json", root, name);
	snprintf(err, sizeof err, "%s/init.err", root);
	FILE *f = fopen(cfg, "w");
	if (!f) return -1;
	fputs(json, f);
	fclose(f);
	const char *args[] = {"init", "--config", cfg, "--out", dir, "--seed", "3", NULL};
	return run(args, NULL, err, NULL);
}

static double train_estimate(const char *const *args)
{
	char *argv[64];
	int n = 0;
	for (; args[n] && n < 63; n++) argv[n] = (char *)args[n];
	argv[n] = NULL;
	iapo_train_opts o;
	int help = 0;
	double est = -1;
	if (iapo_train_opts_default(&o) == IAPO_OK && iapo_train_opts_from_args(&o, n, argv, &help) == IAPO_OK &&
	    iapo_train_opts_resolve(&o) == IAPO_OK) {
		iapo_mem_plan p;
		iapo_mem_plan_init(&p);
		if (iapo_mem_plan_train(&p, &o) == IAPO_OK) est = p.total;
	}
	if (est < 0) CHECK(0, "train plan: %s", iapo_errmsg());
	iapo_train_opts_free(&o);
	return est;
}

static void compare(const char *what, double est, double peak)
{
	printf("     %-44s estimate %7.1f MiB, peak RSS %7.1f MiB (%+.1f%%)\n", what, est / 1048576, peak / 1048576,
	       100 * (est - peak) / peak);
	CHECK(est > 0 && peak > 0 && est >= 0.75 * peak && est <= 1.25 * peak, "%s: estimate %g vs peak %g", what, est,
	      peak);
}

static void test_commands(void)
{
	char m1[1200], m2[1200], data[1200], err[1200], out[1200];
	const char *cfg1 = "{\"model_type\": \"qwen2\", \"vocab_size\": 263, \"hidden_size\": 384, \"intermediate_size\": "
			   "1024, \"num_hidden_layers\": 4, \"num_attention_heads\": 6, \"num_key_value_heads\": 2, "
			   "\"max_position_embeddings\": 1024, \"tie_word_embeddings\": true}";
	/* a small model with a large KV cache per token (16 heads of 64) */
	const char *cfg2 = "{\"model_type\": \"llama\", \"vocab_size\": 263, \"hidden_size\": 64, \"intermediate_size\": "
			   "128, \"num_hidden_layers\": 4, \"num_attention_heads\": 16, \"num_key_value_heads\": 16, "
			   "\"head_dim\": 64, \"max_position_embeddings\": 1024, \"tie_word_embeddings\": true}";
	if (make_model("m1", cfg1, m1, sizeof m1) || make_model("m2", cfg2, m2, sizeof m2)) {
		CHECK(0, "iapo init failed (IAPO_BIN %s)", bin);
		return;
	}
	snprintf(data, sizeof data, "%s/data.jsonl", root);
	FILE *f = fopen(data, "w");
	if (!f) return;
	/* prompts longer than --max-prompt-tokens 16 (kept: their last 16 tokens),
	 * so the estimate's prompt length is the real one */
	for (int i = 0; i < 8; i++)
		fprintf(f, "{\"prompt\": \"Compute the sum of %d and %d, then give the answer.\", \"answer\": \"%d\"}\n", i, i,
			2 * i);
	fclose(f);
	snprintf(err, sizeof err, "%s/cmd.err", root);
	snprintf(out, sizeof out, "%s/run", root);
	const char *common[] = {"--data", data, "--prompts-per-step", "2", "--num-generations", "2", "--system", "x",
				"--no-one-shot", "--threads", "2", "--max-steps", "1", "--save-steps", "0",
				"--max-prompt-tokens", "16", "--overwrite", "--out", out};
	enum { NC = sizeof common / sizeof *common };
	const char *a1[NC + 8] = {"train", "--model", m1, "--max-completion-tokens", "32"};
	const char *a2[NC + 16] = {"train",  "--model",      m1,	    "--max-completion-tokens", "128", "--algo",
				   "iapo",   "--beta",	     "0",	    "--micro-batch", "4", "--seed", "1"};
	memcpy(a1 + 5, common, sizeof common);
	memcpy(a2 + 13, common, sizeof common);
	/* the rollout's packs: bf16 by default, fp32 under --rollout-fp32, none
	 * under --rollout-rows */
	{
		char path[1300];
		iapo_config c1;
		snprintf(path, sizeof path, "%s/config.json", m1);
		CHECK(iapo_config_load(path, &c1) == IAPO_OK, "%s", iapo_errmsg());
		const char *rows[NC + 8], *fp32[NC + 8], *both[NC + 8];
		memcpy(rows, a1, sizeof rows);
		memcpy(fp32, a1, sizeof fp32);
		memcpy(both, a1, sizeof both);
		rows[5 + NC] = "--rollout-rows";
		fp32[5 + NC] = "--rollout-fp32";
		both[5 + NC] = "--rollout-fp32";
		both[6 + NC] = "--rollout-rows";
		const double d16 = train_estimate(a1) - train_estimate(rows), d32 = train_estimate(fp32) - train_estimate(both);
		CHECK(d16 == iapo_mem_packs(&c1, 1) && d32 == iapo_mem_packs(&c1, 0) && d32 > d16 && d16 > 0,
		      "train plan: the rollout's packs count %g (bf16) / %g (fp32) bytes, expected %g / %g", d16, d32,
		      iapo_mem_packs(&c1, 1), iapo_mem_packs(&c1, 0));
	}
	double peak = 0;
	char *e;
	if (!SANITIZED) {
		double est = train_estimate(a1);
		int rc = run(a1, NULL, err, &peak);
		e = slurp(err);
		CHECK(rc == 0, "train 1: exit %d: %s", rc, e ? e : "");
		iapo_free(e);
		compare("train: parameters, reference, AdamW", est, peak);
		est = train_estimate(a2);
		rc = run(a2, NULL, err, &peak);
		CHECK(rc == 0, "train 2: exit %d", rc);
		compare("train --algo iapo --beta 0: activations", est, peak);
		/* 16 copies of a 450-token prompt, prefilled: the KV cache of
		 * every position is written (a sequence stopping early would
		 * leave its pages untouched, so each must run to --max-tokens) */
		char prompt[451];
		for (int i = 0; i < 450; i++) prompt[i] = (char)('a' + i % 26);
		prompt[450] = 0;
		const char *g[] = {"generate", "--model", m2, "--raw", "--prompt", prompt, "-n", "16", "--max-tokens", "2",
				   "--temperature", "0", "--threads", "2", NULL};
		rc = run(g, NULL, err, &peak);
		e = slurp(err);
		int full = e && strstr(e, "16 length") != NULL;
		CHECK(rc == 0 && full, "generate: exit %d, every completion to --max-tokens: %s", rc, e ? e : "");
		iapo_free(e);
		iapo_mem_plan p;
		iapo_mem_plan_init(&p);
		CHECK(iapo_mem_plan_generate(&p, m2, 16, 452, 2, NULL, 0) == IAPO_OK, "%s", iapo_errmsg());
		if (full) compare("generate -n 16: KV cache", p.total, peak);
	} else {
		printf("     (sanitizer build: peaks not compared)\n");
	}
	/* refusals: before loading, exit 1, the message; --no-memory-check runs */
	iapo_fs_remove_all(out);
	char limit[64];
	snprintf(limit, sizeof limit, "%.0f", train_estimate(a2) * 0.8);
	int rc = run(a2, limit, err, NULL);
	e = slurp(err);
	CHECK(rc == 1 && e && strstr(e, "iapo train: not enough memory for this training run: estimated") &&
		      strstr(e, "is available (IAPO_MEMORY_LIMIT)") && strstr(e, "training activations") &&
		      strstr(e, "lower --micro-batch, --max-completion-tokens, --max-prompt-tokens, ") &&
		      strstr(e, "--no-memory-check"),
	      "train refused: exit %d: %s", rc, e ? e : "");
	iapo_free(e);
	CHECK(!iapo_fs_exists(out), "refused before the run directory was made");
	const char *a3[NC + 16];
	memcpy(a3, a1, sizeof a1);
	int k = 0;
	while (a3[k]) k++;
	a3[k] = "--no-memory-check", a3[k + 1] = NULL;
	snprintf(limit, sizeof limit, "%.0f", train_estimate(a1) * 0.8);
	rc = run(a3, limit, err, NULL);
	e = slurp(err);
	CHECK(rc == 0, "--no-memory-check: exit %d: %s", rc, e ? e : "");
	iapo_free(e);
	rc = run(a2, "lots", err, NULL);
	e = slurp(err);
	CHECK(rc == 2 && e && strstr(e, "IAPO_MEMORY_LIMIT: expected bytes"), "bad IAPO_MEMORY_LIMIT: exit %d: %s", rc,
	      e ? e : "");
	iapo_free(e);
	const char *g2[] = {"generate", "--model", m2, "--prompt", "hi", "-n", "64", "--max-tokens", "1000", NULL};
	rc = run(g2, "20M", err, NULL);
	e = slurp(err);
	CHECK(rc == 1 && e && strstr(e, "iapo generate: not enough memory for this generation") &&
		      strstr(e, "lower -n, --max-tokens"),
	      "generate refused: exit %d: %s", rc, e ? e : "");
	iapo_free(e);
	const char *i2[] = {"info", "--model", m2, "--prompt", "hi", NULL};
	rc = run(i2, "20M", err, NULL);
	e = slurp(err);
	CHECK(rc == 1 && e && strstr(e, "iapo info: not enough memory"), "info refused: exit %d: %s", rc, e ? e : "");
	iapo_free(e);
	const char *v2[] = {"eval", "--model", m2, "--data", data, "--out", out, NULL};
	rc = run(v2, "20M", err, NULL);
	e = slurp(err);
	CHECK(rc == 1 && e && strstr(e, "iapo eval: not enough memory for this evaluation"), "eval refused: exit %d: %s", rc,
	      e ? e : "");
	iapo_free(e);
}

int main(void)
{
	snprintf(root, sizeof root, "%s/memory-test", test_env("IAPO_TMP", "/tmp"));
	bin = test_env("IAPO_BIN", "build/iapo");
	iapo_fs_remove_all(root);
	iapo_fs_mkdir_p(root);
	RUN(test_parsers);
	RUN(test_available);
	RUN(test_fwd_formula);
	RUN(test_packs_formula);
	RUN(test_check);
	RUN(test_commands);
	iapo_fs_remove_all(root);
	TEST_END();
}
