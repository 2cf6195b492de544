"""Benchmarks of `edgekit build` on this CPU, measured side by side in one run.

1. FastViT-SA12 + FPN at 1024x1024 on ONNX Runtime's CPU provider: edgekit's FP32 artifact
   (reparameterized, BN folded, simplified, ORT plan) vs a plain `torch.onnx.export` of the same
   un-reparameterized model. Target: >= 1.25x.
2. INT8 vs FP32 on the cpu target, for the demo model (512x512, trained weights: mIoU against the
   real land-sea mask on calib/bluemarble_val) and MobileOne-S1 (224, random weights: top-1
   agreement only): speed ratio (target >= 1.5x), size ratio (~4x), accuracy drop (<= 0.5 points).
3. Wall time of the whole `edgekit build --precision int8` for the demo model (target < 3 min).

Latencies are medians of interleaved runs (A, B, A, B...) after warm-up, batch 1, one session
each, ONNX Runtime's default threads: the machines here are noisy, so only ratios from one run
are compared.

    python bench/build_cpu.py --out /tmp/edgekit_bench_build [--runs 20] [--skip 1,2,3]
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np


def interleaved(paths: list[Path], runs: int, warmup: int = 3) -> list[float]:
    """Median ms per model, runs interleaved so background load hits every model alike."""
    from edgekit.runtime.onnxrt import OnnxRuntimeRunner

    runners = [OnnxRuntimeRunner(p) for p in paths]
    for r in runners:
        r.activate()
    feeds = []
    for r in runners:
        spec = r.input_specs()[0]
        shape = [d if isinstance(d, int) else 1 for d in spec.shape]
        feeds.append({spec.name: np.random.default_rng(0).standard_normal(shape).astype(np.float32)})
    times = [[] for _ in runners]
    for i in range(warmup + runs):
        for k, (r, f) in enumerate(zip(runners, feeds)):
            t = time.perf_counter()
            r.infer(f)
            if i >= warmup:
                times[k].append(1000 * (time.perf_counter() - t))
    for r in runners:
        r.deactivate()
    return [statistics.median(t) for t in times]


def plain_export(recipe_name: str, size: int, path: Path) -> Path:
    import torch

    from edgekit.nets.factory import model_from_recipe
    from edgekit.recipes import load_recipe

    model = model_from_recipe(load_recipe(recipe_name), (size, size))
    torch.onnx.export(model, (torch.randn(1, 3, size, size),), str(path), input_names=["input"], output_names=["logits"])
    return path


def reparam_speedup(out: Path, runs: int) -> None:
    from edgekit.convert.pipeline import BuildConfig, build

    print("\n## 1. FastViT-SA12 + FPN, 1024x1024, FP32: edgekit artifact vs plain torch.onnx.export")
    art = build("fastvit_sa12_fpn", out / "sa12_1024_fp32", BuildConfig(input_size=(1024, 1024), latency_runs=0)).folder
    plain = plain_export("fastvit_sa12_fpn", 1024, out / "sa12_1024_plain.onnx")
    engine = art / "model.ort.onnx"
    t_edge, t_plain = interleaved([engine, plain], runs)
    print(f"plain export: {t_plain:.1f} ms   edgekit fp32: {t_edge:.1f} ms   speed-up {t_plain / t_edge:.2f}x (target >= 1.25x)")


def int8_vs_fp32(out: Path, runs: int, source: str, size: int | None, calib: str) -> None:
    from edgekit.convert.pipeline import BuildConfig, build
    from edgekit.profile.compare import compare_artifacts

    name = source.replace(":", "_")
    print(f"\n## 2. INT8 vs FP32 on the cpu target: {source}")
    common = dict(input_size=(size, size) if size else None, latency_runs=0)
    t0 = time.perf_counter()
    fp32 = build(source, out / f"{name}_fp32", BuildConfig(**common)).folder
    t1 = time.perf_counter()
    int8 = build(source, out / f"{name}_int8", BuildConfig(precision="int8", calib=Path(calib), **common)).folder
    t2 = time.perf_counter()
    t32, t8 = interleaved([fp32 / "model.ort.onnx", int8 / "model.ort.onnx"], runs)
    s32, s8 = (fp32 / "model.onnx").stat().st_size / 1e6, (int8 / "model.onnx").stat().st_size / 1e6
    print(f"latency fp32 {t32:.1f} ms, int8 {t8:.1f} ms: speed-up {t32 / t8:.2f}x (target >= 1.5x)")
    print(f"size fp32 {s32:.1f} MB, int8 {s8:.1f} MB: ratio {s32 / s8:.2f}x")
    print(f"build wall time: fp32 {t1 - t0:.0f} s, int8 {t2 - t1:.0f} s (target for the demo int8: < 180 s)")
    val = Path("calib/bluemarble_val")
    if source == "fastvit_sa12_fpn" and (val / "masks").is_dir():
        report = compare_artifacts([fp32, int8], val, val / "masks")
        for row in report.results:
            print(f"  {row.name}: mIoU vs ground truth {100 * row.miou:.2f}, vs fp32 {100 * row.miou_vs_reference:.2f}, "
                  f"pixel agreement {100 * row.agreement:.2f}%")
        drop = 100 * (report.results[0].miou - report.results[1].miou)
        print(f"mIoU drop int8 vs fp32 against the real mask: {drop:.2f} points (target <= 0.5)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("/tmp/edgekit_bench_build"))
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--skip", default="", help="comma-separated parts to skip: 1,2,3")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    skip = set(args.skip.split(","))
    if "1" not in skip:
        reparam_speedup(args.out, args.runs)
    if "2" not in skip:
        int8_vs_fp32(args.out, args.runs, "fastvit_sa12_fpn", None, "calib/bluemarble")
        int8_vs_fp32(args.out, args.runs, "timm:mobileone_s1", 224, "calib/bluemarble")


if __name__ == "__main__":
    main()
