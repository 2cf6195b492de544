import copy

import pytest
import torch
from torch import nn

from edgekit.convert.reparam import fold_batchnorm, reparameterize
from edgekit.errors import ParityError


def _randomize_bn(model: nn.Module) -> nn.Module:
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(m.num_features, generator=g) - 0.5)
    return model.eval()


@pytest.mark.parametrize("name", ["mobileone_s0", "fastvit_t8", "repvgg_a0"])
def test_multibranch_models_keep_their_outputs(name):
    import timm

    model = _randomize_bn(timm.create_model(name, pretrained=False, num_classes=10))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        before = model(x)
    out = reparameterize(model, x)
    r = out.report
    assert r.blocks_reparameterized > 0
    assert r.modules_after < r.modules_before
    assert r.batchnorms_after < r.batchnorms_before
    assert r.error.max_rel < 1e-4
    with torch.no_grad():  # the original model is left untouched, and the deploy form agrees on other inputs
        assert torch.equal(model(x), before)
        y = torch.randn(1, 3, 64, 64)
        assert torch.allclose(model(y), out.model(y), rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("name", ["fastvit_t8", "mobileone_s0"])
def test_a_deploy_form_model_reparameterizes_again_unchanged(name):
    """A compressed or saved-reparameterized model is built again: its deployed blocks are left alone
    (timm's own walk fails on a deployed FastViT RepMixer: it has no ``mixer`` left)."""
    import timm

    x = torch.randn(1, 3, 64, 64)
    once = reparameterize(_randomize_bn(timm.create_model(name, pretrained=False, num_classes=10)), x).model
    twice = reparameterize(once, x)
    assert twice.report.params_after == twice.report.params_before
    with torch.no_grad():
        assert torch.equal(twice.model(x), once(x))


def test_conv_bn_fold_in_sequential_is_exact_and_removes_bn():
    model = _randomize_bn(nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                        nn.Conv2d(8, 4, 1, bias=False), nn.BatchNorm2d(4)))
    x = torch.randn(2, 3, 16, 16)
    ref = model(x)
    folded = copy.deepcopy(model)
    assert fold_batchnorm(folded) == 2
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert torch.allclose(folded(x), ref, atol=1e-5)


def test_bn_before_conv_is_not_folded():
    model = _randomize_bn(nn.Sequential(nn.BatchNorm2d(3), nn.Conv2d(3, 4, 3)))
    assert fold_batchnorm(copy.deepcopy(model)) == 0


def test_parity_failure_is_reported():
    from tests.cli.factories import Drifting  # its 'reparameterize' doubles its weights: must be caught

    with pytest.raises(ParityError, match="changed the outputs"):
        reparameterize(nn.Sequential(Drifting()), torch.randn(1, 3, 8, 8))
