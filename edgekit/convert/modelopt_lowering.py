"""Lowerings by NVIDIA ModelOpt: int8 Q/DQ placed for TensorRT (ONNX PTQ) and fp16 by AutoCast,
with the patches ModelOpt leaves on ONNX Runtime's quantizer undone; see :mod:`edgekit.convert.precision`."""
from __future__ import annotations

__all__ = ["modelopt_int8", "autocast_fp16", "ort_patches_undone", "FP16_CALIB_BATCHES"]

import contextlib
import shutil
import tempfile
from pathlib import Path

import numpy as np

from edgekit.convert.calibration_reader import calibration_reader, image_input_name
from edgekit.convert.chatter import quiet
from edgekit.convert.precision_spec import PrecisionSpec
from edgekit.images.image_set import CalibrationSet
from edgekit.errors import ConfigError

FP16_CALIB_BATCHES = 4  # AutoCast's reference run keeps every activation of its batches


def modelopt_int8(onnx_in: Path, out: Path, spec: PrecisionSpec, calib: CalibrationSet) -> None:
    """ModelOpt ONNX PTQ: TensorRT-friendly symmetric int8 Q/DQ, calibrated on ORT's CPU provider."""
    from modelopt.onnx.quantization import quantize

    with tempfile.TemporaryDirectory(prefix="edgekit-modelopt-") as work:
        model = Path(work) / "model.onnx"  # ModelOpt writes intermediate files beside its input
        shutil.copyfile(onnx_in, model)
        with quiet(), ort_patches_undone():
            quantize(
                onnx_path=str(model),
                quantize_mode="int8",
                calibration_method=spec.calib_method,
                calibration_data_reader=calibration_reader(calib, image_input_name(onnx_in), spec.calib_chunk),
                calibration_eps=["cpu"],
                nodes_to_exclude=list(spec.nodes_to_exclude) or None,
                high_precision_dtype=spec.high_precision,
                output_path=str(Path(work) / "quant.onnx"),
                log_level="ERROR",
            )
        shutil.move(Path(work) / "quant.onnx", out)


def autocast_fp16(onnx_in: Path, out: Path, spec: PrecisionSpec, calib: CalibrationSet | None) -> None:
    """ModelOpt AutoCast to fp16 with float32 I/O, its overflow checks run on calibration images."""
    import onnx
    from modelopt.onnx.autocast import convert_to_mixed_precision

    foreign = sorted({n.op_type for n in onnx.load(str(onnx_in), load_external_data=False).graph.node
                      if n.domain not in ("", "ai.onnx")})
    if foreign:  # AutoCast takes them for custom TensorRT layers and needs TensorRT to sanitize them
        raise ConfigError(f"the graph holds ONNX Runtime-only ops ({', '.join(foreign[:4])}) that fp16 "
                          "AutoCast cannot convert: build fp16 from the model's source or an ONNX without them "
                          "(an fp32 artifact of a transformer has them fused in)")

    with tempfile.TemporaryDirectory(prefix="edgekit-autocast-") as work:
        data = None
        if calib is not None:
            name = image_input_name(onnx_in)
            for i, batch in enumerate(calib.batches(0, FP16_CALIB_BATCHES)):
                np.savez(Path(work) / f"batch{i:03d}.npz", **{name: batch})
            data = work
        with quiet():
            model = convert_to_mixed_precision(
                onnx_path=str(onnx_in),
                low_precision_type="fp16",
                keep_io_types=True,
                nodes_to_exclude=list(spec.nodes_to_exclude) or None,
                calibration_data=data,
                providers=["cpu"],
            )
    onnx.save(model, str(out))


@contextlib.contextmanager
def ort_patches_undone():
    """Undo, on leaving, the patches ModelOpt applies to ONNX Runtime's quantization classes.

    ModelOpt replaces methods of ORT's calibrators and quantizers process-wide on every call
    (``patch_ort_modules``); left in place, they break ORT's own ``quantize_static`` later in the
    same process (MinMax ranges go missing). Its patched calibrators are needed only inside.
    """
    from onnxruntime.quantization import base_quantizer, calibrate, qdq_quantizer

    owners = [
        calibrate, calibrate.CalibraterBase, calibrate.MinMaxCalibrater, calibrate.HistogramCalibrater,
        calibrate.HistogramCollector, qdq_quantizer.QDQQuantizer, base_quantizer.BaseQuantizer,
    ]
    saved = [(owner, dict(vars(owner))) for owner in owners]
    try:
        yield
    finally:
        for owner, attrs in saved:
            for name in set(vars(owner)) - set(attrs):
                if not name.startswith("__"):
                    delattr(owner, name)
            for name, value in attrs.items():
                if callable(value) and vars(owner).get(name) is not value:
                    setattr(owner, name, value)
