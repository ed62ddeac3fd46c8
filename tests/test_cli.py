"""The command line, run as a user would, in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
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


def _digit_png(path, digit: np.ndarray):
    """A real MNIST test digit, enlarged 4x, as a white-on-black PNG."""
    Image.fromarray(digit).resize((112, 112), Image.BILINEAR).save(path)
    return path


def test_train_evaluate_predict(tmp_path, mnist):
    out = tmp_path / "m.npz"
    result = run(
        "train", "--preset", "tiny", "--epochs", "1", "--quiet", "--out", str(out)
    )
    assert result.returncode == 0, result.stderr
    reported = float(result.stdout.split("test accuracy:")[1].split()[0])
    assert reported > 0.85
    assert "s in all" in result.stdout and out.is_file()
    # The wall time from process start covers at least the training it reports.
    trained = float(result.stdout.split("trained in ")[1].split()[0])
    wall = float(result.stdout.split("wall time ")[1].split()[0])
    assert wall > trained
    evaluated = run("evaluate", str(out))
    assert evaluated.returncode == 0, evaluated.stderr
    assert float(
        evaluated.stdout.split("test accuracy:")[1].split()[0]
    ) == pytest.approx(reported)
    _, (x_test, y_test) = mnist
    png = _digit_png(tmp_path / "digit.png", x_test[0])
    predicted = run("predict", str(out), str(png))
    assert predicted.returncode == 0, predicted.stderr
    assert predicted.stdout.startswith(f"{png}: {y_test[0]} (probability ")
    assert "runner-up" in predicted.stdout


def test_a_fashion_model_reports_class_names(tmp_path):
    from mnist_cnn import class_names, load_data

    if not os.environ.get("MNIST_CNN_FASHION_DATA"):
        pytest.skip("Fashion-MNIST is not installed (.ci/run installs it)")
    out = tmp_path / "fashion.npz"
    result = run(
        "train",
        "--preset",
        "tiny",
        "--dataset",
        "fashion",
        "--flip",
        "--quiet",
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    assert float(result.stdout.split("test accuracy:")[1].split()[0]) > 0.6
    _, (x_test, y_test) = load_data(dataset="fashion")
    png = _digit_png(tmp_path / "item.png", x_test[0])
    predicted = run("predict", str(out), str(png))
    assert predicted.returncode == 0, predicted.stderr
    names = class_names("fashion")
    first = predicted.stdout.split(": ", 1)[1].split(" (probability")[0]
    assert first in names and names[y_test[0]] == "Ankle boot"
    evaluated = run("evaluate", str(out))  # the checkpoint knows its data set
    assert float(evaluated.stdout.split("test accuracy:")[1].split()[0]) > 0.6


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, tiny_model):
    from mnist_cnn import save

    return save(tiny_model, tmp_path_factory.mktemp("ckpt") / "m.npz")


def _parse(line: str) -> tuple[str, int, float, int, float]:
    """ "name: 7 (probability 0.990), runner-up 3 (0.004)" -> its five fields."""
    name, rest = line.rsplit(": ", 1)
    words = rest.replace("(", " ").replace(")", " ").replace(",", " ").split()
    return name, int(words[0]), float(words[2]), int(words[4]), float(words[5])


def test_predict_folders_lines_and_saved_images(
    checkpoint, tiny_model, mnist, tmp_path
):
    from mnist_cnn import predict, preprocess_image

    _, (x_test, y_test) = mnist
    folder = tmp_path / "mine"
    folder.mkdir()
    for i in (2, 0, 1):
        _digit_png(folder / f"d{i}.png", x_test[i])
    (folder / "notes.txt").write_text("not an image, not listed")
    extra = _digit_png(tmp_path / "extra.png", x_test[3])
    saved = tmp_path / "seen"
    result = run(
        "predict",
        str(checkpoint),
        str(folder),
        str(extra),
        "--save-preprocessed",
        str(saved),
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    names = [_parse(line)[0] for line in lines]
    # A folder gives its image files, sorted; then the next argument.
    assert names == [str(folder / f"d{i}.png") for i in (0, 1, 2)] + [str(extra)]
    for line in lines:
        name, first, p1, second, p2 = _parse(line)
        probs = predict(tiny_model, name)
        order = np.argsort(probs)[::-1]
        assert (first, second) == (order[0], order[1])
        assert (p1, p2) == pytest.approx((probs[first], probs[second]), abs=6e-4)
    # The image the network saw, as 8-bit PNG.
    seen = np.asarray(Image.open(saved / "d0.png"), np.float32) / 255
    expected = preprocess_image(folder / "d0.png")
    np.testing.assert_allclose(seen, expected, atol=0.5 / 255 + 1e-6)
    assert int(y_test[0]) == _parse(lines[0])[1]


def test_unreadable_files_are_reported_after_the_others(checkpoint, mnist, tmp_path):
    _, (x_test, _) = mnist
    good = _digit_png(tmp_path / "a_good.png", x_test[0])
    (tmp_path / "b_bad.png").write_text("nope")
    later = _digit_png(tmp_path / "c_good.png", x_test[1])
    result = run("predict", str(checkpoint), str(tmp_path))
    assert result.returncode == 1
    assert [_parse(line)[0] for line in result.stdout.splitlines()] == [
        str(good),
        str(later),
    ]
    assert result.stderr.startswith(f"error: {tmp_path / 'b_bad.png'}: not a readable")
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_decompression_bomb_is_one_line(checkpoint, tmp_path):
    from test_predict import _png_header_only

    _png_header_only(tmp_path / "bomb.png", 20_000, 20_000)
    result = run("predict", str(checkpoint), str(tmp_path / "bomb.png"))
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith(f"error: {tmp_path / 'bomb.png'}: too large")
    assert len(result.stderr.strip().splitlines()) == 1


def test_multi_frame_file_says_so(checkpoint, mnist, tmp_path):
    _, (x_test, _) = mnist
    frames = [Image.fromarray(x_test[i]).resize((84, 84)) for i in (0, 1)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    result = run("predict", str(checkpoint), str(tmp_path / "anim.gif"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.rstrip().endswith("(first of 2 frames)")


@pytest.mark.parametrize(
    "args, message",
    [
        (("train", "--epochs", "0"), "epochs must be positive"),
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


def test_bad_and_missing_image_files(tmp_path, checkpoint):
    (tmp_path / "x.png").write_text("nope")
    result = run("predict", str(checkpoint), str(tmp_path / "x.png"))
    assert result.returncode == 1 and "not a readable image" in result.stderr
    result = run("predict", str(checkpoint), str(tmp_path / "missing.png"))
    assert result.returncode == 1 and "missing.png: no such image file" in result.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run("predict", str(checkpoint), str(empty))
    assert result.returncode == 1 and "no image files in" in result.stderr


def test_usage_errors_exit_2():
    result = run("train", "--preset", "nonsense")
    assert result.returncode == 2 and "invalid choice" in result.stderr
    assert run().returncode == 2
