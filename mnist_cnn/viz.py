"""Plots and animations for the book: image grids, matrices with their numbers, filter banks,
feature maps, the CNN's architecture, and sliding-window animations of convolution and pooling.

Every number an animation shows comes from `mnist_cnn.ops` (`conv_frames`/`pool_frames` return
exactly the steps that are drawn), so the pictures cannot disagree with the computation.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.animation import FuncAnimation
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from numpy.typing import ArrayLike

if TYPE_CHECKING:
    from IPython.display import HTML

from . import ops
from .ops import IntOrPair, WindowStep

PAD_COLOR = (
    "#d9d9d9"  # zero-padding cells: grey, so they never look like part of the image
)
WINDOW_COLOR = "#d62728"
OUTPUT_COLOR = "#2ca02c"


def number_format(values: ArrayLike) -> Callable[[float], str]:
    """A formatter that prints integers without decimals and other numbers with two."""
    values = np.asarray(values, dtype=np.float64)
    if np.all(np.isfinite(values)) and np.allclose(values, np.round(values)):
        return lambda v: f"{v:.0f}" if round(v) != 0 else "0"  # never print "-0"
    return lambda v: f"{v:.2f}"


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
                ax.set_title(titles[i], fontsize=8)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
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
    """Draw a 2-D array cell by cell with its numbers; padding rings grey; optional red window.

    `highlight` is (top, left, height, width) in cells. Returns the text objects, row-major.
    """
    m = np.asarray(m, dtype=np.float64)
    if m.ndim != 2:
        raise ValueError(f"draw_matrix draws a 2-D array, got shape {m.shape}")
    fmt = fmt or number_format(m)
    ph, pw = ops._pair(padding, "padding", 0)
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


def show_matrix(
    m: ArrayLike, title: str | None = None, cell: float = 0.35, **kwargs
) -> Figure:
    """A figure with one matrix drawn with its numbers (keyword arguments go to `draw_matrix`)."""
    m = np.asarray(m)
    fig, ax = plt.subplots(
        figsize=(cell * m.shape[1] + 0.2, cell * m.shape[0] + (0.4 if title else 0.2))
    )
    draw_matrix(ax, m, title=title, **kwargs)
    fig.tight_layout()
    return fig


def show_filters(
    kernel: ArrayLike,
    in_channel: int = 0,
    ncols: int = 8,
    size: float = 0.9,
    numbers: bool = False,
    title: str | None = None,
) -> Figure:
    """A filter bank: kernel (kh, kw, C_in, C_out) drawn one filter per panel (one input channel).

    Colours are symmetric around zero (red positive, blue negative) so signs are comparable.
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
            ax.set_title(f"filter {i}", fontsize=7)
            if numbers:
                fmt = number_format(filters[:, :, i])
                for (r, c), v in np.ndenumerate(filters[:, :, i]):
                    ax.text(c, r, fmt(v), ha="center", va="center", fontsize=6)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


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


_KIND_COLORS = {
    "input": "#7f7f7f",
    "conv": "#1f77b4",
    "act": "#ff7f0e",
    "pool": "#2ca02c",
    "flatten": "#9467bd",
    "dense": "#d62728",
    "logits": "#000000",
}
_KIND_NAMES = {
    "input": "INPUT",
    "conv": "CONV",
    "act": "RELU",
    "pool": "POOL",
    "flatten": "FLATTEN",
    "dense": "FC",
    "logits": "FC (logits)",
}


def draw_architecture(
    shapes: dict[str, tuple[int, ...]], activation: str = "relu"
) -> Figure:
    """The layers of a CNN as boxes sized by their output shapes (e.g. from `layer_shapes(model)`).

    Feature maps (1, H, W, C) are drawn as stacks whose height follows H and depth follows C;
    vectors (1, D) as bars whose height follows log D. The labels are the shapes themselves.
    """
    if not shapes:
        raise ValueError("shapes is empty: pass mnist_cnn.layer_shapes(model)")
    names = list(shapes)
    fig, ax = plt.subplots(figsize=(1.05 * len(names), 3.2))
    x = 0.0
    for i, name in enumerate(names):
        shape = shapes[name][1:]  # drop the batch axis
        kind = re.sub(r"\d+$", "", name)
        color = _KIND_COLORS.get(kind, "#8c564b")
        label = _KIND_NAMES.get(kind, kind.upper())
        if kind == "act":
            label = activation.upper()
        if len(shape) == 3:
            h, _, c = shape
            height = 0.6 + 2.0 * h / 28
            layers = min(
                6, max(1, int(np.ceil(np.log2(c + 1))))
            )  # depth, drawn as stacked sheets
            for k in range(layers):
                ax.add_patch(
                    Rectangle(
                        (x + 0.06 * k, 0.06 * k - height / 2),
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
                    (x + 0.12, -height / 2),
                    0.25,
                    height,
                    facecolor=color,
                    edgecolor="white",
                    alpha=0.85,
                )
            )
            text = str(shape[0])
        ax.text(
            x + 0.3, -1.9, f"{label}\n{name}\n{text}", ha="center", va="top", fontsize=7
        )
        if i < len(names) - 1:
            ax.annotate(
                "",
                (x + 0.95, 0),
                (x + 0.7, 0),
                arrowprops=dict(arrowstyle="->", color="0.3"),
            )
        x += 1.0
    ax.set_xlim(-0.2, x)
    ax.set_ylim(-2.9, 1.9)
    ax.axis("off")
    fig.tight_layout()
    return fig


def conv_frames(
    x: ArrayLike,
    w: ArrayLike,
    b: ArrayLike | None = None,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
) -> list[WindowStep]:
    """The frames `animate_conv` draws: one `ops.WindowStep` per (filter, output row, output column)."""
    return ops.conv_steps(x, w, b, stride, padding)


def pool_frames(
    x: ArrayLike,
    size: IntOrPair = 2,
    stride: IntOrPair | None = None,
    kind: str = "max",
) -> list[WindowStep]:
    """The frames `animate_pool` draws: one `ops.WindowStep` per (channel, output row, output column)."""
    return ops.pool_steps(x, size, stride, kind)


def _signed(fmt: Callable[[float], str], v: float) -> str:
    text = fmt(v)
    return f"({text})" if text.startswith("-") else text


def conv_equation(step: WindowStep, fmt: Callable[[float], str]) -> str:
    """The inner product of one step written out, one line per input channel."""
    channels = step.window.shape[-1]
    lines = []
    for c in range(channels):
        win, wts = step.window[:, :, c].ravel(), step.weights[:, :, c].ravel()
        part = float(np.sum(step.products[:, :, c]))
        name = f"ch{c}: " if channels > 1 else ""
        if win.size <= 9:
            terms = " + ".join(
                f"{_signed(fmt, a)}·{_signed(fmt, b)}" for a, b in zip(win, wts)
            )
        else:
            terms = f"sum of {win.size} products"
        lines.append(f"{name}{terms} = {fmt(part)}")
    total = float(np.sum(step.products))
    lines.append(
        f"{fmt(total)} + bias {_signed(fmt, step.bias)} = {fmt(step.value)}"
        f"  →  output[{step.row}, {step.col}, {step.channel}]"
        if channels > 1 or step.bias
        else f"→  output[{step.row}, {step.col}] = {fmt(step.value)}"
    )
    return "\n".join(lines)


def pool_equation(
    step: WindowStep,
    kind: str,
    fmt: Callable[[float], str],
    out_fmt: Callable[[float], str] | None = None,
) -> str:
    """One pooling step written out: max(...) or mean(...) of the window."""
    values = ", ".join(fmt(v) for v in step.window.ravel())
    return (
        f"{'max' if kind == 'max' else 'mean'}({values}) = {(out_fmt or fmt)(step.value)}"
        f"  →  output[{step.row}, {step.col}, {step.channel}]"
    )


def _animate_windows(
    inputs: np.ndarray,
    padding: tuple[int, int],
    window: tuple[int, int],
    out_shape: tuple[int, int, int],
    steps: list[WindowStep],
    describe: Callable[[WindowStep], str],
    kernels: np.ndarray | None = None,
    all_channels: bool = True,
    cell: float = 0.32,
    dpi: int = 64,
    interval: int = 900,
    title: str = "",
) -> FuncAnimation:
    """The sliding-window machinery shared by convolution and pooling.

    inputs: the padded input (Hp, Wp, C); kernels: (kh, kw, C, F) drawn between input and output,
    or None (pooling); out_shape: (H', W', F). Frame k draws steps[:k+1] into the output.
    `all_channels`: the window covers every input channel (conv) or only `step.channel` (pooling).
    """
    hp, wp, channels = inputs.shape
    kh, kw = window
    oh, ow, n_out = out_shape
    n_filters = 0 if kernels is None else kernels.shape[-1]
    fontsize = 8
    values = [inputs] + ([kernels] if kernels is not None else [])
    fmt = number_format(
        np.concatenate([np.ravel(v) for v in values])
    )  # inputs and weights
    out_fmt = number_format(
        [s.value for s in steps]
    )  # averages of integers need decimals
    # Layout in cell units: input column | one column per filter | output column; text below.
    col_x = [0.0] + [wp + 1.0 + f * (kw + 1.0) for f in range(n_filters)]
    out_x = wp + 1.0 + n_filters * (kw + 1.0) + 0.5
    rows = max(channels * (hp + 1.5), n_out * (oh + 1.5))
    text_lines = (channels + 1) if kernels is not None else 1
    longest = max(len(line) for s in steps for line in describe(s).split("\n"))
    char_cells = (
        0.7 * (fontsize + 0.5) / 72 / cell
    )  # width of one monospace character (with margin)
    width_cells = max(
        out_x + ow + 0.5,
        longest * char_cells + 0.5,
        (len(title) + 16) * 0.55 * (fontsize + 2) / 72 / cell,
    )
    top = 2.4  # cells above the panels: the heading line and the panel titles
    line_cells = 1.3 * (fontsize + 0.5) / 72 / cell  # height of one text line, in cells
    height_cells = top + rows + line_cells * text_lines + 0.6
    fig = plt.figure(figsize=(width_cells * cell, height_cells * cell), dpi=dpi)

    def place(x0: float, y0: float, w: float, h: float) -> Axes:
        # y0 counts cells down from the top (below the title line).
        return fig.add_axes(
            [
                x0 / width_cells,
                1 - (y0 + top + h) / height_cells,
                w / width_cells,
                h / height_cells,
            ]
        )

    windows = []
    for c in range(channels):
        ax = place(col_x[0], c * (hp + 1.5), wp, hp)
        name = "input (zero-padded)" if any(padding) else "input"
        draw_matrix(
            ax,
            inputs[:, :, c],
            fmt=fmt,
            padding=padding,
            fontsize=fontsize,
            title=f"input ch{c}" if channels > 1 else name,
        )
        rect = Rectangle(
            (-0.5, -0.5), kw, kh, fill=False, edgecolor=WINDOW_COLOR, linewidth=2.5
        )
        ax.add_patch(rect)
        windows.append(rect)
    filter_frames = []
    for f in range(n_filters):
        for c in range(channels):
            ax = place(col_x[1 + f], c * (hp + 1.5), kw, kh)
            draw_matrix(
                ax,
                kernels[:, :, c, f],
                fmt=fmt,
                cmap="Oranges",
                fontsize=fontsize,
                title=(f"filter {f}" if n_filters > 1 else "filter")
                if c == 0
                else None,
            )
            rect = Rectangle(
                (-0.5, -0.5), kw, kh, fill=False, edgecolor=WINDOW_COLOR, linewidth=2.5
            )
            ax.add_patch(rect)
            filter_frames.append((f, rect))
    out_texts, out_marks = [], []
    for f in range(n_out):
        ax = place(out_x, f * (oh + 1.5), ow, oh)
        out_texts.append(
            draw_matrix(
                ax,
                np.zeros((oh, ow)),
                fmt=out_fmt,
                cmap="Greens",
                fontsize=fontsize,
                numbers=False,
                title=f"output ch{f}" if n_out > 1 else "output",
            )
        )
        mark = Rectangle(
            (-0.5, -0.5), 1, 1, fill=False, edgecolor=OUTPUT_COLOR, linewidth=2.5
        )
        ax.add_patch(mark)
        out_marks.append(mark)
    equation = fig.text(
        0.01,
        (line_cells * text_lines + 0.4) / height_cells,
        "",
        fontsize=fontsize + 0.5,
        va="top",
        ha="left",
        family="monospace",
    )
    heading = fig.text(
        0.01, 1 - 0.7 / height_cells, title, fontsize=fontsize + 2, va="center"
    )

    def draw(k: int):
        step = steps[k]
        for c, rect in enumerate(windows):
            rect.set_xy((step.left - 0.5, step.top - 0.5))
            rect.set_visible(all_channels or c == step.channel)
        for f, rect in filter_frames:
            rect.set_visible(f == step.channel)
        for f, mark in enumerate(out_marks):
            mark.set_xy((step.col - 0.5, step.row - 0.5))
            mark.set_visible(f == step.channel)
        for f in range(n_out):
            for t in out_texts[f]:
                t.set_text("")
        for s in steps[: k + 1]:  # every cell computed so far stays filled in
            out_texts[s.channel][s.row * ow + s.col].set_text(out_fmt(s.value))
        equation.set_text(describe(step))
        heading.set_text(f"{title}  (step {k + 1} of {len(steps)})")
        return []

    anim = FuncAnimation(fig, draw, frames=len(steps), interval=interval, blit=False)
    anim.steps = steps  # the data behind every frame, for tests and for readers
    anim.draw_frame = draw
    anim.output_texts = out_texts
    return anim


def animate_conv(
    x: ArrayLike,
    w: ArrayLike,
    b: ArrayLike | None = None,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
    cell: float = 0.32,
    dpi: int = 64,
    interval: int = 900,
    title: str | None = None,
) -> FuncAnimation:
    """Animate `ops.conv2d` on one image: the window slides over the zero-padded input (grey
    cells), the inner product is written out, and the output cell fills in; one frame per step.

    x: (H, W) or (H, W, C_in); w: (kh, kw) or (kh, kw, C_in, C_out). Show it in a notebook with
    `viz.to_html(anim)`. `anim.steps` holds the `ops.WindowStep` behind every frame.
    """
    steps = conv_frames(x, w, b, stride, padding)
    x3, _ = ops._as_batch(x)
    w4 = ops._as_filters(w, x3.shape[-1])
    ph, pw = ops._pair(padding, "padding", 0)
    sh, sw = ops._pair(stride, "stride", 1)
    xp = np.pad(x3[0], ((ph, ph), (pw, pw), (0, 0)))
    out_h = max(s.row for s in steps) + 1
    out_w = max(s.col for s in steps) + 1
    kh, kw = w4.shape[:2]
    fmt = number_format(
        np.concatenate([xp.ravel(), w4.ravel(), [s.value for s in steps]])
    )
    stride_text = sh if sh == sw else (sh, sw)
    title = (
        title
        or f"convolution: stride {stride_text}, padding {ph if ph == pw else (ph, pw)}"
    )
    return _animate_windows(
        xp,
        (ph, pw),
        (kh, kw),
        (out_h, out_w, w4.shape[-1]),
        steps,
        lambda s: conv_equation(s, fmt),
        kernels=w4,
        all_channels=True,
        cell=cell,
        dpi=dpi,
        interval=interval,
        title=title,
    )


def animate_pool(
    x: ArrayLike,
    size: IntOrPair = 2,
    stride: IntOrPair | None = None,
    kind: str = "max",
    cell: float = 0.32,
    dpi: int = 64,
    interval: int = 900,
    title: str | None = None,
) -> FuncAnimation:
    """Animate `ops.max_pool2d` / `ops.avg_pool2d` on one image (H, W) or (H, W, C), channel by channel."""
    steps = pool_frames(x, size, stride, kind)
    x3, _ = ops._as_batch(x)
    kh, kw = ops._pair(size, "size", 1)
    out_h = max(s.row for s in steps) + 1
    out_w = max(s.col for s in steps) + 1
    fmt, out_fmt = number_format(x3), number_format([s.value for s in steps])
    sh, sw = (kh, kw) if stride is None else ops._pair(stride, "stride", 1)
    title = (
        title
        or f"{kind} pooling: {kh}×{kw} window, stride {sh if sh == sw else (sh, sw)}"
    )
    return _animate_windows(
        x3[0],
        (0, 0),
        (kh, kw),
        (out_h, out_w, x3.shape[-1]),
        steps,
        lambda s: pool_equation(s, kind, fmt, out_fmt),
        kernels=None,
        all_channels=False,
        cell=cell,
        dpi=dpi,
        interval=interval,
        title=title,
    )


def to_html(anim: FuncAnimation, mode: str = "once") -> HTML:
    """The animation as embedded JS-HTML (works in the static book); closes its figure."""
    from IPython.display import HTML

    html = anim.to_jshtml(default_mode=mode)
    plt.close(anim._fig)
    # The player links Font Awesome 4 from a CDN for its button icons: the book must work
    # offline, and its theme already ships Font Awesome (which knows the same icon names).
    html = re.sub(r'<link rel="stylesheet"[^>]*font-awesome[^>]*>\s*', "", html)
    # matplotlib names the player's elements with a random uuid; a hash of the content instead
    # keeps re-executed notebooks byte-identical (and still unique per animation on a page).
    random_id = re.search(r"_anim_img([0-9a-f]{32})", html)
    if random_id:
        stable = hashlib.sha1(
            html.replace(random_id.group(1), "").encode()
        ).hexdigest()[:32]
        html = html.replace(random_id.group(1), stable)
    return HTML(html)
