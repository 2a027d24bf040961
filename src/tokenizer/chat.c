/*
 * chat.c — the chat templates of the models we train, written out by hand
 * instead of interpreting Jinja: ChatML (Qwen2, Qwen2.5, Qwen3) and Llama 3
 * (3.0's plain one; 3.1/3.2/3.3's with the "Cutting Knowledge Date" system
 * header). The template text in tokenizer_config.json only chooses which one
 * and supplies its constants: ChatML's default system prompt (the literal
 * '<|im_start|>system\n...<|im_end|>' Qwen2/2.5 insert when there is no
 * system message; Qwen3 has none) and Llama's fallback date string.
 *
 * Conversations of system, user and assistant turns render as HF's
 * apply_chat_template(messages, tokenize=False) would, including Qwen3's
 * rewriting of <think> blocks in assistant turns (reasoning dropped before
 * the last user query, re-spaced after it).
 *
 * Not here: tools and tool turns, a separate reasoning_content field, Qwen3's
 * enable_thinking=False variant. Any other template is UNSUPPORTED, with the
 * file named, so that a model is never prompted in a format it was not
 * trained on.
 */
#include <stdio.h>
#include <string.h>

#include "core/mem.h"
#include "core/status.h"
#include "core/text.h"
#include "tokenizer/tok_internal.h"

/* Copies a Jinja string literal's text up to `end` (exclusive) with its
 * escapes resolved; NULL when it meets a quote (the text is not one literal). */
static char *literal_until(const char *p, const char *end)
{
	char *out = iapo_malloc((size_t)(end - p) + 1), *o = out;
	if (!out) return NULL;
	while (p < end) {
		if (*p == '\'' || *p == '"') {
			iapo_free(out);
			return NULL;
		}
		if (*p == '\\' && p + 1 < end) {
			char e = p[1];
			*o++ = e == 'n' ? '\n' : e == 't' ? '\t' : e;
			p += 2;
			continue;
		}
		*o++ = *p++;
	}
	*o = '\0';
	return out;
}

static iapo_status chatml_default_system(iapo_tokenizer *t)
{
	static const char head[] = "<|im_start|>system";
	for (const char *p = strstr(t->chat_template, head); p; p = strstr(p + 1, head)) {
		const char *q = p + sizeof head - 1;
		if (q[0] == '\\' && q[1] == 'n')
			q += 2;
		else if (q[0] == '\n')
			q += 1;
		else
			continue;
		const char *end = strstr(q, "<|im_end|>");
		if (!end) break;
		char *s = literal_until(q, end);
		if (s) {
			t->default_system = s;
			return IAPO_OK;
		}
	}
	return IAPO_OK;
}

static iapo_status llama_date(iapo_tokenizer *t)
{
	static const char key[] = "date_string = \"";
	const char *p = strstr(t->chat_template, key);
	const char *d = "26 Jul 2024";
	size_t n = strlen(d);
	if (p) {
		p += sizeof key - 1;
		const char *e = strchr(p, '"');
		if (e && e - p < 64) {
			d = p;
			n = (size_t)(e - p);
		}
	}
	t->llama_date = iapo_malloc(n + 1);
	if (!t->llama_date) return iapo_fail(IAPO_ERR_NOMEM, "out of memory");
	memcpy(t->llama_date, d, n);
	t->llama_date[n] = '\0';
	return IAPO_OK;
}

iapo_status tok_chat_setup(iapo_tokenizer *t)
{
	t->chat_kind = CHAT_NONE;
	const char *tpl = t->chat_template;
	if (!tpl) return IAPO_OK;
	if (strstr(tpl, "<|im_start|>")) {
		t->chat_kind = CHAT_CHATML;
		/* Qwen3 keeps an assistant turn's reasoning only after the last
		 * user query (its template tracks that index by this name). */
		if (strstr(tpl, "last_query_index"))
			t->chat_think = THINK_QWEN3;
		else if (strstr(tpl, "</think>"))
			t->chat_think = THINK_OTHER;
		t->gen_think = strstr(tpl, "<|im_start|>assistant\\n<think>\\n") != NULL;
		return chatml_default_system(t);
	}
	if (strstr(tpl, "<|start_header_id|>") && strstr(tpl, "<|eot_id|>")) {
		if (strstr(tpl, "Cutting Knowledge Date")) {
			t->chat_kind = CHAT_LLAMA31;
			return llama_date(t);
		}
		t->chat_kind = CHAT_LLAMA3;
	}
	return IAPO_OK;
}

/* Jinja's trim: Python's str.strip() of whitespace. */
static void put_trimmed(iapo_text *b, const char *s)
{
	size_t n = strlen(s), i = 0;
	while (i < n) {
		uint32_t cp;
		int k = tok_utf8_char((const unsigned char *)s + i, n - i, &cp);
		if (!k || !tok_py_isspace(cp)) break;
		i += (size_t)k;
	}
	size_t e = n;
	while (e > i) {
		size_t k = 1;
		uint32_t cp = 0;
		while (k <= 4 && k <= e - i && !(tok_utf8_char((const unsigned char *)s + e - k, k, &cp) == (int)k)) k++;
		if (k > 4 || k > e - i || !tok_py_isspace(cp)) break;
		e -= k;
	}
	iapo_text_put(b, s + i, e - i);
}

/* Python's str.lstrip/rstrip of one character set, on [*b, *e). */
static void strip_chars(const char **b, const char **e, const char *set, int left, int right)
{
	while (left && *b < *e && strchr(set, **b)) (*b)++;
	while (right && *e > *b && strchr(set, (*e)[-1])) (*e)--;
}

/* Last occurrence of needle in [b, e), or NULL. */
static const char *find_last(const char *b, const char *e, const char *needle)
{
	size_t n = strlen(needle);
	if ((size_t)(e - b) < n) return NULL;
	for (size_t i = (size_t)(e - b) - n + 1; i-- > 0;)
		if (!memcmp(b + i, needle, n)) return b + i;
	return NULL;
}

static const char *find_first(const char *b, const char *e, const char *needle)
{
	size_t n = strlen(needle);
	for (size_t i = 0; i + n <= (size_t)(e - b); i++)
		if (!memcmp(b + i, needle, n)) return b + i;
	return NULL;
}

static int starts_with(const char *s, const char *pre) { return !strncmp(s, pre, strlen(pre)); }

static int ends_with(const char *s, const char *suf)
{
	size_t n = strlen(s), k = strlen(suf);
	return n >= k && !memcmp(s + n - k, suf, k);
}

/* Qwen3's assistant turn (its template's "elif message.role == 'assistant'"
 * branch without tools): the text after the last </think> is the answer; the
 * text before the first </think>, after its last <think>, is the reasoning.
 * Reasoning is written out only for turns after the last user query. */
static void qwen3_assistant(iapo_text *b, const char *content, int after_last_query, int is_last)
{
	const char *cb = content, *ce = content + strlen(content);
	const char *rb = ce, *re = ce; /* empty reasoning */
	const char *close = find_first(cb, ce, "</think>");
	if (close) {
		const char *last = find_last(cb, ce, "</think>");
		rb = content;
		re = close;
		strip_chars(&rb, &re, "\n", 0, 1);
		const char *open = find_last(rb, re, "<think>");
		if (open) rb = open + strlen("<think>");
		strip_chars(&rb, &re, "\n", 1, 0);
		cb = last + strlen("</think>");
		strip_chars(&cb, &ce, "\n", 1, 0);
	}
	iapo_text_puts(b, "<|im_start|>assistant\n");
	if (after_last_query && (is_last || re > rb)) {
		strip_chars(&rb, &re, "\n", 1, 1);
		strip_chars(&cb, &ce, "\n", 1, 0);
		iapo_text_puts(b, "<think>\n");
		iapo_text_put(b, rb, (size_t)(re - rb));
		iapo_text_puts(b, "\n</think>\n\n");
	}
	iapo_text_put(b, cb, (size_t)(ce - cb));
	iapo_text_puts(b, "<|im_end|>\n");
}

static iapo_status render_chatml(const iapo_tokenizer *t, const iapo_chat_msg *m, int n, int gen, iapo_text *b)
{
	int first = 0;
	if (!strcmp(m[0].role, "system")) {
		iapo_text_puts(b, "<|im_start|>system\n");
		iapo_text_puts(b, m[0].content);
		iapo_text_puts(b, "<|im_end|>\n");
		first = 1;
	} else if (t->default_system) {
		iapo_text_puts(b, "<|im_start|>system\n");
		iapo_text_puts(b, t->default_system);
		iapo_text_puts(b, "<|im_end|>\n");
	}
	/* Qwen3: the last user message that is not a tool response (the last
	 * message when there is none). */
	int last_query = n - 1;
	for (int i = n - 1; i >= 0; i--)
		if (!strcmp(m[i].role, "user") &&
		    !(starts_with(m[i].content, "<tool_response>") && ends_with(m[i].content, "</tool_response>"))) {
			last_query = i;
			break;
		}
	for (int i = first; i < n; i++) {
		if (!strcmp(m[i].role, "assistant") && t->chat_think == THINK_QWEN3) {
			qwen3_assistant(b, m[i].content, i > last_query, i == n - 1);
			continue;
		}
		iapo_text_puts(b, "<|im_start|>");
		iapo_text_puts(b, m[i].role);
		iapo_text_puts(b, "\n");
		iapo_text_puts(b, m[i].content);
		iapo_text_puts(b, "<|im_end|>\n");
	}
	if (gen) iapo_text_puts(b, t->gen_think ? "<|im_start|>assistant\n<think>\n" : "<|im_start|>assistant\n");
	return IAPO_OK;
}

static void llama_turn(iapo_text *b, const char *role, const char *content)
{
	iapo_text_puts(b, "<|start_header_id|>");
	iapo_text_puts(b, role);
	iapo_text_puts(b, "<|end_header_id|>\n\n");
	put_trimmed(b, content);
	iapo_text_puts(b, "<|eot_id|>");
}

static void render_llama(const iapo_tokenizer *t, const iapo_chat_msg *m, int n, int gen, iapo_text *b)
{
	if (t->bos_token) iapo_text_puts(b, t->bos_token);
	int first = 0;
	if (t->chat_kind == CHAT_LLAMA31) {
		/* 3.1+ always opens with a system header holding the dates, then
		 * the first message's content when that message is a system one. */
		iapo_text_puts(b, "<|start_header_id|>system<|end_header_id|>\n\n");
		iapo_text_puts(b, "Cutting Knowledge Date: December 2023\nToday Date: ");
		iapo_text_puts(b, t->llama_date);
		iapo_text_puts(b, "\n\n");
		if (!strcmp(m[0].role, "system")) {
			put_trimmed(b, m[0].content);
			first = 1;
		}
		iapo_text_puts(b, "<|eot_id|>");
	}
	for (int i = first; i < n; i++) llama_turn(b, m[i].role, m[i].content);
	if (gen) iapo_text_puts(b, "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

iapo_status iapo_tokenizer_chat_messages(const iapo_tokenizer *t, const iapo_chat_msg *msgs, int n,
					 int add_generation_prompt, char **out)
{
	if (out) *out = NULL;
	if (!t || !msgs || n < 1 || !out)
		return iapo_fail(IAPO_ERR_ARG, "iapo_tokenizer_chat_messages: expected a tokenizer and at least one message");
	const char *src = t->chat_template_src ? t->chat_template_src : t->cfg_path;
	if (!t->chat_template)
		return iapo_fail(IAPO_ERR_UNSUPPORTED, "%s: chat_template: expected a chat template, found none", src);
	if (t->chat_kind == CHAT_NONE)
		return iapo_fail(IAPO_ERR_UNSUPPORTED,
				 "%s: chat_template: expected a ChatML (Qwen) or Llama 3 template, found another kind (\"%.60s...\")",
				 src, t->chat_template);
	for (int i = 0; i < n; i++) {
		const char *r = msgs[i].role;
		if (!r || !msgs[i].content)
			return iapo_fail(IAPO_ERR_ARG, "chat message %d: expected a role and a content, found NULL", i);
		if (strcmp(r, "system") && strcmp(r, "user") && strcmp(r, "assistant"))
			return iapo_fail(IAPO_ERR_ARG, "chat message %d: role: expected system, user or assistant, found '%.40s'",
					 i, r);
		if (!strcmp(r, "assistant") && t->chat_kind == CHAT_CHATML && t->chat_think == THINK_OTHER)
			return iapo_fail(IAPO_ERR_UNSUPPORTED,
					 "%s: chat_template: assistant turns of a template that rewrites <think> blocks other "
					 "than Qwen3's are not rendered (message %d)",
					 src, i);
	}
	iapo_text b = {0};
	if (t->chat_kind == CHAT_CHATML)
		render_chatml(t, msgs, n, add_generation_prompt, &b);
	else
		render_llama(t, msgs, n, add_generation_prompt, &b);
	if (b.failed || !b.p) {
		iapo_text_free(&b);
		return iapo_fail(IAPO_ERR_NOMEM, "out of memory rendering a chat template");
	}
	*out = b.p;
	return IAPO_OK;
}

iapo_status iapo_tokenizer_chat(const iapo_tokenizer *t, const char *system, const char *user,
				int add_generation_prompt, char **out)
{
	if (out) *out = NULL;
	if (!t || !user || !out) return iapo_fail(IAPO_ERR_ARG, "iapo_tokenizer_chat: expected a tokenizer and a user message");
	iapo_chat_msg m[2] = {{"system", system}, {"user", user}};
	return system ? iapo_tokenizer_chat_messages(t, m, 2, add_generation_prompt, out)
		      : iapo_tokenizer_chat_messages(t, m + 1, 1, add_generation_prompt, out);
}

int iapo_tokenizer_eos_ids(const iapo_tokenizer *t, int *ids, int max)
{
	const char *names[5];
	int k = 0, n = 0;
	if (t->eos_token) names[k++] = t->eos_token;
	if (t->chat_kind == CHAT_CHATML) {
		names[k++] = "<|im_end|>";
		names[k++] = "<|endoftext|>";
	} else if (t->chat_kind == CHAT_LLAMA3 || t->chat_kind == CHAT_LLAMA31) {
		names[k++] = "<|eot_id|>";
		names[k++] = "<|end_of_text|>";
		names[k++] = "<|eom_id|>";
	}
	for (int i = 0; i < k && n < max; i++) {
		int id = iapo_tokenizer_token_id(t, names[i]), dup = 0;
		for (int j = 0; j < n; j++) dup |= ids[j] == id;
		if (id >= 0 && !dup) ids[n++] = id;
	}
	return n;
}
