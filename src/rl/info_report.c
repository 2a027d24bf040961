/*
 * info_report.c — the TSV and HTML writers of info_report.h. Colours: red for
 * negative gain (the token made the answer less certain), blue for positive
 * (more certain), white at 0, the intensity proportional to |S_t| / max |S|
 * over the completion.
 */
#include "rl/info_report.h"

#include <math.h>
#include <string.h>
#include <utf8proc.h>

#include "core/mem.h"
#include "core/status.h"
#include "rl/iapo_adv.h"

/* Length of the valid UTF-8 character at s (n bytes left), 0 if invalid or cut. */
static int utf8_char(const unsigned char *s, size_t n)
{
	utf8proc_int32_t cp;
	utf8proc_ssize_t r = utf8proc_iterate(s, (utf8proc_ssize_t)(n < 4 ? n : 4), &cp);
	return r > 0 ? (int)r : 0;
}

size_t iapo_info_tsv_escape(const char *s, size_t n, char *out)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *u = (const unsigned char *)s;
	size_t o = 0;
	for (size_t i = 0; i < n;) {
		unsigned char c = u[i];
		if (c == '\\' || c == '\t' || c == '\n' || c == '\r') {
			out[o++] = '\\';
			out[o++] = c == '\\' ? '\\' : c == '\t' ? 't' : c == '\n' ? 'n' : 'r';
			i++;
		} else if (c >= 0x20 && c < 0x7f) {
			out[o++] = (char)c;
			i++;
		} else {
			int k = c >= 0x80 ? utf8_char(u + i, n - i) : 0;
			if (k > 1) {
				memcpy(out + o, u + i, (size_t)k);
				o += (size_t)k;
				i += (size_t)k;
			} else {
				out[o++] = '\\';
				out[o++] = 'x';
				out[o++] = hex[c >> 4];
				out[o++] = hex[c & 15];
				i++;
			}
		}
	}
	out[o] = 0;
	return o;
}

iapo_status iapo_info_tsv_write(FILE *f, const iapo_info_report *r)
{
	fputs("pos\ttoken_id\ttoken\tanswer_entropy\tinfo_gain\tpolicy_entropy\n", f);
	size_t cap = 0;
	char *buf = NULL;
	for (int t = 0; t < r->L; t++) {
		size_t need = 4 * r->text_len[t] + 1;
		if (need > cap) {
			char *nb = iapo_realloc(buf, need);
			if (!nb) {
				iapo_free(buf);
				return iapo_fail(IAPO_ERR_NOMEM, "info TSV: out of memory");
			}
			buf = nb;
			cap = need;
		}
		iapo_info_tsv_escape(r->text[t], r->text_len[t], buf);
		fprintf(f, "%d\t%d\t%s\t%.6f\t%.6f\t%.6f\n", t, r->ids[t], buf, (double)r->E[t], (double)r->S[t],
			(double)r->C[t]);
	}
	iapo_free(buf);
	return ferror(f) ? iapo_fail(IAPO_ERR_IO, "info TSV: write failed") : IAPO_OK;
}

static void html_escape(FILE *f, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		switch (s[i]) {
		case '&': fputs("&amp;", f); break;
		case '<': fputs("&lt;", f); break;
		case '>': fputs("&gt;", f); break;
		case '"': fputs("&quot;", f); break;
		case '\'': fputs("&#39;", f); break;
		default: fputc(s[i], f);
		}
	}
}

/* Text bytes to HTML: valid characters escaped, invalid bytes as U+FFFD, a
 * newline as a visible mark and a break. An incomplete character at the end
 * of s goes to carry (at most 3 bytes) unless last. */
static void html_text(FILE *f, const unsigned char *s, size_t n, unsigned char *carry, int *ncarry, int last)
{
	*ncarry = 0;
	for (size_t i = 0; i < n;) {
		unsigned char c = s[i];
		if (c == '\n') {
			fputs("<span class=\"nl\">\xe2\x86\xb5</span>\n", f);
			i++;
			continue;
		}
		if (c == '\t' || (c >= 0x20 && c < 0x7f)) {
			html_escape(f, (const char *)s + i, 1);
			i++;
			continue;
		}
		int need = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
		if (need && i + (size_t)need > n && !last) {
			int cont = 1;
			for (size_t j = i + 1; j < n; j++) cont &= s[j] >= 0x80 && s[j] <= 0xBF;
			if (cont) {
				*ncarry = (int)(n - i);
				memcpy(carry, s + i, n - i);
				return;
			}
		}
		int k = need ? utf8_char(s + i, n - i) : 0;
		if (k == need && k > 0) {
			fwrite(s + i, 1, (size_t)k, f);
			i += (size_t)k;
		} else {
			fputs("\xef\xbf\xbd", f);
			i++;
		}
	}
}

/* Background for gain g on the scale m: blue above 0, red below, white at 0. */
static void colour(double g, double m, int rgb[3])
{
	static const int pos[3] = {33, 102, 172}, neg[3] = {178, 24, 43};
	double a = m > 0 ? fabs(g) / m : 0;
	if (a > 1) a = 1;
	a *= 0.8; /* keep the darkest shade readable under black text */
	const int *base = g >= 0 ? pos : neg;
	for (int i = 0; i < 3; i++) rgb[i] = (int)lround(255.0 + (base[i] - 255.0) * a);
}

iapo_status iapo_info_html_write(FILE *f, const iapo_info_report *r)
{
	const int L = r->L;
	double m = 0, sum = 0, best = -INFINITY;
	int near = 0, best_t = -1;
	for (int t = 0; t < L; t++) {
		double g = r->S[t];
		if (fabs(g) > m) m = fabs(g);
		sum += g;
		near += fabs(g) < IAPO_NEAR_ZERO_GAIN;
		if (g > best) {
			best = g;
			best_t = t;
		}
	}
	int lo[3], hi[3];
	colour(-1, 1, lo);
	colour(1, 1, hi);
	fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
	      "<title>iapo info: information gain per token</title>\n<style>\n"
	      "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2em auto;max-width:62em;"
	      "padding:0 1em;color:#222}\n"
	      "h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.6em}\n"
	      ".text{white-space:pre-wrap;overflow-wrap:anywhere;font-family:ui-monospace,Menlo,Consolas,monospace;"
	      "font-size:14px;line-height:1.8}\n"
	      ".prompt{background:#f3f3f3;padding:.8em;border-radius:4px}\n"
	      ".tok{border-radius:2px;padding:1px 0}\n.tok:hover{outline:1px solid #222}\n"
	      ".nl{color:#aaa}\n"
	      ".legend{display:flex;align-items:center;gap:.6em;font-size:13px;margin:.6em 0}\n",
	      f);
	fprintf(f, ".bar{width:18em;height:1em;border:1px solid #ccc;background:linear-gradient(to right,"
		   "rgb(%d,%d,%d),#fff,rgb(%d,%d,%d))}\n",
		lo[0], lo[1], lo[2], hi[0], hi[1], hi[2]);
	fputs("table.sum td{padding:.1em 1.2em .1em 0}\n.note{color:#666;font-size:13px}\n</style>\n</head>\n<body>\n"
	      "<h1>Information gain per token</h1>\n<p class=\"note\">model: ",
	      f);
	html_escape(f, r->model ? r->model : "", r->model ? strlen(r->model) : 0);
	fputs("</p>\n<h2>Prompt</h2>\n<div class=\"text prompt\">", f);
	{
		unsigned char carry[4];
		int nc = 0;
		const char *p = r->prompt_text ? r->prompt_text : "";
		html_text(f, (const unsigned char *)p, strlen(p), carry, &nc, 1);
	}
	fprintf(f, "</div>\n<h2>Completion (%d tokens)</h2>\n<div class=\"legend\"><span>gain &minus;%.4g</span>"
		   "<span class=\"bar\"></span><span>+%.4g nats</span>"
		   "<span class=\"note\">blue: the token made the answer more certain (S<sub>t</sub> = E<sub>t</sub> "
		   "&minus; E<sub>t+1</sub> &gt; 0); red: less certain. Hover a token for E<sub>t</sub>, "
		   "S<sub>t</sub>, C<sub>t</sub> and its advantage A<sub>t</sub> (shown with A<sub>i</sub> = %g and a "
		   "correct answer).</span></div>\n<div class=\"text\">",
		L, m, m, (double)r->display_A);
	unsigned char carry[8];
	int nc = 0;
	for (int t = 0; t < L; t++) {
		int rgb[3];
		colour(r->S[t], m, rgb);
		fprintf(f,
			"<span class=\"tok\" style=\"background:rgb(%d,%d,%d)\" title=\"t=%d  id=%d&#10;E_t=%.4f  "
			"S_t=%+.4f  C_t=%.4f&#10;S&#770;_t=%+.4f  C&#770;_t=%+.4f  A_t=%+.4f\">",
			rgb[0], rgb[1], rgb[2], t, r->ids[t], (double)r->E[t], (double)r->S[t], (double)r->C[t],
			(double)r->S_hat[t], (double)r->C_hat[t], (double)r->adv[t]);
		size_t n = (size_t)nc + r->text_len[t];
		unsigned char *buf = iapo_malloc(n ? n : 1);
		if (!buf) return iapo_fail(IAPO_ERR_NOMEM, "info HTML: out of memory");
		memcpy(buf, carry, (size_t)nc);
		memcpy(buf + nc, r->text[t], r->text_len[t]);
		html_text(f, buf, n, carry, &nc, t == L - 1);
		iapo_free(buf);
		fputs("</span>", f);
	}
	fputs("</div>\n<h2>Summary</h2>\n<table class=\"sum\">\n", f);
	fprintf(f, "<tr><td>answer entropy before the completion, E<sub>0</sub></td><td>%.4f nats</td></tr>\n",
		(double)r->E[0]);
	fprintf(f, "<tr><td>answer entropy after it, E<sub>L</sub></td><td>%.4f nats</td></tr>\n", (double)r->E[L]);
	fprintf(f, "<tr><td>total information gain &Sigma; S<sub>t</sub></td><td>%.4f nats</td></tr>\n", sum);
	fprintf(f, "<tr><td>mean gain per token</td><td>%.4f nats</td></tr>\n", L ? sum / L : 0.0);
	fprintf(f, "<tr><td>tokens with near-zero gain (|S<sub>t</sub>| &lt; %g)</td><td>%d of %d (%.0f%%)</td></tr>\n",
		IAPO_NEAR_ZERO_GAIN, near, L, L ? 100.0 * near / L : 0.0);
	if (best_t >= 0) {
		fprintf(f, "<tr><td>largest gain</td><td>%.4f nats at t = %d (", best, best_t);
		char *esc = iapo_malloc(4 * r->text_len[best_t] + 1);
		if (esc) {
			size_t k = iapo_info_tsv_escape(r->text[best_t], r->text_len[best_t], esc);
			html_escape(f, esc, k);
			iapo_free(esc);
		}
		fputs(")</td></tr>\n", f);
	}
	fputs("</table>\n<p class=\"note\">", f);
	html_escape(f, r->settings ? r->settings : "", r->settings ? strlen(r->settings) : 0);
	fputs("</p>\n</body>\n</html>\n", f);
	return ferror(f) ? iapo_fail(IAPO_ERR_IO, "info HTML: write failed") : IAPO_OK;
}
