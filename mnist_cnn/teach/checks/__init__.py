"""Self-checks for the book's exercises: each prints a clear pass or fail with a hint.

Every check returns True or False, so a notebook can also `assert` it. The checks of
each part of the book live in their own module (`conv`, `data`, `layers`, `model`,
`generalisation`); every `check_*` is also re-exported here, so
`mnist_cnn.checks.check_conv2d` works.
"""

from __future__ import annotations

import textwrap
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

# Messages are wrapped to the width the book's code boxes show without scrolling.
WIDTH = 88


def report(passed: bool, what: str, hint: str = "") -> bool:
    """Print whether the check passed, and a hint when it did not, wrapped to WIDTH."""
    lines = [f"PASS: {what}" if passed else f"FAIL: {what}"]
    if hint and not passed:
        lines.append(f"  hint: {hint}")
    for line in lines:
        indent = "  " if line.startswith("  ") else ""
        print(textwrap.fill(line, WIDTH, subsequent_indent=indent + "  "))
    return passed


def compare_arrays(
    name: str, got: ArrayLike, expected: ArrayLike, atol: float = 1e-4
) -> tuple[bool, str]:
    """Compare a reader's result with the reference; returns (ok, an explanation of any
    mismatch).
    """
    try:
        got = np.asarray(got, dtype=np.float64)
    except (TypeError, ValueError):
        return (
            False,
            f"{name} returned something that is not an array of numbers: "
            f"{type(got).__name__}",
        )
    expected = np.asarray(expected, dtype=np.float64)
    if got.shape != expected.shape:
        return False, (
            f"{name} returned shape {got.shape}, expected {expected.shape}: "
            "check the output-size formula (an off-by-one in the loop bounds?)"
        )
    if not np.all(np.isfinite(got)):
        return False, f"{name} returned NaN or infinite values"
    error = np.max(np.abs(got - expected), initial=0.0)
    if error > atol:
        where = np.unravel_index(np.argmax(np.abs(got - expected)), got.shape)
        return False, (
            f"{name} differs from the reference by up to {error:.3g} "
            f"(first at index {tuple(int(i) for i in where)}: got {got[where]:.4g}, "
            f"expected {expected[where]:.4g})"
        )
    return True, ""


def call_quietly(fn: Callable, *args) -> tuple[Any, str]:
    """Call the reader's function: (its result, "") or (None, what it raised)."""
    try:
        # Overflow in the reader's code is diagnosed by the hints; a RuntimeWarning
        # would only add noise under the cell.
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return fn(*args), ""
    except Exception as err:  # the reader's code: any failure is a hint, not a crash
        return None, f"it raised {type(err).__name__}: {err}"


def check_function(
    name: str,
    fn: Callable,
    reference: Callable,
    cases: Sequence[tuple],
    atol: float = 1e-4,
    *,
    describe: Callable[[int, int, tuple], str] | None = None,
    diagnose: Callable[..., str] | None = None,
    array_name: str | None = None,
    success: str | None = None,
) -> bool:
    """Call `fn(*case)` and `reference(*case)` on every case and report the first
    mismatch.

    `describe(i, n, case)` names case i of n in the report (default "{name} on case i of
    n"); `diagnose(got, expected, *case)` returns a hint to append when they differ;
    `array_name` names the result in the mismatch message; `success` replaces the line
    printed when every case passes.
    """
    for i, case in enumerate(cases, start=1):
        what = (
            describe(i, len(cases), case)
            if describe
            else f"{name} on case {i} of {len(cases)}"
        )
        got, err = call_quietly(fn, *case)
        if err:
            return report(False, what, err)
        expected = np.asarray(reference(*case), dtype=np.float64)
        ok, why = compare_arrays(array_name or name, got, expected, atol)
        if not ok:
            if diagnose is not None:
                why += _diagnosis(diagnose, got, expected, case)
            return report(False, what, why)
    return report(
        True, success or f"{name} matches the reference on all {len(cases)} cases"
    )


def _diagnosis(
    diagnose: Callable[..., str], got: Any, expected: np.ndarray, case
) -> str:
    """The hint `diagnose` gives for a numeric result; nothing for one that is not
    numbers.
    """
    try:
        got = np.asarray(got, dtype=np.float64)
    except (TypeError, ValueError):
        return ""
    return diagnose(got, expected, *case)


# Every check, importable from here as `checks.check_*`.
from .conv import check_conv2d, check_output_size, check_standardize  # noqa: E402
from .data import (  # noqa: E402
    check_class_means,
    check_confusion_matrix,
    check_idx_header,
    check_shift,
)
from .generalisation import check_best_epoch, check_split  # noqa: E402
from .layers import (  # noqa: E402
    check_activation_derivative,
    check_cross_entropy,
    check_pool,
    check_same_convolution,
    check_softmax,
)
from .model import check_model  # noqa: E402

__all__ = [
    "call_quietly",
    "check_activation_derivative",
    "check_best_epoch",
    "check_class_means",
    "check_confusion_matrix",
    "check_conv2d",
    "check_cross_entropy",
    "check_function",
    "check_idx_header",
    "check_model",
    "check_output_size",
    "check_pool",
    "check_same_convolution",
    "check_shift",
    "check_softmax",
    "check_split",
    "check_standardize",
    "compare_arrays",
    "report",
]
