/*
 * test_demo_info.c — issue 7, "what must show that it works" item 2, in CI
 * time: the estimator sees what the task generator knows. The test builds
 * its own small base the way `iapo demo --sft-early-exit 0.3` builds the
 * demo's (smaller: 2000 training problems of the demo's task — 2-4
 * operations, quantities <= 20, redundancy 0.5 — a 512-token BPE, a Qwen2
 * 64 wide with 2 layers, 2000 SFT steps of 16 traces, 30% of the rows also
 * training an early exit; one thread: 45 s of CPU, 48 s wall at nice 15 on
 * the shared 2-core machine — two threads cost 88 s of CPU for the same
 * numbers, a 64-wide model being too small to split), then reads 300
 * held-out traces (the generator's own, with its per-character labels)
 * teacher-forced through IAPO's early-exit estimator (demo/span_info.h)
 * and checks:
 *  - the base is uncertain before reasoning and surer after it (E_0 > 1 nat,
 *    E_L at least 0.5 nat lower): without that the gains measure nothing;
 *  - the mean information gain S_t = E_t − E_{t+1} of the answer-determining
 *    step tokens is positive, and the mean over the tokens the generator
 *    marked redundant (restate, filler, verify, summary) is at most a tenth
 *    of it — the claim.
 * Measured with this recipe over 5 data+SFT seeds (11-15; demo research 3,
 * 2026-11-26; the same numbers at 1 and 2 threads): redundant/step -0.029,
 * 0.081, 0.091, 0.043, 0.064 — all within the target, two with a thin margin,
 * so this is the cheapest recipe that held, not a comfortable one. At 1000
 * steps it did not hold (0.026, 0.116, -0.103, -0.062): a weaker model still
 * grows surer when a verify or summary line restates a result, which is real
 * information for it. A base trained without early exits fails the first
 * check (E_0 ~ 0.02: cut early, it answers the last number it wrote,
 * confidently), which is why the early-exit fraction is part of the recipe.
 *
 * Under a sanitizer the SFT is cut to a few steps (a full run would take
 * minutes) and only the plumbing is checked: finite sums, every row read,
 * tokens of every kind counted.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/status.h"
#include "data/bpe_train.h"
#include "data/synth.h"
#include "demo/span_info.h"
#include "io/fs.h"
#include "model/weights.h"
#include "rl/sft_run.h"
#include "sanitizer.h"
#include "test.h"
#include "tokenizer/tokenizer.h"

#define ROWS 300

static char root[1024];

static void set(iapo_sft_run_opts *o, const char *k, const char *v)
{
	if (iapo_sft_run_opts_set(o, k, v) != IAPO_OK) CHECK(0, "set %s: %s", k, iapo_errmsg());
}

/* Data, tokenizer and the early-exit SFT base under root; the model
 * directory into model (cap bytes). 0 on success. */
static int build_base(char *model, size_t cap, char *test_path, size_t tcap)
{
	char data[1100], tok[1100], train[1200], cfgp[1100], out[1100];
	snprintf(data, sizeof data, "%s/data", root);
	snprintf(tok, sizeof tok, "%s/tok", root);
	snprintf(train, sizeof train, "%s/train.jsonl", data);
	snprintf(test_path, tcap, "%s/test.jsonl", data);
	snprintf(cfgp, sizeof cfgp, "%s/config.json", root);
	snprintf(out, sizeof out, "%s/sft", root);
	iapo_synth_opts so;
	iapo_synth_opts_default(&so);
	so.seed = 11, so.n_train = 2000, so.n_test = ROWS, so.min_steps = 2, so.max_steps = 4, so.max_value = 20;
	so.redundancy = 0.5;
	iapo_bpe_opts bo;
	iapo_bpe_opts_default(&bo);
	bo.vocab_size = 512;
	iapo_bpe_result br;
	const char *paths[] = {train};
	iapo_tokenizer *t = NULL;
	if (iapo_synth_generate(&so, data, NULL, NULL) != IAPO_OK || iapo_bpe_train_files(paths, 1, &bo, tok, &br) != IAPO_OK ||
	    iapo_tokenizer_load(tok, &t) != IAPO_OK) {
		CHECK(0, "data and tokenizer: %s", iapo_errmsg());
		return -1;
	}
	char cfg[512];
	int n = snprintf(cfg, sizeof cfg,
			 "{\"model_type\": \"qwen2\", \"vocab_size\": %d, \"hidden_size\": 64, \"intermediate_size\": 192,\n"
			 " \"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"num_key_value_heads\": 2,\n"
			 " \"max_position_embeddings\": 1024, \"tie_word_embeddings\": true, \"initializer_range\": 0.02}\n",
			 iapo_tokenizer_vocab_size(t));
	iapo_tokenizer_free(t);
	if (iapo_fs_write_file(cfgp, cfg, (size_t)n) != IAPO_OK) {
		CHECK(0, "config: %s", iapo_errmsg());
		return -1;
	}
	iapo_sft_run_opts o;
	iapo_sft_run_opts_default(&o);
	set(&o, "model", cfgp);
	set(&o, "tokenizer", tok);
	set(&o, "data", train);
	set(&o, "out", out);
	set(&o, "system", "");
	set(&o, "no-one-shot", NULL);
	set(&o, "threads", "1");
	set(&o, "overwrite", NULL);
	set(&o, "seed", "11");
	set(&o, "max-steps", SANITIZED ? "4" : "2000");
	set(&o, "per-device-train-batch-size", "16");
	set(&o, "learning-rate", "3e-3");
	set(&o, "warmup-steps", SANITIZED ? "1" : "200");
	set(&o, "lr-scheduler-type", "cosine");
	set(&o, "logging-steps", "100");
	set(&o, "early-exit-fraction", "0.3");
	iapo_sft_run_result r;
	iapo_status st = iapo_sft_run(&o, &r);
	CHECK(st == IAPO_OK, "SFT: %s", iapo_errmsg());
	if (st == IAPO_OK) {
		fprintf(stderr, "  SFT %ld steps: loss %.3f -> %.3f, %.1f s\n", r.steps_done, r.loss_first, r.loss_last, r.seconds);
		snprintf(model, cap, "%s", r.model_dir);
	}
	iapo_sft_run_opts_free(&o);
	return st == IAPO_OK ? 0 : -1;
}

static void test_redundant_gain(void)
{
	char model[4200], test_path[1200];
	if (build_base(model, sizeof model, test_path, sizeof test_path) != 0) return;
	iapo_weights w;
	iapo_tokenizer *tok = NULL;
	if (iapo_weights_load(model, &w) != IAPO_OK || iapo_tokenizer_load(model, &tok) != IAPO_OK) {
		CHECK(0, "load %s: %s", model, iapo_errmsg());
		iapo_tokenizer_free(tok);
		return;
	}
	iapo_span_info_opts io = iapo_span_info_defaults();
	iapo_span_info *s = NULL;
	iapo_span_info_stats a;
	iapo_status st = iapo_span_info_new(&w, tok, &io, &s);
	if (st == IAPO_OK) st = iapo_span_info_file(s, test_path, SANITIZED ? 20 : ROWS, &a);
	CHECK(st == IAPO_OK, "estimator: %s", iapo_errmsg());
	if (st == IAPO_OK) {
		static const char *const names[] = {"step", "restate", "filler", "verify", "summary"};
		const double e0 = a.entropy_first / a.rows, el = a.entropy_last / a.rows;
		const double step = iapo_span_info_mean(&a, IAPO_SYNTH_STEP), red = iapo_span_info_redundant_mean(&a);
		const double ratio = iapo_span_info_ratio(&a);
		fprintf(stderr, "  %.0f rows: E_0 %.3f, E_L %.3f; mean S_t:", a.rows, e0, el);
		for (int k = 0; k < 5; k++) fprintf(stderr, " %s %+.4f", names[k], iapo_span_info_mean(&a, (iapo_synth_kind)k));
		fprintf(stderr, "; redundant %+.5f; redundant/step %.4f\n", red, ratio);
		CHECK(a.rows == (SANITIZED ? 20 : ROWS), "rows read: %.0f", a.rows);
		CHECK(a.straddle == 0, "%.0f tokens straddle a span boundary", a.straddle);
		for (int k = 0; k < 5; k++) CHECK(a.tokens[k] > 0, "no %s tokens", names[k]);
		CHECK(isfinite(e0) && isfinite(el) && isfinite(step) && isfinite(red), "sums: %g %g %g %g", e0, el, step, red);
		if (!SANITIZED) {
			/* measured, seeds 11-15: E_0 1.38-1.57, E_L 0.03-0.21 */
			CHECK(e0 > 1.0 && el < e0 - 0.5, "answer entropy before reasoning %.3f, after %.3f", e0, el);
			CHECK(step > 0, "mean gain of step tokens %.4f", step);
			/* this seed: step +0.052, redundant -0.0015, ratio -0.029 */
			CHECK(step > 0 && red <= 0.1 * step, "redundant %.5f vs step %.5f: ratio %.4f (target <= 0.1)", red, step,
			      ratio);
		}
	}
	iapo_span_info_free(s);
	iapo_weights_free(&w);
	iapo_tokenizer_free(tok);
}

int main(void)
{
	snprintf(root, sizeof root, "%s/test_demo_info", test_env("IAPO_TMP", "/tmp"));
	iapo_fs_remove_all(root);
	iapo_fs_mkdir_p(root);
	RUN(test_redundant_gain);
	iapo_fs_remove_all(root);
	TEST_END();
}
