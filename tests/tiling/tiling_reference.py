"""Helpers of the tiling tests: the tiny segmenter's whole-image output computed in NumPy, and the
root conftest's artifact maker (loaded by path: several folders have a conftest.py)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np


def _root_conftest():
    path = Path(__file__).resolve().parents[1] / "conftest.py"
    spec = importlib.util.spec_from_file_location("edgekit_tests_root_conftest_tiling", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_cpu_artifact = _root_conftest().make_cpu_artifact
declare_units = _root_conftest().declare_units


def onnx_weights(model: Path) -> dict[str, np.ndarray]:
    """The initializers of the tiny segmenter (w1, b1, w2, b2)."""
    import onnx
    from onnx import numpy_helper

    return {t.name: numpy_helper.to_array(t) for t in onnx.load(str(model)).graph.initializer}


def whole_image_logits(model: Path, x: np.ndarray) -> np.ndarray:
    """The tiny segmenter (3x3 conv, zero padding, ReLU, 1x1 conv) on a whole (C, H, W) input."""
    w = onnx_weights(model)
    c, h, wd = x.shape
    padded = np.pad(x.astype(np.float64), ((0, 0), (1, 1), (1, 1)))
    hidden = np.zeros((w["w1"].shape[0], h, wd))
    for dy in range(3):
        for dx in range(3):
            patch = padded[:, dy:dy + h, dx:dx + wd]
            hidden += np.einsum("oc,chw->ohw", w["w1"][:, :, dy, dx], patch)
    hidden = np.maximum(hidden + w["b1"][:, None, None], 0)
    return np.einsum("oc,chw->ohw", w["w2"][:, :, 0, 0], hidden) + w["b2"][:, None, None]


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the first axis."""
    e = np.exp(logits - logits.max(axis=0, keepdims=True))
    return e / e.sum(axis=0, keepdims=True)
