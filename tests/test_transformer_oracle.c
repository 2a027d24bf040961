/*
 * test_transformer_oracle.c — the C transformer against PyTorch autograd.
 * tests/oracle/make_torch_fixtures.sh writes tiny random Qwen2 (tied, bias),
 * Llama (untied, GQA, Llama 3 RoPE scaling) and Qwen3 (q/k norm, explicit
 * head_dim) Hugging Face directories, and for one padded batch the float64
 * answers of a plain-torch re-statement of HF's forward (tests/oracle/hf_model.py).
 * Here each directory is loaded with iapo_weights_load and we require:
 * logits and mean CE loss within 1e-4 relative, per-token logp and entropy at
 * temperatures 1 and 0.7 within 1e-4, and EVERY parameter gradient (of the CE
 * loss, and of sum wa*logp + wb*entropy at 0.7) within 1e-3 of each tensor's
 * largest magnitude. An inference-only arena must give the same logits.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/transformer.h"
#include "model/weights.h"
#include "oracle_files.h"
#include "test.h"

static void int_array(const cJSON *a, int *out, int n)
{
	for (int i = 0; i < n; i++) out[i] = cJSON_GetArrayItem(a, i)->valueint;
}

static void check_model(const char *root, const cJSON *m)
{
	const char *name = cJSON_GetObjectItem(m, "name")->valuestring;
	char dir[2100];
	snprintf(dir, sizeof dir, "%s/%s", root, cJSON_GetObjectItem(m, "dir")->valuestring);
	int B = cJSON_GetObjectItem(m, "B")->valueint, T = cJSON_GetObjectItem(m, "T")->valueint;
	int V = cJSON_GetObjectItem(m, "V")->valueint;
	double want_loss = cJSON_GetObjectItem(m, "loss")->valuedouble;
	float temp_b = (float)cJSON_GetObjectItem(m, "temperature_b")->valuedouble;
	int *lens = malloc(sizeof(int) * B), *tok = malloc(sizeof(int) * B * T), *tgt = malloc(sizeof(int) * B * T);
	int_array(cJSON_GetObjectItem(m, "lens"), lens, B);
	int_array(cJSON_GetObjectItem(m, "tokens"), tok, B * T);
	int_array(cJSON_GetObjectItem(m, "targets"), tgt, B * T);

	iapo_weights w;
	iapo_status st = iapo_weights_load(dir, &w);
	CHECK(st == IAPO_OK, "%s: load: %s", name, iapo_errmsg());
	if (st) goto out;
	CHECK(w.cfg.V == V, "%s: vocab %d vs %d", name, w.cfg.V, V);

	size_t BT = (size_t)B * T, BTV = BT * V, np = iapo_param_count(&w.cfg);
	float *logits = calloc(BTV, 4), *lp = calloc(BT, 4), *en = calloc(BT, 4), *dl = calloc(BT, 4);
	float *grad = calloc(np, 4), *logits2 = calloc(BTV, 4);
	float *want_logits = oracle_read_bin(dir, "logits.bin", BTV);
	float *want_lp1 = oracle_read_bin(dir, "logp_t1.bin", BT), *want_en1 = oracle_read_bin(dir, "entropy_t1.bin", BT);
	float *want_lpb = oracle_read_bin(dir, "logp_tb.bin", BT), *want_enb = oracle_read_bin(dir, "entropy_tb.bin", BT);
	float *wa = oracle_read_bin(dir, "wa.bin", BT), *wb = oracle_read_bin(dir, "wb.bin", BT);
	iapo_fwd *f = NULL, *fi = NULL;
	if (!want_logits || !want_lp1 || !want_en1 || !want_lpb || !want_enb || !wa || !wb) goto free_all;

	st = iapo_fwd_new(&w, B, T, 1, &f);
	CHECK(st == IAPO_OK, "%s: fwd_new: %s", name, iapo_errmsg());
	if (st) goto free_all;
	iapo_fwd_set_chunk(f, 5); /* several vocabulary chunks, one partial */

	/* temperature 1: logits, logp, entropy, loss, CE gradients */
	st = iapo_fwd_forward(f, tok, lens, tgt, B, T, lp, en, logits);
	CHECK(st == IAPO_OK, "%s: forward: %s", name, iapo_errmsg());
	CHECK(test_max_rel_err(logits, want_logits, BTV) <= 1e-4, "%s logits: %g", name,
	      test_max_rel_err(logits, want_logits, BTV));
	CHECK(test_max_rel_err(lp, want_lp1, BT) <= 1e-4, "%s logp t=1: %g", name, test_max_rel_err(lp, want_lp1, BT));
	CHECK(test_max_rel_err(en, want_en1, BT) <= 1e-4, "%s entropy t=1: %g", name, test_max_rel_err(en, want_en1, BT));
	int nvalid = 0;
	double loss = 0;
	for (size_t i = 0; i < BT; i++)
		if (tgt[i] >= 0 && (int)(i % T) < lens[i / T]) nvalid++, loss -= lp[i];
	loss /= nvalid;
	CHECK(fabs(loss - want_loss) <= 1e-4 * fabs(want_loss), "%s loss %.9g vs %.9g", name, loss, want_loss);
	for (size_t i = 0; i < BT; i++) dl[i] = tgt[i] >= 0 ? -1.0f / nvalid : 0.0f;
	st = iapo_fwd_backward(f, dl, NULL, grad);
	CHECK(st == IAPO_OK, "%s: backward: %s", name, iapo_errmsg());
	oracle_check_grads(name, dir, "grads_ce", &w.cfg, grad);

	/* temperature 0.7: logp, entropy, gradients of sum wa*logp + wb*entropy */
	iapo_fwd_set_temperature(f, temp_b);
	st = iapo_fwd_forward(f, tok, lens, tgt, B, T, lp, en, NULL);
	CHECK(st == IAPO_OK, "%s: forward t=%g: %s", name, temp_b, iapo_errmsg());
	CHECK(test_max_rel_err(lp, want_lpb, BT) <= 1e-4, "%s logp t=%g: %g", name, temp_b, test_max_rel_err(lp, want_lpb, BT));
	CHECK(test_max_rel_err(en, want_enb, BT) <= 1e-4, "%s entropy t=%g: %g", name, temp_b, test_max_rel_err(en, want_enb, BT));
	memset(grad, 0, np * 4);
	st = iapo_fwd_backward(f, wa, wb, grad);
	CHECK(st == IAPO_OK, "%s: backward t=%g: %s", name, temp_b, iapo_errmsg());
	oracle_check_grads(name, dir, "grads_mix", &w.cfg, grad);

	/* the inference-only arena gives the same logits */
	st = iapo_fwd_new(&w, B, T, 0, &fi);
	CHECK(st == IAPO_OK, "%s: inference fwd_new: %s", name, iapo_errmsg());
	if (!st) {
		st = iapo_fwd_forward(fi, tok, lens, tgt, B, T, NULL, NULL, logits2);
		CHECK(st == IAPO_OK, "%s: inference forward: %s", name, iapo_errmsg());
		CHECK(test_max_rel_err(logits2, want_logits, BTV) <= 1e-4, "%s inference logits: %g", name,
		      test_max_rel_err(logits2, want_logits, BTV));
		CHECK(iapo_fwd_backward(fi, dl, NULL, grad) == IAPO_ERR_ARG, "%s: backward on an inference arena", name);
	}
free_all:
	iapo_fwd_free(f);
	iapo_fwd_free(fi);
	free(logits); free(logits2); free(lp); free(en); free(dl); free(grad);
	free(want_logits); free(want_lp1); free(want_en1); free(want_lpb); free(want_enb); free(wa); free(wb);
	iapo_weights_free(&w);
out:
	free(lens); free(tok); free(tgt);
}

static const cJSON *manifest_models;
static char root[1024];

static void run_named(const char *want)
{
	int found = 0;
	const cJSON *m;
	cJSON_ArrayForEach(m, manifest_models) {
		if (strcmp(cJSON_GetObjectItem(m, "name")->valuestring, want) == 0) {
			found = 1;
			check_model(root, m);
		}
	}
	CHECK(found, "model %s missing from the manifest", want);
}

static void qwen2(void) { run_named("qwen2"); }
static void llama(void) { run_named("llama"); }
static void qwen3(void) { run_named("qwen3"); }

int main(void)
{
	char path[1100];
	snprintf(root, sizeof root, "%s/torch", test_fixtures());
	snprintf(path, sizeof path, "%s/manifest.json", root);
	cJSON *j = oracle_json(path);
	if (!j) {
		fprintf(stderr, "  FAIL cannot read %s (run tests/oracle/make_torch_fixtures.sh)\n", path);
		printf("0 passed, 1 failed\n");
		return 1;
	}
	manifest_models = cJSON_GetObjectItem(j, "models");
	RUN(qwen2);
	RUN(llama);
	RUN(qwen3);
	cJSON_Delete(j);
	TEST_END();
}
