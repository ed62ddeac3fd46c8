"""Overfitting, measured: MLP baselines, data-size curves, memory, regularisers.

Every network here is trained by the package's one loop,
`mnist_cnn.train.training_steps` (same optimizer, schedule, batch order and augmentation
as `fit`): it trains any Flax NNX module that maps images (N, 28, 28, 1) to logits
(N, 10), so the MLPs need no loop of their own. Validation images always come from the
training file (its last images, as `Config(validation_size=...)` takes them); the test
set is scored once, after training.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from numpy.typing import ArrayLike

from ..config import Config
from ..model import CNN, Stats, init_model
from ..pixels import as_batch
from ..train import epoch_lengths, evaluate, training_steps

Split = tuple[np.ndarray, np.ndarray]

# ------------------------------------------------------------------------------------
# A fully connected baseline


class MLP(nnx.Module):
    """A fully connected network: 784 pixels -> ReLU hidden layers -> 10 logits."""

    def __init__(self, hidden: Sequence[int], rngs: nnx.Rngs, dropout: float = 0.0):
        hidden = tuple(int(h) for h in hidden)
        if not hidden or min(hidden) < 1:
            raise ValueError(f"hidden widths must be positive integers, got {hidden}")
        sizes = (28 * 28, *hidden)
        self.layers = nnx.List(
            [nnx.Linear(a, b, rngs=rngs) for a, b in itertools.pairwise(sizes)]
        )
        self.dropout = nnx.Dropout(dropout, rngs=rngs)
        self.head = nnx.Linear(sizes[-1], 10, rngs=rngs)
        # The same input normalisation as the CNN: the two differ only in their layers.
        self.mean = Stats(jnp.zeros(()))
        self.std = Stats(jnp.ones(()))

    def set_input_stats(self, mean: float, std: float) -> None:
        """Store the training-set pixel mean and standard deviation used on inputs."""
        self.mean[...] = jnp.asarray(mean, jnp.float32)
        self.std[...] = jnp.asarray(std, jnp.float32)

    def __call__(self, x: ArrayLike) -> jax.Array:
        """Logits (N, 10) for images (N, 28, 28) or (N, 28, 28, 1)."""
        x = (as_batch(x) - self.mean[...]) / self.std[...]
        x = x.reshape(x.shape[0], -1)  # (N, 784)
        for layer in self.layers:
            x = self.dropout(jax.nn.relu(layer(x)))
        return self.head(x)


def count_params(model: nnx.Module) -> int:
    """Number of trainable parameters (nnx.Param) in any NNX module."""
    return int(sum(np.size(p) for p in jax.tree.leaves(nnx.state(model, nnx.Param))))


def mlp_params(hidden: Sequence[int]) -> int:
    """Parameter count of `MLP(hidden)`: weights and biases of every layer."""
    sizes = (28 * 28, *hidden, 10)
    return sum(a * b + b for a, b in itertools.pairwise(sizes))


def mlp_width_for(params: int) -> int:
    """Width of a one-hidden-layer MLP whose parameter count is closest to `params`."""
    if params < mlp_params((1,)):
        raise ValueError(f"no one-hidden-layer MLP has as few as {params} parameters")
    # 784 h + h + 10 h + 10 = params  ->  h = (params - 10) / 795
    width = max(1, round((params - 10) / 795))
    return width


def init_mlp(hidden: Sequence[int], x_train: ArrayLike, seed: int = 0) -> MLP:
    """A fresh MLP seeded by `seed`, normalising inputs by `x_train`'s statistics."""
    model = MLP(hidden, rngs=nnx.Rngs(seed))
    x = as_batch(x_train)
    model.set_input_stats(jnp.mean(x), jnp.std(x))
    return model


# ------------------------------------------------------------------------------------
# Validation split


def validation_split(
    n_train: int, validation_size: int, train_size: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, validation) into the training file, as `Config` takes them.

    Validation: the last `validation_size` images; training: the first `train_size` of
    the rest (None: all of the rest). The test file is never touched.
    """
    if not 0 < validation_size < n_train:
        raise ValueError(
            f"validation_size must be between 1 and {n_train - 1} for {n_train} "
            f"training images, got {validation_size}"
        )
    rest = n_train - validation_size
    if train_size is None:
        train_size = rest
    if not 0 < train_size <= rest:
        raise ValueError(
            f"train_size must be between 1 and {rest} once {validation_size} images "
            f"are held out for validation, got {train_size}"
        )
    return np.arange(train_size), np.arange(rest, n_train)


def split_data(
    data: tuple[Split, Split], validation_size: int, train_size: int | None = None
) -> tuple[Split, Split, Split]:
    """((x, y) train, (x, y) validation, (x, y) test) from `load_data()`'s splits."""
    (x_train, y_train), test = data
    train_idx, val_idx = validation_split(len(x_train), validation_size, train_size)
    return (
        (x_train[train_idx], y_train[train_idx]),
        (x_train[val_idx], y_train[val_idx]),
        test,
    )


# ------------------------------------------------------------------------------------
# Training with a validation curve and early stopping


def best_epoch(val_accuracy: Sequence[float], patience: int | None = None) -> int:
    """1-based epoch early stopping keeps: the best validation score before stopping.

    Training stops once `patience` epochs in a row brought no improvement (None: never).
    Ties keep the earlier epoch (a later equal score is no improvement).
    """
    if len(val_accuracy) == 0:
        raise ValueError("best_epoch needs at least one validation accuracy")
    if patience is not None and patience < 1:
        raise ValueError(f"patience must be at least 1 (or None), got {patience}")
    best, waited = 0, 0
    for epoch in range(1, len(val_accuracy)):
        if val_accuracy[epoch] > val_accuracy[best]:
            best, waited = epoch, 0
        else:
            waited += 1
            if patience is not None and waited >= patience:
                break
    return best + 1


@dataclass
class Run:
    """One training run: per-epoch curves, and accuracies measured after training."""

    epoch: list[int] = field(default_factory=list)
    # Accuracy on the training batches while training (augmentation and dropout on).
    running_train_accuracy: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    val_epoch: list[int] = field(default_factory=list)  # the epochs scored
    seconds: float = 0.0  # training time (compilation included, evaluation excluded)
    best_epoch: int = 0  # the epoch whose weights the model holds at the end
    stopped_epoch: int = 0  # the last epoch trained
    train_accuracy: float = math.nan  # clean accuracy on (a sample of) the training set
    final_val_accuracy: float = math.nan  # of the weights the model holds at the end
    test_accuracy: float = math.nan  # scored once, at the very end


def train_validated(
    model: nnx.Module,
    config: Config,
    train: Split,
    validation: Split,
    patience: int | None = None,
    restore_best: bool = False,
    validate_every: int | None = 1,
) -> Run:
    """Train `model` in place for `config.epochs`, scoring the validation set.

    With `patience`, stop after that many epochs without a better validation accuracy;
    with `restore_best`, end with the weights of the best validation epoch (early
    stopping). `validate_every` epochs (None: only after the last epoch) the validation
    set is scored; `patience` and `restore_best` need it scored every epoch.
    """
    if (patience is not None or restore_best) and validate_every != 1:
        raise ValueError("early stopping needs validate_every=1")
    x_val, y_val = validation
    x_dev = as_batch(train[0])  # (N, 28, 28, 1) float32, on the device once
    y_dev = jnp.asarray(train[1], jnp.int32)
    lengths = epoch_lengths(config, len(train[0]))
    run = Run()
    best_state, corrects = None, []
    start = time.perf_counter()
    for epoch, i, _, correct in training_steps(model, config, x_dev, y_dev):
        corrects.append(correct)
        if i + 1 < lengths[epoch - 1]:
            continue
        correct_total = int(np.sum(jax.device_get(corrects)))  # waits for the steps
        run.seconds += time.perf_counter() - start
        run.epoch.append(epoch)
        run.running_train_accuracy.append(
            correct_total / (lengths[epoch - 1] * config.batch_size)
        )
        corrects = []
        run.stopped_epoch = epoch
        last = epoch == len(lengths)
        if not last and (validate_every is None or epoch % validate_every):
            start = time.perf_counter()
            continue
        run.val_accuracy.append(evaluate(model, x_val, y_val))
        run.val_epoch.append(epoch)
        kept = best_epoch(run.val_accuracy)
        if restore_best and kept == epoch:
            best_state = nnx.clone(model)
        if patience is not None and epoch - kept >= patience:
            break
        start = time.perf_counter()
    run.best_epoch = best_epoch(run.val_accuracy) if restore_best else run.stopped_epoch
    if best_state is not None:
        nnx.update(model, nnx.state(best_state))
    model.eval()
    run.final_val_accuracy = run.val_accuracy[run.val_epoch.index(run.best_epoch)]
    return run


# ------------------------------------------------------------------------------------
# Weight sharing against full connection, as the data grows


def epochs_for(n: int, budget: int, batch_size: int) -> int:
    """Epochs so that about `budget` images are seen, and at least one full epoch."""
    if n < batch_size:
        raise ValueError(
            f"{n} training images are fewer than one batch of {batch_size}"
        )
    per_epoch = n // batch_size * batch_size
    return max(1, round(budget / per_epoch))


def size_experiment(
    builders: dict[str, Callable[[Config, np.ndarray], nnx.Module]],
    sizes: Sequence[int],
    data: tuple[Split, Split],
    validation_size: int,
    budget: int,
    base: Config | None = None,
    train_eval_size: int = 2000,
    max_size: dict[str, int] | None = None,
) -> list[dict[str, Any]]:
    """Train every model on the first n training images for each n in `sizes`.

    builders: name -> function(config, x_train) returning a fresh model. Each run sees
    about `budget` images (`epochs_for`), so small sets get more epochs. Train accuracy
    is measured on the first `train_eval_size` training images, validation on the
    held-out images, test on the whole test set once the run is over. `max_size` skips
    the larger sizes for a model (name -> largest n). Returns one row (a dict) per run.
    """
    base = base or Config()
    rows = []
    for n in sizes:
        train, validation, (x_test, y_test) = split_data(data, validation_size, n)
        for name, build in builders.items():
            if max_size and n > max_size.get(name, n):
                continue
            config = base.replace(epochs=epochs_for(n, budget, base.batch_size))
            model = build(config, train[0])
            run = train_validated(model, config, train, validation, validate_every=None)
            k = min(n, train_eval_size)
            rows.append(
                {
                    "model": name,
                    "n": n,
                    "epochs": config.epochs,
                    "params": count_params(model),
                    "seconds": run.seconds,
                    "images_per_second": run.stopped_epoch
                    * (n // config.batch_size * config.batch_size)
                    / run.seconds,
                    "train": evaluate(model, train[0][:k], train[1][:k]),
                    "validation": run.final_val_accuracy,
                    "test": evaluate(model, x_test, y_test),
                }
            )
    return rows


# ------------------------------------------------------------------------------------
# Memory


def activation_bytes(features: dict[str, jax.Array]) -> dict[str, int]:
    """Bytes per image of each intermediate array (batch axis first) in `features`."""
    return {
        name: int(a.size // a.shape[0] * a.dtype.itemsize)
        for name, a in features.items()
    }


def param_bytes(model: nnx.Module) -> int:
    """Bytes of all trainable parameters of `model`."""
    leaves = jax.tree.leaves(nnx.state(model, nnx.Param))
    return int(sum(np.size(p) * np.asarray(p).dtype.itemsize for p in leaves))


def compiled_memory(fn: Callable, *args: Any) -> dict[str, int] | None:
    """XLA's memory analysis of `jax.jit(fn)` compiled for `args` (None if not offered).

    Keys: argument, output and temporary bytes (temporaries are what the program needs
    beyond its inputs and outputs: the intermediate arrays XLA could not fuse away).
    """
    stats = jax.jit(fn).lower(*args).compile().memory_analysis()
    if stats is None:
        return None
    return {
        "argument_bytes": int(stats.argument_size_in_bytes),
        "output_bytes": int(stats.output_size_in_bytes),
        "temp_bytes": int(stats.temp_size_in_bytes),
    }


def training_step_memory(model: nnx.Module, batch: int) -> dict[str, int] | None:
    """Compiled memory of one gradient of `model`'s loss on `batch` images."""
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)

    def loss(params, x, y):  # x: (B, 28, 28, 1), y: (B,)
        logits = nnx.merge(graphdef, params, rest)(x)
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], 1))

    x = jax.ShapeDtypeStruct((batch, 28, 28, 1), jnp.float32)
    y = jax.ShapeDtypeStruct((batch,), jnp.int32)
    return compiled_memory(jax.grad(loss), params, x, y)


# ------------------------------------------------------------------------------------
# Regularisers on a small training set

# The settings compared; none was tuned (each is a common first choice). Label smoothing
# 0.1 is also what the default recipe (`Config()`) trains with.
REGULARISERS: dict[str, dict[str, Any]] = {
    "none": {},
    "dropout 0.5": {"dropout": 0.5},
    "weight decay 0.5": {"weight_decay": 0.5},
    "label smoothing 0.1": {"label_smoothing": 0.1},
    "shift 2 px": {"shift": 2},
    "rotate 15°": {"rotate": 15.0},
    "batch norm": {"batch_norm": True},
}

# Every Config field that regularises, with the value that turns it off.
REGULARISER_OFF: dict[str, Any] = {
    "dropout": 0.0,
    "weight_decay": 0.0,
    "label_smoothing": 0.0,
    "shift": 0,
    "rotate": 0.0,
    "flip": False,
    "batch_norm": False,
}


def regularisers_on(config: Config) -> dict[str, Any]:
    """The regularising fields of `config` that are not off: name -> value."""
    return {
        name: getattr(config, name)
        for name, off in REGULARISER_OFF.items()
        if getattr(config, name) != off
    }


def regulariser_experiment(
    data: tuple[Split, Split],
    base: Config,
    seeds: Sequence[int],
    regularisers: dict[str, dict[str, Any]] = REGULARISERS,
    validate_every: int | None = 1,
) -> tuple[list[dict[str, Any]], dict[tuple[str, int], tuple[CNN, Run]]]:
    """Train the CNN with each regulariser and seed on `base`'s train/validation split.

    `base` must set `validation_size` and `train_size`, and no regulariser of its own
    (so that the row "none" means none: `Config()` trains with label smoothing, so turn
    it off with `label_smoothing=0.0`). Returns one row per run (train, validation and
    test accuracy, the validation curve) and the trained models by (regulariser, seed).
    """
    if not base.validation_size:
        raise ValueError("base.validation_size must hold out a validation set")
    already = regularisers_on(base)
    if already:
        fix = ", ".join(f"{name}={REGULARISER_OFF[name]!r}" for name in already)
        raise ValueError(
            f"base is already regularised ({already}), so no row would train without a "
            f"regulariser: pass base.replace({fix})"
        )
    train, validation, (x_test, y_test) = split_data(
        data, base.validation_size, base.train_size
    )
    rows, models = [], {}
    for name, changes in regularisers.items():
        for seed in seeds:
            config = base.replace(seed=seed, **changes)
            model = init_model(config, train[0])
            run = train_validated(
                model, config, train, validation, validate_every=validate_every
            )
            models[name, seed] = (model, run)
            rows.append(
                {
                    "regulariser": name,
                    "seed": seed,
                    "train": evaluate(model, *train),
                    "validation": run.final_val_accuracy,
                    "test": evaluate(model, x_test, y_test),
                    "curve": run.val_accuracy,
                    "running_train": run.running_train_accuracy,
                    "seconds": run.seconds,
                }
            )
    return rows, models


def summarise(rows: list[dict[str, Any]], by: str, keys: Sequence[str]) -> dict:
    """Mean, min and max of each of `keys` over the rows sharing the value of `by`."""
    groups: dict[Any, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(row[by], []).append(row)
    return {
        group: {
            key: {
                "mean": float(np.mean([r[key] for r in members])),
                "min": float(np.min([r[key] for r in members])),
                "max": float(np.max([r[key] for r in members])),
            }
            for key in keys
        }
        for group, members in groups.items()
    }


# ------------------------------------------------------------------------------------
# Digits by other writers: drawn strokes


def _arc(cx, cy, rx, ry, start, stop, n=24) -> list[tuple[float, float]]:
    """Points on an ellipse from angle `start` to `stop` (degrees, y pointing down)."""
    t = np.radians(np.linspace(start, stop, n))
    return list(zip(cx + rx * np.cos(t), cy + ry * np.sin(t)))


# Each digit is a list of strokes; each stroke a polyline in the unit square (y down).
DIGIT_STROKES: dict[int, list[list[tuple[float, float]]]] = {
    0: [_arc(0.5, 0.5, 0.3, 0.45, -90, 270, 40)],
    1: [[(0.35, 0.22), (0.55, 0.05), (0.55, 0.95)]],
    2: [
        [
            *_arc(0.5, 0.3, 0.3, 0.25, 180, 360, 16),
            (0.75, 0.5),
            (0.2, 0.95),
            (0.85, 0.95),
        ]
    ],
    3: [
        _arc(0.48, 0.27, 0.28, 0.22, 200, 450, 20)
        + _arc(0.48, 0.72, 0.32, 0.23, -90, 160, 20)
    ],
    4: [[(0.65, 0.95), (0.65, 0.05), (0.15, 0.65), (0.88, 0.65)]],
    5: [
        [
            (0.8, 0.05),
            (0.3, 0.05),
            (0.25, 0.45),
            *_arc(0.5, 0.68, 0.3, 0.27, -120, 150, 20),
        ]
    ],
    6: [[(0.72, 0.05), (0.45, 0.25), *_arc(0.5, 0.7, 0.27, 0.25, 200, 560, 30)]],
    7: [[(0.15, 0.05), (0.85, 0.05), (0.4, 0.95)]],
    8: [
        _arc(0.5, 0.27, 0.24, 0.22, 90, 450, 24)
        + _arc(0.5, 0.72, 0.3, 0.23, -90, 270, 28)
    ],
    9: [[*_arc(0.48, 0.3, 0.25, 0.25, 0, 360, 28), (0.73, 0.3), (0.65, 0.95)]],
}

# Pens: (name, stroke width in pixels of a 200x200 canvas, kind of nib).
PENS: tuple[tuple[str, int, str], ...] = (
    ("fine pen", 6, "round"),
    ("marker", 18, "round"),
    ("flat nib", 16, "flat"),
)


def draw_digit(
    digit: int, width: int, nib: str = "round", tilt: float = 0.0, size: int = 200
) -> np.ndarray:
    """Render `digit`'s strokes as black ink on white paper, uint8 (size, size).

    nib "round" draws round-capped strokes; "flat" drags a slanted flat nib, thick in
    some directions and thin in others, as a calligraphy pen does. `tilt` rotates the
    digit by that many degrees (clockwise on screen).
    """
    from PIL import Image, ImageDraw

    if digit not in DIGIT_STROKES:
        raise ValueError(f"digit must be 0..9, got {digit!r}")
    if nib not in ("round", "flat"):
        raise ValueError(f"nib must be 'round' or 'flat', got {nib!r}")
    image = Image.new("L", (size, size), 255)
    draw = ImageDraw.Draw(image)
    a = np.radians(tilt)
    rotation = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    for stroke in DIGIT_STROKES[digit]:
        p = (
            np.asarray(stroke) - 0.5
        ) @ rotation.T * 0.7 + 0.5  # margin around the digit
        points = [tuple(q) for q in p * size]
        if nib == "round":
            draw.line(points, fill=0, width=width, joint="curve")
            r = width / 2
            for x, y in (points[0], points[-1]):
                draw.ellipse((x - r, y - r, x + r, y + r), fill=0)
        else:
            # The nib is a short 45-degree segment: thin copies of the stroke along it.
            for t in np.linspace(-0.5, 0.5, width):
                shifted = [
                    (x + t * width * 0.7, y - t * width * 0.7) for x, y in points
                ]
                draw.line(shifted, fill=0, width=2)
    return np.asarray(image)


def drawn_digits(
    tilts: Sequence[float] = (-20.0, 0.0, 20.0),
    pens: Sequence[tuple[str, int, str]] = PENS,
) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]:
    """Every digit with every pen and tilt, through `preprocess_image`.

    Returns images float32 (N, 28, 28) in [0, 1], labels int (N,), and one dict per
    image describing how it was drawn (digit, pen, tilt).
    """
    from ..predict import preprocess_image

    images, labels, info = [], [], []
    for pen, width, nib in pens:
        for tilt in tilts:
            for digit in range(10):
                ink = draw_digit(digit, width, nib, tilt)
                images.append(preprocess_image(ink))
                labels.append(digit)
                info.append({"digit": digit, "pen": pen, "tilt": tilt})
    return np.stack(images), np.asarray(labels), info
