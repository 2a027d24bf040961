/*
 * trainer.c — setup of a training run and its optimizer step (see trainer.h
 * for the contract, DESIGN §2 for the data flow). The run directory,
 * metrics and checkpoints are in train_state.c.
 *
 * Batch layout of a step: P prompts x G completions = N sequences, sequence
 * i = k*G + j is sample j of the step's k-th prompt. Per-completion arrays
 * are (N, Tc) with Tc = --max-completion-tokens. For a forward, micro-batch
 * row b holds prompt + completion minus its last token, so position
 * plen-1+t predicts completion token t: the targets, the loss mask (every
 * sampled token up to and including the EOS, all of a truncated completion,
 * as TRL) and the gathered advantages / reference / old log-probs live at
 * those positions of (mb, T) arrays.
 */
#include "rl/trainer.h"

#include <math.h>
#include <string.h>

#include "core/mem.h"
#include "core/progress.h"
#include "core/rng.h"
#include "core/status.h"
#include "dist/dist.h"
#include "eval/eval.h"
#include "io/fs.h"
#include "rl/adamw.h"
#include "rl/baselines.h"
#include "rl/checkpoint.h"
#include "rl/info.h"
#include "rl/prompt.h"
#include "rl/train_internal.h"

/* Stream-key domain tags, so data order and sampling never share a stream. */
#define KEY_DATA 0x64617461ull   /* "data" */
#define KEY_SAMPLE 0x73616d70ull /* "samp" */

static uint64_t splitmix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

uint64_t iapo_trainer_sample_key(long gen_step, long row, int sample)
{
	uint64_t k = splitmix(KEY_SAMPLE ^ (uint64_t)gen_step);
	k = splitmix(k ^ (uint64_t)row);
	return splitmix(k ^ (uint64_t)(unsigned)sample);
}

/* ---- setup ---------------------------------------------------------------- */

static iapo_status load_data(iapo_trainer *tr)
{
	const iapo_train_opts *o = &tr->o;
	iapo_dataset_opts dopts = {0};
	IAPO_TRY(iapo_data_format_parse(o->data_format, &dopts.format));
	dopts.prompt_field = o->prompt_field;
	dopts.answer_field = o->answer_field;
	dopts.max_rows = (size_t)o->max_rows;
	dopts.dedupe = o->dedupe;
	iapo_dataset all;
	IAPO_TRY(iapo_dataset_load(o->data, &dopts, &all));
	tr->fmt = all.format;
	iapo_status st = IAPO_OK;
	if (o->eval_data) {
		tr->train = all;
		iapo_dataset_opts eopts = dopts;
		eopts.max_rows = 0;
		eopts.dedupe = 0;
		IAPO_TRY(iapo_dataset_load(o->eval_data, &eopts, &tr->eval));
		tr->have_eval = 1;
	} else if (o->eval_fraction > 0 || o->eval_count > 0) {
		if (o->eval_count > 0 && (size_t)o->eval_count >= all.n) {
			st = iapo_fail(IAPO_ERR_ARG, "--eval-count %ld: expected fewer than the %zu rows of %s", o->eval_count,
				       all.n, o->data);
		} else {
			st = iapo_dataset_split(&all, o->eval_fraction, (size_t)o->eval_count, (uint64_t)o->seed, &tr->train,
						&tr->eval);
			tr->train.format = tr->eval.format = all.format;
			tr->have_eval = st == IAPO_OK && tr->eval.n > 0;
		}
		iapo_dataset_free(&all);
	} else {
		tr->train = all;
	}
	IAPO_TRY(st);
	if (tr->train.n < (size_t)o->prompts_per_step)
		return iapo_fail(IAPO_ERR_ARG, "%s: %zu training rows: expected at least --prompts-per-step %ld", o->data,
				 tr->train.n, o->prompts_per_step);
	return IAPO_OK;
}

/* Chat-templated (or raw) prompt tokens of every training row, left-truncated. */
static iapo_status tokenize_prompts(iapo_trainer *tr)
{
	const iapo_train_opts *o = &tr->o;
	size_t n = tr->train.n, used = 0, cap = 0;
	int *ids = NULL;
	size_t nid = 0, idcap = 0;
	iapo_status st = IAPO_OK;
	tr->prompt_off = iapo_malloc(n * sizeof(size_t));
	tr->prompt_len = iapo_malloc(n * sizeof(int));
	if (!tr->prompt_off || !tr->prompt_len) return iapo_fail(IAPO_ERR_NOMEM, "prompts: out of memory");
	for (size_t r = 0; r < n; r++) {
		const char *problem = tr->train.ex[r].prompt;
		if (o->no_chat_template)
			st = iapo_tokenizer_encode(tr->tok, problem, strlen(problem), &ids, &nid, &idcap);
		else
			st = iapo_prompt_tokens(tr->tok, tr->fmt, o->system, problem, !o->no_one_shot, &ids, &nid, &idcap);
		if (st != IAPO_OK) {
			iapo_fail_prefix(st, "%s: row %zu", o->data, r + 1);
			break;
		}
		if (nid == 0) {
			st = iapo_fail(IAPO_ERR_FORMAT, "%s: row %zu: expected a prompt, found one with no tokens", o->data, r + 1);
			break;
		}
		size_t keep = nid > (size_t)o->max_prompt_tokens ? (size_t)o->max_prompt_tokens : nid;
		if (used + keep > cap) {
			size_t nc = cap ? cap * 2 : 4096;
			while (nc < used + keep) nc *= 2;
			int *np = iapo_realloc(tr->pool, nc * sizeof(int));
			if (!np) {
				st = iapo_fail(IAPO_ERR_NOMEM, "prompts: out of memory");
				break;
			}
			tr->pool = np;
			cap = nc;
		}
		memcpy(tr->pool + used, ids + (nid - keep), keep * sizeof(int)); /* keep the last tokens */
		tr->prompt_off[r] = used;
		tr->prompt_len[r] = (int)keep;
		used += keep;
		if ((int)keep > tr->Tp) tr->Tp = (int)keep;
	}
	iapo_free(ids);
	return st;
}

static void add_eos(iapo_trainer *tr, int id)
{
	for (int i = 0; i < tr->n_eos; i++)
		if (tr->eos[i] == id) return;
	if (tr->n_eos < TRAIN_MAX_EOS) tr->eos[tr->n_eos++] = id;
}

#define ALLOC(p, count) \
	do { \
		if (!((p) = iapo_calloc((size_t)(count) ? (size_t)(count) : 1, sizeof *(p)))) \
			return iapo_fail(IAPO_ERR_NOMEM, "trainer: out of memory (%s)", #p); \
	} while (0)

static iapo_status allocate(iapo_trainer *tr)
{
	const size_t N = (size_t)tr->n_cap, NT = N * (size_t)tr->Tc, MT = (size_t)tr->mb * (size_t)tr->T;
	tr->n_params = iapo_param_count(&tr->w.cfg);
	size_t bytes = tr->n_params * sizeof(float);
	if (!(tr->grad = iapo_alloc_aligned(bytes)) || !(tr->m = iapo_alloc_aligned(bytes)) ||
	    !(tr->v = iapo_alloc_aligned(bytes)))
		return iapo_fail(IAPO_ERR_NOMEM, "trainer: out of memory for the gradient and AdamW moments (3 x %zu bytes)",
				 bytes);
	IAPO_TRY(iapo_fwd_new(&tr->w, tr->mb, tr->T, 1, &tr->fwd));
	iapo_fwd_set_temperature(tr->fwd, (float)tr->o.temperature);
	if (tr->ref.block) {
		IAPO_TRY(iapo_fwd_new(&tr->ref, tr->mb, tr->T, 0, &tr->ref_fwd));
		iapo_fwd_set_temperature(tr->ref_fwd, (float)tr->o.temperature);
	}
	/* IAPO's estimator runs over the rollout's cache: scratch slots for its postfix rows */
	tr->kv_reuse = !strcmp(tr->o.algo, "iapo") && !tr->o.info_recompute;
	tr->kv_extra = tr->kv_reuse ? iapo_info_scratch_slots(tr->Tp + tr->Tc) : 0;
	IAPO_TRY(iapo_kv_new(&tr->w, tr->R + tr->kv_extra, tr->Tp + tr->Tc, &tr->kv));
	if (tr->kv_reuse) {
		const size_t RT = (size_t)tr->R * (size_t)tr->Tc;
		ALLOC(tr->kv_ptok, tr->R);
		ALLOC(tr->kv_plen, tr->R);
		ALLOC(tr->kv_clen, tr->R);
		ALLOC(tr->kv_ctok, RT);
		ALLOC(tr->kv_ent, RT);
		ALLOC(tr->kv_slot, N);
		ALLOC(tr->kv_entp, N);
		for (int b = 0; b < tr->R; b++) tr->kv_clen[b] = -1;
	}
	ALLOC(tr->unused, N);
	ALLOC(tr->perm, tr->train.n);
	ALLOC(tr->row, N);
	ALLOC(tr->plen, N);
	ALLOC(tr->clen, N);
	ALLOC(tr->finish, N);
	ALLOC(tr->correct, N);
	ALLOC(tr->fmt_ok, N);
	ALLOC(tr->reward, N);
	ALLOC(tr->seq_adv, N);
	ALLOC(tr->ctok, NT);
	ALLOC(tr->adv, NT);
	ALLOC(tr->old_logp, NT);
	ALLOC(tr->ref_logp, NT);
	ALLOC(tr->pptr, N);
	ALLOC(tr->gen_ptr, tr->R);
	ALLOC(tr->gen_len, tr->R);
	ALLOC(tr->gen_slot, tr->R);
	ALLOC(tr->keys, tr->R);
	ALLOC(tr->res, tr->R);
	ALLOC(tr->mtok, MT);
	ALLOC(tr->mlen, tr->mb);
	ALLOC(tr->mtgt, MT);
	ALLOC(tr->mlogp, MT);
	ALLOC(tr->ment, MT);
	ALLOC(tr->mold, MT);
	ALLOC(tr->mref, MT);
	ALLOC(tr->madv, MT);
	ALLOC(tr->mmask, MT);
	ALLOC(tr->mdlogp, MT);
	return IAPO_OK;
}

/* Options and layout; on rank 0 also the run directory. Nothing collective. */
static iapo_status setup(iapo_trainer *tr, const iapo_train_opts *opts, long *ckpt)
{
	IAPO_TRY(iapo_train_opts_copy(&tr->o, opts));
	iapo_train_opts *o = &tr->o;
	IAPO_TRY(iapo_train_opts_resolve(o));
	IAPO_TRY(iapo_loss_type_parse(o->loss_type, &tr->loss_type));
	IAPO_TRY(iapo_lr_schedule_parse(o->lr_schedule, &tr->sched));
	tr->scale_rewards = strcmp(o->scale_rewards, "none") != 0;
	tr->rw.correct = (float)o->reward_correct;
	tr->rw.wrong = (float)o->reward_wrong;
	tr->rw.format_ok = (float)o->reward_format;
	tr->rw.format_bad = (float)o->reward_format_bad;
	if (o->threads > 0) iapo_set_threads((int)o->threads);
	tr->P = (int)o->prompts_per_step, tr->G = (int)o->num_generations, tr->N = tr->P * tr->G;
	tr->mb = (int)o->micro_batch, tr->mu = (int)o->iterations, tr->Tc = (int)o->max_completion_tokens;
	if (tr->P % tr->ranks)
		return iapo_fail(IAPO_ERR_ARG,
				 "--prompts-per-step %d: expected a multiple of the %d MPI ranks (each rank takes whole "
				 "prompt groups of the step)",
				 tr->P, tr->ranks);
	tr->n_loc = tr->N / tr->ranks;
	tr->i_first = tr->rank * tr->n_loc;
	tr->Gs = iapo_algo_sampled_group(o);
	tr->n_cap = tr->n_loc / tr->G * tr->Gs;
	tr->R = o->rollout_batch > 0 && o->rollout_batch < tr->n_cap ? (int)o->rollout_batch : tr->n_cap;
	if (o->no_chat_template && o->eval_steps > 0 && (o->eval_data || o->eval_fraction > 0 || o->eval_count > 0))
		return iapo_fail(IAPO_ERR_ARG, "--no-chat-template: evaluation renders the chat template; leave out the --eval options or the flag");
	return tr->rank == 0 ? train_run_dir_prepare(tr, ckpt) : IAPO_OK;
}

/* Model, data and buffers; on rank 0 also the checkpoint `ckpt` (>= 0) to
 * resume from. Nothing collective. */
static iapo_status load(iapo_trainer *tr, long ckpt)
{
	const iapo_train_opts *o = &tr->o;
	IAPO_TRY(iapo_tokenizer_load(o->model, &tr->tok));
	if (ckpt >= 0) IAPO_TRY(iapo_checkpoint_dir(o->out, ckpt, tr->last_ckpt, sizeof tr->last_ckpt));
	/* Other ranks take the architecture from the model and the values from
	 * rank 0 (train_dist_start): only rank 0 reads the run directory. */
	IAPO_TRY(iapo_weights_load(ckpt >= 0 && tr->rank == 0 ? tr->last_ckpt : o->model, &tr->w));
	if (o->beta > 0) {
		IAPO_TRY(iapo_weights_load(o->model, &tr->ref));
		if (iapo_param_count(&tr->ref.cfg) != iapo_param_count(&tr->w.cfg))
			return iapo_fail(IAPO_ERR_FORMAT, "%s: expected the architecture of %s (the run's model), found another",
					 tr->last_ckpt, o->model);
	}
	if (iapo_tokenizer_vocab_size(tr->tok) > tr->w.cfg.V)
		return iapo_fail(IAPO_ERR_FORMAT, "%s: vocab_size: expected at least the tokenizer's %d, found %d", o->model,
				 iapo_tokenizer_vocab_size(tr->tok), tr->w.cfg.V);
	for (int i = 0; i < tr->w.cfg.n_eos; i++) add_eos(tr, tr->w.cfg.eos_ids[i]);
	int teos[16], nt = iapo_tokenizer_eos_ids(tr->tok, teos, 16);
	for (int i = 0; i < nt; i++) add_eos(tr, teos[i]);
	if (tr->n_eos == 0) tr->eos[tr->n_eos++] = -1; /* none: completions end by length only */

	IAPO_TRY(load_data(tr));
	IAPO_TRY(tokenize_prompts(tr));
	tr->T = tr->Tp + tr->Tc - 1;
	if (tr->T < 1) tr->T = 1;
	tr->per_epoch = (long)(tr->train.n / (size_t)tr->P);
	tr->total = o->max_steps > 0 ? o->max_steps : o->epochs * tr->per_epoch * tr->mu;
	IAPO_TRY(allocate(tr));
	IAPO_TRY(iapo_algo_new(o, &tr->w, tr->tok, tr->n_loc, tr->Tp + tr->Tc, &tr->algo));
	iapo_trainer_set_advantage(tr, iapo_algo_advantage_fn(tr->algo), tr->algo);
	if (ckpt >= 0 && tr->rank == 0) IAPO_TRY(train_resume(tr, ckpt));
	if (!tr->log_history && !(tr->log_history = cJSON_CreateArray()))
		return iapo_fail(IAPO_ERR_NOMEM, "trainer: out of memory");
	return IAPO_OK;
}

/* Under MPI every rank runs this together: local work is followed by
 * iapo_dist_agree, so a failure on any rank (a bad data row, a missing
 * file) is the same error on all of them rather than a hang. */
iapo_status iapo_trainer_new(const iapo_train_opts *opts, iapo_trainer **out)
{
	*out = NULL;
	iapo_trainer *tr = iapo_calloc(1, sizeof *tr);
	if (!tr) return iapo_fail(IAPO_ERR_NOMEM, "trainer: out of memory");
	tr->buf_gen = -1;
	tr->perm_epoch = -1;
	tr->saved_step = -1;
	tr->best_ckpt_step = -1;
	tr->rank = iapo_dist_rank();
	tr->ranks = iapo_dist_size();
	long ckpt = -1;
	iapo_status st = setup(tr, opts, &ckpt);
	IAPO_CHECK(st, iapo_dist_agree(st));
	IAPO_CHECK(st, iapo_dist_bcast(&ckpt, sizeof ckpt, 0));
	st = load(tr, ckpt);
	IAPO_CHECK(st, iapo_dist_agree(st));
	IAPO_CHECK(st, train_dist_start(tr, ckpt));
	if (ckpt >= 0) IAPO_CHECK(st, train_resume_rollout(tr, ckpt));
	st = tr->rank == 0 ? train_open_outputs(tr) : IAPO_OK;
	IAPO_CHECK(st, iapo_dist_agree(st));
	*out = tr;
	return IAPO_OK;
fail:
	iapo_trainer_free(tr);
	return st;
}

void iapo_trainer_free(iapo_trainer *tr)
{
	if (!tr) return;
	if (tr->metrics) fclose(tr->metrics);
	cJSON_Delete(tr->log_history);
	iapo_fwd_free(tr->fwd);
	iapo_fwd_free(tr->ref_fwd);
	iapo_kv_free(tr->kv);
	iapo_algo_free(tr->algo);
	iapo_free_aligned(tr->grad);
	iapo_free_aligned(tr->m);
	iapo_free_aligned(tr->v);
	iapo_weights_free(&tr->w);
	iapo_weights_free(&tr->ref);
	iapo_tokenizer_free(tr->tok);
	iapo_dataset_free(&tr->train);
	iapo_dataset_free(&tr->eval);
	void *arrays[] = {tr->pool, tr->prompt_off, tr->prompt_len, tr->perm, tr->row, tr->plen, tr->clen,
			  tr->finish, tr->correct, tr->fmt_ok, tr->reward, tr->seq_adv, tr->ctok, tr->adv,
			  tr->old_logp, tr->ref_logp, (void *)tr->pptr, (void *)tr->gen_ptr, tr->gen_len, tr->gen_slot, tr->keys,
			  tr->res, tr->mtok, tr->mlen, tr->mtgt, tr->mlogp, tr->ment, tr->mold, tr->mref,
			  tr->madv, tr->mmask, tr->mdlogp, (void *)tr->kv_ptok, tr->kv_plen, tr->kv_clen,
			  tr->kv_ctok, tr->kv_ent, tr->kv_slot, (void *)tr->kv_entp, tr->unused};
	for (size_t i = 0; i < sizeof arrays / sizeof *arrays; i++) iapo_free(arrays[i]);
	iapo_train_opts_free(&tr->o);
	iapo_free(tr);
}

void iapo_trainer_set_advantage(iapo_trainer *tr, iapo_advantage_fn fn, void *ctx)
{
	tr->adv_fn = fn;
	tr->adv_ctx = ctx;
}

long iapo_trainer_steps_done(const iapo_trainer *tr) { return tr->step; }
long iapo_trainer_total_steps(const iapo_trainer *tr) { return tr->total; }
const char *iapo_trainer_last_checkpoint(const iapo_trainer *tr) { return tr->last_ckpt; }
const iapo_weights *iapo_trainer_weights(const iapo_trainer *tr) { return &tr->w; }
const iapo_train_opts *iapo_trainer_opts(const iapo_trainer *tr) { return &tr->o; }

/* ---- the step ------------------------------------------------------------- */

/* Dataset rows of rollout g: slice g % per_epoch of epoch g / per_epoch's
 * permutation (the incomplete last slice is dropped, as TRL's sampler does). */
static const size_t *rollout_rows(iapo_trainer *tr, long g)
{
	long e = g / tr->per_epoch;
	if (e != tr->perm_epoch) {
		size_t n = tr->train.n;
		for (size_t i = 0; i < n; i++) tr->perm[i] = i;
		iapo_rng r;
		iapo_rng_seed(&r, (uint64_t)tr->o.seed, KEY_DATA, (uint64_t)e, 0);
		for (size_t i = n - 1; i > 0; i--) {
			size_t j = (size_t)iapo_rng_below(&r, i + 1), t = tr->perm[i];
			tr->perm[i] = tr->perm[j];
			tr->perm[j] = t;
		}
		tr->perm_epoch = e;
	}
	return tr->perm + (size_t)(g % tr->per_epoch) * (size_t)tr->P;
}

/* The rollout buffer as the algorithm stages see it: n sequences in groups
 * of `group`. */
static iapo_algo_buffer buffer_view(iapo_trainer *tr, long g, int n, int group)
{
	iapo_algo_buffer b = {.n = n, .group = group, .Tc = tr->Tc, .gen = g, .row = tr->row, .plen = tr->plen,
			      .clen = tr->clen, .finish = tr->finish, .correct = tr->correct, .fmt_ok = tr->fmt_ok,
			      .ctok = tr->ctok, .pptr = tr->pptr, .reward = tr->reward};
	return b;
}

/* Notes what slots gen_slot[0..B-1] of the rollout cache hold after a
 * generate call (gen_ptr/gen_len and the results): decoding fed back every
 * sampled token but the last. */
static void record_slots(iapo_trainer *tr, int B)
{
	const int Tc = tr->Tc;
	for (int b = 0; b < B; b++) {
		const iapo_gen_result *res = &tr->res[b];
		const int s = tr->gen_slot[b];
		if (res->n_tokens > Tc || !res->entropy) continue;
		tr->kv_ptok[s] = tr->gen_ptr[b];
		tr->kv_plen[s] = tr->gen_len[b];
		tr->kv_clen[s] = res->n_tokens;
		memcpy(tr->kv_ctok + (size_t)s * Tc, res->tokens, sizeof(int) * (size_t)res->n_tokens);
		memcpy(tr->kv_ent + (size_t)s * Tc, res->entropy, sizeof(float) * (size_t)res->n_tokens);
	}
	tr->kv_adam_t = tr->adam_t;
}

/* The slot holding sequence i exactly (same prompt, same completion tokens,
 * the weights unchanged since it was sampled), or -1. Whatever the
 * algorithm's stages did to the buffer (resampling, GFPO's selection), a
 * match by content is safe: equal tokens at equal positions under equal
 * weights give equal K/V. */
static int find_slot(const iapo_trainer *tr, int i)
{
	if (!tr->kv_reuse || tr->kv_adam_t != tr->adam_t) return -1;
	const int L = tr->clen[i], Tc = tr->Tc;
	const int *ct = tr->ctok + (size_t)i * Tc;
	for (int b = 0; b < tr->R; b++) {
		if (tr->kv_clen[b] != L || tr->kv_plen[b] != tr->plen[i] || tr->kv_ptok[b] != tr->pptr[i]) continue;
		if (L > 0 && memcmp(tr->kv_ctok + (size_t)b * Tc, ct, sizeof(int) * (size_t)L)) continue;
		if (iapo_kv_len(tr->kv, b) != tr->plen[i] + L - 1) continue;
		return b;
	}
	return -1;
}

/* Samples and scores sequences seqs[0..n) of the buffer (NULL: 0..n-1) from
 * the streams of `attempt`; slot i samples as completion i % Gs of its row. */
static iapo_status sample_seqs(iapo_trainer *tr, long g, const int *seqs, int n, int attempt)
{
	const int Tc = tr->Tc, Gs = tr->Gs;
	iapo_gen_opts go;
	memset(&go, 0, sizeof go);
	go.max_new_tokens = Tc;
	go.sampler.temperature = (float)tr->o.temperature;
	go.sampler.top_k = (int)tr->o.top_k;
	go.sampler.top_p = (float)tr->o.top_p;
	go.seed = (uint64_t)tr->o.seed;
	go.keys = tr->keys;
	go.eos_ids = tr->eos;
	go.n_eos = tr->n_eos;
	go.tok = tr->tok;
	/* the policy entropies C_t of IAPO, from the sampling logits */
	if (tr->kv_reuse) go.entropy_temperature = tr->o.temperature > 0 ? (float)tr->o.temperature : 1.0f;
	/* Every algorithm samples in the same precision, so that their runs
	 * differ only by what they do with the samples: bf16 unless
	 * --rollout-fp32 (options.c; IAPO's --info-bf16, whose estimator reads
	 * the bf16 rollout's K/V, samples in bf16 too). generate's own default
	 * (bf16 unless entropies are asked for) would make IAPO sample in fp32
	 * and GRPO in bf16. */
	go.weights = tr->o.rollout_bf16 || (tr->kv_reuse && tr->o.info_bf16) ? IAPO_GEN_WEIGHTS_BF16
									   : IAPO_GEN_WEIGHTS_FP32;
	/* Decoding from weight packs (generate's default) unless --rollout-rows:
	 * the cache keeps them across steps, so only the first rollout touches
	 * their memory; each later one repacks from its new bf16 copy (0.1 s
	 * at qwen0.5b) and generate leaves them unused after the call, so the
	 * IAPO pass over this cache reads the rows as before. The weights do
	 * not change within a rollout: its first call takes the bf16 copy and
	 * packs, the later ones (--rollout-batch slices, resampling rounds)
	 * keep both, the same bits without converting and repacking again. */
	go.pack = tr->o.rollout_rows ? IAPO_GEN_PACK_OFF : IAPO_GEN_PACK_AUTO;
	go.keep_bf16 = go.keep_packs = tr->roll_keep;
	/* When every buffer sequence has a slot (no --rollout-batch), a
	 * resampling round samples sequence i into slot i and generate resets
	 * only those, so the other sequences' K/V stay for the IAPO pass. */
	const int mapped = seqs && tr->kv_reuse && tr->R == tr->n_cap;
	go.slots = mapped ? tr->gen_slot : NULL;
	double gen = 0, score = 0;
	for (int k0 = 0; k0 < n; k0 += tr->R) {
		int B = n - k0 < tr->R ? n - k0 : tr->R;
		for (int b = 0; b < B; b++) {
			int i = seqs ? seqs[k0 + b] : k0 + b;
			tr->gen_ptr[b] = tr->pptr[i];
			tr->gen_len[b] = tr->plen[i];
			tr->keys[b] = iapo_algo_sample_key(g, tr->row[i], i % Gs, attempt);
			tr->gen_slot[b] = mapped ? i : b;
		}
		double t0 = iapo_now();
		if (tr->kv_reuse) /* the slots generate resets */
			for (int b = 0; b < (mapped ? B : tr->R); b++) tr->kv_clen[mapped ? tr->gen_slot[b] : b] = -1;
		IAPO_TRY(iapo_generate(&tr->w, tr->gen_ptr, tr->gen_len, B, &go, tr->kv, tr->res, NULL));
		double t1 = iapo_now();
		go.keep_bf16 = go.keep_packs = tr->roll_keep = 1;
		if (tr->kv_reuse) record_slots(tr, B);
		for (int b = 0; b < B; b++) {
			int i = seqs ? seqs[k0 + b] : k0 + b;
			const iapo_gen_result *res = &tr->res[b];
			int nt = res->n_tokens < Tc ? res->n_tokens : Tc;
			memcpy(tr->ctok + (size_t)i * Tc, res->tokens, (size_t)nt * sizeof(int));
			tr->clen[i] = nt;
			tr->finish[i] = res->finish;
			tr->reward[i] = iapo_reward(res->text ? res->text : "", tr->train.ex[tr->row[i]].label, &tr->rw,
						    &tr->correct[i], &tr->fmt_ok[i]);
		}
		iapo_gen_results_free(tr->res, B);
		gen += t1 - t0;
		score += iapo_now() - t1;
	}
	tr->rollout_secs += gen;
	tr->scoring_secs += score;
	return IAPO_OK;
}

typedef struct {
	iapo_trainer *tr;
	long g;
} resample_ctx;

static iapo_status resample(void *ctx, const int *seqs, int n, int attempt)
{
	resample_ctx *c = ctx;
	return sample_seqs(c->tr, c->g, seqs, n, attempt);
}

/* Samples Gs completions for each of this rank's prompts of rollout g, then
 * the algorithm's stages (shaping, dynamic sampling, GFPO selection) leave
 * n_loc sequences in groups of G. */
static iapo_status rollout(iapo_trainer *tr, long g)
{
	const size_t *rows = rollout_rows(tr, g);
	const int Gs = tr->Gs, n = tr->n_cap, first_group = tr->i_first / tr->G;
	for (int i = 0; i < n; i++) {
		size_t r = rows[first_group + i / Gs];
		tr->row[i] = (int)r;
		tr->plen[i] = tr->prompt_len[r];
		tr->pptr[i] = tr->pool + tr->prompt_off[r];
	}
	tr->rollout_secs = tr->scoring_secs = 0;
	tr->roll_keep = 0; /* the weights changed since the last rollout */
	IAPO_TRY(sample_seqs(tr, g, NULL, n, 0));
	iapo_algo_buffer b = buffer_view(tr, g, n, Gs);
	resample_ctx rc = {tr, g};
	IAPO_TRY(iapo_algo_after_rollout(tr->algo, &b, resample, &rc));
	if (b.n != tr->n_loc || b.group != tr->G)
		return iapo_fail(IAPO_ERR_INTERNAL, "trainer: the algorithm left %d sequences in groups of %d, expected %d of %d",
				 b.n, b.group, tr->n_loc, tr->G);
	return IAPO_OK;
}

static iapo_status advantages(iapo_trainer *tr)
{
	const int N = tr->n_loc, Tc = tr->Tc;
	iapo_group_advantages(tr->reward, N, tr->G, tr->scale_rewards, tr->seq_adv);
	double longest = 0;
	for (int i = 0; i < N; i++) {
		for (int t = 0; t < Tc; t++) tr->adv[(size_t)i * Tc + t] = t < tr->clen[i] ? tr->seq_adv[i] : 0.0f;
		if (tr->clen[i] > longest) longest = tr->clen[i];
	}
	IAPO_TRY(iapo_dist_allreduce_double(&longest, 1, IAPO_DIST_MAX));
	if (!tr->adv_fn) return IAPO_OK;
	iapo_rollout_view v = {
		.n = N, .G = tr->G, .Tc = Tc, .comp_len_max = (int)longest, .prompt_tokens = tr->pptr, .prompt_len = tr->plen, .comp_len = tr->clen,
		.comp_tokens = tr->ctok, .rewards = tr->reward, .seq_adv = tr->seq_adv, .finish = tr->finish,
		.policy = &tr->w, .kv = tr->kv, .temperature = (float)tr->o.temperature, .step = tr->step,
	};
	if (tr->kv_reuse) {
		for (int i = 0; i < N; i++) {
			tr->kv_slot[i] = find_slot(tr, i);
			tr->kv_entp[i] = tr->kv_slot[i] >= 0 ? tr->kv_ent + (size_t)tr->kv_slot[i] * Tc : NULL;
		}
		v.kv_slot = tr->kv_slot;
		v.kv_entropy = tr->kv_entp;
		v.kv_scratch0 = tr->R;
		v.kv_nscratch = tr->kv_extra;
	}
	/* Sequences the loss will not read (groups dropped by dynamic sampling):
	 * the mask of this step; with --iterations > 1 only whole dropped groups
	 * count (S-GRPO draws another token subset at every pass). */
	double ks, kt;
	iapo_algo_buffer buf = buffer_view(tr, tr->step / tr->mu, N, tr->G);
	const float *mask = iapo_algo_loss_mask(tr->algo, &buf, tr->step, &ks, &kt);
	if (mask) {
		for (int i = 0; i < N; i++) {
			int any = 0;
			for (int t = 0; t < tr->clen[i] && !any; t++) any = mask[(size_t)i * Tc + t] != 0;
			const int g0 = i / tr->G * tr->G;
			tr->unused[i] = !any && (tr->mu == 1 || iapo_group_all_equal(tr->reward + g0, tr->G));
		}
		v.unused = tr->unused;
	}
	return tr->adv_fn(tr->adv_ctx, &v, tr->adv);
}

/* Fills the micro-batch arrays for sequences [i0, i0+B); returns T. */
static int build_micro(iapo_trainer *tr, int i0, int B)
{
	const int Tc = tr->Tc;
	int T = 1;
	for (int b = 0; b < B; b++) {
		int L = tr->plen[i0 + b] + tr->clen[i0 + b] - 1;
		if (L > T) T = L;
	}
	for (int b = 0; b < B; b++) {
		const int i = i0 + b, P = tr->plen[i], C = tr->clen[i];
		const int *ct = tr->ctok + (size_t)i * Tc;
		const size_t o = (size_t)b * T, c0 = (size_t)i * Tc;
		tr->mlen[b] = P + C - 1;
		for (int p = 0; p < T; p++) {
			int t = p - (P - 1); /* completion index predicted at p */
			int in = t >= 0 && t < C;
			tr->mtok[o + p] = p < P ? tr->pptr[i][p] : (p < P + C - 1 ? ct[p - P] : 0);
			tr->mtgt[o + p] = in ? ct[t] : -1;
			tr->mmask[o + p] = in ? (tr->lmask ? tr->lmask[c0 + t] : 1.0f) : 0.0f;
			tr->madv[o + p] = in ? tr->adv[c0 + t] : 0.0f;
			tr->mref[o + p] = in ? tr->ref_logp[c0 + t] : 0.0f;
			tr->mold[o + p] = in ? tr->old_logp[c0 + t] : 0.0f;
		}
	}
	return T;
}

/* Log-probs of every completion token under f (no gradient) into dst (N, Tc). */
static iapo_status logp_pass(iapo_trainer *tr, iapo_fwd *f, float *dst)
{
	const int Tc = tr->Tc;
	for (int i0 = 0; i0 < tr->n_loc; i0 += tr->mb) {
		int B = tr->n_loc - i0 < tr->mb ? tr->n_loc - i0 : tr->mb;
		int T = build_micro(tr, i0, B);
		IAPO_TRY(iapo_fwd_forward(f, tr->mtok, tr->mlen, tr->mtgt, B, T, tr->mlogp, NULL, NULL));
		for (int b = 0; b < B; b++) {
			int i = i0 + b, P = tr->plen[i];
			for (int t = 0; t < tr->clen[i]; t++) dst[(size_t)i * Tc + t] = tr->mlogp[(size_t)b * T + P - 1 + t];
		}
	}
	return IAPO_OK;
}

/* Means over every completion of the step: each rank sums its own, the
 * sums are added over ranks (exact for the counts, lengths and the rewards'
 * few distinct values), then divided by the step's totals. */
static iapo_status rollout_metrics(const iapo_trainer *tr, iapo_step_metrics *m)
{
	const int N = tr->n_loc, G = tr->G;
	double rs = 0, cs = 0, fs = 0, ls = 0, clipped = 0, stds = 0, zero = 0;
	int lmin = 1 << 30, lmax = 0;
	for (int i = 0; i < N; i++) {
		rs += tr->reward[i];
		cs += tr->correct[i];
		fs += tr->fmt_ok[i];
		ls += tr->clen[i];
		clipped += tr->finish[i] == IAPO_FINISH_LENGTH;
		if (tr->clen[i] < lmin) lmin = tr->clen[i];
		if (tr->clen[i] > lmax) lmax = tr->clen[i];
	}
	/* reward_std as TRL logs it: the mean over groups of each group's (unbiased) std */
	for (int g0 = 0; g0 < N; g0 += G) {
		double mu = 0, var = 0;
		for (int j = 0; j < G; j++) mu += tr->reward[g0 + j];
		mu /= G;
		for (int j = 0; j < G; j++) var += (tr->reward[g0 + j] - mu) * (tr->reward[g0 + j] - mu);
		double sd = G > 1 ? sqrt(var / (G - 1)) : 0;
		stds += sd;
		zero += sd == 0;
	}
	double sum[7] = {rs, cs, fs, ls, clipped, stds, zero}, ext[2] = {-(double)lmin, (double)lmax};
	IAPO_TRY(iapo_dist_allreduce_double(sum, 7, IAPO_DIST_SUM));
	IAPO_TRY(iapo_dist_allreduce_double(ext, 2, IAPO_DIST_MAX));
	const double n = tr->N, groups = tr->N / G;
	m->reward_mean = sum[0] / n;
	m->reward_std = sum[5] / groups;
	m->frac_reward_zero_std = sum[6] / groups;
	m->accuracy = sum[1] / n;
	m->format_rate = sum[2] / n;
	m->length_mean = sum[3] / n;
	m->length_min = (int)-ext[0];
	m->length_max = (int)ext[1];
	m->clipped_ratio = sum[4] / n;
	return IAPO_OK;
}

/* Forward + loss + backward over this rank's micro-batches, then the one
 * gradient allreduce of the step, clip and AdamW (the same on every rank:
 * they hold the same summed gradient). The loss normalisers are the whole
 * step's, so the summed gradient is the one-process gradient up to the
 * order of the sum. */
static iapo_status update(iapo_trainer *tr, long s, iapo_step_metrics *m)
{
	const int N = tr->n_loc;
	double ntok = 0;
	for (int i = 0; i < N; i++) ntok += tr->clen[i];
	IAPO_TRY(iapo_dist_allreduce_double(&ntok, 1, IAPO_DIST_SUM));
	/* The algorithm's loss mask (dropped groups, S-GRPO) shrinks the normalisers to what is kept. */
	double kept[2] = {tr->N, ntok};
	iapo_algo_buffer buf = buffer_view(tr, s / tr->mu, N, tr->G);
	tr->lmask = iapo_algo_loss_mask(tr->algo, &buf, s, &kept[0], &kept[1]);
	if (tr->lmask) IAPO_TRY(iapo_dist_allreduce_double(kept, 2, IAPO_DIST_SUM));
	iapo_loss_opts lo = {.type = tr->loss_type,
			     .eps_low = (float)tr->o.epsilon_low,
			     .eps_high = (float)tr->o.epsilon_high,
			     .beta = tr->ref.block ? (float)tr->o.beta : 0.0f,
			     .n_seqs = kept[0] >= 1 ? (long)kept[0] : 1,
			     .n_tokens = kept[1] >= 1 ? (long)kept[1] : 1,
			     .max_completion_len = tr->Tc};
	iapo_loss_stats ls;
	memset(&ls, 0, sizeof ls);
	memset(tr->grad, 0, tr->n_params * sizeof(float));
	double ent = 0;
	int bad = 0;
	iapo_status st = IAPO_OK;
	for (int i0 = 0; i0 < N && !bad; i0 += tr->mb) {
		int B = N - i0 < tr->mb ? N - i0 : tr->mb;
		int T = build_micro(tr, i0, B);
		st = iapo_fwd_forward(tr->fwd, tr->mtok, tr->mlen, tr->mtgt, B, T, tr->mlogp, tr->ment, NULL);
		if (st != IAPO_OK) break;
		st = iapo_policy_loss(&lo, B, T, tr->mlogp, tr->mu > 1 ? tr->mold : NULL, tr->ref.block ? tr->mref : NULL,
				      tr->madv, tr->mmask, tr->mdlogp, &ls);
		if (st == IAPO_ERR_NUMERIC) {
			st = IAPO_OK;
			bad = 1;
			break;
		}
		if (st != IAPO_OK) break;
		for (int k = 0; k < B * T; k++)
			if (tr->mtgt[k] >= 0) ent += tr->ment[k]; /* every completion token, in the loss or not */
		st = iapo_fwd_backward(tr->fwd, tr->mdlogp, NULL, tr->grad);
		if (st != IAPO_OK) break;
	}
	IAPO_TRY(iapo_dist_agree(st));
	/* A non-finite loss on any rank skips the update on all of them. */
	double red[7] = {ls.loss, ls.kl_sum, ls.tokens, ls.ratio_sum, ls.clipped_low, ls.clipped_high, ent}, b = bad;
	IAPO_TRY(iapo_dist_allreduce_double(red, 7, IAPO_DIST_SUM));
	IAPO_TRY(iapo_dist_allreduce_double(&b, 1, IAPO_DIST_MAX));
	ls.loss = red[0], ls.kl_sum = red[1], ls.tokens = red[2], ls.ratio_sum = red[3];
	ls.clipped_low = red[4], ls.clipped_high = red[5], ent = red[6], bad = b != 0;
	if (!bad) IAPO_TRY(iapo_dist_allreduce_float(tr->grad, tr->n_params));
	double norm = NAN;
	if (!bad) {
		norm = tr->o.max_grad_norm > 0 ? iapo_grad_clip(tr->grad, tr->n_params, tr->o.max_grad_norm)
					       : iapo_grad_norm(tr->grad, tr->n_params);
		bad = !isfinite(norm) || !isfinite(ls.loss);
	}
	float lr = iapo_lr_at(tr->sched, (float)tr->o.learning_rate, s, tr->o.warmup_steps, tr->total);
	if (!bad) {
		iapo_adamw_opts ao = {.lr = lr,
				      .beta1 = (float)tr->o.adam_beta1,
				      .beta2 = (float)tr->o.adam_beta2,
				      .eps = (float)tr->o.adam_eps,
				      .weight_decay = (float)tr->o.weight_decay};
		tr->adam_t++;
		iapo_adamw_step(tr->w.block, tr->grad, tr->m, tr->v, tr->n_params, &ao, tr->adam_t);
		tr->bad_streak = 0;
	} else {
		tr->bad_streak++;
	}
	double tk = ls.tokens > 0 ? ls.tokens : 1;
	m->skipped = bad;
	m->loss = ls.loss;
	m->grad_norm = norm;
	m->lr = lr;
	m->tokens = ntok;
	m->has_kl = tr->ref.block != NULL;
	m->kl = m->has_kl ? ls.kl_sum / tk : 0;
	m->entropy = ntok > 0 ? ent / ntok : 0;
	m->ratio_mean = ls.tokens > 0 ? ls.ratio_sum / tk : 1;
	m->clip_low = ls.clipped_low / tk;
	m->clip_high = ls.clipped_high / tk;
	return IAPO_OK;
}

static iapo_status evaluate(iapo_trainer *tr, iapo_step_metrics *m, cJSON **eval_json)
{
	iapo_eval_opts eo;
	iapo_eval_opts_default(&eo);
	eo.n_samples = tr->o.eval_generations > 0 ? (int)tr->o.eval_generations : tr->G;
	eo.ks = NULL;
	eo.n_ks = 0;
	eo.max_new_tokens = tr->Tc;
	eo.temperature = (float)tr->o.temperature;
	eo.top_p = (float)tr->o.top_p;
	eo.top_k = (int)tr->o.top_k;
	eo.seed = (uint64_t)tr->o.seed;
	eo.batch = tr->R;
	eo.system = tr->o.system;
	eo.one_shot = !tr->o.no_one_shot;
	eo.format = tr->fmt;
	eo.eos_ids = tr->eos;
	eo.n_eos = tr->n_eos;
	iapo_eval_result r;
	double t0 = iapo_now();
	IAPO_TRY(iapo_evaluate(&tr->w, tr->tok, &tr->eval, &eo, &r));
	m->seconds_eval = iapo_now() - t0;
	m->has_eval = 1;
	m->eval_accuracy = r.accuracy;
	m->eval_format_rate = r.format_rate;
	m->eval_length_mean = r.n_ks > 0 ? r.length_at_k[r.n_ks - 1] : 0;
	m->eval_pass_at_1 = r.n_ks > 0 && r.ks[0] == 1 ? r.pass_at_k[0] : m->eval_accuracy;
	m->eval_pass_at_n = r.n_ks > 0 ? r.pass_at_k[r.n_ks - 1] : 0;
	m->eval_truncated_rate = r.truncated_rate;
	m->eval_problems = r.n_problems;
	m->eval_samples = r.n_samples;
	*eval_json = iapo_eval_result_json(&r, 0);
	iapo_eval_result_free(&r);
	if (!*eval_json) return iapo_fail(IAPO_ERR_NOMEM, "evaluation: out of memory");
	if (!tr->has_best || m->eval_accuracy > tr->best_metric) {
		tr->has_best = 1;
		tr->best_metric = m->eval_accuracy;
		tr->best_step = tr->step;
	}
	return IAPO_OK;
}

iapo_status iapo_trainer_step(iapo_trainer *tr, iapo_step_metrics *out)
{
	if (tr->step >= tr->total)
		return iapo_fail(IAPO_ERR_ARG, "%s: the run is complete (%ld of %ld steps)", tr->o.out, tr->step, tr->total);
	iapo_step_metrics m;
	memset(&m, 0, sizeof m);
	const double t0 = iapo_now();
	const long s = tr->step, g = s / tr->mu;
	m.iteration = (int)(s % tr->mu);
	const int fresh = tr->buf_gen != g; /* this step samples its rollout */
	if (fresh) {
		if (m.iteration != 0)
			return iapo_fail(IAPO_ERR_INTERNAL, "trainer: step %ld reuses rollout %ld, which is not in memory", s, g);
		IAPO_TRY(iapo_dist_agree(rollout(tr, g)));
		iapo_status st = advantages(tr);
		double t1 = iapo_now();
		if (st == IAPO_OK && tr->ref.block) st = logp_pass(tr, tr->ref_fwd, tr->ref_logp);
		if (st == IAPO_OK && tr->mu > 1) st = logp_pass(tr, tr->fwd, tr->old_logp);
		IAPO_TRY(iapo_dist_agree(st));
		tr->reference_secs = iapo_now() - t1;
		tr->buf_gen = g;
		m.seconds_rollout = tr->rollout_secs;
		m.seconds_scoring = tr->scoring_secs;
		m.seconds_reference = tr->reference_secs;
	}
	IAPO_TRY(rollout_metrics(tr, &m));
	double t2 = iapo_now();
	IAPO_TRY(update(tr, s, &m));
	tr->lmask = NULL;
	m.seconds_update = iapo_now() - t2;
	IAPO_TRY(iapo_algo_step_metrics(tr->algo, fresh, &tr->algo_m));
	tr->step++;
	if (tr->o.check_weights_every > 0 && tr->step % tr->o.check_weights_every == 0)
		IAPO_TRY(train_dist_check_weights(tr));
	m.step = tr->step;
	m.epoch = (double)tr->step / (double)(tr->per_epoch * tr->mu);
	cJSON *eval = NULL;
	int last = tr->step == tr->total;
	if (tr->have_eval && tr->o.eval_steps > 0 && (tr->step % tr->o.eval_steps == 0 || last)) {
		iapo_status st = iapo_dist_agree(evaluate(tr, &m, &eval));
		if (st != IAPO_OK) {
			cJSON_Delete(eval);
			return st;
		}
	}
	m.seconds_total = iapo_now() - t0;
	/* Times are the slowest rank's: the step waits for it. */
	double secs[6] = {m.seconds_rollout, m.seconds_scoring, m.seconds_reference,
			  m.seconds_update,  m.seconds_eval,    m.seconds_total};
	iapo_status st = iapo_dist_allreduce_double(secs, 6, IAPO_DIST_MAX);
	m.seconds_rollout = secs[0], m.seconds_scoring = secs[1], m.seconds_reference = secs[2];
	m.seconds_update = secs[3], m.seconds_eval = secs[4], m.seconds_total = secs[5];
	if (st == IAPO_OK && tr->rank == 0) st = train_log_metrics(tr, &m, eval);
	cJSON_Delete(eval);
	IAPO_TRY(iapo_dist_agree(st));
	if (out) *out = m;
	if (m.skipped && tr->bad_streak >= tr->o.max_bad_steps)
		return iapo_fail(IAPO_ERR_NUMERIC,
				 "step %ld: the loss or gradient was NaN/Inf in %d steps in a row (--max-bad-steps %ld); "
				 "try a lower --learning-rate",
				 tr->step, tr->bad_streak, tr->o.max_bad_steps);
	if (last || (tr->o.save_steps > 0 && tr->step % tr->o.save_steps == 0)) IAPO_TRY(train_save(tr));
	return IAPO_OK;
}

iapo_status iapo_trainer_save(iapo_trainer *tr) { return train_save(tr); }

iapo_status iapo_trainer_run(iapo_trainer *tr, const volatile sig_atomic_t *stop, iapo_step_fn on_step, void *ctx)
{
	while (tr->step < tr->total) {
		iapo_step_metrics m;
		IAPO_TRY(iapo_trainer_step(tr, &m));
		if (on_step) on_step(ctx, tr, &m);
		/* Ranks may see a signal at different steps: stop when any did. */
		double any = stop && *stop;
		IAPO_TRY(iapo_dist_allreduce_double(&any, 1, IAPO_DIST_MAX));
		if (any != 0) {
			if (tr->saved_step != tr->step) IAPO_TRY(train_save(tr));
			break;
		}
	}
	return IAPO_OK;
}
