"""Option parsers shared by several commands."""
from __future__ import annotations

import functools
import warnings
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
# --batch means one thing on every command: images (tiles) per inference call.
BATCH_HELP = "Images per inference call: the model's batch axis, fixed when built (N), or 'dynamic'."
RUN_BATCH_HELP = ("Images (tiles) per inference call (default: the artifact's batch; another works on an "
                  "artifact built with --batch dynamic).")
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

DEVICE = click.option(
    "--device", type=int, default=0, show_default=True, metavar="N",
    help="GPU to run on, counted from 0, for GPU backends (tensorrt, onnxruntime-cuda/-trt, torch); CPU ones take 0.")

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


class RenamedOptionWarning(UserWarning):
    """An option was given by the name it had before; the new one is named."""


class AliasedOption(click.Option):
    """An option that still answers to its former names (``old``), hidden from --help; using one
    warns once (``edgekit: warning:``), naming the option to write instead."""

    def __init__(self, *args, old: tuple[str, ...] = (), **kwargs):
        super().__init__(*args, **kwargs)
        self.old = tuple(old)
        self._old_dest = f"{self.name}\0old"

    def add_to_parser(self, parser, ctx: click.Context) -> None:
        super().add_to_parser(parser, ctx)
        if self.old:
            parser.add_option(obj=self, opts=self.old, dest=self._old_dest,
                              action="append" if self.multiple else "store", nargs=self.nargs)

    def consume_value(self, ctx: click.Context, opts):
        if self._old_dest in opts:
            new = "/".join(self.opts)
            if self.name in opts:
                raise click.BadOptionUsage(self.old[0], f"{self.old[0]} is the former name of {new}: give {new} once")
            warnings.warn(f"{'/'.join(self.old)} is now {new}", RenamedOptionWarning, stacklevel=1)
            opts = {**opts, self.name: opts[self._old_dest]}
        return super().consume_value(ctx, opts)


def verbosity_options(fn=None, *, final_line: bool = True):
    """``-q/--quiet`` and ``-v/--verbose`` (:mod:`edgekit.cli.console`), on every command.

    Args:
        final_line: under --quiet, print only the command's last line (its summary); False for a
            command whose whole output is its answer (a listing), which --quiet leaves whole.
    """
    if fn is None:
        return functools.partial(verbosity_options, final_line=final_line)

    @functools.wraps(fn)
    def command(*args, quiet: bool = False, verbose: bool = False, **kwargs):
        from edgekit.cli.console import NORMAL, QUIET, VERBOSE, command_output

        if quiet and verbose:
            raise click.UsageError("--quiet and --verbose exclude each other: give one")
        with command_output(QUIET if quiet else VERBOSE if verbose else NORMAL, final_line):
            return fn(*args, **kwargs)

    command = click.option("-v", "--verbose", is_flag=True,
                           help="Also a line per stage (stderr) and the libraries' logs.")(command)
    return click.option("-q", "--quiet", is_flag=True,
                        help="Only errors, warnings and the final line: no progress, no tables.")(command)
