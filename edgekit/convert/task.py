"""A model's task, decided by one rule for every command (build, export, quantize, optimize, sweep,
compress, inspect).

The first that says it:

1. the ``--task`` option;
2. what the model says about itself: a recipe's ``task:`` (an `edgekit compress` output's too),
   timm (its architectures are image classifiers), an ONNX file's metadata (``task``, Ultralytics'
   ``task``), a manifest beside an ONNX file;
3. its output shapes, where they decide it: one output (N, K) is classification; one output
   (N, C, h, w) whose h x w is the input's H x W divided by a stride of 1..``MAX_STRIDE`` is
   segmentation; outputs one of the decoders of :mod:`edgekit.runtime.decode` reads is detection
   (where the shapes fit two layouts, YOLOX's raw head or boxes in pixels, a ``probe`` of the
   model's outputs on the build's inputs decides which);
4. else a one-line :class:`~edgekit.errors.ConfigError` asking for ``--task`` and saying why the
   shapes did not decide it.

An option contradicting what the model says wins, with one warning line naming both. A detector
(declared, said or decided) whose outputs none of the decoders reads is a one-line error naming
the layouts edgekit reads and where a decoder is added (docs/detection.md, "Adding a decoder").
"""
from __future__ import annotations

__all__ = ["TASKS", "TaskDecision", "resolve_task", "task_of", "said_by_source", "task_from_onnx", "outputs_probe"]

import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Sequence

from edgekit.errors import ConfigError

TASKS = ("segmentation", "classification", "detection")
MAX_STRIDE = 32  # the coarsest logits edgekit reads as a mask (1/32 of the input)
ADD_DECODER = "docs/detection.md, 'Adding a decoder'"
ASK = "declare it with --task segmentation|classification|detection"


@dataclass(frozen=True)
class TaskDecision:
    """The task, where it came from, and for a detector the output layout its decoder reads.

    Attributes:
        task: ``segmentation``, ``classification`` or ``detection``.
        source: ``--task``, ``recipe tiny_fpn.yaml``, ``ONNX metadata (Ultralytics)``, or the
            output shape that decided it.
        layout: the detection layout (one of :data:`edgekit.runtime.decode.FORMATS`), or None;
            ``yolox or yolov5`` when only the outputs' values tell and no probe was given (inspect).
    """

    task: str
    source: str
    layout: str | None = None

    def to_dict(self) -> dict:
        return {"task": self.task, "source": self.source} | ({"layout": self.layout} if self.layout else {})

    def applied(self, src):
        """``src`` (a :class:`~edgekit.convert.source.Source`) with this task in its recipe."""
        return replace(src, recipe=replace(src.recipe, task=self.task))


def _spec(output) -> SimpleNamespace:
    """An output as ``name`` and ``shape``, from a TensorSpec, a dict or a (name, shape) pair."""
    if isinstance(output, dict):
        return SimpleNamespace(name=str(output["name"]), shape=tuple(output["shape"]))
    if isinstance(output, tuple):
        return SimpleNamespace(name=str(output[0]), shape=tuple(output[1]))
    return SimpleNamespace(name=str(output.name), shape=tuple(output.shape))


def _shapes(specs: Sequence) -> str:
    return ", ".join(f"{s.name} {_dims(s.shape)}" for s in specs) or "none"


def _dims(shape: tuple) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ")"


def _layout(specs: list, input_hw: tuple | None = None, probe=None) -> str | None:
    """The detection layout of ``specs`` (None: no decoder reads them); where the shapes fit two,
    the one the values of ``probe()`` (outputs by name) say, else both joined by ' or '."""
    from edgekit.runtime.decode import candidate_formats, detect_format

    found = candidate_formats(specs, input_hw)
    if len(found) > 1 and probe is not None:
        return detect_format(specs, input_hw, probe())
    return " or ".join(found) or None


def outputs_probe(path: Path, inputs=None):
    """A ``probe`` for :func:`resolve_task`: the outputs of the ONNX ``path``, run on the CPU, on the
    first batch of ``inputs`` (the build's real images, :class:`~edgekit.compile.check.CheckInputs`),
    else on one seeded random input."""
    def run() -> dict:
        import onnx

        from edgekit.convert.onnx_check import random_input
        from edgekit.runtime.open import cpu_runner

        batch = next(iter(inputs.batches)) if inputs is not None else random_input(
            onnx.load(str(path), load_external_data=False))
        with cpu_runner(path) as runner:
            return runner.infer({runner.input_specs()[0].name: batch})
    return run


def _stride(hw: tuple, input_hw: tuple | None) -> int | None:
    """s when ``hw`` is ``input_hw`` / s for an integer s in 1..MAX_STRIDE (the same symbolic sizes: 1)."""
    if input_hw is None:
        return None
    if tuple(hw) == tuple(input_hw):
        return 1
    if not all(isinstance(d, int) and d > 0 for d in (*hw, *input_hw)):
        return None
    return next((s for s in range(1, MAX_STRIDE + 1) if hw[0] * s == input_hw[0] and hw[1] * s == input_hw[1]), None)


def _by_shapes(specs: list, input_hw: tuple | None, probe=None) -> tuple[str | None, str, str | None]:
    """(task, why, detection layout) from the output shapes; task None says why they do not decide it."""
    if not specs:
        return None, "its outputs are not known", None
    hw = "x".join(str(d) for d in input_hw) if input_hw else "unknown"
    first = specs[0]
    label_map = len(specs) == 1 and len(first.shape) == 3 and _stride(first.shape[1:], input_hw) == 1
    layout = None if label_map else _layout(specs, input_hw, probe)
    if layout:
        return "detection", f"{_shapes(specs)} {'is' if len(specs) == 1 else 'are'} the {layout} detection layout", layout
    if len(specs) > 1:
        return None, f"it has {len(specs)} outputs ({_shapes(specs)}) and no detection layout reads them", None
    shape = first.shape
    if len(shape) == 2:
        return "classification", f"{first.name} {_dims(shape)} is (N, K) class scores", None
    if len(shape) == 4:
        stride = _stride(shape[2:], input_hw)
        if stride is not None:
            at = "the input's size" if stride == 1 else f"1/{stride} of the input's size"
            return "segmentation", f"{first.name} {_dims(shape)} is (N, C, h, w) at {at}", None
        return None, (f"output {first.name} {_dims(shape)} is 4-D but its h x w is not the input's {hw} divided by a "
                      f"stride of 1..{MAX_STRIDE}"), None
    why = "a label map (N, H, W), not logits" if label_map else "not (N, K) class scores"
    return None, (f"output {first.name} {_dims(shape)} is {why}, not (N, C, h, w) at the input's {hw} / stride, "
                  "and no detection layout reads it"), None


def _readable(task: str, source: str, specs: list, input_hw: tuple | None = None, probe=None) -> str:
    """The detection layout of ``specs``, or the one-line error of a detector edgekit cannot decode."""
    from edgekit.runtime.decode import FORMATS

    layout = _layout(specs, input_hw, probe)
    if layout is None:
        raise ConfigError(f"the task is {task} ({source}) but none of edgekit's detection decoders reads the outputs "
                          f"{_shapes(specs)}: it reads {', '.join(FORMATS[:-1])} and {FORMATS[-1]} (their shapes: "
                          f"docs/detection.md); export the detector in one of them, or add a decoder ({ADD_DECODER})")
    return layout


def resolve_task(declared: str | None, said: str | None = None, outputs: Sequence | None = None,
                 input_hw: tuple | None = None, *, said_by: str = "", unsaid: str = "",
                 check: bool = True, probe=None) -> TaskDecision:
    """The task by the rule of the module docstring.

    Args:
        declared: the ``--task`` option (None: not given).
        said: the task the model or recipe states (None: it states none); said_by: where it is stated.
        outputs: the model's outputs (TensorSpecs, ``{"name", "shape"}`` dicts or (name, shape)
            pairs), the deployed ones; None when they are not known (no shape rule, no layout check).
        input_hw: the input's (height, width), for the segmentation stride.
        unsaid: why what the model says was not used (a task edgekit does not build), for the error.
        check: False returns a declared or stated detector no decoder reads with layout None
            (`edgekit inspect` shows it) instead of stopping.
        probe: called (once, only where the shapes fit two detection layouts) for the model's
            outputs by name on the build's inputs (:func:`outputs_probe`), whose values decide.

    Raises:
        ConfigError: the task is not declared, said, nor decided by the shapes; or a detector's
            outputs are a layout no decoder reads.
    """
    if declared is not None and declared not in TASKS:
        raise ConfigError(f"--task {declared}: choose one of {', '.join(TASKS)}")
    specs = [_spec(o) for o in outputs] if outputs is not None else None
    if declared:
        if said and said != declared:
            from edgekit.convert.contract import ContractWarning

            warnings.warn(f"--task {declared} overrides task {said} from {said_by or 'the model'}: the option wins",
                          ContractWarning, stacklevel=2)
        decision = TaskDecision(declared, "--task")
    elif said:
        if said not in TASKS:
            raise ConfigError(f"{said_by or 'the model'} says task {said!r}; edgekit builds {', '.join(TASKS)}: {ASK}")
        decision = TaskDecision(said, said_by or "the model")
    else:
        task, why, layout = _by_shapes(specs or [], input_hw, probe)
        if task is None:
            said_note = f"{unsaid}; " if unsaid else "nothing states the model's task and "
            raise ConfigError(f"{said_note}its outputs do not decide it: {why}; {ASK}")
        return TaskDecision(task, f"output shapes: {why}", layout)
    if decision.task == "detection" and specs is not None:
        layout = (_readable(decision.task, decision.source, specs, input_hw, probe) if check
                  else _layout(specs, input_hw, probe))
        decision = replace(decision, layout=layout)
    return decision


def said_by_source(src) -> tuple[str | None, str, str]:
    """(task, where it is stated, why a stated task was not used) of a resolved
    :class:`~edgekit.convert.source.Source`: its recipe's, timm's, or its contract's."""
    if src.kind == "recipe":
        return src.recipe.task, f"recipe {Path(src.recipe.path).name}" if src.recipe.path else "its recipe", ""
    if src.kind == "compressed":
        return src.recipe.task, f"{Path(src.name).name}/{Path(src.recipe.path).name}", ""
    contract = src.contract
    if contract is not None and contract.task:
        return contract.task, contract.task_source or "the model", ""
    if src.kind == "timm":
        return "classification", "timm (its models are image classifiers)", ""
    note = next((n for n in (contract.notes if contract is not None else ()) if "says task" in n), "")
    return None, "", note


def task_of(src, declared: str | None, outputs: Sequence | None, input_hw: tuple | None = None,
            check: bool = True, probe=None) -> TaskDecision:
    """The task of a resolved source (:func:`resolve_task` with what the source states);
    ``input_hw`` defaults to the recipe's input size."""
    said, said_by, unsaid = said_by_source(src)
    size = tuple(src.recipe.input_size) if src.recipe.input_size and all(src.recipe.input_size) else None
    return resolve_task(declared, said, outputs, input_hw or size, said_by=said_by, unsaid=unsaid, check=check,
                        probe=probe)


def task_from_onnx(path: Path, declared: str | None) -> TaskDecision:
    """The task of an ONNX file outside a build (`edgekit quantize`): the option, the manifest
    beside it, its metadata, its output shapes."""
    from edgekit.artifact.layout import MANIFEST
    from edgekit.artifact.manifest import read_manifest
    from edgekit.convert.contract import contract_from_onnx

    path = Path(path)
    contract = contract_from_onnx(path)
    said, said_by = contract.task, contract.task_source or ""
    if (path.parent / MANIFEST).is_file():
        said, said_by = read_manifest(path.parent).task, f"{MANIFEST} beside {path.name}"
    hw = tuple(contract.inputs[0]["shape"][2:4]) if contract.inputs and len(contract.inputs[0]["shape"]) == 4 else None
    unsaid = next((n for n in contract.notes if "says task" in n), "")
    return resolve_task(declared, said, contract.outputs, hw, said_by=said_by, unsaid=unsaid)
