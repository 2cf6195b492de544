"""INT8 / FP16 against FP32 on the cpu target (ONNX Runtime's CPU provider), side by side in one run.

For one FP32 ONNX (given, or exported here from a timm name or a recipe), builds:
  fp32          the input, unchanged
  ort-int8      edgekit's cpu int8: ORT static quantizer, QDQ U8S8, per-channel, every op type
  ort-int8-conv the same on Conv / MatMul / Gemm only
  modelopt-int8 the TensorRT flavor (ModelOpt symmetric Q/DQ, the rest in fp16), run on the CPU
  modelopt-int8-fp32  the same with the unquantized rest left in fp32
  fp16          ModelOpt AutoCast, float32 I/O
and prints, for each: file size, median latency of --runs runs (after --warmup runs, same session
settings, batch 1, one fixed held-out input, host arrays, time.perf_counter around session.run;
the variants take turns run by run, so background load falls on all of them alike),
the ratios to FP32, and agreement / mIoU (or top-1 agreement) against FP32 on held-out images;
with masks beside them (calib/bluemarble_val/masks), mIoU against the ground truth too.

Examples:
  python bench/precision_cpu.py --onnx out/demo/model.fp32.onnx --task segmentation
  python bench/precision_cpu.py --timm mobileone_s1 --size 224 --task classification
  python bench/precision_cpu.py --recipe fastvit_sa12_fpn --size 512 --no-weights
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from edgekit.images.image_set import CalibrationSet
from edgekit.convert.precision import PrecisionSpec, set_precision
from edgekit.convert.verify_precision import verify_precision
from edgekit.preprocess import Preprocess

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = ("fp32", "ort-int8", "ort-int8-conv", "modelopt-int8", "modelopt-int8-fp32", "fp16")


def export(args, out: Path) -> Path:
    """Export a timm model or a recipe's network (reparameterized, eval) to ``out`` at opset 17."""
    import torch
    from timm.utils.model import reparameterize_model

    if args.timm:
        import timm

        model = timm.create_model(args.timm, pretrained=False)
    else:
        from edgekit.nets.factory import model_from_recipe
        from edgekit.recipes import load_recipe

        model = model_from_recipe(load_recipe(args.recipe), weights=not args.no_weights)
    model = reparameterize_model(model.eval())
    x = torch.randn(1, 3, args.size, args.size)
    torch.onnx.export(model, x, str(out), input_names=["input"], output_names=["output"], opset_version=17, dynamo=False)
    return out


def build(variant: str, fp32: Path, folder: Path, calib: CalibrationSet, method: str) -> Path:
    out = folder / f"{variant}.onnx"
    specs = {
        "fp32": PrecisionSpec("fp32"),
        "ort-int8": PrecisionSpec("int8", "onnxruntime", method),
        "ort-int8-conv": PrecisionSpec("int8", "onnxruntime", method, op_types=("Conv", "MatMul", "Gemm")),
        "modelopt-int8": PrecisionSpec("int8", "tensorrt", "max" if method == "percentile" else method),
        "modelopt-int8-fp32": PrecisionSpec("int8", "tensorrt", "max" if method == "percentile" else method,
                                            high_precision="fp32"),
        "fp16": PrecisionSpec("fp16", "onnxruntime"),
    }
    spec = specs[variant]
    t = time.perf_counter()
    result = set_precision(fp32, out, spec, calib)
    print(f"  built {variant:14s} in {time.perf_counter() - t:6.1f} s  (Q/DQ pairs {result.qdq_pairs}, fp16 nodes {result.fp16_nodes})")
    return out


def latencies(paths: dict[str, Path], feed: np.ndarray, runs: int, warmup: int, threads: int) -> dict[str, float]:
    """Median seconds of ``session.run`` on host arrays (CPU provider: no copies), variants interleaved."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    sessions = {v: ort.InferenceSession(str(p), opts, providers=["CPUExecutionProvider"]) for v, p in paths.items()}
    name = next(iter(sessions.values())).get_inputs()[0].name
    times: dict[str, list[float]] = {v: [] for v in sessions}
    for i in range(warmup + runs):
        for variant, session in sessions.items():
            t = time.perf_counter()
            session.run(None, {name: feed})
            if i >= warmup:
                times[variant].append(time.perf_counter() - t)
    return {v: statistics.median(t) for v, t in times.items()}


def truth_miou(path: Path, val: CalibrationSet, classes: int) -> float | None:
    """mIoU against ground-truth masks (val folder's masks/, same names), None without masks."""
    from PIL import Image

    from edgekit.metrics import confusion, iou_from_confusion
    from edgekit.runtime.onnxrt import OnnxRuntimeRunner

    masks = val.source / "masks"
    if not masks.is_dir() or val.batch != 1:
        return None
    cm = np.zeros((classes, classes), np.int64)
    with OnnxRuntimeRunner(path) as runner:
        name = runner.input_specs()[0].name
        for sample, batch in zip(val.items, val.batches()):
            pred = next(iter(runner.infer({name: batch}).values()))[0].argmax(0)
            truth = np.asarray(Image.open(masks / sample.path.name))
            cm += confusion(truth[: pred.shape[0], : pred.shape[1]], pred, classes)
    return float(np.nanmean(iou_from_confusion(cm)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--onnx", type=Path, help="FP32 ONNX (e.g. the simplified model of a build)")
    source.add_argument("--timm", help="timm model name to export (pretrained=False: random weights)")
    source.add_argument("--recipe", help="recipe name to export (see `edgekit models`)")
    parser.add_argument("--no-weights", action="store_true", help="recipe: random weights, not its checkpoint")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--task", choices=("segmentation", "classification"), default="segmentation")
    parser.add_argument("--calib", type=Path, default=ROOT / "calib" / "bluemarble")
    parser.add_argument("--val", type=Path, default=ROOT / "calib" / "bluemarble_val")
    parser.add_argument("--calib-samples", type=int, default=16)
    parser.add_argument("--calib-method", choices=("entropy", "max", "percentile"), default="entropy")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="intra-op threads (0: ORT's default)")
    args = parser.parse_args()

    fit = "resize" if args.task == "classification" else "crop"
    size = (args.size, args.size)
    calib = CalibrationSet(args.calib, size, Preprocess(), samples=args.calib_samples, fit=fit)  # spec: all of it
    val = CalibrationSet(args.val, size, Preprocess(), fit=fit)
    with tempfile.TemporaryDirectory(prefix="edgekit-bench-") as work:
        folder = Path(work)
        fp32 = args.onnx if args.onnx else export(args, folder / "exported.onnx")
        print(f"model {args.onnx or args.timm or args.recipe} at {args.size}x{args.size}; calibration "
              f"{len(calib.items)} images of {args.calib} ({args.calib_method}); held-out {len(val.items)} of {args.val}")
        variants = ["fp32"] + [v for v in args.variants if v != "fp32"]  # the baseline of every ratio
        paths = {v: build(v, fp32, folder, calib, args.calib_method) for v in variants}
        feed = next(val.batches())
        seconds_of = latencies(paths, feed, args.runs, args.warmup, args.threads)
        rows = []
        for variant, path in paths.items():
            seconds = seconds_of[variant]
            check = verify_precision(fp32, path, val, args.task, 100.0, raise_on_fail=False)
            classes = 0 if args.task == "classification" else _classes(path)
            gt = truth_miou(path, val, classes) if classes else None
            rows.append((variant, path.stat().st_size, seconds, check, gt))
        report(rows, args)


def _classes(path: Path) -> int:
    import onnx

    dims = onnx.load(str(path), load_external_data=False).graph.output[0].type.tensor_type.shape.dim
    return int(dims[1].dim_value)


def report(rows, args) -> None:
    base_size, base_time = rows[0][1], rows[0][2]
    print(f"\nORT CPU provider, batch 1, median of {args.runs} runs after {args.warmup} warm-up, threads={args.threads or 'default'}")
    print(f"{'variant':14s} {'MB':>7s} {'size x':>7s} {'ms':>8s} {'speed x':>8s} {'agree %':>8s} {'mIoU/fp32':>10s} {'mIoU/truth':>11s} {'max_rel':>8s}")
    for variant, size, seconds, check, gt in rows:
        miou = f"{100 * check.miou:.2f}" if check.miou is not None else "-"
        truth = f"{100 * gt:.2f}" if gt is not None else "-"
        print(f"{variant:14s} {size / 2**20:7.2f} {base_size / size:7.2f} {1000 * seconds:8.1f} {base_time / seconds:8.2f} "
              f"{100 * check.agreement:8.2f} {miou:>10s} {truth:>11s} {check.error.max_rel:8.4f}")
    print("size x and speed x: FP32 / variant (above 1: smaller, faster).")


if __name__ == "__main__":
    main()
