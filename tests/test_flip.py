"""Random horizontal flips (`Config.flip`): exact mirrors, seeded, off by default."""

from __future__ import annotations

import itertools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from mnist_cnn import Config
from mnist_cnn.model import init_model
from mnist_cnn.pixels import as_batch
from mnist_cnn.train import (
    loss_fn,
    make_optimizer,
    make_step,
    random_flip,
    train_step,
    training_steps,
)

SMALL = Config(conv_channels=(4, 8), dense=(16,), batch_size=32)


def _flipped_mask(x: np.ndarray, out: np.ndarray) -> np.ndarray:
    """(N,) True where out[i] is x[i] mirrored; every image must be one or the other."""
    mirrored = np.array([np.array_equal(o, np.flip(i, axis=1)) for i, o in zip(x, out)])
    same = np.array([np.array_equal(o, i) for i, o in zip(x, out)])
    assert np.all(mirrored ^ same), "an image is neither itself nor its mirror image"
    return mirrored


def test_about_half_the_images_are_mirrored_exactly():
    # Random images are never their own mirror image, so each output tells which.
    x = np.random.default_rng(0).random((400, 28, 28, 1), dtype=np.float32)
    out = np.asarray(random_flip(jnp.asarray(x), jax.random.key(3)))
    flipped = _flipped_mask(x, out)
    assert 150 <= flipped.sum() <= 250  # Binomial(400, 1/2): 200 +- 5 sigma


def test_flips_are_deterministic_for_a_key_and_change_with_it():
    x = np.random.default_rng(1).random((64, 28, 28, 1), dtype=np.float32)
    first = np.asarray(random_flip(jnp.asarray(x), jax.random.key(7)))
    again = np.asarray(random_flip(jnp.asarray(x), jax.random.key(7)))
    other = np.asarray(random_flip(jnp.asarray(x), jax.random.key(8)))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(_flipped_mask(x, first), _flipped_mask(x, other))


@pytest.fixture(scope="module")
def batch(mnist):
    (x_train, y_train), _ = mnist
    x = as_batch(x_train[:256])  # (256, 28, 28, 1)
    return x, jnp.asarray(y_train[:256], jnp.int32)


def _fresh(config: Config, x: jax.Array) -> tuple[object, nnx.Optimizer]:
    model = init_model(config, x)
    return model, nnx.Optimizer(model, make_optimizer(config, 10), wrt=nnx.Param)


def test_the_step_trains_on_the_flips_drawn_from_the_step_key(batch):
    x, y = batch
    idx, key = np.arange(32), jax.random.key(5)
    model, optimizer = _fresh(SMALL, x)
    before = nnx.clone(model)
    loss, _ = nnx.jit(train_step, static_argnames="flip")(
        model, optimizer, x, y, idx, 0.0, key, flip=True
    )
    # The flips of step 0: the step key folds in the step count, then 2 for flipping.
    step_key = jax.random.fold_in(jax.random.fold_in(key, 0), 2)
    mirrored = random_flip(x[idx], step_key)
    _flipped_mask(np.asarray(x[idx]), np.asarray(mirrored))  # each image or its mirror
    expected, _ = loss_fn(before, mirrored, y[idx])
    plain, _ = loss_fn(before, x[idx], y[idx])
    np.testing.assert_allclose(float(loss), float(expected), rtol=1e-5)
    assert abs(float(loss) - float(plain)) > 1e-4


def test_flip_is_off_by_default_and_leaves_the_default_step_alone(batch):
    x, y = batch
    assert Config().flip is False
    idx, key = np.arange(32), jax.random.key(0)
    texts = {}
    for flip in (False, True):
        model, optimizer = _fresh(SMALL.replace(flip=flip), x)
        step = make_step(model, optimizer, SMALL.replace(flip=flip))
        texts[flip] = step.lower(x, y, idx, 0.0, key).as_text()
    # Only the flipping program reverses the images' width axis (the gradient of a
    # convolution reverses its kernels in both) or draws random numbers.
    mirror = re.compile(r"stablehlo\.reverse [^\n]*dims = \[2\] : tensor<32x28x28x1x")
    assert len(mirror.findall(texts[True])) == 1
    assert not mirror.findall(texts[False])
    assert "threefry" in texts[True] and "threefry" not in texts[False]
    # The default step trains on the batch as it is.
    model, optimizer = _fresh(SMALL, x)
    before = nnx.clone(model)
    loss, _ = make_step(model, optimizer, SMALL)(x, y, idx, 0.0, key)
    expected, _ = loss_fn(before, x[idx], y[idx])
    np.testing.assert_allclose(float(loss), float(expected), rtol=1e-6)


def test_training_with_flips_is_seeded(batch):
    x, y = batch

    def losses(config: Config) -> list[float]:
        steps = training_steps(init_model(config, x), config, x, y)
        return [float(loss) for _, _, loss, _ in itertools.islice(steps, 6)]

    flipped = losses(SMALL.replace(flip=True))
    assert flipped == losses(SMALL.replace(flip=True))
    assert flipped != losses(SMALL)
    assert flipped != losses(SMALL.replace(flip=True, seed=1))


def test_flip_must_be_a_bool_and_round_trips():
    with pytest.raises(ValueError, match="flip must be True or False"):
        Config(flip=1)
    assert Config.from_json(Config(flip=True).to_json()).flip is True
