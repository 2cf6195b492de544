"""Inputs -> scene jobs: a folder (optionally recursive), a text file of paths, or a glob.

Every job keeps the scene's path relative to its input root, and its outputs keep that relative
path under the output folder, so ``a/scene.tif`` and ``b/scene.tif`` never write the same mask.
"""
from __future__ import annotations

__all__ = ["SceneJob", "RunSettings", "find_scenes", "jobs_for", "LIST_SUFFIXES"]

import glob
import os
from dataclasses import dataclass
from pathlib import Path

from edgekit.errors import InputError
from edgekit.tiling.execute import TileConfig, TileOutputs
from edgekit.images import IMAGE_SUFFIXES

LIST_SUFFIXES = (".txt", ".lst")
_MASK_SUFFIX = {".png": ".png", ".tif": ".tif", ".tiff": ".tif"}  # everything else: .tif


@dataclass(frozen=True)
class RunSettings:
    """What every scene of a run is given: tiling settings and which extra outputs to write.

    Attributes:
        tile: tiling settings (threads is set per worker by the backend).
        probabilities: also write float16 probabilities (``<name>.probs.tif``).
        preview: also write a downsampled colour overlay (``<name>.preview.png``).
    """

    tile: TileConfig = TileConfig()
    probabilities: bool = False
    preview: bool = False

    def key(self) -> dict:
        """The settings that decide the outputs' content (threads and progress do not)."""
        t = self.tile
        return {"overlap": t.overlap, "blend": t.blend, "batch": t.batch, "backend": t.backend,
                "probabilities": self.probabilities, "preview": self.preview}


@dataclass(frozen=True)
class SceneJob:
    """One scene: the image, its path relative to the input root (the ledger's key), its outputs."""

    image: Path
    rel: str
    outputs: TileOutputs


def _is_glob(text: str) -> bool:
    return any(c in text for c in "*?[")


def _glob_root(pattern: str) -> Path:
    """The folder part of a glob before its first wildcard."""
    parts = Path(pattern).parts
    fixed = []
    for part in parts:
        if _is_glob(part):
            break
        fixed.append(part)
    return Path(*fixed) if fixed else Path(".")


def _images(paths, what: str) -> list[Path]:
    found = sorted({p for p in paths if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES})
    if not found:
        raise InputError(f"{what} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return found


def find_scenes(source: Path | str, recursive: bool = False) -> tuple[Path, list[Path]]:
    """The root that relative paths are taken from, and the scenes ``source`` names.

    Args:
        source: a folder, a text file with one path per line (``#`` comments; relative paths are
            relative to the file's folder), or a glob (``scenes/**/*.tif``; ``**`` recurses).
        recursive: for a folder, also look in its sub-folders.

    Raises:
        InputError: nothing found, or a listed path does not exist.
    """
    text = str(source)
    path = Path(source)
    if path.is_dir():
        return path, _images(path.rglob("*") if recursive else path.iterdir(), str(path))
    if path.is_file() and path.suffix.lower() in LIST_SUFFIXES:
        return _listed(path)
    if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
        return path.parent, [path]
    if _is_glob(text):
        return _glob_root(text), _images((Path(p) for p in glob.glob(text, recursive=True)), f"glob {text}")
    raise InputError(f"{source} is not a folder, an image, a list of paths ({', '.join(LIST_SUFFIXES)}) or a glob "
                     "that matches files; check the path")


def _listed(listing: Path) -> tuple[Path, list[Path]]:
    lines = [ln.strip() for ln in listing.read_text().splitlines()]
    paths = [Path(ln) if Path(ln).is_absolute() else listing.parent / ln for ln in lines if ln and not ln.startswith("#")]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise InputError(f"{listing} lists {len(missing)} missing file(s), first {missing[0]}; fix or remove those lines")
    scenes = _images(paths, str(listing))
    root = Path(os.path.commonpath([str(p.resolve().parent) for p in scenes]))
    return root, [p.resolve() for p in scenes]


def jobs_for(root: Path, scenes: list[Path], out: Path, settings: RunSettings) -> list[SceneJob]:
    """One job per scene; outputs mirror the scene's path under ``root`` inside ``out``.

    Files inside ``out`` are left out, so ``-o scenes/masks --recursive`` never takes masks for scenes.

    Raises:
        InputError: two scenes would write the same output (``x.jpg`` and ``x.tif`` both give ``x.tif``).
    """
    jobs, seen = [], {}
    inside = Path(out).resolve()
    for scene in scenes:
        if inside in scene.resolve().parents:
            continue  # an earlier run's outputs inside the scene folder are not scenes
        rel = Path(os.path.relpath(scene.resolve(), root.resolve()))
        base = out / rel.parent / rel.stem
        mask = base.with_name(base.name + _MASK_SUFFIX.get(scene.suffix.lower(), ".tif"))
        if mask in seen:
            raise InputError(f"{seen[mask]} and {scene} would both write {mask}; rename one of them")
        seen[mask] = scene
        outputs = TileOutputs(
            mask,
            base.with_name(base.name + ".probs.tif") if settings.probabilities else None,
            base.with_name(base.name + ".preview.png") if settings.preview else None,
        )
        jobs.append(SceneJob(scene, rel.as_posix(), outputs))
    return jobs
