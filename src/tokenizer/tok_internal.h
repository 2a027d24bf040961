/*
 * tok_internal.h — the tokenizer's private state, shared by load.c (building
 * it from JSON), encode.c (normalise, pre-tokenise, BPE), decode.c and
 * chat.c. Nothing outside src/tokenizer/ includes this.
 *
 * Vocabulary: every token string lives once in `arena`; id -> (offset, len)
 * arrays give the string of an id, an open-addressing table of ids hashed by
 * string gives the id of a string. Merges: an open-addressing table keyed by
 * the pair of ids (left << 32 | right) gives the merge's rank and result id.
 */
#ifndef IAPO_TOKENIZER_INTERNAL_H
#define IAPO_TOKENIZER_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stddef.h>
#include <stdint.h>

#include "tokenizer/tokenizer.h"

#define TOK_MAX_PRETOK 8
#define TOK_MAX_NORM 8

enum { TOK_FLAG_ADDED = 1, TOK_FLAG_SPECIAL = 2 };

/* Normalisation forms (utf8proc options). */
enum { NORM_NFC, NORM_NFD, NORM_NFKC, NORM_NFKD };

enum { PRE_SPLIT, PRE_BYTELEVEL };
enum { SPLIT_ISOLATED, SPLIT_REMOVED };

typedef struct {
	int kind;
	pcre2_code *re; /* SPLIT: its pattern; BYTELEVEL: GPT-2's when use_regex */
	int behavior;   /* SPLIT_* */
	int add_prefix_space;
} tok_pretok;

typedef struct {
	uint32_t off, len; /* content in the arena */
	int id;
	unsigned special : 1, lstrip : 1, rstrip : 1, single_word : 1, normalized : 1;
} tok_added;

/* Open-addressing string table; strings live in the tokenizer's arena. */
typedef struct {
	uint32_t *off, *len;
	int32_t *id; /* -1: empty slot */
	size_t mask;
} tok_strtab;

enum { CHAT_NONE, CHAT_CHATML, CHAT_LLAMA3, CHAT_LLAMA31 };
/* How a ChatML template treats <think> in assistant turns: not at all
 * (Qwen2/2.5), Qwen3's way (reasoning kept only after the last user query),
 * or some other way we do not render (assistant turns are then UNSUPPORTED). */
enum { THINK_NONE, THINK_QWEN3, THINK_OTHER };

struct iapo_tokenizer {
	char *dir;
	char *json_path; /* DIR/tokenizer.json, for messages */
	char *cfg_path;  /* DIR/tokenizer_config.json */

	int n_ids;        /* max id + 1 */
	char *arena;      /* all token strings, NUL-separated */
	size_t arena_len, arena_cap;
	uint32_t *tok_off; /* (n_ids) offset into arena; UINT32_MAX: no token */
	uint32_t *tok_len;
	uint8_t *tok_flags; /* (n_ids) TOK_FLAG_* */

	/* string -> id for the model vocabulary and for added tokens (kept apart:
	 * HF looks added tokens up first, and ignore_merges only sees the model's). */
	tok_strtab vocab_tab, added_tab;

	uint64_t *merge_keys; /* UINT64_MAX: empty */
	int32_t *merge_rank, *merge_new;
	size_t merge_mask;
	int n_merges;

	int byte_id[256]; /* id of each byte's byte-level token, -1 if absent */
	int unk_id;       /* -1 when none */
	int ignore_merges;

	int norm[TOK_MAX_NORM];
	int n_norm;
	tok_pretok pre[TOK_MAX_PRETOK];
	int n_pre;
	int has_bytelevel; /* a ByteLevel pre-tokenizer is present */

	tok_added *added; /* sorted by first byte, then longest first */
	int n_added;
	int added_first[2][257]; /* [normalized][byte]: index range start into `added`, per first byte */
	int has_added[2];

	pcre2_general_context *gctx;

	/* tokenizer_config.json */
	int have_config;
	char *chat_template; /* NULL when none */
	const char *chat_template_src; /* file it came from, for messages */
	char *chat_src_buf;
	int chat_kind;
	int chat_think; /* THINK_* (ChatML only) */
	int gen_think;  /* the generation prompt opens "<think>\n" itself (QwQ, Qwen3 thinking-2507) */
	char *default_system; /* ChatML's system prompt when none is given; NULL = none */
	char *llama_date;     /* Llama 3.1+ "Today Date" */
	char *bos_token, *eos_token;
};

/* FNV-1a over len bytes. */
static inline uint64_t tok_hash_bytes(const void *p, size_t len)
{
	const unsigned char *s = p;
	uint64_t h = 1469598103934665603ULL;
	for (size_t i = 0; i < len; i++) {
		h ^= s[i];
		h *= 1099511628211ULL;
	}
	return h;
}

static inline uint64_t tok_hash_pair(uint64_t key)
{
	key ^= key >> 29;
	key *= 0xbf58476d1ce4e5b9ULL;
	key ^= key >> 32;
	return key;
}

/* Looks a string up in a table built by load.c; -1 when absent. */
int tok_lookup(const iapo_tokenizer *t, const tok_strtab *tab, const char *s, size_t len);
/* Merge of (a, b): returns 1 and fills rank/new id when it exists. */
static inline int tok_merge_find(const iapo_tokenizer *t, int a, int b, int *rank, int *new_id)
{
	if (!t->merge_keys) return 0;
	uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
	size_t i = (size_t)tok_hash_pair(key) & t->merge_mask;
	for (;;) {
		uint64_t k = t->merge_keys[i];
		if (k == key) {
			*rank = t->merge_rank[i];
			*new_id = t->merge_new[i];
			return 1;
		}
		if (k == UINT64_MAX) return 0;
		i = (i + 1) & t->merge_mask;
	}
}

/* GPT-2's byte <-> unicode table: the code point that stands for byte b, and
 * the byte a code point stands for (-1 if none; cp < 324 only). */
int tok_byte_to_cp(int b);
int tok_cp_to_byte(uint32_t cp);

/* Length of the valid UTF-8 character at p (1..4), or 0 if the bytes there
 * are not one (overlong, surrogate, > U+10FFFF, truncated). *cp receives it. */
int tok_utf8_char(const unsigned char *p, size_t n, uint32_t *cp);
/* Appends the UTF-8 encoding of cp; returns its length. */
int tok_utf8_put(char *dst, uint32_t cp);

/* Python's str.isspace() (what Jinja's trim strips). */
int tok_py_isspace(uint32_t cp);
/* Rust's char::is_whitespace (Unicode White_Space), used by lstrip/rstrip. */
int tok_is_white_space(uint32_t cp);

/* Compiles a pattern (PCRE2_UTF|UCP|MATCH_INVALID_UTF, JIT when available).
 * Oniguruma's \s (what HF matches with) is rewritten into an explicit class:
 * PCRE2's differs at U+180E. `what` names file and field for errors. */
iapo_status tok_regex_compile(iapo_tokenizer *t, const char *pattern, int literal, const char *what,
			      pcre2_code **out);

/* For tests: the pre-tokenizer's pieces of text (added tokens appear as their
 * ids in no piece), each as a uint32 length then its bytes. *out: iapo_free. */
iapo_status tok_debug_pieces(const iapo_tokenizer *t, const char *text, size_t len, char **out, size_t *out_len);

/* chat.c: reads the template kind and its defaults from the config. */
iapo_status tok_chat_setup(iapo_tokenizer *t);

#endif
