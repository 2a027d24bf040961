#!/bin/sh
# Runs every benchmark against one build directory (build/ by default) and
# keeps the JSON lines in BUILD/bench/results.jsonl (stdout shows them too;
# human commentary goes to stderr). Extra arguments go to every program, e.g.
#   bench/run.sh build --quick        bench/run.sh build --threads 1
#   bench/run.sh build --shape small  bench/run.sh build --rounds 5
# Order: the machine's limits first (bench/peak); then, shape by shape, our
# training step (bench/model --what train) and the PyTorch peer's
# (bench/peer.py --what train) one after the other, then the decoding
# comparison in paired rounds (below); then any other bench/*.c program in
# name order; last, bench/table.py prints the ratio table (ours / peer, GEMM
# % of peak, decode vs the bandwidth bound).
#
# Paired decoding rounds (--rounds N, default 3): this host's memory
# bandwidth moves 27-83 GB/s between processes and minutes, and decoding
# follows it, so a ratio of two decodes measured minutes apart mostly
# measures the host. Each round runs one short process of ours
# (bench/model --what decode,decode_rows,decode_bf16,decode_bf16_rows
# --quick --round k: fp32 and bf16 as iapo_generate decodes by default, from
# the weights packed for decoding too, each next to its ablation from the
# weights' rows, the ablation first in even rounds) and one of the
# peer's (bench/peer.py --what decode --quick --round k) back to back, in
# the order ours-peer, peer-ours, ours-peer, ... so a steady drift does not
# favour one side; table.py divides within each round and reports the
# median of the per-round ratios, their range and every round. --quick in
# the rounds: the repeats move from inside one process to across rounds
# (qwen0.5b decodes one repeat per process either way).
#
# The peer runs as a fair competitor would: LD_PRELOAD of jemalloc (Debian's
# libjemalloc2; scripts/install-deps.sh --bench) with MALLOC_CONF below,
# OMP_WAIT_POLICY=PASSIVE, and OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE removed
# for its command alone so its OpenBLAS picks the AVX-512 kernels. Our
# programs run in the environment as it is: iapo must be fast whatever it
# says.
#
# MALLOC_CONF: jemalloc's default decay hands freed pages back to the kernel
# after a few seconds, and PyTorch's training step then faults its fresh
# buffers in again every step; on this VM a fault is dear. Measured in
# session 12, peer.py --what train: small 195 tokens/s with jemalloc's
# defaults against 705-840 with decay off; qwen0.5b 8 (session 11's runs)
# against 14.8 with decay off and 29.5 with decay off plus transparent huge
# pages (thp:always). Decoding did not move. So the peer keeps its pages.
# (iapo allocates its large blocks once, on 4 KB pages unless
# IAPO_HUGEPAGES=1, src/core/mem.c; these runs leave that unset.)
set -u
BUILD=${1:-build}
[ $# -gt 0 ] && shift
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1
OUT="$BUILD/bench/results.jsonl"
mkdir -p "$BUILD/bench"
: >"$OUT"
status=0

# --shape S picks the model shapes, --rounds N the paired decoding rounds;
# everything else goes to every program
shapes="tiny small qwen0.5b"
shape_arg=""
rounds=3
opts=""
while [ $# -gt 0 ]; do
	case "$1" in
	--shape)
		[ $# -ge 2 ] || { echo "bench: --shape needs a value" >&2; exit 2; }
		shape_arg="$2"
		[ "$2" = all ] || shapes="$2"
		shift 2
		;;
	--rounds)
		case "${2:-}" in
		[1-9] | [1-9][0-9]) rounds=$2 ;;
		*) echo "bench: --rounds needs a count 1-99" >&2; exit 2 ;;
		esac
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
PEER_MALLOC_CONF="thp:always,dirty_decay_ms:-1,muzzy_decay_ms:-1"
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

# peer ARGS...: the peer in its own environment (above)
peer() {
	# shellcheck disable=SC2086
	run peer env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_WAIT_POLICY=PASSIVE \
		${JEMALLOC:+LD_PRELOAD="$JEMALLOC" MALLOC_CONF="$PEER_MALLOC_CONF"} \
		"$PY" bench/peer.py $opts "$@" $peer_check
	peer_check="--no-check" # the peer's self-check once per run
}

# shellcheck disable=SC2086
built peak && run peak "$BUILD/bench/peak" $opts ${shape_arg:+--shape "$shape_arg"}
for s in $shapes; do
	# shellcheck disable=SC2086
	built model && run model "$BUILD/bench/model" $opts --shape "$s" --what train
	[ $peer_ok -eq 1 ] && peer --shape "$s" --what train
	k=1
	while [ $k -le "$rounds" ]; do
		first=ours
		[ $((k % 2)) -eq 0 ] && [ $peer_ok -eq 1 ] && first=peer
		[ $first = peer ] && peer --shape "$s" --what decode --quick --round $k
		decs=decode,decode_rows,decode_bf16,decode_bf16_rows
		[ $((k % 2)) -eq 0 ] && decs=decode_rows,decode,decode_bf16_rows,decode_bf16
		# shellcheck disable=SC2086
		built model && run model "$BUILD/bench/model" $opts --shape "$s" \
			--what $decs --quick --round $k
		[ $first = ours ] && [ $peer_ok -eq 1 ] && peer --shape "$s" --what decode --quick --round $k
		k=$((k + 1))
	done
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
