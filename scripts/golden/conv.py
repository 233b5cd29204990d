"""Golden fixture for spat's CPU convolution: torch.nn.functional.conv2d and its two gradients for
every kind of layer the presets have (3x3 stride 1 and 2, 1x1 stride 1 and 2, the 3-channel stem,
small and odd spatial sizes), computed by PyTorch in float64 and stored as float32.

Run from the repository root:  python3 scripts/golden/conv.py
Writes crates/spat-kernels/tests/fixtures/conv.safetensors: for case i, `i.input`, `i.kernel`,
`i.upstream`, `i.output`, `i.input_grad`, `i.kernel_grad` and `i.geometry` (stride, padding).
"""
import os

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

OUT = "crates/spat-models/tests/fixtures"

# (batch, in channels, out channels, kernel, stride, padding, height, width)
CASES = [
    (1, 8, 16, 3, 1, 1, 32, 32),   # WRN block1 / ResNet layer1 (several tiles per image)
    (2, 16, 32, 3, 2, 1, 16, 16),  # first conv of a downsampling block
    (2, 16, 32, 1, 2, 0, 16, 16),  # WRN convShortcut / ResNet shortcut
    (3, 32, 16, 1, 1, 0, 8, 8),    # ResNet-50 bottleneck 1x1 (images grouped)
    (4, 32, 32, 3, 1, 1, 4, 4),    # last stage (images grouped, channel groups in dW)
    (1, 3, 8, 3, 1, 1, 32, 32),    # stem
    (3, 8, 12, 3, 2, 1, 7, 9),     # odd, non-square input at stride 2
]


def main():
    gen = torch.Generator().manual_seed(4321)
    out = {}
    for i, (n, cin, cout, k, stride, pad, h, w) in enumerate(CASES):
        x = torch.rand(n, cin, h, w, generator=gen, dtype=torch.float64) * 2 - 1
        kern = (torch.rand(cout, cin, k, k, generator=gen, dtype=torch.float64) * 2 - 1) / (cin * k * k) ** 0.5
        x32, k32 = x.float(), kern.float()
        # The reference runs on exactly the float32 values spat is given.
        xr = x32.double().requires_grad_(True)
        kr = k32.double().requires_grad_(True)
        y = F.conv2d(xr, kr, stride=stride, padding=pad)
        u = (torch.rand(y.shape, generator=gen, dtype=torch.float64) * 2 - 1).float()
        (y * u.double()).sum().backward()
        out[f"{i}.input"] = x32
        out[f"{i}.kernel"] = k32
        out[f"{i}.upstream"] = u
        out[f"{i}.output"] = y.detach().float()
        out[f"{i}.input_grad"] = xr.grad.float()
        out[f"{i}.kernel_grad"] = kr.grad.float()
        out[f"{i}.geometry"] = torch.tensor([stride, pad], dtype=torch.int64)
    os.makedirs(OUT, exist_ok=True)
    save_file({k: v.contiguous() for k, v in out.items()}, os.path.join(OUT, "conv.safetensors"))
    print(f"wrote {len(CASES)} cases to {OUT}/conv.safetensors")


if __name__ == "__main__":
    main()
