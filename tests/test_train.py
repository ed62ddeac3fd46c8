"""Training: a short real run learns, is deterministic, and evaluation counts every image."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from flax import nnx

from mnist_cnn import Config, evaluate, fit

SMALL = Config(
    conv_channels=(8, 16), dense=(32,), epochs=2, train_size=5000, batch_size=50
)


def _weights(model) -> list[np.ndarray]:
    return [np.asarray(leaf) for leaf in jax.tree.leaves(nnx.state(model, nnx.Param))]


def test_a_short_run_learns(mnist):
    (x_train, y_train), (x_test, y_test) = mnist
    small_test = ((x_train[:5000], y_train[:5000]), (x_test[:2000], y_test[:2000]))
    model, history = fit(SMALL, small_test, progress=False)
    assert history.epoch == [1, 2]
    assert history.loss[1] < history.loss[0]
    assert history.test_accuracy[-1] > 0.90
    assert history.test_accuracy[-1] == pytest.approx(
        evaluate(model, x_test[:2000], y_test[:2000])
    )
    assert 0 < history.seconds[0] <= history.seconds[1]
    # The input statistics come from the training images only.
    assert float(model.mean[...]) == pytest.approx(
        x_train[:5000].mean() / 255, rel=1e-4
    )


def test_same_seed_same_weights_other_seed_other_weights(mnist):
    (x_train, y_train), test = mnist
    subset = ((x_train[:1000], y_train[:1000]), (test[0][:100], test[1][:100]))
    config = SMALL.replace(epochs=1)
    a, _ = fit(config, subset, progress=False)
    b, _ = fit(config, subset, progress=False)
    c, _ = fit(config.replace(seed=1), subset, progress=False)
    for wa, wb in zip(_weights(a), _weights(b)):
        np.testing.assert_array_equal(wa, wb)
    assert any(not np.array_equal(wa, wc) for wa, wc in zip(_weights(a), _weights(c)))


def test_validation_split_keeps_the_test_set_unseen(mnist):
    (x_train, y_train), (x_test, y_test) = mnist
    data = ((x_train[:1200], y_train[:1200]), (x_test, y_test))
    model, history = fit(
        SMALL.replace(epochs=1, validation_size=200, train_size=None),
        data,
        progress=False,
    )
    assert history.evaluated_on == "validation"
    assert history.test_accuracy[-1] == pytest.approx(
        evaluate(model, x_train[1000:1200], y_train[1000:1200])
    )


def test_evaluate_counts_the_last_partial_batch(tiny_model, mnist):
    _, (x_test, y_test) = mnist
    x, y = x_test[:1001], y_test[:1001]
    predictions = np.asarray(tiny_model(x[..., None] / 255.0).argmax(-1))
    expected = float(np.mean(predictions == y))
    assert evaluate(tiny_model, x, y, batch_size=1000) == pytest.approx(expected)
    assert evaluate(tiny_model, x, y, batch_size=7) == pytest.approx(expected)


def test_evaluate_rejects_mismatched_inputs(tiny_model, mnist):
    _, (x_test, y_test) = mnist
    with pytest.raises(ValueError, match="as many labels as images"):
        evaluate(tiny_model, x_test[:10], y_test[:9])


def test_batch_larger_than_data_is_a_clear_error(mnist):
    (x_train, y_train), test = mnist
    with pytest.raises(ValueError, match="batch_size"):
        fit(
            SMALL.replace(batch_size=500),
            ((x_train[:100], y_train[:100]), test),
            progress=False,
        )
