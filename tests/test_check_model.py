"""check_model passes a correct CNN and fails broken ones with a hint naming the bug."""

import jax.numpy as jnp
import pytest
from conftest import said
from flax import nnx

from mnist_cnn import load_data
from mnist_cnn.teach.checks.model import (
    SHORT_RUN_EPOCHS,
    SHORT_RUN_IMAGES,
    check_model,
)

# The check's own short run (SHORT_RUN_EPOCHS epochs of SHORT_RUN_IMAGES images) with a
# small CNN: quick.


@pytest.fixture(scope="module")
def data():
    return load_data()


def pool(x):
    n, h, w, c = x.shape
    return x.reshape(n, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))


class CNN(nnx.Module):
    """The chapter's CNN, smaller: conv -> ReLU -> pool twice, dense, 10 logits."""

    def __init__(self, rngs: nnx.Rngs):
        self.conv1 = nnx.Conv(1, 8, (3, 3), padding="SAME", rngs=rngs)
        self.conv2 = nnx.Conv(8, 16, (3, 3), padding="SAME", rngs=rngs)
        self.dense = nnx.Linear(7 * 7 * 16, 32, rngs=rngs)
        self.head = nnx.Linear(32, 10, rngs=rngs)

    def __call__(self, x):
        x = pool(nnx.relu(self.conv1(x)))  # (N, 14, 14, 8)
        x = pool(nnx.relu(self.conv2(x)))  # (N, 7, 7, 16)
        x = nnx.relu(self.dense(x.reshape(x.shape[0], -1)))  # (N, 32)
        return self.head(x)  # (N, 10)


def test_correct_model_passes(data, capsys):
    assert check_model(CNN, data=data)
    out = said(capsys)
    assert "FAIL" not in out
    # 80 + 1,168 + 25,120 + 330 parameters, computed by hand from the formula.
    assert "26,698 parameters" in out
    # The settings the chapter quotes (glued from these constants) are the ones used.
    steps = SHORT_RUN_EPOCHS * (SHORT_RUN_IMAGES // 64)
    assert (
        f"{SHORT_RUN_EPOCHS} epochs of {SHORT_RUN_IMAGES:,} training images, "
        f"{steps} Adam steps"
    ) in out


def test_wrong_output_shape(data, capsys):
    class FiveLogits(CNN):
        def __init__(self, rngs):
            super().__init__(rngs)
            self.head = nnx.Linear(32, 5, rngs=rngs)

    class NotFlattened(CNN):
        def __call__(self, x):
            return self.head(pool(nnx.relu(self.conv1(x))))  # (N, 14, 14, 8) -> head

    assert not check_model(FiveLogits, data=data)
    out = said(capsys)
    assert "got (5, 5), expected (5, 10)" in out
    assert "10 outputs, one logit per digit" in out
    assert not check_model(NotFlattened, data=data)
    out = said(capsys)
    assert "FAIL: output shape" in out and "side*side*channels" in out


def test_unused_layer_gets_no_gradient(data, capsys):
    class Unused(CNN):
        def __init__(self, rngs):
            super().__init__(rngs)
            self.extra = nnx.Linear(32, 32, rngs=rngs)  # created, never called

    assert not check_model(Unused, data=data)
    out = said(capsys)
    assert "extra (1,056 parameters) do not affect the output" in out
    assert "no gradient reaches extra.bias, extra.kernel" in out
    assert "never called in __call__" in out


def test_missing_bias_is_named(data, capsys):
    class NoBias(CNN):
        def __init__(self, rngs):
            super().__init__(rngs)
            self.conv1 = nnx.Conv(
                1, 8, (3, 3), padding="SAME", use_bias=False, rngs=rngs
            )

    assert not check_model(NoBias, data=data)
    out = said(capsys)
    assert "conv1 has 72 parameters, the formula 3x3*1*8 + 8 gives 80" in out
    assert "use_bias=False" in out


def test_zeroed_output_cannot_learn(data, capsys):
    class Zeroed(CNN):
        def __call__(self, x):
            return super().__call__(x) * 0.0

    assert not check_model(Zeroed, data=data)
    out = said(capsys)
    assert "no parameter receives a gradient" in out
    assert "FAIL: short training run" in out and "skipped" in out


def test_model_blind_to_its_input_stays_at_chance(data, capsys):
    class Blind(CNN):
        def __call__(self, x):
            return super().__call__(jnp.zeros_like(x))

    assert not check_model(Blind, data=data)
    out = said(capsys)
    assert "this is chance level" in out
    assert "uses its input x" in out


def test_constructor_without_rngs(data, capsys):
    class NoRngs(CNN):
        def __init__(self):
            super().__init__(nnx.Rngs(0))

    assert not check_model(NoRngs, data=data)
    assert "give __init__ a `rngs` argument" in said(capsys)
