#!/bin/sh
# `iapo report RUN_DIR`: usage errors exit 2; a missing directory, a missing
# metrics.jsonl, a malformed line (named with its line number) and an empty
# file exit 1 and leave no page or temporary file behind; a run's page goes
# to RUN_DIR/report.html or --out, holds one SVG chart per plotted group and
# no scripts or external resources, and renders in headless Chromium with its
# charts drawn (scripts/check_report.sh; a missing Chromium is a failure).
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$(dirname "$0")/lib_cli.sh"
cli_tmp cli_report

"$BIN" report >"$T/o" 2>"$T/e"; rc=$?
[ $rc -eq 2 ] && grep -q "RUN_DIR" "$T/e"; check "no RUN_DIR: exit 2" $?
"$BIN" report "$T" --frob >"$T/o" 2>"$T/e"; rc=$?
[ $rc -eq 2 ] && grep -q "unknown option '--frob'" "$T/e"; check "unknown option: exit 2" $?
"$BIN" report "$T" "$T" >"$T/o" 2>"$T/e"; rc=$?
[ $rc -eq 2 ]; check "two run directories: exit 2" $?
"$BIN" report "$T" --out >"$T/o" 2>"$T/e"; rc=$?
[ $rc -eq 2 ]; check "--out without a value: exit 2" $?
"$BIN" report --help >"$T/h" 2>&1; rc=$?
[ $rc -eq 0 ] && grep -q -- "--out" "$T/h" && grep -q "metrics.jsonl" "$T/h"; check "--help" $?
"$BIN" report "$T/nope" >"$T/o" 2>"$T/e"; rc=$?
[ $rc -eq 1 ] && grep -q "nope" "$T/e"; check "missing directory: exit 1 naming it" $?
mkdir -p "$T/run"
"$BIN" report "$T/run" >"$T/o" 2>"$T/e"; rc=$?
[ $rc -eq 1 ] && grep -q "run/metrics.jsonl" "$T/e" && [ ! -e "$T/run/report.html" ]
check "no metrics.jsonl: exit 1 naming it, no page" $?
: >"$T/run/metrics.jsonl"
"$BIN" report "$T/run" >"$T/o" 2>"$T/e"; rc=$?
[ $rc -eq 1 ] && grep -q "at least one step" "$T/e"; check "empty metrics.jsonl: exit 1" $?

# a run's metrics as the trainer writes them (a few fields; eval on step 2 only)
i=1
while [ $i -le 6 ]; do
	ev=""
	[ $i -eq 2 ] || [ $i -eq 6 ] && ev=",\"eval_accuracy\":0.$i,\"eval_length_mean\":$((100 - i))"
	echo "{\"step\":$i,\"reward_mean\":0.$i,\"reward_std\":0.5,\"accuracy\":0.$i,\"format_rate\":1,\"completion_length_mean\":$((80 - i * 3)),\"kl\":0.00$i,\"entropy\":1.$i,\"loss\":0.1,\"grad_norm\":$i.5,\"learning_rate\":0.001,\"info_gain_mean\":0.0$i,\"skipped\":false,\"seconds_total\":0.$i$ev}" >>"$T/run/metrics.jsonl"
	i=$((i + 1))
done
echo '{"algo": "iapo", "learning-rate": 0.001}' >"$T/run/config.json"
"$BIN" report "$T/run" >"$T/o" 2>"$T/e"; rc=$?
P="$T/run/report.html"
[ $rc -eq 0 ] && [ -s "$P" ] && grep -q "6 steps" "$T/e"; check "a run: exit 0, RUN_DIR/report.html" $?
n=$(grep -c '<svg class="chart"' "$P")
# reward, accuracy, length, kl, entropy, loss, info, grad norm, lr, seconds, eval, eval length
[ "$n" -eq 12 ]; check "one chart per plotted group (12, found $n)" $?
! grep -qi -e '<script' -e 'src=' -e 'href=' -e '<link' "$P"; check "no scripts, no external resources" $?
grep -q '&quot;algo&quot;' "$P"; check "config.json shown" $?
ls "$T/run" | grep -q tmp; [ $? -ne 0 ]; check "no temporary file left" $?

"$BIN" report "$T/run" --out "$T/other.html" >"$T/o" 2>"$T/e"; rc=$?
[ $rc -eq 0 ] && cmp -s "$T/other.html" "$P"; check "--out FILE: the same page" $?
"$BIN" report "$T/run" --out "$T/no/such/dir/r.html" >"$T/o" 2>"$T/e"; rc=$?
[ $rc -eq 1 ] && grep -q "no/such/dir" "$T/e"; check "unwritable --out: exit 1 naming it" $?

# a malformed line (not the last) is named with its line number
cp "$T/run/metrics.jsonl" "$T/m"
{ head -n 3 "$T/m"; echo '{"step": 4, "reward_mean": }'; tail -n 3 "$T/m"; } >"$T/run/metrics.jsonl"
rm -f "$P"
"$BIN" report "$T/run" >"$T/o" 2>"$T/e"; rc=$?
[ $rc -eq 1 ] && grep -q "run/metrics.jsonl: line 4: expected a JSON object" "$T/e" && [ ! -e "$P" ]
check "malformed line 4: exit 1 naming file and line, no page" $?
# a torn last line (a write in progress) is not an error
{ cat "$T/m"; printf '{"step": 7, "rew'; } >"$T/run/metrics.jsonl"
"$BIN" report "$T/run" >"$T/o" 2>"$T/e"; rc=$?
[ $rc -eq 0 ] && grep -q "6 steps" "$T/e"; check "torn last line ignored" $?

# it renders: Chromium draws every chart
"$ROOT/scripts/check_report.sh" "$P" 12 0 >"$T/c" 2>&1; rc=$?
cat "$T/c"
[ $rc -eq 0 ]; check "renders in headless Chromium with 12 non-empty charts" $?

cli_done
