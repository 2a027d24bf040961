/*
 * test.h — the tiny harness every tests/test_*.c uses. A test case is a
 * function; CHECK records a failed expectation without stopping the case;
 * RUN executes a case and counts it as passed when none of its CHECKs failed.
 * main() ends with TEST_END(), which prints "N passed, N failed" and returns
 * non-zero when anything failed. Environment: IAPO_FIXTURES (oracle outputs,
 * default build/fixtures), IAPO_BIN (the CLI, default build/iapo), IAPO_TMP.
 */
#ifndef IAPO_TEST_H
#define IAPO_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_cases_passed, test_cases_failed, test_case_errors;

#define CHECK(cond, ...) \
	do { \
		if (!(cond)) { \
			test_case_errors++; \
			fprintf(stderr, "  FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
			fprintf(stderr, __VA_ARGS__); \
			fputc('\n', stderr); \
		} \
	} while (0)

/* |a-b| <= tol * max(1, |b|) */
#define CHECK_NEAR(a, b, tol, what) \
	do { \
		double ca_ = (double)(a), cb_ = (double)(b); \
		double scale_ = fabs(cb_) > 1.0 ? fabs(cb_) : 1.0; \
		CHECK(fabs(ca_ - cb_) <= (tol) * scale_, "%s: %.9g vs %.9g (tol %g)", what, ca_, cb_, (double)(tol)); \
	} while (0)

#define RUN(fn) \
	do { \
		int before_ = test_case_errors; \
		fn(); \
		if (test_case_errors == before_) { \
			test_cases_passed++; \
			fprintf(stderr, "ok   %s\n", #fn); \
		} else { \
			test_cases_failed++; \
			fprintf(stderr, "FAIL %s\n", #fn); \
		} \
	} while (0)

#define TEST_END() \
	do { \
		printf("%d passed, %d failed\n", test_cases_passed, test_cases_failed); \
		return test_cases_failed ? 1 : 0; \
	} while (0)

static inline const char *test_env(const char *name, const char *dflt)
{
	const char *v = getenv(name);
	return v && *v ? v : dflt;
}

static inline const char *test_fixtures(void) { return test_env("IAPO_FIXTURES", "build/fixtures"); }

/* Largest relative error max|a-b| / max(max|b|, tiny) over n values. */
static inline double test_max_rel_err(const float *a, const float *b, size_t n)
{
	double num = 0, den = 1e-30;
	for (size_t i = 0; i < n; i++) {
		double d = fabs((double)a[i] - (double)b[i]);
		if (d > num || d != d) num = d != d ? INFINITY : d;
		if (fabs((double)b[i]) > den) den = fabs((double)b[i]);
	}
	return num / den;
}

#endif
