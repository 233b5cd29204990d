"""Golden fixtures for spat-attacks' L2 threat model, produced by the reference implementation
(fra31/auto-attack, commit a392200; `git clone https://github.com/fra31/auto-attack`) and by
torchattacks 3.5.1 (PyPI) for PGD-L2.

Run from the repository root (the helpers of scripts/golden/autoattack.py are reused):
    python3 scripts/golden/autoattack_l2.py --reference PATH/TO/auto-attack --data-dir ../shared/data

Writes, under crates/spat-attacks/tests/fixtures/:
- autoattack_l2_replay.safetensors — exact replays, in float64 (torch.set_default_dtype), of the
  reference with norm='L2' on a small tanh MLP: APGD-CE and APGD-T runs from a saved
  start, 40 iterations each (per-iteration losses, step sizes and checkpoints traced from the
  reference's loop; a draw where some loss changes by less than 1e-12 of itself between steps, or
  some gradient's norm falls below 1e-9, is skipped: whether such a loss rose, or where such a
  gradient points, is rounding noise that decides the step halving or the step),
  `projection_l2` of fab_projections.py on rows that reach each of its three cases, FAB-T and an
  untargeted FAB first run, and Square Attack with every random draw recorded (its sign draws,
  window positions and the coin of each pattern's transposition) on 3x16x16 images, whose L2
  starting grid is 5x5 tiles of side 3.
- pgd_l2.safetensors — torchattacks' PGDL2 in float64 on a tanh MLP: its random start (the
  normal and uniform draws it made, and the start itself) and the adversarial examples from it.
- autoattack_l2_mlp.safetensors — a ReLU MLP adversarially trained here on CIFAR-10 with PGD-L2
  (7 steps of eps/4 at eps 0.5) and the reference's accuracies on the 512 test images of
  data/cifar-10-mini at eps 0.5 (RobustBench's CIFAR-10 L2 radius): AutoAttack standard (clean
  and after each attack), each attack alone, and the `rand` version.
"""
import argparse
import importlib.util
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

OUT = "crates/spat-attacks/tests/fixtures"
HERE = os.path.dirname(os.path.abspath(__file__))

# The L-inf script's helpers (loop tracing, models, CIFAR reader), loaded under another name:
# `autoattack` is the reference's package.
_spec = importlib.util.spec_from_file_location("golden_autoattack", os.path.join(HERE, "autoattack.py"))
golden = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(golden)


def l2_unit(t):
    return t / ((t ** 2).flatten(1).sum(-1).sqrt().view(-1, *[1] * (t.dim() - 1)) + 1e-12)


def projection_cases(gen):
    """Rows for projection_l2: points in the box, hyperplanes whose offset puts the projection
    inside the box (c4), out of reach (c3) or on a face (the bisection, c2), and weights with
    exact and tiny zeros."""
    from autoattack.fab_projections import projection_l2

    d, rows = 48, 36
    t = torch.rand((rows, d), generator=gen)
    w = torch.randn((rows, d), generator=gen)
    w[::5, :7] = 0.0
    w[1::7, 3:9] = 1e-9
    dot = (w * t).sum(1)
    spread = w.abs().sum(1)
    # Offsets from just past the point to far beyond what the box allows, on both sides.
    scale = torch.tensor([0.01, 0.1, 0.3, 0.6, 1.0, 3.0]).repeat(rows // 6)
    side = torch.tensor([1.0, -1.0]).repeat(rows // 2)
    b = dot + side * scale * spread
    out = projection_l2(t.clone(), w.clone(), b.clone())
    return {"proj_points": t, "proj_w": w, "proj_b": b, "proj_out": out}


class NormTrace(golden.LoopTrace):
    """LoopTrace that also records the smallest per-example gradient norm at the loop's head: an
    L2 step follows the normalised gradient, which for a vanishing gradient is rounding noise."""

    def __init__(self, apgd_cls):
        super().__init__(apgd_cls)
        self.min_grad_norm = float("inf")

    def local(self, frame, event, arg):
        if event == "line" and frame.f_lineno == self.head:
            norms = frame.f_locals["grad"].flatten(1).norm(dim=1)
            self.min_grad_norm = min(self.min_grad_norm, norms.min().item())
        return super().local(frame, event, arg)


def apgd_runs(model, x, y, start, eps, iters):
    from autoattack.autopgd_base import APGDAttack, APGDAttack_targeted

    rec, min_change, min_grad = {}, float("inf"), float("inf")
    # No APGD-DLR: once the model is fooled, DLR drives the label to the third largest logit,
    # where the loss sits at (z1 - z3) / (z1 - z3 + 1e-12) and its gradient is rounding noise
    # (norm ~1e-13 in every draw tried), which an L2 step then follows at full length. Its L2 path
    # is APGD-CE's with the DLR loss, each replayed on its own (here and in the L-inf fixture).
    for tag, cls, loss in [("ce", APGDAttack, "ce"), ("t", APGDAttack_targeted, None)]:
        if cls is APGDAttack:
            atk = cls(model, n_iter=iters, norm="L2", eps=eps, loss=loss, device="cpu")
        else:
            atk = cls(model, n_iter=iters, norm="L2", eps=eps, device="cpu")
            with torch.no_grad():
                atk.y_target = model(x).sort(dim=1)[1][:, -2]
            rec["apgd_t_targets"] = atk.y_target.clone()
        atk.init_hyperparam(x)
        tr = NormTrace(APGDAttack)
        x_best, acc, loss_best, x_best_adv = tr.run(atk.attack_single_run, x, y, x_init=start)
        rec[f"apgd_{tag}_x_best"] = x_best.detach()
        rec[f"apgd_{tag}_x_best_adv"] = x_best_adv.detach()
        rec[f"apgd_{tag}_robust"] = acc.to(torch.uint8)
        rec[f"apgd_{tag}_loss_best"] = loss_best.detach()
        rec[f"apgd_{tag}_losses"] = tr.final["loss_steps"].detach()
        rec[f"apgd_{tag}_step_sizes"] = torch.stack(tr.steps)
        rec[f"apgd_{tag}_checkpoints"] = torch.tensor(tr.checkpoints())
        # How clearly each step's loss differs from the last: where it changes only in the last
        # digits (a loss that has converged), whether it "rose" depends on summation order.
        losses = tr.final["loss_steps"].detach()
        change = ((losses[1:] - losses[:-1]).abs() / (1 + losses[1:].abs())).min().item()
        min_change = min(min_change, change)
        min_grad = min(min_grad, tr.min_grad_norm)
    return rec, min_change, min_grad


def recording_square(*a, **k):
    """The reference's SquareAttack with its random draws recorded, in the order it makes them."""
    from autoattack.square import SquareAttack

    class Recording(SquareAttack):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            self.choices, self.ints, self.flips = [], [], []

        def random_choice(self, shape):
            t = super().random_choice(shape)
            self.choices.append(t.flatten().clone())
            return t

        def random_int(self, low=0, high=1, shape=[1]):
            t = super().random_int(low, high, shape)
            self.ints.append(int(t.flatten()[0]))
            return t

        def eta(self, s):
            # eta's one draw is `torch.rand([1]) > 0.5`, after its deterministic rectangles: peek
            # at it, then let the reference draw it again.
            state = torch.get_rng_state()
            self.flips.append(bool(torch.rand([1]) > 0.5))
            torch.set_rng_state(state)
            return super().eta(s)

    return Recording(*a, **k)


def replay_fixture():
    from autoattack.fab_pt import FABAttack_PT

    torch.set_default_dtype(torch.float64)
    gen = torch.Generator().manual_seed(21)
    # 40 iterations (checkpoints after 7, 14, 20, 25, 29, 32, 34, 36 and 38): with 100, an
    # example's loss converges on the sphere, or DLR's settles at 1 with the label third, and
    # changes in its last digits only.
    n, eps, iters = 8, 0.5, 40
    out = projection_cases(gen)
    for attempt in range(300):
        x = torch.rand((n, 3, 8, 8), generator=gen)
        w1 = torch.randn((16, 192), generator=gen) * 0.3
        w2 = torch.randn((10, 16), generator=gen)
        model = golden.Mlp64(w1, w2)
        with torch.no_grad():
            z = model(x)
        # One example misclassified from the start, labelled with its least likely class: DLR's
        # gradient vanishes where the label is the third largest logit.
        y = z.argmax(1)
        y[-1] = z[-1].argmin()
        start = x + eps * l2_unit(torch.randn(x.shape, generator=gen))
        rec = {"x": x, "y": y, "w1": w1, "w2": w2, "eps": torch.tensor([eps]), "start": start,
               "apgd_steps": torch.tensor([iters])}
        runs, min_change, min_grad = apgd_runs(model, x, y, start, eps, iters)
        rec.update(runs)
        fooled = (1 - rec["apgd_ce_robust"]).sum().item()
        if min_change > 1e-12 and min_grad > 1e-9 and 2 <= fooled <= n - 2:
            print(f"APGD draw {attempt}: smallest relative loss change {min_change:.2e}, "
                  f"smallest gradient norm {min_grad:.2e}")
            break
    else:
        raise SystemExit("no well-conditioned draw found")
    out.update(rec)

    with golden.float_is_identity():
        fab = FABAttack_PT(model, n_restarts=1, n_iter=100, eps=eps, seed=0, norm="L2",
                           verbose=False, device="cpu", targeted=True, n_target_classes=9)
        out["fab_t_adv"] = fab.perturb(x, y).detach()
        fab_u = FABAttack_PT(model, n_restarts=1, n_iter=100, eps=eps, seed=0, norm="L2",
                             verbose=False, device="cpu", targeted=False)
        out["fab_single_run_adv"] = fab_u.attack_single_run(x, y, use_rand_start=False,
                                                           is_targeted=False).detach()

    # Square on 3x16x16 images: its L2 starting grid is 5x5 tiles of side 3.
    for attempt in range(100):
        sx = torch.rand((n, 3, 16, 16), generator=gen)
        sw1 = torch.randn((16, 768), generator=gen) * 0.15
        sw2 = torch.randn((10, 16), generator=gen)
        smodel = golden.Mlp64(sw1, sw2)
        with torch.no_grad():
            sy = smodel(sx).argmax(1)
        sy[-1] = (sy[-1] + 1) % 10
        sq = recording_square(smodel, p_init=0.8, n_queries=1000, eps=1.0, norm="L2", n_restarts=1,
                             seed=0, verbose=False, device="cpu", resc_schedule=False)
        adv = sq.perturb(sx, sy).detach()
        with torch.no_grad():
            fooled = (smodel(adv).argmax(1) != sy).sum().item() - 1
        if 2 <= fooled <= n - 3:
            break
    else:
        raise SystemExit("no Square draw fooling some but not all examples found")
    out.update({"square_x": sx, "square_y": sy, "square_w1": sw1, "square_w2": sw2,
                "square_eps": torch.tensor([1.0]), "square_adv": adv,
                "square_signs": torch.cat(sq.choices), "square_ints": torch.tensor(sq.ints),
                "square_flips": torch.tensor(sq.flips, dtype=torch.uint8),
                "square_queries": torch.tensor([1000])})
    save_file({k: v.contiguous() for k, v in out.items()},
              os.path.join(OUT, "autoattack_l2_replay.safetensors"))
    torch.set_default_dtype(torch.float32)
    print("L2 replay: APGD-CE fooled", fooled_apgd(out), "of", n, "; Square fooled", fooled, "of", n - 1)


def fooled_apgd(out):
    return int((1 - out["apgd_ce_robust"]).sum().item())


def pgd_l2_fixture():
    """torchattacks' PGDL2 in float64, its random draws reproduced from the same seed."""
    import torchattacks

    torch.set_default_dtype(torch.float64)
    gen = torch.Generator().manual_seed(8)
    x = torch.rand((6, 3, 8, 8), generator=gen)
    w1 = torch.randn((16, 192), generator=gen) * 0.3
    w2 = torch.randn((10, 16), generator=gen)
    model = golden.Mlp64(w1, w2)
    y = torch.tensor([0, 3, 5, 7, 9, 2])
    eps, alpha, steps = 0.5, 0.1, 10
    atk = torchattacks.PGDL2(model, eps=eps, alpha=alpha, steps=steps, random_start=True)
    torch.manual_seed(4)
    adv = atk(x, y)
    # The same draws, in PGDL2's order: a normal per value, then a uniform per example.
    torch.manual_seed(4)
    gaussian = torch.empty_like(x).normal_()
    fractions = torch.zeros((len(x), 1, 1, 1)).uniform_(0, 1)
    n = gaussian.flatten(1).norm(p=2, dim=1).view(-1, 1, 1, 1)
    start = torch.clamp(x + gaussian * (fractions / n * eps), 0, 1)
    # PGDL2 without a random start, from x.
    plain = torchattacks.PGDL2(model, eps=eps, alpha=alpha, steps=steps, random_start=False)(x, y)
    save_file({"x": x, "y": y, "w1": w1, "w2": w2, "eps": torch.tensor([eps]),
               "alpha": torch.tensor([alpha]), "steps": torch.tensor([steps]),
               "gaussian": gaussian, "fractions": fractions.flatten(), "start": start,
               "adv": adv.detach(), "adv_no_start": plain.detach()},
              os.path.join(OUT, "pgd_l2.safetensors"))
    torch.set_default_dtype(torch.float32)
    print("pgd_l2: max L2 perturbation", ((adv - x) ** 2).flatten(1).sum(1).sqrt().max().item())


def pgd_l2_train(model, x, y, eps, gen, epochs=3, batch=128, steps=7):
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for epoch in range(epochs):
        perm = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), batch):
            xb, yb = x[perm[i:i + batch]], y[perm[i:i + batch]]
            delta = torch.randn(xb.shape, generator=gen)
            delta = l2_unit(delta) * eps * torch.rand((len(xb), 1, 1, 1), generator=gen)
            for _ in range(steps):
                delta.requires_grad_(True)
                loss = F.cross_entropy(model((xb + delta).clamp(0, 1)), yb)
                (g,) = torch.autograd.grad(loss, [delta])
                delta = delta.detach() + eps / 4 * l2_unit(g)
                norms = (delta ** 2).flatten(1).sum(1).sqrt().view(-1, 1, 1, 1)
                delta = delta * torch.clamp(eps / (norms + 1e-12), max=1.0)
            opt.zero_grad()
            F.cross_entropy(model((xb + delta).clamp(0, 1)), yb).backward()
            opt.step()
        print(f"epoch {epoch}: loss {loss.item():.3f}", flush=True)


def accuracy_fixture(data_dir, eps, out_name, hidden):
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(3)
    xs, ys = [], []
    for i in range(1, 6):
        xb, yb = golden.read_cifar(os.path.join(data_dir, "cifar-10-batches-bin", f"data_batch_{i}.bin"))
        xs.append(xb)
        ys.append(yb)
    model = golden.Mlp(hidden)
    pgd_l2_train(model, torch.cat(xs), torch.cat(ys), eps, gen)
    model.eval()
    x, y = golden.read_cifar("data/cifar-10-mini/test_batch.bin")
    out = {f"weights.{k}": v.detach().clone() for k, v in model.state_dict().items()}
    out["eps"] = torch.tensor([eps])

    out.update(golden.reference_accuracies(model, x, y, eps, "L2"))
    save_file({k: v.contiguous() for k, v in out.items()}, os.path.join(OUT, out_name))
    print("standard", out["standard"].tolist(), "individual", out["individual"].tolist(),
          "rand", out["rand"].tolist())


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--reference", default=os.environ.get("AUTOATTACK_DIR", "../auto-attack"),
                   help="checkout of fra31/auto-attack (the folder holding autoattack/)")
    p.add_argument("--data-dir", default=os.environ.get("SPAT_DATA_DIR", "../shared/data"))
    p.add_argument("--only", choices=["replay", "pgd", "accuracy"])
    p.add_argument("--eps", type=float, default=0.5, help="radius of the accuracy fixture")
    # With 32 hidden units (the L-inf fixture's), 42 of the 512 test images switched every unit
    # off (zero gradient, the reference warns) and clean accuracy was 20 %.
    p.add_argument("--hidden", type=int, default=64, help="hidden units of the fixture's MLP")
    p.add_argument("--out-name", default="autoattack_l2_mlp.safetensors")
    a = p.parse_args()
    sys.path.insert(0, a.reference)
    torch.set_num_threads(2)
    if a.only in (None, "replay"):
        replay_fixture()
    if a.only in (None, "pgd"):
        pgd_l2_fixture()
    if a.only in (None, "accuracy"):
        accuracy_fixture(a.data_dir, a.eps, a.out_name, a.hidden)


if __name__ == "__main__":
    main()
