"""Power, clocks and load of an NVIDIA desktop GPU through NVML (``nvidia-ml-py``), sampled in the
background while `profile` times: the RTX counterpart of :mod:`edgekit.profile.tegrastats`.

Each sample becomes a :class:`~edgekit.profile.tegrastats.TegraSample` (rail ``GPU``: the board
power NVML reports, in milliwatts; ``gpu_load``; ``temperatures['GPU']``; ``clocks_mhz`` of the SM
and memory), so one summary serves both readers. Without nvidia-ml-py or a GPU the reader is
unavailable and says why.
"""
from __future__ import annotations

__all__ = ["NvmlReader", "nvml_sample"]

import threading
import time

from edgekit.profile.tegrastats import TegraSample


def _pynvml():
    try:
        import pynvml
    except ImportError:
        return None
    return pynvml


def nvml_sample(nvml, handle, when: float = 0.0) -> TegraSample:
    """One reading of a device: power (mW), SM and memory clocks (MHz), load (%) and temperature (C)."""
    rates = nvml.nvmlDeviceGetUtilizationRates(handle)
    return TegraSample(
        rails={"GPU": int(nvml.nvmlDeviceGetPowerUsage(handle))},
        gpu_load=int(rates.gpu),
        temperatures={"GPU": float(nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU))},
        clocks_mhz={"SM": int(nvml.nvmlDeviceGetClockInfo(handle, nvml.NVML_CLOCK_SM)),
                    "MEM": int(nvml.nvmlDeviceGetClockInfo(handle, nvml.NVML_CLOCK_MEM))},
        time=when,
    )


class NvmlReader:
    """Samples GPU ``device`` every ``interval_ms`` in a thread; same use as TegrastatsReader:
    ``with NvmlReader() as reader: reader.record(); ...``, then ``reader.samples``."""

    def __init__(self, device: int = 0, interval_ms: int = 50, nvml=None):
        self.device, self.interval_ms = device, interval_ms
        self.nvml = nvml or _pynvml()
        self.samples: list[TegraSample] = []
        self.why_not = ""
        self._handle = None
        self._stop = threading.Event()
        self._recording = threading.Event()
        self._thread: threading.Thread | None = None
        if self.nvml is None:
            self.why_not = "no nvidia-ml-py (pip install nvidia-ml-py) for GPU power"
            return
        try:
            self.nvml.nvmlInit()
            self._handle = self.nvml.nvmlDeviceGetHandleByIndex(device)
        except Exception as exc:  # NVMLError_* for no driver, no device, no permission
            self.why_not = f"NVML cannot read GPU {device}: {exc}"
            self._handle = None

    @property
    def available(self) -> bool:
        return self._handle is not None

    def __enter__(self) -> "NvmlReader":
        if self.available:
            self._thread = threading.Thread(target=self._read, daemon=True, name="nvml-reader")
            self._thread.start()
        return self

    def record(self) -> None:
        """Start keeping samples (those taken before, during a warm-up, are dropped)."""
        self.samples.clear()
        self._recording.set()

    def __exit__(self, *exc) -> None:
        self._recording.clear()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        if self.nvml is not None and self._handle is not None:
            self.nvml.nvmlShutdown()

    def _read(self) -> None:
        while not self._stop.wait(self.interval_ms / 1000):
            if self._recording.is_set():
                self.samples.append(nvml_sample(self.nvml, self._handle, time.monotonic()))
