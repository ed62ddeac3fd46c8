"""Self-checks for the exercises of chapters 8 (the MNIST data) and 11 (training and
inspecting the CNN).
"""

from __future__ import annotations

import struct
from collections.abc import Callable

import numpy as np

from ..dataset import class_mean_images, describe_header
from ..evaluation import confusion_matrix
from ..robustness import shift_images
from . import check_function, report


def _header(shape: tuple[int, ...]) -> bytes:
    """The IDX header of unsigned bytes for `shape`: magic 0x0000080N, then sizes."""
    return struct.pack(f">HBB{len(shape)}I", 0, 0x08, len(shape), *shape)


def check_idx_header(fn: Callable[[bytes], tuple[int, ...]]) -> bool:
    """Check `fn(header_bytes) -> shape` on the headers of the four MNIST files and on
    made-up ones.
    """
    cases = [
        (60000, 28, 28),
        (60000,),
        (10000, 28, 28),
        (10000,),
        (3, 5, 7),
        (70000, 32, 32, 3),
        (1,),
        (256, 1, 65536),
    ]
    for shape in cases:
        header = _header(shape)
        expected = describe_header(header)["shape"]
        try:
            got = fn(header)
            got = tuple(int(v) for v in got)
        except (
            Exception
        ) as err:  # the reader's code: any failure is a hint, not a crash
            return report(
                False,
                f"reading the header {header.hex(' ')}",
                f"it raised {type(err).__name__}: {err}",
            )
        if got != expected:
            hint = (
                "the sizes are big-endian 32-bit integers: use struct.unpack('>I', "
                "...) or "
                "int.from_bytes(..., 'big')"
            )
            if len(got) != len(expected):
                hint = (
                    "the number of dimensions is the 4th byte of the magic number: "
                    "header[3]"
                )
            return report(
                False,
                f"reading the header {header.hex(' ')}",
                f"got {got}, expected {expected}; {hint}",
            )
    return report(True, f"the header reader decodes all {len(cases)} headers")


def check_class_means(fn: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> bool:
    """Check `fn(x, y) -> (10, H, W)` mean image per class, pixels in [0, 1], against
    the package.
    """
    rng = np.random.default_rng(0)
    cases = []
    for n, side in ((20, 4), (50, 28), (200, 6)):
        y = np.concatenate([np.arange(10), rng.integers(0, 10, n - 10)]).astype(
            np.uint8
        )
        cases.append((rng.integers(0, 256, (n, side, side), dtype=np.uint8), y))
    return check_function("class mean images", fn, class_mean_images, cases, atol=1e-6)


def check_confusion_matrix(fn: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> bool:
    """Check `fn(y_true, y_pred) -> (10, 10)` counts, row = true class, against the
    package.
    """
    rng = np.random.default_rng(1)
    cases = [
        (np.arange(10), np.arange(10)),
        (np.array([3, 3, 5]), np.array([5, 3, 3])),
        (np.zeros(4, int), np.full(4, 9)),
    ]
    cases += [(rng.integers(0, 10, n), rng.integers(0, 10, n)) for n in (1, 100, 1000)]
    ok = check_function("confusion matrix", fn, confusion_matrix, cases[:3], atol=0)
    if not ok:
        print(
            "  (rows are the true classes, columns the predicted ones: matrix[true, "
            "pred])"
        )
        return False
    return check_function("confusion matrix", fn, confusion_matrix, cases, atol=0)


def check_shift(fn: Callable[[np.ndarray, int, int], np.ndarray]) -> bool:
    """Check `fn(image, dy, dx)`: the image moved down dy and right dx whole pixels,
    zeros come in.
    """
    rng = np.random.default_rng(2)
    image = rng.integers(1, 256, (28, 28), dtype=np.uint8)
    cases = [
        (image, 0, 0),
        (image, 0, 3),
        (image, 2, 0),
        (image, -4, 1),
        (image, 5, -6),
        (image, 27, 27),
        (image, 0, -28),
    ]
    return check_function(
        "shift by whole pixels",
        fn,
        lambda im, dy, dx: shift_images(im[None], dy, dx)[0],
        cases,
        atol=0,
    )
