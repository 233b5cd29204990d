#!/usr/bin/env python3
"""Combines several `bench/side_by_side.sh` runs into one table: for every row, each program's
fastest median over the runs (wall and CPU time separately), and PyTorch's time over spat's.

On a machine shared with other jobs a single run can be slowed by whatever else runs during it;
taking each program's best run, with the runs alternating between the programs, compares what
each does when left alone.

    bench/best_of.py OUT1 OUT2 ...     # directories given to side_by_side.sh as BENCH_OUT
"""
import json
import sys
from pathlib import Path


def best(dirs, name):
    rows = {}
    for d in dirs:
        for r in json.loads((Path(d) / name).read_text())["records"]:
            key = (r["model"], r["workload"], r["precision"], r["batch"])
            wall, cpu = r["median_ms"], r.get("median_cpu_ms") or r["median_ms"]
            old = rows.get(key, (float("inf"), float("inf")))
            rows[key] = (min(old[0], wall), min(old[1], cpu))
    return rows


def main():
    dirs = sys.argv[1:]
    if not dirs:
        sys.exit(__doc__)
    spat, torch = best(dirs, "spat.json"), best(dirs, "pytorch.json")
    print(f"best of {len(dirs)} runs: " + ", ".join(dirs))
    print()
    print("| model | workload | spat ms | PyTorch ms | wall | spat CPU ms | PyTorch CPU ms | CPU |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for key, (sw, sc) in spat.items():
        if key not in torch:
            continue
        tw, tc = torch[key]
        print(
            f"| {key[0]} | {key[1]} | {sw:.1f} | {tw:.1f} | {tw / sw:.2f}× "
            f"| {sc:.1f} | {tc:.1f} | {tc / sc:.2f}× |"
        )


if __name__ == "__main__":
    main()
