/*
 * prompt.c — the reference's conversation rendered through the model's chat
 * template and tokenised. Thread-safe: no state beyond the read-only
 * tokenizer.
 */
#include <string.h>

#include "core/mem.h"
#include "rl/prompt.h"

iapo_status iapo_prompt_render(const iapo_tokenizer *tok, iapo_data_format f, const char *system, const char *problem,
			       int one_shot, char **text)
{
	iapo_prompt_msg pm[4];
	iapo_chat_msg cm[4];
	int k = iapo_prompt_messages(f, system, problem, one_shot, pm);
	for (int i = 0; i < k; i++) cm[i] = (iapo_chat_msg){pm[i].role, pm[i].content};
	return iapo_tokenizer_chat_messages(tok, cm, k, 1, text);
}

iapo_status iapo_prompt_tokens(const iapo_tokenizer *tok, iapo_data_format f, const char *system, const char *problem,
			       int one_shot, int **ids, size_t *n, size_t *cap)
{
	char *text = NULL;
	*n = 0;
	iapo_status st = iapo_prompt_render(tok, f, system, problem, one_shot, &text);
	if (st == IAPO_OK) st = iapo_tokenizer_encode(tok, text, strlen(text), ids, n, cap);
	iapo_free(text);
	return st;
}
