/*
 * half.h — 16-bit float formats to and from fp32: bfloat16 (the top half of an
 * fp32) and IEEE binary16 ("f16", with subnormals, inf and NaN). fp32 -> 16 bit
 * rounds to nearest, ties to even, exactly as PyTorch's .to(torch.bfloat16) and
 * .half() do; NaN stays NaN (0x7fc0 for bf16, sign|0x7e00 for f16).
 * The scalar forms are inline so that the array loops vectorise; the array
 * forms read unaligned sources (safetensors data need not be aligned) and run
 * in parallel with OpenMP above a size threshold. Other 8-bit float formats are
 * not handled here.
 */
#ifndef IAPO_IO_HALF_H
#define IAPO_IO_HALF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline uint32_t iapo_f32_bits(float f)
{
	uint32_t u;
	memcpy(&u, &f, 4);
	return u;
}

static inline float iapo_f32_from_bits(uint32_t u)
{
	float f;
	memcpy(&f, &u, 4);
	return f;
}

static inline float iapo_bf16_to_f32(uint16_t h) { return iapo_f32_from_bits((uint32_t)h << 16); }

static inline uint16_t iapo_f32_to_bf16(float f)
{
	uint32_t x = iapo_f32_bits(f);
	if ((x & 0x7fffffffu) > 0x7f800000u) return 0x7fc0;
	/* Adding 0x7fff plus the lowest kept bit rounds ties to even; a carry
	 * into the exponent is the correct rounding up (to inf at the top). */
	return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

static inline float iapo_f16_to_f32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
	uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
	/* Subnormal halves are m * 2^-24: exact in fp32 through an integer
	 * conversion, without relying on fp32 subnormal arithmetic. */
	float sub = (float)m * 0x1p-24f;
	uint32_t bits = e == 0 ? iapo_f32_bits(sub)
		      : e == 31 ? 0x7f800000u | (m << 13)
				: ((e + 112u) << 23) | (m << 13);
	return iapo_f32_from_bits(sign | bits);
}

static inline uint16_t iapo_f32_to_f16(float f)
{
	uint32_t x = iapo_f32_bits(f);
	uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
	x &= 0x7fffffffu;
	if (x > 0x7f800000u) return (uint16_t)(sign | 0x7e00u); /* quiet NaN, as PyTorch */
	if (x >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* >= 65520 rounds to inf */
	if (x < 0x38800000u) { /* below 2^-14: a subnormal half (or zero) */
		if (x <= 0x33000000u) return sign; /* <= 2^-25 rounds to zero (tie goes to even 0) */
		uint32_t e = x >> 23, m = (x & 0x7fffffu) | 0x800000u;
		uint32_t shift = 126u - e; /* value * 2^24 = m >> shift, 14 <= shift <= 24 */
		uint32_t q = m >> shift, rem = m & ((1u << shift) - 1u), half = 1u << (shift - 1u);
		if (rem > half || (rem == half && (q & 1u))) q++;
		return (uint16_t)(sign | q);
	}
	x += 0xfffu + ((x >> 13) & 1u);
	return (uint16_t)(sign | ((x - (112u << 23)) >> 13));
}

/* dst[i] = src[i] converted; src points at n little-endian 16-bit values,
 * any alignment. */
void iapo_bf16_to_f32_array(const void *src, float *dst, size_t n);
void iapo_f16_to_f32_array(const void *src, float *dst, size_t n);
/* Rounds n floats into dst (any alignment), little-endian. */
void iapo_f32_to_bf16_array(const float *src, void *dst, size_t n);
void iapo_f32_to_f16_array(const float *src, void *dst, size_t n);

#endif
