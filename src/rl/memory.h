/*
 * memory.h — memory planning before a command allocates: an estimate of the
 * bytes a run will hold at its peak (from the model's config.json, the file
 * sizes of its directory and the requested batch and sequence sizes), the
 * memory the process may still use (MemAvailable of /proc/meminfo and the
 * cgroup's limit minus its usage, whichever is smaller), and a check that
 * refuses a run that would not fit with the estimate, the amount available
 * and the options that shrink its largest parts, instead of the kernel's OOM
 * killer ending it hours in.
 *
 * The estimate adds up what the modules allocate: the fp32 parameter block
 * (plus the safetensors file mapped while it loads), the reference model
 * (beta > 0), the gradient and the two AdamW moments, the training forward's
 * activation arena (src/model/transformer.c's carve, reproduced here and
 * checked against iapo_fwd_bytes by tests/test_memory.c), the KV caches of
 * rollout and evaluation with their scratch and logits and the bf16 weight
 * copy decoding multiplies by, the information estimator (iapo, gtpo),
 * per-token buffers, the tokenizer while it loads,
 * and the process's base (libraries, OpenBLAS and OpenMP buffers, MPI). It
 * is meant to be within about 25% of the peak resident size (tests measure
 * it). Prompts are counted at --max-prompt-tokens: the command checks before
 * it has tokenised anything, so it plans for the longest prompt allowed.
 *
 * Overrides: the environment variable IAPO_MEMORY_LIMIT (bytes, or with a
 * K/M/G/T suffix, powers of 1024) replaces the available amount (tests,
 * schedulers that know better); IAPO_MEMORY_LIMIT=off and the commands'
 * --no-memory-check skip the check.
 *
 * Not here: GPU memory; memory other processes will take later; the exact
 * peak of code that allocates per call (text buffers, JSON).
 */
#ifndef IAPO_RL_MEMORY_H
#define IAPO_RL_MEMORY_H

#include <stddef.h>

#include "iapo.h"
#include "model/model.h"
#include "rl/options.h"

#define IAPO_MEM_MAX_ITEMS 16

typedef struct {
	const char *what;  /* "AdamW moments", ... (static text) */
	const char *lower; /* the options that shrink it, NULL for none (static text) */
	double bytes;
} iapo_mem_item;

typedef struct {
	iapo_mem_item item[IAPO_MEM_MAX_ITEMS];
	int n;
	double total;     /* sum of the items, times processes */
	int processes;    /* processes of this job on this machine (MPI local ranks), >= 1 */
} iapo_mem_plan;

void iapo_mem_plan_init(iapo_mem_plan *p);
/* Adds bytes to the item `what` (created on first use). */
void iapo_mem_add(iapo_mem_plan *p, const char *what, const char *lower, double bytes);

/* ---- building blocks: bytes each module allocates ---- */
double iapo_mem_weights(const iapo_config *c);
/* iapo_fwd_new(B, T, with_backward): the arena and its index arrays. */
double iapo_mem_fwd(const iapo_config *c, int B, int T, int with_backward);
/* iapo_kv_new(B, Tmax): the caches, a chunk's scratch, its logits rows. */
double iapo_mem_kv(const iapo_config *c, int B, int Tmax);
/* The chunk scratch (not the caches) of a cache's twin: what
 * iapo_kv_forward_rows_split allocates on its first split, for the second
 * half's rows. */
double iapo_mem_kv_half(const iapo_config *c, int B, int Tmax);
/* The bf16 copy of the K/V that a bf16 information pass attends over
 * (iapo_kv_attn_bf16, allocated on its first call and kept): half the fp32
 * cache; 0 for head dims that keep fp32 attention. */
double iapo_mem_kv_bf16(const iapo_config *c, int B, int Tmax);
/* iapo_generate of B sequences through a cache of Tmax positions: the cache,
 * (B, V) logits and the sampler's scratch for `threads` threads. */
double iapo_mem_generate(const iapo_config *c, int B, int Tmax, int threads);
/* The bf16 snapshot of the weight matrices a KV cache decodes with
 * (iapo_kv_use_bf16; generate's default when no entropies are asked for). */
double iapo_mem_bf16_weights(const iapo_config *c);
/* The weight packs iapo_generate decodes from by default (iapo_gen_opts.pack;
 * kvcache.c's iapo_kv_pack_weights): every matrix a forward multiplies by in
 * gemm.c's 32-column panels, from the bf16 copy (bf16 != 0: K-pairs) or the
 * fp32 weights; kept by a cache that lives across calls. */
double iapo_mem_packs(const iapo_config *c, int bf16);
/* iapo_info_new(Bmax, Tmax) in answer mode with a postfix of n_postfix tokens
 * (next-token mode when n_postfix == 0), answer_tokens, chunk (0 = automatic
 * within the default budget); own_cache: with the KV cache it makes for
 * itself (0 when it works in the rollout's, as IAPO's hook does), and then
 * attn_bf16: with that cache's bf16 copy (a bf16 pass attends in bf16);
 * on `threads` threads (2 or more: a twin's scratch for split chunks). */
double iapo_mem_info(const iapo_config *c, int Bmax, int Tmax, int n_postfix, int answer_tokens, int chunk,
		     int own_cache, int attn_bf16, int threads);
/* Sum of the sizes of the regular files in dir whose names end in suffix
 * (e.g. ".safetensors"); 0 when dir cannot be read. */
double iapo_mem_dir_bytes(const char *dir, const char *suffix);

/* ---- whole commands (config.json and file sizes read from the model dir) ---- */
/* Loading a model directory for inference: parameters, the mapped shards
 * while they convert, the tokenizer while it parses, the process base.
 * Fills *cfg when not NULL. */
iapo_status iapo_mem_plan_model(iapo_mem_plan *p, const char *model_dir, iapo_config *cfg);
/* `iapo train` with resolved options (also right for `iapo demo`, which
 * trains through the same trainer). */
iapo_status iapo_mem_plan_train(iapo_mem_plan *p, const iapo_train_opts *o);
/* `iapo generate`/`iapo eval`: seqs sequences of up to max_len tokens;
 * lower: the command's options that shrink them (NULL: "--max-tokens");
 * packs: the weight packs too (generate's default into a caller's cache, as
 * iapo eval's; `iapo generate` decodes through its own, without). */
iapo_status iapo_mem_plan_generate(iapo_mem_plan *p, const char *model_dir, int seqs, int max_len, int threads,
				   const char *lower, int packs);
/* `iapo info`: one sequence of up to max_len tokens, the estimator's chunk. */
iapo_status iapo_mem_plan_info(iapo_mem_plan *p, const char *model_dir, int max_len, int answer_tokens, int chunk);
/* Supervised fine-tuning (iapo_sft_new): micro_batch sequences of up to
 * max_len tokens, the gradient and AdamW moments (for `iapo sft`). */
iapo_status iapo_mem_plan_sft(iapo_mem_plan *p, const char *model_dir, int micro_batch, int max_len);

/* ---- what is available ---- */
typedef struct {
	double bytes;      /* what this process may still allocate; < 0: unknown */
	int disabled;      /* IAPO_MEMORY_LIMIT=off */
	char source[192];  /* where the number came from, for messages */
} iapo_mem_avail;

/* Reads the environment override, /proc/meminfo and the cgroup (v2
 * memory.max/memory.current, v1 memory.limit_in_bytes/memory.usage_in_bytes,
 * reclaimable file pages counted as free). Never fails: what cannot be read
 * is left out (bytes < 0 when nothing could). ARG error for a malformed
 * IAPO_MEMORY_LIMIT. */
iapo_status iapo_mem_available(iapo_mem_avail *a);
/* Parsers, exposed for tests: "MemAvailable:" of /proc/meminfo text in bytes
 * (-1 if absent); a size "123", "4K", "1.5G", "2GiB" into bytes (-1 if
 * malformed); the value of `key` in a memory.stat text (-1 if absent). */
double iapo_mem_parse_meminfo(const char *text);
double iapo_mem_parse_size(const char *s);
double iapo_mem_parse_stat(const char *text, const char *key);

/* Compares the plan with what is available. IAPO_ERR_NOMEM when it does not
 * fit, with the message "not enough memory for <what>: estimated X (largest
 * parts ...), but Y is available (source): lower <options>, or skip this
 * check with --no-memory-check" (what: e.g. "the run"; NULL: "this run").
 * OK when it fits, when the check is disabled or nothing is known; ARG for a
 * malformed IAPO_MEMORY_LIMIT. */
iapo_status iapo_mem_check(const iapo_mem_plan *p, const char *what);
/* What a command calls with the status of its iapo_mem_plan_*: a plan that
 * could not be made (no config.json, say) is no reason to refuse (loading
 * reports it in its own words): OK, error cleared; else iapo_mem_check. */
iapo_status iapo_mem_guard(iapo_status planned, const iapo_mem_plan *p, const char *what);
/* "X GiB" style text of bytes into buf. */
const char *iapo_mem_human(double bytes, char *buf, size_t n);
/* Removes every "--no-memory-check" from argv (argc updated); 1 if there was one. */
int iapo_mem_take_flag(int *argc, char **argv);

#endif
