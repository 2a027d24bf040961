#!/bin/sh
# Chat-template golden renderings from a Jinja engine we did not write:
# installs the npm package @huggingface/jinja (the Jinja implementation
# transformers.js renders chat templates with) into OUTDIR/npm-jinja and runs
# tests/oracle/chat_golden.js, which renders conversations with the real Qwen3
# template (OUTDIR/qwen3-tokenizer, made by make_tokenizer_golden.sh, run
# first here when missing) and the Qwen2/2.5 and Llama 3/3.1 templates it
# carries, into OUTDIR/chat-golden/golden.json.
# Idempotent: does nothing when the stamp says the same generator already ran.
set -eu
OUT=${1:?usage: make_chat_golden.sh OUTDIR}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
PKG_VERSION=0.5.11
NPM="$OUT/npm-jinja"
GEN="$HERE/chat_golden.js"
DEST="$OUT/chat-golden"

[ -f "$OUT/qwen3-tokenizer/tokenizer_config.json" ] || sh "$HERE/make_tokenizer_golden.sh" "$OUT"
stamp="$PKG_VERSION $(cat "$GEN" "$OUT/qwen3-tokenizer/tokenizer_config.json" | cksum | cut -d' ' -f1,2)"
if [ -f "$DEST/stamp" ] && [ "$(cat "$DEST/stamp")" = "$stamp" ] && [ -f "$DEST/golden.json" ]; then
	echo "chat golden file up to date"
	exit 0
fi

command -v node >/dev/null || { echo "make_chat_golden.sh: node is required" >&2; exit 1; }
if [ ! -f "$NPM/node_modules/@huggingface/jinja/package.json" ]; then
	mkdir -p "$NPM"
	echo "installing @huggingface/jinja@$PKG_VERSION into $NPM"
	[ -f "$NPM/package.json" ] || echo '{"private": true}' >"$NPM/package.json"
	npm install --prefix "$NPM" --no-audit --no-fund --no-save --loglevel=error "@huggingface/jinja@$PKG_VERSION"
fi
mkdir -p "$DEST"
node "$GEN" "$NPM" "$OUT/qwen3-tokenizer/tokenizer_config.json" "$DEST/golden.json"
echo "$stamp" >"$DEST/stamp"
