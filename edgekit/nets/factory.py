"""Build a torch model from a recipe, loading its checkpoint when it has one."""
from __future__ import annotations

__all__ = ["model_from_recipe", "load_checkpoint"]

from pathlib import Path

import timm
from torch import nn

from edgekit.nets.detector import create_detector
from edgekit.nets.segmenter import create_segmenter
from edgekit.recipes import Recipe


def model_from_recipe(recipe: Recipe, input_size: tuple[int, int] | None = None, weights: bool = True) -> nn.Module:
    """The recipe's network in eval mode, with its trained weights when ``weights`` and it has some."""
    spec = dict(recipe.model)
    size = input_size or recipe.input_size
    if "timm" in spec:
        model = timm.create_model(spec.pop("timm"), pretrained=False, **spec)
    elif recipe.task == "detection":
        model = create_detector(
            backbone=spec["backbone"],
            num_classes=len(recipe.classes) or int(spec.get("num_classes", 1)),
            channels=int(spec.get("channels", 64)),
            out_indices=tuple(spec.get("out_indices", (2, 3, 4))),
            deploy=bool(spec.get("reparameterized", False)),
        )
    else:
        model = create_segmenter(
            backbone=spec["backbone"],
            head=spec.get("head", "fpn"),
            num_classes=len(recipe.classes) or int(spec.get("num_classes", 2)),
            channels=int(spec.get("channels", 64)),
            out_indices=spec.get("out_indices"),
            img_size=size[0] if spec.get("fixed_size") else None,
        )
    if weights and recipe.checkpoint is not None:
        load_checkpoint(model, recipe.checkpoint)
    return model.eval()


def load_checkpoint(model: nn.Module, path: Path) -> nn.Module:
    """Load a checkpoint into ``model`` (one path for every caller: :mod:`edgekit.nets.checkpoint`)."""
    from edgekit.nets.checkpoint import load_checkpoint as fit_and_load

    fit_and_load(model, path)
    return model
