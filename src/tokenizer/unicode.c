/*
 * unicode.c — the small character tables the tokenizer needs and no library
 * gives us in the right form: GPT-2's byte <-> code point mapping (byte-level
 * BPE spells every byte as a printable character), a strict UTF-8 decoder
 * that agrees with utf8proc and PCRE2 on what is invalid, and the two
 * whitespace sets that matter (Python's str.isspace for Jinja's trim, Unicode
 * White_Space for Rust's char::is_whitespace).
 * Normalisation itself is utf8proc's (encode.c); regexes are PCRE2's (regex.c).
 */
#include <stdint.h>

#include "tokenizer/tok_internal.h"

/* GPT-2 bytes_to_unicode: printable Latin-1 bytes stand for themselves, the
 * other 68 get 256, 257, ... in byte order: 0..32 -> 256..288,
 * 127..160 -> 289..322, 173 (soft hyphen) -> 323. */
static int printable_byte(int b) { return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255); }

int tok_byte_to_cp(int b)
{
	if (printable_byte(b)) return b;
	if (b <= 32) return 256 + b;
	if (b <= 160) return 289 + (b - 127);
	return 323;
}

int tok_cp_to_byte(uint32_t cp)
{
	if (cp < 256) return printable_byte((int)cp) ? (int)cp : -1;
	if (cp <= 288) return (int)cp - 256;
	if (cp <= 322) return (int)cp - 289 + 127;
	return cp == 323 ? 173 : -1;
}

int tok_utf8_char(const unsigned char *p, size_t n, uint32_t *cp)
{
	if (n == 0) return 0;
	unsigned c = p[0];
	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	int len;
	uint32_t v, min;
	if (c >= 0xC2 && c <= 0xDF) {
		len = 2;
		v = c & 0x1F;
		min = 0x80;
	} else if (c >= 0xE0 && c <= 0xEF) {
		len = 3;
		v = c & 0x0F;
		min = 0x800;
	} else if (c >= 0xF0 && c <= 0xF4) {
		len = 4;
		v = c & 0x07;
		min = 0x10000;
	} else {
		return 0;
	}
	if (n < (size_t)len) return 0;
	for (int i = 1; i < len; i++) {
		if ((p[i] & 0xC0) != 0x80) return 0;
		v = v << 6 | (p[i] & 0x3F);
	}
	if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
	*cp = v;
	return len;
}

int tok_utf8_put(char *dst, uint32_t cp)
{
	unsigned char *d = (unsigned char *)dst;
	if (cp < 0x80) {
		d[0] = (unsigned char)cp;
		return 1;
	}
	if (cp < 0x800) {
		d[0] = (unsigned char)(0xC0 | cp >> 6);
		d[1] = (unsigned char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		d[0] = (unsigned char)(0xE0 | cp >> 12);
		d[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
		d[2] = (unsigned char)(0x80 | (cp & 0x3F));
		return 3;
	}
	d[0] = (unsigned char)(0xF0 | cp >> 18);
	d[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
	d[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
	d[3] = (unsigned char)(0x80 | (cp & 0x3F));
	return 4;
}

int tok_is_white_space(uint32_t cp)
{
	return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
	       (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
	       cp == 0x3000;
}

int tok_py_isspace(uint32_t cp)
{
	/* Python adds the ASCII information separators (bidi class B/S). */
	return tok_is_white_space(cp) || (cp >= 0x1C && cp <= 0x1F);
}
