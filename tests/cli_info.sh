#!/bin/sh
# `iapo info` end to end on a tiny random Qwen2 model made by `iapo init`:
# usage errors exit 2, an unloadable model and an unwritable output exit 1;
# with a given completion the TSV has the documented header and one row of
# six fields per completion token (counted by `iapo tokenize`), tabs and
# newlines in tokens escaped; the HTML is one self-contained page with one
# span per token, its text HTML-escaped; --raw changes the prompt and the
# numbers; next_token mode makes answer_entropy equal policy_entropy; a
# sampled completion respects --max-tokens; runs repeat exactly.
. "$(dirname "$0")/lib_cli.sh"
cli_tmp cli_info

# ---- usage errors and --help (no model needed)
cli_prompt_usage info
for bad_opt in "--answer-tokens 0" "--predict first" "--gain smooth" "--norm l2" "--horizon 0" "--chunk -1" \
	"--decay abc" "--postfix=" "--info-stride 0" "--info-at words" "--info-stride 2 --info-at newline"; do
	# shellcheck disable=SC2086
	"$BIN" info --model "$T/none" --prompt hi $bad_opt >"$T/o" 2>"$T/e"; rc=$?
	[ $rc -eq 2 ] && [ -s "$T/e" ]; check "bad value '$bad_opt': exit 2 with a message" $?
done
"$BIN" info --model "$T/none" --prompt hi --tsv >"$T/o" 2>"$T/e"; rc=$?
[ $rc -eq 2 ]; check "option without its value: exit 2" $?
"$BIN" info --help >"$T/h" 2>&1; rc=$?
miss=0
for opt in --model --prompt --system --raw --completion --max-tokens --temperature --seed --postfix --predict \
	--answer-tokens --chunk --info-stride --info-at --gain --norm --horizon --decay --w-info --w-conf --tsv --html \
	--threads; do
	grep -q -- "$opt" "$T/h" || { echo "  --help lacks $opt"; miss=1; }
done
[ $rc -eq 0 ] && [ $miss -eq 0 ] && grep -q "answer_entropy info_gain policy_entropy" "$T/h" && grep -q "1e-6" "$T/h" \
	&& [ "$(grep -c APPROXIMATION "$T/h")" -eq 2 ]
check "--help lists every option, the TSV columns, the 1e-6 remark, the approximations" $?
"$BIN" info --model "$T/does-not-exist" --prompt hi >"$T/o" 2>"$T/e"; rc=$?
[ $rc -eq 1 ] && grep -q "does-not-exist" "$T/e"; check "unloadable model: exit 1 naming it" $?

# ---- a tiny random Qwen2 model (std 0.5: entropies far from uniform)
cli_random_qwen2
COMP='<think>2+3=5	so "5" & <b>done</b>
</think>
<answer>5</answer>'
# tokens of the completion, as iapo tokenize counts them (one line of ids per input line)
printf '%s\n' "$COMP" | "$BIN" tokenize --model "$M" >"$T/ids"
ntok=$(tr -s ' \n' '\n\n' <"$T/ids" | grep -c .)
# the newlines between the lines are tokens too (byte-level, no merges across them)
ntok=$((ntok + $(printf '%s\n' "$COMP" | wc -l) - 1))

"$BIN" info --model "$M" --prompt "What is 2+3?" --completion "$COMP" --tsv "$T/a.tsv" --html "$T/a.html" \
	>"$T/a.out" 2>"$T/a.err"; rc=$?
[ $rc -eq 0 ] && grep -q "completion tokens" "$T/a.out" && grep -q "information pass" "$T/a.err"
check "given completion: exit 0, summary on stdout, timing on stderr" $?
printf 'pos\ttoken_id\ttoken\tanswer_entropy\tinfo_gain\tpolicy_entropy\n' >"$T/hdr"
head -n 1 "$T/a.tsv" | cmp -s - "$T/hdr"; check "TSV header" $?
rows=$(($(wc -l <"$T/a.tsv") - 1))
[ "$rows" -eq "$ntok" ] && [ "$ntok" -gt 20 ]; check "TSV rows = completion tokens ($rows vs $ntok)" $?
awk -F'\t' 'NR > 1 && (NF != 6 || $1 != NR - 2) { bad = 1 } END { exit bad }' "$T/a.tsv"
check "every TSV row has 6 fields and its position" $?
grep -q "	\\\\t	" "$T/a.tsv" && grep -q "	\\\\n	" "$T/a.tsv"; check "tab and newline tokens escaped" $?
spans=$(grep -o 'class="tok"' "$T/a.html" | wc -l)
[ "$spans" -eq "$ntok" ]; check "HTML: one span per token ($spans)" $?
# one span per byte-level token: compare the text with the tags taken out
sed -e 's/<[^>]*>//g' "$T/a.html" >"$T/a.txt"
grep -q '&lt;b&gt;done&lt;/b&gt;' "$T/a.txt" && ! grep -q '<b>' "$T/a.html" && grep -q '&amp;' "$T/a.txt" \
	&& grep -q '&quot;5&quot;' "$T/a.txt"
check "HTML escapes the completion's text" $?
head -c 15 "$T/a.html" | grep -q '<!DOCTYPE html>' && grep -q '</html>' "$T/a.html" \
	&& ! grep -Eq '<script|https?://' "$T/a.html" && grep -q 'E_t=' "$T/a.html" && grep -q 'S_t=' "$T/a.html" \
	&& grep -q 'C_t=' "$T/a.html" && grep -q 'A_t=' "$T/a.html"
check "HTML: self-contained page, hover shows E_t S_t C_t A_t" $?
# S_t = E_t - E_{t+1}: consecutive rows agree (the last uses E_L, not in the table)
awk -F'\t' 'NR > 2 { d = pe - $4 - pg; if (d < -2e-6 || d > 2e-6) bad = 1 } NR > 1 { pe = $4; pg = $5 }
	END { exit bad }' "$T/a.tsv"
check "info_gain = answer_entropy(t) - answer_entropy(t+1)" $?

"$BIN" info --model "$M" --prompt "What is 2+3?" --completion "$COMP" --tsv "$T/b.tsv" >"$T/b.out" 2>&1
cmp -s "$T/a.tsv" "$T/b.tsv"; check "same run, same TSV" $?
"$BIN" info --model "$M" --prompt "What is 2+3?" --completion "$COMP" --tsv "$T/t1.tsv" --threads 1 >/dev/null 2>&1
awk -F'\t' 'NR == FNR { v[FNR] = $4; next } { d = v[FNR] - $4; if (FNR > 1 && (d > 1e-4 || d < -1e-4)) bad = 1 }
	END { exit bad }' "$T/a.tsv" "$T/t1.tsv"
check "1 thread gives the same entropies (1e-4)" $?

"$BIN" info --model "$M" --prompt "What is 2+3?" --raw --completion "$COMP" --tsv "$T/r.tsv" >"$T/r.out" 2>&1; rc=$?
[ $rc -eq 0 ] && grep -q "(raw)" "$T/r.out" && grep -q "(chat template)" "$T/a.out" && ! cmp -s "$T/a.tsv" "$T/r.tsv" \
	&& [ "$(wc -l <"$T/r.tsv")" -eq "$(wc -l <"$T/a.tsv")" ]
check "--raw: another prompt, other numbers, same rows" $?

"$BIN" info --model "$M" --prompt "What is 2+3?" --completion "$COMP" --predict next_token --tsv "$T/n.tsv" \
	>/dev/null 2>&1; rc=$?
[ $rc -eq 0 ] && awk -F'\t' 'NR > 1 && $4 != $6 { bad = 1 } END { exit bad }' "$T/n.tsv"
check "--predict next_token: answer_entropy = policy_entropy" $?
awk -F'\t' 'NR == FNR { v[FNR] = $6; next } FNR > 1 && v[FNR] != $6 { bad = 1 } END { exit bad }' "$T/a.tsv" "$T/n.tsv"
check "policy_entropy does not depend on the mode" $?
"$BIN" info --model "$M" --prompt "What is 2+3?" --completion "$COMP" --postfix "<answer>" --answer-tokens 2 \
	--tsv "$T/p.tsv" >/dev/null 2>&1; rc=$?
[ $rc -eq 0 ] && ! cmp -s "$T/a.tsv" "$T/p.tsv"; check "--postfix and --answer-tokens change E" $?

# --info-stride 3: exact at 0, 3, 6, ... (same E as the exact run there), one gain per block of 3
"$BIN" info --model "$M" --prompt "What is 2+3?" --completion "$COMP" --info-stride 3 --tsv "$T/st.tsv" \
	>/dev/null 2>&1; rc=$?
[ $rc -eq 0 ] && [ "$(wc -l <"$T/st.tsv")" -eq "$(wc -l <"$T/a.tsv")" ] && awk -F'\t' '
	NR == FNR { e[FNR] = $4; next }
	FNR > 1 && (FNR - 2) % 3 == 0 { d = e[FNR] - $4; if (d > 1e-5 || d < -1e-5) bad = 1 }
	FNR > 1 && (FNR - 2) % 3 != 0 && ($5 - g > 2e-6 || g - $5 > 2e-6) { bad = 1 }
	FNR > 1 { g = $5 } END { exit bad }' "$T/a.tsv" "$T/st.tsv"
check "--info-stride 3: exact every 3rd position, the block's gain spread evenly" $?
"$BIN" info --model "$M" --prompt "What is 2+3?" --completion "$COMP" --info-at newline --html "$T/nl.html" \
	>"$T/nl.out" 2>&1; rc=$?
[ $rc -eq 0 ] && grep -q "after newline tokens only" "$T/nl.html"; check "--info-at newline runs and says so" $?

"$BIN" info --model "$M" --prompt "Hello" --max-tokens 12 --temperature 0.8 --seed 4 --tsv "$T/s.tsv" \
	--html "$T/s.html" >"$T/s.out" 2>&1; rc=$?
rows=$(($(wc -l <"$T/s.tsv") - 1))
[ $rc -eq 0 ] && [ "$rows" -ge 1 ] && [ "$rows" -le 12 ] && grep -q "sampled" "$T/s.out" \
	&& [ "$(grep -o 'class="tok"' "$T/s.html" | wc -l)" -eq "$rows" ]
check "sampled completion: at most --max-tokens rows, one span each ($rows)" $?

"$BIN" info --model "$M" --prompt "Hello" --completion "x" --tsv "$T/no/such/dir/x.tsv" >"$T/o" 2>"$T/e"; rc=$?
[ $rc -eq 1 ] && grep -q "no/such/dir" "$T/e"; check "unwritable --tsv: exit 1 naming it" $?

cli_done
