"""Self-checks for the exercises of the layer chapters: activations, pooling, softmax, kernels."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from . import compare_arrays, report


def _call(fn: Callable, *args):
    """Call the reader's function; any exception becomes (None, message) instead of a crash."""
    import warnings

    try:
        # Overflow in the reader's code is diagnosed by the hints; a RuntimeWarning would only add noise.
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.asarray(fn(*args), dtype=np.float64), ""
    except Exception as err:  # the reader's code: report, never crash the notebook
        return None, f"it raised {type(err).__name__}: {err}"


def check_activation_derivative(fn: Callable, name: str) -> bool:
    """Check a reader's derivative of the activation `name` (sigmoid, tanh, relu) against `jax.grad`.

    Points are taken away from 0, where ReLU has no derivative and any choice is defensible.
    """
    from ..model import ACTIVATION_FNS

    if name not in ("sigmoid", "tanh", "relu", "leaky_relu"):
        raise ValueError(
            f"name must be sigmoid, tanh, relu or leaky_relu, got {name!r}"
        )
    act = ACTIVATION_FNS[name]
    x = np.concatenate([np.linspace(-8, -0.05, 40), np.linspace(0.05, 8, 40)]).astype(
        np.float32
    )
    expected = np.asarray(jax.vmap(jax.grad(act))(jnp.asarray(x)), np.float64)
    got, err = _call(fn, x)
    what = f"derivative of {name} on {len(x)} points in [-8, 8]"
    if got is None:
        return report(
            False, what, err + " (it should accept a NumPy array and work element-wise)"
        )
    ok, why = compare_arrays(f"d{name}/dx", got, expected, atol=1e-4)
    if not ok and got.shape == expected.shape:
        value, _ = _call(lambda v: act(jnp.asarray(v)), x)
        if value is not None and np.allclose(got, value, atol=1e-4):
            why += "; you returned the activation itself, not its derivative"
        elif (
            name == "sigmoid"
            and value is not None
            and np.allclose(got, value * (1 + value), atol=1e-4)
        ):
            why += "; the derivative is s(x) * (1 - s(x)), with a minus sign"
        elif name == "relu" and np.allclose(got, (x < 0).astype(np.float64)):
            why += (
                "; the slope is 1 for x > 0 and 0 for x < 0 (not the other way round)"
            )
    return report(ok, what, why)


def _reference_pool(x, size, stride, kind):
    from ..ops import avg_pool2d, max_pool2d

    return (max_pool2d if kind == "max" else avg_pool2d)(x, size, stride)


def check_pool(fn: Callable, kind: str = "max") -> bool:
    """Check a reader's `fn(x, size, stride)` (2-D input) against `ops.max_pool2d` / `ops.avg_pool2d`."""
    if kind not in ("max", "avg"):
        raise ValueError(f"kind must be 'max' or 'avg', got {kind!r}")
    rng = np.random.default_rng(0)
    example = np.array(
        [[1, 1, 2, 4], [5, 6, 7, 8], [3, 2, 1, 0], [1, 2, 3, 4]], np.float64
    )
    cases = [
        (example, 2, 2),
        (rng.normal(size=(6, 6)), 2, 2),
        (rng.normal(size=(5, 7)), 3, 2),
        (rng.normal(size=(8, 8)), 2, 1),
        (-np.abs(rng.normal(size=(4, 6))), 2, None),
    ]
    name = f"{kind}_pool2d"
    for i, (x, size, stride) in enumerate(cases, start=1):
        what = f"{name} on case {i} of {len(cases)} (input {x.shape}, size {size}, stride {stride})"
        got, err = _call(fn, x, size, stride)
        if got is None:
            return report(False, what, err)
        expected = _reference_pool(x, size, stride, kind)
        ok, why = compare_arrays(name, got, expected)
        if not ok:
            if got.shape != expected.shape:
                why += (
                    "; the output has floor((n - size) / stride) + 1 rows and columns "
                    "(a window must fit entirely inside the input)"
                )
            elif kind == "max" and np.allclose(got, np.maximum(expected, 0)):
                why += "; every input here is negative: did you start the maximum at 0?"
            return report(False, what, why)
    return report(True, f"{name} matches the reference on all {len(cases)} cases")


def check_softmax(fn: Callable) -> bool:
    """Check a reader's softmax over the last axis against `jax.nn.softmax`, large logits included."""
    rng = np.random.default_rng(1)
    cases = [
        np.array([1.0, 2.0, 3.0]),
        rng.normal(size=(4, 10)),
        np.array([1000.0, 1001.0, 1002.0]),
        np.array([[-1000.0, 0.0, 5.0], [3.0, 3.0, 3.0]]),
    ]
    for i, z in enumerate(cases, start=1):
        what = f"softmax on case {i} of {len(cases)} (logits of shape {z.shape})"
        got, err = _call(fn, z)
        if got is None:
            return report(False, what, err)
        expected = np.asarray(
            jax.nn.softmax(jnp.asarray(z, jnp.float32), axis=-1), np.float64
        )
        ok, why = compare_arrays("softmax", got, expected, atol=1e-5)
        if not ok:
            if got.shape == expected.shape and not np.all(np.isfinite(got)):
                why += "; exp overflowed: subtract each row's maximum from the logits first"
            elif got.shape == expected.shape and not np.allclose(
                got.sum(axis=-1), 1.0, atol=1e-4
            ):
                why += "; each row must sum to 1: normalise over the last axis (axis=-1, keepdims=True)"
            return report(False, what, why)
    return report(
        True,
        f"softmax matches jax.nn.softmax on all {len(cases)} cases, large logits included",
    )


def check_cross_entropy(fn: Callable) -> bool:
    """Check a reader's `fn(logits, labels)` (mean cross-entropy) against optax, large logits included."""
    import optax

    rng = np.random.default_rng(2)
    cases = [
        (rng.normal(size=(5, 10)), rng.integers(0, 10, 5)),
        (np.array([[0.0, 0.0, 0.0]]), np.array([1])),
        (np.array([[800.0, -800.0, 0.0], [0.0, 900.0, 1.0]]), np.array([1, 1])),
    ]

    for i, (logits, labels) in enumerate(cases, start=1):
        what = f"cross_entropy on case {i} of {len(cases)} (logits of shape {logits.shape})"
        got, err = _call(fn, logits, labels)
        if got is None:
            return report(False, what, err)
        expected = optax.softmax_cross_entropy_with_integer_labels(
            jnp.asarray(logits, jnp.float32), jnp.asarray(labels)
        ).mean()
        ok, why = compare_arrays("cross_entropy", got, expected, atol=1e-3)
        if not ok:
            if got.shape != ():
                why += "; return one number: the mean over the batch"
            elif not np.isfinite(got):
                why += "; compute log softmax as logits - logsumexp(logits), never log(exp(...) / ...)"
            return report(False, what, why)
    return report(
        True,
        f"cross_entropy matches optax on all {len(cases)} cases, large logits included",
    )


def check_same_convolution(fn: Callable) -> bool:
    """Check a reader's `fn(image, kernel)` that keeps the image size against `kernels.apply_kernel`."""
    from ..kernels import KERNELS, apply_kernel

    rng = np.random.default_rng(3)
    cases = [
        (rng.random((6, 6)), KERNELS["Sobel x"]),
        (rng.random((5, 8)), KERNELS["Laplacian"]),
        (rng.random((9, 7)), KERNELS["Gaussian blur"]),
    ]
    for i, (image, kernel) in enumerate(cases, start=1):
        what = f"same-size convolution on case {i} of {len(cases)} (image {image.shape}, kernel {kernel.shape})"
        got, err = _call(fn, image, kernel)
        if got is None:
            return report(False, what, err)
        expected = apply_kernel(image, kernel)
        ok, why = compare_arrays("output", got, expected)
        if not ok:
            if got.shape != expected.shape:
                why += f"; pad with {kernel.shape[0] // 2} ring(s) of zeros (kernel side // 2) so the size is kept"
            else:
                flipped = apply_kernel(image, kernel[::-1, ::-1])
                if np.allclose(got, flipped, atol=1e-4):
                    why += "; you flipped the kernel: a conv layer computes the cross-correlation (no flip)"
            return report(False, what, why)
    return report(
        True, f"same-size convolution matches the reference on all {len(cases)} cases"
    )
