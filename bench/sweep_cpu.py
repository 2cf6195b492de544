"""The sweep table on this CPU: is ConvNeXt-Tiny + linear the fastest setup, against ViT-S/16
(DINOv3 layout) + linear and FastViT-SA12 + FPN, at 512 and 1024? FP32 and INT8 (ORT U8S8).

    python bench/sweep_cpu.py [--sizes 512,1024] [--precisions fp32,int8] [--out runs/sweep_cpu]
Writes <out>/sweep.md, sweep.json and sweep.png (latency vs accuracy/size, Pareto front).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from edgekit.sweep import SweepConfig, plot_sweep, sweep

RECIPES = ["models/fastvit_sa12_fpn.yaml", "models/convnext_tiny_linear.yaml", "models/vit_s16_linear.yaml"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", default="512,1024")
    ap.add_argument("--precisions", default="fp32,int8")
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--out", type=Path, default=Path("runs/sweep_cpu"))
    args = ap.parse_args()
    sizes = tuple((int(s), int(s)) for s in args.sizes.split(","))
    config = SweepConfig(target="cpu", precisions=tuple(args.precisions.split(",")), sizes=sizes,
                         calib=Path("calib/bluemarble"), val=Path("calib/bluemarble_val"), duration_s=args.duration)
    recipes = [r for r in RECIPES if _buildable(r)]
    report = sweep(recipes, config, progress=print)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "sweep.md").write_text(report.to_markdown())
    report.write_json(args.out / "sweep.json")
    plot_sweep(report, args.out / "sweep.png")
    print(report.to_markdown())


def _buildable(recipe: str) -> bool:
    """Recipes whose named weights are missing are left out, with a note."""
    from edgekit.recipes import load_recipe

    r = load_recipe(recipe)
    if r.checkpoint is not None and not r.checkpoint.is_file():
        print(f"skip {r.name}: weights {r.checkpoint} not there yet (scripts/train_demo.py --recipe {r.name})")
        return False
    return True


if __name__ == "__main__":
    main()
