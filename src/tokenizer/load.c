/*
 * load.c — building a tokenizer from DIR/tokenizer.json (+ tokenizer_config.json).
 *
 * What we accept is what Qwen2/2.5/3 and Llama 3 ship: model BPE (vocab,
 * merges as "a b" strings or [a, b] pairs, ignore_merges, unk_token), added
 * tokens with their flags, normaliser null/NFC/NFD/NFKC/NFKD/Sequence,
 * pre-tokenizer Split (Regex or String pattern, Isolated/Removed, not
 * inverted) / ByteLevel / Sequence, decoder ByteLevel. Every other type or
 * option that would change the output (dropout, byte_fallback, subword
 * prefixes...) is UNSUPPORTED, naming the file and field, rather than
 * silently tokenised differently. Post-processors are ignored: we encode as
 * HF does with add_special_tokens=False.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "core/status.h"
#include "io/fs.h"
#include "io/json.h"
#include "tokenizer/tok_internal.h"

#define MAX_TOKENIZER_JSON ((size_t)1 << 30)
#define MAX_CONFIG_JSON ((size_t)64 << 20)

/* ---- arena and string tables ---- */

static iapo_status arena_add(iapo_tokenizer *t, const char *s, size_t len, uint32_t *off)
{
	if (t->arena_len + len + 1 > UINT32_MAX)
		return iapo_fail(IAPO_ERR_FORMAT, "%s: expected token strings under 4 GiB in all", t->json_path);
	if (t->arena_len + len + 1 > t->arena_cap) {
		size_t cap = t->arena_cap ? t->arena_cap * 2 : 1 << 16;
		while (cap < t->arena_len + len + 1) cap *= 2;
		char *p = iapo_realloc(t->arena, cap);
		if (!p) return iapo_fail(IAPO_ERR_NOMEM, "%s: out of memory for token strings", t->json_path);
		t->arena = p;
		t->arena_cap = cap;
	}
	memcpy(t->arena + t->arena_len, s, len);
	t->arena[t->arena_len + len] = '\0';
	*off = (uint32_t)t->arena_len;
	t->arena_len += len + 1;
	return IAPO_OK;
}

static iapo_status strtab_init(tok_strtab *tab, size_t n, const char *what)
{
	size_t cap = 16;
	while (cap < 2 * n + 1) cap *= 2;
	tab->off = iapo_malloc(cap * sizeof *tab->off);
	tab->len = iapo_malloc(cap * sizeof *tab->len);
	tab->id = iapo_malloc(cap * sizeof *tab->id);
	if (!tab->off || !tab->len || !tab->id) return iapo_fail(IAPO_ERR_NOMEM, "out of memory: %s table", what);
	for (size_t i = 0; i < cap; i++) tab->id[i] = -1;
	tab->mask = cap - 1;
	return IAPO_OK;
}

static void strtab_free(tok_strtab *tab)
{
	iapo_free(tab->off);
	iapo_free(tab->len);
	iapo_free(tab->id);
	memset(tab, 0, sizeof *tab);
}

/* Inserts (or, for a repeated string, overwrites as a JSON object read by HF
 * would) the string at arena offset off. */
static void strtab_put(iapo_tokenizer *t, tok_strtab *tab, uint32_t off, uint32_t len, int id)
{
	size_t i = (size_t)tok_hash_bytes(t->arena + off, len) & tab->mask;
	while (tab->id[i] >= 0) {
		if (tab->len[i] == len && !memcmp(t->arena + tab->off[i], t->arena + off, len)) break;
		i = (i + 1) & tab->mask;
	}
	tab->off[i] = off;
	tab->len[i] = len;
	tab->id[i] = id;
}

int tok_lookup(const iapo_tokenizer *t, const tok_strtab *tab, const char *s, size_t len)
{
	if (!tab->id) return -1;
	size_t i = (size_t)tok_hash_bytes(s, len) & tab->mask;
	while (tab->id[i] >= 0) {
		if (tab->len[i] == len && !memcmp(t->arena + tab->off[i], s, len)) return tab->id[i];
		i = (i + 1) & tab->mask;
	}
	return -1;
}

/* ---- small JSON helpers with tokenizer-specific messages ---- */

static const char *type_of(const cJSON *v) { return iapo_json_type_name(v); }

/* A flag that may be absent (dflt) or a boolean. */
static iapo_status get_bool(const cJSON *obj, const char *key, int dflt, const char *file, const char *field,
			    int *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
	*out = dflt;
	if (!v || cJSON_IsNull(v)) return IAPO_OK;
	if (!cJSON_IsBool(v))
		return iapo_fail(IAPO_ERR_FORMAT, "%s: %s.%s: expected a boolean, found %s", file, field, key, type_of(v));
	*out = cJSON_IsTrue(v);
	return IAPO_OK;
}

/* The type name of a component object ("type" string). */
static iapo_status get_type(const cJSON *obj, const char *file, const char *field, const char **out)
{
	if (!cJSON_IsObject(obj))
		return iapo_fail(IAPO_ERR_FORMAT, "%s: %s: expected an object, found %s", file, field, type_of(obj));
	const cJSON *ty = cJSON_GetObjectItemCaseSensitive(obj, "type");
	if (!cJSON_IsString(ty))
		return iapo_fail(IAPO_ERR_FORMAT, "%s: %s.type: expected a string, found %s", file, field, type_of(ty));
	*out = ty->valuestring;
	return IAPO_OK;
}

/* ---- model ---- */

static iapo_status check_model_options(iapo_tokenizer *t, const cJSON *model)
{
	const char *f = t->json_path;
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(model, "dropout");
	if (v && !cJSON_IsNull(v) && !(cJSON_IsNumber(v) && v->valuedouble == 0.0))
		return iapo_fail(IAPO_ERR_UNSUPPORTED, "%s: model.dropout: expected null (BPE dropout is not supported)", f);
	int fallback;
	IAPO_TRY(get_bool(model, "byte_fallback", 0, f, "model", &fallback));
	if (fallback)
		return iapo_fail(IAPO_ERR_UNSUPPORTED, "%s: model.byte_fallback: expected false, found true (not supported)",
				 f);
	static const char *const empty_keys[] = {"continuing_subword_prefix", "end_of_word_suffix"};
	for (int i = 0; i < 2; i++) {
		v = cJSON_GetObjectItemCaseSensitive(model, empty_keys[i]);
		if (v && !cJSON_IsNull(v) && !(cJSON_IsString(v) && !v->valuestring[0]))
			return iapo_fail(IAPO_ERR_UNSUPPORTED, "%s: model.%s: expected null or \"\" (not supported)", f,
					 empty_keys[i]);
	}
	IAPO_TRY(get_bool(model, "ignore_merges", 0, f, "model", &t->ignore_merges));
	return IAPO_OK;
}

/* Largest id in model.vocab and added_tokens, validating both as we go. */
static iapo_status scan_ids(iapo_tokenizer *t, const cJSON *vocab, const cJSON *added, int *max_id, int *n_vocab)
{
	const char *f = t->json_path;
	long mx = -1;
	int n = 0;
	for (const cJSON *e = vocab->child; e; e = e->next, n++) {
		long id;
		if (cJSON_IsNumber(e) && e->valuedouble >= 0 && e->valuedouble <= (double)(1L << 30) &&
		    e->valuedouble == (double)(long)e->valuedouble) {
			id = (long)e->valuedouble; /* the common case, without building a message */
		} else {
			char what[96];
			snprintf(what, sizeof what, "model.vocab[\"%.40s\"]", e->string ? e->string : "");
			IAPO_TRY(iapo_json_as_int(e, f, what, 0, 1L << 30, &id));
		}
		if (id > mx) mx = id;
	}
	if (added) {
		int i = 0;
		for (const cJSON *a = added->child; a; a = a->next, i++) {
			char what[48];
			snprintf(what, sizeof what, "added_tokens[%d]", i);
			if (!cJSON_IsObject(a))
				return iapo_fail(IAPO_ERR_FORMAT, "%s: %s: expected an object, found %s", f, what, type_of(a));
			long id;
			IAPO_TRY(iapo_json_req_int(a, "id", f, 0, 1L << 30, &id));
			if (id > mx) mx = id;
		}
	}
	*max_id = (int)mx;
	*n_vocab = n;
	return IAPO_OK;
}

static iapo_status load_vocab(iapo_tokenizer *t, const cJSON *vocab, int n_vocab)
{
	IAPO_TRY(strtab_init(&t->vocab_tab, (size_t)n_vocab, "vocabulary"));
	for (const cJSON *e = vocab->child; e; e = e->next) {
		int id = (int)e->valuedouble;
		size_t len = strlen(e->string);
		uint32_t off;
		IAPO_TRY(arena_add(t, e->string, len, &off));
		strtab_put(t, &t->vocab_tab, off, (uint32_t)len, id);
		if (t->tok_off[id] == UINT32_MAX) {
			t->tok_off[id] = off;
			t->tok_len[id] = (uint32_t)len;
		}
	}
	for (int b = 0; b < 256; b++) {
		char s[4];
		int k = tok_utf8_put(s, (uint32_t)tok_byte_to_cp(b));
		t->byte_id[b] = tok_lookup(t, &t->vocab_tab, s, (size_t)k);
	}
	return IAPO_OK;
}

/* One merge as the two token strings (pointers into the JSON). */
static iapo_status merge_parts(const iapo_tokenizer *t, const cJSON *m, int i, const char **a, size_t *alen,
			       const char **b, size_t *blen)
{
	const char *f = t->json_path;
	if (cJSON_IsString(m)) {
		const char *s = m->valuestring, *sp = strchr(s, ' ');
		if (!sp || strchr(sp + 1, ' '))
			return iapo_fail(IAPO_ERR_FORMAT, "%s: model.merges[%d]: expected \"left right\" (one space), found \"%.60s\"",
					 f, i, s);
		*a = s;
		*alen = (size_t)(sp - s);
		*b = sp + 1;
		*blen = strlen(sp + 1);
		return IAPO_OK;
	}
	if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 && cJSON_IsString(m->child) && cJSON_IsString(m->child->next)) {
		*a = m->child->valuestring;
		*alen = strlen(*a);
		*b = m->child->next->valuestring;
		*blen = strlen(*b);
		return IAPO_OK;
	}
	return iapo_fail(IAPO_ERR_FORMAT, "%s: model.merges[%d]: expected a \"left right\" string or a [left, right] pair, found %s",
			 f, i, type_of(m));
}

static iapo_status load_merges(iapo_tokenizer *t, const cJSON *merges)
{
	const char *f = t->json_path;
	int n = cJSON_GetArraySize(merges);
	t->n_merges = n;
	size_t cap = 16;
	while (cap < 2 * (size_t)n + 1) cap *= 2;
	t->merge_keys = iapo_malloc(cap * sizeof *t->merge_keys);
	t->merge_rank = iapo_malloc(cap * sizeof *t->merge_rank);
	t->merge_new = iapo_malloc(cap * sizeof *t->merge_new);
	if (!t->merge_keys || !t->merge_rank || !t->merge_new)
		return iapo_fail(IAPO_ERR_NOMEM, "%s: out of memory for %d merges", f, n);
	memset(t->merge_keys, 0xff, cap * sizeof *t->merge_keys);
	t->merge_mask = cap - 1;
	char *joined = NULL;
	size_t joined_cap = 0;
	iapo_status st = IAPO_OK;
	int i = 0;
	for (const cJSON *m = merges->child; m; m = m->next, i++) {
		const char *a = NULL, *b = NULL;
		size_t alen = 0, blen = 0;
		IAPO_CHECK(st, merge_parts(t, m, i, &a, &alen, &b, &blen));
		int ia = tok_lookup(t, &t->vocab_tab, a, alen), ib = tok_lookup(t, &t->vocab_tab, b, blen);
		if (ia < 0 || ib < 0) {
			st = iapo_fail(IAPO_ERR_FORMAT, "%s: model.merges[%d]: expected tokens of model.vocab, found \"%.*s\" which is not in it",
				       f, i, (int)(ia < 0 ? alen : blen), ia < 0 ? a : b);
			goto fail;
		}
		if (alen + blen > joined_cap) {
			joined_cap = 2 * (alen + blen) + 16;
			char *p = iapo_realloc(joined, joined_cap);
			if (!p) {
				st = iapo_fail(IAPO_ERR_NOMEM, "%s: out of memory reading merges", f);
				goto fail;
			}
			joined = p;
		}
		memcpy(joined, a, alen);
		memcpy(joined + alen, b, blen);
		int inew = tok_lookup(t, &t->vocab_tab, joined, alen + blen);
		if (inew < 0) {
			st = iapo_fail(IAPO_ERR_FORMAT, "%s: model.merges[%d]: expected the merged token \"%.*s\" in model.vocab, found it missing",
				       f, i, (int)(alen + blen > 80 ? 80 : alen + blen), joined);
			goto fail;
		}
		uint64_t key = (uint64_t)(uint32_t)ia << 32 | (uint32_t)ib;
		size_t s = (size_t)tok_hash_pair(key) & t->merge_mask;
		while (t->merge_keys[s] != UINT64_MAX && t->merge_keys[s] != key) s = (s + 1) & t->merge_mask;
		/* A repeated pair takes the later rank, as HF's HashMap collect does. */
		t->merge_keys[s] = key;
		t->merge_rank[s] = i;
		t->merge_new[s] = inew;
	}
fail:
	iapo_free(joined);
	return st;
}

/* ---- added tokens ---- */

static int added_cmp(const void *pa, const void *pb, void *arena)
{
	const tok_added *a = pa, *b = pb;
	const unsigned char *s = arena;
	if (a->normalized != b->normalized) return (int)a->normalized - (int)b->normalized;
	int fa = a->len ? s[a->off] : 256, fb = b->len ? s[b->off] : 256;
	if (fa != fb) return fa - fb;
	if (a->len != b->len) return a->len > b->len ? -1 : 1;
	return a->id - b->id;
}

static iapo_status load_added(iapo_tokenizer *t, const cJSON *added)
{
	const char *f = t->json_path;
	int n = added ? cJSON_GetArraySize(added) : 0;
	t->added = iapo_calloc((size_t)n + 1, sizeof *t->added);
	if (!t->added) return iapo_fail(IAPO_ERR_NOMEM, "%s: out of memory for added tokens", f);
	IAPO_TRY(strtab_init(&t->added_tab, (size_t)n, "added tokens"));
	int i = 0;
	for (const cJSON *a = added ? added->child : NULL; a; a = a->next, i++) {
		char field[48];
		snprintf(field, sizeof field, "added_tokens[%d]", i);
		const char *content;
		long id;
		IAPO_TRY(iapo_json_req_int(a, "id", f, 0, 1L << 30, &id));
		const cJSON *c = cJSON_GetObjectItemCaseSensitive(a, "content");
		if (!cJSON_IsString(c))
			return iapo_fail(IAPO_ERR_FORMAT, "%s: %s.content: expected a string, found %s", f, field, type_of(c));
		content = c->valuestring;
		int special, lstrip, rstrip, single_word, normalized;
		IAPO_TRY(get_bool(a, "special", 0, f, field, &special));
		IAPO_TRY(get_bool(a, "lstrip", 0, f, field, &lstrip));
		IAPO_TRY(get_bool(a, "rstrip", 0, f, field, &rstrip));
		IAPO_TRY(get_bool(a, "single_word", 0, f, field, &single_word));
		IAPO_TRY(get_bool(a, "normalized", !special, f, field, &normalized));
		size_t len = strlen(content);
		uint32_t off;
		IAPO_TRY(arena_add(t, content, len, &off));
		tok_added *d = &t->added[t->n_added++];
		d->off = off;
		d->len = (uint32_t)len;
		d->id = (int)id;
		d->special = (unsigned)special;
		d->lstrip = (unsigned)lstrip;
		d->rstrip = (unsigned)rstrip;
		d->single_word = (unsigned)single_word;
		d->normalized = (unsigned)normalized;
		strtab_put(t, &t->added_tab, off, (uint32_t)len, (int)id);
		/* HF's decode looks added tokens up before the model's vocabulary. */
		t->tok_off[id] = off;
		t->tok_len[id] = (uint32_t)len;
		t->tok_flags[id] |= TOK_FLAG_ADDED | (special ? TOK_FLAG_SPECIAL : 0);
	}
	qsort_r(t->added, (size_t)t->n_added, sizeof *t->added, added_cmp, t->arena);
	/* added_first[g][b]: first index whose (normalized, first byte) >= (g, b). */
	for (int g = 0; g < 2; g++) {
		int k = 0;
		for (int b = 0; b <= 256; b++) {
			while (k < t->n_added) {
				const tok_added *d = &t->added[k];
				int fb = d->len ? (unsigned char)t->arena[d->off] : 256;
				if ((int)d->normalized > g || ((int)d->normalized == g && fb >= b)) break;
				k++;
			}
			t->added_first[g][b] = k;
		}
		t->has_added[g] = t->added_first[g][256] > t->added_first[g][0];
	}
	return IAPO_OK;
}

/* ---- normaliser and pre-tokenizer ---- */

static iapo_status load_normalizer(iapo_tokenizer *t, const cJSON *norm, const char *field)
{
	const char *f = t->json_path, *type;
	if (!norm || cJSON_IsNull(norm)) return IAPO_OK;
	IAPO_TRY(get_type(norm, f, field, &type));
	static const char *const forms[] = {"NFC", "NFD", "NFKC", "NFKD"};
	for (int i = 0; i < 4; i++)
		if (!strcmp(type, forms[i])) {
			if (t->n_norm >= TOK_MAX_NORM)
				return iapo_fail(IAPO_ERR_UNSUPPORTED, "%s: %s: expected at most %d normalizers", f, field,
						 TOK_MAX_NORM);
			t->norm[t->n_norm++] = i;
			return IAPO_OK;
		}
	if (!strcmp(type, "Sequence")) {
		const cJSON *list = cJSON_GetObjectItemCaseSensitive(norm, "normalizers");
		if (!cJSON_IsArray(list))
			return iapo_fail(IAPO_ERR_FORMAT, "%s: %s.normalizers: expected an array, found %s", f, field,
					 type_of(list));
		int i = 0;
		for (const cJSON *e = list->child; e; e = e->next, i++) {
			char sub[96];
			snprintf(sub, sizeof sub, "%s.normalizers[%d]", field, i);
			IAPO_TRY(load_normalizer(t, e, sub));
		}
		return IAPO_OK;
	}
	return iapo_fail(IAPO_ERR_UNSUPPORTED, "%s: %s.type: expected NFC, NFD, NFKC, NFKD or Sequence, found %s", f,
			 field, type);
}

/* GPT-2's pre-tokenizer regex, what ByteLevel uses when use_regex is true. */
static const char gpt2_pattern[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

static iapo_status load_pretok(iapo_tokenizer *t, const cJSON *pre, const char *field)
{
	const char *f = t->json_path, *type;
	char what[160];
	if (!pre || cJSON_IsNull(pre)) return IAPO_OK;
	IAPO_TRY(get_type(pre, f, field, &type));
	if (!strcmp(type, "Sequence")) {
		const cJSON *list = cJSON_GetObjectItemCaseSensitive(pre, "pretokenizers");
		if (!cJSON_IsArray(list))
			return iapo_fail(IAPO_ERR_FORMAT, "%s: %s.pretokenizers: expected an array, found %s", f, field,
					 type_of(list));
		int i = 0;
		for (const cJSON *e = list->child; e; e = e->next, i++) {
			char sub[96];
			snprintf(sub, sizeof sub, "%s.pretokenizers[%d]", field, i);
			IAPO_TRY(load_pretok(t, e, sub));
		}
		return IAPO_OK;
	}
	if (t->n_pre >= TOK_MAX_PRETOK)
		return iapo_fail(IAPO_ERR_UNSUPPORTED, "%s: %s: expected at most %d pre-tokenizers", f, field, TOK_MAX_PRETOK);
	tok_pretok *p = &t->pre[t->n_pre];
	memset(p, 0, sizeof *p);
	if (!strcmp(type, "Split")) {
		p->kind = PRE_SPLIT;
		const cJSON *pat = cJSON_GetObjectItemCaseSensitive(pre, "pattern");
		const cJSON *rx = cJSON_IsObject(pat) ? cJSON_GetObjectItemCaseSensitive(pat, "Regex") : NULL;
		const cJSON *lit = cJSON_IsObject(pat) ? cJSON_GetObjectItemCaseSensitive(pat, "String") : NULL;
		if (!cJSON_IsString(rx) && !cJSON_IsString(lit))
			return iapo_fail(IAPO_ERR_FORMAT, "%s: %s.pattern: expected {\"Regex\": ...} or {\"String\": ...}, found %s",
					 f, field, type_of(pat));
		const cJSON *beh = cJSON_GetObjectItemCaseSensitive(pre, "behavior");
		if (!cJSON_IsString(beh))
			return iapo_fail(IAPO_ERR_FORMAT, "%s: %s.behavior: expected a string, found %s", f, field, type_of(beh));
		if (!strcmp(beh->valuestring, "Isolated"))
			p->behavior = SPLIT_ISOLATED;
		else if (!strcmp(beh->valuestring, "Removed"))
			p->behavior = SPLIT_REMOVED;
		else
			return iapo_fail(IAPO_ERR_UNSUPPORTED, "%s: %s.behavior: expected Isolated or Removed, found %s", f, field,
					 beh->valuestring);
		int invert;
		IAPO_TRY(get_bool(pre, "invert", 0, f, field, &invert));
		if (invert) return iapo_fail(IAPO_ERR_UNSUPPORTED, "%s: %s.invert: expected false, found true", f, field);
		snprintf(what, sizeof what, "%s: %s.pattern", f, field);
		IAPO_TRY(tok_regex_compile(t, cJSON_IsString(rx) ? rx->valuestring : lit->valuestring, !cJSON_IsString(rx),
					   what, &p->re));
		t->n_pre++;
		return IAPO_OK;
	}
	if (!strcmp(type, "ByteLevel")) {
		p->kind = PRE_BYTELEVEL;
		int use_regex;
		IAPO_TRY(get_bool(pre, "add_prefix_space", 1, f, field, &p->add_prefix_space));
		IAPO_TRY(get_bool(pre, "use_regex", 1, f, field, &use_regex));
		if (use_regex) {
			snprintf(what, sizeof what, "%s: %s (GPT-2 regex)", f, field);
			IAPO_TRY(tok_regex_compile(t, gpt2_pattern, 0, what, &p->re));
		}
		t->n_pre++;
		t->has_bytelevel = 1;
		return IAPO_OK;
	}
	return iapo_fail(IAPO_ERR_UNSUPPORTED, "%s: %s.type: expected Split, ByteLevel or Sequence, found %s", f, field,
			 type);
}

static iapo_status load_decoder(iapo_tokenizer *t, const cJSON *dec)
{
	const char *f = t->json_path, *type;
	if (!dec || cJSON_IsNull(dec))
		return iapo_fail(IAPO_ERR_UNSUPPORTED, "%s: decoder: expected ByteLevel, found %s", f, type_of(dec));
	IAPO_TRY(get_type(dec, f, "decoder", &type));
	if (strcmp(type, "ByteLevel"))
		return iapo_fail(IAPO_ERR_UNSUPPORTED, "%s: decoder.type: expected ByteLevel, found %s", f, type);
	return IAPO_OK;
}

/* ---- tokenizer_config.json ---- */

/* bos_token/eos_token: a string, an {"content": ...} object, or null. */
static iapo_status config_token(iapo_tokenizer *t, const cJSON *cfg, const char *key, char **out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
	if (!v || cJSON_IsNull(v)) return IAPO_OK;
	if (cJSON_IsObject(v)) v = cJSON_GetObjectItemCaseSensitive(v, "content");
	if (!cJSON_IsString(v))
		return iapo_fail(IAPO_ERR_FORMAT, "%s: %s: expected a string or {\"content\": string}, found %s", t->cfg_path,
				 key, type_of(v));
	*out = iapo_strdup(v->valuestring);
	if (!*out) return iapo_fail(IAPO_ERR_NOMEM, "out of memory");
	return IAPO_OK;
}

static iapo_status load_config(iapo_tokenizer *t)
{
	if (!iapo_fs_exists(t->cfg_path)) return IAPO_OK;
	cJSON *cfg = NULL;
	IAPO_TRY(iapo_json_load(t->cfg_path, MAX_CONFIG_JSON, &cfg));
	iapo_status st = IAPO_OK;
	if (!cJSON_IsObject(cfg)) {
		st = iapo_fail(IAPO_ERR_FORMAT, "%s: expected a JSON object, found %s", t->cfg_path, type_of(cfg));
		goto fail;
	}
	t->have_config = 1;
	IAPO_CHECK(st, config_token(t, cfg, "bos_token", &t->bos_token));
	IAPO_CHECK(st, config_token(t, cfg, "eos_token", &t->eos_token));
	const cJSON *ct = cJSON_GetObjectItemCaseSensitive(cfg, "chat_template");
	if (cJSON_IsArray(ct)) {
		/* A list of named templates: HF uses the one called "default". */
		const cJSON *pick = NULL;
		for (const cJSON *e = ct->child; e; e = e->next) {
			const cJSON *name = cJSON_GetObjectItemCaseSensitive(e, "name");
			if (cJSON_IsString(name) && !strcmp(name->valuestring, "default"))
				pick = cJSON_GetObjectItemCaseSensitive(e, "template");
		}
		ct = pick;
	}
	if (ct && !cJSON_IsNull(ct)) {
		if (!cJSON_IsString(ct)) {
			st = iapo_fail(IAPO_ERR_FORMAT, "%s: chat_template: expected a string, found %s", t->cfg_path,
				       type_of(ct));
			goto fail;
		}
		t->chat_template = iapo_strdup(ct->valuestring);
		if (!t->chat_template) {
			st = iapo_fail(IAPO_ERR_NOMEM, "out of memory");
			goto fail;
		}
		t->chat_template_src = t->cfg_path;
	}
fail:
	cJSON_Delete(cfg);
	return st;
}

/* Newer transformers save the template beside the config. */
static iapo_status load_template_file(iapo_tokenizer *t)
{
	if (t->chat_template) return IAPO_OK;
	char path[4096];
	IAPO_TRY(iapo_fs_join(path, sizeof path, t->dir, "chat_template.jinja"));
	if (!iapo_fs_exists(path)) return IAPO_OK;
	size_t len;
	IAPO_TRY(iapo_fs_read_file(path, MAX_CONFIG_JSON, &t->chat_template, &len));
	t->chat_src_buf = iapo_strdup(path);
	if (!t->chat_src_buf) return iapo_fail(IAPO_ERR_NOMEM, "out of memory");
	t->chat_template_src = t->chat_src_buf;
	return IAPO_OK;
}

/* ---- the whole file ---- */

static void *gmalloc(PCRE2_SIZE n, void *data)
{
	(void)data;
	return iapo_malloc(n);
}

static void gfree(void *p, void *data)
{
	(void)data;
	iapo_free(p);
}

static char *join_path(const char *dir, const char *name)
{
	size_t n = strlen(dir) + strlen(name) + 2;
	char *p = iapo_malloc(n);
	if (p) snprintf(p, n, "%s/%s", dir, name);
	return p;
}

static iapo_status load_json(iapo_tokenizer *t, const cJSON *root)
{
	const char *f = t->json_path, *type;
	if (!cJSON_IsObject(root))
		return iapo_fail(IAPO_ERR_FORMAT, "%s: expected a JSON object, found %s", f, type_of(root));
	const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
	if (!model) return iapo_fail(IAPO_ERR_FORMAT, "%s: model: expected an object, found it missing", f);
	IAPO_TRY(get_type(model, f, "model", &type));
	if (strcmp(type, "BPE"))
		return iapo_fail(IAPO_ERR_UNSUPPORTED, "%s: model.type: expected BPE, found %s (only byte-level BPE is supported)",
				 f, type);
	IAPO_TRY(check_model_options(t, model));
	const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
	if (!cJSON_IsObject(vocab))
		return iapo_fail(IAPO_ERR_FORMAT, "%s: model.vocab: expected an object, found %s", f, type_of(vocab));
	const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
	if (!cJSON_IsArray(merges))
		return iapo_fail(IAPO_ERR_FORMAT, "%s: model.merges: expected an array, found %s", f, type_of(merges));
	const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
	if (added && !cJSON_IsNull(added) && !cJSON_IsArray(added))
		return iapo_fail(IAPO_ERR_FORMAT, "%s: added_tokens: expected an array, found %s", f, type_of(added));
	if (added && cJSON_IsNull(added)) added = NULL;

	int max_id = -1, n_vocab = 0;
	IAPO_TRY(scan_ids(t, vocab, added, &max_id, &n_vocab));
	if (max_id < 0) return iapo_fail(IAPO_ERR_FORMAT, "%s: model.vocab: expected tokens, found none", f);
	/* The tables below have max_id + 1 entries: a few tokens claiming huge
	 * ids would make a 100-byte file cost gigabytes. Real vocabularies are
	 * dense, so twice the token count (+ 1024) is room enough. */
	long entries = (long)n_vocab + (added ? cJSON_GetArraySize(added) : 0), id_cap = 2 * entries + 1024;
	if (max_id >= id_cap)
		return iapo_fail(IAPO_ERR_FORMAT,
				 "%s: model.vocab / added_tokens: expected ids below %ld (twice the %ld tokens + 1024; real "
				 "vocabularies are dense), found id %d",
				 f, id_cap, entries, max_id);
	t->n_ids = max_id + 1;
	t->tok_off = iapo_malloc((size_t)t->n_ids * sizeof *t->tok_off);
	t->tok_len = iapo_calloc((size_t)t->n_ids, sizeof *t->tok_len);
	t->tok_flags = iapo_calloc((size_t)t->n_ids, 1);
	if (!t->tok_off || !t->tok_len || !t->tok_flags)
		return iapo_fail(IAPO_ERR_NOMEM, "%s: out of memory for %d tokens", f, t->n_ids);
	memset(t->tok_off, 0xff, (size_t)t->n_ids * sizeof *t->tok_off);

	IAPO_TRY(load_vocab(t, vocab, n_vocab));
	IAPO_TRY(load_merges(t, merges));
	IAPO_TRY(load_added(t, added));

	t->unk_id = -1;
	const cJSON *unk = cJSON_GetObjectItemCaseSensitive(model, "unk_token");
	if (cJSON_IsString(unk)) t->unk_id = tok_lookup(t, &t->vocab_tab, unk->valuestring, strlen(unk->valuestring));

	IAPO_TRY(load_normalizer(t, cJSON_GetObjectItemCaseSensitive(root, "normalizer"), "normalizer"));
	IAPO_TRY(load_pretok(t, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), "pre_tokenizer"));
	if (!t->has_bytelevel)
		return iapo_fail(IAPO_ERR_UNSUPPORTED, "%s: pre_tokenizer: expected a ByteLevel step (only byte-level BPE is supported), found none",
				 f);
	IAPO_TRY(load_decoder(t, cJSON_GetObjectItemCaseSensitive(root, "decoder")));
	return IAPO_OK;
}

iapo_status iapo_tokenizer_load(const char *dir, iapo_tokenizer **out)
{
	*out = NULL;
	if (!dir || !*dir) return iapo_fail(IAPO_ERR_ARG, "tokenizer: expected a directory, found an empty path");
	iapo_tokenizer *t = iapo_calloc(1, sizeof *t);
	if (!t) return iapo_fail(IAPO_ERR_NOMEM, "out of memory");
	iapo_status st = IAPO_OK;
	cJSON *root = NULL;
	t->dir = iapo_strdup(dir);
	t->json_path = join_path(dir, "tokenizer.json");
	t->cfg_path = join_path(dir, "tokenizer_config.json");
	t->gctx = pcre2_general_context_create(gmalloc, gfree, NULL);
	if (!t->dir || !t->json_path || !t->cfg_path || !t->gctx) {
		st = iapo_fail(IAPO_ERR_NOMEM, "out of memory");
		goto fail;
	}
	IAPO_CHECK(st, iapo_json_load(t->json_path, MAX_TOKENIZER_JSON, &root));
	IAPO_CHECK(st, load_json(t, root));
	cJSON_Delete(root);
	root = NULL;
	IAPO_CHECK(st, load_config(t));
	IAPO_CHECK(st, load_template_file(t));
	IAPO_CHECK(st, tok_chat_setup(t));
	*out = t;
	return IAPO_OK;
fail:
	cJSON_Delete(root);
	iapo_tokenizer_free(t);
	return st;
}

void iapo_tokenizer_free(iapo_tokenizer *t)
{
	if (!t) return;
	for (int i = 0; i < t->n_pre; i++) pcre2_code_free(t->pre[i].re);
	/* A step that failed half-way may hold a pattern beyond n_pre. */
	if (t->n_pre < TOK_MAX_PRETOK) pcre2_code_free(t->pre[t->n_pre].re);
	pcre2_general_context_free(t->gctx);
	strtab_free(&t->vocab_tab);
	strtab_free(&t->added_tab);
	iapo_free(t->merge_keys);
	iapo_free(t->merge_rank);
	iapo_free(t->merge_new);
	iapo_free(t->tok_off);
	iapo_free(t->tok_len);
	iapo_free(t->tok_flags);
	iapo_free(t->arena);
	iapo_free(t->added);
	iapo_free(t->chat_template);
	iapo_free(t->chat_src_buf);
	iapo_free(t->default_system);
	iapo_free(t->llama_date);
	iapo_free(t->bos_token);
	iapo_free(t->eos_token);
	iapo_free(t->dir);
	iapo_free(t->json_path);
	iapo_free(t->cfg_path);
	iapo_free(t);
}

int iapo_tokenizer_vocab_size(const iapo_tokenizer *t) { return t->n_ids; }

int iapo_tokenizer_token_id(const iapo_tokenizer *t, const char *token)
{
	size_t len = strlen(token);
	int id = tok_lookup(t, &t->added_tab, token, len);
	return id >= 0 ? id : tok_lookup(t, &t->vocab_tab, token, len);
}

int iapo_tokenizer_is_special(const iapo_tokenizer *t, int id)
{
	return id >= 0 && id < t->n_ids && (t->tok_flags[id] & TOK_FLAG_SPECIAL) != 0;
}
