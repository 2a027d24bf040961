/*
 * chat.c — the chat templates of the models we train, written out by hand
 * instead of interpreting Jinja: ChatML (Qwen2, Qwen2.5, Qwen3) and Llama 3
 * (3.0's plain one; 3.1/3.2/3.3's with the "Cutting Knowledge Date" system
 * header). The template text in tokenizer_config.json only chooses which one
 * and supplies its constants: ChatML's default system prompt (the literal
 * '<|im_start|>system\n...<|im_end|>' Qwen2/2.5 insert when there is no
 * system message; Qwen3 has none) and Llama's fallback date string.
 *
 * Not here: tools, multi-turn histories, assistant messages, Qwen3's
 * enable_thinking=False variant. Any other template is UNSUPPORTED, with the
 * file named, so that a model is never prompted in a format it was not
 * trained on.
 */
#include <stdio.h>
#include <string.h>

#include "core/mem.h"
#include "core/status.h"
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

typedef struct {
	char *p;
	size_t len, cap;
	int failed;
} sbuf;

static void put(sbuf *b, const char *s, size_t n)
{
	if (b->failed) return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + n + 1) cap *= 2;
		char *q = iapo_realloc(b->p, cap);
		if (!q) {
			b->failed = 1;
			return;
		}
		b->p = q;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void puts_(sbuf *b, const char *s) { put(b, s, strlen(s)); }

/* Jinja's trim: Python's str.strip() of whitespace. */
static void put_trimmed(sbuf *b, const char *s)
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
	put(b, s + i, e - i);
}

iapo_status iapo_tokenizer_chat(const iapo_tokenizer *t, const char *system, const char *user,
				int add_generation_prompt, char **out)
{
	*out = NULL;
	if (!t || !user) return iapo_fail(IAPO_ERR_ARG, "iapo_tokenizer_chat: expected a tokenizer and a user message");
	const char *src = t->chat_template_src ? t->chat_template_src : t->cfg_path;
	if (!t->chat_template)
		return iapo_fail(IAPO_ERR_UNSUPPORTED, "%s: chat_template: expected a chat template, found none", src);
	if (t->chat_kind == CHAT_NONE)
		return iapo_fail(IAPO_ERR_UNSUPPORTED,
				 "%s: chat_template: expected a ChatML (Qwen) or Llama 3 template, found another kind (\"%.60s...\")",
				 src, t->chat_template);
	sbuf b = {0};
	if (t->chat_kind == CHAT_CHATML) {
		const char *sys = system ? system : t->default_system;
		if (sys) {
			puts_(&b, "<|im_start|>system\n");
			puts_(&b, sys);
			puts_(&b, "<|im_end|>\n");
		}
		puts_(&b, "<|im_start|>user\n");
		puts_(&b, user);
		puts_(&b, "<|im_end|>\n");
		if (add_generation_prompt) puts_(&b, "<|im_start|>assistant\n");
	} else {
		if (t->bos_token) puts_(&b, t->bos_token);
		if (t->chat_kind == CHAT_LLAMA31) {
			puts_(&b, "<|start_header_id|>system<|end_header_id|>\n\n");
			puts_(&b, "Cutting Knowledge Date: December 2023\nToday Date: ");
			puts_(&b, t->llama_date);
			puts_(&b, "\n\n");
			put_trimmed(&b, system ? system : "");
			puts_(&b, "<|eot_id|>");
		} else if (system) {
			puts_(&b, "<|start_header_id|>system<|end_header_id|>\n\n");
			put_trimmed(&b, system);
			puts_(&b, "<|eot_id|>");
		}
		puts_(&b, "<|start_header_id|>user<|end_header_id|>\n\n");
		put_trimmed(&b, user);
		puts_(&b, "<|eot_id|>");
		if (add_generation_prompt) puts_(&b, "<|start_header_id|>assistant<|end_header_id|>\n\n");
	}
	if (b.failed || !b.p) {
		iapo_free(b.p);
		return iapo_fail(IAPO_ERR_NOMEM, "out of memory rendering a chat template");
	}
	*out = b.p;
	return IAPO_OK;
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
