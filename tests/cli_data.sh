#!/bin/sh
# `iapo data synth` and `iapo data tokenizer`: files written and their row
# counts, determinism across runs and a different seed, a tokenizer that
# `iapo tokenize` uses to round-trip a trace, --help, and the exit status
# and message of each bad option (2) or bad input (1).
. "$(dirname "$0")/lib_cli.sh"
cli_tmp cli_data

# synth: the three files, the asked-for row counts, a summary on stdout.
"$BIN" data synth --out "$T/a" --seed 3 --train 120 --test 30 --steps 2-3 --redundancy 0.6 >"$T/out.txt" 2>"$T/err.txt"; rc=$?
[ $rc -eq 0 ] && [ "$(wc -l <"$T/a/train.jsonl")" -eq 120 ] && [ "$(wc -l <"$T/a/test.jsonl")" -eq 30 ] &&
	[ -s "$T/a/meta.json" ] && grep -q "redundant share" "$T/out.txt" && [ ! -s "$T/err.txt" ] && ok synth || bad synth
grep -q '"completion":"<think>' "$T/a/train.jsonl" && grep -q '"spans":\[\[0,8,"format"\]' "$T/a/train.jsonl" &&
	grep -q '"min_steps":[[:space:]]*2' "$T/a/meta.json" && ok synth-layout || bad synth-layout

# Same seed: the same bytes; another seed: other problems.
"$BIN" data synth --out "$T/b" --seed 3 --train 120 --test 30 --steps 2-3 --redundancy 0.6 >/dev/null 2>&1
"$BIN" data synth --out "$T/c" --seed 4 --train 120 --test 30 --steps 2-3 --redundancy 0.6 >/dev/null 2>&1
cmp -s "$T/a/train.jsonl" "$T/b/train.jsonl" && cmp -s "$T/a/test.jsonl" "$T/b/test.jsonl" &&
	cmp -s "$T/a/meta.json" "$T/b/meta.json" && ok synth-deterministic || bad synth-deterministic
! cmp -s "$T/a/train.jsonl" "$T/c/train.jsonl" && ok synth-seed || bad synth-seed

# --steps N means exactly N.
"$BIN" data synth --out "$T/d" --train 20 --test 0 --steps 5 >/dev/null 2>&1 &&
	[ "$(grep -c '"n_steps":5' "$T/d/train.jsonl")" -eq 20 ] && [ ! -s "$T/d/test.jsonl" ] && ok synth-steps || bad synth-steps

# tokenizer: written, loadable by `iapo tokenize`, round-trips a trace.
"$BIN" data tokenizer --data "$T/a/train.jsonl" --data "$T/a/test.jsonl" --vocab 600 --out "$T/tok" >"$T/out.txt" 2>"$T/err.txt"; rc=$?
[ $rc -eq 0 ] && [ -s "$T/tok/tokenizer.json" ] && [ -s "$T/tok/tokenizer_config.json" ] &&
	grep -q "bytes/token" "$T/out.txt" && grep -q "150 rows" "$T/out.txt" && ok tokenizer || bad tokenizer
printf 'Tom has 7 apples. <think>\n7 + 5 = 12.</think><answer>12</answer>\n' >"$T/line.txt"
"$BIN" tokenize --model "$T/tok" <"$T/line.txt" | "$BIN" tokenize --model "$T/tok" --decode >"$T/back.txt"
cmp -s "$T/line.txt" "$T/back.txt" && ok tokenizer-round-trip || bad tokenizer-round-trip
"$BIN" data tokenizer --data "$T/a/train.jsonl" --data "$T/a/test.jsonl" --vocab 600 --out "$T/tok2" >/dev/null 2>&1
cmp -s "$T/tok/tokenizer.json" "$T/tok2/tokenizer.json" && ok tokenizer-deterministic || bad tokenizer-deterministic

# --help: usage on stdout, exit 0.
"$BIN" data --help | grep -q "usage: iapo data" && ok help || bad help
"$BIN" data synth --help | grep -q "usage: iapo data synth" && ok help-synth || bad help-synth
"$BIN" data tokenizer --help | grep -q "usage: iapo data tokenizer" && ok help-tokenizer || bad help-tokenizer

# Usage errors: exit 2, the option named.
usage() { # name expected-text args...
	name=$1; want=$2; shift 2
	"$BIN" "$@" >/dev/null 2>"$T/err.txt"; rc=$?
	[ $rc -eq 2 ] && grep -q -- "$want" "$T/err.txt" && ok "$name" || { bad "$name"; cat "$T/err.txt"; }
}
usage no-subcommand "usage" data
usage bad-subcommand "frob" data frob
usage synth-no-out "--out" data synth --train 5
usage synth-unknown "--frobnicate" data synth --out "$T/x" --frobnicate
usage synth-steps-zero "--steps" data synth --out "$T/x" --steps 0-3
usage synth-steps-reversed "--steps" data synth --out "$T/x" --steps 4-2
usage synth-steps-high "--steps" data synth --out "$T/x" --steps 2-9
usage synth-steps-text "--steps" data synth --out "$T/x" --steps two
usage synth-redundancy "--redundancy" data synth --out "$T/x" --redundancy 1.5
usage synth-train-zero "--train" data synth --out "$T/x" --train 0
usage synth-test-negative "--test" data synth --out "$T/x" --test -1
usage synth-max-value "--max-value" data synth --out "$T/x" --max-value 5
usage synth-seed "--seed" data synth --out "$T/x" --seed -3
usage synth-missing-value "--seed" data synth --out "$T/x" --seed
usage tok-no-data "--data" data tokenizer --out "$T/x"
usage tok-no-out "--out" data tokenizer --data "$T/a/train.jsonl"
usage tok-vocab "--vocab" data tokenizer --data "$T/a/train.jsonl" --out "$T/x" --vocab 100
[ ! -e "$T/x" ] && ok usage-writes-nothing || bad usage-writes-nothing

# Bad input: exit 1, the file and line named.
"$BIN" data tokenizer --data "$T/nowhere.jsonl" --out "$T/y" >/dev/null 2>"$T/err.txt"; rc=$?
[ $rc -eq 1 ] && grep -q "nowhere.jsonl" "$T/err.txt" && ok tok-missing-file || bad tok-missing-file
printf '{"prompt": "a"}\n{"answer": "1"}\n' >"$T/bad.jsonl"
"$BIN" data tokenizer --data "$T/bad.jsonl" --out "$T/y" >/dev/null 2>"$T/err.txt"; rc=$?
[ $rc -eq 1 ] && grep -q "bad.jsonl: line 2" "$T/err.txt" && grep -q "prompt" "$T/err.txt" && ok tok-bad-row || bad tok-bad-row
# An output path that is a file: exit 1.
: >"$T/file"
"$BIN" data synth --out "$T/file" --train 5 --test 1 >/dev/null 2>"$T/err.txt"; rc=$?
[ $rc -eq 1 ] && grep -q "file" "$T/err.txt" && ok synth-out-is-file || bad synth-out-is-file

cli_done
