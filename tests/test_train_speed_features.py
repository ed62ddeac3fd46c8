"""Speed-related training features: shift augmentation, wall-clock history, the compilation cache."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from mnist_cnn import Config, fit
from mnist_cnn import train as T


def _shifted(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """`image` (H, W, C) moved down by dy and right by dx, zero-filled: the reference for random_shift."""
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
    """An augmented step is an ordinary step on shifted images: same labels, loss from loss_fn."""
    config = Config(conv_channels=(4,), dense=(8,), shift=2)
    model = T.CNN(config, rngs=nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, T.make_optimizer(config, 10), wrt=nnx.Param)
    rng = np.random.default_rng(2)
    x_all = jnp.asarray(rng.random((32, 28, 28, 1)), jnp.float32)
    y_all = jnp.asarray(rng.integers(0, 10, 32), jnp.int32)
    idx = jnp.arange(8)
    key = jax.random.key(5)
    # The step derives its key from the optimizer's step count (0 before the first update).
    expected_x = T.random_shift(x_all[idx], jax.random.fold_in(key, 0), 2)
    expected_loss, _ = T.loss_fn(model, expected_x, y_all[idx])
    loss, correct = T.train_step(model, optimizer, x_all, y_all, idx, 0.0, 2, key)
    assert float(loss) == pytest.approx(float(expected_loss), rel=1e-5)
    assert 0 <= int(correct) <= 8


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
    # Wall time counts from the call of fit and includes evaluation, so it exceeds the loop time.
    assert len(history.wall_seconds) == 2
    assert history.seconds[0] <= history.wall_seconds[0] < history.wall_seconds[1]


def test_bad_shift_is_rejected():
    with pytest.raises(ValueError, match="shift must be between 0 and 8"):
        Config(shift=9)


def test_compilation_cache_folder_is_in_the_user_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    folder = T.compilation_cache_dir()
    assert folder.parent == tmp_path / "mnist_cnn" and folder.name.startswith("jax-")


def test_compilation_cache_respects_opt_out_and_an_existing_setting(
    monkeypatch, tmp_path
):
    before = jax.config.jax_compilation_cache_dir
    try:
        monkeypatch.setenv(T.CACHE_ENV_VAR, "0")
        assert T.enable_compilation_cache() is None
        # A cache the user configured is left alone.
        jax.config.update("jax_compilation_cache_dir", str(tmp_path / "theirs"))
        monkeypatch.setenv(T.CACHE_ENV_VAR, str(tmp_path / "ours"))
        assert T.enable_compilation_cache() is None
        assert jax.config.jax_compilation_cache_dir == str(tmp_path / "theirs")
        # With none configured, the folder named by the variable is used and created.
        jax.config.update("jax_compilation_cache_dir", None)
        assert T.enable_compilation_cache() == tmp_path / "ours"
        assert jax.config.jax_compilation_cache_dir == str(tmp_path / "ours")
        assert (tmp_path / "ours").is_dir()
    finally:
        jax.config.update("jax_compilation_cache_dir", before)
