#!/bin/sh
# Runs every benchmark against one build directory (build/ by default) and
# keeps the JSON lines in BUILD/bench/results.jsonl (stdout shows them too;
# human commentary goes to stderr). Extra arguments go to every program, e.g.
#   bench/run.sh build --quick        bench/run.sh build --threads 1
# Order: the machine's limits first (bench/peak), then the models
# (bench/model, every shape), so a reader sees the ceilings before the
# numbers measured against them.
set -u
BUILD=${1:-build}
[ $# -gt 0 ] && shift
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1
OUT="$BUILD/bench/results.jsonl"
mkdir -p "$BUILD/bench"
: >"$OUT"
status=0
for prog in peak model; do
	bin="$BUILD/bench/$prog"
	if [ ! -x "$bin" ]; then
		echo "bench: $bin not built (run make first)" >&2
		status=1
		continue
	fi
	args=""
	[ "$prog" = model ] && args="--shape all"
	# a plain pipe would hide the program's exit status in POSIX sh
	rcfile="$OUT.$prog.rc"
	# shellcheck disable=SC2086
	{ "$bin" $args "$@"; echo $? >"$rcfile"; } | tee -a "$OUT"
	rc=$(cat "$rcfile" 2>/dev/null || echo 1)
	rm -f "$rcfile"
	if [ $rc -ne 0 ]; then
		echo "bench: $prog exited with status $rc" >&2
		status=1
	fi
done
echo "bench: results in $OUT" >&2
exit $status
