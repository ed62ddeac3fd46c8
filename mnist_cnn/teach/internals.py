"""Inside a CNN: feature maps, dead units, gradient norms, per-step learning curves."""

from __future__ import annotations

import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from numpy.typing import ArrayLike

from ..config import Config
from ..data import Split
from ..model import CNN, init_model, layer_names, pool2x2
from ..pixels import as_batch
from ..train import epoch_lengths, evaluate, loss_fn, split_data, training_steps

# ----------------------------------------------------------------------------- features


@nnx.jit(static_argnums=2)
def _forward_features(
    model: CNN, x: jax.Array, names: tuple[str, ...]
) -> dict[str, jax.Array]:
    feats = model.features(x)
    return {k: feats[k] for k in names}


def features(
    model: CNN,
    x: ArrayLike,
    names: tuple[str, ...] | None = None,
    batch_size: int = 1000,
) -> dict[str, np.ndarray]:
    """The named intermediate arrays of the model (eval mode) on images x, in forward
    order.

    `names` are from `layer_names(model.config)` (all of them by default); the arrays
    are computed in jit-compiled batches of `batch_size` images.
    """
    order = layer_names(model.config)
    names = tuple(order) if names is None else tuple(names)
    unknown = [n for n in names if n not in order]
    if unknown:
        raise ValueError(f"the model has no features {unknown}; it has {order}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    model.eval()
    x = as_batch(x)
    parts = [
        _forward_features(model, x[i : i + batch_size], names)
        for i in range(0, len(x), batch_size)
    ]
    # A jit output's dict comes back sorted by key: rebuild it in forward order.
    wanted = [n for n in order if n in names]
    return {k: np.concatenate([np.asarray(p[k]) for p in parts]) for k in wanted}


def feature_maps(model: CNN, image: ArrayLike) -> dict[str, np.ndarray]:
    """Every intermediate array of the model for one image (28, 28), no batch axis."""
    image = np.asarray(image)
    if image.shape != (28, 28):
        raise ValueError(f"image must have shape (28, 28), got {image.shape}")
    return {name: a[0] for name, a in features(model, image[None]).items()}


@nnx.jit
def _unit_peaks(model: CNN, x: jax.Array) -> dict[str, jax.Array]:
    """Largest value of every unit (channel or neuron) of each activation layer over a
    batch.
    """
    feats = model.features(x)
    return {
        k: v.reshape(-1, v.shape[-1]).max(axis=0)
        for k, v in feats.items()
        if k.startswith(("act", "dense"))
    }


def dead_units(
    model: CNN, x: ArrayLike, batch_size: int = 1000
) -> dict[str, tuple[int, int]]:
    """For each activation layer, (units never positive on any image of x, all units).

    A conv unit is one channel (it is dead if it is <= 0 at every position of every
    image); a dense unit is one neuron. With ReLU such a unit outputs 0 and gets no
    gradient.
    """
    model.eval()
    x = as_batch(x)
    # Only each unit's running maximum leaves the device, not the (N, H, W, C) feature
    # maps.
    batches = [
        _unit_peaks(model, x[i : i + batch_size]) for i in range(0, len(x), batch_size)
    ]
    counts = {}
    for name in (n for n in layer_names(model.config) if n in batches[0]):
        peak = np.max(
            np.stack([np.asarray(b[name]) for b in batches]), axis=0
        )  # (units,)
        counts[name] = (int(np.sum(peak <= 0)), int(peak.size))
    return counts


def penultimate_features(
    model: CNN, x: ArrayLike, batch_size: int = 1000
) -> np.ndarray:
    """The activations feeding the classifier head (N, D): the learned features."""
    name = layer_names(model.config)[-2]  # the layer just before the logits
    return features(model, x, (name,), batch_size)[name]


def shift_change(
    model: CNN, image: ArrayLike, shift: int = 1, pool: str = "max"
) -> dict[str, float]:
    """Relative change ||f(x) - f(shifted x)|| / ||f(x)|| of the first conv layer's
    activation map, before and after 2x2 pooling, when the digit moves `shift` pixels
    right.
    """
    img = np.asarray(image)
    if img.shape != (28, 28):
        raise ValueError(f"expected one 28x28 digit, got shape {img.shape}")
    if not 0 < shift < 28:
        raise ValueError(f"shift must be between 1 and 27 pixels, got {shift}")
    if pool not in ("max", "avg"):
        raise ValueError(f"pool must be 'max' or 'avg', got {pool!r}")
    shifted = np.zeros_like(img)
    shifted[:, shift:] = img[:, :-shift]
    act = features(model, np.stack([img, shifted]), ("act1",))["act1"]  # (2, 28, 28, C)
    pooled = np.asarray(pool2x2(jnp.asarray(act), pool))

    def rel(a: np.ndarray) -> float:
        return float(np.linalg.norm(a[0] - a[1]) / np.linalg.norm(a[0]))

    return {"before pooling": rel(act), "after pooling": rel(pooled)}


# -----------------------------------------------------------------------------
# gradients


def _kernels(tree: CNN | nnx.State, model: CNN) -> dict[str, nnx.Variable]:
    """The kernel of every weight layer of `model`, or of its gradient `tree`, by name.

    Conv and dense layers are named as in `layer_names`; the classifier head, whose
    output is called "logits" there, is "head" (as in `param_counts`).
    """
    names = [n for n in layer_names(model.config) if n.startswith(("conv", "dense"))]
    # A gradient's State is indexed like the model's lists, but iterates over its keys.
    layers = [tree.convs[i] for i in range(len(model.convs))]
    layers += [tree.dense[i] for i in range(len(model.dense))]
    kernels = {name: layer.kernel for name, layer in zip(names, layers, strict=True)}
    return {**kernels, "head": tree.head.kernel}


@nnx.jit
def _loss_gradient(model: CNN, x: jax.Array, y: jax.Array) -> nnx.State:
    # Compiled as one program: op by op, JAX compiles each of the hundreds of small
    # operations of the backward pass on first use (seconds for one gradient).
    return nnx.grad(lambda m: loss_fn(m, x, y)[0])(model)


def layer_gradient_norms(model: CNN, x: ArrayLike, y: ArrayLike) -> dict[str, float]:
    """Norm of the cross-entropy gradient w.r.t. each layer's kernel, on the batch (x,
    y).
    """
    x, y = as_batch(x), jnp.asarray(np.asarray(y), jnp.int32)
    if len(x) != len(y):
        raise ValueError(f"got {len(x)} images and {len(y)} labels")
    model.eval()
    grads = _loss_gradient(model, x, y)
    return {
        name: float(jnp.linalg.norm(kernel[...]))
        for name, kernel in _kernels(grads, model).items()
    }


def dense_kernel_gradient(model: CNN, image: ArrayLike, label: int) -> np.ndarray:
    """Gradient of the loss on one image w.r.t. the first dense layer's kernel (n_in,
    n_out).

    The first dense layer is the head when the model has no hidden dense layer.
    """
    x, y = as_batch(np.asarray(image)[None]), jnp.asarray([label], jnp.int32)
    model.eval()
    grads = _loss_gradient(model, x, y)
    kernels = _kernels(grads, model)
    first = "dense1" if "dense1" in kernels else "head"
    return np.asarray(kernels[first][...])


# ----------------------------------------------------------------------------- learning
# curves


class StepCurves(NamedTuple):
    """One training run recorded step by step (see `learning_curve`)."""

    step: np.ndarray  # (S,) 1..S
    loss: np.ndarray  # (S,) training loss of each step
    eval_step: np.ndarray  # (E,) the steps after which the accuracy was measured
    eval_accuracy: np.ndarray  # (E,) accuracy on held-out images at those steps
    seconds: float  # wall-clock time of the run, evaluations included
    model: CNN  # the trained model, in eval mode


def learning_curve(
    config: Config,
    data: tuple[Split, Split],
    eval_every: int = 25,
    eval_size: int = 2000,
) -> StepCurves:
    """Train like `fit` but keep every step's loss and a held-out accuracy every
    `eval_every` steps (on the first `eval_size` held-out images).

    `data` is ((x_train, y_train), (x_test, y_test)); the training and held-out images
    are chosen from it as `fit` chooses them (`train_size`, `validation_size`).
    """
    (x_train, y_train), (x_test, y_test), _ = split_data(config, data)
    steps_per_epoch = len(x_train) // config.batch_size
    if steps_per_epoch == 0 or eval_every < 1:
        raise ValueError(
            f"need at least one batch of {config.batch_size} images (got "
            f"{len(x_train)}) "
            f"and eval_every >= 1 (got {eval_every})"
        )
    x_dev, y_dev = as_batch(x_train), jnp.asarray(np.asarray(y_train), jnp.int32)
    model = init_model(config, x_train)
    total = sum(epoch_lengths(config, len(x_train)))
    losses, eval_steps, accuracies = [], [], []
    x_eval, y_eval = x_test[:eval_size], y_test[:eval_size]
    start = time.perf_counter()
    # The same steps, seed, batch order and augmentation as `fit`.
    for done, (_, _, loss, _) in enumerate(
        training_steps(model, config, x_dev, y_dev), start=1
    ):
        losses.append(loss)
        if done % eval_every == 0 or done == total:
            eval_steps.append(done)
            accuracies.append(evaluate(model, x_eval, y_eval))
    model.eval()
    return StepCurves(
        step=np.arange(1, total + 1),
        loss=np.asarray(jnp.stack(losses)),
        eval_step=np.asarray(eval_steps),
        eval_accuracy=np.asarray(accuracies),
        seconds=time.perf_counter() - start,
        model=model,
    )


def smooth(values: ArrayLike, window: int = 20) -> np.ndarray:
    """Trailing moving average (the first points average what is available), same
    length.
    """
    v = np.asarray(values, dtype=np.float64)
    if window < 1:
        raise ValueError(f"window must be at least 1, got {window}")
    c = np.cumsum(np.insert(v, 0, 0.0))
    idx = np.arange(1, len(v) + 1)
    lo = np.maximum(idx - window, 0)
    return (c[idx] - c[lo]) / (idx - lo)
