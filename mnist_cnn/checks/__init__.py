"""Self-checks for the book's exercises: each prints a clear pass or fail with a hint.

Every check returns True or False, so a notebook can also `assert` it. The checks of each
part of the book live in their own module: `checks.conv`, `checks.layers`, `checks.data`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike


def report(passed: bool, what: str, hint: str = "") -> bool:
    """Print one line saying whether the check passed, with a hint when it did not."""
    if passed:
        print(f"PASS: {what}")
    else:
        print(f"FAIL: {what}" + (f"\n  hint: {hint}" if hint else ""))
    return passed


def compare_arrays(
    name: str, got: ArrayLike, expected: ArrayLike, atol: float = 1e-4
) -> tuple[bool, str]:
    """Compare a reader's result with the reference; returns (ok, an explanation of any mismatch)."""
    try:
        got = np.asarray(got, dtype=np.float64)
    except (TypeError, ValueError):
        return (
            False,
            f"{name} returned something that is not an array of numbers: {type(got).__name__}",
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


def check_function(
    name: str, fn: Callable, reference: Callable, cases: list[tuple], atol: float = 1e-4
) -> bool:
    """Call `fn(*case)` and `reference(*case)` on every case and report the first mismatch."""
    for i, case in enumerate(cases):
        try:
            got = fn(*case)
        except (
            Exception
        ) as err:  # the reader's code: any failure is a hint, not a crash
            return report(
                False,
                f"{name} on case {i + 1} of {len(cases)}",
                f"it raised {type(err).__name__}: {err}",
            )
        ok, why = compare_arrays(name, got, reference(*case), atol)
        if not ok:
            return report(False, f"{name} on case {i + 1} of {len(cases)}", why)
    return report(True, f"{name} matches the reference on all {len(cases)} cases")
