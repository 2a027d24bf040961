/*
 * options.h — every option of `iapo train`, in one table: its kebab-case name
 * (TRL's names where TRL has one), type, default, range and help line. The
 * same table parses the command line, reads a JSON config file (--config, or
 * RUN_DIR/config.json on --resume), writes the resolved options back as JSON
 * and prints --help, so the four can never disagree.
 *
 * Precedence: defaults < RUN_DIR/config.json (with --resume) < --config FILE
 * < the command line. Then iapo_train_opts_resolve derives the batch layout
 * (prompts-per-step × num-generations = micro-batch × grad-accum, from any
 * consistent subset) and checks cross-option constraints.
 *
 * Errors: IAPO_ERR_ARG for anything the user wrote wrong (unknown option or
 * config key, bad value, inconsistent batch options, a missing required
 * option): the CLI exits 2 on those. IAPO_ERR_IO / FORMAT for files that
 * cannot be read (exit 1).
 * Not here: what the options do (trainer.c), enum parsing into the loss and
 * schedule types (grpo.h, schedule.h: kept as validated strings here).
 */
#ifndef IAPO_RL_OPTIONS_H
#define IAPO_RL_OPTIONS_H

#include <stdio.h>

#include <cjson/cJSON.h>

#include "iapo.h"

typedef struct {
	/* run */
	char *model, *data, *out, *algo;
	int resume, overwrite;
	long seed;
	long threads;
	/* data and prompt */
	char *data_format, *prompt_field, *answer_field;
	long max_rows;
	int dedupe;
	char *system;    /* NULL: the reference's system prompt for the data format */
	int no_one_shot; /* leave out the reference's one-shot "What is 2+2?" turn */
	int no_chat_template;
	char *eval_data;
	long eval_steps;
	double eval_fraction;
	long eval_count;
	long eval_generations;
	/* batch */
	long prompts_per_step, num_generations, micro_batch, grad_accum, rollout_batch;
	long epochs, max_steps;
	long max_prompt_tokens, max_completion_tokens;
	/* sampling */
	double temperature, top_p;
	long top_k;
	int rollout_bf16, rollout_fp32;
	int rollout_rows; /* decode the rollouts from the weights' rows, not from packs (generate.h's pack) */
	/* optimiser */
	double learning_rate;
	long warmup_steps;
	char *lr_schedule;
	double adam_beta1, adam_beta2, adam_eps, weight_decay, max_grad_norm;
	/* loss */
	double beta, epsilon_low, epsilon_high;
	char *loss_type, *scale_rewards;
	long iterations;
	/* rewards */
	double reward_correct, reward_wrong, reward_format, reward_format_bad;
	/* checkpoints, logging */
	long save_steps;
	long max_bad_steps;
	long check_weights_every; /* MPI debug: compare a hash of the weights across ranks every N steps */
	/* algorithms (rl/algo.h): IAPO's token terms */
	char *postfix, *predict, *info_at, *gain, *norm;
	long answer_tokens, info_chunk, info_stride, horizon;
	int info_bf16, info_recompute;
	double decay, w_info, w_conf;
	/* DAPO: dynamic sampling, overlong shaping; Kimi length reward */
	char *dynamic_sampling;
	long dynamic_max_tries, overlong_buffer;
	double overlong_penalty, lenpen_weight;
	/* GTPO, GFPO, S-GRPO */
	double gtpo_coef;
	char *gtpo_scale, *gfpo_metric;
	long gfpo_sample, gfpo_keep, sgrpo_alpha, sgrpo_k;
	double sgrpo_token_prob;

	/* Which options were given explicitly (any source), by table index. */
	unsigned char given[128];
} iapo_train_opts;

/* Fills the defaults (the reference's, iapo-reference §6). Strings are
 * owned copies (iapo_train_opts_free). */
iapo_status iapo_train_opts_default(iapo_train_opts *o);
void iapo_train_opts_free(iapo_train_opts *o);
/* Deep copy (dst is overwritten, not freed first). */
iapo_status iapo_train_opts_copy(iapo_train_opts *dst, const iapo_train_opts *src);

/* Sets option `name` (kebab or snake case, without "--") from text. A flag
 * takes NULL, "true"/"false" or "1"/"0". `source` names where it came from in
 * messages ("--x" on the command line, "FILE: key 'x'" in a file). */
iapo_status iapo_train_opts_set(iapo_train_opts *o, const char *name, const char *value);
/* 1 if `name` is an option and takes no value. -1 if there is no such option. */
int iapo_train_opts_is_flag(const char *name);
/* 1 if option `name` was given explicitly (command line, a config file, or
 * set by a resolution step such as --algo's defaults); 0 otherwise or if
 * there is no such option. */
int iapo_train_opts_given(const iapo_train_opts *o, const char *name);

/* Applies a JSON object's members (every key must be an option; unknown
 * ones are an ARG error naming the key and file). All or nothing: on an
 * error *o is unchanged. */
iapo_status iapo_train_opts_apply_json(iapo_train_opts *o, const cJSON *obj, const char *file);
/* Reads and applies a JSON config file. */
iapo_status iapo_train_opts_load(iapo_train_opts *o, const char *path);

/* The command line of `iapo train` (argv[0] is the command name): --config
 * and, with --resume, RUN_DIR/config.json are applied first, then every
 * other option in order. *help is set (and nothing else done) on -h/--help.
 * A missing run directory with --resume is an IO error naming it. */
iapo_status iapo_train_opts_from_args(iapo_train_opts *o, int argc, char **argv, int *help);

/* Derives the batch layout and checks everything together: required
 * options, enum values, ranges that depend on other options. */
iapo_status iapo_train_opts_resolve(iapo_train_opts *o);

/* The resolved options as a JSON object (kebab-case keys, every option but
 * resume/overwrite, in table order). NULL on allocation failure. */
cJSON *iapo_train_opts_to_json(const iapo_train_opts *o);

/* --help text: one line per option with its default. */
void iapo_train_opts_help(FILE *f);

#endif
