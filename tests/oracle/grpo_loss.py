"""grpo_loss.py OUTDIR - PyTorch answers for src/rl/grpo.c (tests/test_grpo_oracle.c).

policy_loss() restates TRL 0.21's GRPOTrainer._compute_loss (token ratio, clip,
torch.min of the two branches, k3 KL against the reference) with iapo's
step-level normalisers (grpo.h: bnpo divides by the whole step's token count,
not by the micro-batch's as TRL does). The gradient comes from autograd, never
from a formula, so it checks the C code's hand-derived dlogp.

Writes OUTDIR/loss.json:
  cases: random (B,T) logp / old / ref / adv / mask for each loss type, with and
         without old log-probs (ratio 1) and KL, some with step normalisers larger
         than this batch's own counts (a micro-batch of a bigger step); the loss
         and d loss / d logp (float64 maths on float32-representable inputs);
  advantages: TRL's group advantages (unbiased std, + 1e-4) and the unscaled
         variant for random rewards with ties and an all-equal group.
"""
import json
import os
import sys

import torch


def f32(t):
    """Rounds to float32 and back to float64, so the C side sees the same numbers."""
    return t.to(torch.float32).to(torch.float64)


def policy_loss(logp, old, ref, adv, mask, loss_type, eps_low, eps_high, beta, n_seqs, n_tokens, max_len):
    """The step loss contribution of one micro-batch, as in grpo.h. old None = logp.detach()."""
    if old is None:
        old = logp.detach()
    coef_1 = torch.exp(logp - old)
    coef_2 = torch.clamp(coef_1, 1 - eps_low, 1 + eps_high)
    per_token = -torch.min(coef_1 * adv, coef_2 * adv)
    if beta != 0.0:
        per_token = per_token + beta * (torch.exp(ref - logp) - (ref - logp) - 1)
    if loss_type == "grpo":
        return ((per_token * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).sum() / n_seqs
    if loss_type == "bnpo":
        return (per_token * mask).sum() / max(1, n_tokens)
    if loss_type == "dr_grpo":
        return (per_token * mask).sum() / (n_seqs * max_len)
    raise ValueError(loss_type)


def group_advantages(rewards, G, scale):
    """TRL 0.21 _generate_and_score_completions: mean and unbiased std per group of G."""
    r = rewards.view(-1, G)
    mean = r.mean(dim=1).repeat_interleave(G)
    adv = rewards - mean
    if scale:
        adv = adv / (r.std(dim=1).repeat_interleave(G) + 1e-4)
    return adv


def random_ratios_away_from_bounds(logp, gen, eps_low, eps_high, spread=0.6, margin=1e-2):
    """old = logp + delta with exp(-delta) on both sides of both clip bounds, none within margin."""
    old = f32(logp + spread * (2 * torch.rand(logp.shape, generator=gen, dtype=torch.float64) - 1))
    rho = torch.exp(logp - old)
    near = ((rho - (1 - eps_low)).abs() < margin) | ((rho - (1 + eps_high)).abs() < margin)
    return torch.where(near, logp, old)


def make_case(gen, name, loss_type, B, T, with_old, beta, eps_low, eps_high, extra_seqs, extra_tokens):
    logp = f32(-0.05 - 4 * torch.rand(B, T, generator=gen, dtype=torch.float64))
    lens = torch.randint(1, T + 1, (B,), generator=gen)
    lens[1] = 0  # a row with no counted token
    lens[-1] = T
    mask = (torch.arange(T)[None, :] < lens[:, None]).to(torch.float64)
    seq_adv = 2 * torch.randn(B, 1, generator=gen, dtype=torch.float64)
    adv = f32(seq_adv + 0.3 * torch.randn(B, T, generator=gen, dtype=torch.float64))
    old = random_ratios_away_from_bounds(logp, gen, eps_low, eps_high) if with_old else None
    ref = f32(logp + 0.3 * torch.randn(B, T, generator=gen, dtype=torch.float64)) if beta != 0 else None
    n_seqs = B + extra_seqs
    n_tokens = int(mask.sum().item()) + extra_tokens
    max_len = T + 3
    x = logp.clone().requires_grad_(True)
    loss = policy_loss(x, old, ref, adv, mask, loss_type, eps_low, eps_high, beta, n_seqs, n_tokens, max_len)
    (g,) = torch.autograd.grad(loss, x)
    rho = torch.exp(logp - old) if old is not None else torch.ones_like(logp)
    clip_low = (((rho < 1 - eps_low) & (adv < 0)).to(torch.float64) * mask).sum().item()
    clip_high = (((rho > 1 + eps_high) & (adv > 0)).to(torch.float64) * mask).sum().item()
    flat = lambda t: None if t is None else t.reshape(-1).tolist()  # noqa: E731
    return {
        "name": name, "type": loss_type, "B": B, "T": T, "eps_low": eps_low, "eps_high": eps_high, "beta": beta,
        "n_seqs": n_seqs, "n_tokens": n_tokens, "max_completion_len": max_len,
        "logp": flat(logp), "old": flat(old), "ref": flat(ref), "adv": flat(adv), "mask": flat(mask),
        "loss": loss.item(), "dlogp": flat(g),
        "tokens": mask.sum().item(), "clipped_low": clip_low, "clipped_high": clip_high,
        "ratio_sum": (rho * mask).sum().item(),
        "kl_sum": 0.0 if ref is None else ((torch.exp(ref - logp) - (ref - logp) - 1) * mask).sum().item(),
    }


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: grpo_loss.py OUTDIR")
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    gen = torch.Generator().manual_seed(20250)
    cases = []
    for lt in ("grpo", "bnpo", "dr_grpo"):
        cases.append(make_case(gen, lt + " clip+kl", lt, 6, 11, True, 0.04, 0.2, 0.28, 0, 0))
        cases.append(make_case(gen, lt + " on-policy", lt, 5, 7, False, 0.0, 0.2, 0.2, 0, 0))
        cases.append(make_case(gen, lt + " part of a step", lt, 4, 9, True, 0.1, 0.1, 0.3, 5, 23))
    advs = []
    for G, scale in ((4, True), (4, False), (8, True), (3, True)):
        r = f32(torch.randint(-2, 3, (G * 5,), generator=gen).to(torch.float64) * 0.5
                + (torch.rand(G * 5, generator=gen, dtype=torch.float64) < 0.3) * 0.1)
        r[:G] = f32(torch.tensor(0.1, dtype=torch.float64))  # an all-equal group
        advs.append({"G": G, "scale": scale, "rewards": r.tolist(), "adv": group_advantages(r, G, scale).tolist()})
    tmp = os.path.join(out, "loss.json.tmp")
    with open(tmp, "w") as fh:
        json.dump({"torch": torch.__version__, "cases": cases, "advantages": advs}, fh)
    os.replace(tmp, os.path.join(out, "loss.json"))


if __name__ == "__main__":
    main()
