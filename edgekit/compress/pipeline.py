"""`compress`: source + images + goal -> a smaller, recovered network edgekit can build.

Steps: load and reparameterize the source; measure the original and every plan of the level on
the target (cached); keep the plans that meet the speed/size goal (else: a one-line error, nothing
written); from the least compressed, recover each by distillation until one holds --max-drop
(at most ``max_candidates`` of them, and another only while the recovery's time budget has room for
one more attempt as long as the longest so far: noise around the speed threshold then does not
decide the result alone); every attempt is printed with its figures and listed in the report;
with ``--sparsity 2:4`` (TensorRT targets), make the chosen network 2:4 sparse and recover it
again, under the same --max-drop; write the module, its description and the report into OUT,
whole or not at all.
"""
from __future__ import annotations

__all__ = ["CompressConfig", "CompressResult", "compress", "Loaded", "Measured", "Recovered", "load", "measure",
           "recover", "report", "attempt_in_turn", "attempts_line", "refuse_detection"]

import copy
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

from edgekit.artifact.compressed import write_output
from edgekit.atomic import atomic_dir
from edgekit.cache import MeasurementCache, content_key
from edgekit.compress.depth import can_drop
from edgekit.compress.distill import DistillSettings, distill, score
from edgekit.compress.prune import family_of
from edgekit.compress.report import CompressReport
from edgekit.compress.search import (LEVELS, Goal, Plan, PlanFigures, apply_plan, feasible_plans, measure_plans,
                                     plans_for)
from edgekit.compress.tiles import training_tiles
from edgekit.convert.outputs import select_output
from edgekit.convert.reparam import reparameterize
from edgekit.convert.source import resolve_source
from edgekit.convert.task import said_by_source, task_of
from edgekit.errors import ConfigError, InfeasibleError
from edgekit.preprocess import InputOptions
from edgekit.recipes import Recipe
from edgekit.targets import Target, load_target

Progress = Callable[[str], None]
RECOVERY_SCALE = {1: 1.0, 2: 1.0, 3: 2.0}
MAX_CANDIDATES = 3  # plans recovered at most (--max-candidates)
MAX_TILES = 256  # tiles of one large image recovered on when --train-samples is not given
TIME_BUDGET_MIN = 60.0  # minutes of recovery (--time-budget): level 1's 300 steps take ~4 min a plan on 2 cores


@dataclass(frozen=True)
class CompressConfig:
    """Everything but the source, the output and the goal.

    Attributes:
        images: training images (folder, or one large image cut into tiles).
        val: held-out images; masks in ``<val>/masks`` are used when present.
        level: 1, 2 or 3 (see edgekit.compress.search).
        importance: ``magnitude`` or ``taylor``.
        train_samples / val_samples: images (tiles) used from each set (None: all).
        recovery: the distillation settings (level 3 doubles the steps).
        latency_runs: timed runs per plan.
        cache: measurement cache folder (None: keep nothing).
        sparsity: ``2:4`` makes the chosen network 2:4 sparse (TensorRT targets: sparse tensor cores).
        task: ``--task`` (None: the recipe's or model's, else its output shapes; :mod:`edgekit.convert.task`);
            a detector is refused (:func:`refuse_detection`).
        inputs: the input declared on the command line (``--mean --std --channel-order --scale --bands``).
        max_candidates: plans meeting the speed/size goal recovered at most, least compressed first.
        time_budget_min: minutes of recovery; a further plan is tried only while the time spent plus
            the longest attempt so far fits (None: no bound). The first plan is always tried.
    """

    images: Path
    val: Path
    target: str = "cpu"
    level: int = 1
    importance: str = "magnitude"
    input_size: tuple[int, int] | None = None
    checkpoint: Path | None = None
    task: str | None = None
    batch: int = 2
    train_samples: int | None = 64
    val_samples: int | None = None
    recovery: DistillSettings = field(default_factory=DistillSettings)
    latency_runs: int = 5
    threads: int = 0
    cache: Path | None = None
    sparsity: str | None = None
    inputs: InputOptions = InputOptions()
    max_candidates: int = MAX_CANDIDATES
    time_budget_min: float | None = TIME_BUDGET_MIN

    def __post_init__(self) -> None:
        from edgekit.compress.sparsity import PATTERNS

        if self.level not in LEVELS:
            raise ConfigError(f"--level {self.level}: choose one of {', '.join(map(str, LEVELS))}")
        if self.sparsity is not None and self.sparsity not in PATTERNS:
            raise ConfigError(f"--sparsity {self.sparsity}: choose one of {', '.join(PATTERNS)}")
        if self.max_candidates < 1:
            raise ConfigError(f"--max-candidates must be at least 1, not {self.max_candidates}")
        if self.time_budget_min is not None and self.time_budget_min <= 0:
            raise ConfigError(f"--time-budget must be above 0 minutes, not {self.time_budget_min:g}")


@dataclass(frozen=True)
class CompressResult:
    out: Path
    report: CompressReport


def _data(config: CompressConfig, recipe):
    """(training set, held-out set); the training set is None for one large image, whose tiles are
    chosen once the original is loaded (:mod:`edgekit.compress.tiles`)."""
    from edgekit.evaluate import ValidationData
    from edgekit.images.image_set import CalibrationSet

    val = ValidationData(config.val, recipe.input_size, recipe.preprocess, batch=1, samples=config.val_samples)
    if Path(config.images).is_file():
        return None, val
    available = len(CalibrationSet(config.images, recipe.input_size, recipe.preprocess).order)  # a listing only
    samples = available if config.train_samples is None else min(config.train_samples, available)
    train = ValidationData(config.images, recipe.input_size, recipe.preprocess, batch=min(config.batch, samples),
                           samples=samples)
    return train, val


def _runtime(target) -> tuple[str, str]:
    from edgekit.machine import cpu_name

    if target.cpu_runtime == "openvino":
        import openvino

        return "measured", f"OpenVINO {openvino.get_version()} CPU, {cpu_name()}"
    import onnxruntime

    kind = ("estimated (ONNX Runtime CPU here, not measured on the TensorRT device)" if target.is_tensorrt
            else "measured")
    return kind, f"ONNX Runtime {onnxruntime.__version__} CPU, {cpu_name()}"


def refuse_detection(task: str | None) -> None:
    """Compress recovers a network by distilling its class scores; a detector's boxes are no class
    axis: a one-line ConfigError, before anything is written."""
    if task == "detection":
        raise ConfigError("edgekit compress recovers a pruned network by distilling its class scores (segmentation, "
                          "classification); a detector's boxes need a detection loss it does not have: build the "
                          "detector as it is (edgekit build SOURCE --task detection) or run edgekit optimize without "
                          "--compress (nothing written)")


@dataclass(frozen=True)
class Loaded:
    """The source made ready: the reparameterized network and the images every later step reads.

    Attributes:
        model: the deploy-form (reparameterized) original, the teacher of every recovery.
        sample: one input batch of one image, for tracing and export.
        train / val: training and held-out images (train: the chosen tiles for one large image).
        tiles: the tiles chosen from one large image (None for a folder).
        key: what identifies the source in the measurement cache.
    """

    target: Target
    recipe: Recipe
    model: object
    sample: object
    train: object
    val: object
    tiles: object | None
    key: dict


@dataclass(frozen=True)
class Measured:
    """The original's figures, every plan's, and the plans that meet the goal (least compressed first)."""

    base: dict
    plans: tuple[PlanFigures, ...]
    feasible: tuple[PlanFigures, ...]
    cache: dict  # {hits, misses} of the measurement cache


@dataclass(frozen=True)
class Recovered:
    """The plan kept and its recovered network (made 2:4 sparse when asked), with every attempt.

    Attributes:
        recovery: the distillation's result; its ``model`` is what is written.
        details: what depth, prune, lowrank (and sparsity) did to the kept plan.
        teacher_metric / metric / drop: the original's and the kept network's score, and the points lost.
        agreement: top-1 agreement of the kept network with the original.
        tried: every attempt in order (see :func:`attempt_in_turn`).
        seconds: time spent recovering plans (the 2:4 step not included).
    """

    candidate: PlanFigures
    recovery: object
    details: dict
    teacher_metric: float
    metric: float
    drop: float
    agreement: float
    tried: tuple[dict, ...]
    seconds: float


def compress(source: str, out: Path, goal: Goal, config: CompressConfig, progress: Progress | None = None) -> CompressResult:
    """Compress ``source`` to meet ``goal`` on ``config.target``; write OUT (see module docstring)."""
    say = progress or (lambda _m: None)
    start = time.perf_counter()
    loaded = load(source, config, say)
    measured = measure(loaded, goal, config, say)  # raises before anything is written when no plan is fast enough
    searched = time.perf_counter() - start
    recovered = recover(loaded, measured, goal, config, say)
    seconds = {"search": searched, "recovery": recovered.seconds, "total": time.perf_counter() - start}
    summary = report(source, loaded, measured, recovered, goal, config, seconds)
    with atomic_dir(Path(out)) as folder:
        write_output(folder, recovered.recovery.model, loaded.recipe, source, recovered.candidate.plan.name,
                     {"family": recovered.details["prune"]["family"],
                      **({"sparsity": config.sparsity} if config.sparsity else {})})
        summary.write(folder)
    return CompressResult(Path(out), summary)


def load(source: str, config: CompressConfig, say: Progress) -> Loaded:
    """Resolve ``source``, refuse a detector, read the images, reparameterize the network and, for
    one large image, choose the training tiles the original sees in it."""
    import torch

    target = load_target(config.target)
    if config.sparsity and not target.is_tensorrt:
        raise ConfigError(f"--sparsity {config.sparsity} speeds up only on sparse tensor cores (Ampere, Orin) through "
                          f"TensorRT; on {target.name} it would cost accuracy and buy nothing: use a TensorRT target")
    if config.threads:
        torch.set_num_threads(config.threads)
    src = resolve_source(source, config.input_size, config.checkpoint, config.task, inputs=config.inputs)
    refuse_detection(config.task or said_by_source(src)[0])  # before anything is read or run
    say("read images")
    train, val = _data(config, src.recipe)
    sample = torch.from_numpy(val.batches[0][:1])
    say("load and reparameterize")
    model, output = select_output(src.load_model(), sample)
    recipe = task_of(src, config.task, [(output.chosen, output.shape)]).applied(src).recipe
    refuse_detection(recipe.task)
    deployed = reparameterize(model, sample).model
    tiles = None
    if train is None:  # one large image: tiles that cover what the original sees in it
        train = tiles = training_tiles(deployed, Path(config.images), src.recipe.input_size, src.recipe.preprocess,
                                       config.train_samples or MAX_TILES, config.batch, say)
        say(f"{len(train.windows)} tiles of {Path(config.images).name}: class shares "
            f"{', '.join(f'{100 * s:.1f}%' for s in train.shares)} (last: unsure) vs the image's "
            f"{', '.join(f'{100 * s:.1f}%' for s in train.image_shares)}")
    key = {"source": src.sha256 or src.name, "name": src.name, "v": 1}
    return Loaded(target, recipe, deployed, sample, train, val, tiles, key)


def measure(loaded: Loaded, goal: Goal, config: CompressConfig, say: Progress) -> Measured:
    """Measure the original and every plan of ``config.level`` on the target's CPU runtime (cached),
    print each, and keep those meeting ``goal``'s speed/size limits.

    Raises:
        InfeasibleError: no plan meets the limits (nothing has been written).
    """
    cache = MeasurementCache(config.cache)
    shortenable = can_drop(loaded.model)
    plans = plans_for(config.level, family_of(loaded.model), depth=shortenable)
    if not shortenable and any(p.depth for p in LEVELS[config.level]):
        say("depth cuts left out: no list of blocks this model lets edgekit shorten (see edgekit/compress/depth.py)")
    say(f"measure the original and {len(plans)} level-{config.level} plans")
    base, measured = measure_plans(loaded.model, loaded.sample, plans, cache, loaded.key, config.latency_runs,
                                   config.threads, config.importance, loaded.target.cpu_runtime, say)
    for m in [PlanFigures(Plan(), base)] + measured:
        f = m.figures
        say(f"{m.plan.name:<22} {f['latency_ms']:8.1f} ms {base['latency_ms'] / f['latency_ms']:5.2f}x "
            f"{f['params'] / 1e6:6.2f} M params {f['macs'] / 1e9:6.2f} GMACs {f['size_mb']:6.1f} MB")
    feasible = feasible_plans(base, measured, goal, config.level)
    return Measured(base, tuple(measured), tuple(feasible), {"hits": cache.hits, "misses": cache.misses})


def recover(loaded: Loaded, measured: Measured, goal: Goal, config: CompressConfig, say: Progress) -> Recovered:
    """Recover the feasible plans by distillation, least compressed first, until one holds
    ``goal.max_drop`` (:func:`attempt_in_turn`); with ``config.sparsity``, make it 2:4 sparse and
    recover it again.

    Raises:
        InfeasibleError: no plan holds the drop after recovery (or 2:4 sparsity loses too much).
    """
    deployed, train, val, task = loaded.model, loaded.train, loaded.val, loaded.recipe.task
    reference = _labels(deployed, val.batches)
    teacher_metric = score(deployed, val.batches, reference, val.masks, task)
    steps = int(config.recovery.steps * RECOVERY_SCALE[config.level])
    settings = DistillSettings(**{**asdict(config.recovery), "steps": steps})
    recovering = time.perf_counter()

    def attempt(candidate: PlanFigures):
        student, details = apply_plan(deployed, loaded.sample, candidate.plan, config.importance)
        ckpt_key = content_key(loaded.key, candidate.plan.key(), config.importance, asdict(settings), train.key(),
                               val.key())
        ckpt = (Path(config.cache) / "files" / "compress" / f"{ckpt_key}.pt") if config.cache else None
        recovery = distill(deployed, student, train.batches, val.batches, task, settings,
                           train_masks=train.masks, val_masks=val.masks, checkpoint=ckpt,
                           progress=lambda m, p=candidate.plan.name: say(f"{p}: {m}"))
        metric = score(recovery.model, val.batches, reference, val.masks, task)
        drop = 100 * (teacher_metric - metric)
        return {"metric": metric, "drop": drop, "steps": recovery.steps}, (candidate, recovery, details, metric, drop)

    tried, chosen = attempt_in_turn(list(measured.feasible), measured.base, goal, attempt, config.max_candidates,
                                    None if config.time_budget_min is None else 60 * config.time_budget_min, say)
    seconds = time.perf_counter() - recovering
    if chosen is None:
        raise InfeasibleError(f"no plan meeting the speed goal holds --max-drop {goal.max_drop:g} after recovery: "
                              f"{attempts_line(tried, len(measured.feasible), config)}; allow a larger drop, a smaller "
                              "speed-up, more recovery steps or --max-candidates (nothing written)")
    candidate, recovery, details, metric, drop = chosen
    if config.sparsity:
        recovery, details, metric, drop = _sparse(deployed, recovery, details, train, val, reference, teacher_metric,
                                                  task, settings, goal, say, tried)
    agreement = score(recovery.model, val.batches, reference, None, "classification")
    return Recovered(candidate, recovery, details, teacher_metric, metric, drop, agreement, tuple(tried), seconds)


def report(source: str, loaded: Loaded, measured: Measured, recovered: Recovered, goal: Goal, config: CompressConfig,
           seconds: dict) -> CompressReport:
    """What compress did, as the report written beside the network: figures before and after, every
    plan measured and every attempt, the recovery's curve, times and cache use."""
    kind, runtime = _runtime(loaded.target)
    base, tiles = measured.base, loaded.tiles
    return CompressReport(
        source=source, target=loaded.target.name, level=config.level, goal=goal.to_dict(),
        plan=recovered.candidate.plan.name, before=base, after=recovered.candidate.figures,
        accuracy={"metric": _metric_name(loaded.recipe.task, loaded.val.has_masks), "before": recovered.teacher_metric,
                  "after": recovered.metric, "drop": round(recovered.drop, 3), "agreement": recovered.agreement},
        latency_kind=kind, runtime=runtime,
        candidates=tuple({"plan": m.plan.name, "figures": m.figures, "misses": goal.misses(m.figures, base)}
                         for m in measured.plans),
        changes=recovered.details,
        recovery={**recovered.recovery.to_dict(), **({"tiles": tiles.to_dict()} if tiles else {})},
        tried=recovered.tried, seconds=seconds, cache=measured.cache,
    )


def _sparse(teacher, recovery, details: dict, train, val, reference, teacher_metric: float, task: str, settings,
            goal: Goal, say: Progress, tried: list):
    """The recovered network made 2:4 sparse (ModelOpt), recovered again with the mask enforced,
    exported and its pattern proved; a one-line error when it no longer holds the drop."""
    from edgekit.compress import sparsity

    say("2:4 sparsity (ModelOpt sparse_magnitude)")
    sparse = sparsity.sparsify(copy.deepcopy(recovery.model))
    again = distill(teacher, sparse, train.batches, val.batches, task, settings, train_masks=train.masks,
                    val_masks=val.masks, progress=lambda m: say(f"2:4: {m}"))
    model = sparsity.export(again.model)
    check = sparsity.check_pattern(model)
    metric = score(model, val.batches, reference, val.masks, task)
    drop = 100 * (teacher_metric - metric)
    tried.append({"plan": "+2:4", "metric": metric, "drop": round(drop, 3), "steps": again.steps})
    if check.sparse_layers == 0:
        raise ConfigError("2:4 sparsity found no layer it could make sparse (input channels must come in fours); "
                          "nothing written")
    if drop > goal.max_drop:
        raise InfeasibleError(f"2:4 sparsity loses {drop:.2f} points after recovery (--max-drop {goal.max_drop:g}); "
                          "allow a larger drop or more recovery steps (nothing written)")
    return replace(again, model=model), {**details, "sparsity": {"pattern": "2:4", **check.to_dict()}}, metric, drop


def attempt_in_turn(feasible: list[PlanFigures], base: dict, goal: Goal, recover: Callable, limit: int,
                    budget_s: float | None, say: Progress, clock: Callable[[], float] = time.perf_counter):
    """Recover ``feasible`` plans in their order until one holds ``goal.max_drop``: at most ``limit``,
    and a further one only while the seconds spent plus the longest attempt so far fit ``budget_s``.

    ``recover(candidate)`` returns ({metric, drop (points), steps}, what to keep when it holds).
    Returns (every attempt as a dict in order, one left out for time included; the kept value or None).
    """
    tried: list[dict] = []
    start = clock()
    queue = feasible[:limit]
    for k, candidate in enumerate(queue, 1):
        f = candidate.figures
        speed = round(base["latency_ms"] / f["latency_ms"], 3)
        spent = clock() - start
        longest = max((t["seconds"] for t in tried), default=0.0)
        if tried and budget_s is not None and spent + longest > budget_s:
            tried.append({"plan": candidate.plan.name, "speedup": speed, "latency_ms": f["latency_ms"],
                          "left_out": f"time budget: {spent / 60:.1f} min spent + {longest / 60:.1f} min a plan "
                                      f"> {budget_s / 60:g} min"})
            say(f"attempt {k}/{len(queue)} {candidate.plan.name} ({speed:.2f}x) left out: {tried[-1]['left_out']}")
            break
        began = clock()
        figures, kept = recover(candidate)
        holds = figures["drop"] <= goal.max_drop
        tried.append({"plan": candidate.plan.name, "speedup": speed, "latency_ms": f["latency_ms"], **figures,
                      "drop": round(figures["drop"], 3), "seconds": round(clock() - began, 1), "holds": holds})
        say(f"attempt {k}/{len(queue)} {candidate.plan.name}: {speed:.2f}x ({f['latency_ms']:.1f} ms), held-out "
            f"{100 * figures['metric']:.2f} ({-figures['drop']:+.2f} points), {figures.get('steps', 0)} steps, "
            f"{tried[-1]['seconds'] / 60:.1f} min: "
            + ("holds" if holds else f"misses --max-drop {goal.max_drop:g}"))
        if holds:
            return tried, kept
    return tried, None


def attempts_line(tried: list[dict], feasible: int, config: CompressConfig) -> str:
    """The attempts in one line: each plan's speed-up and drop, and why the search stopped."""
    done = [t for t in tried if "drop" in t]
    parts = [f"{t['plan']} {t['speedup']:.2f}x {-t['drop']:+.2f}" for t in done]
    why = next((f"; {t['plan']} left out ({t['left_out']}, --time-budget)" for t in tried if "left_out" in t), "")
    return (f"tried {', '.join(parts)} ({len(done)} of {feasible} plans meeting the goal, --max-candidates "
            f"{config.max_candidates}){why}")


def _labels(model, batches):
    import torch

    with torch.no_grad():
        return [model(torch.from_numpy(b)).argmax(1).numpy() for b in batches]


def _metric_name(task: str, masks: bool) -> str:
    if task != "segmentation":
        return "top-1 agreement with the original"
    return "mIoU vs ground truth" if masks else "mIoU vs the original (no masks: agreement)"
