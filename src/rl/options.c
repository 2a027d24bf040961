/*
 * options.c — the option table of `iapo train` (parsed, written back and
 * printed by the table machinery of rl/optable.c, shared with `iapo sft`)
 * and the derivation of the batch layout and cross-option checks.
 */
#include "rl/options.h"

#include <stddef.h>
#include <string.h>

#include "core/status.h"
#include "io/fs.h"
#include "rl/algo.h"
#include "rl/optable.h"

#define F(field) offsetof(iapo_train_opts, field)
#define BIG 1e15

static const iapo_opt_def OPTS[] = {
	{"model", IAPO_OPT_STR, F(model), NULL, 0, 0, NULL, "DIR", "Hugging Face model directory to start from (required); also the frozen reference", "run"},
	{"data", IAPO_OPT_STR, F(data), NULL, 0, 0, NULL, "FILE", "training prompts, JSONL (required)", NULL},
	{"out", IAPO_OPT_STR, F(out), NULL, 0, 0, NULL, "DIR", "run directory: config.json, metrics.jsonl, checkpoint-N/ (required)", NULL},
	{"algo", IAPO_OPT_ENUM, F(algo), "grpo", 0, 0, "grpo|iapo|dapo|lenpen|gtpo|gfpo|sgrpo", "NAME", "algorithm (see above); it only changes the defaults of the options below", NULL},
	{"resume", IAPO_OPT_FLAG, F(resume), "0", 0, 0, NULL, NULL, "continue from the latest checkpoint in --out (its config.json gives the defaults)", NULL},
	{"overwrite", IAPO_OPT_FLAG, F(overwrite), "0", 0, 0, NULL, NULL, "delete the checkpoints and metrics of an earlier run in --out", NULL},
	{"seed", IAPO_OPT_INT, F(seed), "42", 0, 9007199254740992.0, NULL, "N", "random seed: data order and every sample's stream", NULL},
	{"threads", IAPO_OPT_INT, F(threads), "0", 0, 4096, NULL, "N", "OpenMP/BLAS threads, 0 = all cores (a run repeats exactly only with the same count)", NULL},

	{"data-format", IAPO_OPT_ENUM, F(data_format), "auto", 0, 0, "auto|gsm8k|math|dapo|generic", "F", "row layout of --data and --eval-data", "data and prompt"},
	{"prompt-field", IAPO_OPT_STR, F(prompt_field), NULL, 0, 0, NULL, "NAME", "field holding the problem (dotted for nested; default: the format's)", NULL},
	{"answer-field", IAPO_OPT_STR, F(answer_field), NULL, 0, 0, NULL, "NAME", "field holding the answer (default: the format's)", NULL},
	{"max-rows", IAPO_OPT_INT, F(max_rows), "0", 0, BIG, NULL, "N", "keep the first N rows of --data, 0 = all (the reference: 7000 DAPO rows)", NULL},
	{"dedupe", IAPO_OPT_FLAG, F(dedupe), "0", 0, 0, NULL, NULL, "drop rows whose prompt repeats an earlier one", NULL},
	{"system", IAPO_OPT_STR, F(system), NULL, 0, 0, NULL, "TEXT", "system prompt (default: the reference's R1 prompt + the format's task line)", NULL},
	{"no-one-shot", IAPO_OPT_FLAG, F(no_one_shot), "0", 0, 0, NULL, NULL, "leave out the reference's one-shot \"What is 2+2?\" exchange", NULL},
	{"no-chat-template", IAPO_OPT_FLAG, F(no_chat_template), "0", 0, 0, NULL, NULL, "tokenize the problem text as is (base models; --system and one-shot unused)", NULL},
	{"eval-data", IAPO_OPT_STR, F(eval_data), NULL, 0, 0, NULL, "FILE", "evaluation prompts, JSONL (else a split of --data, see below)", NULL},
	{"eval-steps", IAPO_OPT_INT, F(eval_steps), "50", 0, BIG, NULL, "N", "evaluate every N steps and at the end, 0 = never", NULL},
	{"eval-fraction", IAPO_OPT_NUM, F(eval_fraction), "0", 0, 1, NULL, "F", "without --eval-data: hold out this fraction of --data (seeded split)", NULL},
	{"eval-count", IAPO_OPT_INT, F(eval_count), "0", 0, BIG, NULL, "N", "without --eval-data: hold out N rows of --data (overrides --eval-fraction)", NULL},
	{"eval-generations", IAPO_OPT_INT, F(eval_generations), "0", 0, 4096, NULL, "N", "samples per eval prompt, 0 = --num-generations (the reference: 8)", NULL},

	{"prompts-per-step", IAPO_OPT_INT, F(prompts_per_step), "12", 1, 1 << 20, NULL, "N", "prompts per optimizer step (the reference: 12)", "batch"},
	{"num-generations", IAPO_OPT_INT, F(num_generations), "8", 2, 4096, NULL, "G", "completions per prompt, the group size", NULL},
	{"micro-batch", IAPO_OPT_INT, F(micro_batch), "4", 1, 1 << 20, NULL, "N", "completions per forward/backward (memory); derived when not given", NULL},
	{"grad-accum", IAPO_OPT_INT, F(grad_accum), "24", 1, 1 << 20, NULL, "N", "micro-batches per step: micro-batch x grad-accum = prompts-per-step x G", NULL},
	{"rollout-batch", IAPO_OPT_INT, F(rollout_batch), "0", 0, 1 << 20, NULL, "N", "completions sampled at once (KV-cache memory), 0 = the whole step", NULL},
	{"epochs", IAPO_OPT_INT, F(epochs), "2", 1, 1 << 20, NULL, "N", "passes over --data (the reference: 2)", NULL},
	{"max-steps", IAPO_OPT_INT, F(max_steps), "0", 0, BIG, NULL, "N", "optimizer steps; 0 = epochs x floor(rows / prompts-per-step) x iterations", NULL},
	{"max-prompt-tokens", IAPO_OPT_INT, F(max_prompt_tokens), "512", 1, 1 << 24, NULL, "N", "longer prompts keep their last N tokens (left truncation)", NULL},
	{"max-completion-tokens", IAPO_OPT_INT, F(max_completion_tokens), "2048", 1, 1 << 24, NULL, "N", "tokens sampled per completion at most", NULL},

	{"temperature", IAPO_OPT_NUM, F(temperature), "1.0", 1e-6, 1e6, NULL, "F", "sampling temperature; log-probs use the same (as TRL)", "sampling"},
	{"top-p", IAPO_OPT_NUM, F(top_p), "1.0", 1e-9, 1, NULL, "F", "nucleus sampling mass, 1 = off", NULL},
	{"top-k", IAPO_OPT_INT, F(top_k), "0", 0, 1 << 30, NULL, "N", "keep the N most likely tokens, 0 = off", NULL},
	{"rollout-bf16", IAPO_OPT_FLAG, F(rollout_bf16), "1", 0, 0, NULL, NULL, "sample with bf16 copies of the weights: ON BY DEFAULT for every --algo (on the demo, 5 seeds: pass@1 and length as with fp32 sampling within the seed spread, and a step costs 8% (grpo) to 19% (iapo) less CPU; bench/README.md \"In training\"). The loss and its log-prob ratios stay fp32; with --algo iapo the estimator reads this rollout's cache with the bf16 weights (--info-bf16). --rollout-fp32 turns it off", NULL},
	{"rollout-rows", IAPO_OPT_FLAG, F(rollout_rows), "0", 0, 0, NULL, NULL, "decode the rollouts from the weight matrices' rows instead of the default panels packed from them at every rollout (the panels: one more copy of the matrices, kept for the run: half the fp32 weights' bytes with bf16 rollouts, as many with --rollout-fp32; qwen0.5b's decoding of 8 rows +32% from them; other rounding only, tests/test_generate.c; bench/README.md \"Session 12, decoding\"). For memory", NULL},
	{"rollout-fp32", IAPO_OPT_FLAG, F(rollout_fp32), "0", 0, 0, NULL, NULL, "sample with the fp32 weights instead of the default bf16 copies (the way back; with --algo iapo the information pass is then the exact fp32 one over the rollout's cache)", NULL},

	{"learning-rate", IAPO_OPT_NUM, F(learning_rate), "1e-6", 0, 1e3, NULL, "F", "peak learning rate", "optimizer"},
	{"warmup-steps", IAPO_OPT_INT, F(warmup_steps), "0", 0, BIG, NULL, "N", "linear warmup steps", NULL},
	{"lr-schedule", IAPO_OPT_ENUM, F(lr_schedule), "linear", 0, 0, "linear|cosine|constant", "S", "decay after warmup (to 0 at the last step for linear/cosine)", NULL},
	{"adam-beta1", IAPO_OPT_NUM, F(adam_beta1), "0.9", 0, 0.999999, NULL, "F", "AdamW beta1", NULL},
	{"adam-beta2", IAPO_OPT_NUM, F(adam_beta2), "0.99", 0, 0.999999999, NULL, "F", "AdamW beta2", NULL},
	{"adam-eps", IAPO_OPT_NUM, F(adam_eps), "1e-8", 0, 1, NULL, "F", "AdamW epsilon", NULL},
	{"weight-decay", IAPO_OPT_NUM, F(weight_decay), "0", 0, 1e3, NULL, "F", "decoupled weight decay", NULL},
	{"max-grad-norm", IAPO_OPT_NUM, F(max_grad_norm), "1.0", 0, 1e30, NULL, "F", "clip the global gradient norm, 0 = off", NULL},

	{"beta", IAPO_OPT_NUM, F(beta), "0.001", 0, 1e6, NULL, "F", "KL (k3) weight against the frozen initial model, 0 = no reference pass", "loss"},
	{"epsilon-low", IAPO_OPT_NUM, F(epsilon_low), "0.2", 0, 1, NULL, "F", "ratio clip below 1 - eps", NULL},
	{"epsilon-high", IAPO_OPT_NUM, F(epsilon_high), "0.2", 0, 1e6, NULL, "F", "ratio clip above 1 + eps (dapo: 0.28)", NULL},
	{"loss-type", IAPO_OPT_ENUM, F(loss_type), "bnpo", 0, 0, "grpo|bnpo|dr_grpo", "T", "token aggregation: per-sequence mean / token mean / sum over G x max length (gfpo, sgrpo: grpo)", NULL},
	{"scale-rewards", IAPO_OPT_ENUM, F(scale_rewards), "group", 0, 0, "group|none", "S", "divide advantages by the group's std (none: Dr. GRPO)", NULL},
	{"iterations", IAPO_OPT_INT, F(iterations), "1", 1, 1024, NULL, "N", "optimizer passes per rollout (>1: old log-probs kept, the ratio is real)", NULL},

	{"reward-correct", IAPO_OPT_NUM, F(reward_correct), "1.0", -1e6, 1e6, NULL, "F", "reward for a correct answer", "rewards"},
	{"reward-wrong", IAPO_OPT_NUM, F(reward_wrong), "-1.0", -1e6, 1e6, NULL, "F", "reward for a wrong or missing answer", NULL},
	{"reward-format", IAPO_OPT_NUM, F(reward_format), "0.5", -1e6, 1e6, NULL, "F", "reward for the <think>..</think><answer>..</answer> layout", NULL},
	{"reward-format-bad", IAPO_OPT_NUM, F(reward_format_bad), "-0.5", -1e6, 1e6, NULL, "F", "reward when the layout is wrong", NULL},

	{"save-steps", IAPO_OPT_INT, F(save_steps), "100", 0, BIG, NULL, "N", "checkpoint every N steps (and always at the end), 0 = only at the end", "checkpoints"},
	{"max-bad-steps", IAPO_OPT_INT, F(max_bad_steps), "5", 1, 1 << 20, NULL, "N", "stop after N steps in a row with NaN/Inf loss or gradients (each is skipped)", NULL},
	{"check-weights-every", IAPO_OPT_INT, F(check_weights_every), "0", 0, BIG, NULL, "N", "MPI debug: every N steps check that all ranks hold the same weights (a hash), 0 = off", NULL},

	{"postfix", IAPO_OPT_STR, F(postfix), "</think><answer>", 0, 0, NULL, "TEXT", "appended after each cut prompt + o_<t; E_t = entropy of the token after it", "IAPO token terms (--algo iapo)"},
	{"predict", IAPO_OPT_ENUM, F(predict), "answer", 0, 0, "answer|next_token", "M", "E_t after the postfix, or the policy's next-token entropy (the paper's ablation, no postfix pass)", NULL},
	{"answer-tokens", IAPO_OPT_INT, F(answer_tokens), "1", 1, 64, NULL, "N", "E_t sums the entropies of the first N answer tokens (greedy, teacher-forced; 1 = the paper)", NULL},
	{"info-chunk", IAPO_OPT_INT, F(info_chunk), "0", 0, 1 << 20, NULL, "N", "positions per batched estimator pass, 0 = automatic (256 MiB budget)", NULL},
	{"info-stride", IAPO_OPT_INT, F(info_stride), "1", 1, 1 << 20, NULL, "N", "APPROXIMATION: estimate E at every N-th position only, linear in between (C stays exact)", NULL},
	{"info-at", IAPO_OPT_ENUM, F(info_at), "all", 0, 0, "all|newline", "W", "APPROXIMATION newline: estimate E only after tokens holding a newline (one estimate per line)", NULL},
	{"info-bf16", IAPO_OPT_FLAG, F(info_bf16), "0", 0, 0, NULL, NULL, "APPROXIMATION: the estimator multiplies by bf16 copies of the weights and attends over a bf16 copy of the KV cache, with fp32 softmax and sums (training stays fp32; tests/test_info_bf16.c bounds how far it moves the advantages: within 0.1 of the fp32 pass; bench/README.md has measured figures). Implied by the default bf16 rollout, whose cache the pass reads; --rollout-fp32 gives the exact fp32 pass", NULL},
	{"info-recompute", IAPO_OPT_FLAG, F(info_recompute), "0", 0, 0, NULL, NULL, "recompute the prompt+completion K/V and policy entropies for the estimator instead of taking the rollout's (equal within float rounding; for checking)", NULL},
	{"gain", IAPO_OPT_ENUM, F(gain), "plain", 0, 0, "plain|reference", "G", "S_t = E_t - E_t+1, or the authors' (E_t + E_t-1)/2 - E_t+1", NULL},
	{"norm", IAPO_OPT_ENUM, F(norm), "zscore", 0, 0, "zscore|reference", "N", "per completion: z-score over its tokens then unit L2 norm, or the authors' x - mean/std over the padded width", NULL},
	{"horizon", IAPO_OPT_INT, F(horizon), "1", 1, 1 << 20, NULL, "H", "S'_t = sum over k < H of decay^k S_t+k (1 = none)", NULL},
	{"decay", IAPO_OPT_NUM, F(decay), "0.5", 0, 1e3, NULL, "F", "decay of the horizon sum", NULL},
	{"w-info", IAPO_OPT_NUM, F(w_info), "1.0", 0, 1e6, NULL, "F", "w_s, weight of the normalised information gain. 1 is the paper's GSM8K pair, but a normalised entry is ~1/sqrt(length): on completions of a few tokens 1 outweighs the group advantage (0.3 learns there); the authors' CLI default 1e-6 is effectively 0", NULL},
	{"w-conf", IAPO_OPT_NUM, F(w_conf), "1.0", 0, 1e6, NULL, "F", "w_c, weight of the normalised policy entropy, signed by the reward (same scale caveat)", NULL},

	{"dynamic-sampling", IAPO_OPT_ENUM, F(dynamic_sampling), "off", 0, 0, "off|drop|resample", "M", "groups whose rewards are all equal: drop them from the loss and its normalisers, or resample them with fresh streams (dropped if still equal) (dapo: resample)", "DAPO and reward shaping (any --algo)"},
	{"dynamic-max-tries", IAPO_OPT_INT, F(dynamic_max_tries), "3", 0, 1000, NULL, "N", "resampling rounds per rollout for --dynamic-sampling resample", NULL},
	{"overlong-buffer", IAPO_OPT_INT, F(overlong_buffer), "0", 0, 1 << 24, NULL, "N", "DAPO overlong shaping: the last N tokens before --max-completion-tokens cost up to --overlong-penalty, linearly; 0 = off (dapo: max-completion-tokens / 5)", NULL},
	{"overlong-penalty", IAPO_OPT_NUM, F(overlong_penalty), "1.0", 0, 1e6, NULL, "F", "reward taken off at --max-completion-tokens", NULL},
	{"lenpen-weight", IAPO_OPT_NUM, F(lenpen_weight), "0", 0, 1e6, NULL, "F", "Kimi k1.5 length reward x F added to the reward (per group: 0.5 - (len - min)/(max - min), wrong answers get only its negative part); 0 = off (lenpen: 1)", NULL},

	{"gtpo-coef", IAPO_OPT_NUM, F(gtpo_coef), "0.1", 0, 1e6, NULL, "F", "GTPO: coefficient of the entropy-weighted token bonus (the authors' 0.1)", "GTPO, GFPO, S-GRPO (--algo gtpo | gfpo | sgrpo)"},
	{"gtpo-scale", IAPO_OPT_ENUM, F(gtpo_scale), "length", 0, 0, "length|active", "S", "GTPO: bonus x the completion's length (the authors' code) or x the group members still generating at t (the paper's d_t)", NULL},
	{"gfpo-sample", IAPO_OPT_INT, F(gfpo_sample), "8", 2, 4096, NULL, "N", "GFPO: completions sampled per prompt (G')", NULL},
	{"gfpo-keep", IAPO_OPT_INT, F(gfpo_keep), "6", 2, 4096, NULL, "K", "GFPO: completions kept per prompt, the training group (sets --num-generations)", NULL},
	{"gfpo-metric", IAPO_OPT_ENUM, F(gfpo_metric), "length", 0, 0, "length|reward_per_token", "M", "GFPO: keep the shortest, or the most reward per token", NULL},
	{"sgrpo-alpha", IAPO_OPT_INT, F(sgrpo_alpha), "150", 0, 1 << 24, NULL, "N", "S-GRPO: the first N completion tokens always count in the loss", NULL},
	{"sgrpo-k", IAPO_OPT_INT, F(sgrpo_k), "341", 0, 1 << 24, NULL, "N", "S-GRPO: completions shorter than N also count later tokens at random; longer ones only the first alpha", NULL},
	{"sgrpo-token-prob", IAPO_OPT_NUM, F(sgrpo_token_prob), "0.5", 0, 1, NULL, "F", "S-GRPO: probability that a token after alpha counts", NULL},
};
#define NOPTS (sizeof OPTS / sizeof *OPTS)

_Static_assert(sizeof OPTS / sizeof *OPTS <= sizeof(((iapo_train_opts *)0)->given), "given[] too small");

static const iapo_optable TABLE = {
	.cmd = "train",
	.opts = OPTS,
	.n = NOPTS,
	.size = sizeof(iapo_train_opts),
	.given_off = offsetof(iapo_train_opts, given),
	.owned_off = IAPO_OPT_STRDUP,
	.help_width = 28,
};

iapo_status iapo_train_opts_default(iapo_train_opts *o) { return iapo_optable_default(&TABLE, o); }

void iapo_train_opts_free(iapo_train_opts *o) { iapo_optable_free(&TABLE, o); }

iapo_status iapo_train_opts_copy(iapo_train_opts *dst, const iapo_train_opts *src)
{
	return iapo_optable_copy(&TABLE, dst, src);
}

iapo_status iapo_train_opts_set(iapo_train_opts *o, const char *name, const char *value)
{
	return iapo_optable_set(&TABLE, o, name, value);
}

int iapo_train_opts_is_flag(const char *name) { return iapo_optable_is_flag(&TABLE, name); }

iapo_status iapo_train_opts_apply_json(iapo_train_opts *o, const cJSON *obj, const char *file)
{
	return iapo_optable_apply_json(&TABLE, o, obj, file);
}

iapo_status iapo_train_opts_load(iapo_train_opts *o, const char *path) { return iapo_optable_load(&TABLE, o, path); }

iapo_status iapo_train_opts_from_args(iapo_train_opts *o, int argc, char **argv, int *help)
{
	return iapo_optable_from_args(&TABLE, o, argc, argv, help);
}

int iapo_train_opts_given(const iapo_train_opts *o, const char *name) { return iapo_optable_given(&TABLE, o, name); }

static int given(const iapo_train_opts *o, const char *name) { return iapo_train_opts_given(o, name); }

/* Largest divisor of n that is <= cap. */
static long divisor_below(long n, long cap)
{
	for (long d = cap < n ? cap : n; d > 1; d--)
		if (n % d == 0) return d;
	return 1;
}

static iapo_status resolve_batch(iapo_train_opts *o)
{
	const long G = o->num_generations;
	int gp = given(o, "prompts-per-step"), gm = given(o, "micro-batch"), ga = given(o, "grad-accum");
	long P = o->prompts_per_step, mb = o->micro_batch, acc = o->grad_accum;
	if (gm && ga && !gp) {
		if ((mb * acc) % G)
			return iapo_fail(IAPO_ERR_ARG,
					 "--micro-batch %ld x --grad-accum %ld = %ld completions per step: expected a multiple "
					 "of --num-generations %ld (whole groups)",
					 mb, acc, mb * acc, G);
		P = mb * acc / G;
	} else {
		long N = P * G;
		if (gm && !ga) {
			if (N % mb)
				return iapo_fail(IAPO_ERR_ARG,
						 "--micro-batch %ld: expected a divisor of prompts-per-step %ld x "
						 "num-generations %ld = %ld completions per step",
						 mb, P, G, N);
			acc = N / mb;
		} else if (ga && !gm) {
			if (N % acc)
				return iapo_fail(IAPO_ERR_ARG,
						 "--grad-accum %ld: expected a divisor of prompts-per-step %ld x "
						 "num-generations %ld = %ld completions per step",
						 acc, P, G, N);
			mb = N / acc;
		} else if (!gm && !ga) {
			mb = divisor_below(N, 4);
			acc = N / mb;
		} else if (mb * acc != N) {
			return iapo_fail(IAPO_ERR_ARG,
					 "inconsistent batch options: --micro-batch %ld x --grad-accum %ld = %ld, but "
					 "--prompts-per-step %ld x --num-generations %ld = %ld completions per step",
					 mb, acc, mb * acc, P, G, N);
		}
	}
	o->prompts_per_step = P, o->micro_batch = mb, o->grad_accum = acc;
	return IAPO_OK;
}

/* Rollouts sample in bf16 unless --rollout-fp32 (a flag cannot be given as
 * false on the command line, so the way back is a flag of its own). IAPO's
 * pass over a bf16 rollout's cache is the bf16 pass: --info-bf16 is set so
 * that config.json says which pass the run used. A config.json written
 * before bf16 became the default says "rollout-bf16": false and resumes in
 * fp32, as it ran. */
static iapo_status resolve_precision(iapo_train_opts *o)
{
	const int reuse = !strcmp(o->algo, "iapo") && !o->info_recompute;
	if (o->rollout_fp32) {
		if (o->rollout_bf16 && given(o, "rollout-bf16"))
			return iapo_fail(IAPO_ERR_ARG, "--rollout-bf16 and --rollout-fp32 contradict each other");
		if (reuse && o->info_bf16)
			return iapo_fail(IAPO_ERR_ARG,
					 "--info-bf16 with --rollout-fp32: the pass reads the rollout's cache, which is then fp32's "
					 "(add --info-recompute for a bf16 pass over its own prefill, or drop --rollout-fp32)");
		o->rollout_bf16 = 0;
	}
	if (reuse && o->rollout_bf16) o->info_bf16 = 1;
	return IAPO_OK;
}

iapo_status iapo_train_opts_resolve(iapo_train_opts *o)
{
	if (!o->model) return iapo_fail(IAPO_ERR_ARG, "--model DIR is required");
	if (!o->data) return iapo_fail(IAPO_ERR_ARG, "--data FILE is required");
	if (!o->out) return iapo_fail(IAPO_ERR_ARG, "--out RUN_DIR is required");
	if (o->resume && o->overwrite) return iapo_fail(IAPO_ERR_ARG, "--resume and --overwrite contradict each other");
	/* --overwrite deletes --out's metrics and checkpoint-N/ before the model
	 * is loaded: refuse a model that is one of them (or --out itself, which
	 * means its latest checkpoint) */
	char rest[32];
	if (o->overwrite && iapo_fs_within(o->model, o->out, rest, sizeof rest) &&
	    (!rest[0] || !strncmp(rest, "checkpoint-", 11)))
		return iapo_fail(IAPO_ERR_ARG, "--model %s: --overwrite would delete it before loading it (it is --out %s or one of its checkpoints)",
				 o->model, o->out);
	IAPO_TRY(iapo_algo_resolve_opts(o)); /* --algo's defaults first: gfpo sets the group size */
	IAPO_TRY(resolve_batch(o));
	if (o->eval_data && (o->eval_fraction > 0 || o->eval_count > 0))
		return iapo_fail(IAPO_ERR_ARG, "--eval-fraction/--eval-count split --data; they cannot be used with --eval-data");
	if (o->epsilon_low >= 1) return iapo_fail(IAPO_ERR_ARG, "--epsilon-low: expected < 1, found %g", o->epsilon_low);
	IAPO_TRY(resolve_precision(o));
	return IAPO_OK;
}

cJSON *iapo_train_opts_to_json(const iapo_train_opts *o) { return iapo_optable_to_json(&TABLE, o); }

void iapo_train_opts_help(FILE *f) { iapo_optable_help(&TABLE, f); }
