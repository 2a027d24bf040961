/*
 * sanitizer.h — test-only: SANITIZED is 1 when this test program is built
 * with AddressSanitizer (make asan; GCC's __SANITIZE_ADDRESS__ or clang's
 * __has_feature), else 0. Tests whose learning runs take minutes under a
 * sanitizer (~10-15x slower steps) cut them to a few steps that exercise the
 * same code, and assert less of the curve.
 */
#ifndef IAPO_TESTS_SANITIZER_H
#define IAPO_TESTS_SANITIZER_H

#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED 0
#endif

#endif
