"""Measurements behind the layer chapters: activations, gradient flow, dead units, features, softmax."""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from .config import Config
from .model import ACTIVATION_FNS, CNN
from .train import loss_fn, make_optimizer, train_step


def _images(x) -> jax.Array:
    """uint8 (N, 28, 28) or float in [0, 1] -> float32 (N, 28, 28, 1)."""
    x = np.asarray(x)
    if x.ndim not in (3, 4) or x.shape[1:3] != (28, 28):
        raise ValueError(f"images must have shape (N, 28, 28) or (N, 28, 28, 1), got {x.shape}")
    x = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)
    return jnp.asarray(x[..., None] if x.ndim == 3 else x)


# ----------------------------------------------------------------------------- activations

def activation(name: str) -> Callable[[jax.Array], jax.Array]:
    """The model's activation function called `name` (relu, sigmoid, tanh, gelu, leaky_relu)."""
    if name not in ACTIVATION_FNS:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATION_FNS)}")
    return ACTIVATION_FNS[name]


def activation_and_derivative(name: str, x) -> tuple[np.ndarray, np.ndarray]:
    """f(x) and f'(x) on a 1-D grid of points, the derivative taken by `jax.grad` (ReLU'(0) = 0)."""
    fn = activation(name)
    x = jnp.asarray(x, jnp.float32)
    if x.ndim != 1:
        raise ValueError(f"x must be a 1-D array of points, got shape {x.shape}")
    return np.asarray(fn(x)), np.asarray(jax.vmap(jax.grad(fn))(x))


def deep_stack_gradients(name: str, depth: int = 20, width: int = 64, batch: int = 256,
                         seed: int = 0) -> np.ndarray:
    """Norm of the loss gradient w.r.t. each layer's weights in a deep MLP, first layer first (depth,).

    Every layer is `act(x @ W)` with LeCun-normal weights (Flax's default); only the activation
    changes between runs, so any difference in how the gradient shrinks comes from it alone.
    """
    if depth < 1 or width < 1 or batch < 1:
        raise ValueError(f"depth, width and batch must be positive, got {depth}, {width}, {batch}")
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


def same_sign_fraction(grad_w) -> float:
    """Fraction of output units (columns of a (n_in, n_out) weight gradient) whose entries share one sign.

    For one example the gradient of a dense layer is outer(input, delta): if every input is
    positive (sigmoid outputs), each column has the sign of its delta, so all of a unit's weights
    must move up together or down together.
    """
    g = np.asarray(grad_w)
    if g.ndim != 2:
        raise ValueError(f"expected a 2-D weight gradient (n_in, n_out), got shape {g.shape}")
    nonzero = g != 0
    positive = np.all((g > 0) | ~nonzero, axis=0)
    negative = np.all((g < 0) | ~nonzero, axis=0)
    return float(np.mean((positive | negative) & nonzero.any(axis=0)))


# ----------------------------------------------------------------------------- the real CNN

def init_model(config: Config, x_train) -> CNN:
    """An untrained CNN exactly as `fit` builds it (same seed), with the training set's input statistics."""
    model = CNN(config, rngs=nnx.Rngs(config.seed))
    x = _images(x_train)
    model.set_input_stats(jnp.mean(x), jnp.std(x))
    model.eval()
    return model


def layer_gradient_norms(model: CNN, x, y) -> dict[str, float]:
    """Norm of the cross-entropy gradient w.r.t. each layer's kernel, on the batch (x, y)."""
    x, y = _images(x), jnp.asarray(np.asarray(y), jnp.int32)
    if len(x) != len(y):
        raise ValueError(f"got {len(x)} images and {len(y)} labels")
    grads = nnx.grad(lambda m: loss_fn(m, x, y)[0])(model)
    norms = {f"conv{i}": grads.convs[i - 1].kernel for i in range(1, len(model.convs) + 1)}
    norms.update({f"dense{i}": grads.dense[i - 1].kernel for i in range(1, len(model.dense) + 1)})
    norms["head"] = grads.head.kernel
    return {k: float(jnp.linalg.norm(v[...])) for k, v in norms.items()}


def dense_input_gradient(model: CNN, image, label: int) -> np.ndarray:
    """Gradient of the loss on one image w.r.t. the first dense layer's kernel (n_in, n_out)."""
    x, y = _images(np.asarray(image)[None]), jnp.asarray([label], jnp.int32)
    grads = nnx.grad(lambda m: loss_fn(m, x, y)[0])(model)
    k = grads.dense[0].kernel if len(model.dense) else grads.head.kernel
    return np.asarray(k[...])


def learning_curve(config: Config, data, eval_every: int = 25, eval_size: int = 2000) -> dict[str, np.ndarray]:
    """Train like `fit` but keep every step's loss and a test accuracy every `eval_every` steps.

    `data` is ((x_train, y_train), (x_test, y_test)); `config.train_size` limits the training
    images. Returns step (S,), loss (S,), eval_step (E,), eval_accuracy (E,) and seconds.
    """
    import time

    from .train import evaluate

    (x_train, y_train), (x_test, y_test) = data
    if config.train_size is not None:
        x_train, y_train = x_train[:config.train_size], y_train[:config.train_size]
    steps_per_epoch = len(x_train) // config.batch_size
    if steps_per_epoch == 0 or eval_every < 1:
        raise ValueError(f"need at least one batch of {config.batch_size} images (got {len(x_train)}) "
                         f"and eval_every >= 1 (got {eval_every})")
    x_dev, y_dev = _images(x_train), jnp.asarray(np.asarray(y_train), jnp.int32)
    model = init_model(config, x_train)
    total = steps_per_epoch * config.epochs
    optimizer = nnx.Optimizer(model, make_optimizer(config, total), wrt=nnx.Param)
    model.train()
    step = nnx.jit_partial(train_step, model, optimizer, static_argnums=(5,), graph=False)
    key = jax.random.key(config.seed)
    losses, eval_steps, accuracies = [], [], []
    x_eval, y_eval = x_test[:eval_size], y_test[:eval_size]
    start = time.perf_counter()
    done = 0
    for _ in range(config.epochs):
        key, sub = jax.random.split(key)
        order = jax.random.permutation(sub, len(x_train))[: steps_per_epoch * config.batch_size]
        for batch in order.reshape(steps_per_epoch, config.batch_size):
            loss, _ = step(x_dev, y_dev, batch, config.label_smoothing)
            losses.append(loss)
            done += 1
            if done % eval_every == 0 or done == total:
                eval_steps.append(done)
                accuracies.append(evaluate(model, x_eval, y_eval))
                model.train()
    model.eval()
    return {"step": np.arange(1, total + 1), "loss": np.asarray(jnp.stack(losses)),
            "eval_step": np.asarray(eval_steps), "eval_accuracy": np.asarray(accuracies),
            "seconds": time.perf_counter() - start}


def smooth(values, window: int = 20) -> np.ndarray:
    """Trailing moving average (the first points average what is available), same length as `values`."""
    v = np.asarray(values, dtype=np.float64)
    if window < 1:
        raise ValueError(f"window must be at least 1, got {window}")
    c = np.cumsum(np.insert(v, 0, 0.0))
    idx = np.arange(1, len(v) + 1)
    lo = np.maximum(idx - window, 0)
    return (c[idx] - c[lo]) / (idx - lo)


def _features(model: CNN, x, batch_size: int = 1000) -> dict[str, np.ndarray]:
    model.eval()
    x = _images(x)
    parts = [model(x[i:i + batch_size], return_features=True)[1] for i in range(0, len(x), batch_size)]
    return {k: np.concatenate([np.asarray(p[k]) for p in parts]) for k in parts[0]}


def dead_units(model: CNN, x, batch_size: int = 1000) -> dict[str, tuple[int, int]]:
    """For each activation layer, (units never positive on any image of x, all units).

    A conv unit is one channel (it is dead if it is <= 0 at every position of every image);
    a dense unit is one neuron. With ReLU such a unit outputs 0 and gets no gradient.
    """
    feats = _features(model, x, batch_size)
    out = {}
    for name, value in feats.items():
        if name.startswith("act") or name.startswith("dense"):
            peak = value.reshape(-1, value.shape[-1]).max(axis=0)  # (units,)
            out[name] = (int(np.sum(peak <= 0)), int(peak.size))
    return out


def penultimate_features(model: CNN, x, batch_size: int = 1000) -> np.ndarray:
    """The activations that feed the classifier head (N, D): the CNN's learned features of each image."""
    feats = _features(model, x, batch_size)
    name = f"dense{len(model.dense)}" if len(model.dense) else "flatten"
    return feats[name]


def pca_2d(features) -> tuple[np.ndarray, np.ndarray]:
    """Project (N, D) features on their two principal axes: (N, 2) and the explained-variance ratios (2,)."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2 or f.shape[1] < 2:
        raise ValueError(f"need a 2-D array (N >= 2 samples, D >= 2 features), got shape {f.shape}")
    f = f - f.mean(axis=0)
    _, s, vt = np.linalg.svd(f, full_matrices=False)
    # Fix each axis's sign (largest loading positive) so the picture does not flip between runs.
    signs = np.sign(vt[np.arange(2), np.argmax(np.abs(vt[:2]), axis=1)])
    return f @ (vt[:2].T * signs), (s[:2] ** 2) / np.sum(s ** 2)


def shift_change(model: CNN, image, shift: int = 1, pool: str = "max") -> dict[str, float]:
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
    act = _features(model, np.stack([img, shifted]))["act1"]  # (2, 28, 28, C)
    pooled = np.asarray(pool2x2(jnp.asarray(act), pool))

    def rel(a: np.ndarray) -> float:
        return float(np.linalg.norm(a[0] - a[1]) / np.linalg.norm(a[0]))

    return {"before pooling": rel(act), "after pooling": rel(pooled)}


# ----------------------------------------------------------------------------- softmax

def naive_softmax(z, axis: int = -1) -> jax.Array:
    """exp(z) / sum(exp(z)) exactly as the formula reads: overflows for logits above ~88 in float32."""
    e = jnp.exp(jnp.asarray(z, jnp.float32))
    return e / jnp.sum(e, axis=axis, keepdims=True)


def logsumexp(z, axis: int = -1) -> jax.Array:
    """log(sum(exp(z))) computed as m + log(sum(exp(z - m))) with m = max(z): never overflows."""
    z = jnp.asarray(z, jnp.float32)
    m = jax.lax.stop_gradient(jnp.max(z, axis=axis, keepdims=True))
    return jnp.squeeze(m, axis) + jnp.log(jnp.sum(jnp.exp(z - m), axis=axis))


def softmax(z, axis: int = -1, temperature: float = 1.0) -> jax.Array:
    """Stable softmax of z / temperature: exp(z - logsumexp(z)); the largest exponent is exp(0) = 1."""
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    z = jnp.asarray(z, jnp.float32) / temperature
    return jnp.exp(z - jnp.expand_dims(logsumexp(z, axis), axis))


def cross_entropy(logits, label: int | np.ndarray) -> jax.Array:
    """-log softmax(logits)[label], via log-sum-exp; logits (..., C), integer labels (...)."""
    logits = jnp.asarray(logits, jnp.float32)
    label = jnp.asarray(label)
    if jnp.any(label < 0) or jnp.any(label >= logits.shape[-1]):
        raise ValueError(f"labels must be in [0, {logits.shape[-1]}), got {np.asarray(label)}")
    picked = jnp.take_along_axis(logits, label[..., None], axis=-1)[..., 0]
    return logsumexp(logits) - picked
