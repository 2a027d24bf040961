#!/bin/sh
# make_torch_fixtures.sh OUTDIR — tiny random Qwen2 / Llama / Qwen3 HF model
# directories and their PyTorch autograd answers (logits, loss, per-token
# log-probs and entropies, every parameter gradient) under OUTDIR/torch, for
# tests/test_transformer_oracle.c. Idempotent: skipped when the stamp (a hash
# of the generator's sources) matches. Needs Debian's torch at /usr/bin/python3
# and fails loudly without it: these tests are never skipped.
set -eu
OUT=${1:?usage: make_torch_fixtures.sh OUTDIR}
HERE=$(cd "$(dirname "$0")" && pwd)
DEST="$OUT/torch"
PY=/usr/bin/python3
STAMP=$(cat "$HERE/make_torch_fixtures.sh" "$HERE/make_torch_fixtures.py" "$HERE/hf_model.py" | sha256sum | cut -c1-16)
if [ -f "$DEST/manifest.json" ] && [ "$(cat "$DEST/stamp" 2>/dev/null)" = "$STAMP" ]; then
	exit 0
fi
if ! "$PY" -c 'import torch' 2>/dev/null; then
	echo "make_torch_fixtures.sh: $PY cannot import torch (Debian package python3-torch); the transformer oracle needs it" >&2
	exit 1
fi
rm -rf "$DEST"
mkdir -p "$DEST"
"$PY" "$HERE/make_torch_fixtures.py" "$DEST"
echo "$STAMP" >"$DEST/stamp"
