/*
 * synth.h — the demo's synthetic reasoning task: chained arithmetic word
 * problems ("Tom has 7 apples. He buys 5 more, then gives away 3, then
 * doubles them. How many apples does he have now?") with chain-of-thought
 * traces that mix the steps which determine the answer ("7 + 5 = 12.") with
 * the redundancy real reasoning models show: restating the question, filler,
 * re-verifying a result already established, summarising before answering.
 * Each trace draws its own verbosity, so some are terse and some very
 * verbose, and RL has length to remove. Because the generator writes every
 * sentence itself, it knows which characters are redundant and records that
 * ground truth as character spans over the completion; tokenizer-independent,
 * so any tokenizer's offsets can be mapped onto it later. A sentence's span
 * holds its separator on the side a GPT-2/Qwen2-style pre-tokenizer attaches
 * it (the newline after it, or in run-on traces the space before it), so no
 * token of such a tokenizer straddles two spans.
 *
 * Everything is deterministic from (seed, options): problem i of a split is
 * drawn from the random stream keyed (seed, split, candidate index). Texts
 * are pure ASCII, so byte offsets are character offsets.
 *
 * Output of iapo_synth_generate, in DIR:
 *   train.jsonl, test.jsonl  one row per problem in the generic layout the
 *       dataset loader reads, plus the SFT target and the ground truth:
 *       {"prompt": str, "answer": "N", "completion": "<think>\n…</think>\n
 *        <answer>N</answer>", "spans": [[start, end, "kind"], …],
 *        "n_steps": k, "redundancy": share of redundant characters}
 *   meta.json  seed, counts, options and redundancy statistics per split.
 * The test split is drawn first (so it does not change with --train), the
 * train split skips any prompt the test split holds; no prompt repeats
 * within a split either.
 *
 * Not here: tokenisation (src/data/bpe_train.h trains a tokenizer on these
 * files), mapping spans to tokens (whoever consumes them), the CLI
 * (tools/cmd_data.c).
 */
#ifndef IAPO_DATA_SYNTH_H
#define IAPO_DATA_SYNTH_H

#include <stddef.h>
#include <stdint.h>

#include "iapo.h"

/* What a span of the completion is. Steps compute; restate, filler, verify
 * and summary are redundant (the answer follows from the prompt and the steps
 * alone); answer is "</think>\n<answer>N</answer>"; format is the opening
 * "<think>\n". Spans tile the completion: every character is in exactly one. */
typedef enum {
	IAPO_SYNTH_STEP = 0,
	IAPO_SYNTH_RESTATE,
	IAPO_SYNTH_FILLER,
	IAPO_SYNTH_VERIFY,
	IAPO_SYNTH_SUMMARY,
	IAPO_SYNTH_ANSWER,
	IAPO_SYNTH_FORMAT,
	IAPO_SYNTH_N_KINDS
} iapo_synth_kind;

/* "step", "restate", "filler", "verify", "summary", "answer", "format". */
const char *iapo_synth_kind_name(iapo_synth_kind k);
/* The kind named s, or -1. */
int iapo_synth_kind_parse(const char *s);
/* 1 for restate, filler, verify and summary. */
int iapo_synth_kind_redundant(iapo_synth_kind k);

#define IAPO_SYNTH_MAX_STEPS 8

typedef struct {
	uint64_t seed;
	int n_train, n_test;	/* rows per split (n_train >= 1, n_test >= 0) */
	int min_steps, max_steps; /* operations per problem, 1 <= min <= max <= IAPO_SYNTH_MAX_STEPS */
	double redundancy;	/* mean verbosity in [0, 1]: 0 = every trace terse, 1 = every trace
				   maximally verbose; in between, each trace draws its own level */
	int max_value;		/* no quantity (start, intermediate, answer) exceeds it; 10..999 */
} iapo_synth_opts;

/* seed 1, 5000 train, 500 test, 2-4 steps, redundancy 0.5, max value 40. */
void iapo_synth_opts_default(iapo_synth_opts *o);
/* ARG error naming the first bad field ("--steps: ..."), else OK. */
iapo_status iapo_synth_opts_check(const iapo_synth_opts *o);

typedef struct {
	int start, end; /* byte offsets into the completion, end exclusive */
	iapo_synth_kind kind;
} iapo_synth_span;

/* One problem with its trace. Strings and spans are owned (free with
 * iapo_synth_problem_free). */
typedef struct {
	char *prompt;
	char *completion;
	char answer[16];
	int n_steps;
	iapo_synth_span *spans;
	int n_spans;
	double verbosity;	/* the level this trace drew, in [0, 1] */
	double redundant_share; /* redundant characters / completion characters */
} iapo_synth_problem;

/* Draws one problem from the stream keyed (o->seed, stream, index): the
 * same arguments always give the same problem. Only o's seed, steps,
 * redundancy and max_value matter (and are checked; the counts are not).
 * iapo_synth_generate draws split s's candidates from stream s (train 0,
 * test 1) at indices 0, 1, 2, ..., skipping repeated prompts. */
iapo_status iapo_synth_problem_make(const iapo_synth_opts *o, uint64_t stream, uint64_t index,
				    iapo_synth_problem *out);
void iapo_synth_problem_free(iapo_synth_problem *p);

/* Statistics of one split. */
typedef struct {
	size_t rows;
	double share_min, share_mean, share_max; /* redundant share of a row's completion */
	double kind_share[IAPO_SYNTH_N_KINDS];	 /* characters of each kind / all completion characters */
	double mean_chars;			 /* completion length in bytes */
	double mean_steps;
} iapo_synth_stats;

/* The two splits in the order they are written: the test split (stream 1)
 * first, then train (stream 0) skipping prompts already drawn. Writes
 * DIR/train.jsonl, DIR/test.jsonl and DIR/meta.json (each atomically;
 * DIR is created). train/test (either may be NULL) receive the statistics.
 * An ARG error when the options cannot yield that many distinct problems. */
iapo_status iapo_synth_generate(const iapo_synth_opts *o, const char *out_dir, iapo_synth_stats *train,
				iapo_synth_stats *test);

#endif
