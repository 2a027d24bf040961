/*
 * demo_info.c — issue 7's check "the estimator sees what the generator
 * knows" on the cached demo base: the synthetic test traces (the generator's
 * own, with its per-character labels) are read teacher-forced by the model,
 * and the mean information gain S_t per span kind is printed
 * (demo/span_info.h), with the target ratio redundant/step <= 0.1. Also the
 * mean |S_t| per kind: the signed sums telescope to E_0 − E_L per trace, so
 * when a model is already confident before reasoning (E_0 ~ 0) every signed
 * mean is ~0 and only the magnitudes say where the estimator's signal is.
 *
 *   build/bench/demo_info [--model DIR] [--data FILE] [--rows N]
 *                         [--answer-tokens N] [--postfix TEXT] [--gain plain|reference]
 * Defaults: the default `iapo demo` run directory (demo-run/base/sft and
 * demo-run/data/test.jsonl), 200 rows, N 1 and the trainer's postfix. Without
 * a base there it says so and exits 0 (bench/run.sh runs every program; the
 * base takes minutes to build, so this program does not build one).
 * Output: one JSON line (stdout), a readable table (stderr).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bench.h"
#include "core/status.h"
#include "demo/span_info.h"

static int usage(void)
{
	fprintf(stderr, "usage: demo_info [--model DIR] [--data FILE] [--rows N] [--answer-tokens N] [--postfix TEXT] "
			"[--gain plain|reference]\n");
	return 2;
}

int main(int argc, char **argv)
{
	const char *model = "demo-run/base/sft", *data = "demo-run/data/test.jsonl";
	int rows = 200;
	iapo_span_info_opts o = iapo_span_info_defaults();
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--model") && v) model = v, i++;
		else if (!strcmp(a, "--data") && v) data = v, i++;
		else if (!strcmp(a, "--rows") && v) rows = atoi(v), i++;
		else if (!strcmp(a, "--answer-tokens") && v) o.answer_tokens = atoi(v), i++;
		else if (!strcmp(a, "--postfix") && v) o.postfix = v, i++;
		else if (!strcmp(a, "--gain") && v) {
			if (iapo_gain_parse(v, &o.gain) != IAPO_OK) return usage();
			i++;
		} else if (!strcmp(a, "--quick") || !strcmp(a, "--threads")) {
			/* bench/run.sh's common options: nothing to shorten here */
			if (!strcmp(a, "--threads")) i++;
		} else
			return usage();
	}
	struct stat sb;
	char cfg[2048];
	snprintf(cfg, sizeof cfg, "%s/config.json", model);
	if (stat(cfg, &sb) != 0 || stat(data, &sb) != 0) {
		fprintf(stderr, "demo_info: no demo base at %s (or no %s): run `iapo demo` first, or give --model and --data; "
				"skipped\n",
			model, data);
		return 0;
	}
	iapo_weights w;
	iapo_tokenizer *tok = NULL;
	iapo_span_info *s = NULL;
	iapo_span_info_stats a;
	double t0 = bench_now();
	iapo_status st = iapo_weights_load(model, &w);
	if (st == IAPO_OK) st = iapo_tokenizer_load(model, &tok);
	if (st == IAPO_OK) st = iapo_span_info_new(&w, tok, &o, &s);
	if (st == IAPO_OK) st = iapo_span_info_file(s, data, rows, &a);
	if (st != IAPO_OK) {
		fprintf(stderr, "demo_info: %s\n", iapo_errmsg());
		return 1;
	}
	double secs = bench_now() - t0;
	fprintf(stderr, "demo_info: %s on %.0f rows of %s (answer tokens %d, postfix %s, gain %s): %.1f s\n", model, a.rows,
		data, o.answer_tokens, o.postfix ? o.postfix : "default", iapo_gain_str(o.gain), secs);
	fprintf(stderr, "  mean E_0 %.4f nats (no reasoning), mean E_L %.4f (whole trace); %.0f straddling tokens\n",
		a.entropy_first / a.rows, a.entropy_last / a.rows, a.straddle);
	fprintf(stderr, "  %-8s %8s %12s %12s\n", "kind", "tokens", "mean S", "mean |S|");
	printf("{\"bench\":\"demo_info\",\"model\":\"%s\",\"rows\":%.0f,\"answer_tokens\":%d,\"gain\":\"%s\",\"seconds\":%.3f,"
	       "\"entropy_first\":%.6f,\"entropy_last\":%.6f,\"kinds\":{",
	       model, a.rows, o.answer_tokens, iapo_gain_str(o.gain), secs, a.entropy_first / a.rows,
	       a.entropy_last / a.rows);
	double rn = 0, rabs = 0;
	for (int k = 0; k < IAPO_SYNTH_N_KINDS; k++) {
		double n = a.tokens[k], m = n > 0 ? a.gain_sum[k] / n : NAN, ma = n > 0 ? a.gain_abs[k] / n : NAN;
		if (iapo_synth_kind_redundant((iapo_synth_kind)k)) rn += n, rabs += a.gain_abs[k];
		fprintf(stderr, "  %-8s %8.0f %+12.6f %12.6f\n", iapo_synth_kind_name((iapo_synth_kind)k), n, m, ma);
		printf("%s\"%s\":{\"tokens\":%.0f,\"mean_gain\":%.6g,\"mean_abs_gain\":%.6g}", k ? "," : "",
		       iapo_synth_kind_name((iapo_synth_kind)k), n, isnan(m) ? 0.0 : m, isnan(ma) ? 0.0 : ma);
	}
	double ratio = iapo_span_info_ratio(&a);
	double step_abs = a.tokens[IAPO_SYNTH_STEP] > 0 ? a.gain_abs[IAPO_SYNTH_STEP] / a.tokens[IAPO_SYNTH_STEP] : NAN;
	double abs_ratio = rn > 0 && step_abs > 0 ? (rabs / rn) / step_abs : NAN;
	fprintf(stderr, "  redundant/step mean S: %.4f (target <= 0.1; NaN when the step mean is not positive); mean |S|: %.4f\n",
		ratio, abs_ratio);
	char rbuf[32] = "null", abuf[32] = "null";
	if (!isnan(ratio)) snprintf(rbuf, sizeof rbuf, "%.6g", ratio);
	if (!isnan(abs_ratio)) snprintf(abuf, sizeof abuf, "%.6g", abs_ratio);
	printf("},\"ratio\":%s,\"abs_ratio\":%s,\"target_met\":%s}\n", rbuf, abuf,
	       !isnan(ratio) && ratio <= 0.1 ? "true" : "false");
	iapo_span_info_free(s);
	iapo_tokenizer_free(tok);
	iapo_weights_free(&w);
	return 0;
}
