/*
 * cmd_demo.c — `iapo demo`: the embedded default. Parses the options (one
 * per knob of src/demo/demo.h), runs the demo in-process and turns
 * SIGINT/SIGTERM into "finish the step, save, stop" (a second run continues
 * from what is finished).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "core/status.h"
#include "demo/demo.h"

#define CMD "demo"

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	stop_requested = 1;
	signal(sig, SIG_DFL);
}

static void help(void)
{
	iapo_demo_opts d, q;
	iapo_demo_opts_default(&d);
	iapo_demo_opts_quick(&q);
	printf("usage: iapo demo [--out DIR] [--seeds N] [--threads N] [--quick] [options]\n"
	       "\n"
	       "The embedded default: needs nothing downloaded. It writes a synthetic reasoning\n"
	       "task (chained arithmetic with verbose chain-of-thought traces) and a BPE\n"
	       "tokenizer for it, trains a small Qwen2-shaped model on the traces from random\n"
	       "weights (SFT), then post-trains that same base with each method (same seeds,\n"
	       "same budget), evaluates the base and every method on the held-out test split,\n"
	       "prints a table and writes DIR/results.json and DIR/report.html (curves, the\n"
	       "table, information heat maps of one test problem answered by the base and by\n"
	       "the IAPO model). Progress with elapsed and remaining time goes to stderr.\n"
	       "\n"
	       "Methods: grpo; iapo (IAPO with the --iapo settings); iapo_no_info (+ --w-info 0:\n"
	       "is it the information term?); iapo_refnorm (+ --norm reference, the authors'\n"
	       "normalisation); iapo_answer_span (+ --answer-tokens N, N covering the answer\n"
	       "block); lenpen (GRPO + the Kimi length reward).\n"
	       "\n"
	       "Caching: the data, the base model and every finished RL run are kept in DIR with\n"
	       "a fingerprint of their settings and of the iapo binary; running again with the\n"
	       "same settings and binary reuses them (and says so); different settings or a\n"
	       "rebuilt iapo rebuild what they change.\n"
	       "Each RL run DIR/rl/<method>/seed-<s>/ is an ordinary `iapo train` run directory:\n"
	       "iapo report, iapo eval and iapo train --resume understand it.\n"
	       "\n"
	       "options (default; --quick value in brackets where it differs):\n"
	       "  --out DIR                 output directory (%s)\n"
	       "  --seeds N                 RL seeds 1..N per method; the table shows mean +- std (%d)\n"
	       "  --threads N               OpenMP threads, 0 = all cores (0)\n"
	       "  --quick                   the reduced demo CI runs (about a minute on 2 cores)\n"
	       "  --methods LIST            comma-separated subset of the methods (all six)\n"
	       " data:\n"
	       "  --data-seed N             (%llu)\n"
	       "  --train N, --test N       problems per split (%d, %d) [%d, %d]\n"
	       "  --steps MIN-MAX           operations per problem (%d-%d) [%d-%d]\n"
	       "  --max-value N             largest quantity (%d)\n"
	       "  --redundancy F            mean verbosity of the traces, 0..1 (%g)\n"
	       "  --vocab N                 BPE vocabulary (%d) [%d]\n"
	       " model and SFT:\n"
	       "  --hidden N, --layers N    width and depth (%d, %d) [%d, %d]\n"
	       "  --heads N, --kv-heads N   attention heads (%d, %d)\n"
	       "  --intermediate N          MLP width (%d) [%d]\n"
	       "  --init-std F              initial weight std (%g)\n"
	       "  --sft-steps N             SFT steps (%ld) [%ld]\n"
	       "  --sft-batch N             traces per SFT step (%ld) [%ld]\n"
	       "  --sft-lr F                peak SFT learning rate, cosine decay (%g)\n"
	       "  --sft-warmup N            warm-up steps (%ld) [%ld]\n"
	       "  --sft-seed N              (%ld)\n"
	       "  --sft-early-exit F        share of traces that also train an early exit (iapo sft\n"
	       "                            --early-exit-fraction): a base that can answer from a cut\n"
	       "                            trace, which IAPO's estimator asks of it (%g)\n"
	       " prompt (SFT, RL and eval alike):\n"
	       "  --system TEXT             system prompt (default: empty, to keep prompts short)\n"
	       "  --r1-system               use the R1 system prompt of `iapo train` instead\n"
	       "  --one-shot                add the reference's one-shot turn (off)\n"
	       " RL (every method):\n"
	       "  --rl-steps N              optimizer steps (%ld) [%ld]\n"
	       "  --prompts-per-step N      (%ld) [%ld]\n"
	       "  --group N                 completions per prompt, G (%ld) [%ld]\n"
	       "  --max-completion-tokens N (%ld) [%ld]; also the evaluation's budget\n"
	       "  --rl-lr F                 constant learning rate (%g)\n"
	       "  --temperature F           sampling temperature, RL and eval (%g)\n"
	       "  --beta F                  KL coefficient (%g)\n"
	       "  --loss-type T             grpo | bnpo | dr_grpo (%s)\n"
	       "  --iapo KEY=VALUE          an `iapo train` option for the iapo* methods; the first use\n"
	       "                            replaces the default list (",
	       d.out, d.seeds, (unsigned long long)d.data_seed, d.n_train, d.n_test, q.n_train, q.n_test, d.min_steps,
	       d.max_steps, q.min_steps, q.max_steps, d.max_value, d.redundancy, d.vocab, q.vocab, d.hidden, d.layers,
	       q.hidden, q.layers, d.heads, d.kv_heads, d.intermediate, q.intermediate, d.init_std, d.sft_steps,
	       q.sft_steps, d.sft_batch, q.sft_batch, d.sft_lr, d.sft_warmup, q.sft_warmup, d.sft_seed, d.sft_early_exit, d.rl_steps,
	       q.rl_steps, d.prompts_per_step, q.prompts_per_step, d.group, q.group, d.max_completion, q.max_completion,
	       d.rl_lr, d.temperature, d.beta, d.loss_type);
	for (int i = 0; i < d.n_iapo_opts; i++) printf("%s%s", i ? " " : "", d.iapo_opts[i]);
	if (!d.n_iapo_opts) printf("none: iapo train's IAPO defaults");
	printf(")\n"
	       "  --answer-span N           iapo_answer_span's --answer-tokens (0 = the longest answer\n"
	       "                            block \"N</answer>\" in the training data) (0)\n"
	       "  --set [METHOD:]KEY=VALUE  any `iapo train` option, for every method or one; applied\n"
	       "                            last (e.g. --set lenpen:lenpen-weight=0.5)\n"
	       " evaluation:\n"
	       "  --eval-problems N         first N test problems, 0 = all (%d) [%d]\n"
	       "  --eval-samples K          samples per problem, the k of pass@k (%d) [%d]\n"
	       "  --eval-seed N             (%llu)\n"
	       "  -h, --help                this help\n"
	       "\n"
	       "output: the table on stdout; DIR/data/ (train.jsonl, test.jsonl, tokenizer/),\n"
	       "DIR/base/sft/ (the SFT run; its last checkpoint is the base model),\n"
	       "DIR/rl/<method>/seed-<s>/, DIR/results.json (for base and each method: pass1,\n"
	       "passk, k, mean_length, token_efficiency, seconds, each {mean, std, per_seed};\n"
	       "settings), DIR/report.html.\n"
	       "exit status: 0 done (or interrupted: run again to continue), 1 runtime error,\n"
	       "2 usage error.\n",
	       d.eval_problems, q.eval_problems, d.eval_samples, q.eval_samples, (unsigned long long)d.eval_seed);
}

static long long_arg(const char *opt, const char *v, long lo, long hi)
{
	char *end;
	errno = 0;
	long x = strtol(v, &end, 10);
	if (errno || end == v || *end || x < lo || x > hi)
		cli_usage_error(CMD, "%s: expected an integer in [%ld, %ld], found '%s'", opt, lo, hi, v);
	return x;
}

int cmd_demo(int argc, char **argv)
{
	iapo_demo_opts o;
	int quick = 0;
	for (int i = 1; i < argc; i++) {
		if (cli_is_help(argv[i])) {
			help();
			return 0;
		}
		quick |= !strcmp(argv[i], "--quick");
	}
	if (quick) iapo_demo_opts_quick(&o);
	else iapo_demo_opts_default(&o);
	int iapo_given = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
#define IS(name) (!strcmp(a, name))
#define VAL() cli_value(CMD, argc, argv, &i)
#define INT(lo, hi) cli_int(CMD, a, VAL(), lo, hi)
#define NUM(lo, hi) cli_float(CMD, a, VAL(), lo, hi)
		if (IS("--quick")) {
		} else if (IS("--out")) {
			o.out = VAL();
		} else if (IS("--seeds")) {
			o.seeds = INT(1, 100);
		} else if (IS("--threads")) {
			o.threads = INT(0, 4096);
		} else if (IS("--methods")) {
			o.methods = VAL();
		} else if (IS("--data-seed")) {
			o.data_seed = (uint64_t)long_arg(a, VAL(), 0, 1L << 53);
		} else if (IS("--train")) {
			o.n_train = INT(8, 10000000);
		} else if (IS("--test")) {
			o.n_test = INT(1, 10000000);
		} else if (IS("--steps")) {
			const char *v = VAL();
			int lo, hi, n = 0;
			if (sscanf(v, "%d-%d%n", &lo, &hi, &n) == 2 && !v[n]) {
			} else if (sscanf(v, "%d%n", &lo, &n) == 1 && !v[n]) {
				hi = lo;
			} else {
				cli_usage_error(CMD, "--steps: expected MIN-MAX or N, found '%s'", v);
			}
			o.min_steps = lo;
			o.max_steps = hi;
		} else if (IS("--max-value")) {
			o.max_value = INT(10, 999);
		} else if (IS("--redundancy")) {
			o.redundancy = NUM(0, 1);
		} else if (IS("--vocab")) {
			o.vocab = INT(263, 65536);
		} else if (IS("--hidden")) {
			o.hidden = INT(8, 65536);
		} else if (IS("--layers")) {
			o.layers = INT(1, 1024);
		} else if (IS("--heads")) {
			o.heads = INT(1, 1024);
		} else if (IS("--kv-heads")) {
			o.kv_heads = INT(1, 1024);
		} else if (IS("--intermediate")) {
			o.intermediate = INT(1, 1 << 20);
		} else if (IS("--init-std")) {
			o.init_std = NUM(0, 10);
		} else if (IS("--sft-steps")) {
			o.sft_steps = INT(1, 10000000);
		} else if (IS("--sft-batch")) {
			o.sft_batch = INT(1, 1 << 20);
		} else if (IS("--sft-lr")) {
			o.sft_lr = NUM(1e-12, 10);
		} else if (IS("--sft-warmup")) {
			o.sft_warmup = INT(0, 10000000);
		} else if (IS("--sft-seed")) {
			o.sft_seed = long_arg(a, VAL(), 0, 1L << 53);
		} else if (IS("--sft-early-exit")) {
			o.sft_early_exit = NUM(0, 1);
		} else if (IS("--system")) {
			o.system = VAL();
		} else if (IS("--r1-system")) {
			o.system = NULL;
		} else if (IS("--one-shot")) {
			o.one_shot = 1;
		} else if (IS("--rl-steps")) {
			o.rl_steps = INT(1, 10000000);
		} else if (IS("--prompts-per-step")) {
			o.prompts_per_step = INT(1, 1 << 20);
		} else if (IS("--group")) {
			o.group = INT(2, 4096);
		} else if (IS("--max-completion-tokens")) {
			o.max_completion = INT(8, 1 << 20);
		} else if (IS("--rl-lr")) {
			o.rl_lr = NUM(0, 10);
		} else if (IS("--temperature")) {
			o.temperature = NUM(1e-6, 100);
		} else if (IS("--beta")) {
			o.beta = NUM(0, 1e6);
		} else if (IS("--loss-type")) {
			o.loss_type = VAL();
		} else if (IS("--iapo")) {
			if (!iapo_given) o.n_iapo_opts = 0;
			iapo_given = 1;
			if (o.n_iapo_opts >= (int)(sizeof o.iapo_opts / sizeof o.iapo_opts[0]))
				cli_usage_error(CMD, "--iapo: at most 16");
			o.iapo_opts[o.n_iapo_opts++] = VAL();
		} else if (IS("--answer-span")) {
			o.answer_span = INT(0, 64);
		} else if (IS("--set")) {
			if (o.n_overrides >= IAPO_DEMO_MAX_OVERRIDES) cli_usage_error(CMD, "--set: at most %d", IAPO_DEMO_MAX_OVERRIDES);
			o.overrides[o.n_overrides++] = VAL();
		} else if (IS("--eval-problems")) {
			o.eval_problems = INT(0, 10000000);
		} else if (IS("--eval-samples")) {
			o.eval_samples = INT(1, 64);
		} else if (IS("--eval-seed")) {
			o.eval_seed = (uint64_t)long_arg(a, VAL(), 0, 1L << 53);
		} else {
			cli_usage_error(CMD, "unknown option '%s'", a);
		}
#undef IS
#undef VAL
#undef INT
#undef NUM
	}
	iapo_status st = iapo_demo_opts_check(&o);
	if (st != IAPO_OK) cli_usage_error(CMD, "%s", iapo_errmsg());

	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	o.stop = &stop_requested;
	int stopped = 0;
	st = iapo_demo_run(&o, stdout, stderr, &stopped);
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	if (st == IAPO_ERR_ARG) cli_usage_error(CMD, "%s", iapo_errmsg());
	if (st != IAPO_OK) cli_fail(CMD, st);
	return 0;
}
