"""make_torch_fixtures.py OUTDIR - builds tiny random Hugging Face models and
the PyTorch (autograd, float64) answers iapo's C transformer must reproduce.

Models (each saved as an HF directory: config.json, generation_config.json,
model.safetensors in F32 written by hand):
  qwen2  tied embeddings, q/k/v bias, 4 heads / 2 kv heads
  llama  untied lm_head, GQA (6 heads / 2 kv heads), Llama 3 rope scaling with
         all three frequency bands exercised, attention_bias false
  qwen3  q/k norm, explicit head_dim (12) != hidden / heads (8), tied

For one padded batch (B=3, ragged lengths, prompt positions without targets)
it writes, as raw little-endian float32 .bin files listed in manifest.json:
  logits (B,T,V); loss = mean CE over valid targets at temperature 1;
  logp and entropy (B,T) at temperature 1 and at TEMP_B;
  grads_ce/*: d loss / d every parameter tensor (HF names);
  grads_mix/*: d/d params of sum(wa*logp + wb*entropy) at TEMP_B, with the
  weights wa, wb (B,T) saved too, which exercises the entropy backward.
"""
import json
import os
import struct
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hf_model  # noqa: E402

TEMP_B = 0.7
B, T = 3, 7
LENS = [7, 4, 5]
PROMPT = [2, 1, 3]  # targets start at the prompt's last token

MODELS = {
    "qwen2": dict(model_type="qwen2", architectures=["Qwen2ForCausalLM"], vocab_size=61, hidden_size=32,
                  intermediate_size=40, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                  max_position_embeddings=64, rms_norm_eps=1e-6, rope_theta=10000.0,
                  tie_word_embeddings=True, use_sliding_window=False, hidden_act="silu"),
    "llama": dict(model_type="llama", architectures=["LlamaForCausalLM"], vocab_size=53, hidden_size=48,
                  intermediate_size=56, num_hidden_layers=2, num_attention_heads=6, num_key_value_heads=2,
                  max_position_embeddings=128, rms_norm_eps=1e-5, rope_theta=500000.0,
                  tie_word_embeddings=False, attention_bias=False, mlp_bias=False, hidden_act="silu",
                  rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                                    original_max_position_embeddings=256)),
    "qwen3": dict(model_type="qwen3", architectures=["Qwen3ForCausalLM"], vocab_size=59, hidden_size=32,
                  intermediate_size=40, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                  head_dim=12, max_position_embeddings=64, rms_norm_eps=1e-6, rope_theta=1000000.0,
                  tie_word_embeddings=True, attention_bias=False, use_sliding_window=False, hidden_act="silu"),
}


def param_shapes(cfg):
    C, F, V = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    NH = cfg["num_attention_heads"]
    NKV = cfg["num_key_value_heads"]
    HD = cfg.get("head_dim") or C // NH
    mt = cfg["model_type"]
    bias = mt == "qwen2" or cfg.get("attention_bias", False)
    shapes = {"model.embed_tokens.weight": (V, C), "model.norm.weight": (C,)}
    if not cfg["tie_word_embeddings"]:
        shapes["lm_head.weight"] = (V, C)
    for l in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % l
        shapes[p + "input_layernorm.weight"] = (C,)
        shapes[p + "post_attention_layernorm.weight"] = (C,)
        shapes[p + "self_attn.q_proj.weight"] = (NH * HD, C)
        shapes[p + "self_attn.k_proj.weight"] = (NKV * HD, C)
        shapes[p + "self_attn.v_proj.weight"] = (NKV * HD, C)
        shapes[p + "self_attn.o_proj.weight"] = (C, NH * HD)
        if bias:
            shapes[p + "self_attn.q_proj.bias"] = (NH * HD,)
            shapes[p + "self_attn.k_proj.bias"] = (NKV * HD,)
            shapes[p + "self_attn.v_proj.bias"] = (NKV * HD,)
        if mt == "qwen3":
            shapes[p + "self_attn.q_norm.weight"] = (HD,)
            shapes[p + "self_attn.k_norm.weight"] = (HD,)
        shapes[p + "mlp.gate_proj.weight"] = (F, C)
        shapes[p + "mlp.up_proj.weight"] = (F, C)
        shapes[p + "mlp.down_proj.weight"] = (C, F)
    return shapes


def random_tensors(cfg, gen):
    out = {}
    for name, shape in param_shapes(cfg).items():
        if name.endswith("norm.weight") or name.endswith("layernorm.weight"):
            t = 1.0 + 0.1 * torch.randn(shape, generator=gen)
        elif name.endswith(".bias"):
            t = 0.1 * torch.randn(shape, generator=gen)
        else:
            t = 0.2 * torch.randn(shape, generator=gen)
        out[name] = t.to(torch.float32)
    return out


def write_bin(path, t):
    t = t.detach().to(torch.float32).contiguous().reshape(-1)
    with open(path, "wb") as fh:
        fh.write(struct.pack("<%df" % t.numel(), *t.tolist()))


def write_manifest(outdir, manifest):
    """outdir/manifest.json, written last and renamed in: a fixture set with
    a manifest is complete."""
    tmp = os.path.join(outdir, "manifest.json.tmp")
    with open(tmp, "w") as fh:
        json.dump(manifest, fh, indent=1)
    os.replace(tmp, os.path.join(outdir, "manifest.json"))


def write_random_model(mdir, cfg, gen):
    """An HF model directory at mdir: cfg (float32, bos 1, eos 2), a
    generation_config and random weights drawn from gen. Returns the config
    written and the float64 model read back from disk, so the oracle sees
    exactly what the C side loads."""
    cfg = dict(cfg, torch_dtype="float32", bos_token_id=1, eos_token_id=2)
    os.makedirs(mdir, exist_ok=True)
    with open(os.path.join(mdir, "config.json"), "w") as fh:
        json.dump(cfg, fh, indent=2)
    with open(os.path.join(mdir, "generation_config.json"), "w") as fh:
        json.dump({"bos_token_id": 1, "eos_token_id": 2}, fh, indent=2)
    hf_model.write_safetensors(os.path.join(mdir, "model.safetensors"), random_tensors(cfg, gen))
    cfg2, tensors = hf_model.load_dir(mdir)
    return cfg, hf_model.HFModel(cfg2, tensors, dtype=torch.float64)


def build(outdir, name, cfg, seed):
    gen = torch.Generator().manual_seed(seed)
    mdir = os.path.join(outdir, name)
    os.makedirs(os.path.join(mdir, "grads_ce"), exist_ok=True)
    os.makedirs(os.path.join(mdir, "grads_mix"), exist_ok=True)
    cfg, model = write_random_model(mdir, cfg, gen)
    V = cfg["vocab_size"]
    ids = torch.randint(3, V, (B, T), generator=gen)
    mask = torch.zeros(B, T, dtype=torch.float64)
    targets = torch.full((B, T), -1, dtype=torch.int64)
    for b in range(B):
        mask[b, :LENS[b]] = 1
        ids[b, LENS[b]:] = 0  # padding id; the C side must ignore it
        for t in range(PROMPT[b] - 1, LENS[b] - 1):
            targets[b, t] = ids[b, t + 1]
    logits = model.forward(ids, mask)
    logp1, ent1 = hf_model.token_logp_entropy(logits, targets, mask, 1.0)
    logpb, entb = hf_model.token_logp_entropy(logits, targets, mask, TEMP_B)
    valid = (targets >= 0).to(torch.float64)
    loss = -(logp1 * valid).sum() / valid.sum()
    wa = torch.randn(B, T, generator=gen).to(torch.float32).to(torch.float64) * valid
    wb = (0.5 * torch.randn(B, T, generator=gen)).to(torch.float32).to(torch.float64) * mask
    mix = (wa * logpb + wb * entb).sum()

    names = sorted(model.params())
    params = [model.params()[n] for n in names]
    g_ce = torch.autograd.grad(loss, params, retain_graph=True)
    g_mix = torch.autograd.grad(mix, params)

    write_bin(os.path.join(mdir, "logits.bin"), logits * mask[..., None])
    for fname, t in (("logp_t1.bin", logp1), ("entropy_t1.bin", ent1), ("logp_tb.bin", logpb),
                     ("entropy_tb.bin", entb), ("wa.bin", wa), ("wb.bin", wb)):
        write_bin(os.path.join(mdir, fname), t)
    for n, g1, g2 in zip(names, g_ce, g_mix):
        write_bin(os.path.join(mdir, "grads_ce", n + ".bin"), g1)
        write_bin(os.path.join(mdir, "grads_mix", n + ".bin"), g2)
    return {
        "name": name, "dir": name, "B": B, "T": T, "V": V, "lens": LENS,
        "tokens": ids.reshape(-1).tolist(), "targets": targets.reshape(-1).tolist(),
        "loss": loss.item(), "temperature_b": TEMP_B, "mix": mix.item(),
        "params": names,
    }


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make_torch_fixtures.py OUTDIR")
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    torch.manual_seed(0)
    manifest = {"torch": torch.__version__, "models": []}
    for i, (name, cfg) in enumerate(MODELS.items()):
        manifest["models"].append(build(outdir, name, cfg, 1234 + i))
    write_manifest(outdir, manifest)


if __name__ == "__main__":
    main()
