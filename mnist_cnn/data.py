"""MNIST from the four original IDX files: find, download if need be, verify, parse.

`load_data()` returns exactly what `tf.keras.datasets.mnist.load_data()` returns:
``(x_train, y_train), (x_test, y_test)`` as uint8 NumPy arrays in the original file
order.
"""

from __future__ import annotations

import hashlib
import os
import struct
import tempfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path

import numpy as np

from .files import cache_root

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

# IDX type code 0x08 is unsigned byte; the last magic byte is the number of dimensions.
_UBYTE = 0x08
# No MNIST file is larger than this once decompressed; it bounds what a corrupt .gz can
# allocate.
_MAX_BYTES = 64 * 1024 * 1024

Split = tuple[np.ndarray, np.ndarray]


class MNISTNotFoundError(FileNotFoundError):
    """Raised when no copy of MNIST can be found or downloaded."""


def cache_dir() -> Path:
    """The user cache folder for MNIST (respects XDG_CACHE_HOME)."""
    return cache_root() / "mnist"


def find_data_folder(path: str | os.PathLike | None = None) -> Path:
    """The folder `load_data` reads: `path`, else $MNIST_CNN_DATA, else the user cache.

    Only says where to look; the folder may not exist yet (`load_data` downloads into
    the cache when nothing else is set).
    """
    if path is not None:
        return Path(path)
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR])
    return cache_dir()


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


def _read_verified(path: Path, stem: str) -> bytes:
    """Read and decompress one file; check its SHA-256 against the published value."""
    data = _decompress(path.read_bytes(), str(path))
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256[stem]:
        raise ValueError(
            f"{path}: SHA-256 of the decompressed data is {digest}, expected "
            f"{SHA256[stem]}; the file is corrupt or not the original MNIST file: "
            "delete it and fetch it again"
        )
    return data


def _load_folder(folder: Path) -> tuple[Split, Split]:
    paths = {stem: find_file(folder, stem) for stem in FILES}
    missing = [stem for stem, p in paths.items() if p is None]
    if missing:
        raise MNISTNotFoundError(
            f"{folder} does not hold {', '.join(missing)} (as .gz or uncompressed IDX)"
        )
    arrays = {
        stem: parse_idx(
            _read_verified(p, stem), str(p), ndim=3 if "images" in stem else 1
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


def _fetch(url: str, dest: Path, timeout: float) -> None:
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
        _read_verified(
            Path(tmp), stem
        )  # raises on a bad file; the finally clause removes it
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def download(
    folder: str | os.PathLike | None = None,
    mirrors: tuple[str, ...] = MIRRORS,
    timeout: float = 30.0,
) -> Path:
    """Download the four MNIST files into `folder` (default: the cache)."""
    folder = Path(folder) if folder is not None else cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    for stem in FILES:
        if find_file(folder, stem) is not None:
            continue
        failures = []
        for mirror in mirrors:
            url = mirror.rstrip("/") + f"/{stem}.gz"
            try:
                _fetch(url, folder / f"{stem}.gz", timeout)
                break
            except (OSError, ValueError, urllib.error.URLError) as err:
                failures.append(f"  {url}: {err}")
        else:
            raise MNISTNotFoundError(
                f"could not download {stem}.gz from any mirror:\n"
                + "\n".join(failures)
                + f"\nTo work offline, copy the four MNIST files into {folder} "
                f"or set {ENV_VAR} "
                "to a folder that holds them."
            )
    return folder


def load_data(
    path: str | os.PathLike | None = None,
    *,
    mirrors: tuple[str, ...] = MIRRORS,
    timeout: float = 30.0,
) -> tuple[Split, Split]:
    """``(x_train, y_train), (x_test, y_test)`` as ``keras.datasets.mnist.load_data()``.

    Looks in `path`, then in ``$MNIST_CNN_DATA``, then in the user cache; downloads into
    the cache as a last resort. Every file is checked against its published SHA-256.
    """
    folder = find_data_folder(path)
    if path is not None:
        return _load_folder(folder)
    if os.environ.get(ENV_VAR):
        try:
            return _load_folder(folder)
        except MNISTNotFoundError as err:
            raise MNISTNotFoundError(
                f"{ENV_VAR} is set, but {err}; fix or unset {ENV_VAR}"
            ) from None
    cache = folder
    if all(find_file(cache, stem) for stem in FILES):
        return _load_folder(cache)
    try:
        return _load_folder(download(cache, mirrors=mirrors, timeout=timeout))
    except MNISTNotFoundError as err:
        raise MNISTNotFoundError(
            f"MNIST not found. Looked in: the path argument (none given), "
            f"${ENV_VAR} (unset), "
            f"the cache {cache}; then tried to download:\n{err}"
        ) from None
