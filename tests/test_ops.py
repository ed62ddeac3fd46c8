"""The teaching ops in mnist_cnn.ops against jax.lax and flax.nnx on random shapes,
strides, paddings.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from mnist_cnn.teach import ops

RNG = np.random.default_rng(0)


def lax_conv(x, w, b, stride, padding):
    """Reference: jax.lax.conv_general_dilated, NHWC/HWIO, symmetric zero padding."""
    sh, sw = (stride, stride) if np.ndim(stride) == 0 else stride
    ph, pw = (padding, padding) if np.ndim(padding) == 0 else padding
    out = jax.lax.conv_general_dilated(
        jnp.asarray(x, jnp.float32),
        jnp.asarray(w, jnp.float32),
        (sh, sw),
        [(ph, ph), (pw, pw)],
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
        precision=jax.lax.Precision.HIGHEST,
    )
    return np.asarray(out) + b


def random_case(rng):
    """A random batch, filter bank, bias, stride and padding; the window always fits."""
    n, c_in, c_out = rng.integers(1, 3), rng.integers(1, 4), rng.integers(1, 4)
    kh, kw = rng.integers(1, 5, size=2)
    ph, pw = rng.integers(0, 3, size=2)
    h = rng.integers(max(1, kh - 2 * ph), 9)
    w_ = rng.integers(max(1, kw - 2 * pw), 9)
    stride = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    x = rng.normal(size=(n, h, w_, c_in))
    w = rng.normal(size=(kh, kw, c_in, c_out))
    b = rng.normal(size=c_out)
    return x, w, b, stride, (int(ph), int(pw))


CASES = [random_case(np.random.default_rng(seed)) for seed in range(12)]


@pytest.mark.parametrize("fn", [ops.conv2d, ops.conv2d_im2col])
@pytest.mark.parametrize("case", range(len(CASES)))
def test_conv_matches_lax(fn, case):
    x, w, b, stride, padding = CASES[case]
    np.testing.assert_allclose(
        fn(x, w, b, stride, padding),
        lax_conv(x, w, b, stride, padding),
        atol=1e-4,
        rtol=1e-4,
    )


@pytest.mark.parametrize("case", [4, 7])
def test_conv_matches_flax_conv_with_same_weights(case):
    x, w, b, stride, padding = CASES[case]
    layer = nnx.Conv(
        w.shape[2],
        w.shape[3],
        w.shape[:2],
        strides=stride,
        padding=[(padding[0], padding[0]), (padding[1], padding[1])],
        rngs=nnx.Rngs(0),
    )
    layer.kernel[...] = jnp.asarray(w, jnp.float32)
    layer.bias[...] = jnp.asarray(b, jnp.float32)
    expected = np.asarray(layer(jnp.asarray(x, jnp.float32)))
    np.testing.assert_allclose(
        ops.conv2d(x, w, b, stride, padding), expected, atol=1e-3
    )
    np.testing.assert_allclose(
        ops.conv2d_im2col(x, w, b, stride, padding), expected, atol=1e-3
    )


def test_single_image_layouts_and_hand_computed_value():
    x = np.arange(25.0).reshape(5, 5)
    k = np.array([[1.0, 0, -1], [1, 0, -1], [1, 0, -1]])
    out = ops.conv2d(x, k)
    assert out.shape == (3, 3)
    # Top-left window by hand: columns 0 and 2 of rows 0..2 -> (0+5+10) - (2+7+12) = -6.
    assert out[0, 0] == -6.0
    np.testing.assert_allclose(ops.conv2d_im2col(x, k), out)
    # (H, W, C) in -> (H', W', C_out) out, equal to the batched call.
    xc = RNG.normal(size=(6, 7, 2))
    wc = RNG.normal(size=(3, 3, 2, 4))
    np.testing.assert_allclose(
        ops.conv2d(xc, wc, stride=2, padding=1),
        ops.conv2d(xc[None], wc, stride=2, padding=1)[0],
    )


def test_im2col_rows_are_windows():
    x = RNG.normal(size=(1, 5, 6, 2))
    cols = ops.im2col(x, 3, 2, stride=(2, 1), padding=1)
    xp = ops.zero_pad(x, 1)
    assert cols.shape == (1, 3 * 7, 3 * 2 * 2)  # H' = (5+2-3)//2+1, W' = (6+2-2)//1+1
    # Row for output (1, 4): window starts at padded (2, 4).
    np.testing.assert_array_equal(cols[0, 1 * 7 + 4], xp[0, 2:5, 4:6, :].ravel())


@pytest.mark.parametrize(
    "n,k,s,p",
    [
        (28, 3, 1, 1),
        (5, 3, 2, 1),
        (7, 3, 2, 0),
        (32, 5, 1, 2),
        (10, 4, 3, 0),
        (227, 11, 4, 0),
    ],
)
def test_conv_output_size_matches_lax_shape(n, k, s, p):
    shape = lax_conv(np.zeros((1, n, n, 1)), np.zeros((k, k, 1, 1)), 0, s, p).shape
    assert ops.conv_output_size(n, k, s, p) == shape[1]


def test_conv_output_size_errors_say_what_to_change():
    with pytest.raises(ValueError, match=r"not divisible by stride 2.*stride=1"):
        ops.conv_output_size(
            6, 3, 2, 1
        )  # 6 + 2 - 3 = 5 leaves one row over; no padding helps
    with pytest.raises(ValueError, match=r"not divisible by stride 3.*padding=3"):
        ops.conv_output_size(6, 3, 3, 1)  # 6 + 6 - 3 = 9 is divisible by 3
    assert (
        ops.conv_output_size(6, 3, 2, 1, strict=False)
        == lax_conv(np.zeros((1, 6, 6, 1)), np.zeros((3, 3, 1, 1)), 0, 2, 1).shape[1]
    )
    with pytest.raises(ValueError, match="does not fit"):
        ops.conv_output_size(2, 5)
    with pytest.raises(ValueError, match="stride"):
        ops.conv_output_size(5, 3, 0)


def test_bad_shapes_are_clear_errors():
    with pytest.raises(ValueError, match="input channels"):
        ops.conv2d(np.zeros((5, 5, 3)), np.zeros((3, 3, 2, 1)))
    with pytest.raises(ValueError, match="one bias per filter"):
        ops.conv2d(np.zeros((5, 5)), np.zeros((3, 3)), b=np.zeros(2))
    with pytest.raises(ValueError, match="shape"):
        ops.conv2d(np.zeros(5), np.zeros((3, 3)))


def test_layer_costs_count_the_weights_of_real_layers():
    cost = ops.conv_layer_cost((28, 28, 1), 16, 3, padding=1)
    layer = nnx.Conv(1, 16, (3, 3), padding=1, rngs=nnx.Rngs(0))
    assert (
        cost.parameters == layer.kernel.get_value().size + layer.bias.get_value().size
    )
    assert cost.output_shape == layer(jnp.zeros((1, 28, 28, 1))).shape[1:]
    assert cost.multiply_adds == 28 * 28 * 16 * 9
    dense = ops.dense_layer_cost(28 * 28, int(np.prod(cost.output_shape)))
    lin = nnx.eval_shape(
        lambda: nnx.Linear(784, 28 * 28 * 16, rngs=nnx.Rngs(0))
    )  # shapes only
    assert dense.parameters == lin.kernel.get_value().size + lin.bias.get_value().size


def reference_pool(x, size, stride, kind):
    if kind == "max":
        return np.asarray(nnx.max_pool(jnp.asarray(x), (size, size), (stride, stride)))
    return np.asarray(nnx.avg_pool(jnp.asarray(x), (size, size), (stride, stride)))


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize(
    "shape,size,stride",
    [
        ((2, 6, 6, 3), 2, 2),
        ((1, 7, 5, 2), 3, 2),
        ((1, 8, 8, 1), 2, 1),
        ((3, 5, 9, 2), 3, 3),
    ],
)
def test_pooling_matches_flax(kind, shape, size, stride):
    x = RNG.normal(size=shape).astype(np.float32)
    fn = ops.max_pool2d if kind == "max" else ops.avg_pool2d
    np.testing.assert_allclose(
        fn(x, size, stride), reference_pool(x, size, stride, kind), atol=1e-6
    )


def test_pooling_default_stride_and_2d_input():
    x = np.array([[1.0, 1, 2, 4], [5, 6, 7, 8], [3, 2, 1, 0], [1, 2, 3, 4]])
    np.testing.assert_array_equal(ops.max_pool2d(x), [[6, 8], [3, 4]])
    np.testing.assert_allclose(ops.avg_pool2d(x), [[13 / 4, 21 / 4], [2, 2]])
    with pytest.raises(ValueError, match="larger than"):
        ops.max_pool2d(x, 5)


def test_steps_reproduce_the_library_outputs():
    x, w, b, stride, padding = CASES[4]
    steps = ops.conv_steps(x[0], w, b, stride, padding)
    ref = lax_conv(x[:1], w, b, stride, padding)[0]
    assert len(steps) == ref.size
    for s in steps:
        assert s.value == pytest.approx(ref[s.row, s.col, s.channel], abs=1e-4)
        np.testing.assert_allclose(s.products, s.window * s.weights)
    xp = RNG.normal(size=(5, 7, 2)).astype(np.float32)
    ref = reference_pool(xp[None], 2, 2, "avg")[0]
    for s in ops.pool_steps(xp, 2, 2, "avg"):
        assert s.value == pytest.approx(ref[s.row, s.col, s.channel], abs=1e-6)
