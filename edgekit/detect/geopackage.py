"""Boxes as a GeoPackage (OGC 12-128r18, version 1.3) in the raster's own CRS, with the standard
library's sqlite3: no GDAL, fiona or pyogrio needed to write one (GIS tools read it).

One feature table, ``detections``: a polygon per box (its pixel corners through the raster's
affine transform), its score, class index (``class_id``) and name (``class``: the model's, else
``class_<id>``, :func:`edgekit.artifact.classes.class_name`), and the pixel box. The CRS is registered by
its EPSG code where it has one, else under a private id with the raster's WKT.
"""
from __future__ import annotations

__all__ = ["write_geopackage", "map_rings"]

import sqlite3
import struct
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from edgekit.artifact.classes import class_name
from edgekit.runtime.decode import Detections

TABLE = "detections"
_APPLICATION_ID = 0x47504B47  # "GPKG"
_USER_VERSION = 10300  # 1.3.0
_PRIVATE_SRS = 100000

_SCHEMA = """
CREATE TABLE gpkg_spatial_ref_sys (srs_name TEXT NOT NULL, srs_id INTEGER PRIMARY KEY, organization TEXT NOT NULL,
  organization_coordsys_id INTEGER NOT NULL, definition TEXT NOT NULL, description TEXT);
CREATE TABLE gpkg_contents (table_name TEXT NOT NULL PRIMARY KEY, data_type TEXT NOT NULL, identifier TEXT UNIQUE,
  description TEXT DEFAULT '', last_change DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
  min_x DOUBLE, min_y DOUBLE, max_x DOUBLE, max_y DOUBLE, srs_id INTEGER,
  CONSTRAINT fk_gc_r_srs_id FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys(srs_id));
CREATE TABLE gpkg_geometry_columns (table_name TEXT NOT NULL, column_name TEXT NOT NULL,
  geometry_type_name TEXT NOT NULL, srs_id INTEGER NOT NULL, z TINYINT NOT NULL, m TINYINT NOT NULL,
  CONSTRAINT pk_geom_cols PRIMARY KEY (table_name, column_name),
  CONSTRAINT fk_gc_tn FOREIGN KEY (table_name) REFERENCES gpkg_contents(table_name),
  CONSTRAINT fk_gc_srs FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys (srs_id));
"""


def _srs(crs) -> tuple[int, str, int, str, str]:
    """(srs_id, organization, its code, name, WKT definition) of a rasterio CRS."""
    wkt = crs.to_wkt() if hasattr(crs, "to_wkt") else str(crs)
    epsg = crs.to_epsg() if hasattr(crs, "to_epsg") else None
    if epsg:
        return int(epsg), "EPSG", int(epsg), f"EPSG:{epsg}", wkt
    return _PRIVATE_SRS, "NONE", _PRIVATE_SRS, "raster CRS", wkt


def _geometry(ring: np.ndarray, srs_id: int) -> bytes:
    """GeoPackageBinary of a polygon: header (magic, version, flags: little endian with an xy
    envelope), srs id, envelope, then little-endian WKB."""
    xs, ys = ring[:, 0], ring[:, 1]
    header = b"GP" + struct.pack("<BBi4d", 0, 0b00000011, srs_id, xs.min(), xs.max(), ys.min(), ys.max())
    wkb = struct.pack("<BIII", 1, 3, 1, len(ring)) + ring.astype("<f8").tobytes()
    return header + wkb


def map_rings(boxes: np.ndarray, transform) -> np.ndarray:
    """(K, 5, 2) closed rings of each pixel box through an affine transform, counter-clockwise on the map."""
    x1, y1, x2, y2 = (boxes[:, i].astype(np.float64) for i in range(4))
    cols = np.stack([x1, x1, x2, x2, x1], 1)
    rows = np.stack([y1, y2, y2, y1, y1], 1)
    t = transform
    return np.stack([t.a * cols + t.b * rows + t.c, t.d * cols + t.e * rows + t.f], -1)


def write_geopackage(path: Path, det: Detections, georef: dict, classes: tuple[str, ...] = ()) -> None:
    """Write ``det`` (pixel boxes) into a new GeoPackage at ``path`` (an empty or absent file)."""
    srs_id, org, code, name, wkt = _srs(georef["crs"])
    rings = map_rings(det.boxes, georef["transform"]) if len(det) else np.zeros((0, 5, 2))
    con = sqlite3.connect(str(path))
    try:
        con.execute(f"PRAGMA application_id = {_APPLICATION_ID}")
        con.execute(f"PRAGMA user_version = {_USER_VERSION}")
        con.executescript(_SCHEMA)
        con.executemany("INSERT INTO gpkg_spatial_ref_sys VALUES (?, ?, ?, ?, ?, ?)", [
            ("Undefined cartesian SRS", -1, "NONE", -1, "undefined", None),
            ("Undefined geographic SRS", 0, "NONE", 0, "undefined", None),
            ("WGS 84 geodetic", 4326, "EPSG", 4326, _WGS84, None),
        ])
        if srs_id != 4326:
            con.execute("INSERT INTO gpkg_spatial_ref_sys VALUES (?, ?, ?, ?, ?, ?)", (name, srs_id, org, code, wkt, None))
        extent = (rings[..., 0].min(), rings[..., 1].min(), rings[..., 0].max(), rings[..., 1].max()) if len(det) else (None,) * 4
        now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        con.execute("INSERT INTO gpkg_contents VALUES (?, 'features', ?, ?, ?, ?, ?, ?, ?, ?)",
                    (TABLE, TABLE, "boxes found by edgekit infer", now, *extent, srs_id))
        con.execute("INSERT INTO gpkg_geometry_columns VALUES (?, 'geom', 'POLYGON', ?, 0, 0)", (TABLE, srs_id))
        con.execute(f"CREATE TABLE {TABLE} (fid INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, geom POLYGON, "
                    "score REAL, class_id INTEGER, class TEXT, x1 REAL, y1 REAL, x2 REAL, y2 REAL)")
        rows = []
        for ring, b, s, c in zip(rings, det.boxes, det.scores, det.classes):
            rows.append((_geometry(ring, srs_id), float(s), int(c), class_name(classes, c), *(round(float(v), 2) for v in b)))
        con.executemany(f"INSERT INTO {TABLE} (geom, score, class_id, class, x1, y1, x2, y2) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        rows)
        con.commit()
    finally:
        con.close()


_WGS84 = ('GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563,AUTHORITY["EPSG","7030"]],'
          'AUTHORITY["EPSG","6326"]],PRIMEM["Greenwich",0,AUTHORITY["EPSG","8901"]],UNIT["degree",0.0174532925199433,'
          'AUTHORITY["EPSG","9122"]],AXIS["Latitude",NORTH],AXIS["Longitude",EAST],AUTHORITY["EPSG","4326"]]')
