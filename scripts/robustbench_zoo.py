"""spat's table of RobustBench's CIFAR-10 / CIFAR-100 L∞ and L2 model-zoo entries, read from
RobustBench's own model zoo (robustbench/model_zoo/cifar10.py and cifar100.py): every entry is
constructed on the meta device (no weights drawn, nothing downloaded) and classified by the
classes and flags of the network it builds.

Run from the repository root (needs `pip install robustbench`):
    python3 scripts/robustbench_zoo.py
Writes
  crates/spat-spec/src/robustbench/entries.rs   the table (`spat --model rb:NAME`)
  crates/spat-models/tests/fixtures/robustbench_layouts.json
      per supported entry, RobustBench's parameter count and a digest of its state_dict names and
      shapes (after the renaming spat's checkpoint loader does), which a spat-models test compares
      with the dry build of the architecture the table names.
"""
import importlib.metadata
import json
import os
import sys
import warnings

warnings.filterwarnings("ignore")
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]
try:  # robustbench/__init__ imports `autoattack`; PyPI's build of it is named pyautoattack
    import pyautoattack

    sys.modules["autoattack"] = pyautoattack
except ImportError:
    pass
import numpy as np  # noqa: E402
import torch  # noqa: E402
from robustbench.model_zoo import model_dicts  # noqa: E402
from robustbench.model_zoo.architectures import dm_wide_resnet as dm  # noqa: E402
from robustbench.model_zoo.architectures import resnet as rb_resnet  # noqa: E402
from robustbench.model_zoo.architectures import wide_resnet as rb_wrn  # noqa: E402

TABLE = "crates/spat-spec/src/robustbench/entries.rs"
LAYOUTS = "crates/spat-models/tests/fixtures/robustbench_layouts.json"

# Subclasses of robustbench's WideResNet / ResNet / PreActResNet in cifar10.py and cifar100.py,
# by what their forward adds: input normalisation by `mu`/`sigma` buffers, or 2x - 1.
NORMALISES_BY_BUFFERS = {
    "Rice2020OverfittingNet", "Augustin2020AdversarialWideNet", "Rony2019DecouplingNet",
    "Chen2020EfficientNet", "Wu2020AdversarialNet", "Engstrom2019RobustnessNet",
    "Augustin2020AdversarialNet", "Wong2020FastNet", "Rice2020OverfittingNetL2",
}
TWO_X_MINUS_ONE = {"Hendrycks2019UsingNet"}
PLAIN = {"WideResNet", "ResNet", "PreActResNet", "DMWideResNet", "DMPreActResNet"}

# Why an entry's network is not one spat builds, by the class RobustBench constructs.
REASONS = {
    "BoostingWideResNet": "BoostingWideResNet: L2-normalised features and classifier weights, "
    "classifier without bias",
    "Ding2020MMANet": "per-image standardisation of the input (mean and std of each image)",
    "RobustWideResNet": "RobustWideResNet: per-stage widths 16/320/640/512 and depths 5/5/5, "
    "names stem_conv/blocks.*",
    "PAF_WideResNet": "PSSiLU, a parametric activation with learned parameters",
    "NormalizedWideResNet": "RaWideResNet (robustarch_wide_resnet.py): its own block layout",
    "MeanSparse_DMWideResNet": "MeanSparse: per-channel mean-centred sparsification modules",
    "ResNest": "ResNeSt-152 (split-attention blocks)",
    "Chen2020AdversarialNet": "an ensemble of three pre-activated ResNet-50s, averaged softmax",
}
REASONS_BY_NAME = {
    "Kang2021Stable": "SODEF: a neural ODE block after a WideResNet",
    "Bai2023Improving_edm": "a mixture of a standard and a robust network with a policy network",
    "Bai2023Improving_trades": "a mixture of a standard and a robust network with a policy network",
    "Bai2024MixedNUTS": "MixedNUTS: nonlinearly mixed standard and robust classifiers",
    "Debenedetti2022Light_XCiT-S12": "XCiT vision transformer (timm)",
    "Debenedetti2022Light_XCiT-M12": "XCiT vision transformer (timm)",
    "Debenedetti2022Light_XCiT-L12": "XCiT vision transformer (timm)",
    "Huang2022Revisiting_WRN-A4": "RobustResNet WRN-A4 (robust_resnet.py)",
}
# What spat's checkpoint loader removes from a file before matching names (crates/spat-core/src/
# checkpoint.rs): input normalisation buffers and TRADES' unused block.
DROPPED = ("mu", "sigma")
DROPPED_PREFIXES = ("sub_block1.",)


def f32(values):
    """The float32 values the network holds, each as the shortest text that reads back as it."""
    return [str(np.float32(v)) for v in values]


def activation(m):
    act = type(m.relu)
    if act is torch.nn.ReLU:
        return "relu"
    if act in (torch.nn.SiLU, dm.Swish):
        return "silu"
    raise ValueError(f"activation {act}")


def classify(name, model):
    """(architecture, normalisation or None) or a reason string."""
    cls = type(model).__name__
    if name in REASONS_BY_NAME:
        return REASONS_BY_NAME[name]
    if cls in REASONS:
        return REASONS[cls]
    if "Meansparse" in type(model).__module__:
        return REASONS["MeanSparse_DMWideResNet"]
    if cls not in PLAIN | NORMALISES_BY_BUFFERS | TWO_X_MINUS_ONE:
        return f"{cls} ({type(model).__module__})"
    if isinstance(model, dm.DMWideResNet) and type(model) is dm.DMWideResNet:
        assert model.padding == 0
        n = len(model.layer[0].block)
        width = model.layer[0].block[0].conv_0.out_channels // 16
        arch = f"dm-wrn-{6 * n + 4}-{width}-{activation(model)}"
        return arch, (f32(model.mean.flatten().tolist()), f32(model.std.flatten().tolist()))
    if type(model) is dm.DMPreActResNet:
        assert model.padding == 0
        depth = {2: 18, 3: 34}[len(model.layer_0)]
        return f"dm-preact-resnet-{depth}-{activation(model)}", (
            f32(model.mean.flatten().tolist()),
            f32(model.std.flatten().tolist()),
        )
    if isinstance(model, rb_wrn.WideResNet):
        if model.fc.bias is None:
            return "WideResNet classifier without bias"
        n = len(model.block1.layer)
        assert model.conv1.out_channels == 16
        arch = f"wrn-{6 * n + 4}-{model.block1.layer[0].conv1.out_channels // 16}"
    elif isinstance(model, rb_resnet.PreActResNet) and type(model).__module__.startswith(
        "robustbench.model_zoo"
    ) and not type(model).__module__.endswith("robust_resnet"):
        blocks = [len(model.layer1), len(model.layer2), len(model.layer3), len(model.layer4)]
        block = model.layer1[0]
        if blocks != [2, 2, 2, 2] or model.conv1.out_channels != 64:
            return f"PreActResNet with blocks {blocks}"
        activated = isinstance(block, rb_resnet.PreActBlockV2) or block.out_shortcut
        assert isinstance(block, (rb_resnet.PreActBlock, rb_resnet.PreActBlockV2))
        arch = "preact-resnet-18" + ("" if activated else "-input-shortcut")
        arch += "-final-bn" if model.bn_before_fc else ""
    elif isinstance(model, rb_resnet.ResNet):
        blocks = [len(model.layer1), len(model.layer2), len(model.layer3), len(model.layer4)]
        block = type(model.layer1[0])
        if block is rb_resnet.BasicBlock and blocks == [2, 2, 2, 2]:
            arch = "resnet-18"
        elif block is rb_resnet.Bottleneck and blocks == [3, 4, 6, 3]:
            arch = "resnet-50"
        else:
            return f"ResNet of {block.__name__} {blocks}"
    else:
        return f"{cls} ({type(model).__module__})"
    if cls in NORMALISES_BY_BUFFERS:
        norm = (f32(model.mu.flatten().tolist()), f32(model.sigma.flatten().tolist()))
    elif cls in TWO_X_MINUS_ONE:
        norm = (["0.5"] * 3, ["0.5"] * 3)  # 2x - 1 = (x - 0.5) / 0.5
    else:
        norm = None
    return arch, norm


def build_on_meta(make):
    """The network with its parameters on the meta device; tensors made from data (the
    normalisation constants) stay on the CPU so that their values can be read."""
    make_tensor = torch.tensor

    def on_cpu(*args, **kwargs):
        return make_tensor(*args, **{**kwargs, "device": "cpu"})

    torch.tensor = on_cpu
    try:
        with torch.device("meta"):
            return make()
    finally:
        torch.tensor = make_tensor


def layout_digest(model):
    """FNV-1a 64 of the sorted `name:d0,d1,...` lines of the state_dict spat would load."""
    lines = sorted(
        f"{k}:{','.join(str(d) for d in v.shape)}\n"
        for k, v in model.state_dict().items()
        if k not in DROPPED and not k.startswith(DROPPED_PREFIXES)
    )
    h = 0xCBF29CE484222325
    for b in "".join(lines).encode():
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def rust_str(s):
    return json.dumps(s, ensure_ascii=False)


def rust_floats(v):
    return "[" + ", ".join(repr(x) for x in v) + "]"


def main():
    rows, layouts = [], {}
    for ds, lists in model_dicts.items():
        if ds.value not in ("cifar10", "cifar100"):
            continue
        for tm, entries in lists.items():
            if tm.value not in ("Linf", "L2"):
                continue
            for name, entry in entries.items():
                key = f"{ds.value}/{tm.value}/{name}"
                if isinstance(entry["gdrive_id"], list):
                    result = REASONS_BY_NAME.get(name) or (
                        f"an ensemble of {len(entry['gdrive_id'])} networks in separate files"
                    )
                    model = None
                else:
                    try:
                        model = build_on_meta(entry["model"])
                        result = classify(name, model)
                    except Exception as e:  # noqa: BLE001 (a class that cannot even be built)
                        model = None
                        result = REASONS_BY_NAME.get(name) or f"cannot be constructed: {e}"
                if isinstance(result, tuple):
                    arch, norm = result
                    layouts[key] = {
                        "architecture": arch,
                        "classes": model.state_dict()[
                            [k for k in model.state_dict() if k.endswith(("fc.weight", "logits.weight", "linear.weight"))][0]
                        ].shape[0],
                        "parameters": sum(
                            p.numel() for k, p in model.named_parameters() if not k.startswith(DROPPED_PREFIXES)
                        ),
                        "layout_fnv1a64": layout_digest(model),
                    }
                rows.append((ds.value, tm.value, name, result))
                print(key, "->", result if isinstance(result, str) else result[0])
    write_table(rows)
    with open(LAYOUTS, "w") as f:
        json.dump(layouts, f, indent=1, sort_keys=True)
        f.write("\n")
    supported = sum(isinstance(r[3], tuple) for r in rows)
    print(f"{len(rows)} entries, {supported} supported")


def write_table(rows):
    ds_variant = {"cifar10": "Cifar10", "cifar100": "Cifar100"}
    out = [
        "// Generated by scripts/robustbench_zoo.py from robustbench "
        f"{importlib.metadata.version('robustbench')} (model_zoo/cifar10.py, cifar100.py): every CIFAR-10 / CIFAR-100",
        "// L∞ and L2 entry, in RobustBench's order. Do not edit; run the script again.",
        "",
        "use super::{Entry, EntryNetwork, Leaderboard::*};",
        "use crate::Dataset::*;",
        "",
        "#[rustfmt::skip]",
        "pub(super) const ENTRIES: &[Entry] = &[",
    ]
    for ds, tm, name, result in rows:
        if isinstance(result, tuple):
            arch, norm = result
            norm_s = "None" if norm is None else (
                f"Some(([{', '.join(norm[0])}], [{', '.join(norm[1])}]))"
            )
            net = f"EntryNetwork::Supported {{ architecture: {rust_str(arch)}, normalization: {norm_s} }}"
        else:
            net = f"EntryNetwork::Unsupported {{ reason: {rust_str(result)} }}"
        out.append(
            f"    Entry {{ dataset: {ds_variant[ds]}, leaderboard: {tm.capitalize() if tm == 'Linf' else 'L2'}, "
            f"name: {rust_str(name)}, network: {net} }},"
        )
    out.append("];")
    os.makedirs(os.path.dirname(TABLE), exist_ok=True)
    with open(TABLE, "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
