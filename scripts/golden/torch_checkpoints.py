"""PyTorch checkpoints in every container and wrapping that spat reads, with PyTorch's logits.

Run from the repository root:  /tmp/tv/bin/python scripts/golden/torch_checkpoints.py
Writes tests/fixtures/torch/: the `tiny` preset's network (WRN-10-1, stem width 8) in the TRADES
layout, i.e. with the `sub_block1` that TRADES' WideResNet builds and never uses, saved as

  zip.pt                      bare state dict, torch.save (zip, PyTorch >= 1.6)
  legacy.pt                   the same, _use_new_zipfile_serialization=False (PyTorch 0.4-1.5)
  tar.pt                      the same in the pre-0.1.10 tar container, written by hand from
                              torch.serialization.legacy_load's reader and checked with torch.load
  wrapped_zip.pt              RST's layout: {'state_dict': {'module.' + k: v}, 'epoch', 'args'
                              (an argparse.Namespace), 'opt_state_dict'}, with sub_block1
  wrapped_legacy.pt           the same, legacy container
  views.pt                    every tensor a non-contiguous or offset view of one shared storage
  mixed_dtypes.pt             conv weights float16, BN float64, fc bfloat16 (logits_mixed)
  big_endian.pt               zip with byteorder 'big' (storages byte-swapped), checked with torch.load
  robustbench.pt              {'model.' + k: v, 'mu': (1,3,1,1), 'sigma': (1,3,1,1)}
  nan.pt                      one weight NaN, one inf
  int_weight.pt               conv1.weight stored as int64
  whole_model.pt              torch.save(model): a pickled module object
  evil.pt                     a zip whose data.pkl calls os.system (never run by spat)
  logits.safetensors          input (4,3,32,32), logits (eval mode, float32 weights),
                              logits_mixed (eval mode, weights as rounded in mixed_dtypes.pt)
"""
import argparse
import collections
import io
import os
import pickle
import struct
import sys
import tarfile
import zipfile

import torch
import torch.nn as nn
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(__file__))
import models  # noqa: E402  (the reference classes)

OUT = "tests/fixtures/torch"


class TradesWideResNet(models.WideResNet):
    """TRADES' WideResNet: an extra `sub_block1`, built and never used in forward."""

    def __init__(self, depth, widen, classes=10, base=16):
        super().__init__(depth, widen, classes, base)
        n = (depth - 4) // 6
        self.sub_block1 = models.WrnGroup(n, base, base * widen, 1)


def write_tar(path, sd):
    """The tar container exactly as torch.serialization.legacy_load reads it."""
    storages = collections.OrderedDict()
    tensors = collections.OrderedDict()
    for i, (k, v) in enumerate(sd.items()):
        s = v.untyped_storage()
        skey = storages.setdefault(s.data_ptr(), (len(storages), v))[0]
        tensors[k] = (i, skey, v)

    def member(tar, name, data):
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))

    buf = io.BytesIO()
    pickle.dump(len(storages), buf, protocol=2)
    for key, v in storages.values():
        storage_type = getattr(torch, {torch.float32: "FloatStorage", torch.int64: "LongStorage"}[v.dtype])
        pickle.dump((key, "cpu", storage_type), buf, protocol=2)
        data = bytes(v.untyped_storage())
        buf.write(struct.pack("<q", len(data) // v.element_size()))
        buf.write(data)
    pickle.dump([], buf, protocol=2)  # no storage views
    storages_bytes = buf.getvalue()

    buf = io.BytesIO()
    pickle.dump(len(tensors), buf, protocol=2)
    for key, skey, v in tensors.values():
        pickle.dump((key, skey, "torch.FloatTensor"), buf, protocol=2)
        buf.write(struct.pack("<i", v.dim()) + b"\0\0\0\0")
        buf.write(struct.pack(f"<{v.dim()}q", *v.shape))
        buf.write(struct.pack(f"<{v.dim()}q", *v.stride()))
        buf.write(struct.pack("<q", v.storage_offset()))
    tensors_bytes = buf.getvalue()

    class P(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, torch.Tensor):
                return str(tensors[self.name_of[id(obj)]][0])
            return None

    buf = io.BytesIO()
    p = P(buf, protocol=2)
    p.name_of = {id(v): k for k, v in sd.items()}
    p.dump(collections.OrderedDict((k, v) for k, v in sd.items()))
    pickle_bytes = buf.getvalue()

    sys_info = pickle.dumps(dict(protocol_version=1001, little_endian=True, type_sizes=dict(short=2, int=4, long=4)), protocol=2)
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        member(tar, "sys_info", sys_info)
        member(tar, "pickle", pickle_bytes)
        member(tar, "tensors", tensors_bytes)
        member(tar, "storages", storages_bytes)


def views_of_one_storage(sd):
    """Each tensor a view into one shared float storage: alternately offset + transposed
    (non-contiguous) and offset + contiguous. Integer buffers stay as they are."""
    floats = [(k, v) for k, v in sd.items() if v.is_floating_point()]
    total = sum(2 * v.numel() + 1 for _, v in floats)
    flat = torch.zeros(total)
    out = collections.OrderedDict()
    at = 0
    for i, (k, v) in enumerate(sd.items()):
        if not v.is_floating_point():
            out[k] = v
            continue
        at += 1
        n = v.numel()
        region = flat[at:at + n]
        if v.dim() >= 2 and i % 2 == 0:
            # Store v's transpose contiguously, and keep the transposed-back view.
            t = v.transpose(0, 1).contiguous()
            region.copy_(t.flatten())
            view = region.view(t.shape).transpose(0, 1)
            assert not view.is_contiguous()
        else:
            region.copy_(v.flatten())
            view = region.view(v.shape)
        assert torch.equal(view, v)
        out[k] = view
        at += 2 * n
    return out


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(77)
    model = TradesWideResNet(10, 1, 10, base=8)
    models.perturb_bn(model, gen)
    model.eval()
    # Copies: state_dict() shares the live parameters, which the optimiser step below moves.
    sd = collections.OrderedDict((k, v.clone()) for k, v in model.state_dict().items())
    x = torch.rand((4, 3, 32, 32), generator=gen)
    with torch.no_grad():
        logits = model(x)

    torch.save(sd, f"{OUT}/zip.pt")
    torch.save(sd, f"{OUT}/legacy.pt", _use_new_zipfile_serialization=False)
    write_tar(f"{OUT}/tar.pt", sd)

    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model.train()
    torch.nn.functional.cross_entropy(model(x), torch.tensor([0, 1, 2, 3])).backward()
    opt.step()  # gives the optimiser momentum buffers (and moves the weights: use sd, saved before)
    wrapped = {
        "epoch": 7,
        "state_dict": collections.OrderedDict(("module." + k, v) for k, v in sd.items()),
        "opt_state_dict": opt.state_dict(),
        "args": argparse.Namespace(model="wrn", epsilon=0.031),
    }
    torch.save(wrapped, f"{OUT}/wrapped_zip.pt")
    torch.save(wrapped, f"{OUT}/wrapped_legacy.pt", _use_new_zipfile_serialization=False)

    torch.save(views_of_one_storage(sd), f"{OUT}/views.pt")

    mixed = collections.OrderedDict()
    for k, v in sd.items():
        if not v.is_floating_point():
            mixed[k] = v
        elif "conv" in k:
            mixed[k] = v.half()
        elif k.startswith("fc."):
            mixed[k] = v.bfloat16()
        else:
            mixed[k] = v.double()
    torch.save(mixed, f"{OUT}/mixed_dtypes.pt")
    rounded = TradesWideResNet(10, 1, 10, base=8)
    rounded.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in mixed.items()})
    rounded.eval()
    with torch.no_grad():
        logits_mixed = rounded(x)

    # Big-endian: rewrite the zip with swapped storages and byteorder 'big'.
    src = zipfile.ZipFile(f"{OUT}/zip.pt")
    prefix = src.namelist()[0].split("/")[0]
    pkl = src.read(f"{prefix}/data.pkl")
    dtype_of = {}  # storage key -> element size, from the pickle's persistent ids
    class Peek(pickle.Unpickler):
        def persistent_load(self, pid):
            dtype_of[pid[2]] = pid[1]
            return torch.zeros(0)

        def find_class(self, module, name):
            if name.endswith("Storage"):
                return {"FloatStorage": 4, "LongStorage": 8}[name]
            if name == "_rebuild_tensor_v2":
                return lambda *a: None
            return super().find_class(module, name)

    Peek(io.BytesIO(pkl)).load()
    with zipfile.ZipFile(f"{OUT}/big_endian.pt", "w", zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == f"{prefix}/byteorder":
                data = b"big"
            elif info.filename.startswith(f"{prefix}/data/"):
                es = dtype_of[info.filename.rsplit("/", 1)[1]]
                data = b"".join(data[i:i + es][::-1] for i in range(0, len(data), es))
            dst.writestr(info.filename, data)
    back = torch.load(f"{OUT}/big_endian.pt", weights_only=True)
    assert all(torch.equal(back[k], sd[k]) for k in sd), "torch reads big_endian.pt differently"
    back = torch.load(f"{OUT}/tar.pt", weights_only=False)
    assert all(torch.equal(back[k], sd[k]) for k in sd), "torch reads tar.pt differently"

    rb = collections.OrderedDict(("model." + k, v) for k, v in sd.items() if not k.startswith("sub_block1"))
    rb["mu"] = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1)
    rb["sigma"] = torch.tensor([0.2471, 0.2435, 0.2616]).view(1, 3, 1, 1)
    torch.save(rb, f"{OUT}/robustbench.pt")

    bad = collections.OrderedDict((k, v.clone()) for k, v in sd.items())
    bad["block2.layer.0.conv1.weight"][0, 0, 0, 0] = float("nan")
    bad["fc.bias"][3] = float("inf")
    torch.save(bad, f"{OUT}/nan.pt")
    bad = collections.OrderedDict((k, v.clone()) for k, v in sd.items())
    bad["conv1.weight"] = (bad["conv1.weight"] * 100).round().long()
    torch.save(bad, f"{OUT}/int_weight.pt")

    plain = models.WideResNet(10, 1, 10, base=8)
    torch.save(plain, f"{OUT}/whole_model.pt")

    with zipfile.ZipFile(f"{OUT}/evil.pt", "w", zipfile.ZIP_STORED) as z:
        z.writestr("evil/data.pkl", b"\x80\x02cos\nsystem\nX\x19\x00\x00\x00touch /tmp/spat-was-pwned\x85R.")
        z.writestr("evil/version", b"3\n")

    save_file({"input": x.contiguous(), "logits": logits.contiguous(), "logits_mixed": logits_mixed.contiguous()},
              f"{OUT}/logits.safetensors")
    for f in sorted(os.listdir(OUT)):
        print(f, os.path.getsize(os.path.join(OUT, f)))


if __name__ == "__main__":
    main()
