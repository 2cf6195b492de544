"""`edgekit models` and `edgekit targets`: one line per recipe or device profile."""
from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from edgekit.recipes import list_recipes
from edgekit.targets import list_targets


@click.command()
def models() -> None:
    """List the model recipes in models/."""
    table = Table(box=None)
    for col in ("recipe", "task", "input", "weights"):
        table.add_column(col, no_wrap=True)
    table.add_column("summary")
    for r in list_recipes():
        table.add_row(r.name, r.task, f"{r.input_size[0]}x{r.input_size[1]}", _weights(r), r.summary)
    Console().print(table)


@click.command()
def targets() -> None:
    """List the device profiles in targets/."""
    table = Table(box=None)
    for col in ("target", "backend", "sm", "TensorRT", "DLA", "tile x batch"):
        table.add_column(col, no_wrap=True)
    table.add_column("summary")
    for t in list_targets():
        table.add_row(t.name, t.backend, t.compute_capability or "-", t.tensorrt or "-", str(t.dla_cores),
                      f"{t.tile} x {t.batch}", t.summary)
    Console().print(table)


def _weights(recipe) -> str:
    if not recipe.trained:
        return "random"
    return "trained" if recipe.checkpoint.is_file() else "missing (train: scripts/train_demo.py)"
