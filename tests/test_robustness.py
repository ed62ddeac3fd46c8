"""Tests of mnist_cnn.teach.robustness."""

from __future__ import annotations

import numpy as np

from mnist_cnn import evaluate
from mnist_cnn.teach import (
    robustness,
)


def test_integer_shifts_are_slicing(digits):
    x, _ = digits
    for dy, dx in ((0, 0), (2, 0), (0, -3), (4, 5), (-6, 1)):
        expected = np.zeros_like(x)
        src = x[:, max(0, -dy) : 28 - max(0, dy), max(0, -dx) : 28 - max(0, dx)]
        expected[
            :,
            max(0, dy) : max(0, dy) + src.shape[1],
            max(0, dx) : max(0, dx) + src.shape[2],
        ] = src
        np.testing.assert_array_equal(robustness.shift_images(x, dy, dx), expected)


def test_rotation_direction_and_identity(digits):
    x, _ = digits
    np.testing.assert_array_equal(robustness.rotate_images(x, 0), x)
    # np.rot90 turns from the row axis towards the column axis: anticlockwise on screen.
    np.testing.assert_array_equal(
        robustness.rotate_images(x, 90), np.rot90(x, 1, axes=(1, 2))
    )
    as_float = robustness.rotate_images(x / 255.0, 33)
    assert as_float.dtype == np.float64 and as_float.min() >= 0 and as_float.max() <= 1


def test_accuracy_under_a_transform(model, digits):
    x, y = digits
    got = robustness.accuracy_under(model, x, y, robustness.rotate_images, [0, 20])
    assert got.tolist() == [
        evaluate(model, x, y),
        evaluate(model, robustness.rotate_images(x, 20), y),
    ]
