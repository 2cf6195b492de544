"""Host resident memory (current and peak) and device memory, where this machine lets us read them.

A base-layer module (it imports no other edgekit module): tiling, detection, run and profile all
read memory through it. Linux: ``/proc/self/status`` (VmRSS, VmHWM); the peak is reset by writing
5 to ``/proc/self/clear_refs`` (Linux >= 4.0). Device memory: cuda-python's ``cudaMemGetInfo``
where cuda-python and a GPU exist. Every probe returns None instead of failing.
"""
from __future__ import annotations

__all__ = ["rss_mb", "peak_rss_mb", "reset_peak_rss", "device_memory_used_mb"]

import resource
import sys
from pathlib import Path

_STATUS = Path("/proc/self/status")


def _status_kb(key: str) -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def rss_mb() -> float | None:
    """Current resident set size of this process."""
    kb = _status_kb("VmRSS")
    return kb / 1024 if kb is not None else None


def peak_rss_mb() -> float | None:
    """Peak resident set size of this process (since the last reset)."""
    kb = _status_kb("VmHWM")
    if kb is None:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
        return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024
    return kb / 1024


def reset_peak_rss() -> bool:
    """Reset the peak RSS counter; False where the kernel does not allow it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def device_memory_used_mb() -> float | None:
    """Device memory in use on the current GPU (total - free), via cuda-python; None without one."""
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart  # cuda-python < 12.6
        except ImportError:
            return None
    try:
        err, free, total = cudart.cudaMemGetInfo()
    except Exception:  # no driver or no device: a missing probe, not an error
        return None
    if err != cudart.cudaError_t.cudaSuccess:
        return None
    return (total - free) / (1024 * 1024)
