"""Precision check of a detector: the lowered model's boxes scored (COCO mAP@0.5) against FP32's.

The detection counterpart of :mod:`edgekit.convert.verify_precision`, beside it in the build (it
decodes and scores through :mod:`edgekit.detect`, below the build).
"""
from __future__ import annotations

__all__ = ["verify_detection"]

from pathlib import Path

import numpy as np

from edgekit.convert.verify_precision import PrecisionCheck
from edgekit.runtime.decode import decode, detect_format
from edgekit.scoring import coco_map
from edgekit.images.image_set import CalibrationSet
from edgekit.metrics import output_error


def _outputs(runner, batch: np.ndarray) -> dict:
    return runner.infer({runner.input_specs()[0].name: batch})


def verify_detection(reference: Path, candidate: Path, images: CalibrationSet, max_drop: float,
                     conf: float = 0.25, runtime: str = "onnxruntime", precision: str = "fp32") -> PrecisionCheck:
    """Boxes of ``candidate`` against FP32's (taken as truth) on held-out tiles.

    ``agreement`` is the candidate's mAP@0.5 with FP32's boxes over ``conf`` as truth; ``drop`` is
    100 x (1 - agreement). Tiles where FP32 finds nothing are skipped by COCO's protocol. The
    reference runs on ONNX Runtime's CPU provider, the candidate on ``runtime`` in ``precision``
    (the target's: :func:`~edgekit.runtime.open.cpu_runner`).
    """
    from edgekit.runtime.open import cpu_runner

    truth, preds, errors, fmt = [], [], [], None
    with cpu_runner(reference) as ref, cpu_runner(candidate, runtime=runtime, precision=precision) as cand:
        specs = ref.output_specs()
        for batch in images.batches():
            hw = tuple(batch.shape[2:4])
            ref_out, cand_out = _outputs(ref, batch), _outputs(cand, batch)
            fmt = fmt or detect_format(specs, hw, ref_out)  # once, from FP32's outputs on real images
            errors.append((np.asarray(next(iter(ref_out.values())), np.float32),
                           np.asarray(next(iter(cand_out.values())), np.float32)))
            truth += decode(ref_out, specs, fmt, conf, hw)
            preds += decode(cand_out, specs, fmt, 0.001, hw)
    error = output_error(np.concatenate([e[0].ravel() for e in errors]), np.concatenate([e[1].ravel() for e in errors]))
    scores = coco_map(truth, preds, [tuple(images.input_size)] * len(truth))
    agreement = scores["map50"] if np.isfinite(scores["map50"]) else 1.0
    return PrecisionCheck("detection", len(images.items), error, agreement, None, 100.0 * (1.0 - agreement),
                          float(max_drop), "mAP@0.5 against fp32 boxes")
