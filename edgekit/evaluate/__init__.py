"""One way to score, for the commands above the build: a held-out set and the one scorer.

:class:`~edgekit.scoring.Scorer` (a base module, so that build verification scores through it
too) accumulates agreement with a reference (FP32), mIoU against it and against ground truth, and
top-1; build verification, optimize, compare and sweep all score through it.
:class:`~edgekit.images.held_out.HeldOutSet` feeds input-sized batches with their fitted masks;
:class:`~edgekit.evaluate.held_out.ValidationData` holds one in memory for the searches. NumPy only.
"""
from edgekit.evaluate.held_out import ValidationData
from edgekit.images.held_out import LABELS_FILE, HeldOutSet, read_labels
from edgekit.scoring import Score, Scorer

__all__ = ["HeldOutSet", "LABELS_FILE", "Score", "Scorer", "ValidationData", "read_labels"]
