/*
 * run_dir.c — what `iapo train` and `iapo sft` do alike with their run
 * directory (see run_dir.h).
 */
#include "rl/run_dir.h"

#include <string.h>

#include "core/mem.h"
#include "core/status.h"
#include "io/fs.h"
#include "io/json.h"
#include "rl/checkpoint.h"

#define PATHN 4096

static int holds_run(const char *dir)
{
	char p[PATHN];
	if (iapo_fs_join(p, sizeof p, dir, IAPO_METRICS_FILE) == IAPO_OK && iapo_fs_exists(p)) return 1;
	long k = -1;
	if (iapo_checkpoint_latest(dir, NULL, &k) != IAPO_OK) return 0;
	return k >= 0;
}

iapo_status iapo_run_dir_prepare(const char *out, int resume, int overwrite, const char *marker, long *ckpt_step)
{
	*ckpt_step = -1;
	if (resume) {
		if (!iapo_fs_is_dir(out))
			return iapo_fail(IAPO_ERR_IO, "%s: --resume: expected an existing run directory, found %s", out,
					 iapo_fs_exists(out) ? "a file" : "nothing");
		IAPO_TRY(iapo_checkpoint_clean(out));
		IAPO_TRY(iapo_checkpoint_latest(out, marker, ckpt_step));
		if (*ckpt_step < 0)
			return iapo_fail(IAPO_ERR_IO, "%s: --resume: expected a checkpoint-N/ directory holding %s, found none",
					 out, marker);
		return IAPO_OK;
	}
	if (iapo_fs_exists(out) && !iapo_fs_is_dir(out))
		return iapo_fail(IAPO_ERR_IO, "%s: --out: expected a directory, found a file", out);
	if (iapo_fs_is_dir(out) && holds_run(out)) {
		if (!overwrite)
			return iapo_fail(IAPO_ERR_ARG,
					 "%s: holds an earlier run (metrics.jsonl or checkpoint-N/): add --resume to continue it "
					 "or --overwrite to start again",
					 out);
		char p[PATHN];
		IAPO_TRY(iapo_fs_join(p, sizeof p, out, IAPO_METRICS_FILE));
		IAPO_TRY(iapo_fs_remove_all(p));
		long k;
		while (iapo_checkpoint_latest(out, NULL, &k) == IAPO_OK && k >= 0) {
			IAPO_TRY(iapo_checkpoint_dir(out, k, p, sizeof p));
			IAPO_TRY(iapo_fs_remove_all(p));
		}
	}
	IAPO_TRY(iapo_fs_mkdir_p(out));
	return iapo_checkpoint_clean(out);
}

iapo_status iapo_run_dir_write_json(const char *dir, const char *name, const cJSON *root, int atomic)
{
	char path[PATHN];
	IAPO_TRY(iapo_fs_join(path, sizeof path, dir, name));
	char *text = cJSON_Print(root);
	if (!text) return iapo_fail(IAPO_ERR_NOMEM, "%s: out of memory", path);
	size_t n = strlen(text);
	text[n] = '\n'; /* replace the NUL: files end with a newline */
	iapo_status st = atomic ? iapo_fs_write_file_atomic(path, text, n + 1) : iapo_fs_write_file(path, text, n + 1);
	iapo_free(text);
	return st;
}

iapo_status iapo_run_dir_open_outputs(const char *out, const cJSON *cfg, FILE **metrics)
{
	IAPO_TRY(iapo_run_dir_write_json(out, "config.json", cfg, 1));
	char p[PATHN];
	IAPO_TRY(iapo_fs_join(p, sizeof p, out, IAPO_METRICS_FILE));
	*metrics = fopen(p, "a");
	if (!*metrics) return iapo_fail(IAPO_ERR_IO, "%s: cannot open for appending", p);
	return IAPO_OK;
}

iapo_status iapo_run_dir_log(FILE *metrics, const char *out, cJSON *history, cJSON *o)
{
	char *line = o ? cJSON_PrintUnformatted(o) : NULL;
	if (!line || !cJSON_AddItemToArray(history, o)) {
		iapo_free(line);
		cJSON_Delete(o);
		return iapo_fail(IAPO_ERR_NOMEM, "metrics: out of memory");
	}
	int bad = fputs(line, metrics) < 0 || fputc('\n', metrics) == EOF || fflush(metrics) != 0;
	iapo_free(line);
	if (bad) return iapo_fail(IAPO_ERR_IO, "%s/" IAPO_METRICS_FILE ": write failed", out);
	return IAPO_OK;
}

cJSON *iapo_run_dir_rng_json(long seed, const char *data_order, int *oom)
{
	*oom = 0;
	cJSON *o = cJSON_CreateObject();
	if (!o) return NULL;
	iapo_json_add(o, "generator", cJSON_CreateString("xoshiro256** seeded by splitmix64 of a key"), oom);
	iapo_json_add(o, "seed", cJSON_CreateNumber((double)seed), oom);
	iapo_json_add(o, "data_order", cJSON_CreateString(data_order), oom);
	return o;
}

iapo_status iapo_run_dir_save_checkpoint(const char *out, long step, const iapo_run_checkpoint *c, cJSON *rng,
					 cJSON *state)
{
	char tmp[PATHN], p[PATHN];
	iapo_status st = iapo_checkpoint_begin(out, step, tmp, sizeof tmp);
	if (st != IAPO_OK) {
		cJSON_Delete(rng);
		cJSON_Delete(state);
		return st;
	}
	IAPO_CHECK(st, iapo_weights_save(c->w, tmp, c->tokdir, "F32", 0));
	IAPO_CHECK(st, iapo_fs_join(p, sizeof p, tmp, IAPO_OPTIMIZER_FILE));
	IAPO_CHECK(st, iapo_optimizer_save(p, c->m, c->v, c->n, c->t));
	if (c->extra_name) {
		IAPO_CHECK(st, iapo_fs_join(p, sizeof p, tmp, c->extra_name));
		IAPO_CHECK(st, iapo_fs_write_file(p, c->extra, c->extra_len));
	}
	if (!rng || !state) {
		st = iapo_fail(IAPO_ERR_NOMEM, "%s: out of memory", tmp);
		goto fail;
	}
	IAPO_CHECK(st, iapo_run_dir_write_json(tmp, IAPO_RNG_FILE, rng, 0));
	IAPO_CHECK(st, iapo_run_dir_write_json(tmp, IAPO_STATE_FILE, state, 0)); /* last: marks it complete */
	cJSON_Delete(rng);
	cJSON_Delete(state);
	return iapo_checkpoint_commit(tmp, out, step);
fail:
	cJSON_Delete(rng);
	cJSON_Delete(state);
	iapo_checkpoint_abort(tmp);
	return st;
}

iapo_status iapo_run_dir_state_long(const cJSON *o, const char *key, const char *file, long *out)
{
	return iapo_json_req_int(o, key, file, -1, (long)1 << 53, out);
}

iapo_status iapo_run_dir_load_state(const char *out, long step, char *path, size_t n, cJSON **state)
{
	char dir[PATHN];
	*state = NULL;
	IAPO_TRY(iapo_checkpoint_dir(out, step, dir, sizeof dir));
	IAPO_TRY(iapo_fs_join(path, n, dir, IAPO_STATE_FILE));
	IAPO_TRY(iapo_json_load(path, (size_t)1 << 30, state));
	long v;
	IAPO_TRY(iapo_run_dir_state_long(*state, "global_step", path, &v));
	if (v != step)
		return iapo_fail(IAPO_ERR_FORMAT, "%s: global_step: expected %ld (the directory's name), found %ld", path, step,
				 v);
	return IAPO_OK;
}

iapo_status iapo_run_dir_truncate_metrics(const char *out, long step)
{
	char p[PATHN];
	IAPO_TRY(iapo_fs_join(p, sizeof p, out, IAPO_METRICS_FILE));
	if (!iapo_fs_exists(p)) return iapo_fs_write_file_atomic(p, "", 0);
	char *data;
	size_t len;
	IAPO_TRY(iapo_fs_read_file(p, (size_t)4 << 30, &data, &len));
	size_t keep = 0, pos = 0;
	long line = 0;
	iapo_status st = IAPO_OK;
	while (pos < len) {
		char *nl = memchr(data + pos, '\n', len - pos);
		if (!nl) break; /* torn line */
		line++;
		size_t n = (size_t)(nl - (data + pos));
		cJSON *o = cJSON_ParseWithLength(data + pos, n);
		const cJSON *s = o ? cJSON_GetObjectItemCaseSensitive(o, "step") : NULL;
		if (!cJSON_IsNumber(s)) {
			st = iapo_fail(IAPO_ERR_FORMAT, "%s: line %ld: expected a JSON object with a \"step\", found %.40s", p,
				       line, data + pos);
			cJSON_Delete(o);
			break;
		}
		double k = s->valuedouble;
		cJSON_Delete(o);
		if (k > (double)step) break;
		pos += n + 1;
		keep = pos;
	}
	if (st == IAPO_OK && keep != len) st = iapo_fs_write_file_atomic(p, data, keep);
	iapo_free(data);
	return st;
}
