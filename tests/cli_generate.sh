#!/bin/sh
# `iapo generate` end to end on a tiny random Qwen2 model made by `iapo init`:
# usage errors exit 2 with a message, an unloadable model exits 1 with the
# loader's message; stdout holds only the completion text (nothing at all
# but the newline for --max-tokens 0), counts/speeds go to stderr; greedy
# output is the same across runs and thread counts; --raw differs from the
# chat-templated prompt; seeds, -n and --stop behave as --help says.
# Completions of a random model are arbitrary bytes, so outputs are compared
# as files (cmp), never through shell variables.
. "$(dirname "$0")/lib_cli.sh"
cli_tmp cli_generate

# ---- usage errors and --help (no model needed)
cli_prompt_usage generate
for bad_opt in "--temperature abc" "--top-p 0" "--top-p 1.5" "--top-k -3" "-n 0" "--threads 1.5" "--stop="; do
	# shellcheck disable=SC2086
	"$BIN" generate --model "$T/none" --prompt hi $bad_opt >"$T/o" 2>"$T/e"; rc=$?
	[ $rc -eq 2 ] && [ -s "$T/e" ]; check "bad value '$bad_opt': exit 2 with a message" $?
done
"$BIN" generate --model "$T/none" --prompt hi --stop >"$T/o" 2>"$T/e"; rc=$?
[ $rc -eq 2 ] && grep -q "needs a value" "$T/e"; check "option without its value: exit 2" $?
"$BIN" generate --help >"$T/h" 2>&1; rc=$?
miss=0
for opt in --model --prompt --system --raw " -n " --max-tokens --temperature --top-p --top-k --seed --threads --stop; do
	grep -q -- "$opt" "$T/h" || { echo "  --help lacks $opt"; miss=1; }
done
[ $rc -eq 0 ] && [ $miss -eq 0 ] && grep -q "default 256" "$T/h" && grep -q -- "---" "$T/h"
check "--help lists every option with defaults and the output format" $?
"$BIN" generate --model "$T/does-not-exist" --prompt hi >"$T/o" 2>"$T/e"; rc=$?
[ $rc -eq 1 ] && grep -q "does-not-exist" "$T/e" && [ ! -s "$T/o" ]; check "unloadable model: exit 1 naming it" $?

# ---- a tiny random Qwen2 model; std 0.5 rather than HF's 0.02 so that greedy
# decoding does not repeat one token and the texts of different prompts differ
cli_random_qwen2
gen() { # out-prefix args...
	p=$1; shift
	"$BIN" generate --model "$M" "$@" >"$T/$p.out" 2>"$T/$p.err"
}

gen g1 --prompt "Hello there" --temperature 0 --max-tokens 24; rc=$?
[ $rc -eq 0 ] && grep -q "tok/s" "$T/g1.err" && ! grep -q "tok/s" "$T/g1.out" && [ -s "$T/g1.out" ]
check "greedy run: exit 0, speeds on stderr only" $?
gen z --prompt "Hello there" --max-tokens 0; rc=$?
printf '\n' >"$T/nl"
[ $rc -eq 0 ] && cmp -s "$T/z.out" "$T/nl"; check "--max-tokens 0: stdout is just the newline" $?
gen g2 --prompt "Hello there" --temperature 0 --max-tokens 24
cmp -s "$T/g1.out" "$T/g2.out"; check "greedy output repeats across runs" $?
gen t1a --prompt "Hello there" --temperature 0 --max-tokens 24 --threads 1
gen t1b --prompt "Hello there" --temperature 0 --max-tokens 24 --threads 1
gen t2a --prompt "Hello there" --temperature 0 --max-tokens 24 --threads 2
gen t2b --prompt "Hello there" --temperature 0 --max-tokens 24 --threads 2
cmp -s "$T/t1a.out" "$T/t1b.out" && cmp -s "$T/t2a.out" "$T/t2b.out"; check "same thread count, same output" $?
cmp -s "$T/t1a.out" "$T/t2a.out"; check "greedy output same with 1 and 2 threads" $?
gen raw --prompt "Hello there" --temperature 0 --max-tokens 24 --raw; rc=$?
[ $rc -eq 0 ] && ! cmp -s "$T/raw.out" "$T/g1.out" && grep -q "raw" "$T/raw.err" && grep -q "chat template" "$T/g1.err"
check "--raw differs from the chat-templated prompt" $?
gen s1 --prompt "Hi" --temperature 1 --top-p 0.9 --top-k 50 --seed 7 --max-tokens 24
gen s2 --prompt "Hi" --temperature 1 --top-p 0.9 --top-k 50 --seed 7 --max-tokens 24
gen s3 --prompt "Hi" --temperature 1 --top-p 0.9 --top-k 50 --seed 8 --max-tokens 24
cmp -s "$T/s1.out" "$T/s2.out" && ! cmp -s "$T/s1.out" "$T/s3.out"; check "seed: same repeats, another differs" $?
gen n3 --prompt "Hi" --temperature 1 --seed 7 --max-tokens 24 -n 3; rc=$?
seps=$(grep -c -x -- "---" "$T/n3.out")
[ $rc -eq 0 ] && [ "$seps" -ge 3 ] && grep -q "3 completions" "$T/n3.err"; check "-n 3: three completions, each followed by ---" $?
# -n's first completion uses the stream (seed, 0): the same as a single completion with that seed
gen n1 --prompt "Hi" --temperature 1 --seed 7 --max-tokens 24
head -c "$(($(wc -c <"$T/n1.out") - 1))" "$T/n1.out" >"$T/n1.txt"
head -c "$(wc -c <"$T/n1.txt")" "$T/n3.out" >"$T/n3first.txt"
cmp -s "$T/n1.txt" "$T/n3first.txt"; check "-n: completion 0 equals the single completion of that seed" $?

# --stop: cut before the first alphanumeric byte of the greedy text, if it has one
gen long --prompt "Hello there" --temperature 0 --max-tokens 64
k=$(od -An -v -tu1 "$T/long.out" | tr -s ' ' '\n' | grep -v '^$' | awk '
	($1 >= 48 && $1 <= 57) || ($1 >= 65 && $1 <= 90) || ($1 >= 97 && $1 <= 122) { print NR - 1, $1; exit }')
if [ -n "$k" ]; then
	off=${k% *}; code=${k#* }
	ch=$(printf "\\$(printf '%03o' "$code")")
	gen stop --prompt "Hello there" --temperature 0 --max-tokens 64 --stop "$ch"; rc=$?
	head -c "$off" "$T/long.out" >"$T/want"
	printf '\n' >>"$T/want"
	[ $rc -eq 0 ] && cmp -s "$T/stop.out" "$T/want" && grep -q "1 stop" "$T/stop.err"
	check "--stop '$ch': text cut before its first occurrence" $?
else
	echo "  (no alphanumeric byte in the greedy text; --stop check not applicable)"
	ok "--stop (not applicable to this text)"
fi

cli_done
