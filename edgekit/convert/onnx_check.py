"""Running an ONNX file on ONNX Runtime's CPU provider to prove a transform: the shared check."""
from __future__ import annotations

__all__ = ["run_onnx", "count_nodes", "load_checked", "random_input", "time_onnx", "Timing"]

from collections import Counter
from contextlib import ExitStack
from typing import Callable, Sequence
from pathlib import Path

import numpy as np

from edgekit.errors import ArtifactError
from edgekit.runtime.open import cpu_runner


def load_checked(path: Path):
    """Load an ONNX model and run onnx.checker; a corrupt or truncated file is a clear error."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"ONNX file {path} does not exist")
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as exc:
        raise ArtifactError(f"{path.name} is not a valid ONNX model: {str(exc).splitlines()[0][:200]}") from None
    return model


def run_onnx(path: Path, feed: np.ndarray, threads: int = 0) -> np.ndarray:
    """First output of ``path`` for the single input ``feed`` (ORT CPU, full optimisation)."""
    from edgekit.runtime.onnxrt import OnnxRuntimeRunner, SessionSettings

    with OnnxRuntimeRunner(path, SessionSettings(threads=threads)) as runner:
        name = runner.input_specs()[0].name
        return next(iter(runner.infer({name: feed}).values()))


def count_nodes(model) -> Counter:
    """Node count by op type (top-level graph)."""
    return Counter(n.op_type for n in model.graph.node)


def random_input(model, batch: int = 1) -> np.ndarray:
    """A seeded standard-normal float32 input for the model's first input; dynamic axes get ``batch``."""
    dims = model.graph.input[0].type.tensor_type.shape.dim
    shape = [d.dim_value if d.dim_value > 0 else batch for d in dims]
    return np.random.default_rng(0).standard_normal(shape).astype(np.float32)


Timing = Callable[[Sequence[Path]], Sequence[float]]
"""Median latency in ms of each ONNX file, measured in turns on the target's runtime."""


def time_onnx(paths: Sequence[Path], runs: int = 5, threads: int = 0, runtime: str = "onnxruntime") -> list[float]:
    """Median ms of each ONNX file on a CPU runtime (``onnxruntime`` or ``openvino``: the cpu
    target's backend), timed in turns on one seeded random input.

    Every file must take the same input; this is how a stage chooses between graphs of one model.
    """
    import onnx

    from edgekit.timing import interleaved_medians

    feed = random_input(onnx.load(str(paths[0]), load_external_data=False))
    with ExitStack() as stack:
        runners = [stack.enter_context(cpu_runner(p, threads, runtime)) for p in paths]
        feeds = [{r.input_specs()[0].name: feed} for r in runners]
        return interleaved_medians([lambda r=r, f=f: r.infer(f) for r, f in zip(runners, feeds)], runs)
