"""MNIST loading: the real files, the IDX parser's checks, and the download path."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.server
import shutil
import struct
import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from mnist_cnn import data
from mnist_cnn.data import FILES, MNISTNotFoundError, load_data, parse_idx

# --- the real data --------------------------------------------------------------------


def test_shapes_dtypes_like_keras(mnist):
    (x_train, y_train), (x_test, y_test) = mnist
    assert x_train.shape == (60000, 28, 28) and x_train.dtype == np.uint8
    assert y_train.shape == (60000,) and y_train.dtype == np.uint8
    assert x_test.shape == (10000, 28, 28) and x_test.dtype == np.uint8
    assert y_test.shape == (10000,) and y_test.dtype == np.uint8


def test_known_facts_of_the_files(mnist):
    # Facts of the data set itself, from shared/data/mnist/README.md.
    (x_train, y_train), (_x_test, y_test) = mnist
    assert y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert y_test[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert np.bincount(y_train).tolist() == [
        5923,
        6742,
        5958,
        6131,
        5842,
        5421,
        5918,
        6265,
        5851,
        5949,
    ]
    assert np.bincount(y_test).tolist() == [
        980,
        1135,
        1032,
        1010,
        982,
        892,
        958,
        1028,
        974,
        1009,
    ]
    pixels = x_train / 255.0
    assert abs(pixels.mean() - 0.1307) < 1e-4 and abs(pixels.std() - 0.3081) < 1e-4


def test_env_var_is_used(mnist, mnist_dir, monkeypatch):
    monkeypatch.setenv("MNIST_CNN_DATA", str(mnist_dir))
    (_x, y), _ = load_data()
    np.testing.assert_array_equal(y, mnist[0][1])


def test_env_var_pointing_nowhere_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("MNIST_CNN_DATA", str(tmp_path))
    with pytest.raises(MNISTNotFoundError, match="MNIST_CNN_DATA is set"):
        load_data()


def test_uncompressed_files_are_accepted(mnist, mnist_dir, tmp_path):
    for stem in FILES:
        (tmp_path / stem).write_bytes(
            gzip.decompress((mnist_dir / f"{stem}.gz").read_bytes())
        )
    (_x_train, y_train), (x_test, _y_test) = load_data(tmp_path)
    np.testing.assert_array_equal(x_test, mnist[1][0])
    np.testing.assert_array_equal(y_train, mnist[0][1])


def test_cache_directory_respects_xdg(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert data.cache_dir() == tmp_path / "mnist_cnn" / "mnist"


def test_find_data_folder_follows_load_datas_order(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path / "env"))
    assert data.find_data_folder(tmp_path / "arg") == tmp_path / "arg"
    assert data.find_data_folder() == tmp_path / "env"
    monkeypatch.delenv(data.ENV_VAR)
    assert data.find_data_folder() == tmp_path / "cache" / "mnist_cnn" / "mnist"
    assert not (tmp_path / "cache").exists()  # only says where; creates nothing


def test_find_file_prefers_the_uncompressed_file(tmp_path):
    stem = FILES[0]
    assert data.find_file(tmp_path, stem) is None
    (tmp_path / f"{stem}.gz").write_bytes(b"")
    assert data.find_file(tmp_path, stem) == tmp_path / f"{stem}.gz"
    (tmp_path / stem).write_bytes(b"")
    assert data.find_file(tmp_path, stem) == tmp_path / stem


def test_checksum_mismatch_names_the_file(mnist_dir, tmp_path):
    for stem in FILES:
        shutil.copy(mnist_dir / f"{stem}.gz", tmp_path)
    raw = bytearray(
        gzip.decompress((mnist_dir / "t10k-labels-idx1-ubyte.gz").read_bytes())
    )
    raw[100] = (raw[100] + 1) % 10  # one changed label
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"t10k-labels-idx1-ubyte.*SHA-256"):
        load_data(tmp_path)


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
        data, "SHA256", {s: hashlib.sha256(r).hexdigest() for s, r in files.items()}
    )
    with pytest.raises(ValueError, match="train has 3 images but 2 labels"):
        load_data(tmp_path)


# --- the IDX parser -------------------------------------------------------------------


def _idx(array: np.ndarray) -> bytes:
    """Encode an array as an IDX file of unsigned bytes (the test's own writer)."""
    return (
        struct.pack(">HBB", 0, 8, array.ndim)
        + struct.pack(f">{array.ndim}I", *array.shape)
        + array.tobytes()
    )


def test_parser_round_trip():
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    np.testing.assert_array_equal(parse_idx(_idx(array)), array)


@pytest.mark.parametrize(
    "raw, message",
    [
        (b"\x00\x00", "too short"),
        (
            b"\x00\x00\x0d\x01\x00\x00\x00\x01\x00\x00\x00\x00",
            "bad magic",
        ),  # float type code
        (b"\x12\x34\x08\x01\x00\x00\x00\x01\x07", "bad magic"),
        (b"\x00\x00\x08\x03\x00\x00\x00\x01", "truncated header"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x05\x01\x02", "truncated or corrupt"),
        (
            b"\x00\x00\x08\x01\x00\x00\x00\x01\x01\x02",
            "truncated or corrupt",
        ),  # extra byte
    ],
)
def test_parser_rejects_bad_files_clearly(raw, message):
    with pytest.raises(ValueError, match=message) as info:
        parse_idx(raw, "some-file")
    assert "some-file" in str(info.value)


def test_parser_checks_dimensions():
    with pytest.raises(ValueError, match="expected 3"):
        parse_idx(_idx(np.zeros(4, np.uint8)), "labels-as-images", ndim=3)


def test_corrupt_gzip_is_a_clear_error(tmp_path):
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(_idx(np.zeros(10, np.uint8)))[:-12])
    with pytest.raises(ValueError, match=r"truncated|not a valid gzip"):
        data._decompress(path.read_bytes(), str(path))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_parser_on_random_bytes_only_raises_value_error(raw):
    try:
        out = parse_idx(raw, "random")
    except ValueError as err:
        assert "random" in str(err)
    else:
        assert out.size == len(raw) - 4 - 4 * out.ndim


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=4), st.binary(max_size=32)
)
@example(
    [0, 170134, 170138, 318637797], b""
)  # found by hypothesis: numpy refused the reshape
def test_parser_never_trusts_huge_headers(shape, body):
    # A header can promise up to 2**128 bytes: the parser must refuse before allocating.
    raw = (
        struct.pack(">HBB", 0, 8, len(shape))
        + struct.pack(f">{len(shape)}I", *shape)
        + body
    )
    expected = int(np.prod(shape, dtype=object))
    plausible = (
        int(np.prod([max(n, 1) for n in shape], dtype=object)) <= data._MAX_BYTES
    )
    if expected == len(body) and plausible:
        assert parse_idx(raw).shape == tuple(shape)
    else:
        with pytest.raises(ValueError, match="some-file"):
            parse_idx(raw, "some-file")


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200))
def test_random_gzip_payloads_only_raise_value_error(tail):
    with contextlib.suppress(ValueError):
        data._decompress(b"\x1f\x8b" + tail, "random.gz")


# --- downloading from mirrors (a local server on 127.0.0.1) ---------------------------


class _Mirror(http.server.SimpleHTTPRequestHandler):
    """Serves files from `root`; `mode` makes it misbehave: 404s or cut transfers."""

    root: Path
    mode = "ok"
    requests: list

    def __init__(self, *args, **kwargs):
        super().__init__(*args, directory=str(self.root), **kwargs)

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.requests.append(self.path)
        if self.mode == "404":
            self.send_error(404)
        elif self.mode == "truncate":
            body = (self.root / self.path.lstrip("/").split("/")[-1]).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.close_connection = True
        else:
            super().do_GET()


@pytest.fixture
def serve():
    servers = []

    def start(root: Path, mode: str = "ok"):
        handler = type(
            "Handler", (_Mirror,), {"root": root, "mode": mode, "requests": []}
        )
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/", handler.requests

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_download_tries_the_next_mirror(mnist_dir, tmp_path, serve):
    broken, broken_log = serve(mnist_dir, "404")
    good, good_log = serve(mnist_dir)
    folder = data.download(tmp_path / "cache", mirrors=(broken, good), timeout=10)
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{s}.gz" for s in FILES)
    assert len(broken_log) == 4 and len(good_log) == 4
    (_x_train, y_train), (_x_test, _y_test) = load_data(folder)
    assert y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]


def test_load_data_downloads_into_the_cache(mnist_dir, tmp_path, serve, monkeypatch):
    monkeypatch.delenv("MNIST_CNN_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    url, log = serve(mnist_dir)
    (x_train, _), _ = load_data(mirrors=(url,), timeout=10)
    assert x_train.shape == (60000, 28, 28)
    assert len(list((tmp_path / "mnist_cnn" / "mnist").glob("*.gz"))) == 4
    load_data(mirrors=(url,))  # a second call reads the cache and downloads nothing
    assert len(log) == 4


def test_checksum_mismatch_on_download_leaves_nothing(tmp_path, serve):
    bad = tmp_path / "bad"
    bad.mkdir()
    for stem in FILES:  # valid gzip files with the wrong content
        (bad / f"{stem}.gz").write_bytes(gzip.compress(_idx(np.zeros(3, np.uint8))))
    url, _ = serve(bad)
    cache = tmp_path / "cache"
    with pytest.raises(MNISTNotFoundError, match="SHA-256"):
        data.download(cache, mirrors=(url,), timeout=10)
    assert list(cache.iterdir()) == []  # no file, no temporary left behind


def test_truncated_transfer_is_retried_elsewhere_and_leaves_nothing(
    mnist_dir, tmp_path, serve
):
    cut, _ = serve(mnist_dir, "truncate")
    cache = tmp_path / "cache"
    with pytest.raises(
        MNISTNotFoundError, match=r"cut short|truncated|IncompleteRead"
    ) as info:
        data.download(cache, mirrors=(cut,), timeout=10)
    assert "MNIST_CNN_DATA" in str(info.value)
    assert list(cache.iterdir()) == []


def test_offline_without_a_copy_says_where_it_looked(tmp_path, monkeypatch, serve):
    monkeypatch.delenv("MNIST_CNN_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    dead, _ = serve(tmp_path / "nothing-here", "404")
    with pytest.raises(MNISTNotFoundError) as info:
        load_data(mirrors=(dead,), timeout=5)
    message = str(info.value)
    assert (
        "MNIST_CNN_DATA" in message and str(tmp_path / "mnist_cnn" / "mnist") in message
    )
    assert "404" in message
