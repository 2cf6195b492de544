"""Repeatability of `edgekit profile`: two runs of the same artifact, side by side.

    python bench/profile_repeatability.py out/sa12 [--duration 10] [--batch 1]

Prints both runs' p50 / p90 / p99 / mean and the p50 spread (|a - b| / mean of a and b);
exits 1 when the spread is 10 % or more. Without an artifact it makes a tiny one (64x64
segmenter) so the script can be tried anywhere.
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
from pathlib import Path

from edgekit.profile import ProfileConfig, TimingConfig, profile_artifact


def _tiny_artifact(folder: Path) -> Path:
    spec = importlib.util.spec_from_file_location("edgekit_tests_root_conftest", Path(__file__).resolve().parents[1] / "tests" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.make_cpu_artifact(folder, size=256)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifact", nargs="?", type=Path)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--batch", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.artifact or _tiny_artifact(Path(tmp) / "tiny")
        config = ProfileConfig((args.batch,) if args.batch else (), TimingConfig(args.warmup, args.duration),
                               threads=args.threads, power=False)
        runs = [profile_artifact(folder, config).batches[0] for _ in range(2)]
    print(f"artifact {folder}, batch {runs[0].batch}, {args.duration:g} s per run after {args.warmup:g} s warm-up")
    print(f"{'run':>4} {'count':>7} {'p50 ms':>9} {'p90 ms':>9} {'p99 ms':>9} {'mean ms':>9}")
    for i, b in enumerate(runs, 1):
        e = b.end_to_end
        print(f"{i:>4} {e.count:>7} {e.p50:>9.3f} {e.p90:>9.3f} {e.p99:>9.3f} {e.mean:>9.3f}")
    a, b = runs[0].end_to_end, runs[1].end_to_end
    spread = abs(a.p50 - b.p50) / ((a.p50 + b.p50) / 2)
    mean_spread = abs(a.mean - b.mean) / ((a.mean + b.mean) / 2)
    print(f"p50 spread {100 * spread:.1f}% (mean spread {100 * mean_spread:.1f}%): "
          f"{'within' if spread < 0.10 else 'NOT within'} 10%")
    return 0 if spread < 0.10 else 1


if __name__ == "__main__":
    sys.exit(main())
