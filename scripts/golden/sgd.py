"""Golden values for spat-train's SGD: torch.optim.SGD on fixed parameters and gradients.

Writes crates/spat-train/tests/fixtures/sgd.safetensors with
  init.w (3, 2), init.b (3,)                 starting parameters
  grad{s}.w, grad{s}.b for s = 0, 1, 2       gradients fed at step s
  {case}.step{s}.w, {case}.step{s}.b         parameters after step s, for case in
      momentum  (lr 0.1, momentum 0.9, weight_decay 0.01)
      nesterov  (lr 0.05, momentum 0.9, weight_decay 0.01, nesterov=True)
Run: /tmp/tv/bin/python scripts/golden/sgd.py
"""
import pathlib

import torch
from safetensors.torch import save_file

g = torch.Generator().manual_seed(0)
init = {"w": torch.randn(3, 2, generator=g), "b": torch.randn(3, generator=g)}
grads = [{k: torch.randn(v.shape, generator=g) for k, v in init.items()} for _ in range(3)]
cases = {
    "momentum": dict(lr=0.1, momentum=0.9, weight_decay=0.01),
    "nesterov": dict(lr=0.05, momentum=0.9, weight_decay=0.01, nesterov=True),
}
out = {f"init.{k}": v.clone() for k, v in init.items()}
for s, gs in enumerate(grads):
    out.update({f"grad{s}.{k}": v.clone() for k, v in gs.items()})
for name, kw in cases.items():
    params = {k: torch.nn.Parameter(v.clone()) for k, v in init.items()}
    opt = torch.optim.SGD(list(params.values()), **kw)
    for s, gs in enumerate(grads):
        for k, p in params.items():
            p.grad = gs[k].clone()
        opt.step()
        out.update({f"{name}.step{s}.{k}": p.detach().clone() for k, p in params.items()})
path = pathlib.Path(__file__).resolve().parents[2] / "crates/spat-train/tests/fixtures/sgd.safetensors"
save_file({k: v.contiguous() for k, v in out.items()}, str(path))
print(f"wrote {path} ({len(out)} tensors)")
