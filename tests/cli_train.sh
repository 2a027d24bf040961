#!/bin/sh
# iapo train on a tiny random model (iapo init) and a tiny dataset: a short run
# leaves config.json, metrics.jsonl and complete checkpoint-N/ directories;
# --resume of a finished run does nothing; SIGINT finishes the step, saves and
# exits 0; --config applies a JSON file (an unknown key is exit 2 naming it);
# usage errors (inconsistent batch options, missing --data, an unknown algo) exit
# 2; a bad data row exits 1 naming its line; --resume of a missing run exits 1.
. "$(dirname "$0")/lib_cli.sh"
cli_tmp cli_train

cli_tiny_run_setup
head -n 3 "$T/data.jsonl" >"$T/eval.jsonl"

# Small and fast: 2 prompts x 2 completions of at most 8 tokens.
SMALL="--model $T/model --data $T/data.jsonl --prompts-per-step 2 --num-generations 2 --max-completion-tokens 8
 --system x --no-one-shot --learning-rate 1e-3 --threads 2"

"$BIN" train $SMALL --out "$T/run" --max-steps 2 --save-steps 1 >"$T/out" 2>"$T/err"
check "train: exit 0" '[ $? -eq 0 ]'
check "train: nothing on stdout" '[ ! -s "$T/out" ]'
check "run dir files" '[ -s "$T/run/config.json" ] && [ -s "$T/run/metrics.jsonl" ]'
check "metrics: one line per step" '[ "$(wc -l <"$T/run/metrics.jsonl")" -eq 2 ]'
check "metrics fields" 'head -n 1 "$T/run/metrics.jsonl" | grep -q "\"step\":1,.*\"reward_mean\":.*\"accuracy\":.*\"completion_length_mean\":.*\"kl\":.*\"entropy\":.*\"grad_norm\":.*\"learning_rate\":.*\"seconds_rollout\":.*\"seconds_total\":"'
check "checkpoints: HF dir + trainer state" 'for c in 1 2; do for f in config.json generation_config.json model.safetensors tokenizer.json tokenizer_config.json trainer_state.json optimizer.bin rng_state.json; do [ -s "$T/run/checkpoint-$c/$f" ] || exit 1; done; done'
check "no temporary directories" '[ -z "$(ls -a "$T/run" | grep -e .tmp- -e .old-)" ]'
check "config.json holds the resolved options" 'grep -q "\"micro-batch\":[[:space:]]*4" "$T/run/config.json" && grep -q "\"max-steps\":[[:space:]]*2" "$T/run/config.json"'
check "plain progress lines off a terminal" 'grep -q "^train step 2/2 reward" "$T/err" && grep -q "final checkpoint .*checkpoint-2" "$T/err"'
check "checkpoint loads: iapo generate" '"$BIN" generate --model "$T/run/checkpoint-2" --prompt hi --max-tokens 2 --temperature 0 >/dev/null 2>&1'
"$BIN" train $SMALL --out "$T/nokl" --max-steps 1 --beta 0 >"$T/out" 2>"$T/err"
check "--beta 0: no reference model, so no kl in metrics.jsonl (not a measured 0)" '[ $? -eq 0 ] && grep -q "\"entropy\":" "$T/nokl/metrics.jsonl" && ! grep -q "\"kl\":" "$T/nokl/metrics.jsonl"'

"$BIN" train --out "$T/run" --resume >"$T/out" 2>"$T/err"
check "--resume of a finished run: exit 0, nothing to do" '[ $? -eq 0 ] && grep -q "resuming after step 2" "$T/err" && [ "$(wc -l <"$T/run/metrics.jsonl")" -eq 2 ]'
"$BIN" train $SMALL --out "$T/run" --max-steps 2 >"$T/out" 2>"$T/err"
check "an existing run is not overwritten: exit 2" '[ $? -eq 2 ] && grep -q -- "--resume" "$T/err"'
"$BIN" train --out "$T/run" --resume --max-steps 3 >"$T/out" 2>"$T/err"
check "--resume with more steps continues" '[ $? -eq 0 ] && [ "$(wc -l <"$T/run/metrics.jsonl")" -eq 3 ] && [ -d "$T/run/checkpoint-3" ]'
"$BIN" train $(echo "$SMALL" | sed "s|--model [^ ]*||") --model "$T/run/./checkpoint-3" --out "$T/run" --overwrite --max-steps 1 >"$T/out" 2>"$T/err"
check "--overwrite refuses a --model that is one of --out's checkpoints" '[ $? -eq 2 ] && grep -q "would delete it" "$T/err" && [ -s "$T/run/checkpoint-3/model.safetensors" ]'

printf '{"max-steps": 1, "beta": 2e-3, "learning_rate": 5, "eval-steps": 1}\n' >"$T/cfg.json"
"$BIN" train $SMALL --out "$T/cfgrun" --config "$T/cfg.json" --eval-data "$T/eval.jsonl" --eval-generations 2 >"$T/out" 2>"$T/err"
check "--config applied (the command line wins), with eval" '[ $? -eq 0 ] && [ "$(wc -l <"$T/cfgrun/metrics.jsonl")" -eq 1 ] && grep -q "\"beta\":[[:space:]]*0.002" "$T/cfgrun/config.json" && grep -q "\"learning-rate\":[[:space:]]*0.001" "$T/cfgrun/config.json" && grep -q "\"eval_accuracy\":" "$T/cfgrun/metrics.jsonl"'
"$BIN" train $SMALL --out "$T/split" --max-steps 1 --eval-count 2 --eval-steps 1 --eval-generations 1 >"$T/out" 2>"$T/err"
check "--eval-count holds out rows of --data for eval" '[ $? -eq 0 ] && grep -q "\"eval_problems\":2," "$T/split/metrics.jsonl"'
printf '{"max-steps": 1, "learnig-rate": 2e-3}\n' >"$T/typo.json"
"$BIN" train $SMALL --out "$T/r2" --config "$T/typo.json" >"$T/out" 2>"$T/err"
check "--config unknown key: exit 2 naming it" '[ $? -eq 2 ] && grep -q "typo.json: key .learnig-rate.: unknown option" "$T/err"'

check "rollouts sample in bf16 by default (config.json says so)" 'grep -q "\"rollout-bf16\":[[:space:]]*true" "$T/run/config.json" && grep -q "\"rollout-fp32\":[[:space:]]*false" "$T/run/config.json"'
"$BIN" train $SMALL --out "$T/fp32" --max-steps 1 --rollout-fp32 >"$T/out" 2>"$T/err"
check "--rollout-fp32: the way back, recorded as rollout-bf16 false" '[ $? -eq 0 ] && grep -q "\"rollout-bf16\":[[:space:]]*false" "$T/fp32/config.json"'
"$BIN" train $SMALL --out "$T/r7" --rollout-bf16 --rollout-fp32 >"$T/out" 2>"$T/err"
check "--rollout-bf16 with --rollout-fp32: exit 2" '[ $? -eq 2 ] && grep -q "contradict" "$T/err"'

"$BIN" train $SMALL --out "$T/r3" --micro-batch 3 --grad-accum 2 >"$T/out" 2>"$T/err"
check "inconsistent batch options: exit 2" '[ $? -eq 2 ] && grep -q "inconsistent batch options" "$T/err"'
"$BIN" train --model "$T/model" --out "$T/r4" >"$T/out" 2>"$T/err"
check "missing --data: exit 2" '[ $? -eq 2 ] && grep -q -- "--data FILE is required" "$T/err"'
"$BIN" train $SMALL --out "$T/r5" --algo ppo >"$T/out" 2>"$T/err"
check "an unknown --algo: exit 2" '[ $? -eq 2 ] && grep -q "algo" "$T/err"'
"$BIN" train $SMALL --out "$T/r5" --bogus 1 >"$T/out" 2>"$T/err"
check "unknown option: exit 2" '[ $? -eq 2 ] && grep -q "unknown option .--bogus." "$T/err"'

sed 's/"prompt"/"q"/; s/"answer"/"a"/' "$T/data.jsonl" >"$T/fields.jsonl"
"$BIN" train $SMALL --data "$T/fields.jsonl" --data-format generic --prompt-field q --answer-field a --out "$T/fields" --max-steps 1 >"$T/out" 2>"$T/err"
check "--prompt-field/--answer-field" '[ $? -eq 0 ] && [ "$(wc -l <"$T/fields/metrics.jsonl")" -eq 1 ]'
"$BIN" train $SMALL --data "$T/fields.jsonl" --out "$T/fields2" --max-steps 1 >"$T/out" 2>"$T/err"
check "without them: exit 1 naming the file" '[ $? -eq 1 ] && grep -q "fields.jsonl" "$T/err"'

{ head -n 2 "$T/data.jsonl"; echo '{"prompt": "What is 9+1?", "answer": }'; } >"$T/broken.jsonl"
"$BIN" train --model "$T/model" --data "$T/broken.jsonl" --out "$T/r6" >"$T/out" 2>"$T/err"
check "bad data row: exit 1 with its line" '[ $? -eq 1 ] && grep -q "broken.jsonl: line 3" "$T/err"'
"$BIN" train --out "$T/nowhere" --resume >"$T/out" 2>"$T/err"
check "--resume of a missing run: exit 1 naming it" '[ $? -eq 1 ] && grep -q "nowhere: --resume" "$T/err"'
"$BIN" train --help >"$T/out" 2>&1
check "--help documents the defaults" '[ $? -eq 0 ] && grep -q -- "--learning-rate F .*default 1e-6" "$T/out" && grep -q -- "--loss-type T .*default bnpo" "$T/out" && grep -q -- "--num-generations G .*default 8" "$T/out" && grep -q -- "--rollout-bf16 .*ON BY DEFAULT" "$T/out" && grep -q -- "--rollout-fp32 " "$T/out"'

# SIGINT: the step finishes, a checkpoint is saved, exit 0.
"$BIN" train $SMALL --out "$T/sig" --max-steps 100000 --save-steps 0 --max-completion-tokens 32 >"$T/out" 2>"$T/sigerr" &
pid=$!
n=0
while [ $n -lt 300 ] && ! [ -s "$T/sig/metrics.jsonl" ]; do sleep 0.1; n=$((n + 1)); done
kill -INT $pid 2>/dev/null
n=0
while [ $n -lt 300 ] && kill -0 $pid 2>/dev/null; do sleep 0.1; n=$((n + 1)); done
kill -0 $pid 2>/dev/null && kill -9 $pid
wait $pid
rc=$?
steps=$(wc -l <"$T/sig/metrics.jsonl" 2>/dev/null)
check "SIGINT: exit 0 after saving" '[ $rc -eq 0 ] && grep -q "interrupted after step" "$T/sigerr" && [ -s "$T/sig/checkpoint-$steps/trainer_state.json" ]'

cli_done
