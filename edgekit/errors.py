"""edgekit's one error hierarchy.

An :class:`EdgekitError` is a user error: the CLI prints its message on one line and exits
non-zero, without a traceback. Anything else that escapes is a bug and keeps its traceback.
"""
from __future__ import annotations

__all__ = [
    "EdgekitError",
    "ConfigError",
    "SourceError",
    "InputError",
    "CalibrationError",
    "ParityError",
    "ArtifactError",
    "DeviceMismatchError",
    "BackendUnavailableError",
    "DetectionError",
]


class EdgekitError(Exception):
    """Base of every error a user can cause and fix."""

    exit_code = 2


class ConfigError(EdgekitError):
    """A recipe, target or option is unknown or inconsistent."""


class SourceError(EdgekitError):
    """A model source cannot be resolved or loaded (recipe, timm name, factory, checkpoint, ONNX)."""


class InputError(EdgekitError):
    """An image, folder or file given as input is missing, unreadable or unsupported."""


class CalibrationError(EdgekitError):
    """The calibration set is empty, unreadable or too small."""


class ParityError(EdgekitError):
    """A transform changed the model's outputs beyond its tolerance."""


class ArtifactError(EdgekitError):
    """An artifact folder or bundle is incomplete, corrupt or inconsistent."""


class DeviceMismatchError(ArtifactError):
    """An engine was built for another GPU or TensorRT version than the one present."""


class BackendUnavailableError(EdgekitError):
    """A backend's library (TensorRT, CUDA, ONNX Runtime) is not installed here."""


class DetectionError(EdgekitError):
    """A detector's outputs cannot be decoded: unknown layout, NaN scores, boxes outside the tile."""
