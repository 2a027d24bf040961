/*
 * gemm_ref.h — the GEMM tests' oracle for one element: op(A)(i,:) . op(B)(:,j)
 * summed in double precision, with the sum of |a b| that bounds fp32's
 * rounding of the same dot product. Shared by test_gemm.c and
 * test_gemm_splitk.c so that both judge the kernels by the same loop; the
 * epilogue (alpha, beta, addend, bias) stays with each test, which knows
 * what it passed.
 */
#ifndef IAPO_TESTS_GEMM_REF_H
#define IAPO_TESTS_GEMM_REF_H

#include <math.h>
#include <stddef.h>

/* Element (i, j) of op(A) op(B), K deep; *mag gets sum |a b|. */
static inline double gemm_ref_dot(int ta, int tb, const float *A, int lda, const float *B, int ldb, int i, int j,
				  int K, double *mag)
{
	double ref = 0, m = 0;
	for (int p = 0; p < K; p++) {
		double a = ta ? A[(size_t)p * lda + i] : A[(size_t)i * lda + p];
		double b = tb ? B[(size_t)j * ldb + p] : B[(size_t)p * ldb + j];
		ref += a * b;
		m += fabs(a * b);
	}
	*mag = m;
	return ref;
}

#endif
