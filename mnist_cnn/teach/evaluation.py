"""Scoring a trained CNN: class probabilities, the confusion matrix, its mistakes.

Images are what `load_data()` returns, uint8 (N, 28, 28), or floats in [0, 1]; labels
are (N,) integers; `probs` are the (N, 10) class probabilities of `probabilities()`.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from ..model import CNN
from ..predict import predict


def check_images(x: ArrayLike, name: str = "images") -> np.ndarray:
    """`x` as 28x28 digits (N, 28, 28), or a ValueError saying what is off."""
    x = np.asarray(x)
    if x.ndim != 3 or x.shape[1:] != (28, 28):
        raise ValueError(
            f"{name} must have shape (N, 28, 28), got {x.shape}; "
            "add a batch axis with x[None] for a single image"
        )
    return x


def check_labels(y: ArrayLike, n: int) -> np.ndarray:
    """`y` as `n` digit labels 0..9, or a ValueError saying what is off."""
    y = np.asarray(y)
    if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(
            f"labels must be {n} integers (one per image), got shape {y.shape}, "
            f"dtype {y.dtype}"
        )
    if n and (y.min() < 0 or y.max() > 9):
        raise ValueError(
            f"labels must be digits 0..9, got values in {y.min()}..{y.max()}"
        )
    return y


def probabilities(model: CNN, x: ArrayLike, batch_size: int = 1000) -> np.ndarray:
    """Class probabilities (N, 10) for images (N, 28, 28), computed in batches to bound
    memory.
    """
    x = check_images(x)
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    return np.concatenate(
        [predict(model, x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
    )


def label_pairs(y_true: ArrayLike, y_pred: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """(y_true, y_pred) as arrays, checked to be 1-D and of equal length."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(
            f"y_true and y_pred must be 1-D and of equal length, got shapes "
            f"{y_true.shape} and {y_pred.shape}"
        )
    return y_true, y_pred


def confusion_matrix(
    y_true: ArrayLike, y_pred: ArrayLike, num_classes: int = 10
) -> np.ndarray:
    """Counts (num_classes, num_classes): row = true class, column = predicted class."""
    y_true, y_pred = label_pairs(y_true, y_pred)
    for name, v in (("y_true", y_true), ("y_pred", y_pred)):
        if not np.issubdtype(v.dtype, np.integer) or (
            len(v) and (v.min() < 0 or v.max() >= num_classes)
        ):
            raise ValueError(f"{name} must hold integers in 0..{num_classes - 1}")
    # Each (true, pred) pair becomes one index into the flattened matrix.
    flat = np.bincount(y_true * num_classes + y_pred, minlength=num_classes**2)
    return flat.reshape(num_classes, num_classes)


def per_class_accuracy(matrix: np.ndarray) -> np.ndarray:
    """Fraction of each true class classified correctly (the recall), from a confusion
    matrix.
    """
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(
            f"expected a square confusion matrix, got shape {matrix.shape}"
        )
    totals = matrix.sum(axis=1)
    if np.any(totals == 0):
        raise ValueError(
            f"classes {np.flatnonzero(totals == 0).tolist()} have no examples"
        )
    return np.diag(matrix) / totals


def most_confused_pairs(matrix: np.ndarray, k: int = 5) -> list[tuple[int, int, int]]:
    """The `k` largest off-diagonal cells as (true class, predicted class, count),
    largest first.
    """
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(
            f"expected a square confusion matrix, got shape {matrix.shape}"
        )
    true, pred = np.nonzero(~np.eye(len(matrix), dtype=bool))
    counts = matrix[true, pred]
    # Largest count first; ties in (true, pred) order so the list is reproducible.
    order = np.lexsort((pred, true, -counts))[:k]
    return [(int(true[i]), int(pred[i]), int(counts[i])) for i in order]


def mistakes(y_true: ArrayLike, probs: np.ndarray) -> np.ndarray:
    """Indices of the misclassified images, in file order."""
    probs = np.asarray(probs)
    y_true = check_labels(y_true, len(probs))
    return np.flatnonzero(probs.argmax(axis=1) != y_true)


def most_confident_mistakes(
    y_true: ArrayLike, probs: np.ndarray, k: int = 10
) -> np.ndarray:
    """Indices of the `k` mistakes the model was surest of (highest probability on its
    wrong answer).
    """
    wrong = mistakes(y_true, probs)
    confidence = np.asarray(probs)[wrong].max(axis=1)
    return wrong[np.argsort(-confidence, kind="stable")[:k]]
