"""Stage 3: simplify an ONNX graph with onnxslim, falling back to onnxsim; parity re-checked.

Why onnxslim first, and onnxsim only for constant folding and shapes (``perform_optimization=False``):
onnxsim's optimizer folds a GELU's trailing ``* 0.5`` into the next convolution's weights, which
leaves ``x * (1 + erf(x / sqrt 2))``, a pattern ONNX Runtime's GELU fusion no longer recognises.
Measured on reparameterized FastViT-SA12 (2026-11-29): ORT fused 18 GELUs in the exporter's graph
and 0 in onnxsim's optimized one (19 Erf, 19 Div, 23 Mul, 23 Add left unfused), the largest share
of the gap between edgekit's FP32 artifact and the exporter's own graph (issue 14). onnxslim's
graph, and onnxsim's without its optimizer, keep all 18 fusable. Runtimes (ORT at load time,
TensorRT at build time) do the fusions themselves.
"""
from __future__ import annotations

__all__ = ["SimplifyResult", "simplify_onnx"]

import time
from dataclasses import dataclass
from pathlib import Path


from edgekit.atomic import atomic_file
from edgekit.convert.onnx_check import count_nodes, load_checked, random_input, run_onnx
from edgekit.errors import ParityError
from edgekit.metrics import OutputError, output_error


@dataclass(frozen=True)
class SimplifyResult:
    path: Path
    tool: str
    nodes_before: int
    nodes_after: int
    error: OutputError
    seconds: float
    notes: str = ""


def _onnxsim(model):
    import onnxsim

    simplified, ok = onnxsim.simplify(model, perform_optimization=False)  # its optimizer breaks GELU fusion
    if not ok:
        raise RuntimeError("onnxsim's own check failed")
    return simplified


def _onnxslim(model):
    import onnxslim

    return onnxslim.slim(model)


def simplify_onnx(src: Path, out: Path, rtol: float = 1e-3, tools: tuple[str, ...] = ("onnxslim", "onnxsim")) -> SimplifyResult:
    """Simplify ``src`` into ``out``; the first tool that succeeds and keeps the outputs wins."""
    import onnx

    start = time.perf_counter()
    model = load_checked(src)
    before = sum(count_nodes(model).values())
    feed = random_input(model)
    reference = run_onnx(src, feed)
    notes = []
    for tool in tools:
        try:
            simplified = {"onnxsim": _onnxsim, "onnxslim": _onnxslim}[tool](model)
        except Exception as exc:  # a tool's failure is expected on some graphs: try the next
            notes.append(f"{tool} failed: {str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__}")
            continue
        with atomic_file(Path(out)) as tmp:
            onnx.save(simplified, str(tmp))
            error = output_error(reference, run_onnx(tmp, feed))
            if error.max_rel > rtol:
                raise ParityError(f"{tool} changed the outputs: relative {error.max_rel:.3g} > {rtol:g}")
        after = sum(count_nodes(simplified).values())
        return SimplifyResult(Path(out), tool, before, after, error, time.perf_counter() - start, "; ".join(notes))
    raise ParityError("no simplifier succeeded: " + "; ".join(notes))
