#!/bin/sh
# hf_prepare.sh WORK — the iapo side of tests/oracle/hf_roundtrip.py (see its
# header for WORK's layout). Needs a built tree (make: build/iapo,
# build/oracle/hf_probe), the tokenizer fixtures of tests/oracle/make_tokenizer_golden.sh
# in build/fixtures, /work/shared/data/gsm8k/test.jsonl (or GSM8K=FILE) and
# /usr/bin/python3 (no torch needed). Makes, all small (~50 MB with the four
# copies of the Qwen tokenizer):
#   a/init_*   iapo init: Llama untied GQA llama3-RoPE F32 (byte-level
#              tokenizer), Qwen2 tied BF16, Qwen3 head_dim 32 F16 (BPE tokenizer)
#   a/sft_*    iapo sft checkpoints (6 steps, lr 1e-2) of Llama, Qwen2 (tied,
#              biases), Qwen3 (untied) and Qwen3 (tied, one kv head), and the
#              Qwen3 one re-saved sharded in BF16 (iapo_weights_save)
#   a/train_qwen2  an iapo train (GRPO) checkpoint of the Qwen2 one
#   a/rt_*     three transformers-written models of tests/oracle/hf5 re-saved by iapo
# then iapo's logits / greedy tokens / tokenizer ids / chat renders / iapo
# generate outputs for each. Not part of the suite: CI has no transformers.
# Then, where transformers is installed:
#   CUDA_VISIBLE_DEVICES= HF_MAKE=0 python3 tests/oracle/hf_roundtrip.py WORK OUT
set -eu
W=${1:?usage: hf_prepare.sh WORK}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=$ROOT/build/iapo
FIX=$ROOT/build/fixtures
GSM8K=${GSM8K:-/work/shared/data/gsm8k/test.jsonl}
PY=/usr/bin/python3
mkdir -p "$W"
W=$(cd "$W" && pwd)
cd "$W"
rm -rf a ameta tmeta tok cfg run_* rl_* data bpe
mkdir -p a ameta tmeta tok cfg

PROBE=$ROOT/build/oracle/hf_probe # built by make with everything else
[ -x "$PROBE" ] || { echo "hf_prepare: $PROBE not built (run make first)" >&2; exit 1; }

cat >cfg/llama.json <<'J'
{"model_type": "llama", "vocab_size": 384, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 512, "tie_word_embeddings": false, "rope_theta": 500000.0, "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 64}, "rms_norm_eps": 1e-5, "initializer_range": 0.05}
J
cat >cfg/qwen2.json <<'J'
{"model_type": "qwen2", "vocab_size": 384, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 512, "tie_word_embeddings": true, "rope_theta": 1000000.0, "initializer_range": 0.05}
J
cat >cfg/qwen3.json <<'J'
{"model_type": "qwen3", "vocab_size": 384, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 32, "max_position_embeddings": 512, "tie_word_embeddings": false, "rope_theta": 1000000.0, "initializer_range": 0.05}
J
cat >cfg/qwen3t.json <<'J'
{"model_type": "qwen3", "vocab_size": 384, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 1, "head_dim": 16, "max_position_embeddings": 512, "tie_word_embeddings": true, "rope_theta": 10000.0, "initializer_range": 0.05}
J

"$BIN" data synth --out data --train 400 --test 20 --steps 1 --redundancy 0 --max-value 10 >/dev/null
"$BIN" data tokenizer --data data/train.jsonl --out bpe --vocab 384 >/dev/null
for m in llama qwen2 qwen3 qwen3t; do
	"$BIN" sft --model cfg/$m.json --tokenizer bpe --data data/train.jsonl --system Solve. --no-one-shot \
		--learning-rate 1e-2 --batch-size 8 --threads 2 --max-steps 6 --out run_$m >/dev/null 2>&1
	cp -r run_$m/checkpoint-6 a/sft_$m
done
"$BIN" train --model run_qwen2/checkpoint-6 --data data/train.jsonl --out rl_qwen2 --system Solve. --no-one-shot \
	--prompts-per-step 2 --num-generations 2 --max-completion-tokens 24 --max-steps 2 --threads 2 >/dev/null 2>&1
cp -r rl_qwen2/checkpoint-2 a/train_qwen2
rm -f a/*/optimizer.bin a/*/rng_state.json a/*/trainer_state.json
"$BIN" init --config cfg/llama.json --out a/init_llama_f32 --seed 1 >/dev/null
"$BIN" init --config cfg/qwen2.json --out a/init_qwen2_bf16 --seed 2 --dtype BF16 >/dev/null
"$BIN" init --config cfg/qwen3.json --out a/init_qwen3_f16 --seed 3 --dtype F16 --tokenizer bpe >/dev/null
"$PROBE" save a/sft_qwen3 a/sft_qwen3_sharded_bf16 BF16 60000
for n in llama_gqa_untied_f32 qwen2_gqa_tied_f32 qwen3_tied_f16_sharded; do
	"$PROBE" save "$ROOT/tests/oracle/hf5/$n" a/rt_$n F32 0
	"$PY" - "$ROOT/tests/oracle/hf5/$n/hf_case.json" ameta/rt_$n.ids.txt <<'EOF'
import json, sys
c = json.load(open(sys.argv[1]))
open(sys.argv[2], "w").write("%d %d\n%s\n" % (c["B"], c["T"], " ".join(map(str, c["tokens"]))))
EOF
done

"$PY" - "$GSM8K" <<'EOF'
import json, random, sys
r = random.Random(9)
open("ids.txt", "w").write("2 12\n" + " ".join(str(r.randrange(0, 377)) for _ in range(24)) + "\n")
texts = []
for i, line in enumerate(open(sys.argv[1])):
    if i >= 150:
        break
    o = json.loads(line)
    texts += [o["question"], o["answer"]]
texts += ["\ufeffhello", "a\u0085b", "it's '\u017f", "x<|im_end|>y<|endoftext|>", "<think>\nok</think>",
          "emoji \U0001F600\U0001F680 and ZWJ \U0001F468\u200d\U0001F469\u200d\U0001F467", "\u4e2d\u6587\u5b57\u7b26\u6d4b\u8bd5\uff0c\u6807\u70b9\u3002",
          "trailing   ", "\r\n\r\n  \n", "12345678 3.14159 1,000,000", "  leading", "\u00dcn\u00efc\u00f6d\u00e9 \ufb01 \uff21\uff22\uff23",
          "tab\there", "a\u00a0b\u2003c", "<|im_start|>user\nhi<|im_end|>", "don't DON'T You'LL", "\x00\x01 ctrl",
          "ok \U0001F9D1\u200d\U0001F4BB", "$5.50 + $3 = $8.50", "x" * 300]
with open("texts.hex", "w") as f:
    for t in texts:
        f.write(t.encode().hex() + "\n")
EOF

for d in a/*; do
	n=$(basename "$d")
	ids=ids.txt
	[ -f ameta/$n.ids.txt ] && ids=ameta/$n.ids.txt
	"$PROBE" logits "$d" $ids ameta/$n.logits.bin ameta/$n.greedy.txt 10 >/dev/null
	if [ -f "$d/tokenizer.json" ]; then "$PROBE" tok "$d" texts.hex tmeta/$n.tsv; fi
done
for v in qwen3-tokenizer llama3-style gpt2-style bytelevel-only; do
	mkdir -p tok/$v
	cp "$FIX/$v/tokenizer.json" "$FIX/$v/tokenizer_config.json" "$FIX/$v/golden.tsv" tok/$v/
	"$PROBE" tok tok/$v texts.hex tmeta/$v.tsv
done

# iapo generate (its defaults: bf16 weights) on the chat template, greedy.
"$PY" - "$BIN" <<'EOF'
import json, os, subprocess, sys
prompts = [json.loads(l)["prompt"] for l in open("data/test.jsonl")][:3] + ["Tom has 3 apples."]
for n in sorted(os.listdir("a")):
    if not n.startswith(("sft_", "train_")):
        continue
    rows = []
    for p in prompts:
        r = subprocess.run([sys.argv[1], "generate", "--model", "a/" + n, "--prompt", p, "--system", "Solve.",
                            "--temperature", "0", "--max-tokens", "24", "--threads", "1"], capture_output=True,
                           check=True)
        out = r.stdout.decode("utf-8", "replace")
        rows.append({"system": "Solve.", "prompt": p, "text": out[:-1] if out.endswith("\n") else out})
    json.dump(rows, open("ameta/%s.cli.json" % n, "w"))
EOF
cp "$ROOT/tests/oracle/hf_roundtrip.py" "$W/"
rm -rf cfg run_* rl_* data bpe "$PROBE"
echo "hf_prepare.sh: $W ready ($(du -sh "$W" | cut -f1))"
