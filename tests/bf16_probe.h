/* Whether this CPU's vdpbf16ps rounds as Intel defines it: per lane two fp32
 * FMAs, the odd element's product first. Where it does, the fp32-FMA readers
 * of bf16 operands that sum that way (gemm.c's dotpbw_*, kvcache.c's
 * attend_span_bw) must give vdpbf16ps's bits, and test_decode_bf16 and
 * test_info_bf16 check them to the bit; elsewhere by a tolerance. Random
 * bf16 operands over 2^-8..2^8 and sums, some made to nearly cancel. */
#ifndef IAPO_TEST_BF16_PROBE_H
#define IAPO_TEST_BF16_PROBE_H

#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "core/rng.h"

__attribute__((target("avx512f,avx512bf16"))) static int dpbf16_probe_(void)
{
	iapo_rng r;
	iapo_rng_seed(&r, 97, 5, 0, 0);
	for (int n = 0; n < 2048; n++) {
		uint16_t a[32], b[32];
		float c[16], got[16], fa[32], fb[32];
		for (int i = 0; i < 32; i++) {
			a[i] = (uint16_t)((iapo_rng_below(&r, 2) << 15) | ((119 + iapo_rng_below(&r, 17)) << 7) |
					  iapo_rng_below(&r, 128));
			b[i] = (uint16_t)((iapo_rng_below(&r, 2) << 15) | ((119 + iapo_rng_below(&r, 17)) << 7) |
					  iapo_rng_below(&r, 128));
			const uint32_t ua = (uint32_t)a[i] << 16, ub = (uint32_t)b[i] << 16;
			memcpy(fa + i, &ua, 4);
			memcpy(fb + i, &ub, 4);
		}
		for (int j = 0; j < 16; j++)
			c[j] = j % 4 == 0 ? -(fa[2 * j + 1] * fb[2 * j + 1]) * 1.0009765625f
				       : (float)((int)iapo_rng_below(&r, 2001) - 1000) * 0.013f;
		const __m512 acc = _mm512_dpbf16_ps(_mm512_loadu_ps(c), (__m512bh)_mm512_loadu_si512(a),
						    (__m512bh)_mm512_loadu_si512(b));
		_mm512_storeu_ps(got, acc);
		for (int j = 0; j < 16; j++) {
			const float want = fmaf(fa[2 * j], fb[2 * j], fmaf(fa[2 * j + 1], fb[2 * j + 1], c[j]));
			if (memcmp(&want, got + j, 4)) return 0;
		}
	}
	return 1;
}

static inline int dpbf16_is_two_fmas(void)
{
	return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bf16") && dpbf16_probe_();
}

#endif
