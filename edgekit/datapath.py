"""Where target profiles and model recipes are found, and where each one came from.

Searched in order, the first file of a name winning:

1. a folder given on the command line (``--targets-dir`` / ``--recipes-dir``), holding the YAML files;
2. the folders of the ``EDGEKIT_PATH`` environment variable (separated like ``PATH``), each holding
   ``targets/`` and ``models/`` subfolders: a team's own profiles and recipes;
3. the ones shipped inside the package (``edgekit/data/targets``, ``edgekit/data/models``), read with
   ``importlib.resources`` so that a wheel or a plain ``pip install`` finds them.
"""
from __future__ import annotations

__all__ = ["ENV", "Place", "places", "find", "entries", "looked_in"]

import os
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from edgekit.errors import ConfigError

ENV = "EDGEKIT_PATH"
OPTIONS = {"targets": "--targets-dir", "models": "--recipes-dir"}
SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class Place:
    """A folder searched, and how it got on the search path (``--targets-dir``, ``EDGEKIT_PATH``, ``package``)."""

    folder: Path
    origin: str


def _package(kind: str) -> Path:
    return Path(str(files("edgekit.data") / kind))


def places(kind: str, extra: Path | str | None = None) -> list[Place]:
    """The folders searched for ``kind`` (``targets`` or ``models``), in order."""
    if kind not in OPTIONS:
        raise ValueError(f"kind must be one of {', '.join(OPTIONS)}, not {kind!r}")
    found = []
    if extra is not None:
        if not Path(extra).is_dir():
            raise ConfigError(f"{OPTIONS[kind]} {extra} is not a folder")
        found.append(Place(Path(extra), OPTIONS[kind]))
    for root in filter(None, os.environ.get(ENV, "").split(os.pathsep)):
        found.append(Place(Path(root) / kind, ENV))
    found.append(Place(_package(kind), "package"))
    return found


def _files(place: Place) -> list[Path]:
    return sorted(p for p in place.folder.glob("*") if p.suffix in SUFFIXES and p.is_file()) if place.folder.is_dir() else []


def find(kind: str, name: str, extra: Path | str | None = None) -> tuple[Path, str] | None:
    """The file of ``name`` (without suffix) and its origin; None when no folder has it."""
    for place in places(kind, extra):
        for suffix in SUFFIXES:
            path = place.folder / f"{name}{suffix}"
            if path.is_file():
                return path, place.origin
    return None


def entries(kind: str, extra: Path | str | None = None) -> list[tuple[str, Path, str]]:
    """Every (name, file, origin) on the search path, sorted by name; an earlier folder's file hides a
    later one's of the same name."""
    seen: dict[str, tuple[Path, str]] = {}
    for place in places(kind, extra):
        for path in _files(place):
            seen.setdefault(path.stem, (path, place.origin))
    return [(name, *seen[name]) for name in sorted(seen)]


def looked_in(kind: str, extra: Path | str | None = None) -> str:
    """The folders searched, for messages: ``/x (--targets-dir), /site-packages/edgekit/data/targets (package)``."""
    return ", ".join(f"{p.folder} ({p.origin})" for p in places(kind, extra))
