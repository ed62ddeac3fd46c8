"""Pixel conventions: uint8 -> float in [0, 1], grey from RGB, batches for the model."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from numpy.typing import ArrayLike

# ITU-R BT.601 luma weights (what PIL's convert("L") uses): green looks brightest to us.
LUMA = (0.299, 0.587, 0.114)


def to_unit_float(x: ArrayLike) -> np.ndarray:
    """uint8 pixels -> float32 in [0, 1]; float input is kept as it is, as float32."""
    x = np.asarray(x)
    if x.dtype == np.uint8:
        return x.astype(np.float32) / np.float32(255.0)
    return x.astype(np.float32)


def to_grey(rgb: ArrayLike) -> np.ndarray:
    """(..., 3) or (..., 4) RGB(A) -> (...) grey as float32 with the `LUMA` weights."""
    rgb = np.asarray(rgb)
    if rgb.ndim < 1 or rgb.shape[-1] not in (3, 4):
        raise ValueError(
            f"to_grey needs RGB or RGBA pixels in the last axis, got shape {rgb.shape}"
        )
    # Alpha, if any, is ignored: the weights apply to the colour channels.
    return rgb[..., :3].astype(np.float32) @ np.asarray(LUMA, np.float32)


def as_batch(x: ArrayLike) -> jax.Array:
    """(N, 28, 28) or (N, 28, 28, 1), uint8 or float -> float32 (N, 28, 28, 1)."""
    x = np.asarray(x) if not isinstance(x, jax.Array) else x
    shape = tuple(x.shape)
    if not (
        (len(shape) == 3 and shape[1:] == (28, 28))
        or (len(shape) == 4 and shape[1:] == (28, 28, 1))
    ):
        raise ValueError(
            f"expected a batch of 28x28 grey images, shape (N, 28, 28) or "
            f"(N, 28, 28, 1), got {shape}; add a batch axis with x[None] for one image"
        )
    if isinstance(x, jax.Array):
        x = x.astype(jnp.float32) / 255.0 if x.dtype == jnp.uint8 else x
        x = x.astype(jnp.float32)
    else:
        # Host arrays are converted by NumPy before the copy to the device: the same
        # numbers as `to_unit_float`, and no small programs to compile on a cold start.
        x = to_unit_float(x)
        return jnp.asarray(x[..., None] if x.ndim == 3 else x)
    return x[..., None] if x.ndim == 3 else x
