/*
 * html.c — HTML page frame, escaping, number cells and SVG line charts for
 * the reports (see html.h). Coordinates are written with one decimal: at a
 * few hundred pixels that is far below what a screen shows and keeps pages
 * small.
 */
#include "demo/html.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/status.h"

void iapo_html_escape(FILE *f, const char *s)
{
	if (!s) return;
	for (; *s; s++) switch (*s) {
		case '&': fputs("&amp;", f); break;
		case '<': fputs("&lt;", f); break;
		case '>': fputs("&gt;", f); break;
		case '"': fputs("&quot;", f); break;
		case '\'': fputs("&#39;", f); break;
		default: fputc(*s, f);
		}
}

void iapo_html_begin(FILE *f, const char *title)
{
	fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>", f);
	iapo_html_escape(f, title);
	fputs("</title>\n<style>\n"
	      "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2em auto;max-width:64em;"
	      "padding:0 1em;color:#222}\n"
	      "h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.8em;border-bottom:1px solid #ddd}"
	      "h3{font-size:1.05em}\n"
	      ".charts{display:flex;flex-wrap:wrap;gap:1em}\n"
	      "figure.chart{margin:0;padding:.4em;border:1px solid #e4e4e4;border-radius:4px}\n"
	      "figure.chart figcaption{font-size:14px;font-weight:600;margin:0 0 .2em .3em}\n"
	      "svg.chart text{font-size:11px;fill:#444}\n"
	      "svg.chart .grid{stroke:#eee}\nsvg.chart .axis{stroke:#888}\n"
	      "svg.chart .line{fill:none;stroke-width:1.6}\n"
	      ".keys{font-size:12px;display:flex;flex-wrap:wrap;gap:.2em .9em;margin:.2em .3em;max-width:460px}\n"
	      ".key i{display:inline-block;width:1.4em;height:.25em;vertical-align:middle;margin-right:.3em}\n"
	      "table.num{border-collapse:collapse;font-size:14px;margin:.6em 0}\n"
	      "table.num th,table.num td{padding:.25em .8em;border-bottom:1px solid #e4e4e4;text-align:right}\n"
	      "table.num th:first-child,table.num td:first-child{text-align:left}\n"
	      "table.num thead th{border-bottom:2px solid #bbb}\n"
	      ".note{color:#666;font-size:13px}\n"
	      "pre{background:#f5f5f5;padding:.6em;overflow-x:auto;font-size:12px}\n"
	      "</style>\n</head>\n<body>\n<h1>",
	      f);
	iapo_html_escape(f, title);
	fputs("</h1>\n", f);
}

iapo_status iapo_html_end(FILE *f)
{
	fputs("</body>\n</html>\n", f);
	if (fflush(f) != 0 || ferror(f)) return iapo_fail(IAPO_ERR_IO, "HTML: write failed");
	return IAPO_OK;
}

/* Colour-blind-friendly (Okabe-Ito, then a few more). */
static const char *const palette[] = {"#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00",
				      "#56b4e9", "#000000", "#8c564b", "#7f7f7f", "#bcbd22"};
#define N_PALETTE ((int)(sizeof palette / sizeof palette[0]))

const char *iapo_html_colour(int i)
{
	if (i < 0) i = -i;
	return palette[i % N_PALETTE];
}

const char *iapo_html_num(double v, int digits, char *buf, size_t n)
{
	if (!isfinite(v)) {
		snprintf(buf, n, "%s", isnan(v) ? "\xe2\x80\x93" : (v > 0 ? "inf" : "-inf"));
		return buf;
	}
	if (digits < 1) digits = 1;
	if (digits > 12) digits = 12;
	double a = fabs(v);
	if (v == 0) {
		snprintf(buf, n, "0");
	} else if (a >= 1e6 || a < 1e-3) {
		snprintf(buf, n, "%.*e", digits - 1, v);
	} else {
		/* decimals so that `digits` significant digits show, none below 1 */
		int mag = (int)floor(log10(a)) + 1; /* digits before the point */
		int dec = digits - mag;
		if (dec < 0) dec = 0;
		snprintf(buf, n, "%.*f", dec, v);
	}
	return buf;
}

/* A "nice" step (1, 2, 5 x 10^k) giving about `want` intervals over span. */
static double nice_step(double span, int want)
{
	double raw = span / want;
	double p = pow(10, floor(log10(raw)));
	double m = raw / p;
	double s = m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10;
	return s * p;
}

static void tick_label(double v, double step, char *buf, size_t n)
{
	if (fabs(v) < step * 1e-9) {
		snprintf(buf, n, "0");
		return;
	}
	double a = fabs(v);
	if (a >= 1e5 || a < 1e-3) {
		snprintf(buf, n, "%.2g", v);
		return;
	}
	int dec = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
	if (dec > 6) dec = 6;
	snprintf(buf, n, "%.*f", dec, v);
}

iapo_status iapo_svg_chart_write(FILE *f, const iapo_svg_chart *c)
{
	if (!c || c->n_series < 0 || (c->n_series > 0 && !c->series))
		return iapo_fail(IAPO_ERR_ARG, "chart: expected a chart with a series array");
	const int W = c->width > 0 ? c->width : 460, H = c->height > 0 ? c->height : 250;
	const double ml = 64, mr = 14, mt = 10, mb = 38;
	double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
	int drawn = 0;
	long points = 0;
	for (int s = 0; s < c->n_series; s++) {
		const iapo_svg_series *se = &c->series[s];
		int any = 0;
		for (int i = 0; i < se->n && se->y; i++) {
			double x = se->x ? se->x[i] : i, y = se->y[i];
			if (!isfinite(x) || !isfinite(y)) continue;
			any = 1;
			points++;
			if (x < xlo) xlo = x;
			if (x > xhi) xhi = x;
			if (y < ylo) ylo = y;
			if (y > yhi) yhi = y;
		}
		drawn += any;
	}
	fputs("<figure class=\"chart\">", f);
	if (c->title) {
		fputs("<figcaption>", f);
		iapo_html_escape(f, c->title);
		fputs("</figcaption>", f);
	}
	fprintf(f, "\n<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
		   "viewBox=\"0 0 %d %d\" role=\"img\" data-series=\"%d\" data-points=\"%ld\">\n",
		W, H, W, H, drawn, points);
	if (c->title) {
		fputs("<title>", f);
		iapo_html_escape(f, c->title);
		fputs("</title>\n", f);
	}
	fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#fff\" class=\"axis\"/>\n", ml, mt,
		W - ml - mr, H - mt - mb);
	if (!drawn) {
		fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">no data</text>\n</svg></figure>\n",
			(ml + W - mr) / 2, (mt + H - mb) / 2);
		return ferror(f) ? iapo_fail(IAPO_ERR_IO, "chart: write failed") : IAPO_OK;
	}
	/* a flat series or a single x still gets a visible range */
	if (yhi - ylo <= 1e-12 * fmax(1, fabs(yhi))) {
		double d = fabs(yhi) > 0 ? fabs(yhi) * 0.1 : 1;
		ylo -= d;
		yhi += d;
	}
	if (xhi - xlo <= 0) {
		xlo -= 1;
		xhi += 1;
	}
	double ys = nice_step(yhi - ylo, 5), xs = nice_step(xhi - xlo, 6);
	ylo = floor(ylo / ys) * ys;
	yhi = ceil(yhi / ys) * ys;
	const double pw = W - ml - mr, ph = H - mt - mb;
#define PX(x) (ml + ((x) - xlo) / (xhi - xlo) * pw)
#define PY(y) (mt + ph - ((y) - ylo) / (yhi - ylo) * ph)
	char lab[48];
	for (int k = 0;; k++) {
		double v = ylo + k * ys;
		if (v > yhi + ys * 1e-6 || k > 100) break;
		double y = PY(v);
		fprintf(f, "<line class=\"grid\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>", ml, ml + pw, y, y);
		tick_label(v, ys, lab, sizeof lab);
		fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n", ml - 4, y + 3.5, lab);
	}
	for (int k = (int)ceil(xlo / xs);; k++) {
		double v = k * xs;
		if (v > xhi + xs * 1e-6 || k > (int)ceil(xlo / xs) + 100) break;
		double x = PX(v);
		fprintf(f, "<line class=\"axis\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>", x, x, mt + ph, mt + ph + 4);
		tick_label(v, xs, lab, sizeof lab);
		fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n", x, mt + ph + 15, lab);
	}
	if (c->xlabel) {
		fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">", ml + pw / 2, (double)H - 4);
		iapo_html_escape(f, c->xlabel);
		fputs("</text>\n", f);
	}
	if (c->ylabel) {
		fprintf(f, "<text transform=\"translate(11 %.1f) rotate(-90)\" text-anchor=\"middle\">", mt + ph / 2);
		iapo_html_escape(f, c->ylabel);
		fputs("</text>\n", f);
	}
	for (int s = 0; s < c->n_series; s++) {
		const iapo_svg_series *se = &c->series[s];
		const char *col = iapo_html_colour(se->colour >= 0 ? se->colour : s);
		int run = 0, open = 0;
		for (int i = 0; i <= se->n && se->y; i++) {
			int ok = 0;
			double x = 0, y = 0;
			if (i < se->n) {
				x = se->x ? se->x[i] : i;
				y = se->y[i];
				ok = isfinite(x) && isfinite(y);
			}
			if (ok) {
				if (!open) {
					fprintf(f, "<path class=\"line\" stroke=\"%s\" d=\"M", col);
					open = 1;
					run = 0;
				} else {
					fputc('L', f);
				}
				fprintf(f, "%.1f %.1f", PX(x), PY(y));
				run++;
			} else if (open) {
				fputs("\"/>\n", f);
				open = 0;
				if (run == 1) { /* a lone point: a path of one point draws nothing */
					double px = se->x ? se->x[i - 1] : i - 1, py = se->y[i - 1];
					fprintf(f, "<circle r=\"2.2\" fill=\"%s\" cx=\"%.1f\" cy=\"%.1f\"/>\n", col, PX(px), PY(py));
				}
			}
		}
	}
#undef PX
#undef PY
	fputs("</svg>\n<div class=\"keys\">", f);
	for (int s = 0; s < c->n_series; s++) {
		const iapo_svg_series *se = &c->series[s];
		int any = 0;
		for (int i = 0; i < se->n && se->y && !any; i++) any = isfinite(se->x ? se->x[i] : i) && isfinite(se->y[i]);
		if (!any) continue;
		fprintf(f, "<span class=\"key\"><i style=\"background:%s\"></i>", iapo_html_colour(se->colour >= 0 ? se->colour : s));
		iapo_html_escape(f, se->name ? se->name : "");
		fputs("</span>", f);
	}
	fputs("</div></figure>\n", f);
	return ferror(f) ? iapo_fail(IAPO_ERR_IO, "chart: write failed") : IAPO_OK;
}
