"""Overlapped stages with bounded queues: what tiled segmentation and tiled detection both run.

    produce (reader thread) -> infer (the caller's thread) -> after[0] (thread) -> after[1] ...

The reader reads and preprocesses the next batch while the caller's thread runs the model on the
current one (a runner stays on the thread that activated it), and each later stage (stitching,
decoding, merging) runs in a thread of its own. Queues hold ``depth`` items at most, so memory
stays bounded by tile size, batch and image width. The first exception in any stage stops every
stage and is raised in the caller's thread; items keep their order.
"""
from __future__ import annotations

__all__ = ["run_stages"]

import queue
import threading
from typing import Any, Callable, Iterable, Sequence

_DONE = object()


class _Stop(Exception):
    """Another stage failed or the run was interrupted."""


def _put(q: queue.Queue, item, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return
        except queue.Full:
            continue
    raise _Stop()


def _get(q: queue.Queue, stop: threading.Event):
    while not stop.is_set():
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            continue
    raise _Stop()


class _Stage(threading.Thread):
    """A stage thread: an exception stops the whole pipeline and is re-raised by the caller."""

    def __init__(self, name: str, work: Callable[[], None], stop: threading.Event):
        super().__init__(name=name, daemon=True)
        self.work, self.stop, self.error = work, stop, None

    def run(self) -> None:
        try:
            self.work()
        except _Stop:
            pass
        except BaseException as exc:  # handed to the caller's thread
            self.error = exc
            self.stop.set()


def run_stages(produce: Iterable, infer: Callable[[Any], Any], after: Sequence[Callable[[Any], Any]],
               depth: int = 2, names: Sequence[str] = ()) -> None:
    """Run ``produce`` -> ``infer`` -> ``after[0]`` -> ``after[1]`` ... overlapped.

    Args:
        produce: the items (batches of tiles), iterated in the reader thread.
        infer: runs in the caller's thread on each item; its result goes to ``after[0]``.
        after: later stages, one thread each; each one's result goes to the next, the last one's is dropped.
        depth: items waiting between two stages, at most.
        names: thread names of the ``after`` stages (for debugging).
    """
    stop = threading.Event()
    queues = [queue.Queue(depth) for _ in range(len(after) + 1)]

    def read() -> None:
        for item in produce:
            _put(queues[0], item, stop)
        _put(queues[0], _DONE, stop)

    def stage(i: int) -> Callable[[], None]:
        def work() -> None:
            while (item := _get(queues[i + 1], stop)) is not _DONE:
                result = after[i](item)
                if i + 1 < len(after):
                    _put(queues[i + 2], result, stop)
            if i + 1 < len(after):
                _put(queues[i + 2], _DONE, stop)
        return work

    threads = [_Stage("tile-reader", read, stop)] + [
        _Stage(names[i] if i < len(names) else f"tile-stage-{i}", stage(i), stop) for i in range(len(after))]
    for t in threads:
        t.start()
    try:
        while (item := _get(queues[0], stop)) is not _DONE:
            _put(queues[1], infer(item), stop)
        _put(queues[1], _DONE, stop)
        for t in threads[1:]:
            t.join()
    except _Stop:
        pass
    except BaseException:
        stop.set()
        raise
    finally:
        stop.set()
        for t in threads:
            t.join()
    for t in threads:
        if t.error is not None:
            raise t.error
