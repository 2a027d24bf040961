#!/bin/sh
# safetensors files and HF model dirs written by PyTorch + a hand-written
# writer (tests/oracle/io_fixtures.py) into OUTDIR/io/. Skips when up to date.
set -eu
out="$1/io"
here=$(dirname "$0")
stamp="$out/.done"
[ -f "$stamp" ] && [ "$stamp" -nt "$here/io_fixtures.py" ] && exit 0
/usr/bin/python3 "$here/io_fixtures.py" "$out"
touch "$stamp"
