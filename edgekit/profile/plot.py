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
    if report.task == "detection":
        if report.ground_truth:
            return [r.map50 for r in report.results], "mAP@0.5 against ground-truth boxes (%)"
        return [r.map50_vs_reference for r in report.results], f"mAP@0.5 against {report.reference}'s boxes (%)"
    if report.ground_truth:
        return [r.miou for r in report.results], "mIoU against ground truth (%)"
    if report.task == "segmentation":
        return [r.miou_vs_reference for r in report.results], f"mIoU against {report.reference} (%)"
    return [r.agreement for r in report.results], f"top-1 agreement with {report.reference} (%)"


def _shared_bins(series: list[np.ndarray], bins: int = 40) -> np.ndarray:
    """Common bins from the smallest sample to the largest p99: a rare slow run must not squash the rest."""
    values = [s for s in series if s.size]
    lo = min(float(s.min()) for s in values)
    hi = max(float(np.percentile(s, 99)) for s in values)
    hi = hi if hi > lo else lo + 1e-3
    if lo > 0 and hi / lo > 10:  # spans a decade or more: log bins keep both the body and the tail readable
        return np.geomspace(lo, hi, bins + 1)
    return np.linspace(lo, hi, bins + 1)


def plot_compare(report: CompareReport, path: Path | str) -> Path:
    """Left: p50 latency per image against accuracy, one point per artifact (whiskers p10-p90).
    Right: the latency distribution of each artifact, up to its p99."""
    plt = _pyplot()
    fig, (ax, dist) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [1.1, 1]})
    ys, ylabel = _accuracy_axis(report)
    series = [np.asarray(r.samples_ms, dtype=np.float64) / r.batch for r in report.results]
    bins = _shared_bins(series)
    for i, (r, y, s) in enumerate(zip(report.results, ys, series)):
        y = 100 * y if y is not None and not math.isnan(y) else float("nan")
        lo, mid, hi = np.percentile(s, (10, 50, 90))
        label = f"{r.name} ({r.precision}, {r.size_mb:.1f} MiB): {mid:.3g} ms, {y:.2f}%"
        ax.errorbar([mid], [y], xerr=[[mid - lo], [hi - mid]], fmt="o", color=f"C{i}", capsize=3,
                    markersize=9 - 2 * min(i, 2), alpha=0.85, label=label)
        dist.hist(s[s <= bins[-1]], bins=bins, histtype="step", linewidth=1.5, color=f"C{i}", label=r.name)
        dist.axvline(mid, color=f"C{i}", linestyle="--", linewidth=1)
    if bins[-1] / max(bins[0], 1e-12) > 10:
        dist.set_xscale("log")
    ax.set_xlabel("latency per image, p50 (ms; whiskers p10-p90)")
    ax.set_ylabel(ylabel)
    ax.set_title("speed vs accuracy (left is faster, up is better)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.margins(x=0.3, y=0.3)
    low, high = ax.get_ylim()
    ax.set_ylim(max(low, 0.0), min(high, 100.5))  # percentages
    ax.legend(fontsize=7, loc="best")
    dist.set_xlabel("latency per image (ms); dashed p50; runs beyond p99 not drawn")
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
        ax.hist(s[s <= np.percentile(s, 99.5)], bins=50, histtype="step", linewidth=1.5, color=f"C{i}",
                label=f"batch {b.batch}: p50 {b.end_to_end.p50 / b.batch:.3f}, p99 {b.end_to_end.p99 / b.batch:.3f} ms/img")
        ax.axvline(b.end_to_end.p50 / b.batch, color=f"C{i}", linestyle="--", linewidth=1)
        ax.axvline(b.end_to_end.p99 / b.batch, color=f"C{i}", linestyle=":", linewidth=1)
    ax.set_xlabel("end-to-end latency per image (ms); dashed p50, dotted p99; slowest 0.5% not drawn")
    ax.set_ylabel("runs")
    ax.set_title(f"{Path(report.artifact).name}: {report.precision}, {report.backend}, "
                 f"{report.input_hw[0]}x{report.input_hw[1]}", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    out = _save(fig, path)
    plt.close(fig)
    return out
