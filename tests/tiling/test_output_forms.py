"""Outputs the way models give them: logits at a quarter of the tile are upsampled (bilinear on the
logits, per tile, before blending), and an output that is already probabilities is not softmaxed
again. References are computed here in NumPy / torch, tile by tile."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from edgekit.preprocess import Preprocess
from edgekit.tiling.execute import TileConfig, TileOutputs, infer_image
from edgekit.tiling.merge import upsample_bilinear

onnx = pytest.importorskip("onnx")
TILE, CLASSES, POOL = 16, 3, 4


def weights(seed: int = 5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(0, 1.0, (CLASSES, 3)).astype(np.float32), rng.normal(0, 0.2, CLASSES).astype(np.float32)


def make_artifact(folder: Path, form: str) -> Path:
    """``quarter``: AveragePool stride 4 then a 1x1 conv (logits at 4x4); ``softmax``: a 1x1 conv then Softmax."""
    from onnx import TensorProto, helper, numpy_helper

    from edgekit.artifact.manifest import Manifest, TensorSpec, seal

    folder.mkdir(parents=True)
    w, b = weights()
    side = TILE // POOL if form == "quarter" else TILE
    nodes = [helper.make_node("AveragePool", ["input"], ["x"], kernel_shape=[POOL, POOL], strides=[POOL, POOL])
             if form == "quarter" else helper.make_node("Identity", ["input"], ["x"]),
             helper.make_node("Conv", ["x", "w", "b"], ["logits" if form == "quarter" else "z"])]
    if form == "softmax":
        nodes.append(helper.make_node("Softmax", ["z"], ["logits"], axis=1))
    graph = helper.make_graph(
        nodes, form, [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, TILE, TILE])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, CLASSES, side, side])],
        [numpy_helper.from_array(w[:, :, None, None], "w"), numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.save(model, str(folder / "model.onnx"))
    output = {"stride": float(POOL), "probabilities": False} if form == "quarter" else {"stride": 1.0, "probabilities": True}
    seal(folder, Manifest("cpu", "onnxruntime", "fp32", "model.onnx", (TensorSpec("input", (1, 3, TILE, TILE)),),
                          (TensorSpec("logits", (1, CLASSES, side, side)),), classes=("a", "b", "c"),
                          tile=(TILE, TILE), stride=1, output=output))
    return folder


def reference(pixels: np.ndarray, form: str) -> np.ndarray:
    """(C, H, W) probabilities, tile by tile (no overlap), with torch's bilinear as the upsampler."""
    import torch

    w, b = weights()
    out = np.zeros((CLASSES, *pixels.shape[:2]), np.float32)
    for r in range(0, pixels.shape[0], TILE):
        for c in range(0, pixels.shape[1], TILE):
            x = Preprocess().apply(pixels[None, r:r + TILE, c:c + TILE])[0]
            if form == "quarter":
                x = x.reshape(3, TILE // POOL, POOL, TILE // POOL, POOL).mean(axis=(2, 4))
            z = np.einsum("oc,chw->ohw", w, x) + b[:, None, None]
            if form == "quarter":
                z = torch.nn.functional.interpolate(torch.from_numpy(z[None]), size=(TILE, TILE), mode="bilinear",
                                                    align_corners=False)[0].numpy()
            e = np.exp(z - z.max(0))
            out[:, r:r + TILE, c:c + TILE] = e / e.sum(0)
    return out


def test_upsampling_matches_torch():
    import torch

    x = np.random.default_rng(0).normal(size=(2, 3, 4, 5)).astype(np.float32)
    expected = torch.nn.functional.interpolate(torch.from_numpy(x), size=(16, 13), mode="bilinear", align_corners=False)
    np.testing.assert_allclose(upsample_bilinear(x, (16, 13)), expected.numpy(), atol=1e-5)


@pytest.mark.parametrize("form", ["quarter", "softmax"])
def test_infer_stitches_the_output_as_the_model_gives_it(tmp_path, form):
    artifact = make_artifact(tmp_path / "art", form)
    pixels = np.random.default_rng(1).integers(0, 256, (2 * TILE, 3 * TILE, 3), dtype=np.uint8)
    np.save(tmp_path / "img.npy", pixels)
    outputs = TileOutputs(tmp_path / "mask.tif", tmp_path / "probs.tif")
    infer_image(artifact, tmp_path / "img.npy", outputs, TileConfig(overlap=0, blend="crop"))
    mask = tifffile.imread(outputs.mask)
    probs = tifffile.imread(outputs.probabilities).astype(np.float32).transpose(2, 0, 1)
    expected = reference(pixels, form)
    assert mask.shape == pixels.shape[:2]
    np.testing.assert_allclose(probs, expected, atol=2e-3)  # float16 storage
    top2 = np.sort(expected, axis=0)[-2:]
    confident = top2[1] - top2[0] > 5e-3
    assert confident.mean() > 0.9 and np.array_equal(mask[confident], expected.argmax(0)[confident])
