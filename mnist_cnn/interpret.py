"""Evaluating a trained CNN and looking inside it: confusions, mistakes, saliency, occlusion, robustness.

Images are what `load_data()` returns, uint8 (N, 28, 28), or floats in [0, 1]; labels are (N,)
integers; `probs` are the (N, 10) class probabilities of `probabilities()`. The `plot_*` helpers
draw the results and return the matplotlib figure; image grids and filter banks come from
`mnist_cnn.viz`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
from flax import nnx
from matplotlib.figure import Figure
from numpy.typing import ArrayLike

from .model import CNN
from .predict import predict
from .train import History, evaluate
from .viz import show_images


def _as_unit(x) -> np.ndarray:
    """uint8 0..255 -> float32 in [0, 1]; floats are kept (assumed in [0, 1])."""
    x = np.asarray(x)
    return x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)


def _check_images(x, name: str = "images") -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 3 or x.shape[1:] != (28, 28):
        raise ValueError(
            f"{name} must have shape (N, 28, 28), got {x.shape}; "
            "add a batch axis with x[None] for a single image"
        )
    return x


def _check_labels(y, n: int) -> np.ndarray:
    y = np.asarray(y)
    if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(
            f"labels must be {n} integers (one per image), got shape {y.shape}, "
            f"dtype {y.dtype}"
        )
    if n and (y.min() < 0 or y.max() > 9):
        raise ValueError(
            f"labels must be digits 0..9, got values in {y.min()}..{y.max()}"
        )
    return y


# --- scores --------------------------------------------------------------------------------------


def probabilities(model: CNN, x: ArrayLike, batch_size: int = 1000) -> np.ndarray:
    """Class probabilities (N, 10) for images (N, 28, 28), computed in batches to bound memory."""
    x = _check_images(x)
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    return np.concatenate(
        [predict(model, x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
    )


def confusion_matrix(
    y_true: ArrayLike, y_pred: ArrayLike, num_classes: int = 10
) -> np.ndarray:
    """Counts (num_classes, num_classes): row = true class, column = predicted class."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(
            f"y_true and y_pred must be 1-D and of equal length, got shapes "
            f"{y_true.shape} and {y_pred.shape}"
        )
    for name, v in (("y_true", y_true), ("y_pred", y_pred)):
        if not np.issubdtype(v.dtype, np.integer) or (
            len(v) and (v.min() < 0 or v.max() >= num_classes)
        ):
            raise ValueError(f"{name} must hold integers in 0..{num_classes - 1}")
    # Each (true, pred) pair becomes one index into the flattened matrix.
    flat = np.bincount(y_true * num_classes + y_pred, minlength=num_classes**2)
    return flat.reshape(num_classes, num_classes)


def per_class_accuracy(matrix: np.ndarray) -> np.ndarray:
    """Fraction of each true class classified correctly (the recall), from a confusion matrix."""
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(
            f"expected a square confusion matrix, got shape {matrix.shape}"
        )
    totals = matrix.sum(axis=1)
    if np.any(totals == 0):
        raise ValueError(
            f"classes {np.flatnonzero(totals == 0).tolist()} have no examples"
        )
    return np.diag(matrix) / totals


def most_confused_pairs(matrix: np.ndarray, k: int = 5) -> list[tuple[int, int, int]]:
    """The `k` largest off-diagonal cells as (true class, predicted class, count), largest first."""
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(
            f"expected a square confusion matrix, got shape {matrix.shape}"
        )
    true, pred = np.nonzero(~np.eye(len(matrix), dtype=bool))
    counts = matrix[true, pred]
    # Largest count first; ties in (true, pred) order so the list is reproducible.
    order = np.lexsort((pred, true, -counts))[:k]
    return [(int(true[i]), int(pred[i]), int(counts[i])) for i in order]


def mistakes(y_true: ArrayLike, probs: np.ndarray) -> np.ndarray:
    """Indices of the misclassified images, in file order."""
    probs = np.asarray(probs)
    y_true = _check_labels(y_true, len(probs))
    return np.flatnonzero(probs.argmax(axis=1) != y_true)


def most_confident_mistakes(
    y_true: ArrayLike, probs: np.ndarray, k: int = 10
) -> np.ndarray:
    """Indices of the `k` mistakes the model was surest of (highest probability on its wrong answer)."""
    wrong = mistakes(y_true, probs)
    confidence = np.asarray(probs)[wrong].max(axis=1)
    return wrong[np.argsort(-confidence, kind="stable")[:k]]


# --- looking inside ------------------------------------------------------------------------------


@nnx.jit
def _input_gradient(model: CNN, x: jax.Array, labels: jax.Array) -> jax.Array:
    def score(x: jax.Array) -> jax.Array:
        # Images do not interact in the model, so the gradient of the sum is each image's own.
        logits = model(x)
        return jnp.take_along_axis(logits, labels[:, None], axis=1).sum()

    return jax.grad(score)(x)


def saliency(model: CNN, x: ArrayLike, labels: ArrayLike) -> np.ndarray:
    """Gradient of each image's class score (logit of `labels`) w.r.t. its pixels, (N, 28, 28).

    Pixels are in [0, 1], so a value g means: brightening that pixel by a small d changes the
    score by about g * d. Plot its absolute value to see which pixels matter.
    """
    x = _check_images(x)
    labels = _check_labels(labels, len(x))
    model.eval()
    return np.asarray(
        _input_gradient(model, jnp.asarray(_as_unit(x)), jnp.asarray(labels, jnp.int32))
    )


def occlude(
    image: ArrayLike, top: int, left: int, patch: int, value: float = 0.0
) -> np.ndarray:
    """A float copy of `image` (28, 28) with a `patch` x `patch` square at (top, left) set to `value`."""
    out = _as_unit(image).copy()
    if out.ndim != 2:
        raise ValueError(f"image must be 2-D (28, 28), got shape {out.shape}")
    out[top : top + patch, left : left + patch] = value
    return out


def occlusion_map(
    model: CNN,
    image: ArrayLike,
    label: int,
    patch: int = 6,
    stride: int = 2,
    value: float = 0.0,
) -> np.ndarray:
    """Probability of `label` with a grey square slid over the image, (n, n) for n patch positions.

    Cell (i, j) has the square's top-left corner at (i * stride, j * stride); low values mark the
    parts of the digit the model needs.
    """
    image = np.asarray(image)
    if image.shape != (28, 28):
        raise ValueError(f"image must have shape (28, 28), got {image.shape}")
    if not 1 <= patch <= 28 or stride < 1:
        raise ValueError(
            f"need 1 <= patch <= 28 and stride >= 1, got patch={patch}, stride={stride}"
        )
    if not 0 <= value <= 1:
        raise ValueError(f"value is a pixel intensity in [0, 1], got {value}")
    starts = range(0, 28 - patch + 1, stride)
    batch = np.stack(
        [occlude(image, t, l, patch, value) for t in starts for l in starts]
    )
    probs = probabilities(model, batch)[:, int(label)]
    return probs.reshape(len(starts), len(starts))


def shift_images(x: ArrayLike, dy: float, dx: float) -> np.ndarray:
    """Images moved down by `dy` and right by `dx` pixels (bilinear, zero fill); dtype is kept."""
    from scipy import ndimage

    x = _check_images(x)
    moved = ndimage.shift(_as_unit(x), (0, dy, dx), order=1, mode="constant", cval=0.0)
    return _like(moved, x)


def rotate_images(x: ArrayLike, degrees: float) -> np.ndarray:
    """Images rotated anticlockwise by `degrees` about their centre (bilinear, zero fill); dtype kept."""
    from scipy import ndimage

    x = _check_images(x)
    # axes=(2, 1): from the column axis towards the row axis, which is anticlockwise on screen
    # because rows grow downwards.
    turned = ndimage.rotate(
        _as_unit(x),
        degrees,
        axes=(2, 1),
        reshape=False,
        order=1,
        mode="constant",
        cval=0.0,
    )
    return _like(turned, x)


def _like(values: np.ndarray, original: np.ndarray) -> np.ndarray:
    """Float [0, 1] results back in the dtype of the input images."""
    values = np.clip(values, 0.0, 1.0)
    if original.dtype == np.uint8:
        return np.rint(values * 255).astype(np.uint8)
    return values.astype(original.dtype)


def accuracy_under(
    model: CNN,
    x: ArrayLike,
    y: ArrayLike,
    transform: Callable[[np.ndarray, float], np.ndarray],
    amounts: Sequence[float],
) -> np.ndarray:
    """Test accuracy after `transform(x, amount)` for each amount, e.g. rotate_images and degrees."""
    x = _check_images(x)
    y = _check_labels(y, len(x))
    return np.array([evaluate(model, transform(x, a), y) for a in amounts])


def feature_maps(model: CNN, image: ArrayLike) -> dict[str, np.ndarray]:
    """Every intermediate array of the model for one image (28, 28), batch axis removed."""
    image = np.asarray(image)
    if image.shape != (28, 28):
        raise ValueError(f"image must have shape (28, 28), got {image.shape}")
    model.eval()
    features = _features(model, jnp.asarray(_as_unit(image))[None])
    # Forward order, as the model builds the dict (a jit output's dict comes back sorted by key).
    names = _feature_names(model)
    return {name: np.asarray(features[name][0]) for name in names}


@nnx.jit
def _features(model: CNN, x: jax.Array) -> dict[str, jax.Array]:
    return model(x, return_features=True)[1]


def _feature_names(model: CNN) -> list[str]:
    """The feature names in forward order, from the model's own structure."""
    names = ["input"]
    for i in range(1, len(model.convs) + 1):
        names += [f"conv{i}", f"act{i}", f"pool{i}"]
    names.append("flatten")
    names += [f"dense{i}" for i in range(1, len(model.dense) + 1)]
    return names + ["logits"]


# --- plots ---------------------------------------------------------------------------------------


def plot_learning_curves(history: History) -> Figure:
    """Training loss, and train vs test accuracy, per epoch; returns the figure."""
    if not history.epoch:
        raise ValueError("the history is empty: train for at least one epoch")
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3))
    left.plot(history.epoch, history.loss, "o-")
    left.set_xlabel("epoch")
    left.set_ylabel("mean training loss")
    left.set_xticks(history.epoch)
    right.plot(
        history.epoch, history.train_accuracy, "o-", label="train (during the epoch)"
    )
    right.plot(
        history.epoch,
        history.test_accuracy,
        "s-",
        label=f"{history.evaluated_on} (after it)",
    )
    right.set_xlabel("epoch")
    right.set_ylabel("accuracy")
    right.set_xticks(history.epoch)
    right.legend()
    fig.tight_layout()
    return fig


def plot_confusion_matrix(matrix: np.ndarray) -> Figure:
    """The confusion matrix with its counts written in; colour on a log scale so rare errors show."""
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(
            f"expected a square confusion matrix, got shape {matrix.shape}"
        )
    n = len(matrix)
    fig, ax = plt.subplots(figsize=(6, 5.5))
    ax.imshow(np.log1p(matrix), cmap="Blues")
    high = np.log1p(matrix.max())
    for (r, c), v in np.ndenumerate(matrix):
        ax.text(
            c,
            r,
            str(v),
            ha="center",
            va="center",
            fontsize=8,
            color="white" if np.log1p(v) > high / 2 else "black",
        )
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    return fig


def plot_gallery(
    images: ArrayLike, y_true: ArrayLike, probs: np.ndarray, ncols: int = 8
) -> Figure:
    """Digits titled 'true -> predicted (probability)'; returns the figure."""
    images = _check_images(images)
    probs = np.asarray(probs)
    y_true = _check_labels(y_true, len(images))
    if probs.shape != (len(images), 10):
        raise ValueError(
            f"probs must have shape ({len(images)}, 10), got {probs.shape}"
        )
    pred = probs.argmax(axis=1)
    titles = [
        f"{t}→{p} ({probs[i, p]:.2f})" for i, (t, p) in enumerate(zip(y_true, pred))
    ]
    return show_images(images, titles, ncols=ncols, size=1.2, cmap="gray_r")


def plot_saliency(
    images: ArrayLike, maps: np.ndarray, titles: list[str] | None = None
) -> Figure:
    """Each digit above the absolute value of its saliency map; returns the figure."""
    images = _check_images(images)
    maps = np.asarray(maps)
    if maps.shape != images.shape:
        raise ValueError(
            f"need one map per image: images {images.shape}, maps {maps.shape}"
        )
    n = len(images)
    fig, axes = plt.subplots(2, n, figsize=(1.6 * n, 3.4), squeeze=False)
    for i in range(n):
        axes[0, i].imshow(images[i], cmap="gray_r")
        axes[1, i].imshow(np.abs(maps[i]), cmap="hot")
        if titles is not None:
            axes[0, i].set_title(titles[i], fontsize=9)
        for ax in axes[:, i]:
            ax.axis("off")
    axes[1, 0].set_title("|gradient|", fontsize=9, loc="left")
    fig.tight_layout()
    return fig


def plot_occlusion(
    image: ArrayLike,
    grid: np.ndarray,
    patch: int,
    stride: int,
    title: str | None = None,
) -> Figure:
    """The digit beside its occlusion map, placed so each cell sits at its square's centre."""
    image, grid = np.asarray(image), np.asarray(grid)
    if image.ndim != 2 or grid.ndim != 2 or grid.shape[0] != grid.shape[1]:
        raise ValueError(
            f"need a 2-D image and a square occlusion grid, got {image.shape} and {grid.shape}"
        )
    n = grid.shape[0]
    # Cell i covers the patch centred at i * stride + (patch - 1) / 2, one stride wide.
    low = (patch - 1) / 2 - stride / 2
    extent = (low, low + n * stride, low + n * stride, low)
    fig, (left, right) = plt.subplots(1, 2, figsize=(5.5, 2.8))
    left.imshow(image, cmap="gray_r")
    left.set_title(title or "digit", fontsize=9)
    shown = right.imshow(grid, cmap="RdYlGn", vmin=0, vmax=1, extent=extent)
    right.set_xlim(-0.5, 27.5)
    right.set_ylim(27.5, -0.5)
    right.set_title(f"probability, {patch}×{patch} square", fontsize=9)
    fig.colorbar(shown, ax=right, fraction=0.046)
    for ax in (left, right):
        ax.axis("off")
    fig.tight_layout()
    return fig


def plot_feature_maps(
    features: dict[str, np.ndarray],
    layers: Sequence[str] | None = None,
    max_channels: int = 8,
) -> Figure:
    """One row per layer: the first `max_channels` channels of spatial maps, vectors as a strip."""
    layers = list(layers) if layers is not None else list(features)
    unknown = [name for name in layers if name not in features]
    if unknown:
        raise ValueError(f"no features called {unknown}; available: {list(features)}")
    fig = plt.figure(
        figsize=(1.1 * max_channels, 1.25 * len(layers)), layout="constrained"
    )
    grid = fig.add_gridspec(len(layers), max_channels)
    for r, name in enumerate(layers):
        a = features[name]
        if a.ndim == 3:  # (H, W, C): one small image per channel
            for c in range(min(max_channels, a.shape[-1])):
                ax = fig.add_subplot(grid[r, c])
                ax.imshow(a[..., c], cmap="viridis")
                ax.axis("off")
                if c == 0:
                    ax.set_title(
                        f"{name} {a.shape[0]}×{a.shape[1]}×{a.shape[2]}",
                        fontsize=8,
                        loc="left",
                    )
        else:  # a vector: drawn as one strip across the row
            ax = fig.add_subplot(grid[r, :])
            ax.imshow(
                a.reshape(1, -1), aspect="auto", cmap="viridis", interpolation="nearest"
            )
            ax.set_yticks([])
            if a.size <= 10:  # few values (the logits): label each one
                ax.set_xticks(range(a.size))
            ax.tick_params(labelsize=6)
            ax.set_title(f"{name} ({a.size} values)", fontsize=8, loc="left")
    return fig
