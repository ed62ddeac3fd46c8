"""Self-checks for the exercises of the layer chapters: activations, pooling, softmax,
kernels.

Each check runs the reader's function on a few cases through `check_function` and adds a
hint that names the usual mistake when a result differs from the reference.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ...model import ACTIVATION_FNS
from ..kernels import KERNELS, apply_kernel
from ..ops import avg_pool2d, max_pool2d
from . import call_quietly, check_function, report


def check_activation_derivative(fn: Callable, name: str) -> bool:
    """Check a reader's derivative of the activation `name` against `jax.grad`.

    `name` is sigmoid, tanh, relu or leaky_relu. Points are taken away from 0, where
    ReLU has no derivative and any choice is defensible.
    """
    if name not in ("sigmoid", "tanh", "relu", "leaky_relu"):
        raise ValueError(
            f"name must be sigmoid, tanh, relu or leaky_relu, got {name!r}"
        )
    act = ACTIVATION_FNS[name]
    x = np.concatenate([np.linspace(-8, -0.05, 40), np.linspace(0.05, 8, 40)]).astype(
        np.float32
    )

    def reference(points: np.ndarray) -> np.ndarray:
        return np.asarray(jax.vmap(jax.grad(act))(jnp.asarray(points)), np.float64)

    def diagnose(got: np.ndarray, expected: np.ndarray, points: np.ndarray) -> str:
        if got.shape != expected.shape:
            return ""
        value, err = call_quietly(lambda v: np.asarray(act(jnp.asarray(v))), points)
        if not err and np.allclose(got, value, atol=1e-4):
            return "; you returned the activation itself, not its derivative"
        if (
            name == "sigmoid"
            and not err
            and np.allclose(got, value * (1 + value), atol=1e-4)
        ):
            return "; the derivative is s(x) * (1 - s(x)), with a minus sign"
        if name == "relu" and np.allclose(got, (points < 0).astype(np.float64)):
            return (
                "; the slope is 1 for x > 0 and 0 for x < 0 (not the other way round)"
            )
        return ""

    what = f"derivative of {name} on {len(x)} points in [-8, 8]"
    _, err = call_quietly(fn, x)
    if err:
        return report(
            False, what, err + " (it should accept a NumPy array and work element-wise)"
        )
    return check_function(
        f"d{name}/dx",
        fn,
        reference,
        [(x,)],
        describe=lambda i, n, case: what,
        diagnose=diagnose,
        success=what,
    )


def check_pool(fn: Callable, kind: str = "max") -> bool:
    """Check a reader's `fn(x, size, stride)` (2-D input) against `ops.max_pool2d` /
    `ops.avg_pool2d`.
    """
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

    def diagnose(got: np.ndarray, expected: np.ndarray, x, size, stride) -> str:
        if got.shape != expected.shape:
            return (
                "; the output has floor((n - size) / stride) + 1 rows and columns "
                "(a window must fit entirely inside the input)"
            )
        if kind == "max" and np.allclose(got, np.maximum(expected, 0)):
            return "; every input here is negative: did you start the maximum at 0?"
        return ""

    return check_function(
        name,
        fn,
        max_pool2d if kind == "max" else avg_pool2d,
        cases,
        describe=lambda i, n, case: (
            f"{name} on case {i} of {n} "
            f"(input {case[0].shape}, size {case[1]}, stride {case[2]})"
        ),
        diagnose=diagnose,
    )


def check_softmax(fn: Callable) -> bool:
    """Check a reader's softmax over the last axis against `jax.nn.softmax`, large
    logits included.
    """
    rng = np.random.default_rng(1)
    cases = [
        (np.array([1.0, 2.0, 3.0]),),
        (rng.normal(size=(4, 10)),),
        (np.array([1000.0, 1001.0, 1002.0]),),
        (np.array([[-1000.0, 0.0, 5.0], [3.0, 3.0, 3.0]]),),
    ]

    def reference(z: np.ndarray) -> np.ndarray:
        return np.asarray(jax.nn.softmax(jnp.asarray(z, jnp.float32), axis=-1))

    def diagnose(got: np.ndarray, expected: np.ndarray, z: np.ndarray) -> str:
        if got.shape != expected.shape:
            return ""
        if not np.all(np.isfinite(got)):
            return "; exp overflowed: subtract each row's maximum from the logits first"
        if not np.allclose(got.sum(axis=-1), 1.0, atol=1e-4):
            return (
                "; each row must sum to 1: normalise over the last axis "
                "(axis=-1, keepdims=True)"
            )
        return ""

    return check_function(
        "softmax",
        fn,
        reference,
        cases,
        atol=1e-5,
        describe=lambda i, n, case: (
            f"softmax on case {i} of {n} (logits of shape {case[0].shape})"
        ),
        diagnose=diagnose,
        success=(
            f"softmax matches jax.nn.softmax on all {len(cases)} cases, "
            "large logits included"
        ),
    )


def check_cross_entropy(fn: Callable) -> bool:
    """Check a reader's `fn(logits, labels)` (mean cross-entropy) against optax, large
    logits included.
    """
    rng = np.random.default_rng(2)
    cases = [
        (rng.normal(size=(5, 10)), rng.integers(0, 10, 5)),
        (np.array([[0.0, 0.0, 0.0]]), np.array([1])),
        (np.array([[800.0, -800.0, 0.0], [0.0, 900.0, 1.0]]), np.array([1, 1])),
    ]

    def reference(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
        return np.asarray(
            optax.softmax_cross_entropy_with_integer_labels(
                jnp.asarray(logits, jnp.float32), jnp.asarray(labels)
            ).mean()
        )

    def diagnose(got: np.ndarray, expected: np.ndarray, logits, labels) -> str:
        if got.shape != ():
            return "; return one number: the mean over the batch"
        if not np.isfinite(got):
            return (
                "; compute log softmax as logits - logsumexp(logits), "
                "never log(exp(...) / ...)"
            )
        return ""

    return check_function(
        "cross_entropy",
        fn,
        reference,
        cases,
        atol=1e-3,
        describe=lambda i, n, case: (
            f"cross_entropy on case {i} of {n} (logits of shape {case[0].shape})"
        ),
        diagnose=diagnose,
        success=(
            f"cross_entropy matches optax on all {len(cases)} cases, "
            "large logits included"
        ),
    )


def check_same_convolution(fn: Callable) -> bool:
    """Check a reader's `fn(image, kernel)` that keeps the image size against
    `kernels.apply_kernel`.
    """
    rng = np.random.default_rng(3)
    cases = [
        (rng.random((6, 6)), KERNELS["Sobel x"]),
        (rng.random((5, 8)), KERNELS["Laplacian"]),
        (rng.random((9, 7)), KERNELS["Gaussian blur"]),
    ]

    def diagnose(got: np.ndarray, expected: np.ndarray, image, kernel) -> str:
        if got.shape != expected.shape:
            return (
                f"; pad with {kernel.shape[0] // 2} ring(s) of zeros "
                "(kernel side // 2) so the size is kept"
            )
        if np.allclose(got, apply_kernel(image, kernel[::-1, ::-1]), atol=1e-4):
            return (
                "; you flipped the kernel: a conv layer computes the "
                "cross-correlation (no flip)"
            )
        return ""

    return check_function(
        "same-size convolution",
        fn,
        apply_kernel,
        cases,
        describe=lambda i, n, case: (
            f"same-size convolution on case {i} of {n} "
            f"(image {case[0].shape}, kernel {case[1].shape})"
        ),
        diagnose=diagnose,
        array_name="output",
    )
