"""One way to score: a held-out set (images, optional masks) and one scorer.

:class:`~edgekit.evaluate.scoring.Scorer` accumulates agreement with a reference (FP32), mIoU
against it and against ground truth, and top-1; build verification, optimize, compare and sweep
all score through it. :class:`~edgekit.evaluate.held_out.HeldOutSet` feeds input-sized batches
with their fitted masks. NumPy only.
"""
from edgekit.evaluate.held_out import LABELS_FILE, HeldOutSet, ValidationData, read_labels
from edgekit.evaluate.scoring import Score, Scorer

__all__ = ["HeldOutSet", "LABELS_FILE", "Score", "Scorer", "ValidationData", "read_labels"]
