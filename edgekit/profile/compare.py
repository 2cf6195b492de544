"""`compare_artifacts`: several artifacts on the same images, side by side.

Latency, throughput and size of each, and its accuracy against the first artifact (the FP32
reference: pixel agreement and mIoU for segmenters, top-1 agreement for classifiers, COCO mAP
against the reference's boxes for detectors) and, when masks (boxes) are given, against ground
truth, all scored by the one scorer (:mod:`edgekit.evaluate`; detectors: pycocotools). Segmenters
also get the IoU of each class, named as the reference artifact names them (``class_<id>`` where it
names none: :func:`edgekit.artifact.classes.class_names`).
Segmenters run through the same tiled path as `edgekit infer` (:func:`edgekit.tiling.execute.predict_mask`:
same pixel mapping, overlap, blend and stitching), so the figures are what `infer` delivers;
classifiers see the centre crop of their input size (:func:`edgekit.images.fit_image`); detectors
run through `edgekit infer`'s tiled detection (:func:`edgekit.detect.execute.detect_image`).
"""
from __future__ import annotations

__all__ = ["CompareConfig", "ArtifactResult", "CompareReport", "compare_artifacts", "classify_image"]

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from edgekit.artifact.classes import class_names
from edgekit.errors import ConfigError, InputError
from edgekit.evaluate import Scorer
from edgekit.metrics import iou_from_confusion
from edgekit.images import PixelMap, check_mask, fit_image, list_images, match_masks, open_image, read_mask
from edgekit.timing import LatencyStats, TimingConfig, latency_stats, time_calls
from edgekit.profile.measure import gpu_used, input_hw, supported_batches
from edgekit.artifact.folder import Artifact, load_artifact
from edgekit.runtime.base import Runner
from edgekit.runtime.open import GPU_BACKENDS, check_device, open_runner
from edgekit.tiling.execute import TileConfig, predict_mask


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
        overlap / blend: tiling of segmenters, as `edgekit infer` takes them (same defaults).
        conf: detectors: the reference's boxes at or above this score are the truth the others
            are scored against (each artifact's boxes down to ``min_conf`` count for mAP).
        min_conf: detectors: the lowest score kept for the mAP's precision-recall curve.
        device: the GPU the artifacts run on whose backend runs on a GPU; those on a CPU backend
            run on the CPU (a CPU reference beside GPU candidates), and when all do, only 0 is taken.
    """

    timing: TimingConfig = field(default_factory=lambda: TimingConfig(warmup_s=0.5, duration_s=2.0))
    batch: int = 0
    backend: str | None = None
    threads: int = 0
    limit: int = 0
    ignore_index: int | None = 255
    overlap: int = TileConfig.overlap
    blend: str = TileConfig.blend
    conf: float = 0.25
    min_conf: float = 0.05
    device: int = 0

    def __post_init__(self) -> None:
        check_device(self.device, self.backend)


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
        map50_vs_reference / map50_95_vs_reference: detectors, COCO mAP against the reference's boxes
            (``agreement`` is the first).
        map50 / map50_95: detectors, against ground-truth boxes, None without them.
        class_iou_vs_reference / class_iou: segmenters, the IoU of each class (in the order of
            :attr:`CompareReport.class_names`) against the reference's labels / against ground truth
            (empty without masks); None for a class in neither labels.
        gpu: the index of the GPU it ran on, None where it ran on the CPU.
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
    map50_vs_reference: float | None = None
    map50_95_vs_reference: float | None = None
    map50: float | None = None
    map50_95: float | None = None
    class_iou_vs_reference: tuple[float | None, ...] = ()
    class_iou: tuple[float | None, ...] = ()
    gpu: int | None = None
    samples_ms: tuple[float, ...] = ()

    def to_dict(self, samples: bool = False) -> dict:
        data = asdict(self)
        data["latency"] = self.latency.to_dict()
        if not samples:
            data.pop("samples_ms")
        return data


@dataclass(frozen=True)
class CompareReport:
    """The comparison: one row per artifact, the first being the reference.

    ``class_names``: the reference's class names, ``class_<id>`` where it names none (segmenters:
    one per class of the model's output; detectors: the named ones).
    """

    task: str
    reference: str
    images: int
    pixels: int
    classes: int
    ground_truth: bool
    tiling: str
    results: tuple[ArtifactResult, ...]
    timing: TimingConfig
    class_names: tuple[str, ...] = ()

    def to_dict(self, samples: bool = False) -> dict:
        return {"task": self.task, "reference": self.reference, "images": self.images, "pixels": self.pixels,
                "classes": self.classes, "class_names": list(self.class_names), "ground_truth": self.ground_truth,
                "tiling": self.tiling,
                "timing": self.timing.to_dict(), "results": [r.to_dict(samples) for r in self.results]}


def compare_artifacts(folders: list[Path | str], images: Path | str, masks: Path | str | None = None,
                      config: CompareConfig = CompareConfig(),
                      progress: Callable[[str], None] | None = None, boxes: Path | str | None = None) -> CompareReport:
    """Run every artifact in ``folders`` on the images of ``images`` and compare them with the first.

    Args:
        folders: artifact folders; the first is the reference (normally FP32).
        images: folder of images (any format `edgekit infer` reads).
        masks: folder of label images named like the images (segmentation ground truth).
        config: timing, batch, backend and image settings.
        boxes: folder of COCO JSON files named like the images, as `edgekit infer -o NAME.json`
            writes them (detection ground truth).
        progress: called with a short message as each artifact starts.
    """
    if not folders:
        raise ConfigError("compare needs at least one artifact folder")
    artifacts = [load_artifact(f) for f in folders]
    task = _common_task(artifacts)
    backends = [config.backend or a.manifest.backend for a in artifacts]
    if not any(b in GPU_BACKENDS for b in backends):
        check_device(config.device, backends[0])  # --device N with no artifact on a GPU: the one-line error
    files = list_images(images, config.limit)
    if masks is not None and task != "segmentation":
        raise InputError(f"--masks are label images for segmentation artifacts; these are {task} artifacts")
    if boxes is not None and task != "detection":
        raise InputError(f"--boxes are ground-truth boxes for detection artifacts; these are {task} artifacts")
    if task == "detection":
        return _compare_detectors(artifacts, files, boxes, config, progress)
    mask_files = match_masks(files, masks) if masks is not None else None
    reference: list[np.ndarray] = []
    results, classes = [], 0
    for artifact in artifacts:
        if progress:
            progress(f"running {artifact.folder.name}")
        result, classes = _run_one(artifact, files, mask_files, reference, classes, config)
        results.append(result)
    pixels = sum(int(r.size) for r in reference) if task == "segmentation" else len(files)
    tiling = (f"as edgekit infer: overlap {config.overlap}, {config.blend} blend, whole image scored"
              if task == "segmentation" else "centre crop of the input size")
    names = class_names(artifacts[0].manifest.classes, classes) if task == "segmentation" else ()
    return CompareReport(task, artifacts[0].folder.name, len(files), pixels, classes, mask_files is not None,
                         tiling, tuple(results), config.timing, names)


def _common_task(artifacts: list[Artifact]) -> str:
    tasks = {a.manifest.task for a in artifacts}
    if len(tasks) > 1:
        raise ConfigError(f"artifacts of different tasks cannot be compared: {', '.join(sorted(tasks))}")
    task = tasks.pop()
    if task not in ("segmentation", "classification", "detection"):
        raise ConfigError(f"unknown task {task!r}; compare handles segmentation, classification and detection")
    return task


def _run_one(artifact: Artifact, files: list[Path], mask_files: list[Path] | None, reference: list[np.ndarray],
             classes: int, config: CompareConfig) -> tuple[ArtifactResult, int]:
    backend = config.backend or artifact.manifest.backend
    device = _device_for(backend, config)
    with open_runner(artifact, backend, threads=config.threads, device=device) as opened:
        runner = _Recording(opened)
        spec = runner.input_specs()[0]
        batch = supported_batches(artifact, runner, (config.batch,) if config.batch else (), backend)[0]
        hw = input_hw(spec, artifact.manifest.tile)
        tiles = TileConfig(config.overlap, config.blend, batch, backend, config.threads, device=device)
        scorer = None
        for i, path in enumerate(files):
            if artifact.manifest.task == "segmentation":
                labels = predict_mask(artifact, path, tiles, runner)
            else:
                labels = classify_image(artifact, runner, path, hw, batch)
            classes = _check_classes(artifact, int(runner.output_specs()[0].shape[1]), classes)
            if len(reference) <= i:
                reference.append(labels)
            truth = None
            if mask_files is not None:
                truth = read_mask(mask_files[i])
                check_mask(truth, labels.shape, classes, mask_files[i], config.ignore_index)
            scorer = scorer or Scorer(artifact.manifest.task, classes, config.ignore_index)
            scorer.add(reference[i], labels, truth)
        feed = runner.feed
        samples = time_calls(lambda: opened.infer(feed), config.timing)
        gpu = gpu_used(opened, backend, device)
    stats, score = latency_stats(samples), scorer.score()
    images_per_s = batch * 1000.0 / stats.mean
    result = ArtifactResult(
        artifact.folder.name, str(artifact.folder), artifact.manifest.precision, backend, artifact.manifest.target,
        artifact.loaded_mb(backend), batch, stats, images_per_s, images_per_s * hw[0] * hw[1] / 1e6,
        score.agreement, score.miou_vs_reference, score.miou, score.accuracy, gpu=gpu,
        samples_ms=tuple(float(s) for s in samples),
        **(_class_ious(scorer) if artifact.manifest.task == "segmentation" else {}))
    return result, classes


def _class_ious(scorer: Scorer) -> dict:
    """Per-class IoU against the reference and ground truth (None: a class in neither labels)."""
    def per_class(cm) -> tuple[float | None, ...]:
        return tuple(None if np.isnan(v) else float(v) for v in iou_from_confusion(cm)) if cm is not None else ()

    return {"class_iou_vs_reference": per_class(scorer.vs_reference), "class_iou": per_class(scorer.vs_truth)}


def _compare_detectors(artifacts: list[Artifact], files: list[Path], boxes: Path | str | None, config: CompareConfig,
                       progress: Callable[[str], None] | None) -> CompareReport:
    """Each detector tiled over every image as `edgekit infer` runs it; mAP against the first's boxes
    (over ``config.conf``) and against ground truth when ``boxes`` is given."""
    from edgekit.scoring import coco_map

    truth = [read_coco_boxes(Path(boxes) / f"{f.stem}.json") for f in files] if boxes is not None else None
    sizes, reference, results = [], None, []
    for artifact in artifacts:
        if progress:
            progress(f"running {artifact.folder.name}")
        found, sizes, row = _detect_all(artifact, files, config)
        if reference is None:
            reference = [d.take(d.scores >= config.conf) for d in found]
        vs_ref = coco_map(reference, found, sizes)
        vs_truth = coco_map(truth, found, sizes) if truth is not None else {}
        results.append(ArtifactResult(**row, agreement=vs_ref["map50"], map50_vs_reference=vs_ref["map50"],
                                      map50_95_vs_reference=vs_ref["map50_95"], map50=vs_truth.get("map50"),
                                      map50_95=vs_truth.get("map50_95")))
    pixels = sum(h * w for h, w in sizes)
    tiling = f"as edgekit infer: overlap {config.overlap}; reference boxes over {config.conf:g}, scored down to {config.min_conf:g}"
    names = class_names(artifacts[0].manifest.classes)
    return CompareReport("detection", artifacts[0].folder.name, len(files), pixels, len(names),
                         truth is not None, tiling, tuple(results), config.timing, names)


def _detect_all(artifact: Artifact, files: list[Path], config: CompareConfig):
    """(boxes per image, (h, w) per image, the row's speed fields) of one detector."""
    from edgekit.runtime.decode import Detections
    from edgekit.detect.execute import DetectConfig, detect_image

    backend = config.backend or artifact.manifest.backend
    device = _device_for(backend, config)
    found, sizes = [], []
    with open_runner(artifact, backend, threads=config.threads, device=device) as opened:
        runner = _Recording(opened)
        batch = supported_batches(artifact, runner, (config.batch,) if config.batch else (), backend)[0]
        hw = input_hw(runner.input_specs()[0], artifact.manifest.tile)
        det_config = DetectConfig(config.overlap, config.min_conf, batch=batch, backend=backend, threads=config.threads,
                                  device=device)
        for path in files:
            parts = []
            result = detect_image(artifact, path, parts.append, det_config, runner=runner)
            found.append(Detections.concat(parts))
            sizes.append(result.shape[:2])
        samples = time_calls(lambda: opened.infer(runner.feed), config.timing)
        gpu = gpu_used(opened, backend, device)
    stats = latency_stats(samples)
    images_per_s = batch * 1000.0 / stats.mean
    row = dict(name=artifact.folder.name, folder=str(artifact.folder), precision=artifact.manifest.precision,
               backend=backend, target=artifact.manifest.target, size_mb=artifact.loaded_mb(backend), batch=batch,
               latency=stats, images_per_s=images_per_s, mpx_per_s=images_per_s * hw[0] * hw[1] / 1e6, gpu=gpu,
               samples_ms=tuple(float(s) for s in samples))
    return found, sizes, row


def _device_for(backend: str, config: CompareConfig) -> int:
    """The device an artifact on ``backend`` is opened on: ``config.device`` on a GPU backend, 0 on a CPU one."""
    return config.device if backend in GPU_BACKENDS else 0


def read_coco_boxes(path: Path):
    """Ground-truth boxes of one image from a COCO JSON file (``annotations[].bbox`` x, y, w, h and
    ``category_id`` counted from 1, as `edgekit infer` writes them)."""
    import json

    from edgekit.runtime.decode import Detections

    if not path.is_file():
        raise InputError(f"no ground-truth boxes for {path.stem}: {path} does not exist")
    try:
        annotations = json.loads(path.read_text())["annotations"]
        xywh = np.array([a["bbox"] for a in annotations], np.float32).reshape(-1, 4)
        classes = np.array([int(a.get("category_id", 1)) - 1 for a in annotations], np.int32)
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path} is not COCO JSON with annotations[].bbox: {exc}") from None
    boxes = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
    return Detections(boxes, np.ones(len(boxes), np.float32), classes)


class _Recording:
    """A runner that keeps the last feed it was given (the timed call replays it)."""

    def __init__(self, runner: Runner):
        self.runner, self.feed = runner, None

    def __getattr__(self, name: str):
        return getattr(self.runner, name)

    def infer(self, feed: dict) -> dict:
        self.feed = feed
        return self.runner.infer(feed)


def classify_image(artifact: Artifact, runner: Runner, path: Path, hw: tuple[int, int], batch: int) -> np.ndarray:
    """Top-1 class of the centre crop of the image at ``path``, through the one pixel path, as
    compare scores a classifier (``batch``: the artifact's fixed batch, filled with repeats); (1,) int."""
    spec = runner.input_specs()[0]
    with open_image(path) as source:
        pixels = PixelMap.for_source(source, artifact.manifest.preprocess, hw)
        raw = fit_image(source.read(0, 0, *source.shape[:2]), hw, "crop")
    x = pixels.model_input(raw)[0][None]
    feed = {spec.name: np.repeat(x, batch, axis=0).astype(spec.dtype, copy=False)}  # a fixed batch: repeats
    out = np.asarray(next(iter(runner.infer(feed).values())))
    if out.ndim != 2:
        raise ConfigError(f"{artifact.folder.name} outputs shape {list(out.shape)}; a classification model must "
                          "output (N, C)")
    return out[:1].argmax(1)


def _check_classes(artifact: Artifact, found: int, expected: int) -> int:
    if expected and found != expected:
        raise ConfigError(f"{artifact.folder.name} predicts {found} classes, the reference {expected}: "
                          "only artifacts of the same model head can be compared")
    return found
