"""The names of an artifact folder's files: defined here once, asked for everywhere else.

An artifact folder (output of `edgekit build`, `edgekit optimize` or `edgekit compile`) holds:

- ``model.onnx``: the deployable ONNX, precision decided in the graph;
- ``model.ort.onnx`` (cpu targets on ONNX Runtime), ``model.xml`` + ``model.bin`` (cpu targets on
  OpenVINO: its IR) or ``model.engine`` (TensorRT): the compiled file, made on the device that runs it;
- ``report.json`` / ``report.md``: what each stage did and proved (numbers / prose);
- ``manifest.json``: what the artifact is, how to feed it, and the seal: the sha256 of every other
  file, checked on loading.

A bundle (``edgekit package``) adds ``bundle.json``, its own index of checksums.
"""
from __future__ import annotations

__all__ = ["MODEL", "ORT_PLAN", "OV_IR", "OV_WEIGHTS", "ENGINE", "MANIFEST", "REPORT_JSON", "REPORT_MD", "BUNDLE_INDEX", "COMPILED", "compiled_files",
           "REPORTS", "ENGINE_CACHE", "is_sealed", "runtime_model", "write_report"]

import json
from pathlib import Path

MODEL = "model.onnx"
ORT_PLAN = "model.ort.onnx"
OV_IR = "model.xml"
OV_WEIGHTS = "model.bin"  # beside OV_IR, named after it by OpenVINO
ENGINE = "model.engine"
MANIFEST = "manifest.json"
REPORT_JSON = "report.json"
REPORT_MD = "report.md"
BUNDLE_INDEX = "bundle.json"
COMPILED = (ORT_PLAN, OV_IR, OV_WEIGHTS, ENGINE)
REPORTS = (REPORT_JSON, REPORT_MD)
# TensorRT's caches on the device that compiles (built engines by key, tactic timings): hidden, so
# outside the seal and never packaged (edgekit.compile.engine_cache)
ENGINE_CACHE = ".tensorrt"


def runtime_model(runtime: str) -> str:
    """The deployable ONNX lowered for one runtime while a build still measures several
    (``model.openvino.onnx``); the kept one becomes ``model.onnx``, the others are removed."""
    return f"model.{runtime}.onnx"


def compiled_files(engine_file: str) -> tuple[str, ...]:
    """The files a compiled artifact's runner loads: the compiled file, and an OpenVINO IR's weights."""
    return (engine_file, OV_WEIGHTS) if engine_file == OV_IR else (engine_file,)


def is_sealed(rel: Path) -> bool:
    """Whether a file (path relative to the folder) is covered by the seal: all but the manifest
    itself and hidden files (temporary files of atomic writes)."""
    return rel.as_posix() != MANIFEST and not any(part.startswith(".") for part in rel.parts)


def write_report(folder: Path, data: dict, markdown: str) -> None:
    """Write ``report.json`` (numbers stay numbers) and ``report.md`` (the prose) into ``folder``."""
    (Path(folder) / REPORT_JSON).write_text(json.dumps(data, indent=2, default=str) + "\n")
    (Path(folder) / REPORT_MD).write_text(markdown)
