"""`edgekit run` backends side by side: fixed cost, peak memory of all processes, CPU per Mpx, equality.

Each variant runs the real CLI in a subprocess over the same scenes. A sampler reads /proc every
50 ms for the whole process tree under that subprocess (Ray's GCS, raylet and actors included):
peak RSS is the largest sum over the tree at one moment; CPU seconds are each process's last seen
user+system time, summed (a process that lives under 50 ms can be missed: a lower bound).
  fixed s:   wall seconds of a run over one tile-sized scene (start-up, imports, artifact load,
             Ray start), the per-run cost that no scene amortizes;
  wall s:    the run over all scenes; CPU s/Mpx against the one-process variant;
  equal:     every mask equals the one-process variant's, pixel for pixel.
Variants run in interleaved rounds (A B C, A B C, ...) so drift on a shared machine hits all alike;
the table shows the median of the rounds.

    python bench/run_backends.py ARTIFACT [--scenes 6] [--size 1024] [--workers 2] [--rounds 2] [--no-ray]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import tifffile

TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def _tree(root: int) -> list[int]:
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += [p for p, pp in parents.items() if pp == pid]
    return found


def _sample(pid: int) -> tuple[float, dict[int, float]]:
    """(RSS of the tree in MiB, {pid: cpu seconds}) right now."""
    rss, cpu = 0, {}
    for p in _tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            rss += int(Path(f"/proc/{p}/statm").read_text().split()[1]) * PAGE
        except OSError:
            continue
        cpu[p] = (int(fields[11]) + int(fields[12])) / TICK
    return rss / 2**20, cpu


def measure(cmd: list[str]) -> dict:
    """Wall seconds, peak tree RSS (MiB) and CPU seconds of ``cmd`` and everything it starts."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak, cpu, stop = [0.0], {}, threading.Event()

    def sampler() -> None:
        while not stop.is_set():
            rss, now = _sample(proc.pid)
            peak[0] = max(peak[0], rss)
            for p, s in now.items():
                cpu[p] = max(cpu.get(p, 0.0), s)
            stop.wait(0.05)

    thread = threading.Thread(target=sampler, daemon=True)
    thread.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - start
    stop.set()
    thread.join()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err[-2000:]}")
    return {"wall": wall, "rss": peak[0], "cpu": sum(cpu.values())}


def _scenes(folder: Path, count: int, size: int) -> float:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        tifffile.imwrite(folder / f"s{i}.tif", rng.integers(0, 256, (size, size, 3), np.uint8), tile=(256, 256),
                         photometric="rgb")
    return count * size * size / 1e6


def _masks(folder: Path) -> dict[str, np.ndarray]:
    return {p.name: tifffile.imread(p) for p in sorted(folder.glob("*.tif"))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("artifact", type=Path)
    ap.add_argument("--scenes", type=int, default=6)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--overlap", type=int, default=32)
    ap.add_argument("--no-ray", action="store_true")
    args = ap.parse_args()
    from edgekit.run.local import cores
    from edgekit.artifact.folder import load_artifact

    tile = int(load_artifact(args.artifact).manifest.tile[0])
    n = cores()
    variants = {"local, 1 process": ["--workers", "1", "--threads", str(n)],
                f"local, {args.workers} processes": ["--workers", str(args.workers)]}
    if not args.no_ray:
        variants[f"ray local, {args.workers} actors"] = ["--ray", "local", "--workers", str(args.workers)]
    results: dict[str, list[dict]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        mpx = _scenes(tmp / "scenes", args.scenes, args.size)
        _scenes(tmp / "one", 1, tile)
        for r in range(args.rounds):
            for name, extra in variants.items():
                base = [sys.executable, "-m", "edgekit.cli.main", "run", str(args.artifact)]
                opts = ["--overlap", str(args.overlap), "--no-progress", *extra]
                fixed = measure(base + [str(tmp / "one"), "-o", str(tmp / f"fixed{r}-{len(results[name])}"), *opts])
                out = tmp / f"out-{r}-{list(variants).index(name)}"
                run = measure(base + [str(tmp / "scenes"), "-o", str(out), *opts])
                results[name].append({"fixed": fixed["wall"], **run, "masks": _masks(out)})
    ref = results["local, 1 process"][0]["masks"]
    ref_cpu = statistics.median(r["cpu"] for r in results["local, 1 process"])
    print(f"{args.scenes} scenes of {args.size}x{args.size} ({mpx:.1f} Mpx), {n} cores, tile {tile}, "
          f"overlap {args.overlap}, median of {args.rounds} interleaved rounds")
    print("| backend | fixed s | wall s | Mpx/s | peak RSS, all processes (MiB) | CPU s/Mpx | CPU vs 1 process | equal to 1 process |")
    print("|---|---|---|---|---|---|---|---|")
    for name, rs in results.items():
        med = {k: statistics.median(r[k] for r in rs) for k in ("fixed", "wall", "rss", "cpu")}
        equal = all(r["masks"].keys() == ref.keys() and all(np.array_equal(r["masks"][k], ref[k]) for k in ref)
                    for r in rs)
        print(f"| {name} | {med['fixed']:.1f} | {med['wall']:.1f} | {mpx / med['wall']:.2f} | {med['rss']:.0f} | "
              f"{med['cpu'] / mpx:.2f} | {med['cpu'] / ref_cpu:.2f}x | {'yes' if equal else 'NO'} |")


if __name__ == "__main__":
    main()
