/*
 * test_info_attend.c — the cached attention that the IAPO information pass
 * runs (model/kvcache.c): blocks of many positions' postfix rows scored
 * together against each key tile, each row masked to its own prefix and its
 * own earlier postfix rows. For head dims 16, 24 (the plain path), 32, 48,
 * 64, 80 and 128 and GQA groups 1, 2 and 7, on two cached sequences with
 * prefixes that end on and around the tile edges (1..2, 15..17, 31..33,
 * 63..66, 127..129 keys) and postfix spans in a scratch slot that straddle a
 * tile edge:
 *  - every position's logits equal the training forward of prefix + postfix
 *    (tolerance: a wrong mask, tile edge or slot shows up far above it);
 *  - the same rows in another order (blocks of other rows, or of one row),
 *    on one thread instead of two, give the same bits: each row's sums do
 *    not depend on which rows share its block;
 *  - every position twice in one call (enough rows of few tokens for layer
 *    0 to compute q/k/v once per distinct token): the same bits again.
 * test_decode.c covers decoding and prefill through the same kernel.
 * Also: the SwiGLU that the cached and the training forward share
 * (iapo_swiglu_forward, AVX-512 code where the CPU has it) gives the bits of
 * its formula in plain C (ref_swiglu), on 1 and 2 threads, for gates over the
 * whole float range (both clamps of its exponential, their edges, zeros,
 * denormals, infinities, NaN; NaN in up) and lengths with every tail.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "core/status.h"
#include "kernels/kernels.h"
#include "model/kvcache.h"
#include "test.h"
#include "test_decode_models.h"

#define TOL 1e-4
#define K 3     /* postfix rows per position */
#define TMAX 200
#define BASE 41 /* first scratch entry: position 7's span [62, 65) straddles key 64 */

/* A Qwen2 tiny model with other head shapes (its own random stream). */
static int make_model(int NH, int NKV, int HD, uint64_t seed, iapo_weights *w)
{
	iapo_config c = tiny_config(TINY_QWEN2);
	c.NH = NH;
	c.NKV = NKV;
	c.HD = HD;
	return tiny_weights_cfg(&c, seed, 78, w);
}

typedef struct {
	int seq, len0; /* the cached sequence and the prefix the position's postfix follows */
} position;

static const position POS[] = {
	{0, 1},  {0, 2},  {0, 15}, {0, 16}, {0, 17}, {0, 63}, {0, 64},  {0, 65},  {0, 66},  {0, 100},
	{0, 127}, {0, 128}, {0, 129}, {0, 140}, {1, 1}, {1, 31}, {1, 32}, {1, 33}, {1, 63}, {1, 64},
	{1, 65}, {1, 70},
};
#define NP ((int)(sizeof POS / sizeof POS[0]))

/* Row i of position j at index `at` of rows; scratch slot 2. */
static void make_row(iapo_kv_row *rows, int at, int j, int i, const int *post)
{
	iapo_kv_row *w = &rows[at];
	const int base = BASE + K * j;
	w->token = post[i];
	w->pos = POS[j].len0 + i;
	w->seq = 2;
	w->slot = base + i;
	w->keys = (iapo_kv_keys){.seq0 = POS[j].seq, .len0 = POS[j].len0, .seq1 = 2, .start1 = base, .len1 = i + 1};
	w->out = i == K - 1 ? j : -1;
}

static void one_shape(int NH, int NKV, int HD)
{
	iapo_weights w;
	iapo_fwd *f = NULL;
	iapo_kv *kv = NULL;
	if (make_model(NH, NKV, HD, 500 + (uint64_t)HD * 16 + (uint64_t)NH, &w)) {
		CHECK(0, "setup: out of memory");
		return;
	}
	CHECK(iapo_fwd_new_params(&w.cfg, &w.p, 1, TMAX, 0, &f) == IAPO_OK, "fwd: %s", iapo_errmsg());
	CHECK(iapo_kv_new(&w, 4, TMAX, &kv) == IAPO_OK, "kv_new: %s", iapo_errmsg());
	const int V = w.cfg.V, R = NP * K;
	int seq[2][TMAX], post[K], order[NP * K];
	iapo_rng r;
	iapo_rng_seed(&r, 41, (uint64_t)HD, (uint64_t)NH, 0);
	for (int s = 0; s < 2; s++)
		for (int t = 0; t < TMAX; t++) seq[s][t] = (int)iapo_rng_below(&r, (uint64_t)V);
	for (int i = 0; i < K; i++) post[i] = (int)iapo_rng_below(&r, (uint64_t)V);
	iapo_kv_row *rows = malloc(sizeof(iapo_kv_row) * R), *rows2 = malloc(sizeof(iapo_kv_row) * 2 * R);
	float *b2 = malloc(sizeof(float) * 2 * NP * V);
	float *a = malloc(sizeof(float) * NP * V), *b = malloc(sizeof(float) * NP * V);
	float *ref = malloc(sizeof(float) * V), *all = malloc(sizeof(float) * TMAX * V);
	float *lg = malloc(sizeof(float) * 4 * V);
	if (!f || !kv || !rows || !rows2 || !b2 || !a || !b || !ref || !all || !lg) goto done;
	const int *tok[4] = {seq[0], seq[1], NULL, NULL};
	int n[4] = {140, 70, 0, 0};
	CHECK(iapo_kv_forward(kv, tok, n, lg) == IAPO_OK, "prefill: %s", iapo_errmsg());

	/* A: positions in order (blocks of consecutive positions), 2 threads */
	for (int j = 0; j < NP; j++)
		for (int i = 0; i < K; i++) make_row(rows, j * K + i, j, i, post);
	iapo_set_threads(2);
	CHECK(iapo_kv_forward_rows(kv, rows, R, a) == IAPO_OK, "rows: %s", iapo_errmsg());
	for (int j = 0; j < NP; j++) {
		int full[TMAX];
		memcpy(full, seq[POS[j].seq], sizeof(int) * (size_t)POS[j].len0);
		memcpy(full + POS[j].len0, post, sizeof post);
		if (tiny_full_logits(&w, f, full, POS[j].len0 + K, ref, all)) {
			CHECK(0, "full forward: %s", iapo_errmsg());
			continue;
		}
		double e = test_max_rel_err(a + (size_t)j * V, ref, (size_t)V);
		CHECK(e <= TOL, "NH %d NKV %d HD %d: sequence %d, prefix %d: max rel err %.3g", NH, NKV, HD, POS[j].seq,
		      POS[j].len0, e);
	}

	/* B: the same rows shuffled (other block mates, mostly blocks of one
	 * row), 1 thread: the same bits */
	for (int x = 0; x < R; x++) order[x] = x;
	for (int x = R - 1; x > 0; x--) {
		int y = (int)iapo_rng_below(&r, (uint64_t)x + 1), t = order[x];
		order[x] = order[y];
		order[y] = t;
	}
	for (int x = 0; x < R; x++) make_row(rows, x, order[x] / K, order[x] % K, post);
	iapo_set_threads(1);
	CHECK(iapo_kv_forward_rows(kv, rows, R, b) == IAPO_OK, "rows: %s", iapo_errmsg());
	CHECK(!memcmp(a, b, sizeof(float) * (size_t)NP * V), "NH %d NKV %d HD %d: shuffled rows, 1 thread: other bits",
	      NH, NKV, HD);

	/* C: positions in reverse order, 2 threads (blocks cut elsewhere) */
	for (int j = 0; j < NP; j++)
		for (int i = 0; i < K; i++) make_row(rows, (NP - 1 - j) * K + i, j, i, post);
	iapo_set_threads(2);
	CHECK(iapo_kv_forward_rows(kv, rows, R, b) == IAPO_OK, "rows: %s", iapo_errmsg());
	CHECK(!memcmp(a, b, sizeof(float) * (size_t)NP * V), "NH %d NKV %d HD %d: reversed positions: other bits", NH,
	      NKV, HD);

	/* D: every position twice (the second copy in scratch slot 3), 2R rows
	 * of K distinct tokens: enough rows (>= 128) for layer 0 to run q/k/v
	 * once per distinct token and copy them (kvcache.c share_rows; A has
	 * too few rows for it). Both copies: A's bits */
	for (int x = 0; x < 2 * R; x++) {
		const int j = (x / K) % NP, i = x % K, cp = x / R;
		make_row(rows2, x, j, i, post);
		rows2[x].seq = rows2[x].keys.seq1 = 2 + cp;
		rows2[x].out = i == K - 1 ? j + NP * cp : -1;
	}
	iapo_set_threads(2);
	CHECK(iapo_kv_forward_rows(kv, rows2, 2 * R, b2) == IAPO_OK, "rows: %s", iapo_errmsg());
	CHECK(!memcmp(a, b2, sizeof(float) * (size_t)NP * V) && !memcmp(a, b2 + (size_t)NP * V, sizeof(float) * (size_t)NP * V),
	      "NH %d NKV %d HD %d: layer 0 shared between rows of one token: other bits", NH, NKV, HD);
done:
	free(rows);
	free(rows2);
	free(b2);
	free(a);
	free(b);
	free(ref);
	free(all);
	free(lg);
	iapo_kv_free(kv);
	iapo_fwd_free(f);
	iapo_free_aligned(w.block);
}

static void test_head_dims(void)
{
	one_shape(4, 2, 32);  /* the demo's model: HD 32, groups of 2 */
	one_shape(14, 2, 64); /* qwen0.5b: groups of 7 */
	one_shape(4, 1, 128); /* HD 128, one kv head */
	one_shape(2, 2, 16);
	one_shape(2, 1, 48);  /* three column blocks */
	one_shape(4, 4, 80);  /* 64 + 16 columns */
	one_shape(2, 2, 24);  /* not a multiple of 16: the plain path */
}

/* cpu.c's exp_approx and SwiGLU formula, scalar, operation for operation
 * (no contraction under -std=c11): the bits iapo_swiglu_forward must give. */
static float ref_exp(float x)
{
	union {
		int32_t i;
		float f;
	} t, p;
	x = x < -87.3f ? -87.3f : x;
	x = x > 88.3f ? 88.3f : x;
	t.f = x * 1.44269504088896341f + 12582912.0f;
	const float fx = t.f - 12582912.0f;
	const float r = x - fx * 0.693359375f + fx * 2.12194440e-4f;
	float y = 1.9875691500e-4f;
	y = y * r + 1.3981999507e-3f;
	y = y * r + 8.3334519073e-3f;
	y = y * r + 4.1665795894e-2f;
	y = y * r + 1.6666665459e-1f;
	y = y * r + 5.0000001201e-1f;
	y = y * r * r + r + 1.0f;
	p.i = (int32_t)(((uint32_t)t.i - 0x4B400000u + 127u) << 23);
	return y * p.f;
}

static float ref_swiglu(float g, float u) { return g / (1.0f + ref_exp(-g)) * u; }

/* iapo_swiglu_forward against its formula in plain C, bit for bit. */
static void test_swiglu_bits(void)
{
	enum { N = 70000 };
	float *g = malloc(sizeof(float) * N), *u = malloc(sizeof(float) * N);
	float *a = malloc(sizeof(float) * N), *b = malloc(sizeof(float) * N);
	/* NaN gates of both signs too: cpu.c's exp_approx shifted a negative int
	 * on one (UBSan, under make test's ASan half) */
	static const float edge[] = {0.0f,  -0.0f, 1e-40f, -1e-40f,   87.3f,    -87.3f, 88.3f, -88.3f, 87.2999f, -88.3001f,
				     89.0f, -89.0f, 1e30f, -1e30f,    INFINITY, -INFINITY, 0.5f, -0.5f, 20.0f,   -20.0f,
				     NAN,   -NAN};
	const int ne = (int)(sizeof edge / sizeof edge[0]);
	iapo_rng r;
	iapo_rng_seed(&r, 11, 0, 0, 0);
	for (int i = 0; i < N; i++) {
		/* a fifth of the edges, the rest spread over [-100, 100] and [-4, 4] */
		g[i] = i % 5 == 0 ? edge[(i / 5) % ne] : i % 2 ? 200.0f * iapo_rng_float(&r) - 100.0f
								 : 8.0f * iapo_rng_float(&r) - 4.0f;
		u[i] = i % 7 == 3 ? (i % 14 == 3 ? NAN : edge[(i / 7) % ne]) : 4.0f * iapo_rng_float(&r) - 2.0f;
	}
	for (int i = 0; i < N; i++) b[i] = ref_swiglu(g[i], u[i]);
	static const int lens[] = {1, 15, 16, 17, 31, 8192, 8193, 16400, N};
	int bad = 0;
	for (int th = 1; th <= 2; th++) {
		iapo_set_threads(th);
		for (size_t l = 0; l < sizeof lens / sizeof lens[0]; l++) {
			const int n = lens[l];
			for (int i = 0; i < N; i++) a[i] = -777.0f;
			iapo_swiglu_forward(a, g, u, (size_t)n);
			for (int i = 0; i < n && bad < 5; i++)
				/* a NaN for a NaN: which operand's NaN (and sign) a product
				 * of two NaNs keeps is the compiler's choice of operand order */
				if (memcmp(&a[i], &b[i], sizeof(float)) != 0 && !(isnan(a[i]) && isnan(b[i]))) {
					fprintf(stderr, "  n=%d threads=%d: act[%d] (gate %g, up %g) = %.9g, the formula's %.9g\n", n,
						th, i, g[i], u[i], a[i], b[i]);
					bad++;
				}
			for (int i = n; i < N && bad < 5; i++)
				if (a[i] != -777.0f) fprintf(stderr, "  n=%d: wrote act[%d]\n", n, i), bad++;
		}
	}
	CHECK(bad == 0, "iapo_swiglu_forward gives its formula's bits (%d differences shown)", bad);
	free(g); free(u); free(a); free(b);
}

int main(void)
{
	(void)tiny_weights; /* the header's, for other tests */
	RUN(test_head_dims);
	RUN(test_swiglu_bits);
	TEST_END();
}
