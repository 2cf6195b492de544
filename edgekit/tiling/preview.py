"""A downsampled copy of the image and the class mask, saved as a colour overlay PNG with a legend.

Pixels are shown in the artifact's declared units (``scale``), so a 16-bit scene looks like its
8-bit copy. The legend (:func:`save_png`) stands beside the image, never over it: a swatch and
the name of each class the preview shows (:func:`edgekit.artifact.classes.class_name`), so the
image's pixels stay where the step puts them. Detection previews draw theirs with it too.
"""
from __future__ import annotations

__all__ = ["Preview", "PALETTE", "class_colour", "save_png"]

import json
import math
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from edgekit.artifact.classes import PALETTE as _COLOURS
from edgekit.artifact.classes import class_colour, class_name
from edgekit.images.geometry import Window

PALETTE = np.array(_COLOURS, np.uint8)  # the classes' colours (edgekit.artifact.classes), as an array to index
LEGEND_ROWS = 24  # classes listed at most; the rest are counted on one more line
LEGEND_BACKGROUND = (32, 32, 32)


def save_png(path: Path, image: np.ndarray, present: Iterable[int], classes: Sequence[str] = ()) -> None:
    """Save ``image`` (H, W, 3) uint8 as PNG with a legend of the ``present`` classes to its right (a
    swatch in each class's colour and its name), also stored as the PNG text chunk ``classes``
    (JSON: id, name, colour of each), for programs. No class present: the image alone."""
    from PIL import Image, ImageDraw, ImageFont
    from PIL.PngImagePlugin import PngInfo

    shown = sorted({int(c) for c in present})
    picture = Image.fromarray(image)
    if not shown:
        picture.save(path, format="PNG")
        return
    legend = [{"id": c, "name": class_name(classes, c), "colour": list(class_colour(c))} for c in shown]
    rows = [(tuple(e["colour"]), e["name"]) for e in legend[:LEGEND_ROWS]]
    if len(shown) > LEGEND_ROWS:
        rows.append((None, f"+{len(shown) - LEGEND_ROWS} more"))
    font = ImageFont.load_default()
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    line = max(measure.textbbox((0, 0), "Hg", font=font)[3], 10) + 4
    pad, swatch = 4, line - 4
    width = 3 * pad + swatch + max(measure.textbbox((0, 0), name, font=font)[2] for _, name in rows)
    out = Image.new("RGB", (picture.width + width, max(picture.height, 2 * pad + line * len(rows))), LEGEND_BACKGROUND)
    out.paste(picture, (0, 0))
    draw = ImageDraw.Draw(out)
    for k, (colour, name) in enumerate(rows):
        x, y = picture.width + pad, pad + k * line
        if colour is not None:
            draw.rectangle([x, y, x + swatch - 1, y + swatch - 1], fill=colour)
        draw.text((x + swatch + pad, y), name, fill=(240, 240, 240), font=font)
    info = PngInfo()
    info.add_text("classes", json.dumps(legend))
    out.save(path, format="PNG", pnginfo=info)


class Preview:
    """A downsampled image and mask, filled as tiles are read and rows finished; saved as an overlay."""

    def __init__(self, height: int, width: int, scale: float = 255.0, max_side: int = 1024,
                 classes: Sequence[str] = ()):
        self.classes = tuple(classes)
        self.step = max(1, math.ceil(max(height, width) / max_side))
        shape = (math.ceil(height / self.step), math.ceil(width / self.step))
        self.image = np.zeros((*shape, 3), np.uint8)
        self.mask = np.full(shape, 255, np.uint8)
        self.full = float(scale)

    @classmethod
    def for_source(cls, source, scale: float, classes: Sequence[str] = ()) -> "Preview":
        """A preview of ``source``; ``classes``: the artifact's class names (``manifest.classes``)
        the legend names them by (``class_<id>`` where none are given)."""
        return cls(source.shape[0], source.shape[1], scale, classes=classes)

    def _display(self, raw: np.ndarray) -> np.ndarray:
        rgb = raw[..., [0, 0, 0]] if raw.shape[-1] < 3 else raw[..., :3]
        scaled = np.nan_to_num(rgb.astype(np.float32) * (255.0 / self.full))
        return np.clip(scaled, 0, 255).astype(np.uint8)

    def _first(self, start: int) -> int:
        return -start % self.step  # offset of the first sampled pixel at or after ``start``

    def add_pixels(self, window: Window, raw: np.ndarray) -> None:
        """Keep the sampled pixels of a window just read."""
        r0, c0 = self._first(window.row), self._first(window.col)
        part = self._display(raw[r0::self.step, c0::self.step])
        pr, pc = (window.row + r0) // self.step, (window.col + c0) // self.step
        self.image[pr:pr + part.shape[0], pc:pc + part.shape[1]] = part

    def add_mask(self, top: int, mask: np.ndarray) -> None:
        """Keep the sampled pixels of finished mask rows starting at image row ``top``."""
        r0 = self._first(top)
        part = mask[r0::self.step, ::self.step]
        pr = (top + r0) // self.step
        self.mask[pr:pr + part.shape[0]] = part

    def save(self, path: Path, alpha: float = 0.45) -> None:
        """Write the overlay PNG: classes in colour over the image, nodata left bare, and a legend
        of the classes it shows beside it."""
        known = self.mask != 255
        colour = PALETTE[self.mask % len(PALETTE)].astype(np.float32)
        out = self.image.astype(np.float32)
        out[known] = (1 - alpha) * out[known] + alpha * colour[known]
        save_png(path, out.astype(np.uint8), np.unique(self.mask[known]), self.classes)
