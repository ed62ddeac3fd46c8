"""Tests of mnist_cnn.teach.evaluation."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mnist_cnn.teach import (
    evaluation,
)


def test_probabilities_are_softmax_of_the_logits(model, digits):
    x, _ = digits
    probs = evaluation.probabilities(
        model, x, batch_size=4
    )  # two batches, the second one partial
    expected = jax.nn.softmax(
        model(jnp.asarray(x, jnp.float32)[..., None] / 255), axis=-1
    )
    np.testing.assert_allclose(probs, expected, atol=1e-6)


def test_confusion_matrix_against_a_direct_count():
    rng = np.random.default_rng(1)
    y_true, y_pred = rng.integers(0, 10, 500), rng.integers(0, 10, 500)
    expected = np.zeros((10, 10), int)
    for t, p in zip(y_true, y_pred):
        expected[t, p] += 1
    matrix = evaluation.confusion_matrix(y_true, y_pred)
    np.testing.assert_array_equal(matrix, expected)
    np.testing.assert_allclose(
        evaluation.per_class_accuracy(matrix),
        [np.mean(y_pred[y_true == c] == c) for c in range(10)],
    )
    with pytest.raises(ValueError, match="equal length"):
        evaluation.confusion_matrix(y_true, y_pred[:-1])
    with pytest.raises(ValueError, match=r"0\.\.9"):
        evaluation.confusion_matrix(np.array([10]), np.array([0]))


def test_most_confused_pairs_against_a_sort():
    rng = np.random.default_rng(2)
    matrix = rng.integers(0, 6, (10, 10))  # many ties, so the tie order is tested too
    cells = sorted(
        (-matrix[t, p], t, p) for t in range(10) for p in range(10) if t != p
    )
    expected = [(t, p, -n) for n, t, p in cells[:7]]
    assert evaluation.most_confused_pairs(matrix, k=7) == expected


def test_mistakes_and_most_confident_ones():
    probs = np.array(
        [
            [0.9, 0.1] + [0] * 8,
            [0.2, 0.8] + [0] * 8,
            [0.6, 0.4] + [0] * 8,
            [0.3, 0.7] + [0] * 8,
            [0.45, 0.55] + [0] * 8,
        ]
    )
    y = np.array([1, 1, 1, 0, 0])
    wrong = [i for i in range(5) if probs[i].argmax() != y[i]]
    assert evaluation.mistakes(y, probs).tolist() == wrong
    assert (
        evaluation.most_confident_mistakes(y, probs, k=3).tolist()
        == sorted(wrong, key=lambda i: -probs[i].max())[:3]
    )


@pytest.mark.parametrize(
    "y_true,y_pred",
    [([0, 1, 2], [0, 1]), ([[0, 1]], [[0, 1]])],  # lengths differ; not 1-D
)
def test_label_pairs_are_checked_alike_everywhere(y_true, y_pred):
    from mnist_cnn.teach import fashion

    for use in (
        evaluation.label_pairs,
        evaluation.confusion_matrix,
        lambda t, p: fashion.confused_examples(t, p, 0, 1),
    ):
        with pytest.raises(ValueError, match="1-D and of equal length"):
            use(y_true, y_pred)
    t, p = evaluation.label_pairs([3, 1], (2, 1))
    assert t.tolist() == [3, 1] and p.tolist() == [2, 1]
