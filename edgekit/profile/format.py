"""Reports as a person reads them: rich tables for the terminal, Markdown, JSON. No measuring here."""
from __future__ import annotations

__all__ = ["profile_tables", "profile_markdown", "compare_table", "compare_markdown", "write_json"]

import json
import math
from pathlib import Path

from rich.console import Group
from rich.table import Table

from edgekit.atomic import atomic_file
from edgekit.profile.compare import CompareReport
from edgekit.profile.measure import ProfileReport


def _f(value: float | None, digits: int = 2, suffix: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}{suffix}"


def _pct(value: float | None, digits: int = 2) -> str:
    """Percent; a value just below 1 keeps digits until it no longer reads as 100 %."""
    if value is None or math.isnan(value):
        return "-"
    text = f"{100 * value:.{digits}f}%"
    while value < 1 and text.startswith("100.") and digits < 6:
        digits += 1
        text = f"{100 * value:.{digits}f}%"
    return text


# -- profile -------------------------------------------------------------------------------

_LATENCY_COLS = ("batch", "min", "mean", "p50", "p90", "p95", "p99", "max", "std")
_THROUGHPUT_COLS = ("batch", "compute p50", "compute p99", "img/s", "Mpx/s", "watts", "mJ/img")


def _latency_rows(report: ProfileReport) -> list[list[str]]:
    rows = []
    for b in report.batches:
        e = b.end_to_end
        rows.append([str(b.batch), *(_f(v, 3) for v in (e.min, e.mean, e.p50, e.p90, e.p95, e.p99, e.max, e.std))])
    return rows


def _throughput_rows(report: ProfileReport) -> list[list[str]]:
    return [[str(b.batch), _f(b.compute.p50, 3) if b.compute else "-", _f(b.compute.p99, 3) if b.compute else "-",
             _f(b.images_per_s, 1), _f(b.mpx_per_s, 2), _f(b.power.mean_w, 2), _f(b.power.mj_per_image, 1)]
            for b in report.batches]


def _rich_table(title: str, cols: tuple[str, ...], rows: list[list[str]]) -> Table:
    table = Table(title=title, box=None, title_justify="left")
    for col in cols:
        table.add_column(col, justify="right", no_wrap=True)
    for row in rows:
        table.add_row(*row)
    return table


def _layer_rows(report: ProfileReport) -> list[list[str]]:
    if report.layers is None:
        return []
    return [[layer.name, layer.op, layer.precision, _f(layer.ms, 4), _pct(layer.share, 1)] for layer in report.layers.layers]


def _summary_lines(report: ProfileReport) -> list[str]:
    c, m = report.conditions, report.memory
    power = next((b.power for b in report.batches), None)
    lines = [
        f"artifact {report.artifact}: {report.target}, {report.backend}"
        + (f" on GPU {report.gpu} ({report.device.get('gpu_name') or 'name unreadable'})" if report.gpu is not None else "")
        + f", {report.precision}, {report.task}, input {report.input_hw[0]}x{report.input_hw[1]}",
        f"end-to-end: {c.end_to_end}",
        f"compute-only: {c.compute_only}",
        f"clock: {c.clock}; CUDA graphs: {'yes' if c.cuda_graphs else 'no'}; threads: {c.threads or 'backend default'}; "
        f"providers: {', '.join(c.providers)}",
        f"CPU: {c.cpu_count} logical, governor {c.cpu_governor or 'unreadable'}, {_f(c.cpu_mhz, 0, ' MHz')}"
        + (f"; GPU clocks {c.gpu_clocks}" if c.gpu_clocks else ""),
        f"timing: warm-up {report.timing.warmup_s:g} s, then "
        + (f"{report.timing.iterations} runs" if report.timing.iterations else f"{report.timing.duration_s:g} s of runs")
        + "; latencies in ms per call",
        f"memory: host RSS {_f(m.rss_before_load, 0)} -> {_f(m.rss_after_load, 0)} MiB after load, peak {_f(m.peak_rss, 0)} MiB"
        + (" (process lifetime)" if m.peak_is_process_lifetime else " (during runs)")
        + f"; device {_f(m.device_used_delta, 0, ' MiB') if m.device_used_delta is not None else 'not readable'}"
        + (f"; engine activations {_f(m.engine_device_memory, 1)} MiB" if m.engine_device_memory is not None else "")
        + f"; model file {_f(m.model_file, 2)} MiB",
        f"power: {power.source + ' ' + str(power.samples) + ' samples' if power and power.available else (power.note if power else '-')}",
    ]
    if report.layers is not None:
        lr = report.layers
        lines.append(f"layers ({lr.source}, mean of {lr.runs} runs): {lr.layer_count} ran, "
                     f"{_f(lr.total_ms, 3)} ms in all; precision "
                     + ", ".join(f"{k} {v}" for k, v in sorted(lr.precision_counts.items()))
                     + "; " + ", ".join(f"{k} {v}" for k, v in sorted(lr.providers.items())))
    return lines + [f"note: {n}" for n in report.notes]


def profile_tables(report: ProfileReport) -> list[object]:
    """Renderables for a rich Console: summary lines, the latency table, the layer table."""
    out: list[object] = [
        "\n".join(_summary_lines(report)),
        _rich_table("end-to-end latency, ms per call", _LATENCY_COLS, _latency_rows(report)),
        _rich_table("compute-only (ms per call), throughput, power", _THROUGHPUT_COLS, _throughput_rows(report)),
    ]
    if report.layers is not None:
        layers = Table(title=f"top {len(report.layers.layers)} layers", box=None, title_justify="left")
        for col, just in (("layer", "left"), ("op", "left"), ("precision", "left"), ("ms", "right"), ("share", "right")):
            layers.add_column(col, justify=just, overflow="fold")
        for row in _layer_rows(report):
            layers.add_row(*row)
        out.append(layers)
    return out


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def profile_markdown(report: ProfileReport) -> str:
    """The profile as Markdown: summary bullets, latency table, layer table."""
    parts = ["\n".join(f"- {line}" for line in _summary_lines(report)),
             _md_table(list(_LATENCY_COLS), _latency_rows(report)),
             _md_table(list(_THROUGHPUT_COLS), _throughput_rows(report))]
    if report.layers is not None:
        parts.append(_md_table(["layer", "op", "precision", "ms", "share"], _layer_rows(report)))
    return "\n\n".join(parts) + "\n"


# -- compare -------------------------------------------------------------------------------

def _compare_header(report: CompareReport) -> list[str]:
    what = {"segmentation": "pixel agr.", "detection": "mAP50 vs ref"}.get(report.task, "top-1 agr.")
    cols = ["artifact", "precision", "backend", "size MiB", "batch", "p50 ms", "p99 ms", "img/s", "Mpx/s", what]
    if report.task == "segmentation":
        cols.append("mIoU vs ref")
    if report.task == "detection":
        cols.append("mAP50-95 vs ref")
    if report.ground_truth:
        cols += ["mAP50 (truth)", "mAP50-95 (truth)"] if report.task == "detection" else ["mIoU (truth)", "pixel acc. (truth)"]
    return cols


def _compare_rows(report: CompareReport) -> list[list[str]]:
    rows = []
    for r in report.results:
        backend = r.backend if r.gpu is None else f"{r.backend} (GPU {r.gpu})"
        row = [r.name, r.precision, backend, _f(r.size_mb, 2), str(r.batch), _f(r.latency.p50, 3), _f(r.latency.p99, 3),
               _f(r.images_per_s, 0), _f(r.mpx_per_s, 2), _pct(r.agreement)]
        if report.task == "segmentation":
            row.append(_pct(r.miou_vs_reference))
        if report.task == "detection":
            row.append(_pct(r.map50_95_vs_reference))
        if report.ground_truth:
            row += [_pct(r.map50), _pct(r.map50_95)] if report.task == "detection" else [_pct(r.miou), _pct(r.accuracy)]
        rows.append(row)
    return rows


def _compare_caption(report: CompareReport) -> str:
    unit = "images" if report.task == "classification" else "pixels"
    return (f"{report.images} images ({report.pixels} {unit}), {report.classes} classes; reference {report.reference}; "
            f"{report.tiling}; latency per call after a {report.timing.warmup_s:g} s warm-up")


_TERMINAL = ("artifact", "precision", "size MiB", "p50 ms", "p99 ms", "img/s")


def _class_tables(report: CompareReport) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) of each per-class IoU table of a segmentation comparison: against the
    reference, and against ground truth when masks were given; a column per class, by name."""
    if report.task != "segmentation" or not report.class_names:
        return []
    header = ["artifact", *report.class_names]
    tables = [("IoU per class vs ref", header,
               [[r.name, *map(_pct, r.class_iou_vs_reference)] for r in report.results])]
    if report.ground_truth:
        tables.append(("IoU per class (truth)", header, [[r.name, *map(_pct, r.class_iou)] for r in report.results]))
    return tables


def compare_table(report: CompareReport) -> Group:
    """The comparison as rich tables, narrow enough for 80 columns (Markdown and JSON hold all):
    speed and accuracy, then (segmenters) the IoU of each class, against ground truth when given."""
    header, rows = _compare_header(report), _compare_rows(report)
    keep = [i for i, col in enumerate(header) if col in _TERMINAL or i >= 9]
    short = {"pixel agr.": "agree", "top-1 agr.": "agree", "mAP50 vs ref": "mAP50 ref", "mAP50-95 vs ref": "mAP ref",
             "mAP50 (truth)": "mAP50 gt", "mAP50-95 (truth)": "mAP gt", "mIoU vs ref": "mIoU ref", "mIoU (truth)": "mIoU gt",
             "pixel acc. (truth)": "acc gt", "precision": "prec", "size MiB": "MiB", "p50 ms": "p50", "p99 ms": "p99"}
    backends = sorted({r.backend if r.gpu is None else f"{r.backend} on GPU {r.gpu}" for r in report.results})
    caption = _compare_caption(report) + f"; backend {', '.join(backends)}; latency in ms per call"
    table = Table(title="edgekit compare", caption=caption, box=None, padding=(0, 1, 0, 0))
    widest = max(len(r.name) for r in report.results)
    for i in keep:
        table.add_column(short.get(header[i], header[i]), justify="left" if i < 2 else "right", no_wrap=True,
                         min_width=widest if i == 0 else None)
    for row in rows:
        table.add_row(*(row[i] for i in keep))
    tables = [table]
    for title, header, rows in _class_tables(report)[-1:]:  # the terminal shows one: truth when given
        per_class = Table(title=title, box=None, padding=(0, 1, 0, 0), title_justify="left")
        for i, col in enumerate(header):
            per_class.add_column(col, justify="left" if i == 0 else "right", min_width=widest if i == 0 else None)
        for row in rows:
            per_class.add_row(*row)
        tables += ["", per_class]
    return Group(*tables)


def compare_markdown(report: CompareReport) -> str:
    """The comparison as a Markdown table with a caption line, then the per-class IoU tables."""
    parts = [_md_table(_compare_header(report), _compare_rows(report)), _compare_caption(report)]
    parts += [f"{title}:\n\n{_md_table(header, rows)}" for title, header, rows in _class_tables(report)]
    return "\n\n".join(parts) + "\n"


def write_json(report: ProfileReport | CompareReport, path: Path | str, samples: bool = True) -> Path:
    """Write ``report.to_dict()`` (with every latency sample by default) atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(report.to_dict(samples=samples), indent=2, default=_plain) + "\n")
    return path


def _plain(value: object) -> object:
    if isinstance(value, float) and math.isnan(value):
        return None
    return str(value)
