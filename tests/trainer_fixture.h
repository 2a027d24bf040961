/*
 * trainer_fixture.h — test-only: a tiny Qwen2 model with the byte-level test
 * tokenizer (<think>, </think>, <answer>, </answer> single tokens), warm-
 * started by a short SFT on "d=X" -> "<think></think>\n<answer>Y</answer>"
 * with Y a RANDOM digit 0-9 (so it learns the format but guesses the answer),
 * saved as an HF directory, and the JSONL dataset {"prompt": "d=X", "answer":
 * "X"} with X in {0, 1, 2}. The RL tests train it to copy the digit: first
 * the policy moves its mass onto the three labels (accuracy 0.1 -> 1/3), then
 * it must read the prompt to go beyond 1/3.
 * What we found tuning it: with HF's init std 0.02 this 32-wide model needs
 * hundreds of SFT steps before its output depends on the prompt at all (a
 * plateau), so RL never gets there in CI time; std 0.1 removes the plateau.
 * With ten labels RL learns too, but the takeoff step varies by 100+ steps
 * between seeds; three labels and G = 16 learn by step ~90 for every seed we
 * tried. Prompts are raw (no chat template) by default so the digit is a
 * large share of the context; `chat` renders them through ChatML instead.
 * Shared by tests/test_trainer*.c and tests/test_checkpoint*.c.
 */
#ifndef IAPO_TESTS_TRAINER_FIXTURE_H
#define IAPO_TESTS_TRAINER_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/mem.h"
#include "core/rng.h"
#include "io/fs.h"
#include "io/json.h"
#include "model/weights.h"
#include "rl/iapo_hook.h"
#include "rl/info.h"
#include "rl/options.h"
#include "rl/prompt.h"
#include "rl/sft.h"
#include "rl/trainer.h"
#include "test.h"
#include "tokenizer/tokenizer.h"


typedef struct {
	char root[1024]; /* scratch directory of this test program */
	char base[1100]; /* the warm-started model directory */
	char data[1100]; /* train.jsonl */
	char eval[1100]; /* eval.jsonl */
	int chat;        /* prompts through the chat template (else raw text) */
	double sft_loss_first, sft_loss_last;
} fixture;

/* A test that needs a fixture fails (rather than passes) without it. */
#define FIXTURE_NEED(have)                         \
	do {                                       \
		if (!(have)) {                     \
			CHECK(0, "no fixture");    \
			return;                    \
		}                                  \
	} while (0)

/* Sets one option; a failed CHECK names a bad one. */
static inline void fixture_set(iapo_train_opts *o, const char *k, const char *v)
{
	if (iapo_train_opts_set(o, k, v) != IAPO_OK) CHECK(0, "set %s: %s", k, iapo_errmsg());
}

/* A trainer for o, or NULL after a failed CHECK (o is then freed). */
static inline iapo_trainer *fixture_trainer(iapo_train_opts *o)
{
	iapo_trainer *tr;
	if (iapo_trainer_new(o, &tr) != IAPO_OK) {
		CHECK(0, "trainer: %s", iapo_errmsg());
		iapo_train_opts_free(o);
		return NULL;
	}
	return tr;
}

/* IAPO hook options with the estimator's and the advantage's defaults but
 * for the postfix (post, K tokens) and the weights of S and C. */
static inline iapo_hook_opts fixture_hook_opts(const int *post, int K, float w_info, float w_conf)
{
	iapo_hook_opts ho;
	memset(&ho, 0, sizeof ho);
	ho.info = iapo_info_defaults();
	ho.info.postfix = post;
	ho.info.n_postfix = K;
	ho.adv = iapo_tokadv_defaults();
	ho.adv.w_info = w_info;
	ho.adv.w_conf = w_conf;
	return ho;
}

/* An IAPO advantage hook for tr's rollouts (prompts-per-step x
 * num-generations sequences, chunk 64); NULL after a failed CHECK. */
static inline iapo_hook *fixture_hook(iapo_trainer *tr, const iapo_hook_opts *ho)
{
	const iapo_train_opts *o = iapo_trainer_opts(tr);
	iapo_hook *h = NULL;
	CHECK(iapo_hook_new(iapo_trainer_weights(tr), (int)(o->prompts_per_step * o->num_generations), 64, ho, &h) ==
		      IAPO_OK,
	      "%s", iapo_errmsg());
	return h;
}

/* The system prompt the fixture's prompts use: empty, to keep sequences short. */
#define FIX_SYSTEM ""

static inline int fixture_write_data(const char *path, int rows, int offset)
{
	FILE *f = fopen(path, "w");
	if (!f) return -1;
	for (int i = 0; i < rows; i++) fprintf(f, "{\"prompt\": \"d=%d\", \"answer\": \"%d\"}\n", (i + offset) % 3, (i + offset) % 3);
	return fclose(f);
}

/* Moves the n ids of an encoder's buf (freed) into ids; the count, or -1
 * when st failed or they do not fit cap. */
static inline int fixture_take_ids(iapo_status st, int *buf, size_t n, int *ids, int cap)
{
	if (st != IAPO_OK || (int)n > cap) {
		iapo_free(buf);
		return -1;
	}
	memcpy(ids, buf, n * sizeof(int));
	iapo_free(buf);
	return (int)n;
}

/* Prompt tokens of "d=X" as the trainer renders them (raw, or the generic
 * format's chat prompt with system FIX_SYSTEM and no one-shot) into ids;
 * returns the count, -1 on failure. */
static inline int fixture_prompt(const iapo_tokenizer *tok, int chat, int digit, int *ids, int cap)
{
	char problem[8];
	snprintf(problem, sizeof problem, "d=%d", digit);
	int *buf = NULL;
	size_t n = 0, c = 0;
	iapo_status st = chat ? iapo_prompt_tokens(tok, IAPO_DATA_GENERIC, FIX_SYSTEM, problem, 0, &buf, &n, &c)
			      : iapo_tokenizer_encode(tok, problem, strlen(problem), &buf, &n, &c);
	return fixture_take_ids(st, buf, n, ids, cap);
}

/* IAPO's default postfix (IAPO_INFO_POSTFIX) in the fixture's tokenizer,
 * into ids; the count, -1 on failure. */
static inline int fixture_postfix_ids(const fixture *fx, int *ids, int cap)
{
	iapo_tokenizer *tok;
	if (iapo_tokenizer_load(fx->base, &tok) != IAPO_OK) return -1;
	int *buf = NULL;
	size_t n = 0, c = 0;
	iapo_status st = iapo_tokenizer_encode(tok, IAPO_INFO_POSTFIX, strlen(IAPO_INFO_POSTFIX), &buf, &n, &c);
	iapo_tokenizer_free(tok);
	return fixture_take_ids(st, buf, n, ids, cap);
}

/* Builds the fixture under IAPO_TMP/<name>: init (std 0.1) from seed, then
 * sft_steps SFT steps of 32 examples at lr 1e-2. */
static inline int fixture_make(fixture *fx, const char *name, int chat, int sft_steps, uint64_t seed)
{
	memset(fx, 0, sizeof *fx);
	fx->chat = chat;
	snprintf(fx->root, sizeof fx->root, "%s/%s", test_env("IAPO_TMP", "/tmp"), name);
	iapo_fs_remove_all(fx->root);
	char tokdir[1100];
	snprintf(tokdir, sizeof tokdir, "%s/tok", fx->root);
	snprintf(fx->base, sizeof fx->base, "%s/base", fx->root);
	snprintf(fx->data, sizeof fx->data, "%s/train.jsonl", fx->root);
	snprintf(fx->eval, sizeof fx->eval, "%s/eval.jsonl", fx->root);
	if (iapo_fs_mkdir_p(fx->root) != IAPO_OK || iapo_tokenizer_write_bytelevel(tokdir, NULL, 0) != IAPO_OK) return -1;
	if (fixture_write_data(fx->data, 30, 0) || fixture_write_data(fx->eval, 6, 1)) return -1;
	iapo_tokenizer *tok;
	if (iapo_tokenizer_load(tokdir, &tok) != IAPO_OK) return -1;
	iapo_config c;
	memset(&c, 0, sizeof c);
	c.arch = IAPO_ARCH_QWEN2;
	strcpy(c.model_type, "qwen2");
	c.V = iapo_tokenizer_vocab_size(tok);
	c.C = 32, c.L = 2, c.NH = 4, c.NKV = 2, c.HD = 8, c.F = 64;
	c.max_pos = 256, c.rope_theta = 10000.0f, c.rms_eps = 1e-6f;
	c.tie_embeddings = 1, c.qkv_bias = 1;
	c.bos_id = c.pad_id = -1;
	c.n_eos = iapo_tokenizer_eos_ids(tok, c.eos_ids, IAPO_MAX_EOS);
	strcpy(c.torch_dtype, "float32");
	iapo_weights w;
	int rc = -1;
	iapo_sft *s = NULL;
	if (iapo_weights_init_random(&w, &c, seed, 0.1f) != IAPO_OK) goto out_tok;
	const int think = iapo_tokenizer_token_id(tok, "<think>"), ethink = iapo_tokenizer_token_id(tok, "</think>");
	const int ans = iapo_tokenizer_token_id(tok, "<answer>"), eans = iapo_tokenizer_token_id(tok, "</answer>");
	const int nl = iapo_tokenizer_token_id(tok, "\xc4\x8a"), eos = c.eos_ids[0];
	if (think < 0 || ethink < 0 || ans < 0 || eans < 0 || nl < 0) goto out_w;
	iapo_sft_opts so = {.adam = {.beta1 = 0.9f, .beta2 = 0.99f, .eps = 1e-8f}, .max_grad_norm = 1.0,
			    .micro_batch = 16, .max_len = 128};
	if (iapo_sft_new(&w, &so, &s) != IAPO_OK) goto out_w;
	enum { NB = 32 };
	static int seqs[NB][128];
	const int *ptr[NB];
	int lens[NB], np[NB];
	iapo_rng r;
	iapo_rng_seed(&r, seed, 0x5f7, 0, 0);
	for (int step = 0; step < sft_steps; step++) {
		for (int b = 0; b < NB; b++) {
			int x = (int)iapo_rng_below(&r, 10), y = (int)iapo_rng_below(&r, 10);
			int n = fixture_prompt(tok, chat, x, seqs[b], 112);
			if (n < 0) goto out_s;
			np[b] = n;
			int tail[] = {think, ethink, nl, ans, '0' + y, eans, eos};
			/* digits are byte tokens: byte-level ids 0..255 in byte order */
			memcpy(seqs[b] + n, tail, sizeof tail);
			lens[b] = n + 7;
			ptr[b] = seqs[b];
		}
		iapo_sft_stats st;
		if (iapo_sft_step(s, ptr, lens, np, NB, 1e-2f, &st) != IAPO_OK) goto out_s;
		if (step == 0) fx->sft_loss_first = st.loss;
		fx->sft_loss_last = st.loss;
	}
	if (iapo_weights_save(&w, fx->base, tokdir, "F32", 0) != IAPO_OK) goto out_s;
	rc = 0;
out_s:
	iapo_sft_free(s);
out_w:
	iapo_weights_free(&w);
out_tok:
	iapo_tokenizer_free(tok);
	return rc;
}

/* Options for a GRPO run of the fixture into RUN (a subdirectory of root). */
static inline int fixture_opts(const fixture *fx, const char *run, iapo_train_opts *o)
{
	char out[1200];
	snprintf(out, sizeof out, "%s/%s", fx->root, run);
	if (iapo_train_opts_default(o) != IAPO_OK) return -1;
	int bad = 0;
	bad |= iapo_train_opts_set(o, "model", fx->base) != IAPO_OK;
	bad |= iapo_train_opts_set(o, "data", fx->data) != IAPO_OK;
	bad |= iapo_train_opts_set(o, "out", out) != IAPO_OK;
	if (fx->chat) {
		bad |= iapo_train_opts_set(o, "system", FIX_SYSTEM) != IAPO_OK;
		bad |= iapo_train_opts_set(o, "no-one-shot", NULL) != IAPO_OK;
	} else {
		bad |= iapo_train_opts_set(o, "no-chat-template", NULL) != IAPO_OK;
	}
	bad |= iapo_train_opts_set(o, "prompts-per-step", "10") != IAPO_OK;
	bad |= iapo_train_opts_set(o, "num-generations", "16") != IAPO_OK;
	bad |= iapo_train_opts_set(o, "micro-batch", "32") != IAPO_OK;
	bad |= iapo_train_opts_set(o, "max-completion-tokens", "10") != IAPO_OK;
	bad |= iapo_train_opts_set(o, "learning-rate", "5e-3") != IAPO_OK;
	bad |= iapo_train_opts_set(o, "lr-schedule", "constant") != IAPO_OK;
	bad |= iapo_train_opts_set(o, "threads", "2") != IAPO_OK;
	bad |= iapo_train_opts_set(o, "overwrite", NULL) != IAPO_OK;
	return bad ? -1 : 0;
}

/* Reads a whole file (NULL on failure), for byte comparisons. */
static inline char *fixture_read(const char *path, size_t *len)
{
	char *d = NULL;
	if (iapo_fs_read_file(path, (size_t)1 << 30, &d, len) != IAPO_OK) return NULL;
	return d;
}


/* metrics.jsonl of a run with the timing fields (seconds_*) removed, one
 * normalised line per step; *lines gets the count. NULL on failure. */
static inline char *fixture_metrics(const char *run_dir, int *lines)
{
	char path[1300];
	iapo_json_init();
	snprintf(path, sizeof path, "%s/metrics.jsonl", run_dir);
	size_t len;
	char *d = fixture_read(path, &len);
	if (!d) return NULL;
	size_t cap = len + 1, used = 0;
	char *out = malloc(cap);
	*lines = 0;
	for (char *p = d; out && *p;) {
		char *nl = strchr(p, '\n');
		if (!nl) break;
		*nl = 0;
		cJSON *o = cJSON_Parse(p);
		if (!o) {
			free(out);
			out = NULL;
			break;
		}
		for (cJSON *it = o->child; it;) {
			cJSON *next = it->next;
			if (!strncmp(it->string, "seconds_", 8)) cJSON_Delete(cJSON_DetachItemViaPointer(o, it));
			it = next;
		}
		char *s = cJSON_PrintUnformatted(o);
		size_t k = strlen(s);
		if (used + k + 2 > cap) out = realloc(out, cap = (used + k + 2) * 2);
		memcpy(out + used, s, k);
		used += k;
		out[used++] = '\n';
		out[used] = 0;
		iapo_free(s);
		cJSON_Delete(o);
		(*lines)++;
		p = nl + 1;
	}
	iapo_free(d);
	if (out && used == 0) out[0] = 0;
	return out;
}

/* Number of a metrics line's field (NAN when absent). */
static inline double fixture_field(const char *line, const char *key)
{
	iapo_json_init();
	cJSON *o = cJSON_Parse(line);
	const cJSON *v = o ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
	double x = cJSON_IsNumber(v) ? v->valuedouble : cJSON_IsBool(v) ? (double)cJSON_IsTrue(v) : NAN;
	cJSON_Delete(o);
	return x;
}

/* The n-th line (0-based) of text into a static buffer ("" past the end). */
static inline const char *fixture_line(const char *text, int n)
{
	static char buf[8192];
	const char *p = text;
	for (int i = 0; i < n && p; i++) {
		p = strchr(p, '\n');
		if (p) p++;
	}
	if (!p || !*p) return "";
	size_t k = strcspn(p, "\n");
	if (k >= sizeof buf) k = sizeof buf - 1;
	memcpy(buf, p, k);
	buf[k] = 0;
	return buf;
}

/* 1 if the two files have identical bytes. */
static inline int fixture_same_file(const char *a, const char *b)
{
	size_t na, nb;
	char *x = fixture_read(a, &na), *y = fixture_read(b, &nb);
	int same = x && y && na == nb && memcmp(x, y, na) == 0;
	iapo_free(x);
	iapo_free(y);
	return same;
}

#endif
