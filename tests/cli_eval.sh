#!/bin/sh
# `iapo eval` end to end on tiny random Qwen2 models made by `iapo init`:
# usage errors exit 2, a missing data file or model exits 1 naming it; one
# model directory gives one row; a run directory has every checkpoint-N/
# evaluated in numeric order (checkpoint-2 before checkpoint-10) and nothing
# else; CSV and JSON parse (Python's csv and json modules) and agree with each
# other and with the table; the same seed repeats the metrics, the batch size
# does not change them, --passk first and --limit do what --help says.
PY=/usr/bin/python3
. "$(dirname "$0")/lib_cli.sh"
cli_tmp cli_eval

printf '%s\n' '{"prompt": "What is 1+1?", "answer": "2"}' '{"prompt": "What is 2+2?", "answer": "4"}' \
	'{"prompt": "What is 3+3?", "answer": "6"}' >"$T/data.jsonl"

# ---- usage errors (no model needed)
"$BIN" eval --data "$T/data.jsonl" >"$T/o" 2>"$T/e"; rc=$?
[ $rc -eq 2 ] && grep -q -- "--model" "$T/e" && [ ! -s "$T/o" ]; check "missing --model: exit 2, says so" $?
"$BIN" eval --model "$T" >"$T/o" 2>"$T/e"; rc=$?
[ $rc -eq 2 ] && grep -q -- "--data" "$T/e"; check "missing --data: exit 2" $?
for bad_opt in "-n 0" "-n x" "-k 0" "-k 1,,2" "-k 1,2," "-k a" "-n 4 -k 8" "--passk best" "--temperature -1" \
	"--top-p 0" "--max-tokens -1" "--seed -3" "--seed 18446744073709551616" "--limit -1" "--batch 0" "--format csv" "--frobnicate" "--out="; do
	# shellcheck disable=SC2086
	"$BIN" eval --model "$T" --data "$T/data.jsonl" $bad_opt >"$T/o" 2>"$T/e"; rc=$?
	[ $rc -eq 2 ] && [ -s "$T/e" ] && [ ! -s "$T/o" ]; check "bad option '$bad_opt': exit 2 with a message" $?
done
"$BIN" eval --model "$T" --data "$T/data.jsonl" -k >"$T/o" 2>"$T/e"; rc=$?
[ $rc -eq 2 ] && grep -q "needs a value" "$T/e"; check "option without its value: exit 2" $?
"$BIN" eval --help >"$T/h" 2>&1; rc=$?
miss=0
for opt in --model --data --format " -n " " -k " --passk --max-tokens --max-model-len --temperature --top-p --top-k \
	--seed --limit --batch --threads --system --no-one-shot --out; do
	grep -q -- "$opt" "$T/h" || { echo "  --help lacks $opt"; miss=1; }
done
[ $rc -eq 0 ] && [ $miss -eq 0 ] && grep -q "default 32" "$T/h"; check "--help lists every option" $?
"$BIN" --help | grep -q "eval"; check "iapo --help lists eval" $?

# ---- models
cat >"$T/config.json" <<'EOF'
{"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "vocab_size": 263, "hidden_size": 32,
 "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
 "max_position_embeddings": 2048, "rope_theta": 1000000.0, "rms_norm_eps": 1e-06,
 "tie_word_embeddings": true, "torch_dtype": "float32"}
EOF
R="$T/run"
"$BIN" init --config "$T/config.json" --out "$R/checkpoint-10" --std 0.5 --seed 10 >"$T/init.log" 2>&1 &&
	"$BIN" init --config "$T/config.json" --out "$R/checkpoint-2" --std 0.5 --seed 2 >>"$T/init.log" 2>&1 &&
	"$BIN" init --config "$T/config.json" --out "$T/model" --std 0.5 --seed 2 >>"$T/init.log" 2>&1; rc=$?
check "iapo init makes the models" $rc
[ $rc -eq 0 ] || { cat "$T/init.log"; cli_done; exit 1; }
# things in a run directory that are not checkpoints
mkdir -p "$R/checkpoint-x" "$R/logs" && : >"$R/checkpoint-3" && echo '{}' >"$R/config.json"

"$BIN" eval --model "$T/model" --data "$T/missing.jsonl" >"$T/o" 2>"$T/e"; rc=$?
[ $rc -eq 1 ] && grep -q "missing.jsonl" "$T/e" && [ ! -s "$T/o" ]; check "missing data: exit 1 naming the file" $?
"$BIN" eval --model "$T/nomodel" --data "$T/data.jsonl" >"$T/o" 2>"$T/e"; rc=$?
[ $rc -eq 1 ] && grep -q "nomodel" "$T/e"; check "missing model: exit 1 naming it" $?
printf '{"prompt": "x"}\n' >"$T/bad.jsonl"
"$BIN" eval --model "$T/model" --data "$T/bad.jsonl" --format generic >"$T/o" 2>"$T/e"; rc=$?
[ $rc -eq 1 ] && grep -q "bad.jsonl" "$T/e" && grep -q "line 1" "$T/e"; check "bad row: exit 1 naming file and line" $?

EV="-n 4 --max-tokens 12"
# shellcheck disable=SC2086
"$BIN" eval --model "$T/model" --data "$T/data.jsonl" $EV >"$T/m.out" 2>"$T/m.err"; rc=$?
[ $rc -eq 0 ] && [ -s "$T/model/eval_results.csv" ] && [ -s "$T/model/eval_results.json" ]
check "model directory: exit 0, eval_results.{csv,json} written inside it" $?
[ "$(grep -c . "$T/m.out")" -eq 2 ] && grep -q "pass@4" "$T/m.out" && grep -q "len@4" "$T/m.out" &&
	grep -q "tok_eff" "$T/m.out" && grep -q "seconds" "$T/m.out"
check "model directory: a header and one row on stdout" $?

# CSV and JSON: parse, one row per model, agree with each other
cat >"$T/check.py" <<'EOF'
import csv, json, sys
prefix, want_steps = sys.argv[1], sys.argv[2]
rows = list(csv.DictReader(open(prefix + ".csv")))
doc = json.load(open(prefix + ".json"))
res = doc["results"]
steps = ",".join("" if r["step"] is None else str(r["step"]) for r in res)
assert steps == want_steps, (steps, want_steps)
assert [r["step"] for r in rows] == ["" if r["step"] is None else str(r["step"]) for r in res]
assert len(rows) == len(res)
for row, r in zip(rows, res):
    assert row["model"] == r["model"]
    assert r["n_problems"] == int(row["n_problems"]) and r["n_samples"] == int(row["n_samples"])
    for k, v in r["pass_at_k"].items():
        assert abs(float(row["pass@" + k]) - v) < 1e-12 and 0 <= v <= 1
        assert abs(float(row["length@" + k]) - r["length_at_k"][k]) < 1e-9
    kmax = max(r["pass_at_k"], key=int)
    eff = r["pass_at_k"][kmax] / r["length_at_k"][kmax] if r["length_at_k"][kmax] else 0
    assert abs(r["token_efficiency"] - eff) < 1e-12
    assert len(r["problems"]) == r["n_problems"]
    assert abs(sum(p["correct"] for p in r["problems"]) / (r["n_problems"] * r["n_samples"]) - r["accuracy"]) < 1e-12
    assert r["seconds"] >= 0 and r["time_per_problem"] >= 0
print(json.dumps([{k: v for k, v in r.items() if k not in ("seconds", "time_per_problem", "model")} for r in res],
                 sort_keys=True))
EOF
$PY "$T/check.py" "$T/model/eval_results" "" >"$T/m.metrics"; check "model directory: CSV and JSON parse and agree" $?
$PY -c 'import json,sys; o=json.load(open(sys.argv[1]))["options"]; assert o["n_samples"]==4 and o["seed"]==42 and o["format"]=="generic" and o["max_tokens"]==12' \
	"$T/model/eval_results.json"; check "JSON records the options" $?

# a run directory: every checkpoint, in numeric order
# shellcheck disable=SC2086
"$BIN" eval --model "$R" --data "$T/data.jsonl" $EV >"$T/r.out" 2>"$T/r.err"; rc=$?
[ $rc -eq 0 ]; check "run directory: exit 0" $?
$PY "$T/check.py" "$R/eval_results" "2,10" >"$T/r.metrics"; check "run directory: checkpoint-2 then checkpoint-10, nothing else" $?
awk 'NR == 2 && $1 == "checkpoint-2" { a = 1 } NR == 3 && $1 == "checkpoint-10" { b = 1 } END { exit !(a && b && NR == 3) }' \
	"$T/r.out"; check "run directory: the table lists checkpoint-2 before checkpoint-10" $?
# checkpoint-2 holds the same weights (seed 2) as the model directory: same metrics
$PY -c 'import json,sys; a=json.loads(open(sys.argv[1]).read()); b=json.loads(open(sys.argv[2]).read()); a[0].pop("step"); b[0].pop("step"); assert a[0]==b[0]' \
	"$T/m.metrics" "$T/r.metrics"; check "checkpoint-2 = the model with the same weights" $?

# determinism, batch independence, --out, --passk first, --limit
# shellcheck disable=SC2086
"$BIN" eval --model "$T/model" --data "$T/data.jsonl" $EV --batch 1 --out "$T/b1" >/dev/null 2>&1 &&
	$PY "$T/check.py" "$T/b1" "" >"$T/b1.metrics" && cmp -s "$T/m.metrics" "$T/b1.metrics"
check "--batch 1 and --out: the same metrics as the default batch" $?
# shellcheck disable=SC2086
"$BIN" eval --model "$T/model" --data "$T/data.jsonl" $EV --out "$T/again" --threads 1 >/dev/null 2>&1 &&
	$PY "$T/check.py" "$T/again" "" >"$T/again.metrics" && cmp -s "$T/m.metrics" "$T/again.metrics"
check "same seed: the same metrics" $?
# shellcheck disable=SC2086
"$BIN" eval --model "$T/model" --data "$T/data.jsonl" $EV --seed 7 --out "$T/s7" >/dev/null 2>&1 &&
	$PY "$T/check.py" "$T/s7" "" >"$T/s7.metrics" && ! cmp -s "$T/m.metrics" "$T/s7.metrics"
check "another seed: other samples" $?
# shellcheck disable=SC2086
"$BIN" eval --model "$T/model" --data "$T/data.jsonl" $EV -k 1,3 --passk first --limit 2 --out "$T/f" >"$T/f.out" 2>&1 &&
	$PY -c '
import json, sys
r = json.load(open(sys.argv[1]))["results"][0]
assert r["passk"] == "first" and r["pass_at_k"] == r["pass_at_k_first"] and list(r["pass_at_k"]) == ["1", "3"]
assert r["n_problems"] == 2
' "$T/f.json"
check "-k 1,3 --passk first --limit 2" $?

cli_done
