"""What the draw-a-digit page promises about its 16-bit weights, on all 10,000 digits.

chapters/14_draw_a_digit.md says that storing the book's model in float16 moves the
class probabilities by a few thousandths at most and changes the predicted class of
none of the 10,000 test digits. Both are measured here on the model the page ships.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest
from flax import nnx

import mnist_cnn
from mnist_cnn.export import export_web, load_web

# The page's wording: "by a few thousandths at most".
MAX_PROBABILITY_CHANGE = 5e-3


@pytest.fixture(scope="module")
def both_models(tmp_path_factory, mnist):
    """The book's model, and the same model read back from its float16 web export."""
    model = mnist_cnn.pretrained(data=mnist)
    path = export_web(model, tmp_path_factory.mktemp("web") / "model.js")
    return model, load_web(path), path


def test_float16_changes_no_prediction_on_the_test_set(both_models, mnist):
    model, web_model, _ = both_models
    (_, _), (x_test, _) = mnist
    exact = mnist_cnn.predict(model, x_test)
    rounded = mnist_cnn.predict(web_model, x_test)
    changed = np.flatnonzero(exact.argmax(1) != rounded.argmax(1))
    assert changed.size == 0, (
        f"float16 changes the predicted class of digits {changed[:10]}"
    )
    worst = float(np.abs(exact - rounded).max())
    assert 0 < worst <= MAX_PROBABILITY_CHANGE, worst


def test_file_size_is_the_base64_of_the_float16_weights(both_models):
    model, _, path = both_models
    weights = sum(np.size(p) for p in jax.tree.leaves(nnx.state(model, nnx.Param)))
    # The page says "about 200,000 weights, about 400 kB as 16-bit floats".
    assert 190_000 <= weights <= 215_000, weights
    raw_bytes = 2 * weights  # float16
    # base64 writes 4 characters per 3 bytes; the JSON around the arrays adds a little.
    size = path.stat().st_size
    assert raw_bytes * 4 / 3 <= size <= raw_bytes * 4 / 3 * 1.02, (size, raw_bytes)
