"""hf_model.py - a plain-PyTorch re-statement of Hugging Face's Llama / Qwen2 /
Qwen3 causal-LM forward, used as the oracle for iapo's C transformer.

It follows the semantics of transformers' modeling_llama.py, modeling_qwen2.py
and modeling_qwen3.py (written from their documented behaviour, not copied):
  * RMSNorm: x * rsqrt(mean(x^2) + eps) in the compute dtype, times weight.
  * RoPE, rotate_half convention: pairs (i, i + head_dim/2); inv_freq computed
    in float32 exactly as HF does (default, or Llama 3's _compute_llama3_parameters
    band-wise scaling); cos/sin from float32 angles, then cast.
  * Grouped-query attention: repeat_kv, scores scaled by head_dim^-0.5,
    causal mask combined with the padding (attention) mask, softmax.
  * Qwen2: q/k/v biases. Llama: attention_bias from the config. Qwen3: RMSNorm
    over each head of q and k (q_norm / k_norm) before RoPE, explicit head_dim.
  * SwiGLU MLP: down(silu(gate(x)) * up(x)). Tied embeddings: lm_head = embed.
Also: a hand-written safetensors reader/writer (struct + json), since Debian's
torch comes without the safetensors package.

Runs on torch 1.13, CPU, float32 or float64 (the fixtures use float64 maths on
float32-representable weights, so they are a tighter reference than HF fp32).
"""
import json
import math
import os
import struct

import torch

_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
}


def read_safetensors(path):
    """Returns {name: tensor} from one .safetensors file."""
    with open(path, "rb") as fh:
        data = fh.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n].decode("utf-8"))
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = _DTYPES[info["dtype"]]
        a, b = info["data_offsets"]
        shape = info["shape"]
        if b > a:
            t = torch.frombuffer(bytearray(data[base + a:base + b]), dtype=dtype)
            out[name] = t.reshape(shape).clone()
        else:
            out[name] = torch.zeros(shape, dtype=dtype)
    return out


def write_safetensors(path, tensors):
    """Writes {name: tensor} as F32 safetensors (header padded to 8 bytes)."""
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().to(torch.float32).contiguous().reshape(-1)
        blob = struct.pack("<%df" % t.numel(), *t.tolist())
        header[name] = {"dtype": "F32", "shape": list(tensors[name].shape),
                        "data_offsets": [off, off + len(blob)]}
        blobs.append(blob)
        off += len(blob)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(h)))
        fh.write(h)
        for blob in blobs:
            fh.write(blob)


def load_dir(d):
    """Loads an HF model directory: (config dict, {name: tensor})."""
    with open(os.path.join(d, "config.json")) as fh:
        cfg = json.load(fh)
    index = os.path.join(d, "model.safetensors.index.json")
    tensors = {}
    if os.path.exists(index):
        with open(index) as fh:
            files = sorted(set(json.load(fh)["weight_map"].values()))
        for f in files:
            tensors.update(read_safetensors(os.path.join(d, f)))
    else:
        tensors = read_safetensors(os.path.join(d, "model.safetensors"))
    return cfg, tensors


def rope_inv_freq(cfg, head_dim):
    """float32 inverse frequencies, as HF's rope init functions compute them."""
    base = float(cfg.get("rope_theta", 10000.0))
    inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))
    rs = cfg.get("rope_scaling")
    if rs:
        kind = rs.get("rope_type", rs.get("type"))
        if kind == "default":
            return inv_freq
        if kind != "llama3":
            raise ValueError("unsupported rope_scaling %r" % kind)
        factor = rs["factor"]
        low = rs["low_freq_factor"]
        high = rs["high_freq_factor"]
        old = rs["original_max_position_embeddings"]
        low_wl = old / low
        high_wl = old / high
        wavelen = 2 * math.pi / inv_freq
        scaled = torch.where(wavelen > low_wl, inv_freq / factor, inv_freq)
        smooth = (old / wavelen - low) / (high - low)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = ~(wavelen < high_wl) * ~(wavelen > low_wl)
        inv_freq = torch.where(medium, smoothed, scaled)
    return inv_freq


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class HFModel:
    """The forward of LlamaForCausalLM / Qwen2ForCausalLM / Qwen3ForCausalLM."""

    def __init__(self, cfg, tensors, dtype=torch.float64):
        self.cfg = cfg
        self.dtype = dtype
        mt = cfg["model_type"]
        if mt not in ("llama", "qwen2", "qwen3"):
            raise ValueError("unsupported model_type %r" % mt)
        self.C = cfg["hidden_size"]
        self.L = cfg["num_hidden_layers"]
        self.NH = cfg["num_attention_heads"]
        self.NKV = cfg.get("num_key_value_heads") or self.NH
        self.HD = cfg.get("head_dim") or self.C // self.NH
        self.eps = cfg.get("rms_norm_eps", 1e-6)
        self.tied = cfg.get("tie_word_embeddings", mt != "llama")
        self.qk_norm = mt == "qwen3"
        self.p = {k: v.to(dtype).clone().requires_grad_(True) for k, v in tensors.items()
                  if not (self.tied and k == "lm_head.weight")}
        self.inv_freq = rope_inv_freq(cfg, self.HD)

    def params(self):
        return self.p

    def rmsnorm(self, x, w):
        var = x.pow(2).mean(-1, keepdim=True)
        return w * (x * torch.rsqrt(var + self.eps))

    def linear(self, x, name, bias=False):
        y = x @ self.p[name + ".weight"].t()
        if bias and (name + ".bias") in self.p:
            y = y + self.p[name + ".bias"]
        return y

    def forward(self, ids, mask):
        """ids (B,T) int64, mask (B,T) 1 = real token; returns logits (B,T,V)."""
        B, T = ids.shape
        NH, NKV, HD = self.NH, self.NKV, self.HD
        x = self.p["model.embed_tokens.weight"][ids]
        pos = torch.arange(T, dtype=torch.float32)
        freqs = pos[:, None] * self.inv_freq[None, :]          # (T, HD/2) float32, as HF
        emb = torch.cat((freqs, freqs), dim=-1)
        cos = emb.cos().to(self.dtype)[None, None]
        sin = emb.sin().to(self.dtype)[None, None]
        causal = torch.tril(torch.ones(T, T, dtype=torch.bool))
        allowed = causal[None, None] & mask.bool()[:, None, None, :]  # (B,1,T,T)
        bias = self.cfg["model_type"] == "qwen2" or self.cfg.get("attention_bias", False)
        for l in range(self.L):
            pre = "model.layers.%d." % l
            h = self.rmsnorm(x, self.p[pre + "input_layernorm.weight"])
            q = self.linear(h, pre + "self_attn.q_proj", bias).view(B, T, NH, HD)
            k = self.linear(h, pre + "self_attn.k_proj", bias).view(B, T, NKV, HD)
            v = self.linear(h, pre + "self_attn.v_proj", bias).view(B, T, NKV, HD)
            if self.qk_norm:
                q = self.rmsnorm(q, self.p[pre + "self_attn.q_norm.weight"])
                k = self.rmsnorm(k, self.p[pre + "self_attn.k_norm.weight"])
            q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            rep = NH // NKV
            k = k[:, :, None].expand(B, NKV, rep, T, HD).reshape(B, NH, T, HD)
            v = v[:, :, None].expand(B, NKV, rep, T, HD).reshape(B, NH, T, HD)
            s = (q @ k.transpose(2, 3)) * (HD ** -0.5)
            s = s.masked_fill(~allowed, float("-inf"))
            a = torch.softmax(s, dim=-1) @ v                      # (B,NH,T,HD)
            a = a.transpose(1, 2).reshape(B, T, NH * HD)
            x = x + self.linear(a, pre + "self_attn.o_proj")
            h = self.rmsnorm(x, self.p[pre + "post_attention_layernorm.weight"])
            g = self.linear(h, pre + "mlp.gate_proj")
            u = self.linear(h, pre + "mlp.up_proj")
            x = x + (torch.nn.functional.silu(g) * u) @ self.p[pre + "mlp.down_proj.weight"].t()
        x = self.rmsnorm(x, self.p["model.norm.weight"])
        w = self.p["model.embed_tokens.weight"] if self.tied else self.p["lm_head.weight"]
        return x @ w.t()


def token_logp_entropy(logits, targets, mask, temperature=1.0):
    """Per-token log p(target) (0 where target < 0) and entropy (0 on padding)
    of softmax(logits / temperature)."""
    lp = torch.log_softmax(logits / temperature, dim=-1)
    tgt = targets.clamp(min=0)
    logp = lp.gather(-1, tgt[..., None])[..., 0] * (targets >= 0)
    ent = -(lp.exp() * lp).sum(-1) * mask
    return logp, ent
