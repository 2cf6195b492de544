"""The sweep table on this CPU: is ConvNeXt-Tiny + linear the fastest setup, against ViT-S/16
(DINOv3 layout) + linear and FastViT-SA12 + FPN, at 512 and 1024? FP32 and INT8 (ORT U8S8).

    python bench/sweep_cpu.py [--sizes 512,1024] [--precisions fp32,int8] [--out runs/sweep_cpu]
Writes <out>/sweep.md, sweep.json and sweep.png (latency vs accuracy/size, Pareto front).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from dataclasses import replace

from edgekit.sweep import SweepConfig, SweepReport, plot_sweep, sweep

RECIPES = ["fastvit_sa12_fpn", "convnext_tiny_linear", "vit_s16_linear"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", default="512,1024")
    ap.add_argument("--precisions", default="fp32,int8")
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--out", type=Path, default=Path("runs/sweep_cpu"))
    ap.add_argument("--skip", default="", help="recipe:size:precision,... to leave out, e.g. vit_s16_linear:1024:int8 "
                    "(its calibration at 1024 (4096 tokens) was OOM-killed in 24 GiB)")
    args = ap.parse_args()
    sizes = tuple((int(s), int(s)) for s in args.sizes.split(","))
    config = SweepConfig(target="cpu", precisions=tuple(args.precisions.split(",")), sizes=sizes,
                         calib=Path("calib/bluemarble"), val=Path("calib/bluemarble_val"), duration_s=args.duration)
    recipes = [r for r in RECIPES if _buildable(r)]
    skip = {tuple(item.split(":")) for item in args.skip.split(",") if item}
    rows = []
    for recipe in recipes:  # one sweep per (recipe, size) so that a skipped combination costs nothing
        for size in sizes:
            precisions = tuple(p for p in config.precisions if (Path(recipe).stem, str(size[0]), p) not in skip)
            if len(precisions) < len(config.precisions):
                print(f"skip {Path(recipe).stem} {size[0]} {set(config.precisions) - set(precisions)} (--skip)")
            if precisions:
                part = sweep([recipe], replace(config, sizes=(size,), precisions=precisions), progress=print)
                rows += part.rows
    report = SweepReport(part.target, part.device, tuple(rows))
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
