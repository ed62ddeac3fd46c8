"""Preprocessing the input: mean subtraction, standardisation, the one PCA, whitening
(PCA, ZCA).

Every transform follows the same rule: `fit` measures its statistics on the TRAINING
images only, and `transform` applies those same numbers to any images (training,
validation or test). Fitting on the test set would leak information about it into the
model.

Images are (N, H, W) or (N, H, W, 1), uint8 in [0, 255] or float; they are flattened to
(N, D) vectors of floats in [0, 1] (uint8 is divided by 255) before any statistic is
taken.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import jax.numpy as jnp
import numpy as np
from numpy.typing import ArrayLike

from ..config import Config
from ..model import init_model
from ..pixels import to_unit_float
from ..train import epoch_lengths, evaluate, training_steps


def as_vectors(images: ArrayLike) -> np.ndarray:
    """(N, H, W[, 1]) images -> float64 (N, H*W) rows; uint8 pixels are scaled to [0,
    1].
    """
    x = np.asarray(images)
    if x.ndim == 4 and x.shape[-1] == 1:
        x = x[..., 0]
    if x.ndim != 3 or len(x) == 0:
        raise ValueError(
            "images must have shape (N, H, W) or (N, H, W, 1) with N >= 1; got "
            f"{x.shape}"
        )
    return _unit_rows(x)


def _unit_rows(x: np.ndarray) -> np.ndarray:
    """(N, ...) -> float64 rows (N, D); uint8 pixels become [0, 1], floats keep
    precision.
    """
    x = x.reshape(len(x), -1)
    return (to_unit_float(x) if x.dtype == np.uint8 else x).astype(np.float64)


def mean_image(images: ArrayLike) -> np.ndarray:
    """The average image (H, W): pixel by pixel mean over the set."""
    x = np.asarray(images)
    return as_vectors(x).mean(axis=0).reshape(x.shape[1:3])


def principal_components(
    vectors: ArrayLike,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The one PCA of the book: (mean (D,), variances (D,), directions (D, D)) of rows
    (N, D).

    Directions are the eigenvectors of the covariance matrix, one per row, largest
    variance first. An eigenvector's sign is arbitrary, so each direction is flipped to
    make its largest-magnitude entry positive: pictures do not flip between runs or
    machines.
    """
    x = np.asarray(vectors, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"PCA needs rows (N, D) with N >= 2, got shape {x.shape}")
    mean = x.mean(axis=0)
    centred = x - mean
    # The eigenvectors of the (D, D) covariance: for many more rows than columns this is
    # much cheaper than an SVD of the data itself.
    variances, vectors = np.linalg.eigh(centred.T @ centred / len(x))  # ascending
    variances = variances[::-1].clip(min=0.0)  # round-off can give tiny negatives
    directions = vectors[:, ::-1].T
    largest = np.abs(directions).argmax(axis=1)
    directions = (
        directions * np.sign(directions[np.arange(len(directions)), largest])[:, None]
    )
    return mean, variances, directions


def pca(x: ArrayLike, components: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Principal component analysis of images (N, H, W) or feature vectors (N, D).

    uint8 images are scaled to [0, 1] first. Returns (coordinates (N, components),
    directions (components, D), explained variance ratio (components,)).
    """
    x = np.asarray(x)
    if x.ndim < 2 or len(x) < 2:
        raise ValueError(f"PCA needs at least 2 rows or images, got shape {x.shape}")
    flat = _unit_rows(x)
    if not 1 <= components <= min(flat.shape):
        raise ValueError(
            f"components must be in 1..{min(flat.shape)}, got {components}"
        )
    mean, variances, directions = principal_components(flat)
    directions = directions[:components]
    coords = (flat - mean) @ directions.T
    return coords, directions, variances[:components] / variances.sum()


class _Fitted(ABC):
    """fit on training data, transform anything; transforming before fitting is a clear
    error.
    """

    _fitted = False
    shape: tuple[int, int] = (0, 0)

    def fit(self, images: ArrayLike) -> _Fitted:
        """Measure the statistics on these (training) images; returns self."""
        x = as_vectors(images)
        self.shape = tuple(np.asarray(images).shape[1:3])
        self._fit(x)
        self._fitted = True
        return self

    def transform(self, images: ArrayLike) -> np.ndarray:
        """Apply the training statistics to `images`: float32 (N, H, W) like them."""
        if not self._fitted:
            raise ValueError(
                f"{type(self).__name__} is not fitted: call .fit(x_train) first "
                "(on the training images only)"
            )
        x = as_vectors(images)
        if x.shape[1] != self.shape[0] * self.shape[1]:
            raise ValueError(
                f"fitted on {self.shape} images, got images of shape "
                f"{np.shape(images)[1:]}"
            )
        return self._transform(x).reshape(len(x), *self.shape).astype(np.float32)

    def fit_transform(self, images: ArrayLike) -> np.ndarray:
        """`fit(images)` then `transform(images)`: only ever call this on the training
        set.
        """
        return self.fit(images).transform(images)

    @abstractmethod
    def _fit(self, x: np.ndarray) -> None:
        """Measure statistics on flat training vectors (N, D)."""

    def _transform(self, x: np.ndarray) -> np.ndarray:
        """Apply the statistics to flat vectors (N, D); subclasses that reshape override
        `transform`.
        """
        return x


class MeanSubtraction(_Fitted):
    """x - mean: the mean image (per_pixel=True) or one mean pixel value, from the
    training set.
    """

    def __init__(self, per_pixel: bool = True):
        self.per_pixel = per_pixel

    def _fit(self, x: np.ndarray) -> None:
        self.mean = x.mean(axis=0) if self.per_pixel else np.full(x.shape[1], x.mean())

    def _transform(self, x: np.ndarray) -> np.ndarray:
        return x - self.mean


class Standardisation(_Fitted):
    """(x - mean) / std with training-set statistics (标准化): one mean and std for all
    pixels, or per pixel.

    This is standardisation (mean 0, variance 1), not normalisation (归一化, scaling to
    a range such as dividing 0-255 pixels by 255), although the two names are often
    mixed up.

    Per pixel, the always-black border pixels have std 0; `epsilon` keeps them from
    dividing by zero.
    """

    def __init__(self, per_pixel: bool = False, epsilon: float = 1e-2):
        if epsilon <= 0:
            raise ValueError(f"epsilon must be positive, got {epsilon}")
        self.per_pixel, self.epsilon = per_pixel, epsilon

    def _fit(self, x: np.ndarray) -> None:
        if self.per_pixel:
            self.mean, self.std = x.mean(axis=0), x.std(axis=0) + self.epsilon
        else:
            self.mean, self.std = (
                np.full(x.shape[1], x.mean()),
                np.full(x.shape[1], x.std()),
            )

    def _transform(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean) / self.std


# The name this class had before; it is kept so older code still runs.
Normalisation = Standardisation


class PCA(_Fitted):
    """Principal components of the training images: the eigenvectors of their covariance
    matrix.

    After `fit`: `components` (D, D), one eigen-digit per row, largest variance first;
    `variances` (D,) their eigenvalues; `explained_variance_ratio` (D,) the share of
    each. `transform` keeps the first `n_components` coordinates (all by default) and
    `reconstruct` maps coordinates back to images.
    """

    def __init__(self, n_components: int | None = None):
        if n_components is not None and n_components < 1:
            raise ValueError(
                f"n_components must be positive or None, got {n_components}"
            )
        self.n_components = n_components

    def _fit(self, x: np.ndarray) -> None:
        if self.n_components is not None and self.n_components > x.shape[1]:
            raise ValueError(
                f"n_components={self.n_components} exceeds the {x.shape[1]} pixels"
            )
        self.mean, self.variances, self.components = principal_components(x)
        self.explained_variance_ratio = self.variances / self.variances.sum()

    def transform(self, images: ArrayLike) -> np.ndarray:
        """PCA coordinates (N, k) of the images: projections on the first k eigen-
        digits.
        """
        if not self._fitted:
            raise ValueError(
                "PCA is not fitted: call .fit(x_train) first (on the training images "
                "only)"
            )
        k = self.n_components or len(self.components)
        return ((as_vectors(images) - self.mean) @ self.components[:k].T).astype(
            np.float32
        )

    def reconstruct(self, coords: ArrayLike) -> np.ndarray:
        """Images (N, H, W) rebuilt from PCA coordinates (N, k): mean + sum of weighted
        eigen-digits.
        """
        coords = np.asarray(coords, dtype=np.float64)
        k = coords.shape[1]
        return (self.mean + coords @ self.components[:k]).reshape(
            len(coords), *self.shape
        )

    def eigen_digits(self, k: int = 16) -> np.ndarray:
        """The first k principal directions as images (k, H, W)."""
        return self.components[:k].reshape(k, *self.shape)


class Whitening(_Fitted):
    """PCA or ZCA whitening: decorrelate the pixels and give every direction unit
    variance.

    PCA whitening: z = U^T (x - mean) / sqrt(lambda + epsilon), coordinates in the
    eigen-digit basis (no longer an image). ZCA whitening rotates back, z_zca = U z_pca,
    which keeps the result as close as possible to the original image (Kessy et al.,
    2018). `epsilon` stops the tiny variances (noise directions) from being blown up;
    the matrix `W` is (D, D) in both cases.
    """

    def __init__(self, method: str = "zca", epsilon: float = 0.1):
        if method not in ("pca", "zca"):
            raise ValueError(f"method must be 'pca' or 'zca', got {method!r}")
        if epsilon < 0:
            raise ValueError(f"epsilon must be >= 0, got {epsilon}")
        self.method, self.epsilon = method, epsilon

    @classmethod
    def from_pca(cls, pca: PCA, method: str = "zca", epsilon: float = 0.1) -> Whitening:
        """A whitening built from an already fitted PCA (same training statistics, no
        refit).
        """
        if not pca._fitted:
            raise ValueError("the PCA is not fitted: call pca.fit(x_train) first")
        white = cls(method, epsilon)
        white.shape = pca.shape
        white._from_pca(pca)
        white._fitted = True
        return white

    def _fit(self, x: np.ndarray) -> None:
        pca = PCA()
        pca._fit(x)
        self._from_pca(pca)

    def _from_pca(self, pca: PCA) -> None:
        if self.epsilon == 0 and pca.variances.min() <= 1e-12:
            raise ValueError(
                "some pixel directions have zero variance (e.g. MNIST's empty border): "
                "use epsilon > 0"
            )
        self.mean = pca.mean
        scale = 1.0 / np.sqrt(pca.variances + self.epsilon)  # (D,)
        # Rows of W map a centred image to whitened values: z = (x - mean) @ W.T
        pca_w = scale[:, None] * pca.components  # (D, D) = diag(scale) U^T
        self.W = pca.components.T @ pca_w if self.method == "zca" else pca_w

    def _transform(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean) @ self.W.T


def covariance(images_or_vectors: ArrayLike) -> np.ndarray:
    """The covariance matrix (D, D) of images (N, H, W) or of flat vectors (N, D)."""
    x = np.asarray(images_or_vectors, dtype=np.float64)
    x = x.reshape(len(x), -1)
    centred = x - x.mean(axis=0)
    return centred.T @ centred / len(x)


def train_on_preprocessed(
    x_train: ArrayLike,
    y_train: ArrayLike,
    x_eval: ArrayLike,
    y_eval: ArrayLike,
    config: Config,
    log_every: int = 20,
) -> dict[str, np.ndarray | float]:
    """Train a fresh CNN on images that are ALREADY preprocessed, without the model's
    own scaling, and measure its accuracy on the held-out (x_eval, y_eval).

    `mnist_cnn.fit` always standardises its input; here the model's mean/std are set to
    0/1 so the network sees exactly the given arrays, which is what a preprocessing
    comparison needs. To choose between variants, pass a validation split held out from
    the training images, not the test set. Returns {"steps", "loss" (mean loss over
    each `log_every` steps), "accuracy" (on the held-out images)}.
    """
    x = np.asarray(x_train, dtype=np.float32)
    if x.ndim != 3 or len(x) != len(y_train):
        raise ValueError(
            f"x_train must be (N, 28, 28) floats with one label each; got {x.shape} "
            f"and {len(y_train)} labels"
        )
    steps = sum(epoch_lengths(config, len(x))) if len(x) >= config.batch_size else 0
    if steps < log_every:
        raise ValueError(
            f"only {steps} steps: use more images, more epochs or a smaller batch_size"
        )
    x_dev, y_dev = jnp.asarray(x[..., None]), jnp.asarray(y_train, jnp.int32)
    # The initial weights `fit` would draw for this seed; the images are already
    # preprocessed, so the model's own input scaling is switched off.
    model = init_model(config, x_dev)
    model.set_input_stats(0.0, 1.0)
    # The same steps, seed and batch order as `fit`: only the input scaling differs.
    losses = [loss for _, _, loss, _ in training_steps(model, config, x_dev, y_dev)]
    losses = np.asarray(jnp.stack(losses))
    usable = len(losses) // log_every * log_every
    return {
        "steps": np.arange(1, usable // log_every + 1) * log_every,
        "loss": losses[:usable].reshape(-1, log_every).mean(axis=1),
        "accuracy": evaluate(model, np.asarray(x_eval, np.float32), np.asarray(y_eval)),
    }
