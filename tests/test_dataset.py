"""Tests of mnist_cnn.teach.dataset."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from mnist_cnn.data import FILES, MNISTNotFoundError, parse_idx
from mnist_cnn.teach import (
    dataset,
)


def _small(seed: int = 0, n: int = 60, side: int = 5):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, side, side), dtype=np.uint8)
    y = np.concatenate([np.arange(10), rng.integers(0, 10, n - 10)])
    return x, y


def test_read_header_agrees_with_the_parsed_files(mnist, mnist_dir):
    (x_train, y_train), (x_test, y_test) = mnist
    arrays = dict(zip(FILES, (x_train, y_train, x_test, y_test)))
    for stem in FILES:
        info = dataset.describe_header(dataset.read_header(stem, mnist_dir))
        assert info["shape"] == arrays[stem].shape
        assert info["type_code"] == 0x08 and info["type"] == "unsigned byte"
        assert (
            info["ndim"] == arrays[stem].ndim
            and info["header_bytes"] == 4 + 4 * arrays[stem].ndim
        )


@pytest.mark.parametrize("shape", [(3,), (2, 4, 5), (1, 2, 3, 4)])
def test_describe_header_matches_parse_idx(shape):
    header = struct.pack(f">HBB{len(shape)}I", 0, 8, len(shape), *shape)
    payload = np.arange(np.prod(shape), dtype=np.uint64).astype(np.uint8).tobytes()
    info = dataset.describe_header(header)
    assert info["shape"] == parse_idx(header + payload).shape
    assert info["magic"] == 0x0800 + len(shape)
    lines = dataset.format_header(header).splitlines()
    assert len(lines) == 1 + len(shape)
    assert lines[0].startswith(header[:4].hex(" "))
    for i, size in enumerate(shape):
        assert lines[1 + i].startswith(header[4 + 4 * i : 8 + 4 * i].hex(" "))
        assert lines[1 + i].endswith(f"{size:,}")


def test_read_header_from_gzip_and_raw_files(tmp_path):
    header = struct.pack(">HBB3I", 0, 8, 3, 2, 3, 3)
    stem_gz, stem_raw = "train-images-idx3-ubyte", "t10k-images-idx3-ubyte"
    with gzip.open(tmp_path / f"{stem_gz}.gz", "wb") as f:
        f.write(header + bytes(18))
    (tmp_path / stem_raw).write_bytes(header + bytes(18))
    assert dataset.read_header(stem_gz, tmp_path) == header
    assert dataset.read_header(stem_raw, tmp_path) == header


def test_header_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown MNIST file"):
        dataset.read_header("train-images", tmp_path)
    with pytest.raises(MNISTNotFoundError, match="does not hold"):
        dataset.read_header(FILES[0], tmp_path)
    with pytest.raises(ValueError, match="two zero bytes"):
        dataset.describe_header(b"\x01\x00\x08\x01\x00\x00\x00\x01")
    with pytest.raises(ValueError, match="needs 16 bytes"):
        dataset.describe_header(b"\x00\x00\x08\x03\x00\x00\x00\x01")


def test_class_counts_against_bincount(mnist):
    (_, y_train), (_, y_test) = mnist
    for y in (y_train, y_test):
        assert dataset.class_counts(y).tolist() == np.bincount(y, minlength=10).tolist()
    # A class that never occurs still gets its zero.
    assert dataset.class_counts(np.array([1, 1, 3])).tolist() == [
        0,
        2,
        0,
        1,
        0,
        0,
        0,
        0,
        0,
        0,
    ]
    with pytest.raises(ValueError, match=r"0\.\.9"):
        dataset.class_counts(np.array([0, 10]))
    with pytest.raises(ValueError, match="1-D integer"):
        dataset.class_counts(np.array([0.5]))


def test_class_means_and_stds_against_a_loop():
    x, y = _small()
    means, stds = dataset.class_mean_images(x, y), dataset.class_std_images(x, y)
    for c in range(10):
        members = [x[i] / 255.0 for i in range(len(x)) if y[i] == c]
        np.testing.assert_allclose(means[c], np.mean(members, axis=0), atol=1e-12)
        np.testing.assert_allclose(stds[c], np.std(members, axis=0), atol=1e-12)
    with pytest.raises(ValueError, match=r"classes \[9\] have no images"):
        dataset.class_mean_images(x[y != 9], y[y != 9])


def test_class_means_add_up_to_the_overall_mean(mnist):
    (x_train, y_train), _ = mnist
    means = dataset.class_mean_images(x_train, y_train)
    weights = dataset.class_counts(y_train) / len(y_train)
    np.testing.assert_allclose(
        np.tensordot(weights, means, axes=1), x_train.mean(axis=0) / 255, atol=1e-9
    )


def test_pixel_value_counts_against_unique():
    x, _ = _small(1)
    values, counts = np.unique(x, return_counts=True)
    expected = np.zeros(256, int)
    expected[values] = counts
    assert dataset.pixel_value_counts(x).tolist() == expected.tolist()
    with pytest.raises(ValueError, match="uint8"):
        dataset.pixel_value_counts(x / 255.0)


def test_always_empty():
    x = np.zeros((3, 4, 4), np.uint8)
    x[0, 1, 2] = 5
    x[2, 3, 3] = 1
    mask = dataset.always_empty(x)
    assert mask.sum() == 14 and not mask[1, 2] and not mask[3, 3]
    assert dataset.always_empty_fraction(x) == pytest.approx(14 / 16)


def test_always_empty_on_mnist(mnist):
    (x_train, _), _ = mnist
    assert dataset.always_empty_fraction(x_train) == pytest.approx(
        (x_train.max(axis=0) == 0).mean()
    )


def test_distances_and_most_unusual_against_a_loop():
    x, y = _small(3)
    means = dataset.class_mean_images(x, y)
    expected = np.array(
        [np.linalg.norm(x[i] / 255.0 - means[y[i]]) for i in range(len(x))]
    )
    np.testing.assert_allclose(
        dataset.distance_to_class_mean(x, y), expected, rtol=1e-5
    )
    top = dataset.most_unusual(x, y, k=5)
    assert top.tolist() == np.argsort(-expected)[:5].tolist()
    with pytest.raises(ValueError, match="k must be"):
        dataset.most_unusual(x, y, k=0)
    with pytest.raises(ValueError, match="labels must have shape"):
        dataset.most_unusual(x, y[:-1])
