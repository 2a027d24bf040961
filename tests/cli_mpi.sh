#!/bin/sh
# iapo under mpirun (2 ranks on this machine, --oversubscribe, one OpenMP
# thread each) on a tiny random model: --version names the MPI library; a
# 2-rank train writes the run directory once (rank 0), its metrics equal a
# 1-process run's, --check-weights-every passes, and a 1-process --resume
# continues it; --prompts-per-step not a multiple of the ranks exits 2 and a
# bad data row exits 1, each said once; eval over 2 ranks = eval on one; a
# rank killed mid-run ends the job with mpirun's report, the last checkpoint
# complete and resumable; SIGUSR1 to mpirun (forwarded to the ranks) saves
# and exits 0. Built without MPI: only --version is checked.
. "$(dirname "$0")/lib_cli.sh"
cli_tmp cli_mpi

ver=$("$BIN" --version)
case "$ver" in
*"MPI: no"*)
	ok "--version: MPI: no (built without MPI; nothing else to check)"
	echo "$pass passed, $fail failed"
	exit 0 ;;
esac
check "--version names the MPI library" 'echo "$ver" | grep -q "MPI: Open MPI v"'
if ! command -v mpirun >/dev/null 2>&1; then
	bad "built with MPI but no mpirun on PATH (scripts/install-deps.sh installs openmpi-bin)"
	echo "$pass passed, $fail failed"
	exit 1
fi

# As root mpirun wants these. Sanitizer builds: ASan and UBSan stay on, but
# not LeakSanitizer: OpenMPI never frees its start-up allocations, and
# telling them apart (tests/test_dist.h) costs ~6 s per job; the library's
# MPI paths are leak-checked by tests/test_dist*.c.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}:detect_leaks=0"
MPI2="timeout 60 mpirun --oversubscribe --bind-to none -np 2"

cli_tiny_run_setup
SMALL="--model $T/model --data $T/data.jsonl --prompts-per-step 2 --num-generations 2 --max-completion-tokens 8
 --system x --no-one-shot --learning-rate 1e-3 --threads 1"
# metrics.jsonl without the timing fields
untimed() { sed 's/,"seconds_[a-z]*":[^,}]*//g' "$1"; }

"$BIN" train $SMALL --out "$T/one" --max-steps 3 --save-steps 2 >"$T/out" 2>"$T/err"
check "1 process: train" '[ $? -eq 0 ]'
$MPI2 "$BIN" train $SMALL --out "$T/two" --max-steps 3 --save-steps 2 --check-weights-every 1 >"$T/out" 2>"$T/err"
check "2 ranks: train exit 0 (weights checked every step)" '[ $? -eq 0 ]'
check "2 ranks: rank 0 alone reports" '[ ! -s "$T/out" ] && [ "$(grep -c "iapo train: done, 3 steps" "$T/err")" -eq 1 ] && grep -q "2 MPI ranks, 1 prompts each per step" "$T/err" && [ "$(grep -c "^train step 3/3" "$T/err")" -eq 1 ]'
check "2 ranks: run directory written once, complete" '[ "$(wc -l <"$T/two/metrics.jsonl")" -eq 3 ] && [ -s "$T/two/config.json" ] && [ -s "$T/two/checkpoint-2/trainer_state.json" ] && [ -s "$T/two/checkpoint-3/trainer_state.json" ] && [ -z "$(ls -a "$T/two" | grep -e .tmp- -e .old-)" ]'
untimed "$T/one/metrics.jsonl" >"$T/m1"
untimed "$T/two/metrics.jsonl" >"$T/m2"
check "2 ranks: the metrics of the 1-process run (timings aside)" 'cmp -s "$T/m1" "$T/m2"'
"$BIN" train --out "$T/two" --resume --max-steps 4 >"$T/out" 2>"$T/err"
check "a 2-rank run resumed by 1 process" '[ $? -eq 0 ] && grep -q "resuming after step 3" "$T/err" && [ "$(wc -l <"$T/two/metrics.jsonl")" -eq 4 ] && [ -s "$T/two/checkpoint-4/trainer_state.json" ]'

$MPI2 "$BIN" train $SMALL --out "$T/odd" --prompts-per-step 3 >"$T/out" 2>"$T/err"
check "--prompts-per-step 3 on 2 ranks: exit 2, said once" '[ $? -eq 2 ] && [ "$(grep -c "expected a multiple of the 2 MPI ranks" "$T/err")" -eq 1 ] && ! grep -q MPI_ABORT "$T/err"'
{ head -n 2 "$T/data.jsonl"; echo '{"prompt": "What is 9+1?", "answer": }'; } >"$T/broken.jsonl"
$MPI2 "$BIN" train --model "$T/model" --data "$T/broken.jsonl" --out "$T/broken" >"$T/out" 2>"$T/err"
check "bad data row on 2 ranks: exit 1, its line said once" '[ $? -eq 1 ] && [ "$(grep -c "broken.jsonl: line 3" "$T/err")" -eq 1 ] && ! grep -q MPI_ABORT "$T/err"'

EVAL="--model $T/model --data $T/data.jsonl -n 3 --max-tokens 6 --system x --no-one-shot --threads 1 --batch 4"
"$BIN" eval $EVAL --out "$T/e1" >/dev/null 2>"$T/err"
check "1 process: eval" '[ $? -eq 0 ]'
$MPI2 "$BIN" eval $EVAL --out "$T/e2" >"$T/out" 2>"$T/err"
check "2 ranks: eval exit 0, one table" '[ $? -eq 0 ] && [ "$(grep -c "^model " "$T/out")" -eq 1 ] && grep -q "shared out over the MPI ranks" "$T/err"'
check "2 ranks: eval CSV = 1 process (time columns aside)" '[ "$(sed "s/,[^,]*,[^,]*$//" "$T/e1.csv")" = "$(sed "s/,[^,]*,[^,]*$//" "$T/e2.csv")" ]'

# A rank killed mid-run: mpirun stops the job; the last checkpoint is whole.
$MPI2 "$BIN" train $SMALL --out "$T/kill" --max-steps 100000 --save-steps 3 --max-completion-tokens 32 >"$T/out" 2>"$T/err" &
pid=$!
n=0
while [ $n -lt 300 ] && ! [ -s "$T/kill/checkpoint-3/trainer_state.json" ]; do sleep 0.1; n=$((n + 1)); done
victim=""
for p in $(pgrep -f -- "$T/kill"); do
	if tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=1"; then victim=$p; fi
done
[ -n "$victim" ] && kill -9 "$victim"
wait $pid
rc=$?
check "rank 1 killed: the job ends (exit $rc), mpirun names it" '[ -n "$victim" ] && [ $rc -ne 0 ] && [ $rc -ne 124 ] && grep -q "rank 1 .* exited on signal 9" "$T/err"'
complete=1
for c in "$T"/kill/checkpoint-*; do [ -s "$c/trainer_state.json" ] || complete=0; done
last=$(ls -d "$T"/kill/checkpoint-* | sed 's/.*checkpoint-//' | sort -n | tail -n 1)
check "every checkpoint-N left is complete (last: $last)" '[ $complete -eq 1 ] && [ "${last:-0}" -ge 3 ]'
"$BIN" train --out "$T/kill" --resume --max-steps $((last + 1)) >"$T/out" 2>"$T/err"
check "and resumes (1 process)" '[ $? -eq 0 ] && grep -q "resuming after step $last" "$T/err" && [ -s "$T/kill/checkpoint-$((last + 1))/trainer_state.json" ]'

# SIGUSR1 to mpirun: forwarded to both ranks, who agree to stop after the step.
$MPI2 "$BIN" train $SMALL --out "$T/usr1" --max-steps 100000 --save-steps 0 --max-completion-tokens 32 >"$T/out" 2>"$T/err" &
pid=$!
n=0
while [ $n -lt 300 ] && ! [ -s "$T/usr1/metrics.jsonl" ]; do sleep 0.1; n=$((n + 1)); done
kill -USR1 "$(pgrep -P $pid)" 2>/dev/null # mpirun, the child of timeout
wait $pid
rc=$?
steps=$(wc -l <"$T/usr1/metrics.jsonl" 2>/dev/null)
check "SIGUSR1 to mpirun: exit 0 after saving" '[ $rc -eq 0 ] && [ "$(grep -c "interrupted after step" "$T/err")" -eq 1 ] && [ -s "$T/usr1/checkpoint-$steps/trainer_state.json" ]'

cli_done
