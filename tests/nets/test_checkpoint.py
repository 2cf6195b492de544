"""Checkpoints the way training code saves them: containers unwrapped, prefixes stripped, pickles refused."""
from __future__ import annotations

import pytest
import torch

from edgekit.nets.checkpoint import fit_state_dict, load_checkpoint
from edgekit.errors import SourceError
from tests.convert.factories import tiny


@pytest.fixture
def trained():
    torch.manual_seed(1)
    return tiny()


def _same(a, b) -> bool:
    return all(torch.equal(a.state_dict()[k], v) for k, v in b.state_dict().items())


@pytest.mark.parametrize("wrap, container, prefix", [
    (lambda sd: sd, (), ""),
    (lambda sd: {"model": {f"model.{k}": v for k, v in sd.items()}, "epoch": 3}, ("model",), "model."),
    (lambda sd: {"state_dict": {f"module.{k}": v for k, v in sd.items()}}, ("state_dict",), "module."),
    (lambda sd: {"ema": {"module": {f"_orig_mod.{k}": v for k, v in sd.items()}}}, ("ema", "module"), "_orig_mod."),
    (lambda sd: {**{f"module.{k}": v for k, v in sd.items()}, "n_averaged": torch.tensor(4)}, (), "module."),
])
def test_containers_and_prefixes_are_unwrapped_only_to_an_exact_fit(tmp_path, trained, wrap, container, prefix):
    torch.save(wrap(trained.state_dict()), tmp_path / "ckpt.pt")
    fresh = tiny()
    assert not _same(fresh, trained)
    fit = load_checkpoint(fresh, tmp_path / "ckpt.pt")
    assert _same(fresh, trained)
    assert fit.container == container and fit.prefix == prefix
    assert fit.tensors == len(trained.state_dict())


def test_a_checkpoint_of_another_model_is_refused_with_the_closest_miss(tmp_path, trained):
    state = {f"model.{k}": v for k, v in tiny(classes=5).state_dict().items()}
    with pytest.raises(SourceError, match="wrong shape"):
        fit_state_dict({"model": state}, trained.state_dict(), tmp_path / "other.pt")


def test_a_pickled_module_is_one_line_unless_trusted(tmp_path, trained):
    torch.save(trained, tmp_path / "whole.pt")
    with pytest.raises(SourceError, match="--trust-checkpoint") as err:
        load_checkpoint(tiny(), tmp_path / "whole.pt")
    assert "\n" not in str(err.value)
    fresh = tiny()
    load_checkpoint(fresh, tmp_path / "whole.pt", trust=True)
    assert _same(fresh, trained)
