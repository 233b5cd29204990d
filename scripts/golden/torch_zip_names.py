"""torch.save zip files whose archive name (the file name without `.pt`, which torch.save uses
as the folder of every record) has a given length: the record layout (local headers padded to
64-byte alignment, central directory, ZIP64 end record and locator, which PyTorch's writer always
adds) depends on that length, and a length of 21 once made spat refuse a valid file.

Run from the repository root:  /tmp/tv/bin/python scripts/golden/torch_zip_names.py [DIR] [N ...]
Writes DIR (default tests/fixtures/torch/names) / <name>.pt for each length N (default the
committed 1 2 20 21 22 64), where <name> is the first N characters of NAME_CHARS repeated.
Every file holds the same state dict, STATE; crates/spat-pickle/tests/torch_zip_names.rs reads
them, and checks that spat_pickle::fuzzing::torch_zip rebuilds each byte for byte.
"""
import os
import sys
import zipfile

import torch

NAME_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789"
STATE = {
    "w": torch.arange(6, dtype=torch.float32).reshape(2, 3),
    "b": torch.tensor([-1, 7], dtype=torch.int64),
}


def name_of(n):
    return (NAME_CHARS * (n // len(NAME_CHARS) + 1))[:n]


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/torch/names"
    lengths = [int(a) for a in sys.argv[2:]] or [1, 2, 20, 21, 22, 64]
    os.makedirs(out, exist_ok=True)
    for n in lengths:
        path = os.path.join(out, name_of(n) + ".pt")
        torch.save(STATE, path)
        back = torch.load(path)
        assert all(torch.equal(back[k], v) for k, v in STATE.items())
        with zipfile.ZipFile(path) as z:
            assert z.testzip() is None
            assert all(i.filename.startswith(name_of(n) + "/") for i in z.infolist())
    print(f"torch {torch.__version__}: wrote {len(lengths)} files to {out}")


if __name__ == "__main__":
    main()
