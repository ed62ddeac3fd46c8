"""Export a trained CNN for the book's "draw a digit" page, and read an export back.

The web file is a small JavaScript file, `window.MNIST_CNN_MODEL = {...};`, so a static
page can load it with a plain `<script>` tag, even from `file://` where `fetch` is not
allowed. The object is JSON: the architecture, written out layer by layer so the
JavaScript needs no knowledge of `Config`, and every weight array as base64 float16
(little-endian). Float16 halves the file (the default model then weighs about 0.55 MB),
and `load_web` rebuilds exactly the model the page runs, so tests can compare the page
with `mnist_cnn.predict` on that model.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import jax.numpy as jnp
import numpy as np
from flax import nnx

from .config import Config
from .files import atomic_write
from .model import CNN, layer_names, layer_shapes

FORMAT = "mnist_cnn-web-v1"
PREFIX = "window.MNIST_CNN_MODEL = "
SUFFIX = ";\n"
# JAX's defaults for the activations the JavaScript reimplements (see
# model.ACTIVATION_FNS).
ACTIVATION_PARAMS = {
    "leaky_relu": {"negative_slope": 0.01},
    "gelu": {"approximate": True},
}


def _tensor(value) -> dict:
    """A weight array as {"shape": [...], "data": base64 of little-endian float16}."""
    array = np.asarray(value, dtype=np.float32)
    if not np.all(np.isfinite(array)):
        raise ValueError(
            "the model has NaN or infinite weights; train it again before exporting"
        )
    if np.abs(array).max(initial=0) > 65504:
        raise ValueError(
            "a weight is too large for float16 (|w| > 65504); "
            "this model cannot be exported"
        )
    data = array.astype("<f2").tobytes()
    return {"shape": list(array.shape), "data": base64.b64encode(data).decode("ascii")}


def _array(tensor: dict) -> np.ndarray:
    """Inverse of `_tensor`: a float32 array of the stored shape."""
    raw = base64.b64decode(tensor["data"], validate=True)
    return np.frombuffer(raw, dtype="<f2").astype(np.float32).reshape(tensor["shape"])


def _folded_conv(model: CNN, i: int) -> tuple[np.ndarray, np.ndarray]:
    """Kernel (k, k, in, out) and bias (out,) of conv `i` (from 1), batch norm folded.

    In eval mode batch norm is the per-channel affine map
    y = (z - mean) * scale / sqrt(var + eps) + bias, so it can be folded into the conv
    before it: multiply each output channel's kernel and shift its bias.
    """
    conv = model.convs[i - 1]
    kernel = np.asarray(conv.kernel.get_value(), np.float64)  # HWIO
    bias = np.asarray(conv.bias.get_value(), np.float64)
    if not model.config.batch_norm:
        return kernel, bias
    norm = model.norms[i - 1]
    mean = np.asarray(norm.mean.get_value(), np.float64)
    var = np.asarray(norm.var.get_value(), np.float64)
    gain = np.asarray(norm.scale.get_value(), np.float64) / np.sqrt(var + norm.epsilon)
    shift = np.asarray(norm.bias.get_value(), np.float64)
    return kernel * gain, (bias - mean) * gain + shift


def web_description(model: CNN) -> dict:
    """The model as the page sees it: layers in forward order, weights base64 float16.

    Batch norm, if any, is folded into the conv before it (the page runs the eval-mode
    model), so the description's config says batch_norm=False.
    """
    if not isinstance(model, CNN):
        raise ValueError(f"export needs an mnist_cnn.CNN, got {type(model).__name__}")
    config = model.config
    shapes = layer_shapes(model)  # the output shape of every named layer
    layers: list[dict] = []
    for name in layer_names(config):
        kind, index = name.rstrip("0123456789"), name[len(name.rstrip("0123456789")) :]
        i = int(index) if index else 0
        if kind == "conv":
            kernel, bias = _folded_conv(model, i)
            layers.append(
                {
                    "type": "conv",
                    "name": name,
                    "padding": "same",
                    "kernel": _tensor(kernel),
                    "bias": _tensor(bias),
                }
            )
        elif kind == "act":
            layers.append(
                {"type": "activation", "name": name, "function": config.activation}
            )
        elif kind == "pool":
            layers.append(
                {
                    "type": "pool",
                    "name": name,
                    "kind": config.pool,
                    "size": 2,
                    # Pooling drops an odd last row and column (model.pool2x2).
                    "output": list(shapes[name][1:]),
                }
            )
        elif kind == "flatten":
            layers.append({"type": "flatten", "name": name, "order": "HWC"})
        elif kind in ("dense", "logits"):
            module = model.dense[i - 1] if kind == "dense" else model.head
            layers.append(
                {
                    "type": "dense",
                    "name": name,
                    "kernel": _tensor(module.kernel.get_value()),
                    "bias": _tensor(module.bias.get_value()),
                }
            )
            if kind == "dense":
                layers.append(
                    {
                        "type": "activation",
                        "name": f"{name}_act",
                        "function": config.activation,
                    }
                )
        # "input" needs no layer; "norm{i}" is folded into "conv{i}".
    layers.append({"type": "softmax", "name": "probabilities"})
    return {
        "format": FORMAT,
        "dtype": "float16",
        "config": json.loads(config.replace(batch_norm=False).to_json()),
        "input": {
            "shape": [28, 28, 1],
            "mean": float(model.mean.get_value()),
            "std": float(model.std.get_value()),
        },
        "activation_params": ACTIVATION_PARAMS.get(config.activation, {}),
        "layers": layers,
    }


def export_web(model: CNN, out_path: str | os.PathLike) -> Path:
    """Write `model` as a web file (`window.MNIST_CNN_MODEL = {...};`), atomically."""
    path = Path(out_path)
    if path.is_dir():
        raise IsADirectoryError(
            f"{path} is a directory; give a file name such as mnist_cnn_model.js"
        )
    if path.suffix != ".js":
        raise ValueError(
            f"{path}: the web export is a JavaScript file; give a name ending in .js"
        )
    text = PREFIX + json.dumps(web_description(model), separators=(",", ":")) + SUFFIX
    return atomic_write(path, text.encode("ascii"))


def load_web(path: str | os.PathLike) -> CNN:
    """Rebuild the CNN a web file describes (float16 weights widened to float32)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"no web export at {path}; make one with `python -m mnist_cnn export-web`"
        )
    text = path.read_text(encoding="ascii", errors="replace")
    if not (text.startswith(PREFIX) and text.endswith(SUFFIX)):
        raise ValueError(
            f"{path} is not an mnist_cnn web export (expected '{PREFIX}{{...}};')"
        )
    try:
        spec = json.loads(text[len(PREFIX) : -len(SUFFIX)])
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: its JSON is damaged ({err})") from None
    if spec.get("format") != FORMAT:
        raise ValueError(
            f"{path} is not an mnist_cnn web export (expected format {FORMAT})"
        )
    config = Config.from_json(json.dumps(spec["config"]))
    model = CNN(config, rngs=nnx.Rngs(0))
    weighted = {layer["name"]: layer for layer in spec["layers"] if "kernel" in layer}
    modules = [(f"conv{i}", m) for i, m in enumerate(model.convs, start=1)]
    modules += [(f"dense{i}", m) for i, m in enumerate(model.dense, start=1)]
    modules.append(("logits", model.head))
    if set(weighted) != {name for name, _ in modules}:
        raise ValueError(
            f"{path}: its layers {sorted(weighted)} do not fit the config it stores"
        )
    for name, module in modules:
        for attr in ("kernel", "bias"):
            value = _array(weighted[name][attr])
            target = getattr(module, attr)
            if value.shape != target.get_value().shape:
                raise ValueError(
                    f"{path}: {name}.{attr} has shape {value.shape}, "
                    f"the config needs {target.get_value().shape}"
                )
            target.set_value(jnp.asarray(value))
    model.set_input_stats(spec["input"]["mean"], spec["input"]["std"])
    model.eval()
    return model
