"""The build report: one typed record per stage, written as report.json (numbers) and report.md (prose).

A record carries what a program reads as numbers (``metrics``) and a few labels (``facts``); the
sentences a person reads are written from them here, in :func:`parity_text` and :func:`detail_text`,
and nowhere else.

Metric names (each optional, a number or None):

- ``max_abs`` / ``max_rel``: largest absolute / relative output difference against the stage's input;
- ``agreement``: fraction of equal argmax labels against FP32 (pixels or top-1);
- ``miou``: mean IoU of the argmax masks against FP32's; ``top1``: top-1 agreement (classification);
- ``miou_truth`` / ``miou_truth_fp32``: the task metric against ground truth (mIoU against masks, or
  top-1 against a classification set's labels.csv), of this stage and of FP32;
- ``drop`` / ``tolerance``: points of the task metric lost, and the target's accepted loss;
- ``images``: held-out images verified on; ``enforced``: whether the tolerance stops the build;
- counts: ``nodes_before``, ``nodes_after``, ``params_before``, ``params_after``, ``modules_before``,
  ``modules_after``, ``batchnorms_before``, ``batchnorms_after``, ``blocks_reparameterized``,
  ``batchnorms_folded``, ``qdq_pairs``, ``fp16_nodes``, ``calib_images``, ``opset``;
- ``output_max_abs``: largest absolute reference output (the scale of ``max_abs``).
"""
from __future__ import annotations

__all__ = ["BuildReport", "StageRecord", "detail_text", "parity_text", "runtime_text"]

from dataclasses import asdict, dataclass, field
from pathlib import Path

from edgekit.artifact.classes import class_colour, class_name
from edgekit.artifact.layout import write_report

Number = float | int | bool | None


@dataclass(frozen=True)
class StageRecord:
    """What one stage did and what it proved.

    Attributes:
        stage: ``source``, ``reparam``, ``export``, ``simplify``, ``precision <p>`` or ``compile (<backend>)``.
        nodes / params / size_mb: the stage output's graph nodes, parameters and file size.
        latency_ms: median latency on this machine of the stage's output (None: not measured).
        metrics: the stage's proof and counts, by name (see the module docstring).
        facts: labels that are not numbers (``tool``, ``exporter``, ``flavor``, ``basis``, ``file``...).
    """

    stage: str
    seconds: float
    nodes: int | None = None
    params: int | None = None
    size_mb: float | None = None
    latency_ms: float | None = None
    metrics: dict[str, Number] = field(default_factory=dict)
    facts: dict[str, str] = field(default_factory=dict)


def _pct(value: float) -> str:
    return f"{100 * value:.2f}"


def parity_text(record: StageRecord) -> str:
    """The record's proof in words, for report.md and the CLI's table ("" when it has none)."""
    m = record.metrics
    if m.get("agreement") is not None:
        if m.get("miou") is not None:
            metric = f"mIoU {m['miou']:.4f}"
        elif str(record.facts.get("drop_basis", "")).startswith("mAP"):
            metric = f"mAP@0.5 {m['agreement']:.4f}"
        else:
            metric = f"top-1 {m.get('top1', m['agreement']):.4f}"
        text = f"agree {_pct(m['agreement'])}%, {metric} vs fp32"
        if m.get("miou_truth") is not None:
            truth = "mIoU" if m.get("miou") is not None else "top-1"
            text += f"; {truth} vs truth {_pct(m['miou_truth'])} (fp32 {_pct(m['miou_truth_fp32'])})"
        return text + ("" if m.get("enforced", True) else " (random weights: not enforced)")
    if m.get("max_rel") is not None:
        basis = record.facts.get("basis")
        return f"max rel {m['max_rel']:.1e}" + (f" ({basis})" if basis else "")
    return ""


def _source(r: StageRecord) -> str:
    f = r.facts
    if "onnx" in f:
        return f"onnx {f.get('name')}: {f['onnx']}"
    text = f"{f.get('kind')} {f.get('name')}, {f.get('input')}, {f.get('task')}"
    return text + "".join(f"; {key} {f[key]}" for key in ("output", "checkpoint") if f.get(key))


def _reparam(r: StageRecord) -> str:
    m = r.metrics
    if "skipped" in r.facts:
        return f"skipped: {r.facts['skipped']}"
    return (f"{m['blocks_reparameterized']} blocks reparameterized, {m['batchnorms_folded']} Conv+BN folded; "
            f"modules {m['modules_before']} -> {m['modules_after']}, BatchNorms {m['batchnorms_before']} -> "
            f"{m['batchnorms_after']}, params {m['params_before']:,} -> {m['params_after']:,}")


def _export(r: StageRecord) -> str:
    return r.facts.get("choice") or f"{r.facts.get('exporter')} exporter, opset {r.metrics.get('opset')}"


def _fuse(r: StageRecord) -> str:
    m, f = r.metrics, r.facts
    times = (f"; unfused {m['unfused_ms']:.1f} ms, fused {m['fused_ms']:.1f} ms"
             if m.get("unfused_ms") is not None and m.get("fused_ms") is not None else "")
    return f"{'kept' if m.get('kept') else 'not kept'}: {f.get('reason')}; {f.get('fused')}{times}"


def _simplify(r: StageRecord) -> str:
    notes = r.facts.get("notes")
    return (f"{r.facts.get('tool')}: {r.metrics['nodes_before']} -> {r.metrics['nodes_after']} nodes"
            + (f" ({notes})" if notes else ""))


def _precision(r: StageRecord) -> str:
    m, f = r.metrics, r.facts
    fallback = f"{f['fallback']}. " if f.get("fallback") else ""
    text = (f"{fallback}{f.get('flavor')} flavor, {m.get('qdq_pairs')} Q/DQ pairs, {m.get('fp16_nodes')} "
            f"fp16 nodes, {m.get('calib_images')} calibration images ({f.get('calib_method')})")
    if r.stage == "precision bf16":
        text = "the FP32 graph, computed in bfloat16 by OpenVINO (INFERENCE_PRECISION_HINT bf16)"
    if m.get("images"):
        text += (f", verified on {m['images']} held-out images: drop {m['drop']:.2f} points ({f.get('drop_basis')}), "
                 f"tolerance {m['tolerance']}")
    if f.get("weights"):
        text += f"; {f['weights']}"
    if f.get("int8_slower"):
        text += f"; {f['int8_slower']}"
    return text


def _compile(r: StageRecord) -> str:
    return r.facts.get("file", "") + (f"; {r.facts['runtime']}" if r.facts.get("runtime") else "")


_RUNTIMES = {"onnxruntime": "ONNX Runtime", "openvino": "OpenVINO"}


def runtime_text(choice: dict) -> str:
    """The runtime a cpu artifact kept and why, in one line (``session["runtime_choice"]``,
    :class:`~edgekit.compile.choice.RuntimeChoice`)."""
    def name(runtime: str) -> str:
        version = choice.get("versions", {}).get(runtime)
        return f"{_RUNTIMES.get(runtime, runtime)}{' ' + version if version else ''}"

    kept = choice["kept"]
    if choice.get("by") == "pinned":
        return f"runtime {name(kept)}, pinned by {choice.get('note') or '--runtime'} (not measured)"
    ms = choice.get("ms", {})
    text = f"runtime {name(kept)} kept"
    if len(ms) > 1:
        others = ", ".join(f"{name(r)} {v:.1f} ms ({v / ms[kept]:.2f}x)" for r, v in ms.items() if r != kept)
        text += (f": {ms[kept]:.1f} ms against {others}, medians of {choice.get('runs')} runs each in turns on "
                 f"{choice.get('input')}, {choice.get('cpu')}")
    for runtime, why in choice.get("unusable", {}).items():
        text += f"; {_RUNTIMES.get(runtime, runtime)} not usable here: {why}"
    return text


def _value(value) -> str:
    return ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value) if isinstance(value, list) else (
        f"{value:g}" if isinstance(value, float) else str(value))


def input_lines(details: dict) -> list[str]:
    """report.md's input section: the normalisation fed and where each value came from
    (``details["input"]``), and what the model says about itself (``details["contract"]``)."""
    lines = []
    pre = details.get("input")
    if pre:
        sources = pre.get("source", {})
        lines += ["", "Input" + (" (**assumed**: nothing declares its normalisation)" if pre.get("assumed") else "")
                  + ":", *[f"- {k}: {_value(pre[k])} ({sources.get(k, 'not recorded')})"
                           for k in ("mean", "std", "channel_order", "scale", "bands") if k in pre]]
    contract = details.get("contract", {})
    said = {k: v for k, v in contract.items() if k not in ("name", "sources", "metadata", "notes", "inputs", "outputs")}
    if said or contract.get("notes"):
        where = contract.get("sources", {})
        shown = {k: (f"{len(v)} names: {', '.join(map(str, v[:8]))}{' ...' if len(v) > 8 else ''}" if k == "classes"
                     else _value(v)) for k, v in said.items()}
        lines += ["", f"What the model says ({contract.get('name')}):",
                  *[f"- {k}: {text} ({where.get(k, '?')})" for k, text in shown.items()],
                  *[f"- note: {n}" for n in contract.get("notes", ())]]
    return lines


def class_lines(details: dict) -> list[str]:
    """report.md's class legend: each class's index, name and the colour previews draw it in.

    ``details["classes"]``: the artifact's class names, one per class of the model's output
    count), else the names the model says (``details["contract"]["classes"]``); a name left empty
    is shown as ``class_<id>``. No names: no legend.
    """
    names = details.get("classes") or details.get("contract", {}).get("classes") or []
    if not names:
        return []
    rows = [f"| {i} | {class_name(names, i)} | #{''.join(f'{v:02x}' for v in class_colour(i))} |"
            for i in range(len(names))]
    return ["", "Classes (colours as `--preview` draws them):", "", "| class | name | colour |", "|---|---|---|", *rows]


_DETAIL = {"source": _source, "reparam": _reparam, "export": _export, "simplify": _simplify, "fuse": _fuse,
           "precision": _precision, "compile": _compile}


def detail_text(record: StageRecord) -> str:
    """What the stage did, in a sentence, for report.md's notes ("" for a stage without one)."""
    kind = record.stage.split()[0]
    return _DETAIL[kind](record) if kind in _DETAIL and (record.metrics or record.facts) else ""


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
        """report.json and report.md, through the artifact folder's owner."""
        write_report(folder, self.to_dict(), self.to_markdown())

    def rows(self) -> list[list[str]]:
        def fmt(value, spec):
            return "-" if value is None else format(value, spec)

        return [
            [s.stage, f"{s.seconds:.1f}", fmt(s.nodes, "d"), fmt(s.params, ","), fmt(s.size_mb, ".1f"),
             parity_text(s) or "-", fmt(s.latency_ms, ".1f")]
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
        notes = [f"- **{s.stage}**: {detail_text(s)}" for s in self.stages if detail_text(s)]
        if notes:
            lines += ["", "Notes:", *notes]
        lines += input_lines(self.details)
        if "context" in self.details:
            lines += ["", f"Context: {self.details['context']['text']}."]
        lines += class_lines(self.details)
        if self.next_step:
            lines += ["", f"Next step: `{self.next_step}`"]
        lines += ["", "Latency: median of timed runs after warm-up on the build machine (CPU, "
                  "the target's first runtime for ONNX stages, PyTorch for the torch stages, the kept runtime "
                  "for compile), batch as exported."]
        return "\n".join(lines) + "\n"
