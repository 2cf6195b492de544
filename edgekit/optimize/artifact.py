"""The chosen graph as an artifact folder, laid out as `edgekit build` lays it out.

The FP32 build of the same source gives the manifest (inputs, preprocessing, classes...); its
model.onnx is replaced by the chosen graph, the manifest says the precision and what the search
decided; for the cpu target it is compiled (ONNX Runtime plan, verified); the reports are written
and the folder is sealed, once.
"""
from __future__ import annotations

__all__ = ["write_artifact", "fp32_build"]

import shutil
from pathlib import Path
from typing import Callable

from edgekit.artifact.layout import COMPILED, MANIFEST, MODEL, REPORTS
from edgekit.artifact.manifest import Manifest, read_manifest, seal
from edgekit.atomic import atomic_dir
from edgekit.cache import MeasurementCache, content_key
from edgekit.targets import Target

_SKIP = {MANIFEST, *REPORTS, *COMPILED}  # written anew for the chosen graph


def fp32_build(source: str, config, target: Target, cache: MeasurementCache, scratch: Path,
               say: Callable[[str], None]) -> Path:
    """An FP32 `edgekit build` of ``source`` (made once per source content, size and target), not
    fused: the candidates' fp16 and int8 are lowered from its graph, and AutoCast cannot take ONNX
    Runtime's fused contrib ops (a pruned FastViT's fusion was kept, being faster, and its fp16 failed)."""
    from edgekit import __version__
    from edgekit.convert.pipeline import BuildConfig, build
    from edgekit.convert.source import resolve_source

    src = resolve_source(source, config.input_size, config.checkpoint, config.task, recipes_dir=config.recipes_dir,
                         inputs=config.inputs)
    # config.task too: --task over a recipe's own task is a build of another task
    key = content_key("fp32-build", src.to_dict(), src.recipe.input_size, config.batch, target.name,
                      src.recipe.task, config.task, src.recipe.preprocess.to_dict(), __version__, "unfused")
    build_config = BuildConfig(target=target.name, precision="fp32", input_size=config.input_size, batch=config.batch,
                               checkpoint=config.checkpoint, task=config.task, latency_runs=0,
                               targets_dir=config.targets_dir, recipes_dir=config.recipes_dir, inputs=config.inputs,
                               fuse=False)

    def make(folder: Path) -> None:
        say("export the FP32 graph (build)")
        build(source, folder / "artifact", build_config, progress=say)

    return cache.folder_for(key, make, scratch) / "artifact"


def _precision_label(kind: str) -> str:
    return {"fp32": "fp32", "fp16": "fp16", "bf16": "bf16"}.get(kind, "int8")


def write_artifact(base: Path, model: Path, out: Path, target: Target, kind: str, decision: dict,
                   write_reports: Callable[[Path], None]) -> Manifest:
    """Write the artifact folder ``out`` (whole or not at all) around the graph ``model``.

    Args:
        base: the FP32 build folder of the same source.
        model: the chosen graph.
        kind: fp32, fp16, int8, dynamic or mixed: the manifest's precision follows from it.
        decision: what the manifest records under ``source.precision``.
        write_reports: writes report.json / report.md into the folder.
    """
    from edgekit.compile.stage import compile_into

    manifest = read_manifest(base)
    with atomic_dir(Path(out)) as folder:
        for path in base.iterdir():
            if path.is_file() and path.name not in _SKIP and path.name != manifest.model_file:
                shutil.copy2(path, folder / path.name)
        shutil.copyfile(model, folder / MODEL)
        session = {k: v for k, v in manifest.session.items() if k != "onnxruntime"}
        source = {**manifest.source, "precision": decision}
        manifest = manifest.evolve(precision=_precision_label(kind), model_file=MODEL, engine_file=None,
                                   session=session, source=source, files={})
        if not target.is_tensorrt:
            manifest = compile_into(folder, manifest, target)
        write_reports(folder)
        manifest = seal(folder, manifest)
    return manifest
