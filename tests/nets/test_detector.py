"""The demo detector network: YOLOv8 raw layout, boxes consistent with its dense predictions."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from edgekit.nets.detector import create_detector  # noqa: E402


def test_output_is_yolov8_layout_with_pixel_boxes_and_scores():
    torch.manual_seed(0)
    model = create_detector("test_convnext", num_classes=2, channels=16, out_indices=(1, 2, 3)).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        out = model(x)
        boxes, logits, points, strides = model.dense(x)
    n = sum((64 // s) ** 2 for s in model.head.strides)
    assert out.shape == (1, 4 + 2, n)
    # centre and size are the dense x1y1x2y2 boxes re-expressed; scores are sigmoid probabilities
    torch.testing.assert_close(out[0, 0], (boxes[0, :, 0] + boxes[0, :, 2]) / 2)
    torch.testing.assert_close(out[0, 3], boxes[0, :, 3] - boxes[0, :, 1])
    torch.testing.assert_close(out[0, 4:].T, logits[0].sigmoid())
    assert (out[0, 2:4] > 0).all() and ((out[0, 4:] > 0) & (out[0, 4:] < 1)).all()
    # every grid point lies inside its own box (side distances are positive)
    assert ((points[:, 0] > boxes[0, :, 0]) & (points[:, 0] < boxes[0, :, 2])).all()


def test_deploy_form_has_fewer_branches_and_the_same_layout():
    train = create_detector("mobileone_s0", num_classes=1, channels=16)
    deploy = create_detector("mobileone_s0", num_classes=1, channels=16, deploy=True)
    assert sum(p.numel() for p in deploy.parameters()) < sum(p.numel() for p in train.parameters())
    with torch.no_grad():
        assert deploy.eval()(torch.randn(1, 3, 64, 64)).shape == train.eval()(torch.randn(1, 3, 64, 64)).shape



def test_the_shipped_tree_detector_loads_its_weights():
    """The committed weights fit the recipe's (single-branch) network exactly."""
    from edgekit.nets.factory import model_from_recipe
    from edgekit.recipes import load_recipe

    recipe = load_recipe("mobileone_s0_trees")
    assert recipe.checkpoint is not None and recipe.checkpoint.stat().st_size <= 10 * 2**20
    model = model_from_recipe(recipe)  # loads the checkpoint; a missing or extra key would raise
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 64, 64)).shape[:2] == (1, 5)


def test_the_shipped_tree_detector_finds_a_held_out_crown():
    """On a crop of the held-out NEON crowns, its best score is above 0.25 and lies on a real crown
    (needs deepforest's data: `pip install --no-deps deepforest==2.1.0`, as the benches do)."""
    import numpy as np

    import importlib.util

    if importlib.util.find_spec("deepforest") is None:  # never imported: it pulls in torch's trainers
        pytest.skip("the NEON tree data needs `pip install --no-deps deepforest==2.1.0`")
    from edgekit.data import neon_trees
    from edgekit.nets.factory import model_from_recipe
    from edgekit.recipes import load_recipe

    recipe = load_recipe("mobileone_s0_trees")
    model = model_from_recipe(recipe)
    image = neon_trees.load_image()
    col = neon_trees.split_column(image.shape[1])
    crop = image[600:856, col + 100:col + 356]
    with torch.no_grad():
        out = model(torch.from_numpy(recipe.preprocess.apply(crop.astype(np.float32))))
    best = out[0, :, out[0, 4].argmax()]
    crowns = neon_trees.boxes_in_columns(neon_trees.load_boxes(), col + 100, col + 356)
    centres = np.stack([(crowns[:, 0] + crowns[:, 2]) / 2, (crowns[:, 1] + crowns[:, 3]) / 2 - 600], 1)  # crop pixels
    assert float(best[4]) > 0.25
    assert np.min(np.hypot(centres[:, 0] - float(best[0]), centres[:, 1] - float(best[1]))) < 30  # on a crown
