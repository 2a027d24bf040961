#!/bin/sh
# `iapo data synth` and `iapo data tokenizer`: files written and their row
# counts, determinism across runs and a different seed, a tokenizer that
# `iapo tokenize` uses to round-trip a trace, --help, and the exit status
# and message of each bad option (2) or bad input (1).
BIN=${IAPO_BIN:-build/iapo}
TMP=${IAPO_TMP:-/tmp}/cli_data.$$
mkdir -p "$TMP"
trap 'rm -rf "$TMP"' EXIT
pass=0; fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; }

# synth: the three files, the asked-for row counts, a summary on stdout.
"$BIN" data synth --out "$TMP/a" --seed 3 --train 120 --test 30 --steps 2-3 --redundancy 0.6 >"$TMP/out.txt" 2>"$TMP/err.txt"; rc=$?
[ $rc -eq 0 ] && [ "$(wc -l <"$TMP/a/train.jsonl")" -eq 120 ] && [ "$(wc -l <"$TMP/a/test.jsonl")" -eq 30 ] &&
	[ -s "$TMP/a/meta.json" ] && grep -q "redundant share" "$TMP/out.txt" && [ ! -s "$TMP/err.txt" ] && ok synth || bad synth
grep -q '"completion":"<think>' "$TMP/a/train.jsonl" && grep -q '"spans":\[\[0,8,"format"\]' "$TMP/a/train.jsonl" &&
	grep -q '"min_steps":[[:space:]]*2' "$TMP/a/meta.json" && ok synth-layout || bad synth-layout

# Same seed: the same bytes; another seed: other problems.
"$BIN" data synth --out "$TMP/b" --seed 3 --train 120 --test 30 --steps 2-3 --redundancy 0.6 >/dev/null 2>&1
"$BIN" data synth --out "$TMP/c" --seed 4 --train 120 --test 30 --steps 2-3 --redundancy 0.6 >/dev/null 2>&1
cmp -s "$TMP/a/train.jsonl" "$TMP/b/train.jsonl" && cmp -s "$TMP/a/test.jsonl" "$TMP/b/test.jsonl" &&
	cmp -s "$TMP/a/meta.json" "$TMP/b/meta.json" && ok synth-deterministic || bad synth-deterministic
! cmp -s "$TMP/a/train.jsonl" "$TMP/c/train.jsonl" && ok synth-seed || bad synth-seed

# --steps N means exactly N.
"$BIN" data synth --out "$TMP/d" --train 20 --test 0 --steps 5 >/dev/null 2>&1 &&
	[ "$(grep -c '"n_steps":5' "$TMP/d/train.jsonl")" -eq 20 ] && [ ! -s "$TMP/d/test.jsonl" ] && ok synth-steps || bad synth-steps

# tokenizer: written, loadable by `iapo tokenize`, round-trips a trace.
"$BIN" data tokenizer --data "$TMP/a/train.jsonl" --data "$TMP/a/test.jsonl" --vocab 600 --out "$TMP/tok" >"$TMP/out.txt" 2>"$TMP/err.txt"; rc=$?
[ $rc -eq 0 ] && [ -s "$TMP/tok/tokenizer.json" ] && [ -s "$TMP/tok/tokenizer_config.json" ] &&
	grep -q "bytes/token" "$TMP/out.txt" && grep -q "150 rows" "$TMP/out.txt" && ok tokenizer || bad tokenizer
printf 'Tom has 7 apples. <think>\n7 + 5 = 12.</think><answer>12</answer>\n' >"$TMP/line.txt"
"$BIN" tokenize --model "$TMP/tok" <"$TMP/line.txt" | "$BIN" tokenize --model "$TMP/tok" --decode >"$TMP/back.txt"
cmp -s "$TMP/line.txt" "$TMP/back.txt" && ok tokenizer-round-trip || bad tokenizer-round-trip
"$BIN" data tokenizer --data "$TMP/a/train.jsonl" --data "$TMP/a/test.jsonl" --vocab 600 --out "$TMP/tok2" >/dev/null 2>&1
cmp -s "$TMP/tok/tokenizer.json" "$TMP/tok2/tokenizer.json" && ok tokenizer-deterministic || bad tokenizer-deterministic

# --help: usage on stdout, exit 0.
"$BIN" data --help | grep -q "usage: iapo data" && ok help || bad help
"$BIN" data synth --help | grep -q "usage: iapo data synth" && ok help-synth || bad help-synth
"$BIN" data tokenizer --help | grep -q "usage: iapo data tokenizer" && ok help-tokenizer || bad help-tokenizer

# Usage errors: exit 2, the option named.
usage() { # name expected-text args...
	name=$1; want=$2; shift 2
	"$BIN" "$@" >/dev/null 2>"$TMP/err.txt"; rc=$?
	[ $rc -eq 2 ] && grep -q -- "$want" "$TMP/err.txt" && ok "$name" || { bad "$name"; cat "$TMP/err.txt"; }
}
usage no-subcommand "usage" data
usage bad-subcommand "frob" data frob
usage synth-no-out "--out" data synth --train 5
usage synth-unknown "--frobnicate" data synth --out "$TMP/x" --frobnicate
usage synth-steps-zero "--steps" data synth --out "$TMP/x" --steps 0-3
usage synth-steps-reversed "--steps" data synth --out "$TMP/x" --steps 4-2
usage synth-steps-high "--steps" data synth --out "$TMP/x" --steps 2-9
usage synth-steps-text "--steps" data synth --out "$TMP/x" --steps two
usage synth-redundancy "--redundancy" data synth --out "$TMP/x" --redundancy 1.5
usage synth-train-zero "--train" data synth --out "$TMP/x" --train 0
usage synth-test-negative "--test" data synth --out "$TMP/x" --test -1
usage synth-max-value "--max-value" data synth --out "$TMP/x" --max-value 5
usage synth-seed "--seed" data synth --out "$TMP/x" --seed -3
usage synth-missing-value "--seed" data synth --out "$TMP/x" --seed
usage tok-no-data "--data" data tokenizer --out "$TMP/x"
usage tok-no-out "--out" data tokenizer --data "$TMP/a/train.jsonl"
usage tok-vocab "--vocab" data tokenizer --data "$TMP/a/train.jsonl" --out "$TMP/x" --vocab 100
[ ! -e "$TMP/x" ] && ok usage-writes-nothing || bad usage-writes-nothing

# Bad input: exit 1, the file and line named.
"$BIN" data tokenizer --data "$TMP/nowhere.jsonl" --out "$TMP/y" >/dev/null 2>"$TMP/err.txt"; rc=$?
[ $rc -eq 1 ] && grep -q "nowhere.jsonl" "$TMP/err.txt" && ok tok-missing-file || bad tok-missing-file
printf '{"prompt": "a"}\n{"answer": "1"}\n' >"$TMP/bad.jsonl"
"$BIN" data tokenizer --data "$TMP/bad.jsonl" --out "$TMP/y" >/dev/null 2>"$TMP/err.txt"; rc=$?
[ $rc -eq 1 ] && grep -q "bad.jsonl: line 2" "$TMP/err.txt" && grep -q "prompt" "$TMP/err.txt" && ok tok-bad-row || bad tok-bad-row
# An output path that is a file: exit 1.
: >"$TMP/file"
"$BIN" data synth --out "$TMP/file" --train 5 --test 1 >/dev/null 2>"$TMP/err.txt"; rc=$?
[ $rc -eq 1 ] && grep -q "file" "$TMP/err.txt" && ok synth-out-is-file || bad synth-out-is-file

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
