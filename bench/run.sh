#!/bin/sh
# Runs every benchmark against one build directory (build/ by default) and
# keeps the JSON lines in BUILD/bench/results.jsonl (stdout shows them too;
# human commentary goes to stderr). Extra arguments go to every program, e.g.
#   bench/run.sh build --quick        bench/run.sh build --threads 1
# Order: the machine's limits first (bench/peak), then the models
# (bench/model, every shape), then any other bench/*.c program in name order,
# so a reader sees the ceilings before the numbers measured against them.
# Every program takes the same options (--threads N, --quick, --shape S).
set -u
BUILD=${1:-build}
[ $# -gt 0 ] && shift
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1
OUT="$BUILD/bench/results.jsonl"
mkdir -p "$BUILD/bench"
: >"$OUT"
status=0
others=""
for src in bench/*.c; do
	name=$(basename "$src" .c)
	case "$name" in peak | model) ;; *) others="$others $name" ;; esac
done
for prog in peak model $others; do
	bin="$BUILD/bench/$prog"
	if [ ! -x "$bin" ]; then
		echo "bench: $bin not built (run make first)" >&2
		status=1
		continue
	fi
	# a plain pipe would hide the program's exit status in POSIX sh
	rcfile="$OUT.$prog.rc"
	{ "$bin" "$@"; echo $? >"$rcfile"; } | tee -a "$OUT"
	rc=$(cat "$rcfile" 2>/dev/null || echo 1)
	rm -f "$rcfile"
	if [ $rc -ne 0 ]; then
		echo "bench: $prog exited with status $rc" >&2
		status=1
	fi
done
echo "bench: results in $OUT" >&2
exit $status
