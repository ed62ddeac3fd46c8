"""Training and evaluation: jit-compiled steps, data kept on the device, a Python loop.

Modes are explicit: a training step always runs the model in train mode (dropout on,
batch norm on batch statistics, running averages updated); evaluation always runs it in
eval mode.
"""

from __future__ import annotations

import contextlib
import functools
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding
from numpy.typing import ArrayLike

from . import parallel
from .config import Config
from .data import Split, load_data
from .model import CNN, init_model
from .pixels import as_batch


class TrainingDivergedError(ValueError):
    """The loss became NaN or infinite, or exploded: the run cannot recover.

    A ValueError, because a bad setting (usually the learning rate) causes it.
    """


@dataclass
class History:
    """Per-epoch record of a training run."""

    epoch: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    train_accuracy: list[float] = field(default_factory=list)
    # Accuracy on the held-out images after each epoch: the test set, or the validation
    # split when the config holds one out (`evaluated_on` says which).
    eval_accuracy: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)  # cumulative training time
    evaluated_on: str = "test"
    # Wall-clock seconds from the call of `fit` to the end of each epoch's evaluation
    # (compilation and evaluation included): what a user waits for.
    wall_seconds: list[float] = field(default_factory=list)
    # The loss of every training step, in order, and the number of steps taken by the
    # end of each epoch: learning curves finer than one point per epoch.
    step_loss: list[float] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, list]:
        """The history as a dict of lists (handy for tables and plots)."""
        return {
            "epoch": self.epoch,
            "loss": self.loss,
            "train_accuracy": self.train_accuracy,
            "eval_accuracy": self.eval_accuracy,
            "seconds": self.seconds,
        }


def make_optimizer(config: Config, steps: int) -> optax.GradientTransformation:
    """Adam(W) with the configured learning-rate schedule over `steps` updates."""
    return _optimizer(config.schedule, config.learning_rate, config.weight_decay, steps)


@functools.lru_cache(maxsize=64)
def _optimizer(
    schedule: str, learning_rate: float, weight_decay: float, steps: int
) -> optax.GradientTransformation:
    # One object per recipe: an optimizer's transformation is part of the structure
    # nnx compiles for, so runs that differ only in their seed share compiled programs.
    if schedule == "onecycle":
        lr = optax.cosine_onecycle_schedule(steps, learning_rate)
    elif schedule == "cosine":
        lr = optax.cosine_decay_schedule(learning_rate, steps)
    else:
        lr = learning_rate
    return optax.adamw(lr, weight_decay=weight_decay)


def loss_fn(
    model: CNN, x: jax.Array, y: jax.Array, smoothing: float = 0.0
) -> tuple[jax.Array, jax.Array]:
    """Mean cross-entropy of the model on a batch, and its logits."""
    logits = model(x)
    targets = optax.smooth_labels(jax.nn.one_hot(y, 10), smoothing)
    return optax.softmax_cross_entropy(logits, targets).mean(), logits


def random_shift(x: jax.Array, key: jax.Array, shift: int) -> jax.Array:
    """Move each image (N, H, W, C) by its own random offset of up to `shift` pixels."""
    n, h, w, c = x.shape
    padded = jnp.pad(x, ((0, 0), (shift, shift), (shift, shift), (0, 0)))  # zero-filled
    offsets = jax.random.randint(key, (n, 2), 0, 2 * shift + 1)
    crop = lambda image, o: jax.lax.dynamic_slice(image, (o[0], o[1], 0), (h, w, c))
    return jax.vmap(crop)(padded, offsets)


def rotate_images(x: jax.Array, degrees: jax.Array) -> jax.Array:
    """Rotate each image (N, H, W, C) about its centre by its angle in `degrees` (N,).

    Bilinear interpolation; pixels from outside the image are zero (the background).
    Positive angles turn the image counter-clockwise as displayed (row 0 at the top),
    as `np.rot90` and `scipy.ndimage.rotate` do.
    """
    _n, h, w, _c = x.shape
    rows, cols = jnp.meshgrid(jnp.arange(h), jnp.arange(w), indexing="ij")
    cy, cx = (h - 1) / 2, (w - 1) / 2

    def one(image: jax.Array, angle: jax.Array) -> jax.Array:
        t = jnp.deg2rad(angle)
        # Each output pixel samples the input at the inversely rotated position.
        src_r = cy + (rows - cy) * jnp.cos(t) + (cols - cx) * jnp.sin(t)
        src_c = cx - (rows - cy) * jnp.sin(t) + (cols - cx) * jnp.cos(t)
        sample = lambda ch: jax.scipy.ndimage.map_coordinates(
            ch, [src_r, src_c], order=1, mode="constant", cval=0.0
        )
        return jax.vmap(sample, in_axes=2, out_axes=2)(image)

    return jax.vmap(one)(x, degrees)


def random_rotate(x: jax.Array, key: jax.Array, rotate: float) -> jax.Array:
    """Rotate each image (N, H, W, C) by its own random angle in [-rotate, rotate]°."""
    degrees = jax.random.uniform(key, (x.shape[0],), minval=-rotate, maxval=rotate)
    return rotate_images(x, degrees)


def random_flip(x: jax.Array, key: jax.Array) -> jax.Array:
    """Mirror each image (N, H, W, C) left to right with probability 1/2."""
    flipped = jax.random.bernoulli(key, 0.5, (x.shape[0],))  # (N,) bool
    return jnp.where(flipped[:, None, None, None], x[:, :, ::-1, :], x)


def train_step(
    model: CNN,
    optimizer: nnx.Optimizer,
    x_all: jax.Array,
    y_all: jax.Array,
    idx: jax.Array,
    smoothing: float,
    key: jax.Array | None = None,
    *,
    shift: int = 0,
    rotate: float = 0.0,
    flip: bool = False,
    batch_sharding: NamedSharding | None = None,
) -> tuple[jax.Array, jax.Array]:
    """One gradient step on the batch `x_all[idx]` in train mode: (loss, correct).

    With `shift` or `rotate` > 0, or `flip`, the batch is augmented by random shifts,
    rotations or mirror images drawn from `key` and the step count. With
    `batch_sharding` the batch is split over a device mesh (data parallelism). All are
    static under jit: they fix the program.
    """
    # A training step trains, whatever mode the caller left the model in: dropout on,
    # batch norm on the batch's statistics. Under jit this only changes the traced copy.
    model.train()
    x, y = x_all[idx], y_all[idx]
    if batch_sharding is not None:
        # Each device computes the loss and gradients of its slice of the batch; with
        # the parameters replicated, XLA adds the all-reduce that sums the gradients.
        x, y = parallel.shard_batch((x, y), batch_sharding)
    if shift or rotate or flip:
        step_key = jax.random.fold_in(key, optimizer.step[...])
        if flip:
            x = random_flip(x, jax.random.fold_in(step_key, 2))
        if rotate:
            x = random_rotate(x, jax.random.fold_in(step_key, 1), rotate)
        if shift:
            x = random_shift(x, step_key, shift)
    (loss, logits), grads = nnx.value_and_grad(loss_fn, has_aux=True)(
        model, x, y, smoothing
    )
    optimizer.update(model, grads)
    return loss, jnp.sum(logits.argmax(-1) == y)


@nnx.jit
def eval_step(model: CNN, x: jax.Array, y: jax.Array, mask: jax.Array) -> jax.Array:
    """Number of correct predictions among the unmasked images of a batch."""
    return jnp.sum((model(x).argmax(-1) == y) & mask)


def _eval_batches(
    x: ArrayLike, y: ArrayLike, batch_size: int
) -> list[tuple[jax.Array, jax.Array, jax.Array]]:
    """(images, labels, mask) device batches of one shape; the last padded, masked."""
    x, y = np.asarray(x), np.asarray(y)
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(
            f"evaluate needs as many labels as images (and at least one); "
            f"got {len(x)} images and {len(y)} labels"
        )
    batches = []
    for start in range(0, len(x), batch_size):
        xb, yb = x[start : start + batch_size], y[start : start + batch_size]
        pad = batch_size - len(xb) if len(x) > batch_size else 0
        mask = np.arange(len(xb) + pad) < len(xb)
        xb = np.concatenate([xb, np.zeros((pad, *xb.shape[1:]), xb.dtype)])
        yb = np.concatenate([yb, np.zeros(pad, yb.dtype)])
        batches.append((as_batch(xb), jnp.asarray(yb), jnp.asarray(mask)))
    return batches


def _compile_eval_in_background(
    model: CNN, batch: tuple[jax.Array, jax.Array, jax.Array]
) -> threading.Thread:
    """Compile `eval_step` for `model`'s structure on a spare thread; join before use.

    Training rarely keeps both cores busy, so compiling the evaluation program beside
    it takes a second off a cold start, which would otherwise pay for it after the last
    step. The thread evaluates a copy of the model (in eval mode, like `_accuracy`): the
    same structure and shapes, hence the same compiled program.
    """
    twin = nnx.clone(model)
    twin.eval()

    def compile_eval() -> None:
        with seedless(twin):
            eval_step(twin, *batch).block_until_ready()

    thread = threading.Thread(target=compile_eval, daemon=True)
    thread.start()
    return thread


def _accuracy(
    model: CNN, batches: list[tuple[jax.Array, jax.Array, jax.Array]], n: int
) -> float:
    """Accuracy over `n` real images in `batches` of `_eval_batches` (one host sync)."""
    model.eval()  # dropout off, batch norm on its running averages
    with seedless(model):
        correct = [eval_step(model, xb, yb, mask) for xb, yb, mask in batches]
    return int(np.sum(jax.device_get(correct))) / n


# Measured on 2 cores: 500 images per batch scores the test set in 0.28 s, 1000 in 0.48
# s (the activations of a larger batch no longer fit in the CPU caches).
EVAL_BATCH = 500


def evaluate(
    model: CNN, x: ArrayLike, y: ArrayLike, batch_size: int = EVAL_BATCH
) -> float:
    """Accuracy of `model` (in eval mode) on every image of (x, y); none is dropped."""
    return _accuracy(model, _eval_batches(x, y, batch_size), len(y))


def split_data(config: Config, data: tuple[Split, Split]) -> tuple[Split, Split, str]:
    """(train, held-out, "test" or "validation") as `config` asks.

    The validation split is the last `validation_size` images of the training file, so
    the test set stays unseen; `train_size` then keeps the first images of what is left.
    """
    (x_train, y_train), (x_test, y_test) = data
    evaluated_on = "test"
    if config.validation_size:
        if config.validation_size >= len(x_train):
            raise ValueError(
                f"validation_size={config.validation_size} leaves no training images "
                f"of the {len(x_train)}"
            )
        v = len(x_train) - config.validation_size
        x_test, y_test = x_train[v:], y_train[v:]
        x_train, y_train = x_train[:v], y_train[:v]
        evaluated_on = "validation"
    if config.train_size is not None:
        x_train, y_train = x_train[: config.train_size], y_train[: config.train_size]
    return (x_train, y_train), (x_test, y_test), evaluated_on


def _steps_per_epoch(n: int, batch_size: int) -> int:
    if n < batch_size:
        raise ValueError(
            f"batch_size={batch_size} is larger than the {n} training images"
        )
    return n // batch_size


def epoch_lengths(config: Config, n: int) -> list[int]:
    """Steps in each epoch of training on `n` images; a fractional last epoch is short.

    `config.epochs = 1.5` is a budget of one and a half passes: a whole epoch, then half
    of a second one in a new random order.
    """
    per_epoch = _steps_per_epoch(n, config.batch_size)
    total = max(1, round(config.epochs * per_epoch))
    whole, rest = divmod(total, per_epoch)
    return [per_epoch] * whole + ([rest] if rest else [])


# The loss is checked every CHECK_EVERY steps, on a value computed CHECK_LAG steps
# earlier (long finished by then, so reading it does not stall the device). A run has
# diverged when that loss is NaN or infinite, or DIVERGED times its first value (or
# times ln 10, a uniform guess's loss, if that is larger: a model that starts out
# trained may well see a batch 100 times worse than its first without diverging).
CHECK_EVERY = 10
CHECK_LAG = 10
DIVERGED = 100.0


def check_loss(step: int, loss: float, first: float, config: Config) -> None:
    """Raise TrainingDivergedError if `loss` at global step `step` shows divergence."""
    if np.isfinite(loss) and loss <= DIVERGED * max(first, math.log(10)):
        return
    raise TrainingDivergedError(
        f"training diverged at step {step}: the loss is {loss:.4g} "
        f"(it started at {first:.4g}); lower the learning rate "
        f"(learning_rate={config.learning_rate:g})"
    )


@contextlib.contextmanager
def seedless(model: nnx.Module) -> Iterator[None]:
    """While inside, `model.config` (if any) reads seed 0: nnx compiles for a model's
    structure, its config included, and the seed changes no computation after the
    weights are drawn, so models that differ only in their seed share programs."""
    config = getattr(model, "config", None)
    if not isinstance(config, Config) or config.seed == 0:
        yield
        return
    model.config = config.replace(seed=0)
    try:
        yield
    finally:
        model.config = config


# Compiled training programs, one per model structure and recipe (see `make_step`).
_STEP_PROGRAMS: dict[tuple, Callable] = {}
_KEEP_PROGRAMS = 32


def make_step(
    model: CNN, optimizer: nnx.Optimizer, config: Config, mesh: Mesh | None = None
) -> Callable[..., tuple[jax.Array, jax.Array]]:
    """`train_step` jitted with `model` and `optimizer` bound (data-parallel on `mesh`).

    The result is called as step(x_all, y_all, idx, smoothing, key) and updates the
    model and optimizer in place. With a mesh (from `parallel.batch_mesh`) each batch is
    split over its "batch" axis; the caller replicates the model, the optimizer state
    and the training set over the same mesh first.
    """
    # Binding model and optimizer once keeps the per-step Python overhead small: the
    # variables are flattened once, and their new values are written back after each
    # call. The step sets train mode itself, so what the caller does to the model's mode
    # between steps (e.g. evaluate it) never reaches the step, and the step never
    # depends on the mode the model had when the partial was built.
    # The augmentation sizes and the batch sharding fix the program, so they are bound
    # by name here rather than passed as static arguments on every call (no per-call
    # hashing).
    sharding = None if mesh is None else parallel.batch_sharding(mesh)
    bound = functools.partial(
        train_step,
        shift=config.shift,
        rotate=config.rotate,
        flip=config.flip,
        batch_sharding=sharding,
    )
    step = nnx.jit_partial(bound, model, optimizer, graph=False)
    # Each `jit_partial` compiles its own program on its first call. A later model of
    # the same structure (layers, config less the seed, optimizer) and recipe takes the
    # program compiled for the first one, which reads the variables it is handed: a
    # short run on a small subset would otherwise spend most of its time compiling the
    # very same program again. (Without the attribute, in another Flax, every model
    # simply compiles its own.)
    if not hasattr(step, "jitted_fn"):
        return step
    with seedless(model):
        structure = nnx.graphdef((model, optimizer))
    key = (structure, config.shift, config.rotate, config.flip, sharding)
    if key in _STEP_PROGRAMS:
        step.jitted_fn = _STEP_PROGRAMS[key]
    else:
        _STEP_PROGRAMS[key] = step.jitted_fn
        if len(_STEP_PROGRAMS) > _KEEP_PROGRAMS:  # forget the oldest
            del _STEP_PROGRAMS[next(iter(_STEP_PROGRAMS))]
    return step


@functools.partial(nnx.jit, static_argnums=1)
def _new_optimizer(model: CNN, tx: optax.GradientTransformation) -> nnx.Optimizer:
    return nnx.Optimizer(model, tx, wrt=nnx.Param)


def new_optimizer(model: CNN, tx: optax.GradientTransformation) -> nnx.Optimizer:
    """`nnx.Optimizer(model, tx)` built by one compiled program.

    Built op by op, each optimizer-state array (Adam's moments are zeros shaped like
    every parameter) is a small program compiled on first use.
    """
    with seedless(model):
        return _new_optimizer(model, tx)


def training_steps(
    model: CNN, config: Config, x_train: jax.Array, y_train: jax.Array
) -> Iterator[tuple[int, int, jax.Array, jax.Array]]:
    """Train `model` in place; after each step yield (epoch, step, loss, correct).

    The package's one training loop: `fit` and the teaching code's learning curves step
    through it, so they share batch order, seed and augmentation. Stops with
    TrainingDivergedError when the loss becomes non-finite or explodes.
    x_train: (N, 28, 28, 1) float32 on the device; y_train: (N,) int32.
    """
    lengths = epoch_lengths(config, len(x_train))
    steps_per_epoch = _steps_per_epoch(len(x_train), config.batch_size)
    optimizer = new_optimizer(model, make_optimizer(config, sum(lengths)))
    mesh = None
    if config.data_parallel:
        # Data parallelism: the model, the optimizer state and the (small) training set
        # get a whole copy on every device; `make_step` splits each batch.
        mesh = parallel.batch_mesh()
        parallel.check_batch_size(config.batch_size, mesh.size)
        parallel.replicate_state(model, optimizer, mesh=mesh)
        x_train, y_train = parallel.replicate((x_train, y_train), mesh)
    step = make_step(model, optimizer, config, mesh)
    # The batch order comes from NumPy on the host, where the batches are indexed:
    # drawn on the device, each new shape of permutation is a program to compile (0.7 s
    # of a cold start on 2 cores; benchmarks/startup.py).
    shuffle = np.random.default_rng(config.seed)
    augmenting = config.shift or config.rotate or config.flip
    # No key at all without augmentation: one program less to compile.
    augment_key = (
        jax.random.fold_in(jax.random.key(config.seed), 1) if augmenting else None
    )
    pending: deque[tuple[int, jax.Array]] = deque()
    first = None
    n = 0
    for epoch, length in enumerate(lengths, start=1):
        order = shuffle.permutation(len(x_train))[: steps_per_epoch * config.batch_size]
        # Index rows of a host array: slicing a device array costs a dispatch per step.
        batches = order.astype(np.int32).reshape(steps_per_epoch, config.batch_size)
        for i in range(length):
            loss, correct = step(
                x_train,
                y_train,
                batches[i],
                config.label_smoothing,
                augment_key,
            )
            if n % CHECK_EVERY == 0:
                pending.append((n, loss))
            if pending and pending[0][0] <= n - CHECK_LAG:
                old_step, old_loss = pending.popleft()
                value = float(old_loss)
                first = value if first is None else first
                check_loss(old_step, value, first, config)
            n += 1
            yield epoch, i, loss, correct
    for old_step, old_loss in pending:
        value = float(old_loss)
        first = value if first is None else first
        check_loss(old_step, value, first, config)


def fit(
    config: Config = Config(),  # noqa: B008 (frozen, so sharing one default is safe)
    data: tuple[Split, Split] | None = None,
    progress: bool = True,
) -> tuple[CNN, History]:
    """Train a CNN described by `config`: (model, history). Same seed, same weights.

    Raises TrainingDivergedError (a ValueError) when the loss becomes NaN or explodes.
    """
    called = time.perf_counter()
    (x_train, y_train), (x_eval, y_eval), evaluated_on = split_data(
        config, data if data is not None else load_data(dataset=config.dataset)
    )
    lengths = epoch_lengths(config, len(x_train))
    x_dev = as_batch(x_train)  # (N, 28, 28, 1) float32, on the device once
    model = init_model(config, x_dev)
    y_dev = jnp.asarray(np.asarray(y_train, np.int32))  # converted on the host
    # The evaluation images go to the device once, not once per epoch.
    eval_batches = _eval_batches(x_eval, y_eval, EVAL_BATCH)
    compiling = _compile_eval_in_background(model, eval_batches[0])
    history = History(evaluated_on=evaluated_on)
    bar = _progress_bar(sum(lengths), progress)
    elapsed, losses, corrects = 0.0, [], []
    start = time.perf_counter()
    for epoch, i, loss, correct in training_steps(model, config, x_dev, y_dev):
        # Results stay on the device (no host round trip per step), summed once an
        # epoch.
        losses.append(loss)
        corrects.append(correct)
        if bar is not None and (i + 1) % 50 == 0:
            bar.update(50)
        steps = lengths[epoch - 1]
        if i + 1 < steps:
            continue
        if bar is not None:
            bar.update(steps % 50)
        step_losses = np.asarray(jax.device_get(losses), np.float64)
        mean_loss = float(step_losses.sum()) / steps
        history.step_loss += step_losses.tolist()
        history.steps.append(len(history.step_loss))
        history.epoch.append(epoch)
        history.loss.append(mean_loss)
        history.train_accuracy.append(
            int(np.sum(jax.device_get(corrects))) / (steps * config.batch_size)
        )
        losses, corrects = [], []
        elapsed += time.perf_counter() - start
        history.seconds.append(elapsed)
        compiling.join()
        history.eval_accuracy.append(_accuracy(model, eval_batches, len(y_eval)))
        history.wall_seconds.append(time.perf_counter() - called)
        if bar is not None:
            bar.set_postfix(
                loss=f"{history.loss[-1]:.4f}",
                **{f"{evaluated_on}_acc": f"{history.eval_accuracy[-1]:.4f}"},
            )
        start = time.perf_counter()  # evaluation time is not training time
    if bar is not None:
        bar.close()
    model.eval()
    return model, history


def _progress_bar(total: int, enabled: bool):
    """A tqdm bar, or None; tqdm is imported only when a bar is shown."""
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="step", desc="training", leave=True)
