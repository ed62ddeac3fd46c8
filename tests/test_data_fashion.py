"""Fashion-MNIST behind `load_data(dataset="fashion")`: the real files, their checksums,
bad copies, the lookup order, and a download from a local server."""

from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
import test_data as mnist_tests

from mnist_cnn import config, data
from mnist_cnn.data import (
    FASHION_SHA256,
    FILES,
    DatasetNotFoundError,
    MNISTNotFoundError,
    class_names,
    load_data,
)

# The MNIST tests' local mirror server (the `serve` fixture) and IDX writer, shared
# rather than copied (pytest puts tests/ on sys.path).
serve = mnist_tests.serve
_idx = mnist_tests._idx

# Where Debian's `dataset-fashion-mnist` package puts the four files (`dpkg -L`).
DEBIAN_FOLDER = Path("/usr/share/datasets/fashion-mnist")
ENV = "MNIST_CNN_FASHION_DATA"

# Facts of the data set itself, from upstream's files and README: the first ten labels
# of each split, and a balanced 6,000 / 1,000 images per class.
FIRST_TRAIN_LABELS = [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]
FIRST_TEST_LABELS = [9, 2, 1, 1, 6, 1, 4, 6, 5, 7]


@pytest.fixture(scope="session")
def fashion_dir() -> Path:
    """Folder holding the four real Fashion-MNIST files: $MNIST_CNN_FASHION_DATA, else
    Debian's package folder."""
    folder = os.environ.get(ENV) or (DEBIAN_FOLDER if DEBIAN_FOLDER.is_dir() else None)
    if folder is None:
        pytest.fail(
            f"set {ENV} to a folder with the four Fashion-MNIST files, or run "
            f"`apt install dataset-fashion-mnist` (it fills {DEBIAN_FOLDER})"
        )
    return Path(folder)


@pytest.fixture(scope="session")
def fashion(fashion_dir):
    """The real Fashion-MNIST arrays, ((x_train, y_train), (x_test, y_test))."""
    return load_data(fashion_dir, dataset="fashion")


@pytest.fixture
def no_data_env(monkeypatch, tmp_path):
    """Neither environment variable set, and an empty user cache under `tmp_path`."""
    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.delenv("MNIST_CNN_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "mnist_cnn" / "fashion-mnist"


def _copy(fashion_dir: Path, dest: Path, stems=FILES) -> Path:
    """Copy some of the real .gz files into `dest` (a fresh folder)."""
    dest.mkdir(parents=True, exist_ok=True)
    for stem in stems:
        (dest / f"{stem}.gz").write_bytes((fashion_dir / f"{stem}.gz").read_bytes())
    return dest


# --- the real data --------------------------------------------------------------------


def test_shapes_and_dtypes_like_keras(fashion):
    (x_train, y_train), (x_test, y_test) = fashion
    assert x_train.shape == (60000, 28, 28) and x_train.dtype == np.uint8
    assert y_train.shape == (60000,) and y_train.dtype == np.uint8
    assert x_test.shape == (10000, 28, 28) and x_test.dtype == np.uint8
    assert y_test.shape == (10000,) and y_test.dtype == np.uint8


def test_known_facts_of_the_files(fashion):
    (x_train, y_train), (_x_test, y_test) = fashion
    assert y_train[:10].tolist() == FIRST_TRAIN_LABELS
    assert y_test[:10].tolist() == FIRST_TEST_LABELS
    assert np.bincount(y_train).tolist() == [6000] * 10
    assert np.bincount(y_test).tolist() == [1000] * 10
    # The per-pixel statistics widely used to normalise Fashion-MNIST.
    pixels = x_train / 255.0
    assert abs(pixels.mean() - 0.2860) < 1e-4 and abs(pixels.std() - 0.3530) < 1e-4


@pytest.mark.parametrize("stem", FILES)
def test_published_checksums_match_the_decompressed_files(fashion_dir, stem):
    # Computed here without the loader: gunzip, then SHA-256.
    raw = gzip.decompress((fashion_dir / f"{stem}.gz").read_bytes())
    assert hashlib.sha256(raw).hexdigest() == FASHION_SHA256[stem]


def test_the_two_data_sets_are_not_mistaken_for_each_other(fashion_dir, mnist_dir):
    assert set(FASHION_SHA256.values()).isdisjoint(data.SHA256.values())
    with pytest.raises(ValueError, match=r"SHA-256.*not the original MNIST file"):
        load_data(fashion_dir)
    with pytest.raises(ValueError, match=r"SHA-256.*not the original Fashion-MNIST"):
        load_data(mnist_dir, dataset="fashion")


def test_uncompressed_files_are_accepted(fashion, fashion_dir, tmp_path):
    for stem in FILES:
        (tmp_path / stem).write_bytes(
            gzip.decompress((fashion_dir / f"{stem}.gz").read_bytes())
        )
    (_x_train, y_train), (x_test, _y_test) = load_data(tmp_path, dataset="fashion")
    np.testing.assert_array_equal(x_test, fashion[1][0])
    np.testing.assert_array_equal(y_train, fashion[0][1])


# --- class names and the description of each data set ---------------------------------


def test_class_names():
    assert class_names("mnist") == tuple("0123456789")
    # Upstream README's label table.
    assert class_names("fashion") == (
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    )


def test_config_accepts_exactly_the_data_sets_the_loader_knows():
    assert config.DATASETS == data.DATASETS
    for name in data.DATASETS:
        assert len(class_names(name)) == 10


@pytest.mark.parametrize(
    "call",
    [
        lambda: load_data(dataset="cifar"),
        lambda: class_names("cifar"),
        lambda: data.cache_dir("cifar"),
        lambda: data.download(dataset="cifar"),
        lambda: data.find_data_folder(dataset="cifar"),
    ],
)
def test_unknown_data_set_is_a_value_error_listing_the_choices(call, no_data_env):
    with pytest.raises(
        ValueError, match=r"unknown dataset 'cifar'.*'mnist', 'fashion'"
    ):
        call()
    assert not no_data_env.parent.exists()  # nothing created, nothing downloaded


def test_old_error_name_still_works():
    assert MNISTNotFoundError is DatasetNotFoundError
    assert issubclass(DatasetNotFoundError, FileNotFoundError)


# --- where load_data looks ------------------------------------------------------------


def test_cache_folders_are_per_data_set(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert data.cache_dir() == tmp_path / "mnist_cnn" / "mnist"  # unchanged
    assert data.cache_dir("mnist") == tmp_path / "mnist_cnn" / "mnist"
    assert data.cache_dir("fashion") == tmp_path / "mnist_cnn" / "fashion-mnist"


def test_find_data_folder_follows_the_same_order(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv(ENV, str(tmp_path / "fashion-env"))
    monkeypatch.setenv("MNIST_CNN_DATA", str(tmp_path / "mnist-env"))
    find = data.find_data_folder
    assert find(tmp_path / "arg", dataset="fashion") == tmp_path / "arg"
    assert find(dataset="fashion") == tmp_path / "fashion-env"
    assert find() == tmp_path / "mnist-env"  # each data set reads its own variable
    monkeypatch.delenv(ENV)
    assert find(dataset="fashion") == tmp_path / "cache/mnist_cnn/fashion-mnist"
    assert not (tmp_path / "cache").exists()  # only says where; creates nothing


def test_env_var_is_used(fashion, fashion_dir, mnist, mnist_dir, monkeypatch, tmp_path):
    monkeypatch.setenv(ENV, str(fashion_dir))
    monkeypatch.setenv("MNIST_CNN_DATA", str(tmp_path))  # empty: must not be read
    (_x, y_train), (_xt, y_test) = load_data(dataset="fashion")
    np.testing.assert_array_equal(y_train, fashion[0][1])
    np.testing.assert_array_equal(y_test, fashion[1][1])
    # And MNIST still reads only its own variable.
    monkeypatch.setenv("MNIST_CNN_DATA", str(mnist_dir))
    (_x, y_train), _ = load_data()
    np.testing.assert_array_equal(y_train, mnist[0][1])


def test_env_var_pointing_at_an_incomplete_folder(fashion_dir, tmp_path, monkeypatch):
    missing = "t10k-images-idx3-ubyte"
    _copy(fashion_dir, tmp_path, [s for s in FILES if s != missing])
    monkeypatch.setenv(ENV, str(tmp_path))
    with pytest.raises(DatasetNotFoundError) as info:
        load_data(dataset="fashion")
    message = str(info.value)
    assert f"{ENV} is set" in message and f"fix or unset {ENV}" in message
    assert f"Fashion-MNIST file(s) {missing}" in message
    assert "apt install dataset-fashion-mnist" in message
    assert str(DEBIAN_FOLDER) in message


def test_missing_file_in_the_path_argument(fashion_dir, tmp_path):
    _copy(fashion_dir, tmp_path, FILES[1:])
    with pytest.raises(DatasetNotFoundError, match=f"Fashion-MNIST file.*{FILES[0]}"):
        load_data(tmp_path, dataset="fashion")


# --- corrupt copies -------------------------------------------------------------------


def test_flipped_byte_in_a_copy_names_the_file(fashion_dir, tmp_path):
    _copy(fashion_dir, tmp_path)
    stem = "t10k-labels-idx1-ubyte"
    raw = bytearray(gzip.decompress((tmp_path / f"{stem}.gz").read_bytes()))
    raw[100] ^= 0x01  # one label changed, the header untouched
    (tmp_path / f"{stem}.gz").unlink()
    (tmp_path / stem).write_bytes(bytes(raw))
    before = sorted(tmp_path.iterdir())
    with pytest.raises(ValueError, match=rf"{stem}: SHA-256 .*Fashion-MNIST"):
        load_data(tmp_path, dataset="fashion")
    assert sorted(tmp_path.iterdir()) == before  # reading writes nothing


def _corrupt(fashion_dir: Path, dest: Path, where: str) -> Path:
    """A mirror folder whose t10k labels have one flipped byte: in the gzip stream or in
    the data it decompresses to."""
    _copy(fashion_dir, dest)
    path = dest / "t10k-labels-idx1-ubyte.gz"
    if where == "gzip":
        raw = bytearray(path.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        path.write_bytes(bytes(raw))
    else:
        raw = bytearray(gzip.decompress(path.read_bytes()))
        raw[-1] ^= 0x01
        path.write_bytes(gzip.compress(bytes(raw)))
    return dest


@pytest.mark.parametrize("where", ["gzip", "data"])
def test_corrupt_download_is_refused_and_leaves_nothing(
    fashion_dir, tmp_path, serve, where
):
    url, log = serve(_corrupt(fashion_dir, tmp_path / "mirror", where))
    cache = tmp_path / "cache"
    with pytest.raises(DatasetNotFoundError) as info:
        data.download(cache, mirrors=(url,), timeout=10, dataset="fashion")
    message = str(info.value)
    assert "t10k-labels-idx1-ubyte.gz" in message
    assert ("SHA-256" if where == "data" else "gzip") in message
    assert ENV in message and "apt install dataset-fashion-mnist" in message
    # The three good files were kept; of the bad one, neither it nor a temporary.
    assert sorted(p.name for p in cache.iterdir()) == sorted(
        f"{s}.gz" for s in FILES if s != "t10k-labels-idx1-ubyte"
    )
    assert log[-1].endswith("/t10k-labels-idx1-ubyte.gz")


# --- downloading from mirrors (a local server on 127.0.0.1) ---------------------------


def test_load_data_downloads_into_its_own_cache(
    fashion, fashion_dir, no_data_env, serve, monkeypatch
):
    url, log = serve(fashion_dir)
    # No `mirrors=`: the data set's own mirror list is used.
    monkeypatch.setattr(data, "FASHION_MIRRORS", (url,))
    (x_train, _y_train), (_x_test, y_test) = load_data(dataset="fashion", timeout=10)
    np.testing.assert_array_equal(x_train, fashion[0][0])
    np.testing.assert_array_equal(y_test, fashion[1][1])
    assert sorted(p.name for p in no_data_env.iterdir()) == sorted(
        f"{s}.gz" for s in FILES
    )
    assert sorted(log) == sorted(f"/{s}.gz" for s in FILES)
    assert not (no_data_env.parent / "mnist").exists()  # MNIST's cache untouched
    load_data(dataset="fashion")  # a second call reads the cache, downloads nothing
    assert len(log) == 4


def test_download_tries_the_next_mirror(fashion_dir, mnist_dir, tmp_path, serve):
    broken, broken_log = serve(fashion_dir, "404")
    wrong, wrong_log = serve(mnist_dir)  # a mirror serving the other data set
    good, good_log = serve(fashion_dir)
    folder = data.download(
        tmp_path / "cache", mirrors=(broken, wrong, good), timeout=10, dataset="fashion"
    )
    assert len(broken_log) == len(wrong_log) == len(good_log) == 4
    (_x, y_train), (_xt, y_test) = load_data(folder, dataset="fashion")
    assert y_train[:10].tolist() == FIRST_TRAIN_LABELS
    assert y_test[:10].tolist() == FIRST_TEST_LABELS


def test_offline_without_a_copy_says_where_it_looked(no_data_env, tmp_path, serve):
    dead, _ = serve(tmp_path / "nothing-here", "404")
    with pytest.raises(DatasetNotFoundError) as info:
        load_data(dataset="fashion", mirrors=(dead,), timeout=5)
    message = str(info.value)
    assert message.startswith("Fashion-MNIST not found")
    assert f"${ENV} (unset)" in message and str(no_data_env) in message
    assert "404" in message
    assert "apt install dataset-fashion-mnist" in message
    assert f"{ENV}={DEBIAN_FOLDER}" in message


def test_images_and_labels_count_must_agree(tmp_path, monkeypatch):
    files = {
        "train-images-idx3-ubyte": _idx(np.zeros((3, 2, 2), np.uint8)),
        "train-labels-idx1-ubyte": _idx(np.zeros(2, np.uint8)),
        "t10k-images-idx3-ubyte": _idx(np.zeros((2, 2, 2), np.uint8)),
        "t10k-labels-idx1-ubyte": _idx(np.zeros(2, np.uint8)),
    }
    for stem, raw in files.items():
        (tmp_path / stem).write_bytes(raw)
    monkeypatch.setattr(
        data,
        "FASHION_SHA256",
        {s: hashlib.sha256(r).hexdigest() for s, r in files.items()},
    )
    with pytest.raises(ValueError, match="train has 3 images but 2 labels"):
        load_data(tmp_path, dataset="fashion")
