"""Small torch.save files holding weights that must be refused (tests/bad_inputs.rs), each a
valid file torch.load reads:

  sigma_zero.pt            {'mu': (1,3,1,1), 'sigma': one std 0, 'fc.bias'}: division by zero
  mu_nan.pt                the same with a NaN mean
  negative_running_var.pt  tests/fixtures/torch/zip.pt (the tiny preset, TRADES layout) in
                           float16 with one BatchNorm running_var element -1
  broadcast_1gib.pt        'fc.weight' a 1-element storage expanded to 2^28 elements (stride 0):
                           about a kilobyte on disk, a gibibyte if materialised

Run from the repository root:  /tmp/tv/bin/python scripts/golden/hostile_checkpoints.py
"""
import os

import torch

OUT = "tests/fixtures/torch/hostile"


def main():
    os.makedirs(OUT, exist_ok=True)
    mu = torch.tensor([0.49, 0.48, 0.45]).reshape(1, 3, 1, 1)
    sigma = torch.tensor([0.25, 0.24, 0.26]).reshape(1, 3, 1, 1)
    fc_bias = torch.zeros(10)
    torch.save({"mu": mu, "sigma": sigma * torch.tensor([1.0, 0.0, 1.0]).reshape(1, 3, 1, 1),
                "fc.bias": fc_bias}, f"{OUT}/sigma_zero.pt")
    torch.save({"mu": mu * torch.tensor([1.0, float("nan"), 1.0]).reshape(1, 3, 1, 1),
                "sigma": sigma, "fc.bias": fc_bias}, f"{OUT}/mu_nan.pt")
    sd = torch.load("tests/fixtures/torch/zip.pt")
    sd = {k: (v.half() if v.is_floating_point() else v) for k, v in sd.items()}
    name = next(k for k in sd if k.endswith("running_var") and not k.startswith("sub_block1"))
    sd[name] = sd[name].clone()
    sd[name][0] = -1.0
    torch.save(sd, f"{OUT}/negative_running_var.pt")
    huge = torch.zeros(1).expand(1 << 28)
    assert huge.stride() == (0,)
    torch.save({"fc.weight": huge}, f"{OUT}/broadcast_1gib.pt")
    for f in sorted(os.listdir(OUT)):
        torch.load(os.path.join(OUT, f))
        print(f, os.path.getsize(os.path.join(OUT, f)), "bytes")
    print("negative running_var in", name)


if __name__ == "__main__":
    main()
