#!/bin/sh
# Crash safety of checkpoints under SIGKILL. `iapo train` on a tiny model that
# saves a checkpoint after every step (a step is a few milliseconds, about half
# of it the save) is killed with SIGKILL many times: half of the kills after a
# random delay from the start of the process (start-up, steps, saves), half
# the moment a checkpoint-N.tmp-* directory appears plus a random spin (inside
# a save). After every kill:
#  - the highest checkpoint-N/ holds every file of a checkpoint, trainer_state
#    .json last, and optimizer.bin of the exact size, and `iapo generate` loads it;
#  - it is not older than the newest checkpoint seen before the kill (a save
#    never destroys the previous one);
#  - the next run is `--resume`, and says it resumes from exactly that step.
# At the end the run is resumed to a fixed step count and must equal, bit for
# bit (weights, AdamW moments, every metric but the timings), one run of the
# same options that was never interrupted. Two runs: plain GRPO (30 kills) and
# --iterations 2 (10 kills), whose odd checkpoints stop inside a rollout and
# carry rollout.bin.
# Prints the kill counts: during a save (a temporary directory was there when
# the process died), otherwise after start-up, or during start-up.
KILLS1=${IAPO_KILLS:-30}
KILLS2=${IAPO_KILLS2:-10}
. "$(dirname "$0")/lib_cli.sh"
cli_tmp cli_kill

cli_tiny_run_setup

# iapo's token terms make every step change the weights and the moments (all
# rewards are equal here, so plain GRPO would not); a constant learning rate
# makes the final --max-steps irrelevant to the steps before it.
OPTS="--model $T/model --data $T/data.jsonl --prompts-per-step 2 --num-generations 2 --max-completion-tokens 8
 --system x --no-one-shot --learning-rate 1e-3 --lr-schedule constant --algo iapo --threads 1"
FILES="config.json generation_config.json model.safetensors tokenizer.json tokenizer_config.json trainer_state.json optimizer.bin rng_state.json"

rand() { # 0..65535
	od -An -N2 -tu2 /dev/urandom | tr -d ' '
}

# Highest N of RUN/checkpoint-N (final names only), or -1.
latest() {
	best=-1
	for d in "$RUN"/checkpoint-*; do
		n=${d##*/checkpoint-}
		case "$n" in '' | *[!0-9]*) continue ;; esac
		[ "$n" -gt "$best" ] && best=$n
	done
	echo $best
}

tmps() { # the temporary directories there now
	for d in "$RUN"/checkpoint-*.tmp-*; do [ -e "$d" ] && printf '%s ' "${d##*/}"; done
}

# A temporary directory that was not there when the process started
# (a kill during start-up leaves the previous kill's ones in place).
new_tmp() {
	for d in "$RUN"/checkpoint-*.tmp-*; do
		[ -e "$d" ] || continue
		case " $stale" in *" ${d##*/} "*) ;; *) return 0 ;; esac
	done
	return 1
}

# The moments of this model: a 64-byte header + 2 x 27,136 floats.
OPT_SIZE=$((64 + 2 * 4 * 27136))

complete() { # checkpoint dir: every file there and non-empty, optimizer.bin exact
	for f in $FILES; do [ -s "$1/$f" ] || { echo "missing or empty: $1/$f"; return 1; }; done
	[ "$(wc -c <"$1/optimizer.bin")" -eq "$OPT_SIZE" ] || { echo "optimizer.bin size: $1"; return 1; }
	"$BIN" generate --model "$1" --prompt hi --max-tokens 2 --temperature 0 >/dev/null 2>"$T/generr" ||
		{ cat "$T/generr"; return 1; }
}

# One run killed $3 times: options $2 (besides $OPTS), run directory
# $T/run-$1; then resumed to a fixed step and compared with a run of the same
# options that was never interrupted. Leaves RUN and M for what follows.
kill_run() {
	RUN="$T/run-$1"
	XOPTS=$2
	KILLS=$3
	# Round 0 starts the run; it is killed only once checkpoint-1 exists.
	"$BIN" train $OPTS $XOPTS --out "$RUN" --max-steps 100000 --save-steps 1 >/dev/null 2>"$T/err0" &
	pid=$!
	stale=
	n=0
	while [ $n -lt 600 ] && ! [ -s "$RUN/checkpoint-1/trainer_state.json" ]; do sleep 0.05; n=$((n + 1)); done

	k=0; rnd_save=0; in_save=0; in_step=0; in_start=0; resumes=0; broken=0; lost=0; before=1
	while [ $k -lt $KILLS ]; do
		r=$(rand)
		if [ $((k % 2)) -eq 0 ]; then
			# A random moment: 0-600 ms after the process started.
			ms=$((r % 600))
			sleep "$((ms / 1000)).$(printf %03d $((ms % 1000)))"
		else
			# Inside a save: spin until a temporary directory appears (at most
			# ~2 s), then a random number of spins more.
			n=0
			while [ $n -lt 200000 ] && ! new_tmp; do n=$((n + 1)); done
			n=$((r % 40))
			while [ $n -gt 0 ]; do new_tmp; n=$((n - 1)); done
		fi
		kill -KILL $pid 2>/dev/null
		wait $pid 2>/dev/null
		k=$((k + 1))
		if new_tmp; then
			in_save=$((in_save + 1))
			[ $((k % 2)) -eq 1 ] && rnd_save=$((rnd_save + 1))
		elif [ $k -gt 1 ] && ! grep -q "resuming after step" "$T/err"; then
			in_start=$((in_start + 1))
		else
			in_step=$((in_step + 1))
		fi
		# The run that was killed resumed from the checkpoint seen before it.
		if [ $k -gt 1 ] && grep -q "resuming after step" "$T/err"; then
			if grep -q "resuming after step $before from" "$T/err"; then
				resumes=$((resumes + 1))
			else
				bad "kill $k: expected to resume after step $before, the run said: $(grep resuming "$T/err")"
			fi
		fi
		now=$(latest)
		if [ "$now" -lt "$before" ]; then
			lost=$((lost + 1))
			echo "kill $k: latest checkpoint went back from $before to $now"
		fi
		if ! complete "$RUN/checkpoint-$now"; then
			broken=$((broken + 1))
			echo "kill $k: checkpoint-$now is not complete"
			ls -la "$RUN/checkpoint-$now"
			break
		fi
		case "$XOPTS" in *"--iterations 2"*)
			if [ $((now % 2)) -eq 1 ] && ! [ -s "$RUN/checkpoint-$now/rollout.bin" ]; then
				broken=$((broken + 1))
				echo "kill $k: checkpoint-$now stops inside a rollout but holds no rollout.bin"
				break
			fi
		esac
		[ -n "$IAPO_KILL_VERBOSE" ] && echo "kill $k: latest $now, temporary: $(tmps)"
		before=$now
		stale=$(tmps)
		"$BIN" train --out "$RUN" --resume >/dev/null 2>"$T/err" &
		pid=$!
	done
	kill -KILL $pid 2>/dev/null
	wait $pid 2>/dev/null
	echo "$1: kills: $k, half at random moments (during a save: $in_save, $rnd_save of them at a random moment; between saves: $in_step, during start-up: $in_start); resumes that named the latest checkpoint: $resumes; latest checkpoint now $before"
	check "$1: $k kills: the latest checkpoint was complete and loadable every time" '[ $broken -eq 0 ] && [ $k -eq $KILLS ]'
	check "$1: no kill lost a saved checkpoint" '[ $lost -eq 0 ]'
	check "$1: some kills landed inside a save" '[ $in_save -gt 0 ]'
	check "$1: --resume after a kill named the latest checkpoint" '[ $resumes -gt 0 ]'

	# Finish: resume to a fixed step and compare with an uninterrupted run.
	M=$((before + 2))
	"$BIN" train --out "$RUN" --resume --max-steps $M >/dev/null 2>"$T/err"
	check "$1: --resume after the last kill finishes (step $M)" '[ $? -eq 0 ] && grep -q "resuming after step $before" "$T/err" && [ -s "$RUN/checkpoint-$M/trainer_state.json" ]'
	check "$1: no temporary directories left" '[ -z "$(tmps)" ]'
	rm -rf "$T/ref"
	"$BIN" train $OPTS $XOPTS --out "$T/ref" --max-steps $M --save-steps 0 >/dev/null 2>"$T/err"
	check "$1: uninterrupted reference run" '[ $? -eq 0 ]'
	check "$1: killed and resumed $k times = never interrupted: weights" 'cmp -s "$RUN/checkpoint-$M/model.safetensors" "$T/ref/checkpoint-$M/model.safetensors"'
	check "$1: killed and resumed $k times = never interrupted: AdamW moments" 'cmp -s "$RUN/checkpoint-$M/optimizer.bin" "$T/ref/checkpoint-$M/optimizer.bin"'
	strip() { sed 's/,"seconds_[a-z]*":[^,}]*//g' "$1"; }
	strip "$RUN/metrics.jsonl" >"$T/m1"
	strip "$T/ref/metrics.jsonl" >"$T/m2"
	check "$1: metrics.jsonl: one line per step $M, the same as the reference's" '[ "$(wc -l <"$T/m1")" -eq $M ] && cmp -s "$T/m1" "$T/m2"'
}

kill_run grpo "" "$KILLS1"
M1=$M
# --iterations 2: every other checkpoint stops between the two passes over a
# rollout and also holds rollout.bin (resuming without it is an error).
kill_run iterations2 "--iterations 2" "$KILLS2"
RUN="$T/run-grpo"
M=$M1

# SIGTERM (what a batch system sends before its SIGKILL): the step finishes,
# a checkpoint is saved, exit 0 with a message naming it.
"$BIN" train --out "$RUN" --resume --max-steps 100000 --save-steps 0 >/dev/null 2>"$T/err" &
pid=$!
n=0
while [ $n -lt 300 ] && [ "$(wc -l <"$RUN/metrics.jsonl")" -le $M ]; do sleep 0.02; n=$((n + 1)); done
kill -TERM $pid 2>/dev/null
wait $pid
rc=$?
now=$(latest)
check "SIGTERM: exit 0, saved checkpoint-$now, named in the message" '[ $rc -eq 0 ] && [ "$now" -gt $M ] && grep -q "interrupted after step $now of 100000; saved .*checkpoint-$now" "$T/err" && complete "$RUN/checkpoint-$now"'

cli_done
