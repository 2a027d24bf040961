#!/bin/sh
# make_iapo_fixtures.sh OUTDIR — PyTorch answers for tests/test_iapo_oracle.c
# under OUTDIR/iapo: the naive early-exit answer entropies, policy entropies,
# IAPO token advantages (default and reference settings) and the bnpo loss
# with every parameter gradient on a tiny Qwen2 (iapo_model.py, which imports
# hf_model.py, make_torch_fixtures.py and grpo_loss.py). Idempotent: skipped
# when the stamp (a hash of the generators' sources) matches. Needs Debian's
# torch at /usr/bin/python3 and fails loudly without it.
set -eu
OUT=${1:?usage: make_iapo_fixtures.sh OUTDIR}
HERE=$(cd "$(dirname "$0")" && pwd)
DEST="$OUT/iapo"
PY=/usr/bin/python3
STAMP=$(cat "$HERE/make_iapo_fixtures.sh" "$HERE/iapo_model.py" "$HERE/hf_model.py" "$HERE/make_torch_fixtures.py" \
	"$HERE/grpo_loss.py" | sha256sum | cut -c1-16)
if [ -f "$DEST/model/manifest.json" ] && [ "$(cat "$DEST/stamp" 2>/dev/null)" = "$STAMP" ]; then
	exit 0
fi
if ! "$PY" -c 'import torch' 2>/dev/null; then
	echo "make_iapo_fixtures.sh: $PY cannot import torch (Debian package python3-torch); the IAPO oracle needs it" >&2
	exit 1
fi
rm -rf "$DEST"
mkdir -p "$DEST"
"$PY" "$HERE/iapo_model.py" "$DEST"
echo "$STAMP" >"$DEST/stamp"
