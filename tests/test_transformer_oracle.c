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
#include "test.h"

static char *slurp(const char *path, size_t *n)
{
	FILE *fp = fopen(path, "rb");
	if (!fp) return NULL;
	fseek(fp, 0, SEEK_END);
	long sz = ftell(fp);
	fseek(fp, 0, SEEK_SET);
	char *buf = malloc((size_t)sz + 1);
	if (fread(buf, 1, (size_t)sz, fp) != (size_t)sz) sz = 0;
	buf[sz] = 0;
	fclose(fp);
	if (n) *n = (size_t)sz;
	return buf;
}

/* Reads DIR/NAME as float32; checks it holds exactly n floats. */
static float *read_bin(const char *dir, const char *name, size_t n)
{
	char path[3000];
	size_t sz = 0;
	snprintf(path, sizeof path, "%s/%s", dir, name);
	float *p = (float *)slurp(path, &sz);
	CHECK(p != NULL, "cannot read %s", path);
	if (p) CHECK(sz == n * sizeof(float), "%s: expected %zu floats, found %zu bytes", path, n, sz);
	if (p && sz != n * sizeof(float)) {
		free(p);
		return NULL;
	}
	return p;
}

static void int_array(const cJSON *a, int *out, int n)
{
	for (int i = 0; i < n; i++) out[i] = cJSON_GetArrayItem(a, i)->valueint;
}

/* Compares every parameter tensor (per layer) of grad with DIR/sub/<hf name>.bin. */
static void check_grads(const char *name, const char *dir, const char *sub, const iapo_config *c, float *grad)
{
	iapo_params g;
	iapo_params_point(c, grad, &g);
	int checked = 0;
	for (int t = 0; t < IAPO_NUM_PARAMS; t++) {
		size_t ls = iapo_param_layer_size(c, t);
		if (!ls) continue;
		int nl = iapo_param_is_layered(t) ? c->L : 1;
		for (int l = 0; l < nl; l++) {
			char hf[256], file[400];
			if (!iapo_param_hf_name(c, t, l, hf, sizeof hf)) continue;
			snprintf(file, sizeof file, "%s/%s.bin", sub, hf);
			float *want = read_bin(dir, file, ls);
			if (!want) continue;
			double e = test_max_rel_err(g.t[t] + (size_t)l * ls, want, ls);
			CHECK(e <= 1e-3, "%s %s %s: max rel err %g", name, sub, hf, e);
			checked++;
			free(want);
		}
	}
	CHECK(checked > 10, "%s: only %d gradient tensors compared", name, checked);
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
	float *want_logits = read_bin(dir, "logits.bin", BTV);
	float *want_lp1 = read_bin(dir, "logp_t1.bin", BT), *want_en1 = read_bin(dir, "entropy_t1.bin", BT);
	float *want_lpb = read_bin(dir, "logp_tb.bin", BT), *want_enb = read_bin(dir, "entropy_tb.bin", BT);
	float *wa = read_bin(dir, "wa.bin", BT), *wb = read_bin(dir, "wb.bin", BT);
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
	check_grads(name, dir, "grads_ce", &w.cfg, grad);

	/* temperature 0.7: logp, entropy, gradients of sum wa*logp + wb*entropy */
	iapo_fwd_set_temperature(f, temp_b);
	st = iapo_fwd_forward(f, tok, lens, tgt, B, T, lp, en, NULL);
	CHECK(st == IAPO_OK, "%s: forward t=%g: %s", name, temp_b, iapo_errmsg());
	CHECK(test_max_rel_err(lp, want_lpb, BT) <= 1e-4, "%s logp t=%g: %g", name, temp_b, test_max_rel_err(lp, want_lpb, BT));
	CHECK(test_max_rel_err(en, want_enb, BT) <= 1e-4, "%s entropy t=%g: %g", name, temp_b, test_max_rel_err(en, want_enb, BT));
	memset(grad, 0, np * 4);
	st = iapo_fwd_backward(f, wa, wb, grad);
	CHECK(st == IAPO_OK, "%s: backward t=%g: %s", name, temp_b, iapo_errmsg());
	check_grads(name, dir, "grads_mix", &w.cfg, grad);

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
	char *text = slurp(path, NULL);
	cJSON *j = text ? cJSON_Parse(text) : NULL;
	if (!j) {
		fprintf(stderr, "  FAIL cannot read %s (run tests/oracle/make_torch_fixtures.sh)\n", path);
		printf("0 passed, 1 failed\n");
		free(text);
		return 1;
	}
	manifest_models = cJSON_GetObjectItem(j, "models");
	RUN(qwen2);
	RUN(llama);
	RUN(qwen3);
	cJSON_Delete(j);
	free(text);
	TEST_END();
}
