"""Tiny detection graphs for tests: constant outputs of known tensors, and a square finder."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def constant_onnx(path: Path, outputs: dict[str, np.ndarray], size: int = 32, batch: int = 1) -> Path:
    """An ONNX graph with an image input whose outputs are the given constant tensors."""
    import onnx
    from onnx import helper, numpy_helper

    nodes = [helper.make_node("Constant", [], [name], value=numpy_helper.from_array(arr, f"{name}_value"))
             for name, arr in outputs.items()]
    outs = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), list(a.shape))
            for n, a in outputs.items()]
    inp = helper.make_tensor_value_info("images", onnx.TensorProto.FLOAT, [batch, 3, size, size])
    model = helper.make_model(helper.make_graph(nodes, "constant_detector", [inp], outs),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def square_finder_onnx(path: Path, size: int = 64, square: int = 9, batch: int = 1) -> Path:
    """A YOLOv8-format detector of bright ``square`` x ``square`` squares on a dark background.

    Every pixel predicts a square box centred on it; its score is high only where the mean
    brightness of the square around it is (almost) one, i.e. at the centre of a whole square.
    Squares cut by the tile border score low (the padding counts as dark).
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    n = size * size
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    grid = np.stack([xs.ravel(), ys.ravel(), np.full(n, square, np.float32), np.full(n, square, np.float32)])
    inits = [numpy_helper.from_array(grid[None].repeat(batch, 0), "grid"),
             numpy_helper.from_array(np.array([60.0], np.float32), "gain"),
             numpy_helper.from_array(np.array([-0.95 * 60.0], np.float32), "bias"),
             numpy_helper.from_array(np.array([batch, 1, n], np.int64), "flat")]
    p = square // 2
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["gray"], axes=[1], keepdims=1),
        helper.make_node("AveragePool", ["gray"], ["mean"], kernel_shape=[square, square], pads=[p, p, p, p],
                         count_include_pad=1),
        helper.make_node("Mul", ["mean", "gain"], ["m1"]),
        helper.make_node("Add", ["m1", "bias"], ["m2"]),
        helper.make_node("Sigmoid", ["m2"], ["score"]),
        helper.make_node("Reshape", ["score", "flat"], ["scores"]),
        helper.make_node("Concat", ["grid", "scores"], ["output0"], axis=1),
    ]
    graph = helper.make_graph(
        nodes, "square_finder",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [batch, 3, size, size])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [batch, 5, n])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def run_onnx(path: Path, size: int = 32, batch: int = 1):
    """(outputs by name, output specs) of an ONNX model on a zero image, through edgekit's ORT runner."""
    from edgekit.runtime.onnxrt import OnnxRuntimeRunner

    with OnnxRuntimeRunner(path) as runner:
        out = runner.infer({"images": np.zeros((batch, 3, size, size), np.float32)})
        return out, runner.output_specs()


def make_detector_artifact(folder: Path, size: int = 64, square: int = 9, batch: int = 1,
                           classes: tuple[str, ...] = ("square",)) -> Path:
    """A sealed cpu artifact (task detection, class ``square`` unless ``classes`` says otherwise: ``()``
    names none) around :func:`square_finder_onnx`."""
    from edgekit.artifact.manifest import Manifest, TensorSpec, seal
    from edgekit.preprocess import Preprocess

    folder.mkdir(parents=True, exist_ok=True)
    square_finder_onnx(folder / "model.onnx", size=size, square=square, batch=batch)
    manifest = Manifest(
        target="cpu", backend="onnxruntime", precision="fp32", model_file="model.onnx",
        inputs=(TensorSpec("images", (batch, 3, size, size)),),
        outputs=(TensorSpec("output0", (batch, 5, size * size)),),
        preprocess=Preprocess(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)),
        task="detection", classes=tuple(classes), tile=(size, size), stride=1,
    )
    seal(folder, manifest)
    return folder


def squares_image(height: int, width: int, corners: list[tuple[int, int]], square: int = 9,
                  background: int = 20) -> np.ndarray:
    """(H, W, 3) uint8: white ``square`` squares with top-left corners ``corners`` (row, col) on grey."""
    img = np.full((height, width, 3), background, np.uint8)
    for r, c in corners:
        img[r:r + square, c:c + square] = 255
    return img


def squares_calib_val(folder: Path, count: int, seed: int, size: int = 64) -> tuple[Path, Path]:
    """``folder/calib`` and ``folder/val``, ``count`` images each of three random squares (the
    square finder's calibration and held-out sets); returns both folders."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for name in ("calib", "val"):
        (folder / name).mkdir()
        for i in range(count):
            corners = [tuple(int(v) for v in rng.integers(0, size - 10, 2)) for _ in range(3)]
            Image.fromarray(squares_image(size, size, corners)).save(folder / name / f"{i}.png")
    return folder / "calib", folder / "val"


def expected_boxes(corners: list[tuple[int, int]], square: int = 9) -> np.ndarray:
    """x1, y1, x2, y2 of each square, sorted by (y1, x1)."""
    b = np.array([[c, r, c + square, r + square] for r, c in corners], np.float32)
    return b[np.lexsort((b[:, 0], b[:, 1]))]


def anchor_free_finder_onnx(path: Path, size: int = 32, pixels: bool = False, bright: float = 0.95) -> Path:
    """A one-class anchor-free head (1, N, 6), one row per grid cell of strides 8, 16, 32: a cell
    whose mean brightness (0..1) is past ``bright`` has objectness ~1 and a box that is the cell
    itself. ``pixels`` False: YOLOX's raw head (offsets 0.5, log sizes 0); True: the same boxes
    already in pixels (centre and size of the cell), as YOLOv6 exports them."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    inits, nodes, levels = [], [], []
    inits += [numpy_helper.from_array(np.array([60.0], np.float32), "gain"),
              numpy_helper.from_array(np.array([-bright * 60.0], np.float32), "bias")]
    nodes.append(helper.make_node("ReduceMean", ["images"], ["gray"], axes=[1], keepdims=1))
    for stride in (8, 16, 32):
        side = size // stride
        ys, xs = np.mgrid[0:side, 0:side].astype(np.float32)
        box = np.stack([(xs + 0.5) * stride, (ys + 0.5) * stride, np.full_like(xs, stride), np.full_like(xs, stride)]) \
            if pixels else np.stack([np.full_like(xs, 0.5), np.full_like(xs, 0.5), 0 * xs, 0 * xs])
        inits += [numpy_helper.from_array(box[None], f"box{stride}"),
                  numpy_helper.from_array(np.ones((1, 1, side, side), np.float32), f"cls{stride}"),
                  numpy_helper.from_array(np.array([1, 6, side * side], np.int64), f"flat{stride}")]
        nodes += [helper.make_node("AveragePool", ["gray"], [f"mean{stride}"], kernel_shape=[stride, stride],
                                   strides=[stride, stride]),
                  helper.make_node("Mul", [f"mean{stride}", "gain"], [f"m{stride}"]),
                  helper.make_node("Add", [f"m{stride}", "bias"], [f"a{stride}"]),
                  helper.make_node("Sigmoid", [f"a{stride}"], [f"obj{stride}"]),
                  helper.make_node("Concat", [f"box{stride}", f"obj{stride}", f"cls{stride}"], [f"level{stride}"], axis=1),
                  helper.make_node("Reshape", [f"level{stride}", f"flat{stride}"], [f"rows{stride}"])]
        levels.append(f"rows{stride}")
    nodes += [helper.make_node("Concat", levels, ["rows"], axis=2),
              helper.make_node("Transpose", ["rows"], ["output"], perm=[0, 2, 1])]
    n = sum((size // s) ** 2 for s in (8, 16, 32))
    graph = helper.make_graph(nodes, "anchor_free_finder",
                              [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size, size])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, n, 6])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return path
