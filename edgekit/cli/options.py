"""Option parsers shared by several commands."""
from __future__ import annotations

from pathlib import Path

import click


class SizeType(click.ParamType):
    """``512`` or ``512x768`` -> (height, width)."""

    name = "SIZE"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        try:
            parts = [int(v) for v in str(value).lower().split("x")]
        except ValueError:
            self.fail(f"{value!r} is not a size like 512 or 512x768", param, ctx)
        if len(parts) == 1:
            parts *= 2
        if len(parts) != 2 or min(parts) <= 0:
            self.fail(f"{value!r} is not a size like 512 or 512x768", param, ctx)
        return tuple(parts)


class BatchType(click.ParamType):
    """A positive int, or ``dynamic`` (None)."""

    name = "N|dynamic"

    def convert(self, value, param, ctx):
        if value is None or value == "dynamic":
            return None
        try:
            n = int(value)
        except ValueError:
            self.fail(f"{value!r} is neither a batch size nor 'dynamic'", param, ctx)
        if n <= 0:
            self.fail("batch must be positive", param, ctx)
        return n


class BandsType(click.ParamType):
    """``4,3,2`` -> (4, 3, 2): file bands, counted from 1 like GDAL."""

    name = "B,B,B"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        try:
            bands = tuple(int(v) for v in str(value).split(","))
        except ValueError:
            self.fail(f"{value!r} is not a list of bands like 4,3,2", param, ctx)
        if min(bands) < 1:
            self.fail("bands are counted from 1", param, ctx)
        return bands


SIZE = SizeType()
BATCH = BatchType()
BANDS = BandsType()
SCALE_HELP = "Input units: full-scale pixel value (255 8-bit, 4095 12-bit, 10000 reflectance, 65535 16-bit, 1 float)."
BANDS_HELP = "File bands feeding the model's channels, from 1 (e.g. 4,3,2); default: all (grey repeated, alpha dropped)."

TARGETS_DIR = click.option(
    "--targets-dir", type=click.Path(path_type=Path),
    help="A folder of your own target profiles (YAML), searched before EDGEKIT_PATH's and edgekit's.")
RECIPES_DIR = click.option(
    "--recipes-dir", type=click.Path(path_type=Path),
    help="A folder of your own model recipes (YAML), searched before EDGEKIT_PATH's and edgekit's.")


def write_report_files(report, json_path, md_path, plot_path, markdown, plot) -> None:
    """Write the report files a command was asked for, saying each one's path.

    Args:
        markdown: the report -> Markdown text function.
        plot: a (report, path) -> path function, called only when a plot is asked for.
    """
    from edgekit.profile.format import write_json

    if json_path:
        click.echo(f"wrote {write_json(report, json_path)}")
    if md_path:
        md_path.write_text(markdown(report))
        click.echo(f"wrote {md_path}")
    if plot_path:
        click.echo(f"wrote {plot(report, plot_path)}")
