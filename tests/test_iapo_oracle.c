/*
 * test_iapo_oracle.c — IAPO end to end against PyTorch (fixtures written by
 * tests/oracle/make_iapo_fixtures.sh under $IAPO_FIXTURES/iapo): on a tiny
 * Qwen2, two prompts x G = 3 ragged completions, a 3-token postfix,
 * temperature 0.9,
 *  - the fast estimator's E_t and C_t equal torch's naive early exit (a full
 *    forward per prefix) within 1e-5 relative, and E with two greedy answer
 *    tokens too;
 *  - the token advantages from those E and C (default settings, and the
 *    reference settings: smoothed gain, reversed horizon kernel, the code's
 *    normalisation over the padded width) within 1e-4;
 *  - forward -> iapo_policy_loss (bnpo, on-policy) -> backward gives torch's
 *    loss within 1e-4 (both settings) and every parameter gradient within
 *    1e-3 of each tensor's largest magnitude (default settings).
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/transformer.h"
#include "model/weights.h"
#include "rl/grpo.h"
#include "rl/iapo_adv.h"
#include "rl/info.h"
#include "oracle_files.h"
#include "test.h"

#define MAXB 16
#define LD 32

/* a JSON array of numbers into out (at most max); returns the count */
static int arr(const cJSON *a, double *out, int max)
{
	int n = 0;
	const cJSON *x;
	cJSON_ArrayForEach(x, a) if (n < max) out[n++] = x->valuedouble;
	return n;
}

static void test_end_to_end(void)
{
	char dir[1200], path[1300], mdir[1400];
	snprintf(dir, sizeof dir, "%s/iapo/model", test_fixtures());
	snprintf(path, sizeof path, "%s/manifest.json", dir);
	cJSON *m = oracle_json(path);
	CHECK(m != NULL, "cannot read %s (run tests/oracle/make_iapo_fixtures.sh)", path);
	if (!m) return;
	snprintf(mdir, sizeof mdir, "%s/%s", dir, cJSON_GetObjectItem(m, "dir")->valuestring);
	const int G = (int)oracle_num(m, "G");
	const float temp = (float)oracle_num(m, "temperature");
	double tmp[64];
	int plen_g[MAXB], clen[MAXB], plen[MAXB], post[8];
	int ng = arr(cJSON_GetObjectItem(m, "prompt_lens"), tmp, MAXB);
	for (int i = 0; i < ng; i++) plen_g[i] = (int)tmp[i];
	const int B = arr(cJSON_GetObjectItem(m, "completion_lens"), tmp, MAXB);
	for (int i = 0; i < B; i++) {
		clen[i] = (int)tmp[i];
		plen[i] = plen_g[i / G];
	}
	int K = arr(cJSON_GetObjectItem(m, "postfix"), tmp, 8);
	for (int i = 0; i < K; i++) post[i] = (int)tmp[i];
	int *prompts[MAXB], *comps[MAXB];
	const cJSON *jp = cJSON_GetObjectItem(m, "prompts"), *jc = cJSON_GetObjectItem(m, "completions");
	float wantE[MAXB * LD], wantE2[MAXB * LD], wantC[MAXB * LD], wantAd[MAXB * LD], wantAr[MAXB * LD];
	int Tmax = 0, W = 0;
	for (int i = 0; i < B; i++) {
		prompts[i] = malloc(sizeof(int) * (size_t)plen[i]);
		comps[i] = malloc(sizeof(int) * (size_t)(clen[i] + 1));
		arr(cJSON_GetArrayItem(jp, i / G), tmp, 64);
		for (int j = 0; j < plen[i]; j++) prompts[i][j] = (int)tmp[j];
		arr(cJSON_GetArrayItem(jc, i), tmp, 64);
		for (int j = 0; j < clen[i]; j++) comps[i][j] = (int)tmp[j];
		const char *keys[5] = {"E", "E2", "C", "adv_default", "adv_reference"};
		float *dst[5] = {wantE, wantE2, wantC, wantAd, wantAr};
		for (int k = 0; k < 5; k++) {
			int n = arr(cJSON_GetArrayItem(cJSON_GetObjectItem(m, keys[k]), i), tmp, 64);
			CHECK(n == clen[i] + (k < 3), "%s[%d]: %d values", keys[k], i, n);
			for (int t = 0; t < n && t < LD; t++) dst[k][i * LD + t] = (float)tmp[t];
		}
		if (plen[i] + clen[i] > Tmax) Tmax = plen[i] + clen[i];
		if (clen[i] > W) W = clen[i];
	}
	float rewards[MAXB], seq[MAXB], want_seq[MAXB];
	arr(cJSON_GetObjectItem(m, "rewards"), tmp, MAXB);
	for (int i = 0; i < B; i++) rewards[i] = (float)tmp[i];
	arr(cJSON_GetObjectItem(m, "seq_adv"), tmp, MAXB);
	for (int i = 0; i < B; i++) want_seq[i] = (float)tmp[i];
	iapo_group_advantages(rewards, B, G, 1, seq);
	CHECK(test_max_rel_err(seq, want_seq, (size_t)B) <= 1e-6, "group advantages");

	iapo_weights w;
	iapo_status st = iapo_weights_load(mdir, &w);
	CHECK(st == IAPO_OK, "load %s: %s", mdir, iapo_errmsg());
	if (st != IAPO_OK) goto out;

	/* the estimator */
	iapo_info_batch batch = {.n = B,
				 .prompts = (const int *const *)prompts,
				 .plen = plen,
				 .comps = (const int *const *)comps,
				 .clen = clen};
	float E[MAXB * LD], C[MAXB * LD];
	memset(E, 0, sizeof E);
	memset(C, 0, sizeof C);
	for (int N = 1; N <= 2; N++) {
		iapo_info_opts io = iapo_info_defaults();
		io.postfix = post;
		io.n_postfix = K;
		io.temperature = temp;
		io.answer_tokens = N;
		io.chunk = 4;
		iapo_info *e = NULL;
		CHECK(iapo_info_new(&w, B, Tmax, &io, &e) == IAPO_OK, "%s", iapo_errmsg());
		if (!e) goto out;
		CHECK(iapo_info_compute(e, &batch, E, C, LD, NULL) == IAPO_OK, "%s", iapo_errmsg());
		iapo_info_free(e);
		double eE = 0, eC = 0;
		const float *want = N == 1 ? wantE : wantE2;
		for (int i = 0; i < B; i++) {
			double a = test_max_rel_err(E + i * LD, want + i * LD, (size_t)clen[i] + 1);
			double c = test_max_rel_err(C + i * LD, wantC + i * LD, (size_t)clen[i] + 1);
			eE = a > eE ? a : eE;
			eC = c > eC ? c : eC;
		}
		CHECK(eE <= 1e-5, "N=%d: E vs torch's naive early exit: max rel err %g", N, eE);
		CHECK(eC <= 1e-5, "C vs torch: max rel err %g", eC);
		fprintf(stderr, "  N=%d: E rel err %.2g, C rel err %.2g\n", N, eE, eC);
		if (N == 2) {
			/* back to the N = 1 numbers for the advantages */
			io.answer_tokens = 1;
			CHECK(iapo_info_new(&w, B, Tmax, &io, &e) == IAPO_OK, "%s", iapo_errmsg());
			if (!e) goto out;
			CHECK(iapo_info_compute(e, &batch, E, C, LD, NULL) == IAPO_OK, "%s", iapo_errmsg());
			iapo_info_free(e);
		}
	}

	/* token advantages, both settings */
	float adv_d[MAXB * LD], adv_r[MAXB * LD];
	iapo_tokadv_opts od = iapo_tokadv_defaults(), orf = iapo_tokadv_defaults();
	const cJSON *rs = cJSON_GetObjectItem(m, "reference");
	orf.gain = IAPO_GAIN_REFERENCE;
	orf.norm = IAPO_NORM_REFERENCE;
	orf.horizon = (int)oracle_num(rs, "horizon");
	orf.decay = (float)oracle_num(rs, "decay");
	orf.w_conf = (float)oracle_num(rs, "w_conf");
	CHECK((int)oracle_num(rs, "width") == W, "width");
	CHECK(iapo_tokadv_batch(&od, B, clen, E, LD, C, LD, seq, rewards, adv_d, LD) == IAPO_OK, "%s", iapo_errmsg());
	CHECK(iapo_tokadv_batch(&orf, B, clen, E, LD, C, LD, seq, rewards, adv_r, LD) == IAPO_OK, "%s", iapo_errmsg());
	double ead = 0, ear = 0;
	for (int i = 0; i < B; i++)
		for (int t = 0; t < clen[i]; t++) {
			double a = fabs(adv_d[i * LD + t] - wantAd[i * LD + t]), r = fabs(adv_r[i * LD + t] - wantAr[i * LD + t]);
			ead = a > ead ? a : ead;
			ear = r > ear ? r : ear;
		}
	CHECK(ead <= 1e-4, "default advantages vs torch: max abs err %g", ead);
	CHECK(ear <= 1e-4, "reference advantages vs torch: max abs err %g", ear);
	fprintf(stderr, "  advantages: default err %.2g, reference err %.2g\n", ead, ear);

	/* loss and gradients */
	int T = Tmax, tok[MAXB * LD], tgt[MAXB * LD], lens[MAXB];
	float Ad[MAXB * LD], Ar[MAXB * LD], mask[MAXB * LD], lp[MAXB * LD], dl[MAXB * LD];
	for (int i = 0; i < B; i++) {
		lens[i] = plen[i] + clen[i];
		for (int j = 0; j < T; j++) {
			int k = i * T + j;
			tok[k] = j < plen[i] ? prompts[i][j] : j < lens[i] ? comps[i][j - plen[i]] : 0;
			int t = j - plen[i] + 1; /* completion token predicted at row j */
			int in = t >= 0 && t < clen[i];
			tgt[k] = in ? comps[i][t] : -1;
			mask[k] = in;
			Ad[k] = in ? adv_d[i * LD + t] : 0;
			Ar[k] = in ? adv_r[i * LD + t] : 0;
		}
	}
	iapo_fwd *f = NULL;
	CHECK(iapo_fwd_new(&w, B, T, 1, &f) == IAPO_OK, "%s", iapo_errmsg());
	if (!f) goto out;
	iapo_fwd_set_temperature(f, temp);
	size_t np = iapo_param_count(&w.cfg);
	float *grad = calloc(np, sizeof(float));
	iapo_loss_opts lo = {.type = IAPO_LOSS_BNPO, .eps_low = 0.2f, .eps_high = 0.28f, .beta = 0,
			     .n_seqs = B, .n_tokens = (long)oracle_num(m, "n_tokens"), .max_completion_len = W};
	iapo_loss_stats s = {0};
	CHECK(iapo_fwd_forward(f, tok, lens, tgt, B, T, lp, NULL, NULL) == IAPO_OK, "%s", iapo_errmsg());
	CHECK(iapo_policy_loss(&lo, B, T, lp, NULL, NULL, Ar, mask, dl, &s) == IAPO_OK, "%s", iapo_errmsg());
	CHECK(fabs(s.loss - oracle_num(m, "loss_reference")) <= 1e-4 * fabs(oracle_num(m, "loss_reference")),
	      "reference loss %.9g vs torch %.9g", s.loss, oracle_num(m, "loss_reference"));
	memset(&s, 0, sizeof s);
	CHECK(iapo_policy_loss(&lo, B, T, lp, NULL, NULL, Ad, mask, dl, &s) == IAPO_OK, "%s", iapo_errmsg());
	CHECK(fabs(s.loss - oracle_num(m, "loss_default")) <= 1e-4 * fabs(oracle_num(m, "loss_default")),
	      "default loss %.9g vs torch %.9g", s.loss, oracle_num(m, "loss_default"));
	fprintf(stderr, "  loss %.8f vs torch %.8f\n", s.loss, oracle_num(m, "loss_default"));
	CHECK(iapo_fwd_backward(f, dl, NULL, grad) == IAPO_OK, "%s", iapo_errmsg());
	oracle_check_grads("gradients", dir, "grads", &w.cfg, grad);
	free(grad);
	iapo_fwd_free(f);
out:
	iapo_weights_free(&w);
	for (int i = 0; i < B; i++) {
		free(prompts[i]);
		free(comps[i]);
	}
	cJSON_Delete(m);
}

int main(void)
{
	RUN(test_end_to_end);
	TEST_END();
}
