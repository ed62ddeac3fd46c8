"""Training: a short run learns, is deterministic, evaluation counts every image."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from mnist_cnn import PRESETS, Config, TrainingDivergedError, evaluate, fit, load, save
from mnist_cnn.model import init_model
from mnist_cnn.pixels import as_batch
from mnist_cnn.train import (
    check_loss,
    epoch_lengths,
    loss_fn,
    make_optimizer,
    make_step,
    new_optimizer,
    split_data,
    train_step,
    training_steps,
)

SMALL = Config(
    conv_channels=(8, 16), dense=(32,), epochs=2, train_size=5000, batch_size=50
)


def _weights(model) -> list[np.ndarray]:
    return [np.asarray(leaf) for leaf in jax.tree.leaves(nnx.state(model, nnx.Param))]


def test_a_short_run_learns(mnist):
    (x_train, y_train), (x_test, y_test) = mnist
    small_test = ((x_train[:5000], y_train[:5000]), (x_test[:2000], y_test[:2000]))
    model, history = fit(SMALL, small_test, progress=False)
    assert history.epoch == [1, 2]
    assert history.loss[1] < history.loss[0]
    assert history.eval_accuracy[-1] > 0.90
    assert history.eval_accuracy[-1] == pytest.approx(
        evaluate(model, x_test[:2000], y_test[:2000])
    )
    assert 0 < history.seconds[0] <= history.seconds[1]
    # The input statistics come from the training images only.
    assert float(model.mean[...]) == pytest.approx(
        x_train[:5000].mean() / 255, rel=1e-4
    )


def test_same_seed_same_weights_other_seed_other_weights(mnist):
    (x_train, y_train), test = mnist
    subset = ((x_train[:1000], y_train[:1000]), (test[0][:100], test[1][:100]))
    config = SMALL.replace(epochs=1)
    a, _ = fit(config, subset, progress=False)
    b, _ = fit(config, subset, progress=False)
    c, _ = fit(config.replace(seed=1), subset, progress=False)
    for wa, wb in zip(_weights(a), _weights(b)):
        np.testing.assert_array_equal(wa, wb)
    assert any(not np.array_equal(wa, wc) for wa, wc in zip(_weights(a), _weights(c)))


def test_validation_split_keeps_the_test_set_unseen(mnist):
    (x_train, y_train), (x_test, y_test) = mnist
    data = ((x_train[:1200], y_train[:1200]), (x_test, y_test))
    model, history = fit(
        SMALL.replace(epochs=1, validation_size=200, train_size=None),
        data,
        progress=False,
    )
    assert history.evaluated_on == "validation"
    assert history.eval_accuracy[-1] == pytest.approx(
        evaluate(model, x_train[1000:1200], y_train[1000:1200])
    )


def test_epoch_lengths_budget_steps_and_a_fractional_last_epoch():
    config = Config(batch_size=100)
    assert epoch_lengths(config.replace(epochs=2), 1050) == [10, 10]
    assert epoch_lengths(config.replace(epochs=1.5), 1050) == [10, 5]
    assert epoch_lengths(config.replace(epochs=0.25), 1050) == [2]  # round(2.5)
    assert epoch_lengths(config.replace(epochs=0.01), 1050) == [1]  # at least one
    with pytest.raises(ValueError, match="larger than the 50 training images"):
        epoch_lengths(config, 50)


def test_a_fractional_epoch_trains_the_first_steps_of_a_longer_runs_order(mnist):
    (x_train, y_train), _ = mnist
    x_dev, y_dev = as_batch(x_train[:1000]), jnp.asarray(y_train[:1000], jnp.int32)
    config = SMALL.replace(batch_size=100, schedule="constant")
    # 1.5 epochs of 10 steps: 15 steps, the last 5 in a new order; a constant learning
    # rate makes them the first 15 steps of a 2-epoch run, step for step.
    short = list(
        training_steps(
            init_model(config, x_dev), config.replace(epochs=1.5), x_dev, y_dev
        )
    )
    long = list(training_steps(init_model(config, x_dev), config, x_dev, y_dev))
    assert [(e, i) for e, i, _, _ in short] == [(1, i) for i in range(10)] + [
        (2, i) for i in range(5)
    ]
    np.testing.assert_allclose(
        [float(loss) for _, _, loss, _ in short],
        [float(loss) for _, _, loss, _ in long[:15]],
        rtol=1e-6,
    )


def test_fit_records_a_fractional_last_epoch(mnist):
    (x_train, y_train), (x_test, y_test) = mnist
    data = ((x_train[:1000], y_train[:1000]), (x_test[:200], y_test[:200]))
    _, history = fit(SMALL.replace(epochs=1.5, batch_size=100), data, progress=False)
    assert history.epoch == [1, 2] and len(history.eval_accuracy) == 2
    # Every step's loss is kept; the epoch means are their means.
    assert history.steps == [10, 15] and len(history.step_loss) == 15
    assert history.loss[1] == pytest.approx(np.mean(history.step_loss[10:]))


def test_evaluate_counts_the_last_partial_batch(tiny_model, mnist):
    _, (x_test, y_test) = mnist
    x, y = x_test[:1001], y_test[:1001]
    predictions = np.asarray(tiny_model(x[..., None] / 255.0).argmax(-1))
    expected = float(np.mean(predictions == y))
    assert evaluate(tiny_model, x, y, batch_size=1000) == pytest.approx(expected)
    assert evaluate(tiny_model, x, y, batch_size=7) == pytest.approx(expected)


def test_evaluate_rejects_mismatched_inputs(tiny_model, mnist):
    _, (x_test, y_test) = mnist
    with pytest.raises(ValueError, match="as many labels as images"):
        evaluate(tiny_model, x_test[:10], y_test[:9])


def test_batch_larger_than_data_is_a_clear_error(mnist):
    (x_train, y_train), test = mnist
    with pytest.raises(ValueError, match="batch_size"):
        fit(
            SMALL.replace(batch_size=500),
            ((x_train[:100], y_train[:100]), test),
            progress=False,
        )


def test_validation_size_and_train_size_are_both_applied(mnist):
    (x_train, y_train), (x_test, y_test) = mnist
    data = ((x_train[:1000], y_train[:1000]), (x_test[:10], y_test[:10]))
    config = Config(validation_size=300, train_size=200)
    (xt, yt), (xv, yv), on = split_data(config, data)
    assert on == "validation"
    # Validation: the last 300 training images; training: the first 200 of the rest.
    np.testing.assert_array_equal(xv, x_train[700:1000])
    np.testing.assert_array_equal(yv, y_train[700:1000])
    np.testing.assert_array_equal(xt, x_train[:200])
    np.testing.assert_array_equal(yt, y_train[:200])
    (xt, _), (xe, _), on = split_data(Config(train_size=100), data)
    assert on == "test" and len(xt) == 100 and len(xe) == 10
    # And fit trains on those 200 images: 200 // 50 steps of 50 images.
    model, history = fit(
        config.replace(epochs=1, batch_size=50, conv_channels=(4,), dense=()),
        data,
        progress=False,
    )
    assert history.evaluated_on == "validation"
    assert history.eval_accuracy[0] == pytest.approx(evaluate(model, xv, yv))
    assert float(model.mean[...]) == pytest.approx(x_train[:200].mean() / 255, 1e-4)


def test_a_diverging_run_stops_with_a_clear_error(mnist):
    (x_train, y_train), (x_test, y_test) = mnist
    data = ((x_train[:2000], y_train[:2000]), (x_test[:100], y_test[:100]))
    config = PRESETS["tiny"].replace(learning_rate=1e6, train_size=None)
    with pytest.raises(TrainingDivergedError, match="lower the learning rate") as err:
        fit(config, data, progress=False)
    assert isinstance(err.value, ValueError)  # the CLI prints ValueErrors in one line
    assert "diverged at step" in str(err.value)


def _copies(mnist, n: int):
    """n copies of one training image: every batch is the same batch."""
    (x_train, y_train), _ = mnist
    x = np.repeat(x_train[:1], n, axis=0)
    return as_batch(x), jnp.asarray(np.repeat(y_train[:1], n), jnp.int32)


def test_dropout_is_active_in_every_epochs_training_steps_and_off_in_evaluation(mnist):
    """Steps of every epoch run with dropout, even after fit-style evaluation between.

    A learning rate of 1e-30 leaves the weights as they are, so every step sees the same
    network and the same batch: without dropout its loss would be the eval-mode loss.
    """
    x, y = _copies(mnist, 100)
    config = Config(
        conv_channels=(4,),
        dense=(32,),
        dropout=0.5,
        epochs=3,
        batch_size=50,
        learning_rate=1e-30,
        schedule="constant",
    )
    model = init_model(config, x)
    model.eval()
    eval_loss = float(loss_fn(model, x[:50], y[:50])[0])
    losses: dict[int, list[float]] = {}
    for epoch, i, loss, _ in training_steps(model, config, x, y):
        losses.setdefault(epoch, []).append(float(loss))
        if i == 1:
            # What fit does after each epoch: evaluation puts the model in eval mode.
            evaluate(model, x, y)
    assert sorted(losses) == [1, 2, 3]
    for epoch, values in losses.items():
        assert all(abs(v - eval_loss) > 1e-4 for v in values), (epoch, values)
        assert values[0] != values[1]  # a fresh dropout mask every step
    # Evaluation is deterministic and in eval mode: equal to the eval-mode loss's
    # logits.
    first, second = evaluate(model, x, y), evaluate(model, x, y)
    assert first == second
    model.eval()
    np.testing.assert_array_equal(model(x[:50]), model(x[:50]))
    assert float(loss_fn(model, x[:50], y[:50])[0]) == pytest.approx(eval_loss, 1e-6)


def test_train_step_trains_even_when_the_model_was_left_in_eval_mode(mnist):
    """The step sets train mode itself: `model.eval()` cannot stop dropout."""
    x, y = _copies(mnist, 50)
    config = Config(conv_channels=(4,), dense=(32,), dropout=0.5, batch_size=50)
    model = init_model(config, x)
    optimizer = nnx.Optimizer(model, make_optimizer(config, 10), wrt=nnx.Param)
    model.eval()
    eval_loss = float(loss_fn(model, x, y)[0])
    model.eval()
    loss, _ = train_step(model, optimizer, x, y, jnp.arange(50), 0.0)
    assert abs(float(loss) - eval_loss) > 1e-4


def test_batch_norm_statistics_are_learned_and_saved(mnist, tmp_path):
    (x_train, y_train), (x_test, y_test) = mnist
    data = ((x_train[:1000], y_train[:1000]), (x_test[:500], y_test[:500]))
    config = Config(
        conv_channels=(4, 8), dense=(16,), batch_norm=True, epochs=1, batch_size=50
    )
    model, history = fit(config, data, progress=False)
    norm = model.norms[0]
    assert not np.allclose(norm.mean[...], 0.0) and not np.allclose(norm.var[...], 1.0)
    assert history.eval_accuracy[0] == pytest.approx(evaluate(model, *data[1]))
    back = load(save(model, tmp_path / "bn.npz"))
    for a, b in zip(model.norms, back.norms):
        for name in ("mean", "var", "scale", "bias"):
            np.testing.assert_array_equal(getattr(a, name)[...], getattr(b, name)[...])
    np.testing.assert_array_equal(model(x_test[:20]), back(x_test[:20]))


def test_divergence_threshold_is_relative_to_the_first_loss_or_a_uniform_guess():
    config = Config()
    check_loss(5, 200.0, 2.3, config)  # under 100 x 2.3
    with pytest.raises(TrainingDivergedError, match="at step 5: the loss is 300"):
        check_loss(5, 300.0, 2.3, config)
    with pytest.raises(TrainingDivergedError, match="nan"):
        check_loss(5, float("nan"), 2.3, config)
    # A model that starts trained (first loss 0.01) may meet a batch with loss 5.
    check_loss(5, 5.0, 0.01, config)


def test_models_that_differ_only_in_seed_share_one_compiled_step(mnist):
    """The second model's step reuses the first one's program, and trains its own
    variables exactly as a step compiled for it alone would."""
    x, y = _copies(mnist, 50)
    config = Config(conv_channels=(4,), dense=(8,), dropout=0.25, batch_size=50)

    def setup(seed):
        model = init_model(config.replace(seed=seed), x)
        return model, new_optimizer(model, make_optimizer(config, 10))

    a, b, alone = setup(0), setup(1), setup(1)
    step_a = make_step(*a, config.replace(seed=0))
    step_b = make_step(*b, config.replace(seed=1))
    assert step_b.jitted_fn is step_a.jitted_fn  # one program for both
    # A different structure gets a program of its own.
    wider = init_model(config.replace(dense=(16,)), x)
    other = make_step(wider, new_optimizer(wider, make_optimizer(config, 10)), config)
    assert other.jitted_fn is not step_a.jitted_fn

    before_a = _weights(a[0])
    idx = jnp.arange(50)
    for _ in range(3):
        step_b(x, y, idx, 0.1, None)
    after_b = _weights(b[0])
    assert all(np.array_equal(p, q) for p, q in zip(before_a, _weights(a[0])))

    # The same three steps through a program compiled for `alone` only.
    bound = functools.partial(train_step, shift=0, rotate=0.0, flip=False)
    own = nnx.jit_partial(bound, *alone, graph=False)
    for _ in range(3):
        own(x, y, idx, 0.1, None)
    for p, q in zip(after_b, _weights(alone[0]), strict=True):
        np.testing.assert_array_equal(p, q)
