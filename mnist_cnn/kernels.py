"""Hand-made filters (the classic image-processing kernels) and a way to apply them to a grey image."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from .ops import conv2d

_BINOMIAL = np.array([1.0, 4.0, 6.0, 4.0, 1.0])

# Every kernel is used as a cross-correlation (no flip), like a conv layer: Sobel x is positive
# where the image gets brighter to the right, Sobel y where it gets brighter downwards.
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


def get_kernel(name: str) -> np.ndarray:
    """A copy of the named kernel (see `KERNELS` for the names)."""
    if name not in KERNELS:
        raise ValueError(f"unknown kernel {name!r}; choose one of {sorted(KERNELS)}")
    return KERNELS[name].copy()


def apply_kernel(image: ArrayLike, kernel: ArrayLike) -> np.ndarray:
    """Cross-correlate a grey image (H, W) with an odd-sized kernel; zero 'same' padding keeps (H, W)."""
    image = np.asarray(image, dtype=np.float32)
    kernel = np.asarray(kernel, dtype=np.float32)
    if image.ndim != 2:
        raise ValueError(
            f"apply_kernel needs a grey image of shape (H, W), got shape {image.shape}; "
            "convert colour images with to_grey() first"
        )
    if (
        kernel.ndim != 2
        or kernel.shape[0] != kernel.shape[1]
        or kernel.shape[0] % 2 == 0
    ):
        raise ValueError(
            f"the kernel must be square with an odd side (3x3, 5x5, ...) so that it has a "
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


def to_grey(image: ArrayLike) -> np.ndarray:
    """An RGB(A) or grey image as float grey levels in [0, 1] (ITU-R 601 luma weights)."""
    image = np.asarray(image)
    scale = 255.0 if image.dtype == np.uint8 else 1.0
    image = image.astype(np.float32) / scale
    if image.ndim == 3 and image.shape[-1] in (3, 4):
        image = image[..., :3] @ np.array([0.299, 0.587, 0.114], np.float32)
    if image.ndim != 2:
        raise ValueError(
            f"expected an image of shape (H, W) or (H, W, 3|4), got {image.shape}"
        )
    return image


def sample_photo(width: int = 128) -> np.ndarray:
    """Matplotlib's bundled photograph of Grace Hopper, grey, resized to `width` pixels wide (no download)."""
    from matplotlib import cbook
    from PIL import Image

    if width < 8:
        raise ValueError(f"width must be at least 8 pixels, got {width}")
    with cbook.get_sample_data("grace_hopper.jpg") as f, Image.open(f) as im:
        height = round(im.height * width / im.width)
        small = im.convert("RGB").resize((width, height), Image.LANCZOS)
        return to_grey(np.asarray(small))


def kernel_similarity(
    learned: ArrayLike, bank: dict[str, np.ndarray] | None = None
) -> tuple[np.ndarray, list[str]]:
    """|cosine similarity| between each learned 3x3 filter (3, 3, F) and each 3x3 kernel of `bank`.

    Returns a (F, K) matrix and the K kernel names. The mean of every filter is removed first,
    so a filter is compared by its pattern, not by its overall brightness; the absolute value
    counts a sign-flipped edge detector (dark-to-light instead of light-to-dark) as a match.
    """
    learned = np.asarray(learned, dtype=np.float64)
    if learned.ndim == 4 and learned.shape[2] == 1:
        learned = learned[:, :, 0, :]  # HWIO with one input channel -> (kh, kw, F)
    if learned.ndim != 3:
        raise ValueError(
            f"learned filters must have shape (kh, kw, F) or (kh, kw, 1, F), got {learned.shape}"
        )
    bank = (
        bank
        if bank is not None
        else {k: v for k, v in KERNELS.items() if v.shape == learned.shape[:2]}
    )
    names = [
        name for name, k in bank.items() if np.asarray(k).shape == learned.shape[:2]
    ]
    if not names:
        raise ValueError(
            f"no kernel in the bank has the learned filters' size {learned.shape[:2]}"
        )

    def unit(v: np.ndarray) -> np.ndarray:
        v = v - v.mean(axis=0, keepdims=True)
        norm = np.linalg.norm(v, axis=0, keepdims=True)
        return v / np.where(
            norm == 0, 1.0, norm
        )  # a constant kernel (box blur) becomes all zeros

    f = unit(learned.reshape(-1, learned.shape[-1]))  # (9, F)
    k = unit(
        np.stack([np.asarray(bank[n], np.float64).ravel() for n in names], axis=1)
    )  # (9, K)
    return np.abs(f.T @ k), names
