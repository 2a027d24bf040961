/*
 * fuzz_reward.c — the answer verifier on arbitrary strings: the input is a
 * completion, optionally followed by "\n--\n" and a label. Extraction into
 * buffers of several sizes (1 byte included), normalisation, equality,
 * correctness, the format check and the total reward.
 * Oracles besides the sanitizers: outputs are NUL-terminated within their
 * buffers; equality is symmetric; extraction into a smaller buffer gives a
 * prefix of the larger one's result; the reward is exactly the weighted sum
 * of the correctness and format flags it reports, and those agree with
 * iapo_answer_is_correct and iapo_format_ok.
 * Not here: dataset labels (fuzz_dataset.c).
 */
#include "fuzz.h"
#include "rl/reward.h"

static void extract_all(const char *s)
{
	char big[4096], mid[64], one[1];
	int fb = iapo_answer_extract(s, big, sizeof big);
	FZ_ASSERT(memchr(big, '\0', sizeof big) && (fb ? big[0] != '\0' : big[0] == '\0'), "extract into 4096");
	int fm = iapo_answer_extract(s, mid, sizeof mid);
	FZ_ASSERT(memchr(mid, '\0', sizeof mid) != NULL, "extract into 64: not terminated");
	FZ_ASSERT(fm == fb && !strncmp(mid, big, strlen(mid)), "extract into 64: not a prefix of the full answer");
	iapo_answer_extract(s, one, 1);
	FZ_ASSERT(one[0] == '\0', "extract into 1 byte");
	char nb[2048], ns[8];
	iapo_answer_normalize(s, nb, sizeof nb);
	FZ_ASSERT(memchr(nb, '\0', sizeof nb) != NULL, "normalize: not terminated");
	iapo_answer_normalize(s, ns, sizeof ns);
	FZ_ASSERT(memchr(ns, '\0', sizeof ns) != NULL, "normalize into 8: not terminated");
	iapo_answer_normalize(big, nb, sizeof nb);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fz_part part[2];
	int np = fz_split(data, size, part, 2);
	char *c = fz_str(part[0].p, part[0].n);
	char *l = np > 1 ? fz_str(part[1].p, part[1].n) : fz_str((const uint8_t *)"42", 2);
	extract_all(c);
	extract_all(l);
	int e1 = iapo_answer_equal(c, l), e2 = iapo_answer_equal(l, c);
	FZ_ASSERT(e1 == e2, "equal is not symmetric: %d vs %d", e1, e2);
	int corr = -1, fmt = -1;
	iapo_reward_weights w;
	iapo_reward_weights_default(&w);
	float r = iapo_reward(c, l, NULL, &corr, &fmt);
	FZ_ASSERT(corr == iapo_answer_is_correct(c, l), "reward's correctness flag differs from is_correct");
	FZ_ASSERT(fmt == iapo_format_ok(c), "reward's format flag differs from format_ok");
	float want = (corr ? w.correct : w.wrong) + (fmt ? w.format_ok : w.format_bad);
	FZ_ASSERT(r == want, "reward %g, flags give %g", (double)r, (double)want);
	iapo_reward_weights z = {2, 0, 0.25f, 0};
	r = iapo_reward(c, l, &z, NULL, NULL);
	FZ_ASSERT(r == (corr ? 2.0f : 0.0f) + (fmt ? 0.25f : 0.0f), "reward with weights %g", (double)r);
	free(c);
	free(l);
	return 0;
}
