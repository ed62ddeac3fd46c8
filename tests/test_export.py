"""mnist_cnn.export: the web file round-trips to the same network, any architecture."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from flax import nnx

import mnist_cnn
from mnist_cnn.export import export_web, load_web, web_description


def _model(config: mnist_cnn.Config, seed: int = 0) -> mnist_cnn.CNN:
    model = mnist_cnn.CNN(config, rngs=nnx.Rngs(seed))
    model.set_input_stats(0.13, 0.31)
    model.eval()
    return model


def _probs(model: mnist_cnn.CNN, x: np.ndarray) -> np.ndarray:
    """Softmax of the logits, eagerly (compiling per architecture would be slower)."""
    return np.asarray(jax.nn.softmax(model(x), axis=-1))


CONFIGS = [
    mnist_cnn.Config(conv_channels=(4, 6), dense=(8,)),
    mnist_cnn.Config(
        conv_channels=(3, 5, 4), kernel_size=5, activation="gelu", pool="max", dense=()
    ),
]


@pytest.mark.parametrize("config", CONFIGS, ids=["default-like", "3conv-k5-gelu-max"])
def test_round_trip_matches_original(tmp_path, config):
    model = _model(config)
    path = export_web(model, tmp_path / "model.js")
    back = load_web(path)
    assert back.config == config
    x = np.random.default_rng(0).random((4, 28, 28), dtype=np.float32)
    # Float16 weights: the rebuilt network is the original up to float16 rounding.
    np.testing.assert_allclose(_probs(back, x), _probs(model, x), atol=5e-3)
    for name in ("kernel", "bias"):
        got = np.asarray(getattr(back.convs[0], name).get_value())
        want = (
            np.asarray(getattr(model.convs[0], name).get_value())
            .astype(np.float16)
            .astype(np.float32)
        )
        np.testing.assert_array_equal(got, want)
    assert float(back.mean.get_value()) == pytest.approx(0.13)


def test_description_lists_layers_in_forward_order():
    spec = web_description(_model(CONFIGS[1]))
    types = [layer["type"] for layer in spec["layers"]]
    assert types == ["conv", "activation", "pool"] * 3 + ["flatten", "dense", "softmax"]
    assert spec["layers"][0]["kernel"]["shape"] == [5, 5, 1, 3]
    assert spec["layers"][2]["output"] == [14, 14, 3]
    assert spec["layers"][8]["output"] == [
        3,
        3,
        4,
    ]  # 28 -> 14 -> 7 -> 3: odd sizes drop a row
    assert spec["activation_params"] == {"approximate": True}


def test_bad_input_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match=r"ending in \.js"):
        export_web(_model(CONFIGS[0]), tmp_path / "model.json")
    with pytest.raises(ValueError, match=r"mnist_cnn\.CNN"):
        export_web("not a model", tmp_path / "model.js")
    bad = tmp_path / "bad.js"
    bad.write_text("var x = 1;\n")
    with pytest.raises(ValueError, match="not an mnist_cnn web export"):
        load_web(bad)
    with pytest.raises(FileNotFoundError):
        load_web(tmp_path / "missing.js")


def test_cli_export_web(tmp_path):
    from mnist_cnn.__main__ import main

    model = _model(CONFIGS[0])
    checkpoint = mnist_cnn.save(model, tmp_path / "m.npz")
    assert main(["export-web", str(checkpoint), str(tmp_path / "web" / "m.js")]) == 0
    x = np.random.default_rng(1).random((4, 28, 28), dtype=np.float32)
    np.testing.assert_allclose(
        _probs(load_web(tmp_path / "web" / "m.js"), x), _probs(model, x), atol=5e-3
    )
    assert not list(
        (tmp_path / "web").glob("*.tmp")
    )  # written atomically, nothing left over


def test_batch_norm_is_folded_into_the_conv_weights(tmp_path, mnist):
    """The page runs the eval-mode model: the export folds batch norm into each conv."""
    (x_train, y_train), _ = mnist
    config = mnist_cnn.Config(
        conv_channels=(4, 6), dense=(8,), batch_norm=True, epochs=1, batch_size=50
    )
    # A short real run, so the running averages and scales are far from their defaults.
    model, _ = mnist_cnn.fit(
        config, ((x_train[:500], y_train[:500]), (x_train[:50], y_train[:50])), False
    )
    assert not np.allclose(model.norms[0].var[...], 1.0)
    back = load_web(export_web(model, tmp_path / "model.js"))
    assert back.config == config.replace(batch_norm=False)
    x = x_train[1000:1008]
    np.testing.assert_allclose(_probs(back, x), _probs(model, x), atol=5e-3)
    types = [layer["type"] for layer in web_description(model)["layers"]]
    assert types == ["conv", "activation", "pool"] * 2 + [
        "flatten",
        "dense",
        "activation",
        "dense",
        "softmax",
    ]
