"""Tests of mnist_cnn.teach.figures."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
from flax import nnx

import mnist_cnn
from mnist_cnn import History
from mnist_cnn.teach import figures, internals, kernels, preprocessing, saliency

RNG = np.random.default_rng(1)


def _small(seed: int = 0, n: int = 60, side: int = 5):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, side, side), dtype=np.uint8)
    y = np.concatenate([np.arange(10), rng.integers(0, 10, n - 10)])
    return x, y


def test_draw_matrix_shows_every_number_and_the_padding():
    m = np.pad(np.arange(1.0, 10.0).reshape(3, 3), 1)
    _, ax = plt.subplots()
    texts = figures.draw_matrix(ax, m, padding=1, highlight=(0, 0, 3, 3))
    assert [float(t.get_text()) for t in texts] == m.ravel().tolist()
    grey = [
        p
        for p in ax.patches
        if p.get_facecolor()[:3] == matplotlib.colors.to_rgb(figures.PAD_COLOR)
    ]
    assert len(grey) == m.size - 9  # exactly the padding ring


def test_grids_have_one_panel_per_item():
    fig = figures.show_images(RNG.random((5, 8, 8)), titles=list("abcde"), ncols=3)
    assert sum(ax.has_data() for ax in fig.axes) == 5
    assert [ax.get_title() for ax in fig.axes[:5]] == list("abcde")
    kernel = RNG.normal(size=(3, 3, 1, 6))
    fig2 = figures.show_filters(kernel)
    shown = [ax.images[0].get_array() for ax in fig2.axes if ax.images]
    np.testing.assert_allclose(np.stack(shown, -1), kernel[:, :, 0, :])
    fig3 = figures.show_feature_maps(RNG.random((1, 7, 7, 4)))
    assert sum(ax.has_data() for ax in fig3.axes) == 4
    with pytest.raises(ValueError, match="titles"):
        figures.show_images(RNG.random((2, 4, 4)), titles=["one"])


def test_architecture_labels_come_from_the_shapes():
    shapes = {
        "input": (1, 28, 28, 1),
        "conv1": (1, 28, 28, 8),
        "act1": (1, 28, 28, 8),
        "pool1": (1, 14, 14, 8),
        "flatten": (1, 1568),
        "dense1": (1, 32),
        "logits": (1, 10),
    }
    fig = figures.draw_architecture(shapes)
    labels = " ".join(t.get_text() for t in fig.axes[0].texts)
    names = [
        t.get_text().split("\n")[1] for t in fig.axes[0].texts if "\n" in t.get_text()
    ]
    assert names == list(shapes)
    for text in ["28×28×8", "14×14×8", "1568", "CONV", "RELU", "POOL", "FC"]:
        assert text in labels


def test_architecture_of_a_real_model_is_drawn_in_forward_order():
    model = mnist_cnn.CNN(
        mnist_cnn.Config(conv_channels=(4, 8, 8), dense=(16, 16)), rngs=nnx.Rngs(0)
    )
    fig = figures.draw_architecture(mnist_cnn.layer_shapes(model))
    names = [
        t.get_text().split("\n")[1] for t in fig.axes[0].texts if "\n" in t.get_text()
    ]
    assert names == [
        "input",
        "conv1",
        "act1",
        "pool1",
        "conv2",
        "act2",
        "pool2",
        "conv3",
        "act3",
        "pool3",
        "flatten",
        "dense1",
        "dense2",
        "logits",
    ]


def test_plot_class_counts_bar_heights():
    counts = {"train": np.arange(10) * 3, "test": np.arange(10)[::-1]}
    fig = figures.plot_class_counts(counts)
    heights = [p.get_height() for p in fig.axes[0].patches]
    assert heights == counts["train"].tolist() + counts["test"].tolist()
    with pytest.raises(ValueError, match="same number of classes"):
        figures.plot_class_counts({"a": np.ones(10), "b": np.ones(9)})


def test_plot_pixel_histogram_bar_heights():
    counts = np.arange(256) + 1
    fig = figures.plot_pixel_histogram(counts)
    assert [p.get_height() for p in fig.axes[0].patches] == counts.tolist()


def test_plot_class_grid_shows_the_first_images_of_each_class():
    x, y = _small(4, n=100)
    fig = figures.plot_class_grid(x, y, per_class=2)
    assert len(fig.axes) == 20
    for c in range(10):
        for j, i in enumerate(np.flatnonzero(y == c)[:2]):
            shown = fig.axes[2 * c + j].images[0].get_array()
            np.testing.assert_array_equal(shown, x[i])
    with pytest.raises(ValueError, match="per_class"):
        figures.plot_class_grid(x, y, per_class=1000)


def test_plot_surface_and_pca():
    x, y = _small(5, n=12)
    fig = figures.plot_surface(x[0])
    np.testing.assert_array_equal(fig.axes[1].images[0].get_array(), x[0])
    with pytest.raises(ValueError, match="2-D"):
        figures.plot_surface(x)
    coords, _, ratio = preprocessing.pca(x, 2)
    fig = figures.plot_pca(coords, y, ratio)
    np.testing.assert_allclose(fig.axes[0].collections[0].get_offsets(), coords)
    assert fig.axes[0].get_xlabel() == f"PC 1 ({ratio[0]:.0%} of the variance)"
    assert sorted(t.get_text() for t in fig.axes[0].texts) == [
        str(c) for c in range(10)
    ]


def test_plot_confusion_matrix_writes_the_counts():
    matrix = np.arange(9).reshape(3, 3)
    fig = figures.plot_confusion_matrix(matrix)
    assert [t.get_text() for t in fig.axes[0].texts] == [str(v) for v in matrix.ravel()]


def test_plot_gallery_titles(digits):
    x, y = digits
    probs = np.full((6, 10), 0.01)
    probs[np.arange(6), [5, 1, 7, 3, 0, 2]] = 0.91
    fig = figures.plot_gallery(x, y, probs, ncols=3)
    titles = [ax.get_title() for ax in fig.axes if ax.images]
    assert titles == [f"{t}→{p} (0.91)" for t, p in zip(y, [5, 1, 7, 3, 0, 2])]


def test_plot_history_data():
    history = History(
        epoch=[1, 2, 3],
        loss=[0.5, 0.2, 0.1],
        train_accuracy=[0.8, 0.9, 0.95],
        eval_accuracy=[0.85, 0.92, 0.96],
        seconds=[1, 2, 3],
    )
    fig = figures.plot_history(history)
    assert fig.axes[0].lines[0].get_ydata().tolist() == history.loss
    assert [line.get_ydata().tolist() for line in fig.axes[1].lines] == [
        history.train_accuracy,
        history.eval_accuracy,
    ]
    with pytest.raises(ValueError, match="empty"):
        figures.plot_history(History())


def test_plot_history_with_step_losses_marks_each_epoch_end():
    history = History(
        epoch=[1, 2],
        loss=[0.5, 0.3],
        train_accuracy=[0.8, 0.9],
        eval_accuracy=[0.85, 0.92],
        seconds=[1, 2],
        step_loss=[0.9, 0.7, 0.5, 0.4, 0.3],
        steps=[3, 5],
    )
    fig = figures.plot_history(history, window=2)
    loss_line = fig.axes[0].lines[0]
    assert loss_line.get_xdata().tolist() == [1, 2, 3, 4, 5]
    np.testing.assert_allclose(loss_line.get_ydata(), [0.9, 0.8, 0.6, 0.45, 0.35])
    train, held_out = fig.axes[1].lines
    assert train.get_xdata().tolist() == held_out.get_xdata().tolist() == [3, 5]
    assert held_out.get_ydata().tolist() == history.eval_accuracy


def test_plot_feature_maps_saliency_occlusion(model, digits):
    x, y = digits
    features = internals.feature_maps(model, x[0])
    fig = figures.plot_feature_maps(
        features, ["conv1", "pool2", "logits"], max_channels=4
    )
    assert len(fig.axes) == 4 + 4 + 1
    np.testing.assert_allclose(
        fig.axes[0].images[0].get_array(), features["conv1"][..., 0]
    )
    with pytest.raises(ValueError, match="no features called"):
        figures.plot_feature_maps(features, ["conv9"])
    maps = saliency.saliency(model, x[:3], y[:3])
    fig = figures.plot_saliency(x[:3], maps)
    np.testing.assert_allclose(fig.axes[3].images[0].get_array(), np.abs(maps[0]))
    grid = saliency.occlusion_map(model, x[0], y[0], patch=6, stride=4)
    fig = figures.plot_occlusion(x[0], grid, 6, 4)
    np.testing.assert_allclose(fig.axes[1].images[0].get_array(), grid)


def test_plots_draw_the_measured_values():
    fig = figures.plot_activations(["sigmoid", "relu"], np.linspace(-2, 2, 5))
    lines = fig.axes[1].get_lines()
    derivs = [ln for ln in lines if ln.get_label() in ("sigmoid", "relu")]
    np.testing.assert_allclose(derivs[1].get_ydata(), [0, 0, 0, 1, 1])
    curve = internals.StepCurves(
        step=np.arange(1, 5),
        loss=np.array([4.0, 2.0, 1.0, 1.0]),
        eval_step=np.array([2, 4]),
        eval_accuracy=np.array([0.5, 0.75]),
        seconds=0.0,
        model=None,
    )
    fig = figures.plot_step_curves({"run": curve}, window=2)
    np.testing.assert_allclose(fig.axes[0].get_lines()[0].get_ydata(), [4, 3, 1.5, 1])
    np.testing.assert_allclose(fig.axes[1].get_lines()[0].get_ydata(), [0.5, 0.75])
    fig = figures.plot_temperature(np.array([0.0, 1.0, 2.0]), [1.0, 2.0])
    heights = [p.get_height() for p in fig.axes[1].patches]
    np.testing.assert_allclose(
        heights, jax.nn.softmax(jnp.array([0.0, 0.5, 1.0])), atol=1e-6
    )
    fig = figures.plot_gradient_norms(
        {"a": [1.0, 0.1], "b": {"conv1": 2.0, "head": 3.0}}
    )
    np.testing.assert_allclose(fig.axes[0].get_lines()[1].get_ydata(), [2.0, 3.0])
    fig = figures.plot_projection(
        np.array([[0, 0], [1, 1], [2, 2]]), np.array([0, 1, 1])
    )
    assert len(fig.axes[0].collections) == 2  # one scatter per class
    with pytest.raises(ValueError):
        figures.plot_projection(np.zeros((3, 3)), np.zeros(3))


def test_pool_and_kernel_figures_show_the_computed_values():
    x = np.array([[1, 1, 2, 4], [5, 6, 7, 8], [3, 2, 1, 0], [1, 2, 3, 4]], float)
    fig = figures.plot_pool_windows(x, 2, "max")
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
    fig = figures.plot_pool_windows(x, 2, "avg")
    assert [t.get_text() for t in fig.axes[1].texts] == ["3.25", "5.25", "2.00", "2.00"]
    with pytest.raises(ValueError, match="colours"):
        figures.plot_pool_windows(np.zeros((8, 8)), 2)
    image = np.random.default_rng(0).random((10, 10))
    fig = figures.plot_kernel_gallery({"a": image}, ["Sobel x", "Laplacian"])
    np.testing.assert_allclose(
        fig.axes[3].images[0].get_array(),
        kernels.apply_kernel(image, kernels.get_kernel("Laplacian")),
        atol=1e-6,
    )
    learned = np.stack([kernels.get_kernel("Sobel y"), np.ones((3, 3))], axis=-1)
    fig = figures.plot_filter_matches(learned, image, top=1)
    assert fig.axes[2].get_title().startswith("Sobel y (|cos| 1.00)")
    np.testing.assert_allclose(
        fig.axes[1].images[0].get_array(),
        kernels.apply_kernel(image, kernels.get_kernel("Sobel y")),
        atol=1e-6,
    )
