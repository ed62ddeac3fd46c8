"""Figures of the layer chapters (activations, gradient flow, learning curves, features, softmax)."""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from . import inspect as measure


def plot_activations(names: Sequence[str], x=None) -> Figure:
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


def plot_gradient_norms(norms: Mapping[str, Sequence[float] | Mapping[str, float]], title: str = "",
                        xlabel: str = "layer (input side first)") -> Figure:
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


def plot_learning_curves(curves: Mapping[str, Mapping[str, np.ndarray]], window: int = 20) -> Figure:
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


def plot_projection(points, labels, title: str = "", ax=None) -> Figure:
    """A 2-D scatter of points (N, 2) coloured by digit class, one legend entry per class."""
    points, labels = np.asarray(points), np.asarray(labels)
    if points.ndim != 2 or points.shape[1] != 2 or len(points) != len(labels):
        raise ValueError(f"need points (N, 2) and N labels, got {points.shape} and {labels.shape}")
    if ax is None:
        fig, ax = plt.subplots(figsize=(4.6, 4.2))
    else:
        fig = ax.figure
    cmap = plt.get_cmap("tab10")
    for digit in np.unique(labels):
        sel = labels == digit
        ax.scatter(points[sel, 0], points[sel, 1], s=4, alpha=0.6, color=cmap(int(digit) % 10),
                   label=str(digit))
    ax.set_title(title)
    ax.set_xlabel("principal axis 1")
    ax.set_ylabel("principal axis 2")
    ax.legend(markerscale=3, fontsize=7, ncol=2, loc="best")
    return fig


def plot_temperature(logits, temperatures: Sequence[float]) -> Figure:
    """Bar charts of softmax(logits / T), one panel per temperature T."""
    logits = np.asarray(logits)
    if logits.ndim != 1 or not temperatures:
        raise ValueError(f"need one vector of logits and at least one temperature, got {logits.shape}")
    fig, axes = plt.subplots(1, len(temperatures), figsize=(2.3 * len(temperatures), 2.6), sharey=True)
    for ax, t in zip(np.atleast_1d(axes), temperatures):
        ax.bar(np.arange(len(logits)), np.asarray(measure.softmax(logits, temperature=t)))
        ax.set_title(f"T = {t:g}")
        ax.set_xticks(np.arange(len(logits)))
        ax.set_ylim(0, 1)
        ax.set_xlabel("class")
    np.atleast_1d(axes)[0].set_ylabel("probability")
    fig.tight_layout()
    return fig
