"""Measurements behind the layer chapters: activations, gradient flow, dead units, features, softmax."""

from __future__ import annotations

import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from numpy.typing import ArrayLike

from .config import Config
from .model import ACTIVATION_FNS, CNN
from .train import _as_images, evaluate, loss_fn, training_steps


def _images(x) -> jax.Array:
    """uint8 (N, 28, 28) or float in [0, 1] -> float32 (N, 28, 28, 1), with a clear shape error."""
    x = np.asarray(x)
    if x.ndim not in (3, 4) or x.shape[1:3] != (28, 28):
        raise ValueError(
            f"images must have shape (N, 28, 28) or (N, 28, 28, 1), got {x.shape}"
        )
    return _as_images(x)


# ----------------------------------------------------------------------------- activations


def activation(name: str) -> Callable[[jax.Array], jax.Array]:
    """The model's activation function called `name` (relu, sigmoid, tanh, gelu, leaky_relu)."""
    if name not in ACTIVATION_FNS:
        raise ValueError(
            f"unknown activation {name!r}; choose one of {sorted(ACTIVATION_FNS)}"
        )
    return ACTIVATION_FNS[name]


def activation_and_derivative(name: str, x: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """f(x) and f'(x) on a 1-D grid of points, the derivative taken by `jax.grad` (ReLU'(0) = 0)."""
    fn = activation(name)
    x = jnp.asarray(x, jnp.float32)
    if x.ndim != 1:
        raise ValueError(f"x must be a 1-D array of points, got shape {x.shape}")
    return np.asarray(fn(x)), np.asarray(jax.vmap(jax.grad(fn))(x))


def deep_stack_gradients(
    name: str, depth: int = 20, width: int = 64, batch: int = 256, seed: int = 0
) -> np.ndarray:
    """Norm of the loss gradient w.r.t. each layer's weights in a deep MLP, first layer first (depth,).

    Every layer is `act(x @ W)` with LeCun-normal weights (Flax's default); only the activation
    changes between runs, so any difference in how the gradient shrinks comes from it alone.
    """
    if depth < 1 or width < 1 or batch < 1:
        raise ValueError(
            f"depth, width and batch must be positive, got {depth}, {width}, {batch}"
        )
    fn = activation(name)
    keys = jax.random.split(jax.random.key(seed), depth + 2)
    init = jax.nn.initializers.lecun_normal()
    weights = [init(k, (width, width), jnp.float32) for k in keys[:depth]]
    x = jax.random.normal(keys[depth], (batch, width))
    target = jax.random.normal(keys[depth + 1], (batch, width))

    def loss(ws):
        h = x
        for w in ws:
            h = fn(h @ w)
        return jnp.mean((h - target) ** 2)

    grads = jax.grad(loss)(weights)
    return np.array([float(jnp.linalg.norm(g)) for g in grads])


def same_sign_fraction(grad_w: ArrayLike) -> float:
    """Fraction of output units (columns of a (n_in, n_out) weight gradient) whose entries share one sign.

    Units whose gradient is all zero (an inactive ReLU on this example) are left out.

    For one example the gradient of a dense layer is outer(input, delta): if every input is
    positive (sigmoid outputs), each column has the sign of its delta, so all of a unit's weights
    must move up together or down together.
    """
    g = np.asarray(grad_w)
    if g.ndim != 2:
        raise ValueError(
            f"expected a 2-D weight gradient (n_in, n_out), got shape {g.shape}"
        )
    nonzero = g != 0
    positive = np.all((g > 0) | ~nonzero, axis=0)
    negative = np.all((g < 0) | ~nonzero, axis=0)
    moving = nonzero.any(axis=0)
    if not moving.any():
        raise ValueError("every column of the gradient is zero: no unit is updated")
    return float(np.mean((positive | negative)[moving]))


# ----------------------------------------------------------------------------- the real CNN


def init_model(config: Config, x_train: ArrayLike) -> CNN:
    """An untrained CNN exactly as `fit` builds it (same seed), with the training set's input statistics."""
    model = CNN(config, rngs=nnx.Rngs(config.seed))
    x = _images(x_train)
    model.set_input_stats(jnp.mean(x), jnp.std(x))
    model.eval()
    return model


def layer_gradient_norms(model: CNN, x: ArrayLike, y: ArrayLike) -> dict[str, float]:
    """Norm of the cross-entropy gradient w.r.t. each layer's kernel, on the batch (x, y)."""
    x, y = _images(x), jnp.asarray(np.asarray(y), jnp.int32)
    if len(x) != len(y):
        raise ValueError(f"got {len(x)} images and {len(y)} labels")
    grads = nnx.grad(lambda m: loss_fn(m, x, y)[0])(model)
    norms = {
        f"conv{i}": grads.convs[i - 1].kernel for i in range(1, len(model.convs) + 1)
    }
    norms.update(
        {f"dense{i}": grads.dense[i - 1].kernel for i in range(1, len(model.dense) + 1)}
    )
    norms["head"] = grads.head.kernel
    return {k: float(jnp.linalg.norm(v[...])) for k, v in norms.items()}


def dense_input_gradient(model: CNN, image: ArrayLike, label: int) -> np.ndarray:
    """Gradient of the loss on one image w.r.t. the first dense layer's kernel (n_in, n_out)."""
    x, y = _images(np.asarray(image)[None]), jnp.asarray([label], jnp.int32)
    grads = nnx.grad(lambda m: loss_fn(m, x, y)[0])(model)
    k = grads.dense[0].kernel if len(model.dense) else grads.head.kernel
    return np.asarray(k[...])


def learning_curve(
    config: Config, data: tuple | None, eval_every: int = 25, eval_size: int = 2000
) -> dict[str, np.ndarray]:
    """Train like `fit` but keep every step's loss and a test accuracy every `eval_every` steps.

    `data` is ((x_train, y_train), (x_test, y_test)); `config.train_size` limits the training
    images. Returns step (S,), loss (S,), eval_step (E,), eval_accuracy (E,), seconds and the
    trained model.
    """
    (x_train, y_train), (x_test, y_test) = data
    if config.train_size is not None:
        x_train, y_train = x_train[: config.train_size], y_train[: config.train_size]
    steps_per_epoch = len(x_train) // config.batch_size
    if steps_per_epoch == 0 or eval_every < 1:
        raise ValueError(
            f"need at least one batch of {config.batch_size} images (got {len(x_train)}) "
            f"and eval_every >= 1 (got {eval_every})"
        )
    x_dev, y_dev = _images(x_train), jnp.asarray(np.asarray(y_train), jnp.int32)
    model = init_model(config, x_train)
    total = steps_per_epoch * config.epochs
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
    return {
        "step": np.arange(1, total + 1),
        "loss": np.asarray(jnp.stack(losses)),
        "eval_step": np.asarray(eval_steps),
        "eval_accuracy": np.asarray(accuracies),
        "seconds": time.perf_counter() - start,
        "model": model,
    }


def smooth(values: ArrayLike, window: int = 20) -> np.ndarray:
    """Trailing moving average (the first points average what is available), same length as `values`."""
    v = np.asarray(values, dtype=np.float64)
    if window < 1:
        raise ValueError(f"window must be at least 1, got {window}")
    c = np.cumsum(np.insert(v, 0, 0.0))
    idx = np.arange(1, len(v) + 1)
    lo = np.maximum(idx - window, 0)
    return (c[idx] - c[lo]) / (idx - lo)


@nnx.jit(static_argnums=2)
def _forward_features(
    model: CNN, x: jax.Array, names: tuple[str, ...]
) -> dict[str, jax.Array]:
    feats = model(x, return_features=True)[1]
    return {k: feats[k] for k in names}


@nnx.jit
def _unit_peaks(model: CNN, x: jax.Array) -> dict[str, jax.Array]:
    """Largest value of every unit (channel or neuron) of each activation layer over a batch."""
    feats = model(x, return_features=True)[1]
    return {
        k: v.reshape(-1, v.shape[-1]).max(axis=0)
        for k, v in feats.items()
        if k.startswith("act") or k.startswith("dense")
    }


def _features(
    model: CNN, x, names: tuple[str, ...], batch_size: int = 1000
) -> dict[str, np.ndarray]:
    """The named intermediate arrays of the model on x, computed in jit-compiled batches."""
    model.eval()
    x = _images(x)
    parts = [
        _forward_features(model, x[i : i + batch_size], names)
        for i in range(0, len(x), batch_size)
    ]
    return {k: np.concatenate([np.asarray(p[k]) for p in parts]) for k in names}


def dead_units(
    model: CNN, x: ArrayLike, batch_size: int = 1000
) -> dict[str, tuple[int, int]]:
    """For each activation layer, (units never positive on any image of x, all units).

    A conv unit is one channel (it is dead if it is <= 0 at every position of every image);
    a dense unit is one neuron. With ReLU such a unit outputs 0 and gets no gradient.
    """
    model.eval()
    x = _images(x)
    # Only each unit's running maximum leaves the device, not the (N, H, W, C) feature maps.
    batches = [
        _unit_peaks(model, x[i : i + batch_size]) for i in range(0, len(x), batch_size)
    ]
    counts = {}
    for name in batches[0]:
        peak = np.max(
            np.stack([np.asarray(b[name]) for b in batches]), axis=0
        )  # (units,)
        counts[name] = (int(np.sum(peak <= 0)), int(peak.size))
    return counts


def penultimate_features(
    model: CNN, x: ArrayLike, batch_size: int = 1000
) -> np.ndarray:
    """The activations that feed the classifier head (N, D): the CNN's learned features of each image."""
    name = f"dense{len(model.dense)}" if len(model.dense) else "flatten"
    return _features(model, x, (name,), batch_size)[name]


def pca_2d(features: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Project (N, D) features on their two principal axes: (N, 2) and the explained-variance ratios (2,)."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2 or f.shape[1] < 2:
        raise ValueError(
            f"need a 2-D array (N >= 2 samples, D >= 2 features), got shape {f.shape}"
        )
    f = f - f.mean(axis=0)
    # Eigenvectors of the (D, D) covariance: cheaper than an SVD of the (N, D) data when N > D.
    evals, evecs = np.linalg.eigh(f.T @ f / (len(f) - 1))
    axes = evecs[:, ::-1][:, :2]  # (D, 2), largest first
    # Fix each axis's sign (largest loading positive) so the picture does not flip between runs.
    axes = axes * np.sign(axes[np.argmax(np.abs(axes), axis=0), [0, 1]])
    return f @ axes, evals[::-1][:2] / evals.sum()


def shift_change(
    model: CNN, image: ArrayLike, shift: int = 1, pool: str = "max"
) -> dict[str, float]:
    """Relative change of the first conv layer's activation map, before and after 2x2 pooling,
    when the digit is shifted `shift` pixels to the right: ||f(x) - f(shifted x)|| / ||f(x)||."""
    from .model import pool2x2

    img = np.asarray(image)
    if img.shape != (28, 28):
        raise ValueError(f"expected one 28x28 digit, got shape {img.shape}")
    if not 0 < shift < 28:
        raise ValueError(f"shift must be between 1 and 27 pixels, got {shift}")
    if pool not in ("max", "avg"):
        raise ValueError(f"pool must be 'max' or 'avg', got {pool!r}")
    shifted = np.zeros_like(img)
    shifted[:, shift:] = img[:, :-shift]
    act = _features(model, np.stack([img, shifted]), ("act1",))[
        "act1"
    ]  # (2, 28, 28, C)
    pooled = np.asarray(pool2x2(jnp.asarray(act), pool))

    def rel(a: np.ndarray) -> float:
        return float(np.linalg.norm(a[0] - a[1]) / np.linalg.norm(a[0]))

    return {"before pooling": rel(act), "after pooling": rel(pooled)}


# ----------------------------------------------------------------------------- softmax


def naive_softmax(z: ArrayLike, axis: int = -1) -> jax.Array:
    """exp(z) / sum(exp(z)) exactly as the formula reads: overflows for logits above ~88 in float32."""
    e = jnp.exp(jnp.asarray(z, jnp.float32))
    return e / jnp.sum(e, axis=axis, keepdims=True)


def logsumexp(z: ArrayLike, axis: int = -1) -> jax.Array:
    """log(sum(exp(z))) computed as m + log(sum(exp(z - m))) with m = max(z): never overflows."""
    z = jnp.asarray(z, jnp.float32)
    m = jax.lax.stop_gradient(jnp.max(z, axis=axis, keepdims=True))
    return jnp.squeeze(m, axis) + jnp.log(jnp.sum(jnp.exp(z - m), axis=axis))


def softmax(z: ArrayLike, axis: int = -1, temperature: float = 1.0) -> jax.Array:
    """Stable softmax of z / temperature: shift by the maximum first, so the largest exponent is exp(0) = 1."""
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    z = jnp.asarray(z, jnp.float32) / temperature
    # softmax(z) = softmax(z - c) for any c; c = max(z) keeps every exp(.) in (0, 1], no overflow.
    e = jnp.exp(z - jnp.max(z, axis=axis, keepdims=True))
    return e / jnp.sum(e, axis=axis, keepdims=True)


def cross_entropy(logits: ArrayLike, label: int | np.ndarray) -> jax.Array:
    """-log softmax(logits)[label], via log-sum-exp; logits (..., C), integer labels (...)."""
    logits = jnp.asarray(logits, jnp.float32)
    label = jnp.asarray(label)
    if jnp.any(label < 0) or jnp.any(label >= logits.shape[-1]):
        raise ValueError(
            f"labels must be in [0, {logits.shape[-1]}), got {np.asarray(label)}"
        )
    picked = jnp.take_along_axis(logits, label[..., None], axis=-1)[..., 0]
    return logsumexp(logits) - picked
