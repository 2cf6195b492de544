"""Stage 3: simplify an ONNX graph with onnxslim, falling back to onnxsim, then to the graph as it
was; every output re-checked.

Why onnxslim first, and onnxsim only for constant folding and shapes (``perform_optimization=False``):
onnxsim's optimizer folds a GELU's trailing ``* 0.5`` into the next convolution's weights, which
leaves ``x * (1 + erf(x / sqrt 2))``, a pattern ONNX Runtime's GELU fusion no longer recognises.
Measured on reparameterized FastViT-SA12 (2026-11-29): ORT fused 18 GELUs in the exporter's graph
and 0 in onnxsim's optimized one (19 Erf, 19 Div, 23 Mul, 23 Add left unfused), the largest share
of the gap between edgekit's FP32 artifact and the exporter's own graph (issue 14). onnxslim's
graph, and onnxsim's without its optimizer, keep all 18 fusable. Runtimes (ORT at load time,
TensorRT at build time) do the fusions themselves.

The check: every output of the simplified graph against the graph it came from, on the build's
real images when it has them (else one seeded standard-normal input), each held to the fp32 budget
of what it holds (:mod:`edgekit.compile.check`: logits a share of their range, probabilities an
absolute 1e-3, a detector's boxes pixels). A relative error alone cannot be used: a text detector
fed noise outputs ~5e-7 everywhere, and a 1e-7 difference read 22 % (PP-OCRv3). A tool that fails
or changes the outputs is noted and the next one tried; when none holds, the graph is kept as it
was (``tool`` ``none``), with the reasons in ``notes``: simplifying is an optimisation, never a
reason to stop a build.
"""
from __future__ import annotations

__all__ = ["SimplifyResult", "simplify_onnx", "TOOLS"]

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgekit.atomic import atomic_file
from edgekit.convert.onnx_check import count_nodes, load_checked, random_input
from edgekit.metrics import OutputError, output_error
from edgekit.runtime.open import cpu_runner

TOOLS = ("onnxslim", "onnxsim")
RANDOM = "one standard-normal input (seed 0)"


@dataclass(frozen=True)
class SimplifyResult:
    """What the stage wrote.

    Attributes:
        path: the graph written (the simplified one, or a copy of the input when none held).
        tool: ``onnxslim``, ``onnxsim`` or ``none`` (kept unsimplified).
        error: the first output's difference (``none``: zero).
        check: every output against its budget, in words (``0.0012 on 'out' (probabilities, budget 0.001)
            on 8 held-out images``).
        notes: tools that failed or changed the outputs, and why.
    """

    path: Path
    tool: str
    nodes_before: int
    nodes_after: int
    error: OutputError
    seconds: float
    notes: str = ""
    check: str = ""


def _onnxsim(model):
    import onnxsim

    simplified, ok = onnxsim.simplify(model, perform_optimization=False)  # its optimizer breaks GELU fusion
    if not ok:
        raise RuntimeError("onnxsim's own check failed")
    return simplified


def _onnxslim(model):
    import onnxslim

    return onnxslim.slim(model)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:160] if text else type(exc).__name__


def _feeds(model, inputs) -> tuple[list[np.ndarray], str, bool]:
    """(batches, what they are, whether they are real images): ``inputs`` (a CheckInputs), else noise."""
    if inputs is not None and inputs.batches:
        return list(inputs.batches), inputs.source, True
    return [random_input(model)], RANDOM, False


def simplify_onnx(src: Path, out: Path, tools: tuple[str, ...] = TOOLS, inputs=None, task: str | None = None,
                  probabilities: bool | None = None) -> SimplifyResult:
    """Simplify ``src`` into ``out``: the first tool whose graph keeps every output wins, else ``src``
    is kept as it is.

    Args:
        inputs: a :class:`~edgekit.compile.check.CheckInputs` of the build's real images (None: noise).
        task: what the model does (a detector's raw outputs are budgeted in pixels).
        probabilities: whether the first output holds probabilities (None: decided here, by
            :func:`edgekit.convert.outputs.output_finding`).
    """
    from edgekit.compile.check import Reference
    from edgekit.convert.outputs import output_finding

    start = time.perf_counter()
    model = load_checked(src)
    before = sum(count_nodes(model).values())
    batches, source, real = _feeds(model, inputs)
    with cpu_runner(src) as runner:
        name = runner.input_specs()[0].name
        feeds = [{name: b} for b in batches]
        reference = Reference(feeds, runner.infer, "fp32", task or "segmentation", False, source)
    first = next(iter(reference.outputs[0]))
    if probabilities is None:
        probabilities = output_finding(model, [o[first] for o in reference.outputs], source, real).probabilities
    reference.probabilities = probabilities
    notes = []
    for tool in tools:
        try:
            simplified = {"onnxsim": _onnxsim, "onnxslim": _onnxslim}[tool](model)
        except Exception as exc:  # a tool's failure is expected on some graphs: try the next
            notes.append(f"{tool} failed: {_first_line(exc)}")
            continue
        kept = _kept(simplified, Path(out), reference, first, tool, notes)
        if kept is not None:
            check, error = kept
            after = sum(count_nodes(simplified).values())
            return SimplifyResult(Path(out), tool, before, after, error, time.perf_counter() - start,
                                  "; ".join(notes), check)
    with atomic_file(Path(out)) as tmp:
        shutil.copyfile(src, tmp)
    notes.append("kept the graph unsimplified")
    return SimplifyResult(Path(out), "none", before, before, OutputError(0.0, 0.0, 0.0), time.perf_counter() - start,
                          "; ".join(notes), "")


def _kept(simplified, out: Path, reference, first: str, tool: str, notes: list[str]):
    """Write ``simplified`` to ``out`` when every output holds its budget: (check in words, first
    output's error); else None with the reason appended to ``notes`` and nothing written."""
    import onnx

    scratch = out.with_name(f".{out.stem}.{tool}.onnx")
    try:
        onnx.save(simplified, str(scratch))
        got: list[dict] = []
        with cpu_runner(scratch) as runner:
            check = reference.compare(lambda feed: got.append(runner.infer(feed)) or got[-1])
    except Exception as exc:  # a graph ONNX Runtime cannot load or run is a tool's failure too
        scratch.unlink(missing_ok=True)
        notes.append(f"{tool}'s graph does not run: {_first_line(exc)}")
        return None
    moved = [f"{n} {list(r[n].shape)} -> {list(g[n].shape)}" for r, g in zip(reference.outputs, got) for n in r
             if r[n].shape != g[n].shape]
    if moved or not check.holds:
        scratch.unlink(missing_ok=True)
        notes.append(f"{tool} changed the outputs: " + (f"shapes {moved[0]}" if moved else check.describe()))
        return None
    with atomic_file(out) as tmp:
        shutil.move(str(scratch), tmp)
    error = output_error(np.concatenate([r[first] for r in reference.outputs]), np.concatenate([g[first] for g in got]))
    return check.describe(), error
