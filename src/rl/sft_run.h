/*
 * sft_run.h — a whole supervised fine-tuning run (`iapo sft`, and `iapo demo`
 * in-process): a model started from a Hugging Face directory (or a checkpoint
 * of any run) or initialised at random from a config.json (a fresh model, the
 * way `iapo init` makes one), trained with cross-entropy on the completion
 * tokens of prompt/completion JSONL rows (src/rl/sft.h makes each step).
 *
 * What the model sees: the prompt exactly as `iapo train` and `iapo eval`
 * render it (the dataset layout's system prompt, the optional one-shot turn,
 * the problem as the user turn, through the tokenizer's chat template with
 * the generation prompt: src/rl/prompt.h), then the row's completion
 * (field "completion" unless --completion-field says otherwise) tokenised on
 * its own, then the template's end-of-turn token (<|im_end|> for ChatML,
 * <|eot_id|> for Llama 3; with --no-chat-template the model's first EOS), so
 * a trained model stops where the data stops and is ready for RL on the same
 * rows. Only completion tokens (end-of-turn included) are targets.
 * Rows must be in a layout `iapo train` reads (rl/dataset.h; the rows
 * `iapo data synth` writes are: {"prompt", "answer", "completion", ...}).
 *
 * Run directory (the same files as `iapo train`):
 *   RUN_DIR/config.json      the resolved options (every key of the table)
 *   RUN_DIR/metrics.jsonl    a line every --logging-steps steps: step, epoch,
 *                            loss (mean of the steps since the last line),
 *                            learning_rate, grad_norm, tokens, skipped,
 *                            tokens_per_second, seconds; eval_loss and
 *                            eval_tokens on an evaluation step
 *   RUN_DIR/checkpoint-N/    an HF model directory (F32 safetensors, config,
 *                            generation_config, tokenizer files) +
 *                            optimizer.bin + trainer_state.json +
 *                            rng_state.json, written atomically every
 *                            --save-steps steps and at the last step.
 * THE FINAL MODEL is RUN_DIR/checkpoint-<total steps> (also returned in
 * iapo_sft_run_result.model_dir): `iapo train --model`, `iapo eval --model`
 * and `iapo generate --model` load it as is. Its generation_config.json's
 * eos ids include the end-of-turn token the completions were trained to end
 * with.
 *
 * Determinism and resume: the data order of epoch e is a Fisher–Yates
 * permutation from (seed, e); step s takes the next batch-size x
 * gradient-accumulation-steps x ranks examples of it (the last step of an
 * epoch may be smaller). Nothing else is random (a fresh model's weights come
 * from --seed too), so the same options and thread count give the same run,
 * and --resume from checkpoint-k continues it bit for bit (weights, AdamW
 * moments and step, the logging accumulators are in the checkpoint).
 *
 * Data parallelism (under mpirun, src/dist/): iapo_sft_run is collective.
 * Each step's examples are split over the ranks in order, the loss and
 * gradient are the whole step's (sft.h), rank 0 alone writes RUN_DIR.
 *
 * Not here: the CLI and signal handlers (tools/cmd_sft.c), the step's maths
 * (sft.c), the checkpoint directory protocol (checkpoint.h).
 */
#ifndef IAPO_RL_SFT_RUN_H
#define IAPO_RL_SFT_RUN_H

#include <signal.h>
#include <stdio.h>

#include "iapo.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

/* What the run reports after every optimizer step (to the progress hook). */
typedef struct {
	long step;          /* 1-based: steps done after this one */
	long total;         /* steps of the whole run */
	long first_step;    /* steps already done when this process started (resume) */
	double epoch;       /* fractional epochs done */
	double loss;        /* this step's mean completion-token cross-entropy (nats) */
	double grad_norm;   /* before clipping */
	double lr;          /* the rate this step used */
	double tokens;      /* completion tokens of the step (all ranks) */
	int skipped;        /* NaN/Inf loss or gradient: no update */
	int logged;         /* this step wrote a metrics.jsonl line */
	double logged_loss; /* when logged: the mean loss the line holds */
	int has_eval;       /* this step evaluated --eval-data */
	double eval_loss;   /* when has_eval: mean cross-entropy over the eval completions */
	double seconds;     /* wall seconds since this process's first step began */
	double tokens_per_s; /* all tokens (prompt + completion) forwarded per second, this process */
	const char *checkpoint; /* non-NULL when this step saved one: its directory */
} iapo_sft_progress;

/* Called on rank 0 after every step (and never on other ranks). */
typedef void (*iapo_sft_progress_fn)(void *ctx, const iapo_sft_progress *p);

#define IAPO_SFT_MAX_OPTS 64

/* Every option of `iapo sft` (names: TRL's SFTConfig in kebab case where TRL
 * has one). String fields are borrowed: a caller may point them at its own
 * strings (they must outlive the run); strings set by iapo_sft_run_opts_set,
 * a config file or the command line are owned by the opts and freed by
 * iapo_sft_run_opts_free. */
typedef struct {
	/* model */
	const char *model;     /* --model: HF model dir / checkpoint-N to start from, or a config.json FILE:
				* a fresh random model of that shape (required) */
	const char *tokenizer; /* --tokenizer DIR: tokenizer.json + tokenizer_config.json (default: --model's
				* directory; a fresh model needs one there or here) */
	double init_std;       /* --init-std: fresh model's normal std; < 0: the config's initializer_range, else 0.02 */
	/* data */
	const char *data;      /* --data FILE.jsonl (required) */
	const char *eval_data; /* --eval-data FILE.jsonl: held-out loss (optional) */
	const char *data_format, *prompt_field, *answer_field; /* as `iapo train` (NULL fields: the layout's) */
	const char *completion_field; /* "completion" */
	long max_rows;         /* first N rows of --data, 0 = all */
	const char *system;    /* NULL: the layout's system prompt, as `iapo train` */
	int no_one_shot, no_chat_template;
	long max_length;       /* prompt + completion tokens; longer completions are cut at the end (counted) */
	double early_exit_fraction; /* --early-exit-fraction: share of rows that also give an early-exit example */
	/* run */
	const char *out;       /* --out RUN_DIR (required) */
	int resume, overwrite;
	long seed, threads;
	/* batch */
	long batch_size;       /* --per-device-train-batch-size (alias --batch-size): examples per
				* forward/backward on each rank */
	long grad_accum;       /* --gradient-accumulation-steps: micro-batches per optimizer step */
	double epochs;         /* --num-train-epochs (fractional allowed) */
	long max_steps;        /* > 0: overrides --num-train-epochs */
	/* optimizer */
	double learning_rate, warmup_ratio;
	long warmup_steps;     /* > 0: overrides --warmup-ratio */
	const char *lr_scheduler_type; /* linear | cosine | constant */
	double adam_beta1, adam_beta2, adam_epsilon, weight_decay, max_grad_norm;
	/* logging, evaluation, checkpoints */
	long logging_steps, eval_steps, save_steps, max_bad_steps;

	/* hooks, not options (never in config.json) */
	const volatile sig_atomic_t *stop; /* non-NULL: checked after each step; when set (on any
					    * rank) a checkpoint is saved and the run returns OK */
	iapo_sft_progress_fn progress;     /* NULL: silent */
	void *progress_ctx;

	/* internal: which options were given explicitly, and owned strings */
	unsigned char given[IAPO_SFT_MAX_OPTS];
	void *owned;
} iapo_sft_run_opts;

/* The defaults (TRL's SFTConfig where it has them: lr 2e-5, 3 epochs,
 * batch 8, linear schedule, AdamW 0.9/0.999/1e-8, clip 1.0, max-length 1024,
 * save every 500 steps; logging every step). */
void iapo_sft_run_opts_default(iapo_sft_run_opts *o);
void iapo_sft_run_opts_free(iapo_sft_run_opts *o);
/* Sets option `name` (kebab or snake case, no "--") from text; a flag takes
 * NULL/"true"/"false"/"1"/"0". ARG error for an unknown name or bad value. */
iapo_status iapo_sft_run_opts_set(iapo_sft_run_opts *o, const char *name, const char *value);
/* Applies a JSON object file of options (--config). */
iapo_status iapo_sft_run_opts_load(iapo_sft_run_opts *o, const char *path);
/* The command line (argv[0] = the command name): RUN_DIR/config.json first
 * with --resume, then --config FILE, then the line in order. *help set on
 * -h/--help (nothing else done). */
iapo_status iapo_sft_run_opts_from_args(iapo_sft_run_opts *o, int argc, char **argv, int *help);
/* One --help line per option with its default. */
void iapo_sft_run_opts_help(FILE *f);

typedef struct {
	long steps_done, total_steps, first_step;
	int completed;            /* 1: ran to the last step; 0: stopped by *stop (a checkpoint was saved) */
	double loss_first;        /* the loss of this process's first step */
	double loss_last;         /* the loss of the last step */
	double eval_loss;         /* the last evaluation's (NAN: none) */
	double seconds;           /* wall time of the steps (and evaluations, saves) of this process */
	double tokens_per_s;      /* prompt + completion tokens forwarded per second of training steps */
	long examples, eval_examples;
	long truncated;           /* training examples whose completion was cut to --max-length */
	char model_dir[4096];     /* the last checkpoint written: the final model when completed */
} iapo_sft_run_result;

/* Runs (or, with o->resume, continues) the run. Checks the options first
 * (ARG: a missing --model/--data/--out, --resume with --overwrite, values out
 * of range, an --out holding another run without --resume/--overwrite; FORMAT
 * naming file and line: a row without the completion field, a prompt that
 * leaves no room within --max-length; a fresh model whose config has no
 * tokenizer beside it or in --tokenizer). A run already complete returns at
 * once (res filled). res may be NULL. Collective under MPI. */
iapo_status iapo_sft_run(const iapo_sft_run_opts *o, iapo_sft_run_result *res);

/* The token sequences a run trains on, as it builds them (exposed for tests
 * and tools): sequence i is pool[off[i] .. off[i] + len[i]), its first
 * n_prompt[i] tokens the prompt, the rest the completion's tokens followed by
 * eot (left out when the completion was cut to --max-length).
 * With --early-exit-fraction F > 0 (training data only), a share F of the
 * rows whose completion holds "</think>" (drawn from (seed, row)) add one more
 * sequence after all the rows' own: the prompt, the completion cut at the
 * start of a uniformly drawn line of its reasoning (from before the first
 * line to just before "</think>"), IAPO's default postfix "</think><answer>"
 * as its own tokens — all of that context, no loss — then the targets: the
 * row's answer, "</answer>" and eot. It teaches the model to answer from a
 * partial trace, which is what IAPO's early-exit estimator asks of it (a
 * model trained only on whole traces answers a cut trace with the last number
 * it wrote, confidently: E_t ~ 0 everywhere, no signal). n_early counts them. */
typedef struct {
	int *pool;
	size_t *off;
	int *len, *n_prompt;
	size_t n;
	long truncated;  /* sequences cut to max_length */
	size_t n_early;  /* early-exit sequences among the n (the last n_early) */
	long tokens;     /* all tokens of all sequences */
	int longest;
	int eot;         /* the end-of-turn id appended */
	size_t used, cap; /* of pool */
} iapo_sft_examples;

/* Reads path with o's data options (layout, fields, system prompt, one-shot,
 * chat template, completion field, max_length; max_rows: 0 = all) through
 * tok; cfg gives the EOS for --no-chat-template. Errors as iapo_sft_run's. */
iapo_status iapo_sft_examples_load(const iapo_sft_run_opts *o, const iapo_tokenizer *tok, const iapo_config *cfg,
				   const char *path, size_t max_rows, iapo_sft_examples *out);
void iapo_sft_examples_free(iapo_sft_examples *e);

#endif
