"""Tests of mnist_cnn.teach.animate."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from mnist_cnn.teach import animate, figures, ops

RNG = np.random.default_rng(1)


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
    anim = animate.animate_conv(x, w, b, stride=stride, padding=padding)
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


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_every_pool_frame_shows_the_library_value(kind):
    x = RNG.integers(0, 9, size=(4, 6, 2)).astype(np.float32)
    pool = nnx.max_pool if kind == "max" else nnx.avg_pool
    ref = np.asarray(pool(jnp.asarray(x[None]), (2, 2), (2, 2)))[0]
    anim = animate.animate_pool(x, 2, kind=kind)
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


def test_conv_equation_writes_out_the_inner_product():
    x = np.arange(9.0).reshape(3, 3)
    w = -np.ones((3, 3))
    step = ops.conv_steps(x, w)[0]
    text = animate.conv_equation(step, figures.number_format([0, 1]))
    assert text.startswith("0·(-1) + 1·(-1)") and text.endswith(f"= {-int(x.sum())}")


def test_animation_html_is_small():
    x = RNG.integers(0, 3, size=(5, 5)).astype(float)
    anim = animate.animate_conv(x, np.eye(3), stride=2, padding=1)
    html = animate.to_html(anim)
    assert len(html.data) < 1_000_000
    assert html.data.count("data:image/png;base64") == len(anim.steps) == 9


def test_animation_html_asks_for_nothing_outside_the_page():
    # The book works offline: the player's CDN stylesheet is dropped (the theme has the
    # icons).
    html = animate.to_html(
        animate.animate_pool(np.arange(16.0).reshape(4, 4), 2, 2, "max")
    ).data
    assert "https://" not in html and "http://" not in html
    assert html.count("fa-play") >= 1
