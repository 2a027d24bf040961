#!/usr/bin/python3
"""table.py - the comparison table of one bench run: iapo next to the PyTorch
peer and next to the machine's limits, from the JSON lines bench/run.sh kept
(BUILD/bench/results.jsonl).

Writes one "ratio" JSON line per comparison on stdout and a human table on
stderr:
  train     iapo's train_step tokens/s over peer_train's (B=1, T=256; both
            forward + backward + AdamW), with the issue's target
  decode    iapo's decode tokens/s over peer_decode's (G=8, 64-token prompt,
            128 new tokens), target 3x; dec-bf16 the same with iapo's bf16
            weight matrices (iapo_kv_use_bf16), which is how iapo_generate
            samples by default (generate.h). Both decode as iapo_generate
            does by default since session 12, from the weights packed for
            decoding too (iapo_kv_pack_weights(kv, 2), "path": "packs");
            dec-rows and dec-bf16r are the ablation from the weights' rows
            (what "decode" and "dec-bf16" measured before session 12);
            dec-pack and dec-bf16p: the opt-in packed records of sessions
            9-11 (older files). When the records carry "round"
            (bench/run.sh's paired rounds: ours and the peer's decode back to
            back in each round), the ratio is taken within each round and
            the line reports the median of the per-round ratios (ratio, and
            met by it), their least and most (ratio_min/max), the median
            tokens/s of each side (iapo, peer) and every round (rounds: round,
            iapo, peer, ratio, and the read bandwidth each process measured
            next to its decode); paired: true. Without rounds (older files):
            the last record of each side, paired: false.
  bw        iapo's decode tokens/s over the memory-bandwidth bound of the same
            record (every weight read once per step, in the precision that run
            multiplies by: fp32, or bf16 matrices for dec-bf16, at the read
            bandwidth bench/model measured next to that decode), target within
            1.5x at qwen0.5b (>= 67%); with rounds, the median over the
            rounds of each round's percentage, with the least and most
            (pct_bound_min/max) and every round. Since session 16 the
            percentage judged (judged: "paired") is the record's
            paired_pct_bound: the decode's 16-step segments, each over the
            bound at the faster of the weight reads right before and right
            after it, median over the segments (pct_paired_bound); the whole
            decode against the reads before and after all of it stays as
            pct_bound / pct_own_bound. A round whose read next to
            the decode is slower than the decode itself streamed (its
            weights and K/V per step: streamed_gb_per_s) has no bound: it is
            refused (REFUSED on stderr, left out of the median; "refused"
            counts them, met null when every round was); bench/model refuses
            such segments itself (paired_refused)
  gemm      iapo's GFLOP/s per product shape (bench/gemm) as a percentage of
            the fp32 FMA peak measured next to it on the same threads: the
            median over bench/gemm's rounds (pct_peak), with the least and
            the most round (pct_peak_min/max) and the count of adjacent peaks
            at the one-CPU rate; pct_run_peak is the median rate over the
            highest peak measured in the run (same thread count), the
            method before session 7 and the one for records without rounds;
            target >= 80% for the large ones
  gemm_qkv  the same for the q/k/v batches as the model issues them (fwd,
            bwd)
  info      target 4: the bf16 information pass over the rollout's cache
            (bench/info, as `iapo train --algo iapo` runs it by default) over
            one fp32 forward + backward of the same batch, in CPU seconds
            (medians over bench/info's rounds), target <= 0.5x; one line per
            length: bench/info's own batch (64 + 192 tokens: "info" and
            "fwd_bwd" records) and the trainer's (64 + 960: "info_trainer")
Missing records (a shape not run, the peer not installed) give no line.
Reads only; changes nothing. Usage: table.py RESULTS.jsonl
"""
import json
import sys

TRAIN_TARGET = {"tiny": 1.3, "small": 1.5, "qwen0.5b": 1.5}
DECODE_TARGET = 3.0
BW_TARGET = 100.0 / 1.5  # percent of the bound, at qwen0.5b
GEMM_TARGET = 80.0
INFO_TARGET = 0.5  # the information pass over fwd+bwd, at most
SHAPES = ["tiny", "small", "qwen0.5b"]
# (table label, bench/model record): the default paths, their ablations, and
# the records of files written before session 12
DECODE_ROWS = [("decode", "decode"), ("dec-rows", "decode_rows"), ("dec-bf16", "decode_bf16"),
               ("dec-bf16r", "decode_bf16_rows"), ("dec-pack", "decode_packed"), ("dec-bf16p", "decode_bf16_packed")]
BW_ROWS = [("fp32", "decode"), ("fp32-rows", "decode_rows"), ("bf16", "decode_bf16"), ("bf16-rows", "decode_bf16_rows"),
           ("fp32-pack", "decode_packed"), ("bf16-pack", "decode_bf16_packed")]


def streamed(r):
    """GB/s the decode of record r read: its weights once per step (bf16
    matrices when it multiplied by them) and its mean K/V per step."""
    if r.get("streamed_gb_per_s"):
        return r["streamed_gb_per_s"]
    wb = r.get("bf16_weight_bytes") or r.get("weight_bytes")
    if not (wb and r.get("decode_tokens_per_s") and r.get("B")):
        return None
    return r["decode_tokens_per_s"] / r["B"] * (wb + (r.get("kv_bytes_per_step_mean") or 0)) * 1e-9


def bound_refused(r):
    """A read next to the decode slower than the decode itself streamed is
    no bound (the host changed between the two): such a round is refused."""
    st, bw = streamed(r), r.get("mem_bw_gb_per_s")
    return bool(st and bw and bw < st)


def last(records, bench, **match):
    """The last record of this bench whose fields match."""
    out = None
    for r in records:
        if r.get("bench") == bench and all(r.get(k) == v for k, v in match.items()):
            out = r
    return out


def median(v):
    v = sorted(v)
    n = len(v)
    return None if n == 0 else (v[n // 2] if n % 2 else 0.5 * (v[n // 2 - 1] + v[n // 2]))


def by_round(records, bench, shape):
    """{round: the last record of this bench and shape with that round}."""
    out = {}
    for r in records:
        if r.get("bench") == bench and r.get("shape") == shape and r.get("round"):
            out[r["round"]] = r
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
    w("iapo vs PyTorch peer (tokens/s, median of the repeats; ratio = iapo / peer;")
    w("best: the same from each side's fastest repeat, the least disturbed by other processes)")
    w("%-9s %-7s %10s %10s %7s %7s %-6s %10s %10s %7s" % ("shape", "what", "iapo", "peer", "ratio", "target", "",
                                                          "iapo best", "peer best", "ratio"))

    def row(what, s, ours, peer, key, best_key, target):
        if not (ours and peer and ours.get(key) and peer.get(key)):
            return
        r = ours[key] / peer[key]
        ob, pb = ours.get(best_key), peer.get(best_key)
        rb = ob / pb if ob and pb else None
        emit(what=what, shape=s, iapo=ours[key], peer=peer[key], ratio=round(r, 3), target=target, met=r >= target,
             iapo_best=ob, peer_best=pb, ratio_best=None if rb is None else round(rb, 3))
        w("%-9s %-7s %10.1f %10.1f %6.2fx %6.1fx %-6s %10s %10s %7s" % (
            s, what, ours[key], peer[key], r, target, "ok" if r >= target else "BELOW",
            fmt(ob, ".1f"), fmt(pb, ".1f"), "-" if rb is None else "%.2fx" % rb))

    paired_lines = []

    def paired_row(what, s, bench):
        """The decode comparison from paired rounds; False when there are none."""
        ours, peer = by_round(records, bench, s), by_round(records, "peer_decode", s)
        key, best_key = "decode_tokens_per_s", "best_decode_tokens_per_s"
        ks = sorted(k for k in ours if k in peer and ours[k].get(key) and peer[k].get(key))
        if not ks:
            return False
        rounds = []
        for k in ks:
            o, p = ours[k], peer[k]
            rounds.append(dict(round=k, iapo=o[key], peer=p[key], ratio=round(o[key] / p[key], 3),
                               iapo_mem_bw_gb_per_s=o.get("mem_bw_gb_per_s"),
                               peer_mem_bw_gb_per_s=p.get("mem_bw_gb_per_s")))
        ratios = [x["ratio"] for x in rounds]
        r = median(ratios)
        mi, mp = median([x["iapo"] for x in rounds]), median([x["peer"] for x in rounds])
        ob = max(ours[k].get(best_key) or 0 for k in ks) or None
        pb = max(peer[k].get(best_key) or 0 for k in ks) or None
        rb = ob / pb if ob and pb else None
        emit(what=what, shape=s, iapo=mi, peer=mp, ratio=round(r, 3), target=DECODE_TARGET, met=r >= DECODE_TARGET,
             iapo_best=ob, peer_best=pb, ratio_best=None if rb is None else round(rb, 3), paired=True,
             ratio_min=min(ratios), ratio_max=max(ratios), rounds=rounds)
        w("%-9s %-7s %10.1f %10.1f %6.2fx %6.1fx %-6s %10s %10s %7s  rounds %.2f-%.2fx" % (
            s, what, mi, mp, r, DECODE_TARGET, "ok" if r >= DECODE_TARGET else "BELOW",
            fmt(ob, ".1f"), fmt(pb, ".1f"), "-" if rb is None else "%.2fx" % rb, min(ratios), max(ratios)))
        paired_lines.append("%-9s %-8s %s" % (s, what, "  ".join(
            "%d: %.1f/%.1f %.2fx (%s/%s GB/s)" % (x["round"], x["iapo"], x["peer"], x["ratio"],
                                                  fmt(x["iapo_mem_bw_gb_per_s"]), fmt(x["peer_mem_bw_gb_per_s"]))
            for x in rounds)))
        return True

    for s in SHAPES:
        row("train", s, last(records, "train_step", shape=s), last(records, "peer_train", shape=s),
            "tokens_per_s", "best_tokens_per_s", TRAIN_TARGET[s])
        # decode, dec-bf16: the product's default path (since session 12 from
        # the weight packs); dec-rows, dec-bf16r: the ablation from the rows;
        # dec-pack, dec-bf16p: sessions 9-11's opt-in records (older files)
        for what, bench in DECODE_ROWS:
            if not paired_row(what, s, bench):
                row(what, s, last(records, bench, shape=s), last(records, "peer_decode", shape=s),
                    "decode_tokens_per_s", "best_decode_tokens_per_s", DECODE_TARGET)
    if paired_lines:
        w("")
        w("decoding in paired rounds (bench/run.sh: ours and the peer back to back in each round; the ratio")
        w("above is the median of the per-round ratios): round: iapo/peer tok/s, ratio (GB/s each process")
        w("read next to its decode)")
        lines.extend(paired_lines)
    w("")
    w("decoding vs the memory-bandwidth bound: the weights read once per step at the read")
    w("bandwidth bench/model measured next to that decode. % bound: the whole decode's tokens/s over the")
    w("fp32 weights' bound at the faster of its own weights read before the warm-up and after the repeats")
    w("(tiny: the start-up 1 GiB read). paired (judged, small and qwen0.5b): each 16-step segment's tokens/s")
    w("over the bound of the weights it multiplies by (fp32, or bf16 matrices) at the faster of the reads")
    w("right before and right after that segment, median over the segments; a segment whose read is below")
    w("what it streamed is refused. With rounds: medians over the rounds, the range of the judged %")
    w("%-9s %-8s %10s %9s %10s %8s %8s %s" % ("shape", "weights", "decode", "GB/s", "bound", "% bound", "paired",
                                               "target"))
    for s in SHAPES:
        for name, bench in BW_ROWS:
            rs = [r for _, r in sorted(by_round(records, bench, s).items()) if r.get("bw_bound_tokens_per_s")]
            if not rs:
                d = last(records, bench, shape=s)
                rs = [d] if d and d.get("bw_bound_tokens_per_s") else []
            if not rs:
                continue
            refused = [r for r in rs if bound_refused(r)]
            for r in refused:
                w("%-9s %-8s REFUSED%s: the read next to it, %.1f GB/s, is below what the decode streamed, "
                  "%.1f GB/s" % (s, name, " round %d" % r["round"] if r.get("round") else "", r["mem_bw_gb_per_s"],
                                 streamed(r)))
            rs = [r for r in rs if not bound_refused(r)]
            if not rs:
                emit(what="bw", shape=s, weights=name, refused=len(refused), met=None)
                continue
            pcts = [r.get("pct_bw_bound") or 0 for r in rs]
            owns = [r.get("pct_bw_bound_bf16") for r in rs if r.get("pct_bw_bound_bf16") is not None]
            pct, own = median(pcts), median(owns)
            judged = own if own is not None else pct
            judged_all = owns if owns else pcts
            # since session 16: the paired bound (each 16-step segment against
            # the reads right before and after it) is the one judged, where
            # the records have it
            paired_all = [r["paired_pct_bound"] for r in rs if r.get("paired_pct_bound") is not None]
            paired = median(paired_all)
            if paired is not None:
                judged, judged_all = paired, paired_all
            tgt = BW_TARGET if s == "qwen0.5b" else None
            dec = median([r["decode_tokens_per_s"] for r in rs])
            gbs = median([r.get("mem_bw_gb_per_s") or 0 for r in rs])
            bound = median([r["bw_bound_tokens_per_s"] for r in rs])
            extra = {}
            if rs[0].get("round"):
                extra = dict(paired=True, pct_bound_min=round(min(judged_all), 1), pct_bound_max=round(max(judged_all), 1),
                             rounds=[dict(round=r["round"], iapo=r["decode_tokens_per_s"],
                                          mem_bw_gb_per_s=r.get("mem_bw_gb_per_s"),
                                          mem_bw_source=r.get("mem_bw_source"),
                                          bound=r["bw_bound_tokens_per_s"], pct_bound=r.get("pct_bw_bound"),
                                          pct_own_bound=r.get("pct_bw_bound_bf16"),
                                          pct_paired_bound=r.get("paired_pct_bound"),
                                          pct_paired_bound_min=r.get("paired_pct_bound_min"),
                                          pct_paired_bound_max=r.get("paired_pct_bound_max"),
                                          paired_refused=r.get("paired_refused")) for r in rs])
            emit(what="bw", shape=s, weights=name, path=rs[0].get("path", "rows" if bench in ("decode", "decode_bf16")
                                                                   else "packs"),
                 iapo=dec, bound=bound, mem_bw_gb_per_s=gbs, pct_bound=pct, refused=len(refused),
                 streamed_gb_per_s=median([streamed(r) or 0 for r in rs]),
                 target_pct=tgt, met=None if tgt is None else judged >= tgt, pct_own_bound=own,
                 pct_paired_bound=paired, judged="paired" if paired is not None else ("own" if own is not None
                                                                                       else "whole"), **extra)
            w("%-9s %-8s %10.1f %9.1f %10.1f %7.0f%% %8s %s%s%s" % (
                s, name, dec, gbs, bound, pct or 0, "-" if paired is None else "%.0f%%" % paired,
                "" if tgt is None else (">= %.0f%%: %s" % (tgt, "ok" if judged >= tgt else "BELOW")),
                "" if own is None else "  (whole: %.0f%% of its bf16 bound)" % own,
                "" if not extra else "  rounds %.0f-%.0f%%" % (min(judged_all), max(judged_all))))
    info_rows = []
    for s in SHAPES:
        i, f = last(records, "info", shape=s), last(records, "fwd_bwd", shape=s)
        t = last(records, "info_trainer", shape=s)
        if i and f and i.get("cached_bf16_cpu_seconds") and f.get("cpu_seconds"):
            info_rows.append((s, i["prompt"], i["completion"], i.get("postfix"), i["cached_bf16_cpu_seconds"],
                              f["cpu_seconds"], i.get("rounds")))
        if t and t.get("cached_bf16_cpu_seconds") and t.get("fwd_bwd_cpu_seconds"):
            info_rows.append((s, t["prompt"], t["completion"], t.get("postfix"), t["cached_bf16_cpu_seconds"],
                              t["fwd_bwd_cpu_seconds"], t.get("rounds")))
    if info_rows:
        w("")
        w("information pass (target 4): the bf16 pass over the rollout's cache / one fp32 forward+backward of the")
        w("same batch (G = 8), CPU seconds, medians over bench/info's rounds; 64 + 192 is bench/info's own batch,")
        w("64 + 960 the trainer's lengths (info_trainer)")
        w("%-9s %-10s %7s %10s %13s %7s %s" % ("shape", "tokens", "postfix", "pass CPU s", "fwd+bwd CPU s", "ratio",
                                              "target"))
        for s, p, c, k, pc, fc, n in info_rows:
            r = pc / fc
            emit(what="info", shape=s, prompt=p, completion=c, postfix=k, pass_cpu_seconds=pc,
                 fwd_bwd_cpu_seconds=fc, rounds=n, ratio=round(r, 3), target=INFO_TARGET, met=r <= INFO_TARGET)
            w("%-9s %-10s %7s %10.3f %13.3f %6.2fx <= %.1fx %s" % (
                s, "%d + %d" % (p, c), fmt(k, "d"), pc, fc, r, INFO_TARGET, "ok" if r <= INFO_TARGET else "ABOVE"))
    gem = [r for r in records if r.get("bench") in ("gemm", "gemm_qkv") and r.get("M", 0) > 16]
    for nthreads in sorted({r.get("threads", 1) for r in gem}, reverse=True):
        # The run's denominator (older records, and the run_peak column): the
        # highest fp32 peak any program of the run measured at this thread
        # count (a peak measured while another process held a core is too low
        # and would flatter the GEMM).
        peaks = [r.get("gflops") for r in records
                 if r.get("bench") == "fp32_fma_peak" and r.get("threads") == nthreads]
        peaks += [r.get("fp32_peak_now_gflops") for r in records
                  if r.get("bench") == "model_limits" and r.get("threads") == nthreads]
        peaks += [r.get("fp32_peak_1thread_gflops") for r in records
                  if r.get("bench") == "model_limits" and nthreads == 1]
        peak = max([p for p in peaks if p] or [0])
        w("")
        w("GEMM, M=256 tokens, %d thread%s: %% of the fp32 FMA peak measured next to each product on the same"
          % (nthreads, "s" if nthreads > 1 else ""))
        w("threads (bench/gemm: median over its rounds, least-most in brackets; * = some adjacent peaks at the")
        w("one-CPU rate); run_peak: the median rate over the run's highest peak, %.0f GFLOP/s" % peak)
        w("(nt: y = x W^T, nn: dx = dy W, tn: dW = dy^T x; qkv: q/k/v as the model batches them, fwd / bwd)")
        w("%-9s %-8s %-16s %-16s %-16s %s" % ("shape", "layer", "nt", "nn", "tn", "run_peak nt/nn/tn"))
        seen = {}

        def one(r, key, prefix, op, gflops):
            adj = r.get(prefix + "pct_adj_peak")
            run = 100.0 * gflops / peak if gflops and peak > 0 else None
            pct = adj if adj is not None else run
            if pct is None:
                return
            lo, hi = r.get(prefix + "pct_adj_peak_min"), r.get(prefix + "pct_adj_peak_max")
            cell = "%.0f%%" % pct
            if lo is not None and hi is not None:
                cell += " (%.0f-%.0f)" % (lo, hi)
            if r.get(prefix + "one_cpu_peaks"):
                cell += "*"
            seen.setdefault(key, {})[op] = (cell, run)
            emit(what=r["bench"], shape=r["shape"], layer=key[1], op=op, M=r["M"], N=r.get("N"), K=r["K"],
                 threads=nthreads, gflops=gflops, pct_peak=round(pct, 1),
                 pct_peak_min=lo, pct_peak_max=hi, rounds=r.get("rounds"),
                 adj_peak_gflops=r.get(prefix + "adj_peak_gflops"),
                 one_cpu_peaks=r.get(prefix + "one_cpu_peaks"),
                 one_cpu_peaks_shared=r.get(prefix + "one_cpu_peaks_shared"),
                 run_peak_gflops=peak, pct_run_peak=None if run is None else round(run, 1),
                 target_pct=GEMM_TARGET, met=pct >= GEMM_TARGET)

        for r in gem:
            if r.get("threads") != nthreads:
                continue
            if r["bench"] == "gemm":
                one(r, (r["shape"], r["layer"]), "iapo_", r["op"], r.get("iapo_gflops"))
            else:
                one(r, (r["shape"], "qkv"), "fwd_", "fwd", r.get("fwd_gflops"))
                one(r, (r["shape"], "qkv"), "bwd_", "bwd", r.get("bwd_gflops"))
        for (s, layer), ops in seen.items():
            cols = ("fwd", "bwd", None) if layer == "qkv" else ("nt", "nn", "tn")
            cells = [ops.get(c, ("-", None)) if c else ("", None) for c in cols]
            w("%-9s %-8s %-16s %-16s %-16s %s" % (s, layer, cells[0][0], cells[1][0], cells[2][0],
                                                  "/".join(fmt(c[1]) for c in cells if c[0])))
    sys.stderr.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
