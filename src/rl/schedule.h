/*
 * schedule.h — the learning rate at each optimizer step, as Hugging Face's
 * transformers schedulers compute it (the reference trains with HF's "linear",
 * no warmup): a linear warmup from 0 followed by a constant rate, a linear
 * decay to 0, or a half-cycle cosine decay to 0.
 *
 * Left out: restarts, polynomial and inverse-sqrt schedules, min-lr floors.
 * Pure functions; thread-safe.
 */
#ifndef IAPO_RL_SCHEDULE_H
#define IAPO_RL_SCHEDULE_H

#include "iapo.h"

typedef enum { IAPO_LR_CONSTANT, IAPO_LR_LINEAR, IAPO_LR_COSINE } iapo_lr_schedule;

/* "constant" (alias "constant_with_warmup"), "linear", "cosine"; IAPO_ERR_ARG with a message otherwise. */
iapo_status iapo_lr_schedule_parse(const char *s, iapo_lr_schedule *out);
/* "constant", "linear", "cosine". */
const char *iapo_lr_schedule_str(iapo_lr_schedule s);

/* Learning rate at optimizer step `step` (0-based: the rate the (step+1)-th update uses, which is
 * what HF's LambdaLR gives before its step-th scheduler.step()) of total_steps:
 *  step < warmup:  lr * step / warmup                       (so the first update of a warmup uses 0, as in HF)
 *  then constant:  lr                                       (HF get_constant_schedule_with_warmup; HF's plain
 *                                                            "constant" ignores warmup, ours never does)
 *       linear:    lr * (total - step) / max(1, total - warmup)          (get_linear_schedule_with_warmup)
 *       cosine:    lr * 0.5 * (1 + cos(pi * progress)),
 *                  progress = (step - warmup) / max(1, total - warmup)   (get_cosine_schedule_with_warmup,
 *                                                                          num_cycles 0.5)
 * Linear and cosine are 0 from total_steps on (HF's cosine would rise again past the end). A negative step
 * counts as 0, a negative warmup as 0. Computed in double, rounded once. */
float iapo_lr_at(iapo_lr_schedule s, float lr, long step, long warmup, long total_steps);

#endif
