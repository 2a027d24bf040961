/*
 * schedule.c — learning-rate schedules of schedule.h, restated from the
 * formulas of Hugging Face transformers' optimization.py lambdas.
 */
#include "rl/schedule.h"

#include <math.h>
#include <string.h>

#include "core/status.h"

iapo_status iapo_lr_schedule_parse(const char *s, iapo_lr_schedule *out)
{
	if (s && (strcmp(s, "constant") == 0 || strcmp(s, "constant_with_warmup") == 0)) *out = IAPO_LR_CONSTANT;
	else if (s && strcmp(s, "linear") == 0) *out = IAPO_LR_LINEAR;
	else if (s && strcmp(s, "cosine") == 0) *out = IAPO_LR_COSINE;
	else return iapo_fail(IAPO_ERR_ARG, "lr schedule: expected constant, linear or cosine, found \"%.64s\"",
			      s ? s : "(null)");
	return IAPO_OK;
}

const char *iapo_lr_schedule_str(iapo_lr_schedule s)
{
	switch (s) {
	case IAPO_LR_CONSTANT: return "constant";
	case IAPO_LR_LINEAR: return "linear";
	case IAPO_LR_COSINE: return "cosine";
	}
	return "?";
}

float iapo_lr_at(iapo_lr_schedule s, float lr, long step, long warmup, long total_steps)
{
	const double pi = 3.14159265358979323846;
	if (step < 0) step = 0;
	if (warmup < 0) warmup = 0;
	double f;
	if (step < warmup) {
		f = (double)step / (double)warmup;
	} else if (s == IAPO_LR_CONSTANT) {
		f = 1.0;
	} else if (step >= total_steps) {
		f = 0.0;
	} else {
		double span = total_steps - warmup > 1 ? (double)(total_steps - warmup) : 1.0;
		if (s == IAPO_LR_LINEAR) {
			f = (double)(total_steps - step) / span;
		} else {
			double progress = (double)(step - warmup) / span;
			f = 0.5 * (1.0 + cos(pi * progress));
		}
		if (f < 0) f = 0;
	}
	return (float)((double)lr * f);
}
