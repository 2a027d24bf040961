#!/bin/sh
# `iapo tokenize` on the real Qwen3 tokenizer (fixture from
# tests/oracle/make_tokenizer_golden.sh): ids of known text, decode back,
# chat template ids, --help, and the exit status and message of each error.
FIX=${IAPO_FIXTURES:-build/fixtures}
MODEL="$FIX/qwen3-tokenizer"
. "$(dirname "$0")/lib_cli.sh"
cli_tmp cli_tokenize

# Encode: ids per line (known from the HF tokenizer), nothing on stderr.
printf 'Hello, world!\n<|im_start|>user\n\nIt'"'"'s 12\n' >"$T/in.txt"
"$BIN" tokenize --model "$MODEL" <"$T/in.txt" >"$T/ids.txt" 2>"$T/err.txt"; rc=$?
printf '9707 11 1879 0\n151644 872\n\n2132 594 220 16 17\n' >"$T/want.txt"
[ $rc -eq 0 ] && cmp -s "$T/ids.txt" "$T/want.txt" && [ ! -s "$T/err.txt" ] && ok encode || bad encode

# Decode gives the lines back.
"$BIN" tokenize --model "$MODEL" --decode <"$T/ids.txt" >"$T/back.txt" 2>"$T/err.txt"; rc=$?
[ $rc -eq 0 ] && cmp -s "$T/back.txt" "$T/in.txt" && [ ! -s "$T/err.txt" ] && ok decode-round-trip || bad decode-round-trip

# UTF-8 and whitespace round-trip through the CLI too.
printf 'café  naïve\t中文 👍🏽\n   \nx  \n' >"$T/u.txt"
"$BIN" tokenize --model "$MODEL" <"$T/u.txt" | "$BIN" tokenize --model "$MODEL" --decode >"$T/u2.txt"
cmp -s "$T/u.txt" "$T/u2.txt" && ok utf8-round-trip || bad utf8-round-trip

# --skip-special leaves <|im_start|>/<|im_end|> out.
out=$(echo "151644 872 198 151645" | "$BIN" tokenize --model "$MODEL" --decode --skip-special)
[ "$out" = "user" ] && ok skip-special || bad skip-special

# --chat: the ChatML prompt's ids.
out=$(echo "What is 2+2?" | "$BIN" tokenize --model "$MODEL" --chat --system "You are a helpful assistant.")
[ "$out" = "151644 8948 198 2610 525 264 10950 17847 13 151645 198 151644 872 198 3838 374 220 17 10 17 30 151645 198 151644 77091 198" ] &&
	ok chat || bad chat

# --help: usage on stdout, exit 0.
out=$("$BIN" tokenize --help) && echo "$out" | grep -q "usage: iapo tokenize" && ok help || bad help

# A bad id: exit 1, the message names the line.
printf '1 2\n3 abc\n' | "$BIN" tokenize --model "$MODEL" --decode >/dev/null 2>"$T/err.txt"; rc=$?
[ $rc -eq 1 ] && grep -q "line 2" "$T/err.txt" && grep -q "abc" "$T/err.txt" && ok bad-id || bad bad-id
printf '5\n999999999\n' | "$BIN" tokenize --model "$MODEL" --decode >/dev/null 2>"$T/err.txt"; rc=$?
[ $rc -eq 1 ] && grep -q "line 2" "$T/err.txt" && ok id-out-of-range || bad id-out-of-range

# Missing --model: usage error, exit 2.
echo hi | "$BIN" tokenize >/dev/null 2>"$T/err.txt"; rc=$?
[ $rc -eq 2 ] && grep -q -- "--model" "$T/err.txt" && ok missing-model || bad missing-model
echo hi | "$BIN" tokenize --model "$MODEL" --frobnicate >/dev/null 2>&1; [ $? -eq 2 ] && ok unknown-option || bad unknown-option

# A directory without a tokenizer: exit 1, the file named.
echo hi | "$BIN" tokenize --model "$T/nowhere" >/dev/null 2>"$T/err.txt"; rc=$?
[ $rc -eq 1 ] && grep -q "nowhere/tokenizer.json" "$T/err.txt" && ok missing-tokenizer || bad missing-tokenizer

cli_done
