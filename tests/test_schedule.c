/*
 * test_schedule.c — learning-rate schedules (src/rl/schedule.h) against Hugging
 * Face's formulas (transformers optimization.py) evaluated by hand:
 *   warmup:  lr * step / max(1, warmup)
 *   linear:  lr * max(0, (total - step) / max(1, total - warmup))
 *   cosine:  lr * max(0, 0.5 * (1 + cos(pi * 2 * 0.5 * progress)))
 *   constant_with_warmup: lr after the warmup.
 * The values below are written out as numbers, not recomputed by the same formula.
 */
#include <string.h>

#include "rl/schedule.h"
#include "test.h"

#define AT(s, step, w, total) iapo_lr_at((s), 1e-3f, (step), (w), (total))
/* float results: relative 1e-6 of the exact value */
#define CHECK_REL(a, b, what) \
	do { \
		double x_ = (double)(a), y_ = (double)(b); \
		CHECK(fabs(x_ - y_) <= 1e-6 * fabs(y_), "%s: %.9g vs %.9g", what, x_, y_); \
	} while (0)

static void test_warmup(void)
{
	for (int s = 0; s < 3; s++) {
		iapo_lr_schedule k = (iapo_lr_schedule)s;
		CHECK(AT(k, 0, 10, 100) == 0.0f, "%s: first update of a warmup uses lr 0 (HF)", iapo_lr_schedule_str(k));
		CHECK_REL(AT(k, 1, 10, 100), 1e-4, "warmup step 1");
		CHECK_REL(AT(k, 5, 10, 100), 5e-4, "warmup step 5");
		CHECK_REL(AT(k, 9, 10, 100), 9e-4, "warmup step 9");
		CHECK_REL(AT(k, 10, 10, 100), 1e-3, "end of warmup: full lr");
		CHECK_REL(AT(k, 0, 0, 100), 1e-3, "no warmup: full lr at step 0");
		CHECK(AT(k, -3, 10, 100) == 0.0f, "negative step counts as 0");
		/* a warmup longer than the run: HF keeps warming up */
		CHECK_REL(AT(k, 3, 10, 5), 3e-4, "warmup beyond total");
	}
}

static void test_linear(void)
{
	const iapo_lr_schedule k = IAPO_LR_LINEAR;
	CHECK_REL(AT(k, 11, 10, 100), 1e-3 * 89.0 / 90.0, "step 11");   /* 9.8889e-4 */
	CHECK_REL(AT(k, 55, 10, 100), 5e-4, "half way after warmup");
	CHECK_REL(AT(k, 99, 10, 100), 1.1111111e-5, "last step");
	CHECK(AT(k, 100, 10, 100) == 0.0f, "step == total");
	CHECK(AT(k, 150, 10, 100) == 0.0f, "past the end");
	/* the reference: no warmup, GSM8K 1244 steps */
	CHECK_REL(AT(k, 0, 0, 1244), 1e-3, "reference step 0");
	CHECK_REL(AT(k, 622, 0, 1244), 5e-4, "reference half way");
	CHECK_REL(AT(k, 1243, 0, 1244), 8.0385852e-7, "reference last step (1/1244)");
	CHECK_REL(iapo_lr_at(k, 1e-6f, 311, 0, 1244), 7.5e-7, "lr 1e-6 at a quarter");
}

static void test_cosine(void)
{
	const iapo_lr_schedule k = IAPO_LR_COSINE;
	CHECK_REL(AT(k, 25, 10, 100), 9.3301270e-4, "progress 1/6: 0.5(1+cos(pi/6))");
	CHECK_REL(AT(k, 55, 10, 100), 5e-4, "progress 1/2");
	CHECK_REL(AT(k, 85, 10, 100), 6.6987298e-5, "progress 5/6: 0.5(1-cos(pi/6))");
	CHECK_REL(AT(k, 99, 10, 100), 3.0458649e-7, "last step: 0.5(1-cos(pi/90))");
	CHECK(AT(k, 100, 10, 100) == 0.0f, "step == total");
	CHECK(AT(k, 150, 10, 100) == 0.0f, "past the end stays 0 (HF would rise again)");
	CHECK_REL(AT(k, 0, 0, 4), 1e-3, "no warmup, step 0");
	CHECK_REL(AT(k, 2, 0, 4), 5e-4, "no warmup, half way");
}

static void test_constant(void)
{
	const iapo_lr_schedule k = IAPO_LR_CONSTANT;
	CHECK_REL(AT(k, 10, 10, 100), 1e-3, "after warmup");
	CHECK_REL(AT(k, 99, 10, 100), 1e-3, "last step");
	CHECK_REL(AT(k, 1000, 10, 100), 1e-3, "past the end");
}

static void test_names(void)
{
	iapo_lr_schedule s;
	const char *names[] = {"constant", "linear", "cosine"};
	for (int i = 0; i < 3; i++) {
		CHECK(iapo_lr_schedule_parse(names[i], &s) == IAPO_OK && (int)s == i, "%s", names[i]);
		CHECK(strcmp(iapo_lr_schedule_str((iapo_lr_schedule)i), names[i]) == 0, "str %d", i);
	}
	CHECK(iapo_lr_schedule_parse("constant_with_warmup", &s) == IAPO_OK && s == IAPO_LR_CONSTANT, "alias");
	CHECK(iapo_lr_schedule_parse("cosine_with_restarts", &s) == IAPO_ERR_ARG, "unsupported schedule");
	CHECK(strstr(iapo_errmsg(), "cosine_with_restarts") != NULL, "message: %s", iapo_errmsg());
	CHECK(iapo_lr_schedule_parse(NULL, &s) == IAPO_ERR_ARG, "NULL");
}

int main(void)
{
	RUN(test_warmup);
	RUN(test_linear);
	RUN(test_cosine);
	RUN(test_constant);
	RUN(test_names);
	TEST_END();
}
