/*
 * simd.h — AVX-512 register helpers shared by the kernels (gemm.c's packing,
 * cpu.c's blocked attention): the 16x16 float transpose.
 *
 * Callable from code compiled for AVX-512 (-march with AVX-512F, or a
 * target attribute that includes it); the target attribute lets the header
 * compile in files built without it. Left out: anything that is not yet
 * needed by two files.
 */
#ifndef IAPO_KERNELS_SIMD_H
#define IAPO_KERNELS_SIMD_H

#include <immintrin.h>

/* r[i] lane j becomes r[j] lane i: 16 rows of 16 floats transposed in
 * registers (32 unpacks and 32 128-bit-lane shuffles). */
static inline __attribute__((always_inline, target("avx512f"))) void iapo_transpose16(__m512 r[16])
{
	__m512 t[16], u[16];
	for (int i = 0; i < 8; i++) {
		t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
		t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
	}
	/* t[4q..4q+3] hold rows 4q..4q+3 interleaved; pairs of 64-bit lanes
	 * gather 4 rows of one column per 128-bit lane. */
	for (int q = 0; q < 4; q++) {
		__m512d a = _mm512_castps_pd(t[4 * q]), b = _mm512_castps_pd(t[4 * q + 1]);
		__m512d c = _mm512_castps_pd(t[4 * q + 2]), d = _mm512_castps_pd(t[4 * q + 3]);
		u[4 * q + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c)); /* cols 0,4,8,12 */
		u[4 * q + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c)); /* cols 1,5,9,13 */
		u[4 * q + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d)); /* cols 2,6,10,14 */
		u[4 * q + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d)); /* cols 3,7,11,15 */
	}
	/* u[4q+j] lane l = rows 4q..4q+3 of column j + 4l; gather 128-bit lanes. */
	for (int j = 0; j < 4; j++) {
		__m512 v0 = _mm512_shuffle_f32x4(u[j], u[4 + j], 0x88);      /* r0-3 c j, j+8 | r4-7 c j, j+8 */
		__m512 v1 = _mm512_shuffle_f32x4(u[j], u[4 + j], 0xdd);      /* ... c j+4, j+12 */
		__m512 v2 = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0x88); /* r8-15 c j, j+8 */
		__m512 v3 = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0xdd);
		r[j] = _mm512_shuffle_f32x4(v0, v2, 0x88);
		r[j + 8] = _mm512_shuffle_f32x4(v0, v2, 0xdd);
		r[j + 4] = _mm512_shuffle_f32x4(v1, v3, 0x88);
		r[j + 12] = _mm512_shuffle_f32x4(v1, v3, 0xdd);
	}
}

#endif
