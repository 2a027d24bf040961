"""io_fixtures.py OUTDIR - safetensors files and HF model directories written by
hand with struct + json (no safetensors package), the rounding done by PyTorch,
so that iapo's reader and converters are checked against an independent writer.

Writes into OUTDIR:
  convert.bin        uint32 N; float32 x[N]; uint16 bf16[N] (torch); uint16 f16[N]
                     (torch); float32 bf16->f32[N] (torch); float32 f16->f32[N] (torch)
  misc.safetensors   assorted dtypes/shapes (scalar, empty, I64, F64), header not
                     padded, a __metadata__ map; misc.json lists the tensors
  model_*/           HF model dirs (config.json + model.safetensors or shards with
                     model.safetensors.index.json), with extra tensors HF ignores;
                     expected.json lists the tensors the config implies and their
                     offset (in floats) in expected.bin, the fp32 values PyTorch
                     gets from the stored dtype.
"""
import json
import os
import struct
import sys

import torch

DT = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16,
      "F64": torch.float64, "I64": torch.int64}


def raw_bytes(t):
    """Little-endian bytes of a tensor in its own dtype."""
    t = t.contiguous()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().tobytes()
    return t.numpy().tobytes()


def write_st(path, tensors, pad=True, metadata=None):
    """tensors: list of (name, dtype_name, tensor already in that dtype)."""
    header, blobs, off = {}, [], 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dt, t in tensors:
        b = raw_bytes(t)
        header[name] = {"dtype": dt, "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(h)))
        fh.write(h)
        for b in blobs:
            fh.write(b)


def conversions(out):
    g = torch.Generator().manual_seed(7)
    special = [0.0, -0.0, 1.0, -1.0, float("inf"), float("-inf"), float("nan"),
               65504.0, 65519.0, 65520.0, 65536.0, -65520.0, 1e30, -1e-30,
               2.0 ** -24, 2.0 ** -25, 3 * 2.0 ** -26, 2.0 ** -25 * 1.0001, 2.0 ** -14,
               2.0 ** -14 - 2.0 ** -25, 5.9604645e-08, 6.1035156e-05, 1e-8, 1e-40,
               1.0 + 2.0 ** -8, 1.0 + 3 * 2.0 ** -8, 1.0 + 2.0 ** -11, 1.0 + 3 * 2.0 ** -11,
               3.4028235e38, -3.4028235e38, 1.1754944e-38, 3.3895314e38]
    x = torch.tensor(special, dtype=torch.float32)
    # random bit patterns cover every exponent; then ordinary weights
    bits = torch.randint(-2 ** 31, 2 ** 31 - 1, (20000,), generator=g, dtype=torch.int64)
    rnd = torch.from_numpy(bits.to(torch.int32).numpy().view("float32").copy())
    scales = torch.randn(20000, generator=g) * torch.pow(10.0, torch.randint(-9, 5, (20000,), generator=g).float())
    # exact ties for bf16 and f16: a representable value plus half an ulp
    base = torch.randn(2000, generator=g)
    tb = torch.from_numpy((base.numpy().view("uint32") & 0xFFFF0000 | 0x8000).view("float32").copy())
    th = torch.from_numpy((base.half().float().numpy().view("uint32") & 0xFFFFE000 | 0x1000).view("float32").copy())
    # ties inside the f16 subnormal range: (k + 1/2) * 2^-24
    ts = (torch.arange(0, 1024, dtype=torch.float64) + 0.5) * 2.0 ** -24
    x = torch.cat([x, rnd, scales, tb, th, ts.float(), -ts.float()])
    bf = x.to(torch.bfloat16)
    hf = x.half()
    with open(os.path.join(out, "convert.bin"), "wb") as fh:
        fh.write(struct.pack("<I", x.numel()))
        fh.write(x.numpy().tobytes())
        fh.write(raw_bytes(bf))
        fh.write(raw_bytes(hf))
        fh.write(bf.float().numpy().tobytes())
        fh.write(hf.float().numpy().tobytes())


def misc(out):
    g = torch.Generator().manual_seed(11)
    tensors = [
        ("zeta", "F32", torch.randn(2, 3, generator=g)),
        ("b.bf16", "BF16", torch.randn(5, generator=g).to(torch.bfloat16)),
        ("c/f16", "F16", (torch.randn(2, 2, 2, generator=g) * 1e-5).half()),
        ("scalar", "F32", torch.tensor(3.5)),
        ("empty", "F32", torch.zeros(0, 3)),
        ("ids", "I64", torch.tensor([1, -2, 3])),
        ("d64", "F64", torch.randn(2, generator=g, dtype=torch.float64)),
        ("bytes", "U8", torch.tensor([1, 2, 3], dtype=torch.uint8)),  # next one starts at an odd offset
        ("after_odd", "BF16", torch.randn(3, generator=g).to(torch.bfloat16)),
    ]
    write_st(os.path.join(out, "misc.safetensors"), tensors, pad=False,
             metadata={"format": "pt", "note": "written by io_fixtures.py"})
    listing, vals, off = [], [], 0
    for name, dt, t in tensors:
        e = {"name": name, "dtype": dt, "shape": list(t.shape)}
        if dt not in ("I64", "U8"):
            e["offset"] = off
            v = t.float().reshape(-1)
            vals.append(v)
            off += v.numel()
        listing.append(e)
    json.dump({"tensors": listing}, open(os.path.join(out, "misc.json"), "w"), indent=1)
    torch.cat(vals).numpy().tofile(os.path.join(out, "misc.bin"))


def model_tensors(cfg):
    """(name, shape) the config implies, in HF module order."""
    mt = cfg["model_type"]
    C, V, F = cfg["hidden_size"], cfg["vocab_size"], cfg["intermediate_size"]
    NH, L = cfg["num_attention_heads"], cfg["num_hidden_layers"]
    NKV = cfg["num_key_value_heads"]
    HD = cfg.get("head_dim", C // NH)
    out = [("model.embed_tokens.weight", (V, C))]
    for l in range(L):
        p = "model.layers.%d." % l
        out.append((p + "input_layernorm.weight", (C,)))
        for proj, rows in (("q", NH * HD), ("k", NKV * HD), ("v", NKV * HD)):
            out.append((p + "self_attn.%s_proj.weight" % proj, (rows, C)))
            if mt == "qwen2":
                out.append((p + "self_attn.%s_proj.bias" % proj, (rows,)))
        if mt == "qwen3":
            out.append((p + "self_attn.q_norm.weight", (HD,)))
            out.append((p + "self_attn.k_norm.weight", (HD,)))
        out.append((p + "self_attn.o_proj.weight", (C, NH * HD)))
        out.append((p + "post_attention_layernorm.weight", (C,)))
        out.append((p + "mlp.gate_proj.weight", (F, C)))
        out.append((p + "mlp.up_proj.weight", (F, C)))
        out.append((p + "mlp.down_proj.weight", (C, F)))
    out.append(("model.norm.weight", (C,)))
    if not cfg.get("tie_word_embeddings", False):
        out.append(("lm_head.weight", (V, C)))
    return out


def model_dir(out, name, cfg, dtype_of, n_shards, extras, seed):
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        os.remove(os.path.join(d, f))
    g = torch.Generator().manual_seed(seed)
    need = model_tensors(cfg)
    stored, listing, vals, off = [], [], [], 0
    for tname, shape in need:
        dt = dtype_of(tname)
        t = (torch.randn(*shape, generator=g) * 0.5).to(DT[dt])
        stored.append((tname, dt, t))
        v = t.float().reshape(-1)
        listing.append({"name": tname, "shape": list(shape), "offset": off})
        vals.append(v)
        off += v.numel()
    for tname, shape in extras:
        stored.append((tname, "F32", torch.randn(*shape, generator=g)))
    # HF checkpoints list tensors by name, not by module order.
    stored.sort(key=lambda e: e[0])
    json.dump(cfg, open(os.path.join(d, "config.json"), "w"), indent=2)
    if n_shards == 1:
        write_st(os.path.join(d, "model.safetensors"), stored, metadata={"format": "pt"})
    else:
        per = (len(stored) + n_shards - 1) // n_shards
        wm, total = {}, 0
        for k in range(n_shards):
            part = stored[k * per:(k + 1) * per]
            fn = "model-%05d-of-%05d.safetensors" % (k + 1, n_shards)
            write_st(os.path.join(d, fn), part, metadata={"format": "pt"})
            for tname, _, t in part:
                wm[tname] = fn
                total += len(raw_bytes(t))
        json.dump({"metadata": {"total_size": total}, "weight_map": wm},
                  open(os.path.join(d, "model.safetensors.index.json"), "w"), indent=2)
    json.dump({"tensors": listing}, open(os.path.join(d, "expected.json"), "w"), indent=1)
    torch.cat(vals).numpy().tofile(os.path.join(d, "expected.bin"))


def models(out):
    qwen2 = {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "vocab_size": 40,
             "hidden_size": 8, "intermediate_size": 12, "num_hidden_layers": 2,
             "num_attention_heads": 2, "num_key_value_heads": 1, "max_position_embeddings": 128,
             "rope_theta": 1000000.0, "rms_norm_eps": 1e-06, "tie_word_embeddings": True,
             "rope_scaling": None, "use_sliding_window": False, "sliding_window": 4096,
             "bos_token_id": 30, "eos_token_id": 31, "torch_dtype": "bfloat16",
             "transformers_version": "4.43.1", "hidden_act": "silu"}
    extras = [("model.layers.0.self_attn.rotary_emb.inv_freq", (2,)),
              ("lm_head.weight", (40, 8)),                    # tied: ignored
              ("model.layers.2.mlp.up_proj.weight", (12, 8))]  # layer >= L: ignored
    for dt in ("F32", "BF16", "F16"):
        model_dir(out, "model_qwen2_" + dt.lower(), qwen2, lambda n, dt=dt: dt, 1, extras, 21)
    llama = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 36,
             "hidden_size": 12, "intermediate_size": 20, "num_hidden_layers": 2,
             "num_attention_heads": 3, "num_key_value_heads": 1, "head_dim": 4,
             "max_position_embeddings": 256, "rope_theta": 500000.0, "rms_norm_eps": 1e-05,
             "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                              "original_max_position_embeddings": 64, "rope_type": "llama3"},
             "attention_bias": False, "mlp_bias": False, "tie_word_embeddings": False,
             "bos_token_id": 1, "eos_token_id": [2, 3], "pretraining_tp": 1,
             "torch_dtype": "bfloat16"}
    model_dir(out, "model_llama_bf16_sharded", llama, lambda n: "BF16", 3, [], 22)
    qwen3 = {"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "vocab_size": 30,
             "hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 1,
             "num_attention_heads": 2, "num_key_value_heads": 2, "head_dim": 6,
             "max_position_embeddings": 64, "rope_theta": 1000000, "rms_norm_eps": 1e-06,
             "tie_word_embeddings": False, "attention_bias": False, "eos_token_id": 5,
             "torch_dtype": "float16"}
    # Mixed dtypes in one checkpoint: norms kept in F32, matrices in F16.
    model_dir(out, "model_qwen3_f16_sharded", qwen3,
              lambda n: "F32" if "norm" in n else "F16", 2, [], 23)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    conversions(out)
    misc(out)
    models(out)


if __name__ == "__main__":
    main()
