"""grpo_model.py OUTDIR - the policy-gradient loss of a tiny model, end to end,
in PyTorch (tests/test_grpo_oracle.c checks iapo's forward -> iapo_policy_loss ->
backward against it).

A tiny random Qwen2 (make_torch_fixtures.MODELS["qwen2"]: tied embeddings, q/k/v
bias, GQA) is saved as an HF directory and reloaded through hf_model.py. The
batch is two prompts x G = 3 completions, right-padded rows of prompt +
completion (ragged prompt and completion lengths; one completion has tokens after
its EOS that carry a target but are masked out, as TRL's completion mask does).
Rewards -> TRL group advantages, broadcast over the completion and perturbed per
token (as token-level methods do); old log-probs = the model's own plus noise so
ratios sit on both sides of both clip bounds; reference log-probs = the model's
plus noise; temperature 0.9. For each loss type (grpo, bnpo, dr_grpo with the
batch as the whole step) it writes the loss and d loss / d every parameter
(autograd, float64) under OUTDIR/model/grads_<type>/<hf name>.bin, and the
inputs in OUTDIR/model/manifest.json.
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hf_model  # noqa: E402
import make_torch_fixtures as mtf  # noqa: E402
from grpo_loss import f32, group_advantages, policy_loss, random_ratios_away_from_bounds  # noqa: E402

G = 3
PROMPT_LENS = [3, 5]          # per group
COMPLETION_LENS = [4, 2, 6, 5, 1, 3]
EOS_CUT = {2: 4}              # row 2: tokens after its 4th completion token are masked out
REWARDS = [1.5, -0.5, 0.5, 1.0, 1.0, -1.0]
TEMPERATURE = 0.9
EPS_LOW, EPS_HIGH, BETA = 0.2, 0.28, 0.04
MAX_COMPLETION_LEN = 8


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: grpo_model.py OUTDIR")
    out = os.path.join(sys.argv[1], "model")
    gen = torch.Generator().manual_seed(7)
    cfg, model = mtf.write_random_model(os.path.join(out, "qwen2"), mtf.MODELS["qwen2"], gen)

    B = len(COMPLETION_LENS)
    lens = [PROMPT_LENS[b // G] + COMPLETION_LENS[b] for b in range(B)]
    T = max(lens)
    V = cfg["vocab_size"]
    prompts = [torch.randint(3, V, (p,), generator=gen) for p in PROMPT_LENS]
    ids = torch.zeros(B, T, dtype=torch.int64)
    attn = torch.zeros(B, T, dtype=torch.float64)
    targets = torch.full((B, T), -1, dtype=torch.int64)
    cmask = torch.zeros(B, T, dtype=torch.float64)
    for b in range(B):
        P, L = PROMPT_LENS[b // G], COMPLETION_LENS[b]
        ids[b, :P] = prompts[b // G]
        ids[b, P:P + L] = torch.randint(3, V, (L,), generator=gen)
        attn[b, :P + L] = 1
        for t in range(L):  # completion token t is predicted at position P + t - 1
            targets[b, P + t - 1] = ids[b, P + t]
            cmask[b, P + t - 1] = 1.0 if t < EOS_CUT.get(b, L) else 0.0

    seq_adv = group_advantages(f32(torch.tensor(REWARDS, dtype=torch.float64)), G, True)
    adv = f32((seq_adv[:, None] + 0.2 * torch.randn(B, T, generator=gen, dtype=torch.float64)) * cmask)

    logits = model.forward(ids, attn)
    logp, _ = hf_model.token_logp_entropy(logits, targets, attn, TEMPERATURE)
    lp0 = logp.detach()
    old = random_ratios_away_from_bounds(lp0, gen, EPS_LOW, EPS_HIGH, spread=0.5, margin=2e-2) * cmask
    ref = f32(lp0 + 0.3 * torch.randn(B, T, generator=gen, dtype=torch.float64)) * cmask

    names = sorted(model.params())
    params = [model.params()[n] for n in names]
    n_tokens = int(cmask.sum().item())
    manifest = {
        "torch": torch.__version__, "dir": "qwen2", "B": B, "T": T, "V": V, "G": G, "lens": lens,
        "tokens": ids.reshape(-1).tolist(), "targets": targets.reshape(-1).tolist(),
        "mask": cmask.reshape(-1).tolist(), "adv": adv.reshape(-1).tolist(),
        "old": old.reshape(-1).tolist(), "ref": ref.reshape(-1).tolist(),
        "rewards": REWARDS, "seq_adv": seq_adv.tolist(), "temperature": TEMPERATURE,
        "eps_low": EPS_LOW, "eps_high": EPS_HIGH, "beta": BETA,
        "n_seqs": B, "n_tokens": n_tokens, "max_completion_len": MAX_COMPLETION_LEN,
        "logp": lp0.reshape(-1).tolist(), "params": names, "losses": {},
    }
    rho = torch.exp(lp0 - old)
    manifest["clipped_low"] = (((rho < 1 - EPS_LOW) & (adv < 0)).to(torch.float64) * cmask).sum().item()
    manifest["clipped_high"] = (((rho > 1 + EPS_HIGH) & (adv > 0)).to(torch.float64) * cmask).sum().item()
    for lt in ("grpo", "bnpo", "dr_grpo"):
        loss = policy_loss(logp, old, ref, adv, cmask, lt, EPS_LOW, EPS_HIGH, BETA, B, n_tokens, MAX_COMPLETION_LEN)
        grads = torch.autograd.grad(loss, params, retain_graph=True)
        gdir = os.path.join(out, "grads_" + lt)
        os.makedirs(gdir, exist_ok=True)
        for n, g in zip(names, grads):
            mtf.write_bin(os.path.join(gdir, n + ".bin"), g)
        manifest["losses"][lt] = loss.item()
    mtf.write_manifest(out, manifest)


if __name__ == "__main__":
    main()
