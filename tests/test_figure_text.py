"""Every text of every package figure stays legible once the book shows the figure.

The book shows a figure scaled into its content column, 720 CSS px wide: the figure is
rendered at its dpi (width_in * dpi px) and shrunk to 720 px when wider. A text of
`fontsize` points then shows at fontsize * dpi / 72 * min(1, 720 / (width_in * dpi))
CSS px, and that must be at least 8 px. Each public figure function of `figures` and
`animate` (first frame) is called on small real inputs; the offending texts are listed.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import pytest
from flax import nnx
from matplotlib.animation import FuncAnimation
from matplotlib.artist import Artist
from matplotlib.axis import Axis
from matplotlib.backends.backend_agg import FigureCanvasAgg as FigureCanvas
from matplotlib.figure import Figure
from matplotlib.text import Text

import mnist_cnn
from mnist_cnn import CNN, Config, History
from mnist_cnn.teach import (
    animate,
    evaluation,
    figures,
    internals,
    kernels,
    preprocessing,
    saliency,
)

COLUMN_PX = 720  # the book's content column (CSS px)
MIN_PX = 8  # the smallest legible text (CSS px)


def displayed_px(fontsize: float, fig: Figure) -> float:
    width_px = fig.get_size_inches()[0] * fig.dpi
    return fontsize * fig.dpi / 72 * min(1.0, COLUMN_PX / width_px)


def drawn_texts(artist: Artist) -> list[Text]:
    """The texts under `artist` that a drawing shows: visible, non-empty, and not on the
    axis of an Axes that is switched off (whose tick labels exist but are not drawn)."""
    if not artist.get_visible():
        return []
    if isinstance(artist, Axis) and not artist.axes.axison:
        return []
    texts = []
    if isinstance(artist, Text) and artist.get_text().strip():
        texts.append(artist)
    for child in artist.get_children():
        texts += drawn_texts(child)
    return texts


def too_small(fig: Figure) -> list[str]:
    """Every text of the drawn figure that shows below MIN_PX, with its sizes."""
    fig.canvas.draw()  # tick labels are made at draw time
    offenders = []
    for text in drawn_texts(fig):
        px = displayed_px(text.get_fontsize(), fig)
        if px < MIN_PX:
            offenders.append(
                f"{text.get_text()[:30]!r}: {text.get_fontsize():.1f} pt -> {px:.1f} px"
            )
    return offenders


@pytest.fixture(scope="module")
def inputs(mnist):
    (x_train, y_train), (x_test, y_test) = mnist
    x, y = x_test[:64], y_test[:64]
    model = CNN(Config(conv_channels=(8, 16), dense=(32,)), rngs=nnx.Rngs(0))
    model.set_input_stats(0.13, 0.31)
    model.eval()
    probs = evaluation.probabilities(model, x[:16])
    coords, _, ratio = preprocessing.pca(x, 2)
    return {
        "x": x,
        "y": y,
        "x_train": x_train[:600],
        "y_train": y_train[:600],
        "model": model,
        "probs": probs,
        "coords": coords,
        "ratio": ratio,
    }


def figure_cases(d: dict) -> dict[str, Callable[[], Figure]]:
    """One call per public figure function, on inputs like the chapters give them."""
    x, y, model = d["x"], d["y"], d["model"]
    digit = x[0]
    curves = internals.StepCurves(
        step=np.arange(1, 41),
        loss=np.linspace(2.3, 0.3, 40),
        eval_step=np.array([10, 20, 30, 40]),
        eval_accuracy=np.array([0.5, 0.7, 0.8, 0.85]),
        seconds=1.0,
        model=model,
    )
    history = History(
        epoch=[1, 2, 3],
        loss=[0.5, 0.2, 0.1],
        train_accuracy=[0.8, 0.9, 0.95],
        eval_accuracy=[0.85, 0.92, 0.96],
        seconds=[1.0, 2.0, 3.0],
    )
    photo = kernels.sample_photo(128)
    learned = np.asarray(model.convs[0].kernel[...])
    maps = saliency.saliency(model, x[:8], y[:8])
    grid = saliency.occlusion_map(model, digit, int(y[0]), patch=6, stride=2)
    feats = internals.feature_maps(model, digit)
    default = CNN(Config(), rngs=nnx.Rngs(0))
    return {
        "show_images": lambda: figures.show_images(
            x[:16], [str(v) for v in y[:16]], ncols=8
        ),
        "show_matrix": lambda: figures.show_matrix(digit[8:16, 8:16], title="pixels"),
        "show_filters": lambda: figures.show_filters(learned, numbers=True),
        "show_feature_maps": lambda: figures.show_feature_maps(feats["act1"]),
        "draw_architecture": lambda: figures.draw_architecture(
            mnist_cnn.layer_shapes(default)
        ),
        "plot_activations": lambda: figures.plot_activations(
            ["sigmoid", "tanh", "relu", "gelu"]
        ),
        "plot_gradient_norms": lambda: figures.plot_gradient_norms(
            {"sigmoid": [1e-4, 1e-3, 1e-2], "relu": {"conv1": 0.1, "head": 0.3}}
        ),
        "plot_step_curves": lambda: figures.plot_step_curves({"run": curves}),
        "plot_projection": lambda: figures.plot_projection(d["coords"], y, "PCA"),
        "plot_temperature": lambda: figures.plot_temperature(
            np.asarray(jnp.linspace(-2, 3, 10)), [0.5, 1.0, 2.0, 5.0, 10.0]
        ),
        "plot_pool_windows": lambda: figures.plot_pool_windows(
            np.arange(16.0).reshape(4, 4) % 7, 2, "max"
        ),
        "plot_kernel_gallery": lambda: figures.plot_kernel_gallery(
            {"photograph": photo, "digit": x[0] / 255.0, "another": x[1] / 255.0},
            list(kernels.KERNELS),
        ),
        "plot_filter_matches": lambda: figures.plot_filter_matches(
            learned, x[0] / 255.0
        ),
        "plot_class_grid": lambda: figures.plot_class_grid(
            d["x_train"], d["y_train"], per_class=10
        ),
        "plot_surface": lambda: figures.plot_surface(digit / 255.0, "a digit"),
        "plot_class_counts": lambda: figures.plot_class_counts(
            {"train": np.bincount(d["y_train"], minlength=10), "test": np.ones(10)}
        ),
        "plot_pixel_histogram": lambda: figures.plot_pixel_histogram(
            np.bincount(x.ravel(), minlength=256)
        ),
        "plot_pca": lambda: figures.plot_pca(d["coords"], y, d["ratio"]),
        "plot_history": lambda: figures.plot_history(history),
        "plot_confusion_matrix": lambda: figures.plot_confusion_matrix(
            evaluation.confusion_matrix(y, (y + 1) % 10)
        ),
        "plot_gallery": lambda: figures.plot_gallery(x[:16], y[:16], d["probs"]),
        "plot_saliency": lambda: figures.plot_saliency(
            x[:8], maps, [str(v) for v in y[:8]]
        ),
        "plot_occlusion": lambda: figures.plot_occlusion(digit, grid, 6, 2, "digit"),
        "plot_feature_maps": lambda: figures.plot_feature_maps(feats),
    }


def animation_cases() -> dict[str, Callable[[], FuncAnimation]]:
    x = np.arange(25.0).reshape(5, 5) % 4
    w = np.array([[1.0, 0, -1], [2, 0, -2], [1, 0, -1]])
    rgb = np.stack([x, x.T, 2 * x], axis=-1)
    return {
        "animate_conv": lambda: animate.animate_conv(x, w, stride=1, padding=1),
        "animate_conv (3 channels, 2 filters)": lambda: animate.animate_conv(
            rgb, np.ones((2, 2, 3, 2)), b=np.array([0.5, -1.0]), stride=2
        ),
        "animate_pool": lambda: animate.animate_pool(
            np.arange(16.0).reshape(4, 4), 2, kind="avg"
        ),
    }


def public_functions(module, returns: str) -> set[str]:
    return {
        name
        for name, fn in inspect.getmembers(module, inspect.isfunction)
        if not name.startswith("_")
        and fn.__module__ == module.__name__
        and inspect.signature(fn).return_annotation == returns
    }


def test_every_figure_function_is_checked(inputs):
    assert set(figure_cases(inputs)) == public_functions(figures, "Figure")
    checked = {name.split(" ")[0] for name in animation_cases()}
    # animate_windows is the machinery under both; it is drawn through them.
    assert checked | {"animate_windows"} == public_functions(animate, "FuncAnimation")


def test_every_figure_text_is_legible_in_the_column(inputs):
    offenders = {}
    for name, draw in figure_cases(inputs).items():
        fig = draw()
        small = too_small(fig)
        plt.close(fig)
        if small:
            offenders[name] = small
    assert not offenders, offenders


def test_every_animation_text_is_legible_in_the_column():
    offenders = {}
    for name, make in animation_cases().items():
        anim = make()
        anim.draw_frame(0)
        small = too_small(anim.figure)
        plt.close(anim.figure)
        if small:
            offenders[name] = small
    assert not offenders, offenders


def test_the_check_catches_small_text():
    # A 12-inch figure at 100 dpi is shrunk to 60%: 10 pt shows at 8.3 px, 9 at 7.5 px.
    fig = Figure(figsize=(12, 2), dpi=100)
    fig.text(0.1, 0.5, "fine", fontsize=10)
    fig.text(0.5, 0.5, "too small", fontsize=9)
    fig.text(0.5, 0.2, "hidden", fontsize=5, visible=False)
    ax = fig.add_axes((0.1, 0.1, 0.2, 0.2))
    ax.set_xticks([0.5], ["tick"], fontsize=5)
    ax.axis("off")  # its tick label is not drawn
    FigureCanvas(fig)
    assert [line.split(":")[0] for line in too_small(fig)] == ["'too small'"]
