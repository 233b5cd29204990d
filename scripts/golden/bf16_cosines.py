"""Cosine between fp32 and bf16-autocast input gradients of the reference networks on CPU, for the
tolerances of crates/spat-models/tests/precision.rs.  Run from the repository root:
python3 scripts/golden/bf16_cosines.py   (needs torch)."""
import importlib.util
import torch
spec = importlib.util.spec_from_file_location("ref", "bench/pytorch_reference.py"); ref = importlib.util.module_from_spec(spec); spec.loader.exec_module(ref)
import torch.nn.functional as F
torch.manual_seed(7)
for name, mk in [("tiny", lambda: ref.WideResNet(10, 1, base=8)), ("resnet18w8", lambda: ref.ResNet(ref.BasicBlock, [2,2,2,2], base=8) if 'base' in ref.ResNet.__init__.__code__.co_varnames else None)]:
    m = mk()
    if m is None: print("no base arg"); continue
    for mode in ["eval", "train"]:
        cs = []
        for trial in range(5):
            x = torch.rand(6, 3, 32, 32)
            up = torch.rand(6, 10) * 2 - 1
            def g(bf):
                xx = x.clone().requires_grad_()
                m.train(mode == "train")
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf):
                    out = m(xx)
                (out.float() * up).sum().backward()
                return xx.grad.flatten()
            a, b = g(False), g(True)
            cs.append(F.cosine_similarity(a, b, dim=0).item())
        print(name, mode, ["%.3f" % c for c in cs])
