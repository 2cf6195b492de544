"""`compress`: source + images + goal -> a smaller, recovered network edgekit can build.

Steps: load and reparameterize the source; measure the original and every plan of the level on
the target (cached); keep the plans that meet the speed/size goal (else: a one-line error, nothing
written); from the least compressed, recover each by distillation until one holds --max-drop;
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
from edgekit.errors import ConfigError
from edgekit.preprocess import InputOptions

Progress = Callable[[str], None]
TRIES = {1: 1, 2: 2, 3: 3}
RECOVERY_SCALE = {1: 1.0, 2: 1.0, 3: 2.0}


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

    def __post_init__(self) -> None:
        from edgekit.compress.sparsity import PATTERNS

        if self.level not in LEVELS:
            raise ConfigError(f"--level {self.level}: choose one of {', '.join(map(str, LEVELS))}")
        if self.sparsity is not None and self.sparsity not in PATTERNS:
            raise ConfigError(f"--sparsity {self.sparsity}: choose one of {', '.join(PATTERNS)}")


@dataclass(frozen=True)
class CompressResult:
    out: Path
    report: CompressReport


def _data(config: CompressConfig, recipe):
    from edgekit.convert.calibration import CalibrationSet
    from edgekit.optimize.evaluate import ValidationData

    available = len(CalibrationSet(config.images, recipe.input_size, recipe.preprocess).order)  # a listing only
    samples = available if config.train_samples is None else min(config.train_samples, available)
    train = ValidationData(config.images, recipe.input_size, recipe.preprocess, batch=min(config.batch, samples),
                           samples=samples)
    val = ValidationData(config.val, recipe.input_size, recipe.preprocess, batch=1, samples=config.val_samples)
    return train, val


def _runtime(target) -> tuple[str, str]:
    from edgekit.profile.conditions import cpu_name

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
    from edgekit.optimize.cache import MeasurementCache, content_key
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
    sample = torch.from_numpy(train.batches[0][:1])
    say("load and reparameterize")
    model, output = select_output(src.load_model(), sample)
    recipe = task_of(src, config.task, [(output.chosen, output.shape)]).applied(src).recipe
    refuse_detection(recipe.task)
    deployed = reparameterize(model, sample).model
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
    tried, chosen = [], None
    for candidate in feasible[: TRIES[config.level]]:
        student, details = apply_plan(deployed, sample, candidate.plan, config.importance)
        ckpt_key = content_key(key, candidate.plan.key(), config.importance, asdict(settings), train.key(), val.key())
        ckpt = (Path(config.cache) / "files" / "compress" / f"{ckpt_key}.pt") if config.cache else None
        recovery = distill(deployed, student, train.batches, val.batches, recipe.task, settings,
                           train_masks=train.masks, val_masks=val.masks, checkpoint=ckpt,
                           progress=lambda m, p=candidate.plan.name: say(f"{p}: {m}"))
        metric = score(recovery.model, val.batches, reference, val.masks, recipe.task)
        drop = 100 * (teacher_metric - metric)
        tried.append({"plan": candidate.plan.name, "metric": metric, "drop": round(drop, 3), "steps": recovery.steps})
        if drop <= goal.max_drop:
            chosen = (candidate, recovery, details, metric, drop)
            break
    clock["recovery"] = time.perf_counter() - clock["start"] - clock["search"]
    if chosen is None:
        best = min(tried, key=lambda t: t["drop"])
        raise ConfigError(f"no plan meeting the speed goal holds --max-drop {goal.max_drop:g}: best {best['plan']} "
                          f"loses {best['drop']:.2f} points after recovery; allow a larger drop, a smaller speed-up, "
                          "or more recovery steps (nothing written)")
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
        changes=details, recovery=recovery.to_dict(), tried=tuple(tried),
        seconds={"search": clock["search"], "recovery": clock["recovery"],
                 "total": time.perf_counter() - clock["start"]},
        cache={"hits": cache.hits, "misses": cache.misses},
    )
    from edgekit.compress.output import write_output

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
        raise ConfigError(f"2:4 sparsity loses {drop:.2f} points after recovery (--max-drop {goal.max_drop:g}); "
                          "allow a larger drop or more recovery steps (nothing written)")
    return replace(again, model=model), {**details, "sparsity": {"pattern": "2:4", **check.to_dict()}}, metric, drop


def _labels(model, batches):
    import torch

    with torch.no_grad():
        return [model(torch.from_numpy(b)).argmax(1).numpy() for b in batches]


def _metric_name(task: str, masks: bool) -> str:
    if task != "segmentation":
        return "top-1 agreement with the original"
    return "mIoU vs ground truth" if masks else "mIoU vs the original (no masks: agreement)"
