/*
 * test_info_split.c — iapo_kv_forward_rows_split (model/kvcache.c), which
 * the IAPO information pass runs: the two halves of a chunk side by side,
 * one per thread, the second through a copy of the cache's chunk scratch.
 * On a tiny Qwen2 cache with two prefilled sequences, 64 positions of
 * K = 2 postfix rows in scratch slot 2 and 64 in slot 3 (each half 128 rows,
 * 64 of them asking for logits):
 *  - split on 2 threads, the logits have the bits of iapo_kv_forward_rows
 *    on 1 thread: fp32, then bf16 weights and attention (the copy follows the
 *    cache's state: a copy left in fp32 gives other bits), then fp32 again;
 *  - halves that are not independent (the first half's rows read keys the
 *    second half writes in the same call) run one after the other: the bits
 *    of iapo_kv_forward_rows again, 10 times, with postfix tokens changed
 *    every call, so that keys left from an earlier call would show;
 *  - halves that cannot keep every product on its path give the whole's
 *    bits too: a first half whose logits rows end in a group of 8 (the
 *    whole's groups hold 64), one of 8 positions, and halves of 40 and 40
 *    logits rows (the whole's second group holds 16); halves of 32 and 32
 *    (the whole one group of 64) split, with the same bits.
 * And the information pass over a cache whose slots hold more positions
 * than a chunk (the trainer's lengths): with two scratch slots, each chunk's
 * halves go one to each and split (K = 3, 8 and 6 postfix tokens, fp32 and
 * bf16; K = 6 in chunks of 64 positions, whose halves hold 32 each), with
 * the bits of one scratch slot (no split) and of 1 thread.
 * On 3, 4 and 8 threads the pass splits no chunk and makes no nested pool
 * call (whose items would run on one thread), with the bits of 1 and 2
 * threads (fp32 and bf16). Injected: the halves at any thread count (the
 * code before session 17) failed both checks at 3, 4 and 8 threads.
 */
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "core/rng.h"
#include "core/status.h"
#include "kernels/kernels.h"
#include "kernels/pool.h"
#include "model/kvcache.h"
#include "rl/info.h"
#include "test.h"
#include "test_decode_models.h"

#define K 2     /* postfix rows per position */
#define NPH 64  /* positions per half */
#define TMAX 200

/* Row i of position j: its K/V in scratch slot `slot`, entry K e + i; the
 * prefix 3 + (j * 7) % 60 of sequence j % 2, then the position's rows
 * 0..i; logits row j. */
static void make_row(iapo_kv_row *w, int slot, int e, int j, int i, const int *post)
{
	const int base = K * e, len0 = 3 + (j * 7) % 60;
	w->token = post[i];
	w->pos = len0 + i;
	w->seq = slot;
	w->slot = base + i;
	w->keys = (iapo_kv_keys){.seq0 = j % 2, .len0 = len0, .seq1 = slot, .start1 = base, .len1 = i + 1};
	w->out = i == K - 1 ? j : -1;
}

/* Positions [0, n0) in slot 2, then [n0, n0 + n1) in slot 3, rows of one
 * position together; returns the rows. */
static int two_slots(iapo_kv_row *rows, int n0, int n1, const int *post)
{
	int x = 0;
	for (int j = 0; j < n0 + n1; j++)
		for (int i = 0; i < K; i++) make_row(&rows[x++], j < n0 ? 2 : 3, j < n0 ? j : j - n0, j, i, post);
	return x;
}

/* Both tests' model (a tiny Qwen2) and its cache of 4 slots of tmax
 * positions; -1 (a failed check) when the weights cannot be had, *kv NULL
 * (a failed check) when the cache cannot. */
static int tiny_cache(iapo_weights *w, int tmax, iapo_kv **kv)
{
	iapo_config cfg = tiny_config(TINY_QWEN2);
	if (tiny_weights_cfg(&cfg, 611, 79, w)) {
		CHECK(0, "setup: out of memory");
		return -1;
	}
	CHECK(iapo_kv_new(w, 4, tmax, kv) == IAPO_OK, "kv_new: %s", iapo_errmsg());
	return 0;
}

/* Logits of rows (R of them) split at `split` on 2 threads (b), then
 * through iapo_kv_forward_rows on 1 thread (a): the same bits. The split
 * call comes first, so that it meets the keys of the call before. */
static void same_bits(iapo_kv *kv, const iapo_kv_row *rows, int R, int split, float *a, float *b, size_t n,
		      const char *what)
{
	memset(a, 0, sizeof(float) * n);
	memset(b, 0, sizeof(float) * n);
	iapo_set_threads(2);
	CHECK(iapo_kv_forward_rows_split(kv, rows, R, split, b) == IAPO_OK, "%s: split: %s", what, iapo_errmsg());
	iapo_set_threads(1);
	CHECK(iapo_kv_forward_rows(kv, rows, R, a) == IAPO_OK, "%s: rows: %s", what, iapo_errmsg());
	CHECK(!memcmp(a, b, sizeof(float) * n), "%s: split on 2 threads: other bits than 1 thread in one piece", what);
}

static void test_split(void)
{
	iapo_weights w;
	iapo_kv *kv = NULL;
	if (tiny_cache(&w, TMAX, &kv)) return;
	const int V = w.cfg.V, R = 2 * NPH * K, NO = 2 * NPH;
	int seq[2][TMAX], post[K], post2[K];
	iapo_rng r;
	iapo_rng_seed(&r, 43, 1, 2, 0);
	for (int s = 0; s < 2; s++)
		for (int t = 0; t < TMAX; t++) seq[s][t] = (int)iapo_rng_below(&r, (uint64_t)V);
	for (int i = 0; i < K; i++) post[i] = (int)iapo_rng_below(&r, (uint64_t)V), post2[i] = (post[i] + 1 + i) % V;
	iapo_kv_row *rows = malloc(sizeof(iapo_kv_row) * (R + 8 * K));
	float *a = malloc(sizeof(float) * (size_t)(NO + 8) * V), *b = malloc(sizeof(float) * (size_t)(NO + 8) * V);
	float *lg = malloc(sizeof(float) * 4 * V);
	if (!kv || !rows || !a || !b || !lg) {
		CHECK(0, "setup: %s", iapo_errmsg());
		goto done;
	}
	const int *tok[4] = {seq[0], seq[1], NULL, NULL};
	int n[4] = {140, 70, 0, 0};
	CHECK(iapo_kv_forward(kv, tok, n, lg) == IAPO_OK, "prefill: %s", iapo_errmsg());
	const size_t nl = (size_t)NO * V;

	/* independent halves: NPH positions in slot 2, NPH in slot 3 */
	two_slots(rows, NPH, NPH, post);
	same_bits(kv, rows, R, NPH * K, a, b, nl, "fp32");
	CHECK(iapo_kv_use_bf16(kv, 1) == IAPO_OK, "bf16: %s", iapo_errmsg());
	const int slots[4] = {0, 1, 2, 3};
	CHECK(iapo_kv_attn_bf16(kv, 1, slots, 4) == IAPO_OK, "bf16 attention: %s", iapo_errmsg());
	same_bits(kv, rows, R, NPH * K, a, b, nl, "bf16 weights and attention");
	CHECK(iapo_kv_attn_bf16(kv, 0, NULL, 0) == IAPO_OK, "fp32 attention: %s", iapo_errmsg());
	CHECK(iapo_kv_use_bf16(kv, 0) == IAPO_OK, "fp32: %s", iapo_errmsg());
	same_bits(kv, rows, R, NPH * K, a, b, nl, "fp32 again");

	/* dependent halves: the first half holds the second rows of positions
	 * [0, NPH), which read the first rows' keys (a chunk stores every row's
	 * K/V before any row attends), the second half those first rows and
	 * both rows of [NPH, 2 NPH). Run side by side, the short first half
	 * (the caller's item, started first) would attend before the long
	 * second one stored them; new postfix tokens every call, so that a key
	 * left from the call before would show */
	for (int round = 0; round < 10; round++) {
		const int *p = round % 2 ? post : post2;
		int y = 0;
		for (int j = 0; j < NPH; j++) make_row(&rows[y++], 2, j, j, 1, p);
		for (int j = NPH; j < NO; j++)
			for (int i = 0; i < K; i++) make_row(&rows[y++], 3, j - NPH, j, i, p);
		for (int j = 0; j < NPH; j++) make_row(&rows[y++], 2, j, j, 0, p);
		same_bits(kv, rows, R, NPH, a, b, nl, "dependent halves");
	}

	/* a first half of 72 positions: in one piece its last 8 logits rows
	 * would be a vocabulary product of their own (direct path), where the
	 * whole puts them in a group of 64: one piece */
	int x = two_slots(rows, 72, NPH, post);
	same_bits(kv, rows, x, 72 * K, a, b, (size_t)(72 + NPH) * V, "72 positions in the first half");
	/* too few rows in the first half (8 positions): one piece */
	x = two_slots(rows, 8, NPH, post);
	same_bits(kv, rows, x, 8 * K, a, b, (size_t)(8 + NPH) * V, "a short first half");
	/* 40 and 40 logits rows: the whole's last 16 take the direct path, the
	 * second half's the packed one: one piece */
	long s0 = iapo_kv_splits(kv);
	x = two_slots(rows, 40, 40, post);
	same_bits(kv, rows, x, 40 * K, a, b, (size_t)80 * V, "40 and 40 logits rows");
	CHECK(iapo_kv_splits(kv) == s0, "40 and 40 logits rows: split");
	/* 32 and 32: every group of the whole and of the halves packed: split */
	x = two_slots(rows, 32, 32, post);
	same_bits(kv, rows, x, 32 * K, a, b, (size_t)64 * V, "32 and 32 logits rows");
	CHECK(iapo_kv_splits(kv) == s0 + 1, "32 and 32 logits rows: expected a split, found %ld",
	      iapo_kv_splits(kv) - s0);
done:
	free(rows);
	free(a);
	free(b);
	free(lg);
	iapo_kv_free(kv);
	iapo_free_aligned(w.block);
}

#define PT 520 /* positions per slot: 65..173 chunk positions fit one */
#define PP 8
#define PC 150

/* Sequences 0 and 1 of kv: PP + PC tokens each, drawn from seed, all but
 * the last cached (the pass's prompts and completions). 0, or -1 after a
 * failed check. */
static int prefill_pair(const iapo_weights *w, iapo_kv *kv, uint64_t seed, int seq[2][PP + PC])
{
	iapo_rng r;
	iapo_rng_seed(&r, seed, 1, 2, 0);
	for (int s = 0; s < 2; s++)
		for (int t = 0; t < PP + PC; t++) seq[s][t] = (int)iapo_rng_below(&r, (uint64_t)w->cfg.V);
	const int *tok[4] = {seq[0], seq[1], NULL, NULL};
	int n[4] = {PP + PC - 1, PP + PC - 1, 0, 0};
	float *lg = malloc(sizeof(float) * 4 * (size_t)w->cfg.V);
	const int ok = kv && lg && iapo_kv_forward(kv, tok, n, lg) == IAPO_OK;
	free(lg);
	CHECK(ok, "setup: %s", iapo_errmsg());
	return ok ? 0 : -1;
}

/* The pass with K postfix tokens (automatic chunk) over sequences 0 and 1
 * of kv, scratch slots 2 and 3 (both, or slot 2 only), on `threads`. */
static void pass(const iapo_weights *w, iapo_kv *kv, int K_, int bf16, int nscratch, int threads, const int *const *pr,
		 const int *const *co, float *E, float *C)
{
	int post[8], plen[2] = {PP, PP}, clen[2] = {PC, PC}, slot[2] = {0, 1};
	for (int i = 0; i < K_; i++) post[i] = (13 * i + 5) % w->cfg.V;
	iapo_info_opts o = iapo_info_defaults();
	o.postfix = post;
	o.n_postfix = K_;
	o.bf16 = bf16;
	iapo_info *e = NULL;
	CHECK(iapo_info_new(w, 2, PT, &o, &e) == IAPO_OK, "info_new: %s", iapo_errmsg());
	if (!e) return;
	iapo_info_batch b = {.n = 2, .prompts = pr, .plen = plen, .comps = co, .clen = clen};
	iapo_info_cache c = {.kv = kv, .slot = slot, .scratch0 = 2, .nscratch = nscratch};
	iapo_set_threads(threads);
	CHECK(iapo_info_compute_cached(e, &c, &b, E, C, PC + 1, NULL) == IAPO_OK, "pass: %s", iapo_errmsg());
	iapo_set_threads(1);
	iapo_info_free(e);
}

static void test_pass_halves(void)
{
	iapo_weights w;
	iapo_kv *kv = NULL;
	if (tiny_cache(&w, PT, &kv)) return;
	static int seq[2][PP + PC];
	static float E[3][2 * (PC + 1)], C[3][2 * (PC + 1)];
	const int *pr[2] = {seq[0], seq[1]}, *co[2] = {seq[0] + PP, seq[1] + PP};
	if (prefill_pair(&w, kv, 47, seq)) goto done;
	/* K = 6: its rounded half (64 of 85 positions) would leave the second
	 * 21, so the pass takes chunks of 64 (32 + 32), in one slot too */
	for (int k = 0; k < 6; k++) {
		const int K_ = k < 2 ? 3 : k < 4 ? 8 : 6, bf16 = k % 2;
		const long s0 = iapo_kv_splits(kv);
		pass(&w, kv, K_, bf16, 2, 2, pr, co, E[0], C[0]);
		CHECK(iapo_kv_splits(kv) > s0, "K = %d, bf16 %d: two scratch slots on 2 threads: no split", K_, bf16);
		pass(&w, kv, K_, bf16, 1, 2, pr, co, E[1], C[1]);
		pass(&w, kv, K_, bf16, 2, 1, pr, co, E[2], C[2]);
		CHECK(!memcmp(E[0], E[1], sizeof E[0]) && !memcmp(C[0], C[1], sizeof C[0]),
		      "K = %d, bf16 %d: two scratch slots: other bits than one", K_, bf16);
		CHECK(!memcmp(E[0], E[2], sizeof E[0]) && !memcmp(C[0], C[2], sizeof C[0]),
		      "K = %d, bf16 %d: 2 threads: other bits than 1", K_, bf16);
	}
done:
	iapo_kv_free(kv);
	iapo_free_aligned(w.block);
}

/* More threads than the halves' two: the pass runs each chunk whole on
 * all of them (the halves would run each half's products and attention
 * inside a pool item, on one thread: session 16's 16-thread Xeon kept ~2
 * cores busy). The property is the plan's, not a timing: at 3, 4 and 8
 * threads no pool call of the pass runs nested (inline on one thread) and
 * no chunk splits; at 2 the halves run. E and C keep their bits at 1, 2,
 * 3, 4 and 8 threads (fp32 and bf16, K = 4 at a chunk that splits on 2). */
static void test_pass_threads(void)
{
	iapo_weights w;
	iapo_kv *kv = NULL;
	if (tiny_cache(&w, PT, &kv)) return;
	static int seq[2][PP + PC];
	static float E0[2 * (PC + 1)], C0[2 * (PC + 1)], E[2 * (PC + 1)], C[2 * (PC + 1)];
	const int *pr[2] = {seq[0], seq[1]}, *co[2] = {seq[0] + PP, seq[1] + PP};
	if (prefill_pair(&w, kv, 53, seq)) goto done;
	static const int threads[] = {1, 2, 3, 4, 8};
	for (int bf16 = 0; bf16 < 2; bf16++)
		for (size_t k = 0; k < sizeof threads / sizeof *threads; k++) {
			const int th = threads[k];
			iapo_pool_stats a;
			const long s0 = iapo_kv_splits(kv);
			iapo_pool_stats_get(&a);
			pass(&w, kv, 4, bf16, 2, th, pr, co, th == 1 ? E0 : E, th == 1 ? C0 : C);
			const iapo_pool_stats d = iapo_pool_stats_since(&a);
			const long splits = iapo_kv_splits(kv) - s0, nested = d.nested_calls;
			fprintf(stderr,
				"  bf16 %d, %d threads: %ld splits; pool calls %ld (%ld items), %ld offering an item to every "
				"thread (%ld items), %ld nested (%ld items)\n",
				bf16, th, splits, d.calls, d.items, d.full_calls, d.full_items, nested, d.nested_items);
			if (th == 1) continue;
			CHECK(!memcmp(E0, E, sizeof E) && !memcmp(C0, C, sizeof C), "bf16 %d: %d threads: other bits than 1",
			      bf16, th);
			if (th == 2) {
				CHECK(splits > 0, "bf16 %d: 2 threads: no split", bf16);
			} else {
				CHECK(splits == 0, "bf16 %d: %d threads: %ld chunks split into halves", bf16, th, splits);
				CHECK(nested == 0, "bf16 %d: %d threads: %ld pool calls ran nested, on one thread", bf16, th,
				      nested);
			}
		}
done:
	iapo_kv_free(kv);
	iapo_free_aligned(w.block);
}

int main(void)
{
	(void)tiny_weights, (void)tiny_full_logits; /* the header's, for other tests */
	RUN(test_split);
	RUN(test_pass_halves);
	RUN(test_pass_threads);
	TEST_END();
}
