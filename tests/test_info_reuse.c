/*
 * test_info_reuse.c — the information pass over a cache that decoding left
 * behind (rl/info.h's iapo_info_compute_cached, the rollout-cache reuse):
 * tiny random Qwen2, Llama and Qwen3 models sample ragged completions with
 * iapo_generate (its per-token sampling entropies on); the pass over that
 * very cache (sequences in another order than their slots, so the slot map
 * is exercised) gives the E and C of the estimator's own prefill path
 * (which test_info.c ties to the naive oracle) within REUSE_TOL relative:
 * the K/V and logits of decoding come from other GEMM shapes, so they agree
 * to float rounding, not bit for bit. Also: chunk sizes 1, 5, automatic;
 * two answer tokens; next_token mode; a thinned pass (stride 3); one scratch
 * slot only (smaller chunks); C recomputed when the rollout gave none; the
 * sampling entropies of generate equal the full forward's entropies; no
 * allocation inside a call; argument errors (a sequence slot among the
 * scratch slots, a slot that holds too few positions, no scratch); generate
 * with a slot map (two sequences resampled into their own slots, the rest
 * kept) and the pass over the mixed batch.
 * And the opt-in bf16 estimator (an approximation): E, C and the token
 * advantages against fp32 within BF16_*_TOL (C_t, t < L, stays the rollout's;
 * only C_L comes from a bf16 row), and the cache it borrowed is
 * returned to fp32 (the next fp32 call gives the same numbers as before).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "core/status.h"
#include "model/generate.h"
#include "model/kvcache.h"
#include "rl/iapo_adv.h"
#include "rl/info.h"
#include "test.h"
#include "test_decode_models.h"

#define REUSE_TOL 1e-5   /* relative to the largest entropy */
#define BF16_E_TOL 0.03  /* relative, E and C */
#define BF16_ADV_TOL 0.1 /* absolute, token advantages (defaults: unit-norm terms) */
#define NSEQ 4
#define NEW 14
#define LD (NEW + 1)

static const int PL[NSEQ] = {5, 2, 9, 3};
static const int ORDER[NSEQ] = {2, 0, 3, 1}; /* batch row k is generated sequence ORDER[k] */

typedef struct {
	iapo_weights w;
	iapo_kv *kv;
	int *prompt[NSEQ];
	iapo_gen_result res[NSEQ];
	int nscratch, Tmax;
	/* the batch in ORDER */
	const int *bp[NSEQ], *bc[NSEQ];
	int bpl[NSEQ], bcl[NSEQ], slot[NSEQ];
	const float *bent[NSEQ];
	iapo_info_batch b;
} rollout;

/* Samples NSEQ completions (temperature temp, eos on) into a cache with
 * scratch slots after the sequences. Returns 0 on success. */
static int rollout_fill(rollout *x, int kind, float temp)
{
	memset(x, 0, sizeof *x);
	if (tiny_weights(kind, 900 + kind, &x->w)) return -1;
	const int V = x->w.cfg.V;
	iapo_rng r;
	iapo_rng_seed(&r, 77 + kind, 1, 0, 0);
	int maxp = 0;
	for (int i = 0; i < NSEQ; i++) {
		x->prompt[i] = malloc(sizeof(int) * (size_t)PL[i]);
		for (int j = 0; j < PL[i]; j++) x->prompt[i][j] = (int)iapo_rng_below(&r, (uint64_t)V - 1);
		if (PL[i] > maxp) maxp = PL[i];
	}
	x->Tmax = maxp + NEW;
	x->nscratch = iapo_info_scratch_slots(x->Tmax);
	if (iapo_kv_new(&x->w, NSEQ + x->nscratch, x->Tmax, &x->kv) != IAPO_OK) return -1;
	iapo_gen_opts go;
	memset(&go, 0, sizeof go);
	go.max_new_tokens = NEW;
	go.sampler.temperature = temp;
	go.sampler.top_p = 1.0f;
	go.seed = 5 + kind;
	go.entropy_temperature = temp;
	if (iapo_generate(&x->w, (const int *const *)x->prompt, PL, NSEQ, &go, x->kv, x->res, NULL) != IAPO_OK)
		return -1;
	for (int k = 0; k < NSEQ; k++) {
		const int i = ORDER[k];
		x->bp[k] = x->prompt[i];
		x->bpl[k] = PL[i];
		x->bc[k] = x->res[i].tokens;
		x->bcl[k] = x->res[i].n_tokens;
		x->slot[k] = i;
		x->bent[k] = x->res[i].entropy;
	}
	x->b = (iapo_info_batch){.n = NSEQ, .prompts = x->bp, .plen = x->bpl, .comps = x->bc, .clen = x->bcl};
	return 0;
}

static void rollout_free(rollout *x)
{
	iapo_kv_free(x->kv);
	iapo_gen_results_free(x->res, NSEQ);
	for (int i = 0; i < NSEQ; i++) free(x->prompt[i]);
	iapo_free_aligned(x->w.block);
}

/* rollout_fill, or a failed check naming the model and nothing left to free. */
static int rollout_make(rollout *x, int kind, float temp)
{
	if (rollout_fill(x, kind, temp) == 0) return 0;
	CHECK(0, "%s: rollout: %s", tiny_names[kind], iapo_errmsg());
	rollout_free(x);
	return -1;
}

static iapo_info_cache cache_of(rollout *x, int with_c, int nscratch)
{
	iapo_info_cache c = {.kv = x->kv, .slot = x->slot, .C = with_c ? x->bent : NULL, .scratch0 = NSEQ,
			     .nscratch = nscratch};
	return c;
}

/* Largest |a − b| over valid entries, relative to max |b|. */
static double rel_err(const rollout *x, const float *a, const float *b)
{
	double num = 0, den = 1e-30;
	for (int k = 0; k < NSEQ; k++)
		for (int t = 0; t <= x->bcl[k]; t++) {
			double d = fabs((double)a[k * LD + t] - (double)b[k * LD + t]);
			if (d > num || d != d) num = d != d ? INFINITY : d;
			if (fabs((double)b[k * LD + t]) > den) den = fabs((double)b[k * LD + t]);
		}
	return num / den;
}

/* E and C by the estimator's own prefill path. */
static int reference(rollout *x, const iapo_info_opts *o, float *E, float *C)
{
	iapo_info *e;
	if (iapo_info_new(&x->w, NSEQ, x->Tmax, o, &e) != IAPO_OK) return -1;
	iapo_status st = iapo_info_compute(e, &x->b, E, C, LD, NULL);
	iapo_info_free(e);
	return st == IAPO_OK ? 0 : -1;
}

/* The cached pass with options o against the reference; returns the worst
 * relative error of E and C. */
static double compare(rollout *x, const iapo_info_opts *o, int with_c, int nscratch, const char *what)
{
	float E0[NSEQ * LD], C0[NSEQ * LD], E1[NSEQ * LD], C1[NSEQ * LD];
	for (int k = 0; k < NSEQ * LD; k++) E0[k] = C0[k] = E1[k] = C1[k] = NAN;
	if (reference(x, o, E0, C0)) {
		CHECK(0, "%s: reference: %s", what, iapo_errmsg());
		return INFINITY;
	}
	iapo_info *e;
	if (iapo_info_new(&x->w, NSEQ, x->Tmax, o, &e) != IAPO_OK) {
		CHECK(0, "%s: new: %s", what, iapo_errmsg());
		return INFINITY;
	}
	iapo_info_cache c = cache_of(x, with_c, nscratch);
	iapo_info_stats s;
	unsigned long a0 = iapo_mem_alloc_count();
	iapo_status st = iapo_info_compute_cached(e, &c, &x->b, E1, C1, LD, &s);
	unsigned long allocs = iapo_mem_alloc_count() - a0;
	iapo_info_free(e);
	CHECK(st == IAPO_OK, "%s: %s", what, iapo_errmsg());
	CHECK(allocs == 0, "%s: %lu allocations in a call", what, allocs);
	long top = 0;
	for (int k = 0; k < NSEQ; k++) top += with_c || o->predict == IAPO_PREDICT_NEXT_TOKEN ? 1 : x->bcl[k] + 1;
	if (with_c) CHECK(s.rows_prefill == NSEQ, "%s: %ld top-up rows, expected %d", what, s.rows_prefill, NSEQ);
	double eE = rel_err(x, E1, E0), eC = rel_err(x, C1, C0), worst = eE > eC ? eE : eC;
	CHECK(worst <= REUSE_TOL, "%s: cached vs recomputed: E rel err %.3g, C %.3g", what, eE, eC);
	(void)top;
	return worst;
}

/* The estimator's defaults with the 3-token postfix these tests use,
 * {V - 2, 7, 31}, written to post (which must outlive the options). */
static iapo_info_opts opts_post3(int post[3], int V)
{
	post[0] = V - 2, post[1] = 7, post[2] = 31;
	iapo_info_opts o = iapo_info_defaults();
	o.postfix = post;
	o.n_postfix = 3;
	return o;
}

static void reuse_for(int kind)
{
	rollout x;
	if (rollout_make(&x, kind, 1.0f)) return;
	int post3[3];
	double worst = 0, e;
	char what[128];
	const int chunks[] = {1, 5, 0};
	for (size_t ci = 0; ci < sizeof chunks / sizeof *chunks; ci++)
		for (int N = 1; N <= 2; N++) {
			iapo_info_opts o = opts_post3(post3, x.w.cfg.V);
			o.chunk = chunks[ci];
			o.answer_tokens = N;
			snprintf(what, sizeof what, "%s chunk=%d N=%d", tiny_names[kind], o.chunk, N);
			e = compare(&x, &o, 1, x.nscratch, what);
			worst = e > worst ? e : worst;
		}
	iapo_info_opts o = opts_post3(post3, x.w.cfg.V);
	snprintf(what, sizeof what, "%s one scratch slot", tiny_names[kind]);
	e = compare(&x, &o, 1, 1, what);
	worst = e > worst ? e : worst;
	snprintf(what, sizeof what, "%s C recomputed", tiny_names[kind]);
	e = compare(&x, &o, 0, x.nscratch, what);
	worst = e > worst ? e : worst;
	o.stride = 3;
	snprintf(what, sizeof what, "%s stride 3", tiny_names[kind]);
	e = compare(&x, &o, 1, x.nscratch, what);
	worst = e > worst ? e : worst;
	o = iapo_info_defaults();
	o.predict = IAPO_PREDICT_NEXT_TOKEN;
	snprintf(what, sizeof what, "%s next_token", tiny_names[kind]);
	e = compare(&x, &o, 1, x.nscratch, what);
	worst = e > worst ? e : worst;
	fprintf(stderr, "  %s: cached vs recomputed worst rel err %.2g\n", tiny_names[kind], worst);
	rollout_free(&x);
}

static void test_reuse_qwen2(void) { reuse_for(TINY_QWEN2); }
static void test_reuse_llama(void) { reuse_for(TINY_LLAMA); }
static void test_reuse_qwen3(void) { reuse_for(TINY_QWEN3); }

/* generate's sampling entropies = the training forward's entropies at the
 * same positions (temperature 0.7). */
static void test_generate_entropy(void)
{
	rollout x;
	if (rollout_make(&x, TINY_QWEN2, 0.7f)) return;
	const int T = x.Tmax;
	iapo_fwd *f;
	CHECK(iapo_fwd_new(&x.w, 1, T, 0, &f) == IAPO_OK, "%s", iapo_errmsg());
	iapo_fwd_set_temperature(f, 0.7f);
	int tok[64], tgt[64];
	float ent[64];
	double worst = 0;
	int n = 0;
	for (int i = 0; i < NSEQ; i++) {
		const int P = PL[i], L = x.res[i].n_tokens;
		memcpy(tok, x.prompt[i], sizeof(int) * (size_t)P);
		memcpy(tok + P, x.res[i].tokens, sizeof(int) * (size_t)L);
		for (int j = 0; j < T; j++) tgt[j] = -1;
		int len = P + L - 1;
		CHECK(iapo_fwd_forward(f, tok, &len, tgt, 1, len, NULL, ent, NULL) == IAPO_OK, "%s", iapo_errmsg());
		for (int t = 0; t < L; t++, n++) {
			double d = fabs((double)x.res[i].entropy[t] - ent[P - 1 + t]) / (fabs(ent[P - 1 + t]) + 1e-3);
			worst = d > worst ? d : worst;
		}
	}
	CHECK(n > 20 && worst < 1e-4, "%d sampling entropies vs the forward's: worst rel err %.3g", n, worst);
	fprintf(stderr, "  %d sampling entropies vs forward: worst rel err %.2g\n", n, worst);
	iapo_fwd_free(f);
	rollout_free(&x);
}

/* Token advantages (defaults, A = 0.5, reward 1) of the batch from E, C. */
static void advantages(const rollout *x, const float *E, const float *C, float *adv)
{
	for (int k = 0; k < NSEQ; k++) {
		iapo_tokadv_opts o = iapo_tokadv_defaults();
		CHECK(iapo_tokadv_compute(&o, x->bcl[k], E + k * LD, C + k * LD, 0.5f, 1.0f, adv + k * NEW, NULL, NULL,
					  NULL) == IAPO_OK,
		      "%s", iapo_errmsg());
	}
}

static void test_bf16(void)
{
	rollout x;
	if (rollout_make(&x, TINY_QWEN2, 1.0f)) return;
	int post3[3];
	iapo_info_opts o = opts_post3(post3, x.w.cfg.V);
	float E0[NSEQ * LD], C0[NSEQ * LD], E1[NSEQ * LD], C1[NSEQ * LD], E2[NSEQ * LD], C2[NSEQ * LD];
	float A0[NSEQ * NEW], A1[NSEQ * NEW];
	memset(A0, 0, sizeof A0);
	memset(A1, 0, sizeof A1);
	iapo_info *e32, *e16;
	CHECK(iapo_info_new(&x.w, NSEQ, x.Tmax, &o, &e32) == IAPO_OK, "%s", iapo_errmsg());
	o.bf16 = 1;
	CHECK(iapo_info_new(&x.w, NSEQ, x.Tmax, &o, &e16) == IAPO_OK, "%s", iapo_errmsg());
	iapo_info_cache c = cache_of(&x, 1, x.nscratch);
	CHECK(iapo_info_compute_cached(e32, &c, &x.b, E0, C0, LD, NULL) == IAPO_OK, "%s", iapo_errmsg());
	CHECK(iapo_info_compute_cached(e16, &c, &x.b, E1, C1, LD, NULL) == IAPO_OK, "%s", iapo_errmsg());
	CHECK(iapo_info_compute_cached(e32, &c, &x.b, E2, C2, LD, NULL) == IAPO_OK, "%s", iapo_errmsg());
	CHECK(!memcmp(E0, E2, sizeof E0), "the cache was left in bf16 after the bf16 call");
	double eE = rel_err(&x, E1, E0), eC = rel_err(&x, C1, C0);
	/* own cache too: its prefill then also runs in bf16 */
	float E3[NSEQ * LD], C3[NSEQ * LD];
	CHECK(iapo_info_compute(e16, &x.b, E3, C3, LD, NULL) == IAPO_OK, "%s", iapo_errmsg());
	double eE3 = rel_err(&x, E3, E0), eC3 = rel_err(&x, C3, C0);
	advantages(&x, E0, C0, A0);
	advantages(&x, E1, C1, A1);
	double da = 0;
	for (int k = 0; k < NSEQ * NEW; k++) da = fabs((double)A1[k] - A0[k]) > da ? fabs((double)A1[k] - A0[k]) : da;
	fprintf(stderr, "  bf16 vs fp32: E rel err %.3g, C %.3g (own cache: %.3g, %.3g); advantages max abs diff %.3g\n",
		eE, eC, eE3, eC3, da);
	CHECK(eE > 0 && eE <= BF16_E_TOL && eC <= BF16_E_TOL && eE3 <= BF16_E_TOL && eC3 <= BF16_E_TOL,
	      "bf16: E %.3g, C %.3g, own cache E %.3g C %.3g", eE, eC, eE3, eC3);
	CHECK(da <= BF16_ADV_TOL, "bf16: advantages max abs diff %.3g", da);
	iapo_info_free(e32);
	iapo_info_free(e16);
	rollout_free(&x);
}

/* Weight panels packed once per call (pack_weights) give the same bits as
 * packing in every product, fp32 and bf16; after the weights change the
 * next call packs them again (a stale pack would be read and differ). */
static void test_pack_weights(void)
{
	rollout x;
	if (rollout_make(&x, TINY_QWEN2, 1.0f)) return;
	int post3[3];
	iapo_info_opts o = opts_post3(post3, x.w.cfg.V);
	iapo_info_cache c = cache_of(&x, 1, x.nscratch);
	float E0[NSEQ * LD], C0[NSEQ * LD], E1[NSEQ * LD], C1[NSEQ * LD];
	for (int b16 = 0; b16 <= 1; b16++) {
		iapo_info *plain, *packed;
		o.bf16 = b16;
		o.pack_weights = 0;
		CHECK(iapo_info_new(&x.w, NSEQ, x.Tmax, &o, &plain) == IAPO_OK, "%s", iapo_errmsg());
		o.pack_weights = 1;
		CHECK(iapo_info_new(&x.w, NSEQ, x.Tmax, &o, &packed) == IAPO_OK, "%s", iapo_errmsg());
		for (int step = 0; step < 2; step++) {
			if (step == 1) /* an optimiser step: every gate weight moves */
				for (size_t i = 0; i < iapo_param_layer_size(&x.w.cfg, IAPO_P_WGATE) * (size_t)x.w.cfg.L; i++)
					x.w.p.t[IAPO_P_WGATE][i] *= 1.0625f;
			for (int k = 0; k < NSEQ * LD; k++) E0[k] = C0[k] = E1[k] = C1[k] = NAN;
			CHECK(iapo_info_compute_cached(plain, &c, &x.b, E0, C0, LD, NULL) == IAPO_OK, "%s", iapo_errmsg());
			CHECK(iapo_info_compute_cached(packed, &c, &x.b, E1, C1, LD, NULL) == IAPO_OK, "%s", iapo_errmsg());
			CHECK(!memcmp(E0, E1, sizeof E0) && !memcmp(C0, C1, sizeof C0),
			      "bf16 %d, step %d: packed weights changed E or C (rel err %.3g, %.3g)", b16, step,
			      rel_err(&x, E1, E0), rel_err(&x, C1, C0));
		}
		iapo_info_free(plain);
		iapo_info_free(packed);
	}
	size_t bytes = 0;
	CHECK(iapo_kv_pack_weights(x.kv, 1, &bytes) == IAPO_OK && bytes > 0, "pack: %zu bytes: %s", bytes,
	      iapo_errmsg());
	CHECK(iapo_kv_pack_weights(x.kv, 0, &bytes) == IAPO_OK && bytes == 0, "unpack");
	rollout_free(&x);
}

/* generate with a slot map (generate.h's slots), as a resampled group:
 * generated sequences 0 and 3 sampled again, with another seed, into their
 * own slots. The other slots keep their K/V; the new samples are what the
 * same call without a map gives; the pass over the whole batch (two old
 * sequences, two new) equals the recomputed one. Bad maps are ARG. */
static void test_slot_map(void)
{
	rollout x;
	if (rollout_make(&x, TINY_QWEN2, 1.0f)) return;
	const int re[2] = {0, 3}, kept[2] = {1, 2};
	int len0[2] = {iapo_kv_len(x.kv, kept[0]), iapo_kv_len(x.kv, kept[1])};
	const int *pp[2] = {x.prompt[re[0]], x.prompt[re[1]]};
	const int pl[2] = {PL[re[0]], PL[re[1]]};
	iapo_gen_opts go;
	memset(&go, 0, sizeof go);
	go.max_new_tokens = NEW;
	go.sampler.temperature = 1.0f;
	go.sampler.top_p = 1.0f;
	go.seed = 99;
	go.entropy_temperature = 1.0f;
	go.slots = re;
	iapo_gen_result r2[2], r3[2];
	CHECK(iapo_generate(&x.w, pp, pl, 2, &go, x.kv, r2, NULL) == IAPO_OK, "%s", iapo_errmsg());
	CHECK(iapo_kv_len(x.kv, kept[0]) == len0[0] && iapo_kv_len(x.kv, kept[1]) == len0[1],
	      "slots outside the map keep their K/V");
	iapo_gen_opts plain = go;
	plain.slots = NULL;
	CHECK(iapo_generate(&x.w, pp, pl, 2, &plain, NULL, r3, NULL) == IAPO_OK, "%s", iapo_errmsg());
	int same = 1;
	for (int j = 0; j < 2; j++) {
		same &= r2[j].n_tokens == r3[j].n_tokens &&
			!memcmp(r2[j].tokens, r3[j].tokens, sizeof(int) * (size_t)r2[j].n_tokens);
		for (int t = 0; same && t < r2[j].n_tokens; t++) same &= fabsf(r2[j].entropy[t] - r3[j].entropy[t]) <= 1e-5f;
	}
	CHECK(same, "mapped = unmapped samples and entropies");
	iapo_gen_results_free(r3, 2);
	for (int j = 0; j < 2; j++) {
		iapo_gen_results_free(&x.res[re[j]], 1);
		x.res[re[j]] = r2[j];
	}
	for (int k = 0; k < NSEQ; k++) {
		const int i = ORDER[k];
		x.bc[k] = x.res[i].tokens;
		x.bcl[k] = x.res[i].n_tokens;
		x.bent[k] = x.res[i].entropy;
	}
	int post[2] = {x.w.cfg.V - 2, 7};
	iapo_info_opts o = iapo_info_defaults();
	o.postfix = post;
	o.n_postfix = 2;
	compare(&x, &o, 1, x.nscratch, "slot map: two resampled sequences");
	/* bad maps */
	iapo_gen_result r4[2];
	const int dup[2] = {1, 1}, out[2] = {0, NSEQ + x.nscratch};
	go.slots = dup;
	CHECK(iapo_generate(&x.w, pp, pl, 2, &go, x.kv, r4, NULL) == IAPO_ERR_ARG, "a slot twice");
	go.slots = out;
	CHECK(iapo_generate(&x.w, pp, pl, 2, &go, x.kv, r4, NULL) == IAPO_ERR_ARG, "a slot past the cache");
	go.slots = re;
	CHECK(iapo_generate(&x.w, pp, pl, 2, &go, NULL, r4, NULL) == IAPO_ERR_ARG, "a map without a cache");
	rollout_free(&x);
}

static void test_errors(void)
{
	rollout x;
	if (rollout_make(&x, TINY_QWEN2, 1.0f)) return;
	int post[2] = {3, 4};
	iapo_info_opts o = iapo_info_defaults();
	o.postfix = post;
	o.n_postfix = 2;
	iapo_info *e;
	CHECK(iapo_info_new(&x.w, NSEQ, x.Tmax, &o, &e) == IAPO_OK, "%s", iapo_errmsg());
	float E[NSEQ * LD], C[NSEQ * LD];
	iapo_info_cache c = cache_of(&x, 1, 0);
	CHECK(iapo_info_compute_cached(e, &c, &x.b, E, C, LD, NULL) == IAPO_ERR_ARG, "no scratch accepted");
	c = cache_of(&x, 1, x.nscratch);
	c.scratch0 = 1; /* overlaps sequence slots */
	CHECK(iapo_info_compute_cached(e, &c, &x.b, E, C, LD, NULL) == IAPO_ERR_ARG, "a sequence slot as scratch");
	c = cache_of(&x, 1, x.nscratch);
	iapo_kv_reset(x.kv, x.slot[2]);
	CHECK(iapo_info_compute_cached(e, &c, &x.b, E, C, LD, NULL) == IAPO_ERR_ARG, "an emptied slot accepted");
	CHECK(strstr(iapo_errmsg(), "holds 0 positions") != NULL, "message: %s", iapo_errmsg());
	CHECK(iapo_info_compute_cached(e, NULL, &x.b, E, C, LD, NULL) == IAPO_ERR_ARG, "no cache");
	iapo_info_free(e);
	rollout_free(&x);
}

int main(void)
{
	(void)tiny_full_logits; /* the header's oracle, not needed here */
	RUN(test_reuse_qwen2);
	RUN(test_reuse_llama);
	RUN(test_reuse_qwen3);
	RUN(test_generate_entropy);
	RUN(test_bf16);
	RUN(test_pack_weights);
	RUN(test_slot_map);
	RUN(test_errors);
	TEST_END();
}
