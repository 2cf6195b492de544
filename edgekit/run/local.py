"""The default backend: this machine's cores, no extra dependency.

``workers == 1`` runs every scene in this process (no start-up cost, no crash isolation: a crash
ends the run, and a rerun resumes it). More workers are spawned processes, each holding the loaded
artifact and one runner with ``cores // workers`` threads, so workers x threads = cores. Each
worker gets one job at a time over its own pipe, so when a worker dies (segfault, OOM kill) the
driver knows exactly which scene it was running: that scene is reported as crashed (the driver
retries or poisons it) and a fresh worker takes the dead one's place. ``concurrent.futures``'
process pool cannot do this: a dead worker breaks the whole pool and every future in it.
Workers die with the driver (``PR_SET_PDEATHSIG``), so a killed driver leaves no worker writing.
"""
from __future__ import annotations

__all__ = ["LocalBackend", "cores"]

import ctypes
import multiprocessing as mp
import os
import signal
import threading
from dataclasses import dataclass
from multiprocessing.connection import wait
from typing import Callable

from edgekit.errors import ConfigError, EdgekitError
from edgekit.run.driver import Dispatch
from edgekit.run.jobs import RunSettings, SceneJob
from edgekit.run.scene import SceneWorker, one_line, process_scene
from edgekit.artifact.folder import Artifact

SceneFn = Callable[[SceneJob, SceneWorker], dict]


def cores() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _die_with_parent() -> None:
    """Linux: the kernel kills this process when its parent dies; elsewhere a thread watches the parent."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        if libc.prctl(1, signal.SIGKILL) == 0:  # PR_SET_PDEATHSIG
            return
    except OSError:
        pass
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            threading.Event().wait(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _worker_main(conn, folder: str, settings: RunSettings, threads: int, scene_fn: SceneFn) -> None:
    """A worker process: load once, then one job in, one row out, until told to stop or the pipe closes."""
    _die_with_parent()
    try:
        worker = SceneWorker(folder, settings, threads).__enter__()
    except Exception as exc:
        conn.send(("failed", one_line(exc)))
        return
    conn.send(("ready", os.getpid()))
    try:
        while (job := conn.recv()) is not None:
            conn.send(("row", scene_fn(job, worker)))
    except (EOFError, KeyboardInterrupt):
        pass
    finally:
        worker.__exit__(None, None, None)


@dataclass
class _Slot:
    process: mp.Process
    conn: object
    ready: bool = False
    job: SceneJob | None = None


class LocalBackend:
    """Scenes on this machine: in process (``workers=1``) or a small pool of worker processes.

    Args:
        workers: worker processes (1: this process).
        threads: runner threads per worker; 0 splits this machine's cores among the workers.
        scene_fn: what each worker runs per scene (default :func:`process_scene`); it must be a
            module-level function, as it is sent to spawned processes. Tests pass a wrapper here.
    """

    def __init__(self, workers: int = 1, threads: int = 0, scene_fn: SceneFn = process_scene):
        if workers < 1:
            raise ConfigError(f"--workers must be >= 1, got {workers}")
        self.workers, self.scene_fn = workers, scene_fn
        self.threads = threads or max(1, cores() // workers)

    def describe(self) -> dict:
        return {"name": "local", "workers": self.workers, "threads": self.threads}

    def run(self, artifact: Artifact, settings: RunSettings, dispatch: Dispatch) -> None:
        if self.workers == 1:
            with SceneWorker(artifact, settings, self.threads) as worker:
                while (job := dispatch.next()) is not None:
                    dispatch.finished(job, self.scene_fn(job, worker))
            return
        ctx = mp.get_context("spawn")
        slots = [self._start(ctx, artifact, settings) for _ in range(self.workers)]
        try:
            self._loop(ctx, slots, artifact, settings, dispatch)
        finally:
            self._stop(slots)

    def _start(self, ctx, artifact: Artifact, settings: RunSettings) -> _Slot:
        ours, theirs = ctx.Pipe()
        process = ctx.Process(target=_worker_main, args=(theirs, str(artifact.folder), settings, self.threads,
                                                         self.scene_fn), daemon=True, name="edgekit-run-worker")
        process.start()
        theirs.close()
        return _Slot(process, ours)

    def _loop(self, ctx, slots: list[_Slot], artifact: Artifact, settings: RunSettings, dispatch: Dispatch) -> None:
        early_deaths = 0
        while True:
            for slot in slots:
                if slot.ready and slot.job is None and (job := dispatch.next()) is not None:
                    slot.conn.send(job)
                    slot.job = job
            if not any(slot.job is not None for slot in slots) and all(slot.ready for slot in slots):
                return
            wait([s.conn for s in slots] + [s.process.sentinel for s in slots])
            for i, slot in enumerate(slots):
                message = self._receive(slot)
                if message is None:
                    continue
                kind, value = message
                if kind == "ready":
                    slot.ready = True
                elif kind == "row":
                    job, slot.job = slot.job, None
                    dispatch.finished(job, value)
                elif kind == "failed":
                    raise EdgekitError(f"a worker could not load the artifact: {value}")
                else:  # died
                    slots[i] = self._start(ctx, artifact, settings)
                    if slot.job is not None:
                        dispatch.finished(slot.job, None, f"worker process died ({value})")
                    elif (early_deaths := early_deaths + 1) > 2 * self.workers:
                        raise EdgekitError(f"worker processes die while loading the artifact ({value}); "
                                           "run with --workers 1 to see why")

    @staticmethod
    def _receive(slot: _Slot) -> tuple | None:
        """The slot's next message, ("died", how) when its process is gone, None when it has nothing yet."""
        try:
            if slot.conn.poll():
                return slot.conn.recv()
        except (EOFError, OSError):
            pass
        else:
            if slot.process.is_alive():
                return None
        slot.process.join(5)
        code = slot.process.exitcode
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        slot.conn.close()
        return ("died", how)

    @staticmethod
    def _stop(slots: list[_Slot]) -> None:
        for slot in slots:
            try:
                slot.conn.send(None)
            except (OSError, ValueError):
                pass
        for slot in slots:
            slot.process.join(10)
            if slot.process.is_alive():
                slot.process.kill()
                slot.process.join()
