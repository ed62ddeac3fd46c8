"""The CNN: (conv -> activation -> pool) blocks, then dense layers, then 10 logits."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from .config import Config

ACTIVATION_FNS = {
    "relu": jax.nn.relu,
    "sigmoid": jax.nn.sigmoid,
    "tanh": jnp.tanh,
    "gelu": jax.nn.gelu,
    "leaky_relu": jax.nn.leaky_relu,
}


def pool2x2(x: jax.Array, kind: str) -> jax.Array:
    """2x2 pooling with stride 2 on NHWC input, as a reshape (odd edges are dropped).

    The reshape form is much cheaper than a windowed reduction on CPU: the gradient of
    `max` over a reshaped axis is a plain mask, not XLA's slow select-and-scatter.
    """
    n, h, w, c = x.shape
    x = x[:, : h // 2 * 2, : w // 2 * 2].reshape(n, h // 2, 2, w // 2, 2, c)
    return x.max(axis=(2, 4)) if kind == "max" else x.mean(axis=(2, 4))


class Stats(nnx.Variable):
    """Input statistics measured on the training set: saved with the model, never trained."""


class CNN(nnx.Module):
    """A small CNN for 28x28 grey images; input pixels in [0, 1], shape (N, 28, 28[, 1])."""

    def __init__(self, config: Config, rngs: nnx.Rngs):
        self.config = config
        k = config.kernel_size
        widths = (1, *config.conv_channels)
        self.convs = nnx.List(
            [
                nnx.Conv(a, b, (k, k), padding="SAME", rngs=rngs)
                for a, b in zip(widths[:-1], widths[1:])
            ]
        )
        side = 28
        for _ in config.conv_channels:
            side //= 2
        sizes = (side * side * widths[-1], *config.dense)
        self.dense = nnx.List(
            [nnx.Linear(a, b, rngs=rngs) for a, b in zip(sizes[:-1], sizes[1:])]
        )
        self.dropout = nnx.Dropout(config.dropout, rngs=rngs)
        self.head = nnx.Linear(sizes[-1], 10, rngs=rngs)
        # Mean subtraction and scaling, with statistics of the training set (set by `fit`).
        self.mean = Stats(jnp.zeros(()))
        self.std = Stats(jnp.ones(()))

    def set_input_stats(self, mean: float, std: float) -> None:
        """Store the training-set pixel mean and standard deviation used to normalise inputs."""
        self.mean[...] = jnp.asarray(mean, jnp.float32)
        self.std[...] = jnp.asarray(std, jnp.float32)

    def __call__(self, x: jax.Array, return_features: bool = False):
        """Logits (N, 10); with `return_features`, also a dict of every intermediate array."""
        act = ACTIVATION_FNS[self.config.activation]
        if x.ndim == 3:
            x = x[..., None]  # (N, 28, 28) -> (N, 28, 28, 1)
        x = (x.astype(jnp.float32) - self.mean[...]) / self.std[...]
        features = {"input": x}
        for i, conv in enumerate(self.convs, start=1):
            x = conv(x)
            features[f"conv{i}"] = x
            x = act(x)
            features[f"act{i}"] = x
            x = pool2x2(x, self.config.pool)
            features[f"pool{i}"] = x
        x = x.reshape(x.shape[0], -1)
        features["flatten"] = x
        for i, layer in enumerate(self.dense, start=1):
            x = self.dropout(act(layer(x)))
            features[f"dense{i}"] = x
        x = self.head(x)
        features["logits"] = x
        return (x, features) if return_features else x


def param_counts(model: CNN) -> dict[str, int]:
    """Number of trainable parameters in each layer, in forward order."""
    counts = {}
    for i, conv in enumerate(model.convs, start=1):
        counts[f"conv{i}"] = conv.kernel.size + conv.bias.size
    for i, layer in enumerate(model.dense, start=1):
        counts[f"dense{i}"] = layer.kernel.size + layer.bias.size
    counts["head"] = model.head.kernel.size + model.head.bias.size
    return counts


def layer_shapes(model: CNN, batch: int = 1) -> dict[str, tuple[int, ...]]:
    """Shape of every intermediate array for a batch of `batch` images, in forward order."""
    x = jax.ShapeDtypeStruct((batch, 28, 28, 1), jnp.float32)
    order: list[str] = []

    def forward(m, x):
        _, feats = m(x, return_features=True)
        order.extend(
            feats
        )  # traced once: records the forward order that pytrees would sort away
        return feats

    shapes = nnx.eval_shape(forward, model, x)
    return {name: tuple(shapes[name].shape) for name in order}


def summary(model: CNN) -> str:
    """A table of layers, output shapes and parameter counts."""
    shapes = layer_shapes(model)
    counts = param_counts(model)
    owner = {f"conv{i}": f"conv{i}" for i in range(1, len(model.convs) + 1)}
    owner.update({f"dense{i}": f"dense{i}" for i in range(1, len(model.dense) + 1)})
    owner["logits"] = "head"
    rows = [f"{'layer':<10}{'output shape':>20}{'parameters':>12}"]
    for name, shape in shapes.items():
        n = counts.get(owner.get(name, ""), 0)
        rows.append(f"{name:<10}{shape!s:>20}{n:>12,}")
    rows.append(f"{'total':<10}{'':>20}{sum(counts.values()):>12,}")
    return "\n".join(rows)


def count_total(model: CNN) -> int:
    """Total number of trainable parameters."""
    return int(sum(np.size(p) for p in jax.tree.leaves(nnx.state(model, nnx.Param))))
