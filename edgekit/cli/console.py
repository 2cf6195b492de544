"""What a command shows on the terminal: how much (--quiet, --verbose) and the progress of long stages.

Three levels, set once per command by :func:`edgekit.cli.options.verbosity_options`:

- quiet: errors, warnings and the command's final line on stdout; no progress, no library logs;
- normal: the command's usual output, a progress display on stderr while a long stage runs (where
  stderr is a log file or a pipe: the current message as a line, at most one every
  :data:`LOG_INTERVAL_S` seconds, so a long run's log shows where it is);
- verbose: also a line per stage with the time it started (stderr), and library logs (INFO).

Progress is drawn with rich on stderr, so stdout stays what the command reports.
"""
from __future__ import annotations

import contextlib
import io
import logging
import sys
import time
import warnings
from collections.abc import Callable, Iterator

import click

QUIET, NORMAL, VERBOSE = 0, 1, 2
LOG_INTERVAL_S = 30.0  # normal level, stderr no terminal: the least time between two progress lines
_KEY = "edgekit.verbosity"


def verbosity() -> int:
    """The running command's level (NORMAL outside a command)."""
    ctx = click.get_current_context(silent=True)
    return ctx.meta.get(_KEY, NORMAL) if ctx is not None else NORMAL


def shows_progress() -> bool:
    """Whether progress displays are on (not under --quiet)."""
    return verbosity() != QUIET


@contextlib.contextmanager
def stage_progress(first: str = "starting") -> Iterator[Callable[[str], None]]:
    """The progress of a long stage on stderr, as ``say(message)`` for the stage to call.

    Normal: a spinner with the current message and the time spent, gone when the stage ends; where
    stderr is no terminal, a message as a line when :data:`LOG_INTERVAL_S` have passed since the
    last line (or the start). Verbose: a line per message with the seconds since the start. Quiet:
    nothing.
    """
    level = verbosity()
    if level == QUIET:
        yield lambda _message: None
        return
    if level == VERBOSE:
        say = _lines(0.0)
        say(first)
        yield say
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    if not console.is_terminal:  # a log file or a pipe: no spinner to draw, a line now and then
        yield _lines(LOG_INTERVAL_S)
        return
    columns = (SpinnerColumn(), TextColumn("[bold]{task.description}"), TimeElapsedColumn())
    # lines a command prints meanwhile go above the display only when stdout is the terminal too
    # (a piped stdout keeps its lines)
    with Progress(*columns, console=console, transient=True, redirect_stdout=sys.stdout.isatty()) as bar:
        task = bar.add_task(escape(first), total=None)
        yield lambda message: bar.update(task, description=escape(message))


def _lines(interval: float) -> Callable[[str], None]:
    """``say(message)``: the message on stderr with the seconds since now, when ``interval`` seconds
    have passed since the last line it printed (0: every message)."""
    start = last = time.perf_counter()

    def say(message: str) -> None:
        nonlocal last
        now = time.perf_counter()
        if now - last >= interval:
            last = now
            click.echo(f"[{now - start:7.1f} s] {message}", err=True)

    return say


@contextlib.contextmanager
def command_output(level: int, final_line_only: bool) -> Iterator[None]:
    """Run a command at ``level``: its library logs and warnings, and under quiet with
    ``final_line_only`` its stdout reduced to the last line it wrote (printed when it returns or
    exits with a status; dropped with an error, whose one line says what happened)."""
    ctx = click.get_current_context()
    ctx.meta[_KEY] = level
    with contextlib.ExitStack() as stack:
        stack.enter_context(_library_logs(level))
        if level == QUIET:
            stack.enter_context(warnings.catch_warnings())
            warnings.filterwarnings("ignore")  # other libraries' warnings; edgekit's own stay
            warnings.filterwarnings("always", module=r"edgekit(\.|$)")
        if not (level == QUIET and final_line_only):
            yield
            return
        real, captured = sys.stdout, io.StringIO()
        stack.enter_context(contextlib.redirect_stdout(captured))
        try:
            yield
        except click.exceptions.Exit:
            _last_line(captured, real)
            raise
        _last_line(captured, real)


def _last_line(captured: io.StringIO, out) -> None:
    lines = [line for line in captured.getvalue().splitlines() if line.strip()]
    if lines:
        out.write(lines[-1].rstrip() + "\n")
        out.flush()


@contextlib.contextmanager
def _library_logs(level: int) -> Iterator[None]:
    """Quiet: only errors logged; verbose: INFO and above on stderr; normal: as configured."""
    if level == NORMAL:
        yield
        return
    root = logging.getLogger()
    before = root.level
    handler = None
    if level == VERBOSE:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(name)s: %(levelname)s: %(message)s"))
        root.addHandler(handler)
    root.setLevel(logging.INFO if level == VERBOSE else logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(before)
        if handler is not None:
            root.removeHandler(handler)
