"""Self-checks for chapters 1-3: the reader's convolution and output-size formula vs the
library.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from . import compare_arrays, report


def _reference_conv(
    x: np.ndarray, w: np.ndarray, stride: int, padding: int
) -> np.ndarray:
    """jax.lax's convolution of one (H, W) image with one (kh, kw) filter."""
    out = jax.lax.conv_general_dilated(
        jnp.asarray(x, jnp.float32)[None, :, :, None],
        jnp.asarray(w, jnp.float32)[:, :, None, None],
        (stride, stride),
        [(padding, padding)] * 2,
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
        precision=jax.lax.Precision.HIGHEST,
    )
    return np.asarray(out[0, :, :, 0], dtype=np.float64)


def _conv_cases(seed: int) -> list[tuple[np.ndarray, np.ndarray, int, int]]:
    """Hand-sized first (easy to debug), then random sizes, strides and paddings."""
    rng = np.random.default_rng(seed)
    cases = [
        (
            np.arange(25.0).reshape(5, 5),
            np.array([[1.0, 0, -1], [2, 0, -2], [1, 0, -1]]),
            1,
            0,
        ),
        (
            np.arange(25.0).reshape(5, 5),
            np.array([[0.0, 1, 0], [1, -4, 1], [0, 1, 0]]),
            1,
            1,
        ),
        (np.arange(49.0).reshape(7, 7) % 5, np.ones((3, 3)), 2, 0),
    ]
    for _ in range(5):
        k = int(rng.integers(1, 5))
        h, w = (int(v) for v in rng.integers(k, 10, size=2))
        cases.append(
            (
                rng.integers(-3, 4, size=(h, w)).astype(float),
                rng.integers(-2, 3, size=(k, k + int(rng.integers(0, 2)))).astype(
                    float
                ),
                int(rng.integers(1, 4)),
                int(rng.integers(0, 3)),
            )
        )
    return [c for c in cases if c[0].shape[1] + 2 * c[3] >= c[1].shape[1]]


def _diagnose(got, x, w, stride: int, padding: int, expected: np.ndarray) -> str:
    """Recognise the usual mistakes and say which one it looks like."""
    got = np.asarray(got, dtype=np.float64)
    if (
        padding
        and got.shape == _reference_conv(x, w, stride, 0).shape != expected.shape
    ):
        return (
            "the shape is what you get without padding: pad the input with "
            "`padding` rings of zeros first"
        )
    if got.shape == expected.shape:
        if stride == 1 and np.allclose(
            got, _reference_conv(x, w[::-1, ::-1], stride, padding), atol=1e-4
        ):
            return (
                "you computed the textbook convolution (kernel flipped); "
                "deep-learning libraries "
                "compute cross-correlation: do not flip the kernel"
            )
        if np.allclose(got.T, expected, atol=1e-4):
            return (
                "the result is transposed: rows index the vertical position (i), "
                "columns the horizontal (j)"
            )
    if got.ndim == 2 and got.shape != expected.shape:
        off = tuple(int(a - b) for a, b in zip(got.shape, expected.shape))
        if all(abs(o) == 1 for o in off if o) and any(off):
            return (
                f"the output is off by {off} in size: there are (n + 2p - k) // s + 1 "
                "window positions "
                "(check the +1 and the range() bounds)"
            )
        if stride > 1 and got.shape == _reference_conv(x, w, 1, padding).shape:
            return (
                "the shape is what stride 1 gives: "
                "move the window `stride` cells at a time"
            )
    return ""


def check_conv2d(fn: Callable, seed: int = 0) -> bool:
    """Check `fn(x, w, stride=..., padding=...)` on 2-D images and filters against
    jax.lax.
    """
    cases = _conv_cases(seed)
    for i, (x, w, stride, padding) in enumerate(cases, start=1):
        what = (
            f"conv2d case {i} of {len(cases)}: x {x.shape}, w {w.shape}, "
            f"stride {stride}, padding {padding}"
        )
        try:
            got = fn(x.copy(), w.copy(), stride=stride, padding=padding)
        except Exception as err:  # the reader's code: any failure becomes a hint
            return report(False, what, f"it raised {type(err).__name__}: {err}")
        expected = _reference_conv(x, w, stride, padding)
        ok, why = compare_arrays("your conv2d", got, expected)
        if not ok:
            hint = _diagnose(got, x, w, stride, padding, expected)
            return report(
                False, what, why + (f"\n  likely cause: {hint}" if hint else "")
            )
    return report(
        True,
        f"your conv2d matches jax.lax.conv_general_dilated on all {len(cases)} cases",
    )


def _output_size(n: int, k: int, stride: int, padding: int) -> int:
    return (n + 2 * padding - k) // stride + 1


def check_output_size(fn: Callable) -> bool:
    """Check `fn(n, k, stride, padding)` returns the number of window positions along
    one axis.
    """
    cases = [
        (5, 3, 1, 0),
        (5, 3, 2, 1),
        (28, 3, 1, 1),
        (28, 5, 1, 0),
        (32, 5, 1, 2),
        (7, 3, 2, 0),
        (227, 11, 4, 0),
        (9, 3, 3, 0),
        (4, 4, 1, 0),
    ]
    for n, k, s, p in cases:
        what = f"output size for n={n}, k={k}, stride={s}, padding={p}"
        try:
            got = fn(n, k, s, p)
        except Exception as err:
            return report(False, what, f"it raised {type(err).__name__}: {err}")
        expected = _output_size(n, k, s, p)
        if not isinstance(got, (int, np.integer)) or isinstance(got, bool):
            return report(
                False, what, f"return an int (use // for the division), got {got!r}"
            )
        if got != expected:
            if p and got in (_output_size(n, k, s, 0), (n + p - k) // s + 1):
                hint = (
                    "padding adds a ring of zeros on BOTH sides: "
                    "the length becomes n + 2 * padding"
                )
            elif got == expected - 1:
                hint = "one short: count the first position too (the + 1)"
            elif got == (n + 2 * p - k + 1) // s:
                hint = "divide (n + 2p - k) by the stride first, then add 1"
            else:
                hint = "the formula is (n + 2 * padding - k) // stride + 1"
            return report(False, what, f"got {got}, expected {expected}: {hint}")
    return report(True, f"your output-size formula is right on all {len(cases)} cases")


def check_standardize(fn: Callable, seed: int = 0) -> bool:
    """Check `fn(x_train, x_test) -> (train_out, test_out)` standardises both with
    TRAINING statistics.
    """
    rng = np.random.default_rng(seed)
    x_train = rng.normal(2.0, 3.0, size=(200, 6, 6))
    x_test = rng.normal(
        5.0, 1.0, size=(50, 6, 6)
    )  # deliberately different: leaks show up
    mean, std = x_train.mean(), x_train.std()
    try:
        got_train, got_test = fn(x_train.copy(), x_test.copy())
    except Exception as err:
        return report(False, "standardize", f"it raised {type(err).__name__}: {err}")
    ok, why = compare_arrays("train_out", got_train, (x_train - mean) / std)
    if not ok:
        return report(
            False,
            "standardize on the training set",
            why + "\n  subtract the training mean, "
            "then divide by the training standard deviation",
        )
    ok, why = compare_arrays("test_out", got_test, (x_test - mean) / std)
    if not ok:
        own = (x_test - x_test.mean()) / x_test.std()
        leaked = np.shape(got_test) == own.shape and np.allclose(
            got_test, own, atol=1e-4
        )
        return report(
            False,
            "standardize on the test set",
            "you used the test set's own mean and std: that leaks test information; "
            "reuse "
            "the training statistics"
            if leaked
            else why,
        )
    return report(True, "standardize uses the training statistics for both sets")
