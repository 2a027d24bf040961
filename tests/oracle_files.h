/*
 * oracle_files.h — test-only: reading what the PyTorch oracles of
 * tests/oracle/<name>.py wrote (whole files, raw float32 tensors, JSON numbers)
 * and comparing a gradient block with their per-tensor dumps
 * (DIR/SUB/<HF tensor name>.bin, one file per layer). Shared by
 * tests/test_{transformer,grpo,iapo}_oracle.c.
 * Not here: what each oracle computes (its test and its .py).
 */
#ifndef IAPO_TESTS_ORACLE_FILES_H
#define IAPO_TESTS_ORACLE_FILES_H

#include <stdio.h>
#include <stdlib.h>

#include <cjson/cJSON.h>

#include "model/model.h"
#include "test.h"

/* The whole file, NUL-terminated (malloc'd; *n its size if n), or NULL. */
static inline char *oracle_slurp(const char *path, size_t *n)
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

/* The JSON file at path, parsed (cJSON_Delete it), or NULL when it cannot be
 * read or parsed; the caller says which fixture script makes it. */
static inline cJSON *oracle_json(const char *path)
{
	char *text = oracle_slurp(path, NULL);
	cJSON *j = text ? cJSON_Parse(text) : NULL;
	free(text);
	return j;
}

/* DIR/NAME as float32 (malloc'd); a failed CHECK and NULL unless it holds
 * exactly n floats. */
static inline float *oracle_read_bin(const char *dir, const char *name, size_t n)
{
	char path[3000];
	size_t sz = 0;
	snprintf(path, sizeof path, "%s/%s", dir, name);
	float *p = (float *)oracle_slurp(path, &sz);
	CHECK(p != NULL, "cannot read %s", path);
	if (p && sz != n * sizeof(float)) {
		CHECK(0, "%s: expected %zu floats, found %zu bytes", path, n, sz);
		free(p);
		return NULL;
	}
	return p;
}

/* Member `key` of a JSON object as a number (the oracles always write it). */
static inline double oracle_num(const cJSON *o, const char *key) { return cJSON_GetObjectItem(o, key)->valuedouble; }

/* Compares every parameter tensor (per layer) of the gradient block grad
 * with DIR/SUB/<hf name>.bin at relative error 1e-3; at least 11 tensors
 * must be compared. Prints the worst error to stderr. */
static inline void oracle_check_grads(const char *what, const char *dir, const char *sub, const iapo_config *c,
				      float *grad)
{
	iapo_params g;
	iapo_params_point(c, grad, &g);
	int checked = 0;
	double worst = 0;
	for (int t = 0; t < IAPO_NUM_PARAMS; t++) {
		size_t ls = iapo_param_layer_size(c, t);
		if (!ls) continue;
		int nl = iapo_param_is_layered(t) ? c->L : 1;
		for (int l = 0; l < nl; l++) {
			char hf[256], file[400];
			if (!iapo_param_hf_name(c, t, l, hf, sizeof hf)) continue;
			snprintf(file, sizeof file, "%s/%s.bin", sub, hf);
			float *want = oracle_read_bin(dir, file, ls);
			if (!want) continue;
			double e = test_max_rel_err(g.t[t] + (size_t)l * ls, want, ls);
			CHECK(e <= 1e-3, "%s %s/%s: max rel err %g", what, sub, hf, e);
			if (e > worst) worst = e;
			checked++;
			free(want);
		}
	}
	CHECK(checked > 10, "%s: only %d gradient tensors compared", what, checked);
	fprintf(stderr, "  %s: %d tensors, worst rel err %.2g\n", what, checked, worst);
}

#endif
