#!/bin/sh
# Fuzzing in the test suite: builds the libFuzzer targets (make fuzz-build:
# clang, ASan + UBSan, build-fuzz/) and runs each for FUZZ_SECONDS seconds
# (default 20), two at a time (FUZZ_JOBS), from the seed corpora in
# fuzz/corpus; a target passes when it ends without a crash, leak, timeout,
# out-of-memory or sanitizer report. Prints each target's JSON line
# (executions, seconds, coverage) and "N passed, N failed".
# tests/run.sh runs every cli_*.sh once per build directory; fuzzing runs in
# the build-asan pass only (so once per `make test`, and in `make asan`); in
# the other pass this prints a skip, counted as one passed check.
# Without clang and its fuzzer runtime this FAILS: install them with
# scripts/install-deps.sh --test (clang, libclang-rt-14-dev, libomp-dev).
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1
pass=0 fail=0
done_() {
	echo "$pass passed, $fail failed"
	[ "$fail" -eq 0 ]
	exit $?
}

case "${IAPO_BIN:-}" in
*/build-asan/iapo) ;;
*)
	echo "skip fuzzing in this pass (${IAPO_BIN:-no IAPO_BIN}): it runs once, in the build-asan pass"
	done_
	;;
esac

FUZZ_CC=${FUZZ_CC:-}
if [ -z "$FUZZ_CC" ]; then
	for c in clang clang-14; do
		if command -v "$c" >/dev/null 2>&1; then FUZZ_CC=$c; break; fi
	done
fi
tmp=${IAPO_TMP:-/tmp}/cli_fuzz
mkdir -p "$tmp"
printf '#include <stddef.h>\n#include <stdint.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n' \
	>"$tmp/probe.c"
if [ -z "$FUZZ_CC" ] || ! "$FUZZ_CC" -fsanitize=fuzzer,address,undefined -fopenmp "$tmp/probe.c" -o "$tmp/probe" >"$tmp/probe.log" 2>&1; then
	echo "FAIL fuzzing needs clang with libFuzzer and OpenMP (Debian: clang libclang-rt-14-dev libomp-dev;" \
		"run scripts/install-deps.sh --test)${FUZZ_CC:+: $FUZZ_CC says:}"
	[ -n "$FUZZ_CC" ] && tail -n 5 "$tmp/probe.log"
	fail=1
	done_
fi

# A make above us may pass its jobserver; this build is our own.
unset MAKEFLAGS MFLAGS MAKELEVEL
start=$(date +%s)
if ! make -j2 fuzz-build FUZZ_CC="$FUZZ_CC" >"$tmp/build.log" 2>&1; then
	echo "FAIL make fuzz-build:"
	tail -n 30 "$tmp/build.log"
	fail=1
	done_
fi
built=$(date +%s)
echo "ok   make fuzz-build ($((built - start)) s)"
pass=$((pass + 1))

rm -rf "$tmp/corpus"
FUZZ_JOBS=${FUZZ_JOBS:-2} FUZZ_MERGE=0 FUZZ_WORK="$tmp/corpus" \
	fuzz/run.sh build-fuzz "${FUZZ_SECONDS:-20}" >"$tmp/run.out" 2>"$tmp/run.err"
while IFS= read -r line; do
	echo "$line"
	case "$line" in
	'{"target"'*'"status": "ok"'*) pass=$((pass + 1)) ;;
	'{"target"'*) fail=$((fail + 1)) ;;
	esac
done <"$tmp/run.out"
[ -s "$tmp/run.err" ] && cat "$tmp/run.err"
grep -q '^{"target"' "$tmp/run.out" || { echo "FAIL fuzz/run.sh ran no target"; fail=$((fail + 1)); }
echo "fuzzing took $(($(date +%s) - built)) s"
done_
