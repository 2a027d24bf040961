"""Oracle for src/rl/adamw.c: torch.optim.AdamW (foreach=False) with
clip_grad_norm_ over 5 steps on random data. Writes little-endian float32:
p0 (n), grads (steps, n), expected p after each step (steps, n), norms (steps),
plus a JSON manifest with the hyper-parameters."""
import json, os, sys
import torch

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
torch.manual_seed(1234)
n, steps = 1031, 5
hp = dict(lr=3e-3, beta1=0.9, beta2=0.99, eps=1e-8, weight_decay=0.1, max_norm=2.0)
p = torch.nn.Parameter(torch.randn(n))
p0 = p.detach().clone()
opt = torch.optim.AdamW([p], lr=hp["lr"], betas=(hp["beta1"], hp["beta2"]), eps=hp["eps"],
                        weight_decay=hp["weight_decay"], foreach=False)
grads, after, norms = [], [], []
for s in range(steps):
    g = torch.randn(n) * (0.5 + s)  # growing so clipping starts acting
    grads.append(g.clone())
    p.grad = g.clone()
    norms.append(float(torch.nn.utils.clip_grad_norm_([p], hp["max_norm"])))
    opt.step()
    after.append(p.detach().clone())
with open(os.path.join(out, "adamw.bin"), "wb") as f:
    f.write(p0.numpy().astype("<f4").tobytes())
    f.write(torch.stack(grads).numpy().astype("<f4").tobytes())
    f.write(torch.stack(after).numpy().astype("<f4").tobytes())
    f.write(torch.tensor(norms).numpy().astype("<f4").tobytes())
with open(os.path.join(out, "adamw.json"), "w") as f:
    json.dump(dict(hp, n=n, steps=steps), f)
