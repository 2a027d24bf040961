#!/bin/sh
# scripts/check_report.sh FILE.html [MIN_CHARTS] [MIN_HEAT_TOKENS] [SCREENSHOT.png]
# Opens an iapo report (iapo report / iapo demo) in headless Chromium from
# Debian, with no network, and checks that the rendered DOM holds the figures:
# at least MIN_CHARTS <svg class="chart"> elements each drawing at least one
# line or point, and at least MIN_HEAT_TOKENS heat-map token spans
# (class "tok", the `iapo info` writer's). Prints the counts it found; exits
# 0 when all hold, 1 otherwise, 3 when Chromium is not installed
# (scripts/install-deps.sh --test installs it). With a 4th argument it also
# saves a screenshot there.
set -u
f=${1:?usage: check_report.sh FILE.html [MIN_CHARTS] [MIN_HEAT_TOKENS] [SCREENSHOT.png]}
min_charts=${2:-1}
min_tok=${3:-0}
shot=${4:-}
CHROME=""
for c in chromium chromium-browser google-chrome; do
	if command -v "$c" >/dev/null 2>&1; then CHROME=$c; break; fi
done
if [ -z "$CHROME" ]; then
	echo "check_report: no chromium found (install it: scripts/install-deps.sh --test)" >&2
	exit 3
fi
[ -r "$f" ] || { echo "check_report: $f: cannot read" >&2; exit 1; }
abs=$(cd "$(dirname "$f")" && pwd)/$(basename "$f")
prof=$(mktemp -d "${TMPDIR:-/tmp}/check_report.XXXXXX")
trap 'rm -rf "$prof"' EXIT
flags="--headless --no-sandbox --disable-gpu --no-first-run --disable-extensions --disable-sync \
--user-data-dir=$prof --proxy-server=127.0.0.1:9 --proxy-bypass-list=<-loopback>"
# shellcheck disable=SC2086
timeout 120 "$CHROME" $flags --dump-dom "file://$abs" >"$prof/dom.html" 2>"$prof/err.log"
rc=$?
if [ $rc -ne 0 ] || [ ! -s "$prof/dom.html" ]; then
	echo "check_report: $CHROME --dump-dom failed (exit $rc):" >&2
	tail -n 5 "$prof/err.log" >&2
	exit 1
fi
# One element per line, so grep -c counts elements.
tr '>' '\n' <"$prof/dom.html" >"$prof/els"
charts=$(grep -c '<svg class="chart"' "$prof/els")
empty=$(grep '<svg class="chart"' "$prof/els" | grep -c 'data-points="0"')
lines=$(grep -c -e '<path class="line"' -e '<circle ' "$prof/els")
toks=$(grep -c '<span class="tok"' "$prof/els")
echo "check_report: $f rendered by $CHROME: $charts charts ($empty empty), $lines lines/points, $toks heat-map tokens"
st=0
[ "$charts" -ge "$min_charts" ] || { echo "check_report: expected at least $min_charts charts" >&2; st=1; }
[ "$empty" -eq 0 ] || { echo "check_report: $empty charts have no data" >&2; st=1; }
[ "$charts" -eq 0 ] || [ "$lines" -gt 0 ] || { echo "check_report: the charts draw nothing" >&2; st=1; }
[ "$toks" -ge "$min_tok" ] || { echo "check_report: expected at least $min_tok heat-map tokens" >&2; st=1; }
if [ -n "$shot" ]; then
	# shellcheck disable=SC2086
	timeout 120 "$CHROME" $flags --hide-scrollbars --window-size=1200,3000 --screenshot="$shot" "file://$abs" \
		>/dev/null 2>&1 || { echo "check_report: screenshot failed" >&2; st=1; }
fi
exit $st
