"""What `edgekit build` starts from, the way users have their models.

Kinds:
    ``recipe``       a recipe name or YAML file (edgekit's own networks, or a timm one);
    ``timm``         ``timm:<name>``, timm's architecture with random weights;
    ``factory``      ``package.module:factory`` called with ``--factory-arg name=value`` arguments;
    ``torchscript``  a TorchScript archive (``torch.jit.save``);
    ``exported``     a ``torch.export`` program (``.pt2``);
    ``pickled``      a whole module saved with ``torch.save(model)``, only with ``trust_checkpoint``;
    ``onnx``         an ONNX file; the PyTorch stages are skipped;
    ``compressed``   a folder `edgekit compress` wrote (its compress.yaml and checksummed model).
TorchScript, exported and pickled programs are run and exported as they are: the PyTorch
transforms that need an ``nn.Module`` built by edgekit (reparameterization) are skipped, and the
report says so. Building or loading a model runs with the network blocked (:mod:`edgekit.convert.offline`).
"""
from __future__ import annotations

__all__ = ["Source", "resolve_source", "parse_factory_args", "PROGRAM_KINDS"]

import ast
import difflib
import importlib
from dataclasses import dataclass
from pathlib import Path

from edgekit.errors import ConfigError, SourceError
from edgekit.cache import sha256_file
from edgekit.convert.contract import ModelContract, contract_from_onnx, contract_from_timm
from edgekit.preprocess import InputOptions
from edgekit.recipes import Recipe, load_recipe

# sources that are programs already: run and exported as they are, never reparameterized
PROGRAM_KINDS = ("torchscript", "exported", "pickled")
PROGRAM_SUFFIXES = (".pt", ".pth", ".ts", ".jit", ".pt2")


@dataclass(frozen=True)
class Source:
    """A resolved model source.

    Attributes:
        kind: ``recipe``, ``timm``, ``factory``, ``torchscript``, ``exported``, ``pickled``, ``onnx`` or ``compressed``.
        name: what the user gave.
        recipe: for every kind but ``onnx``, the recipe describing the network (synthesised for
            timm names and factories).
        onnx_path: for ``onnx`` sources, the file.
        sha256: hash of the weights or ONNX file, when there is a file.
        contract: what the model says about itself (:mod:`edgekit.convert.contract`); the recipe's
            ``preprocess`` is decided from it, the recipe and the options (``resolve_source``).
    """

    kind: str
    name: str
    recipe: Recipe
    onnx_path: Path | None = None
    checkpoint: Path | None = None
    sha256: str | None = None
    factory: str | None = None
    factory_args: tuple[tuple[str, object], ...] = ()
    trust_checkpoint: bool = False
    contract: ModelContract | None = None

    @property
    def trained(self) -> bool:
        """Whether the weights are meant to be right (an accuracy tolerance means something)."""
        return (self.kind in ("onnx", "compressed") or self.kind in PROGRAM_KINDS or self.checkpoint is not None
                or self.recipe.checkpoint is not None)

    @property
    def transformable(self) -> bool:
        """Whether the PyTorch transforms (reparameterization) apply: an ``nn.Module`` edgekit built."""
        return self.kind not in PROGRAM_KINDS and self.kind != "onnx"

    def to_dict(self) -> dict:
        data = {"kind": self.kind, "name": self.name, "sha256": self.sha256}
        if self.recipe.path:
            data["recipe"] = str(self.recipe.path)
        if self.checkpoint:
            data["checkpoint"] = str(self.checkpoint)
        if self.factory_args:
            data["factory_args"] = {k: repr(v) for k, v in self.factory_args}
        return data

    def load_model(self):
        """The torch model in eval mode, weights loaded (see :meth:`load`)."""
        return self.load()[0]

    def load(self):
        """The torch model in eval mode with its weights, and how the checkpoint was fitted (or None).

        The model is an ``nn.Module`` (a ``ScriptModule`` for TorchScript, the program's module for
        ``.pt2``); not for ONNX sources. Runs with the network blocked.
        """
        from edgekit.convert.offline import offline

        if self.kind == "onnx":
            raise SourceError("an ONNX source has no PyTorch model")
        import torch

        torch.manual_seed(0)  # random-weight recipes build the same network every time
        if self.kind == "compressed":
            from edgekit.artifact.compressed import load_compressed

            return load_compressed(self.recipe.path).eval(), None
        factory = _import_factory(self.factory) if self.kind == "factory" else None
        fit = None
        with offline(self.name, factory):
            model = self._build(factory)
            if self.checkpoint is not None:
                from edgekit.nets.checkpoint import load_checkpoint

                fit = load_checkpoint(model, self.checkpoint, self.trust_checkpoint)
        return model.eval(), fit

    def _build(self, factory):
        from edgekit.nets.factory import model_from_recipe

        if self.kind == "factory":
            return factory(**dict(self.factory_args))
        if self.kind in PROGRAM_KINDS:
            return _load_program(self.kind, Path(self.name))
        return model_from_recipe(self.recipe, weights=self.checkpoint is None)


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


def parse_factory_args(pairs) -> tuple[tuple[str, object], ...]:
    """``("weights=None", "num_classes=4")`` -> ``(("weights", None), ("num_classes", 4))``.

    Values are read as Python literals (None, True, 4, 0.5, "x", [1, 2]); anything else is a string.
    """
    parsed = []
    for pair in pairs or ():
        name, sep, text = str(pair).partition("=")
        if not sep or not name.strip().isidentifier():
            raise ConfigError(f"--factory-arg {pair!r}: write NAME=VALUE, e.g. weights=None or num_classes=4")
        try:
            value = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError):
            value = text.strip()
        parsed.append((name.strip(), value))
    return tuple(parsed)


def _program_kind(path: Path, trust: bool) -> str:
    """``torchscript``, ``exported`` or ``pickled`` for a saved program file."""
    import zipfile

    if path.suffix == ".pt2":
        return "exported"
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
        if any("/code/" in n for n in names) or any(n.endswith("constants.pkl") for n in names):
            return "torchscript"
    if not trust:
        raise SourceError(
            f"{path.name} is not a TorchScript archive; if it is a whole module saved with torch.save(model), "
            "loading it runs code: pass --trust-checkpoint if you trust the file, or build from "
            "module:factory with --checkpoint state_dict.pt")
    return "pickled"


def _load_program(kind: str, path: Path):
    import torch

    try:
        if kind == "torchscript":
            return torch.jit.load(str(path), map_location="cpu")
        if kind == "exported":
            return _ExportedModule(torch.export.load(str(path)).module())
        model = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        lines = str(exc).strip().splitlines()
        raise SourceError(f"cannot load {path.name} as a {kind} program: {lines[0][:300] if lines else type(exc).__name__}") from None
    if not isinstance(model, torch.nn.Module):
        raise SourceError(f"{path.name} holds a {type(model).__name__}, not a module: give a module:factory and "
                          "pass this file as --checkpoint")
    return model


def _ExportedModule(graph_module):
    """A ``torch.export`` program's module behind an ``nn.Module`` whose ``eval()`` works (the program's
    own refuses train/eval switches: it is already traced in the mode it was exported in)."""
    import torch

    class ExportedModule(torch.nn.Module):
        def __init__(self):
            super().__init__()
            object.__setattr__(self, "program", graph_module)  # not a submodule: eval() must not reach it

        def forward(self, x):
            return self.program(x)

    return ExportedModule()


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


def _with_input(src: Source, contract, inputs: InputOptions | None, imagenet: bool, weights: Path | None = None) -> Source:
    """The source with its contract and the normalisation it is fed
    (:func:`~edgekit.convert.contract.input_preprocess`); a ``.safetensors`` checkpoint's metadata
    is read over what its architecture says."""
    from dataclasses import replace

    from edgekit.convert.contract import contract_from_safetensors, input_preprocess

    weights = weights or src.checkpoint
    if weights is not None and weights.suffix == ".safetensors":
        contract = contract.merged(contract_from_safetensors(weights))
    declared = src.recipe.preprocess if src.kind in ("recipe", "compressed") else None
    pre = input_preprocess(src.name, contract, declared, inputs or InputOptions(), imagenet)
    recipe = replace(src.recipe, preprocess=pre, classes=src.recipe.classes or contract.classes)
    return replace(src, recipe=recipe, contract=contract)


def _recipe_contract(recipe: Recipe):
    """What a recipe's timm network (``timm:`` or ``backbone:``) says of its normalisation; the
    channel count and size are the recipe's own."""
    from dataclasses import replace

    name = recipe.model.get("timm") or recipe.model.get("backbone")
    if not name or recipe.model.get("compressed"):
        return ModelContract(recipe.name), False
    said = contract_from_timm(str(name))
    keep = ("mean", "std", "channel_order", "interpolation")
    return replace(said, channels=None, input_size=None, sources=tuple((k, v) for k, v in said.sources if k in keep),
                   name=recipe.name), True


def _factory_contract(spec: str, args: tuple[tuple[str, object], ...]):
    """A torchvision factory given ``weights=...`` reads its weights enum; other factories say nothing."""
    from edgekit.convert.contract import contract_from_torchvision

    weights = dict(args).get("weights")
    torchvision = spec.startswith("torchvision.")
    if torchvision and weights is not None:
        return contract_from_torchvision(spec, weights), True
    return ModelContract(spec), torchvision


def resolve_source(
    source: str,
    input_size: tuple[int, int] | None = None,
    checkpoint: Path | None = None,
    task: str | None = None,
    factory_args=(),
    trust_checkpoint: bool = False,
    recipes_dir: Path | None = None,
    *,
    inputs: InputOptions | None = None,
) -> Source:
    """Resolve what the user typed into a :class:`Source`, with clear errors for each kind.

    Args:
        factory_args: ``NAME=VALUE`` strings (or parsed pairs) for a ``module:factory`` source.
        trust_checkpoint: allow checkpoints and sources holding pickled Python objects.
        recipes_dir: a folder of recipes searched before EDGEKIT_PATH and the package's own.
        task: ``--task``, set on a recipe the source makes (None: decided once the outputs are
            known, :mod:`edgekit.convert.task`); a recipe keeps its own.
        inputs: the input declared on the command line (``--mean --std --channel-order --scale
            --bands``); it wins over the recipe and what the model says, with a warning where they differ.
    """
    ckpt = Path(checkpoint) if checkpoint else None
    args = parse_factory_args(factory_args) if factory_args and isinstance(next(iter(factory_args)), str) else tuple(factory_args or ())
    if ckpt is not None and not ckpt.is_file():
        raise SourceError(f"checkpoint {ckpt} does not exist")
    digest = sha256_file(ckpt) if ckpt else None
    if source.endswith(".onnx"):
        path = Path(source)
        if not path.is_file():
            raise SourceError(f"ONNX file {path} does not exist")
        contract = contract_from_onnx(path)
        size = input_size or contract.input_size or (0, 0)
        recipe = Recipe(name=path.stem, task=task, model={}, input_size=size, stride=contract.stride or 1)
        return _with_input(Source("onnx", source, recipe, onnx_path=path, sha256=sha256_file(path)), contract,
                           inputs, imagenet=False)
    if Path(source).is_dir():
        src = _compressed_source(source, input_size)
        return _with_input(src, ModelContract(src.name), inputs, imagenet=False)
    if source.endswith(PROGRAM_SUFFIXES) and ":" not in source:
        path = Path(source)
        if not path.is_file():
            raise SourceError(f"model file {path} does not exist")
        kind = _program_kind(path, trust_checkpoint)
        if input_size is None:
            raise ConfigError(f"{source}: a {kind} source needs --input-size")
        recipe = Recipe(name=path.stem, task=task, model={}, input_size=tuple(input_size), stride=1)
        src = Source(kind, source, recipe, checkpoint=ckpt, sha256=sha256_file(path), trust_checkpoint=trust_checkpoint)
        return _with_input(src, ModelContract(path.name), inputs, imagenet=False)
    if args and not (":" in source and not source.startswith("timm:")):
        raise ConfigError("--factory-arg applies to module:factory sources only")
    if source.startswith("timm:"):
        name = source[5:]
        recipe = _timm_recipe(name, (224, 224))
        contract = contract_from_timm(name)
        said = contract.input_size
        fits = said is not None and not (said[0] % recipe.stride or said[1] % recipe.stride)
        recipe = _with_size(recipe, input_size or (said if fits else None))  # timm's size where it fits the stride
        src = Source("timm", source, recipe, checkpoint=ckpt, sha256=digest, trust_checkpoint=trust_checkpoint)
        return _with_input(src, contract, inputs, imagenet=True)
    if ":" in source and not source.endswith((".yaml", ".yml")):
        if input_size is None:
            raise ConfigError(f"{source}: a factory source needs --input-size")
        _import_factory(source)
        contract, imagenet = _factory_contract(source, args)
        recipe = Recipe(name=source.replace(":", "."), task=task, model={}, input_size=input_size, stride=1)
        src = Source("factory", source, recipe, checkpoint=ckpt, sha256=digest, factory=source, factory_args=args,
                     trust_checkpoint=trust_checkpoint)
        return _with_input(src, contract, inputs, imagenet)
    recipe = _with_size(load_recipe(source, recipes_dir), input_size)
    weights = ckpt or recipe.require_weights()
    src = Source("recipe", source, recipe, checkpoint=ckpt, trust_checkpoint=trust_checkpoint,
                 sha256=sha256_file(weights) if weights else sha256_file(recipe.path))
    contract, imagenet = _recipe_contract(recipe)
    return _with_input(src, contract, inputs, imagenet, weights)


def _compressed_source(source: str, input_size: tuple[int, int] | None) -> Source:
    from edgekit.artifact.compressed import DESCRIPTION, is_compressed_output

    if not is_compressed_output(source):
        raise SourceError(f"{source} is a folder without {DESCRIPTION}; give a recipe, timm:<name>, module:factory, "
                          "an .onnx or an `edgekit compress` output")
    recipe = _with_size(load_recipe(Path(source) / DESCRIPTION), input_size)
    module = Path(source) / recipe.model["compressed"]
    return Source("compressed", source, recipe, sha256=sha256_file(module) if module.is_file() else None)
