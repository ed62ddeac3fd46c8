"""Looking at MNIST before training on it: IDX headers, class balance, mean digits, PCA, outliers.

Every function takes the uint8 arrays `load_data()` returns, (N, 28, 28) images and (N,) labels,
and returns NumPy arrays; the `plot_*` helpers draw them and return the matplotlib figure
(image grids and matrices with their numbers are drawn by `mnist_cnn.viz`).
"""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from .data import ENV_VAR, FILES, MNISTNotFoundError, _find, cache_dir

# Names of the IDX type codes (the third byte of the magic number), from the format's definition.
IDX_TYPES = {
    0x08: "unsigned byte",
    0x09: "signed byte",
    0x0B: "short (2 bytes)",
    0x0C: "int (4 bytes)",
    0x0D: "float (4 bytes)",
    0x0E: "double (8 bytes)",
}


# --- the IDX files -------------------------------------------------------------------------------


def data_folder(path: str | os.PathLike | None = None) -> Path:
    """The folder `load_data` reads: `path`, else $MNIST_CNN_DATA, else the user cache."""
    if path is not None:
        return Path(path)
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR])
    return cache_dir()


def read_header(stem: str, path: str | os.PathLike | None = None) -> bytes:
    """The raw header bytes (magic number and sizes) of one MNIST file, read without loading the rest."""
    if stem not in FILES:
        raise ValueError(
            f"unknown MNIST file {stem!r}; choose one of {', '.join(FILES)}"
        )
    folder = data_folder(path)
    file = _find(folder, stem)
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
    """Decode the fields of an IDX header: magic number, element type, number of dimensions, shape."""
    if len(header) < 4:
        raise ValueError(f"an IDX header has at least 4 bytes, got {len(header)}")
    zero, type_code, ndim = struct.unpack(">HBB", header[:4])
    if zero != 0:
        raise ValueError(
            f"an IDX header starts with two zero bytes, got 0x{header[:2].hex()}"
        )
    if len(header) < 4 + 4 * ndim:
        raise ValueError(
            f"the header announces {ndim} dimensions, so it needs {4 + 4 * ndim} bytes; "
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
        f"{header[:4].hex(' ')}   magic 0x{info['magic']:08x}: type 0x{info['type_code']:02x} "
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


# --- statistics ----------------------------------------------------------------------------------


def _check_pair(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim != 3:
        raise ValueError(f"images must have shape (N, H, W), got {x.shape}")
    if y.shape != (len(x),):
        raise ValueError(
            f"labels must have shape ({len(x)},) to match the images, got {y.shape}"
        )
    return x, y


def _as_float(x: np.ndarray, dtype=np.float64) -> np.ndarray:
    """uint8 pixels 0..255 -> floats in [0, 1]; float input is taken to be in [0, 1] already."""
    x = np.asarray(x)
    return x.astype(dtype) / dtype(255) if x.dtype == np.uint8 else x.astype(dtype)


def class_counts(y: np.ndarray, num_classes: int = 10) -> np.ndarray:
    """How many labels of each class 0..num_classes-1 there are, shape (num_classes,)."""
    y = np.asarray(y)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(
            f"labels must be a 1-D integer array, got shape {y.shape} and dtype {y.dtype}"
        )
    if len(y) and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(
            f"labels must be in 0..{num_classes - 1}, got values in {y.min()}..{y.max()}"
        )
    return np.bincount(y, minlength=num_classes)


def class_mean_images(
    x: np.ndarray, y: np.ndarray, num_classes: int = 10
) -> np.ndarray:
    """The average image of each class, (num_classes, H, W), pixels in [0, 1]."""
    x, y = _check_pair(x, y)
    counts = class_counts(y, num_classes)
    if np.any(counts == 0):
        raise ValueError(
            f"classes {np.flatnonzero(counts == 0).tolist()} have no images: no mean"
        )
    # Averaging the uint8 values directly avoids a float copy of the whole set.
    scale = 255.0 if x.dtype == np.uint8 else 1.0
    return np.stack(
        [x[y == c].mean(axis=0, dtype=np.float64) / scale for c in range(num_classes)]
    )


def class_std_images(x: np.ndarray, y: np.ndarray, num_classes: int = 10) -> np.ndarray:
    """The per-pixel standard deviation within each class, (num_classes, H, W): where digits vary."""
    x, y = _check_pair(x, y)
    counts = class_counts(y, num_classes)
    if np.any(counts == 0):
        raise ValueError(
            f"classes {np.flatnonzero(counts == 0).tolist()} have no images: no std"
        )
    return np.stack([_as_float(x[y == c]).std(axis=0) for c in range(num_classes)])


def pixel_value_counts(x: np.ndarray) -> np.ndarray:
    """How many pixels take each value 0..255 over all images, shape (256,)."""
    x = np.asarray(x)
    if x.dtype != np.uint8:
        raise ValueError(
            f"pixel_value_counts needs the uint8 images load_data returns, got {x.dtype}"
        )
    return np.bincount(x.ravel(), minlength=256)


def always_empty(x: np.ndarray) -> np.ndarray:
    """Boolean mask (H, W) of the pixel positions that are 0 in every image."""
    x = np.asarray(x)
    if x.ndim != 3 or len(x) == 0:
        raise ValueError(f"images must have shape (N, H, W) with N >= 1, got {x.shape}")
    return ~np.any(x != 0, axis=0)


def always_empty_fraction(x: np.ndarray) -> float:
    """Fraction of pixel positions that are 0 in every image (they carry no information)."""
    return float(always_empty(x).mean())


def pca(
    x: np.ndarray, components: int = 2
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Principal component analysis of flattened images.

    Returns (coordinates (N, components), directions (components, H*W), explained variance ratio
    (components,)). Signs are fixed so each direction's largest entry is positive.
    """
    x = np.asarray(x)
    if x.ndim < 2 or len(x) < 2:
        raise ValueError(f"PCA needs at least 2 images, got shape {x.shape}")
    flat = _as_float(x).reshape(len(x), -1)
    if not 1 <= components <= min(flat.shape):
        raise ValueError(
            f"components must be in 1..{min(flat.shape)}, got {components}"
        )
    centred = flat - flat.mean(axis=0)
    # The eigenvectors of the covariance matrix (H*W, H*W) are the principal directions; for
    # many more images than pixels this is much cheaper than an SVD of the data itself.
    variance, vectors = np.linalg.eigh(centred.T @ centred / (len(flat) - 1))
    variance, vectors = variance[::-1].clip(min=0), vectors[:, ::-1]  # largest first
    directions = vectors[:, :components].T
    signs = np.sign(
        directions[np.arange(components), np.abs(directions).argmax(axis=1)]
    )
    directions = directions * signs[:, None]
    return centred @ directions.T, directions, variance[:components] / variance.sum()


def distance_to_class_mean(
    x: np.ndarray, y: np.ndarray, num_classes: int = 10
) -> np.ndarray:
    """Euclidean distance (pixels in [0, 1]) of every image to the mean image of its class, (N,)."""
    x, y = _check_pair(x, y)
    means = class_mean_images(x, y, num_classes).astype(np.float32)
    # float32 is plenty for a ranking and halves the memory of the (N, H, W) difference.
    diff = _as_float(x, np.float32) - means[y]
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


# --- plots ---------------------------------------------------------------------------------------


def plot_class_grid(
    x: np.ndarray, y: np.ndarray, per_class: int = 10, num_classes: int = 10
) -> Figure:
    """One row per class with its first `per_class` images, the label at the left; returns the figure."""
    x, y = _check_pair(x, y)
    counts = class_counts(y, num_classes)
    if per_class < 1 or per_class > counts.min():
        raise ValueError(
            f"per_class must be in 1..{counts.min()} (the smallest class), got {per_class}"
        )
    fig, axes = plt.subplots(
        num_classes,
        per_class,
        figsize=(0.8 * per_class, 0.8 * num_classes),
        squeeze=False,
    )
    for c in range(num_classes):
        for ax, i in zip(axes[c], np.flatnonzero(y == c)[:per_class]):
            ax.imshow(x[i], cmap="gray_r")
            ax.set_xticks([])
            ax.set_yticks([])
        axes[c, 0].set_ylabel(str(c), rotation=0, labelpad=10, fontsize=12, va="center")
    fig.subplots_adjust(wspace=0.05, hspace=0.05)
    return fig


def plot_surface(image: np.ndarray, title: str | None = None) -> Figure:
    """The image as a 3-D surface (height = pixel value) beside a heat map; returns the figure."""
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"image must be 2-D (H, W), got shape {image.shape}")
    fig = plt.figure(figsize=(10, 4))
    ax3d = fig.add_subplot(1, 2, 1, projection="3d")
    rows, cols = np.indices(image.shape)
    ax3d.plot_surface(cols, rows, image, cmap="viridis", linewidth=0)
    ax3d.set_xlabel("column")
    ax3d.set_ylabel("row")
    ax3d.set_zlabel("value")
    ax3d.invert_yaxis()  # row 0 at the back, as in the picture
    ax = fig.add_subplot(1, 2, 2)
    shown = ax.imshow(image, cmap="viridis")
    fig.colorbar(shown, ax=ax, fraction=0.046)
    ax.set_title("heat map")
    if title:
        fig.suptitle(title)
    return fig


def plot_class_counts(counts: dict[str, np.ndarray]) -> Figure:
    """Grouped bars of class counts, one group per class and one bar per split; returns the figure."""
    if not counts:
        raise ValueError(
            "give at least one split, e.g. {'train': class_counts(y_train)}"
        )
    lengths = {len(v) for v in counts.values()}
    if len(lengths) != 1:
        raise ValueError(
            f"every split needs the same number of classes, got lengths {sorted(lengths)}"
        )
    n = lengths.pop()
    fig, ax = plt.subplots(figsize=(8, 3))
    width = 0.8 / len(counts)
    for i, (name, values) in enumerate(counts.items()):
        ax.bar(
            np.arange(n) + (i - (len(counts) - 1) / 2) * width,
            values,
            width,
            label=name,
        )
    ax.set_xticks(range(n))
    ax.set_xlabel("class")
    ax.set_ylabel("images")
    ax.legend()
    return fig


def plot_pixel_histogram(value_counts: np.ndarray) -> Figure:
    """Bar chart of how often each pixel value 0..255 occurs, on a log scale; returns the figure."""
    value_counts = np.asarray(value_counts)
    if value_counts.shape != (256,):
        raise ValueError(
            f"expected counts of the 256 pixel values, got shape {value_counts.shape}"
        )
    fig, ax = plt.subplots(figsize=(8, 3))
    ax.bar(np.arange(256), value_counts, width=1.0)
    ax.set_yscale("log")
    ax.set_xlabel("pixel value")
    ax.set_ylabel("number of pixels (log scale)")
    return fig


def plot_pca(
    coords: np.ndarray, y: np.ndarray, ratio: np.ndarray | None = None
) -> Figure:
    """Scatter of 2-D PCA coordinates coloured by class, with each class's centre labelled."""
    coords, y = np.asarray(coords), np.asarray(y)
    if coords.ndim != 2 or coords.shape[1] < 2 or len(coords) != len(y):
        raise ValueError(
            f"need coordinates (N, 2) and N labels, got {coords.shape} and {y.shape}"
        )
    fig, ax = plt.subplots(figsize=(6, 5))
    cmap = plt.get_cmap("tab10")
    ax.scatter(
        coords[:, 0], coords[:, 1], c=y, cmap=cmap, vmin=-0.5, vmax=9.5, s=2, alpha=0.5
    )
    for c in np.unique(y):
        cx, cy = coords[y == c, :2].mean(axis=0)
        ax.text(
            cx,
            cy,
            str(c),
            fontsize=14,
            weight="bold",
            ha="center",
            va="center",
            color=cmap(int(c)),
            bbox={"facecolor": "white", "alpha": 0.7, "linewidth": 0},
        )
    label = "PC {} ({:.0%} of the variance)" if ratio is not None else "PC {}"
    ax.set_xlabel(label.format(1, *([ratio[0]] if ratio is not None else [])))
    ax.set_ylabel(label.format(2, *([ratio[1]] if ratio is not None else [])))
    return fig
