"""Tests of mnist_cnn.teach.activations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mnist_cnn.teach import (
    activations,
)


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "relu", "leaky_relu", "gelu"])
def test_derivative_matches_finite_differences(name):
    x = np.concatenate([np.linspace(-5, -0.1, 25), np.linspace(0.1, 5, 25)])
    y, dy = activations.activation_and_derivative(name, x)
    fn = activations.activation(name)
    h = 1e-3
    numeric = (
        np.asarray(fn(jnp.asarray(x + h, jnp.float32)))
        - np.asarray(fn(jnp.asarray(x - h, jnp.float32)))
    ) / (2 * h)
    np.testing.assert_allclose(dy, numeric, atol=2e-3)
    np.testing.assert_allclose(
        y, np.asarray(fn(jnp.asarray(x, jnp.float32))), atol=1e-6
    )


def test_closed_form_derivatives():
    x = np.linspace(-4, 4, 33)
    s, ds = activations.activation_and_derivative("sigmoid", x)
    np.testing.assert_allclose(ds, s * (1 - s), atol=1e-6)
    assert ds.max() == pytest.approx(
        0.25
    )  # at x = 0: the sigmoid never passes more than a quarter
    t, dt = activations.activation_and_derivative("tanh", x)
    np.testing.assert_allclose(dt, 1 - t**2, atol=1e-6)
    _, dr = activations.activation_and_derivative("relu", x)
    np.testing.assert_array_equal(dr, (x > 0).astype(np.float32))
    with pytest.raises(ValueError, match="unknown activation"):
        activations.activation("swish")


def test_deep_stack_gradients_shrink_for_sigmoid_only():
    sig = activations.deep_stack_gradients("sigmoid", depth=10)
    relu = activations.deep_stack_gradients("relu", depth=10)
    assert sig.shape == relu.shape == (10,)
    assert sig[0] / sig[-1] < 1e-3  # each sigmoid layer multiplies by at most 0.25
    assert (
        relu[0] / relu[-1] > 1e-1
    )  # ReLU passes gradients through unchanged where active
    assert np.all(np.diff(np.log(sig)) > 0)  # strictly growing towards the output


def test_deep_stack_gradient_against_finite_difference():
    # Rebuild the 2-layer stack's first weight matrix and nudge one entry.
    depth, width, batch = 2, 3, 4
    keys = jax.random.split(jax.random.key(0), depth + 2)
    init = jax.nn.initializers.lecun_normal()
    ws = [
        np.asarray(init(k, (width, width), jnp.float32), np.float64)
        for k in keys[:depth]
    ]
    x = np.asarray(jax.random.normal(keys[depth], (batch, width)), np.float64)
    t = np.asarray(jax.random.normal(keys[depth + 1], (batch, width)), np.float64)
    sig = lambda v: 1 / (1 + np.exp(-v))

    def loss(w0):
        return np.mean((sig(sig(x @ w0) @ ws[1]) - t) ** 2)

    grad = np.zeros_like(ws[0])
    for idx in np.ndindex(*ws[0].shape):
        e = np.zeros_like(ws[0])
        e[idx] = 1e-6
        grad[idx] = (loss(ws[0] + e) - loss(ws[0] - e)) / 2e-6
    got = activations.deep_stack_gradients(
        "sigmoid", depth=depth, width=width, batch=batch
    )
    assert got[0] == pytest.approx(np.linalg.norm(grad), rel=1e-3)


def test_same_sign_fraction():
    assert activations.same_sign_fraction(np.outer([1.0, 2.0, 3.0], [0.5, -1.0])) == 1.0
    assert (
        activations.same_sign_fraction(np.outer([1.0, -2.0, 3.0], [0.5, -1.0])) == 0.0
    )
    assert activations.same_sign_fraction(np.array([[1.0, 1.0], [0.0, -1.0]])) == 0.5
    assert (
        activations.same_sign_fraction(np.array([[1.0, 0.0, 1.0], [2.0, 0.0, -1.0]]))
        == 0.5
    )  # zero column left out
    with pytest.raises(ValueError):
        activations.same_sign_fraction(np.ones(3))
