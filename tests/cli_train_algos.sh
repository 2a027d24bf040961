#!/bin/sh
# iapo train --algo NAME end to end on a tiny random model (iapo init) and a
# tiny dataset: every algorithm runs, writes its metrics fields and records
# its options in config.json; IAPO combines with DAPO's loss and dynamic
# sampling; --help lists every algorithm option with its default; a resumed
# dapo run keeps its algorithm (RUN_DIR/config.json); inconsistent algorithm
# options are usage errors (exit 2) naming the option.
. "$(dirname "$0")/lib_cli.sh"
cli_tmp cli_train_algos

cli_tiny_run_setup

SMALL="--model $T/model --data $T/data.jsonl --prompts-per-step 2 --num-generations 2 --max-completion-tokens 8
 --system x --no-one-shot --learning-rate 1e-3 --threads 2 --max-steps 2 --save-steps 0"

# run ALGO FIELDS... : exit 0, two metrics lines, each holding every field.
run() {
	a=$1
	shift
	"$BIN" train $SMALL --out "$T/run-$a" --algo $a $EXTRA >"$T/out" 2>"$T/err"
	rc=$?
	[ $rc -eq 0 ] || { cat "$T/err"; return 1; }
	[ "$(wc -l <"$T/run-$a/metrics.jsonl")" -eq 2 ] || return 1
	for f in "$@"; do
		[ "$(grep -c "\"$f\":" "$T/run-$a/metrics.jsonl")" -eq 2 ] || { echo "no $f"; return 1; }
	done
	grep -q "\"algo\":[[:space:]]*\"$a\"" "$T/run-$a/config.json"
}

EXTRA=""
check "--algo iapo: info_gain_mean, info_near_zero, seconds_info" 'run iapo info_gain_mean info_near_zero seconds_info'
check "iapo: config.json records the token-term options" 'grep -q "\"w-info\":[[:space:]]*1.0" "$T/run-iapo/config.json" && grep -q "\"gain\":[[:space:]]*\"plain\"" "$T/run-iapo/config.json" && grep -q "\"predict\":[[:space:]]*\"answer\"" "$T/run-iapo/config.json"'
check "dapo: dynamic sampling and overlong fields" 'run dapo dynamic_groups_resampled dynamic_resamples dynamic_groups_dropped overlong_penalty_mean loss_token_fraction'
check "dapo: its defaults in config.json" 'grep -q "\"epsilon-high\":[[:space:]]*0.28" "$T/run-dapo/config.json" && grep -q "\"dynamic-sampling\":[[:space:]]*\"resample\"" "$T/run-dapo/config.json" && grep -q "\"overlong-buffer\":[[:space:]]*1," "$T/run-dapo/config.json" && grep -q "\"loss-type\":[[:space:]]*\"bnpo\"" "$T/run-dapo/config.json"'
check "lenpen: length_reward_mean" 'run lenpen length_reward_mean && grep -q "\"lenpen-weight\":[[:space:]]*1.0" "$T/run-lenpen/config.json"'
check "gtpo: gtpo_bonus_mean" 'run gtpo gtpo_bonus_mean seconds_entropy'
EXTRA="--gfpo-sample 4"
check "gfpo: sampled and kept lengths" 'run gfpo gfpo_length_sampled gfpo_length_kept && grep -q "\"gfpo-keep\":[[:space:]]*2," "$T/run-gfpo/config.json" && grep -q "\"loss-type\":[[:space:]]*\"grpo\"" "$T/run-gfpo/config.json"'
EXTRA="--sgrpo-alpha 2 --sgrpo-k 6"
check "sgrpo: loss_token_fraction" 'run sgrpo loss_token_fraction && grep -q "\"sgrpo-alpha\":[[:space:]]*2," "$T/run-sgrpo/config.json"'

"$BIN" train $SMALL --out "$T/mix" --algo iapo --loss-type bnpo --epsilon-high 0.28 --dynamic-sampling drop --overlong-buffer 2 --w-info 0.3 --w-conf 0.1 >"$T/out" 2>"$T/err"
check "iapo + DAPO's loss, dynamic sampling and shaping" '[ $? -eq 0 ] && [ "$(grep -c "\"info_gain_mean\":.*\"dynamic_groups_dropped\":" "$T/mix/metrics.jsonl")" -eq 2 ] && grep -q "overlong_penalty_mean" "$T/mix/metrics.jsonl"'
"$BIN" train $SMALL --out "$T/ablate" --algo iapo --predict next_token --info-stride 2 --gain reference --norm reference --horizon 3 --answer-tokens 2 >"$T/out" 2>"$T/err"
check "iapo ablation options run" '[ $? -eq 0 ] && [ "$(grep -c info_gain_mean "$T/ablate/metrics.jsonl")" -eq 2 ]'
"$BIN" train $SMALL --out "$T/nl" --algo iapo --info-at newline --info-chunk 3 --postfix "</think>" >"$T/out" 2>"$T/err"
check "iapo --info-at newline, --info-chunk, --postfix" '[ $? -eq 0 ] && grep -q "\"info-at\":[[:space:]]*\"newline\"" "$T/nl/config.json"'

"$BIN" train --out "$T/run-dapo" --resume --max-steps 3 >"$T/out" 2>"$T/err"
check "--resume keeps the algorithm and its options" '[ $? -eq 0 ] && grep -q ": dapo, 3 steps" "$T/err" && [ "$(wc -l <"$T/run-dapo/metrics.jsonl")" -eq 3 ] && tail -n 1 "$T/run-dapo/metrics.jsonl" | grep -q dynamic_resamples'

"$BIN" train --help >"$T/help" 2>&1
check "--help lists every algorithm and its options with defaults" 'grep -q "grpo|iapo|dapo|lenpen|gtpo|gfpo|sgrpo" "$T/help" && for o in "postfix TEXT.*default </think><answer>" "predict M.*default answer" "answer-tokens N.*default 1" "info-chunk N.*default 0" "info-stride N.*default 1" "info-at W.*default all" "gain G.*default plain" "norm N.*default zscore" "horizon H.*default 1" "decay F.*default 0.5" "w-info F.*default 1.0" "w-conf F.*default 1.0" "dynamic-sampling M.*default off" "dynamic-max-tries N.*default 3" "overlong-buffer N.*default 0" "overlong-penalty F.*default 1.0" "lenpen-weight F.*default 0" "gtpo-coef F.*default 0.1" "gtpo-scale S.*default length" "gfpo-sample N.*default 8" "gfpo-keep K.*default 6" "gfpo-metric M.*default length" "sgrpo-alpha N.*default 150" "sgrpo-k N.*default 341" "sgrpo-token-prob F.*default 0.5"; do grep -q -- "--$o" "$T/help" || { echo "missing $o"; exit 1; }; done'
check "--help: the w = 1 caveat" 'grep -q "w-info F.*few tokens" "$T/help"'

"$BIN" train $SMALL --out "$T/e1" --algo gfpo --gfpo-keep 3 >"$T/out" 2>"$T/err"
check "gfpo: --num-generations and --gfpo-keep disagree: exit 2" '[ $? -eq 2 ] && grep -q -- "--gfpo-keep 3" "$T/err"'
"$BIN" train $SMALL --out "$T/e2" --algo iapo --info-stride 2 --info-at newline >"$T/out" 2>"$T/err"
check "--info-stride with --info-at newline: exit 2" '[ $? -eq 2 ] && grep -q -- "--info-stride" "$T/err"'
"$BIN" train $SMALL --out "$T/e3" --overlong-buffer 9 >"$T/out" 2>"$T/err"
check "--overlong-buffer beyond the maximum length: exit 2" '[ $? -eq 2 ] && grep -q -- "--overlong-buffer 9" "$T/err"'
"$BIN" train $SMALL --out "$T/e4" --dynamic-sampling sometimes >"$T/out" 2>"$T/err"
check "--dynamic-sampling bad value: exit 2 naming the choices" '[ $? -eq 2 ] && grep -q "off, drop or resample" "$T/err"'

cli_done
