"""The CNN: output and feature shapes and parameter counts, computed independently."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from mnist_cnn import CNN, Config, layer_shapes, param_counts, summary
from mnist_cnn.model import count_total, feature_side, init_model, layer_names, pool2x2


def _expected_counts(config: Config) -> dict[str, int]:
    """Parameter counts by formula: k*k*c_in*c_out + c_out, n_in*n_out + n_out."""
    counts, c_in, side = {}, 1, 28
    for i, c_out in enumerate(config.conv_channels, start=1):
        counts[f"conv{i}"] = config.kernel_size**2 * c_in * c_out + c_out
        if config.batch_norm:
            counts[f"norm{i}"] = 2 * c_out  # a scale and a bias per channel
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
        Config(conv_channels=(4, 8), dense=(16,), batch_norm=True),
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
    feats = model.features(x)
    logits = model(x)
    np.testing.assert_array_equal(feats["logits"], logits)
    assert logits.shape == (5, 10)
    assert feats["conv1"].shape == feats["act1"].shape == (5, 28, 28, 6)
    assert feats["pool1"].shape == (5, 14, 14, 6)
    assert feats["pool2"].shape == (5, 7, 7, 12)
    assert feats["pool3"].shape == (5, 3, 3, 24)  # 7 // 2: the odd edge is dropped
    assert feats["flatten"].shape == (5, 3 * 3 * 24)
    assert feats["dense1"].shape == (5, 50)
    assert (
        list(feats)
        == layer_names(config)
        == [
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
    )
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
    feats = model.features(x)
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


@pytest.mark.parametrize("blocks, side", [(1, 14), (2, 7), (3, 3), (4, 1)])
def test_feature_side_is_28_halved_per_block_and_matches_the_model(blocks, side):
    config = Config(conv_channels=(2,) * blocks, dense=())
    assert feature_side(config) == side
    shapes = layer_shapes(CNN(config, rngs=nnx.Rngs(0)))
    assert shapes[f"pool{blocks}"][1:3] == (side, side)


def test_five_pools_are_rejected():
    with pytest.raises(ValueError, match="shrink 28x28 to nothing"):
        Config(conv_channels=(2,) * 5)


def test_layer_names_with_batch_norm_put_the_norm_between_conv_and_activation():
    config = Config(conv_channels=(4, 8), dense=(16, 8), batch_norm=True)
    model = CNN(config, rngs=nnx.Rngs(0))
    names = layer_names(config)
    assert names == [
        "input",
        "conv1",
        "norm1",
        "act1",
        "pool1",
        "conv2",
        "norm2",
        "act2",
        "pool2",
        "flatten",
        "dense1",
        "dense2",
        "logits",
    ]
    model.eval()
    assert list(model.features(jnp.zeros((2, 28, 28)))) == names
    assert list(layer_shapes(model)) == names


def _reference_batch_norm(z, norm, use_batch):
    """Batch norm written out: per-channel statistics over (N, H, W)."""
    z = np.asarray(z, np.float64)
    if use_batch:
        mean, var = z.mean(axis=(0, 1, 2)), z.var(axis=(0, 1, 2))
    else:
        mean, var = np.asarray(norm.mean[...]), np.asarray(norm.var[...])
    scale, bias = np.asarray(norm.scale[...]), np.asarray(norm.bias[...])
    return (z - mean) / np.sqrt(var + norm.epsilon) * scale + bias


def test_batch_norm_uses_batch_statistics_in_train_mode_and_averages_in_eval_mode():
    config = Config(conv_channels=(3,), dense=(), batch_norm=True)
    model = CNN(config, rngs=nnx.Rngs(0))
    x = jnp.asarray(np.random.default_rng(0).random((8, 28, 28)), jnp.float32)
    model.train()
    feats = model.features(x)
    np.testing.assert_allclose(
        feats["norm1"],
        _reference_batch_norm(feats["conv1"], model.norms[0], use_batch=True),
        rtol=1e-4,
        atol=1e-4,
    )
    # A train-mode call moved the running averages towards the batch statistics.
    conv = np.asarray(feats["conv1"], np.float64)
    m = model.norms[0].momentum
    np.testing.assert_allclose(
        model.norms[0].mean[...], (1 - m) * conv.mean(axis=(0, 1, 2)), rtol=1e-4
    )
    model.eval()
    before = np.asarray(model.norms[0].mean[...])
    feats = model.features(x)
    np.testing.assert_allclose(
        feats["norm1"],
        _reference_batch_norm(feats["conv1"], model.norms[0], use_batch=False),
        rtol=1e-4,
        atol=1e-4,
    )
    np.testing.assert_array_equal(model.norms[0].mean[...], before)  # eval: no update
    # In eval mode an image's output does not depend on the rest of its batch.
    np.testing.assert_allclose(model(x[:1]), model(x)[:1], rtol=1e-5, atol=1e-5)


def test_init_model_seeds_from_the_config_and_normalises_by_the_training_images():
    x = np.random.default_rng(0).integers(0, 256, (50, 28, 28), dtype=np.uint8)
    config = Config(conv_channels=(4,), dense=(), seed=3)
    model = init_model(config, x)
    assert float(model.mean[...]) == pytest.approx(x.mean() / 255, rel=1e-5)
    assert float(model.std[...]) == pytest.approx((x / 255).std(), rel=1e-4)
    # Seeded by config.seed alone: the same seed draws the same weights, another seed
    # other weights, and they are the weights of a CNN built with that seed's key.
    again, other = init_model(config, x), init_model(config.replace(seed=4), x)
    kernel = np.asarray(model.convs[0].kernel[...])
    np.testing.assert_array_equal(kernel, again.convs[0].kernel[...])
    assert not np.allclose(kernel, other.convs[0].kernel[...])
    same = CNN(config, rngs=nnx.Rngs(jax.random.key(3, impl="rbg")))
    np.testing.assert_allclose(kernel, same.convs[0].kernel[...], rtol=1e-6, atol=1e-7)
    assert model.config == config  # the seed is kept, though the program ignores it


def test_uint8_and_unit_float_inputs_give_the_same_logits():
    model = CNN(Config(conv_channels=(4,), dense=()), rngs=nnx.Rngs(0))
    x = np.random.default_rng(1).integers(0, 256, (3, 28, 28), dtype=np.uint8)
    np.testing.assert_allclose(model(x), model(x / 255.0), rtol=1e-5, atol=1e-6)


def test_a_wrong_image_shape_is_a_clear_error():
    model = CNN(Config(conv_channels=(4,), dense=()), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"x\[None\]"):
        model(np.zeros((28, 28), np.float32))
