"""Evaluation images and masks for `edgekit compare`: listing, reading, checking, tiling.

Images: a folder of PNG / JPEG / TIFF files (RGB; grey is repeated to 3 channels, a 4th
channel dropped). Masks: a folder of label PNGs (or TIFFs) with the same stem as each image.
Tiles: a grid of full-size tiles covering the whole image, edge tiles shifted back inside, so
a fixed-shape model sees every pixel and predictions are stitched back to the image grid.
"""
from __future__ import annotations

__all__ = ["IMAGE_SUFFIXES", "list_images", "read_image", "read_mask", "match_masks", "tile_origins", "check_mask"]

from pathlib import Path

import numpy as np

from edgekit.errors import InputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")


def list_images(folder: Path | str, limit: int = 0) -> list[Path]:
    """Image files of ``folder`` in name order (the first ``limit`` when > 0)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"image folder {folder} does not exist")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
    if not files:
        raise InputError(f"{folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return files[:limit] if limit > 0 else files


def _read_array(path: Path) -> np.ndarray:
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            return np.asarray(tifffile.imread(path))
        from PIL import Image

        Image.MAX_IMAGE_PIXELS = None
        with Image.open(path) as im:
            return np.asarray(im)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read {path}: {exc}") from None


def read_image(path: Path) -> np.ndarray:
    """An image as uint8 RGB (H, W, 3)."""
    x = _read_array(path)
    if x.ndim == 3 and x.shape[0] in (1, 3, 4) and x.shape[-1] not in (1, 3, 4):
        x = np.moveaxis(x, 0, -1)  # TIFF stored channels-first
    if x.ndim == 2:
        x = x[..., None]
    if x.ndim != 3:
        raise InputError(f"{path} has shape {x.shape}; expected an (H, W) or (H, W, C) image")
    if x.dtype != np.uint8:
        lo, hi = float(x.min()), float(x.max())
        x = ((x.astype(np.float64) - lo) * (255.0 / max(hi - lo, 1e-12))).astype(np.uint8)
    if x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    return np.ascontiguousarray(x[..., :3])


def read_mask(path: Path) -> np.ndarray:
    """A label mask as int64 (H, W)."""
    x = _read_array(path)
    if x.ndim == 3 and x.shape[-1] in (3, 4) and (x[..., :3] == x[..., :1]).all():
        x = x[..., 0]  # a grey mask saved as RGB
    if x.ndim != 2:
        raise InputError(f"mask {path} has shape {x.shape}; expected one label per pixel (H, W)")
    return x.astype(np.int64)


def match_masks(images: list[Path], folder: Path | str) -> list[Path]:
    """The mask of each image: same stem, any image suffix, in ``folder``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"mask folder {folder} does not exist")
    by_stem = {p.stem: p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
    missing = [p.name for p in images if p.stem not in by_stem]
    if missing:
        raise InputError(f"{folder} has no mask for {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''} "
                         "(masks must have the same name as their image)")
    return [by_stem[p.stem] for p in images]


def check_mask(mask: np.ndarray, image_hw: tuple[int, int], classes: int, path: Path, ignore: int | None = 255) -> None:
    """Stop when a mask's size differs from its image's or it holds labels the model cannot predict."""
    if mask.shape != tuple(image_hw):
        raise InputError(f"mask {path.name} is {mask.shape[1]}x{mask.shape[0]}, its image is "
                         f"{image_hw[1]}x{image_hw[0]}: masks must match their image pixel for pixel")
    values = np.unique(mask)
    bad = [int(v) for v in values if (v < 0 or v >= classes) and v != ignore]
    if bad:
        raise InputError(f"mask {path.name} holds labels {bad[:5]} but the model has {classes} classes "
                         f"(0..{classes - 1}{f', {ignore} = ignore' if ignore is not None else ''})")


def tile_origins(size: int, tile: int) -> list[int]:
    """Starts of tiles of length ``tile`` covering [0, size); the last one is shifted back inside."""
    if size < tile:
        raise ValueError(f"size {size} is smaller than the tile {tile}")
    starts = list(range(0, size - tile + 1, tile))
    if starts[-1] + tile < size:
        starts.append(size - tile)
    return starts
