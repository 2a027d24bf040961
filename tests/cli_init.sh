#!/bin/sh
# iapo init: writes an HF model directory that loads (files, an independent
# Python reader of its safetensors, and `iapo generate` on it when that command
# exists), deterministic per seed; bad configs exit 1 naming the file, usage
# errors exit 2.
. "$(dirname "$0")/lib_cli.sh"
cli_tmp cli_init

# eos DIR: the eos_token_id of DIR's config.json, as JSON
eos() {
	/usr/bin/python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))["eos_token_id"]))' "$1/config.json"
}

cat >"$T/qwen2.json" <<'JSON'
{"model_type": "qwen2", "vocab_size": 300, "hidden_size": 32, "intermediate_size": 64,
 "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
 "max_position_embeddings": 256, "rope_theta": 10000.0, "rms_norm_eps": 1e-6,
 "tie_word_embeddings": true, "initializer_range": 0.05}
JSON
cat >"$T/llama.json" <<'JSON'
{"model_type": "llama", "vocab_size": 263, "hidden_size": 16, "intermediate_size": 32,
 "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
 "tie_word_embeddings": false, "eos_token_id": 258, "bos_token_id": 257}
JSON

"$BIN" init --config "$T/qwen2.json" --out "$T/m1" --seed 7 2>"$T/err"
check "init exits 0" '[ $? -eq 0 ]'
check "init files" 'for f in config.json generation_config.json model.safetensors tokenizer.json tokenizer_config.json; do [ -s "$T/m1/$f" ] || exit 1; done'
check "no temporary dirs left" '[ -z "$(ls -a "$T" | grep -e .tmp- -e .old-)" ]'
check "python reader (F32)" '/usr/bin/python3 tests/oracle/io_check_saved.py "$T/m1" - F32 >"$T/py" 2>&1'
check "eos filled from tokenizer" '[ -n "$(eos "$T/m1")" ] && [ "$(eos "$T/m1")" != "[]" ]'

"$BIN" init --config "$T/qwen2.json" --out "$T/m2" --seed 7 2>/dev/null
check "same seed, same weights" 'cmp -s "$T/m1/model.safetensors" "$T/m2/model.safetensors"'
"$BIN" init --config "$T/qwen2.json" --out "$T/m2" --seed 8 2>/dev/null
check "replaced, other seed differs" '[ $? -eq 0 ] && ! cmp -s "$T/m1/model.safetensors" "$T/m2/model.safetensors"'

"$BIN" init --config "$T/llama.json" --out "$T/m3" --dtype BF16 --tokenizer "$T/m1" --std 0.1 2>/dev/null
check "BF16 llama with copied tokenizer" '[ $? -eq 0 ] && cmp -s "$T/m1/tokenizer.json" "$T/m3/tokenizer.json"'
check "python reader (BF16, untied)" '/usr/bin/python3 tests/oracle/io_check_saved.py "$T/m3" - BF16 >"$T/py" 2>&1'
check "eos the config names is kept" '[ "$(eos "$T/m3")" = 258 ]'

# A Llama config naming no eos: HF's default 2 is byte 0x02 of the
# byte-level tokenizer, so the tokenizer's end tokens must replace it.
sed 's/, "eos_token_id": 258, "bos_token_id": 257//' "$T/llama.json" >"$T/llama_noeos.json"
"$BIN" init --config "$T/llama_noeos.json" --out "$T/m6" 2>/dev/null
check "llama without eos: the tokenizer's end tokens" '[ $? -eq 0 ] && [ -n "$(eos "$T/m1")" ] && [ "$(eos "$T/m6")" = "$(eos "$T/m1")" ] && [ "$(eos "$T/m6")" != 2 ]'

if "$BIN" --help | grep -q '^  generate '; then
	"$BIN" generate --model "$T/m1" --prompt "hi" --max-tokens 3 --temperature 0 >"$T/gen" 2>"$T/generr"
	check "iapo generate loads the directory" '[ $? -eq 0 ]'
fi

printf '{"model_type": "qwen2",\n "vocab_size": 300,,}' >"$T/broken.json"
"$BIN" init --config "$T/broken.json" --out "$T/m4" 2>"$T/err"
check "malformed config: exit 1 naming the file" '[ $? -eq 1 ] && grep -q "broken.json: line 2" "$T/err"'
check "malformed config: nothing written" '[ ! -e "$T/m4" ] && [ -z "$(ls -a "$T" | grep -e .tmp-)" ]'
sed 's/"qwen2"/"gpt_neox"/' "$T/qwen2.json" >"$T/neox.json"
"$BIN" init --config "$T/neox.json" --out "$T/m4" 2>"$T/err"
check "unknown model_type: exit 1" '[ $? -eq 1 ] && grep -q "neox.json: model_type" "$T/err"'
sed 's/"vocab_size": 300/"vocab_size": 100/' "$T/qwen2.json" >"$T/small.json"
"$BIN" init --config "$T/small.json" --out "$T/m4" 2>"$T/err"
check "vocab smaller than the tokenizer: exit 1" '[ $? -eq 1 ] && grep -q "small.json: vocab_size: expected at least 263" "$T/err"'
check "failed init leaves nothing" '[ ! -e "$T/m4" ] && [ -z "$(ls -a "$T" | grep -e .tmp-)" ]'

"$BIN" init --config "$T/qwen2.json" 2>"$T/err"
check "missing --out: exit 2" '[ $? -eq 2 ] && grep -q -- "--out" "$T/err"'
"$BIN" init --out "$T/m5" 2>/dev/null
check "missing --config: exit 2" '[ $? -eq 2 ]'
"$BIN" init --config "$T/qwen2.json" --out "$T/m5" --dtype F64 2>/dev/null
check "bad --dtype: exit 2" '[ $? -eq 2 ]'
"$BIN" init --config "$T/qwen2.json" --out "$T/m5" --seed -3 2>/dev/null
check "bad --seed: exit 2" '[ $? -eq 2 ]'

cli_done
