"""`edgekit inspect SOURCE`: what edgekit believes about a model, each belief with where it came from.

Inputs and outputs, task, normalisation, classes, for detectors the output layout edgekit's
decoders read, and for an ONNX file whether it reads its whole input (global pooling, attention:
:mod:`edgekit.convert.context`); nothing is built or written. A PyTorch source is run once on zeros for its output
shapes; an ONNX file is only read.
"""
from __future__ import annotations

import json
from pathlib import Path

import click

from edgekit.cli.options import RECIPES_DIR, SIZE, preprocess_options, verbosity_options


@click.command("inspect")
@click.argument("source")
@click.option("--json", "as_json", is_flag=True, help="Print it as JSON.")
@click.option("--input-size", type=SIZE, help="Input HxW (default: what the model or recipe says).")
@click.option("--checkpoint", type=click.Path(path_type=Path), help="state_dict (.pt/.pth/.safetensors).")
@click.option("--factory-arg", "factory_args", multiple=True, metavar="NAME=VALUE",
              help="Argument of a module:factory source, a Python literal (repeat): weights=DEFAULT.")
@click.option("--task", type=click.Choice(["classification", "segmentation", "detection"]),
              help="The task you would declare to `edgekit build`.")
@click.option("--trust-checkpoint", is_flag=True, help="Load files holding pickled Python objects (they can run code).")
@preprocess_options
@RECIPES_DIR
@verbosity_options(final_line=False)
def inspect(source, as_json, input_size, checkpoint, factory_args, task, trust_checkpoint, inputs, recipes_dir) -> None:
    """Print what edgekit reads from SOURCE (.onnx, timm:<name>, recipe, module:factory) without building it."""
    from edgekit.convert.source import resolve_source

    src = resolve_source(source, input_size, checkpoint, task, factory_args, trust_checkpoint,
                         recipes_dir, inputs=inputs)
    view = _view(src, task)
    click.echo(json.dumps(view, indent=2, default=list) if as_json else "\n".join(_lines(view)))


def _tensors(src) -> tuple[list[dict], list[dict]]:
    """The model's inputs and outputs: read from an ONNX graph (symbolic output sizes inferred at the
    input size the model or --input-size says, marked ``at``), else seen in one run on zeros."""
    if src.kind == "onnx":
        outputs = [dict(t) for t in src.contract.outputs]
        size = tuple(src.recipe.input_size) if all(src.recipe.input_size) else None
        if size and any(not isinstance(d, int) for t in outputs for d in t["shape"][1:]):
            from edgekit.convert.contract import outputs_at

            outputs = [dict(t) | {"at": f"{size[0]}x{size[1]}"} for t in outputs_at(src.onnx_path, size)]
        return [dict(t) for t in src.contract.inputs], outputs
    import torch

    from edgekit.convert.outputs import select_output

    sample = torch.zeros(1, src.recipe.preprocess.channels, *src.recipe.input_size)
    _, choice = select_output(src.load_model(), sample)
    outputs = [{"name": name, "shape": tuple(shape)} | ({"deployed": True} if name == choice.chosen else {})
               for name, shape in choice.outputs.items()]
    return [{"name": "input", "shape": tuple(sample.shape)}], outputs


def _task(src, declared: str | None, outputs: list[dict], inputs: list[dict]) -> tuple[str | None, str]:
    """The task and where it came from, by the one rule (:mod:`edgekit.convert.task`); None and
    why, when nothing decides it."""
    from edgekit.convert.task import task_of
    from edgekit.errors import ConfigError

    shape = inputs[0]["shape"] if inputs else ()
    deployed = [o for o in outputs if o.get("deployed")] or outputs  # a PyTorch model's chosen output, as build
    fixed = len(shape) == 4 and all(isinstance(d, int) for d in shape[2:4])  # else the model's or --input-size
    try:
        decision = task_of(src, declared, deployed, tuple(shape[2:4]) if fixed else None, check=False)
    except ConfigError as exc:
        return None, str(exc)
    return decision.task, decision.source


def _layout(outputs: list[dict], input_hw: tuple | None) -> tuple[str | None, str]:
    """Which detection layout of edgekit/runtime/decode.py reads these outputs (at the input size),
    the two the shapes fit (the build decides from the values), or why none does."""
    from types import SimpleNamespace

    from edgekit.errors import DetectionError
    from edgekit.runtime.decode import candidate_formats, detect_format

    specs = [SimpleNamespace(name=o["name"], shape=o["shape"]) for o in outputs]
    try:
        return detect_format(specs, input_hw), "edgekit/runtime/decode.py"
    except DetectionError as exc:
        found = candidate_formats(specs, input_hw)
        return (" or ".join(found), "the shapes fit both; `edgekit build` decides from the outputs on its inputs"
                ) if found else (None, str(exc))


def _view(src, declared_task: str | None) -> dict:
    inputs, outputs = _tensors(src)
    task, task_source = _task(src, declared_task, outputs, inputs)
    contract, pre = src.contract, src.recipe.preprocess
    view = {"source": {"kind": src.kind, "name": src.name}, "inputs": inputs, "outputs": outputs,
            "task": task, "task_source": task_source, "preprocess": pre.to_dict(),
            "input_size": list(src.recipe.input_size) if all(src.recipe.input_size) else None,
            "classes": list(src.recipe.classes),
            "classes_source": contract.source_of("classes") if not src.recipe.path and src.recipe.classes else (
                f"recipe {Path(src.recipe.path).name}" if src.recipe.classes else None),
            "said": contract.to_dict()}
    if src.kind == "onnx":
        from edgekit.convert.context import context_of

        view["context"] = context_of(src.onnx_path)
    layout, where = _layout(outputs, tuple(src.recipe.input_size) if all(src.recipe.input_size) else None)
    if task == "detection" or (task is None and layout):
        view["detection_layout"], view["detection_layout_source"] = layout, where
    return view


def _shape(t: dict) -> str:
    return f"{t['name']} {list(t['shape'])}" + (" (deployed)" if t.get("deployed") else "") + (
        f" (at {t['at']}; symbolic in the file)" if t.get("at") else "")


def _lines(view: dict) -> list[str]:
    pre, sources = view["preprocess"], view["preprocess"].get("source", {})
    classes = view["classes"]
    lines = [f"{view['source']['name']} ({view['source']['kind']})",
             f"inputs: {'; '.join(_shape(t) for t in view['inputs'])}",
             f"outputs: {'; '.join(_shape(t) for t in view['outputs'])}",
             f"task: {view['task'] or 'unknown'} ({view['task_source']})",
             "normalisation" + (" (ASSUMED: nothing declares it)" if pre.get("assumed") else "") + ":"]
    for key in ("mean", "std", "channel_order", "scale", "bands"):
        if key in pre:
            value = ", ".join(f"{v:g}" for v in pre[key]) if isinstance(pre[key], list) else (
                f"{pre[key]:g}" if isinstance(pre[key], float) else pre[key])
            lines.append(f"  {key}: {value} ({sources.get(key, 'not recorded')})")
    lines.append(f"classes: {len(classes)}: {', '.join(classes[:10])}{' ...' if len(classes) > 10 else ''} "
                 f"({view['classes_source']})" if classes else "classes: none named")
    if "detection_layout" in view:
        layout = view["detection_layout"]
        lines.append(f"detection layout: {layout} ({view['detection_layout_source']})" if layout
                     else f"detection layout: none ({view['detection_layout_source']})")
    if "context" in view:
        lines.append(f"context: {view['context']['text']}")
    lines += [f"note: {n}" for n in view["said"].get("notes", ())]
    return lines
