#!/bin/sh
# make_grpo_fixtures.sh OUTDIR — PyTorch answers for tests/test_grpo_oracle.c under
# OUTDIR/grpo: the clipped policy loss and its autograd gradient on random inputs
# (grpo_loss.py), and the same loss end to end through a tiny Qwen2 with every
# parameter gradient (grpo_model.py, which imports hf_model.py and
# make_torch_fixtures.py). Idempotent: skipped when the stamp (a hash of the
# generators' sources) matches. Needs Debian's torch at /usr/bin/python3 and
# fails loudly without it.
set -eu
OUT=${1:?usage: make_grpo_fixtures.sh OUTDIR}
HERE=$(cd "$(dirname "$0")" && pwd)
DEST="$OUT/grpo"
PY=/usr/bin/python3
STAMP=$(cat "$HERE/make_grpo_fixtures.sh" "$HERE/grpo_loss.py" "$HERE/grpo_model.py" "$HERE/hf_model.py" \
	"$HERE/make_torch_fixtures.py" | sha256sum | cut -c1-16)
if [ -f "$DEST/loss.json" ] && [ -f "$DEST/model/manifest.json" ] && [ "$(cat "$DEST/stamp" 2>/dev/null)" = "$STAMP" ]; then
	exit 0
fi
if ! "$PY" -c 'import torch' 2>/dev/null; then
	echo "make_grpo_fixtures.sh: $PY cannot import torch (Debian package python3-torch); the GRPO oracle needs it" >&2
	exit 1
fi
rm -rf "$DEST"
mkdir -p "$DEST"
"$PY" "$HERE/grpo_loss.py" "$DEST"
"$PY" "$HERE/grpo_model.py" "$DEST"
echo "$STAMP" >"$DEST/stamp"
