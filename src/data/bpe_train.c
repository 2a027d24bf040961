/*
 * bpe_train.c — byte-level BPE training (see bpe_train.h for the algorithm
 * and its guarantees) and `iapo data tokenizer`'s JSONL driver.
 *
 * Data layout: every distinct word keeps its bytes (for lookup) and its
 * current symbols (token ids) in one pool, shrinking in place as merges
 * apply. Each adjacent pair has a count and a list of the words that may
 * hold it (entries can be stale: a word is checked before it is touched).
 * Three open-addressing tables of indices find words by bytes, tokens by
 * bytes and pairs by (left << 32 | right).
 *
 * Not here: encoding (the real tokenizer does it: src/tokenizer/).
 */
#include "data/bpe_train.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <assert.h>
#include <pcre2.h>
#include <stdio.h>
#include <string.h>

#include "core/mem.h"
#include "core/status.h"
#include "io/fs.h"
#include "io/json.h"
#include "rl/dataset.h"
#include "tokenizer/tokenizer.h"

/* The pre-tokenizer regex iapo_tokenizer_write_bytelevel writes (Qwen2's);
 * tests/test_bpe_train.c checks our pieces against the loaded tokenizer's. */
static const char PRETOK_PATTERN[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
				     "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/* The added tokens the writer declares, matched before pre-tokenisation. */
static const char *const ADDED[IAPO_BPE_N_ADDED] = {"<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>",
						    "</think>",      "<answer>",     "</answer>"};

typedef struct {
	uint64_t count;
	size_t off;	 /* bytes in b->text */
	uint32_t nbytes;
	size_t sym;	 /* symbols in b->sym */
	uint32_t len;	 /* current number of symbols */
	uint32_t stamp;	 /* last merge that touched it */
} word_t;

typedef struct {
	uint64_t key, count;
	int32_t *w; /* words that may hold the pair */
	int nw, cap;
	uint32_t stamp;
} pair_t;

typedef struct {
	uint64_t count, key;
} heap_item;

typedef struct {
	size_t off;
	uint32_t len;
} tok_t;

typedef struct {
	int32_t *slot; /* -1: empty */
	size_t mask, n;
} idxtab;

struct iapo_bpe {
	pcre2_general_context *gctx;
	pcre2_code *re;
	pcre2_match_data *md;

	char *text; /* bytes of every distinct word */
	size_t text_len, text_cap;
	int32_t *sym;
	size_t sym_len, sym_cap;
	word_t *words;
	int n_words, words_cap;
	idxtab wtab;
	uint64_t added_tokens, total_bytes;

	char *tbytes; /* bytes of every token */
	size_t tbytes_len, tbytes_cap;
	tok_t *toks;
	int n_toks, toks_cap;
	idxtab ttab;

	pair_t *pairs;
	int n_pairs, pairs_cap;
	idxtab ptab;
	heap_item *heap;
	size_t heap_n, heap_cap;
	uint64_t *touched;
	size_t touched_n, touched_cap;

	char **merges;
	int n_merges, merges_cap, new_tokens, learned;
};

static uint64_t fnv(const void *p, size_t n)
{
	const unsigned char *s = p;
	uint64_t h = 1469598103934665603ULL;
	for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 1099511628211ULL;
	return h;
}

static uint64_t mix(uint64_t k)
{
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdULL;
	k ^= k >> 33;
	return k;
}

static uint64_t word_hash(const iapo_bpe *b, int32_t i) { return fnv(b->text + b->words[i].off, b->words[i].nbytes); }
static uint64_t tok_hash(const iapo_bpe *b, int32_t i) { return fnv(b->tbytes + b->toks[i].off, b->toks[i].len); }
static uint64_t pair_hash(const iapo_bpe *b, int32_t i) { return mix(b->pairs[i].key); }

/* Makes room for one more entry (load <= 1/2), rehashing with h. */
static iapo_status tab_reserve(const iapo_bpe *b, idxtab *t, uint64_t (*h)(const iapo_bpe *, int32_t))
{
	if (t->slot && 2 * (t->n + 1) <= t->mask + 1) return IAPO_OK;
	size_t cap = t->slot ? 2 * (t->mask + 1) : 1024;
	int32_t *s = iapo_malloc(cap * sizeof *s);
	if (!s) return iapo_fail(IAPO_ERR_NOMEM, "bpe: out of memory for a table of %zu entries", cap);
	memset(s, 0xff, cap * sizeof *s);
	for (size_t i = 0; t->slot && i <= t->mask; i++) {
		if (t->slot[i] < 0) continue;
		size_t j = (size_t)h(b, t->slot[i]) & (cap - 1);
		while (s[j] >= 0) j = (j + 1) & (cap - 1);
		s[j] = t->slot[i];
	}
	iapo_free(t->slot);
	t->slot = s;
	t->mask = cap - 1;
	return IAPO_OK;
}

static int32_t *word_slot(iapo_bpe *b, const char *p, size_t n)
{
	size_t i = (size_t)fnv(p, n) & b->wtab.mask;
	for (;; i = (i + 1) & b->wtab.mask) {
		int32_t w = b->wtab.slot[i];
		if (w < 0 || (b->words[w].nbytes == n && !memcmp(b->text + b->words[w].off, p, n))) return &b->wtab.slot[i];
	}
}

static int32_t *tok_slot(iapo_bpe *b, const char *p, size_t n)
{
	size_t i = (size_t)fnv(p, n) & b->ttab.mask;
	for (;; i = (i + 1) & b->ttab.mask) {
		int32_t t = b->ttab.slot[i];
		if (t < 0 || (b->toks[t].len == n && !memcmp(b->tbytes + b->toks[t].off, p, n))) return &b->ttab.slot[i];
	}
}

static int32_t *pair_slot(iapo_bpe *b, uint64_t key)
{
	size_t i = (size_t)mix(key) & b->ptab.mask;
	for (;; i = (i + 1) & b->ptab.mask) {
		int32_t p = b->ptab.slot[i];
		if (p < 0 || b->pairs[p].key == key) return &b->ptab.slot[i];
	}
}

/* Grows *p (an array of *cap elements of size sz) to hold need elements. */
static iapo_status grow(void **p, size_t *cap, size_t need, size_t sz, const char *what)
{
	if (need <= *cap) return IAPO_OK;
	size_t c = *cap ? *cap : 64;
	while (c < need) c *= 2;
	void *q = iapo_realloc(*p, c * sz);
	if (!q) return iapo_fail(IAPO_ERR_NOMEM, "bpe: out of memory for %s (%zu entries)", what, c);
	*p = q;
	*cap = c;
	return IAPO_OK;
}

static iapo_status grow_int(void **p, int *cap, int need, size_t sz, const char *what)
{
	size_t c = (size_t)*cap;
	IAPO_TRY(grow(p, &c, (size_t)need, sz, what));
	*cap = (int)c;
	return IAPO_OK;
}

/* Adds a token with these bytes; returns its id in *id. */
static iapo_status tok_add(iapo_bpe *b, const char *p, size_t n, int32_t *id)
{
	IAPO_TRY(tab_reserve(b, &b->ttab, tok_hash));
	int32_t *slot = tok_slot(b, p, n);
	if (*slot >= 0) {
		*id = *slot;
		return IAPO_OK;
	}
	IAPO_TRY(grow((void **)&b->tbytes, &b->tbytes_cap, b->tbytes_len + n, 1, "token bytes"));
	IAPO_TRY(grow_int((void **)&b->toks, &b->toks_cap, b->n_toks + 1, sizeof *b->toks, "tokens"));
	memmove(b->tbytes + b->tbytes_len, p, n);
	b->toks[b->n_toks] = (tok_t){b->tbytes_len, (uint32_t)n};
	b->tbytes_len += n;
	*slot = *id = b->n_toks++;
	b->ttab.n++;
	return IAPO_OK;
}

static void *gmalloc(size_t n, void *ctx)
{
	(void)ctx;
	return iapo_malloc(n);
}

static void gfree(void *p, void *ctx)
{
	(void)ctx;
	iapo_free(p);
}

iapo_status iapo_bpe_new(iapo_bpe **out)
{
	*out = NULL;
	iapo_bpe *b = iapo_calloc(1, sizeof *b);
	if (!b) return iapo_fail(IAPO_ERR_NOMEM, "bpe: out of memory");
	iapo_status st = IAPO_OK;
	b->gctx = pcre2_general_context_create(gmalloc, gfree, NULL);
	pcre2_compile_context *cc = b->gctx ? pcre2_compile_context_create(b->gctx) : NULL;
	int err = 0;
	PCRE2_SIZE off = 0;
	if (cc)
		b->re = pcre2_compile((PCRE2_SPTR)PRETOK_PATTERN, PCRE2_ZERO_TERMINATED,
				      PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &err, &off, cc);
	pcre2_compile_context_free(cc);
	if (b->re) (void)pcre2_jit_compile(b->re, PCRE2_JIT_COMPLETE);
	b->md = b->re ? pcre2_match_data_create(1, b->gctx) : NULL;
	if (!b->md) {
		st = iapo_fail(IAPO_ERR_NOMEM, "bpe: out of memory compiling the pre-tokenizer regex");
		goto fail;
	}
	for (int i = 0; i < 256; i++) {
		char c = (char)i;
		int32_t id;
		IAPO_CHECK(st, tok_add(b, &c, 1, &id));
		assert(id == i);
	}
	*out = b;
	return IAPO_OK;
fail:
	iapo_bpe_free(b);
	return st;
}

void iapo_bpe_free(iapo_bpe *b)
{
	if (!b) return;
	pcre2_match_data_free(b->md);
	pcre2_code_free(b->re);
	pcre2_general_context_free(b->gctx);
	iapo_free(b->text);
	iapo_free(b->sym);
	iapo_free(b->words);
	iapo_free(b->wtab.slot);
	iapo_free(b->tbytes);
	iapo_free(b->toks);
	iapo_free(b->ttab.slot);
	for (int i = 0; i < b->n_pairs; i++) iapo_free(b->pairs[i].w);
	iapo_free(b->pairs);
	iapo_free(b->ptab.slot);
	iapo_free(b->heap);
	iapo_free(b->touched);
	for (int i = 0; i < b->n_merges; i++) iapo_free(b->merges[i]);
	iapo_free(b->merges);
	iapo_free(b);
}

/* ---- counting words ---- */

static iapo_status add_word(iapo_bpe *b, const char *p, size_t n, uint64_t weight)
{
	if (n == 0) return IAPO_OK;
	if (n > UINT32_MAX) return iapo_fail(IAPO_ERR_ARG, "bpe: a word of %zu bytes is too long", n);
	b->total_bytes += n * weight;
	IAPO_TRY(tab_reserve(b, &b->wtab, word_hash));
	int32_t *slot = word_slot(b, p, n);
	if (*slot >= 0) {
		b->words[*slot].count += weight;
		return IAPO_OK;
	}
	if (b->n_words == INT32_MAX) return iapo_fail(IAPO_ERR_ARG, "bpe: too many distinct words");
	IAPO_TRY(grow((void **)&b->text, &b->text_cap, b->text_len + n, 1, "word bytes"));
	IAPO_TRY(grow((void **)&b->sym, &b->sym_cap, b->sym_len + n, sizeof *b->sym, "word symbols"));
	IAPO_TRY(grow_int((void **)&b->words, &b->words_cap, b->n_words + 1, sizeof *b->words, "words"));
	memcpy(b->text + b->text_len, p, n);
	for (size_t i = 0; i < n; i++) b->sym[b->sym_len + i] = (unsigned char)p[i];
	b->words[b->n_words] = (word_t){weight, b->text_len, (uint32_t)n, b->sym_len, (uint32_t)n, 0};
	b->text_len += n;
	b->sym_len += n;
	*slot = b->n_words++;
	b->wtab.n++;
	return IAPO_OK;
}

/* The pre-tokenizer's pieces of a run without added tokens: every match of
 * the regex and every gap between matches (Split, behavior Isolated), as
 * src/tokenizer/encode.c cuts them. */
static iapo_status add_run(iapo_bpe *b, const char *p, size_t n, uint64_t weight)
{
	size_t pos = 0, last = 0;
	while (pos < n) {
		int rc = pcre2_match(b->re, (PCRE2_SPTR)p, n, pos, 0, b->md, NULL);
		if (rc == PCRE2_ERROR_NOMATCH) break;
		if (rc == PCRE2_ERROR_NOMEMORY) return iapo_fail(IAPO_ERR_NOMEM, "bpe: out of memory matching the regex");
		if (rc < 0) {
			PCRE2_UCHAR msg[160];
			pcre2_get_error_message(rc, msg, sizeof msg);
			return iapo_fail(IAPO_ERR_INTERNAL, "bpe: pre-tokenizer regex failed: %s", (const char *)msg);
		}
		PCRE2_SIZE *ov = pcre2_get_ovector_pointer(b->md);
		size_t s = ov[0], e = ov[1];
		if (e <= s) { /* an empty match splits nothing; step over one character */
			pos = s + 1;
			while (pos < n && ((unsigned char)p[pos] & 0xC0) == 0x80) pos++;
			continue;
		}
		if (s > last) IAPO_TRY(add_word(b, p + last, s - last, weight));
		IAPO_TRY(add_word(b, p + s, e - s, weight));
		last = pos = e;
	}
	if (last < n) IAPO_TRY(add_word(b, p + last, n - last, weight));
	return IAPO_OK;
}

iapo_status iapo_bpe_add(iapo_bpe *b, const char *text, size_t len, uint64_t weight)
{
	if (b->learned) return iapo_fail(IAPO_ERR_ARG, "bpe: text added after the merges were learned");
	if (weight == 0) return iapo_fail(IAPO_ERR_ARG, "bpe: expected a weight >= 1, found 0");
	size_t start = 0;
	for (size_t i = 0; i < len; i++) {
		if (text[i] != '<') continue;
		/* The longest added token here (none is a prefix of another). */
		size_t best = 0;
		for (int k = 0; k < IAPO_BPE_N_ADDED; k++) {
			size_t m = strlen(ADDED[k]);
			if (m <= len - i && m > best && !memcmp(text + i, ADDED[k], m)) best = m;
		}
		if (!best) continue;
		IAPO_TRY(add_run(b, text + start, i - start, weight));
		b->added_tokens += weight;
		b->total_bytes += best * weight;
		i += best - 1;
		start = i + 1;
	}
	return add_run(b, text + start, len - start, weight);
}

/* ---- pairs and the heap ---- */

static int heap_before(const heap_item *x, const heap_item *y)
{
	return x->count > y->count || (x->count == y->count && x->key < y->key);
}

static iapo_status heap_push(iapo_bpe *b, uint64_t count, uint64_t key)
{
	IAPO_TRY(grow((void **)&b->heap, &b->heap_cap, b->heap_n + 1, sizeof *b->heap, "the pair heap"));
	size_t i = b->heap_n++;
	heap_item it = {count, key};
	while (i > 0) {
		size_t parent = (i - 1) / 2;
		if (!heap_before(&it, &b->heap[parent])) break;
		b->heap[i] = b->heap[parent];
		i = parent;
	}
	b->heap[i] = it;
	return IAPO_OK;
}

static heap_item heap_pop(iapo_bpe *b)
{
	heap_item top = b->heap[0], last = b->heap[--b->heap_n];
	size_t i = 0, n = b->heap_n;
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= n) break;
		if (c + 1 < n && heap_before(&b->heap[c + 1], &b->heap[c])) c++;
		if (!heap_before(&b->heap[c], &last)) break;
		b->heap[i] = b->heap[c];
		i = c;
	}
	if (n) b->heap[i] = last;
	return top;
}

static uint64_t pair_key(int32_t l, int32_t r) { return (uint64_t)(uint32_t)l << 32 | (uint32_t)r; }

/* Finds or creates the pair; *idx receives its index. */
static iapo_status pair_get(iapo_bpe *b, uint64_t key, int32_t *idx)
{
	IAPO_TRY(tab_reserve(b, &b->ptab, pair_hash));
	int32_t *slot = pair_slot(b, key);
	if (*slot < 0) {
		IAPO_TRY(grow_int((void **)&b->pairs, &b->pairs_cap, b->n_pairs + 1, sizeof *b->pairs, "pairs"));
		b->pairs[b->n_pairs] = (pair_t){.key = key};
		*slot = b->n_pairs++;
		b->ptab.n++;
	}
	*idx = *slot;
	return IAPO_OK;
}

/* Records word w as a holder of pair p (once in a row). */
static iapo_status pair_note_word(iapo_bpe *b, int32_t p, int32_t w)
{
	pair_t *q = &b->pairs[p];
	if (q->nw && q->w[q->nw - 1] == w) return IAPO_OK;
	IAPO_TRY(grow_int((void **)&q->w, &q->cap, q->nw + 1, sizeof *q->w, "a pair's word list"));
	q->w[q->nw++] = w;
	return IAPO_OK;
}

static iapo_status count_all_pairs(iapo_bpe *b)
{
	for (int32_t w = 0; w < b->n_words; w++) {
		const word_t *W = &b->words[w];
		for (uint32_t i = 0; i + 1 < W->len; i++) {
			int32_t p;
			IAPO_TRY(pair_get(b, pair_key(b->sym[W->sym + i], b->sym[W->sym + i + 1]), &p));
			b->pairs[p].count += W->count;
			IAPO_TRY(pair_note_word(b, p, w));
		}
	}
	for (int32_t p = 0; p < b->n_pairs; p++) IAPO_TRY(heap_push(b, b->pairs[p].count, b->pairs[p].key));
	return IAPO_OK;
}

/* Replaces every (l, r) in word w by id, keeping the pair counts exact:
 * the word's pairs are taken out, the word rewritten, its pairs put back;
 * pairs holding the new id are new here, so they get w in their word list
 * and go on the touched list to be pushed to the heap. */
static iapo_status merge_word(iapo_bpe *b, int32_t w, int32_t l, int32_t r, int32_t id, uint32_t stamp)
{
	word_t *W = &b->words[w];
	int32_t *s = b->sym + W->sym;
	int has = 0;
	for (uint32_t i = 0; i + 1 < W->len && !has; i++) has = s[i] == l && s[i + 1] == r;
	if (!has) return IAPO_OK; /* a stale entry of the pair's word list */
	for (uint32_t i = 0; i + 1 < W->len; i++) {
		int32_t *slot = pair_slot(b, pair_key(s[i], s[i + 1]));
		assert(*slot >= 0 && b->pairs[*slot].count >= W->count);
		b->pairs[*slot].count -= W->count;
	}
	uint32_t o = 0;
	for (uint32_t i = 0; i < W->len;) {
		if (i + 1 < W->len && s[i] == l && s[i + 1] == r) {
			s[o++] = id;
			i += 2;
		} else {
			s[o++] = s[i++];
		}
	}
	W->len = o;
	for (uint32_t i = 0; i + 1 < W->len; i++) {
		int32_t p;
		uint64_t key = pair_key(s[i], s[i + 1]);
		IAPO_TRY(pair_get(b, key, &p));
		b->pairs[p].count += W->count;
		if (s[i] != id && s[i + 1] != id) continue;
		IAPO_TRY(pair_note_word(b, p, w));
		if (b->pairs[p].stamp != stamp) {
			b->pairs[p].stamp = stamp;
			IAPO_TRY(grow((void **)&b->touched, &b->touched_cap, b->touched_n + 1, sizeof *b->touched,
				      "touched pairs"));
			b->touched[b->touched_n++] = key;
		}
	}
	return IAPO_OK;
}

/* GPT-2's bytes_to_unicode: printable bytes stand for themselves, the rest
 * for 256, 257, ... in byte order. */
static int byte_cp(int byte)
{
	int n = 0;
	for (int x = 0; x <= byte; x++) {
		int printable = (x >= 33 && x <= 126) || (x >= 161 && x <= 172) || x >= 174;
		if (x == byte) return printable ? byte : 256 + n;
		if (!printable) n++;
	}
	return -1;
}

/* Appends token t in byte-level form to dst (2 bytes per byte at most). */
static size_t tok_form(const iapo_bpe *b, int32_t t, char *dst)
{
	size_t o = 0;
	const unsigned char *p = (const unsigned char *)b->tbytes + b->toks[t].off;
	for (uint32_t i = 0; i < b->toks[t].len; i++) {
		int cp = byte_cp(p[i]);
		if (cp < 0x80) {
			dst[o++] = (char)cp;
		} else {
			dst[o++] = (char)(0xC0 | (cp >> 6));
			dst[o++] = (char)(0x80 | (cp & 0x3F));
		}
	}
	return o;
}

static iapo_status record_merge(iapo_bpe *b, int32_t l, int32_t r)
{
	IAPO_TRY(grow_int((void **)&b->merges, &b->merges_cap, b->n_merges + 1, sizeof *b->merges, "merges"));
	size_t n = 2 * ((size_t)b->toks[l].len + b->toks[r].len) + 2;
	char *m = iapo_malloc(n);
	if (!m) return iapo_fail(IAPO_ERR_NOMEM, "bpe: out of memory for a merge");
	size_t o = tok_form(b, l, m);
	m[o++] = ' ';
	o += tok_form(b, r, m + o);
	m[o] = '\0';
	b->merges[b->n_merges++] = m;
	return IAPO_OK;
}

iapo_status iapo_bpe_learn(iapo_bpe *b, int max_merges, uint64_t min_freq)
{
	if (b->learned) return iapo_fail(IAPO_ERR_ARG, "bpe: merges already learned");
	if (max_merges < 0 || min_freq < 1)
		return iapo_fail(IAPO_ERR_ARG, "bpe: expected max_merges >= 0 and min_freq >= 1, found %d and %llu",
				 max_merges, (unsigned long long)min_freq);
	b->learned = 1;
	IAPO_TRY(count_all_pairs(b));
	while (b->n_merges < max_merges && b->heap_n) {
		heap_item top = heap_pop(b);
		int32_t pi = *pair_slot(b, top.key);
		assert(pi >= 0);
		uint64_t count = b->pairs[pi].count;
		if (count != top.count) { /* a stale entry: put the true count back */
			if (count > 0) IAPO_TRY(heap_push(b, count, top.key));
			continue;
		}
		if (count < min_freq) break;
		int32_t l = (int32_t)(top.key >> 32), r = (int32_t)(uint32_t)top.key, id;
		int before = b->n_toks;
		/* The new token's bytes; tok_add may move tbytes, so copy them first. */
		size_t nl = b->toks[l].len, nr = b->toks[r].len;
		char *joined = iapo_malloc(nl + nr);
		if (!joined) return iapo_fail(IAPO_ERR_NOMEM, "bpe: out of memory for a token");
		memcpy(joined, b->tbytes + b->toks[l].off, nl);
		memcpy(joined + nl, b->tbytes + b->toks[r].off, nr);
		iapo_status st = tok_add(b, joined, nl + nr, &id);
		iapo_free(joined);
		IAPO_TRY(st);
		if (b->n_toks > before) b->new_tokens++;
		IAPO_TRY(record_merge(b, l, r));

		/* Take the pair's word list: after this merge no word holds it. */
		int32_t *ws = b->pairs[pi].w;
		int nw = b->pairs[pi].nw;
		b->pairs[pi].w = NULL;
		b->pairs[pi].nw = b->pairs[pi].cap = 0;
		uint32_t stamp = (uint32_t)b->n_merges;
		b->touched_n = 0;
		st = IAPO_OK;
		for (int k = 0; k < nw && st == IAPO_OK; k++) {
			if (b->words[ws[k]].stamp == stamp) continue;
			b->words[ws[k]].stamp = stamp;
			st = merge_word(b, ws[k], l, r, id, stamp);
		}
		iapo_free(ws);
		IAPO_TRY(st);
		for (size_t k = 0; k < b->touched_n; k++) {
			int32_t p = *pair_slot(b, b->touched[k]);
			if (b->pairs[p].count) IAPO_TRY(heap_push(b, b->pairs[p].count, b->touched[k]));
		}
	}
	return IAPO_OK;
}

int iapo_bpe_merge_count(const iapo_bpe *b) { return b->n_merges; }
const char *iapo_bpe_merge(const iapo_bpe *b, int i) { return i >= 0 && i < b->n_merges ? b->merges[i] : NULL; }
int iapo_bpe_new_tokens(const iapo_bpe *b) { return b->new_tokens; }
uint64_t iapo_bpe_byte_total(const iapo_bpe *b) { return b->total_bytes; }

uint64_t iapo_bpe_token_total(const iapo_bpe *b)
{
	uint64_t n = b->added_tokens;
	for (int w = 0; w < b->n_words; w++) n += b->words[w].count * b->words[w].len;
	return n;
}

iapo_status iapo_bpe_write(const iapo_bpe *b, const char *dir)
{
	return iapo_tokenizer_write_bytelevel(dir, (const char *const *)b->merges, b->n_merges);
}

/* ---- iapo data tokenizer ---- */

void iapo_bpe_opts_default(iapo_bpe_opts *o) { *o = (iapo_bpe_opts){.vocab_size = 1024, .min_freq = 2, .chat_context = 1}; }

typedef struct {
	char *data;
	size_t len;
} file_buf;

/* Calls fn on the prompt and completion (NULL when absent) of each row. */
typedef iapo_status (*row_fn)(void *ctx, const char *prompt, const char *completion);

static iapo_status for_each_row(const char *path, const file_buf *f, row_fn fn, void *ctx, size_t *rows)
{
	size_t line = 0;
	char shown[4200];
	for (size_t pos = 0; pos < f->len;) {
		const char *p = f->data + pos, *nl = memchr(p, '\n', f->len - pos);
		size_t n = nl ? (size_t)(nl - p) : f->len - pos;
		pos += n + 1;
		line++;
		size_t k = 0;
		while (k < n && (p[k] == ' ' || p[k] == '\t' || p[k] == '\r')) k++;
		if (k == n) continue;
		snprintf(shown, sizeof shown, "%s: line %zu", path, line);
		cJSON *row = NULL;
		IAPO_TRY(iapo_json_parse(p, n, shown, &row));
		const char *prompt = NULL, *completion = NULL;
		iapo_status st = cJSON_IsObject(row) ? IAPO_OK
						     : iapo_fail(IAPO_ERR_FORMAT, "%s: expected a JSON object, found %s", shown,
								 iapo_json_type_name(row));
		if (st == IAPO_OK) st = iapo_json_req_str(row, "prompt", shown, &prompt);
		if (st == IAPO_OK) st = iapo_json_opt_str(row, "completion", shown, &completion);
		if (st == IAPO_OK) st = fn(ctx, prompt, completion);
		cJSON_Delete(row);
		IAPO_TRY(st);
		(*rows)++;
	}
	return IAPO_OK;
}

static iapo_status add_row(void *ctx, const char *prompt, const char *completion)
{
	iapo_bpe *b = ctx;
	IAPO_TRY(iapo_bpe_add(b, prompt, strlen(prompt), 1));
	return completion ? iapo_bpe_add(b, completion, strlen(completion), 1) : IAPO_OK;
}

typedef struct {
	const iapo_tokenizer *t;
	int *ids;
	size_t cap;
	uint64_t pb, pt, cb, ct, nc; /* prompt bytes/tokens, completion bytes/tokens, completions */
} measure_ctx;

static iapo_status measure_row(void *ctx, const char *prompt, const char *completion)
{
	measure_ctx *m = ctx;
	size_t n = 0;
	IAPO_TRY(iapo_tokenizer_encode(m->t, prompt, strlen(prompt), &m->ids, &n, &m->cap));
	m->pb += strlen(prompt);
	m->pt += n;
	if (completion) {
		IAPO_TRY(iapo_tokenizer_encode(m->t, completion, strlen(completion), &m->ids, &n, &m->cap));
		m->cb += strlen(completion);
		m->ct += n;
		m->nc++;
	}
	return IAPO_OK;
}

/* The ChatML text around one row as the trainer renders it with the
 * reference's prompt (system, one-shot turn, the problem as the user turn). */
static iapo_status add_chat_context(iapo_bpe *b, uint64_t rows)
{
	static const char *const parts[] = {"<|im_start|>system\n", NULL /* system */, "<|im_end|>\n<|im_start|>user\n",
					    NULL /* one-shot user */, "<|im_end|>\n<|im_start|>assistant\n",
					    NULL /* one-shot assistant */, "<|im_end|>\n<|im_start|>user\n",
					    "<|im_end|>\n<|im_start|>assistant\n", "<|im_end|>\n"};
	for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
		const char *s = parts[i] ? parts[i]
			      : i == 1	 ? iapo_prompt_system(IAPO_DATA_GENERIC)
			      : i == 3	 ? IAPO_ONESHOT_USER
					 : IAPO_ONESHOT_ASSISTANT;
		IAPO_TRY(iapo_bpe_add(b, s, strlen(s), rows));
	}
	return IAPO_OK;
}

iapo_status iapo_bpe_train_files(const char *const *paths, int n_paths, const iapo_bpe_opts *o, const char *out_dir,
				 iapo_bpe_result *res)
{
	memset(res, 0, sizeof *res);
	if (!o || o->vocab_size < IAPO_BPE_MIN_VOCAB || o->min_freq < 1)
		return iapo_fail(IAPO_ERR_ARG, "--vocab: expected at least %d (256 bytes + %d added tokens)",
				 IAPO_BPE_MIN_VOCAB, IAPO_BPE_N_ADDED);
	if (n_paths < 1 || !out_dir || !*out_dir)
		return iapo_fail(IAPO_ERR_ARG, "bpe: expected data files and an output directory");
	iapo_json_init();
	file_buf *files = iapo_calloc((size_t)n_paths, sizeof *files);
	iapo_bpe *b = NULL;
	iapo_tokenizer *t = NULL;
	measure_ctx m = {0};
	size_t rows = 0, rows2 = 0;
	iapo_status st;
	if (!files) return iapo_fail(IAPO_ERR_NOMEM, "bpe: out of memory");
	IAPO_CHECK(st, iapo_bpe_new(&b));
	for (int i = 0; i < n_paths; i++) {
		IAPO_CHECK(st, iapo_fs_read_file(paths[i], (size_t)1 << 31, &files[i].data, &files[i].len));
		IAPO_CHECK(st, for_each_row(paths[i], &files[i], add_row, b, &rows));
	}
	if (rows == 0) {
		st = iapo_fail(IAPO_ERR_FORMAT, "%s: expected JSONL rows, found none", paths[0]);
		goto fail;
	}
	if (o->chat_context) IAPO_CHECK(st, add_chat_context(b, rows));
	/* A merge whose result already exists adds no token, so the vocabulary
	 * can end a little under vocab_size, never over. */
	IAPO_CHECK(st, iapo_bpe_learn(b, o->vocab_size - IAPO_BPE_MIN_VOCAB, o->min_freq));
	IAPO_CHECK(st, iapo_bpe_write(b, out_dir));
	res->n_merges = b->n_merges;
	res->vocab_size = IAPO_BPE_MIN_VOCAB + b->new_tokens;
	res->rows = rows;

	IAPO_CHECK(st, iapo_tokenizer_load(out_dir, &t));
	m.t = t;
	for (int i = 0; i < n_paths; i++) IAPO_CHECK(st, for_each_row(paths[i], &files[i], measure_row, &m, &rows2));
	res->prompt_bytes_per_token = m.pt ? (double)m.pb / (double)m.pt : 0;
	res->completion_bytes_per_token = m.ct ? (double)m.cb / (double)m.ct : 0;
	res->mean_completion_tokens = m.nc ? (double)m.ct / (double)m.nc : 0;
fail:
	iapo_free(m.ids);
	iapo_tokenizer_free(t);
	iapo_bpe_free(b);
	for (int i = 0; i < n_paths; i++) iapo_free(files[i].data);
	iapo_free(files);
	return st;
}
