"""The target decides the opset: every shipped TensorRT target's deployable graph fits its line."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
torch = pytest.importorskip("torch")

from edgekit.convert.opset import fit_opset, graph_opset, opset_problems  # noqa: E402
from edgekit.errors import ConfigError  # noqa: E402
from edgekit.targets import list_targets, tensorrt_line  # noqa: E402

TENSORRT_TARGETS = [t for t in list_targets() if t.is_tensorrt]


class Opset18Net(torch.nn.Module):
    """The ops whose version 18 TensorRT 8.5/8.6 cannot read: a mean over spatial axes (ReduceMean's
    axes became an input at 18) and a bilinear Resize (18 added attributes), with LayerNorm and GELU."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.norm = torch.nn.LayerNorm(8)
        self.head = torch.nn.Conv2d(8, 3, 1)

    def forward(self, x):
        y = self.norm(self.conv(x).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        y = torch.nn.functional.gelu(y)
        y = y - y.mean(dim=(2, 3), keepdim=True)
        y = torch.nn.functional.interpolate(y, scale_factor=0.5, mode="bilinear")
        return torch.nn.functional.interpolate(self.head(y), scale_factor=2, mode="bilinear")


def opset18_net() -> torch.nn.Module:
    torch.manual_seed(0)
    return Opset18Net()


@pytest.fixture(scope="module")
def exported18(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("opset") / "net18.onnx"
    torch.onnx.export(opset18_net().eval(), (torch.randn(1, 3, 32, 32),), str(path), dynamo=True, opset_version=18,
                      external_data=False)
    assert graph_opset(onnx.load(str(path))) == 18
    return path


def _run(path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def test_tensorrt_lines_match_part_by_part():
    assert tensorrt_line("8.5")["max_opset"] == 17
    assert tensorrt_line("8.6.1")["max_opset"] == 17
    assert tensorrt_line("10.1")["line"] == "10"  # not "10.15"
    assert tensorrt_line("10.15.1")["max_opset"] == 24
    assert tensorrt_line("11.5")["max_opset"] == 25
    with pytest.raises(ConfigError, match="not a line edgekit knows"):
        tensorrt_line("7.2")


def test_every_tensorrt_target_has_a_parser_opset():
    assert TENSORRT_TARGETS
    for target in TENSORRT_TARGETS:
        assert target.max_opset == tensorrt_line(target.tensorrt)["max_opset"]
    jp5 = next(t for t in TENSORRT_TARGETS if t.tensorrt.startswith("8."))
    assert jp5.max_opset == 17


def test_version_18_graph_converted_to_17_computes_the_same(exported18, tmp_path):
    before = opset_problems(onnx.load(str(exported18)), 17)
    assert any("ReduceMean" in p for p in before) and any("Resize" in p for p in before)
    path = tmp_path / "net.onnx"
    shutil.copyfile(exported18, path)
    x = np.random.default_rng(1).standard_normal((1, 3, 32, 32)).astype(np.float32)
    fit = fit_opset(path, 17)
    assert (fit.opset_before, fit.opset_after) == (18, 17)
    converted = onnx.load(str(path))
    onnx.checker.check_model(converted)
    assert opset_problems(converted, 17) == []
    np.testing.assert_allclose(_run(path, x), _run(exported18, x), rtol=1e-5, atol=1e-5)


def test_graph_within_the_line_is_left_alone(exported18, tmp_path):
    path = tmp_path / "net.onnx"
    shutil.copyfile(exported18, path)
    before = path.read_bytes()
    fit = fit_opset(path, 20)
    assert not fit.converted and fit.max_rel is None
    assert path.read_bytes() == before


def test_node_of_another_domain_is_refused_by_name(tmp_path):
    from onnx import TensorProto, helper

    node = helper.make_node("FusedGelu", ["x"], ["y"], domain="com.microsoft", name="gelu0")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 4, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    path = tmp_path / "ms.onnx"
    onnx.save(model, str(path))
    with pytest.raises(ConfigError, match="FusedGelu 'gelu0' is of domain com.microsoft"):
        fit_opset(path, 17)


@pytest.mark.parametrize("target", TENSORRT_TARGETS, ids=lambda t: t.name)
def test_shipped_target_deployable_graph_fits_its_tensorrt(target, tmp_path):
    from edgekit.convert.pipeline import BuildConfig, build

    precision = "int8" if target.max_opset < 18 else "fp32"  # Q/DQ converted too where conversion happens
    calib = Path(__file__).resolve().parents[2] / "calib" / "bluemarble"
    config = BuildConfig(target=target.name, precision=precision, input_size=(32, 32), task="segmentation",
                         latency_runs=0, calib=calib if precision == "int8" else None, calib_samples=4)
    result = build("tests.convert.test_opset:opset18_net", tmp_path / "out", config)
    model = onnx.load(str(tmp_path / "out" / result.manifest.model_file))
    assert graph_opset(model) <= target.max_opset
    assert opset_problems(model, target.max_opset) == []
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["opset"] == graph_opset(model)
