/*
 * cmd_info.c — `iapo info`: how much each token of a completion told the
 * policy about its final answer. Runs the early-exit estimator (rl/info.h) on
 * one prompt + completion (given, or sampled here) and writes the per-token
 * answer entropy E_t, information gain S_t and policy entropy C_t as a TSV
 * and an HTML heat map (rl/info_report.h); a short summary goes to stdout,
 * timings to stderr.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "core/mem.h"
#include "model/generate.h"
#include "model/weights.h"
#include "rl/iapo_adv.h"
#include "rl/iapo_hook.h"
#include "rl/info.h"
#include "rl/info_report.h"
#include "rl/memory.h"
#include "tokenizer/tokenizer.h"

#define CMD "info"

static void help(void)
{
	printf("usage: iapo info --model DIR --prompt TEXT [options]\n"
	       "\n"
	       "For every token o_t of a completion, the entropy E_t of the model's first\n"
	       "answer token when the reasoning is cut just before o_t and the postfix is\n"
	       "appended (prompt + o_<t + POSTFIX), its information gain S_t = E_t - E_t+1\n"
	       "and the ordinary next-token entropy C_t (IAPO's early-exit estimator). The\n"
	       "prompt is wrapped in the model's chat template unless --raw is given.\n"
	       "Without --completion, one completion is sampled first.\n"
	       "\n"
	       "options:\n"
	       "  --model DIR         Hugging Face model directory (required)\n"
	       "  --prompt TEXT       the user message, or with --raw the exact text (required)\n"
	       "  --system TEXT       system message (default: the template's own default)\n"
	       "  --raw               tokenize the prompt as is, no chat template\n"
	       "  --completion TEXT   the completion to analyse (tokenized as is and appended to\n"
	       "                      the prompt's tokens); default: sample one\n"
	       "  --max-tokens N      tokens to sample at most (default 256)\n"
	       "  --temperature F     sampling temperature, 0 = greedy (default 1.0); also the\n"
	       "                      temperature of every entropy (1 when 0)\n"
	       "  --seed N            sampling seed (default 0)\n"
	       "  --postfix TEXT      appended after each cut (default \"%s\")\n"
	       "  --predict MODE      answer (default): E_t as above; next_token: E_t := C_t,\n"
	       "                      no postfix (the paper's ablation)\n"
	       "  --answer-tokens N   E_t sums the entropies of the first N answer tokens of the\n"
	       "                      model's own greedy answer (default 1, as the paper)\n"
	       "  --chunk N           positions per batched pass, 0 = automatic (default 0)\n"
	       "  --info-stride N     APPROXIMATION: estimate E at every N-th position (and at the\n"
	       "                      end) only, linear in between (default 1 = exact)\n"
	       "  --info-at newline   APPROXIMATION: estimate E only after tokens holding a\n"
	       "                      newline (one estimate per line), linear in between\n"
	       "  --gain MODE         plain (default): S_t = E_t - E_t+1; reference: the authors'\n"
	       "                      (E_t + E_t-1)/2 - E_t+1. The TSV's info_gain and the colours\n"
	       "                      use it\n"
	       "  --norm MODE         zscore (default) or reference: per-completion normalisation\n"
	       "                      of S and C in the token advantage shown on hover\n"
	       "  --horizon N         smooth S over N tokens ahead (default 1 = none)\n"
	       "  --decay F           horizon decay (default 0.5)\n"
	       "  --w-info F          weight of the information term w_s (default 1)\n"
	       "  --w-conf F          weight of the confidence term w_c (default 1; the authors'\n"
	       "                      CLI default 1e-6 makes both terms numerically nothing)\n"
	       "  --tsv FILE          write the per-token table (header: pos token_id token\n"
	       "                      answer_entropy info_gain policy_entropy)\n"
	       "  --html FILE         write the heat map (self-contained HTML)\n"
	       "  --threads N         OpenMP/BLAS threads, 0 = all cores (default 0)\n"
	       "  --no-memory-check   skip the memory estimate made before loading (a run that\n"
	       "                      would not fit MemAvailable or the cgroup limit is refused)\n"
	       "  -h, --help          this help\n"
	       "\n"
	       "The token advantage on hover is A_t = A + w_s*S^_t - w_c*C^_t for a correct\n"
	       "completion with sequence advantage A = 1 (display only: one completion has no\n"
	       "group). Token texts in the TSV escape \\ tab newline CR, control and non-UTF-8\n"
	       "bytes as \\\\ \\t \\n \\r \\xHH.\n",
	       IAPO_INFO_POSTFIX);
}

static FILE *open_out(const char *path)
{
	FILE *f = fopen(path, "wb");
	if (!f) {
		fprintf(stderr, "iapo %s: %s: cannot open for writing\n", CMD, path);
		exit(1);
	}
	return f;
}

static void close_out(FILE *f, const char *path, iapo_status st)
{
	if (fclose(f) != 0 && st == IAPO_OK) st = IAPO_ERR_IO;
	if (st != IAPO_OK) {
		fprintf(stderr, "iapo %s: %s: write failed\n", CMD, path);
		exit(1);
	}
}

int cmd_info(int argc, char **argv)
{
	cli_prompt_opts po;
	cli_prompt_opts_default(&po);
	const char *completion = NULL, *postfix = IAPO_INFO_POSTFIX, *html = NULL, *tsv = NULL;
	int answer_tokens = 1, chunk = 0, stride = 1, at_newline = 0;
	iapo_predict predict = IAPO_PREDICT_ANSWER;
	iapo_tokadv_opts ao = iapo_tokadv_defaults();
	const int no_mem_check = iapo_mem_take_flag(&argc, argv);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (cli_is_help(a)) {
			help();
			return 0;
		} else if (cli_prompt_opt(CMD, argc, argv, &i, &po)) {
			continue;
		} else if (!strcmp(a, "--completion")) {
			completion = cli_value(CMD, argc, argv, &i);
		} else if (!strcmp(a, "--postfix")) {
			postfix = cli_value(CMD, argc, argv, &i);
		} else if (!strcmp(a, "--predict")) {
			const char *v = cli_value(CMD, argc, argv, &i);
			if (iapo_predict_parse(v, &predict) != IAPO_OK)
				cli_usage_error(CMD, "--predict: expected answer or next_token, found '%s'", v);
		} else if (!strcmp(a, "--answer-tokens")) {
			answer_tokens = cli_int(CMD, a, cli_value(CMD, argc, argv, &i), 1, 64);
		} else if (!strcmp(a, "--chunk")) {
			chunk = cli_int(CMD, a, cli_value(CMD, argc, argv, &i), 0, 1 << 20);
		} else if (!strcmp(a, "--info-stride")) {
			stride = cli_int(CMD, a, cli_value(CMD, argc, argv, &i), 1, 1 << 20);
		} else if (!strcmp(a, "--info-at")) {
			const char *v = cli_value(CMD, argc, argv, &i);
			if (strcmp(v, "newline")) cli_usage_error(CMD, "--info-at: expected newline, found '%s'", v);
			at_newline = 1;
		} else if (!strcmp(a, "--gain")) {
			const char *v = cli_value(CMD, argc, argv, &i);
			if (iapo_gain_parse(v, &ao.gain) != IAPO_OK)
				cli_usage_error(CMD, "--gain: expected plain or reference, found '%s'", v);
		} else if (!strcmp(a, "--norm")) {
			const char *v = cli_value(CMD, argc, argv, &i);
			if (iapo_norm_parse(v, &ao.norm) != IAPO_OK)
				cli_usage_error(CMD, "--norm: expected zscore or reference, found '%s'", v);
		} else if (!strcmp(a, "--horizon")) {
			ao.horizon = cli_int(CMD, a, cli_value(CMD, argc, argv, &i), 1, 1 << 16);
		} else if (!strcmp(a, "--decay")) {
			ao.decay = (float)cli_float(CMD, a, cli_value(CMD, argc, argv, &i), 0, 1e6);
		} else if (!strcmp(a, "--w-info")) {
			ao.w_info = (float)cli_float(CMD, a, cli_value(CMD, argc, argv, &i), -1e6, 1e6);
		} else if (!strcmp(a, "--w-conf")) {
			ao.w_conf = (float)cli_float(CMD, a, cli_value(CMD, argc, argv, &i), -1e6, 1e6);
		} else if (!strcmp(a, "--tsv")) {
			tsv = cli_value(CMD, argc, argv, &i);
		} else if (!strcmp(a, "--html")) {
			html = cli_value(CMD, argc, argv, &i);
		} else {
			cli_usage_error(CMD, "unknown option '%s'", a);
		}
	}
	cli_prompt_check(CMD, &po);
	if (po.raw && !*po.prompt) cli_usage_error(CMD, "--prompt: expected text with --raw, found an empty string");
	if (predict == IAPO_PREDICT_ANSWER && !*postfix) cli_usage_error(CMD, "--postfix: expected text, found an empty string");
	if (stride > 1 && at_newline) cli_usage_error(CMD, "--info-stride and --info-at exclude each other");
	if (po.threads > 0) iapo_set_threads(po.threads);

	if (!no_mem_check) {
		/* at most one token per byte of prompt, system and completion, plus the template's */
		double len = (double)strlen(po.prompt) + (po.system ? (double)strlen(po.system) : 0) + (po.raw ? 0 : 128) +
			     (completion ? (double)strlen(completion) : (double)po.max_tokens);
		iapo_mem_plan plan;
		iapo_mem_plan_init(&plan);
		iapo_status ms = iapo_mem_plan_info(&plan, po.model, len > 1 << 30 ? 1 << 30 : (int)len, answer_tokens, chunk);
		if ((ms = iapo_mem_guard(ms, &plan, "this analysis")) != IAPO_OK) cli_fail(CMD, ms);
	}
	double t0 = cli_now();
	iapo_weights w;
	iapo_tokenizer *tok;
	cli_load_model(CMD, po.model, &w, &tok);
	char *text;
	int *ids, *post = NULL;
	size_t P, K = 0, pcap = 0;
	cli_prompt_tokens(CMD, tok, po.system, po.prompt, po.raw, &text, &ids, &P);
	iapo_status st;
	if ((st = iapo_tokenizer_encode(tok, postfix, strlen(postfix), &post, &K, &pcap)) != IAPO_OK) cli_fail(CMD, st);

	/* the completion: given, or sampled */
	int *comp = NULL;
	size_t L = 0, ccap = 0;
	const char *source = "given";
	iapo_gen_result res;
	memset(&res, 0, sizeof res);
	double t1 = cli_now(), t_gen = 0;
	if (completion) {
		if ((st = iapo_tokenizer_encode(tok, completion, strlen(completion), &comp, &L, &ccap)) != IAPO_OK)
			cli_fail(CMD, st);
	} else {
		int eos[IAPO_MAX_EOS + 16], n_eos = cli_eos_ids(&w, tok, eos);
		const int *prompts[1] = {ids};
		int plen[1] = {(int)P};
		iapo_gen_opts go = {.max_new_tokens = po.max_tokens,
				    .sampler = {(float)po.temperature, 0, 1.0f},
				    .seed = po.seed,
				    .eos_ids = eos,
				    .n_eos = n_eos,
				    .tok = tok};
		if ((st = iapo_generate(&w, prompts, plen, 1, &go, NULL, &res, NULL)) != IAPO_OK) cli_fail(CMD, st);
		comp = res.tokens;
		L = (size_t)res.n_tokens;
		source = res.finish == IAPO_FINISH_EOS ? "sampled, ended by eos" : "sampled, stopped at --max-tokens";
		t_gen = cli_now() - t1;
	}

	/* the estimator */
	iapo_info_opts io = iapo_info_defaults();
	io.predict = predict;
	io.postfix = post;
	io.n_postfix = (int)K;
	io.answer_tokens = answer_tokens;
	io.temperature = po.temperature > 0 ? (float)po.temperature : 1.0f;
	io.chunk = chunk;
	io.stride = stride;
	int *nl_ids = NULL, n_nl = 0;
	if (at_newline) {
		if ((st = iapo_newline_tokens(tok, &nl_ids, &n_nl)) != IAPO_OK) cli_fail(CMD, st);
		if (n_nl > 0) {
			io.at_tokens = nl_ids;
			io.n_at = n_nl;
		} else {
			io.stride = 1 << 30; /* no newline token at all: E at 0 and L only */
		}
	}
	iapo_info *est = NULL;
	if ((st = iapo_info_new(&w, 1, (int)(P + L), &io, &est)) != IAPO_OK) cli_fail(CMD, st);
	const size_t n1 = L + 1;
	float *E = iapo_calloc(n1, sizeof(float)), *C = iapo_calloc(n1, sizeof(float));
	float *S = iapo_calloc(n1, sizeof(float)), *Sh = iapo_calloc(n1, sizeof(float));
	float *Ch = iapo_calloc(n1, sizeof(float)), *adv = iapo_calloc(n1, sizeof(float));
	char **ttext = iapo_calloc(n1, sizeof(char *));
	size_t *tlen = iapo_calloc(n1, sizeof(size_t));
	if (!E || !C || !S || !Sh || !Ch || !adv || !ttext || !tlen) cli_fail(CMD, IAPO_ERR_NOMEM);
	const int *prompts[1] = {ids}, *comps[1] = {comp};
	int plen[1] = {(int)P}, clen[1] = {(int)L};
	iapo_info_batch b = {.n = 1, .prompts = prompts, .plen = plen, .comps = comps, .clen = clen};
	iapo_info_stats stats;
	if ((st = iapo_info_compute(est, &b, E, C, (int)n1, &stats)) != IAPO_OK) cli_fail(CMD, st);
	const float display_A = 1.0f;
	if ((st = iapo_tokadv_compute(&ao, (int)L, E, C, display_A, 1.0f, adv, S, Sh, Ch)) != IAPO_OK) cli_fail(CMD, st);
	for (size_t t = 0; t < L; t++) {
		size_t tc = 0;
		if ((st = iapo_tokenizer_decode(tok, comp + t, 1, 0, &ttext[t], &tlen[t], &tc)) != IAPO_OK) cli_fail(CMD, st);
	}

	char settings[1024], where[96] = "every position";
	if (at_newline) snprintf(where, sizeof where, "after newline tokens only (an approximation)");
	else if (stride > 1) snprintf(where, sizeof where, "every %d-th position only (an approximation)", stride);
	if (predict == IAPO_PREDICT_ANSWER)
		snprintf(settings, sizeof settings,
			 "predict answer: postfix \"%.200s\" (%zu tokens), %d answer token%s, E estimated at %s; entropy "
			 "temperature %g; gain %s; advantage: norm %s, horizon %d, decay %g, w_info %g, w_conf %g; completion %s",
			 postfix, K, answer_tokens, answer_tokens > 1 ? "s" : "", where, (double)io.temperature,
			 iapo_gain_str(ao.gain), iapo_norm_str(ao.norm), ao.horizon, (double)ao.decay, (double)ao.w_info,
			 (double)ao.w_conf, source);
	else
		snprintf(settings, sizeof settings,
			 "predict next_token (E_t = C_t); entropy temperature %g; gain %s; advantage: norm %s, horizon %d, "
			 "decay %g, w_info %g, w_conf %g; completion %s",
			 (double)io.temperature, iapo_gain_str(ao.gain), iapo_norm_str(ao.norm), ao.horizon,
			 (double)ao.decay, (double)ao.w_info, (double)ao.w_conf, source);
	iapo_info_report rep = {.model = po.model,
				.prompt_text = text,
				.settings = settings,
				.L = (int)L,
				.ids = comp,
				.text = (const char *const *)ttext,
				.text_len = tlen,
				.E = E,
				.S = S,
				.C = C,
				.S_hat = Sh,
				.C_hat = Ch,
				.adv = adv,
				.display_A = display_A};
	if (tsv) {
		FILE *f = open_out(tsv);
		close_out(f, tsv, iapo_info_tsv_write(f, &rep));
	}
	if (html) {
		FILE *f = open_out(html);
		close_out(f, html, iapo_info_html_write(f, &rep));
	}

	/* summary */
	double sum = 0;
	int near = 0, top[3] = {-1, -1, -1};
	for (size_t t = 0; t < L; t++) {
		sum += S[t];
		near += S[t] < IAPO_NEAR_ZERO_GAIN && S[t] > -IAPO_NEAR_ZERO_GAIN;
		for (int k = 0; k < 3; k++)
			if (top[k] < 0 || S[t] > S[top[k]]) {
				for (int j = 2; j > k; j--) top[j] = top[j - 1];
				top[k] = (int)t;
				break;
			}
	}
	printf("iapo info: %zu completion tokens (%s) after a %zu-token prompt (%s)\n", L, source, P,
	       po.raw ? "raw" : "chat template");
	printf("iapo info: E_0 = %.4f nats, E_L = %.4f nats, total gain %.4f, mean %.4f per token, "
	       "near-zero gain (|S| < %g) on %d of %zu tokens\n",
	       (double)E[0], (double)E[L], sum, L ? sum / (double)L : 0.0, IAPO_NEAR_ZERO_GAIN, near, L);
	if (L > 0) {
		printf("iapo info: largest gains:");
		for (int k = 0; k < 3 && top[k] >= 0; k++) {
			char *esc = iapo_malloc(4 * tlen[top[k]] + 1);
			if (!esc) cli_fail(CMD, IAPO_ERR_NOMEM);
			iapo_info_tsv_escape(ttext[top[k]], tlen[top[k]], esc);
			printf(" t=%d \"%s\" %+.4f%s", top[k], esc, (double)S[top[k]], k < 2 && top[k + 1] >= 0 ? ";" : "");
			iapo_free(esc);
		}
		printf("\n");
	}
	char gen[64] = "";
	if (!completion) snprintf(gen, sizeof gen, "; sampling %.3f s", t_gen);
	fprintf(stderr, "iapo info: load %.2f s%s; information pass %.3f s (prefill %.3f s, %ld postfix rows, chunk %d)\n",
		t1 - t0, gen, stats.seconds_prefill + stats.seconds_pass, stats.seconds_prefill, stats.rows_pass,
		iapo_info_chunk(est));

	for (size_t t = 0; t < L; t++) iapo_free(ttext[t]);
	iapo_free(ttext);
	iapo_free(tlen);
	iapo_free(E);
	iapo_free(C);
	iapo_free(S);
	iapo_free(Sh);
	iapo_free(Ch);
	iapo_free(adv);
	iapo_info_free(est);
	iapo_free(nl_ids);
	if (completion) iapo_free(comp);
	iapo_gen_results_free(&res, 1);
	iapo_free(ids);
	iapo_free(post);
	iapo_free(text);
	iapo_tokenizer_free(tok);
	iapo_weights_free(&w);
	return 0;
}
