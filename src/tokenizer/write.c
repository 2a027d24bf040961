/*
 * write.c — writes the smallest real Hugging Face tokenizer: byte-level BPE
 * with the 256 byte tokens (plus any merges a caller gives), Qwen2's
 * pre-tokenizer regex, ChatML's special tokens and a ChatML chat template.
 * `iapo init` gives tiny random models this tokenizer so that they exercise
 * the same loading and encoding path as real ones, and HF's own code can
 * load the directory too (merges in the "a b" string form and no
 * ignore_merges field, which every tokenizers version reads).
 *
 * No normaliser: any byte string, valid UTF-8 or not, round-trips exactly.
 */
#include <stdio.h>
#include <string.h>

#include "core/mem.h"
#include "core/status.h"
#include "io/fs.h"
#include "io/json.h"
#include "tokenizer/tok_internal.h"

static const char qwen2_pattern[] =
	"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

static const char chatml_template[] =
	"{%- for message in messages %}{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
	"'<|im_end|>' + '\\n' }}{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";

static const struct {
	const char *content;
	int special;
} specials[] = {
	{"<|endoftext|>", 1}, {"<|im_start|>", 1}, {"<|im_end|>", 1}, {"<think>", 0},
	{"</think>", 0},      {"<answer>", 0},     {"</answer>", 0},
};
#define N_SPECIALS ((int)(sizeof specials / sizeof specials[0]))

static cJSON *bytelevel_obj(void)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "type", "ByteLevel");
	cJSON_AddFalseToObject(o, "add_prefix_space");
	cJSON_AddFalseToObject(o, "trim_offsets");
	cJSON_AddFalseToObject(o, "use_regex");
	return o;
}

static cJSON *added_obj(const char *content, int special, int id)
{
	cJSON *a = cJSON_CreateObject();
	if (id >= 0) cJSON_AddNumberToObject(a, "id", id);
	cJSON_AddStringToObject(a, "content", content);
	cJSON_AddFalseToObject(a, "single_word");
	cJSON_AddFalseToObject(a, "lstrip");
	cJSON_AddFalseToObject(a, "rstrip");
	cJSON_AddFalseToObject(a, "normalized");
	cJSON_AddBoolToObject(a, "special", special);
	return a;
}

/* Builds tokenizer.json; *n_vocab receives the id after the last model token. */
static iapo_status build_tokenizer_json(const char *const *merges, int n_merges, cJSON **out, int *n_vocab)
{
	cJSON *root = cJSON_CreateObject(), *vocab = cJSON_CreateObject(), *mlist = cJSON_CreateArray();
	iapo_status st = IAPO_OK;
	char *joined = NULL;
	*out = NULL;
	if (!root || !vocab || !mlist) goto nomem;
	int next = 0;
	for (int b = 0; b < 256; b++) {
		char s[5];
		s[tok_utf8_put(s, (uint32_t)tok_byte_to_cp(b))] = '\0';
		if (!cJSON_AddNumberToObject(vocab, s, next++)) goto nomem;
	}
	for (int i = 0; i < n_merges; i++) {
		const char *m = merges[i], *sp = m ? strchr(m, ' ') : NULL;
		if (!sp || strchr(sp + 1, ' ') || sp == m || !sp[1]) {
			st = iapo_fail(IAPO_ERR_ARG, "merges[%d]: expected \"left right\" with one space, found \"%s\"", i,
				       m ? m : "(null)");
			goto fail;
		}
		size_t la = (size_t)(sp - m), lb = strlen(sp + 1);
		joined = iapo_malloc(la + lb + 1);
		if (!joined) goto nomem;
		memcpy(joined, m, la);
		joined[la] = '\0';
		int known_a = cJSON_GetObjectItemCaseSensitive(vocab, joined) != NULL;
		int known_b = cJSON_GetObjectItemCaseSensitive(vocab, sp + 1) != NULL;
		if (!known_a || !known_b) {
			st = iapo_fail(IAPO_ERR_ARG, "merges[%d]: expected known tokens, found \"%s\" which is not in the vocabulary",
				       i, known_a ? sp + 1 : joined);
			goto fail;
		}
		memcpy(joined + la, sp + 1, lb + 1);
		if (!cJSON_GetObjectItemCaseSensitive(vocab, joined) && !cJSON_AddNumberToObject(vocab, joined, next++))
			goto nomem;
		iapo_free(joined);
		joined = NULL;
		if (!cJSON_AddItemToArray(mlist, cJSON_CreateString(m))) goto nomem;
	}
	*n_vocab = next;

	cJSON_AddStringToObject(root, "version", "1.0");
	cJSON_AddNullToObject(root, "truncation");
	cJSON_AddNullToObject(root, "padding");
	cJSON *added = cJSON_AddArrayToObject(root, "added_tokens");
	if (!added) goto nomem;
	for (int i = 0; i < N_SPECIALS; i++) cJSON_AddItemToArray(added, added_obj(specials[i].content, specials[i].special, next + i));
	cJSON_AddNullToObject(root, "normalizer");
	cJSON *pre = cJSON_AddObjectToObject(root, "pre_tokenizer");
	if (!pre) goto nomem;
	cJSON_AddStringToObject(pre, "type", "Sequence");
	cJSON *steps = cJSON_AddArrayToObject(pre, "pretokenizers");
	cJSON *split = cJSON_CreateObject();
	cJSON_AddStringToObject(split, "type", "Split");
	cJSON *pat = cJSON_AddObjectToObject(split, "pattern");
	cJSON_AddStringToObject(pat, "Regex", qwen2_pattern);
	cJSON_AddStringToObject(split, "behavior", "Isolated");
	cJSON_AddFalseToObject(split, "invert");
	cJSON_AddItemToArray(steps, split);
	cJSON_AddItemToArray(steps, bytelevel_obj());
	cJSON_AddItemToObject(root, "post_processor", bytelevel_obj());
	cJSON_AddItemToObject(root, "decoder", bytelevel_obj());
	cJSON *model = cJSON_AddObjectToObject(root, "model");
	if (!model) goto nomem;
	cJSON_AddStringToObject(model, "type", "BPE");
	cJSON_AddNullToObject(model, "dropout");
	cJSON_AddNullToObject(model, "unk_token");
	cJSON_AddStringToObject(model, "continuing_subword_prefix", "");
	cJSON_AddStringToObject(model, "end_of_word_suffix", "");
	cJSON_AddFalseToObject(model, "fuse_unk");
	cJSON_AddFalseToObject(model, "byte_fallback");
	cJSON_AddItemToObject(model, "vocab", vocab);
	cJSON_AddItemToObject(model, "merges", mlist);
	vocab = mlist = NULL;
	*out = root;
	return IAPO_OK;
nomem:
	st = iapo_fail(IAPO_ERR_NOMEM, "out of memory building tokenizer.json");
fail:
	iapo_free(joined);
	cJSON_Delete(root);
	cJSON_Delete(vocab);
	cJSON_Delete(mlist);
	return st;
}

static cJSON *build_config(int first_added)
{
	cJSON *c = cJSON_CreateObject();
	cJSON_AddFalseToObject(c, "add_bos_token");
	cJSON_AddFalseToObject(c, "add_prefix_space");
	cJSON *dec = cJSON_AddObjectToObject(c, "added_tokens_decoder");
	for (int i = 0; i < N_SPECIALS; i++) {
		char key[16];
		snprintf(key, sizeof key, "%d", first_added + i);
		cJSON_AddItemToObject(dec, key, added_obj(specials[i].content, specials[i].special, -1));
	}
	cJSON *extra = cJSON_AddArrayToObject(c, "additional_special_tokens");
	cJSON_AddItemToArray(extra, cJSON_CreateString("<|im_start|>"));
	cJSON_AddItemToArray(extra, cJSON_CreateString("<|im_end|>"));
	cJSON_AddNullToObject(c, "bos_token");
	cJSON_AddStringToObject(c, "chat_template", chatml_template);
	cJSON_AddFalseToObject(c, "clean_up_tokenization_spaces");
	cJSON_AddStringToObject(c, "eos_token", "<|im_end|>");
	cJSON_AddStringToObject(c, "errors", "replace");
	cJSON_AddNumberToObject(c, "model_max_length", 32768);
	cJSON_AddStringToObject(c, "pad_token", "<|endoftext|>");
	cJSON_AddFalseToObject(c, "split_special_tokens");
	cJSON_AddStringToObject(c, "tokenizer_class", "Qwen2Tokenizer");
	cJSON_AddNullToObject(c, "unk_token");
	return c;
}

static iapo_status write_json(const char *dir, const char *name, const cJSON *v)
{
	char path[4096];
	IAPO_TRY(iapo_fs_join(path, sizeof path, dir, name));
	char *text = cJSON_Print(v);
	if (!text) return iapo_fail(IAPO_ERR_NOMEM, "%s: out of memory printing JSON", path);
	iapo_status st = iapo_fs_write_file_atomic(path, text, strlen(text));
	cJSON_free(text);
	return st;
}

iapo_status iapo_tokenizer_write_bytelevel(const char *dir, const char *const *merges, int n_merges)
{
	if (!dir || !*dir || n_merges < 0 || (n_merges && !merges))
		return iapo_fail(IAPO_ERR_ARG, "iapo_tokenizer_write_bytelevel: expected a directory and merges");
	iapo_json_init();
	cJSON *tok = NULL, *cfg = NULL;
	int n_vocab = 0;
	iapo_status st;
	IAPO_CHECK(st, build_tokenizer_json(merges, n_merges, &tok, &n_vocab));
	cfg = build_config(n_vocab);
	if (!cfg) {
		st = iapo_fail(IAPO_ERR_NOMEM, "out of memory building tokenizer_config.json");
		goto fail;
	}
	IAPO_CHECK(st, iapo_fs_mkdir_p(dir));
	IAPO_CHECK(st, write_json(dir, "tokenizer.json", tok));
	IAPO_CHECK(st, write_json(dir, "tokenizer_config.json", cfg));
fail:
	cJSON_Delete(tok);
	cJSON_Delete(cfg);
	return st;
}
