"""Where detections go: JSON Lines as they stream, then COCO JSON, GeoJSON (WGS84), GeoPackage and a preview.

The output's suffix picks its format: ``.json`` COCO (pixel coordinates), ``.geojson`` GeoJSON
in WGS84 longitude/latitude (a georeferenced input only: corners go through the raster's
transform, then pyproj), ``.gpkg`` GeoPackage in the raster's own CRS (georeferenced input only;
:mod:`edgekit.detect.geopackage`), ``.jsonl`` JSON Lines. Every file is written under a temporary name and
renamed when complete; the JSON Lines file fills as boxes become final.

Classes are named as the artifact names them (``manifest.classes``), ``class_<id>`` where it names
none (:func:`edgekit.artifact.classes.class_name`, the one rule): COCO ``categories`` carry the
names, GeoJSON features and JSON Lines records ``class`` (the name) beside ``class_id``.
"""
from __future__ import annotations

__all__ = ["DETECTION_SUFFIXES", "DetectionOutputs", "DetectionWriter", "check_detection_outputs",
           "coco_dict", "geojson_dict", "lonlat_corners"]

import importlib.util
import json
import os
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgekit.artifact.classes import class_name, class_names
from edgekit.atomic import atomic_file
from edgekit.runtime.decode import Detections
from edgekit.errors import BackendUnavailableError, InputError

DETECTION_SUFFIXES = (".json", ".geojson", ".gpkg", ".jsonl")
GEOREFERENCED = (".geojson", ".gpkg")


@dataclass(frozen=True)
class DetectionOutputs:
    """The main output (by suffix), an optional JSON Lines stream and an optional preview PNG."""

    path: Path
    jsonl: Path | None = None
    preview: Path | None = None

    def paths(self) -> list[Path]:
        return [p for p in (self.path, self.jsonl, self.preview) if p is not None]


def check_detection_outputs(outputs: DetectionOutputs, georeferenced: bool) -> None:
    """Fail before any work when a suffix is wrong, GeoJSON lacks a georeferenced input, or a folder is missing."""
    if outputs.path.suffix.lower() not in DETECTION_SUFFIXES:
        raise InputError(f"detections are written as {', '.join(DETECTION_SUFFIXES)} (COCO, GeoJSON, GeoPackage, "
                         f"JSON Lines), not {outputs.path.name}")
    if outputs.path.suffix.lower() in GEOREFERENCED and not georeferenced:
        kind = "GeoJSON" if outputs.path.suffix.lower() == ".geojson" else "a GeoPackage"
        if importlib.util.find_spec("rasterio") is None:  # a GeoTIFF's CRS and transform are read by rasterio
            raise BackendUnavailableError(f"{kind} needs a georeferenced input read with rasterio, which is not "
                                          "installed: pip install 'edgekit[runtime]', or write COCO JSON (-o boxes.json)")
        raise InputError(f"{kind} needs a georeferenced input (a GeoTIFF); write COCO JSON (-o boxes.json) instead")
    if outputs.path.suffix.lower() == ".geojson" and importlib.util.find_spec("pyproj") is None:
        raise BackendUnavailableError("GeoJSON in WGS84 needs pyproj: pip install 'edgekit[detect]', "
                                      "or write COCO JSON (-o boxes.json)")
    if outputs.jsonl is not None and outputs.jsonl.suffix.lower() != ".jsonl":
        raise InputError(f"--jsonl is written as .jsonl, not {outputs.jsonl.name}")
    if outputs.preview is not None and outputs.preview.suffix.lower() != ".png":
        raise InputError(f"the preview is written as .png, not {outputs.preview.name}")
    for path in outputs.paths():
        if not path.parent.is_dir():
            raise InputError(f"output folder {path.parent} does not exist; create it first")
        if not os.access(path.parent, os.W_OK):
            raise InputError(f"output folder {path.parent} is not writable")
        if path.is_dir():
            raise InputError(f"output {path} is a folder; give a file name")


def _record(box, score, cls, classes: tuple[str, ...]) -> dict:
    return {"bbox": [round(float(v), 2) for v in box], "score": round(float(score), 5), "class_id": int(cls),
            "class": class_name(classes, cls)}


class DetectionWriter:
    """A sink for :func:`edgekit.detect.execute.detect_image` that streams and then writes the outputs.

    Use as a context manager: on a clean exit the final files appear; on an error none do.
    """

    def __init__(self, outputs: DetectionOutputs, image: Path, shape: tuple[int, int, int],
                 classes: tuple[str, ...] = (), georef: dict | None = None, preview=None):
        self.outputs, self.image, self.shape, self.classes, self.georef = outputs, image, shape, classes, georef
        self.preview = preview
        self._parts: list[Detections] = []
        self._stack = ExitStack()
        self._stream = None

    def __enter__(self) -> "DetectionWriter":
        stream_path = self.outputs.jsonl or (self.outputs.path if self.outputs.path.suffix == ".jsonl" else None)
        self._temps = {p: self._stack.enter_context(atomic_file(p)) for p in self.outputs.paths()}
        if stream_path is not None:
            self._stream = self._stack.enter_context(open(self._temps[stream_path], "w"))
        return self

    def __call__(self, det: Detections) -> None:
        if self.outputs.path.suffix.lower() != ".jsonl" or self.outputs.preview is not None:  # a final file needs them
            self._parts.append(det)
        if self._stream is not None:
            for b, s, c in zip(det.boxes, det.scores, det.classes):
                self._stream.write(json.dumps(_record(b, s, int(c), self.classes)) + "\n")
            self._stream.flush()

    @property
    def detections(self) -> Detections:
        return Detections.concat(self._parts)

    def __exit__(self, *exc) -> None:
        try:
            if exc[0] is None:
                if self._stream is not None:
                    self._stream.close()
                self._finish()
        finally:
            self._stack.__exit__(*exc)

    def _finish(self) -> None:
        suffix = self.outputs.path.suffix.lower()
        det = self.detections
        if suffix == ".json":
            data = coco_dict(det, self.image.name, self.shape, self.classes)
        elif suffix == ".geojson":
            data = geojson_dict(det, self.georef, self.classes)
        else:
            data = None
        if suffix == ".gpkg":
            from edgekit.detect.geopackage import write_geopackage

            write_geopackage(self._temps[self.outputs.path], det, self.georef, self.classes)
        if data is not None:
            self._temps[self.outputs.path].write_text(json.dumps(data))
        if self.outputs.preview is not None and self.preview is not None:
            draw_preview(self.preview, det, self._temps[self.outputs.preview], self.classes)


def draw_preview(preview, det: Detections, path: Path, classes: tuple[str, ...] = ()) -> None:
    """The downsampled image of a :class:`edgekit.tiling.preview.Preview` with the boxes drawn in
    their class's colour and a legend of the classes found beside it, as PNG."""
    from PIL import Image, ImageDraw

    from edgekit.tiling.preview import class_colour, save_png

    im = Image.fromarray(preview.image)
    draw = ImageDraw.Draw(im)
    for b, c in zip(det.boxes / preview.step, det.classes):
        draw.rectangle([float(v) for v in b], outline=class_colour(c), width=1)
    save_png(path, np.asarray(im), det.classes, classes)


def coco_dict(det: Detections, file_name: str, shape: tuple, classes: tuple[str, ...]) -> dict:
    """COCO JSON of one image: images, categories (ids from 1: the model's classes, named), annotations
    with scores, bbox x, y, w, h."""
    names = class_names(classes, int(det.classes.max()) + 1 if len(det) else 1)
    annotations = []
    for k, (b, s, c) in enumerate(zip(det.boxes, det.scores, det.classes), start=1):
        x, y, w, h = float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])
        annotations.append({"id": k, "image_id": 1, "category_id": int(c) + 1, "bbox": [round(v, 2) for v in (x, y, w, h)],
                            "area": round(w * h, 2), "score": round(float(s), 5), "iscrowd": 0})
    return {"images": [{"id": 1, "file_name": file_name, "height": int(shape[0]), "width": int(shape[1])}],
            "categories": [{"id": i + 1, "name": n} for i, n in enumerate(names)],
            "annotations": annotations}


def lonlat_corners(boxes: np.ndarray, georef: dict) -> np.ndarray:
    """(K, 5, 2) closed rings of WGS84 lon/lat per pixel box, counter-clockwise (RFC 7946)."""
    from pyproj import Transformer

    from edgekit.detect.geopackage import map_rings

    rings = map_rings(boxes, georef["transform"])  # top-left, bottom-left, bottom-right, top-right, back
    xs, ys = rings[..., 0], rings[..., 1]
    crs = georef["crs"]
    to_wgs84 = Transformer.from_crs(crs.to_wkt() if hasattr(crs, "to_wkt") else crs, "EPSG:4326", always_xy=True)
    lon, lat = to_wgs84.transform(xs, ys)
    return np.stack([lon, lat], -1)


def geojson_dict(det: Detections, georef: dict, classes: tuple[str, ...]) -> dict:
    """A GeoJSON FeatureCollection of box polygons in WGS84, with score, class id and name, and pixel box."""
    rings = lonlat_corners(det.boxes, georef) if len(det) else np.zeros((0, 5, 2))
    features = [{"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [ring.round(9).tolist()]},
                 "properties": _record(b, s, int(c), classes)}
                for ring, b, s, c in zip(rings, det.boxes, det.scores, det.classes)]
    return {"type": "FeatureCollection", "features": features}
