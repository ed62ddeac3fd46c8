"""Class probabilities for arrays of digits or image files, preprocessed the MNIST way."""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from numpy.typing import ArrayLike

from .model import CNN


def preprocess_image(
    image: np.ndarray | str | os.PathLike, steps: bool = False
) -> np.ndarray | tuple[np.ndarray, dict[str, np.ndarray]]:
    """Turn any grey or colour image into a 28x28 float digit in [0, 1], the way MNIST was made.

    Grayscale; light background is inverted to a dark one; the digit's bounding box is scaled
    so its longer side is 20 pixels; it is placed in 28x28 so its centre of mass is the centre.
    With `steps`, also return a dict of the intermediate images.
    """
    from PIL import Image, UnidentifiedImageError

    if isinstance(image, (str, os.PathLike)):
        try:
            with Image.open(image) as im:
                grey = np.asarray(im.convert("L"), dtype=np.float32) / 255.0
        except FileNotFoundError:
            raise FileNotFoundError(f"{image}: no such image file") from None
        except (UnidentifiedImageError, OSError) as err:
            raise ValueError(
                f"{image}: not a readable image (PNG or JPEG expected): {err}"
            ) from None
    else:
        grey = np.asarray(image, dtype=np.float32)
        if grey.ndim == 3 and grey.shape[-1] in (3, 4):
            grey = grey[..., :3] @ np.array([0.299, 0.587, 0.114], np.float32)
        if grey.ndim != 2:
            raise ValueError(
                f"an image must be 2-D (H, W) or (H, W, 3|4), got shape {grey.shape}"
            )
        if np.asarray(image).dtype == np.uint8 or grey.max(initial=0) > 1.0:
            grey = grey / 255.0
    if not np.all(np.isfinite(grey)):
        raise ValueError("the image contains NaN or infinite values")
    out = {"grey": grey}
    # MNIST digits are light on dark: invert images whose border is mostly light.
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    if np.median(border) > 0.5:
        grey = 1.0 - grey
    out["inverted"] = grey
    rows, cols = np.nonzero(grey > 0.1)
    if len(rows) == 0:
        raise ValueError("the image is blank: no digit found")
    crop = grey[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    out["cropped"] = crop
    h, w = crop.shape
    scale = 20.0 / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = np.asarray(
        Image.fromarray(crop).resize(size, Image.LANCZOS), dtype=np.float32
    )
    small = np.clip(small, 0.0, 1.0)
    out["scaled"] = small
    # Place it in 28x28 with its centre of mass at the centre (MNIST's recipe).
    canvas = np.zeros((28, 28), np.float32)
    total = small.sum()
    ys, xs = np.indices(small.shape)
    cy, cx = (ys * small).sum() / total, (xs * small).sum() / total
    top = int(np.clip(round(14 - cy), 0, 28 - small.shape[0]))
    left = int(np.clip(round(14 - cx), 0, 28 - small.shape[1]))
    canvas[top : top + small.shape[0], left : left + small.shape[1]] = small
    out["centred"] = canvas
    return (canvas, out) if steps else canvas


@nnx.jit
def _probabilities(model: CNN, x: jax.Array) -> jax.Array:
    return jax.nn.softmax(model(x), axis=-1)


def predict(model: CNN, images: ArrayLike) -> np.ndarray:
    """Class probabilities: (10,) for one image, (N, 10) for a batch or a list of files.

    `images`: an array (28, 28) or (N, 28, 28), uint8 or float in [0, 1]; or an image file path;
    or a list of paths. Files are preprocessed with `preprocess_image`.
    """
    single = isinstance(images, (str, os.PathLike))
    if single or (
        isinstance(images, (list, tuple))
        and images
        and all(isinstance(i, (str, os.PathLike)) for i in images)
    ):
        paths = [images] if single else list(images)
        x = np.stack([preprocess_image(p) for p in paths])
    else:
        arr = np.asarray(images)
        if arr.dtype == object or not (
            np.issubdtype(arr.dtype, np.number) or arr.dtype == bool
        ):
            raise ValueError(
                f"images must be numeric arrays or image file paths, got dtype {arr.dtype}"
            )
        single = arr.ndim == 2
        if arr.shape[-2:] != (28, 28) or arr.ndim not in (2, 3):
            raise ValueError(
                f"images must have shape (28, 28) or (N, 28, 28), got {arr.shape}; "
                "use preprocess_image() for other sizes"
            )
        if arr.dtype == np.uint8:
            x = arr.astype(np.float32) / 255.0
        else:
            x = arr.astype(np.float32)
            if not np.all(np.isfinite(x)):
                raise ValueError("images contain NaN or infinite values")
            if x.min(initial=0) < 0 or x.max(initial=0) > 1:
                raise ValueError(
                    f"float images must be in [0, 1], got values in "
                    f"[{x.min():.3g}, {x.max():.3g}]; pass uint8 for 0-255 pixels"
                )
        x = x.reshape(-1, 28, 28)
    model.eval()
    probs = np.asarray(_probabilities(model, jnp.asarray(x)[..., None]))
    return probs[0] if single else probs
