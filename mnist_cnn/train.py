"""Training and evaluation: jit-compiled steps, data kept on the device, a Python loop over steps."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from .config import Config
from .data import Split, load_data
from .model import CNN


@dataclass
class History:
    """Per-epoch record of a training run."""

    epoch: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    train_accuracy: list[float] = field(default_factory=list)
    test_accuracy: list[float] = field(default_factory=list)  # validation accuracy if held out
    seconds: list[float] = field(default_factory=list)  # cumulative training time
    evaluated_on: str = "test"

    def as_dict(self) -> dict[str, list]:
        """The history as a dict of lists (handy for tables and plots)."""
        return {"epoch": self.epoch, "loss": self.loss, "train_accuracy": self.train_accuracy,
                "test_accuracy": self.test_accuracy, "seconds": self.seconds}


def make_optimizer(config: Config, steps: int) -> optax.GradientTransformation:
    """Adam(W) with the configured learning-rate schedule over `steps` updates."""
    if config.schedule == "onecycle":
        lr = optax.cosine_onecycle_schedule(steps, config.learning_rate)
    elif config.schedule == "cosine":
        lr = optax.cosine_decay_schedule(config.learning_rate, steps)
    else:
        lr = config.learning_rate
    return optax.adamw(lr, weight_decay=config.weight_decay)


def loss_fn(model: CNN, x: jax.Array, y: jax.Array, smoothing: float = 0.0):
    """Mean cross-entropy of the model on a batch, and its logits."""
    logits = model(x)
    targets = optax.smooth_labels(jax.nn.one_hot(y, 10), smoothing)
    return optax.softmax_cross_entropy(logits, targets).mean(), logits


def train_step(model: CNN, optimizer: nnx.Optimizer, x_all: jax.Array, y_all: jax.Array,
               idx: jax.Array, smoothing: float):
    """One gradient step on the batch `x_all[idx]`; returns (loss, number correct)."""
    x, y = x_all[idx], y_all[idx]
    (loss, logits), grads = nnx.value_and_grad(loss_fn, has_aux=True)(model, x, y, smoothing)
    optimizer.update(model, grads)
    return loss, jnp.sum(logits.argmax(-1) == y)


@nnx.jit
def eval_step(model: CNN, x: jax.Array, y: jax.Array, mask: jax.Array) -> jax.Array:
    """Number of correct predictions among the unmasked images of a batch."""
    return jnp.sum((model(x).argmax(-1) == y) & mask)


def _as_images(x) -> jax.Array:
    """uint8 (N, 28, 28) or float in [0, 1] -> float32 (N, 28, 28, 1) on the device."""
    x = jnp.asarray(x)
    x = x.astype(jnp.float32) / 255.0 if x.dtype == jnp.uint8 else x.astype(jnp.float32)
    return x[..., None] if x.ndim == 3 else x


def evaluate(model: CNN, x, y, batch_size: int = 1000) -> float:
    """Accuracy of `model` on every image of (x, y); the last partial batch is padded, not dropped."""
    x, y = np.asarray(x), np.asarray(y)
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"evaluate needs as many labels as images (and at least one); "
                         f"got {len(x)} images and {len(y)} labels")
    model.eval()
    correct = 0
    for start in range(0, len(x), batch_size):
        xb, yb = x[start:start + batch_size], y[start:start + batch_size]
        pad = batch_size - len(xb) if len(x) > batch_size else 0
        mask = np.arange(len(xb) + pad) < len(xb)
        xb = np.concatenate([xb, np.zeros((pad, *xb.shape[1:]), xb.dtype)])
        yb = np.concatenate([yb, np.zeros(pad, yb.dtype)])
        correct += eval_step(model, _as_images(xb), jnp.asarray(yb), jnp.asarray(mask))
    return float(correct) / len(x)


def _split(config: Config, data: tuple[Split, Split]) -> tuple[Split, Split, str]:
    (x_train, y_train), (x_test, y_test) = data
    if config.validation_size:
        if config.validation_size >= len(x_train):
            raise ValueError(f"validation_size={config.validation_size} leaves no training images")
        # The last images of the training file are the validation set: the test set stays unseen.
        v = len(x_train) - config.validation_size
        return (x_train[:v], y_train[:v]), (x_train[v:], y_train[v:]), "validation"
    if config.train_size is not None:
        x_train, y_train = x_train[:config.train_size], y_train[:config.train_size]
    return (x_train, y_train), (x_test, y_test), "test"


def fit(config: Config = Config(), data: tuple[Split, Split] | None = None,
        progress: bool = True) -> tuple[CNN, History]:
    """Train a CNN described by `config`; returns (model, history). Same seed, same weights."""
    (x_train, y_train), (x_eval, y_eval), evaluated_on = _split(config, data or load_data())
    steps_per_epoch = len(x_train) // config.batch_size
    if steps_per_epoch == 0:
        raise ValueError(f"batch_size={config.batch_size} is larger than the "
                         f"{len(x_train)} training images")
    model = CNN(config, rngs=nnx.Rngs(config.seed))
    # Input-layer preprocessing from the training set only (no peeking at the test set).
    x_dev = _as_images(x_train)
    model.set_input_stats(jnp.mean(x_dev), jnp.std(x_dev))
    y_dev = jnp.asarray(y_train, jnp.int32)
    optimizer = nnx.Optimizer(model, make_optimizer(config, steps_per_epoch * config.epochs),
                              wrt=nnx.Param)
    # Binding model and optimizer once keeps the per-step Python overhead small. jit_partial
    # fixes the module's static attributes when it is built, so the step stays in train mode
    # (dropout on) even while `evaluate` switches the model to eval mode between epochs.
    model.train()
    step = nnx.jit_partial(train_step, model, optimizer, static_argnums=(5,), graph=False)
    key = jax.random.key(config.seed)
    history = History(evaluated_on=evaluated_on)
    bar = _progress_bar(config.epochs * steps_per_epoch, progress)
    elapsed = 0.0
    for epoch in range(1, config.epochs + 1):
        start = time.perf_counter()
        key, sub = jax.random.split(key)
        order = jax.random.permutation(sub, len(x_train))[: steps_per_epoch * config.batch_size]
        batches = order.reshape(steps_per_epoch, config.batch_size)
        total_loss, total_correct = 0.0, 0
        for i in range(steps_per_epoch):
            loss, correct = step(x_dev, y_dev, batches[i], config.label_smoothing)
            # Sums stay on the device: no host round trip inside the loop.
            total_loss, total_correct = total_loss + loss, total_correct + correct
            if bar is not None and (i + 1) % 50 == 0:
                bar.update(50)
        if bar is not None:
            bar.update(steps_per_epoch % 50)
        history.epoch.append(epoch)
        history.loss.append(float(total_loss) / steps_per_epoch)
        history.train_accuracy.append(int(total_correct) / (steps_per_epoch * config.batch_size))
        elapsed += time.perf_counter() - start
        history.seconds.append(elapsed)
        history.test_accuracy.append(evaluate(model, x_eval, y_eval))
        if bar is not None:
            bar.set_postfix(loss=f"{history.loss[-1]:.4f}",
                            **{f"{evaluated_on}_acc": f"{history.test_accuracy[-1]:.4f}"})
    if bar is not None:
        bar.close()
    model.eval()
    return model, history


def _progress_bar(total: int, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="step", desc="training", leave=True)
