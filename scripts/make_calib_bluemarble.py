"""Cut the Blue Marble calibration and validation tiles in calib/ (deterministic; see calib/README.md).

calib/bluemarble/      tiles WEST of the split meridian (the training region): calibration images.
calib/bluemarble_val/  tiles EAST of it (held out from training and calibration), with masks/:
                       uint8 class ids (0 ocean, 1 land, 2 lake) of the same name, for accuracy figures.

Tiles are chosen on a 128-pixel grid by kind (open ocean, inland, coast, lakes, ice and snow), the
highest-scoring first, skipping tiles that overlap a chosen one by more than a quarter.

Usage: python scripts/make_calib_bluemarble.py [--out calib] [--size 512]
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from edgekit.data.bluemarble import CLASSES, SPLIT_LON, load_image, load_mask, split_column

GRID = 128
CALIB_QUOTA = {"lake": 3, "ice": 4, "ocean": 4, "land": 5, "coast": 6}  # rarest kinds choose first
VAL_QUOTA = {"lake": 2, "ice": 2, "ocean": 2, "land": 3, "coast": 3}


def tile_stats(image: np.ndarray, mask: np.ndarray, r: int, c: int, size: int) -> dict[str, float]:
    """Fractions of ocean, land, lake and ice/snow (bright, grey pixels) in one tile."""
    m = mask[r : r + size, c : c + size]
    px = image[r : r + size, c : c + size].astype(np.int16)
    frac = np.bincount(m.ravel(), minlength=len(CLASSES)) / m.size
    ice = ((px.min(-1) > 170) & (px.max(-1) - px.min(-1) < 40)).mean()
    return {"ocean": frac[0], "land": frac[1], "lake": frac[2], "ice": float(ice)}


def score(kind: str, s: dict[str, float]) -> float:
    """How typical a tile is of ``kind``; negative when it is not of that kind at all."""
    if kind == "ocean":
        return s["ocean"] - s["ice"] if s["ocean"] > 0.97 else -1.0
    if kind == "land":
        return s["land"] - s["ice"] if s["land"] > 0.75 else -1.0
    if kind == "coast":
        return min(s["ocean"], s["land"]) if min(s["ocean"], s["land"]) > 0.2 else -1.0
    return s[kind] if s[kind] > 0.02 else -1.0


def overlap(a: tuple[int, int], b: tuple[int, int], size: int) -> float:
    dr, dc = max(0, size - abs(a[0] - b[0])), max(0, size - abs(a[1] - b[1]))
    return dr * dc / size**2


def choose(image: np.ndarray, mask: np.ndarray, cols: tuple[int, int], size: int, quota: dict[str, int]) -> list[tuple[int, int, str]]:
    """Tiles (row, col, kind) inside columns [cols[0], cols[1]) filling ``quota`` per kind."""
    candidates = [
        (r, c, tile_stats(image, mask, r, c, size))
        for r in range(0, image.shape[0] - size + 1, GRID)
        for c in range(cols[0], cols[1] - size + 1, GRID)
    ]
    chosen: list[tuple[int, int, str]] = []
    for kind, count in quota.items():
        ranked = sorted(candidates, key=lambda t: (-score(kind, t[2]), t[0], t[1]))
        taken = 0
        for r, c, s in ranked:
            if taken == count or score(kind, s) < 0:
                break
            if all(overlap((r, c), (q[0], q[1]), size) <= 0.25 for q in chosen):
                chosen.append((r, c, kind))
                taken += 1
    return chosen


def write(folder: Path, image: np.ndarray, mask: np.ndarray | None, tiles: list, size: int) -> int:
    """PNG tiles (and masks) in ``folder``; returns the bytes written."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    if mask is not None:
        (folder / "masks").mkdir()
    for r, c, kind in tiles:
        name = f"bm_{kind}_r{r:04d}_c{c:04d}.png"
        Image.fromarray(image[r : r + size, c : c + size]).save(folder / name, optimize=True)
        if mask is not None:
            Image.fromarray(mask[r : r + size, c : c + size]).save(folder / "masks" / name, optimize=True)
    return sum(p.stat().st_size for p in folder.rglob("*.png"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "calib")
    parser.add_argument("--size", type=int, default=512)
    args = parser.parse_args()
    image = load_image()
    mask = load_mask(image.shape[:2])
    split = split_column(image.shape[1])
    west = choose(image, mask, (0, split), args.size, CALIB_QUOTA)
    east = choose(image, mask, (split, image.shape[1]), args.size, VAL_QUOTA)
    size_w = write(args.out / "bluemarble", image, None, west, args.size)
    size_e = write(args.out / "bluemarble_val", image, mask, east, args.size)
    print(f"split at column {split} ({SPLIT_LON} E)")
    print(f"calib/bluemarble:     {len(west)} tiles, {size_w / 2**20:.1f} MiB")
    print(f"calib/bluemarble_val: {len(east)} tiles + masks, {size_e / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
