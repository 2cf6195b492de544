"""ONNX Runtime backend: the CPU provider everywhere; the CUDA and TensorRT providers of
onnxruntime-gpu on a GPU, with IO binding (input and output buffers kept on the device and reused
from batch to batch, one copy in and one out per batch)."""
from __future__ import annotations

__all__ = ["OnnxRuntimeRunner", "SessionSettings", "available_providers", "providers_for", "import_ort", "GPU_PROVIDERS"]

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgekit.errors import ArtifactError, BackendUnavailableError, ConfigError
from edgekit.artifact.manifest import TensorSpec
from edgekit.runtime.base import Runner

_DTYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(uint8)": "uint8",
    "tensor(int8)": "int8",
}


@dataclass(frozen=True)
class SessionSettings:
    """ONNX Runtime session options an artifact records and a runner applies.

    Attributes:
        threads: intra-op threads (0: ONNX Runtime's default, one per physical core).
        optimization: graph optimisation level, one of ``disable|basic|extended|all``.
        providers: execution providers in priority order; one that is not available here is an
            error, not a silent fall back (CPUExecutionProvider may follow a GPU one as ONNX
            Runtime's own fall back for the nodes the GPU provider does not take).
        profile_prefix: when set, ONNX Runtime writes a per-node profile with this prefix.
        device: the GPU index of the CUDA / TensorRT providers.
        io_binding: keep inputs and outputs in buffers bound once and reused (on the GPU for the
            GPU providers); None: on for GPU providers, off for the CPU.
    """

    threads: int = 0
    optimization: str = "all"
    providers: tuple[str, ...] = ("CPUExecutionProvider",)
    profile_prefix: str | None = None
    device: int = 0
    io_binding: bool | None = None

    @property
    def on_gpu(self) -> bool:
        return bool(self.providers) and self.providers[0] in GPU_PROVIDERS

    @classmethod
    def from_dict(cls, data: dict) -> "SessionSettings":
        return cls(
            threads=int(data.get("threads", 0)),
            optimization=str(data.get("optimization", "all")),
            providers=tuple(data.get("providers", ("CPUExecutionProvider",))),
        )


GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
# --backend choices that run the deployable ONNX on ONNX Runtime, and the providers each asks for
PROVIDER_CHOICES = {
    "onnxruntime": ("CPUExecutionProvider",),
    "onnxruntime-cuda": ("CUDAExecutionProvider", "CPUExecutionProvider"),
    "onnxruntime-trt": ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"),
}


def providers_for(backend: str, device: int, available: list[str], gpus: int) -> tuple[str, ...]:
    """The providers of a ``--backend onnxruntime*`` choice, checked against what is here.

    Args:
        available: ONNX Runtime's available providers (what the installed wheel was built with).
        gpus: CUDA devices the driver sees (onnxruntime-gpu lists its providers without a GPU).

    Raises:
        BackendUnavailableError: the provider is not in this ONNX Runtime, or there is no GPU.
        ConfigError: ``device`` is not a GPU index of this machine.
    """
    if backend not in PROVIDER_CHOICES:
        raise ConfigError(f"unknown ONNX Runtime backend {backend!r}; choose one of {', '.join(PROVIDER_CHOICES)}")
    wanted = PROVIDER_CHOICES[backend]
    if wanted[0] not in GPU_PROVIDERS:
        return wanted
    if wanted[0] not in available:
        raise BackendUnavailableError(
            f"--backend {backend} needs ONNX Runtime's {wanted[0]}, which this onnxruntime lacks "
            f"(it has {', '.join(available) or 'none'}): install onnxruntime-gpu instead of onnxruntime")
    if gpus <= 0:
        raise BackendUnavailableError(f"--backend {backend} needs a CUDA GPU; none is visible here (nvidia-smi, driver)")
    if not 0 <= device < gpus:
        raise ConfigError(f"--device {device} is out of range: this machine has {gpus} CUDA device"
                          f"{'s' if gpus > 1 else ''} (0{f'..{gpus - 1}' if gpus > 1 else ''})")
    return wanted


def available_providers() -> list[str]:
    import onnxruntime as ort

    return ort.get_available_providers()


def import_ort():
    """The ``onnxruntime`` module, or BackendUnavailableError naming the install step."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise BackendUnavailableError("ONNX Runtime is not installed: pip install 'edgekit[runtime]'") from None
    return ort


def session_options(settings: SessionSettings):
    """ONNX Runtime SessionOptions for ``settings``."""
    ort = import_ort()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = settings.threads
    opts.graph_optimization_level = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[settings.optimization]
    opts.log_severity_level = 3
    if settings.profile_prefix:
        opts.enable_profiling = True
        opts.profile_file_prefix = settings.profile_prefix
    return opts


class OnnxRuntimeRunner(Runner):
    """Runs an ONNX file with ONNX Runtime."""

    name = "onnxruntime"

    def __init__(self, model: Path | str, settings: SessionSettings = SessionSettings()):
        super().__init__()
        self.model = Path(model)
        self.settings = settings
        self.session = None
        self._bound = None
        self.last_profile: str | None = None

    def _activate(self) -> None:
        ort = import_ort()
        if not self.model.is_file():
            raise ArtifactError(f"ONNX file {self.model} does not exist")
        present = ort.get_available_providers()
        missing = [p for p in self.settings.providers if p not in present]
        if missing:
            raise BackendUnavailableError(f"ONNX Runtime here lacks {', '.join(missing)} (it has {', '.join(present)})")
        device = {"device_id": self.settings.device}
        providers = [(p, device) if p in GPU_PROVIDERS else p for p in self.settings.providers]
        try:
            self.session = ort.InferenceSession(str(self.model), session_options(self.settings), providers=providers)
        except Exception as exc:  # ORT raises its own types for corrupt files and unknown ops
            raise ArtifactError(f"ONNX Runtime cannot load {self.model.name}: {str(exc).splitlines()[0]}") from None
        binding = self.settings.io_binding
        self._bound = _Bound(self.session, "cuda" if self.settings.on_gpu else "cpu", self.settings.device) \
            if (binding if binding is not None else self.settings.on_gpu) else None

    def _deactivate(self) -> None:
        if self.settings.profile_prefix and self.session is not None:
            self.last_profile = self.session.end_profiling()
        self.session = None
        self._bound = None

    def _specs(self, values) -> tuple[TensorSpec, ...]:
        return tuple(
            TensorSpec(v.name, tuple(d if isinstance(d, int) else str(d) for d in v.shape), _DTYPES.get(v.type, v.type))
            for v in values
        )

    def input_specs(self) -> tuple[TensorSpec, ...]:
        return self._specs(self.session.get_inputs())

    def output_specs(self) -> tuple[TensorSpec, ...]:
        return self._specs(self.session.get_outputs())

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._bound is not None:
            return self._bound.run(feed)
        names = [o.name for o in self.session.get_outputs()]
        return dict(zip(names, self.session.run(names, feed)))

    @property
    def providers(self) -> list[str]:
        return self.session.get_providers() if self.session is not None else []


class _Bound:
    """IO binding of one session: one buffer per input and per statically shaped output on
    ``device_type`` (``cuda`` or ``cpu``), made for the first batch and refilled in place after, so
    a batch costs one copy in and one copy out."""

    def __init__(self, session, device_type: str, device: int):
        self.session, self.device_type, self.device = session, device_type, device
        self.binding = session.io_binding()
        self.inputs: dict = {}
        self.outputs = [o.name for o in session.get_outputs()]
        self._bind_outputs(session)

    def _bind_outputs(self, session) -> None:
        ort = import_ort()
        for out in session.get_outputs():
            dtype = np.dtype(_DTYPES.get(out.type, "float32"))
            if all(isinstance(d, int) and d > 0 for d in out.shape):
                value = ort.OrtValue.ortvalue_from_shape_and_type(list(out.shape), dtype, self.device_type, self.device)
                self.binding.bind_ortvalue_output(out.name, value)
            else:
                self.binding.bind_output(out.name, self.device_type, self.device)

    def run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        ort = import_ort()
        for name, array in feed.items():
            array = np.ascontiguousarray(array)
            held = self.inputs.get(name)
            if held is None or tuple(held.shape()) != array.shape:
                own = array.copy() if self.device_type == "cpu" else array  # a cpu OrtValue shares its array's memory
                held = self.inputs[name] = ort.OrtValue.ortvalue_from_numpy(own, self.device_type, self.device)
                self.binding.bind_ortvalue_input(name, held)
            else:
                held.update_inplace(array)
        self.session.run_with_iobinding(self.binding)
        values = self.binding.get_outputs()
        if self.device_type == "cpu":  # views of the bound buffers: the next batch would overwrite them
            return {name: np.array(value.numpy(), copy=True) for name, value in zip(self.outputs, values)}
        return {name: value.numpy() for name, value in zip(self.outputs, values)}
