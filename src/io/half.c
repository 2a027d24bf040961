/*
 * half.c — array conversions between fp32 and bf16/f16 (scalar rules in
 * half.h). The loops go through memcpy'd 16-bit loads so that an unaligned
 * mmap'd source is not undefined behaviour; compilers turn them into plain
 * vector loads. Large arrays are split across OpenMP threads in fixed chunks,
 * so the result does not depend on the thread count (it is exact anyway).
 * Assumes a little-endian host, as safetensors files are little-endian.
 */
#include "io/half.h"

#define PAR_MIN ((size_t)1 << 16)

#define CONVERT_LOOP(BODY) \
	do { \
		if (n >= PAR_MIN) { \
			_Pragma("omp parallel for schedule(static)") \
			for (size_t i = 0; i < n; i++) BODY; \
		} else { \
			for (size_t i = 0; i < n; i++) BODY; \
		} \
	} while (0)

static inline uint16_t load16(const unsigned char *p, size_t i)
{
	uint16_t v;
	memcpy(&v, p + 2 * i, 2);
	return v;
}

static inline void store16(unsigned char *p, size_t i, uint16_t v) { memcpy(p + 2 * i, &v, 2); }

void iapo_bf16_to_f32_array(const void *src, float *dst, size_t n)
{
	const unsigned char *s = src;
	CONVERT_LOOP(dst[i] = iapo_bf16_to_f32(load16(s, i)));
}

void iapo_f16_to_f32_array(const void *src, float *dst, size_t n)
{
	const unsigned char *s = src;
	CONVERT_LOOP(dst[i] = iapo_f16_to_f32(load16(s, i)));
}

void iapo_f32_to_bf16_array(const float *src, void *dst, size_t n)
{
	unsigned char *d = dst;
	CONVERT_LOOP(store16(d, i, iapo_f32_to_bf16(src[i])));
}

void iapo_f32_to_f16_array(const float *src, void *dst, size_t n)
{
	unsigned char *d = dst;
	CONVERT_LOOP(store16(d, i, iapo_f32_to_f16(src[i])));
}
