"""TensorRT engine building with Polygraphy's loaders, on the device that will run the engine.

Precision is decided in the ONNX before this stage (AutoCast FP16 or explicit Q/DQ INT8), so the
builder only has to be told how to read it. That depends on the TensorRT line, and
:func:`build_mode` is the one place that knows it:

- TensorRT >= 10: the network is created strongly typed; tensor types in the graph decide
  precision (TensorRT 11 has no precision flags at all).
- TensorRT 8.x (JetPack 5): weakly typed; FP16/INT8 builder flags matching the manifest precision
  let TensorRT use the graph's FP16 tensors and its Q/DQ nodes (a Q/DQ network needs INT8).

What is decided before TensorRT is called is pure and tested on any machine: the optimization
profile (:func:`batch_profile`, :func:`profile_batch`), the DLA core against the target
(:func:`check_dla_core`) and the build flags (:func:`build_flags`, part of the engine cache key).
Engines are built with ``ProfilingVerbosity.DETAILED`` so that the engine inspector can say which
layer runs where and in which precision (:mod:`edgekit.compile.placement`, ``edgekit profile``).
"""
from __future__ import annotations

__all__ = ["BuildMode", "EngineSettings", "build_mode", "build_flags", "batch_profile", "profile_batch",
           "check_dla_core", "build_engine", "device_dla_cores", "free_device_memory_mb"]

from dataclasses import dataclass
from pathlib import Path

from edgekit.atomic import atomic_file
from edgekit.errors import ArtifactError, BackendUnavailableError, ConfigError
from edgekit.artifact.manifest import PRECISIONS, TensorSpec
from edgekit.runtime.trt import import_cudart, import_tensorrt

PROFILING_VERBOSITY = "detailed"  # layer names, types, precisions and ONNX origins kept in the engine


@dataclass(frozen=True)
class BuildMode:
    """How the network is typed and which precision flags the builder gets."""

    strongly_typed: bool
    fp16: bool = False
    int8: bool = False

    def to_dict(self) -> dict:
        return {"strongly_typed": self.strongly_typed, "fp16": self.fp16, "int8": self.int8}


@dataclass(frozen=True)
class EngineSettings:
    """What the builder needs besides the ONNX.

    Attributes:
        precision: the manifest's precision (``fp32``, ``fp16``, ``int8``).
        workspace_mb: builder workspace limit (``MemoryPoolType.WORKSPACE``).
        dla_core: the DLA core to run on (layers DLA cannot run fall back to the GPU); None: GPU only.
        batch: (min, opt, max) batch of the optimization profile when the batch axis is dynamic.
        timing_cache: a tactic timing cache file, read when present and updated after the build;
            None: no timing cache.
        sparse_weights: let TensorRT pick sparse tensor-core kernels for 2:4 sparse weights
            (``BuilderFlag.SPARSE_WEIGHTS``; weights from `edgekit compress --sparsity 2:4`).
    """

    precision: str = "fp32"
    workspace_mb: int = 1024
    dla_core: int | None = None
    batch: tuple[int, int, int] = (1, 1, 1)
    timing_cache: Path | None = None
    sparse_weights: bool = False

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ConfigError(f"unknown precision {self.precision!r}; choose one of {', '.join(PRECISIONS)}")
        if self.workspace_mb <= 0:
            raise ConfigError(f"workspace must be a positive number of MB, got {self.workspace_mb}")
        lo, opt, hi = self.batch
        if not 1 <= lo <= opt <= hi:
            raise ConfigError(f"batch profile {list(self.batch)} must be 1 <= min <= opt <= max")
        if self.dla_core is not None and self.dla_core < 0:
            raise ConfigError(f"DLA core must be 0 or more, got {self.dla_core}")


def build_mode(tensorrt_version: str, precision: str) -> BuildMode:
    """The version branch: strongly typed on TensorRT >= 10, precision flags on 8.x and 9.x."""
    major = int(tensorrt_version.split(".")[0])
    if major >= 10:
        return BuildMode(strongly_typed=True)
    # ModelOpt's INT8 ONNX keeps unquantized layers in FP16, so INT8 networks get both flags.
    return BuildMode(strongly_typed=False, fp16=precision in ("fp16", "int8"), int8=precision == "int8")


def build_flags(settings: EngineSettings, mode: BuildMode) -> dict:
    """Every builder setting besides the ONNX, the device and the profile that can change the engine."""
    return {**mode.to_dict(), "workspace_mb": settings.workspace_mb, "sparse_weights": settings.sparse_weights,
            "gpu_fallback": settings.dla_core is not None, "profiling_verbosity": PROFILING_VERBOSITY}


def check_dla_core(core: int | None, target, precision: str, off: str = "drop --dla-core") -> None:
    """Stop in one line when DLA core ``core`` cannot serve ``target`` (a :class:`edgekit.targets.Target`)
    in ``precision``; None (GPU only) always passes. ``off``: how the command turns DLA off."""
    if core is None:
        return
    if target.dla_cores == 0:
        raise ConfigError(f"{target.name} has no DLA cores; {off} (the engine runs on the GPU)")
    if not 0 <= core < target.dla_cores:
        cores = " or ".join(str(c) for c in range(target.dla_cores))
        raise ConfigError(f"DLA core {core} does not exist on {target.name}, which has {target.dla_cores}: "
                          f"use --dla-core {cores}, or {off}")
    if precision not in ("fp16", "int8"):
        raise ConfigError(f"DLA runs FP16 or INT8 only and this model is {precision}; {off}, or build it with "
                          "--precision fp16 or int8")


def profile_batch(batch: int, dla: bool) -> tuple[int, int, int]:
    """(min, opt, max) batch of a dynamic-batch engine: the target's batch at opt and max (what tiling
    feeds, padded), down to 1 for a caller that sends fewer; on DLA min = opt = max, since DLA runs
    no dynamic dimension (runners pad a smaller batch, :mod:`edgekit.runtime.trt_buffers`)."""
    if batch < 1:
        raise ConfigError(f"batch must be 1 or more, got {batch}")
    return (batch, batch, batch) if dla else (1, batch, batch)


def batch_profile(inputs: tuple[TensorSpec, ...], batch: tuple[int, int, int]) -> dict[str, tuple] | None:
    """The optimization profile: ``{input: (min shape, opt shape, max shape)}``, or None when every
    input is static (an engine without a profile). Only the batch axis may be dynamic."""
    static = lambda d: isinstance(d, int) and d > 0  # noqa: E731
    if all(static(d) for spec in inputs for d in spec.shape):
        return None
    profile = {}
    for spec in inputs:
        rest = tuple(spec.shape[1:])
        if not all(static(d) for d in rest):
            raise ConfigError(f"input {spec.name!r} has dynamic axes {list(spec.shape)}: only the batch axis may be "
                              "dynamic; export it at a fixed size (`edgekit build --input-size HxW`)")
        first = spec.shape[0]
        if static(first):  # a fixed-batch input beside a dynamic one keeps its batch
            profile[spec.name] = ((first, *rest),) * 3
        else:
            profile[spec.name] = tuple((b, *rest) for b in batch)
    return profile


def device_dla_cores() -> int:
    """DLA cores TensorRT's builder sees on this device (0 on desktop GPUs)."""
    trt = import_tensorrt()
    builder = trt.Builder(trt.Logger(trt.Logger.ERROR))
    return int(builder.num_DLA_cores) if builder is not None else 0


def free_device_memory_mb() -> int | None:
    """Free GPU memory in MB through cuda-python (Jetson: shared memory), None where it is absent."""
    try:
        cudart = import_cudart()
    except BackendUnavailableError:
        return None
    err, free, _total = cudart.cudaMemGetInfo()
    return int(free) >> 20 if int(err) == 0 else None


def _polygraphy_profiles(profile: dict | None):
    if profile is None:
        return None
    from polygraphy.backend.trt import Profile

    out = Profile()
    for name, (lo, opt, hi) in profile.items():
        out.add(name, lo, opt, hi)
    return [out]


def _use_dla(core: int):
    """A Polygraphy config post-processor: DLA as the default device, GPU fallback allowed."""

    def configure(builder, network, config) -> None:
        trt = import_tensorrt()
        if core >= builder.num_DLA_cores:
            raise ConfigError(f"DLA core {core} requested, this device has {builder.num_DLA_cores} DLA cores; "
                              "compile with --no-dla or another --dla-core")
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = core
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)

    return configure


def _config(settings: EngineSettings, mode: BuildMode, inputs: tuple[TensorSpec, ...]):
    trt = import_tensorrt()
    from polygraphy.backend.trt import CreateConfig, PostprocessConfig

    config = CreateConfig(
        fp16=mode.fp16 or None,
        int8=mode.int8 or None,
        memory_pool_limits={trt.MemoryPoolType.WORKSPACE: settings.workspace_mb << 20},
        profiles=_polygraphy_profiles(batch_profile(inputs, settings.batch)),
        load_timing_cache=str(settings.timing_cache) if settings.timing_cache else None,
        sparse_weights=settings.sparse_weights or None,
        profiling_verbosity=trt.ProfilingVerbosity.DETAILED,
    )
    # DLA is set up here rather than with CreateConfig(use_dla=...): that one always picks core 0
    # and adds PREFER_PRECISION_CONSTRAINTS, which a strongly typed network refuses.
    return PostprocessConfig(config, _use_dla(settings.dla_core)) if settings.dla_core is not None else config


def build_engine(onnx_path: Path, engine_path: Path, inputs: tuple[TensorSpec, ...], settings: EngineSettings) -> BuildMode:
    """Build and write a serialized engine for this device's GPU and TensorRT.

    Args:
        onnx_path: the deployable ONNX (precision decided in the graph).
        engine_path: where the engine is written (atomically).
        inputs: the ONNX inputs as the manifest records them (for the dynamic batch profile).
        settings: precision, workspace, DLA, batch range and timing cache.

    Returns:
        The build mode used (strongly typed or precision flags), for the manifest.
    """
    trt = import_tensorrt()
    from polygraphy.backend.trt import EngineBytesFromNetwork, NetworkFromOnnxPath
    from polygraphy.exception import PolygraphyException

    mode = build_mode(trt.__version__, settings.precision)
    network = NetworkFromOnnxPath(str(onnx_path), strongly_typed=mode.strongly_typed or None)
    cache = str(settings.timing_cache) if settings.timing_cache else None
    if settings.timing_cache:
        Path(settings.timing_cache).parent.mkdir(parents=True, exist_ok=True)
    try:
        data = EngineBytesFromNetwork(network, _config(settings, mode, inputs), save_timing_cache=cache)()
    except PolygraphyException as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else "see the TensorRT log above"
        raise ArtifactError(
            f"TensorRT {trt.__version__} could not build {Path(onnx_path).name} "
            f"(workspace {settings.workspace_mb} MB): {reason}"
        ) from None
    with atomic_file(Path(engine_path)) as tmp:
        tmp.write_bytes(bytes(data))
    return mode
