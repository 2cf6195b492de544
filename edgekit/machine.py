"""What a measurement was taken under: clocks, governor, threads, copies, CUDA graphs; what this CPU is.

A base-layer module (it imports no edgekit package): profile, compile, convert, compress, optimize
and sweep read this machine through it.

A profile is only comparable across machines and TensorRT versions when it says these things
(trtexec changed its defaults for copies and CUDA graphs between releases). Every probe is
optional: what cannot be read is None.
"""
from __future__ import annotations

__all__ = ["Conditions", "cpu_bf16", "cpu_clock", "cpu_name", "cpu_vnni", "gpu_clocks"]

import os
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

_CPUFREQ = Path("/sys/devices/system/cpu/cpu0/cpufreq")


@dataclass(frozen=True)
class Conditions:
    """How a profile was measured.

    Attributes:
        backend: runner used (onnxruntime, tensorrt, torch).
        providers: ONNX Runtime execution providers, or the device for other backends.
        threads: intra-op threads asked for (0: the backend's default).
        end_to_end: what the end-to-end time covers.
        compute_only: what the compute-only time covers, or why there is none.
        clock: the clock read for each measurement.
        cuda_graphs: whether CUDA graphs were used (edgekit never does).
        cpu_count: logical CPUs visible to this process.
        cpu_governor / cpu_mhz: cpufreq governor and current frequency of CPU 0.
        gpu_clocks: current SM / memory clocks in MHz where nvidia-smi prints them.
    """

    backend: str
    providers: tuple[str, ...]
    threads: int
    end_to_end: str
    compute_only: str
    clock: str = "host time.perf_counter_ns around each synchronous infer call"
    cuda_graphs: bool = False
    cpu_count: int | None = None
    cpu_governor: str | None = None
    cpu_mhz: float | None = None
    gpu_clocks: dict | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def cpu_clock() -> tuple[str | None, float | None]:
    """(governor, current MHz) of CPU 0 where cpufreq is exposed."""
    governor = mhz = None
    try:
        governor = (_CPUFREQ / "scaling_governor").read_text().strip()
        mhz = int((_CPUFREQ / "scaling_cur_freq").read_text()) / 1000
    except (OSError, ValueError):
        pass
    if mhz is None:
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.lower().startswith("cpu mhz"):
                    mhz = float(line.split(":")[1])
                    break
        except (OSError, ValueError, IndexError):
            pass
    return governor, mhz


def _cpuinfo_field(key: str) -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(key):
                return line.split(":", 1)[1].strip()
    except (OSError, IndexError):
        pass
    return None


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo) and logical core count, e.g. "AMD EPYC 7B13, 2 cores"."""
    import platform

    name = _cpuinfo_field("model name") or platform.processor() or platform.machine()
    return f"{name}, {os.cpu_count()} cores"


def cpu_vnni() -> tuple[str, ...]:
    """The CPU's VNNI flags (avx512_vnni, avx_vnni): the int8 dot-product instructions ORT's int8
    kernels need to beat fp32. Empty when it has none or /proc/cpuinfo cannot be read."""
    flags = set((_cpuinfo_field("flags") or "").split())
    return tuple(f for f in ("avx512_vnni", "avx_vnni") if f in flags)


def cpu_bf16() -> tuple[str, ...]:
    """The CPU's bfloat16 flags (amx_bf16, avx512_bf16): the instructions OpenVINO's bf16 kernels
    need (without them it would emulate bf16, slower than f32). Empty when it has none or
    /proc/cpuinfo cannot be read."""
    flags = set((_cpuinfo_field("flags") or "").split())
    return tuple(f for f in ("amx_bf16", "avx512_bf16") if f in flags)


def gpu_clocks() -> dict | None:
    """Current and max SM / memory clocks of GPU 0 from nvidia-smi, or None."""
    if not shutil.which("nvidia-smi"):
        return None
    query = "clocks.sm,clocks.mem,clocks.max.sm,clocks.max.mem"
    try:
        out = subprocess.run(["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=10, check=True).stdout.splitlines()
        values = [v.strip() for v in out[0].split(",")]
        return {k: float(v) if v.replace(".", "", 1).isdigit() else v for k, v in zip(query.split(","), values)}
    except (subprocess.SubprocessError, OSError, IndexError):
        return None


def measured_conditions(backend: str, providers: tuple[str, ...], threads: int, end_to_end: str, compute_only: str) -> Conditions:
    """Conditions of a measurement taken now on this machine."""
    governor, mhz = cpu_clock()
    return Conditions(backend, tuple(providers), threads, end_to_end, compute_only, cpu_count=os.cpu_count(),
                      cpu_governor=governor, cpu_mhz=mhz, gpu_clocks=gpu_clocks())
