"""A folder of images through one runner, as `edgekit infer` runs it (masks or boxes).

Every image is opened and its tiles planned before anything is written, so a file edgekit cannot
take stops the command with nothing written (exit 2). A failure after some images' outputs were
written (a truncated file whose header read fine, NaN pixels, a failed GPU call) stops it as a
partial run (exit 1), saying how many images were done; `edgekit run` is the resumable way.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click

from edgekit.artifact.folder import Artifact
from edgekit.errors import EdgekitError, RunError
from edgekit.images import open_image
from edgekit.runtime.base import Runner
from edgekit.tiling.plan import plan_tiles


def check_images(images: list[Path], artifact: Artifact, runner: Runner, overlap: int, batch: int | None,
                 blend: str = "crop") -> None:
    """Open each image and plan its tiles as the run will (pixel type, bands, overlap, batch).

    Raises:
        InputError, ConfigError, ArtifactError: naming the first image that does not fit.
    """
    for path in images:
        with open_image(path) as source:
            plan_tiles(artifact.manifest, runner, source, overlap, batch, blend)


def each_image(images: list[Path], one: Callable[[Path], str], out: Path,
               say: Callable[[str], None] = lambda _m: None) -> str:
    """Run ``one`` (writes an image's outputs, returns its summary line) on each image in turn,
    printing each line; returns the final line.

    Raises:
        RunError: an image failed after earlier ones were written (the first image's own error
            when nothing was written yet).
    """
    for done, path in enumerate(images):
        say(f"{path.name} ({done + 1}/{len(images)})")
        try:
            line = one(path)
        except EdgekitError as exc:
            if done == 0:
                raise
            raise RunError(f"partial: {done} of {len(images)} images done -> {out}; stopped at {path.name}: {exc} "
                           "(rerun without it, or use `edgekit run`, which resumes)") from None
        click.echo(line)
    return f"{len(images)} images -> {out}"
