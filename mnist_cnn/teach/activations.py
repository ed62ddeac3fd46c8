"""Activation functions: their shapes, derivatives, and how they pass gradients through
depth.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from numpy.typing import ArrayLike

from ..model import ACTIVATION_FNS


def activation(name: str) -> Callable[[jax.Array], jax.Array]:
    """The model's activation function called `name` (relu, sigmoid, tanh, gelu,
    leaky_relu).
    """
    if name not in ACTIVATION_FNS:
        raise ValueError(
            f"unknown activation {name!r}; choose one of {sorted(ACTIVATION_FNS)}"
        )
    return ACTIVATION_FNS[name]


def activation_and_derivative(name: str, x: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """f(x) and f'(x) on a 1-D grid of points, the derivative taken by `jax.grad`
    (ReLU'(0) = 0).
    """
    fn = activation(name)
    x = jnp.asarray(x, jnp.float32)
    if x.ndim != 1:
        raise ValueError(f"x must be a 1-D array of points, got shape {x.shape}")
    return np.asarray(fn(x)), np.asarray(jax.vmap(jax.grad(fn))(x))


def deep_stack_gradients(
    name: str, depth: int = 20, width: int = 64, batch: int = 256, seed: int = 0
) -> np.ndarray:
    """Norm of the loss gradient w.r.t. each layer's weights in a deep MLP, first layer
    first (depth,).

    Every layer is `act(x @ W)` with LeCun-normal weights (Flax's default); only the
    activation changes between runs, so any difference in how the gradient shrinks comes
    from it alone.
    """
    if depth < 1 or width < 1 or batch < 1:
        raise ValueError(
            f"depth, width and batch must be positive, got {depth}, {width}, {batch}"
        )
    fn = activation(name)
    keys = jax.random.split(jax.random.key(seed), depth + 2)
    init = jax.nn.initializers.lecun_normal()
    weights = [init(k, (width, width), jnp.float32) for k in keys[:depth]]
    x = jax.random.normal(keys[depth], (batch, width))
    target = jax.random.normal(keys[depth + 1], (batch, width))

    def loss(ws):
        h = x
        for w in ws:
            h = fn(h @ w)
        return jnp.mean((h - target) ** 2)

    grads = jax.grad(loss)(weights)
    return np.array([float(jnp.linalg.norm(g)) for g in grads])


def same_sign_fraction(grad_w: ArrayLike) -> float:
    """Fraction of output units (columns of a (n_in, n_out) weight gradient) whose
    entries share one sign.

    Units whose gradient is all zero (an inactive ReLU on this example) are left out.

    For one example the gradient of a dense layer is outer(input, delta): if every input
    is positive (sigmoid outputs), each column has the sign of its delta, so all of a
    unit's weights must move up together or down together.
    """
    g = np.asarray(grad_w)
    if g.ndim != 2:
        raise ValueError(
            f"expected a 2-D weight gradient (n_in, n_out), got shape {g.shape}"
        )
    nonzero = g != 0
    positive = np.all((g > 0) | ~nonzero, axis=0)
    negative = np.all((g < 0) | ~nonzero, axis=0)
    moving = nonzero.any(axis=0)
    if not moving.any():
        raise ValueError("every column of the gradient is zero: no unit is updated")
    return float(np.mean((positive | negative)[moving]))
