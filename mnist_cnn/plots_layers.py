"""Figures of the layer chapters (activations, gradient flow, learning curves, features, softmax)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from numpy.typing import ArrayLike

from . import inspect as measure


def plot_activations(names: Sequence[str], x: ArrayLike | None = None) -> Figure:
    """Each activation (left) and its derivative from `jax.grad` (right), on a shared grid."""
    x = np.linspace(-6, 6, 481) if x is None else np.asarray(x)
    if not names:
        raise ValueError("give at least one activation name")
    fig, (ax_f, ax_d) = plt.subplots(1, 2, figsize=(9, 3.4))
    for name in names:
        y, dy = measure.activation_and_derivative(name, x)
        ax_f.plot(x, y, label=name)
        ax_d.plot(x, dy, label=name)
    ax_f.set_title("activation f(x)")
    ax_d.set_title("derivative f'(x), by jax.grad")
    for ax in (ax_f, ax_d):
        ax.axhline(0, color="grey", lw=0.5)
        ax.axvline(0, color="grey", lw=0.5)
        ax.set_xlabel("x")
        ax.grid(alpha=0.3)
    ax_d.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return fig


def plot_gradient_norms(
    norms: Mapping[str, Sequence[float] | Mapping[str, float]],
    title: str = "",
    xlabel: str = "layer (input side first)",
) -> Figure:
    """One line per run of gradient norm against layer, on a log scale.

    `norms` maps a run's label to a sequence of norms (layers 1..L) or to a {layer: norm} dict.
    """
    if not norms:
        raise ValueError("give at least one run of gradient norms")
    fig, ax = plt.subplots(figsize=(6, 3.4))
    for label, values in norms.items():
        if isinstance(values, Mapping):
            ticks, values = list(values), list(values.values())
            ax.plot(range(len(values)), values, "o-", label=label)
            ax.set_xticks(range(len(values)), ticks)
        else:
            ax.plot(np.arange(1, len(values) + 1), values, "o-", ms=3, label=label)
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("gradient norm")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_learning_curves(
    curves: Mapping[str, Mapping[str, np.ndarray]], window: int = 20
) -> Figure:
    """Training loss (moving average over `window` steps) and test accuracy against step, one line per run."""
    if not curves:
        raise ValueError("give at least one learning curve")
    fig, (ax_l, ax_a) = plt.subplots(1, 2, figsize=(9, 3.4))
    for label, c in curves.items():
        ax_l.plot(c["step"], measure.smooth(c["loss"], window), label=label)
        ax_a.plot(c["eval_step"], c["eval_accuracy"], "o-", ms=3, label=label)
    ax_l.set_title(f"training loss ({window}-step moving average)")
    ax_a.set_title("test accuracy (held-out digits)")
    for ax in (ax_l, ax_a):
        ax.set_xlabel("training step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_projection(
    points: ArrayLike, labels: ArrayLike, title: str = "", ax: Axes | None = None
) -> Figure:
    """A 2-D scatter of points (N, 2) coloured by digit class, one legend entry per class."""
    points, labels = np.asarray(points), np.asarray(labels)
    if points.ndim != 2 or points.shape[1] != 2 or len(points) != len(labels):
        raise ValueError(
            f"need points (N, 2) and N labels, got {points.shape} and {labels.shape}"
        )
    if ax is None:
        fig, ax = plt.subplots(figsize=(4.6, 4.2))
    else:
        fig = ax.figure
    cmap = plt.get_cmap("tab10")
    for digit in np.unique(labels):
        sel = labels == digit
        ax.scatter(
            points[sel, 0],
            points[sel, 1],
            s=4,
            alpha=0.6,
            color=cmap(int(digit) % 10),
            label=str(digit),
        )
    ax.set_title(title)
    ax.set_xlabel("principal axis 1")
    ax.set_ylabel("principal axis 2")
    ax.legend(markerscale=3, fontsize=7, ncol=2, loc="best")
    return fig


def plot_temperature(logits: ArrayLike, temperatures: Sequence[float]) -> Figure:
    """Bar charts of softmax(logits / T), one panel per temperature T."""
    logits = np.asarray(logits)
    if logits.ndim != 1 or not temperatures:
        raise ValueError(
            f"need one vector of logits and at least one temperature, got {logits.shape}"
        )
    fig, axes = plt.subplots(
        1, len(temperatures), figsize=(2.3 * len(temperatures), 2.6), sharey=True
    )
    for ax, t in zip(np.atleast_1d(axes), temperatures):
        ax.bar(
            np.arange(len(logits)), np.asarray(measure.softmax(logits, temperature=t))
        )
        ax.set_title(f"T = {t:g}")
        ax.set_xticks(np.arange(len(logits)))
        ax.set_ylim(0, 1)
        ax.set_xlabel("class")
    np.atleast_1d(axes)[0].set_ylabel("probability")
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- pooling and kernels

WINDOW_COLORS = (
    "#e41a1c",
    "#377eb8",
    "#4daf4a",
    "#ff7f00",
    "#984ea3",
    "#a65628",
    "#f781bf",
    "#999999",
)


def plot_pool_windows(x: ArrayLike, size: int = 2, kind: str = "max") -> Figure:
    """The input with each non-overlapping pooling window outlined in its own colour, the winning
    cell (max) filled, and the pooled output with each cell in its window's colour."""
    from . import ops, viz

    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or kind not in ("max", "avg"):
        raise ValueError(
            f"need a 2-D input and kind 'max' or 'avg', got shape {x.shape} and {kind!r}"
        )
    out = (ops.max_pool2d if kind == "max" else ops.avg_pool2d)(x, size)
    h, w = out.shape
    if h * w > len(WINDOW_COLORS):
        raise ValueError(
            f"{h * w} windows but only {len(WINDOW_COLORS)} colours: use a smaller input"
        )
    fig, (ax_in, ax_out) = plt.subplots(
        1,
        2,
        figsize=(0.5 * x.shape[1] + 0.5 * w + 1.2, 0.5 * x.shape[0] + 0.5),
        gridspec_kw={"width_ratios": [x.shape[1], w]},
    )
    viz.draw_matrix(
        ax_in,
        x,
        cmap="Greys",
        vmin=x.min(),
        vmax=x.max() * 3,
        fontsize=11,
        title="input",
    )
    viz.draw_matrix(
        ax_out, out, cmap="Greys", vmin=x.min(), vmax=x.max() * 3, fontsize=11
    )
    ax_out.set_title(f"{kind} pooling\n{size}×{size}, stride {size}", fontsize=11)
    for (r, c), color in zip(np.ndindex(h, w), WINDOW_COLORS):
        top, left = r * size, c * size
        ax_in.add_patch(
            plt.Rectangle(
                (left - 0.45, top - 0.45),
                size - 0.1,
                size - 0.1,
                fill=False,
                edgecolor=color,
                linewidth=3,
            )
        )
        if kind == "max":
            win = x[top : top + size, left : left + size]
            wr, wc = np.unravel_index(np.argmax(win), win.shape)
            ax_in.add_patch(
                plt.Rectangle(
                    (left + wc - 0.5, top + wr - 0.5), 1, 1, color=color, alpha=0.35
                )
            )
        ax_out.add_patch(
            plt.Rectangle((c - 0.5, r - 0.5), 1, 1, color=color, alpha=0.35)
        )
    fig.tight_layout()
    return fig


def plot_kernel_gallery(
    images: Mapping[str, np.ndarray], names: Sequence[str]
) -> Figure:
    """Top row: each named kernel with its numbers; below, one row per image filtered by each kernel."""
    from . import kernels, viz

    if not images or not names:
        raise ValueError("give at least one image and one kernel name")
    fig, axes = plt.subplots(
        1 + len(images),
        len(names),
        figsize=(1.45 * len(names), 1.45 * (1 + len(images)) + 0.2),
        squeeze=False,
    )
    for j, name in enumerate(names):
        k = kernels.get_kernel(name)
        viz.draw_matrix(
            axes[0, j],
            k,
            cmap="RdBu_r",
            vmin=-np.abs(k).max(),
            vmax=np.abs(k).max(),
            fontsize=7 if k.shape[0] == 3 else 4,
        )
        axes[0, j].set_title(name, fontsize=8)
        for i, (label, image) in enumerate(images.items(), start=1):
            out = kernels.apply_kernel(image, k)
            axes[i, j].imshow(out, cmap="gray")
            axes[i, j].set_xticks([])
            axes[i, j].set_yticks([])
            if j == 0:
                axes[i, j].set_ylabel(label, fontsize=8)
    fig.tight_layout()
    return fig


def plot_filter_matches(learned: ArrayLike, image: ArrayLike, top: int = 4) -> Figure:
    """The `top` learned 3x3 filters most similar to a hand-made kernel: for each, the learned
    filter, its response to `image`, the matching hand-made kernel and that kernel's response."""
    from . import kernels

    learned = np.asarray(learned)
    learned = learned[:, :, 0, :] if learned.ndim == 4 else learned
    sim, names = kernels.kernel_similarity(learned)
    order = np.argsort(-sim.max(axis=1))[:top]
    fig, axes = plt.subplots(
        len(order), 4, figsize=(6.4, 1.6 * len(order)), squeeze=False
    )
    for row, f in zip(axes, order):
        best = names[int(np.argmax(sim[f]))]
        hand = kernels.get_kernel(best)
        for ax, arr, title, cmap in [
            (row[0], learned[:, :, f], f"learned filter {f}", "RdBu_r"),
            (
                row[1],
                kernels.apply_kernel(image, learned[:, :, f]),
                "its response",
                "gray",
            ),
            (row[2], hand, f"{best} (|cos| {sim[f].max():.2f})", "RdBu_r"),
            (row[3], kernels.apply_kernel(image, hand), "its response", "gray"),
        ]:
            bound = np.abs(arr).max() or 1.0
            ax.imshow(
                arr,
                cmap=cmap,
                **({"vmin": -bound, "vmax": bound} if cmap == "RdBu_r" else {}),
            )
            ax.set_title(title, fontsize=8)
            ax.axis("off")
    fig.tight_layout()
    return fig
