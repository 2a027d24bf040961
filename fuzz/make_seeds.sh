#!/bin/sh
# Rebuilds the seed corpora fuzz/corpus/<target>/seed-* from real-shaped
# files: PyTorch-written safetensors and HF config.json files of the test
# fixtures (tests/oracle/make_io_fixtures.sh), the real Qwen3 tokenizer and
# the chat templates of Qwen2/2.5/3 and Llama 3/3.1 (tests/oracle/
# make_tokenizer_golden.sh, make_chat_golden.sh), what `iapo init` and the
# fuzz targets themselves write (byte-level tokenizer, shard index,
# checkpoint state), GSM8K rows from ../shared/data/gsm8k, and verifier
# strings from tests/test_reward.c. Run by hand after `make test` (for the
# fixtures) and `make fuzz-build`; the results are committed. Only seed-*
# files are replaced: inputs merged from fuzzing runs and the regress-*
# inputs of fixed problems stay.
#   fuzz/make_seeds.sh [FIXTURES_DIR]      (default build/fixtures)
set -eu
cd "$(dirname "$0")/.."
fx=${1:-build/fixtures}
c=fuzz/corpus
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for t in safetensors config weights tokenizer encode chat dataset reward json trainer_state; do
	mkdir -p "$c/$t"
	rm -f "$c/$t"/seed-*
done
sep() { printf '\n--\n'; }

# A tiny model directory written by iapo (byte-level tokenizer, F32 tensors).
sed 's/"vocab_size": 40/"vocab_size": 300/' "$fx/io/model_qwen2_bf16/config.json" >"$tmp/c300.json"
build/iapo init --config "$tmp/c300.json" --out "$tmp/init" --dtype BF16 >/dev/null

# safetensors: every dtype (misc), torch-written F16/BF16 shards, iapo's own.
cp "$fx/io/misc.safetensors" "$c/safetensors/seed-misc-dtypes"
cp "$fx/io/model_qwen3_f16_sharded/model-00002-of-00002.safetensors" "$c/safetensors/seed-torch-f16-shard"
cp "$fx/io/model_llama_bf16_sharded/model-00003-of-00003.safetensors" "$c/safetensors/seed-torch-bf16-shard"
cp "$fx/io/model_qwen2_f16/model.safetensors" "$c/safetensors/seed-torch-qwen2-f16"

# config.json (+ generation_config.json after a separator).
for m in qwen2_bf16 qwen3_f16_sharded llama_bf16_sharded; do
	cp "$fx/io/model_$m/config.json" "$c/config/seed-$m"
done
{ cat "$tmp/init/config.json"; sep; cat "$tmp/init/generation_config.json"; } >"$c/config/seed-iapo-init-with-generation"

# weights: the index iapo_weights_save writes for fuzz_weights' own shards,
# alone and with a config.json after it.
FUZZ_WEIGHTS_PRINT_INDEX=1 build-fuzz/fuzz_weights -runs=0 2>/dev/null >"$c/weights/seed-index"
{ cat "$c/weights/seed-index"; sep; cat "$fx/io/model_qwen3_f16_sharded/config.json"; } >"$c/weights/seed-index-and-config"

# tokenizer.json: iapo's byte-level one, and a Qwen3-shaped cut of the real
# Qwen3 tokenizer (NFC, Split + ByteLevel, first 400 tokens and the merges
# among them, 12 of its added tokens renumbered after them).
cp "$tmp/init/tokenizer.json" "$c/tokenizer/seed-bytelevel"
/usr/bin/python3 - "$fx/qwen3-tokenizer/tokenizer.json" "$c/tokenizer/seed-qwen3-cut" <<'EOF'
import json, sys
t = json.load(open(sys.argv[1]))
m = t["model"]
keep = 400
m["vocab"] = {k: v for k, v in m["vocab"].items() if v < keep}
m["merges"] = [p for p in m["merges"] if p[0] in m["vocab"] and p[1] in m["vocab"] and p[0] + p[1] in m["vocab"]]
t["added_tokens"] = t["added_tokens"][:12]
for i, a in enumerate(t["added_tokens"]):
    a["id"] = keep + i
open(sys.argv[2], "w").write(json.dumps(t, ensure_ascii=False, separators=(",", ":")))
EOF

# encode: text with numbers, tags, special tokens, non-ASCII, invalid UTF-8.
printf 'Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 duck eggs a day.\n#### 18' >"$c/encode/seed-gsm8k"
printf '<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n<think>\n2+2=4\n</think>\n<answer>\\boxed{4}</answer><|im_end|>' >"$c/encode/seed-chatml"
printf 'caf\303\251 cafe\314\201 \344\275\240\345\245\275 \360\237\230\200 \377\376 \r\n\t  x' >"$c/encode/seed-unicode"

# chat: tokenizer_config.json of each template (+ a conversation).
/usr/bin/python3 - "$fx/chat-golden/golden.json" "$c/chat" <<'EOF'
import json, sys
seen = {}
for e in json.load(open(sys.argv[1])):
    seen.setdefault(e["template"], e)
conv = "\n--\nYou are a helpful assistant.\n--\nWhat is 2+2?\n--\n<think>\nadd\n</think>\n\n<answer>4</answer>\n--\nAnd 3+3?"
for k, e in seen.items():
    s = json.dumps({"bos_token": e["bos"], "eos_token": e["eos"], "chat_template": e["tpl"]}, indent=2)
    if k in ("qwen3", "llama31"):
        s += conv
    open("%s/seed-%s" % (sys.argv[2], k), "w").write(s)
EOF
cp "$tmp/init/tokenizer_config.json" "$c/chat/seed-bytelevel"

# dataset rows: GSM8K (real rows), MATH, DAPO, generic, BOM + CRLF.
head -n 3 ../shared/data/gsm8k/test.jsonl >"$c/dataset/seed-gsm8k"
cat >"$c/dataset/seed-math" <<'EOF'
{"problem": "What is $\\frac{3}{4}$ as a decimal?", "solution": "It is $\\boxed{0.75}$.", "level": "Level 1", "type": "Prealgebra"}
{"problem": "Solve $x+1=43$.", "answer": "42", "solution": "$x = \\boxed{42}$"}
EOF
cat >"$c/dataset/seed-dapo" <<'EOF'
{"data_source": "math_dapo", "prompt": [{"role": "user", "content": "Solve the following math problem step by step. The last line of your response should be of the form Answer: $Answer (without quotes) where $Answer is the answer to the problem.\n\nFind the sum of 2 and 3.\n\nRemember to put your answer on its own line after \"Answer:\"."}], "ability": "MATH", "reward_model": {"ground_truth": "5", "style": "rule-lighteval/MATH_v2"}}
{"prompt": [{"role": "system", "content": "sys"}, {"role": "user", "content": "No affixes here."}], "reward_model": {"ground_truth": 34}}
EOF
cat >"$c/dataset/seed-generic" <<'EOF'
{"prompt": "2+2?", "answer": "4"}

{"prompt": [{"role": "user", "content": "3+3?"}], "answer": 6}
{"extra_info": {"question": "1+1?", "answer": "2"}, "prompt": "x"}
EOF
printf '\357\273\277{"question": "q", "answer": "a\\n#### 1,000"}\r\n' >"$c/dataset/seed-bom-crlf"

# reward: completion, separator, label (cases of tests/test_reward.c).
i=0
while IFS= read -r line; do
	i=$((i + 1))
	printf '%b' "$line" >"$c/reward/seed-$i"
done <<'EOF'
<think>2+2=4</think>\n<answer>4</answer>\n--\n4
<answer>The result is \\boxed{\\frac{1}{2}}.</answer>\n--\n0.5
\\boxed{1} and \\fbox{3}\n--\n3
Natalia sold 48/2 = <<48/2=24>>24 clips.\n#### 72\n--\n72
#### 1,000\n\n--\n1000
\\left( 3, \\frac{\\pi}{2} \\right)\n--\n(3,\\frac{\\pi}{2})
<think>x</think> <answer>x = 5 inches</answer>\n--\n5
so \\boxed 9 is it\n--\n-1,000.50
EOF

# json: configs, numbers at the edges, duplicate keys.
cp "$fx/io/model_llama_bf16_sharded/config.json" "$c/json/seed-config"
printf '[1e-06, 10000.0, 0.1, -0, 3.4028235e38, 1.4e-45, 9007199254740993, 1e400]' >"$c/json/seed-numbers"
printf '{"a": 1, "a": {"b": true, "b": null}, "s": "x\\u00e9\\ud83d\\ude00", "n": null, "t": false, "f": 2.5}' >"$c/json/seed-keys"

# trainer_state: what a two-step run saved (state, rng state, metrics).
TMPDIR=${TMPDIR:-/tmp} FUZZ_PRINT_STATE=1 build-fuzz/fuzz_trainer_state -runs=0 2>/dev/null >"$c/trainer_state/seed-saved"

du -sh "$c"
