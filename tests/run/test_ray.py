"""The Ray backend on a private local Ray (address="local": never a stray cluster), two actors."""
from __future__ import annotations

import pytest

ray = pytest.importorskip("ray")

from edgekit.run.ray import RayBackend  # noqa: E402
from tests.run import scenarios  # noqa: E402

pytestmark = pytest.mark.slow


def test_backend_starts_and_stops_its_own_local_ray(tmp_path):
    """Without a running Ray, --ray local starts one for the run and shuts it down after (runs first)."""
    if ray.is_initialized():
        pytest.skip("a Ray is already running in this process")
    from edgekit.cli.main import main
    from tests.run.scenes import make_cpu_artifact, make_scenes

    art = make_cpu_artifact(tmp_path / "art", size=64, batch=2)
    make_scenes(tmp_path / "in", geo=False)
    code = main(["run", str(art), str(tmp_path / "in"), "--recursive", "-o", str(tmp_path / "out"), "--ray", "local",
                 "--workers", "2", "--overlap", "16", "--no-progress"])
    assert code == 0 and not ray.is_initialized()
    assert len(list((tmp_path / "out").rglob("*.run.json"))) == 6


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray for the module (its start-up is the slow part); RayBackend leaves it running."""
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    yield
    ray.shutdown()


def test_outputs_match_infer_and_errors_stay_rows(tmp_path, local_ray):
    scenarios.outputs_match_infer_and_errors_stay_rows(tmp_path, lambda fn: RayBackend("local", 2, 1, scene_fn=fn))


def test_a_scene_that_kills_its_actor_is_poisoned(tmp_path, local_ray):
    scenarios.a_scene_that_kills_its_worker_is_poisoned(tmp_path, lambda fn: RayBackend("local", 2, 1, scene_fn=fn))


def test_a_detector_writes_boxes_per_scene_resumes_and_poisons(tmp_path, local_ray):
    """Ray retries a crashed actor's task without end unless told not to: edgekit counts the deaths and poisons."""
    scenarios.a_detector_writes_boxes_per_scene_resumes_and_poisons(
        tmp_path, lambda fn: RayBackend("local", 2, 1, scene_fn=fn))
