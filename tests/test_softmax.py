"""Tests of mnist_cnn.teach.softmax."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from mnist_cnn.teach import (
    softmax,
)


def test_softmax_family_against_jax_and_optax():
    z = np.random.default_rng(0).normal(size=(3, 10)) * 5
    np.testing.assert_allclose(softmax.softmax(z), jax.nn.softmax(z), atol=1e-6)
    np.testing.assert_allclose(
        softmax.softmax(z, temperature=3.0), jax.nn.softmax(z / 3.0), atol=1e-6
    )
    np.testing.assert_allclose(
        softmax.logsumexp(z), jax.scipy.special.logsumexp(z, axis=-1), rtol=1e-6
    )
    big = np.array([1000.0, 1001.0, 1002.0])
    assert np.all(np.isnan(np.asarray(softmax.naive_softmax(big))))  # inf / inf
    np.testing.assert_allclose(
        softmax.softmax(big), jax.nn.softmax(jnp.asarray(big)), atol=1e-6
    )
    np.testing.assert_allclose(softmax.naive_softmax(z), jax.nn.softmax(z), atol=1e-6)
    labels = np.array([1, 4, 9])
    np.testing.assert_allclose(
        softmax.cross_entropy(z, labels),
        optax.softmax_cross_entropy_with_integer_labels(
            jnp.asarray(z, jnp.float32), labels
        ),
        atol=1e-5,
    )
    cold = np.asarray(softmax.softmax(z[0], temperature=0.01))
    assert cold[np.argmax(z[0])] == pytest.approx(
        1.0
    )  # low temperature: one-hot on the arg max
    hot = np.asarray(softmax.softmax(z[0], temperature=1e4))
    np.testing.assert_allclose(hot, 0.1, atol=1e-3)  # high temperature: uniform
    with pytest.raises(ValueError):
        softmax.softmax(z, temperature=0)
    with pytest.raises(ValueError):
        softmax.cross_entropy(z, np.array([0, 1, 10]))
