"""Chapter 9's evaluation and inspection helpers, against direct counts, finite differences and the model."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest
from flax import nnx

from mnist_cnn import CNN, Config, History, evaluate, predict
from mnist_cnn import interpret as I


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def model():
    """An untrained small CNN with MNIST-like input statistics: deterministic and instant."""
    m = CNN(Config(conv_channels=(4, 8), dense=(16,)), rngs=nnx.Rngs(0))
    m.set_input_stats(0.13, 0.31)
    m.eval()
    return m


@pytest.fixture(scope="module")
def digits():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (6, 28, 28), dtype=np.uint8), np.array(
        [0, 1, 2, 3, 4, 9]
    )


# --- scores --------------------------------------------------------------------------------------


def test_probabilities_are_softmax_of_the_logits(model, digits):
    x, _ = digits
    probs = I.probabilities(
        model, x, batch_size=4
    )  # two batches, the second one partial
    expected = jax.nn.softmax(
        model(jnp.asarray(x, jnp.float32)[..., None] / 255), axis=-1
    )
    np.testing.assert_allclose(probs, expected, atol=1e-6)


def test_confusion_matrix_against_a_direct_count():
    rng = np.random.default_rng(1)
    y_true, y_pred = rng.integers(0, 10, 500), rng.integers(0, 10, 500)
    expected = np.zeros((10, 10), int)
    for t, p in zip(y_true, y_pred):
        expected[t, p] += 1
    matrix = I.confusion_matrix(y_true, y_pred)
    np.testing.assert_array_equal(matrix, expected)
    np.testing.assert_allclose(
        I.per_class_accuracy(matrix),
        [np.mean(y_pred[y_true == c] == c) for c in range(10)],
    )
    with pytest.raises(ValueError, match="equal length"):
        I.confusion_matrix(y_true, y_pred[:-1])
    with pytest.raises(ValueError, match="0..9"):
        I.confusion_matrix(np.array([10]), np.array([0]))


def test_most_confused_pairs_against_a_sort():
    rng = np.random.default_rng(2)
    matrix = rng.integers(0, 6, (10, 10))  # many ties, so the tie order is tested too
    cells = sorted(
        (-matrix[t, p], t, p) for t in range(10) for p in range(10) if t != p
    )
    expected = [(t, p, -n) for n, t, p in cells[:7]]
    assert I.most_confused_pairs(matrix, k=7) == expected


def test_mistakes_and_most_confident_ones():
    probs = np.array(
        [
            [0.9, 0.1] + [0] * 8,
            [0.2, 0.8] + [0] * 8,
            [0.6, 0.4] + [0] * 8,
            [0.3, 0.7] + [0] * 8,
            [0.45, 0.55] + [0] * 8,
        ]
    )
    y = np.array([1, 1, 1, 0, 0])
    wrong = [i for i in range(5) if probs[i].argmax() != y[i]]
    assert I.mistakes(y, probs).tolist() == wrong
    assert (
        I.most_confident_mistakes(y, probs, k=3).tolist()
        == sorted(wrong, key=lambda i: -probs[i].max())[:3]
    )


# --- looking inside ------------------------------------------------------------------------------


def test_saliency_matches_finite_differences(model, digits):
    x, y = digits
    grads = I.saliency(model, x[:2], y[:2])
    assert grads.shape == (2, 28, 28)

    def score(image, label):
        logits = model(jnp.asarray(image, jnp.float32)[None, ..., None])
        return float(logits[0, label])

    eps = 1e-2
    rng = np.random.default_rng(3)
    for i in range(2):
        image = x[i] / 255.0
        # The pixels with the largest gradients, and a few at random.
        pixels = list(
            zip(*np.unravel_index(np.argsort(-np.abs(grads[i]).ravel())[:3], (28, 28)))
        )
        pixels += [tuple(p) for p in rng.integers(0, 28, (3, 2))]
        for r, c in pixels:
            up, down = image.copy(), image.copy()
            up[r, c] += eps
            down[r, c] -= eps
            numeric = (score(up, y[i]) - score(down, y[i])) / (2 * eps)
            assert grads[i, r, c] == pytest.approx(numeric, abs=2e-3, rel=2e-2)


def test_saliency_of_a_batch_equals_one_image_at_a_time(model, digits):
    x, y = digits
    together = I.saliency(model, x, y)
    for i in range(len(x)):
        np.testing.assert_allclose(
            together[i], I.saliency(model, x[i : i + 1], y[i : i + 1])[0], atol=1e-6
        )


def test_occlusion_map_equals_the_model_on_occluded_images(model, digits):
    x, y = digits
    grid = I.occlusion_map(model, x[0], y[0], patch=8, stride=5)
    starts = range(0, 21, 5)
    assert grid.shape == (len(starts), len(starts))
    for i, top in enumerate(starts):
        for j, left in enumerate(starts):
            occluded = x[0] / 255.0
            occluded[top : top + 8, left : left + 8] = 0.0
            assert grid[i, j] == pytest.approx(
                predict(model, occluded.astype(np.float32))[y[0]], abs=1e-6
            )
    with pytest.raises(ValueError, match="patch"):
        I.occlusion_map(model, x[0], 0, patch=0)


def test_integer_shifts_are_slicing(digits):
    x, _ = digits
    for dy, dx in ((0, 0), (2, 0), (0, -3), (4, 5), (-6, 1)):
        expected = np.zeros_like(x)
        src = x[:, max(0, -dy) : 28 - max(0, dy), max(0, -dx) : 28 - max(0, dx)]
        expected[
            :,
            max(0, dy) : max(0, dy) + src.shape[1],
            max(0, dx) : max(0, dx) + src.shape[2],
        ] = src
        np.testing.assert_array_equal(I.shift_images(x, dy, dx), expected)


def test_rotation_direction_and_identity(digits):
    x, _ = digits
    np.testing.assert_array_equal(I.rotate_images(x, 0), x)
    # np.rot90 turns from the row axis towards the column axis: anticlockwise on screen.
    np.testing.assert_array_equal(I.rotate_images(x, 90), np.rot90(x, 1, axes=(1, 2)))
    as_float = I.rotate_images(x / 255.0, 33)
    assert as_float.dtype == np.float64 and as_float.min() >= 0 and as_float.max() <= 1


def test_accuracy_under_a_transform(model, digits):
    x, y = digits
    got = I.accuracy_under(model, x, y, I.rotate_images, [0, 20])
    assert got.tolist() == [
        evaluate(model, x, y),
        evaluate(model, I.rotate_images(x, 20), y),
    ]


def test_feature_maps_in_forward_order(model, digits):
    x, _ = digits
    features = I.feature_maps(model, x[0])
    logits, expected = model(
        jnp.asarray(x[:1], jnp.float32) / 255, return_features=True
    )
    assert list(features) == list(expected)
    for name in expected:
        np.testing.assert_allclose(
            features[name], np.asarray(expected[name][0]), atol=1e-6
        )
    with pytest.raises(ValueError, match=r"\(28, 28\)"):
        I.feature_maps(model, x)


# --- plots ---------------------------------------------------------------------------------------


def test_plot_confusion_matrix_writes_the_counts():
    matrix = np.arange(9).reshape(3, 3)
    fig = I.plot_confusion_matrix(matrix)
    assert [t.get_text() for t in fig.axes[0].texts] == [str(v) for v in matrix.ravel()]


def test_plot_gallery_titles(digits):
    x, y = digits
    probs = np.full((6, 10), 0.01)
    probs[np.arange(6), [5, 1, 7, 3, 0, 2]] = 0.91
    fig = I.plot_gallery(x, y, probs, ncols=3)
    titles = [ax.get_title() for ax in fig.axes if ax.images]
    assert titles == [f"{t}→{p} (0.91)" for t, p in zip(y, [5, 1, 7, 3, 0, 2])]


def test_plot_learning_curves_data():
    history = History(
        epoch=[1, 2, 3],
        loss=[0.5, 0.2, 0.1],
        train_accuracy=[0.8, 0.9, 0.95],
        test_accuracy=[0.85, 0.92, 0.96],
        seconds=[1, 2, 3],
    )
    fig = I.plot_learning_curves(history)
    assert fig.axes[0].lines[0].get_ydata().tolist() == history.loss
    assert [line.get_ydata().tolist() for line in fig.axes[1].lines] == [
        history.train_accuracy,
        history.test_accuracy,
    ]
    with pytest.raises(ValueError, match="empty"):
        I.plot_learning_curves(History())


def test_plot_feature_maps_saliency_occlusion(model, digits):
    x, y = digits
    features = I.feature_maps(model, x[0])
    fig = I.plot_feature_maps(features, ["conv1", "pool2", "logits"], max_channels=4)
    assert len(fig.axes) == 4 + 4 + 1
    np.testing.assert_allclose(
        fig.axes[0].images[0].get_array(), features["conv1"][..., 0]
    )
    with pytest.raises(ValueError, match="no features called"):
        I.plot_feature_maps(features, ["conv9"])
    maps = I.saliency(model, x[:3], y[:3])
    fig = I.plot_saliency(x[:3], maps)
    np.testing.assert_allclose(fig.axes[3].images[0].get_array(), np.abs(maps[0]))
    grid = I.occlusion_map(model, x[0], y[0], patch=6, stride=4)
    fig = I.plot_occlusion(x[0], grid, 6, 4)
    np.testing.assert_allclose(fig.axes[1].images[0].get_array(), grid)
