/*
 * safetensors.h — the safetensors file format (Hugging Face): an 8-byte
 * little-endian header length N, N bytes of JSON mapping tensor names to
 * {dtype, shape, data_offsets} (plus an optional "__metadata__" map of
 * strings), then the data area, little-endian, row-major.
 *
 * The reader memory-maps the file and validates the header strictly before
 * anything is read: N within the file, JSON object, every dtype known, shape
 * product without overflow, data_offsets equal to dtype size x element count,
 * tensors non-overlapping and covering the data area exactly (as the
 * reference implementation requires), names unique, at most
 * IAPO_ST_MAX_TENSORS tensors with names up to IAPO_ST_MAX_NAME bytes.
 * The writer writes fp32 arrays as F32, BF16 or F16 with the header padded to
 * a multiple of 8 bytes (so every tensor's data stays aligned), atomically.
 * Not here: which tensors a model needs (model/weights.c), sharding (ditto).
 */
#ifndef IAPO_IO_SAFETENSORS_H
#define IAPO_IO_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "iapo.h"

typedef enum {
	IAPO_DT_F64,
	IAPO_DT_F32,
	IAPO_DT_F16,
	IAPO_DT_BF16,
	IAPO_DT_I64,
	IAPO_DT_I32,
	IAPO_DT_I16,
	IAPO_DT_I8,
	IAPO_DT_U64,
	IAPO_DT_U32,
	IAPO_DT_U16,
	IAPO_DT_U8,
	IAPO_DT_BOOL,
	IAPO_DT_F8_E4M3,
	IAPO_DT_F8_E5M2,
	IAPO_DT_COUNT
} iapo_dtype;

#define IAPO_ST_MAX_DIMS 8
#define IAPO_ST_MAX_NAME 1024
#define IAPO_ST_MAX_TENSORS 1000000
#define IAPO_ST_MAX_HEADER ((size_t)100000000)

/* "F32", "BF16", ... */
const char *iapo_dtype_name(iapo_dtype d);
/* Bytes per element. */
size_t iapo_dtype_size(iapo_dtype d);
/* The dtype spelled s exactly, or -1. */
int iapo_dtype_parse(const char *s);

typedef struct {
	char *name;
	iapo_dtype dtype;
	int ndim;
	int64_t shape[IAPO_ST_MAX_DIMS];
	size_t nelem;
	size_t begin, end; /* byte range in the data area */
} iapo_st_tensor;

typedef struct {
	char *path;
	void *map;                 /* NULL when opened from memory */
	size_t map_len;
	const unsigned char *data; /* the data area */
	size_t data_len;
	iapo_st_tensor *t;         /* n tensors, sorted by name */
	int n;
} iapo_safetensors;

/* Maps and validates path. On failure *st is empty (closing it is a no-op)
 * and the message names the file and the offending tensor or field. */
iapo_status iapo_safetensors_open(const char *path, iapo_safetensors *st);
/* The same for name relative to the open directory dirfd; `shown` is the
 * path used in messages (and kept in st->path). */
iapo_status iapo_safetensors_open_at(int dirfd, const char *name, const char *shown, iapo_safetensors *st);
/* The same for len bytes already in memory (not copied: data must outlive st;
 * closing st does not free it); `shown` names them in messages. */
iapo_status iapo_safetensors_open_mem(const void *data, size_t len, const char *shown, iapo_safetensors *st);
void iapo_safetensors_close(iapo_safetensors *st);
/* The tensor called name, or NULL. */
const iapo_st_tensor *iapo_safetensors_find(const iapo_safetensors *st, const char *name);
/* Converts t (F32, F16, BF16 or F64) into t->nelem floats at out; other
 * dtypes are UNSUPPORTED. Parallel (OpenMP) for large tensors. */
iapo_status iapo_safetensors_read_f32(const iapo_safetensors *st, const iapo_st_tensor *t, float *out);
/* "(2, 3)" into buf, Python style ("()" for a scalar). */
void iapo_shape_str(const int64_t *shape, int ndim, char *buf, size_t n);

typedef struct {
	const char *name;
	iapo_dtype dtype; /* F32, BF16 or F16: data is rounded from fp32 */
	int ndim;
	int64_t shape[IAPO_ST_MAX_DIMS];
	const float *data; /* product(shape) floats */
} iapo_st_entry;

/* Bytes the entry's data takes in a file. */
size_t iapo_st_entry_bytes(const iapo_st_entry *e);
/* Writes the n entries, in order, to path with __metadata__ {"format":
 * "pt"}: into a temporary file beside it, fsynced and renamed over path, so
 * that on failure path is as it was (the old file or none) and no temporary
 * file is left. The directory is not fsynced (model directories are synced
 * as a whole before they are renamed into place). */
iapo_status iapo_safetensors_write(const char *path, const iapo_st_entry *e, int n);

#endif
