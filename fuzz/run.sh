#!/bin/sh
# Runs each fuzz target for SECONDS seconds and prints one JSON line per
# target: executions, seconds, coverage, corpus size, status. Fails (exit 1)
# when any target reports a crash, leak, timeout, out-of-memory or sanitizer
# error; the offending input is then kept under BUILD/artifacts/<target>/.
#   fuzz/run.sh BUILD SECONDS [TARGET...]   (default: every BUILD/fuzz_*)
# Environment:
#   FUZZ_JOBS=N     targets run N at a time (default 1)
#   FUZZ_MERGE=0|1  at the end, merge what each run found into the tree's
#                   corpus fuzz/corpus/<target> with -merge=1 -use_counters=0,
#                   which adds only inputs that reach new edges (default 1)
#   FUZZ_WORK=DIR   where the growing corpora live (default BUILD/corpus)
#   IAPO_FUZZ_TOKENIZERS  extra tokenizer dirs for fuzz_encode (default: the
#                   real Qwen3 one in $IAPO_FIXTURES or build/fixtures, if made)
set -u
[ $# -ge 2 ] || { echo "usage: fuzz/run.sh BUILD SECONDS [TARGET...]" >&2; exit 2; }
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 2
BUILD=$1 SECONDS_EACH=$2
shift 2
JOBS=${FUZZ_JOBS:-1} MERGE=${FUZZ_MERGE:-1} WORK=${FUZZ_WORK:-$BUILD/corpus}
if [ $# -eq 0 ]; then
	for b in "$BUILD"/fuzz_*; do
		[ -x "$b" ] && case "$b" in *.d) ;; *) set -- "$@" "${b#"$BUILD"/fuzz_}" ;; esac
	done
fi
[ $# -gt 0 ] || { echo "fuzz/run.sh: no targets in $BUILD (make fuzz-build)" >&2; exit 2; }
fixtures=${IAPO_FIXTURES:-$ROOT/build/fixtures}
if [ -z "${IAPO_FUZZ_TOKENIZERS+x}" ] && [ -f "$fixtures/qwen3-tokenizer/tokenizer.json" ]; then
	export IAPO_FUZZ_TOKENIZERS="$fixtures/qwen3-tokenizer"
fi
# Scratch files of the targets (one directory each): memory when possible,
# since some targets write and fsync files on every input.
if [ -d /dev/shm ] && [ -w /dev/shm ]; then ftmp=/dev/shm; else ftmp=${TMPDIR:-/tmp}; fi
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=1"

max_len() {
	case "$1" in
	reward) echo 2048 ;;
	config | encode | json) echo 4096 ;;
	tokenizer | trainer_state) echo 16384 ;;
	*) echo 8192 ;;
	esac
}

# Runs one target; writes its JSON line to $WORK/<t>.json and the log beside.
run_one() {
	t=$1
	bin=$BUILD/fuzz_$t
	work=$WORK/$t art=$BUILD/artifacts/$t
	mkdir -p "$work" "$art" "$BUILD/dict"
	log=$WORK/$t.log
	dict=$BUILD/dict/$t.dict
	cat fuzz/dict/common.dict >"$dict"
	[ -f "fuzz/dict/$t.dict" ] && cat "fuzz/dict/$t.dict" >>"$dict"
	seeds=fuzz/corpus/$t
	[ -d "$seeds" ] || seeds=
	t0=$(date +%s)
	TMPDIR=$ftmp "$bin" -max_total_time="$SECONDS_EACH" -max_len="$(max_len "$t")" -timeout=10 \
		-rss_limit_mb=2048 -print_final_stats=1 -dict="$dict" -artifact_prefix="$art/" \
		"$work" $seeds >"$log" 2>&1
	rc=$?
	secs=$(($(date +%s) - t0)) # wall time, start-up included
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -n 1)
	done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1)
	cov=$(echo "$done_line" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
	ft=$(echo "$done_line" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
	corp=$(echo "$done_line" | sed -n 's/.* corp: \([0-9]*\)\/.*/\1/p')
	status=ok
	if [ $rc -ne 0 ] || grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:|fuzz check failed' "$log"; then
		status=$(grep -oE 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer): [a-z-]+|runtime error|fuzz check failed' "$log" |
			head -n 1 | sed 's/ERROR: //; s/"/'"'"'/g')
		[ -n "$status" ] || status="exit $rc"
	fi
	artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | head -n 1)
	execs=${execs:-0}
	rate=$((execs / (secs > 0 ? secs : 1)))
	printf '{"target": "%s", "seconds": %s, "execs": %s, "execs_per_sec": %s, "cov": %s, "ft": %s, "corpus": %s, "peak_rss_mb": %s, "status": "%s"%s}\n' \
		"$t" "$secs" "$execs" "$rate" "${cov:-0}" "${ft:-0}" "${corp:-0}" "${rss:-0}" "$status" \
		"${artifact:+, \"artifact\": \"$artifact\"}" >"$WORK/$t.json"
}

mkdir -p "$WORK"
failed=0
set -- "$@" ""
while [ "$1" != "" ]; do
	batch=""
	i=0
	while [ "$1" != "" ] && [ $i -lt "$JOBS" ]; do
		run_one "$1" &
		batch="$batch $1"
		i=$((i + 1))
		shift
	done
	wait
	for t in $batch; do
		line=$(cat "$WORK/$t.json")
		echo "$line"
		case "$line" in
		*'"status": "ok"'*) ;;
		*)
			failed=$((failed + 1))
			echo "--- fuzz_$t log (last 40 lines of $WORK/$t.log):" >&2
			grep -v '^#[0-9]' "$WORK/$t.log" | tail -n 40 >&2
			;;
		esac
	done
done

if [ "$MERGE" = 1 ] && [ $failed -eq 0 ]; then
	for f in "$WORK"/*.json; do
		t=$(basename "$f" .json)
		[ -d "$WORK/$t" ] || continue
		mkdir -p "fuzz/corpus/$t"
		# Edges only (no hit counts): the tree keeps inputs that reach new
		# code, which keeps it small.
		TMPDIR=$ftmp "$BUILD/fuzz_$t" -merge=1 -use_counters=0 -max_len="$(max_len "$t")" -timeout=10 "fuzz/corpus/$t" "$WORK/$t" \
			>"$WORK/$t.merge.log" 2>&1 || { echo "fuzz/run.sh: merge of $t failed (see $WORK/$t.merge.log)" >&2; failed=$((failed + 1)); }
	done
	echo "fuzz/run.sh: corpora merged into fuzz/corpus: $(du -sk fuzz/corpus | cut -f1) KB" >&2
fi
[ $failed -eq 0 ]
