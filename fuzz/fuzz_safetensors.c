/*
 * fuzz_safetensors.c — the safetensors reader on arbitrary bytes: header
 * length, JSON header, dtypes, shapes, data_offsets, tiling of the data area
 * (iapo_safetensors_open_mem: the same validation a mapped file gets), then
 * every tensor found by name and converted to fp32.
 * Oracles besides the sanitizers: an accepted file's tensors are sorted,
 * unique, inside the data area, sized dtype x elements and tile it exactly;
 * only non-float dtypes may refuse conversion, and with UNSUPPORTED.
 * Not here: the model loader's use of the tensors (fuzz_weights.c).
 */
#include "fuzz.h"
#include "io/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	iapo_safetensors st;
	fz_begin();
	if (fz_status(iapo_safetensors_open_mem(data, size, "fuzz.safetensors", &st), "open") != IAPO_OK) {
		FZ_ASSERT(st.n == 0 && st.t == NULL && st.path == NULL, "a failed open left state behind");
		return 0;
	}
	size_t covered = 0;
	for (int i = 0; i < st.n; i++) {
		const iapo_st_tensor *t = &st.t[i];
		FZ_ASSERT(i == 0 || strcmp(st.t[i - 1].name, t->name) < 0, "names not sorted and unique");
		FZ_ASSERT(iapo_safetensors_find(&st, t->name) == t, "find(%s)", t->name);
		FZ_ASSERT(t->begin <= t->end && t->end <= st.data_len, "range outside the data area");
		FZ_ASSERT(t->nelem * iapo_dtype_size(t->dtype) == t->end - t->begin, "size");
		FZ_ASSERT(t->ndim >= 0 && t->ndim <= IAPO_ST_MAX_DIMS, "ndim");
		covered += t->end - t->begin;
		char sh[16], big[512];
		iapo_shape_str(t->shape, t->ndim, sh, sizeof sh);
		iapo_shape_str(t->shape, t->ndim, big, sizeof big);
		float *out = malloc(t->nelem * sizeof(float) + 1);
		if (!out) abort();
		fz_begin();
		iapo_status s = fz_status(iapo_safetensors_read_f32(&st, t, out), "read_f32");
		int is_float = t->dtype == IAPO_DT_F32 || t->dtype == IAPO_DT_F16 || t->dtype == IAPO_DT_BF16 ||
			       t->dtype == IAPO_DT_F64;
		FZ_ASSERT(is_float ? s == IAPO_OK : s == IAPO_ERR_UNSUPPORTED, "read_f32 of %s gave %d",
			  iapo_dtype_name(t->dtype), s);
		free(out);
	}
	FZ_ASSERT(covered == st.data_len, "tensors cover %zu of %zu data bytes", covered, st.data_len);
	FZ_ASSERT(iapo_safetensors_find(&st, "") == NULL, "find of an empty name");
	iapo_safetensors_close(&st);
	return 0;
}
