"""Peak memory of `edgekit infer` on a 4096^2 and a 32768^2 tiled BigTIFF, side by side in one run.

Both images are written tile by tile (never whole) from Blue Marble pixels into a scratch folder
outside the repository. Each run is a separate `edgekit infer` process; its peak RSS comes from
the kernel (wait4 rusage). The model is a tiny one on purpose (3x3 conv, ReLU, 1x1 conv, built
with onnx.helper): the figure is the pipeline's memory, not a network's.
The comparison is with holding full-size float32 accumulators (C classes + a weight plane) and the
whole image in memory, which is what pytorch-toolbelt's ImageSlicer / TileMerger do (computed).

    python bench/infer_memory.py [--scratch /tmp/edgekit_bench] [--sizes 4096 32768] [--tile 256]
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _tiny_artifact(folder: Path, tile: int, batch: int) -> Path:
    spec = importlib.util.spec_from_file_location("edgekit_root_conftest", ROOT / "tests" / "conftest.py")
    conftest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conftest)
    if not (folder / "manifest.json").is_file():
        conftest.make_cpu_artifact(folder, size=tile, batch=batch, classes=3, seed=0)
    return folder


def make_bigtiff(path: Path, size: int, block: int = 512) -> Path:
    """A size x size RGB tiled BigTIFF cut from Blue Marble, written one block at a time."""
    import tifffile

    from edgekit.data.bluemarble import load_image

    if path.is_file():
        return path
    world = load_image()
    h, w, _ = world.shape

    def blocks():
        for r in range(0, size, block):
            for c in range(0, size, block):
                y, x = (r // 2) % (h - block), (c // 2) % (w - block)  # a 2x zoom, wrapping around
                yield np.repeat(np.repeat(world[y:y + block // 2, x:x + block // 2], 2, 0), 2, 1)

    tmp = path.with_name(path.name + ".partial")
    tifffile.imwrite(tmp, data=blocks(), shape=(size, size, 3), dtype=np.uint8, tile=(block, block),
                     photometric="rgb", compression="zlib", compressionargs={"level": 1}, bigtiff=True)
    os.replace(tmp, path)
    return path


def run_infer(artifact: Path, image: Path, out: Path, overlap: int) -> tuple[float, float, str]:
    """Run `edgekit infer` in its own process: (peak RSS MiB, seconds, its summary line)."""
    cmd = [sys.executable, "-m", "edgekit.cli.main", "infer", str(artifact), str(image), "-o", str(out),
           "--overlap", str(overlap), "--no-progress"]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    text = proc.stdout.read().strip()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"edgekit infer failed on {image.name}:\n{text}")
    return usage.ru_maxrss / 1024.0, seconds, text.splitlines()[-1]


def full_size_accumulators_mib(size: int, classes: int) -> float:
    """pytorch-toolbelt style: float32 (C, H, W) sums + (1, H, W) weights + the uint8 RGB image."""
    return size * size * ((classes + 1) * 4 + 3) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scratch", type=Path, default=Path("/tmp/edgekit_bench"))
    parser.add_argument("--sizes", type=int, nargs="+", default=[4096, 32768])
    parser.add_argument("--tile", type=int, default=256)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--overlap", type=int, default=32)
    args = parser.parse_args()
    args.scratch.mkdir(parents=True, exist_ok=True)
    artifact = _tiny_artifact(args.scratch / f"tiny_{args.tile}_b{args.batch}", args.tile, args.batch)
    print(f"model: tiny 3x3-conv segmenter (3 classes), tile {args.tile}, batch {args.batch}, overlap {args.overlap}; "
          f"CPU, {os.cpu_count()} cores")
    rows = []
    for size in args.sizes:
        t0 = time.perf_counter()
        image = make_bigtiff(args.scratch / f"bluemarble_{size}.tif", size)
        made = time.perf_counter() - t0
        rss, seconds, line = run_infer(artifact, image, args.scratch / f"mask_{size}.tif", args.overlap)
        rows.append((size, rss, seconds))
        print(f"{size}x{size}: input {image.stat().st_size / 2**20:.0f} MiB on disk (made in {made:.0f} s); "
              f"peak RSS {rss:.0f} MiB, {seconds:.0f} s, {size * size / 1e6 / seconds:.2f} Mpx/s; "
              f"full-size accumulators would need {full_size_accumulators_mib(size, 3):,.0f} MiB")
        print(f"    {line}")
    if len(rows) >= 2:
        (s0, r0, _), (s1, r1, _) = rows[0], rows[-1]
        print(f"peak RSS ratio {s1}^2 / {s0}^2: {r1 / r0:.2f} (target <= 1.3); {s1}^2 peak {r1 / 1024:.2f} GiB "
              f"(target < 2); full-size accumulators / measured at {s1}^2: "
              f"{full_size_accumulators_mib(s1, 3) / r1:.0f}x")


if __name__ == "__main__":
    main()
