/*
 * test_chat.c — multi-turn chat templates (iapo_tokenizer_chat_messages) and
 * the reference's prompt rendered through them (src/rl/prompt.c):
 *  1. golden renderings by a Jinja engine we did not write
 *     (tests/oracle/chat_golden.js: @huggingface/jinja on the real Qwen3
 *     template and on Qwen2/2.5/Llama 3/3.1 templates);
 *  2. the reference's 4-message GSM8K and MATH prompts written out by hand
 *     from iapo-reference §2.2, for the real Qwen3 tokenizer and for
 *     Qwen2.5's template (which keeps the one-shot reasoning that Qwen3
 *     drops);
 *  3. Python string semantics the oracle gets wrong, and bad input.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/mem.h"
#include "io/fs.h"
#include "rl/dataset.h"
#include "rl/prompt.h"
#include "test.h"
#include "tokenizer/tokenizer.h"

static const char *path_in(const char *base, const char *name)
{
	static char buf[4][1200];
	static int k;
	char *b = buf[k++ & 3];
	snprintf(b, sizeof buf[0], "%s/%s", base, name);
	return b;
}

static const char *tmp_dir(const char *name)
{
	static char buf[4][1024];
	static int k;
	char *b = buf[k++ & 3];
	snprintf(b, sizeof buf[0], "%s/chat-test/%s", test_env("IAPO_TMP", "/tmp"), name);
	return b;
}

/* A byte-level tokenizer directory whose config carries tpl, bos and eos. */
static iapo_tokenizer *template_tokenizer(const char *name, const char *tpl, const char *bos, const char *eos)
{
	const char *dir = tmp_dir(name);
	CHECK(iapo_tokenizer_write_bytelevel(dir, NULL, 0) == IAPO_OK, "write: %s", iapo_errmsg());
	cJSON *cfg = cJSON_CreateObject();
	cJSON_AddStringToObject(cfg, "chat_template", tpl);
	if (bos) cJSON_AddStringToObject(cfg, "bos_token", bos);
	if (eos) cJSON_AddStringToObject(cfg, "eos_token", eos);
	char *s = cJSON_Print(cfg);
	CHECK(iapo_fs_write_file(path_in(dir, "tokenizer_config.json"), s, strlen(s)) == IAPO_OK, "write config");
	cJSON_free(s);
	cJSON_Delete(cfg);
	iapo_tokenizer *t = NULL;
	CHECK(iapo_tokenizer_load(dir, &t) == IAPO_OK, "load %s: %s", dir, iapo_errmsg());
	return t;
}

static iapo_tokenizer *qwen3_tokenizer(void)
{
	iapo_tokenizer *t = NULL;
	CHECK(iapo_tokenizer_load(path_in(test_fixtures(), "qwen3-tokenizer"), &t) == IAPO_OK, "qwen3 load: %s",
	      iapo_errmsg());
	return t;
}

static void check_render(const iapo_tokenizer *t, const iapo_chat_msg *m, int n, int gen, const char *want,
			 const char *what)
{
	char *out = NULL;
	iapo_status st = iapo_tokenizer_chat_messages(t, m, n, gen, &out);
	CHECK(st == IAPO_OK, "%s: %s", what, iapo_errmsg());
	CHECK(out && !strcmp(out, want), "%s: expected\n[%s]\nfound\n[%s]", what, want, out ? out : "(null)");
	iapo_free(out);
}

/* ---- 1. golden renderings ---- */

static void test_golden(void)
{
	char *text = NULL;
	size_t len;
	const char *path = path_in(test_fixtures(), "chat-golden/golden.json");
	if (iapo_fs_read_file(path, 1 << 24, &text, &len) != IAPO_OK) {
		CHECK(0, "%s: %s (run tests/oracle/make_chat_golden.sh)", path, iapo_errmsg());
		return;
	}
	cJSON *root = cJSON_ParseWithLength(text, len);
	iapo_free(text);
	CHECK(cJSON_IsArray(root) && cJSON_GetArraySize(root) >= 60, "golden.json: expected an array of >= 60 entries");
	const char *names[] = {"qwen3", "qwen25", "qwen2", "llama3", "llama31"};
	int seen[5] = {0};
	iapo_tokenizer *tok[5] = {0};
	tok[0] = qwen3_tokenizer();
	const cJSON *e;
	cJSON_ArrayForEach(e, root)
	{
		const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(e, "template"));
		int k = 0;
		while (k < 5 && (!name || strcmp(name, names[k]))) k++;
		if (k == 5) {
			CHECK(0, "golden: unknown template %s", name ? name : "(null)");
			continue;
		}
		if (!tok[k]) {
			const cJSON *bos = cJSON_GetObjectItem(e, "bos");
			tok[k] = template_tokenizer(name, cJSON_GetStringValue(cJSON_GetObjectItem(e, "tpl")),
						    cJSON_IsString(bos) ? bos->valuestring : NULL,
						    cJSON_GetStringValue(cJSON_GetObjectItem(e, "eos")));
		}
		if (!tok[k]) continue;
		const cJSON *msgs = cJSON_GetObjectItem(e, "messages");
		iapo_chat_msg m[16];
		int n = 0;
		const cJSON *x;
		cJSON_ArrayForEach(x, msgs)
		{
			if (n < 16) m[n++] = (iapo_chat_msg){cJSON_GetStringValue(cJSON_GetObjectItem(x, "role")),
							    cJSON_GetStringValue(cJSON_GetObjectItem(x, "content"))};
		}
		char what[64];
		snprintf(what, sizeof what, "%s conversation %d", name, seen[k]++);
		check_render(tok[k], m, n, cJSON_IsTrue(cJSON_GetObjectItem(e, "gen")),
			     cJSON_GetStringValue(cJSON_GetObjectItem(e, "text")), what);
	}
	for (int k = 0; k < 5; k++) {
		CHECK(seen[k] >= 10, "golden: %d conversations for %s", seen[k], names[k]);
		iapo_tokenizer_free(tok[k]);
	}
	cJSON_Delete(root);
}

/* ---- 2. the reference's prompt, by hand ---- */

/* iapo-reference §2.2, typed from the reference (not from dataset.c). */
#define R1                                                                                                           \
	"A conversation between User and Assistant. The user asks a question, and the Assistant solves it.\n"        \
	"    The assistant first thinks about the reasoning process in the mind and then provides the user\n"         \
	"    with the answer. The reasoning process and answer are enclosed within <think> and\n"                     \
	"    <answer> tags, respectively, i.e., <think> reasoning process here </think>\n"                             \
	"    <answer> answer here </answer>."
#define PROBLEM "Janet has 3 apples. She buys 4 more. How many apples does she have?"

/* Qwen2.5-Instruct's template: no tools branch, as the golden one otherwise. */
static const char qwen25_tpl[] =
	"{%- if messages[0]['role'] == 'system' %}\n        {{- '<|im_start|>system\\n' + messages[0]['content'] + "
	"'<|im_end|>\\n' }}\n    {%- else %}\n        {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. "
	"You are a helpful assistant.<|im_end|>\\n' }}\n    {%- endif %}\n{%- for message in messages %}\n    {%- if "
	"(message.role == \"user\") or (message.role == \"system\" and not loop.first) or (message.role == \"assistant\" "
	"and not message.tool_calls) %}\n        {{- '<|im_start|>' + message.role + '\\n' + message.content + "
	"'<|im_end|>' + '\\n' }}\n    {%- endif %}\n{%- endfor %}\n{%- if add_generation_prompt %}\n    {{- "
	"'<|im_start|>assistant\\n' }}\n{%- endif %}\n";

static void check_prompt(const iapo_tokenizer *t, iapo_data_format f, int one_shot, const char *want, const char *what)
{
	char *out = NULL;
	CHECK(iapo_prompt_render(t, f, NULL, PROBLEM, one_shot, &out) == IAPO_OK, "%s: %s", what, iapo_errmsg());
	CHECK(out && !strcmp(out, want), "%s: expected\n[%s]\nfound\n[%s]", what, want, out ? out : "(null)");
	iapo_free(out);
}

static void test_reference_prompt(void)
{
	/* Qwen2.5: exactly the form iapo-reference §2.2 shows, one-shot reasoning kept. */
	iapo_tokenizer *t = template_tokenizer("qwen25-ref", qwen25_tpl, NULL, "<|im_end|>");
	if (t) {
		check_prompt(t, IAPO_DATA_GSM8K, 1,
			     "<|im_start|>system\n" R1 "\nThe answer must be a single integer.<|im_end|>\n"
			     "<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
			     "<|im_start|>assistant\n<think>To calculate 2+2, we simply add the numbers together: 2 + 2 = "
			     "4.</think>\n<answer>4</answer><|im_end|>\n"
			     "<|im_start|>user\n" PROBLEM "<|im_end|>\n<|im_start|>assistant\n",
			     "qwen2.5 gsm8k");
		check_prompt(t, IAPO_DATA_MATH, 0,
			     "<|im_start|>system\n" R1 "\n<|im_end|>\n<|im_start|>user\n" PROBLEM "<|im_end|>\n"
			     "<|im_start|>assistant\n",
			     "qwen2.5 math, no one-shot");
		iapo_tokenizer_free(t);
	}
	/* Qwen3: the one-shot turn precedes the last user query, so its template
	 * keeps only the text after </think> (newlines stripped). */
	t = qwen3_tokenizer();
	if (!t) return;
	const char *want = "<|im_start|>system\n" R1 "\nThe answer must be a single integer.<|im_end|>\n"
			   "<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
			   "<|im_start|>assistant\n<answer>4</answer><|im_end|>\n"
			   "<|im_start|>user\n" PROBLEM "<|im_end|>\n<|im_start|>assistant\n";
	check_prompt(t, IAPO_DATA_GSM8K, 1, want, "qwen3 gsm8k");
	check_prompt(t, IAPO_DATA_DAPO, 1, want, "qwen3 dapo (same task line)");
	check_prompt(t, IAPO_DATA_MATH, 1,
		     "<|im_start|>system\n" R1 "\n<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
		     "<|im_start|>assistant\n<answer>4</answer><|im_end|>\n"
		     "<|im_start|>user\n" PROBLEM "<|im_end|>\n<|im_start|>assistant\n",
		     "qwen3 math");
	/* An overriding system prompt replaces the whole system message. */
	char *out = NULL;
	CHECK(iapo_prompt_render(t, IAPO_DATA_GSM8K, "Be brief.", "Q", 0, &out) == IAPO_OK && out &&
		      !strcmp(out, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nQ<|im_end|>\n"
				   "<|im_start|>assistant\n"),
	      "custom system: %s", out ? out : iapo_errmsg());
	iapo_free(out);
	/* Tokens: the same as encoding the text; the chat frame's special ids. */
	int *ids = NULL, *ids2 = NULL;
	size_t n = 0, cap = 0, n2 = 0, cap2 = 0;
	CHECK(iapo_prompt_tokens(t, IAPO_DATA_GSM8K, NULL, PROBLEM, 1, &ids, &n, &cap) == IAPO_OK, "tokens: %s",
	      iapo_errmsg());
	CHECK(iapo_tokenizer_encode(t, want, strlen(want), &ids2, &n2, &cap2) == IAPO_OK, "encode");
	CHECK(n == n2 && n > 100 && !memcmp(ids, ids2, n * sizeof *ids), "prompt tokens differ from the text's (%zu, %zu)",
	      n, n2);
	CHECK(n > 3 && ids[0] == 151644 && ids[n - 3] == 151644 && ids[n - 2] == 77091 && ids[n - 1] == 198,
	      "frame ids");
	int n_think = 0;
	for (size_t i = 0; i < n; i++) n_think += ids[i] == 151667; /* <think> */
	CHECK(n_think == 2, "the system prompt's two <think> only (Qwen3 dropped the one-shot's): %d", n_think);
	iapo_free(ids);
	iapo_free(ids2);
	iapo_tokenizer_free(t);
}

/* ---- 3. Python semantics, other templates, bad input ---- */

static void test_qwen3_details(void)
{
	iapo_tokenizer *t = qwen3_tokenizer();
	if (!t) return;
	/* str.lstrip('\n') keeps a leading space (the JS oracle would strip it). */
	iapo_chat_msg a[] = {{"user", "q"}, {"assistant", " a "}};
	check_render(t, a, 2, 0, "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n a <|im_end|>\n",
		     "lstrip('\\n') only");
	iapo_chat_msg b[] = {{"user", "q"}, {"assistant", "<think> r \n</think>\n \nans"}};
	check_render(t, b, 2, 0, "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n<think>\n r \n</think>\n\n \nans<|im_end|>\n",
		     "strip('\\n') keeps spaces");
	/* The one-shot history rule with a reasoning turn that is not last. */
	iapo_chat_msg c[] = {{"user", "q"}, {"assistant", "<think>r</think>a"}, {"assistant", "b"}};
	check_render(t, c, 3, 1,
		     "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n<think>\nr\n</think>\n\na<|im_end|>\n"
		     "<|im_start|>assistant\n<think>\n\n</think>\n\nb<|im_end|>\n<|im_start|>assistant\n",
		     "reasoning after the last query");
	/* iapo_tokenizer_chat is the one- or two-message case. */
	char *x = NULL, *y = NULL;
	iapo_chat_msg d[] = {{"system", "S"}, {"user", "U"}};
	CHECK(iapo_tokenizer_chat(t, "S", "U", 1, &x) == IAPO_OK && iapo_tokenizer_chat_messages(t, d, 2, 1, &y) == IAPO_OK &&
		      !strcmp(x, y),
	      "chat vs chat_messages");
	iapo_free(x);
	iapo_free(y);
	iapo_tokenizer_free(t);
}

static void test_errors(void)
{
	iapo_tokenizer *t = template_tokenizer("plain", "{% for m in messages %}<|im_start|>{{ m.content }}{% endfor %}", NULL,
					       NULL);
	if (!t) return;
	char *out = (char *)1;
	iapo_chat_msg bad[] = {{"user", "q"}, {"tool", "x"}};
	CHECK(iapo_tokenizer_chat_messages(t, bad, 2, 1, &out) == IAPO_ERR_ARG && !out && strstr(iapo_errmsg(), "message 1") &&
		      strstr(iapo_errmsg(), "tool"),
	      "tool role: %s", iapo_errmsg());
	iapo_chat_msg null_content[] = {{"user", NULL}};
	CHECK(iapo_tokenizer_chat_messages(t, null_content, 1, 1, &out) == IAPO_ERR_ARG && !out, "NULL content");
	CHECK(iapo_tokenizer_chat_messages(t, bad, 0, 1, &out) == IAPO_ERR_ARG && !out, "no messages");
	CHECK(iapo_tokenizer_chat_messages(NULL, bad, 1, 1, &out) == IAPO_ERR_ARG && !out, "no tokenizer");
	iapo_tokenizer_free(t);

	/* A ChatML template that rewrites <think> some other way (QwQ-like):
	 * its generation prompt's opened <think> is kept; assistant turns are
	 * refused rather than rendered wrongly. */
	t = template_tokenizer("qwq-like",
			       "{%- for message in messages %}{%- if message.role == 'assistant' %}{%- set content = "
			       "message.content.split('</think>')[-1].lstrip('\\n') %}{{- '<|im_start|>assistant\\n' + content + "
			       "'<|im_end|>\\n' }}{%- else %}{{- '<|im_start|>' + message.role + '\\n' + message.content + "
			       "'<|im_end|>\\n' }}{%- endif %}{%- endfor %}{%- if add_generation_prompt %}{{- "
			       "'<|im_start|>assistant\\n<think>\\n' }}{%- endif %}",
			       NULL, "<|im_end|>");
	if (!t) return;
	iapo_chat_msg u[] = {{"user", "q"}};
	check_render(t, u, 1, 1, "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n<think>\n", "think prefill");
	iapo_chat_msg ua[] = {{"user", "q"}, {"assistant", "a"}, {"user", "q2"}};
	out = NULL;
	CHECK(iapo_tokenizer_chat_messages(t, ua, 3, 1, &out) == IAPO_ERR_UNSUPPORTED && !out &&
		      strstr(iapo_errmsg(), "tokenizer_config.json") && strstr(iapo_errmsg(), "message 1"),
	      "other think template: %s", iapo_errmsg());
	CHECK(iapo_prompt_render(t, IAPO_DATA_GSM8K, NULL, "x", 1, &out) == IAPO_ERR_UNSUPPORTED && !out,
	      "prompt through an unsupported template");
	iapo_tokenizer_free(t);
}

int main(void)
{
	RUN(test_golden);
	RUN(test_reference_prompt);
	RUN(test_qwen3_details);
	RUN(test_errors);
	TEST_END();
}
