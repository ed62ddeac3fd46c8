"""The CNN: (conv -> [batch norm] -> activation -> pool) blocks, dense, logits."""

from __future__ import annotations

import functools
import itertools
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from numpy.typing import ArrayLike

from .pixels import as_batch

if TYPE_CHECKING:  # config.py imports feature_side from here: no import at run time
    from .config import Config

ACTIVATION_FNS = {
    "relu": jax.nn.relu,
    "sigmoid": jax.nn.sigmoid,
    "tanh": jnp.tanh,
    "gelu": jax.nn.gelu,
    "leaky_relu": jax.nn.leaky_relu,
}

# Running averages of batch norm: PyTorch's 0.9 rather than Flax's 0.99, so that the
# statistics settle within the few dozen steps of a 2,000-image run.
BATCH_NORM_MOMENTUM = 0.9


def pool2x2(x: jax.Array, kind: str) -> jax.Array:
    """2x2 pooling with stride 2 on NHWC input, as a reshape (odd edges are dropped).

    The reshape form is much cheaper than a windowed reduction on CPU: the gradient of
    `max` over a reshaped axis is a plain mask, not XLA's slow select-and-scatter.
    """
    n, h, w, c = x.shape
    x = x[:, : h // 2 * 2, : w // 2 * 2].reshape(n, h // 2, 2, w // 2, 2, c)
    return x.max(axis=(2, 4)) if kind == "max" else x.mean(axis=(2, 4))


def feature_side(config: Config) -> int:
    """Height (= width) of the feature maps after the last pool: 28 halved per block.

    `pool2x2` drops an odd last row, hence the floor division (28 -> 14 -> 7 -> 3 -> 1).
    """
    side = 28
    for _ in config.conv_channels:
        side //= 2
    return side


def layer_names(config: Config) -> list[str]:
    """Names of the arrays `CNN.features` returns, in forward order."""
    names = ["input"]
    for i in range(1, len(config.conv_channels) + 1):
        names.append(f"conv{i}")
        if config.batch_norm:
            names.append(f"norm{i}")
        names += [f"act{i}", f"pool{i}"]
    names.append("flatten")
    names += [f"dense{i}" for i in range(1, len(config.dense) + 1)]
    names.append("logits")
    return names


class Stats(nnx.Variable):
    """Input statistics of the training set: saved with the model, never trained."""


class CNN(nnx.Module):
    """A small CNN for 28x28 grey images; pixels uint8 or float in [0, 1]."""

    def __init__(self, config: Config, rngs: nnx.Rngs):
        self.config = config
        k = config.kernel_size
        widths = (1, *config.conv_channels)
        self.convs = nnx.List(
            [
                nnx.Conv(a, b, (k, k), padding="SAME", rngs=rngs)
                for a, b in itertools.pairwise(widths)
            ]
        )
        # Batch norm after each conv, before the activation (Ioffe & Szegedy's
        # placement).
        self.norms = nnx.List(
            [
                nnx.BatchNorm(b, momentum=BATCH_NORM_MOMENTUM, rngs=rngs)
                for b in widths[1:]
            ]
            if config.batch_norm
            else []
        )
        side = feature_side(config)
        sizes = (side * side * widths[-1], *config.dense)
        self.dense = nnx.List(
            [nnx.Linear(a, b, rngs=rngs) for a, b in itertools.pairwise(sizes)]
        )
        self.dropout = nnx.Dropout(config.dropout, rngs=rngs)
        self.head = nnx.Linear(sizes[-1], 10, rngs=rngs)
        # Mean subtraction and scaling with training-set statistics (see `init_model`).
        self.mean = Stats(jnp.zeros(()))
        self.std = Stats(jnp.ones(()))

    def set_input_stats(self, mean: float, std: float) -> None:
        """Store the training-set pixel mean and standard deviation used on inputs."""
        self.mean[...] = jnp.asarray(mean, jnp.float32)
        self.std[...] = jnp.asarray(std, jnp.float32)

    def features(self, x: ArrayLike) -> dict[str, jax.Array]:
        """Every intermediate array, keyed and ordered by `layer_names(config)`."""
        act = ACTIVATION_FNS[self.config.activation]
        x = (as_batch(x) - self.mean[...]) / self.std[...]  # (N, 28, 28, 1)
        features = {"input": x}
        for i, conv in enumerate(self.convs, start=1):
            x = conv(x)
            features[f"conv{i}"] = x
            if self.config.batch_norm:
                x = self.norms[i - 1](x)
                features[f"norm{i}"] = x
            x = act(x)
            features[f"act{i}"] = x
            x = pool2x2(x, self.config.pool)
            features[f"pool{i}"] = x
        x = x.reshape(x.shape[0], -1)  # (N, side * side * channels), HWC order
        features["flatten"] = x
        for i, layer in enumerate(self.dense, start=1):
            x = self.dropout(act(layer(x)))
            features[f"dense{i}"] = x
        features["logits"] = self.head(x)  # (N, 10)
        return features

    def __call__(self, x: ArrayLike) -> jax.Array:
        """Logits (N, 10) for images (N, 28, 28) or (N, 28, 28, 1)."""
        return self.features(x)["logits"]


@functools.partial(nnx.jit, static_argnums=0)
def _create(config: Config, key: jax.Array, x: jax.Array) -> CNN:
    model = CNN(config, rngs=nnx.Rngs(key))
    # Input-layer preprocessing from the training images only (no peeking at the test
    # set).
    model.set_input_stats(jnp.mean(x), jnp.std(x))
    return model


def init_model(config: Config, x_train: ArrayLike) -> CNN:
    """A fresh CNN seeded by `config.seed`, inputs normalised by `x_train`'s stats."""
    # One compiled program draws every initial weight: run op by op, the dozens of
    # small operations of the initialisers each compile on first use. The seed is an
    # argument, not part of the static config, so every seed shares the program. The
    # "rbg" generator (XLA's RngBitGenerator) compiles about three times faster than the
    # default threefry for these ~200,000 weights (measured: 1.1 s against 3.3 s), a
    # large part of a cold start; its numbers are as deterministic on one platform.
    key = jax.random.key(config.seed, impl="rbg")
    model = _create(config.replace(seed=0), key, as_batch(x_train))
    model.config = config
    return model


def param_counts(model: CNN) -> dict[str, int]:
    """Number of trainable parameters in each layer, in forward order."""
    counts = {}
    for i, conv in enumerate(model.convs, start=1):
        counts[f"conv{i}"] = conv.kernel.size + conv.bias.size
        if model.config.batch_norm:
            norm = model.norms[i - 1]
            counts[f"norm{i}"] = norm.scale.size + norm.bias.size
    for i, layer in enumerate(model.dense, start=1):
        counts[f"dense{i}"] = layer.kernel.size + layer.bias.size
    counts["head"] = model.head.kernel.size + model.head.bias.size
    return counts


def layer_shapes(model: CNN, batch: int = 1) -> dict[str, tuple[int, ...]]:
    """Shape of every intermediate array for `batch` images, in forward order."""
    x = jax.ShapeDtypeStruct((batch, 28, 28, 1), jnp.float32)
    shapes = nnx.eval_shape(lambda m, x: m.features(x), model, x)
    return {name: tuple(shapes[name].shape) for name in layer_names(model.config)}


def summary(model: CNN) -> str:
    """A table of layers, output shapes and parameter counts."""
    counts = param_counts(model)
    rows = [f"{'layer':<10}{'output shape':>20}{'parameters':>12}"]
    for name, shape in layer_shapes(model).items():
        n = counts.get("head" if name == "logits" else name, 0)
        rows.append(f"{name:<10}{shape!s:>20}{n:>12,}")
    rows.append(f"{'total':<10}{'':>20}{sum(counts.values()):>12,}")
    return "\n".join(rows)


def count_total(model: CNN) -> int:
    """Total number of trainable parameters."""
    return int(sum(np.size(p) for p in jax.tree.leaves(nnx.state(model, nnx.Param))))
