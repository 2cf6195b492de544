"""The compress report: what changed, figures before and after, the recovery's curve (JSON + Markdown)."""
from __future__ import annotations

__all__ = ["CompressReport", "markdown"]

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class CompressReport:
    """Everything `edgekit compress` measured.

    Attributes:
        before / after: {latency_ms, size_mb, params, macs} of the original and the chosen model.
        accuracy: {metric, before, after, drop, agreement} on the validation set.
        latency_kind: ``measured`` (ONNX Runtime CPU here) or ``estimated`` (TensorRT target).
        candidates: [{plan, figures, misses}] for every plan measured.
        changes: what depth, prune and lowrank did to the chosen plan.
        recovery: the distillation's curve and steps.
    """

    source: str
    target: str
    level: int
    goal: dict
    plan: str
    before: dict
    after: dict
    accuracy: dict
    latency_kind: str
    runtime: str
    candidates: tuple[dict, ...] = ()
    changes: dict = field(default_factory=dict)
    recovery: dict = field(default_factory=dict)
    tried: tuple[dict, ...] = ()
    seconds: dict = field(default_factory=dict)
    cache: dict = field(default_factory=dict)

    @property
    def speedup(self) -> float:
        return self.before["latency_ms"] / self.after["latency_ms"]

    def to_dict(self) -> dict:
        data = asdict(self)
        data["speedup"] = round(self.speedup, 3)
        return data

    def write(self, folder: Path) -> None:
        (Path(folder) / "report.json").write_text(json.dumps(self.to_dict(), indent=2, default=str))
        (Path(folder) / "report.md").write_text(markdown(self))


def _row(name: str, before, after, fmt: str) -> str:
    return f"| {name} | {format(before, fmt)} | {format(after, fmt)} | {after / before:.2f}x |"


def markdown(r: CompressReport) -> str:
    """The report as a Markdown page."""
    b, a, acc = r.before, r.after, r.accuracy
    lines = [
        f"# edgekit compress: {r.source} -> {r.plan} (level {r.level}, target {r.target})", "",
        f"Latency {r.latency_kind} on {r.runtime}. Speed-up **{r.speedup:.2f}x**, "
        f"{acc['metric']}: {100 * acc['before']:.2f} -> {100 * acc['after']:.2f} ({acc['drop']:+.2f} points lost; "
        f"argmax agreement with the original {100 * acc['agreement']:.2f}%).", "",
        "| | before | after | ratio |", "|---|---:|---:|---:|",
        _row("latency (ms)", b["latency_ms"], a["latency_ms"], ".2f"),
        _row("params", b["params"], a["params"], ","),
        _row("MACs", b["macs"], a["macs"], ","),
        _row("ONNX size (MB)", b["size_mb"], a["size_mb"], ".2f"), "",
        "## What changed", "",
    ]
    prune = r.changes.get("prune", {})
    if prune:
        lines.append(f"- pruned ({prune['family']} adapter): {len(prune['layers'])} layers narrower, "
                     f"{len(prune['heads'])} attentions with fewer heads")
        lines += [f"  - {name}: {w[0]} -> {w[1]}" for name, w in list(prune["layers"].items())[:40]]
        lines += [f"  - and {len(prune['layers']) - 40} more (all in report.json)"] if len(prune["layers"]) > 40 else []
        lines += [f"  - left: {why}" for why in prune["left"]]
    low = r.changes.get("lowrank", {})
    if low:
        lines.append(f"- factorized: {len(low['layers'])} layers (SVD, ranks multiple of {low['settings']['multiple']}; "
                     f"{low['skipped']} kept whole by the MAC guard, {len(low.get('slower', {}))} because the split "
                     "timed slower)")
        lines += [f"  - {n}: {d['in']}x{d['out']} -> rank {d['rank']} ({100 * d['energy_kept']:.1f}% energy"
                  + (f"; {d['ms_whole']:.3f} -> {d['ms_split']:.3f} ms" if "ms_split" in d else "") + ")"
                  for n, d in list(low["layers"].items())[:40]]
        lines += [f"  - and {len(low['layers']) - 40} more (all in report.json)"] if len(low["layers"]) > 40 else []
        lines += [f"  - {n}: kept whole, rank {d['rank']} split timed {d['ms_split']:.3f} ms vs {d['ms_whole']:.3f} ms"
                  for n, d in list(low.get("slower", {}).items())[:20]]
    depth = r.changes.get("depth", {})
    if depth:
        lines.append(f"- dropped blocks: {', '.join(depth['dropped']) or 'none'}")
    sparse = r.changes.get("sparsity", {})
    if sparse:
        lines.append(f"- 2:4 sparse: {sparse['sparse_layers']} of {sparse['layers']} eligible layers, "
                     f"{100 * sparse['zero_fraction']:.1f}% of their weights zero; its speed-up exists only on "
                     "sparse tensor cores (TensorRT, Ampere/Orin) and is measured there, not here")
    lines += ["", "## Candidates", "", "| plan | latency (ms) | speed-up | MB | MACs | goal |", "|---|---:|---:|---:|---:|---|"]
    for c in r.candidates:
        f = c["figures"]
        lines.append(f"| {c['plan']} | {f['latency_ms']:.2f} | {b['latency_ms'] / f['latency_ms']:.2f}x | "
                     f"{f['size_mb']:.2f} | {f['macs']:,} | {'; '.join(c['misses']) or 'holds'} |")
    lines += ["", "## Attempts (recovered in turn, least compressed first, until one holds)", "",
              "| plan | speed-up | held-out | drop | steps | minutes | result |", "|---|---:|---:|---:|---:|---:|---|"]
    for t in r.tried:
        speed = f"{t['speedup']:.2f}x" if "speedup" in t else ""
        if "left_out" in t:
            lines.append(f"| {t['plan']} | {speed} | | | | | left out: {t['left_out']} |")
            continue
        result = "holds" if t.get("holds", t["drop"] <= r.goal.get("max_drop", float("inf"))) else "misses --max-drop"
        minutes = f"{t['seconds'] / 60:.1f}" if "seconds" in t else ""
        lines.append(f"| {t['plan']} | {speed} | {100 * t['metric']:.2f} | {-t['drop']:+.2f} | {t['steps']} | {minutes} | "
                     f"{result} |")
    lines += ["", "## Recovery (distillation from the original)", "", "| step | loss | held-out |", "|---:|---:|---:|"]
    for point in r.recovery.get("curve", []):
        loss = "" if point["loss"] is None else f"{point['loss']:.4f}"
        lines.append(f"| {point['step']} | {loss} | {100 * point['metric']:.2f} |")
    tiles = r.recovery.get("tiles")
    if tiles:
        lines += ["", f"Recovered on {tiles['tiles']} tiles of {tiles['image']} chosen by the {tiles['chosen_by']}: "
                  f"class shares {', '.join(f'{100 * s:.1f}%' for s in tiles['class_shares'])} (last: unsure) against "
                  f"the image's {', '.join(f'{100 * s:.1f}%' for s in tiles['image_class_shares'])}."]
    lines += ["", f"Time: {', '.join(f'{k} {v:.0f} s' for k, v in r.seconds.items())}; "
              f"cache: {r.cache.get('hits', 0)} figures reused, {r.cache.get('misses', 0)} measured.", ""]
    return "\n".join(lines)
