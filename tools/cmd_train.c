/*
 * cmd_train.c — `iapo train`: RL post-training of a Hugging Face model on a
 * JSONL dataset (src/rl/trainer.h does the work). This file parses the
 * options (their table is src/rl/options.c), reports progress on stderr and
 * turns SIGINT/SIGTERM (and SIGUSR1, which mpirun forwards to every rank)
 * into "finish the step, save a checkpoint, exit 0".
 * Under mpirun it joins the job (src/dist/): every rank trains its share of
 * each step and rank 0 alone writes the run directory and the progress.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "core/progress.h"
#include "core/status.h"
#include "dist/dist.h"
#include "rl/memory.h"
#include "rl/options.h"
#include "rl/trainer.h"

#define CMD "train"

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	stop_requested = 1;
	/* A second signal ends the process the ordinary way. */
	signal(sig, SIG_DFL);
}

static void help(void)
{
	printf("usage: iapo train --model DIR --data FILE.jsonl --out RUN_DIR [--algo NAME] [options]\n"
	       "\n"
	       "RL post-training (GRPO) of a Hugging Face model directory. Each step samples\n"
	       "--num-generations completions for each of --prompts-per-step prompts, scores\n"
	       "them (answer correctness + format), turns rewards into group advantages and\n"
	       "makes one AdamW update of the clipped token loss + beta x KL(k3) against the\n"
	       "initial model. Defaults are the IAPO reference's (TRL 0.21 GRPO): lr 1e-6,\n"
	       "beta 0.001, G 8, temperature 1, 2048 completion tokens, loss bnpo.\n"
	       "\n"
	       "Batch: prompts-per-step x num-generations = micro-batch x grad-accum\n"
	       "completions per step; give any consistent subset and the rest is derived.\n"
	       "\n"
	       "Every option may also come from a JSON object (--config FILE) with the same\n"
	       "names (\"learning-rate\" or \"learning_rate\"); the command line overrides it.\n"
	       "RUN_DIR gets config.json (the resolved options), metrics.jsonl (a line per\n"
	       "step) and checkpoint-N/ (a Hugging Face model directory + trainer_state.json,\n"
	       "optimizer.bin, rng_state.json). --resume continues from the latest checkpoint\n"
	       "exactly as if the run had not stopped (RUN_DIR/config.json gives the defaults).\n"
	       "SIGINT/SIGTERM/SIGUSR1: the current step finishes, a checkpoint is saved, exit 0.\n"
	       "\n"
	       "Algorithms (--algo; each only sets the defaults of its options below):\n"
	       "  grpo    the above.\n"
	       "  iapo    + IAPO's information-aware token terms: A_it = A_i + w_s * S_t -\n"
	       "          sign(r_i) * w_c * C_t, S = information gain of token t about the answer\n"
	       "          (an early-exit estimate: entropy of the answer after prompt + o_<t +\n"
	       "          postfix), C = policy entropy, each normalised per completion. Combine\n"
	       "          with DAPO's loss as the paper's runs did: --loss-type bnpo\n"
	       "          --epsilon-high 0.28 (and any DAPO option below).\n"
	       "  dapo    clip-higher (--epsilon-high 0.28), token-mean loss (bnpo), dynamic\n"
	       "          sampling (resample groups whose rewards are all equal), overlong\n"
	       "          reward shaping (--overlong-buffer = max-completion-tokens / 5).\n"
	       "  lenpen  + the Kimi k1.5 length reward (--lenpen-weight 1).\n"
	       "  gtpo    + GTPO's entropy-weighted token bonus (the authors' code: 0.1 x\n"
	       "          length); loss bnpo.\n"
	       "  gfpo    sample --gfpo-sample completions per prompt, train on the\n"
	       "          --gfpo-keep shortest (or most reward per token); loss grpo.\n"
	       "  sgrpo   S-GRPO (Lee & Tong): the loss counts the first --sgrpo-alpha tokens\n"
	       "          and, in completions shorter than --sgrpo-k, later tokens with\n"
	       "          probability --sgrpo-token-prob; loss grpo.\n"
	       "The run's config.json records every resolved value.\n"
	       "\n"
	       "Data parallelism: mpirun -np N iapo train ... splits each step's prompts over\n"
	       "N processes (--prompts-per-step must be a multiple of N) and adds their\n"
	       "gradients; the run samples the same completions as on one process and its\n"
	       "weights differ only by the order of that sum. --resume works with any N.\n"
	       "Rank 0 alone writes RUN_DIR; every rank reads --model and --data (and, with\n"
	       "--resume, RUN_DIR/config.json), so keep them where all machines see them.\n"
	       "To stop such a job cleanly send SIGUSR1 to mpirun (kill -USR1 PID), which\n"
	       "forwards it; on Ctrl-C mpirun kills the ranks after 1 s (MCA parameter\n"
	       "odls_base_sigkill_timeout), so only the last completed checkpoint is kept.\n"
	       "\n"
	       "Memory: before loading, the run's peak memory is estimated (prompts counted at\n"
	       "--max-prompt-tokens) and compared with MemAvailable and the cgroup limit; a\n"
	       "run that would not fit is refused, naming the options to lower.\n"
	       "\n"
	       "options:\n"
	       "  --config FILE                JSON object of options (applied before the command line)\n"
	       "  --no-memory-check            skip the memory estimate (also IAPO_MEMORY_LIMIT=off;\n"
	       "                               IAPO_MEMORY_LIMIT=8G replaces the amount available)\n");
	iapo_train_opts_help(stdout);
	printf("\nexit status: 0 done (or interrupted and saved), 1 runtime error, 2 usage error.\n");
}

typedef struct {
	iapo_progress bar;
} run_ctx;

static void on_step(void *vctx, const iapo_trainer *tr, const iapo_step_metrics *m)
{
	run_ctx *c = vctx;
	char fields[256];
	int k = snprintf(fields, sizeof fields, "reward %.3f acc %.3f len %.1f", m->reward_mean, m->accuracy,
			 m->length_mean);
	if (!c->bar.tty && k > 0 && (size_t)k < sizeof fields)
		snprintf(fields + k, sizeof fields - (size_t)k, " kl %.4g loss %.4g gnorm %.3g lr %.3g%s", m->kl, m->loss,
			 m->grad_norm, m->lr, m->skipped ? " SKIPPED (NaN/Inf)" : "");
	if (m->has_eval)
		iapo_progress_note(&c->bar, "step %ld eval: accuracy %.4f pass@1 %.4f format %.3f length %.1f (%.1fs)", m->step,
				   m->eval_accuracy, m->eval_pass_at_1, m->eval_format_rate, m->eval_length_mean,
				   m->seconds_eval);
	iapo_progress_update(&c->bar, m->step, fields);
	(void)tr;
}

int cmd_train(int argc, char **argv)
{
	iapo_train_opts o;
	int want_help = 0;
	iapo_status st = iapo_dist_init();
	if (st != IAPO_OK) cli_fail(CMD, st);
	st = iapo_train_opts_default(&o);
	if (st != IAPO_OK) cli_fail(CMD, st);
	const int no_mem_check = iapo_mem_take_flag(&argc, argv);
	st = iapo_train_opts_from_args(&o, argc, argv, &want_help);
	if (want_help) {
		if (iapo_dist_rank() == 0) help();
		iapo_train_opts_free(&o);
		return 0;
	}
	if (st == IAPO_OK) st = iapo_train_opts_resolve(&o);
	st = iapo_dist_agree(st); /* --resume reads RUN_DIR/config.json on every rank */
	if (st == IAPO_ERR_ARG) cli_usage_error(CMD, "%s", iapo_errmsg());
	if (st != IAPO_OK) cli_fail(CMD, st);
	iapo_mem_plan plan;
	iapo_mem_plan_init(&plan);
	if (!no_mem_check) {
		/* Before anything is loaded: refuse a run the machine cannot hold
		 * rather than be killed by the kernel partway through. */
		st = iapo_mem_guard(iapo_mem_plan_train(&plan, &o), &plan, "this training run");
		st = iapo_dist_agree(st);
		if (st == IAPO_ERR_ARG) cli_usage_error(CMD, "%s", iapo_errmsg());
		if (st != IAPO_OK) cli_fail(CMD, st);
	}

	iapo_trainer *tr = NULL;
	st = iapo_trainer_new(&o, &tr);
	if (st == IAPO_ERR_ARG) cli_usage_error(CMD, "%s", iapo_errmsg());
	if (st != IAPO_OK) cli_fail(CMD, st);
	const iapo_train_opts *r = iapo_trainer_opts(tr);
	long done = iapo_trainer_steps_done(tr), total = iapo_trainer_total_steps(tr);
	const int talk = iapo_dist_rank() == 0; /* the other ranks stay quiet */
	if (talk) {
		fprintf(stderr,
			"iapo train: %s -> %s: %s, %ld steps of %ld prompts x %ld completions (micro-batch %ld x "
			"grad-accum %ld), loss %s, lr %g, beta %g\n",
			r->model, r->out, r->algo, total, r->prompts_per_step, r->num_generations, r->micro_batch,
			r->grad_accum, r->loss_type, r->learning_rate, r->beta);
		if (iapo_dist_size() > 1)
			fprintf(stderr, "iapo train: %d MPI ranks, %ld prompts each per step\n", iapo_dist_size(),
				r->prompts_per_step / iapo_dist_size());
		iapo_mem_avail av;
		char h1[32], h2[32];
		if (plan.total > 0 && iapo_mem_available(&av) == IAPO_OK && av.bytes >= 0)
			fprintf(stderr, "iapo train: memory: about %s at the peak, %s available\n",
				iapo_mem_human(plan.total, h1, sizeof h1), iapo_mem_human(av.bytes, h2, sizeof h2));
		if (done) fprintf(stderr, "iapo train: resuming after step %ld from %s\n", done, iapo_trainer_last_checkpoint(tr));
	}

	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);

	run_ctx ctx;
	iapo_progress_init(&ctx.bar, stderr, "train", done, total, -1);
	st = iapo_trainer_run(tr, &stop_requested, talk ? on_step : NULL, &ctx);
	if (talk) iapo_progress_finish(&ctx.bar);
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGUSR1, SIG_DFL);
	if (st != IAPO_OK) {
		iapo_trainer_free(tr);
		iapo_train_opts_free(&o);
		cli_fail(CMD, st);
	}
	done = iapo_trainer_steps_done(tr);
	if (talk && done < total)
		fprintf(stderr, "iapo train: interrupted after step %ld of %ld; saved %s\n"
				"continue with: iapo train --out %s --resume\n",
			done, total, iapo_trainer_last_checkpoint(tr), r->out);
	else if (talk)
		fprintf(stderr, "iapo train: done, %ld steps; final checkpoint %s\n", done, iapo_trainer_last_checkpoint(tr));
	iapo_trainer_free(tr);
	iapo_train_opts_free(&o);
	return 0;
}
