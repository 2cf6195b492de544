"""`edgekit optimize`: constraints in, the fastest artifact that holds them out, with the evidence.

    FP32 build -> whole-model candidates (fp32, fp16, int8 per calibration method, dynamic int8)
    -> regions of the best int8 graph -> sensitivity per region -> cost per node on the target
    -> search (edgekit.optimize.search) -> the fastest candidate that holds -> artifact folder

Every measurement goes through the on-disk cache (edgekit.cache), so reruns and new
budgets reuse them and an interrupted run resumes. The reference (FP32) outputs on the validation
set are computed only when a measurement is actually missing.
"""
from __future__ import annotations

__all__ = ["OptimizeConfig", "OptimizeResult", "optimize"]

import platform
import tempfile
import time
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Callable

from edgekit.artifact.layout import MODEL
from edgekit.artifact.manifest import Manifest, read_manifest, sha256_file
from edgekit.errors import ConfigError, InfeasibleError
from edgekit.cache import MeasurementCache, content_key, default_cache_dir
from edgekit.optimize.candidates import KINDS, CandidateSpec, bf16_here, candidate_specs, make_candidate
from edgekit.optimize.constraints import Constraints, Measurement
from edgekit.optimize.cost import INT8_MAC_COST, QDQ_COST, NodeCost, estimated_node_costs, profiled_node_costs
from edgekit.convert.mixed_precision import mixed_precision_model, quantized_nodes, regions_from_onnx
from edgekit.convert.precision_spec import LOWERING_REVISION
from edgekit.optimize.report import OptimizeReport, choose, infeasible_message
from edgekit.optimize.search import search
from edgekit.preprocess import InputOptions
from edgekit.convert.sensitivity import region_sensitivity
from edgekit.targets import Target, load_target

Progress = Callable[[str], None]
FP16_SPEEDUP = 2  # assumed for TensorRT targets, never measured here


def estimate_rule(kind: str) -> str:
    """How a TensorRT target's latency of a ``kind`` candidate is estimated, in words (the report prints it)."""
    base = "FP32's ONNX Runtime CPU latency on this machine"
    if kind in ("fp32", "dynamic"):
        return f"{base}, taken for the device's"
    if kind == "fp16":
        return f"{base} / {FP16_SPEEDUP} (an assumed fp16 speed-up)"
    return (f"{base} x (1 - {1 - INT8_MAC_COST - 2 * QDQ_COST:g} x the int8 nodes' share of the multiply-accumulates) "
            f"(an int8 MAC assumed to cost {INT8_MAC_COST:g} of an FP32 one, plus 2 x {QDQ_COST:g} for conversions)")


@dataclass(frozen=True)
class OptimizeConfig:
    """How `edgekit optimize` searches.

    Attributes:
        target / input_size / batch / checkpoint / task: as for `edgekit build` (task None: the
            model's own, else its output shapes; :mod:`edgekit.convert.task`).
        calib: calibration images; calib_samples: how many (None: all).
        calib_methods: int8 calibration methods tried (None: every one the target takes).
        val: validation images (``<val>/masks`` holds ground truth when there is some); masks: elsewhere.
        val_samples: validation images per candidate (None: all).
        sensitivity_samples: validation images per sensitivity probe.
        candidates: whole-model kinds tried besides fp32 (fp16, int8, dynamic).
        max_regions: most regions probed (the measurement count of the sensitivity pass).
        latency_runs: timed runs per latency measurement (and per profile).
        cache: measurement cache folder (None: no cache).
        search: run the mixed-precision search (else whole-model candidates only).
        targets_dir / recipes_dir: the user's folders of target profiles / recipes, searched first.
        inputs: the input declared on the command line (``--mean --std --channel-order --scale --bands``).
    """

    target: str = "cpu"
    input_size: tuple[int, int] | None = None
    batch: int = 1
    checkpoint: Path | None = None
    task: str | None = None
    calib: Path | None = None
    calib_samples: int | None = 16
    calib_methods: tuple[str, ...] | None = None
    val: Path | None = None
    masks: Path | None = None
    val_samples: int | None = None
    sensitivity_samples: int = 4
    candidates: tuple[str, ...] = KINDS
    max_regions: int = 24
    latency_runs: int = 5
    cache: Path | None = default_cache_dir()
    search: bool = True
    targets_dir: Path | None = None
    recipes_dir: Path | None = None
    inputs: InputOptions = InputOptions()


@dataclass(frozen=True)
class OptimizeResult:
    folder: Path
    manifest: Manifest
    report: OptimizeReport


class _Run:
    """State of one optimize run: the FP32 graph, the data, the cache, the files made."""

    def __init__(self, base: Path, config: OptimizeConfig, target: Target, cache: MeasurementCache, scratch: Path, say: Progress):
        from edgekit.evaluate import ValidationData
        from edgekit.images.image_set import CalibrationSet

        self.config, self.target, self.cache, self.scratch, self.say = config, target, cache, scratch, say
        self.manifest = read_manifest(base)
        self.fp32 = base / self.manifest.model_file
        self.fp32_key = sha256_file(self.fp32)
        m = self.manifest
        self.batch = m.batch if isinstance(m.batch, int) else 1
        size = tuple(m.tile)
        self.val = ValidationData(config.val, size, m.preprocess, self.batch, config.val_samples, config.masks)
        self.probe = ValidationData(config.val, size, m.preprocess, self.batch,
                                    min(config.sensitivity_samples, len(self.val.items)), ground_truth=False)
        self.calib = CalibrationSet(config.calib, size, m.preprocess, batch=self.batch) if config.calib else None
        self.val_key = self.val.key()
        self.machine = {"node": platform.node(), "cpu": platform.processor(), "threads": target.threads}
        self.files: dict[str, Path] = {}
        self.timed: dict[str, float] = {}  # latencies timed in turns (time_in_turns), by latency key, not yet cached

    # ---- evaluators, made only when a measurement is missing ----------------------------------
    @cached_property
    def evaluator(self):
        from edgekit.optimize.evaluate import Evaluator

        self.say("FP32 reference on the validation set")
        return Evaluator(self.fp32, self.val, self.manifest.task, self.target.threads)

    @cached_property
    def probe_evaluator(self):
        from edgekit.optimize.evaluate import Evaluator

        return Evaluator(self.fp32, self.probe, self.manifest.task, self.target.threads)

    @cached_property
    def reference(self) -> dict:
        key = content_key("reference", self.fp32_key, self.val_key, self.manifest.task)
        return self.cache.measure("reference", key, lambda: {"metric": self.evaluator.reference.metric,
                                                              "metric_name": self.evaluator.metric_name})

    @cached_property
    def fp32_latency(self) -> float:
        return self._latency(self.fp32_key, lambda: self.fp32)

    # ---- measurements -------------------------------------------------------------------------
    def _latency_key(self, model_key: str, precision: str) -> str:
        return content_key("latency", model_key, self.machine, self.config.latency_runs, self.val_key["shape"], precision)

    def _latency(self, model_key: str, path: Callable[[], Path], precision: str = "fp32") -> float:
        from edgekit.optimize.evaluate import measure_latency

        key = self._latency_key(model_key, precision)
        if key in self.timed:  # timed in turns with the others of this run: replaces a stored figure
            self.cache.misses += 1
            return self.cache.store("latency", key, {"ms": self.timed.pop(key)})["ms"]
        return self.cache.measure("latency", key, lambda: {"ms": measure_latency(
            path(), self.val.batches[0], self.config.latency_runs, self.target.threads, precision)})["ms"]

    def time_in_turns(self, models: list[tuple[str, Path, str]]) -> None:
        """Time the ``(model key, path, precision)`` models in turns
        (:func:`~edgekit.optimize.evaluate.measure_latencies`), for the latency lookups that follow:
        none when all are stored, else all of them again, so that the figures compared were
        taken side by side (a candidate new to the cache is not timed alone against stored ones)."""
        from edgekit.optimize.evaluate import measure_latencies

        todo = {self._latency_key(k, precision): (path, precision) for k, path, precision in models}
        if any(not self.cache.has("latency", key) for key in todo):
            self.say(f"time {len(todo)} candidates in turns, {self.config.latency_runs} rounds")
            self.timed |= dict(zip(todo, measure_latencies(list(todo.values()), self.val.batches[0],
                                                           self.config.latency_runs, self.target.threads)))

    def measure(self, name: str, model_key: str, path: Callable[[], Path], kind: str,
                float_nodes: frozenset = frozenset(), quantized: set[str] | None = None,
                execution: str = "fp32") -> Measurement:
        """Accuracy, latency and size of one candidate (cached by ``model_key``), run as ``execution``
        says (:data:`~edgekit.optimize.evaluate.EXECUTIONS`: a whole model's ``CandidateSpec.precision``;
        mixtures run on ONNX Runtime)."""

        def accuracy() -> dict:
            self.say(f"measure {name}")
            acc = self.evaluator.accuracy(path(), execution)
            return acc.to_dict() | {"size_mb": path().stat().st_size / 1e6}

        acc = self.cache.measure("accuracy", content_key("accuracy", model_key, self.val_key), accuracy)
        estimated = self.target.is_tensorrt
        latency = (self._estimated_latency(kind, float_nodes, quantized) if estimated
                   else self._latency(model_key, path, execution))
        return Measurement(name, 100 * (self.reference["metric"] - acc["metric"]), latency, acc["size_mb"], self.batch,
                           acc["metric"], acc["agreement"], tuple(sorted(float_nodes)), estimated,
                           estimate_rule(kind) if estimated else "")

    def _estimated_latency(self, kind: str, float_nodes: frozenset, quantized: set[str] | None) -> float:
        """A TensorRT target's latency, made from this machine's FP32 figure by :func:`estimate_rule`."""
        if kind in ("fp32", "dynamic"):
            return self.fp32_latency
        if kind == "fp16":
            return self.fp32_latency / FP16_SPEEDUP
        costs = self.node_costs(None, quantized or set())
        return self.fp32_latency - sum(c.gain_ms for n, c in costs.items() if n not in float_nodes)

    # ---- candidate files ----------------------------------------------------------------------
    def candidate(self, spec: CandidateSpec) -> tuple[Path | None, str]:
        """The graph of a whole-model candidate (made once, cached) and its content key."""
        if spec.kind == "fp32":
            return self.fp32, self.fp32_key
        calib_key = [f"{s.name}:{sha256_file(s.path)}" for s in self.calib.with_samples(self.config.calib_samples).items] \
            if self.calib is not None and spec.kind != "dynamic" else None
        key = content_key("candidate", self.fp32_key, spec.name, self.target.backend, calib_key, self.config.calib_samples,
                          LOWERING_REVISION)

        def make(folder: Path) -> None:
            self.say(f"make {spec.name}")
            made = make_candidate(spec, self.fp32, folder / MODEL, self.target, self.calib, self.config.calib_samples)
            if made is None:
                (folder / "not-applicable").write_text(spec.name)

        folder = self.cache.folder_for(key, make, self.scratch)
        path = folder / MODEL
        return (path if path.is_file() else None), key

    def mixture(self, base: Path, base_key: str, float_nodes: frozenset) -> tuple[Callable[[], Path], str]:
        """A lazily written mixture of ``base`` and its content key."""
        key = content_key("mixture", base_key, self.fp32_key, sorted(float_nodes))

        def path() -> Path:
            out = self.scratch / f"mixture-{key}.onnx"
            if not out.is_file():
                mixed_precision_model(base, self.fp32, float_nodes, out)
            return out

        return path, key

    def node_costs(self, base: Path | None, nodes: set[str]) -> dict[str, NodeCost]:
        if self.target.is_tensorrt:
            return estimated_node_costs(self.fp32, nodes, self.fp32_latency)
        key = content_key("costs", self.fp32_key, sha256_file(base), sorted(nodes), self.machine, self.config.latency_runs)

        def profile() -> dict:
            self.say("profile per node: FP32 and int8 graphs")
            found = profiled_node_costs(self.fp32, base, nodes, self.val.batches[0], self.config.latency_runs, self.target.threads)
            return {n: c.to_dict() for n, c in found.items()}

        data = self.cache.measure("costs", key, profile)
        return {n: NodeCost(d["fp32_ms"], d["int8_ms"], d["measured"]) for n, d in data.items()}


def _check(config: OptimizeConfig) -> Target:
    if config.val is None or not Path(config.val).is_dir():
        raise ConfigError("optimize measures accuracy on a validation set: --val FOLDER (images; masks in FOLDER/masks)")
    wants_int8 = "int8" in config.candidates
    if wants_int8 and config.calib is None:
        raise ConfigError("int8 candidates need calibration images: --calib FOLDER (or --candidates fp16,dynamic)")
    if config.calib is not None and not Path(config.calib).exists():
        raise ConfigError(f"calibration set {config.calib} does not exist")
    target = load_target(config.target, config.targets_dir)
    if target.backend == "openvino":
        raise ConfigError(f"optimize ranks candidates by ONNX Runtime's per-node profile; for {target.name} use "
                          "`edgekit sweep --target cpu-openvino` or build each precision (`edgekit build --target cpu-openvino`)")
    return target


def optimize(source: str, out: Path, constraints: Constraints = Constraints(), config: OptimizeConfig = OptimizeConfig(),
             progress: Progress | None = None) -> OptimizeResult:
    """Find the fastest candidate of ``source`` that holds ``constraints`` and write it to ``out``.

    Raises:
        ConfigError: no candidate holds the constraints (the message gives the best reachable
            figures); nothing is written then.
    """
    from edgekit.optimize.artifact import fp32_build, write_artifact

    start = time.perf_counter()
    say = progress or (lambda _m: None)
    target = _check(config)
    cache = MeasurementCache(config.cache)
    with tempfile.TemporaryDirectory(prefix="edgekit-optimize-") as tmp:
        scratch = Path(tmp)
        base = fp32_build(source, config, target, cache, scratch, say)
        run = _Run(base, config, target, cache, scratch, say)
        candidates, files, bases = _whole_models(run, config, target)
        result, regions, sensitivity, costs, base_name = _mixed(run, candidates, files, bases, constraints) if config.search \
            else (None, (), {}, {}, None)
        tried = [*candidates, *(result.steps if result else ())]
        feasible = [m for m in tried if constraints.holds(m)]
        if not feasible:
            raise InfeasibleError(infeasible_message(tried, constraints))
        chosen, decided_by = choose(feasible)
        report = OptimizeReport(
            source, target.name, constraints, run.reference["metric_name"], run.reference["metric"], tuple(candidates), chosen,
            {r.name: {"nodes": list(r.nodes), "sensitivity": sensitivity.get(r.name, 0.0)} for r in regions},
            result.to_dict() if result else None, {n: c.to_dict() for n, c in costs.items()},
            _notes(run, target), {"hits": cache.hits, "measured": cache.misses}, time.perf_counter() - start, decided_by)
        path, kind = _chosen_file(run, chosen, files, base_name)
        say(f"write {out} ({chosen.name})")
        decision = {"chosen": chosen.name, "kind": kind, "drop": chosen.drop, "latency_ms": chosen.latency_ms,
                    "latency_estimated": chosen.latency_estimated, "decided_by": decided_by,
                    "nodes_to_exclude": list(chosen.float_nodes), "metric": run.reference["metric_name"]}
        manifest = write_artifact(base, path, Path(out), target, kind, decision,
                                  lambda folder: replace(report, seconds=time.perf_counter() - start).write(folder))
    return OptimizeResult(Path(out), manifest, replace(report, seconds=time.perf_counter() - start))


def _whole_models(run: _Run, config: OptimizeConfig, target: Target) -> tuple[list[Measurement], dict, set[str]]:
    """Every whole-model candidate made, timed together in turns (with FP32) on a CPU target, then
    measured; with their files and the names of those mixtures can be cut from."""
    made, measured, files = [], [], {}
    for spec in candidate_specs(target, config.candidates, config.calib_methods):
        path, key = run.candidate(spec)
        if path is not None:
            made.append((spec, path, key))
            files[spec.name] = (path, key)
    if not target.is_tensorrt:  # a TensorRT target's latency is estimated from FP32's
        run.time_in_turns([(run.fp32_key, run.fp32, "fp32")]
                          + [(key, path, spec.precision) for spec, path, key in made])
    for spec, path, key in made:
        measured.append(run.measure(spec.name, key, lambda p=path: p, spec.kind,
                                    quantized=quantized_nodes(path) if spec.kind == "int8" else None,
                                    execution=spec.precision))
    return measured, files, {spec.name for spec, _, _ in made if spec.mixable}


def _mixed(run: _Run, candidates: list[Measurement], files: dict, bases: set[str], constraints: Constraints):
    """Sensitivity, costs and search on the int8 graph that lost least, of those in ``bases``."""
    int8 = [m for m in candidates if m.name in bases]
    if not int8:
        return None, (), {}, {}, None
    best = min(int8, key=lambda m: (m.drop, m.latency_ms))
    base, base_key = files[best.name]
    quantized = quantized_nodes(base)
    regions = regions_from_onnx(run.fp32, run.config.max_regions, only=quantized)
    if not regions:
        return None, (), {}, {}, None

    def probe(float_nodes: frozenset, name: str) -> float:
        path, key = run.mixture(base, base_key, float_nodes)
        acc = run.cache.measure("probe", content_key("probe", key, run.probe.key()),
                                lambda: run.probe_evaluator.accuracy(path()).to_dict())
        return 100 * (1.0 - acc["metric"])  # agreement with FP32: FP32 scores 1

    sensitivity = region_sensitivity(regions, quantized, probe, run.say)
    costs = run.node_costs(base, quantized)

    def evaluate(float_nodes: frozenset, name: str) -> Measurement:
        path, key = run.mixture(base, base_key, float_nodes)
        return run.measure(name, key, path, "mixed", float_nodes, quantized)

    result = search(regions, sensitivity, costs, evaluate, constraints, run.say)
    return result, regions, sensitivity, costs, best.name


def _chosen_file(run: _Run, chosen: Measurement, files: dict, base_name: str | None) -> tuple[Path, str]:
    """The chosen graph and its kind: a whole-model candidate's file, or its mixture written now."""
    if chosen.name in files:
        return files[chosen.name][0], chosen.name.split("-")[0]
    path, _ = run.mixture(*files[base_name], frozenset(chosen.float_nodes))
    return path(), "mixed"


def _notes(run: _Run, target: Target) -> tuple[str, ...]:
    notes = [f"accuracy: {run.reference['metric_name']} on {len(run.val.items)} validation images ({run.config.val})"]
    if not run.val.has_masks:
        notes.append("no ground-truth masks: the drop is the loss of agreement with the FP32 model")
    if target.is_tensorrt:
        notes.append(f"latency (*) is estimated, not measured on {target.name} (TensorRT is not run here): the rule "
                     "of each kind is listed under Latency; measure the artifact on the device with `edgekit profile`")
    else:
        notes.append(f"latency: median of {run.config.latency_runs} ONNX Runtime CPU runs after a warm-up, batch {run.batch}"
                     " (bf16: OpenVINO's, computing in bfloat16; int8-openvino: OpenVINO's)")
        if "bf16" in run.config.candidates and bf16_here():
            notes.append(f"bf16 not tried: {bf16_here()}")
    return tuple(notes)
