"""PNG plots of reports. matplotlib is imported inside each function (Agg backend, no display)."""
from __future__ import annotations

__all__ = ["plot_compare", "plot_profile"]

import math
from pathlib import Path

import numpy as np

from edgekit.atomic import atomic_file
from edgekit.errors import BackendUnavailableError
from edgekit.profile.compare import CompareReport
from edgekit.profile.measure import ProfileReport


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise BackendUnavailableError("plots need matplotlib: pip install 'edgekit[runtime]'") from None
    return plt


def _save(fig, path: Path | str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    return path


def _accuracy_axis(report: CompareReport) -> tuple[list[float], str]:
    """What the scatter's y axis shows: accuracy against truth when masks were given, else agreement."""
    if report.ground_truth:
        return [r.miou for r in report.results], "mIoU against ground truth (%)"
    if report.task == "segmentation":
        return [r.miou_vs_reference for r in report.results], f"mIoU against {report.reference} (%)"
    return [r.agreement for r in report.results], f"top-1 agreement with {report.reference} (%)"


def plot_compare(report: CompareReport, path: Path | str) -> Path:
    """Left: p50 latency per image against accuracy, one point per artifact (whiskers p10-p90).
    Right: the latency distribution of each artifact."""
    plt = _pyplot()
    fig, (ax, dist) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [1.1, 1]})
    ys, ylabel = _accuracy_axis(report)
    for i, (r, y) in enumerate(zip(report.results, ys)):
        s = np.asarray(r.samples_ms, dtype=np.float64) / r.batch
        color = f"C{i}"
        y = 100 * y if y is not None and not math.isnan(y) else float("nan")
        lo, mid, hi = np.percentile(s, (10, 50, 90)) if s.size else (np.nan,) * 3
        ax.errorbar([mid], [y], xerr=[[mid - lo], [hi - mid]], fmt="o", color=color, capsize=3, markersize=8)
        ax.annotate(f"{r.name}\n{r.precision}, {r.size_mb:.1f} MiB", (mid, y), textcoords="offset points",
                    xytext=(8, 6), fontsize=8)
        dist.hist(s, bins=40, histtype="step", linewidth=1.5, color=color, label=f"{r.name} (p50 {mid:.2f} ms)")
    ax.set_xlabel("latency per image, p50 (ms; whiskers p10-p90)")
    ax.set_ylabel(ylabel)
    ax.set_title("speed vs accuracy (left is faster, up is better)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.margins(x=0.25, y=0.25)
    dist.set_xlabel("latency per image (ms)")
    dist.set_ylabel("runs")
    dist.set_title("latency distribution", fontsize=10)
    dist.legend(fontsize=8)
    dist.grid(alpha=0.3)
    fig.suptitle(f"edgekit compare: {report.images} images, {report.task}, reference {report.reference}", fontsize=11)
    out = _save(fig, path)
    plt.close(fig)
    return out


def plot_profile(report: ProfileReport, path: Path | str) -> Path:
    """Latency distribution per batch size (ms per image), with p50 and p99 marked."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for i, b in enumerate(report.batches):
        s = np.asarray(b.samples_ms, dtype=np.float64) / b.batch
        ax.hist(s, bins=50, histtype="step", linewidth=1.5, color=f"C{i}",
                label=f"batch {b.batch}: p50 {b.end_to_end.p50 / b.batch:.3f}, p99 {b.end_to_end.p99 / b.batch:.3f} ms/img")
        ax.axvline(b.end_to_end.p50 / b.batch, color=f"C{i}", linestyle="--", linewidth=1)
        ax.axvline(b.end_to_end.p99 / b.batch, color=f"C{i}", linestyle=":", linewidth=1)
    ax.set_xlabel("end-to-end latency per image (ms); dashed p50, dotted p99")
    ax.set_ylabel("runs")
    ax.set_title(f"{Path(report.artifact).name}: {report.precision}, {report.backend}, "
                 f"{report.input_hw[0]}x{report.input_hw[1]}", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    out = _save(fig, path)
    plt.close(fig)
    return out
