"""Peak memory of tiled detection against image size: a 16384x16384 mosaic vs a 4096x4096 one.

Both mosaics are tiled BigTIFFs made of 256x256 crops of the real NEON image (written tile by
tile, never whole in memory). Each runs in its own process (`edgekit infer`), which reports its
peak RSS; the target is a ratio <= 1.3.

    python bench/detect_memory.py out/det --work runs/detect_memory
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

from edgekit.data import neon_trees

TILE = 256


def write_mosaic(path: Path, side: int, image: np.ndarray) -> Path:
    import tifffile

    h, w = (s // TILE * TILE for s in image.shape[:2])

    def tiles():
        for r in range(0, side, TILE):
            for c in range(0, side, TILE):
                rr, cc = (r * 7) % h, (c * 3) % w  # scramble so neighbouring tiles differ
                yield image[rr:rr + TILE, cc:cc + TILE]

    if not path.exists():
        tifffile.imwrite(path, tiles(), shape=(side, side, 3), dtype=np.uint8, tile=(TILE, TILE),
                         bigtiff=True, photometric="rgb")
    return path


def peak_rss(artifact: Path, image: Path, out: Path, overlap: int) -> tuple[float, str]:
    cmd = [sys.executable, "-m", "edgekit.cli.main", "infer", str(artifact), str(image), "-o", str(out),
           "--overlap", str(overlap), "--no-progress", "--threads", "2"]
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    line = res.stdout.strip().splitlines()[-1]
    return float(re.search(r"peak RSS (\d+) MiB", line).group(1)), line


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("artifact", type=Path)
    ap.add_argument("--work", type=Path, default=Path("runs/detect_memory"))
    ap.add_argument("--sizes", type=int, nargs=2, default=(4096, 16384))
    ap.add_argument("--overlap", type=int, default=64)
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    image = neon_trees.load_image()
    rss = {}
    for side in args.sizes:
        mosaic = write_mosaic(args.work / f"mosaic_{side}.tif", side, image)
        rss[side], line = peak_rss(args.artifact, mosaic, args.work / f"boxes_{side}.jsonl", args.overlap)
        print(line, flush=True)
    small, big = args.sizes
    print(f"peak RSS {big}x{big}: {rss[big]:.0f} MiB, {small}x{small}: {rss[small]:.0f} MiB, "
          f"ratio {rss[big] / rss[small]:.2f} (target <= 1.3)")


if __name__ == "__main__":
    main()
