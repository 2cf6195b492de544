"""Stage 2: export a torch model to ONNX with both exporters, verify both, keep the faster.

Why the exporter matters (FastViT-SA12 reparameterized, ONNX Runtime 1.24 CPU, torch 2.14)
-------------------------------------------------------------------------------------------
The dynamo exporter (opset 18) and the TorchScript exporter (``dynamo=False``, opset 17) write
the same convolutions; the dynamo graph is smaller (241 vs 409 nodes: no Identity/Constant
nodes, no Shape/Slice/Cast shape arithmetic) yet ran 13-16% slower. Comparing the graphs ONNX
Runtime itself runs (``SessionOptions.optimized_model_filepath``) shows the cause:

- **GELU** (the main cause). TorchScript writes ``(x * (1 + erf(x/sqrt2))) * 0.5``, which ORT's
  GeluFusion turns into one ``Gelu`` kernel (18 of 19 in FastViT-SA12). The dynamo exporter
  writes ``x * (0.5 * (1 + erf(x/sqrt2)))``, an operand order GeluFusion does not match, so
  ORT runs Div, Erf, Add, Mul, Mul for every GELU: 19 Erf, 41 Mul, 23 Add, 19 Div left after
  ORT's optimizer versus 1 / 5 / 5 / 1. In ORT's per-op profile at 512x512 the GELUs cost
  37 ms unfused against 15 ms fused (of ~110 ms of kernel time). ``edgekit.convert.gelu_order``
  swaps the two Mul operands into the fused form; it is applied to every exported graph.
- What remains after that rewrite is small: the dynamo graph keeps 7 more Reshape and 2 more
  Transpose nodes around the attention (it flattens with ``view`` where TorchScript uses
  ``flatten`` + ``Squeeze``) and pools the head with ReduceMean instead of GlobalAveragePool.
  Convolutions, their NCHWc layout (ReorderInput/ReorderOutput) and BatchNorm folding are the
  same in both. With the GELU rewrite the two graphs time within noise of each other.

So the stage does not trust either exporter: on the cpu target it exports with both, checks
each against PyTorch on the same input, times the survivors in turns on ONNX Runtime and keeps
the faster; both figures and the choice go into the build report.

TensorRT targets cannot be timed here. They get the dynamo graph (TorchScript if dynamo fails):
static shapes and no shape-arithmetic subgraphs for the parser, opset 18, the exporter torch
maintains. TensorRT fuses element-wise chains such as either GELU form itself, so the ORT
finding does not decide it.
"""
from __future__ import annotations

__all__ = ["ExportSpec", "ExportCandidate", "ExportResult", "Timing", "export_onnx"]

import io
import os
import time
import warnings
from contextlib import redirect_stdout
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from edgekit.atomic import atomic_file
from edgekit.convert.castlike import castlike_to_cast
from edgekit.convert.gelu_order import reorder_gelu
from edgekit.convert.onnx_check import Timing, count_nodes, load_checked, run_onnx, time_onnx
from edgekit.errors import ConfigError, ParityError, SourceError
from edgekit.metrics import OutputError, output_error

EXPORTERS = ("dynamo", "torchscript")
RUNTIMES = ("onnxruntime", "openvino", "tensorrt")
RUNTIME_NAMES = {"onnxruntime": "ONNX Runtime", "openvino": "OpenVINO", "tensorrt": "TensorRT"}


@dataclass(frozen=True)
class ExportSpec:
    """How to export.

    Attributes:
        input_size: static height and width.
        batch: fixed batch size, or None for a dynamic batch axis.
        opset: ONNX opset of the dynamo exporter (>= 18); TorchScript writes 17.
        rtol: tolerated difference to PyTorch, relative to the output's largest magnitude.
        runtime: ``onnxruntime`` or ``openvino`` (the cpu target's backend) exports with both
            exporters and keeps the one faster on that runtime; ``tensorrt``
            keeps the dynamo graph (TorchScript when dynamo fails), untimed.
        timing_runs / threads: timed runs per candidate and ORT intra-op threads (0: default).
    """

    input_size: tuple[int, int]
    batch: int | None = 1
    opset: int = 18
    input_name: str = "input"
    output_name: str = "logits"
    rtol: float = 1e-3
    runtime: str = "onnxruntime"
    timing_runs: int = 5
    threads: int = 0


@dataclass(frozen=True)
class ExportCandidate:
    """One exporter's attempt: its graph, its proof, its time (or why it was dropped)."""

    exporter: str
    opset: int
    nodes: int | None = None
    max_rel: float | None = None
    latency_ms: float | None = None
    gelus_reordered: int = 0
    failure: str = ""


@dataclass(frozen=True)
class ExportResult:
    path: Path
    exporter: str
    nodes: int
    error: OutputError
    seconds: float
    candidates: tuple[ExportCandidate, ...] = ()
    chosen_by: str = ""

    @property
    def opset(self) -> int:
        return next(c.opset for c in self.candidates if c.exporter == self.exporter)

    def to_dict(self) -> dict:
        """The choice as numbers, for the build report."""
        return {"chosen": self.exporter, "chosen_by": self.chosen_by,
                "candidates": {c.exporter: {k: v for k, v in asdict(c).items() if k != "exporter"}
                               for c in self.candidates}}


def _opset(spec: ExportSpec, exporter: str) -> int:
    return max(18, spec.opset) if exporter == "dynamo" else 17


# The dynamo exporter's own optimizer (onnxscript's constant folding and rewrites) is left off: on a
# ViT it spent minutes folding the position embedding's Resize (270 s of a ViT-S/16 1024 build, 225 s
# of timm's test_vit at 160), constants the simplify stage folds anyway once their CastLike is a Cast
# (edgekit.convert.castlike; bench/export_speed.py part 4).
DYNAMO_OPTIMIZE = False


def _export(model: torch.nn.Module, sample: torch.Tensor, path: Path, spec: ExportSpec, exporter: str) -> None:
    kwargs = dict(input_names=[spec.input_name], output_names=[spec.output_name], opset_version=_opset(spec, exporter))
    if exporter == "dynamo":
        kwargs["optimize"] = DYNAMO_OPTIMIZE
    if spec.batch is None:
        kwargs["dynamic_axes"] = {spec.input_name: {0: "batch"}, spec.output_name: {0: "batch"}}
    with warnings.catch_warnings(), redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (sample,), str(path), dynamo=exporter == "dynamo", external_data=False, **kwargs)


def _candidate(model, sample, reference, path: Path, spec: ExportSpec, exporter: str):
    """(candidate, its OutputError): export, rewrite GELUs, check, compare with PyTorch.

    A failure is recorded in the candidate, not raised."""
    import onnx

    opset = _opset(spec, exporter)
    try:
        _export(model, sample, path, spec, exporter)
    except Exception as exc:  # each exporter fails in its own way; keep the first line
        return ExportCandidate(exporter, opset, failure=f"export failed: {str(exc).strip().splitlines()[0][:200]}"), None
    graph = load_checked(path)
    reordered = reorder_gelu(graph)
    if reordered + castlike_to_cast(graph):
        onnx.save(graph, str(path))
    error = output_error(reference, run_onnx(path, sample.numpy()))
    nodes = sum(count_nodes(graph).values())
    failure = "" if error.max_rel <= spec.rtol else f"differs from PyTorch: relative {error.max_rel:.3g} > {spec.rtol:g}"
    return ExportCandidate(exporter, opset, nodes, error.max_rel, None, reordered, failure), error


def _choose(passed: list[ExportCandidate], paths: dict, spec: ExportSpec, timing: Timing | None):
    """The kept candidate, the candidates with their times, and why it was kept."""
    if spec.runtime == "tensorrt":
        return passed[0], passed, "TensorRT target: dynamo graph preferred (static shapes, fewer nodes), not timed here"
    if len(passed) == 1:
        return passed[0], passed, "the only exporter that passed"
    if timing is None and spec.timing_runs <= 0:
        return passed[0], passed, "not timed (timing_runs=0): dynamo graph kept"
    timing = timing or (lambda ps: time_onnx(ps, spec.timing_runs, spec.threads, spec.runtime))
    times = list(timing([paths[c.exporter] for c in passed]))
    timed = [ExportCandidate(**{**asdict(c), "latency_ms": float(t)}) for c, t in zip(passed, times)]
    best = min(timed, key=lambda c: c.latency_ms)
    return best, timed, f"faster on {RUNTIME_NAMES[spec.runtime]} CPU (interleaved medians)"


@torch.no_grad()
def export_onnx(model: torch.nn.Module, out: Path, spec: ExportSpec, timing: Timing | None = None) -> ExportResult:
    """Write ``model`` to ``out`` as ONNX: the faster of the two exporters' verified graphs.

    Each exporter's file is checked with onnx.checker, its GELUs put into the form ONNX Runtime
    fuses, and run with ONNX Runtime on the same random input as PyTorch. ``timing`` replaces
    the default ORT CPU measurement (tests inject a fake one).
    """
    if spec.runtime not in RUNTIMES:
        raise ConfigError(f"unknown export runtime {spec.runtime!r}; choose one of {', '.join(RUNTIMES)}")
    start = time.perf_counter()
    model = model.eval()
    sample = torch.randn(spec.batch or 2, 3, *spec.input_size, generator=torch.Generator().manual_seed(0))
    reference = model(sample).numpy()
    out = Path(out)
    paths = {e: out.with_name(f".{out.stem}.{e}{out.suffix}") for e in EXPORTERS}
    try:
        candidates, errors = [], {}
        for exporter in EXPORTERS:
            candidate, errors[exporter] = _candidate(model, sample, reference, paths[exporter], spec, exporter)
            candidates.append(candidate)
            if spec.runtime == "tensorrt" and not candidates[-1].failure:
                break
        passed = [c for c in candidates if not c.failure]
        if not passed:
            reasons = " | ".join(f"{c.exporter}: {c.failure}" for c in candidates)
            kind = SourceError if all(c.failure.startswith("export failed") for c in candidates) else ParityError
            raise kind("ONNX export failed; " + reasons)
        best, timed, why = _choose(passed, paths, spec, timing)
        with atomic_file(out) as tmp:
            os.replace(paths[best.exporter], tmp)
    finally:
        for path in paths.values():
            path.unlink(missing_ok=True)
    final = [next((t for t in timed if t.exporter == c.exporter), c) for c in candidates]
    return ExportResult(out, best.exporter, best.nodes, errors[best.exporter], time.perf_counter() - start, tuple(final), why)
