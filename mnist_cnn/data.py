"""MNIST and Fashion-MNIST from their four IDX files: find, download if need be, verify,
parse.

`load_data()` returns exactly what `tf.keras.datasets.mnist.load_data()` returns:
``(x_train, y_train), (x_test, y_test)`` as uint8 NumPy arrays in the original file
order; `load_data(dataset="fashion")` does the same for Zalando's Fashion-MNIST, which
keeps MNIST's file names, sizes and format.
"""

from __future__ import annotations

import hashlib
import os
import struct
import tempfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .files import cache_root

# The values `load_data(dataset=...)` accepts.
DATASETS = ("mnist", "fashion")

ENV_VAR = "MNIST_CNN_DATA"

# SHA-256 of the *decompressed* files: the same whichever mirror the .gz came from.
SHA256 = {
    "train-images-idx3-ubyte": (
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"
    ),
    "train-labels-idx1-ubyte": (
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"
    ),
    "t10k-images-idx3-ubyte": (
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"
    ),
    "t10k-labels-idx1-ubyte": (
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"
    ),
}
FILES = tuple(SHA256)

MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)

FASHION_ENV_VAR = "MNIST_CNN_FASHION_DATA"

# Fashion-MNIST uses MNIST's four file names. The sums are of the decompressed files, so
# they also hold for Debian's package, which recompressed the .gz files (their MD5s
# differ from the ones upstream's README publishes; the contents do not).
FASHION_SHA256 = {
    "train-images-idx3-ubyte": (
        "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"
    ),
    "train-labels-idx1-ubyte": (
        "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"
    ),
    "t10k-images-idx3-ubyte": (
        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"
    ),
    "t10k-labels-idx1-ubyte": (
        "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"
    ),
}

FASHION_MIRRORS = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/"
    "data/fashion/",
    "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
)

# Label i of Fashion-MNIST is FASHION_CLASSES[i] (upstream's README).
FASHION_CLASSES = (
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

# Debian packages Fashion-MNIST (dataset-fashion-mnist); its four files go here.
FASHION_DEBIAN_FOLDER = "/usr/share/datasets/fashion-mnist"

# IDX type code 0x08 is unsigned byte; the last magic byte is the number of dimensions.
_UBYTE = 0x08
# No MNIST file is larger than this once decompressed; it bounds what a corrupt .gz can
# allocate.
_MAX_BYTES = 64 * 1024 * 1024

Split = tuple[np.ndarray, np.ndarray]


class DatasetNotFoundError(FileNotFoundError):
    """Raised when no copy of the data set can be found or downloaded."""


# The name from before Fashion-MNIST; both names are the same class.
MNISTNotFoundError = DatasetNotFoundError


@dataclass(frozen=True)
class Dataset:
    """One data set: its checksums, mirrors, environment variable, cache, classes."""

    name: str  # the `dataset=` argument
    title: str  # the name messages use
    sha256: Mapping[str, str]  # file stem -> SHA-256 of the decompressed file
    mirrors: tuple[str, ...]
    env_var: str
    cache_folder: str  # below cache_root()
    classes: tuple[str, ...]  # classes[label] names the label
    offline_hint: str  # how else to get the files, appended to "not found" messages


def dataset_info(dataset: str = "mnist") -> Dataset:
    """The description of `dataset` ("mnist" or "fashion")."""
    # Built on each call from the module's tables, so a test that replaces one (say
    # SHA256) changes what the loader checks.
    if dataset == "mnist":
        return Dataset(
            name="mnist",
            title="MNIST",
            sha256=SHA256,
            mirrors=MIRRORS,
            env_var=ENV_VAR,
            cache_folder="mnist",
            classes=tuple(str(d) for d in range(10)),
            offline_hint="",
        )
    if dataset == "fashion":
        return Dataset(
            name="fashion",
            title="Fashion-MNIST",
            sha256=FASHION_SHA256,
            mirrors=FASHION_MIRRORS,
            env_var=FASHION_ENV_VAR,
            cache_folder="fashion-mnist",
            classes=FASHION_CLASSES,
            offline_hint=(
                "On Debian, `apt install dataset-fashion-mnist` puts the "
                f"four files in {FASHION_DEBIAN_FOLDER}: set "
                f"{FASHION_ENV_VAR}={FASHION_DEBIAN_FOLDER}."
            ),
        )
    raise ValueError(
        f"unknown dataset {dataset!r}; choose one of {', '.join(map(repr, DATASETS))}"
    )


def class_names(dataset: str) -> tuple[str, ...]:
    """The name of each label of `dataset`: ``class_names(d)[label]``."""
    return dataset_info(dataset).classes


def cache_dir(dataset: str = "mnist") -> Path:
    """The user cache folder for `dataset` (respects XDG_CACHE_HOME)."""
    return cache_root() / dataset_info(dataset).cache_folder


def find_data_folder(
    path: str | os.PathLike | None = None, *, dataset: str = "mnist"
) -> Path:
    """The folder `load_data` reads: `path`, else the data set's environment variable
    ($MNIST_CNN_DATA, $MNIST_CNN_FASHION_DATA), else the user cache.

    Only says where to look; the folder may not exist yet (`load_data` downloads into
    the cache when nothing else is set).
    """
    info = dataset_info(dataset)
    if path is not None:
        return Path(path)
    if os.environ.get(info.env_var):
        return Path(os.environ[info.env_var])
    return cache_dir(dataset)


def parse_idx(
    data: bytes, name: str = "<bytes>", ndim: int | None = None
) -> np.ndarray:
    """Parse one uncompressed IDX file of unsigned bytes, checking each header field."""
    if len(data) < 4:
        raise ValueError(
            f"{name}: {len(data)} bytes is too short for an IDX header "
            "(need at least 4)"
        )
    zero, dtype, dims = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != _UBYTE:
        raise ValueError(
            f"{name}: bad magic number 0x{data[:4].hex()}; an IDX file of unsigned "
            "bytes starts with 0x000008 followed by its number of dimensions "
            "(is this really an MNIST file?)"
        )
    if dims == 0 or (ndim is not None and dims != ndim):
        expected = f"{ndim}" if ndim is not None else "at least 1"
        raise ValueError(f"{name}: header says {dims} dimensions, expected {expected}")
    header = 4 + 4 * dims
    if len(data) < header:
        raise ValueError(
            f"{name}: truncated header ({len(data)} bytes, the header needs {header})"
        )
    shape = struct.unpack(f">{dims}I", data[4:header])
    # Check the size the header promises against what is there *before* allocating
    # anything.
    expected = 1
    for n in shape:
        expected *= n
    # A zero dimension makes any other size "fit" an empty body; no real file is that
    # strange.
    extent = 1
    for n in shape:
        extent *= max(n, 1)
    if extent > _MAX_BYTES:
        raise ValueError(
            f"{name}: header promises an implausible shape {shape}; the file is "
            "corrupt or not an MNIST file"
        )
    if len(data) - header != expected:
        raise ValueError(
            f"{name}: header promises shape {shape} = {expected} bytes of data but "
            f"the file holds {len(data) - header}; the file is truncated or corrupt: "
            "delete it and fetch it again"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def _decompress(raw: bytes, name: str) -> bytes:
    """Gunzip `raw` if it is gzip, with a bound on the output size."""
    if raw[:2] != b"\x1f\x8b":
        return raw
    decoder = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = decoder.decompress(raw, _MAX_BYTES + 1)
    except zlib.error as err:
        raise ValueError(
            f"{name}: not a valid gzip file ({err}); delete it and fetch it again"
        ) from None
    if len(out) > _MAX_BYTES:
        raise ValueError(
            f"{name}: decompresses to more than {_MAX_BYTES} bytes; not an MNIST file"
        )
    if not decoder.eof:
        raise ValueError(
            f"{name}: the gzip stream is truncated; delete it and fetch it again"
        )
    return out


def find_file(folder: Path, stem: str) -> Path | None:
    """`folder/stem` or else `folder/stem.gz`, whichever exists; None if neither."""
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _read_verified(path: Path, stem: str, info: Dataset) -> bytes:
    """Read and decompress one file; check its SHA-256 against the published value."""
    data = _decompress(path.read_bytes(), str(path))
    digest = hashlib.sha256(data).hexdigest()
    if digest != info.sha256[stem]:
        raise ValueError(
            f"{path}: SHA-256 of the decompressed data is {digest}, expected "
            f"{info.sha256[stem]}; the file is corrupt or not the original "
            f"{info.title} file: delete it and fetch it again"
        )
    return data


def _load_folder(folder: Path, info: Dataset) -> tuple[Split, Split]:
    paths = {stem: find_file(folder, stem) for stem in FILES}
    missing = [stem for stem, p in paths.items() if p is None]
    if missing:
        raise DatasetNotFoundError(
            f"{folder} does not hold the {info.title} file(s) {', '.join(missing)} "
            "(as .gz or uncompressed IDX)"
        )
    arrays = {
        stem: parse_idx(
            _read_verified(p, stem, info), str(p), ndim=3 if "images" in stem else 1
        )
        for stem, p in paths.items()
    }
    splits = []
    for prefix in ("train", "t10k"):
        x, y = (
            arrays[f"{prefix}-images-idx3-ubyte"],
            arrays[f"{prefix}-labels-idx1-ubyte"],
        )
        if len(x) != len(y):
            raise ValueError(
                f"{folder}: {prefix} has {len(x)} images but {len(y)} labels"
            )
        splits.append((x, y))
    return splits[0], splits[1]


def _fetch(url: str, dest: Path, timeout: float, info: Dataset) -> None:
    """Download `url` to `dest` through a temporary file, with a progress bar."""
    from tqdm.auto import tqdm

    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with (
            os.fdopen(fd, "wb") as out,
            urllib.request.urlopen(url, timeout=timeout) as response,
        ):
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(
                total=total, unit="B", unit_scale=True, desc=dest.name, leave=False
            ) as bar:
                received = 0
                while chunk := response.read(1 << 16):
                    out.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
            if total is not None and received != total:
                raise OSError(f"transfer cut short: {received} of {total} bytes")
        stem = dest.name.removesuffix(".gz")
        # Raises on a bad file; the finally clause removes it.
        _read_verified(Path(tmp), stem, info)
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def download(
    folder: str | os.PathLike | None = None,
    mirrors: tuple[str, ...] | None = None,
    timeout: float = 30.0,
    *,
    dataset: str = "mnist",
) -> Path:
    """Download the four files of `dataset` into `folder` (default: its cache)."""
    info = dataset_info(dataset)
    mirrors = info.mirrors if mirrors is None else mirrors
    folder = Path(folder) if folder is not None else cache_dir(dataset)
    folder.mkdir(parents=True, exist_ok=True)
    for stem in FILES:
        if find_file(folder, stem) is not None:
            continue
        failures = []
        for mirror in mirrors:
            url = mirror.rstrip("/") + f"/{stem}.gz"
            try:
                _fetch(url, folder / f"{stem}.gz", timeout, info)
                break
            except (OSError, ValueError, urllib.error.URLError) as err:
                failures.append(f"  {url}: {err}")
        else:
            raise DatasetNotFoundError(
                f"could not download {stem}.gz from any mirror:\n"
                + "\n".join(failures)
                + f"\nTo work offline, copy the four {info.title} files into {folder} "
                f"or set {info.env_var} to a folder that holds them."
                + (f"\n{info.offline_hint}" if info.offline_hint else "")
            )
    return folder


def load_data(
    path: str | os.PathLike | None = None,
    *,
    dataset: str = "mnist",
    mirrors: tuple[str, ...] | None = None,
    timeout: float = 30.0,
) -> tuple[Split, Split]:
    """``(x_train, y_train), (x_test, y_test)`` as ``keras.datasets.mnist.load_data()``.

    `dataset` is "mnist" (handwritten digits) or "fashion" (Zalando's Fashion-MNIST).
    Looks in `path`, then in the data set's environment variable ($MNIST_CNN_DATA or
    $MNIST_CNN_FASHION_DATA), then in the user cache; downloads into the cache from
    `mirrors` (default: the data set's public mirrors) as a last resort. Every file is
    checked against its published SHA-256.
    """
    info = dataset_info(dataset)
    folder = find_data_folder(path, dataset=dataset)
    if path is not None:
        return _load_folder(folder, info)
    if os.environ.get(info.env_var):
        try:
            return _load_folder(folder, info)
        except DatasetNotFoundError as err:
            raise DatasetNotFoundError(
                f"{info.env_var} is set, but {err}; fix or unset {info.env_var}"
                + (f"\n{info.offline_hint}" if info.offline_hint else "")
            ) from None
    cache = folder
    if all(find_file(cache, stem) for stem in FILES):
        return _load_folder(cache, info)
    try:
        return _load_folder(
            download(cache, mirrors=mirrors, timeout=timeout, dataset=dataset), info
        )
    except DatasetNotFoundError as err:
        raise DatasetNotFoundError(
            f"{info.title} not found. Looked in: the path argument (none given), "
            f"${info.env_var} (unset), "
            f"the cache {cache}; then tried to download:\n{err}"
        ) from None
