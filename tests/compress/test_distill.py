"""compress scores held-out images through the one scorer (edgekit.evaluate): the figures compare gives."""
import numpy as np
import torch
from torch import nn

from edgekit.compress.distill import score
from edgekit.evaluate import Scorer

from tests.compress.compress_fixtures import TinyCnn

CLASSES = 3


def _one_hot(masks: np.ndarray) -> np.ndarray:
    """(N, H, W) labels -> (N, CLASSES, H, W) inputs whose argmax is the label (255 reads as class 0)."""
    labels = np.where(masks == 255, 0, masks)
    return np.eye(CLASSES, dtype=np.float32)[labels].transpose(0, 3, 1, 2).copy()


def _masks(seed: int, n: int = 2, size: int = 16) -> np.ndarray:
    rng = np.random.default_rng(seed)
    masks = rng.integers(0, CLASSES, (n, size, size)).astype(np.int64)
    masks[:, :4, :] = 255  # nodata rows, allowed by edgekit/images/masks.py
    return masks


def test_a_perfect_model_scores_one_where_the_mask_says_255():
    masks = [_masks(0), _masks(1)]
    batches = [_one_hot(m) for m in masks]
    model = nn.Identity()
    reference = [model(torch.from_numpy(b)).argmax(1).numpy() for b in batches]
    assert score(model, batches, reference, masks, "segmentation") == 1.0  # 255 is ignored, not a 256th class


def test_compress_metric_is_the_one_scorers():
    masks = [_masks(2), _masks(3)]
    rng = np.random.default_rng(4)
    batches = [rng.standard_normal((2, 3, 16, 16)).astype(np.float32) for _ in masks]
    teacher, student = TinyCnn(seed=0).eval(), TinyCnn(seed=1).eval()
    with torch.no_grad():
        reference = [teacher(torch.from_numpy(b)).argmax(1).numpy() for b in batches]
        labels = [student(torch.from_numpy(b)).argmax(1).numpy() for b in batches]
    scorer = Scorer("segmentation", CLASSES)  # as compare builds it: the model's classes, 255 ignored
    for ref, lab, truth in zip(reference, labels, masks):
        scorer.add(ref, lab, truth, len(lab))
    expected = scorer.score()
    assert score(student, batches, reference, masks, "segmentation") == expected.miou
    assert score(student, batches, reference, None, "segmentation") == expected.miou_vs_reference
    assert score(student, batches, reference, None, "classification") == expected.agreement
