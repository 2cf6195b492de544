"""OpenVINO backend: the CPU plugin running an IR (``model.xml`` + ``model.bin``) or an ONNX file.

OpenVINO is optional (``pip install 'edgekit[openvino]'``) and imported inside the functions that
need it. Precision is held to what the graph says: on a CPU with AMX or AVX-512 BF16 the CPU
plugin otherwise runs "FP32" models in bf16 (measured here: max abs difference 0.42 on the demo
model's logits), which is a precision change edgekit would have to verify like fp16, never pass
off as FP32 (on this session's AMD EPYC with AVX-512 BF16 and no AMX as well: the plugin's default
hint there is bf16). So ``INFERENCE_PRECISION_HINT`` is ``f32`` unless the artifact is ``bf16``
(:func:`precision_hint`), a precision the build verified on held-out images.
"""
from __future__ import annotations

__all__ = ["OpenVINORunner", "OpenVINOSettings", "import_openvino", "openvino_version", "precision_hint",
           "profiling_layers"]

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgekit.artifact.manifest import TensorSpec
from edgekit.errors import ArtifactError, BackendUnavailableError
from edgekit.runtime.base import Runner

PRECISION_HINTS = ("f32", "bf16", "f16")


@dataclass(frozen=True)
class OpenVINOSettings:
    """What an artifact records of OpenVINO's CPU plugin and the runner applies.

    Attributes:
        threads: ``INFERENCE_NUM_THREADS`` (0: the plugin's default, one per physical core).
        precision_hint: ``INFERENCE_PRECISION_HINT``; ``f32`` keeps FP32 graphs in FP32.
        performance_hint: ``LATENCY`` (one request at a time, as edgekit's tiles are fed) or ``THROUGHPUT``.
        profile: ``PERF_COUNT``: per-layer times read back with :func:`profiling_layers`.
    """

    threads: int = 0
    precision_hint: str = "f32"
    performance_hint: str = "LATENCY"
    profile: bool = False

    @classmethod
    def from_dict(cls, data: dict) -> "OpenVINOSettings":
        return cls(threads=int(data.get("threads", 0)), precision_hint=str(data.get("precision_hint", "f32")),
                   performance_hint=str(data.get("performance_hint", "LATENCY")))

    def config(self) -> dict:
        """The ``compile_model`` properties."""
        config = {"PERFORMANCE_HINT": self.performance_hint, "INFERENCE_PRECISION_HINT": self.precision_hint}
        if self.threads:
            config["INFERENCE_NUM_THREADS"] = self.threads
        if self.profile:
            config["PERF_COUNT"] = "YES"
        return config


def precision_hint(precision: str) -> str:
    """The plugin's ``INFERENCE_PRECISION_HINT`` for an artifact of ``precision``: ``bf16`` for bf16
    (the FP32 graph computed in bfloat16), else ``f32`` (an fp16 or int8 graph carries its precision
    in the graph, and what it leaves in float stays f32)."""
    return "bf16" if precision == "bf16" else "f32"


def import_openvino():
    try:
        import openvino
    except ImportError:
        raise BackendUnavailableError("OpenVINO is not installed: pip install 'edgekit[openvino]'") from None
    return openvino


def openvino_version() -> str | None:
    """OpenVINO's version, or None where it is not installed."""
    try:
        import openvino
    except ImportError:
        return None
    return openvino.__version__.split("-")[0]


class OpenVINORunner(Runner):
    """Runs an OpenVINO IR or an ONNX file on OpenVINO's CPU plugin, one synchronous request."""

    name = "openvino"

    def __init__(self, model: Path | str, settings: OpenVINOSettings = OpenVINOSettings()):
        super().__init__()
        self.model = Path(model)
        self.settings = settings
        self.compiled = None
        self.request = None

    def _activate(self) -> None:
        ov = import_openvino()
        if not self.model.is_file():
            raise ArtifactError(f"model file {self.model} does not exist")
        try:
            self.compiled = ov.Core().compile_model(str(self.model), "CPU", self.settings.config())
        except RuntimeError as exc:  # unknown op, corrupt IR, an IR of a newer OpenVINO
            first = next((line for line in str(exc).splitlines() if line.strip()), "unknown error")
            raise ArtifactError(f"OpenVINO {openvino_version()} cannot load {self.model.name}: {first[:300]}") from None
        self.request = self.compiled.create_infer_request()

    def _deactivate(self) -> None:
        self.request = None
        self.compiled = None

    @staticmethod
    def _specs(ports) -> tuple[TensorSpec, ...]:
        specs = []
        for port in ports:
            dims = tuple(d.get_length() if d.is_static else "?" for d in port.get_partial_shape())
            dtype = np.dtype(port.get_element_type().to_dtype()).name
            specs.append(TensorSpec(port.get_any_name(), dims, dtype))
        return tuple(specs)

    def input_specs(self) -> tuple[TensorSpec, ...]:
        return self._specs(self.compiled.inputs)

    def output_specs(self) -> tuple[TensorSpec, ...]:
        return self._specs(self.compiled.outputs)

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        results = self.request.infer({k: np.ascontiguousarray(v) for k, v in feed.items()})
        return {port.get_any_name(): np.array(value) for port, value in results.items()}

    @property
    def providers(self) -> list[str]:
        return ["OpenVINO CPU"] if self.compiled is not None else []

    def execution_precision(self) -> str:
        """The precision the CPU plugin settled on (``f32``, ``bf16``...)."""
        if self.compiled is None:
            return "?"
        value = self.compiled.get_property("INFERENCE_PRECISION_HINT")
        return value.get_type_name() if hasattr(value, "get_type_name") else str(value)


def profiling_layers(runner: OpenVINORunner) -> dict[str, tuple[float, str, str]]:
    """Per-layer times of the runner's last request (``PERF_COUNT`` on): name -> (ms, layer type,
    the kernel that ran it, e.g. ``brgconv_avx512_amx_I8``). Layers that did not run are left out."""
    layers = {}
    for info in runner.request.get_profiling_info():
        if str(info.status).rsplit(".", 1)[-1] == "EXECUTED":
            layers[info.node_name] = (info.real_time.total_seconds() * 1000, str(info.node_type), str(info.exec_type))
    return layers
