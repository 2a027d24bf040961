# tests/lib_cli.sh — what the CLI tests share; each tests/cli_<name>.sh starts
#	. "$(dirname "$0")/lib_cli.sh"
# ($0 is the script's own path, so the lib is found whatever the working
# directory; tests/run.sh runs `sh tests/cli_<name>.sh` from the repository
# root). POSIX sh, sourced, never run on its own: hence lib_cli.sh, not
# cli_lib.sh, which run.sh's tests/cli_*.sh loop would run as a test.
#
# It gives: BIN (env IAPO_BIN, else build/iapo); the counters pass/fail with
# ok NAME, bad NAME and check NAME STATUS|CODE; cli_tmp NAME (T = a fresh
# scratch directory under IAPO_TMP, removed on exit); cli_done (the summary
# line run.sh reads, and the script's exit status); and the tiny models and
# data several tests run on (cli_tiny_run_setup, cli_random_qwen2), and the
# usage checks generate and info share (cli_prompt_usage).
# Not here: anything one script alone uses.

BIN=${IAPO_BIN:-build/iapo}
pass=0; fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; }
# check NAME STATUS: passes when STATUS (a number, usually $?) is 0.
# check NAME 'CODE': passes when CODE, evaluated here, succeeds ($? in CODE
# is the status of the command before the check).
check() {
	case $2 in
	'' | *[!0-9]*) if eval "$2"; then ok "$1"; else bad "$1"; fi ;;
	*) if [ "$2" -eq 0 ]; then ok "$1"; else bad "$1"; fi ;;
	esac
}

# cli_tmp NAME: T=$IAPO_TMP/NAME.PID, created now, removed when the script exits.
cli_tmp() {
	T=${IAPO_TMP:-/tmp}/$1.$$
	mkdir -p "$T"
	trap 'rm -rf "$T"' EXIT
}

# The last line of every CLI test: the counts, then the exit status.
cli_done() {
	echo "$pass passed, $fail failed"
	[ "$fail" -eq 0 ]
}

# cli_prompt_usage CMD: the usage errors the one-prompt commands (generate,
# info: tools/cli.c's cli_prompt_opts) give alike, each exit 2 with a message.
cli_prompt_usage() {
	"$BIN" "$1" >"$T/o" 2>"$T/e"; rc=$?
	[ $rc -eq 2 ] && grep -q -- "--model" "$T/e" && [ ! -s "$T/o" ]; check "missing --model: exit 2, says so" $?
	"$BIN" "$1" --model "$T/none" >"$T/o" 2>"$T/e"; rc=$?
	[ $rc -eq 2 ] && grep -q -- "--prompt" "$T/e"; check "missing --prompt: exit 2" $?
	"$BIN" "$1" --model "$T/none" --prompt hi --frobnicate >"$T/o" 2>"$T/e"; rc=$?
	[ $rc -eq 2 ] && grep -q "unknown option '--frobnicate'" "$T/e"; check "unknown option: exit 2" $?
	for bad_opt in "--temperature -1" "--max-tokens x" "--seed -1" "--seed 18446744073709551616"; do
		# shellcheck disable=SC2086
		"$BIN" "$1" --model "$T/none" --prompt hi $bad_opt >"$T/o" 2>"$T/e"; rc=$?
		[ $rc -eq 2 ] && [ -s "$T/e" ]; check "bad value '$bad_opt': exit 2 with a message" $?
	done
	"$BIN" "$1" --model "$T/none" --prompt hi --raw --system sys >"$T/o" 2>"$T/e"; rc=$?
	[ $rc -eq 2 ]; check "--system with --raw: exit 2" $?
}

# The trainer tests' run: $T/qwen2.json, a tiny random Qwen2 ($T/model, seed 3,
# iapo init's byte-level tokenizer) and $T/data.jsonl, 8 rows "What is i+1?".
cli_tiny_run_setup() {
	cat >"$T/qwen2.json" <<'JSON'
{"model_type": "qwen2", "vocab_size": 263, "hidden_size": 32, "intermediate_size": 64,
 "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
 "max_position_embeddings": 512, "tie_word_embeddings": true, "initializer_range": 0.1}
JSON
	"$BIN" init --config "$T/qwen2.json" --out "$T/model" --seed 3 2>"$T/err"
	check "iapo init of the tiny model" '[ $? -eq 0 ]'
	i=0
	: >"$T/data.jsonl"
	while [ $i -lt 8 ]; do
		echo "{\"prompt\": \"What is $i+1?\", \"answer\": \"$((i + 1))\"}" >>"$T/data.jsonl"
		i=$((i + 1))
	done
}

# cli_random_qwen2: M=$T/m, a tiny random Qwen2 (hidden 64, std 0.5 rather than
# HF's 0.02: entropies far from uniform, greedy texts that differ by prompt).
# Ends the script when iapo init fails.
cli_random_qwen2() {
	cat >"$T/config.json" <<'EOF'
{
  "architectures": ["Qwen2ForCausalLM"],
  "model_type": "qwen2",
  "vocab_size": 263,
  "hidden_size": 64,
  "intermediate_size": 128,
  "num_hidden_layers": 2,
  "num_attention_heads": 4,
  "num_key_value_heads": 2,
  "max_position_embeddings": 1024,
  "rope_theta": 1000000.0,
  "rms_norm_eps": 1e-06,
  "tie_word_embeddings": true,
  "torch_dtype": "float32"
}
EOF
	"$BIN" init --config "$T/config.json" --out "$T/m" --std 0.5 >"$T/init.log" 2>&1; rc=$?
	check "iapo init makes the model" $rc
	[ $rc -eq 0 ] || { cat "$T/init.log"; cli_done; exit 1; }
	M="$T/m"
}
