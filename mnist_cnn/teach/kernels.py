"""Hand-made filters (the classic image-processing kernels), applied to grey images."""

from __future__ import annotations

import numpy as np
from matplotlib import cbook
from numpy.typing import ArrayLike
from PIL import Image

from ..pixels import to_grey, to_unit_float
from .ops import conv2d

_BINOMIAL = np.array([1.0, 4.0, 6.0, 4.0, 1.0])

# Every kernel is used as a cross-correlation (no flip), like a conv layer: Sobel x is
# positive where the image gets brighter to the right, Sobel y where it gets brighter
# downwards.
KERNELS: dict[str, np.ndarray] = {
    "identity": np.array([[0, 0, 0], [0, 1, 0], [0, 0, 0]], np.float32),
    "box blur": np.full((3, 3), 1 / 9, np.float32),
    # A 5x5 binomial filter: the integer approximation of a Gaussian with sigma = 1.
    "Gaussian blur": (np.outer(_BINOMIAL, _BINOMIAL) / 256).astype(np.float32),
    "sharpen": np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], np.float32),
    "Sobel x": np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], np.float32),
    "Sobel y": np.array([[-1, -2, -1], [0, 0, 0], [1, 2, 1]], np.float32),
    "Laplacian": np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], np.float32),
    "emboss": np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]], np.float32),
}


# The gallery's Gaussian is 5x5, too big to compare with 3x3 learned filters; this is
# its 3x3 counterpart (binomial weights 1-2-1), so the comparison bank holds two blurs.
SMALL_KERNELS: dict[str, np.ndarray] = {
    "Gaussian blur 3x3": (np.outer([1.0, 2.0, 1.0], [1.0, 2.0, 1.0]) / 16).astype(
        np.float32
    ),
}


def get_kernel(name: str) -> np.ndarray:
    """A copy of the named kernel (see `KERNELS` and `SMALL_KERNELS` for the names)."""
    known = {**KERNELS, **SMALL_KERNELS}
    if name not in known:
        raise ValueError(f"unknown kernel {name!r}; choose one of {sorted(known)}")
    return known[name].copy()


def comparison_bank(side: int = 3) -> dict[str, np.ndarray]:
    """Every hand-made kernel of size (side, side): the bank learned filters are
    compared with (for 3x3: seven of the gallery's kernels plus a 3x3 Gaussian blur)."""
    return {
        name: k.copy()
        for name, k in {**KERNELS, **SMALL_KERNELS}.items()
        if k.shape == (side, side)
    }


def apply_kernel(image: ArrayLike, kernel: ArrayLike) -> np.ndarray:
    """Cross-correlate a grey image (H, W) with an odd-sized kernel; zero 'same' padding
    keeps (H, W).
    """
    image = np.asarray(image, dtype=np.float32)
    kernel = np.asarray(kernel, dtype=np.float32)
    if image.ndim != 2:
        raise ValueError(
            "apply_kernel needs a grey image of shape (H, W), got shape "
            f"{image.shape}; "
            "convert colour images with mnist_cnn.pixels.to_grey() first"
        )
    if (
        kernel.ndim != 2
        or kernel.shape[0] != kernel.shape[1]
        or kernel.shape[0] % 2 == 0
    ):
        raise ValueError(
            "the kernel must be square with an odd side (3x3, 5x5, ...) so that it "
            "has a "
            f"centre pixel, got shape {kernel.shape}"
        )
    if not (np.all(np.isfinite(image)) and np.all(np.isfinite(kernel))):
        raise ValueError(
            "the image and the kernel must not contain NaN or infinite values"
        )
    # Padding k // 2 on every side makes the output as large as the input for stride 1.
    return np.asarray(
        conv2d(image, kernel, padding=kernel.shape[0] // 2), dtype=np.float32
    )


def sample_photo(width: int = 128) -> np.ndarray:
    """Matplotlib's bundled photograph of Grace Hopper, grey in [0, 1], `width` pixels
    wide.

    No download: the photograph ships with matplotlib.
    """
    if width < 8:
        raise ValueError(f"width must be at least 8 pixels, got {width}")
    with cbook.get_sample_data("grace_hopper.jpg") as f, Image.open(f) as im:
        height = round(im.height * width / im.width)
        small = im.convert("RGB").resize((width, height), Image.LANCZOS)
        return to_grey(to_unit_float(np.asarray(small)))


def kernel_similarity(
    learned: ArrayLike,
    bank: dict[str, np.ndarray] | None = None,
    remove_mean: bool = False,
) -> tuple[np.ndarray, list[str]]:
    """|cosine similarity| between each learned filter (kh, kw, F) and each kernel of
    `bank` of the same size (default: `comparison_bank`).

    Returns a (F, K) matrix and the K kernel names. The absolute value counts a
    sign-flipped kernel (a light-to-dark edge instead of dark-to-light) as a match. The
    weights are compared as they are: a blur (all weights positive) then stays a blur.
    `remove_mean=True` compares patterns only, but it turns every constant kernel (the
    box blur) into zeros, which then match nothing.
    """
    learned = np.asarray(learned, dtype=np.float64)
    if learned.ndim == 4 and learned.shape[2] == 1:
        learned = learned[:, :, 0, :]  # HWIO with one input channel -> (kh, kw, F)
    if learned.ndim != 3 or learned.shape[0] != learned.shape[1]:
        raise ValueError(
            "learned filters must have shape (k, k, F) or (k, k, 1, F), got "
            f"{learned.shape}"
        )
    bank = comparison_bank(learned.shape[0]) if bank is None else bank
    names = [
        name for name, k in bank.items() if np.asarray(k).shape == learned.shape[:2]
    ]
    if not names:
        raise ValueError(
            f"no kernel in the bank has the learned filters' size {learned.shape[:2]}"
        )

    def unit(v: np.ndarray) -> np.ndarray:  # (9, N) columns scaled to length 1
        if remove_mean:
            v = v - v.mean(axis=0, keepdims=True)
        norm = np.linalg.norm(v, axis=0, keepdims=True)
        return v / np.where(norm == 0, 1.0, norm)  # an all-zero column stays zero

    f = unit(learned.reshape(-1, learned.shape[-1]))  # (9, F)
    k = unit(
        np.stack([np.asarray(bank[n], np.float64).ravel() for n in names], axis=1)
    )  # (9, K)
    return np.abs(f.T @ k), names
