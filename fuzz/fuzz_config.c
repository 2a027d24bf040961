/*
 * fuzz_config.c — a model directory's config.json and generation_config.json
 * (iapo_config_load_at). Input: config.json, optionally followed by a
 * "\n--\n" line and generation_config.json.
 * Oracle besides the sanitizers: a config that loads is valid
 * (iapo_config_validate) and survives iapo_config_write +
 * iapo_generation_config_write + load unchanged, field by field, so a saved
 * model means what the loaded one meant.
 * Not here: tensors (fuzz_safetensors.c, fuzz_weights.c).
 */
#include "fuzz.h"
#include "model/weights.h"

static void load_dir(const char *dir, iapo_config *cfg, iapo_status *s)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) abort();
	fz_begin();
	*s = fz_status(iapo_config_load_at(fd, dir, cfg), "config_load_at");
	close(fd);
}

static void same(const iapo_config *a, const iapo_config *b)
{
#define SAME(f) FZ_ASSERT(a->f == b->f, "round trip changed " #f)
	SAME(arch); SAME(V); SAME(C); SAME(L); SAME(NH); SAME(NKV); SAME(HD); SAME(F); SAME(max_pos);
	SAME(rope_theta); SAME(rms_eps); SAME(tie_embeddings); SAME(qkv_bias); SAME(qk_norm); SAME(rope_kind);
	SAME(bos_id); SAME(n_eos); SAME(pad_id);
	if (a->rope_kind == IAPO_ROPE_LLAMA3) {
		SAME(rope_factor); SAME(rope_low_freq_factor); SAME(rope_high_freq_factor); SAME(rope_orig_max_pos);
	}
	for (int i = 0; i < a->n_eos; i++) SAME(eos_ids[i]);
#undef SAME
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fz_part part[2];
	int np = fz_split(data, size, part, 2);
	char dir[1024], rt[1024], p[1200];
	fz_subdir("cfg", dir, sizeof dir);
	fz_write("cfg/config.json", part[0].p, part[0].n);
	if (np > 1) fz_write("cfg/generation_config.json", part[1].p, part[1].n);
	else fz_unlink("cfg/generation_config.json");

	iapo_config cfg, back;
	iapo_status s;
	load_dir(dir, &cfg, &s);
	if (s != IAPO_OK) return 0;
	fz_begin();
	FZ_ASSERT(iapo_config_validate(&cfg, "loaded") == IAPO_OK, "a loaded config is invalid: %s", iapo_errmsg());

	fz_subdir("rt", rt, sizeof rt);
	snprintf(p, sizeof p, "%s/config.json", rt);
	fz_begin();
	FZ_ASSERT(iapo_config_write(&cfg, p, "bfloat16") == IAPO_OK, "config_write: %s", iapo_errmsg());
	snprintf(p, sizeof p, "%s/generation_config.json", rt);
	FZ_ASSERT(iapo_generation_config_write(&cfg, p) == IAPO_OK, "generation_config_write: %s", iapo_errmsg());
	load_dir(rt, &back, &s);
	FZ_ASSERT(s == IAPO_OK, "a written config does not load back: %s", iapo_errmsg());
	same(&cfg, &back);
	return 0;
}
