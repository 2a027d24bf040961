#!/bin/sh
# AdamW + grad-clip oracle from PyTorch (tests/oracle/adamw.py) into OUTDIR/adamw/.
set -eu
out="$1/adamw"
here=$(dirname "$0")
[ -f "$out/adamw.json" ] && [ "$out/adamw.json" -nt "$here/adamw.py" ] && exit 0
/usr/bin/python3 "$here/adamw.py" "$out"
