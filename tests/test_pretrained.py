"""pretrained() never serves a stale model: code, data, config, libraries key it."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mnist_cnn import Config, predict

P = importlib.import_module("mnist_cnn.pretrained")  # the module, not the function
REPO = Path(__file__).resolve().parents[1]
TINY = Config(conv_channels=(4,), dense=(), epochs=1, batch_size=50)


def _small(mnist, n: int = 500):
    (x_train, y_train), (x_test, y_test) = mnist
    return (x_train[:n].copy(), y_train[:n].copy()), (x_test[:100], y_test[:100])


@pytest.fixture
def fit_calls(monkeypatch, tmp_path):
    """Count the calls pretrained makes to fit, with a cache of the test's own."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    calls = []
    real = P.fit

    def counting(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(P, "fit", counting)
    return calls


def test_trains_once_then_loads_the_same_model(mnist, fit_calls):
    data = _small(mnist)
    first = P.pretrained(TINY, data)
    second = P.pretrained(TINY, data)
    assert len(fit_calls) == 1
    x = data[1][0][:50]
    np.testing.assert_array_equal(predict(first, x), predict(second, x))


def test_other_data_trains_again(mnist, fit_calls):
    data = _small(mnist)
    P.pretrained(TINY, data)
    (x, y), test = data
    x[0, 14, 14] ^= 0xFF  # one pixel of one training image
    P.pretrained(TINY, ((x, y), test))
    assert len(fit_calls) == 2
    y2 = y.copy()
    y2[0] = (y2[0] + 1) % 10  # one label
    P.pretrained(TINY, ((x, y2), test))
    assert len(fit_calls) == 3


def test_other_config_trains_again(mnist, fit_calls):
    data = _small(mnist)
    P.pretrained(TINY, data)
    P.pretrained(TINY.replace(seed=1), data)
    assert [c.seed for c in fit_calls] == [0, 1]


def test_the_key_covers_library_versions_and_the_training_sources(mnist, monkeypatch):
    data = _small(mnist, 100)
    key = P.cache_key(TINY, data)
    assert P.cache_key(TINY, data) == key
    real = P._version
    monkeypatch.setattr(
        P, "_version", lambda name: "9" if name == "optax" else real(name)
    )
    assert P.cache_key(TINY, data) != key
    monkeypatch.setattr(P, "_version", real)
    names = {Path(m.__file__).name for m in P.TRAINING_MODULES}
    assert {"config.py", "model.py", "pixels.py", "train.py"} <= names


_CHILD = """
import importlib, json, sys
import mnist_cnn
from mnist_cnn import Config, load_data
P = importlib.import_module("mnist_cnn.pretrained")
calls = []
real = P.fit
P.fit = lambda *a, **k: (calls.append(1), real(*a, **k))[1]
(x, y), (xt, yt) = load_data()
config = Config.from_json(sys.argv[1])
P.pretrained(config, ((x[:500], y[:500]), (xt[:100], yt[:100])))
print(json.dumps({"file": mnist_cnn.__file__, "fits": len(calls)}))
"""


def test_an_edit_to_the_training_code_trains_again(tmp_path):
    """Run pretrained in a copy of the package, edit the copy's loss, run again."""
    copy = tmp_path / "src"
    shutil.copytree(
        REPO / "mnist_cnn",
        copy / "mnist_cnn",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(copy),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "MNIST_CNN_JAX_CACHE": "0",
    }

    def run() -> int:
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, TINY.to_json()],
            env=env,
            cwd=copy,
            capture_output=True,
            text=True,
            timeout=600,
            check=True,
        )
        result = json.loads(out.stdout.splitlines()[-1])
        assert Path(result["file"]).is_relative_to(copy)  # the copy, not the repository
        return result["fits"]

    assert run() == 1
    assert run() == 0  # unchanged code: served from the cache
    train = copy / "mnist_cnn" / "train.py"
    source = train.read_text()
    old = "return optax.softmax_cross_entropy(logits, targets).mean(), logits"
    assert old in source
    # A real change: the loss (and so every gradient) is doubled.
    train.write_text(source.replace(old, old.replace(".mean()", ".mean() * 2")))
    assert run() == 1
