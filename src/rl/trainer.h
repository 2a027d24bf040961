/*
 * trainer.h — the RL post-training loop of `iapo train` (DESIGN §2): each
 * optimizer step picks prompts, samples G completions per prompt, scores
 * them, turns rewards into advantages, and runs the clipped policy loss
 * (+ KL against the frozen initial model) through micro-batched forward/
 * backward passes into one AdamW update. A run directory collects
 * config.json, metrics.jsonl (one JSON line per step) and checkpoint-N/
 * directories from which a run resumes bit-identically.
 *
 * Determinism: the data order of epoch e is a permutation drawn from
 * (seed, e); completion j of dataset row k at generation step g samples from
 * the stream (seed, key(g, k, j)) — never from a batch position, thread or
 * rank — so the same seed and thread count give the same run, and a resumed
 * run continues as if never stopped (every other piece of state is in the
 * checkpoint: weights, AdamW moments and step, the rollout buffer when
 * --iterations > 1 stops between passes).
 *
 * Checkpoints store the weights as F32 whatever the starting model's dtype,
 * so a resumed run continues from the exact values.
 *
 * Data parallelism (under mpirun, src/dist/): every function here is then
 * collective — all ranks call it together. Rank r of S takes the step's
 * prompt groups r*P/S .. (r+1)*P/S-1 (P = --prompts-per-step must be a
 * multiple of S): rollout, rewards, group advantages, the advantage hook and
 * the reference pass stay local; the loss normalisers (completions, tokens)
 * are the whole step's; one allreduce adds the ranks' gradients after their
 * micro-batches; clipping and AdamW then run identically everywhere. So a
 * run samples the same completions on any number of ranks, and its weights
 * differ only by the order of the gradient sum. Rank 0 alone reads and
 * writes the run directory (config.json, metrics.jsonl, checkpoints) and
 * hands the start to the others (every rank reads --model and --data), so
 * resuming works with another rank count;
 * metrics are over all completions, times the slowest rank's. An error on
 * one rank is returned on all (iapo_dist_agree), never a hang.
 *
 * Memory: weights, the frozen reference, gradient and AdamW moment blocks,
 * the activation arenas, the KV cache and the rollout buffers are allocated
 * once in iapo_trainer_new; a step allocates only the sampled completions'
 * small token/text arrays.
 *
 * Extension point: the per-token advantage. By default every completion
 * token gets its sequence's group advantage; a hook (IAPO's information
 * gain, GTPO's entropy bonus, ...) may fill any (sequence, token) values.
 *
 * Not here: option parsing (options.h), the loss maths (grpo.h), checkpoint
 * file formats below the trainer's JSON (checkpoint.h), the CLI and signals
 * (tools/cmd_train.c).
 */
#ifndef IAPO_RL_TRAINER_H
#define IAPO_RL_TRAINER_H

#include <signal.h>

#include "iapo.h"
#include "model/kvcache.h"
#include "model/weights.h"
#include "rl/options.h"
#include "tokenizer/tokenizer.h"

typedef struct iapo_trainer iapo_trainer;

/* What one step measured; also the fields of its metrics.jsonl line. */
typedef struct {
	long step;             /* 1-based: the number of optimizer steps done after this one */
	double epoch;          /* fractional epochs done, as HF logs it */
	int iteration;         /* pass over this rollout (0 .. iterations-1) */
	double reward_mean, reward_std, accuracy, format_rate;
	double frac_reward_zero_std; /* groups whose rewards are all equal (no signal) */
	double length_mean;
	int length_min, length_max;
	double clipped_ratio;  /* completions that hit --max-completion-tokens */
	double kl, entropy;    /* means over completion tokens */
	int has_kl;            /* a reference model was scored (beta != 0); without one kl is not
	                        * measured and metrics.jsonl leaves it out, as TRL does */
	double loss, grad_norm, lr;
	double ratio_mean, clip_low, clip_high; /* token fractions */
	double tokens;         /* completion tokens in the step */
	int skipped;           /* NaN/Inf loss or gradient: no update */
	double seconds_rollout, seconds_scoring, seconds_reference, seconds_update, seconds_eval, seconds_total;
	int has_eval;
	double eval_accuracy, eval_format_rate, eval_length_mean, eval_truncated_rate;
	double eval_pass_at_1, eval_pass_at_n; /* pass@1 and pass@eval_samples */
	long eval_problems, eval_samples;
} iapo_step_metrics;

/* The rollout buffer of the current step (under MPI: this rank's groups),
 * read-only, for an advantage hook.
 * Per-token arrays are (n, Tc) row-major: entry [i*Tc + t] is completion i's
 * token t (t < comp_len[i]); prompt i is prompt_tokens[i][0..prompt_len[i]). */
typedef struct {
	int n, G, Tc;                    /* sequences (prompts x G, in groups of G), row stride */
	int comp_len_max;                /* longest completion of the whole step (all MPI ranks) */
	const int *const *prompt_tokens; /* (n) */
	const int *prompt_len, *comp_len;
	const int *comp_tokens;          /* (n, Tc) */
	const float *rewards, *seq_adv;  /* (n) */
	const int *finish;               /* (n) iapo_finish */
	const iapo_weights *policy;      /* the weights that sampled them */
	iapo_kv *kv;                     /* the rollout's KV cache (slots may be reused by the hook) */
	float temperature;
	long step;                       /* 0-based optimizer step */
	/* The rollout's cache for reuse, offered only with what the trainer
	 * checked (the slot's tokens equal the sequence's, the weights are the
	 * ones that sampled): kv_slot[i] = the slot of kv holding prompt i +
	 * completion i minus its last token, or -1; NULL: none offered.
	 * kv_entropy[i] (where kv_slot[i] >= 0): the entropies, at
	 * `temperature`, of the distributions completion i's tokens were sampled
	 * from (comp_len[i] values). Slots [kv_scratch0, kv_scratch0 +
	 * kv_nscratch) of kv hold no sequence: free scratch. */
	const int *kv_slot;
	const float *const *kv_entropy;
	int kv_scratch0, kv_nscratch;
	/* (n) or NULL: non-zero = the loss reads none of sequence i's tokens
	 * (a group that dynamic sampling dropped): its advantages are unused. */
	const unsigned char *unused;
} iapo_rollout_view;

/* Fills adv (n, Tc) for completion tokens t < comp_len[i] (others are
 * ignored). Returns a status; a failure stops the step. */
typedef iapo_status (*iapo_advantage_fn)(void *ctx, const iapo_rollout_view *r, float *adv);

/* Loads the model (or, with o->resume, the latest checkpoint of o->out),
 * tokenizer, datasets, and allocates everything. o must be resolved
 * (iapo_train_opts_resolve); it is copied. Writes RUN_DIR/config.json.
 * Errors: FORMAT/IO naming files and lines (bad data rows, a corrupted
 * checkpoint), ARG for options that do not fit the data (fewer rows than
 * prompts per step) or an --out that holds another run without --resume or
 * --overwrite. */
iapo_status iapo_trainer_new(const iapo_train_opts *o, iapo_trainer **out);
void iapo_trainer_free(iapo_trainer *tr);

/* Replaces the per-token advantage (NULL: the sequence advantage broadcast). */
void iapo_trainer_set_advantage(iapo_trainer *tr, iapo_advantage_fn fn, void *ctx);

/* Runs the next optimizer step: rollout (on the first pass of a rollout),
 * scoring, advantages, reference/old log-probs, update; appends its line to
 * metrics.jsonl; evaluates and checkpoints when their step comes (and at the
 * last step). m may be NULL. Returns IAPO_ERR_ARG when the run is already
 * complete, IAPO_ERR_NUMERIC after max-bad-steps non-finite steps in a row. */
iapo_status iapo_trainer_step(iapo_trainer *tr, iapo_step_metrics *m);

/* Called after each step (NULL: nothing). */
typedef void (*iapo_step_fn)(void *ctx, const iapo_trainer *tr, const iapo_step_metrics *m);

/* Steps until the last one, or until *stop becomes non-zero (checked after
 * each step; a checkpoint of the current step is then written). A run that
 * is already complete returns at once. */
iapo_status iapo_trainer_run(iapo_trainer *tr, const volatile sig_atomic_t *stop, iapo_step_fn on_step, void *ctx);

/* Writes checkpoint-<steps done> now (atomic). */
iapo_status iapo_trainer_save(iapo_trainer *tr);

long iapo_trainer_steps_done(const iapo_trainer *tr);
long iapo_trainer_total_steps(const iapo_trainer *tr);
/* Path of the last checkpoint written or resumed from ("" if none). */
const char *iapo_trainer_last_checkpoint(const iapo_trainer *tr);
const iapo_weights *iapo_trainer_weights(const iapo_trainer *tr);
/* The resolved options the run uses. */
const iapo_train_opts *iapo_trainer_opts(const iapo_trainer *tr);

/* The stream key of completion `sample` of dataset row `row` at generation
 * step `gen_step` (exposed for tests and for evaluation code that wants the
 * same scheme). */
uint64_t iapo_trainer_sample_key(long gen_step, long row, int sample);

#endif
