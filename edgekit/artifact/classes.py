"""A model's classes as every output shows them: by name and by colour.

Names: the manifest's ``classes`` (a recipe's ``classes:``, or what the model says of itself), and
``class_<id>`` for a class the model names none for. The one rule: COCO categories, GeoJSON and
GeoPackage properties, preview legends, report.md and `edgekit compare`'s columns all name a class
through :func:`class_name`. Colours: :data:`PALETTE`, what previews draw masks and boxes in and
report.md's legend lists (:func:`class_colour`).
"""
from __future__ import annotations

__all__ = ["PALETTE", "class_colour", "class_name", "class_names"]

from typing import Sequence

PALETTE = (  # RGB, class i in PALETTE[i % 10]
    (31, 119, 180), (44, 160, 44), (255, 127, 14), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
)


def class_colour(index: int) -> tuple[int, int, int]:
    """The colour class ``index`` is drawn in (mask overlays and boxes alike)."""
    return PALETTE[int(index) % len(PALETTE)]


def class_name(classes: Sequence[str], index: int) -> str:
    """The name of class ``index``: the model's own, else ``class_<index>``."""
    index = int(index)
    name = classes[index] if 0 <= index < len(classes) else None
    return str(name) if name not in (None, "") else f"class_{index}"


def class_names(classes: Sequence[str], count: int = 0) -> tuple[str, ...]:
    """Names of classes ``0..n-1``, ``n`` the larger of ``count`` and the names the model gives."""
    return tuple(class_name(classes, i) for i in range(max(int(count), len(classes))))
