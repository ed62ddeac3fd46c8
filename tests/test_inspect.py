"""Measurements of the layer chapters against trusted references (jax.nn, optax, numpy, finite differences)."""

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
import optax
import pytest
from flax import nnx

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from mnist_cnn import PRESETS, plots_layers
from mnist_cnn import inspect as measure
from mnist_cnn.ops import avg_pool2d, max_pool2d
from mnist_cnn.train import loss_fn

TINY = PRESETS["tiny"].replace(train_size=640, batch_size=64)


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "relu", "leaky_relu", "gelu"])
def test_derivative_matches_finite_differences(name):
    x = np.concatenate([np.linspace(-5, -0.1, 25), np.linspace(0.1, 5, 25)])
    y, dy = measure.activation_and_derivative(name, x)
    fn = measure.activation(name)
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
    s, ds = measure.activation_and_derivative("sigmoid", x)
    np.testing.assert_allclose(ds, s * (1 - s), atol=1e-6)
    assert ds.max() == pytest.approx(
        0.25
    )  # at x = 0: the sigmoid never passes more than a quarter
    t, dt = measure.activation_and_derivative("tanh", x)
    np.testing.assert_allclose(dt, 1 - t**2, atol=1e-6)
    _, dr = measure.activation_and_derivative("relu", x)
    np.testing.assert_array_equal(dr, (x > 0).astype(np.float32))
    with pytest.raises(ValueError, match="unknown activation"):
        measure.activation("swish")


def test_deep_stack_gradients_shrink_for_sigmoid_only():
    sig = measure.deep_stack_gradients("sigmoid", depth=10)
    relu = measure.deep_stack_gradients("relu", depth=10)
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
    got = measure.deep_stack_gradients("sigmoid", depth=depth, width=width, batch=batch)
    assert got[0] == pytest.approx(np.linalg.norm(grad), rel=1e-3)


def test_same_sign_fraction():
    assert measure.same_sign_fraction(np.outer([1.0, 2.0, 3.0], [0.5, -1.0])) == 1.0
    assert measure.same_sign_fraction(np.outer([1.0, -2.0, 3.0], [0.5, -1.0])) == 0.0
    assert measure.same_sign_fraction(np.array([[1.0, 1.0], [0.0, -1.0]])) == 0.5
    assert (
        measure.same_sign_fraction(np.array([[1.0, 0.0, 1.0], [2.0, 0.0, -1.0]])) == 0.5
    )  # zero column left out
    with pytest.raises(ValueError):
        measure.same_sign_fraction(np.ones(3))


@pytest.fixture(scope="module")
def small(mnist):
    (x_train, y_train), _ = mnist
    return measure.init_model(TINY, x_train[:640]), x_train[:32], y_train[:32]


def test_layer_gradient_norms_match_a_flat_gradient(small):
    model, x, y = small
    norms = measure.layer_gradient_norms(model, x, y)
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


def test_dense_input_gradient_is_an_outer_product(small):
    model, x, y = small
    g = measure.dense_input_gradient(model, x[0], int(y[0]))
    feats = model(jnp.asarray(x[:1], jnp.float32) / 255.0, return_features=True)[1]
    assert g.shape == (feats["flatten"].shape[1], 32)
    assert (
        np.linalg.matrix_rank(g, tol=1e-6 * np.abs(g).max()) == 1
    )  # one example: rank one
    assert (
        measure.same_sign_fraction(g) == 1.0
    )  # ReLU outputs are >= 0: not zero-centred


def test_dead_units_against_a_manual_count(small):
    model, x, _ = small
    before = measure.dead_units(model, x)
    model.dense[0].bias[...] = jnp.full_like(
        model.dense[0].bias[...], -1e3
    )  # kill every dense unit
    try:
        after = measure.dead_units(model, x)
    finally:
        model.dense[0].bias[...] = jnp.zeros_like(model.dense[0].bias[...])
    assert after["dense1"] == (32, 32)
    feats = model(jnp.asarray(x, jnp.float32)[..., None] / 255.0, return_features=True)[
        1
    ]
    act1 = np.asarray(feats["act1"]).reshape(-1, 8)
    assert before["act1"] == (int(np.sum(act1.max(axis=0) <= 0)), 8)
    assert set(before) == {"act1", "act2", "dense1"}


def test_penultimate_features_and_pca(small):
    model, x, _ = small
    f = measure.penultimate_features(model, x)
    assert f.shape == (32, 32)
    pts, ratio = measure.pca_2d(f)
    centred = f - f.mean(0)
    evals, evecs = np.linalg.eigh(np.cov(centred.T))
    top = evecs[:, ::-1][:, :2]
    np.testing.assert_allclose(np.abs(pts), np.abs(centred @ top), atol=1e-4)
    np.testing.assert_allclose(ratio, evals[::-1][:2] / evals.sum(), rtol=1e-4)
    with pytest.raises(ValueError):
        measure.pca_2d(np.ones(5))


def test_shift_change_against_numpy_pooling(small):
    model, x, _ = small
    image = x[0]
    got = measure.shift_change(model, image, shift=1, pool="max")
    shifted = np.roll(image, 1, axis=1)
    shifted[:, 0] = 0
    feats = model(
        jnp.asarray(np.stack([image, shifted]), jnp.float32)[..., None] / 255.0,
        return_features=True,
    )[1]
    a = np.asarray(feats["act1"])
    p = np.stack([max_pool2d(a[0]), max_pool2d(a[1])])
    assert got["before pooling"] == pytest.approx(
        np.linalg.norm(a[0] - a[1]) / np.linalg.norm(a[0]), rel=1e-4
    )
    assert got["after pooling"] == pytest.approx(
        np.linalg.norm(p[0] - p[1]) / np.linalg.norm(p[0]), rel=1e-4
    )
    avg = measure.shift_change(model, image, shift=1, pool="avg")
    q = np.stack([avg_pool2d(a[0]), avg_pool2d(a[1])])
    assert avg["after pooling"] == pytest.approx(
        np.linalg.norm(q[0] - q[1]) / np.linalg.norm(q[0]), rel=1e-4
    )


def test_learning_curve_first_loss(mnist):
    (x_train, y_train), (x_test, y_test) = mnist
    data = ((x_train[:640], y_train[:640]), (x_test[:200], y_test[:200]))
    c1 = measure.learning_curve(TINY, data, eval_every=4, eval_size=200)
    assert c1["loss"].shape == (10,) and list(c1["eval_step"]) == [4, 8, 10]
    # The first recorded loss is the untrained model's loss on the first shuffled batch.
    model = measure.init_model(TINY, x_train[:640])
    _, sub = jax.random.split(jax.random.key(TINY.seed))
    batch = np.asarray(jax.random.permutation(sub, 640)[:64])
    x = jnp.asarray(x_train[:640][batch], jnp.float32)[..., None] / 255.0
    expected = float(loss_fn(model, x, jnp.asarray(y_train[:640][batch]))[0])
    assert c1["loss"][0] == pytest.approx(expected, rel=1e-4)
    assert np.all((c1["eval_accuracy"] >= 0) & (c1["eval_accuracy"] <= 1))
    # The same training as `fit`: its epoch's mean loss is the mean of our per-step losses.
    from mnist_cnn import fit

    _, history = fit(TINY, data, progress=False)
    assert history.loss[0] == pytest.approx(float(c1["loss"].mean()), rel=1e-5)
    assert history.test_accuracy[0] == pytest.approx(c1["eval_accuracy"][-1])


def test_smooth():
    np.testing.assert_allclose(
        measure.smooth([1, 2, 3, 4], window=2), [1, 1.5, 2.5, 3.5]
    )
    with pytest.raises(ValueError):
        measure.smooth([1.0], window=0)


def test_softmax_family_against_jax_and_optax():
    z = np.random.default_rng(0).normal(size=(3, 10)) * 5
    np.testing.assert_allclose(measure.softmax(z), jax.nn.softmax(z), atol=1e-6)
    np.testing.assert_allclose(
        measure.softmax(z, temperature=3.0), jax.nn.softmax(z / 3.0), atol=1e-6
    )
    np.testing.assert_allclose(
        measure.logsumexp(z), jax.scipy.special.logsumexp(z, axis=-1), rtol=1e-6
    )
    big = np.array([1000.0, 1001.0, 1002.0])
    assert np.all(np.isnan(np.asarray(measure.naive_softmax(big))))  # inf / inf
    np.testing.assert_allclose(
        measure.softmax(big), jax.nn.softmax(jnp.asarray(big)), atol=1e-6
    )
    np.testing.assert_allclose(measure.naive_softmax(z), jax.nn.softmax(z), atol=1e-6)
    labels = np.array([1, 4, 9])
    np.testing.assert_allclose(
        measure.cross_entropy(z, labels),
        optax.softmax_cross_entropy_with_integer_labels(
            jnp.asarray(z, jnp.float32), labels
        ),
        atol=1e-5,
    )
    cold = np.asarray(measure.softmax(z[0], temperature=0.01))
    assert cold[np.argmax(z[0])] == pytest.approx(
        1.0
    )  # low temperature: one-hot on the arg max
    hot = np.asarray(measure.softmax(z[0], temperature=1e4))
    np.testing.assert_allclose(hot, 0.1, atol=1e-3)  # high temperature: uniform
    with pytest.raises(ValueError):
        measure.softmax(z, temperature=0)
    with pytest.raises(ValueError):
        measure.cross_entropy(z, np.array([0, 1, 10]))


def test_plots_draw_the_measured_values():
    fig = plots_layers.plot_activations(["sigmoid", "relu"], np.linspace(-2, 2, 5))
    lines = fig.axes[1].get_lines()
    derivs = [ln for ln in lines if ln.get_label() in ("sigmoid", "relu")]
    np.testing.assert_allclose(derivs[1].get_ydata(), [0, 0, 0, 1, 1])
    plt.close(fig)
    curve = {
        "step": np.arange(1, 5),
        "loss": np.array([4.0, 2.0, 1.0, 1.0]),
        "eval_step": np.array([2, 4]),
        "eval_accuracy": np.array([0.5, 0.75]),
    }
    fig = plots_layers.plot_learning_curves({"run": curve}, window=2)
    np.testing.assert_allclose(fig.axes[0].get_lines()[0].get_ydata(), [4, 3, 1.5, 1])
    np.testing.assert_allclose(fig.axes[1].get_lines()[0].get_ydata(), [0.5, 0.75])
    plt.close(fig)
    fig = plots_layers.plot_temperature(np.array([0.0, 1.0, 2.0]), [1.0, 2.0])
    heights = [p.get_height() for p in fig.axes[1].patches]
    np.testing.assert_allclose(
        heights, jax.nn.softmax(jnp.array([0.0, 0.5, 1.0])), atol=1e-6
    )
    plt.close(fig)
    fig = plots_layers.plot_gradient_norms(
        {"a": [1.0, 0.1], "b": {"conv1": 2.0, "head": 3.0}}
    )
    np.testing.assert_allclose(fig.axes[0].get_lines()[1].get_ydata(), [2.0, 3.0])
    plt.close(fig)
    fig = plots_layers.plot_projection(
        np.array([[0, 0], [1, 1], [2, 2]]), np.array([0, 1, 1])
    )
    assert len(fig.axes[0].collections) == 2  # one scatter per class
    plt.close(fig)
    with pytest.raises(ValueError):
        plots_layers.plot_projection(np.zeros((3, 3)), np.zeros(3))


def test_pool_and_kernel_figures_show_the_computed_values():
    from mnist_cnn import kernels

    x = np.array([[1, 1, 2, 4], [5, 6, 7, 8], [3, 2, 1, 0], [1, 2, 3, 4]], float)
    fig = plots_layers.plot_pool_windows(x, 2, "max")
    out_texts = [t.get_text() for t in fig.axes[1].texts]
    assert out_texts == [
        "6",
        "8",
        "3",
        "4",
    ]  # the article's result, read off the figure
    filled = [
        p
        for p in fig.axes[0].patches
        if p.get_fill() and p.get_width() == 1 and p.get_alpha() == 0.35
    ]
    winners = sorted((int(p.get_y() + 0.5), int(p.get_x() + 0.5)) for p in filled)
    assert winners == [(1, 1), (1, 3), (2, 0), (3, 3)]  # the cells holding 6, 8, 3, 4
    plt.close(fig)
    fig = plots_layers.plot_pool_windows(x, 2, "avg")
    assert [t.get_text() for t in fig.axes[1].texts] == ["3.25", "5.25", "2.00", "2.00"]
    plt.close(fig)
    with pytest.raises(ValueError, match="colours"):
        plots_layers.plot_pool_windows(np.zeros((8, 8)), 2)
    image = np.random.default_rng(0).random((10, 10))
    fig = plots_layers.plot_kernel_gallery({"a": image}, ["Sobel x", "Laplacian"])
    np.testing.assert_allclose(
        fig.axes[3].images[0].get_array(),
        kernels.apply_kernel(image, kernels.get_kernel("Laplacian")),
        atol=1e-6,
    )
    plt.close(fig)
    learned = np.stack([kernels.get_kernel("Sobel y"), np.ones((3, 3))], axis=-1)
    fig = plots_layers.plot_filter_matches(learned, image, top=1)
    assert fig.axes[2].get_title().startswith("Sobel y (|cos| 1.00)")
    np.testing.assert_allclose(
        fig.axes[1].images[0].get_array(),
        kernels.apply_kernel(image, kernels.get_kernel("Sobel y")),
        atol=1e-6,
    )
    plt.close(fig)
