"""Recipes, targets, manifests, preprocessing: the data edgekit reads, and the errors it gives."""
import numpy as np
import pytest

from edgekit.atomic import atomic_dir, atomic_file
from edgekit.errors import ConfigError
from edgekit.metrics import agreement, confusion, iou_from_confusion, miou, output_error
from edgekit.preprocess import Preprocess
from edgekit.recipes import load_recipe
from edgekit.targets import list_targets, load_target


def test_targets_cover_the_devices_and_their_tensorrt_lines():
    targets = {t.name: t for t in list_targets()}
    assert {"cpu", "jetson-orin-nano", "jetson-orin-nx", "jetson-agx-orin", "rtx-a5000", "rtx-4090"} <= set(targets)
    assert targets["jetson-orin-nx"].tensorrt == "10.3" and targets["jetson-orin-nx"].dla_cores == 2
    assert targets["jetson-orin-nx-jp5"].trt_major == 8
    assert targets["jetson-orin-nano"].dla_cores == 0 and not targets["cpu"].is_tensorrt


def test_unknown_names_suggest_and_list():
    with pytest.raises(ConfigError, match="did you mean jetson-orin-nx"):
        load_target("jetson-orin-nz")
    with pytest.raises(ConfigError, match="known: .*fastvit_sa12_fpn"):
        load_recipe("resnet_unknown")


def test_target_with_unknown_key_is_refused(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("name: t\nkind: cpu\nbackend: onnxruntime\nflops: 3\n")
    with pytest.raises(ConfigError, match="unknown keys flops"):
        load_target(path)


def test_preprocess_matches_the_formula_and_channel_order():
    pre = Preprocess(mean=(0.5, 0.25, 0.0), std=(0.5, 0.25, 1.0))
    pixels = np.random.default_rng(0).integers(0, 255, (4, 5, 3), dtype=np.uint8)
    x = pre.apply(pixels)
    assert x.shape == (1, 3, 4, 5) and x.dtype == np.float32
    np.testing.assert_allclose(x[0, 1], (pixels[..., 1] / 255 - 0.25) / 0.25, rtol=1e-5)
    bgr = Preprocess(mean=(0, 0, 0), std=(1, 1, 1), channel_order="BGR").apply(pixels)
    np.testing.assert_allclose(bgr[0, 0], pixels[..., 2] / 255, rtol=1e-6)


def test_atomic_outputs_leave_nothing_on_failure(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_dir(tmp_path / "out") as d:
            (d / "half").write_text("x")
            raise RuntimeError
    with pytest.raises(KeyboardInterrupt):
        with atomic_file(tmp_path / "f.txt") as f:
            f.write_text("x")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old").write_text("old")
    with atomic_dir(tmp_path / "out") as d:
        (d / "new").write_text("new")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["new"]


def test_metrics_on_known_cases():
    truth = np.array([[0, 0, 1, 1], [2, 2, 1, 1]])
    pred = np.array([[0, 1, 1, 1], [2, 2, 1, 0]])
    cm = confusion(truth, pred, 3)
    assert cm.sum() == 8 and cm[0, 1] == 1 and cm[1, 0] == 1
    iou = iou_from_confusion(cm)
    np.testing.assert_allclose(iou, [1 / 3, 3 / 5, 1.0])
    assert miou(truth, pred, 3) == pytest.approx((1 / 3 + 3 / 5 + 1) / 3)
    assert agreement(truth, pred) == 0.75
    err = output_error(np.array([1.0, -4.0]), np.array([1.5, -4.0]))
    assert err.max_abs == 0.5 and err.max_rel == pytest.approx(0.125)
