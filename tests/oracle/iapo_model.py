"""iapo_model.py OUTDIR - IAPO's token advantages and loss on a tiny model, end to
end, in PyTorch (tests/test_iapo_oracle.c checks iapo's estimator -> token
advantages -> iapo_policy_loss -> backward against it).

A tiny random Qwen2 (make_torch_fixtures.MODELS["qwen2"]) is saved as an HF
directory and reloaded through hf_model.py (float64 maths). The batch: two
prompts x G = 3 completions, ragged prompt and completion lengths, a 3-token
postfix, temperature 0.9. Written from the formulas of DESIGN §5 and
iapo-reference §4, not from iapo's C code:

  E_t  naive early exit: a full forward of prompt + o_<t + postfix for every
       t = 0..L, entropy of the last row's softmax(logits / temperature);
       E2_t the same plus the entropy after the model's greedy first answer
       token (--answer-tokens 2);
  C_t  the entropy of the distribution o_t was sampled from (a full forward of
       prompt + completion, rows P-1 .. P+L-1; C_L after the last token);
  advantages, two settings:
    default:   S_t = E_t - E_{t+1}; z-score over the completion then / L2 norm
               (equal values -> 0); A_it = A_i + Ŝ_t - sign(r_i) Ĉ_t;
    reference: S_t = (E_t + E_{t-1})/2 - E_{t+1} (E_{-1} = E_L = 0), horizon 3
               with the code's reversed kernel [λ², λ, 1] (λ = 0.5) replacing the
               normalised S, x - mean/(std + 1e-8) over the padded width W =
               the longest completion (zeros beyond each completion, unbiased
               std), / (‖·‖ + 1e-8); w_s = 1, w_c = 0.5;
  loss bnpo on-policy (ratio 1, no KL) with the default advantages and with
       the reference ones; autograd gradient of every parameter for the first.

Writes OUTDIR/model/manifest.json, OUTDIR/model/qwen2/ (the model) and
OUTDIR/model/grads/<hf name>.bin.
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hf_model  # noqa: E402
import make_torch_fixtures as mtf  # noqa: E402
from grpo_loss import f32, group_advantages, policy_loss  # noqa: E402

G = 3
PROMPT_LENS = [4, 6]                 # per group
COMPLETION_LENS = [5, 1, 7, 3, 6, 2]
REWARDS = [1.5, -0.5, 0.5, 1.0, 1.0, -1.0]
POSTFIX = [7, 11, 13]
TEMPERATURE = 0.9
REF_HORIZON, REF_DECAY, REF_W_CONF = 3, 0.5, 0.5


def entropy_last(model, ids):
    """Entropy (at TEMPERATURE) and greedy token of the next-token distribution after ids."""
    logits = model.forward(torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.float64))[0, -1]
    lp = torch.log_softmax(logits / TEMPERATURE, dim=-1)
    return -(lp.exp() * lp).sum().item(), int(torch.argmax(logits).item())


def zscore_unit(x):
    """(x - mean)/std then / L2 norm; 0 when fewer than 2 values or (near) equal values."""
    n = x.numel()
    if n < 2:
        return torch.zeros_like(x)
    std = x.std()
    if std <= 1e-6 * max(1.0, x.abs().max().item()):
        return torch.zeros_like(x)
    z = (x - x.mean()) / std
    return z / z.norm()


def reference_norm(x, W, bugged=True):
    """The authors' x - mean/(std + 1e-8) over W columns (zeros past x), then / (norm + 1e-8)."""
    row = torch.zeros(W, dtype=torch.float64)
    row[:x.numel()] = x
    if bugged:
        row = row - row.mean() / (row.std() + 1e-8)
    row = row / (row.norm() + 1e-8)
    return row[:x.numel()]


def advantages(E, C, A, r, L, W, reference):
    E = torch.tensor(E, dtype=torch.float64)
    C = torch.tensor(C[:L], dtype=torch.float64)
    sign = (r > 0) - (r < 0)
    if not reference:
        S = E[:L] - E[1:L + 1]
        Sh, Ch = zscore_unit(S), zscore_unit(C)
        return A + Sh - sign * Ch
    Ez = torch.cat([torch.zeros(1, dtype=torch.float64), E[:L], torch.zeros(1, dtype=torch.float64)])
    S = 0.5 * (Ez[1:L + 1] + Ez[0:L]) - Ez[2:L + 2]          # E_{-1} = E_L = 0
    Sp = torch.zeros(L, dtype=torch.float64)
    for t in range(L):
        for k in range(REF_HORIZON):
            if t + k < L:
                Sp[t] += REF_DECAY ** (REF_HORIZON - 1 - k) * S[t + k]
    Sh = reference_norm(Sp, W, bugged=False)
    Ch = reference_norm(C, W, bugged=True)
    return A + Sh - sign * REF_W_CONF * Ch


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: iapo_model.py OUTDIR")
    out = os.path.join(sys.argv[1], "model")
    gen = torch.Generator().manual_seed(11)
    cfg, model = mtf.write_random_model(os.path.join(out, "qwen2"), mtf.MODELS["qwen2"], gen)

    B = len(COMPLETION_LENS)
    V = cfg["vocab_size"]
    prompts = [torch.randint(3, V, (p,), generator=gen).tolist() for p in PROMPT_LENS]
    comps = [torch.randint(3, V, (L,), generator=gen).tolist() for L in COMPLETION_LENS]
    W = max(COMPLETION_LENS)

    E, E2, C = [], [], []
    with torch.no_grad():
        for b in range(B):
            p, c = prompts[b // G], comps[b]
            e, e2 = [], []
            for t in range(len(c) + 1):
                h1, a = entropy_last(model, p + c[:t] + POSTFIX)
                h2, _ = entropy_last(model, p + c[:t] + POSTFIX + [a])
                e.append(h1)
                e2.append(h1 + h2)
            E.append(e)
            E2.append(e2)
            ids = p + c
            logits = model.forward(torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.float64))[0]
            lp = torch.log_softmax(logits / TEMPERATURE, dim=-1)
            ent = -(lp.exp() * lp).sum(-1)
            C.append(ent[len(p) - 1:].tolist())

    seq_adv = group_advantages(f32(torch.tensor(REWARDS, dtype=torch.float64)), G, True)
    adv_def = [advantages(E[b], C[b], seq_adv[b].item(), REWARDS[b], COMPLETION_LENS[b], W, False) for b in range(B)]
    adv_ref = [advantages(E[b], C[b], seq_adv[b].item(), REWARDS[b], COMPLETION_LENS[b], W, True) for b in range(B)]

    # the training batch: rows prompt + completion, token t of the completion predicted at P + t - 1
    lens = [PROMPT_LENS[b // G] + COMPLETION_LENS[b] for b in range(B)]
    T = max(lens)
    ids = torch.zeros(B, T, dtype=torch.int64)
    attn = torch.zeros(B, T, dtype=torch.float64)
    targets = torch.full((B, T), -1, dtype=torch.int64)
    cmask = torch.zeros(B, T, dtype=torch.float64)
    A_def = torch.zeros(B, T, dtype=torch.float64)
    A_ref = torch.zeros(B, T, dtype=torch.float64)
    for b in range(B):
        P, L = PROMPT_LENS[b // G], COMPLETION_LENS[b]
        ids[b, :P] = torch.tensor(prompts[b // G])
        ids[b, P:P + L] = torch.tensor(comps[b])
        attn[b, :P + L] = 1
        for t in range(L):
            targets[b, P + t - 1] = comps[b][t]
            cmask[b, P + t - 1] = 1.0
            A_def[b, P + t - 1] = adv_def[b][t]
            A_ref[b, P + t - 1] = adv_ref[b][t]
    n_tokens = int(cmask.sum().item())
    logits = model.forward(ids, attn)
    logp, _ = hf_model.token_logp_entropy(logits, targets, attn, TEMPERATURE)
    loss = policy_loss(logp, None, None, A_def, cmask, "bnpo", 0.2, 0.28, 0.0, B, n_tokens, W)
    loss_ref = policy_loss(logp, None, None, A_ref, cmask, "bnpo", 0.2, 0.28, 0.0, B, n_tokens, W)
    names = sorted(model.params())
    params = [model.params()[n] for n in names]
    grads = torch.autograd.grad(loss, params)
    gdir = os.path.join(out, "grads")
    os.makedirs(gdir, exist_ok=True)
    for n, g in zip(names, grads):
        mtf.write_bin(os.path.join(gdir, n + ".bin"), g)

    manifest = {
        "torch": torch.__version__, "dir": "qwen2", "G": G, "V": V,
        "prompt_lens": PROMPT_LENS, "completion_lens": COMPLETION_LENS, "prompts": prompts, "completions": comps,
        "postfix": POSTFIX, "temperature": TEMPERATURE, "rewards": REWARDS, "seq_adv": seq_adv.tolist(),
        "E": E, "E2": E2, "C": C,
        "adv_default": [a.tolist() for a in adv_def], "adv_reference": [a.tolist() for a in adv_ref],
        "reference": {"horizon": REF_HORIZON, "decay": REF_DECAY, "w_conf": REF_W_CONF, "width": W},
        "n_tokens": n_tokens, "loss_default": loss.item(), "loss_reference": loss_ref.item(), "params": names,
    }
    mtf.write_manifest(out, manifest)


if __name__ == "__main__":
    main()
