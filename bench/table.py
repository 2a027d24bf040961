#!/usr/bin/python3
"""table.py - the comparison table of one bench run: iapo next to the PyTorch
peer and next to the machine's limits, from the JSON lines bench/run.sh kept
(BUILD/bench/results.jsonl).

Writes one "ratio" JSON line per comparison on stdout and a human table on
stderr:
  train     iapo's train_step tokens/s over peer_train's (B=1, T=256; both
            forward + backward + AdamW), with the issue's target
  decode    iapo's decode tokens/s over peer_decode's (G=8, 64-token prompt,
            128 new tokens), target 3x
  bw        iapo's decode tokens/s over the memory-bandwidth bound of the same
            run (every weight read once per step), target within 1.5x at
            qwen0.5b (>= 67%)
  gemm      iapo's GFLOP/s per product shape (bench/gemm, all threads) as a
            percentage of the fp32 FMA peak, target >= 80% for the large ones
Missing records (a shape not run, the peer not installed) give no line.
Reads only; changes nothing. Usage: table.py RESULTS.jsonl
"""
import json
import sys

TRAIN_TARGET = {"tiny": 1.3, "small": 1.5, "qwen0.5b": 1.5}
DECODE_TARGET = 3.0
BW_TARGET = 100.0 / 1.5  # percent of the bound, at qwen0.5b
GEMM_TARGET = 80.0
SHAPES = ["tiny", "small", "qwen0.5b"]


def last(records, bench, **match):
    """The last record of this bench whose fields match."""
    out = None
    for r in records:
        if r.get("bench") == bench and all(r.get(k) == v for k, v in match.items()):
            out = r
    return out


def emit(**fields):
    sys.stdout.write(json.dumps(dict(bench="ratio", **fields), separators=(",", ":")) + "\n")


def fmt(x, spec=".0f"):
    return "-" if x is None else format(x, spec)


def main():
    if len(sys.argv) != 2:
        sys.stderr.write("usage: table.py RESULTS.jsonl\n")
        return 2
    records = []
    with open(sys.argv[1]) as fh:
        for line in fh:
            line = line.strip()
            if line.startswith("{"):
                try:
                    records.append(json.loads(line))
                except ValueError:
                    pass
    lines = []
    w = lines.append
    w("")
    w("iapo vs PyTorch peer (tokens/s; ratio = iapo / peer)")
    w("%-9s %-7s %10s %10s %7s %7s %s" % ("shape", "what", "iapo", "peer", "ratio", "target", ""))
    for s in SHAPES:
        ours, peer = last(records, "train_step", shape=s), last(records, "peer_train", shape=s)
        if ours and peer and ours.get("tokens_per_s") and peer.get("tokens_per_s"):
            r = ours["tokens_per_s"] / peer["tokens_per_s"]
            emit(what="train", shape=s, iapo=ours["tokens_per_s"], peer=peer["tokens_per_s"], ratio=round(r, 3),
                 target=TRAIN_TARGET[s], met=r >= TRAIN_TARGET[s])
            w("%-9s %-7s %10.1f %10.1f %6.2fx %6.1fx %s" % (s, "train", ours["tokens_per_s"], peer["tokens_per_s"],
                                                         r, TRAIN_TARGET[s], "ok" if r >= TRAIN_TARGET[s] else "BELOW"))
        ours, peer = last(records, "decode", shape=s), last(records, "peer_decode", shape=s)
        if ours and peer and ours.get("decode_tokens_per_s") and peer.get("decode_tokens_per_s"):
            r = ours["decode_tokens_per_s"] / peer["decode_tokens_per_s"]
            emit(what="decode", shape=s, iapo=ours["decode_tokens_per_s"], peer=peer["decode_tokens_per_s"],
                 ratio=round(r, 3), target=DECODE_TARGET, met=r >= DECODE_TARGET)
            w("%-9s %-7s %10.1f %10.1f %6.2fx %6.1fx %s" % (s, "decode", ours["decode_tokens_per_s"],
                                                         peer["decode_tokens_per_s"], r, DECODE_TARGET,
                                                         "ok" if r >= DECODE_TARGET else "BELOW"))
    w("")
    w("decoding vs the memory-bandwidth bound (weights read once per step)")
    w("%-9s %10s %9s %10s %8s %s" % ("shape", "decode", "GB/s", "bound", "% bound", "target"))
    for s in SHAPES:
        d = last(records, "decode", shape=s)
        if not d or not d.get("bw_bound_tokens_per_s"):
            continue
        pct = d.get("pct_bw_bound")
        tgt = BW_TARGET if s == "qwen0.5b" else None
        emit(what="bw", shape=s, iapo=d["decode_tokens_per_s"], bound=d["bw_bound_tokens_per_s"],
             mem_bw_gb_per_s=d.get("mem_bw_gb_per_s"), pct_bound=pct, target_pct=tgt,
             met=None if tgt is None else pct >= tgt)
        w("%-9s %10.1f %9.1f %10.1f %7.0f%% %s" % (s, d["decode_tokens_per_s"], d.get("mem_bw_gb_per_s") or 0,
                                                  d["bw_bound_tokens_per_s"], pct or 0,
                                                  "" if tgt is None else (">= %.0f%%: %s" % (tgt, "ok" if pct >= tgt else "BELOW"))))
    gem = [r for r in records if r.get("bench") == "gemm" and r.get("M", 0) > 16]
    if gem:
        top = max(r.get("threads", 1) for r in gem)
        w("")
        w("GEMM, M=256 tokens, %d threads: %% of the fp32 FMA peak (nt: x W^T, nn: dy W, tn: dy^T x)" % top)
        w("%-9s %-8s %6s %6s %6s" % ("shape", "layer", "nt", "nn", "tn"))
        seen = {}
        for r in gem:
            if r.get("threads") != top:
                continue
            seen.setdefault((r["shape"], r["layer"]), {})[r["op"]] = r.get("iapo_pct_peak")
            emit(what="gemm", shape=r["shape"], layer=r["layer"], op=r["op"], M=r["M"], N=r["N"], K=r["K"],
                 threads=top, gflops=r.get("iapo_gflops"), pct_peak=r.get("iapo_pct_peak"), target_pct=GEMM_TARGET)
        for (s, layer), ops in seen.items():
            w("%-9s %-8s %5s%% %5s%% %5s%%" % (s, layer, fmt(ops.get("nt")), fmt(ops.get("nn")), fmt(ops.get("tn"))))
    sys.stderr.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
