"""Stage 3: simplify an ONNX graph with onnxsim, falling back to onnxslim; parity re-checked."""
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

    simplified, ok = onnxsim.simplify(model)
    if not ok:
        raise RuntimeError("onnxsim's own check failed")
    return simplified


def _onnxslim(model):
    import onnxslim

    return onnxslim.slim(model)


def simplify_onnx(src: Path, out: Path, rtol: float = 1e-3, tools: tuple[str, ...] = ("onnxsim", "onnxslim")) -> SimplifyResult:
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
