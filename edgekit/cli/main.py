"""`edgekit` root: lazy sub-commands, and the one place user errors become a one-line message."""
from __future__ import annotations

import contextlib
import importlib
import sys
import warnings

import click

from edgekit import __version__
from edgekit.errors import EdgekitError

# command name -> (module under edgekit.cli, one-line help). Modules load only when run.
COMMANDS = {
    "models": ("catalog", "List the model recipes (edgekit's, EDGEKIT_PATH's, --recipes-dir's)."),
    "targets": ("catalog", "List the device profiles (edgekit's, EDGEKIT_PATH's, --targets-dir's)."),
    "inspect": ("inspect", "What edgekit reads from a model: inputs, outputs, task, normalisation, classes."),
    "build": ("build", "Reparameterize, export, simplify, set precision and compile, verified."),
    "reparam": ("stages", "Reparameterize and fuse a PyTorch model (saves a state_dict)."),
    "export": ("stages", "Export a model to ONNX, verified against PyTorch."),
    "simplify": ("stages", "Simplify an ONNX model (onnxsim, onnxslim fallback), verified."),
    "quantize": ("stages", "Set an ONNX model's precision: fp16, or int8 from a calibration set."),
    "compile": ("compile", "Compile an artifact or bundle for this device (TensorRT engine or ORT plan)."),
    "infer": ("infer", "Tiled inference of an artifact over huge images."),
    "run": ("run", "Run an artifact over many scenes, here or on a Ray cluster; resumable."),
    "profile": ("profile", "Latency, throughput and memory of an artifact on this device."),
    "compare": ("compare", "Run several artifacts on the same images and compare them."),
    "package": ("package", "Bundle an artifact for the device (deployable ONNX, manifest, checksums)."),
    "optimize": ("optimize", "Find the fastest artifact that holds accuracy and latency constraints."),
    "compress": ("compress", "Prune, factorize and cut a model to a speed/size goal, recovered by distillation."),
    "sweep": ("sweep", "Build and profile recipes x precisions x sizes; table and plot."),
}


class LazyGroup(click.Group):
    """Loads a command's module only when that command runs (so --help never imports torch)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module_name, short = COMMANDS[name]
        try:
            module = importlib.import_module(f"edgekit.cli.{module_name}")
        except ModuleNotFoundError as exc:
            if not exc.name or not exc.name.startswith("edgekit.cli"):
                raise
            return _missing(name, short)
        command = getattr(module, name.replace("-", "_"), None)
        return command if command is not None else _missing(name, short)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, short) for name, (_, short) in COMMANDS.items()])


def _missing(name: str, short: str) -> click.Command:
    @click.command(name, help=short, context_settings={"ignore_unknown_options": True})
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    def cmd(args):
        raise EdgekitError(f"`edgekit {name}` is not available in this edgekit {__version__}")

    return cmd


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgekit")
def cli() -> None:
    """edgekit: from a trained PyTorch vision model to a fast, verified artifact on a device."""


@contextlib.contextmanager
def _edgekit_warnings(pending: list[str]):
    """Collect warnings of edgekit's own categories into ``pending``, once per text (a source
    resolved twice warns once), for :func:`main` to print when the command succeeds. Other
    libraries' warnings raised on edgekit's behalf print once per text, deprecations of their APIs
    (advice to edgekit's authors, not its users) not at all; the rest go their usual way."""
    with warnings.catch_warnings():
        usual = warnings.showwarning
        shown: set[str] = set()

        def show(message, category, filename, lineno, file=None, line=None):
            if category.__module__.startswith("edgekit."):
                if str(message) not in pending:
                    pending.append(str(message))
            elif str(message) not in shown:
                shown.add(str(message))
                usual(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        warnings.filterwarnings("always", module=r"edgekit(\.|$)")
        for kind in (DeprecationWarning, PendingDeprecationWarning):
            warnings.filterwarnings("ignore", category=kind, module=r"edgekit(\.|$)")
        yield


def main(argv: list[str] | None = None) -> int:
    """Entry point: user errors print one line and exit with their kind's status (2: bad input;
    1: a check failed or the run was partial, :class:`~edgekit.errors.CheckError`); bugs keep their
    traceback; a command that succeeds ends with one ``edgekit: warning:`` line per warning edgekit
    raised (a former option name among them)."""
    pending: list[str] = []
    try:
        with _edgekit_warnings(pending):
            code = cli.main(args=argv, prog_name="edgekit", standalone_mode=False)
    except EdgekitError as exc:
        click.secho(f"edgekit: error: {exc}", fg="red", err=True)
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("edgekit: interrupted; no partial output was kept", err=True)
        return 130
    except KeyboardInterrupt:
        click.echo("edgekit: interrupted; no partial output was kept", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    for message in pending:
        click.secho(f"edgekit: warning: {message}", fg="yellow", err=True)
    return code if isinstance(code, int) else 0  # ctx.exit(n): a command that finished but reports failure


if __name__ == "__main__":
    sys.exit(main())
