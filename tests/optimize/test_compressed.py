"""`optimize --compress`: compress within half the budget, then optimize with what is left."""
from __future__ import annotations

import pytest

pytest.importorskip("torch_pruning")

from edgekit.artifact.folder import load_artifact  # noqa: E402
from edgekit.optimize import Constraints, OptimizeConfig  # noqa: E402
from edgekit.optimize.compressed import CompressPlan, compress_then_optimize, compressed_folder  # noqa: E402


@pytest.mark.slow
def test_compress_then_optimize_shares_one_budget(tiny_recipe, tmp_path):
    from tests.conftest import image_sets

    train, val = image_sets(tmp_path)
    out = tmp_path / "best"
    config = OptimizeConfig(task="segmentation", calib=train, val=val, calib_methods=("max",), candidates=("int8",),
                            calib_samples=2, latency_runs=1, cache=None, search=False)
    compressed, result = compress_then_optimize(str(tiny_recipe), out, Constraints(max_drop=10.0), config,
                                                CompressPlan(1, None, speedup=None, steps=2, max_size_mb=0.9))
    assert compressed.out == compressed_folder(out) and (compressed.out / "compress.yaml").is_file()
    assert compressed.report.after["size_mb"] <= 0.9
    assert compressed.report.goal["max_drop"] == 5.0  # half of the budget
    manifest = load_artifact(out).manifest
    assert manifest.source["kind"] == "compressed"  # the artifact is built from the compressed network
    spent = max(compressed.report.accuracy["drop"], 0.0)
    assert result.report.constraints.max_drop == pytest.approx(10.0 - spent)  # optimize gets what compress left
    assert result.report.chosen.drop <= result.report.constraints.max_drop


def test_compress_needs_images(tmp_path):
    from edgekit.errors import ConfigError

    config = OptimizeConfig(task="segmentation", val=tmp_path)
    with pytest.raises(ConfigError, match="--images"):
        compress_then_optimize("x", tmp_path / "o", Constraints(), config, CompressPlan(1))
