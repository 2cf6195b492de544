"""One scorer: its figures against hand counts, and compare's mIoU equal to infer's written mask."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from edgekit.evaluate import Scorer
from edgekit.images import read_mask
from edgekit.metrics import miou
from edgekit.profile import CompareConfig, TimingConfig, compare_artifacts
from edgekit.tiling.execute import TileConfig, infer_image
from tests.conftest import make_cpu_artifact


def test_segmentation_score_by_hand():
    ref = np.array([[0, 0, 1, 1]])
    lab = np.array([[0, 1, 1, 1]])
    truth = np.array([[0, 0, 1, 255]])  # 255: not scored
    scorer = Scorer("segmentation", 2)
    scorer.add(ref, lab, truth)
    s = scorer.score()
    assert s.agreement == 0.75 and s.images == 1
    assert s.miou_vs_reference == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert s.miou == pytest.approx((1 / 2 + 1 / 2) / 2) and s.accuracy == pytest.approx(2 / 3)
    assert s.metric == s.miou and s.ground_truth


def test_classification_without_truth_is_top1_agreement():
    scorer = Scorer("classification", 5)
    scorer.add(np.array([1, 2, 3, 4]), np.array([1, 2, 0, 4]), images=4)
    s = scorer.score()
    assert s.metric == s.agreement == 0.75 and s.miou_vs_reference is None and not s.ground_truth


def test_nodata_predictions_are_not_scored():
    scorer = Scorer("segmentation", 2)
    scorer.add(np.array([0, 1, 255]), np.array([0, 1, 255]), np.array([0, 1, 1]))
    assert scorer.score().accuracy == 1.0


@pytest.mark.parametrize("overlap, blend", [(16, "gaussian"), (8, "crop")])
def test_compare_scores_what_infer_writes(tmp_path, overlap, blend):
    art = make_cpu_artifact(tmp_path / "art", size=32, seed=4)
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir(), masks.mkdir()
    rng = np.random.default_rng(1)
    for i, (h, w) in enumerate([(70, 90), (45, 100)]):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(images / f"s{i}.png")
        Image.fromarray(rng.integers(0, 3, (h, w), dtype=np.uint8)).save(masks / f"s{i}.png")
    config = CompareConfig(timing=TimingConfig(warmup_s=0, duration_s=0, iterations=1), overlap=overlap, blend=blend)
    report = compare_artifacts([art], images, masks, config)
    truth, predicted = [], []
    for path in sorted(images.iterdir()):
        infer_image(art, path, tmp_path / "mask.tif", TileConfig(overlap, blend))
        predicted.append(read_mask(tmp_path / "mask.tif").ravel())
        truth.append(read_mask(masks / path.name).ravel())
    expected = miou(np.concatenate(truth), np.concatenate(predicted), 3)
    assert 0.1 < expected < 0.9
    assert report.results[0].miou == pytest.approx(expected, abs=1e-12)
    assert f"overlap {overlap}, {blend}" in report.tiling
