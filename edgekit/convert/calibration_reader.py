"""Calibration images as ONNX Runtime's and ModelOpt's quantizers read them: one batch at a time,
in ORT's strided protocol, so that calibration memory is bounded whatever the set's size."""
from __future__ import annotations

__all__ = ["calibration_reader", "image_input_name"]

from pathlib import Path

import numpy as np

from edgekit.images.image_set import CalibrationSet
from edgekit.errors import ConfigError


def calibration_reader(calib: CalibrationSet, input_name: str, chunk: int):
    """An ONNX Runtime CalibrationDataReader over ``calib``, loading one batch at a time.

    ``set_range`` / ``__len__`` follow ORT's strided calibration protocol (``CalibStridedMinMax``):
    ORT calls ``collect_data`` once per range, so at most ``chunk`` batches of activations are held.
    ``len`` is rounded up to a multiple of ``chunk`` because ORT requires it; ranges are clipped.
    """
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.total = len(calib)
            self.first = None
            self.set_range(0, self.total)

        def __len__(self) -> int:
            return -(-self.total // chunk) * chunk

        def set_range(self, start_index: int, end_index: int) -> None:
            self.batches = calib.batches(start_index, min(end_index, self.total))

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self.batches, None)
            return None if batch is None else {input_name: batch}

        def get_first(self) -> dict[str, np.ndarray]:
            if self.first is None:
                self.first = {input_name: next(calib.batches(0, 1))}
            return self.first

        def rewind(self) -> None:
            self.set_range(0, self.total)

    return Reader()


def image_input_name(path: Path) -> str:
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    inits = {i.name for i in graph.initializer}
    names = [i.name for i in graph.input if i.name not in inits]
    if len(names) != 1:
        raise ConfigError(f"calibration feeds models with one image input; {path.name} has {names}")
    return names[0]
