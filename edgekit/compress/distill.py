"""Recovery: fine-tune the compressed student to imitate the original teacher on the user's images.

Loss: KL(teacher || student) of temperature-softened logits, times T^2, over the class axis:
per pixel for segmentation (N, C, H, W), per image for classification (N, C); plus
``ce_weight`` x cross-entropy when the training images have masks/labels. No labels are needed.

The held-out metric is scored every ``eval_every`` steps (:func:`score`: mIoU against masks when
the validation set has them, else agreement with the teacher's argmax); the best student is kept,
and training stops after ``patience`` evaluations without improvement. Every evaluation writes a
checkpoint (student, optimizer, step, curve), so an interrupted run resumes where it stopped.
"""
from __future__ import annotations

__all__ = ["DistillSettings", "Recovery", "distill", "divergence", "score"]

import copy
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from edgekit.atomic import atomic_file
from edgekit.evaluate import Scorer


@dataclass(frozen=True)
class DistillSettings:
    """Recovery training.

    Attributes:
        steps: optimizer steps at most.
        lr: AdamW learning rate (cosine decay to 0). 1e-3 by default: on the demo model, 1e-4
            left prune50+rank25+embed50 6.66 points below its teacher after 300 steps and 1e-3
            0.57 points; prune62 lost 0.88 against 0.53 (bench/compress_demo.py). The best
            held-out checkpoint is kept, so a rate too high for a model cannot leave it worse
            than the untrained cut.
        temperature: softening of both logits.
        ce_weight: weight of the cross-entropy term when labels exist.
        eval_every: steps between held-out evaluations (and checkpoints).
        patience: evaluations without improvement before stopping early.
        threads: torch intra-op threads (0: leave torch's default).
    """

    steps: int = 200
    lr: float = 1e-3
    temperature: float = 2.0
    ce_weight: float = 0.5
    eval_every: int = 25
    patience: int = 3
    threads: int = 0


@dataclass(frozen=True)
class Recovery:
    """The recovered student and its curve: [{step, loss, metric}] at each evaluation."""

    model: nn.Module
    curve: tuple[dict, ...] = ()
    best_metric: float = 0.0
    steps: int = 0
    stopped_early: bool = False
    resumed_from: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict:
        data = asdict(self)
        data.pop("model")
        return data


def divergence(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(teacher || student) of softened logits, times T^2, averaged over images and pixels."""
    t = temperature
    log_s = F.log_softmax(student_logits / t, dim=1)
    log_t = F.log_softmax(teacher_logits / t, dim=1)
    kl = (log_t.exp() * (log_t - log_s)).sum(dim=1)
    return kl.mean() * t * t


@torch.no_grad()
def score(model: nn.Module, batches: list[np.ndarray], reference: list[np.ndarray], masks: list[np.ndarray] | None,
          task: str) -> float:
    """Held-out metric in [0, 1], scored by the one scorer (:class:`~edgekit.evaluate.Scorer`, as
    build and compare score): mIoU vs ``masks`` (segmentation with masks; label 255 not scored),
    else mIoU vs the ``reference`` labels (segmentation) or top-1 agreement with them."""
    model.eval()
    scorer = None
    truth = masks if task == "segmentation" and masks is not None else [None] * len(batches)
    for batch, ref, t in zip(batches, reference, truth):
        logits = model(torch.from_numpy(batch))
        scorer = scorer or Scorer(task, logits.shape[1])
        labels = logits.argmax(1).numpy()
        scorer.add(ref, labels, t, len(labels))
    return float(scorer.score().metric)


def _save(path: Path, state: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as tmp:
        torch.save(state, tmp)


def distill(teacher: nn.Module, student: nn.Module, train: list[np.ndarray], val: list[np.ndarray],
            task: str, settings: DistillSettings = DistillSettings(), train_masks: list[np.ndarray] | None = None,
            val_masks: list[np.ndarray] | None = None, checkpoint: Path | None = None,
            progress: Callable[[str], None] | None = None) -> Recovery:
    """Recover ``student`` (a copy is trained) towards ``teacher`` on ``train`` batches.

    Args:
        train / val: preprocessed (N, C, H, W) float32 batches.
        train_masks / val_masks: labels aligned with the batches, when known.
        checkpoint: resume from / write to this file.
    """
    say = progress or (lambda _m: None)
    start = time.perf_counter()
    if settings.threads:
        torch.set_num_threads(settings.threads)
    teacher = teacher.eval()
    student = copy.deepcopy(student)
    with torch.no_grad():
        targets = [teacher(torch.from_numpy(b)) for b in train]
        reference = [teacher(torch.from_numpy(b)).argmax(1).numpy() for b in val]
    optimizer = torch.optim.AdamW(student.parameters(), lr=settings.lr, weight_decay=0.0)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(settings.steps, 1))
    step, curve, resumed = 0, [], 0
    best = (score(student, val, reference, val_masks, task), copy.deepcopy(student.state_dict()))
    curve.append({"step": 0, "loss": None, "metric": round(best[0], 6)})
    if checkpoint is not None and Path(checkpoint).is_file():
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        student.load_state_dict(state["student"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step, curve, resumed = state["step"], list(state["curve"]), state["step"]
        best = (state["best_metric"], state["best"])
    stale, losses = _stale(curve), []
    while step < settings.steps and stale < settings.patience:
        student.train()
        i = step % len(train)
        out = student(torch.from_numpy(train[i]))
        loss = divergence(out, targets[i], settings.temperature)
        if train_masks is not None and settings.ce_weight > 0:
            loss = loss + settings.ce_weight * F.cross_entropy(out, torch.from_numpy(train_masks[i]).long())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        step += 1
        losses.append(loss.item())
        if step % settings.eval_every == 0 or step == settings.steps:
            metric = score(student, val, reference, val_masks, task)
            curve.append({"step": step, "loss": round(float(np.mean(losses)), 6), "metric": round(metric, 6)})
            losses = []
            if metric > best[0]:
                best = (metric, copy.deepcopy(student.state_dict()))
            stale = _stale(curve)
            say(f"recover step {step}/{settings.steps}  loss {curve[-1]['loss']:.4f}  held-out {100 * metric:.2f}  "
                f"best {100 * best[0]:.2f}")
            if checkpoint is not None:
                _save(Path(checkpoint), {"student": student.state_dict(), "optimizer": optimizer.state_dict(),
                                         "scheduler": scheduler.state_dict(), "step": step, "curve": curve,
                                         "best_metric": best[0], "best": best[1]})
    student.load_state_dict(best[1])
    return Recovery(student.eval(), tuple(curve), best[0], step, stale >= settings.patience, resumed,
                    time.perf_counter() - start)


def _stale(curve: list[dict]) -> int:
    """Evaluations since the best metric."""
    metrics = [c["metric"] for c in curve]
    return len(metrics) - 1 - int(np.argmax(metrics))
