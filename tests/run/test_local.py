"""The local backend, in process and with two worker processes."""
from __future__ import annotations

import pytest

from edgekit.run.local import LocalBackend
from tests.run import scenarios


@pytest.mark.parametrize("workers", [1, 2])
def test_outputs_match_infer_and_errors_stay_rows(tmp_path, workers):
    scenarios.outputs_match_infer_and_errors_stay_rows(tmp_path, lambda fn: LocalBackend(workers, 1, scene_fn=fn))


def test_a_scene_that_kills_its_worker_is_poisoned(tmp_path):
    scenarios.a_scene_that_kills_its_worker_is_poisoned(tmp_path, lambda fn: LocalBackend(2, 1, scene_fn=fn))
