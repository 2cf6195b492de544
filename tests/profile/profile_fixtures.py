"""Fixtures of the profile and compare tests: tiny artifacts (fp32, fp16-rounded weights, another
seed), image and mask folders. Import the fixtures by name into a test module."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


from tests.conftest import make_cpu_artifact  # noqa: F401  (re-exported for the profile tests)


def round_weights_fp16(folder: Path, precision: str = "fp16") -> Path:
    """Store an artifact's ONNX initializers at fp16 resolution (kept as float32 tensors), reseal."""
    import onnx
    from onnx import numpy_helper

    from edgekit.artifact.manifest import read_manifest, seal

    path = folder / "model.onnx"
    model = onnx.load(str(path))
    for init in model.graph.initializer:
        array = numpy_helper.to_array(init)
        init.CopyFrom(numpy_helper.from_array(array.astype(np.float16).astype(np.float32), init.name))
    onnx.save(model, str(path))
    seal(folder, read_manifest(folder).evolve(precision=precision))
    return folder


def name_classes(folder: Path, names: tuple[str, ...]) -> Path:
    """Give an artifact's classes these names (``()``: none), resealed."""
    from edgekit.artifact.manifest import read_manifest, seal

    seal(folder, read_manifest(folder).evolve(classes=tuple(names)))
    return folder


@pytest.fixture
def three_artifacts(tmp_path: Path) -> list[Path]:
    """fp32 reference, the same weights rounded to fp16, and a different model (seed 1)."""
    ref = make_cpu_artifact(tmp_path / "tiny_fp32", size=32)
    half = round_weights_fp16(make_cpu_artifact(tmp_path / "tiny_fp16", size=32))
    other = make_cpu_artifact(tmp_path / "tiny_seed1", size=32, seed=1)
    return [ref, half, other]


def write_images(folder: Path, count: int = 3, hw: tuple[int, int] = (48, 40), seed: int = 0) -> Path:
    """Smooth random RGB PNGs (so labels form regions, not noise)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        small = rng.integers(0, 256, (hw[0] // 8 + 1, hw[1] // 8 + 1, 3), dtype=np.uint8)
        image = Image.fromarray(small).resize((hw[1], hw[0]), Image.BILINEAR)
        image.save(folder / f"img{i}.png")
    return folder


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    return write_images(tmp_path / "images")


def write_masks(images: Path, folder: Path, classes: int = 3, hw: tuple[int, int] | None = None, value: int | None = None) -> Path:
    """A label PNG per image: random labels in [0, classes), or ``value`` everywhere."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for img in sorted(images.glob("*.png")):
        w, h = Image.open(img).size
        shape = hw or (h, w)
        mask = np.full(shape, value, np.uint8) if value is not None else rng.integers(0, classes, shape).astype(np.uint8)
        Image.fromarray(mask).save(folder / f"{img.stem}.png")
    return folder
