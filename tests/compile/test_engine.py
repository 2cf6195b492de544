"""Engine building. The version branch is pure and tested everywhere; builds need TensorRT and a GPU."""
from __future__ import annotations

from pathlib import Path

import pytest

from edgekit.compile.engine import BuildMode, EngineSettings, build_engine, build_mode
from edgekit.errors import ConfigError
from edgekit.artifact.manifest import TensorSpec

from tests.conftest import tiny_segmenter_onnx


@pytest.mark.parametrize("version", ["10.3.0.30", "10.14.1", "11.0.0"])
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_tensorrt_10_and_later_build_strongly_typed_without_flags(version, precision):
    assert build_mode(version, precision) == BuildMode(strongly_typed=True, fp16=False, int8=False)


@pytest.mark.parametrize("precision, fp16, int8", [("fp32", False, False), ("fp16", True, False), ("int8", True, True)])
def test_tensorrt_8_gets_flags_matching_the_precision(precision, fp16, int8):
    assert build_mode("8.5.2.2", precision) == BuildMode(strongly_typed=False, fp16=fp16, int8=int8)


def test_settings_are_checked():
    with pytest.raises(ConfigError, match="fp16"):
        EngineSettings(precision="bf8")
    with pytest.raises(ConfigError, match="workspace"):
        EngineSettings(workspace_mb=0)


@pytest.fixture
def trt():
    trt = pytest.importorskip("tensorrt")
    from polygraphy.backend.trt import get_trt_logger

    if trt.Builder(get_trt_logger()) is None:
        pytest.skip("TensorRT finds no GPU here")
    return trt


@pytest.mark.trt
def test_static_engine_with_timing_cache(trt, tmp_path: Path):
    onnx_path = tiny_segmenter_onnx(tmp_path / "m.onnx", size=32)
    cache = tmp_path / "timing.cache"
    mode = build_engine(onnx_path, tmp_path / "m.engine", (TensorSpec("input", (1, 3, 32, 32)),),
                        EngineSettings(workspace_mb=64, timing_cache=cache))
    assert mode.strongly_typed == (int(trt.__version__.split(".")[0]) >= 10)
    assert (tmp_path / "m.engine").stat().st_size > 0 and cache.stat().st_size > 0


@pytest.mark.trt
def test_dynamic_batch_gets_a_profile(trt, tmp_path: Path):
    from polygraphy.backend.trt import EngineFromBytes

    onnx_path = tiny_segmenter_onnx(tmp_path / "m.onnx", size=32, batch="N")
    build_engine(onnx_path, tmp_path / "m.engine", (TensorSpec("input", ("N", 3, 32, 32)),),
                 EngineSettings(workspace_mb=64, batch=(1, 2, 4)))
    engine = EngineFromBytes((tmp_path / "m.engine").read_bytes())()
    lo, opt, hi = engine.get_tensor_profile_shape("input", 0)
    assert (lo[0], opt[0], hi[0]) == (1, 2, 4)


def test_only_the_batch_axis_may_be_dynamic(tmp_path: Path):
    pytest.importorskip("polygraphy")
    from edgekit.compile.engine import _profiles

    assert _profiles((TensorSpec("input", (1, 3, 8, 8)),), (1, 1, 1)) is None
    with pytest.raises(ConfigError, match="only the batch axis"):
        _profiles((TensorSpec("input", ("N", 3, "H", 8)),), (1, 2, 4))
