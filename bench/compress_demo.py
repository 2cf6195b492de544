"""Compress the demo model (FastViT-SA12 + FPN, trained on Blue Marble) at a level and report the figures.

Training images: calib/bluemarble (west of 45E, the training region); held-out: calib/bluemarble_val
(east of it, with the real land-sea masks). Latency is ONNX Runtime CPU on this machine, original and
candidates measured in the same run (see the report's candidates table); the machine may be shared.

    PYTHONPATH=. nice -n 10 python bench/compress_demo.py --level 1 --speedup 1.5 --max-drop 0.5 --steps 60
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--level", type=int, default=1)
    parser.add_argument("--speedup", type=float, default=1.5)
    parser.add_argument("--max-drop", type=float, default=0.5)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--train-samples", type=int, default=20)
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "bench_compress")
    args = parser.parse_args()

    from edgekit.compress.distill import DistillSettings
    from edgekit.compress.pipeline import CompressConfig, compress
    from edgekit.compress.search import Goal
    from edgekit.optimize.cache import default_cache_dir

    config = CompressConfig(images=ROOT / "calib" / "bluemarble", val=ROOT / "calib" / "bluemarble_val",
                            level=args.level, train_samples=args.train_samples, batch=2,
                            recovery=DistillSettings(steps=args.steps, eval_every=max(args.steps // 6, 1)),
                            cache=default_cache_dir())
    start = time.perf_counter()
    result = compress("fastvit_sa12_fpn", args.out / f"level{args.level}", Goal(args.max_drop, args.speedup), config,
                      progress=lambda m: print(f"[{time.perf_counter() - start:7.0f} s] {m}", flush=True))
    r = result.report
    summary = {"level": args.level, "plan": r.plan, "speedup": round(r.speedup, 3), "before_ms": r.before["latency_ms"],
               "after_ms": r.after["latency_ms"], "miou_before": r.accuracy["before"], "miou_after": r.accuracy["after"],
               "drop_points": r.accuracy["drop"], "seconds": r.seconds, "runtime": r.runtime}
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
