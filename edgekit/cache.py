"""Measurements and intermediate models kept on disk, keyed by content hashes.

A base-layer module (it imports only edgekit.atomic): optimize and compress keep their figures
through it.

A key is the sha256 of a JSON description whose parts are content hashes (of the ONNX measured,
the validation images, the calibration images) and settings, so a rerun, or the same run with
another budget, finds every measurement it already made; each is written the moment it is made
(atomically), so an interrupted run resumes where it stopped.

    <folder>/measure/<kind>/<key>.json     one measurement
    <folder>/files/<key>/                  a model or artifact made once (e.g. a calibrated graph)
"""
from __future__ import annotations

__all__ = ["MeasurementCache", "content_key", "default_cache_dir", "sha256_file"]

import hashlib
import json
import os
from pathlib import Path
from typing import Callable

from edgekit.atomic import atomic_dir, atomic_file


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def default_cache_dir() -> Path:
    """``$EDGEKIT_CACHE`` or ``$XDG_CACHE_HOME/edgekit`` (``~/.cache/edgekit``), plus ``/optimize``."""
    root = os.environ.get("EDGEKIT_CACHE") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "edgekit"
    return Path(root) / "optimize"


def content_key(*parts: object) -> str:
    """A hex key for JSON-serialisable ``parts`` (paths are written as text: hash files first)."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class MeasurementCache:
    """Get-or-measure over a folder; ``folder=None`` keeps nothing (every lookup measures).

    Attributes:
        hits / misses: lookups answered from disk, and measurements made, in this process.
    """

    def __init__(self, folder: Path | None):
        self.folder = Path(folder) if folder is not None else None
        self.hits = self.misses = 0

    def has(self, kind: str, key: str) -> bool:
        """Whether ``kind``/``key`` is stored: a :meth:`measure` of it would measure nothing."""
        return self.folder is not None and (self.folder / "measure" / kind / f"{key}.json").is_file()

    def measure(self, kind: str, key: str, fn: Callable[[], dict]) -> dict:
        """The stored result of ``kind``/``key``, else ``fn()`` stored and returned."""
        path = self.folder / "measure" / kind / f"{key}.json" if self.folder is not None else None
        if path is not None and path.is_file():
            try:
                value = json.loads(path.read_text())
                self.hits += 1
                return value
            except json.JSONDecodeError:
                pass  # a torn file from another writer: measure again
        self.misses += 1
        return self.store(kind, key, fn())

    def store(self, kind: str, key: str, value: dict) -> dict:
        """Keep ``value`` as ``kind``/``key`` (replacing a stored one) and return it."""
        if self.folder is not None:
            path = self.folder / "measure" / kind / f"{key}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_file(path) as tmp:
                tmp.write_text(json.dumps(value, default=str))
        return value

    def folder_for(self, key: str, make: Callable[[Path], None], scratch: Path) -> Path:
        """A folder made once by ``make(folder)`` and kept under ``key`` (under ``scratch`` without a cache)."""
        final = (self.folder / "files" / key) if self.folder is not None else Path(scratch) / key
        if (final / ".complete").is_file():
            return final
        with atomic_dir(final) as tmp:
            make(tmp)
            (tmp / ".complete").write_text("")
        return final
