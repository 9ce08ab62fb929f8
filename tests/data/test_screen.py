"""Screen normalization of pixel keypoints: one function for every lifting input."""

import numpy as np
import pytest

from condflow.data.screen import normalize_screen_coordinates


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_image_corners_and_centre_map_to_the_aspect_ratio_box(dtype):
    w, h = 640, 480
    px = np.array([[0.0, 0.0], [w, h], [w / 2, h / 2]], dtype=dtype)
    out = normalize_screen_coordinates(px, w, h)
    assert out.dtype == dtype and out.shape == px.shape
    np.testing.assert_allclose(out, [[-1, -h / w], [1, h / w], [0, 0]], atol=1e-6)
    back = (out + np.array([1.0, h / w])) * w / 2  # the inverse map recovers the pixels
    np.testing.assert_allclose(back, px, rtol=1e-6, atol=1e-3)


def test_square_images_match_the_synthetic_sets_former_formula_bit_for_bit():
    """The synthetic lifting set normalized with ``pixels / size * 2 - 1``; the shared
    function gives the same bits, so cached and regenerated sets agree."""
    px = np.random.default_rng(0).uniform(-50, 1050, (100, 16, 2))
    assert np.array_equal(normalize_screen_coordinates(px, 1000, 1000), px / 1000 * 2 - 1)
