"""TensorRT backend: a serialized engine run with TensorRT's name-based I/O API and cuda-python.

Nothing is allocated per batch. On activation the runner deserializes the engine (on the DLA core
it was built for), creates one execution context and one CUDA stream, and allocates one device
buffer and one pinned (page-locked) host staging buffer per I/O tensor, sized for the
optimization profile's largest shapes (:func:`edgekit.runtime.trt_buffers.plan_buffers`). Each
batch is copied into the pinned inputs, then on the one stream: asynchronous copies to the device,
``execute_async_v3``, asynchronous copies back, one synchronisation; outputs are handed out as
copies (the staging buffers are reused by the next batch). With ``cuda_graph`` the whole sequence
(copies included: the buffers never move) is captured once per input shape and replayed
(:class:`~edgekit.runtime.trt_buffers.GraphSchedule`); an engine TensorRT cannot capture (some DLA
and plugin layers) runs without, saying so once.

TensorRT and cuda-python are imported inside the functions that need them, so this module imports
anywhere; only activating a runner needs them. Polygraphy is not needed to run an engine.

The TensorRT version branch of the run-time path is :func:`require_tensor_api`: the name-based
API (``set_input_shape``, ``set_tensor_address``, ``execute_async_v3``) exists from TensorRT 8.5
(JetPack 5) on, through 10.x and 11, so one code path serves every line edgekit targets.
"""
from __future__ import annotations

__all__ = ["TensorRTRunner", "import_tensorrt", "tensorrt_version", "import_cudart", "cuda_call",
           "deserialize_engine", "require_tensor_api", "engine_information"]

import ctypes
import warnings
from pathlib import Path

import numpy as np

from edgekit.errors import (ArtifactError, BackendUnavailableError, DeviceMismatchError, EdgekitError, InputError,
                            RunError)
from edgekit.artifact.manifest import TensorSpec
from edgekit.runtime.base import Runner
from edgekit.runtime.trt_buffers import (BufferPlan, GraphSchedule, RunShapes, TensorSlot, nbytes, output_rows,
                                         plan_buffers, run_shapes)


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


def import_cudart():
    """cuda-python's runtime API (``cuda.bindings.runtime``; ``cuda.cudart`` before cuda-python 12.6)."""
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart
        except ImportError:
            raise BackendUnavailableError("cuda-python is not installed: pip install 'edgekit[trt]' "
                                          "(on a Jetson: 'edgekit[runtime]')") from None
    return cudart


def cuda_call(result):
    """cuda-python returns ``(error, values...)``: raise on an error, return the values."""
    err, *values = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise RunError(f"CUDA call failed: {err}")
    return values[0] if len(values) == 1 else tuple(values) if values else None


def require_tensor_api(trt) -> None:
    """The one TensorRT version branch of the run-time path: the name-based I/O API, from 8.5 on."""
    if not hasattr(trt.IExecutionContext, "execute_async_v3"):
        raise BackendUnavailableError(f"TensorRT {trt.__version__} is older than 8.5, the oldest line edgekit runs "
                                      "engines with (JetPack 5); upgrade TensorRT")


def deserialize_engine(trt, path: Path, dla_core: int | None = None, logger=None):
    """(runtime, engine) for the engine file ``path``; a DLA engine runs on ``dla_core``. Keep the
    runtime (and logger) alive as long as the engine."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"TensorRT engine {path} does not exist")
    runtime = trt.Runtime(logger or trt.Logger(trt.Logger.ERROR))
    if dla_core is not None:
        if dla_core >= runtime.num_DLA_cores:
            raise DeviceMismatchError(f"{path.name} runs on DLA core {dla_core}, this device has "
                                      f"{runtime.num_DLA_cores} DLA cores; rebuild it here with "
                                      f"`edgekit compile {path.parent} --no-dla` or another --dla-core")
        runtime.DLA_core = dla_core
    engine = runtime.deserialize_cuda_engine(path.read_bytes())
    if engine is None:
        raise DeviceMismatchError(
            f"TensorRT {trt.__version__} cannot load {path.name} (built by another TensorRT or "
            f"for another GPU); rebuild it here with `edgekit compile {path.parent}`"
        )
    return runtime, engine


def engine_information(path: Path, dla_core: int | None = None) -> str:
    """The engine inspector's JSON of every layer (what each one is, where and in which precision it
    runs: :mod:`edgekit.compile.placement` reads it)."""
    trt = import_tensorrt()
    _runtime, engine = deserialize_engine(trt, path, dla_core)
    inspector = engine.create_engine_inspector()
    return inspector.get_engine_information(trt.LayerInformationFormat.JSON)


def _slots(trt, engine, context, profile: int) -> list[TensorSlot]:
    """Every I/O tensor with its bounds; leaves the context's inputs at the profile's max shapes."""
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
    slots = []
    for name in inputs:
        shape = tuple(engine.get_tensor_shape(name))
        lo = hi = shape
        if any(d < 0 for d in shape):
            lo, _opt, hi = (tuple(s) for s in engine.get_tensor_profile_shape(name, profile))
            context.set_input_shape(name, hi)
        slots.append(TensorSlot(name, True, _dtype(trt, engine, name), shape, lo, hi))
    for name in (n for n in names if n not in inputs):
        largest = tuple(context.get_tensor_shape(name))
        slots.append(TensorSlot(name, False, _dtype(trt, engine, name), tuple(engine.get_tensor_shape(name)),
                                largest, largest))
    return slots


def _dtype(trt, engine, name: str) -> str:
    try:
        return np.dtype(trt.nptype(engine.get_tensor_dtype(name))).name
    except TypeError:
        raise ArtifactError(f"tensor {name!r} is {engine.get_tensor_dtype(name)}, which NumPy cannot hold; "
                            "export the model with float32, float16 or integer inputs and outputs") from None


def _pinned_view(ptr: int, size: int) -> np.ndarray:
    """A NumPy byte array over ``size`` bytes of pinned host memory at ``ptr``."""
    return np.ctypeslib.as_array((ctypes.c_uint8 * size).from_address(ptr))


class TensorRTRunner(Runner):
    """Runs a serialized TensorRT engine (``model.engine``) without allocating per batch.

    Args:
        engine_path: the engine file written by ``edgekit compile`` on this device.
        profile: the optimization profile to use (engines built by edgekit have one).
        device: the CUDA device index.
        dla_core: the DLA core a DLA engine runs on (the manifest's ``session.tensorrt.dla_core``).
        cuda_graph: capture each input shape's copies and execution as a CUDA graph, and replay it.
    """

    name = "tensorrt"

    def __init__(self, engine_path: Path | str, profile: int = 0, device: int = 0, dla_core: int | None = None,
                 cuda_graph: bool = False):
        super().__init__()
        self.engine_path = Path(engine_path)
        self.profile, self.device, self.dla_core, self.cuda_graph = profile, device, dla_core, cuda_graph
        self.graph_note: str | None = None  # why a CUDA graph could not be used, once it failed
        self._reset()

    def _reset(self) -> None:
        self._trt = self._cudart = self._logger = self._runtime = self._engine = self._context = None
        self._stream = self._graph = None
        self._plan: BufferPlan | None = None
        self._device_ptrs: dict[str, int] = {}
        self._host_ptrs: dict[str, int] = {}
        self._host: dict[str, np.ndarray] = {}
        self._shapes: dict[str, tuple[int, ...]] = {}
        self._out_shapes: dict[str, tuple[int, ...]] = {}
        self._schedule = GraphSchedule(self.cuda_graph)

    # --- lifecycle ----------------------------------------------------------------------
    def _activate(self) -> None:
        trt, cudart = import_tensorrt(), import_cudart()
        require_tensor_api(trt)
        self._trt, self._cudart = trt, cudart
        try:
            if self.device:
                cuda_call(cudart.cudaSetDevice(self.device))
            self._logger = trt.Logger(trt.Logger.ERROR)
            self._runtime, self._engine = deserialize_engine(trt, self.engine_path, self.dla_core, self._logger)
            self._context = self._engine.create_execution_context()
            if self._context is None:
                raise RunError(f"TensorRT could not create an execution context for {self.engine_path.name} "
                                   "(not enough device memory?)")
            self._stream = cuda_call(cudart.cudaStreamCreateWithFlags(cudart.cudaStreamNonBlocking))
            if self.profile:
                self._context.set_optimization_profile_async(self.profile, int(self._stream))
            self._plan = plan_buffers(_slots(trt, self._engine, self._context, self.profile))
            self._allocate()
        except BaseException:
            self._deactivate()
            raise

    def _allocate(self) -> None:
        cudart = self._cudart
        for slot in self._plan.slots:
            self._device_ptrs[slot.name] = int(cuda_call(cudart.cudaMalloc(slot.nbytes)))
            self._host_ptrs[slot.name] = int(cuda_call(cudart.cudaMallocHost(slot.nbytes)))
            self._host[slot.name] = _pinned_view(self._host_ptrs[slot.name], slot.nbytes)
            if not self._context.set_tensor_address(slot.name, self._device_ptrs[slot.name]):
                raise RunError(f"TensorRT refused the buffer of {slot.name!r}")

    def _deactivate(self) -> None:
        cudart = self._cudart
        if cudart is not None:
            if self._stream is not None:
                cudart.cudaStreamSynchronize(self._stream)
            self._drop_graph()
            self._host.clear()  # views first: the memory under them is freed next
            for ptr in self._host_ptrs.values():
                cudart.cudaFreeHost(ptr)
            for ptr in self._device_ptrs.values():
                cudart.cudaFree(ptr)
            if self._stream is not None:
                cudart.cudaStreamDestroy(self._stream)
        self._context = None  # before its engine, the engine before its runtime
        self._engine = None
        self._reset()

    # --- specs ----------------------------------------------------------------------------
    def input_specs(self) -> tuple[TensorSpec, ...]:
        return self._specs(self._plan.inputs)

    def output_specs(self) -> tuple[TensorSpec, ...]:
        return self._specs(self._plan.outputs)

    @staticmethod
    def _specs(slots) -> tuple[TensorSpec, ...]:
        return tuple(TensorSpec(s.name, tuple(d if d >= 0 else f"dyn{k}" for k, d in enumerate(s.shape)), s.dtype)
                     for s in slots)

    @property
    def plan(self) -> BufferPlan | None:
        """The buffers allocated (None while inactive)."""
        return self._plan

    # --- one batch ------------------------------------------------------------------------
    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.device:
            cuda_call(self._cudart.cudaSetDevice(self.device))
        run = run_shapes(self._plan, {name: value.shape for name, value in feed.items()})
        reshape, step = self._schedule.next(run.key)
        if reshape:
            try:
                self._set_shapes(run)
            except BaseException:
                self._schedule.shapes = None  # the context's shapes are unknown: set them again next time
                raise
        for slot in self._plan.inputs:
            staged = self._view(slot.name, run.inputs[slot.name])
            if run.padded != run.rows and slot.dynamic:
                staged[: run.rows] = feed[slot.name]
                staged[run.rows:] = 0
            else:
                staged[...] = feed[slot.name]
        if step == "replay":
            cuda_call(self._cudart.cudaGraphLaunch(self._graph, self._stream))
        elif step == "capture":
            captured = self._capture()
            if not captured:
                self._enqueue()
            self._schedule.record(run.key, step, captured)
        else:
            self._enqueue()
            self._schedule.record(run.key, step)
        cuda_call(self._cudart.cudaStreamSynchronize(self._stream))
        return {s.name: output_rows(np.array(self._view(s.name, self._out_shapes[s.name])), run)
                for s in self._plan.outputs}

    def _set_shapes(self, run: RunShapes) -> None:
        """Give the context this batch's input shapes (the CUDA graph of the old ones goes)."""
        self._drop_graph()
        for name, shape in run.inputs.items():
            if self._plan.slot(name).dynamic and not self._context.set_input_shape(name, shape):
                raise InputError(f"TensorRT refused input {name!r} of shape {list(shape)}")
        self._shapes = dict(run.inputs)
        self._out_shapes = {s.name: tuple(self._context.get_tensor_shape(s.name)) for s in self._plan.outputs}

    def _view(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        dtype = self._plan.slot(name).dtype
        return self._host[name][: nbytes(shape, dtype)].view(dtype).reshape(shape)

    def _enqueue(self, check: bool = True) -> bool:
        """Copies in, execution, copies out, all queued on the one stream."""
        cudart = self._cudart
        h2d, d2h = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        for slot in self._plan.inputs:
            size = nbytes(self._shapes[slot.name], slot.dtype)
            cuda_call(cudart.cudaMemcpyAsync(self._device_ptrs[slot.name], self._host_ptrs[slot.name], size, h2d,
                                             self._stream))
        if not self._context.execute_async_v3(int(self._stream)):
            if check:
                raise RunError(f"TensorRT could not run {self.engine_path.name} (see the TensorRT log above)")
            return False
        for slot in self._plan.outputs:
            size = nbytes(self._out_shapes[slot.name], slot.dtype)
            cuda_call(cudart.cudaMemcpyAsync(self._host_ptrs[slot.name], self._device_ptrs[slot.name], size, d2h,
                                             self._stream))
        return True

    def _capture(self) -> bool:
        """Record this batch's copies and execution as a CUDA graph and launch it; False (graphs off
        from now on, said once) where the stream cannot be captured."""
        cudart = self._cudart
        mode = cudart.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
        cuda_call(cudart.cudaStreamBeginCapture(self._stream, mode))
        try:
            recorded = self._enqueue(check=False)
        except EdgekitError:
            recorded = False
        finally:
            err, graph = cudart.cudaStreamEndCapture(self._stream)
        if not recorded or int(err) != 0 or graph is None:
            cudart.cudaGetLastError()  # clear the failed capture's error
            if graph is not None:
                cudart.cudaGraphDestroy(graph)
            self.graph_note = f"TensorRT's execution of {self.engine_path.name} cannot be captured as a CUDA graph"
            warnings.warn(f"{self.graph_note}; running without", RuntimeWarning, stacklevel=3)
            return False
        try:
            self._graph = cuda_call(cudart.cudaGraphInstantiateWithFlags(graph, 0))
        finally:
            cudart.cudaGraphDestroy(graph)
        cuda_call(cudart.cudaGraphLaunch(self._graph, self._stream))
        return True

    def _drop_graph(self) -> None:
        if self._graph is not None:
            self._cudart.cudaGraphExecDestroy(self._graph)
        self._graph = None
