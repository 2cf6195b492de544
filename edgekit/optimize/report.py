"""What `edgekit optimize` tried and chose: a dataclass, written as report.json and report.md."""
from __future__ import annotations

__all__ = ["OptimizeReport", "choose", "infeasible_message"]

from dataclasses import dataclass, field
from pathlib import Path

from edgekit.artifact.layout import write_report
from edgekit.optimize.constraints import Constraints, Measurement


@dataclass(frozen=True)
class OptimizeReport:
    """Every candidate measured, the search's steps, and the choice with its reasons.

    Attributes:
        metric_name: what the drop is measured on (ground truth, or agreement with FP32).
        reference_metric: the FP32 model's metric in [0, 1].
        candidates: whole-model candidates (fp32, fp16, int8-<method>, dynamic).
        regions: region name -> {nodes, sensitivity (points lost when lowered alone)}.
        search: the search's result (``SearchResult.to_dict``), or None when it did not run.
        chosen: the chosen measurement.
        node_costs: per-node float / int8 cost used by the search, by node.
        notes: what the figures mean where it is not obvious (estimates, no masks...).
        cache: measurements found on disk and made in this run.
        decided_by: what decided the choice, in words (:func:`choose`).
    """

    source: str
    target: str
    constraints: Constraints
    metric_name: str
    reference_metric: float
    candidates: tuple[Measurement, ...]
    chosen: Measurement
    regions: dict = field(default_factory=dict)
    search: dict | None = None
    node_costs: dict = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    cache: dict = field(default_factory=dict)
    seconds: float = 0.0
    decided_by: str = ""

    def to_dict(self) -> dict:
        return {
            "source": self.source, "target": self.target, "constraints": self.constraints.to_dict(),
            "metric": self.metric_name, "reference_metric": self.reference_metric,
            "candidates": [c.to_dict() for c in self.candidates], "chosen": self.chosen.to_dict(),
            "regions": self.regions, "search": self.search, "node_costs": self.node_costs,
            "notes": list(self.notes), "cache": self.cache, "seconds": self.seconds, "decided_by": self.decided_by,
            "latency_rules": self.latency_legend(),
        }

    def tried(self) -> list[Measurement]:
        """Whole-model candidates, then the search's mixtures."""
        steps = [Measurement(**{k: v for k, v in s.items() if k != "throughput"} | {"float_nodes": tuple(s["float_nodes"])})
                 for s in (self.search or {}).get("steps", [])]
        return [*self.candidates, *steps]

    HEADER = ("candidate", "drop (points)", "metric", "latency ms", "img/s", "size MB", "float nodes", "holds")

    def rows(self) -> list[list[str]]:
        def row(m: Measurement) -> list[str]:
            mark = " (chosen)" if m.name == self.chosen.name else ""
            lat = f"{m.latency_ms:.1f}{'*' if m.latency_estimated else ''}"
            return [m.name + mark, f"{m.drop:.2f}", f"{100 * m.metric:.2f}", lat, f"{m.throughput:.1f}",
                    f"{m.size_mb:.1f}", str(len(m.float_nodes)), "yes" if self.constraints.holds(m) else "no"]

        return [row(m) for m in self.tried()]

    def latency_legend(self) -> list[str]:
        """One line per rule that made an estimated latency (*), with the candidates it made."""
        rules: dict[str, list[str]] = {}
        for m in self.tried():
            if m.latency_estimated:
                rules.setdefault(m.latency_rule, []).append(m.name)
        return [f"* {', '.join(names[:4])}{f' and {len(names) - 4} more' if len(names) > 4 else ''}: {rule}"
                for rule, names in rules.items()]

    def to_markdown(self) -> str:
        c = self.constraints
        limits = [f"max drop {c.max_drop} points"] + [s for s in (
            f"max latency {c.max_latency_ms} ms" if c.max_latency_ms else "",
            f"min throughput {c.min_throughput} img/s" if c.min_throughput else "",
            f"max size {c.max_size_mb} MB" if c.max_size_mb else "") if s]
        lines = [f"# edgekit optimize: {self.source} -> {self.target}", "",
                 f"Constraints: {', '.join(limits)}. Metric: {self.metric_name} "
                 f"(FP32: {100 * self.reference_metric:.2f}). Chosen: **{self.chosen.name}**, "
                 f"{self.chosen.latency_ms:.1f} ms{' (estimated)' if self.chosen.latency_estimated else ''}, "
                 f"{self.chosen.drop:.2f} points lost.", "",
                 *([f"Decided by: {self.decided_by}.", ""] if self.decided_by else []),
                 "| " + " | ".join(self.HEADER) + " |", "|" + "---|" * len(self.HEADER)]
        lines += ["| " + " | ".join(r) + " |" for r in self.rows()]
        legend = self.latency_legend()
        if legend:
            lines += ["", "## Latency (*: estimated, not measured on the target)", "", *legend]
        decisions = (self.search or {}).get("decisions", []) if self.chosen.name.startswith("mixed") else []
        if decisions:
            lines += ["", "## Nodes kept in float", "", "| node | region | why |", "|---|---|---|"]
            lines += [f"| {d['node']} | {d['region']} | {d['reason']} |" for d in decisions]
        if self.regions:
            lines += ["", "## Sensitivity per region (points lost when lowered alone)", "", "| region | nodes | points |", "|---|---|---|"]
            lines += [f"| {name} | {len(r['nodes'])} | {r['sensitivity']:.2f} |" for name, r in self.regions.items()]
        lines += ["", *[f"- {n}" for n in self.notes], f"- {self.seconds:.0f} s; cache: {self.cache}"]
        return "\n".join(lines) + "\n"

    def write(self, folder: Path) -> None:
        """report.json and report.md, through the artifact folder's owner."""
        write_report(folder, self.to_dict(), self.to_markdown())


def choose(feasible: list[Measurement]) -> tuple[Measurement, str]:
    """The fastest of ``feasible`` (fewer points lost among equals) and what decided, in words.

    A measured latency ranks before any estimate: an estimate never wins over a measurement.
    """
    measured = [m for m in feasible if not m.latency_estimated]
    chosen = min(measured or feasible, key=lambda m: (m.latency_ms, m.drop))
    held = f"of the {len(feasible)} candidates that hold the constraints"
    if chosen.latency_estimated:
        return chosen, (f"{chosen.name}: the lowest estimated latency {held} (none was measured on the target; "
                        "the rules are listed under Latency)")
    why = f"{chosen.name}: the lowest measured latency {held}"
    faster = [m.name for m in feasible if m.latency_estimated and m.latency_ms < chosen.latency_ms]
    if faster:
        why += f"; {', '.join(faster)} only estimated faster, and estimates rank after measurements"
    return chosen, why


def infeasible_message(tried: list[Measurement], constraints: Constraints) -> str:
    """One line: no candidate holds the constraints; the best reachable figures; what to loosen."""
    def fig(m: Measurement) -> str:
        return f"{m.name} {m.latency_ms:.1f} ms, {m.drop:.2f} points, {m.size_mb:.1f} MB"

    within_drop = [m for m in tried if m.drop <= constraints.max_drop]
    fastest = min(tried, key=lambda m: m.latency_ms)
    parts = [f"fastest: {fig(fastest)}"]
    if within_drop:
        parts.insert(0, f"fastest within {constraints.max_drop} points: {fig(min(within_drop, key=lambda m: m.latency_ms))}")
    smallest = min(tried, key=lambda m: m.size_mb)
    if constraints.max_size_mb is not None:
        parts.append(f"smallest: {fig(smallest)}")
    return (f"no candidate holds the constraints ({len(tried)} tried); best reachable: {'; '.join(parts)}; "
            "loosen --max-drop, --max-latency, --min-throughput or --max-size")
