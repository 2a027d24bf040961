/*
 * hf_probe.c — test-only helper of tests/oracle/hf_prepare.sh: writes what
 * iapo computes, for tests/oracle/hf_roundtrip.py to compare with the real
 * Hugging Face stack. Built by make (build/oracle/hf_probe) so it keeps
 * compiling; not part of the suite, which cannot run transformers.
 *
 *   hf_probe logits DIR IDS LOGITS GREEDY N  IDS: "B T" then B*T ids; writes
 *       the fp32 logits (B,T,V) and, per row, N greedy tokens (fp32 weights,
 *       no end-of-sequence stop) as a line of ids
 *   hf_probe tok DIR HEXIN OUT               per line of hex(UTF-8 text): our
 *       ids, then hex of four chat renders (see hf_roundtrip.compare_chat)
 *   hf_probe save SRC DST DTYPE SHARD_BYTES  iapo_weights_save of SRC
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "model/generate.h"
#include "model/transformer.h"
#include "model/weights.h"
#include "tokenizer/tokenizer.h"

static int fail(const char *what)
{
	fprintf(stderr, "hf_probe: %s: %s\n", what, iapo_errmsg());
	return 1;
}

static int unhex(const char *h, char *out)
{
	int n = 0;
	unsigned v;
	while (h[0] && h[1] && sscanf(h, "%2x", &v) == 1) out[n++] = (char)v, h += 2;
	return n;
}

/* TAB, then hex of the render (ERR when it fails); frees it. */
static void put_render(FILE *f, iapo_status st, char *s)
{
	fputc('\t', f);
	if (st != IAPO_OK) {
		fputs("ERR", f);
		return;
	}
	for (size_t i = 0; s[i]; i++) fprintf(f, "%02x", (unsigned char)s[i]);
	iapo_free(s);
}

static int tok_mode(char **argv)
{
	iapo_tokenizer *t;
	if (iapo_tokenizer_load(argv[2], &t)) return fail(argv[2]);
	FILE *in = fopen(argv[3], "r"), *out = fopen(argv[4], "w");
	if (!in || !out) return fail("cannot open the text or output file");
	static char line[1 << 20], txt[1 << 19];
	int *ids = NULL;
	size_t n, cap = 0;
	while (fgets(line, sizeof line, in)) {
		line[strcspn(line, "\n")] = 0;
		int len = unhex(line, txt);
		txt[len] = 0;
		if (iapo_tokenizer_encode(t, txt, (size_t)len, &ids, &n, &cap)) fprintf(out, "ERR %s", iapo_errmsg());
		else
			for (size_t i = 0; i < n; i++) fprintf(out, "%s%d", i ? " " : "", ids[i]);
		/* The chat API takes C strings: a NUL inside the text ends it there. */
		iapo_chat_msg m1[3] = {{"user", txt},
				       {"assistant", "<think>\nsome reasoning\n</think>\n\nThe answer is 4."},
				       {"user", "And then?"}};
		iapo_chat_msg m2[3] = {{"system", "S."}, {"user", txt}, {"assistant", "<think>\nr\n</think>\n\nans"}};
		char *c = NULL;
		iapo_status st = iapo_tokenizer_chat(t, NULL, txt, 1, &c);
		put_render(out, st, c);
		st = iapo_tokenizer_chat(t, "You are helpful.", txt, 1, &c);
		put_render(out, st, c);
		st = iapo_tokenizer_chat_messages(t, m1, 3, 1, &c);
		put_render(out, st, c);
		st = iapo_tokenizer_chat_messages(t, m2, 3, 0, &c);
		put_render(out, st, c);
		fputc('\n', out);
	}
	iapo_free(ids);
	fclose(in);
	fclose(out);
	iapo_tokenizer_free(t);
	return 0;
}

static int save_mode(char **argv)
{
	iapo_weights w;
	if (iapo_weights_load(argv[2], &w)) return fail(argv[2]);
	iapo_status st = iapo_weights_save(&w, argv[3], argv[2], argv[4], (size_t)atol(argv[5]));
	iapo_weights_free(&w);
	return st ? fail(argv[3]) : 0;
}

static int logits_mode(char **argv)
{
	iapo_weights w;
	int B, T;
	if (iapo_weights_load(argv[2], &w)) return fail(argv[2]);
	FILE *f = fopen(argv[3], "r");
	if (!f || fscanf(f, "%d %d", &B, &T) != 2 || B < 1 || T < 1) return fail("bad ids file");
	int *tok = malloc(sizeof(int) * B * T), *tgt = malloc(sizeof(int) * B * T), *lens = malloc(sizeof(int) * B);
	for (int i = 0; i < B * T; i++) {
		if (fscanf(f, "%d", &tok[i]) != 1) return fail("short ids file");
		tgt[i] = -1;
	}
	fclose(f);
	for (int b = 0; b < B; b++) lens[b] = T;
	size_t n = (size_t)B * T * w.cfg.V;
	float *lg = malloc(sizeof(float) * n);
	iapo_fwd *fw;
	if (iapo_fwd_new(&w, B, T, 0, &fw) || iapo_fwd_forward(fw, tok, lens, tgt, B, T, NULL, NULL, lg))
		return fail("forward");
	f = fopen(argv[4], "wb");
	if (!f || fwrite(lg, sizeof(float), n, f) != n || fclose(f)) return fail(argv[4]);
	const int **prompts = malloc(sizeof(int *) * B);
	for (int b = 0; b < B; b++) prompts[b] = tok + (size_t)b * T;
	int no_eos = -1;
	iapo_gen_opts o = {.max_new_tokens = atoi(argv[6]), .sampler = {.temperature = 0, .top_p = 1},
			   .eos_ids = &no_eos, .n_eos = 1, .weights = IAPO_GEN_WEIGHTS_FP32};
	iapo_gen_result *r = calloc((size_t)B, sizeof *r);
	if (iapo_generate(&w, prompts, lens, B, &o, NULL, r, NULL)) return fail("generate");
	f = fopen(argv[5], "w");
	if (!f) return fail(argv[5]);
	for (int b = 0; b < B; b++) {
		for (int i = 0; i < r[b].n_tokens; i++) fprintf(f, "%s%d", i ? " " : "", r[b].tokens[i]);
		fputc('\n', f);
	}
	fclose(f);
	iapo_gen_results_free(r, B);
	iapo_fwd_free(fw);
	iapo_weights_free(&w);
	free(r), free(prompts), free(lg), free(tok), free(tgt), free(lens);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 7 && !strcmp(argv[1], "logits")) return logits_mode(argv);
	if (argc == 5 && !strcmp(argv[1], "tok")) return tok_mode(argv);
	if (argc == 6 && !strcmp(argv[1], "save")) return save_mode(argv);
	fprintf(stderr, "usage: hf_probe logits DIR IDS LOGITS GREEDY N | tok DIR HEXIN OUT | save SRC DST DTYPE SHARD_BYTES\n");
	return 2;
}
