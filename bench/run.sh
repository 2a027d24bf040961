#!/bin/sh
# Runs every benchmark against one build directory (build/ by default) and
# keeps the JSON lines in BUILD/bench/results.jsonl (stdout shows them too;
# human commentary goes to stderr). Extra arguments go to every program, e.g.
#   bench/run.sh build --quick        bench/run.sh build --threads 1
#   bench/run.sh build --shape small
# Order: the machine's limits first (bench/peak); then, shape by shape, our
# model (bench/model) and the PyTorch peer (bench/peer.py) one after the
# other, so that both see the same load on a shared machine; then any other
# bench/*.c program in name order; last, bench/table.py prints the ratio
# table (ours / peer, GEMM % of peak, decode vs the bandwidth bound).
#
# The peer runs as a fair competitor would: LD_PRELOAD of jemalloc (Debian's
# libjemalloc2; scripts/install-deps.sh --bench), OMP_WAIT_POLICY=PASSIVE,
# and OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE removed for its command alone so
# its OpenBLAS picks the AVX-512 kernels. Our programs run in the
# environment as it is: iapo must be fast whatever it says.
set -u
BUILD=${1:-build}
[ $# -gt 0 ] && shift
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1
OUT="$BUILD/bench/results.jsonl"
mkdir -p "$BUILD/bench"
: >"$OUT"
status=0

# --shape S picks the model shapes; everything else goes to every program
shapes="tiny small qwen0.5b"
shape_arg=""
opts=""
while [ $# -gt 0 ]; do
	case "$1" in
	--shape)
		[ $# -ge 2 ] || { echo "bench: --shape needs a value" >&2; exit 2; }
		shape_arg="$2"
		[ "$2" = all ] || shapes="$2"
		shift 2
		;;
	*)
		opts="$opts $1"
		shift
		;;
	esac
done

# run NAME CMD...: runs one program, keeps its stdout in $OUT, notes failures
run() {
	name=$1
	shift
	rcfile="$OUT.$name.rc"
	# a plain pipe would hide the program's exit status in POSIX sh
	{ "$@"; echo $? >"$rcfile"; } | tee -a "$OUT"
	rc=$(cat "$rcfile" 2>/dev/null || echo 1)
	rm -f "$rcfile"
	if [ "$rc" -ne 0 ]; then
		echo "bench: $name exited with status $rc" >&2
		status=1
	fi
}

built() {
	if [ -x "$BUILD/bench/$1" ]; then return 0; fi
	echo "bench: $BUILD/bench/$1 not built (run make first)" >&2
	status=1
	return 1
}

PY=/usr/bin/python3
JEMALLOC=""
for j in /usr/lib/*/libjemalloc.so.2 /usr/lib/libjemalloc.so.2; do
	[ -e "$j" ] && { JEMALLOC=$j; break; }
done
peer_ok=1
if ! "$PY" -c "import torch" 2>/dev/null; then
	echo "bench: $PY has no torch (scripts/install-deps.sh --bench): no peer" >&2
	peer_ok=0
elif [ -z "$JEMALLOC" ]; then
	echo "bench: libjemalloc.so.2 not found (scripts/install-deps.sh --bench): the peer runs with glibc malloc" >&2
fi
peer_check=""

# shellcheck disable=SC2086
built peak && run peak "$BUILD/bench/peak" $opts ${shape_arg:+--shape "$shape_arg"}
for s in $shapes; do
	# shellcheck disable=SC2086
	built model && run model "$BUILD/bench/model" $opts --shape "$s"
	if [ $peer_ok -eq 1 ]; then
		# shellcheck disable=SC2086
		run peer env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_WAIT_POLICY=PASSIVE \
			${JEMALLOC:+LD_PRELOAD="$JEMALLOC"} "$PY" bench/peer.py $opts --shape "$s" $peer_check
		peer_check="--no-check" # the peer's self-check once per run
	fi
done
for src in bench/*.c; do
	name=$(basename "$src" .c)
	case "$name" in peak | model) continue ;; esac
	# shellcheck disable=SC2086
	built "$name" && run "$name" "$BUILD/bench/$name" $opts ${shape_arg:+--shape "$shape_arg"}
done
if "$PY" -c "" 2>/dev/null; then
	run table "$PY" bench/table.py "$OUT"
fi
echo "bench: results in $OUT" >&2
exit $status
