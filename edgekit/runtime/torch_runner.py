"""PyTorch backend: the artifact's network rebuilt from its recipe, on CUDA when present.

The only runtime module that imports torch, and only when a runner is made or activated.
"""
from __future__ import annotations

__all__ = ["TorchRunner"]

from pathlib import Path
from typing import Callable

import numpy as np

from edgekit.errors import ArtifactError, BackendUnavailableError
from edgekit.artifact.manifest import Manifest, TensorSpec
from edgekit.runtime.base import Runner


class TorchRunner(Runner):
    """Runs a torch module made by ``build`` (called on activation), in eval mode without gradients.

    Args:
        build: returns the module (weights loaded).
        inputs / outputs: the specs the artifact declares (names, shapes).
        device: ``cuda``, ``cuda:1``, ``cpu``, or None for CUDA when available.
        dtype: ``float32``, ``float16`` or ``bfloat16``: the weights' and activations' type on CUDA
            (fp16 artifacts run in float16); the CPU always runs float32. Outputs are float32.
        compile: wrap the module in ``torch.compile`` on activation (shapes are static per tile batch).
    """

    name = "torch"
    DTYPES = ("float32", "float16", "bfloat16")

    def __init__(self, build: Callable[[], object], inputs: tuple[TensorSpec, ...], outputs: tuple[TensorSpec, ...],
                 device: str | None = None, dtype: str = "float32", compile: bool = False):
        super().__init__()
        if dtype not in self.DTYPES:
            raise ArtifactError(f"torch runner dtype {dtype!r} is not one of {', '.join(self.DTYPES)}")
        self.build, self.inputs, self.outputs = build, inputs, outputs
        self.device, self.dtype, self.compile = device, dtype, compile
        self.model = None

    @classmethod
    def from_manifest(cls, manifest: Manifest, folder: Path, device: str | None = None, dtype: str | None = None,
                      compile: bool = False) -> "TorchRunner":
        """A runner that rebuilds a ``recipe`` source (recipe file or name, optional checkpoint)."""
        source = manifest.source or {}
        if source.get("kind") != "recipe":
            raise ArtifactError(
                f"the torch backend rebuilds the network from its recipe; {folder} was built from a "
                f"{source.get('kind', 'unknown')} source: use --backend onnxruntime"
            )

        def build():
            from timm.utils.model import reparameterize_model

            from edgekit.nets.factory import load_checkpoint, model_from_recipe
            from edgekit.recipes import load_recipe

            recipe = load_recipe(source.get("recipe") or source["name"])
            checkpoint = source.get("checkpoint")
            model = model_from_recipe(recipe, input_size=tuple(manifest.tile), weights=checkpoint is None)
            if checkpoint:
                load_checkpoint(model, Path(checkpoint))
            return reparameterize_model(model.eval())

        dtype = dtype or ("float16" if manifest.precision == "fp16" else "float32")
        return cls(build, manifest.inputs, manifest.outputs, device=device, dtype=dtype, compile=compile)

    def _activate(self) -> None:
        try:
            import torch
        except ImportError:
            raise BackendUnavailableError("PyTorch is not installed: pip install 'edgekit[build]'") from None
        self.device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
        model = self.build().to(self.device).to(self._torch_dtype(torch))
        self.model = torch.compile(model) if self.compile else model

    def _torch_dtype(self, torch):
        on_cuda = str(self.device).startswith("cuda")
        return getattr(torch, self.dtype) if on_cuda else torch.float32

    def _deactivate(self) -> None:
        self.model = None

    def input_specs(self) -> tuple[TensorSpec, ...]:
        return self.inputs

    def output_specs(self) -> tuple[TensorSpec, ...]:
        return self.outputs

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        x = torch.from_numpy(np.ascontiguousarray(feed[self.inputs[0].name])).to(self.device)
        with torch.inference_mode():
            y = self.model(x.to(self._torch_dtype(torch)))
        if isinstance(y, dict):
            y = next(iter(y.values()))
        elif isinstance(y, (tuple, list)):
            y = y[0]
        return {self.outputs[0].name: y.float().cpu().numpy()}
