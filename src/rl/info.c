/*
 * info.c — the early-exit estimator of info.h: the chunked pass over the KV
 * cache (iapo_info_compute) and the brute-force oracle (iapo_info_naive).
 *
 * Cache layout: slots 0..Bmax−1 hold the batch's sequences (prompt +
 * completion at their true positions); slots Bmax.. are scratch. Position j
 * of a chunk owns W = K + N − 1 consecutive scratch entries (its postfix
 * rows, then its greedy answer rows) at slot Bmax + j / per_slot, offset
 * (j % per_slot) · W (per_slot smaller, a chunk's half, where the chunk fits
 * one slot and the cache has two: halves_pslot). Rows of one position are
 * issued in order, so each reads the K/V its predecessors stored
 * (kvcache.h: a row sees keys written by earlier rows of the same call).
 */
#include "rl/info.h"

#include <limits.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "core/status.h"
#include "kernels/kernels.h"
#include "kernels/pool.h"
#include "model/kvcache.h"
#include "model/sample.h"
#include "model/transformer.h"

#define ROWS_TARGET 512 /* rows per GEMM pass worth filling (kvcache's chunk) */
#define PREFILL_ROWS 512
#define DEFAULT_BUDGET ((size_t)256 << 20)
#define NAIVE_BATCH 8 /* prefixes per training forward in the oracle */

struct iapo_info {
	const iapo_weights *w;
	iapo_kv *kv;
	int Bmax, Tmax, V;
	iapo_predict predict;
	float temp;
	int K, N, W;    /* postfix length, answer tokens, scratch entries per position */
	int *postfix;   /* (K) */
	int chunk;      /* positions per pass */
	int per_slot;   /* positions per scratch slot */
	int nlog;       /* rows of logits */
	int nrows;      /* rows buffer */
	iapo_kv_row *rows; /* (nrows) */
	float *logits;  /* (nlog, V) */
	float *ent;     /* (nlog) */
	int *ob, *ot;   /* (nlog) sequence and t of each logits row */
	int *cur;       /* (chunk) greedy answer token */
	int stride;     /* >= 1 */
	int *at;        /* (n_at) sorted token ids, or NULL */
	int n_at;
	int bf16;       /* multiply by bf16 copies of the weight matrices */
	int attn16;     /* and attend in bf16 (iapo_kv_attn_bf16) */
	int pack;       /* pack the weight matrices once per call (iapo_kv_pack_weights) */
	int opened;     /* this call reads the packs the caller's cache holds (iapo_kv_pack_reopen) */
	size_t bytes;
	/* the cache of the current call: e->kv, or the caller's (compute_cached) */
	iapo_kv *ckv;
	const int *smap; /* (n) slot of each batch sequence; NULL: slot i */
	int S0, pslot, cap; /* first scratch slot, positions per scratch slot, positions per chunk */
	int kv_slots, kv_tmax; /* the own cache's shape (made on first use) */
};

const char *iapo_predict_str(iapo_predict p) { return p == IAPO_PREDICT_NEXT_TOKEN ? "next_token" : "answer"; }

iapo_status iapo_predict_parse(const char *s, iapo_predict *p)
{
	if (s && (!strcmp(s, "answer") || !strcmp(s, "last_token"))) *p = IAPO_PREDICT_ANSWER;
	else if (s && !strcmp(s, "next_token")) *p = IAPO_PREDICT_NEXT_TOKEN;
	else return iapo_fail(IAPO_ERR_ARG, "predict: expected answer or next_token, found \"%.64s\"", s ? s : "");
	return IAPO_OK;
}

iapo_info_opts iapo_info_defaults(void)
{
	iapo_info_opts o;
	memset(&o, 0, sizeof o);
	o.predict = IAPO_PREDICT_ANSWER;
	o.answer_tokens = 1;
	o.temperature = 1.0f;
	return o;
}

static iapo_status check_opts(const iapo_weights *w, const iapo_info_opts *o)
{
	if (!w || !o) return iapo_fail(IAPO_ERR_ARG, "information estimator: expected weights and options, found NULL");
	if (o->predict != IAPO_PREDICT_ANSWER && o->predict != IAPO_PREDICT_NEXT_TOKEN)
		return iapo_fail(IAPO_ERR_ARG, "information estimator: predict: expected answer or next_token, found %d",
				 (int)o->predict);
	if (!(o->temperature > 0) || !isfinite(o->temperature))
		return iapo_fail(IAPO_ERR_ARG, "information estimator: temperature: expected > 0, found %g",
				 (double)o->temperature);
	if (o->chunk < 0) return iapo_fail(IAPO_ERR_ARG, "information estimator: chunk: expected >= 0, found %d", o->chunk);
	if (o->stride < 0) return iapo_fail(IAPO_ERR_ARG, "information estimator: stride: expected >= 1, found %d", o->stride);
	if (o->n_at < 0 || (o->n_at > 0 && !o->at_tokens))
		return iapo_fail(IAPO_ERR_ARG, "information estimator: at tokens: expected a list of ids, found %d", o->n_at);
	if (o->n_at > 0 && o->stride > 1)
		return iapo_fail(IAPO_ERR_ARG, "information estimator: expected a stride or a token list, found both");
	if (o->predict == IAPO_PREDICT_NEXT_TOKEN) return IAPO_OK;
	if (o->n_postfix < 1 || !o->postfix)
		return iapo_fail(IAPO_ERR_ARG, "information estimator: postfix: expected at least one token, found %d",
				 o->n_postfix);
	if (o->answer_tokens < 1)
		return iapo_fail(IAPO_ERR_ARG, "information estimator: answer tokens: expected >= 1, found %d",
				 o->answer_tokens);
	for (int i = 0; i < o->n_postfix; i++)
		if (o->postfix[i] < 0 || o->postfix[i] >= w->cfg.V)
			return iapo_fail(IAPO_ERR_ARG,
					 "information estimator: postfix token %d: expected an id in [0, %d), found %d", i,
					 w->cfg.V, o->postfix[i]);
	return IAPO_OK;
}

static iapo_status check_batch(const iapo_weights *w, const iapo_info_batch *b, int Bmax, int Tmax, int ld)
{
	if (!b || b->n < 0 || (b->n > 0 && (!b->prompts || !b->plen || !b->clen)))
		return iapo_fail(IAPO_ERR_ARG, "information estimator: batch: expected n >= 0 and its arrays");
	if (b->n > Bmax)
		return iapo_fail(IAPO_ERR_ARG, "information estimator: batch: expected at most %d sequences, found %d", Bmax,
				 b->n);
	const int V = w->cfg.V;
	for (int i = 0; i < b->n; i++) {
		int P = b->plen[i], L = b->clen[i];
		if (P < 1 || L < 0 || (L > 0 && (!b->comps || !b->comps[i])) || !b->prompts[i])
			return iapo_fail(IAPO_ERR_ARG,
					 "information estimator: sequence %d: expected a prompt of >= 1 tokens and a "
					 "completion of >= 0, found %d and %d",
					 i, P, L);
		if ((long)P + L > Tmax)
			return iapo_fail(IAPO_ERR_ARG,
					 "information estimator: sequence %d: expected at most %d tokens, found %d + %d", i,
					 Tmax, P, L);
		if (L + 1 > ld)
			return iapo_fail(IAPO_ERR_ARG,
					 "information estimator: sequence %d: output row stride %d holds fewer than its %d "
					 "positions",
					 i, ld, L + 1);
		for (int j = 0; j < P + L; j++) {
			int tok = j < P ? b->prompts[i][j] : b->comps[i][j - P];
			if (tok < 0 || tok >= V)
				return iapo_fail(IAPO_ERR_ARG,
						 "information estimator: sequence %d, %s token %d: expected an id in [0, %d), "
						 "found %d",
						 i, j < P ? "prompt" : "completion", j < P ? j : j - P, V, tok);
		}
	}
	return IAPO_OK;
}

void iapo_info_free(iapo_info *e)
{
	if (!e) return;
	iapo_kv_free(e->kv);
	iapo_free(e->postfix);
	iapo_free(e->rows);
	iapo_free_aligned(e->logits);
	iapo_free(e->ent);
	iapo_free(e->ob);
	iapo_free(e->ot);
	iapo_free(e->cur);
	iapo_free(e->at);
	iapo_free(e);
}

static int cmp_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;
	return (x > y) - (x < y);
}

int iapo_info_chunk(const iapo_info *e) { return e->chunk; }

void iapo_info_set_temperature(iapo_info *e, float temperature)
{
	if (temperature > 0 && isfinite(temperature)) e->temp = temperature;
}
size_t iapo_info_bytes(const iapo_info *e) { return e->bytes; }

iapo_status iapo_info_new(const iapo_weights *w, int Bmax, int Tmax, const iapo_info_opts *o, iapo_info **out)
{
	*out = NULL;
	IAPO_TRY(check_opts(w, o));
	if (Bmax < 1 || Tmax < 1)
		return iapo_fail(IAPO_ERR_ARG, "information estimator: sequences and length: expected >= 1, found %d and %d",
				 Bmax, Tmax);
	const iapo_config *c = &w->cfg;
	iapo_info *e = iapo_calloc(1, sizeof *e);
	if (!e) return iapo_fail(IAPO_ERR_NOMEM, "information estimator: out of memory");
	iapo_status st = IAPO_OK;
	e->w = w;
	e->Bmax = Bmax;
	e->Tmax = Tmax;
	e->V = c->V;
	e->predict = o->predict;
	e->temp = o->temperature;
	const int answer = o->predict == IAPO_PREDICT_ANSWER;
	e->K = answer ? o->n_postfix : 0;
	e->N = answer ? o->answer_tokens : 1;
	e->W = answer ? e->K + e->N - 1 : 0;
	const size_t budget = o->mem_budget ? o->mem_budget : DEFAULT_BUDGET;
	const size_t kv_row = 2 * sizeof(float) * (size_t)c->L * (size_t)c->NKV * (size_t)c->HD;
	const size_t V4 = sizeof(float) * (size_t)c->V;
	const long positions = (long)Bmax * (Tmax + 1);
	if (answer) {
		long ch = o->chunk;
		if (ch == 0) {
			size_t per = (size_t)e->W * kv_row + V4 + (size_t)e->K * sizeof(iapo_kv_row) + 4 * sizeof(int);
			ch = (long)(budget / per);
			long cap = ROWS_TARGET / e->K > 1 ? ROWS_TARGET / e->K : 1;
			if (ch > cap) ch = cap;
			if (ch < 1) ch = 1;
		}
		if (ch > positions) ch = positions;
		e->chunk = (int)ch;
	}
	const int Tkv = answer && e->W > Tmax ? e->W : Tmax;
	e->per_slot = answer ? Tkv / e->W : 1;
	const int nscratch = answer ? (e->chunk + e->per_slot - 1) / e->per_slot : 0;
	long pre = (long)(budget / V4);
	if (pre > PREFILL_ROWS) pre = PREFILL_ROWS;
	if (pre < 1) pre = 1;
	e->nlog = e->chunk > pre ? e->chunk : (int)pre;
	e->nrows = (long)e->chunk * e->K > PREFILL_ROWS ? e->chunk * e->K : PREFILL_ROWS;
	/* the own cache is made by the first iapo_info_compute: an estimator
	 * that only ever runs over the rollout's cache never holds one */
	e->kv_slots = Bmax + nscratch;
	e->kv_tmax = Tkv;
	IAPO_CHECK(st, iapo_alloc_or_fail((void **)&e->rows, sizeof(iapo_kv_row) * (size_t)e->nrows, "information rows"));
	e->logits = iapo_alloc_aligned(V4 * (size_t)e->nlog);
	if (!e->logits) {
		st = iapo_fail(IAPO_ERR_NOMEM, "information estimator: out of memory: logits (%zu bytes)", V4 * e->nlog);
		goto fail;
	}
	IAPO_CHECK(st, iapo_alloc_or_fail((void **)&e->ent, sizeof(float) * (size_t)e->nlog, "entropies"));
	IAPO_CHECK(st, iapo_alloc_or_fail((void **)&e->ob, sizeof(int) * (size_t)e->nlog, "information rows"));
	IAPO_CHECK(st, iapo_alloc_or_fail((void **)&e->ot, sizeof(int) * (size_t)e->nlog, "information rows"));
	if (answer) {
		IAPO_CHECK(st, iapo_alloc_or_fail((void **)&e->cur, sizeof(int) * (size_t)e->chunk, "answer tokens"));
		IAPO_CHECK(st, iapo_alloc_or_fail((void **)&e->postfix, sizeof(int) * (size_t)e->K, "postfix"));
		memcpy(e->postfix, o->postfix, sizeof(int) * (size_t)e->K);
		e->stride = o->stride > 1 ? o->stride : 1;
		e->bf16 = o->bf16 != 0;
		e->attn16 = e->bf16 && !o->attn_fp32;
		e->pack = o->pack_weights != 0;
		if (o->n_at > 0) {
			IAPO_CHECK(st, iapo_alloc_or_fail((void **)&e->at, sizeof(int) * (size_t)o->n_at, "at tokens"));
			memcpy(e->at, o->at_tokens, sizeof(int) * (size_t)o->n_at);
			qsort(e->at, (size_t)o->n_at, sizeof(int), cmp_int);
			e->n_at = o->n_at;
		}
	}
	e->bytes = kv_row * (size_t)(Bmax + nscratch) * (size_t)Tkv + V4 * (size_t)e->nlog +
		   sizeof(iapo_kv_row) * (size_t)e->nrows + sizeof(int) * (size_t)(3 * e->nlog + e->chunk);
	*out = e;
	return IAPO_OK;
fail:
	iapo_info_free(e);
	return st;
}

/* Entropies of the first m logits rows into e->ent; NUMERIC on a non-finite one. */
static iapo_status entropies(iapo_info *e, int m)
{
	iapo_logprob_entropy_forward(NULL, e->ent, e->logits, NULL, m, e->V, e->temp);
	for (int k = 0; k < m; k++)
		if (!isfinite(e->ent[k]))
			return iapo_fail(IAPO_ERR_NUMERIC,
					 "information estimator: sequence %d, position %d: the entropy is not finite (%g)",
					 e->ob[k], e->ot[k], (double)e->ent[k]);
	return IAPO_OK;
}

/* Runs nr prefill rows, m of which want logits; stores their entropies. */
static iapo_status flush_prefill(iapo_info *e, int nr, int m, float *dst, int ld)
{
	IAPO_TRY(iapo_kv_forward_rows(e->ckv, e->rows, nr, e->logits));
	if (m == 0) return IAPO_OK;
	IAPO_TRY(entropies(e, m));
	for (int k = 0; k < m; k++) dst[(size_t)e->ob[k] * ld + e->ot[k]] = e->ent[k];
	return IAPO_OK;
}

/* Which positions of each sequence seq_rows runs. */
typedef enum {
	ROWS_ALL,  /* 0 .. P + L − 1: the own cache's prefill */
	ROWS_LAST, /* P + L − 1 only: the last token, which decoding never feeds back */
	ROWS_TAIL, /* P − 1 .. P + L − 1: the last token and the rows that give C (their K/V rewritten alike) */
} seq_span;

/* Runs the rows of every sequence i of the batch at the positions `span`
 * names into its slot (e->smap[i], or i), each attending to its slot up to
 * and including itself. Rows at positions >= P − 1 give C_{j − P + 1} into
 * dst when dst != NULL. */
static iapo_status seq_rows(iapo_info *e, const iapo_info_batch *b, seq_span span, float *dst, int ld, long *rows)
{
	int nr = 0, m = 0;
	for (int i = 0; i < b->n; i++) {
		const int P = b->plen[i], L = b->clen[i], slot = e->smap ? e->smap[i] : i;
		const int first = span == ROWS_ALL ? 0 : span == ROWS_TAIL ? P - 1 : P + L - 1;
		for (int j = first; j < P + L; j++) {
			iapo_kv_row *r = &e->rows[nr++];
			r->token = j < P ? b->prompts[i][j] : b->comps[i][j - P];
			r->pos = j;
			r->seq = slot;
			r->slot = j;
			r->keys = (iapo_kv_keys){.seq0 = slot, .len0 = j + 1};
			r->out = -1;
			if (dst && j >= P - 1) {
				e->ob[m] = i;
				e->ot[m] = j - (P - 1);
				r->out = m++;
			}
			if (nr == PREFILL_ROWS || m == e->nlog) {
				IAPO_TRY(flush_prefill(e, nr, m, dst, ld));
				*rows += nr;
				nr = m = 0;
			}
		}
	}
	if (nr > 0) IAPO_TRY(flush_prefill(e, nr, m, dst, ld));
	*rows += nr;
	return IAPO_OK;
}

/* Row i (postfix rows, then greedy answer rows) of chunk position j =
 * (e->ob[j], e->ot[j]): at the true position P + t + i, its K/V in entry i of
 * the position's W scratch entries, attending to the cached prefix prompt +
 * o_<t of its own sequence and to entries 0..i. */
static void position_row(const iapo_info *e, const iapo_info_batch *b, int j, int i, int token, int out,
			 iapo_kv_row *r)
{
	const int seq = e->S0 + j / e->pslot, base = (j % e->pslot) * e->W;
	const int own = e->smap ? e->smap[e->ob[j]] : e->ob[j];
	const int pre = b->plen[e->ob[j]] + e->ot[j];
	r->token = token;
	r->pos = pre + i;
	r->seq = seq;
	r->slot = base + i;
	r->keys = (iapo_kv_keys){.seq0 = own, .len0 = pre, .seq1 = seq, .start1 = base, .len1 = i + 1};
	r->out = out;
}

/* The greedy answer token of logits row j, on the kernels' pool (an OpenMP
 * region's threads would fight the pool's spinning worker for a CPU). */
static void argmax_item(void *ctx, long j, int worker)
{
	(void)worker;
	iapo_info *e = ctx;
	e->cur[j] = iapo_sample_argmax(e->logits + (size_t)j * e->V, e->V);
}

static int gcd(int a, int b) { return b ? gcd(b, a % b) : a; }

/* Positions per scratch slot for this call's chunks (e->cap positions, pslot
 * of them fit one slot, ns slots free). A chunk that fits one slot puts its
 * first half in one slot and its second in the next when there are two, so
 * that split_at finds a slot boundary at its middle and the halves run side
 * by side (the trainer's lengths: a slot holds thousands of positions, a
 * chunk 512 / K). The half is rounded up to whole tiles of keys: every
 * position's entries keep their offsets within a tile, so its attention
 * sums in the same order as in one slot (the same bits, one slot or two,
 * any thread count); no split where that leaves no second half. */
static int halves_pslot(iapo_info *e, int pslot, int ns)
{
	if (e->cap > pslot) return pslot;
	const int u = IAPO_KV_KEY_TILE / gcd(e->W, IAPO_KV_KEY_TILE);
	int h = ((e->cap + 1) / 2 + u - 1) / u * u;
	/* a rounded half that leaves the second too few positions to run
	 * beside it (kvcache wants IAPO_KV_HALF_MIN_ROWS logits rows, one a position, in
	 * each): shorter chunks of two whole halves, where they fit (K = 6: 64
	 * positions, 32 + 32, rather than 85 in one piece). With one scratch
	 * slot too, so that one slot and two give the same bits. */
	const int h2 = (IAPO_KV_HALF_MIN_ROWS + u - 1) / u * u;
	if (e->cap - h < IAPO_KV_HALF_MIN_ROWS && 2 * h2 <= e->cap) {
		e->cap = 2 * h2;
		h = h2;
	}
	if (ns < 2) return pslot;
	return h < e->cap ? h : pslot;
}

/* Where a chunk of c positions splits into two halves that share no
 * scratch slot (iapo_kv_forward_rows_split): the whole slot nearest the
 * middle; 0 when the chunk lies in one slot. */
static int split_at(const iapo_info *e, int c)
{
	int j = (c / 2 + e->pslot / 2) / e->pslot * e->pslot;
	if (j >= c) j -= e->pslot;
	return j > 0 ? j : 0;
}

/* One chunk of c positions (e->ob, e->ot): postfix rows, then N − 1 greedy
 * answer steps; E of each position is the sum of its steps' entropies. */
static iapo_status run_chunk(iapo_info *e, const iapo_info_batch *b, int c, float *E, int ld, long *rows)
{
	const int K = e->K;
	int R = 0;
	for (int j = 0; j < c; j++)
		for (int i = 0; i < K; i++) position_row(e, b, j, i, e->postfix[i], i == K - 1 ? j : -1, &e->rows[R++]);
	const int half = split_at(e, c);
	IAPO_TRY(iapo_kv_forward_rows_split(e->ckv, e->rows, R, half * K, e->logits));
	*rows += R;
	IAPO_TRY(entropies(e, c));
	for (int j = 0; j < c; j++) E[(size_t)e->ob[j] * ld + e->ot[j]] = e->ent[j];
	for (int s = 1; s < e->N; s++) {
		int bad = -1;
		iapo_pool_for(c, argmax_item, e);
		for (int j = 0; j < c; j++)
			if (e->cur[j] < 0) bad = j;
		if (bad >= 0)
			return iapo_fail(IAPO_ERR_NUMERIC,
					 "information estimator: sequence %d, position %d: no greedy answer token (NaN logits)",
					 e->ob[bad], e->ot[bad]);
		for (int j = 0; j < c; j++) position_row(e, b, j, K + s - 1, e->cur[j], j, &e->rows[j]);
		IAPO_TRY(iapo_kv_forward_rows_split(e->ckv, e->rows, c, half, e->logits));
		*rows += c;
		IAPO_TRY(entropies(e, c));
		for (int j = 0; j < c; j++) E[(size_t)e->ob[j] * ld + e->ot[j]] += e->ent[j];
	}
	return IAPO_OK;
}

/* Whether E_t of sequence i is estimated (not interpolated). */
static int selected(const iapo_info *e, const iapo_info_batch *b, int i, int t)
{
	if (t == 0 || t == b->clen[i]) return 1;
	if (e->n_at > 0) return bsearch(&b->comps[i][t - 1], e->at, (size_t)e->n_at, sizeof(int), cmp_int) != NULL;
	return t % e->stride == 0;
}

/* Linear interpolation of E between the estimated positions of each sequence. */
static void interpolate(const iapo_info *e, const iapo_info_batch *b, float *E, int ld)
{
	for (int i = 0; i < b->n; i++) {
		float *Ei = E + (size_t)i * ld;
		int a = 0;
		for (int t = 1; t <= b->clen[i]; t++) {
			if (!selected(e, b, i, t)) continue;
			for (int u = a + 1; u < t; u++)
				Ei[u] = (float)((double)Ei[a] + ((double)Ei[t] - (double)Ei[a]) * (u - a) / (double)(t - a));
			a = t;
		}
	}
}

/* The postfix pass over every (selected) position of the batch, e->cap
 * positions per chunk, through e->ckv; then the interpolation of a thinned
 * pass. */
/* The longest completion prefix sequence i shares with an earlier sequence
 * of the batch that has the same prompt (the G samples of a group): E_t for
 * t <= that length is a function of the same tokens (prompt + o_<t +
 * postfix), so it is copied rather than computed. Returns the length, -1
 * when no earlier sequence has i's prompt; *src = that sequence. */
static int shared_prefix(const iapo_info_batch *b, int i, int *src)
{
	int best = -1;
	*src = -1;
	const int P = b->plen[i], L = b->clen[i];
	for (int j = 0; j < i; j++) {
		if (b->plen[j] != P) continue;
		if (b->prompts[j] != b->prompts[i] && memcmp(b->prompts[j], b->prompts[i], sizeof(int) * (size_t)P)) continue;
		const int m = L < b->clen[j] ? L : b->clen[j];
		int k = 0;
		while (k < m && b->comps[i][k] == b->comps[j][k]) k++;
		if (k > best) {
			best = k;
			*src = j;
		}
	}
	return best;
}

/* The postfix pass over every (selected, not shared) position of the batch,
 * e->cap positions per chunk, through e->ckv; then the shared positions'
 * copies, and the interpolation of a thinned pass. */
static iapo_status postfix_pass(iapo_info *e, const iapo_info_batch *b, float *E, int ld, iapo_info_stats *s)
{
	const int thin = e->stride > 1 || e->n_at > 0;
	int c = 0, src;
	for (int i = 0; i < b->n; i++) {
		const int sh = shared_prefix(b, i, &src);
		for (int t = sh + 1; t <= b->clen[i]; t++) {
			if (thin && !selected(e, b, i, t)) continue;
			s->positions++;
			e->ob[c] = i;
			e->ot[c] = t;
			if (++c == e->cap) {
				IAPO_TRY(run_chunk(e, b, c, E, ld, &s->rows_pass));
				c = 0;
			}
		}
	}
	if (c > 0) IAPO_TRY(run_chunk(e, b, c, E, ld, &s->rows_pass));
	/* in order: a source (earlier) is complete before its copies */
	for (int i = 0; i < b->n; i++) {
		const int sh = shared_prefix(b, i, &src);
		for (int t = 0; t <= sh; t++) {
			if (thin && !selected(e, b, i, t)) continue;
			E[(size_t)i * ld + t] = E[(size_t)src * ld + t];
			s->shared++;
		}
	}
	if (thin) interpolate(e, b, E, ld);
	return IAPO_OK;
}

/* bf16 on (a fresh snapshot: the weights may have changed since the last
 * call, or IAPO_KV_BF16_KEEP) or off for the cache of this call. */
static iapo_status set_bf16(iapo_info *e, int on)
{
	if (!e->bf16) return IAPO_OK;
	iapo_status st = iapo_kv_use_bf16(e->ckv, on);
	return st == IAPO_OK ? st : iapo_fail_prefix(st, "information estimator: bf16 weights");
}

/* bf16 attention on (converting the K/V that the n slots hold) or off for
 * the cache of this call; off again at the end of every call, so the
 * cache's other users (decoding) attend in fp32. */
static iapo_status set_attn(iapo_info *e, int on, const int *slots, int n)
{
	if (!e->attn16) return IAPO_OK;
	iapo_status st = iapo_kv_attn_bf16(e->ckv, on, slots, n);
	return st == IAPO_OK ? st : iapo_fail_prefix(st, "information estimator: bf16 attention");
}

/* Weight panels packed for this call (after the precision is set: the
 * packs are of the weights as they are now, taken at every call, so never
 * stale), or their use ended (the cache's other users pack per call). */
static iapo_status set_pack(iapo_info *e, int on)
{
	if (!on && e->opened) {
		e->opened = 0;
		return iapo_kv_pack_weights(e->ckv, 0, NULL);
	}
	if (!e->pack) return IAPO_OK;
	iapo_status st = iapo_kv_pack_weights(e->ckv, on, NULL);
	return st == IAPO_OK ? st : iapo_fail_prefix(st, "information estimator: weight packs");
}

/* The bf16 pass over a bf16 rollout's cache reads the packs its decoding
 * made (generate's default), when they are of the snapshot this call
 * multiplies by: the same panels this call's products would pack, so the
 * same bits, without packing every chunk's B again. */
static void reopen_packs(iapo_info *e)
{
	e->opened = e->bf16 && !e->pack && iapo_kv_pack_reopen(e->ckv);
}

iapo_status iapo_info_compute(iapo_info *e, const iapo_info_batch *b, float *E, float *C, int ld,
			      iapo_info_stats *stats)
{
	IAPO_TRY(check_batch(e->w, b, e->Bmax, e->Tmax, ld));
	if (!E) return iapo_fail(IAPO_ERR_ARG, "information estimator: E: expected an output array, found NULL");
	iapo_info_stats s;
	memset(&s, 0, sizeof s);
	const int next = e->predict == IAPO_PREDICT_NEXT_TOKEN;
	if (!e->kv) IAPO_TRY(iapo_kv_new(e->w, e->kv_slots, e->kv_tmax, &e->kv));
	e->ckv = e->kv;
	e->smap = NULL;
	e->S0 = e->Bmax;
	e->pslot = e->per_slot;
	e->cap = e->chunk;
	double t0 = omp_get_wtime();
	iapo_status st = set_bf16(e, 1);
	if (st == IAPO_OK) st = set_attn(e, 1, NULL, 0); /* the prefill writes every key it reads */
	if (st == IAPO_OK) st = set_pack(e, 1);
	if (st == IAPO_OK) st = seq_rows(e, b, ROWS_ALL, next ? E : C, ld, &s.rows_prefill);
	if (st == IAPO_OK && next && C)
		for (int i = 0; i < b->n; i++)
			memcpy(C + (size_t)i * ld, E + (size_t)i * ld, sizeof(float) * (size_t)(b->clen[i] + 1));
	double t1 = omp_get_wtime();
	if (st == IAPO_OK && !next) st = postfix_pass(e, b, E, ld, &s);
	else
		for (int i = 0; i < b->n; i++) s.positions += b->clen[i] + 1;
	set_pack(e, 0);
	set_attn(e, 0, NULL, 0);
	s.seconds_prefill = t1 - t0;
	s.seconds_pass = omp_get_wtime() - t1;
	if (stats) *stats = s;
	return st;
}

int iapo_info_scratch_slots(int Tmax)
{
	if (Tmax < 1) return 1;
	return (IAPO_INFO_SCRATCH_ENTRIES + Tmax - 1) / Tmax + 1;
}

static iapo_status check_cache(const iapo_info *e, const iapo_info_cache *c, const iapo_info_batch *b)
{
	if (!c || !c->kv || (b->n > 0 && !c->slot))
		return iapo_fail(IAPO_ERR_ARG, "information estimator: cache: expected a cache and the slot of every sequence");
	const int S = iapo_kv_slots(c->kv), Tm = iapo_kv_tmax(c->kv);
	const int answer = e->predict == IAPO_PREDICT_ANSWER;
	if (answer && (c->nscratch < 1 || c->scratch0 < 0 || c->scratch0 + c->nscratch > S || Tm < e->W))
		return iapo_fail(IAPO_ERR_ARG,
				 "information estimator: cache: expected scratch slots within its %d slots of %d positions "
				 "(>= %d), found %d from slot %d",
				 S, Tm, e->W, c->nscratch, c->scratch0);
	for (int i = 0; i < b->n; i++) {
		const int slot = c->slot[i], have = b->plen[i] + b->clen[i] - 1;
		if (slot < 0 || slot >= S || (answer && slot >= c->scratch0 && slot < c->scratch0 + c->nscratch))
			return iapo_fail(IAPO_ERR_ARG,
					 "information estimator: cache: sequence %d: expected a slot outside the scratch "
					 "slots, found %d",
					 i, slot);
		if (iapo_kv_len(c->kv, slot) < have)
			return iapo_fail(IAPO_ERR_ARG,
					 "information estimator: cache: sequence %d: slot %d holds %d positions, expected "
					 ">= %d",
					 i, slot, iapo_kv_len(c->kv, slot), have);
		if (c->C && b->clen[i] > 0 && !c->C[i])
			return iapo_fail(IAPO_ERR_ARG, "information estimator: cache: sequence %d: no policy entropies", i);
	}
	return IAPO_OK;
}

iapo_status iapo_info_compute_cached(iapo_info *e, const iapo_info_cache *c, const iapo_info_batch *b, float *E,
				     float *C, int ld, iapo_info_stats *stats)
{
	IAPO_TRY(check_batch(e->w, b, INT_MAX, c && c->kv ? iapo_kv_tmax(c->kv) : 0, ld));
	if (!E) return iapo_fail(IAPO_ERR_ARG, "information estimator: E: expected an output array, found NULL");
	IAPO_TRY(check_cache(e, c, b));
	iapo_info_stats s;
	memset(&s, 0, sizeof s);
	const int next = e->predict == IAPO_PREDICT_NEXT_TOKEN;
	e->ckv = c->kv;
	e->smap = c->slot;
	e->S0 = c->scratch0;
	e->pslot = next ? 1 : iapo_kv_tmax(c->kv) / e->W;
	e->cap = next ? e->chunk : (e->chunk < c->nscratch * e->pslot ? e->chunk : c->nscratch * e->pslot);
	if (!next) e->pslot = halves_pslot(e, e->pslot, c->nscratch);
	/* C_t (t < L) from the rollout when it gave them, else recomputed */
	float *dst = next ? E : C;
	const int all_c = dst && !c->C;
	double t0 = omp_get_wtime();
	const int was16 = iapo_kv_bf16(c->kv);
	/* The caller vouches that the slots hold K/V of the weights as they are
	 * now; when the cache's bf16 copy computed all of them (a bf16 rollout),
	 * that copy is the current weights': no second conversion. */
	iapo_status st = set_bf16(e, iapo_kv_bf16_made(c->kv, c->slot, b->n) ? IAPO_KV_BF16_KEEP : 1);
	if (st == IAPO_OK) st = set_attn(e, 1, c->slot, b->n);
	if (st == IAPO_OK) st = set_pack(e, 1);
	if (st == IAPO_OK) reopen_packs(e);
	if (st == IAPO_OK) st = seq_rows(e, b, all_c ? ROWS_TAIL : ROWS_LAST, dst, ld, &s.rows_prefill);
	if (st == IAPO_OK && dst && !all_c)
		for (int i = 0; i < b->n; i++)
			if (b->clen[i] > 0) memcpy(dst + (size_t)i * ld, c->C[i], sizeof(float) * (size_t)b->clen[i]);
	if (st == IAPO_OK && next && C)
		for (int i = 0; i < b->n; i++)
			memcpy(C + (size_t)i * ld, E + (size_t)i * ld, sizeof(float) * (size_t)(b->clen[i] + 1));
	double t1 = omp_get_wtime();
	if (st == IAPO_OK && !next) st = postfix_pass(e, b, E, ld, &s);
	else
		for (int i = 0; i < b->n; i++) s.positions += b->clen[i] + 1;
	set_pack(e, 0);
	set_attn(e, 0, NULL, 0);
	iapo_status off = was16 ? IAPO_OK : set_bf16(e, 0); /* the cache back in its precision */
	if (st == IAPO_OK) st = off;
	s.seconds_prefill = t1 - t0;
	s.seconds_pass = omp_get_wtime() - t1;
	if (stats) *stats = s;
	return st;
}

/* ---------------------------------------------------------------- oracle */

typedef struct {
	iapo_fwd *f;
	int B, T, V;
	int *tok, *len, *tgt; /* (B,T), (B), (B,T) */
	float *ent, *logits;  /* (B,T), (B,T,V) or NULL */
} naive_ctx;

static iapo_status naive_forward(naive_ctx *x, int rows)
{
	return iapo_fwd_forward(x->f, x->tok, x->len, x->tgt, rows, x->T, NULL, x->ent, x->logits);
}

/* E for up to B positions (ob, ot) at once: prefix + postfix, then N − 1
 * greedy tokens, each step a full forward of every row. */
static iapo_status naive_positions(naive_ctx *x, const iapo_info_opts *o, const iapo_info_batch *b, const int *ob,
				   const int *ot, int rows, float *E, int ld)
{
	const int K = o->n_postfix;
	for (int r = 0; r < rows; r++) {
		int i = ob[r], t = ot[r], P = b->plen[i], *row = x->tok + (size_t)r * x->T;
		memcpy(row, b->prompts[i], sizeof(int) * (size_t)P);
		if (t > 0) memcpy(row + P, b->comps[i], sizeof(int) * (size_t)t);
		memcpy(row + P + t, o->postfix, sizeof(int) * (size_t)K);
		x->len[r] = P + t + K;
		E[(size_t)i * ld + t] = 0;
	}
	for (int s = 0; s < o->answer_tokens; s++) {
		IAPO_TRY(naive_forward(x, rows));
		for (int r = 0; r < rows; r++) {
			size_t last = (size_t)r * x->T + (size_t)x->len[r] - 1;
			E[(size_t)ob[r] * ld + ot[r]] += x->ent[last];
			if (s + 1 < o->answer_tokens) {
				int a = iapo_sample_argmax(x->logits + last * x->V, x->V);
				if (a < 0)
					return iapo_fail(IAPO_ERR_NUMERIC, "information oracle: sequence %d, position %d: NaN logits",
							 ob[r], ot[r]);
				x->tok[last + 1] = a;
				x->len[r]++;
			}
		}
	}
	return IAPO_OK;
}

iapo_status iapo_info_naive(const iapo_weights *w, const iapo_info_opts *o, const iapo_info_batch *b, float *E,
			    float *C, int ld)
{
	IAPO_TRY(check_opts(w, o));
	int Tfull = 1;
	if (b)
		for (int i = 0; i < b->n; i++)
			if (b->plen[i] + b->clen[i] > Tfull) Tfull = b->plen[i] + b->clen[i];
	IAPO_TRY(check_batch(w, b, b ? b->n : 0, Tfull, ld));
	if (!E) return iapo_fail(IAPO_ERR_ARG, "information oracle: E: expected an output array, found NULL");
	const int answer = o->predict == IAPO_PREDICT_ANSWER;
	naive_ctx x;
	memset(&x, 0, sizeof x);
	x.B = NAIVE_BATCH;
	x.T = Tfull + (answer ? o->n_postfix + o->answer_tokens - 1 : 0);
	x.V = w->cfg.V;
	const size_t BT = (size_t)x.B * x.T;
	iapo_status st = IAPO_OK;
	int ob[NAIVE_BATCH], ot[NAIVE_BATCH];
	IAPO_CHECK(st, iapo_fwd_new(w, x.B, x.T, 0, &x.f));
	iapo_fwd_set_temperature(x.f, o->temperature);
	IAPO_CHECK(st, iapo_alloc_or_fail((void **)&x.tok, sizeof(int) * BT, "oracle tokens"));
	IAPO_CHECK(st, iapo_alloc_or_fail((void **)&x.tgt, sizeof(int) * BT, "oracle targets"));
	IAPO_CHECK(st, iapo_alloc_or_fail((void **)&x.len, sizeof(int) * (size_t)x.B, "oracle lengths"));
	IAPO_CHECK(st, iapo_alloc_or_fail((void **)&x.ent, sizeof(float) * BT, "oracle entropies"));
	if (answer && o->answer_tokens > 1)
		IAPO_CHECK(st, iapo_alloc_or_fail((void **)&x.logits, sizeof(float) * BT * (size_t)x.V, "oracle logits"));
	for (size_t k = 0; k < BT; k++) x.tgt[k] = -1;

	/* C (and next_token's E): whole sequences, entropy of rows P−1 .. P+L−1 */
	for (int i0 = 0; i0 < b->n; i0 += x.B) {
		int rows = b->n - i0 < x.B ? b->n - i0 : x.B;
		for (int r = 0; r < rows; r++) {
			int i = i0 + r, P = b->plen[i], L = b->clen[i];
			memcpy(x.tok + (size_t)r * x.T, b->prompts[i], sizeof(int) * (size_t)P);
			if (L > 0) memcpy(x.tok + (size_t)r * x.T + P, b->comps[i], sizeof(int) * (size_t)L);
			x.len[r] = P + L;
		}
		IAPO_CHECK(st, naive_forward(&x, rows));
		for (int r = 0; r < rows; r++) {
			int i = i0 + r, P = b->plen[i], L = b->clen[i];
			for (int t = 0; t <= L; t++) {
				float h = x.ent[(size_t)r * x.T + P - 1 + t];
				if (C) C[(size_t)i * ld + t] = h;
				if (!answer) E[(size_t)i * ld + t] = h;
			}
		}
	}
	if (answer) {
		int rows = 0;
		for (int i = 0; i < b->n; i++)
			for (int t = 0; t <= b->clen[i]; t++) {
				ob[rows] = i;
				ot[rows] = t;
				if (++rows == x.B) {
					IAPO_CHECK(st, naive_positions(&x, o, b, ob, ot, rows, E, ld));
					rows = 0;
				}
			}
		if (rows > 0) IAPO_CHECK(st, naive_positions(&x, o, b, ob, ot, rows, E, ld));
	}
fail:
	iapo_fwd_free(x.f);
	iapo_free(x.tok);
	iapo_free(x.tgt);
	iapo_free(x.len);
	iapo_free(x.ent);
	iapo_free(x.logits);
	return st;
}
