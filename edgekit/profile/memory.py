"""What a profile run records about memory (:class:`MemoryReport`).

The probes themselves live in the base layer (:mod:`edgekit.memory`), so that tiling, detection
and run read memory without importing this package (whose ``__init__`` loads compare, evaluate and
calibration); they are re-exported here for the profile stage.
"""
from __future__ import annotations

__all__ = ["MemoryReport", "rss_mb", "peak_rss_mb", "reset_peak_rss", "device_memory_used_mb"]

from dataclasses import asdict, dataclass

from edgekit.memory import device_memory_used_mb, peak_rss_mb, reset_peak_rss, rss_mb


@dataclass(frozen=True)
class MemoryReport:
    """Memory of one profile run, in MiB; None where it could not be read.

    Attributes:
        rss_before_load: host RSS before the model was loaded.
        rss_after_load: host RSS once the runner was active.
        peak_rss: host peak RSS during the counted runs (since load when the peak could be reset).
        peak_is_process_lifetime: True when the peak could not be reset, so it covers the whole process.
        device_used_delta: device memory taken while the runner was active (free-memory drop).
        engine_device_memory: activation memory a TensorRT engine asks for (device_memory_size).
        model_file: size of the file the backend loads.
    """

    rss_before_load: float | None = None
    rss_after_load: float | None = None
    peak_rss: float | None = None
    peak_is_process_lifetime: bool = False
    device_used_delta: float | None = None
    engine_device_memory: float | None = None
    model_file: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)
