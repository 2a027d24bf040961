/*
 * info_report.h — what `iapo info` writes about one prompt + completion: a TSV
 * of the per-token numbers and a self-contained HTML heat map of the
 * information gain (no scripts, no network: inline CSS, one <span> per
 * completion token coloured on a diverging scale, the numbers in each span's
 * title attribute, a legend and a summary).
 *
 * Token texts are raw bytes (a byte-level BPE token may hold part of a UTF-8
 * character). The TSV escapes backslash, tab, newline, carriage return, other
 * control bytes and bytes that are not valid UTF-8 (\\ \t \n \r \xHH), so
 * each row stays one line of six fields. The HTML shows a character split
 * across tokens in the span of the token that completes it, invalid bytes as
 * U+FFFD, a newline as a visible ↵ followed by a line break; everything is
 * HTML-escaped.
 * Left out: computing the numbers (rl/info.h, rl/iapo_adv.h), the CLI
 * (tools/cmd_info.c), plots over many completions.
 */
#ifndef IAPO_RL_INFO_REPORT_H
#define IAPO_RL_INFO_REPORT_H

#include <stddef.h>
#include <stdio.h>

#include "iapo.h"

typedef struct {
	const char *model;       /* shown in the page header */
	const char *prompt_text; /* the prompt as given (before any chat template) */
	const char *settings;    /* one line describing the options, shown under the summary */
	int L;                   /* completion tokens */
	const int *ids;          /* (L) */
	const char *const *text; /* (L) bytes of each token */
	const size_t *text_len;  /* (L) */
	const float *E;          /* (L+1) answer entropies E_0..E_L */
	const float *S;          /* (L) information gain S_t */
	const float *C;          /* (L) policy entropies C_t */
	const float *S_hat, *C_hat; /* (L) normalised terms */
	const float *adv;        /* (L) token advantages */
	float display_A;         /* the sequence advantage used for adv (shown in the legend) */
} iapo_info_report;

/* Header "pos\ttoken_id\ttoken\tanswer_entropy\tinfo_gain\tpolicy_entropy",
 * then one row per token (E_t, S_t, C_t with 6 decimals). IAPO_ERR_IO when
 * writing fails (the caller names the file). */
iapo_status iapo_info_tsv_write(FILE *f, const iapo_info_report *r);
/* The HTML page. IAPO_ERR_IO when writing fails. */
iapo_status iapo_info_html_write(FILE *f, const iapo_info_report *r);

/* Appends the TSV escape of n bytes to out (at most 4 * n + 1 bytes, NUL-
 * terminated); returns the length written. Exposed for tests. */
size_t iapo_info_tsv_escape(const char *s, size_t n, char *out);

#endif
