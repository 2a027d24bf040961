/*
 * dataset.h — prompts and labels for RL and evaluation, read from JSONL, and
 * the reference's prompt (iapo-reference §2.1–2.2) as data.
 *
 * Row layouts (one JSON object per line; blank lines are skipped):
 *   GSM8K    {"question": str, "answer": "...#### N"}     label N, commas removed
 *            (after the last "####"; the reference takes the first: every
 *            real row has exactly one)
 *   MATH     {"problem": str, "answer": str}               or a "solution" with
 *            \boxed{…} (the label is the last box's content)
 *   DAPO     {"prompt": [{"role": "user", "content": str}], "reward_model":
 *            {"ground_truth": str}}  the fixed DAPO instruction prefix and suffix
 *            are stripped from the content when present
 *   generic  {"prompt": str, "answer": str}
 * The layout is detected from the first row's fields unless given. Field names
 * may be overridden; a dotted name ("extra_info.question") walks into nested
 * objects. A numeric label (42) is accepted and written as text. A prompt given
 * as a list of messages yields the first "user" message's content.
 * Errors name the file and line: "<file>: line N: expected ..., found ...".
 *
 * Not here: the chat template and tokenisation (src/tokenizer/), and the
 * reference's CPython random.shuffle split (a port cannot reproduce it; give
 * its index list to iapo_dataset_subset instead).
 */
#ifndef IAPO_RL_DATASET_H
#define IAPO_RL_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "iapo.h"

typedef enum {
	IAPO_DATA_AUTO = 0,
	IAPO_DATA_GSM8K,
	IAPO_DATA_MATH,
	IAPO_DATA_DAPO,
	IAPO_DATA_GENERIC,
} iapo_data_format;

typedef struct {
	iapo_data_format format; /* IAPO_DATA_AUTO: from the first row */
	const char *prompt_field; /* NULL: the format's default */
	const char *answer_field; /* NULL: the format's default (DAPO: "reward_model.ground_truth") */
	size_t max_rows;	  /* keep only the first max_rows rows (0 = all); the reference takes 7000 DAPO rows */
	int dedupe;		  /* drop rows whose prompt repeats an earlier one (DAPO-Math-17k is ~100x duplicated) */
} iapo_dataset_opts;

typedef struct {
	char *prompt;
	char *label;
} iapo_example;

typedef struct {
	iapo_example *ex;
	size_t n;		 /* owns strings */
	iapo_data_format format; /* the layout read (never AUTO after a load) */
	size_t duplicates;	 /* rows dropped by dedupe */
} iapo_dataset;

/* Name of a format ("gsm8k", "math", "dapo", "generic", "auto") and back;
 * iapo_data_format_parse returns IAPO_ERR_ARG for an unknown name. */
const char *iapo_data_format_name(iapo_data_format f);
iapo_status iapo_data_format_parse(const char *name, iapo_data_format *f);

/* Reads the JSONL file at path. opts NULL means auto-detection and default
 * fields. On success *out owns every string (free with iapo_dataset_free); on
 * failure *out is empty and the message names the file and line. A file with
 * no rows is an error. */
iapo_status iapo_dataset_load(const char *path, const iapo_dataset_opts *opts, iapo_dataset *out);
/* Frees the strings and the array; leaves *ds empty. NULL-safe. */
void iapo_dataset_free(iapo_dataset *ds);

/* Copies rows idx[0..n) of ds, in that order, into *out (own strings). An
 * index out of range is IAPO_ERR_ARG. */
iapo_status iapo_dataset_subset(const iapo_dataset *ds, const size_t *idx, size_t n, iapo_dataset *out);

/* Deterministic train/eval split: a Fisher–Yates permutation of the rows from
 * (seed) with src/core/rng.h; the first n_train rows of the permutation are
 * train and the rest eval (both in permutation order, as the reference's
 * shuffled index list). eval_count > 0 gives the eval size; otherwise it is
 * round(eval_fraction * n), eval_fraction in [0, 1]. *train and *eval own
 * copies of the strings; ds is unchanged. */
iapo_status iapo_dataset_split(const iapo_dataset *ds, double eval_fraction, size_t eval_count, uint64_t seed,
			       iapo_dataset *train, iapo_dataset *eval);

/* ---- the reference's prompt (iapo-reference §2.2) ----------------------- */

/* R1_STYLE_SYSTEM_PROMPT verbatim: 396 characters, with the 4-space
 * indentation after each newline left by a Python triple-quoted string. */
extern const char IAPO_R1_SYSTEM_PROMPT[];
/* The one-shot turn shown before the problem. */
extern const char IAPO_ONESHOT_USER[];	    /* "What is 2+2?" */
extern const char IAPO_ONESHOT_ASSISTANT[]; /* "<think>…</think>\n<answer>4</answer>" */

/* The task line for a format: "The answer must be a single integer." for
 * GSM8K and DAPO, "" for MATH and generic rows. */
const char *iapo_prompt_task(iapo_data_format f);
/* The full system message, R1 prompt + "\n" + task (static storage). For
 * MATH it ends in "\n", as the reference's does. */
const char *iapo_prompt_system(iapo_data_format f);

typedef struct {
	const char *role; /* "system", "user" or "assistant" */
	const char *content;
} iapo_prompt_msg;

/* The reference's conversation for one problem: system, then (one_shot) the
 * one-shot user and assistant turns, then the problem as the user turn.
 * system NULL means iapo_prompt_system(f). Writes msgs[0..k) and returns k
 * (4 with the one-shot, 2 without). The pointers are borrowed: static strings,
 * system and problem. */
int iapo_prompt_messages(iapo_data_format f, const char *system, const char *problem, int one_shot,
			 iapo_prompt_msg msgs[4]);

#endif
