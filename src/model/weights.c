/*
 * weights.c — loading, random initialisation and saving of a model's fp32
 * parameter block in Hugging Face layout. The tensor names and shapes come
 * from model.h's table (iapo_param_hf_name) and iapo_param_shape below; the
 * file format from io/safetensors.h; the directory write discipline from
 * io/fs.h.
 */
#include "model/weights.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/mem.h"
#include "core/rng.h"
#include "core/status.h"
#include "io/fs.h"
#include "io/json.h"
#include "io/safetensors.h"

#define PATH_CAP 4096
#define NAME_CAP 256
#define INDEX_CAP ((size_t)64 << 20)

int iapo_param_shape(const iapo_config *c, int which, int64_t shape[2])
{
	int64_t C = c->C, V = c->V, F = c->F, HD = c->HD, Q = (int64_t)c->NH * c->HD, KV = (int64_t)c->NKV * c->HD;
	if (iapo_param_layer_size(c, which) == 0) return 0;
	switch (which) {
	case IAPO_P_EMBED:
	case IAPO_P_LMHEAD: shape[0] = V, shape[1] = C; return 2;
	case IAPO_P_LN1:
	case IAPO_P_LN2:
	case IAPO_P_NORM: shape[0] = C; return 1;
	case IAPO_P_WQ: shape[0] = Q, shape[1] = C; return 2;
	case IAPO_P_BQ: shape[0] = Q; return 1;
	case IAPO_P_WK:
	case IAPO_P_WV: shape[0] = KV, shape[1] = C; return 2;
	case IAPO_P_BK:
	case IAPO_P_BV: shape[0] = KV; return 1;
	case IAPO_P_QNORM:
	case IAPO_P_KNORM: shape[0] = HD; return 1;
	case IAPO_P_WO: shape[0] = C, shape[1] = Q; return 2;
	case IAPO_P_WGATE:
	case IAPO_P_WUP: shape[0] = F, shape[1] = C; return 2;
	case IAPO_P_WDOWN: shape[0] = C, shape[1] = F; return 2;
	}
	return 0;
}

void iapo_weights_free(iapo_weights *w)
{
	if (!w) return;
	iapo_free_aligned(w->block);
	memset(w, 0, sizeof *w);
}

static iapo_status alloc_block(iapo_weights *w, const iapo_config *cfg)
{
	memset(w, 0, sizeof *w);
	w->cfg = *cfg;
	size_t n = iapo_param_count(cfg);
	IAPO_TRY(iapo_alloc_or_fail((void **)&w->block, n * sizeof(float), "model parameters"));
	iapo_params_point(&w->cfg, w->block, &w->p);
	return IAPO_OK;
}

/* Visits every tensor the config implies, in HF module order (embed, layer 0
 * ... L-1, norm, lm_head), giving its name, shape and destination (NULL when
 * p is NULL: a pass that only checks). */
typedef iapo_status (*tensor_fn)(void *ctx, const char *name, int ndim, const int64_t *shape, float *data);

static float *dest(const iapo_params *p, int which, size_t offset) { return p ? p->t[which] + offset : NULL; }

static iapo_status each_tensor(const iapo_config *c, const iapo_params *p, tensor_fn fn, void *ctx)
{
	char name[NAME_CAP];
	int64_t shape[2];
	static const int global_first[] = {IAPO_P_EMBED};
	static const int global_last[] = {IAPO_P_NORM, IAPO_P_LMHEAD};
	for (size_t i = 0; i < sizeof global_first / sizeof *global_first; i++) {
		int which = global_first[i];
		int nd = iapo_param_shape(c, which, shape);
		if (!nd) continue;
		iapo_param_hf_name(c, which, 0, name, sizeof name);
		IAPO_TRY(fn(ctx, name, nd, shape, dest(p, which, 0)));
	}
	for (int l = 0; l < c->L; l++)
		for (int which = 0; which < IAPO_NUM_PARAMS; which++) {
			if (!iapo_param_is_layered(which)) continue;
			int nd = iapo_param_shape(c, which, shape);
			if (!nd) continue;
			iapo_param_hf_name(c, which, l, name, sizeof name);
			IAPO_TRY(fn(ctx, name, nd, shape, dest(p, which, (size_t)l * iapo_param_layer_size(c, which))));
		}
	for (size_t i = 0; i < sizeof global_last / sizeof *global_last; i++) {
		int which = global_last[i];
		int nd = iapo_param_shape(c, which, shape);
		if (!nd) continue;
		iapo_param_hf_name(c, which, 0, name, sizeof name);
		IAPO_TRY(fn(ctx, name, nd, shape, dest(p, which, 0)));
	}
	return IAPO_OK;
}

/* ---------------------------------------------------------------- load */

typedef struct {
	const char *dir;
	int dirfd;                 /* every file is opened relative to this */
	char index_path[PATH_CAP]; /* "" when single-file */
	cJSON *weight_map;         /* name -> shard file, or NULL */
	char **shard_names;
	iapo_safetensors *shards;
	int n_shards;
} loader;

static void loader_free(loader *ld)
{
	for (int i = 0; i < ld->n_shards; i++) {
		iapo_safetensors_close(&ld->shards[i]);
		iapo_free(ld->shard_names[i]);
	}
	iapo_free(ld->shards);
	iapo_free(ld->shard_names);
	cJSON_Delete(ld->weight_map);
	ld->weight_map = NULL;
	ld->n_shards = 0;
}

static iapo_status open_shard(loader *ld, const char *file)
{
	char path[PATH_CAP];
	IAPO_TRY(iapo_fs_join(path, sizeof path, ld->dir, file));
	char *nm = iapo_strdup(file);
	if (!nm) return iapo_fail(IAPO_ERR_NOMEM, "%s: out of memory", path);
	iapo_status s = iapo_safetensors_open_at(ld->dirfd, file, path, &ld->shards[ld->n_shards]);
	if (s != IAPO_OK) {
		iapo_free(nm);
		return s;
	}
	ld->shard_names[ld->n_shards++] = nm;
	return IAPO_OK;
}

static iapo_status open_index(loader *ld)
{
	cJSON *root;
	IAPO_TRY(iapo_json_load_at(ld->dirfd, "model.safetensors.index.json", ld->index_path, INDEX_CAP, &root));
	iapo_status s = IAPO_OK;
	const char *ip = ld->index_path;
	cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
	if (!cJSON_IsObject(wm)) {
		s = iapo_fail(IAPO_ERR_FORMAT, "%s: weight_map: expected an object, found %s", ip, iapo_json_type_name(wm));
		goto fail;
	}
	int n = cJSON_GetArraySize(wm);
	ld->shards = iapo_calloc((size_t)(n ? n : 1), sizeof *ld->shards);
	ld->shard_names = iapo_calloc((size_t)(n ? n : 1), sizeof *ld->shard_names);
	if (!ld->shards || !ld->shard_names) {
		s = iapo_fail(IAPO_ERR_NOMEM, "%s: out of memory", ip);
		goto fail;
	}
	for (const cJSON *e = wm->child; e; e = e->next) {
		if (!cJSON_IsString(e)) {
			s = iapo_fail(IAPO_ERR_FORMAT, "%s: weight_map: %.200s: expected a file name, found %s", ip, e->string,
				      iapo_json_type_name(e));
			goto fail;
		}
		const char *f = e->valuestring;
		/* Shards live beside the index; a path could point anywhere. */
		if (!*f || strchr(f, '/') || !strcmp(f, ".") || !strcmp(f, "..")) {
			s = iapo_fail(IAPO_ERR_FORMAT, "%s: weight_map: %.200s: expected a file name in the same directory, found \"%.200s\"",
				      ip, e->string, f);
			goto fail;
		}
		int known = 0;
		for (int i = 0; i < ld->n_shards && !known; i++) known = !strcmp(ld->shard_names[i], f);
		if (known) continue;
		s = open_shard(ld, f);
		if (s != IAPO_OK) {
			iapo_fail_prefix(s, "%s: weight_map: %.200s", ip, e->string);
			goto fail;
		}
	}
	cJSON_DetachItemViaPointer(root, wm);
	ld->weight_map = wm;
fail:
	cJSON_Delete(root);
	return s;
}

/* Finds `name`: the shard holding it and the tensor; an error naming the
 * index or the file when it is not there. */
static iapo_status locate(loader *ld, const char *name, const iapo_safetensors **st, const iapo_st_tensor **t)
{
	*st = &ld->shards[0];
	if (ld->weight_map) {
		const cJSON *e = cJSON_GetObjectItemCaseSensitive(ld->weight_map, name);
		if (!e)
			return iapo_fail(IAPO_ERR_FORMAT, "%s: weight_map: expected tensor '%s', found it missing", ld->index_path,
					 name);
		for (int i = 0; i < ld->n_shards; i++)
			if (!strcmp(ld->shard_names[i], e->valuestring)) *st = &ld->shards[i];
	}
	*t = iapo_safetensors_find(*st, name);
	if (!*t)
		return iapo_fail(IAPO_ERR_FORMAT, "%s: tensor '%s': expected it present, found no such tensor", (*st)->path,
				 name);
	return IAPO_OK;
}

static iapo_status load_one(void *ctx, const char *name, int ndim, const int64_t *shape, float *data)
{
	loader *ld = ctx;
	const iapo_safetensors *st;
	const iapo_st_tensor *t;
	IAPO_TRY(locate(ld, name, &st, &t));
	int same = t->ndim == ndim;
	for (int i = 0; same && i < ndim; i++) same = t->shape[i] == shape[i];
	if (!same) {
		char want[96], got[160];
		iapo_shape_str(shape, ndim, want, sizeof want);
		iapo_shape_str(t->shape, t->ndim, got, sizeof got);
		return iapo_fail(IAPO_ERR_FORMAT, "%s: tensor '%s': expected shape %s (from config.json), found %s", st->path,
				 name, want, got);
	}
	return data ? iapo_safetensors_read_f32(st, t, data) : IAPO_OK;
}

/* One attempt: everything read through the directory descriptor dirfd. */
static iapo_status load_at(int dirfd, const char *dir, iapo_weights *w)
{
	iapo_config cfg;
	loader ld = {.dir = dir, .dirfd = dirfd};
	iapo_status s;
	IAPO_TRY(iapo_config_load_at(dirfd, dir, &cfg));
	IAPO_TRY(iapo_fs_join(ld.index_path, sizeof ld.index_path, dir, "model.safetensors.index.json"));
	if (iapo_fs_exists_at(dirfd, "model.safetensors.index.json")) {
		IAPO_CHECK(s, open_index(&ld));
	} else {
		ld.index_path[0] = '\0';
		if (!iapo_fs_exists_at(dirfd, "model.safetensors")) {
			s = iapo_fail(IAPO_ERR_IO, "%s: expected model.safetensors or model.safetensors.index.json, found neither",
				      dir);
			goto fail;
		}
		ld.shards = iapo_calloc(1, sizeof *ld.shards);
		ld.shard_names = iapo_calloc(1, sizeof *ld.shard_names);
		if (!ld.shards || !ld.shard_names) {
			s = iapo_fail(IAPO_ERR_NOMEM, "%s: out of memory", dir);
			goto fail;
		}
		IAPO_CHECK(s, open_shard(&ld, "model.safetensors"));
	}
	/* Every tensor present with its shape before the block is allocated: a
	 * config.json claiming a huge model beside small files is refused as a
	 * mismatch instead of costing (or failing) a huge allocation. */
	IAPO_CHECK(s, each_tensor(&cfg, NULL, load_one, &ld));
	IAPO_CHECK(s, alloc_block(w, &cfg));
	IAPO_CHECK(s, each_tensor(&w->cfg, &w->p, load_one, &ld));
	loader_free(&ld);
	return IAPO_OK;
fail:
	loader_free(&ld);
	iapo_weights_free(w);
	return s;
}

iapo_status iapo_weights_load(const char *dir, iapo_weights *w)
{
	memset(w, 0, sizeof *w);
	/* A save replaces the directory by a rename; reading all files through
	 * one descriptor sees one version, never a mix. If that version is
	 * deleted under us (a save finished meanwhile), start again on the new
	 * one. */
	for (int attempt = 0;; attempt++) {
		int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0) return iapo_fail(IAPO_ERR_IO, "%s: cannot open model directory: %s", dir, strerror(errno));
		struct stat before, now;
		iapo_status s = fstat(fd, &before) == 0 ? load_at(fd, dir, w) : IAPO_ERR_IO;
		close(fd);
		if (s == IAPO_OK || s == IAPO_ERR_NOMEM || attempt == 8) return s;
		int replaced = stat(dir, &now) != 0 || now.st_ino != before.st_ino || now.st_dev != before.st_dev;
		if (!replaced) return s;
	}
}

/* ---------------------------------------------------------------- init */

static int is_norm(int which)
{
	return which == IAPO_P_LN1 || which == IAPO_P_LN2 || which == IAPO_P_QNORM || which == IAPO_P_KNORM ||
	       which == IAPO_P_NORM;
}

static int is_bias(int which) { return which == IAPO_P_BQ || which == IAPO_P_BK || which == IAPO_P_BV; }

/* n draws of normal(0, std). Box-Muller using both of its outputs (the
 * radius from 53 random bits, so the tails reach 8.5 sigma; the angle in
 * float): a 0.5B model is initialised in seconds rather than a minute. */
static void fill_normal(iapo_rng *g, float *out, size_t n, float std)
{
	size_t j = 0;
	for (; j + 1 < n; j += 2) {
		double u1 = 1.0 - iapo_rng_double(g); /* (0, 1] */
		float u2 = iapo_rng_float(g), sn, cs;
		float r = std * (float)sqrt(-2.0 * log(u1));
		sincosf(6.28318530717958648f * u2, &sn, &cs);
		out[j] = r * cs;
		out[j + 1] = r * sn;
	}
	if (j < n) out[j] = std * iapo_rng_normal(g);
}

iapo_status iapo_weights_init_random(iapo_weights *w, const iapo_config *cfg, uint64_t seed, float std)
{
	memset(w, 0, sizeof *w);
	IAPO_TRY(iapo_config_validate(cfg, "config"));
	if (!(std >= 0) || std > 1e3f)
		return iapo_fail(IAPO_ERR_ARG, "init: std: expected a number in [0, 1000], found %g", (double)std);
	IAPO_TRY(alloc_block(w, cfg));
	const iapo_config *c = &w->cfg;
	size_t sizes[IAPO_NUM_PARAMS];
	iapo_param_sizes(c, sizes);
	for (int which = 0; which < IAPO_NUM_PARAMS; which++) {
		float *t = w->p.t[which];
		if (!sizes[which]) continue;
		if (is_norm(which)) {
			for (size_t i = 0; i < sizes[which]; i++) t[i] = 1.0f;
			continue;
		}
		if (is_bias(which)) continue; /* the block is zero-filled */
		int64_t shape[2];
		iapo_param_shape(c, which, shape);
		size_t cols = (size_t)shape[1], rows = sizes[which] / cols;
		/* One stream per (tensor, row): (seed, which, row) addresses it, so
		 * threads may take rows in any order. Layers are consecutive rows. */
#pragma omp parallel for schedule(static)
		for (size_t r = 0; r < rows; r++) {
			iapo_rng g;
			iapo_rng_seed(&g, seed, 0x77656967687473ull /* "weights" */, (uint64_t)which, (uint64_t)r);
			fill_normal(&g, t + r * cols, cols, std);
		}
	}
	if (c->pad_id >= 0 && c->pad_id < c->V)
		memset(w->p.t[IAPO_P_EMBED] + (size_t)c->pad_id * c->C, 0, sizeof(float) * (size_t)c->C);
	return IAPO_OK;
}

/* ---------------------------------------------------------------- save */

typedef struct {
	iapo_st_entry *e;
	int n, cap;
	iapo_dtype dtype;
	char (*names)[NAME_CAP];
} entry_list;

static iapo_status collect(void *ctx, const char *name, int ndim, const int64_t *shape, float *data)
{
	entry_list *el = ctx;
	if (el->n == el->cap) return iapo_fail(IAPO_ERR_INTERNAL, "save: more tensors than counted");
	snprintf(el->names[el->n], NAME_CAP, "%s", name);
	iapo_st_entry *e = &el->e[el->n];
	e->name = el->names[el->n];
	e->dtype = el->dtype;
	e->ndim = ndim;
	for (int i = 0; i < ndim; i++) e->shape[i] = shape[i];
	e->data = data;
	el->n++;
	return IAPO_OK;
}

static iapo_status count_one(void *ctx, const char *name, int ndim, const int64_t *shape, float *data)
{
	(*(int *)ctx)++;
	return IAPO_OK;
}

static const char *torch_dtype_name(iapo_dtype d)
{
	return d == IAPO_DT_F32 ? "float32" : d == IAPO_DT_BF16 ? "bfloat16" : "float16";
}

/* Writes the safetensors file(s) into tmp: one file, or shards of at most
 * max_bytes (a larger single tensor gets a shard of its own) plus the index. */
static iapo_status write_tensors(const entry_list *el, const char *tmp, size_t max_bytes)
{
	char path[PATH_CAP], file[64];
	size_t total = 0;
	for (int i = 0; i < el->n; i++) total += iapo_st_entry_bytes(&el->e[i]);
	if (max_bytes == 0 || total <= max_bytes) {
		IAPO_TRY(iapo_fs_join(path, sizeof path, tmp, "model.safetensors"));
		return iapo_safetensors_write(path, el->e, el->n);
	}
	/* Greedy split: shard k holds entries [first[k], first[k+1]). */
	int *first = iapo_malloc(sizeof(int) * (size_t)(el->n + 1));
	if (!first) return iapo_fail(IAPO_ERR_NOMEM, "%s: out of memory", tmp);
	int ns = 0;
	size_t cur = 0;
	for (int i = 0; i < el->n; i++) {
		size_t b = iapo_st_entry_bytes(&el->e[i]);
		if (i == 0 || (cur > 0 && cur + b > max_bytes)) {
			first[ns++] = i;
			cur = 0;
		}
		cur += b;
	}
	first[ns] = el->n;
	iapo_status s = IAPO_OK;
	iapo_json_init();
	cJSON *root = cJSON_CreateObject(), *meta = NULL, *wm = NULL;
	int ok = root != NULL;
	if (ok) ok = (meta = cJSON_AddObjectToObject(root, "metadata")) != NULL;
	if (ok) ok = cJSON_AddNumberToObject(meta, "total_size", (double)total) != NULL;
	if (ok) ok = (wm = cJSON_AddObjectToObject(root, "weight_map")) != NULL;
	for (int k = 0; k < ns && s == IAPO_OK; k++) {
		snprintf(file, sizeof file, "model-%05d-of-%05d.safetensors", k + 1, ns);
		s = iapo_fs_join(path, sizeof path, tmp, file);
		if (s == IAPO_OK) s = iapo_safetensors_write(path, el->e + first[k], first[k + 1] - first[k]);
		for (int i = first[k]; ok && i < first[k + 1]; i++)
			ok = cJSON_AddStringToObject(wm, el->e[i].name, file) != NULL;
	}
	iapo_free(first);
	char *text = NULL;
	if (s == IAPO_OK && ok) text = cJSON_Print(root);
	cJSON_Delete(root);
	if (s != IAPO_OK) return s;
	if (!text) return iapo_fail(IAPO_ERR_NOMEM, "%s: out of memory building the shard index", tmp);
	s = iapo_fs_join(path, sizeof path, tmp, "model.safetensors.index.json");
	if (s == IAPO_OK) s = iapo_fs_write_file(path, text, strlen(text));
	cJSON_free(text);
	return s;
}

static iapo_status copy_tokenizer(const char *src_dir, const char *tmp)
{
	static const char *const files[] = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
					    "vocab.json", "merges.txt"};
	char src[PATH_CAP], dst[PATH_CAP];
	if (!src_dir) return IAPO_OK;
	for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
		IAPO_TRY(iapo_fs_join(src, sizeof src, src_dir, files[i]));
		if (!iapo_fs_exists(src)) continue;
		IAPO_TRY(iapo_fs_join(dst, sizeof dst, tmp, files[i]));
		IAPO_TRY(iapo_fs_copy_file(src, dst));
	}
	return IAPO_OK;
}

iapo_status iapo_weights_save(const iapo_weights *w, const char *out_dir, const char *tokenizer_src_dir,
			      const char *dtype, size_t max_shard_bytes)
{
	const iapo_config *c = &w->cfg;
	char tmp[PATH_CAP], path[PATH_CAP];
	entry_list el = {0};
	iapo_status s;
	int dt = dtype ? iapo_dtype_parse(dtype) : IAPO_DT_F32;
	if (dt != IAPO_DT_F32 && dt != IAPO_DT_BF16 && dt != IAPO_DT_F16)
		return iapo_fail(IAPO_ERR_ARG, "%s: dtype: expected F32, BF16 or F16, found '%s'", out_dir, dtype);
	if (!w->block) return iapo_fail(IAPO_ERR_ARG, "%s: no weights to save", out_dir);
	/* Only what HF's classes can express is saved, or HF would build a
	 * different model from our files. */
	if (c->qkv_bias != (c->arch == IAPO_ARCH_QWEN2) || c->qk_norm != (c->arch == IAPO_ARCH_QWEN3))
		return iapo_fail(IAPO_ERR_UNSUPPORTED,
				 "%s: model_type %s with qkv_bias=%d, qk_norm=%d has no Hugging Face equivalent (qwen2 has "
				 "q/k/v biases, qwen3 q/k norms, llama neither)",
				 out_dir, c->model_type, c->qkv_bias, c->qk_norm);
	IAPO_TRY(iapo_config_validate(c, out_dir));
	IAPO_TRY(iapo_fs_make_temp_dir(out_dir, tmp, sizeof tmp));

	int n = 0;
	IAPO_CHECK(s, each_tensor(c, &w->p, count_one, &n));
	el.cap = n;
	el.dtype = (iapo_dtype)dt;
	el.e = iapo_calloc((size_t)n, sizeof *el.e);
	el.names = iapo_calloc((size_t)n, sizeof *el.names);
	if (!el.e || !el.names) {
		s = iapo_fail(IAPO_ERR_NOMEM, "%s: out of memory", out_dir);
		goto fail;
	}
	IAPO_CHECK(s, each_tensor(c, &w->p, collect, &el));
	IAPO_CHECK(s, write_tensors(&el, tmp, max_shard_bytes));
	IAPO_CHECK(s, iapo_fs_join(path, sizeof path, tmp, "config.json"));
	IAPO_CHECK(s, iapo_config_write(c, path, torch_dtype_name((iapo_dtype)dt)));
	IAPO_CHECK(s, iapo_fs_join(path, sizeof path, tmp, "generation_config.json"));
	IAPO_CHECK(s, iapo_generation_config_write(c, path));
	IAPO_CHECK(s, copy_tokenizer(tokenizer_src_dir, tmp));
	IAPO_CHECK(s, iapo_fs_sync_dir(tmp));
	IAPO_CHECK(s, iapo_fs_replace_dir(tmp, out_dir));
	iapo_free(el.e);
	iapo_free(el.names);
	return IAPO_OK;
fail:
	iapo_free(el.e);
	iapo_free(el.names);
	iapo_fs_remove_all(tmp);
	return s;
}
