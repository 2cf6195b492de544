"""ONNX Runtime on the GPU: provider selection and its one-line errors, and IO binding, tested on the CPU."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from edgekit.errors import BackendUnavailableError, ConfigError  # noqa: E402
from edgekit.runtime.onnxrt import OnnxRuntimeRunner, SessionSettings, providers_for  # noqa: E402
from tests.conftest import tiny_segmenter_onnx  # noqa: E402

GPU_ORT = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]


def test_cuda_and_tensorrt_providers_in_priority_order():
    assert providers_for("onnxruntime-cuda", 0, GPU_ORT, gpus=1) == ("CUDAExecutionProvider", "CPUExecutionProvider")
    assert providers_for("onnxruntime-trt", 1, GPU_ORT, gpus=2)[:2] == ("TensorrtExecutionProvider", "CUDAExecutionProvider")
    assert providers_for("onnxruntime", 5, ["CPUExecutionProvider"], gpus=0) == ("CPUExecutionProvider",)


def test_provider_missing_from_this_onnxruntime_is_one_line():
    with pytest.raises(BackendUnavailableError, match="install onnxruntime-gpu instead of onnxruntime"):
        providers_for("onnxruntime-cuda", 0, ["CPUExecutionProvider"], gpus=1)


def test_gpu_providers_without_a_gpu():
    with pytest.raises(BackendUnavailableError, match="needs a CUDA GPU; none is visible"):
        providers_for("onnxruntime-trt", 0, GPU_ORT, gpus=0)


def test_device_index_out_of_range_names_the_valid_ones(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match=r"--device 2 is out of range: this machine has 2 CUDA devices \(0\.\.1\)"):
        providers_for("onnxruntime-cuda", 2, GPU_ORT, gpus=2)
    # open_runner hands its device to that check (the probes say: onnxruntime-gpu, one GPU)
    import edgekit.device
    import edgekit.runtime.onnxrt
    from edgekit.artifact.folder import load_artifact
    from edgekit.runtime.open import open_runner
    from tests.conftest import make_cpu_artifact

    monkeypatch.setattr(edgekit.device, "gpu_count", lambda lib=None: 1)
    monkeypatch.setattr(edgekit.runtime.onnxrt, "available_providers", lambda: GPU_ORT)
    artifact = load_artifact(make_cpu_artifact(tmp_path / "art"))
    with pytest.raises(ConfigError, match=r"--device 1 is out of range: this machine has 1 CUDA device \(0\)$"):
        open_runner(artifact, "onnxruntime-trt", device=1)
    with pytest.raises(ConfigError, match="--device -1 is not a GPU index"):
        open_runner(artifact, "onnxruntime-cuda", device=-1)


def test_a_provider_that_is_not_here_is_an_error_not_a_silent_cpu_run(tmp_path):
    import onnxruntime

    model = tiny_segmenter_onnx(tmp_path / "m.onnx")
    absent = "MIGraphXExecutionProvider"
    assert absent not in onnxruntime.get_available_providers()
    with pytest.raises(BackendUnavailableError, match=absent):
        with OnnxRuntimeRunner(model, SessionSettings(providers=(absent, "CPUExecutionProvider"))):
            pass


def test_io_binding_reuses_its_buffers_and_returns_each_batch_its_own_outputs(tmp_path):
    """The bound path gives the plain session's outputs, batch after batch, and an earlier batch's
    outputs are not overwritten by the next (the buffers are reused)."""
    model = tiny_segmenter_onnx(tmp_path / "m.onnx", batch=2)
    rng = np.random.default_rng(0)
    batches = [rng.standard_normal((2, 3, 64, 64)).astype(np.float32) for _ in range(3)]
    originals = [b.copy() for b in batches]
    with OnnxRuntimeRunner(model) as plain, OnnxRuntimeRunner(model, SessionSettings(io_binding=True)) as bound:
        name = plain.input_specs()[0].name
        expected = [next(iter(plain.infer({name: b}).values())) for b in batches]
        kept = [next(iter(bound.infer({name: b}).values())) for b in batches]
        assert bound._bound is not None and len(bound._bound.inputs) == 1
    for want, got in zip(expected, kept):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert not np.allclose(kept[0], kept[1])
    assert all(np.array_equal(b, o) for b, o in zip(batches, originals))  # inputs are not written through
