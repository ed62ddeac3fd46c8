"""Self-check for the reader's own CNN class (chapter "Write it yourself").

`check_model(MyCNN)` builds the model as ``MyCNN(rngs=nnx.Rngs(seed))`` (a class, or any
callable that accepts a `rngs` keyword and returns an `nnx.Module`) and feeds it what
the chapter feeds its model: float32 images of shape (N, 28, 28, 1), standardised with
the training set's pixel mean and standard deviation. It checks, in order:

1. the output has shape (N, 10), one logit per digit;
2. every `nnx.Conv` and `nnx.Linear` layer has the parameters of the formula
   k*k*c_in*c_out + c_out (conv) and in*out + out (linear), and affects the output;
3. every parameter receives a non-zero gradient of the cross-entropy on a real batch;
4. a short run (Adam, a few thousand MNIST training images) beats 90% on the test set.

Each failure prints a hint that names the usual mistake. The model is trained in train
mode (dropout on) and checked and evaluated in eval mode.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from . import call_quietly, report

TARGET_ACCURACY = 0.9
# The short run: Adam on the first SHORT_RUN_IMAGES training images for
# SHORT_RUN_EPOCHS epochs, a few seconds on a CPU.
SHORT_RUN_IMAGES = 4000
SHORT_RUN_EPOCHS = 2
_CHANCE = 0.2  # at or below this the model has learnt (almost) nothing: 10 classes


def _name(path: tuple) -> str:
    """('convs', 0, 'kernel') -> 'convs.0.kernel', the path a reader would type."""
    return ".".join(str(p) for p in path)


def _standardised(x: np.ndarray, mean: float, std: float) -> jax.Array:
    """uint8 (N, 28, 28) -> float32 (N, 28, 28, 1), standardised as in the chapter."""
    return (jnp.asarray(x, jnp.float32)[..., None] / 255.0 - mean) / std


def _layers(model: nnx.Module) -> list[tuple[str, nnx.Module]]:
    """Every conv and linear layer of the model, with its attribute path."""
    return [
        (_name(path), node)
        for path, node in nnx.iter_graph(model)
        if isinstance(node, (nnx.Conv, nnx.Linear))
    ]


def _formula(layer: nnx.Module) -> tuple[int, str]:
    """The parameter count of a conv or linear layer with a bias, and its formula."""
    if isinstance(layer, nnx.Conv):
        k = int(np.prod(layer.kernel_size))
        cin, cout = layer.in_features, layer.out_features
        side = "x".join(str(s) for s in layer.kernel_size)
        return k * cin * cout + cout, f"{side}*{cin}*{cout} + {cout}"
    n_in, n_out = layer.in_features, layer.out_features
    return n_in * n_out + n_out, f"{n_in}*{n_out} + {n_out}"


def _layer_size(layer: nnx.Module) -> int:
    """The number of parameters the layer actually holds (kernel, and bias if any)."""
    bias = layer.bias[...].size if layer.bias is not None else 0
    return int(layer.kernel[...].size) + int(bias)


def _zero_leaves(grads: nnx.State) -> list[str]:
    """Paths of the parameters whose gradient is exactly zero everywhere."""
    return [
        _name(path)
        for path, g in nnx.to_flat_state(grads)
        if not np.any(np.asarray(g[...]))
    ]


def _check_count(model: nnx.Module, output_grads: nnx.State) -> bool:
    """Compare every conv/linear layer with the formula; name layers that do nothing.

    `output_grads`: the gradient of the sum of the outputs for every parameter.
    """
    layers = _layers(model)
    what = "parameter count of every conv and linear layer"
    if not layers:
        return report(
            False,
            what,
            "the model has no nnx.Conv or nnx.Linear layer: create them in __init__ "
            "(self.conv1 = nnx.Conv(1, 16, (3, 3), padding='SAME', rngs=rngs), ...)",
        )
    problems = []
    for name, layer in layers:
        expected, formula = _formula(layer)
        got = _layer_size(layer)
        if got != expected:
            why = (
                "it has no bias (use_bias=False)"
                if layer.bias is None
                else "its kernel or bias has an unexpected shape"
            )
            problems.append(
                f"{name} has {got:,} parameters, the formula {formula} gives "
                f"{expected:,}: {why}"
            )
    # A layer none of whose parameters moves the output is counted but never used.
    zero = set(_zero_leaves(output_grads))
    idle = [
        name
        for name, layer in layers
        if f"{name}.kernel" in zero and (layer.bias is None or f"{name}.bias" in zero)
    ]
    total = sum(
        int(v[...].size) for _, v in nnx.to_flat_state(nnx.state(model, nnx.Param))
    )
    counted = sum(_layer_size(layer) for _, layer in layers)
    if idle and len(idle) == len(layers):
        problems.append(
            "no layer affects the output: does __call__ return something computed "
            "from its input with the layers (not multiplied by 0 or stop_gradient)?"
        )
    elif idle:
        wasted = sum(_layer_size(layer) for name, layer in layers if name in idle)
        problems.append(
            f"{', '.join(idle)} ({wasted:,} parameters) do not affect the output: a "
            "layer created in __init__ must be called in __call__ (or deleted), on an "
            "input that is not all zeros"
        )
    if problems:
        return report(False, what, "; ".join(problems))
    other = total - counted
    extra = f", plus {other:,} in other modules" if other else ""
    return report(
        True,
        f"{len(layers)} conv/linear layers, {counted:,} parameters as the formula "
        f"k*k*c_in*c_out + c_out and in*out + out gives{extra}",
    )


@nnx.jit
def _gradients(
    model: nnx.Module, x: jax.Array, y: jax.Array
) -> tuple[nnx.State, nnx.State]:
    """Gradients of the summed outputs and of the mean cross-entropy, per parameter.

    Compiled as one program: run eagerly, each operation would be compiled on its own.
    """

    def loss(m):
        return optax.softmax_cross_entropy_with_integer_labels(m(x), y).mean()

    return nnx.grad(lambda m: m(x).sum())(model), nnx.grad(loss)(model)


def _check_gradients(grads: nnx.State, n: int) -> tuple[bool, bool]:
    """(every parameter gets a gradient, at least one does) on a batch of `n` digits."""
    leaves = nnx.to_flat_state(grads)
    what = f"every parameter receives a gradient on a batch of {n} digits"
    if not all(np.all(np.isfinite(np.asarray(g[...]))) for _, g in leaves):
        report(
            False,
            what,
            "some gradients are NaN or infinite: look for a log or a division of a "
            "value that can be 0 (use optax's loss on the logits instead)",
        )
        return False, True
    zero = _zero_leaves(grads)
    if len(zero) == len(leaves):
        report(
            False,
            what,
            "no parameter receives a gradient: the loss does not depend on the "
            "weights. Is the output multiplied by 0, passed through "
            "jax.lax.stop_gradient, or replaced by a constant?",
        )
        return False, False
    if zero:
        report(
            False,
            what,
            f"no gradient reaches {', '.join(zero)}: a layer created in __init__ but "
            "never called in __call__ gets none, and so does one whose input is zero "
            "or cut off by jax.lax.stop_gradient",
        )
        return False, True
    return report(True, f"all {len(leaves)} parameter arrays receive a gradient"), True


def _check_learning(
    model: nnx.Module,
    data: tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]],
    mean: float,
    std: float,
    n_train: int,
    epochs: int,
    batch_size: int,
    seed: int,
) -> bool:
    """Train with Adam on `n_train` images and evaluate on the whole test set."""
    (x_train, y_train), (x_test, y_test) = data
    x = _standardised(x_train[:n_train], mean, std)  # (n_train, 28, 28, 1)
    y = jnp.asarray(y_train[:n_train], jnp.int32)
    optimizer = nnx.Optimizer(model, optax.adam(3e-3), wrt=nnx.Param)

    @nnx.jit
    def step(model, optimizer, x, y, idx):
        # The images stay on the device; only the batch's indices travel each step.
        def loss(m):
            return optax.softmax_cross_entropy_with_integer_labels(
                m(x[idx]), y[idx]
            ).mean()

        value, grads = nnx.value_and_grad(loss)(model)
        optimizer.update(model, grads)
        return value

    @nnx.jit
    def correct(model, xb, yb):
        return jnp.sum(model(xb).argmax(-1) == yb)

    rng = np.random.default_rng(seed)
    steps = n_train // batch_size
    model.train()
    losses = []
    for _ in range(epochs):
        order = rng.permutation(n_train)[: steps * batch_size]
        for idx in order.reshape(steps, batch_size):
            losses.append(step(model, optimizer, x, y, idx))
    model.eval()
    losses = np.asarray(jax.device_get(losses))
    hits = 0
    for start in range(0, len(x_test), 1000):
        xb = _standardised(x_test[start : start + 1000], mean, std)
        hits += int(correct(model, xb, jnp.asarray(y_test[start : start + 1000])))
    accuracy = hits / len(x_test)
    what = (
        f"short run ({epochs} epoch{'s' if epochs != 1 else ''} of {n_train:,} "
        "training images, "
        f"{len(losses)} Adam steps): test accuracy {accuracy:.1%}, "
        f"loss {losses[0]:.3f} -> {losses[-1]:.3f}"
    )
    if accuracy > TARGET_ACCURACY:
        return report(True, what + f" > {TARGET_ACCURACY:.0%}")
    if not np.all(np.isfinite(losses)):
        hint = (
            "the loss became NaN or infinite: pass the logits to optax's loss (it "
            "takes the log safely) rather than your own log of a softmax"
        )
    elif accuracy <= _CHANCE:
        hint = (
            "this is chance level (10% for 10 digits): the prediction does not "
            "depend on the image. Check that __call__ uses its input x all the way "
            "to the output and returns the last layer's logits"
        )
    else:
        hint = (
            f"it learns, but too slowly to reach {TARGET_ACCURACY:.0%}: is there a "
            "ReLU after each conv and dense layer, and does __call__ return logits "
            "(no softmax: the loss applies log-softmax itself)?"
        )
    return report(False, what, hint)


def check_model(
    model_cls: Callable[..., nnx.Module],
    *,
    n_train: int = SHORT_RUN_IMAGES,
    epochs: int = SHORT_RUN_EPOCHS,
    batch_size: int = 64,
    seed: int = 0,
    data: tuple | None = None,
) -> bool:
    """Check a reader's CNN class: output shape, parameter count, gradients, learning.

    The model is built as ``model_cls(rngs=nnx.Rngs(seed))``; `data` is what
    `mnist_cnn.load_data()` returns (loaded when None).
    """
    model, err = call_quietly(lambda: model_cls(rngs=nnx.Rngs(seed)))
    if err or not isinstance(model, nnx.Module):
        return report(
            False,
            "building the model",
            (err or f"it returned a {type(model).__name__}, not an nnx.Module")
            + "; check_model builds it as model_cls(rngs=nnx.Rngs(0)): give __init__ "
            "a `rngs` argument and defaults for every other one",
        )
    if data is None:
        from ...data import load_data

        data = load_data()
    (x_train, y_train), _ = data
    pixels = np.asarray(x_train[:n_train], np.float32) / 255.0
    mean, std = float(pixels.mean()), float(pixels.std())
    batch = _standardised(x_train[:batch_size], mean, std)  # (B, 28, 28, 1)
    labels = jnp.asarray(y_train[:batch_size], jnp.int32)

    model.eval()  # deterministic forward passes (dropout off) for the first checks
    n = 5
    # Only shapes are traced: nothing is computed or compiled yet.
    out, err = call_quietly(nnx.eval_shape, lambda m, x: m(x), model, batch[:n])
    what = f"output shape for input of shape {tuple(batch[:n].shape)}"
    if err:
        return report(
            False,
            what,
            err + ". If a Linear layer complains about its input size: after k "
            "2x2 poolings a 28x28 image is (28 // 2**k) pixels on a side, so the first "
            "Linear takes side*side*channels inputs",
        )
    shape = tuple(getattr(out, "shape", ()))
    if shape != (n, 10):
        if len(shape) != 2:
            hint = (
                "flatten the feature maps before the dense layers: "
                "x.reshape(x.shape[0], -1) keeps the batch axis"
            )
        elif shape[0] != n:
            hint = "the batch axis was lost: reshape with x.shape[0] as the first size"
        else:
            hint = "the last layer must have 10 outputs, one logit per digit"
        return report(False, what, f"got {shape}, expected {(n, 10)}: {hint}")
    report(True, f"{what} is {shape}")

    output_grads, loss_grads = _gradients(model, batch, labels)
    count_ok = _check_count(model, output_grads)
    grads_ok, any_grad = _check_gradients(loss_grads, batch_size)
    if not any_grad:
        report(
            False,
            "short training run",
            "skipped: no parameter receives a gradient, so training cannot change "
            "the model",
        )
        return False
    learn_ok = _check_learning(
        model, data, mean, std, n_train, epochs, batch_size, seed
    )
    return count_ok and grads_ok and learn_ok
