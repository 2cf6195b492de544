"""The engine cache: a second ``edgekit compile`` of the same graph, for the same device and
settings, builds nothing.

An engine depends on the deployable ONNX (its sha256), the TensorRT version, the GPU (name and
compute capability), the precision, the optimization profile, the DLA core and the builder flags;
:class:`EngineKey` holds exactly those, and its digest names the cached engine. The cache lives in
the artifact folder, hidden (``.tensorrt/``: outside the seal, never packaged, as engines belong
to the device that built them), and compiling a folder carries it into the folder written
(:func:`carry_cache`):

    <artifact>/.tensorrt/engines/<key>.engine   a built engine
    <artifact>/.tensorrt/engines/<key>.json     its key's fields, the engine's sha256, build seconds
    <artifact>/.tensorrt/timing-<device>.cache  TensorRT's tactic timings on this device (default)

A cached engine whose bytes no longer match its sha256 is built again; the :data:`KEEP` most
recently used engines are kept. The builder is passed in (:meth:`EngineCache.engine`), so the
lookup and store are the same code with TensorRT or without it.
"""
from __future__ import annotations

__all__ = ["EngineKey", "EngineCache", "engine_key", "carry_cache", "timing_cache_file", "cache_line", "KEEP"]

import hashlib
import json
import os
import re
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable

from edgekit.atomic import atomic_file
from edgekit.artifact.layout import ENGINE_CACHE
from edgekit.artifact.manifest import TensorSpec, sha256_file
from edgekit.compile.engine import EngineSettings, batch_profile, build_flags, build_mode

KEEP = 3  # engines kept per artifact (one per DLA/GPU or workspace choice tried, say)
SCHEMA = 1  # bumped when what goes into an engine changes beyond the fields of the key


@dataclass(frozen=True)
class EngineKey:
    """Everything a built engine depends on.

    Attributes:
        onnx_sha256: the deployable ONNX's.
        tensorrt: the exact TensorRT version ("10.3.0.30").
        gpu_name / compute_capability: the device's GPU ("Orin", "8.7").
        precision: the manifest's.
        profile: ``{input: [min shape, opt shape, max shape]}``, None for a static engine.
        dla_core: the DLA core, None for the GPU.
        flags: builder settings (:func:`edgekit.compile.engine.build_flags`).
    """

    onnx_sha256: str
    tensorrt: str
    gpu_name: str | None
    compute_capability: str | None
    precision: str
    profile: dict | None
    dla_core: int | None
    flags: dict
    schema: int = SCHEMA

    def to_dict(self) -> dict:
        return json.loads(json.dumps(asdict(self)))  # tuples as lists, as read back from disk

    @property
    def digest(self) -> str:
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:32]


def engine_key(onnx_path: Path, inputs: tuple[TensorSpec, ...], settings: EngineSettings, tensorrt: str,
               gpu_name: str | None, compute_capability: str | None) -> EngineKey:
    """The key of building ``onnx_path`` with ``settings`` on this device and TensorRT."""
    profile = batch_profile(inputs, settings.batch)
    return EngineKey(
        onnx_sha256=sha256_file(Path(onnx_path)), tensorrt=tensorrt, gpu_name=gpu_name,
        compute_capability=compute_capability, precision=settings.precision,
        profile={name: [list(s) for s in shapes] for name, shapes in profile.items()} if profile else None,
        dla_core=settings.dla_core, flags=build_flags(settings, build_mode(tensorrt, settings.precision)),
    )


class EngineCache:
    """Built engines by key in ``folder`` (an artifact's ``.tensorrt``); None keeps nothing.

    Attributes:
        keep: engines kept, most recently used first.
    """

    def __init__(self, folder: Path | None, keep: int = KEEP):
        self.folder = Path(folder) / "engines" if folder is not None else None
        self.keep = keep

    def _paths(self, key: EngineKey) -> tuple[Path, Path]:
        return self.folder / f"{key.digest}.engine", self.folder / f"{key.digest}.json"

    def lookup(self, key: EngineKey) -> Path | None:
        """The cached engine of ``key`` when it is there and intact (its sha256 as recorded)."""
        if self.folder is None:
            return None
        engine, record = self._paths(key)
        try:
            data = json.loads(record.read_text())
        except (OSError, ValueError):
            return None
        if data.get("key") != key.to_dict() or not engine.is_file() or sha256_file(engine) != data.get("engine_sha256"):
            return None
        os.utime(record)  # most recently used
        return engine

    def store(self, key: EngineKey, engine: Path, seconds: float) -> Path | None:
        """Keep the engine built for ``key`` (linked, not copied, where the file system allows)."""
        if self.folder is None:
            return None
        self.folder.mkdir(parents=True, exist_ok=True)
        cached, record = self._paths(key)
        cached.unlink(missing_ok=True)
        _link_or_copy(Path(engine), cached)
        with atomic_file(record) as tmp:
            tmp.write_text(json.dumps({"key": key.to_dict(), "engine_sha256": sha256_file(cached),
                                       "build_seconds": round(seconds, 3), "built_at": time.time()}, indent=1) + "\n")
        self._evict()
        return cached

    def record(self, digest: str) -> dict | None:
        """What the cache keeps of the engine ``digest`` (key, sha256, build seconds, ``built_at``)."""
        try:
            return json.loads((self.folder / f"{digest}.json").read_text()) if self.folder else None
        except (OSError, ValueError):
            return None

    def engine(self, key: EngineKey, dest: Path, build: Callable[[Path], object], rebuild: bool = False) -> bool:
        """Put the engine of ``key`` at ``dest``: from the cache (True), or by calling ``build(dest)``
        and keeping what it wrote (False). ``rebuild`` skips the lookup."""
        dest = Path(dest)
        cached = None if rebuild else self.lookup(key)
        if cached is not None:
            dest.unlink(missing_ok=True)
            _link_or_copy(cached, dest)
            return True
        start = time.perf_counter()
        build(dest)
        self.store(key, dest, time.perf_counter() - start)
        return False

    def _evict(self) -> None:
        records = sorted(self.folder.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
        for record in records[self.keep:]:
            record.unlink(missing_ok=True)
            record.with_suffix(".engine").unlink(missing_ok=True)


def _link_or_copy(src: Path, dest: Path) -> None:
    """A hard link (engines are written once, never in place), else a copy."""
    try:
        os.link(src, dest)
    except OSError:
        shutil.copy2(src, dest)


def carry_cache(sources: Iterable[Path], work: Path) -> None:
    """Bring the caches of earlier folders (``sources``, first wins) into the folder being written:
    engines linked, other files (the timing cache, which TensorRT rewrites) copied."""
    dest = Path(work) / ENGINE_CACHE
    for source in sources:
        root = Path(source) / ENGINE_CACHE
        if not root.is_dir() or (dest.exists() and root.resolve() == dest.resolve()):
            continue
        for path in sorted(root.rglob("*")):
            if not path.is_file() or path.name.startswith("."):  # a partial file of an atomic write
                continue
            target = dest / path.relative_to(root)
            if target.exists():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if path.suffix == ".engine":
                _link_or_copy(path, target)
            else:
                shutil.copy2(path, target)


def timing_cache_file(folder: Path, tensorrt: str, gpu_name: str | None, compute_capability: str | None) -> Path:
    """The artifact's tactic timing cache for this TensorRT and GPU (TensorRT refuses another's)."""
    gpu = re.sub(r"[^a-z0-9]+", "-", (gpu_name or "gpu").lower()).strip("-") or "gpu"
    sm = (compute_capability or "").replace(".", "")
    return Path(folder) / ENGINE_CACHE / f"timing-trt{tensorrt}-{gpu}{f'-sm{sm}' if sm else ''}.cache"


def cache_line(folder: Path, digest: str, since: float) -> str:
    """One line on where an artifact's engine came from: built since ``since`` (a ``time.time()``), or
    taken from its engine cache."""
    record = EngineCache(Path(folder) / ENGINE_CACHE).record(digest) or {}
    built_at, seconds = record.get("built_at"), record.get("build_seconds")
    if built_at is None:
        return f"engine {digest[:12]}: not in the engine cache"
    if built_at >= since:
        return f"engine {digest[:12]}: built in {seconds:.0f} s, kept in {ENGINE_CACHE}/engines for the next compile"
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(built_at))
    return f"engine {digest[:12]}: from the engine cache (built {when} in {seconds:.0f} s), nothing built"
