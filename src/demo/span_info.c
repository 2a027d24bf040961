/*
 * span_info.c — mean information gain per span kind of the synthetic task's
 * traces (span_info.h): token -> kind mapping, one estimator call per row,
 * sums per kind, and the synth JSONL reader this needs (prompt, completion,
 * spans). Left out: anything about sampling traces from the model.
 */
#include "demo/span_info.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/mem.h"
#include "core/status.h"
#include "io/fs.h"
#include "io/json.h"
#include "rl/dataset.h"
#include "rl/info.h"
#include "rl/prompt.h"

double iapo_span_info_mean(const iapo_span_info_stats *s, iapo_synth_kind k)
{
	if ((int)k < 0 || k >= IAPO_SYNTH_N_KINDS || s->tokens[k] <= 0) return NAN;
	return s->gain_sum[k] / s->tokens[k];
}

double iapo_span_info_redundant_mean(const iapo_span_info_stats *s)
{
	double n = 0, sum = 0;
	for (int k = 0; k < IAPO_SYNTH_N_KINDS; k++)
		if (iapo_synth_kind_redundant((iapo_synth_kind)k)) n += s->tokens[k], sum += s->gain_sum[k];
	return n > 0 ? sum / n : NAN;
}

double iapo_span_info_ratio(const iapo_span_info_stats *s)
{
	double r = iapo_span_info_redundant_mean(s), st = iapo_span_info_mean(s, IAPO_SYNTH_STEP);
	if (isnan(r) || isnan(st) || !(st > 0)) return NAN;
	return r / st;
}

static iapo_status check_spans(const iapo_synth_span *spans, int n_spans, size_t len)
{
	size_t at = 0;
	for (int i = 0; i < n_spans; i++) {
		const iapo_synth_span *sp = &spans[i];
		if (sp->start < 0 || (size_t)sp->start != at || sp->end <= sp->start || (size_t)sp->end > len ||
		    (int)sp->kind < 0 || sp->kind >= IAPO_SYNTH_N_KINDS)
			return iapo_fail(IAPO_ERR_ARG,
					 "spans: span %d: expected [%zu, end <= %zu) of a known kind, found [%d, %d) kind %d",
					 i, at, len, sp->start, sp->end, (int)sp->kind);
		at = (size_t)sp->end;
	}
	if (at != len)
		return iapo_fail(IAPO_ERR_ARG, "spans: expected them to cover the completion's %zu bytes, found %zu", len,
				 at);
	return IAPO_OK;
}

iapo_status iapo_span_tokens(const iapo_tokenizer *tok, const char *completion, size_t len,
			     const iapo_synth_span *spans, int n_spans, int **ids, int **kinds, size_t *n,
			     int *straddle)
{
	*ids = NULL, *kinds = NULL, *n = 0;
	if (straddle) *straddle = 0;
	iapo_status st = check_spans(spans, n_spans, len);
	if (st != IAPO_OK) return st;
	int *tid = NULL;
	size_t nt = 0, cap = 0;
	if ((st = iapo_tokenizer_encode(tok, completion, len, &tid, &nt, &cap)) != IAPO_OK) return st;
	int *kd = iapo_malloc((nt ? nt : 1) * sizeof(int));
	char *piece = NULL;
	size_t pcap = 0, plen = 0, at = 0;
	int cross = 0, sp = 0;
	if (!kd) {
		st = iapo_fail(IAPO_ERR_NOMEM, "span tokens: %zu kinds", nt);
		goto out;
	}
	for (size_t i = 0; i < nt; i++) {
		/* decoding one token alone gives exactly its bytes (byte-level BPE;
		 * added tokens give their text, special ones kept) */
		if ((st = iapo_tokenizer_decode(tok, &tid[i], 1, 0, &piece, &plen, &pcap)) != IAPO_OK) goto out;
		if (plen == 0 || at + plen > len || memcmp(completion + at, piece, plen) != 0) {
			st = iapo_fail(IAPO_ERR_ARG,
				       "span tokens: token %zu (id %d) at byte %zu: expected the text's next bytes, found "
				       "%zu other bytes",
				       i, tid[i], at, plen);
			goto out;
		}
		while (sp < n_spans && (size_t)spans[sp].end <= at) sp++;
		kd[i] = (int)spans[sp].kind; /* the span holding the first byte (spans tile [0, len)) */
		if (at + plen > (size_t)spans[sp].end) cross++;
		at += plen;
	}
	if (at != len) {
		st = iapo_fail(IAPO_ERR_ARG, "span tokens: expected the tokens to give back %zu bytes, found %zu", len, at);
		goto out;
	}
	*ids = tid, *kinds = kd, *n = nt;
	tid = NULL, kd = NULL;
	if (straddle) *straddle = cross;
out:
	iapo_free(piece);
	iapo_free(tid);
	iapo_free(kd);
	return st;
}

iapo_span_info_opts iapo_span_info_defaults(void)
{
	return (iapo_span_info_opts){.system = "",
				     .one_shot = 0,
				     .postfix = NULL,
				     .answer_tokens = 1,
				     .temperature = 1.0f,
				     .gain = IAPO_GAIN_PLAIN,
				     .max_tokens = 1024};
}

struct iapo_span_info {
	const iapo_tokenizer *tok;
	iapo_span_info_opts o;
	iapo_info *est;
	float *E, *S;	/* (max_tokens + 1) */
	float *adv;	/* (max_tokens) unused advantages of iapo_tokadv_compute */
};

void iapo_span_info_free(iapo_span_info *s)
{
	if (!s) return;
	iapo_info_free(s->est);
	iapo_free(s->E);
	iapo_free(s->S);
	iapo_free(s->adv);
	iapo_free(s);
}

iapo_status iapo_span_info_new(const iapo_weights *w, const iapo_tokenizer *tok, const iapo_span_info_opts *o,
			       iapo_span_info **out)
{
	*out = NULL;
	if (o->max_tokens < 2 || o->answer_tokens < 1 || !(o->temperature > 0))
		return iapo_fail(IAPO_ERR_ARG,
				 "span info: expected max_tokens >= 2, answer_tokens >= 1, temperature > 0, found %d, %d, %g",
				 o->max_tokens, o->answer_tokens, (double)o->temperature);
	iapo_span_info *s = iapo_calloc(1, sizeof *s);
	if (!s) return iapo_fail(IAPO_ERR_NOMEM, "span info");
	s->tok = tok;
	s->o = *o;
	int *post = NULL;
	size_t K = 0, pcap = 0;
	const char *pf = o->postfix ? o->postfix : IAPO_INFO_POSTFIX;
	iapo_status st = iapo_tokenizer_encode(tok, pf, strlen(pf), &post, &K, &pcap);
	if (st != IAPO_OK) goto fail;
	if (K == 0) {
		st = iapo_fail(IAPO_ERR_ARG, "span info: postfix: expected text, found an empty string");
		goto fail;
	}
	iapo_info_opts io = iapo_info_defaults();
	io.postfix = post;
	io.n_postfix = (int)K;
	io.answer_tokens = o->answer_tokens;
	io.temperature = o->temperature;
	st = iapo_info_new(w, 1, o->max_tokens, &io, &s->est);
	iapo_free(post);
	if (st != IAPO_OK) goto fail;
	s->E = iapo_malloc(((size_t)o->max_tokens + 1) * sizeof(float));
	s->S = iapo_malloc(((size_t)o->max_tokens + 1) * sizeof(float));
	s->adv = iapo_malloc(((size_t)o->max_tokens + 1) * sizeof(float));
	if (!s->E || !s->S || !s->adv) {
		st = iapo_fail(IAPO_ERR_NOMEM, "span info: buffers for %d tokens", o->max_tokens);
		goto fail;
	}
	*out = s;
	return IAPO_OK;
fail:
	iapo_span_info_free(s);
	return st;
}

iapo_status iapo_span_info_add(iapo_span_info *s, const char *prompt, const char *completion, size_t len,
			       const iapo_synth_span *spans, int n_spans, iapo_span_info_stats *acc)
{
	int *pids = NULL, *ids = NULL, *kinds = NULL;
	size_t np = 0, pcap = 0, nc = 0;
	int cross = 0;
	iapo_status st = iapo_prompt_tokens(s->tok, IAPO_DATA_GENERIC, s->o.system, prompt, s->o.one_shot, &pids, &np,
					    &pcap);
	if (st != IAPO_OK) goto out;
	if ((st = iapo_span_tokens(s->tok, completion, len, spans, n_spans, &ids, &kinds, &nc, &cross)) != IAPO_OK)
		goto out;
	if (np + nc > (size_t)s->o.max_tokens) {
		st = iapo_fail(IAPO_ERR_ARG, "span info: expected prompt + completion <= %d tokens, found %zu + %zu",
			       s->o.max_tokens, np, nc);
		goto out;
	}
	const int *pp = pids, *cp = ids;
	int pl = (int)np, cl = (int)nc;
	iapo_info_batch b = {.n = 1, .prompts = &pp, .plen = &pl, .comps = &cp, .clen = &cl};
	if ((st = iapo_info_compute(s->est, &b, s->E, NULL, s->o.max_tokens + 1, NULL)) != IAPO_OK) goto out;
	/* the gain exactly as the advantages would see it (w = 0: only S is used) */
	iapo_tokadv_opts to = iapo_tokadv_defaults();
	to.gain = s->o.gain;
	to.w_info = to.w_conf = 0;
	if ((st = iapo_tokadv_compute(&to, cl, s->E, NULL, 0.0f, 0.0f, s->adv, s->S, NULL, NULL)) != IAPO_OK) goto out;
	for (int t = 0; t < cl; t++) {
		acc->tokens[kinds[t]] += 1;
		acc->gain_sum[kinds[t]] += s->S[t];
		acc->gain_abs[kinds[t]] += fabs((double)s->S[t]);
	}
	acc->rows += 1;
	acc->straddle += cross;
	acc->entropy_first += s->E[0];
	acc->entropy_last += s->E[cl];
out:
	iapo_free(pids);
	iapo_free(ids);
	iapo_free(kinds);
	return st;
}

/* One synth row: prompt, completion, spans ([[start, end, "kind"], ...]).
 * *spans is allocated (iapo_free). */
static iapo_status parse_row(const cJSON *o, const char *where, const char **prompt, const char **completion,
			     iapo_synth_span **spans, int *n_spans)
{
	*spans = NULL, *n_spans = 0;
	iapo_status st;
	if ((st = iapo_json_req_str(o, "prompt", where, prompt)) != IAPO_OK) return st;
	if ((st = iapo_json_req_str(o, "completion", where, completion)) != IAPO_OK) return st;
	const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, "spans");
	if (!cJSON_IsArray(a))
		return iapo_fail(IAPO_ERR_FORMAT, "%s: spans: expected an array, found %s", where,
				 a ? iapo_json_type_name(a) : "nothing");
	int n = cJSON_GetArraySize(a);
	iapo_synth_span *sp = iapo_malloc((n ? (size_t)n : 1) * sizeof *sp);
	if (!sp) return iapo_fail(IAPO_ERR_NOMEM, "%s: %d spans", where, n);
	int i = 0;
	for (const cJSON *e = a->child; e; e = e->next, i++) {
		const cJSON *s0 = cJSON_GetArrayItem(e, 0), *s1 = cJSON_GetArrayItem(e, 1), *s2 = cJSON_GetArrayItem(e, 2);
		int kind = cJSON_IsString(s2) ? iapo_synth_kind_parse(s2->valuestring) : -1;
		if (!cJSON_IsArray(e) || cJSON_GetArraySize(e) != 3 || !cJSON_IsNumber(s0) || !cJSON_IsNumber(s1) ||
		    kind < 0 || s0->valuedouble < 0 || s1->valuedouble > 1e9) {
			iapo_free(sp);
			return iapo_fail(IAPO_ERR_FORMAT, "%s: spans[%d]: expected [start, end, kind], found another value",
					 where, i);
		}
		sp[i] = (iapo_synth_span){.start = (int)s0->valuedouble, .end = (int)s1->valuedouble,
					  .kind = (iapo_synth_kind)kind};
	}
	*spans = sp, *n_spans = n;
	return IAPO_OK;
}

iapo_status iapo_span_info_file(iapo_span_info *s, const char *path, int limit, iapo_span_info_stats *acc)
{
	memset(acc, 0, sizeof *acc);
	iapo_json_init();
	char *data = NULL;
	size_t len = 0;
	iapo_status st = iapo_fs_read_file(path, (size_t)1 << 31, &data, &len);
	if (st != IAPO_OK) return st;
	int line = 0, rows = 0;
	for (char *p = data; p < data + len && (limit <= 0 || rows < limit);) {
		char *nl = memchr(p, '\n', (size_t)(data + len - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(data + len - p);
		line++;
		size_t k = 0;
		while (k < n && (p[k] == ' ' || p[k] == '\t' || p[k] == '\r')) k++;
		if (k < n) {
			char where[1200];
			snprintf(where, sizeof where, "%s: line %d", path, line);
			cJSON *o = NULL;
			if ((st = iapo_json_parse(p, n, where, &o)) != IAPO_OK) goto out;
			const char *prompt, *comp;
			iapo_synth_span *spans = NULL;
			int ns = 0;
			st = cJSON_IsObject(o) ? parse_row(o, where, &prompt, &comp, &spans, &ns)
					       : iapo_fail(IAPO_ERR_FORMAT, "%s: expected an object", where);
			if (st == IAPO_OK) {
				st = iapo_span_info_add(s, prompt, comp, strlen(comp), spans, ns, acc);
				if (st != IAPO_OK) st = iapo_fail_prefix(st, "%s", where);
			}
			iapo_free(spans);
			cJSON_Delete(o);
			if (st != IAPO_OK) goto out;
			rows++;
		}
		p += n + 1;
	}
out:
	iapo_free(data);
	return st;
}
