"""The build report: one row per stage, written as report.json and report.md."""
from __future__ import annotations

__all__ = ["StageRecord", "BuildReport"]

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class StageRecord:
    """What one stage did and what it proved.

    Attributes:
        parity: the stage's proof in words (max relative error, agreement, mIoU...).
        latency_ms: median latency on this machine of the stage's output (None: not measured).
    """

    stage: str
    seconds: float
    nodes: int | None = None
    params: int | None = None
    size_mb: float | None = None
    parity: str = ""
    latency_ms: float | None = None
    detail: str = ""


@dataclass(frozen=True)
class BuildReport:
    source: str
    target: str
    precision: str
    stages: tuple[StageRecord, ...] = ()
    status: str = "complete"
    next_step: str = ""
    details: dict = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return sum(s.seconds for s in self.stages)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["seconds"] = self.seconds
        return data

    def write(self, folder: Path) -> None:
        (Path(folder) / "report.json").write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        (Path(folder) / "report.md").write_text(self.to_markdown())

    def rows(self) -> list[list[str]]:
        def fmt(value, spec):
            return "-" if value is None else format(value, spec)

        return [
            [s.stage, f"{s.seconds:.1f}", fmt(s.nodes, "d"), fmt(s.params, ","), fmt(s.size_mb, ".1f"), s.parity or "-",
             fmt(s.latency_ms, ".1f")]
            for s in self.stages
        ]

    HEADER = ("stage", "seconds", "nodes", "params", "size MB", "parity", "latency ms")

    def to_markdown(self) -> str:
        lines = [
            f"# edgekit build: {self.source} -> {self.target} ({self.precision})",
            "",
            f"Status: **{self.status}**, {self.seconds:.1f} s in all.",
            "",
            "| " + " | ".join(self.HEADER) + " |",
            "|" + "---|" * len(self.HEADER),
        ]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows()]
        notes = [f"- **{s.stage}**: {s.detail}" for s in self.stages if s.detail]
        if notes:
            lines += ["", "Notes:", *notes]
        if self.next_step:
            lines += ["", f"Next step: `{self.next_step}`"]
        lines += ["", "Latency: median of timed runs after warm-up on the build machine (CPU, "
                  "ONNX Runtime for ONNX stages, PyTorch for the torch stages), batch as exported."]
        return "\n".join(lines) + "\n"
