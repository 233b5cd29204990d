"""Golden fixtures for spat-models: reference PyTorch networks (re-typed from the layouts of the
TRADES/MART WideResNet and the kuangliu CIFAR ResNets) run on a fixed batch.

Run from the repository root:  python3 scripts/golden/models.py
Writes crates/spat-models/tests/fixtures/{<net>.safetensors, state_dict_shapes.json}.
"""
import json
import math
import os

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

OUT = "crates/spat-models/tests/fixtures"


class WrnBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.equal = cin == cout
        self.convShortcut = None if self.equal else nn.Conv2d(cin, cout, 1, stride, 0, bias=False)

    def forward(self, x):
        if not self.equal:
            x = F.relu(self.bn1(x))
            out = x
        else:
            out = F.relu(self.bn1(x))
        out = F.relu(self.bn2(self.conv1(out)))
        out = self.conv2(out)
        return (x if self.equal else self.convShortcut(x)) + out


class WrnGroup(nn.Module):
    def __init__(self, n, cin, cout, stride):
        super().__init__()
        self.layer = nn.Sequential(*[WrnBlock(cin if i == 0 else cout, cout, stride if i == 0 else 1) for i in range(n)])

    def forward(self, x):
        return self.layer(x)


class WideResNet(nn.Module):
    def __init__(self, depth, widen, classes=10, base=16):
        super().__init__()
        n = (depth - 4) // 6
        ch = [base, base * widen, 2 * base * widen, 4 * base * widen]
        self.conv1 = nn.Conv2d(3, ch[0], 3, 1, 1, bias=False)
        self.block1 = WrnGroup(n, ch[0], ch[1], 1)
        self.block2 = WrnGroup(n, ch[1], ch[2], 2)
        self.block3 = WrnGroup(n, ch[2], ch[3], 2)
        self.bn1 = nn.BatchNorm2d(ch[3])
        self.fc = nn.Linear(ch[3], classes)

    def forward(self, x):
        out = self.block3(self.block2(self.block1(self.conv1(x))))
        out = F.relu(self.bn1(out))
        return self.fc(F.adaptive_avg_pool2d(out, 1).flatten(1))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, 4 * planes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(4 * planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != 4 * planes:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, 4 * planes, 1, stride, bias=False), nn.BatchNorm2d(4 * planes))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + self.shortcut(x))


class PreActBlock(nn.Module):
    expansion = 1

    def __init__(self, cin, planes, stride):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        if stride != 1 or cin != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, planes, 1, stride, bias=False))

    def forward(self, x):
        out = F.relu(self.bn1(x))
        sc = self.shortcut(out) if hasattr(self, "shortcut") else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + sc


class ResNet(nn.Module):
    def __init__(self, block, layers, classes=10, base=64, preact=False):
        super().__init__()
        self.preact = preact
        self.cin = base
        self.conv1 = nn.Conv2d(3, base, 3, 1, 1, bias=False)
        if not preact:
            self.bn1 = nn.BatchNorm2d(base)
        self.layer1 = self._make(block, base, layers[0], 1)
        self.layer2 = self._make(block, base * 2, layers[1], 2)
        self.layer3 = self._make(block, base * 4, layers[2], 2)
        self.layer4 = self._make(block, base * 8, layers[3], 2)
        self.linear = nn.Linear(base * 8 * block.expansion, classes)

    def _make(self, block, planes, n, stride):
        layers = []
        for s in [stride] + [1] * (n - 1):
            layers.append(block(self.cin, planes, s))
            self.cin = planes * block.expansion
        return nn.Sequential(*layers)

    def forward(self, x):
        out = self.conv1(x)
        if not self.preact:
            out = F.relu(self.bn1(out))
        # kuangliu's PreActResNet has no final BN/ReLU before pooling (fast-AT variants add one).
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))


def perturb_bn(model, gen):
    """Non-trivial affine and running stats, so that eval mode tests the running-stat path."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.weight.copy_(1 + 0.2 * torch.randn(m.weight.shape, generator=gen))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=gen))
                m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=gen))
                m.running_var.copy_(1 + 0.5 * torch.rand(m.running_var.shape, generator=gen))
                m.num_batches_tracked.fill_(3)


_relu = F.relu
_closest_to_kink = [float("inf")]


def _recording_relu(t, *a, **k):
    if not t.is_meta:  # networks on the meta device are only counted (zoo.py), never run
        _closest_to_kink[0] = min(_closest_to_kink[0], t.detach().abs().min().item())
    return _relu(t, *a, **k)


F.relu = _recording_relu


def input_away_from_kinks(model, gen, size=16):
    """A batch on which no ReLU input (train and eval mode) lies within 5e-6 of zero: there the
    gradient is discontinuous, and float summation order alone could flip it."""
    for _ in range(200):
        x = torch.rand((4, 3, size, size), generator=gen)
        _closest_to_kink[0] = float("inf")
        with torch.no_grad():
            model.eval()
            model(x)
            model.train()
            saved = {k: v.clone() for k, v in model.state_dict().items()}
            model(x)
            model.load_state_dict(saved)
        if _closest_to_kink[0] > 5e-6:
            return x
    raise SystemExit("no kink-free input found")


def golden(name, model, gen, size=16, extra=None):
    """`extra` tensors (e.g. a model's input normalisation) are saved alongside."""
    perturb_bn(model, gen)
    x = input_away_from_kinks(model, gen, size)
    y = torch.tensor([0, 3, 7, 9])
    out = {f"weights.{k}": v.clone().contiguous() for k, v in model.state_dict().items()}
    out["input"] = x
    out["labels"] = y.to(torch.int64)
    out.update(extra or {})
    for mode in ["eval", "train"]:
        if mode == "eval":
            model.eval()
        else:
            model.train()
        xi = x.clone().requires_grad_(True)
        logits = model(xi)
        F.cross_entropy(logits, y).backward()
        out[f"logits_{mode}"] = logits.detach()
        out[f"input_grad_{mode}"] = xi.grad.detach()
    # How far PyTorch's own float32 train-mode gradient is from float64: batch-statistics gradients of
    # narrow nets are ill-conditioned, and no float32 implementation can beat this.
    import copy

    m64 = copy.deepcopy(model).double().train()
    m64.load_state_dict({k[len("weights."):]: v for k, v in out.items() if k.startswith("weights.")})
    x64 = x.double().requires_grad_(True)
    F.cross_entropy(m64(x64), y).backward()
    g32 = out["input_grad_train"].double()
    out["torch_f32_rel_err_train"] = ((g32 - x64.grad).abs().max() / x64.grad.abs().max()).float().reshape(1)
    # After the single train-mode forward above, the running stats have moved once.
    for k, v in model.state_dict().items():
        if "running" in k or "num_batches" in k:
            out[f"after_train.{k}"] = v.clone()
    save_file(out, os.path.join(OUT, f"{name}.safetensors"))


def main():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1234)
    os.makedirs(OUT, exist_ok=True)
    golden("wrn_10_2_base8", WideResNet(10, 2, 10, base=8), gen)
    golden("resnet18_base4", ResNet(BasicBlock, [2, 2, 2, 2], 10, base=4), gen)
    golden("preact_resnet18_base4", ResNet(PreActBlock, [2, 2, 2, 2], 10, base=4, preact=True), gen)
    golden("resnet50_base2", ResNet(Bottleneck, [3, 4, 6, 3], 10, base=2), gen)
    shapes = {}
    counts = {}
    macs = {}
    for name, model in [
        ("wrn-34-10", WideResNet(34, 10)),
        ("wrn-28-10", WideResNet(28, 10)),
        ("wrn-16-2", WideResNet(16, 2)),
        ("resnet-18", ResNet(BasicBlock, [2, 2, 2, 2])),
        ("resnet-50", ResNet(Bottleneck, [3, 4, 6, 3])),
        ("preact-resnet-18", ResNet(PreActBlock, [2, 2, 2, 2], preact=True)),
        ("tiny", WideResNet(10, 1, base=8)),
    ]:
        shapes[name] = {k: list(v.shape) for k, v in model.state_dict().items()}
        counts[name] = sum(p.numel() for p in model.parameters())
        macs[name] = count_macs(model)
        print(f"{name}: {counts[name]:,} parameters, {macs[name]:,} MACs per 3x32x32 image")
    with open(os.path.join(OUT, "state_dict_shapes.json"), "w") as f:
        json.dump({"shapes": shapes, "parameters": counts, "macs": macs}, f, indent=0, sort_keys=True)


def count_macs(model):
    """Multiply-accumulates of convolutions and linear layers for one 3x32x32 image, measured
    with forward hooks on the actual output sizes (BN, ReLU, pooling and additions excluded)."""
    total = [0]

    def conv_hook(m, inp, out):
        kh, kw = m.kernel_size
        total[0] += out.numel() * (m.in_channels // m.groups) * kh * kw

    def linear_hook(m, inp, out):
        total[0] += out.numel() * m.in_features

    handles = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, 3, 32, 32))
    for h in handles:
        h.remove()
    return total[0]


if __name__ == "__main__":
    main()
