"""TensorRT paths: without tensorrt they refuse cleanly; with it (trt marker) they measure."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from edgekit.errors import BackendUnavailableError
from edgekit.profile import engine
from edgekit.timing import TimingConfig

HAS_TRT = importlib.util.find_spec("tensorrt") is not None


@pytest.mark.parametrize("text, expected", [
    ("Row major linear FP32", "fp32"),
    ("Channel major FP16 format where channel % 8 == 0", "fp16"),
    ("Row major linear Half", "fp16"),
    ("Channel major INT8 format where channel % 32 == 0", "int8"),
    ("", "?"),
])
def test_precision_from_inspector_format(text, expected):
    assert engine._precision_from_format(text) == expected


@pytest.mark.skipif(HAS_TRT, reason="tensorrt is installed here")
def test_without_tensorrt_every_entry_point_says_so(tmp_path: Path):
    path = tmp_path / "model.engine"
    path.write_bytes(b"not an engine")
    for call in (lambda: engine.engine_batch_limits(path), lambda: engine.engine_device_memory_mb(path),
                 lambda: engine.time_engine_compute(path, 1, TimingConfig(0, 0, 2)),
                 lambda: engine.engine_layer_report(path, 1, 2)):
        with pytest.raises(BackendUnavailableError, match="TensorRT"):
            call()


@pytest.mark.trt
@pytest.mark.gpu
@pytest.mark.skipif(not HAS_TRT, reason="needs tensorrt")
def test_engine_compute_time_and_layers(tmp_path: Path):
    import tensorrt as trt

    from tests.profile.profile_fixtures import make_cpu_artifact

    onnx_path = make_cpu_artifact(tmp_path / "a", size=32) / "model.onnx"
    logger = trt.Logger(trt.Logger.ERROR)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    assert parser.parse(onnx_path.read_bytes())
    config = builder.create_builder_config()
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    plan = tmp_path / "model.engine"
    plan.write_bytes(bytes(builder.build_serialized_network(network, config)))
    assert engine.engine_batch_limits(plan) == (1, 1)
    times = engine.time_engine_compute(plan, 1, TimingConfig(0.05, 0, 20))
    assert len(times) == 20 and (times > 0).all()
    report = engine.engine_layer_report(plan, 1, runs=5, top=3)
    assert report.source == "tensorrt" and 0 < len(report.layers) <= 3
    assert sum(report.precision_counts.values()) == report.layer_count
