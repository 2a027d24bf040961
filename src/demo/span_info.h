/*
 * span_info.h — does IAPO's estimator see what the task generator knows?
 * (issue 7, "what must show that it works" item 2). The synthetic task
 * (data/synth.h) labels every character of a trace as an answer-determining
 * step or as redundancy (restate, filler, verify, summary). Here a model
 * reads such traces teacher-forced after their prompt, the early-exit
 * estimator (rl/info.h) gives the answer entropy E_t at every cut, the gain
 * S_t = E_t − E_{t+1} (or the authors' smoothed form) is credited to token
 * t, and the gains are summed per span kind over many rows. The claim under
 * test: the mean gain of redundant tokens is at most a tenth of the step
 * tokens' mean.
 *
 * Token -> kind: the completion is encoded once, as a whole, exactly as the
 * trainer encodes text; each token's bytes are recovered by decoding it
 * alone (byte-level BPE: the decoded pieces concatenate back to the text,
 * which is checked), and the token takes the kind of the span holding its
 * first byte. A token whose bytes run past the end of that span "straddles"
 * (counted; synth.h promises none for a GPT-2/Qwen2-style pre-tokenizer).
 *
 * What it measured (demo research, 2026-11-26): on the demo's base (SFT on
 * whole traces only) E_0 is ~0.02 nats — cut early, the model answers the
 * last number it wrote, confidently — so the signed means are ~0 and the
 * ratio ~0.3-0.4 (the gain is only estimator artefacts around " =" inside
 * steps; mean |S| is still 12-80x larger on steps). A base that also saw
 * early exits in SFT (cut trace + "</think>\n<answer>", loss on the answer
 * only) has E_0 ~1.6 and a ratio ~0.001: the check reads the base's
 * calibration as much as the estimator. bench/demo_info prints both;
 * tests/test_demo_info.c checks ratio <= 0.1 on a 64x2 early-exit base it
 * trains itself (2000 steps held on 5 seeds, max 0.091; 1000 did not).
 *
 * Not here: generating traces with the model (the traces are the generator's
 * own, so the labels are exact), plots, the CLI.
 */
#ifndef IAPO_DEMO_SPAN_INFO_H
#define IAPO_DEMO_SPAN_INFO_H

#include <stddef.h>

#include "iapo.h"
#include "data/synth.h"
#include "model/weights.h"
#include "rl/iapo_adv.h"
#include "tokenizer/tokenizer.h"

/* Sums over every token added so far, per span kind (iapo_synth_kind). */
typedef struct {
	double tokens[IAPO_SYNTH_N_KINDS];   /* tokens of that kind */
	double gain_sum[IAPO_SYNTH_N_KINDS]; /* Σ S_t */
	double gain_abs[IAPO_SYNTH_N_KINDS]; /* Σ |S_t| */
	double rows;                         /* completions added */
	double straddle;                     /* tokens whose bytes cross a span boundary */
	double entropy_first, entropy_last;  /* Σ E_0 (nothing reasoned yet), Σ E_L (the whole trace) */
} iapo_span_info_stats;

/* Mean S_t of kind k (gain_sum / tokens), NAN without tokens. */
double iapo_span_info_mean(const iapo_span_info_stats *s, iapo_synth_kind k);
/* Mean S_t over the tokens of the four redundant kinds pooled, NAN without. */
double iapo_span_info_redundant_mean(const iapo_span_info_stats *s);
/* redundant mean / step mean (the target: <= 0.1); NAN when either is
 * undefined or the step mean is not positive. */
double iapo_span_info_ratio(const iapo_span_info_stats *s);

/* Encodes completion[0..len) and gives each token its kind. spans must tile
 * [0, len) in order (ARG error naming the first bad span otherwise). *ids and
 * *kinds are allocated here (iapo_free both), *n gets the token count and
 * *straddle (may be NULL) the number of tokens that cross a span boundary. An
 * ARG error also when the decoded tokens do not give back the text. */
iapo_status iapo_span_tokens(const iapo_tokenizer *tok, const char *completion, size_t len,
			     const iapo_synth_span *spans, int n_spans, int **ids, int **kinds, size_t *n,
			     int *straddle);

typedef struct {
	const char *system;  /* system prompt as the trainer is given it (NULL: the generic format's default) */
	int one_shot;        /* the reference's one-shot turn in the prompt */
	const char *postfix; /* text appended at each cut (NULL: IAPO_INFO_POSTFIX, as `iapo train`) */
	int answer_tokens;   /* estimator's N (1 = the paper) */
	float temperature;   /* entropy temperature (> 0) */
	iapo_gain gain;      /* plain S_t = E_t − E_{t+1}, or the authors' smoothed form */
	int max_tokens;      /* longest prompt + completion accepted (longer rows are an ARG error) */
} iapo_span_info_opts;

/* system "", no one-shot, postfix NULL, N 1, temperature 1, plain gain, 1024 tokens. */
iapo_span_info_opts iapo_span_info_defaults(void);

typedef struct iapo_span_info iapo_span_info;

/* An estimator on w (borrowed; read at every add) with tok (borrowed). */
iapo_status iapo_span_info_new(const iapo_weights *w, const iapo_tokenizer *tok, const iapo_span_info_opts *o,
			       iapo_span_info **out);
void iapo_span_info_free(iapo_span_info *s);

/* One synthetic problem: renders the prompt (chat template, opts' system and
 * one-shot), maps the completion's tokens to kinds, runs the estimator and
 * adds the gains into *acc (for per-token numbers use iapo_span_tokens and
 * rl/info.h directly). */
iapo_status iapo_span_info_add(iapo_span_info *s, const char *prompt, const char *completion, size_t len,
			       const iapo_synth_span *spans, int n_spans, iapo_span_info_stats *acc);

/* The first `limit` rows (0 = all) of a synth JSONL file (train.jsonl or
 * test.jsonl as `iapo data synth` writes them: prompt, completion, spans),
 * each added as above into *acc (zeroed first). Errors name the file and
 * line. */
iapo_status iapo_span_info_file(iapo_span_info *s, const char *path, int limit, iapo_span_info_stats *acc);

#endif
