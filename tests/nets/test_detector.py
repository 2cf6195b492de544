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
