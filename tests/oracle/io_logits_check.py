"""io_logits_check.py ORIG_DIR SAVED_DIR - the logits of a model directory iapo
re-saved (SAVED_DIR, loaded from ORIG_DIR written by PyTorch) equal those of
the original under tests/oracle/hf_model.py, the plain-torch re-statement of
HF's forward: proof that the config.json we write means the same model to HF
(head_dim, GQA, rope_theta, Llama 3 rope scaling, eps, tying, biases, q/k
norms) and that every tensor arrives under its HF name. Exit 0 when equal.
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hf_model  # noqa: E402


def logits(d, ids, mask):
    cfg, tensors = hf_model.load_dir(d)
    m = hf_model.HFModel(cfg, tensors, dtype=torch.float64)
    with torch.no_grad():
        return m.forward(ids, mask)


def main():
    orig, saved = sys.argv[1], sys.argv[2]
    cfg, _ = hf_model.load_dir(orig)
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(0, cfg["vocab_size"], (2, 9), generator=g)
    mask = torch.ones(2, 9, dtype=torch.int64)
    mask[1, 6:] = 0
    a, b = logits(orig, ids, mask), logits(saved, ids, mask)
    if a.shape != b.shape or not torch.equal(a, b):
        print("io_logits_check: %s and %s give different logits (max diff %g)"
              % (orig, saved, (a - b).abs().max().item() if a.shape == b.shape else float("nan")))
        sys.exit(1)
    print("ok logits equal: %s (%s)" % (saved, cfg["model_type"]))


if __name__ == "__main__":
    main()
