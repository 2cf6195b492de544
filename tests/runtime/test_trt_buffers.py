"""The TensorRT runner's decisions, without TensorRT: buffers per profile, the shapes of a batch,
padding for a min-batch profile, and when a CUDA graph is captured, replayed or dropped."""
from __future__ import annotations

import numpy as np
import pytest

from edgekit.errors import ArtifactError, InputError
from edgekit.runtime.trt_buffers import (GraphSchedule, TensorSlot, nbytes, output_rows, plan_buffers,
                                         run_shapes)


def _dynamic(lo: int = 1, hi: int = 4, dtype: str = "float32"):
    """A segmenter engine with a dynamic batch: input (N, 3, 32, 32), logits (N, 5, 8, 8)."""
    return plan_buffers([
        TensorSlot("input", True, dtype, (-1, 3, 32, 32), (lo, 3, 32, 32), (hi, 3, 32, 32)),
        TensorSlot("logits", False, "float16", (-1, 5, 8, 8), (hi, 5, 8, 8), (hi, 5, 8, 8)),
    ])


def test_buffers_are_sized_once_for_the_profile_maximum():
    plan = _dynamic(hi=4)
    assert plan.slot("input").nbytes == 4 * 3 * 32 * 32 * 4
    assert plan.slot("logits").nbytes == 4 * 5 * 8 * 8 * 2
    assert plan.device_bytes == plan.slot("input").nbytes + plan.slot("logits").nbytes
    assert not plan.static and [s.name for s in plan.inputs] == ["input"] and [s.name for s in plan.outputs] == ["logits"]
    static = plan_buffers([TensorSlot("x", True, "int8", (2, 7), (2, 7), (2, 7)),
                           TensorSlot("y", False, "float32", (0,), (0,), (0,))])
    assert static.static and static.slot("x").nbytes == 14 and static.slot("y").nbytes == 1  # CUDA needs >= 1 byte


def test_shapes_tensorrt_cannot_bound_are_refused():
    with pytest.raises(ArtifactError, match="depends on the data"):
        plan_buffers([TensorSlot("boxes", False, "float32", (-1, 4), (-1, 4), (-1, 4))])
    with pytest.raises(ArtifactError, match="profile bounds"):
        plan_buffers([TensorSlot("input", True, "float32", (-1, 3), (4, 3), (2, 3))])


@pytest.mark.parametrize("batch", [1, 3, 4])
def test_a_batch_inside_the_profile_runs_as_sent(batch):
    run = run_shapes(_dynamic(), {"input": (batch, 3, 32, 32)})
    assert run.inputs == {"input": (batch, 3, 32, 32)} and run.rows == run.padded == batch


def test_a_batch_below_a_dla_profile_is_padded_and_cut_back():
    plan = _dynamic(lo=4, hi=4)  # DLA: min = opt = max
    run = run_shapes(plan, {"input": (3, 3, 32, 32)})
    assert run.inputs == {"input": (4, 3, 32, 32)} and (run.rows, run.padded) == (3, 4)
    out = np.arange(4 * 5).reshape(4, 5)
    np.testing.assert_array_equal(output_rows(out, run), out[:3])
    assert output_rows(np.zeros((7,)), run).shape == (7,)  # not batched: left whole
    full = run_shapes(plan, {"input": (4, 3, 32, 32)})
    assert output_rows(out, full) is out


def test_batches_outside_the_profile_name_the_ones_it_takes():
    with pytest.raises(InputError, match=r"batches 1 to 4 .* not 5; use --batch 4"):
        run_shapes(_dynamic(), {"input": (5, 3, 32, 32)})
    with pytest.raises(InputError, match=r"takes batch 4 .* not 8"):
        run_shapes(_dynamic(lo=4, hi=4), {"input": (8, 3, 32, 32)})
    with pytest.raises(InputError, match=r"must have shape \[N, 3, 32, 32\]"):
        run_shapes(_dynamic(), {"input": (2, 3, 32, 33)})
    with pytest.raises(InputError, match="must have shape"):
        run_shapes(_dynamic(), {"input": (2, 3, 32)})


def test_a_static_engine_runs_its_one_shape():
    plan = plan_buffers([TensorSlot("x", True, "float32", (2, 4), (2, 4), (2, 4)),
                         TensorSlot("y", False, "float32", (2, 1), (2, 1), (2, 1))])
    run = run_shapes(plan, {"x": (2, 4)})
    assert run.inputs == {"x": (2, 4)} and run.rows == run.padded == 2
    with pytest.raises(InputError):
        run_shapes(plan, {"x": (1, 4)})


def test_two_batched_inputs_must_send_one_batch():
    plan = plan_buffers([TensorSlot("a", True, "float32", (-1, 2), (1, 2), (4, 2)),
                         TensorSlot("b", True, "float32", (-1, 3), (1, 3), (4, 3))])
    assert run_shapes(plan, {"a": (2, 2), "b": (2, 3)}).rows == 2
    with pytest.raises(InputError, match="different batches"):
        run_shapes(plan, {"a": (2, 2), "b": (3, 3)})


def test_nbytes():
    assert nbytes((2, 3), "float16") == 12 and nbytes((), "int32") == 4


def _drive(schedule: GraphSchedule, keys, capture_works: bool = True) -> list[tuple[bool, str]]:
    """Steps as the runner takes them: each batch asks for its step, then records what happened."""
    steps = []
    for key in keys:
        reshape, step = schedule.next(key)
        steps.append((reshape, step))
        schedule.record(key, step, capture_works if step == "capture" else True)
    return steps


def test_graphs_are_captured_after_one_run_replayed_and_dropped_when_shapes_change():
    a, b = (("input", (4, 3, 32, 32)),), (("input", (2, 3, 32, 32)),)
    steps = _drive(GraphSchedule(True), [a, a, a, a, b, a, a])
    assert steps == [(True, "eager"), (False, "capture"), (False, "replay"), (False, "replay"),
                     (True, "eager"), (True, "eager"), (False, "capture")]


def test_a_failed_capture_turns_graphs_off_and_no_graph_without_the_option():
    a = (("input", (4, 3, 32, 32)),)
    failed = GraphSchedule(True)
    assert _drive(failed, [a, a, a], capture_works=False) == [(True, "eager"), (False, "capture"), (False, "eager")]
    assert not failed.enabled
    assert [s for _, s in _drive(GraphSchedule(False), [a, a, a])] == ["eager"] * 3
