"""Plots and animations: every animation frame shows the library's value; figures have the right panels."""

import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest
from flax import nnx

from mnist_cnn import viz

RNG = np.random.default_rng(1)
# These tests draw frames by hand instead of rendering a movie; matplotlib warns about that.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Animation was deleted without rendering"
)


def lax_conv(x, w, b, stride, padding):
    out = jax.lax.conv_general_dilated(
        jnp.asarray(x[None], jnp.float32),
        jnp.asarray(w, jnp.float32),
        (stride, stride),
        [(padding, padding)] * 2,
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
        precision=jax.lax.Precision.HIGHEST,
    )
    return np.asarray(out[0]) + b


@pytest.mark.parametrize("stride,padding", [(1, 0), (2, 1)])
def test_every_conv_frame_shows_the_library_value(stride, padding):
    # The chapter-3 example: a 5x5x3 input, two 3x3x3 filters.
    x = RNG.integers(0, 3, size=(5, 5, 3)).astype(float)
    w = RNG.integers(-1, 2, size=(3, 3, 3, 2)).astype(float)
    b = np.array([1.0, 0.0])
    ref = lax_conv(x, w, b, stride, padding)
    anim = viz.animate_conv(x, w, b, stride=stride, padding=padding)
    assert len(anim.steps) == ref.size  # one frame per output number
    for k, step in enumerate(anim.steps):
        assert step.value == pytest.approx(
            ref[step.row, step.col, step.channel], abs=1e-5
        )
        anim.draw_frame(k)
        # The cell just computed is drawn with the library's value.
        shown = anim.output_texts[step.channel][
            step.row * ref.shape[1] + step.col
        ].get_text()
        assert float(shown) == pytest.approx(ref[step.row, step.col, step.channel])
    # After the last frame the whole output is on screen.
    drawn = np.array(
        [[float(t.get_text()) for t in texts] for texts in anim.output_texts]
    )
    np.testing.assert_allclose(drawn, np.moveaxis(ref, -1, 0).reshape(2, -1))
    plt.close(anim._fig)


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_every_pool_frame_shows_the_library_value(kind):
    x = RNG.integers(0, 9, size=(4, 6, 2)).astype(np.float32)
    pool = nnx.max_pool if kind == "max" else nnx.avg_pool
    ref = np.asarray(pool(jnp.asarray(x[None]), (2, 2), (2, 2)))[0]
    anim = viz.animate_pool(x, 2, kind=kind)
    assert len(anim.steps) == ref.size
    anim.draw_frame(len(anim.steps) - 1)
    for step in anim.steps:
        assert step.value == pytest.approx(ref[step.row, step.col, step.channel])
        shown = anim.output_texts[step.channel][
            step.row * ref.shape[1] + step.col
        ].get_text()
        assert float(shown) == pytest.approx(
            ref[step.row, step.col, step.channel], abs=0.01
        )
    plt.close(anim._fig)


def test_conv_equation_writes_out_the_inner_product():
    x = np.arange(9.0).reshape(3, 3)
    w = -np.ones((3, 3))
    step = viz.conv_frames(x, w)[0]
    text = viz.conv_equation(step, viz.number_format([0, 1]))
    assert text.startswith("0·(-1) + 1·(-1)") and text.endswith(f"= {-int(x.sum())}")


def test_animation_html_is_small():
    x = RNG.integers(0, 3, size=(5, 5)).astype(float)
    anim = viz.animate_conv(x, np.eye(3), stride=2, padding=1)
    html = viz.to_html(anim)
    assert len(html.data) < 1_000_000
    assert html.data.count("data:image/png;base64") == len(anim.steps) == 9


def test_draw_matrix_shows_every_number_and_the_padding():
    m = np.pad(np.arange(1.0, 10.0).reshape(3, 3), 1)
    fig, ax = plt.subplots()
    texts = viz.draw_matrix(ax, m, padding=1, highlight=(0, 0, 3, 3))
    assert [float(t.get_text()) for t in texts] == m.ravel().tolist()
    grey = [
        p
        for p in ax.patches
        if p.get_facecolor()[:3] == matplotlib.colors.to_rgb(viz.PAD_COLOR)
    ]
    assert len(grey) == m.size - 9  # exactly the padding ring
    plt.close(fig)


def test_grids_have_one_panel_per_item():
    fig = viz.show_images(RNG.random((5, 8, 8)), titles=list("abcde"), ncols=3)
    assert sum(ax.has_data() for ax in fig.axes) == 5
    assert [ax.get_title() for ax in fig.axes[:5]] == list("abcde")
    kernel = RNG.normal(size=(3, 3, 1, 6))
    fig2 = viz.show_filters(kernel)
    shown = [ax.images[0].get_array() for ax in fig2.axes if ax.images]
    np.testing.assert_allclose(np.stack(shown, -1), kernel[:, :, 0, :])
    fig3 = viz.show_feature_maps(RNG.random((1, 7, 7, 4)))
    assert sum(ax.has_data() for ax in fig3.axes) == 4
    with pytest.raises(ValueError, match="titles"):
        viz.show_images(RNG.random((2, 4, 4)), titles=["one"])
    plt.close("all")


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
    fig = viz.draw_architecture(shapes)
    labels = " ".join(t.get_text() for t in fig.axes[0].texts)
    names = [
        t.get_text().split("\n")[1] for t in fig.axes[0].texts if "\n" in t.get_text()
    ]
    assert names == list(shapes)
    for text in ["28×28×8", "14×14×8", "1568", "CONV", "RELU", "POOL", "FC"]:
        assert text in labels
    plt.close(fig)


def test_architecture_of_a_real_model_is_drawn_in_forward_order():
    from flax import nnx

    import mnist_cnn

    model = mnist_cnn.CNN(
        mnist_cnn.Config(conv_channels=(4, 8, 8), dense=(16, 16)), rngs=nnx.Rngs(0)
    )
    fig = viz.draw_architecture(mnist_cnn.layer_shapes(model))
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
    plt.close(fig)


def test_animation_html_asks_for_nothing_outside_the_page():
    # The book works offline: the player's CDN stylesheet is dropped (the theme has the icons).
    html = viz.to_html(
        viz.animate_pool(np.arange(16.0).reshape(4, 4), 2, 2, "max")
    ).data
    assert "https://" not in html and "http://" not in html
    assert html.count("fa-play") >= 1
