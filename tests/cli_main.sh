#!/bin/sh
# The top-level CLI: --help, --version, unknown commands, and that every listed
# command answers --help with exit 0 on stdout.
. "$(dirname "$0")/lib_cli.sh"

out=$("$BIN" --help) && echo "$out" | grep -q "usage: iapo" && ok help || bad help
out=$("$BIN" --version) && echo "$out" | grep -q "^iapo [0-9]" && ok version || bad version
"$BIN" >/dev/null 2>&1; [ $? -eq 2 ] && ok no-args-exit-2 || bad no-args-exit-2
err=$("$BIN" frobnicate 2>&1 >/dev/null); rc=$?
[ $rc -eq 2 ] && echo "$err" | grep -q "unknown command 'frobnicate'" && ok unknown-command || bad unknown-command
cmds=$("$BIN" --help | sed -n '/^commands:/,/^$/p' | awk 'NF>1 {print $1}')
for c in $cmds; do
	out=$("$BIN" "$c" --help 2>/dev/null) && [ -n "$out" ] && ok "$c --help" || bad "$c --help"
done
cli_done
