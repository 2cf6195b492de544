"""TensorRTRunner against ONNX Runtime on the tiny segmenter; needs TensorRT and a GPU."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgekit.errors import ArtifactError, BackendUnavailableError, DeviceMismatchError
from edgekit.runtime.trt import TensorRTRunner, import_tensorrt

from tests.conftest import tiny_segmenter_onnx


def test_missing_tensorrt_is_a_user_error():
    try:
        import tensorrt  # noqa: F401
        pytest.skip("TensorRT is installed here")
    except ImportError:
        pass
    with pytest.raises(BackendUnavailableError, match="TensorRT is not installed"):
        import_tensorrt()
    with pytest.raises(BackendUnavailableError):
        TensorRTRunner("model.engine").activate()


@pytest.fixture
def engine(tmp_path: Path) -> Path:
    trt = pytest.importorskip("tensorrt")
    from polygraphy.backend.trt import get_trt_logger

    from edgekit.compile.engine import EngineSettings, build_engine
    from edgekit.artifact.manifest import TensorSpec

    if trt.Builder(get_trt_logger()) is None:
        pytest.skip("TensorRT finds no GPU here")
    onnx_path = tiny_segmenter_onnx(tmp_path / "model.onnx", size=32, batch="N")
    build_engine(onnx_path, tmp_path / "model.engine", (TensorSpec("input", ("N", 3, 32, 32)),),
                 EngineSettings(workspace_mb=64, batch=(1, 2, 2)))
    return tmp_path / "model.engine"


@pytest.mark.trt
def test_runner_matches_onnx_runtime(engine: Path):
    from edgekit.runtime.onnxrt import OnnxRuntimeRunner

    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    with TensorRTRunner(engine) as runner:
        assert [s.name for s in runner.input_specs()] == ["input"]
        assert runner.output_specs()[0].dtype == "float32"
        first = runner.infer({"input": x})["logits"]
        second = runner.infer({"input": x[:1]})["logits"]
    with OnnxRuntimeRunner(engine.with_suffix(".onnx")) as ort_runner:
        ref = ort_runner.infer({"input": x})["logits"]
    np.testing.assert_allclose(first, ref, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(second, ref[:1], rtol=1e-3, atol=1e-3)  # the first result was not overwritten


@pytest.mark.trt
def test_bad_engine_files(engine: Path, tmp_path: Path):
    with pytest.raises(ArtifactError, match="does not exist"):
        TensorRTRunner(tmp_path / "none.engine").activate()
    junk = tmp_path / "junk.engine"
    junk.write_bytes(engine.read_bytes()[:64])
    with pytest.raises(DeviceMismatchError, match="edgekit compile"):
        TensorRTRunner(junk).activate()
