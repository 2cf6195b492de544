"""One runner interface for every backend: a context manager whose ``infer`` returns outputs."""
from __future__ import annotations

__all__ = ["Runner"]

from abc import ABC, abstractmethod

import numpy as np

from edgekit.errors import EdgekitError, InputError
from edgekit.artifact.manifest import TensorSpec


class Runner(ABC):
    """Base class: checks the lifecycle and every feed against the model's declared inputs.

    Use as ``with runner: outputs = runner.infer({"input": x})``.
    """

    name = "runner"

    def __init__(self) -> None:
        self.is_active = False

    def __enter__(self) -> "Runner":
        self.activate()
        return self

    def __exit__(self, *exc) -> None:
        self.deactivate()

    def activate(self) -> None:
        if self.is_active:
            raise EdgekitError(f"{self.name} is already active")
        self._activate()
        self.is_active = True

    def deactivate(self) -> None:
        if self.is_active:
            self._deactivate()
            self.is_active = False

    def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one batch: ``{input name: array}`` -> ``{output name: array}``."""
        if not self.is_active:
            raise EdgekitError(f"{self.name} is not active: use it as a context manager")
        self._check_feed(feed)
        return self._infer(feed)

    def _check_feed(self, feed: dict[str, np.ndarray]) -> None:
        specs = {s.name: s for s in self.input_specs()}
        if set(feed) != set(specs):
            raise InputError(f"{self.name} expects inputs {sorted(specs)}, got {sorted(feed)}")
        for name, value in feed.items():
            spec = specs[name]
            if str(value.dtype) != spec.dtype:
                raise InputError(f"input {name!r} must be {spec.dtype}, got {value.dtype}")
            if len(value.shape) != len(spec.shape) or any(
                isinstance(d, int) and d > 0 and d != v for d, v in zip(spec.shape, value.shape)
            ):
                raise InputError(f"input {name!r} must have shape {list(spec.shape)}, got {list(value.shape)}")

    @abstractmethod
    def input_specs(self) -> tuple[TensorSpec, ...]:
        """Inputs as the loaded model declares them."""

    @abstractmethod
    def output_specs(self) -> tuple[TensorSpec, ...]:
        """Outputs as the loaded model declares them."""

    @abstractmethod
    def _activate(self) -> None: ...

    @abstractmethod
    def _deactivate(self) -> None: ...

    @abstractmethod
    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...
