"""Shared fixtures: the real MNIST copy, a small trained model, an untrained one."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

# Figures are drawn off screen in the tests: no display, no window, the same pixels
# everywhere.
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
_SHARED = REPO.parent / "shared" / "data" / "mnist"

# Tests use the verified local copy of MNIST: .ci/run sets MNIST_CNN_DATA; a checkout
# next to shared/ finds it without.
if not os.environ.get("MNIST_CNN_DATA") and _SHARED.is_dir():
    os.environ["MNIST_CNN_DATA"] = str(_SHARED)
# Fashion-MNIST: .ci/run installs Debian's dataset-fashion-mnist and sets the variable;
# on a Debian machine with the package, the tests find it without.
_FASHION_DEBIAN = Path("/usr/share/datasets/fashion-mnist")
if not os.environ.get("MNIST_CNN_FASHION_DATA") and _FASHION_DEBIAN.is_dir():
    os.environ["MNIST_CNN_FASHION_DATA"] = str(_FASHION_DEBIAN)


@pytest.fixture(autouse=True)
def _close_figures():
    """Close every figure a test opened, so none leaks memory into the next test."""
    yield
    plt.close("all")


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

    model, _ = fit(PRESETS["tiny"], mnist, progress=False)
    return model


# A small untrained CNN and six random "digits": the teaching modules' tests need a
# model and images that are deterministic and instant, not a trained one.
@pytest.fixture(scope="module")
def model():
    """An untrained CNN (4/8 channels, dense 16) with MNIST-like input statistics."""
    from flax import nnx

    from mnist_cnn import CNN, Config

    m = CNN(Config(conv_channels=(4, 8), dense=(16,)), rngs=nnx.Rngs(0))
    m.set_input_stats(0.13, 0.31)
    m.eval()
    return m


@pytest.fixture(scope="module")
def digits():
    """Six random uint8 28x28 images (N=6) and their labels (6,)."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (6, 28, 28), dtype=np.uint8)
    return images, np.array([0, 1, 2, 3, 4, 9])


def said(capsys: pytest.CaptureFixture[str]) -> str:
    """What a check printed since the last call, with its line wrapping undone."""
    return " ".join(capsys.readouterr().out.split())
