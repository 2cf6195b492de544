"""NEON aerial tree crowns from the `deepforest` package: a 10 cm RGB image and its VOC boxes.

``2019_YELL_2_528000_4978000_image_crop2.png`` is 2299x2472 px with 574 hand-drawn crown boxes.
Training uses the columns left of ``split_column`` (the left 70%); every accuracy figure uses
the columns right of it, which training never sees. ``OSBS_029.tif`` is a 400x400 GeoTIFF with
its own boxes, used to check geo-referenced output.
"""
from __future__ import annotations

__all__ = ["IMAGE", "GEOTIFF", "SPLIT_FRACTION", "data_dir", "load_image", "load_boxes", "split_column",
           "boxes_in_columns"]

import importlib.util
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from edgekit.errors import InputError

IMAGE = "2019_YELL_2_528000_4978000_image_crop2.png"
GEOTIFF = "OSBS_029.tif"
SPLIT_FRACTION = 0.7


def data_dir() -> Path:
    """The ``data`` folder of the installed `deepforest` package (never imported: it pulls torch)."""
    spec = importlib.util.find_spec("deepforest")
    if spec is None or not spec.submodule_search_locations:
        raise InputError("the NEON tree data needs `pip install --no-deps deepforest==2.1.0`")
    return Path(list(spec.submodule_search_locations)[0]) / "data"


def load_image(name: str = IMAGE) -> np.ndarray:
    """(H, W, 3) uint8 RGB, read by the one image reader."""
    from edgekit.images import open_image

    with open_image(data_dir() / name) as src:
        pixels = src.read(0, 0, src.shape[0], src.shape[1])
    return np.ascontiguousarray(pixels[..., :3])


def load_boxes(name: str = IMAGE) -> np.ndarray:
    """(M, 4) float32 x1, y1, x2, y2 in pixels (VOC corners, as annotated) from the .xml beside ``name``."""
    root = ET.parse(data_dir() / (Path(name).stem + ".xml")).getroot()
    rows = [[float(o.find("bndbox").find(k).text) for k in ("xmin", "ymin", "xmax", "ymax")]
            for o in root.iter("object")]
    return np.asarray(rows, np.float32).reshape(-1, 4)


def split_column(width: int) -> int:
    """First column of the held-out part."""
    return int(round(width * SPLIT_FRACTION))


def boxes_in_columns(boxes: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Boxes whose centre lies in columns [start, stop), clipped to them and shifted by ``-start``."""
    cx = (boxes[:, 0] + boxes[:, 2]) / 2
    keep = boxes[(cx >= start) & (cx < stop)].copy()
    keep[:, [0, 2]] = np.clip(keep[:, [0, 2]], start, stop) - start
    return keep
