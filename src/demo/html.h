/*
 * html.h — the pieces of iapo's self-contained HTML reports (`iapo report`,
 * `iapo demo`): page head and foot with inline CSS, HTML escaping, tables of
 * numbers, and line charts drawn as inline SVG. No scripts, no network, no
 * fonts to fetch: the page renders the same in any browser, offline, and its
 * figures are ordinary DOM elements a headless browser can count.
 *
 * Charts: each series is a polyline through its finite points (a NaN or Inf
 * value breaks the line there rather than dropping to zero); axes with
 * "nice" ticks (1, 2, 5 x 10^k) cover the finite values of every series; a
 * legend names the series in the palette's colours. A chart with no finite
 * point at all is drawn as an empty frame saying so. Every chart carries
 * data-series and data-points attributes (series drawn, finite points) so a
 * test can see what was plotted without parsing coordinates.
 *
 * Not here: reading metrics (metrics.h), what a report shows (report.h,
 * demo.h), heat maps of token information (rl/info_report.h).
 */
#ifndef IAPO_DEMO_HTML_H
#define IAPO_DEMO_HTML_H

#include <stdio.h>

#include "iapo.h"

/* Writes s with & < > " ' escaped (so it is safe in text and attributes). */
void iapo_html_escape(FILE *f, const char *s);

/* <!DOCTYPE html> … <body><h1>title</h1>; the CSS for charts and tables. */
void iapo_html_begin(FILE *f, const char *title);
/* </body></html>. IAPO_ERR_IO if any write to f failed (ferror). */
iapo_status iapo_html_end(FILE *f);

/* The palette colour of series i (#rrggbb, cycles). */
const char *iapo_html_colour(int i);

typedef struct {
	const char *name; /* legend text (escaped) */
	const double *x;  /* (n) NULL: 0, 1, 2, ... */
	const double *y;  /* (n) */
	int n;
	int colour;       /* palette index; < 0: the series' position */
} iapo_svg_series;

typedef struct {
	const char *title;  /* above the chart */
	const char *xlabel; /* under the x axis */
	const char *ylabel; /* beside the y axis */
	int width, height;  /* pixels; <= 0: 460 x 250 */
	const iapo_svg_series *series;
	int n_series;
} iapo_svg_chart;

/* One <figure class="chart"> with its <svg>. Series with no finite point are
 * left out of the plot and the legend (and not counted in data-series).
 * Returns ARG for a NULL chart or a negative count, IO when f failed. */
iapo_status iapo_svg_chart_write(FILE *f, const iapo_svg_chart *c);

/* The number to show in a table cell: "%.*g"-like but fixed decimals where the
 * magnitude allows ("0.812", "143.2", "1.2e-05"), "–" for NaN. buf >= 32. */
const char *iapo_html_num(double v, int digits, char *buf, size_t n);

#endif
