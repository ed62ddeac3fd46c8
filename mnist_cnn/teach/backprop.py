"""Backpropagation by hand: the backward rule of every layer of the book's CNN.

Each `*_backward` function takes the gradient of the loss with respect to a layer's
output (`dout`, same shape as the output) and what the forward pass computed, and
returns the gradients with respect to the layer's input and parameters. Chaining them
from the loss back to the first convolution is backpropagation (反向传播);
`model_gradients` does exactly that for `mnist_cnn.CNN`, and the tests check every rule,
and the chain, against `jax.vjp` / `jax.grad`.

Layouts follow Flax: images NHWC, filters HWIO, dense kernels (inputs, outputs). The
arithmetic is float64 NumPy, so numbers printed for small hand-made tensors are exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.animation import FuncAnimation
from matplotlib.patches import Rectangle
from numpy.typing import ArrayLike

from mnist_cnn.teach import animate
from mnist_cnn.teach.ops import IntOrPair, pair


def _array(a: ArrayLike, ndim: int, name: str, shape: str) -> np.ndarray:
    """`a` as a float64 array of rank `ndim`, or a ValueError naming the shape."""
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != ndim:
        raise ValueError(f"{name} must have shape {shape}, got shape {a.shape}")
    return a


def _same_shape(dout: np.ndarray, expected: tuple[int, ...], what: str) -> None:
    if dout.shape != tuple(expected):
        raise ValueError(
            f"dout must have the shape of the {what}'s output {tuple(expected)}, "
            f"got {dout.shape}"
        )


# --- softmax + cross-entropy ---------------------------------------------------------


def softmax(logits: ArrayLike) -> np.ndarray:
    """Row-wise softmax of (N, K) logits, computed stably (minus the largest logit)."""
    z = _array(logits, 2, "logits", "(N, K)")
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def cross_entropy(logits: ArrayLike, labels: ArrayLike) -> float:
    """Mean cross-entropy (交叉熵) of (N, K) logits against (N,) integer labels."""
    z = _array(logits, 2, "logits", "(N, K)")
    y = _labels(labels, z.shape)
    m = z.max(axis=1, keepdims=True)
    log_p = z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True))  # (N, K)
    return float(-log_p[np.arange(len(y)), y].mean())


def _labels(labels: ArrayLike, logits_shape: tuple[int, int]) -> np.ndarray:
    y = np.asarray(labels)
    n, k = logits_shape
    if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(
            f"labels must be {n} integers (one per row of logits), got shape {y.shape} "
            f"and dtype {y.dtype}"
        )
    if y.size and (y.min() < 0 or y.max() >= k):
        raise ValueError(f"labels must lie in 0..{k - 1}, got {y.min()}..{y.max()}")
    return y


def softmax_cross_entropy_backward(logits: ArrayLike, labels: ArrayLike) -> np.ndarray:
    """d(mean cross-entropy)/d(logits) = (softmax(logits) - onehot(labels)) / N."""
    p = softmax(logits)  # (N, K)
    y = _labels(labels, p.shape)
    onehot = np.eye(p.shape[1])[y]  # (N, K)
    return (p - onehot) / len(y)  # the loss is a mean over the batch


# --- dense layer and activations -----------------------------------------------------


def dense_backward(
    dout: ArrayLike, x: ArrayLike, w: ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Backward of y = x @ w + b: x (N, D), w (D, M), dout (N, M) -> dx, dw, db (M,)."""
    x = _array(x, 2, "x", "(N, D)")
    w = _array(w, 2, "w", "(D, M)")
    dout = _array(dout, 2, "dout", "(N, M)")
    _same_shape(dout, (x.shape[0], w.shape[1]), "dense layer")
    dx = dout @ w.T  # each input fed every output, through its weight
    dw = x.T @ dout  # weight (i, j) scaled input i on its way to output j, in every row
    db = dout.sum(axis=0)  # a bias is added to every row of the batch
    return dx, dw, db


def relu_backward(dout: ArrayLike, x: ArrayLike) -> np.ndarray:
    """Backward of max(x, 0): dout where x > 0, else 0 (also at 0, like jax.nn.relu)."""
    x = np.asarray(x, dtype=np.float64)
    dout = np.asarray(dout, dtype=np.float64)
    _same_shape(dout, x.shape, "ReLU")
    return dout * (x > 0)


def sigmoid_backward(dout: ArrayLike, x: ArrayLike) -> np.ndarray:
    """Backward of s(x) = 1 / (1 + e^-x): dout * s(x) * (1 - s(x)), any shape."""
    x = np.asarray(x, dtype=np.float64)
    dout = np.asarray(dout, dtype=np.float64)
    _same_shape(dout, x.shape, "sigmoid")
    s = 1.0 / (1.0 + np.exp(-x))
    return dout * s * (1.0 - s)


# --- pooling -------------------------------------------------------------------------


def _pool_geometry(
    x_shape: tuple[int, ...], size: IntOrPair, stride: IntOrPair | None
) -> tuple[int, int, int, int, int, int]:
    if len(x_shape) != 4:
        raise ValueError(f"x must have shape (N, H, W, C), got shape {tuple(x_shape)}")
    kh, kw = pair(size, "size", 1)
    sh, sw = (kh, kw) if stride is None else pair(stride, "stride", 1)
    _, h, w, _ = x_shape
    if kh > h or kw > w:
        raise ValueError(f"pooling window {kh}x{kw} is larger than the {h}x{w} input")
    # Rows and columns no window reaches (odd edges) are dropped, like jax and flax.
    return kh, kw, sh, sw, (h - kh) // sh + 1, (w - kw) // sw + 1


def avg_pool_backward(
    dout: ArrayLike,
    x_shape: tuple[int, int, int, int],
    size: IntOrPair = 2,
    stride: IntOrPair | None = None,
) -> np.ndarray:
    """Backward of average pooling: each window's gradient is shared by its cells.

    dout: (N, H', W', C); returns dx of shape x_shape = (N, H, W, C). Overlapping
    windows add up; cells no window reaches get 0.
    """
    kh, kw, sh, sw, oh, ow = _pool_geometry(x_shape, size, stride)
    dout = np.asarray(dout, dtype=np.float64)
    _same_shape(dout, (x_shape[0], oh, ow, x_shape[3]), "pooling")
    dx = np.zeros(x_shape)
    for r in range(oh):
        for c in range(ow):
            # Every cell of the window moved the mean by 1/(kh*kw) of its own change.
            dx[:, r * sh : r * sh + kh, c * sw : c * sw + kw, :] += dout[
                :, r : r + 1, c : c + 1, :
            ] / (kh * kw)
    return dx


def max_pool_backward(
    dout: ArrayLike,
    x: ArrayLike,
    size: IntOrPair = 2,
    stride: IntOrPair | None = None,
    ties: str = "split",
) -> np.ndarray:
    """Backward of max pooling: each window's gradient goes only to its winner(s).

    x: (N, H, W, C), dout: (N, H', W', C) -> dx (N, H, W, C). When several cells share
    the maximum, `ties="split"` divides the gradient equally among them, as jax.grad of
    `jnp.max` does (and so the model's `pool2x2`); `ties="first"` gives it all to the
    first in row-major order, as jax.grad of flax's `nnx.max_pool` does.
    """
    if ties not in ("split", "first"):
        raise ValueError(f"ties must be 'split' or 'first', got {ties!r}")
    x = _array(x, 4, "x", "(N, H, W, C)")
    kh, kw, sh, sw, oh, ow = _pool_geometry(x.shape, size, stride)
    dout = np.asarray(dout, dtype=np.float64)
    _same_shape(dout, (x.shape[0], oh, ow, x.shape[3]), "pooling")
    dx = np.zeros_like(x)
    for r in range(oh):
        for c in range(ow):
            window = x[:, r * sh : r * sh + kh, c * sw : c * sw + kw, :]  # (N,kh,kw,C)
            winners = window == window.max(axis=(1, 2), keepdims=True)
            if ties == "first":
                flat = winners.reshape(len(x), kh * kw, -1)
                first = np.argmax(flat, axis=1)  # first True along the window
                winners = np.zeros_like(flat)
                np.put_along_axis(winners, first[:, None, :], True, axis=1)
                winners = winners.reshape(window.shape)
            share = winners / winners.sum(axis=(1, 2), keepdims=True)
            dx[:, r * sh : r * sh + kh, c * sw : c * sw + kw, :] += (
                share * dout[:, r : r + 1, c : c + 1, :]
            )
    return dx


# --- convolution ---------------------------------------------------------------------


def _correlate(x: np.ndarray, w: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Valid correlation, stride 1: x (N, H, W, C), w (kh, kw, C, F) -> (N, oh, ow, F).

    One term per filter offset (a, b): the shifted input times that tap of the filter.
    """
    kh, kw = w.shape[:2]
    out = np.zeros((x.shape[0], out_h, out_w, w.shape[3]))
    for a in range(kh):
        for b in range(kw):
            out += x[:, a : a + out_h, b : b + out_w, :] @ w[a, b]  # (..., C) @ (C, F)
    return out


def conv2d_forward(
    x: ArrayLike,
    w: ArrayLike,
    b: ArrayLike | None = None,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
) -> np.ndarray:
    """Convolution (cross-correlation) of x (N, H, W, C_in) with w (kh, kw, C_in, C_o).

    Vectorised over positions, for the backward chain; the same numbers as `ops.conv2d`.
    Returns (N, H', W', C_out); rows a stride leaves over are dropped, as in jax.lax.
    """
    x = _array(x, 4, "x", "(N, H, W, C_in)")
    w = _array(w, 4, "w", "(kh, kw, C_in, C_out)")
    if w.shape[2] != x.shape[3]:
        raise ValueError(
            f"the filters expect {w.shape[2]} input channels but x has {x.shape[3]}"
        )
    (sh, sw), (ph, pw) = pair(stride, "stride", 1), pair(padding, "padding", 0)
    kh, kw = w.shape[:2]
    xp = np.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0)))
    if kh > xp.shape[1] or kw > xp.shape[2]:
        raise ValueError(
            f"a {kh}x{kw} filter does not fit in the padded "
            f"{xp.shape[1]}x{xp.shape[2]} input; add padding or use a smaller filter"
        )
    full = _correlate(xp, w, xp.shape[1] - kh + 1, xp.shape[2] - kw + 1)
    out = full[:, ::sh, ::sw, :]  # a stride keeps every s-th position of stride 1
    if b is not None:
        out = out + np.broadcast_to(np.asarray(b, dtype=np.float64), (w.shape[3],))
    return out


def dilate(g: ArrayLike, stride: IntOrPair) -> np.ndarray:
    """Insert stride-1 zeros between the rows and columns of g (N, H', W', C).

    The output gradient of a strided convolution, placed where its windows started.
    """
    g = _array(g, 4, "g", "(N, H', W', C)")
    sh, sw = pair(stride, "stride", 1)
    n, oh, ow, c = g.shape
    out = np.zeros((n, (oh - 1) * sh + 1, (ow - 1) * sw + 1, c))
    out[:, ::sh, ::sw, :] = g
    return out


def conv2d_backward(
    dout: ArrayLike,
    x: ArrayLike,
    w: ArrayLike,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Backward of `conv2d_forward`: dout (N, H', W', C_out) -> dx, dw, db.

    dw (kh, kw, C_in, C_out): correlation of the padded input with the output gradient
    (dilated by the stride), summed over the batch. dx (N, H, W, C_in): full convolution
    of the dilated output gradient with the filter flipped in both directions (channels
    in and out swapped), then the padding is cut off. db (C_out,): dout summed over
    N, H', W'.
    """
    x = _array(x, 4, "x", "(N, H, W, C_in)")
    w = _array(w, 4, "w", "(kh, kw, C_in, C_out)")
    dout = _array(dout, 4, "dout", "(N, H', W', C_out)")
    (sh, sw), (ph, pw) = pair(stride, "stride", 1), pair(padding, "padding", 0)
    kh, kw, _, c_out = w.shape
    n, h, wd, _ = x.shape
    oh, ow = (h + 2 * ph - kh) // sh + 1, (wd + 2 * pw - kw) // sw + 1
    _same_shape(dout, (n, oh, ow, c_out), "convolution")
    xp = np.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0)))  # (N, Hp, Wp, C_in)
    g = dilate(dout, (sh, sw))  # (N, gh, gw, C_out), gh = (H'-1)*sh + 1
    gh, gw = g.shape[1:3]

    db = dout.sum(axis=(0, 1, 2))
    # dw[a, b] = sum over n, i, j of xp[n, a + i, b + j] * g[n, i, j]: the dilated
    # output gradient slides over the padded input like a (gh x gw) filter; only
    # kh x kw positions exist. Batch and channels swap roles: the batch is summed over.
    dw = _correlate(
        xp.transpose(3, 1, 2, 0),  # (C_in, Hp, Wp, N): channels act as the batch
        g.transpose(1, 2, 0, 3),  # (gh, gw, N, C_out): the batch is summed over
        kh,
        kw,
    ).transpose(1, 2, 0, 3)  # (kh, kw, C_in, C_out)

    # dx: every output cell sent dout * w back into its window. Equivalently, pad the
    # dilated gradient with kh-1, kw-1 zeros and correlate it with the flipped filter.
    g_full = np.pad(g, ((0, 0), (kh - 1, kh - 1), (kw - 1, kw - 1), (0, 0)))
    w_flip = w[::-1, ::-1].transpose(0, 1, 3, 2)  # (kh, kw, C_out, C_in)
    reached = _correlate(g_full, w_flip, gh + kh - 1, gw + kw - 1)  # (N, ., ., C_in)
    dxp = np.zeros_like(xp)
    # Rows and columns after the last window (left over by the stride) get no gradient.
    dxp[:, : gh + kh - 1, : gw + kw - 1, :] = reached
    dx = dxp[:, ph : ph + h, pw : pw + wd, :]
    return dx, dw, db


# --- the whole CNN -------------------------------------------------------------------


_ACTIVATIONS = {
    "relu": (lambda z: np.maximum(z, 0.0), relu_backward),
    "sigmoid": (lambda z: 1.0 / (1.0 + np.exp(-z)), sigmoid_backward),
}


def _pool_forward(x: np.ndarray, kind: str) -> np.ndarray:
    """2x2 pooling with stride 2 (odd edges dropped), as `mnist_cnn.model.pool2x2`."""
    n, h, w, c = x.shape
    x = x[:, : h // 2 * 2, : w // 2 * 2].reshape(n, h // 2, 2, w // 2, 2, c)
    return x.max(axis=(2, 4)) if kind == "max" else x.mean(axis=(2, 4))


def _numpy(v) -> np.ndarray:
    return np.asarray(v[...], dtype=np.float64)


def model_gradients(model, x: ArrayLike, y: ArrayLike) -> tuple[float, dict]:
    """Loss and parameter gradients of `mnist_cnn.CNN` on one batch, by hand.

    x: (N, 28, 28) or (N, 28, 28, 1), uint8 or floats in [0, 1]; y: (N,) integer labels.
    Runs the forward pass in NumPy, keeps every intermediate array, then applies the
    backward rules of this module from the mean cross-entropy back to the first
    convolution. Returns (loss, grads), grads nested like `nnx.state(model, nnx.Param)`:
    {"convs": {0: {"kernel", "bias"}, ...}, "dense": {0: {...}, ...},
    "head": {"kernel", "bias"}}. The model must have no dropout and no batch norm.
    """
    config = model.config
    if config.activation not in _ACTIVATIONS:
        raise ValueError(
            f"model_gradients knows the activations {sorted(_ACTIVATIONS)}, "
            f"got {config.activation!r}: train a model with one of them"
        )
    if config.dropout:
        raise ValueError(
            f"model_gradients follows the network without dropout; this model has "
            f"dropout={config.dropout}: use a Config with dropout=0"
        )
    if getattr(config, "batch_norm", False):
        raise ValueError(
            "model_gradients follows the network without batch norm; use a Config with "
            "batch_norm=False"
        )
    act, act_backward = _ACTIVATIONS[config.activation]
    x = np.asarray(x)
    # Pixels as the model reads them: uint8 is scaled to [0, 1], floats are kept.
    x = x / 255.0 if x.dtype == np.uint8 else x.astype(np.float64)
    if x.ndim == 3:
        x = x[..., None]  # (N, 28, 28) -> (N, 28, 28, 1)
    if x.ndim != 4 or x.shape[1:] != (28, 28, 1):
        raise ValueError(
            f"x must be a batch of 28x28 grey images, (N, 28, 28) or (N, 28, 28, 1); "
            f"got shape {x.shape}"
        )
    y = np.asarray(y)

    # Forward, keeping what each backward rule needs.
    h = (x - float(model.mean[...])) / float(model.std[...])
    convs = []  # (input, pre-activation, activation) of each block
    for conv in model.convs:
        w, b = _numpy(conv.kernel), _numpy(conv.bias)
        pad = w.shape[0] // 2  # "SAME" for an odd filter and stride 1
        z = conv2d_forward(h, w, b, 1, pad)
        a = act(z)
        convs.append((h, z, a))
        h = _pool_forward(a, config.pool)
    pooled_shape = h.shape
    h = h.reshape(len(h), -1)  # flatten, NHWC order like the model
    denses = []  # (input, pre-activation) of each hidden dense layer
    for layer in model.dense:
        z = h @ _numpy(layer.kernel) + _numpy(layer.bias)
        denses.append((h, z))
        h = act(z)
    logits = h @ _numpy(model.head.kernel) + _numpy(model.head.bias)
    loss = cross_entropy(logits, y)

    # Backward: the same layers in reverse order, each turning d(output) into d(input).
    grads: dict = {"convs": {}, "dense": {}, "head": {}}
    g = softmax_cross_entropy_backward(logits, y)  # (N, 10)
    g, dw, db = dense_backward(g, h, _numpy(model.head.kernel))
    grads["head"] = {"kernel": dw, "bias": db}
    for i in reversed(range(len(denses))):
        h_in, z = denses[i]
        g = act_backward(g, z)
        g, dw, db = dense_backward(g, h_in, _numpy(model.dense[i].kernel))
        grads["dense"][i] = {"kernel": dw, "bias": db}
    g = g.reshape(pooled_shape)  # undo the flatten
    for i in reversed(range(len(convs))):
        h_in, z, a = convs[i]
        if config.pool == "max":
            g = max_pool_backward(g, a, 2, 2, ties="split")  # as jnp.max in pool2x2
        else:
            g = avg_pool_backward(g, a.shape, 2, 2)
        g = act_backward(g, z)
        w = _numpy(model.convs[i].kernel)
        g, dw, db = conv2d_backward(g, h_in, w, 1, w.shape[0] // 2)
        grads["convs"][i] = {"kernel": dw, "bias": db}
    grads["convs"] = dict(sorted(grads["convs"].items()))
    grads["dense"] = dict(sorted(grads["dense"].items()))
    return loss, grads


# --- the backward pass of a convolution, window by window ----------------------------


@dataclass(frozen=True)
class BackwardStep:
    """One output cell's contribution to the gradients of a convolution (one frame).

    Output cell (row, col) of filter `channel` received the gradient `grad`; it sends
    grad * filter back into the window of dx at (top, left) and adds grad * (the input's
    window) to the filter's gradient. `dx` and `dw` are the totals after this step.
    """

    row: int
    col: int
    channel: int
    top: int  # window's top row in the padded input
    left: int  # window's left column in the padded input
    grad: float  # dout[row, col, channel]
    window: np.ndarray  # (kh, kw, C_in): the padded input under the window
    dx: np.ndarray  # (Hp, Wp, C_in): gradient of the padded input so far
    dw: np.ndarray  # (kh, kw, C_in, C_out): gradient of the filters so far


def conv_backward_steps(
    x: ArrayLike,
    w: ArrayLike,
    dout: ArrayLike,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
) -> list[BackwardStep]:
    """Every step of the backward pass of a convolution on one image, cell by cell.

    x: (H, W) or (H, W, C_in); w: (kh, kw) or (kh, kw, C_in, C_out); dout: (H', W') or
    (H', W', C_out). The last step's dx, cropped by the padding, and dw equal
    `conv2d_backward` of the same arrays.
    """
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    dout = np.asarray(dout, dtype=np.float64)
    x = x[:, :, None] if x.ndim == 2 else x
    w = w[:, :, None, None] if w.ndim == 2 else w
    dout = dout[:, :, None] if dout.ndim == 2 else dout
    if x.ndim != 3 or w.ndim != 4 or dout.ndim != 3:
        raise ValueError(
            "conv_backward_steps follows one image: x (H, W[, C_in]), "
            "w (kh, kw[, C_in, C_out]), dout (H', W'[, C_out]); got shapes "
            f"{x.shape}, {w.shape}, {dout.shape}"
        )
    (sh, sw), (ph, pw) = pair(stride, "stride", 1), pair(padding, "padding", 0)
    kh, kw, c_in, c_out = w.shape
    if c_in != x.shape[2]:
        raise ValueError(
            f"the filters expect {c_in} input channels, x has {x.shape[2]}"
        )
    oh = (x.shape[0] + 2 * ph - kh) // sh + 1
    ow = (x.shape[1] + 2 * pw - kw) // sw + 1
    _same_shape(dout, (oh, ow, c_out), "convolution")
    xp = np.pad(x, ((ph, ph), (pw, pw), (0, 0)))
    dx, dw = np.zeros_like(xp), np.zeros_like(w)
    steps = []
    for f in range(c_out):
        for r in range(oh):
            for c in range(ow):
                top, left, g = r * sh, c * sw, float(dout[r, c, f])
                window = xp[top : top + kh, left : left + kw, :]
                dx[top : top + kh, left : left + kw, :] += g * w[:, :, :, f]
                dw[:, :, :, f] += g * window
                steps.append(
                    BackwardStep(r, c, f, top, left, g, window, dx.copy(), dw.copy())
                )
    return steps


def conv_backward_equation(step: BackwardStep, fmt) -> str:
    """What one step adds, in words: dx[window] += g·w and dw += g·window."""
    name = f"dout[{step.row}, {step.col}]"
    return (
        f"{name} = {fmt(step.grad)}\n"
        f"dx[{step.top}:{step.top + step.window.shape[0]}, "
        f"{step.left}:{step.left + step.window.shape[1]}] += {fmt(step.grad)} · w"
        f"      dw += {fmt(step.grad)} · x[window]"
    )


def animate_conv_backward(
    x: ArrayLike,
    w: ArrayLike,
    dout: ArrayLike,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
    cell: float = 0.32,
    dpi: int = 64,
    interval: int = 900,
    title: str | None = None,
) -> FuncAnimation:
    """Animate the backward pass of a convolution of one 2-D image with one 2-D filter.

    x: (H, W); w: (kh, kw); dout: (H', W'). Each frame takes one output-gradient cell,
    adds g·w into the window of dx and g·(input window) into dw; numbers are drawn from
    `conv_backward_steps`. Show it with `animate.to_html(anim)`; `anim.steps` holds the
    data of every frame, `anim.dx_texts` / `anim.dw_texts` the numbers drawn.
    """
    x = _array(x, 2, "x", "(H, W) (one channel)")
    w = _array(w, 2, "w", "(kh, kw) (one filter)")
    dout = _array(dout, 2, "dout", "(H', W')")
    steps = conv_backward_steps(x, w, dout, stride, padding)
    (sh, sw), (ph, pw) = pair(stride, "stride", 1), pair(padding, "padding", 0)
    xp = np.pad(x, ((ph, ph), (pw, pw)))
    hp, wp = xp.shape
    kh, kw = w.shape
    oh, ow = dout.shape
    final_dx, final_dw = steps[-1].dx[:, :, 0], steps[-1].dw[:, :, 0, 0]
    fmt = animate.number_format(np.concatenate([xp.ravel(), w.ravel(), dout.ravel()]))
    grad_fmt = animate.number_format(
        np.concatenate(
            [np.ravel(s.dx) for s in steps] + [np.ravel(s.dw) for s in steps]
        )
    )
    fontsize = 8
    # Layout in cells: top row dout | w ; bottom row x (padded) | dx (padded) | dw.
    gap = 1.5
    top_h = max(oh, kh)
    bottom_h = max(hp, kh)
    width_cells = max(ow + gap + kw, 2 * wp + kw + 2 * gap) + 1.0
    heading_cells, text_cells = 2.4, 2.2
    height_cells = heading_cells + top_h + gap + bottom_h + text_cells + 0.6
    fig = plt.figure(figsize=(width_cells * cell, height_cells * cell), dpi=dpi)

    def place(x0: float, y0: float, wd: float, ht: float):
        return fig.add_axes(
            [
                x0 / width_cells,
                1 - (y0 + heading_cells + ht) / height_cells,
                wd / width_cells,
                ht / height_cells,
            ]
        )

    def frame(ax, rows: int, cols: int, color: str) -> Rectangle:
        rect = Rectangle(
            (-0.5, -0.5), cols, rows, fill=False, edgecolor=color, linewidth=2.5
        )
        ax.add_patch(rect)
        return rect

    ax_dout = place(0, 0, ow, oh)
    animate.draw_matrix(
        ax_dout, dout, fmt=fmt, cmap="Greens", fontsize=fontsize, title="dout"
    )
    dout_mark = frame(ax_dout, 1, 1, animate.OUTPUT_COLOR)
    ax_w = place(ow + gap, 0, kw, kh)
    animate.draw_matrix(ax_w, w, fmt=fmt, cmap="Oranges", fontsize=fontsize, title="w")
    y1 = top_h + gap
    ax_x = place(0, y1, wp, hp)
    animate.draw_matrix(
        ax_x,
        xp,
        fmt=fmt,
        padding=(ph, pw),
        fontsize=fontsize,
        title="input (zero-padded)" if ph or pw else "input",
    )
    x_mark = frame(ax_x, kh, kw, animate.WINDOW_COLOR)
    ax_dx = place(wp + gap, y1, wp, hp)
    dx_texts = animate.draw_matrix(
        ax_dx,
        np.zeros_like(xp),
        fmt=grad_fmt,
        cmap="Purples",
        padding=(ph, pw),
        fontsize=fontsize,
        title="dx",
        numbers=False,
        vmin=float(final_dx.min()),
        vmax=float(final_dx.max()),
    )
    dx_image = ax_dx.images[0]
    dx_mark = frame(ax_dx, kh, kw, animate.WINDOW_COLOR)
    ax_dw = place(2 * wp + 2 * gap, y1, kw, kh)
    dw_texts = animate.draw_matrix(
        ax_dw,
        np.zeros_like(w),
        fmt=grad_fmt,
        cmap="Purples",
        fontsize=fontsize,
        title="dw",
        numbers=False,
        vmin=float(final_dw.min()),
        vmax=float(final_dw.max()),
    )
    dw_image = ax_dw.images[0]
    equation = fig.text(
        0.01,
        (text_cells + 0.3) / height_cells,
        "",
        fontsize=fontsize + 0.5,
        va="top",
        ha="left",
        family="monospace",
    )
    stride_text = sh if sh == sw else (sh, sw)
    title = title or (
        f"convolution backward: stride {stride_text}, "
        f"padding {ph if ph == pw else (ph, pw)}"
    )
    heading = fig.text(
        0.01, 1 - 0.7 / height_cells, title, fontsize=fontsize + 2, va="center"
    )

    def draw(k: int):
        step = steps[k]
        dout_mark.set_xy((step.col - 0.5, step.row - 0.5))
        for rect in (x_mark, dx_mark):
            rect.set_xy((step.left - 0.5, step.top - 0.5))
        dx_now, dw_now = step.dx[:, :, 0], step.dw[:, :, 0, 0]
        dx_image.set_data(dx_now)
        dw_image.set_data(dw_now)
        # Cells no window has reached yet stay blank; the rest show their running sums.
        reached = np.zeros(xp.shape, dtype=bool)
        for s in steps[: k + 1]:
            reached[s.top : s.top + kh, s.left : s.left + kw] = True
        for t, v, seen in zip(dx_texts, dx_now.ravel(), reached.ravel()):
            t.set_text(grad_fmt(v) if seen else "")
        for t, v in zip(dw_texts, dw_now.ravel()):
            t.set_text(grad_fmt(v))
        equation.set_text(conv_backward_equation(step, fmt))
        heading.set_text(f"{title}  (step {k + 1} of {len(steps)})")
        return []

    anim = FuncAnimation(fig, draw, frames=len(steps), interval=interval, blit=False)
    anim.steps = steps  # the data behind every frame, for tests and for readers
    anim.draw_frame = draw
    anim.dx_texts = dx_texts
    anim.dw_texts = dw_texts
    return anim
