"""Build a torch model from a recipe, loading its checkpoint when it has one."""
from __future__ import annotations

__all__ = ["model_from_recipe", "load_checkpoint"]

from pathlib import Path

import timm
import torch
from torch import nn

from edgekit.errors import SourceError
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
    """Load a state_dict from .pt/.pth/.safetensors; every key must match, in name and shape."""
    path = Path(path)
    if not path.is_file():
        raise SourceError(f"checkpoint {path} does not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt or foreign file: a user error, named
        raise SourceError(f"cannot read checkpoint {path}: {exc}") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    if missing or unexpected or shapes:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes)):
            if keys:
                parts.append(f"{len(keys)} {label} (e.g. {', '.join(keys[:3])})")
        raise SourceError(f"checkpoint {path.name} does not fit the model: {'; '.join(parts)}")
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()})
    return model
