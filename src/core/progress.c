/*
 * progress.c — the progress line of long loops (see progress.h).
 */
#include "core/progress.h"

#include <stdarg.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

double iapo_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

const char *iapo_progress_duration(double s, char *buf, size_t n)
{
	if (!(s >= 0)) s = 0;
	if (s < 60)
		snprintf(buf, n, "%.1fs", s);
	else if (s < 3600)
		snprintf(buf, n, "%dm%02ds", (int)(s / 60), (int)s % 60);
	else if (s < 360000)
		snprintf(buf, n, "%dh%02dm", (int)(s / 3600), ((int)s % 3600) / 60);
	else
		snprintf(buf, n, "%.0fh", s / 3600);
	return buf;
}

void iapo_progress_init(iapo_progress *p, FILE *f, const char *label, long first, long total, int tty)
{
	memset(p, 0, sizeof *p);
	p->f = f ? f : stderr;
	p->tty = tty >= 0 ? tty : isatty(fileno(p->f));
	snprintf(p->label, sizeof p->label, "%s", label ? label : "");
	p->first = first;
	p->total = total;
	p->t_start = iapo_now();
}

static void clear_line(iapo_progress *p)
{
	if (p->tty && p->drawn) {
		fprintf(p->f, "\r%*s\r", p->width, "");
		p->drawn = 0;
	}
}

void iapo_progress_update(iapo_progress *p, long done, const char *fields)
{
	double el = iapo_now() - p->t_start;
	long n = done - p->first;
	double rate = n > 0 ? el / (double)n : 0; /* seconds per step */
	char eta[32] = "?", line[512];
	if (p->total > 0 && n > 0) iapo_progress_duration(rate * (double)(p->total - done), eta, sizeof eta);
	int k;
	if (p->tty) {
		char bar[21];
		int fill = p->total > 0 ? (int)(20.0 * (double)done / (double)p->total) : 0;
		if (fill > 20) fill = 20;
		for (int i = 0; i < 20; i++) bar[i] = i < fill ? '#' : '.';
		bar[20] = 0;
		k = snprintf(line, sizeof line, "%s [%s] %ld/%ld %s | %.2fs/step | ETA %s", p->label, bar, done,
			     p->total, fields ? fields : "", rate, eta);
	} else {
		k = snprintf(line, sizeof line, "%s step %ld/%ld %s %.2fs/step ETA %s", p->label, done, p->total,
			     fields ? fields : "", rate, eta);
	}
	if (k < 0) return;
	if (p->tty) {
		int w = (int)strlen(line);
		fprintf(p->f, "\r%s", line);
		if (w < p->width) fprintf(p->f, "%*s", p->width - w, "");
		p->width = w;
		p->drawn = 1;
	} else {
		fprintf(p->f, "%s\n", line);
	}
	fflush(p->f);
}

void iapo_progress_note(iapo_progress *p, const char *fmt, ...)
{
	clear_line(p);
	va_list ap;
	va_start(ap, fmt);
	vfprintf(p->f, fmt, ap);
	va_end(ap);
	fputc('\n', p->f);
	fflush(p->f);
}

void iapo_progress_finish(iapo_progress *p)
{
	if (p->tty && p->drawn) fputc('\n', p->f);
	p->drawn = 0;
	fflush(p->f);
}
