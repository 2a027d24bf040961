/*
 * test_grpo_oracle.c — src/rl/grpo.c against PyTorch autograd
 * (tests/oracle/make_grpo_fixtures.sh writes build/fixtures/grpo/):
 *  1. loss.json: the clipped policy loss with k3 KL for every loss type on
 *     random inputs (ratios on both sides of both clip bounds, ragged masks, an
 *     empty row, step normalisers larger than the batch's own counts): loss,
 *     stats and dL/dlogp within 1e-5 relative, in one call and split by rows;
 *     TRL's group advantages (scaled and not) within 1e-5.
 *  2. model/: the same loss end to end through a tiny Qwen2 (same weights,
 *     tokens, advantages, old and reference log-probs, temperature 0.9):
 *     iapo_fwd_forward -> iapo_policy_loss -> iapo_fwd_backward gives the
 *     loss within 1e-4 and every parameter gradient within 1e-3 of each
 *     tensor's largest magnitude, for one batch and for the same step run as
 *     two micro-batches whose gradients accumulate.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/transformer.h"
#include "model/weights.h"
#include "rl/grpo.h"
#include "oracle_files.h"
#include "test.h"

static cJSON *load_json(const char *path)
{
	cJSON *j = oracle_json(path);
	CHECK(j != NULL, "cannot read %s (run tests/oracle/make_grpo_fixtures.sh)", path);
	return j;
}

/* A JSON number array as a fresh float array of exactly n values (NULL for JSON null). */
static float *floats(const cJSON *parent, const char *key, size_t n)
{
	const cJSON *a = cJSON_GetObjectItem(parent, key);
	if (!a || cJSON_IsNull(a)) return NULL;
	CHECK(cJSON_IsArray(a) && (size_t)cJSON_GetArraySize(a) == n, "%s: expected %zu numbers", key, n);
	float *out = calloc(n ? n : 1, sizeof(float));
	size_t i = 0;
	const cJSON *x;
	cJSON_ArrayForEach(x, a) if (i < n) out[i++] = (float)x->valuedouble;
	return out;
}

static void ints(const cJSON *parent, const char *key, int *out, int n)
{
	const cJSON *a = cJSON_GetObjectItem(parent, key);
	CHECK(cJSON_IsArray(a) && cJSON_GetArraySize(a) == n, "%s: expected %d ints", key, n);
	for (int i = 0; i < n && i < cJSON_GetArraySize(a); i++) out[i] = cJSON_GetArrayItem(a, i)->valueint;
}

static iapo_loss_opts opts_of(const cJSON *c)
{
	iapo_loss_opts o = {0};
	CHECK(iapo_loss_type_parse(cJSON_GetObjectItem(c, "type")->valuestring, &o.type) == IAPO_OK, "type");
	o.eps_low = (float)oracle_num(c, "eps_low");
	o.eps_high = (float)oracle_num(c, "eps_high");
	o.beta = (float)oracle_num(c, "beta");
	o.n_seqs = (long)oracle_num(c, "n_seqs");
	o.n_tokens = (long)oracle_num(c, "n_tokens");
	o.max_completion_len = (int)oracle_num(c, "max_completion_len");
	return o;
}

static char root[1024];

static void test_loss_cases(void)
{
	char path[1200];
	snprintf(path, sizeof path, "%s/loss.json", root);
	cJSON *j = load_json(path);
	if (!j) return;
	int n = 0;
	const cJSON *c;
	cJSON_ArrayForEach(c, cJSON_GetObjectItem(j, "cases")) {
		const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
		int B = (int)oracle_num(c, "B"), T = (int)oracle_num(c, "T");
		size_t BT = (size_t)B * T;
		iapo_loss_opts o = opts_of(c);
		float *logp = floats(c, "logp", BT), *old = floats(c, "old", BT), *ref = floats(c, "ref", BT);
		float *adv = floats(c, "adv", BT), *mask = floats(c, "mask", BT), *want = floats(c, "dlogp", BT);
		float *d = calloc(BT, 4), *d2 = calloc(BT, 4);
		iapo_loss_stats s = {0}, s2 = {0};
		iapo_status st = iapo_policy_loss(&o, B, T, logp, old, ref, adv, mask, d, &s);
		CHECK(st == IAPO_OK, "%s: %s", name, iapo_errmsg());
		double want_loss = oracle_num(c, "loss");
		CHECK(fabs(s.loss - want_loss) <= 1e-5 * fabs(want_loss), "%s: loss %.9g vs torch %.9g", name, s.loss,
		      want_loss);
		double e = test_max_rel_err(d, want, BT);
		CHECK(e <= 1e-5, "%s: dlogp max rel err %g", name, e);
		CHECK(s.tokens == oracle_num(c, "tokens"), "%s: tokens %g vs %g", name, s.tokens, oracle_num(c, "tokens"));
		CHECK(s.clipped_low == oracle_num(c, "clipped_low") && s.clipped_high == oracle_num(c, "clipped_high"),
		      "%s: clipped %g/%g vs torch %g/%g", name, s.clipped_low, s.clipped_high, oracle_num(c, "clipped_low"),
		      oracle_num(c, "clipped_high"));
		CHECK_NEAR(s.ratio_sum, oracle_num(c, "ratio_sum"), 1e-6, "ratio sum");
		CHECK_NEAR(s.kl_sum, oracle_num(c, "kl_sum"), 1e-6, "kl sum");
		/* the same call split after the first row (the empty one is row 1) */
		st = iapo_policy_loss(&o, 1, T, logp, old, ref, adv, mask, d2, &s2);
		st |= iapo_policy_loss(&o, B - 1, T, logp + T, old ? old + T : NULL, ref ? ref + T : NULL, adv + T,
				       mask + T, d2 + T, &s2);
		CHECK(st == IAPO_OK && s2.loss == s.loss && memcmp(d, d2, BT * 4) == 0, "%s: split differs", name);
		free(logp); free(old); free(ref); free(adv); free(mask); free(want); free(d); free(d2);
		n++;
	}
	CHECK(n == 9, "expected 9 cases, found %d", n);
	cJSON *a;
	n = 0;
	cJSON_ArrayForEach(a, cJSON_GetObjectItem(j, "advantages")) {
		int G = (int)oracle_num(a, "G"), scale = cJSON_IsTrue(cJSON_GetObjectItem(a, "scale"));
		int na = cJSON_GetArraySize(cJSON_GetObjectItem(a, "rewards"));
		float *r = floats(a, "rewards", na), *want = floats(a, "adv", na), *got = calloc(na, 4);
		iapo_group_advantages(r, na, G, scale, got);
		double e = test_max_rel_err(got, want, na);
		CHECK(e <= 1e-5, "advantages G=%d scale=%d: max rel err %g", G, scale, e);
		for (int i = 0; i < G; i++) CHECK(got[i] == 0.0f, "all-equal group: A[%d] = %g", i, got[i]);
		free(r); free(want); free(got);
		n++;
	}
	CHECK(n == 4, "expected 4 advantage sets, found %d", n);
	cJSON_Delete(j);
}

static void test_model_end_to_end(void)
{
	char dir[1200], path[1300], mdir[1400];
	snprintf(dir, sizeof dir, "%s/model", root);
	snprintf(path, sizeof path, "%s/manifest.json", dir);
	cJSON *m = load_json(path);
	if (!m) return;
	snprintf(mdir, sizeof mdir, "%s/%s", dir, cJSON_GetObjectItem(m, "dir")->valuestring);
	int B = (int)oracle_num(m, "B"), T = (int)oracle_num(m, "T"), G = (int)oracle_num(m, "G");
	size_t BT = (size_t)B * T;
	int *lens = calloc(B, sizeof(int)), *tok = calloc(BT, sizeof(int)), *tgt = calloc(BT, sizeof(int));
	ints(m, "lens", lens, B);
	ints(m, "tokens", tok, (int)BT);
	ints(m, "targets", tgt, (int)BT);
	float *mask = floats(m, "mask", BT), *adv = floats(m, "adv", BT), *old = floats(m, "old", BT);
	float *ref = floats(m, "ref", BT), *want_lp = floats(m, "logp", BT);
	float *rewards = floats(m, "rewards", B), *want_seq = floats(m, "seq_adv", B);
	float *lp = calloc(BT, 4), *dl = calloc(BT, 4), *seq = calloc(B, 4);
	iapo_loss_opts o = {.eps_low = (float)oracle_num(m, "eps_low"), .eps_high = (float)oracle_num(m, "eps_high"),
			    .beta = (float)oracle_num(m, "beta"), .n_seqs = (long)oracle_num(m, "n_seqs"),
			    .n_tokens = (long)oracle_num(m, "n_tokens"), .max_completion_len = (int)oracle_num(m, "max_completion_len")};

	/* the sequence advantages the token advantages were built from */
	iapo_group_advantages(rewards, B, G, 1, seq);
	CHECK(test_max_rel_err(seq, want_seq, B) <= 1e-6, "group advantages vs torch: %g",
	      test_max_rel_err(seq, want_seq, B));

	iapo_weights w;
	iapo_fwd *f = NULL;
	float *grad = NULL;
	iapo_status st = iapo_weights_load(mdir, &w);
	CHECK(st == IAPO_OK, "load %s: %s", mdir, iapo_errmsg());
	if (st) goto out;
	size_t np = iapo_param_count(&w.cfg);
	grad = calloc(np, 4);
	st = iapo_fwd_new(&w, B, T, 1, &f);
	CHECK(st == IAPO_OK, "fwd_new: %s", iapo_errmsg());
	if (st) goto out;
	iapo_fwd_set_temperature(f, (float)oracle_num(m, "temperature"));

	const char *types[3] = {"grpo", "bnpo", "dr_grpo"};
	for (int k = 0; k < 3; k++) {
		CHECK(iapo_loss_type_parse(types[k], &o.type) == IAPO_OK, "%s", types[k]);
		double want_loss = oracle_num(cJSON_GetObjectItem(m, "losses"), types[k]);
		char sub[64], what[96];
		snprintf(sub, sizeof sub, "grads_%s", types[k]);

		/* one batch */
		iapo_loss_stats s = {0};
		memset(grad, 0, np * 4);
		st = iapo_fwd_forward(f, tok, lens, tgt, B, T, lp, NULL, NULL);
		CHECK(st == IAPO_OK, "forward: %s", iapo_errmsg());
		if (k == 0)
			CHECK(test_max_rel_err(lp, want_lp, BT) <= 1e-4, "logp vs torch: %g", test_max_rel_err(lp, want_lp, BT));
		st = iapo_policy_loss(&o, B, T, lp, old, ref, adv, mask, dl, &s);
		CHECK(st == IAPO_OK, "%s: loss: %s", types[k], iapo_errmsg());
		CHECK(fabs(s.loss - want_loss) <= 1e-4 * fabs(want_loss), "%s: loss %.9g vs torch %.9g", types[k], s.loss,
		      want_loss);
		CHECK(s.clipped_low == oracle_num(m, "clipped_low") && s.clipped_high == oracle_num(m, "clipped_high") &&
			      s.clipped_low > 0 && s.clipped_high > 0,
		      "%s: clipped %g/%g vs torch %g/%g (both must be > 0)", types[k], s.clipped_low, s.clipped_high,
		      oracle_num(m, "clipped_low"), oracle_num(m, "clipped_high"));
		st = iapo_fwd_backward(f, dl, NULL, grad);
		CHECK(st == IAPO_OK, "backward: %s", iapo_errmsg());
		snprintf(what, sizeof what, "%s one batch", types[k]);
		oracle_check_grads(what, dir, sub, &w.cfg, grad);
		double loss_one = s.loss;

		/* the same step as two micro-batches (rows 0-1 and 2-5), gradients accumulated */
		const int cut = 2;
		memset(&s, 0, sizeof s);
		memset(grad, 0, np * 4);
		for (int part = 0; part < 2; part++) {
			int b0 = part ? cut : 0, nb = part ? B - cut : cut;
			size_t off = (size_t)b0 * T;
			st = iapo_fwd_forward(f, tok + off, lens + b0, tgt + off, nb, T, lp, NULL, NULL);
			CHECK(st == IAPO_OK, "micro-batch forward: %s", iapo_errmsg());
			st = iapo_policy_loss(&o, nb, T, lp, old + off, ref + off, adv + off, mask + off, dl, &s);
			CHECK(st == IAPO_OK, "micro-batch loss: %s", iapo_errmsg());
			st = iapo_fwd_backward(f, dl, NULL, grad);
			CHECK(st == IAPO_OK, "micro-batch backward: %s", iapo_errmsg());
		}
		CHECK(fabs(s.loss - want_loss) <= 1e-4 * fabs(want_loss), "%s: micro-batched loss %.9g vs torch %.9g",
		      types[k], s.loss, want_loss);
		CHECK_NEAR(s.loss, loss_one, 1e-6, "micro-batched loss vs one batch");
		snprintf(what, sizeof what, "%s two micro-batches", types[k]);
		oracle_check_grads(what, dir, sub, &w.cfg, grad);
	}
out:
	iapo_fwd_free(f);
	iapo_weights_free(&w); /* a no-op after a failed load */
	free(grad);
	free(lens); free(tok); free(tgt); free(mask); free(adv); free(old); free(ref); free(want_lp);
	free(rewards); free(want_seq); free(lp); free(dl); free(seq);
	cJSON_Delete(m);
}

int main(void)
{
	snprintf(root, sizeof root, "%s/grpo", test_fixtures());
	RUN(test_loss_cases);
	RUN(test_model_end_to_end);
	TEST_END();
}
