"""A tiny segmenter with a known answer: its middle conv is ruined by int8, the others are not.

conv1 (3x3, 3->8) -> ReLU -> conv2 (1x1, 8->8) -> ReLU -> conv3 (1x1, 8->3) -> logits.
conv1's channel 7 is always 0 (zero weights, negative bias, ReLU); conv2 reads it with a weight of
1000 in every output channel, so per-channel int8 scales of conv2 are ~8 and its real weights
(~0.5) all round to 0: quantized, conv2 outputs its bias alone. The outlier changes nothing in
float (it multiplies zeros).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

SIZE = 16
NODES = ("conv1", "conv2", "conv3")


def fragile_segmenter_onnx(path: Path, seed: int = 0) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    w1 = rng.normal(0, 0.5, (8, 3, 3, 3)).astype(np.float32)
    b1 = rng.normal(0, 0.1, 8).astype(np.float32)
    w1[7], b1[7] = 0.0, -1.0
    w2 = rng.normal(0, 0.5, (8, 8, 1, 1)).astype(np.float32)
    w2[:, 7] = 1000.0
    b2 = rng.normal(0, 0.1, 8).astype(np.float32)
    w3 = rng.normal(0, 0.5, (3, 8, 1, 1)).astype(np.float32)
    b3 = np.zeros(3, np.float32)
    inits = {"net.a.conv.weight": w1, "net.a.conv.bias": b1, "net.b.conv.weight": w2, "net.b.conv.bias": b2,
             "net.c.conv.weight": w3, "net.c.conv.bias": b3}
    nodes = [
        helper.make_node("Conv", ["input", "net.a.conv.weight", "net.a.conv.bias"], ["h1"], pads=[1, 1, 1, 1], name="conv1"),
        helper.make_node("Relu", ["h1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "net.b.conv.weight", "net.b.conv.bias"], ["h2"], name="conv2"),
        helper.make_node("Relu", ["h2"], ["r2"], name="relu2"),
        helper.make_node("Conv", ["r2", "net.c.conv.weight", "net.c.conv.bias"], ["logits"], name="conv3"),
    ]
    graph = helper.make_graph(
        nodes, "fragile", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3, SIZE, SIZE])],
        [numpy_helper.from_array(a, n) for n, a in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def image_folder(folder: Path, count: int, seed: int) -> Path:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)).save(folder / f"img{i:02d}.png")
    return folder


def masks_from_model(model: Path, images: Path) -> Path:
    """Ground truth = the FP32 model's own labels (so FP32 scores 100 and drops are exact), its input
    prepared as a build of ``model`` prepares it."""
    import warnings

    import onnxruntime as ort
    from PIL import Image

    from edgekit.convert.source import resolve_source

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the build's warning that it assumes the normalisation
        preprocess = resolve_source(str(model), task="segmentation").recipe.preprocess
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    out = images / "masks"
    out.mkdir(exist_ok=True)
    for path in sorted(images.glob("*.png")):
        x = preprocess.apply(np.asarray(Image.open(path))[None])
        label = session.run(None, {"input": x})[0].argmax(1)[0].astype(np.uint8)
        Image.fromarray(label).save(out / path.name)
    return out


def fragile_setup(root: Path) -> dict:
    """The model, calibration images and validation images with masks, under ``root``."""
    model = fragile_segmenter_onnx(root / "fragile.onnx")
    calib = image_folder(root / "calib", 8, seed=1)
    val = image_folder(root / "val", 6, seed=2)
    masks_from_model(model, val)
    return {"model": model, "calib": calib, "val": val}
