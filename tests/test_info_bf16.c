/*
 * test_info_bf16.c — the bf16 attention of the IAPO pass in bf16
 * (kvcache.h's iapo_kv_attn_bf16; info.h's bf16 without attn_fp32): q and a
 * bf16 copy of the K/V cache multiplied by vdpbf16ps, the softmax in fp32,
 * its weights rounded to bf16 for P.V, every sum in fp32. An approximation,
 * so the checks are tolerances. bf16 keeps 8 bits of mantissa (2^-9
 * relative per operand): a score moves by about 2^-8 of |q||k|, which with
 * sharp attention moves the softmax weights by a few percent; that, not the
 * sums, sets the tolerances, which sit about twice above what they measured
 * and below what a 2% error in every score gives:
 *  - the cached attention alone (fp32 weights, bf16 attention on) against
 *    the training forward of prefix + postfix, for head dims 16, 32, 64 and
 *    128, GQA 1, 2 and 4, attention made sharper (q and k weights x 1.5),
 *    prefixes that end on and around tile and group edges (odd and even: P.V
 *    reads rows in pairs) and postfix spans that straddle a tile edge:
 *    logits within ATT_TOL (3%) of the largest logit (measured 1.6%; fp32
 *    attention: 1e-4); the prefix keys were stored before the attention was
 *    turned on (converted then), the postfix keys while on (stored into
 *    both copies); the fp32 attention gives its own bits again afterwards;
 *    the same with the products' bf16 verdict forced both ways
 *    (iapo_sgemm_force_bf16_dot): where vdpbf16ps does not pay, head dims 64
 *    and 128 attend by fp32 FMAs on the same bf16 values
 *    (iapo_kv_attn_bf16_fma), and where this CPU's vdpbf16ps is two FMAs a
 *    lane, odd element first (dot_is_two_fmas: Intel's definition), they
 *    give its bits; elsewhere the same tolerance; with AMX usable
 *    (iapo_kv_amx) its tiles take those products: other bits, the same
 *    tolerance (measured: as vdpbf16ps's);
 *  - the whole pass over a bf16 rollout's cache (tiny Qwen2/Llama/Qwen3, and
 *    an HD 64 model like bench/info's): the token advantages within
 *    PASS_ADV_TOL (0.1, the bf16 pass's contract in test_info_reuse;
 *    measured 0.017-0.034) of the fp32 pass, and within ATT_ADV_TOL (0.05;
 *    measured 0.018-0.028) of the bf16 pass with fp32 attention (what the
 *    attention adds: about as much as the bf16 weights, 0.015-0.028); E and
 *    C within 3% of the largest entropy for the tiny models (measured 1.8%),
 *    15% for the HD 64 one (low entropies: measured 9%, bf16 weights alone
 *    6%); head dim 24 (Qwen3: no bf16 path) gives fp32 attention's bits; the
 *    cache attends in fp32 again after the call (decoding never in bf16);
 *    1 and 2 threads give the same bits (each vector's sums run in a fixed
 *    order; the stores, on the pool, only move data).
 * Fault checks (by hand, 2026-11-27; each made both cases fail): scores
 * without their last pair of dims; P.V without its odd pairs of rows; P.V's
 * edge masks swapped; the conversion at turn-on skipped; every score scaled
 * by 1.02 (logits 3.45% > 3%, advantages 0.076 > 0.05). The fp32-FMA
 * attention (2026-11-28, on an Intel Xeon whose vdpbf16ps is two FMAs): its
 * scores' pairs even element first failed the bits check (HD 64 and 128);
 * P.V without its last pair of rows failed both the bits and the tolerance.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "core/rng.h"
#include "core/status.h"
#include "kernels/kernels.h"
#include "model/generate.h"
#include "model/kvcache.h"
#include "rl/iapo_adv.h"
#include "rl/info.h"
#include "bf16_probe.h"
#include "test.h"
#include "test_decode_models.h"

#define ATT_TOL 0.03     /* logits, relative to the largest: bf16 attention vs the fp32 forward */
#define PASS_ADV_TOL 0.1 /* token advantages, absolute (unit-norm terms): bf16 pass vs fp32 */
#define ATT_ADV_TOL 0.05 /* the same, bf16 attention vs fp32 attention (both bf16 weights) */
#define SHARP 1.5f       /* q and k weights scaled: sharper attention */
#define K 3              /* postfix rows per position */

/* kvcache.c has bf16 attention only when built with AVX512_BF16 (kvcache.h):
 * without it the cache stays in fp32 attention, whose bits it must then give
 * (make test's build-portable, -march=x86-64-v3, checks that side). */
#if defined(__AVX512BF16__)
#define BF16_ATTN 1
#else
#define BF16_ATTN 0
#endif
#if BF16_ATTN
#include <immintrin.h>
#endif
#define TMAX 200
#define BASE 45          /* first scratch entry: some spans straddle key 64 */

/* Prefixes (seq, keys) the postfixes follow: tile edges (64, 128), group
 * edges (16, 32), odd and even ends. */
static const int PRE[][2] = {{0, 1},  {0, 2},   {0, 15},  {0, 16},  {0, 17},  {0, 33},  {0, 63},
			     {0, 64}, {0, 65},  {0, 66},  {0, 127}, {0, 128}, {0, 129}, {0, 150},
			     {1, 3},  {1, 31},  {1, 32},  {1, 64},  {1, 65},  {1, 90}};
#define NP ((int)(sizeof PRE / sizeof PRE[0]))

static void sharpen(iapo_weights *w, float s)
{
	const iapo_config *c = &w->cfg;
	size_t sizes[IAPO_NUM_PARAMS];
	iapo_param_sizes(c, sizes);
	const int t[4] = {IAPO_P_WQ, IAPO_P_WK, IAPO_P_BQ, IAPO_P_BK};
	for (int i = 0; i < 4; i++)
		if (w->p.t[t[i]])
			for (size_t j = 0; j < sizes[t[i]]; j++) w->p.t[t[i]][j] *= s;
}

static void make_rows(iapo_kv_row *rows, const int *post)
{
	for (int j = 0; j < NP; j++)
		for (int i = 0; i < K; i++) {
			iapo_kv_row *x = &rows[j * K + i];
			x->token = post[i];
			x->pos = PRE[j][1] + i;
			x->seq = 2;
			x->slot = BASE + K * j + i;
			x->keys = (iapo_kv_keys){.seq0 = PRE[j][0], .len0 = PRE[j][1], .seq1 = 2, .start1 = BASE + K * j,
						 .len1 = i + 1};
			x->out = i == K - 1 ? j : -1;
		}
}

/* The bf16 attention by fp32 FMAs (iapo_kv_attn_bf16_fma) sums as
 * bf16_probe.h's Intel definition of vdpbf16ps, so where the CPU's
 * vdpbf16ps does, it gives its bits. */
static int dot_is_two_fmas(void) { return BF16_ATTN && dpbf16_is_two_fmas(); }

static int amx_shapes; /* shapes whose logits AMX changed */

static void attention_shape(int NH, int NKV, int HD, double *worst)
{
	iapo_config c = tiny_config(TINY_QWEN2);
	c.NH = NH;
	c.NKV = NKV;
	c.HD = HD;
	iapo_weights w;
	if (tiny_weights_cfg(&c, 700 + (uint64_t)HD, 79, &w)) {
		CHECK(0, "setup: out of memory");
		return;
	}
	sharpen(&w, SHARP);
	iapo_fwd *f = NULL;
	iapo_kv *kv = NULL;
	const int V = c.V, R = NP * K;
	CHECK(iapo_fwd_new_params(&w.cfg, &w.p, 1, TMAX, 0, &f) == IAPO_OK, "fwd: %s", iapo_errmsg());
	CHECK(iapo_kv_new(&w, 3, TMAX, &kv) == IAPO_OK, "kv_new: %s", iapo_errmsg());
	int seq[2][TMAX], post[K], full[TMAX];
	iapo_rng r;
	iapo_rng_seed(&r, 43, (uint64_t)HD, (uint64_t)NH, 0);
	for (int s = 0; s < 2; s++)
		for (int t = 0; t < TMAX; t++) seq[s][t] = (int)iapo_rng_below(&r, (uint64_t)V);
	for (int i = 0; i < K; i++) post[i] = (int)iapo_rng_below(&r, (uint64_t)V);
	iapo_kv_row *rows = malloc(sizeof(iapo_kv_row) * R);
	float *a32 = malloc(sizeof(float) * NP * V), *a16 = malloc(sizeof(float) * NP * V);
	float *again = malloc(sizeof(float) * NP * V), *ref = malloc(sizeof(float) * V);
	float *a16w = malloc(sizeof(float) * NP * V), *a16x = malloc(sizeof(float) * NP * V);
	float *all = malloc(sizeof(float) * TMAX * V), *lg = malloc(sizeof(float) * 3 * V);
	if (!f || !kv || !rows || !a32 || !a16 || !a16w || !a16x || !again || !ref || !all || !lg) goto done;
	const int *tok[3] = {seq[0], seq[1], NULL};
	int n[3] = {150, 90, 0};
	CHECK(iapo_kv_forward(kv, tok, n, lg) == IAPO_OK, "prefill: %s", iapo_errmsg()); /* fp32 attention */
	make_rows(rows, post);
	CHECK(iapo_kv_forward_rows(kv, rows, R, a32) == IAPO_OK, "rows: %s", iapo_errmsg());
	const int slots[2] = {0, 1};
	/* by vdpbf16ps (the products' verdict forced), then by fp32 FMAs on the
	 * same bf16 values where the head dim allows (64, 128) */
	const int hook = iapo_sgemm_force_bf16_dot(1);
	CHECK(iapo_kv_attn_bf16(kv, 1, slots, 2) == IAPO_OK, "attn_bf16: %s", iapo_errmsg());
	const int on = iapo_kv_attn_bf16_on(kv);
	CHECK(on == BF16_ATTN, "HD %d: bf16 attention %s", HD,
	      on ? "turned on in a build without AVX512_BF16" : "did not turn on");
	CHECK(!iapo_kv_attn_bf16_fma(kv), "HD %d: fp32 FMAs where vdpbf16ps pays", HD);
	CHECK(iapo_kv_forward_rows(kv, rows, R, a16) == IAPO_OK, "rows: %s", iapo_errmsg());
	iapo_sgemm_force_bf16_dot(0);
	CHECK(iapo_kv_attn_bf16(kv, 1, slots, 2) == IAPO_OK, "attn_bf16: %s", iapo_errmsg());
	const int fma = iapo_kv_attn_bf16_fma(kv);
	CHECK(fma == (BF16_ATTN && HD % 64 == 0 && HD <= 128), "HD %d: bf16 attention by fp32 FMAs: %d", HD, fma);
	const int amx = iapo_kv_amx(0);
	CHECK(iapo_kv_forward_rows(kv, rows, R, a16w) == IAPO_OK, "rows: %s", iapo_errmsg());
	iapo_kv_amx(1); /* and with AMX's tiles where this CPU has them */
	CHECK(iapo_kv_forward_rows(kv, rows, R, a16x) == IAPO_OK, "rows: %s", iapo_errmsg());
	iapo_kv_amx(amx);
	iapo_sgemm_force_bf16_dot(hook);
	/* AMX takes blocks of 16 query vectors all active in a tile: not every
	 * shape's rows make one (test_attention asks that some do) */
	if (fma && iapo_kv_amx_usable())
		amx_shapes += memcmp(a16w, a16x, sizeof(float) * (size_t)NP * V) != 0;
	else
		CHECK(!memcmp(a16w, a16x, sizeof(float) * (size_t)NP * V), "HD %d: no AMX path: other bits", HD);
	if (!fma || dot_is_two_fmas())
		CHECK(!memcmp(a16, a16w, sizeof(float) * (size_t)NP * V), "HD %d: bf16 attention by %s: other bits", HD,
		      fma ? "fp32 FMAs than by vdpbf16ps" : "vdpbf16ps after turning on again");
	CHECK(iapo_kv_attn_bf16(kv, 0, NULL, 0) == IAPO_OK && !iapo_kv_attn_bf16_on(kv), "off");
	CHECK(iapo_kv_forward_rows(kv, rows, R, again) == IAPO_OK, "rows: %s", iapo_errmsg());
	CHECK(!memcmp(a32, again, sizeof(float) * (size_t)NP * V), "HD %d: fp32 attention after bf16: other bits", HD);
	if (BF16_ATTN)
		CHECK(memcmp(a32, a16, sizeof(float) * (size_t)NP * V), "HD %d: bf16 attention gave fp32's bits", HD);
	else
		CHECK(!memcmp(a32, a16, sizeof(float) * (size_t)NP * V), "HD %d: no bf16 attention built: other bits", HD);
	for (int j = 0; j < NP; j++) {
		memcpy(full, seq[PRE[j][0]], sizeof(int) * (size_t)PRE[j][1]);
		memcpy(full + PRE[j][1], post, sizeof post);
		if (tiny_full_logits(&w, f, full, PRE[j][1] + K, ref, all)) {
			CHECK(0, "full forward: %s", iapo_errmsg());
			continue;
		}
		const double e32 = test_max_rel_err(a32 + (size_t)j * V, ref, (size_t)V);
		const double e16 = test_max_rel_err(a16 + (size_t)j * V, ref, (size_t)V);
		const double e16w = test_max_rel_err(a16w + (size_t)j * V, ref, (size_t)V);
		const double e16x = test_max_rel_err(a16x + (size_t)j * V, ref, (size_t)V);
		*worst = e16 > *worst ? e16 : *worst;
		*worst = e16w > *worst ? e16w : *worst;
		*worst = e16x > *worst ? e16x : *worst;
		CHECK(e16x <= ATT_TOL, "NH %d NKV %d HD %d: prefix %d/%d: bf16 attention by AMX: max rel err %.3g", NH, NKV,
		      HD, PRE[j][0], PRE[j][1], e16x);
		CHECK(e16w <= ATT_TOL, "NH %d NKV %d HD %d: prefix %d/%d: bf16 attention by fp32 FMAs: max rel err %.3g", NH,
		      NKV, HD, PRE[j][0], PRE[j][1], e16w);
		CHECK(e32 <= 1e-4, "NH %d NKV %d HD %d: prefix %d/%d: fp32 attention: max rel err %.3g", NH, NKV, HD,
		      PRE[j][0], PRE[j][1], e32);
		CHECK(e16 <= ATT_TOL, "NH %d NKV %d HD %d: prefix %d/%d: bf16 attention: max rel err %.3g", NH, NKV, HD,
		      PRE[j][0], PRE[j][1], e16);
	}
done:
	free(rows);
	free(a32);
	free(a16);
	free(a16w);
	free(a16x);
	free(again);
	free(ref);
	free(all);
	free(lg);
	iapo_kv_free(kv);
	iapo_fwd_free(f);
	iapo_free_aligned(w.block);
}

static void test_attention(void)
{
	double worst = 0;
	attention_shape(4, 2, 16, &worst);
	attention_shape(4, 2, 32, &worst);
	attention_shape(4, 1, 64, &worst); /* GQA 4 */
	attention_shape(2, 2, 128, &worst);
	attention_shape(4, 4, 64, &worst);
	CHECK(!iapo_kv_amx_usable() || amx_shapes >= 2, "AMX usable, changed the logits of %d shapes (HD 64 GQA 4, HD 128)",
	      amx_shapes);
	fprintf(stderr, "  bf16 attention vs the fp32 forward: logits max rel err %.3g (tolerance %g)\n", worst, ATT_TOL);
	fprintf(stderr, "  this CPU's vdpbf16ps %s two FMAs a lane: the fp32-FMA attention checked %s; AMX %s\n",
		dot_is_two_fmas() ? "is" : "is not", dot_is_two_fmas() ? "for its bits" : "by the tolerance",
		iapo_kv_amx_usable() ? "usable (checked by the tolerance)" : "not usable here");
}

/* ---- the whole pass over a bf16 rollout's cache ---- */

#define NSEQ 4
#define NEW 90
#define LD (NEW + 1)

static const int PL[NSEQ] = {5, 31, 64, 17};

static double rel_err(const int *clen, const float *a, const float *b)
{
	double num = 0, den = 1e-30;
	for (int k = 0; k < NSEQ; k++)
		for (int t = 0; t <= clen[k]; t++) {
			const double d = fabs((double)a[k * LD + t] - b[k * LD + t]);
			num = d > num || d != d ? (d != d ? INFINITY : d) : num;
			den = fabs((double)b[k * LD + t]) > den ? fabs((double)b[k * LD + t]) : den;
		}
	return num / den;
}

static double adv_diff(const int *clen, const float *E0, const float *C0, const float *E1, const float *C1)
{
	double da = 0;
	for (int k = 0; k < NSEQ; k++) {
		float A0[NEW], A1[NEW];
		iapo_tokadv_opts o = iapo_tokadv_defaults();
		CHECK(iapo_tokadv_compute(&o, clen[k], E0 + k * LD, C0 + k * LD, 0.5f, 1.0f, A0, NULL, NULL, NULL) ==
				      IAPO_OK &&
			      iapo_tokadv_compute(&o, clen[k], E1 + k * LD, C1 + k * LD, 0.5f, 1.0f, A1, NULL, NULL, NULL) ==
				      IAPO_OK,
		      "%s", iapo_errmsg());
		for (int t = 0; t < clen[k]; t++) da = fabs((double)A1[t] - A0[t]) > da ? fabs((double)A1[t] - A0[t]) : da;
	}
	return da;
}

/* etol: E and C relative to the largest entropy, the bf16 pass against fp32
 * and bf16 attention against fp32 attention alike */
static void pass_model(const char *name, iapo_weights *w, double etol)
{
	const int V = w->cfg.V, HD = w->cfg.HD;
	int *prompt[NSEQ], maxp = 0;
	iapo_gen_result res[NSEQ];
	memset(res, 0, sizeof res);
	iapo_rng r;
	iapo_rng_seed(&r, 91, (uint64_t)V, 0, 0);
	for (int i = 0; i < NSEQ; i++) {
		prompt[i] = malloc(sizeof(int) * (size_t)PL[i]);
		for (int j = 0; j < PL[i]; j++) prompt[i][j] = (int)iapo_rng_below(&r, (uint64_t)V - 1);
		maxp = PL[i] > maxp ? PL[i] : maxp;
	}
	const int Tmax = maxp + NEW, nscratch = iapo_info_scratch_slots(Tmax);
	iapo_kv *kv = NULL;
	iapo_info *e32 = NULL, *e16a = NULL, *e16 = NULL;
	CHECK(iapo_kv_new(w, NSEQ + nscratch, Tmax, &kv) == IAPO_OK, "%s", iapo_errmsg());
	iapo_gen_opts go;
	memset(&go, 0, sizeof go);
	go.max_new_tokens = NEW;
	go.sampler.temperature = 1.0f;
	go.sampler.top_p = 1.0f;
	go.seed = 17;
	go.entropy_temperature = 1.0f;
	go.weights = IAPO_GEN_WEIGHTS_BF16; /* as --info-bf16 trains */
	int eos = -1;
	go.eos_ids = &eos;
	go.n_eos = 1;
	if (!kv || iapo_generate(w, (const int *const *)prompt, PL, NSEQ, &go, kv, res, NULL) != IAPO_OK) {
		CHECK(0, "%s: rollout: %s", name, iapo_errmsg());
		goto done;
	}
	const int *bc[NSEQ], *bp[NSEQ];
	const float *ent[NSEQ];
	int cl[NSEQ], slot[NSEQ];
	for (int i = 0; i < NSEQ; i++) {
		bp[i] = prompt[i];
		bc[i] = res[i].tokens;
		cl[i] = res[i].n_tokens;
		ent[i] = res[i].entropy;
		slot[i] = i;
	}
	iapo_info_batch b = {.n = NSEQ, .prompts = bp, .plen = PL, .comps = bc, .clen = cl};
	iapo_info_cache ic = {.kv = kv, .slot = slot, .C = ent, .scratch0 = NSEQ, .nscratch = nscratch};
	int post[4] = {V - 2, 7, 31, 3};
	iapo_info_opts o = iapo_info_defaults();
	o.postfix = post;
	o.n_postfix = 4;
	CHECK(iapo_info_new(w, NSEQ, Tmax, &o, &e32) == IAPO_OK, "%s", iapo_errmsg());
	o.bf16 = 1;
	o.attn_fp32 = 1;
	CHECK(iapo_info_new(w, NSEQ, Tmax, &o, &e16a) == IAPO_OK, "%s", iapo_errmsg());
	o.attn_fp32 = 0;
	CHECK(iapo_info_new(w, NSEQ, Tmax, &o, &e16) == IAPO_OK, "%s", iapo_errmsg());
	if (!e32 || !e16a || !e16) goto done;
	static float E0[NSEQ * LD], C0[NSEQ * LD], E1[NSEQ * LD], C1[NSEQ * LD], E2[NSEQ * LD], C2[NSEQ * LD];
	CHECK(iapo_info_compute_cached(e32, &ic, &b, E0, C0, LD, NULL) == IAPO_OK, "%s", iapo_errmsg());
	CHECK(iapo_info_compute_cached(e16a, &ic, &b, E1, C1, LD, NULL) == IAPO_OK, "%s", iapo_errmsg());
	iapo_set_threads(2);
	CHECK(iapo_info_compute_cached(e16, &ic, &b, E2, C2, LD, NULL) == IAPO_OK, "%s", iapo_errmsg());
	CHECK(!iapo_kv_attn_bf16_on(kv), "%s: the cache was left attending in bf16", name);
	static float E3[NSEQ * LD], C3[NSEQ * LD];
	iapo_set_threads(1);
	CHECK(iapo_info_compute_cached(e16, &ic, &b, E3, C3, LD, NULL) == IAPO_OK, "%s", iapo_errmsg());
	CHECK(!memcmp(E2, E3, sizeof E2) && !memcmp(C2, C3, sizeof C2), "%s: bf16 pass: 1 and 2 threads: other bits",
	      name);
	const double eE = rel_err(cl, E2, E0), eC = rel_err(cl, C2, C0), da = adv_diff(cl, E0, C0, E2, C2);
	const double aE = rel_err(cl, E2, E1), aC = rel_err(cl, C2, C1), ada = adv_diff(cl, E1, C1, E2, C2);
	const double wE = rel_err(cl, E1, E0), wda = adv_diff(cl, E0, C0, E1, C1);
	fprintf(stderr,
		"  %s (HD %d): bf16 pass vs fp32: E %.3g, C %.3g, advantages %.3g; bf16 attention vs fp32 attention: "
		"E %.3g, C %.3g, advantages %.3g (bf16 weights alone: E %.3g, advantages %.3g)\n",
		name, HD, eE, eC, da, aE, aC, ada, wE, wda);
	CHECK(eE <= etol && eC <= etol, "%s: bf16 pass: E %.3g, C %.3g", name, eE, eC);
	CHECK(da <= PASS_ADV_TOL, "%s: bf16 pass: advantages max abs diff %.3g", name, da);
	CHECK(aE <= etol && aC <= etol, "%s: bf16 attention: E %.3g, C %.3g", name, aE, aC);
	CHECK(ada <= ATT_ADV_TOL, "%s: bf16 attention: advantages max abs diff %.3g", name, ada);
	if (HD % 16 || !BF16_ATTN)
		CHECK(!memcmp(E1, E2, sizeof E1) && !memcmp(C1, C2, sizeof C1), "%s: HD %d: not fp32 attention's bits",
		      name, HD);
	else
		CHECK(aE > 0, "%s: HD %d: bf16 attention gave fp32 attention's bits", name, HD);
done:
	iapo_info_free(e32);
	iapo_info_free(e16a);
	iapo_info_free(e16);
	iapo_kv_free(kv);
	iapo_gen_results_free(res, NSEQ);
	for (int i = 0; i < NSEQ; i++) free(prompt[i]);
}

static void test_pass(void)
{
	for (int kind = 0; kind < TINY_NUM; kind++) {
		iapo_weights w;
		if (tiny_weights(kind, 300 + kind, &w)) {
			CHECK(0, "setup: out of memory");
			continue;
		}
		pass_model(tiny_names[kind], &w, 0.03);
		iapo_free_aligned(w.block);
	}
	/* bench/info's head shape (HD 64, GQA 2), C = 128: sharper attention
	 * and lower entropies than the tiny models (bf16 weights alone move E
	 * by 6% of the largest there), so E gets 0.15 */
	iapo_config c = tiny_config(TINY_QWEN2);
	c.C = 128;
	c.NH = 4;
	c.NKV = 2;
	c.HD = 64;
	c.F = 192;
	iapo_weights w;
	if (tiny_weights_cfg(&c, 404, 81, &w)) {
		CHECK(0, "setup: out of memory");
		return;
	}
	pass_model("qwen2 HD 64", &w, 0.15);
	iapo_free_aligned(w.block);
}

int main(void)
{
	RUN(test_attention);
	RUN(test_pass);
	TEST_END();
}
