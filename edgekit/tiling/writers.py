"""Writers that take an output's rows in order and write them as they come.

Tiled (Big)TIFF through tifffile, GeoTIFF (CRS and transform kept) through rasterio, PNG through
Pillow. Each is a context manager: a clean exit finishes the file, an exception abandons it.

A GeoTIFF source's georeferencing reaches every ``.tif`` output: through rasterio where it is
installed, else (and for float16, which GDAL cannot write) as the source's own GeoTIFF tags
written by tifffile (``georef["tifftags"]``: model pixel scale, tiepoints or transformation,
geokeys and their double and ASCII parameters), so an output is never silently un-georeferenced.
"""
from __future__ import annotations

__all__ = ["RowWriter", "open_writer", "WRITE_SUFFIXES", "PNG_MAX_PIXELS"]

import queue
import threading
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from edgekit.errors import InputError

WRITE_SUFFIXES = (".tif", ".tiff", ".png")
PNG_MAX_PIXELS = 1 << 28  # PNG is written whole by Pillow: keep it to images that fit easily


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


class RowWriter(ABC):
    """Takes an output's rows in order, top to bottom, and writes them as they come.

    A context manager: leaving it normally finishes the file; leaving it on an exception
    (Ctrl-C included) abandons it (the caller's temporary file is then removed).
    """

    def __init__(self, path: Path, height: int, width: int, bands: int, dtype, nodata: float | None = None):
        self.path, self.height, self.width, self.bands = Path(path), height, width, bands
        self.dtype, self.nodata = np.dtype(dtype), nodata
        self.rows_written = 0

    def __enter__(self) -> "RowWriter":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def write(self, rows: np.ndarray) -> None:
        """Append ``rows``: (h, width) or (h, width, bands)."""
        rows = rows.reshape(rows.shape[0], self.width, self.bands).astype(self.dtype, copy=False)
        if self.rows_written + rows.shape[0] > self.height:
            raise ValueError(f"{self.path.name}: more than {self.height} rows written")
        self._write(rows)
        self.rows_written += rows.shape[0]

    def close(self) -> None:
        if self.rows_written != self.height:
            raise ValueError(f"{self.path.name}: {self.rows_written} of {self.height} rows written")
        self._close()

    @abstractmethod
    def _write(self, rows: np.ndarray) -> None: ...

    @abstractmethod
    def _close(self) -> None: ...

    def abort(self) -> None:
        """Stop without finishing; the file is left for the caller to delete."""


class _Abort(Exception):
    pass


class TiffRowWriter(RowWriter):
    """Tiled, deflate-compressed (Big)TIFF through tifffile, fed one block row at a time.

    tifffile pulls tiles from an iterator; a thread runs that pull so rows can be pushed as they
    are finished. Memory: three block rows (``block`` x width) at most, whatever the height.
    """

    block = 128

    def __init__(self, path: Path, height: int, width: int, bands: int, dtype, nodata: float | None = None,
                 tags: tuple = ()):
        super().__init__(path, height, width, bands, dtype, nodata)
        self._tags = list(tags)  # extra TIFF tags, e.g. a GeoTIFF source's georeferencing tags
        self._padded_w = -(-width // self.block) * self.block
        self._filling: np.ndarray | None = None
        self._filled = 0
        self._queue: queue.Queue = queue.Queue(maxsize=1)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="tiff-writer", daemon=True)
        self._thread.start()

    def _tiles(self):
        b = self.block
        while True:
            item = self._queue.get()
            if item is None:
                return
            if item is _Abort:
                raise _Abort()
            for c in range(0, self._padded_w, b):
                tile = item[:, c:c + b]
                yield tile[..., 0] if self.bands == 1 else tile

    def _run(self) -> None:
        import tifffile

        size = self.height * self.width * self.bands * self.dtype.itemsize
        extra = self._tags + ([(42113, "s", 0, f"{self.nodata:g}", True)] if self.nodata is not None else [])
        layout = {"shape": (self.height, self.width)}
        if self.bands > 1:
            layout = {"shape": (self.height, self.width, self.bands), "planarconfig": "contig"}
        try:
            tifffile.imwrite(
                self.path, data=self._tiles(), dtype=self.dtype, tile=(self.block, self.block),
                photometric="minisblack", **layout,
                compression="zlib", compressionargs={"level": 1}, bigtiff=size > 2**31 - 2**25,
                extratags=extra, metadata=None, maxworkers=1,
            )
        except _Abort:
            return
        except BaseException as exc:  # handed to the producer thread in _push / _close
            self._error = exc
            while True:  # drain until the producer's last word, so it never blocks
                item = self._queue.get()
                if item is None or item is _Abort:
                    return

    def _push(self, item) -> None:
        while self._thread.is_alive():
            if self._error is not None and item is not _Abort:
                self._raise()
            try:
                self._queue.put(item, timeout=0.2)
                return
            except queue.Full:
                continue
        if self._error is not None and item is not _Abort:
            self._raise()

    def _raise(self) -> None:
        err = self._error
        if isinstance(err, OSError):
            raise InputError(f"cannot write {self.path.name}: {_first_line(err)}") from None
        raise RuntimeError(f"TIFF writer failed: {err!r}") from err

    def _write(self, rows: np.ndarray) -> None:
        done = 0
        while done < rows.shape[0]:
            if self._filling is None:
                self._filling = np.zeros((self.block, self._padded_w, self.bands), self.dtype)
                self._filled = 0
            n = min(self.block - self._filled, rows.shape[0] - done)
            self._filling[self._filled:self._filled + n, :self.width] = rows[done:done + n]
            self._filled += n
            done += n
            if self._filled == self.block:
                self._push(self._filling)
                self._filling = None

    def _close(self) -> None:
        if self._filling is not None:
            self._push(self._filling)  # the last block row, zero-padded below the image
            self._filling = None
        self._push(None)
        self._thread.join()
        if self._error is not None:
            self._raise()

    def abort(self) -> None:
        self._push(_Abort)
        self._thread.join(timeout=10)


class GeoTiffRowWriter(RowWriter):
    """Tiled GeoTIFF through rasterio with the source's CRS and transform; GDAL's cache kept small."""

    def __init__(self, path: Path, height: int, width: int, bands: int, dtype, georef: dict, nodata: float | None = None):
        import rasterio

        super().__init__(path, height, width, bands, dtype, nodata)
        self._env = rasterio.Env(GDAL_CACHEMAX=64)
        self._env.__enter__()
        try:
            self._ds = rasterio.open(
                self.path, "w", driver="GTiff", height=height, width=width, count=bands, dtype=self.dtype.name,
                crs=georef.get("crs"), transform=georef.get("transform"), nodata=nodata, tiled=True,
                blockxsize=256, blockysize=256, compress="deflate", BIGTIFF="IF_SAFER",
            )
        except Exception as exc:
            self._env.__exit__(None, None, None)
            raise InputError(f"cannot write {self.path.name}: {_first_line(exc)}") from None

    def _write(self, rows: np.ndarray) -> None:
        from rasterio.windows import Window as RioWindow

        window = RioWindow(0, self.rows_written, self.width, rows.shape[0])
        self._ds.write(np.ascontiguousarray(rows.transpose(2, 0, 1)), window=window)

    def _close(self) -> None:
        self._ds.close()
        self._env.__exit__(None, None, None)

    def abort(self) -> None:
        self._ds.close()
        self._env.__exit__(None, None, None)


class PngRowWriter(RowWriter):
    """PNG through Pillow. Pillow encodes a whole image, so rows wait in a memory-mapped scratch file."""

    def __init__(self, path: Path, height: int, width: int, bands: int, dtype, nodata: float | None = None):
        super().__init__(path, height, width, bands, dtype, nodata)
        if height * width > PNG_MAX_PIXELS:
            raise InputError(
                f"{self.path.name}: PNG output is limited to {PNG_MAX_PIXELS >> 20} Mpx "
                f"({height}x{width} asked); write a tiled .tif instead"
            )
        if self.dtype.name not in ("uint8", "uint16") or bands not in (1, 3, 4):
            raise InputError(f"{self.path.name}: PNG holds 1, 3 or 4 bands of uint8/uint16; use .tif")
        self._scratch = self.path.with_name(f".{self.path.name}.rows.npy")
        self._rows = np.lib.format.open_memmap(self._scratch, "w+", self.dtype, (height, width, bands))

    def _write(self, rows: np.ndarray) -> None:
        self._rows[self.rows_written:self.rows_written + rows.shape[0]] = rows

    def _close(self) -> None:
        from PIL import Image

        try:
            pixels = np.asarray(self._rows)
            Image.fromarray(pixels[..., 0] if self.bands == 1 else pixels).save(self.path, format="PNG")
        finally:
            self.abort()

    def abort(self) -> None:
        self._rows = None
        self._scratch.unlink(missing_ok=True)


def open_writer(path: Path, final_suffix: str, height: int, width: int, bands: int, dtype,
                georef: dict | None = None, nodata: float | None = None) -> RowWriter:
    """A row writer for ``path`` in the format ``final_suffix`` names (``.tif``/``.tiff``/``.png``).

    A georeferenced ``.tif`` is written with rasterio (CRS and transform kept), others with tifffile;
    float16 (which GDAL cannot write), and every georeferenced ``.tif`` where rasterio is not
    installed, with tifffile, carrying the source's GeoTIFF tags over.
    """
    suffix = final_suffix.lower()
    if suffix not in WRITE_SUFFIXES:
        raise InputError(f"cannot write {suffix or 'files without a suffix'}; use one of {', '.join(WRITE_SUFFIXES)}")
    if suffix == ".png":
        return PngRowWriter(path, height, width, bands, dtype, nodata)
    if georef is not None and np.dtype(dtype) != np.float16:  # GDAL has no float16
        try:
            return GeoTiffRowWriter(path, height, width, bands, dtype, georef, nodata)
        except ImportError:
            pass
    return TiffRowWriter(path, height, width, bands, dtype, nodata, (georef or {}).get("tifftags", ()))
