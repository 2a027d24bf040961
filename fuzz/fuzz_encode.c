/*
 * fuzz_encode.c — a fixed tokenizer on arbitrary input: the bytes encoded as
 * text (added tokens, NFC normalisation, the pre-tokenizer regex, BPE), and
 * the same bytes read as little-endian int32 token ids and decoded, with and
 * without skipping special tokens; also token_id / is_special lookups.
 * Tokenizers: the byte-level one iapo_tokenizer_write_bytelevel writes (with
 * a few dozen merges), made at start-up, plus every directory listed in
 * IAPO_FUZZ_TOKENIZERS (colon-separated; fuzz/run.sh passes the real Qwen3
 * tokenizer from build/fixtures when the oracle fixtures are there).
 * Oracles besides the sanitizers: every id lies in [0, vocab_size); decode
 * succeeds exactly when every id is in range (these vocabularies have no
 * holes); decode(encode(x)) == x for the byte-level tokenizer (no
 * normaliser: any bytes round-trip) and, for the others, for valid UTF-8 that
 * NFC leaves unchanged.
 * Not here: loading tokenizer files (fuzz_tokenizer.c, fuzz_chat.c).
 */
#include <utf8proc.h>

#include "fuzz.h"
#include "tokenizer/tokenizer.h"

#define MAX_TOK 4

static iapo_tokenizer *toks[MAX_TOK];
static int exact[MAX_TOK]; /* 1: no normaliser, every input round-trips */
static int n_toks;

static const char *const merges[] = {
	"Ġ t", "h e", "i n", "e r", "a n", "o n", "r e", "Ġ a", "e n", "a t", "o r", "Ġt he", "Ġ s", "i s",
	"Ġ w", "e s", "Ġ =", "Ġ +", "1 2", "4 2", "Ġ 1", "Ġ 2", "Ċ Ċ", "Ġ Ġ", "ĠĠ ĠĠ", "a b", "in g", "Ġ b",
	"< a", "n s", "w e", "r :", "ns we", "Ġ \\", "b o", "e d", "x ed", "bo xed", "Ã ©", "Ġ c", "Ġc a", "f Ã©",
};

static void add(const char *dir, int is_exact)
{
	if (n_toks == MAX_TOK) return;
	if (iapo_tokenizer_load(dir, &toks[n_toks]) != IAPO_OK) {
		fprintf(stderr, "fuzz_encode: %s\n", iapo_errmsg());
		abort();
	}
	fprintf(stderr, "fuzz_encode: tokenizer %s (%d ids)\n", dir, iapo_tokenizer_vocab_size(toks[n_toks]));
	exact[n_toks++] = is_exact;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	char dir[1024];
	fz_path("bytelevel", dir, sizeof dir);
	if (iapo_tokenizer_write_bytelevel(dir, merges, (int)(sizeof merges / sizeof *merges)) != IAPO_OK) {
		fprintf(stderr, "fuzz_encode: %s\n", iapo_errmsg());
		abort();
	}
	add(dir, 1);
	const char *list = getenv("IAPO_FUZZ_TOKENIZERS");
	if (list && *list) {
		char *copy = strdup(list), *save = NULL;
		for (char *d = strtok_r(copy, ":", &save); d; d = strtok_r(NULL, ":", &save)) add(d, 0);
		free(copy);
	}
	return 0;
}

/* Valid UTF-8 that NFC leaves as it is. */
static int nfc_stable(const uint8_t *s, size_t n)
{
	utf8proc_uint8_t *dst = NULL;
	utf8proc_ssize_t k = utf8proc_map(s, (utf8proc_ssize_t)n, &dst, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
	int same = k >= 0 && (size_t)k == n && !memcmp(dst, s, n);
	free(dst);
	return same;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int *ids = NULL;
	size_t n = 0, cap = 0, len = 0, ocap = 0;
	char *out = NULL;
	size_t nid = size / 4;
	int *arb = malloc(nid * sizeof(int) + 1);
	if (!arb) abort();
	memcpy(arb, data, nid * 4);
	char *str = fz_str(data, size);
	int stable = -1;
	for (int k = 0; k < n_toks; k++) {
		const iapo_tokenizer *t = toks[k];
		int V = iapo_tokenizer_vocab_size(t);
		fz_begin();
		fz_status(iapo_tokenizer_encode(t, (const char *)data, size, &ids, &n, &cap), "encode");
		for (size_t i = 0; i < n; i++) FZ_ASSERT(ids[i] >= 0 && ids[i] < V, "id %d outside [0, %d)", ids[i], V);
		fz_begin();
		iapo_status s = fz_status(iapo_tokenizer_decode(t, ids, n, 0, &out, &len, &ocap), "decode");
		FZ_ASSERT(s == IAPO_OK, "decode of encode's ids: %s", iapo_errmsg());
		if (!exact[k] && stable < 0) stable = nfc_stable(data, size);
		if (exact[k] || stable)
			FZ_ASSERT(len == size && !memcmp(out, data, size), "tokenizer %d: decode(encode(x)) != x (%zu vs %zu bytes)",
				  k, len, size);
		int in_range = 1;
		for (size_t i = 0; i < nid; i++) in_range &= arb[i] >= 0 && arb[i] < V;
		for (int skip = 0; skip < 2; skip++) {
			fz_begin();
			s = fz_status(iapo_tokenizer_decode(t, arb, nid, skip, &out, &len, &ocap), "decode ids");
			FZ_ASSERT((s == IAPO_OK) == in_range, "decode of arbitrary ids gave %d (ids in range: %d)", s, in_range);
		}
		int id = iapo_tokenizer_token_id(t, str);
		FZ_ASSERT(id >= -1 && id < V, "token_id %d", id);
		(void)iapo_tokenizer_is_special(t, nid ? arb[0] : -1);
	}
	free(str);
	free(arb);
	iapo_free(ids);
	iapo_free(out);
	return 0;
}
