/*
 * train_internal.h — the trainer's state, shared by its files: trainer.c
 * (setup and the step), train_state.c (run directory, metrics.jsonl,
 * checkpoints and resume). Not part of the public API.
 */
#ifndef IAPO_RL_TRAIN_INTERNAL_H
#define IAPO_RL_TRAIN_INTERNAL_H

#include <stdio.h>

#include <cjson/cJSON.h>

#include "model/generate.h"
#include "model/transformer.h"
#include "rl/algo.h"
#include "rl/dataset.h"
#include "rl/grpo.h"
#include "rl/reward.h"
#include "rl/schedule.h"
#include "rl/trainer.h"

#define TRAIN_PATH 4096
#define TRAIN_MAX_EOS (IAPO_MAX_EOS + 16)

struct iapo_trainer {
	iapo_train_opts o;
	iapo_data_format fmt;
	iapo_loss_type loss_type;
	iapo_lr_schedule sched;
	int scale_rewards;
	iapo_reward_weights rw;
	char last_ckpt[TRAIN_PATH];

	iapo_tokenizer *tok;
	iapo_weights w;   /* the policy, trained in place */
	iapo_weights ref; /* frozen initial weights (block NULL when beta = 0) */
	size_t n_params;
	float *grad, *m, *v; /* (n_params) each, the weights' layout */
	long adam_t;         /* AdamW updates made */

	iapo_dataset train, eval;
	int have_eval;
	int *pool;           /* every training prompt's tokens, back to back */
	size_t *prompt_off;  /* (train.n) */
	int *prompt_len;     /* (train.n) after left truncation */
	int Tp;              /* longest prompt */
	int eos[TRAIN_MAX_EOS], n_eos;

	/* layout */
	int P, G, N, mb, R, Tc, T, mu;
	/* data parallelism (src/dist/): rank `rank` of `ranks` holds the step's
	 * sequences [i_first, i_first + n_loc): whole groups, n_loc = N / ranks.
	 * The rollout buffer below holds only those; P and N stay the step's. */
	int rank, ranks, n_loc, i_first;
	/* --algo (algo.h): completions sampled per prompt Gs (GFPO: G' >= G) and
	 * the rollout buffer's capacity n_cap = n_loc / G * Gs; after the algo's
	 * selection the buffer holds n_loc sequences in groups of G */
	int Gs, n_cap;
	iapo_algo *algo;
	iapo_algo_metrics algo_m; /* of the last step */
	const float *lmask;       /* (N, Tc) loss mask of the current update, NULL = all tokens */
	long per_epoch; /* rollouts per epoch */
	long total;     /* optimizer steps of the run */

	iapo_fwd *fwd, *ref_fwd;
	iapo_kv *kv;

	size_t *perm; /* data order of epoch perm_epoch */
	long perm_epoch;

	/* rollout buffer: this rank's n_loc sequences in groups of G */
	long buf_gen; /* rollout (generation step) it holds, -1: none */
	int *row, *plen, *clen, *finish, *correct, *fmt_ok; /* (N) */
	float *reward, *seq_adv;                             /* (N) */
	int *ctok;                                           /* (N, Tc) */
	float *adv, *old_logp, *ref_logp;                    /* (N, Tc) */
	const int **pptr;                                    /* (N) prompt pointers */
	const int **gen_ptr;                                 /* (R) */
	int *gen_len;                                        /* (R) */
	int *gen_slot;                                       /* (R) rollout-cache slot of each generated sequence */
	uint64_t *keys;                                      /* (R) */
	iapo_gen_result *res;                                /* (R) */
	double rollout_secs, scoring_secs, reference_secs;   /* of the buffer's rollout */
	/* set by a rollout's first iapo_generate call: the cache's bf16 copy and
	 * weight packs are of the weights this rollout samples with, so its later
	 * calls (--rollout-batch slices, resampling rounds) keep them */
	int roll_keep;

	/* micro-batch scratch, (mb, T) */
	int *mtok, *mlen, *mtgt;
	float *mlogp, *ment, *mold, *mref, *madv, *mmask, *mdlogp;

	/* progress */
	long step; /* optimizer steps done */
	int bad_streak;
	int has_best;
	double best_metric;
	long best_step;
	long best_ckpt_step; /* checkpoint saved at best_step, -1 none */
	cJSON *log_history; /* array of metrics objects, as HF's trainer_state */
	FILE *metrics;
	long saved_step; /* step of the last checkpoint, -1 none */

	iapo_advantage_fn adv_fn;
	void *adv_ctx;

	/* Reuse of the rollout's KV cache by the IAPO estimator (kv_reuse):
	 * kv has R + kv_extra slots, the extra ones scratch; what each of the
	 * first R slots holds since the last iapo_generate: prompt kv_ptok[b]
	 * (kv_plen[b] tokens) + kv_ctok[b] (kv_clen[b] tokens, -1 = nothing
	 * offered) minus the last token, with the weights of optimiser update
	 * kv_adam_t, and the sampling entropies kv_ent[b]. The view's
	 * per-sequence kv_slot/kv_entp/unused are matched from these. */
	int kv_reuse, kv_extra;
	const int **kv_ptok;  /* (R) */
	int *kv_plen, *kv_clen; /* (R) */
	int *kv_ctok;         /* (R, Tc) */
	float *kv_ent;        /* (R, Tc) */
	long kv_adam_t;
	int *kv_slot;         /* (N) */
	const float **kv_entp; /* (N) */
	unsigned char *unused; /* (N) */
};

/* train_state.c */
/* Prepares RUN_DIR for a new run (refuses one holding another run unless
 * --overwrite) or, with --resume, finds the checkpoint to load: *ckpt_step
 * = its step (-1 when starting fresh). */
iapo_status train_run_dir_prepare(iapo_trainer *tr, long *ckpt_step);
/* Loads optimizer.bin, trainer_state.json and rng_state.json of checkpoint
 * `step`, truncates metrics.jsonl to it (rank 0 only, under MPI). Weights
 * are loaded by the caller, the rollout buffer by train_resume_rollout. */
iapo_status train_resume(iapo_trainer *tr, long step);
/* Collective: when checkpoint `step` stops between passes of --iterations,
 * rank 0 reads its rollout.bin and every rank takes its sequences. */
iapo_status train_resume_rollout(iapo_trainer *tr, long step);
/* Writes config.json and opens metrics.jsonl for appending. */
iapo_status train_open_outputs(iapo_trainer *tr);
/* Appends the step's line to metrics.jsonl and log_history. eval may be NULL. */
iapo_status train_log_metrics(iapo_trainer *tr, const iapo_step_metrics *m, const cJSON *eval);
/* The checkpoint of the current step (collective: rank 0 writes it, from
 * every rank's part of the rollout buffer when that is saved too). */
iapo_status train_save(iapo_trainer *tr);

/* train_dist.c: data parallelism */
/* Collective, after rank 0 loaded the start (or checkpoint `ckpt`): every
 * rank gets rank 0's weights, AdamW moments and progress counters. */
iapo_status train_dist_start(iapo_trainer *tr, long ckpt);
/* Collective: IAPO_ERR_INTERNAL on every rank when the ranks' weights differ. */
iapo_status train_dist_check_weights(iapo_trainer *tr);

#endif
