"""Per-node cost from real ONNX Runtime profiles of the tiny model (fp32 and int8)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgekit.errors import InputError
from edgekit.profile.layers import layers_from_ort_profile, ort_node_precision
from edgekit.runtime.onnxrt import OnnxRuntimeRunner, SessionSettings
from tests.profile.profile_fixtures import make_cpu_artifact


def _profile(model: Path, tmp_path: Path, runs: int = 4, optimization: str = "disable") -> str:
    runner = OnnxRuntimeRunner(model, SessionSettings(optimization=optimization, profile_prefix=str(tmp_path / "p")))
    with runner:
        for _ in range(runs):
            runner.infer({"input": np.random.default_rng(0).normal(size=(1, 3, 32, 32)).astype(np.float32)})
    return runner.last_profile


def test_nodes_times_and_shares_of_a_real_profile(tmp_path: Path):
    artifact = make_cpu_artifact(tmp_path / "a", size=32)
    path = _profile(artifact / "model.onnx", tmp_path, runs=4)
    report = layers_from_ort_profile(path, top=2, skip_runs=1)
    events = [e for e in json.loads(Path(path).read_text()) if e.get("cat") == "Node"]
    assert report.source == "onnxruntime" and report.runs == 3
    assert report.layer_count == 3  # conv1, relu1, conv2: optimisations disabled
    assert len(report.layers) == 2 and report.layers[0].ms >= report.layers[1].ms
    assert {layer.name for layer in report.layers} <= {"conv1", "relu1", "conv2"}
    assert report.precision_counts == {"fp32": 3}
    assert report.providers == {"CPUExecutionProvider": 3}
    full = layers_from_ort_profile(path, top=10, skip_runs=1)
    assert sum(layer.share for layer in full.layers) == pytest.approx(1.0)
    assert full.total_ms == pytest.approx(sum(layer.ms for layer in full.layers))
    assert full.total_ms * 1000 * 3 <= sum(e["dur"] for e in events)  # warm-up run excluded


def test_int8_nodes_are_counted_as_int8(tmp_path: Path):
    from onnxruntime.quantization import QuantType, quantize_dynamic

    artifact = make_cpu_artifact(tmp_path / "a", size=32)
    q = tmp_path / "int8.onnx"
    quantize_dynamic(str(artifact / "model.onnx"), str(q), weight_type=QuantType.QUInt8)
    report = layers_from_ort_profile(_profile(q, tmp_path, optimization="basic"), top=20)
    assert report.precision_counts.get("int8", 0) >= 1
    assert any(layer.op.startswith(("ConvInteger", "QLinear", "DynamicQuantize")) for layer in report.layers)


@pytest.mark.parametrize("op, types, expected", [
    ("Conv", [{"float": [1, 3]}], "fp32"),
    ("Conv", [{"float16": [1, 3]}], "fp16"),
    ("QLinearConv", [{"uint8": [1]}], "int8"),
    ("ConvInteger", [{"int32": [1]}], "int8"),
    ("Shape", [{"int64": [4]}], "int"),
    ("Identity", [], "?"),
])
def test_node_precision(op, types, expected):
    assert ort_node_precision(op, types) == expected


def test_missing_or_foreign_profile_is_an_input_error(tmp_path: Path):
    with pytest.raises(InputError):
        layers_from_ort_profile(tmp_path / "none.json")
    (tmp_path / "x.json").write_text(json.dumps([{"cat": "Session", "name": "model_loading_uri", "ts": 1}]))
    with pytest.raises(InputError, match="model_run"):
        layers_from_ort_profile(tmp_path / "x.json")
