"""Jetson power and load from `tegrastats`: a line parser and a background reader.

tegrastats prints one line per interval. The grammar NVIDIA documents (``RAM X/Y (lfb NxZ)``,
``CPU [X%@Z,...]``, ``GR3D_FREQ X%@Z`` or ``X%@[Y,Y]``, ``EMC_FREQ X%@Y``, ``name@T C``
temperatures) is followed by power rails ``NAME cur/avg``: with a ``mW`` unit on JetPack 5 and
later (``VDD_GPU_SOC 3150mW/2971mW``), without one on JetPack 4 (``POM_5V_IN 1750/1628``).
Board power is the input rail when there is one (``VDD_IN`` on Orin NX/Nano and Xavier NX,
``POM_5V_IN`` on Nano), otherwise the sum of the rails printed (AGX Orin has no input rail).
"""
from __future__ import annotations

__all__ = ["TegraSample", "parse_line", "PowerSummary", "TegrastatsReader", "tegrastats_path", "summarize"]

import re
import shutil
import subprocess
import threading
import time
from dataclasses import asdict, dataclass, field

INPUT_RAILS = ("VDD_IN", "POM_5V_IN")
_RAIL = re.compile(r"\b([A-Z][A-Z0-9_]*)\s+(\d+)(?:mW)?/(\d+)(?:mW)?(?=\s|$)")
_RAM = re.compile(r"\bRAM\s+(\d+)/(\d+)MB")
_GR3D = re.compile(r"\bGR3D_FREQ\s+(\d+)%")
_CPU = re.compile(r"\bCPU\s+\[([^\]]*)\]")
_TEMP = re.compile(r"\b([A-Za-z][A-Za-z0-9_]*)@(-?\d+(?:\.\d+)?)C\b")


@dataclass(frozen=True)
class TegraSample:
    """One tegrastats line.

    Attributes:
        rails: instantaneous power per rail, milliwatts.
        ram_used_mb / ram_total_mb: RAM in use and available (None when absent).
        gpu_load: GR3D (iGPU) load in percent.
        cpu_loads: per-core load in percent (None for a core that is off).
        temperatures: degrees Celsius by sensor name.
        time: monotonic time the line was read (0 when parsed from text).
        clocks_mhz: clocks by name (NVML samples: ``SM``, ``MEM``; tegrastats lines leave it empty).
    """

    rails: dict = field(default_factory=dict)
    ram_used_mb: int | None = None
    ram_total_mb: int | None = None
    gpu_load: int | None = None
    cpu_loads: tuple = ()
    temperatures: dict = field(default_factory=dict)
    time: float = 0.0
    clocks_mhz: dict = field(default_factory=dict)

    @property
    def board_power_mw(self) -> float | None:
        """The input rail when printed, else the sum of all rails; None without rails."""
        for name in INPUT_RAILS:
            if name in self.rails:
                return float(self.rails[name])
        return float(sum(self.rails.values())) if self.rails else None

    @property
    def power_source(self) -> str:
        for name in INPUT_RAILS:
            if name in self.rails:
                return name
        return "+".join(self.rails) if self.rails else "none"


def parse_line(line: str, when: float = 0.0) -> TegraSample:
    """Parse one tegrastats line (with or without its leading timestamp)."""
    rails = {m.group(1): int(m.group(2)) for m in _RAIL.finditer(line) if m.group(1) not in ("RAM", "SWAP", "IRAM")}
    ram = _RAM.search(line)
    gr3d = _GR3D.search(line)
    cpu = _CPU.search(line)
    temps = {m.group(1): float(m.group(2)) for m in _TEMP.finditer(line)}
    return TegraSample(
        rails=rails,
        ram_used_mb=int(ram.group(1)) if ram else None,
        ram_total_mb=int(ram.group(2)) if ram else None,
        gpu_load=int(gr3d.group(1)) if gr3d else None,
        cpu_loads=_cpu_loads(cpu.group(1)) if cpu else (),
        temperatures=temps,
        time=when,
    )


def _cpu_loads(text: str) -> tuple:
    loads = []
    for part in text.split(","):
        m = re.match(r"\s*(\d+)%", part)
        loads.append(int(m.group(1)) if m else None)
    return tuple(loads)


@dataclass(frozen=True)
class PowerSummary:
    """Average board power over a measurement, and the energy per image.

    Attributes:
        available: False where no tegrastats exists (then ``note`` says so).
        samples: tegrastats lines averaged.
        source: which rail(s) make the board power.
        mean_w / peak_w: average and largest board power, watts.
        mj_per_image: mean power times the measured time, per image, millijoules.
        rails_mean_w: mean power of each rail, watts.
        clocks_mean_mhz: mean of each clock sampled (NVML).
        reader: ``tegrastats`` (Jetson) or ``nvml`` (desktop GPU).
    """

    available: bool
    note: str = ""
    samples: int = 0
    source: str = ""
    mean_w: float | None = None
    peak_w: float | None = None
    mj_per_image: float | None = None
    rails_mean_w: dict = field(default_factory=dict)
    clocks_mean_mhz: dict = field(default_factory=dict)
    reader: str = "tegrastats"

    def to_dict(self) -> dict:
        return asdict(self)


def summarize(samples: list[TegraSample], seconds: float, images: int, reader: str = "tegrastats") -> PowerSummary:
    """Average ``samples`` (read during ``seconds`` in which ``images`` were processed by ``reader``)."""
    powered = [s for s in samples if s.board_power_mw is not None]
    if not powered:
        why = "tegrastats printed no power rails (run it as root on a Jetson)" if reader == "tegrastats" else \
            "NVML gave no sample during the timed runs (runs shorter than its interval)"
        return PowerSummary(False, note=why, reader=reader)
    watts = [s.board_power_mw / 1000 for s in powered]
    mean_w = sum(watts) / len(watts)
    rails = sorted({r for s in powered for r in s.rails})
    rails_mean = {r: sum(s.rails.get(r, 0) for s in powered) / len(powered) / 1000 for r in rails}
    mj = mean_w * seconds * 1000 / images if images else None
    names = sorted({c for s in powered for c in s.clocks_mhz})
    clocks = {c: sum(s.clocks_mhz.get(c, 0) for s in powered) / len(powered) for c in names}
    return PowerSummary(True, "", len(powered), powered[-1].power_source, mean_w, max(watts), mj, rails_mean, clocks, reader)


def tegrastats_path() -> str | None:
    """The tegrastats executable, or None where there is none (any machine but a Jetson)."""
    return shutil.which("tegrastats") or (shutil.which("/usr/bin/tegrastats"))


class TegrastatsReader:
    """Runs ``tegrastats --interval N`` in the background and keeps the parsed lines.

    Use as ``with TegrastatsReader() as reader: reader.record(); ...``; ``reader.samples`` holds
    the lines read between ``record()`` and the end of the block. Without tegrastats the reader stays empty and ``available`` is False.
    """

    def __init__(self, interval_ms: int = 100, executable: str | None = None):
        self.interval_ms = interval_ms
        self.executable = executable or tegrastats_path()
        self.samples: list[TegraSample] = []
        self._proc: subprocess.Popen | None = None
        self._thread: threading.Thread | None = None
        self._recording = threading.Event()

    @property
    def available(self) -> bool:
        return self.executable is not None

    def __enter__(self) -> "TegrastatsReader":
        if self.available:
            self._proc = subprocess.Popen(
                [self.executable, "--interval", str(self.interval_ms)],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1,
            )
            self._thread = threading.Thread(target=self._read, daemon=True)
            self._thread.start()
        return self

    def record(self) -> None:
        """Start keeping lines (those printed before, during a warm-up, are dropped)."""
        self.samples.clear()
        self._recording.set()

    def __exit__(self, *exc) -> None:
        self._recording.clear()
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            if self._recording.is_set() and line.strip():
                self.samples.append(parse_line(line, time.monotonic()))
