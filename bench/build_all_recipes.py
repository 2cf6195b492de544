"""Build every recipe (`edgekit models`) at every precision for the cpu target, and the deployable ONNX for
a TensorRT target; print one status line per build (what `edgekit build` proved, and how long).

    python bench/build_all_recipes.py [--out /tmp/edgekit_all] [--trt-target jetson-orin-nx]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from edgekit.convert.pipeline import BuildConfig, build
from edgekit.convert.report import parity_text
from edgekit.errors import EdgekitError
from edgekit.recipes import list_recipes

CALIB = Path("calib/bluemarble")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=Path("/tmp/edgekit_all"))
    ap.add_argument("--trt-target", default="jetson-orin-nx")
    ap.add_argument("--precisions", default="fp32,fp16,int8")
    args = ap.parse_args()
    jobs = [(r, "cpu", p) for r in list_recipes() for p in args.precisions.split(",")]
    jobs += [(r, args.trt_target, p) for r in list_recipes() for p in ("fp16", "int8")]
    print(f"{'recipe':22} {'target':16} {'prec':5} {'status':10} {'s':>5}  precision check")
    for recipe, target, precision in jobs:
        config = BuildConfig(target=target, precision=precision, calib=CALIB if precision != "fp32" else None,
                             latency_runs=0)
        start = time.perf_counter()
        try:
            result = build(recipe.name, args.out / f"{recipe.name}_{target}_{precision}", config)
            status = "built" if result.complete else "onnx-ready"
            check = next((parity_text(s) for s in result.report.stages if s.stage.startswith("precision")), "-")
        except EdgekitError as exc:
            status, check = "refused", str(exc)
        print(f"{recipe.name:22} {target:16} {precision:5} {status:10} {time.perf_counter() - start:5.0f}  {check}",
              flush=True)


if __name__ == "__main__":
    main()
