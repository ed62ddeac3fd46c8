"""Fashion-MNIST in the book: upstream's published benchmarks, the "what helps" study,
confused pairs, filters, and timing the training step on one or several devices.

Upstream (Zalando Research) ships two benchmark files, both in the Debian package
`dataset-fashion-mnist` (under /usr/share/doc/dataset-fashion-mnist): the grid of
scikit-learn classifiers its automatic benchmark ran (`benchmark/baselines.json`; the
grid only, the accuracies are on upstream's website) and the README, whose "Benchmark"
table collects the submitted results with their test accuracies. Without the package
both are downloaded once from upstream's GitHub into the user cache.
"""

from __future__ import annotations

import collections
import gzip
import itertools
import json
import math
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from numpy.typing import ArrayLike

from ..config import Config
from ..data import Split
from ..files import atomic_write, cache_root
from ..model import CNN, init_model
from ..train import fit, training_steps
from . import checks, evaluation, figures

DEBIAN_DOC = Path("/usr/share/doc/dataset-fashion-mnist")
UPSTREAM_RAW = "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/"
# Path inside upstream's repository (and inside DEBIAN_DOC, maybe gzipped).
GRID_FILE = "benchmark/baselines.json"
README_FILE = "README.md"


class BenchmarkNotFoundError(FileNotFoundError):
    """Upstream's benchmark file is neither installed, cached nor downloadable."""


def benchmark_file(
    name: str,
    folder: Path | None = None,
    base_url: str = UPSTREAM_RAW,
    timeout: float = 30.0,
) -> Path:
    """Path of upstream file `name`: from `folder` (default: the Debian docs) or the
    cache, else downloaded from `base_url` (upstream's GitHub) into the cache."""
    folder = DEBIAN_DOC if folder is None else Path(folder)
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    cached = cache_root() / "fashion-mnist-doc" / name
    if cached.is_file():
        return cached
    url = base_url + name
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            data = response.read()
    except (urllib.error.URLError, OSError) as error:
        raise BenchmarkNotFoundError(
            f"{name} of Fashion-MNIST is not in {folder} and could not be downloaded "
            f"from {url} ({error}). On Debian, `apt install dataset-fashion-mnist` "
            "installs it; or download it by hand to "
            f"{cached}."
        ) from None
    _check_download(name, data, url)
    return atomic_write(cached, data)  # whole or not at all


def _check_download(name: str, data: bytes, url: str) -> None:
    """Raise ValueError (and cache nothing) unless `data` looks like upstream's file."""
    try:
        text = data.decode("utf-8")
        ok = "classifiers" in json.loads(text) if name.endswith(".json") else True
        ok = ok and ("## Benchmark" in text if name == README_FILE else True)
    except (UnicodeDecodeError, json.JSONDecodeError, TypeError):
        ok = False
    if not ok:
        raise ValueError(
            f"{url} did not return upstream's {name} (a proxy or error page?); "
            "nothing was cached"
        )


def _read_text(path: Path) -> str:
    raw = Path(path).read_bytes()
    return (gzip.decompress(raw) if path.suffix == ".gz" else raw).decode("utf-8")


def benchmark_grid(path: Path | None = None) -> dict[str, int]:
    """Parameter settings per scikit-learn classifier in upstream's baselines.json.

    Upstream's runner tries every combination of the listed values (a product over all
    of a classifier's parameters), so each classifier counts that product.
    """
    path = benchmark_file(GRID_FILE) if path is None else Path(path)
    grid = json.loads(_read_text(path))
    if "classifiers" not in grid:
        raise ValueError(f"{path} has no 'classifiers' entry: not upstream's grid")
    return {
        name: math.prod(len(values) for group in groups for values in group.values())
        for name, groups in grid["classifiers"].items()
    }


def _plain(cell: str) -> str:
    """Markdown cell text without links, emphasis or surrounding spaces."""
    cell = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", cell)  # [text](url) -> text
    return cell.replace("**", "").replace("`", "").strip()


def _accuracy(cell: str) -> float | None:
    cell = _plain(cell)
    try:
        return float(cell)
    except ValueError:  # "-" or empty: not reported
        return None


def submitted_benchmarks(path: Path | None = None) -> list[dict[str, Any]]:
    """The rows of the README's "Benchmark" table: classifier, preprocessing,
    fashion and mnist test accuracy (None where not given), submitter, kind."""
    path = benchmark_file(README_FILE) if path is None else Path(path)
    text = _read_text(path)
    start = text.find("## Benchmark")
    if start < 0:
        raise ValueError(f"{path} has no '## Benchmark' section")
    rows = []
    header_seen = False
    for line in text[start:].splitlines():
        if line.startswith("##") and header_seen and rows:
            break  # the next section
        if not line.lstrip().startswith("|"):
            continue
        cells = line.strip().strip("|").split("|")
        if len(cells) < 5 or set("".join(cells)) <= set("-: "):
            continue  # separator row
        if _plain(cells[0]) == "Classifier":
            header_seen = True
            continue
        if not header_seen:
            continue
        fashion = _accuracy(cells[2])
        if fashion is None:
            continue
        classifier = _plain(cells[0])
        rows.append(
            {
                "classifier": classifier,
                "preprocessing": _plain(cells[1]),
                "fashion": fashion,
                "mnist": _accuracy(cells[3]),
                "submitter": _plain(cells[4]),
                "kind": kind(classifier),
            }
        )
    if not rows:
        raise ValueError(f"found no result rows in the Benchmark table of {path}")
    return rows


# Words that mark a neural network in a row's name (2 Conv, ResNet18, MLP, GRU...).
_NETWORK_WORDS = (
    r"conv|cnn|resnet|wrn|densenet|vgg|googlenet|alexnet|squeezenet|mobilenet"
    r"|capsule|denser|dyra-net|dual path|automl|\bmlp\b|\bgru\b|\blstm\b|\brnn\b"
)


def kind(classifier: str) -> str:
    """ "human", "neural network" or "classical" for a row of the benchmark table."""
    name = classifier.lower()
    if "human" in name:
        return "human"
    if re.search(_NETWORK_WORDS, name):
        return "neural network"
    return "classical"


# ------------------------------------------------------------------------------------
# What helps: variants of the default CNN, each a few Config fields.

VARIANTS: dict[str, dict[str, Any]] = {
    "default (16/32)": {},
    "wider (24/48)": {"conv_channels": (24, 48)},
    "third block (16/32/64)": {"conv_channels": (16, 32, 64)},
    "batch norm": {"batch_norm": True},
    "flips": {"flip": True},
    "2 epochs": {"epochs": 2},
}


def study(
    data: tuple[Split, Split],
    base: Config,
    seeds: Sequence[int],
    variants: Mapping[str, Mapping[str, Any]] = VARIANTS,
) -> tuple[list[dict[str, Any]], dict[tuple[str, int], CNN]]:
    """Train `base` changed by each variant, once per seed; score the validation split.

    `base` must hold out a validation split (`validation_size`), which every run is
    scored on; the test set is never touched. Returns one row per run (variant, seed,
    validation accuracy, training seconds) and the models by (variant, seed).
    """
    if not base.validation_size:
        raise ValueError(
            "base.validation_size must hold out a validation split: choices are "
            "made on it, never on the test set"
        )
    rows, models = [], {}
    for name, changes in variants.items():
        for seed in seeds:
            model, history = fit(base.replace(seed=seed, **changes), data, False)
            models[name, seed] = model
            rows.append(
                {
                    "variant": name,
                    "seed": seed,
                    "validation": history.eval_accuracy[-1],
                    "seconds": history.seconds[-1],
                }
            )
    return rows, models


def best_variant(table: Mapping[str, Mapping[str, Mapping[str, float]]]) -> str:
    """The variant with the highest mean validation accuracy in a `summarise` table."""
    if not table:
        raise ValueError("the table is empty: run the study first")
    return max(table, key=lambda name: table[name]["validation"]["mean"])


@figures.styled
def plot_study(rows: Sequence[Mapping[str, Any]], key: str = "validation") -> Figure:
    """One row per variant: each run's `key` accuracy as a dot, the mean as a bar."""
    names = list(dict.fromkeys(r["variant"] for r in rows))  # first-seen order
    if not names:
        raise ValueError("no rows to plot: run the study first")
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(names) + 1.0))
    for i, name in enumerate(names):
        values = 100 * np.array([r[key] for r in rows if r["variant"] == name])
        ax.plot(values, np.full(len(values), i), "o", color="C0", alpha=0.7)
        ax.plot([values.mean()] * 2, [i - 0.3, i + 0.3], color="C1", lw=2)
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()  # the first variant on top
    ax.set_xlabel(f"{key} accuracy (%): dots are runs, bars their mean")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------------
# Looking at the mistakes and the filters


def confused_examples(
    y_true: ArrayLike, y_pred: ArrayLike, true: int, pred: int, k: int = 4
) -> np.ndarray:
    """Indices of the first `k` images of class `true` predicted as `pred`."""
    y_true, y_pred = evaluation.label_pairs(y_true, y_pred)
    return np.flatnonzero((y_true == true) & (y_pred == pred))[:k]


def contrast_share(kernel: ArrayLike) -> np.ndarray:
    """Per filter of a (kh, kw, 1, C) kernel: the share of its squared weights that
    is contrast (the filter minus its mean), not average brightness. Shape (C,)."""
    kernel = np.asarray(kernel, np.float64)
    if kernel.ndim != 4 or kernel.shape[2] != 1:
        raise ValueError(
            f"expected a first-layer kernel (kh, kw, 1, C), got shape {kernel.shape}"
        )
    w = kernel[:, :, 0, :].reshape(-1, kernel.shape[-1])  # (kh*kw, C)
    total = np.sum(w**2, axis=0)
    if np.any(total == 0):
        raise ValueError("a filter is all zeros: its contrast share is undefined")
    contrast = np.sum((w - w.mean(axis=0)) ** 2, axis=0)
    return contrast / total


def confused_both_ways(matrix: ArrayLike) -> tuple[int, int, int]:
    """The pair of classes (a < b) most often mistaken for each other, counting both
    directions: (a, b, matrix[a, b] + matrix[b, a]); ties go to the smallest (a, b)."""
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or len(matrix) < 2:
        raise ValueError(
            f"expected a square confusion matrix of 2 classes or more, got shape "
            f"{matrix.shape}"
        )
    both = matrix + matrix.T  # both[a, b]: a read as b, or b read as a
    a, b = np.triu_indices(len(matrix), k=1)  # each unordered pair once, a < b
    i = int(np.argmax(both[a, b]))  # the first maximum: the smallest (a, b)
    return int(a[i]), int(b[i]), int(both[a[i], b[i]])


def check_confused_both_ways(fn: Callable[[np.ndarray], tuple[int, int, int]]) -> bool:
    """Self-check for the exercise: `fn(matrix)` against `confused_both_ways`."""
    rng = np.random.default_rng(15)
    # 0 -> 1 is the largest single cell (5), but 2 and 3 are confused 4 + 4 times.
    one_way = np.diag([50, 50, 50, 50])
    one_way[0, 1], one_way[2, 3], one_way[3, 2] = 5, 4, 4
    tie = np.diag([9, 9, 9])
    tie[1, 2], tie[0, 2] = 3, 3  # pairs (0, 2) and (1, 2) tie: (0, 2) comes first
    cases = [one_way, tie] + [rng.integers(0, 30, (10, 10)) for _ in range(3)]
    for matrix in cases:
        expected = confused_both_ways(matrix)
        got, error = checks.call_quietly(fn, matrix.copy())
        if error:
            return checks.report(False, "most confused pair", error)
        try:
            got = tuple(int(v) for v in got)
        except (TypeError, ValueError):
            got = None
        if got != expected:
            hint = (
                f"for the matrix\n{matrix}\nexpected {expected}, got {got}. Add the "
                "two directions (matrix + matrix.T) and look above the diagonal only"
            )
            if got is not None and got[:2] == tuple(
                int(v)
                for v in np.unravel_index(
                    np.argmax(matrix - np.diag(np.diag(matrix))), matrix.shape
                )
            ):
                hint = (
                    "that is the largest single cell; count both directions: "
                    "matrix[a, b] + matrix[b, a]"
                )
            return checks.report(False, "most confused pair", hint)
    return checks.report(True, "most confused pair, both directions counted")


@figures.styled
def plot_confusion(matrix: ArrayLike, names: Sequence[str]) -> Figure:
    """`figures.plot_confusion_matrix` with class names on both axes."""
    matrix = np.asarray(matrix)
    if len(names) != len(matrix):
        raise ValueError(f"got {len(names)} names for a {len(matrix)}-class matrix")
    fig = figures.plot_confusion_matrix(matrix)
    fig.set_size_inches(7, 6.4)
    ax = fig.axes[0]
    ax.set_xticklabels(names, rotation=45, ha="right")
    ax.set_yticklabels(names)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------------
# Several devices


def timed_steps(
    config: Config, x: jax.Array, y: jax.Array, steps: int = 50, warmup: int = 10
) -> tuple[float, list[float]]:
    """(milliseconds per step, losses) of `warmup` + `steps` steps of a fresh model.

    The first `warmup` steps (compilation included) are not timed. With
    `config.data_parallel` the steps run over every local device. x: (N, 28, 28, 1)
    float32, y: (N,) int32, on the device.
    """
    if steps < 1 or warmup < 1:
        raise ValueError(f"steps and warmup must be positive, got {steps}, {warmup}")
    loop = training_steps(init_model(config, x), config, x, y)
    losses = [loss for _, _, loss, _ in itertools.islice(loop, warmup)]
    losses[-1].block_until_ready()
    start = time.perf_counter()
    # Steps are dispatched asynchronously: wait for the last loss to be computed.
    last = collections.deque(maxlen=1)
    for _, _, loss, _ in itertools.islice(loop, steps):
        losses.append(loss)
        last.append(loss)
    last[0].block_until_ready()
    seconds = time.perf_counter() - start
    return 1000 * seconds / steps, [float(v) for v in losses]


def devices_summary() -> list[str]:
    """One line per local device: its id, platform and kind."""
    return [f"{d.id}: {d.platform} ({d.device_kind})" for d in jax.local_devices()]


__all__ = [
    "VARIANTS",
    "BenchmarkNotFoundError",
    "benchmark_file",
    "benchmark_grid",
    "best_variant",
    "check_confused_both_ways",
    "confused_both_ways",
    "confused_examples",
    "contrast_share",
    "devices_summary",
    "kind",
    "plot_confusion",
    "plot_study",
    "study",
    "submitted_benchmarks",
    "timed_steps",
]
