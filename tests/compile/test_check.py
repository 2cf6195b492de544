"""The compile check's rule: what an output holds, the budget of each precision and kind, and the
verdict on arrays whose differences are known."""
from __future__ import annotations

import numpy as np
import pytest

from edgekit.artifact.manifest import PRECISIONS
from edgekit.compile.check import BUDGETS, KINDS, Reference, output_kind


def _reference(outputs: dict[str, np.ndarray], precision: str = "int8", task: str = "segmentation",
               probabilities: bool = False) -> Reference:
    return Reference([{"input": np.zeros(1, np.float32)}], lambda feed: outputs, precision, task, probabilities, "test")


def test_every_precision_budgets_every_kind_and_looser_as_rounding_coarsens():
    assert set(BUDGETS) == set(PRECISIONS) and all(set(BUDGETS[p]) == set(KINDS) for p in BUDGETS)
    for kind in KINDS:
        limits = [BUDGETS[p][kind].limit(100.0) for p in ("fp32", "fp16", "int8")]
        assert limits == sorted(limits) and limits[0] > 0


@pytest.mark.parametrize("task, low, high, probabilities, kind", [
    ("segmentation", -3.0, 5.0, False, "logits"),
    ("classification", 0.0, 1.0, False, "probabilities"),  # every value in 0..1: a sigmoid or softmax
    ("segmentation", -3.0, 5.0, True, "probabilities"),   # the build found probabilities
    ("detection", 0.0, 255.0, False, "boxes"),
    ("detection", 0.0, 1.0, False, "probabilities"),      # a detector's score output
])
def test_the_kind_of_an_output(task, low, high, probabilities, kind):
    assert output_kind(task, low, high, probabilities) == kind


def test_a_probability_map_has_an_absolute_budget():
    ref = np.random.default_rng(0).uniform(0, 1, (1, 1, 8, 8)).astype(np.float32)
    near, far = ref.copy(), ref.copy()
    near[0, 0, 0, 0] += 0.04
    far[0, 0, 0, 0] += 0.19  # a sigmoid map off by 0.19 (issue 21's figure): four times the int8 budget
    reference = _reference({"prob": ref})
    held = reference.compare(lambda feed: {"prob": near})
    assert held.holds and held.worst.kind == "probabilities" and held.worst.limit == pytest.approx(0.05)
    failed = reference.compare(lambda feed: {"prob": far})
    assert not failed.holds and "0.19 on 'prob' (probabilities, budget 0.05)" in failed.describe()
    assert not _reference({"prob": ref}, "fp32").compare(lambda feed: {"prob": near}).holds


def test_int8_logits_need_their_labels_as_well_as_a_small_error():
    """Within 10 % of the range everywhere, but 3 % of the pixels change class: the plan does not hold."""
    rng = np.random.default_rng(1)
    ref = rng.normal(0, 5, (1, 2, 10, 10)).astype(np.float32)
    ref[0, 1] = ref[0, 0] + 0.5  # class 1 wins everywhere, by 0.5
    flipped = ref.copy()
    flipped[0, 1, 0, :3] -= 0.6  # three of 100 pixels now go to class 0, each moved by 0.6
    scale = float(np.abs(ref).max())
    assert 0.6 <= 0.1 * scale  # the error alone is within the budget
    check = _reference({"logits": ref}).compare(lambda feed: {"logits": flipped})
    assert check.worst.agreement == pytest.approx(0.97) and not check.holds
    one = flipped.copy()
    one[0, 1, 0, 1:3] = ref[0, 1, 0, 1:3]  # one pixel of 100 changes: 99 % agree
    assert _reference({"logits": ref}).compare(lambda feed: {"logits": one}).holds


def test_boxes_are_held_in_pixels_and_integer_or_reshaped_outputs_are_not_budgeted():
    boxes = np.array([[[10.0, 20.0, 30.0, 40.0], [100.0, 110.0, 150.0, 200.0]]], np.float32)  # x1 y1 x2 y2
    ids = np.array([[1, 2]], np.int64)
    reference = _reference({"boxes": boxes, "classes": ids}, "fp16", "detection")
    moved = boxes + np.float32(1.5)  # budget 0.5 px + 0.5 % of 200 px = 1.5 px
    check = reference.compare(lambda feed: {"boxes": moved, "classes": ids + 1})
    by_name = {o.name: o for o in check.outputs}
    assert by_name["boxes"].kind == "boxes" and by_name["boxes"].limit == pytest.approx(1.5) and check.holds
    assert by_name["classes"].kind == "not budgeted" and by_name["classes"].max_abs == 1.0
    assert not reference.compare(lambda feed: {"boxes": boxes + np.float32(1.6), "classes": ids}).holds
    nms = reference.compare(lambda feed: {"boxes": boxes[:, :1], "classes": ids})
    assert nms.holds and {o.name: o.kind for o in nms.outputs}["boxes"] == "not budgeted"


def test_the_record_is_numbers_with_the_worst_output_first():
    ref = {"a": np.ones((1, 3, 4, 4), np.float32) * np.arange(3, dtype=np.float32)[None, :, None, None],
           "b": np.full((1, 1, 4, 4), 0.5, np.float32)}
    got = {"a": ref["a"] + np.float32(1e-4), "b": ref["b"] + np.float32(0.02)}
    record = _reference(ref, "fp16").compare(lambda feed: got).to_dict()
    assert record["output"] == "b" and record["kind"] == "probabilities" and record["holds"] is False
    assert record["max_abs_error"] == pytest.approx(0.02, rel=1e-3) and record["limit"] == pytest.approx(0.01)
    assert record["outputs"]["a"]["holds"] is True and record["input"] == "test"
