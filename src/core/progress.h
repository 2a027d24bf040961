/*
 * progress.h — progress reporting for long loops (training, SFT, evaluation)
 * on a stream, normally stderr. On a terminal: one line redrawn in place with
 * \r — a bar, done/total, the caller's fields (e.g. "reward 0.52 acc 0.40"),
 * seconds per step and the ETA. Elsewhere (a log file, a pipe): one plain
 * line per update, so logs stay readable and greppable.
 * Not here: what the fields mean, or writing metrics files.
 * Threads: one iapo_progress per loop, used from one thread.
 */
#ifndef IAPO_CORE_PROGRESS_H
#define IAPO_CORE_PROGRESS_H

#include <stdio.h>

typedef struct {
	FILE *f;
	int tty;           /* redraw in place */
	char label[32];    /* e.g. "train" */
	long total;        /* steps in all; <= 0: unknown (no bar, no ETA) */
	long first;        /* the step the loop started from (resume) */
	double t_start;    /* monotonic seconds at init */
	int drawn;         /* a partial line is on screen */
	int width;         /* last line's length, for clearing */
} iapo_progress;

/* Starts reporting on f (NULL: stderr). tty: 1/0 forces the mode, -1 asks
 * isatty(fileno(f)). first = the step the loop resumes from (0 normally), so
 * the rate only counts steps done in this process. */
void iapo_progress_init(iapo_progress *p, FILE *f, const char *label, long first, long total, int tty);
/* Reports that `done` steps are complete (done > first); fields is a short
 * text shown after the counts (may be NULL). */
void iapo_progress_update(iapo_progress *p, long done, const char *fields);
/* Prints a message on its own line without garbling the bar (which is
 * redrawn by the next update). */
void iapo_progress_note(iapo_progress *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Ends the bar's line (terminal) so later output starts on a new line. */
void iapo_progress_finish(iapo_progress *p);

/* Seconds of a monotonic clock. */
double iapo_now(void);
/* "1h02m", "3m05s", "12.3s" into buf. */
const char *iapo_progress_duration(double seconds, char *buf, size_t n);

#endif
