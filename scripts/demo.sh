#!/bin/sh
# scripts/demo.sh BUILD_DIR — what `make demo` runs until the real demo (a
# small reasoning model trained from scratch, then post-trained with GRPO and
# IAPO) exists. For now it shows the inference path end to end: it writes the
# config of a tiny Qwen2-shaped model into runs/demo-tiny/, makes a randomly
# initialised model from it with `iapo init`, and samples from it with
# `iapo generate` at a fixed seed. The model is untrained, so its text is
# noise; the point is the plumbing (config, weights, tokenizer, chat template,
# KV-cache decoding, sampling) and the speed.
set -eu
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
BIN="$BUILD/iapo"
RUN=runs/demo-tiny
[ -x "$BIN" ] || { echo "demo: $BIN not found; run 'make' first" >&2; exit 1; }
mkdir -p "$RUN"

cat >"$RUN/config-in.json" <<'EOF'
{
  "architectures": ["Qwen2ForCausalLM"],
  "model_type": "qwen2",
  "vocab_size": 263,
  "hidden_size": 128,
  "intermediate_size": 352,
  "num_hidden_layers": 4,
  "num_attention_heads": 4,
  "num_key_value_heads": 2,
  "max_position_embeddings": 2048,
  "rope_theta": 1000000.0,
  "rms_norm_eps": 1e-06,
  "tie_word_embeddings": true,
  "torch_dtype": "float32"
}
EOF

echo "== iapo demo (placeholder until the training demo lands)"
echo "   This is NOT a trained model: a tiny Qwen2-shaped network (4 layers,"
echo "   hidden 128, byte-level tokenizer) with random weights. Its output is"
echo "   noise; what is being shown is the inference path and its speed."
echo
echo "== 1. $BIN init --config $RUN/config-in.json --out $RUN/model"
"$BIN" init --config "$RUN/config-in.json" --out "$RUN/model"
echo
PROMPT="What is 12 + 30?"
echo "== 2. $BIN generate --model $RUN/model --prompt \"$PROMPT\" --seed 1 -n 2 --max-tokens 48"
echo "   (chat template applied; two sampled completions, each followed by '---';"
echo "    the bytes are printed through 'od -c' because random bytes are not text)"
"$BIN" generate --model "$RUN/model" --prompt "$PROMPT" --seed 1 -n 2 --max-tokens 48 \
	--temperature 1.0 >"$RUN/sampled.txt" 2>"$RUN/generate.log" || { cat "$RUN/generate.log" >&2; exit 1; }
od -c "$RUN/sampled.txt" | head -n 12
sed 's/^/   /' "$RUN/generate.log"
echo
echo "== 3. greedy (--temperature 0), 128 tokens: the same bytes on every run"
echo "   (at HF's initial weight scale a random network tends to repeat one token)"
"$BIN" generate --model "$RUN/model" --prompt "$PROMPT" --temperature 0 --max-tokens 128 \
	>"$RUN/greedy.txt" 2>"$RUN/greedy.log" || { cat "$RUN/greedy.log" >&2; exit 1; }
od -c "$RUN/greedy.txt" | head -n 4
sed 's/^/   /' "$RUN/greedy.log"
echo
echo "Files: $RUN/ (config-in.json, model/, sampled.txt, greedy.txt, *.log). The real demo will train this"
echo "kind of model on a synthetic task and compare GRPO with IAPO."
