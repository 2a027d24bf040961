/*
 * safetensors.c — reader (mmap + strict header validation) and writer of the
 * safetensors format; see safetensors.h for the rules checked. Every message
 * names the file, and the tensor or field where there is one.
 */
#include "io/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/mem.h"
#include "core/status.h"
#include "core/text.h"
#include "io/fs.h"
#include "io/half.h"
#include "io/json.h"

static const struct {
	const char *name;
	size_t size;
} dtypes[IAPO_DT_COUNT] = {
	[IAPO_DT_F64] = {"F64", 8},	[IAPO_DT_F32] = {"F32", 4},	[IAPO_DT_F16] = {"F16", 2},
	[IAPO_DT_BF16] = {"BF16", 2},	[IAPO_DT_I64] = {"I64", 8},	[IAPO_DT_I32] = {"I32", 4},
	[IAPO_DT_I16] = {"I16", 2},	[IAPO_DT_I8] = {"I8", 1},	[IAPO_DT_U64] = {"U64", 8},
	[IAPO_DT_U32] = {"U32", 4},	[IAPO_DT_U16] = {"U16", 2},	[IAPO_DT_U8] = {"U8", 1},
	[IAPO_DT_BOOL] = {"BOOL", 1},	[IAPO_DT_F8_E4M3] = {"F8_E4M3", 1}, [IAPO_DT_F8_E5M2] = {"F8_E5M2", 1},
};

const char *iapo_dtype_name(iapo_dtype d) { return (unsigned)d < IAPO_DT_COUNT ? dtypes[d].name : "?"; }

size_t iapo_dtype_size(iapo_dtype d) { return (unsigned)d < IAPO_DT_COUNT ? dtypes[d].size : 0; }

int iapo_dtype_parse(const char *s)
{
	for (int i = 0; i < IAPO_DT_COUNT; i++)
		if (!strcmp(s, dtypes[i].name)) return i;
	return -1;
}

void iapo_shape_str(const int64_t *shape, int ndim, char *buf, size_t n)
{
	size_t k = 0;
	if (n == 0) return;
	buf[0] = '\0';
	k += (size_t)snprintf(buf + k, n - k, "(");
	for (int i = 0; i < ndim && k < n; i++)
		k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
	if (k < n) snprintf(buf + k, n - k, ")");
}

/* ---------------------------------------------------------------- reader */

static int cmp_name(const void *a, const void *b)
{
	return strcmp(((const iapo_st_tensor *)a)->name, ((const iapo_st_tensor *)b)->name);
}

static int cmp_offset(const void *a, const void *b)
{
	const iapo_st_tensor *x = *(const iapo_st_tensor *const *)a, *y = *(const iapo_st_tensor *const *)b;
	if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
	if (x->end != y->end) return x->end < y->end ? -1 : 1;
	return 0;
}

void iapo_safetensors_close(iapo_safetensors *st)
{
	if (!st) return;
	for (int i = 0; i < st->n; i++) iapo_free(st->t[i].name);
	iapo_free(st->t);
	if (st->map) munmap(st->map, st->map_len);
	iapo_free(st->path);
	memset(st, 0, sizeof *st);
}

/* Fills t from the header entry v (named v->string). */
static iapo_status parse_entry(const char *path, const cJSON *v, size_t data_len, iapo_st_tensor *t)
{
	const char *name = v->string;
	if (!cJSON_IsObject(v))
		return iapo_fail(IAPO_ERR_FORMAT, "%s: tensor '%s': expected an object, found %s", path, name,
				 iapo_json_type_name(v));
	const cJSON *dt = cJSON_GetObjectItemCaseSensitive(v, "dtype");
	const cJSON *shape = cJSON_GetObjectItemCaseSensitive(v, "shape");
	const cJSON *off = cJSON_GetObjectItemCaseSensitive(v, "data_offsets");
	if (!cJSON_IsString(dt))
		return iapo_fail(IAPO_ERR_FORMAT, "%s: tensor '%s': dtype: expected a string, found %s", path, name,
				 iapo_json_type_name(dt));
	int d = iapo_dtype_parse(dt->valuestring);
	if (d < 0)
		return iapo_fail(IAPO_ERR_FORMAT,
				 "%s: tensor '%s': dtype: expected one of F64, F32, F16, BF16, I64, I32, I16, I8, U64, "
				 "U32, U16, U8, BOOL, F8_E4M3, F8_E5M2, found '%.40s'",
				 path, name, dt->valuestring);
	t->dtype = (iapo_dtype)d;
	if (!cJSON_IsArray(shape))
		return iapo_fail(IAPO_ERR_FORMAT, "%s: tensor '%s': shape: expected an array, found %s", path, name,
				 iapo_json_type_name(shape));
	int nd = cJSON_GetArraySize(shape);
	if (nd > IAPO_ST_MAX_DIMS)
		return iapo_fail(IAPO_ERR_FORMAT, "%s: tensor '%s': shape: expected at most %d dimensions, found %d", path,
				 name, IAPO_ST_MAX_DIMS, nd);
	t->ndim = nd;
	size_t nelem = 1;
	int i = 0;
	for (const cJSON *e = shape->child; e; e = e->next, i++) {
		long dim;
		char what[IAPO_ST_MAX_NAME + 32];
		snprintf(what, sizeof what, "tensor '%s': shape[%d]", name, i);
		IAPO_TRY(iapo_json_as_int(e, path, what, 0, (long)1 << 53, &dim));
		t->shape[i] = dim;
		if (__builtin_mul_overflow(nelem, (size_t)dim, &nelem))
			return iapo_fail(IAPO_ERR_FORMAT, "%s: tensor '%s': shape: element count overflows", path, name);
	}
	t->nelem = nelem;
	if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2)
		return iapo_fail(IAPO_ERR_FORMAT, "%s: tensor '%s': data_offsets: expected an array [begin, end], found %s",
				 path, name, cJSON_IsArray(off) ? "an array of another length" : iapo_json_type_name(off));
	long b, e;
	char what[IAPO_ST_MAX_NAME + 32];
	snprintf(what, sizeof what, "tensor '%s': data_offsets", name);
	IAPO_TRY(iapo_json_as_int(off->child, path, what, 0, (long)1 << 53, &b));
	IAPO_TRY(iapo_json_as_int(off->child->next, path, what, 0, (long)1 << 53, &e));
	if ((size_t)e > data_len || b > e)
		return iapo_fail(IAPO_ERR_FORMAT,
				 "%s: tensor '%s': data_offsets: expected 0 <= begin <= end <= %zu (the data size), found "
				 "[%ld, %ld]",
				 path, name, data_len, b, e);
	size_t bytes;
	if (__builtin_mul_overflow(nelem, dtypes[d].size, &bytes) || bytes != (size_t)(e - b)) {
		char sh[256];
		iapo_shape_str(t->shape, nd, sh, sizeof sh);
		return iapo_fail(IAPO_ERR_FORMAT,
				 "%s: tensor '%s': data_offsets: expected %zu bytes for %s %s, found %ld bytes [%ld, %ld]", path,
				 name, bytes, dtypes[d].name, sh, e - b, b, e);
	}
	t->begin = (size_t)b;
	t->end = (size_t)e;
	return IAPO_OK;
}

/* Checks the tensors tile [0, data_len) exactly. */
static iapo_status check_tiling(const char *path, iapo_safetensors *st)
{
	iapo_st_tensor **order = NULL;
	if (st->n == 0) {
		if (st->data_len != 0)
			return iapo_fail(IAPO_ERR_FORMAT, "%s: data area: expected 0 bytes for no tensors, found %zu", path,
					 st->data_len);
		return IAPO_OK;
	}
	order = iapo_malloc(sizeof *order * (size_t)st->n);
	if (!order) return iapo_fail(IAPO_ERR_NOMEM, "%s: out of memory", path);
	for (int i = 0; i < st->n; i++) order[i] = &st->t[i];
	qsort(order, (size_t)st->n, sizeof *order, cmp_offset);
	size_t pos = 0;
	iapo_status s = IAPO_OK;
	for (int i = 0; i < st->n; i++) {
		const iapo_st_tensor *t = order[i];
		if (t->begin != pos) {
			if (t->begin < pos)
				s = iapo_fail(IAPO_ERR_FORMAT,
					      "%s: tensor '%s': data_offsets: [%zu, %zu) overlaps tensor '%s' ending at %zu",
					      path, t->name, t->begin, t->end, order[i - 1]->name, pos);
			else
				s = iapo_fail(IAPO_ERR_FORMAT,
					      "%s: tensor '%s': data_offsets: expected to begin at %zu (right after the "
					      "previous tensor), found %zu (a gap)",
					      path, t->name, pos, t->begin);
			break;
		}
		pos = t->end;
	}
	if (s == IAPO_OK && pos != st->data_len)
		s = iapo_fail(IAPO_ERR_FORMAT, "%s: data area: expected tensors to cover all %zu bytes, found them ending at %zu",
			      path, st->data_len, pos);
	iapo_free(order);
	return s;
}

static iapo_status parse_header(const char *path, const char *hdr, size_t n, iapo_safetensors *st)
{
	cJSON *root = NULL;
	iapo_status s;
	if (n == 0 || hdr[0] != '{')
		return iapo_fail(IAPO_ERR_FORMAT, "%s: header: expected a JSON object starting with '{', found %s", path,
				 n == 0 ? "an empty header" : "another character");
	if (memchr(hdr, '\0', n))
		return iapo_fail(IAPO_ERR_FORMAT, "%s: header: expected JSON text, found a NUL byte", path);
	IAPO_TRY(iapo_json_parse(hdr, n, path, &root));
	if (!cJSON_IsObject(root)) {
		cJSON_Delete(root);
		return iapo_fail(IAPO_ERR_FORMAT, "%s: header: expected a JSON object", path);
	}
	int count = 0;
	for (const cJSON *v = root->child; v; v = v->next)
		if (strcmp(v->string, "__metadata__") != 0) count++;
	if (count > IAPO_ST_MAX_TENSORS) {
		cJSON_Delete(root);
		return iapo_fail(IAPO_ERR_FORMAT, "%s: header: expected at most %d tensors, found %d", path,
				 IAPO_ST_MAX_TENSORS, count);
	}
	st->t = iapo_calloc((size_t)(count ? count : 1), sizeof *st->t);
	if (!st->t) {
		cJSON_Delete(root);
		return iapo_fail(IAPO_ERR_NOMEM, "%s: out of memory for %d tensors", path, count);
	}
	int seen_meta = 0;
	for (const cJSON *v = root->child; v; v = v->next) {
		if (!strcmp(v->string, "__metadata__")) {
			if (seen_meta++) {
				s = iapo_fail(IAPO_ERR_FORMAT, "%s: __metadata__: appears twice", path);
				goto fail;
			}
			if (!cJSON_IsObject(v)) {
				s = iapo_fail(IAPO_ERR_FORMAT, "%s: __metadata__: expected an object of strings, found %s",
					      path, iapo_json_type_name(v));
				goto fail;
			}
			for (const cJSON *m = v->child; m; m = m->next)
				if (!cJSON_IsString(m)) {
					s = iapo_fail(IAPO_ERR_FORMAT, "%s: __metadata__: %.64s: expected a string, found %s",
						      path, m->string, iapo_json_type_name(m));
					goto fail;
				}
			continue;
		}
		size_t len = strlen(v->string);
		if (len == 0 || len > IAPO_ST_MAX_NAME) {
			s = iapo_fail(IAPO_ERR_FORMAT, "%s: header: expected tensor names of 1 to %d bytes, found %zu bytes",
				      path, IAPO_ST_MAX_NAME, len);
			goto fail;
		}
		iapo_st_tensor *t = &st->t[st->n];
		s = parse_entry(path, v, st->data_len, t);
		if (s != IAPO_OK) goto fail;
		t->name = iapo_strdup(v->string);
		if (!t->name) {
			s = iapo_fail(IAPO_ERR_NOMEM, "%s: out of memory", path);
			goto fail;
		}
		st->n++;
	}
	cJSON_Delete(root);
	root = NULL;
	qsort(st->t, (size_t)st->n, sizeof *st->t, cmp_name);
	for (int i = 1; i < st->n; i++)
		if (!strcmp(st->t[i].name, st->t[i - 1].name))
			return iapo_fail(IAPO_ERR_FORMAT, "%s: tensor '%s': appears twice in the header", path, st->t[i].name);
	return check_tiling(path, st);
fail:
	cJSON_Delete(root);
	return s;
}

iapo_status iapo_safetensors_open(const char *path, iapo_safetensors *st)
{
	return iapo_safetensors_open_at(AT_FDCWD, path, path, st);
}

/* Validates the size bytes at p (st->map, if any, already set) and fills st;
 * on failure st is closed. */
static iapo_status open_bytes(const char *path, const unsigned char *p, size_t size, iapo_safetensors *st)
{
	iapo_status s;
	st->path = iapo_strdup(path);
	if (!st->path) {
		s = iapo_fail(IAPO_ERR_NOMEM, "%s: out of memory", path);
		goto fail;
	}
	if (size < 8) {
		s = iapo_fail(IAPO_ERR_FORMAT, "%s: truncated: expected at least 8 bytes (the header length), found %zu",
			      path, size);
		goto fail;
	}
	uint64_t n = 0;
	for (int i = 7; i >= 0; i--) n = n << 8 | p[i];
	if (n > size - 8) {
		s = iapo_fail(IAPO_ERR_FORMAT,
			      "%s: header length: expected at most %zu (the bytes after it), found %llu (file truncated or "
			      "not safetensors)",
			      path, size - 8, (unsigned long long)n);
		goto fail;
	}
	if (n > IAPO_ST_MAX_HEADER) {
		s = iapo_fail(IAPO_ERR_FORMAT, "%s: header length: expected at most %zu, found %llu", path,
			      IAPO_ST_MAX_HEADER, (unsigned long long)n);
		goto fail;
	}
	st->data = p + 8 + n;
	st->data_len = size - 8 - (size_t)n;
	s = parse_header(path, (const char *)p + 8, (size_t)n, st);
	if (s != IAPO_OK) goto fail;
	return IAPO_OK;
fail:
	iapo_safetensors_close(st);
	return s;
}

iapo_status iapo_safetensors_open_at(int dirfd, const char *name, const char *path, iapo_safetensors *st)
{
	memset(st, 0, sizeof *st);
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0) return iapo_fail(IAPO_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
	struct stat sb;
	if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
		close(fd);
		return iapo_fail(IAPO_ERR_IO, "%s: expected a regular file", path);
	}
	size_t size = (size_t)sb.st_size;
	if (size < 8) {
		close(fd);
		return iapo_fail(IAPO_ERR_FORMAT, "%s: truncated: expected at least 8 bytes (the header length), found %zu",
				 path, size);
	}
	void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (map == MAP_FAILED) return iapo_fail(IAPO_ERR_IO, "%s: cannot mmap: %s", path, strerror(errno));
	st->map = map;
	st->map_len = size;
	IAPO_TRY(open_bytes(path, map, size, st));
	/* Weights are read once, front to back. */
	madvise(map, size, MADV_SEQUENTIAL);
	return IAPO_OK;
}

iapo_status iapo_safetensors_open_mem(const void *data, size_t len, const char *shown, iapo_safetensors *st)
{
	memset(st, 0, sizeof *st);
	return open_bytes(shown, data, len, st);
}

const iapo_st_tensor *iapo_safetensors_find(const iapo_safetensors *st, const char *name)
{
	iapo_st_tensor key = {.name = (char *)name};
	if (st->n == 0) return NULL;
	return bsearch(&key, st->t, (size_t)st->n, sizeof *st->t, cmp_name);
}

iapo_status iapo_safetensors_read_f32(const iapo_safetensors *st, const iapo_st_tensor *t, float *out)
{
	const unsigned char *src = st->data + t->begin;
	size_t n = t->nelem;
	switch (t->dtype) {
	case IAPO_DT_F32: {
		/* Parallel copy so that the page faults of the mapping are taken
		 * by all threads. */
		size_t bytes = n * 4, chunk = (size_t)1 << 20;
		long nchunks = (long)((bytes + chunk - 1) / chunk);
#pragma omp parallel for schedule(static) if (nchunks > 4)
		for (long c = 0; c < nchunks; c++) {
			size_t b = (size_t)c * chunk, len = bytes - b < chunk ? bytes - b : chunk;
			memcpy((unsigned char *)out + b, src + b, len);
		}
		return IAPO_OK;
	}
	case IAPO_DT_BF16: iapo_bf16_to_f32_array(src, out, n); return IAPO_OK;
	case IAPO_DT_F16: iapo_f16_to_f32_array(src, out, n); return IAPO_OK;
	case IAPO_DT_F64:
		for (size_t i = 0; i < n; i++) {
			double d;
			memcpy(&d, src + 8 * i, 8);
			out[i] = (float)d;
		}
		return IAPO_OK;
	default:
		return iapo_fail(IAPO_ERR_UNSUPPORTED, "%s: tensor '%s': dtype: expected F32, BF16, F16 or F64, found %s",
				 st->path, t->name, iapo_dtype_name(t->dtype));
	}
}

/* ---------------------------------------------------------------- writer */

size_t iapo_st_entry_bytes(const iapo_st_entry *e)
{
	size_t n = 1;
	for (int i = 0; i < e->ndim; i++) n *= (size_t)e->shape[i];
	return n * iapo_dtype_size(e->dtype);
}

iapo_status iapo_safetensors_write(const char *path, const iapo_st_entry *e, int n)
{
	iapo_text h = {0};
	iapo_status s = IAPO_OK;
	unsigned char *conv = NULL;
	int fd = -1;
	char tmp[4096] = "";
	static const char meta[] = "{\"__metadata__\":{\"format\":\"pt\"}";
	iapo_text_put(&h, meta, sizeof meta - 1);
	size_t off = 0;
	for (int i = 0; i < n; i++) {
		if (e[i].dtype != IAPO_DT_F32 && e[i].dtype != IAPO_DT_BF16 && e[i].dtype != IAPO_DT_F16) {
			s = iapo_fail(IAPO_ERR_ARG, "%s: tensor '%s': cannot write dtype %s", path, e[i].name,
				      iapo_dtype_name(e[i].dtype));
			goto fail;
		}
		size_t bytes = iapo_st_entry_bytes(&e[i]);
		iapo_text_put(&h, ",", 1);
		iapo_text_json_string(&h, e[i].name);
		iapo_text_fmt(&h, ":{\"dtype\":\"%s\",\"shape\":[", iapo_dtype_name(e[i].dtype));
		for (int d = 0; d < e[i].ndim; d++) iapo_text_fmt(&h, "%s%lld", d ? "," : "", (long long)e[i].shape[d]);
		iapo_text_fmt(&h, "],\"data_offsets\":[%zu,%zu]}", off, off + bytes);
		off += bytes;
	}
	iapo_text_put(&h, "}", 1);
	/* Pad with spaces so the data area starts 8-byte aligned. */
	while (!h.failed && (h.len % 8) != 0) iapo_text_put(&h, " ", 1);
	if (h.failed) {
		s = iapo_fail(IAPO_ERR_NOMEM, "%s: out of memory building the header", path);
		goto fail;
	}
	size_t chunk = (size_t)1 << 20; /* elements converted at a time */
	conv = iapo_malloc(chunk * 2);
	if (!conv) {
		s = iapo_fail(IAPO_ERR_NOMEM, "%s: out of memory", path);
		goto fail;
	}
	/* A temporary file renamed over path at the end: a failure part-way
	 * leaves path as it was, never a truncated file that looks whole. */
	int tl = snprintf(tmp, sizeof tmp, "%s.tmp-XXXXXX", path);
	if (tl < 0 || (size_t)tl >= sizeof tmp) {
		tmp[0] = '\0';
		s = iapo_fail(IAPO_ERR_ARG, "%s: path too long", path);
		goto fail;
	}
	fd = mkstemp(tmp);
	if (fd < 0) {
		tmp[0] = '\0';
		s = iapo_fail(IAPO_ERR_IO, "%s: cannot create a temporary file beside it: %s", path, strerror(errno));
		goto fail;
	}
	if (fchmod(fd, 0644) != 0) {
		s = iapo_fail(IAPO_ERR_IO, "%s: chmod failed: %s", tmp, strerror(errno));
		goto fail;
	}
	unsigned char len8[8];
	for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)h.len >> (8 * i));
	IAPO_CHECK(s, iapo_fs_write_all(fd, path, len8, 8));
	IAPO_CHECK(s, iapo_fs_write_all(fd, path, h.p, h.len));
	for (int i = 0; i < n; i++) {
		size_t ne = iapo_st_entry_bytes(&e[i]) / iapo_dtype_size(e[i].dtype);
		if (e[i].dtype == IAPO_DT_F32) {
			IAPO_CHECK(s, iapo_fs_write_all(fd, path, e[i].data, ne * 4));
			continue;
		}
		for (size_t b = 0; b < ne; b += chunk) {
			size_t k = ne - b < chunk ? ne - b : chunk;
			if (e[i].dtype == IAPO_DT_BF16) iapo_f32_to_bf16_array(e[i].data + b, conv, k);
			else iapo_f32_to_f16_array(e[i].data + b, conv, k);
			IAPO_CHECK(s, iapo_fs_write_all(fd, path, conv, k * 2));
		}
	}
	if (iapo_fs_fsync(fd) != 0) {
		s = iapo_fail(IAPO_ERR_IO, "%s: fsync failed: %s", path, strerror(errno));
		goto fail;
	}
	int rc = close(fd);
	fd = -1;
	if (rc != 0) {
		s = iapo_fail(IAPO_ERR_IO, "%s: close failed: %s", path, strerror(errno));
		goto fail;
	}
	if (rename(tmp, path) != 0) {
		s = iapo_fail(IAPO_ERR_IO, "%s: cannot rename the temporary file into place: %s", path, strerror(errno));
		goto fail;
	}
	iapo_free(conv);
	iapo_text_free(&h);
	return IAPO_OK;
fail:
	if (fd >= 0) close(fd);
	if (tmp[0]) unlink(tmp);
	iapo_free(conv);
	iapo_text_free(&h);
	return s;
}
