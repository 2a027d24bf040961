/*
 * memory.c — memory estimates and the check against what is available (see
 * memory.h). The sizes mirror the allocations of transformer.c (carve),
 * kvcache.c (iapo_kv_new), generate.c, info.c (iapo_info_new) and trainer.c
 * (allocate); when one of those changes, tests/test_memory.c's comparison
 * with iapo_fwd_bytes and with measured peaks says so.
 * The process base and the tokenizer's factors were measured (ru_maxrss):
 * a tiny model's `iapo generate` peaks at 6.5 MB, its `iapo train` at 15 MB
 * (MPI's initialisation); the Qwen3 tokenizer.json (11.4 MB) adds ~60 MB
 * while it parses, of which about a third stays.
 */
#include "rl/memory.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/mem.h"
#include "core/status.h"
#include "dist/dist.h"
#include "io/fs.h"
#include "model/weights.h"
#include "rl/algo.h"
#include "rl/info.h"

#define MiB (1024.0 * 1024.0)
#define FWD_CHUNK_FLOATS (1u << 26) /* transformer.c's CHUNK_FLOATS */
#define KV_RMAX 512                 /* kvcache.c's RMAX_CAP */
#define KV_OUTG 64                  /* kvcache.c's OUTG_CAP */
#define KV_ROW_BYTES 48             /* an iapo_kv_row and its bookkeeping */
#define PACK_NR 32                  /* gemm.c's NR: columns per panel of a weight pack */
#define INFO_BUDGET (256.0 * MiB)   /* info.c's DEFAULT_BUDGET */
#define INFO_ROWS 512               /* info.c's ROWS_TARGET and PREFILL_ROWS */
#define POSTFIX_TOKENS 8            /* a typical --postfix ("</think>\n<answer>") before tokenising */
#define BASE_BYTES (6.0 * MiB)      /* libc, OpenBLAS, OpenMP, our code */
#define BASE_MPI_BYTES (6.0 * MiB)  /* MPI's initialisation (train) */
#define THREAD_BYTES (1.0 * MiB)    /* per thread: stack, GEMM packing buffers */
#define TOK_KEEP 2.0                /* tokenizer bytes kept, per byte of tokenizer.json */
#define TOK_PARSE 4.0               /* and held only while it parses */

void iapo_mem_plan_init(iapo_mem_plan *p)
{
	memset(p, 0, sizeof *p);
	p->processes = 1;
}

static void retotal(iapo_mem_plan *p)
{
	double t = 0;
	for (int i = 0; i < p->n; i++) t += p->item[i].bytes;
	p->total = t * (p->processes > 0 ? p->processes : 1);
}

void iapo_mem_add(iapo_mem_plan *p, const char *what, const char *lower, double bytes)
{
	if (bytes <= 0) return;
	for (int i = 0; i < p->n; i++)
		if (!strcmp(p->item[i].what, what)) {
			p->item[i].bytes += bytes;
			retotal(p);
			return;
		}
	if (p->n == IAPO_MEM_MAX_ITEMS) {
		p->item[p->n - 1].bytes += bytes; /* never reached by the plans here */
	} else {
		p->item[p->n].what = what;
		p->item[p->n].lower = lower;
		p->item[p->n].bytes = bytes;
		p->n++;
	}
	retotal(p);
}

/* ---- building blocks ---- */

double iapo_mem_weights(const iapo_config *c) { return 4.0 * (double)iapo_param_count(c); }

static double pad16(double floats) { return (double)(((size_t)floats + 15) & ~(size_t)15); }

double iapo_mem_fwd(const iapo_config *c, int B, int T, int with_backward)
{
	const double N = (double)B * T, C = c->C, F = c->F, NH = c->NH, NKV = c->NKV, HD = c->HD;
	const double Q = NH * HD, KV = NKV * HD;
	const double S = with_backward ? c->L : 1, R = with_backward ? c->L + 1 : 1;
	const double qk = c->qk_norm ? 1 : 0, bw = with_backward ? 1 : 0;
	double ch = (double)(FWD_CHUNK_FLOATS / (unsigned)c->V);
	if (ch < 16) ch = 16;
	if (ch > N) ch = N;
	const double t[] = {
		HD / 2, N * HD, R * N * C, S * N * C, S * N * C, S * N * C, S * N, S * N,
		qk * S * N * Q, qk * S * N * KV, qk * S * N * NH, qk * S * N * NKV,
		S * N * Q, S * N * KV, S * N * KV, S * N * Q, S * N * NH,
		S * N * F, S * N * F, N * F, N * C, N, ch * c->V, N, N,
		bw * N * C, bw * N * C, bw * N * Q, bw * N * KV, bw * N * KV,
		bw * N * Q, bw * N * Q, bw * N * Q, bw * N * F, bw * N * F, bw * N * F, bw * N, bw * N,
	};
	double floats = 0;
	for (size_t i = 0; i < sizeof t / sizeof *t; i++) floats += pad16(t[i]);
	return 4.0 * floats + 4.0 * (2.0 * B + 4.0 * N);
}

/* A cache's chunk scratch without the RoPE table: part of what
 * iapo_kv_new allocates, and all of what a twin of the cache does. */
double iapo_mem_kv_half(const iapo_config *c, int B, int Tmax)
{
	const double C = c->C, Q = (double)c->NH * c->HD, KV = (double)c->NKV * c->HD, F = c->F;
	double R = (double)B * Tmax;
	if (R > KV_RMAX) R = KV_RMAX;
	const double G = R < KV_OUTG ? R : KV_OUTG;
	const double scratch = R * c->HD + 2 * R * C + 3 * R * Q + 3 * R * KV + 3 * R * F + G * C + G * c->V;
	return 4.0 * scratch + R * KV_ROW_BYTES + 4.0 * B;
}

double iapo_mem_kv(const iapo_config *c, int B, int Tmax)
{
	const double cache = 2.0 * c->L * B * (double)Tmax * c->NKV * c->HD;
	/* the RoPE table of positions [0, Tmax + 64), then the chunk scratch */
	const double rope = ((double)Tmax + 64) * c->HD;
	return 4.0 * (cache + rope) + iapo_mem_kv_half(c, B, Tmax);
}

double iapo_mem_kv_bf16(const iapo_config *c, int B, int Tmax)
{
	if (c->HD % 16) return 0; /* kvcache.c attends in fp32 then */
	return 2.0 * 2.0 * c->L * B * (double)Tmax * c->NKV * c->HD;
}

double iapo_mem_generate(const iapo_config *c, int B, int Tmax, int threads)
{
	if (threads < 1) threads = 1;
	return iapo_mem_kv(c, B, Tmax) + 4.0 * B * c->V + 8.0 * c->V * threads + 16.0 * B * Tmax;
}

double iapo_mem_bf16_weights(const iapo_config *c)
{
	/* kvcache.c's bf16_tensor: every matrix and the head (the embedding
	 * when tied); norms and biases (a few per mille) counted too */
	double n = (double)iapo_param_count(c);
	if (!c->tie_embeddings) n -= (double)c->V * c->C; /* the input embedding is only looked up */
	return 2.0 * n;
}

double iapo_mem_packs(const iapo_config *c, int bf16)
{
	static const int mats[] = {IAPO_P_WQ, IAPO_P_WK, IAPO_P_WV, IAPO_P_WO, IAPO_P_WGATE, IAPO_P_WUP, IAPO_P_WDOWN};
	/* (a layer's gate and up are one pair, iapo_gemm_wpack_create_pair:
	 * one allocation of the same panels as two packs) */
	double panels = 0; /* 4-byte elements: a float, or a bf16 K-pair */
	for (int i = 0; i <= (int)(sizeof mats / sizeof *mats); i++) {
		int64_t NK[2] = {0, 0}; /* (N, K) as x W^T multiplies; the head has the embedding's */
		const int last = i == (int)(sizeof mats / sizeof *mats);
		if (!iapo_param_shape(c, last ? IAPO_P_EMBED : mats[i], NK)) continue;
		const double npan = (double)((NK[0] + PACK_NR - 1) / PACK_NR), k = bf16 ? (double)((NK[1] + 1) / 2) : (double)NK[1];
		panels += npan * PACK_NR * k * (last ? 1 : c->L);
	}
	return 4.0 * panels;
}

double iapo_mem_info(const iapo_config *c, int Bmax, int Tmax, int n_postfix, int answer_tokens, int chunk,
		     int own_cache, int attn_bf16, int threads)
{
	const int answer = n_postfix > 0;
	const double K = answer ? n_postfix : 0, Na = answer ? (answer_tokens > 0 ? answer_tokens : 1) : 1;
	const double W = answer ? K + Na - 1 : 0;
	const double kv_row = 8.0 * c->L * c->NKV * c->HD, V4 = 4.0 * c->V;
	const double positions = (double)Bmax * (Tmax + 1);
	double ch = 0;
	if (answer) {
		ch = chunk;
		if (ch <= 0) {
			double per = W * kv_row + V4 + K * KV_ROW_BYTES + 16;
			ch = (double)(long)(INFO_BUDGET / per);
			double cap = INFO_ROWS / K > 1 ? (double)(long)(INFO_ROWS / K) : 1;
			if (ch > cap) ch = cap;
			if (ch < 1) ch = 1;
		}
		if (ch > positions) ch = positions;
	}
	const double Tkv = answer && W > Tmax ? W : Tmax;
	const double per_slot = answer ? (double)(long)(Tkv / W) : 1;
	const double nscratch = answer ? (double)(long)((ch + per_slot - 1) / per_slot) : 0;
	double pre = (double)(long)(INFO_BUDGET / V4);
	if (pre > INFO_ROWS) pre = INFO_ROWS;
	if (pre < 1) pre = 1;
	const double nlog = ch > pre ? ch : pre;
	const double nrows = ch * K > INFO_ROWS ? ch * K : INFO_ROWS;
	const int slots = Bmax + (int)nscratch;
	const double kv = own_cache ? iapo_mem_kv(c, slots, (int)Tkv) + (attn_bf16 ? iapo_mem_kv_bf16(c, slots, (int)Tkv) : 0)
				    : 0;
	/* on 2 threads or more a chunk runs its halves side by side, the
	 * second in a twin's scratch of the cache the pass works in: in its own
	 * cache when a chunk spans two scratch slots, in the rollout's (two
	 * scratch slots at least, one half in each) at any length. Counted at
	 * its own cache's size (the rollout's has as many rows at any real
	 * size: both cap at KV_RMAX). */
	const double twin = answer && threads > 1 && (ch > per_slot || !own_cache) ? iapo_mem_kv_half(c, slots, (int)Tkv) : 0;
	return kv + twin + nrows * KV_ROW_BYTES + nlog * (V4 + 12.0) + 4.0 * ch;
}

double iapo_mem_dir_bytes(const char *dir, const char *suffix)
{
	DIR *d = opendir(dir);
	if (!d) return 0;
	int fd = dirfd(d);
	double sum = 0;
	const size_t ls = strlen(suffix);
	struct dirent *e;
	while ((e = readdir(d))) {
		size_t n = strlen(e->d_name);
		if (n < ls || strcmp(e->d_name + n - ls, suffix)) continue;
		struct stat st;
		if (fstatat(fd, e->d_name, &st, 0) == 0 && S_ISREG(st.st_mode)) sum += (double)st.st_size;
	}
	closedir(d);
	return sum;
}

/* ---- whole commands ---- */

static int threads_of(long opt)
{
	if (opt > 0) return (int)opt;
	const char *env = getenv("OMP_NUM_THREADS");
	if (env && atoi(env) > 0) return atoi(env);
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (int)n : 1;
}

/* The parameter block, the process base, and what only loading holds (the
 * mapped shards, the tokenizer's parse) as *load_extra. */
static iapo_status plan_model(iapo_mem_plan *p, const char *model_dir, iapo_config *cfg, int threads,
			      double *load_extra)
{
	char path[4096];
	/* iapo sft starts a fresh model from a config.json file: no weights to map */
	const int fresh = iapo_fs_exists(model_dir) && !iapo_fs_is_dir(model_dir);
	if (fresh) {
		IAPO_TRY(iapo_config_load(model_dir, cfg));
		iapo_mem_add(p, "model parameters", NULL, iapo_mem_weights(cfg));
		iapo_mem_add(p, "libraries and threads", NULL, BASE_BYTES + THREAD_BYTES * threads);
		*load_extra = 0;
		return IAPO_OK;
	}
	IAPO_TRY(iapo_fs_join(path, sizeof path, model_dir, "config.json"));
	IAPO_TRY(iapo_config_load(path, cfg));
	iapo_mem_add(p, "model parameters", NULL, iapo_mem_weights(cfg));
	double tok = 0;
	if (iapo_fs_join(path, sizeof path, model_dir, "tokenizer.json") == IAPO_OK) {
		struct stat st;
		if (stat(path, &st) == 0) tok = (double)st.st_size;
	}
	iapo_mem_add(p, "tokenizer", NULL, TOK_KEEP * tok);
	iapo_mem_add(p, "libraries and threads", NULL, BASE_BYTES + THREAD_BYTES * threads);
	*load_extra = iapo_mem_dir_bytes(model_dir, ".safetensors") + TOK_PARSE * tok;
	return IAPO_OK;
}

/* Loading's transient bytes count only when they exceed what the run
 * allocates after loading (`run`): the two never coexist. */
static void add_load(iapo_mem_plan *p, double load_extra, double run)
{
	if (load_extra > run) iapo_mem_add(p, "loading (mapped weights, tokenizer parse)", NULL, load_extra - run);
}

iapo_status iapo_mem_plan_model(iapo_mem_plan *p, const char *model_dir, iapo_config *cfg)
{
	iapo_config c;
	double load;
	IAPO_TRY(plan_model(p, model_dir, cfg ? cfg : &c, threads_of(0), &load));
	add_load(p, load, 0);
	return IAPO_OK;
}

iapo_status iapo_mem_plan_generate(iapo_mem_plan *p, const char *model_dir, int seqs, int max_len, int threads,
				   const char *lower, int packs)
{
	iapo_config c;
	double load;
	threads = threads_of(threads);
	IAPO_TRY(plan_model(p, model_dir, &c, threads, &load));
	if (seqs < 1) seqs = 1;
	if (max_len < 1) max_len = 1;
	double kv = iapo_mem_generate(&c, seqs, max_len, threads), h = iapo_mem_bf16_weights(&c);
	/* generate's default into a caller's cache (iapo eval's): decoding
	 * from packs of that copy */
	double pk = packs ? iapo_mem_packs(&c, 1) : 0;
	iapo_mem_add(p, "KV cache and logits", lower ? lower : "--max-tokens", kv);
	iapo_mem_add(p, "bf16 copy of the weights (decoding)", NULL, h);
	iapo_mem_add(p, "bf16 weight packs (decoding)", NULL, pk);
	add_load(p, load, kv + h + pk);
	return IAPO_OK;
}

iapo_status iapo_mem_plan_info(iapo_mem_plan *p, const char *model_dir, int max_len, int answer_tokens, int chunk)
{
	iapo_config c;
	double load;
	const int threads = threads_of(0);
	IAPO_TRY(plan_model(p, model_dir, &c, threads, &load));
	if (max_len < 1) max_len = 1;
	double gen = iapo_mem_generate(&c, 1, max_len, threads) + iapo_mem_bf16_weights(&c);
	double info = iapo_mem_info(&c, 1, max_len, POSTFIX_TOKENS, answer_tokens, chunk, 1, 0, threads);
	iapo_mem_add(p, "KV cache and logits", "--max-tokens", gen);
	iapo_mem_add(p, "information estimator", "--chunk, --max-tokens", info);
	add_load(p, load, gen + info);
	return IAPO_OK;
}

iapo_status iapo_mem_plan_sft(iapo_mem_plan *p, const char *model_dir, int micro_batch, int max_len)
{
	iapo_config c;
	double load;
	IAPO_TRY(plan_model(p, model_dir, &c, threads_of(0), &load));
	if (micro_batch < 1) micro_batch = 1;
	if (max_len < 1) max_len = 1;
	const double w = iapo_mem_weights(&c);
	double act = iapo_mem_fwd(&c, micro_batch, max_len, 1) + 16.0 * micro_batch * max_len;
	iapo_mem_add(p, "gradient and AdamW moments", NULL, 3 * w);
	iapo_mem_add(p, "activations", "--micro-batch, the sequence length", act);
	add_load(p, load, 3 * w + act);
	return IAPO_OK;
}

iapo_status iapo_mem_plan_train(iapo_mem_plan *p, const iapo_train_opts *o)
{
	iapo_config c;
	double load;
	const int threads = threads_of(o->threads);
	IAPO_TRY(plan_model(p, o->model, &c, threads, &load));
	iapo_mem_add(p, "libraries and threads", NULL, BASE_MPI_BYTES);
	const int ranks = iapo_dist_size() > 0 ? iapo_dist_size() : 1;
	const char *local = getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
	if (local && atoi(local) > 1) p->processes = atoi(local);
	const double Tp = (double)o->max_prompt_tokens, Tc = (double)o->max_completion_tokens;
	const int T = (int)(Tp + Tc - 1 > 1 ? Tp + Tc - 1 : 1), Tmax = (int)(Tp + Tc);
	const int G = (int)o->num_generations, Gs = iapo_algo_sampled_group(o);
	const int n_loc = (int)(o->prompts_per_step * o->num_generations / ranks);
	const int n_cap = G > 0 ? n_loc / G * Gs : n_loc;
	const int R = o->rollout_batch > 0 && o->rollout_batch < n_cap ? (int)o->rollout_batch : n_cap;
	const int mb = (int)o->micro_batch;
	const double w = iapo_mem_weights(&c);
	double run = 0, x;
	if (o->beta > 0) {
		iapo_mem_add(p, "reference model (beta > 0)", "--beta 0", w);
		run += w;
	}
	iapo_mem_add(p, "gradient and AdamW moments", NULL, 3 * w);
	run += 3 * w;
	x = iapo_mem_fwd(&c, mb, T, 1) + (o->beta > 0 ? iapo_mem_fwd(&c, mb, T, 0) : 0);
	iapo_mem_add(p, "training activations", "--micro-batch, --max-completion-tokens, --max-prompt-tokens", x);
	run += x;
	/* IAPO's estimator works in the rollout's cache (trainer.c gives it
	 * iapo_info_scratch_slots more slots) unless --info-recompute gives it
	 * its own; GTPO's has its own. */
	const int iapo = !strcmp(o->algo, "iapo"), reuse = iapo && !o->info_recompute;
	const int extra = reuse ? iapo_info_scratch_slots(Tmax) : 0;
	x = iapo_mem_generate(&c, R + extra, Tmax, threads) + (reuse ? 4.0 * R * (Tmax + Tc) : 0);
	iapo_mem_add(p, "rollout KV cache", "--rollout-batch, --max-completion-tokens", x);
	run += x;
	/* a bf16 pass attends over a bf16 copy of the cache it reads (info.c's
	 * attn16; there is no option for fp32 attention in a bf16 pass) */
	const int attn_bf16 = iapo && o->info_bf16;
	if (reuse && attn_bf16) {
		x = iapo_mem_kv_bf16(&c, R + extra, Tmax);
		iapo_mem_add(p, "bf16 copy of the rollout KV cache (information pass)", "--rollout-fp32", x);
		run += x;
	}
	/* trainer.c samples with bf16 weights only under --rollout-bf16 (or
	 * IAPO's --info-bf16) */
	const int roll16 = o->rollout_bf16 || (reuse && o->info_bf16);
	if (roll16) {
		x = iapo_mem_bf16_weights(&c);
		iapo_mem_add(p, "bf16 copy of the weights (decoding)", NULL, x);
		run += x;
	}
	/* the rollout decodes from packs of the weights it multiplies by
	 * (generate's default; the cache keeps them across steps) unless
	 * --rollout-rows */
	if (!o->rollout_rows && Tc > 1) {
		x = iapo_mem_packs(&c, roll16);
		iapo_mem_add(p, roll16 ? "bf16 weight packs (rollout decoding)" : "fp32 weight packs (rollout decoding)",
			     "--rollout-rows", x);
		run += x;
	}
	const int evals = o->eval_steps > 0 && (o->eval_data || o->eval_fraction > 0 || o->eval_count > 0);
	if (evals) {
		/* its own cache, with its own bf16 snapshot and its packs
		 * (generate's defaults) */
		x = iapo_mem_generate(&c, R, Tmax, threads) + iapo_mem_bf16_weights(&c) + (Tc > 1 ? iapo_mem_packs(&c, 1) : 0);
		iapo_mem_add(p, "evaluation KV cache", "--rollout-batch, --max-completion-tokens", x);
		run += x;
	}
	const int batch = n_loc < 16 ? n_loc : 16;
	x = 0;
	if (iapo)
		x = iapo_mem_info(&c, batch, Tmax, POSTFIX_TOKENS, (int)o->answer_tokens, (int)o->info_chunk, !reuse,
				  attn_bf16, threads) +
		    8.0 * n_loc * (Tmax + 1);
	else if (!strcmp(o->algo, "gtpo"))
		x = iapo_mem_info(&c, batch, Tmax, 0, 1, 0, 1, 0, threads) + 4.0 * n_loc * (Tc + 1);
	iapo_mem_add(p, "information estimator", "--info-chunk, --max-completion-tokens", x);
	run += x;
	/* trainer.c: 4 per-token arrays of the step, 9 of the micro-batch,
	 * the loss mask, per-sequence arrays */
	x = 16.0 * n_cap * Tc + 36.0 * mb * T + 4.0 * n_loc * Tc + 64.0 * n_cap;
	iapo_mem_add(p, "per-token buffers", "--prompts-per-step, --num-generations", x);
	run += x;
	add_load(p, load, run);
	return IAPO_OK;
}

/* ---- what is available ---- */

double iapo_mem_parse_size(const char *s)
{
	if (!s) return -1;
	while (*s == ' ' || *s == '\t') s++;
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (end == s || errno || !(v >= 0) || v > 1e30) return -1;
	while (*end == ' ') end++;
	double mul = 1;
	switch (*end) {
	case 'k': case 'K': mul = 1024.0; end++; break;
	case 'm': case 'M': mul = MiB; end++; break;
	case 'g': case 'G': mul = MiB * 1024; end++; break;
	case 't': case 'T': mul = MiB * MiB; end++; break;
	default: break;
	}
	if (mul > 1 && (*end == 'i' || *end == 'I')) end++;
	if (*end == 'b' || *end == 'B') end++;
	while (*end == ' ' || *end == '\n') end++;
	return *end ? -1 : v * mul;
}

double iapo_mem_parse_stat(const char *text, const char *key)
{
	size_t k = strlen(key);
	for (const char *p = text; p && *p;) {
		if (!strncmp(p, key, k) && (p[k] == ' ' || p[k] == '\t')) {
			char *end;
			double v = strtod(p + k, &end);
			return end == p + k ? -1 : v;
		}
		p = strchr(p, '\n');
		if (p) p++;
	}
	return -1;
}

double iapo_mem_parse_meminfo(const char *text)
{
	const char *p = strstr(text, "MemAvailable:");
	if (!p) return -1;
	char *end;
	double kb = strtod(p + 13, &end);
	if (end == p + 13) return -1;
	return kb * 1024.0;
}

/* Reads a small /proc or /sys file into buf (NUL-terminated); 0 on success. */
static int slurp(const char *path, char *buf, size_t n)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) return -1;
	size_t got = 0;
	while (got + 1 < n) {
		ssize_t r = read(fd, buf + got, n - 1 - got);
		if (r < 0 && errno == EINTR) continue;
		if (r <= 0) break;
		got += (size_t)r;
	}
	close(fd);
	buf[got] = '\0';
	return got ? 0 : -1;
}

/* limit - (usage - inactive file pages) of a cgroup, or -1. */
static double cgroup_room(const char *limit_file, const char *usage_file, const char *stat_file, const char *inactive_key,
			  double *limit_out)
{
	char buf[8192];
	if (slurp(limit_file, buf, sizeof buf)) return -1;
	if (!strncmp(buf, "max", 3)) return -1;
	double limit = iapo_mem_parse_size(buf);
	/* v1 reports "no limit" as a huge number (page-rounded LONG_MAX) */
	if (limit < 0 || limit > 1e18) return -1;
	double used = 0;
	if (!slurp(usage_file, buf, sizeof buf)) used = iapo_mem_parse_size(buf);
	if (used < 0) used = 0;
	if (!slurp(stat_file, buf, sizeof buf)) {
		double inactive = iapo_mem_parse_stat(buf, inactive_key);
		if (inactive > 0 && inactive < used) used -= inactive;
	}
	*limit_out = limit;
	return limit > used ? limit - used : 0;
}

iapo_status iapo_mem_available(iapo_mem_avail *a)
{
	memset(a, 0, sizeof *a);
	a->bytes = -1;
	const char *env = getenv("IAPO_MEMORY_LIMIT");
	if (env && *env) {
		if (!strcmp(env, "off") || !strcmp(env, "0")) {
			a->disabled = 1;
			snprintf(a->source, sizeof a->source, "IAPO_MEMORY_LIMIT=off");
			return IAPO_OK;
		}
		double v = iapo_mem_parse_size(env);
		if (v < 0)
			return iapo_fail(IAPO_ERR_ARG, "IAPO_MEMORY_LIMIT: expected bytes (e.g. 8G, 512M) or off, found '%s'", env);
		a->bytes = v;
		snprintf(a->source, sizeof a->source, "IAPO_MEMORY_LIMIT");
		return IAPO_OK;
	}
	char buf[8192];
	if (!slurp("/proc/meminfo", buf, sizeof buf)) {
		double v = iapo_mem_parse_meminfo(buf);
		if (v >= 0) {
			a->bytes = v;
			snprintf(a->source, sizeof a->source, "MemAvailable in /proc/meminfo");
		}
	}
	/* The cgroups this process is in: v2's line "0::/path", v1's
	 * "N:memory:/path"; each is looked for under its mount point (where a
	 * container sees only its own cgroup, the path leads nowhere and the
	 * mount point itself is the cgroup). The smallest room wins. */
	char v2[4096] = "", v1[4096] = "";
	if (!slurp("/proc/self/cgroup", buf, sizeof buf)) {
		for (char *line = buf; line && *line;) {
			char *nl = strchr(line, '\n');
			if (nl) *nl = '\0';
			char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
			if (c2 && !strstr(c2 + 1, "..")) {
				if (c2 == c1 + 1 && line[0] == '0') snprintf(v2, sizeof v2, "%s", c2 + 1);
				else if (!strncmp(c1 + 1, "memory:", 7)) snprintf(v1, sizeof v1, "%s", c2 + 1);
			}
			line = nl ? nl + 1 : NULL;
		}
	}
	const char *bases[][2] = {{"/sys/fs/cgroup", v2}, {"/sys/fs/cgroup", ""}, {"/sys/fs/cgroup/unified", v2},
				  {"/sys/fs/cgroup/memory", v1}, {"/sys/fs/cgroup/memory", ""}};
	for (int k = 0; k < 5; k++) {
		const int is_v1 = k >= 3;
		if (k != 1 && k != 4 && !*bases[k][1]) continue;
		char f1[8400], f2[8400], f3[8400];
		snprintf(f1, sizeof f1, "%s%s/%s", bases[k][0], bases[k][1], is_v1 ? "memory.limit_in_bytes" : "memory.max");
		snprintf(f2, sizeof f2, "%s%s/%s", bases[k][0], bases[k][1], is_v1 ? "memory.usage_in_bytes" : "memory.current");
		snprintf(f3, sizeof f3, "%s%s/memory.stat", bases[k][0], bases[k][1]);
		double limit = 0, room = cgroup_room(f1, f2, f3, is_v1 ? "total_inactive_file" : "inactive_file", &limit);
		if (room >= 0 && (a->bytes < 0 || room < a->bytes)) {
			char h[32];
			a->bytes = room;
			snprintf(a->source, sizeof a->source, "the cgroup's memory limit %s less its usage",
				 iapo_mem_human(limit, h, sizeof h));
		}
	}
	return IAPO_OK;
}

const char *iapo_mem_human(double b, char *buf, size_t n)
{
	if (b >= 1024 * MiB) snprintf(buf, n, "%.2f GiB", b / (1024 * MiB));
	else if (b >= MiB) snprintf(buf, n, "%.1f MiB", b / MiB);
	else snprintf(buf, n, "%.0f KiB", b / 1024);
	return buf;
}

iapo_status iapo_mem_check(const iapo_mem_plan *p, const char *what)
{
	iapo_mem_avail a;
	IAPO_TRY(iapo_mem_available(&a));
	if (a.disabled || a.bytes < 0 || p->total <= a.bytes) return IAPO_OK;
	/* the largest parts first, with the options that shrink them */
	int order[IAPO_MEM_MAX_ITEMS];
	for (int i = 0; i < p->n; i++) order[i] = i;
	for (int i = 1; i < p->n; i++)
		for (int j = i; j > 0 && p->item[order[j]].bytes > p->item[order[j - 1]].bytes; j--) {
			int t = order[j];
			order[j] = order[j - 1];
			order[j - 1] = t;
		}
	char parts[1024] = "", lower[512] = "", h[32], h2[32];
	size_t np = 0, nl = 0;
	for (int k = 0; k < p->n; k++) {
		const iapo_mem_item *it = &p->item[order[k]];
		if (k < 5 && np < sizeof parts) {
			int w = snprintf(parts + np, sizeof parts - np, "%s%s %s", k ? ", " : "", it->what,
					 iapo_mem_human(it->bytes, h, sizeof h));
			if (w > 0) np += (size_t)w;
		}
		if (!it->lower || it->bytes < 0.05 * p->total) continue;
		/* each option once, in the order of the parts they shrink */
		for (const char *o = it->lower; *o;) {
			size_t len = strcspn(o, ",");
			char opt[64];
			snprintf(opt, sizeof opt, "%.*s", (int)(len < sizeof opt ? len : sizeof opt - 1), o);
			int seen = 0;
			for (const char *q = lower; (q = strstr(q, opt)); q += strlen(opt))
				if ((q == lower || q[-1] == ' ') && (q[strlen(opt)] == ',' || !q[strlen(opt)])) seen = 1;
			if (!seen && nl < sizeof lower) {
				int w = snprintf(lower + nl, sizeof lower - nl, "%s%s", nl ? ", " : "", opt);
				if (w > 0) nl += (size_t)w;
			}
			o += len;
			while (*o == ',' || *o == ' ') o++;
		}
	}
	char procs[64] = "";
	if (p->processes > 1) snprintf(procs, sizeof procs, " for %d processes on this machine", p->processes);
	return iapo_fail(IAPO_ERR_NOMEM,
			 "not enough memory for %s: estimated %s%s (%s), but %s is available (%s): lower %s, use a "
			 "smaller model, or skip this check with --no-memory-check",
			 what ? what : "this run", iapo_mem_human(p->total, h, sizeof h), procs, parts, iapo_mem_human(a.bytes, h2, sizeof h2),
			 a.source, nl ? lower : "the batch and sequence sizes");
}

iapo_status iapo_mem_guard(iapo_status planned, const iapo_mem_plan *p, const char *what)
{
	if (planned != IAPO_OK) {
		iapo_clear_error();
		return IAPO_OK;
	}
	return iapo_mem_check(p, what);
}

int iapo_mem_take_flag(int *argc, char **argv)
{
	int found = 0, k = 0;
	for (int i = 0; i < *argc; i++) {
		if (i > 0 && !strcmp(argv[i], "--no-memory-check")) {
			found = 1;
			continue;
		}
		argv[k++] = argv[i];
	}
	if (k < *argc) argv[k] = NULL;
	*argc = k;
	return found;
}
