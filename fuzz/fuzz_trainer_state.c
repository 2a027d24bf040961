/*
 * fuzz_trainer_state.c — resuming a run from a checkpoint whose
 * trainer_state.json (and optionally rng_state.json, then metrics.jsonl,
 * separated by "\n--\n" lines) come from the input, through the public path:
 * iapo_trainer_new with --resume on a run directory. At start-up a tiny
 * random Qwen2 with the byte-level tokenizer and a three-row dataset is made,
 * a trainer run for two steps and checkpoint-2 saved; its own trainer_state.json,
 * rng_state.json and metrics.jsonl are the defaults for missing parts (and
 * FUZZ_PRINT_STATE=1 prints them, for the seed corpus).
 * Oracle besides the sanitizers: with every file as saved, the resume works.
 * Not here: optimizer.bin and the model files of the checkpoint (binary with
 * a checksum; safetensors has its own target).
 */
#include "fuzz.h"
#include "io/fs.h"
#include "model/weights.h"
#include "rl/options.h"
#include "rl/trainer.h"
#include "tokenizer/tokenizer.h"

/* Steps trained before the checkpoint, so that log_history and
 * metrics.jsonl hold lines. */
#define STEPS 2

static iapo_train_opts opts;
static char run[1024];
static char *orig[3];
static size_t orig_len[3];
static const char *const names[3] = {"trainer_state.json", "rng_state.json", "metrics.jsonl"};

static void die(const char *what)
{
	fprintf(stderr, "fuzz_trainer_state: %s: %s\n", what, iapo_errmsg());
	abort();
}

static void ckpt_path(int i, char *buf, size_t n)
{
	if (i == 2) snprintf(buf, n, "%s/%s", run, names[i]);
	else snprintf(buf, n, "%s/checkpoint-%d/%s", run, STEPS, names[i]);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	char model[1024], data[1024], p[1200];
	fz_path("model", model, sizeof model);
	fz_path("train.jsonl", data, sizeof data);
	fz_path("run", run, sizeof run);
	if (iapo_tokenizer_write_bytelevel(model, NULL, 0) != IAPO_OK) die("tokenizer");
	fz_write("train.jsonl", "{\"prompt\": \"d=1\", \"answer\": \"1\"}\n{\"prompt\": \"d=2\", \"answer\": \"2\"}\n"
				"{\"prompt\": \"d=0\", \"answer\": \"0\"}\n", 99);
	iapo_config c;
	memset(&c, 0, sizeof c);
	c.arch = IAPO_ARCH_QWEN2;
	strcpy(c.model_type, "qwen2");
	c.V = 264, c.C = 16, c.L = 1, c.NH = 2, c.NKV = 1, c.HD = 8, c.F = 32;
	c.max_pos = 64, c.rope_theta = 10000.0f, c.rms_eps = 1e-6f;
	c.tie_embeddings = 1, c.qkv_bias = 1;
	c.bos_id = c.pad_id = -1;
	c.eos_ids[0] = 258, c.n_eos = 1;
	strcpy(c.torch_dtype, "float32");
	iapo_weights w;
	if (iapo_weights_init_random(&w, &c, 1, 0.1f) != IAPO_OK) die("init");
	if (iapo_weights_save(&w, model, model, "F32", 0) != IAPO_OK) die("save model");
	iapo_weights_free(&w);
	static const char *const set[][2] = {
		{"model", NULL}, {"data", NULL}, {"out", NULL}, {"no-chat-template", NULL}, {"prompts-per-step", "1"},
		{"num-generations", "2"}, {"micro-batch", "2"}, {"max-completion-tokens", "3"}, {"threads", "1"},
		{"beta", "0"}, {"overwrite", NULL},
	};
	if (iapo_train_opts_default(&opts) != IAPO_OK) die("options");
	for (size_t i = 0; i < sizeof set / sizeof *set; i++) {
		const char *v = i == 0 ? model : i == 1 ? data : i == 2 ? run : set[i][1];
		if (iapo_train_opts_set(&opts, set[i][0], v) != IAPO_OK) die(set[i][0]);
	}
	iapo_trainer *tr;
	if (iapo_trainer_new(&opts, &tr) != IAPO_OK) die("trainer_new");
	for (int i = 0; i < STEPS; i++)
		if (iapo_trainer_step(tr, NULL) != IAPO_OK) die("trainer_step");
	if (iapo_trainer_save(tr) != IAPO_OK) die("trainer_save");
	iapo_trainer_free(tr);
	if (iapo_train_opts_set(&opts, "overwrite", "false") != IAPO_OK || iapo_train_opts_set(&opts, "resume", NULL) != IAPO_OK)
		die("resume option");
	for (int i = 0; i < 3; i++) {
		ckpt_path(i, p, sizeof p);
		if (iapo_fs_read_file(p, 1 << 20, &orig[i], &orig_len[i]) != IAPO_OK) die(p);
		if (getenv("FUZZ_PRINT_STATE")) printf("%s%s", i ? "\n--\n" : "", orig[i]);
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fz_part part[3];
	int np = fz_split(data, size, part, 3);
	char p[1200];
	for (int i = 0; i < 3; i++) {
		ckpt_path(i, p, sizeof p);
		FILE *f = fopen(p, "wb");
		const void *d = i < np ? (const void *)part[i].p : orig[i];
		size_t n = i < np ? part[i].n : orig_len[i];
		if (!f || (n && fwrite(d, 1, n, f) != n) || fclose(f) != 0) abort();
	}
	iapo_trainer *tr = NULL;
	fz_begin();
	iapo_status s = fz_status(iapo_trainer_new(&opts, &tr), "trainer_new --resume");
	int as_saved = 1;
	for (int i = 0; i < np; i++) as_saved &= part[i].n == orig_len[i] && !memcmp(part[i].p, orig[i], orig_len[i]);
	FZ_ASSERT(s == IAPO_OK || !as_saved, "resume from the files as saved failed: %s", iapo_errmsg());
	iapo_trainer_free(tr);
	return 0;
}
