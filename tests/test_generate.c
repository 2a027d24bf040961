/*
 * test_generate.c — the generation loop on tiny random models: greedy output
 * equals the argmax of full-forward logits step by step (all three
 * families, ragged batch); eos ends a sequence with the eos token kept in the
 * tokens and left out of the text; stop strings cut text and tokens (with a
 * real byte-level tokenizer written by the tokenizer module); a seed gives the
 * same completions and another seed others; a sequence sampled alone equals
 * the same sequence in a batch of 4 with the same stream key, also when its
 * batch mates finish early; argument errors. Decoding from weight packs
 * (the default, iapo_gen_opts.pack): the same tokens as from the rows, the
 * sampling entropies within 1e-4 (fp32) / 1e-2 (bf16) nats, taken by
 * default only into a caller's cache with decoding steps; a caller's cache is left
 * reading the rows (a few-row forward after the call has the bits of a cache
 * that never packed). keep_packs: a later call of the same weights keeps the
 * packs with a fresh cache's bits; a call after the weights changed repacks.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "kernels/gemm.h"
#include "model/generate.h"
#include "test.h"
#include "test_decode_models.h"

static const int never[1] = {-1}; /* an eos list nothing matches */

/* Greedy decoding of max_new tokens that no eos stops; sampling tests set
 * a sampler and seed on top. */
static iapo_gen_opts opts_greedy(int max_new)
{
	iapo_gen_opts o;
	memset(&o, 0, sizeof o);
	o.max_new_tokens = max_new;
	o.eos_ids = never;
	o.n_eos = 1;
	return o;
}

static void greedy_for(int kind)
{
	iapo_weights w;
	iapo_fwd *f = NULL;
	if (tiny_weights(kind, 50 + kind, &w) ||
	    iapo_fwd_new_params(&w.cfg, &w.p, 1, 64, 0, &f) != IAPO_OK) {
		CHECK(0, "setup: %s", iapo_errmsg());
		return;
	}
	const int V = w.cfg.V, B = 3, max_new = 14;
	int p0[] = {3, 14, 15, 9, 2, 6}, p1[] = {27}, p2[] = {1, 1, 2, 3, 5, 8, 13, 21, 34, 55};
	const int *prompts[3] = {p0, p1, p2};
	int lens[3] = {6, 1, 10};
	iapo_gen_opts o = opts_greedy(max_new);
	o.weights = IAPO_GEN_WEIGHTS_FP32; /* the fp32 model exactly (bf16 sampling: test_decode_bf16.c) */
	iapo_gen_result res[3];
	iapo_gen_stats stats;
	CHECK(iapo_generate(&w, prompts, lens, B, &o, NULL, res, &stats) == IAPO_OK, "%s", iapo_errmsg());
	float *ref = malloc(sizeof(float) * V), *all = malloc(sizeof(float) * 64 * V);
	for (int b = 0; b < B; b++) {
		CHECK(res[b].n_tokens == max_new && res[b].finish == IAPO_FINISH_LENGTH, "%s seq %d: %d tokens, %s",
		      tiny_names[kind], b, res[b].n_tokens, iapo_finish_str(res[b].finish));
		CHECK(res[b].text == NULL, "no tokenizer, no text");
		int seq[64];
		memcpy(seq, prompts[b], sizeof(int) * lens[b]);
		for (int k = 0; k < res[b].n_tokens; k++) {
			tiny_full_logits(&w, f, seq, lens[b] + k, ref, all);
			int want = iapo_sample_argmax(ref, V);
			CHECK(res[b].tokens[k] == want, "%s seq %d token %d: %d, full-forward argmax %d", tiny_names[kind],
			      b, k, res[b].tokens[k], want);
			if (res[b].tokens[k] != want) break;
			seq[lens[b] + k] = want;
		}
	}
	CHECK(stats.prompt_tokens == 17 && stats.generated_tokens == 3 * max_new && stats.steps == max_new - 1,
	      "stats: %ld prompt, %ld generated, %d steps", stats.prompt_tokens, stats.generated_tokens, stats.steps);
	iapo_gen_results_free(res, B);
	free(ref);
	free(all);
	iapo_fwd_free(f);
	iapo_free_aligned(w.block);
}

static void test_greedy_qwen2(void) { greedy_for(TINY_QWEN2); }
static void test_greedy_llama(void) { greedy_for(TINY_LLAMA); }
static void test_greedy_qwen3(void) { greedy_for(TINY_QWEN3); }

static void test_eos(void)
{
	iapo_weights w;
	if (tiny_weights(TINY_QWEN2, 3, &w)) return;
	int p[] = {5, 6, 7};
	const int *prompts[1] = {p};
	int lens[1] = {3};
	iapo_gen_opts o = opts_greedy(20);
	iapo_gen_result full[1], cut[1];
	CHECK(iapo_generate(&w, prompts, lens, 1, &o, NULL, full, NULL) == IAPO_OK, "%s", iapo_errmsg());
	/* make the 6th token (its first occurrence) the eos */
	int e = full[0].tokens[5], k0 = 0;
	while (full[0].tokens[k0] != e) k0++;
	int eos[2] = {1000, e};
	o.eos_ids = eos;
	o.n_eos = 2;
	CHECK(iapo_generate(&w, prompts, lens, 1, &o, NULL, cut, NULL) == IAPO_OK, "%s", iapo_errmsg());
	CHECK(cut[0].finish == IAPO_FINISH_EOS, "finish %s", iapo_finish_str(cut[0].finish));
	CHECK(cut[0].n_tokens == k0 + 1 && cut[0].n_text_tokens == k0, "%d tokens (%d text), expected %d",
	      cut[0].n_tokens, cut[0].n_text_tokens, k0 + 1);
	CHECK(!memcmp(cut[0].tokens, full[0].tokens, sizeof(int) * (size_t)(k0 + 1)), "same tokens up to the eos");
	/* the config's eos ids apply when none are given */
	o.eos_ids = NULL;
	o.n_eos = 0;
	w.cfg.eos_ids[0] = e;
	iapo_gen_result dflt[1];
	CHECK(iapo_generate(&w, prompts, lens, 1, &o, NULL, dflt, NULL) == IAPO_OK, "%s", iapo_errmsg());
	CHECK(dflt[0].finish == IAPO_FINISH_EOS && dflt[0].n_tokens == k0 + 1, "config eos: %s after %d",
	      iapo_finish_str(dflt[0].finish), dflt[0].n_tokens);
	iapo_gen_results_free(full, 1);
	iapo_gen_results_free(cut, 1);
	iapo_gen_results_free(dflt, 1);
	iapo_free_aligned(w.block);
}

/* A byte-level tokenizer (ids 0..255 bytes, 256.. added tokens) and a model of its size. */
static iapo_tokenizer *byte_tokenizer(void)
{
	char dir[512];
	snprintf(dir, sizeof dir, "%s/gen_tok", test_env("IAPO_TMP", "/tmp"));
	iapo_tokenizer *t = NULL;
	if (iapo_tokenizer_write_bytelevel(dir, NULL, 0) != IAPO_OK || iapo_tokenizer_load(dir, &t) != IAPO_OK) {
		CHECK(0, "tokenizer: %s", iapo_errmsg());
		return NULL;
	}
	return t;
}

static void test_stop_strings(void)
{
	iapo_tokenizer *t = byte_tokenizer();
	if (!t) return;
	const int V = iapo_tokenizer_vocab_size(t);
	iapo_weights w;
	if (tiny_weights_v(TINY_QWEN3, 11, V, &w)) return;
	int p[] = {'H', 'i', ':', ' '};
	const int *prompts[1] = {p};
	int lens[1] = {4};
	iapo_gen_opts o = opts_greedy(40);
	o.tok = t;
	iapo_gen_result full[1];
	CHECK(iapo_generate(&w, prompts, lens, 1, &o, NULL, full, NULL) == IAPO_OK, "%s", iapo_errmsg());
	/* the text is the decode of the tokens */
	char *dec = NULL;
	size_t dlen = 0, dcap = 0;
	iapo_tokenizer_decode(t, full[0].tokens, (size_t)full[0].n_tokens, 1, &dec, &dlen, &dcap);
	CHECK(full[0].text && dlen == full[0].text_len && !memcmp(dec, full[0].text, dlen), "text = decode(tokens)");
	/* text length after each token */
	size_t offs[41] = {0};
	for (int k = 0; k < full[0].n_tokens; k++) {
		iapo_tokenizer_decode(t, full[0].tokens, (size_t)k + 1, 1, &dec, &dlen, &dcap);
		offs[k + 1] = dlen;
	}
	size_t T = full[0].text_len;
	CHECK(T >= 12, "need a completion with text (got %zu bytes)", T);
	if (T < 12) goto out;
	/* stop string: 3 bytes from the middle; expected cut at its first occurrence */
	char stop[4], other[3];
	memcpy(stop, full[0].text + T / 2, 3);
	stop[3] = 0;
	memcpy(other, full[0].text + T - 2, 2); /* later in the text: must lose to the earlier one */
	other[2] = 0;
	/* Reference: the first token after which the text holds a stop string;
	 * the earliest occurrence then is where the text is cut. */
	const char *stops[2] = {stop, other};
	int k_stop = 0, which = -1;
	size_t at = 0;
	while (which < 0 && k_stop < full[0].n_tokens) {
		k_stop++;
		for (int i = 0; i < 2; i++) {
			const char *h = memmem(full[0].text, offs[k_stop], stops[i], strlen(stops[i]));
			if (h && (which < 0 || (size_t)(h - full[0].text) < at)) {
				at = (size_t)(h - full[0].text);
				which = i;
			}
		}
	}
	int k_text = k_stop;
	while (k_text > 0 && offs[k_text] > at) k_text--;
	o.stop = stops;
	o.n_stop = 2;
	iapo_gen_result cut[1];
	CHECK(iapo_generate(&w, prompts, lens, 1, &o, NULL, cut, NULL) == IAPO_OK, "%s", iapo_errmsg());
	CHECK(cut[0].finish == IAPO_FINISH_STOP && cut[0].stop_index == which, "finish %s, stop %d (expected %d)",
	      iapo_finish_str(cut[0].finish), cut[0].stop_index, which);
	CHECK(cut[0].text_len == at && !memcmp(cut[0].text, full[0].text, at) && cut[0].text[at] == 0,
	      "text cut before the stop string: %zu bytes, expected %zu", cut[0].text_len, at);
	CHECK(cut[0].n_tokens == k_stop && cut[0].n_text_tokens == k_text, "tokens %d (text %d), expected %d (%d)",
	      cut[0].n_tokens, cut[0].n_text_tokens, k_stop, k_text);
	CHECK(!memcmp(cut[0].tokens, full[0].tokens, sizeof(int) * (size_t)k_stop), "same tokens up to the stop");
	iapo_gen_results_free(cut, 1);
	/* a stop string that never occurs changes nothing */
	const char *none[1] = {"\x01\x02\x03zzz-not-there"};
	o.stop = none;
	o.n_stop = 1;
	CHECK(iapo_generate(&w, prompts, lens, 1, &o, NULL, cut, NULL) == IAPO_OK, "%s", iapo_errmsg());
	CHECK(cut[0].finish == IAPO_FINISH_LENGTH && cut[0].n_tokens == 40 && cut[0].text_len == T,
	      "absent stop string: %s, %d tokens", iapo_finish_str(cut[0].finish), cut[0].n_tokens);
	iapo_gen_results_free(cut, 1);
out:
	iapo_free(dec);
	iapo_gen_results_free(full, 1);
	iapo_tokenizer_free(t);
	iapo_free_aligned(w.block);
}

static int same_result(const iapo_gen_result *a, const iapo_gen_result *b)
{
	return a->n_tokens == b->n_tokens && a->finish == b->finish &&
	       !memcmp(a->tokens, b->tokens, sizeof(int) * (size_t)a->n_tokens);
}

static void test_seed_and_batch_independence(void)
{
	iapo_weights w;
	if (tiny_weights(TINY_LLAMA, 21, &w)) return;
	int a[] = {1, 2, 3}, b[] = {40, 41}, c[] = {7, 8, 9, 10, 11, 12, 13}, d[] = {99};
	const int *prompts[4] = {a, b, c, d};
	int lens[4] = {3, 2, 7, 1};
	iapo_gen_opts o = opts_greedy(24);
	o.sampler = (iapo_sampler){1.0f, 30, 0.95f};
	o.seed = 1234;
	iapo_gen_result r1[4], r2[4], r3[4], solo[1];
	CHECK(iapo_generate(&w, prompts, lens, 4, &o, NULL, r1, NULL) == IAPO_OK, "%s", iapo_errmsg());
	CHECK(iapo_generate(&w, prompts, lens, 4, &o, NULL, r2, NULL) == IAPO_OK, "%s", iapo_errmsg());
	int same = 1;
	for (int i = 0; i < 4; i++) same &= same_result(&r1[i], &r2[i]);
	CHECK(same, "same seed, different completions");
	o.seed = 1235;
	CHECK(iapo_generate(&w, prompts, lens, 4, &o, NULL, r3, NULL) == IAPO_OK, "%s", iapo_errmsg());
	int differ = 0;
	for (int i = 0; i < 4; i++) differ += !same_result(&r1[i], &r3[i]);
	CHECK(differ >= 3, "another seed changed only %d of 4 completions", differ);
	iapo_gen_results_free(r3, 4);
	/* each sequence alone, with its batch index as key, equals its batch result */
	o.seed = 1234;
	for (int i = 0; i < 4; i++) {
		uint64_t key = (uint64_t)i;
		o.keys = &key;
		CHECK(iapo_generate(&w, &prompts[i], &lens[i], 1, &o, NULL, solo, NULL) == IAPO_OK, "%s",
		      iapo_errmsg());
		CHECK(same_result(&solo[0], &r1[i]), "sequence %d alone differs from its batch result", i);
		iapo_gen_results_free(solo, 1);
	}
	/* batch mates that finish early (eos) do not change a sequence's sample */
	int eos[1] = {r1[0].tokens[2]};
	o.eos_ids = eos;
	o.keys = NULL;
	CHECK(iapo_generate(&w, prompts, lens, 4, &o, NULL, r3, NULL) == IAPO_OK, "%s", iapo_errmsg());
	CHECK(r3[0].finish == IAPO_FINISH_EOS && r3[0].n_tokens <= 3, "sequence 0 ends at its eos");
	for (int i = 0; i < 4; i++) {
		uint64_t key = (uint64_t)i;
		o.keys = &key;
		iapo_generate(&w, &prompts[i], &lens[i], 1, &o, NULL, solo, NULL);
		CHECK(same_result(&solo[0], &r3[i]), "with eos: sequence %d alone differs from its batch result", i);
		iapo_gen_results_free(solo, 1);
	}
	/* a caller's cache is reused and must be large enough */
	iapo_kv *kv = NULL;
	o.keys = NULL;
	o.eos_ids = never;
	CHECK(iapo_kv_new(&w, 4, 7 + 24 - 1, &kv) == IAPO_OK, "%s", iapo_errmsg());
	iapo_gen_result r4[4];
	for (int rep = 0; rep < 2; rep++) {
		CHECK(iapo_generate(&w, prompts, lens, 4, &o, kv, r4, NULL) == IAPO_OK, "%s", iapo_errmsg());
		for (int i = 0; i < 4; i++) CHECK(same_result(&r4[i], &r1[i]), "reused cache, rep %d, seq %d", rep, i);
		iapo_gen_results_free(r4, 4);
	}
	o.max_new_tokens = 25;
	CHECK(iapo_generate(&w, prompts, lens, 4, &o, kv, r4, NULL) == IAPO_ERR_ARG, "cache too short");
	iapo_kv_free(kv);
	iapo_gen_results_free(r1, 4);
	iapo_gen_results_free(r2, 4);
	iapo_gen_results_free(r3, 4);
	iapo_free_aligned(w.block);
}

/* Sequences 0..3 sampled (temperature 1, top-k/top-p on) through a caller's
 * cache with the packs on and off, fp32 or bf16 weights: the tokens must be
 * the same and the entropies of the distributions they were drawn from
 * within tol (rounding only: each decoding product's sums in another order),
 * and on CPUs whose packs hold panels the entropies must differ somewhere
 * (the packs were read). */
static void packs_for(int kind, int weights, double tol)
{
	iapo_weights w;
	if (tiny_weights(kind, 60 + kind, &w)) {
		CHECK(0, "setup: %s", iapo_errmsg());
		return;
	}
	int a[] = {1, 2, 3}, b[] = {40, 41}, c[] = {7, 8, 9, 10, 11, 12, 13}, d[] = {50};
	const int *prompts[4] = {a, b, c, d};
	int lens[4] = {3, 2, 7, 1};
	enum { NEW = 20 };
	iapo_gen_opts o = opts_greedy(NEW);
	o.sampler = (iapo_sampler){1.0f, 30, 0.95f};
	o.seed = 99;
	o.entropy_temperature = 1.0f;
	o.weights = weights;
	iapo_kv *kv[2] = {NULL, NULL};
	iapo_gen_result r[2][4];
	iapo_gen_stats st[2];
	memset(r, 0, sizeof r); /* comparable and freeable after a failed call */
	memset(st, 0, sizeof st);
	for (int p = 0; p < 2; p++) {
		o.pack = p ? IAPO_GEN_PACK_ON : IAPO_GEN_PACK_OFF;
		CHECK(iapo_kv_new(&w, 4, 7 + NEW, &kv[p]) == IAPO_OK, "%s", iapo_errmsg());
		CHECK(kv[p] && iapo_generate(&w, prompts, lens, 4, &o, kv[p], r[p], &st[p]) == IAPO_OK, "%s",
		      iapo_errmsg());
	}
	const char *wn = weights == IAPO_GEN_WEIGHTS_BF16 ? "bf16" : "fp32";
	CHECK(st[0].packed == 0 && st[1].packed == 1, "%s %s: packed %d (off) / %d (on)", tiny_names[kind], wn,
	      st[0].packed, st[1].packed);
	double worst = 0;
	int differ = 0;
	for (int i = 0; i < 4; i++) {
		CHECK(same_result(&r[0][i], &r[1][i]), "%s %s seq %d: other tokens from the packs", tiny_names[kind], wn,
		      i);
		const int n = r[0][i].n_tokens < r[1][i].n_tokens ? r[0][i].n_tokens : r[1][i].n_tokens;
		for (int k = 0; k < n && r[0][i].entropy && r[1][i].entropy; k++) {
			double e = fabs((double)r[0][i].entropy[k] - r[1][i].entropy[k]);
			worst = e > worst ? e : worst;
			differ |= r[0][i].entropy[k] != r[1][i].entropy[k];
		}
	}
	CHECK(worst <= tol, "%s %s: entropies from packs vs rows differ by %.3g nats (tolerance %.0e)",
	      tiny_names[kind], wn, worst, tol);
	const int panels = iapo_sgemm_avx512() &&
			   (weights != IAPO_GEN_WEIGHTS_BF16 || __builtin_cpu_supports("avx512bf16"));
	if (panels)
		CHECK(differ, "%s %s: the decoding steps did not read the packs (same bits as the rows)",
		      tiny_names[kind], wn);
	fprintf(stderr, "  packs %s %s: entropies within %.2g nats of the rows'\n", tiny_names[kind], wn, worst);
	for (int p = 0; p < 2; p++) {
		iapo_gen_results_free(r[p], 4);
		iapo_kv_free(kv[p]);
	}
	iapo_free_aligned(w.block);
}

static void test_packs_match_rows(void)
{
	for (int kind = 0; kind < TINY_NUM; kind++) {
		packs_for(kind, IAPO_GEN_WEIGHTS_FP32, 1e-4);
		/* bf16: a last-bit difference in an fp32 activation can round it
		 * to the neighbouring bf16 before the next product (measured up to
		 * 0.0021 nats) */
		packs_for(kind, IAPO_GEN_WEIGHTS_BF16, 1e-2);
	}
}

/* The default packs into a caller's cache when there are decoding steps,
 * never into its own (one-shot) cache; OFF never; ON into its own too. */
static void test_packs_default(void)
{
	iapo_weights w;
	if (tiny_weights(TINY_QWEN2, 5, &w)) return;
	int a[] = {1, 2, 3};
	const int *prompts[1] = {a};
	int lens[1] = {3};
	iapo_gen_opts o = opts_greedy(4);
	iapo_gen_result r[1];
	iapo_gen_stats st;
	iapo_kv *kv = NULL;
	CHECK(iapo_kv_new(&w, 1, 8, &kv) == IAPO_OK, "%s", iapo_errmsg());
	CHECK(kv && iapo_generate(&w, prompts, lens, 1, &o, kv, r, &st) == IAPO_OK && st.packed == 1,
	      "default, a caller's cache, 4 tokens: packed %d", st.packed);
	iapo_gen_results_free(r, 1);
	CHECK(iapo_generate(&w, prompts, lens, 1, &o, NULL, r, &st) == IAPO_OK && st.packed == 0,
	      "default, its own cache: packed %d", st.packed);
	iapo_gen_results_free(r, 1);
	o.max_new_tokens = 1;
	CHECK(kv && iapo_generate(&w, prompts, lens, 1, &o, kv, r, &st) == IAPO_OK && st.packed == 0,
	      "default, 1 token (no decoding step): packed %d", st.packed);
	iapo_gen_results_free(r, 1);
	o.max_new_tokens = 4;
	o.pack = IAPO_GEN_PACK_OFF;
	CHECK(kv && iapo_generate(&w, prompts, lens, 1, &o, kv, r, &st) == IAPO_OK && st.packed == 0,
	      "off: packed %d", st.packed);
	iapo_gen_results_free(r, 1);
	o.pack = IAPO_GEN_PACK_ON;
	CHECK(iapo_generate(&w, prompts, lens, 1, &o, NULL, r, &st) == IAPO_OK && st.packed == 1,
	      "on, its own cache: packed %d", st.packed);
	iapo_gen_results_free(r, 1);
	o.pack = 3;
	CHECK(iapo_generate(&w, prompts, lens, 1, &o, NULL, r, &st) == IAPO_ERR_ARG, "pack 3: not an option");
	iapo_kv_free(kv);
	iapo_free_aligned(w.block);
}

/* After a packed call, a caller's cache reads the rows again: two caches
 * with the same K/V (one token each: the prefill alone, whose many rows read
 * packs to the bit), one of them packed by generate, then one step of 3
 * rows through each must give the same bits. In bf16 the caller keeps the
 * caches in bf16 (so the packs' precision still matches after the call). */
static void left_for(int kind, int bf16)
{
	iapo_weights w;
	if (tiny_weights(kind, 70 + kind, &w)) {
		CHECK(0, "setup: %s", iapo_errmsg());
		return;
	}
	int a[] = {1, 2, 3, 4, 5, 6, 7, 8}, b[] = {40, 41, 42, 43, 44}, c[] = {9, 8, 7, 6, 5, 4, 3, 2, 1};
	const int *prompts[3] = {a, b, c};
	int lens[3] = {8, 5, 9};
	iapo_gen_opts o = opts_greedy(1);
	o.weights = bf16 ? IAPO_GEN_WEIGHTS_BF16 : IAPO_GEN_WEIGHTS_FP32;
	o.keep_bf16 = bf16;
	iapo_kv *kv[2] = {NULL, NULL};
	iapo_gen_result r[2][3];
	const int V = w.cfg.V;
	/* zeroed, so that a cache that could not be made leaves comparable
	 * (and freeable) results behind its failed CHECK */
	memset(r, 0, sizeof r);
	float *lg[2] = {calloc((size_t)3 * V, sizeof(float)), calloc((size_t)3 * V, sizeof(float))};
	if (!lg[0] || !lg[1]) {
		CHECK(0, "%s: out of memory for the logits", tiny_names[kind]);
		free(lg[0]);
		free(lg[1]);
		iapo_free_aligned(w.block);
		return;
	}
	for (int p = 0; p < 2; p++) {
		o.pack = p ? IAPO_GEN_PACK_ON : IAPO_GEN_PACK_OFF;
		CHECK(iapo_kv_new(&w, 3, 16, &kv[p]) == IAPO_OK, "%s", iapo_errmsg());
		if (!kv[p]) continue;
		if (bf16) CHECK(iapo_kv_use_bf16(kv[p], 1) == IAPO_OK, "%s", iapo_errmsg());
		if (iapo_generate(&w, prompts, lens, 3, &o, kv[p], r[p], NULL) != IAPO_OK) {
			CHECK(0, "%s", iapo_errmsg());
			continue;
		}
		CHECK(iapo_kv_bf16(kv[p]) == bf16, "the cache back in its precision");
		const int *tok[3];
		int n[3];
		for (int i = 0; i < 3; i++) {
			tok[i] = r[p][i].tokens;
			n[i] = 1;
		}
		CHECK(iapo_kv_forward(kv[p], tok, n, lg[p]) == IAPO_OK, "%s", iapo_errmsg());
	}
	int same = 1;
	for (int i = 0; i < 3; i++) same &= same_result(&r[0][i], &r[1][i]);
	CHECK(same, "%s %s: the prefill's tokens differ (its rows read the packs to the bit)", tiny_names[kind],
	      bf16 ? "bf16" : "fp32");
	CHECK(!memcmp(lg[0], lg[1], sizeof(float) * 3 * V),
	      "%s %s: a 3-row step after a packed call did not read the rows (its logits differ from an unpacked cache's)",
	      tiny_names[kind], bf16 ? "bf16" : "fp32");
	for (int p = 0; p < 2; p++) {
		iapo_gen_results_free(r[p], 3);
		iapo_kv_free(kv[p]);
		free(lg[p]);
	}
	iapo_free_aligned(w.block);
}

static void test_packs_left_unused(void)
{
	for (int kind = 0; kind < TINY_NUM; kind++) {
		left_for(kind, 0);
		left_for(kind, 1);
	}
}

/* One half (sequences 2h, 2h + 1) of four prompts through cache kv (NULL: a
 * fresh caller's cache, which packs afresh), sampling with entropies. */
static iapo_status kept_half(const iapo_weights *w, iapo_kv *kv, int h, iapo_gen_opts *o, iapo_gen_result *r,
			     iapo_gen_stats *st)
{
	static const int a[] = {1, 2, 3}, b[] = {40, 41}, c[] = {7, 8, 9, 10, 11, 12, 13}, d[] = {50};
	static const int *const prompts[4] = {a, b, c, d};
	static const int lens[4] = {3, 2, 7, 1};
	static const uint64_t keys[4] = {11, 12, 13, 14};
	o->keys = keys + 2 * h;
	iapo_kv *own = NULL;
	if (!kv) {
		iapo_status s = iapo_kv_new(w, 2, 7 + o->max_new_tokens, &own);
		if (s != IAPO_OK) return s;
		kv = own;
	}
	iapo_status s = iapo_generate(w, (const int *const *)prompts + 2 * h, lens + 2 * h, 2, o, kv, r, st);
	iapo_kv_free(own);
	return s;
}

/* Same tokens and the same entropy bits. */
static int same_bits(const iapo_gen_result *a, const iapo_gen_result *b)
{
	return same_result(a, b) && a->entropy && b->entropy &&
	       !memcmp(a->entropy, b->entropy, sizeof(float) * (size_t)a->n_tokens);
}

/* keep_packs, as the trainer's rollout batches of one step use it: through
 * a 2-slot cache, the first half packs and the second keeps those packs,
 * with the bits of a fresh cache that packs for that half alone. Then the
 * weights change (an optimizer update) and the next step's first call,
 * without the promise, repacks: the new weights' bits, which differ from
 * the old ones'. In bf16, a call that takes a new copy (no keep_bf16)
 * cannot keep the packs of the older copy even with keep_packs. */
static void kept_for(int kind, int bf16)
{
	iapo_weights w;
	if (tiny_weights(kind, 80 + kind, &w)) {
		CHECK(0, "setup: %s", iapo_errmsg());
		return;
	}
	const char *nm = tiny_names[kind], *wn = bf16 ? "bf16" : "fp32";
	iapo_gen_opts o = opts_greedy(12);
	o.sampler = (iapo_sampler){1.0f, 30, 0.95f};
	o.seed = 5;
	o.entropy_temperature = 1.0f;
	o.weights = bf16 ? IAPO_GEN_WEIGHTS_BF16 : IAPO_GEN_WEIGHTS_FP32;
	iapo_kv *kv = NULL;
	CHECK(iapo_kv_new(&w, 2, 7 + o.max_new_tokens, &kv) == IAPO_OK, "%s", iapo_errmsg());
	iapo_gen_result r[2], f[2], old0[2];
	iapo_gen_stats st, sf;
	memset(r, 0, sizeof r);
	memset(f, 0, sizeof f);
	memset(old0, 0, sizeof old0);
	const size_t np = (size_t)iapo_param_count(&w.cfg);
	for (int step = 0; step < 3 && kv; step++) {
		if (step) /* an update: every weight moves */
			for (size_t i = 0; i < np; i++) w.block[i] *= i % 3 ? 1.08f : 0.93f;
		for (int h = 0; h < 2; h++) {
			/* step 2 (bf16): the first call promises the packs but takes a new copy */
			o.keep_packs = h || (bf16 && step == 2);
			o.keep_bf16 = h;
			if (kept_half(&w, kv, h, &o, r, &st) != IAPO_OK || kept_half(&w, NULL, h, &o, f, &sf) != IAPO_OK) {
				CHECK(0, "%s %s step %d half %d: %s", nm, wn, step, h, iapo_errmsg());
				iapo_gen_results_free(r, 2);
				iapo_gen_results_free(f, 2);
				continue;
			}
			CHECK(st.packed == 1 && st.packs_kept == h, "%s %s step %d half %d: packed %d, kept %d", nm, wn, step,
			      h, st.packed, st.packs_kept);
			CHECK(sf.packed == 1 && sf.packs_kept == 0, "%s %s: the fresh cache packed %d, kept %d", nm, wn,
			      sf.packed, sf.packs_kept);
			for (int i = 0; i < 2; i++)
				CHECK(same_bits(&r[i], &f[i]), "%s %s step %d seq %d: other bits than a fresh cache's", nm, wn,
				      step, 2 * h + i);
			if (h == 0 && step == 0) {
				memcpy(old0, r, sizeof r); /* kept for the comparison below */
				memset(r, 0, sizeof r);
			} else if (h == 0 && step == 1) {
				CHECK(!same_bits(&r[0], &old0[0]) || !same_bits(&r[1], &old0[1]),
				      "%s %s: the update did not change the samples' bits (the test cannot see stale packs)",
				      nm, wn);
			}
			iapo_gen_results_free(r, 2);
			iapo_gen_results_free(f, 2);
		}
	}
	iapo_gen_results_free(old0, 2);
	iapo_kv_free(kv);
	iapo_free_aligned(w.block);
}

static void test_packs_kept(void)
{
	for (int kind = 0; kind < TINY_NUM; kind++) {
		kept_for(kind, 0);
		kept_for(kind, 1);
	}
}

static void test_errors(void)
{
	iapo_weights w;
	if (tiny_weights(TINY_QWEN2, 1, &w)) return;
	int p[] = {1, 2}, badp[] = {1, 500};
	const int *prompts[1] = {p};
	int lens[1] = {0};
	iapo_gen_opts o = opts_greedy(4);
	iapo_gen_result r[1];
	CHECK(iapo_generate(&w, prompts, lens, 1, &o, NULL, r, NULL) == IAPO_ERR_ARG, "empty prompt");
	lens[0] = 2;
	const char *stops[1] = {"x"};
	o.stop = stops;
	o.n_stop = 1;
	CHECK(iapo_generate(&w, prompts, lens, 1, &o, NULL, r, NULL) == IAPO_ERR_ARG, "stop strings need a tokenizer");
	o.n_stop = 0;
	prompts[0] = badp;
	CHECK(iapo_generate(&w, prompts, lens, 1, &o, NULL, r, NULL) == IAPO_ERR_ARG, "token out of range");
	prompts[0] = p;
	o.max_new_tokens = 0;
	CHECK(iapo_generate(&w, prompts, lens, 1, &o, NULL, r, NULL) == IAPO_OK && r[0].n_tokens == 0 &&
		      r[0].finish == IAPO_FINISH_LENGTH,
	      "zero new tokens");
	iapo_gen_results_free(r, 1);
	/* allocation failures are reported and leak nothing */
	o.max_new_tokens = 3;
	for (unsigned long i = 1; i < 60; i++) {
		iapo_mem_fail_after(i);
		iapo_status st = iapo_generate(&w, prompts, lens, 1, &o, NULL, r, NULL);
		iapo_mem_fail_after(0);
		if (st == IAPO_OK) {
			iapo_gen_results_free(r, 1);
			break;
		}
		CHECK(st == IAPO_ERR_NOMEM && r[0].tokens == NULL, "allocation %lu: status %d", i, st);
	}
	iapo_free_aligned(w.block);
}

int main(void)
{
	RUN(test_greedy_qwen2);
	RUN(test_greedy_llama);
	RUN(test_greedy_qwen3);
	RUN(test_eos);
	RUN(test_stop_strings);
	RUN(test_seed_and_batch_independence);
	RUN(test_packs_match_rows);
	RUN(test_packs_default);
	RUN(test_packs_left_unused);
	RUN(test_packs_kept);
	RUN(test_errors);
	TEST_END();
}
