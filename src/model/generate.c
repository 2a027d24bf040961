/*
 * generate.c — the generation loop (see generate.h): prefill every prompt in
 * one ragged pass, then alternate "sample one token per live sequence" and
 * "one batched decode step for the live ones".
 *
 * Text is built token by token: the tokenizer decodes to raw bytes (no
 * U+FFFD replacement), so the concatenation of single-token decodes equals
 * decoding the whole completion, and a stop string is searched for only in
 * the window the new token can have completed. The text length after each
 * token is kept so that a stop string can also cut the tokens.
 */
#include "model/generate.h"

#include <math.h>
#include <omp.h>
#include <string.h>
#include <time.h>

#include "core/mem.h"
#include "core/status.h"
#include "kernels/kernels.h"
#include "kernels/pool.h"

const char *iapo_finish_str(iapo_finish f)
{
	switch (f) {
	case IAPO_FINISH_LENGTH: return "length";
	case IAPO_FINISH_EOS: return "eos";
	case IAPO_FINISH_STOP: return "stop";
	}
	return "?";
}

void iapo_gen_results_free(iapo_gen_result *res, int B)
{
	if (!res) return;
	for (int b = 0; b < B; b++) {
		iapo_free(res[b].tokens);
		iapo_free(res[b].text);
		iapo_free(res[b].entropy);
		memset(&res[b], 0, sizeof res[b]);
		res[b].stop_index = -1;
	}
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Per-sequence state beside its result. */
typedef struct {
	iapo_rng rng;
	size_t *offs;     /* (max_new + 1) text length after k tokens */
	size_t text_cap;
	int live;
} seq_state;

static iapo_status append_text(iapo_gen_result *r, seq_state *s, const char *bytes, size_t n)
{
	if (r->text_len + n + 1 > s->text_cap) {
		size_t cap = s->text_cap ? s->text_cap : 64;
		while (cap < r->text_len + n + 1) cap *= 2;
		char *t = iapo_realloc(r->text, cap);
		if (!t) return iapo_fail(IAPO_ERR_NOMEM, "generate: out of memory: completion text (%zu bytes)", cap);
		r->text = t;
		s->text_cap = cap;
	}
	memcpy(r->text + r->text_len, bytes, n);
	r->text_len += n;
	r->text[r->text_len] = 0;
	return IAPO_OK;
}

/* Earliest stop string the last `added` bytes can have completed: its offset
 * and index, or -1. */
static long find_stop(const iapo_gen_result *r, size_t added, const iapo_gen_opts *o, int *which)
{
	long best = -1;
	for (int i = 0; i < o->n_stop; i++) {
		size_t sl = strlen(o->stop[i]);
		if (sl > r->text_len) continue;
		size_t from = r->text_len - added;
		from = from + 1 > sl ? from + 1 - sl : 0;
		const char *hit = memmem(r->text + from, r->text_len - from, o->stop[i], sl);
		if (hit && (best < 0 || hit - r->text < best)) {
			best = hit - r->text;
			*which = i;
		}
	}
	return best;
}

static iapo_status check_opts(const iapo_weights *w, const int *const *prompts, const int *lens, int B,
			      const iapo_gen_opts *o)
{
	if (B <= 0) return iapo_fail(IAPO_ERR_ARG, "generate: prompts: expected at least one, found %d", B);
	if (o->max_new_tokens < 0)
		return iapo_fail(IAPO_ERR_ARG, "generate: max_new_tokens: expected >= 0, found %d", o->max_new_tokens);
	if (o->n_stop > 0 && !o->tok)
		return iapo_fail(IAPO_ERR_ARG, "generate: stop strings: expected a tokenizer to decode with, found none");
	for (int i = 0; i < o->n_stop; i++)
		if (!o->stop[i] || !o->stop[i][0])
			return iapo_fail(IAPO_ERR_ARG, "generate: stop string %d: expected a non-empty string", i);
	if (!(o->entropy_temperature >= 0) || !isfinite(o->entropy_temperature))
		return iapo_fail(IAPO_ERR_ARG, "generate: entropy temperature: expected >= 0, found %g",
				 (double)o->entropy_temperature);
	if (o->weights < IAPO_GEN_WEIGHTS_AUTO || o->weights > IAPO_GEN_WEIGHTS_BF16)
		return iapo_fail(IAPO_ERR_ARG, "generate: weights: expected 0 (auto), 1 (fp32) or 2 (bf16), found %d",
				 o->weights);
	if (o->pack < IAPO_GEN_PACK_AUTO || o->pack > IAPO_GEN_PACK_ON)
		return iapo_fail(IAPO_ERR_ARG, "generate: pack: expected 0 (auto), 1 (off) or 2 (on), found %d", o->pack);
	if (o->slots)
		for (int b = 0; b < B; b++)
			for (int c = 0; c < b; c++)
				if (o->slots[c] == o->slots[b])
					return iapo_fail(IAPO_ERR_ARG, "generate: slots: expected distinct slots, found %d twice",
							 o->slots[b]);
	if (o->n_eos < 0 || (o->n_eos > 0 && !o->eos_ids))
		return iapo_fail(IAPO_ERR_ARG, "generate: eos ids: expected a list, found %d ids", o->n_eos);
	for (int b = 0; b < B; b++) {
		if (lens[b] < 1 || !prompts[b])
			return iapo_fail(IAPO_ERR_ARG, "generate: prompt %d: expected at least one token, found %d", b,
					 lens[b]);
		for (int j = 0; j < lens[b]; j++)
			if (prompts[b][j] < 0 || prompts[b][j] >= w->cfg.V)
				return iapo_fail(IAPO_ERR_ARG,
						 "generate: prompt %d, token %d: expected an id in [0, %d), found %d", b, j,
						 w->cfg.V, prompts[b][j]);
	}
	return IAPO_OK;
}

/* The cache slot of sequence b. */
#define SLOT(b) (o->slots ? o->slots[b] : (b))

/* One step's sampling, one sequence an item on the kernels' pool (not an
 * OpenMP region: its threads would fight the pool's spinning worker for the
 * second CPU at every token; KERN measured the 2-thread rollout's CPU
 * halve). Each sequence draws from its own stream, so the tokens do not
 * depend on which thread samples them. */
typedef struct {
	seq_state *ss;
	int *sampled;
	const float *logits;
	float *scratch;
	const iapo_gen_opts *o;
	int V, greedy;
} samp_job;

static void samp_item(void *ctx, long i, int worker)
{
	const samp_job *J = ctx;
	const int b = (int)i;
	const iapo_gen_opts *o = J->o;
	if (!J->ss[b].live) return;
	float *scr = J->greedy ? NULL : J->scratch + IAPO_SAMPLE_SCRATCH(J->V) * (size_t)worker;
	J->sampled[b] = iapo_sample(J->logits + (size_t)SLOT(b) * J->V, J->V, &o->sampler, &J->ss[b].rng, scr);
}

iapo_status iapo_generate(const iapo_weights *w, const int *const *prompts, const int *prompt_lens, int B,
			  const iapo_gen_opts *o, iapo_kv *kv, iapo_gen_result *res, iapo_gen_stats *stats)
{
	IAPO_TRY(check_opts(w, prompts, prompt_lens, B, o));
	const int V = w->cfg.V, max_new = o->max_new_tokens;
	const int *eos = o->n_eos > 0 ? o->eos_ids : w->cfg.eos_ids;
	const int n_eos = o->n_eos > 0 ? o->n_eos : w->cfg.n_eos;
	const int greedy = o->sampler.temperature <= 0;
	int maxP = 0;
	long prompt_tokens = 0;
	for (int b = 0; b < B; b++) {
		if (prompt_lens[b] > maxP) maxP = prompt_lens[b];
		prompt_tokens += prompt_lens[b];
	}
	/* The last sampled token is never fed back, hence the - 1. */
	const int need = maxP + (max_new > 0 ? max_new - 1 : 0);
	iapo_kv *own = NULL;
	if (o->slots && !kv)
		return iapo_fail(IAPO_ERR_ARG, "generate: slots: expected a caller's cache to put them in, found none");
	if (o->slots)
		for (int b = 0; b < B; b++)
			if (o->slots[b] < 0 || o->slots[b] >= iapo_kv_slots(kv))
				return iapo_fail(IAPO_ERR_ARG, "generate: slot of sequence %d: expected one in [0, %d), found %d",
						 b, iapo_kv_slots(kv), o->slots[b]);
	if (kv && (iapo_kv_slots(kv) < B || iapo_kv_tmax(kv) < need))
		return iapo_fail(IAPO_ERR_ARG,
				 "generate: kv cache: expected >= %d slots of >= %d positions, found %d of %d", B, need,
				 iapo_kv_slots(kv), iapo_kv_tmax(kv));

	iapo_status st = IAPO_OK;
	const int nthr = omp_get_max_threads() > iapo_pool_threads() ? omp_get_max_threads() : iapo_pool_threads();
	int S = 0;
	seq_state *ss = NULL;
	int *n = NULL, *sampled = NULL;
	const int **tokp = NULL;
	float *logits = NULL, *scratch = NULL, *ent = NULL;
	const int want_ent = o->entropy_temperature > 0;
	char *dec = NULL;
	size_t dec_len = 0, dec_cap = 0;
	iapo_kv *kv_set = NULL; /* the cache whose precision was set, restored at the end */
	int kv_was16 = 0, packed = 0;
	for (int b = 0; b < B; b++) {
		memset(&res[b], 0, sizeof res[b]);
		res[b].stop_index = -1;
	}
	if (stats) memset(stats, 0, sizeof *stats);
	if (!kv && max_new > 0) {
		IAPO_CHECK(st, iapo_kv_new(w, B, need, &own));
		kv = own;
	}
	/* bf16 weights unless the caller asked for fp32 or for entropies; a
	 * copy that cannot be allocated leaves fp32, which is never wrong */
	const int use16 = o->weights == IAPO_GEN_WEIGHTS_BF16 || (o->weights == IAPO_GEN_WEIGHTS_AUTO && !want_ent);
	if (kv && max_new > 0) {
		kv_was16 = iapo_kv_bf16(kv);
		const int take = kv != own && o->keep_bf16 ? IAPO_KV_BF16_KEEP : 1;
		if (!use16 || iapo_kv_use_bf16(kv, take) != IAPO_OK) iapo_kv_use_bf16(kv, 0);
		kv_set = kv;
	}
	S = kv ? iapo_kv_slots(kv) : B;
	ss = iapo_calloc((size_t)B, sizeof *ss);
	n = iapo_calloc((size_t)S, sizeof *n);
	sampled = iapo_calloc((size_t)B, sizeof *sampled);
	tokp = iapo_calloc((size_t)S, sizeof *tokp);
	if (!ss || !n || !sampled || !tokp) goto nomem;
	for (int b = 0; b < B; b++) {
		res[b].tokens = iapo_malloc(sizeof(int) * (size_t)(max_new > 0 ? max_new : 1));
		ss[b].offs = iapo_calloc((size_t)max_new + 1, sizeof(size_t));
		if (!res[b].tokens || !ss[b].offs) goto nomem;
		if (want_ent && !(res[b].entropy = iapo_malloc(sizeof(float) * (size_t)(max_new > 0 ? max_new : 1))))
			goto nomem;
		if (o->tok) IAPO_CHECK(st, append_text(&res[b], &ss[b], "", 0));
		iapo_rng_seed(&ss[b].rng, o->seed, o->keys ? o->keys[b] : (uint64_t)b, 0, 0);
		ss[b].live = max_new > 0;
	}
	if (stats) stats->prompt_tokens = prompt_tokens;
	if (max_new == 0) goto done;
	logits = iapo_alloc_aligned(sizeof(float) * (size_t)S * V);
	if (!greedy) scratch = iapo_alloc_aligned(sizeof(float) * IAPO_SAMPLE_SCRATCH(V) * (size_t)nthr);
	if (want_ent) ent = iapo_malloc(sizeof(float) * (size_t)S);
	if (!logits || (!greedy && !scratch) || (want_ent && !ent)) goto nomem;

	/* The panels after every other allocation (a failure to allocate
	 * them leaves the rows) and after the precision is set: they are
	 * packed from the weights this call multiplies by. AUTO: only into a
	 * caller's cache, which keeps their memory for its next calls; an own
	 * cache would pay their first touch at every call (qwen0.5b: 5 s, more
	 * than 128 steps of 8 rows save). */
	const double tp = now();
	int kept = 0;
	if (o->pack == IAPO_GEN_PACK_ON || (o->pack == IAPO_GEN_PACK_AUTO && kv != own && max_new >= 2)) {
		packed = kept = kv != own && o->keep_packs && iapo_kv_pack_keep(kv, 2);
		if (!packed) packed = iapo_kv_pack_weights(kv, 2, NULL) == IAPO_OK;
	}
	double t0 = now();
	if (stats) {
		stats->packed = packed;
		stats->packs_kept = kept;
		stats->pack_seconds = t0 - tp;
	}
	/* rows of logits and entropies are slots; slots outside the map keep
	 * their K/V, take no tokens and give finite zero logits */
	memset(logits, 0, sizeof(float) * (size_t)S * V);
	for (int b = 0; b < S; b++) {
		if (!o->slots) iapo_kv_reset(kv, b);
		n[b] = 0;
		tokp[b] = NULL;
	}
	for (int b = 0; b < B; b++) {
		iapo_kv_reset(kv, SLOT(b));
		n[SLOT(b)] = prompt_lens[b];
		tokp[SLOT(b)] = prompts[b];
	}
	IAPO_CHECK(st, iapo_kv_forward(kv, tokp, n, logits));
	double t1 = now();
	if (stats) stats->prefill_seconds = t1 - t0;

	for (;;) {
		/* Rows of finished sequences hold old, finite logits: harmless. */
		if (want_ent)
			iapo_logprob_entropy_forward(NULL, ent, logits, NULL, o->slots ? S : B, V, o->entropy_temperature);
		/* Sample every live sequence (each from its own stream). */
		samp_job sj = {ss, sampled, logits, scratch, o, V, greedy};
		iapo_pool_for(B, samp_item, &sj);
		int live = 0;
		for (int b = 0; b < B; b++) {
			n[SLOT(b)] = 0;
			if (!ss[b].live) continue;
			iapo_gen_result *r = &res[b];
			int t = sampled[b];
			if (t < 0) {
				st = iapo_fail(IAPO_ERR_NUMERIC,
					       "generate: sequence %d, token %d: logits hold NaN or no finite value", b,
					       r->n_tokens);
				goto fail;
			}
			if (want_ent) r->entropy[r->n_tokens] = ent[SLOT(b)];
			r->tokens[r->n_tokens++] = t;
			if (stats) stats->generated_tokens++;
			int is_eos = 0;
			for (int e = 0; e < n_eos; e++) is_eos |= t == eos[e];
			if (is_eos) {
				r->finish = IAPO_FINISH_EOS;
				r->n_text_tokens = r->n_tokens - 1;
				ss[b].live = 0;
				continue;
			}
			if (o->tok) {
				IAPO_CHECK(st, iapo_tokenizer_decode(o->tok, &t, 1, 1, &dec, &dec_len, &dec_cap));
				IAPO_CHECK(st, append_text(r, &ss[b], dec, dec_len));
				ss[b].offs[r->n_tokens] = r->text_len;
				int which = -1;
				long at = o->n_stop > 0 ? find_stop(r, dec_len, o, &which) : -1;
				if (at >= 0) {
					r->finish = IAPO_FINISH_STOP;
					r->stop_index = which;
					r->text_len = (size_t)at;
					r->text[at] = 0;
					int k = r->n_tokens;
					while (k > 0 && ss[b].offs[k] > (size_t)at) k--;
					r->n_text_tokens = k;
					ss[b].live = 0;
					continue;
				}
			}
			r->n_text_tokens = r->n_tokens;
			if (r->n_tokens == max_new) {
				r->finish = IAPO_FINISH_LENGTH;
				ss[b].live = 0;
				continue;
			}
			n[SLOT(b)] = 1;
			tokp[SLOT(b)] = &r->tokens[r->n_tokens - 1];
			live++;
		}
		if (!live) break;
		IAPO_CHECK(st, iapo_kv_forward(kv, tokp, n, logits));
		if (stats) stats->steps++;
	}
	if (stats) stats->decode_seconds = now() - t1;
	goto done;

nomem:
	st = iapo_fail(IAPO_ERR_NOMEM, "generate: out of memory");
fail:
	iapo_gen_results_free(res, B);
done:
	if (ss)
		for (int b = 0; b < B; b++) iapo_free(ss[b].offs);
	iapo_free(ss);
	iapo_free(n);
	iapo_free(sampled);
	iapo_free(tokp);
	iapo_free_aligned(logits);
	iapo_free_aligned(scratch);
	iapo_free(ent);
	iapo_free(dec);
	/* the caller's cache with no packs in use: its other users' few-row
	 * products read the rows (their memory stays for the next call) */
	if (packed && kv != own) iapo_kv_pack_weights(kv, 0, NULL);
	/* the caller's cache back in its precision (its snapshot is fresh) */
	if (kv_set && kv_set != own && iapo_kv_bf16(kv_set) != kv_was16) {
		iapo_status s2 = iapo_kv_use_bf16(kv_set, kv_was16 && o->keep_bf16 ? IAPO_KV_BF16_KEEP : kv_was16);
		if (st == IAPO_OK) st = s2;
	}
	iapo_kv_free(own);
	return st;
}
