"""Which pixels a decision rests on: input gradients (saliency) and occlusion maps."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from numpy.typing import ArrayLike

from ..model import CNN
from ..pixels import to_unit_float
from .evaluation import check_images, check_labels, probabilities


@nnx.jit
def _input_gradient(model: CNN, x: jax.Array, labels: jax.Array) -> jax.Array:
    def score(x: jax.Array) -> jax.Array:
        # Images do not interact in the model, so the gradient of the sum is each
        # image's own.
        logits = model(x)
        return jnp.take_along_axis(logits, labels[:, None], axis=1).sum()

    return jax.grad(score)(x)


def saliency(model: CNN, x: ArrayLike, labels: ArrayLike) -> np.ndarray:
    """Gradient of each image's class score (logit of `labels`) w.r.t. its pixels, (N,
    28, 28).

    Pixels are in [0, 1], so a value g means: brightening that pixel by a small d
    changes the score by about g * d. Plot its absolute value to see which pixels
    matter.
    """
    x = check_images(x)
    labels = check_labels(labels, len(x))
    model.eval()
    return np.asarray(
        _input_gradient(
            model, jnp.asarray(to_unit_float(x)), jnp.asarray(labels, jnp.int32)
        )
    )


def occlude(
    image: ArrayLike, top: int, left: int, patch: int, value: float = 0.0
) -> np.ndarray:
    """A float copy of `image` (28, 28) with a `patch` x `patch` square at (top, left)
    set to `value`.
    """
    out = to_unit_float(image).copy()
    if out.ndim != 2:
        raise ValueError(f"image must be 2-D (28, 28), got shape {out.shape}")
    out[top : top + patch, left : left + patch] = value
    return out


def occlusion_map(
    model: CNN,
    image: ArrayLike,
    label: int,
    patch: int = 6,
    stride: int = 2,
    value: float = 0.0,
) -> np.ndarray:
    """Probability of `label` with a grey square slid over the image, (n, n) for n patch
    positions.

    Cell (i, j) has the square's top-left corner at (i * stride, j * stride); low values
    mark the parts of the digit the model needs.
    """
    image = np.asarray(image)
    if image.shape != (28, 28):
        raise ValueError(f"image must have shape (28, 28), got {image.shape}")
    if not 1 <= patch <= 28 or stride < 1:
        raise ValueError(
            f"need 1 <= patch <= 28 and stride >= 1, got patch={patch}, stride={stride}"
        )
    if not 0 <= value <= 1:
        raise ValueError(f"value is a pixel intensity in [0, 1], got {value}")
    starts = range(0, 28 - patch + 1, stride)
    batch = np.stack(
        [occlude(image, top, left, patch, value) for top in starts for left in starts]
    )
    probs = probabilities(model, batch)[:, int(label)]
    return probs.reshape(len(starts), len(starts))
