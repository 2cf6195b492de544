"""Which runtime a cpu artifact keeps: each usable runtime's compiled file timed here, in turns.

A cpu target may list several runtimes (``runtimes:`` in its profile; the ``cpu`` target lists
ONNX Runtime and OpenVINO). The compile stage compiles and verifies the deployable graph on each
(:mod:`edgekit.compile.stage`); the files that hold their budget are timed here, each by the runner
`edgekit infer` would open, on the same input, in turns (a, b, a, b...: a shared machine's load
falls on both alike; each turn is two runs back to back, the second timed, so that one runtime's
figure does not carry the other's threads still spinning), and the fastest is kept. The target's first runtime (the one the precision
stage verified held-out accuracy on) is kept unless another is at least :data:`MARGIN` faster, so
that noise between two equal runtimes does not decide. A runtime that is not installed, cannot
read the graph or leaves its budget is recorded with its one-line reason.

The figures, the CPU and both versions go to the manifest (``session["runtime_choice"]``) and the
build report; NumPy only, no torch.
"""
from __future__ import annotations

__all__ = ["BF16_PIN", "CHOICE_KEY", "MARGIN", "Candidate", "RuntimeChoice", "choose_runtime", "pinned_choice"]

from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edgekit.artifact.manifest import Manifest

CHOICE_KEY = "runtime_choice"  # the manifest's session entry
MARGIN = 1.05  # another runtime must be this much faster than the target's first to be kept
BF16_PIN = "bf16, which only OpenVINO runs on a CPU"  # what pins a bf16 artifact's runtime


@dataclass(frozen=True)
class Candidate:
    """One runtime's compiled artifact, or why there is none.

    Attributes:
        runtime: ``onnxruntime`` or ``openvino``.
        manifest: the manifest of its compiled file (None: not usable here).
        reason: why it is not usable (not installed, cannot read the graph, leaves its budget).
        notes: the compile warnings it raised (a plan saved at a lower level...).
    """

    runtime: str
    manifest: Manifest | None = None
    reason: str = ""
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class RuntimeChoice:
    """What was measured and kept.

    Attributes:
        kept: the runtime kept.
        by: ``measured`` (the faster here), ``only usable`` (the others could not run it) or
            ``pinned`` (``--runtime``: nothing measured).
        ms: median milliseconds per run of each usable runtime's compiled file (empty when pinned).
        unusable: runtime -> why it could not be used.
        versions: runtime -> its version.
        runs / input / threads: timed runs per runtime, what they ran on, threads asked for.
        cpu: the CPU measured on (model name, cores).
        note: what pinned it (``--runtime``, ``bf16``), when pinned.
    """

    kept: str
    by: str
    ms: dict[str, float] = field(default_factory=dict)
    unusable: dict[str, str] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    runs: int = 0
    input: str = ""
    threads: int = 0
    cpu: str = ""
    note: str = ""

    @property
    def pinned(self) -> bool:
        return self.by == "pinned"

    @property
    def speedup(self) -> float | None:
        """The slowest usable runtime's median over the kept one's (None with one usable runtime)."""
        if len(self.ms) < 2:
            return None
        return max(self.ms.values()) / self.ms[self.kept]

    def to_dict(self) -> dict:
        return asdict(self) | {"pinned": self.pinned, "speedup": self.speedup}

    @classmethod
    def from_dict(cls, data: dict) -> "RuntimeChoice":
        names = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in names})


def pinned_choice(runtime: str, why: str = "--runtime") -> RuntimeChoice:
    """The record of a runtime pinned (by ``--runtime``, or a precision only it runs): kept without measuring."""
    return RuntimeChoice(runtime, "pinned", versions=_versions((runtime,)), note=why)


def choose_runtime(work: Path, candidates: list[Candidate], feed: dict[str, np.ndarray], source: str,
                   runs: int, threads: int) -> RuntimeChoice:
    """Time every usable candidate's artifact in turns on ``feed`` and keep the fastest
    (the first candidate unless another is :data:`MARGIN` faster).

    Args:
        work: the folder holding every candidate's compiled file.
        candidates: in the target's order; at least one usable.
        feed: the input timed (one batch), described by ``source``.
        runs: timed runs per runtime, after one warm-up run each.
    """
    from edgekit.machine import cpu_name

    usable = [c for c in candidates if c.manifest is not None]
    unusable = {c.runtime: c.reason for c in candidates if c.manifest is None}
    versions = _versions(tuple(c.runtime for c in candidates))
    if len(usable) == 1:
        return RuntimeChoice(usable[0].runtime, "only usable", unusable=unusable, versions=versions, cpu=cpu_name())
    ms = _time_in_turns(work, usable, feed, runs)
    first = usable[0].runtime
    fastest = min(ms, key=ms.get)
    kept = fastest if ms[first] >= MARGIN * ms[fastest] else first
    return RuntimeChoice(kept, "measured", ms, unusable, versions, max(1, runs), source, threads, cpu_name())


def _time_in_turns(work: Path, usable: list[Candidate], feed: dict[str, np.ndarray], runs: int) -> dict[str, float]:
    """Median ms of each candidate's artifact, opened as `edgekit infer` opens it, in turns of two runs."""
    from edgekit.artifact.folder import Artifact
    from edgekit.runtime.open import open_runner
    from edgekit.timing import interleaved_medians

    with ExitStack() as stack:
        runners = [stack.enter_context(open_runner(Artifact(work, c.manifest))) for c in usable]
        # each turn two runs back to back, the second timed: runtimes' thread pools differ
        medians = interleaved_medians([lambda r=r: r.infer(feed) for r in runners], runs, settle=1)
    return {c.runtime: ms for c, ms in zip(usable, medians)}


def _versions(runtimes: tuple[str, ...]) -> dict[str, str]:
    """Each runtime's version where it is installed."""
    found = {}
    for runtime in runtimes:
        if runtime == "openvino":
            from edgekit.runtime.openvino_rt import openvino_version

            version = openvino_version()
        else:
            try:
                import onnxruntime
            except ImportError:
                continue
            version = onnxruntime.__version__
        if version:
            found[runtime] = version
    return found
