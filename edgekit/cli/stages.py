"""The build stages as commands of their own: reparam, export, simplify, quantize."""
from __future__ import annotations

from pathlib import Path

import click

from edgekit.cli.options import BATCH, BATCH_HELP, SIZE, TASK, preprocess_options, verbosity_options

_source_options = [
    click.argument("source"),
    click.option("--input-size", type=SIZE, help="Input HxW (default: the recipe's)."),
    click.option("--checkpoint", type=click.Path(path_type=Path), help="state_dict (.pt/.pth/.safetensors)."),
    TASK,
]


def source_options(fn):
    for option in reversed(_source_options):
        fn = option(fn)
    return fn


def _deployed(source, input_size, checkpoint, task, batch=1):
    """The source, the reparameterized model reduced to the output `build` deploys
    (:func:`~edgekit.convert.outputs.select_output`), the sample, and that output's choice."""
    import torch

    from edgekit.convert.outputs import select_output
    from edgekit.convert.reparam import reparameterize
    from edgekit.convert.source import resolve_source

    src = resolve_source(source, input_size, checkpoint, task)
    sample = torch.randn(batch or 1, src.recipe.preprocess.channels, *src.recipe.input_size,
                         generator=torch.Generator().manual_seed(0))
    model, output = select_output(src.load_model(), sample)
    return src, reparameterize(model, sample), sample, output


@click.command()
@source_options
@click.option("-o", "--out", type=click.Path(path_type=Path), required=True, help="Output .pt2 (torch.export).")
@verbosity_options
def reparam(source, input_size, checkpoint, task, out) -> None:
    """Reparameterize and fuse SOURCE; save the deploy form as a torch.export program (.pt2)."""
    import torch

    from edgekit.atomic import atomic_file

    src, rep, sample, _ = _deployed(source, input_size, checkpoint, task)
    with atomic_file(out) as tmp:
        torch.export.save(torch.export.export(rep.model, (sample,)), str(tmp))
    r = rep.report
    click.echo(f"{src.name}: {r.blocks_reparameterized} blocks reparameterized, {r.batchnorms_folded} Conv+BN folded, "
               f"params {r.params_before:,} -> {r.params_after:,}, modules {r.modules_before} -> {r.modules_after}; "
               f"max abs error {r.error.max_abs:.2e} (relative {r.error.max_rel:.2e}) -> {out}")


@click.command()
@source_options
@click.option("-o", "--out", type=click.Path(path_type=Path), required=True, help="Output .onnx.")
@click.option("--batch", type=BATCH, default="1", help=BATCH_HELP)
@click.option("--opset", type=int, default=18, show_default=True)
@verbosity_options
def export(source, input_size, checkpoint, task, out, batch, opset) -> None:
    """Reparameterize SOURCE and export it to ONNX, verified against PyTorch with ONNX Runtime."""
    from edgekit.convert.export import ExportSpec, export_onnx
    from edgekit.convert.pipeline import OUTPUT_NAMES
    from edgekit.convert.task import task_of

    if opset < 17:
        raise click.BadParameter("edgekit exports opset 17 or newer", param_hint="--opset")
    src, rep, _, output = _deployed(source, input_size, checkpoint, task, batch)
    src = task_of(src, task, [(output.chosen, output.shape)]).applied(src)  # the one rule, as build
    spec = ExportSpec(src.recipe.input_size, batch=batch, opset=opset,
                      output_name=OUTPUT_NAMES.get(src.recipe.task, "scores"))
    result = export_onnx(rep.model, out, spec)
    click.echo(f"{out}: {result.nodes} nodes ({result.exporter} exporter); vs PyTorch max abs "
               f"{result.error.max_abs:.2e}, relative {result.error.max_rel:.2e}")


@click.command()
@click.argument("onnx_in", type=click.Path(path_type=Path))
@click.option("-o", "--out", type=click.Path(path_type=Path), required=True, help="Output .onnx.")
@verbosity_options
def simplify(onnx_in, out) -> None:
    """Simplify ONNX_IN with onnxsim (onnxslim as fallback), verified with ONNX Runtime."""
    from edgekit.convert.simplify import simplify_onnx

    r = simplify_onnx(onnx_in, out)
    click.echo(f"{out}: {r.tool}, {r.nodes_before} -> {r.nodes_after} nodes, max abs error {r.error.max_abs:.2e}"
               + (f" ({r.notes})" if r.notes else ""))


@click.command()
@click.argument("onnx_in", type=click.Path(path_type=Path))
@click.option("-o", "--out", type=click.Path(path_type=Path), required=True)
@click.option("--precision", type=click.Choice(["fp16", "int8"]), required=True)
@click.option("--target", default="cpu", show_default=True, help="Decides the Q/DQ flavor (TensorRT or ONNX Runtime).")
@click.option("--calib", type=click.Path(path_type=Path), help="Calibration images (int8; fp16 optional).")
@click.option("--calib-method", type=click.Choice(["entropy", "max", "percentile"]), default="max", show_default=True)
@click.option("--calib-samples", type=int, default=32, show_default=True)
@click.option("--calib-memory", type=float, metavar="MB",
              help="Memory one calibration pass may hold (default: a quarter of the available memory).")
@click.option("--val", type=click.Path(path_type=Path), help="Held-out images (with masks/) to verify against the input model.")
@TASK
@click.option("--max-drop", type=float, help="Points of the task metric allowed (default: the target's).")
@preprocess_options
@verbosity_options
def quantize(onnx_in, out, precision, target, calib, calib_method, calib_samples, calib_memory, val, task, max_drop,
             inputs) -> None:
    """Lower ONNX_IN to fp16 or int8 (Q/DQ in the graph), verify it against ONNX_IN and fall back as `build` does.

    Images are normalised as the options say, else as the manifest.json beside ONNX_IN, else as the
    model's metadata; where nothing says it, with none (mean 0, std 1), and a warning. The task, by
    the same rule: --task, the manifest, the metadata, else the output shapes.
    """
    from edgekit.images.image_set import CalibrationSet
    from edgekit.convert.precision import PrecisionSpec
    from edgekit.convert.precision_spec import SEVEN_BIT_WHY
    from edgekit.convert.precision_policy import lower_precision
    from edgekit.convert.task import task_from_onnx
    from edgekit.evaluate import HeldOutSet
    from edgekit.runtime.onnxrt import OnnxRuntimeRunner
    from edgekit.targets import load_target

    tgt = load_target(target)
    task = task_from_onnx(onnx_in, task).task
    with OnnxRuntimeRunner(onnx_in) as runner:
        spec_in = runner.input_specs()[0]
    size = tuple(int(d) for d in spec_in.shape[2:4])
    batch = spec_in.shape[0] if isinstance(spec_in.shape[0], int) else 1
    pre = _preprocess_for(onnx_in, inputs)
    calib_set = CalibrationSet(calib, size, pre, batch=batch) if calib else None
    held = HeldOutSet.beside(CalibrationSet(val, size, pre, batch=batch)) if val is not None else None
    spec = PrecisionSpec(precision, flavor="tensorrt" if tgt.is_tensorrt else "onnxruntime",
                         calib_method=calib_method, calib_samples=calib_samples, calib_memory_mb=calib_memory)
    lowered = lower_precision(onnx_in, out, spec, calib_set, held, task,
                              tgt.max_accuracy_drop if max_drop is None else max_drop, progress=click.echo)
    result, check = lowered.result, lowered.check
    click.echo(f"{out}: {precision} ({spec.flavor}, unquantized layers {lowered.spec.high_precision}), "
               f"{result.qdq_pairs} Q/DQ pairs, {result.fp16_nodes} fp16 nodes, {result.nodes_before} -> {result.nodes_after} nodes"
               + (f"; {SEVEN_BIT_WHY}" if lowered.spec.weight_bits == 7 else ""))
    if check is not None:
        click.echo(f"verified on {check.images} images: agreement {100 * check.agreement:.2f}%, drop {check.drop:.2f} "
                   f"points ({check.drop_basis}); tried {'; '.join(a.describe() for a in lowered.attempts)}")
        if lowered.stayed_float:
            click.echo(f"kept in float: {', '.join(lowered.stayed_float)}")
    else:
        click.echo(f"no --val images: max rel error {lowered.error.max_rel:.1e} on one random input")


def _preprocess_for(onnx_path: Path, inputs):
    """The normalisation of ONNX_IN: the options, over the manifest beside it (an older manifest's
    values count as declared by it), over the model's metadata (:mod:`edgekit.convert.contract`)."""
    from edgekit.artifact.layout import MANIFEST
    from edgekit.artifact.manifest import read_manifest
    from edgekit.convert.contract import contract_from_onnx, input_preprocess
    from edgekit.preprocess import FIELDS

    folder = Path(onnx_path).parent
    declared = read_manifest(folder).preprocess if (folder / MANIFEST).is_file() else None
    if declared is not None and not declared.origin:
        declared = declared.declared(f"{MANIFEST} beside it", **{k: getattr(declared, k) for k in FIELDS})
    return input_preprocess(Path(onnx_path).name, contract_from_onnx(onnx_path), declared, inputs, imagenet=False)
