"""Golden fixtures for spat-attacks' AutoAttack, produced by the reference implementation
(fra31/auto-attack, commit a392200; `git clone https://github.com/fra31/auto-attack`) and by
torchattacks (PyPI) for the input normalisation.

Run from the repository root:
    python3 scripts/golden/autoattack.py --reference PATH/TO/auto-attack --data-dir ../shared/data

Writes, under crates/spat-attacks/tests/fixtures/:
- autoattack_replay.safetensors — exact replays, in float64 (torch.set_default_dtype), of the
  reference's APGD-CE, APGD-DLR and APGD-T runs from saved start points (per-iteration losses,
  step sizes and checkpoints captured from the reference's own loop variables with sys.settrace),
  its FAB-T and untargeted FAB (deterministic: no random start on a first run), its Square Attack
  with every random draw recorded, the DLR losses and their gradients, and the checkpoint
  schedules of several iteration budgets. A small tanh MLP on 3x8x8 inputs keeps it tiny.
- autoattack_mlp.safetensors — a ReLU MLP adversarially trained here on CIFAR-10 (PGD-7) and the
  reference's accuracies on the 512 test images of data/cifar-10-mini at eps 2/255: AutoAttack
  standard (clean and after each attack), each attack alone, and the `rand` version.
- normalized_pgd.safetensors — torchattacks PGD with set_normalization_used (no random start) on a
  model that sees (x - mean) / std.
"""
import argparse
import inspect
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

OUT = "crates/spat-attacks/tests/fixtures"


# --------------------------------------------------------------------------------------------
# Tracing the reference's loop variables


class LoopTrace:
    """Records, at the head of every iteration of APGDAttack.attack_single_run's loop, the step
    size, the checkpoint counter and the gradient, and at its return the loss record."""

    def __init__(self, apgd_cls):
        lines, start = inspect.getsourcelines(apgd_cls.attack_single_run)
        self.code = apgd_cls.attack_single_run.__code__
        self.head = next(start + i for i, l in enumerate(lines) if "grad2 = x_adv - x_adv_old" in l)
        self.steps, self.counters, self.min_abs_grad = [], [], float("inf")
        self.final = None

    def local(self, frame, event, arg):
        if event == "line" and frame.f_lineno == self.head:
            f = frame.f_locals
            self.steps.append(f["step_size"].flatten().clone())
            self.counters.append(int(f["counter3"]))
            self.min_abs_grad = min(self.min_abs_grad, f["grad"].abs().min().item())
        elif event == "return":
            self.final = {k: frame.f_locals[k] for k in ["loss_steps", "counter3"]}
        return self.local

    def outer(self, frame, event, arg):
        if frame.f_code is self.code:
            return self.local
        return None

    def run(self, fn, *a, **k):
        sys.settrace(self.outer)
        try:
            return fn(*a, **k)
        finally:
            sys.settrace(None)

    def checkpoints(self):
        # The counter is reset to 0 by a check, so a check ran after iteration i - 1 iff the
        # counter is 0 at the head of iteration i (i > 0), or at the return for the last one.
        n = len(self.counters)
        cps = [i - 1 for i in range(1, n) if self.counters[i] == 0]
        if self.final["counter3"] == 0:
            cps.append(n - 1)
        return cps


class Mlp64(nn.Module):
    def __init__(self, w1, w2):
        super().__init__()
        self.w1, self.w2 = w1, w2

    def forward(self, x):
        return torch.tanh(x.flatten(1) @ self.w1.t()) @ self.w2.t()


class float_is_identity:
    """FAB's attack_single_run casts its input with .float(); the replay runs the reference in
    float64, so for the call .float() leaves a floating tensor's dtype alone (masks still become
    0/1 floats, and nothing else changes)."""

    def __enter__(self):
        saved = self.saved = torch.Tensor.float
        torch.Tensor.float = lambda t, *a, **k: t if t.is_floating_point() else saved(t, *a, **k)

    def __exit__(self, *exc):
        torch.Tensor.float = self.saved


def replay_fixture(aa):
    from autoattack.autopgd_base import APGDAttack, APGDAttack_targeted
    from autoattack.fab_pt import FABAttack_PT
    from autoattack.square import SquareAttack

    torch.set_default_dtype(torch.float64)
    gen = torch.Generator().manual_seed(11)
    n, eps = 8, 6 / 255
    out = {}

    # DLR losses and their gradients on random logits, the label the top class in some rows.
    logits = torch.randn((6, 10), generator=gen) * 3
    labels = torch.tensor([0, 1, 2, 3, 4, 5])
    labels[:3] = logits[:3].argmax(1)
    targets = logits.argsort(1, descending=True)[:, 1]
    targets[3:] = torch.tensor([9, 8, 7])
    probe = APGDAttack(None, eps=eps, device="cpu")
    probe_t = APGDAttack_targeted(None, eps=eps, device="cpu")
    probe_t.y_target = targets
    for name, fn in [("dlr", probe.dlr_loss), ("dlr_targeted", probe_t.dlr_loss_targeted)]:
        z = logits.clone().requires_grad_(True)
        loss = fn(z, labels)
        (g,) = torch.autograd.grad(loss.sum(), [z])
        out[f"{name}_value"], out[f"{name}_grad"] = loss.detach(), g
    out["dlr_logits"], out["dlr_labels"], out["dlr_targets"] = logits, labels, targets

    for attempt in range(100):
        x = torch.rand((n, 3, 8, 8), generator=gen)
        w1 = torch.randn((16, 192), generator=gen) * 0.3
        w2 = torch.randn((10, 16), generator=gen)
        model = Mlp64(w1, w2)
        with torch.no_grad():
            y = model(x).argmax(1)
        y[-1] = (y[-1] + 1) % 10  # one example misclassified from the start
        t = 2 * torch.rand(x.shape, generator=gen) - 1
        start = x + eps * t / (t.abs().flatten(1).max(1)[0].view(-1, 1, 1, 1) + 1e-12)
        rec = {"x": x, "y": y, "w1": w1, "w2": w2, "eps": torch.tensor([eps]), "start": start}
        ok = True
        runs = [("ce", 100, APGDAttack, "ce"), ("dlr", 100, APGDAttack, "dlr"),
                ("ce20", 20, APGDAttack, "ce"), ("t", 100, APGDAttack_targeted, None)]
        for tag, iters, cls, loss in runs:
            if cls is APGDAttack:
                atk = cls(model, n_iter=iters, eps=eps, loss=loss, device="cpu")
            else:
                atk = cls(model, n_iter=iters, eps=eps, device="cpu")
                with torch.no_grad():
                    atk.y_target = model(x).sort(dim=1)[1][:, -2]
                rec["apgd_t_targets"] = atk.y_target.clone()
            atk.init_hyperparam(x)
            tr = LoopTrace(APGDAttack)
            x_best, acc, loss_best, x_best_adv = tr.run(atk.attack_single_run, x, y, x_init=start)
            rec[f"apgd_{tag}_x_best"] = x_best.detach()
            rec[f"apgd_{tag}_x_best_adv"] = x_best_adv.detach()
            rec[f"apgd_{tag}_robust"] = acc.to(torch.uint8)
            rec[f"apgd_{tag}_loss_best"] = loss_best.detach()
            rec[f"apgd_{tag}_losses"] = tr.final["loss_steps"].detach()
            rec[f"apgd_{tag}_step_sizes"] = torch.stack(tr.steps)
            rec[f"apgd_{tag}_checkpoints"] = torch.tensor(tr.checkpoints())
            ok &= tr.min_abs_grad > 1e-9
        fooled = (1 - rec["apgd_ce_robust"]).sum().item()
        # Some but not all examples fooled, and a gradient everywhere clearly signed.
        if ok and 2 <= fooled <= n - 3:
            break
    else:
        raise SystemExit("no well-conditioned draw found")
    out.update(rec)

    # Checkpoint schedules as the reference's loop runs them.
    for iters in [1, 5, 10, 20, 50, 100, 1000]:
        atk = APGDAttack(model, n_iter=iters, eps=eps, device="cpu")
        atk.init_hyperparam(x[:1])
        tr = LoopTrace(APGDAttack)
        tr.run(atk.attack_single_run, x[:1], y[:1], x_init=start[:1])
        out[f"schedule_{iters}"] = torch.tensor(tr.checkpoints())

    # FAB-T (9 targets, one run each: deterministic) and an untargeted first run.
    with float_is_identity():
        fab = FABAttack_PT(model, n_restarts=1, n_iter=100, eps=eps, seed=0, norm="Linf",
                           verbose=False, device="cpu", targeted=True, n_target_classes=9)
        out["fab_t_adv"] = fab.perturb(x, y).detach()
        fab_u = FABAttack_PT(model, n_restarts=1, n_iter=100, eps=eps, seed=0, norm="Linf",
                             verbose=False, device="cpu", targeted=False)
        out["fab_single_run_adv"] = fab_u.attack_single_run(x, y, use_rand_start=False,
                                                           is_targeted=False).detach()

    # Square Attack with its random draws recorded.
    class RecordingSquare(SquareAttack):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            self.choices, self.ints = [], []

        def random_choice(self, shape):
            t = super().random_choice(shape)
            self.choices.append(t.flatten().clone())
            return t

        def random_int(self, low=0, high=1, shape=[1]):
            t = super().random_int(low, high, shape)
            self.ints.append(int(t.flatten()[0]))
            return t

    sq = RecordingSquare(model, p_init=0.8, n_queries=1000, eps=eps, norm="Linf", n_restarts=1,
                         seed=0, verbose=False, device="cpu", resc_schedule=False)
    out["square_adv"] = sq.perturb(x, y).detach()
    out["square_stripes"] = sq.choices[0]
    out["square_channel_signs"] = torch.cat(sq.choices[1:]) if len(sq.choices) > 1 else torch.zeros(0)
    out["square_ints"] = torch.tensor(sq.ints)
    out["square_queries"] = torch.tensor([1000])
    save_file({k: v.contiguous() for k, v in out.items()},
              os.path.join(OUT, "autoattack_replay.safetensors"))
    torch.set_default_dtype(torch.float32)
    print("replay: APGD-CE fooled", fooled, "of", n)


# --------------------------------------------------------------------------------------------
# Accuracy-level comparison on real CIFAR-10


def read_cifar(path, count=None):
    raw = np.fromfile(path, dtype=np.uint8).reshape(-1, 3073)
    if count is not None:
        raw = raw[:count]
    y = torch.from_numpy(raw[:, 0].astype(np.int64))
    x = torch.from_numpy(raw[:, 1:].copy()).float().div(255).view(-1, 3, 32, 32)
    return x, y


class Mlp(nn.Module):
    def __init__(self, hidden):
        super().__init__()
        self.fc1 = nn.Linear(3072, hidden)
        self.fc2 = nn.Linear(hidden, 10)

    def forward(self, x):
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


def pgd_train(model, x, y, eps, gen, epochs=3, batch=128, steps=7):
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for epoch in range(epochs):
        perm = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), batch):
            xb, yb = x[perm[i:i + batch]], y[perm[i:i + batch]]
            delta = (torch.rand(xb.shape, generator=gen) * 2 - 1) * eps
            for _ in range(steps):
                delta.requires_grad_(True)
                loss = F.cross_entropy(model((xb + delta).clamp(0, 1)), yb)
                (g,) = torch.autograd.grad(loss, [delta])
                delta = (delta.detach() + eps / 4 * g.sign()).clamp(-eps, eps)
            opt.zero_grad()
            F.cross_entropy(model((xb + delta).clamp(0, 1)), yb).backward()
            opt.step()
        print(f"epoch {epoch}: loss {loss.item():.3f}", flush=True)


def reference_accuracies(model, x, y, eps, norm):
    """The reference AutoAttack's accuracies (percent) on (x, y) at `eps` in `norm` ('Linf' or
    'L2'): the standard version (clean, after each attack, final; an attack the reference skips
    because nothing is left to attack keeps the accuracy before it), each attack alone, and the
    rand version."""
    from autoattack import AutoAttack

    adv = AutoAttack(model, norm=norm, eps=eps, version="standard", seed=0, device="cpu")
    acc = {}
    orig_log = adv.logger.log

    def capture(msg):
        orig_log(msg)
        for key, prefix in [("clean", "initial accuracy: "), ("apgd-ce", "robust accuracy after APGD-CE: "),
                            ("apgd-t", "robust accuracy after APGD-T: "), ("fab-t", "robust accuracy after FAB-T: "),
                            ("square", "robust accuracy after SQUARE: ")]:
            if msg.startswith(prefix):
                acc[key] = float(msg[len(prefix):].split("%")[0])

    adv.logger.log = capture
    x_adv = adv.run_standard_evaluation(x, y, bs=512)
    with torch.no_grad():
        final = (model(x_adv).argmax(1) == y).float().mean().item() * 100
    stages = [acc["clean"]]
    for key in ["apgd-ce", "apgd-t", "fab-t", "square"]:
        stages.append(acc.get(key, stages[-1]))
    out = {"standard": torch.tensor(stages + [final])}
    indiv = adv.run_standard_evaluation_individual(x, y, bs=512)
    with torch.no_grad():
        out["individual"] = torch.tensor([(model(indiv[k]).argmax(1) == y).float().mean().item() * 100
                                          for k in ["apgd-ce", "apgd-t", "fab-t", "square"]])

    rand = AutoAttack(model, norm=norm, eps=eps, version="rand", seed=0, device="cpu")
    x_adv = rand.run_standard_evaluation(x, y, bs=512)
    with torch.no_grad():
        out["rand"] = torch.tensor([(model(x_adv).argmax(1) == y).float().mean().item() * 100])
    return out


def accuracy_fixture(aa, data_dir):
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(3)
    # An MLP adversarially trained at 8/255 collapses to chance; at 2/255 it learns.
    eps = 2 / 255
    xs, ys = [], []
    for i in range(1, 6):
        xb, yb = read_cifar(os.path.join(data_dir, "cifar-10-batches-bin", f"data_batch_{i}.bin"))
        xs.append(xb)
        ys.append(yb)
    model = Mlp(32)
    pgd_train(model, torch.cat(xs), torch.cat(ys), eps, gen)
    model.eval()
    x, y = read_cifar("data/cifar-10-mini/test_batch.bin")
    out = {f"weights.{k}": v.detach().clone() for k, v in model.state_dict().items()}
    out["eps"] = torch.tensor([eps])

    out.update(reference_accuracies(model, x, y, eps, "Linf"))
    save_file({k: v.contiguous() for k, v in out.items()}, os.path.join(OUT, "autoattack_mlp.safetensors"))
    print("standard", out["standard"].tolist(), "individual", out["individual"].tolist(), "rand", out["rand"].tolist())


# --------------------------------------------------------------------------------------------
# Input normalisation, against torchattacks


def normalized_fixture():
    import torchattacks

    gen = torch.Generator().manual_seed(5)
    mean, std = [0.4914, 0.4822, 0.4465], [0.2471, 0.2435, 0.2616]
    for _ in range(100):
        x = torch.rand((4, 3, 8, 8), generator=gen)
        y = torch.tensor([1, 4, 6, 8])
        w1 = torch.randn((16, 192), generator=gen) * 0.05
        w2 = torch.randn((10, 16), generator=gen)
        model = lambda z: torch.tanh(z.flatten(1) @ w1.t()) @ w2.t()

        class Net(nn.Module):
            def forward(self, z):
                return model(z)

        atk = torchattacks.PGD(Net(), eps=8 / 255, alpha=2 / 255, steps=5, random_start=False)
        atk.set_normalization_used(mean=mean, std=std)
        m = torch.tensor(mean).view(1, 3, 1, 1)
        s = torch.tensor(std).view(1, 3, 1, 1)
        # torchattacks 3.5 takes and returns normalised images once set_normalization_used is
        # called: it un-normalises, attacks in pixel space through a model that normalises, and
        # normalises the result.
        adv = atk((x - m) / s, y) * s + m
        # Replay of the same path (from the un-normalised start torchattacks works from) with
        # the gradients' smallest magnitude, so that float32 summation order cannot flip a step.
        x0 = ((x - m) / s) * s + m
        xa, min_abs = x0.clone(), float("inf")
        for _ in range(5):
            xa.requires_grad_(True)
            (g,) = torch.autograd.grad(F.cross_entropy(model((xa - m) / s), y), [xa])
            min_abs = min(min_abs, g.abs().min().item())
            xa = xa.detach() + 2 / 255 * g.sign()
            xa = torch.clamp(x0 + torch.clamp(xa - x0, -8 / 255, 8 / 255), 0, 1)
        if min_abs > 1e-7 and torch.allclose(xa, adv, atol=1e-6):
            save_file({"x": x, "y": y, "w1": w1, "w2": w2, "mean": torch.tensor(mean),
                       "std": torch.tensor(std), "adv": adv.contiguous()},
                      os.path.join(OUT, "normalized_pgd.safetensors"))
            return
    raise SystemExit("no well-conditioned draw found")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--reference", default=os.environ.get("AUTOATTACK_DIR", "../auto-attack"),
                   help="checkout of fra31/auto-attack (the folder holding autoattack/)")
    p.add_argument("--data-dir", default=os.environ.get("SPAT_DATA_DIR", "../shared/data"))
    p.add_argument("--only", choices=["replay", "accuracy", "normalized"])
    a = p.parse_args()
    sys.path.insert(0, a.reference)
    import autoattack

    torch.set_num_threads(2)
    if a.only in (None, "replay"):
        replay_fixture(autoattack)
    if a.only in (None, "normalized"):
        normalized_fixture()
    if a.only in (None, "accuracy"):
        accuracy_fixture(autoattack, a.data_dir)


if __name__ == "__main__":
    main()
