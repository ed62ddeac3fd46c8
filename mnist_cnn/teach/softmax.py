"""Softmax and cross-entropy written out: the naive formula, the stable one,
temperature.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from numpy.typing import ArrayLike


def naive_softmax(z: ArrayLike, axis: int = -1) -> jax.Array:
    """exp(z) / sum(exp(z)) exactly as the formula reads: overflows for logits above ~88
    in float32.
    """
    e = jnp.exp(jnp.asarray(z, jnp.float32))
    return e / jnp.sum(e, axis=axis, keepdims=True)


def logsumexp(z: ArrayLike, axis: int = -1) -> jax.Array:
    """log(sum(exp(z))) computed as m + log(sum(exp(z - m))) with m = max(z): never
    overflows.
    """
    z = jnp.asarray(z, jnp.float32)
    m = jax.lax.stop_gradient(jnp.max(z, axis=axis, keepdims=True))
    return jnp.squeeze(m, axis) + jnp.log(jnp.sum(jnp.exp(z - m), axis=axis))


def softmax(z: ArrayLike, axis: int = -1, temperature: float = 1.0) -> jax.Array:
    """Stable softmax of z / temperature: shift by the maximum first, so the largest
    exponent is exp(0) = 1.
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    z = jnp.asarray(z, jnp.float32) / temperature
    # softmax(z) = softmax(z - c) for any c; c = max(z) keeps every exp(.) in (0, 1], no
    # overflow.
    e = jnp.exp(z - jnp.max(z, axis=axis, keepdims=True))
    return e / jnp.sum(e, axis=axis, keepdims=True)


def cross_entropy(logits: ArrayLike, label: int | np.ndarray) -> jax.Array:
    """-log softmax(logits)[label], via log-sum-exp; logits (..., C), integer labels
    (...).
    """
    logits = jnp.asarray(logits, jnp.float32)
    label = jnp.asarray(label)
    if jnp.any(label < 0) or jnp.any(label >= logits.shape[-1]):
        raise ValueError(
            f"labels must be in [0, {logits.shape[-1]}), got {np.asarray(label)}"
        )
    picked = jnp.take_along_axis(logits, label[..., None], axis=-1)[..., 0]
    return logsumexp(logits) - picked
