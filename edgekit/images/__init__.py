"""The one pixel path: open any supported image, read windows, map bands, scale, nodata, masks, fit.

``readers`` opens PNG/JPEG, TIFF/BigTIFF, GeoTIFF and ``.npy`` for windowed reads; ``pixels``
turns raw windows into model inputs as the artifact declares (:class:`~edgekit.preprocess.Preprocess`);
``masks`` reads label masks; ``fit`` brings a whole image and its mask to an input size. No torch.
"""
from edgekit.images.fit import FITS, fit_image, fit_mask
from edgekit.images.masks import check_mask, match_masks, read_mask
from edgekit.images.pixels import PixelMap, band_index
from edgekit.images.readers import IMAGE_SUFFIXES, SUPPORTED_DTYPES, ImageSource, list_images, open_image

__all__ = [
    "FITS", "fit_image", "fit_mask", "check_mask", "match_masks", "read_mask", "PixelMap", "band_index",
    "IMAGE_SUFFIXES", "SUPPORTED_DTYPES", "ImageSource", "list_images", "open_image",
]
