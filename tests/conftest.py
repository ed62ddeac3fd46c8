"""Shared fixtures: the real MNIST copy and a small trained model."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_SHARED = REPO.parent / "shared" / "data" / "mnist"

# Tests use the verified local copy of MNIST: .ci/run sets MNIST_CNN_DATA; a checkout next to
# shared/ finds it without.
if not os.environ.get("MNIST_CNN_DATA") and _SHARED.is_dir():
    os.environ["MNIST_CNN_DATA"] = str(_SHARED)


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """Folder holding the four real MNIST files."""
    folder = os.environ.get("MNIST_CNN_DATA")
    if not folder:
        pytest.fail(
            "set MNIST_CNN_DATA to a folder with the four MNIST files (see README)"
        )
    return Path(folder)


@pytest.fixture(scope="session")
def mnist(mnist_dir):
    """The real MNIST arrays, ((x_train, y_train), (x_test, y_test))."""
    from mnist_cnn import load_data

    return load_data(mnist_dir)


@pytest.fixture(scope="session")
def tiny_model(mnist):
    """A small model trained for a few seconds on 4,000 images (about 90% accurate)."""
    from mnist_cnn import PRESETS, fit

    model, history = fit(PRESETS["tiny"], mnist, progress=False)
    return model
