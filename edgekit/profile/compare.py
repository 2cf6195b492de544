"""`compare_artifacts`: several artifacts on the same images, side by side.

Latency, throughput and size of each, and its accuracy against the first artifact (the FP32
reference: pixel agreement and mIoU for segmenters, top-1 agreement for classifiers) and, when
masks are given, against ground truth. Segmenters see every image as a grid of full-size tiles
(edge tiles shifted inside) and are scored on the whole stitched image; classifiers see the
centre crop of their input size.
"""
from __future__ import annotations

__all__ = ["CompareConfig", "ArtifactResult", "CompareReport", "compare_artifacts"]

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from edgekit.errors import ConfigError, InputError
from edgekit.metrics import confusion, iou_from_confusion
from edgekit.profile.latency import LatencyStats, TimingConfig, latency_stats, time_calls
from edgekit.profile.images import check_mask, list_images, match_masks, read_image, read_mask, tile_origins
from edgekit.profile.measure import input_hw, supported_batches
from edgekit.artifact.folder import Artifact, load_artifact
from edgekit.runtime.base import Runner


@dataclass(frozen=True)
class CompareConfig:
    """Settings of `compare_artifacts`.

    Attributes:
        timing: warm-up and counted runs of each artifact's latency measurement.
        batch: images per call (0: each artifact's fixed batch, 1 when dynamic).
        backend: runner backend for every artifact (None: each manifest's).
        threads: ONNX Runtime intra-op threads (0: its default).
        limit: use the first ``limit`` images only (0: all).
        ignore_index: mask label that is not scored (None: every label is).
    """

    timing: TimingConfig = field(default_factory=lambda: TimingConfig(warmup_s=0.5, duration_s=2.0))
    batch: int = 0
    backend: str | None = None
    threads: int = 0
    limit: int = 0
    ignore_index: int | None = 255


@dataclass(frozen=True)
class ArtifactResult:
    """One artifact's row of the comparison.

    Attributes:
        name / folder: folder name and path.
        precision / backend / target: from its manifest and the runner used.
        size_mb: size of the file the backend loads.
        batch: images per timed call.
        latency: per call, milliseconds.
        images_per_s / mpx_per_s: throughput from the mean latency.
        agreement: fraction of pixels (or images) labelled like the reference.
        miou_vs_reference: mIoU taking the reference's labels as truth (segmentation).
        miou / accuracy: against ground-truth masks, None without masks.
        samples_ms: every latency sample.
    """

    name: str
    folder: str
    precision: str
    backend: str
    target: str
    size_mb: float
    batch: int
    latency: LatencyStats
    images_per_s: float
    mpx_per_s: float
    agreement: float
    miou_vs_reference: float | None = None
    miou: float | None = None
    accuracy: float | None = None
    samples_ms: tuple[float, ...] = ()

    def to_dict(self, samples: bool = False) -> dict:
        data = asdict(self)
        data["latency"] = self.latency.to_dict()
        if not samples:
            data.pop("samples_ms")
        return data


@dataclass(frozen=True)
class CompareReport:
    """The comparison: one row per artifact, the first being the reference."""

    task: str
    reference: str
    images: int
    pixels: int
    classes: int
    ground_truth: bool
    tiling: str
    results: tuple[ArtifactResult, ...]
    timing: TimingConfig

    def to_dict(self, samples: bool = False) -> dict:
        return {"task": self.task, "reference": self.reference, "images": self.images, "pixels": self.pixels,
                "classes": self.classes, "ground_truth": self.ground_truth, "tiling": self.tiling,
                "timing": self.timing.to_dict(), "results": [r.to_dict(samples) for r in self.results]}


def compare_artifacts(folders: list[Path | str], images: Path | str, masks: Path | str | None = None,
                      config: CompareConfig = CompareConfig(),
                      progress: Callable[[str], None] | None = None) -> CompareReport:
    """Run every artifact in ``folders`` on the images of ``images`` and compare them with the first.

    Args:
        folders: artifact folders; the first is the reference (normally FP32).
        images: folder of PNG / JPEG / TIFF images.
        masks: folder of label images named like the images (segmentation ground truth).
        config: timing, batch, backend and image settings.
        progress: called with a short message as each artifact starts.
    """
    if not folders:
        raise ConfigError("compare needs at least one artifact folder")
    artifacts = [load_artifact(f) for f in folders]
    task = _common_task(artifacts)
    files = list_images(images, config.limit)
    if masks is not None and task != "segmentation":
        raise InputError("--masks are label images for segmentation artifacts; these are classifiers")
    mask_files = match_masks(files, masks) if masks is not None else None
    reference: list[np.ndarray] = []
    results, classes = [], 0
    for artifact in artifacts:
        if progress:
            progress(f"running {artifact.folder.name}")
        result, classes = _run_one(artifact, files, mask_files, reference, classes, config)
        results.append(result)
    pixels = sum(int(r.size) for r in reference) if task == "segmentation" else len(files)
    tiling = ("grid of full input-size tiles, edge tiles shifted inside, whole image scored"
              if task == "segmentation" else "centre crop of the input size")
    return CompareReport(task, artifacts[0].folder.name, len(files), pixels, classes, mask_files is not None,
                         tiling, tuple(results), config.timing)


def _common_task(artifacts: list[Artifact]) -> str:
    tasks = {a.manifest.task for a in artifacts}
    if len(tasks) > 1:
        raise ConfigError(f"artifacts of different tasks cannot be compared: {', '.join(sorted(tasks))}")
    task = tasks.pop()
    if task not in ("segmentation", "classification"):
        raise ConfigError(f"unknown task {task!r}; compare handles segmentation and classification")
    return task


def _run_one(artifact: Artifact, files: list[Path], mask_files: list[Path] | None, reference: list[np.ndarray],
             classes: int, config: CompareConfig) -> tuple[ArtifactResult, int]:
    backend = config.backend or artifact.manifest.backend
    with artifact.runner(backend, threads=config.threads) as runner:
        spec = runner.input_specs()[0]
        batch = supported_batches(artifact, runner, (config.batch,) if config.batch else (), backend)[0]
        hw = input_hw(spec, artifact.manifest.tile)
        predict = _Predictor(artifact, runner, spec.name, spec.dtype, hw, batch)
        cm_ref = cm_truth = None
        for i, path in enumerate(files):
            labels = predict(read_image(path), path)
            classes = _check_classes(artifact, predict.classes, classes)
            if len(reference) <= i:
                reference.append(labels)
            cm_ref = _add(cm_ref, confusion(reference[i], labels, classes))
            if mask_files is not None:
                mask = read_mask(mask_files[i])
                check_mask(mask, labels.shape, classes, mask_files[i], config.ignore_index)
                cm_truth = _add(cm_truth, confusion(mask, labels, classes, config.ignore_index))
        samples = time_calls(predict.timed_call(), config.timing)
    stats = latency_stats(samples)
    images_per_s = batch * 1000.0 / stats.mean
    seg = artifact.manifest.task == "segmentation"
    result = ArtifactResult(
        artifact.folder.name, str(artifact.folder), artifact.manifest.precision, backend, artifact.manifest.target,
        _size_mb(artifact, backend), batch, stats, images_per_s, images_per_s * hw[0] * hw[1] / 1e6,
        _accuracy(cm_ref), _miou(cm_ref) if seg else None,
        _miou(cm_truth) if cm_truth is not None else None,
        _accuracy(cm_truth) if cm_truth is not None else None, tuple(float(s) for s in samples))
    return result, classes


class _Predictor:
    """Labels for one image with one runner: tiles (segmentation) or centre crop (classification)."""

    def __init__(self, artifact: Artifact, runner: Runner, input_name: str, dtype: str, hw: tuple[int, int], batch: int):
        self.artifact, self.runner, self.input_name, self.dtype = artifact, runner, input_name, dtype
        self.hw, self.batch, self.classes = hw, batch, 0
        self.segmentation = artifact.manifest.task == "segmentation"
        self._last_feed: dict | None = None

    def __call__(self, image: np.ndarray, path: Path) -> np.ndarray:
        th, tw = self.hw
        if image.shape[0] < th or image.shape[1] < tw:
            raise InputError(f"{path.name} is {image.shape[1]}x{image.shape[0]}, smaller than the input "
                             f"{tw}x{th} of {self.artifact.folder.name}; use larger images")
        if not self.segmentation:
            y, x = (image.shape[0] - th) // 2, (image.shape[1] - tw) // 2
            return self._infer([image[y:y + th, x:x + tw]]).argmax(1)[:1]
        labels = np.zeros(image.shape[:2], np.uint8)
        origins = [(y, x) for y in tile_origins(image.shape[0], th) for x in tile_origins(image.shape[1], tw)]
        for start in range(0, len(origins), self.batch):
            chunk = origins[start:start + self.batch]
            logits = self._infer([image[y:y + th, x:x + tw] for y, x in chunk])
            for (y, x), tile_labels in zip(chunk, _labels_at(logits, th, tw)):
                labels[y:y + th, x:x + tw] = tile_labels
        return labels

    def _infer(self, tiles: list[np.ndarray]) -> np.ndarray:
        n = len(tiles)
        tiles = tiles + [tiles[-1]] * (self.batch - n)  # a fixed batch is filled with repeats
        feed = {self.input_name: self.artifact.manifest.preprocess.apply(np.stack(tiles)).astype(self.dtype, copy=False)}
        self._last_feed = feed
        out = np.asarray(next(iter(self.runner.infer(feed).values())))
        expected = 4 if self.segmentation else 2
        if out.ndim != expected:
            raise ConfigError(f"{self.artifact.folder.name} outputs shape {list(out.shape)}; a "
                              f"{self.artifact.manifest.task} model must output {'(N, C, H, W)' if expected == 4 else '(N, C)'}")
        self.classes = int(out.shape[1])
        return out[:n].astype(np.float32, copy=False)

    def timed_call(self) -> Callable[[], object]:
        feed = self._last_feed
        return lambda: self.runner.infer(feed)


def _labels_at(logits: np.ndarray, th: int, tw: int) -> np.ndarray:
    """argmax over classes, resized (nearest) to the tile when the model outputs a smaller grid."""
    labels = logits.argmax(1).astype(np.uint8)
    h, w = labels.shape[1:]
    if (h, w) == (th, tw):
        return labels
    rows = (np.arange(th) * h // th)
    cols = (np.arange(tw) * w // tw)
    return labels[:, rows][:, :, cols]


def _check_classes(artifact: Artifact, found: int, expected: int) -> int:
    if expected and found != expected:
        raise ConfigError(f"{artifact.folder.name} predicts {found} classes, the reference {expected}: "
                          "only artifacts of the same model head can be compared")
    return found


def _add(total: np.ndarray | None, cm: np.ndarray) -> np.ndarray:
    return cm if total is None else total + cm


def _accuracy(cm: np.ndarray | None) -> float:
    return float(np.trace(cm) / cm.sum()) if cm is not None and cm.sum() else float("nan")


def _miou(cm: np.ndarray) -> float:
    iou = iou_from_confusion(cm)
    return float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan")


def _size_mb(artifact: Artifact, backend: str) -> float:
    use_engine = artifact.engine_path is not None and backend == artifact.manifest.backend
    return (artifact.engine_path if use_engine else artifact.model_path).stat().st_size / (1024 * 1024)
