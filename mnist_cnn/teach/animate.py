"""Sliding-window animations of convolution and pooling, one frame per window position.

Every number a frame shows comes from `ops` (`ops.conv_steps` / `ops.pool_steps` return
exactly the steps that are drawn), so the pictures cannot disagree with the computation.
Cells and text are drawn by `figures.draw_matrix`, in the book's figure style.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import HTML
from matplotlib.animation import FuncAnimation
from matplotlib.axes import Axes
from matplotlib.patches import Rectangle
from numpy.typing import ArrayLike

from . import ops
from .figures import (
    OUTPUT_COLOR,
    WINDOW_COLOR,
    draw_matrix,
    legible_size,
    number_format,
)
from .ops import IntOrPair, WindowStep

# Animations render at a low dpi to keep the embedded frames small.
ANIMATION_DPI = 64
BASE_ANIMATION_FONT_SIZE = 8.0  # points, raised by `legible_size` where needed

__all__ = [
    "OUTPUT_COLOR",
    "WINDOW_COLOR",
    "animate_conv",
    "animate_pool",
    "animate_windows",
    "conv_equation",
    "draw_matrix",
    "number_format",
    "pool_equation",
    "to_html",
]


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
        f"{'max' if kind == 'max' else 'mean'}({values}) = "
        f"{(out_fmt or fmt)(step.value)}"
        f"  →  output[{step.row}, {step.col}, {step.channel}]"
    )


def animate_windows(
    inputs: np.ndarray,
    padding: tuple[int, int],
    window: tuple[int, int],
    out_shape: tuple[int, int, int],
    steps: list[WindowStep],
    describe: Callable[[WindowStep], str],
    kernels: np.ndarray | None = None,
    all_channels: bool = True,
    cell: float = 0.32,
    dpi: int = ANIMATION_DPI,
    interval: int = 900,
    title: str = "",
) -> FuncAnimation:
    """The sliding-window machinery shared by convolution and pooling.

    inputs: the padded input (Hp, Wp, C); kernels: (kh, kw, C, F) drawn between input
    and output, or None (pooling); out_shape: (H', W', F). Frame k draws steps[:k+1]
    into the output. `all_channels`: the window covers every input channel (conv) or
    only `step.channel` (pooling).
    """
    hp, wp, channels = inputs.shape
    kh, kw = window
    oh, ow, n_out = out_shape
    n_filters = 0 if kernels is None else kernels.shape[-1]
    values = [inputs] + ([kernels] if kernels is not None else [])
    fmt = number_format(
        np.concatenate([np.ravel(v) for v in values])
    )  # inputs, weights
    out_fmt = number_format(
        [s.value for s in steps]
    )  # averages of integers need decimals
    # Layout in cell units: input column | one column per filter | output column; text
    # below.
    col_x = [0.0] + [wp + 1.0 + f * (kw + 1.0) for f in range(n_filters)]
    out_x = wp + 1.0 + n_filters * (kw + 1.0) + 0.5
    rows = max(channels * (hp + 1.5), n_out * (oh + 1.5))
    text_lines = (channels + 1) if kernels is not None else 1
    longest = max(len(line) for s in steps for line in describe(s).split("\n"))
    top = 2.4  # cells above the panels: the heading line and the panel titles

    def layout(fontsize: float) -> tuple[float, float, float]:
        """(width, height, one text line) in cells for text of `fontsize` points."""
        char_cells = 0.7 * (fontsize + 0.5) / 72 / cell  # one monospace character
        width = max(
            out_x + ow + 0.5,
            longest * char_cells + 0.5,
            (len(title) + 16) * 0.55 * (fontsize + 2) / 72 / cell,
        )
        line = 1.3 * (fontsize + 0.5) / 72 / cell
        return width, top + rows + line * text_lines + 0.6, line

    # Wider text makes a wider figure, which the book shrinks more: settle the size in a
    # few rounds so that every label stays legible once the figure fits the column.
    fontsize = legible_size(BASE_ANIMATION_FONT_SIZE, 0.01, dpi)
    for _ in range(3):
        width_cells, height_cells, line_cells = layout(fontsize)
        fontsize = legible_size(fontsize, width_cells * cell, dpi)
    width_cells, height_cells, line_cells = layout(fontsize)
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
    anim.figure = fig  # the figure every frame is drawn on
    return anim


def animate_conv(
    x: ArrayLike,
    w: ArrayLike,
    b: ArrayLike | None = None,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
    cell: float = 0.32,
    dpi: int = ANIMATION_DPI,
    interval: int = 900,
    title: str | None = None,
) -> FuncAnimation:
    """Animate `ops.conv2d` on one image: the window slides over the zero-padded input
    (grey cells), the inner product is written out, and the output cell fills in; one
    frame per step.

    x: (H, W) or (H, W, C_in); w: (kh, kw) or (kh, kw, C_in, C_out). Show it in a
    notebook with `animate.to_html(anim)`. `anim.steps` holds the `ops.WindowStep`
    behind every frame.
    """
    steps = ops.conv_steps(x, w, b, stride, padding)
    x3, _ = ops.to_nhwc(x)
    w4 = ops.as_filters(w, x3.shape[-1])
    ph, pw = ops.pair(padding, "padding", 0)
    sh, sw = ops.pair(stride, "stride", 1)
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
    return animate_windows(
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
    dpi: int = ANIMATION_DPI,
    interval: int = 900,
    title: str | None = None,
) -> FuncAnimation:
    """Animate `ops.max_pool2d` / `ops.avg_pool2d` on one image (H, W) or (H, W, C),
    channel by channel.
    """
    steps = ops.pool_steps(x, size, stride, kind)
    x3, _ = ops.to_nhwc(x)
    kh, kw = ops.pair(size, "size", 1)
    out_h = max(s.row for s in steps) + 1
    out_w = max(s.col for s in steps) + 1
    fmt, out_fmt = number_format(x3), number_format([s.value for s in steps])
    sh, sw = (kh, kw) if stride is None else ops.pair(stride, "stride", 1)
    title = (
        title
        or f"{kind} pooling: {kh}×{kw} window, stride {sh if sh == sw else (sh, sw)}"
    )
    return animate_windows(
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
    """The animation as JS-HTML (works in the static book); closes its figure."""
    html = anim.to_jshtml(default_mode=mode)
    plt.close(anim._fig)  # FuncAnimation keeps its figure only under this name
    # The player links Font Awesome 4 from a CDN for its button icons: the book must
    # work offline, and its theme already ships Font Awesome (which knows the same icon
    # names).
    html = re.sub(r'<link rel="stylesheet"[^>]*font-awesome[^>]*>\s*', "", html)
    # matplotlib names the player's elements with a random uuid; a hash of the content
    # instead keeps re-executed notebooks byte-identical (and still unique per animation
    # on a page).
    random_id = re.search(r"_anim_img([0-9a-f]{32})", html)
    if random_id:
        stable = hashlib.sha1(
            html.replace(random_id.group(1), "").encode()
        ).hexdigest()[:32]
        html = html.replace(random_id.group(1), stable)
    return HTML(html)
