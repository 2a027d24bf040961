/*
 * rng.h — deterministic random numbers. xoshiro256** seeded by splitmix64 of a
 * key, so a stream can be addressed by (seed, step, prompt, sample) instead of
 * by which thread or rank draws it: the same key always gives the same stream.
 */
#ifndef IAPO_CORE_RNG_H
#define IAPO_CORE_RNG_H

#include <stdint.h>

typedef struct {
	uint64_t s[4];
} iapo_rng;

/* Seeds from a key of up to four 64-bit words (unused ones 0). */
void iapo_rng_seed(iapo_rng *r, uint64_t k0, uint64_t k1, uint64_t k2, uint64_t k3);
uint64_t iapo_rng_u64(iapo_rng *r);
/* Uniform in [0, 1) with 24 random bits (exactly representable as float). */
float iapo_rng_float(iapo_rng *r);
/* Uniform in [0, 1) with 53 random bits. */
double iapo_rng_double(iapo_rng *r);
/* Standard normal (Box–Muller, no cached second value so streams stay simple). */
float iapo_rng_normal(iapo_rng *r);
/* Uniform integer in [0, n), unbiased; n > 0. */
uint64_t iapo_rng_below(iapo_rng *r, uint64_t n);

#endif
