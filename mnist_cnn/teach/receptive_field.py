"""Receptive field (感受野): how much of the input image one unit of a layer can see.

`receptive_field` applies the layer-by-layer arithmetic; `unit_input_gradient` and
`nonzero_extent` check it on a real `mnist_cnn.CNN`: the gradient of one unit with
respect to the input is non-zero exactly on the pixels that unit sees.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from numpy.typing import ArrayLike

from mnist_cnn.config import Config
from mnist_cnn.model import ACTIVATION_FNS, pool2x2


class Layer(NamedTuple):
    """A sliding-window layer: name, window size and stride (the same on both axes)."""

    name: str
    kernel: int
    stride: int


class FieldSize(NamedTuple):
    """The receptive field after a layer: its side in input pixels, and the jump.

    `jump` is how many input pixels apart two neighbouring units of this layer look.
    """

    name: str
    kernel: int
    stride: int
    size: int
    jump: int


def receptive_field(
    layers: list[Layer] | list[tuple[str, int, int]],
) -> list[FieldSize]:
    """Receptive-field side and jump after each layer, from the input onwards.

    Start with one pixel (size 1, jump 1). A window of k units, each `jump` pixels from
    the next, adds (k - 1) * jump pixels: size += (k - 1) * jump; then jump *= stride.
    Padding moves the field but does not change its size.
    """
    size, jump, out = 1, 1, []
    for layer in layers:
        name, k, s = Layer(*layer)
        if int(k) != k or int(s) != s or k < 1 or s < 1:
            raise ValueError(
                f"layer {name!r}: kernel and stride must be integers >= 1, got {k}, {s}"
            )
        size += (k - 1) * jump
        jump *= s
        out.append(FieldSize(name, int(k), int(s), size, jump))
    return out


def layers_from_config(config: Config | None = None) -> list[Layer]:
    """Sliding-window layers of `mnist_cnn.CNN(config)` (default: Config()) in order."""
    config = Config() if config is None else config
    layers = []  # each block: a stride-1 convolution, then 2x2 pooling with stride 2
    for i in range(1, len(config.conv_channels) + 1):
        layers.append(Layer(f"conv{i}", config.kernel_size, 1))
        layers.append(Layer(f"pool{i}", 2, 2))
    return layers


def _forward_to(model, x: jax.Array, layer: str, linear: bool) -> jax.Array:
    """The model's array `layer` (conv{i}, act{i} or pool{i}) for x (N, 28, 28, 1)."""
    config = model.config
    act = (lambda z: z) if linear else ACTIVATION_FNS[config.activation]
    pool = "avg" if linear else config.pool
    h = (x - model.mean[...]) / model.std[...]
    for i, conv in enumerate(model.convs, start=1):
        h = conv(h)
        if layer == f"conv{i}":
            return h
        h = act(h)
        if layer == f"act{i}":
            return h
        h = pool2x2(h, pool)
        if layer == f"pool{i}":
            return h
    names = [f"{k}{i}" for i in range(1, len(model.convs) + 1) for k in ("conv", "act")]
    names += [f"pool{i}" for i in range(1, len(model.convs) + 1)]
    raise ValueError(f"layer must be one of {sorted(names)}, got {layer!r}")


def unit_input_gradient(
    model,
    image: ArrayLike,
    layer: str,
    row: int,
    col: int,
    linear: bool = True,
) -> np.ndarray:
    """d(unit (row, col) of `layer`, summed over channels) / d(input image): (28, 28).

    image: (28, 28) pixels in [0, 1]. With `linear=True` the activation is replaced by
    the identity and max pooling by average pooling, so no path is cut by a ReLU that
    happens to be off: the non-zero region is then the whole receptive field.
    """
    img = jnp.asarray(image, jnp.float32)
    if img.shape != (28, 28):
        raise ValueError(f"image must be one 28x28 image, got shape {img.shape}")
    out_shape = jax.eval_shape(
        lambda v: _forward_to(model, v, layer, linear), img[None, :, :, None]
    ).shape
    if not (0 <= row < out_shape[1] and 0 <= col < out_shape[2]):
        raise ValueError(
            f"({row}, {col}) is outside {layer}, which is {out_shape[1]}x{out_shape[2]}"
        )

    def unit(v: jax.Array) -> jax.Array:
        return _forward_to(model, v[None, :, :, None], layer, linear)[0, row, col].sum()

    return np.asarray(jax.grad(unit)(img))


def nonzero_extent(grad: ArrayLike) -> tuple[int, int, int, int]:
    """Bounding box (top, left, height, width) of the non-zeros of a 2-D array."""
    g = np.asarray(grad)
    if g.ndim != 2:
        raise ValueError(f"grad must be a 2-D array, got shape {g.shape}")
    rows = np.flatnonzero(np.any(g != 0, axis=1))
    cols = np.flatnonzero(np.any(g != 0, axis=0))
    if rows.size == 0:
        raise ValueError("grad is zero everywhere: no region to measure")
    return (
        int(rows[0]),
        int(cols[0]),
        int(rows[-1] - rows[0] + 1),
        int(cols[-1] - cols[0] + 1),
    )
