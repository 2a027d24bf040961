/*
 * test_info_report.c — the `iapo info` writers (rl/info_report.h): TSV
 * escaping of backslash, tab, newline, CR, control and invalid UTF-8 bytes
 * (valid multi-byte characters kept); the TSV's rows; the HTML's escaping, a
 * UTF-8 character split across two tokens shown whole in the second span,
 * a dangling partial character at the end shown as U+FFFD, the colour of
 * zero, positive and negative gains, one span per token.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rl/info_report.h"
#include "test.h"

static void test_escape(void)
{
	char out[128];
	const char in[] = "a\tb\\c\nd\re\x01\x7f\xff\xc3\xa9z\xe2\x82";
	size_t n = iapo_info_tsv_escape(in, sizeof in - 1, out);
	const char *want = "a\\tb\\\\c\\nd\\re\\x01\\x7f\\xff\xc3\xa9z\\xe2\\x82";
	CHECK(!strcmp(out, want) && n == strlen(want), "escape: got '%s'", out);
	CHECK(iapo_info_tsv_escape("", 0, out) == 0 && out[0] == 0, "empty");
}

static char *render(int html, const iapo_info_report *r, size_t *len)
{
	char *buf = NULL;
	FILE *f = open_memstream(&buf, len);
	if (!f) return NULL;
	iapo_status st = html ? iapo_info_html_write(f, r) : iapo_info_tsv_write(f, r);
	fclose(f);
	CHECK(st == IAPO_OK, "write");
	return buf;
}

static void test_writers(void)
{
	/* tokens: "<", a split "é" (\xc3 | \xa9), "&\n", "ok", and a dangling \xe2 */
	const char *text[5] = {"<", "\xc3", "\xa9&\n", "ok", "\xe2"};
	size_t tl[5] = {1, 1, 3, 2, 1};
	int ids[5] = {60, 195, 169, 7, 226};
	float E[6] = {2.0f, 1.5f, 1.5f, 2.0f, 1.0f, 0.5f};
	float S[5] = {0.5f, 0.0f, -0.5f, 1.0f, 0.5f}, C[5] = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f};
	float z[5] = {0}, adv[5] = {1, 1, 1, 1, 1};
	iapo_info_report r = {.model = "m<1>", .prompt_text = "Q: \"x\" & y", .settings = "s&t", .L = 5,
			      .ids = ids, .text = text, .text_len = tl, .E = E, .S = S, .C = C, .S_hat = z,
			      .C_hat = z, .adv = adv, .display_A = 1.0f};
	size_t n = 0;
	char *tsv = render(0, &r, &n);
	if (tsv) {
		const char *want = "pos\ttoken_id\ttoken\tanswer_entropy\tinfo_gain\tpolicy_entropy\n"
				   "0\t60\t<\t2.000000\t0.500000\t0.100000\n"
				   "1\t195\t\\xc3\t1.500000\t0.000000\t0.200000\n"
				   "2\t169\t\\xa9&\\n\t1.500000\t-0.500000\t0.300000\n"
				   "3\t7\tok\t2.000000\t1.000000\t0.400000\n"
				   "4\t226\t\\xe2\t1.000000\t0.500000\t0.500000\n";
		CHECK(!strcmp(tsv, want), "tsv:\n%s", tsv);
		free(tsv);
	}
	char *h = render(1, &r, &n);
	if (!h) return;
	int spans = 0;
	for (const char *p = h; (p = strstr(p, "class=\"tok\"")); p++) spans++;
	CHECK(spans == 5, "spans %d", spans);
	CHECK(strstr(h, "m&lt;1&gt;") && strstr(h, "Q: &quot;x&quot; &amp; y") && strstr(h, "s&amp;t"),
	      "model, prompt and settings escaped");
	CHECK(strstr(h, ">&lt;</span>") != NULL, "'<' escaped in its span");
	CHECK(strstr(h, "\">\xc3\xa9&amp;<span class=\"nl\">") != NULL, "split character shown whole in span 2");
	CHECK(strstr(h, "\"></span><span") != NULL, "span 1 (first byte only) is empty");
	CHECK(strstr(h, "\">\xef\xbf\xbd</span></div>") != NULL, "dangling partial character at the end: U+FFFD");
	CHECK(strstr(h, "background:rgb(255,255,255)") != NULL, "zero gain is white");
	CHECK(strstr(h, "background:rgb(77,133,189)") != NULL, "largest positive gain: 80%% blue");
	CHECK(strstr(h, "background:rgb(224,163,170)") != NULL, "half the largest negative: 40%% red");
	CHECK(!strstr(h, "<script") && strstr(h, "</html>"), "static page");
	free(h);
}

int main(void)
{
	RUN(test_escape);
	RUN(test_writers);
	TEST_END();
}
