"""io_check_saved.py DIR EXPECTED.bin|- DTYPE - an independent reader (struct +
json + numpy, no safetensors package) of a model directory iapo saved. Checks
that it is what Hugging Face's from_pretrained expects: config.json with the
fields that rebuild the model, generation_config.json, model.safetensors or
shards + model.safetensors.index.json consistent with them, each header well
formed (8-byte length, JSON, __metadata__ format "pt", offsets contiguous),
exactly the tensor names HF's Llama/Qwen2/Qwen3 modules have with their shapes,
all in DTYPE (F32, BF16 or F16) matching config.json's torch_dtype, and values
equal bit for bit to EXPECTED.bin (fp32, tensors in HF module order, already
rounded to DTYPE; with "-" instead, values are only checked to be finite and
the norms' weights to be 1, as a fresh initialisation has them). Prints
"ok ..." and exits 0, or prints the problem and exits 1.
"""
import json
import os
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from io_fixtures import model_tensors  # noqa: E402  (the HF naming rules, from config.json)

TORCH_DTYPE = {"F32": "float32", "BF16": "bfloat16", "F16": "float16"}
SIZE = {"F32": 4, "BF16": 2, "F16": 2}


def fail(msg):
    print("io_check_saved: " + msg)
    sys.exit(1)


def read_header(path):
    with open(path, "rb") as fh:
        data = fh.read()
    if len(data) < 8:
        fail("%s: shorter than 8 bytes" % path)
    (n,) = struct.unpack("<Q", data[:8])
    if 8 + n > len(data):
        fail("%s: header length %d past the end" % (path, n))
    header = json.loads(data[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", None)
    if not meta or meta.get("format") != "pt":
        fail("%s: __metadata__.format is not \"pt\" (transformers refuses such files)" % path)
    pos = 0
    for name, info in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"]):
        a, b = info["data_offsets"]
        if a != pos:
            fail("%s: %s starts at %d, expected %d" % (path, name, a, pos))
        pos = b
    if 8 + n + pos != len(data):
        fail("%s: data area is %d bytes, tensors cover %d" % (path, len(data) - 8 - n, pos))
    return header, data, 8 + n


def decode(raw, dtype):
    if dtype == "F32":
        return np.frombuffer(raw, dtype="<f4")
    if dtype == "F16":
        return np.frombuffer(raw, dtype="<f2").astype(np.float32)
    u = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
    return u.view(np.float32)


def main():
    d, expected_path, dtype = sys.argv[1], sys.argv[2], sys.argv[3]
    cfg = json.load(open(os.path.join(d, "config.json")))
    for key in ("architectures", "model_type", "vocab_size", "hidden_size", "intermediate_size",
                "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim",
                "max_position_embeddings", "rms_norm_eps", "rope_theta", "tie_word_embeddings",
                "torch_dtype", "hidden_act"):
        if key not in cfg:
            fail("config.json lacks %s" % key)
    arch = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM"}
    if cfg["architectures"] != [arch[cfg["model_type"]]]:
        fail("architectures %r for model_type %s" % (cfg["architectures"], cfg["model_type"]))
    if cfg["torch_dtype"] != TORCH_DTYPE[dtype]:
        fail("torch_dtype %s, tensors are %s" % (cfg["torch_dtype"], dtype))
    if not isinstance(cfg["rms_norm_eps"], float) or not isinstance(cfg["rope_theta"], float):
        fail("rms_norm_eps / rope_theta should be JSON floats")
    gen = json.load(open(os.path.join(d, "generation_config.json")))
    for key in ("bos_token_id", "eos_token_id"):
        if key in cfg and gen.get(key) != cfg[key]:
            fail("generation_config.json %s %r differs from config.json %r" % (key, gen.get(key), cfg[key]))

    index = os.path.join(d, "model.safetensors.index.json")
    tensors = {}
    if os.path.exists(index):
        idx = json.load(open(index))
        wm = idx["weight_map"]
        files = sorted(set(wm.values()))
        total = 0
        for f in files:
            header, data, base = read_header(os.path.join(d, f))
            for name, info in header.items():
                if wm.get(name) != f:
                    fail("%s is in %s but weight_map says %r" % (name, f, wm.get(name)))
                if name in tensors:
                    fail("%s in two shards" % name)
                a, b = info["data_offsets"]
                total += b - a
                tensors[name] = (info, data[base + a:base + b])
        if set(wm) != set(tensors):
            fail("weight_map names %d tensors, shards hold %d" % (len(wm), len(tensors)))
        if idx["metadata"]["total_size"] != total:
            fail("index total_size %d, tensors hold %d bytes" % (idx["metadata"]["total_size"], total))
        n = len(files)
        for i, f in enumerate(files):
            if f != "model-%05d-of-%05d.safetensors" % (i + 1, n):
                fail("shard name %s" % f)
    else:
        header, data, base = read_header(os.path.join(d, "model.safetensors"))
        for name, info in header.items():
            a, b = info["data_offsets"]
            tensors[name] = (info, data[base + a:base + b])

    need = model_tensors(cfg)
    names = [n for n, _ in need]
    if set(names) != set(tensors):
        fail("tensor names differ from HF's: missing %s, extra %s"
             % (sorted(set(names) - set(tensors))[:5], sorted(set(tensors) - set(names))[:5]))
    expected = None if expected_path == "-" else np.fromfile(expected_path, dtype="<f4")
    off = 0
    for name, shape in need:
        info, raw = tensors[name]
        if info["dtype"] != dtype:
            fail("%s: dtype %s, expected %s" % (name, info["dtype"], dtype))
        if tuple(info["shape"]) != tuple(shape):
            fail("%s: shape %s, expected %s" % (name, info["shape"], list(shape)))
        v = decode(raw, dtype)
        if expected is None:
            if not np.all(np.isfinite(v)):
                fail("%s: non-finite values" % name)
            if name.endswith("norm.weight") and not np.all(v == 1):
                fail("%s: a fresh norm weight should be all ones" % name)
            continue
        want = expected[off:off + v.size]
        off += v.size
        if want.size != v.size or not np.array_equal(v.view(np.uint32), want.view(np.uint32)):
            fail("%s: values differ from what iapo meant to save" % name)
    if expected is not None and off != expected.size:
        fail("expected.bin has %d floats, tensors %d" % (expected.size, off))
    print("ok %s: %d tensors, %s, %s" % (d, len(need), dtype, "sharded" if os.path.exists(index) else "single"))


if __name__ == "__main__":
    main()
