/*
 * test_text.c — core/text.h, the growable text buffer behind the safetensors
 * header, chat prompts, synthetic JSONL and the dataset's line reader:
 * appends keep the text NUL-terminated and grow by doubling; printf-style
 * appends of any length match snprintf; JSON string literals escape what
 * JSON requires (checked by parsing them back with cJSON, a parser we did not
 * write); an allocation failure is sticky and keeps what was there.
 */
#include <cjson/cJSON.h>

#include "core/mem.h"
#include "core/text.h"
#include "test.h"

static void test_put_and_grow(void)
{
	iapo_text t = {0};
	CHECK(iapo_text_put(&t, "", 0) == IAPO_OK && t.p && t.p[0] == '\0' && t.len == 0, "empty put allocates the NUL");
	CHECK(t.cap == 256, "first capacity %zu", t.cap);
	char want[1000];
	for (int i = 0; i < 999; i++) {
		char c = (char)('a' + i % 26);
		CHECK(iapo_text_put(&t, &c, 1) == IAPO_OK, "put %d", i);
		want[i] = c;
	}
	want[999] = '\0';
	CHECK(t.len == 999 && !strcmp(t.p, want), "999 single-byte appends: len %zu", t.len);
	CHECK(t.cap == 1024, "capacity doubles: %zu", t.cap);
	unsigned long before = iapo_mem_alloc_count();
	t.len = 0;
	CHECK(iapo_text_puts(&t, "reused") == IAPO_OK && !strcmp(t.p, "reused"), "reset and reuse");
	CHECK(iapo_mem_alloc_count() == before, "reuse allocates nothing");
	/* Embedded NULs are kept: len counts them. */
	iapo_text_put(&t, "x\0y", 3);
	CHECK(t.len == 9 && t.p[7] == '\0' && t.p[8] == 'y' && t.p[9] == '\0', "embedded NUL");
	iapo_text_free(&t);
	CHECK(!t.p && !t.len && !t.cap && !t.failed, "free zeroes");

	iapo_text big = {0};
	CHECK(iapo_text_put_n(&big, "ab", 2, 1 << 16) == IAPO_OK && big.cap == 1 << 16, "first capacity hint: %zu",
	      big.cap);
	iapo_text_free(&big);
}

static void test_fmt(void)
{
	iapo_text t = {0};
	iapo_text_fmt(&t, "%d-%s", 42, "x");
	CHECK(!strcmp(t.p, "42-x"), "short fmt: %s", t.p);
	/* Longer than fmt's 256-byte stack buffer, at an offset: formatted in place. */
	char arg[700], want[800];
	for (int i = 0; i < 699; i++) arg[i] = (char)('A' + i % 26);
	arg[699] = '\0';
	snprintf(want, sizeof want, "42-x[%s]%d", arg, -7);
	CHECK(iapo_text_fmt(&t, "[%s]%d", arg, -7) == IAPO_OK, "long fmt");
	CHECK(t.len == strlen(want) && !strcmp(t.p, want), "long fmt text (len %zu vs %zu)", t.len, strlen(want));
	iapo_text_free(&t);
}

static void test_json_string(void)
{
	const char *cases[] = {"plain", "quote \" and backslash \\", "tab\tnewline\ncr\r bell\x07 esc\x1b",
			       "UTF-8: \xc3\xa9\xe4\xb8\xad\xf0\x9f\x98\x80", ""};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		iapo_text t = {0};
		CHECK(iapo_text_json_string(&t, cases[i]) == IAPO_OK, "case %zu", i);
		cJSON *j = cJSON_Parse(t.p);
		CHECK(j && cJSON_IsString(j) && !strcmp(j->valuestring, cases[i]), "case %zu round-trips through cJSON: %s",
		      i, t.p);
		for (size_t k = 0; k < t.len; k++)
			CHECK((unsigned char)t.p[k] >= 0x20, "case %zu: raw control byte at %zu", i, k);
		cJSON_Delete(j);
		iapo_text_free(&t);
	}
}

static void test_failure_is_sticky(void)
{
	iapo_text t = {0};
	iapo_text_puts(&t, "kept");
	char big[300];
	memset(big, 'z', sizeof big);
	iapo_mem_fail_after(1);
	CHECK(iapo_text_put(&t, big, sizeof big) == IAPO_ERR_NOMEM, "growth fails");
	iapo_mem_fail_after(0);
	CHECK(t.failed && t.len == 4 && !strcmp(t.p, "kept"), "the text before the failure is kept");
	CHECK(iapo_text_puts(&t, "x") == IAPO_ERR_NOMEM && t.len == 4, "later appends do nothing");
	CHECK(iapo_text_fmt(&t, "%d", 1) == IAPO_ERR_NOMEM && t.len == 4, "later fmt does nothing");
	iapo_text_free(&t);
	CHECK(iapo_text_puts(&t, "again") == IAPO_OK && !strcmp(t.p, "again"), "free clears the failure");
	iapo_text_free(&t);

	/* A failure on the first allocation leaves p NULL. */
	iapo_mem_fail_after(1);
	CHECK(iapo_text_puts(&t, "a") == IAPO_ERR_NOMEM && !t.p && t.failed, "first allocation fails");
	iapo_mem_fail_after(0);
	iapo_text_free(&t);
}

int main(void)
{
	RUN(test_put_and_grow);
	RUN(test_fmt);
	RUN(test_json_string);
	RUN(test_failure_is_sticky);
	TEST_END();
}
