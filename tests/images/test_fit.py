"""A mask is cut exactly like its image: same scale decision, same crop."""
from __future__ import annotations

import numpy as np
import pytest

from edgekit.errors import ConfigError
from edgekit.images import fit_image, fit_mask


@pytest.mark.parametrize("shape, size, fit", [((40, 50), (32, 32), "crop"), ((20, 24), (32, 32), "crop"),
                                              ((40, 60), (32, 32), "resize"), ((32, 32), (32, 32), "crop")])
def test_mask_follows_its_image(shape, size, fit):
    # an image whose pixels are their own labels: the fitted image, rounded, is the fitted mask
    labels = np.arange(shape[0] * shape[1]).reshape(shape) % 7
    image = np.repeat(labels[..., None], 3, axis=2).astype(np.float32)
    fitted, mask = fit_image(image, size, fit), fit_mask(labels, size, fit)
    assert fitted.shape[:2] == mask.shape == size
    if fit == "crop" and min(shape) >= size[0]:  # no scaling: exactly the same pixels
        np.testing.assert_array_equal(fitted[..., 0], mask)
    else:  # scaled: bilinear vs nearest agree on most pixels of this blocky label image
        assert (np.abs(fitted[..., 0] - mask) < 1).mean() > 0.3


def test_crop_takes_the_centre():
    image = np.arange(40 * 50).reshape(40, 50, 1)
    np.testing.assert_array_equal(fit_image(image, (32, 32)), image[4:36, 9:41])
    with pytest.raises(ConfigError, match="crop, resize"):
        fit_image(image, (32, 32), "squash")
