"""`edgekit profile`: latency, throughput, memory, power and per-layer cost of one artifact."""
from __future__ import annotations

from pathlib import Path

import click

from edgekit.runtime.open import BACKENDS
from edgekit.cli.console import stage_progress
from edgekit.cli.options import DEVICE, AliasedOption, verbosity_options, write_report_files
from edgekit.errors import ConfigError


def _batches(text: str | None) -> tuple[int, ...]:
    if not text:
        return ()
    try:
        return tuple(int(b) for b in text.split(",") if b.strip())
    except ValueError:
        raise ConfigError(f"--batches takes comma-separated integers such as 1,4,8, not {text!r}") from None


@click.command()
@click.argument("artifact", type=click.Path(path_type=Path))
@click.option("--batches", "batch", cls=AliasedOption, old=("--batch",), metavar="N,N,...",
              help="Images per inference call to time, one figure each, comma-separated: 1,4,8 (default: the "
                   "artifact's batch; several need an artifact built with --batch dynamic).")
@click.option("--warmup", type=float, default=1.0, show_default=True, help="Seconds of warm-up runs.")
@click.option("--duration", type=float, default=3.0, show_default=True, help="Seconds of counted runs.")
@click.option("--iterations", type=int, default=0, help="Count this many runs instead of running for --duration.")
@click.option("--backend", type=click.Choice(BACKENDS), help="Runner (default: the manifest's).")
@DEVICE
@click.option("--threads", type=int, default=0, help="Runner threads: ONNX Runtime intra-op, OpenVINO inference threads (0: its default).")
@click.option("--layers", is_flag=True, help="Also profile per layer (ONNX Runtime profiler, OpenVINO performance counters, TensorRT IProfiler).")
@click.option("--top", type=int, default=10, show_default=True, help="Layers to show.")
@click.option("--no-power", is_flag=True, help="Do not read tegrastats.")
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Write the report (with every sample) as JSON.")
@click.option("--markdown", "md_path", type=click.Path(path_type=Path), help="Write the report as Markdown.")
@click.option("--plot", "plot_path", type=click.Path(path_type=Path), help="Write the latency distribution as PNG.")
@verbosity_options
def profile(artifact, batch, warmup, duration, iterations, backend, device, threads, layers, top, no_power, json_path,
            md_path, plot_path):
    """Latency, throughput and memory of an artifact on this device."""
    from rich.console import Console

    from edgekit.profile import ProfileConfig, TimingConfig, profile_artifact
    from edgekit.profile.format import profile_markdown, profile_tables

    config = ProfileConfig(_batches(batch), TimingConfig(warmup, duration, iterations), backend, threads, layers, top,
                           power=not no_power, device=device)
    with stage_progress(f"profiling {artifact}"):
        report = profile_artifact(artifact, config)
    out = Console()
    for part in profile_tables(report):
        out.print(part)
    write_report_files(report, json_path, md_path, plot_path, profile_markdown, _plot)
    click.echo(f"{artifact} ({report.backend}, {report.precision}): " + "; ".join(  # the final line
        f"batch {b.batch} p50 {b.end_to_end.p50:.2f} ms, {b.images_per_s:.1f} images/s" for b in report.batches))


def _plot(report, path):
    from edgekit.profile.plot import plot_profile

    return plot_profile(report, path)
