/*
 * cmd_sft.c — `iapo sft`: supervised fine-tuning (or training from scratch)
 * on prompt/completion JSONL; src/rl/sft_run.h does the work. This file
 * parses the options, draws the progress bar on stderr and turns
 * SIGINT/SIGTERM (and SIGUSR1, which mpirun forwards) into "finish the step,
 * save a checkpoint, exit 0".
 */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "core/progress.h"
#include "core/status.h"
#include "dist/dist.h"
#include "rl/memory.h"
#include "rl/sft_run.h"

#define CMD "sft"

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	stop_requested = 1;
	signal(sig, SIG_DFL); /* a second signal ends the process the ordinary way */
}

static void help(void)
{
	printf("usage: iapo sft --model DIR|CONFIG.json --data FILE.jsonl --out RUN_DIR [options]\n"
	       "\n"
	       "Supervised training on prompt/completion rows, the loss on the completion\n"
	       "tokens only. --model is a Hugging Face model directory (or a checkpoint-N of\n"
	       "any run) to fine-tune, or a config.json: a fresh, randomly initialised model\n"
	       "of that shape (like 'iapo init'; the tokenizer comes from --tokenizer DIR or\n"
	       "the config's directory).\n"
	       "\n"
	       "Each row is read as 'iapo train' reads it (the rows 'iapo data synth' writes\n"
	       "work as they are); the model sees the prompt exactly as 'iapo train' and\n"
	       "'iapo eval' render it (system prompt, one-shot turn unless --no-one-shot,\n"
	       "the chat template's generation prompt), then the row's \"completion\" and the\n"
	       "template's end-of-turn token, so the result is ready for RL on the same data\n"
	       "(give 'iapo train' the same --system/--no-one-shot).\n"
	       "\n"
	       "Every option may also come from a JSON object (--config FILE) with the same\n"
	       "names; the command line overrides it. RUN_DIR gets config.json (the resolved\n"
	       "options), metrics.jsonl (loss, learning rate, grad norm, eval_loss) and\n"
	       "checkpoint-N/ (a Hugging Face model directory + optimizer.bin +\n"
	       "trainer_state.json); the final model is RUN_DIR/checkpoint-<last step>.\n"
	       "--resume continues from the latest checkpoint exactly as if the run had not\n"
	       "stopped. SIGINT/SIGTERM/SIGUSR1: the current step finishes, a checkpoint is\n"
	       "saved, exit 0. Under mpirun each step's examples are split over the ranks\n"
	       "(--per-device-train-batch-size is per rank).\n"
	       "\n"
	       "Memory: before loading, the run's peak memory (weights, gradient, AdamW\n"
	       "moments, activations of one micro-batch at --max-length) is estimated and\n"
	       "compared with what the machine (and its cgroup) has free; a run that does\n"
	       "not fit is refused with the estimate and the options to lower.\n"
	       "  --no-memory-check                    skip it (also IAPO_MEMORY_LIMIT=off; IAPO_MEMORY_LIMIT=SIZE sets the limit)\n"
	       "\n"
	       "options:\n"
	       "  --config FILE                        JSON object of options (applied before the command line)\n");
	iapo_sft_run_opts_help(stdout);
	printf("\nexit status: 0 done (or interrupted and saved), 1 runtime error, 2 usage error.\n");
}

typedef struct {
	iapo_progress bar;
	int started;
} ui;

static void on_progress(void *vctx, const iapo_sft_progress *p)
{
	ui *u = vctx;
	if (!u->started) {
		iapo_progress_init(&u->bar, stderr, "sft", p->first_step, p->total, -1);
		u->started = 1;
	}
	char fields[256];
	snprintf(fields, sizeof fields, "loss %.4f lr %.3g gnorm %.3g %.0f tok/s%s", p->loss, p->lr, p->grad_norm,
		 p->tokens_per_s, p->skipped ? " SKIPPED (NaN/Inf)" : "");
	if (p->has_eval) iapo_progress_note(&u->bar, "step %ld: eval_loss %.4f", p->step, p->eval_loss);
	/* On a terminal every step redraws; in a log only the logged steps print. */
	if (u->bar.tty || p->logged || p->checkpoint) iapo_progress_update(&u->bar, p->step, fields);
}

int cmd_sft(int argc, char **argv)
{
	iapo_status st = iapo_dist_init();
	if (st != IAPO_OK) cli_fail(CMD, st);
	iapo_sft_run_opts o;
	iapo_sft_run_opts_default(&o);
	int want_help = 0;
	const int no_mem_check = iapo_mem_take_flag(&argc, argv);
	st = iapo_sft_run_opts_from_args(&o, argc, argv, &want_help);
	if (want_help) {
		if (iapo_dist_rank() == 0) help();
		iapo_sft_run_opts_free(&o);
		return 0;
	}
	st = iapo_dist_agree(st);
	if (st == IAPO_ERR_ARG) cli_usage_error(CMD, "%s", iapo_errmsg());
	if (st != IAPO_OK) cli_fail(CMD, st);
	if (!no_mem_check && o.model && !o.resume) {
		/* Before anything is loaded: refuse a run the machine cannot hold
		 * rather than be killed by the kernel partway through. */
		iapo_mem_plan plan;
		iapo_mem_plan_init(&plan);
		st = iapo_mem_plan_sft(&plan, o.model, (int)o.batch_size, (int)o.max_length);
		st = iapo_dist_agree(iapo_mem_guard(st, &plan, "this SFT run"));
		if (st == IAPO_ERR_ARG) cli_usage_error(CMD, "%s", iapo_errmsg());
		if (st != IAPO_OK) cli_fail(CMD, st);
	}

	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);

	ui u;
	memset(&u, 0, sizeof u);
	o.stop = &stop_requested;
	o.progress = on_progress;
	o.progress_ctx = &u;
	const int talk = iapo_dist_rank() == 0;
	if (talk)
		fprintf(stderr, "iapo sft: %s -> %s: lr %g, %ld x %ld examples per step%s, max length %ld\n", o.model, o.out,
			o.learning_rate, o.batch_size, o.grad_accum,
			iapo_dist_size() > 1 ? " per rank" : "", o.max_length);
	iapo_sft_run_result r;
	st = iapo_sft_run(&o, &r);
	if (u.started) iapo_progress_finish(&u.bar);
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGUSR1, SIG_DFL);
	if (st != IAPO_OK) {
		iapo_sft_run_opts_free(&o);
		if (st == IAPO_ERR_ARG) cli_usage_error(CMD, "%s", iapo_errmsg());
		cli_fail(CMD, st);
	}
	if (talk) {
		if (r.truncated)
			fprintf(stderr, "iapo sft: %ld of %ld training completions were cut to --max-length %ld\n", r.truncated,
				r.examples, o.max_length);
		if (!r.completed)
			fprintf(stderr, "iapo sft: interrupted after step %ld of %ld; saved %s\n"
					"continue with: iapo sft --out %s --resume\n",
				r.steps_done, r.total_steps, r.model_dir, o.out);
		else if (r.steps_done == r.first_step)
			fprintf(stderr, "iapo sft: the run was already complete (%ld steps): %s\n", r.steps_done, r.model_dir);
		else
			fprintf(stderr,
				"iapo sft: done, %ld steps on %ld examples in %.1fs (%.0f tokens/s); loss %.4f -> %.4f; "
				"final model %s\n",
				r.steps_done, r.examples, r.seconds, r.tokens_per_s, r.loss_first, r.loss_last, r.model_dir);
		if (r.completed && !isnan(r.eval_loss)) fprintf(stderr, "iapo sft: eval_loss %.4f\n", r.eval_loss);
	}
	iapo_sft_run_opts_free(&o);
	return 0;
}
