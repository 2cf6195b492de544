"""`edgekit package OUTDIR -o BUNDLE.tar.gz`: the bundle the device compiles and runs."""
from __future__ import annotations

from pathlib import Path

import click

from edgekit.artifact.bundle import package_artifact, read_bundle_index
from edgekit.cli.options import verbosity_options


@click.command("package")
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("-o", "--out", type=click.Path(path_type=Path), help="Bundle to write (default: FOLDER.tar.gz).")
@verbosity_options
def package(folder: Path, out: Path | None) -> None:
    """Bundle an artifact for the device (deployable ONNX, manifest, checksums)."""
    bundle = package_artifact(folder, out or folder.resolve().with_name(f"{folder.resolve().name}.tar.gz"))
    index = read_bundle_index(bundle)
    size = bundle.stat().st_size / 2**20
    click.echo(f"{bundle} ({size:.1f} MiB, {len(index.files)} files) for {index.target}, {index.precision}; "
               f"on the device: edgekit compile {bundle.name} -o DIR")
