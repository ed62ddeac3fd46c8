"""Every static figure of the book, drawn in one style that stays legible in the book.

The book shows a figure scaled into its content column (COLUMN_PX CSS pixels wide). A
figure wider than that is shrunk, and its text with it: every function here sizes its
text with `legible_size`, so no label ends up smaller than MIN_TEXT_PX once displayed,
and draws inside `plt.rc_context(STYLE)`. Each function returns the matplotlib figure.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import ParamSpec, TypeVar

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from numpy.typing import ArrayLike

from ..train import History
from . import kernels, ops
from .activations import activation_and_derivative
from .dataset import check_pair, class_counts
from .evaluation import check_images, check_labels
from .internals import StepCurves, smooth
from .ops import IntOrPair
from .softmax import softmax

# --- one style ------------------------------------------------------------------------

COLUMN_PX = 720  # width of the book's content column, in CSS px
MIN_TEXT_PX = 8  # the smallest text a reader should meet there, in CSS px
BASE_FONT_SIZE = 10.0  # points
FIGURE_DPI = 100  # what the notebooks render figures at
COLUMN_INCHES = COLUMN_PX / FIGURE_DPI  # a figure this wide is shown at its own size
STYLE = {
    "font.size": BASE_FONT_SIZE,
    "axes.titlesize": BASE_FONT_SIZE + 1,
    "axes.labelsize": BASE_FONT_SIZE,
    "xtick.labelsize": BASE_FONT_SIZE - 1,
    "ytick.labelsize": BASE_FONT_SIZE - 1,
    "legend.fontsize": BASE_FONT_SIZE - 1,
    "figure.titlesize": BASE_FONT_SIZE + 2,
    "figure.dpi": FIGURE_DPI,
}


def displayed_px(fontsize: float, width_in: float, dpi: float = FIGURE_DPI) -> float:
    """How many CSS px tall text of `fontsize` points shows in the book's column.

    The figure is `width_in` inches wide. It is rendered at `dpi` (width_in * dpi
    pixels) and scaled down to the column when it is wider.
    """
    return fontsize * dpi / 72 * min(1.0, COLUMN_PX / (width_in * dpi))


def legible_size(fontsize: float, width_in: float, dpi: float = FIGURE_DPI) -> float:
    """`fontsize`, raised to the next half point that a figure `width_in` wide shows
    at MIN_TEXT_PX or more.
    """
    needed = MIN_TEXT_PX / displayed_px(1.0, width_in, dpi)
    return max(float(fontsize), math.ceil(needed * 2) / 2)


P = ParamSpec("P")
R = TypeVar("R")


def styled(draw: Callable[P, R]) -> Callable[P, R]:
    """Run a figure function inside the book's style (`STYLE`)."""

    @functools.wraps(draw)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with plt.rc_context(STYLE):
            return draw(*args, **kwargs)

    return wrapper


def _fig_width(fig: Figure) -> float:
    return float(fig.get_size_inches()[0])


# --- images and matrices ------------------------------------------------------------

# Zero-padding cells are grey, so they never look like part of the image.
PAD_COLOR = "#d9d9d9"
WINDOW_COLOR = "#d62728"
OUTPUT_COLOR = "#2ca02c"


def number_format(values: ArrayLike) -> Callable[[float], str]:
    """A formatter that prints integers without decimals and other numbers with two."""
    values = np.asarray(values, dtype=np.float64)
    if np.all(np.isfinite(values)) and np.allclose(values, np.round(values)):
        return lambda v: f"{v:.0f}" if round(v) != 0 else "0"  # never print "-0"
    return lambda v: f"{v:.2f}"


@styled
def show_images(
    images: ArrayLike,
    titles: Sequence[str] | None = None,
    ncols: int = 8,
    size: float = 1.2,
    cmap: str = "gray",
    vmin: float | None = None,
    vmax: float | None = None,
    suptitle: str | None = None,
) -> Figure:
    """A grid of images (N, H, W) with optional titles; axes are hidden."""
    images = np.asarray(images)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim != 3 or len(images) == 0:
        raise ValueError(
            f"images must have shape (N, H, W) with N >= 1, got {images.shape}"
        )
    if titles is not None and len(titles) != len(images):
        raise ValueError(
            f"got {len(titles)} titles for {len(images)} images; give one per image"
        )
    ncols = max(1, min(ncols, len(images)))
    nrows = -(-len(images) // ncols)
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(size * ncols, size * nrows + (0.3 if suptitle else 0)),
        squeeze=False,
    )
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < len(images):
            ax.imshow(images[i], cmap=cmap, vmin=vmin, vmax=vmax)
            if titles is not None:
                ax.set_title(titles[i], fontsize=legible_size(8, _fig_width(fig)))
    if suptitle:
        fig.suptitle(suptitle, fontsize=legible_size(10, _fig_width(fig)))
    fig.tight_layout()
    return fig


def draw_matrix(
    ax: Axes,
    m: ArrayLike,
    fmt: Callable[[float], str] | None = None,
    cmap: str = "Blues",
    padding: IntOrPair = 0,
    highlight: tuple[int, int, int, int] | None = None,
    title: str | None = None,
    fontsize: float = 8,
    vmin: float | None = None,
    vmax: float | None = None,
    numbers: bool = True,
) -> list:
    """Draw a 2-D array cell by cell with its numbers; padding rings grey; a red window.

    `highlight` is (top, left, height, width) in cells. Returns the text objects,
    row-major. `fontsize` is raised if the figure is too wide for it to stay legible.
    """
    m = np.asarray(m, dtype=np.float64)
    if m.ndim != 2:
        raise ValueError(f"draw_matrix draws a 2-D array, got shape {m.shape}")
    fmt = fmt or number_format(m)
    ph, pw = ops.pair(padding, "padding", 0)
    fontsize = legible_size(fontsize, _fig_width(ax.figure), ax.figure.dpi)
    h, w = m.shape
    lo = np.min(m) if vmin is None else vmin
    hi = np.max(m) if vmax is None else vmax
    ax.imshow(
        m,
        cmap=cmap,
        vmin=lo - 0.25 * (hi - lo + 1e-9),
        vmax=hi + 0.6 * (hi - lo + 1e-9),
    )
    for r in range(h):
        for c in range(w):
            if r < ph or r >= h - ph or c < pw or c >= w - pw:
                ax.add_patch(
                    Rectangle(
                        (c - 0.5, r - 0.5), 1, 1, facecolor=PAD_COLOR, linewidth=0
                    )
                )
    texts = [
        [
            ax.text(
                c,
                r,
                fmt(m[r, c]) if numbers else "",
                ha="center",
                va="center",
                fontsize=fontsize,
            )
            for c in range(w)
        ]
        for r in range(h)
    ]
    ax.set_xticks(np.arange(-0.5, w, 1), minor=True)
    ax.set_yticks(np.arange(-0.5, h, 1), minor=True)
    ax.grid(which="minor", color="white", linewidth=1)
    ax.tick_params(which="both", length=0, labelbottom=False, labelleft=False)
    for spine in ax.spines.values():
        spine.set_visible(False)
    if highlight is not None:
        top, left, hh, ww = highlight
        ax.add_patch(
            Rectangle(
                (left - 0.5, top - 0.5),
                ww,
                hh,
                fill=False,
                edgecolor=WINDOW_COLOR,
                linewidth=2.5,
            )
        )
    if title:
        ax.set_title(title, fontsize=fontsize + 1)
    return [t for row in texts for t in row]


@styled
def show_matrix(
    m: ArrayLike, title: str | None = None, cell: float = 0.35, **kwargs
) -> Figure:
    """A figure with one matrix drawn with its numbers (keyword arguments go to
    `draw_matrix`).
    """
    m = np.asarray(m)
    fig, ax = plt.subplots(
        figsize=(cell * m.shape[1] + 0.2, cell * m.shape[0] + (0.4 if title else 0.2))
    )
    draw_matrix(ax, m, title=title, **kwargs)
    fig.tight_layout()
    return fig


@styled
def show_filters(
    kernel: ArrayLike,
    in_channel: int = 0,
    ncols: int = 8,
    size: float = 0.9,
    numbers: bool = False,
    title: str | None = None,
) -> Figure:
    """A filter bank: kernel (kh, kw, C_in, C_out) drawn one filter per panel (one input
    channel).

    Colours are symmetric around zero (red positive, blue negative) so signs are
    comparable.
    """
    kernel = np.asarray(kernel)
    if kernel.ndim == 2:
        kernel = kernel[:, :, None, None]
    if kernel.ndim != 4 or not 0 <= in_channel < kernel.shape[2]:
        raise ValueError(
            f"kernel must be (kh, kw, C_in, C_out) and in_channel < C_in; "
            f"got shape {kernel.shape} and in_channel={in_channel}"
        )
    filters = kernel[:, :, in_channel, :]
    bound = float(np.max(np.abs(filters))) or 1.0
    n = filters.shape[-1]
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(size * ncols, size * nrows + (0.3 if title else 0)),
        squeeze=False,
    )
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(filters[:, :, i], cmap="RdBu_r", vmin=-bound, vmax=bound)
            ax.set_title(f"filter {i}", fontsize=legible_size(7, _fig_width(fig)))
            if numbers:
                fmt = number_format(filters[:, :, i])
                for (r, c), v in np.ndenumerate(filters[:, :, i]):
                    ax.text(
                        c,
                        r,
                        fmt(v),
                        ha="center",
                        va="center",
                        fontsize=legible_size(6, _fig_width(fig)),
                    )
    if title:
        fig.suptitle(title, fontsize=legible_size(10, _fig_width(fig)))
    fig.tight_layout()
    return fig


@styled
def show_feature_maps(
    maps: ArrayLike,
    ncols: int = 8,
    size: float = 1.0,
    title: str | None = None,
    cmap: str = "viridis",
) -> Figure:
    """Every channel of a feature map (H, W, C) or (1, H, W, C) as a small image."""
    maps = np.asarray(maps)
    if maps.ndim == 4 and maps.shape[0] == 1:
        maps = maps[0]
    if maps.ndim != 3:
        raise ValueError(
            f"maps must have shape (H, W, C) or (1, H, W, C), got {maps.shape}"
        )
    return show_images(
        np.moveaxis(maps, -1, 0),
        [f"channel {i}" for i in range(maps.shape[-1])],
        ncols=ncols,
        size=size,
        cmap=cmap,
        suptitle=title,
    )


# --- the architecture -----------------------------------------------------------------

_KIND_COLORS = {
    "input": "#7f7f7f",
    "conv": "#1f77b4",
    "norm": "#17becf",
    "act": "#ff7f0e",
    "pool": "#2ca02c",
    "flatten": "#9467bd",
    "dense": "#d62728",
    "logits": "#000000",
}
_KIND_NAMES = {
    "input": "INPUT",
    "conv": "CONV",
    "norm": "BATCH NORM",
    "act": "RELU",
    "pool": "POOL",
    "flatten": "FLATTEN",
    "dense": "FC",
    "logits": "FC (logits)",
}


@styled
def draw_architecture(
    shapes: dict[str, tuple[int, ...]], activation: str = "relu", per_row: int = 5
) -> Figure:
    """The layers of a CNN as boxes sized by their output shapes (from `layer_shapes`).

    Feature maps (1, H, W, C) are drawn as stacks whose height follows H and depth
    follows C; vectors (1, D) as bars whose height follows log D. Each box is labelled
    with its kind, its name and its shape; the layers wrap after `per_row` boxes so that
    the labels stay readable in the book's column.
    """
    if not shapes:
        raise ValueError("shapes is empty: pass mnist_cnn.layer_shapes(model)")
    if per_row < 1:
        raise ValueError(f"per_row must be at least 1, got {per_row}")
    names = list(shapes)
    per_row = min(per_row, len(names))
    rows = -(-len(names) // per_row)
    pitch = 4.9  # vertical distance between two rows, in data units
    fig, ax = plt.subplots(figsize=(COLUMN_INCHES, 2.9 * rows))
    fontsize = legible_size(BASE_FONT_SIZE - 1, COLUMN_INCHES)
    for i, name in enumerate(names):
        row, col = divmod(i, per_row)
        x, y = float(col), -pitch * row
        shape = shapes[name][1:]  # drop the batch axis
        kind = re.sub(r"\d+$", "", name)
        color = _KIND_COLORS.get(kind, "#8c564b")
        label = activation.upper() if kind == "act" else _KIND_NAMES.get(kind, kind)
        if len(shape) == 3:
            h, _, c = shape
            height = 0.6 + 2.0 * h / 28
            # Depth, drawn as stacked sheets: one more sheet per doubling of the
            # channels.
            layers = min(6, max(1, int(np.ceil(np.log2(c + 1)))))
            for k in range(layers):
                ax.add_patch(
                    Rectangle(
                        (x + 0.06 * k, y + 0.06 * k - height / 2),
                        0.45,
                        height,
                        facecolor=color,
                        edgecolor="white",
                        alpha=0.85,
                    )
                )
            text = "×".join(str(v) for v in shape)
        else:
            height = 0.4 + 0.3 * np.log2(shape[0])
            ax.add_patch(
                Rectangle(
                    (x + 0.12, y - height / 2),
                    0.25,
                    height,
                    facecolor=color,
                    edgecolor="white",
                    alpha=0.85,
                )
            )
            text = str(shape[0])
        ax.text(
            x + 0.3,
            y - 1.9,
            f"{label}\n{name}\n{text}",
            ha="center",
            va="top",
            fontsize=fontsize,
            linespacing=1.3,
        )
        if i < len(names) - 1:  # an arrow to the next layer, or off to the next row
            ax.annotate(
                "",
                (x + 0.95, y),
                (x + 0.7, y),
                arrowprops={"arrowstyle": "->", "color": "0.3"},
            )
        if col == 0 and row > 0:  # ... and in from the previous row
            ax.annotate(
                "",
                (-0.02, y),
                (-0.3, y),
                arrowprops={"arrowstyle": "->", "color": "0.3"},
            )
    ax.set_xlim(-0.35, per_row)
    ax.set_ylim(-pitch * (rows - 1) - 3.2, 1.9)
    ax.axis("off")
    fig.tight_layout()
    return fig


# --- layers: activations, gradients, learning curves, projections, softmax ------------


@styled
def plot_activations(names: Sequence[str], x: ArrayLike | None = None) -> Figure:
    """Each activation (left) and its derivative from `jax.grad` (right), on a shared
    grid.
    """
    x = np.linspace(-6, 6, 481) if x is None else np.asarray(x)
    if not names:
        raise ValueError("give at least one activation name")
    fig, (ax_f, ax_d) = plt.subplots(1, 2, figsize=(9, 3.4))
    for name in names:
        y, dy = activation_and_derivative(name, x)
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


@styled
def plot_gradient_norms(
    norms: Mapping[str, Sequence[float] | Mapping[str, float]],
    title: str = "",
    xlabel: str = "layer (input side first)",
) -> Figure:
    """One line per run of gradient norm against layer, on a log scale.

    `norms` maps a run's label to a sequence of norms (layers 1..L) or to a {layer:
    norm} dict.
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


@styled
def plot_step_curves(curves: Mapping[str, StepCurves], window: int = 20) -> Figure:
    """Per-step training loss (moving average) and held-out accuracy, one line per run.

    `curves` maps a run's label to what `internals.learning_curve` returned; the loss is
    averaged over the last `window` steps.
    """
    if not curves:
        raise ValueError("give at least one learning curve")
    fig, (ax_l, ax_a) = plt.subplots(1, 2, figsize=(9, 3.4))
    for label, c in curves.items():
        ax_l.plot(c.step, smooth(c.loss, window), label=label)
        ax_a.plot(c.eval_step, c.eval_accuracy, "o-", ms=3, label=label)
    ax_l.set_title(f"training loss ({window}-step moving average)")
    ax_a.set_title("test accuracy (held-out digits)")
    for ax in (ax_l, ax_a):
        ax.set_xlabel("training step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


@styled
def plot_projection(
    points: ArrayLike, labels: ArrayLike, title: str = "", ax: Axes | None = None
) -> Figure:
    """A 2-D scatter of points (N, 2) coloured by digit class, one legend entry per
    class.
    """
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
    ax.legend(
        markerscale=3,
        fontsize=legible_size(7, _fig_width(fig), fig.dpi),
        ncol=2,
        loc="best",
    )
    return fig


@styled
def plot_temperature(logits: ArrayLike, temperatures: Sequence[float]) -> Figure:
    """Bar charts of softmax(logits / T), one panel per temperature T."""
    logits = np.asarray(logits)
    if logits.ndim != 1 or not temperatures:
        raise ValueError(
            "need one vector of logits and at least one temperature, got "
            f"{logits.shape}"
        )
    fig, axes = plt.subplots(
        1, len(temperatures), figsize=(2.3 * len(temperatures), 2.6), sharey=True
    )
    fontsize = legible_size(BASE_FONT_SIZE - 1, _fig_width(fig))
    for ax, t in zip(np.atleast_1d(axes), temperatures):
        ax.bar(np.arange(len(logits)), np.asarray(softmax(logits, temperature=t)))
        ax.set_title(f"T = {t:g}", fontsize=fontsize + 1)
        ax.set_xticks(np.arange(len(logits)))
        ax.tick_params(labelsize=fontsize)
        ax.set_ylim(0, 1)
        ax.set_xlabel("class", fontsize=fontsize)
    np.atleast_1d(axes)[0].set_ylabel("probability", fontsize=fontsize)
    fig.tight_layout()
    return fig


# --- pooling and kernels --------------------------------------------------------------

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


@styled
def plot_pool_windows(x: ArrayLike, size: int = 2, kind: str = "max") -> Figure:
    """The input with each non-overlapping pooling window outlined in its own colour,
    the winning cell (max) filled, and the pooled output with each cell in its window's
    colour."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or kind not in ("max", "avg"):
        raise ValueError(
            f"need a 2-D input and kind 'max' or 'avg', got shape {x.shape} and "
            f"{kind!r}"
        )
    out = (ops.max_pool2d if kind == "max" else ops.avg_pool2d)(x, size)
    h, w = out.shape
    if h * w > len(WINDOW_COLORS):
        raise ValueError(
            f"{h * w} windows but only {len(WINDOW_COLORS)} colours: use a smaller "
            "input"
        )
    fig, (ax_in, ax_out) = plt.subplots(
        1,
        2,
        figsize=(0.5 * x.shape[1] + 0.5 * w + 1.2, 0.5 * x.shape[0] + 0.5),
        gridspec_kw={"width_ratios": [x.shape[1], w]},
    )
    draw_matrix(
        ax_in,
        x,
        cmap="Greys",
        vmin=x.min(),
        vmax=x.max() * 3,
        fontsize=11,
        title="input",
    )
    draw_matrix(ax_out, out, cmap="Greys", vmin=x.min(), vmax=x.max() * 3, fontsize=11)
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


def _integer_scale(kernel: np.ndarray) -> int:
    """The smallest of 1, 9, 16, 256 that turns the kernel into integers (1 if none
    does).
    """
    for scale in (1, 9, 16, 256):
        if np.allclose(kernel * scale, np.round(kernel * scale), atol=1e-4):
            return scale
    return 1


@styled
def plot_kernel_gallery(
    images: Mapping[str, np.ndarray], names: Sequence[str], ncols: int = 4
) -> Figure:
    """Each named kernel with its numbers, above the images it filters, `ncols` kernels
    to a row of blocks.

    A kernel of fractions (the blurs) is printed as integers with its common factor in
    the title, e.g. "box blur (×1/9)", so that its numbers stay large enough to read.
    """
    if not images or not names:
        raise ValueError("give at least one image and one kernel name")
    if ncols < 1:
        raise ValueError(f"ncols must be at least 1, got {ncols}")
    ncols = min(ncols, len(names))
    blocks = -(-len(names) // ncols)
    per_block = 1 + len(images)  # the kernel, then one row per image
    panel = COLUMN_INCHES / ncols
    fig, axes = plt.subplots(
        blocks * per_block,
        ncols,
        figsize=(COLUMN_INCHES, panel * per_block * blocks),
        squeeze=False,
    )
    fontsize = legible_size(BASE_FONT_SIZE - 1, COLUMN_INCHES)
    for ax in axes.flat:
        ax.axis("off")
    for j, name in enumerate(names):
        block, col = divmod(j, ncols)
        top = block * per_block
        k = kernels.get_kernel(name)
        scale = _integer_scale(k)
        bound = float(np.abs(k * scale).max()) or 1.0
        axes[top, col].axis("on")
        draw_matrix(axes[top, col], k * scale, cmap="RdBu_r", vmin=-bound, vmax=bound)
        axes[top, col].set_title(
            name if scale == 1 else f"{name} (×1/{scale})", fontsize=fontsize
        )
        for i, (label, image) in enumerate(images.items(), start=1):
            ax = axes[top + i, col]
            ax.axis("on")
            ax.imshow(kernels.apply_kernel(image, k), cmap="gray")
            ax.set_xticks([])
            ax.set_yticks([])
            if col == 0:
                ax.set_ylabel(label, fontsize=fontsize)
    fig.tight_layout()
    return fig


@styled
def plot_filter_matches(learned: ArrayLike, image: ArrayLike, top: int = 4) -> Figure:
    """The `top` learned 3x3 filters most similar to a hand-made kernel: for each, the
    learned filter, its response to `image`, the matching hand-made kernel and that
    kernel's response."""
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


# --- the MNIST data -------------------------------------------------------------------


@styled
def plot_class_grid(
    x: np.ndarray, y: np.ndarray, per_class: int = 10, num_classes: int = 10
) -> Figure:
    """One row per class with its first `per_class` images, the label at the left;
    returns the figure.
    """
    x, y = check_pair(x, y)
    counts = class_counts(y, num_classes)
    if per_class < 1 or per_class > counts.min():
        raise ValueError(
            f"per_class must be in 1..{counts.min()} (the smallest class), got "
            f"{per_class}"
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


@styled
def plot_surface(image: np.ndarray, title: str | None = None) -> Figure:
    """The image as a 3-D surface (height = pixel value) beside a heat map; returns the
    figure.
    """
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


@styled
def plot_class_counts(counts: dict[str, np.ndarray]) -> Figure:
    """Grouped bars of class counts, one group per class and one bar per split; returns
    the figure.
    """
    if not counts:
        raise ValueError(
            "give at least one split, e.g. {'train': class_counts(y_train)}"
        )
    lengths = {len(v) for v in counts.values()}
    if len(lengths) != 1:
        raise ValueError(
            "every split needs the same number of classes, got lengths "
            f"{sorted(lengths)}"
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


@styled
def plot_pixel_histogram(value_counts: np.ndarray) -> Figure:
    """Bar chart of how often each pixel value 0..255 occurs, on a log scale; returns
    the figure.
    """
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


@styled
def plot_pca(
    coords: np.ndarray, y: np.ndarray, ratio: np.ndarray | None = None
) -> Figure:
    """Scatter of 2-D PCA coordinates coloured by class, with each class's centre
    labelled.
    """
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


# --- a trained model ------------------------------------------------------------------


@styled
def plot_history(history: History, window: int = 50) -> Figure:
    """Training loss and accuracy on training and held-out images, from `fit`'s history.

    With per-step losses (`fit` records them) the loss is a `window`-step moving average
    against the training step, and the accuracies are marked at the step that ends each
    epoch; without them, one point per epoch.
    """
    if not history.epoch:
        raise ValueError("the history is empty: train for at least one epoch")
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3))
    if history.step_loss:
        steps = np.arange(1, len(history.step_loss) + 1)
        left.plot(steps, smooth(history.step_loss, window))
        left.set_xlabel("training step")
        left.set_ylabel(f"training loss ({window}-step mean)")
        x, where = history.steps, "training step"
    else:
        left.plot(history.epoch, history.loss, "o-")
        left.set_xlabel("epoch")
        left.set_ylabel("mean training loss")
        left.set_xticks(history.epoch)
        x, where = history.epoch, "epoch"
    right.plot(x, history.train_accuracy, "o-", label="train (during the epoch)")
    right.plot(
        x, history.eval_accuracy, "s-", label=f"{history.evaluated_on} (after it)"
    )
    right.set_xlabel(f"{where} (end of each epoch)")
    right.set_ylabel("accuracy")
    right.set_xticks(x)
    right.legend()
    fig.tight_layout()
    return fig


@styled
def plot_confusion_matrix(matrix: np.ndarray) -> Figure:
    """The confusion matrix with its counts written in; colour on a log scale so rare
    errors show.
    """
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


@styled
def plot_gallery(
    images: ArrayLike, y_true: ArrayLike, probs: np.ndarray, ncols: int = 8
) -> Figure:
    """Digits titled 'true -> predicted (probability)'; returns the figure."""
    images = check_images(images)
    probs = np.asarray(probs)
    y_true = check_labels(y_true, len(images))
    if probs.shape != (len(images), 10):
        raise ValueError(
            f"probs must have shape ({len(images)}, 10), got {probs.shape}"
        )
    pred = probs.argmax(axis=1)
    titles = [
        f"{t}→{p} ({probs[i, p]:.2f})" for i, (t, p) in enumerate(zip(y_true, pred))
    ]
    return show_images(images, titles, ncols=ncols, size=1.2, cmap="gray_r")


@styled
def plot_saliency(
    images: ArrayLike, maps: np.ndarray, titles: list[str] | None = None
) -> Figure:
    """Each digit above the absolute value of its saliency map; returns the figure."""
    images = check_images(images)
    maps = np.asarray(maps)
    if maps.shape != images.shape:
        raise ValueError(
            f"need one map per image: images {images.shape}, maps {maps.shape}"
        )
    n = len(images)
    fig, axes = plt.subplots(2, n, figsize=(1.6 * n, 3.4), squeeze=False)
    fontsize = legible_size(9, _fig_width(fig))
    for i in range(n):
        axes[0, i].imshow(images[i], cmap="gray_r")
        axes[1, i].imshow(np.abs(maps[i]), cmap="hot")
        if titles is not None:
            axes[0, i].set_title(titles[i], fontsize=fontsize)
        for ax in axes[:, i]:
            ax.axis("off")
    axes[1, 0].set_title("|gradient|", fontsize=fontsize, loc="left")
    fig.tight_layout()
    return fig


@styled
def plot_occlusion(
    image: ArrayLike,
    grid: np.ndarray,
    patch: int,
    stride: int,
    title: str | None = None,
) -> Figure:
    """The digit beside its occlusion map, placed so each cell sits at its square's
    centre.
    """
    image, grid = np.asarray(image), np.asarray(grid)
    if image.ndim != 2 or grid.ndim != 2 or grid.shape[0] != grid.shape[1]:
        raise ValueError(
            f"need a 2-D image and a square occlusion grid, got {image.shape} and "
            f"{grid.shape}"
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


@styled
def plot_feature_maps(
    features: dict[str, np.ndarray],
    layers: Sequence[str] | None = None,
    max_channels: int = 8,
) -> Figure:
    """One row per layer: the first `max_channels` channels of spatial maps, vectors as
    a strip.
    """
    layers = list(layers) if layers is not None else list(features)
    unknown = [name for name in layers if name not in features]
    if unknown:
        raise ValueError(f"no features called {unknown}; available: {list(features)}")
    fig = plt.figure(
        figsize=(1.1 * max_channels, 1.25 * len(layers)), layout="constrained"
    )
    grid = fig.add_gridspec(len(layers), max_channels)
    fontsize = legible_size(8, _fig_width(fig))
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
                        fontsize=fontsize,
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
            ax.tick_params(labelsize=legible_size(6, _fig_width(fig)))
            ax.set_title(f"{name} ({a.size} values)", fontsize=fontsize, loc="left")
    return fig
