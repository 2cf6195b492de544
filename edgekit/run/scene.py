"""One scene -> one result row, in whatever process a backend runs it. Never raises.

A :class:`SceneWorker` is what a worker process (or Ray actor) holds for its whole life: the loaded
artifact and one open runner, so scenes after the first pay no session start-up. Only jobs (paths)
come in and rows (small dicts) go out; pixels stay inside the worker.
"""
from __future__ import annotations

__all__ = ["SceneWorker", "process_scene", "scene_row", "needs_gpu", "one_line"]

import os
import socket
import time
import warnings
from pathlib import Path

from edgekit.errors import ConfigError, EdgekitError
from edgekit.run.jobs import RunSettings, SceneJob
from edgekit.run.ledger import artifact_id, write_sidecar
from edgekit.artifact.folder import Artifact, load_artifact
from edgekit.runtime.open import open_runner


class SceneWorker:
    """The loaded artifact and an open runner, for every scene a worker is given.

    Args:
        artifact: the artifact folder (checked against its checksums once per worker unless
            ``verify`` is False: the driver has already checked it).
        settings: the run's settings (a segmenter's or a detector's); ``threads`` sets the runner's
            threads (0: backend default).
    """

    def __init__(self, artifact: Path | str | Artifact, settings: RunSettings, threads: int = 0, verify: bool = False):
        self.artifact = artifact if isinstance(artifact, Artifact) else load_artifact(Path(artifact), verify=verify)
        self.task = settings.task
        self.config = settings.scene_config(threads)
        self.identity = {"artifact": artifact_id(self.artifact.manifest), "settings": settings.key()}
        self.runner = None

    def __enter__(self) -> "SceneWorker":
        self.runner = open_runner(self.artifact, self.config.backend, self.config.threads, device=self.config.device)
        self.runner.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.runner is not None:
            self.runner.__exit__(*exc)
            self.runner = None


def needs_gpu(artifact: Artifact, backend: str | None = None) -> bool:
    """True when the runner for this artifact runs on a GPU (TensorRT, or ONNX Runtime's CUDA/TensorRT providers)."""
    backend = backend or artifact.manifest.backend
    if backend in ("tensorrt", "onnxruntime-cuda", "onnxruntime-trt"):  # --backend picks a GPU provider
        return True
    providers = artifact.manifest.session.get("onnxruntime", {}).get("providers", ())
    return backend == "onnxruntime" and any(p in providers for p in ("CUDAExecutionProvider", "TensorrtExecutionProvider"))


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return text if isinstance(exc, EdgekitError) else f"{type(exc).__name__}: {text}".rstrip(": ")


def scene_row(job: SceneJob, status: str, **fields) -> dict:
    """A result row for the ledger: the scene's relative path, its status, and the figures given."""
    return {"path": job.rel, "status": status, "host": socket.gethostname(), "pid": os.getpid(), **fields}


def process_scene(job: SceneJob, worker: SceneWorker) -> dict:
    """Run one scene through the tiled runner of its task and record it; a failure becomes an ``error`` row.

    Returns:
        a row with status ``done`` (seconds, tiles, mpx, mpx_s, peak_rss_mb: this worker process's
        peak so far; a detector's ``boxes``; the scene's ``warnings``, where any) or ``error`` with
        the one-line message. Nothing half-written is left either way.
    """
    start = time.perf_counter()
    try:
        for path in job.outputs.paths():
            path.parent.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            figures = _infer(job, worker)
        write_sidecar(job, worker.identity)
    except Exception as exc:  # every failure of one scene is that scene's row, never the run's end
        settings_wrong = isinstance(exc, ConfigError)  # true of every scene: the driver stops the run
        return scene_row(job, "error", seconds=round(time.perf_counter() - start, 3), error=one_line(exc),
                         **({"config_error": True} if settings_wrong else {}))
    notes = sorted({str(w.message) for w in caught})
    return scene_row(job, "done", seconds=round(time.perf_counter() - start, 3), **figures,
                     **({"warnings": notes} if notes else {}))


def _infer(job: SceneJob, worker: SceneWorker) -> dict:
    """Write one scene's outputs (a mask, or boxes) as `edgekit infer` does; its figures for the row."""
    extra = {}
    if worker.task == "detection":
        from edgekit.detect.execute import write_detections

        result = write_detections(worker.artifact, job.image, job.outputs, worker.config, runner=worker.runner)
        extra["boxes"] = result.boxes
    else:
        from edgekit.tiling.execute import infer_image

        result = infer_image(worker.artifact, job.image, job.outputs, worker.config, runner=worker.runner)
    h, w, _ = result.shape
    mpx = h * w / 1e6
    mpx_s = mpx / result.seconds if result.seconds else 0.0
    return {"tiles": result.tiles, "mpx": round(mpx, 4), "mpx_s": round(mpx_s, 4),
            "peak_rss_mb": round(result.peak_rss_mb, 1), **extra}
