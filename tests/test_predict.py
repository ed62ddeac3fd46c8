"""predict and the MNIST-style preprocessing of arbitrary images."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from mnist_cnn import predict, preprocess_image


def test_probability_shapes_and_sums(tiny_model, mnist):
    _, (x_test, _) = mnist
    one = predict(tiny_model, x_test[0])
    many = predict(tiny_model, x_test[:7])
    assert one.shape == (10,) and many.shape == (7, 10)
    np.testing.assert_allclose(many.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(one, many[0], rtol=1e-5)
    # uint8 pixels and floats in [0, 1] are the same input.
    np.testing.assert_allclose(
        predict(tiny_model, x_test[:7] / 255.0), many, rtol=1e-5, atol=1e-7
    )


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros((28, 27)), "shape"),
        (np.zeros((2, 3, 28, 28)), "shape"),
        (np.full((28, 28), np.nan), "NaN"),
        (np.full((28, 28), 2.0), r"\[0, 1\]"),
        (np.array(["a"] * 784).reshape(28, 28), "numeric"),
    ],
)
def test_bad_arrays_are_clear_errors(tiny_model, bad, message):
    with pytest.raises(ValueError, match=message):
        predict(tiny_model, bad)


def _digit_file(path, digit: np.ndarray, size: int = 200):
    """A test digit as a large black-on-white PNG, like a scan of ink on paper."""
    big = Image.fromarray(255 - digit).resize((size, size), Image.BILINEAR)
    canvas = Image.new("L", (size + 100, size + 60), 255)
    canvas.paste(big, (70, 10))  # off centre, with a white margin
    canvas.save(path)
    return path


def test_image_files_are_preprocessed_and_classified(tiny_model, mnist, tmp_path):
    _, (x_test, y_test) = mnist
    paths = [_digit_file(tmp_path / f"{i}.png", x_test[i]) for i in range(10)]
    probs = predict(tiny_model, paths)
    assert probs.shape == (10, 10)
    direct = predict(tiny_model, x_test[:10]).argmax(1)
    assert np.mean(probs.argmax(1) == direct) >= 0.8
    assert predict(tiny_model, paths[0]).shape == (10,)


def test_preprocessing_follows_the_mnist_recipe(mnist, tmp_path):
    _, (x_test, _) = mnist
    out, steps = preprocess_image(
        _digit_file(tmp_path / "d.png", x_test[3]), steps=True
    )
    assert out.shape == (28, 28) and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 1
    assert steps["inverted"].mean() < 0.5  # dark background after inversion
    assert max(steps["scaled"].shape) == 20
    ys, xs = np.indices(out.shape)
    assert abs((ys * out).sum() / out.sum() - 14) <= 0.6
    assert abs((xs * out).sum() / out.sum() - 14) <= 0.6
    rows, cols = np.nonzero(out > 0.1)
    assert max(rows.max() - rows.min(), cols.max() - cols.min()) + 1 <= 21


def test_unreadable_and_blank_images(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    with pytest.raises(ValueError, match="not a readable image"):
        preprocess_image(bad)
    with pytest.raises(FileNotFoundError, match="no such image"):
        preprocess_image(tmp_path / "missing.png")
    Image.new("L", (50, 50), 255).save(tmp_path / "blank.png")
    with pytest.raises(ValueError, match="blank"):
        preprocess_image(tmp_path / "blank.png")
