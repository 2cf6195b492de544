"""The driver: decide what to run, hand scenes to a backend, count crashes, record every outcome.

The same driver serves every backend. A backend only asks :class:`Dispatch` for the next job and
reports each job's row, or ``None`` when the worker running it died; the driver decides retries
(``max_attempts`` per scene, counted in the ledger across runs) and writes the ledger.
"""
from __future__ import annotations

__all__ = ["Dispatch", "run_scenes", "Backend"]

import time
from collections import deque
from pathlib import Path
from typing import Callable, Protocol

from edgekit.errors import ConfigError
from edgekit.run.jobs import RunSettings, SceneJob
from edgekit.run.ledger import Ledger, Summary, artifact_id, remove_partials, sidecar_matches
from edgekit.run.scene import scene_row
from edgekit.artifact.folder import Artifact, load_artifact


class Dispatch:
    """The queue a backend draws from, and where it reports each scene's outcome."""

    def __init__(self, jobs: list[SceneJob], ledger: Ledger, max_attempts: int, on_row: Callable[[dict], None]):
        self._queue = deque(jobs)
        self.ledger, self.max_attempts, self.on_row = ledger, max_attempts, on_row

    def next(self) -> SceneJob | None:
        """The next scene to run, or None when nothing is left (crashed scenes come back at the end)."""
        return self._queue.popleft() if self._queue else None

    def finished(self, job: SceneJob, row: dict | None, reason: str = "worker died") -> None:
        """Record ``row``; ``None`` means the worker died on ``job``: retried, or poisoned after max_attempts."""
        if row is None:
            remove_partials([job])
            attempt = self.ledger.crashes(job.rel) + 1
            status = "poisoned" if attempt >= self.max_attempts else "crashed"
            row = scene_row(job, status, attempt=attempt, error=f"{reason} (attempt {attempt} of {self.max_attempts})")
            if status == "crashed":
                self._queue.append(job)
        self.ledger.scene(row)
        self.on_row(row)
        if row.get("config_error"):
            raise ConfigError(row["error"])


class Backend(Protocol):
    """Runs ``scene_fn(job, SceneWorker)`` on its workers until ``dispatch.next()`` is None and none is busy."""

    workers: int

    def describe(self) -> dict: ...

    def run(self, artifact: Artifact, settings: RunSettings, dispatch: Dispatch) -> None: ...


def run_scenes(artifact: Path | str, jobs: list[SceneJob], out: Path, settings: RunSettings, backend: Backend,
               max_attempts: int = 2, progress: bool = False) -> Summary:
    """Run every job that is not already done with this artifact and these settings.

    Args:
        artifact: the artifact folder (checked against its checksums here, once).
        jobs: from :func:`edgekit.run.jobs.jobs_for`; ``out`` holds the ledger.
        settings: the run's settings; their task (segmentation or detection) must be the artifact's.
        backend: :class:`~edgekit.run.local.LocalBackend` or :class:`~edgekit.run.ray.RayBackend`.
        max_attempts: tries per scene whose worker dies before it is marked ``poisoned``.
        progress: one bar over scenes and Mpx on stderr.

    Returns:
        the run's :class:`Summary` (also the ledger's last row).
    """
    if max_attempts < 1:
        raise ConfigError(f"--max-attempts must be >= 1, got {max_attempts}")
    art = load_artifact(Path(artifact))
    settings.check(art.manifest)  # a detector with a segmenter's settings (or the reverse): nothing is written
    identity = {"artifact": artifact_id(art.manifest), "settings": settings.key()}
    with Ledger(out, identity) as ledger:
        remove_partials(jobs)
        ledger.append({"kind": "start", "time": time.time(), "scenes": len(jobs), "artifact": str(art.folder),
                       **identity, "backend": backend.describe(), "device": settings.tile.device,
                       "max_attempts": max_attempts})
        with _Bar(progress, len(jobs)) as bar:
            todo = _todo(jobs, ledger, identity, max_attempts, bar.update)
            backend.run(art, settings, Dispatch(todo, ledger, max_attempts, bar.update))
        summary = ledger.summary(len(jobs))
        ledger.append(summary.row())
    return summary


def _todo(jobs: list[SceneJob], ledger: Ledger, identity: dict, max_attempts: int,
          on_row: Callable[[dict], None]) -> list[SceneJob]:
    """Jobs still to run; skipped and poisoned ones get their row now."""
    todo = []
    for job in jobs:
        crashes = ledger.crashes(job.rel)
        if sidecar_matches(job, identity):
            row = scene_row(job, "skipped")
        elif crashes >= max_attempts:
            row = scene_row(job, "poisoned", attempt=crashes, error=(
                f"its worker died {crashes} times; skipped (raise --max-attempts to try it again)"))
        else:
            todo.append(job)
            continue
        ledger.scene(row)
        on_row(row)
    return todo


class _Bar:
    """One rich bar over scenes, with Mpx done and Mpx/s; nothing when off."""

    def __init__(self, enabled: bool, total: int):
        self.enabled, self.total = enabled, total
        self._progress = self._task = None
        self._mpx, self._start = 0.0, time.perf_counter()

    def __enter__(self) -> "_Bar":
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._progress = Progress(TextColumn("scenes"), BarColumn(), MofNCompleteColumn(),
                                      TextColumn("{task.fields[rate]}"), TimeRemainingColumn(),
                                      console=Console(stderr=True))
            self._progress.__enter__()
            self._task = self._progress.add_task("run", total=self.total, rate="")
        return self

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def update(self, row: dict) -> None:
        if self._progress is None or row["status"] == "crashed":
            return
        self._mpx += row.get("mpx", 0.0)
        dt = max(time.perf_counter() - self._start, 1e-9)
        self._progress.update(self._task, advance=1, rate=f"{self._mpx:.1f} Mpx, {self._mpx / dt:.2f} Mpx/s")
