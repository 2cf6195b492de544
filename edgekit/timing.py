"""The timing loop and its statistics: warm-up by time, counted runs by time or count, and timing in turns.

A base-layer module (it imports no edgekit package): profile, compile, convert, compress, optimize
and sweep all time through it. Host wall clock (``time.perf_counter_ns``) around a callable; the
callable decides what is inside the measurement (end-to-end with copies, or compute only). NumPy only.
"""
from __future__ import annotations

__all__ = ["TimingConfig", "LatencyStats", "latency_stats", "time_calls", "interleaved_medians", "PERCENTILES"]

import time
from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import numpy as np

from edgekit.errors import ConfigError

PERCENTILES = (50, 90, 95, 99)


@dataclass(frozen=True)
class TimingConfig:
    """How long to warm up and how many runs to count.

    Attributes:
        warmup_s: seconds of uncounted runs first (at least one run always happens).
        duration_s: seconds of counted runs, used when ``iterations`` is 0.
        iterations: exact number of counted runs; 0 means "by time".
        min_iterations: counted runs at least, whatever the duration.
    """

    warmup_s: float = 1.0
    duration_s: float = 3.0
    iterations: int = 0
    min_iterations: int = 10

    def __post_init__(self) -> None:
        if self.warmup_s < 0 or self.duration_s < 0 or self.iterations < 0 or self.min_iterations < 1:
            raise ConfigError("timing needs warmup >= 0, duration >= 0, iterations >= 0 and min_iterations >= 1")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class LatencyStats:
    """Summary of latency samples in milliseconds (percentiles by linear interpolation)."""

    count: int
    min: float
    mean: float
    p50: float
    p90: float
    p95: float
    p99: float
    max: float
    std: float

    def to_dict(self) -> dict:
        return asdict(self)


def latency_stats(samples_ms: np.ndarray | list[float]) -> LatencyStats:
    """Statistics of ``samples_ms``; the standard deviation is the sample one (ddof=1)."""
    x = np.asarray(samples_ms, dtype=np.float64)
    if x.size == 0:
        raise ValueError("no latency samples")
    p50, p90, p95, p99 = (float(v) for v in np.percentile(x, PERCENTILES))
    std = float(x.std(ddof=1)) if x.size > 1 else 0.0
    return LatencyStats(int(x.size), float(x.min()), float(x.mean()), p50, p90, p95, p99, float(x.max()), std)


def time_calls(
    fn: Callable[[], object],
    timing: TimingConfig,
    on_counted: Callable[[], None] | None = None,
    clock: Callable[[], int] = time.perf_counter_ns,
) -> np.ndarray:
    """Warm up, then time each counted call of ``fn``; returns milliseconds per call (float64).

    Args:
        fn: one synchronous run; what it includes is what is measured.
        timing: warm-up and counted-run settings.
        on_counted: called once when the warm-up ends and counted runs begin (e.g. to start
            recording power).
        clock: nanosecond clock.
    """
    _run_for(fn, timing.warmup_s, clock)
    if on_counted is not None:
        on_counted()
    samples: list[float] = []
    end = clock() + int(timing.duration_s * 1e9)
    while _more(len(samples), timing, clock() < end):
        t0 = clock()
        fn()
        samples.append((clock() - t0) / 1e6)
    return np.asarray(samples, dtype=np.float64)


def _run_for(fn: Callable[[], object], seconds: float, clock: Callable[[], int]) -> None:
    end = clock() + int(seconds * 1e9)
    fn()
    while clock() < end:
        fn()


def _more(done: int, timing: TimingConfig, time_left: bool) -> bool:
    if timing.iterations:
        return done < timing.iterations
    return done < timing.min_iterations or time_left


def interleaved_medians(fns: Sequence[Callable[[], object]], runs: int, settle: int = 0) -> list[float]:
    """Median milliseconds of each callable, timed in turns (a, b, a, b, ...) after one warm-up each.

    Taking turns spreads a shared machine's load over every candidate alike, so the ratio of
    two medians is fair even when their absolute values drift.

    Args:
        runs: rounds; each round times every callable once.
        settle: untimed runs of a callable right before each of its timed ones (its turn is then
            ``settle + 1`` runs back to back, the last timed). For callables of different runtimes:
            a run timed right after another runtime's counts that runtime's threads still spinning
            (ONNX Runtime's pool spins after a run returns); on a 2-core EPYC the demo's OpenVINO
            int8 read 82-93 ms timed right after an ONNX Runtime run, 65-67 ms after its own.
    """
    if settle < 0:
        raise ValueError("settle must be >= 0")
    for fn in fns:
        fn()
    samples: list[list[float]] = [[] for _ in fns]
    for _ in range(max(1, runs)):
        for fn, out in zip(fns, samples):
            for _ in range(settle):
                fn()
            t0 = time.perf_counter_ns()
            fn()
            out.append((time.perf_counter_ns() - t0) / 1e6)
    return [float(np.median(s)) for s in samples]
