"""Shared fixtures: tiny models and artifacts built in place, no downloads, no torch needed here."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml


def tiny_segmenter_onnx(path: Path, channels: int = 3, classes: int = 3, size: int = 64, batch=1, seed: int = 0) -> Path:
    """A fully convolutional 2-layer segmenter (3x3 conv, ReLU, 1x1 conv) written with onnx.helper.

    Its receptive field is 3x3, so tiled and whole-image results must agree away from edges.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    w1 = rng.normal(0, 0.5, (8, channels, 3, 3)).astype(np.float32)
    b1 = rng.normal(0, 0.1, 8).astype(np.float32)
    w2 = rng.normal(0, 0.5, (classes, 8, 1, 1)).astype(np.float32)
    b2 = np.zeros(classes, np.float32)
    nodes = [
        helper.make_node("Conv", ["input", "w1", "b1"], ["h"], pads=[1, 1, 1, 1], name="conv1"),
        helper.make_node("Relu", ["h"], ["r"], name="relu1"),
        helper.make_node("Conv", ["r", "w2", "b2"], ["logits"], name="conv2"),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_segmenter",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, channels, size, size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, classes, size, size])],
        [numpy_helper.from_array(a, n) for a, n in ((w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2"))],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def squeeze_excited(path: Path) -> Path:
    """The tiny segmenter with a squeeze-excitation gate on its hidden layer (GlobalAveragePool,
    Sigmoid, Mul): every output pixel then reads the whole input, as a DBNet's SE blocks do."""
    import onnx
    from onnx import helper

    model = onnx.load(str(path))
    nodes = list(model.graph.node)
    last = nodes[-1]
    last.input[0] = "gated"
    gate = [helper.make_node("GlobalAveragePool", ["r"], ["pooled"], name="se_pool"),
            helper.make_node("Sigmoid", ["pooled"], ["weight"], name="se_sigmoid"),
            helper.make_node("Mul", ["r", "weight"], ["gated"], name="se_mul")]
    del model.graph.node[:]
    model.graph.node.extend(nodes[:-1] + gate + [last])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def make_cpu_artifact(folder: Path, size: int = 64, batch=1, classes: int = 3, seed: int = 0) -> Path:
    """An artifact folder as `edgekit build --target cpu` lays it out, around the tiny segmenter."""
    from edgekit.artifact.manifest import Manifest, TensorSpec, seal

    folder.mkdir(parents=True, exist_ok=True)
    tiny_segmenter_onnx(folder / "model.onnx", classes=classes, size=size, batch=batch, seed=seed)
    manifest = Manifest(
        target="cpu",
        backend="onnxruntime",
        precision="fp32",
        model_file="model.onnx",
        inputs=(TensorSpec("input", (batch, 3, size, size)),),
        outputs=(TensorSpec("logits", (batch, classes, size, size)),),
        task="segmentation",
        classes=tuple(f"class{i}" for i in range(classes)),
        tile=(size, size),
        stride=1,
    )
    seal(folder, manifest)
    return folder


@pytest.fixture
def cpu_artifact(tmp_path: Path) -> Path:
    """A sealed cpu artifact of a tiny 64x64 segmenter, batch 1."""
    return make_cpu_artifact(tmp_path / "artifact")



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
    """A segmentation recipe: timm test_convnext + FPN head, 64x64, random weights."""
    return write_recipe(tmp_path)


def declare_units(folder: Path, scale: float, bands: tuple[int, ...] | None = None) -> Path:
    """Re-seal an artifact whose manifest declares other input units (``scale``, ``bands``)."""
    from dataclasses import replace

    from edgekit.artifact.manifest import read_manifest, seal

    manifest = read_manifest(folder)
    seal(folder, replace(manifest, preprocess=manifest.preprocess.with_units(scale, bands)))
    return folder


def image_sets(root: Path, train: int = 4, val: int = 2, size: int = 64, masks: bool = True) -> tuple[Path, Path]:
    """Random training and validation PNGs under ``root`` (``val/masks`` with 3 random labels when ``masks``)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    train_dir, val_dir = root / "train", root / "val"
    train_dir.mkdir(parents=True)
    (val_dir / "masks" if masks else val_dir).mkdir(parents=True)
    for i in range(train):
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(train_dir / f"t{i}.png")
    for i in range(val):
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(val_dir / f"v{i}.png")
        if masks:
            Image.fromarray(rng.integers(0, 3, (size, size), dtype=np.uint8)).save(val_dir / "masks" / f"v{i}.png")
    return train_dir, val_dir
