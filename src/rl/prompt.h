/*
 * prompt.h — the reference's prompt for one problem (iapo-reference §2.2) as
 * the text and token ids a model is given: the conversation of
 * iapo_prompt_messages (system, optional one-shot turn, the problem) rendered
 * with the model's own chat template (src/tokenizer/chat.c), generation
 * prompt included, nothing pre-filled.
 *
 * Not here: the messages themselves (dataset.h), truncation of long prompts
 * (the caller decides whether a prompt over its budget is skipped or an
 * error).
 */
#ifndef IAPO_RL_PROMPT_H
#define IAPO_RL_PROMPT_H

#include <stddef.h>

#include "iapo.h"
#include "rl/dataset.h"
#include "tokenizer/tokenizer.h"

/* Renders the prompt for `problem`: system NULL means iapo_prompt_system(f);
 * one_shot adds the "What is 2+2?" turn. *text is malloc'd (iapo_free). A
 * tokenizer without a known chat template is UNSUPPORTED (naming its file). */
iapo_status iapo_prompt_render(const iapo_tokenizer *tok, iapo_data_format f, const char *system, const char *problem,
			       int one_shot, char **text);

/* The same, tokenised: *ids is a growable buffer like iapo_tokenizer_encode's
 * (may start NULL with *cap 0), *n receives the count. */
iapo_status iapo_prompt_tokens(const iapo_tokenizer *tok, iapo_data_format f, const char *system, const char *problem,
			       int one_shot, int **ids, size_t *n, size_t *cap);

#endif
