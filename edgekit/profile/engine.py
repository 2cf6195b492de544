"""TensorRT engines, measured directly: compute-only time, per-layer time, batch limits, memory.

Everything here imports ``tensorrt`` and cuda-python inside the function that needs them, and
raises BackendUnavailableError where they do not import; an engine built for DLA is loaded on
its core (``dla_core``: the manifest's ``session.tensorrt.dla_core``); an engine is timed on GPU
``device`` (the runner's: `edgekit profile --device`). Compute-only time runs the engine on inputs
already resident in device memory and reads CUDA events recorded on the same stream around
``execute_async_v3``: no host-device copies, no CUDA graph. Per-layer time uses ``IProfiler``;
layer precisions come from ``IEngineInspector`` (needs an engine built with
``ProfilingVerbosity.DETAILED`` for anything beyond names).
"""
from __future__ import annotations

__all__ = ["engine_batch_limits", "time_engine_compute", "engine_layer_report", "engine_device_memory_mb"]

import json
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

from edgekit.compile.placement import layer_device
from edgekit.errors import RunError
from edgekit.timing import TimingConfig, time_calls
from edgekit.profile.layers import LayerReport, layer_report
from edgekit.runtime.trt import cuda_call, deserialize_engine, import_cudart, import_tensorrt

_PRECISION_WORDS = (("FP8", "fp8"), ("BF16", "bf16"), ("FP16", "fp16"), ("HALF", "fp16"), ("INT8", "int8"),
                    ("INT4", "int4"), ("FP32", "fp32"), ("FLOAT", "fp32"), ("INT32", "int32"), ("BOOL", "bool"))


def _io_names(trt, engine) -> tuple[list[str], list[str]]:
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
    return inputs, [n for n in names if n not in inputs]


def engine_batch_limits(engine_path: Path, dla_core: int | None = None) -> tuple[int, int]:
    """(smallest, largest) batch the engine's first optimisation profile accepts for its first input."""
    trt = import_tensorrt()
    _, engine = deserialize_engine(trt, Path(engine_path), dla_core)
    name = _io_names(trt, engine)[0][0]
    batch = engine.get_tensor_shape(name)[0]
    if batch > 0:
        return int(batch), int(batch)
    low, _, high = engine.get_tensor_profile_shape(name, 0)
    return int(low[0]), int(high[0])


def engine_device_memory_mb(engine_path: Path, dla_core: int | None = None) -> float:
    """Activation (scratch) memory the engine asks for, MiB."""
    trt = import_tensorrt()
    _, engine = deserialize_engine(trt, Path(engine_path), dla_core)
    size = getattr(engine, "device_memory_size_v2", None) or engine.device_memory_size
    return float(size) / (1024 * 1024)


@contextmanager
def _session(engine_path: Path, batch: int, dla_core: int | None = None, device: int = 0) -> Iterator[tuple]:
    """An execution context on GPU ``device`` with every I/O tensor in its memory (random inputs), and a stream."""
    trt, cudart = import_tensorrt(), import_cudart()
    cuda_call(cudart.cudaSetDevice(device))  # before the engine is deserialized: its memory is on this GPU
    _, engine = deserialize_engine(trt, Path(engine_path), dla_core)
    context = engine.create_execution_context()
    inputs, outputs = _io_names(trt, engine)
    rng = np.random.default_rng(0)
    stream = cuda_call(cudart.cudaStreamCreate())
    buffers = []
    try:
        for name in inputs:
            shape = list(engine.get_tensor_shape(name))
            shape[0] = batch if shape[0] < 0 else shape[0]
            context.set_input_shape(name, shape)
            host = rng.standard_normal(shape).astype(trt.nptype(engine.get_tensor_dtype(name)))
            ptr = cuda_call(cudart.cudaMalloc(host.nbytes))
            buffers.append(ptr)
            h2d = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
            cuda_call(cudart.cudaMemcpy(ptr, host.ctypes.data, host.nbytes, h2d))
            context.set_tensor_address(name, ptr)
        for name in outputs:
            shape = tuple(context.get_tensor_shape(name))
            nbytes = int(np.prod(shape)) * np.dtype(trt.nptype(engine.get_tensor_dtype(name))).itemsize
            ptr = cuda_call(cudart.cudaMalloc(max(nbytes, 1)))
            buffers.append(ptr)
            context.set_tensor_address(name, ptr)
        yield trt, cudart, engine, context, stream
    finally:
        for ptr in buffers:
            cudart.cudaFree(ptr)
        cudart.cudaStreamDestroy(stream)


def time_engine_compute(engine_path: Path, batch: int, timing: TimingConfig, dla_core: int | None = None,
                        device: int = 0) -> np.ndarray:
    """Milliseconds per ``execute_async_v3`` between CUDA events on GPU ``device``, inputs already on it."""
    with _session(engine_path, batch, dla_core, device) as (_, cudart, _engine, context, stream):
        start, stop = cuda_call(cudart.cudaEventCreate()), cuda_call(cudart.cudaEventCreate())
        times: list[float] = []

        def run() -> None:
            cuda_call(cudart.cudaEventRecord(start, stream))
            if not context.execute_async_v3(int(stream)):
                raise RunError("TensorRT execute_async_v3 failed")
            cuda_call(cudart.cudaEventRecord(stop, stream))
            cuda_call(cudart.cudaEventSynchronize(stop))
            times.append(float(cuda_call(cudart.cudaEventElapsedTime(start, stop))))

        try:
            counted = len(time_calls(run, timing))
        finally:
            cudart.cudaEventDestroy(start)
            cudart.cudaEventDestroy(stop)
        return np.asarray(times[-counted:], dtype=np.float64)


def engine_layer_report(engine_path: Path, batch: int, runs: int = 20, top: int = 10,
                        dla_core: int | None = None, device: int = 0) -> LayerReport:
    """Mean per-layer time over ``runs`` profiled executions on GPU ``device``, with each layer's precision."""
    with _session(engine_path, batch, dla_core, device) as (trt, cudart, engine, context, stream):
        totals: dict[str, float] = {}

        class _Profiler(trt.IProfiler):
            def __init__(self) -> None:
                trt.IProfiler.__init__(self)

            def report_layer_time(self, layer_name: str, ms: float) -> None:
                totals[layer_name] = totals.get(layer_name, 0.0) + ms

        context.execute_async_v3(int(stream))  # one unprofiled warm-up run
        cuda_call(cudart.cudaStreamSynchronize(stream))
        context.profiler = _Profiler()
        for _ in range(runs):
            context.execute_async_v3(int(stream))
            cuda_call(cudart.cudaStreamSynchronize(stream))
        meta = _layer_meta(trt, engine, context)
    per_run = {name: ms / runs for name, ms in totals.items()}
    return layer_report("tensorrt", runs, per_run, {n: meta.get(n, ("", "?", "GPU")) for n in per_run}, top)


def _layer_meta(trt, engine, context) -> dict[str, tuple[str, str, str]]:
    """name -> (layer type, precision, device) from the engine inspector's JSON."""
    inspector = engine.create_engine_inspector()
    if hasattr(inspector, "execution_context"):
        inspector.execution_context = context
    else:  # TensorRT 8.x
        inspector.context = context
    try:
        info = json.loads(inspector.get_engine_information(trt.LayerInformationFormat.JSON))
    except (ValueError, TypeError):
        return {}
    meta = {}
    for layer in info.get("Layers", []):
        if not isinstance(layer, dict):  # built without DETAILED verbosity: names only
            continue
        kind = str(layer.get("LayerType", ""))
        fmt = " ".join(str(o.get("Format/Datatype", "")) for o in layer.get("Outputs", []) if isinstance(o, dict))
        meta[str(layer.get("Name", ""))] = (kind, _precision_from_format(fmt), layer_device(layer))
    return meta


def _precision_from_format(text: str) -> str:
    words = re.findall(r"[A-Za-z0-9]+", text.upper())
    for word, precision in _PRECISION_WORDS:
        if word in words:
            return precision
    return "?"
