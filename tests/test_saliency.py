"""Tests of mnist_cnn.teach.saliency."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from mnist_cnn import predict
from mnist_cnn.teach import (
    saliency,
)


def test_saliency_matches_finite_differences(model, digits):
    x, y = digits
    grads = saliency.saliency(model, x[:2], y[:2])
    assert grads.shape == (2, 28, 28)

    def score(image, label):
        logits = model(jnp.asarray(image, jnp.float32)[None, ..., None])
        return float(logits[0, label])

    eps = 1e-2
    rng = np.random.default_rng(3)
    for i in range(2):
        image = x[i] / 255.0
        # The pixels with the largest gradients, and a few at random.
        pixels = list(
            zip(*np.unravel_index(np.argsort(-np.abs(grads[i]).ravel())[:3], (28, 28)))
        )
        pixels += [tuple(p) for p in rng.integers(0, 28, (3, 2))]
        for r, c in pixels:
            up, down = image.copy(), image.copy()
            up[r, c] += eps
            down[r, c] -= eps
            numeric = (score(up, y[i]) - score(down, y[i])) / (2 * eps)
            assert grads[i, r, c] == pytest.approx(numeric, abs=2e-3, rel=2e-2)


def test_saliency_of_a_batch_equals_one_image_at_a_time(model, digits):
    x, y = digits
    together = saliency.saliency(model, x, y)
    for i in range(len(x)):
        np.testing.assert_allclose(
            together[i],
            saliency.saliency(model, x[i : i + 1], y[i : i + 1])[0],
            atol=1e-6,
        )


def test_occlusion_map_equals_the_model_on_occluded_images(model, digits):
    x, y = digits
    grid = saliency.occlusion_map(model, x[0], y[0], patch=8, stride=5)
    starts = range(0, 21, 5)
    assert grid.shape == (len(starts), len(starts))
    for i, top in enumerate(starts):
        for j, left in enumerate(starts):
            occluded = x[0] / 255.0
            occluded[top : top + 8, left : left + 8] = 0.0
            assert grid[i, j] == pytest.approx(
                predict(model, occluded.astype(np.float32))[y[0]], abs=1e-6
            )
    with pytest.raises(ValueError, match="patch"):
        saliency.occlusion_map(model, x[0], 0, patch=0)
