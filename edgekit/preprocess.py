"""How raw pixels become a model's input: units, bands, channel order, mean and std. NumPy only.

The model input is ``(pixel / scale - mean) / std`` on every path (calibration, verification,
compare, optimize, sweep, infer). ``scale`` is declared by the recipe's ``input:`` section (or
``edgekit build --scale``), never guessed from the file: 255 for 8-bit photos, 4095 for 12-bit
sensors, 10000 for reflectance products, 65535 for full-range 16-bit, 1 for floats in 0..1.

Each value carries where it came from (:attr:`Preprocess.origin`): an option, a recipe, what the
model says about itself (:mod:`edgekit.convert.contract`), or an assumption, marked ``assumed``
in the manifest when nothing declared the normalisation.
"""
from __future__ import annotations

__all__ = ["Preprocess", "InputOptions", "pixel_types_for", "pixel_types_text", "wrong_pixels_step", "IMAGENET_MEAN",
           "IMAGENET_STD", "CHANNEL_ORDERS", "ASSUMED"]

from dataclasses import dataclass, field, fields, replace

import numpy as np

from edgekit.errors import ConfigError

INT_TYPES = (("uint8", 255), ("int16", 32767), ("uint16", 65535))
FLOAT_TYPES = ("float16", "float32", "float64")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CHANNEL_ORDERS = ("RGB", "BGR")
FIELDS = ("mean", "std", "channel_order", "scale", "bands")
NORMALISATION = ("mean", "std", "channel_order")  # what `assumed` is about
ASSUMED = "assumed"  # how an origin that nothing declared begins


def pixel_types_for(scale: float) -> tuple[str, ...]:
    """The pixel types a declared ``scale`` fits: the smallest integer types that hold it, and floats.

    255 -> uint8; 4095 or 10000 -> int16, uint16; 65535 -> uint16; 1 -> floats only. Floats fit
    any scale (their units cannot be told from the type).
    """
    if scale <= 1:
        return FLOAT_TYPES
    if scale <= 255:
        return ("uint8",) + FLOAT_TYPES
    return tuple(name for name, top in INT_TYPES if top >= scale and name != "uint8") + FLOAT_TYPES


def pixel_types_text(scale: float) -> str:
    """The files a declared ``scale`` fits, in words: ``uint8 or float files``, ``float files only``."""
    ints = [t for t in pixel_types_for(scale) if t not in FLOAT_TYPES]
    return f"{', '.join(ints)} or float files" if ints else "float files only"


def wrong_pixels_step(kind: str, scale: float, channels: int = 3) -> str:
    """What to do when files of ``kind`` meet a declared ``scale`` that does not fit them. A model
    that takes raw 0..255 pixels is declared ``--scale 255 --mean 0,0,0 --std 0.00392157,...`` (std
    in scaled units: 1/255), not ``--scale 1``, which declares floats already in 0..1."""
    top = dict(INT_TYPES).get(kind)
    if top is None:
        return f"convert the image, or rebuild with --scale for {kind} files"
    if scale <= 1:
        raw = f"--scale {top} --mean {_numbers((0,) * channels)} --std {_numbers((round(1 / top, 8),) * channels)}"
        return (f"convert the image to floats, or rebuild with --scale {top} for {kind} files (a model that takes "
                f"raw 0..{top} pixels: {raw}, std in scaled units)")
    examples = "e.g. 65535 for full-range uint16" if kind != "uint8" else "255"
    return f"convert the image, or rebuild with --scale for {kind} ({examples})"


def _numbers(values) -> str:
    return ",".join(f"{v:g}" for v in values)


@dataclass(frozen=True)
class InputOptions:
    """What a command line declares about a model's input (``--mean --std --channel-order --scale
    --bands``); None: not declared. Declarations win over recipes and over what a model says."""

    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    channel_order: str | None = None
    scale: float | None = None
    bands: tuple[int, ...] | None = None

    def given(self) -> dict:
        """The declared fields, by name."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    @staticmethod
    def option(name: str) -> str:
        """The command-line option of a field (``channel_order`` -> ``--channel-order``)."""
        return "--" + name.replace("_", "-")


@dataclass(frozen=True)
class Preprocess:
    """Per-channel normalisation applied to every image before the model.

    Attributes:
        mean / std: per model channel, in units of ``scale`` (pixel / scale), the timm convention.
        channel_order: the order the model expects (``RGB`` or ``BGR``).
        scale: the value of full scale in the input files (module docstring).
        bands: which file bands feed the model's channels, 1-based like GDAL (``(4, 3, 2)``); None:
            every band of a file with as many bands as channels, a grey band repeated, a 4th
            (alpha) band dropped.
        origin: (field, where its value came from) pairs, e.g. ``("mean", "--mean")``; a field
            without one was never declared (old manifests). Not part of equality.
    """

    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    channel_order: str = "RGB"
    scale: float = 255.0
    bands: tuple[int, ...] | None = None
    origin: tuple[tuple[str, str], ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "channel_order", str(self.channel_order).upper())
        if self.channel_order not in CHANNEL_ORDERS:
            raise ConfigError(f"channel order {self.channel_order!r} is not one of {', '.join(CHANNEL_ORDERS)} "
                              "(--channel-order)")
        if not self.scale > 0:
            raise ConfigError(f"input scale must be a positive number (255, 4095, 10000, 65535, 1), got {self.scale}")
        if len(self.std) != len(self.mean):
            raise ConfigError(f"mean {_numbers(self.mean)} ({self.source_of('mean') or 'default'}) has "
                              f"{len(self.mean)} values and std {_numbers(self.std)} ({self.source_of('std') or 'default'}) "
                              f"{len(self.std)}: give one of each per model channel (--mean/--std)")
        if min(abs(s) for s in self.std) == 0:
            raise ConfigError(f"std {_numbers(self.std)} has a zero: every channel's std must be non-zero (--std)")
        if self.channel_order == "BGR" and self.channels != 3:
            raise ConfigError(f"channel order BGR reverses 3 colour channels; this input has {self.channels}: "
                              "give file bands in the model's order with --bands instead")
        if self.bands is not None:
            if len(self.bands) != self.channels or min(self.bands) < 1:
                raise ConfigError(f"bands {list(self.bands)} must name {self.channels} file bands, counted from 1 "
                                  f"(e.g. {list(range(self.channels, 0, -1))}), one per mean/std value")

    @property
    def channels(self) -> int:
        return len(self.mean)

    @property
    def pixel_types(self) -> tuple[str, ...]:
        """Pixel types whose files this declaration fits (:func:`pixel_types_for`)."""
        return pixel_types_for(self.scale)

    def source_of(self, name: str) -> str | None:
        """Where ``name``'s value came from, or None when nothing recorded it."""
        return dict(self.origin).get(name)

    @property
    def assumed(self) -> bool:
        """Whether part of the normalisation (mean, std, channel order) was assumed, not declared."""
        return any((self.source_of(name) or "").startswith(ASSUMED) for name in NORMALISATION)

    def declared(self, origin: str, **values) -> "Preprocess":
        """This normalisation with ``values`` (fields by name; None: unchanged) declared by ``origin``.

        ``origin`` may name a ``{option}`` placeholder, filled with each field's command-line option.
        """
        values = {k: v for k, v in values.items() if v is not None}
        unknown = set(values) - set(FIELDS)
        if unknown:
            raise ValueError(f"not preprocessing fields: {sorted(unknown)}")
        typed = {k: _typed(k, v) for k, v in values.items()}
        sources = dict(self.origin) | {k: origin.format(option=InputOptions.option(k)) for k in typed}
        return replace(self, **typed, origin=tuple(sources.items()))

    def check_channels(self, channels: int, model: str) -> None:
        """A one-line error when the model takes another number of channels than mean/std give."""
        if channels != self.channels:
            raise ConfigError(f"mean {_numbers(self.mean)} ({self.source_of('mean') or 'default'}) gives "
                              f"{self.channels} channels but {model} takes {channels}: give {channels} values to "
                              f"--mean and --std (and --bands for {channels} file bands)")

    def apply(self, pixels: np.ndarray) -> np.ndarray:
        """(H, W, C) or (N, H, W, C) raw pixels, bands in model order -> float32 (N, C, H, W) input.

        ``pixel / scale`` is a correctly rounded float32 division, so files of different types
        holding the same values in their own units (``v`` at 255, ``257 v`` at 65535, ...) give
        the same input to the last bit.
        """
        x = np.asarray(pixels, dtype=np.float32)
        if x.ndim == 3:
            x = x[None]
        if self.channel_order == "BGR":
            x = x[..., ::-1]
        x = (x / np.float32(self.scale) - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2))

    def to_dict(self) -> dict:
        """The manifest's ``preprocess``: the values, and where each came from with ``assumed``
        when recorded (a declaration without origins stays as old manifests wrote it)."""
        data = {"mean": list(self.mean), "std": list(self.std), "channel_order": self.channel_order,
                "scale": self.scale}
        data |= {"bands": list(self.bands)} if self.bands is not None else {}
        return data | ({"source": dict(self.origin), "assumed": self.assumed} if self.origin else {})

    def with_units(self, scale: float | None = None, bands: tuple[int, ...] | None = None) -> "Preprocess":
        """This normalisation with the input's units declared anew (``--scale/--bands``)."""
        return self.declared("{option}", scale=scale, bands=bands)

    @classmethod
    def from_dict(cls, data: dict, origin: str | None = None) -> "Preprocess":
        """A manifest's ``preprocess`` (with its ``source``), or a recipe's ``input:`` section: then
        each field it holds is recorded as coming from ``origin`` (None: nothing recorded)."""
        present = {k: data[k] for k in FIELDS if data.get(k) is not None}
        if "source" in data:
            sources = {str(k): str(v) for k, v in dict(data["source"]).items()}
        else:
            sources = {k: origin for k in present} if origin else {}
        return cls(**{k: _typed(k, v) for k, v in present.items()}, origin=tuple(sources.items()))


def _typed(name: str, value):
    """A field's value in its stored type (tuples of floats / ints, float scale, str order)."""
    try:
        if name in ("mean", "std"):
            return tuple(float(v) for v in value)
        if name == "bands":
            return tuple(int(b) for b in value)
        if name == "scale":
            return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} {value!r} is not a list of numbers like 0.485,0.456,0.406") from None
    return str(value)
