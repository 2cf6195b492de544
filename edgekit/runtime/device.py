"""What this machine can run: GPU name and compute capability, TensorRT, CUDA and ORT versions.

Every probe is lazy and optional: a missing library reads as None, never as an error.
"""
from __future__ import annotations

__all__ = ["DeviceInfo", "local_device"]

import importlib.metadata
import platform
import shutil
import subprocess
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path


@dataclass(frozen=True)
class DeviceInfo:
    """The facts an engine's compatibility depends on."""

    gpu_name: str | None = None
    compute_capability: str | None = None
    tensorrt: str | None = None
    cuda: str | None = None
    onnxruntime: str | None = None
    jetpack: str | None = None
    machine: str = platform.machine()

    def to_dict(self) -> dict:
        return asdict(self)


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _tensorrt_version() -> str | None:
    try:
        import tensorrt

        return tensorrt.__version__
    except ImportError:
        return None


def _gpu() -> tuple[str | None, str | None]:
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(
                ["nvidia-smi", "--query-gpu=name,compute_cap", "--format=csv,noheader"],
                capture_output=True, text=True, timeout=10, check=True,
            ).stdout.strip().splitlines()
            if out and "," in out[0]:
                name, cc = (s.strip() for s in out[0].split(",", 1))
                return name, cc
        except (subprocess.SubprocessError, OSError):
            pass
    model = Path("/proc/device-tree/model")  # Jetson: nvidia-smi has no compute_cap there
    if model.is_file() and "jetson" in model.read_text(errors="ignore").lower():
        return model.read_text(errors="ignore").strip("\x00 \n"), "8.7"
    return None, None


def _jetpack() -> str | None:
    release = Path("/etc/nv_tegra_release")
    return release.read_text().split(",")[0].strip("# ") if release.is_file() else None


@lru_cache(maxsize=1)
def local_device() -> DeviceInfo:
    """Probe this machine once."""
    name, cc = _gpu()
    return DeviceInfo(
        gpu_name=name,
        compute_capability=cc,
        tensorrt=_tensorrt_version(),
        cuda=_version("cuda-python") or _version("cuda-bindings"),
        onnxruntime=_version("onnxruntime-gpu") or _version("onnxruntime"),
        jetpack=_jetpack(),
    )
