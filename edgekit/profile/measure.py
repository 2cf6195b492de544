"""`profile_artifact`: latency, throughput, memory, power and per-layer cost of one artifact."""
from __future__ import annotations

__all__ = ["ProfileConfig", "BatchProfile", "ProfileReport", "profile_artifact", "supported_batches", "synthetic_feed",
           "gpu_used"]

import dataclasses
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgekit.errors import BackendUnavailableError, InputError
from edgekit.artifact.manifest import TensorSpec
from edgekit.machine import Conditions, measured_conditions
from edgekit.timing import LatencyStats, TimingConfig, latency_stats, time_calls
from edgekit.profile.layers import LayerReport, layers_from_ort_profile
from edgekit.profile.memory import MemoryReport, device_memory_used_mb, peak_rss_mb, reset_peak_rss, rss_mb
from edgekit.profile.tegrastats import PowerSummary, TegrastatsReader, summarize
from edgekit.artifact.folder import Artifact, load_artifact
from edgekit.runtime.base import Runner
from edgekit.runtime.open import GPU_BACKENDS, check_device, open_runner

CPU_COPIES = "runner.infer on host arrays: inputs in, outputs out (no device copies on the CPU provider)"
GPU_COPIES = "runner.infer on host arrays: host-to-device copy, compute, device-to-host copy, synchronized"


@dataclass(frozen=True)
class ProfileConfig:
    """What `profile_artifact` measures.

    Attributes:
        batches: batch sizes; empty means the artifact's own batch (1 when dynamic).
        timing: warm-up and counted runs.
        backend: runner backend (None: the manifest's).
        threads: intra-op threads for ONNX Runtime (0: its default).
        layers: also profile per layer.
        top: layers to keep in the per-layer table.
        layer_runs: profiled runs averaged per layer.
        power: read tegrastats while timing, where it exists.
        seed: seed of the synthetic input pixels.
        device: the GPU a GPU backend runs on (0: the first); a CPU backend takes 0 only.
    """

    batches: tuple[int, ...] = ()
    timing: TimingConfig = field(default_factory=TimingConfig)
    backend: str | None = None
    threads: int = 0
    layers: bool = False
    top: int = 10
    layer_runs: int = 20
    power: bool = True
    seed: int = 0
    device: int = 0

    def __post_init__(self) -> None:
        check_device(self.device, self.backend)


@dataclass(frozen=True)
class BatchProfile:
    """Measurements at one batch size.

    Attributes:
        batch: images per call.
        end_to_end: latency per call including copies (see the report's conditions).
        compute: latency per call of device compute only, None where not separable.
        images_per_s / mpx_per_s: throughput from the end-to-end mean.
        power: tegrastats summary of the counted runs.
        samples_ms: every end-to-end sample, for distributions.
    """

    batch: int
    end_to_end: LatencyStats
    compute: LatencyStats | None
    images_per_s: float
    mpx_per_s: float
    power: PowerSummary
    samples_ms: tuple[float, ...] = ()

    def to_dict(self, samples: bool = False) -> dict:
        data = {"batch": self.batch, "end_to_end": self.end_to_end.to_dict(),
                "compute": self.compute.to_dict() if self.compute else None,
                "images_per_s": self.images_per_s, "mpx_per_s": self.mpx_per_s, "power": self.power.to_dict()}
        if samples:
            data["samples_ms"] = list(self.samples_ms)
        return data


@dataclass(frozen=True)
class ProfileReport:
    """Everything `edgekit profile` measured on one artifact.

    ``device`` describes the machine (``gpu_name`` and ``compute_capability``: of the GPU it ran on);
    ``gpu``: the index of that GPU, None where the runner ran on the CPU.
    """

    artifact: str
    target: str
    backend: str
    precision: str
    task: str
    input_hw: tuple[int, int]
    device: dict
    conditions: Conditions
    timing: TimingConfig
    batches: tuple[BatchProfile, ...]
    memory: MemoryReport
    layers: LayerReport | None = None
    notes: tuple[str, ...] = ()
    gpu: int | None = None

    def to_dict(self, samples: bool = False) -> dict:
        return {
            "artifact": self.artifact, "target": self.target, "backend": self.backend, "precision": self.precision,
            "task": self.task, "input_hw": list(self.input_hw), "device": self.device, "gpu": self.gpu,
            "conditions": self.conditions.to_dict(), "timing": self.timing.to_dict(),
            "batches": [b.to_dict(samples) for b in self.batches], "memory": self.memory.to_dict(),
            "layers": self.layers.to_dict() if self.layers else None, "notes": list(self.notes),
        }


def supported_batches(artifact: Artifact, runner: Runner, wanted: tuple[int, ...], backend: str) -> tuple[int, ...]:
    """The batches to run: ``wanted`` checked against the model's fixed batch or the engine's profile."""
    declared = runner.input_specs()[0].shape[0]
    fixed = declared if isinstance(declared, int) and declared > 0 else None
    low, high = (fixed, fixed) if fixed else (1, None)
    if backend == "tensorrt" and artifact.engine_path is not None:
        from edgekit.profile.engine import engine_batch_limits

        low, high = engine_batch_limits(artifact.engine_path)
    batches = tuple(wanted) or ((fixed or low or 1),)
    for b in batches:
        if b < 1 or b < (low or 1) or (high is not None and b > high):
            what = f"batch {low} only" if low == high else f"batches {low} to {high}"
            raise InputError(f"{artifact.folder} takes {what} (fixed when it was built), not {b}; use --batch {low}")
    return batches


def input_hw(spec: TensorSpec, tile: tuple[int, int]) -> tuple[int, int]:
    """The spatial size of an NCHW input (the manifest's tile where the ONNX leaves it dynamic)."""
    h, w = spec.shape[2], spec.shape[3]
    return (h if isinstance(h, int) and h > 0 else tile[0], w if isinstance(w, int) and w > 0 else tile[1])


def synthetic_feed(artifact: Artifact, spec: TensorSpec, batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Random pixels through the artifact's preprocessing, shaped and typed as ``spec`` asks."""
    h, w = input_hw(spec, artifact.manifest.tile)
    pre = artifact.manifest.preprocess
    pixels = np.random.default_rng(seed).integers(0, 256, (batch, h, w, pre.channels), dtype=np.uint8)
    return {spec.name: pre.apply(pixels).astype(spec.dtype, copy=False)}


def profile_artifact(folder: Path | str, config: ProfileConfig = ProfileConfig()) -> ProfileReport:
    """Measure one artifact on this machine; see ProfileReport for what comes back."""
    artifact = load_artifact(folder)
    m = artifact.manifest
    backend = config.backend or m.backend
    runner = open_runner(artifact, backend, threads=config.threads, device=config.device)
    before, device_before = rss_mb(), device_memory_used_mb()
    notes: list[str] = []
    with runner:
        after, device_after = rss_mb(), device_memory_used_mb()
        spec = runner.input_specs()[0]
        batches = supported_batches(artifact, runner, config.batches, backend)
        reset_ok = reset_peak_rss()
        results = tuple(_profile_batch(artifact, runner, spec, b, backend, config, notes) for b in batches)
        peak = peak_rss_mb()
        providers = tuple(getattr(runner, "providers", ()) or (backend,))
        gpu = gpu_used(runner, backend, config.device)
    layers = _layers(artifact, runner, spec, batches[0], backend, config, notes) if config.layers else None
    device_used = _delta(device_before, device_after)
    if device_used is not None and config.device:  # the probe reads the current GPU, which may be another
        device_used = None
        notes.append(f"device memory taken is not measured on GPU {config.device} (the probe reads the current GPU)")
    memory = MemoryReport(before, after, peak, not reset_ok, device_used, _engine_memory(artifact, backend),
                          artifact.loaded_mb(backend))
    on_cpu = providers == ("CPUExecutionProvider",) or backend == "openvino"
    compute_note = ("same as end-to-end (on the CPU: nothing to copy)" if on_cpu
                    else "CUDA events around execute_async_v3, inputs resident on the device" if backend == "tensorrt"
                    else "not separable for this backend" if all(r.compute is None for r in results)
                    else "CUDA events around device compute, inputs resident")
    conditions = measured_conditions(backend, providers, config.threads, CPU_COPIES if on_cpu else GPU_COPIES, compute_note)
    return ProfileReport(str(artifact.folder), m.target, backend, m.precision, m.task, input_hw(spec, m.tile),
                         _device_info(gpu), conditions, config.timing, results, memory, layers,
                         tuple(dict.fromkeys(notes)), gpu)


def gpu_used(runner: Runner, backend: str, device: int) -> int | None:
    """The index of the GPU ``runner`` runs on (``device``), None where it runs on the CPU: a CPU
    backend, or the torch backend without CUDA."""
    if backend not in GPU_BACKENDS or str(getattr(runner, "device", "")) == "cpu":
        return None
    return device


def _device_info(gpu: int | None) -> dict:
    """This machine, with the name and compute capability of GPU ``gpu`` as CUDA numbers it (the
    runners' numbering; the probe alone reads the first GPU nvidia-smi lists)."""
    from edgekit.device import cuda_device, local_device

    info = local_device().to_dict()
    name, capability = cuda_device(gpu) if gpu is not None else (None, None)
    return {**info, "gpu_name": name, "compute_capability": capability} if name else info


def _profile_batch(artifact: Artifact, runner: Runner, spec: TensorSpec, batch: int, backend: str,
                   config: ProfileConfig, notes: list[str]) -> BatchProfile:
    feed = synthetic_feed(artifact, spec, batch, config.seed)
    reader, why_not = _power_reader(backend, config.device) if config.power else (None, "not asked for")
    if reader is None:
        samples = time_calls(lambda: runner.infer(feed), config.timing)
        power = PowerSummary(False, note=why_not)
    else:
        with reader:
            samples = time_calls(lambda: runner.infer(feed), config.timing, on_counted=reader.record)
        power = summarize(reader.samples, float(samples.sum()) / 1000, batch * len(samples),
                          "tegrastats" if isinstance(reader, TegrastatsReader) else "nvml")
    stats = latency_stats(samples)
    h, w = input_hw(spec, artifact.manifest.tile)
    images_per_s = batch * 1000.0 / stats.mean
    compute = _compute_only(artifact, batch, backend, config, notes)
    return BatchProfile(batch, stats, compute, images_per_s, images_per_s * h * w / 1e6, power,
                        tuple(float(s) for s in samples))


def _power_reader(backend: str, device: int = 0):
    """(a power reader, or None and why): tegrastats on a Jetson, NVML of GPU ``device`` for a GPU backend elsewhere."""
    tegra = TegrastatsReader()
    if tegra.available:
        return tegra, ""
    if backend not in GPU_BACKENDS:
        return None, f"no tegrastats on this machine, and {backend} runs on the CPU (NVML reads GPUs)"
    from edgekit.profile.nvml import NvmlReader

    nvml = NvmlReader(device)
    return (nvml, "") if nvml.available else (None, nvml.why_not)


def _compute_only(artifact: Artifact, batch: int, backend: str, config: ProfileConfig,
                  notes: list[str]) -> LatencyStats | None:
    """Device compute without copies, on the runner's GPU: measured on TensorRT engines only (None elsewhere)."""
    if backend != "tensorrt" or artifact.engine_path is None:
        return None
    from edgekit.profile.engine import time_engine_compute

    try:
        return latency_stats(time_engine_compute(artifact.engine_path, batch, config.timing, device=config.device))
    except BackendUnavailableError as exc:
        notes.append(f"compute-only time skipped: {exc}")
        return None


def _layers(artifact: Artifact, runner: Runner, spec: TensorSpec, batch: int, backend: str,
            config: ProfileConfig, notes: list[str]) -> LayerReport | None:
    if backend == "tensorrt" and artifact.engine_path is not None:
        from edgekit.profile.engine import engine_layer_report

        return engine_layer_report(artifact.engine_path, batch, config.layer_runs, config.top, device=config.device)
    if runner.name == "openvino":
        from edgekit.profile.layers import openvino_layer_report

        return openvino_layer_report(runner, synthetic_feed(artifact, spec, batch, config.seed), config.layer_runs, config.top)
    if runner.name != "onnxruntime":
        notes.append(f"per-layer profiling is not available for the {backend} backend")
        return None
    from edgekit.runtime.onnxrt import OnnxRuntimeRunner

    feed = synthetic_feed(artifact, spec, batch, config.seed)
    with tempfile.TemporaryDirectory(prefix="edgekit-ortprof-") as tmp:
        settings = dataclasses.replace(runner.settings, profile_prefix=str(Path(tmp) / "ort"))
        profiled = OnnxRuntimeRunner(runner.model, settings)
        with profiled:
            for _ in range(config.layer_runs + 1):
                profiled.infer(feed)
        return layers_from_ort_profile(profiled.last_profile, config.top, skip_runs=1)


def _delta(before: float | None, after: float | None) -> float | None:
    return after - before if before is not None and after is not None else None


def _engine_memory(artifact: Artifact, backend: str) -> float | None:
    if backend != "tensorrt" or artifact.engine_path is None:
        return None
    from edgekit.profile.engine import engine_device_memory_mb

    try:
        return engine_device_memory_mb(artifact.engine_path)
    except BackendUnavailableError:
        return None
