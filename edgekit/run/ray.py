"""The Ray backend: the same scene function on Ray actors, on one machine or a cluster.

Why Ray Core actors with a ``ray.wait`` loop rather than Ray Data with paths as rows: a scene is
the unit the driver must account for one by one, and Core makes that exact. Each actor runs one
scene at a time, so when an actor dies (segfault, OOM kill) the driver knows which scene killed it
and counts that attempt in its ledger; Ray Data retries blocks and restarts actors inside its own
executor, where a poison scene is retried with the rest of its block and cannot be told apart.
Rows stream back as each scene finishes (the ledger and the progress bar stay live), and Core
needs only ``ray`` (no pyarrow or pandas, which Ray Data pulls in).

Actors are created with ``max_restarts=0`` and ``max_task_retries=0``: Ray's own defaults for
retried system failures would rerun a scene that kills its worker without end. The driver replaces
a dead actor itself and retries the scene up to ``max_attempts`` times, then marks it poisoned.
One actor per worker holds the loaded artifact and one runner; ``num_gpus=1`` per actor for
artifacts that run on a GPU; only jobs (paths) and rows (small dicts) travel, never pixels.
Outputs are written by the actors, so on a cluster the output folder must be shared storage
that every node sees at the same path (as the scenes must be).
"""
from __future__ import annotations

__all__ = ["RayBackend"]

from typing import Callable

from edgekit.errors import BackendUnavailableError, ConfigError, EdgekitError
from edgekit.run.driver import Dispatch
from edgekit.run.jobs import RunSettings, SceneJob
from edgekit.run.scene import SceneWorker, one_line, needs_gpu, process_scene
from edgekit.artifact.folder import Artifact

SceneFn = Callable[[SceneJob, SceneWorker], dict]


class _SceneActor:
    """One worker: loads the artifact once, then runs scenes one at a time."""

    def __init__(self, folder: str, settings: RunSettings, threads: int, scene_fn: SceneFn):
        self.scene_fn, self.error, self.worker = scene_fn, None, None
        try:
            self.worker = SceneWorker(folder, settings, threads).__enter__()
        except Exception as exc:  # reported by ready(), so a bad artifact is a user error, not a crash
            self.error = one_line(exc)

    def ready(self) -> str | None:
        return self.error

    def process(self, job: SceneJob) -> dict:
        return self.scene_fn(job, self.worker)


def _import_ray():
    try:
        import ray
    except ImportError:
        raise BackendUnavailableError("--ray needs Ray: pip install 'edgekit[ray]', or run without --ray") from None
    return ray


class RayBackend:
    """Scenes on Ray actors.

    Args:
        address: ``local`` (a private Ray on this machine, started and stopped here), ``auto`` (the
            cluster RAY_ADDRESS names, or the one this node belongs to), or a cluster's address.
        workers: actors (0: the cluster's GPUs for GPU artifacts, else its CPUs // 4, at least 1).
        threads: runner threads per actor, also its ``num_cpus`` (0: the cluster's CPUs // workers).
        scene_fn: what each actor runs per scene (default :func:`process_scene`); tests pass a wrapper.
    """

    def __init__(self, address: str, workers: int = 0, threads: int = 0, scene_fn: SceneFn = process_scene):
        if workers < 0:
            raise ConfigError(f"--workers must be >= 1, got {workers}")
        self.address, self.workers, self.threads, self.scene_fn = address, workers, threads, scene_fn
        self.gpu = False

    def describe(self) -> dict:
        return {"name": "ray", "address": self.address, "workers": self.workers or "auto",
                "threads": self.threads or "auto"}

    def run(self, artifact: Artifact, settings: RunSettings, dispatch: Dispatch) -> None:
        if settings.tile.device:
            raise ConfigError(f"--device {settings.tile.device} picks a GPU of this machine; on Ray each worker is "
                              "given its own GPU (num_gpus=1, its device 0): drop --device")
        ray = _import_ray()
        started = self._connect(ray)
        try:
            self._run(ray, artifact, settings, dispatch)
        finally:
            if started:
                ray.shutdown()

    def _connect(self, ray) -> bool:
        """Connect (or start a local Ray); True when this call did it and must shut it down."""
        if ray.is_initialized():
            return False
        from edgekit.run.local import cores

        local = self.address == "local"
        try:
            ray.init(address=self.address, num_cpus=cores() if local else None, include_dashboard=False,
                     logging_level="ERROR", log_to_driver=False, configure_logging=True)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise EdgekitError(f"cannot reach a Ray cluster at {self.address!r} ({one_line(exc)}); start one with "
                               "`ray start --head`, set RAY_ADDRESS, or use --ray local") from None
        return True

    def _sizes(self, ray, gpu: bool) -> tuple[int, int]:
        resources = ray.cluster_resources()
        cpus, gpus = int(resources.get("CPU", 1)), int(resources.get("GPU", 0))
        if gpu and not gpus:
            raise ConfigError("this artifact runs on a GPU but the Ray cluster has none; add GPU nodes, or run "
                              "with --backend onnxruntime on a CPU artifact")
        workers = self.workers or (gpus if gpu else max(1, cpus // 4))
        threads = self.threads or max(1, cpus // workers)
        return workers, threads

    def _run(self, ray, artifact: Artifact, settings: RunSettings, dispatch: Dispatch) -> None:
        from ray.exceptions import RayActorError

        gpu = needs_gpu(artifact, settings.tile.backend)
        workers, threads = self._sizes(ray, gpu)
        actor_cls = ray.remote(num_cpus=threads, num_gpus=1 if gpu else 0, max_restarts=0,
                               max_task_retries=0)(_SceneActor)

        def start():
            actor = actor_cls.remote(str(artifact.folder), settings, threads, self.scene_fn)
            return actor.ready.remote(), actor

        starting = dict(start() for _ in range(workers))
        busy: dict = {}  # task ref -> (actor, job)
        idle, early_deaths = [], 0
        try:
            while True:
                while idle and (job := dispatch.next()) is not None:
                    actor = idle.pop()
                    busy[actor.process.remote(job)] = (actor, job)
                if not busy and (idle or not starting):
                    return  # idle actors are left only when the queue is empty
                ref = ray.wait(list(starting) + list(busy), num_returns=1)[0][0]
                if ref in starting:
                    actor = starting.pop(ref)
                    try:
                        error = ray.get(ref)
                    except RayActorError as exc:
                        if (early_deaths := early_deaths + 1) > 2 * workers:
                            raise EdgekitError(f"Ray actors die while loading the artifact ({one_line(exc)})") from None
                        starting.update([start()])
                        continue
                    if error:
                        raise EdgekitError(f"a Ray actor could not load the artifact: {error}")
                    idle.append(actor)
                    continue
                actor, job = busy.pop(ref)
                try:
                    row = ray.get(ref)
                except RayActorError as exc:
                    ray.kill(actor, no_restart=True)
                    starting.update([start()])
                    dispatch.finished(job, None, f"Ray actor died ({type(exc).__name__})")
                    continue
                idle.append(actor)
                dispatch.finished(job, row)
        finally:
            for actor in [*idle, *starting.values(), *(a for a, _ in busy.values())]:
                ray.kill(actor, no_restart=True)

