/*
 * reward.h — the answer verifier and the rule-based rewards of an RL step:
 * correctness (the completion's final answer against the dataset label) and
 * format (the <think>…</think><answer>…</answer> layout the system prompt asks
 * for). Pure string functions: no allocation, no global state, safe to call
 * from many threads at once and on arbitrary bytes (every buffer is bounded).
 *
 * Where the answer comes from, in order of preference:
 *   1. the last <answer>…</answer> block (to the end of the text if it is not
 *      closed), stripped; a \boxed{} inside it is unwrapped;
 *   2. else the last \boxed{…} (nested braces matched), \boxed X or \fbox{…};
 *   3. else the last GSM8K "#### N" line.
 * A final "x = 5" keeps the part after the last '='.
 *
 * Normalisation (iapo_answer_normalize) is ours and deliberately better than
 * the reference's (DESIGN §4, iapo-reference §2.4): \dfrac and \tfrac are
 * \frac, "-1,000" is -1000, units are only removed as trailing words after a
 * number, and two answers are also equal when their numeric values agree
 * (integers exactly, otherwise within a relative 1e-9), so 0.5 = 1/2 =
 * \frac{1}{2}. Not here: symbolic equivalence (x+1 vs 1+x), sets, intervals.
 */
#ifndef IAPO_RL_REWARD_H
#define IAPO_RL_REWARD_H

#include <stddef.h>

/* Longest answer (in bytes, NUL excluded) the verifier compares. A longer
 * extracted answer or label is never judged correct. */
#define IAPO_ANSWER_MAX 1023

typedef struct {
	float correct, wrong, format_ok, format_bad;
} iapo_reward_weights; /* defaults +1, -1, +0.5, -0.5 (the reference's) */

void iapo_reward_weights_default(iapo_reward_weights *w);

/* Extracts the model's final answer from completion text into buf (n > 0
 * bytes, always NUL-terminated, truncated if longer). Returns 1 if a
 * non-empty answer was found, else 0 with buf = "". */
int iapo_answer_extract(const char *text, char *buf, size_t n);

/* Normalises an answer string into buf (n > 0 bytes, NUL-terminated).
 * Inputs longer than IAPO_ANSWER_MAX bytes are cut there first. */
void iapo_answer_normalize(const char *s, char *buf, size_t n);

/* 1 if the two answers are equal after normalisation, exactly or
 * numerically; 0 otherwise (also when either is empty). */
int iapo_answer_equal(const char *a, const char *b);

/* 1 if the completion's extracted answer equals the label (after
 * normalisation, exact or numeric). */
int iapo_answer_is_correct(const char *completion, const char *label);

/* 1 if the completion is: an optional prefix without tags, <think>…</think>,
 * optional whitespace, <answer>…</answer>, optional trailing whitespace; each
 * block without any of the four tags inside. Newlines are allowed anywhere
 * (the reference's regex rejected them by accident: DESIGN §4). */
int iapo_format_ok(const char *completion);

/* Total reward (correctness term + format term); writes correctness (0/1) and
 * format (0/1) if non-NULL. w NULL means the defaults. */
float iapo_reward(const char *completion, const char *label, const iapo_reward_weights *w, int *correct,
		  int *format_ok);

#endif
