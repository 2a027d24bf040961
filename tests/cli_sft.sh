#!/bin/sh
# iapo sft from scratch on the synthetic task (iapo data synth + iapo data
# tokenizer + a config.json): a short run leaves config.json, metrics.jsonl
# (loss, eval_loss) and complete checkpoint-N/ directories that iapo generate,
# iapo eval and iapo train load; --resume of a finished run does nothing;
# SIGTERM finishes the step, saves and exits 0, and --resume continues;
# --config applies a JSON file (the command line wins); usage errors exit 2;
# a row without the completion field and a config without a tokenizer exit 1
# naming the file and line / directory. Under mpirun (when built with MPI):
# 2 ranks x batch 4 = 1 process x batch 4 x 2 accumulation steps.
. "$(dirname "$0")/lib_cli.sh"
cli_tmp cli_sft

"$BIN" data synth --out "$T/data" --train 400 --test 20 --steps 1 --redundancy 0 --max-value 10 >/dev/null 2>"$T/err" &&
	"$BIN" data tokenizer --data "$T/data/train.jsonl" --out "$T/tok" --vocab 384 >/dev/null 2>>"$T/err"
check "iapo data synth + tokenizer" '[ $? -eq 0 ]'
cat >"$T/qwen2.json" <<'JSON'
{"model_type": "qwen2", "vocab_size": 384, "hidden_size": 32, "intermediate_size": 64,
 "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
 "max_position_embeddings": 512, "tie_word_embeddings": true, "initializer_range": 0.05}
JSON
SMALL="--model $T/qwen2.json --tokenizer $T/tok --data $T/data/train.jsonl --system Solve. --no-one-shot
 --learning-rate 3e-3 --batch-size 8 --threads 2"

"$BIN" sft $SMALL --out "$T/run" --max-steps 30 --save-steps 10 --logging-steps 5 --eval-data "$T/data/test.jsonl" \
	--eval-steps 10 >"$T/out" 2>"$T/err"
check "sft: exit 0" '[ $? -eq 0 ]'
check "sft: nothing on stdout" '[ ! -s "$T/out" ]'
check "run dir files" '[ -s "$T/run/config.json" ] && [ -s "$T/run/metrics.jsonl" ]'
check "metrics: a line every 5 steps" '[ "$(wc -l <"$T/run/metrics.jsonl")" -eq 6 ]'
check "metrics fields" 'head -n 1 "$T/run/metrics.jsonl" | grep -q "\"step\":5,\"epoch\":.*\"loss\":.*\"learning_rate\":.*\"grad_norm\":.*\"tokens\":.*\"tokens_per_second\":"'
check "eval_loss every 10 steps" '[ "$(grep -c "\"eval_loss\":" "$T/run/metrics.jsonl")" -eq 3 ]'
check "the loss falls" 'awk -F"\"loss\":" "NR==1{split(\$2,a,\",\"); f=a[1]} {split(\$2,a,\",\"); l=a[1]} END{exit !(l < f - 1)}" "$T/run/metrics.jsonl"'
check "checkpoints: HF dir + trainer state" 'for c in 10 20 30; do for f in config.json generation_config.json model.safetensors tokenizer.json tokenizer_config.json trainer_state.json optimizer.bin rng_state.json; do [ -s "$T/run/checkpoint-$c/$f" ] || exit 1; done; done'
check "no temporary directories" '[ -z "$(ls -a "$T/run" | grep -e .tmp- -e .old-)" ]'
check "config.json holds the resolved options" 'grep -q "\"per-device-train-batch-size\":[[:space:]]*8" "$T/run/config.json" && grep -q "\"max-steps\":[[:space:]]*30" "$T/run/config.json" && grep -q "\"completion-field\":[[:space:]]*\"completion\"" "$T/run/config.json"'
check "plain progress lines off a terminal" 'grep -q "^sft step 30/30 loss" "$T/err" && grep -q "final model .*checkpoint-30" "$T/err"'
check "the saved model loads: iapo generate" '"$BIN" generate --model "$T/run/checkpoint-30" --prompt "Tom has 3 apples." --max-tokens 4 --temperature 0 >/dev/null 2>"$T/gerr"'
eot=$(echo "<|im_end|>" | "$BIN" tokenize --model "$T/tok")
check "the saved model stops at <|im_end|> ($eot): in generation_config's eos ids" '[ -n "$eot" ] && tr -d " \t\n" <"$T/run/checkpoint-30/generation_config.json" | grep -q "\"eos_token_id\":\[\([0-9]*,\)*$eot[],]"'
"$BIN" eval --model "$T/run/checkpoint-30" --data "$T/data/test.jsonl" --system Solve. --no-one-shot -n 1 --temperature 0 --max-tokens 30 --threads 2 >"$T/out" 2>"$T/err"
check "iapo eval of the saved model" '[ $? -eq 0 ] && grep -q "checkpoint-30" "$T/out"'
"$BIN" train --model "$T/run/checkpoint-30" --data "$T/data/train.jsonl" --out "$T/rl" --system Solve. --no-one-shot \
	--prompts-per-step 2 --num-generations 2 --max-completion-tokens 24 --max-steps 1 --threads 2 >"$T/out" 2>"$T/err"
check "iapo train starts from it" '[ $? -eq 0 ] && [ -d "$T/rl/checkpoint-1" ]'

"$BIN" sft --model "$T/run/checkpoint-30" --data "$T/data/train.jsonl" --system Solve. --no-one-shot --batch-size 8 \
	--num-train-epochs 0.1 --logging-steps 1 --threads 2 --out "$T/ft" >"$T/out" 2>"$T/err"
check "fine-tuning a model directory (its tokenizer), 0.1 epochs = 5 steps of 8 of 400 rows" '[ $? -eq 0 ] && [ -d "$T/ft/checkpoint-5" ] && [ "$(wc -l <"$T/ft/metrics.jsonl")" -eq 5 ]'
check "it starts from the trained weights (loss below the fresh model's first)" 'a=$(head -n 1 "$T/run/metrics.jsonl" | sed "s/.*\"loss\":\([^,]*\),.*/\1/"); b=$(head -n 1 "$T/ft/metrics.jsonl" | sed "s/.*\"loss\":\([^,]*\),.*/\1/"); awk "BEGIN{exit !($b < $a - 1)}"'
"$BIN" sft --model "$T/run/checkpoint-30" --data "$T/data/train.jsonl" --no-chat-template --max-steps 1 --threads 2 \
	--out "$T/raw" >"$T/out" 2>"$T/err"
check "--no-chat-template: the bare problem, the model's EOS" '[ $? -eq 0 ] && [ -d "$T/raw/checkpoint-1" ]'
"$BIN" sft --out "$T/raw" --resume --max-steps 2 >"$T/out" 2>"$T/err"
check "--resume of a --no-chat-template run (its config.json reapplied)" '[ $? -eq 0 ] && [ -d "$T/raw/checkpoint-2" ]'
"$BIN" sft --out "$T/run" --resume >"$T/out" 2>"$T/err"
check "--resume of a finished run: exit 0, nothing to do" '[ $? -eq 0 ] && grep -q "already complete" "$T/err" && [ "$(wc -l <"$T/run/metrics.jsonl")" -eq 6 ]'
"$BIN" sft $SMALL --out "$T/run" --max-steps 2 >"$T/out" 2>"$T/err"
check "an existing run is not overwritten: exit 2" '[ $? -eq 2 ] && grep -q -- "--resume" "$T/err"'

printf '{"max-steps": 2, "learning_rate": 5, "logging-steps": 1}\n' >"$T/cfg.json"
"$BIN" sft $SMALL --out "$T/cfgrun" --config "$T/cfg.json" >"$T/out" 2>"$T/err"
check "--config applied (the command line wins)" '[ $? -eq 0 ] && [ "$(wc -l <"$T/cfgrun/metrics.jsonl")" -eq 2 ] && grep -q "\"learning-rate\":[[:space:]]*0.003" "$T/cfgrun/config.json"'
printf '{"learning-rat": 1}\n' >"$T/badcfg.json"
"$BIN" sft $SMALL --out "$T/x" --config "$T/badcfg.json" >"$T/out" 2>"$T/err"
check "--config with an unknown key: exit 2 naming it" '[ $? -eq 2 ] && grep -q "learning-rat" "$T/err"'

# SIGTERM: the step finishes, a checkpoint is saved, exit 0; --resume continues.
"$BIN" sft $SMALL --out "$T/sig" --max-steps 1000000 --save-steps 0 >"$T/out" 2>"$T/sigerr" &
pid=$!
i=0
while [ $i -lt 300 ] && ! grep -q '"step":3,' "$T/sig/metrics.jsonl" 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
kill -TERM $pid
wait $pid
rc=$?
check "SIGTERM: exit 0 after saving" '[ $rc -eq 0 ] && grep -q "interrupted after step" "$T/sigerr" && ls -d "$T/sig"/checkpoint-* >/dev/null 2>&1'
n=$(ls -d "$T/sig"/checkpoint-* 2>/dev/null | sed 's/.*checkpoint-//' | sort -n | tail -n 1)
"$BIN" sft --out "$T/sig" --resume --max-steps $((n + 2)) >"$T/out" 2>"$T/err"
check "--resume after SIGTERM continues" '[ $? -eq 0 ] && [ -d "$T/sig/checkpoint-$((n + 2))" ] && grep -q "\"step\":$((n + 2))," "$T/sig/metrics.jsonl"'

"$BIN" sft --help >"$T/out" 2>&1
check "--help: exit 0, TRL names" '[ $? -eq 0 ] && grep -q -- "--per-device-train-batch-size" "$T/out" && grep -q -- "--gradient-accumulation-steps" "$T/out" && grep -q -- "--completion-field" "$T/out"'
"$BIN" sft $SMALL --out "$T/x" --no-such-option 1 >"$T/out" 2>"$T/err"
check "unknown option: exit 2" '[ $? -eq 2 ] && grep -q "no-such-option" "$T/err"'
"$BIN" sft $SMALL >"$T/out" 2>"$T/err"
check "no --out: exit 2" '[ $? -eq 2 ] && grep -q -- "--out" "$T/err"'
"$BIN" sft $SMALL --out "$T/x" --resume --overwrite >"$T/out" 2>"$T/err"
check "--resume with --overwrite: exit 2" '[ $? -eq 2 ]'
"$BIN" sft $SMALL --out "$T/x" --warmup-steps 2 --warmup-ratio 0.5 >"$T/out" 2>"$T/err"
check "two warmups: exit 2" '[ $? -eq 2 ] && grep -q "give one" "$T/err"'

printf '{"prompt": "a", "answer": "1", "completion": "x"}\n{"prompt": "b", "answer": "2"}\n' >"$T/bad.jsonl"
"$BIN" sft $SMALL --data "$T/bad.jsonl" --out "$T/x" >"$T/out" 2>"$T/err"
check "a row without a completion: exit 1 naming file and line" '[ $? -eq 1 ] && grep -q "bad.jsonl: line 2: expected field \"completion\"" "$T/err"'
mkdir -p "$T/lone" && cp "$T/qwen2.json" "$T/lone/config.json"
"$BIN" sft --model "$T/lone/config.json" --data "$T/data/train.jsonl" --out "$T/x" >"$T/out" 2>"$T/err"
check "a config.json without a tokenizer: exit 1" '[ $? -eq 1 ] && grep -q "tokenizer" "$T/err" && grep -q "$T/lone" "$T/err"'

# Data parallelism: 2 ranks x batch 4 make the steps 1 process x batch 4 x 2
# accumulation steps makes (the same examples; the gradient summed in
# another order).
if "$BIN" --version | grep -q "MPI: Open MPI" && command -v mpirun >/dev/null 2>&1; then
	export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
	export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}:detect_leaks=0"
	MP="--model $T/qwen2.json --tokenizer $T/tok --data $T/data/train.jsonl --system Solve. --no-one-shot
 --learning-rate 3e-3 --batch-size 4 --max-steps 4 --threads 1"
	"$BIN" sft $MP --gradient-accumulation-steps 2 --out "$T/one" >/dev/null 2>"$T/err1"
	timeout 120 mpirun --oversubscribe --bind-to none -np 2 "$BIN" sft $MP --out "$T/two" >/dev/null 2>"$T/err2"
	check "mpirun -np 2: exit 0, one run directory" '[ $? -eq 0 ] && [ "$(wc -l <"$T/two/metrics.jsonl")" -eq 4 ] && [ -d "$T/two/checkpoint-4" ]'
	check "2 ranks = 1 process with 2 accumulation steps (loss within 1e-5)" 'paste -d" " "$T/one/metrics.jsonl" "$T/two/metrics.jsonl" | sed "s/[^ ]*\"loss\":\([^,]*\),[^ ]*\"loss\":\([^,]*\),.*/\1 \2/" | awk "{d=\$1-\$2; if (d<0) d=-d; if (d > 1e-5 * (\$1 > 1 ? \$1 : 1)) bad=1; n++} END{exit bad || n != 4}"'
else
	ok "built without MPI or no mpirun: the 2-rank check is skipped"
fi

IAPO_MEMORY_LIMIT=1M "$BIN" sft $SMALL --out "$T/memrun" --max-steps 1 >"$T/out" 2>"$T/err"
check "a run that does not fit in memory is refused before the run dir exists" '[ $? -ne 0 ] && grep -q "memory" "$T/err" && [ ! -e "$T/memrun" ]'
IAPO_MEMORY_LIMIT=1M "$BIN" sft $SMALL --out "$T/memrun" --max-steps 1 --no-memory-check >"$T/out" 2>"$T/err"
check "--no-memory-check runs it anyway" '[ $? -eq 0 ] && [ -d "$T/memrun/checkpoint-1" ]'

cli_done
