/*
 * tokenizer.h — the byte-level BPE tokenizer of Hugging Face models (Qwen2,
 * Qwen2.5, Qwen3, Llama 3), loaded from a model directory's tokenizer.json and
 * tokenizer_config.json, exact to HF's `tokenizers` library for what those
 * models use: NFC normalisation, Split(regex) + ByteLevel pre-tokenisation,
 * BPE merges by rank, added/special tokens matched before everything else.
 * Also the two chat templates those models ship (ChatML, Llama 3), rendered
 * by hand rather than by a Jinja engine, and a writer for a minimal real
 * tokenizer that tiny test models carry.
 *
 * Not here: post-processors (we always encode as add_special_tokens=False),
 * offsets, truncation/padding, WordPiece/Unigram/SentencePiece models — those
 * are reported as UNSUPPORTED with the file and field named.
 *
 * Threads: a loaded tokenizer is read-only; encode/decode/chat may be called
 * from several threads at once (each call uses its own scratch memory).
 */
#ifndef IAPO_TOKENIZER_H
#define IAPO_TOKENIZER_H

#include <stddef.h>

#include "iapo.h"

typedef struct iapo_tokenizer iapo_tokenizer;

/* Loads DIR/tokenizer.json and (if present) DIR/tokenizer_config.json. */
iapo_status iapo_tokenizer_load(const char *dir, iapo_tokenizer **out);
void iapo_tokenizer_free(iapo_tokenizer *t);
/* Max id + 1, added tokens included. */
int iapo_tokenizer_vocab_size(const iapo_tokenizer *t);
/* Encodes len bytes of UTF-8 text (added/special tokens inside the text are
 * matched first, as HF does with add_special_tokens=false). *ids is a growable
 * buffer owned by the caller (may start NULL with *cap 0; grown with
 * iapo_realloc), *n receives the count. Invalid UTF-8 bytes are not an error:
 * they are left unnormalised, never matched by the pre-tokenizer regex, and
 * encoded through their byte tokens, so decode gives the same bytes back. */
iapo_status iapo_tokenizer_encode(const iapo_tokenizer *t, const char *text, size_t len, int **ids, size_t *n,
				  size_t *cap);
/* Decodes ids to bytes (byte-level tokens mapped back to bytes; added tokens
 * rendered as their text, special ones skipped when skip_special). The bytes
 * are returned as they are: unlike HF we do not replace invalid UTF-8 (a
 * partial character at the end of a sample) with U+FFFD, nor apply
 * tokenizer_config's clean_up_tokenization_spaces (Llama 3 sets it; it would
 * turn " ," into ","). *out is growable like
 * above and NUL-terminated; *len excludes the NUL. An id outside the
 * vocabulary is an ARG error naming it. */
iapo_status iapo_tokenizer_decode(const iapo_tokenizer *t, const int *ids, size_t n, int skip_special, char **out,
				  size_t *len, size_t *cap);
/* Token id for an exact token string (byte-level form, e.g. "Ġthe"; added
 * tokens included), or -1. */
int iapo_tokenizer_token_id(const iapo_tokenizer *t, const char *token);
/* 1 if id is an added token marked special, else 0. */
int iapo_tokenizer_is_special(const iapo_tokenizer *t, int id);
/* One turn of a conversation. role: "system", "user" or "assistant". */
typedef struct {
	const char *role;
	const char *content;
} iapo_chat_msg;

/* Renders a conversation (n >= 1 messages) to text exactly as HF's
 * apply_chat_template(msgs, tokenize=False, add_generation_prompt) does with
 * the model's template (see iapo_tokenizer_chat for which ones):
 *  - ChatML: a first system message becomes the system turn; without one,
 *    Qwen2/2.5 insert their default system prompt and Qwen3 nothing. A system
 *    message later on is an ordinary turn. Qwen3 rewrites assistant turns
 *    that contain </think>: before the last user message only the text after
 *    the last </think> is kept (left-stripped of newlines), so a one-shot
 *    example loses its reasoning; after it (and for a final assistant turn)
 *    the reasoning is re-spaced as "<think>\n…\n</think>\n\n" + answer.
 *    Templates whose generation prompt opens a <think> (QwQ, Qwen3
 *    thinking-2507) get it appended; other templates that rewrite <think> are
 *    UNSUPPORTED when an assistant turn is present.
 *  - Llama 3: each content trimmed (Python strip()), bos_token first; 3.1+
 *    always open with the "Cutting Knowledge Date" system header holding the
 *    first message's content when it is a system one.
 * Any other role is an ARG error naming the message. Result is malloc'd
 * (iapo_free). */
iapo_status iapo_tokenizer_chat_messages(const iapo_tokenizer *t, const iapo_chat_msg *msgs, int n,
					 int add_generation_prompt, char **out);
/* Renders one system+user exchange with the template named by
 * tokenizer_config.json's chat_template (or chat_template.jinja): ChatML
 * (Qwen2/2.5/3) or Llama 3/3.1/3.2; anything else is UNSUPPORTED naming the
 * file. system may be NULL: then the template's own default applies (Qwen2.5
 * inserts its default system prompt, Qwen3 none, Llama 3.1 its date header).
 * Llama 3.2's "Today Date" uses the template's fixed fallback date, not the
 * current day, so that runs are reproducible. Result is malloc'd (iapo_free).
 * The same as iapo_tokenizer_chat_messages with those one or two messages. */
iapo_status iapo_tokenizer_chat(const iapo_tokenizer *t, const char *system, const char *user,
				int add_generation_prompt, char **out);
/* The end-of-turn/EOS token ids: tokenizer_config.json's eos_token first, then
 * the template's end-of-turn tokens (<|im_end|>, <|endoftext|> for ChatML;
 * <|eot_id|>, <|end_of_text|>, <|eom_id|> for Llama 3) that exist. Writes up
 * to max ids, returns the count. */
int iapo_tokenizer_eos_ids(const iapo_tokenizer *t, int *ids, int max);
/* Writes a minimal but real HF tokenizer.json + tokenizer_config.json (ChatML
 * template) into dir (created if needed): byte-level BPE with the 256 byte
 * tokens (ids 0..255 in byte order), the given merges ("a b" in byte-level
 * token form, each making a new token a+b unless it exists), then the added
 * tokens <|endoftext|>, <|im_start|>, <|im_end|> (special) and <think>,
 * </think>, <answer>, </answer> (not special). No normaliser, Qwen2's
 * pre-tokenizer regex. vocab size = 256 + new merge tokens + 7. */
iapo_status iapo_tokenizer_write_bytelevel(const char *dir, const char *const *merges, int n_merges);

#endif
