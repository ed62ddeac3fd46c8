"""Tests of mnist_cnn.teach.internals."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from mnist_cnn import PRESETS, fit
from mnist_cnn.model import init_model, layer_names
from mnist_cnn.teach import activations, internals
from mnist_cnn.teach.ops import avg_pool2d, max_pool2d
from mnist_cnn.train import loss_fn

TINY = PRESETS["tiny"].replace(train_size=640, batch_size=64)


@pytest.fixture(scope="module")
def small(mnist):
    (x_train, y_train), _ = mnist
    return init_model(TINY, x_train[:640]), x_train[:32], y_train[:32]


def test_feature_maps_in_forward_order(model, digits):
    x, _ = digits
    features = internals.feature_maps(model, x[0])
    expected = model.features(jnp.asarray(x[:1], jnp.float32) / 255)
    assert list(features) == list(expected) == layer_names(model.config)
    for name in expected:
        np.testing.assert_allclose(
            features[name], np.asarray(expected[name][0]), atol=1e-6
        )
    with pytest.raises(ValueError, match=r"\(28, 28\)"):
        internals.feature_maps(model, x)


def test_layer_gradient_norms_match_a_flat_gradient(small):
    model, x, y = small
    norms = internals.layer_gradient_norms(model, x, y)
    assert list(norms) == ["conv1", "conv2", "dense1", "head"]
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)

    def loss(p):
        m = nnx.merge(graphdef, p, rest)
        logits = m(jnp.asarray(x, jnp.float32)[..., None] / 255.0)
        return optax.softmax_cross_entropy_with_integer_labels(
            logits, jnp.asarray(y)
        ).mean()

    grads = jax.grad(loss)(params)
    assert norms["conv2"] == pytest.approx(
        float(jnp.linalg.norm(grads["convs"][1]["kernel"][...])), rel=1e-4
    )
    assert norms["head"] == pytest.approx(
        float(jnp.linalg.norm(grads["head"]["kernel"][...])), rel=1e-4
    )


def test_dense_kernel_gradient_is_an_outer_product(small):
    model, x, y = small
    g = internals.dense_kernel_gradient(model, x[0], int(y[0]))
    feats = model.features(jnp.asarray(x[:1], jnp.float32) / 255.0)
    assert g.shape == (feats["flatten"].shape[1], 32)
    assert (
        np.linalg.matrix_rank(g, tol=1e-6 * np.abs(g).max()) == 1
    )  # one example: rank one
    assert (
        activations.same_sign_fraction(g) == 1.0
    )  # ReLU outputs are >= 0: not zero-centred


def test_dead_units_against_a_manual_count(small):
    model, x, _ = small
    before = internals.dead_units(model, x)
    model.dense[0].bias[...] = jnp.full_like(
        model.dense[0].bias[...], -1e3
    )  # kill every dense unit
    try:
        after = internals.dead_units(model, x)
    finally:
        model.dense[0].bias[...] = jnp.zeros_like(model.dense[0].bias[...])
    assert after["dense1"] == (32, 32)
    feats = model.features(jnp.asarray(x, jnp.float32)[..., None] / 255.0)
    act1 = np.asarray(feats["act1"]).reshape(-1, 8)
    assert before["act1"] == (int(np.sum(act1.max(axis=0) <= 0)), 8)
    assert set(before) == {"act1", "act2", "dense1"}


def test_penultimate_features_feed_the_head(small):
    model, x, _ = small
    f = internals.penultimate_features(model, x)
    assert f.shape == (32, 32)
    logits = np.asarray(model.head(jnp.asarray(f)))
    np.testing.assert_allclose(
        logits, np.asarray(model(jnp.asarray(x, jnp.float32) / 255.0)), atol=1e-4
    )


def test_shift_change_against_numpy_pooling(small):
    model, x, _ = small
    image = x[0]
    got = internals.shift_change(model, image, shift=1, pool="max")
    shifted = np.roll(image, 1, axis=1)
    shifted[:, 0] = 0
    feats = model.features(
        jnp.asarray(np.stack([image, shifted]), jnp.float32)[..., None] / 255.0
    )
    a = np.asarray(feats["act1"])
    p = np.stack([max_pool2d(a[0]), max_pool2d(a[1])])
    assert got["before pooling"] == pytest.approx(
        np.linalg.norm(a[0] - a[1]) / np.linalg.norm(a[0]), rel=1e-4
    )
    assert got["after pooling"] == pytest.approx(
        np.linalg.norm(p[0] - p[1]) / np.linalg.norm(p[0]), rel=1e-4
    )
    avg = internals.shift_change(model, image, shift=1, pool="avg")
    q = np.stack([avg_pool2d(a[0]), avg_pool2d(a[1])])
    assert avg["after pooling"] == pytest.approx(
        np.linalg.norm(q[0] - q[1]) / np.linalg.norm(q[0]), rel=1e-4
    )


def test_learning_curve_first_loss(mnist):
    (x_train, y_train), (x_test, y_test) = mnist
    data = ((x_train[:640], y_train[:640]), (x_test[:200], y_test[:200]))
    c1 = internals.learning_curve(TINY, data, eval_every=4, eval_size=200)
    assert c1.loss.shape == (10,) and list(c1.eval_step) == [4, 8, 10]
    # The first recorded loss is the untrained model's loss on the first shuffled batch.
    fresh = init_model(TINY, x_train[:640])
    # fit's batch order: NumPy's generator seeded with the config's seed.
    batch = np.random.default_rng(TINY.seed).permutation(640)[:64]
    x = jnp.asarray(x_train[:640][batch], jnp.float32)[..., None] / 255.0
    expected = float(loss_fn(fresh, x, jnp.asarray(y_train[:640][batch]))[0])
    assert c1.loss[0] == pytest.approx(expected, rel=1e-4)
    assert np.all((c1.eval_accuracy >= 0) & (c1.eval_accuracy <= 1))
    # The same training as `fit`: its epoch's mean loss is the mean of our per-step
    # losses.
    _, history = fit(TINY, data, progress=False)
    assert history.loss[0] == pytest.approx(float(c1.loss.mean()), rel=1e-5)
    assert history.eval_accuracy[0] == pytest.approx(c1.eval_accuracy[-1])


def test_smooth():
    np.testing.assert_allclose(
        internals.smooth([1, 2, 3, 4], window=2), [1, 1.5, 2.5, 3.5]
    )
    with pytest.raises(ValueError):
        internals.smooth([1.0], window=0)
