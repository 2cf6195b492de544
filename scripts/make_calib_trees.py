"""Cut calibration and validation tiles for the tree detector from the NEON image (deterministic).

<out>/neon_trees/      tiles from the training part (left 70% of columns): INT8 calibration.
<out>/neon_trees_val/  tiles from the held-out part (right 30%): fp16/int8 verification against
                       FP32's boxes (never used for training or calibration).

Usage: python scripts/make_calib_trees.py [--out runs/calib] [--size 256] [--calib 24] [--val 8]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from edgekit.data import neon_trees


def cut(image: np.ndarray, col0: int, col1: int, size: int, count: int, folder: Path, seed: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        r = int(rng.integers(0, image.shape[0] - size + 1))
        c = int(rng.integers(col0, col1 - size + 1))
        Image.fromarray(image[r:r + size, c:c + size]).save(folder / f"trees_r{r:04d}_c{c:04d}.png")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=Path("runs/calib"))
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--calib", type=int, default=24)
    ap.add_argument("--val", type=int, default=8)
    args = ap.parse_args()
    image = neon_trees.load_image()
    col = neon_trees.split_column(image.shape[1])
    cut(image, 0, col, args.size, args.calib, args.out / "neon_trees", 0)
    cut(image, col, image.shape[1], args.size, args.val, args.out / "neon_trees_val", 1)
    print(f"wrote {args.calib} calibration tiles (columns < {col}) and {args.val} validation tiles (columns >= {col}) "
          f"under {args.out}")


if __name__ == "__main__":
    main()
