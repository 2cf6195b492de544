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


class FloatsType(click.ParamType):
    """``0.485,0.456,0.406`` -> (0.485, 0.456, 0.406): one value per band."""

    name = "V,V,V"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        try:
            return tuple(float(v) for v in str(value).split(","))
        except ValueError:
            self.fail(f"{value!r} is not a list of numbers like 0.485,0.456,0.406", param, ctx)


SIZE = SizeType()
BATCH = BatchType()
BANDS = BandsType()
FLOATS = FloatsType()
SCALE_HELP = "Input units: full-scale pixel value (255 8-bit, 4095 12-bit, 10000 reflectance, 65535 16-bit, 1 float)."
BANDS_HELP = "File bands feeding the model's channels, from 1 (e.g. 4,3,2); default: all (grey repeated, alpha dropped)."
_DECLARED = "default: the recipe's or manifest's, else what the model says, else assumed with a warning"
_PREPROCESS_OPTIONS = [
    click.option("--mean", type=FLOATS, help=f"Per-band mean in scaled units (pixel / scale), e.g. 0.485,0.456,0.406; "
                                             f"{_DECLARED}."),
    click.option("--std", type=FLOATS, help=f"Per-band std in scaled units, e.g. 0.229,0.224,0.225 (a model taking raw "
                                            f"0..255 RGB: --scale 255 --mean 0,0,0 --std 0.00392157,0.00392157,"
                                            f"0.00392157); {_DECLARED}."),
    click.option("--channel-order", type=click.Choice(["RGB", "BGR"], case_sensitive=False),
                 help=f"Colour order the model takes; {_DECLARED}."),
    click.option("--scale", type=float, help=SCALE_HELP + " Default: the recipe's or manifest's, else 255."),
    click.option("--bands", type=BANDS, help=BANDS_HELP),
]


def preprocess_options(fn):
    """``--mean --std --channel-order --scale --bands``, given to the command as one ``inputs``
    argument (:class:`~edgekit.preprocess.InputOptions`)."""
    import functools

    @functools.wraps(fn)
    def command(*args, mean=None, std=None, channel_order=None, scale=None, bands=None, **kwargs):
        from edgekit.preprocess import InputOptions

        inputs = InputOptions(mean, std, channel_order.upper() if channel_order else None, scale, bands)
        return fn(*args, inputs=inputs, **kwargs)

    for option in reversed(_PREPROCESS_OPTIONS):
        command = option(command)
    return command

TASK = click.option(
    "--task", type=click.Choice(["classification", "segmentation", "detection"]),
    help="The model's task (default: what the model or its recipe says, else its output shapes decide; "
         "the option wins over both).")

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
