#!/bin/sh
# Runs the whole suite against one or more build directories (build/,
# build-asan/ whose programs carry ASan+UBSan+LeakSanitizer, build-portable/
# built without AVX-512):
#  1. oracle fixtures: every tests/oracle/make_*.sh OUTDIR (idempotent; they use
#     Debian's python3-torch and npm's real Qwen tokenizer, never our code);
#  2. every compiled test program BUILD/tests/test_*;
#  3. every CLI test script tests/cli_*.sh (env IAPO_BIN).
# Each program prints "N passed, N failed"; we add them up and print the total.
# Exit status is non-zero if anything failed.
set -u
[ $# -eq 0 ] && set -- build
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1
export IAPO_FIXTURES="$ROOT/build/fixtures"
export IAPO_TMP="${TMPDIR:-/tmp}/iapo-test.$$"
export OMP_WAIT_POLICY=PASSIVE
mkdir -p "$IAPO_FIXTURES" "$IAPO_TMP"
trap 'rm -rf "$IAPO_TMP"' EXIT
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:halt_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"

passed=0
failed=0
failures=""

record() { # name status output-file
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$3" | tail -n 1)
	if [ -n "$line" ]; then
		p=${line%% passed*}
		f=${line#*passed, }; f=${f%% failed*}
	else
		p=0; f=0
	fi
	if [ "$2" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
	passed=$((passed + p))
	failed=$((failed + f))
	if [ "$f" -ne 0 ]; then failures="$failures $1"; fi
	printf '%-44s %s\n' "$1" "${line:-exit $2}"
}

for s in tests/oracle/make_*.sh; do
	[ -e "$s" ] || continue
	out="$IAPO_TMP/$(basename "$s").log"
	sh "$s" "$IAPO_FIXTURES" >"$out" 2>&1
	rc=$?
	if [ $rc -ne 0 ]; then
		cat "$out" >&2
		failed=$((failed + 1)); failures="$failures $(basename "$s")"
		printf '%-44s %s\n' "$(basename "$s")" "FAILED (exit $rc)"
	fi
done

for BUILD in "$@"; do
	export IAPO_BIN="$ROOT/$BUILD/iapo"
	for t in "$BUILD"/tests/test_*; do
		[ -x "$t" ] || continue
		case "$t" in *.d|*.o) continue ;; esac
		out="$IAPO_TMP/$BUILD-$(basename "$t").log"
		"$t" >"$out" 2>&1
		rc=$?
		if [ $rc -ne 0 ]; then cat "$out" >&2; fi
		record "$BUILD/$(basename "$t")" $rc "$out"
	done

	# build-portable holds only the programs of the code with compile-time
	# AVX-512 paths (Makefile, PORTABLE_TESTS); the CLI runs in the others
	[ "$BUILD" = build-portable ] && continue
	for s in tests/cli_*.sh; do
		[ -e "$s" ] || continue
		out="$IAPO_TMP/$BUILD-$(basename "$s").log"
		sh "$s" >"$out" 2>&1
		rc=$?
		if [ $rc -ne 0 ]; then cat "$out" >&2; fi
		record "$BUILD/$(basename "$s")" $rc "$out"
	done
done

[ -n "$failures" ] && echo "failed:$failures"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
