"""The CNN: output and feature-map shapes and parameter counts, computed independently."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from mnist_cnn import CNN, Config, layer_shapes, param_counts, summary
from mnist_cnn.model import count_total, pool2x2


def _expected_counts(config: Config) -> dict[str, int]:
    """Parameter counts from the textbook formulas: k*k*c_in*c_out + c_out, n_in*n_out + n_out."""
    counts, c_in, side = {}, 1, 28
    for i, c_out in enumerate(config.conv_channels, start=1):
        counts[f"conv{i}"] = config.kernel_size**2 * c_in * c_out + c_out
        c_in, side = c_out, side // 2
    n_in = side * side * c_in
    for i, n_out in enumerate(config.dense, start=1):
        counts[f"dense{i}"] = n_in * n_out + n_out
        n_in = n_out
    counts["head"] = n_in * 10 + 10
    return counts


@pytest.mark.parametrize(
    "config",
    [
        Config(),
        Config(conv_channels=(8, 16, 32), kernel_size=5, dense=(64, 32)),
        Config(conv_channels=(4,), dense=()),
    ],
)
def test_parameter_counts_match_the_formulas(config):
    model = CNN(config, rngs=nnx.Rngs(0))
    assert param_counts(model) == _expected_counts(config)
    assert count_total(model) == sum(_expected_counts(config).values())


def test_output_and_feature_shapes():
    config = Config(conv_channels=(6, 12, 24), dense=(50,))
    model = CNN(config, rngs=nnx.Rngs(0))
    x = jnp.zeros((5, 28, 28, 1))
    logits, feats = model(x, return_features=True)
    assert logits.shape == (5, 10)
    assert feats["conv1"].shape == feats["act1"].shape == (5, 28, 28, 6)
    assert feats["pool1"].shape == (5, 14, 14, 6)
    assert feats["pool2"].shape == (5, 7, 7, 12)
    assert feats["pool3"].shape == (5, 3, 3, 24)  # 7 // 2: the odd edge is dropped
    assert feats["flatten"].shape == (5, 3 * 3 * 24)
    assert feats["dense1"].shape == (5, 50)
    assert list(feats) == [
        "input",
        "conv1",
        "act1",
        "pool1",
        "conv2",
        "act2",
        "pool2",
        "conv3",
        "act3",
        "pool3",
        "flatten",
        "dense1",
        "logits",
    ]
    shapes = layer_shapes(model, batch=5)
    assert shapes == {name: a.shape for name, a in feats.items()}
    # (N, 28, 28) input without the channel axis gives the same logits.
    np.testing.assert_allclose(model(x[..., 0]), logits, rtol=1e-6)


def test_summary_lists_every_layer_and_the_total():
    model = CNN(Config(), rngs=nnx.Rngs(0))
    text = summary(model)
    for name in layer_shapes(model):
        assert name in text
    assert f"{count_total(model):,}" in text.splitlines()[-1]


def test_input_statistics_normalise_the_input():
    model = CNN(Config(), rngs=nnx.Rngs(0))
    model.set_input_stats(0.25, 0.5)
    x = jnp.full((1, 28, 28, 1), 0.75)
    _, feats = model(x, return_features=True)
    np.testing.assert_allclose(feats["input"], 1.0)


@pytest.mark.parametrize("kind, reduce", [("max", np.max), ("avg", np.mean)])
def test_pool2x2_matches_a_direct_window_loop(kind, reduce):
    x = np.random.default_rng(0).normal(size=(2, 7, 6, 3)).astype(np.float32)
    got = np.asarray(pool2x2(jnp.asarray(x), kind))
    want = np.empty((2, 3, 3, 3), np.float32)
    for i in range(3):
        for j in range(3):
            want[:, i, j] = reduce(
                x[:, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2], axis=(1, 2)
            )
    np.testing.assert_allclose(got, want, rtol=1e-6)


@pytest.mark.parametrize(
    "bad, message",
    [
        (dict(activation="swish"), "activation"),
        (dict(pool="median"), "pool"),
        (dict(conv_channels=()), "conv_channels"),
        (dict(kernel_size=4), "odd"),
        (dict(conv_channels=(2, 2, 2, 2, 2)), "shrink"),
        (dict(epochs=0), "epochs"),
        (dict(learning_rate=-1.0), "learning_rate"),
        (dict(dropout=1.0), "dropout"),
    ],
)
def test_bad_configs_are_rejected_clearly(bad, message):
    with pytest.raises(ValueError, match=message):
        Config(**bad)


def test_config_json_round_trip_and_unknown_fields():
    config = Config(conv_channels=(3, 5), dense=(7,), seed=9)
    assert Config.from_json(config.to_json()) == config
    with pytest.raises(ValueError, match="unknown Config fields"):
        Config.from_json('{"colour": "red"}')


def test_layer_shapes_follow_the_forward_order():
    model = CNN(Config(conv_channels=(4, 8), dense=(16,)), rngs=nnx.Rngs(0))
    assert list(layer_shapes(model)) == [
        "input",
        "conv1",
        "act1",
        "pool1",
        "conv2",
        "act2",
        "pool2",
        "flatten",
        "dense1",
        "logits",
    ]
    rows = [line.split()[0] for line in summary(model).splitlines()[1:-1]]
    assert rows == list(layer_shapes(model))
