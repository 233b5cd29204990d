"""Golden fixture for spat-attacks' PgdRestarts: semisup-adv's (RST's) evaluation PGD, written from
its description in yaircarmon/semisup-adv (commit 3f05b28) `attack_pgd.py` and
`attack_evaluation.py`:

* the start is x + delta with delta uniform in [-eps, eps], not clipped to [0, 1] (attack_pgd.py
  lines 24-26); the start itself is not judged;
* each step: delta <- clamp(delta + step * sign(grad CE), -eps, eps), then x + delta clipped to
  [0, 1] (lines 39-44); after each step the iterate is classified (lines 46-48);
* an example is robust only if it is classified correctly after every step of every restart
  (attack_evaluation.py lines 58-60).

The model is a small MLP with a sine activation, sin(x W1^T) W2^T: on it sign-gradient steps of
0.01 overshoot often enough that some examples are misclassified at an intermediate iterate and
classified correctly again at the last, which is what tells the every-iterate rule from judging
the last iterate. The starts are saved so that spat replays them.

Run from the repository root:  /tmp/tv/bin/python scripts/golden/rst_pgd.py
Writes crates/spat-attacks/tests/fixtures/rst_pgd_golden.safetensors.
"""
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

EPS = 0.031
STEP = 0.01
STEPS = 20
RESTARTS = 3
N = 16
gen = torch.Generator().manual_seed(11)


def net(x, w1, w2):
    return torch.sin(x.flatten(1) @ w1.t()) @ w2.t()


def rst_pgd(x, y, start, w1, w2):
    """One restart: per-step correctness (STEPS x N), the last iterate, and the smallest |gradient|
    and smallest top-2 logit margin seen (to reject ill-conditioned draws)."""
    delta = (start - x).clone()
    correct = []
    min_abs_grad, min_margin = float("inf"), float("inf")
    for _ in range(STEPS):
        delta.requires_grad_(True)
        # Summed rather than averaged as in attack_pgd.py: the same signs, larger gradients.
        loss = F.cross_entropy(net(x + delta, w1, w2), y, reduction="sum")
        (g,) = torch.autograd.grad(loss, [delta])
        min_abs_grad = min(min_abs_grad, g.abs().min().item())
        delta = (delta.detach() + STEP * g.sign()).clamp(-EPS, EPS)
        delta = torch.min(torch.max(delta, -x), 1 - x)
        x_k = torch.clamp(x + delta, 0, 1)
        logits = net(x_k, w1, w2)
        top2 = logits.topk(2, dim=1).values
        min_margin = min(min_margin, (top2[:, 0] - top2[:, 1]).min().item())
        correct.append((logits.argmax(1) == y).float())
    return torch.stack(correct), x_k, min_abs_grad, min_margin


def main():
    for _ in range(500):
        x = torch.rand((N, 3, 4, 4), generator=gen)
        w1 = torch.randn((16, 48), generator=gen) * 0.75
        w2 = torch.randn((10, 16), generator=gen) * 0.25
        # Labels the model gets right on clean images, so that every outcome of the attack occurs.
        y = net(x, w1, w2).argmax(1)
        starts = x + torch.empty((RESTARTS,) + x.shape).uniform_(-EPS, EPS, generator=gen)
        results = [rst_pgd(x, y, starts[r], w1, w2) for r in range(RESTARTS)]
        correct = torch.stack([c for c, _, _, _ in results])  # RESTARTS x STEPS x N
        robust = correct.prod(0).prod(0)
        robust_last = correct[:, -1, :].prod(0)
        # Every kind of example: never fooled, fooled only at some middle iterate, fooled at the end.
        kinds_present = (
            robust.sum() > 0
            and (robust_last - robust).sum() > 0
            and (1 - robust_last).sum() > 0
        )
        ok = all(g > 1e-6 and m > 1e-4 for _, _, g, m in results)
        if kinds_present and ok:
            out = {
                "x": x,
                "y": y,
                "w1": w1,
                "w2": w2,
                "starts": starts,
                "correct": correct,
                "robust": robust,
                "robust_last": robust_last,
                "last": torch.stack([x_k for _, x_k, _, _ in results]),
            }
            save_file(out, "crates/spat-attacks/tests/fixtures/rst_pgd_golden.safetensors")
            print(
                f"robust {int(robust.sum())}/{N}, robust at the last iterates {int(robust_last.sum())}/{N}"
            )
            return
    raise SystemExit("no well-conditioned draw with every kind of example found")


if __name__ == "__main__":
    main()
