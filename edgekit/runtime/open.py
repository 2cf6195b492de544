"""The runner for an artifact: which backend runs which of its files, on which device; and the
runner of a bare ONNX file on the cpu target's runtime.

The one place a runner is made (`infer`, `run`, `profile`, `compare` ask here for an artifact's;
the build's checks, compile and optimize for an ONNX file's).
"""
from __future__ import annotations

__all__ = ["BACKENDS", "GPU_BACKENDS", "BF16_ON_ORT", "check_device", "cpu_runner", "open_runner"]

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from edgekit.errors import ArtifactError, ConfigError

if TYPE_CHECKING:
    from edgekit.artifact.folder import Artifact
    from edgekit.runtime.base import Runner

# onnxruntime-cuda / onnxruntime-trt: the deployable ONNX on onnxruntime-gpu's CUDA / TensorRT provider
BACKENDS = ("onnxruntime", "onnxruntime-cuda", "onnxruntime-trt", "openvino", "tensorrt", "torch")
# the backends that run on a GPU, the one --device picks; onnxruntime and openvino run on the CPU
GPU_BACKENDS = ("onnxruntime-cuda", "onnxruntime-trt", "tensorrt", "torch")
BF16_ON_ORT = ("ONNX Runtime has no bf16 kernels for the CPU: bf16 runs on OpenVINO "
               "(drop --runtime onnxruntime, or build --precision fp32)")


def open_runner(artifact: "Artifact", backend: str | None = None, threads: int = 0,
                providers: tuple[str, ...] | None = None, device: int = 0) -> "Runner":
    """A runner (not yet active) for ``artifact``.

    Args:
        backend: one of :data:`BACKENDS`; None: the manifest's. Another backend than the manifest's
            (``onnxruntime`` on an OpenVINO or TensorRT artifact) runs the deployable ONNX.
        threads: CPU threads (0: the backend's default).
        providers: ONNX Runtime providers, overriding what ``backend`` asks for.
        device: the GPU index (``onnxruntime-cuda``/``-trt``, ``tensorrt``, ``torch``).
    """
    backend = backend or artifact.manifest.backend
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    check_device(device, backend)
    if backend == "tensorrt":
        if artifact.engine_path is None:
            raise ArtifactError(f"{artifact.folder} has no engine yet: run `edgekit compile {artifact.folder}` on the "
                                "device, or use --backend onnxruntime")
        artifact.check_device(index=device)
        from edgekit.runtime.trt import TensorRTRunner

        session = artifact.manifest.session.get("tensorrt", {})  # as `edgekit compile` built and checked it
        core = session.get("dla_core") if session.get("dla") else None
        return TensorRTRunner(artifact.engine_path, device=device, dla_core=core,
                              cuda_graph=bool(session.get("cuda_graph", False)))
    if backend == "openvino":
        from edgekit.runtime.openvino_rt import OpenVINORunner, OpenVINOSettings

        settings = OpenVINOSettings.from_dict(artifact.manifest.session.get("openvino", {}))
        if threads:
            settings = replace(settings, threads=threads)
        manifest = artifact.manifest
        path = artifact.engine_path if manifest.backend == "openvino" and artifact.engine_path else artifact.model_path
        return OpenVINORunner(path, settings)
    if backend == "torch":
        from edgekit.runtime.torch_runner import TorchRunner

        return TorchRunner.from_manifest(artifact.manifest, artifact.folder, device=f"cuda:{device}" if device else None)
    return _onnxruntime(artifact, backend, threads, providers, device)


def check_device(device: int, backend: str | None = None) -> None:
    """``--device``: a GPU index, counted from 0; a backend that runs on the CPU takes 0 only (as
    trtexec's ``--device``, a device index means something to GPU backends alone).

    Args:
        backend: the backend the index is for; None (not known yet: the manifest's) checks the index alone.

    Raises:
        ConfigError: a negative index, or another than 0 for a CPU backend.
    """
    if device < 0:
        raise ConfigError(f"--device {device} is not a GPU index: GPUs are counted from 0")
    if device and backend in BACKENDS and backend not in GPU_BACKENDS:  # an unknown one: open_runner's error
        raise ConfigError(f"--device {device} picks a GPU, but the {backend} backend runs on the CPU: drop --device, "
                          f"or choose a GPU backend ({', '.join(GPU_BACKENDS)})")


def _onnxruntime(artifact: "Artifact", backend: str, threads: int, providers, device: int) -> "Runner":
    from edgekit.device import gpu_count
    from edgekit.runtime.onnxrt import OnnxRuntimeRunner, SessionSettings, available_providers, providers_for

    settings = SessionSettings.from_dict(artifact.manifest.session.get("onnxruntime", {}))
    if backend != "onnxruntime":
        settings = replace(settings, providers=providers_for(backend, device, available_providers(), gpu_count()),
                           device=device)
    if threads:
        settings = replace(settings, threads=threads)
    if providers:
        settings = replace(settings, providers=tuple(providers))
    path = artifact.model_path
    if artifact.manifest.backend == "onnxruntime" and artifact.engine_path is not None and not settings.on_gpu:
        path = artifact.engine_path  # the plan is saved for the CPU provider: a GPU runs the deployable ONNX
    return OnnxRuntimeRunner(path, settings)


def cpu_runner(path: Path, threads: int = 0, runtime: str = "onnxruntime", precision: str = "fp32") -> "Runner":
    """A runner of an ONNX file on the cpu target's runtime (not yet active), computing in
    ``precision`` (``bf16``: the FP32 graph in bfloat16, OpenVINO only; else as the graph says)."""
    if runtime == "openvino":
        from edgekit.runtime.openvino_rt import OpenVINORunner, OpenVINOSettings, precision_hint

        return OpenVINORunner(path, OpenVINOSettings(threads=threads, precision_hint=precision_hint(precision)))
    if precision == "bf16":
        raise ConfigError(BF16_ON_ORT)
    from edgekit.runtime.onnxrt import OnnxRuntimeRunner, SessionSettings

    return OnnxRuntimeRunner(path, SessionSettings(threads=threads))
