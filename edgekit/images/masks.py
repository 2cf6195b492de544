"""Label masks: one label per pixel, named like their image, read through the one image reader."""
from __future__ import annotations

__all__ = ["read_mask", "match_masks", "check_mask"]

from pathlib import Path

import numpy as np

from edgekit.errors import InputError
from edgekit.images.readers import IMAGE_SUFFIXES, open_image


def read_mask(path: Path) -> np.ndarray:
    """A label mask as int64 (H, W); a grey mask saved as RGB(A) is taken from its first band."""
    with open_image(path) as src:
        x = src.read(0, 0, src.shape[0], src.shape[1])
    if x.shape[-1] in (3, 4) and (x[..., :3] == x[..., :1]).all():
        x = x[..., :1]
    if x.shape[-1] != 1:
        raise InputError(f"mask {Path(path).name} has {x.shape[-1]} bands; expected one label per pixel (H, W)")
    return x[..., 0].astype(np.int64)


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
        raise InputError(f"mask {Path(path).name} is {mask.shape[1]}x{mask.shape[0]}, its image is "
                         f"{image_hw[1]}x{image_hw[0]}: masks must match their image pixel for pixel")
    values = np.unique(mask)
    bad = [int(v) for v in values if (v < 0 or v >= classes) and v != ignore]
    if bad:
        raise InputError(f"mask {Path(path).name} holds labels {bad[:5]} but the model has {classes} classes "
                         f"(0..{classes - 1}{f', {ignore} = ignore' if ignore is not None else ''})")
