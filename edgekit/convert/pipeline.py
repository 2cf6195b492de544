"""`edgekit build`: every stage chained, each proving itself, into one artifact folder.

    source -> reparameterize -> export -> simplify -> precision -> compile -> manifest + report

The folder appears only when the build succeeded (edgekit.atomic). For a TensorRT target on a
machine without TensorRT the build stops after the precision stage with the deployable ONNX
and its manifest, and the report names the command that finishes it on the device.
"""
from __future__ import annotations

__all__ = ["BuildConfig", "BuildResult", "build"]

import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from edgekit.atomic import atomic_dir
from edgekit.convert.report import BuildReport, StageRecord
from edgekit.convert.source import Source, resolve_source
from edgekit.errors import ConfigError, EdgekitError
from edgekit.metrics import output_error
from edgekit.manifest import Manifest, TensorSpec, seal
from edgekit.targets import Target, load_target

PRECISIONS = ("fp32", "fp16", "int8")
DEFAULT_CALIB_SAMPLES = 64


@dataclass(frozen=True)
class BuildConfig:
    """Everything `edgekit build` needs besides the source and the output folder.

    Attributes:
        batch: fixed batch size of the exported model; None for a dynamic batch.
        calib: folder of images (or one large image, cut into ``calib_tile`` tiles) for int8.
        calib_method / calib_samples: calibration algorithm and how many images it uses (None:
            all of the set's images, at most ``DEFAULT_CALIB_SAMPLES``).
        val: held-out images that verify fp16 / int8 against fp32 (default: ``<calib>_val`` when
            that folder exists, else calibration images beyond ``calib_samples``).
        rtol: tolerated output difference of the exact stages, relative to the output's range.
        latency_runs: timed runs per stage for the latency column (0: skip).
    """

    target: str = "cpu"
    precision: str = "fp32"
    input_size: tuple[int, int] | None = None
    batch: int | None = 1
    checkpoint: Path | None = None
    calib: Path | None = None
    calib_method: str = "max"
    calib_samples: int | None = None
    calib_tile: int | None = None
    val: Path | None = None
    task: str = "classification"
    rtol: float = 1e-3
    opset: int = 18
    latency_runs: int = 5


@dataclass(frozen=True)
class BuildResult:
    folder: Path
    manifest: Manifest
    report: BuildReport
    complete: bool = True


Progress = Callable[[str], None]


OUTPUT_NAMES = {"segmentation": "logits", "detection": "output0"}  # output0: what YOLOv8 exports name it


def _check(config: BuildConfig) -> Target:
    if config.precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {config.precision!r}; choose one of {', '.join(PRECISIONS)}")
    if config.precision == "int8" and config.calib is None:
        raise ConfigError("--precision int8 needs a calibration set: --calib FOLDER (e.g. calib/bluemarble)")
    if config.calib is not None and not Path(config.calib).exists():
        raise ConfigError(f"calibration set {config.calib} does not exist")
    return load_target(config.target)


def _size_mb(path: Path) -> float:
    return Path(path).stat().st_size / 1e6


def build(source: str, out: Path, config: BuildConfig = BuildConfig(), progress: Progress | None = None) -> BuildResult:
    """Build ``source`` for ``config.target`` into the folder ``out`` (created whole or not at all)."""
    say = progress or (lambda _msg: None)
    target = _check(config)
    src = resolve_source(source, config.input_size, config.checkpoint, config.task)
    records: list[StageRecord] = []
    with atomic_dir(Path(out)) as folder:
        work = folder / ".work"
        work.mkdir()
        onnx_path, io = _torch_to_onnx(src, work, config, records, say)
        deploy = folder / "model.onnx"
        precision_info = _lower_precision(src, onnx_path, tuple(io["tile"]), deploy, target, config, records, say)
        shutil.rmtree(work)
        manifest = seal(folder, _manifest(src, target, config, deploy, io, precision_info))
        complete = not target.is_tensorrt or _tensorrt_available()
        next_step = "" if complete else f"edgekit compile {out}"
        if complete:
            manifest = _compile(folder, target, records, say)
        else:
            say(f"TensorRT is not installed here: stopped after the precision stage; finish on the device with `{next_step}`")
        report = BuildReport(source, target.name, config.precision, tuple(records),
                             status="complete" if complete else "deployable ONNX; engine not built here",
                             next_step=next_step, details={"source": src.to_dict()})
        report.write(folder)
        manifest = seal(folder, manifest)
    return BuildResult(Path(out), manifest, report, complete)


def _tensorrt_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("tensorrt") is not None


def _latency(fn: Callable[[], object], runs: int) -> float | None:
    if runs <= 0:
        return None
    fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * sorted(times)[len(times) // 2]


def _onnx_latency(path: Path, runs: int) -> float | None:
    """Median ms of ``path`` on ONNX Runtime, fed a random input shaped as the model declares it."""
    import numpy as np

    from edgekit.runtime.onnxrt import OnnxRuntimeRunner

    if runs <= 0:
        return None
    with OnnxRuntimeRunner(path) as runner:
        spec = runner.input_specs()[0]
        shape = [d if isinstance(d, int) and d > 0 else 1 for d in spec.shape]
        feed = {spec.name: np.random.default_rng(0).standard_normal(shape).astype(np.float32)}
        return _latency(lambda: runner.infer(feed), runs)


def _rel(error) -> str:
    return f"max rel {error.max_rel:.1e}"


def _torch_to_onnx(src: Source, work: Path, config: BuildConfig, records: list, say: Progress) -> tuple[Path, dict]:
    """Reparameterize, export and simplify; an ONNX source skips the first two."""
    from edgekit.convert.onnx_check import load_checked
    from edgekit.convert.simplify import simplify_onnx

    if src.kind == "onnx":
        load_checked(src.onnx_path)
        exported = src.onnx_path
    else:
        exported = _reparam_and_export(src, work, config, records, say)
    say("simplify")
    simple = simplify_onnx(exported, work / "simplified.onnx", rtol=config.rtol)
    records.append(StageRecord("simplify", simple.seconds, simple.nodes_after, None, _size_mb(simple.path),
                               _rel(simple.error), _onnx_latency(simple.path, config.latency_runs),
                               f"{simple.tool}: {simple.nodes_before} -> {simple.nodes_after} nodes"
                               + (f" ({simple.notes})" if simple.notes else "")))
    return simple.path, _io(simple.path)


def _reparam_and_export(src: Source, work: Path, config: BuildConfig, records: list, say: Progress) -> Path:
    import torch

    from edgekit.convert.export import ExportSpec, export_onnx
    from edgekit.convert.reparam import reparameterize

    say("load model")
    model = src.load_model()
    size = src.recipe.input_size
    sample = torch.randn(config.batch or 1, 3, *size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        base_ms = _latency(lambda: model(sample), config.latency_runs)
    params = sum(p.numel() for p in model.parameters())
    records.append(StageRecord("source", 0.0, None, params, 4 * params / 1e6, "", base_ms,
                               f"{src.kind} {src.name}, {size[0]}x{size[1]}, {src.recipe.task}"))
    say("reparameterize and fuse")
    rep = reparameterize(model, sample, rtol=config.rtol)
    r = rep.report
    with torch.no_grad():
        rep_ms = _latency(lambda: rep.model(sample), config.latency_runs)
    records.append(StageRecord("reparam", r.seconds, None, r.params_after, 4 * r.params_after / 1e6,
                               _rel(r.error), rep_ms,
                               f"{r.blocks_reparameterized} blocks reparameterized, {r.batchnorms_folded} Conv+BN folded; "
                               f"modules {r.modules_before} -> {r.modules_after}, BatchNorms {r.batchnorms_before} -> "
                               f"{r.batchnorms_after}, params {r.params_before:,} -> {r.params_after:,}"))
    say("export to ONNX")
    spec = ExportSpec(size, batch=config.batch, opset=config.opset,
                      output_name=OUTPUT_NAMES.get(src.recipe.task, "scores"), rtol=config.rtol)
    exp = export_onnx(rep.model, work / "exported.onnx", spec)
    records.append(StageRecord("export", exp.seconds, exp.nodes, None, _size_mb(exp.path), _rel(exp.error),
                               _onnx_latency(exp.path, config.latency_runs),
                               f"{exp.exporter} exporter, opset {config.opset if exp.exporter == 'dynamo' else 17}"))
    return exp.path


def _io(path: Path) -> dict:
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    elem = {1: "float32", 10: "float16", 7: "int64"}

    def spec(v):
        t = v.type.tensor_type
        return {"name": v.name, "shape": tuple(d.dim_value if d.dim_value > 0 else (d.dim_param or "batch") for d in t.shape.dim),
                "dtype": elem.get(t.elem_type, str(t.elem_type))}

    inputs, outputs = [spec(v) for v in graph.input], [spec(v) for v in graph.output]
    return {"inputs": inputs, "outputs": outputs, "tile": inputs[0]["shape"][2:4]}


def _lower_precision(src: Source, onnx_in: Path, size: tuple[int, int], deploy: Path, target: Target,
                     config: BuildConfig, records: list, say: Progress) -> dict:
    """The precision stage: fp32 keeps the simplified graph; fp16 / int8 rewrite it, verified on
    held-out images against the FP32 graph (a validation folder, or calibration images left over)."""
    if config.precision == "fp32":
        shutil.copyfile(onnx_in, deploy)
        return {"precision": "fp32"}
    from edgekit.convert.calibration import CalibrationSet
    from edgekit.convert.precision import PrecisionSpec, set_precision
    from edgekit.convert.verify_precision import require, verify_precision

    recipe = src.recipe
    batch = config.batch or 1
    if config.calib_tile and config.calib_tile not in size:
        raise ConfigError(f"calibration tiles are cut at the model's input size {size[0]}x{size[1]}; "
                          f"--calib-tile {config.calib_tile} does not match: drop it or use --input-size {config.calib_tile}")
    calib = CalibrationSet(config.calib, size, recipe.preprocess, batch=batch) if config.calib else None
    samples = config.calib_samples or (min(len(calib.order), DEFAULT_CALIB_SAMPLES) if calib else DEFAULT_CALIB_SAMPLES)
    spec = PrecisionSpec(config.precision, flavor=target.backend if target.is_tensorrt else "onnxruntime",
                         calib_method=config.calib_method, calib_samples=samples)
    say(f"precision {config.precision} ({spec.flavor})")
    result = set_precision(onnx_in, deploy, spec, calib)
    say("verify precision on held-out images")
    held = _held_out(config, calib, samples, size, recipe, batch)
    parity, check, note = "", None, ""
    if held is not None:
        masks = Path(held.source) / "masks" if held.source.is_dir() and (held.source / "masks").is_dir() else None

        def verify():
            if recipe.task == "detection":
                from edgekit.detect.verify import verify_detection

                return verify_detection(onnx_in, deploy, held, target.max_accuracy_drop)
            return verify_precision(onnx_in, deploy, held, recipe.task, target.max_accuracy_drop, False, masks)

        check = verify()
        if not check.passed and spec.flavor == "tensorrt" and spec.precision == "int8" and spec.high_precision == "fp16":
            # ModelOpt casts every unquantized layer to fp16 without range checks; some overflow.
            note = f"fp16 between Q/DQ lost {check.drop:.2f} points, so unquantized layers stay fp32; "
            say("fp16 between Q/DQ failed verification: retrying with fp32 there")
            spec = replace(spec, high_precision="fp32")
            result = set_precision(onnx_in, deploy, spec, calib)
            check = verify()
        if src.trained:
            require(check, deploy.name)
        metric = (f"mIoU {check.miou:.4f}" if check.miou is not None else
                  f"mAP@0.5 {check.agreement:.4f}" if recipe.task == "detection" else f"top-1 {check.agreement:.4f}")
        parity = f"agree {100 * check.agreement:.2f}%, {metric} vs fp32"
        if check.drop_basis == "ground truth":
            parity += f"; mIoU vs truth {100 * check.miou_truth:.2f} (fp32 {100 * check.miou_truth_reference:.2f})"
        if not src.trained:
            parity += " (random weights: not enforced)"
    else:
        import onnx

        from edgekit.convert.onnx_check import random_input, run_onnx

        feed = random_input(onnx.load(str(onnx_in), load_external_data=False))
        error = output_error(run_onnx(onnx_in, feed), run_onnx(deploy, feed))
        parity = f"{_rel(error)} (random input: no held-out images)"
    detail = (f"{note}{spec.flavor} flavor, {result.qdq_pairs} Q/DQ pairs, {result.fp16_nodes} fp16 nodes, "
              f"{result.calib_samples} calibration images ({spec.calib_method})"
              + (f", verified on {check.images} held-out images: drop {check.drop:.2f} points ({check.drop_basis}), "
                 f"tolerance {target.max_accuracy_drop}" if check else ""))
    records.append(StageRecord(
        f"precision {config.precision}", result.seconds, result.nodes_after, None, _size_mb(deploy), parity,
        _onnx_latency(deploy, config.latency_runs), detail))
    return {**result.to_dict(), "path": deploy.name, "check": check.to_dict() if check else None}


def _held_out(config: BuildConfig, calib, samples: int, size, recipe, batch: int):
    """Validation images: --val, else the calibration set's sibling ``<name>_val``, else leftovers."""
    from edgekit.convert.calibration import CalibrationSet

    val = config.val
    if val is None and config.calib is not None:
        sibling = Path(config.calib).with_name(Path(config.calib).name + "_val")
        val = sibling if sibling.is_dir() else None
    if val is not None:
        return CalibrationSet(val, size, recipe.preprocess, batch=batch, samples=None)
    if calib is not None:
        rest = calib.with_samples(samples).held_out()
        try:
            rest.items
        except EdgekitError:
            return None
        return rest
    return None


def _compile(folder: Path, target: Target, records: list, say: Progress) -> Manifest:
    from edgekit.compile.stage import compile_artifact
    from edgekit.manifest import read_manifest

    say(f"compile for {target.name}")
    start = time.perf_counter()
    compiled = compile_artifact(folder, target)
    manifest = read_manifest(compiled)
    engine = folder / manifest.engine_file if manifest.engine_file else folder / manifest.model_file
    check = manifest.session.get(manifest.backend, {}).get("verification", {})
    parity = ""
    if "max_abs_error" in check and check.get("output_max_abs"):
        parity = f"max rel {check['max_abs_error'] / check['output_max_abs']:.1e}"
    records.append(StageRecord(f"compile ({target.backend})", time.perf_counter() - start, None, None,
                               _size_mb(engine), parity, None, f"{manifest.engine_file or manifest.model_file}"))
    return manifest


def _manifest(src: Source, target: Target, config: BuildConfig, deploy: Path, io: dict, precision_info: dict) -> Manifest:
    import importlib.metadata as md

    def version(dist):
        try:
            return md.version(dist)
        except md.PackageNotFoundError:
            return None

    versions = {k: version(d) for k, d in (("onnx", "onnx"), ("onnxruntime", "onnxruntime-gpu"),
                                            ("torch", "torch"), ("timm", "timm"), ("modelopt", "nvidia-modelopt"))}
    recipe = src.recipe
    return Manifest(
        target=target.name,
        backend=target.backend,
        precision=config.precision,
        model_file=deploy.name,
        inputs=tuple(TensorSpec(**t) for t in io["inputs"]),
        outputs=tuple(TensorSpec(**t) for t in io["outputs"]),
        preprocess=recipe.preprocess,
        task=recipe.task,
        classes=recipe.classes,
        tile=tuple(io["tile"]),
        stride=recipe.stride,
        source=src.to_dict() | {"precision": precision_info},
        versions={k: v for k, v in versions.items() if v},
        session={"tensorrt": {"workspace_mb": target.workspace_mb, "dla_cores": target.dla_cores}} if target.is_tensorrt else {},
    )
