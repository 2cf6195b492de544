"""The run's record in the output folder: ``manifest.jsonl``, per-scene sidecars, stale partial files.

``manifest.jsonl`` gets one JSON row per event, appended and flushed to disk as it happens, so a
driver killed at any moment loses at most the line it was writing (a torn last line is ignored when
the file is read back):

* ``{"kind": "start", ...}`` when a run starts (artifact id, settings, backend, scene count);
* ``{"kind": "scene", "path", "status", "seconds", "tiles", "mpx", "mpx_s", "peak_rss_mb", "error",
  "attempt"}`` per scene as it finishes (a detector's also ``boxes``; ``warnings`` where any): status
  ``done``, ``skipped``, ``error``, ``crashed`` (its worker died; it will be tried again) or
  ``poisoned`` (its worker died ``max_attempts`` times);
* ``{"kind": "summary", ...}`` at the end.

A scene is done for good when its sidecar ``<main output>.run.json`` (beside the mask, or the
boxes) exists, records the same artifact id and settings, and every output it lists exists. The
sidecar is written (atomically) only after the outputs are in place, so a scene interrupted
anywhere is simply done again on the next run.
"""
from __future__ import annotations

__all__ = ["artifact_id", "Ledger", "Summary", "sidecar_path", "write_sidecar", "sidecar_matches",
           "remove_partials", "read_rows", "MANIFEST_JSONL"]

import fcntl
import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from edgekit.atomic import atomic_file
from edgekit.errors import InputError
from edgekit.artifact.manifest import Manifest
from edgekit.run.jobs import SceneJob

MANIFEST_JSONL = "manifest.jsonl"


def artifact_id(manifest: Manifest) -> str:
    """An artifact's identity, as its owner defines it (:attr:`Manifest.identity`)."""
    return manifest.identity


def identity_key(identity: dict) -> str:
    """A short digest of ``{"artifact": id, "settings": {...}}``: attempts are counted per key."""
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def sidecar_path(outputs) -> Path:
    """``<main output>.run.json``, beside the first of ``outputs.paths()`` (a mask, or a detector's boxes)."""
    main = outputs.paths()[0]
    return main.with_name(main.name + ".run.json")


def write_sidecar(job: SceneJob, identity: dict) -> None:
    """Record that ``job``'s outputs are complete for this artifact and these settings."""
    path = sidecar_path(job.outputs)
    record = {**identity, "image": str(job.image), "outputs": [p.name for p in job.outputs.paths()]}
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(record, sort_keys=True))


def sidecar_matches(job: SceneJob, identity: dict) -> bool:
    """True when the scene's outputs all exist and its sidecar records the same identity."""
    try:
        record = json.loads(sidecar_path(job.outputs).read_text())
    except (OSError, ValueError):
        return False
    same = all(record.get(k) == v for k, v in identity.items())
    return same and all(p.is_file() for p in job.outputs.paths())


def remove_partials(jobs: list[SceneJob]) -> int:
    """Delete temporary files a killed process left beside any job's outputs (edgekit.atomic's names)."""
    wanted: dict[Path, set[str]] = {}
    for job in jobs:
        for path in (*job.outputs.paths(), sidecar_path(job.outputs)):
            wanted.setdefault(path.parent, set()).add((f".{path.stem}.", f".partial{path.suffix}"))
    removed = 0
    for folder, patterns in wanted.items():
        if not folder.is_dir():
            continue
        for entry in os.scandir(folder):
            if ".partial" in entry.name and any(entry.name.startswith(a) and entry.name.endswith(b) for a, b in patterns):
                Path(entry.path).unlink(missing_ok=True)
                removed += 1
    return removed


@dataclass(frozen=True)
class Summary:
    """What one run did: scenes by outcome, pixels, wall time, and boxes written (a detector's run)."""

    scenes: int
    done: int
    skipped: int
    failed: int
    poisoned: int
    crashed: int
    mpx: float
    seconds: float
    boxes: int = 0

    @property
    def mpx_per_s(self) -> float:
        return self.mpx / self.seconds if self.seconds else 0.0

    def row(self) -> dict:
        return {"kind": "summary", **asdict(self), "mpx_s": round(self.mpx_per_s, 4)}


class Ledger:
    """``manifest.jsonl`` in the output folder, locked so two runs never write one folder at once.

    Use as a context manager; :meth:`scene` appends a row and keeps the run's counts.
    """

    def __init__(self, folder: Path, identity: dict):
        self.path = Path(folder) / MANIFEST_JSONL
        self.identity, self.key = identity, identity_key(identity)
        self._file = None
        self._crashes: dict[str, int] = {}
        self._counts = {s: 0 for s in ("done", "skipped", "error", "poisoned", "crashed")}
        self._mpx, self._boxes = 0.0, 0
        self._start = time.perf_counter()

    def __enter__(self) -> "Ledger":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a+", encoding="utf-8")
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._file.close()
            raise InputError(f"another `edgekit run` is writing to {self.path.parent}; wait for it or choose "
                             "another output folder") from None
        self._file.seek(0)
        text = self._file.read()
        if text and not text.endswith("\n"):
            self._file.write("\n")  # end a line torn by a killed driver so the next row starts clean
        for row in self._rows(text.splitlines()):
            if row.get("kind") == "scene" and row.get("key") == self.key and row.get("status") in ("crashed", "poisoned"):
                self._crashes[row["path"]] = max(self._crashes.get(row["path"], 0), int(row.get("attempt", 1)))
        return self

    def __exit__(self, *exc) -> None:
        self._file.close()

    @staticmethod
    def _rows(lines):
        for line in lines:
            try:
                yield json.loads(line)
            except ValueError:
                continue  # a line torn by a killed driver

    def append(self, row: dict) -> None:
        """One JSON line, written with one call and flushed to disk."""
        self._file.write(json.dumps(row, sort_keys=True) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def crashes(self, rel: str) -> int:
        """How many times a worker died on this scene, with this artifact and settings, in any run."""
        return self._crashes.get(rel, 0)

    def scene(self, row: dict) -> None:
        """Append a scene's row (the key of this artifact and settings is added) and count it."""
        row = {"kind": "scene", "key": self.key, **row}
        if row["status"] in ("crashed", "poisoned") and row.get("attempt"):
            self._crashes[row["path"]] = row["attempt"]
        self._counts[row["status"]] += 1
        if row["status"] == "done":
            self._mpx += row.get("mpx", 0.0)
            self._boxes += row.get("boxes", 0)
        self.append(row)

    def summary(self, scenes: int) -> Summary:
        c = self._counts
        return Summary(scenes, c["done"], c["skipped"], c["error"], c["poisoned"], c["crashed"], round(self._mpx, 4),
                       round(time.perf_counter() - self._start, 3), self._boxes)


def read_rows(folder: Path) -> list[dict]:
    """Every intact row of a folder's ``manifest.jsonl`` (for reports and tests)."""
    path = Path(folder) / MANIFEST_JSONL
    if not path.is_file():
        return []
    with open(path, encoding="utf-8") as f:
        return list(Ledger._rows(f))
