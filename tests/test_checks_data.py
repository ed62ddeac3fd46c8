"""The chapter 8-9 self-checks pass a correct answer and fail typical wrong ones, with a
hint.
"""

from __future__ import annotations

import struct

import numpy as np
from conftest import said

from mnist_cnn.teach.checks import data as checks


def test_idx_header_check(capsys):
    def right(header: bytes) -> tuple[int, ...]:
        ndim = header[3]
        return struct.unpack(f">{ndim}I", header[4 : 4 + 4 * ndim])

    def little_endian(header: bytes) -> tuple[int, ...]:
        return struct.unpack(f"<{header[3]}I", header[4 : 4 + 4 * header[3]])

    def always_three(header: bytes) -> tuple[int, ...]:
        return struct.unpack(">3I", header[4:16].ljust(12, b"\0"))

    assert checks.check_idx_header(right) is True
    assert "PASS" in said(capsys)
    assert checks.check_idx_header(little_endian) is False
    assert "big-endian" in said(capsys)
    assert checks.check_idx_header(always_three) is False
    assert "header[3]" in said(capsys)
    assert checks.check_idx_header(lambda h: 1 / 0) is False
    assert "ZeroDivisionError" in said(capsys)


def test_class_means_check(capsys):
    def right(x, y):
        return np.stack([x[y == c].mean(axis=0) / 255 for c in range(10)])

    assert checks.check_class_means(right) is True
    assert (
        checks.check_class_means(lambda x, y: right(x, y) * 255) is False
    )  # forgot to scale
    assert (
        checks.check_class_means(
            lambda x, y: np.stack(
                [x[y == c].sum(axis=0) / 255 / len(x) for c in range(10)]
            )
        )
        is False
    )
    assert said(capsys).count("FAIL") == 2


def test_confusion_matrix_check(capsys):
    def right(y_true, y_pred):
        m = np.zeros((10, 10), int)
        for t, p in zip(y_true, y_pred):
            m[t, p] += 1
        return m

    assert checks.check_confusion_matrix(right) is True
    assert checks.check_confusion_matrix(lambda t, p: right(t, p).T) is False
    assert "matrix[true, pred]" in said(capsys)

    def assignment_not_count(y_true, y_pred):
        m = np.zeros((10, 10), int)
        m[y_true, y_pred] += 1  # fancy-index += counts a repeated pair only once
        return m

    assert checks.check_confusion_matrix(assignment_not_count) is False


def test_shift_check(capsys):
    def right(image, dy, dx):
        out = np.zeros_like(image)
        h, w = image.shape
        src = image[max(0, -dy) : h - max(0, dy), max(0, -dx) : w - max(0, dx)]
        out[
            max(0, dy) : max(0, dy) + src.shape[0],
            max(0, dx) : max(0, dx) + src.shape[1],
        ] = src
        return out

    assert checks.check_shift(right) is True
    # np.roll wraps pixels around instead of letting zeros in.
    assert (
        checks.check_shift(lambda im, dy, dx: np.roll(im, (dy, dx), axis=(0, 1)))
        is False
    )
    assert "FAIL" in said(capsys)
