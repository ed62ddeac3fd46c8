"""Every hand-written backward rule equals jax.vjp / jax.grad of the library layer."""

import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import optax
import pytest
from flax import nnx

import mnist_cnn
from mnist_cnn.model import pool2x2
from mnist_cnn.teach import backprop
from mnist_cnn.train import loss_fn

# These tests draw frames by hand instead of rendering a movie; matplotlib warns.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Animation was deleted without rendering"
)


def vjp(f, dout, *args):
    """Gradients of <f(*args), dout> with respect to every argument (float32 arrays)."""
    args = [jnp.asarray(a, jnp.float32) for a in args]
    # Jitted: op by op, JAX compiles every primitive of f and of its transpose alone,
    # seconds per test for a few tiny arrays.
    _, pullback = jax.vjp(jax.jit(f), *args)
    return [np.asarray(g, np.float64) for g in pullback(jnp.asarray(dout, jnp.float32))]


def with_params(module):
    """f(x, kernel, bias) = module(x) with these parameters, differentiable in all."""
    graphdef, _ = nnx.split(module)

    def f(x, w, b):
        return nnx.merge(
            graphdef, nnx.State({"kernel": nnx.Param(w), "bias": nnx.Param(b)})
        )(x)

    return f


def close(ours, theirs, atol=1e-5):
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=atol)


@pytest.mark.parametrize("n,k", [(1, 2), (5, 10), (32, 7)])
def test_softmax_cross_entropy_gradient_is_p_minus_onehot(n, k):
    rng = np.random.default_rng(n)
    logits = rng.normal(scale=3.0, size=(n, k))
    y = rng.integers(0, k, size=n)

    def loss(z):
        return optax.softmax_cross_entropy_with_integer_labels(z, y).mean()

    def onehot_loss(z):  # the form the package's loss uses
        return optax.softmax_cross_entropy(z, jax.nn.one_hot(y, k)).mean()

    z = jnp.asarray(logits, jnp.float32)
    ours = backprop.softmax_cross_entropy_backward(logits, y)
    close(ours, jax.jit(jax.grad(loss))(z))
    close(ours, jax.jit(jax.grad(onehot_loss))(z))
    assert backprop.cross_entropy(logits, y) == pytest.approx(float(loss(z)), rel=1e-5)


def test_softmax_cross_entropy_rejects_bad_labels():
    with pytest.raises(ValueError, match="labels must lie"):
        backprop.softmax_cross_entropy_backward(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ValueError, match="one per row"):
        backprop.softmax_cross_entropy_backward(np.zeros((2, 3)), np.array([0]))


@pytest.mark.parametrize("n,d,m", [(1, 1, 1), (4, 7, 3), (16, 30, 10)])
def test_dense_backward_matches_nnx_linear(n, d, m):
    rng = np.random.default_rng(n * 100 + d)
    layer = nnx.Linear(d, m, rngs=nnx.Rngs(d))
    w, b = np.asarray(layer.kernel[...]), np.asarray(layer.bias[...])
    x = rng.normal(size=(n, d))
    dout = rng.normal(size=(n, m))

    ref = vjp(with_params(layer), dout, x, w, b)
    for ours, theirs in zip(backprop.dense_backward(dout, x, w), ref):
        close(ours, theirs)


@pytest.mark.parametrize("shape", [(3,), (2, 5), (2, 6, 6, 4)])
def test_activation_backward_matches_jax(shape):
    rng = np.random.default_rng(len(shape))
    x = rng.normal(size=shape)
    x.flat[0] = 0.0  # jax.nn.relu's derivative at exactly 0 is 0: ours must agree
    dout = rng.normal(size=shape)
    close(backprop.relu_backward(dout, x), vjp(jax.nn.relu, dout, x)[0])
    close(backprop.sigmoid_backward(dout, x), vjp(jax.nn.sigmoid, dout, x)[0])
    assert backprop.relu_backward(dout, x).flat[0] == 0.0


@pytest.mark.parametrize("seed", range(4))
def test_pool2x2_backward_matches_the_models_pooling(seed):
    rng = np.random.default_rng(seed)
    n, h, w, c = rng.integers(1, 3), rng.integers(2, 9), rng.integers(2, 9), 3
    x = rng.normal(size=(n, h, w, c))
    # Ties: round some values so several cells of a window share the maximum.
    x[: n // 2 + 1] = np.round(x[: n // 2 + 1])
    dout = rng.normal(size=(n, h // 2, w // 2, c))
    close(
        backprop.avg_pool_backward(dout, x.shape),
        vjp(lambda v: pool2x2(v, "avg"), dout, x)[0],
    )
    close(
        backprop.max_pool_backward(dout, x, ties="split"),
        vjp(lambda v: pool2x2(v, "max"), dout, x)[0],
    )


@pytest.mark.parametrize("size,stride", [(2, 2), (3, 2), (2, 1), (3, 3)])
def test_pool_backward_matches_flax_pools(size, stride):
    rng = np.random.default_rng(size * 10 + stride)
    x = rng.integers(-2, 3, size=(2, 7, 8, 2)).astype(np.float64)  # many ties
    oh, ow = (7 - size) // stride + 1, (8 - size) // stride + 1
    dout = rng.normal(size=(2, oh, ow, 2))
    win, strides = (size, size), (stride, stride)
    close(
        backprop.avg_pool_backward(dout, x.shape, size, stride),
        vjp(lambda v: nnx.avg_pool(v, win, strides), dout, x)[0],
    )
    close(
        backprop.max_pool_backward(dout, x, size, stride, ties="first"),
        vjp(lambda v: nnx.max_pool(v, win, strides), dout, x)[0],
    )


def test_max_pool_gradient_goes_only_to_the_winners():
    x = np.array([[1, 1, 2, 4], [5, 6, 7, 8], [3, 2, 1, 0], [1, 2, 3, 4]], float)
    dx = backprop.max_pool_backward(np.ones((1, 2, 2, 1)), x[None, :, :, None])
    winners = np.zeros((4, 4))
    winners[1, 1] = winners[1, 3] = winners[2, 0] = winners[3, 3] = 1
    np.testing.assert_array_equal(dx[0, :, :, 0], winners)


def lax_conv(x, w, b, stride, padding):
    out = jax.lax.conv_general_dilated(
        x,
        w,
        (stride, stride),
        [(padding, padding)] * 2,
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
        precision=jax.lax.Precision.HIGHEST,
    )
    return out + b


def conv_cases(count=36, seed=0):
    """Random convolution shapes; every (stride, padding) in 1-3 x 0-2 appears."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        stride, padding = i % 3 + 1, (i // 3) % 3
        k = int(rng.integers(1, 5))
        h = int(rng.integers(max(1, k - 2 * padding), 11))
        w = int(rng.integers(max(1, k - 2 * padding), 11))
        yield (
            int(rng.integers(1, 4)),
            h,
            w,
            int(rng.integers(1, 4)),
            int(rng.integers(1, 4)),
            k,
            stride,
            padding,
            int(rng.integers(0, 1000)),
        )


CASES = list(conv_cases())


def test_the_cases_cover_every_stride_and_padding():
    assert len(CASES) >= 30
    assert {(c[6], c[7]) for c in CASES} == {
        (s, p) for s in (1, 2, 3) for p in (0, 1, 2)
    }


@pytest.mark.parametrize("n,h,w,c_in,c_out,k,stride,padding,seed", CASES)
def test_conv_backward_matches_lax(n, h, w, c_in, c_out, k, stride, padding, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, h, w, c_in))
    kern = rng.normal(size=(k, k, c_in, c_out))
    b = rng.normal(size=c_out)
    out = backprop.conv2d_forward(x, kern, b, stride, padding)
    ref_out = lax_conv(
        jnp.asarray(x, jnp.float32), jnp.asarray(kern, jnp.float32), b, stride, padding
    )
    close(out, ref_out, atol=1e-4)
    dout = rng.normal(size=out.shape)
    ref = vjp(lambda x, w, b: lax_conv(x, w, b, stride, padding), dout, x, kern, b)
    for ours, theirs in zip(
        backprop.conv2d_backward(dout, x, kern, stride, padding), ref
    ):
        close(ours, theirs, atol=1e-4)


@pytest.mark.parametrize("stride", [1, 2])
def test_conv_backward_matches_nnx_conv(stride):
    rng = np.random.default_rng(stride)
    conv = nnx.Conv(2, 3, (3, 3), strides=stride, padding=1, rngs=nnx.Rngs(0))
    x = rng.normal(size=(2, 9, 8, 2))
    kern, b = np.asarray(conv.kernel[...]), np.asarray(conv.bias[...])
    dout = rng.normal(size=conv(jnp.asarray(x, jnp.float32)).shape)

    ref = vjp(with_params(conv), dout, x, kern, b)
    for ours, theirs in zip(backprop.conv2d_backward(dout, x, kern, stride, 1), ref):
        close(ours, theirs, atol=1e-4)


def test_conv_gradients_are_the_correlation_and_the_full_convolution():
    # The textbook forms on one channel, with the from-scratch loop convolution.
    from mnist_cnn.teach import ops

    rng = np.random.default_rng(3)
    x, w = rng.normal(size=(6, 6)), rng.normal(size=(3, 3))
    dout = rng.normal(size=(4, 4))
    dx, dw, _ = backprop.conv2d_backward(
        dout[None, :, :, None], x[None, :, :, None], w[:, :, None, None]
    )
    close(dw[:, :, 0, 0], ops.conv2d(x, dout))  # input correlated with the gradient
    full = ops.conv2d(np.pad(dout, 2), w[::-1, ::-1])  # full convolution, flipped w
    close(dx[0, :, :, 0], full)


def test_conv_backward_rejects_a_wrong_gradient_shape():
    with pytest.raises(ValueError, match="dout must have the shape"):
        backprop.conv2d_backward(
            np.zeros((1, 4, 4, 1)), np.zeros((1, 5, 5, 1)), np.zeros((3, 3, 1, 1))
        )


@pytest.fixture(scope="module")
def batch(mnist):
    (x_train, y_train), _ = mnist
    return x_train[:16].astype(np.float32) / 255.0, y_train[:16].astype(np.int32)


@pytest.mark.parametrize(
    "config",
    [
        mnist_cnn.Config(),
        mnist_cnn.Config(conv_channels=(4, 6), dense=(8, 5), pool="max"),
        mnist_cnn.Config(conv_channels=(3,), dense=(), activation="sigmoid"),
    ],
    ids=["default", "max-two-dense", "sigmoid-one-block"],
)
def test_hand_chained_gradients_equal_jax_grad_for_every_parameter(batch, config):
    x, y = batch
    model = mnist_cnn.CNN(config, rngs=nnx.Rngs(0))
    model.set_input_stats(0.13, 0.31)
    loss, grads = backprop.model_gradients(model, x, y)
    (ref_loss, _), ref = nnx.jit(nnx.value_and_grad(loss_fn, has_aux=True))(
        model, jnp.asarray(x)[..., None], jnp.asarray(y)
    )
    assert loss == pytest.approx(float(ref_loss), abs=1e-5)
    ref_flat = dict(nnx.to_flat_state(ref))
    ours_flat = {}

    def walk(d, path=()):
        for k, v in d.items():
            if isinstance(v, dict):
                walk(v, (*path, k))
            else:
                ours_flat[(*path, k)] = v

    walk(grads)
    assert set(ours_flat) == set(ref_flat)  # keyed exactly like nnx.state
    for key, g in ours_flat.items():
        theirs = np.asarray(ref_flat[key][...])
        assert g.shape == theirs.shape, key
        assert np.max(np.abs(g - theirs)) <= 1e-4, key
        assert np.any(theirs != 0), key  # the comparison is not trivially 0 == 0


def test_model_gradients_refuses_dropout():
    model = mnist_cnn.CNN(mnist_cnn.Config(dropout=0.5), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="dropout"):
        backprop.model_gradients(model, np.zeros((1, 28, 28)), np.array([0]))


@pytest.mark.parametrize("stride,padding", [(1, 0), (2, 1), (1, 1)])
def test_every_backward_frame_adds_what_the_gradient_says(stride, padding):
    rng = np.random.default_rng(stride + 3 * padding)
    x = rng.integers(0, 3, size=(5, 5)).astype(float)
    w = rng.integers(-1, 2, size=(3, 3)).astype(float)
    oh = (5 + 2 * padding - 3) // stride + 1
    dout = rng.integers(-2, 3, size=(oh, oh)).astype(float)
    ref_dx, ref_dw = vjp(
        lambda x, w: lax_conv(
            x[None, :, :, None], w[:, :, None, None], 0.0, stride, padding
        )[0, :, :, 0],
        dout,
        x,
        w,
    )
    anim = backprop.animate_conv_backward(x, w, dout, stride=stride, padding=padding)
    steps = anim.steps
    assert len(steps) == dout.size  # one frame per output-gradient cell
    previous = np.zeros_like(steps[0].dx)
    for k, step in enumerate(steps):
        assert step.grad == dout[step.row, step.col]
        added = step.dx - previous
        window = np.zeros_like(added)
        window[step.top : step.top + 3, step.left : step.left + 3, 0] = step.grad * w
        np.testing.assert_allclose(added, window)  # only the window changed, by g·w
        previous = step.dx
        anim.draw_frame(k)
    # After the last frame, the drawn dx (padding cut off) and dw are JAX's gradients.
    hp = 5 + 2 * padding
    shown_dx = np.array(
        [float(t.get_text()) if t.get_text() else 0.0 for t in anim.dx_texts]
    ).reshape(hp, hp)
    inner = shown_dx[padding : padding + 5, padding : padding + 5]
    np.testing.assert_allclose(inner, ref_dx, atol=1e-5)
    shown_dw = np.array([float(t.get_text()) for t in anim.dw_texts]).reshape(3, 3)
    np.testing.assert_allclose(shown_dw, ref_dw, atol=1e-5)
    np.testing.assert_allclose(steps[-1].dw[:, :, 0, 0], ref_dw, atol=1e-5)
    plt.close(anim._fig)


def test_backward_animation_html_is_small():
    from mnist_cnn.teach import animate

    rng = np.random.default_rng(0)
    anim = backprop.animate_conv_backward(
        rng.integers(0, 3, (4, 4)), np.eye(2), np.ones((3, 3))
    )
    html = animate.to_html(anim)
    assert html.data.count("data:image/png;base64") == len(anim.steps) == 9
    assert len(html.data) < 1_000_000
