/*
 * encode.c — text to ids and back, in HF's order:
 *   1. added tokens whose normalized flag is false are cut out of the raw text
 *      (leftmost-longest, as HF's Aho-Corasick; lstrip/rstrip/single_word);
 *   2. each remaining segment is normalised (utf8proc), then added tokens
 *      with normalized=true are cut out of it;
 *   3. the pre-tokenizer steps split it into pieces (Split: a PCRE2 regex,
 *      matches and gaps both kept when Isolated; ByteLevel: optional prefix
 *      space and GPT-2 regex);
 *   4. each piece's bytes become byte tokens, merged by rank with a heap
 *      (lowest rank first, leftmost first among equals: HF's Word::merge_all).
 * Decoding maps byte-level characters back to bytes.
 *
 * Every call has its own scratch (enc_ctx), so a loaded tokenizer can be used
 * from several threads. There is no word cache: a cache would need a lock,
 * and the heap merge is fast enough (see the timing in test_tokenizer).
 */
#include <stdio.h>
#include <string.h>
#include <utf8proc.h>

#include "core/mem.h"
#include "core/status.h"
#include "tokenizer/tok_internal.h"

typedef struct {
	char *p;
	size_t len, cap;
} bytebuf;

typedef struct {
	int id, prev, next; /* id -1: merged into its left neighbour */
} bpe_sym;

typedef struct {
	int rank, pos, new_id;
} bpe_cand;

typedef struct {
	const iapo_tokenizer *t;
	int **ids;
	size_t *n, *cap;
	pcre2_match_data *md;
	bytebuf norm[2];
	bytebuf pre[TOK_MAX_PRETOK];
	bytebuf bl;
	utf8proc_int32_t *u32;
	size_t u32_cap;
	bpe_sym *sym;
	bpe_cand *heap;
	size_t sym_cap, heap_cap, heap_len;
	bytebuf *pieces; /* tok_debug_pieces: collect pieces instead of ids */
} enc_ctx;

static iapo_status grow(void **p, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap) return IAPO_OK;
	size_t c = *cap ? *cap : 64;
	while (c < need) c *= 2;
	void *q = iapo_realloc(*p, c * elem);
	if (!q) return iapo_fail(IAPO_ERR_NOMEM, "tokenizer: out of memory (%zu bytes)", c * elem);
	*p = q;
	*cap = c;
	return IAPO_OK;
}

static iapo_status buf_put(bytebuf *b, const void *s, size_t n)
{
	IAPO_TRY(grow((void **)&b->p, &b->cap, b->len + n + 1, 1));
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
	return IAPO_OK;
}

static iapo_status push_id(enc_ctx *c, int id)
{
	IAPO_TRY(grow((void **)c->ids, c->cap, *c->n + 1, sizeof **c->ids));
	(*c->ids)[(*c->n)++] = id;
	return IAPO_OK;
}

/* ---- 4. BPE ---- */

static int cand_less(const bpe_cand *a, const bpe_cand *b)
{
	return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static void heap_push(enc_ctx *c, bpe_cand e)
{
	size_t i = c->heap_len++;
	while (i > 0) {
		size_t up = (i - 1) / 2;
		if (!cand_less(&e, &c->heap[up])) break;
		c->heap[i] = c->heap[up];
		i = up;
	}
	c->heap[i] = e;
}

static bpe_cand heap_pop(enc_ctx *c)
{
	bpe_cand top = c->heap[0], last = c->heap[--c->heap_len];
	size_t i = 0, n = c->heap_len;
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		const bpe_cand *best = &last;
		if (l < n && cand_less(&c->heap[l], best)) {
			m = l;
			best = &c->heap[l];
		}
		if (r < n && cand_less(&c->heap[r], best)) m = r;
		if (m == i) break;
		c->heap[i] = c->heap[m];
		i = m;
	}
	if (n) c->heap[i] = last;
	return top;
}

static void push_pair(enc_ctx *c, int pos)
{
	int nx = c->sym[pos].next, rank, new_id;
	if (nx >= 0 && tok_merge_find(c->t, c->sym[pos].id, c->sym[nx].id, &rank, &new_id))
		heap_push(c, (bpe_cand){rank, pos, new_id});
}

static iapo_status bpe_piece(enc_ctx *c, const unsigned char *p, size_t n)
{
	const iapo_tokenizer *t = c->t;
	if (n == 0) return IAPO_OK;
	if (c->pieces) {
		uint32_t len32 = (uint32_t)n;
		IAPO_TRY(buf_put(c->pieces, &len32, sizeof len32));
		return buf_put(c->pieces, p, n);
	}
	if (t->ignore_merges) {
		/* Llama 3: a piece that is a whole token is taken as is. */
		c->bl.len = 0;
		for (size_t i = 0; i < n; i++) {
			char s[4];
			IAPO_TRY(buf_put(&c->bl, s, (size_t)tok_utf8_put(s, (uint32_t)tok_byte_to_cp(p[i]))));
		}
		int id = tok_lookup(t, &t->vocab_tab, c->bl.p, c->bl.len);
		if (id >= 0) return push_id(c, id);
	}
	if (n > (size_t)INT32_MAX / 4) return iapo_fail(IAPO_ERR_ARG, "tokenizer: a single piece of %zu bytes is too long", n);
	/* Each merge pushes at most two candidates: 3n bounds the heap. */
	IAPO_TRY(grow((void **)&c->sym, &c->sym_cap, n, sizeof *c->sym));
	IAPO_TRY(grow((void **)&c->heap, &c->heap_cap, 3 * n, sizeof *c->heap));
	int m = 0;
	for (size_t i = 0; i < n; i++) {
		int id = t->byte_id[p[i]];
		/* A byte with no token: HF uses unk_token when there is one and
		 * drops the character otherwise. */
		if (id < 0) id = t->unk_id;
		if (id < 0) continue;
		c->sym[m] = (bpe_sym){id, m - 1, m + 1};
		m++;
	}
	if (m == 0) return IAPO_OK;
	c->sym[m - 1].next = -1;
	c->heap_len = 0;
	for (int i = 0; i + 1 < m; i++) push_pair(c, i);
	while (c->heap_len) {
		bpe_cand e = heap_pop(c);
		bpe_sym *s = &c->sym[e.pos];
		int rank, new_id;
		if (s->id < 0 || s->next < 0) continue;
		/* Stale when either side changed since it was pushed. */
		if (!tok_merge_find(t, s->id, c->sym[s->next].id, &rank, &new_id) || new_id != e.new_id) continue;
		int gone = s->next;
		s->id = new_id;
		s->next = c->sym[gone].next;
		if (s->next >= 0) c->sym[s->next].prev = e.pos;
		c->sym[gone].id = -1;
		if (s->prev >= 0) push_pair(c, s->prev);
		push_pair(c, e.pos);
	}
	for (int i = 0; i >= 0; i = c->sym[i].next) IAPO_TRY(push_id(c, c->sym[i].id));
	return IAPO_OK;
}

/* ---- 3. pre-tokenizer ---- */

static iapo_status pretok(enc_ctx *c, int depth, const char *p, size_t n);

static size_t char_len_at(const char *p, size_t n)
{
	uint32_t cp;
	int k = tok_utf8_char((const unsigned char *)p, n, &cp);
	return k ? (size_t)k : 1;
}

static iapo_status split_regex(enc_ctx *c, int depth, const pcre2_code *re, int behavior, const char *p, size_t n)
{
	size_t pos = 0, last = 0;
	while (pos < n) {
		int rc = pcre2_match(re, (PCRE2_SPTR)p, n, pos, 0, c->md, NULL);
		if (rc == PCRE2_ERROR_NOMATCH) break;
		if (rc == PCRE2_ERROR_NOMEMORY) return iapo_fail(IAPO_ERR_NOMEM, "tokenizer: out of memory matching a regex");
		if (rc < 0) {
			PCRE2_UCHAR msg[160];
			pcre2_get_error_message(rc, msg, sizeof msg);
			return iapo_fail(IAPO_ERR_INTERNAL, "%s: pre_tokenizer regex failed on a piece of %zu bytes: %s",
					 c->t->json_path, n, (const char *)msg);
		}
		PCRE2_SIZE *ov = pcre2_get_ovector_pointer(c->md);
		size_t s = ov[0], e = ov[1];
		if (e <= s) { /* empty matches split nothing */
			pos = s + char_len_at(p + s, n - s);
			continue;
		}
		if (s > last) IAPO_TRY(pretok(c, depth + 1, p + last, s - last));
		if (behavior == SPLIT_ISOLATED) IAPO_TRY(pretok(c, depth + 1, p + s, e - s));
		last = pos = e;
	}
	if (last < n) IAPO_TRY(pretok(c, depth + 1, p + last, n - last));
	return IAPO_OK;
}

static iapo_status pretok(enc_ctx *c, int depth, const char *p, size_t n)
{
	const iapo_tokenizer *t = c->t;
	if (n == 0) return IAPO_OK;
	if (depth == t->n_pre) return bpe_piece(c, (const unsigned char *)p, n);
	const tok_pretok *s = &t->pre[depth];
	if (s->kind == PRE_SPLIT) return split_regex(c, depth, s->re, s->behavior, p, n);
	if (s->add_prefix_space && p[0] != ' ') {
		bytebuf *b = &c->pre[depth];
		b->len = 0;
		IAPO_TRY(buf_put(b, " ", 1));
		IAPO_TRY(buf_put(b, p, n));
		p = b->p;
		n = b->len;
	}
	if (s->re) return split_regex(c, depth, s->re, SPLIT_ISOLATED, p, n);
	return pretok(c, depth + 1, p, n);
}

/* ---- 2. normalisation ---- */

static const utf8proc_option_t norm_opts[] = {
	[NORM_NFC] = UTF8PROC_STABLE | UTF8PROC_COMPOSE,
	[NORM_NFD] = UTF8PROC_STABLE | UTF8PROC_DECOMPOSE,
	[NORM_NFKC] = UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT,
	[NORM_NFKD] = UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT,
};

/* Normalises one valid UTF-8 run into b. */
static iapo_status norm_run(enc_ctx *c, utf8proc_option_t opts, const char *p, size_t n, bytebuf *b)
{
	utf8proc_ssize_t need = utf8proc_decompose((const utf8proc_uint8_t *)p, (utf8proc_ssize_t)n, NULL, 0, opts);
	if (need < 0)
		return iapo_fail(IAPO_ERR_INTERNAL, "tokenizer: utf8proc: %s", utf8proc_errmsg(need));
	IAPO_TRY(grow((void **)&c->u32, &c->u32_cap, (size_t)need + 1, sizeof *c->u32));
	need = utf8proc_decompose((const utf8proc_uint8_t *)p, (utf8proc_ssize_t)n, c->u32, need, opts);
	utf8proc_ssize_t bytes = need < 0 ? need : utf8proc_reencode(c->u32, need, opts);
	if (bytes < 0) return iapo_fail(IAPO_ERR_INTERNAL, "tokenizer: utf8proc: %s", utf8proc_errmsg(bytes));
	return buf_put(b, c->u32, (size_t)bytes);
}

/* Applies the normaliser chain; *out points at p itself or a scratch buffer. */
static iapo_status normalize(enc_ctx *c, const char *p, size_t n, const char **out, size_t *out_n)
{
	const iapo_tokenizer *t = c->t;
	*out = p;
	*out_n = n;
	if (!t->n_norm) return IAPO_OK;
	size_t i = 0;
	while (i < n && !((unsigned char)p[i] & 0x80)) i++;
	if (i == n) return IAPO_OK; /* ASCII is its own normal form */
	for (int k = 0; k < t->n_norm; k++) {
		bytebuf *b = &c->norm[k & 1];
		const char *src = *out;
		size_t src_n = *out_n;
		b->len = 0;
		IAPO_TRY(buf_put(b, "", 0));
		size_t start = 0;
		i = 0;
		/* Valid runs are normalised; bytes that are not UTF-8 pass through. */
		while (i <= src_n) {
			uint32_t cp;
			int len = i < src_n ? tok_utf8_char((const unsigned char *)src + i, src_n - i, &cp) : 0;
			if (len) {
				i += (size_t)len;
				continue;
			}
			if (i > start) IAPO_TRY(norm_run(c, norm_opts[t->norm[k]], src + start, i - start, b));
			if (i < src_n) IAPO_TRY(buf_put(b, src + i, 1));
			start = ++i;
		}
		*out = b->p;
		*out_n = b->len;
	}
	return IAPO_OK;
}

/* ---- 1. added tokens ---- */

static int is_word_char(uint32_t cp)
{
	if (cp == '_') return 1;
	utf8proc_category_t cat = utf8proc_category((utf8proc_int32_t)cp);
	return (cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_NO) || cat == UTF8PROC_CATEGORY_PC;
}

/* The character ending just before p[i] (0 if none or invalid). */
static uint32_t char_before(const char *p, size_t i, size_t *start)
{
	for (size_t k = 1; k <= 4 && k <= i; k++) {
		uint32_t cp;
		int len = tok_utf8_char((const unsigned char *)p + i - k, k, &cp);
		if (len == (int)k) {
			*start = i - k;
			return cp;
		}
	}
	*start = i ? i - 1 : 0;
	return 0;
}

static iapo_status process_raw(enc_ctx *c, const char *p, size_t n);

static iapo_status segment(enc_ctx *c, int g, const char *p, size_t n)
{
	if (n == 0) return IAPO_OK;
	return g == 0 ? process_raw(c, p, n) : pretok(c, 0, p, n);
}

/* Cuts the added tokens of group g (0: matched on raw text, 1: on normalised
 * text) out of p and sends the text between them on. */
static iapo_status split_added(enc_ctx *c, int g, const char *p, size_t n)
{
	const iapo_tokenizer *t = c->t;
	if (!t->has_added[g]) return segment(c, g, p, n);
	size_t done = 0, i = 0;
	while (i < n) {
		unsigned char b = (unsigned char)p[i];
		int lo = t->added_first[g][b], hi = t->added_first[g][b + 1];
		const tok_added *hit = NULL;
		for (int k = lo; k < hi; k++) {
			const tok_added *a = &t->added[k];
			if (a->len <= n - i && !memcmp(t->arena + a->off, p + i, a->len)) {
				hit = a; /* sorted longest first */
				break;
			}
		}
		if (!hit) {
			i++;
			continue;
		}
		size_t s = i, e = i + hit->len;
		if (hit->single_word) {
			size_t st;
			uint32_t cp_before = s ? char_before(p, s, &st) : 0, cp_after = 0;
			if (e < n) tok_utf8_char((const unsigned char *)p + e, n - e, &cp_after);
			if ((s > 0 && is_word_char(cp_before)) || (e < n && is_word_char(cp_after))) {
				i = e;
				continue;
			}
		}
		if (hit->lstrip) {
			while (s > done) {
				size_t st;
				uint32_t cp = char_before(p, s, &st);
				if (!tok_is_white_space(cp) || st < done) break;
				s = st;
			}
		}
		if (hit->rstrip) {
			uint32_t cp;
			int len;
			while (e < n && (len = tok_utf8_char((const unsigned char *)p + e, n - e, &cp)) && tok_is_white_space(cp))
				e += (size_t)len;
		}
		IAPO_TRY(segment(c, g, p + done, s - done));
		IAPO_TRY(push_id(c, hit->id));
		done = i = e;
	}
	return segment(c, g, p + done, n - done);
}

static iapo_status process_raw(enc_ctx *c, const char *p, size_t n)
{
	const char *q;
	size_t m;
	IAPO_TRY(normalize(c, p, n, &q, &m));
	return split_added(c, 1, q, m);
}

static iapo_status encode(const iapo_tokenizer *t, const char *text, size_t len, int **ids, size_t *n, size_t *cap,
			  bytebuf *pieces)
{
	if (!t || !ids || !n || !cap || (!text && len))
		return iapo_fail(IAPO_ERR_ARG, "iapo_tokenizer_encode: expected a tokenizer, text and output buffers");
	*n = 0;
	enc_ctx c = {.t = t, .ids = ids, .n = n, .cap = cap, .pieces = pieces};
	c.md = pcre2_match_data_create(1, t->gctx);
	if (!c.md) return iapo_fail(IAPO_ERR_NOMEM, "tokenizer: out of memory");
	iapo_status st = len ? split_added(&c, 0, text, len) : IAPO_OK;
	pcre2_match_data_free(c.md);
	iapo_free(c.norm[0].p);
	iapo_free(c.norm[1].p);
	for (int i = 0; i < TOK_MAX_PRETOK; i++) iapo_free(c.pre[i].p);
	iapo_free(c.bl.p);
	iapo_free(c.u32);
	iapo_free(c.sym);
	iapo_free(c.heap);
	return st;
}

iapo_status iapo_tokenizer_encode(const iapo_tokenizer *t, const char *text, size_t len, int **ids, size_t *n,
				  size_t *cap)
{
	return encode(t, text, len, ids, n, cap, NULL);
}

iapo_status tok_debug_pieces(const iapo_tokenizer *t, const char *text, size_t len, char **out, size_t *out_len)
{
	bytebuf b = {0};
	int *ids = NULL;
	size_t n = 0, cap = 0;
	iapo_status st = buf_put(&b, "", 0);
	if (st == IAPO_OK) st = encode(t, text, len, &ids, &n, &cap, &b);
	iapo_free(ids);
	if (st != IAPO_OK) {
		iapo_free(b.p);
		b.p = NULL;
		b.len = 0;
	}
	*out = b.p;
	*out_len = b.len;
	return st;
}

/* ---- decoding ---- */

iapo_status iapo_tokenizer_decode(const iapo_tokenizer *t, const int *ids, size_t n, int skip_special, char **out,
				  size_t *len, size_t *cap)
{
	if (!t || !out || !len || !cap || (!ids && n))
		return iapo_fail(IAPO_ERR_ARG, "iapo_tokenizer_decode: expected a tokenizer, ids and output buffers");
	bytebuf b = {*out, 0, *cap};
	iapo_status st = buf_put(&b, "", 0);
	for (size_t i = 0; i < n && st == IAPO_OK; i++) {
		int id = ids[i];
		if (id < 0 || id >= t->n_ids || t->tok_off[id] == UINT32_MAX) {
			st = iapo_fail(IAPO_ERR_ARG, "token id %d (position %zu): expected an id of the vocabulary [0, %d)", id,
				       i, t->n_ids);
			break;
		}
		const char *s = t->arena + t->tok_off[id];
		size_t sl = t->tok_len[id];
		if (t->tok_flags[id] & TOK_FLAG_ADDED) {
			if (!(skip_special && (t->tok_flags[id] & TOK_FLAG_SPECIAL))) st = buf_put(&b, s, sl);
			continue;
		}
		/* HF's ByteLevel decoder: every character back to its byte, or, if
		 * one is not a byte-level character, the token's own bytes. */
		size_t mark = b.len;
		for (size_t k = 0; k < sl && st == IAPO_OK;) {
			uint32_t cp;
			int cl = tok_utf8_char((const unsigned char *)s + k, sl - k, &cp);
			int byte = cl ? tok_cp_to_byte(cp) : -1;
			if (byte < 0) {
				b.len = mark;
				st = buf_put(&b, s, sl);
				break;
			}
			unsigned char ch = (unsigned char)byte;
			st = buf_put(&b, &ch, 1);
			k += (size_t)cl;
		}
	}
	*out = b.p;
	*cap = b.cap;
	*len = st == IAPO_OK ? b.len : 0;
	if (b.p && st != IAPO_OK) b.p[0] = '\0';
	return st;
}
