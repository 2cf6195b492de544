"""compare_artifacts on three tiny artifacts: agreement, mIoU, ground truth, bad input."""
from __future__ import annotations


import numpy as np
import pytest
from PIL import Image

from edgekit.errors import ConfigError, InputError
from edgekit.profile import CompareConfig, TimingConfig, compare_artifacts
from tests.profile.profile_fixtures import (image_folder, make_cpu_artifact, name_classes, three_artifacts,  # noqa: F401
                                           write_images, write_masks)

FAST = CompareConfig(timing=TimingConfig(warmup_s=0.02, duration_s=0, iterations=5), overlap=8)


def test_reference_fp16_and_other_model(three_artifacts, image_folder):
    report = compare_artifacts(three_artifacts, image_folder, config=FAST)
    ref, half, other = report.results
    assert report.reference == "tiny_fp32" and report.images == 3 and report.pixels == 3 * 48 * 40
    assert ref.agreement == 1.0 and ref.miou_vs_reference == 1.0
    assert 0.97 < half.agreement <= 1.0  # same weights at fp16 resolution
    assert other.agreement < half.agreement  # a different model disagrees more
    assert half.precision == "fp16" and ref.latency.count == 5 and len(ref.samples_ms) == 5
    assert ref.miou is None and not report.ground_truth


def test_masks_equal_to_the_reference_give_it_perfect_accuracy(three_artifacts, image_folder, tmp_path):
    first = compare_artifacts(three_artifacts[:1], image_folder, config=FAST)
    assert first.results[0].agreement == 1.0
    # ground truth = the reference's own prediction, so accuracy vs truth == agreement with the reference
    from edgekit.artifact.folder import load_artifact
    from edgekit.tiling.execute import TileConfig, predict_mask

    artifact = load_artifact(three_artifacts[0])
    masks = tmp_path / "masks"
    masks.mkdir()
    for img in sorted(image_folder.glob("*.png")):
        Image.fromarray(predict_mask(artifact, img, TileConfig(overlap=8))).save(masks / img.name)
    report = compare_artifacts(three_artifacts, image_folder, masks, config=FAST)
    for r in report.results:
        assert r.accuracy == pytest.approx(r.agreement)
        assert r.miou == pytest.approx(r.miou_vs_reference)
    assert report.results[0].miou == 1.0 and report.ground_truth


@pytest.mark.parametrize("names, expected", [(("water", "land", "cloud"), ("water", "land", "cloud")),
                                             ((), ("class_0", "class_1", "class_2"))])
def test_iou_of_each_class_named_by_the_reference(three_artifacts, image_folder, tmp_path, names, expected):
    """Per-class IoU against the reference's labels and the truth, each equal to IoU counted on the
    masks `infer` gives; classes named as the reference names them, else class_<id>."""
    from edgekit.artifact.folder import load_artifact
    from edgekit.tiling.execute import TileConfig, predict_mask

    name_classes(three_artifacts[0], names)
    masks = write_masks(image_folder, tmp_path / "masks")
    report = compare_artifacts([three_artifacts[0], three_artifacts[2]], image_folder, masks, config=FAST)
    assert report.class_names == expected
    images = sorted(image_folder.glob("*.png"))
    labels = [[predict_mask(load_artifact(a), img, TileConfig(overlap=8)) for img in images]
              for a in (three_artifacts[0], three_artifacts[2])]
    truth = [np.asarray(Image.open(tmp_path / "masks" / img.name)) for img in images]

    def iou(a, b, c):
        inter = sum(int(((x == c) & (y == c)).sum()) for x, y in zip(a, b))
        union = sum(int(((x == c) | (y == c)).sum()) for x, y in zip(a, b))
        return inter / union if union else None

    for result, found in zip(report.results, labels):
        assert result.class_iou_vs_reference == pytest.approx(tuple(iou(labels[0], found, c) for c in range(3)))
        assert result.class_iou == pytest.approx(tuple(iou(truth, found, c) for c in range(3)))
    assert report.results[1].class_iou_vs_reference != report.results[0].class_iou_vs_reference


def test_ignore_label_is_not_scored(three_artifacts, image_folder, tmp_path):
    masks = write_masks(image_folder, tmp_path / "m", value=255)
    report = compare_artifacts(three_artifacts[:1], image_folder, masks, config=FAST)
    assert np.isnan(report.results[0].accuracy)


def test_mask_of_wrong_size(three_artifacts, image_folder, tmp_path):
    masks = write_masks(image_folder, tmp_path / "m", hw=(10, 10))
    with pytest.raises(InputError, match="must match their image"):
        compare_artifacts(three_artifacts, image_folder, masks, config=FAST)


def test_mask_with_labels_the_model_cannot_predict(three_artifacts, image_folder, tmp_path):
    masks = write_masks(image_folder, tmp_path / "m", value=7)
    with pytest.raises(InputError, match=r"labels \[7\].*3 classes"):
        compare_artifacts(three_artifacts, image_folder, masks, config=FAST)


def test_missing_mask(three_artifacts, image_folder, tmp_path):
    masks = write_masks(image_folder, tmp_path / "m")
    (masks / "img1.png").unlink()
    with pytest.raises(InputError, match="no mask for img1.png"):
        compare_artifacts(three_artifacts, image_folder, masks, config=FAST)


def test_no_images_and_images_smaller_than_a_tile(three_artifacts, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="holds no images"):
        compare_artifacts(three_artifacts, tmp_path / "empty", config=FAST)
    small = write_images(tmp_path / "small", count=1, hw=(16, 16))
    report = compare_artifacts(three_artifacts, small, config=FAST)  # padded, as edgekit infer does
    assert report.pixels == 16 * 16 and report.results[0].agreement == 1.0


def test_different_class_counts_cannot_be_compared(tmp_path, image_folder):
    a = make_cpu_artifact(tmp_path / "c3", size=32, classes=3)
    b = make_cpu_artifact(tmp_path / "c4", size=32, classes=4)
    with pytest.raises(ConfigError, match="4 classes, the reference 3"):
        compare_artifacts([a, b], image_folder, config=FAST)


def test_batch_larger_than_fixed_batch(three_artifacts, image_folder):
    with pytest.raises(InputError, match="batch 1 only"):
        compare_artifacts(three_artifacts, image_folder, config=CompareConfig(timing=FAST.timing, batch=2, overlap=8))


def test_dynamic_batch_gives_the_same_labels_as_batch_one(tmp_path, image_folder):
    dyn = make_cpu_artifact(tmp_path / "dyn", size=32, batch="N")
    one = compare_artifacts([dyn, dyn], image_folder, config=FAST)
    four = compare_artifacts([dyn, dyn], image_folder, config=CompareConfig(timing=FAST.timing, batch=4, overlap=8))
    assert four.results[1].batch == 4 and four.results[1].agreement == 1.0
    assert one.pixels == four.pixels


def _coco(path, corners, square=9):
    import json

    path.write_text(json.dumps({"annotations": [{"bbox": [c, r, square, square], "category_id": 1} for r, c in corners]}))


def test_detectors_are_scored_by_map_against_the_reference_and_truth(tmp_path):
    from tests.detect.detect_fixtures import make_detector_artifact, squares_image

    images, truth = tmp_path / "images", tmp_path / "truth"
    images.mkdir(), truth.mkdir()
    layouts = {"a": [(5, 5), (70, 100)], "b": [(40, 60)]}
    for name, corners in layouts.items():
        np.save(images / f"{name}.npy", squares_image(128, 160, corners))
        _coco(truth / f"{name}.json", corners)
    _coco(truth / "b.json", layouts["b"] + [(100, 10)])  # a truth box with no square in the image: lost recall
    ref = make_detector_artifact(tmp_path / "ref", size=64)
    loose = make_detector_artifact(tmp_path / "loose", size=64, square=7)  # 7-px boxes: IoU 0.6 with the truth
    report = compare_artifacts([ref, loose], images, config=CompareConfig(
        timing=TimingConfig(warmup_s=0.0, duration_s=0, iterations=3), overlap=16), boxes=truth)
    first, second = report.results
    assert report.task == "detection" and report.ground_truth and report.pixels == 2 * 128 * 160
    assert first.agreement == first.map50_vs_reference == 1.0 and first.map50_95_vs_reference == 1.0
    assert 0.5 < first.map50 < 1.0  # the unfindable box costs recall
    assert second.map50_95_vs_reference < first.map50_95_vs_reference
    assert second.map50_95 < first.map50_95


def test_boxes_are_for_detectors_only(three_artifacts, image_folder, tmp_path):
    with pytest.raises(InputError, match="--boxes are ground-truth boxes for detection"):
        compare_artifacts(three_artifacts, image_folder, config=FAST, boxes=tmp_path)


def test_missing_truth_file_is_named(tmp_path):
    from tests.detect.detect_fixtures import make_detector_artifact, squares_image

    (tmp_path / "images").mkdir(), (tmp_path / "truth").mkdir()
    np.save(tmp_path / "images" / "a.npy", squares_image(64, 64, [(5, 5)]))
    with pytest.raises(InputError, match="no ground-truth boxes for a"):
        compare_artifacts([make_detector_artifact(tmp_path / "d", size=64)], tmp_path / "images", config=FAST,
                          boxes=tmp_path / "truth")
