"""edgekit's one error hierarchy.

An :class:`EdgekitError` is a user error: the CLI prints its message on one line and exits
non-zero, without a traceback. Anything else that escapes is a bug and keeps its traceback.

The exit status says which kind (README.md, "Exit codes"): 2, the input is bad (an option,
recipe, target, file or model edgekit cannot take: fix it and rerun); 1, the input was fine but a
check failed, no candidate held the constraints, or the run failed or stopped part way
(:class:`CheckError` and its subclasses).
"""
from __future__ import annotations

__all__ = [
    "EdgekitError",
    "ConfigError",
    "SourceError",
    "InputError",
    "CalibrationError",
    "CheckError",
    "ParityError",
    "InfeasibleError",
    "RunError",
    "ArtifactError",
    "DeviceMismatchError",
    "BackendUnavailableError",
    "DetectionError",
    "DetectionOutputError",
]


class EdgekitError(Exception):
    """Base of every error a user can cause and fix; by default, bad input (exit 2)."""

    exit_code = 2


class CheckError(EdgekitError):
    """The input was fine, but a check failed or the work did not finish (exit 1)."""

    exit_code = 1


class ConfigError(EdgekitError):
    """A recipe, target or option is unknown or inconsistent."""


class SourceError(EdgekitError):
    """A model source cannot be resolved or loaded (recipe, timm name, factory, checkpoint, ONNX)."""


class InputError(EdgekitError):
    """An image, folder or file given as input is missing, unreadable or unsupported."""


class CalibrationError(EdgekitError):
    """The calibration set is empty, unreadable or too small."""


class ParityError(CheckError):
    """A transform changed the model's outputs beyond its tolerance (reparameterize, export,
    simplify, opset conversion, precision, compile, OpenVINO IR)."""


class InfeasibleError(CheckError):
    """A search ran and nothing it tried holds the constraints (optimize's candidates, compress's
    plans); the message names the best reachable figures."""


class RunError(CheckError):
    """A run failed or stopped part way although its input was accepted: a CUDA or TensorRT call
    failed, a model returned what no model should, a folder stopped after some outputs were written."""


class ArtifactError(EdgekitError):
    """An artifact folder or bundle is incomplete, corrupt or inconsistent."""


class DeviceMismatchError(ArtifactError):
    """An engine was built for another GPU or TensorRT version than the one present."""


class BackendUnavailableError(EdgekitError):
    """A backend's library (TensorRT, CUDA, ONNX Runtime) is not installed here."""


class DetectionError(EdgekitError):
    """A detector's outputs cannot be decoded: an unknown layout, or a --det-format that does not fit."""


class DetectionOutputError(DetectionError, RunError):
    """A detector's outputs, in a layout edgekit reads, hold what no model should return (NaN
    scores, boxes outside the tile): the run failed (exit 1), the input was fine."""

    exit_code = 1
