"""TensorRTRunner against ONNX Runtime on the tiny segmenter; needs TensorRT, cuda-python and a GPU.
Its decisions (buffers, shapes, padding, CUDA graph steps) are tested without them in test_trt_buffers."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgekit.errors import ArtifactError, BackendUnavailableError, DeviceMismatchError, InputError
from edgekit.runtime.trt import TensorRTRunner, import_cudart, import_tensorrt

from tests.conftest import tiny_segmenter_onnx


def _absent(module: str) -> None:
    try:
        __import__(module)
        pytest.skip(f"{module} is installed here")
    except ImportError:
        pass


def test_missing_tensorrt_is_a_user_error():
    _absent("tensorrt")
    with pytest.raises(BackendUnavailableError, match="TensorRT is not installed"):
        import_tensorrt()
    with pytest.raises(BackendUnavailableError):
        TensorRTRunner("model.engine").activate()


def test_missing_cuda_python_is_a_user_error():
    _absent("cuda")
    with pytest.raises(BackendUnavailableError, match=r"cuda-python is not installed: pip install 'edgekit\[trt\]'"):
        import_cudart()


CUDA_USERS = ("edgekit/runtime/trt.py", "edgekit/profile/engine.py", "edgekit/compile/engine.py")


def test_every_cuda_python_call_fits_the_installed_bindings():
    """Each ``cudart.<name>(...)`` of edgekit exists in the installed cuda-python (the real one, not a
    stand-in) and takes the arguments given; without a GPU a call returns an error, which is raised."""
    import ast
    import inspect

    cudart = pytest.importorskip("cuda.bindings.runtime")
    from edgekit.errors import EdgekitError
    from edgekit.runtime.trt import cuda_call

    root = Path(__file__).resolve().parents[2]
    calls = {}
    for rel in CUDA_USERS:
        for node in ast.walk(ast.parse((root / rel).read_text())):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "cudart":
                calls.setdefault(node.attr, None)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                    isinstance(node.func.value, ast.Name) and node.func.value.id == "cudart":
                calls[node.func.attr] = len(node.args)
    assert {"cudaMallocHost", "cudaMemcpyAsync", "cudaStreamBeginCapture", "cudaGraphLaunch"} <= set(calls)
    for name, args in calls.items():
        assert hasattr(cudart, name), name
        if args is not None:
            inspect.signature(getattr(cudart, name)).bind(*[None] * args)  # TypeError if the arity is wrong
    err, ptr = cudart.cudaMalloc(16)
    if int(err) != 0:  # no driver or no GPU here: the error is raised, not ignored
        with pytest.raises(EdgekitError, match="CUDA call failed"):
            cuda_call((err, ptr))
    else:
        cudart.cudaFree(ptr)


def _build(tmp_path: Path, batch: tuple[int, int, int], name: str = "model") -> Path:
    trt = pytest.importorskip("tensorrt")
    pytest.importorskip("polygraphy")
    pytest.importorskip("cuda")
    from edgekit.artifact.manifest import TensorSpec
    from edgekit.compile.engine import EngineSettings, build_engine

    if trt.Builder(trt.Logger(trt.Logger.ERROR)) is None:
        pytest.skip("TensorRT finds no GPU here")
    onnx_path = tiny_segmenter_onnx(tmp_path / f"{name}.onnx", size=32, batch="N")
    build_engine(onnx_path, tmp_path / f"{name}.engine", (TensorSpec("input", ("N", 3, 32, 32)),),
                 EngineSettings(workspace_mb=64, batch=batch))
    return tmp_path / f"{name}.engine"


@pytest.fixture
def engine(tmp_path: Path) -> Path:
    return _build(tmp_path, (1, 2, 2))


def _reference(engine: Path, x: np.ndarray) -> np.ndarray:
    from edgekit.runtime.onnxrt import OnnxRuntimeRunner

    with OnnxRuntimeRunner(engine.with_suffix(".onnx")) as runner:
        return runner.infer({"input": x})["logits"]


@pytest.mark.trt
@pytest.mark.parametrize("cuda_graph", [False, True])
def test_runner_matches_onnx_runtime_without_allocating_per_batch(engine: Path, cuda_graph: bool):
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    ref = _reference(engine, x)
    with TensorRTRunner(engine, cuda_graph=cuda_graph) as runner:
        assert [s.name for s in runner.input_specs()] == ["input"]
        assert runner.output_specs()[0].dtype == "float32"
        buffers = dict(runner._device_ptrs), dict(runner._host_ptrs)
        outs = [runner.infer({"input": x})["logits"] for _ in range(4)]  # eager, capture, replay, replay
        one = runner.infer({"input": x[:1]})["logits"]  # new shapes: the graph goes
        again = runner.infer({"input": x})["logits"]
        assert (dict(runner._device_ptrs), dict(runner._host_ptrs)) == buffers  # allocated once
        assert runner.graph_note is None
        with pytest.raises(InputError, match="batches 1 to 2"):
            runner.infer({"input": np.concatenate([x, x])})
    for out in outs + [again]:
        np.testing.assert_allclose(out, ref, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(one, ref[:1], rtol=1e-3, atol=1e-3)
    assert not np.shares_memory(outs[0], outs[1])  # handed out as copies


@pytest.mark.trt
def test_a_batch_below_the_profile_is_padded(tmp_path: Path):
    engine = _build(tmp_path, (2, 2, 2), "fixed")  # min = max, as on DLA
    x = np.random.default_rng(1).standard_normal((2, 3, 32, 32)).astype(np.float32)
    ref = _reference(engine, x)
    with TensorRTRunner(engine) as runner:
        one = runner.infer({"input": x[:1]})["logits"]
    assert one.shape[0] == 1
    np.testing.assert_allclose(one, ref[:1], rtol=1e-3, atol=1e-3)


@pytest.mark.trt
def test_bad_engine_files(engine: Path, tmp_path: Path):
    with pytest.raises(ArtifactError, match="does not exist"):
        TensorRTRunner(tmp_path / "none.engine").activate()
    junk = tmp_path / "junk.engine"
    junk.write_bytes(engine.read_bytes()[:64])
    with pytest.raises(DeviceMismatchError, match="edgekit compile"):
        TensorRTRunner(junk).activate()
    with pytest.raises(DeviceMismatchError, match="DLA core 9"):
        TensorRTRunner(engine, dla_core=9).activate()
