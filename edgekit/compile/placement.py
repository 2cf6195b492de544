"""Where an engine's layers run (DLA or GPU), read from TensorRT's engine inspector.

``IEngineInspector.get_engine_information(LayerInformationFormat.JSON)`` returns
``{"Layers": [...], "Bindings": [...]}``. Built with ``ProfilingVerbosity.DETAILED`` (as edgekit
builds), each layer is an object: ``Name``, ``LayerType``, ``Inputs``/``Outputs`` (each with
``Name``, ``Location``, ``Dimensions``, ``Format/Datatype``), ``TacticName`` and, from TensorRT
8.6, ``Metadata``: the ONNX nodes the layer was made from, as ``[ONNX Layer: <node>]`` records
separated by ``\\x1e``. With ``LAYER_NAMES_ONLY`` the layers are bare names, and nothing says
where they run. A multi-profile engine repeats its layers with a ``[profile N]`` suffix; profile 0
is read.

On DLA, TensorRT fuses every run of DLA-capable layers into one layer named
``{ForeignNode[first...last]}`` (its type says DLA), and adds glue around it on the GPU (copies
to and from the DLA's memory, reformats). A layer of the model left on the GPU, a *fallback*, is
a GPU layer that came from ONNX nodes (its ``Metadata`` says which) or, on TensorRT 8.5 (no
``Metadata``), a GPU layer that is not glue. Myelin subgraphs are also named ``{ForeignNode[...]}``
but run on the GPU (their type says ``Myelin``).
"""
from __future__ import annotations

__all__ = ["LayerPlacement", "layer_device", "layer_placement", "engine_placement"]

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from edgekit.errors import ArtifactError

_ONNX_NODE = re.compile(r"\[ONNX Layer: ([^\]]*)\]")
_PROFILE = re.compile(r"\[profile \d+\]")
_GPU_FOREIGN = ("myelin", "kgen")  # layer types of GPU subgraphs that are also named {ForeignNode[...]}
_GLUE_TYPES = ("reformat", "signal", "wait", "finishnvmregion")
_GLUE_SUFFIXES = (" to nvm", " from nvm", " copy finish")


@dataclass(frozen=True)
class LayerPlacement:
    """Which engine layers run on the DLA and which of the model's fell back to the GPU.

    Attributes:
        dla: engine layers on the DLA (each a fused subgraph ``{ForeignNode[...]}``).
        gpu: engine layers of the model on the GPU: with DLA asked for, the fallbacks.
        onnx_on_gpu: the ONNX nodes those GPU layers were made from, where the engine says
            (TensorRT >= 8.6); empty otherwise.
        glue: layers TensorRT added (reformats, copies between GPU and DLA memory).
        detailed: False when the engine was built without detailed layer information: then
            nothing is known of where layers run, and ``dla``/``gpu`` are empty.
    """

    dla: tuple[str, ...] = ()
    gpu: tuple[str, ...] = ()
    onnx_on_gpu: tuple[str, ...] = ()
    glue: int = 0
    detailed: bool = True

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def summary(self, core: int) -> str | None:
        """One line on the GPU fallbacks of an engine built for DLA core ``core`` (None: there are none)."""
        if not self.detailed:
            return (f"the engine for DLA core {core} carries no layer details: which layers fell back to the GPU "
                    "is unknown")
        if not self.gpu:
            return None
        named = self.onnx_on_gpu or self.gpu
        shown = ", ".join(named[:8]) + (f" and {len(named) - 8} more" if len(named) > 8 else "")
        return (f"{len(self.gpu)} of {len(self.gpu) + len(self.dla)} layers fell back from DLA core {core} to the "
                f"GPU ({shown}); each DLA/GPU crossing costs a copy (session.tensorrt.placement lists them)")


def layer_device(layer: dict) -> str:
    """``DLA`` or ``GPU`` for one layer object of the inspector's JSON."""
    kind = str(layer.get("LayerType", "")).lower()
    name = str(layer.get("Name", ""))
    if "dla" in kind or (name.startswith("{ForeignNode[") and kind and not kind.startswith(_GPU_FOREIGN)):
        return "DLA"
    return "GPU"


def _is_glue(layer: dict) -> bool:
    """A layer TensorRT inserted (no ONNX node of its own)."""
    if "Metadata" in layer:
        return not _ONNX_NODE.search(str(layer["Metadata"]))
    kind, name = str(layer.get("LayerType", "")).lower(), str(layer.get("Name", ""))
    return kind in _GLUE_TYPES or name.lower().endswith(_GLUE_SUFFIXES)


def layer_placement(info: str | dict) -> LayerPlacement:
    """Read the engine inspector's JSON (text or parsed) into a :class:`LayerPlacement`."""
    data = json.loads(info) if isinstance(info, str) else info
    if not isinstance(data, dict) or not isinstance(data.get("Layers"), list):
        raise ArtifactError("the engine inspector's answer has no 'Layers' list: not TensorRT's engine information")
    layers = [layer for layer in data["Layers"]
              if not _PROFILE.search(str(layer.get("Name", "") if isinstance(layer, dict) else layer))]
    if layers and not all(isinstance(layer, dict) for layer in layers):
        return LayerPlacement(detailed=False)
    dla, gpu, onnx, glue = [], [], [], 0
    for layer in layers:
        if layer_device(layer) == "DLA":
            dla.append(str(layer.get("Name", "")))
        elif _is_glue(layer):
            glue += 1
        else:
            gpu.append(str(layer.get("Name", "")))
            for node in _ONNX_NODE.findall(str(layer.get("Metadata", ""))):
                if node.strip() not in onnx:
                    onnx.append(node.strip())
    return LayerPlacement(tuple(dla), tuple(gpu), tuple(onnx), glue)


def engine_placement(engine_path: Path, dla_core: int | None = None) -> LayerPlacement:
    """The placement of a built engine's layers (needs TensorRT)."""
    from edgekit.runtime.trt import engine_information

    return layer_placement(engine_information(engine_path, dla_core))
