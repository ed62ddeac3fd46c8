"""The layer chapters' self-checks pass correct answers and fail wrong ones with the
right hint.
"""

import jax
import numpy as np
import optax
from conftest import said

from mnist_cnn.teach.checks import layers
from mnist_cnn.teach.ops import avg_pool2d, max_pool2d


def test_activation_derivative(capsys):
    assert layers.check_activation_derivative(
        lambda x: (np.asarray(x) > 0).astype(float), "relu"
    )
    assert layers.check_activation_derivative(
        lambda x: 1 / (1 + np.exp(-x)) * (1 - 1 / (1 + np.exp(-x))), "sigmoid"
    )
    assert layers.check_activation_derivative(lambda x: 1 - np.tanh(x) ** 2, "tanh")
    capsys.readouterr()
    assert not layers.check_activation_derivative(
        lambda x: 1 / (1 + np.exp(-x)), "sigmoid"
    )
    assert "the activation itself" in said(capsys)
    assert not layers.check_activation_derivative(
        lambda x: (np.asarray(x) < 0).astype(float), "relu"
    )
    assert "other way round" in said(capsys)


def test_pool(capsys):
    assert layers.check_pool(lambda x, s, st: max_pool2d(x, s, st), "max")
    assert layers.check_pool(lambda x, s, st: avg_pool2d(x, s, st), "avg")
    capsys.readouterr()

    def pool_from_zero(
        x, size, stride
    ):  # a classic bug: the running maximum starts at 0
        return np.maximum(max_pool2d(x, size, stride), 0)

    assert not layers.check_pool(pool_from_zero, "max")
    assert "start the maximum at 0" in said(capsys)
    assert not layers.check_pool(lambda x, s, st: max_pool2d(x, s, 1), "max")
    assert "floor((n - size) / stride) + 1" in said(capsys)


def test_softmax(capsys):
    assert layers.check_softmax(lambda z: jax.nn.softmax(z, axis=-1))
    capsys.readouterr()
    assert not layers.check_softmax(
        lambda z: np.exp(z) / np.exp(z).sum(axis=-1, keepdims=True)
    )
    assert "subtract each row's maximum" in said(capsys)
    assert not layers.check_softmax(
        lambda z: np.exp(z - z.max()) / np.exp(z - z.max()).sum()
    )
    assert "normalise over the last axis" in said(capsys)
    assert not layers.check_softmax(lambda z: 1 / 0)
    assert "ZeroDivisionError" in said(capsys)


def test_cross_entropy(capsys):
    good = lambda z, y: optax.softmax_cross_entropy_with_integer_labels(z, y).mean()
    assert layers.check_cross_entropy(good)
    naive = lambda z, y: (
        -np.mean(np.log(np.exp(z)[np.arange(len(y)), y] / np.exp(z).sum(-1)))
    )
    capsys.readouterr()
    assert not layers.check_cross_entropy(naive)
    assert "logits - logsumexp(logits)" in said(capsys)
    assert not layers.check_cross_entropy(
        lambda z, y: optax.softmax_cross_entropy_with_integer_labels(z, y)
    )
    assert "the mean over the batch" in said(capsys)


def test_same_convolution(capsys):
    import scipy.signal

    good = lambda im, k: scipy.signal.correlate2d(im, k, mode="same")
    assert layers.check_same_convolution(good)
    capsys.readouterr()
    flipped = lambda im, k: scipy.signal.convolve2d(im, k, mode="same")
    assert not layers.check_same_convolution(flipped)
    assert "flipped the kernel" in said(capsys)
    valid = lambda im, k: scipy.signal.correlate2d(im, k, mode="valid")
    assert not layers.check_same_convolution(valid)
    assert "ring(s) of zeros" in said(capsys)
