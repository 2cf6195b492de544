"""Weights the way training code saved them, fitted to a model: containers unwrapped, prefixes stripped.

Training frameworks wrap a state_dict in a container (``{"state_dict": ...}`` from Lightning,
``{"model": ...}`` / ``{"ema": ...}`` from detection and timm trainers, ``{"module": ...}`` from
DeepSpeed) and prefix its keys (``module.`` from DataParallel, ``_orig_mod.`` from torch.compile,
``model.`` from Lightning). :func:`fit_state_dict` tries each container and each prefix and takes
an unwrapping only when it makes the keys and shapes fit the model *exactly*; what it did is
returned as a :class:`CheckpointFit` for the build report.

Files are read with ``torch.load(weights_only=True)``: a pickled Python object (``torch.save(model)``)
can run code when loaded, so it is refused in one line unless the user passes ``trust=True``
(``--trust-checkpoint``).
"""
from __future__ import annotations

__all__ = ["CheckpointFit", "read_checkpoint", "fit_state_dict", "load_checkpoint", "CONTAINER_KEYS"]

import pickle
from dataclasses import dataclass
from pathlib import Path

from edgekit.errors import SourceError

# tried in this order; the first that fits exactly wins
CONTAINER_KEYS = ("state_dict", "model_state_dict", "model", "module", "net", "network", "params", "weights",
                  "state_dict_ema", "model_ema", "ema", "ema_state_dict")
# keys some wrappers add beside the weights (torch.optim.swa_utils.AveragedModel)
BOOKKEEPING_KEYS = ("n_averaged",)
MAX_DEPTH = 3


@dataclass(frozen=True)
class CheckpointFit:
    """How a checkpoint was fitted to the model.

    Attributes:
        path: the checkpoint file.
        container: the keys followed into the file's nesting (``("model",)``), empty for a bare state_dict.
        prefix: the key prefix stripped (``"module."``), empty when none.
        tensors: tensors loaded.
        dropped: bookkeeping keys left out (``n_averaged``).
    """

    path: Path
    container: tuple[str, ...] = ()
    prefix: str = ""
    tensors: int = 0
    dropped: tuple[str, ...] = ()

    @property
    def unwrapped(self) -> bool:
        return bool(self.container or self.prefix or self.dropped)

    def describe(self) -> str:
        parts = []
        if self.container:
            parts.append("container " + "/".join(repr(k) for k in self.container))
        if self.prefix:
            parts.append(f"prefix {self.prefix!r} stripped")
        if self.dropped:
            parts.append(f"dropped {', '.join(self.dropped)}")
        return f"{self.tensors} tensors" + (f" ({'; '.join(parts)})" if parts else "")

    def to_dict(self) -> dict:
        return {"path": str(self.path), "container": list(self.container), "prefix": self.prefix,
                "tensors": self.tensors, "dropped": list(self.dropped)}


def read_checkpoint(path: Path, trust: bool = False):
    """The object saved in ``path`` (.safetensors, or a torch file read without running code).

    Raises:
        SourceError: missing or unreadable file; a pickled object without ``trust``.
    """
    path = Path(path)
    if not path.is_file():
        raise SourceError(f"checkpoint {path} does not exist")
    import torch

    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        return torch.load(path, map_location="cpu", weights_only=not trust)
    except (pickle.UnpicklingError, RuntimeError, AttributeError, ModuleNotFoundError) as exc:
        if not trust and _is_weights_only_refusal(exc):
            raise SourceError(
                f"checkpoint {path.name} holds pickled Python objects (e.g. a whole module saved with "
                "torch.save(model)), which run code when loaded: save model.state_dict() instead, or pass "
                "--trust-checkpoint if you trust this file") from None
        raise SourceError(f"cannot read checkpoint {path}: {_first_line(exc)}") from None
    except Exception as exc:  # corrupt or foreign file: a user error, named
        raise SourceError(f"cannot read checkpoint {path}: {_first_line(exc)}") from None


def _is_weights_only_refusal(exc: BaseException) -> bool:
    text = str(exc)
    return "Unsupported global" in text  # torch's weights_only unpickler met a class: a pickled object


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:300] if lines else type(exc).__name__


def _is_state_dict(obj) -> bool:
    import torch

    return isinstance(obj, dict) and bool(obj) and all(
        isinstance(k, str) for k in obj) and sum(isinstance(v, torch.Tensor) for v in obj.values()) >= max(1, len(obj) // 2)


def _candidates(obj, trail: tuple[str, ...] = (), depth: int = 0):
    """(trail, state_dict) for the object itself and every container inside it, by priority."""
    import torch

    if isinstance(obj, torch.nn.Module):
        yield trail, obj.state_dict()
        return
    if _is_state_dict(obj):
        yield trail, obj
    if not isinstance(obj, dict) or depth >= MAX_DEPTH:
        return
    keys = [k for k in CONTAINER_KEYS if k in obj] + sorted(k for k in obj if isinstance(k, str) and k not in CONTAINER_KEYS)
    for key in keys:
        if isinstance(obj[key], (dict, torch.nn.Module)):
            yield from _candidates(obj[key], (*trail, key), depth + 1)


def _prefixes(keys: list[str]) -> list[str]:
    """Prefixes ending in '.' that every key (but bookkeeping ones) starts with, shortest first."""
    keys = [k for k in keys if k not in BOOKKEEPING_KEYS]
    if not keys:
        return [""]
    found, first = [""], keys[0]
    for i, ch in enumerate(first):
        if ch == "." and all(k.startswith(first[: i + 1]) for k in keys):
            found.append(first[: i + 1])
    return found


def _fits(state: dict, own: dict) -> bool:
    return set(state) == set(own) and all(tuple(state[k].shape) == tuple(own[k].shape) for k in own)


def fit_state_dict(obj, own: dict, path: Path) -> tuple[dict, CheckpointFit]:
    """The tensors of ``obj`` keyed as the model's ``own`` state_dict, and how they were found.

    Raises:
        SourceError: no container and prefix make the keys fit; names the closest miss.
    """
    best = None
    for trail, state in _candidates(obj):
        dropped = tuple(k for k in BOOKKEEPING_KEYS if k in state and k not in own)
        for prefix in _prefixes(list(state)):
            stripped = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix) and k not in dropped}
            if _fits(stripped, own):
                return stripped, CheckpointFit(Path(path), trail, prefix, len(stripped), dropped)
            score = len(set(stripped) & set(own))
            if best is None or score > best[0]:
                best = (score, stripped)
    raise SourceError(f"checkpoint {Path(path).name} does not fit the model: {_miss(best[1] if best else {}, own)}")


def _miss(state: dict, own: dict) -> str:
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    parts = [f"{len(keys)} {label} (e.g. {', '.join(keys[:3])})"
             for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes)) if keys]
    return "; ".join(parts) + " (tried the usual containers and key prefixes)"


def load_checkpoint(model, path: Path, trust: bool = False) -> CheckpointFit:
    """Load the weights of ``path`` into ``model`` (every key must fit, in name and shape)."""
    own = model.state_dict()
    state, fit = fit_state_dict(read_checkpoint(path, trust), own, path)
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()})
    return fit
