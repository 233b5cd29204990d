"""The reference side of the spat-vs-reference AutoAttack comparison: clean, PGD-20 (torchattacks),
APGD-CE, APGD-T and AutoAttack (standard) from fra31/auto-attack, on a spat checkpoint loaded into
the reference PyTorch class (scripts/golden/models.py; spat's safetensors use its state_dict
names), on the first N CIFAR-10 test images, with wall times, as one JSON object.

    python3 scripts/autoattack_compare.py --reference PATH/TO/auto-attack \
        --checkpoint runs/tiny-madry/model.safetensors --model tiny --data-dir ../shared/data \
        --n 1000 --eps 8/255 [--threads 2] [--spat spat.json]

With --spat (the JSON printed by `spat eval --attacks clean,pgd20,apgd-ce,apgd-t,autoattack --json`),
it also prints both side by side as a Markdown table. scripts/autoattack_compare.sh runs both.
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch
from safetensors.torch import load_file

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "golden"))
from models import WideResNet, ResNet, BasicBlock, Bottleneck, PreActBlock  # noqa: E402

PRESETS = {
    "tiny": lambda: WideResNet(10, 1, 10, base=8),
    "wrn-16-2": lambda: WideResNet(16, 2, 10),
    "wrn-28-10": lambda: WideResNet(28, 10, 10),
    "wrn-34-10": lambda: WideResNet(34, 10, 10),
    "resnet-18": lambda: ResNet(BasicBlock, [2, 2, 2, 2], 10),
    "resnet-50": lambda: ResNet(Bottleneck, [3, 4, 6, 3], 10),
    "preact-resnet-18": lambda: ResNet(PreActBlock, [2, 2, 2, 2], 10, preact=True),
}


def parse_eps(s):
    a, _, b = s.partition("/")
    return float(a) / float(b) if b else float(a)


def read_test(data_dir, n):
    raw = np.fromfile(os.path.join(data_dir, "cifar-10-batches-bin", "test_batch.bin"), dtype=np.uint8)
    raw = raw.reshape(-1, 3073)[:n]
    y = torch.from_numpy(raw[:, 0].astype(np.int64))
    x = torch.from_numpy(raw[:, 1:].copy()).float().div(255).view(-1, 3, 32, 32)
    return x, y


def accuracy(model, x, y, bs=250):
    with torch.no_grad():
        return sum((model(x[i:i + bs]).argmax(1) == y[i:i + bs]).sum().item()
                   for i in range(0, len(x), bs)) * 100.0 / len(x)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--reference", default=os.environ.get("AUTOATTACK_DIR", "../auto-attack"))
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--model", default="tiny", choices=sorted(PRESETS))
    p.add_argument("--data-dir", default=os.environ.get("SPAT_DATA_DIR", "../shared/data"))
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--eps", type=parse_eps, default=8 / 255)
    p.add_argument("--bs", type=int, default=250)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--spat", help="spat eval's JSON to print beside")
    p.add_argument("--out", help="write the reference's JSON here too")
    p.add_argument("--autoattack-only", action="store_true",
                   help="clean accuracy and AutoAttack only (no separate PGD-20, APGD-CE, APGD-T runs)")
    a = p.parse_args()
    sys.path.insert(0, a.reference)
    from autoattack import AutoAttack
    import torchattacks

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    model = PRESETS[a.model]()
    state = load_file(a.checkpoint)
    missing, unexpected = model.load_state_dict(state, strict=False)
    # spat stores BN's num_batches_tracked only if the file it loaded had it; nothing else may differ.
    assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing), (missing, unexpected)
    model.eval()
    x, y = read_test(a.data_dir, a.n)
    out = {"examples": len(x), "eps": a.eps, "threads": torch.get_num_threads(), "seconds": {}}

    out["clean"] = accuracy(model, x, y, a.bs)
    singles = [] if a.autoattack_only else ["pgd20", "apgd-ce", "apgd-t"]
    for name in singles:
        run_single(name, model, x, y, a, out, torchattacks, AutoAttack)

    aa = AutoAttack(model, norm="Linf", eps=a.eps, version="standard", seed=a.seed, device="cpu")
    after, after_time = {}, {}
    log = aa.logger.log

    def capture(msg):
        log(msg)
        if msg.startswith("robust accuracy after "):
            name, rest = msg[len("robust accuracy after "):].split(": ", 1)
            after[name.lower()] = float(rest.split("%")[0])
            if "total time" in rest:
                after_time[name.lower()] = float(rest.split("total time ")[1].split(" s")[0])

    aa.logger.log = capture
    t = time.time()
    adv = aa.run_standard_evaluation(x, y, bs=a.bs)
    out["seconds"]["autoattack"] = time.time() - t
    out["autoattack"] = accuracy(model, adv, y, a.bs)
    out["autoattack_after"] = after
    # The reference logs the time since AutoAttack began after each attack: per attack, the
    # differences.
    previous, per_attack = 0.0, {}
    for name in ["apgd-ce", "apgd-t", "fab-t", "square"]:
        if name in after_time:
            per_attack[name] = after_time[name] - previous
            previous = after_time[name]
    out["autoattack_seconds"] = per_attack
    if a.out:
        with open(a.out, "w") as f:
            json.dump(out, f)
    if a.spat:
        print_table(a, x, out, after, per_attack, singles)
    else:
        print(json.dumps(out))


def run_single(name, model, x, y, a, out, torchattacks, AutoAttack):
    """One attack alone on every test image: PGD-20 (torchattacks), APGD-CE or APGD-T."""
    t = time.time()
    if name == "pgd20":
        # PGD-20 as spat's `pgd20` and TRADES' evaluation: step 0.003 at eps 0.031 (scaled with
        # eps), uniform random start.
        pgd = torchattacks.PGD(model, eps=a.eps, alpha=a.eps * 0.003 / 0.031, steps=20, random_start=True)
        adv = torch.cat([pgd(x[i:i + a.bs], y[i:i + a.bs]) for i in range(0, len(x), a.bs)])
    else:
        aa = AutoAttack(model, norm="Linf", eps=a.eps, version="standard", seed=a.seed, device="cpu",
                        verbose=False)
        aa.attacks_to_run = [name]
        adv = aa.run_standard_evaluation(x, y, bs=a.bs)
    out["seconds"][name] = time.time() - t
    out[name] = accuracy(model, adv, y, a.bs)


def print_table(a, x, out, after, per_attack, singles):
    """Both sides as Markdown: accuracies, then AutoAttack's wall time per attack and in all."""
    with open(a.spat) as f:
        spat = json.load(f)
    acc = spat["accuracy"]
    aa = spat["autoattack"]["autoattack"]
    spat_after = {s["attack"]: s["robust"] for s in aa["stages"]}
    spat_seconds = {s["attack"]: s["seconds"] for s in aa["stages"]}
    print(f"{len(x)} first CIFAR-10 test images, eps {a.eps:.5f}, {a.model} ({a.checkpoint}), "
          f"{out['threads']} threads\n")
    print("| accuracy (%) | spat | reference |\n| --- | --- | --- |")
    for r in ["clean", *singles, "autoattack"]:
        print(f"| {r} | {acc[r]:.1f} | {out[r]:.1f} |")
    for k in ["apgd-ce", "apgd-t", "fab-t", "square"]:
        if k in after and k in spat_after:
            print(f"| AutoAttack after {k} | {spat_after[k]:.1f} | {after[k]:.1f} |")
    print("\n| AutoAttack wall time (s) | spat | reference | reference / spat |\n| --- | --- | --- | --- |")
    for k in ["apgd-ce", "apgd-t", "fab-t", "square"]:
        if k in spat_seconds and k in per_attack:
            ratio = per_attack[k] / spat_seconds[k] if spat_seconds[k] > 0 else float("nan")
            print(f"| {k} | {spat_seconds[k]:.0f} | {per_attack[k]:.0f} | {ratio:.2f}× |")
    total = out["seconds"]["autoattack"]
    print(f"| standard, all four attacks | {aa['seconds']:.0f} | {total:.0f} | {total / aa['seconds']:.2f}× |")


if __name__ == "__main__":
    main()
