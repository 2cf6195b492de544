"""Model recipes: YAML files (shipped in edgekit/data/models, or on the user's search path, see
edgekit.datapath) read into frozen dataclasses. No torch here."""
from __future__ import annotations

__all__ = ["Recipe", "load_recipe", "list_recipes"]

import difflib
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from edgekit import datapath
from edgekit.errors import ConfigError, SourceError
from edgekit.preprocess import Preprocess

TASKS = ("segmentation", "classification", "detection")


@dataclass(frozen=True)
class Recipe:
    """What to build: a network description, its input, and optionally trained weights.

    Attributes:
        checkpoint: the weights the recipe names: the first of ``weights_searched`` that exists, else
            the first of them (beside the recipe); None for random weights.
        weights_searched: where the named weights were looked for: beside the recipe, then in every
            models folder of the search path.
        path / origin: the YAML file, and where it was found (``package``, ``EDGEKIT_PATH``...).
    """

    name: str
    task: str
    model: dict
    input_size: tuple[int, int]
    stride: int = 32
    preprocess: Preprocess = field(default_factory=Preprocess)
    classes: tuple[str, ...] = ()
    checkpoint: Path | None = None
    summary: str = ""
    path: Path | None = None
    origin: str = ""
    weights_searched: tuple[Path, ...] = ()

    @property
    def trained(self) -> bool:
        return self.checkpoint is not None

    @property
    def has_weights(self) -> bool:
        """Whether the named weights were found (random-weight recipes have none to find)."""
        return self.checkpoint is not None and self.checkpoint.is_file()

    @property
    def training_script(self) -> str:
        """The script in the repository that trains this recipe's weights."""
        return "scripts/train_detector.py" if self.task == "detection" else "scripts/train_demo.py"

    def require_weights(self) -> Path | None:
        """The weights file, or None for a random-weight recipe; a one-line error when it is missing."""
        if self.checkpoint is None or self.checkpoint.is_file():
            return self.checkpoint
        where = ", ".join(str(p.parent) for p in self.weights_searched) or str(self.checkpoint.parent)
        raise SourceError(f"recipe {self.name} names weights {self.checkpoint.name}, not found in {where}; "
                          f"train them ({self.training_script}) or pass --checkpoint")


def _weights(path: Path, ckpt: str, extra: Path | str | None) -> tuple[Path | None, tuple[Path, ...]]:
    if Path(ckpt).is_absolute():
        return Path(ckpt), (Path(ckpt),)
    candidates = [(path.parent / ckpt).resolve()]
    for place in datapath.places("models", extra):
        candidate = (place.folder / ckpt).resolve()
        if candidate not in candidates:
            candidates.append(candidate)
    return next((c for c in candidates if c.is_file()), candidates[0]), tuple(candidates)


def _read(path: Path, origin: str = "file", extra: Path | str | None = None) -> Recipe:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read recipe {path}: {exc}") from None
    if not isinstance(data, dict) or "model" not in data or "input" not in data:
        raise ConfigError(f"recipe {path} needs 'model' and 'input' sections")
    task = data.get("task", "segmentation")
    if task not in TASKS:
        raise ConfigError(f"recipe {path}: task {task!r} is not one of {', '.join(TASKS)}")
    inp = data["input"]
    size = inp.get("size", [224, 224])
    checkpoint, searched = _weights(path, str(data["checkpoint"]), extra) if data.get("checkpoint") else (None, ())
    return Recipe(
        name=str(data.get("name", path.stem)),
        task=task,
        model=dict(data["model"]),
        input_size=(int(size[0]), int(size[1])),
        stride=int(inp.get("stride", 32)),
        preprocess=Preprocess.from_dict(inp, origin=f"recipe {path.name}"),
        classes=tuple(data.get("classes", ())),
        checkpoint=checkpoint,
        summary=str(data.get("summary", "")),
        path=path.resolve(),
        origin=origin,
        weights_searched=searched,
    )


def list_recipes(folder: Path | str | None = None) -> list[Recipe]:
    """Every recipe on the search path (``folder`` first, then EDGEKIT_PATH, then the package's), by name."""
    return [_read(path, origin, folder) for _name, path, origin in datapath.entries("models", folder)]


def load_recipe(name_or_path: str | Path, folder: Path | str | None = None) -> Recipe:
    """A recipe by file path or by name (``fastvit_sa12_fpn``); ``folder`` is searched before the others."""
    path = Path(name_or_path)
    if path.suffix in datapath.SUFFIXES:
        if not path.is_file():
            raise ConfigError(f"recipe file {path} does not exist")
        return _read(path, "file", folder)
    found = datapath.find("models", str(name_or_path), folder)
    if found is not None:
        return _read(*found, folder)
    names = [name for name, _path, _origin in datapath.entries("models", folder)]
    close = difflib.get_close_matches(str(name_or_path), names, n=3)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise ConfigError(f"unknown recipe {name_or_path!r}; {hint}known: {', '.join(names) or '(none)'} "
                      f"(looked in {datapath.looked_in('models', folder)}; add yours with --recipes-dir or {datapath.ENV})")
