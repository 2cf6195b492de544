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
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from edgekit.artifact.layout import MODEL, compiled_files
from edgekit.artifact.manifest import PRECISIONS, Manifest, TensorSpec, seal
from edgekit.atomic import atomic_dir
from edgekit.convert.report import BuildReport, StageRecord
from edgekit.convert.source import Source, resolve_source
from edgekit.convert.precision_spec import SEVEN_BIT_WHY
from edgekit.errors import CalibrationError, ConfigError, ParityError
from edgekit.preprocess import InputOptions
from edgekit.targets import Target, load_target

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
        calib_memory: MB one calibration pass may hold (None: a quarter of the available memory).
        rtol: tolerated output difference of the exact stages, relative to the output's range.
        latency_runs: timed runs per stage for the latency column (0: skip).
        factory_args: ``NAME=VALUE`` arguments of a ``module:factory`` source (Python literals).
        trust_checkpoint: load checkpoints and model files holding pickled Python objects.
        output: the model output to deploy when it returns several (None: see convert.outputs).
        targets_dir / recipes_dir: a folder of the user's target profiles / recipes, searched before
            EDGEKIT_PATH and the package's own.
        inputs: the input declared on the command line (``--mean --std --channel-order --scale
            --bands``), over the recipe's ``input:`` and what the model says
            (:func:`~edgekit.convert.contract.input_preprocess`).
        verify: fp16 / int8 of a trained model must be checked on held-out images; False
            (``--no-verify``) builds it without them, marked unverified.
        task: ``--task`` (None: what the model or recipe says, else its output shapes:
            :mod:`edgekit.convert.task`).
        input_layout: ``--input-layout``: ``NCHW`` or ``NHWC``, the layout an ONNX source's input has
            (None: told by its shape; :mod:`edgekit.convert.onnx_source`).
        runtime: ``--runtime``: pin a cpu target's runtime (``onnxruntime``, ``openvino``); None: each
            of the target's runtimes measured on the verified graph, the faster kept
            (:mod:`edgekit.compile.choice`).
        dla_core: ``--dla-core``: the DLA core the engine runs on (GPU fallback for the rest), recorded
            in the manifest for ``edgekit compile``; None: the GPU only.
        fuse: ONNX Runtime's transformer fusions on the cpu target, kept when faster; False: the
            plain graph, which fp16 and int8 lowerings can start from (`edgekit optimize`'s base).
    """

    target: str = "cpu"
    precision: str = "fp32"
    input_size: tuple[int, int] | None = None
    batch: int | None = 1
    checkpoint: Path | None = None
    calib: Path | None = None
    calib_method: str = "max"
    calib_samples: int | None = None
    calib_memory: float | None = None
    calib_tile: int | None = None
    val: Path | None = None
    task: str | None = None
    factory_args: tuple[str, ...] = ()
    trust_checkpoint: bool = False
    output: str | None = None
    rtol: float = 1e-3
    opset: int = 18
    latency_runs: int = 5
    targets_dir: Path | None = None
    recipes_dir: Path | None = None
    inputs: InputOptions = InputOptions()
    verify: bool = True
    runtime: str | None = None
    input_layout: str | None = None
    dla_core: int | None = None
    fuse: bool = True


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
    target = load_target(config.target, config.targets_dir)
    from edgekit.compile.engine import check_dla_core

    check_dla_core(config.dla_core, target, config.precision)
    if config.runtime:
        target = target.with_runtime(config.runtime)
    if config.precision == "bf16":
        target = _bf16_target(target)
    if target.backend == "openvino":
        from edgekit.runtime.openvino_rt import import_openvino

        import_openvino()  # missing: a one-line error before any work
    return target


def _bf16_target(target: Target) -> Target:
    """The target pinned to OpenVINO, which alone computes bf16 on a CPU, where this CPU does it
    natively (AVX-512 BF16 or AMX: the build verifies bf16 by running it); else one line."""
    from edgekit.compile.choice import BF16_PIN
    from edgekit.machine import cpu_bf16, cpu_name
    from edgekit.runtime.open import BF16_ON_ORT

    if target.is_tensorrt:
        raise ConfigError(f"bf16 is a cpu precision (OpenVINO's); {target.name} takes --precision fp16 or int8")
    if target.pinned and target.backend != "openvino":
        raise ConfigError(BF16_ON_ORT)
    if not cpu_bf16():
        raise ConfigError(f"this CPU ({cpu_name()}) has neither AVX-512 BF16 nor AMX: bf16 would be emulated, slower "
                          "than fp32; build --precision fp32 or int8 here, or bf16 on a CPU that has them")
    return target.with_runtime("openvino", target.pinned or BF16_PIN)


def _size_mb(path: Path) -> float:
    return Path(path).stat().st_size / 1e6


def build(source: str, out: Path, config: BuildConfig = BuildConfig(), progress: Progress | None = None) -> BuildResult:
    """Build ``source`` for ``config.target`` into the folder ``out`` (created whole or not at all).

    Every file is written first (deployable ONNX, compiled file, report), then the folder is sealed, once.
    """
    say = progress or (lambda _msg: None)
    target = _check(config)
    src = resolve_source(source, config.input_size, config.checkpoint, config.task, config.factory_args,
                         config.trust_checkpoint, config.recipes_dir, inputs=config.inputs)
    records: list[StageRecord] = []
    with atomic_dir(Path(out)) as folder:
        work = folder / ".work"
        work.mkdir()
        details: dict = {"source": src.to_dict()} | _input_details(src)
        onnx_path, io, src = _torch_to_onnx(src, work, config, records, say, target, details)
        deploy = folder / MODEL
        precision_info = _lower_precision(src, onnx_path, tuple(io["tile"]), deploy, target, config, records, say)
        slower: dict[str, dict] = {}  # runtime -> its int8 graph slower than fp32 on it (int8_slower_note)
        if config.precision == "int8" and not target.is_tensorrt:
            _int8_verdict(records, records[-2].latency_ms, target.cpu_runtime, slower, say)
        graphs = _lower_for_runtimes(src, onnx_path, tuple(io["tile"]), folder, target, config, records, say, slower)
        if target.max_opset is not None:
            details["opset"] = _fit_opset(deploy, target, config, records, say)
        shutil.rmtree(work)
        manifest = _manifest(src, target, config, deploy, io, precision_info, details.get("output"),
                             details.get("task", {}).get("layout"))
        complete = not target.is_tensorrt or _tensorrt_available()
        next_step = "" if complete else target.next_step(out, config.precision, deploy.name, config.dla_core)
        if complete:
            manifest = _compile(folder, manifest, target, records, say, config, {r: g[0] for r, g in graphs.items()})
            if manifest.backend in graphs:  # the graph lowered for the kept runtime is the deployable ONNX
                manifest = manifest.evolve(source={**manifest.source, "precision": graphs[manifest.backend][1] | {"path": MODEL}})
            if manifest.backend in slower:  # the closing word: said of the kept runtime's graph only
                details["int8_slower"] = slower[manifest.backend]
            if "runtime_choice" in manifest.session:
                details["runtime"] = manifest.session["runtime_choice"]
        else:
            say(f"TensorRT is not installed here: stopped after the precision stage; finish on the device with `{next_step}`")
        report = BuildReport(source, target.name, config.precision, tuple(records),
                             status="complete" if complete else "deployable ONNX; engine not built here",
                             next_step=next_step, details=details)
        report.write(folder)
        manifest = seal(folder, manifest)
    return BuildResult(Path(out), manifest, report, complete)


def _lower_for_runtimes(src: Source, onnx_in: Path, size: tuple[int, int], folder: Path, target: Target,
                        config: BuildConfig, records: list, say: Progress, slower: dict) -> dict[str, tuple[str, dict]]:
    """int8 placed for each other runtime the compile stage measures (OpenVINO's: symmetric, on
    Conv/MatMul/Gemm; :mod:`edgekit.convert.precision`), verified on held-out images on that
    runtime, its record named after it: ``{runtime: (file, precision info)}``. A runtime not
    installed here, or whose lowering fails its check, is left out: the compile stage then times
    it on the first runtime's graph. Each graph is timed beside the FP32 graph on its runtime
    (:func:`_int8_verdict`, into ``slower``)."""
    from edgekit.artifact.layout import runtime_model
    from edgekit.runtime.openvino_rt import openvino_version

    if config.precision != "int8" or len(target.choices) < 2:
        return {}
    graphs = {}
    for runtime in target.choices[1:]:
        if runtime == "openvino" and openvino_version() is None:
            continue
        try:
            info = _lower_precision(src, onnx_in, size, folder / runtime_model(runtime),
                                    target.with_runtime(runtime), config, records, say)
        except ParityError as exc:
            say(f"int8 placed for {runtime} not kept: {exc}")
            continue
        record = records[-1]
        facts = record.facts
        if _said_before(record, records[:-1]):  # once per build (--no-verify)
            facts = {k: v for k, v in facts.items() if k != "warning"}
        records[-1] = replace(record, stage=f"{record.stage} ({runtime})", facts=facts)
        _int8_verdict(records, _onnx_latency(onnx_in, config.latency_runs, target.with_runtime(runtime)), runtime, slower)
        graphs[runtime] = (runtime_model(runtime), info)
    return graphs


def _said_before(record: StageRecord, earlier: list) -> bool:
    """Whether an earlier record's warning already says what ``record``'s does: the same line, or,
    for an unverified graph, another unverified one (they differ only by their random-input error)."""
    warning = record.facts.get("warning")
    unverified = record.metrics.get("verified") is False
    return bool(warning) and any(r.facts.get("warning") == warning
                                 or (unverified and r.facts.get("warning") and r.metrics.get("verified") is False)
                                 for r in earlier)


def _fit_opset(deploy: Path, target: Target, config: BuildConfig, records: list, say: Progress) -> dict:
    """The deployable graph at an opset the target's TensorRT line reads (:mod:`edgekit.convert.opset`)."""
    from edgekit.convert.opset import fit_opset

    say(f"opset for TensorRT {target.tensorrt} (reads up to {target.max_opset})")
    fit = fit_opset(deploy, target.max_opset, config.rtol)
    metrics = {"opset_before": fit.opset_before, "opset": fit.opset_after, "max_opset": fit.max_opset}
    if fit.max_rel is not None:
        metrics["max_rel"] = fit.max_rel
    records.append(StageRecord(stage="opset", seconds=fit.seconds, size_mb=_size_mb(deploy), metrics=metrics,
                               facts={"converted": f"{fit.opset_before} -> {fit.opset_after}" if fit.converted else "no"}))
    return fit.to_dict()


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


def _onnx_latency(path: Path, runs: int, target: Target, precision: str = "fp32") -> float | None:
    """Median ms of ``path`` on the cpu runtime that stands for ``target`` (OpenVINO for its targets,
    else ONNX Runtime) computing in ``precision``, fed a random input shaped as the model declares it."""
    import numpy as np

    from edgekit.runtime.open import cpu_runner

    if runs <= 0:
        return None
    with cpu_runner(path, target.threads, target.cpu_runtime, precision) as runner:
        spec = runner.input_specs()[0]
        shape = [d if isinstance(d, int) and d > 0 else 1 for d in spec.shape]
        feed = {spec.name: np.random.default_rng(0).standard_normal(shape).astype(np.float32)}
        return _latency(lambda: runner.infer(feed), runs)


def _errors(error) -> dict[str, float]:
    """An OutputError as report metrics."""
    return {"max_abs": float(error.max_abs), "max_rel": float(error.max_rel)}


def _torch_to_onnx(src: Source, work: Path, config: BuildConfig, records: list, say: Progress, target: Target,
                   details: dict) -> tuple[Path, dict, Source]:
    """Reparameterize, export and simplify; an ONNX source skips the first two. The source comes
    back with its task decided (:func:`_decide_task`)."""
    from edgekit.convert.context import context_of
    from edgekit.convert.onnx_check import load_checked
    from edgekit.convert.simplify import simplify_onnx

    if src.kind == "onnx":
        from edgekit.convert.onnx_source import prepare_onnx

        say("prepare ONNX")
        size = config.input_size or (tuple(src.recipe.input_size) if all(src.recipe.input_size) else None)
        channels = src.recipe.preprocess.channels if config.input_layout else None  # the layout said: pin them
        prep = prepare_onnx(src.onnx_path, work / "prepared.onnx", size, config.batch, config.precision,
                            config.input_layout, config.output, channels)
        load_checked(prep.path)
        records.append(StageRecord(stage="source", seconds=0.0, size_mb=_size_mb(prep.path),
                                   metrics={"opset_before": prep.opset_before, "opset_after": prep.opset_after},
                                   facts={"name": src.name, "onnx": prep.describe()}))
        details["onnx"] = prep.to_dict()
        exported = prep.path
    else:
        exported, src = _reparam_and_export(src, work, config, records, say, target, details)
    say("simplify")
    inputs = _graph_inputs(config, src, exported)
    found = _output_finding(exported, inputs, details)
    simple = simplify_onnx(exported, work / "simplified.onnx", inputs=inputs, task=src.recipe.task,
                           probabilities=found.probabilities)
    records.append(StageRecord(stage="simplify", seconds=simple.seconds, nodes=simple.nodes_after,
                               size_mb=_size_mb(simple.path),
                               latency_ms=_onnx_latency(simple.path, config.latency_runs, target),
                               metrics=_errors(simple.error) | {"nodes_before": simple.nodes_before,
                                                                "nodes_after": simple.nodes_after},
                               facts={"tool": simple.tool} | ({"notes": simple.notes} if simple.notes else {})
                               | ({"check": simple.check} if simple.check else {})))
    details["context"] = context_of(simple.path)  # whether it reads its whole input (global pooling, attention)
    path = _fuse(simple.path, work, config, records, say, target, details)
    io = _io(path)
    if src.kind == "onnx":  # its simplified graph's outputs, at the pinned input size
        src = _decide_task(src, config, io["outputs"], tuple(io["tile"]), details, probed=(path, inputs))
    return path, io, src


def _decide_task(src: Source, config: BuildConfig, outputs: list, input_hw: tuple, details: dict,
                 probed: tuple | None = None) -> Source:
    """The source with its task decided by the one rule (:mod:`edgekit.convert.task`), recorded in the
    report (and a detector's layout in the manifest); ``probed``, the graph and the build's inputs, is
    run where only the outputs' values tell the layout (anchor-free rows: yolox or yolov5)."""
    from edgekit.convert.task import outputs_probe, task_of

    decision = task_of(src, config.task, outputs, input_hw, probe=outputs_probe(*probed) if probed else None)
    details["task"] = decision.to_dict()
    return decision.applied(src)


def _fuse(path: Path, work: Path, config: BuildConfig, records: list, say: Progress, target: Target, details: dict) -> Path:
    """ORT's transformer fusions on the cpu target, for graphs with attention; kept when faster and equal.

    Not before fp16: the fused graph holds ONNX Runtime's contrib ops (com.microsoft), which ModelOpt's
    AutoCast treats as custom TensorRT layers and cannot sanitize without TensorRT.
    """
    import onnx

    from edgekit.convert.fuse import fuse_transformer, has_attention

    if target.backend != "onnxruntime" or not has_attention(onnx.load(str(path), load_external_data=False)):
        return path  # ONNX Runtime's own contrib ops: TensorRT and OpenVINO cannot read them
    if config.precision == "fp16":
        details["fuse"] = {"skipped": "fp16: AutoCast cannot take ONNX Runtime's contrib ops"}
        return path
    if not config.fuse:
        details["fuse"] = {"skipped": "not asked: the plain graph is the base of other precisions"}
        return path
    say("fuse transformer blocks (ONNX Runtime)")
    fused = fuse_transformer(path, work / "fused.onnx", rtol=config.rtol, threads=target.threads)
    details["fuse"] = fused.to_dict()
    ms = fused.latency_ms
    records.append(StageRecord(stage="fuse", seconds=fused.seconds,
                               nodes=fused.nodes_after if fused.kept else fused.nodes_before,
                               size_mb=_size_mb(fused.path), latency_ms=ms.get("fused" if fused.kept else "unfused"),
                               metrics=_errors(fused.error) | {"kept": fused.kept, "nodes_before": fused.nodes_before,
                                                       "nodes_after": fused.nodes_after, "unfused_ms": ms.get("unfused"),
                                                       "fused_ms": ms.get("fused")},
                               facts={"reason": fused.reason, "fused": str(fused.fused)}))
    return fused.path


def _reparam_and_export(src: Source, work: Path, config: BuildConfig, records: list, say: Progress, target: Target,
                        details: dict) -> tuple[Path, Source]:
    import torch

    from edgekit.convert.export import ExportSpec, export_onnx
    from edgekit.convert.outputs import select_output
    from edgekit.convert.reparam import reparameterize

    say("load model")
    model, fit = src.load()
    size = src.recipe.input_size
    channels = _model_channels(src, model)
    sample = torch.randn(config.batch or 1, channels, *size, generator=torch.Generator().manual_seed(0))
    model, output = select_output(model, sample, config.output)
    src = _decide_task(src, config, [(output.chosen, output.shape)], tuple(size), details)
    with torch.no_grad():
        base_ms = _latency(lambda: model(sample), config.latency_runs)
    params = sum(p.numel() for p in model.parameters())
    records.append(StageRecord(stage="source", seconds=0.0, params=params, size_mb=4 * params / 1e6, latency_ms=base_ms,
                               metrics={"params": params},
                               facts={"kind": src.kind, "name": src.name, "input": f"{size[0]}x{size[1]}",
                                      "task": src.recipe.task, "output": output.describe()}
                               | ({"checkpoint": fit.describe()} if fit else {})))
    details["output"] = output.to_dict()
    if fit:
        details["checkpoint"] = fit.to_dict()
    if src.transformable:
        say("reparameterize and fuse")
        rep = reparameterize(model, sample, rtol=config.rtol)
        r = rep.report
        model = rep.model
        with torch.no_grad():
            rep_ms = _latency(lambda: model(sample), config.latency_runs)
        counts = ("blocks_reparameterized", "batchnorms_folded", "modules_before", "modules_after", "batchnorms_before",
                  "batchnorms_after", "params_before", "params_after")
        records.append(StageRecord(stage="reparam", seconds=r.seconds, params=r.params_after,
                                   size_mb=4 * r.params_after / 1e6, latency_ms=rep_ms,
                                   metrics=_errors(r.error) | {k: getattr(r, k) for k in counts}))
    else:
        records.append(StageRecord(stage="reparam", seconds=0.0, facts={"skipped": f"a {src.kind} program is run as saved, "
                                                                     "not an nn.Module edgekit can transform"}))
    say("export to ONNX")
    spec = ExportSpec(size, batch=config.batch, opset=config.opset,
                      output_name=OUTPUT_NAMES.get(src.recipe.task, "scores"), rtol=config.rtol,
                      runtime=target.backend, threads=target.threads)
    exp = export_onnx(model, work / "exported.onnx", spec)
    details["export"] = exp.to_dict()
    records.append(StageRecord(stage="export", seconds=exp.seconds, nodes=exp.nodes, size_mb=_size_mb(exp.path),
                               latency_ms=_onnx_latency(exp.path, config.latency_runs, target),
                               metrics=_errors(exp.error) | {"opset": exp.opset},
                               facts={"exporter": exp.exporter, "choice": _export_note(exp)}))
    return exp.path, src


def _model_channels(src: Source, model) -> int:
    """The channels the input declares (one per mean/std value), checked against the model's
    first convolution where it has one: a one-line error, not a shape error from PyTorch."""
    import torch

    channels = src.recipe.preprocess.channels
    first = next((m for m in model.modules() if isinstance(m, torch.nn.Conv2d)), None)
    if first is not None:
        src.recipe.preprocess.check_channels(first.in_channels, f"{src.name} (its first convolution)")
    return channels


def _export_note(exp) -> str:
    tried = "; ".join(f"{c.exporter} " + (c.failure or f"{c.nodes} nodes" + (f", {c.latency_ms:.1f} ms" if c.latency_ms else ""))
                      for c in exp.candidates)
    return f"{exp.exporter} exporter, opset {exp.opset} ({exp.chosen_by}; {tried})"


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


def _input_details(src: Source) -> dict:
    """The report's ``input`` (the normalisation fed, each value with where it came from) and
    ``contract`` (what the model says about itself); the source resolved them from the options."""
    data = {"input": src.recipe.preprocess.to_dict()}
    return data | ({"contract": src.contract.to_dict()} if src.contract is not None else {})


def _lower_precision(src: Source, onnx_in: Path, size: tuple[int, int], deploy: Path, target: Target,
                     config: BuildConfig, records: list, say: Progress) -> dict:
    """The precision stage: fp32 keeps the simplified graph; fp16 / int8 are lowered, verified on
    held-out images against the FP32 graph and fallen back by the stage itself
    (:func:`~edgekit.convert.precision_policy.lower_precision`)."""
    if config.precision == "fp32":
        shutil.copyfile(onnx_in, deploy)
        return {"precision": "fp32"}
    from edgekit.convert.precision import PrecisionSpec
    from edgekit.convert.precision_policy import lower_precision
    from edgekit.images.image_set import CalibrationSet

    recipe = src.recipe
    batch = config.batch or 1
    if config.calib_tile and config.calib_tile not in size:
        raise ConfigError(f"calibration tiles are cut at the model's input size {size[0]}x{size[1]}; "
                          f"--calib-tile {config.calib_tile} does not match: drop it or use --input-size {config.calib_tile}")
    calib = CalibrationSet(config.calib, size, recipe.preprocess, batch=batch) if config.calib else None
    samples = _calib_samples(config, calib)
    # QuantizeLinear reads float16 from opset 19 only: a TensorRT line that parses less (8.5, 8.6:
    # 17) gets its unquantized layers in float32, and its builder's fp16 flag picks fp16 itself
    high = "fp32" if target.max_opset is not None and target.max_opset < 19 else "fp16"
    spec = PrecisionSpec(config.precision, flavor=target.backend,
                         calib_method=config.calib_method, calib_samples=samples, calib_memory_mb=config.calib_memory,
                         runtime=target.cpu_runtime, high_precision=high)
    say(f"precision {config.precision} ({'OpenVINO' if config.precision == 'bf16' else spec.flavor})")
    held = _held_out(config, calib, samples, size, recipe.preprocess, tuple(recipe.classes), batch)
    if held is None:
        _require_held_out(src, config, calib)
    lowered = lower_precision(onnx_in, deploy, spec, calib, held, recipe.task, target.max_accuracy_drop,
                              enforce=src.trained and config.verify, progress=say)
    result, check, spec = lowered.result, lowered.check, lowered.spec
    note = ""
    if lowered.fell_back:
        kept = lowered.attempts[lowered.kept]
        floats = f", {', '.join(kept.float_regions)} kept in float" if kept.float_regions else ""
        note = (f"{lowered.attempts[0].describe()} failed its check; kept {kept.describe()}{floats} "
                f"after {len(lowered.attempts)} attempts: {'; '.join(a.describe() for a in lowered.attempts)}")
    warning = "" if lowered.verified else _unverified_line(config, lowered.error, src.trained)
    if lowered.verified and not lowered.check.passed and src.trained:  # not enforced: --no-verify
        from edgekit.convert.verify_precision import failure_line

        warning = f"{failure_line(lowered.check, config.precision).split('; ')[0]}; kept as asked (--no-verify)"
    if warning:
        say(warning)
    records.append(_precision_record(result, spec, check, lowered.error, target, src.trained, note, _size_mb(deploy),
                                     _onnx_latency(deploy, config.latency_runs, target, config.precision), warning))
    if lowered.fell_back:
        record = records[-1]
        records[-1] = replace(record, metrics={**record.metrics, "attempts": len(lowered.attempts)},
                              facts={**record.facts, "stayed_float": ", ".join(lowered.stayed_float) or "nothing"})
    return {**lowered.to_dict(), "path": deploy.name}


def int8_slower_note(fp32_ms: float, int8_ms: float, runtime: str = "onnxruntime") -> dict | None:
    """When int8 is slower than fp32 on this CPU: both figures, the CPU, its VNNI flags, the runtime's version."""
    from edgekit.machine import cpu_name, cpu_vnni

    if int8_ms <= fp32_ms:
        return None
    if runtime == "openvino":
        from edgekit.runtime.openvino_rt import openvino_version

        name, version = "OpenVINO", openvino_version()
    else:
        import onnxruntime

        name, version = "ONNX Runtime", onnxruntime.__version__
    vnni = cpu_vnni()
    cpu = f"{cpu_name()}, {'VNNI: ' + ' '.join(vnni) if vnni else 'no VNNI'}"
    message = (f"int8 is slower than fp32 on this CPU: {int8_ms:.1f} ms vs {fp32_ms:.1f} ms "
               f"({fp32_ms / int8_ms:.2f}x) on {cpu}, {name} {version}; `--precision fp32` builds the faster "
               "artifact here (`edgekit optimize` chooses by measurement)")
    return {"fp32_ms": fp32_ms, "int8_ms": int8_ms, "cpu": cpu_name(), "vnni": list(vnni),
            "runtime": runtime, "runtime_version": version, "message": message}


def _int8_verdict(records: list, fp32_ms: float | None, runtime: str, slower: dict,
                  say: Progress | None = None) -> None:
    """The last record's int8 graph against the FP32 graph on ``runtime`` (``fp32_ms``): when slower,
    the note goes into the record's facts and ``slower[runtime]``, and to ``say`` when given."""
    int8_ms = records[-1].latency_ms
    note = None if fp32_ms is None or int8_ms is None else int8_slower_note(fp32_ms, int8_ms, runtime)
    if note:
        slower[runtime] = note
        records[-1] = replace(records[-1], facts={**records[-1].facts, "int8_slower": note["message"]})
        if say:
            say(note["message"])


def _precision_record(result, spec, check, error, target: Target, trained: bool, note: str, size_mb: float,
                      latency_ms: float | None, warning: str = "") -> StageRecord:
    """The precision stage's record: its counts, and its proof on held-out images; without them it
    is marked unverified (``verified`` False, the random-input error its only figure) and carries
    the ``warning`` line the command line prints."""
    metrics = {"nodes_before": result.nodes_before, "nodes_after": result.nodes_after, "qdq_pairs": result.qdq_pairs,
               "fp16_nodes": result.fp16_nodes, "calib_images": result.calib_samples, "calib_passes": result.calib_groups}
    facts = {"flavor": spec.flavor, "calib_method": spec.calib_method, "high_precision": spec.high_precision}
    if spec.precision == "int8" and spec.weight_bits == 7:
        facts["weights"] = SEVEN_BIT_WHY
    if note:
        facts["fallback"] = note
    if warning:
        facts["warning"] = warning
    metrics["verified"] = check is not None
    if check is not None:
        metrics |= {"images": check.images, "agreement": check.agreement, "miou": check.miou,
                    "top1": check.agreement if check.miou is None else None, "drop": check.drop,
                    "tolerance": target.max_accuracy_drop, "enforced": trained,
                    "miou_truth": check.miou_truth, "miou_truth_fp32": check.miou_truth_reference,
                    **_errors(check.error)}
        facts["drop_basis"] = check.drop_basis
    else:
        metrics |= _errors(error)
        facts["basis"] = "unverified: no held-out images; error on one random input"
    return StageRecord(stage=f"precision {spec.precision}", seconds=result.seconds, nodes=result.nodes_after,
                       size_mb=size_mb, latency_ms=latency_ms, metrics=metrics, facts=facts)


def _calib_samples(config: BuildConfig, calib) -> int:
    """Calibration images used: --calib-samples, else all of the set's, at most DEFAULT_CALIB_SAMPLES."""
    return config.calib_samples or (min(len(calib.order), DEFAULT_CALIB_SAMPLES) if calib else DEFAULT_CALIB_SAMPLES)


def _val_folder(config: BuildConfig) -> Path | None:
    """--val, else the calibration set's sibling ``<name>_val`` when it exists."""
    if config.val is not None or config.calib is None:
        return config.val
    sibling = Path(config.calib).with_name(Path(config.calib).name + "_val")
    return sibling if sibling.is_dir() else None


def _held_out(config: BuildConfig, calib, samples: int, size, preprocess, classes: tuple[str, ...], batch: int):
    """Validation images (with ``masks/`` when they have them): --val, else the calibration set's
    sibling ``<name>_val``, else calibration images left over; None when there are none (the
    caller stops or says so: :func:`_require_held_out`)."""
    from edgekit.images.held_out import HeldOutSet
    from edgekit.images.image_set import CalibrationSet

    val = _val_folder(config)
    if val is not None:
        return HeldOutSet.beside(CalibrationSet(val, size, preprocess, batch=batch, samples=None), classes=classes)
    if calib is not None:
        rest = calib.with_samples(samples).held_out()
        try:
            rest.items
        except CalibrationError:  # none left after calibration (or not a batch's worth)
            return None
        return HeldOutSet(rest)
    return None


def _require_held_out(src: Source, config: BuildConfig, calib) -> None:
    """Stop a trained model's fp16 / int8 that nothing would check, unless --no-verify; a model
    with random weights goes on (its accuracy means nothing), and both are marked unverified."""
    if not src.trained or not config.verify:
        return
    if calib is not None:  # a calibration set the pixel path refuses is the first thing to fix
        calib.model_input(calib.order[0])
        why = (f"the {len(calib.order)} images of {config.calib} all calibrate and there is no "
               f"{Path(config.calib).name}_val beside it")
    else:
        why = "no --val or --calib images were given"
    raise ConfigError(f"{config.precision} of a trained model is checked on held-out images and there are none: {why}; "
                      f"pass --val FOLDER (images calibration never sees), more than {DEFAULT_CALIB_SAMPLES} "
                      "calibration images, or --no-verify to build it unverified")


def _unverified_line(config: BuildConfig, error, trained: bool) -> str:
    """The one line an unverified lowering prints."""
    why = " (--no-verify)" if trained else " (random weights: no accuracy to hold)"
    figure = f" (max rel error {error.max_rel:.1e} on one random input)" if error is not None else ""
    return (f"{config.precision} is unverified{why}: no held-out images checked it{figure}; "
            "pass --val FOLDER to check it")


def _compile(folder: Path, manifest: Manifest, target: Target, records: list, say: Progress,
             config: BuildConfig = BuildConfig(), graphs: dict[str, str] | None = None) -> Manifest:
    """Compile in the folder being written (sealed once, by the build, afterwards), checked on the
    build's images (:func:`_check_inputs`); a fallback's warning becomes the record's one line."""
    import warnings

    from edgekit.compile.stage import CompileWarning, compile_into

    say(f"compile for {target.name}")
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CompileWarning)
        compiled = compile_into(folder, manifest, target, inputs=_check_inputs(config, manifest), graphs=graphs)
    said = [str(w.message) for w in caught if issubclass(w.category, CompileWarning)]
    for w in caught:
        if not issubclass(w.category, CompileWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    session = compiled.session.get(compiled.backend, {})
    check = session.get("verification", {})
    metrics, facts = {}, {"file": compiled.engine_file or compiled.model_file}
    if "max_abs_error" in check:
        scale = check.get("output_max_abs")
        metrics = {"max_abs": check["max_abs_error"], "output_max_abs": scale, "limit": check.get("limit"),
                   "max_rel": check["max_abs_error"] / scale if scale else None,
                   "label_agreement": check.get("agreement"), "holds": check.get("holds")}
        level = f", plan level {session['plan_optimization']}" if "plan_optimization" in session else ""
        budget = f" {check['limit'] / scale:.1e}" if check.get("limit") is not None and scale else ""
        facts["basis"] = f"{check.get('input')}, {compiled.precision} {check.get('kind')} budget{budget}{level}"
    if said:
        facts["warning"] = "; ".join(said)
    choice = compiled.session.get("runtime_choice", {})
    metrics |= {f"{runtime}_ms": ms for runtime, ms in choice.get("ms", {}).items()}
    if choice:
        from edgekit.convert.report import runtime_text

        facts["runtime"] = runtime_text(choice)
        say(facts["runtime"])
    size = sum(_size_mb(folder / f) for f in compiled_files(facts["file"]))
    records.append(StageRecord(stage=f"compile ({compiled.backend})", seconds=time.perf_counter() - start, size_mb=size,
                               latency_ms=choice.get("ms", {}).get(compiled.backend), metrics=metrics, facts=facts))
    return compiled


def _check_inputs(config: BuildConfig, manifest: Manifest):
    """Real images for the compile stage's check (:func:`_image_inputs`)."""
    first = manifest.inputs[0].shape[0]
    batch = first if isinstance(first, int) and first > 0 else 1
    return _image_inputs(config, tuple(manifest.tile), manifest.preprocess, manifest.classes, batch)


def _graph_inputs(config: BuildConfig, src: Source, path: Path):
    """Real images for the exact stages' checks (simplify) and the output's finding, at the input
    of the graph ``path`` (:func:`_image_inputs`)."""
    shape = _io(path)["inputs"][0]["shape"]
    batch = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else 1
    return _image_inputs(config, tuple(shape[2:4]), src.recipe.preprocess, tuple(src.recipe.classes), batch)


def _output_finding(path: Path, inputs, details: dict):
    """What the deployed output holds, decided once for every source kind
    (:func:`~edgekit.convert.outputs.output_finding`) and recorded in the report's ``output``, which
    the manifest's ``output`` is made from: `infer`, `run` and `compare` apply no second sigmoid or softmax."""
    import onnx

    from edgekit.convert.onnx_check import random_input
    from edgekit.convert.outputs import output_finding
    from edgekit.convert.simplify import RANDOM
    from edgekit.runtime.open import cpu_runner

    model = onnx.load(str(path))
    batches = list(inputs.batches) if inputs is not None else [random_input(model)]
    with cpu_runner(path) as runner:
        name, first = runner.input_specs()[0].name, runner.output_specs()[0].name
        values = [runner.infer({name: b})[first] for b in batches]
    found = output_finding(model, values, inputs.source if inputs is not None else RANDOM, inputs is not None)
    kind = {"probabilities": found.probabilities, "probabilities_basis": found.basis}
    details["output"] = details["output"] | kind if "output" in details else found.to_dict()
    return found


def _image_inputs(config: BuildConfig, tile: tuple, preprocess, classes: tuple, batch: int):
    """The build's real images as a model takes them: the precision stage's held-out images, else
    calibration images, at most ``MAX_IMAGES``; None without either (a random input then)."""
    from edgekit.compile.check import MAX_IMAGES, CheckInputs
    from edgekit.images.image_set import CalibrationSet

    if config.calib is None and _val_folder(config) is None:
        return None
    calib = CalibrationSet(config.calib, tile, preprocess, batch=batch) if config.calib else None
    held = _held_out(config, calib, _calib_samples(config, calib), tile, preprocess, classes, batch)
    images, kind = (held.images, "held-out") if held is not None else (calib, "calibration")
    try:
        count = max(batch, min(MAX_IMAGES, len(images.items)) // batch * batch)
        used = images.with_samples(count)
        return CheckInputs(tuple(used.batches()), f"{len(used.items)} {kind} images")
    except CalibrationError:  # fewer than a batch: the random input
        return None


def _manifest(src: Source, target: Target, config: BuildConfig, deploy: Path, io: dict, precision_info: dict,
              output: dict | None = None, layout: str | None = None) -> Manifest:
    import importlib.metadata as md

    from edgekit.runtime.decode import FORMATS

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
        session={"tensorrt": {"workspace_mb": target.workspace_mb, "dla_cores": target.dla_cores,
                              "dla": config.dla_core is not None, "dla_core": config.dla_core,
                              # `edgekit compress --sparsity 2:4` weights: TensorRT's sparse tensor-core kernels
                              "sparse_weights": recipe.model.get("sparsity") == "2:4"}} if target.is_tensorrt else {},
        output=({k: output[k] for k in ("stride", "probabilities") if k in output} if output else {})
        | ({"det_format": layout} if layout in FORMATS else {}),  # decided once: infer and run read it
        opset=_deployable_opset(deploy),
    )


def _deployable_opset(deploy: Path) -> int:
    import onnx

    from edgekit.convert.opset import graph_opset

    return graph_opset(onnx.load(str(deploy), load_external_data=False))
