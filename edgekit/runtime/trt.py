"""TensorRT backend: a serialized engine run through Polygraphy's ``TrtRunner``.

TensorRT and Polygraphy's TensorRT backend are imported inside the functions that need them,
so this module imports anywhere; only activating a runner needs TensorRT. Device memory and
copies go through Polygraphy's own CUDA wrapper: neither pycuda nor torch is needed.
"""
from __future__ import annotations

__all__ = ["TensorRTRunner", "import_tensorrt", "tensorrt_version"]

from pathlib import Path

import numpy as np

from edgekit.errors import ArtifactError, BackendUnavailableError, DeviceMismatchError
from edgekit.artifact.manifest import TensorSpec
from edgekit.runtime.base import Runner


def import_tensorrt():
    """The ``tensorrt`` module, or a one-line error saying how to get it."""
    try:
        import tensorrt
    except ImportError:
        raise BackendUnavailableError(
            "TensorRT is not installed here: run on the device (JetPack ships it; see docs/jetson.md) "
            "or pip install 'edgekit[trt]' on an x86-64 GPU machine"
        ) from None
    return tensorrt


def tensorrt_version() -> str | None:
    """The installed TensorRT version ("10.3.0.30"), or None without TensorRT."""
    try:
        import tensorrt
    except ImportError:
        return None
    return tensorrt.__version__


def _polygraphy_trt():
    import_tensorrt()
    try:
        from polygraphy.backend import trt as poly_trt
    except ImportError:
        raise BackendUnavailableError("Polygraphy is not installed: pip install 'edgekit[trt]'") from None
    return poly_trt


def _io_specs(engine, trt, mode) -> tuple[TensorSpec, ...]:
    specs = []
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        if engine.get_tensor_mode(name) != mode:
            continue
        shape = tuple(d if d >= 0 else f"dyn{k}" for k, d in enumerate(engine.get_tensor_shape(name)))
        dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(name))).name
        specs.append(TensorSpec(name, shape, dtype))
    return tuple(specs)


class TensorRTRunner(Runner):
    """Runs a serialized TensorRT engine (``model.engine``).

    Args:
        engine_path: the engine file written by ``edgekit compile`` on this device.
        profile: the optimization profile to use (engines built by edgekit have one).
    """

    name = "tensorrt"

    def __init__(self, engine_path: Path | str, profile: int = 0):
        super().__init__()
        self.engine_path = Path(engine_path)
        self.profile = profile
        self._engine = None
        self._runner = None

    def _activate(self) -> None:
        poly_trt = _polygraphy_trt()
        from polygraphy.exception import PolygraphyException

        if not self.engine_path.is_file():
            raise ArtifactError(f"TensorRT engine {self.engine_path} does not exist")
        try:
            self._engine = poly_trt.EngineFromBytes(self.engine_path.read_bytes())()
        except PolygraphyException:
            raise DeviceMismatchError(
                f"TensorRT {tensorrt_version()} cannot load {self.engine_path.name} (built by another TensorRT or "
                f"for another GPU); rebuild it here with `edgekit compile {self.engine_path.parent}`"
            ) from None
        self._runner = poly_trt.TrtRunner(self._engine, optimization_profile=self.profile)
        self._runner.activate()

    def _deactivate(self) -> None:
        if self._runner is not None:
            self._runner.deactivate()
        self._runner = None
        self._engine = None

    def input_specs(self) -> tuple[TensorSpec, ...]:
        trt = import_tensorrt()
        return _io_specs(self._engine, trt, trt.TensorIOMode.INPUT)

    def output_specs(self) -> tuple[TensorSpec, ...]:
        trt = import_tensorrt()
        return _io_specs(self._engine, trt, trt.TensorIOMode.OUTPUT)

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs = self._runner.infer({k: np.ascontiguousarray(v) for k, v in feed.items()})
        # Polygraphy reuses its host buffers on the next call: hand out copies.
        return {name: np.array(value, copy=True) for name, value in outputs.items()}
