/*
 * fuzz_chat.c — tokenizer_config.json and chat rendering: the input is
 * tokenizer_config.json (bos/eos tokens, chat_template: which template is
 * recognised, ChatML's default system prompt and Llama's date are read out of
 * its text), optionally followed by "\n--\n"-separated message contents,
 * which become a conversation with roles cycling system, user, assistant,
 * user, assistant, ... (default: a four-turn one with a <think> block). The
 * tokenizer.json beside it is the fixed byte-level one. The conversation is
 * rendered with and without the generation prompt, as a system + user
 * exchange (iapo_tokenizer_chat, system NULL), and the rendering encoded;
 * eos ids are listed.
 * Oracles besides the sanitizers: renderings are NUL-terminated strings that
 * encode; eos ids lie in the vocabulary.
 * Not here: tokenizer.json (fuzz_tokenizer.c).
 */
#include "fuzz.h"
#include "tokenizer/tokenizer.h"

#define MAX_MSG 6

static char dir[1024];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	fz_path("tok", dir, sizeof dir);
	if (iapo_tokenizer_write_bytelevel(dir, NULL, 0) != IAPO_OK) {
		fprintf(stderr, "fuzz_chat: %s\n", iapo_errmsg());
		abort();
	}
	return 0;
}

static void use(const iapo_tokenizer *t, const char *text)
{
	int *ids = NULL;
	size_t n = 0, cap = 0;
	fz_begin();
	fz_status(iapo_tokenizer_encode(t, text, strlen(text), &ids, &n, &cap), "encode rendering");
	iapo_free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const roles[] = {"system", "user", "assistant", "user", "assistant", "user"};
	static const char *const dflt[] = {"Respond in <think> and <answer> tags.", "What is 2+2?",
					   "<think>\nsimple\n</think>\n<answer>4</answer>", "And 3+3?"};
	fz_part part[MAX_MSG + 1];
	int np = fz_split(data, size, part, MAX_MSG + 1);
	fz_write("tok/tokenizer_config.json", part[0].p, part[0].n);
	iapo_tokenizer *t = NULL;
	fz_begin();
	if (fz_status(iapo_tokenizer_load(dir, &t), "tokenizer_load") != IAPO_OK) return 0;

	iapo_chat_msg msgs[MAX_MSG];
	char *own[MAX_MSG] = {0};
	int nm = np - 1;
	if (nm == 0) {
		nm = 4;
		for (int i = 0; i < nm; i++) msgs[i] = (iapo_chat_msg){roles[i], dflt[i]};
	} else {
		for (int i = 0; i < nm; i++) {
			own[i] = fz_str(part[i + 1].p, part[i + 1].n);
			msgs[i] = (iapo_chat_msg){roles[i], own[i]};
		}
	}
	for (int gen = 0; gen < 2; gen++) {
		char *text = NULL;
		fz_begin();
		if (fz_status(iapo_tokenizer_chat_messages(t, msgs, nm, gen, &text), "chat_messages") == IAPO_OK) use(t, text);
		iapo_free(text);
		/* From the first user turn on, so the conversation may start anywhere. */
		fz_begin();
		if (nm > 1 && fz_status(iapo_tokenizer_chat_messages(t, msgs + 1, nm - 1, gen, &text), "chat_messages") == IAPO_OK)
			use(t, text);
		if (nm > 1) iapo_free(text);
	}
	char *text = NULL;
	fz_begin();
	if (fz_status(iapo_tokenizer_chat(t, NULL, nm > 1 ? msgs[1].content : "hi", 1, &text), "chat") == IAPO_OK) use(t, text);
	iapo_free(text);
	int eos[8], V = iapo_tokenizer_vocab_size(t);
	int ne = iapo_tokenizer_eos_ids(t, eos, 8);
	FZ_ASSERT(ne >= 0 && ne <= 8, "eos count %d", ne);
	for (int i = 0; i < ne; i++) FZ_ASSERT(eos[i] >= 0 && eos[i] < V, "eos id %d", eos[i]);
	for (int i = 0; i < MAX_MSG; i++) free(own[i]);
	iapo_tokenizer_free(t);
	return 0;
}
