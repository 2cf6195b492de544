"""SVD factorization: exact at full rank, Eckart-Young error at low rank, guarded by MACs."""
import pytest
import torch
from torch import nn

from edgekit.compress.lowrank import LowRankSettings, factorize, factorize_layer, svd_rank
from edgekit.errors import ConfigError


@pytest.mark.parametrize("layer", [nn.Linear(48, 40), nn.Conv2d(40, 48, 1)])
def test_full_rank_is_exact(layer):
    torch.manual_seed(0)
    x = torch.randn(2, 7, 48) if isinstance(layer, nn.Linear) else torch.randn(2, 40, 5, 5)
    pair, energy = factorize_layer(layer, 40)
    assert energy == pytest.approx(1.0)
    assert torch.allclose(pair(x), layer(x), atol=1e-5)


def test_low_rank_error_is_the_discarded_singular_values():
    torch.manual_seed(0)
    layer = nn.Linear(64, 32, bias=False)
    s = torch.linalg.svdvals(layer.weight.detach().double())
    pair, _ = factorize_layer(layer, 8)
    product = (pair[1].weight @ pair[0].weight).double()
    residual = layer.weight.detach().double() - product
    assert torch.linalg.matrix_norm(residual, "fro").item() == pytest.approx(s[8:].pow(2).sum().sqrt().item(), rel=1e-5)
    assert torch.linalg.matrix_norm(residual, 2).item() == pytest.approx(s[8].item(), rel=1e-5)


def test_ranks_round_to_multiples_and_guard_skips_unprofitable_layers():
    assert svd_rank(64, 64, LowRankSettings(rank_ratio=0.3)) == 24  # 19.2 -> 24
    assert svd_rank(10, 10, LowRankSettings(rank_ratio=0.3)) == 8
    model = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 64), nn.Linear(64, 8))
    wide = factorize(model, LowRankSettings(rank_ratio=0.25, min_features=16), exclude={"3"})
    assert set(wide.report.layers) == {"0", "2"} and wide.report.layers["0"]["rank"] == 16
    assert wide.report.params_after < wide.report.params_before
    none = factorize(model, LowRankSettings(rank_ratio=0.9, min_features=16), exclude={"3"})
    assert none.report.layers == {} and none.report.skipped == 2
    x = torch.randn(3, 64)
    assert wide.model(x).shape == model(x).shape


def test_bad_rank_ratio_is_a_config_error():
    with pytest.raises(ConfigError):
        LowRankSettings(rank_ratio=0)


def test_a_split_timed_slower_is_kept_whole_and_reported():
    """Injected per-layer timings: layer "0"'s split is faster, layer "2"'s slower; shapes as the model feeds them."""
    model = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 64), nn.Linear(64, 8))
    seen = {}

    def timing(layer, pair, shape):
        seen[layer.in_features] = shape
        assert isinstance(pair, nn.Sequential) and len(pair) == 2
        return (1.0, 0.5) if layer.in_features == 64 else (1.0, 1.5)

    x = torch.randn(3, 64)
    result = factorize(model, LowRankSettings(rank_ratio=0.25, min_features=16), exclude={"3"}, sample=x, timing=timing)
    assert set(result.report.layers) == {"0"} and set(result.report.slower) == {"2"}
    assert result.report.layers["0"]["ms_split"] == 0.5 and result.report.slower["2"]["ms_split"] == 1.5
    assert seen == {64: (3, 64), 256: (3, 256)}  # each layer timed at the shape it sees
    assert isinstance(result.model[2], nn.Linear) and isinstance(result.model[0], nn.Sequential)


def test_real_layer_timing_returns_both_figures():
    from edgekit.compress.lowrank import time_layers

    layer = nn.Conv2d(64, 64, 1)
    pair, _ = factorize_layer(layer, 8)
    whole, split = time_layers(layer, pair, (1, 64, 16, 16), runs=3)
    assert whole > 0 and split > 0
