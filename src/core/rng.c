/*
 * rng.c — xoshiro256** (Blackman & Vigna) with splitmix64 seeding.
 */
#include "core/rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void iapo_rng_seed(iapo_rng *r, uint64_t k0, uint64_t k1, uint64_t k2, uint64_t k3)
{
	/* Mix the key words one after another so (a,b) and (b,a) differ. */
	uint64_t x = 0x243f6a8885a308d3ull;
	uint64_t keys[4] = {k0, k1, k2, k3};
	for (int i = 0; i < 4; i++) {
		x ^= keys[i];
		x = splitmix64(&x);
	}
	for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

uint64_t iapo_rng_u64(iapo_rng *r)
{
	uint64_t *s = r->s;
	uint64_t result = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

float iapo_rng_float(iapo_rng *r) { return (float)(iapo_rng_u64(r) >> 40) * 0x1.0p-24f; }

double iapo_rng_double(iapo_rng *r) { return (double)(iapo_rng_u64(r) >> 11) * 0x1.0p-53; }

float iapo_rng_normal(iapo_rng *r)
{
	double u1 = iapo_rng_double(r), u2 = iapo_rng_double(r);
	if (u1 < 1e-300) u1 = 1e-300;
	return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

uint64_t iapo_rng_below(iapo_rng *r, uint64_t n)
{
	uint64_t limit = UINT64_MAX - UINT64_MAX % n;
	uint64_t x;
	do x = iapo_rng_u64(r);
	while (x >= limit);
	return x % n;
}
