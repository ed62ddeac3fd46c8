"""Receptive field: the arithmetic, and the same size found by one unit's gradient."""

import numpy as np
import pytest
from flax import nnx

import mnist_cnn
from mnist_cnn.teach import receptive_field as rf


def test_one_layer_sees_its_kernel_and_strides_multiply():
    (only,) = rf.receptive_field([("conv", 5, 1)])
    assert (only.size, only.jump) == (5, 1)
    rows = rf.receptive_field([("a", 3, 2), ("b", 3, 2), ("c", 3, 1)])
    # 1 + 2*1 = 3, then + 2*2 = 7 (jump 4), then + 2*4 = 15 (jump stays 4).
    assert [(r.size, r.jump) for r in rows] == [(3, 2), (7, 4), (15, 4)]


def brute_force_size(layers):
    """The field of one output unit, following index ranges back through each layer."""
    lo, hi = 0, 0  # one unit of the last layer
    for _, k, s in reversed(layers):
        lo, hi = lo * s, hi * s + k - 1
    return hi - lo + 1


@pytest.mark.parametrize("seed", range(5))
def test_arithmetic_matches_following_the_windows_back(seed):
    rng = np.random.default_rng(seed)
    layers = [
        (f"l{i}", int(rng.integers(1, 6)), int(rng.integers(1, 4)))
        for i in range(int(rng.integers(1, 6)))
    ]
    rows = rf.receptive_field(layers)
    for i in range(len(layers)):
        assert rows[i].size == brute_force_size(layers[: i + 1])


def test_default_network_layer_by_layer():
    rows = rf.receptive_field(rf.layers_from_config(mnist_cnn.Config()))
    assert [r.name for r in rows] == ["conv1", "pool1", "conv2", "pool2"]
    # conv 3: 1 + 2 = 3; pool 2: + 1*1 = 4; conv 3: + 2*2 = 8; pool 2: + 1*2 = 10.
    assert [r.size for r in rows] == [3, 4, 8, 10]
    assert [r.jump for r in rows] == [1, 2, 2, 4]


def test_bad_layers_are_a_clear_error():
    with pytest.raises(ValueError, match="integers >= 1"):
        rf.receptive_field([("conv", 0, 1)])


@pytest.mark.parametrize(
    "config",
    [mnist_cnn.Config(), mnist_cnn.Config(conv_channels=(4, 4), kernel_size=5)],
    ids=["default", "5x5-filters"],
)
def test_gradient_of_one_unit_is_nonzero_on_exactly_the_receptive_field(config):
    model = mnist_cnn.CNN(config, rngs=nnx.Rngs(1))
    rng = np.random.default_rng(0)
    image = rng.uniform(0.1, 1.0, size=(28, 28))  # positive everywhere
    for row in rf.receptive_field(rf.layers_from_config(config)):
        centre = (28 // row.jump) // 2  # away from the border: the field is not clipped
        grad = rf.unit_input_gradient(model, image, row.name, centre, centre)
        top, left, height, width = rf.nonzero_extent(grad)
        assert (height, width) == (row.size, row.size), row
        # The field is a solid block: every pixel inside it has an effect.
        assert np.all(grad[top : top + height, left : left + width] != 0)


def test_with_relu_the_region_is_never_larger():
    model = mnist_cnn.CNN(mnist_cnn.Config(), rngs=nnx.Rngs(2))
    image = np.random.default_rng(1).uniform(0, 1, size=(28, 28))
    linear = rf.unit_input_gradient(model, image, "pool2", 3, 3, linear=True)
    real = rf.unit_input_gradient(model, image, "pool2", 3, 3, linear=False)
    assert np.all(real[linear == 0] == 0)


def test_unit_outside_the_layer_is_a_clear_error():
    model = mnist_cnn.CNN(mnist_cnn.Config(), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="outside pool2"):
        rf.unit_input_gradient(model, np.zeros((28, 28)), "pool2", 7, 0)
    with pytest.raises(ValueError, match="layer must be one of"):
        rf.unit_input_gradient(model, np.zeros((28, 28)), "dense1", 0, 0)
