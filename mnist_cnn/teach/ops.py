"""Convolution and pooling written from scratch (NHWC images, HWIO filters, like Flax).

Everything here is written to be read: the loop versions follow the book's words ("slide
the window, take the inner product"), and the tests check each one against jax.lax and
flax.nnx. Inputs may be one image (H, W) or (H, W, C), or a batch (N, H, W, C); results
come back in the same layout. The arithmetic is done in float64 NumPy so printed numbers
are exact for small integers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

IntOrPair = int | tuple[int, int]


def pair(value: IntOrPair, name: str, minimum: int) -> tuple[int, int]:
    """An int or a pair of ints -> (vertical, horizontal), validated."""
    pair = (value, value) if np.ndim(value) == 0 else tuple(value)
    if len(pair) != 2 or any(int(v) != v for v in pair):
        raise ValueError(
            f"{name} must be an int or a pair of ints (rows, columns), got {value!r}"
        )
    pair = (int(pair[0]), int(pair[1]))
    if min(pair) < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value!r}")
    return pair


def conv_output_size(
    n: int, k: int, stride: int = 1, padding: int = 0, *, strict: bool = True
) -> int:
    """Output length (n + 2*padding - k) / stride + 1 of a convolution or pooling along
    one axis.

    With `strict=True` (the article's rule) the windows must tile the padded input
    exactly: a stride that leaves some rows over is an error that says what to change.
    With `strict=False` the leftover rows are dropped, as jax.lax, Flax, PyTorch and
    Keras all do.
    """
    for name, v, lo in (
        ("n", n, 1),
        ("k", k, 1),
        ("stride", stride, 1),
        ("padding", padding, 0),
    ):
        if int(v) != v or v < lo:
            raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")
    span = n + 2 * padding - k  # how far the window's first row can travel
    if span < 0:
        raise ValueError(
            f"a {k}-wide window does not fit in an input of {n} with padding {padding} "
            f"(padded length {n + 2 * padding}); use a smaller kernel or at least "
            f"padding={-(-(k - n) // 2)}"
        )
    if span % stride and strict:
        fixes = [
            f"padding={p}"
            for p in range(padding + 1, padding + stride + 1)
            if (n + 2 * p - k) % stride == 0
        ][:1]
        fixes += [f"stride={s}" for s in range(stride - 1, 0, -1) if span % s == 0][:1]
        fixes.append(
            "strict=False to drop the leftover like deep-learning libraries do"
        )
        raise ValueError(
            f"(n + 2*padding - k) = ({n} + 2*{padding} - {k}) = {span} is not "
            "divisible "
            f"by stride {stride}: the last {span % stride} row(s) would be skipped. "
            f"Try {' or '.join(fixes)}"
        )
    return span // stride + 1


def to_nhwc(x: ArrayLike) -> tuple[np.ndarray, int]:
    """(H, W) | (H, W, C) | (N, H, W, C) -> float64 (N, H, W, C) and the rank given."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 2:
        return x[None, :, :, None], 2
    if x.ndim == 3:
        return x[None], 3
    if x.ndim == 4:
        return x, 4
    raise ValueError(
        f"x must have shape (H, W), (H, W, C) or (N, H, W, C); got shape {x.shape}"
    )


def _restore(out: np.ndarray, rank: int) -> np.ndarray:
    """Undo `to_nhwc` on an (N, H', W', C') result."""
    if rank == 2:
        return out[0, :, :, 0] if out.shape[-1] == 1 else out[0]
    return out[0] if rank == 3 else out


def as_filters(w: ArrayLike, channels: int) -> np.ndarray:
    """(kh, kw) | (kh, kw, C_in, C_out) -> float64 (kh, kw, C_in, C_out), checked
    against the input.
    """
    w = np.asarray(w, dtype=np.float64)
    if w.ndim == 2:
        w = w[:, :, None, None]
    if w.ndim != 4:
        raise ValueError(
            f"w must have shape (kh, kw) or (kh, kw, C_in, C_out); got shape {w.shape}"
        )
    if w.shape[2] != channels:
        raise ValueError(
            f"the filters expect {w.shape[2]} input channels (w.shape[2]) but the "
            "input "
            f"has {channels} (its last axis); they must be equal"
        )
    return w


def _as_bias(b, c_out: int) -> np.ndarray:
    """None | scalar | (C_out,) -> float64 (C_out,)."""
    if b is None:
        return np.zeros(c_out)
    b = np.asarray(b, dtype=np.float64)
    if b.ndim == 0:
        b = np.full(c_out, float(b))  # one number: the same bias for every filter
    if b.shape != (c_out,):
        raise ValueError(
            f"b must be a scalar or have shape ({c_out},), one bias per filter; got "
            f"{b.shape}"
        )
    return b


def zero_pad(x: ArrayLike, padding: IntOrPair) -> np.ndarray:
    """Surround every image with `padding` rings of zeros; only H and W grow, the layout
    is kept.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim not in (2, 3, 4):
        raise ValueError(
            f"x must have shape (H, W), (H, W, C) or (N, H, W, C); got shape {x.shape}"
        )
    ph, pw = pair(padding, "padding", 0)
    spatial = {2: (0, 1), 3: (0, 1), 4: (1, 2)}[x.ndim]  # which axes are H and W
    widths = [(0, 0)] * x.ndim
    widths[spatial[0]], widths[spatial[1]] = (ph, ph), (pw, pw)
    return np.pad(x, widths)


class _ConvSetup(NamedTuple):
    """A convolution's inputs in one layout, with its geometry worked out once."""

    x: np.ndarray  # (N, H, W, C_in), float64
    rank: int  # the rank the caller passed, to give the output the same layout
    w: np.ndarray  # (kh, kw, C_in, C_out)
    b: np.ndarray  # (C_out,)
    stride: tuple[int, int]
    padding: tuple[int, int]
    out_h: int
    out_w: int


def _conv_setup(x, w, b, stride: IntOrPair, padding: IntOrPair) -> _ConvSetup:
    """Check and normalise a convolution's arguments (shared by every version of
    conv2d).
    """
    x, rank = to_nhwc(x)
    w = as_filters(w, x.shape[-1])
    b = _as_bias(b, w.shape[-1])
    (sh, sw), (ph, pw) = pair(stride, "stride", 1), pair(padding, "padding", 0)
    out_h = conv_output_size(x.shape[1], w.shape[0], sh, ph, strict=False)
    out_w = conv_output_size(x.shape[2], w.shape[1], sw, pw, strict=False)
    return _ConvSetup(x, rank, w, b, (sh, sw), (ph, pw), out_h, out_w)


def conv2d(
    x: ArrayLike,
    w: ArrayLike,
    b: ArrayLike | None = None,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
) -> np.ndarray:
    """Convolution (cross-correlation, as in every DL library) by sliding a window: the
    loop version.

    x: (H, W), (H, W, C_in) or (N, H, W, C_in); w: (kh, kw) or (kh, kw, C_in, C_out); b:
    (C_out,). Returns (H', W'), (H', W', C_out) or (N, H', W', C_out); leftover rows are
    dropped, like jax.lax.
    """
    x, rank, w, b, (sh, sw), (ph, pw), out_h, out_w = _conv_setup(
        x, w, b, stride, padding
    )
    n = x.shape[0]
    kh, kw, _, c_out = w.shape
    xp = np.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0)))  # the zero-padded input
    out = np.zeros((n, out_h, out_w, c_out))
    for i in range(n):  # every image
        for r in range(out_h):  # every output row ...
            for c in range(out_w):  # ... and column: one window position
                top, left = r * sh, c * sw  # the window moves `stride` cells per step
                window = xp[i, top : top + kh, left : left + kw, :]  # (kh, kw, C_in)
                for f in range(c_out):  # every filter sees the same window
                    # The inner product: multiply element by element, then add
                    # everything up.
                    out[i, r, c, f] = np.sum(window * w[:, :, :, f]) + b[f]
    return _restore(out, rank)


def im2col(
    x: ArrayLike, kh: int, kw: int, stride: IntOrPair = 1, padding: IntOrPair = 0
) -> np.ndarray:
    """Every window of the padded input as one row: (N, H'*W', kh*kw*C) (or (H'*W',
    kh*kw*C) for one image).

    A row is the window flattened in (row, column, channel) order, matching
    w.reshape(-1, C_out).
    """
    x, rank = to_nhwc(x)
    (sh, sw), (ph, pw) = pair(stride, "stride", 1), pair(padding, "padding", 0)
    n, height, width, ch = x.shape
    out_h = conv_output_size(height, kh, sh, ph, strict=False)
    out_w = conv_output_size(width, kw, sw, pw, strict=False)
    xp = np.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0)))
    # Index arrays pick all windows at once: rows[r, a] = r*stride + a (window start +
    # offset).
    rows = (np.arange(out_h) * sh)[:, None] + np.arange(kh)[None, :]  # (H', kh)
    cols = (np.arange(out_w) * sw)[:, None] + np.arange(kw)[None, :]  # (W', kw)
    patches = xp[
        :, rows[:, None, :, None], cols[None, :, None, :], :
    ]  # (N, H', W', kh, kw, C)
    cols2d = patches.reshape(n, out_h * out_w, kh * kw * ch)
    return cols2d[0] if rank in (2, 3) else cols2d


def conv2d_im2col(
    x: ArrayLike,
    w: ArrayLike,
    b: ArrayLike | None = None,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
) -> np.ndarray:
    """The same convolution as `conv2d`, vectorised: im2col, then one matrix product."""
    x, rank, w, b, (sh, sw), (ph, pw), out_h, out_w = _conv_setup(
        x, w, b, stride, padding
    )
    kh, kw, c_in, c_out = w.shape
    cols = im2col(x, kh, kw, (sh, sw), (ph, pw))  # (N, H'*W', kh*kw*C_in)
    out = cols @ w.reshape(kh * kw * c_in, c_out) + b  # (N, H'*W', C_out)
    return _restore(out.reshape(x.shape[0], out_h, out_w, c_out), rank)


class LayerCost(NamedTuple):
    """Size and work of one layer: trainable parameters, multiply-adds per image, output
    shape.
    """

    parameters: int
    multiply_adds: int
    output_shape: tuple[int, ...]


def conv_layer_cost(
    input_shape: tuple[int, int, int],
    filters: int,
    kernel_size: IntOrPair,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
    bias: bool = True,
) -> LayerCost:
    """Parameters and multiply-adds of a conv layer on an (H, W, C_in) input (weights
    are shared).
    """
    if len(input_shape) != 3:
        raise ValueError(f"input_shape must be (H, W, C_in), got {input_shape!r}")
    height, width, c_in = (int(v) for v in input_shape)
    (kh, kw), (sh, sw) = (
        pair(kernel_size, "kernel_size", 1),
        pair(stride, "stride", 1),
    )
    ph, pw = pair(padding, "padding", 0)
    out_h = conv_output_size(height, kh, sh, ph, strict=False)
    out_w = conv_output_size(width, kw, sw, pw, strict=False)
    # One small filter per output channel, reused at every position: that is weight
    # sharing.
    params = kh * kw * c_in * filters + (filters if bias else 0)
    macs = out_h * out_w * filters * kh * kw * c_in
    return LayerCost(params, macs, (out_h, out_w, filters))


def dense_layer_cost(inputs: int, outputs: int, bias: bool = True) -> LayerCost:
    """Parameters and multiply-adds of a fully connected layer: one weight per (input,
    output) pair.
    """
    if inputs < 1 or outputs < 1:
        raise ValueError(
            f"inputs and outputs must be positive, got {inputs} and {outputs}"
        )
    return LayerCost(
        inputs * outputs + (outputs if bias else 0), inputs * outputs, (outputs,)
    )


def _pool(x, size: IntOrPair, stride: IntOrPair | None, reduce) -> np.ndarray:
    """Slide a size x size window over every channel separately and reduce it to one
    number.
    """
    x, rank = to_nhwc(x)
    kh, kw = pair(size, "size", 1)
    sh, sw = (kh, kw) if stride is None else pair(stride, "stride", 1)
    n, height, width, ch = x.shape
    if kh > height or kw > width:
        raise ValueError(
            f"pooling window {kh}x{kw} is larger than the {height}x{width} input; "
            "use a smaller size"
        )
    out_h = conv_output_size(height, kh, sh, 0, strict=False)
    out_w = conv_output_size(width, kw, sw, 0, strict=False)
    out = np.zeros((n, out_h, out_w, ch))
    for i in range(n):
        for r in range(out_h):
            for c in range(out_w):
                window = x[
                    i, r * sh : r * sh + kh, c * sw : c * sw + kw, :
                ]  # (kh, kw, C)
                out[i, r, c, :] = reduce(window, axis=(0, 1))  # one number per channel
    return _restore(out, rank)


def max_pool2d(
    x: ArrayLike, size: IntOrPair = 2, stride: IntOrPair | None = None
) -> np.ndarray:
    """Max pooling: the largest value of each window (stride defaults to the window
    size; no padding).
    """
    return _pool(x, size, stride, np.max)


def avg_pool2d(
    x: ArrayLike, size: IntOrPair = 2, stride: IntOrPair | None = None
) -> np.ndarray:
    """Average pooling: the mean of each window (stride defaults to the window size; no
    padding).
    """
    return _pool(x, size, stride, np.mean)


@dataclass(frozen=True)
class WindowStep:
    """One position of a sliding window: what an animation frame shows and a test can
    check.

    `window`, `weights` and `products` are (kh, kw, C) arrays; for pooling `weights` and
    `products` are None and C is 1 (the one channel being pooled).
    """

    row: int  # output row
    col: int  # output column
    channel: int  # output channel: the filter (conv) or the pooled channel
    top: int  # window's top row in the (padded) input
    left: int  # window's left column in the (padded) input
    window: np.ndarray
    weights: np.ndarray | None
    products: np.ndarray | None
    bias: float
    value: float  # the output cell this step fills in


def conv_steps(
    x: ArrayLike,
    w: ArrayLike,
    b: ArrayLike | None = None,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
) -> list[WindowStep]:
    """Every step of `conv2d` on one image, filter by filter, row by row: the frames of
    an animation.
    """
    x, rank, w, b, (sh, sw), (ph, pw), out_h, out_w = _conv_setup(
        x, w, b, stride, padding
    )
    if rank == 4 and x.shape[0] != 1:
        raise ValueError(
            f"conv_steps follows one image; got a batch of {x.shape[0]}: pass x[0]"
        )
    kh, kw, _, c_out = w.shape
    xp = np.pad(x[0], ((ph, ph), (pw, pw), (0, 0)))
    steps = []
    for f in range(c_out):
        for r in range(out_h):
            for c in range(out_w):
                window = xp[r * sh : r * sh + kh, c * sw : c * sw + kw, :]
                products = window * w[:, :, :, f]
                steps.append(
                    WindowStep(
                        r,
                        c,
                        f,
                        r * sh,
                        c * sw,
                        window,
                        w[:, :, :, f],
                        products,
                        float(b[f]),
                        float(products.sum() + b[f]),
                    )
                )
    return steps


def pool_steps(
    x: ArrayLike,
    size: IntOrPair = 2,
    stride: IntOrPair | None = None,
    kind: str = "max",
) -> list[WindowStep]:
    """Every step of max or average pooling on one image, channel by channel."""
    if kind not in ("max", "avg"):
        raise ValueError(f"kind must be 'max' or 'avg', got {kind!r}")
    x, rank = to_nhwc(x)
    if rank == 4 and x.shape[0] != 1:
        raise ValueError(
            f"pool_steps follows one image; got a batch of {x.shape[0]}: pass x[0]"
        )
    kh, kw = pair(size, "size", 1)
    sh, sw = (kh, kw) if stride is None else pair(stride, "stride", 1)
    if kh > x.shape[1] or kw > x.shape[2]:
        raise ValueError(
            f"pooling window {kh}x{kw} is larger than the {x.shape[1]}x{x.shape[2]} "
            "input"
        )
    out_h = conv_output_size(x.shape[1], kh, sh, 0, strict=False)
    out_w = conv_output_size(x.shape[2], kw, sw, 0, strict=False)
    reduce = np.max if kind == "max" else np.mean
    steps = []
    for ch in range(x.shape[-1]):
        for r in range(out_h):
            for c in range(out_w):
                window = x[0, r * sh : r * sh + kh, c * sw : c * sw + kw, ch : ch + 1]
                steps.append(
                    WindowStep(
                        r,
                        c,
                        ch,
                        r * sh,
                        c * sw,
                        window,
                        None,
                        None,
                        0.0,
                        float(reduce(window)),
                    )
                )
    return steps


# A receptive field grows by the same size-and-stride arithmetic as `conv_output_size`,
# layer after layer; it lives in its own module (with its gradient check) and is
# reachable from here as `ops.receptive_field`.
from .receptive_field import receptive_field as receptive_field  # noqa: E402
