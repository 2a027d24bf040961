/*
 * bpe_train.h — training a small byte-level BPE tokenizer, written through
 * iapo_tokenizer_write_bytelevel so that a model trained on it goes through
 * exactly the Hugging Face tokenizer path (src/tokenizer/).
 *
 * The algorithm is the standard one (Sennrich et al.; GPT-2's byte-level
 * form): the added tokens the writer declares (<|endoftext|>, <|im_start|>,
 * <|im_end|>, <think>, </think>, <answer>, </answer>) are cut out of the text
 * first, as the encoder matches them first; the rest is pre-tokenised with the
 * written tokenizer's regex (Qwen2's) into words; each distinct word counts
 * with its frequency; starting from the 256 byte tokens, the most frequent
 * adjacent pair is merged into a new token, again and again. Ties go to the
 * pair with the smaller (left id, right id); the byte tokens have ids 0..255
 * in byte order and merged tokens follow in creation order, so the result
 * does not depend on the order texts were added. Pair counts are updated
 * incrementally (only the words that hold the merged pair are touched) and
 * the best pair comes from a max-heap with lazily refreshed counts.
 *
 * Not here: pre-tokenisation other than that regex (no normaliser: the
 * written tokenizer has none), Unicode-aware merge constraints, dropout.
 * One documented gap: the encoder spells Oniguruma's \s out explicitly and
 * we compile the pattern as PCRE2 reads it; they differ only at U+180E, which
 * at worst makes a merge statistic slightly off, never an encoding wrong.
 */
#ifndef IAPO_DATA_BPE_TRAIN_H
#define IAPO_DATA_BPE_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "iapo.h"

/* 256 byte tokens + the 7 added tokens: a vocabulary with no merges. */
#define IAPO_BPE_MIN_VOCAB 263
#define IAPO_BPE_N_ADDED 7

typedef struct iapo_bpe iapo_bpe;

iapo_status iapo_bpe_new(iapo_bpe **out);
void iapo_bpe_free(iapo_bpe *b);
/* Counts the words of len bytes of text, each `weight` times (weight >= 1).
 * Any bytes are accepted (invalid UTF-8 becomes pieces of its own, as the
 * encoder does). Only before iapo_bpe_learn. */
iapo_status iapo_bpe_add(iapo_bpe *b, const char *text, size_t len, uint64_t weight);
/* Learns up to max_merges merges, stopping early when the most frequent pair
 * is seen fewer than min_freq times (min_freq >= 1). Once per trainer. */
iapo_status iapo_bpe_learn(iapo_bpe *b, int max_merges, uint64_t min_freq);
int iapo_bpe_merge_count(const iapo_bpe *b);
/* Merge i as tokenizer.json spells it: "left right" in byte-level form
 * ("Ġ" for a space). Owned by b. */
const char *iapo_bpe_merge(const iapo_bpe *b, int i);
/* Distinct tokens the merges made (a merge whose result already exists as a
 * token makes none), so the written vocabulary is 256 + this + 7. */
int iapo_bpe_new_tokens(const iapo_bpe *b);
/* Tokens and bytes of all the text added, as the merges learned so far
 * segment it (weights applied; each added token is one token). */
uint64_t iapo_bpe_token_total(const iapo_bpe *b);
uint64_t iapo_bpe_byte_total(const iapo_bpe *b);
/* Writes DIR/tokenizer.json and tokenizer_config.json. */
iapo_status iapo_bpe_write(const iapo_bpe *b, const char *dir);

/* ---- training on the synthetic task's JSONL (iapo data tokenizer) ---- */

typedef struct {
	int vocab_size;	  /* total, added tokens included; >= IAPO_BPE_MIN_VOCAB */
	uint64_t min_freq; /* see iapo_bpe_learn */
	int chat_context; /* also count, once per row, the text the model sees around
			     it: the R1 system prompt (generic task), the one-shot turn
			     and ChatML's role names */
} iapo_bpe_opts;

/* vocab 1024, min_freq 2, chat_context 1. */
void iapo_bpe_opts_default(iapo_bpe_opts *o);

typedef struct {
	int n_merges, vocab_size;
	size_t rows;
	/* Measured by loading the written tokenizer and encoding every row. */
	double prompt_bytes_per_token, completion_bytes_per_token, mean_completion_tokens;
} iapo_bpe_result;

/* Trains on the "prompt" and (when present) "completion" strings of every
 * row of the JSONL files, writes the tokenizer into out_dir, then loads it
 * back and measures it on the same rows. Errors name the file and line. */
iapo_status iapo_bpe_train_files(const char *const *paths, int n_paths, const iapo_bpe_opts *o, const char *out_dir,
				 iapo_bpe_result *res);

#endif
