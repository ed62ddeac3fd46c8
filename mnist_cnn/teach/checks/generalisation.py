"""Self-checks for the exercises of chapter 12 (overfitting and generalisation)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ..generalisation import best_epoch
from . import call_quietly, report


def _tagged_data(n_train: int, n_test: int):
    """Tiny fake MNIST whose every image holds its own id: train 0.., test n_train.."""
    ids = np.arange(n_train + n_test)
    images = np.broadcast_to(ids[:, None, None], (len(ids), 28, 28)).astype(np.int64)
    labels = ids % 10
    return (images[:n_train], labels[:n_train]), (images[n_train:], labels[n_train:])


def _ids(images) -> np.ndarray:
    """The id of each image of `_tagged_data` (every pixel holds it)."""
    images = np.asarray(images)
    return images.reshape(len(images), -1)[:, 0].astype(np.int64)


def check_split(fn: Callable) -> bool:
    """Check `fn(data, validation_size) -> ((x, y) train, (x, y) validation)`.

    data is `((x_train, y_train), (x_test, y_test))` as `load_data()` returns it. The
    check feeds fake images that carry their own id and finds test images in either
    part, images in both parts, images that lost their label, and wrong sizes.
    """
    cases = [(1000, 300, 200), (60, 20, 10), (50, 1, 5)]  # (train, test, validation)
    for n_train, n_test, n_val in cases:
        data = _tagged_data(n_train, n_test)
        what = f"splitting {n_train} training images with validation_size={n_val}"
        got, err = call_quietly(fn, data, n_val)
        if err:
            return report(False, what, err)
        try:
            (x_tr, y_tr), (x_val, y_val) = got
            train_ids, val_ids = _ids(x_tr), _ids(x_val)
            y_tr, y_val = np.asarray(y_tr), np.asarray(y_val)
        except (TypeError, ValueError, IndexError) as e:
            return report(
                False,
                what,
                f"return ((x_train, y_train), (x_val, y_val)); unpacking gave {e}",
            )
        hint = ""
        if np.any(val_ids >= n_train):
            hint = (
                f"{int(np.sum(val_ids >= n_train))} validation images come from the "
                "test set: take the validation images from the training images only"
            )
        elif np.any(train_ids >= n_train):
            hint = "test images ended up in the training part: leave the test set alone"
        elif np.intersect1d(train_ids, val_ids).size:
            hint = (
                f"{np.intersect1d(train_ids, val_ids).size} images are in both parts: "
                "a validation image must be one the network never trains on"
            )
        elif len(np.unique(train_ids)) != len(train_ids) or len(
            np.unique(val_ids)
        ) != len(val_ids):
            hint = (
                "some images appear twice within a part: split indices, do not sample"
            )
        elif len(val_ids) != n_val:
            hint = f"the validation part has {len(val_ids)} images, expected {n_val}"
        elif len(train_ids) != n_train - n_val:
            hint = (
                f"the training part has {len(train_ids)} images, expected "
                f"{n_train - n_val} (every training image not held out)"
            )
        elif len(y_tr) != len(train_ids) or len(y_val) != len(val_ids):
            hint = "each part needs one label per image"
        elif not (
            np.array_equal(y_tr, train_ids % 10) and np.array_equal(y_val, val_ids % 10)
        ):
            hint = "labels no longer match their images: index images and labels alike"
        if hint:
            return report(False, what, hint)
    return report(
        True,
        "the split keeps the test set out and the two parts disjoint in "
        f"{len(cases)} cases",
    )


def check_best_epoch(fn: Callable[[Sequence[float], int], int]) -> bool:
    """Check `fn(val_accuracy, patience) -> epoch` (1-based) against early stopping."""
    cases = [
        ([0.90, 0.93, 0.95, 0.94, 0.96], 1),
        ([0.90, 0.93, 0.95, 0.94, 0.96], 2),
        ([0.90, 0.92, 0.92, 0.91], 5),
        ([0.97], 3),
        ([0.5, 0.6, 0.7, 0.8], 1),
        ([0.8, 0.7, 0.9, 0.95, 0.6, 0.99], 2),
    ]
    for accs, patience in cases:
        expected = best_epoch(accs, patience)
        got, err = call_quietly(fn, list(accs), patience)
        what = f"early stopping on {accs} with patience {patience}"
        if err:
            return report(False, what, err)
        if got != expected:
            hint = f"got epoch {got}, expected {expected}"
            if got == int(np.argmax(accs)) + 1 and got != expected:
                hint += (
                    ": you picked the best epoch of the whole run, but training stops"
                    f" after {patience} epochs without improvement and never sees the"
                    " rest"
                )
            elif got == expected - 1:
                hint += ": epochs are counted from 1"
            return report(False, what, hint)
    return report(
        True, f"early stopping picks the right epoch in all {len(cases)} cases"
    )
