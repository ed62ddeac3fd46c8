"""Data parallelism: the sharded step on 2 forced CPU devices equals the plain step.

JAX fixes the number of host devices when it starts, so the 2-device checks run in a
fresh Python process with XLA_FLAGS=--xla_force_host_platform_device_count=2: this file
run as a script (`_measure`) trains and inspects, prints JSON, and the tests assert on
it. The 1-device checks run in the test process itself.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from flax import nnx
from jax.sharding import PartitionSpec as P

from mnist_cnn import Config, parallel
from mnist_cnn.model import init_model
from mnist_cnn.pixels import as_batch
from mnist_cnn.train import make_optimizer, make_step, training_steps

DEVICES = 2
STEPS = 30
SMALL = Config(conv_channels=(8, 16), dense=(32,), batch_size=64, epochs=2)


def _params(model) -> list[np.ndarray]:
    return [np.asarray(p) for p in jax.tree.leaves(nnx.state(model, nnx.Param))]


def _train(config: Config, x, y) -> tuple[object, list[float], list[int]]:
    """A fresh model after STEPS steps: (model, losses, devices holding each loss)."""
    model = init_model(config, x)
    losses, devices = [], []
    for _, _, loss, _ in itertools.islice(training_steps(model, config, x, y), STEPS):
        losses.append(float(loss))
        devices.append(len(loss.sharding.device_set))
    return model, losses, devices


def _measure() -> dict:
    """Everything the 2-device tests assert on (run in the subprocess)."""
    from mnist_cnn import evaluate, fit, load_data

    (x_train, y_train), (x_test, y_test) = load_data()
    x = as_batch(x_train[:2000])  # (2000, 28, 28, 1)
    y = jax.numpy.asarray(y_train[:2000], jax.numpy.int32)
    out: dict = {"device_count": jax.device_count()}

    single, out["single_losses"], _ = _train(SMALL, x, y)
    shared, out["parallel_losses"], out["loss_devices"] = _train(
        SMALL.replace(data_parallel=True), x, y
    )
    out["max_param_difference"] = max(
        float(np.max(np.abs(a - b)))
        for a, b in zip(_params(single), _params(shared), strict=True)
    )
    out["variable_shardings"] = [
        {
            "spec": str(getattr(p.sharding, "spec", None)),
            "devices": len(p.sharding.device_set),
            "replicated": p.sharding.is_fully_replicated,
        }
        for p in jax.tree.leaves(nnx.state(shared))  # parameters and input stats
    ]
    out["param_count"] = len(_params(single))

    # The compiled data-parallel program itself: what each device computes, and the
    # collectives XLA added.
    model = init_model(SMALL, x)
    optimizer = nnx.Optimizer(model, make_optimizer(SMALL, STEPS), wrt=nnx.Param)
    mesh = parallel.batch_mesh()
    parallel.replicate_state(model, optimizer, mesh=mesh)
    xr, yr = parallel.replicate((x, y), mesh)
    step = make_step(model, optimizer, SMALL, mesh)
    idx = np.arange(SMALL.batch_size)
    key = jax.random.key(0)
    text = step.lower(xr, yr, idx, 0.0, key).compile().as_text()
    out["mesh_shape"] = dict(mesh.shape)
    out["parallel_hlo_image_batches"] = sorted(
        set(re.findall(r"f32\[(\d+),28,28,1\]", text))
    )
    out["parallel_all_reduces"] = [
        line for line in text.splitlines() if "all-reduce(" in line
    ]
    model = init_model(SMALL, x)
    optimizer = nnx.Optimizer(model, make_optimizer(SMALL, STEPS), wrt=nnx.Param)
    lowered = make_step(model, optimizer, SMALL).lower(x, y, idx, 0.0, key)
    out["single_all_reduces"] = lowered.compile().as_text().count("all-reduce(")

    try:
        next(
            training_steps(
                init_model(SMALL, x),
                SMALL.replace(batch_size=63, data_parallel=True),
                x,
                y,
            )
        )
    except ValueError as error:
        out["odd_batch_error"] = str(error)

    # fit evaluates the replicated model after each epoch; a host copy of the final
    # model must score the same.
    data = ((x_train[:2000], y_train[:2000]), (x_test[:1000], y_test[:1000]))
    model, history = fit(SMALL.replace(data_parallel=True), data, progress=False)
    out["fit_eval_accuracy"] = history.eval_accuracy
    nnx.update(model, jax.device_get(nnx.state(model)))
    out["host_copy_accuracy"] = evaluate(model, x_test[:1000], y_test[:1000])
    return out


@pytest.fixture(scope="module")
def two_devices() -> dict:
    """The subprocess's measurements on 2 forced CPU devices."""
    env = dict(
        os.environ,
        XLA_FLAGS=f"--xla_force_host_platform_device_count={DEVICES}",
        JAX_PLATFORMS="cpu",
    )
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve())],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_subprocess_really_has_two_devices(two_devices):
    assert two_devices["device_count"] == DEVICES
    assert two_devices["mesh_shape"] == {"batch": DEVICES}


def test_sharded_step_matches_the_single_device_step(two_devices):
    single = np.array(two_devices["single_losses"])
    shared = np.array(two_devices["parallel_losses"])
    assert len(single) == len(shared) == STEPS
    # The model learns over the run (so equal losses are not equal constants) ...
    assert single[-5:].mean() < single[:5].mean() - 0.5
    # ... and the two runs agree step by step: only the order of the float sums differs.
    np.testing.assert_allclose(shared, single, rtol=1e-5, atol=1e-5)
    assert two_devices["max_param_difference"] < 1e-4


def test_the_step_ran_on_both_devices(two_devices):
    # The loss of every data-parallel step lives on both devices of the mesh.
    assert two_devices["loss_devices"] == [DEVICES] * STEPS


def test_parameters_are_replicated(two_devices):
    shardings = two_devices["variable_shardings"]
    # 2 conv layers, a dense layer and the logits (kernel and bias each), input stats.
    assert two_devices["param_count"] == 8
    assert len(shardings) > 8
    whole_copy = {"spec": str(P()), "devices": DEVICES, "replicated": True}
    assert all(sharding == whole_copy for sharding in shardings)


def test_each_device_computes_half_the_batch(two_devices):
    # In the partitioned program each device sees 32 images of the batch of 64 (and the
    # whole, replicated training set of 2,000); never the whole batch.
    assert two_devices["parallel_hlo_image_batches"] == ["2000", "32"]


def test_xla_inserts_the_gradient_all_reduce(two_devices):
    # One all-reduce sums the gradients: its operands include every parameter's shape.
    reduces = two_devices["parallel_all_reduces"]
    grads = [r for r in reduces if "f32[3,3,1,8]" in r and "f32[10,32]" in r]
    assert len(grads) == 1
    assert two_devices["single_all_reduces"] == 0


def test_a_batch_that_does_not_split_is_a_clear_error(two_devices):
    message = two_devices["odd_batch_error"]
    assert "batch_size=63" in message
    assert "2 devices" in message
    assert "multiple of 2" in message and "62 or 64" in message


def test_fit_evaluates_the_replicated_model(two_devices):
    accuracy = two_devices["fit_eval_accuracy"]
    assert len(accuracy) == 2
    assert accuracy[-1] > 0.7  # 62 steps of a small model
    assert accuracy[-1] == two_devices["host_copy_accuracy"]


@pytest.mark.skipif(jax.local_device_count() != 1, reason="needs exactly one device")
def test_on_one_device_the_data_parallel_path_gives_the_same_run(mnist):
    (x_train, y_train), _ = mnist
    x = as_batch(x_train[:1000])
    y = jax.numpy.asarray(y_train[:1000], jax.numpy.int32)
    config = SMALL.replace(batch_size=50)
    plain, plain_losses, _ = _train(config, x, y)
    shared, shared_losses, devices = _train(config.replace(data_parallel=True), x, y)
    np.testing.assert_allclose(shared_losses, plain_losses, rtol=1e-6)
    assert devices == [1] * STEPS
    sharding = jax.tree.leaves(nnx.state(shared, nnx.Param))[0].sharding
    assert sharding.mesh.shape == {"batch": 1}
    for a, b in zip(_params(plain), _params(shared), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_batch_mesh_spans_the_local_devices():
    mesh = parallel.batch_mesh()
    assert mesh.axis_names == ("batch",)
    assert list(mesh.devices.flat) == jax.local_devices()
    with pytest.raises(ValueError, match="at least one device"):
        parallel.batch_mesh([])


@pytest.mark.parametrize(
    ("batch", "devices", "advice"),
    [(63, 2, "62 or 64"), (100, 8, "96 or 104"), (3, 4, "e.g. 4)")],
)
def test_check_batch_size_names_both_numbers_and_a_fix(batch, devices, advice):
    parallel.check_batch_size(batch * devices, devices)  # a multiple: no error
    with pytest.raises(ValueError) as error:
        parallel.check_batch_size(batch, devices)
    message = str(error.value)
    assert f"batch_size={batch}" in message and f"{devices} devices" in message
    assert f"multiple of {devices}" in message and advice in message


def test_data_parallel_must_be_a_bool():
    with pytest.raises(ValueError, match="data_parallel must be True or False"):
        Config(data_parallel="yes")
    assert Config.from_json(Config(data_parallel=True).to_json()).data_parallel


if __name__ == "__main__":
    print(json.dumps(_measure()))
