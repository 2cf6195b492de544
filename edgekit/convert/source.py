"""What `edgekit build` starts from: a recipe, ``timm:<name>``, ``module:factory``, an ``.onnx``,
or a folder `edgekit compress` wrote (its compress.yaml)."""
from __future__ import annotations

__all__ = ["Source", "resolve_source"]

import difflib
import importlib
from dataclasses import dataclass
from pathlib import Path

from edgekit.errors import ConfigError, SourceError
from edgekit.manifest import sha256_file
from edgekit.recipes import RECIPE_DIR, Recipe, load_recipe


@dataclass(frozen=True)
class Source:
    """A resolved model source.

    Attributes:
        kind: ``recipe``, ``timm``, ``factory``, ``onnx`` or ``compressed``.
        name: what the user gave.
        recipe: for every kind but ``onnx``, the recipe describing the network (synthesised for
            timm names and factories).
        onnx_path: for ``onnx`` sources, the file.
        sha256: hash of the weights or ONNX file, when there is a file.
    """

    kind: str
    name: str
    recipe: Recipe
    onnx_path: Path | None = None
    checkpoint: Path | None = None
    sha256: str | None = None
    factory: str | None = None

    @property
    def trained(self) -> bool:
        """Whether the weights are meant to be right (an accuracy tolerance means something)."""
        return self.kind in ("onnx", "compressed") or self.checkpoint is not None or self.recipe.checkpoint is not None

    def to_dict(self) -> dict:
        data = {"kind": self.kind, "name": self.name, "sha256": self.sha256}
        if self.recipe.path:
            data["recipe"] = str(self.recipe.path)
        if self.checkpoint:
            data["checkpoint"] = str(self.checkpoint)
        return data

    def load_model(self):
        """The torch model (eval mode, weights loaded); not for ONNX sources."""
        from edgekit.nets.factory import load_checkpoint, model_from_recipe

        if self.kind == "onnx":
            raise SourceError("an ONNX source has no PyTorch model")
        import torch

        torch.manual_seed(0)  # random-weight recipes build the same network every time
        if self.kind == "compressed":
            from edgekit.compress.output import load_compressed

            return load_compressed(self.recipe.path)
        if self.kind == "factory":
            model = _import_factory(self.factory)()
        else:
            model = model_from_recipe(self.recipe, weights=self.checkpoint is None)
        if self.checkpoint is not None:
            load_checkpoint(model, self.checkpoint)
        return model.eval()


def _import_factory(spec: str):
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SourceError(f"cannot import module {module_name!r} for {spec}: {exc}") from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise SourceError(f"{module_name} has no callable {attr!r}")
    return factory


def _timm_recipe(name: str, size: tuple[int, int]) -> Recipe:
    import timm

    if name not in timm.list_models():
        close = difflib.get_close_matches(name, timm.list_models(), n=4, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else "; see timm.list_models()"
        raise SourceError(f"unknown timm model {name!r}{hint}")
    return Recipe(name=name, task="classification", model={"timm": name}, input_size=size)


def _with_size(recipe: Recipe, size: tuple[int, int] | None) -> Recipe:
    from dataclasses import replace

    size = size or recipe.input_size
    if size[0] % recipe.stride or size[1] % recipe.stride:
        raise ConfigError(
            f"input size {size[0]}x{size[1]} is not divisible by {recipe.name}'s stride {recipe.stride}; "
            f"use a multiple of {recipe.stride}"
        )
    return replace(recipe, input_size=tuple(size))


def resolve_source(
    source: str,
    input_size: tuple[int, int] | None = None,
    checkpoint: Path | None = None,
    task: str = "classification",
) -> Source:
    """Resolve what the user typed into a :class:`Source`, with clear errors for each kind."""
    ckpt = Path(checkpoint) if checkpoint else None
    if ckpt is not None and not ckpt.is_file():
        raise SourceError(f"checkpoint {ckpt} does not exist")
    digest = sha256_file(ckpt) if ckpt else None
    if source.endswith(".onnx"):
        path = Path(source)
        if not path.is_file():
            raise SourceError(f"ONNX file {path} does not exist")
        size = input_size or (0, 0)
        recipe = Recipe(name=path.stem, task=task, model={}, input_size=size, stride=1)
        return Source("onnx", source, recipe, onnx_path=path, sha256=sha256_file(path))
    if Path(source).is_dir():
        return _compressed_source(source, input_size)
    if source.startswith("timm:"):
        recipe = _with_size(_timm_recipe(source[5:], input_size or (224, 224)), input_size)
        return Source("timm", source, recipe, checkpoint=ckpt, sha256=digest)
    if ":" in source and not source.endswith((".yaml", ".yml")):
        if input_size is None:
            raise ConfigError(f"{source}: a factory source needs --input-size")
        _import_factory(source)
        recipe = Recipe(name=source.replace(":", "."), task=task, model={}, input_size=input_size, stride=1)
        return Source("factory", source, recipe, checkpoint=ckpt, sha256=digest, factory=source)
    recipe = _with_size(load_recipe(source, RECIPE_DIR), input_size)
    weights = ckpt or recipe.checkpoint
    if weights is not None and not Path(weights).is_file():
        raise SourceError(
            f"recipe {recipe.name} names weights {weights} that are not there; "
            "train them (scripts/train_demo.py) or pass --checkpoint"
        )
    return Source("recipe", source, recipe, checkpoint=ckpt,
                  sha256=sha256_file(weights) if weights else sha256_file(recipe.path))


def _compressed_source(source: str, input_size: tuple[int, int] | None) -> Source:
    from edgekit.compress.output import DESCRIPTION, is_compressed_output

    if not is_compressed_output(source):
        raise SourceError(f"{source} is a folder without {DESCRIPTION}; give a recipe, timm:<name>, module:factory, "
                          "an .onnx or an `edgekit compress` output")
    recipe = _with_size(load_recipe(Path(source) / DESCRIPTION), input_size)
    module = Path(source) / recipe.model["compressed"]
    return Source("compressed", source, recipe, sha256=sha256_file(module) if module.is_file() else None)
