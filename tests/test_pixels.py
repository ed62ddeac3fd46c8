"""Pixel conventions: one conversion to [0, 1], one luma, one batch shape."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from PIL import Image

from mnist_cnn.pixels import LUMA, as_batch, to_grey, to_unit_float


def test_to_unit_float_scales_uint8_and_keeps_floats():
    x = np.array([[0, 128, 255]], np.uint8)
    out = to_unit_float(x)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, np.array([[0, 128 / 255, 1]], np.float32))
    floats = np.array([0.25, 0.5], np.float64)
    kept = to_unit_float(floats)
    assert kept.dtype == np.float32
    np.testing.assert_array_equal(kept, floats.astype(np.float32))


def test_to_grey_matches_pil_luma():
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    pil = np.asarray(Image.fromarray(rgb).convert("L"), np.float32)
    # PIL rounds to whole grey levels.
    np.testing.assert_allclose(to_grey(rgb), pil, atol=0.51)
    assert LUMA == (0.299, 0.587, 0.114)
    rgba = np.concatenate([rgb, np.zeros((5, 7, 1), np.uint8)], axis=-1)
    np.testing.assert_array_equal(to_grey(rgba), to_grey(rgb))  # alpha ignored
    with pytest.raises(ValueError, match="RGB"):
        to_grey(np.zeros((5, 7)))


@pytest.mark.parametrize("shape", [(4, 28, 28), (4, 28, 28, 1)])
def test_as_batch_gives_float32_nhwc_on_the_device(shape):
    x = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    out = as_batch(x)
    assert isinstance(out, jax.Array)
    assert out.shape == (4, 28, 28, 1) and out.dtype == np.float32
    np.testing.assert_allclose(
        np.asarray(out), x.reshape(4, 28, 28, 1) / 255.0, rtol=1e-6
    )
    floats = as_batch(x / 255.0)
    np.testing.assert_allclose(np.asarray(floats), np.asarray(out), rtol=1e-6)


@pytest.mark.parametrize("shape", [(28, 28), (4, 28, 28, 3), (4, 27, 28), (28,)])
def test_as_batch_rejects_other_shapes_clearly(shape):
    with pytest.raises(ValueError, match=r"\(N, 28, 28\)"):
        as_batch(np.zeros(shape, np.float32))
