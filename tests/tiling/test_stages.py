"""The overlapped stages both tiled paths run: order kept, threads used, failures raised once, no hang."""
from __future__ import annotations

import threading

import pytest

from edgekit.tiling.stages import run_stages


def test_items_keep_their_order_through_every_stage():
    out = []
    run_stages(range(50), lambda x: x * 2, [lambda x: x + 1, out.append], depth=2)
    assert out == [2 * i + 1 for i in range(50)]


def test_reader_and_later_stages_run_beside_the_callers_thread():
    names = {"read": set(), "infer": set(), "after": set()}

    def produce():
        for i in range(5):
            names["read"].add(threading.current_thread().name)
            yield i

    def infer(x):
        names["infer"].add(threading.current_thread().name)
        return x

    run_stages(produce(), infer, [lambda x: names["after"].add(threading.current_thread().name)], names=["sink"])
    assert names == {"read": {"tile-reader"}, "infer": {threading.current_thread().name}, "after": {"sink"}}


@pytest.mark.parametrize("where", ["produce", "infer", "after"])
def test_a_failure_in_any_stage_is_raised_in_the_caller(where):
    def produce():
        for i in range(100):
            if where == "produce" and i == 3:
                raise ValueError("bad tile")
            yield i

    def fail_at(stage):
        def fn(x):
            if where == stage and x == 3:
                raise ValueError("bad tile")
            return x
        return fn

    with pytest.raises(ValueError, match="bad tile"):
        run_stages(produce(), fail_at("infer"), [fail_at("after"), lambda x: None], depth=1)
    assert not [t for t in threading.enumerate() if t.name.startswith("tile-")]
