"""Golden fixture for spat-attacks: reference-style PGD (TRADES/MART code: signed step, then
torch.min(torch.max(x_adv, x - eps), x + eps), then clamp to [0, 1]) on a small tanh MLP, for the CE,
label-smoothed (alpha = 0.3), KL and CW (kappa = 50) losses, from saved start points.

Run from the repository root:  python3 scripts/golden/attacks.py
Writes crates/spat-attacks/tests/fixtures/pgd_golden.safetensors.
"""
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

EPS = 8 / 255
STEP = 2 / 255
STEPS = 5
gen = torch.Generator().manual_seed(7)


def net(x, w1, w2):
    return torch.tanh(x.flatten(1) @ w1.t()) @ w2.t()


def loss_fn(kind, logits, y, clean_probs):
    if kind == "ce":
        return F.cross_entropy(logits, y, reduction="sum")
    if kind == "ls":
        a, k = 0.3, logits.shape[1]
        target = torch.full_like(logits, a / (k - 1))
        target.scatter_(1, y.unsqueeze(1), 1 - a)
        return -(target * F.log_softmax(logits, 1)).sum()
    if kind == "kl":
        return F.kl_div(F.log_softmax(logits, 1), clean_probs, reduction="sum")
    if kind == "cw":
        onehot = F.one_hot(y, logits.shape[1]).float()
        real = (onehot * logits).sum(1)
        other = ((1 - onehot) * logits - onehot * 10000).max(1)[0]
        return (-torch.clamp(real - other + 50.0, min=0)).sum()
    raise ValueError(kind)


def pgd(kind, x, y, start, w1, w2):
    clean_probs = F.softmax(net(x, w1, w2), 1).detach()
    x_adv = torch.clamp(torch.min(torch.max(start, x - EPS), x + EPS), 0, 1)
    min_abs_grad = float("inf")
    for _ in range(STEPS):
        x_adv.requires_grad_(True)
        loss = loss_fn(kind, net(x_adv, w1, w2), y, clean_probs)
        (g,) = torch.autograd.grad(loss, [x_adv])
        min_abs_grad = min(min_abs_grad, g.abs().min().item())
        x_adv = x_adv.detach() + STEP * g.sign()
        x_adv = torch.clamp(torch.min(torch.max(x_adv, x - EPS), x + EPS), 0, 1)
    return x_adv.detach(), min_abs_grad


def main():
    for _ in range(100):
        x = torch.rand((4, 3, 8, 8), generator=gen)
        y = torch.tensor([0, 3, 5, 9])
        w1 = torch.randn((16, 192), generator=gen) * 0.2
        w2 = torch.randn((10, 16), generator=gen)
        uniform = x + torch.empty_like(x).uniform_(-EPS, EPS, generator=gen)
        gauss = x + 0.001 * torch.randn(x.shape, generator=gen)
        out = {"x": x, "y": y, "w1": w1, "w2": w2, "start_uniform": uniform, "start_gaussian": gauss}
        # A gradient element within float32 noise of zero could flip its sign between two correct
        # implementations; draw again until every gradient is clearly signed.
        ok = True
        for kind in ["ce", "ls", "kl", "cw"]:
            start = gauss if kind == "kl" else uniform
            out[f"adv_{kind}"], m = pgd(kind, x, y, start, w1, w2)
            ok &= m > 1e-6
        if ok:
            save_file(out, "crates/spat-attacks/tests/fixtures/pgd_golden.safetensors")
            return
    raise SystemExit("no well-conditioned draw found")


if __name__ == "__main__":
    main()
