"""The command line, run as a user would, in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from PIL import Image


def run(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "mnist_cnn", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=os.environ.copy(),
        timeout=300,
    )


def test_train_evaluate_predict(tmp_path, mnist):
    out = tmp_path / "m.npz"
    result = run(
        "train", "--preset", "tiny", "--epochs", "1", "--quiet", "--out", str(out)
    )
    assert result.returncode == 0, result.stderr
    reported = float(result.stdout.split("test accuracy:")[1].split()[0])
    assert reported > 0.85
    assert "s in all" in result.stdout and out.is_file()
    evaluated = run("evaluate", str(out))
    assert evaluated.returncode == 0, evaluated.stderr
    assert float(
        evaluated.stdout.split("test accuracy:")[1].split()[0]
    ) == pytest.approx(reported)
    _, (x_test, y_test) = mnist
    png = tmp_path / "digit.png"
    Image.fromarray(x_test[0]).resize((112, 112)).save(png)
    predicted = run("predict", str(out), str(png))
    assert predicted.returncode == 0, predicted.stderr
    assert predicted.stdout.startswith(f"{png}: ")
    assert int(predicted.stdout.split(": ")[1].split()[0]) in range(10)


@pytest.mark.parametrize(
    "args, message",
    [
        (("train", "--epochs", "0"), "epochs must be at least 1"),
        (("train", "--activation", "swish"), "activation must be one of"),
        (("evaluate", "does-not-exist.npz"), "no checkpoint at"),
        (("predict", "does-not-exist.npz", "x.png"), "no checkpoint at"),
    ],
)
def test_errors_are_one_readable_line(args, message, tmp_path):
    result = run(*args, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert (
        "Traceback" not in result.stderr
        and len(result.stderr.strip().splitlines()) == 1
    )


def test_bad_image_file(tmp_path, tiny_model):
    from mnist_cnn import save

    ckpt = save(tiny_model, tmp_path / "m.npz")
    (tmp_path / "x.png").write_text("nope")
    result = run("predict", str(ckpt), str(tmp_path / "x.png"))
    assert result.returncode == 1 and "not a readable image" in result.stderr


def test_usage_errors_exit_2():
    result = run("train", "--preset", "nonsense")
    assert result.returncode == 2 and "invalid choice" in result.stderr
    assert run().returncode == 2
