"""The compile stage: an artifact folder or bundle -> an artifact its device can run fast.

- ``cpu`` targets (backend ``onnxruntime``): an ONNX Runtime plan, ``model.ort.onnx``, saved at a
  portable optimisation level, plus the session settings the runner applies.
- ``cpu`` targets on OpenVINO (``cpu-openvino``): its IR, ``model.xml`` + ``model.bin``, converted
  from the deployable ONNX with FP32 weights kept FP32, and the CPU plugin's settings (precision
  held to the artifact's: ``INFERENCE_PRECISION_HINT`` f32, bf16 for a bf16 artifact).
- ``cpu`` targets listing several runtimes (``cpu``: ONNX Runtime and OpenVINO): each one's file,
  the faster here kept (:mod:`edgekit.compile.choice`), unless the build pinned one (``--runtime``).
- TensorRT targets: ``model.engine``, built here with this device's TensorRT (engines are not
  portable), after checking that this device is the one the bundle was made for.

Each ends by running the compiled file and the deployable ONNX on the same inputs (the build's
held-out images, else a random input) and holding every output to the budget of its precision
and kind (:mod:`edgekit.compile.check`); the figures go to the manifest. An ONNX Runtime plan that
does not hold is saved again at the next lower level (``extended``, ``basic``, ``none``) and the
stage says so in one warning; no level holding is an error. :func:`compile_artifact` compiles a
sealed folder or a bundle into a new sealed folder; :func:`compile_into` compiles inside a folder
being written (the build's), which its writer seals once.
"""
from __future__ import annotations

__all__ = ["CompileSettings", "CompileWarning", "compile_artifact", "compile_into", "engine_settings"]

import os
import shutil
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from edgekit import __version__
from edgekit.atomic import atomic_dir
from edgekit.artifact.bundle import is_bundle, open_bundle
from edgekit.artifact.compat import check_device, needs_of_target
from edgekit.artifact.folder import Artifact, load_artifact
from edgekit.artifact.layout import COMPILED, ENGINE, ENGINE_CACHE, ORT_PLAN, OV_IR, compiled_files
from edgekit.artifact.manifest import Manifest, TensorSpec, seal
from edgekit.compile.check import CheckInputs, PlanCheck, Reference
from edgekit.compile.choice import BF16_PIN, CHOICE_KEY, Candidate, RuntimeChoice, choose_runtime, pinned_choice
from edgekit.errors import ArtifactError, BackendUnavailableError, ConfigError, ParityError
from edgekit.targets import Target, load_target

# plan level (--optimization) -> (ONNX Runtime level baked into the saved plan, level the runner
# loads it at), highest first: the order the stage falls back in. "extended" is loaded at "all",
# whose layouts are tied to the CPU and so applied at load time, not saved; a lower level is
# loaded at itself, or loading would redo the fusions that changed the results.
ORT_LEVELS = {"extended": ("extended", "all"), "basic": ("basic", "basic"), "none": ("disable", "disable")}


class CompileWarning(UserWarning):
    """This device differs from the target in a way that does not stop the build."""


@dataclass(frozen=True)
class CompileSettings:
    """Options of ``edgekit compile``; None means the manifest's request, else the target's value.

    Attributes:
        workspace_mb: TensorRT builder workspace.
        dla: build for a DLA core with GPU fallback (False: the GPU only, whatever the build asked).
        dla_core: which DLA core (setting it asks for DLA); None: the build's, else 0.
        timing_cache: TensorRT tactic timing cache, read and updated; None: the artifact's own, one
            per TensorRT version and GPU (``.tensorrt/timing-*.cache``).
        use_timing_cache: False builds without a timing cache.
        cuda_graph: the runner replays CUDA graphs of the engine (recorded in the manifest).
        rebuild: build the engine even when the artifact's engine cache holds it.
        threads: ONNX Runtime intra-op threads (0: one per physical core).
        optimization: the highest ONNX Runtime level tried for the saved plan (``extended``,
            ``basic`` or ``none``); a level whose plan leaves its budget falls back to the next.
        seed: seed of the random verification input (used without the build's images).
        targets_dir: a folder of the user's target profiles, searched before EDGEKIT_PATH and the package's.
        runtime: pin a cpu target's runtime (``onnxruntime``, ``openvino``); None: the one the build
            pinned, else each of the target's runtimes measured here and the faster kept.
        choice_runs: timed runs per runtime when they are measured.
    """

    workspace_mb: int | None = None
    dla: bool | None = None
    dla_core: int | None = None
    timing_cache: Path | None = None
    use_timing_cache: bool = True
    cuda_graph: bool | None = None
    rebuild: bool = False
    threads: int | None = None
    optimization: str = "extended"
    seed: int = 0
    targets_dir: Path | None = None
    runtime: str | None = None
    choice_runs: int = 10


def compile_artifact(folder: Path | str, target: str | Target | None = None, out: Path | str | None = None,
                     settings: CompileSettings | None = None) -> Path:
    """Compile an artifact folder or bundle for this device.

    Args:
        folder: an artifact folder (output of ``edgekit build``) or a bundle from ``edgekit package``.
        target: the target to compile for; defaults to the manifest's, and must equal it.
        out: the compiled artifact folder; defaults to ``folder`` itself (replaced whole), or for a
            bundle to its name without ``.tar.gz``.
        settings: workspace, DLA, timing cache and ONNX Runtime options.

    Returns:
        The compiled artifact folder (manifest with ``engine_file`` set, re-sealed).
    """
    settings = settings or CompileSettings()
    source = Path(folder)
    if is_bundle(source):
        dest = Path(out) if out else source.with_name(source.name.split(".tar")[0].removesuffix(".tgz"))
        with open_bundle(source) as artifact:
            return _compile(artifact, target, dest, settings, source)
    return _compile(load_artifact(source), target, Path(out) if out else source, settings, source)


def _compile(artifact: Artifact, target_name: str | Target | None, out: Path, settings: CompileSettings, source: Path) -> Path:
    target = _resolve_target(artifact.manifest, target_name, settings.targets_dir, settings.runtime)
    if target.is_tensorrt:
        _require_tensorrt(source)
    with atomic_dir(out) as work:
        _copy_sources(artifact, work)
        if target.is_tensorrt:  # engines built before here: the same key builds nothing
            from edgekit.compile.engine_cache import carry_cache

            carry_cache((out, artifact.folder), work)
        seal(work, compile_into(work, artifact.manifest, target, settings))
    return out


def compile_into(work: Path, manifest: Manifest, target: Target, settings: CompileSettings | None = None,
                 inputs: CheckInputs | None = None, graphs: dict[str, str] | None = None) -> Manifest:
    """Compile the deployable ONNX of a folder being written, beside it; the folder is not sealed.

    Args:
        work: the folder, holding ``manifest.model_file``.
        manifest: its manifest, not necessarily written yet.
        inputs: images to verify the compiled file on (the build's); None: a seeded random input.
        graphs: runtime -> a deployable ONNX in ``work`` lowered for that runtime (the build's int8
            placed for OpenVINO); the kept runtime's becomes ``manifest.model_file``.

    Returns:
        The manifest with ``engine_file``, the session settings and the verification; warnings
        (:class:`CompileWarning`) are raised as warnings and recorded there too. A cpu target with
        several runtimes keeps the faster one's file, its record under ``session["runtime_choice"]``.
    """
    settings = settings or CompileSettings()
    cpu = {k: v for k, v in manifest.session.items() if k not in ("onnxruntime", "openvino", CHOICE_KEY)}
    manifest = manifest.evolve(session=cpu) if not target.is_tensorrt else manifest
    if manifest.precision == "bf16" and not target.is_tensorrt:  # OpenVINO's alone: ONNX Runtime has no bf16 CPU kernels
        if target.pinned and target.backend != "openvino":
            from edgekit.runtime.open import BF16_ON_ORT

            raise ConfigError(BF16_ON_ORT)
        target = target.with_runtime("openvino", target.pinned or BF16_PIN)
    if len(target.choices) > 1:
        return _compile_chosen(work, manifest, target, settings, inputs, graphs or {})
    compiled, caught = _compile_on(target.backend, work, manifest, target, settings, inputs)
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if target.pinned:
        compiled = _with_choice(compiled, pinned_choice(target.backend, target.pinned))
    return compiled


def _compile_on(backend: str, work: Path, manifest: Manifest, target: Target, settings: CompileSettings,
                inputs: CheckInputs | None) -> tuple[Manifest, list]:
    """Compile for one backend; its warnings are returned (to be raised by the caller), and
    recorded in its session entry."""
    compile_one = {"tensorrt": _compile_tensorrt, "openvino": _compile_openvino}.get(backend, _compile_onnxruntime)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CompileWarning)
        compiled = compile_one(work, manifest.evolve(backend=backend), target, settings, inputs)
    notes = [str(w.message) for w in caught if issubclass(w.category, CompileWarning)]
    if notes:
        session = dict(compiled.session)
        session[compiled.backend] = {**session[compiled.backend], "warnings": notes}
        compiled = compiled.evolve(session=session)
    return compiled, list(caught)


def _compile_chosen(work: Path, manifest: Manifest, target: Target, settings: CompileSettings,
                    inputs: CheckInputs | None, graphs: dict[str, str]) -> Manifest:
    """Every runtime of the target compiled (from its own graph where ``graphs`` has one) and
    verified, the usable ones timed in turns, the fastest kept (:mod:`edgekit.compile.choice`); the
    others' files are removed. Nothing usable: the first runtime's error."""
    candidates, errors, caught = [], [], {}
    for runtime in target.choices:
        own = manifest.evolve(model_file=graphs.get(runtime, manifest.model_file))
        # a graph placed for this runtime was verified on it: its compiled file is checked against it there
        on = target.with_runtime(runtime, "its own graph") if runtime in graphs else target
        try:
            compiled, caught[runtime] = _compile_on(runtime, work, own, on, settings, inputs)
        except (ArtifactError, BackendUnavailableError, ParityError) as exc:  # not installed, cannot read, off budget
            errors.append(exc)
            candidates.append(Candidate(runtime, reason=str(exc)))
            continue
        candidates.append(Candidate(runtime, compiled))
    if not any(c.manifest is not None for c in candidates):
        raise errors[0]
    feeds, source = _feeds(manifest, 1, settings, inputs)
    threads = target.threads if settings.threads is None else settings.threads
    choice = choose_runtime(work, candidates, feeds[0], f"the first batch of {source}" if len(feeds) > 1 else source,
                            settings.choice_runs, threads)
    kept = next(c.manifest for c in candidates if c.runtime == choice.kept)
    for name in set(COMPILED) - set(compiled_files(kept.engine_file)):  # also what a runtime left failing its check
        (work / name).unlink(missing_ok=True)
    for runtime, name in graphs.items():
        if runtime != choice.kept:
            (work / name).unlink(missing_ok=True)
    for w in caught[choice.kept]:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if kept.model_file != manifest.model_file:  # its own graph becomes the deployable ONNX
        os.replace(work / kept.model_file, work / manifest.model_file)
        kept = kept.evolve(model_file=manifest.model_file)
    return _with_choice(kept, choice)


def _with_choice(m: Manifest, choice: RuntimeChoice) -> Manifest:
    return m.evolve(session={**m.session, CHOICE_KEY: choice.to_dict()})


def _resolve_target(manifest: Manifest, name: str | Target | None, folder: Path | None = None,
                    runtime: str | None = None) -> Target:
    """The target to compile for: the manifest's, pinned to ``runtime`` or to the runtime the build
    pinned (``--runtime``)."""
    target = name if isinstance(name, Target) else load_target(name or manifest.target, folder)
    if target.name != manifest.target:
        raise ArtifactError(
            f"this artifact was built for {manifest.target}, not {target.name}: build one for {target.name} "
            f"on the workstation (`edgekit build RECIPE --target {target.name}`)"
        )
    recorded = manifest.session.get(CHOICE_KEY, {})
    if runtime and not target.is_tensorrt:
        target = target.with_runtime(runtime)
    elif recorded.get("pinned") and not target.is_tensorrt:
        target = target.with_runtime(manifest.backend, recorded.get("note") or "--runtime")
    elif manifest.backend not in target.choices:
        raise ArtifactError(f"target {target.name} uses {', '.join(target.choices)}, the manifest says {manifest.backend}")
    return target


def _require_tensorrt(source: Path) -> None:
    from edgekit.runtime.trt import tensorrt_version

    if tensorrt_version() is not None:
        return
    if is_bundle(source):
        raise BackendUnavailableError(
            f"TensorRT is not installed here: run `edgekit compile {source.name} -o DIR` on the device "
            "(JetPack ships TensorRT; the container of Dockerfile.jetson has it, see docs/jetson.md)"
        )
    raise BackendUnavailableError(
        f"TensorRT is not installed here, so {source} keeps its deployable ONNX and manifest; finish on the "
        f"device: `edgekit package {source} -o model.tar.gz`, copy it there, and run `edgekit compile "
        "model.tar.gz -o DIR` (in the container of Dockerfile.jetson, see docs/jetson.md)"
    )


def _copy_sources(artifact: Artifact, work: Path) -> None:
    """Everything of the source folder but its old compiled file and hidden files."""
    old = {artifact.manifest.engine_file, *COMPILED}
    for path in sorted(artifact.folder.rglob("*")):
        rel = path.relative_to(artifact.folder)
        if path.is_file() and rel.as_posix() not in old and not any(p.startswith(".") for p in rel.parts):
            (work / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, work / rel)


def _feed(specs: tuple[TensorSpec, ...], batch: int, tile: tuple[int, int], seed: int) -> dict[str, np.ndarray]:
    """A random input for every model input, dynamic axes given the batch and tile size."""
    rng = np.random.default_rng(seed)
    feed = {}
    for spec in specs:
        fill = (batch, None, *tile)
        shape = [d if isinstance(d, int) and d > 0 else (fill[i] if i < len(fill) and fill[i] else 1)
                 for i, d in enumerate(spec.shape)]
        feed[spec.name] = rng.standard_normal(shape).astype(spec.dtype)
    return feed


def _feeds(m: Manifest, batch: int, settings: CompileSettings, inputs: CheckInputs | None) -> tuple[list[dict], str]:
    """What the check runs on: the build's images (a one-input model), else one seeded random input."""
    if inputs is not None and inputs.batches and len(m.inputs) == 1:
        return [{m.inputs[0].name: b} for b in inputs.batches], inputs.source
    return [_feed(m.inputs, batch, m.tile, settings.seed)], f"standard normal, seed {settings.seed}"


def _reference(m: Manifest, run, feeds: list[dict], source: str) -> Reference:
    """The deployable graph's outputs, which each compiled file is held to (:mod:`edgekit.compile.check`)."""
    return Reference(feeds, run, m.precision, m.task, bool(m.output.get("probabilities")), source)


def _graph_runner(path: Path, threads: int = 0):
    """The deployable ONNX run as written (no graph optimisation): Q/DQ pairs simulated in float."""
    from edgekit.runtime.onnxrt import OnnxRuntimeRunner, SessionSettings

    return OnnxRuntimeRunner(path, SessionSettings(threads, "disable"))


# --- cpu: ONNX Runtime plan ---------------------------------------------------------------


def _compile_onnxruntime(work: Path, m: Manifest, target: Target, settings: CompileSettings,
                         inputs: CheckInputs | None = None) -> Manifest:
    from edgekit.runtime.onnxrt import import_ort

    if settings.optimization not in ORT_LEVELS:
        raise ConfigError(f"ONNX Runtime plan level {settings.optimization!r}; choose one of {', '.join(ORT_LEVELS)}")
    if m.precision == "bf16":
        from edgekit.runtime.open import BF16_ON_ORT

        raise ConfigError(BF16_ON_ORT)
    ort = import_ort()
    threads = target.threads if settings.threads is None else settings.threads
    feeds, source = _feeds(m, 1, settings, inputs)
    with _graph_runner(work / m.model_file, threads) as graph:
        reference = _reference(m, graph.infer, feeds, source)
    levels = list(ORT_LEVELS)[list(ORT_LEVELS).index(settings.optimization):]
    left: dict[str, PlanCheck] = {}
    for level in levels:
        check = _ort_plan(ort, work / m.model_file, work / ORT_PLAN, level, threads, reference)
        if check.holds:
            break
        left[level] = check
    else:
        (work / ORT_PLAN).unlink(missing_ok=True)
        raise ParityError(_no_level_holds(m, left, ort.__version__))
    if left:
        warnings.warn(_fell_back(m, left, level, check), CompileWarning, stacklevel=2)
    session = dict(m.session)
    session["onnxruntime"] = {
        "threads": threads, "optimization": ORT_LEVELS[level][1], "providers": ["CPUExecutionProvider"],
        "plan_optimization": level,
        "verification": check.to_dict() | {"levels": {lvl: c.summary() for lvl, c in left.items()}},
    }
    versions = {**m.versions, "onnxruntime": ort.__version__, "edgekit_compile": __version__}
    return m.evolve(engine_file=ORT_PLAN, session=session, versions=versions)


def _ort_plan(ort, model: Path, plan: Path, level: str, threads: int, reference: Reference) -> PlanCheck:
    """Save ``model``'s plan at ``level`` to ``plan`` and hold it, loaded as the runner will, to its budget."""
    from edgekit.runtime.onnxrt import OnnxRuntimeRunner, SessionSettings, session_options

    baked, loaded = ORT_LEVELS[level]
    opts = session_options(SessionSettings(threads, baked))
    opts.optimized_model_filepath = str(plan)
    ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
    with OnnxRuntimeRunner(plan, SessionSettings(threads, loaded, ("CPUExecutionProvider",))) as runner:
        return reference.compare(runner.infer)


def _fell_back(m: Manifest, left: dict[str, PlanCheck], level: str, check: PlanCheck) -> str:
    """The one line a fallback prints: what each level left its budget by, and the level kept."""
    tried = "; ".join(f"{lvl}: {c.worst.describe()}" for lvl, c in left.items())
    several = "s" if len(left) > 1 else ""
    return (f"ONNX Runtime's plan{several} at level{several} {' and '.join(left)} change{'' if several else 's'} the "
            f"results beyond the {m.precision} budget ({tried}; on {check.inputs}): saved at level {level} instead, "
            f"which holds ({check.worst.max_abs:.3g}), with fewer fusions, so slower")


def _no_level_holds(m: Manifest, left: dict[str, PlanCheck], version: str) -> str:
    tried = "; ".join(f"{lvl}: {c.worst.describe()}" for lvl, c in left.items())
    return (f"the ONNX Runtime plan differs from the deployable ONNX beyond the {m.precision} budget at every level "
            f"tried ({tried}; on {next(iter(left.values())).inputs}): ONNX Runtime {version} does not reproduce this "
            "graph here; build it in another precision (`edgekit build SOURCE --precision fp32`) or for OpenVINO "
            "(`--target cpu-openvino`)")


# --- cpu: OpenVINO IR -----------------------------------------------------------------------


def _compile_openvino(work: Path, m: Manifest, target: Target, settings: CompileSettings,
                      inputs: CheckInputs | None = None) -> Manifest:
    from edgekit.runtime.openvino_rt import (OpenVINORunner, OpenVINOSettings, import_openvino, openvino_version,
                                             precision_hint)

    ov = import_openvino()
    threads = target.threads if settings.threads is None else settings.threads
    try:
        model = ov.convert_model(str(work / m.model_file))
    except Exception as exc:  # an op OpenVINO's ONNX frontend does not know, among others
        first = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        raise ArtifactError(f"OpenVINO {openvino_version()} cannot convert {m.model_file}: {first[:300]}") from None
    ov.save_model(model, str(work / OV_IR), compress_to_fp16=False)  # the default would halve FP32 weights
    run_settings = OpenVINOSettings(threads=threads, precision_hint=precision_hint(m.precision))
    feeds, source = _feeds(m, 1, settings, inputs)
    if m.precision == "fp32" or target.cpu_runtime != "openvino":
        # another runtime computing the same function, or the graph ONNX Runtime verified on held-out images
        graph, against = _graph_runner(work / m.model_file, threads), "the deployable ONNX on ONNX Runtime"
    else:  # OpenVINO's own int8/fp16/bf16 kernels, which the precision stage verified on held-out images
        graph, against = OpenVINORunner(work / m.model_file, run_settings), "the deployable ONNX on OpenVINO"
    with graph:
        reference = _reference(m, graph.infer, feeds, source)
    with OpenVINORunner(work / OV_IR, run_settings) as runner:
        check = reference.compare(runner.infer)
        execution = runner.execution_precision()
    if not check.holds:
        raise ParityError(f"OpenVINO's IR differs from {against} beyond the {m.precision} budget: {check.describe()}; "
                          "run it on ONNX Runtime: build with --target cpu --runtime onnxruntime")
    session = dict(m.session)
    session["openvino"] = {
        "threads": threads, "precision_hint": run_settings.precision_hint, "performance_hint": run_settings.performance_hint,
        "execution_precision": execution, "device": "CPU",
        "verification": check.to_dict() | {"reference": against},
    }
    versions = {**m.versions, "openvino": openvino_version(), "edgekit_compile": __version__}
    return m.evolve(engine_file=OV_IR, session=session, versions=versions)


# --- TensorRT engine -----------------------------------------------------------------------


def engine_settings(m: Manifest, target: Target, settings: CompileSettings):
    """The engine build's settings: the options first, then what the build requested in the
    manifest (``session["tensorrt"]``: ``workspace_mb``, ``dla``, ``dla_core``), then the target's
    defaults; the batch profile from the target's batch (:func:`edgekit.compile.engine.profile_batch`)."""
    from edgekit.compile.engine import EngineSettings, check_dla_core, profile_batch

    requested = m.session.get("tensorrt", {})
    core = _dla_core(settings, requested)
    check_dla_core(core, target, m.precision, off="compile with --no-dla")
    workspace = settings.workspace_mb or int(requested.get("workspace_mb", target.workspace_mb))
    batch = m.batch if isinstance(m.batch, int) and m.batch > 0 else target.batch
    return EngineSettings(
        precision=m.precision, workspace_mb=workspace, dla_core=core,
        batch=profile_batch(batch, dla=core is not None), timing_cache=settings.timing_cache,
        sparse_weights=bool(requested.get("sparse_weights", False)),
    )


def _dla_core(settings: CompileSettings, requested: dict) -> int | None:
    """--no-dla, else --dla-core, else --dla or the build's request (its core, else 0)."""
    if settings.dla is False:
        return None
    if settings.dla_core is not None:
        return settings.dla_core
    if settings.dla or requested.get("dla"):
        return int(requested.get("dla_core") or 0)
    return None


def _check_memory(workspace_mb: int) -> None:
    from edgekit.compile.engine import free_device_memory_mb

    free = free_device_memory_mb()
    if free is not None and workspace_mb > free:
        raise ConfigError(f"not enough device memory for a {workspace_mb} MB workspace ({free} MB free); "
                          f"pass --workspace {max(free // 2, 1)} or free memory")


def _verify_engine(work: Path, m: Manifest, eng, cuda_graph: bool, settings: CompileSettings,
                   inputs: CheckInputs | None = None) -> dict:
    """The engine, run as the runner will, against the deployable ONNX run as written; past its budget
    only a warning (TensorRT picks its kernels per device; the user checks them with ``edgekit compare``)."""
    from edgekit.runtime.trt import TensorRTRunner

    feeds, source = _feeds(m, eng.batch[1], settings, inputs)
    try:
        with _graph_runner(work / m.model_file) as graph:
            reference = _reference(m, graph.infer, feeds, source)
    except BackendUnavailableError:
        return {"skipped": "onnxruntime is not installed here"}
    with TensorRTRunner(work / ENGINE, dla_core=eng.dla_core, cuda_graph=cuda_graph) as runner:
        check = reference.compare(runner.infer)
        if runner.graph_note:
            warnings.warn(f"{runner.graph_note}: the runner will run it without", CompileWarning, stacklevel=2)
    if not check.holds:
        warnings.warn(f"the {m.precision} engine differs from the ONNX beyond its budget: {check.describe()}; "
                      "check it with `edgekit compare`", CompileWarning, stacklevel=2)
    return check.to_dict()


def _placement(engine: Path, core: int | None) -> dict | None:
    """Which layers run on DLA core ``core`` and which fell back to the GPU (one warning line if any did)."""
    if core is None:
        return None
    from edgekit.compile.placement import engine_placement

    placement = engine_placement(engine, core)
    line = placement.summary(core)
    if line:
        warnings.warn(line, CompileWarning, stacklevel=2)
    return placement.to_dict()


def _engine_into(work: Path, m: Manifest, eng, settings: CompileSettings, trt_version: str, device) -> str:
    """``work/model.engine`` from the artifact's engine cache, else built (and cached); the key's digest."""
    from edgekit.compile.engine import build_engine
    from edgekit.compile.engine_cache import EngineCache, engine_key

    key = engine_key(work / m.model_file, m.inputs, eng, trt_version, device.gpu_name, device.compute_capability)

    def build(dest: Path) -> None:
        _check_memory(eng.workspace_mb)
        build_engine(work / m.model_file, dest, m.inputs, eng)

    EngineCache(work / ENGINE_CACHE).engine(key, work / ENGINE, build, rebuild=settings.rebuild)
    return key.digest


def _compile_tensorrt(work: Path, m: Manifest, target: Target, settings: CompileSettings,
                      inputs: CheckInputs | None = None) -> Manifest:
    from edgekit.compile.engine import build_mode, device_dla_cores
    from edgekit.compile.engine_cache import timing_cache_file
    from edgekit.device import local_device
    from edgekit.runtime.trt import import_tensorrt

    trt = import_tensorrt()
    device = local_device()
    dla_cores = device_dla_cores()
    eng = engine_settings(m, target, settings)
    timing = None
    if settings.use_timing_cache:
        timing = eng.timing_cache or timing_cache_file(work, trt.__version__, device.gpu_name, device.compute_capability)
    eng = replace(eng, timing_cache=timing)
    for note in check_device(needs_of_target(target), device, dla_cores, eng.dla_core is not None):
        warnings.warn(note, CompileWarning, stacklevel=2)
    digest = _engine_into(work, m, eng, settings, trt.__version__, device)
    requested = m.session.get("tensorrt", {})
    cuda_graph = bool(requested.get("cuda_graph", False) if settings.cuda_graph is None else settings.cuda_graph)
    session = dict(m.session)
    session["tensorrt"] = {
        "workspace_mb": eng.workspace_mb, "dla": eng.dla_core is not None, "dla_core": eng.dla_core,
        "sparse_weights": eng.sparse_weights,
        "gpu_fallback": eng.dla_core is not None, **build_mode(trt.__version__, eng.precision).to_dict(),
        "profile_batch": list(eng.batch) if not isinstance(m.batch, int) else None,
        "timing_cache": _shown(timing, work), "engine_key": digest, "cuda_graph": cuda_graph,
        "placement": _placement(work / ENGINE, eng.dla_core),
        "verification": _verify_engine(work, m, eng, cuda_graph, settings, inputs),
    }
    built_on = {"gpu_name": device.gpu_name, "compute_capability": device.compute_capability,
                "dla_cores": dla_cores, "jetpack": device.jetpack, "machine": device.machine}
    versions = {**m.versions, "tensorrt": trt.__version__, "cuda": device.cuda, "edgekit_compile": __version__}
    return m.evolve(engine_file=ENGINE, session=session, device=built_on, versions=versions)


def _shown(path: Path | None, work: Path) -> str | None:
    """A path as the manifest records it: inside the artifact, relative to it."""
    if path is None:
        return None
    try:
        return Path(path).relative_to(work).as_posix()
    except ValueError:
        return str(path)
