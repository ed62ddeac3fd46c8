"""Tests of mnist_cnn.teach.generalisation and its exercise checks (chapter 12)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from mnist_cnn import Config, evaluate
from mnist_cnn.model import init_model, layer_shapes
from mnist_cnn.teach import generalisation as g
from mnist_cnn.teach.checks import generalisation as checks
from mnist_cnn.train import split_data as config_split


def test_mlp_parameter_count_matches_formula_and_flax():
    model = g.MLP((37, 11), rngs=nnx.Rngs(0))
    expected = 784 * 37 + 37 + 37 * 11 + 11 + 11 * 10 + 10
    assert g.count_params(model) == expected
    assert g.mlp_params((37, 11)) == expected
    assert g.param_bytes(model) == 4 * expected


def test_mlp_width_for_is_the_closest_width():
    target = g.count_params(init_model(Config(), np.zeros((2, 28, 28), np.float32)))
    width = g.mlp_width_for(target)
    gaps = [abs(g.mlp_params((w,)) - target) for w in (width - 1, width, width + 1)]
    assert gaps[1] == min(gaps)
    with pytest.raises(ValueError, match="as few as"):
        g.mlp_width_for(5)


def test_mlp_rejects_bad_widths_and_shapes():
    with pytest.raises(ValueError, match="positive"):
        g.MLP((0,), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="28x28"):
        g.MLP((4,), rngs=nnx.Rngs(0))(jnp.zeros((2, 27, 28)))


@pytest.mark.parametrize("validation_size,train_size", [(5000, 2000), (100, None)])
def test_validation_split_agrees_with_config(mnist, validation_size, train_size):
    config = Config(validation_size=validation_size, train_size=train_size)
    (x_tr, y_tr), (x_val, y_val), on = config_split(config, mnist)
    train, validation, test = g.split_data(mnist, validation_size, train_size)
    assert on == "validation"
    assert np.array_equal(train[0], x_tr) and np.array_equal(train[1], y_tr)
    assert np.array_equal(validation[0], x_val) and np.array_equal(validation[1], y_val)
    assert test[0] is mnist[1][0]


def test_validation_split_errors():
    with pytest.raises(ValueError, match="validation_size"):
        g.validation_split(100, 100)
    with pytest.raises(ValueError, match="train_size"):
        g.validation_split(100, 10, 91)
    train, val = g.validation_split(100, 10, 90)
    assert len(np.intersect1d(train, val)) == 0 and len(train) + len(val) == 100


@pytest.mark.parametrize(
    "accs,patience,expected",
    [
        ([0.90, 0.93, 0.95, 0.94, 0.96], 1, 3),  # stops after epoch 4
        ([0.90, 0.93, 0.95, 0.94, 0.96], 2, 5),
        ([0.90, 0.92, 0.92, 0.91], None, 2),  # a tie is no improvement
        ([0.97], 3, 1),
    ],
)
def test_best_epoch(accs, patience, expected):
    assert g.best_epoch(accs, patience) == expected


def test_best_epoch_errors():
    with pytest.raises(ValueError, match="at least one"):
        g.best_epoch([])
    with pytest.raises(ValueError, match="patience"):
        g.best_epoch([0.5], 0)


@pytest.fixture(scope="module")
def small(mnist):
    """600 training, 500 validation images (from the training file) and the test set."""
    return g.split_data(mnist, 500, 600)


def test_train_validated_restores_the_best_epoch(small):
    train, validation, _ = small
    config = Config(conv_channels=(4, 8), dense=(16,), epochs=4, seed=1)
    model = init_model(config, train[0])
    run = g.train_validated(model, config, train, validation, restore_best=True)
    assert run.epoch == [1, 2, 3, 4] and run.stopped_epoch == 4
    assert run.best_epoch == g.best_epoch(run.val_accuracy)
    # The model ends with the best epoch's weights: scoring it again gives its score.
    assert evaluate(model, *validation) == run.val_accuracy[run.best_epoch - 1]
    assert run.final_val_accuracy == max(run.val_accuracy)
    assert run.val_accuracy[-1] > 0.5  # it learned something


def test_train_validated_stops_with_patience(small, monkeypatch):
    train, validation, _ = small
    # A scripted validation curve: best at epoch 2, then worse: patience 2 stops at 4.
    scores = iter([0.5, 0.7, 0.6, 0.6, 0.9, 0.9])
    monkeypatch.setattr(g, "evaluate", lambda *args: next(scores))
    config = Config(conv_channels=(4,), dense=(8,), epochs=6)
    model = init_model(config, train[0])
    run = g.train_validated(model, config, train, validation, patience=2)
    assert run.val_accuracy == [0.5, 0.7, 0.6, 0.6]
    assert run.stopped_epoch == 4 and run.best_epoch == 4  # no restore: last weights


def test_mlp_trains_with_the_package_loop(small):
    train, validation, _ = small
    config = Config(epochs=3)
    model = g.init_mlp((64,), train[0])
    run = g.train_validated(model, config, train, validation)
    assert run.val_accuracy[-1] > 0.8


def test_size_experiment_rows(mnist):
    builders = {
        "cnn": lambda c, x: init_model(c.replace(conv_channels=(4,), dense=(8,)), x),
        "mlp": lambda c, x: g.init_mlp((16,), x, c.seed),
    }
    rows = g.size_experiment(
        builders, [128, 256], mnist, 300, budget=256, max_size={"mlp": 128}
    )
    assert [(r["model"], r["n"]) for r in rows] == [
        ("cnn", 128),
        ("mlp", 128),
        ("cnn", 256),
    ]
    assert [r["epochs"] for r in rows] == [2, 2, 1]
    assert rows[1]["params"] == g.mlp_params((16,))
    for r in rows:
        assert (
            0 <= r["train"] <= 1 and 0 <= r["validation"] <= 1 and 0 <= r["test"] <= 1
        )


def test_epochs_for():
    assert g.epochs_for(500, 10_000, 64) == round(10_000 / 448)
    assert g.epochs_for(60_000, 10_000, 64) == 1
    with pytest.raises(ValueError, match="fewer than one batch"):
        g.epochs_for(10, 100, 64)


def test_activation_bytes_match_layer_shapes():
    model = init_model(Config(), np.zeros((2, 28, 28), np.float32))
    feats = model.features(jnp.zeros((3, 28, 28, 1)))
    got = g.activation_bytes(feats)
    for name, shape in layer_shapes(model).items():
        assert got[name] == 4 * int(np.prod(shape[1:]))
    assert got["conv1"] == 28 * 28 * 16 * 4


def test_compiled_memory_counts_arguments_and_outputs():
    stats = g.compiled_memory(lambda x: x * 2.0, jnp.zeros((100,), jnp.float32))
    if stats is None:
        pytest.skip("this JAX backend offers no memory analysis")
    assert stats["argument_bytes"] == 400 and stats["output_bytes"] == 400


def test_training_step_memory_holds_the_parameters():
    model = g.init_mlp((32,), np.zeros((2, 28, 28), np.float32))
    stats = g.training_step_memory(model, 8)
    if stats is None:
        pytest.skip("this JAX backend offers no memory analysis")
    # Arguments: parameters, images and labels; output: one gradient per weight.
    assert stats["argument_bytes"] >= g.param_bytes(model) + 8 * 28 * 28 * 4
    assert stats["output_bytes"] >= g.param_bytes(model)


def test_drawn_digits():
    images, labels, info = g.drawn_digits(tilts=(0.0, 15.0))
    assert images.shape == (60, 28, 28) and images.dtype == np.float32
    assert images.min() >= 0 and images.max() <= 1
    assert np.array_equal(labels, np.tile(np.arange(10), 6))
    assert {d["pen"] for d in info} == {p[0] for p in g.PENS}
    # Light ink on dark after preprocessing; different pens give different images.
    assert all(im[:2].sum() == 0 for im in images)
    assert not np.allclose(images[0], images[20])
    with pytest.raises(ValueError, match="digit"):
        g.draw_digit(10, 5)
    with pytest.raises(ValueError, match="nib"):
        g.draw_digit(1, 5, nib="brush")


def test_every_regulariser_turns_on_exactly_what_it_names():
    base = Config(**g.REGULARISER_OFF)
    assert g.regularisers_on(base) == {}
    assert g.REGULARISERS["none"] == {}
    assert "label smoothing 0.1" in g.REGULARISERS
    for name, changes in g.REGULARISERS.items():
        assert g.regularisers_on(base.replace(**changes)) == changes, name
    on = Config(dropout=0.3, shift=1, label_smoothing=0.0)
    assert g.regularisers_on(on) == {"dropout": 0.3, "shift": 1}


def test_regulariser_experiment_needs_an_unregularised_base(mnist):
    smoothed = Config(validation_size=300, train_size=256, label_smoothing=0.1)
    with pytest.raises(ValueError, match=r"label_smoothing=0\.0"):
        g.regulariser_experiment(mnist, smoothed, seeds=(0,))
    with pytest.raises(ValueError, match="validation"):
        g.regulariser_experiment(mnist, Config(label_smoothing=0.0), seeds=(0,))


def test_regulariser_experiment_applies_each_setting(mnist):
    base = Config(
        conv_channels=(4,),
        dense=(8,),
        epochs=1,
        validation_size=300,
        train_size=256,
        label_smoothing=0.0,
    )
    settings = {"none": {}, "none again": {}, "smoothing": {"label_smoothing": 0.1}}
    rows, models = g.regulariser_experiment(
        mnist, base, seeds=(0, 1), regularisers=settings
    )
    assert [(r["regulariser"], r["seed"]) for r in rows] == [
        (name, seed) for name in settings for seed in (0, 1)
    ]
    assert set(models) == {(name, seed) for name in settings for seed in (0, 1)}

    def same_weights(a, b):
        leaves = [
            jax.tree.leaves(nnx.state(models[key][0], nnx.Param)) for key in (a, b)
        ]
        return all(np.array_equal(p, q) for p, q in zip(*leaves, strict=True))

    # Training is deterministic, so the differences below come from the setting and
    # the seed.
    assert same_weights(("none", 0), ("none again", 0))
    assert not same_weights(("none", 0), ("smoothing", 0))
    assert not same_weights(("none", 0), ("none", 1))
    for r in rows:
        model, run = models[r["regulariser"], r["seed"]]
        assert r["validation"] == run.final_val_accuracy
        assert r["test"] == evaluate(model, *mnist[1])
        assert 0 <= r["train"] <= 1


def test_summarise():
    rows = [{"k": "a", "v": 1.0}, {"k": "a", "v": 3.0}, {"k": "b", "v": 2.0}]
    assert g.summarise(rows, "k", ["v"]) == {
        "a": {"v": {"mean": 2.0, "min": 1.0, "max": 3.0}},
        "b": {"v": {"mean": 2.0, "min": 2.0, "max": 2.0}},
    }


# Exercise checks


def good_split(data, validation_size):
    (x, y), _ = data
    v = len(x) - validation_size
    return (x[:v], y[:v]), (x[v:], y[v:])


def leaky_split(data, validation_size):  # validation taken from the test set
    (x, y), (x_test, y_test) = data
    return (x, y), (x_test[:validation_size], y_test[:validation_size])


def overlapping_split(data, validation_size):  # validation images also trained on
    (x, y), _ = data
    v = len(x) - validation_size
    return (x[: v + 1], y[: v + 1]), (x[v:], y[v:])


def short_split(data, validation_size):  # one image too few held out
    (x, y), _ = data
    v = len(x) - validation_size + 1
    return (x[:v], y[:v]), (x[v:], y[v:])


def shuffled_labels_split(data, validation_size):
    (x, y), _ = data
    v = len(x) - validation_size
    return (x[:v], y[:v]), (x[v:], y[v:][::-1])


def random_split(data, validation_size):  # a correct shuffled split also passes
    (x, y), _ = data
    order = np.random.default_rng(0).permutation(len(x))
    val, train = order[:validation_size], order[validation_size:]
    return (x[train], y[train]), (x[val], y[val])


def crashing_split(data, validation_size):
    raise RuntimeError("oops")


@pytest.mark.parametrize(
    "fn,passes,hint",
    [
        (good_split, True, "PASS"),
        (random_split, True, "PASS"),
        (leaky_split, False, "from the test set"),
        (overlapping_split, False, "in both parts"),
        (short_split, False, "validation part has"),
        (shuffled_labels_split, False, "labels no longer match"),
        (crashing_split, False, "RuntimeError: oops"),
    ],
)
def test_check_split(fn, passes, hint, capsys):
    assert checks.check_split(fn) is passes
    assert hint in capsys.readouterr().out


def test_check_best_epoch(capsys):
    assert checks.check_best_epoch(lambda accs, p: g.best_epoch(accs, p))
    assert not checks.check_best_epoch(lambda accs, p: int(np.argmax(accs)) + 1)
    assert "never sees the rest" in capsys.readouterr().out
    assert not checks.check_best_epoch(lambda accs, p: g.best_epoch(accs, p) - 1)
    assert "counted from 1" in capsys.readouterr().out


def test_check_split_is_exported():
    from mnist_cnn.teach import checks as all_checks

    assert all_checks.check_split is checks.check_split
