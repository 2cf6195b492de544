"""The compile stage's proof: the compiled file against the deployable graph it compiles.

Both run on the same inputs: the build's held-out images when it has them (else its calibration
images), else one seeded standard-normal input (``edgekit compile`` of a folder or bundle). Each
output is held to the budget of the artifact's precision and of what the output holds,
:data:`BUDGETS`, the one rule (here, and nowhere else):

=============  ====================================  ============  ===========  ===========  ===========
output kind    what is compared                      fp32          fp16         int8         bf16
=============  ====================================  ============  ===========  ===========  ===========
logits         largest difference, share of range;   1e-3          1e-2, 99 %   0.1, 98 %    0.1, 98 %
               argmax labels (axis 1) that agree
probabilities  largest difference (0..1 values)      1e-3          1e-2         0.05         0.05
boxes          largest difference, pixels + share    0.05 px +     0.5 px +     2 px +       2 px +
               of range (a detector's raw output)    1e-4          5e-3         0.1          0.1
=============  ====================================  ============  ===========  ===========  ===========

Why they differ: an fp32 plan differs from its graph by float re-association only; fp16 by
half-precision rounding; an int8 plan runs fused integer kernels (QLinearConv, QGemm, QLinearAdd)
where the graph's Q/DQ pairs simulate them in float, and those round differently by design, by a
few steps of each layer's scale. Measured with ONNX Runtime 1.24 (fused plan against the Q/DQ
graph run as written): FastViT-SA12 FPN (trained) 2.0 % of the range and 99.98 % of labels on
held-out images, ConvNeXt-T 1.7 % / 99.7 %, MobileOne-S1 1.7 % / 100 %, the tests' ConvNeXt + FPN
1.3 % / 99.9 %; a detector's raw output (MobileOne-S0 trees, 256 px tiles) 18.7 px. The int8
budgets hold those with room and still stop a plan that is wrong (a sigmoid map moved by 0.19
is four times its budget). bf16 (the FP32 graph computed in bfloat16 by OpenVINO) keeps 8
significant bits where fp16 keeps 11: the demo model's logits moved 4.1 % of their range against
FP32 (99.9 % of labels equal) on an AVX-512 BF16 EPYC; its IR is held against the same graph run
in bf16, and int8's budgets hold it with the same room.

What an output holds is read, not guessed where the model says it: ``probabilities`` when the
build found them (``manifest.output``) or every value is in 0..1; ``boxes`` for a detector's other
float outputs; ``logits`` otherwise. Integer outputs (class ids, NMS indices) and outputs whose
shape changes with the input (NMS) are reported, never budgeted.

NumPy only: the device side imports no torch.
"""
from __future__ import annotations

__all__ = ["Budget", "BUDGETS", "KINDS", "output_kind", "CheckInputs", "OutputCheck", "PlanCheck", "Reference",
           "MAX_IMAGES"]

from dataclasses import dataclass
from typing import Iterable

import numpy as np

KINDS = ("logits", "probabilities", "boxes")
MAX_IMAGES = 8  # images a compile check runs (each one through the graph and every plan tried)


@dataclass(frozen=True)
class Budget:
    """What one output of a compiled file may differ by from its graph.

    Attributes:
        abs: in the output's units (probability, pixel).
        rel: share of the output's range (the graph's largest magnitude on the inputs).
        agreement: least share of argmax labels along axis 1 that must agree (None: not checked).
    """

    abs: float = 0.0
    rel: float = 0.0
    agreement: float | None = None

    def limit(self, scale: float) -> float:
        """Largest difference accepted for an output whose values reach ``scale`` in magnitude."""
        return self.abs + self.rel * scale


BUDGETS: dict[str, dict[str, Budget]] = {
    "fp32": {"logits": Budget(rel=1e-3), "probabilities": Budget(abs=1e-3), "boxes": Budget(abs=0.05, rel=1e-4)},
    "fp16": {"logits": Budget(rel=1e-2, agreement=0.99), "probabilities": Budget(abs=1e-2),
             "boxes": Budget(abs=0.5, rel=5e-3)},
    "int8": {"logits": Budget(rel=0.1, agreement=0.98), "probabilities": Budget(abs=0.05),
             "boxes": Budget(abs=2.0, rel=0.1)},
    "bf16": {"logits": Budget(rel=0.1, agreement=0.98), "probabilities": Budget(abs=0.05),
             "boxes": Budget(abs=2.0, rel=0.1)},
}


def output_kind(task: str, low: float, high: float, probabilities: bool = False) -> str:
    """What an output holds, from the build's finding and the range its values took (``low``..``high``)."""
    if probabilities or (low >= 0.0 and high <= 1.0):
        return "probabilities"
    return "boxes" if task == "detection" else "logits"


@dataclass(frozen=True)
class CheckInputs:
    """What the compile stage verifies on: batches for the model's (first) input, and what they are.

    Attributes:
        batches: float32 (N, C, H, W) arrays, preprocessed as the model takes them.
        source: what they are, for the manifest and report ("8 held-out images").
    """

    batches: tuple[np.ndarray, ...]
    source: str

    @property
    def images(self) -> int:
        return sum(len(b) for b in self.batches)


@dataclass(frozen=True)
class OutputCheck:
    """One output of the compiled file against the graph's.

    Attributes:
        name: the output.
        kind: ``logits``, ``probabilities``, ``boxes``, or ``not budgeted`` (integers, or a
            shape that changed: NMS outputs).
        max_abs: largest absolute difference.
        scale: the graph's largest magnitude (the range ``rel`` budgets are shares of).
        limit: the largest difference accepted (None: not budgeted).
        agreement: share of equal argmax labels along axis 1 (None: one channel, or not budgeted).
        budget: the rule applied (None: not budgeted).
    """

    name: str
    kind: str
    max_abs: float
    scale: float
    limit: float | None
    agreement: float | None
    budget: Budget | None

    @property
    def holds(self) -> bool:
        if self.budget is None:
            return True
        labels = self.budget.agreement is None or self.agreement is None or self.agreement >= self.budget.agreement
        return self.max_abs <= self.limit and labels

    @property
    def excess(self) -> float:
        """How far past its budget (1: at it); orders the outputs for the one-line message."""
        if self.budget is None:
            return 0.0
        error = self.max_abs / self.limit if self.limit > 0 else (np.inf if self.max_abs > 0 else 0.0)
        short = 0.0
        if self.budget.agreement is not None and self.agreement is not None:
            short = (1.0 - self.agreement) / max(1.0 - self.budget.agreement, 1e-12)
        return float(max(error, short))

    def describe(self) -> str:
        """``0.192 on 'prob' (int8 probabilities budget 0.05)``, with agreement where it counts."""
        if self.budget is None:
            return f"{self.max_abs:.3g} on {self.name!r} ({self.kind})"
        labels = "" if self.agreement is None or self.budget.agreement is None else (
            f", labels agree {100 * self.agreement:.2f}% (at least {100 * self.budget.agreement:g}%)")
        return f"{self.max_abs:.3g} on {self.name!r} ({self.kind}, budget {self.limit:.3g}{labels})"

    def to_dict(self) -> dict:
        return {"kind": self.kind, "max_abs_error": self.max_abs, "output_max_abs": self.scale, "limit": self.limit,
                "agreement": self.agreement, "min_agreement": self.budget.agreement if self.budget else None,
                "holds": self.holds}


@dataclass(frozen=True)
class PlanCheck:
    """Every output of a compiled file against the graph, on the same inputs.

    Attributes:
        precision: the artifact's precision (the budgets' row).
        outputs: one check per output.
        inputs: what it ran on ("8 held-out images", "standard normal, seed 0").
    """

    precision: str
    outputs: tuple[OutputCheck, ...]
    inputs: str

    @property
    def holds(self) -> bool:
        return all(o.holds for o in self.outputs)

    @property
    def worst(self) -> OutputCheck:
        """The output furthest past (or nearest to) its budget."""
        budgeted = [o for o in self.outputs if o.budget is not None] or list(self.outputs)
        return max(budgeted, key=lambda o: (o.excess, o.max_abs))

    def describe(self) -> str:
        return f"{self.worst.describe()} on {self.inputs}"

    def summary(self) -> dict:
        """The worst output's figures: ``max_abs_error``, ``output_max_abs``, ``limit``, ``kind``, ``agreement``."""
        worst = self.worst
        return {"output": worst.name, "max_abs_error": worst.max_abs, "output_max_abs": worst.scale,
                "limit": worst.limit, "kind": worst.kind, "agreement": worst.agreement}

    def to_dict(self) -> dict:
        """The manifest's record; ``max_abs_error`` / ``output_max_abs`` / ``limit`` are the worst output's."""
        return self.summary() | {"holds": self.holds, "input": self.inputs, "precision": self.precision,
                                 "outputs": {o.name: o.to_dict() for o in self.outputs}}


class Reference:
    """The graph's outputs on the check's inputs, computed once and compared with each plan tried.

    Holds every output of at most :data:`MAX_IMAGES` images (the graph's, not the inputs').
    """

    def __init__(self, feeds: Iterable[dict[str, np.ndarray]], run, precision: str, task: str,
                 probabilities: bool = False, inputs: str = ""):
        self.feeds = list(feeds)
        self.outputs = [run(feed) for feed in self.feeds]
        self.precision, self.task, self.probabilities, self.inputs = precision, task, probabilities, inputs

    def compare(self, run) -> PlanCheck:
        """Run ``run`` (feed -> outputs by name) on every feed and hold each output to its budget."""
        got = [run(feed) for feed in self.feeds]
        names = list(self.outputs[0])
        return PlanCheck(self.precision, tuple(self._output(n, [r[n] for r in self.outputs], [g[n] for g in got])
                                               for n in names), self.inputs)

    def _output(self, name: str, ref: list[np.ndarray], got: list[np.ndarray]) -> OutputCheck:
        if any(r.shape != g.shape for r, g in zip(ref, got)):
            return OutputCheck(name, "not budgeted", float("nan"), float("nan"), None, None, None)
        ref64 = [np.asarray(r, np.float64) for r in ref]
        max_abs = max(float(np.abs(r - np.asarray(g, np.float64)).max(initial=0.0)) for r, g in zip(ref64, got))
        scale = max(float(np.abs(r).max(initial=0.0)) for r in ref64)
        if not all(np.issubdtype(r.dtype, np.floating) for r in ref):
            return OutputCheck(name, "not budgeted", max_abs, scale, None, None, None)
        low = min(float(r.min(initial=np.inf)) for r in ref64)
        high = max(float(r.max(initial=-np.inf)) for r in ref64)
        kind = output_kind(self.task, low, high, self.probabilities)
        budget = BUDGETS[self.precision][kind]
        agreement = _agreement(ref, got) if kind != "boxes" else None
        return OutputCheck(name, kind, max_abs, scale, budget.limit(scale), agreement, budget)


def _agreement(ref: list[np.ndarray], got: list[np.ndarray]) -> float | None:
    """Share of equal argmax labels along axis 1 (classes), None for a single channel."""
    if ref[0].ndim < 2 or ref[0].shape[1] < 2:
        return None
    same = sum(int((r.argmax(1) == g.argmax(1)).sum()) for r, g in zip(ref, got))
    return same / sum(r.argmax(1).size for r in ref)
