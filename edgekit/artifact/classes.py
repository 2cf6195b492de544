"""A model's class names as every output writes them: the manifest's ``classes`` (a recipe's
``classes:``, or what the model says of itself), and ``class_<id>`` for a class the model names
none for. The one rule: COCO categories, GeoJSON and GeoPackage properties, preview legends,
report.md and `edgekit compare`'s columns all name a class through :func:`class_name`.
"""
from __future__ import annotations

__all__ = ["class_name", "class_names"]

from typing import Sequence


def class_name(classes: Sequence[str], index: int) -> str:
    """The name of class ``index``: the model's own, else ``class_<index>``."""
    index = int(index)
    name = classes[index] if 0 <= index < len(classes) else None
    return str(name) if name not in (None, "") else f"class_{index}"


def class_names(classes: Sequence[str], count: int = 0) -> tuple[str, ...]:
    """Names of classes ``0..n-1``, ``n`` the larger of ``count`` and the names the model gives."""
    return tuple(class_name(classes, i) for i in range(max(int(count), len(classes))))
