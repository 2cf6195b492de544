"""What the user asks for (constraints) and what a candidate measured, checked against each other."""
from __future__ import annotations

__all__ = ["Constraints", "Measurement", "parse_latency", "parse_throughput"]

import re
from dataclasses import asdict, dataclass, field

from edgekit.errors import ConfigError


@dataclass(frozen=True)
class Constraints:
    """Limits an optimized artifact must hold on its target.

    Attributes:
        max_drop: points of the task metric the artifact may lose against FP32.
        max_latency_ms: milliseconds per batch, at most (None: no limit).
        min_throughput: images per second, at least (None: no limit).
        max_size_mb: size of the deployable model file in MB, at most (None: no limit).
    """

    max_drop: float = 0.5
    max_latency_ms: float | None = None
    min_throughput: float | None = None
    max_size_mb: float | None = None

    def __post_init__(self) -> None:
        if self.max_drop < 0:
            raise ConfigError(f"--max-drop must be at least 0 points, not {self.max_drop}")
        for name in ("max_latency_ms", "min_throughput", "max_size_mb"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigError(f"{name.replace('_', '-')} must be positive, not {value}")

    def violations(self, m: "Measurement") -> list[str]:
        """What ``m`` breaks, in words; empty when it holds every constraint."""
        broken = []
        if m.drop > self.max_drop:
            broken.append(f"loses {m.drop:.2f} points > {self.max_drop}")
        if self.max_latency_ms is not None and m.latency_ms > self.max_latency_ms:
            broken.append(f"{m.latency_ms:.1f} ms > {self.max_latency_ms} ms")
        if self.min_throughput is not None and m.throughput < self.min_throughput:
            broken.append(f"{m.throughput:.1f} img/s < {self.min_throughput} img/s")
        if self.max_size_mb is not None and m.size_mb > self.max_size_mb:
            broken.append(f"{m.size_mb:.1f} MB > {self.max_size_mb} MB")
        return broken

    def holds(self, m: "Measurement") -> bool:
        return not self.violations(m)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Measurement:
    """One candidate on the validation set and the target.

    Attributes:
        name: ``fp32``, ``int8-max``, ``mixed-3`` ...
        drop: points of the task metric lost against FP32.
        latency_ms: median per batch (an estimate where ``latency_estimated``).
        size_mb: deployable model file size.
        batch: images per run (throughput).
        metric: the candidate's task metric in [0, 1]; agreement: argmax agreement with FP32.
        float_nodes: quantizable nodes kept in float (mixtures).
        latency_estimated: True on TensorRT targets (not measured on the device).
        latency_rule: how an estimated latency was made, in words (empty when measured).
    """

    name: str
    drop: float
    latency_ms: float
    size_mb: float
    batch: int = 1
    metric: float = 0.0
    agreement: float = 1.0
    float_nodes: tuple[str, ...] = field(default=())
    latency_estimated: bool = False
    latency_rule: str = ""

    @property
    def throughput(self) -> float:
        return self.batch * 1000.0 / self.latency_ms if self.latency_ms > 0 else float("inf")

    def to_dict(self) -> dict:
        return asdict(self) | {"throughput": self.throughput, "float_nodes": list(self.float_nodes)}


def parse_latency(text: str | None) -> float | None:
    """``40``, ``40ms``, ``0.04s`` -> milliseconds."""
    if text is None:
        return None
    match = re.fullmatch(r"\s*([0-9.]+)\s*(ms|s)?\s*", str(text).lower())
    if not match:
        raise ConfigError(f"latency {text!r} is not like 40ms or 0.04s")
    value = float(match.group(1))
    return value * 1000 if match.group(2) == "s" else value


def parse_throughput(text: str | None) -> float | None:
    """``25``, ``25/s``, ``25img/s`` -> images per second."""
    if text is None:
        return None
    match = re.fullmatch(r"\s*([0-9.]+)\s*(img/s|/s)?\s*", str(text).lower())
    if not match:
        raise ConfigError(f"throughput {text!r} is not like 25img/s (images per second)")
    return float(match.group(1))
