#!/usr/bin/env python3
"""Combines several `bench/side_by_side.sh` runs into one table: for every row, each program's
fastest median over the runs (wall and CPU time separately; for PyTorch, per mode: default,
channels-last, compile, ...), and PyTorch's time over spat's against PyTorch's default mode and
against its fastest mode in that row.

On a machine shared with other jobs a single run can be slowed by whatever else runs during it;
taking each program's best run, with the runs alternating between the programs, compares what
each does when left alone.

    bench/best_of.py OUT1 OUT2 ...              # directories given to side_by_side.sh as BENCH_OUT
    bench/best_of.py 1=OUT1,OUT2 2=OUT3,OUT4    # one column block per thread count, and spat's
                                                # speed-up from the first block to the second
"""
import json
import sys
from pathlib import Path

DEFAULT_MODE = "default"


def key_of(r):
    return (r["model"], r["workload"], r["precision"], r["batch"])


def best(dirs, name):
    """{(key, mode): (wall ms, CPU ms, compile s or None)}, each the least over the runs."""
    rows = {}
    for d in dirs:
        path = Path(d) / name
        if not path.exists():
            continue
        for r in json.loads(path.read_text())["records"]:
            k = (key_of(r), r.get("mode", DEFAULT_MODE))
            wall, cpu = r["median_ms"], r.get("median_cpu_ms") or r["median_ms"]
            old = rows.get(k, (float("inf"), float("inf"), None))
            compiled = [c for c in (old[2], r.get("compile_s")) if c is not None]
            rows[k] = (min(old[0], wall), min(old[1], cpu), min(compiled) if compiled else None)
    return rows


def block(dirs):
    """spat's best (wall, CPU) per key, and PyTorch's per key: default (wall, CPU) and the
    fastest mode by wall time (name, wall, CPU), plus the compile times seen."""
    spat = {k: v[:2] for (k, _), v in best(dirs, "spat.json").items()}
    torch = best(dirs, "pytorch.json")
    out = {}
    for key, ours in spat.items():
        modes = {m: v for (k, m), v in torch.items() if k == key}
        if not modes:
            continue
        fastest = min(modes, key=lambda m: modes[m][0])
        out[key] = {
            "spat": ours,
            "default": modes.get(DEFAULT_MODE),
            "fastest": (fastest, *modes[fastest][:2]),
            "compile_s": [v[2] for v in modes.values() if v[2] is not None],
        }
    return out


def ratio(theirs, ours):
    return f"{theirs / ours:.2f}×"


def print_blocks(groups):
    names = [name for name, _ in groups]
    blocks = [block(dirs) for _, dirs in groups]
    keys = [k for k in blocks[0] if all(k in b for b in blocks)]
    head = "| model | workload |"
    rule = "|---|---|"
    for name in names:
        t = f"{name}: " if name else ""
        head += (f" {t}spat ms | PyTorch default ms | fastest PyTorch ms (mode) | vs default | vs fastest "
                 f"| by CPU vs fastest |")
        rule += "---:|---:|---:|---:|---:|---:|"
    if len(blocks) == 2:
        head += f" spat {names[0]} → {names[1]} |"
        rule += "---:|"
    print(head)
    print(rule)
    for key in keys:
        line = f"| {key[0]} | {key[1]} |"
        for b in blocks:
            row = b[key]
            sw, sc = row["spat"]
            mode, fw, fc = row["fastest"]
            default = row["default"]
            dw = f"{default[0]:.1f}" if default else "–"
            vs_default = ratio(default[0], sw) if default else "–"
            line += (f" {sw:.1f} | {dw} | {fw:.1f} ({mode}) | {vs_default} | {ratio(fw, sw)} "
                     f"| {ratio(fc, sc)} |")
        if len(blocks) == 2:
            line += f" {blocks[0][key]['spat'][0] / blocks[1][key]['spat'][0]:.2f}× |"
        print(line)
    compiled = [c for b in blocks for row in b.values() for c in row["compile_s"]]
    if compiled:
        print()
        print(f"torch.compile: the first step of each compiled row (compilation included) took "
              f"{min(compiled):.1f}–{max(compiled):.1f} s; it is not in the step times above.")


def main():
    args = sys.argv[1:]
    if not args or any(a in ("-h", "--help") for a in args):
        sys.exit(__doc__)
    if all("=" in a for a in args):
        groups = []
        for a in args:
            name, _, dirs = a.partition("=")
            groups.append((f"{name} thread" + ("s" if name != "1" else ""), dirs.split(",")))
    elif any("=" in a for a in args):
        sys.exit("give either directories or THREADS=DIR,DIR groups, not both")
    else:
        groups = [("", args)]
    for name, dirs in groups:
        print(f"{name or 'runs'}: best of {len(dirs)} runs: " + ", ".join(dirs))
    print()
    print_blocks(groups)


if __name__ == "__main__":
    main()
