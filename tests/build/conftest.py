"""Tiny recipes for build tests: real timm backbones at small sizes, random weights."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml


def write_recipe(folder: Path, name: str = "tiny_fpn", backbone: str = "test_convnext", head: str = "fpn",
                 size: int = 64, checkpoint: str | None = None) -> Path:
    data = {
        "name": name,
        "task": "segmentation",
        "model": {"backbone": backbone, "head": head, "channels": 16},
        "input": {"size": [size, size], "stride": 32, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]},
        "classes": ["a", "b", "c"],
    }
    if checkpoint:
        data["checkpoint"] = checkpoint
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def tiny_recipe(tmp_path: Path) -> Path:
    return write_recipe(tmp_path)
