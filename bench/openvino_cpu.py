"""OpenVINO against ONNX Runtime on this CPU: edgekit's artifacts for `cpu` and `cpu-openvino`, side by side.

For each model, four artifacts are built as a user builds them (``edgekit build RECIPE --target
cpu|cpu-openvino --precision fp32|int8 --calib calib/bluemarble``: each target's exporter choice,
fusions and precision check on its own runtime), then each artifact's own runner (the ONNX Runtime
plan, OpenVINO's IR held to f32) is timed in turns, batch 1, default threads, interleaved medians.
The demo model's INT8 rows also give the held-out mIoU against the real land-sea mask that each
build measured on its own runtime. Issue 14 adds OpenVINO only if it wins by >= 1.2x at FP32 on at
least two of the four models.

    pip install -e ".[build,openvino]" && python bench/openvino_cpu.py --out /tmp/edgekit_openvino [--runs 7]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODELS = (("fastvit_sa12_fpn", 512), ("mobileone_s1", 224), ("convnext_tiny_linear", 224), ("vit_s16_linear", 224))
BUILDS = (("cpu", "fp32"), ("cpu-openvino", "fp32"), ("cpu", "int8"), ("cpu-openvino", "int8"))


def build_all(recipe: str, size: int, out: Path) -> dict[tuple[str, str], Path]:
    """The four artifacts of one model (reused when a previous run left them complete)."""
    from edgekit.artifact.folder import load_artifact
    from edgekit.convert.pipeline import BuildConfig, build
    from edgekit.errors import EdgekitError

    folders = {}
    for target, precision in BUILDS:
        folder = out / f"{recipe}_{size}_{target}_{precision}"
        try:
            load_artifact(folder)
        except EdgekitError:
            calib = ROOT / "calib" / "bluemarble" if precision == "int8" else None
            build(recipe, folder, BuildConfig(target=target, precision=precision, input_size=(size, size),
                                              calib=calib, task="segmentation", latency_runs=0))
        folders[(target, precision)] = folder
    return folders


def time_all(folders: dict[tuple[str, str], Path], runs: int) -> dict[tuple[str, str], float]:
    """Median ms per artifact, each on its manifest's runner, in turns on one random input."""
    from contextlib import ExitStack

    import numpy as np

    from edgekit.artifact.folder import load_artifact
    from edgekit.runtime.open import open_runner
    from edgekit.timing import interleaved_medians

    with ExitStack() as stack:
        runners = [stack.enter_context(open_runner(load_artifact(f))) for f in folders.values()]
        spec = runners[0].input_specs()[0]
        x = np.random.default_rng(0).standard_normal(spec.shape).astype(np.float32)
        times = interleaved_medians([lambda r=r: r.infer({spec.name: x}) for r in runners], runs)
    return dict(zip(folders, times))


def truth_miou(folder: Path) -> float | None:
    """The held-out mIoU against ground truth the build's precision check measured (None without masks)."""
    for stage in json.loads((folder / "report.json").read_text())["stages"]:
        if stage["stage"].startswith("precision"):
            return stage["metrics"].get("miou_truth")
    return None


def main() -> None:
    import onnxruntime

    from edgekit.machine import cpu_name, cpu_vnni
    from edgekit.runtime.openvino_rt import openvino_version

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/edgekit_openvino"))
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--only", default="", help="comma-separated recipe names")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    vnni = cpu_vnni()
    print(f"CPU: {cpu_name()}, {'VNNI: ' + ' '.join(vnni) if vnni else 'no VNNI'}; "
          f"ONNX Runtime {onnxruntime.__version__}, OpenVINO {openvino_version()}; medians of {args.runs}, interleaved")
    print("| model | size | ORT FP32 ms | OV FP32 ms | OV/ORT FP32 | ORT INT8 ms | OV INT8 ms | OV INT8 vs ORT FP32 "
          "| INT8 mIoU vs truth (ORT / OV) |\n|---|---|---|---|---|---|---|---|---|")
    wins, models = 0, [m for m in MODELS if not args.only or m[0] in args.only.split(",")]
    for recipe, size in models:
        folders = build_all(recipe, size, args.out)
        ms = time_all(folders, args.runs)
        ort32, ov32, ort8, ov8 = (ms[b] for b in BUILDS)
        wins += ort32 / ov32 >= 1.2
        mious = [truth_miou(folders[b]) for b in BUILDS[2:]]
        miou = " / ".join(f"{m:.2f}" for m in mious) if all(m is not None for m in mious) else "- (random weights)"
        print(f"| {recipe} | {size} | {ort32:.1f} | {ov32:.1f} | {ort32 / ov32:.2f}x | {ort8:.1f} | {ov8:.1f} | "
              f"{ort32 / ov8:.2f}x | {miou} |", flush=True)
    print(f"OpenVINO wins by >= 1.2x at FP32 on {wins} of {len(models)}")


if __name__ == "__main__":
    main()
