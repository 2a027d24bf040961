#!/usr/bin/python3
"""peer.py - the PyTorch peer that iapo's speed is compared with.

The same Qwen2-shaped models as bench/model.c (tied embeddings, q/k/v bias,
RoPE theta 1e6, head dim 64, random weights of std 0.02, norms 1, biases 0),
written in plain PyTorch (Debian's python3-torch 1.13, CPU, float32), with the
same batches, JSON lines on stdout and commentary on stderr:

  peer_machine  torch version, threads, BLAS core, the environment it ran in
  peer_train    one training step of B=1 sequence of T=256 tokens: forward
                (log-prob of every target and the entropy, as iapo's forward
                computes both), backward of the mean NLL, AdamW step
                (torch.optim.AdamW, foreach); tokens/s = B*T / median seconds
  peer_decode   batched greedy decoding with a KV cache: G=8 sequences,
                64-token random prompts prefilled in one batched pass, then
                128 new tokens each (the first from the prefill's logits, then
                127 one-token steps of all 8 rows; EOS ignored), as
                bench/model.c's "decode" record; with the read bandwidth of
                this process right before and after (read_bw)
  peer_info     the IAPO information pass (KV cache preloaded, chunked): not
                written yet; bench_info() below is the hook for it

Before timing, the peer checks that it computes the model the tests trust:
its training forward against tests/oracle/hf_model.py's HFModel, and its
cached decoding against its own full forward, on a small random model
(a mismatch is an error, exit status 1).

Run it as a fair competitor would (bench/run.sh does): 2 threads,
LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2 with
MALLOC_CONF=thp:always,dirty_decay_ms:-1,muzzy_decay_ms:-1 (an allocator that
hands freed buffers back to the kernel makes the training step fault fresh
pages in every step, which costs PyTorch 2-4x here), OMP_WAIT_POLICY=PASSIVE,
and OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE
unset so OpenBLAS picks its AVX-512 kernels. The script reports the
environment it got; it changes none of it.

Timing as bench/model.c: one warm-up, then repeats until a time budget is
spent (8 s, --quick 1 s; at least 2 repeats, --quick 1; at most 7), median.

Usage: peer.py [--shape tiny|small|qwen0.5b|all] [--threads N] [--quick]
               [--what train,decode,info] [--no-check] [--round N]
(--round N tags the peer_decode record with "round": N, for bench/run.sh's
paired rounds against bench/model.)
"""
import argparse
import json
import math
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "oracle"))
import hf_model  # noqa: E402  (the oracle model of the tests)

SHAPES = [
    # name, V, C, L, NH, NKV, F  (bench/model.c's table)
    ("tiny", 512, 256, 4, 4, 2, 768),
    ("small", 8192, 512, 8, 8, 4, 1536),
    ("qwen0.5b", 151936, 896, 24, 14, 2, 4864),
]
TRAIN_B, TRAIN_T = 1, 256
DEC_B, DEC_PROMPT, DEC_NEW = 8, 64, 128
MAX_REPS = 7
ADAMW = dict(lr=1e-6, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)


def note(msg):
    sys.stderr.write("peer: " + msg + "\n")
    sys.stderr.flush()


def record(bench, **fields):
    out = {"bench": bench}
    for k, v in fields.items():
        if isinstance(v, float):
            v = float("%.4g" % v) if math.isfinite(v) else None
        out[k] = v
    sys.stdout.write(json.dumps(out, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def loadavg():
    try:
        return os.getloadavg()[0]
    except OSError:
        return -1.0


def config(shape):
    name, V, C, L, NH, NKV, Fm = shape
    return {"model_type": "qwen2", "vocab_size": V, "hidden_size": C, "num_hidden_layers": L,
            "num_attention_heads": NH, "num_key_value_heads": NKV, "intermediate_size": Fm,
            "rms_norm_eps": 1e-6, "rope_theta": 1e6, "tie_word_embeddings": True,
            "max_position_embeddings": 32768}


def hf_names(cfg):
    """HF tensor names and shapes of a tied Qwen2 model."""
    V, C, L = cfg["vocab_size"], cfg["hidden_size"], cfg["num_hidden_layers"]
    NH, NKV, Fm = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["intermediate_size"]
    HD = C // NH
    out = [("model.embed_tokens.weight", (V, C))]
    for l in range(L):
        p = "model.layers.%d." % l
        out += [(p + "input_layernorm.weight", (C,)),
                (p + "self_attn.q_proj.weight", (NH * HD, C)), (p + "self_attn.q_proj.bias", (NH * HD,)),
                (p + "self_attn.k_proj.weight", (NKV * HD, C)), (p + "self_attn.k_proj.bias", (NKV * HD,)),
                (p + "self_attn.v_proj.weight", (NKV * HD, C)), (p + "self_attn.v_proj.bias", (NKV * HD,)),
                (p + "self_attn.o_proj.weight", (C, NH * HD)),
                (p + "post_attention_layernorm.weight", (C,)),
                (p + "mlp.gate_proj.weight", (Fm, C)), (p + "mlp.up_proj.weight", (Fm, C)),
                (p + "mlp.down_proj.weight", (C, Fm))]
    out.append(("model.norm.weight", (C,)))
    return out


def random_tensors(cfg, seed=1234, std=0.02, bias_std=0.0):
    g = torch.Generator().manual_seed(seed)
    t = {}
    for name, shape in hf_names(cfg):
        if name.endswith("norm.weight") or name.endswith("layernorm.weight"):
            t[name] = torch.ones(shape)
        elif name.endswith(".bias"):
            t[name] = torch.randn(shape, generator=g) * bias_std
        else:
            t[name] = torch.randn(shape, generator=g) * std
    return t


class Qwen2:
    """A Qwen2 causal LM in plain PyTorch ops, float32, written for speed on
    the CPU: bias folded into addmm (F.linear), grouped-query attention as a
    batched matmul over (kv head, group x query) without repeating K/V, an
    additive causal mask, and for decoding a preallocated K/V cache."""

    def __init__(self, cfg, tensors, requires_grad):
        self.V, self.C, self.L = cfg["vocab_size"], cfg["hidden_size"], cfg["num_hidden_layers"]
        self.NH, self.NKV = cfg["num_attention_heads"], cfg["num_key_value_heads"]
        self.HD = self.C // self.NH
        self.G = self.NH // self.NKV
        self.eps = cfg["rms_norm_eps"]
        self.inv_freq = hf_model.rope_inv_freq(cfg, self.HD)
        self.p = {k: v.clone().requires_grad_(requires_grad) for k, v in tensors.items()}
        self.layers = []
        for l in range(self.L):
            pre = "model.layers.%d." % l
            self.layers.append({k: self.p[pre + n] for k, n in (
                ("ln1", "input_layernorm.weight"), ("wq", "self_attn.q_proj.weight"),
                ("bq", "self_attn.q_proj.bias"), ("wk", "self_attn.k_proj.weight"),
                ("bk", "self_attn.k_proj.bias"), ("wv", "self_attn.v_proj.weight"),
                ("bv", "self_attn.v_proj.bias"), ("wo", "self_attn.o_proj.weight"),
                ("ln2", "post_attention_layernorm.weight"), ("wg", "mlp.gate_proj.weight"),
                ("wu", "mlp.up_proj.weight"), ("wd", "mlp.down_proj.weight"))})
        self.emb = self.p["model.embed_tokens.weight"]
        self.norm = self.p["model.norm.weight"]

    def parameters(self):
        return list(self.p.values())

    def rmsnorm(self, x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * w

    def rope(self, pos):
        """cos, sin (n, HD) for positions pos (n): float32 angles, as HF."""
        f = pos.to(torch.float32)[:, None] * self.inv_freq[None, :]
        e = torch.cat((f, f), dim=-1)
        return e.cos(), e.sin()

    @staticmethod
    def rotate(x, cos, sin):
        h = x.shape[-1] // 2
        return x * cos + torch.cat((-x[..., h:], x[..., :h]), dim=-1) * sin

    def mlp(self, h, w):
        return F.linear(F.silu(F.linear(h, w["wg"])) * F.linear(h, w["wu"]), w["wd"])

    def forward(self, ids, cache=None):
        """Causal forward of ids (B,T) from position 0; returns the final
        normed hidden states (B,T,C). With cache = (kc, vc), each
        (L, B, NKV, Tmax, HD), stores every layer's K/V at positions 0..T-1."""
        B, T = ids.shape
        NH, NKV, HD, G = self.NH, self.NKV, self.HD, self.G
        cos, sin = self.rope(torch.arange(T))
        mask = torch.full((T, T), float("-inf")).triu(1)
        scale = HD ** -0.5
        x = self.emb[ids]
        for l, w in enumerate(self.layers):
            h = self.rmsnorm(x, w["ln1"])
            q = F.linear(h, w["wq"], w["bq"]).view(B, T, NH, HD).transpose(1, 2)
            k = F.linear(h, w["wk"], w["bk"]).view(B, T, NKV, HD).transpose(1, 2)
            v = F.linear(h, w["wv"], w["bv"]).view(B, T, NKV, HD).transpose(1, 2)
            q = self.rotate(q, cos, sin)
            k = self.rotate(k, cos, sin)
            if cache is not None:
                cache[0][l, :, :, :T] = k
                cache[1][l, :, :, :T] = v
            # query head j*G+i reads kv head j: (B, NKV, G*T, HD) against (B, NKV, T, HD)
            s = torch.matmul(q.reshape(B, NKV, G * T, HD), k.transpose(2, 3)) * scale
            s = s.view(B, NKV, G, T, T) + mask
            a = torch.matmul(torch.softmax(s, dim=-1).view(B, NKV, G * T, T), v)
            a = a.view(B, NH, T, HD).transpose(1, 2).reshape(B, T, NH * HD)
            x = x + F.linear(a, w["wo"])
            x = x + self.mlp(self.rmsnorm(x, w["ln2"]), w)
        return self.rmsnorm(x, self.norm)

    def logits(self, x):
        return F.linear(x, self.emb)

    def step(self, tok, pos, kc, vc):
        """One decoding step: tok (B,) at position pos of every sequence;
        appends K/V to the cache and returns the logits (B,V)."""
        B = tok.shape[0]
        NH, NKV, HD, G = self.NH, self.NKV, self.HD, self.G
        cos, sin = self.rope(torch.tensor([pos]))
        scale = HD ** -0.5
        x = self.emb[tok]
        for l, w in enumerate(self.layers):
            h = self.rmsnorm(x, w["ln1"])
            q = self.rotate(F.linear(h, w["wq"], w["bq"]).view(B, NKV, G, HD), cos, sin)
            k = self.rotate(F.linear(h, w["wk"], w["bk"]).view(B, NKV, HD), cos, sin)
            kc[l, :, :, pos] = k
            vc[l, :, :, pos] = F.linear(h, w["wv"], w["bv"]).view(B, NKV, HD)
            K, Vv = kc[l, :, :, :pos + 1], vc[l, :, :, :pos + 1]      # (B, NKV, pos+1, HD)
            s = torch.matmul(q, K.transpose(2, 3)) * scale            # (B, NKV, G, pos+1)
            a = torch.matmul(torch.softmax(s, dim=-1), Vv)            # (B, NKV, G, HD)
            x = x + F.linear(a.reshape(B, NH * HD), w["wo"])
            x = x + self.mlp(self.rmsnorm(x, w["ln2"]), w)
        return self.logits(self.rmsnorm(x, self.norm))


def train_loss(m, ids, targets):
    """Mean NLL of the targets (what the step minimises); the per-token
    log-probs and entropies are computed as iapo's forward computes them."""
    lp = torch.log_softmax(m.logits(m.forward(ids)), dim=-1)
    logp = lp.gather(-1, targets[..., None])[..., 0]
    with torch.no_grad():
        entropy = -(lp.exp() * lp).sum(-1)
    return -logp[:, :-1].mean(), entropy


# ------------------------------------------------------------------ checks

def self_check():
    """The peer computes the oracle's model: forward vs HFModel (float64),
    cached decoding vs the full forward. Small random model, nonzero biases."""
    cfg = config(("check", 97, 64, 2, 4, 2, 96))
    t = random_tensors(cfg, seed=5, std=0.1, bias_std=0.1)
    m = Qwen2(cfg, t, requires_grad=False)
    oracle = hf_model.HFModel(cfg, t, dtype=torch.float64)
    g = torch.Generator().manual_seed(9)
    ids = torch.randint(0, cfg["vocab_size"], (3, 11), generator=g)
    with torch.no_grad():
        want = oracle.forward(ids, torch.ones_like(ids)).to(torch.float32)
        got = m.logits(m.forward(ids))
        err = (got - want).abs().max().item()
        if not err < 1e-4:
            raise SystemExit("peer: self-check: forward differs from hf_model.HFModel by %g (> 1e-4)" % err)
        kc = torch.zeros(m.L, 3, m.NKV, 11, m.HD)
        vc = torch.zeros_like(kc)
        m.forward(ids[:, :5], cache=(kc, vc))
        err2 = 0.0
        for p in range(5, 11):
            err2 = max(err2, (m.step(ids[:, p], p, kc, vc) - got[:, p]).abs().max().item())
        if not err2 < 1e-4:
            raise SystemExit("peer: self-check: cached decoding differs from the full forward by %g (> 1e-4)" % err2)
    note("self-check: forward vs hf_model %.2g, cached decode vs forward %.2g (tolerance 1e-4)" % (err, err2))


# ------------------------------------------------------------------ timing

def time_it(fn, budget, min_reps):
    """One warm-up call, then repeats until budget seconds are spent (at
    least min_reps, at most MAX_REPS); (median seconds, best, repeats)."""
    fn()
    v, spent = [], 0.0
    while len(v) < MAX_REPS and (len(v) < min_reps or spent + v[-1] <= budget):
        t0 = time.perf_counter()
        fn()
        v.append(time.perf_counter() - t0)
        spent += v[-1]
    v.sort()
    n = len(v)
    return (v[n // 2] if n % 2 else 0.5 * (v[n // 2 - 1] + v[n // 2])), v[0], n


def bench_train(shape, tensors, args):
    cfg = config(shape)
    m = Qwen2(cfg, tensors, requires_grad=True)
    opt = torch.optim.AdamW(m.parameters(), foreach=True, **ADAMW)
    g = torch.Generator().manual_seed(7)
    ids = torch.randint(0, cfg["vocab_size"], (TRAIN_B, TRAIN_T), generator=g)
    targets = torch.roll(ids, -1, dims=1)

    def step():
        opt.zero_grad(set_to_none=True)
        loss, _ = train_loss(m, ids, targets)
        loss.backward()
        opt.step()

    sec, best, reps = time_it(step, args.budget, args.min_reps)
    tps = TRAIN_B * TRAIN_T / sec
    record("peer_train", shape=shape[0], B=TRAIN_B, T=TRAIN_T, threads=torch.get_num_threads(),
           optimizer="AdamW(foreach)", repeats=reps, seconds=sec, tokens_per_s=tps,
           best_tokens_per_s=TRAIN_B * TRAIN_T / best, loadavg_1m=loadavg())
    note("%-8s train   %8.1f tokens/s (%d reps, median %.3f s)" % (shape[0], tps, reps, sec))


NEAR_BW_MIN = 512 << 20


def read_bw(m, passes=3):
    """Read bandwidth next to the decode, in this process (GB/s, best of
    passes): a sum over the model's own weight matrices when they fill at
    least 512 MB (qwen0.5b), as bench/model.c's near_read_bw; None for the
    smaller shapes (tiny's sit in the L3 cache, and small's 1-3 MB tensors
    leave torch's per-call cost in the figure: 21-26 GB/s where our read of
    the same bytes gave 50-55). Descriptive only: it shows which of the
    host's memory "modes" (27-83 GB/s) this process ran in; nothing is
    divided by it. torch's sum may top out under a plain read's rate."""
    ws = [t for t in m.parameters() if t.dim() == 2]
    nbytes = sum(t.numel() * t.element_size() for t in ws)
    if nbytes < NEAR_BW_MIN:
        return None
    best = 0.0
    with torch.no_grad():
        for _ in range(passes):
            t0 = time.perf_counter()
            for t in ws:
                t.sum()
            best = max(best, nbytes / (time.perf_counter() - t0) * 1e-9)
    return best


def bench_decode(shape, tensors, args):
    cfg = config(shape)
    m = Qwen2(cfg, tensors, requires_grad=False)
    g = torch.Generator().manual_seed(11)
    prompt = torch.randint(0, cfg["vocab_size"], (DEC_B, DEC_PROMPT), generator=g)
    Tmax = DEC_PROMPT + DEC_NEW
    kc = torch.zeros(m.L, DEC_B, m.NKV, Tmax, m.HD)
    vc = torch.zeros_like(kc)
    times = {}

    def run(plen, new):
        with torch.inference_mode():
            t0 = time.perf_counter()
            h = m.forward(prompt[:, :plen], cache=(kc, vc))
            tok = m.logits(h[:, -1]).argmax(-1)
            t1 = time.perf_counter()
            for i in range(1, new):
                tok = m.step(tok, plen + i - 1, kc, vc).argmax(-1)
            t2 = time.perf_counter()
        times["prefill"], times["decode"] = t1 - t0, t2 - t1

    bw_before = read_bw(m)
    run(8, 3)  # warm-up: every weight and the whole code path once
    pre, dec, spent = [], [], 0.0
    while len(pre) < MAX_REPS and (len(pre) < 1 or spent + pre[-1] + dec[-1] <= args.budget):
        run(DEC_PROMPT, DEC_NEW)
        pre.append(times["prefill"])
        dec.append(times["decode"])
        spent += pre[-1] + dec[-1]
    bw_after = read_bw(m)
    pre_s, dec_s = sorted(pre)[len(pre) // 2], sorted(dec)[len(dec) // 2]
    steps = DEC_NEW - 1
    extra = {"round": args.round} if args.round else {}
    record("peer_decode", shape=shape[0], B=DEC_B, prompt=DEC_PROMPT, new_tokens=DEC_NEW,
           threads=torch.get_num_threads(), **extra, repeats=len(pre), prefill_seconds=pre_s,
           prefill_tokens_per_s=DEC_B * DEC_PROMPT / pre_s, decode_seconds=dec_s, decode_steps=steps,
           decode_tokens_per_s=DEC_B * steps / dec_s, best_decode_tokens_per_s=DEC_B * steps / min(dec),
           generate_tokens_per_s=DEC_B * DEC_NEW / (pre_s + dec_s), mem_bw_gb_per_s=None if bw_before is None else max(bw_before, bw_after),
           mem_bw_before_gb_per_s=bw_before, mem_bw_after_gb_per_s=bw_after,
           mem_bw_source=None if bw_before is None else "weights (torch sum)",
           loadavg_1m=loadavg())
    note("%-8s decode  prefill %8.1f tokens/s, decode %8.1f tokens/s (%d reps%s)"
         % (shape[0], DEC_B * DEC_PROMPT / pre_s, DEC_B * steps / dec_s, len(pre),
            "" if bw_before is None else "; weights read %.1f / %.1f GB/s before / after" % (bw_before, bw_after)))


def bench_info(shape, tensors, args):
    """Hook for the IAPO information pass peer (KV cache preloaded, chunked),
    to be written with the pass itself: it should emit a "peer_info" record
    with the same batch as bench/info.c's "info" record (G=8, 64-token prompt
    + 192-token completion, 4-token postfix) and "seconds"."""
    note("%-8s info    not written yet (bench_info is the hook)" % shape[0])


WHAT = {"train": bench_train, "decode": bench_decode, "info": bench_info}


def main():
    ap = argparse.ArgumentParser(description="PyTorch peer of bench/model.c")
    ap.add_argument("--shape", default="all", choices=[s[0] for s in SHAPES] + ["all"])
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--what", default="train,decode")
    ap.add_argument("--no-check", action="store_true")
    ap.add_argument("--round", type=int, default=0,
                    help="tag the peer_decode record with this round (bench/run.sh's paired rounds)")
    args = ap.parse_args()
    whats = [w for w in args.what.split(",") if w]
    for w in whats:
        if w not in WHAT:
            ap.error("--what: expected a list of %s, found %r" % ("/".join(WHAT), w))
    args.budget = 1.0 if args.quick else 8.0
    args.min_reps = 1 if args.quick else 2
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = torch.__config__.show()
    blas = [l.split("=", 1)[1].strip(" ,") for l in cfg.replace(",", "\n").split("\n") if "BLAS_INFO" in l]
    record("peer_machine", torch=torch.__version__, threads=torch.get_num_threads(),
           blas=blas[0] if blas else None, ld_preload=os.environ.get("LD_PRELOAD", ""),
           malloc_conf=os.environ.get("MALLOC_CONF", ""),
           omp_wait_policy=os.environ.get("OMP_WAIT_POLICY", ""),
           openblas_coretype=os.environ.get("OPENBLAS_CORETYPE", ""),
           openblas_l2_size=os.environ.get("OPENBLAS_L2_SIZE", ""), loadavg_1m=loadavg())
    if not args.no_check:
        self_check()
    for s in SHAPES:
        if args.shape not in ("all", s[0]):
            continue
        t0 = time.perf_counter()
        tensors = random_tensors(config(s))
        note("%s: random init %.1f s" % (s[0], time.perf_counter() - t0))
        for w in whats:
            WHAT[w](s, tensors, args)
        del tensors
    return 0


if __name__ == "__main__":
    sys.exit(main())
