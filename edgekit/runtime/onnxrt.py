"""ONNX Runtime backend: CPU provider everywhere, CUDA provider where onnxruntime-gpu finds a GPU."""
from __future__ import annotations

__all__ = ["OnnxRuntimeRunner", "SessionSettings", "available_providers"]

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgekit.errors import ArtifactError, BackendUnavailableError
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
        providers: execution providers in priority order.
        profile_prefix: when set, ONNX Runtime writes a per-node profile with this prefix.
    """

    threads: int = 0
    optimization: str = "all"
    providers: tuple[str, ...] = ("CPUExecutionProvider",)
    profile_prefix: str | None = None

    @classmethod
    def from_dict(cls, data: dict) -> "SessionSettings":
        return cls(
            threads=int(data.get("threads", 0)),
            optimization=str(data.get("optimization", "all")),
            providers=tuple(data.get("providers", ("CPUExecutionProvider",))),
        )


def available_providers() -> list[str]:
    import onnxruntime as ort

    return ort.get_available_providers()


def _import_ort():
    try:
        import onnxruntime as ort
    except ImportError:
        raise BackendUnavailableError("ONNX Runtime is not installed: pip install 'edgekit[runtime]'") from None
    return ort


def session_options(settings: SessionSettings):
    """ONNX Runtime SessionOptions for ``settings``."""
    ort = _import_ort()
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
        self.last_profile: str | None = None

    def _activate(self) -> None:
        ort = _import_ort()
        if not self.model.is_file():
            raise ArtifactError(f"ONNX file {self.model} does not exist")
        present = ort.get_available_providers()
        providers = [p for p in self.settings.providers if p in present] or ["CPUExecutionProvider"]
        try:
            self.session = ort.InferenceSession(str(self.model), session_options(self.settings), providers=providers)
        except Exception as exc:  # ORT raises its own types for corrupt files and unknown ops
            raise ArtifactError(f"ONNX Runtime cannot load {self.model.name}: {str(exc).splitlines()[0]}") from None

    def _deactivate(self) -> None:
        if self.settings.profile_prefix and self.session is not None:
            self.last_profile = self.session.end_profiling()
        self.session = None

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
        names = [o.name for o in self.session.get_outputs()]
        return dict(zip(names, self.session.run(names, feed)))

    @property
    def providers(self) -> list[str]:
        return self.session.get_providers() if self.session is not None else []
