import pytest
import torch

from edgekit.errors import SourceError
from edgekit.nets.factory import load_checkpoint, model_from_recipe
from edgekit.nets.segmenter import create_segmenter
from edgekit.recipes import list_recipes, load_recipe


@pytest.mark.parametrize("head", ["fpn", "linear"])
def test_segmenter_returns_logits_at_input_resolution(head):
    model = create_segmenter("test_convnext", head, num_classes=5, channels=8).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 64, 96)).shape == (2, 5, 64, 96)


def test_every_shipped_recipe_builds_its_network():
    recipes = list_recipes()
    assert {r.name for r in recipes} >= {"fastvit_sa12_fpn", "convnext_tiny_linear", "vit_s16_linear", "mobileone_s1"}
    for recipe in recipes:
        model = model_from_recipe(recipe, weights=False)
        assert sum(p.numel() for p in model.parameters()) > 1e6, recipe.name


def test_checkpoint_round_trip_and_mismatch(tmp_path, tiny_recipe):
    from safetensors.torch import save_file

    recipe = load_recipe(tiny_recipe)
    model = model_from_recipe(recipe)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    save_file(state, str(tmp_path / "w.safetensors"))
    other = model_from_recipe(recipe)
    load_checkpoint(other, tmp_path / "w.safetensors")
    assert all(torch.equal(other.state_dict()[k], v) for k, v in state.items())
    state.pop(next(iter(state)))
    state["extra.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(SourceError, match="1 missing .*1 unexpected"):
        load_checkpoint(other, tmp_path / "bad.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(SourceError, match="cannot read checkpoint"):
        load_checkpoint(other, tmp_path / "junk.pt")
