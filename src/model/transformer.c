/*
 * transformer.c — training forward/backward of the decoder (see
 * transformer.h for the contract). One layer, in HF order:
 *   h = x + o_proj(attn(rope(qk_norm(q_proj(ln1(x)))), rope(qk_norm(k_proj(.))), v_proj(.)))
 *   y = h + down_proj(silu(gate_proj(ln2(h))) * up_proj(ln2(h)))
 * then norm and the vocabulary head (lm_head or the tied embedding).
 *
 * The batch is packed: valid tokens of row b occupy rows off[b]..off[b]+len[b]-1
 * of every (N, .) activation. With backward, each layer keeps its inputs to
 * every non-linear step in its own slot of the arena; without, all layers
 * share slot 0. The backward recomputes the SwiGLU product and, chunk by
 * chunk, the logits, rather than storing them, except when the whole batch
 * fit one chunk: then the forward's logits are still in the chunk buffer and
 * the backward uses them (a vocabulary projection saved, 9% of a qwen0.5b
 * step). Chunks are balanced (a 256-row batch in chunks of at most 220 rows
 * runs 2 x 128, not 220 + 36): the head's weight gradient is read and
 * written once per chunk, and a short chunk makes that product memory
 * bound. Gradient buffers are arena scratch reused layer after layer.
 */
#include "model/transformer.h"

#include <math.h>
#include <string.h>

#include "core/mem.h"
#include "core/status.h"
#include "kernels/kernels.h"

/* Logit floats per vocabulary chunk: about 256 MB. Small chunks make the
 * head's weight gradient (V,C) += dlogits^T x stream the whole (V,C) matrix
 * once per few rows, which is memory bound; ~256 rows at V=152k amortise it,
 * and 256 rows (one sequence of the benchmarks) fit one chunk. */
#define CHUNK_FLOATS (1u << 26)

struct iapo_fwd {
	iapo_config cfg;
	iapo_params p;
	size_t lsz[IAPO_NUM_PARAMS]; /* per-layer slice sizes */
	int Bmax, Tmax, with_backward, chunk_max, chunk;
	float temperature;

	/* last forward */
	int have_fwd, B, T, N;
	int logits_kept;             /* the chunk buffer holds the last forward's logits of all N rows */
	float temp_used;

	float *arena;
	size_t arena_floats;
	int *ints;

	/* packed batch */
	int *off, *len;              /* (B) */
	int *tok, *pos, *tgt, *bt;   /* (N): token, position, target, index b*T+t */

	/* saved activations; per layer slot when with_backward */
	float *inv_freq;             /* (HD/2) */
	float *cs;                   /* (N, HD) RoPE cos | sin of each packed row's position */
	float *res;                  /* (L+1, N, C) residual stream entering each layer, and the final one */
	float *resmid;               /* (L, N, C) after attention */
	float *ln1, *ln2;            /* (L, N, C) */
	float *rstd1, *rstd2;        /* (L, N) */
	float *qpre, *kpre;          /* (L, N, NH*HD), (L, N, NKV*HD) before q/k norm (Qwen3 only) */
	float *rstdq, *rstdk;        /* (L, N*NH), (L, N*NKV) */
	float *q, *k, *v;            /* (L, N, NH*HD), (L, N, NKV*HD) x2: after norm and RoPE */
	float *att;                  /* (L, N, NH*HD) attention output before o_proj */
	float *lse;                  /* (L, N, NH) */
	float *gate, *up;            /* (L, N, F) */
	float *hbuf;                 /* (N, F) silu(gate)*up */
	float *xf, *rstdf;           /* (N, C), (N) after the final norm */
	float *logits;               /* (chunk, V) */
	float *logp, *ent;           /* (N) packed outputs */

	/* backward scratch */
	float *dres, *dtmp;          /* (N, C) */
	float *dq, *dk, *dv;         /* (N, NH*HD), (N, NKV*HD) x2 */
	float *dks, *dvs, *datt;     /* (N, NH*HD) */
	float *dgate, *dup, *dh;     /* (N, F) */
	float *dlogp, *dent;         /* (N) */
};

void iapo_fwd_set_temperature(iapo_fwd *f, float temperature)
{
	if (f && temperature > 0 && isfinite(temperature)) f->temperature = temperature;
}

void iapo_fwd_set_chunk(iapo_fwd *f, int rows)
{
	if (!f) return;
	f->chunk = rows < 1 ? 1 : rows > f->chunk_max ? f->chunk_max : rows;
}

size_t iapo_fwd_bytes(const iapo_fwd *f)
{
	return f ? f->arena_floats * sizeof(float) : 0;
}

void iapo_fwd_free(iapo_fwd *f)
{
	if (!f) return;
	iapo_free_aligned(f->arena);
	iapo_free(f->ints);
	iapo_free(f);
}

/* Carves the arena: with base NULL it only counts. Each tensor starts on a
 * 64-byte boundary. */
static size_t carve(iapo_fwd *f, float *base)
{
	const iapo_config *c = &f->cfg;
	size_t N = (size_t)f->Bmax * f->Tmax, C = c->C, F = c->F, NH = c->NH, NKV = c->NKV;
	size_t Q = NH * c->HD, KV = NKV * c->HD;
	size_t S = f->with_backward ? (size_t)c->L : 1, R = f->with_backward ? (size_t)c->L + 1 : 1;
	size_t qk = c->qk_norm ? 1 : 0, bw = f->with_backward ? 1 : 0;
	size_t off = 0;
	struct { float **dst; size_t n; } t[] = {
		{&f->inv_freq, (size_t)c->HD / 2}, {&f->cs, N * (size_t)c->HD},
		{&f->res, R * N * C}, {&f->resmid, S * N * C},
		{&f->ln1, S * N * C}, {&f->ln2, S * N * C}, {&f->rstd1, S * N}, {&f->rstd2, S * N},
		{&f->qpre, qk * S * N * Q}, {&f->kpre, qk * S * N * KV},
		{&f->rstdq, qk * S * N * NH}, {&f->rstdk, qk * S * N * NKV},
		{&f->q, S * N * Q}, {&f->k, S * N * KV}, {&f->v, S * N * KV},
		{&f->att, S * N * Q}, {&f->lse, S * N * NH},
		{&f->gate, S * N * F}, {&f->up, S * N * F}, {&f->hbuf, N * F},
		{&f->xf, N * C}, {&f->rstdf, N}, {&f->logits, (size_t)f->chunk_max * c->V},
		{&f->logp, N}, {&f->ent, N},
		{&f->dres, bw * N * C}, {&f->dtmp, bw * N * C},
		{&f->dq, bw * N * Q}, {&f->dk, bw * N * KV}, {&f->dv, bw * N * KV},
		{&f->dks, bw * N * Q}, {&f->dvs, bw * N * Q}, {&f->datt, bw * N * Q},
		{&f->dgate, bw * N * F}, {&f->dup, bw * N * F}, {&f->dh, bw * N * F},
		{&f->dlogp, bw * N}, {&f->dent, bw * N},
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		if (base) *t[i].dst = t[i].n ? base + off : NULL;
		off += (t[i].n + 15) & ~(size_t)15;
	}
	return off;
}

iapo_status iapo_fwd_new_params(const iapo_config *cfg, const iapo_params *params, int B, int T, int with_backward,
				iapo_fwd **out)
{
	if (!out) return iapo_fail(IAPO_ERR_ARG, "iapo_fwd_new: expected an output pointer, found NULL");
	*out = NULL;
	if (!cfg || !params) return iapo_fail(IAPO_ERR_ARG, "iapo_fwd_new: expected a config and parameters, found NULL");
	IAPO_TRY(iapo_config_validate(cfg, "iapo_fwd_new"));
	if (B < 1 || T < 1 || (double)B * T > (double)(1 << 30))
		return iapo_fail(IAPO_ERR_ARG, "iapo_fwd_new: batch shape: expected B >= 1, T >= 1, B*T <= 2^30, found B=%d T=%d",
				 B, T);
	iapo_fwd *f = iapo_calloc(1, sizeof *f);
	if (!f) return iapo_fail(IAPO_ERR_NOMEM, "out of memory: iapo_fwd (%zu bytes)", sizeof *f);
	f->cfg = *cfg;
	f->p = *params;
	for (int i = 0; i < IAPO_NUM_PARAMS; i++) f->lsz[i] = iapo_param_layer_size(cfg, i);
	f->Bmax = B, f->Tmax = T, f->with_backward = with_backward ? 1 : 0;
	f->temperature = 1.0f;
	size_t N = (size_t)B * T, ch = CHUNK_FLOATS / (size_t)cfg->V;
	if (ch < 16) ch = 16;
	if (ch > N) ch = N;
	f->chunk_max = f->chunk = (int)ch;
	f->arena_floats = carve(f, NULL);
	iapo_status st;
	IAPO_CHECK(st, iapo_alloc_or_fail((void **)&f->arena, f->arena_floats * sizeof(float), "activation arena"));
	carve(f, f->arena);
	size_t nints = 2 * (size_t)B + 4 * N;
	f->ints = iapo_malloc(nints * sizeof(int));
	if (!f->ints) {
		st = iapo_fail(IAPO_ERR_NOMEM, "out of memory: token index arrays (%zu bytes)", nints * sizeof(int));
		goto fail;
	}
	f->off = f->ints, f->len = f->off + B;
	f->tok = f->len + B, f->pos = f->tok + N, f->tgt = f->pos + N, f->bt = f->tgt + N;
	iapo_rope_inv_freq(cfg, f->inv_freq);
	*out = f;
	return IAPO_OK;
fail:
	iapo_fwd_free(f);
	return st;
}

iapo_status iapo_fwd_new(const iapo_weights *w, int B, int T, int with_backward, iapo_fwd **out)
{
	if (!out) return iapo_fail(IAPO_ERR_ARG, "iapo_fwd_new: expected an output pointer, found NULL");
	if (!w || !w->block) {
		*out = NULL;
		return iapo_fail(IAPO_ERR_ARG, "iapo_fwd_new: expected loaded weights, found none");
	}
	return iapo_fwd_new_params(&w->cfg, &w->p, B, T, with_backward, out);
}

/* Per-layer views: parameters of layer l and the activation slot it uses. */
typedef struct {
	const float *ln1, *wq, *bq, *wk, *bk, *wv, *bv, *qn, *kn, *wo, *ln2, *wg, *wu, *wd;
} layer_w;

typedef struct {
	float *ln1, *wq, *bq, *wk, *bk, *wv, *bv, *qn, *kn, *wo, *ln2, *wg, *wu, *wd;
} layer_g;

static float *slice(float *t, size_t sz, int l) { return t ? t + sz * (size_t)l : NULL; }

static void layer_grads(const iapo_fwd *f, const iapo_params *g, int l, layer_g *o)
{
	const size_t *s = f->lsz;
	o->ln1 = slice(g->t[IAPO_P_LN1], s[IAPO_P_LN1], l);
	o->wq = slice(g->t[IAPO_P_WQ], s[IAPO_P_WQ], l);
	o->bq = slice(g->t[IAPO_P_BQ], s[IAPO_P_BQ], l);
	o->wk = slice(g->t[IAPO_P_WK], s[IAPO_P_WK], l);
	o->bk = slice(g->t[IAPO_P_BK], s[IAPO_P_BK], l);
	o->wv = slice(g->t[IAPO_P_WV], s[IAPO_P_WV], l);
	o->bv = slice(g->t[IAPO_P_BV], s[IAPO_P_BV], l);
	o->qn = slice(g->t[IAPO_P_QNORM], s[IAPO_P_QNORM], l);
	o->kn = slice(g->t[IAPO_P_KNORM], s[IAPO_P_KNORM], l);
	o->wo = slice(g->t[IAPO_P_WO], s[IAPO_P_WO], l);
	o->ln2 = slice(g->t[IAPO_P_LN2], s[IAPO_P_LN2], l);
	o->wg = slice(g->t[IAPO_P_WGATE], s[IAPO_P_WGATE], l);
	o->wu = slice(g->t[IAPO_P_WUP], s[IAPO_P_WUP], l);
	o->wd = slice(g->t[IAPO_P_WDOWN], s[IAPO_P_WDOWN], l);
}

static void layer_weights(const iapo_fwd *f, int l, layer_w *o)
{
	layer_g g;
	layer_grads(f, &f->p, l, &g);
	o->ln1 = g.ln1, o->wq = g.wq, o->bq = g.bq, o->wk = g.wk, o->bk = g.bk, o->wv = g.wv, o->bv = g.bv;
	o->qn = g.qn, o->kn = g.kn, o->wo = g.wo, o->ln2 = g.ln2, o->wg = g.wg, o->wu = g.wu, o->wd = g.wd;
}

/* Activation pointers of one layer slot. */
typedef struct {
	float *x, *mid, *y, *ln1, *ln2, *rstd1, *rstd2, *qpre, *kpre, *rstdq, *rstdk, *q, *k, *v, *att, *lse, *gate, *up;
} layer_a;

static void layer_acts(const iapo_fwd *f, int l, layer_a *a)
{
	const iapo_config *c = &f->cfg;
	size_t N = (size_t)f->Bmax * f->Tmax, C = c->C, Q = (size_t)c->NH * c->HD, KV = (size_t)c->NKV * c->HD;
	size_t s = f->with_backward ? (size_t)l : 0;
	a->x = f->res + s * N * C;
	a->y = f->with_backward ? f->res + (s + 1) * N * C : f->res; /* inference: in place */
	a->mid = f->resmid + s * N * C;
	a->ln1 = f->ln1 + s * N * C, a->ln2 = f->ln2 + s * N * C;
	a->rstd1 = f->rstd1 + s * N, a->rstd2 = f->rstd2 + s * N;
	a->qpre = f->qpre ? f->qpre + s * N * Q : NULL;
	a->kpre = f->kpre ? f->kpre + s * N * KV : NULL;
	a->rstdq = f->rstdq ? f->rstdq + s * N * c->NH : NULL;
	a->rstdk = f->rstdk ? f->rstdk + s * N * c->NKV : NULL;
	a->q = f->q + s * N * Q, a->k = f->k + s * N * KV, a->v = f->v + s * N * KV;
	a->att = f->att + s * N * Q, a->lse = f->lse + s * N * c->NH;
	a->gate = f->gate + s * N * c->F, a->up = f->up + s * N * c->F;
}

/* y (M,N) = x (M,K) W^T, plus bias (N) and the addend R (M,N) when not NULL. */
static iapo_gemm_op op_nt(float *y, const float *x, const float *W, int M, int N, int K, const float *bias,
			  const float *R)
{
	return (iapo_gemm_op){.transA = 0, .transB = 1, .M = M, .N = N, .K = K, .alpha = 1.0f, .beta = 0.0f,
			      .A = x, .lda = K, .B = W, .ldb = K, .C = y, .ldc = N, .R = R, .ldr = N, .bias = bias};
}

/* dx (M,N) (+)= dy (M,K) W (K,N). */
static iapo_gemm_op op_nn(float *dx, const float *dy, const float *W, int M, int N, int K, int accumulate)
{
	return (iapo_gemm_op){.transA = 0, .transB = 0, .M = M, .N = N, .K = K, .alpha = 1.0f,
			      .beta = accumulate ? 1.0f : 0.0f, .A = dy, .lda = K, .B = W, .ldb = N, .C = dx, .ldc = N};
}

/* dW (M,N) += dy^T (M,K) x (K,N): dy is (K,M), x (K,N). */
static iapo_gemm_op op_tn(float *dW, const float *dy, const float *x, int M, int N, int K)
{
	return (iapo_gemm_op){.transA = 1, .transB = 0, .M = M, .N = N, .K = K, .alpha = 1.0f, .beta = 1.0f,
			      .A = dy, .lda = M, .B = x, .ldb = N, .C = dW, .ldc = N};
}

static void layer_forward(iapo_fwd *f, int l)
{
	const iapo_config *c = &f->cfg;
	int N = f->N, C = c->C, F = c->F, NH = c->NH, NKV = c->NKV, HD = c->HD, Q = NH * HD, KV = NKV * HD;
	layer_w w;
	layer_a a;
	layer_weights(f, l, &w);
	layer_acts(f, l, &a);
	const int bias = c->qkv_bias;

	iapo_rmsnorm_forward(a.ln1, a.rstd1, a.x, w.ln1, N, C, c->rms_eps);
	/* with q/k norm the projections land in qpre/kpre and the norm writes q/k */
	float *qp = c->qk_norm ? a.qpre : a.q, *kp = c->qk_norm ? a.kpre : a.k;
	iapo_gemm_op qkv[3] = {
		op_nt(qp, a.ln1, w.wq, N, Q, C, bias ? w.bq : NULL, NULL),   // (N,Q)
		op_nt(kp, a.ln1, w.wk, N, KV, C, bias ? w.bk : NULL, NULL),  // (N,KV)
		op_nt(a.v, a.ln1, w.wv, N, KV, C, bias ? w.bv : NULL, NULL), // (N,KV)
	};
	iapo_matmul_batch(3, qkv);
	if (c->qk_norm) {
		iapo_rmsnorm_forward(a.q, a.rstdq, qp, w.qn, N * NH, HD, c->rms_eps);
		iapo_rmsnorm_forward(a.k, a.rstdk, kp, w.kn, N * NKV, HD, c->rms_eps);
	}
	iapo_rope_apply_table(a.q, NH, a.k, NKV, f->cs, N, HD, 0);
	iapo_attention_forward(a.att, a.lse, a.q, a.k, a.v, f->off, f->len, f->B, NH, NKV, HD);

	iapo_gemm_op o = op_nt(a.mid, a.att, w.wo, N, C, Q, NULL, a.x); // (N,C) = x + att Wo^T
	iapo_matmul_batch(1, &o);

	iapo_rmsnorm_forward(a.ln2, a.rstd2, a.mid, w.ln2, N, C, c->rms_eps);
	iapo_gemm_op gu[2] = {op_nt(a.gate, a.ln2, w.wg, N, F, C, NULL, NULL), // (N,F)
			      op_nt(a.up, a.ln2, w.wu, N, F, C, NULL, NULL)};
	iapo_matmul_batch(2, gu);
	iapo_swiglu_forward(f->hbuf, a.gate, a.up, (size_t)N * F);
	iapo_gemm_op d = op_nt(a.y, f->hbuf, w.wd, N, C, F, NULL, a.mid); // (N,C) = mid + h Wd^T
	iapo_matmul_batch(1, &d);
}

/* Rows per vocabulary chunk for N rows: as many chunks as the chunk size
 * needs, of equal size. */
static int chunk_rows(const iapo_fwd *f, int N)
{
	if (N <= f->chunk) return N > 0 ? N : 1;
	int nchunks = (N + f->chunk - 1) / f->chunk;
	return (N + nchunks - 1) / nchunks;
}

static const float *lm_head(const iapo_fwd *f)
{
	return f->cfg.tie_embeddings ? f->p.t[IAPO_P_EMBED] : f->p.t[IAPO_P_LMHEAD];
}

iapo_status iapo_fwd_forward(iapo_fwd *f, const int *tokens, const int *lens, const int *targets, int B, int T,
			     float *logp, float *entropy, float *logits)
{
	if (!f || !tokens || !lens || !targets)
		return iapo_fail(IAPO_ERR_ARG, "iapo_fwd_forward: expected tokens, lens and targets, found NULL");
	f->have_fwd = 0;
	f->logits_kept = 0;
	if (B < 1 || T < 1 || B > f->Bmax || T > f->Tmax)
		return iapo_fail(IAPO_ERR_ARG, "iapo_fwd_forward: batch shape: expected 1 <= B <= %d, 1 <= T <= %d, found B=%d T=%d",
				 f->Bmax, f->Tmax, B, T);
	const iapo_config *c = &f->cfg;
	int V = c->V, C = c->C;
	int N = 0;
	for (int b = 0; b < B; b++) {
		if (lens[b] < 0 || lens[b] > T)
			return iapo_fail(IAPO_ERR_ARG, "iapo_fwd_forward: lens[%d]: expected 0..%d, found %d", b, T, lens[b]);
		f->off[b] = N, f->len[b] = lens[b];
		for (int t = 0; t < lens[b]; t++, N++) {
			int tk = tokens[(size_t)b * T + t], tg = targets[(size_t)b * T + t];
			if (tk < 0 || tk >= V)
				return iapo_fail(IAPO_ERR_ARG, "iapo_fwd_forward: tokens[%d][%d]: expected a token id in 0..%d, found %d",
						 b, t, V - 1, tk);
			if (tg < -1 || tg >= V)
				return iapo_fail(IAPO_ERR_ARG, "iapo_fwd_forward: targets[%d][%d]: expected -1 or a token id in 0..%d, found %d",
						 b, t, V - 1, tg);
			f->tok[N] = tk, f->pos[N] = t, f->tgt[N] = tg, f->bt[N] = b * T + t;
		}
	}
	f->B = B, f->T = T, f->N = N, f->temp_used = f->temperature;
	iapo_rope_table(f->cs, f->pos, N, c->HD, f->inv_freq);

	iapo_embedding_forward(f->res, f->p.t[IAPO_P_EMBED], f->tok, N, C);
	for (int l = 0; l < c->L; l++) layer_forward(f, l);
	const float *xL = f->with_backward ? f->res + (size_t)c->L * f->Bmax * f->Tmax * C : f->res;
	iapo_rmsnorm_forward(f->xf, f->rstdf, xL, f->p.t[IAPO_P_NORM], N, C, c->rms_eps);

	const float *W = lm_head(f);
	const int per = chunk_rows(f, N);
	f->logits_kept = f->with_backward && per >= N;
	for (int r0 = 0; r0 < N; r0 += per) {
		int n = N - r0 < per ? N - r0 : per;
		iapo_matmul_nt(f->logits, f->xf + (size_t)r0 * C, W, n, V, C, 0); // (n,V)
		iapo_logprob_entropy_forward(f->logp + r0, f->ent + r0, f->logits, f->tgt + r0, n, V, f->temp_used);
		if (logits)
			for (int i = 0; i < n; i++)
				memcpy(logits + (size_t)f->bt[r0 + i] * V, f->logits + (size_t)i * V, sizeof(float) * (size_t)V);
	}
	/* scatter to (B,T), zeros on padding */
	size_t BT = (size_t)B * T;
	if (logp) memset(logp, 0, sizeof(float) * BT);
	if (entropy) memset(entropy, 0, sizeof(float) * BT);
	if (logits)
		for (int b = 0; b < B; b++)
			memset(logits + ((size_t)b * T + lens[b]) * V, 0, sizeof(float) * (size_t)(T - lens[b]) * V);
	for (int i = 0; i < N; i++) {
		if (logp) logp[f->bt[i]] = f->logp[i];
		if (entropy) entropy[f->bt[i]] = f->ent[i];
	}
	f->have_fwd = 1;
	return IAPO_OK;
}

static void layer_backward(iapo_fwd *f, int l, const iapo_params *g)
{
	const iapo_config *c = &f->cfg;
	int N = f->N, C = c->C, F = c->F, NH = c->NH, NKV = c->NKV, HD = c->HD, Q = NH * HD, KV = NKV * HD;
	layer_w w;
	layer_g d;
	layer_a a;
	layer_weights(f, l, &w);
	layer_grads(f, g, l, &d);
	layer_acts(f, l, &a);

	/* MLP. dres holds dL/dy; y = mid + h Wd^T, so dL/dmid starts as dres.
	 * Products that share an output run one after another; each batch pairs
	 * an input gradient with weight gradients. */
	iapo_swiglu_forward(f->hbuf, a.gate, a.up, (size_t)N * F);
	iapo_gemm_op m1[2] = {op_nn(f->dh, f->dres, w.wd, N, F, C, 0), // (N,F) = dy Wd
			      op_tn(d.wd, f->dres, f->hbuf, C, F, N)}; // (C,F) += dy^T h
	iapo_matmul_batch(2, m1);
	iapo_swiglu_backward(f->dgate, f->dup, f->dh, a.gate, a.up, (size_t)N * F);
	iapo_gemm_op m2[2] = {op_nn(f->dtmp, f->dgate, w.wg, N, C, F, 0), // (N,C) dln2
			      op_tn(d.wg, f->dgate, a.ln2, F, C, N)};
	iapo_matmul_batch(2, m2);
	iapo_gemm_op m3[2] = {op_nn(f->dtmp, f->dup, w.wu, N, C, F, 1), op_tn(d.wu, f->dup, a.ln2, F, C, N)};
	iapo_matmul_batch(2, m3);
	iapo_rmsnorm_backward(f->dres, d.ln2, f->dtmp, a.mid, w.ln2, a.rstd2, N, C);

	/* Attention. dres now holds dL/dmid; mid = x + att Wo^T. */
	iapo_gemm_op a1[2] = {op_nn(f->datt, f->dres, w.wo, N, Q, C, 0), // (N,Q)
			      op_tn(d.wo, f->dres, a.att, C, Q, N)};      // (C,Q)
	iapo_matmul_batch(2, a1);
	iapo_attention_backward(f->dq, f->dk, f->dv, f->dks, f->dvs, f->datt, a.q, a.k, a.v, a.att, a.lse,
				f->off, f->len, f->B, NH, NKV, HD);
	iapo_rope_apply_table(f->dq, NH, f->dk, NKV, f->cs, N, HD, 1);
	float *dq = f->dq, *dk = f->dk;
	if (c->qk_norm) {
		/* datt and dks are free again: they receive the pre-norm gradients */
		memset(f->datt, 0, sizeof(float) * (size_t)N * Q);
		memset(f->dks, 0, sizeof(float) * (size_t)N * KV);
		iapo_rmsnorm_backward(f->datt, d.qn, f->dq, a.qpre, w.qn, a.rstdq, N * NH, HD);
		iapo_rmsnorm_backward(f->dks, d.kn, f->dk, a.kpre, w.kn, a.rstdk, N * NKV, HD);
		dq = f->datt, dk = f->dks;
	}
	if (c->qkv_bias) {
		iapo_bias_backward(d.bq, dq, N, Q);
		iapo_bias_backward(d.bk, dk, N, KV);
		iapo_bias_backward(d.bv, f->dv, N, KV);
	}
	iapo_gemm_op q1[2] = {op_nn(f->dtmp, dq, w.wq, N, C, Q, 0), op_tn(d.wq, dq, a.ln1, Q, C, N)}; // (N,C) dln1
	iapo_matmul_batch(2, q1);
	iapo_gemm_op q2[2] = {op_nn(f->dtmp, dk, w.wk, N, C, KV, 1), op_tn(d.wk, dk, a.ln1, KV, C, N)};
	iapo_matmul_batch(2, q2);
	iapo_gemm_op q3[2] = {op_nn(f->dtmp, f->dv, w.wv, N, C, KV, 1), op_tn(d.wv, f->dv, a.ln1, KV, C, N)};
	iapo_matmul_batch(2, q3);
	iapo_rmsnorm_backward(f->dres, d.ln1, f->dtmp, a.x, w.ln1, a.rstd1, N, C);
}

iapo_status iapo_fwd_backward(iapo_fwd *f, const float *dlogp, const float *dentropy, float *grad_block)
{
	if (!f || !dlogp || !grad_block)
		return iapo_fail(IAPO_ERR_ARG, "iapo_fwd_backward: expected dlogp and a gradient block, found NULL");
	if (!f->with_backward)
		return iapo_fail(IAPO_ERR_ARG, "iapo_fwd_backward: expected an arena made with with_backward=1, found an inference one");
	if (!f->have_fwd)
		return iapo_fail(IAPO_ERR_ARG, "iapo_fwd_backward: expected a successful forward before, found none");
	const iapo_config *c = &f->cfg;
	int N = f->N, C = c->C, V = c->V;
	iapo_params g;
	iapo_params_point(c, grad_block, &g);
	for (int i = 0; i < N; i++) {
		f->dlogp[i] = f->tgt[i] >= 0 ? dlogp[f->bt[i]] : 0.0f;
		f->dent[i] = dentropy ? dentropy[f->bt[i]] : 0.0f;
	}

	/* Vocabulary head, chunk by chunk: recompute logits, turn them into
	 * dL/dlogits in place, then dxf and the head's weight gradient. */
	const float *W = lm_head(f);
	float *dW = c->tie_embeddings ? g.t[IAPO_P_EMBED] : g.t[IAPO_P_LMHEAD];
	const int per = f->logits_kept ? N : chunk_rows(f, N);
	for (int r0 = 0; r0 < N; r0 += per) {
		int n = N - r0 < per ? N - r0 : per;
		const float *x = f->xf + (size_t)r0 * C;
		if (!f->logits_kept) iapo_matmul_nt(f->logits, x, W, n, V, C, 0);
		iapo_logprob_entropy_backward(f->logits, f->dlogp + r0, f->dent + r0, f->tgt + r0, n, V, f->temp_used);
		iapo_matmul_nn(f->dtmp + (size_t)r0 * C, f->logits, W, n, C, V, 0); // (n,C)
		iapo_matmul_tn(dW, f->logits, x, V, C, n, 1);                       // (V,C)
	}
	f->logits_kept = 0; /* turned into gradients in place */
	memset(f->dres, 0, sizeof(float) * (size_t)N * C);
	const float *xL = f->res + (size_t)c->L * f->Bmax * f->Tmax * C;
	iapo_rmsnorm_backward(f->dres, g.t[IAPO_P_NORM], f->dtmp, xL, f->p.t[IAPO_P_NORM], f->rstdf, N, C);
	for (int l = c->L - 1; l >= 0; l--) layer_backward(f, l, &g);
	iapo_embedding_backward(g.t[IAPO_P_EMBED], f->dres, f->tok, N, C);
	return IAPO_OK;
}
