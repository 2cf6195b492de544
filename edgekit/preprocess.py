"""How raw pixels become a model's input: units, bands, channel order, mean and std. NumPy only.

The model input is ``(pixel / scale - mean) / std`` on every path (calibration, verification,
compare, optimize, sweep, infer). ``scale`` is declared by the recipe's ``input:`` section (or
``edgekit build --scale``), never guessed from the file: 255 for 8-bit photos, 4095 for 12-bit
sensors, 10000 for reflectance products, 65535 for full-range 16-bit, 1 for floats in 0..1.
"""
from __future__ import annotations

__all__ = ["Preprocess", "pixel_types_for"]

from dataclasses import dataclass

import numpy as np

from edgekit.errors import ConfigError

INT_TYPES = (("uint8", 255), ("int16", 32767), ("uint16", 65535))
FLOAT_TYPES = ("float16", "float32", "float64")


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
    """

    mean: tuple[float, ...] = (0.485, 0.456, 0.406)
    std: tuple[float, ...] = (0.229, 0.224, 0.225)
    channel_order: str = "RGB"
    scale: float = 255.0
    bands: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if not self.scale > 0:
            raise ConfigError(f"input scale must be a positive number (255, 4095, 10000, 65535, 1), got {self.scale}")
        if self.bands is not None:
            if len(self.bands) != self.channels or min(self.bands) < 1:
                raise ConfigError(f"bands {list(self.bands)} must name {self.channels} file bands, counted from 1 "
                                  f"(e.g. {list(range(self.channels, 0, -1))})")

    @property
    def channels(self) -> int:
        return len(self.mean)

    @property
    def pixel_types(self) -> tuple[str, ...]:
        """Pixel types whose files this declaration fits (:func:`pixel_types_for`)."""
        return pixel_types_for(self.scale)

    def apply(self, pixels: np.ndarray) -> np.ndarray:
        """(H, W, C) or (N, H, W, C) raw pixels, bands in model order -> float32 (N, C, H, W) input.

        ``pixel / scale`` is a correctly rounded float32 division, so files of different types
        holding the same values in their own units (``v`` at 255, ``257 v`` at 65535, ...) give
        the same input to the last bit.
        """
        x = np.asarray(pixels, dtype=np.float32)
        if x.ndim == 3:
            x = x[None]
        if self.channel_order.upper() == "BGR":
            x = x[..., ::-1]
        x = (x / np.float32(self.scale) - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2))

    def to_dict(self) -> dict:
        data = {"mean": list(self.mean), "std": list(self.std), "channel_order": self.channel_order,
                "scale": self.scale}
        return data | ({"bands": list(self.bands)} if self.bands is not None else {})

    def with_units(self, scale: float | None = None, bands: tuple[int, ...] | None = None) -> "Preprocess":
        """This normalisation with the input's units declared anew (``edgekit build --scale/--bands``)."""
        from dataclasses import replace

        return replace(self, scale=float(scale) if scale is not None else self.scale,
                       bands=tuple(int(b) for b in bands) if bands is not None else self.bands)

    @classmethod
    def from_dict(cls, data: dict) -> "Preprocess":
        bands = data.get("bands")
        return cls(
            mean=tuple(float(v) for v in data.get("mean", cls.mean)),
            std=tuple(float(v) for v in data.get("std", cls.std)),
            channel_order=str(data.get("channel_order", "RGB")),
            scale=float(data.get("scale", 255.0)),
            bands=tuple(int(b) for b in bands) if bands is not None else None,
        )
