/*
 * cmd_eval.c — `iapo eval`: pass@k, length@k, token efficiency and time of a
 * model directory, or of every checkpoint-N/ of a run directory (in order of
 * N), on a JSONL dataset with the reference's prompt. Results go to PREFIX.csv
 * and PREFIX.json (rewritten after each model, so an interrupted evaluation
 * keeps what it finished) and a table on stdout; progress on stderr.
 * The metrics themselves are src/eval/eval.c. Under mpirun the problems are
 * shared out over the ranks (the same numbers as one process); rank 0 alone
 * prints and writes the files.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "core/mem.h"
#include "core/status.h"
#include "dist/dist.h"
#include "eval/eval.h"
#include "io/fs.h"
#include "io/json.h"
#include "model/weights.h"
#include "rl/dataset.h"
#include "rl/memory.h"
#include "tokenizer/tokenizer.h"

#define CMD "eval"

static void help(void)
{
	printf("usage: iapo eval --model DIR|RUN_DIR --data FILE [options]\n"
	       "\n"
	       "Samples -n completions of every problem with the reference's prompt (its R1\n"
	       "system prompt and one-shot turn, in the model's chat template), judges each\n"
	       "with the answer verifier (correctness only) and reports pass@k, length@k (mean\n"
	       "tokens of the first k samples, EOS included), token efficiency\n"
	       "(pass@kmax / length@kmax) and time. A RUN_DIR (a directory holding checkpoint-N/\n"
	       "subdirectories) has every checkpoint evaluated, in order of N.\n"
	       "\n"
	       "options:\n"
	       "  --model DIR           model directory, or run directory (required)\n"
	       "  --data FILE           JSONL dataset: GSM8K, MATH, DAPO or generic {prompt, answer} (required)\n"
	       "  --format F            gsm8k, math, dapo or generic (default: from the first row);\n"
	       "                        also picks the system prompt's task line\n"
	       "  --prompt-field NAME   dataset field holding the problem (default: the format's)\n"
	       "  --answer-field NAME   dataset field holding the answer (default: the format's)\n"
	       "  -n N                  samples per problem (default 32)\n"
	       "  -k LIST               comma-separated k values, each <= n (default 1,2,4,... up to n)\n"
	       "  --passk KIND          unbiased: 1 - C(n-c,k)/C(n,k) (default); first: the reference's\n"
	       "                        \"any correct among the first k samples\"\n"
	       "  --max-tokens N        new tokens per completion at most (default 1024)\n"
	       "  --max-model-len N     cap prompt + completion at N tokens, as the reference's vLLM\n"
	       "                        max_model_len=768 did (default 0 = no cap)\n"
	       "  --temperature F       0 = greedy (default 1.0)\n"
	       "  --top-p F             nucleus sampling mass in (0, 1] (default 1.0 = off)\n"
	       "  --top-k N             keep the N most likely tokens, 0 = off (default 0)\n"
	       "  --seed N              sample j of problem p uses the stream (seed, p, j) (default 42)\n"
	       "  --limit N             only the first N problems (default 0 = all; the reference's\n"
	       "                        reported numbers used 15)\n"
	       "  --batch N             sequences per generation call (default 32); results do not\n"
	       "                        depend on it\n"
	       "  --threads N           OpenMP/BLAS threads, 0 = all cores (default 0)\n"
	       "  --no-memory-check     skip the memory estimate made before loading each model (a\n"
	       "                        model that would not fit MemAvailable or the cgroup limit is refused)\n"
	       "  --system TEXT         system prompt (default: the reference's R1 prompt + task line)\n"
	       "  --no-one-shot         leave out the \"What is 2+2?\" one-shot turn\n"
	       "  --out PREFIX          write PREFIX.csv and PREFIX.json (default: DIR/eval_results)\n"
	       "  -h, --help            this help\n"
	       "\n"
	       "mpirun -np N iapo eval ... shares the problems out over N processes; the\n"
	       "results are those of one process.\n"
	       "\n"
	       "output: a table on stdout (one row per model or checkpoint: pass@k for each k,\n"
	       "length@kmax, token efficiency, accuracy, seconds); progress on stderr. PREFIX.csv\n"
	       "has one row per model with every metric; PREFIX.json adds the options and\n"
	       "per-problem counts. Both are rewritten after each model.\n");
}

typedef struct {
	char *dir;
	long step; /* N of checkpoint-N, -1 for a plain model directory */
	iapo_eval_result r;
	int done;
} model_entry;

static int cmp_step(const void *a, const void *b)
{
	long x = ((const model_entry *)a)->step, y = ((const model_entry *)b)->step;
	return (x > y) - (x < y);
}

/* N when name is "checkpoint-N" (digits only), else -1. */
static long checkpoint_step(const char *name)
{
	static const char pre[] = "checkpoint-";
	if (strncmp(name, pre, sizeof pre - 1)) return -1;
	const char *d = name + sizeof pre - 1;
	if (!*d || strlen(d) > 15) return -1;
	for (const char *p = d; *p; p++)
		if (*p < '0' || *p > '9') return -1;
	return strtol(d, NULL, 10);
}

/* The models to evaluate: dir's checkpoint-N/ subdirectories sorted by N, or
 * dir itself when it has none. *out is iapo_malloc'd. */
static int find_models(const char *dir, model_entry **out)
{
	int n = 0, cap = 8;
	model_entry *m = iapo_calloc((size_t)cap, sizeof *m);
	if (!m) cli_fail(CMD, IAPO_ERR_NOMEM);
	DIR *d = opendir(dir);
	if (d) {
		struct dirent *e;
		while ((e = readdir(d))) {
			long step = checkpoint_step(e->d_name);
			char path[4096];
			if (step < 0 || iapo_fs_join(path, sizeof path, dir, e->d_name) != IAPO_OK || !iapo_fs_is_dir(path))
				continue;
			if (n == cap) {
				model_entry *q = iapo_realloc(m, sizeof *m * (size_t)cap * 2);
				if (!q) cli_fail(CMD, IAPO_ERR_NOMEM);
				m = q;
				memset(m + cap, 0, sizeof *m * (size_t)cap);
				cap *= 2;
			}
			m[n].dir = iapo_strdup(path);
			if (!m[n].dir) cli_fail(CMD, IAPO_ERR_NOMEM);
			m[n++].step = step;
		}
		closedir(d);
	}
	if (n == 0) {
		m[0].dir = iapo_strdup(dir);
		if (!m[0].dir) cli_fail(CMD, IAPO_ERR_NOMEM);
		m[0].step = -1;
		n = 1;
	}
	qsort(m, (size_t)n, sizeof *m, cmp_step);
	*out = m;
	return n;
}

static int parse_ks(const char *s, int *ks)
{
	int n = 0;
	const char *p = s;
	while (*p) {
		char *end;
		long v = strtol(p, &end, 10);
		if (end == p || v < 1 || v > 1 << 20 || (*end && *end != ',') || n == IAPO_EVAL_MAX_KS)
			cli_usage_error(CMD, "-k: expected up to %d comma-separated integers >= 1, found '%s'", IAPO_EVAL_MAX_KS, s);
		ks[n++] = (int)v;
		p = *end ? end + 1 : end;
		if (*end && !*p) cli_usage_error(CMD, "-k: expected a number after the last ',', found '%s'", s);
	}
	if (n == 0) cli_usage_error(CMD, "-k: expected at least one value");
	return n;
}

static const char *model_name(const model_entry *m)
{
	if (m->step < 0) return m->dir;
	const char *s = strrchr(m->dir, '/');
	return s ? s + 1 : m->dir;
}

typedef struct {
	const char *name;
	double t0;
	int tty;
} progress_ctx;

static void on_progress(void *ctx, long done, long total)
{
	progress_ctx *p = ctx;
	if (!p->tty) return;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	double t = (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec - p->t0;
	double eta = done > 0 ? t * (double)(total - done) / (double)done : 0;
	fprintf(stderr, "\r\033[Kiapo eval: %s: %ld/%ld completions, %.1f s, eta %.0f s", p->name, done, total, t, eta);
	fflush(stderr);
}

static void write_csv(const char *path, const model_entry *m, int n)
{
	size_t cap = 4096, len = 0;
	char *buf = iapo_malloc(cap);
	if (!buf) cli_fail(CMD, IAPO_ERR_NOMEM);
#define OUT(...)                                                                     \
	do {                                                                         \
		int k_;                                                              \
		while ((k_ = snprintf(buf + len, cap - len, __VA_ARGS__)) >= 0 &&    \
		       (size_t)k_ >= cap - len) {                                    \
			cap *= 2;                                                    \
			char *q_ = iapo_realloc(buf, cap);                           \
			if (!q_) cli_fail(CMD, IAPO_ERR_NOMEM);                      \
			buf = q_;                                                    \
		}                                                                    \
		len += (size_t)k_;                                                   \
	} while (0)
	const iapo_eval_result *r0 = NULL;
	for (int i = 0; i < n && !r0; i++)
		if (m[i].done) r0 = &m[i].r;
	OUT("model,step,n_problems,n_samples,passk");
	for (int i = 0; r0 && i < r0->n_ks; i++) OUT(",pass@%d", r0->ks[i]);
	for (int i = 0; r0 && i < r0->n_ks; i++) OUT(",length@%d", r0->ks[i]);
	OUT(",token_efficiency,accuracy,format_rate,truncated_rate,mean_prompt_tokens,generated_tokens,seconds,"
	    "time_per_problem\n");
	for (int j = 0; j < n; j++) {
		if (!m[j].done) continue;
		const iapo_eval_result *r = &m[j].r;
		/* a path with a comma or quote is quoted, CSV style */
		if (strpbrk(m[j].dir, ",\"\n")) {
			OUT("\"");
			for (const char *p = m[j].dir; *p; p++) OUT("%.*s", *p == '"' ? 2 : 1, *p == '"' ? "\"\"" : p);
			OUT("\"");
		} else {
			OUT("%s", m[j].dir);
		}
		if (m[j].step >= 0)
			OUT(",%ld", m[j].step);
		else
			OUT(",");
		OUT(",%d,%d,%s", r->n_problems, r->n_samples, r->passk_first ? "first" : "unbiased");
		for (int i = 0; i < r->n_ks; i++) OUT(",%.17g", r->pass_at_k[i]);
		for (int i = 0; i < r->n_ks; i++) OUT(",%.17g", r->length_at_k[i]);
		OUT(",%.17g,%.17g,%.17g,%.17g,%.17g,%ld,%.6f,%.6f\n", r->token_efficiency, r->accuracy, r->format_rate,
		    r->truncated_rate, r->mean_prompt_tokens, r->generated_tokens, r->seconds, r->time_per_problem);
	}
#undef OUT
	iapo_status st = iapo_fs_write_file_atomic(path, buf, len);
	iapo_free(buf);
	if (st != IAPO_OK) cli_fail(CMD, st);
}

static void write_json(const char *path, const cJSON *options, const model_entry *m, int n)
{
	cJSON *root = cJSON_CreateObject(), *res;
	if (!root || !cJSON_AddItemToObject(root, "options", cJSON_Duplicate(options, 1)) ||
	    !(res = cJSON_AddArrayToObject(root, "results")))
		cli_fail(CMD, IAPO_ERR_NOMEM);
	for (int j = 0; j < n; j++) {
		if (!m[j].done) continue;
		cJSON *e = iapo_eval_result_json(&m[j].r, 1), *row = cJSON_CreateObject();
		if (!e || !row || !cJSON_AddItemToArray(res, row) || !cJSON_AddStringToObject(row, "model", m[j].dir) ||
		    !(m[j].step >= 0 ? cJSON_AddNumberToObject(row, "step", (double)m[j].step) : cJSON_AddNullToObject(row, "step")))
			cli_fail(CMD, IAPO_ERR_NOMEM);
		/* the result's fields after model and step */
		while (e->child) {
			cJSON *c = cJSON_DetachItemViaPointer(e, e->child);
			char *key = c->string;
			c->string = NULL;
			int ok = cJSON_AddItemToObject(row, key, c);
			cJSON_free(key);
			if (!ok) cli_fail(CMD, IAPO_ERR_NOMEM);
		}
		cJSON_Delete(e);
	}
	char *s = cJSON_Print(root);
	cJSON_Delete(root);
	if (!s) cli_fail(CMD, IAPO_ERR_NOMEM);
	size_t len = strlen(s);
	char *t = iapo_malloc(len + 2);
	if (!t) cli_fail(CMD, IAPO_ERR_NOMEM);
	memcpy(t, s, len);
	t[len] = '\n';
	cJSON_free(s);
	iapo_status st = iapo_fs_write_file_atomic(path, t, len + 1);
	iapo_free(t);
	if (st != IAPO_OK) cli_fail(CMD, st);
}

static void print_table(const model_entry *m, int n)
{
	int w = 10;
	for (int j = 0; j < n; j++) {
		int l = (int)strlen(model_name(&m[j]));
		if (l > w) w = l;
	}
	if (w > 60) w = 60;
	const iapo_eval_result *r0 = &m[0].r;
	int kmax = 0;
	for (int i = 1; i < r0->n_ks; i++)
		if (r0->ks[i] > r0->ks[kmax]) kmax = i;
	printf("%-*s", w, "model");
	for (int i = 0; i < r0->n_ks; i++) {
		char h[24];
		snprintf(h, sizeof h, "pass@%d", r0->ks[i]);
		printf("  %8s", h);
	}
	char lh[24];
	snprintf(lh, sizeof lh, "len@%d", r0->ks[kmax]);
	printf("  %9s  %9s  %8s  %9s\n", lh, "tok_eff", "accuracy", "seconds");
	for (int j = 0; j < n; j++) {
		const iapo_eval_result *r = &m[j].r;
		printf("%-*.*s", w, w, model_name(&m[j]));
		for (int i = 0; i < r->n_ks; i++) printf("  %8.4f", r->pass_at_k[i]);
		printf("  %9.1f  %9.6f  %8.4f  %9.1f\n", r->length_at_k[kmax], r->token_efficiency, r->accuracy, r->seconds);
	}
	fflush(stdout);
}

int cmd_eval(int argc, char **argv)
{
	const char *model = NULL, *data = NULL, *out = NULL, *system = NULL, *passk = "unbiased";
	iapo_dataset_opts dopts = {0};
	iapo_eval_opts o;
	iapo_eval_opts_default(&o);
	int ks[IAPO_EVAL_MAX_KS], n_ks = 0, threads = 0;
	const int no_mem_check = iapo_mem_take_flag(&argc, argv);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (cli_is_help(a)) {
			help();
			return 0;
		} else if (!strcmp(a, "--model")) {
			model = cli_value(CMD, argc, argv, &i);
		} else if (!strcmp(a, "--data")) {
			data = cli_value(CMD, argc, argv, &i);
		} else if (!strcmp(a, "--format")) {
			const char *v = cli_value(CMD, argc, argv, &i);
			if (iapo_data_format_parse(v, &dopts.format) != IAPO_OK)
				cli_usage_error(CMD, "--format: expected gsm8k, math, dapo or generic, found '%s'", v);
		} else if (!strcmp(a, "--prompt-field")) {
			dopts.prompt_field = cli_value(CMD, argc, argv, &i);
		} else if (!strcmp(a, "--answer-field")) {
			dopts.answer_field = cli_value(CMD, argc, argv, &i);
		} else if (!strcmp(a, "-n")) {
			o.n_samples = cli_int(CMD, a, cli_value(CMD, argc, argv, &i), 1, 1 << 16);
		} else if (!strcmp(a, "-k")) {
			n_ks = parse_ks(cli_value(CMD, argc, argv, &i), ks);
		} else if (!strcmp(a, "--passk")) {
			passk = cli_value(CMD, argc, argv, &i);
			if (strcmp(passk, "unbiased") && strcmp(passk, "first"))
				cli_usage_error(CMD, "--passk: expected unbiased or first, found '%s'", passk);
		} else if (!strcmp(a, "--max-tokens")) {
			o.max_new_tokens = cli_int(CMD, a, cli_value(CMD, argc, argv, &i), 0, 1 << 20);
		} else if (!strcmp(a, "--max-model-len")) {
			o.max_model_len = cli_int(CMD, a, cli_value(CMD, argc, argv, &i), 0, 1 << 24);
		} else if (!strcmp(a, "--temperature")) {
			o.temperature = (float)cli_float(CMD, a, cli_value(CMD, argc, argv, &i), 0, 1e6);
		} else if (!strcmp(a, "--top-p")) {
			o.top_p = (float)cli_float(CMD, a, cli_value(CMD, argc, argv, &i), 1e-9, 1);
		} else if (!strcmp(a, "--top-k")) {
			o.top_k = cli_int(CMD, a, cli_value(CMD, argc, argv, &i), 0, 1 << 30);
		} else if (!strcmp(a, "--seed")) {
			o.seed = cli_seed(CMD, cli_value(CMD, argc, argv, &i));
		} else if (!strcmp(a, "--limit")) {
			o.limit = (size_t)cli_int(CMD, a, cli_value(CMD, argc, argv, &i), 0, 1 << 30);
		} else if (!strcmp(a, "--batch")) {
			o.batch = cli_int(CMD, a, cli_value(CMD, argc, argv, &i), 1, 1 << 16);
		} else if (!strcmp(a, "--threads")) {
			threads = cli_int(CMD, a, cli_value(CMD, argc, argv, &i), 0, 4096);
		} else if (!strcmp(a, "--system")) {
			system = cli_value(CMD, argc, argv, &i);
		} else if (!strcmp(a, "--no-one-shot")) {
			o.one_shot = 0;
		} else if (!strcmp(a, "--out")) {
			out = cli_value(CMD, argc, argv, &i);
			if (!*out) cli_usage_error(CMD, "--out: expected a path prefix, found an empty string");
		} else {
			cli_usage_error(CMD, "unknown option '%s'", a);
		}
	}
	if (!model) cli_usage_error(CMD, "--model DIR is required");
	if (!data) cli_usage_error(CMD, "--data FILE is required");
	if (n_ks) {
		for (int i = 0; i < n_ks; i++)
			if (ks[i] > o.n_samples)
				cli_usage_error(CMD, "-k: k = %d is larger than -n %d (each k needs k samples)", ks[i], o.n_samples);
		o.ks = ks;
		o.n_ks = n_ks;
	} else {
		o.ks = NULL; /* powers of two up to n */
	}
	o.passk_first = !strcmp(passk, "first");
	o.system = system;
	if (threads > 0) iapo_set_threads(threads);
	/* After the options: a usage error is every rank's, said by each before
	 * any of them joined the job. */
	iapo_status st = iapo_dist_init();
	if (st != IAPO_OK) cli_fail(CMD, st);
	const int talk = iapo_dist_rank() == 0;

	iapo_dataset ds;
	st = iapo_dist_agree(iapo_dataset_load(data, &dopts, &ds));
	if (st != IAPO_OK) cli_fail(CMD, st);
	if (!iapo_fs_is_dir(model))
		st = iapo_fail(IAPO_ERR_IO, "%s: expected a model or run directory, found %s", model,
			       iapo_fs_exists(model) ? "a file" : "nothing");
	if ((st = iapo_dist_agree(st)) != IAPO_OK) cli_fail(CMD, st);
	model_entry *m = NULL;
	int n = find_models(model, &m);

	char prefix[4096], csv[4200], json[4200];
	if (out)
		snprintf(prefix, sizeof prefix, "%s", out);
	else if (iapo_fs_join(prefix, sizeof prefix, model, "eval_results") != IAPO_OK)
		cli_fail(CMD, IAPO_ERR_ARG);
	snprintf(csv, sizeof csv, "%s.csv", prefix);
	snprintf(json, sizeof json, "%s.json", prefix);

	iapo_json_init();
	cJSON *opts = cJSON_CreateObject();
	if (!opts) cli_fail(CMD, IAPO_ERR_NOMEM);
	cJSON_AddStringToObject(opts, "model", model);
	cJSON_AddStringToObject(opts, "data", data);
	cJSON_AddStringToObject(opts, "format", iapo_data_format_name(ds.format));
	cJSON_AddNumberToObject(opts, "n_samples", o.n_samples);
	cJSON_AddStringToObject(opts, "passk", passk);
	cJSON_AddNumberToObject(opts, "max_tokens", o.max_new_tokens);
	cJSON_AddNumberToObject(opts, "max_model_len", o.max_model_len);
	cJSON_AddItemToObject(opts, "temperature", iapo_json_float(o.temperature));
	cJSON_AddItemToObject(opts, "top_p", iapo_json_float(o.top_p));
	cJSON_AddNumberToObject(opts, "top_k", o.top_k);
	cJSON_AddNumberToObject(opts, "seed", (double)o.seed);
	cJSON_AddNumberToObject(opts, "limit", (double)o.limit);
	cJSON_AddNumberToObject(opts, "problems_in_data", (double)ds.n);
	if (system)
		cJSON_AddStringToObject(opts, "system", system);
	else
		cJSON_AddNullToObject(opts, "system");
	cJSON_AddBoolToObject(opts, "one_shot", o.one_shot);

	int tty = talk && isatty(2);
	if (talk)
		fprintf(stderr, "iapo eval: %d model%s, %zu problems x %d samples from %s%s\n", n, n > 1 ? "s" : "",
			o.limit && o.limit < ds.n ? o.limit : ds.n, o.n_samples, data,
			iapo_dist_size() > 1 ? " (shared out over the MPI ranks)" : "");
	/* The memory check's sequence length before anything is tokenised: about
	 * a token per 2 bytes of the longest problem and the system prompt (BPE
	 * averages 3-4 on English), 512 for the template and one-shot example. */
	double longest = 0;
	for (size_t i = 0; i < ds.n; i++)
		if ((double)strlen(ds.ex[i].prompt) > longest) longest = (double)strlen(ds.ex[i].prompt);
	longest = (longest + (system ? (double)strlen(system) : 0)) / 2 + 512 + o.max_new_tokens;
	if (o.max_model_len > 0 && longest > o.max_model_len) longest = o.max_model_len;
	double seqs = (double)(o.limit && o.limit < ds.n ? o.limit : ds.n) * o.n_samples;
	if (o.batch > 0 && seqs > o.batch) seqs = o.batch;
	for (int j = 0; j < n; j++) {
		iapo_weights w;
		iapo_tokenizer *tok = NULL;
		if (!no_mem_check) {
			iapo_mem_plan plan;
			iapo_mem_plan_init(&plan);
			st = iapo_mem_plan_generate(&plan, m[j].dir, seqs < 1 ? 1 : (int)seqs,
						    longest > 1 << 30 ? 1 << 30 : (int)longest, threads,
						    "--batch, --max-tokens", 1);
			if ((st = iapo_dist_agree(iapo_mem_guard(st, &plan, "this evaluation"))) != IAPO_OK) cli_fail(CMD, st);
		}
		if ((st = iapo_dist_agree(iapo_weights_load(m[j].dir, &w))) != IAPO_OK) cli_fail(CMD, st);
		if ((st = iapo_dist_agree(iapo_tokenizer_load(m[j].dir, &tok))) != IAPO_OK) cli_fail(CMD, st);
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		progress_ctx pc = {model_name(&m[j]), (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec, tty};
		o.progress = on_progress;
		o.progress_ctx = &pc;
		st = iapo_evaluate(&w, tok, &ds, &o, &m[j].r);
		if (tty) fprintf(stderr, "\r\033[K");
		if (st != IAPO_OK) cli_fail(CMD, st);
		m[j].done = 1;
		iapo_tokenizer_free(tok);
		iapo_weights_free(&w);
		if (!talk) continue;
		fprintf(stderr, "iapo eval: %s: accuracy %.4f, %.1f s (%.2f s per problem), %ld tokens generated\n",
			model_name(&m[j]), m[j].r.accuracy, m[j].r.seconds, m[j].r.time_per_problem, m[j].r.generated_tokens);
		write_csv(csv, m, n);
		write_json(json, opts, m, n);
	}
	if (talk) {
		print_table(m, n);
		fprintf(stderr, "iapo eval: wrote %s and %s\n", csv, json);
	}

	cJSON_Delete(opts);
	for (int j = 0; j < n; j++) {
		iapo_free(m[j].dir);
		iapo_eval_result_free(&m[j].r);
	}
	iapo_free(m);
	iapo_dataset_free(&ds);
	return 0;
}
