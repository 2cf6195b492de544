"""`edgekit compare`: several artifacts on the same images, side by side."""
from __future__ import annotations

from pathlib import Path

import click

from edgekit.runtime.open import BACKENDS
from edgekit.cli.console import stage_progress
from edgekit.cli.options import DEVICE, verbosity_options, write_report_files
from edgekit.images.geometry import BLENDS


@click.command()
@click.argument("artifacts", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--images", required=True, type=click.Path(path_type=Path),
              help="Folder of images (PNG/JPEG, TIFF/GeoTIFF, .npy), read as `edgekit infer` reads them.")
@click.option("--masks", type=click.Path(path_type=Path), help="Folder of label masks named like the images (ground truth).")
@click.option("--boxes", type=click.Path(path_type=Path),
              help="Detection: folder of COCO JSON files named like the images (ground-truth boxes).")
@click.option("--conf", type=float, default=0.25, show_default=True,
              help="Detection: the reference's boxes at or above this score are what the others are scored against.")
@click.option("--limit", type=int, default=0, help="Use the first N images only (0: all).")
@click.option("--overlap", default=64, show_default=True, help="Pixels shared by neighbouring tiles (as `edgekit infer`).")
@click.option("--blend", type=click.Choice(BLENDS), default="gaussian", show_default=True,
              help="How overlapping tiles are merged (as `edgekit infer`).")
@click.option("--batch", type=int, default=0, help="Images per inference call (default: each artifact's batch; "
              "another works on an artifact built with --batch dynamic).")
@click.option("--warmup", type=float, default=0.5, show_default=True, help="Seconds of warm-up before timing.")
@click.option("--duration", type=float, default=2.0, show_default=True, help="Seconds of timed runs per artifact.")
@click.option("--backend", type=click.Choice(BACKENDS), help="Runner for all (default: each manifest's).")
@DEVICE
@click.option("--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0: its default).")
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Write the comparison as JSON.")
@click.option("--markdown", "md_path", type=click.Path(path_type=Path), help="Write the table as Markdown.")
@click.option("--plot", "plot_path", type=click.Path(path_type=Path), help="Write latency vs accuracy and distributions as PNG.")
@verbosity_options
def compare(artifacts, images, masks, boxes, conf, limit, overlap, blend, batch, warmup, duration, backend, device, threads,
            json_path, md_path, plot_path):
    """Run several artifacts on the same images and compare them with the first (the reference)."""
    from rich.console import Console

    from edgekit.profile import CompareConfig, TimingConfig, compare_artifacts
    from edgekit.profile.format import compare_markdown, compare_table

    config = CompareConfig(TimingConfig(warmup, duration), batch, backend, threads, limit, overlap=overlap, blend=blend,
                           conf=conf, device=device)
    with stage_progress("comparing") as say:
        report = compare_artifacts(list(artifacts), images, masks, config, progress=say, boxes=boxes)
    Console().print(compare_table(report))
    write_report_files(report, json_path, md_path, plot_path, compare_markdown, _plot)
    click.echo(f"{len(report.results)} artifacts on {report.images} images, against {report.reference}: "  # final line
               + "; ".join(f"{r.name} p50 {r.latency.p50:.1f} ms, agreement {100 * r.agreement:.2f}%"
                           for r in report.results))


def _plot(report, path):
    from edgekit.profile.plot import plot_compare

    return plot_compare(report, path)
