"""PyTorch reference for `spat bench`: per-step GPU time of the same three workloads on the same
networks and shapes, written in the same JSON schema, so both frameworks can be compared side by side.

Workloads, each one step on one fixed batch of 3x32x32 images with 10 classes:
  standard           one SGD step of plain cross-entropy training (train mode);
  trades-spat-pgd10  one TRADES step (beta=6) whose inner adversary is SPAT's: 10 l_inf steps
                     (eps=8/255, step 2/255) on label-smoothed cross-entropy (alpha=0.2), then three
                     train-mode forward passes and one backward, as in yaodongyu/TRADES trades.py;
  pgd20-eval         a PGD-20 robust-accuracy evaluation of the batch (eval mode, random start).
Precisions: fp32 (TF32 off), tf32 (TF32 allowed), bf16 (TF32 allowed plus bf16 autocast over every
forward pass and loss; master weights stay f32).

Each (model, workload, precision, mode) runs --warmup untimed steps, then --repeats steps timed one
by one; the median step time and batch / median are reported.

Modes (how PyTorch runs; --modes takes a comma list, or --memory-format and --compile pick one):
  default                 eager, contiguous (NCHW) tensors: what a script gets without asking;
  channels-last           eager, model and batch in torch.channels_last (NHWC), oneDNN's preferred
                          CPU layout;
  compile                 torch.compile(model) (inductor), contiguous;
  compile-channels-last   both.
A compiled mode's first step compiles its graphs (for an attack step: the evaluation-mode forward
and backward; for TRADES also the training-mode one). That step is timed apart, reported as
`compile_s` (wall seconds of the first step, compilation included), and is excluded from the step
times, as are at least one further warm-up step; the optimiser step stays eager in every mode.

Side by side with spat on the same machine:
  python3 bench/pytorch_reference.py --json pytorch.json
  spat bench --device cuda:0 --reference pytorch.json
"""
import argparse
import contextlib
import gc
import json
import re
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

NUM_CLASSES = 10
EPS = 8 / 255


# Network definitions copied from scripts/golden/models.py (TRADES/MART WideResNet layout and the
# kuangliu CIFAR ResNet), so that this script runs on a machine with nothing but PyTorch.


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


class ResNet(nn.Module):
    def __init__(self, block, layers, classes=10, base=64):
        super().__init__()
        self.cin = base
        self.conv1 = nn.Conv2d(3, base, 3, 1, 1, bias=False)
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
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))


MODELS = {
    "wrn-34-10": lambda: WideResNet(34, 10, NUM_CLASSES, base=16),
    "resnet-18": lambda: ResNet(BasicBlock, [2, 2, 2, 2], NUM_CLASSES, base=64),
    "wrn-16-2": lambda: WideResNet(16, 2, NUM_CLASSES, base=16),
    "tiny": lambda: WideResNet(10, 1, NUM_CLASSES, base=8),
}
# DeepMind's networks (RobustBench's DMWideResNet and DMPreActResNet, with their input
# normalisation), named as spat names them: dm-wrn-D-W[-ACT], dm-preact-resnet-D[-ACT], ACT one of
# relu (the default), silu, swish (SiLU in both programs). Built from the robustbench package,
# imported only when one is asked for.
DM_NAME = re.compile(r"^dm-(wrn-(\d+)-(\d+)|preact-resnet-(18|34))(?:-(relu|silu|swish))?$")


def dm_model(name):
    """A constructor for a DeepMind network `name`, or None if `name` is not one."""
    m = DM_NAME.match(name)
    if m is None:
        return None
    try:
        from robustbench.model_zoo.architectures import dm_wide_resnet as dm
    except ImportError as e:
        raise SystemExit(f"--models {name}: DeepMind's networks need the robustbench package ({e})")
    act = {None: nn.ReLU, "relu": nn.ReLU, "silu": nn.SiLU, "swish": nn.SiLU}[m.group(5)]
    if m.group(2):
        depth, width = int(m.group(2)), int(m.group(3))
        return lambda: dm.DMWideResNet(num_classes=NUM_CLASSES, depth=depth, width=width, activation_fn=act)
    depth = int(m.group(4))
    return lambda: dm.DMPreActResNet(num_classes=NUM_CLASSES, depth=depth, activation_fn=act, use_cuda=False)


WORKLOADS = ["standard", "trades-spat-pgd10", "pgd20-eval"]
PRECISIONS = ["fp32", "tf32", "bf16"]
# mode name -> (memory format, compiled)
MODES = {
    "default": (torch.contiguous_format, False),
    "channels-last": (torch.channels_last, False),
    "compile": (torch.contiguous_format, True),
    "compile-channels-last": (torch.channels_last, True),
}


def make_optimizer(model):
    return torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=7e-4)


def label_smoothed_ce_sum(logits, y, alpha):
    log_p = F.log_softmax(logits, dim=1)
    k = logits.shape[1]
    q = torch.full_like(log_p, alpha / (k - 1))
    q.scatter_(1, y.unsqueeze(1), 1.0 - alpha)
    return -(q * log_p).sum()


def step_standard(model, opt, x, y, autocast):
    model.train()
    opt.zero_grad(set_to_none=True)
    with autocast():
        loss = F.cross_entropy(model(x), y)
    loss.backward()
    opt.step()


def step_trades_spat(model, opt, x, y, autocast, steps=10, step_size=2 / 255, beta=6.0, alpha=0.2):
    model.eval()
    x_adv = x + 0.001 * torch.randn_like(x)
    for _ in range(steps):
        x_adv.requires_grad_()
        with autocast():
            loss = label_smoothed_ce_sum(model(x_adv), y, alpha)
        grad = torch.autograd.grad(loss, [x_adv])[0]
        x_adv = x_adv.detach() + step_size * grad.sign()
        x_adv = torch.min(torch.max(x_adv, x - EPS), x + EPS).clamp(0.0, 1.0)
    model.train()
    x_adv = x_adv.detach()
    opt.zero_grad(set_to_none=True)
    with autocast():
        logits = model(x)
        loss_nat = F.cross_entropy(logits, y)
        # trades.py runs the natural batch through the network a second time for the KL target
        # rather than reusing `logits`; the reference cost includes that third forward pass.
        loss_rob = (1.0 / x.shape[0]) * nn.KLDivLoss(reduction="sum")(
            F.log_softmax(model(x_adv), dim=1), F.softmax(model(x), dim=1)
        )
        loss = loss_nat + beta * loss_rob
    loss.backward()
    opt.step()


def step_pgd20_eval(model, opt, x, y, autocast, steps=20, step_size=0.003 * (8 / 255) / 0.031):
    model.eval()
    x_adv = (x + torch.empty_like(x).uniform_(-EPS, EPS)).clamp(0.0, 1.0)
    for _ in range(steps):
        x_adv.requires_grad_()
        with autocast():
            loss = F.cross_entropy(model(x_adv), y, reduction="sum")
        grad = torch.autograd.grad(loss, [x_adv])[0]
        x_adv = x_adv.detach() + step_size * grad.sign()
        x_adv = torch.min(torch.max(x_adv, x - EPS), x + EPS).clamp(0.0, 1.0)
    with torch.no_grad(), autocast():
        # .item() forces the host to wait for the result, as a real evaluation loop would.
        correct = (model(x_adv).argmax(1) == y).sum().item()
    return correct


STEPS = {
    "standard": step_standard,
    "trades-spat-pgd10": step_trades_spat,
    "pgd20-eval": step_pgd20_eval,
}


def set_precision(precision, device_type):
    tf32 = precision in ("tf32", "bf16")
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    if precision == "bf16":
        return lambda: torch.autocast(device_type, dtype=torch.bfloat16)
    return contextlib.nullcontext


def measure(step, model, opt, x, y, autocast, warmup, repeats, device, compiled):
    """Median wall and CPU seconds of `repeats` steps after `warmup` untimed ones, and for a
    compiled model the wall seconds of its first step (which compiles), run before the warm-up
    and not counted in it or in the step times."""
    cuda = device.type == "cuda"
    compile_s = None
    if compiled:
        t0 = time.perf_counter()
        step(model, opt, x, y, autocast)
        if cuda:
            torch.cuda.synchronize(device)
        compile_s = time.perf_counter() - t0
        # A graph's first runs after compiling can still be slow (autotuning, lazy loading).
        warmup = max(warmup, 1)
    for _ in range(warmup):
        step(model, opt, x, y, autocast)
    times, cpu_times = [], []
    for _ in range(repeats):
        if cuda:
            torch.cuda.synchronize(device)
        c0 = time.process_time()
        t0 = time.perf_counter()
        step(model, opt, x, y, autocast)
        if cuda:
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
        cpu_times.append(time.process_time() - c0)
    # CPU time of all threads (user + system): on a shared machine it depends far less on the
    # other jobs than the wall time does.
    return statistics.median(times), statistics.median(cpu_times), compile_s


def prepare(name, mode, device, x):
    """A fresh network (seed 0) in `mode`'s memory format, the module the steps call (compiled or
    not), its optimiser, and the batch in that memory format."""
    memory_format, compiled = MODES[mode]
    torch.manual_seed(0)
    model = MODELS[name]().to(device).to(memory_format=memory_format)
    opt = make_optimizer(model)
    if compiled:
        # Dynamo's caches hold graphs (and guards on module ids) of the previous networks; a
        # fresh start keeps every combination from hitting the recompilation limit.
        torch._dynamo.reset()
        runner = torch.compile(model)
    else:
        runner = model
    return model, runner, opt, x.contiguous(memory_format=memory_format)


def free_memory(device):
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def measure_one(args, name, workload, precision, mode, x, y, device):
    """One record: a fresh network and optimiser for every combination (otherwise each would start
    from weights, and momentum, that earlier ones at lr 0.1 had moved)."""
    model, runner, opt, xm = prepare(name, mode, device, x)
    autocast = set_precision(precision, device.type)
    step = STEPS[workload]
    # The steps switch the network between train and eval mode through `runner`; a compiled
    # wrapper shares the flag with the module it wraps.
    median_s, median_cpu_s, compile_s = measure(
        lambda _m, o, xx, yy, ac: step(runner, o, xx, yy, ac),
        model, opt, xm, y, autocast, args.warmup, args.repeats, device, MODES[mode][1])
    del model, runner, opt, xm
    free_memory(device)
    rec = {
        "model": name,
        "workload": workload,
        "precision": precision,
        "batch": args.batch,
        "warmup": args.warmup,
        "repeats": args.repeats,
        "median_ms": median_s * 1e3,
        "images_per_s": args.batch / median_s,
        "median_cpu_ms": median_cpu_s * 1e3,
        "mode": mode,
    }
    if compile_s is not None:
        rec["compile_s"] = compile_s
    return rec


def comma_list(parser, flag, value, allowed):
    names = [v.strip() for v in value.split(",") if v.strip()]
    if not names:
        parser.error(f"{flag}: empty list")
    unknown = [n for n in names if n not in allowed]
    if unknown:
        parser.error(f"{flag}: unknown name(s) {', '.join(unknown)}; choose from {', '.join(allowed)}")
    return names


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="PyTorch reference timings for `spat bench` (same workloads, shapes and JSON schema).",
    )
    p.add_argument("--device", default="cuda:0" if torch.cuda.is_available() else "cpu")
    p.add_argument("--models", default="resnet-18,wrn-34-10",
                   help=f"comma list of {', '.join(MODELS)}, or DeepMind's dm-wrn-D-W[-ACT] and "
                   "dm-preact-resnet-18|34[-ACT] (needs robustbench)")
    p.add_argument("--workloads", default=",".join(WORKLOADS), help=f"comma list of {', '.join(WORKLOADS)}")
    p.add_argument("--precisions", default=",".join(PRECISIONS), help=f"comma list of {', '.join(PRECISIONS)}")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--warmup", type=int, default=5, help="untimed steps before timing")
    p.add_argument("--repeats", type=int, default=20, help="timed steps; the median is reported")
    p.add_argument("--json", metavar="PATH", help="write the results here")
    p.add_argument("--cudnn-benchmark", action="store_true", help="set torch.backends.cudnn.benchmark")
    p.add_argument("--memory-format", choices=["contiguous", "channels_last"], default="contiguous",
                   help="tensor layout of the network and batch (ignored with --modes)")
    p.add_argument("--compile", action="store_true",
                   help="run the network through torch.compile (ignored with --modes)")
    p.add_argument("--modes", help=f"comma list of {', '.join(MODES)}, each measured in turn "
                   "(default: the one --memory-format and --compile name)")
    a = p.parse_args(argv)
    if a.modes is None:
        cl = a.memory_format == "channels_last"
        a.modes = ("compile-" if a.compile else "") + ("channels-last" if cl else "")
        a.modes = a.modes.rstrip("-") or "default"
    a.modes = comma_list(p, "--modes", a.modes, list(MODES))
    names = [n.strip() for n in a.models.split(",") if n.strip()]
    a.models = comma_list(p, "--models", a.models, list(MODELS) + [n for n in names if DM_NAME.match(n)])
    for name in a.models:
        if name not in MODELS:
            MODELS[name] = dm_model(name)
    a.workloads = comma_list(p, "--workloads", a.workloads, WORKLOADS)
    a.precisions = comma_list(p, "--precisions", a.precisions, PRECISIONS)
    if a.batch < 1:
        p.error("--batch must be at least 1")
    if a.warmup < 0:
        p.error("--warmup must not be negative")
    if a.repeats < 1:
        p.error("--repeats must be at least 1")
    try:
        a.torch_device = torch.device(a.device)
    except RuntimeError as e:
        p.error(f"--device {a.device}: {e}")
    if a.torch_device.type == "cuda":
        if not torch.cuda.is_available():
            p.error(f"--device {a.device}: CUDA is not available in this PyTorch build or machine")
        if a.torch_device.index is not None and a.torch_device.index >= torch.cuda.device_count():
            p.error(f"--device {a.device}: only {torch.cuda.device_count()} CUDA device(s)")
    elif a.torch_device.type != "cpu":
        p.error(f"--device {a.device}: only cpu and cuda devices are supported")
    return a


def main(argv=None):
    args = parse_args(argv)
    device = args.torch_device
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        torch.cuda.set_device(index)
        device_name = torch.cuda.get_device_name(index)
    else:
        device_name = "cpu"
    torch.backends.cudnn.benchmark = args.cudnn_benchmark

    gen = torch.Generator().manual_seed(0)
    x = torch.rand(args.batch, 3, 32, 32, generator=gen).to(device)
    y = torch.randint(0, NUM_CLASSES, (args.batch,), generator=gen).to(device)

    if device.type == "cpu":
        device_name = f"cpu ({torch.get_num_threads()} threads)"
    print(f"pytorch {torch.__version__} on {args.device} ({device_name}), batch {args.batch}, "
          f"warmup {args.warmup}, repeats {args.repeats}, modes {','.join(args.modes)}, "
          f"cudnn.benchmark {args.cudnn_benchmark}",
          file=sys.stderr, flush=True)
    records = []
    for name in args.models:
        for workload in args.workloads:
            for precision in args.precisions:
                for mode in args.modes:
                    rec = measure_one(args, name, workload, precision, mode, x, y, device)
                    records.append(rec)
                    compiled = rec.get("compile_s")
                    extra = f"  (first step, compiling: {compiled:.1f} s)" if compiled is not None else ""
                    print(f"{name:<10} {workload:<18} {precision:<5} {mode:<21} {rec['median_ms']:10.2f} ms "
                          f"{rec['images_per_s']:12.1f} img/s {rec['median_cpu_ms']:10.2f} CPU ms{extra}",
                          flush=True)

    if args.json:
        out = {
            "framework": "pytorch",
            "framework_version": torch.__version__,
            "device": args.device,
            "device_name": device_name,
            "records": records,
        }
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
            f.write("\n")
        print(f"wrote {args.json}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
