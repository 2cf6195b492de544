"""Stage 2: export a torch model to ONNX (opset >= 17), checked and compared with PyTorch."""
from __future__ import annotations

__all__ = ["ExportSpec", "ExportResult", "export_onnx"]

import io
import time
import warnings
from contextlib import redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import torch

from edgekit.atomic import atomic_file
from edgekit.convert.onnx_check import count_nodes, load_checked, run_onnx
from edgekit.errors import ParityError, SourceError
from edgekit.metrics import OutputError, output_error

TORCHSCRIPT_OPSET = 17  # the fallback exporter's newest well-supported opset


@dataclass(frozen=True)
class ExportSpec:
    """How to export.

    Attributes:
        input_size: static height and width.
        batch: fixed batch size, or None for a dynamic batch axis.
        opset: ONNX opset (>= 17; the dynamo exporter writes 18).
        rtol: tolerated difference to PyTorch, relative to the output's largest magnitude.
    """

    input_size: tuple[int, int]
    batch: int | None = 1
    opset: int = 18
    input_name: str = "input"
    output_name: str = "logits"
    rtol: float = 1e-3


@dataclass(frozen=True)
class ExportResult:
    """The exported file, which exporter wrote it, its node count and opset (as written), and its error."""

    path: Path
    exporter: str
    nodes: int
    error: OutputError
    seconds: float
    opset: int = 0


def _export(model: torch.nn.Module, sample: torch.Tensor, path: Path, spec: ExportSpec, dynamo: bool) -> None:
    opset = spec.opset if dynamo else TORCHSCRIPT_OPSET
    kwargs = dict(input_names=[spec.input_name], output_names=[spec.output_name], opset_version=opset)
    if spec.batch is None:
        kwargs["dynamic_axes"] = {spec.input_name: {0: "batch"}, spec.output_name: {0: "batch"}}
    with warnings.catch_warnings(), redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (sample,), str(path), dynamo=dynamo, external_data=False, **kwargs)


@torch.no_grad()
def export_onnx(model: torch.nn.Module, out: Path, spec: ExportSpec) -> ExportResult:
    """Write ``model`` to ``out`` as ONNX and prove it computes what PyTorch computes.

    The dynamo exporter is tried first; the TorchScript exporter is the fallback. The exported
    file is checked with onnx.checker and run with ONNX Runtime on the same random input.
    """
    start = time.perf_counter()
    model = model.eval()
    batch = spec.batch or 2
    sample = torch.randn(batch, 3, *spec.input_size, generator=torch.Generator().manual_seed(0))
    reference = model(sample).numpy()
    errors = []
    with atomic_file(Path(out)) as tmp:
        for dynamo in (True, False):
            try:
                _export(model, sample, tmp, spec, dynamo)
                exporter = "dynamo" if dynamo else "torchscript"
                break
            except Exception as exc:  # each exporter fails in its own way; keep the first line of each
                errors.append(f"{'dynamo' if dynamo else 'torchscript'}: {str(exc).strip().splitlines()[0][:200]}")
        else:
            raise SourceError("ONNX export failed; " + " | ".join(errors))
        onnx_model = load_checked(tmp)
        error = output_error(reference, run_onnx(tmp, sample.numpy()))
        if error.max_rel > spec.rtol:
            raise ParityError(
                f"ONNX ({exporter} exporter) differs from PyTorch: max abs {error.max_abs:.3g}, "
                f"relative {error.max_rel:.3g} > {spec.rtol:g}"
            )
    nodes = sum(count_nodes(onnx_model).values())
    opset = next((o.version for o in onnx_model.opset_import if o.domain in ("", "ai.onnx")), 0)
    return ExportResult(Path(out), exporter, nodes, error, time.perf_counter() - start, opset)
