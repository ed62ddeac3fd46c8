"""How accuracy holds up when digits move or turn: shifted and rotated test images."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import ArrayLike
from scipy import ndimage

from ..model import CNN
from ..pixels import to_unit_float
from ..train import evaluate
from .evaluation import check_images, check_labels


def shift_images(x: ArrayLike, dy: float, dx: float) -> np.ndarray:
    """Images moved down by `dy` and right by `dx` pixels (bilinear, zero fill); dtype
    is kept.
    """
    x = check_images(x)
    moved = ndimage.shift(
        to_unit_float(x), (0, dy, dx), order=1, mode="constant", cval=0.0
    )
    return _like(moved, x)


def rotate_images(x: ArrayLike, degrees: float) -> np.ndarray:
    """Images rotated anticlockwise by `degrees` about their centre (bilinear, zero
    fill); dtype kept.
    """
    x = check_images(x)
    # axes=(2, 1): from the column axis towards the row axis, which is anticlockwise on
    # screen because rows grow downwards.
    turned = ndimage.rotate(
        to_unit_float(x),
        degrees,
        axes=(2, 1),
        reshape=False,
        order=1,
        mode="constant",
        cval=0.0,
    )
    return _like(turned, x)


def _like(values: np.ndarray, original: np.ndarray) -> np.ndarray:
    """Float [0, 1] results back in the dtype of the input images."""
    values = np.clip(values, 0.0, 1.0)
    if original.dtype == np.uint8:
        return np.rint(values * 255).astype(np.uint8)
    return values.astype(original.dtype)


def accuracy_under(
    model: CNN,
    x: ArrayLike,
    y: ArrayLike,
    transform: Callable[[np.ndarray, float], np.ndarray],
    amounts: Sequence[float],
) -> np.ndarray:
    """Test accuracy after `transform(x, amount)` for each amount, e.g. rotate_images
    and degrees.
    """
    x = check_images(x)
    y = check_labels(y, len(x))
    return np.array([evaluate(model, transform(x, a), y) for a in amounts])
