/*
 * fuzz_tokenizer.c — loading tokenizer.json (iapo_tokenizer_load): the input
 * is the file, in a directory whose tokenizer_config.json is fixed (the
 * ChatML one iapo_tokenizer_write_bytelevel writes). A tokenizer that loads
 * is then used: a fixed text with special tokens, non-ASCII and invalid UTF-8
 * is encoded and decoded, and a conversation rendered and encoded.
 * Oracles besides the sanitizers: every id encode gives lies in
 * [0, vocab_size) and decodes without error.
 * Not here: encoding arbitrary text (fuzz_encode.c), tokenizer_config.json
 * (fuzz_chat.c).
 */
#include "fuzz.h"
#include "tokenizer/tokenizer.h"

static char dir[1024];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	char ref[1024];
	fz_path("ref", ref, sizeof ref);
	if (iapo_tokenizer_write_bytelevel(ref, NULL, 0) != IAPO_OK) {
		fprintf(stderr, "fuzz_tokenizer: %s\n", iapo_errmsg());
		abort();
	}
	fz_subdir("tok", dir, sizeof dir);
	char src[1200], dst[1200];
	snprintf(src, sizeof src, "%s/tokenizer_config.json", ref);
	snprintf(dst, sizeof dst, "%s/tokenizer_config.json", dir);
	if (rename(src, dst) != 0) abort();
	return 0;
}

static const char sample[] = "Hello, world! <|im_start|>user\n12 + 30 = 42 caf\xc3\xa9 \xe4\xbd\xa0\xe5\xa5\xbd "
			     "\xf0\x9f\x98\x80 \xff\xfe bad<think>x</think><|im_end|><|endoftext|>";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fz_write("tok/tokenizer.json", data, size);
	iapo_tokenizer *t = NULL;
	fz_begin();
	if (fz_status(iapo_tokenizer_load(dir, &t), "tokenizer_load") != IAPO_OK) {
		FZ_ASSERT(t == NULL, "a failed load returned a tokenizer");
		return 0;
	}
	int V = iapo_tokenizer_vocab_size(t);
	FZ_ASSERT(V > 0, "vocab size %d", V);
	int *ids = NULL;
	size_t n = 0, cap = 0, len = 0, ocap = 0;
	char *out = NULL;
	fz_begin();
	if (fz_status(iapo_tokenizer_encode(t, sample, sizeof sample - 1, &ids, &n, &cap), "encode") == IAPO_OK) {
		for (size_t i = 0; i < n; i++) FZ_ASSERT(ids[i] >= 0 && ids[i] < V, "id %d outside [0, %d)", ids[i], V);
		for (int skip = 0; skip < 2; skip++) {
			fz_begin();
			iapo_status s = fz_status(iapo_tokenizer_decode(t, ids, n, skip, &out, &len, &ocap), "decode");
			FZ_ASSERT(s == IAPO_OK, "decode of encode's ids failed: %s", iapo_errmsg());
		}
	}
	(void)iapo_tokenizer_token_id(t, "<|im_end|>");
	(void)iapo_tokenizer_is_special(t, V - 1);
	int eos[8];
	FZ_ASSERT(iapo_tokenizer_eos_ids(t, eos, 8) <= 8, "eos count");
	iapo_chat_msg msgs[3] = {{"system", "Be brief."}, {"user", "What is 2+2?"}, {"assistant", "<think>2+2</think>4"}};
	char *text = NULL;
	fz_begin();
	if (fz_status(iapo_tokenizer_chat_messages(t, msgs, 3, 1, &text), "chat_messages") == IAPO_OK) {
		fz_begin();
		fz_status(iapo_tokenizer_encode(t, text, strlen(text), &ids, &n, &cap), "encode chat");
	}
	iapo_free(text);
	iapo_free(ids);
	iapo_free(out);
	iapo_tokenizer_free(t);
	return 0;
}
