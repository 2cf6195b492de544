"""`edgekit models` and `edgekit targets`: one line per recipe or device profile, and where it comes from."""
from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from edgekit.cli.options import RECIPES_DIR, TARGETS_DIR, verbosity_options
from edgekit.recipes import list_recipes
from edgekit.targets import list_targets


@click.command()
@RECIPES_DIR
@verbosity_options(final_line=False)
def models(recipes_dir: Path | None) -> None:
    """List the model recipes: edgekit's, EDGEKIT_PATH's and --recipes-dir's."""
    table = Table(box=None)
    for col in ("recipe", "task", "input", "weights", "from"):
        table.add_column(col, no_wrap=True)
    table.add_column("summary")
    for r in list_recipes(recipes_dir):
        table.add_row(r.name, r.task, f"{r.input_size[0]}x{r.input_size[1]}", _weights(r), _origin(r.origin, r.path),
                      r.summary)
    Console(width=max(Console().width, 160)).print(table)


@click.command()
@TARGETS_DIR
@verbosity_options(final_line=False)
def targets(targets_dir: Path | None) -> None:
    """List the device profiles: edgekit's, EDGEKIT_PATH's and --targets-dir's."""
    table = Table(box=None)
    for col in ("target", "backend", "sm", "TensorRT", "DLA", "tile x batch", "from"):
        table.add_column(col, no_wrap=True)
    table.add_column("summary")
    for t in list_targets(targets_dir):
        table.add_row(t.name, t.backend, t.compute_capability or "-", t.tensorrt or "-", str(t.dla_cores),
                      f"{t.tile} x {t.batch}", _origin(t.origin, t.path), t.summary)
    Console(width=max(Console().width, 160)).print(table)


def _origin(origin: str, path: Path | None) -> str:
    return "package" if origin == "package" else f"{origin}: {path.parent if path else '?'}"


def _weights(recipe) -> str:
    if not recipe.trained:
        return "random"
    return "trained" if recipe.has_weights else f"missing (train: {recipe.training_script})"
