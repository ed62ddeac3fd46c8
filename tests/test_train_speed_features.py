"""Training features: shift and rotation augmentation, wall-clock history."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from scipy import ndimage

from mnist_cnn import Config, fit
from mnist_cnn import train as T


def _shifted(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """`image` (H, W, C) moved down dy, right dx, zero-filled."""
    h, w, _ = image.shape
    out = np.zeros_like(image)
    out[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = image[
        max(-dy, 0) : h - max(dy, 0), max(-dx, 0) : w - max(dx, 0)
    ]
    return out


@pytest.mark.parametrize("shift", [1, 2])
def test_random_shift_moves_each_image_by_at_most_shift_pixels(shift):
    rng = np.random.default_rng(0)
    x = rng.random((16, 12, 12, 1)).astype(np.float32)
    out = np.asarray(T.random_shift(jnp.asarray(x), jax.random.key(3), shift))
    assert out.shape == x.shape
    offsets = []
    for image, moved in zip(x, out):
        matches = [
            (dy, dx)
            for dy in range(-shift, shift + 1)
            for dx in range(-shift, shift + 1)
            if np.array_equal(moved, _shifted(image, dy, dx))
        ]
        # Random pixels make every offset distinguishable: exactly one must match.
        assert len(matches) == 1
        offsets.append(matches[0])
    # Images of one batch get their own offsets, not one shared offset.
    assert len(set(offsets)) > 1


def test_random_shift_is_reproducible_and_key_dependent():
    x = jnp.asarray(np.random.default_rng(1).random((8, 10, 10, 1)), jnp.float32)
    a = T.random_shift(x, jax.random.key(0), 2)
    np.testing.assert_array_equal(a, T.random_shift(x, jax.random.key(0), 2))
    assert not np.array_equal(a, T.random_shift(x, jax.random.key(1), 2))


def test_train_step_with_shift_uses_the_labels_of_the_batch():
    """An augmented step is a plain step on shifted images (same labels, same loss)."""
    config = Config(conv_channels=(4,), dense=(8,), shift=2)
    model = T.CNN(config, rngs=nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, T.make_optimizer(config, 10), wrt=nnx.Param)
    rng = np.random.default_rng(2)
    x_all = jnp.asarray(rng.random((32, 28, 28, 1)), jnp.float32)
    y_all = jnp.asarray(rng.integers(0, 10, 32), jnp.int32)
    idx = jnp.arange(8)
    key = jax.random.key(5)
    # The step derives its key from the optimizer's step count (0 before the first
    # update).
    expected_x = T.random_shift(x_all[idx], jax.random.fold_in(key, 0), 2)
    expected_loss, logits = T.loss_fn(model, expected_x, y_all[idx])
    expected_correct = int(np.sum(np.asarray(logits).argmax(-1) == y_all[idx]))
    loss, correct = T.train_step(model, optimizer, x_all, y_all, idx, 0.0, key, shift=2)
    assert float(loss) == pytest.approx(float(expected_loss), rel=1e-5)
    # "correct" counts the predictions of the shifted images before the update.
    assert int(correct) == expected_correct


def test_shift_augmented_fit_is_deterministic_and_records_wall_time(mnist):
    (x_train, y_train), (x_test, y_test) = mnist
    data = ((x_train[:600], y_train[:600]), (x_test[:200], y_test[:200]))
    config = Config(
        conv_channels=(4, 8), dense=(16,), epochs=2, batch_size=100, shift=1
    )
    a, history = fit(config, data, progress=False)
    b, _ = fit(config, data, progress=False)
    for wa, wb in zip(
        jax.tree.leaves(nnx.state(a, nnx.Param)),
        jax.tree.leaves(nnx.state(b, nnx.Param)),
    ):
        np.testing.assert_array_equal(np.asarray(wa), np.asarray(wb))
    # Wall time counts from the call of fit and includes evaluation, so it exceeds the
    # loop time.
    assert len(history.wall_seconds) == 2
    assert history.seconds[0] <= history.wall_seconds[0] < history.wall_seconds[1]


def test_bad_shift_is_rejected():
    with pytest.raises(ValueError, match="shift must be between 0 and 8"):
        Config(shift=9)


def test_rotate_images_matches_rot90_and_scipy():
    x = np.random.default_rng(4).random((2, 28, 28, 1)).astype(np.float32)
    out = np.asarray(T.rotate_images(jnp.asarray(x), jnp.array([90.0, 30.0])))
    # A quarter turn maps the pixel grid onto itself: exactly np.rot90.
    np.testing.assert_allclose(out[0, ..., 0], np.rot90(x[0, ..., 0]), atol=1e-5)
    # Any angle: bilinear, zero outside, as scipy.ndimage.rotate with grid-constant.
    ref = ndimage.rotate(
        x[1, ..., 0], 30, reshape=False, order=1, mode="grid-constant", cval=0.0
    )
    np.testing.assert_allclose(out[1, ..., 0], ref, atol=1e-5)


def test_random_rotate_draws_one_angle_per_image_within_the_limit():
    x = jnp.asarray(np.random.default_rng(5).random((64, 28, 28, 1)), jnp.float32)
    key = jax.random.key(7)
    out = np.asarray(T.random_rotate(x, key, 10.0))
    degrees = jax.random.uniform(key, (64,), minval=-10.0, maxval=10.0)
    assert np.all(np.abs(np.asarray(degrees)) <= 10.0)
    assert len(np.unique(np.asarray(degrees))) == 64
    np.testing.assert_allclose(out, T.rotate_images(x, degrees), atol=1e-6)


def test_bad_rotate_is_rejected():
    with pytest.raises(ValueError, match="rotate must be between 0 and 45"):
        Config(rotate=46)
