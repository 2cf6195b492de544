"""A fast subset of bench/zoo.py: a handful of architecture families, FP32, FP16 and INT8 for the cpu target.

The whole zoo is a bench (docs/zoo.md); here each family users deploy most is built small, through the
same child-process path the bench uses, so a regression in any stage on these graphs fails CI.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _zoo():
    spec = importlib.util.spec_from_file_location("zoo", ROOT / "bench" / "zoo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SUBSET = [
    ("timm.models:create_model", 64, ("--factory-arg", "model_name='resnet10t'", "--factory-arg", "num_classes=4")),
    ("timm.models:create_model", 64, ("--factory-arg", "model_name='mobilenetv3_small_050'", "--factory-arg", "num_classes=4")),
    ("timm.models:create_model", 64, ("--factory-arg", "model_name='vit_tiny_patch16_224'", "--factory-arg", "img_size=64",
                               "--factory-arg", "num_classes=4")),
    ("torchvision.models.segmentation:lraspp_mobilenet_v3_large", 64,
     ("--factory-arg", "weights_backbone=None", "--factory-arg", "num_classes=3", "--task", "segmentation")),
]


@pytest.mark.parametrize("source, size, extra", SUBSET, ids=["resnet", "mobilenetv3", "vit", "lraspp"])
def test_family_builds_at_every_precision(tmp_path, source, size, extra):
    zoo = _zoo()
    for precision in zoo.PRECISIONS:
        row = zoo.build_one(source, size, precision, extra, tmp_path, timeout=600)
        assert row["status"] == "built", row
        assert (tmp_path / precision / "manifest.json").is_file()
