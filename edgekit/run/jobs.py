"""Inputs -> scene jobs: a folder (optionally recursive), a text file of paths, or a glob.

Every job keeps the scene's path relative to its input root, and its outputs keep that relative
path under the output folder, so ``a/scene.tif`` and ``b/scene.tif`` never write the same mask
(or the same boxes: a detector's run writes ``<name>.json``, ``.geojson``, ``.gpkg`` or ``.jsonl``).
"""
from __future__ import annotations

__all__ = ["SceneJob", "RunSettings", "find_scenes", "jobs_for", "LIST_SUFFIXES", "BOX_FORMATS"]

import glob
import os
from dataclasses import dataclass, replace
from pathlib import Path

from edgekit.artifact.manifest import Manifest
from edgekit.detect.execute import DetectConfig
from edgekit.detect.outputs import DetectionOutputs
from edgekit.errors import ConfigError, InputError
from edgekit.tiling.execute import TileConfig, TileOutputs
from edgekit.runtime.open import check_device
from edgekit.tiling.plan import check_task
from edgekit.images import IMAGE_SUFFIXES

LIST_SUFFIXES = (".txt", ".lst")
_MASK_SUFFIX = {".png": ".png", ".tif": ".tif", ".tiff": ".tif"}  # everything else: .tif
BOX_FORMATS = {"coco": ".json", "geojson": ".geojson", "gpkg": ".gpkg", "jsonl": ".jsonl"}  # what infer writes


@dataclass(frozen=True)
class RunSettings:
    """What every scene of a run is given: the settings `edgekit infer` takes for one image, and
    which outputs to write.

    Attributes:
        tile: a segmenter's :class:`TileConfig` or a detector's :class:`DetectConfig` (threads is set
            per worker by the backend); it decides the task the run takes, and its ``device`` the GPU
            every worker here runs on.
        probabilities: segmentation: also write float16 probabilities (``<name>.probs.tif``).
        preview: also write a downsampled overlay (``<name>.preview.png``): classes, or boxes.
        box_format: detection: boxes as ``coco`` (``<name>.json``, pixels), ``geojson`` (WGS84),
            ``gpkg`` (the raster's CRS; both need georeferenced scenes) or ``jsonl``.
    """

    tile: TileConfig | DetectConfig = TileConfig()
    probabilities: bool = False
    preview: bool = False
    box_format: str = "coco"

    def __post_init__(self) -> None:
        if self.box_format not in BOX_FORMATS:
            raise ConfigError(f"unknown --format {self.box_format!r}; choose one of {', '.join(BOX_FORMATS)}")
        if self.probabilities and self.task == "detection":
            raise ConfigError("--probabilities applies to segmentation artifacts; a detector writes boxes")

    @property
    def task(self) -> str:
        return "detection" if isinstance(self.tile, DetectConfig) else "segmentation"

    def check(self, manifest: Manifest) -> None:
        """Stop in one line when the artifact's task is not the one these settings are for, or a GPU
        index is given for an artifact that runs on the CPU."""
        check_task(manifest, self.task, f"a run with {self.task} settings")
        check_device(self.tile.device, self.tile.backend or manifest.backend)

    def scene_config(self, threads: int = 0) -> TileConfig | DetectConfig:
        """The per-image settings a worker runs every scene with: its runner threads, no progress bar."""
        if isinstance(self.tile, DetectConfig):
            return replace(self.tile, threads=threads or self.tile.threads)
        return replace(self.tile, threads=threads or self.tile.threads, progress=False)

    def key(self) -> dict:
        """The settings that decide the outputs' content (threads, progress and the GPU index do not)."""
        t = self.tile
        if isinstance(t, DetectConfig):
            m = t.merge
            return {"task": "detection", "overlap": t.overlap, "conf": t.conf, "tile_iou": t.tile_iou,
                    "merge": [m.mode, m.metric, m.threshold], "det_format": t.det_format, "overview": t.overview,
                    "batch": t.batch, "backend": t.backend, "format": self.box_format, "preview": self.preview}
        return {"overlap": t.overlap, "blend": t.blend, "batch": t.batch, "backend": t.backend,
                "probabilities": self.probabilities, "preview": self.preview}


@dataclass(frozen=True)
class SceneJob:
    """One scene: the image, its path relative to the input root (the ledger's key), its outputs
    (a mask and its companions, or a detector's boxes; the first of ``outputs.paths()`` is the main one)."""

    image: Path
    rel: str
    outputs: TileOutputs | DetectionOutputs


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
        outputs = _outputs(base, scene, settings)
        main = outputs.paths()[0]
        if main in seen:
            raise InputError(f"{seen[main]} and {scene} would both write {main}; rename one of them")
        seen[main] = scene
        jobs.append(SceneJob(scene, rel.as_posix(), outputs))
    return jobs


def _outputs(base: Path, scene: Path, settings: RunSettings) -> TileOutputs | DetectionOutputs:
    """A scene's outputs, named after it: ``<name>.tif`` (or .png) masks, or ``<name>.json`` (...) boxes."""
    preview = base.with_name(base.name + ".preview.png") if settings.preview else None
    if settings.task == "detection":
        return DetectionOutputs(base.with_name(base.name + BOX_FORMATS[settings.box_format]), None, preview)
    mask = base.with_name(base.name + _MASK_SUFFIX.get(scene.suffix.lower(), ".tif"))
    probabilities = base.with_name(base.name + ".probs.tif") if settings.probabilities else None
    return TileOutputs(mask, probabilities, preview)
