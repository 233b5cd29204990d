"""Golden fixtures for the architectures of RobustBench's model zoo that spat builds by name:
DeepMind-layout WideResNets and PreAct-ResNets (robustbench/model_zoo/architectures/
dm_wide_resnet.py) and the PreAct-ResNet-18 variants of robustbench/.../resnet.py, run with
RobustBench's own block classes and forward passes; only the constructors below are re-typed,
to take a narrower stem than the published networks so that the files stay small.

Run from the repository root:  python3 scripts/golden/zoo.py   (needs `pip install robustbench`)
Writes crates/spat-models/tests/fixtures/{dm_*.safetensors, preact_*.safetensors, zoo_sizes.json}
and, in tests/fixtures/torch/, a DeepMind-layout checkpoint as users save it:

  dm_wrn_10_1_silu_bare.pt     DMWideResNet(10, 1, nn.SiLU) state_dict, float16, plus `mean` and
                               `std` (3,1,1) set to CIFAR-100's statistics (not the default)
  dm_wrn_10_1_silu_wrapped.pt  {'state_dict': {'module.' + k: v}, 'epoch'}: the same weights as
                               float32, no mean/std (the model's own CIFAR-10 statistics apply)
  dm_logits.safetensors        input (4,3,32,32); logits_bare, logits_wrapped (eval mode);
                               accuracy_{clean,fgsm}_{bare,wrapped}: PyTorch's accuracy (%) on
                               the first 64 test images of data/cifar-10-mini, FGSM at 8/255
"""
import json
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

import models as common  # noqa: E402  (the golden() of the other presets, F.relu kink recorder)


def shim_autoattack():
    """robustbench/__init__ imports the `autoattack` package; PyPI's build is `pyautoattack`, and
    this folder's autoattack.py (a fixture script) must not stand in for it."""
    here = os.path.dirname(os.path.abspath(__file__))
    sys.modules.pop("autoattack", None)
    try:
        import pyautoattack

        sys.modules["autoattack"] = pyautoattack
    except ImportError:
        sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]


shim_autoattack()
from robustbench.model_zoo.architectures import dm_wide_resnet as dm  # noqa: E402
from robustbench.model_zoo.architectures import resnet as rb_resnet  # noqa: E402
from robustbench.model_zoo.architectures import wide_resnet as rb_wrn  # noqa: E402

OUT = common.OUT


class NarrowDMWideResNet(dm.DMWideResNet):
    """DMWideResNet whose stem has `base` channels instead of 16 (widths base·[1, w, 2w, 4w])."""

    def __init__(self, depth, width, activation_fn, base, mean, std, num_classes=10):
        nn.Module.__init__(self)
        self.register_buffer("mean", torch.tensor(mean).view(3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(3, 1, 1), persistent=False)
        self.padding = 0
        ch = [base, base * width, 2 * base * width, 4 * base * width]
        n = (depth - 4) // 6
        self.init_conv = nn.Conv2d(3, ch[0], kernel_size=3, stride=1, padding=1, bias=False)
        self.layer = nn.Sequential(
            dm._BlockGroup(n, ch[0], ch[1], 1, activation_fn=activation_fn),
            dm._BlockGroup(n, ch[1], ch[2], 2, activation_fn=activation_fn),
            dm._BlockGroup(n, ch[2], ch[3], 2, activation_fn=activation_fn),
        )
        self.batchnorm = nn.BatchNorm2d(ch[3])
        self.relu = activation_fn()
        self.logits = nn.Linear(ch[3], num_classes)
        self.num_channels = ch[3]


class NarrowDMPreActResNet(dm.DMPreActResNet):
    """DMPreActResNet whose stages have base·[1, 2, 4, 8] channels instead of 64·[1, 2, 4, 8]."""

    def __init__(self, depth, activation_fn, base, mean, std, num_classes=10):
        nn.Module.__init__(self)
        self.register_buffer("mean", torch.tensor(mean).view(3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(3, 1, 1), persistent=False)
        self.padding = 0
        blocks = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}[depth]
        w = [base, 2 * base, 4 * base, 8 * base]
        self.conv_2d = nn.Conv2d(3, w[0], kernel_size=3, stride=1, padding=1, bias=False)
        self.layer_0 = self._make_layer(w[0], w[0], blocks[0], 1, activation_fn)
        self.layer_1 = self._make_layer(w[0], w[1], blocks[1], 2, activation_fn)
        self.layer_2 = self._make_layer(w[1], w[2], blocks[2], 2, activation_fn)
        self.layer_3 = self._make_layer(w[2], w[3], blocks[3], 2, activation_fn)
        self.batchnorm = nn.BatchNorm2d(w[3])
        self.relu = activation_fn()
        self.logits = nn.Linear(w[3], num_classes)


class NarrowPreActResNet(rb_resnet.PreActResNet):
    """robustbench's PreActResNet (resnet.py) with `base` channels in the first stage."""

    def __init__(self, block, base, bn_before_fc, out_shortcut=False, num_classes=10):
        nn.Module.__init__(self)
        self.in_planes = base
        self.bn_before_fc = bn_before_fc
        self.out_shortcut = out_shortcut
        self.conv1 = nn.Conv2d(3, base, kernel_size=3, stride=1, padding=1, bias=False)
        self.layer1 = self._make_layer(block, base, 2, stride=1)
        self.layer2 = self._make_layer(block, 2 * base, 2, stride=2)
        self.layer3 = self._make_layer(block, 4 * base, 2, stride=2)
        self.layer4 = self._make_layer(block, 8 * base, 2, stride=2)
        if bn_before_fc:
            self.bn = nn.BatchNorm2d(8 * base)
        self.linear = nn.Linear(8 * base, num_classes)

    def forward(self, x):
        # resnet.py pools with avg_pool2d(out, 4), which needs 32x32 inputs; global pooling is the
        # same there and lets the fixtures use 16x16 images.
        out = self.conv1(x)
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        if self.bn_before_fc:
            out = torch.nn.functional.relu(self.bn(out))
        return self.linear(torch.nn.functional.adaptive_avg_pool2d(out, 1).flatten(1))


def normalization(model):
    return {
        "normalization.mean": model.mean.flatten().clone(),
        "normalization.std": model.std.flatten().clone(),
    }


def goldens(gen):
    c10 = (dm.CIFAR10_MEAN, dm.CIFAR10_STD)
    c100 = (dm.CIFAR100_MEAN, dm.CIFAR100_STD)
    # Stride-1 blocks with and without a shortcut, stride-2 blocks (asymmetric padding), Swish.
    m = NarrowDMWideResNet(10, 2, dm.Swish, 8, *c10)
    common.golden("dm_wrn_10_2_base8_swish", m, gen, size=32, extra=normalization(m))
    m = NarrowDMWideResNet(10, 1, nn.ReLU, 8, *c100, num_classes=100)
    common.golden("dm_wrn_10_1_base8_relu_c100", m, gen, size=32, extra=normalization(m))
    # 3x3 strided shortcuts read the padded raw input; PyTorch's own SiLU.
    m = NarrowDMPreActResNet(18, nn.SiLU, 4, *c10)
    common.golden("dm_preact_resnet18_base4_silu", m, gen, size=32, extra=normalization(m))
    # Wong et al. 2020 / Andriushchenko et al. 2020: the shortcut reads the raw block input.
    m = NarrowPreActResNet(rb_resnet.PreActBlock, 4, bn_before_fc=False)
    common.golden("preact_resnet18_base4_input_shortcut", m, gen)
    # Rice et al. 2020 (PreActBlockV2, bn_before_fc): kuangliu's block and a final BN-ReLU.
    m = NarrowPreActResNet(rb_resnet.PreActBlockV2, 4, bn_before_fc=True)
    common.golden("preact_resnet18_base4_final_bn", m, gen)
    # Both: fast_adversarial's CIFAR-10 code after its first commit.
    m = NarrowPreActResNet(rb_resnet.PreActBlock, 2, bn_before_fc=True)
    common.golden("preact_resnet18_base2_input_shortcut_final_bn", m, gen)


def sizes():
    """Parameters, buffers and multiply-accumulates (hooks on a 3x32x32 forward) of full-size
    networks built by robustbench's constructors on the meta device (no weights drawn)."""
    full = {
        "dm-wrn-28-10": lambda: dm.DMWideResNet(10, 28, 10, nn.ReLU),
        "dm-wrn-70-16-swish": lambda: dm.DMWideResNet(10, 70, 16, dm.Swish),
        "dm-wrn-34-20-silu": lambda: dm.DMWideResNet(10, 34, 20, nn.SiLU),
        "dm-wrn-106-16-silu": lambda: dm.DMWideResNet(10, 106, 16, dm.Swish),
        "dm-wrn-94-16-silu": lambda: dm.DMWideResNet(10, 94, 16, nn.SiLU),
        "dm-wrn-82-8-silu": lambda: dm.DMWideResNet(10, 82, 8, nn.SiLU),
        "dm-wrn-16-2-silu": lambda: dm.DMWideResNet(10, 16, 2, nn.SiLU),
        "dm-preact-resnet-18": lambda: dm.DMPreActResNet(10, 18, 0, nn.ReLU),
        "dm-preact-resnet-34-silu": lambda: dm.DMPreActResNet(10, 34, 0, nn.SiLU),
        "wrn-34-15": lambda: rb_wrn.WideResNet(34, 10, 15),
        "wrn-34-20": lambda: rb_wrn.WideResNet(34, 10, 20),
        "wrn-70-16": lambda: rb_wrn.WideResNet(70, 10, 16),
        "wrn-28-4": lambda: rb_wrn.WideResNet(28, 10, 4),
        "preact-resnet-18-input-shortcut": lambda: rb_resnet.PreActResNet(
            rb_resnet.PreActBlock, [2, 2, 2, 2]
        ),
        "preact-resnet-18-final-bn": lambda: rb_resnet.PreActResNet(
            rb_resnet.PreActBlockV2, [2, 2, 2, 2], bn_before_fc=True
        ),
        "preact-resnet-18-input-shortcut-final-bn": lambda: rb_resnet.PreActResNet(
            rb_resnet.PreActBlock, [2, 2, 2, 2], bn_before_fc=True
        ),
    }
    out = {}
    for name, make in full.items():
        with torch.device("meta"):
            model = make()
            macs = common.count_macs(model)
        params = sum(p.numel() for p in model.parameters())
        # state_dict buffers: running statistics and counters (the DeepMind nets' mean and std
        # are not persistent).
        buffers = sum(v.numel() for v in model.state_dict().values()) - params
        out[name] = {"parameters": params, "buffers": buffers, "macs": macs}
        print(f"{name}: {params:,} parameters, {buffers:,} buffer elements, {macs:,} MACs")
    with open(os.path.join(OUT, "zoo_sizes.json"), "w") as f:
        json.dump(out, f, indent=1, sort_keys=True)


def mini_test_images(n):
    raw = np.fromfile("data/cifar-10-mini/test_batch.bin", dtype=np.uint8).reshape(-1, 3073)[:n]
    x = torch.from_numpy(raw[:, 1:].reshape(-1, 3, 32, 32).copy()).float() / 255
    return x, torch.from_numpy(raw[:, 0].astype(np.int64))


def train_briefly(model, gen, epochs=8):
    """A few epochs of SGD on data/cifar-10-mini's 512 training images, so that accuracies
    depend on what the network computes (random weights predict one class)."""
    raw = np.fromfile("data/cifar-10-mini/data_batch_1.bin", dtype=np.uint8).reshape(-1, 3073)
    x = torch.from_numpy(raw[:, 1:].reshape(-1, 3, 32, 32).copy()).float() / 255
    y = torch.from_numpy(raw[:, 0].astype(np.int64))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        for b in range(0, len(x), 64):
            idx = order[b : b + 64]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()


def accuracies(model, x, y, eps=8 / 255):
    """Clean and FGSM accuracy (%), FGSM as spat's: x + eps·sign(∇ CE), clamped to [0, 1]."""
    model.eval()
    xr = x.clone().requires_grad_(True)
    logits = model(xr)
    (g,) = torch.autograd.grad(F.cross_entropy(logits, y), xr)
    with torch.no_grad():
        adv = model((x + eps * g.sign()).clamp(0, 1))
    return [100.0 * (out.argmax(1) == y).float().mean().item() for out in (logits, adv)]


def checkpoints(gen):
    torch_out = "tests/fixtures/torch"
    model = dm.DMWideResNet(10, 10, 1, nn.SiLU)
    train_briefly(model, gen)
    with torch.no_grad():  # weights as float16 holds them, so both files hold the same values
        for v in model.state_dict().values():
            if v.is_floating_point():
                v.copy_(v.half().float())
    sd = model.state_dict()
    bare = {k: (v.half() if v.is_floating_point() else v) for k, v in sd.items()}
    bare["mean"] = torch.tensor(dm.CIFAR100_MEAN).view(3, 1, 1)
    bare["std"] = torch.tensor(dm.CIFAR100_STD).view(3, 1, 1)
    torch.save(bare, f"{torch_out}/dm_wrn_10_1_silu_bare.pt")
    wrapped = {"state_dict": {f"module.{k}": v for k, v in sd.items()}, "epoch": 3}
    torch.save(wrapped, f"{torch_out}/dm_wrn_10_1_silu_wrapped.pt")
    x = torch.rand((4, 3, 32, 32), generator=gen)
    xs, ys = mini_test_images(64)
    out = {"input": x}
    for tag, mean, std in [("wrapped", dm.CIFAR10_MEAN, dm.CIFAR10_STD),
                           ("bare", dm.CIFAR100_MEAN, dm.CIFAR100_STD)]:
        model.mean.copy_(torch.tensor(mean).view(3, 1, 1))
        model.std.copy_(torch.tensor(std).view(3, 1, 1))
        model.eval()
        with torch.no_grad():
            out[f"logits_{tag}"] = model(x)
        clean, fgsm = accuracies(model, xs, ys)
        out[f"accuracy_clean_{tag}"] = torch.tensor([clean], dtype=torch.float64)
        out[f"accuracy_fgsm_{tag}"] = torch.tensor([fgsm], dtype=torch.float64)
        print(f"{tag}: clean {clean:.4f} %, FGSM {fgsm:.4f} % on 64 mini test images")
    save_file(out, f"{torch_out}/dm_logits.safetensors")


def main():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(2027)
    goldens(gen)
    sizes()
    checkpoints(torch.Generator().manual_seed(99))


if __name__ == "__main__":
    main()
