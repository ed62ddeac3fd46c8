"""Looking at MNIST before training on it: IDX headers, class balance, mean digits,
outliers.

Every function takes the uint8 arrays `load_data()` returns, (N, 28, 28) images and (N,)
labels, and returns NumPy arrays; `figures` draws them and `preprocessing.pca` projects
them.
"""

from __future__ import annotations

import gzip
import os
import struct

import numpy as np

from ..data import FILES, MNISTNotFoundError, find_data_folder, find_file
from ..pixels import to_unit_float

# Names of the IDX type codes (the third byte of the magic number), from the format's
# definition.
IDX_TYPES = {
    0x08: "unsigned byte",
    0x09: "signed byte",
    0x0B: "short (2 bytes)",
    0x0C: "int (4 bytes)",
    0x0D: "float (4 bytes)",
    0x0E: "double (8 bytes)",
}


# --- the IDX files --------------------------------------------------------------------


def read_header(stem: str, path: str | os.PathLike | None = None) -> bytes:
    """The raw header bytes (magic number and sizes) of one MNIST file, read without
    loading the rest.
    """
    if stem not in FILES:
        raise ValueError(
            f"unknown MNIST file {stem!r}; choose one of {', '.join(FILES)}"
        )
    folder = find_data_folder(path)
    file = find_file(folder, stem)
    if file is None:
        raise MNISTNotFoundError(
            f"{folder} does not hold {stem} (as .gz or uncompressed IDX); "
            "run mnist_cnn.load_data() once to download it"
        )
    with open(file, "rb") as raw:
        gzipped = raw.read(2) == b"\x1f\x8b"
    # A gzip stream can be read from the start without decompressing the whole file.
    with gzip.open(file, "rb") if gzipped else open(file, "rb") as f:
        head = f.read(4)
        if len(head) < 4:
            raise ValueError(f"{file}: too short to hold an IDX header")
        return head + f.read(4 * head[3])


def describe_header(header: bytes) -> dict:
    """Decode the fields of an IDX header: magic number, element type, number of
    dimensions, shape.
    """
    if len(header) < 4:
        raise ValueError(f"an IDX header has at least 4 bytes, got {len(header)}")
    zero, type_code, ndim = struct.unpack(">HBB", header[:4])
    if zero != 0:
        raise ValueError(
            f"an IDX header starts with two zero bytes, got 0x{header[:2].hex()}"
        )
    if len(header) < 4 + 4 * ndim:
        raise ValueError(
            f"the header announces {ndim} dimensions, so it needs {4 + 4 * ndim} "
            "bytes; "
            f"got {len(header)}"
        )
    # Sizes are 32-bit big-endian ("network order") integers, one per dimension.
    shape = struct.unpack(f">{ndim}I", header[4 : 4 + 4 * ndim])
    return {
        "magic": int.from_bytes(header[:4], "big"),
        "type_code": type_code,
        "type": IDX_TYPES.get(type_code, "unknown"),
        "ndim": ndim,
        "shape": tuple(shape),
        "header_bytes": 4 + 4 * ndim,
    }


def format_header(header: bytes) -> str:
    """The header bytes in hex, four per line, each line with what it means."""
    info = describe_header(header)
    lines = [
        f"{header[:4].hex(' ')}   magic 0x{info['magic']:08x}: type "
        f"0x{info['type_code']:02x} "
        f"({info['type']}), {info['ndim']} dimension{'s' if info['ndim'] != 1 else ''}"
    ]
    names = (
        ["number of items", "rows", "columns"]
        if info["ndim"] == 3
        else ["number of items"]
    )
    names += [f"size {i}" for i in range(len(names), info["ndim"])]
    for i, (name, size) in enumerate(zip(names, info["shape"])):
        lines.append(f"{header[4 + 4 * i : 8 + 4 * i].hex(' ')}   {name}: {size:,}")
    return "\n".join(lines)


# --- statistics -----------------------------------------------------------------------


def check_pair(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, H, W) and their (N,) labels as arrays, or a ValueError saying what is
    off.
    """
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim != 3:
        raise ValueError(f"images must have shape (N, H, W), got {x.shape}")
    if y.shape != (len(x),):
        raise ValueError(
            f"labels must have shape ({len(x)},) to match the images, got {y.shape}"
        )
    return x, y


def class_counts(y: np.ndarray, num_classes: int = 10) -> np.ndarray:
    """How many labels of each class 0..num_classes-1 there are: (num_classes,)."""
    y = np.asarray(y)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(
            f"labels must be a 1-D integer array, got shape {y.shape} and dtype "
            f"{y.dtype}"
        )
    if len(y) and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(
            f"labels must be in 0..{num_classes - 1}, got values in "
            f"{y.min()}..{y.max()}"
        )
    return np.bincount(y, minlength=num_classes)


def _per_class(
    x: np.ndarray, y: np.ndarray, num_classes: int, statistic: str
) -> np.ndarray:
    """`statistic` ("mean" or "std") of each class's images, (num_classes, H, W)."""
    x, y = check_pair(x, y)
    counts = class_counts(y, num_classes)
    if np.any(counts == 0):
        raise ValueError(
            f"classes {np.flatnonzero(counts == 0).tolist()} have no images: "
            f"no {statistic}"
        )
    reduce = np.mean if statistic == "mean" else np.std
    # One class at a time: a float copy of one class, never of the whole set.
    return np.stack(
        [
            reduce(to_unit_float(x[y == c]), axis=0, dtype=np.float64)
            for c in range(num_classes)
        ]
    )


def class_mean_images(
    x: np.ndarray, y: np.ndarray, num_classes: int = 10
) -> np.ndarray:
    """The average image of each class, (num_classes, H, W), pixels in [0, 1]."""
    return _per_class(x, y, num_classes, "mean")


def class_std_images(x: np.ndarray, y: np.ndarray, num_classes: int = 10) -> np.ndarray:
    """Per-pixel standard deviation within each class, (num_classes, H, W): where digits
    vary.
    """
    return _per_class(x, y, num_classes, "std")


def pixel_value_counts(x: np.ndarray) -> np.ndarray:
    """How many pixels take each value 0..255 over all images, shape (256,)."""
    x = np.asarray(x)
    if x.dtype != np.uint8:
        raise ValueError(
            "pixel_value_counts needs the uint8 images load_data returns, got "
            f"{x.dtype}"
        )
    return np.bincount(x.ravel(), minlength=256)


def always_empty(x: np.ndarray) -> np.ndarray:
    """Boolean mask (H, W) of the pixel positions that are 0 in every image."""
    x = np.asarray(x)
    if x.ndim != 3 or len(x) == 0:
        raise ValueError(f"images must have shape (N, H, W) with N >= 1, got {x.shape}")
    return ~np.any(x != 0, axis=0)


def always_empty_fraction(x: np.ndarray) -> float:
    """Fraction of pixel positions that are 0 in every image (they carry no
    information).
    """
    return float(always_empty(x).mean())


def distance_to_class_mean(
    x: np.ndarray, y: np.ndarray, num_classes: int = 10
) -> np.ndarray:
    """Euclidean distance (pixels in [0, 1]) of every image to the mean image of its
    class, (N,).
    """
    x, y = check_pair(x, y)
    means = class_mean_images(x, y, num_classes).astype(np.float32)
    # float32 is plenty for a ranking and halves the memory of the (N, H, W) difference.
    diff = to_unit_float(x) - means[y]
    return np.sqrt(np.einsum("nij,nij->n", diff, diff, dtype=np.float64))


def most_unusual(
    x: np.ndarray, y: np.ndarray, k: int = 10, num_classes: int = 10
) -> np.ndarray:
    """Indices of the `k` images farthest from their class mean, farthest first."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    distance = distance_to_class_mean(x, y, num_classes)
    # A stable sort keeps ties in file order, so the result is reproducible.
    return np.argsort(-distance, kind="stable")[:k]
