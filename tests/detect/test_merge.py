"""Merging across tiles: one report per object, the finality rule, deterministic ties."""
from __future__ import annotations

import numpy as np
import pytest

from edgekit.runtime.decode import Detections
from edgekit.detect.merge import BoxMerger, MergeConfig, merge_boxes
from edgekit.errors import ConfigError


def det(rows):
    a = np.asarray(rows, np.float32).reshape(-1, 6)
    return Detections(a[:, :4], a[:, 4], a[:, 5].astype(np.int32))


def test_box_cut_by_a_tile_border_is_reported_once_and_whole():
    # tile A ends at column 100 and cuts the object; tile B holds it whole
    cut = det([[80, 10, 100, 40, 0.6, 0]])
    whole = det([[80, 10, 115, 40, 0.9, 0]])
    out = merge_boxes(det([[*cut.boxes[0], 0.6, 0], [*whole.boxes[0], 0.9, 0]]))  # the default: NMS by IoS
    assert len(out) == 1
    np.testing.assert_allclose(out.boxes[0], [80, 10, 115, 40])
    assert out.scores[0] == pytest.approx(0.9)
    # the cut box scoring higher still yields the whole extent with greedy merging ...
    out = merge_boxes(det([[80, 10, 100, 40, 0.95, 0], [80, 10, 115, 40, 0.9, 0]]), MergeConfig(mode="greedy"))
    np.testing.assert_allclose(out.boxes[0], [80, 10, 115, 40])
    # ... and IoU (0.57 here) at 0.6 would keep both: IoS is what makes it one
    both = merge_boxes(det([[80, 10, 100, 40, 0.95, 0], [80, 10, 115, 40, 0.9, 0]]),
                       MergeConfig(metric="iou", threshold=0.6))
    assert len(both) == 2


def test_nms_mode_keeps_the_best_box_unchanged():
    out = merge_boxes(det([[80, 10, 100, 40, 0.95, 0], [80, 10, 115, 40, 0.9, 0]]), MergeConfig(mode="nms"))
    np.testing.assert_allclose(out.boxes, [[80, 10, 100, 40]])


def test_classes_merge_separately():
    out = merge_boxes(det([[0, 0, 10, 10, 0.9, 0], [0, 0, 10, 10, 0.8, 1]]))
    assert sorted(out.classes.tolist()) == [0, 1]


def test_score_ties_merge_the_same_way_in_any_input_order():
    rows = [[10, 10, 30, 30, 0.5, 0], [12, 8, 32, 28, 0.5, 0], [11, 11, 29, 33, 0.5, 0], [50, 50, 60, 60, 0.5, 0]]
    first = merge_boxes(det(rows), MergeConfig(mode="nms"))
    rng = np.random.default_rng(0)
    for _ in range(10):
        again = merge_boxes(det([rows[i] for i in rng.permutation(len(rows))]), MergeConfig(mode="nms"))
        np.testing.assert_array_equal(again.boxes, first.boxes)
    # the winner of a tie is the topmost box
    np.testing.assert_allclose(first.boxes[0], [12, 8, 32, 28])


def test_finality_rule_emits_only_groups_above_the_next_band():
    emitted = []
    merger = BoxMerger(MergeConfig(mode="greedy"), emitted.append, overlap=32)
    merger.add(det([[0, 0, 10, 10, 0.9, 0],        # ends above row 50: final
                    [20, 40, 30, 60, 0.8, 0],      # crosses row 50: open
                    [25, 45, 28, 49, 0.7, 0],      # above row 50 but inside (matches) the open box: open too
                    [0, 40, 5, 49, 0.6, 1]]))      # above, and another class than the open box: final
    merger.flush(next_top=50)
    assert sum(len(e) for e in emitted) == 2
    assert len(merger.open) == 2
    # the next band's box joins the open group; the image ends
    merger.add(det([[20, 50, 30, 62, 0.95, 0]]))
    merger.flush(None)
    assert len(merger.open) == 0
    final = emitted[-1]  # the small box does not meet the best box itself: it stays (SAHI's greedy NMM too)
    np.testing.assert_allclose(final.boxes, [[20, 40, 30, 62], [25, 45, 28, 49]])


@pytest.mark.parametrize("mode", ["nms", "greedy"])
def test_streaming_merge_equals_the_whole_image_merge(mode):
    rng = np.random.default_rng(1)
    xy = rng.uniform(0, 400, (300, 2))
    wh = rng.uniform(5, 40, (300, 2))
    rows = np.concatenate([xy, xy + wh, rng.choice([0.5, 0.6, 0.7], (300, 1)), rng.integers(0, 2, (300, 1))], 1)
    rows = rows[np.argsort(rows[:, 1])]
    whole = merge_boxes(det(rows), MergeConfig(mode=mode))
    emitted = []
    merger = BoxMerger(MergeConfig(mode=mode), emitted.append, overlap=64)
    for top in range(0, 440, 100):  # bands: boxes starting in [top, top + 100)
        merger.add(det(rows[(rows[:, 1] >= top) & (rows[:, 1] < top + 100)]))
        merger.flush(top + 100)
    merger.flush(None)
    streamed = np.concatenate([e.boxes for e in emitted])
    key = lambda b: b[np.lexsort(b.T[::-1])]
    np.testing.assert_allclose(key(streamed), key(whole.boxes))
    assert merger.peak_open < len(rows)


def test_warns_when_objects_exceed_the_overlap():
    merger = BoxMerger(MergeConfig(), lambda d: None, overlap=16)
    with pytest.warns(UserWarning, match="larger than the 16-pixel tile overlap"):
        merger.add(det([[0, 0, 40, 10, 0.9, 0]]))


def test_bad_settings_name_the_choices():
    with pytest.raises(ConfigError, match="greedy, nms"):
        MergeConfig(mode="soft")
    with pytest.raises(ConfigError, match="ios, iou"):
        MergeConfig(metric="giou")
