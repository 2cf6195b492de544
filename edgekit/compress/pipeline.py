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

__all__ = ["CompressConfig", "CompressResult", "compress"]

import copy
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

from edgekit.atomic import atomic_dir
from edgekit.compress.distill import DistillSettings
from edgekit.compress.report import CompressReport
from edgekit.compress.search import LEVELS, Goal, Plan, PlanFigures, feasible_plans, measure_plans, plans_for
from edgekit.errors import ConfigError, InfeasibleError
from edgekit.preprocess import InputOptions

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
    from edgekit.evaluate.image_set import CalibrationSet

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


def compress(source: str, out: Path, goal: Goal, config: CompressConfig, progress: Progress | None = None) -> CompressResult:
    """Compress ``source`` to meet ``goal`` on ``config.target``; write OUT (see module docstring)."""
    import torch

    from edgekit.compress.distill import distill, score
    from edgekit.compress.search import apply_plan
    from edgekit.convert.outputs import select_output
    from edgekit.convert.reparam import reparameterize
    from edgekit.convert.source import resolve_source
    from edgekit.convert.task import said_by_source, task_of
    from edgekit.cache import MeasurementCache, content_key
    from edgekit.targets import load_target

    say = progress or (lambda _m: None)
    clock = {"start": time.perf_counter()}
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
        from edgekit.compress.tiles import training_tiles

        train = tiles = training_tiles(deployed, Path(config.images), src.recipe.input_size, src.recipe.preprocess,
                                       config.train_samples or MAX_TILES, config.batch, say)
        say(f"{len(train.windows)} tiles of {Path(config.images).name}: class shares "
            f"{', '.join(f'{100 * s:.1f}%' for s in train.shares)} (last: unsure) vs the image's "
            f"{', '.join(f'{100 * s:.1f}%' for s in train.image_shares)}")
    cache = MeasurementCache(config.cache)
    key = {"source": src.sha256 or src.name, "name": src.name, "v": 1}
    from edgekit.compress.depth import can_drop
    from edgekit.compress.prune import family_of

    shortenable = can_drop(deployed)
    plans = plans_for(config.level, family_of(deployed), depth=shortenable)
    if not shortenable and any(p.depth for p in LEVELS[config.level]):
        say("depth cuts left out: no list of blocks this model lets edgekit shorten (see edgekit/compress/depth.py)")
    say(f"measure the original and {len(plans)} level-{config.level} plans")
    base, measured = measure_plans(deployed, sample, plans, cache, key, config.latency_runs, config.threads,
                                   config.importance, target.cpu_runtime, say)
    for m in [PlanFigures(Plan(), base)] + measured:
        f = m.figures
        say(f"{m.plan.name:<22} {f['latency_ms']:8.1f} ms {base['latency_ms'] / f['latency_ms']:5.2f}x "
            f"{f['params'] / 1e6:6.2f} M params {f['macs'] / 1e9:6.2f} GMACs {f['size_mb']:6.1f} MB")
    clock["search"] = time.perf_counter() - clock["start"]
    feasible = feasible_plans(base, measured, goal, config.level)  # raises before anything is written
    reference = _labels(deployed, val.batches)
    teacher_metric = score(deployed, val.batches, reference, val.masks, recipe.task)
    steps = int(config.recovery.steps * RECOVERY_SCALE[config.level])
    settings = DistillSettings(**{**asdict(config.recovery), "steps": steps})
    recovering = time.perf_counter()

    def recover(candidate: PlanFigures):
        student, details = apply_plan(deployed, sample, candidate.plan, config.importance)
        ckpt_key = content_key(key, candidate.plan.key(), config.importance, asdict(settings), train.key(), val.key())
        ckpt = (Path(config.cache) / "files" / "compress" / f"{ckpt_key}.pt") if config.cache else None
        recovery = distill(deployed, student, train.batches, val.batches, recipe.task, settings,
                           train_masks=train.masks, val_masks=val.masks, checkpoint=ckpt,
                           progress=lambda m, p=candidate.plan.name: say(f"{p}: {m}"))
        metric = score(recovery.model, val.batches, reference, val.masks, recipe.task)
        drop = 100 * (teacher_metric - metric)
        return {"metric": metric, "drop": drop, "steps": recovery.steps}, (candidate, recovery, details, metric, drop)

    tried, chosen = attempt_in_turn(feasible, base, goal, recover, config.max_candidates,
                                    None if config.time_budget_min is None else 60 * config.time_budget_min, say)
    clock["recovery"] = time.perf_counter() - recovering
    if chosen is None:
        raise InfeasibleError(f"no plan meeting the speed goal holds --max-drop {goal.max_drop:g} after recovery: "
                          f"{attempts_line(tried, len(feasible), config)}; allow a larger drop, a smaller speed-up, "
                          "more recovery steps or --max-candidates (nothing written)")
    candidate, recovery, details, metric, drop = chosen
    if config.sparsity:
        recovery, details, metric, drop = _sparse(deployed, recovery, details, train, val, reference, teacher_metric,
                                                  recipe.task, settings, goal, say, tried)
    agreement = score(recovery.model, val.batches, reference, None, "classification")
    kind, runtime = _runtime(target)
    report = CompressReport(
        source=source, target=target.name, level=config.level, goal=goal.to_dict(), plan=candidate.plan.name,
        before=base, after=candidate.figures,
        accuracy={"metric": _metric_name(recipe.task, val.has_masks), "before": teacher_metric, "after": metric,
                  "drop": round(drop, 3), "agreement": agreement},
        latency_kind=kind, runtime=runtime,
        candidates=tuple({"plan": m.plan.name, "figures": m.figures, "misses": goal.misses(m.figures, base)}
                         for m in measured),
        changes=details, recovery={**recovery.to_dict(), **({"tiles": tiles.to_dict()} if tiles else {})},
        tried=tuple(tried),
        seconds={"search": clock["search"], "recovery": clock["recovery"],
                 "total": time.perf_counter() - clock["start"]},
        cache={"hits": cache.hits, "misses": cache.misses},
    )
    from edgekit.artifact.compressed import write_output

    with atomic_dir(Path(out)) as folder:
        write_output(folder, recovery.model, recipe, source, candidate.plan.name,
                     {"family": details["prune"]["family"],
                      **({"sparsity": config.sparsity} if config.sparsity else {})})
        report.write(folder)
    return CompressResult(Path(out), report)


def _sparse(teacher, recovery, details: dict, train, val, reference, teacher_metric: float, task: str, settings,
            goal: Goal, say: Progress, tried: list):
    """The recovered network made 2:4 sparse (ModelOpt), recovered again with the mask enforced,
    exported and its pattern proved; a one-line error when it no longer holds the drop."""
    from edgekit.compress import sparsity
    from edgekit.compress.distill import distill, score

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
