"""What this machine can run: GPU name and compute capability, TensorRT, CUDA and ORT versions.

A base-layer module (it imports no edgekit package): the artifact's device check, the runtimes,
compile and profile read the device through it. Every probe is lazy and optional: a missing
library reads as None, never as an error.
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


JETSON_MODEL = Path("/proc/device-tree/model")  # often masked inside containers
CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY = (75, 76)  # major, minor (cuda.h)


def _gpu(index: int = 0) -> tuple[str | None, str | None]:
    """(name, compute capability) of GPU ``index``: GPU 0 from nvidia-smi on desktops, else the CUDA
    driver itself (Jetson's nvidia-smi has no compute_cap); a Jetson's model string gives a name, never
    a capability. Another index is read from the CUDA driver only: nvidia-smi numbers GPUs by PCI bus,
    CUDA (and so every runner) fastest first."""
    if index:
        return cuda_device(index)
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
    name, cc = cuda_device()
    if cc is not None:
        return name, cc
    if JETSON_MODEL.is_file() and "jetson" in JETSON_MODEL.read_text(errors="ignore").lower():
        return JETSON_MODEL.read_text(errors="ignore").strip("\x00 \n"), None
    return None, None


def _libcuda():
    import ctypes

    for name in ("libcuda.so.1", "libcuda.so"):
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    return None


def gpu_count(lib=None) -> int:
    """CUDA devices the driver sees (0 without a driver)."""
    import ctypes

    lib = lib or _libcuda()
    count = ctypes.c_int(0)
    if lib is None or lib.cuInit(0) != 0 or lib.cuDeviceGetCount(ctypes.byref(count)) != 0:
        return 0
    return count.value


def cuda_device(index: int = 0, lib=None) -> tuple[str | None, str | None]:
    """(name, "major.minor") of CUDA device ``index`` from the driver library (libcuda, through
    ctypes: no CUDA Python package needed); (None, None) where there is no driver or device."""
    import ctypes

    lib = lib or _libcuda()
    if lib is None or lib.cuInit(0) != 0:
        return None, None
    device = ctypes.c_int()
    if lib.cuDeviceGet(ctypes.byref(device), index) != 0:
        return None, None
    major, minor = ctypes.c_int(), ctypes.c_int()
    for value, attribute in zip((major, minor), CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY):
        if lib.cuDeviceGetAttribute(ctypes.byref(value), attribute, device) != 0:
            return None, None
    name = ctypes.create_string_buffer(256)
    lib.cuDeviceGetName(name, 256, device)
    return name.value.decode(errors="replace") or None, f"{major.value}.{minor.value}"


def _jetpack() -> str | None:
    release = Path("/etc/nv_tegra_release")
    return release.read_text().split(",")[0].strip("# ") if release.is_file() else None


@lru_cache(maxsize=None)
def local_device(index: int = 0) -> DeviceInfo:
    """Probe this machine once (per GPU index: ``--device``)."""
    name, cc = _gpu(index)
    return DeviceInfo(
        gpu_name=name,
        compute_capability=cc,
        tensorrt=_tensorrt_version(),
        cuda=_version("cuda-python") or _version("cuda-bindings"),
        onnxruntime=_version("onnxruntime-gpu") or _version("onnxruntime"),
        jetpack=_jetpack(),
    )
