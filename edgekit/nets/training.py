"""Resumable training for the repository's training scripts: one optimizer, one schedule, one checkpoint.

AdamW with a one-cycle learning rate; ``<run>/last.pt`` holds model, optimizer, schedule and step,
written atomically. A rerun resumes from it; a new ``--steps`` continues the one-cycle schedule as
if it had been that long from the start. Used by scripts/train_demo.py and scripts/train_detector.py.
"""
from __future__ import annotations

__all__ = ["Run"]

from pathlib import Path

import torch


class Run:
    """A training run in folder ``run``: ``opt``, ``sched`` and ``step`` (0, or where it stopped)."""

    def __init__(self, run: Path, model: torch.nn.Module, lr: float, steps: int, weight_decay: float = 0.05):
        self.model, self.ckpt = model, Path(run) / "last.pt"
        self.ckpt.parent.mkdir(parents=True, exist_ok=True)
        self.opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
        self.sched = torch.optim.lr_scheduler.OneCycleLR(self.opt, max_lr=lr, total_steps=steps, pct_start=0.05)
        self.step = 0
        if self.ckpt.exists():
            self._resume(lr, steps)

    def _resume(self, lr: float, steps: int) -> None:
        state = torch.load(self.ckpt, map_location="cpu", weights_only=False)  # written by this class
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["opt"])
        self.step = state["step"]
        if state["sched"]["total_steps"] == steps:
            self.sched.load_state_dict(state["sched"])
        else:
            self.sched = torch.optim.lr_scheduler.OneCycleLR(
                self.opt, max_lr=lr, total_steps=steps, pct_start=0.05, last_epoch=self.step - 1)
        print(f"resumed at step {self.step}", flush=True)

    def save(self) -> None:
        """Write the checkpoint atomically (temporary file, then rename)."""
        tmp = self.ckpt.with_suffix(".tmp")
        torch.save({"model": self.model.state_dict(), "opt": self.opt.state_dict(),
                    "sched": self.sched.state_dict(), "step": self.step}, tmp)
        tmp.replace(self.ckpt)
