#!/bin/sh
# `iapo demo` end to end. Usage errors exit 2. In the optimised build: the
# reduced demo (--quick) writes every stage's outputs (data + tokenizer, the
# SFT base's run and model, one ordinary `iapo train` run directory per
# method, results.json, report.html) and its table; results.json has every
# row and key with {mean, std, per_seed} in range; a second call with the same
# settings reuses the cached base and finished runs and says so (here with
# --seeds 2: the seed-1 runs are reused, seed 2 is trained, per_seed has two
# values); a changed SFT setting rebuilds the base and says why; a run
# directory works with `iapo report` and `iapo train --resume`; report.html
# renders in headless Chromium with its charts, both heat maps and the span
# table (a missing Chromium is a failure: scripts/install-deps.sh --test).
# Under ASan (build-asan) a much smaller demo (2 methods, a few steps) runs
# instead: the same stages and files, no timing-heavy checks.
. "$(dirname "$0")/lib_cli.sh"
cli_tmp cli_demo
ROOT=$(cd "$(dirname "$0")/.." && pwd)

# ---- usage
"$BIN" demo --frob >"$T/o" 2>"$T/e"; rc=$?
[ $rc -eq 2 ] && grep -q "unknown option '--frob'" "$T/e"; check "unknown option: exit 2" $?
for b in "--seeds 0" "--methods grpo,nope" "--set nokey" "--set nope:x=1" "--hidden 30 --heads 4" "--eval-samples 0" \
	"--steps 3-1" "--iapo w-info" "--set lenpen:no-such-option=1" "--iapo w-info=abc"; do
	# shellcheck disable=SC2086
	"$BIN" demo --out "$T/never" $b >"$T/o" 2>"$T/e"; rc=$?
	[ $rc -eq 2 ] && [ -s "$T/e" ] && [ ! -e "$T/never" ]; check "bad '$b': exit 2, nothing written" $?
done
"$BIN" demo --out "$T/never" --set lenpen:no-such-option=1 >"$T/o" 2>"$T/e"; rc=$?
[ $rc -eq 2 ] && grep -q "no-such-option" "$T/e"; check "--set with an unknown train option: exit 2 naming it" $?
"$BIN" demo --help >"$T/h" 2>&1; rc=$?
miss=0
for opt in --out --seeds --threads --quick --methods --train --test --steps --max-value --redundancy --vocab \
	--hidden --layers --heads --kv-heads --intermediate --init-std --sft-steps --sft-batch --sft-lr --sft-warmup \
	--system --one-shot --rl-steps --prompts-per-step --group --max-completion-tokens --rl-lr --temperature --beta \
	--loss-type --iapo --answer-span --set --eval-problems --eval-samples --eval-seed; do
	grep -q -- "$opt" "$T/h" || { echo "  --help lacks $opt"; miss=1; }
done
[ $rc -eq 0 ] && [ $miss -eq 0 ]; check "--help lists every option" $?

D="$T/d"
case "$BIN" in
*/build-asan/iapo)
	METHODS="grpo iapo"
	SMALL="--methods grpo,iapo --train 40 --test 4 --vocab 300 --sft-steps 4 --sft-batch 4 --rl-steps 1 \
--max-completion-tokens 24 --eval-problems 2 --eval-samples 2"
	;;
*)
	METHODS="grpo iapo iapo_no_info iapo_refnorm iapo_answer_span lenpen"
	SMALL=""
	;;
esac
# ---- the demo
# shellcheck disable=SC2086
"$BIN" demo --quick --out "$D" --threads 2 $SMALL >"$T/o1" 2>"$T/e1"; rc=$?
[ $rc -eq 0 ]; check "iapo demo --quick: exit 0" $?
[ $rc -eq 0 ] || { tail -n 20 "$T/e1"; }
grep -q "elapsed, ~.* left\]" "$T/e1" && grep -q "base: training the base model" "$T/e1"
check "progress lines with elapsed and remaining time" $?
miss=0
for f in data/train.jsonl data/test.jsonl data/meta.json data/tokenizer/tokenizer.json base/model-config.json \
	base/sft/metrics.jsonl base/sft/config.json base/demo-stage.json results.json report.html; do
	[ -s "$D/$f" ] || { echo "  missing $f"; miss=1; }
done
ls -d "$D"/base/sft/checkpoint-*/model.safetensors >/dev/null 2>&1 || { echo "  no base checkpoint"; miss=1; }
for m in $METHODS; do
	for f in config.json metrics.jsonl demo-stage.json; do
		[ -s "$D/rl/$m/seed-1/$f" ] || { echo "  missing rl/$m/seed-1/$f"; miss=1; }
	done
	ls -d "$D/rl/$m/seed-1"/checkpoint-*/model.safetensors >/dev/null 2>&1 || { echo "  no checkpoint in rl/$m"; miss=1; }
done
[ $miss -eq 0 ]; check "every stage's outputs exist" $?
rows=0
for m in base $METHODS; do grep -q "^$m " "$T/o1" && rows=$((rows + 1)); done
n_methods=$(echo "$METHODS" | wc -w)
[ $rows -eq $((n_methods + 1)) ] && grep -q "pass@1" "$T/o1" && grep -q "wall time" "$T/o1"
check "the table on stdout has a row per method and base" $?

# results.json: schema and ranges
cat >"$T/check.py" <<'PY'
import json, math, sys
r = json.load(open(sys.argv[1]))
methods = sys.argv[3].split()
seeds = int(sys.argv[2])
errs = []
for m in ["base"] + methods:
    if m not in r:
        errs.append("no row " + m); continue
    for k in ["pass1", "passk", "k", "mean_length", "token_efficiency", "seconds"]:
        e = r[m].get(k)
        if not isinstance(e, dict) or set(e) != {"mean", "std", "per_seed"}:
            errs.append("%s.%s: %r" % (m, k, e)); continue
        ps = e["per_seed"]
        if len(ps) != seeds: errs.append("%s.%s: %d seeds" % (m, k, len(ps)))
        if not all(isinstance(x, (int, float)) and math.isfinite(x) for x in ps + [e["mean"], e["std"]]):
            errs.append("%s.%s: not finite" % (m, k)); continue
        if e["std"] < 0: errs.append("%s.%s: std < 0" % (m, k))
        if abs(e["mean"] - sum(ps) / len(ps)) > 1e-9 * max(1, abs(e["mean"])): errs.append("%s.%s: mean" % (m, k))
        if k in ("pass1", "passk") and not all(0 <= x <= 1 for x in ps): errs.append("%s.%s range" % (m, k))
        if k == "mean_length" and not all(x > 0 for x in ps): errs.append("%s.%s <= 0" % (m, k))
        if k in ("token_efficiency", "seconds") and not all(x >= 0 for x in ps): errs.append("%s.%s < 0" % (m, k))
        if k == "k" and not all(x >= 1 for x in ps): errs.append("k < 1")
    if m in r and all(isinstance(r[m].get(k), dict) for k in ("pass1", "passk")):
        if any(a > b + 1e-12 for a, b in zip(r[m]["pass1"]["per_seed"], r[m]["passk"]["per_seed"])):
            errs.append(m + ": pass1 > passk")
if "settings" not in r or "rl" not in r["settings"]: errs.append("no settings")
print("\n".join(errs))
sys.exit(1 if errs else 0)
PY
/usr/bin/python3 "$T/check.py" "$D/results.json" 1 "$METHODS"; check "results.json: rows, keys, {mean,std,per_seed}, ranges" $?

# it renders: charts, both heat maps, the span table
"$ROOT/scripts/check_report.sh" "$D/report.html" 5 2 "$T/shot.png" >"$T/c" 2>&1; rc=$?
cat "$T/c"
[ $rc -eq 0 ] && [ -s "$T/shot.png" ]; check "report.html renders in headless Chromium with charts and heat maps" $?
n_heat=$(grep -c '<section class="heat"' "$D/report.html")
[ "$n_heat" -eq 2 ] && grep -q 'id="span-gain"' "$D/report.html" && grep -q 'id="results"' "$D/report.html" \
	&& ! grep -qi -e '<script' -e 'src=' -e '<link' "$D/report.html"
check "report: results table, 2 heat maps, span-kind table, no scripts or external resources" $?

# a run directory is an ordinary one
"$BIN" report "$D/rl/iapo/seed-1" --out "$T/r.html" >/dev/null 2>"$T/e"; rc=$?
[ $rc -eq 0 ] && grep -q '<svg class="chart"' "$T/r.html"; check "iapo report on a demo run" $?
"$BIN" train --out "$D/rl/grpo/seed-1" --resume >/dev/null 2>"$T/e"; rc=$?
[ $rc -eq 0 ] && grep -q "done" "$T/e"; check "iapo train --resume on a finished demo run: done at once" $?

# ---- second call: cached base and runs, a second seed
cp "$D/results.json" "$T/results1.json"
# shellcheck disable=SC2086
"$BIN" demo --quick --out "$D" --threads 2 $SMALL --seeds 2 >"$T/o2" 2>"$T/e2"; rc=$?
[ $rc -eq 0 ] && grep -q "reusing the cached base model" "$T/e2" && ! grep -q "base: SFT step" "$T/e2" \
	&& grep -q "data: reusing" "$T/e2"
check "second call: the base model and data are reused and it says so" $?
reused=$(grep -c "reusing the finished run" "$T/e2")
[ "$reused" -eq "$n_methods" ] && [ -d "$D/rl/grpo/seed-2" ]; check "seed-1 runs reused ($reused), seed 2 trained" $?
/usr/bin/python3 "$T/check.py" "$D/results.json" 2 "$METHODS"; check "results.json with --seeds 2: two values per seed list" $?
/usr/bin/python3 - "$T/results1.json" "$D/results.json" <<'PY'; check "seed-1 values unchanged by the cache" $?
import json, sys
a, b = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
bad = [m for m in a if m not in ("settings", "wall_seconds", "span_info")
       and a[m]["pass1"]["per_seed"][0] != b[m]["pass1"]["per_seed"][0]
       or m not in ("settings", "wall_seconds", "span_info") and a[m]["mean_length"]["per_seed"][0] != b[m]["mean_length"]["per_seed"][0]]
print(bad); sys.exit(1 if bad else 0)
PY

# ---- a changed SFT setting rebuilds the base
# shellcheck disable=SC2086
"$BIN" demo --quick --out "$D" --threads 2 $SMALL --methods grpo --sft-lr 0.002 >"$T/o3" 2>"$T/e3"; rc=$?
[ $rc -eq 0 ] && grep -q "training the base model (the settings or the iapo binary changed)" "$T/e3"
check "a changed SFT setting rebuilds the base and says why" $?

cli_done
