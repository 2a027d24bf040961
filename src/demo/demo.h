/*
 * demo.h — `iapo demo`, the embedded default, as a library call: everything
 * in-process, nothing downloaded.
 *   (a) data   the synthetic reasoning task (data/synth.h) and a byte-level
 *              BPE tokenizer trained on it (data/bpe_train.h)   -> DIR/data/
 *   (b) base   a small Qwen2-shaped model initialised at random and
 *              supervised on the task's verbose traces (rl/sft_run.h)
 *                                                         -> DIR/base/sft/
 *   (c) RL     from that same base, one run per method and seed, each a
 *              normal `iapo train` run directory (config.json,
 *              metrics.jsonl, checkpoint-N/)  -> DIR/rl/<method>/seed-<s>/
 *   (d) eval   base and every RL model on the held-out test split
 *              (eval/eval.h): pass@1, pass@k, mean completion length, token
 *              efficiency
 *   (e) DIR/results.json, (f) a table on stdout, (g) DIR/report.html
 *              (curves, table, information heat maps of one test problem
 *              answered by the base and by the IAPO model).
 * Stages are cached: each writes a fingerprint of the settings that made
 * it, and a later call with the same settings reuses its output (the base
 * model and finished RL runs); different settings rebuild it and say why.
 *
 * Methods: grpo; iapo (IAPO with the demo's settings, iapo_opts below);
 * iapo_no_info (the same, --w-info 0: is it the information term?);
 * iapo_refnorm (--norm reference: the authors' normalisation);
 * iapo_answer_span (--answer-tokens covering the whole answer block);
 * lenpen (Kimi length reward). All from the same base, same seeds, same
 * budget (steps, prompts, completions).
 *
 * Progress goes to stderr (stage lines with elapsed and remaining time);
 * the table to stdout.
 * Not here: the command line (tools/cmd_demo.c), the HTML pieces (html.h).
 */
#ifndef IAPO_DEMO_DEMO_H
#define IAPO_DEMO_DEMO_H

#include <signal.h>
#include <stdint.h>
#include <stdio.h>

#include "iapo.h"

#define IAPO_DEMO_MAX_OVERRIDES 64

typedef struct {
	const char *out; /* DIR */
	int seeds;       /* RL seeds 1..seeds */
	int threads;     /* 0: all cores */
	int quick;       /* only recorded: the CLI's --quick picked the values */
	/* (a) data */
	uint64_t data_seed;
	int n_train, n_test, min_steps, max_steps, max_value;
	double redundancy;
	int vocab;       /* tokenizer vocabulary, added tokens included */
	/* (b) model and SFT */
	int hidden, layers, heads, kv_heads, intermediate;
	double init_std;
	long sft_steps, sft_batch, sft_warmup;
	double sft_lr;
	long sft_seed;
	double sft_early_exit; /* iapo sft --early-exit-fraction (0: off) */
	/* the prompt, shared by SFT, RL and eval */
	const char *system; /* NULL: the R1 system prompt (as iapo train) */
	int one_shot;
	/* (c) RL, every method */
	long rl_steps, prompts_per_step, group, max_completion;
	double rl_lr, temperature, beta;
	const char *loss_type;
	/* IAPO's settings, "key=value" train options applied to the iapo* methods */
	const char *iapo_opts[16];
	int n_iapo_opts;
	/* "key=value" (every method) or "METHOD:key=value", applied last */
	const char *overrides[IAPO_DEMO_MAX_OVERRIDES];
	int n_overrides;
	int answer_span;    /* iapo_answer_span's --answer-tokens; 0: the longest answer block in the data */
	const char *methods; /* comma-separated subset of the six, in table order */
	/* (d) eval */
	int eval_problems;  /* first N test problems (0: all) */
	int eval_samples;   /* samples per problem = the k of pass@k */
	uint64_t eval_seed;
	/* SIGINT: finish the step, save, stop (NULL: none) */
	const volatile sig_atomic_t *stop;
} iapo_demo_opts;

/* The full demo's defaults (≤ 10 minutes on 2 cores with 1 seed). */
void iapo_demo_opts_default(iapo_demo_opts *o);
/* The reduced demo CI runs (--quick). */
void iapo_demo_opts_quick(iapo_demo_opts *o);
/* ARG error naming the option when a value is out of range or a method unknown. */
iapo_status iapo_demo_opts_check(const iapo_demo_opts *o);

/* The six method names in table order ("grpo", "iapo", ...), and a line each. */
int iapo_demo_method_count(void);
const char *iapo_demo_method_name(int i);
const char *iapo_demo_method_about(int i);

/* Runs the demo. The table goes to `table` (stdout), progress to `log`
 * (stderr). Returns IAPO_ERR_ARG-class errors for bad options, the stages'
 * errors otherwise (naming files), IAPO_OK when stopped by *stop (the message
 * says so through the log; *stopped = 1). */
iapo_status iapo_demo_run(const iapo_demo_opts *o, FILE *table, FILE *log, int *stopped);

#endif
